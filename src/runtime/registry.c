/*
 * registry.c: the records of calls, contexts and threads that snapshots
 * report (see rt.h).
 *
 * Nothing here is on a hot path: a record changes when a call or context
 * opens, starts, ends or is cancelled, and a thread's state when it is
 * about to sleep in the API or wakes from it, never per message.
 *
 * A snapshot is what reads them all, and a snapshot of an actor with
 * thousands of records spent most of its time on cache and TLB misses: the
 * records live inside calls and contexts all over the heap, and a thread's
 * record was in that thread's own malloc arena. So the records are found
 * through a table of pointers (the walk does not chase one miss after
 * another, and the next few are prefetched), and the threads' records are
 * the registry's own, in chunks: both read in sequence.
 *
 * Invariant: a record is in `recs` (at slot - 1) from cn__rec_add to
 * cn__rec_del, and a stream it points to is alive while it does (owners
 * clear it first).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "rt.h"

typedef struct thr {
    struct thr *free_next; /* on the free list, when not in use */
    int used;
    int tid;
    int is_task; /* a pool thread */
    int doing;   /* CN__DO_* */
    uint32_t peer;
    uint64_t cid;
    uint64_t since_us;
    int in_task; /* running a task: its fn, caller and cid below */
    char fn[CN__NAME_MAX];
    uint32_t task_caller;
    uint64_t task_cid;
    uint64_t task_us; /* when it started running it */
} thr_t;

/* Threads' records come in chunks that are never freed: a thread's
 * record is reused by the next thread, and a process keeps as many as it
 * ever had threads at once (136 bytes each). The first chunk holds
 * 4 and each next one twice the last, up to 64: an idle actor's two or
 * three threads take one small block (a chunk of 32 first cost an idle
 * actor 8 KiB more of its resident memory). */
#define THR_CHUNK_FIRST 4
#define THR_CHUNK_MAX 64

typedef struct thr_chunk {
    struct thr_chunk *next;
    size_t n;
    thr_t t[];
} thr_chunk_t;

static struct {
    pthread_mutex_t mu;
    cn__rec_t **recs; /* nrecs of them, in no order */
    size_t nrecs, cap;
    thr_chunk_t *chunks;
    thr_t *free_thrs;
    size_t nthrs; /* in use */
    pthread_key_t key;
    pthread_once_t once;
} reg = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, NULL, NULL, 0, 0, PTHREAD_ONCE_INIT};

static __thread thr_t *tl_thr;

/* ===========================================================================
 * Events
 *
 * Events are made where state changes, often under rt.mu or a stream's
 * locks, so they are not sent there: each is packed and queued here (a
 * leaf lock), and the broker's clock (clock.c; actor.c, on_ev_tick)
 * sends the queue every CN__EVENTS_MS, so that a busy actor's feed costs
 * one write, and its subscribers one wake-up, per tick. A tick that finds
 * the queue empty stops the clock, and the next event wakes the broker,
 * which sends it at once and starts the clock again (evq.asleep; actor.c,
 * ev_wake): an idle actor with a subscriber attached stays asleep, where
 * ticking regardless woke every actor of an idle tree 20 times a second.
 * Only a backlog past EVQ_SOON wakes the broker to send before the tick.
 * The queue is bounded; past the bound events are dropped and counted,
 * never waited for.
 *
 * A context's own events (CN__EV_CTX: several per context, at each end)
 * are most of a busy tree's feed, and each cost the root a frame to check
 * and pass on and the client a message to unpack. They are packed as
 * short arrays into an open batch instead, and sent as one EVENT
 * {actor, path, events: [[kind, time_us, cid, peer, fn, detail], ...]}
 * (docs/protocol.md). Any other event closes the open batch before it is
 * queued, so that an actor's events stay in order.
 */

#define EVQ_MAX (256u * 1024)
#define EVQ_SOON (EVQ_MAX / 4)

