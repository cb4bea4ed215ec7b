/*
 * tui.c: the canopy TUI's loop and state (docs/tui.md). The model and
 * the views are in tui.h; the screen, the keys and the snapshot worker in
 * tui_draw.c, tui_keys.c and tui_snap.c (tui_int.h).
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
 * Every key is one entry in `tui_keys` (tui_keys.c), which also makes the
 * footer and the help overlay.
 */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tui_int.h"

const view_t *const views[V_MAX] = {&view_tree, &view_routes, &view_ctx,
                                    &view_log,  &view_console, &view_lints};

/* ===========================================================================
 * The TUI's state
 */



void say(tui_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->status, sizeof(t->status), fmt, ap);
    va_end(ap);
    t->status_until = now_ms() + STATUS_MS;
    t->dirty = 1;
}

const trow_t *sel_row(tui_t *t)
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
static void reselect(tui_t *t, int v, uint32_t actor, uint64_t cid, uint64_t key, int had)
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
        if (r->v[i].actor == actor && r->v[i].cid == cid && (v == V_TREE || r->v[i].key == key)) {
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
void build(tui_t *t)
{
    uint64_t local = t->gone_us ? t->gone_us : wall_us();
    if (t->m.snap) /* ages move on between snapshots, until the tree has gone */
        t->m.now_us = local > t->m.snap->now_us ? local : t->m.snap->now_us;
    int v = t->view;
    rows_t *r = &t->rows[v];
    int had = t->sel[v] >= 0 && (size_t)t->sel[v] < r->n;
    uint32_t actor = had ? r->v[t->sel[v]].actor : 0;
    uint64_t cid = had ? r->v[t->sel[v]].cid : 0, key = had ? r->v[t->sel[v]].key : 0;
    rows_clear(r);
    t->m.cols = COLS;
    views[v]->build(&t->m, r);
    reselect(t, v, actor, cid, key, had);
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

/* The tree has gone: the screen keeps its last state, and says so at
 * once, over any message of the moment. */
static void set_gone(tui_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_gone(tui_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->gone, sizeof(t->gone), fmt, ap);
    va_end(ap);
    t->gone_us = wall_us();
    t->status_until = 0;
    t->need_build = 1;
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
        snprintf(t->ev_why, sizeof(t->ev_why), "the tree has gone: %s", cn_client_error());
        if (t->o->run_pid <= 0)
            set_gone(t, "%s", t->ev_why);
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
        if (t->ev_lost && now_ms() - t->ev_lost > 2000) /* alive, but not talking */
            set_gone(t, "%s", t->ev_why);
        return;
    }
    t->run_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (WIFEXITED(st))
        set_gone(t, "the tree exited with status %d", WEXITSTATUS(st));
    else
        set_gone(t, "the tree died of signal %d", WTERMSIG(st));
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
    (void)setlocale(LC_ALL, ""); /* if the locale is unknown, curses draws in ASCII */
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
    /* Home and End as terminals other than TERM's own send them (tmux and
     * screen send ESC [1~ and [4~ whatever TERM says; rxvt [7~ and [8~):
     * unknown to TERM's entry, they would arrive as Esc and characters,
     * and the "1" would switch views. */
    static const struct {
        const char *seq;
        int key;
    } extra_keys[] = {{"\033[1~", KEY_HOME}, {"\033[4~", KEY_END}, {"\033[7~", KEY_HOME},
                      {"\033[8~", KEY_END},  {"\033[H", KEY_HOME},  {"\033[F", KEY_END},
                      {"\033OH", KEY_HOME},  {"\033OF", KEY_END}};
    for (size_t i = 0; i < sizeof(extra_keys) / sizeof(extra_keys[0]); i++)
        if (key_defined(extra_keys[i].seq) == 0)
            define_key(extra_keys[i].seq, extra_keys[i].key);
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
        /* Events read from the socket but not yet taken (read_events
         * stops at EVENTS_PER_TURN) are no longer the socket's to report:
         * a burst's tail would wait for the tree's next event. */
        int pending = feed && cn_client_pending(t->ev);
        if (timeout < 0 || pending)
            timeout = 0;
        struct pollfd p[3] = {{0, POLLIN, 0}, {feed ? cn_client_fd(t->ev) : -1, POLLIN, 0},
                              {t->wake[0], POLLIN, 0}};
        poll(p, 3, timeout);
        int ch;
        while ((ch = getch()) != ERR)
            on_key(t, ch == '\r' ? '\n' : ch);
        if ((p[1].revents || pending) && feed) {
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
    if (t->quit_note[0])
        fprintf(stderr, "%s\n", t->quit_note);
    int status = t->run_status;
    if (o->run_pid > 0 && !t->gone[0] && !t->detach) {
        fprintf(stderr, "canopy: cancelling the tree (pid %d)...\n", o->run_pid);
        cn_client_cancel(t->ev, 0, 0, "the canopy TUI quit", CONNECT_MS);
        int st = 0, waited = 0, released = 0;
        while (waitpid(o->run_pid, &st, WNOHANG) == 0 && waited < 10000) {
            /* An actor in the debugger, or queued for it, shuts down only
             * when its session ends (docs/debugger.md), and this was the
             * console: the user asked for the tree to stop, so each session
             * is ended the way :release ends it. */
            if (t->ev && cn_client_lock_op(t->ev, "release", 500) == 0 && released++ == 0 &&
                (t->m.has_holder || t->m.nwaiters))
                fprintf(stderr, "canopy: ending the tree's debugger sessions (:release)\n");
            cn_event_t ev;
            while (t->ev && cn_client_event(t->ev, &ev, 0) == 0)
                ; /* the feed is not read any more: keep its socket drained */
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
