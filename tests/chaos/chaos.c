/*
 * chaos.c: fault injection against a live, streaming tree (issue #10;
 * the figures are in docs/reliability.md).
 *
 *   chaos [--rounds N] [--seed S] [--stop-pct P] [--json FILE] [-v]
 *   chaos --kill-root [--json FILE]
 *
 * The first form builds a depth-3 tree of 30 actors under this root:
 *
 *     root -> sup-0..2 -> mid-0..2 -> leaf-0..1
 *
 * and streams to every one of them at once: each actor's "pump" context
 * sends bursts of sequence numbers (more than the stream window, so
 * backpressure engages) and the root echoes each one back, checking it is
 * the next one; the actor checks the echoes. Then, for N rounds, it picks
 * a random actor and either kills it with SIGKILL or stops it for 2 s with
 * SIGSTOP (P percent of rounds, default 30), and checks every round:
 *
 *   - every waiter on the killed subtree (the root's stream readers, and a
 *     call parked in the victim) wakes with CN_EDEAD within WAKE_MAX_MS;
 *   - every other stream goes on with nothing lost, repeated or reordered,
 *     and a stopped actor's streams resume after SIGCONT;
 *   - the root answers a whole-tree snapshot through its attach socket
 *     within SNAP_MAX_MS (actors get SNAP_ACTOR_MS to answer, so a stopped
 *     one is reported unresponsive rather than waited for);
 *   - no actor's route table still lists a dead actor;
 *   - every killed process is gone: reaped, not a zombie;
 *   - once the subtree is grown again, no actor holds more fds than it did
 *     with the same children before.
 *
 * Every violation is printed as "VIOLATION ..." and makes the run fail.
 * The figures go to stdout and, with --json, to FILE.
 *
 * --kill-root runs the tree as a child of this process, kills its root
 * with SIGKILL, and checks that every descendant is gone within
 * ROOT_GONE_MAX_MS (this process becomes a subreaper, so it sees them).
 *
 * Under a sanitizer everything runs several times slower: CHAOS_SLACK=K
 * multiplies the latency bounds (never the correctness checks), and the
 * run prints the factor it used.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "canopy.h"
#include "canopy/client.h"
#include "harness.h"

#define WAKE_MAX_MS 100
#define SNAP_MAX_MS 50
#define SNAP_ACTOR_MS 30
#define ROOT_GONE_MAX_MS 2000
#define STOP_MS 2000
#define GONE_WAIT_MS 2000   /* how long a killed process may take to be reaped */
#define ROUTES_WAIT_MS 1000 /* ... and its routes to be deleted everywhere */
#define BURST 12            /* messages per burst; more than WINDOW */
#define WINDOW 8
#define PACE_MS 25
#define IO_MS 10000 /* any single stream operation */
#define MAX_NODES 64

static const uint64_t FANOUT[] = {3, 3, 2}; /* root's children, theirs, theirs */
#define DEPTH 3

/* ===========================================================================
 * The actors' side
 */

/* Streams bursts of sequence numbers to the caller and checks the echoes,
 * until cancelled or the stream fails. */
static int fn_pump(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_stream_t *s;
    cn_stream_opts_t o = {.window = WINDOW};
    if (cn_started(c, NULL) < 0 || cn_call_stream(c, &o, &s) < 0)
        return cn_call_fail(c, CN_EPROTO, "cannot open the stream");
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    for (uint64_t n = 0;; n += BURST) {
        int rc;
        for (uint64_t i = 0; i < BURST; i++) {
            v.via.u64 = n + i;
            if ((rc = cn_stream_send(s, &v, IO_MS)) < 0)
                return rc == CN_ECANCELED
                           ? rc
                           : cn_call_fail(c, rc, "send %" PRIu64 ": %s", n + i, cn_strerror(rc));
        }
        for (uint64_t i = 0; i < BURST; i++) {
            cn_result_t m;
            if ((rc = cn_stream_recv(s, &m, IO_MS)) < 0) {
                cn_result_free(&m);
                return rc == CN_ECANCELED
                           ? rc
                           : cn_call_fail(c, rc, "echo %" PRIu64 ": %s", n + i, cn_strerror(rc));
            }
            uint64_t got =
                m.value.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? m.value.via.u64 : ~0ull;
            cn_result_free(&m);
            if (got != n + i)
                return cn_call_fail(c, CN_EPROTO, "echo %" PRIu64 " came back as %" PRIu64, n + i,
                                    got);
        }
        if ((rc = cn_sleep(PACE_MS)) < 0)
            return rc;
    }
}

