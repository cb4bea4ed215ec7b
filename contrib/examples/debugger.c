/*
 * debugger.c: the tree debugger: a breakpoint in a child, and (with the
 * argument `crash`) a post-mortem of a child that writes through NULL.
 *
 * The root calls "work" on a child, "worker", which counts a few steps and
 * then calls cn_breakpoint(). That thread stops and the worker queues for
 * the tree's one console; at the console, `vars` shows the worker's
 * `progress` (a cn_debug_var), `bt` where it stopped, `c` lets it go on.
 * With `crash`, the root then calls "crash" on a second child, "crasher",
 * which dereferences NULL. In debug mode (CANOPY_DEBUG=1, or canopy run
 * --debug) the crash stops for a post-mortem at the console first; `c`
 * lets it die. Either way its parent sees it die and the root prints
 * CN_EDEAD with the signal.
 *
 * Look at it:
 *
 *   make examples
 *   build/canopy run --debug -- build/examples/debugger crash
 *                                # the TUI; key 5 is the console: vars, bt, c
 *   build/examples/debugger break &      # or in the background, then
 *   build/canopy attach --console debugger   # (or `canopy attach` for the TUI)
 *   build/examples/debugger              # in a terminal: that terminal is the console
 *
 * cn_breakpoint() waits, with no timeout, until someone types `continue`,
 * with or without debug mode (CANOPY_DEBUG only changes what crashes and
 * failing tasks do). With no console attached it waits in the root's queue
 * and the root logs how to attach. So that a run with nobody to type `c`
 * (a script, a test) still ends, the worker is asked to stop only when a
 * console is to be expected: in debug mode, with the argument `break`, or
 * when the root runs in the foreground of a terminal. Otherwise it says so
 * and the run ends at once with status 0. The crash never waits outside
 * debug mode; under a sanitizer, which keeps SIGSEGV for itself, there is
 * no post-mortem and the crasher dies with the sanitizer's report.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <canopy.h>

#define TIMEOUT_MS 5000
#define HUMAN_MS (30 * 60 * 1000) /* how long a person may stay at a breakpoint */

/* ------------------------------------------------------------ the children */

static atomic_int progress; /* what `vars` shows at the worker's prompt */

/* A cn_debug_var: runs on the broker thread while the worker is stopped, so
 * it only reads an atomic; no locks, no blocking. */
static void show_progress(cn_debug_out_t *out, void *arg)
{
    (void)arg;
    cn_debug_printf(out, "%d of 5 steps", atomic_load(&progress));
}

/* Counts five steps, then stops at the breakpoint if args is true. */
static int work(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)call;
    int stop = args && args->type == MSGPACK_OBJECT_BOOLEAN && args->via.boolean;
    for (int i = 1; i <= 5; i++)
        atomic_store(&progress, i);
    const char *said = "ran without stopping (no console expected)";
    if (stop) {
        cn_log(CN_LOG_INFO, "stopping at a breakpoint: at the console try vars, bt, then c");
        int rc = cn_breakpoint(); /* here until `continue` */
        said = rc == 0 ? "stopped at the breakpoint and continued" : cn_strerror(rc);
    }
    return msgpack_pack_str_with_body(out, said, strlen(said));
}

/* Writes through a NULL pointer. Both the pointer and what it points to
 * are volatile: otherwise the compiler may treat the store as undefined
 * behaviour and drop it, or replace it with a trap. */
static int crash(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)call, (void)args;
    volatile int *volatile p = NULL;
    *p = 42; /* the crash on purpose: NOLINT(clang-analyzer-core.NullDereference) */
    return msgpack_pack_nil(out); /* not reached */
}

/* ------------------------------------------------------------ the root */

static int has_arg(int argc, char **argv, const char *word)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], word) == 0)
            return 1;
    return 0;
}

/* Whether a console is to be expected (see the top of the file). */
static int console_expected(int argc, char **argv)
{
    if (has_arg(argc, argv, "break"))
        return 1;
    const char *dbg = getenv("CANOPY_DEBUG"), *con = getenv("CANOPY_CONSOLE");
    if (dbg && *dbg && strcmp(dbg, "0") != 0)
        return 1; /* debug mode: someone means to debug it */
    return isatty(0) && isatty(1) && tcgetpgrp(0) == getpgrp() && !(con && strcmp(con, "0") == 0);
}

static int root_main(int argc, char **argv)
{
    int want_crash = has_arg(argc, argv, "crash");
    int stop = console_expected(argc, argv);
    cn_portal_t worker;
    int rc = cn_spawn("worker", NULL, &worker, TIMEOUT_MS);
    if (rc < 0) {
        fprintf(stderr, "debugger: cannot spawn the worker: %s\n", cn_strerror(rc));
        return 1;
    }
    if (!stop)
        printf("no console expected: the worker will not stop at its breakpoint\n"
               "(run with 'break', CANOPY_DEBUG=1 or from a terminal to stop there)\n");
    else
        printf("the worker stops at a breakpoint: attach with 'canopy attach %s' if no "
               "console is up\n",
               cn_path());
    fflush(stdout); /* before we wait, for whoever reads our output */

    msgpack_object arg = {.type = MSGPACK_OBJECT_BOOLEAN, .via.boolean = stop};
    cn_result_t r;
    rc = cn_call(worker, "work", &arg, &r, stop ? HUMAN_MS : TIMEOUT_MS);
    if (rc == 0)
        printf("worker: %.*s\n", (int)r.value.via.str.size, r.value.via.str.ptr);
    else
        printf("worker failed: %s: %s\n", cn_strerror(rc), r.error.message ? r.error.message : "");
    cn_result_free(&r);
    if (rc < 0 || !want_crash)
        return rc < 0;

    cn_portal_t crasher;
    if ((rc = cn_spawn("crasher", NULL, &crasher, TIMEOUT_MS)) < 0) {
        fprintf(stderr, "debugger: cannot spawn the crasher: %s\n", cn_strerror(rc));
        return 1;
    }
    /* In debug mode the crasher waits at the console for as long as the
     * post-mortem takes; outside it, it dies at once. */
    rc = cn_call(crasher, "crash", NULL, &r, stop ? HUMAN_MS : TIMEOUT_MS);
    printf("crasher: %s: %s\n", cn_err_name(rc), r.error.message ? r.error.message : "");
    cn_result_free(&r);
    return rc == CN_EDEAD ? 0 : 1; /* its death is what we expected */
}

static const cn_export_t exports[] = {{"work", work}, {"crash", crash}, {NULL, NULL}};

int main(int argc, char **argv)
{
    /* In every actor of the tree (this runs before cn_run in each): `vars`
     * at any actor's prompt lists it. */
    cn_debug_var("progress", show_progress, NULL);
    cn_config_t cfg = {.name = "debugger", .exports = exports, .main = root_main};
    int rc = cn_run(argc, argv, &cfg);
    if (rc < 0)
        fprintf(stderr, "debugger: %s\n", cn_strerror(rc));
    return rc < 0 ? 1 : rc;
}
