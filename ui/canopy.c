/*
 * canopy.c: the canopy command: global options and the command table.
 *
 * Every subcommand is one entry in cmd_table (tmux's cmd_entry is the
 * model): its name, arguments, one-line summary, help, argument bounds,
 * the options it takes and its function; every option is one entry in
 * options[], with its help. `canopy --help`, `canopy help CMD`,
 * `canopy CMD --help` and the COMMANDS, OPTIONS and EXIT STATUS sections of
 * the man page (`canopy help --man`, spliced into docs/canopy.1 and checked
 * by tests/test_man.sh) are all generated from these tables, so a command
 * or an option cannot exist without its help.
 *
 * Invariant: this file and the rest of ui/ use only the public headers
 * (include/), never the runtime's internals. Exit codes are in exit_codes[].
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tui.h"

#define PAGE_WIDTH 80 /* every page of help fits it */
#define OPT_COLUMN 18 /* where an option's help starts in `canopy help CMD` */

static const struct {
    int code;
    const char *meaning;
} exit_codes[] = {
    {0, "success"},
    {EXIT_FAIL, "the command failed: no such tree or actor, permission denied, the tree "
                "exited, no answer in time"},
    {EXIT_USAGE, "the command line was wrong: unknown command or option, bad value, wrong "
                 "number of arguments"},
    {EXIT_LINTS, "'canopy lint' found a problem"},
};

/* Every option any command takes. A command says which it takes in its
 * entry's opts, and may word one's help its own way in its entry's docs. */
