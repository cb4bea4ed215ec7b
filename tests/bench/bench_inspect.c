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
 *                    than with none; forty rounds of 0.75 s each way, in
 *                    alternating order, and the median of the rounds' own
 *                    differences, so that the machine's drift between
 *                    rounds cancels (as bench_tui does). One round's
 *                    difference scatters by several percent on this
 *                    shared host; the spread of the middle half is
 *                    printed
 *   attached_cpu_pct how much more CPU time each context takes, the tree's
 *                    two processes together (the subscriber's thread is
 *                    in the root), with the subscriber than without; the
 *                    same rounds. It measures the work the feed adds,
 *                    which the host's noise moves far less than it moves
 *                    a rate
 *
 * The snapshot target is absolute (50 ms); its baseline shows what the
 * actors cost and what the contexts add.
 */
#include <dirent.h>
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

static _Atomic int sub_stop;
static _Atomic long sub_events;

/* A subscriber that keeps up: reads every event until told to stop. */
static void *subscriber(void *arg)
{
    cn_client_t *c = arg;
    cn_event_t ev;
    while (!atomic_load(&sub_stop))
        if (cn_client_event(c, &ev, 100) == 0)
            atomic_fetch_add(&sub_events, 1);
    return NULL;
}

/* The workload's rate for `secs` with a subscriber reading every event,
 * or with none; 0 if it failed. *cpu: the CPU seconds per context of
 * this process and of `pid`, w's. */
static double rate_with(cn_portal_t w, pid_t pid, int subscribed, double secs, double *cpu)
{
    cn_client_t *c = NULL;
    pthread_t th;
    if (subscribed) {
        if (cn_client_connect(cn_attach_path(), &c, 5000) != 0)
            return 0;
        if (cn_client_subscribe(c, 5000) != 0) {
            cn_client_close(c);
            return 0;
        }
        atomic_store(&sub_stop, 0);
        pthread_create(&th, NULL, subscriber, c);
    }
    double c0 = tree_cpu_s(pid), t0 = bench_now();
    double r = contexts_per_s(w, secs);
    double n = r * (bench_now() - t0);
    *cpu = n > 0 ? (tree_cpu_s(pid) - c0) / n : 0;
    if (subscribed) {
        atomic_store(&sub_stop, 1);
        pthread_join(th, NULL);
        cn_client_close(c);
    }
    return r;
}

/* attached_overhead_pct: rounds without and with a subscriber. */
static int overhead(bench_out_t *out)
{
    cn_portal_t w;
    cn_result_t pr;
    if (cn_spawn("echo", NULL, &w, 10000) != 0 || cn_call(w, "getpid", NULL, &pr, 5000) != 0)
        return -1;
    pid_t pid = (pid_t)pr.value.via.i64;
    cn_result_free(&pr);
    enum { ROUNDS = 40 };
    double off[ROUNDS], on[ROUNDS], cost[ROUNDS], cpu[2][ROUNDS], cpu_cost[ROUNDS];
    contexts_per_s(w, 0.3); /* warm up */
    for (int k = 0; k < ROUNDS; k++) {
        for (int side = 0; side < 2; side++) {
            int subscribed = (side + k) % 2;
            double r = rate_with(w, pid, subscribed, 0.75, &cpu[subscribed][k]);
            if (r <= 0)
                return -1;
            *(subscribed ? &on[k] : &off[k]) = r;
        }
        cost[k] = (off[k] - on[k]) / off[k] * 100;
        cpu_cost[k] = (cpu[1][k] - cpu[0][k]) / cpu[0][k] * 100;
    }
    double a = bench_median(off, ROUNDS), b = bench_median(on, ROUNDS);
    double cpu_off = bench_median(cpu[0], ROUNDS) * 1e6;
    printf("inspect: %.0f short contexts/s alone, %.0f with a subscriber (%ld events read)\n", a,
           b, atomic_load(&sub_events));
    double median = bench_median(cost, ROUNDS); /* sorts cost */
    printf("inspect: the rounds' differences: middle half %.1f to %.1f %%, all %.1f to %.1f %%\n",
           cost[ROUNDS / 4], cost[ROUNDS - 1 - ROUNDS / 4], cost[0], cost[ROUNDS - 1]);
    bench_report(out, "attached_overhead_pct", median, "%", a,
                 "short contexts/s with no subscriber");
    bench_report(out, "attached_cpu_pct", bench_median(cpu_cost, ROUNDS), "%", cpu_off,
                 "CPU us per context with no subscriber");
    cn_cancel(w, 5000);
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
