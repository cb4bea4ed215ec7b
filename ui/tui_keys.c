/*
 * tui_keys.c: the TUI's keys (tui_int.h): the actions, the key table
 * (which also makes the footer and the help), the input line of the
 * console and the filter, the questions, and the mouse.
 */
#include <curses.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>

#include "tui_int.h"
/* ===========================================================================
 * Actions
 */

void set_view(tui_t *t, int v)
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
    t->help_scroll = 0;
    t->dirty = 1;
}

/* With the help open: the keys that scroll it (when it does not fit, at
 * 80x24 say) do; any other closes it. draw_help keeps the scroll in
 * range. */
static void help_key(tui_t *t, int ch)
{
    int page = LINES - 6 > 1 ? LINES - 6 : 1;
    switch (ch) {
    case KEY_DOWN:
    case 'j':
        t->help_scroll++;
        break;
    case KEY_UP:
    case 'k':
        t->help_scroll--;
        break;
    case KEY_NPAGE:
    case ' ':
        t->help_scroll += page;
        break;
    case KEY_PPAGE:
        t->help_scroll -= page;
        break;
    case KEY_HOME:
        t->help_scroll = 0;
        break;
    case KEY_END:
        t->help_scroll = 1 << 20;
        break;
    default:
        t->help = 0;
    }
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
        if (r == NULL || (!r->has_actor && t->view != V_ROUTES))
            return;
        if (model_actor(&t->m, r->actor) == NULL) {
            const cn_snap_child_t *c = model_exited(&t->m, r->actor);
            if (c)
                say(t, "%s (actor %u) has exited (%s)", c->name ? c->name : "?", c->id,
                    c->status ? c->status : "exited");
            else
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
    if (s == NULL || s[0] == NULL) { /* no orders to go through */
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

/* When the keys' target is not a live actor: if the selected row is a
 * child that has exited, says so (there is nothing to act on), else asks
 * for a selection. */
static void say_no_target(tui_t *t, const char *verb, const char *ask_for)
{
    const trow_t *r = sel_row(t);
    const cn_snap_child_t *c = r ? model_exited(&t->m, r->actor) : NULL;
    if (c)
        say(t, "%s: %s (actor %u) has exited (%s): there is nothing to %s", verb,
            c->name ? c->name : "?", c->id, c->status ? c->status : "exited", verb);
    else
        say(t, "%s: select %s first", verb, ask_for);
}

static void break_actor(tui_t *t, const cn_snap_actor_t *a)
{
    if (cn_client_break(t->ev, a->id, CONNECT_MS) < 0)
        say(t, "break %s: %s", a->path, cn_client_error());
    else
        say(t, "break sent to %s: it queues for the console (5)", a->path);
}

static void act_break(tui_t *t, int ch)
{
    (void)ch;
    const cn_snap_actor_t *a = target(t);
    if (a == NULL)
        say_no_target(t, "break", "an actor");
    else
        break_actor(t, a);
}

/* :break ACTOR in the console view: an id, a name or a path. */
static void console_break(tui_t *t, const char *which)
{
    const cn_snap_actor_t *a = NULL;
    char why[512];
    if (*which == '\0')
        say(t, ":break needs an actor: its id, name or path");
    else if (t->m.snap == NULL)
        say(t, ":break: no snapshot of the tree yet");
    else if (ui_find_actor(t->m.snap, which, "view 1 lists them", &a, why, sizeof(why)) < 0)
        say(t, ":break: %s", why);
    else
        break_actor(t, a);
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
        say_no_target(t, "cancel", "an actor or a context");
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
    if (a == NULL) {
        say_no_target(t, "kill", "an actor");
        return;
    }
    if (a->pid <= 0) { /* an unresponsive one's is known from its parent */
        say(t, "kill: the pid of %s is not known (it did not answer)", a->path ? a->path : "?");
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

/* Leaving the tree running with an actor in the debugger: it stays
 * stopped until a console continues it, and the tree may be waiting on
 * it. Asks, and returns 1; 0 if no actor holds the console. */
static int ask_leave(tui_t *t)
{
    if (!t->m.has_holder || t->gone[0])
        return 0;
    ask(t, Q_LEAVE, "quit: %s is in the debugger and stays stopped. y: continue it first, "
                    "n: leave it stopped, Esc: stay", t->m.holder.path);
    return 1;
}

static void act_quit(tui_t *t, int ch)
{
    (void)ch;
    if (t->o->run_pid > 0 && !t->gone[0]) {
        ask(t, Q_QUIT, "quit: cancel the tree? y: cancel it and wait, n: leave it running, "
                       "Esc: stay");
        return;
    }
    if (!ask_leave(t))
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



const tkey_t tui_keys[] = {
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
                                      "or with an actor in the debugger, asks)",
     K_NOCON, -1, act_quit},
    {KEY_F(10), 0, NULL, NULL, NULL, K_ALL, -1, act_quit},
};
const size_t tui_nkeys = sizeof(tui_keys) / sizeof(tui_keys[0]);



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

/* One line of :queue: who, why, for how long. */
static void queue_line(tui_t *t, const char *what, const tlock_t *l)
{
    char age[16] = "?", text[600];
    if (l->since_us && l->since_us <= t->m.now_us)
        ui_fmt_age(age, sizeof(age), t->m.now_us - l->since_us);
    int n = snprintf(text, sizeof(text), "%s %s: %s (for %s)\n", what, l->path, l->reason, age);
    model_con_add(&t->m, text, ui_snlen(n, sizeof(text)));
}

static void console_note(tui_t *t, const char *text)
{
    model_con_add(&t->m, text, strlen(text));
}

/* A line starting with ':' is the console's own, as in the line console
 * (canopy attach --console): never sent to the holder. */
static void console_cmd(tui_t *t, const char *p)
{
    char cmd[32] = "", arg[256] = "";
    (void)sscanf(p + 1, "%31s %255s", cmd, arg);
    if (!strcmp(cmd, "break")) {
        console_break(t, arg);
    } else if (!strcmp(cmd, "skip") || !strcmp(cmd, "release")) {
        if (cn_client_lock_op(t->ev, cmd, CONNECT_MS) < 0)
            say(t, ":%s: %s", cmd, cn_client_error());
    } else if (!strcmp(cmd, "queue")) {
        if (t->m.has_holder)
            queue_line(t, "holder: ", &t->m.holder);
        else
            console_note(t, "holder:  nobody\n");
        char what[32];
        for (size_t i = 0; i < t->m.nwaiters; i++) {
            snprintf(what, sizeof(what), "waiting: %zu.", i + 1);
            queue_line(t, what, &t->m.waiters[i]);
        }
        if (t->m.nwaiters == 0)
            console_note(t, "waiting: nobody\n");
    } else {
        console_note(t, "[canopy] lines go to the actor that holds the console (its REPL: try "
                        "'help'); console commands:\n"
                        "  :queue     who holds the console, who waits, why and since when\n"
                        "  :skip      send the holder to the back of the queue; the next one "
                        "gets it\n"
                        "  :release   make the holder continue and take the console from it\n"
                        "  :break A   break into actor A (id, name or path); b breaks into the\n"
                        "             selected actor in the other views; Esc leaves\n");
    }
}

static void console_line(tui_t *t)
{
    char *line = t->in;
    const char *p = line + strspn(line, " \t");
    hist_add(t, line);
    model_con_add(&t->m, "", 0);
    if (*p == ':') {
        console_cmd(t, p);
    } else if (!t->m.has_holder) {
        say(t, "nobody holds the console: b breaks into the selected actor");
    } else {
        char echo[600];
        int n = snprintf(echo, sizeof(echo), "(%s) %s\n", t->m.holder.path, line);
        model_con_add(&t->m, echo, ui_snlen(n, sizeof(echo)));
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
        t->detach = !yes;
        if (yes || !ask_leave(t)) /* left running: and the actor in the debugger? */
            t->quit = 1;
        return;
    }
    if (q == Q_LEAVE) {
        /* continue it the way the console's :release does */
        if (yes && cn_client_lock_op(t->ev, "release", CONNECT_MS) < 0)
            snprintf(t->quit_note, sizeof(t->quit_note), "canopy: could not continue %s: %s",
                     t->m.holder.path, cn_client_error());
        else if (yes)
            snprintf(t->quit_note, sizeof(t->quit_note), "canopy: %s continues",
                     t->m.holder.path);
        else
            snprintf(t->quit_note, sizeof(t->quit_note),
                     "canopy: %s stays stopped in the debugger; 'canopy attach %s' to continue it",
                     t->m.holder.path, t->tree);
        t->quit = 1;
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

void on_key(tui_t *t, int ch)
{
    if (ch == KEY_RESIZE) { /* columns that widen are laid out again */
        t->need_build = 1;
        t->dirty = 1;
        return;
    }
    if (ch == KEY_MOUSE) {
        on_mouse(t);
        return;
    }
    if (t->help && ch != KEY_MOUSE) {
        help_key(t, ch);
        return;
    }
    if (t->q) {
        if (ch == 'y' || ch == 'Y')
            answer(t, 1);
        else if (ch == 'n' || ch == 'N' || (ch != 27 && t->q != Q_QUIT && t->q != Q_LEAVE))
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
    for (size_t i = 0; i < tui_nkeys; i++) {
        const tkey_t *k = &tui_keys[i];
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

