/*
 * bench_tui.c: what the canopy TUI costs, run in a pseudo-terminal of
 * 120x40 against this process's own tree, as a user would run it.
 *
 *   tui_idle_cpu_pct  the TUI's CPU time over 10 s of wall time, attached
 *                     to an idle tree of 21 actors (target: < 1 %);
 *                     baseline: the line console (canopy attach
 *                     --console) attached the same way, which draws
 *                     nothing
 *   attached_overhead_tui_pct  the TUI case of attached_overhead_pct: how
 *                     much slower the short-context workload runs with the
 *                     TUI attached (showing the whole tree's contexts) than
 *                     with `sleep` in the same kind of new terminal; six
 *                     alternated runs of 1.5 s each way, medians (target:
 *                     < 2 %); baseline: short contexts/s with sleep in the
 *                     terminal. Also printed: the rate with neither, which
 *                     shows what starting any process next to the tree
 *                     costs it for a while
 *
 * The pseudo-terminal's output is read and thrown away by a thread, as a
 * terminal would take it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "canopy.h"
#include "workload.h"

#define IDLE_ACTORS 20
#define IDLE_S 10.0

extern char **environ;

static const cn_export_t exports[] = {{"echo10", fn_echo10}, {NULL, NULL}};

typedef struct term {
    pid_t pid, reader;
    int master;
    char count[64]; /* the reader writes how many bytes it read here */
} term_t;

/* The terminal's side: a process of its own (as a terminal emulator is)
 * that reads what the TUI draws and counts it. */
