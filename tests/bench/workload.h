/*
 * workload.h: the short-context workload that the attached-overhead
 * figures run (bench_inspect.c, bench_tui.c): open a context, stream 10
 * messages each way, return. Included by one benchmark each.
 */
#ifndef CN_BENCH_WORKLOAD_H
#define CN_BENCH_WORKLOAD_H

#include "bench.h"
#include "canopy.h"

/* Echoes 10 messages, then returns: one short context. */
static int fn_echo10(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_stream_t *s;
    if (cn_started(c, NULL) < 0 || cn_call_stream(c, NULL, &s) < 0)
        return CN_EPROTO;
    cn_result_t m;
    int n = 0;
    while (cn_stream_recv(s, &m, 5000) == 0) {
        cn_stream_send(s, &m.value, 5000);
        cn_result_free(&m);
        n++;
    }
    cn_result_free(&m);
    cn_stream_close(s);
    return msgpack_pack_int(out, n);
}

/* Short contexts per second on `to`, for `secs`. */
static double contexts_per_s(cn_portal_t to, double secs)
{
    double t0 = bench_now();
    long n = 0;
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    while (bench_now() - t0 < secs) {
        cn_ctx_t *ctx;
        cn_stream_t *s;
        cn_result_t st, m;
        if (cn_open(to, "echo10", NULL, &ctx, &st, 5000) != 0 || cn_ctx_stream(ctx, NULL, &s))
            return 0;
        cn_result_free(&st);
        for (int i = 0; i < 10; i++) {
            v.via.u64 = (uint64_t)i;
            if (cn_stream_send(s, &v, 5000) != 0 || cn_stream_recv(s, &m, 5000) != 0)
                return 0;
            cn_result_free(&m);
        }
        cn_stream_close(s);
        while (cn_stream_recv(s, &m, 5000) == 0)
            cn_result_free(&m);
        cn_result_free(&m);
        if (cn_ctx_result(ctx, &m, 5000) != 0)
            return 0;
        cn_result_free(&m);
        cn_ctx_free(ctx);
        n++;
    }
    return n / (bench_now() - t0);
}

#endif /* CN_BENCH_WORKLOAD_H */
