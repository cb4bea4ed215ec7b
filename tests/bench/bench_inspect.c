/*
 * bench_inspect.c: how long a whole-tree snapshot takes, through the
 * attach socket, as `canopy` takes it.
 *
 *   snapshot_10k_ms  200 actors, 10 000 open contexts (50 on each leaf,
 *                    opened by the root, so 20 000 context rows in all):
 *                    client connect excluded, request to decoded structs;
 *                    median of 5 after two warm-up snapshots (printed)
 *   baseline         the same tree before the contexts are opened
 *
 *   attached_overhead_pct  how much slower a workload of short contexts
 *                    (open, 10 messages each way, return) runs with an
 *                    event subscriber attached and reading every event
 *                    than with none, with the tree and the subscriber on
 *                    one CPU (why: overhead(), below); forty rounds of
 *                    0.75 s each way, in alternating order, and the median
 *                    of the rounds' own differences, so that the machine's
 *                    drift between rounds cancels (as bench_tui does). The
 *                    spread of the middle half is printed
 *   attached_cpu_pct how much more CPU time each context takes, the tree's
 *                    two processes together (the subscriber's thread is
 *                    in the root), with the subscriber than without; the
 *                    same rounds
 *   attached_overhead_allcpus_pct  the same comparison with the threads
 *                    free on every CPU (twenty-four rounds each way): what
 *                    the scheduler's placement adds, for the record
 *   waker_overhead_allcpus_pct  the control for it: the same rounds with a
 *                    thread that only sleeps 50 ms at a time in place of
 *                    the subscriber
 *
 * The snapshot target is absolute (50 ms); its baseline shows what the
 * actors cost and what the contexts add.
 */
#include <dirent.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "workload.h"
#include "canopy.h"
#include "canopy/client.h"

static int fn_getpid(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    return msgpack_pack_int64(out, getpid());
}

static const cn_export_t exports[] = {
    {"hold", fn_hold}, {"echo10", fn_echo10}, {"getpid", fn_getpid}, {NULL, NULL}};

/* CPU seconds used so far by this process and by every thread of `pid`
 * (from schedstat: nanoseconds, where stat has 10 ms ticks). */
static double tree_cpu_s(pid_t pid)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    double s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        char f[128];
        unsigned long long ns;
        snprintf(f, sizeof(f), "%s/%s/schedstat", path, e->d_name);
        FILE *fp = e->d_name[0] != '.' ? fopen(f, "r") : NULL;
        if (fp && fscanf(fp, "%llu", &ns) == 1)
            s += (double)ns / 1e9;
        if (fp)
            fclose(fp);
    }
    if (d)
        closedir(d);
    return s;
}

static _Atomic int side_stop;
static _Atomic long sub_events;

/* A subscriber that keeps up: reads every event until told to stop. */
static void *subscriber(void *arg)
{
    cn_client_t *c = arg;
    cn_event_t ev;
    while (!atomic_load(&side_stop))
        if (cn_client_event(c, &ev, 100) == 0)
            atomic_fetch_add(&sub_events, 1);
    return NULL;
}

/* The control: a thread that does nothing but wake 20 times a second, as
 * often as the subscriber's does (the root writes its subscribers once
 * every CN__EVENTS_MS, 50). */
static void *waker(void *arg)
{
    (void)arg;
    while (!atomic_load(&side_stop))
        usleep(50000);
    return NULL;
}

enum { ALONE, SUBSCRIBED, WAKER, NMODES };

/* The workload's rate for `secs` in `mode`: alone, with a subscriber
 * reading every event, or with the waker; 0 if it failed. *cpu: the CPU
 * seconds per context of this process and of `pid`, w's. */
static double rate_in(cn_portal_t w, pid_t pid, int mode, double secs, double *cpu)
{
    cn_client_t *c = NULL;
    pthread_t th;
    atomic_store(&side_stop, 0);
    if (mode == SUBSCRIBED) {
        if (cn_client_connect(cn_attach_path(), &c, 5000) != 0)
            return 0;
        if (cn_client_subscribe(c, 5000) != 0) {
            cn_client_close(c);
            return 0;
        }
    }
    if (mode != ALONE)
        pthread_create(&th, NULL, mode == SUBSCRIBED ? subscriber : waker, c);
    double c0 = tree_cpu_s(pid), t0 = bench_now();
    double r = contexts_per_s(w, secs);
    double n = r * (bench_now() - t0);
    *cpu = n > 0 ? (tree_cpu_s(pid) - c0) / n : 0;
    atomic_store(&side_stop, 1);
    if (mode != ALONE)
        pthread_join(th, NULL);
    if (c)
        cn_client_close(c);
    return r;
}

