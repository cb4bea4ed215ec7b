/*
 * pipeline.c: canopy's demo tree, a small work pipeline that shows every
 * part of canopy within seconds, and breaks on request.
 *
 *   root
 *   ├── ingest              a supervisor
 *   │   ├── worker-0..2     each takes work items from a stream
 *   └── render
 *       └── worker-0..2
 *
 * Each supervisor keeps one streaming context open on each of its workers
 * and feeds it numbered work items as fast as the worker takes them: the
 * stream's window (8 items) is the backpressure. A worker that dies is
 * restarted by its supervisor. Every 3 s the root asks both supervisors
 * for their figures (a fan-out call) and logs the throughput.
 *
 * Triggers make it go wrong in the ways canopy is for (contrib/demo/
 * README.md walks through them):
 *   break    a worker stops at cn_breakpoint()
 *   break2   two workers at once: the console's lock queues them
 *   crash    a worker dereferences NULL (a post-mortem in debug mode)
 *   stall    a worker stops taking items: its supervisor's send blocks
 *   stuck    a worker's task ignores a cancel: the cancel is stuck
 *   heal     every worker goes back to work
 * Fire one from the console (break into the root, `trigger stall`, `c`),
 * or when starting: `pipeline --trigger stall` (3 s after start),
 * `--trigger crash@10`, or `--tour` for all of them, one by one.
 *
 *   make demo                                   # builds, opens the TUI on it
 *   build/canopy run --debug -- build/demo/pipeline --tour
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <canopy.h>

#define WORKERS 3
#define WINDOW 8           /* work items a worker buffers: the backpressure */
#define CALL_MS 2000       /* every call's timeout */
#define SEND_MS 60000      /* a send waits this long for a worker that stalls */
#define STUCK_S 30         /* how long a stuck task ignores its cancel */
#define CANCEL_MS 15000    /* how long its supervisor waits for the cancel */
#define STATS_MS 3000      /* how often the root logs the throughput */

static const char *const sup_names[] = {"ingest", "render"};
#define SUPS 2

enum trigger { T_NONE, T_BREAK, T_BREAK2, T_CRASH, T_STALL, T_STUCK, T_HEAL, T_COUNT };
static const char *const trigger_names[T_COUNT] = {"",      "break", "break2", "crash",
                                                   "stall", "stuck", "heal"};
/* Where each trigger lands unless told: SUP index * WORKERS + worker. */
static const int trigger_target[T_COUNT] = {0, 0, 1, 5, 2, 3, -1};

static enum trigger trigger_of(const char *name, size_t len)
{
    for (int t = 1; t < T_COUNT; t++)
        if (strlen(trigger_names[t]) == len && memcmp(trigger_names[t], name, len) == 0)
            return (enum trigger)t;
    return T_NONE;
}

static msgpack_object str_obj(const char *s)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

/* ------------------------------------------------------------ workers */

enum { W_RUN, W_STALL };
static _Atomic int w_mode = W_RUN;
static _Atomic int w_break, w_crash; /* to do before the next item */

/* The work: a streaming context that takes numbered items until its
 * supervisor closes the stream or cancels it. */
static int work(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_stream_t *s = NULL;
    cn_stream_opts_t o = {.window = WINDOW};
    int rc = cn_started(call, NULL);
    if (rc == 0)
        rc = cn_call_stream(call, &o, &s);
    if (rc < 0)
        return rc;
    uint64_t done = 0;
    for (;;) {
        if (atomic_exchange(&w_break, 0)) {
            cn_log(CN_LOG_WARN, "trigger: stopping at a breakpoint after %llu items",
                   (unsigned long long)done);
            cn_breakpoint();
        }
        if (atomic_exchange(&w_crash, 0)) {
            cn_log(CN_LOG_WARN, "trigger: crashing now");
            volatile int *nowhere = NULL;
            *nowhere = 42; /* SIGSEGV: NOLINT(clang-analyzer-core.NullDereference) */
        }
        if (atomic_load(&w_mode) == W_STALL) { /* stop taking items */
            if ((rc = cn_sleep(200)) < 0)
                break;
            continue;
        }
        cn_result_t m;
        rc = cn_stream_recv(s, &m, 1000);
        cn_result_free(&m);
        if (rc == CN_ETIMEDOUT)
            continue;
        if (rc < 0)
            break;
        done++;
        if ((rc = cn_sleep(10)) < 0) /* the item's work: 10 ms */
            break;
    }
    if (rc != CN_EOF)
        return rc;
    cn_stream_close(s);
    return msgpack_pack_uint64(out, done);
}

