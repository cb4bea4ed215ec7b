/*
 * bench_rpc.c: round trips, spawn times and idle memory of real actors.
 *
 * This program is a canopy tree: its root runs the measurements, and
 * re-executed copies of it serve as the children. Each figure has a
 * baseline measured here, in the same run:
 *   rpc_rtt_us        cn_call root -> child and back, vs a raw socketpair
 *                     ping-pong of the same size between two processes
 *   rpc_rtt_hop_us    the same through one intermediary actor, vs the same
 *                     raw ping-pong
 *   spawn_1_ms        cn_spawn of one child until it has greeted the
 *                     parent, vs one fork+exec+wait of /bin/true
 *   spawn_100_ms      100 children spawned from 8 threads until all have
 *                     greeted, vs 100 sequential fork+exec+wait of /bin/true
 *   idle_actor_rss_kib  resident memory of an idle child that has served
 *                     calls, vs /bin/sleep: medians of 5 each
 *   idle_actor_anon_kib its private (anonymous) part, vs /bin/sleep's
 */
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "canopy.h"

extern char **environ;

#define RTT_ROUNDS 20000
#define MSG 64

/* ------------------------------------------------------------ the actors */

static cn_portal_t leaf; /* in the intermediary */
static pthread_mutex_t leaf_mu = PTHREAD_MUTEX_INITIALIZER;

static int fn_echo(cn_call_t *c, const msgpack_object *a, msgpack_packer *out)
{
    (void)c;
    return msgpack_pack_object(out, *a);
}

static int fn_getpid(cn_call_t *c, const msgpack_object *a, msgpack_packer *out)
{
    (void)c, (void)a;
    return msgpack_pack_int64(out, getpid());
}

static int fn_leaf(cn_call_t *c, const msgpack_object *a, msgpack_packer *out)
{
    (void)c, (void)a;
    pthread_mutex_lock(&leaf_mu);
    uint32_t id = leaf.id;
    pthread_mutex_unlock(&leaf_mu);
    return msgpack_pack_uint32(out, id);
}

static int mid_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_portal_t p;
    if (cn_spawn("leaf", NULL, &p, 10000) != 0)
        return 1;
    pthread_mutex_lock(&leaf_mu);
    leaf = p;
    pthread_mutex_unlock(&leaf_mu);
    cn_sleep(CN_FOREVER);
    return 0;
}

static const cn_export_t exports[] = {
    {"echo", fn_echo}, {"getpid", fn_getpid}, {"leaf", fn_leaf}, {NULL, NULL}};
static const cn_entry_t entries[] = {{"mid", mid_main}, {NULL, NULL}};

/* ------------------------------------------------------------ baselines */

/* Mean round trip of MSG bytes over a socketpair to a forked echo process. */
static double raw_rtt_us(int rounds)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        char b[MSG];
        close(sv[0]);
        for (;;) {
            ssize_t n = read(sv[1], b, sizeof(b));
            if (n <= 0 || write(sv[1], b, (size_t)n) != n)
                _exit(0);
        }
    }
    close(sv[1]);
    char b[MSG] = {0};
    double t0 = bench_now();
    for (int i = 0; i < rounds; i++) {
        if (write(sv[0], b, sizeof(b)) != sizeof(b))
            break;
        size_t got = 0;
        while (got < sizeof(b)) {
            ssize_t n = read(sv[0], b + got, sizeof(b) - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    double us = (bench_now() - t0) * 1e6 / rounds;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return us;
}

static double fork_exec_true_ms(int n)
{
    double t0 = bench_now();
    for (int i = 0; i < n; i++) {
        pid_t pid;
        char *argv[] = {"true", NULL};
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) == 0)
            waitpid(pid, NULL, 0);
    }
    return (bench_now() - t0) * 1e3;
}

/* ------------------------------------------------------------ measures */