static struct {
    pthread_mutex_t mu;
    msgpack_sbuffer q;     /* whole EVENT frames */
    msgpack_sbuffer batch; /* the open batch's events, each a packed array */
    uint32_t nbatch;
    uint64_t dropped;
    _Atomic int soon; /* the broker has been woken for the backlog; set
                         and cleared under mu, read without it */
    _Atomic size_t queued; /* q.size + batch.size, for the broker to read
                              without mu */
    _Atomic int asleep;    /* no timer will send the queue: wake the broker */
} evq = {PTHREAD_MUTEX_INITIALIZER, {0, NULL, 0}, {0, NULL, 0}, 0, 0, 0, 0, 0};

/* Empties sb, and lets go of its memory if a burst (or a huge log record)
 * made it large. */
static void ev_buf_trim(msgpack_sbuffer *sb)
{
    sb->size = 0;
    if (sb->alloc > 64 * 1024) {
        msgpack_sbuffer_destroy(sb);
        msgpack_sbuffer_init(sb);
    }
}

/* Under evq.mu: the open batch becomes a frame at the end of the queue. */
static void batch_close(void)
{
    if (evq.nbatch == 0)
        return;
    msgpack_packer pk;
    size_t mark;
    cn_wire_hdr_t h = {CN_MSG_EVENT, CN_ROOT_ID, cn__rt.id, cn__ev_cid(CN__EV_CTX, evq.nbatch)};
    int rc = cn_wire_begin(&evq.q, &pk, &h, &mark);
    if (rc == 0) {
        msgpack_pack_map(&pk, 3);
        cn__pack_kint(&pk, "actor", cn__rt.id);
        cn__pack_kstr(&pk, "path", cn__rt.path);
        cn__pack_cstr(&pk, "events");
        msgpack_pack_array(&pk, evq.nbatch);
        rc = cn_wire_end(&evq.q, mark,
                         msgpack_sbuffer_write(&evq.q, evq.batch.data, evq.batch.size), 0);
    }
    if (rc < 0)
        evq.dropped += evq.nbatch;
    evq.nbatch = 0;
    ev_buf_trim(&evq.batch);
}

/* Queues an event: a whole frame, or (in_batch) one packed array for the
 * open batch. */
static void ev_queue(const msgpack_sbuffer *ev, int in_batch)
{
    cn__lock(&evq.mu);
    if (!in_batch)
        batch_close();
    size_t size = evq.q.size + evq.batch.size;
    if (size + ev->size > EVQ_MAX ||
        msgpack_sbuffer_write(in_batch ? &evq.batch : &evq.q, ev->data, ev->size))
        evq.dropped++;
    else if (in_batch)
        evq.nbatch++;
    size = evq.q.size + evq.batch.size;
    int wake = size > EVQ_SOON && !atomic_load(&evq.soon);
    if (wake)
        atomic_store(&evq.soon, 1);
    atomic_store(&evq.queued, size);
    cn__unlock(&evq.mu);
    if (atomic_load(&evq.asleep) && atomic_exchange(&evq.asleep, 0))
        wake = 1;
    if (wake)
        cn__wake();
}

int cn__events_backlog(void)
{
    return atomic_load_explicit(&evq.soon, memory_order_relaxed); /* every wake: no lock */
}

int cn__events_queued(void)
{
    return atomic_load_explicit(&evq.queued, memory_order_relaxed) > 0;
}

int cn__events_sleep(void)
{
    atomic_store(&evq.asleep, 1);
    if (atomic_load(&evq.queued) == 0)
        return 1;
    /* An event came meanwhile: whether or not its maker saw the flag (and
     * will wake us, needlessly), the caller keeps its timer. */
    atomic_store(&evq.asleep, 0);
    return 0;
}

void cn__events_awake(void)
{
    atomic_store(&evq.asleep, 0);
}

static void event(const char *kind, uint64_t cid, uint32_t peer, const char *fn,
                  const char *detail, uint64_t count);