/* Parks a caller: sleeps args[0] ms. */
static int fn_sleep(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c;
    int64_t ms = args->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)args->via.u64 : 1000;
    int rc = cn_sleep(ms);
    return rc < 0 ? rc : msgpack_pack_nil(out);
}

static int fn_fds(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    return msgpack_pack_int(out, count_fds());
}

/* One node of a grown subtree, as "grow" reports it: [id, pid, parent, name]. */
static void pack_self(msgpack_packer *pk)
{
    const char *name = strrchr(cn_path(), '/') ? strrchr(cn_path(), '/') + 1 : cn_path();
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint32(pk, cn_self().id);
    msgpack_pack_int(pk, getpid());
    msgpack_pack_uint32(pk, cn_parent().id);
    msgpack_pack_str_with_body(pk, name, strlen(name));
}

static int spawn_grown(cn_call_t *c, const char *name, const msgpack_object *fanouts,
                       cn_result_t *res);

/* args: the fan-outs below this actor, e.g. [3, 2]. Spawns its children,
 * has each grow its own, and returns every node of the subtree, itself
 * first. */
static int fn_grow(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    if (args->type != MSGPACK_OBJECT_ARRAY)
        return cn_call_fail(c, CN_EINVAL, "grow takes an array of fan-outs");
    const msgpack_object_array *f = &args->via.array;
    uint64_t n = f->size ? f->ptr[0].via.u64 : 0;
    cn_result_t kids[8];
    size_t total = 1, made = 0;
    int rc = 0;
    if (n > 8)
        return cn_call_fail(c, CN_EINVAL, "fan-out %" PRIu64 " is over 8", n);
    msgpack_object rest = {.type = MSGPACK_OBJECT_ARRAY};
    rest.via.array.size = f->size ? f->size - 1 : 0;
    rest.via.array.ptr = f->size ? f->ptr + 1 : NULL;
    for (; made < n; made++) {
        char name[32];
        snprintf(name, sizeof(name), "%s-%zu", f->size == 2 ? "mid" : "leaf", made);
        if ((rc = spawn_grown(c, name, &rest, &kids[made])) < 0)
            break;
        total += kids[made].value.via.array.size;
    }
    if (rc == 0) {
        msgpack_pack_array(out, (uint32_t)total);
        pack_self(out);
        for (size_t i = 0; i < made; i++)
            for (uint32_t j = 0; j < kids[i].value.via.array.size; j++)
                msgpack_pack_object(out, kids[i].value.via.array.ptr[j]);
    }
    for (size_t i = 0; i < made; i++)
        cn_result_free(&kids[i]);
    return rc;
}

/* Spawns child `name` of this actor and has it grow `fanouts`; res holds
 * the subtree's nodes. */
static int spawn_grown(cn_call_t *c, const char *name, const msgpack_object *fanouts,
                       cn_result_t *res)
{
    cn_portal_t p;
    int rc = cn_spawn(name, NULL, &p, IO_MS);
    memset(res, 0, sizeof(*res));
    if (rc < 0)
        return c ? cn_call_fail(c, rc, "spawn %s: %s", name, cn_strerror(rc)) : rc;
    rc = cn_call(p, "grow", fanouts, res, IO_MS);
    if (rc == 0 && res->value.type != MSGPACK_OBJECT_ARRAY)
        rc = CN_EPROTO;
    if (rc < 0 && c)
        return cn_call_fail(c, rc, "%s grow: %s", name,
                            res->error.message ? res->error.message : cn_strerror(rc));
    return rc;
}

/* args: [name, fan-outs]: grows a new child subtree here (after a kill). */
static int fn_respawn(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2 ||
        args->via.array.ptr[0].type != MSGPACK_OBJECT_STR)
        return cn_call_fail(c, CN_EINVAL, "respawn takes [name, fan-outs]");
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)args->via.array.ptr[0].via.str.size,
             args->via.array.ptr[0].via.str.ptr);
    cn_result_t r;
    int rc = spawn_grown(c, name, &args->via.array.ptr[1], &r);
    if (rc == 0)
        msgpack_pack_object(out, r.value);
    cn_result_free(&r);
    return rc;
}

