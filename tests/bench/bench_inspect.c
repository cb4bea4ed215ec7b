/*
 * bench_inspect.c: how long a whole-tree snapshot takes, through the
 * attach socket, as `canopy` takes it.
 *
 *   snapshot_10k_ms  200 actors, 10 000 open contexts (50 on each leaf,
 *                    opened by the root, so 20 000 context rows in all):
 *                    client connect excluded, request to decoded structs
 *   baseline         the same tree before the contexts are opened
 *
 * The target is absolute (50 ms); the baseline shows what the actors
 * cost and what the contexts add.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "bench.h"
#include "canopy.h"
#include "canopy/client.h"

#define ACTORS 200
#define PER 50
#define SPAWNERS 8

static cn_portal_t leaves[ACTORS];
static cn_ctx_t *ctxs[ACTORS * PER];
static _Atomic int next_job, failed;

static int fn_hold(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_started(c, NULL);
    cn_sleep(600000);
    return 0;
}

static const cn_export_t exports[] = {{"hold", fn_hold}, {NULL, NULL}};

static void *spawner(void *arg)
{
    (void)arg;
    for (int i; (i = atomic_fetch_add(&next_job, 1)) < ACTORS;) {
        char name[32];
        snprintf(name, sizeof(name), "leaf-%d", i);
        if (cn_spawn(name, NULL, &leaves[i], 10000) != 0)
            atomic_store(&failed, 1);
    }
    return NULL;
}

static void *opener(void *arg)
{
    (void)arg;
    for (int i; (i = atomic_fetch_add(&next_job, 1)) < ACTORS * PER;) {
        cn_result_t st;
        if (cn_open(leaves[i % ACTORS], "hold", NULL, &ctxs[i], &st, 10000) != 0)
            atomic_store(&failed, 1);
        cn_result_free(&st);
    }
    return NULL;
}

static void run_all(void *(*fn)(void *))
{
    pthread_t t[SPAWNERS];
    atomic_store(&next_job, 0);
    for (int i = 0; i < SPAWNERS; i++)
        pthread_create(&t[i], NULL, fn, NULL);
    for (int i = 0; i < SPAWNERS; i++)
        pthread_join(t[i], NULL);
}

/* Median of 5 snapshots, in ms; checks what each holds. */
static double snapshot_ms(cn_client_t *c, size_t want_rows)
{
    double t[5];
    for (int k = 0; k < 5; k++) {
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
        if (s->nactors != ACTORS + 1 || s->unresponsive || rows < want_rows) {
            fprintf(stderr, "bench: snapshot has %zu actors (%u unresponsive), %zu rows\n",
                    s->nactors, s->unresponsive, rows);
            cn_snapshot_free(s);
            return -1;
        }
        cn_snapshot_free(s);
    }
    return bench_median(t, 5);
}

static int bench_main(int argc, char **argv)
{
    bench_out_t out;
    bench_open(&out, argc, argv);
    double t0 = bench_now();
    run_all(spawner);
    if (atomic_load(&failed))
        return 1;
    printf("inspect: %d actors up in %.2f s\n", ACTORS, bench_now() - t0);
    cn_client_t *c;
    if (cn_attach_path() == NULL || cn_client_connect(cn_attach_path(), &c, 5000) != 0) {
        fprintf(stderr, "bench: cannot attach: %s\n", cn_client_error());
        return 1;
    }
    double base = snapshot_ms(c, 0);
    t0 = bench_now();
    run_all(opener);
    if (atomic_load(&failed))
        return 1;
    printf("inspect: %d contexts open in %.2f s\n", ACTORS * PER, bench_now() - t0);
    double v = snapshot_ms(c, 2 * ACTORS * PER);
    cn_client_close(c);
    printf("inspect: whole-tree snapshot, median of 5\n");
    bench_report(&out, "snapshot_10k_ms", v, "ms", base, "the same 200 actors, no contexts");
    for (int i = 0; i < ACTORS * PER; i++)
        cn_ctx_free(ctxs[i]);
    bench_close(&out);
    return v < 0 || base < 0;
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {
        .name = "bench-inspect", .exports = exports, .main = bench_main, .max_threads = 128};
    return cn_run(argc, argv, &cfg);
}