void cn__events_flush(void)
{
    cn__lock(&evq.mu);
    batch_close();
    msgpack_sbuffer q = evq.q;
    msgpack_sbuffer_init(&evq.q);
    atomic_store(&evq.queued, 0);
    uint64_t dropped = evq.dropped;
    evq.dropped = 0;
    atomic_store(&evq.soon, 0);
    cn__unlock(&evq.mu);
    cn_wire_hdr_t h = {CN_MSG_EVENT, CN_ROOT_ID, cn__rt.id, 0}; /* for routing */
    if (!cn__rt.is_root) {
        if (q.size > 0) /* one write of them all, toward the root */
            cn__send_frame(&h, q.data, q.size, NULL);
    } else {
        for (size_t off = 0, len; off < q.size; off += len) {
            len = cn_wire_frame_size(q.data + off); /* the root's own: one at a time */
            cn__send_frame(&h, q.data + off, len, NULL);
        }
    }
    msgpack_sbuffer_destroy(&q);
    if (dropped) /* queued for the next turn, like any other */
        event("dropped", 0, 0, NULL,
              "events made faster than this actor could send them", dropped);
}

/* Packs the frame of one event that is not a context's own (those are
 * batched: cn__event_ctx): `nkeys` map entries follow `kind`, packed by
 * the caller with *pk, then ev_end queues it. */
static int ev_begin(msgpack_sbuffer *sb, msgpack_packer *pk, size_t *mark, const char *kind,
                    size_t nkeys)
{
    sb->size = 0; /* the thread's own buffer: no allocation per event */
    cn_wire_hdr_t h = {CN_MSG_EVENT, CN_ROOT_ID, cn__rt.id, cn__ev_cid(CN__EV_SHAPE, 0)};
    if (cn_wire_begin(sb, pk, &h, mark) < 0)
        return -1;
    msgpack_pack_map(pk, nkeys + 1);
    cn__pack_kstr(pk, "kind", kind);
    return 0;
}

static void ev_end(msgpack_sbuffer *sb, size_t mark)
{
    if (cn_wire_end(sb, mark, 0, 0) == 0)
        ev_queue(sb, 0);
    ev_buf_trim(sb);
}

/* Each thread packs its events here; freed when the thread exits. */
static pthread_key_t ev_key;
static pthread_once_t ev_once = PTHREAD_ONCE_INIT;
static __thread msgpack_sbuffer *tl_evbuf;

static void ev_buf_gone(void *p)
{
    msgpack_sbuffer_free(p);
}

static void ev_key_make(void)
{
    pthread_key_create(&ev_key, ev_buf_gone);
}

static msgpack_sbuffer *ev_buf(void)
{
    if (tl_evbuf == NULL) {
        pthread_once(&ev_once, ev_key_make);
        tl_evbuf = msgpack_sbuffer_new();
        if (tl_evbuf)
            pthread_setspecific(ev_key, tl_evbuf);
    }
    return tl_evbuf;
}

/* Packs and queues one event (CN__EV_SHAPE); `count` is only for
 * "dropped". */
static void event(const char *kind, uint64_t cid, uint32_t peer, const char *fn,
                  const char *detail, uint64_t count)
{
    msgpack_sbuffer *sb = ev_buf();
    msgpack_packer pk;
    size_t mark;
    if (sb == NULL || ev_begin(sb, &pk, &mark, kind, count ? 8 : 7) < 0)
        return;
    cn__pack_kint(&pk, "actor", cn__rt.id);
    cn__pack_kstr(&pk, "path", cn__rt.path);
    cn__pack_kint(&pk, "time_us", (int64_t)cn__now_us());
    cn__pack_kint(&pk, "cid", (int64_t)cid);
    cn__pack_kint(&pk, "peer", peer);
    cn__pack_kstr(&pk, "fn", fn);
    cn__pack_kstr(&pk, "detail", detail);
    if (count)
        cn__pack_kint(&pk, "count", (int64_t)count);
    ev_end(sb, mark);
}

void cn__event(const char *kind, uint64_t cid, uint32_t peer, const char *fn, const char *detail)
{
    if (atomic_load_explicit(&cn__rt.events_on, memory_order_relaxed) & CN__EV_SHAPE)
        event(kind, cid, peer, fn, detail, 0);
}