/* Sets the CPUs of every thread of `pid` (threads made later inherit
 * their maker's). */
static void set_cpus(pid_t pid, const cpu_set_t *set)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            sched_setaffinity((pid_t)atoi(e->d_name), sizeof(*set), set);
    if (d)
        closedir(d);
}

#define ROUNDS 40

/* One run of the workload on a fresh child: `rounds` rounds of 0.75 s in
 * each of the first `nmodes` modes, in rotating order so that the
 * machine's drift between rounds cancels, and per mode the median of the
 * rounds' own differences from ALONE: cost[mode] in % of the rate,
 * cpu_cost[mode] in % of the CPU per context. */
typedef struct run {
    double rate[NMODES][ROUNDS], cpu[NMODES][ROUNDS];
    double cost[NMODES], cpu_cost[NMODES], lo[NMODES], hi[NMODES];
} run_t;

static int run_rounds(run_t *out, const char *name, int nmodes, int rounds)
{
    cn_portal_t w;
    cn_result_t pr;
    if (cn_spawn(name, NULL, &w, 10000) != 0 || cn_call(w, "getpid", NULL, &pr, 5000) != 0)
        return -1;
    pid_t pid = (pid_t)pr.value.via.i64;
    cn_result_free(&pr);
    double d[NMODES][ROUNDS], dc[NMODES][ROUNDS];
    double unused;
    rate_in(w, pid, ALONE, 0.3, &unused); /* warm up */
    for (int k = 0; k < rounds; k++) {
        for (int j = 0; j < nmodes; j++) {
            int m = (j + k) % nmodes;
            if ((out->rate[m][k] = rate_in(w, pid, m, 0.75, &out->cpu[m][k])) <= 0)
                return -1;
        }
        for (int m = 1; m < nmodes; m++) {
            d[m][k] = (out->rate[ALONE][k] - out->rate[m][k]) / out->rate[ALONE][k] * 100;
            dc[m][k] = (out->cpu[m][k] - out->cpu[ALONE][k]) / out->cpu[ALONE][k] * 100;
        }
    }
    for (int m = 1; m < nmodes; m++) {
        out->cost[m] = bench_median(d[m], rounds); /* sorts d[m] */
        out->lo[m] = d[m][rounds / 4];
        out->hi[m] = d[m][rounds - 1 - rounds / 4];
        out->cpu_cost[m] = bench_median(dc[m], rounds);
    }
    cn_cancel(w, 5000);
    return 0;
}

/*
 * attached_overhead_pct and the figures beside it. The workload is a
 * ping-pong that keeps about one CPU busy, and on two vCPUs its rate
 * moves with where the scheduler puts its threads: rounds of 0.25 s with
 * nothing attached ran at 950 to 1890 contexts/s one after another, and
 * any thread that wakes now and then, the subscriber's or one that only
 * sleeps, moves them (docs/performance.md). So the target is measured
 * with the whole tree and its subscriber on one CPU, where nothing is
 * left to place and every cycle the feed costs, in either actor or in
 * the subscriber, is a cycle the workload loses. The same comparison on
 * every CPU, and the control thread's, are printed beside it.
 */
