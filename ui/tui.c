/*
 * tui.c: the canopy TUI's screen: ncurses, the key table, the loop
 * (docs/tui.md). The model and the views are elsewhere (tui.h).
 *
 * Two connections to the root: the main thread's is a console with the
 * event feed but the contexts' own events (logs, lock changes, the
 * holder's output, and the tree's changes, which ask for a snapshot); a
 * worker thread takes the snapshots on its own connection, at most every
 * SNAP_MIN_MS while actors come and go, every SNAP_FAST_MS while contexts
 * are on screen, and every SNAP_EVERY_MS otherwise, so the screen never
 * waits for a slow actor. Rows are rebuilt when data arrives (and once a
 * second, for the ages), and the screen is redrawn at most every FRAME_MS,
 * only the rows on it; curses sends the terminal only what changed.
 *
 * Every key is one entry in `keys`, which also makes the footer and the
 * help overlay.
 */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tui.h"

#define FRAME_MS 50         /* at most 20 redraws a second */
#define SNAP_EVERY_MS 2000  /* a snapshot this often while nothing changes */
#define SNAP_MIN_MS 500     /* at most this often while actors come and go; */
#define SNAP_FAST_MS 1000   /* this often while contexts are on screen (their own
                               events are not read: most of a busy tree's feed) */
#define SNAP_ACTOR_MS 1000  /* each actor's time to answer */
#define EVENTS_PER_TURN 2000 /* then the screen gets a turn */
#define STATUS_MS 4000

static const view_t *const views[V_MAX] = {&view_tree, &view_routes, &view_ctx,
                                           &view_log,  &view_console, &view_lints};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ===========================================================================
 * The snapshot worker
 */

typedef struct snapper {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char path[108];
    int wake_fd;
    /* under mu */
    int want, want_ctx, want_stacks, want_dump, quit;
    int fast; /* a view that shows contexts is on screen: every SNAP_FAST_MS */
    cn_snapshot_t *got, *got_stacks;
    int failed;       /* the last snapshot failed: why */
    char why[256];
    char dumped[400]; /* what became of the last dump */
    uint64_t last_ms;
} snapper_t;

static void snap_wake(snapper_t *w)
{
    char b = 1;
    if (write(w->wake_fd, &b, 1) < 0 && errno != EAGAIN)
        return;
}

/* A bundle file name in the working directory, else in TMPDIR. */
static void dump_to(const cn_snapshot_t *s, char *msg, size_t n)
{
    char name[200], path[600];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y%m%d-%H%M%S", &tm);
    snprintf(name, sizeof(name), "canopy-dump-%s-%s.json", s->tree ? s->tree : "tree", when);
    const char *dirs[] = {".", getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < 3; i++) {
        if (dirs[i] == NULL)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
        FILE *f = fopen(path, "wx");
        if (f == NULL)
            continue;
        int rc = ui_dump_write(f, s);
        if (fclose(f) != 0 || rc < 0) {
            snprintf(msg, n, "dump: cannot write %s: %s", path, strerror(errno));
            return;
        }
        char full[700];
        if (path[0] != '/' && getcwd(full, sizeof(full) - strlen(name) - 2))
            snprintf(path, sizeof(path), "%s/%s", full, name);
        snprintf(msg, n, "hang bundle written: %s", path);
        return;
    }
    snprintf(msg, n, "dump: no directory to write %s in (%s)", name, strerror(errno));
}

static void *snap_main(void *arg)
{
    snapper_t *w = arg;
    cn_client_t *c = NULL;
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        uint64_t now = now_ms();
        int urgent = w->want_stacks || w->want_dump;
        uint64_t due = w->last_ms + (w->want                ? SNAP_MIN_MS
                                     : w->want_ctx || w->fast ? SNAP_FAST_MS
                                                              : SNAP_EVERY_MS);
        if (!urgent && now < due) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (due - now) * 1000000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            continue;
        }
        int stacks = w->want_stacks || w->want_dump, dump = w->want_dump;
        w->want = w->want_ctx = w->want_stacks = w->want_dump = 0;
        pthread_mutex_unlock(&w->mu);

        cn_snapshot_t *s = NULL;
        int rc = c ? 0 : cn_client_connect(w->path, &c, CONNECT_MS);
        if (rc == 0) {
            cn_snap_opts_t so = {stacks ? STACKS_TIMEOUT_MS : SNAP_ACTOR_MS, stacks};
            rc = cn_client_snapshot_opts(c, &so, so.actor_timeout_ms + SNAP_SLACK_MS, &s);
        }
        char why[256] = "";
        if (rc < 0) {
            snprintf(why, sizeof(why), "%s", cn_client_error()[0] ? cn_client_error() : cn_strerror(rc));
            cn_client_close(c);
            c = NULL;
        }
        char dumped[400] = "";
        if (dump && s)
            dump_to(s, dumped, sizeof(dumped));
        else if (dump)
            snprintf(dumped, sizeof(dumped), "dump: no snapshot: %s", why);

        pthread_mutex_lock(&w->mu);
        w->last_ms = now_ms();
        w->failed = rc < 0;
        snprintf(w->why, sizeof(w->why), "%s", why);
        if (dumped[0])
            snprintf(w->dumped, sizeof(w->dumped), "%s", dumped);
        cn_snapshot_t **slot = stacks ? &w->got_stacks : &w->got;
        if (s) {
            cn_snapshot_free(*slot);
            *slot = s;
        }
        snap_wake(w);
    }
    pthread_mutex_unlock(&w->mu);
    cn_client_close(c);
    return NULL;
}

enum { SNAP_CTX, SNAP_SHAPE, SNAP_STACKS, SNAP_DUMP };

/* Asks for a snapshot: SNAP_SHAPE (actors changed) within SNAP_MIN_MS of
 * the last, SNAP_CTX (contexts changed) within SNAP_FAST_MS, SNAP_STACKS
 * and SNAP_DUMP (with every thread's stack) at once. */
