/*
 * soak.c: a tree under sustained load, watched for growth (issue #10; the
 * figures are in docs/reliability.md).
 *
 *   soak cycles N [--json FILE]
 *       N times: spawn a child, call it, open a context on it and cancel
 *       that, cancel the child. The root's RSS and fd count after the
 *       first tenth are the baseline; at the end the fds must be the same
 *       and the RSS within CYCLE_RSS_KIB of it; no child may be left a
 *       zombie.
 *
 *   soak big SECONDS [--slow] [--actors N] [--json FILE]
 *       N leaves (default 200) with 50 contexts held open on each (10 000
 *       for 200), while two threads open short contexts on random leaves
 *       (a steady stream of events) and a TUI-style client watches: one
 *       connection subscribed to the event feed, another taking a
 *       snapshot every second. After a warm-up (a fifth of the run, at
 *       least WARM_S), the
 *       root's RSS and the whole tree's (summed from the snapshots) are
 *       sampled; the last sample may exceed the first by at most
 *       BIG_ROOT_KIB and BIG_TREE_PCT. The subscriber must lose no events;
 *       with --slow it reads for 3 s, then nothing for 10 s (a suspended
 *       TUI), and so on, and must be told, with counts, that it lost some.
 *
 * Both run the root under a parent that counts processes escaping the
 * tree's reaping (harness.h). Exit status 0 when every check held.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canopy.h"
#include "canopy/client.h"
#include "harness.h"

#define IO_MS 10000
#define CYCLE_RSS_KIB 1024 /* the root's RSS after N cycles over its baseline */
#define BIG_ROOT_KIB 2048  /* the root's RSS, last sample over first */
#define BIG_TREE_PCT 2.0   /* the tree's summed RSS, likewise */
#define BIG_PER 50         /* contexts held on each leaf */
#define WARM_S 8           /* at least: snapshots and churn settle the allocators */
#define SPAWNERS 8
#define CHURNERS 2

static int failures;
/* SOAK_NO_RSS=1 (test_soak.sh sets it under a sanitizer, whose allocator
 * holds freed memory in quarantine; LeakSanitizer watches leaks there). */
static int check_rss = 1;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("VIOLATION " __VA_ARGS__);                                                      \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* ----------------------------------------------------------- the leaves */

static int fn_echo(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c;
    return msgpack_pack_object(out, *args);
}

static int fn_hold(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    int rc = cn_started(c, NULL);
    if (rc == 0)
        rc = cn_sleep(3600 * 1000);
    return rc < 0 ? rc : msgpack_pack_nil(out);
}

static int fn_quick(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    int rc = cn_started(c, NULL);
    return rc < 0 ? rc : msgpack_pack_nil(out);
}

static const cn_export_t exports[] = {
    {"echo", fn_echo}, {"hold", fn_hold}, {"quick", fn_quick}, {NULL, NULL}};

static const char *opt_json;
static unsigned opt_n;
static int opt_slow;
static unsigned opt_actors = 200;