static int overhead(bench_out_t *out)
{
    static run_t all, one;
    if (run_rounds(&all, "echo", NMODES, ROUNDS * 3 / 5) < 0)
        return -1;
    cpu_set_t cpus, first;
    CPU_ZERO(&first);
    if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0)
        return -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &cpus)) {
            CPU_SET(i, &first);
            break;
        }
    set_cpus(getpid(), &first);
    int rc = run_rounds(&one, "echo-1cpu", 2, ROUNDS);
    set_cpus(getpid(), &cpus);
    if (rc < 0)
        return -1;

    double a1 = bench_median(one.rate[ALONE], ROUNDS), b1 = bench_median(one.rate[SUBSCRIBED], ROUNDS);
    double cpu1 = bench_median(one.cpu[ALONE], ROUNDS) * 1e6;
    int n = ROUNDS * 3 / 5;
    double a = bench_median(all.rate[ALONE], n), b = bench_median(all.rate[SUBSCRIBED], n);
    printf("inspect: on one CPU, %.0f short contexts/s alone and %.0f with a subscriber;"
           " middle half of the rounds' differences %.1f to %.1f %%\n",
           a1, b1, one.lo[SUBSCRIBED], one.hi[SUBSCRIBED]);
    printf("inspect: on every CPU, %.0f alone and %.0f with a subscriber (middle half %.1f to"
           " %.1f %%); a thread that only wakes 20 times a second: %.1f %% (%.1f to %.1f %%)\n",
           a, b, all.lo[SUBSCRIBED], all.hi[SUBSCRIBED], all.cost[WAKER], all.lo[WAKER],
           all.hi[WAKER]);
    printf("inspect: %ld events read\n", atomic_load(&sub_events));
    bench_report(out, "attached_overhead_pct", one.cost[SUBSCRIBED], "%", a1,
                 "short contexts/s with no subscriber, one CPU");
    bench_report(out, "attached_cpu_pct", one.cpu_cost[SUBSCRIBED], "%", cpu1,
                 "CPU us per context with no subscriber, one CPU");
    bench_report(out, "attached_overhead_allcpus_pct", all.cost[SUBSCRIBED], "%", a,
                 "short contexts/s with no subscriber, every CPU");
    bench_report(out, "waker_overhead_allcpus_pct", all.cost[WAKER], "%", a,
                 "the same; a thread that only wakes 20/s instead");
    return 0;
}

/* Median of 5 snapshots, in ms, after `warm` discarded ones (printed);
 * checks what each holds. */
static double snapshot_ms(cn_client_t *c, size_t want_rows, int warm)
{
    double t[5 + 2];
    for (int k = 0; k < 5 + warm; k++) {
        cn_snapshot_t *s;
        double t0 = bench_now();
        if (cn_client_snapshot(c, 5000, 20000, &s) != 0) {
            fprintf(stderr, "bench: snapshot: %s\n", cn_client_error());
            return -1;
        }
        t[k] = (bench_now() - t0) * 1000;
        size_t rows = 0;
        for (size_t i = 0; i < s->nactors; i++)
            rows += s->actors[i].ncontexts;
        if (s->nactors != BIG_ACTORS + 1 || s->unresponsive || rows < want_rows) {
            fprintf(stderr, "bench: snapshot has %zu actors (%u unresponsive), %zu rows\n",
                    s->nactors, s->unresponsive, rows);
            cn_snapshot_free(s);
            return -1;
        }
        cn_snapshot_free(s);
    }
    for (int k = 0; k < warm; k++)
        printf("inspect: warm-up snapshot %d: %.1f ms\n", k + 1, t[k]);
    return bench_median(t + warm, 5);
}

static int bench_main(int argc, char **argv)
{
    bench_out_t out;
    bench_open(&out, argc, argv);
    if (overhead(&out) < 0) {
        fprintf(stderr, "bench: the overhead run failed\n");
        return 1;
    }
    double t0 = bench_now();
    if (big_run(big_spawner) < 0)
        return 1;
    printf("inspect: %d actors up in %.2f s\n", BIG_ACTORS, bench_now() - t0);
    cn_client_t *c;
    if (cn_attach_path() == NULL || cn_client_connect(cn_attach_path(), &c, 5000) != 0) {
        fprintf(stderr, "bench: cannot attach: %s\n", cn_client_error());
        return 1;
    }
    double base = snapshot_ms(c, 0, 0);
    t0 = bench_now();
    if (big_run(big_opener) < 0)
        return 1;
    printf("inspect: %d contexts open in %.2f s\n", BIG_ACTORS * BIG_PER, bench_now() - t0);
    /* The first snapshots after 10 000 contexts open touch fresh memory
     * everywhere (two to five times slower); a tool asks again and again,
     * so the figure is the steady one after two. */
    double v = snapshot_ms(c, 2 * BIG_ACTORS * BIG_PER, 2);
    cn_client_close(c);
    printf("inspect: whole-tree snapshot, median of 5\n");
    bench_report(&out, "snapshot_10k_ms", v, "ms", base, "the same 200 actors, no contexts");
    big_close();
    bench_close(&out);
    return v < 0 || base < 0;
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {
        .name = "bench-inspect", .exports = exports, .main = bench_main, .max_threads = 128};
    return cn_run(argc, argv, &cfg);
}