/* One of a context's own events: an array for the open batch. */
void cn__event_ctx(const char *kind, uint64_t cid, uint32_t peer, const char *fn,
                   const char *detail)
{
    if (!(atomic_load_explicit(&cn__rt.events_on, memory_order_relaxed) & CN__EV_CTX))
        return;
    msgpack_sbuffer *sb = ev_buf();
    if (sb == NULL)
        return;
    sb->size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 6);
    cn__pack_cstr(&pk, kind);
    msgpack_pack_uint64(&pk, cn__now_us());
    msgpack_pack_uint64(&pk, cid);
    msgpack_pack_uint32(&pk, peer);
    cn__pack_cstr(&pk, fn);
    cn__pack_cstr(&pk, detail);
    ev_queue(sb, 1);
    ev_buf_trim(sb);
}

void cn__event_log(int level, uint64_t time_us, const char *path, size_t path_len, const char *msg,
                   size_t msg_len)
{
    if (!(atomic_load_explicit(&cn__rt.events_on, memory_order_relaxed) & CN__EV_SHAPE))
        return;
    msgpack_sbuffer *sb = ev_buf();
    msgpack_packer pk;
    size_t mark;
    if (sb == NULL || ev_begin(sb, &pk, &mark, "log", 4) < 0)
        return;
    cn__pack_kint(&pk, "level", level);
    cn__pack_kint(&pk, "time_us", (int64_t)time_us);
    cn__pack_cstr(&pk, "path");
    msgpack_pack_str(&pk, path_len);
    msgpack_pack_str_body(&pk, path, path_len);
    cn__pack_cstr(&pk, "detail");
    msgpack_pack_str(&pk, msg_len);
    msgpack_pack_str_body(&pk, msg, msg_len);
    ev_end(sb, mark);
}

/* rt.h. Each of msgpack's packers is an inline switch on the value's
 * size; inlined at every key of every snapshot and event they made 18 KiB
 * of the library's code, and code is most of what an idle actor has
 * resident of its own (docs/performance.md). Nothing that calls these is
 * per message. */
void cn__pack_cstr(msgpack_packer *pk, const char *v)
{
    if (v == NULL) {
        msgpack_pack_nil(pk);
        return;
    }
    size_t n = strlen(v);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, v, n);
}

void cn__pack_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    cn__pack_cstr(pk, k);
    cn__pack_cstr(pk, v);
}

void cn__pack_int(msgpack_packer *pk, int64_t v)
{
    msgpack_pack_int64(pk, v);
}

void cn__pack_kint(msgpack_packer *pk, const char *k, int64_t v)
{
    cn__pack_cstr(pk, k);
    cn__pack_int(pk, v);
}

static const char *const phase_names[] = {"opening", "started", "returned", "errored"};
static const char *const cancel_names[] = {"none", "requested", "acknowledged", "done",
                                           "timed-out"};

const char *cn_cancel_state_name(cn_cancel_state_t state)
{
    return (unsigned)state < sizeof(cancel_names) / sizeof(cancel_names[0]) ? cancel_names[state]
                                                                             : "?";
}

/* ===========================================================================
 * Records
 */

static thr_t *self(void);

/* Under reg.mu: the table holds cap records, or is left as it was. */
static void recs_resize(size_t cap)
{
    cn__rec_t **t = realloc(reg.recs, cap * sizeof(cn__rec_t *));
    if (t) {
        reg.recs = t;
        reg.cap = cap;
    }
}

void cn__rec_add(cn__rec_t *r)
{
    r->opened_us = cn__now_us();
    thr_t *t = r->role == CN__ROLE_CALLER ? self() : NULL; /* a callee's is set when it runs */
    r->tid = t ? t->tid : 0;
    if (r->is_ctx)
        cn__event_ctx("ctx-open", r->cid, r->peer, r->fn, r->role == CN__ROLE_CALLER ? "caller" : "callee");
    cn__lock(&reg.mu);
    if (reg.nrecs == reg.cap)
        recs_resize(reg.cap ? 2 * reg.cap : 64);
    if (reg.nrecs < reg.cap) { /* else out of memory: it is just not shown */
        reg.recs[reg.nrecs++] = r;
        r->slot = reg.nrecs;
    }
    cn__unlock(&reg.mu);
}

