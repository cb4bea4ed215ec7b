/*
 * tree.c: a depth-3 canopy tree: the root, 3 supervisors, 3 workers each.
 *
 * Every second each worker asks the root for the roster of workers, calls
 * a cousin (a worker under another supervisor) and logs the answer, so the
 * tree always has calls crossing the root. Each worker also holds a
 * long-lived streaming context ("feed") open on another cousin: it streams
 * a number into it every second and reads back the running total. It runs until it gets SIGINT or SIGTERM, then cancels the
 * whole tree and exits 0.
 *
 *   make examples && build/examples/tree
 *   CANOPY_LOG_LEVEL=debug build/examples/tree   # more detail
 *
 * The same binary is every actor: cn_run() makes the first process the
 * root, and re-executed copies (cn_spawn) run the "supervisor" entry or just
 * serve calls as workers.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <canopy.h>

#define SUPS 3
#define WORKERS 3
#define TIMEOUT_MS 5000

/* ------------------------------------------------------------ workers */

/* Answers with this actor's path; what cousins call. */
static int hello(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)call, (void)args;
    const char *me = cn_path();
    return msgpack_pack_str_with_body(out, me, strlen(me));
}

/* A long-lived streaming context: the opener streams numbers, and this
 * side streams back the running total, until the opener closes its end or
 * the context is cancelled. */
static int feed(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_stream_t *s = NULL;
    int rc = cn_started(call, NULL);
    if (rc == 0)
        rc = cn_call_stream(call, NULL, &s);
    if (rc < 0)
        return rc;
    uint64_t total = 0;
    cn_result_t m;
    while ((rc = cn_stream_recv(s, &m, 60000)) == 0) {
        total += m.value.via.u64;
        cn_result_free(&m);
        msgpack_object t = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = total};
        if ((rc = cn_stream_send(s, &t, TIMEOUT_MS)) < 0)
            break;
    }
    cn_result_free(&m);
    if (rc != CN_EOF)
        return cn_call_fail(call, rc, "feed stopped: %s", cn_strerror(rc));
    cn_stream_close(s);
    return msgpack_pack_uint64(out, total);
}

/* Finds a worker under another supervisor in the root's roster; 0 if the
 * roster has none yet. */
static uint32_t pick_cousin(unsigned round)
{
    uint32_t parent = cn_parent().id, cousins[SUPS * WORKERS];
    int n = 0;
    cn_result_t r;
    if (cn_call((cn_portal_t){CN_ROOT_ID}, "roster", NULL, &r, TIMEOUT_MS) == 0)
        for (uint32_t i = 0; i < r.value.via.array.size; i++) {
            const msgpack_object *e = r.value.via.array.ptr[i].via.array.ptr;
            if (e[1].via.u64 != parent && n < SUPS * WORKERS)
                cousins[n++] = (uint32_t)e[0].via.u64;
        }
    cn_result_free(&r);
    return n ? cousins[round % (unsigned)n] : 0;
}

/* The worker's life: keep a feed context open on one cousin and stream a
 * number into it every second; every second also call `hello` on another
 * cousin and log the answer. */
static int worker_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_ctx_t *ctx = NULL;
    cn_stream_t *s = NULL;
    for (unsigned round = cn_self().id; cn_sleep(1000) == 0; round++) {
        if (ctx == NULL) { /* (re)open the feed once the roster is complete */
            uint32_t to = pick_cousin(round + 1);
            cn_result_t st = {0}; /* no cousin yet: no cn_open, freed all the same */
            if (to && cn_open((cn_portal_t){to}, "feed", NULL, &ctx, &st, TIMEOUT_MS) == 0 &&
                cn_ctx_stream(ctx, NULL, &s) < 0) {
                cn_ctx_free(ctx);
                ctx = NULL;
            }
            cn_result_free(&st);
        }
        if (ctx) {
            msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = round};
            cn_result_t total = {0}; /* the send may fail, and recv not run */
            if (cn_stream_send(s, &v, TIMEOUT_MS) == 0 &&
                cn_stream_recv(s, &total, TIMEOUT_MS) == 0)
                cn_log(CN_LOG_TRACE, "feed total %llu", (unsigned long long)total.value.via.u64);
            else { /* the cousin went away: open another next round */
                cn_log(CN_LOG_WARN, "feed: %s", cn_stream_last_error(s));
                cn_ctx_free(ctx);
                ctx = NULL;
            }
            cn_result_free(&total);
        }
        uint32_t cousin_id = pick_cousin(round);
        if (cousin_id == 0)
            continue; /* the roster is not complete yet */
        cn_portal_t cousin = {cousin_id};
        cn_result_t r;
        int rc = cn_call(cousin, "hello", NULL, &r, TIMEOUT_MS);
        if (rc == 0)
            cn_log(CN_LOG_DEBUG, "cousin %u says %.*s", cousin.id, (int)r.value.via.str.size,
                   r.value.via.str.ptr);
        else if (rc == CN_ECANCELED) /* this worker, or the cousin, is shutting down */
            cn_log(CN_LOG_INFO, "cousin %u: %s", cousin.id, r.error.message);
        else
            cn_log(CN_LOG_WARN, "calling cousin %u: %s: %s", cousin.id, cn_strerror(rc),
                   r.error.message);
        cn_result_free(&r);
    }
    cn_ctx_free(ctx); /* cancels the feed */
    return 0;
}