static double call_rtt_us(cn_portal_t to, int rounds)
{
    static char payload[MSG - 8];
    msgpack_object arg = {.type = MSGPACK_OBJECT_BIN};
    arg.via.bin.ptr = payload;
    arg.via.bin.size = sizeof(payload);
    for (int i = 0; i < 200; i++) { /* warm up threads and caches */
        cn_result_t r;
        cn_call(to, "echo", &arg, &r, 5000);
        cn_result_free(&r);
    }
    double t0 = bench_now();
    for (int i = 0; i < rounds; i++) {
        cn_result_t r;
        if (cn_call(to, "echo", &arg, &r, 5000) != 0) {
            fprintf(stderr, "bench: call failed: %s\n", r.error.message);
            exit(1);
        }
        cn_result_free(&r);
    }
    return (bench_now() - t0) * 1e6 / rounds;
}

struct spawner {
    pthread_t th;
    int first, count;
    cn_portal_t *out;
    int failed;
};

static void *spawn_some(void *p)
{
    struct spawner *s = p;
    for (int i = 0; i < s->count; i++) {
        char name[32];
        snprintf(name, sizeof(name), "kid-%d", s->first + i);
        if (cn_spawn(name, NULL, &s->out[s->first + i], 20000) != 0)
            s->failed++;
    }
    return NULL;
}

/* Idle memory: IDLE_N children that have each served calls, then sit
 * idle (the echo child and IDLE_N - 1 more), against as many /bin/sleep.
 * Most of either's RSS is libc's pages, shared with every process, and
 * how many of those a process has mapped moves by some 100 KiB with the
 * address the loader picked for libc (the kernel maps file pages in
 * aligned runs around each one touched): one process is one draw of
 * that, so each figure is the median of IDLE_N, and the range is
 * printed. The private (anonymous) part is what each actor really adds. */
#define IDLE_N 5

static int idle_memory(bench_out_t *out, cn_portal_t echo)
{
    double kib[IDLE_N], anon[IDLE_N], base_kib[IDLE_N], base_anon[IDLE_N];
    cn_portal_t more[IDLE_N];
    for (int i = 0; i < IDLE_N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "idle-%d", i);
        more[i] = echo;
        if (i > 0 && cn_spawn(name, NULL, &more[i], 10000) != 0)
            return -1;
        if (i > 0)
            call_rtt_us(more[i], 100); /* served, like echo */
    }
    usleep(100000);
    for (int i = 0; i < IDLE_N; i++) {
        cn_result_t r;
        kib[i] = anon[i] = -1;
        if (cn_call(more[i], "getpid", NULL, &r, 5000) == 0) {
            kib[i] = (double)bench_proc_kib((pid_t)r.value.via.i64, "status", "VmRSS");
            anon[i] = (double)bench_proc_kib((pid_t)r.value.via.i64, "smaps_rollup", "Anonymous");
        }
        cn_result_free(&r);
        if (i > 0)
            cn_cancel(more[i], 5000);
        pid_t sp;
        char *sargv[] = {"sleep", "5", NULL};
        base_kib[i] = base_anon[i] = -1;
        if (posix_spawn(&sp, "/bin/sleep", NULL, NULL, sargv, environ) == 0) {
            usleep(100000);
            base_kib[i] = (double)bench_proc_kib(sp, "status", "VmRSS");
            base_anon[i] = (double)bench_proc_kib(sp, "smaps_rollup", "Anonymous");
            kill(sp, SIGKILL);
            waitpid(sp, NULL, 0);
        }
        if (kib[i] < 0 || anon[i] < 0 || base_kib[i] < 0 || base_anon[i] < 0) {
            fprintf(stderr, "bench: cannot read an idle process's memory\n");
            return -1;
        }
    }
    double k = bench_median(kib, IDLE_N), bk = bench_median(base_kib, IDLE_N);
    printf("rpc: idle RSS of %d actors %.0f to %.0f KiB, of %d /bin/sleep %.0f to %.0f KiB\n",
           IDLE_N, kib[0], kib[IDLE_N - 1], IDLE_N, base_kib[0], base_kib[IDLE_N - 1]);
    bench_report(out, "idle_actor_rss_kib", k, "KiB", bk, "/bin/sleep RSS");
    bench_report(out, "idle_actor_anon_kib", bench_median(anon, IDLE_N), "KiB",
                 bench_median(base_anon, IDLE_N), "/bin/sleep anonymous");
    return 0;
}