void cn__rec_del(cn__rec_t *r)
{
    cn__lock(&reg.mu);
    if (r->slot) { /* the last record takes its place */
        cn__rec_t *last = reg.recs[--reg.nrecs];
        reg.recs[r->slot - 1] = last;
        last->slot = r->slot;
        r->slot = 0;
        if (reg.cap > 64 && reg.nrecs < reg.cap / 4)
            recs_resize(reg.cap / 2); /* let go of a burst's table */
    }
    r->stream = NULL;
    cn__unlock(&reg.mu);
}

void cn__rec_phase(cn__rec_t *r, int phase)
{
    cn__lock(&reg.mu);
    int changed = r->phase != phase;
    r->phase = phase;
    cn__unlock(&reg.mu);
    if (changed && r->is_ctx)
        cn__event_ctx(phase == CN__PH_STARTED ? "ctx-started"
                  : phase == CN__PH_RETURNED ? "ctx-closed"
                                             : "ctx-errored",
                  r->cid, r->peer, r->fn, r->role == CN__ROLE_CALLER ? "caller" : "callee");
}

void cn__rec_cancel(cn__rec_t *r, cn_cancel_state_t state, const char *by)
{
    cn__lock(&reg.mu);
    int changed = 0;
    if (r->cancel == CN_CANCEL_NONE || state != CN_CANCEL_REQUESTED) {
        if (r->cancel == CN_CANCEL_NONE)
            r->cancel_us = cn__now_us();
        changed = r->cancel != state;
        r->cancel = state;
        if (by)
            snprintf(r->cancel_by, sizeof(r->cancel_by), "%s", by);
    }
    cn__unlock(&reg.mu);
    if (changed) {
        char what[CN__REASON_MAX + 32];
        snprintf(what, sizeof(what), "%s%s%s", cn_cancel_state_name(state), by ? ": " : "",
                 by ? by : "");
        cn__event("cancel", r->cid, r->peer, r->fn, what);
    }
}

void cn__rec_cancel_by(const cn__rec_t *r, char *out, size_t n)
{
    cn__lock(&reg.mu);
    snprintf(out, n, "%s", r->cancel ? r->cancel_by : "");
    cn__unlock(&reg.mu);
}

void cn__rec_stream(cn__rec_t *r, cn_stream_t *s)
{
    cn__lock(&reg.mu);
    r->stream = s;
    cn__unlock(&reg.mu);
}

/* ===========================================================================
 * Threads
 */

static void thr_gone(void *p)
{
    thr_t *t = p;
    cn__lock(&reg.mu);
    t->used = 0;
    t->free_next = reg.free_thrs;
    reg.free_thrs = t;
    reg.nthrs--;
    cn__unlock(&reg.mu);
}

/* Under reg.mu: a cleared record from the free list, or NULL. */
static thr_t *thr_take(void)
{
    if (reg.free_thrs == NULL) {
        size_t n = reg.chunks ? 2 * reg.chunks->n : THR_CHUNK_FIRST;
        n = n < THR_CHUNK_MAX ? n : THR_CHUNK_MAX;
        thr_chunk_t *c = malloc(sizeof(*c) + n * sizeof(c->t[0]));
        if (c == NULL)
            return NULL;
        c->next = reg.chunks;
        c->n = n;
        reg.chunks = c;
        for (size_t i = n; i-- > 0;) {
            c->t[i].used = 0;
            c->t[i].free_next = reg.free_thrs;
            reg.free_thrs = &c->t[i];
        }
    }
    thr_t *t = reg.free_thrs;
    if (t == NULL) /* never: a chunk holds at least THR_CHUNK_FIRST */
        return NULL;
    reg.free_thrs = t->free_next;
    memset(t, 0, sizeof(*t));
    t->used = 1;
    reg.nthrs++;
    return t;
}

static void make_key(void)
{
    pthread_key_create(&reg.key, thr_gone);
}

/* The calling thread's record, registered on first use; NULL if out of
 * memory (the thread is then just not shown). */