/* A chore that never checks for cancellation: it spins outside any canopy
 * call, so a cancel cannot reach it until it is done. */
static int chore(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_started(call, NULL);
    cn_log(CN_LOG_WARN, "trigger: a chore that ignores cancellation for %d s", STUCK_S);
    for (int i = 0; i < STUCK_S * 100; i++)
        usleep(10000);
    return 0;
}

/* "break", "crash", "stall" or "heal" for this worker. */
static int worker_trigger(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    enum trigger t = args->type == MSGPACK_OBJECT_STR
                         ? trigger_of(args->via.str.ptr, args->via.str.size)
                         : T_NONE;
    switch (t) {
    case T_BREAK:
    case T_BREAK2:
        atomic_store(&w_break, 1);
        return 0;
    case T_CRASH:
        atomic_store(&w_crash, 1);
        return 0;
    case T_STALL:
        cn_log(CN_LOG_WARN, "trigger: no longer taking work items");
        atomic_store(&w_mode, W_STALL);
        return 0;
    case T_HEAL:
        atomic_store(&w_mode, W_RUN);
        return 0;
    default:
        return cn_call_fail(call, CN_EINVAL, "a worker cannot do that trigger");
    }
}

/* ------------------------------------------------------------ supervisors */

typedef struct feeder {
    int index;
    pthread_t thread;
    pthread_mutex_t mu;
    cn_portal_t worker; /* id 0 while it is (re)starting */
    uint64_t sent, restarts;
} feeder_t;

static feeder_t feeders[WORKERS];
static _Atomic int sup_stopping;

static cn_portal_t feeder_worker(feeder_t *f)
{
    pthread_mutex_lock(&f->mu);
    cn_portal_t w = f->worker;
    pthread_mutex_unlock(&f->mu);
    return w;
}

/* Starts worker-N and opens its work context; 0 or an error code. */
static int feeder_start(feeder_t *f, cn_ctx_t **ctx, cn_stream_t **s)
{
    char name[16];
    snprintf(name, sizeof(name), "worker-%d", f->index);
    cn_portal_t w;
    int rc = cn_spawn(name, NULL, &w, CALL_MS * 5);
    if (rc < 0) {
        cn_log(CN_LOG_ERROR, "cannot start %s: %s", name, cn_strerror(rc));
        return rc;
    }
    cn_result_t st;
    cn_stream_opts_t o = {.window = WINDOW};
    rc = cn_open(w, "work", NULL, ctx, &st, CALL_MS);
    cn_result_free(&st);
    if (rc == 0 && (rc = cn_ctx_stream(*ctx, &o, s)) < 0)
        cn_ctx_free(*ctx);
    if (rc < 0) {
        cn_log(CN_LOG_ERROR, "cannot open work on %s: %s", name, cn_strerror(rc));
        cn_cancel(w, CALL_MS);
        return rc;
    }
    pthread_mutex_lock(&f->mu);
    f->worker = w;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

/* One per worker: keeps it alive and fed. */
static void *feeder_main(void *arg)
{
    feeder_t *f = arg;
    uint64_t seq = 0;
    while (!atomic_load(&sup_stopping)) {
        cn_ctx_t *ctx;
        cn_stream_t *s = NULL;
        if (feeder_start(f, &ctx, &s) < 0) {
            if (cn_sleep(1000) < 0)
                break;
            continue;
        }
        int rc;
        for (;;) {
            msgpack_object item = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = seq};
            rc = cn_stream_send(s, &item, SEND_MS);
            if (rc == CN_ETIMEDOUT)
                continue; /* still stalled: keep waiting */
            if (rc < 0)
                break;
            seq++;
            pthread_mutex_lock(&f->mu);
            f->sent++;
            pthread_mutex_unlock(&f->mu);
        }
        cn_portal_t w = feeder_worker(f);
        pthread_mutex_lock(&f->mu);
        f->worker.id = 0;
        pthread_mutex_unlock(&f->mu);
        if (!atomic_load(&sup_stopping))
            cn_log(CN_LOG_WARN, "worker-%d is gone (%s): restarting it", f->index,
                   cn_stream_last_error(s));
        cn_ctx_free(ctx);
        cn_cancel(w, CALL_MS); /* reaped, if it is not already */
        if (atomic_load(&sup_stopping) || cn_sleep(500) < 0)
            break;
        pthread_mutex_lock(&f->mu);
        f->restarts++;
        pthread_mutex_unlock(&f->mu);
    }
    return NULL;
}