static const cn_export_t exports[] = {
    {"pump", fn_pump}, {"sleep", fn_sleep},     {"fds", fn_fds},
    {"grow", fn_grow}, {"respawn", fn_respawn}, {NULL, NULL},
};

/* ===========================================================================
 * The root's side: the model of the tree, and the stream readers
 */

typedef struct node {
    int used;
    uint32_t id, parent;
    pid_t pid;
    int depth; /* 1: under the root */
    char name[64];
    int fds; /* its fd count with all its children, or -1 */
    cn_ctx_t *ctx;
    cn_stream_t *st;
    pthread_t reader;
    int has_reader;
    _Atomic uint64_t seen; /* messages checked */
    _Atomic int ended;     /* the reader returned: */
    int end_rc;            /*   with this */
    double end_ms;         /*   at this time */
    char end_why[256];
} node_t;

static node_t nodes[MAX_NODES];
static int verbose;
static double slack = 1;
static unsigned violations;
static pthread_mutex_t vmu = PTHREAD_MUTEX_INITIALIZER;

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&vmu);
    violations++;
    fputs("VIOLATION ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&vmu);
    va_end(ap);
}

static void *reader_main(void *arg)
{
    node_t *n = arg;
    uint64_t want = 0;
    for (;;) {
        cn_result_t m = {0};
        int rc = cn_stream_recv(n->st, &m, IO_MS);
        if (rc == 0) {
            uint64_t got =
                m.value.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? m.value.via.u64 : ~0ull;
            if (got != want)
                violation("stream from %s (actor %u): got %" PRIu64 ", want %" PRIu64, n->name,
                          n->id, got, want);
            want = got + 1;
            atomic_store(&n->seen, want);
            rc = cn_stream_send(n->st, &m.value, IO_MS);
            if (rc < 0)
                m.error.message = NULL;
        }
        if (rc < 0) {
            n->end_ms = mono_msf();
            n->end_rc = rc;
            snprintf(n->end_why, sizeof(n->end_why), "%s",
                     m.error.message ? m.error.message : cn_strerror(rc));
            cn_result_free(&m);
            atomic_store(&n->ended, 1);
            return NULL;
        }
        cn_result_free(&m);
    }
}

static node_t *node_by_id(uint32_t id)
{
    for (int i = 0; i < MAX_NODES; i++)
        if (nodes[i].used && nodes[i].id == id)
            return &nodes[i];
    return NULL;
}

/* Adds the nodes a "grow" returned, opens a pump to each and starts its
 * reader. */
static int adopt(const msgpack_object *list, int depth)
{
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *e = list->via.array.ptr[i].via.array.ptr;
        node_t *n = NULL;
        for (int j = 0; j < MAX_NODES && n == NULL; j++)
            if (!nodes[j].used)
                n = &nodes[j];
        if (n == NULL) {
            fprintf(stderr, "chaos: more than %d nodes\n", MAX_NODES);
            return -1;
        }
        memset(n, 0, sizeof(*n));
        n->used = 1;
        n->id = (uint32_t)e[0].via.u64;
        n->pid = (pid_t)e[1].via.u64;
        n->parent = (uint32_t)e[2].via.u64;
        snprintf(n->name, sizeof(n->name), "%.*s", (int)e[3].via.str.size, e[3].via.str.ptr);
        node_t *p = node_by_id(n->parent);
        n->depth = p ? p->depth + 1 : depth;
        n->fds = -1;
        cn_result_t st;
        cn_stream_opts_t o = {.window = WINDOW};
        int rc = cn_open((cn_portal_t){n->id}, "pump", NULL, &n->ctx, &st, IO_MS);
        cn_result_free(&st);
        if (rc == 1) /* it returned without starting: no stream to read */
            rc = CN_EPROTO;
        if (rc == 0)
            rc = cn_ctx_stream(n->ctx, &o, &n->st);
        if (rc < 0) {
            fprintf(stderr, "chaos: pump on %s: %s\n", n->name, cn_strerror(rc));
            return -1;
        }
        pthread_create(&n->reader, NULL, reader_main, n);
        n->has_reader = 1;
    }
    return 0;
}