/* ------------------------------------------------------------ supervisors */

static cn_portal_t my_workers[WORKERS];
static int nworkers;
static pthread_mutex_t workers_mu = PTHREAD_MUTEX_INITIALIZER;

static int start_worker(int i)
{
    char name[16];
    snprintf(name, sizeof(name), "worker-%d", i);
    cn_spawn_opts_t o = {.entry = "worker"};
    cn_portal_t p;
    int rc = cn_spawn(name, &o, &p, TIMEOUT_MS);
    if (rc == 0) {
        pthread_mutex_lock(&workers_mu);
        my_workers[nworkers++] = p;
        pthread_mutex_unlock(&workers_mu);
    }
    return rc;
}

/* The root asks each supervisor for its workers' ids. */
static int workers(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)call, (void)args;
    pthread_mutex_lock(&workers_mu);
    msgpack_pack_array(out, (size_t)nworkers);
    for (int i = 0; i < nworkers; i++)
        msgpack_pack_uint32(out, my_workers[i].id);
    pthread_mutex_unlock(&workers_mu);
    return 0;
}

static int supervisor_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    for (int i = 0; i < WORKERS; i++) {
        int rc = start_worker(i);
        if (rc < 0)
            cn_log(CN_LOG_ERROR, "cannot start worker-%d: %s", i, cn_strerror(rc));
    }
    cn_sleep(CN_FOREVER); /* until the tree is cancelled */
    return 0;
}

/* ------------------------------------------------------------ the root */

/* Every worker with its supervisor, filled in as the branches come up. */
static uint32_t roster_ids[SUPS * WORKERS][2];
static int roster_len;
static pthread_mutex_t roster_mu = PTHREAD_MUTEX_INITIALIZER;

static int roster(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)call, (void)args;
    pthread_mutex_lock(&roster_mu);
    msgpack_pack_array(out, (size_t)roster_len);
    for (int i = 0; i < roster_len; i++) {
        msgpack_pack_array(out, 2);
        msgpack_pack_uint32(out, roster_ids[i][0]);
        msgpack_pack_uint32(out, roster_ids[i][1]);
    }
    pthread_mutex_unlock(&roster_mu);
    return 0;
}

/* Asks supervisor `sup` for its workers until all are up, and adds them to
 * the roster. */
static int enrol(cn_portal_t sup)
{
    for (int tries = 0; tries < 250; tries++) {
        cn_result_t r;
        int n = 0;
        if (cn_call(sup, "workers", NULL, &r, TIMEOUT_MS) == 0)
            n = (int)r.value.via.array.size;
        if (n == WORKERS) {
            pthread_mutex_lock(&roster_mu);
            for (int k = 0; k < n; k++) {
                roster_ids[roster_len][0] = (uint32_t)r.value.via.array.ptr[k].via.u64;
                roster_ids[roster_len++][1] = sup.id;
            }
            pthread_mutex_unlock(&roster_mu);
        }
        cn_result_free(&r);
        if (n == WORKERS)
            return 0;
        usleep(20000);
    }
    return CN_ETIMEDOUT;
}

static int root_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    /* SIGINT and SIGTERM are blocked in every thread (see main) and taken
     * here, so the tree is cancelled in order rather than torn down. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);

    for (int s = 0; s < SUPS; s++) {
        char name[16];
        snprintf(name, sizeof(name), "sup-%d", s);
        cn_spawn_opts_t o = {.entry = "supervisor"};
        cn_portal_t sup;
        int rc = cn_spawn(name, &o, &sup, TIMEOUT_MS);
        if (rc == 0)
            rc = enrol(sup);
        if (rc < 0) {
            cn_log(CN_LOG_ERROR, "cannot start %s: %s", name, cn_strerror(rc));
            return 1;
        }
    }
    cn_log(CN_LOG_INFO, "tree is up: %d supervisors, %d workers; Ctrl-C to stop", SUPS,
           roster_len);
    /* A signal, or a cancel of the whole tree from outside (canopy cancel
     * TREE root), which cn_sleep(0) reports: main should return then
     * too, or cn_run waits a second for it before it exits anyway. */
    struct timespec tick = {0, 100 * 1000 * 1000};
    int sig;
    while ((sig = sigtimedwait(&stop, NULL, &tick)) < 0)
        if (cn_sleep(0) == CN_ECANCELED)
            return 0;
    cn_log(CN_LOG_INFO, "got %s: cancelling the tree", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return 0; /* cn_run cancels and reaps every actor */
}

static const cn_export_t exports[] = {
    {"hello", hello}, {"feed", feed}, {"workers", workers}, {"roster", roster}, {NULL, NULL}};
static const cn_entry_t entries[] = {
    {"supervisor", supervisor_main}, {"worker", worker_main}, {NULL, NULL}};

int main(int argc, char **argv)
{
    /* Block the stop signals before cn_run starts any thread, so that only
     * root_main's sigwait takes them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    cn_config_t cfg = {.name = "root", .exports = exports, .entries = entries, .main = root_main};
    int rc = cn_run(argc, argv, &cfg);
    if (rc < 0)
        fprintf(stderr, "tree: %s\n", cn_strerror(rc));
    return rc < 0 ? 1 : rc;
}
