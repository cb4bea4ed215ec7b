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
 *                     with the same TUI attached but stopped (SIGSTOP);
 *                     twenty rounds of 0.75 s each way, in alternating order;
 *                     the median of the rounds' own differences, so that
 *                     the machine's drift between rounds cancels (target:
 *                     < 2 %); baseline: short contexts/s with the TUI
 *                     stopped (median). Also printed: the rate before the
 *                     TUI was started and after it left
 *
 *   tui_big_key_ms   on a tree of 200 actors with 10 000 contexts open
 *                    (20 000 context rows), the whole tree's Contexts
 *                    view: ms from PgDn written to the terminal to the
 *                    first byte the TUI draws in answer; median of 20
 *                    (target: scrolls smoothly, i.e. well under a frame
 *                    of 50 ms); baseline: the same in the Tree view (201
 *                    rows) of the same tree
 *   tui_big_cpu_pct  the TUI's CPU over 10 s in that view, snapshots of
 *                    20 000 rows coming every second; baseline:
 *                    tui_idle_cpu_pct's figure
 *
 * The pseudo-terminal's output is read and thrown away by a process of its
 * own, as a terminal would take it; for the key timings the benchmark
 * reads it itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

static const cn_export_t exports[] = {{"echo10", fn_echo10}, {"hold", fn_hold}, {NULL, NULL}};

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
 * args NULL, `sleep` (a program that draws nothing and talks to no tree).
 * With own_reader the caller reads the terminal instead of a drain. */
static int term_start_as(term_t *t, const char *const *args, int own_reader)
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
    t->reader = own_reader ? 0 : drain(t->master, t->count);
    return 0;
}

static int term_start(term_t *t, const char *const *args)
{
    return term_start_as(t, args, 0);
}

static void term_keys(term_t *t, const char *keys)
{
    if (write(t->master, keys, strlen(keys)) < 0)
        perror("bench: keys");
}

/* Reads what the TUI draws until it has been quiet for quiet_ms, the
 * first byte has not come in first_ms, or 3 s have gone (the ages on
 * screen move on, so it is never quiet for long); returns the bytes read
 * and, in *first, when the first came (0 if none). */
static long term_read(term_t *t, int first_ms, int quiet_ms, double *first)
{
    long n = 0;
    *first = 0;
    for (double until = bench_now() + 3; bench_now() < until;) {
        struct pollfd p = {.fd = t->master, .events = POLLIN};
        if (poll(&p, 1, n ? quiet_ms : first_ms) <= 0)
            break;
        char buf[65536];
        ssize_t k = read(t->master, buf, sizeof(buf));
        if (k <= 0)
            break;
        if (n == 0)
            *first = bench_now();
        n += k;
    }
    return n;
}

/* ms from writing `keys` to the first byte drawn in answer; median of
 * `times`, each after the screen has been quiet for 150 ms. */
