/*
 * workload.h: the short-context workload that the attached-overhead
 * figures run (bench_inspect.c, bench_tui.c): open a context, stream 10
 * messages each way, return; and the big tree both measure against: 200
 * leaves under the root with 50 contexts held open on each. Included by
 * one benchmark each.
 */
#ifndef CN_BENCH_WORKLOAD_H
#define CN_BENCH_WORKLOAD_H

#include <pthread.h>
#include <stdatomic.h>

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

/* ------------------------------------------------------------ the big tree */

#define BIG_ACTORS 200
#define BIG_PER 50 /* contexts held open on each leaf, by the root */
#define BIG_THREADS 8

static cn_portal_t big_leaves[BIG_ACTORS];
static cn_ctx_t *big_ctxs[BIG_ACTORS * BIG_PER];
static _Atomic int big_next, big_failed;

/* A context that stays open until it is cancelled: what the leaves hold. */
static int fn_hold(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_started(c, NULL);
    cn_sleep(600000);
    return 0;
}

static void *big_spawner(void *arg)
{
    (void)arg;
    for (int i; (i = atomic_fetch_add(&big_next, 1)) < BIG_ACTORS;) {
        char name[32];
        snprintf(name, sizeof(name), "leaf-%d", i);
        if (cn_spawn(name, NULL, &big_leaves[i], 10000) != 0)
            atomic_store(&big_failed, 1);
    }
    return NULL;
}

static void *big_opener(void *arg)
{
    (void)arg;
    for (int i; (i = atomic_fetch_add(&big_next, 1)) < BIG_ACTORS * BIG_PER;) {
        cn_result_t st;
        if (cn_open(big_leaves[i % BIG_ACTORS], "hold", NULL, &big_ctxs[i], &st, 10000) != 0)
            atomic_store(&big_failed, 1);
        cn_result_free(&st);
    }
    return NULL;
}

/* Runs fn on BIG_THREADS threads until its jobs are done; 0 or -1. */
static int big_run(void *(*fn)(void *))
{
    pthread_t t[BIG_THREADS];
    atomic_store(&big_next, 0);
    for (int i = 0; i < BIG_THREADS; i++)
        pthread_create(&t[i], NULL, fn, NULL);
    for (int i = 0; i < BIG_THREADS; i++)
        pthread_join(t[i], NULL);
    return atomic_load(&big_failed) ? -1 : 0;
}

static void big_close(void)
{
    for (int i = 0; i < BIG_ACTORS * BIG_PER; i++)
        cn_ctx_free(big_ctxs[i]);
}

#endif /* CN_BENCH_WORKLOAD_H */