static void write_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void write_json(const char *fmt, ...)
{
    FILE *f = opt_json ? fopen(opt_json, "w") : NULL;
    if (f == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

/* ------------------------------------------------------------ cycles */

static int zombie_children(void)
{
    pid_t pids[256];
    char states[256];
    size_t n = own_children(pids, states, 256);
    int z = 0;
    for (size_t i = 0; i < n && i < 256; i++)
        z += states[i] == 'Z';
    return z;
}

static int one_cycle(unsigned i)
{
    char name[32];
    snprintf(name, sizeof(name), "cycle-%u", i);
    cn_portal_t p;
    int rc = cn_spawn(name, NULL, &p, IO_MS);
    if (rc < 0) {
        printf("VIOLATION cycle %u: spawn: %s\n", i, cn_strerror(rc));
        return -1;
    }
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = i};
    cn_result_t r;
    rc = cn_call(p, "echo", &v, &r, IO_MS);
    CHECK(rc == 0 && r.value.via.u64 == i, "cycle %u: call: %s", i, cn_strerror(rc));
    cn_result_free(&r);
    cn_ctx_t *ctx;
    if ((rc = cn_open(p, "hold", NULL, &ctx, &r, IO_MS)) == 0) {
        cn_result_free(&r);
        rc = cn_ctx_cancel(ctx, IO_MS);
        CHECK(rc == 0 && cn_ctx_cancel_state(ctx) == CN_CANCEL_ACKNOWLEDGED,
              "cycle %u: context cancel: %s, state %d", i, cn_strerror(rc),
              (int)cn_ctx_cancel_state(ctx));
        cn_ctx_free(ctx);
    } else {
        CHECK(0, "cycle %u: open: %s", i, cn_strerror(rc));
        cn_result_free(&r);
    }
    rc = cn_cancel(p, IO_MS);
    CHECK(rc == 0, "cycle %u: cancel: %s", i, cn_strerror(rc));
    return 0;
}

static int cycles_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    unsigned n = opt_n, warm = opt_n / 10 ? opt_n / 10 : 1;
    long rss0 = 0, rss_max = 0;
    int fds0 = 0;
    double t0 = mono_msf();
    for (unsigned i = 0; i < n && failures < 10; i++) {
        if (i == warm) {
            rss0 = rss_kib();
            fds0 = count_fds();
        }
        if (one_cycle(i) < 0)
            failures++;
        long rss = rss_kib();
        if (i >= warm && rss > rss_max)
            rss_max = rss;
        if ((i + 1) % (n / 10 ? n / 10 : 1) == 0)
            printf("cycle %u/%u: root RSS %ld KiB, %d fds, %.0f cycles/s\n", i + 1, n, rss,
                   count_fds(), (i + 1) / ((mono_msf() - t0) / 1e3));
    }
    long rss1 = rss_kib();
    int fds1 = count_fds(), z = zombie_children();
    printf("soak cycles: %u cycles in %.0f s; root RSS %ld -> %ld KiB (peak %ld, bound +%d); "
           "fds %d -> %d; zombies %d\n",
           n, (mono_msf() - t0) / 1e3, rss0, rss1, rss_max, CYCLE_RSS_KIB, fds0, fds1, z);
    CHECK(fds1 == fds0, "the root holds %d fds, %d after the first %u cycles", fds1, fds0, warm);
    CHECK(!check_rss || rss1 - rss0 <= CYCLE_RSS_KIB, "the root's RSS grew by %ld KiB",
          rss1 - rss0);
    CHECK(z == 0, "%d children are zombies", z);
    write_json("{\"cycles\": %u, \"seconds\": %.0f, \"rss_start_kib\": %ld, \"rss_end_kib\": %ld, "
               "\"rss_peak_kib\": %ld, \"fds_start\": %d, \"fds_end\": %d, \"zombies\": %d, "
               "\"failures\": %d}\n",
               n, (mono_msf() - t0) / 1e3, rss0, rss1, rss_max, fds0, fds1, z, failures);
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------ big */

static cn_portal_t *leaves;
static cn_ctx_t **held;
static _Atomic unsigned next_job;
static _Atomic int stop_all, job_failed;
static _Atomic uint64_t churned;
static char job_why[256]; /* the first failure, under job_mu */
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;
#define BUILD_MS 30000 /* a spawn or open while 200 actors come up */

static void job_fail(const char *what, unsigned i, int rc, const cn_result_t *r)
{
    pthread_mutex_lock(&job_mu);
    if (!atomic_exchange(&job_failed, 1))
        snprintf(job_why, sizeof(job_why), "%s %u: %s%s%s", what, i, cn_strerror(rc),
                 r && r->error.message ? ": " : "", r && r->error.message ? r->error.message : "");
    pthread_mutex_unlock(&job_mu);
}

static void *spawner(void *arg)
{
    (void)arg;
    for (unsigned i; (i = atomic_fetch_add(&next_job, 1)) < opt_actors;) {
        char name[32];
        snprintf(name, sizeof(name), "leaf-%u", i);
        int rc = cn_spawn(name, NULL, &leaves[i], BUILD_MS);
        if (rc != 0)
            job_fail("spawn leaf", i, rc, NULL);
    }
    return NULL;
}

static void *opener(void *arg)
{
    (void)arg;
    for (unsigned i; (i = atomic_fetch_add(&next_job, 1)) < opt_actors * BIG_PER;) {
        cn_result_t st;
        int rc = cn_open(leaves[i % opt_actors], "hold", NULL, &held[i], &st, BUILD_MS);
        if (rc != 0)
            job_fail("open context", i, rc, &st);
        cn_result_free(&st);
    }
    return NULL;
}

static int run_jobs(void *(*fn)(void *))
{
    pthread_t t[SPAWNERS];
    atomic_store(&next_job, 0);
    for (int i = 0; i < SPAWNERS; i++)
        pthread_create(&t[i], NULL, fn, NULL);
    for (int i = 0; i < SPAWNERS; i++)
        pthread_join(t[i], NULL);
    return atomic_load(&job_failed) ? -1 : 0;
}

/* Short contexts on random leaves: open, started, return: events. */
static void *churner(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&stop_all)) {
        cn_ctx_t *ctx;
        cn_result_t r;
        int rc = cn_open(leaves[rand_r(&seed) % opt_actors], "quick", NULL, &ctx, &r, IO_MS);
        cn_result_free(&r);
        if (rc == 0) {
            cn_ctx_result(ctx, &r, IO_MS);
            cn_result_free(&r);
            cn_ctx_free(ctx);
        }
        atomic_fetch_add(&churned, 1);
        usleep(2000);
    }
    return NULL;
}

