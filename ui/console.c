/*
 * console.c: `canopy attach`, the debugger's line console, and `canopy
 * break` (docs/debugger.md).
 *
 * The console is one connection in console mode (cn_client_console): the
 * root sends lock changes and the lock holder's output, and takes our
 * lines for the holder. Lines starting with ':' are the console's own
 * commands (:queue, :skip, :release, :break, :help, :detach). On a
 * terminal, libedit edits the line and keeps history, and output that
 * arrives while the user types is printed above the line being edited.
 * On a pipe, lines are read as they come, for scripts and tests.
 *
 * The prompt names the holder, "(root/sup-1/worker-3) ", as the REPL's
 * own would; with no holder it is "canopy> ".
 */
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <editline/readline.h>

#include "ui.h"

static struct {
    cn_client_t *c;
    const char *tree;
    int tty;
    int in_line; /* on_line runs: the cursor is on a fresh line, and
                    libedit still holds the line just entered */
    int done;
    uint32_t holder; /* the actor with the console, or 0 with holder_path "" */
    char holder_path[512];
    char prompt[560];
    char inbuf[8192]; /* a pipe's partial line */
    size_t inlen;
    int sent;            /* lines sent to the holder */
    int answered;        /* output came after the last line sent */
    int greeted;         /* output came since the holder got the console */
    int64_t granted_ms;  /* when it did, as heard */
    unsigned nwait;      /* actors waiting for the console, as last heard */
    int64_t attached_ms; /* when this console attached */
    int64_t drain_until; /* a pipe ended: its answers are waited for until then */
    int64_t quiet_since; /* the last output while draining */
} con;

/* Piped lines go out at once and their answers come later: at the end of
 * the input the console stays until the last line has had output and the
 * output has then been quiet this long (at most DRAIN_MAX_MS), rather than
 * leave before the answers. */
#define DRAIN_QUIET_MS 500
#define DRAIN_MAX_MS 10000
/* A pipe's lines are for an actor that holds the console. While none does
 * but one waits (the root grants it once a console attaches), they are
 * held back, up to PIPE_HOLD_MS after attaching; with nobody waiting, for
 * PIPE_SETTLE_MS, the time the queue's state takes to arrive. Once one
 * holds it, they wait for its greeting (up to PIPE_SETTLE_MS), so that
 * the greeting is not taken for their answer. */
#define PIPE_HOLD_MS 10000
#define PIPE_SETTLE_MS 1000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a pipe's lines wait for a holder now. */
static int pipe_held(void)
{
    int64_t now = mono_ms(), since = now - con.attached_ms;
    if (con.tty)
        return 0;
    if (con.holder_path[0])
        return !con.greeted && now - con.granted_ms < PIPE_SETTLE_MS;
    return since < PIPE_HOLD_MS && (con.nwait > 0 || since < PIPE_SETTLE_MS);
}

static void set_prompt(void)
{
    if (con.holder_path[0])
        snprintf(con.prompt, sizeof(con.prompt), "(%s) ", con.holder_path);
    else
        snprintf(con.prompt, sizeof(con.prompt), "canopy> ");
    if (con.tty)
        rl_set_prompt(con.prompt);
}

/* Prints text while the user may be typing: above the line being edited. */
static void print_above(const char *text, size_t len)
{
    /* Within on_line no line is being edited: a redraw would show the
     * line just entered again, after the answer (":queue" twice). */
    int redraw = con.tty && !con.in_line;
    if (redraw)
        fputs("\r\033[K", stdout);
    fwrite(text, 1, len, stdout);
    if (len && text[len - 1] != '\n')
        fputc('\n', stdout);
    fflush(stdout);
    if (redraw)
        rl_forced_update_display();
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    print_above(buf, ui_snlen(n, sizeof(buf)));
}

