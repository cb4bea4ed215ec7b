/*
 * stream.c: a context's bidirectional stream, with credit-based
 * backpressure.
 *
 * Each side opens its end with a receive window of W messages, and opening
 * sends CREDIT [W] to the peer: the peer may send W YIELDs. Each YIELD
 * spends one credit; a sender with none blocks (or, in overrun mode, fails
 * at once with CN_EOVERRUN once the peer has opened its end). As the
 * receiver's user takes messages out, it returns credit in batches of half
 * a window. So a receiver never holds
 * more than W messages it has not asked for, nothing is dropped, and a
 * peer that never opened its end simply never granted credit. YIELDs a
 * peer sends beyond its credit are dropped on arrival (cn__yq_push).
 *
 * The receiving side's queue (cn__yq_t) is filled by the broker with
 * undecoded frames and read here; bcast.c puts several consumers on one
 * end; registry.c shows the counters to the inspector.
 *
 * Invariant: credit is added (CREDIT) and the end is set only under
 * flow->mu, with a broadcast; a sender takes a credit with one atomic
 * step when there is one, and otherwise checks and waits under flow->mu,
 * so it cannot miss a wake-up. The sending counters are written by one
 * sender at a time (send_mu) and read with atomic loads.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt.h"

#define DEFAULT_WINDOW 64
#define STALL_EVENT_US 100000 /* a wait for credit this long is a "stall" event */
#define MAX_WINDOW 65536

/* Why this thread's last failed stream call did (cn_stream_last_error).
 * Per thread, as errno: a sender and a receiver on two threads each read
 * their own, and a thread whose wait a cn_ctx_free ended can read why
 * after the stream is gone. */
static __thread char tl_error[CN__REASON_MAX];

struct cn_stream {
    cn__flow_t *flow;
    cn__yq_t *yq;    /* YIELDs from the peer */
    cn__latch_t *in; /* STOP from the peer (and, for an opener, the
                        context's final message) */
    uint32_t peer;
    uint64_t cid_out; /* the cid our messages carry */
    cn_ctx_t *ctx;    /* the opener's side: where the final message goes */
    unsigned window;
    int overrun;
    unsigned consumed; /* taken since we last granted credit */
    int closed;        /* we sent STOP */
    int eof;           /* the peer's STOP arrived, or the context ended */
    int end_rc;        /* what recv returns once eof */
    cn_stream_stats_t st;
    _Atomic uint64_t msgs_out, bytes_out, out_us; /* see the invariant */
    pthread_mutex_t send_mu; /* one sender at a time; taken before rt.mu */
    cn__stream_t *link;      /* under send_mu: where YIELDs go, once known */
    msgpack_sbuffer sb;      /* reused for packing: no allocation per message */
    cn_wire_env_t env;       /* under send_mu: the YIELDs' envelope, packed once */
    char end_why[CN__REASON_MAX]; /* the receiver's: why recv returns end_rc */
    _Atomic int receiving; /* a thread is in recv: one at a time (CN_EBUSY) */
    _Atomic int hub;       /* a broadcast hub reads it (cn_bcast_new) */
    _Atomic int freeing;   /* cn__stream_stop: its waits end with CN_ECANCELED */
};

/* ===========================================================================
 * Flow
 */

void cn__flow_init(cn__flow_t *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    cn__cond_init_mono(&f->cv);
}

