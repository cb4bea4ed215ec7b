/*
 * canopy.c: the canopy command: global options and the command table.
 *
 * Every subcommand is one entry in cmd_table (tmux's cmd_entry is the
 * model): its name, usage, one-line summary, argument bounds and function.
 * `canopy --help`, `canopy help CMD` and `canopy CMD --help` are generated
 * from the table, so a command cannot exist without its help.
 *
 * Invariant: this file and the rest of ui/ use only the public headers
 * (include/), never the runtime's internals. Exit codes are in EXIT_TEXT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tui.h"

#define EXIT_TEXT                                                                                  \
    "exit status: 0 success; 1 the command failed (no such tree, permission\n"                    \
    "denied, the tree exited, no answer in time); 2 the command line was wrong;\n"               \
    "3 'canopy lint' found a problem.\n"

typedef struct cmd_entry cmd_entry_t;
struct cmd_entry {
    const char *name;
    const char *usage;   /* arguments after the name */
    const char *summary; /* one line for `canopy --help` */
    const char *help;    /* more lines for `canopy help CMD`, or NULL */
    int min_args, max_args;
    unsigned opts; /* OPT_* this command takes */
    int (*fn)(const cmd_entry_t *self, int argc, char **argv, const opts_t *o);
};

static int cmd_help(const cmd_entry_t *self, int argc, char **argv, const opts_t *o);
static int cmd_version(const cmd_entry_t *self, int argc, char **argv, const opts_t *o);

/* The subcommands in cli.c all take (argc, argv, opts). */
#define CLI(fn)                                                                                    \
    static int cmd_##fn(const cmd_entry_t *self, int argc, char **argv, const opts_t *o)           \
    {                                                                                              \
        (void)self;                                                                                \
        return cli_##fn(argc, argv, o);                                                            \
    }
CLI(ls)
CLI(tree)
CLI(routes)
CLI(ctx)
CLI(log)
CLI(dump)
CLI(lint)
CLI(cancel)
CLI(events)
CLI(tui)
CLI(run)
CLI(break)
CLI(bt)

#define TREE_TEXT                                                                                  \
    "TREE is a tree's name, NAME.PID, its root's pid, or its socket's path; it\n"                 \
    "may be left out when exactly one tree is running. ACTOR is an actor's id,\n"                \
    "name or path (root/sup-0/worker-3).\n"
#define TREE_HELP                                                                                  \
    TREE_TEXT "  --timeout MS  how long each actor has to answer (default 1000)\n"                \
              "  --json        print JSON instead of a table"