static void snap_ask(snapper_t *w, int how)
{
    pthread_mutex_lock(&w->mu);
    w->want_ctx = 1;
    w->want |= how >= SNAP_SHAPE;
    w->want_stacks |= how == SNAP_STACKS;
    w->want_dump |= how == SNAP_DUMP;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ===========================================================================
 * The TUI's state
 */

enum { IN_NONE, IN_CONSOLE, IN_FILTER };
enum { Q_NONE, Q_CANCEL, Q_KILL, Q_QUIT };

typedef struct tui {
    tui_model_t m;
    const tui_opts_t *o;
    cn_client_t *ev; /* console and event feed */
    char tree[64];
    int root_pid;
    snapper_t sn;
    int wake[2];

    int view, prev_view;
    rows_t rows[V_MAX], top, detail;
    int sel[V_MAX], scroll[V_MAX], follow[V_MAX];
    int detail_on, detail_scroll;
    cn_snapshot_t *stacks;  /* the last one taken with stacks ('t') */
    cn_snapshot_t *pending; /* paused: the newest snapshot, not shown yet */

    int paused, need_build, dirty;
    uint64_t last_draw, last_build;

    /* The input line: the console's, or the filter's. */
    int in_mode;
    char in[512];
    size_t in_len, in_pos;
    History *hist;
    int hist_walk; /* Up pressed: walking the history */
    char saved_filter[128];

    /* A question waiting for y or n. */
    int q;
    char question[300];
    uint32_t q_actor;
    uint64_t q_call;
    int q_pid;

    char status[400];
    uint64_t status_until;
    int help;
    int mono;
    char gone[300]; /* the tree has gone: how */
    int run_status; /* canopy run: its exit status, once it has gone */
    uint64_t ev_lost;   /* when the event feed closed, or 0 */
    uint64_t last_feed; /* when the feed was last read */
    char ev_why[300];
    int quit, detach;
    int list_y0, list_y1; /* the list's lines on screen, as last drawn */
    int detail_y0;
} tui_t;

static void say(tui_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(tui_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->status, sizeof(t->status), fmt, ap);
    va_end(ap);
    t->status_until = now_ms() + STATUS_MS;
    t->dirty = 1;
}

static const trow_t *sel_row(tui_t *t)
{
    rows_t *r = &t->rows[t->view];
    return t->sel[t->view] >= 0 && (size_t)t->sel[t->view] < r->n ? &r->v[t->sel[t->view]] : NULL;
}

/* Rebuilds the rows of the view on screen (the others are rebuilt when
 * they are shown: 10 000 contexts take about 9 ms), keeping its selection
 * on the same actor and context where it still is. */
/* Where the selection of view v goes after its rows were rebuilt: the
 * same actor and context if they are still there (the tree's: the model's
 * selected actor), else as near as the rows allow. */
static void reselect(tui_t *t, int v, uint32_t actor, uint64_t cid, int had)
{
    rows_t *r = &t->rows[v];
    if (views[v]->follows && t->follow[v]) {
        t->sel[v] = (int)r->n - 1;
        return;
    }
    if (v == V_TREE) {
        actor = t->m.sel_actor;
        cid = 0;
        had = 1;
    }
    for (size_t i = 0; had && i < r->n; i++)
        if (r->v[i].actor == actor && r->v[i].cid == cid) {
            t->sel[v] = (int)i;
            break;
        }
    if (t->sel[v] >= (int)r->n)
        t->sel[v] = (int)r->n - 1;
    if (t->sel[v] < 0 && r->n)
        t->sel[v] = 0;
}

/* Rebuilds the rows of the view on screen (the others are rebuilt when
 * they are shown: 10 000 contexts take about 9 ms). */
static void build(tui_t *t)
{
    uint64_t local = wall_us();
    if (t->m.snap) /* ages move on between snapshots */
        t->m.now_us = local > t->m.snap->now_us ? local : t->m.snap->now_us;
    int v = t->view;
    rows_t *r = &t->rows[v];
    int had = t->sel[v] >= 0 && (size_t)t->sel[v] < r->n;
    uint32_t actor = had ? r->v[t->sel[v]].actor : 0;
    uint64_t cid = had ? r->v[t->sel[v]].cid : 0;
    rows_clear(r);
    views[v]->build(&t->m, r);
    reselect(t, v, actor, cid, had);
    rows_clear(&t->top);
    if (views[v]->top)
        views[v]->top(&t->m, &t->top);
    rows_clear(&t->detail);
    if (t->detail_on)
        detail_build(&t->m, t->stacks, &t->detail);
    t->need_build = 0;
    t->last_build = now_ms();
    t->dirty = 1;
}

/* ===========================================================================
 * Drawing
 */

static const struct {
    short fg, bg;
    attr_t attr, mono;
} theme[ST_MAX_] = {
    [ST_NORMAL] = {-1, -1, A_NORMAL, A_NORMAL},
    [ST_DIM] = {-1, -1, A_DIM, A_DIM},
    [ST_OK] = {COLOR_GREEN, -1, A_NORMAL, A_NORMAL},
    [ST_WARN] = {COLOR_YELLOW, -1, A_NORMAL, A_BOLD},
    [ST_ALERT] = {COLOR_RED, -1, A_BOLD, A_BOLD | A_UNDERLINE},
    [ST_DEBUG] = {COLOR_MAGENTA, -1, A_BOLD, A_BOLD | A_REVERSE},
    [ST_MATCH] = {COLOR_CYAN, -1, A_BOLD, A_UNDERLINE},
    [ST_HEADER] = {COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_REVERSE},
};

static attr_t style_attr(const tui_t *t, int st)
{
    if (st < 0 || st >= ST_MAX_)
        st = ST_NORMAL;
    if (t->mono)
        return theme[st].mono;
    return theme[st].attr | (theme[st].fg != -1 || theme[st].bg != -1 ? COLOR_PAIR(st + 1) : 0);
}

static void theme_init(tui_t *t)
{
    const char *nc = getenv("NO_COLOR");
    t->mono = (nc && *nc) || !has_colors();
    if (t->mono)
        return;
    start_color();
    use_default_colors();
    for (int i = 0; i < ST_MAX_; i++)
        init_pair((short)(i + 1), theme[i].fg, theme[i].bg);
}

/* Text at (y, x), cut at the screen's edge. */
static void put(tui_t *t, int y, int x, attr_t a, const char *s)
{
    (void)t;
    int w = COLS - x;
    if (y < 0 || y >= LINES || w <= 0)
        return;
    attrset(a);
    mvaddnstr(y, x, s, w);
    attrset(A_NORMAL);
}

static void fill_line(int y, attr_t a)
{
    attrset(a);
    mvhline(y, 0, ' ', COLS);
    attrset(A_NORMAL);
}

static void draw_row(tui_t *t, int y, const trow_t *r, int selected)
{
    attr_t a = style_attr(t, r->style);
    if (r->is_match)
        a |= t->mono ? A_UNDERLINE : A_BOLD;
    if (selected) {
        a |= A_REVERSE;
        fill_line(y, a);
    }
    put(t, y, 0, a, r->text);
    if (r->bar >= 0 && r->bar_col > 0 && r->bar_col + 6 < COLS) {
        int cells = r->bar * 6 / 100 + (r->bar > 0 && r->bar * 6 < 100);
        attrset((a ^ A_REVERSE) | (r->bar >= 90 ? style_attr(t, ST_ALERT) : 0));
        for (int i = 0; i < cells; i++)
            mvaddch(y, r->bar_col + i, ' ');
        attrset(A_NORMAL);
    }
}

static void draw_list(tui_t *t, rows_t *r, int *sel, int *scroll, int y0, int y1, int show_sel)
{
    int h = y1 - y0 + 1;
    if (h <= 0)
        return;
    if (*sel >= 0) {
        if (*sel < *scroll)
            *scroll = *sel;
        if (*sel >= *scroll + h)
            *scroll = *sel - h + 1;
    }
    if (*scroll > (int)r->n - h)
        *scroll = (int)r->n - h;
    if (*scroll < 0)
        *scroll = 0;
    for (int i = 0; i < h && (size_t)(*scroll + i) < r->n; i++)
        draw_row(t, y0 + i, &r->v[*scroll + i], show_sel && *scroll + i == *sel);
}

static void draw_tabs(tui_t *t)
{
    fill_line(0, style_attr(t, ST_HEADER));
    char title[160];
    snprintf(title, sizeof(title), " canopy %s (pid %d) ", t->tree, t->root_pid);
    put(t, 0, 0, style_attr(t, ST_HEADER) | A_BOLD, title);
    int x = (int)strlen(title) + 1;
    for (int v = 0; v < V_MAX; v++) {
        char tab[32];
        snprintf(tab, sizeof(tab), "%d %s", v + 1, views[v]->name);
        attr_t a = v == t->view ? A_REVERSE | A_BOLD : style_attr(t, ST_HEADER);
        if (t->mono && v == t->view)
            a = A_BOLD | A_UNDERLINE;
        put(t, 0, x, a, tab);
        x += (int)strlen(tab) + 1;
    }
    const char *flag = t->gone[0] ? "GONE" : t->paused ? "PAUSED" : NULL;
    if (flag && COLS > x + 8)
        put(t, 0, COLS - (int)strlen(flag) - 1, style_attr(t, ST_ALERT) | A_REVERSE, flag);
}

/* The footer: the key table's entries that have a footer word. */
static void draw_footer(tui_t *t);

static void draw_status(tui_t *t, int y)
{
    fill_line(y, A_NORMAL);
    if (t->q) {
        put(t, y, 0, style_attr(t, ST_WARN) | A_BOLD, t->question);
        return;
    }
    if (t->in_mode == IN_FILTER) {
        char line[700];
        snprintf(line, sizeof(line), "filter: %s", t->in);
        put(t, y, 0, A_BOLD, line);
        move(y, 8 + (int)t->in_pos);
        return;
    }
    if (t->status[0] && now_ms() < t->status_until) {
        put(t, y, 0, A_BOLD, t->status);
        return;
    }
    char line[600];
    if (t->gone[0]) {
        snprintf(line, sizeof(line), "%s; the screen shows its last state. q quits.", t->gone);
        put(t, y, 0, style_attr(t, ST_ALERT), line);
        return;
    }
    if (t->view != V_CONSOLE && (t->m.has_holder || t->m.nwaiters)) {
        if (t->m.has_holder)
            snprintf(line, sizeof(line), ">> %s has the debugger's console (%s)%s: press 5",
                     t->m.holder.path, t->m.holder.reason,
                     t->m.nwaiters ? ", others wait" : "");
        else
            snprintf(line, sizeof(line), ">> %s waits for the debugger's console: press 5",
                     t->m.waiters[0].path);
        put(t, y, 0, style_attr(t, ST_DEBUG), line);
        return;
    }
    const cn_snapshot_t *s = t->m.snap;
    if (s == NULL) {
        put(t, y, 0, A_DIM, "waiting for the first snapshot...");
        return;
    }
    size_t nctx = 0;
    for (size_t i = 0; i < s->nactors; i++)
        nctx += s->actors[i].ncontexts;
    pthread_mutex_lock(&t->sn.mu);
    int failed = t->sn.failed;
    char why[256];
    snprintf(why, sizeof(why), "%s", t->sn.why);
    pthread_mutex_unlock(&t->sn.mu);
    snprintf(line, sizeof(line), "%zu actors, %zu contexts, %zu lint%s%s%s%s%s", s->nactors, nctx,
             t->m.nlints, t->m.nlints == 1 ? "" : "s", s->unresponsive ? ", some not answering" : "",
             t->m.filter[0] ? ", filter: " : "", t->m.filter, failed ? "; snapshot failed: " : "");
    if (failed)
        strncat(line, why, sizeof(line) - strlen(line) - 1);
    put(t, y, 0, t->m.nlints || failed ? style_attr(t, ST_WARN) : A_DIM, line);
}

static void draw_help(tui_t *t);

static void draw(tui_t *t)
{
    erase();
    if (LINES < 8 || COLS < 30) {
        put(t, 0, 0, A_BOLD, "canopy: the terminal is too small");
        refresh();
        t->dirty = 0;
        return;
    }
    int v = t->view;
    draw_tabs(t);
    char head[TROW_TEXT];
    snprintf(head, sizeof(head), "%s", views[v]->header(&t->m));
    fill_line(1, style_attr(t, ST_HEADER));
    put(t, 1, 0, style_attr(t, ST_HEADER), head);
    int y = 2;
    for (size_t i = 0; i < t->top.n && y < LINES - 4; i++)
        draw_row(t, y++, &t->top.v[i], 0);
    int y1 = LINES - 3;
    if (v == V_CONSOLE)
        y1--; /* the input line */
    t->list_y0 = y;
    t->detail_y0 = -1;
    if (v == V_TREE && t->detail_on && y1 - y > 8) {
        int mid = y + (y1 - y) / 2;
        t->list_y1 = mid - 1;
        draw_list(t, &t->rows[v], &t->sel[v], &t->scroll[v], y, mid - 1, 1);
        fill_line(mid, style_attr(t, ST_HEADER));
        put(t, mid, 0, style_attr(t, ST_HEADER), " detail (Enter closes, t backtraces, "
                                                  "J/K scroll)");
        t->detail_y0 = mid + 1;
        int none = -1;
        draw_list(t, &t->detail, &none, &t->detail_scroll, mid + 1, y1, 0);
    } else {
        t->list_y1 = y1;
        draw_list(t, &t->rows[v], &t->sel[v], &t->scroll[v], y, y1, !views[v]->follows ||
                                                                        !t->follow[v]);
    }
    if (t->rows[v].n == 0 && v != V_CONSOLE)
        put(t, y, 2, A_DIM, t->m.filter[0]   ? "(nothing matches the filter; / changes it)"
                            : views[v]->empty ? views[v]->empty(&t->m)
                            : t->m.snap       ? "(nothing here)"
                                              : "(no snapshot yet)");
    if (v == V_CONSOLE) {
        fill_line(LINES - 3, A_NORMAL);
        char prompt[200];
        snprintf(prompt, sizeof(prompt), "(%s) ", t->m.has_holder ? t->m.holder.path : "nobody");
        put(t, LINES - 3, 0, style_attr(t, ST_DEBUG), prompt);
        put(t, LINES - 3, (int)strlen(prompt), A_NORMAL, t->in_mode == IN_CONSOLE ? t->in : "");
    }
    draw_status(t, LINES - 2);
    draw_footer(t);
    if (t->help)
        draw_help(t);
    if (t->in_mode == IN_CONSOLE && !t->help && !t->q) {
        char prompt[200];
        snprintf(prompt, sizeof(prompt), "(%s) ", t->m.has_holder ? t->m.holder.path : "nobody");
        move(LINES - 3, (int)(strlen(prompt) + t->in_pos));
        curs_set(1);
    } else if (t->in_mode == IN_FILTER && !t->help) {
        curs_set(1);
    } else {
        curs_set(0);
    }
    if (t->in_mode == IN_FILTER)
        move(LINES - 2, 8 + (int)t->in_pos);
    refresh();
    t->dirty = 0;
    t->last_draw = now_ms();
}

/* ===========================================================================
 * Actions
 */

static void set_view(tui_t *t, int v)
{
    if (v == t->view)
        return;
    t->prev_view = t->view;
    t->view = v;
    pthread_mutex_lock(&t->sn.mu);
    t->sn.fast = v == V_CTX || v == V_LINTS;
    pthread_cond_signal(&t->sn.cv);
    pthread_mutex_unlock(&t->sn.mu);
    t->in_mode = v == V_CONSOLE ? IN_CONSOLE : IN_NONE;
    t->in_len = t->in_pos = 0;
    t->in[0] = '\0';
    build(t);
}

static void move_sel(tui_t *t, int by)
{
    int v = t->view;
    rows_t *r = &t->rows[v];
    if (r->n == 0)
        return;
    int s = t->sel[v] < 0 ? 0 : t->sel[v];
    s += by;
    if (s < 0)
        s = 0;
    if (s >= (int)r->n)
        s = (int)r->n - 1;
    t->sel[v] = s;
    if (views[v]->follows)
        t->follow[v] = s == (int)r->n - 1;
    if (v == V_TREE && r->v[s].actor != t->m.sel_actor) {
        t->m.sel_actor = r->v[s].actor;
        t->detail_scroll = 0;
        build(t); /* routes, contexts and the detail follow the selection */
    }
    t->dirty = 1;
}

static int page(const tui_t *t)
{
    int h = t->list_y1 - t->list_y0 + 1;
    return h > 1 ? h - 1 : 1;
}

static void act_up(tui_t *t, int ch)
{
    (void)ch;
    move_sel(t, -1);
}
static void act_down(tui_t *t, int ch)
{
    (void)ch;
    move_sel(t, 1);
}
static void act_pgup(tui_t *t, int ch)
{
    (void)ch;
    move_sel(t, -page(t));
}
static void act_pgdn(tui_t *t, int ch)
{
    (void)ch;
    move_sel(t, page(t));
}
static void act_home(tui_t *t, int ch)
{
    (void)ch;
    move_sel(t, -(int)t->rows[t->view].n);
}
static void act_end(tui_t *t, int ch)
{
    (void)ch;
    move_sel(t, (int)t->rows[t->view].n);
    if (views[t->view]->follows)
        t->follow[t->view] = 1;
}

static void act_help(tui_t *t, int ch)
{
    (void)ch;
    t->help = !t->help;
    t->dirty = 1;
}

static void act_view(tui_t *t, int ch)
{
    if (ch == '\t')
        set_view(t, (t->view + 1) % V_MAX);
    else if (ch == KEY_BTAB)
        set_view(t, (t->view + V_MAX - 1) % V_MAX);
    else
        set_view(t, ch - '1');
}

static void act_fold(tui_t *t, int ch)
{
    const trow_t *r = sel_row(t);
    if (r == NULL)
        return;
    model_toggle(&t->m, r->actor, ch == '-' || ch == KEY_LEFT);
    build(t);
}

static void act_enter(tui_t *t, int ch)
{
    (void)ch;
    const trow_t *r = sel_row(t);
    switch (t->view) {
    case V_TREE:
        t->detail_on = !t->detail_on;
        t->detail_scroll = 0;
        build(t);
        return;
    case V_ROUTES: /* to the route's target */
    case V_LOG:
    case V_LINTS:
        if (r == NULL || (r->actor == 0 && t->view != V_ROUTES))
            return;
        if (model_actor(&t->m, r->actor) == NULL) {
            say(t, "actor %u is not in the tree now", r->actor);
            return;
        }
        t->m.sel_actor = r->actor;
        set_view(t, t->view == V_LINTS ? V_CTX : V_TREE);
        build(t);
        say(t, "selected %s", model_actor(&t->m, r->actor)->path);
        return;
    case V_CTX: /* to the actor at the other end */
        if (r) {
            const cn_snap_actor_t *a = model_actor(&t->m, r->actor);
            for (size_t i = 0; a && i < a->ncontexts; i++)
                if (a->contexts[i].cid == r->cid && model_actor(&t->m, a->contexts[i].peer)) {
                    t->m.sel_actor = a->contexts[i].peer;
                    t->m.ctx_all = 0;
                    build(t);
                    say(t, "the other end: %s", model_actor(&t->m, t->m.sel_actor)->path);
                    return;
                }
        }
        return;
    default:
        return;
    }
}

static void act_filter(tui_t *t, int ch)
{
    (void)ch;
    snprintf(t->saved_filter, sizeof(t->saved_filter), "%s", t->m.filter);
    snprintf(t->in, sizeof(t->in), "%s", t->m.filter);
    t->in_len = t->in_pos = strlen(t->in);
    t->in_mode = IN_FILTER;
    t->dirty = 1;
}

static void act_next(tui_t *t, int ch)
{
    (void)ch;
    rows_t *r = &t->rows[t->view];
    if (!t->m.filter[0] || r->n == 0) {
        say(t, "no filter: / sets one");
        return;
    }
    for (size_t k = 1; k <= r->n; k++) {
        size_t i = ((size_t)(t->sel[t->view] < 0 ? 0 : t->sel[t->view]) + k) % r->n;
        if (t->view != V_TREE || r->v[i].is_match) {
            move_sel(t, (int)i - t->sel[t->view]);
            return;
        }
    }
}

static void act_sort(tui_t *t, int ch)
{
    (void)ch;
    const char *const *s = views[t->view]->sorts;
    if (s == NULL) {
        say(t, "the %s view is in time order", views[t->view]->name);
        return;
    }
    int n = 0;
    while (s[n])
        n++;
    t->m.sort[t->view] = (t->m.sort[t->view] + 1) % n;
    build(t);
    say(t, "sorted by %s", s[t->m.sort[t->view]]);
}

static void act_pause(tui_t *t, int ch)
{
    (void)ch;
    t->paused = !t->paused;
    if (!t->paused && t->pending) {
        model_snapshot(&t->m, t->pending);
        t->pending = NULL;
    }
    if (!t->paused)
        build(t);
    say(t, t->paused ? "paused: the display is frozen, data keeps arriving (Space resumes)"
                     : "resumed");
}

/* The actor the keys b, c, k are about: the selected row's. */
static const cn_snap_actor_t *target(tui_t *t)
{
    const trow_t *r = sel_row(t);
    uint32_t id = r && t->view != V_CONSOLE ? r->actor : t->m.sel_actor;
    if (t->view == V_CONSOLE && t->m.has_holder)
        id = t->m.holder.actor;
    return model_actor(&t->m, id);
}

static void act_break(tui_t *t, int ch)
{
    (void)ch;
    const cn_snap_actor_t *a = target(t);
    if (a == NULL) {
        say(t, "break: select an actor first");
        return;
    }
    if (cn_client_break(t->ev, a->id, CONNECT_MS) < 0)
        say(t, "break %s: %s", a->path, cn_client_error());
    else
        say(t, "break sent to %s: it queues for the console (5)", a->path);
}

static void ask(tui_t *t, int q, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ask(tui_t *t, int q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->question, sizeof(t->question), fmt, ap);
    va_end(ap);
    t->q = q;
    t->dirty = 1;
}

static void act_cancel(tui_t *t, int ch)
{
    (void)ch;
    const trow_t *r = sel_row(t);
    if (t->view == V_CTX && r && r->cid) {
        /* A context is cancelled as its caller would: by the caller's id. */
        const cn_snap_actor_t *a = model_actor(&t->m, r->actor);
        for (size_t i = 0; a && i < a->ncontexts; i++) {
            const cn_snap_ctx_t *c = &a->contexts[i];
            if (c->cid != r->cid)
                continue;
            t->q_actor = c->role && !strcmp(c->role, "callee") ? c->peer : a->id;
            t->q_call = c->cid;
            ask(t, Q_CANCEL, "cancel context %llu (%s) of %s? y/n", (unsigned long long)c->cid,
                c->fn ? c->fn : "?", a->path);
            return;
        }
    }
    const cn_snap_actor_t *a = target(t);
    if (a == NULL) {
        say(t, "cancel: select an actor or a context first");
        return;
    }
    t->q_actor = a->id;
    t->q_call = 0;
    ask(t, Q_CANCEL, "cancel %s%s? y/n", a->id == 0 ? "the whole tree " : "", a->path);
}

static void act_kill(tui_t *t, int ch)
{
    (void)ch;
    const cn_snap_actor_t *a = target(t);
    if (a == NULL || !a->responsive || a->pid <= 0) {
        say(t, "kill: %s", a ? "its pid is not known (it did not answer)" : "select an actor");
        return;
    }
    t->q_pid = a->pid;
    t->q_actor = a->id;
    ask(t, Q_KILL, "kill %s (pid %d) with SIGKILL? y/n", a->path, a->pid);
}

static void act_dump(tui_t *t, int ch)
{
    (void)ch;
    snap_ask(&t->sn, SNAP_DUMP);
    say(t, "writing a hang bundle (every thread's stack: up to %d s)...",
        (STACKS_TIMEOUT_MS + SNAP_SLACK_MS) / 1000);
}

static void act_bt(tui_t *t, int ch)
{
    (void)ch;
    if (t->view != V_TREE)
        set_view(t, V_TREE);
    t->detail_on = 1;
    snap_ask(&t->sn, SNAP_STACKS);
    build(t);
    say(t, "reading every thread's stack...");
}

static void act_all(tui_t *t, int ch)
{
    (void)ch;
    if (t->view == V_LOG)
        t->m.log_sel_only = !t->m.log_sel_only;
    else
        t->m.ctx_all = !t->m.ctx_all;
    build(t);
}

static void act_level(tui_t *t, int ch)
{
    (void)ch;
    t->m.log_level = (t->m.log_level + 1) % (CN_LOG_ERROR + 1);
    build(t);
}

static void act_detail_scroll(tui_t *t, int ch)
{
    t->detail_scroll += ch == 'J' ? 3 : -3;
    if (t->detail_scroll < 0)
        t->detail_scroll = 0;
    t->dirty = 1;
}

static void act_quit(tui_t *t, int ch)
{
    (void)ch;
    if (t->o->run_pid > 0 && !t->gone[0]) {
        ask(t, Q_QUIT, "quit: cancel the tree? y: cancel it and wait, n: leave it running, "
                       "Esc: stay");
        return;
    }
    t->quit = 1;
}

static void act_esc(tui_t *t, int ch)
{
    (void)ch;
    if (t->help) {
        t->help = 0;
    } else if (t->view == V_CONSOLE) {
        set_view(t, t->prev_view == V_CONSOLE ? V_TREE : t->prev_view);
    } else if (t->detail_on) {
        t->detail_on = 0;
        build(t);
    }
    t->dirty = 1;
}

/* ===========================================================================
 * The key table
 */

enum { K_ALL = 0, K_NOCON = 1 }; /* K_NOCON: not while typing at the console */

typedef struct tkey {
    int code, alt;
    const char *label; /* as the help shows it */
    const char *foot;  /* the footer's word, or NULL */
    const char *help;
    int where;    /* K_* */
    int view;     /* only in this view, or -1 */
    void (*fn)(tui_t *t, int ch);
} tkey_t;

static const tkey_t keys[] = {
    {KEY_F(1), '?', "F1 ?", "Help", "this help", K_NOCON, -1, act_help},
    {'\t', KEY_BTAB, "Tab S-Tab", "View", "next, previous view", K_ALL, -1, act_view},
    {'1', 0, "1-6", NULL, "the views: Tree, Routes, Contexts, Log, Console, Lints", K_NOCON,
     -1, act_view},
    {'2', 0, NULL, NULL, NULL, K_NOCON, -1, act_view},
    {'3', 0, NULL, NULL, NULL, K_NOCON, -1, act_view},
    {'4', 0, NULL, NULL, NULL, K_NOCON, -1, act_view},
    {'5', 0, NULL, NULL, NULL, K_NOCON, -1, act_view},
    {'6', 0, NULL, NULL, NULL, K_NOCON, -1, act_view},
    {KEY_F(6), '>', "F6 >", "Sort", "sort by the next column", K_NOCON, -1, act_sort},
    {KEY_UP, 0, "Up Down", NULL, "move the selection", K_NOCON, -1, act_up},
    {KEY_DOWN, 0, NULL, NULL, NULL, K_NOCON, -1, act_down},
    {KEY_PPAGE, 0, "PgUp PgDn", NULL, "a page up or down", K_ALL, -1, act_pgup},
    {KEY_NPAGE, 0, NULL, NULL, NULL, K_ALL, -1, act_pgdn},
    {KEY_HOME, 0, "Home End", NULL, "first, last row (End: follow the log again)", K_NOCON, -1,
     act_home},
    {KEY_END, 0, NULL, NULL, NULL, K_NOCON, -1, act_end},
    {'+', KEY_RIGHT, "+ - Right Left", NULL, "tree: expand, collapse the selected actor",
     K_NOCON, V_TREE, act_fold},
    {'-', KEY_LEFT, NULL, NULL, NULL, K_NOCON, V_TREE, act_fold},
    {'\n', KEY_ENTER, "Enter", NULL,
     "tree: detail pane; routes: go to the target; contexts: go to the peer; log, lints: go to "
     "the actor", K_NOCON, -1, act_enter},
    {'t', 0, "t", NULL, "backtraces of the selected actor's threads, in the detail pane", K_NOCON,
     -1, act_bt},
    {'J', 'K', "J K", NULL, "scroll the detail pane", K_NOCON, V_TREE, act_detail_scroll},
    {'a', 0, "a", NULL, "contexts: whole tree or selected actor; log: selected actor only",
     K_NOCON, -1, act_all},
    {'l', 0, "l", NULL, "log: the lowest level shown (cycles)", K_NOCON, V_LOG, act_level},
    {'/', 0, "/", "Filter", "filter the rows (tree: keeps the matches' ancestors)", K_NOCON, -1,
     act_filter},
    {'n', 0, "n", NULL, "next row that matches the filter", K_NOCON, -1, act_next},
    {' ', 0, "Space", "Pause", "freeze the display; data keeps arriving", K_NOCON, -1, act_pause},
    {'b', 0, "b", "Break", "break into the selected actor (it queues for the console)", K_NOCON,
     -1, act_break},
    {'c', 0, "c", "Cancel", "cancel the selected actor, or context (contexts view); asks first",
     K_NOCON, -1, act_cancel},
    {'k', 0, "k", "Kill", "kill the selected actor with SIGKILL; asks first", K_NOCON, -1,
     act_kill},
    {'d', 0, "d", "Dump", "write a hang bundle (snapshot, stacks, lints) to a file", K_NOCON, -1,
     act_dump},
    {27, 0, "Esc", NULL, "close help or detail; leave the console", K_ALL, -1, act_esc},
    {'q', KEY_F(10), "q F10", "Quit", "quit (detach: the tree keeps running; after canopy run, "
                                      "asks)",
     K_NOCON, -1, act_quit},
    {KEY_F(10), 0, NULL, NULL, NULL, K_ALL, -1, act_quit},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void draw_footer(tui_t *t)
{
    int y = LINES - 1, x = 0;
    fill_line(y, A_NORMAL);
    if (t->view == V_CONSOLE) {
        static const char *const con[][2] = {{"Enter", "Send"}, {"^C", "Interrupt"},
                                              {"Up", "History"}, {"PgUp", "Scroll"},
                                              {"Tab", "View"},   {"Esc", "Leave"},
                                              {"F10", "Quit"}};
        for (size_t i = 0; i < sizeof(con) / sizeof(con[0]) && x < COLS; i++) {
            put(t, y, x, style_attr(t, ST_HEADER), con[i][0]);
            x += (int)strlen(con[i][0]);
            put(t, y, x, A_NORMAL, con[i][1]);
            x += (int)strlen(con[i][1]) + 1;
        }
        return;
    }
    for (size_t i = 0; i < NKEYS && x < COLS; i++) {
        if (keys[i].foot == NULL)
            continue;
        char k[16];
        snprintf(k, sizeof(k), "%.*s", (int)strcspn(keys[i].label, " "), keys[i].label);
        put(t, y, x, style_attr(t, ST_HEADER), k);
        x += (int)strlen(k);
        put(t, y, x, A_NORMAL, keys[i].foot);
        x += (int)strlen(keys[i].foot) + 1;
    }
}

static void draw_help(tui_t *t)
{
    int w = COLS - 4 < 100 ? COLS - 4 : 100, h = LINES - 2;
    int y0 = 1, x0 = (COLS - w) / 2;
    for (int y = y0; y < y0 + h; y++)
        fill_line(y, A_NORMAL);
    attrset(A_BOLD);
    mvhline(y0, x0, '-', w);
    mvhline(y0 + h - 1, x0, '-', w);
    attrset(A_NORMAL);
    put(t, y0, x0 + 2, A_BOLD, " canopy keys (any key closes) ");
    int y = y0 + 1;
    for (size_t i = 0; i < NKEYS && y < y0 + h - 1; i++) {
        if (keys[i].help == NULL)
            continue;
        char line[300];
        snprintf(line, sizeof(line), "%-16s %s", keys[i].label, keys[i].help);
        put(t, y++, x0 + 1, A_NORMAL, line);
    }
    if (y < y0 + h - 1)
        put(t, y++, x0 + 1, A_DIM, "Console view: type a line for the holder, Enter sends, "
                                   "^C interrupts, :skip :release");
    if (y < y0 + h - 1)
        put(t, y, x0 + 1, A_DIM, "Mouse: click selects (a tab, a row), the wheel scrolls.");
}

/* ===========================================================================
 * Input
 */

static void hist_add(tui_t *t, const char *line)
{
    HistEvent he;
    if (t->hist && *line)
        history(t->hist, &he, H_ENTER, line);
    t->hist_walk = 0;
}

static void hist_move(tui_t *t, int older)
{
    HistEvent he;
    if (t->hist == NULL)
        return;
    int rc;
    if (older)
        rc = t->hist_walk ? history(t->hist, &he, H_NEXT) : history(t->hist, &he, H_FIRST);
    else
        rc = t->hist_walk ? history(t->hist, &he, H_PREV) : -1;
    if (rc < 0) {
        if (!older) {
            t->in[0] = '\0';
            t->in_len = t->in_pos = 0;
            t->hist_walk = 0;
        }
        return;
    }
    t->hist_walk = 1;
    snprintf(t->in, sizeof(t->in), "%s", he.str);
    t->in_len = t->in_pos = strcspn(t->in, "\n");
    t->in[t->in_len] = '\0';
}

static void console_line(tui_t *t)
{
    char *line = t->in;
    hist_add(t, line);
    model_con_add(&t->m, "", 0);
    if (strcmp(line, ":skip") == 0 || strcmp(line, ":release") == 0) {
        if (cn_client_lock_op(t->ev, line + 1, CONNECT_MS) < 0)
            say(t, "%s: %s", line, cn_client_error());
    } else if (!t->m.has_holder) {
        say(t, "nobody holds the console: b breaks into the selected actor");
    } else {
        char echo[600];
        int n = snprintf(echo, sizeof(echo), "(%s) %s\n", t->m.holder.path, line);
        model_con_add(&t->m, echo, n < 0 ? 0 : (size_t)n >= sizeof(echo) ? sizeof(echo) - 1 : (size_t)n);
        if (cn_client_console_send(t->ev, line, strlen(line), CONNECT_MS) < 0)
            say(t, "console: %s", cn_client_error());
    }
    t->in[0] = '\0';
    t->in_len = t->in_pos = 0;
    t->follow[V_CONSOLE] = 1;
    build(t);
}

/* A key for the input line; 1 if it took it. */
static int edit_key(tui_t *t, int ch)
{
    switch (ch) {
    case KEY_LEFT:
        if (t->in_pos)
            t->in_pos--;
        break;
    case KEY_RIGHT:
        if (t->in_pos < t->in_len)
            t->in_pos++;
        break;
    case KEY_HOME:
    case 1: /* ^A */
        t->in_pos = 0;
        break;
    case KEY_END:
    case 5: /* ^E */
        t->in_pos = t->in_len;
        break;
    case KEY_BACKSPACE:
    case 127:
    case 8:
        if (t->in_pos) {
            memmove(t->in + t->in_pos - 1, t->in + t->in_pos, t->in_len - t->in_pos + 1);
            t->in_pos--;
            t->in_len--;
        }
        break;
    case KEY_DC:
        if (t->in_pos < t->in_len) {
            memmove(t->in + t->in_pos, t->in + t->in_pos + 1, t->in_len - t->in_pos);
            t->in_len--;
        }
        break;
    case 21: /* ^U */
        t->in[0] = '\0';
        t->in_len = t->in_pos = 0;
        break;
    case KEY_UP:
        if (t->in_mode != IN_CONSOLE)
            return 0;
        hist_move(t, 1);
        break;
    case KEY_DOWN:
        if (t->in_mode != IN_CONSOLE)
            return 0;
        hist_move(t, 0);
        break;
    default:
        if (ch < 32 || ch > 255 || ch == 127 || t->in_len + 1 >= sizeof(t->in))
            return 0;
        memmove(t->in + t->in_pos + 1, t->in + t->in_pos, t->in_len - t->in_pos + 1);
        t->in[t->in_pos++] = (char)ch;
        t->in_len++;
        break;
    }
    t->dirty = 1;
    return 1;
}

static void answer(tui_t *t, int yes)
{
    int q = t->q;
    t->q = Q_NONE;
    t->dirty = 1;
    if (q == Q_QUIT) {
        t->quit = 1;
        t->detach = !yes;
        return;
    }
    if (!yes) {
        say(t, "nothing done");
        return;
    }
    if (q == Q_CANCEL) {
        if (cn_client_cancel(t->ev, t->q_actor, t->q_call, "cancelled from the canopy TUI",
                             CONNECT_MS) < 0)
            say(t, "cancel: %s", cn_client_error());
        else
            say(t, "cancel sent");
        snap_ask(&t->sn, SNAP_SHAPE);
    } else if (q == Q_KILL) {
        if (kill(t->q_pid, SIGKILL) < 0)
            say(t, "kill %d: %s", t->q_pid, strerror(errno));
        else
            say(t, "SIGKILL sent to pid %d", t->q_pid);
        snap_ask(&t->sn, SNAP_SHAPE);
    }
}

static void on_mouse(tui_t *t)
{
    MEVENT me;
    if (getmouse(&me) != OK)
        return;
    if (me.bstate & BUTTON4_PRESSED) {
        move_sel(t, -3);
        return;
    }
    if (me.bstate & BUTTON5_PRESSED) {
        move_sel(t, 3);
        return;
    }
    if (!(me.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_RELEASED)))
        return;
    if (me.y == 0) { /* a tab */
        char title[160];
        int x = snprintf(title, sizeof(title), " canopy %s (pid %d) ", t->tree, t->root_pid) + 1;
        for (int v = 0; v < V_MAX; v++) {
            int w = (int)strlen(views[v]->name) + 2;
            if (me.x >= x && me.x < x + w) {
                set_view(t, v);
                return;
            }
            x += w + 1;
        }
        return;
    }
    if (me.y >= t->list_y0 && me.y <= t->list_y1) {
        int row = t->scroll[t->view] + me.y - t->list_y0;
        if (row < (int)t->rows[t->view].n)
            move_sel(t, row - t->sel[t->view]);
    }
}

static void on_key(tui_t *t, int ch)
{
    if (ch == KEY_RESIZE) {
        t->dirty = 1;
        return;
    }
    if (ch == KEY_MOUSE) {
        on_mouse(t);
        return;
    }
    if (t->help && ch != KEY_MOUSE) {
        t->help = 0;
        t->dirty = 1;
        return;
    }
    if (t->q) {
        if (ch == 'y' || ch == 'Y')
            answer(t, 1);
        else if (ch == 'n' || ch == 'N' || (ch != 27 && t->q != Q_QUIT))
            answer(t, 0);
        else if (ch == 27) {
            t->q = Q_NONE;
            t->dirty = 1;
        }
        return;
    }
    if (t->in_mode == IN_FILTER) {
        if (ch == '\n' || ch == KEY_ENTER || ch == 27) {
            if (ch == 27)
                snprintf(t->m.filter, sizeof(t->m.filter), "%s", t->saved_filter);
            t->in_mode = t->view == V_CONSOLE ? IN_CONSOLE : IN_NONE;
            t->in[0] = '\0';
            t->in_len = t->in_pos = 0;
            build(t);
            return;
        }
        if (edit_key(t, ch)) { /* filter as you type */
            snprintf(t->m.filter, sizeof(t->m.filter), "%s", t->in);
            build(t);
        }
        return;
    }
    if (t->in_mode == IN_CONSOLE) {
        if (ch == 3) { /* Ctrl-C: to the root, as `canopy attach` does */
            if (t->m.has_holder && t->root_pid > 0 && kill(t->root_pid, SIGINT) == 0)
                say(t, "^C sent to the root: it interrupts the holder (again within 2 s kills "
                       "the tree)");
            else
                say(t, "^C: nobody holds the console");
            return;
        }
        if (ch == '\n' || ch == KEY_ENTER) {
            console_line(t);
            return;
        }
        if (edit_key(t, ch))
            return;
    } else if (ch == 3) {
        act_quit(t, ch);
        return;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        const tkey_t *k = &keys[i];
        if (k->code != ch && k->alt != ch)
            continue;
        if (k->view >= 0 && k->view != t->view)
            continue;
        if (k->where == K_NOCON && t->in_mode == IN_CONSOLE)
            continue;
        k->fn(t, ch);
        return;
    }
}

/* ===========================================================================
 * The loop
 */

static void take_snapshots(tui_t *t)
{
    char b[64];
    while (read(t->wake[0], b, sizeof(b)) > 0)
        ;
    pthread_mutex_lock(&t->sn.mu);
    cn_snapshot_t *s = t->sn.got, *st = t->sn.got_stacks;
    t->sn.got = t->sn.got_stacks = NULL;
    char dumped[400];
    snprintf(dumped, sizeof(dumped), "%s", t->sn.dumped);
    t->sn.dumped[0] = '\0';
    pthread_mutex_unlock(&t->sn.mu);
    if (s && t->paused) { /* the display is frozen: the newest waits */
        cn_snapshot_free(t->pending);
        t->pending = s;
    } else if (s) {
        model_snapshot(&t->m, s);
        t->need_build = 1;
    }
    if (st) {
        cn_snapshot_free(t->stacks);
        t->stacks = st;
        t->need_build = 1;
        say(t, "backtraces read");
    }
    if (dumped[0])
        say(t, "%s", dumped);
    t->dirty = 1; /* the status line says whether the last one failed */
}

static void read_events(tui_t *t)
{
    cn_event_t ev;
    int what = 0, rc = 0;
    for (int i = 0; i < EVENTS_PER_TURN; i++) {
        rc = cn_client_event(t->ev, &ev, 0);
        if (rc < 0)
            break;
        what |= model_event(&t->m, &ev);
        if (!strcmp(ev.kind, "lock") && ev.op && !strcmp(ev.op, "granted") && t->view != V_CONSOLE)
            beep();
    }
    if (what & EV_SHOWN)
        t->need_build = 1;
    if (what & (EV_SHAPE | EV_CTX))
        snap_ask(&t->sn, what & EV_SHAPE ? SNAP_SHAPE : SNAP_CTX);
    if (rc < 0 && rc != CN_ETIMEDOUT && !t->gone[0] && !t->ev_lost) {
        /* Under canopy run, its exit status says more: check_run waits
         * a moment for it. */
        t->ev_lost = now_ms();
        snprintf(t->ev_why, sizeof(t->ev_why), "the tree has gone (%s)", cn_client_error());
        if (t->o->run_pid <= 0)
            snprintf(t->gone, sizeof(t->gone), "%s", t->ev_why);
        t->need_build = 1;
    }
}

/* canopy run: the program's output (a file it appends to), a line at a
 * time, into the log. */
static void read_output(tui_t *t)
{
    static char buf[8192];
    static size_t have;
    for (;;) {
        ssize_t n = read(t->o->out_fd, buf + have, sizeof(buf) - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
            model_output(&t->m, start, (size_t)(nl - start), wall_us());
            start = nl + 1;
        }
        have -= (size_t)(start - buf);
        memmove(buf, start, have);
        if (have == sizeof(buf)) {
            model_output(&t->m, buf, have, wall_us());
            have = 0;
        }
        t->need_build = 1;
    }
}

static void check_run(tui_t *t)
{
    int st;
    if (t->o->run_pid <= 0 || t->gone[0])
        return;
    if (waitpid(t->o->run_pid, &st, WNOHANG) != t->o->run_pid) {
        if (t->ev_lost && now_ms() - t->ev_lost > 2000) { /* alive, but not talking */
            snprintf(t->gone, sizeof(t->gone), "%s", t->ev_why);
            t->need_build = 1;
        }
        return;
    }
    t->run_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (WIFEXITED(st))
        snprintf(t->gone, sizeof(t->gone), "the tree exited with status %d", WEXITSTATUS(st));
    else
        snprintf(t->gone, sizeof(t->gone), "the tree died of signal %d", WTERMSIG(st));
    t->need_build = 1;
}

static int start(tui_t *t)
{
    cn_tree_info_t info;
    int rc = cn_client_find(t->o->tree, &info);
    if (rc < 0) {
        ui_say_error(t->o->tree ? t->o->tree : "attach", rc);
        return -1;
    }
    rc = cn_client_connect(info.path, &t->ev, CONNECT_MS);
    if (rc == 0)
        rc = cn_client_console(t->ev, CN_EVENTS_NO_CONTEXTS, CONNECT_MS);
    if (rc < 0) {
        ui_say_error(info.name, rc);
        cn_client_close(t->ev);
        return -1;
    }
    snprintf(t->tree, sizeof(t->tree), "%s", cn_client_tree(t->ev));
    t->root_pid = cn_client_root_pid(t->ev);
    if (pipe(t->wake) < 0)
        return -1;
    for (int i = 0; i < 2; i++)
        fcntl(t->wake[i], F_SETFL, fcntl(t->wake[i], F_GETFL) | O_NONBLOCK);
    snprintf(t->sn.path, sizeof(t->sn.path), "%s", info.path);
    t->sn.wake_fd = t->wake[1];
    t->sn.want = 1;
    pthread_mutex_init(&t->sn.mu, NULL);
    pthread_cond_init(&t->sn.cv, NULL);
    if (pthread_create(&t->sn.th, NULL, snap_main, &t->sn) != 0)
        return -1;
    return 0;
}

static void stop(tui_t *t)
{
    pthread_mutex_lock(&t->sn.mu);
    t->sn.quit = 1;
    pthread_cond_signal(&t->sn.cv);
    pthread_mutex_unlock(&t->sn.mu);
    pthread_join(t->sn.th, NULL);
    cn_snapshot_free(t->sn.got);
    cn_snapshot_free(t->sn.got_stacks);
    cn_snapshot_free(t->stacks);
    cn_snapshot_free(t->pending);
    cn_client_close(t->ev);
    close(t->wake[0]);
    close(t->wake[1]);
    for (int v = 0; v < V_MAX; v++)
        rows_free(&t->rows[v]);
    rows_free(&t->top);
    rows_free(&t->detail);
    model_free(&t->m);
    if (t->hist)
        history_end(t->hist);
}

int tui_main(const tui_opts_t *o)
{
    static tui_t tt; /* big: the model holds the log ring */
    tui_t *t = &tt;
    memset(t, 0, sizeof(*t));
    t->o = o;
    model_init(&t->m);
    for (int v = 0; v < V_MAX; v++)
        t->follow[v] = 1;
    if (!isatty(0) || !isatty(1)) {
        fprintf(stderr, "canopy: the TUI needs a terminal; 'canopy attach --console' is the "
                        "line console, and 'canopy tree', 'ctx', 'log' print tables\n");
        return EXIT_USAGE;
    }
    if (start(t) < 0)
        return EXIT_FAIL;
    t->hist = history_init();
    if (t->hist) {
        HistEvent he;
        history(t->hist, &he, H_SETSIZE, 200);
    }
    setlocale(LC_ALL, "");
    signal(SIGPIPE, SIG_IGN);
    if (initscr() == NULL) {
        stop(t);
        fprintf(stderr, "canopy: cannot use this terminal (TERM=%s)\n", getenv("TERM"));
        return EXIT_FAIL;
    }
    raw();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    mouseinterval(0);
    theme_init(t);
    curs_set(0);
    t->dirty = 1;

    while (!t->quit) {
        uint64_t now = now_ms();
        int timeout = 1000 - (int)(now - t->last_build); /* ages tick once a second */
        if (t->need_build && !t->paused)
            timeout = (int)(t->last_build + FRAME_MS > now ? t->last_build + FRAME_MS - now : 0);
        else if (t->dirty)
            timeout = (int)(t->last_draw + FRAME_MS > now ? t->last_draw + FRAME_MS - now : 0);
        if (t->status_until > now && (int)(t->status_until - now) < timeout)
            timeout = (int)(t->status_until - now) + 1;
        if (o->run_pid > 0 && timeout > 250)
            timeout = 250; /* its output file and its exit are looked at */
        /* The feed is read in batches, a frame apart: a busy tree sends
         * thousands of events a second, and waking for each would cost
         * the machine the tree runs on. The socket holds them meanwhile. */
        int feed_in = (int)(t->last_feed + FRAME_MS > now ? t->last_feed + FRAME_MS - now : 0);
        int feed = !t->gone[0] && !t->ev_lost && feed_in == 0;
        if (!t->gone[0] && !t->ev_lost && feed_in > 0 && feed_in < timeout)
            timeout = feed_in;
        if (timeout < 0)
            timeout = 0;
        struct pollfd p[3] = {{0, POLLIN, 0}, {feed ? cn_client_fd(t->ev) : -1, POLLIN, 0},
                              {t->wake[0], POLLIN, 0}};
        poll(p, 3, timeout);
        int ch;
        while ((ch = getch()) != ERR)
            on_key(t, ch == '\r' ? '\n' : ch);
        if (p[1].revents && feed) {
            read_events(t);
            t->last_feed = now_ms();
        }
        if (p[2].revents)
            take_snapshots(t);
        if (o->out_fd >= 0) /* a file: read as it grows */
            read_output(t);
        check_run(t);
        now = now_ms();
        /* Rows are rebuilt at most once a frame, however many events came:
         * a busy tree costs a rebuild per frame, not per event. */
        if (!t->paused && now - t->last_build >= (t->need_build ? FRAME_MS : 1000))
            build(t);
        if (t->dirty && now - t->last_draw >= FRAME_MS)
            draw(t);
    }
    endwin();
    int status = t->run_status;
    if (o->run_pid > 0 && !t->gone[0] && !t->detach) {
        fprintf(stderr, "canopy: cancelling the tree (pid %d)...\n", o->run_pid);
        cn_client_cancel(t->ev, 0, 0, "the canopy TUI quit", CONNECT_MS);
        int st = 0, waited = 0;
        while (waitpid(o->run_pid, &st, WNOHANG) == 0 && waited < 10000) {
            usleep(50000);
            waited += 50;
            if (waited % 2000 == 0)
                fprintf(stderr, "canopy: still waiting for the tree to exit (%d s)...\n",
                        waited / 1000);
        }
        if (waited >= 10000) {
            fprintf(stderr, "canopy: the tree did not exit in 10 s: SIGKILL\n");
            kill(o->run_pid, SIGKILL);
            waitpid(o->run_pid, &st, 0);
        }
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        fprintf(stderr, "canopy: the tree exited (%s %d)\n", WIFEXITED(st) ? "status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    } else if (o->run_pid > 0 && !t->gone[0]) {
        fprintf(stderr, "canopy: detached; the tree (pid %d) runs on: canopy attach %s\n",
                o->run_pid, t->tree);
    } else if (t->gone[0]) {
        fprintf(stderr, "canopy: %s\n", t->gone);
    }
    stop(t);
    return status;
}