static _Atomic uint64_t ev_seen, ev_dropped, ev_markers;
static _Atomic int sub_failed;

/* The TUI's event connection: reads the feed (slowly, with --slow). */
static void *subscriber(void *arg)
{
    (void)arg;
    cn_client_t *c;
    if (cn_client_connect(cn_attach_path(), &c, IO_MS) < 0 || cn_client_subscribe(c, IO_MS) < 0) {
        printf("VIOLATION cannot subscribe: %s\n", cn_client_error());
        atomic_store(&sub_failed, 1);
        return NULL;
    }
    uint64_t woke = mono_ms();
    while (!atomic_load(&stop_all)) {
        cn_event_t ev;
        if (opt_slow && mono_ms() - woke > 3000) { /* read for 3 s, then look away */
            for (int i = 0; i < 100 && !atomic_load(&stop_all); i++)
                usleep(100000);
            woke = mono_ms();
        }
        int rc = cn_client_event(c, &ev, 200);
        if (rc == CN_ETIMEDOUT)
            continue;
        if (rc < 0) {
            printf("VIOLATION the event feed failed: %s\n", cn_strerror(rc));
            atomic_store(&sub_failed, 1);
            break;
        }
        atomic_fetch_add(&ev_seen, 1);
        if (strcmp(ev.kind, "dropped") == 0) {
            atomic_fetch_add(&ev_markers, 1);
            atomic_fetch_add(&ev_dropped, ev.count);
        }
    }
    cn_client_close(c);
    return NULL;
}

static _Atomic long tree_rss_kib; /* from the latest snapshot */
static _Atomic uint64_t snaps;
static double snap_worst_ms;

/* The TUI's snapshot connection: one a second. */
static void *snapshotter(void *arg)
{
    (void)arg;
    cn_client_t *c;
    if (cn_client_connect(cn_attach_path(), &c, IO_MS) < 0) {
        atomic_store(&sub_failed, 1);
        return NULL;
    }
    while (!atomic_load(&stop_all)) {
        cn_snapshot_t *s;
        double t0 = mono_msf();
        if (cn_client_snapshot(c, 0, IO_MS, &s) == 0) {
            double ms = mono_msf() - t0;
            if (ms > snap_worst_ms)
                snap_worst_ms = ms;
            long sum = 0;
            for (size_t i = 0; i < s->nactors; i++)
                sum += s->actors[i].rss_kib > 0 ? s->actors[i].rss_kib : 0;
            atomic_store(&tree_rss_kib, sum);
            atomic_fetch_add(&snaps, 1);
            cn_snapshot_free(s);
        }
        usleep(1000000);
    }
    cn_client_close(c);
    return NULL;
}