static const struct opt_def {
    const char *long_name, *short_name;
    unsigned bit;
    const char *arg; /* the value's name, or NULL: a flag */
    const char *doc; /* its help; NULL: hidden */
} options[] = {
    {"--json", NULL, OPT_JSON, NULL, "print JSON instead of a table"},
    {"--follow", "-f", OPT_FOLLOW, NULL, "keep printing new records until interrupted"},
    {"--level", NULL, OPT_LEVEL, "L",
     "only records at level L or above (trace, debug, info, cancel, warn, error)"},
    {"--actor", NULL, OPT_ACTOR, "A", "only records from actor A (a path or name) and below it"},
    {"--timeout", NULL, OPT_TIMEOUT, "MS",
     "time each actor has to answer: 1 to 30000 ms (default 1000)"},
    {"--console", NULL, OPT_CONSOLE, NULL, "the debugger's line console instead of the TUI"},
    {"--debug", NULL, OPT_DEBUG, NULL,
     "debug mode (CANOPY_DEBUG=1): crashes and task errors stop for the debugger"},
    {"--name", NULL, OPT_NAME, "NAME",
     "the tree's name (CANOPY_TREE), instead of the program's own"},
    {"--man", NULL, OPT_MAN, NULL, NULL},
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

/* An option's help for one command, where it differs from options[]'s. */
typedef struct opt_doc {
    unsigned bit;
    const char *doc;
} opt_doc_t;
#define DOCS(...) ((const opt_doc_t[]){__VA_ARGS__, {0, NULL}})

typedef struct cmd_entry cmd_entry_t;
struct cmd_entry {
    const char *name;
    const char *args;    /* the arguments after the options, for the usage line */
    const char *summary; /* one line for `canopy --help` */
    const char *help;    /* paragraphs (a blank line between) for `canopy help CMD`, or NULL */
    int names;           /* NAMES_*: `canopy help CMD` says what TREE and ACTOR are */
    int min_args, max_args;
    unsigned opts;         /* OPT_* this command takes */
    const opt_doc_t *docs; /* its own help for some of them, or NULL */
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

/* What TREE and ACTOR are: after the help of every command that takes
 * them (its entry's names), and once in the man page. */
enum { NAMES_TREE = 1, NAMES_ACTOR = 2 };
#define TREE_TEXT                                                                                  \
    "TREE is a tree's name, NAME.PID, its root's pid, or its socket's path; it\n"                  \
    "may be left out when exactly one tree is running."
#define ACTOR_TEXT                                                                                 \
    "ACTOR is an actor's id, name or path (root/sup-0/worker-3); a path names its\n"               \
    "tree too, so TREE may be left out when another tree is running."
#define ONE_ARG_TEXT                                                                               \
    "With one argument, a running tree's name is taken as TREE, anything else as\n"                \
    "an ACTOR: of the tree its path begins with, or of the only tree."
#define STACKS_TIMEOUT_DOC "time each actor has to answer: 1 to 30000 ms (default 5000)"

static const cmd_entry_t cmd_table[] = {
    {.name = "help",
     .args = "[COMMAND]",
     .summary = "show help for canopy or for one command",
     .help = "With a COMMAND: its usage, what it does and its options, as\n"
             "'canopy COMMAND --help' prints them.",
     .max_args = 1,
     .opts = OPT_MAN,
     .fn = cmd_help},
    {.name = "version",
     .args = "",
     .summary = "print canopy's version and wire protocol version",
     .fn = cmd_version},
    {.name = "ls",
     .args = "",
     .summary = "list the running trees with their pid, actor count and age",
     .help = "Stale sockets of trees that died without removing them are removed.",
     .opts = OPT_JSON,
     .fn = cmd_ls},
    {.name = "tree",
     .args = "[TREE]",
     .summary = "print the tree of actors with their pid, state and memory",
     .help = "States: starting, running, cancelling, unresponsive; debugger while it\n"
             "holds the debugger's console, lock-wait while it waits for it.",
     .names = NAMES_TREE,
     .max_args = 1,
     .opts = OPT_JSON | OPT_TIMEOUT,
     .fn = cmd_tree},
    {.name = "routes",
     .args = "[TREE] [ACTOR]",
     .summary = "print each actor's routing table",
     .help = ONE_ARG_TEXT,
     .names = NAMES_TREE | NAMES_ACTOR,
     .max_args = 2,
     .opts = OPT_JSON | OPT_TIMEOUT,
     .fn = cmd_routes},
    {.name = "ctx",
     .args = "[TREE] [ACTOR]",
     .summary = "print open calls, contexts and streams, and what each thread does",
     .help = "Each row is one end of a call or context: its id (cid, as the caller\n"
             "numbered it), role, function, the actor at the other end, its phase and\n"
             "cancellation state; streams add their counters and backpressure.\n"
             "\n" ONE_ARG_TEXT,
     .names = NAMES_TREE | NAMES_ACTOR,
     .max_args = 2,
     .opts = OPT_JSON | OPT_TIMEOUT,
     .fn = cmd_ctx},
    {.name = "log",
     .args = "[TREE]",
     .summary = "print the tree's recent log records",
     .help = "The root keeps the last 1024 records; a snapshot carries the last 200.",
     .names = NAMES_TREE,
     .max_args = 1,
     .opts = OPT_JSON | OPT_FOLLOW | OPT_LEVEL | OPT_ACTOR | OPT_TIMEOUT,
     .docs = DOCS({OPT_JSON, "print each record as one line of JSON"}),
     .fn = cmd_log},
    {.name = "events",
     .args = "[TREE]",
     .summary = "follow the tree's live events until interrupted",
     .help = "Events: spawn, exit, route-add and route-del (the root learned or lost the\n"
             "way to an actor), ctx-open, ctx-started, ctx-closed, ctx-errored, cancel,\n"
             "stall and resume (a stream's sender blocked and unblocked), log, and\n"
             "dropped (this terminal fell behind; the tree never waits for it).",
     .names = NAMES_TREE,
     .max_args = 1,
     .opts = OPT_JSON,
     .docs = DOCS({OPT_JSON, "print each event as one line of JSON"}),
     .fn = cmd_events},
    {.name = "lint",
     .args = "[TREE]",
     .summary = "name what is hanging: stuck cancels, stalled streams, deadlocks",
     .help = "Checks: stuck-cancel, stalled-stream, orphan-stream, unreaped, wait-for-cycle,\n"
             "long-wait (docs/cli.md explains each). Exits 3 if any fires. A condition counts\n"
             "once it has lasted CANOPY_LINT_AFTER_MS (default 2000); a call's wait is long\n"
             "after CANOPY_LINT_WAIT_MS (default 10000).",
     .names = NAMES_TREE,
     .max_args = 1,
     .opts = OPT_JSON | OPT_TIMEOUT,
     .docs = DOCS({OPT_JSON, "print an array of {lint, severity, actors, message}"}),
     .fn = cmd_lint},
    {.name = "cancel",
     .args = "[TREE] ACTOR|ACTOR/CID",
     .summary = "cancel an actor or one call or context, and wait until it is gone",
     .help = "ACTOR/CID names a call or context by its cid on that actor (see 'canopy ctx'):\n"
             "the actor's own call of that number, else the one it serves under it (a\n"
             "cid is its caller's numbering, so several served ones may share it: then\n"
             "name the caller instead).\n"
             "An actor is cancelled by its parent: SHUTDOWN, then SIGTERM after 1 s, then\n"
             "SIGKILL; cancelling the root cancels the whole tree ('canopy cancel TREE'\n"
             "names it alone, whatever else runs). A context is cancelled\n"
             "by its caller, as the caller's code would. Progress is shown until it is\n"
             "gone; exit 1 if it is still there after the timeout.",
     .names = NAMES_TREE | NAMES_ACTOR,
     .min_args = 1,
     .max_args = 2,
     .opts = OPT_TIMEOUT | OPT_JSON,
     .docs = DOCS({OPT_TIMEOUT, "time to wait until it is gone: 1 to 30000 ms (default 10000)"},
                  {OPT_JSON, "print {target, actor, call, done, ms} instead"}),
     .fn = cmd_cancel},
    {.name = "attach",
     .args = "[TREE]",
     .summary = "open the TUI on a running tree (--console: the line console)",
     .help = "The TUI shows the tree, each actor's routes, contexts and streams, the\n"
             "tree's log, the debugger's console and the lints, live; F1 or ? lists its\n"
             "keys, q detaches and leaves the tree running (docs/tui.md). 'canopy' alone\n"
             "opens it on the only tree running.\n"
             "\n"
             "With --console, or when stdin or stdout is not a terminal, it is the\n"
             "debugger's line console instead: lock changes show as [lock] lines; lines\n"
             "typed go to the actor that holds the console, whose REPL answers ('help'\n"
             "lists its commands). Lines that start with ':' are the console's own:\n"
             ":queue, :skip, :release, :break ACTOR, :detach. Ctrl-D detaches.\n"
             "\n"
             "Either way, while a console is attached the root grants the console lock;\n"
             "without one, actors wait.",
     .names = NAMES_TREE,
     .max_args = 1,
     .opts = OPT_CONSOLE,
     .fn = cmd_tui},
    {.name = "run",
     .args = "-- PROG [ARGS...]",
     .summary = "start PROG as the root of a new tree and open the TUI on it",
     .help = "PROG is any program that calls cn_run. It runs in its own session with\n"
             "stdin /dev/null; what it prints goes to the TUI's log view, never over the\n"
             "screen. When the tree exits, the TUI shows its last state and exit status\n"
             "until you quit. q asks whether to cancel the tree or leave it running.",
     .min_args = 1,
     .max_args = 64,
     .opts = OPT_DEBUG | OPT_NAME,
     .fn = cmd_run},
    {.name = "break",
     .args = "[TREE] ACTOR",
     .summary = "break into an actor: stop its threads and queue it for the console",
     .help = "Every thread of the actor but its broker stops where it is, even in a\n"
             "busy loop or a deadlock, and the actor queues for the console lock; talk to\n"
             "it with 'canopy attach'. 'continue' at its prompt lets the threads go.\n"
             "With one argument, it is the ACTOR: of the tree its path begins with, or of\n"
             "the only tree.",
     .names = NAMES_TREE | NAMES_ACTOR,
     .min_args = 1,
     .max_args = 2,
     .opts = OPT_TIMEOUT,
     .fn = cmd_break},
    {.name = "bt",
     .args = "[TREE] [ACTOR]",
     .summary = "print the stack of every thread, without a debugger session",
     .help = "Each actor stops each of its threads (not its broker) only for the moment\n"
             "its stack is read, and names the frames (file:line with debug information\n"
             "and addr2line). Next to each thread: what the runtime says it is doing.\n"
             "A thread that blocks the runtime's signal shows as 'no answer'.",
     .names = NAMES_TREE | NAMES_ACTOR,
     .max_args = 2,
     .opts = OPT_JSON | OPT_TIMEOUT,
     .docs = DOCS({OPT_TIMEOUT, STACKS_TIMEOUT_DOC},
                  {OPT_JSON, "print each actor's stacks and threads as JSON"}),
     .fn = cmd_bt},
    {.name = "dump",
     .args = "[TREE] > bundle.json",
     .summary = "write the hang bundle (snapshot, stacks, lints, log tail) as JSON",
     .help = "The bundle is one JSON document for a bug report: every actor's contexts,\n"
             "streams, thread states, stacks and routes, the lints and the log tail.",
     .names = NAMES_TREE,
     .max_args = 1,
     .opts = OPT_TIMEOUT | OPT_JSON,
     .docs = DOCS({OPT_TIMEOUT, STACKS_TIMEOUT_DOC},
                  {OPT_JSON, "accepted for uniformity: the bundle is always JSON"}),
     .fn = cmd_dump},
};
#define NCMDS (sizeof(cmd_table) / sizeof(cmd_table[0]))

static const cmd_entry_t *cmd_find(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmd_table[i].name, name) == 0)
            return &cmd_table[i];
    return NULL;
}