static int bench_main(int argc, char **argv)
{
    bench_out_t out;
    bench_open(&out, argc, argv);
    printf("rpc: %d round trips of ~%d bytes; spawn: medians; libuv and msgpack-c linked %s\n",
           RTT_ROUNDS, MSG, bench_deps_linking());

    /* Round trips, each against a raw ping-pong measured right beside it. */
    cn_portal_t echo, mid;
    cn_spawn_opts_t mo = {.entry = "mid"};
    if (cn_spawn("echo", NULL, &echo, 10000) != 0 || cn_spawn("mid", &mo, &mid, 10000) != 0) {
        fprintf(stderr, "bench: cannot spawn\n");
        return 1;
    }
    cn_portal_t far = {0};
    for (int i = 0; i < 500 && far.id == 0; i++) {
        cn_result_t r;
        if (cn_call(mid, "leaf", NULL, &r, 5000) == 0)
            far.id = (uint32_t)r.value.via.u64;
        cn_result_free(&r);
        if (far.id == 0)
            usleep(10000);
    }
    double raw[5], rtt[5], hop[5], raw2[5];
    for (int t = 0; t < 5; t++) {
        raw[t] = raw_rtt_us(RTT_ROUNDS / 5);
        rtt[t] = call_rtt_us(echo, RTT_ROUNDS / 5);
        raw2[t] = raw_rtt_us(RTT_ROUNDS / 5);
        hop[t] = call_rtt_us(far, RTT_ROUNDS / 5);
    }
    double raw_m = bench_median(raw, 5), raw2_m = bench_median(raw2, 5);
    bench_report(&out, "rpc_rtt_us", bench_median(rtt, 5), "us", raw_m, "raw socketpair RTT");
    bench_report(&out, "rpc_rtt_hop_us", bench_median(hop, 5), "us", raw2_m, "raw socketpair RTT");

    if (idle_memory(&out, echo) < 0)
        return 1;
    cn_cancel(echo, 5000);
    cn_cancel(mid, 5000);

    /* One child, until it has greeted us. */
    double one[9], base1[9];
    for (int t = 0; t < 9; t++) {
        cn_portal_t p;
        base1[t] = fork_exec_true_ms(1);
        double t0 = bench_now();
        if (cn_spawn("one", NULL, &p, 10000) != 0)
            return 1;
        one[t] = (bench_now() - t0) * 1e3;
        cn_cancel(p, 5000);
    }
    bench_report(&out, "spawn_1_ms", bench_median(one, 9), "ms", bench_median(base1, 9),
                 "fork+exec+wait /bin/true");

    /* 100 children from 8 threads, all greeted. */
    enum { N = 100, THREADS = 8 };
    double hundred[3], base100[3];
    for (int t = 0; t < 3; t++) {
        static cn_portal_t kids[N];
        struct spawner sp8[THREADS];
        base100[t] = fork_exec_true_ms(N);
        double t0 = bench_now();
        for (int i = 0; i < THREADS; i++) {
            sp8[i] = (struct spawner){.first = i * N / THREADS,
                                      .count = (i + 1) * N / THREADS - i * N / THREADS,
                                      .out = kids};
            pthread_create(&sp8[i].th, NULL, spawn_some, &sp8[i]);
        }
        int failed = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(sp8[i].th, NULL);
            failed += sp8[i].failed;
        }
        hundred[t] = (bench_now() - t0) * 1e3;
        if (failed) {
            fprintf(stderr, "bench: %d of %d spawns failed\n", failed, N);
            return 1;
        }
        for (int i = 0; i < N; i++)
            cn_cancel(kids[i], 5000);
    }
    bench_report(&out, "spawn_100_ms", bench_median(hundred, 3), "ms", bench_median(base100, 3),
                 "100 sequential fork+exec+wait /bin/true");
    bench_close(&out);
    return 0;
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {
        .name = "bench", .exports = exports, .entries = entries, .main = bench_main};
    return cn_run(argc, argv, &cfg);
}