/* Grows a subtree called `name` under actor `parent` (which has `depth`),
 * and adopts it. */
static int grow_under(uint32_t parent, int depth, const char *name)
{
    msgpack_object f[DEPTH], args[2];
    for (int i = depth + 1; i < DEPTH; i++)
        f[i - depth - 1] =
            (msgpack_object){.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = FANOUT[i]};
    msgpack_object fan = {.type = MSGPACK_OBJECT_ARRAY};
    fan.via.array.size = (uint32_t)(DEPTH - depth - 1);
    fan.via.array.ptr = f;
    cn_result_t r;
    int rc;
    if (parent == CN_ROOT_ID) {
        rc = spawn_grown(NULL, name, &fan, &r);
    } else {
        args[0] = (msgpack_object){.type = MSGPACK_OBJECT_STR};
        args[0].via.str.ptr = name;
        args[0].via.str.size = (uint32_t)strlen(name);
        args[1] = fan;
        msgpack_object a = {.type = MSGPACK_OBJECT_ARRAY};
        a.via.array.size = 2;
        a.via.array.ptr = args;
        rc = cn_call((cn_portal_t){parent}, "respawn", &a, &r, IO_MS);
    }
    if (rc == 0)
        rc = adopt(&r.value, depth + 1);
    else
        fprintf(stderr, "chaos: growing %s under %u: %s: %s\n", name, parent, cn_strerror(rc),
                r.error.message ? r.error.message : "");
    cn_result_free(&r);
    return rc;
}

/* Whether actor `id` is `anc` or below it, by the model. */
static int under(uint32_t id, uint32_t anc)
{
    for (node_t *n = node_by_id(id); n; n = node_by_id(n->parent))
        if (n->id == anc)
            return 1;
    return 0;
}

static int fds_of(uint32_t id)
{
    if (id == CN_ROOT_ID)
        return count_fds();
    cn_result_t r;
    int rc = cn_call((cn_portal_t){id}, "fds", NULL, &r, IO_MS);
    int n = rc == 0 && r.value.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int)r.value.via.u64 : -1;
    cn_result_free(&r);
    return n;
}

/* ===========================================================================
 * The checks
 */

static struct {
    unsigned rounds, kills, stops, actors_killed;
    double wake_worst, wake_sum;
    unsigned wakes;
    double snap_worst, routes_worst, gone_worst;
    unsigned zombies, fd_leaks;
    uint64_t msgs;
} fig;

static int root_fds0;

/* A snapshot through the attach socket, as a client takes it: its time,
 * and whether any live actor still routes to one in `dead`. */
static double snapshot(cn_client_t *cl, const uint32_t *dead, size_t ndead, int *stale,
                       unsigned *unresponsive)
{
    cn_snapshot_t *s;
    double t0 = mono_msf();
    int rc = cn_client_snapshot(cl, SNAP_ACTOR_MS, IO_MS, &s);
    double ms = mono_msf() - t0;
    if (rc < 0) {
        violation("snapshot failed: %s (%s)", cn_strerror(rc), cn_client_error());
        return ms;
    }
    *stale = 0;
    for (size_t i = 0; i < s->nactors; i++)
        for (size_t j = 0; j < s->actors[i].nroutes; j++)
            for (size_t k = 0; k < ndead; k++)
                if (s->actors[i].routes[j].id == dead[k]) {
                    if (verbose)
                        printf("  actor %u still routes to dead %u\n", s->actors[i].id, dead[k]);
                    *stale = 1;
                }
    if (unresponsive)
        *unresponsive = s->unresponsive;
    cn_snapshot_free(s);
    return ms;
}

static void check_snapshot(cn_client_t *cl, const char *when, unsigned want_unresponsive)
{
    int stale;
    unsigned unr = 0;
    double ms = snapshot(cl, NULL, 0, &stale, &unr);
    if (ms > fig.snap_worst)
        fig.snap_worst = ms;
    if (ms > SNAP_MAX_MS * slack)
        violation("%s: the snapshot took %.1f ms (bound %.0f)", when, ms, SNAP_MAX_MS * slack);
    if (unr < want_unresponsive)
        violation("%s: %u actors unresponsive, expected at least %u", when, unr, want_unresponsive);
}

/* A call parked in an actor, to see it wake when the actor dies. */
typedef struct parked {
    uint32_t id;
    int rc;
    double end_ms;
    char why[256];
} parked_t;