/* The root's fan-out: items sent to each worker and its restarts. */
static int sup_stats(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)call, (void)args;
    msgpack_pack_array(out, WORKERS);
    for (int i = 0; i < WORKERS; i++) {
        pthread_mutex_lock(&feeders[i].mu);
        msgpack_pack_array(out, 2);
        msgpack_pack_uint64(out, feeders[i].sent);
        msgpack_pack_uint64(out, feeders[i].restarts);
        pthread_mutex_unlock(&feeders[i].mu);
    }
    return 0;
}

/* Runs a chore on a worker and cancels it when it does not finish: the
 * cancel stays "requested" for CANCEL_MS, then the worker is restarted. */
static void *stuck_main(void *arg)
{
    feeder_t *f = arg;
    cn_portal_t w = feeder_worker(f);
    cn_ctx_t *ctx;
    cn_result_t st = {0}; /* freed when w.id == 0 too, with no cn_open */
    if (w.id == 0 || cn_open(w, "chore", NULL, &ctx, &st, CALL_MS) < 0) {
        cn_result_free(&st);
        return NULL;
    }
    cn_result_free(&st);
    cn_sleep(1000);
    cn_log(CN_LOG_WARN, "worker-%d's chore is taking too long: cancelling it", f->index);
    if (cn_ctx_cancel(ctx, CANCEL_MS) == CN_ETIMEDOUT) {
        cn_log(CN_LOG_ERROR, "worker-%d ignored the cancel for %d s: restarting it", f->index,
               CANCEL_MS / 1000);
        cn_cancel(w, CALL_MS);
    }
    cn_ctx_free(ctx);
    return NULL;
}

/* [trigger, worker index]: passes it on to that worker. */
static int sup_trigger(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2 ||
        args->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
        args->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        args->via.array.ptr[1].via.u64 >= WORKERS)
        return cn_call_fail(call, CN_EINVAL, "expected [trigger, worker index]");
    const msgpack_object *name = &args->via.array.ptr[0];
    feeder_t *f = &feeders[args->via.array.ptr[1].via.u64];
    if (trigger_of(name->via.str.ptr, name->via.str.size) == T_STUCK) {
        pthread_t t;
        if (pthread_create(&t, NULL, stuck_main, f) != 0)
            return cn_call_fail(call, CN_ENOMEM, "cannot start a thread");
        pthread_detach(t);
        return 0;
    }
    cn_portal_t w = feeder_worker(f);
    if (w.id == 0)
        return cn_call_fail(call, CN_EDEAD, "worker-%d is restarting", f->index);
    cn_result_t r;
    int rc = cn_call(w, "poke", name, &r, CALL_MS);
    cn_result_free(&r);
    return rc < 0 ? cn_call_fail(call, rc, "worker-%d: %s", f->index, cn_strerror(rc)) : 0;
}

static int supervisor_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    for (int i = 0; i < WORKERS; i++) {
        feeders[i].index = i;
        pthread_mutex_init(&feeders[i].mu, NULL);
        if (pthread_create(&feeders[i].thread, NULL, feeder_main, &feeders[i]) != 0)
            return 1;
    }
    cn_sleep(CN_FOREVER); /* until the tree is cancelled */
    atomic_store(&sup_stopping, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_detach(feeders[i].thread); /* each ends at its next call */
    return 0;
}

/* ------------------------------------------------------------ the root */

static cn_portal_t sups[SUPS];

/* Triggers typed at the root's console, fired in order when it continues:
 * each slot is -1 or trigger * 64 + target. The console's command runs on
 * the broker while the root's own threads are stopped, so no lock. */
#define PENDING_MAX 8
static _Atomic int pending[PENDING_MAX] = {-1, -1, -1, -1, -1, -1, -1, -1};
static _Atomic unsigned pending_in, pending_out;

static int pending_push(int v)
{
    unsigned in = atomic_load(&pending_in);
    if (in - atomic_load(&pending_out) >= PENDING_MAX)
        return -1;
    atomic_store(&pending[in % PENDING_MAX], v);
    atomic_store(&pending_in, in + 1);
    return 0;
}