/* c's help for option o (its own, else the option's), or NULL: hidden. */
static const char *opt_doc(const cmd_entry_t *c, const struct opt_def *o)
{
    for (const opt_doc_t *d = c ? c->docs : NULL; d && d->bit; d++)
        if (d->bit == o->bit)
            return d->doc;
    return o->doc;
}

/* ===========================================================================
 * Help for the terminal
 */

/* Prints text's words from column `at`, wrapping lines at PAGE_WIDTH to
 * column `col`; ends the line. */
static void put_wrapped(FILE *out, const char *text, int at, int col)
{
    int cur = at;
    while (*text) {
        while (*text == ' ' || *text == '\n')
            text++;
        size_t n = strcspn(text, " \n");
        if (n == 0)
            break;
        if (cur > col && cur + 1 + (int)n > PAGE_WIDTH) {
            fprintf(out, "\n%*s", col, "");
            cur = col;
        }
        if (cur > col)
            cur += fprintf(out, " ");
        cur += fprintf(out, "%.*s", (int)n, text);
        text += n;
    }
    fputc('\n', out);
}

/* "canopy NAME [--opt ARG]... ARGS", as on the usage line. */
static void usage_line(FILE *out, const cmd_entry_t *c)
{
    fprintf(out, "usage: canopy %s", c->name);
    for (size_t k = 0; k < NOPTIONS; k++) {
        const struct opt_def *o = &options[k];
        if ((c->opts & o->bit) && opt_doc(c, o))
            fprintf(out, " [%s%s%s]", o->short_name ? o->short_name : o->long_name,
                    o->arg ? " " : "", o->arg ? o->arg : "");
    }
    fprintf(out, "%s%s\n", *c->args ? " " : "", c->args);
}