static void *park_main(void *arg)
{
    parked_t *p = arg;
    msgpack_object ms = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 60000};
    cn_result_t r;
    p->rc = cn_call((cn_portal_t){p->id}, "sleep", &ms, &r, IO_MS * 2);
    p->end_ms = mono_msf();
    snprintf(p->why, sizeof(p->why), "%s", r.error.message ? r.error.message : "");
    cn_result_free(&r);
    return NULL;
}

static void woke(const char *what, const char *name, int rc, const char *why, double ms)
{
    if (rc != CN_EDEAD)
        violation("%s of %s ended with %s (%s), not CN_EDEAD", what, name, cn_strerror(rc), why);
    if (ms > WAKE_MAX_MS * slack)
        violation("%s of %s woke %.1f ms after the kill (bound %.0f)", what, name, ms,
                  WAKE_MAX_MS * slack);
    if (ms > fig.wake_worst)
        fig.wake_worst = ms;
    fig.wake_sum += ms;
    fig.wakes++;
}

/* Stops n's reader (it has ended, or its context is cancelled now) and
 * frees the slot. */
static void drop_node(node_t *n)
{
    if (!atomic_load(&n->ended))
        cn_ctx_cancel(n->ctx, 2000);
    if (n->has_reader)
        pthread_join(n->reader, NULL);
    fig.msgs += atomic_load(&n->seen);
    cn_ctx_free(n->ctx);
    memset(n, 0, sizeof(*n));
}

/* Every live actor holds as many fds as it did with the same children. */
static void check_fds(void)
{
    uint64_t until = mono_ms() + 1000;
    for (int again = 1; again;) {
        again = 0;
        int bad = 0, rfds = count_fds();
        for (int i = 0; i < MAX_NODES; i++) {
            node_t *n = &nodes[i];
            if (!n->used)
                continue;
            int f = fds_of(n->id);
            if (n->fds < 0)
                n->fds = f;
            else if (f != n->fds)
                bad = 1;
        }
        if (rfds == root_fds0 && !bad)
            return;
        if (mono_ms() < until) {
            usleep(50000);
            again = 1;
            continue;
        }
        if (rfds != root_fds0)
            violation("the root holds %d fds, %d with the same tree before", rfds, root_fds0);
        for (int i = 0; i < MAX_NODES; i++) {
            node_t *n = &nodes[i];
            int f = n->used ? fds_of(n->id) : 0;
            if (n->used && f != n->fds)
                violation("%s (actor %u) holds %d fds, %d with the same children before", n->name,
                          n->id, f, n->fds);
        }
        fig.fd_leaks++;
    }
}