static int pending_pop(void)
{
    unsigned out = atomic_load(&pending_out);
    if (out == atomic_load(&pending_in))
        return -1;
    int v = atomic_exchange(&pending[out % PENDING_MAX], -1);
    atomic_store(&pending_out, out + 1);
    return v;
}

/* Passes trigger t to one worker (target: supervisor * WORKERS + worker). */
static void send_trigger(enum trigger t, int target)
{
    msgpack_object a[2] = {str_obj(trigger_names[t]),
                           {.type = MSGPACK_OBJECT_POSITIVE_INTEGER,
                            .via.u64 = (uint64_t)(target % WORKERS)}};
    msgpack_object args = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {2, a}};
    cn_result_t r;
    int rc = cn_call(sups[target / WORKERS], "trigger", &args, &r, CALL_MS);
    if (rc < 0)
        cn_log(CN_LOG_ERROR, "trigger %s: %s", trigger_names[t],
               r.error.message ? r.error.message : cn_strerror(rc));
    cn_result_free(&r);
}

static void fire(enum trigger t, int target)
{
    if (t == T_HEAL) { /* every worker, quietly */
        for (int k = 0; k < SUPS * WORKERS; k++)
            send_trigger(T_HEAL, k);
        return;
    }
    if (t == T_BREAK2) { /* worker-1 of each supervisor */
        fire(T_BREAK, 1);
        fire(T_BREAK, WORKERS + 1);
        return;
    }
    cn_log(CN_LOG_WARN, "trigger %s: %s/worker-%d", trigger_names[t], sup_names[target / WORKERS],
           target % WORKERS);
    send_trigger(t, target);
}

/* `trigger NAME [SUP/worker-N]` at the root's REPL: fired when the root
 * continues (this runs on the broker, which must not block). */
static int repl_trigger(int argc, char **argv, cn_debug_out_t *out, void *arg)
{
    (void)arg;
    enum trigger t = argc > 1 ? trigger_of(argv[1], strlen(argv[1])) : T_NONE;
    int target = t != T_NONE ? trigger_target[t] : -1;
    if (t != T_NONE && argc > 2) {
        target = -1;
        for (int s = 0; s < SUPS; s++) {
            size_t n = strlen(sup_names[s]);
            if (strncmp(argv[2], sup_names[s], n) != 0 || strncmp(argv[2] + n, "/worker-", 8) != 0)
                continue;
            const char *num = argv[2] + n + 8;
            char *end;
            long w = strtol(num, &end, 10); /* all of it a number, in range */
            if (end != num && *end == '\0' && w >= 0 && w < WORKERS)
                target = s * WORKERS + (int)w;
        }
    }
    if (t == T_NONE || (argc > 2 && target < 0) || (argc > 2 && (t == T_HEAL || t == T_BREAK2))) {
        cn_debug_printf(out, "usage: trigger break|break2|crash|stall|stuck|heal [SUP/worker-N]"
                             " (SUP: ingest or render; break2 and heal take no worker)\n");
        return 1;
    }
    if (pending_push((int)t * 64 + (target < 0 ? 63 : target)) < 0) {
        cn_debug_printf(out, "%d triggers are waiting already: continue (c) first\n",
                        PENDING_MAX);
        return 1;
    }
    unsigned waiting = atomic_load(&pending_in) - atomic_load(&pending_out);
    cn_debug_printf(out, "trigger %s: fires when the root continues (type c)%s\n", argv[1],
                    waiting > 1 ? ", after the ones before it" : "");
    return 0;
}

/* --trigger NAME[@SECONDS] and --tour: what to fire, and when. */
typedef struct plan {
    enum trigger t[16];
    double at[16];
    int n;
} plan_t;

