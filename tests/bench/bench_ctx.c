/*
 * bench_ctx.c: memory of 10 000 open contexts on one actor.
 *
 * The root opens N contexts on one child, each of which starts and then
 * waits to be cancelled, and reads the child's memory before and after:
 *   ctx_10k_anon_kib   private (anonymous) memory the open contexts add
 *   baseline           the child's private memory when idle, same run
 * An open context runs on a task thread of its own at the callee, so this
 * is mostly thread stacks and per-thread state.
 */
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "canopy.h"

#define N 10000

static int fn_hold(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_started(c, NULL);
    cn_sleep(600000);
    return 0;
}

static int fn_getpid(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    return msgpack_pack_int64(out, getpid());
}

static const cn_export_t exports[] = {{"hold", fn_hold}, {"getpid", fn_getpid}, {NULL, NULL}};

static int bench_main(int argc, char **argv)
{
    bench_out_t out;
    bench_open(&out, argc, argv);
    cn_portal_t kid;
    cn_result_t r;
    if (cn_spawn("holder", NULL, &kid, 5000) != 0 || cn_call(kid, "getpid", NULL, &r, 5000) != 0)
        return 1;
    pid_t pid = (pid_t)r.value.via.i64;
    cn_result_free(&r);
    long before = bench_proc_kib(pid, "smaps_rollup", "Anonymous");
    static cn_ctx_t *ctx[N];
    double t0 = bench_now();
    int opened = 0;
    for (; opened < N; opened++) {
        cn_result_t st;
        if (cn_open(kid, "hold", NULL, &ctx[opened], &st, 10000) != 0) {
            fprintf(stderr, "bench: open %d: %s\n", opened, st.error.message);
            cn_result_free(&st);
            break;
        }
        cn_result_free(&st);
    }
    double secs = bench_now() - t0;
    long after = bench_proc_kib(pid, "smaps_rollup", "Anonymous");
    printf("contexts: %d opened in %.2f s; holder's anonymous memory %ld -> %ld KiB "
           "(%.1f KiB each)\n",
           opened, secs, before, after, opened ? (double)(after - before) / opened : 0.0);
    bench_report(&out, "ctx_10k_anon_kib", (double)(after - before), "KiB", (double)before,
                 "the holder idle");
    for (int i = 0; i < opened; i++)
        cn_ctx_free(ctx[i]); /* cancels each */
    cn_cancel(kid, 10000);
    bench_close(&out);
    return opened == N ? 0 : 1;
}

int main(int argc, char **argv)
{
    /* The holder needs a task thread per open context. */
    static const cn_config_t cfg = {
        .name = "bench", .exports = exports, .main = bench_main, .max_threads = N + 64};
    return cn_run(argc, argv, &cfg);
}