static void round_kill(cn_client_t *cl, node_t *v, unsigned round)
{
    uint32_t dead[MAX_NODES];
    pid_t dpids[MAX_NODES];
    node_t *dn[MAX_NODES];
    size_t nd = 0;
    for (int i = 0; i < MAX_NODES; i++)
        if (nodes[i].used && under(nodes[i].id, v->id)) {
            dn[nd] = &nodes[i];
            dead[nd] = nodes[i].id;
            dpids[nd++] = nodes[i].pid;
        }
    uint32_t vparent = v->parent;
    int vdepth = v->depth;
    char vname[64];
    snprintf(vname, sizeof(vname), "%.*s", (int)strcspn(v->name, "."), v->name);

    parked_t pk = {.id = v->id, .rc = 1};
    pthread_t pt;
    pthread_create(&pt, NULL, park_main, &pk);
    usleep(20000); /* so the call is most likely running there */

    double t0 = mono_msf();
    kill(v->pid, SIGKILL);
    fig.kills++;
    fig.actors_killed += (unsigned)nd;

    /* Every waiter on the subtree wakes, with CN_EDEAD, in time. */
    uint64_t until = mono_ms() + IO_MS;
    for (size_t i = 0; i < nd; i++)
        while (!atomic_load(&dn[i]->ended) && mono_ms() < until)
            usleep(1000);
    pthread_join(pt, NULL);
    for (size_t i = 0; i < nd; i++) {
        node_t *n = dn[i];
        if (!atomic_load(&n->ended))
            violation("the stream reader of %s (actor %u) never woke after the kill", n->name,
                      n->id);
        else
            woke("the stream reader", n->name, n->end_rc, n->end_why, n->end_ms - t0);
    }
    woke("a call parked in", vname, pk.rc, pk.why, pk.end_ms - t0);
    for (size_t i = 0; i < nd; i++)
        drop_node(dn[i]);

    /* The others stream on (their readers check the sequence). */
    for (int i = 0; i < MAX_NODES; i++)
        if (nodes[i].used && atomic_load(&nodes[i].ended))
            violation("round %u: the stream from %s (actor %u), not killed, ended: %s", round,
                      nodes[i].name, nodes[i].id, nodes[i].end_why);

    check_snapshot(cl, "after a kill", 0);

    /* Routes to the dead are gone everywhere. */
    int stale = 1;
    double ms = 0;
    while (stale && mono_msf() - t0 < ROUTES_WAIT_MS * slack) {
        snapshot(cl, dead, nd, &stale, NULL);
        ms = mono_msf() - t0;
        if (stale)
            usleep(5000);
    }
    if (stale)
        violation("round %u: routes to the dead subtree of %s still listed after %.0f ms", round,
                  vname, ms);
    if (ms > fig.routes_worst)
        fig.routes_worst = ms;

    /* Every killed process is reaped: neither running nor a zombie. */
    for (size_t i = 0; i < nd; i++) {
        char st;
        while ((st = proc_state(dpids[i])) != 0 && mono_msf() - t0 < GONE_WAIT_MS * slack)
            usleep(5000);
        if (st == 'Z') {
            violation("round %u: pid %d of %s's subtree is a zombie", round, (int)dpids[i], vname);
            fig.zombies++;
        } else if (st != 0) {
            violation("round %u: pid %d of %s's subtree still runs (state %c)", round,
                      (int)dpids[i], vname, st);
        }
    }
    ms = mono_msf() - t0;
    if (ms > fig.gone_worst)
        fig.gone_worst = ms;

    /* Grow it again, and nobody holds more fds than before. */
    char name[64];
    snprintf(name, sizeof(name), "%s.r%u", vname, round);
    if (grow_under(vparent, vdepth - 1, name) < 0)
        violation("round %u: cannot grow %s again under actor %u", round, name, vparent);
    check_fds();
}

static void round_stop(cn_client_t *cl, node_t *v, unsigned round)
{
    uint64_t seen[MAX_NODES];
    for (int i = 0; i < MAX_NODES; i++)
        seen[i] = atomic_load(&nodes[i].seen);
    kill(v->pid, SIGSTOP);
    fig.stops++;
    usleep(300000);
    check_snapshot(cl, "while an actor is stopped", 1);
    usleep((STOP_MS - 300) * 1000);
    kill(v->pid, SIGCONT);

    /* Everything below it moves again; nothing ended. */
    uint64_t until = mono_ms() + (uint64_t)(3000 * slack);
    for (int i = 0; i < MAX_NODES; i++) {
        node_t *n = &nodes[i];
        if (!n->used)
            continue;
        while (atomic_load(&n->seen) <= seen[i] && !atomic_load(&n->ended) && mono_ms() < until)
            usleep(2000);
        if (atomic_load(&n->ended))
            violation("round %u: the stream from %s (actor %u) ended across a SIGSTOP of %s: %s",
                      round, n->name, n->id, v->name, n->end_why);
        else if (atomic_load(&n->seen) <= seen[i])
            violation("round %u: the stream from %s (actor %u) did not resume after SIGCONT", round,
                      n->name, n->id);
    }
}

/* ===========================================================================
 * The runs
 */

static unsigned opt_rounds = 50, opt_stop_pct = 30, opt_seed;
static const char *opt_json;

static node_t *pick(unsigned *seed)
{
    int live[MAX_NODES], n = 0;
    for (int i = 0; i < MAX_NODES; i++)
        if (nodes[i].used)
            live[n++] = i;
    return n ? &nodes[live[rand_r(seed) % (unsigned)n]] : NULL;
}

static int live_count(void)
{
    int n = 0;
    for (int i = 0; i < MAX_NODES; i++)
        n += nodes[i].used;
    return n;
}

static int grow_tree(void)
{
    for (uint64_t i = 0; i < FANOUT[0]; i++) {
        char name[32];
        snprintf(name, sizeof(name), "sup-%" PRIu64, i);
        if (grow_under(CN_ROOT_ID, 0, name) < 0)
            return -1;
    }
    return 0;
}