static thr_t *self(void)
{
    if (tl_thr)
        return tl_thr;
    pthread_once(&reg.once, make_key);
    int tid = (int)syscall(SYS_gettid);
    uint64_t now = cn__now_us();
    cn__lock(&reg.mu);
    thr_t *t = thr_take();
    if (t) {
        t->tid = tid;
        t->doing = CN__DO_RUNNING;
        t->since_us = now;
    }
    cn__unlock(&reg.mu);
    if (t == NULL)
        return NULL;
    pthread_setspecific(reg.key, t);
    tl_thr = t;
    return t;
}

void cn__doing(int what, uint32_t peer, uint64_t cid)
{
    thr_t *t = self();
    if (t == NULL)
        return;
    uint64_t now = cn__now_us();
    cn__lock(&reg.mu);
    t->doing = what;
    t->peer = peer;
    t->cid = cid;
    t->since_us = now;
    cn__unlock(&reg.mu);
}

void cn__done(void)
{
    thr_t *t = tl_thr;
    if (t == NULL)
        return;
    uint64_t now = cn__now_us();
    cn__lock(&reg.mu);
    t->doing = t->in_task || !t->is_task ? CN__DO_RUNNING : CN__DO_IDLE;
    t->peer = 0;
    t->cid = 0;
    t->since_us = t->in_task ? t->task_us : now;
    cn__unlock(&reg.mu);
}

void cn__thr_task(cn__rec_t *r)
{
    thr_t *t = self();
    if (t == NULL)
        return;
    uint64_t now = cn__now_us();
    cn__lock(&reg.mu);
    t->is_task = 1;
    t->in_task = r != NULL;
    if (r) {
        memcpy(t->fn, r->fn, sizeof(t->fn));
        t->task_caller = r->peer;
        t->task_cid = r->cid;
        t->task_us = now;
        r->tid = t->tid; /* no longer queued */
    }
    t->doing = r ? CN__DO_RUNNING : CN__DO_IDLE;
    t->peer = 0;
    t->cid = 0;
    t->since_us = now;
    cn__unlock(&reg.mu);
}

/* ===========================================================================
 * Packing
 */

static const char *const doing_names[] = {"idle", "running", "call",  "open",     "result",
                                          "recv", "send",    "sleep", "spawn", "debugger",
                                          "reap"};
static const char *end_state(int open, int closed)
{
    return closed ? "closed" : open ? "open" : "unopened";
}

static void pack_stream(msgpack_packer *pk, cn_stream_t *s)
{
    cn_stream_stats_t st;
    cn_stream_stats(s, &st);
    msgpack_pack_map(pk, 13);
    cn__pack_kint(pk, "msgs_in", (int64_t)st.msgs_in);
    cn__pack_kint(pk, "msgs_out", (int64_t)st.msgs_out);
    cn__pack_kint(pk, "bytes_in", (int64_t)st.bytes_in);
    cn__pack_kint(pk, "bytes_out", (int64_t)st.bytes_out);
    cn__pack_kint(pk, "buffered", st.buffered);
    cn__pack_kint(pk, "window", st.window);
    cn__pack_kint(pk, "credit", st.credit);
    cn__pack_kint(pk, "last_us", (int64_t)st.last_us);
    cn__pack_kint(pk, "send_blocked", st.send_blocked);
    cn__pack_kint(pk, "blocked_since_us", (int64_t)st.blocked_since_us);
    cn__pack_kstr(pk, "local", end_state(st.local_open, st.local_closed));
    cn__pack_kstr(pk, "peer", st.peer_closed ? "closed" : st.peer_opened ? "open" : "unopened");
    cn__pack_kint(pk, "peer_window", (int64_t)st.peer_window);
}

/* The snapshot's two tables (docs/protocol.md, Inspection: a table is
 * {cols, rows}, its rows arrays; with a map per row, the keys were half
 * of a big snapshot's objects, and most of the time the client took to
 * read it). Each row's values are packed in the order of these. */
#define COL_NAME(c) #c,
#define COL_MAX 16 /* arrays of chars, not of pointers: no relocations to
                      dirty a page of every actor at start */