void cn__flow_fini(cn__flow_t *f)
{
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

void cn__flow_credit(cn__flow_t *f, uint64_t n)
{
    cn__lock(&f->mu);
    if (n > (uint64_t)MAX_WINDOW * 2)
        n = (uint64_t)MAX_WINDOW * 2; /* a peer cannot make us buffer without bound */
    atomic_fetch_add(&f->credit, (int64_t)n);
    if (!f->peer_opened)
        f->peer_window = n;
    f->peer_opened = 1;
    pthread_cond_broadcast(&f->cv);
    cn__unlock(&f->mu);
}

void cn__flow_end(cn__flow_t *f, int err, const char *reason)
{
    cn__lock(&f->mu);
    if (!atomic_load(&f->ended)) {
        f->err = err;
        snprintf(f->reason, sizeof(f->reason), "%s", reason ? reason : cn_strerror(err));
        atomic_store(&f->ended, 1);
    }
    pthread_cond_broadcast(&f->cv);
    cn__unlock(&f->mu);
}

/* ===========================================================================
 * Incoming YIELDs (see cn__yq_t in rt.h)
 */

void cn__yq_init(cn__yq_t *q, cn__latch_t *latch)
{
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    q->latch = latch;
    msgpack_sbuffer_init(&q->in);
    msgpack_sbuffer_init(&q->batch);
}

void cn__yq_fini(cn__yq_t *q)
{
    pthread_mutex_destroy(&q->mu);
    msgpack_sbuffer_destroy(&q->in);
    msgpack_sbuffer_destroy(&q->batch);
}

int cn__yq_push(cn__yq_t *q, const char *frames, size_t len, unsigned count, uint64_t now_us)
{
    cn__lock(&q->mu);
    unsigned dropped = 0;
    if (q->msgs + count > q->granted) { /* keep only what credit allows */
        uint64_t allowed = q->granted > q->msgs ? q->granted - q->msgs : 0;
        size_t cut = 0;
        for (uint64_t k = 0; k < allowed; k++)
            cut += cn_wire_frame_size(frames + cut);
        dropped = count - (unsigned)allowed;
        count = (unsigned)allowed;
        len = cut;
    }
    if (count == 0) {
        cn__unlock(&q->mu);
        return (int)dropped;
    }
    if (msgpack_sbuffer_write(&q->in, frames, len) != 0) {
        cn__unlock(&q->mu);
        return CN_ENOMEM;
    }
    q->nin += count;
    q->msgs += count;
    q->bytes += len;
    q->last_us = now_us;
    int put = !q->token_queued;
    q->token_queued = 1;
    cn__unlock(&q->mu);
    /* A closed latch (a cancelled task) refuses it; its reader is done. */
    if (put)
        cn__latch_put(q->latch, &q->token);
    return (int)dropped;
}

int cn__yq_is_token(cn__yq_t *q, cn__node_t *n)
{
    if (n != &q->token)
        return 0;
    cn__lock(&q->mu);
    q->token_queued = 0;
    cn__unlock(&q->mu);
    return 1;
}

/* The reader: the next queued frame, decoded into *out; 0 if none. */
static int yq_take(cn__yq_t *q, cn_wire_msg_t **out)
{
    if (q->boff == q->batch.size) {
        if (q->batch.alloc > (1u << 20)) { /* do not keep a burst's buffer */
            msgpack_sbuffer_destroy(&q->batch);
            msgpack_sbuffer_init(&q->batch);
        }
        q->batch.size = q->boff = 0;
        cn__lock(&q->mu);
        msgpack_sbuffer t = q->batch;
        q->batch = q->in;
        q->in = t;
        atomic_store(&q->nbatch, q->nin);
        q->nin = 0;
        cn__unlock(&q->mu);
        if (q->batch.size == 0)
            return 0;
    }
    const char *p = q->batch.data + q->boff;
    size_t len = cn_wire_frame_size(p);
    q->boff += len;
    /* the reader alone writes it: no read-modify-write needed */
    atomic_store_explicit(&q->nbatch, atomic_load_explicit(&q->nbatch, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    /* The broker peeked it, and a YIELD's body is opaque: this cannot
     * fail but for memory. */
    int rc = cn_wire_decode_peeked(p, len, &q->memo, out);
    return rc < 0 ? rc : 1;
}

int64_t cn__ms_left(int64_t deadline_ns)
{
    if (deadline_ns == INT64_MAX)
        return CN__FOREVER;
    int64_t left = deadline_ns - cn__mono_ns();
    return left <= 0 ? 0 : (left + 999999) / 1000000;
}

/* ===========================================================================
 * Opening
 */

static int send_simple(cn_stream_t *s, uint32_t type, const msgpack_object *body)
{
    cn_wire_hdr_t h = {type, s->peer, cn__rt.id, s->cid_out};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc;
    if (type == CN_MSG_CREDIT) {
        cn_wire_credit_t c = {body->via.u64};
        rc = cn_wire_pack_typed(&sb, &h, &c, 0);
    } else {
        rc = cn_wire_pack(&sb, &h, body, 0);
    }
    if (rc == 0)
        rc = cn__send_frame(&h, sb.data, sb.size, tl_error);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int grant(cn_stream_t *s, unsigned n)
{
    msgpack_object c = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    c.via.u64 = n;
    cn__lock(&s->yq->mu); /* before the peer can use it */
    s->yq->granted += n;
    cn__unlock(&s->yq->mu);
    return send_simple(s, CN_MSG_CREDIT, &c);
}

cn_stream_t *cn__stream_open(cn__flow_t *flow, cn__yq_t *yq, cn__latch_t *in, uint32_t peer,
                             uint64_t cid_out, cn_ctx_t *ctx, const cn_stream_opts_t *opts,
                             int *rc)
{
    unsigned window = opts && opts->window ? opts->window : DEFAULT_WINDOW;
    if (window > MAX_WINDOW) {
        *rc = cn__stream_fail(CN_EINVAL, "a window of %u messages is more than the %u allowed",
                              window, MAX_WINDOW);
        return NULL;
    }
    cn_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        *rc = CN_ENOMEM;
        return NULL;
    }
    s->flow = flow;
    s->yq = yq;
    s->in = in;
    s->peer = peer;
    s->cid_out = cid_out;
    s->ctx = ctx;
    s->window = window;
    s->overrun = opts && opts->overrun;
    s->st.window = window;
    s->st.local_open = 1;
    pthread_mutex_init(&s->send_mu, NULL);
    msgpack_sbuffer_init(&s->sb);
    *rc = grant(s, window); /* the peer may now send `window` messages */
    return s;
}

void cn__stream_free(cn_stream_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->send_mu);
    msgpack_sbuffer_destroy(&s->sb);
    cn__link_put(s->link);
    free(s);
}

/* ===========================================================================
 * Sending
 */

static void count_sent(cn_stream_t *s, size_t bytes)
{
    /* one writer at a time (send_mu): plain increments, atomic for readers */
    atomic_store_explicit(&s->msgs_out, atomic_load_explicit(&s->msgs_out, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&s->bytes_out,
                          atomic_load_explicit(&s->bytes_out, memory_order_relaxed) + bytes,
                          memory_order_relaxed);
    atomic_store_explicit(&s->out_us, cn__now_coarse_us(), memory_order_relaxed);
}

/* Takes one credit for a frame of `bytes`, waiting up to timeout_ms for
 * it, and counts the frame as sent; *left is the credit left after it. */
static int take_credit(cn_stream_t *s, int64_t timeout_ms, size_t bytes, int64_t *left)
{
    cn__flow_t *f = s->flow;
    /* The fast path: a credit is there, one atomic step. */
    int64_t c = atomic_load(&f->credit);
    while (c > 0 && !atomic_load(&f->ended))
        if (atomic_compare_exchange_weak(&f->credit, &c, c - 1)) {
            count_sent(s, bytes);
            *left = c - 1;
            return 0;
        }
    *left = 0;
    int64_t deadline = cn__deadline(timeout_ms);
    int rc = 0, stalled = 0;
    cn__lock(&f->mu);
    while (!atomic_load(&f->ended) && atomic_load(&f->credit) <= 0) {
        /* Overrun mode fails on a full buffer, not on a receiver that has
         * yet to open its end: that is every stream's start (a callee
         * sends right after cn_started, its opener opens right after
         * cn_open returns), so the send waits for it within its timeout. */
        if (s->overrun && f->peer_opened) {
            rc = CN_EOVERRUN;
            snprintf(tl_error, sizeof(tl_error),
                     "overrun: the receiver's buffer of %llu messages is full",
                     (unsigned long long)f->peer_window);
            break;
        }
        if (s->overrun && cn__mono_ns() >= deadline) {
            rc = CN_EOVERRUN;
            snprintf(tl_error, sizeof(tl_error),
                     "overrun: the receiving side never opened its stream (waited %lld ms)",
                     cn__said_ms(timeout_ms));
            break;
        }
        if (deadline != INT64_MAX && cn__mono_ns() >= deadline) {
            rc = CN_ETIMEDOUT;
            snprintf(tl_error, sizeof(tl_error),
                     "no credit within %lld ms: the receiver %s", cn__said_ms(timeout_ms),
                     f->peer_opened ? "is not keeping up" : "has not opened its stream");
            break;
        }
        if (!s->st.send_blocked) {
            s->st.send_blocked = 1;
            s->st.blocked_since_us = cn__now_us();
            cn__unlock(&f->mu);
            cn__doing(CN__DO_SEND, s->peer, s->cid_out & ~CN__CID_FROM_CALLEE);
            cn__lock(&f->mu);
            continue; /* the state may have changed meanwhile */
        }
        /* Short waits are the normal rhythm of backpressure: only one that
         * lasts becomes a "stall" event (and its end a "resume"). */
        int64_t stall_at = stalled ? INT64_MAX : cn__mono_ns() + STALL_EVENT_US * 1000;
        cn__cond_wait_until(&f->cv, &f->mu, stall_at < deadline ? stall_at : deadline);
        if (!stalled && cn__mono_ns() >= stall_at && !atomic_load(&f->ended) &&
            atomic_load(&f->credit) <= 0) {
            stalled = 1;
            cn__unlock(&f->mu);
            cn__event_ctx("stall", s->cid_out & ~CN__CID_FROM_CALLEE, s->peer, NULL,
                      "a sender has waited 100 ms for credit");
            cn__lock(&f->mu);
        }
    }
    if (s->st.send_blocked) {
        char waited[64];
        snprintf(waited, sizeof(waited), "after %llu us",
                 (unsigned long long)(cn__now_us() - s->st.blocked_since_us));
        s->st.send_blocked = 0;
        s->st.blocked_since_us = 0;
        cn__unlock(&f->mu);
        cn__done();
        if (stalled)
            cn__event_ctx("resume", s->cid_out & ~CN__CID_FROM_CALLEE, s->peer, NULL, waited);
        cn__lock(&f->mu);
    }
    if (rc == 0 && atomic_load(&f->ended)) {
        rc = f->err;
        snprintf(tl_error, sizeof(tl_error), "%s", f->reason);
    }
    if (rc == 0) {
        *left = atomic_fetch_sub(&f->credit, 1) - 1; /* others only add: it stays >= 0 */
        count_sent(s, bytes);
    }
    cn__unlock(&f->mu);
    return rc;
}

/* tl_error for CN_ECANCELED: the task's cancellation, or the actor's. */
static int say_cancelled(cn__task_t *t)
{
    char why[CN__REASON_MAX] = "";
    if (t)
        cn__task_cancel_reason(t, why, sizeof(why));
    snprintf(tl_error, sizeof(tl_error), "%s%s%s",
             t ? "this task was cancelled" : "this actor is shutting down", why[0] ? ": " : "",
             why);
    return CN_ECANCELED;
}

int cn__stream_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_error, sizeof(tl_error), fmt, ap);
    va_end(ap);
    return rc;
}

int cn_stream_send(cn_stream_t *s, const msgpack_object *value, int64_t timeout_ms)
{
    if (s == NULL)
        return cn__stream_fail(CN_EINVAL, "no stream (s is NULL)");
    if (s->closed)
        return cn__stream_fail(CN_EPIPE, "this end of the stream is closed");
    cn__task_t *t = cn__task_current();
    if (t && cn__task_is_cancelled(t))
        return say_cancelled(t);
    if (s->ctx && cn__ctx_cancelled(s->ctx, NULL) < 0)
        return CN_ECANCELED;
    cn__lock(&s->send_mu);
    int64_t left = 0;
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    msgpack_sbuffer *sb = &s->sb;
    sb->size = 0;
    cn_wire_hdr_t h = {CN_MSG_YIELD, s->peer, cn__rt.id, s->cid_out};
    int rc = s->env.len ? 0 : cn_wire_env_init(&s->env, &h);
    if (rc == 0)
        rc = cn_wire_pack_env(sb, &s->env, value ? value : &nil, 0);
    if (rc == CN_EMSGSIZE)
        snprintf(tl_error, sizeof(tl_error),
                 "cannot send the value: packed, it is larger than the %u MiB a message may "
                 "hold", CN_WIRE_DEFAULT_MAX_FRAME >> 20);
    else if (rc < 0)
        snprintf(tl_error, sizeof(tl_error), "cannot send the value: %s",
                 cn_strerror(rc));
    else
        rc = take_credit(s, timeout_ms, sb->size, &left);
    if (rc == 0 && s->link == NULL)
        s->link = cn__link_get(s->peer); /* routed once, not per message */
    if (rc == 0 && s->link)
        rc = cn__link_send(s->link, &h, sb->data, sb->size, (size_t)left * sb->size, tl_error);
    else if (rc == 0)
        rc = cn__send_frame(&h, sb->data, sb->size, tl_error);
    if (sb->alloc > 1u << 20) { /* do not keep a huge one */
        msgpack_sbuffer_destroy(sb);
        msgpack_sbuffer_init(sb);
    }
    cn__unlock(&s->send_mu);
    return rc;
}

int cn_stream_close(cn_stream_t *s)
{
    if (s == NULL)
        return CN_EINVAL;
    if (s->closed)
        return 0;
    s->closed = 1;
    cn__lock(&s->flow->mu);
    s->st.local_closed = 1;
    cn__unlock(&s->flow->mu);
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    return send_simple(s, CN_MSG_STOP, &nil);
}

/* ===========================================================================
 * Receiving
 */

static int recv_one(cn_stream_t *s, cn_result_t *msg, int64_t timeout_ms);

int cn_stream_recv(cn_stream_t *s, cn_result_t *msg, int64_t timeout_ms)
{
    if (msg) /* first: a caller may free it whatever the outcome */
        memset(msg, 0, sizeof(*msg));
    if (s == NULL || msg == NULL)
        return cn__stream_fail(CN_EINVAL, "no %s (%s is NULL)", s ? "result" : "stream",
                               s ? "msg" : "s");
    if (atomic_load_explicit(&s->hub, memory_order_relaxed))
        return cn__stream_fail(CN_EBUSY, "a broadcast hub reads this stream: receive with "
                                         "cn_sub_recv on one of its subscriptions");
    return cn__stream_recv(s, msg, timeout_ms);
}

int cn__stream_recv(cn_stream_t *s, cn_result_t *msg, int64_t timeout_ms)
{
    memset(msg, 0, sizeof(*msg));
    /* One reader at a time: the queue's reading side is a single
     * consumer's, and two took the same frames or lost some. A second
     * thread is told, not made to wait. */
    if (atomic_exchange_explicit(&s->receiving, 1, memory_order_acquire))
        return cn__stream_fail(CN_EBUSY, "another thread is receiving on this stream: one "
                                         "receiver at a time");
    int rc = recv_one(s, msg, timeout_ms);
    atomic_store_explicit(&s->receiving, 0, memory_order_release); /* the last touch of s */
    return rc;
}

int cn__stream_claim_hub(cn_stream_t *s, int claim)
{
    int none = 0;
    if (!claim)
        atomic_store(&s->hub, 0);
    return !claim || atomic_compare_exchange_strong(&s->hub, &none, 1) ? 0 : CN_EBUSY;
}

void cn__stream_stop(cn_stream_t *s, const char *why)
{
    if (s == NULL)
        return;
    atomic_store(&s->freeing, 1);
    cn__flow_end(s->flow, CN_ECANCELED, why); /* a sender waiting for credit */
    cn__latch_close(s->in, CN_ECANCELED);     /* a receiver */
    cn__lock(&s->send_mu);                    /* the sender has left */
    cn__unlock(&s->send_mu);
    struct timespec nap = {0, 100 * 1000};
    while (atomic_load(&s->receiving)) /* the receiver wakes and leaves */
        nanosleep(&nap, NULL);
}

static int recv_one(cn_stream_t *s, cn_result_t *msg, int64_t timeout_ms)
{
    if (s->eof)
        return cn__stream_fail(s->end_rc, "%s", s->end_why);
    /* Cancelled, this end takes nothing more, however much is buffered:
     * what was sent before an end (CN_EOF, an error, a death) is taken
     * first, but a cancel means stop. */
    cn__task_t *t = cn__task_current();
    if (t && cn__task_is_cancelled(t))
        return say_cancelled(t);
    if (s->ctx && cn__ctx_cancelled(s->ctx, msg) < 0)
        return CN_ECANCELED;
    int64_t deadline = -1; /* taken when we first wait: a clock read */
    cn__node_t *n;
    for (;;) {
        cn_wire_msg_t *m;
        int rc = yq_take(s->yq, &m);
        if (rc == 1) {
            msg->value = m->body;
            msg->priv_ = m; /* freed by cn_result_free */
            if (++s->consumed >= (s->window + 1) / 2) {
                grant(s, s->consumed);
                s->consumed = 0;
            }
            return 0;
        }
        if (rc < 0)
            return cn__stream_fail(rc, "a message was lost: %s", cn_strerror(rc));
        rc = cn__latch_get(s->in, 0, &n);
        if (rc == CN_ETIMEDOUT && timeout_ms != 0) { /* about to sleep: say so */
            if (deadline < 0)
                deadline = cn__deadline(timeout_ms);
            cn__doing(CN__DO_RECV, s->peer, s->cid_out & ~CN__CID_FROM_CALLEE);
            rc = cn__latch_get(s->in, cn__ms_left(deadline), &n);
            cn__done();
        }
        if (rc < 0) {
            if (rc == CN_ETIMEDOUT)
                snprintf(tl_error, sizeof(tl_error), "nothing received within %lld ms",
                         cn__said_ms(timeout_ms));
            else if (rc == CN_ECANCELED && atomic_load(&s->freeing))
                snprintf(tl_error, sizeof(tl_error),
                         "the context was freed (cn_ctx_free) while this thread waited");
            else if (rc == CN_ECANCELED)
                say_cancelled(cn__task_current());
            return rc; /* CN_ETIMEDOUT, or the task's cancellation */
        }
        if (!cn__yq_is_token(s->yq, n))
            break;
    }
    cn__item_t *it = (cn__item_t *)n;
    uint32_t type = it->msg ? it->msg->hdr.type : CN_MSG_DEAD;
    /* The end: the peer's STOP, or (opener) the context's final message. */
    s->eof = 1;
    cn__lock(&s->flow->mu);
    s->st.peer_closed = 1;
    cn__unlock(&s->flow->mu);
    if (type == CN_MSG_STOP) {
        s->end_rc = CN_EOF;
        cn__item_free(it);
    } else {
        s->end_rc = cn__ctx_end_from_stream(s->ctx, it, msg);
        if (s->end_rc == 0)
            s->end_rc = CN_EOF; /* it returned: the stream is over */
    }
    /* Said once, for this call and every later one (they return it too). */
    if (s->end_rc == CN_EOF)
        snprintf(s->end_why, sizeof(s->end_why), "end of stream: the other side %s",
                 type == CN_MSG_STOP ? "closed its end" : "returned");
    else if (msg->error.message && msg->error.message[0])
        snprintf(s->end_why, sizeof(s->end_why), "%s", msg->error.message);
    else
        snprintf(s->end_why, sizeof(s->end_why), "%s", cn_strerror(s->end_rc));
    return cn__stream_fail(s->end_rc, "%s", s->end_why);
}

void cn_stream_stats(const cn_stream_t *s, cn_stream_stats_t *out)
{
    if (s == NULL || out == NULL)
        return;
    cn__lock(&s->flow->mu); /* the rest of the sending side */
    *out = s->st;
    out->msgs_out = atomic_load_explicit(&s->msgs_out, memory_order_relaxed);
    out->bytes_out = atomic_load_explicit(&s->bytes_out, memory_order_relaxed);
    out->last_us = atomic_load_explicit(&s->out_us, memory_order_relaxed);
    out->credit = atomic_load(&s->flow->credit);
    out->peer_opened = s->flow->peer_opened;
    out->peer_window = s->flow->peer_window;
    cn__unlock(&s->flow->mu);
    cn__yq_t *q = s->yq;
    cn__lock(&q->mu); /* and the receiving ones under this */
    out->msgs_in = q->msgs;
    out->bytes_in = q->bytes;
    if (q->last_us > out->last_us)
        out->last_us = q->last_us;
    out->buffered = q->nin + atomic_load(&q->nbatch);
    cn__unlock(&q->mu);
}

const char *cn_stream_last_error(const cn_stream_t *s)
{
    (void)s; /* the calling thread's: see tl_error */
    return tl_error;
}