static int chaos_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_client_t *cl;
    double t_start = mono_msf();
    if (cn_attach_path() == NULL || cn_client_connect(cn_attach_path(), &cl, IO_MS) < 0) {
        fprintf(stderr, "chaos: cannot attach to this tree's own socket: %s\n", cn_client_error());
        return 2;
    }
    if (grow_tree() < 0)
        return 2;
    int expect = live_count();
    printf("chaos: %d actors, depth %d, %u rounds, seed %u, stops %u%%, slack %.1f\n", expect,
           DEPTH, opt_rounds, opt_seed, opt_stop_pct, slack);
    fflush(stdout);
    usleep(300000);
    root_fds0 = count_fds();
    check_fds();

    unsigned seed = opt_seed;
    for (unsigned r = 1; r <= opt_rounds; r++) {
        node_t *v = pick(&seed);
        int stop = (unsigned)(rand_r(&seed) % 100) < opt_stop_pct;
        if (verbose)
            printf("round %u: %s %s (actor %u, pid %d)\n", r, stop ? "SIGSTOP" : "SIGKILL", v->name,
                   v->id, (int)v->pid);
        if (stop)
            round_stop(cl, v, r);
        else
            round_kill(cl, v, r);
        fig.rounds = r;
        if (live_count() != expect)
            violation("round %u: %d actors, not %d", r, live_count(), expect);
        if (r % 10 == 0 || r == opt_rounds) {
            printf("round %u/%u: %u kills (%u actors), %u stops, worst wake %.1f ms, worst "
                   "snapshot %.1f ms, %u violations\n",
                   r, opt_rounds, fig.kills, fig.actors_killed, fig.stops, fig.wake_worst,
                   fig.snap_worst, violations);
            fflush(stdout);
        }
    }
    for (int i = 0; i < MAX_NODES; i++)
        if (nodes[i].used)
            drop_node(&nodes[i]);
    cn_client_close(cl);

    double secs = (mono_msf() - t_start) / 1e3;
    printf("chaos: %u rounds in %.0f s: %u kills (%u actors), %u stops; %" PRIu64
           " messages checked\n"
           "  wake after kill: worst %.1f ms, mean %.1f ms over %u waiters (bound %.0f)\n"
           "  snapshot: worst %.1f ms (bound %.0f); routes gone: worst %.1f ms; "
           "processes reaped: worst %.1f ms\n"
           "  zombies %u, fd leaks %u, violations %u\n",
           fig.rounds, secs, fig.kills, fig.actors_killed, fig.stops, fig.msgs, fig.wake_worst,
           fig.wakes ? fig.wake_sum / fig.wakes : 0, fig.wakes, WAKE_MAX_MS * slack, fig.snap_worst,
           SNAP_MAX_MS * slack, fig.routes_worst, fig.gone_worst, fig.zombies, fig.fd_leaks,
           violations);
    if (opt_json) {
        FILE *f = fopen(opt_json, "w");
        if (f) {
            fprintf(f,
                    "{\"rounds\": %u, \"seconds\": %.0f, \"seed\": %u, \"kills\": %u, "
                    "\"actors_killed\": %u, \"stops\": %u, \"messages\": %" PRIu64 ",\n"
                    " \"wake_worst_ms\": %.1f, \"wake_mean_ms\": %.1f, \"waiters\": %u, "
                    "\"snapshot_worst_ms\": %.1f, \"routes_gone_worst_ms\": %.1f,\n"
                    " \"reaped_worst_ms\": %.1f, \"zombies\": %u, \"fd_leaks\": %u, "
                    "\"violations\": %u, \"slack\": %.1f}\n",
                    fig.rounds, secs, opt_seed, fig.kills, fig.actors_killed, fig.stops, fig.msgs,
                    fig.wake_worst, fig.wakes ? fig.wake_sum / fig.wakes : 0, fig.wakes,
                    fig.snap_worst, fig.routes_worst, fig.gone_worst, fig.zombies, fig.fd_leaks,
                    violations, slack);
            fclose(f);
        }
    }
    return violations ? 1 : 0;
}

/* --kill-root: the tree's root, run as our child. Reports every pid of the
 * tree on fd CHAOS_REPORT_FD, then waits to be killed. */