static void usage_main(FILE *out)
{
    fprintf(out, "usage: canopy [--help] [--version] COMMAND [ARGS...]\n\n"
                 "canopy inspects and debugs trees of libcanopy actor processes.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(out, "  %-10s %s\n", cmd_table[i].name, cmd_table[i].summary);
    fprintf(out, "\nRun 'canopy help COMMAND' for one command's usage and options.\n\n"
                 "exit status:\n");
    for (size_t i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++) {
        fprintf(out, "  %d ", exit_codes[i].code);
        put_wrapped(out, exit_codes[i].meaning, 4, 4);
    }
}

/* After a command line error: the usage line and where the rest is. */
static void usage_hint(FILE *err, const cmd_entry_t *c)
{
    usage_line(err, c);
    fprintf(err, "run 'canopy help %s' for what it does and its options\n", c->name);
}

static void usage_cmd(FILE *out, const cmd_entry_t *c)
{
    usage_line(out, c);
    fprintf(out, "\n%s\n", c->summary);
    if (c->help)
        fprintf(out, "\n%s\n", c->help);
    if (c->names)
        fprintf(out, "\n%s%s%s\n", TREE_TEXT, c->names & NAMES_ACTOR ? "\n" : "",
                c->names & NAMES_ACTOR ? ACTOR_TEXT : "");
    int first = 1;
    for (size_t k = 0; k < NOPTIONS; k++) {
        const struct opt_def *o = &options[k];
        const char *doc = opt_doc(c, o);
        if (!(c->opts & o->bit) || doc == NULL)
            continue;
        char name[64];
        snprintf(name, sizeof(name), "%s%s%s%s%s", o->short_name ? o->short_name : "",
                 o->short_name ? ", " : "", o->long_name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "%s  %-*s", first ? "\noptions:\n" : "", OPT_COLUMN - 2, name);
        first = 0;
        if ((int)strlen(name) > OPT_COLUMN - 3)
            fprintf(out, "\n%*s", OPT_COLUMN, "");
        put_wrapped(out, doc, OPT_COLUMN, OPT_COLUMN);
    }
}

/* ===========================================================================
 * The man page's generated sections: `canopy help --man`
 */

/* s for troff: backslashes and hyphens escaped; caps (the names of
 * arguments) in italics if `args`. */
static void man_escaped(FILE *out, const char *s, size_t n, int args)
{
    for (size_t i = 0; i < n; i++) {
        if (args && isupper((unsigned char)s[i])) {
            size_t k = i;
            while (k < n && (isupper((unsigned char)s[k]) || s[k] == '_'))
                k++;
            fprintf(out, "\\fI%.*s\\fR", (int)(k - i), s + i);
            i = k - 1;
        } else if (s[i] == '\\') {
            fputs("\\e", out);
        } else if (s[i] == '-') {
            fputs("\\-", out);
        } else {
            fputc(s[i], out);
        }
    }
}

/* Paragraphs (a blank line between) as troff text lines; a line must not
 * start with a control character or a space. */
static void man_prose(FILE *out, const char *text)
{
    while (*text) {
        size_t n = strcspn(text, "\n");
        const char *line = text;
        text += n + (text[n] == '\n');
        while (n && *line == ' ')
            line++, n--;
        if (n == 0) {
            fputs(".PP\n", out);
            continue;
        }
        if (*line == '.' || *line == '\'')
            fputs("\\&", out);
        man_escaped(out, line, n, 0);
        fputc('\n', out);
    }
}

/* Capitalised, with a full stop: a summary as a sentence, on its line. */
static void man_sentence(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    fputc(toupper((unsigned char)s[0]), out);
    man_escaped(out, s + 1, strlen(s + 1), 0);
    fputs(".\n", out);
}

static void man_option_tag(FILE *out, const struct opt_def *o)
{
    fputs(".TP\n", out);
    if (o->short_name) {
        fputs("\\fB", out);
        man_escaped(out, o->short_name, strlen(o->short_name), 0);
        fputs("\\fR, ", out);
    }
    fputs("\\fB", out);
    man_escaped(out, o->long_name, strlen(o->long_name), 0);
    fputs("\\fR", out);
    if (o->arg)
        fprintf(out, "\\ \\fI%s\\fR", o->arg);
    fputc('\n', out);
}

static void man_command(FILE *out, const cmd_entry_t *c)
{
    fprintf(out, ".SS %s\n\\fBcanopy %s\\fR", c->name, c->name);
    for (size_t k = 0; k < NOPTIONS; k++) {
        const struct opt_def *o = &options[k];
        if (!(c->opts & o->bit) || opt_doc(c, o) == NULL)
            continue;
        const char *nm = o->short_name ? o->short_name : o->long_name;
        fputs(" [\\fB", out);
        man_escaped(out, nm, strlen(nm), 0);
        fputs("\\fR", out);
        if (o->arg)
            fprintf(out, "\\ \\fI%s\\fR", o->arg);
        fputs("]", out);
    }
    if (*c->args) {
        fputc(' ', out);
        man_escaped(out, c->args, strlen(c->args), 1);
    }
    fputs("\n.PP\n", out);
    man_sentence(out, c->summary);
    if (c->help) {
        fputs(".PP\n", out);
        man_prose(out, c->help);
    }
    for (size_t k = 0; k < NOPTIONS; k++) {
        const struct opt_def *o = &options[k];
        const char *doc = opt_doc(c, o);
        if (!(c->opts & o->bit) || doc == NULL)
            continue;
        man_option_tag(out, o);
        man_sentence(out, doc);
    }
}

static void man_sections(FILE *out)
{
    fputs(".SH COMMANDS\n", out);
    man_prose(out, TREE_TEXT "\n" ACTOR_TEXT);
    for (size_t i = 0; i < NCMDS; i++)
        man_command(out, &cmd_table[i]);

    fputs(".SH OPTIONS\n"
          "Options may come anywhere after the command, until \\fB\\-\\-\\fR;\n"
          "\\fB\\-\\-opt\\fR=\\fIVALUE\\fR is the same as \\fB\\-\\-opt\\fR \\fIVALUE\\fR.\n"
          "An option a command does not take is an error, not ignored.\n"
          ".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\n"
          "Print canopy's usage, or after a command, that command's.\n"
          ".TP\n\\fB\\-V\\fR, \\fB\\-\\-version\\fR\n"
          "Print canopy's version (before any command).\n",
          out);
    for (size_t k = 0; k < NOPTIONS; k++) {
        const struct opt_def *o = &options[k];
        if (o->doc == NULL)
            continue;
        man_option_tag(out, o);
        man_sentence(out, o->doc);
        /* The commands that take it as it is, then those that word it their own way. */
        int n = 0;
        for (int own = 0; own < 2; own++) {
            int first = 1;
            for (size_t i = 0; i < NCMDS; i++) {
                const cmd_entry_t *c = &cmd_table[i];
                if (!(c->opts & o->bit) || (opt_doc(c, o) != o->doc) != own)
                    continue;
                if (first && own) /* after the others, if any */
                    fputs(n ? "; and, as each says under COMMANDS, "
                            : "Commands, as each says under COMMANDS: ",
                          out);
                fprintf(out, "%s\\fB%s\\fR", first ? (own ? "" : "Commands: ") : ", ", c->name);
                first = 0;
                n++;
            }
        }
        fputs(".\n", out);
    }

    fputs(".SH \"EXIT STATUS\"\n", out);
    for (size_t i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++) {
        fprintf(out, ".TP\n.B %d\n", exit_codes[i].code);
        man_sentence(out, exit_codes[i].meaning);
    }
}

static int cmd_help(const cmd_entry_t *self, int argc, char **argv, const opts_t *o)
{
    (void)self;
    if (o->man) {
        if (argc) {
            fprintf(stderr, "canopy help: --man takes no command\n");
            return EXIT_USAGE;
        }
        fputs(".\\\" The command table's sections, generated by 'canopy help --man'\n", stdout);
        man_sections(stdout);
        return 0;
    }
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

/* Takes `c`'s options out of argv (anywhere on the line, until "--") and
 * checks them and the argument count, into *l (cli_parse). --help prints
 * the usage to out; errors go to err. */
static void parse_cmd(const cmd_entry_t *c, int argc, char **argv, FILE *out, FILE *err,
                      cli_line_t *l)
{
    opts_t o = {0};
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    int nargs = 0, rc = args ? -1 : EXIT_FAIL;
    if (args == NULL)
        fprintf(err, "canopy: out of memory\n");
    for (int i = 0; i < argc && rc < 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage_cmd(out, c);
            rc = 0;
            break;
        }
        if (strcmp(a, "--") == 0) {
            while (++i < argc)
                args[nargs++] = argv[i];
            break;
        }
        if (a[0] == '\0' && c->names) { /* "" would mean "the only tree" */
            fprintf(err, "canopy %s: an empty name: give a tree or an actor, or leave it out\n",
                    c->name);
            rc = EXIT_USAGE;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            args[nargs++] = argv[i];
            continue;
        }
        size_t k = 0, n = NOPTIONS;
        const char *eq = strchr(a, '=');
        size_t alen = eq ? (size_t)(eq - a) : strlen(a);
        while (k < n && !((strlen(options[k].long_name) == alen &&
                           strncmp(a, options[k].long_name, alen) == 0) ||
                          (options[k].short_name && strcmp(a, options[k].short_name) == 0)))
            k++;
        if (k == n || !(c->opts & options[k].bit)) {
            fprintf(err, "canopy %s: unknown option '%s'\n", c->name, a);
            usage_hint(err, c);
            rc = EXIT_USAGE;
            break;
        }
        const char *val = NULL;
        if (eq && !options[k].arg) {
            fprintf(err, "canopy %s: %s takes no value\n", c->name, options[k].long_name);
            rc = EXIT_USAGE;
            break;
        }
        if (options[k].arg) {
            val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (val == NULL || *val == '\0') {
                fprintf(err, "canopy %s: %s needs a value\n", c->name, options[k].long_name);
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
        case OPT_MAN:
            o.man = 1;
            break;
        case OPT_TIMEOUT: {
            char *end;
            /* --timeout takes a value (options[]), so val is set: the
             * analyzer cannot see that. NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
            o.timeout_ms = strtol(val, &end, 10);
            if (*end || o.timeout_ms <= 0 || o.timeout_ms > 30000) {
                fprintf(err, "canopy %s: --timeout takes milliseconds, 1 to 30000\n", c->name);
                rc = EXIT_USAGE;
            }
            break;
        }
        }
    }
    if (rc < 0 && (nargs < c->min_args || nargs > c->max_args)) {
        fprintf(err, "canopy %s: expected %s%d argument%s, got %d\n", c->name,
                c->min_args == c->max_args ? "" : (nargs < c->min_args ? "at least " : "at most "),
                nargs < c->min_args ? c->min_args : c->max_args,
                ui_plural(nargs < c->min_args ? c->min_args : c->max_args), nargs);
        usage_hint(err, c);
        rc = EXIT_USAGE;
    }
    l->cmd = rc < 0 ? c : NULL;
    l->nargs = rc < 0 ? nargs : 0;
    l->args = args;
    l->o = o;
    l->rc = rc;
}

int cli_parse(int argc, char **argv, FILE *out, FILE *err, cli_line_t *l)
{
    memset(l, 0, sizeof(*l));
    const char *a = argc >= 2 ? argv[1] : NULL;
    if (a == NULL) {
        usage_main(err);
        l->rc = EXIT_USAGE;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        parse_cmd(cmd_find("help"), 0, NULL, out, err, l);
    } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
        parse_cmd(cmd_find("version"), 0, NULL, out, err, l);
    } else if (a[0] == '-') {
        fprintf(err, "canopy: unknown option '%s'; run 'canopy --help'\n", a);
        l->rc = EXIT_USAGE;
    } else if (cmd_find(a) == NULL) {
        const char *names[NCMDS];
        for (size_t i = 0; i < NCMDS; i++)
            names[i] = cmd_table[i].name;
        const char *near = ui_suggest(a, names, NCMDS);
        if (near)
            fprintf(err, "canopy: unknown command '%s'; did you mean '%s'?\n", a, near);
        else
            fprintf(err, "canopy: unknown command '%s'; run 'canopy --help' for the list\n", a);
        l->rc = EXIT_USAGE;
    } else {
        parse_cmd(cmd_find(a), argc - 2, argv + 2, out, err, l);
    }
    return l->rc;
}

void cli_line_fini(cli_line_t *l)
{
    free(l->args);
    l->args = NULL;
}

/* Runs what cli_parse found, or returns the status it left with. */
static int run_parsed(cli_line_t *l)
{
    int rc = l->cmd ? l->cmd->fn(l->cmd, l->nargs, l->args, &l->o) : l->rc;
    cli_line_fini(l);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        /* canopy alone, at a terminal, with one tree running: its TUI.
         * Otherwise the help, and what is running. */
        cn_tree_info_t one;
        size_t n = 0;
        cli_line_t l;
        int listed = cn_client_list(&one, 1, &n) == 0, tty = isatty(0) && isatty(1);
        if (listed && n == 1 && tty) {
            parse_cmd(cmd_find("attach"), 0, NULL, stdout, stderr, &l);
            return run_parsed(&l);
        }
        usage_main(stderr);
        char dir[512] = "";
        if (listed && n > 1)
            fprintf(stderr,
                    "\ncanopy: %zu trees are running: canopy attach TREE (canopy ls lists them)\n",
                    n);
        else if (listed && n == 1)
            fprintf(stderr,
                    "\ncanopy: tree %s is running, and this is not a terminal: 'canopy tree' "
                    "shows it, 'canopy attach' is its line console\n",
                    one.name);
        else if (listed && cn_client_dir(dir, sizeof(dir)) == 0)
            fprintf(stderr, "\ncanopy: no canopy tree is running (looked in %s)\n", dir);
        return EXIT_USAGE;
    }
    cli_line_t l;
    cli_parse(argc, argv, stdout, stderr, &l);
    return run_parsed(&l);
}