static int plan_add(plan_t *p, const char *spec)
{
    const char *at = strchr(spec, '@');
    size_t len = at ? (size_t)(at - spec) : strlen(spec);
    enum trigger t = trigger_of(spec, len);
    char *end = NULL;
    double secs = at ? strtod(at + 1, &end) : 3;
    if (t == T_NONE || (at && (end == at + 1 || *end != '\0' || secs < 0)) || p->n == 16) {
        fprintf(stderr, "pipeline: bad trigger '%s': expected NAME[@SECONDS], NAME one of "
                        "break, break2, crash, stall, stuck, heal\n", spec);
        return -1;
    }
    p->t[p->n] = t;
    p->at[p->n++] = secs;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Logs the throughput since the last time. */
static void log_stats(uint64_t last[SUPS], double *last_t)
{
    double t = now_s(), dt = t - *last_t;
    char line[256];
    size_t n = 0;
    for (int s = 0; s < SUPS; s++) {
        cn_result_t r;
        int rc = cn_call(sups[s], "stats", NULL, &r, CALL_MS);
        uint64_t sent = 0, restarts = 0;
        if (rc == 0 && r.value.type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < r.value.via.array.size; i++) {
                const msgpack_object *e = r.value.via.array.ptr[i].via.array.ptr;
                sent += e[0].via.u64;
                restarts += e[1].via.u64;
            }
        if (rc == 0)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %.0f items/s, restarts %llu",
                                  s ? ", " : "", sup_names[s], (double)(sent - last[s]) / dt,
                                  (unsigned long long)restarts);
        else
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s: %s", s ? ", " : "",
                                  sup_names[s], cn_strerror(rc));
        if (rc == 0)
            last[s] = sent;
        cn_result_free(&r);
        if (n >= sizeof(line))
            n = sizeof(line) - 1;
    }
    *last_t = t;
    cn_log(CN_LOG_INFO, "throughput: %s", line);
}

static int root_main(int argc, char **argv)
{
    plan_t plan = {.n = 0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tour") == 0) {
            static const char *const tour[] = {"break@5",  "stall@8",  "stuck@12",
                                               "crash@16", "break2@22", "heal@30"};
            for (size_t k = 0; k < sizeof(tour) / sizeof(tour[0]); k++)
                plan_add(&plan, tour[k]);
        } else if (strcmp(argv[i], "--trigger") == 0 && i + 1 < argc) {
            if (plan_add(&plan, argv[++i]) < 0)
                return 2;
        } else {
            fprintf(stderr, "usage: pipeline [--tour] [--trigger NAME[@SECONDS]]...\n");
            return 2;
        }
    }
    cn_debug_command("trigger", "trigger break|break2|crash|stall|stuck|heal [SUP/worker-N]: "
                                "make the demo go wrong (fires on continue)",
                     repl_trigger, NULL);
    for (int s = 0; s < SUPS; s++) {
        cn_spawn_opts_t o = {.entry = "supervisor"};
        int rc = cn_spawn(sup_names[s], &o, &sups[s], CALL_MS * 5);
        if (rc < 0) {
            cn_log(CN_LOG_ERROR, "cannot start %s: %s", sup_names[s], cn_strerror(rc));
            return 1;
        }
    }
    cn_log(CN_LOG_INFO, "pipeline is up: %d supervisors, %d workers each; Ctrl-C stops it",
           SUPS, WORKERS);

    double start = now_s(), last_t = start, next_stats = start + STATS_MS / 1000.0;
    uint64_t last[SUPS] = {0};
    int fired = 0;
    while (cn_sleep(100) == 0) {
        for (int p; (p = pending_pop()) >= 0;)
            fire((enum trigger)(p / 64), p % 64 == 63 ? trigger_target[p / 64] : p % 64);
        double t = now_s();
        for (int k = 0; k < plan.n; k++)
            if (!(fired & (1 << k)) && t - start >= plan.at[k]) {
                fired |= 1 << k;
                fire(plan.t[k], trigger_target[plan.t[k]]);
            }
        if (t >= next_stats) {
            log_stats(last, &last_t);
            next_stats = t + STATS_MS / 1000.0;
        }
    }
    cn_log(CN_LOG_INFO, "pipeline: cancelled, stopping");
    return 0;
}

/* Every actor runs this binary and exports the lot: the root calls the
 * supervisors' "stats" and "trigger", they call the workers' "work",
 * "chore" and "poke". */
static const cn_export_t exports[] = {{"work", work},          {"chore", chore},
                                      {"poke", worker_trigger}, {"trigger", sup_trigger},
                                      {"stats", sup_stats},    {NULL, NULL}};
static const cn_entry_t entries[] = {{"supervisor", supervisor_main}, {NULL, NULL}};

int main(int argc, char **argv)
{
    /* The tree is "demo", as make demo names it, so that the commands in
     * contrib/demo/README.md work however it was started. */
    cn_config_t cfg = {.name = "demo", .exports = exports, .entries = entries,
                       .main = root_main};
    int rc = cn_run(argc, argv, &cfg);
    if (rc < 0)
        fprintf(stderr, "pipeline: %s\n", cn_strerror(rc));
    return rc < 0 ? 1 : rc;
}