static pid_t drain(int master, const char *count_to)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, master, 0);
    posix_spawn_file_actions_addopen(&fa, 1, count_to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char *argv[] = {"/bin/sh", "-c", "wc -c", NULL};
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

/* Runs `canopy attach ARGS` on a new pseudo-terminal of 120x40, or, with
 * args NULL, `sleep` (a program that draws nothing and talks to no tree). */
static int term_start(term_t *t, const char *const *args)
{
    int slave;
    char name[128];
    struct winsize ws = {.ws_row = 40, .ws_col = 120};
    if (openpty(&t->master, &slave, name, NULL, &ws) < 0)
        return -1;
    fcntl(t->master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    char canopy[1024];
    snprintf(canopy, sizeof(canopy), "%s/../../canopy", CN_HELPERS_DIR);
    char *argv[8] = {canopy, "attach"};
    int k = 2;
    for (int i = 0; args && args[i] && k < 7; i++)
        argv[k++] = (char *)args[i];
    argv[k] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, name, O_RDWR, 0);
    posix_spawn_file_actions_adddup2(&fa, 0, 1);
    posix_spawn_file_actions_adddup2(&fa, 0, 2);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    setenv("TERM", "xterm-256color", 1);
    char *idle[] = {"/bin/sleep", "600", NULL};
    int rc = args == NULL ? posix_spawn(&t->pid, idle[0], &fa, &attr, idle, environ)
                          : posix_spawn(&t->pid, canopy, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(slave);
    if (rc != 0) {
        fprintf(stderr, "bench: cannot run %s: %s\n", canopy, strerror(rc));
        close(t->master);
        return -1;
    }
    snprintf(t->count, sizeof(t->count), "/tmp/canopy-bench-tui.%d", (int)getpid());
    t->reader = drain(t->master, t->count);
    return 0;
}

static void term_keys(term_t *t, const char *keys)
{
    if (write(t->master, keys, strlen(keys)) < 0)
        perror("bench: keys");
}

/* Stops the TUI; returns how many bytes it drew. */
static long term_stop(term_t *t)
{
    kill(t->pid, SIGTERM);
    waitpid(t->pid, NULL, 0);
    close(t->master); /* the reader sees EIO and ends */
    long n = -1;
    if (t->reader > 0) {
        waitpid(t->reader, NULL, 0);
        FILE *f = fopen(t->count, "r");
        if (f && fscanf(f, "%ld", &n) != 1)
            n = -1;
        if (f)
            fclose(f);
        unlink(t->count);
    }
    return n;
}

/* CPU seconds (user + system) that pid has used. */
static double cpu_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command's name */
    unsigned long ut = 0, st = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                            &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The CPU share of a canopy attach, started with args, over IDLE_S. */
static double idle_pct(const char *const *args, const char *keys, long *bytes)
{
    term_t t;
    if (term_start(&t, args) < 0)
        return -1;
    cn_sleep(2000); /* attached and settled */
    if (keys)
        term_keys(&t, keys);
    cn_sleep(500);
    double c0 = cpu_s(t.pid), w0 = bench_now();
    cn_sleep((int64_t)(IDLE_S * 1000));
    double c1 = cpu_s(t.pid), w1 = bench_now();
    *bytes = term_stop(&t);
    return c0 < 0 || c1 < 0 ? -1 : (c1 - c0) / (w1 - w0) * 100;
}

static int bench_main(int argc, char **argv)
{
    bench_out_t out;
    bench_open(&out, argc, argv);
    const char *tree = "bench-tui";
    cn_portal_t w, idle[IDLE_ACTORS];
    if (cn_spawn("echo", NULL, &w, 10000) != 0)
        return 1;
    for (int i = 0; i < IDLE_ACTORS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "idle-%d", i);
        if (cn_spawn(name, NULL, &idle[i], 10000) != 0)
            return 1;
    }

    const char *tui[] = {tree, NULL}, *con[] = {"--console", tree, NULL};
    long tb = 0, cb = 0;
    double base = idle_pct(con, NULL, &cb);
    double v = idle_pct(tui, NULL, &tb);
    printf("tui: idle for %.0f s: the TUI used %.3f%% of a CPU and wrote %ld bytes; the line "
           "console %.3f%% (%ld bytes)\n", IDLE_S, v, tb, base, cb);
    if (v < 0 || base < 0)
        return 1;
    bench_report(&out, "tui_idle_cpu_pct", v, "%", base,
                 "% of a CPU, the line console attached the same way");

    /* Each side runs in a pseudo-terminal that was just started: the TUI,
     * or sleep (the control). Starting a process and its terminal costs the
     * workload a few percent by itself for a while, and that is not the
     * TUI's cost. Alternated, in alternating order. */
    double off[6], on[6], busy[6], alone[6];
    contexts_per_s(w, 0.3); /* warm up */
    for (int k = 0; k < 6; k++) {
        alone[k] = contexts_per_s(w, 1.0);
        for (int side = 0; side < 2; side++) {
            int tui_side = (side + k) % 2;
            term_t t;
            if (term_start(&t, tui_side ? tui : NULL) < 0)
                return 1;
            cn_sleep(1000);
            if (tui_side)
                term_keys(&t, "3a"); /* the whole tree's contexts: the busiest view */
            cn_sleep(300);
            double c0 = cpu_s(t.pid), w0 = bench_now();
            double r = contexts_per_s(w, 1.5);
            if (tui_side) {
                on[k] = r;
                busy[k] = (cpu_s(t.pid) - c0) / (bench_now() - w0) * 100;
            } else {
                off[k] = r;
            }
            term_stop(&t);
        }
    }
    double a = bench_median(off, 6), b = bench_median(on, 6);
    double n = bench_median(alone, 6);
    printf("tui: %.0f short contexts/s with sleep in a new terminal, %.0f with the TUI attached "
           "in one (which used %.1f%% of a CPU meanwhile); %.0f with neither, %.1f%% above the "
           "TUI's\n", a, b, bench_median(busy, 6), n, n > 0 ? (n - b) / n * 100 : 0);
    bench_report(&out, "attached_overhead_tui_pct", a > 0 ? (a - b) / a * 100 : 0, "%", a,
                 "short contexts/s with sleep in a new terminal instead");
    bench_close(&out);
    cn_cancel(w, 5000);
    return a > 0 && b > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {
        .name = "bench-tui", .exports = exports, .main = bench_main, .max_threads = 64};
    return cn_run(argc, argv, &cfg);
}
