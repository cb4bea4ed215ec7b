/*
 * canopy.c: the canopy command: global options and the command table.
 *
 * Every subcommand is one entry in cmd_table (tmux's cmd_entry is the
 * model): its name, usage, one-line summary, argument bounds and function.
 * `canopy --help`, `canopy help CMD` and `canopy CMD --help` are generated
 * from the table, so a command cannot exist without its help.
 *
 * Invariant: this file uses only the public headers (include/), never the
 * runtime's internals. Exit codes: 0 success, 1 the command failed, 2 the
 * command line was wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canopy.h"

#define EXIT_USAGE 2

typedef struct cmd_entry cmd_entry_t;
struct cmd_entry {
    const char *name;
    const char *usage;   /* arguments after the name */
    const char *summary; /* one line for `canopy --help` */
    const char *help;    /* more lines for `canopy help CMD`, or NULL */
    int min_args, max_args;
    int (*fn)(const cmd_entry_t *self, int argc, char **argv);
};

static int cmd_help(const cmd_entry_t *self, int argc, char **argv);
static int cmd_version(const cmd_entry_t *self, int argc, char **argv);

static const cmd_entry_t cmd_table[] = {
    {"help", "[COMMAND]", "show help for canopy or for one command", NULL, 0, 1, cmd_help},
    {"version", "", "print canopy's version and wire protocol version", NULL, 0, 0, cmd_version},
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
    fprintf(out, "\nRun 'canopy help COMMAND' for one command's usage.\n");
}

static void usage_cmd(FILE *out, const cmd_entry_t *c)
{
    fprintf(out, "usage: canopy %s%s%s\n\n%s\n", c->name, *c->usage ? " " : "", c->usage,
            c->summary);
    if (c->help)
        fprintf(out, "\n%s\n", c->help);
}

static int cmd_help(const cmd_entry_t *self, int argc, char **argv)
{
    (void)self;
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

static int cmd_version(const cmd_entry_t *self, int argc, char **argv)
{
    (void)self, (void)argc, (void)argv;
    printf("canopy %s (wire protocol %d)\n", cn_version_string(), CN_PROTOCOL_VERSION);
    return 0;
}

/* Runs `c` with its arguments after checking their count and --help. */
static int cmd_run(const cmd_entry_t *c, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_cmd(stdout, c);
            return 0;
        }
        if (strcmp(argv[i], "--") == 0)
            break;
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "canopy %s: unknown option '%s'\n", c->name, argv[i]);
            usage_cmd(stderr, c);
            return EXIT_USAGE;
        }
    }
    if (argc < c->min_args || argc > c->max_args) {
        fprintf(stderr, "canopy %s: expected %s%d argument%s, got %d\n", c->name,
                c->min_args == c->max_args ? "" : (argc < c->min_args ? "at least " : "at most "),
                argc < c->min_args ? c->min_args : c->max_args,
                (argc < c->min_args ? c->min_args : c->max_args) == 1 ? "" : "s", argc);
        usage_cmd(stderr, c);
        return EXIT_USAGE;
    }
    return c->fn(c, argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return EXIT_USAGE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        return cmd_run(cmd_find("help"), 0, NULL);
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0)
        return cmd_run(cmd_find("version"), 0, NULL);
    if (a[0] == '-') {
        fprintf(stderr, "canopy: unknown option '%s'; run 'canopy --help'\n", a);
        return EXIT_USAGE;
    }
    const cmd_entry_t *c = cmd_find(a);
    if (c == NULL) {
        fprintf(stderr, "canopy: unknown command '%s'; run 'canopy --help' for the list\n", a);
        return EXIT_USAGE;
    }
    return cmd_run(c, argc - 2, argv + 2);
}