static const cmd_entry_t cmd_table[] = {
    {"help", "[COMMAND]", "show help for canopy or for one command", NULL, 0, 1, 0, cmd_help},
    {"version", "", "print canopy's version and wire protocol version", NULL, 0, 0, 0,
     cmd_version},
    {"ls", "[--json]", "list the running trees with their pid, actor count and age",
     "Stale sockets of trees that died without removing them are removed.", 0, 0, OPT_JSON,
     cmd_ls},
    {"tree", "[TREE] [--json]", "print the tree of actors with their pid, state and memory",
     TREE_HELP, 0, 1, OPT_JSON | OPT_TIMEOUT, cmd_tree},
    {"routes", "[TREE] [ACTOR] [--json]", "print each actor's routing table",
     "With one argument, a running tree's name is taken as TREE, anything else as\n"
     "an ACTOR of the only tree.\n" TREE_HELP,
     0, 2, OPT_JSON | OPT_TIMEOUT, cmd_routes},
    {"ctx", "[TREE] [ACTOR] [--json]",
     "print open calls, contexts and streams, and what each thread does",
     "Each row is one end of a call or context: its id (cid, as the caller\n"
     "numbered it), role, function, the actor at the other end, its phase and\n"
     "cancellation state; streams add their counters and backpressure.\n" TREE_HELP,
     0, 2, OPT_JSON | OPT_TIMEOUT, cmd_ctx},
    {"log", "[TREE] [-f] [--level L] [--actor A] [--json]", "print the tree's recent log records",
     "  -f, --follow  keep printing new records until interrupted\n"
     "  --level L     only records at level L or above (trace, debug, info,\n"
     "                cancel, warn, error)\n"
     "  --actor A     only records from actor A (a path or name) and below it\n" TREE_HELP,
     0, 1, OPT_JSON | OPT_FOLLOW | OPT_LEVEL | OPT_ACTOR | OPT_TIMEOUT, cmd_log},
    {"events", "[TREE] [--json]", "follow the tree's live events until interrupted",
     "Events: spawn, exit, ctx-open, ctx-started, ctx-closed, ctx-errored, cancel,\n"
     "stall and resume (a stream's sender blocked and unblocked), log, and\n"
     "dropped (this terminal fell behind; the tree never waits for it).\n" TREE_HELP,
     0, 1, OPT_JSON, cmd_events},
    {"lint", "[TREE] [--json]", "name what is hanging: stuck cancels, stalled streams, deadlocks",
     "Checks: stuck-cancel, stalled-stream, orphan-stream, unreaped, wait-for-cycle\n"
     "(docs/cli.md explains each). Exits 3 if any fires. A condition counts once it\n"
     "has lasted CANOPY_LINT_AFTER_MS (default 2000).\n" TREE_HELP,
     0, 1, OPT_JSON | OPT_TIMEOUT, cmd_lint},
    {"cancel", "[TREE] ACTOR|ACTOR/CID",
     "cancel an actor or one call or context, and wait until it is gone",
     "ACTOR/CID names a call or context by its cid on that actor (see 'canopy ctx').\n"
     "An actor is cancelled by its parent: SHUTDOWN, then SIGTERM after 1 s, then\n"
     "SIGKILL; cancelling the root cancels the whole tree. A context is cancelled\n"
     "by its caller, as the caller's code would. Progress is shown until it is\n"
     "gone or --timeout MS (default 10000) passes; exit 1 if it is still there.\n"
     "  --json        print {target, actor, call, done, ms} instead\n" TREE_TEXT,
     1, 2, OPT_TIMEOUT | OPT_JSON, cmd_cancel},
    {"attach", "[TREE] [--console]", "open the TUI on a running tree (--console: the line console)",
     "The TUI shows the tree, each actor's routes, contexts and streams, the\n"
     "tree's log, the debugger's console and the lints, live; F1 or ? lists its\n"
     "keys, q detaches and leaves the tree running (docs/tui.md). 'canopy' alone\n"
     "opens it on the only tree running.\n"
     "With --console, or when stdin or stdout is not a terminal, it is the\n"
     "debugger's line console instead: lock changes show as [lock] lines; lines\n"
     "typed go to the actor that holds the console, whose REPL answers ('help'\n"
     "lists its commands). Lines that start with ':' are the console's own:\n"
     ":queue, :skip, :release, :break ACTOR, :detach. Ctrl-D detaches.\n"
     "Either way, while a console is attached the root grants the console lock;\n"
     "without one, actors wait.\n" TREE_TEXT,
     0, 1, OPT_CONSOLE, cmd_tui},
    {"run", "[--debug] [--name NAME] -- PROG [ARGS...]",
     "start PROG as the root of a new tree and open the TUI on it",
     "PROG is any program that calls cn_run. It runs in its own session with\n"
     "stdin /dev/null; what it prints goes to the TUI's log view, never over the\n"
     "screen. When the tree exits, the TUI shows its last state and exit status\n"
     "until you quit. q asks whether to cancel the tree or leave it running.\n"
     "  --debug       debug mode (CANOPY_DEBUG=1): crashes and task errors stop\n"
     "                for the debugger\n"
     "  --name NAME   the tree's name (CANOPY_TREE), instead of the program's own",
     1, 64, OPT_DEBUG | OPT_NAME, cmd_run},
    {"break", "[TREE] ACTOR", "break into an actor: stop its threads and queue it for the console",
     "Every thread of the actor but its broker stops where it is, even in a\n"
     "busy loop or a deadlock, and the actor queues for the console lock; talk to\n"
     "it with 'canopy attach'. 'continue' at its prompt lets the threads go.\n" TREE_TEXT,
     1, 2, OPT_TIMEOUT, cmd_break},
    {"bt", "[TREE] [ACTOR] [--json]", "print the stack of every thread, without a debugger session",
     "Each actor stops each of its threads (not its broker) only for the moment\n"
     "its stack is read, and names the frames (file:line with debug information\n"
     "and addr2line). Next to each thread: what the runtime says it is doing.\n"
     "A thread that blocks the runtime's signal shows as 'no answer'. Each actor\n"
     "has 5000 ms to answer unless --timeout says otherwise.\n" TREE_HELP,
     0, 2, OPT_JSON | OPT_TIMEOUT, cmd_bt},
    {"dump", "[TREE] > bundle.json",
     "write the hang bundle (snapshot, stacks, lints, log tail) as JSON",
     "The bundle is always JSON; --json is accepted for uniformity.\n" TREE_HELP, 0, 1,
     OPT_TIMEOUT | OPT_JSON, cmd_dump},
};
#define NCMDS (sizeof(cmd_table) / sizeof(cmd_table[0]))

