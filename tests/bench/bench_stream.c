/*
 * bench_stream.c: stream throughput, root -> child, 64-byte messages,
 * backpressure on.
 *
 *   stream_64b_per_s      messages per second through a context's stream,
 *                         until the receiver has taken them all, with a
 *                         receive window of BIG_WINDOW messages
 *   stream_64b_w64_per_s  the same with the default window of 64
 *   baseline              unbatched raw writes: one write() of 64 bytes per
 *                         message over a socketpair to a process reading
 *                         them, in the same run
 *
 * N is a million: the runs of 200 000 used until the seventh day took
 * about 70 ms each, and one stall of the shared host in that time moved the
 * figure by a quarter (2.2-3.5 M msg/s from run to run); a million
 * messages take 0.25-0.35 s, and the raw baseline, which writes as many,
 * 2.5 s.
 *
 * Why two windows: a window of W messages allows at most W in flight, so
 * the rate is at most W per credit round trip, and a round trip cannot be
 * shorter than the raw socketpair ping-pong (about 25 us here). With
 * W = 64 that caps any design at 64 / 25 us = 2.6 M msg/s, about 6x the
 * baseline, before any work is done. docs/performance.md has the figures.
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "canopy.h"

#define N 1000000
#define MSG 64
#ifndef BIG_WINDOW
#define BIG_WINDOW 4096
#endif

static int fn_sink(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    cn_stream_opts_t opts = {0}; /* the window is the argument */
    if (args && args->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        opts.window = (unsigned)args->via.u64;
    cn_stream_t *s;
    cn_started(c, NULL);
    if (cn_call_stream(c, &opts, &s) < 0)
        return CN_EPROTO;
    uint64_t n = 0;
    cn_result_t m;
    while (cn_stream_recv(s, &m, 10000) == 0) {
        cn_result_free(&m);
        n++;
    }
    cn_result_free(&m);
    return msgpack_pack_uint64(out, n);
}

static const cn_export_t exports[] = {{"sink", fn_sink}, {NULL, NULL}};

static double raw_rate(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        static char buf[65536];
        close(sv[0]);
        size_t total = 0;
        while (total < (size_t)N * MSG) {
            ssize_t n = read(sv[1], buf, sizeof(buf));
            if (n <= 0)
                break;
            total += (size_t)n;
        }
        if (write(sv[1], "k", 1) != 1)
            _exit(1);
        _exit(0);
    }
    close(sv[1]);
    char msg[MSG] = {0}, ack;
    double t0 = bench_now();
    for (int i = 0; i < N; i++)
        if (write(sv[0], msg, sizeof(msg)) != sizeof(msg))
            break;
    if (read(sv[0], &ack, 1) != 1)
        ack = 0;
    double rate = N / (bench_now() - t0);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return rate;
}

static double stream_rate(cn_portal_t sink, unsigned window)
{
    cn_ctx_t *ctx;
    cn_result_t st, res;
    cn_stream_t *s;
    msgpack_object w = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    w.via.u64 = window;
    if (cn_open(sink, "sink", &w, &ctx, &st, 5000) != 0 || cn_ctx_stream(ctx, NULL, &s) != 0)
        return 0;
    cn_result_free(&st);
    static char payload[MSG - 16]; /* a 64-byte frame in all */
    msgpack_object v = {.type = MSGPACK_OBJECT_BIN};
    v.via.bin.ptr = payload;
    v.via.bin.size = sizeof(payload);
    double t0 = bench_now();
    for (int i = 0; i < N; i++)
        if (cn_stream_send(s, &v, 10000) != 0) {
            fprintf(stderr, "bench: send: %s\n", cn_stream_last_error(s));
            return 0;
        }
    cn_stream_close(s);
    int rc = cn_ctx_result(ctx, &res, 60000);
    double rate = N / (bench_now() - t0);
    if (rc != 0 || res.value.via.u64 != N) {
        fprintf(stderr, "bench: the sink got %llu of %d\n", (unsigned long long)res.value.via.u64,
                N);
        rate = 0;
    }
    cn_result_free(&res);
    cn_ctx_free(ctx);
    return rate;
}

#define STR_(x) #x
#define STR(x) STR_(x)

static int bench_main(int argc, char **argv)
{
    bench_out_t out;
    bench_open(&out, argc, argv);
    cn_portal_t sink;
    if (cn_spawn("sink", NULL, &sink, 5000) != 0)
        return 1;
    double raw[3], big[3], w64[3];
    for (int t = 0; t < 3; t++) {
        raw[t] = raw_rate();
        big[t] = stream_rate(sink, BIG_WINDOW);
        w64[t] = stream_rate(sink, 64);
    }
    double r = bench_median(raw, 3);
    printf("stream: %d messages of %d bytes, median of 3\n", N, MSG);
    bench_report(&out, "stream_64b_per_s", bench_median(big, 3), "msg/s", r,
                 "unbatched 64 B socketpair writes; window " STR(BIG_WINDOW));
    bench_report(&out, "stream_64b_w64_per_s", bench_median(w64, 3), "msg/s", r,
                 "unbatched 64 B socketpair writes; window 64 (default)");
    bench_close(&out);
    return 0;
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {.name = "bench", .exports = exports, .main = bench_main};
    return cn_run(argc, argv, &cfg);
}