static void on_event(const cn_event_t *ev)
{
    if (strcmp(ev->kind, "console") == 0) {
        print_above(ev->detail ? ev->detail : "", ev->detail ? ev->detail_len : 0);
        con.answered = con.greeted = 1;
        return;
    }
    if (strcmp(ev->kind, "error") == 0) {
        note("canopy: %s", ev->detail ? ev->detail : "refused");
        return;
    }
    if (strcmp(ev->kind, "lock") != 0 || ev->op == NULL)
        return;
    con.nwait = ev->waiting;
    int gets = !strcmp(ev->op, "granted") || !strcmp(ev->op, "holding");
    int loses = !strcmp(ev->op, "released") || !strcmp(ev->op, "skipped");
    if (gets) {
        con.greeted = 0;
        con.granted_ms = mono_ms();
        con.holder = ev->actor;
        snprintf(con.holder_path, sizeof(con.holder_path), "%s", ev->path ? ev->path : "?");
    } else if (loses && ev->actor == con.holder) {
        con.holder = 0;
        con.holder_path[0] = '\0';
    }
    note("[lock] %s", ev->detail ? ev->detail : ev->op);
    /* Said with a grant only: at a release the count still holds the
     * waiter that the console passes to next, which then "more" is not. */
    if (ev->waiting && gets)
        note("[lock] %u more waiting (:queue lists them)", ev->waiting);
    set_prompt();
    if (con.tty) {
        fputs("\r\033[K", stdout);
        rl_forced_update_display();
    }
}

/* How long ago a lock entry's time key (granted_us, since_us) was, as
 * the tool writes ages. */
static const char *lock_age(const cn_snapshot_t *s, const msgpack_object *o, const char *k,
                            char *buf, size_t n)
{
    const msgpack_object *v = cn_msgpack_get(o, k);
    uint64_t t = v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
    return ui_fmt_age(buf, n, t && s->now_us > t ? s->now_us - t : 0);
}

/* :queue: the root's "lock" entry, from a snapshot. */
static void show_queue(void)
{
    opts_t o = {0};
    cn_snapshot_t *s;
    if (ui_snapshot_of(con.tree, &o, &s) < 0)
        return;
    const msgpack_object *lock = s->nactors ? cn_msgpack_get(s->actors[0].raw, "lock") : NULL;
    char buf[4096];
    size_t n = 0;
    const msgpack_object *h = lock ? cn_msgpack_get(lock, "holder") : NULL;
    const msgpack_object *w = lock ? cn_msgpack_get(lock, "waiters") : NULL;
#define FIELD(o, k) (cn_msgpack_get(o, k) && cn_msgpack_get(o, k)->type == MSGPACK_OBJECT_STR ? (int)cn_msgpack_get(o, k)->via.str.size : 1), \
                    (cn_msgpack_get(o, k) && cn_msgpack_get(o, k)->type == MSGPACK_OBJECT_STR ? cn_msgpack_get(o, k)->via.str.ptr : "-")
    char age[16];
    if (h && h->type == MSGPACK_OBJECT_MAP)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "holder:  %.*s: %.*s (for %s)\n",
                              FIELD(h, "path"), FIELD(h, "reason"),
                              lock_age(s, h, "granted_us", age, sizeof(age)));
    else
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "holder:  nobody\n");
    size_t nw = w && w->type == MSGPACK_OBJECT_ARRAY ? w->via.array.size : 0;
    for (size_t i = 0; i < nw && n < sizeof(buf) - 256; i++) {
        const msgpack_object *x = &w->via.array.ptr[i];
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "waiting: %zu. %.*s: %.*s (for %s)\n",
                              i + 1, FIELD(x, "path"), FIELD(x, "reason"),
                              lock_age(s, x, "since_us", age, sizeof(age)));
    }
    if (nw == 0)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "waiting: nobody\n");
#undef FIELD
    print_above(buf, n);
    cn_snapshot_free(s);
}

static void do_break(const char *which)
{
    opts_t o = {0};
    cn_snapshot_t *s;
    const cn_snap_actor_t *a;
    if (ui_snapshot_of(con.tree, &o, &s) < 0)
        return;
    if (ui_pick_actor(s, which, &a) == 0 && a)
        cn_client_break(con.c, a->id, CONNECT_MS); /* a refusal comes as an event */
    cn_snapshot_free(s);
}

static const char *const console_help =
    "Lines go to the actor that holds the console (its REPL: try 'help').\n"
    "Console commands:\n"
    "  :queue          who holds the console, who waits, why and since when\n"
    "  :skip           send the holder to the back of the queue; the next one gets it\n"
    "  :release        make the holder continue and take the console from it\n"
    "  :break ACTOR    break into an actor (id, name or path)\n"
    "  :detach, :q     leave; the tree keeps running (so does Ctrl-D)\n"
    "Ctrl-C while an actor has the console goes to the root: it interrupts the\n"
    "REPL, and a second one within 2 s kills the whole tree.\n";