static const cmd_entry_t *cmd_find(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmd_table[i].name, name) == 0)
            return &cmd_table[i];
    return NULL;
}

static void usage_main(FILE *out)
{
    fprintf(out, "usage: canopy [--help] [--version] COMMAND [ARGS...]\n\n"
                 "canopy inspects and debugs trees of libcanopy actor processes.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(out, "  %-10s %s\n", cmd_table[i].name, cmd_table[i].summary);
    fprintf(out, "\nRun 'canopy help COMMAND' for one command's usage.\n\n%s", EXIT_TEXT);
}

static void usage_cmd(FILE *out, const cmd_entry_t *c)
{
    fprintf(out, "usage: canopy %s%s%s\n\n%s\n", c->name, *c->usage ? " " : "", c->usage,
            c->summary);
    if (c->help)
        fprintf(out, "\n%s\n", c->help);
}

static int cmd_help(const cmd_entry_t *self, int argc, char **argv, const opts_t *o)
{
    (void)self, (void)o;
    if (argc == 0) {
        usage_main(stdout);
        return 0;
    }
    const cmd_entry_t *c = cmd_find(argv[0]);
    if (c == NULL) {
        fprintf(stderr, "canopy: no command '%s'; run 'canopy --help' for the list\n", argv[0]);
        return EXIT_USAGE;
    }
    usage_cmd(stdout, c);
    return 0;
}

static int cmd_version(const cmd_entry_t *self, int argc, char **argv, const opts_t *o)
{
    (void)self, (void)argc, (void)argv, (void)o;
    printf("canopy %s (wire protocol %d)\n", cn_version_string(), CN_PROTOCOL_VERSION);
    return 0;
}

static const struct {
    const char *long_name, *short_name;
    unsigned bit;
    int takes_value;
} options[] = {
    {"--json", NULL, OPT_JSON, 0},         {"--follow", "-f", OPT_FOLLOW, 0},
    {"--level", NULL, OPT_LEVEL, 1},       {"--actor", NULL, OPT_ACTOR, 1},
    {"--timeout", NULL, OPT_TIMEOUT, 1},   {"--console", NULL, OPT_CONSOLE, 0},
    {"--debug", NULL, OPT_DEBUG, 0},       {"--name", NULL, OPT_NAME, 1},
};

/* Runs `c` after taking out its options (anywhere on the line, until
 * "--") and checking them and the argument count. */
static int cmd_exec(const cmd_entry_t *c, int argc, char **argv)
{
    opts_t o = {0};
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    int nargs = 0, rc = -1;
    for (int i = 0; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage_cmd(stdout, c);
            rc = 0;
            break;
        }
        if (strcmp(a, "--") == 0) {
            while (++i < argc)
                args[nargs++] = argv[i];
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            args[nargs++] = argv[i];
            continue;
        }
        size_t k = 0, n = sizeof(options) / sizeof(options[0]);
        const char *eq = strchr(a, '=');
        size_t alen = eq ? (size_t)(eq - a) : strlen(a);
        while (k < n && !((strlen(options[k].long_name) == alen &&
                           strncmp(a, options[k].long_name, alen) == 0) ||
                          (options[k].short_name && strcmp(a, options[k].short_name) == 0)))
            k++;
        if (k == n || !(c->opts & options[k].bit)) {
            fprintf(stderr, "canopy %s: unknown option '%s'\n", c->name, a);
            usage_cmd(stderr, c);
            rc = EXIT_USAGE;
            break;
        }
        const char *val = NULL;
        if (options[k].takes_value) {
            val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (val == NULL || *val == '\0') {
                fprintf(stderr, "canopy %s: %s needs a value\n", c->name, options[k].long_name);
                rc = EXIT_USAGE;
                break;
            }
        }
        switch (options[k].bit) {
        case OPT_JSON:
            o.json = 1;
            break;
        case OPT_FOLLOW:
            o.follow = 1;
            break;
        case OPT_LEVEL:
            o.level = val;
            break;
        case OPT_ACTOR:
            o.actor = val;
            break;
        case OPT_CONSOLE:
            o.console = 1;
            break;
        case OPT_DEBUG:
            o.debug = 1;
            break;
        case OPT_NAME:
            o.name = val;
            break;
        case OPT_TIMEOUT: {
            char *end;
            o.timeout_ms = strtol(val, &end, 10);
            if (*end || o.timeout_ms <= 0 || o.timeout_ms > 30000) {
                fprintf(stderr, "canopy %s: --timeout takes milliseconds, 1 to 30000\n",
                        c->name);
                rc = EXIT_USAGE;
            }
            break;
        }
        }
    }
    if (rc < 0 && (nargs < c->min_args || nargs > c->max_args)) {
        fprintf(stderr, "canopy %s: expected %s%d argument%s, got %d\n", c->name,
                c->min_args == c->max_args ? "" : (nargs < c->min_args ? "at least " : "at most "),
                nargs < c->min_args ? c->min_args : c->max_args,
                (nargs < c->min_args ? c->min_args : c->max_args) == 1 ? "" : "s", nargs);
        usage_cmd(stderr, c);
        rc = EXIT_USAGE;
    }
    if (rc < 0)
        rc = c->fn(c, nargs, args, &o);
    free(args);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        /* canopy alone, at a terminal, with one tree running: its TUI. */
        cn_tree_info_t one;
        size_t n = 0;
        if (isatty(0) && isatty(1) && cn_client_list(&one, 1, &n) == 0 && n == 1)
            return cmd_exec(cmd_find("attach"), 0, NULL);
        usage_main(stderr);
        if (n > 1)
            fprintf(stderr, "\n%zu trees are running: canopy attach TREE (canopy ls lists them)\n", n);
        return EXIT_USAGE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        return cmd_exec(cmd_find("help"), 0, NULL);
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0)
        return cmd_exec(cmd_find("version"), 0, NULL);
    if (a[0] == '-') {
        fprintf(stderr, "canopy: unknown option '%s'; run 'canopy --help'\n", a);
        return EXIT_USAGE;
    }
    const cmd_entry_t *c = cmd_find(a);
    if (c == NULL) {
        fprintf(stderr, "canopy: unknown command '%s'; run 'canopy --help' for the list\n", a);
        return EXIT_USAGE;
    }
    return cmd_exec(c, argc - 2, argv + 2);
}