static int big_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    unsigned secs = opt_n;
    leaves = calloc(opt_actors, sizeof(*leaves));
    held = calloc((size_t)opt_actors * BIG_PER, sizeof(*held));
    double t0 = mono_msf();
    if (run_jobs(spawner) < 0 || run_jobs(opener) < 0) {
        printf("VIOLATION cannot build the tree of %u actors and %u contexts: %s\n", opt_actors,
               opt_actors * BIG_PER, job_why);
        return 1;
    }
    printf("soak big: %u actors, %u contexts held, built in %.1f s; %u s %s\n", opt_actors,
           opt_actors * BIG_PER, (mono_msf() - t0) / 1e3, secs,
           opt_slow ? "with a slow subscriber" : "with a subscriber that keeps up");
    pthread_t ch[CHURNERS], sub, snap;
    for (uintptr_t i = 0; i < CHURNERS; i++)
        pthread_create(&ch[i], NULL, churner, (void *)(i + 1));
    pthread_create(&sub, NULL, subscriber, NULL);
    pthread_create(&snap, NULL, snapshotter, NULL);

    unsigned warm = secs / 5 > WARM_S ? secs / 5 : WARM_S;
    if (secs < 2 * warm) {
        printf("VIOLATION soak big needs at least %u s: the first %u s are warm-up\n", 2 * warm,
               warm);
        return 1;
    }
    long root0 = 0, tree0 = 0, root1 = 0, tree1 = 0, root_max = 0;
    for (unsigned s = 1; s <= secs; s++) {
        sleep(1);
        long r = rss_kib(), t = atomic_load(&tree_rss_kib);
        if (s == warm)
            root0 = r, tree0 = t;
        if (s >= warm && r > root_max)
            root_max = r;
        root1 = r, tree1 = t;
        if (s % 10 == 0 || s == secs)
            printf("%u s: root RSS %ld KiB, tree RSS %ld KiB, %" PRIu64 " events (%" PRIu64
                   " dropped), %" PRIu64 " short contexts\n",
                   s, r, t, atomic_load(&ev_seen), atomic_load(&ev_dropped), atomic_load(&churned));
    }
    atomic_store(&stop_all, 1);
    for (int i = 0; i < CHURNERS; i++)
        pthread_join(ch[i], NULL);
    pthread_join(sub, NULL);
    pthread_join(snap, NULL);
    for (unsigned i = 0; i < opt_actors * BIG_PER; i++)
        cn_ctx_free(held[i]);

    double tree_pct = tree0 ? 100.0 * (double)(tree1 - tree0) / (double)tree0 : 0;
    uint64_t dropped = atomic_load(&ev_dropped), markers = atomic_load(&ev_markers);
    printf("soak big: root RSS %ld -> %ld KiB (peak %ld, bound +%d); tree RSS %ld -> %ld KiB "
           "(%+.2f %%, bound +%.0f %%)\n"
           "  %" PRIu64 " events read, %" PRIu64 " dropped in %" PRIu64 " markers; %" PRIu64
           " short contexts; %" PRIu64 " snapshots, worst %.1f ms\n",
           root0, root1, root_max, BIG_ROOT_KIB, tree0, tree1, tree_pct, BIG_TREE_PCT,
           atomic_load(&ev_seen), dropped, markers, atomic_load(&churned), atomic_load(&snaps),
           snap_worst_ms);
    CHECK(!atomic_load(&sub_failed), "the TUI-style client failed");
    CHECK(!check_rss || root1 - root0 <= BIG_ROOT_KIB, "the root's RSS grew by %ld KiB",
          root1 - root0);
    CHECK(!check_rss || tree_pct <= BIG_TREE_PCT, "the tree's RSS grew by %.2f %%", tree_pct);
    CHECK(atomic_load(&snaps) >= secs / 2, "only %" PRIu64 " snapshots in %u s",
          atomic_load(&snaps), secs);
    if (opt_slow)
        CHECK(dropped > 0 && markers > 0, "a slow subscriber was never told it lost events");
    else
        CHECK(dropped == 0, "a subscriber that keeps up lost %" PRIu64 " events", dropped);
    write_json("{\"seconds\": %u, \"actors\": %u, \"contexts\": %u, \"slow\": %d, "
               "\"root_rss_start_kib\": %ld, \"root_rss_end_kib\": %ld, \"tree_rss_start_kib\": "
               "%ld, \"tree_rss_end_kib\": %ld, \"events\": %" PRIu64 ", \"dropped\": %" PRIu64
               ", \"markers\": %" PRIu64 ", \"snapshot_worst_ms\": %.1f, \"failures\": %d}\n",
               secs, opt_actors, opt_actors * BIG_PER, opt_slow, root0, root1, tree0, tree1,
               atomic_load(&ev_seen), dropped, markers, snap_worst_ms, failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    /* 128 task threads: a leaf serves 50 held contexts and the churn */
    static cn_config_t cfg = {"soak", exports, NULL, NULL, 128, 0};
    if (getenv("CANOPY_FD")) /* a leaf */
        return cn_run(argc, argv, &cfg);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getenv("SOAK_NO_RSS") && strcmp(getenv("SOAK_NO_RSS"), "1") == 0) {
        check_rss = 0;
        printf("soak: RSS growth is shown, not checked (SOAK_NO_RSS=1)\n");
    }
    int ok = argc >= 3 && (strcmp(argv[1], "cycles") == 0 || strcmp(argv[1], "big") == 0);
    opt_n = ok ? (unsigned)atoi(argv[2]) : 0;
    for (int i = 3; ok && i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            opt_json = argv[++i];
        else if (strcmp(argv[i], "--slow") == 0)
            opt_slow = 1;
        else if (strcmp(argv[i], "--actors") == 0 && i + 1 < argc)
            opt_actors = (unsigned)atoi(argv[++i]);
        else
            ok = 0;
    }
    if (!ok || opt_n == 0 || opt_actors == 0) {
        fprintf(stderr, "usage: soak cycles N [--json FILE]\n"
                        "       soak big SECONDS [--slow] [--actors N] [--json FILE]\n");
        return 2;
    }
    cfg.main = strcmp(argv[1], "cycles") == 0 ? cycles_main : big_main;
    return run_under_us(argv, &cfg);
}
