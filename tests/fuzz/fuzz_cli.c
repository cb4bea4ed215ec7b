/*
 * fuzz_cli.c: libFuzzer target for the canopy tool's command line: the
 * command and option tables and their parser (cli_parse in ui/canopy.c:
 * options anywhere until "--", --opt=VALUE, --timeout's number, argument
 * counts, --help), and the parsing halves of what the commands then do
 * with their arguments (ui/cli.c: a path's tree part, ACTOR/CID, --level)
 * and the client library's cn_snapshot_find on a small made-up snapshot.
 *
 * Input: the arguments after "canopy", separated by NUL bytes. Nothing is
 * run and no tree is reached: the tool's main() is compiled as
 * canopy_main (the Makefile's -Dmain), never called, and the help and
 * the usage errors cli_parse prints go to /dev/null (formatted all the
 * same). It checks that the result is coherent: a command to run comes
 * with argv's own strings as its arguments and a timeout in range, and
 * the ACTOR/CID split gives back what it was given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"
#include "check.h"

/* A tree of four: two actors share the name "worker", so that name is
 * ambiguous and only their paths or ids pick one. */
static cn_snap_actor_t actors[] = {
    {.id = 0, .parent = -1, .name = "fuzz", .path = "fuzz"},
    {.id = 1, .parent = 0, .name = "sup", .path = "fuzz/sup"},
    {.id = 2, .parent = 1, .name = "worker", .path = "fuzz/sup/worker"},
    {.id = 7, .parent = 0, .name = "worker", .path = "fuzz/worker"},
};
static const cn_snapshot_t snap = {
    .tree = "fuzz", .nactors = sizeof(actors) / sizeof(actors[0]), .actors = actors};

static void find(const char *which)
{
    int amb = -1;
    const cn_snap_actor_t *a = cn_snapshot_find(&snap, which, &amb);
    CHECK(amb == 0 || amb == 1);
    CHECK(a == NULL || (a >= actors && a < actors + snap.nactors));
    CHECK(!(a && amb));
}

/* What a command does with one of its arguments before it reaches a tree. */
static void take_arg(const char *arg)
{
    char name[128], who[256];
    uint64_t cid;
    if (ui_path_first(arg, name, sizeof(name))) {
        size_t n = strlen(name);
        CHECK(n < sizeof(name) && strncmp(name, arg, n) == 0 && arg[n] == '/');
    }
    find(arg);
    if (ui_split_target(arg, who, sizeof(who), &cid)) {
        size_t n = strlen(who);
        CHECK(n < sizeof(who) && strncmp(who, arg, n) == 0 && arg[n] == '/');
        CHECK(strchr(arg + n + 1, '/') == NULL && strtoull(arg + n + 1, NULL, 10) == cid);
        find(who);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null;
    if (null == NULL && (null = fopen("/dev/null", "w")) == NULL)
        abort();
    char *buf = malloc(size + 1);
    char **argv = calloc(size + 3, sizeof(*argv));
    CHECK(buf && argv);
    memcpy(buf, data, size);
    buf[size] = '\0';
    int argc = 0;
    argv[argc++] = "canopy";
    for (size_t pos = 0; size > 0 && pos <= size; pos += strlen(buf + pos) + 1)
        argv[argc++] = buf + pos;

    cli_line_t l;
    int rc = cli_parse(argc, argv, null, null, &l);
    CHECK(rc == l.rc);
    if (rc < 0) {
        CHECK(l.cmd != NULL && l.nargs >= 0 && l.nargs <= argc - 2);
        CHECK(l.args[l.nargs] == NULL); /* run's PROG ARGS go to execvp as they are */
        for (int i = 0; i < l.nargs; i++) {
            int k = 2;
            while (k < argc && argv[k] != l.args[i])
                k++;
            CHECK(k < argc); /* argv's own strings, in order */
            take_arg(l.args[i]);
        }
        CHECK(l.o.timeout_ms == 0 || (l.o.timeout_ms >= 1 && l.o.timeout_ms <= 30000));
        if (l.o.level) {
            int lv = ui_parse_level(l.o.level);
            CHECK(lv >= -1 && lv <= CN_LOG_ERROR);
        }
        if (l.o.actor)
            take_arg(l.o.actor);
    } else {
        CHECK(l.cmd == NULL && (rc == 0 || rc == EXIT_USAGE || rc == EXIT_FAIL));
    }
    cli_line_fini(&l);
    free(argv);
    free(buf);
    return 0;
}