static void on_tty_line(char *line);

/* A line typed or piped in, NULL at the end of input; the caller keeps
 * the line (and frees it, if it must). */
static void on_line(char *line)
{
    if (line == NULL) { /* Ctrl-D */
        con.done = 1;
        if (con.tty)
            rl_callback_handler_remove();
        return;
    }
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (con.tty && len)
        add_history(line);
    if (!con.tty) { /* a pipe: show what is being typed, as a terminal would */
        printf("%s%s\n", con.prompt, line);
        fflush(stdout);
    }
    const char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == ':') {
        char cmd[32] = "", arg[256] = "";
        (void)sscanf(p + 1, "%31s %255s", cmd, arg); /* what is missing stays "" */
        if (!strcmp(cmd, "queue"))
            show_queue();
        else if (!strcmp(cmd, "skip") || !strcmp(cmd, "release"))
            cn_client_lock_op(con.c, cmd, CONNECT_MS);
        else if (!strcmp(cmd, "break") && arg[0])
            do_break(arg);
        else if (!strcmp(cmd, "detach") || !strcmp(cmd, "q") || !strcmp(cmd, "quit"))
            con.done = 1;
        else
            print_above(console_help, strlen(console_help));
    } else if (con.holder == 0 && con.holder_path[0] == '\0') {
        if (*p)
            note("nobody holds the console; ':queue' shows who waits, ':help' the commands");
    } else if (*p == '\0') {
        /* a blank line: the REPL has nothing to answer, so nothing is sent */
    } else if (cn_client_console_send(con.c, line, len, CONNECT_MS) < 0) {
        note("canopy: %s", cn_client_error());
        con.done = 1;
    } else {
        con.sent++;
        con.answered = 0;
    }
    if (con.tty) {
        /* A fresh handler: libedit would otherwise redraw the line just
         * entered as if still being typed when output arrives. */
        rl_callback_handler_remove();
        if (!con.done)
            rl_callback_handler_install(con.prompt, on_tty_line);
    }
}

/* libedit's callback: the line was malloc'd for us to free. */
static void on_tty_line(char *line)
{
    con.in_line = 1;
    on_line(line);
    con.in_line = 0;
    free(line);
}