static const char ctx_cols[][COL_MAX] = {CN_SNAP_CTX_COLS(COL_NAME)};
static const char thr_cols[][COL_MAX] = {CN_SNAP_THREAD_COLS(COL_NAME)};
#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* `key`'s entry up to its rows: {cols: [...], rows: [ then nrows rows. */
static void pack_table(msgpack_packer *pk, const char *key, const char (*cols)[COL_MAX],
                       size_t ncols, size_t nrows)
{
    cn__pack_cstr(pk, key);
    msgpack_pack_map(pk, 2);
    cn__pack_cstr(pk, "cols");
    msgpack_pack_array(pk, ncols);
    for (size_t i = 0; i < ncols; i++)
        cn__pack_cstr(pk, cols[i]);
    cn__pack_cstr(pk, "rows");
    msgpack_pack_array(pk, nrows);
}

static void pack_ctx_row(msgpack_packer *pk, const cn__rec_t *r)
{
    const char *phase = phase_names[r->phase];
    if (r->phase == CN__PH_STARTED && r->stream)
        phase = "streaming";
    else if (r->role == CN__ROLE_CALLEE && r->phase == CN__PH_OPENING && r->tid == 0)
        phase = "queued"; /* no task thread has taken it yet */
    else if (!r->is_ctx && r->phase == CN__PH_OPENING)
        phase = "running"; /* a plain call has no started: it runs until it answers */
    msgpack_pack_array(pk, NCOLS(ctx_cols));
    cn__pack_int(pk, (int64_t)r->cid);
    cn__pack_int(pk, r->tid);
    cn__pack_int(pk, r->peer);
    cn__pack_cstr(pk, r->fn);
    cn__pack_cstr(pk, r->role == CN__ROLE_CALLER ? "caller" : "callee");
    cn__pack_cstr(pk, r->is_ctx ? "context" : "call");
    cn__pack_cstr(pk, phase);
    cn__pack_int(pk, (int64_t)r->opened_us);
    cn__pack_cstr(pk, cn_cancel_state_name(r->cancel));
    cn__pack_cstr(pk, r->cancel ? r->cancel_by : NULL);
    cn__pack_int(pk, (int64_t)r->cancel_us);
    if (r->stream)
        pack_stream(pk, r->stream);
    else
        msgpack_pack_nil(pk);
}

static void pack_thread_row(msgpack_packer *pk, const thr_t *t)
{
    msgpack_pack_array(pk, NCOLS(thr_cols));
    cn__pack_int(pk, t->tid);
    cn__pack_cstr(pk, t->is_task ? "task" : t->tid == getpid() ? "main" : "user");
    cn__pack_cstr(pk, doing_names[t->doing]);
    cn__pack_int(pk, t->peer);
    cn__pack_int(pk, (int64_t)t->cid);
    cn__pack_int(pk, (int64_t)t->since_us);
    cn__pack_cstr(pk, t->in_task ? t->fn : NULL);
    cn__pack_int(pk, t->in_task ? t->task_caller : 0);
    cn__pack_int(pk, t->in_task ? (int64_t)t->task_cid : 0);
}

/* How many records ahead the walk prefetches: enough to keep a few misses
 * in flight while one record is packed. */
#define REC_AHEAD 8

void cn__registry_pack(msgpack_packer *pk)
{
    cn__lock(&reg.mu);
    pack_table(pk, "contexts", ctx_cols, NCOLS(ctx_cols), reg.nrecs);
    for (size_t i = 0; i < reg.nrecs; i++) {
        if (i + REC_AHEAD < reg.nrecs) { /* the lines a record's packing reads */
            const char *next = (const char *)reg.recs[i + REC_AHEAD];
            __builtin_prefetch(next);
            __builtin_prefetch(next + 64);
            __builtin_prefetch(next + 128);
        }
        pack_ctx_row(pk, reg.recs[i]);
    }
    pack_table(pk, "threads", thr_cols, NCOLS(thr_cols), reg.nthrs);
    for (thr_chunk_t *c = reg.chunks; c; c = c->next)
        for (const thr_t *t = c->t; t < c->t + c->n; t++)
            if (t->used)
                pack_thread_row(pk, t);
    cn__unlock(&reg.mu);
}