static int serve_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    int fd = atoi(getenv("CHAOS_REPORT_FD"));
    if (grow_tree() < 0)
        return 2;
    char buf[1024];
    size_t off = (size_t)snprintf(buf, sizeof(buf), "%d", (int)getpid());
    for (int i = 0; i < MAX_NODES; i++)
        if (nodes[i].used && off < sizeof(buf))
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, " %d", (int)nodes[i].pid);
    buf[off < sizeof(buf) ? off : sizeof(buf) - 1] = '\n';
    if (write(fd, buf, off + 1) < 0)
        return 2;
    close(fd);
    cn_sleep(60000);
    return 0;
}

static int kill_root(void)
{
    int p[2];
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 || pipe(p) < 0) {
        perror("chaos: subreaper/pipe");
        return 2;
    }
    pid_t root = fork();
    if (root == 0) {
        close(p[0]);
        char num[16];
        snprintf(num, sizeof(num), "%d", p[1]);
        setenv("CHAOS_REPORT_FD", num, 1);
        static const cn_config_t cfg = {"chaos-root", exports, NULL, serve_main, 0, 0};
        char *av[] = {"chaos", NULL};
        _exit(cn_run(1, av, &cfg));
    }
    close(p[1]);
    char buf[1024];
    size_t got = 0;
    struct pollfd pf = {p[0], POLLIN, 0};
    while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got) && poll(&pf, 1, 30000) > 0) {
        ssize_t n = read(p[0], buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = 0;
    pid_t pids[MAX_NODES + 1];
    int np = 0;
    for (char *s = buf, *e; np < MAX_NODES + 1 && (pids[np] = (pid_t)strtol(s, &e, 10)) > 0; s = e)
        np++;
    if (np < 2) {
        fprintf(stderr, "chaos: the tree did not report its pids\n");
        kill(root, SIGKILL);
        return 2;
    }
    double t0 = mono_msf(), ms;
    kill(root, SIGKILL);
    int left;
    do {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        left = 0;
        for (int i = 0; i < np; i++)
            left += proc_state(pids[i]) != 0;
        ms = mono_msf() - t0;
        if (left)
            usleep(2000);
    } while (left && ms < ROOT_GONE_MAX_MS * slack * 2);
    printf("chaos --kill-root: root and %d descendants; %d left after %.1f ms (bound %.0f)\n",
           np - 1, left, ms, ROOT_GONE_MAX_MS * slack);
    if (opt_json) {
        FILE *f = fopen(opt_json, "w");
        if (f) {
            fprintf(f, "{\"descendants\": %d, \"left\": %d, \"gone_ms\": %.1f}\n", np - 1, left,
                    ms);
            fclose(f);
        }
    }
    for (int i = 0; i < np; i++)
        if (proc_state(pids[i]) != 0) {
            printf("VIOLATION pid %d still there (state %c)\n", (int)pids[i], proc_state(pids[i]));
            kill(pids[i], SIGKILL);
        }
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    return left || ms > ROOT_GONE_MAX_MS * slack ? 1 : 0;
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {"chaos", exports, NULL, chaos_main, 0, 0};
    if (getenv("CANOPY_FD")) /* an actor of the tree */
        return cn_run(argc, argv, &cfg);
    const char *sl = getenv("CHAOS_SLACK");
    if (sl && atof(sl) >= 1)
        slack = atof(sl);
    opt_seed = (unsigned)time(NULL);
    int root_mode = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--rounds") == 0 && v)
            opt_rounds = (unsigned)atoi(argv[++i]);
        else if (strcmp(a, "--seed") == 0 && v)
            opt_seed = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(a, "--stop-pct") == 0 && v)
            opt_stop_pct = (unsigned)atoi(argv[++i]);
        else if (strcmp(a, "--json") == 0 && v)
            opt_json = argv[++i];
        else if (strcmp(a, "--kill-root") == 0)
            root_mode = 1;
        else if (strcmp(a, "-v") == 0)
            verbose = 1;
        else {
            fprintf(stderr, "usage: chaos [--rounds N] [--seed S] [--stop-pct P] [--json FILE] "
                            "[-v] | chaos --kill-root [--json FILE]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (root_mode)
        return kill_root();
    return run_under_us(argv, &cfg);
}