/* A pipe: whole lines from what is available. */
static void read_pipe(void)
{
    ssize_t n = read(0, con.inbuf + con.inlen, sizeof(con.inbuf) - 1 - con.inlen);
    if (n <= 0) {
        if (con.sent == 0) {
            con.done = 1;
            return;
        }
        con.drain_until = mono_ms() + DRAIN_MAX_MS; /* see DRAIN_QUIET_MS */
        con.quiet_since = mono_ms();
        return;
    }
    con.inlen += (size_t)n;
    char *start = con.inbuf, *nl;
    while (!con.done && (nl = memchr(start, '\n', con.inlen - (size_t)(start - con.inbuf)))) {
        *nl = '\0';
        on_line(start);
        start = nl + 1;
    }
    con.inlen -= (size_t)(start - con.inbuf);
    memmove(con.inbuf, start, con.inlen);
    if (con.inlen == sizeof(con.inbuf) - 1) { /* a line too long: take it as it is */
        con.inbuf[con.inlen] = '\0';
        on_line(con.inbuf);
        con.inlen = 0;
    }
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

int cli_attach(int argc, char **argv, const opts_t *o)
{
    (void)o;
    con.tree = argc ? argv[0] : NULL;
    cn_tree_info_t t;
    int rc = ui_find_tree(con.tree, &t);
    if (rc < 0)
        return EXIT_FAIL;
    if ((rc = cn_client_connect(t.path, &con.c, CONNECT_MS)) < 0 ||
        (rc = cn_client_console(con.c, CN_EVENTS_NONE, CONNECT_MS)) < 0) {
        ui_say_error(t.name, rc);
        cn_client_close(con.c);
        return EXIT_FAIL;
    }
    con.tree = t.path;
    con.tty = isatty(0) && isatty(1);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint; /* no SA_RESTART: poll returns */
    sigaction(SIGINT, &sa, NULL);
    con.attached_ms = mono_ms();
    printf("attached to %s (root pid %d) as its debugger console; ':help' for commands,\n"
           "Ctrl-D to detach (the tree keeps running).\n",
           cn_client_tree(con.c), cn_client_root_pid(con.c));
    fflush(stdout);
    set_prompt();
    if (con.tty)
        rl_callback_handler_install(con.prompt, on_tty_line);
    int status = 0;
    while (!con.done) {
        /* stdin is left out once a pipe has ended (poll would say so at once) */
        int held = pipe_held();
        struct pollfd p[2] = {{con.drain_until || held ? -1 : 0, POLLIN, 0},
                              {cn_client_fd(con.c), POLLIN, 0}};
        int r = poll(p, 2, con.drain_until || held ? 100 : 1000);
        if (interrupted) {
            interrupted = 0;
            if (con.tty) { /* as a shell does: drop the line being typed */
                rl_replace_line("", 0);
                fputs("^C\n", stdout);
                rl_forced_update_display();
            }
            /* With an actor at the console, Ctrl-C is the root's, as if
             * typed at its terminal: the REPL is interrupted, and a second
             * within 2 s kills the tree (docs/debugger.md). */
            if (con.holder_path[0] && kill(cn_client_root_pid(con.c), SIGINT) < 0)
                note("canopy: cannot pass Ctrl-C to the root (pid %d): %s",
                     cn_client_root_pid(con.c), strerror(errno));
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        for (;;) { /* everything buffered, not just what poll saw */
            cn_event_t ev;
            rc = cn_client_event(con.c, &ev, 0);
            if (rc == CN_ETIMEDOUT)
                break;
            if (rc < 0) {
                note("canopy: the tree went away: %s", cn_client_error());
                con.done = 1;
                status = EXIT_FAIL;
                break;
            }
            on_event(&ev);
            con.quiet_since = mono_ms();
        }
        if (con.drain_until &&
            ((con.answered && mono_ms() - con.quiet_since >= DRAIN_QUIET_MS) ||
             mono_ms() >= con.drain_until))
            con.done = 1;
        if (!con.done && (p[0].revents & (POLLIN | POLLHUP))) {
            if (con.tty)
                rl_callback_read_char();
            else
                read_pipe();
        }
    }
    if (con.tty) {
        rl_callback_handler_remove();
        fputc('\n', stdout);
    }
    cn_client_close(con.c);
    return status;
}

int cli_break(int argc, char **argv, const opts_t *o)
{
    /* The actor is required, so a lone argument is the actor (as in
     * cancel), even when a tree has that name too: `canopy break pipeline`
     * breaks into the root of the one tree called pipeline. */
    const char *which = argc >= 1 ? argv[argc - 1] : NULL;
    const char *tree = argc >= 2 ? argv[0] : ui_tree_of_path(which);
    if (which == NULL) {
        fprintf(stderr, "canopy break: name the actor to break into (see 'canopy tree')\n");
        return EXIT_USAGE;
    }
    cn_snapshot_t *s;
    const cn_snap_actor_t *a;
    if (ui_snapshot_of(tree, o, &s) < 0)
        return EXIT_FAIL;
    if (ui_pick_actor(s, which, &a) < 0) {
        cn_snapshot_free(s);
        return EXIT_FAIL;
    }
    cn_tree_info_t t;
    cn_client_t *c = NULL;
    int rc = cn_client_find(tree, &t);
    if (rc == 0)
        rc = cn_client_connect(t.path, &c, CONNECT_MS);
    if (rc == 0)
        rc = cn_client_break(c, a->id, CONNECT_MS);
    if (rc < 0) {
        fprintf(stderr, "canopy: cannot break into %s: %s\n", a->path ? a->path : "?",
                cn_client_error());
    } else {
        printf("%s (actor %u, pid %d) waits for the console, and stops once it has it; "
               "'canopy attach %s' to talk to it\n",
               a->path ? a->path : "?", a->id, a->pid, s->tree);
    }
    cn_snapshot_free(s);
    cn_client_close(c);
    return rc < 0 ? EXIT_FAIL : 0;
}