static double key_ms(term_t *t, const char *keys, int times, long *bytes)
{
    double v[32], first;
    long total = 0;
    int n = 0;
    for (int k = 0; k < times && k < 32; k++) {
        term_read(t, 150, 150, &first); /* whatever is still coming */
        double t0 = bench_now();
        term_keys(t, keys);
        long b = term_read(t, 2000, 50, &first);
        if (b > 0) {
            v[n++] = (first - t0) * 1000;
            total += b;
        }
    }
    *bytes = n ? total / n : 0;
    return n ? bench_median(v, n) : -1;
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

/* The CPU share of the process pid over IDLE_S. */
static double cpu_pct_over(pid_t pid)
{
    double c0 = cpu_s(pid), w0 = bench_now();
    cn_sleep((int64_t)(IDLE_S * 1000));
    double c1 = cpu_s(pid), w1 = bench_now();
    return c0 < 0 || c1 < 0 ? -1 : (c1 - c0) / (w1 - w0) * 100;
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
    double v = cpu_pct_over(t.pid);
    *bytes = term_stop(&t);
    return v;
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

    /* One TUI, started once and left attached, showing the whole tree's
     * contexts (its busiest view), is alternately running and stopped
     * (SIGSTOP): the control is the same tree with the same client
     * attached, doing nothing. Starting any process next to the tree costs
     * the workload a few percent by itself for a while (the rate with no
     * terminal at all is printed to show it), and that is not the TUI's
     * cost, so the rounds begin after it has settled. */
    enum { ROUNDS = 20 };
    double off[ROUNDS], on[ROUNDS], cost[ROUNDS], busy_cpu = 0, busy_wall = 0;
    double alone = contexts_per_s(w, 1.5);
    term_t t;
    if (term_start(&t, tui) < 0)
        return 1;
    cn_sleep(1500);
    term_keys(&t, "3a");
    cn_sleep(1500);
    for (int k = 0; k < ROUNDS; k++) {
        for (int side = 0; side < 2; side++) {
            int running = (side + k) % 2;
            kill(t.pid, running ? SIGCONT : SIGSTOP);
            cn_sleep(200);
            double c0 = cpu_s(t.pid), w0 = bench_now();
            double r = contexts_per_s(w, 0.75);
            if (running) {
                on[k] = r;
                busy_cpu += cpu_s(t.pid) - c0;
                busy_wall += bench_now() - w0;
            } else {
                off[k] = r;
            }
        }
        cost[k] = off[k] > 0 ? (off[k] - on[k]) / off[k] * 100 : 0;
    }
    kill(t.pid, SIGCONT);
    term_stop(&t);
    double gone[4];
    cn_sleep(1000);
    for (int k = 0; k < 4; k++)
        gone[k] = contexts_per_s(w, 0.75);
    double a = bench_median(off, ROUNDS), b = bench_median(on, ROUNDS);
    printf("tui: %.0f short contexts/s with the TUI attached and stopped, %.0f with it running "
           "(it used %.1f%% of a CPU meanwhile); %.0f before it was started, %.0f after it "
           "left\n", a, b, busy_wall > 0 ? busy_cpu / busy_wall * 100 : 0, alone,
           bench_median(gone, 4));
    bench_report(&out, "attached_overhead_tui_pct", bench_median(cost, ROUNDS), "%", a,
                 "short contexts/s with the same TUI attached but stopped");
    cn_cancel(w, 5000);
    for (int i = 0; i < IDLE_ACTORS; i++)
        cn_cancel(idle[i], 5000);

    /* The big tree, in the TUI, scrolled. */
    double t0 = bench_now();
    if (big_run(big_spawner) < 0 || big_run(big_opener) < 0) {
        fprintf(stderr, "bench: the big tree did not come up\n");
        return 1;
    }
    printf("tui: %d actors and %d contexts up in %.1f s\n", BIG_ACTORS, BIG_ACTORS * BIG_PER,
           bench_now() - t0);
    term_t big;
    double first;
    if (term_start_as(&big, tui, 1) < 0)
        return 1;
    term_read(&big, 5000, 2000, &first); /* attached, first snapshot drawn */
    long tree_bytes, ctx_bytes;
    double tree_ms = key_ms(&big, "\033[6~\033[5~", 20, &tree_bytes); /* PgDn PgUp */
    term_keys(&big, "3a");
    term_read(&big, 3000, 1500, &first);
    double ctx_ms = key_ms(&big, "\033[6~", 20, &ctx_bytes);
    double big_cpu = cpu_pct_over(big.pid);
    kill(big.pid, SIGTERM);
    waitpid(big.pid, NULL, 0);
    close(big.master);
    printf("tui: PgDn in the whole tree's contexts (20 000 rows): %.1f ms to the first byte, "
           "%ld bytes drawn; in the tree view (201 rows): %.1f ms, %ld bytes\n", ctx_ms,
           ctx_bytes, tree_ms, tree_bytes);
    printf("tui: %.2f%% of a CPU in that view over %.0f s\n", big_cpu, IDLE_S);
    bench_report(&out, "tui_big_key_ms", ctx_ms, "ms", tree_ms,
                 "ms for PgDn in the tree view of the same tree");
    bench_report(&out, "tui_big_cpu_pct", big_cpu, "%", v, "% of a CPU, the TUI on an idle "
                 "tree of 22 actors");
    big_close();
    bench_close(&out);
    return a > 0 && b > 0 && ctx_ms >= 0 && tree_ms >= 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {
        .name = "bench-tui", .exports = exports, .main = bench_main, .max_threads = 128};
    return cn_run(argc, argv, &cfg);
}
