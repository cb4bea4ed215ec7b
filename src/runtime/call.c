/*
 * call.c: the caller's side of calls and contexts.
 *
 * A pending call is an inbox: the broker delivers each message for its cid
 * (STARTED, then the final RETURN, ERROR or DEAD) into the call's latch,
 * and the caller takes them out. A plain call (cn_call) waits for the final
 * message; a context (cn_open) first for STARTED, then (cn_ctx_result) for
 * the final one. The callee's side is in task.c.
 *
 * Invariant: a pending call is in rt.calls from its creation until either
 * its final message is delivered or its owner withdraws it. Every delivery
 * finds the call under rt.mu; a message that is not final is also put
 * into the inbox under rt.mu, so after a withdrawal nothing more arrives.
 * The final message takes the call out of the table and counts itself in
 * `delivering` under rt.mu, then is put into the latches after rt.mu is
 * dropped: woken under rt.mu, the owner ran straight into it on its way
 * out and slept a second time (a futex wait and wake more per call). So
 * the owner, before it drains the inbox and frees the call (pcall_free),
 * waits for `delivering` to fall to zero: the delivery that woke it may
 * not be over.
 *
 * A context's end has two audiences that may wait at once on different
 * threads: its stream's reader, which must see every YIELD before the end,
 * and cn_ctx_result (or cn_ctx_cancel). So the final message of a context
 * is delivered twice: into the inbox, behind the YIELDs, for the reader,
 * and as a copy into `endq` for the result. Whichever is taken first ends
 * the context (ctx_claim); the other copy is dropped. Several result
 * waiters wake one after another on `end_token`.
 *
 * An operator (canopy cancel) may close a started context's end before
 * its task answers: the owner's waits end with CN_ECANCELED at once, and
 * the call moves from rt.calls to rt.closed until cn_ctx_free, so that
 * the task's answer, or a DEAD for it, still settles the cancel (late_answer):
 * otherwise it would stay "requested" for as long as the program keeps
 * the context. `delivering` guards such an answer as it does a final one.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

typedef cn__item_t item_t;

struct cn__pcall {
    cn__latch_t inbox; /* STARTED, STOP, then the final message */
    cn__yq_t yq;       /* YIELDs */
    cn__rec_t rec;     /* what the inspector sees */
    cn__flow_t flow;   /* our send credit on the context's stream */
    uint64_t cid;
    uint32_t to;
    cn__task_t *task;     /* the task that made it, if made from a handler */
    cn__latch_t endq;     /* a context's: a copy of its final message */
    cn__node_t end_token; /* in endq once the context has ended */
    _Atomic int delivering; /* final messages on their way in (see the top) */
    cn_ctx_t *ctx;          /* a started context's, set under rt.mu (rt.closed) */
};

struct cn_ctx {
    cn__pcall_t *pc; /* kept until cn_ctx_free: the stream uses its inbox */
    _Atomic int result_waiters; /* threads in cn_ctx_result or cn_ctx_cancel: cn_ctx_free
                                   ends their waits, and waits for them to leave */
    uint32_t peer;
    char fn[CN__NAME_MAX];
    cn_stream_t *stream; /* our end, once opened */
    pthread_mutex_t mu;  /* the reader and a canceller may race for the end: */
    item_t *final;       /*   how it ended, once it has (pc is out of the table) */
    cn_cancel_state_t cancel;
    uint64_t cancel_us;                /* when cancel was requested */
    char cancel_by[CN__REASON_MAX];    /* and by whom */
    _Atomic int cancelled; /* cancel requested or closed here: read without mu */
};

static int is_final(uint32_t type)
{
    return type != CN_MSG_STARTED && type != CN_MSG_YIELD && type != CN_MSG_STOP;
}

cn__item_t *cn__item_new(cn_wire_msg_t *msg, int err, const char *reason)
{
    cn__item_t *it = calloc(1, sizeof(*it));
    if (it) {
        it->msg = msg;
        it->err = err;
        if (reason)
            snprintf(it->reason, sizeof(it->reason), "%s", reason);
    }
    return it;
}

/* ===========================================================================
 * Pending calls
 */

static cn__pcall_t *cn__pcall_new(uint32_t to)
{
    cn__pcall_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    cn__latch_init(&c->inbox);
    cn__latch_init(&c->endq);
    cn__yq_init(&c->yq, &c->inbox);
    cn__flow_init(&c->flow);
    c->cid = atomic_fetch_add(&cn__rt.next_cid, 1);
    c->to = to;
    c->task = cn__task_current();
    cn__lock(&cn__rt.mu);
    int rc = cn__cmap_put(&cn__rt.calls, 0, c->cid, c, NULL);
    if (rc == 0 && c->task)
        rc = cn__task_track(c->task, c, 1);
    cn__unlock(&cn__rt.mu);
    if (rc != 0) {
        cn__lock(&cn__rt.mu);
        cn__cmap_del(&cn__rt.calls, 0, c->cid);
        cn__unlock(&cn__rt.mu);
        cn__latch_fini(&c->inbox);
        cn__latch_fini(&c->endq);
        cn__yq_fini(&c->yq);
        cn__flow_fini(&c->flow);
        free(c);
        return NULL;
    }
    return c;
}

uint64_t cn__pcall_cid(const cn__pcall_t *c)
{
    return c->cid;
}

uint32_t cn__pcall_to(const cn__pcall_t *c)
{
    return c->to;
}

void cn__item_free(cn__item_t *it)
{
    if (it) {
        cn_wire_msg_free(it->msg);
        free(it);
    }
}

/* Takes c out of the table, so nothing more is delivered to it. Returns 1
 * if it was still there. Takes rt.mu. */
static int pcall_withdraw(cn__pcall_t *c)
{
    cn__lock(&cn__rt.mu);
    int was = cn__cmap_del(&cn__rt.calls, 0, c->cid) != NULL;
    if (was && c->task)
        cn__task_track(c->task, c, 0);
    cn__unlock(&cn__rt.mu);
    return was;
}

/* Frees c and whatever is left in its inbox. It must be out of the table.
 * Out of the table is not yet untouched: the final message's delivery
 * may still be between its latch puts (`delivering`; see the top). */
/* Waits until no final message is on its way into c (see the top): the
 * delivering thread is between two latch puts, a few hundred nanoseconds
 * unless it was preempted there. */
static void pcall_quiet(cn__pcall_t *c)
{
    for (int spins = 0; atomic_load_explicit(&c->delivering, memory_order_acquire); spins++)
        if (spins > 100)
            sched_yield();
}

static void pcall_free(cn__pcall_t *c)
{
    pcall_quiet(c);
    cn__rec_del(&c->rec);
    cn__node_t *n;
    while (cn__latch_get(&c->inbox, 0, &n) == 0)
        if (!cn__yq_is_token(&c->yq, n))
            cn__item_free((item_t *)n);
    while (cn__latch_get(&c->endq, 0, &n) == 0)
        if (n != &c->end_token)
            cn__item_free((item_t *)n);
    cn__latch_fini(&c->inbox);
    cn__latch_fini(&c->endq);
    cn__yq_fini(&c->yq);
    cn__flow_fini(&c->flow);
    free(c);
}

/* A plain call's caller spins for its reply before it sleeps
 * (docs/performance.md, "Round trip"): a reply that comes meanwhile is
 * taken without the wake-up, the largest single cost of a round trip. */
static __thread cn__spin_t call_spin;

/* Next message for c other than a YIELD (those stay queued for the
 * stream), or NULL with *rc = CN_ETIMEDOUT. The thread is shown doing
 * `what` (CN__DO_*) meanwhile. */
static item_t *pcall_next(cn__pcall_t *c, int what, int64_t timeout_ms, int *rc)
{
    int64_t deadline = cn__deadline(timeout_ms);
    cn__node_t *n;
    cn__doing(what, c->to, c->cid);
    int64_t spin = what == CN__DO_CALL ? cn__spin_budget(&call_spin) : 0;
    int64_t t0 = spin ? cn__mono_ns() : 0;
    do
        *rc = cn__latch_get_spin(&c->inbox, cn__ms_left(deadline), spin, &n);
    while (*rc == 0 && cn__yq_is_token(&c->yq, n));
    if (spin)
        cn__spin_done(&call_spin, cn__mono_ns() - t0);
    cn__done();
    return *rc == 0 ? (item_t *)n : NULL;
}

cn__yq_t *cn__call_yq(uint64_t cid, uint32_t src, int *not_callee)
{
    cn__pcall_t *c = cn__cmap_get(&cn__rt.calls, 0, cid & ~CN__CID_FROM_CALLEE);
    *not_callee = c && c->to != src;
    return c && !*not_callee ? &c->yq : NULL;
}

/* Whether msg may be for call c: everything but DEAD (which any actor on
 * the way may send) must come from the actor called. Only the src is
 * checked here; that the src is not forged, the stream it came on
 * checked (src_ok_locked in actor.c). */
static int from_callee(const cn__pcall_t *c, const cn_wire_msg_t *msg)
{
    return msg == NULL || msg->hdr.type == CN_MSG_DEAD || msg->hdr.src == c->to;
}

/* Logs and frees msg, which from_callee refused (not under rt.mu). */
static void drop_not_from_callee(cn_wire_msg_t *msg, uint64_t cid, uint32_t callee)
{
    cn_log(CN_LOG_WARN, "dropped %s for call %llu from actor %u: the call went to actor %u",
           cn_wire_type_name(msg->hdr.type), (unsigned long long)cid, msg->hdr.src, callee);
    cn_wire_msg_free(msg);
}

/* Waits for c's final message, skipping any that are not (none can come
 * for a plain call). With `withdraw`, a timeout also withdraws c, unless
 * its final message was already on its way, in which case that is
 * returned; without, c stays registered for a later wait. */
static item_t *pcall_final(cn__pcall_t *c, int what, int64_t timeout_ms, int withdraw, int *rc)
{
    for (;;) {
        item_t *it = pcall_next(c, what, timeout_ms, rc);
        if (it == NULL) {
            if (!withdraw || pcall_withdraw(c))
                return NULL;
            /* The final message was delivered as we gave up: take it. */
            timeout_ms = CN__FOREVER;
            continue;
        }
        if (it->msg == NULL || is_final(it->msg->hdr.type))
            return it;
        cn__item_free(it);
    }
}

/* How a final message ends a context, for a sender still on its stream. */
static int end_code(const cn_wire_msg_t *msg, int err)
{
    if (msg == NULL)
        return err;
    switch (msg->hdr.type) {
    case CN_MSG_ERROR:
        return msg->u.error.code == CN_ECANCELED ? CN_ECANCELED : CN_EREMOTE;
    case CN_MSG_DEAD:
        return CN_EDEAD;
    default:
        return CN_EOF;
    }
}

/* What a sender on the context is told once it ended, in words: its
 * last_error (the whole error comes from recv or cn_ctx_result). */
static void end_reason(const cn_wire_msg_t *msg, const char *reason, char *out, size_t cap)
{
    if (msg == NULL)
        snprintf(out, cap, "%s", reason ? reason : "the context has ended");
    else if (msg->hdr.type == CN_MSG_ERROR && msg->u.error.code == CN_ECANCELED)
        snprintf(out, cap, "the context's task on %.*s ended: %.*s", /* a cancel is no error */
                 (int)msg->u.error.origin.len, msg->u.error.origin.ptr,
                 (int)msg->u.error.message.len, msg->u.error.message.ptr);
    else if (msg->hdr.type == CN_MSG_ERROR)
        snprintf(out, cap, "the context ended with an error from %.*s: %.*s",
                 (int)msg->u.error.origin.len, msg->u.error.origin.ptr,
                 (int)msg->u.error.message.len, msg->u.error.message.ptr);
    else if (msg->hdr.type == CN_MSG_DEAD)
        snprintf(out, cap, "%.*s", (int)msg->u.dead.reason.len, msg->u.dead.reason.ptr);
    else
        snprintf(out, cap, "the context has ended: the other side returned");
}

/* Under ctx->mu: a requested cancel settles on the context's final
 * message `msg` (NULL: a DEAD saying `reason`): acknowledged if the task
 * answered CN_ECANCELED, else done. `after` ends the log line. */
static void settle_cancel(cn_ctx_t *ctx, cn__rec_t *rec, const cn_wire_msg_t *msg,
                          const char *reason, const char *after)
{
    if (ctx->cancel != CN_CANCEL_REQUESTED && ctx->cancel != CN_CANCEL_TIMED_OUT)
        return;
    int acked = msg && msg->hdr.type == CN_MSG_ERROR && msg->u.error.code == CN_ECANCELED;
    ctx->cancel = acked ? CN_CANCEL_ACKNOWLEDGED : CN_CANCEL_DONE;
    cn__rec_cancel(rec, ctx->cancel, NULL);
    cn_log(CN_LOG_CANCEL, "context %s on actor %u: cancel %s%s%s", ctx->fn, ctx->peer,
           acked ? "acknowledged" : msg ? "overtaken: it ended on its own" : "over: ",
           acked || msg ? "" : reason, after);
}

/* A final message (or, msg NULL, a DEAD) for a context whose end an
 * operator closed (rt.closed; see the top): it settles the cancel. Returns
 * 1 if cid was such a context. */
static int late_answer(uint64_t cid, const cn_wire_msg_t *msg, const char *reason)
{
    cn__lock(&cn__rt.mu);
    cn__pcall_t *c = cn__cmap_get(&cn__rt.closed, 0, cid);
    if (c && msg && msg->hdr.src != c->to)
        c = NULL; /* not from its callee: dropped as any stray reply is */
    if (c) {
        cn__cmap_del(&cn__rt.closed, 0, cid);
        atomic_fetch_add_explicit(&c->delivering, 1, memory_order_relaxed);
    }
    cn__unlock(&cn__rt.mu);
    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->ctx->mu);
    settle_cancel(c->ctx, &c->rec, msg, reason, ", after this end was closed");
    pthread_mutex_unlock(&c->ctx->mu);
    atomic_fetch_sub_explicit(&c->delivering, 1, memory_order_release);
    return 1;
}

void cn__call_deliver(uint64_t cid, cn_wire_msg_t *msg, int err, const char *reason)
{
    cid &= ~CN__CID_FROM_CALLEE;
    if (msg && msg->hdr.type == CN_MSG_CREDIT) { /* for senders, not the inbox */
        cn__lock(&cn__rt.mu);
        cn__pcall_t *c = cn__cmap_get(&cn__rt.calls, 0, cid);
        int ok = c == NULL || from_callee(c, msg);
        uint32_t callee = c ? c->to : 0;
        if (c && ok)
            cn__flow_credit(&c->flow, msg->u.credit.count);
        cn__unlock(&cn__rt.mu);
        if (!ok)
            drop_not_from_callee(msg, cid, callee);
        else
            cn_wire_msg_free(msg);
        return;
    }
    int final = msg == NULL || is_final(msg->hdr.type);
    item_t *it = cn__item_new(msg, err, reason);
    item_t *copy = NULL; /* a context's end, for cn_ctx_result */
    if (final && it) {
        cn__lock(&cn__rt.mu);
        cn__pcall_t *c = cn__cmap_get(&cn__rt.calls, 0, cid);
        int ctx = c && c->rec.is_ctx;
        cn__unlock(&cn__rt.mu);
        cn_wire_msg_t *m2 = NULL;
        if (ctx && (msg == NULL ||
                    cn_wire_decode_frame(msg->frame, msg->frame_len, UINT32_MAX, &m2) == 0))
            copy = cn__item_new(m2, err, reason);
        else if (ctx) /* say so, rather than never come */
            copy = cn__item_new(NULL, CN_ENOMEM, "cannot copy the context's final message");
    }
    cn__lock(&cn__rt.mu);
    cn__pcall_t *c = cn__cmap_get(&cn__rt.calls, 0, cid);
    if (c && !from_callee(c, msg)) {
        uint32_t callee = c->to;
        cn__unlock(&cn__rt.mu);
        cn__item_free(copy);
        if (it)
            it->msg = NULL; /* freed just below */
        free(it);
        drop_not_from_callee(msg, cid, callee);
        return;
    }
    if (c && final)
        cn__cmap_del(&cn__rt.calls, 0, cid);
    if (c && final && c->task)
        cn__task_track(c->task, c, 0);
    if (c && final) { /* a sender waiting for credit must not wait on */
        char why[CN__REASON_MAX];
        end_reason(msg, reason, why, sizeof(why));
        cn__flow_end(&c->flow, end_code(msg, err), why);
        cn__rec_phase(&c->rec, msg && msg->hdr.type == CN_MSG_RETURN ? CN__PH_RETURNED
                                                                      : CN__PH_ERRORED);
    }
    if (c && it && !final)
        cn__latch_put(&c->inbox, &it->node); /* under rt.mu: see the invariant */
    int ctx = c && c->rec.is_ctx;
    if (c && final)
        atomic_fetch_add_explicit(&c->delivering, 1, memory_order_relaxed);
    cn__unlock(&cn__rt.mu);
    if (c && final) {
        /* The copy first: once the inbox has the end, the owner may be
         * through pcall_free as soon as `delivering` drops. */
        if (copy && ctx) {
            cn__latch_put(&c->endq, &copy->node);
            copy = NULL;
        }
        if (it)
            cn__latch_put(&c->inbox, &it->node);
        atomic_fetch_sub_explicit(&c->delivering, 1, memory_order_release);
    }
    cn__item_free(copy);
    if (c && it)
        return;
    /* the answer to a cancel of a context an operator closed, or too late */
    int settled = c == NULL && final && late_answer(cid, msg, reason);
    if (c == NULL && msg && !settled)
        cn_log(CN_LOG_DEBUG,
               "%s for call %llu from actor %u came after its caller stopped "
               "waiting",
               cn_wire_type_name(msg->hdr.type), (unsigned long long)cid, msg->hdr.src);
    if (it)
        it->msg = NULL; /* freed just below */
    free(it);
    cn_wire_msg_free(msg);
}

void cn__call_fail_all(int err, const char *reason)
{
    for (;;) {
        uint64_t cid = 0;
        int found = 0;
        cn__lock(&cn__rt.mu);
        for (size_t i = 0; i < cn__rt.calls.cap && !found; i++)
            if (cn__rt.calls.e[i].used)
                cid = cn__rt.calls.e[i].k2, found = 1;
        cn__unlock(&cn__rt.mu);
        if (!found)
            return;
        cn__call_deliver(cid, NULL, err, reason);
    }
}

/* ===========================================================================
 * Results
 */

char *cn__dup_wire_str(cn_wire_str_t s)
{
    if (s.ptr == NULL)
        return NULL;
    char *p = malloc((size_t)s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static char *dup_c(const char *s)
{
    return cn__dup_wire_str(cn__wstr(s));
}

/* A result that failed here, before or without the callee's answer:
 * `why` in its message, this actor as its origin. res may be NULL. */
static int refuse(cn_result_t *res, int err, const char *why)
{
    if (res) {
        res->error.origin = dup_c(cn__rt.path);
        res->error.fn = dup_c("");
        res->error.message = dup_c(why);
        res->error.code = err;
    }
    return err;
}

/*
 * Fills res from a delivered item and returns the call's outcome. With
 * `take`, a RETURN/STARTED message moves into res (res->priv_); without,
 * res->value points into the item, which the caller keeps.
 */
static int item_result(item_t *it, cn_result_t *res, int take)
{
    memset(res, 0, sizeof(*res));
    if (it->msg == NULL)
        return refuse(res, it->err, it->reason);
    cn_wire_msg_t *m = it->msg;
    if (m->hdr.type == CN_MSG_ERROR) {
        const cn_wire_error_t *e = &m->u.error;
        res->error.origin = cn__dup_wire_str(e->origin);
        res->error.fn = cn__dup_wire_str(e->fn);
        res->error.message = cn__dup_wire_str(e->message);
        res->error.backtrace = cn__dup_wire_str(e->backtrace);
        res->error.via = cn__dup_wire_str(e->via);
        res->error.code = (int)e->code;
        cn__task_note_remote(e); /* a task may relay it */
        return e->code == CN_ECANCELED ? CN_ECANCELED : CN_EREMOTE;
    }
    if (m->hdr.type == CN_MSG_DEAD) { /* a DEAD delivered as a message */
        res->error.origin = dup_c(cn__rt.path);
        res->error.fn = dup_c("");
        res->error.message = cn__dup_wire_str(m->u.dead.reason);
        res->error.code = CN_EDEAD;
        return CN_EDEAD;
    }
    res->value = m->body;
    if (take) {
        res->priv_ = m;
        it->msg = NULL;
    }
    return 0;
}

void cn_result_free(cn_result_t *res)
{
    if (res == NULL)
        return;
    cn_wire_msg_free(res->priv_);
    free(res->error.origin);
    free(res->error.fn);
    free(res->error.message);
    free(res->error.backtrace);
    free(res->error.via);
    memset(res, 0, sizeof(*res));
}

/* ===========================================================================
 * Sending a CMD
 */

/* Sends CMD fn(args) for c; `flags` as in protocol.md. On failure c has
 * been withdrawn and an item with the reason is in its inbox. */
static int send_cmd(cn__pcall_t *c, const char *fn, const msgpack_object *args, uint64_t flags)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_CMD, c->to, cn__rt.id, c->cid};
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    cn_wire_cmd_t cmd = {{fn, (uint32_t)strlen(fn)}, args ? *args : nil, flags};
    char reason[CN__REASON_MAX] = "";
    int rc = cn_wire_pack_typed(&sb, &h, &cmd, 0);
    if (rc == 0)
        rc = cn__send_frame(&h, sb.data, sb.size, reason);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0)
        cn__call_deliver(c->cid, NULL, rc, reason[0] ? reason : cn_strerror(rc));
    return rc;
}

/* Sends CANCEL for the call or context c to its callee: `why` and who
 * sends it, "(by PATH)", or "(sent by PATH)" when `why` already names who
 * asked (an operator's cancel of this actor's call). */
static void send_cancel_as(const cn__pcall_t *c, const char *why, int relayed)
{
    cn_wire_hdr_t h = {CN_MSG_CANCEL, c->to, cn__rt.id, c->cid};
    char reason[CN__REASON_MAX];
    snprintf(reason, sizeof(reason), "%s (%s %s)", why, relayed ? "sent by" : "by", cn__rt.path);
    cn_wire_cancel_t b = {{reason, (uint32_t)strlen(reason)}};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (cn_wire_pack_typed(&sb, &h, &b, 0) == 0)
        cn__send_frame(&h, sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
}

static void send_cancel(const cn__pcall_t *c, const char *why)
{
    send_cancel_as(c, why, 0);
}

static void pcall_cancel(uint32_t to, uint64_t cid, const char *why, int relayed)
{
    cn__pcall_t c = {.to = to, .cid = cid};
    send_cancel_as(&c, why, relayed);
    cn__call_deliver(cid, NULL, CN_ECANCELED, why);
}

void cn__pcall_cancel(uint32_t to, uint64_t cid, const char *why)
{
    pcall_cancel(to, cid, why, 0);
}

int cn__call_cancel_op(uint64_t cid, const char *why)
{
    cn__lock(&cn__rt.mu);
    cn__pcall_t *c = cn__cmap_get(&cn__rt.calls, 0, cid);
    uint32_t to = c ? c->to : 0;
    cn_ctx_t *ctx = c ? c->ctx : NULL;
    if (c)
        cn__rec_cancel(&c->rec, CN_CANCEL_REQUESTED, why);
    if (ctx && cn__cmap_put(&cn__rt.closed, 0, cid, c, NULL) == 0)
        atomic_fetch_add_explicit(&c->delivering, 1, memory_order_relaxed);
    else
        ctx = NULL;
    cn__unlock(&cn__rt.mu);
    if (c == NULL)
        return CN_ENOENT;
    if (ctx) { /* the owner's own view: cn_ctx_cancel_state */
        pthread_mutex_lock(&ctx->mu);
        if (ctx->cancel == CN_CANCEL_NONE) {
            ctx->cancel = CN_CANCEL_REQUESTED;
            ctx->cancel_us = cn__now_us();
            snprintf(ctx->cancel_by, sizeof(ctx->cancel_by), "%s", why);
            atomic_store(&ctx->cancelled, 1);
        }
        pthread_mutex_unlock(&ctx->mu);
        atomic_fetch_sub_explicit(&c->delivering, 1, memory_order_release);
    }
    cn_log(CN_LOG_CANCEL, "call %llu to actor %u: %s", (unsigned long long)cid, to, why);
    pcall_cancel(to, cid, why, 1); /* why names who asked: this actor only sends it */
    return 0;
}

void cn__pcall_detach(cn__pcall_t *c)
{
    c->task = NULL;
}

/* Whether this thread may start a call now: 0, or the error and, in
 * t->reason, why not. */
static int may_call(const char *fn, item_t *t)
{
    const char *why = NULL;
    t->err = 0;
    if (!cn__rt.started)
        t->err = CN_EINVAL, why = "the runtime is not running (call from code that cn_run runs)";
    else if (fn == NULL)
        t->err = CN_EINVAL, why = "no function name (fn is NULL)";
    else if (cn__task_current() && cn__task_is_cancelled(cn__task_current()))
        t->err = CN_ECANCELED, why = "this task was cancelled";
    else if (atomic_load_explicit(&cn__rt.cancelled, memory_order_relaxed))
        t->err = CN_ECANCELED, why = "this actor is shutting down";
    if (why)
        snprintf(t->reason, sizeof(t->reason), "%s: %s not called", why, fn ? fn : "(null)");
    return t->err;
}

/* Registers a call of fn(args) on `to` and sends its CMD. NULL with *rc set
 * and `res` filled (its error says why) if it could not start; a send
 * failure is reported through the call. */
static cn__pcall_t *start_call(cn_portal_t to, const char *fn, const msgpack_object *args,
                               uint64_t flags, cn_result_t *res, int *rc)
{
    item_t t = {0};
    cn__pcall_t *c = NULL;
    if (may_call(fn, &t) == 0 && (c = cn__pcall_new(to.id)) == NULL) {
        t.err = CN_ENOMEM;
        snprintf(t.reason, sizeof(t.reason), "out of memory: %s not called", fn);
    }
    if (c == NULL) {
        *rc = item_result(&t, res, 1);
        return NULL;
    }
    c->rec.role = CN__ROLE_CALLER;
    c->rec.is_ctx = (flags & CN__CMD_CONTEXT) != 0;
    c->rec.peer = to.id;
    c->rec.cid = c->cid;
    snprintf(c->rec.fn, sizeof(c->rec.fn), "%s", fn);
    cn__rec_add(&c->rec);
    send_cmd(c, fn, args, flags);
    return c;
}

/* ===========================================================================
 * Plain calls
 */

int cn_call(cn_portal_t to, const char *fn, const msgpack_object *args, cn_result_t *res,
            int64_t timeout_ms)
{
    if (res == NULL)
        return CN_EINVAL;
    memset(res, 0, sizeof(*res));
    int rc;
    cn__pcall_t *c = start_call(to, fn, args, 0, res, &rc);
    if (c == NULL)
        return rc;
    item_t *it = pcall_final(c, CN__DO_CALL, timeout_ms, 1, &rc);
    if (it == NULL) {
        send_cancel(c, "the caller timed out");
        item_t t = {.err = CN_ETIMEDOUT};
        snprintf(t.reason, sizeof(t.reason), "%s on actor %u did not answer within %lld ms", fn,
                 to.id, cn__said_ms(timeout_ms));
        rc = item_result(&t, res, 1);
    } else {
        rc = item_result(it, res, 1);
        cn__item_free(it);
    }
    pcall_free(c);
    return rc;
}

int cn__request_ids(uint32_t count, uint32_t *first, int64_t timeout_ms)
{
    cn__pcall_t *c = cn__pcall_new(CN_ROOT_ID);
    if (c == NULL)
        return CN_ENOMEM;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_ALLOCATE_ID, CN_ROOT_ID, cn__rt.id, c->cid};
    cn_wire_allocate_id_t a = {0, count};
    char reason[CN__REASON_MAX] = "";
    int rc = cn_wire_pack_typed(&sb, &h, &a, 0);
    if (rc == 0)
        rc = cn__send_frame(&h, sb.data, sb.size, reason);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0)
        cn__call_deliver(c->cid, NULL, rc, reason);
    item_t *it = pcall_final(c, CN__DO_CALL, timeout_ms, 1, &rc);
    if (it && it->msg && it->msg->hdr.type == CN_MSG_ALLOCATE_ID &&
        it->msg->u.allocate_id.count == count && it->msg->u.allocate_id.first + count <= UINT32_MAX)
        *first = (uint32_t)it->msg->u.allocate_id.first;
    else if (it)
        rc = it->msg == NULL ? it->err : CN_EPROTO;
    cn__item_free(it);
    pcall_free(c);
    return rc;
}

/* ===========================================================================
 * Contexts
 */

/* Under ctx->mu: whether the context ended here, closed without its
 * task's answer (an operator's cancel of this end, this actor or task
 * cancelled): the task was told, and may still run. */
static int closed_here(const cn_ctx_t *ctx)
{
    return ctx->final && ctx->final->msg == NULL && ctx->final->err == CN_ECANCELED;
}

/* Under ctx->mu: closed here, and no answer of the task's has come since
 * (one that settles the cancel may, after the end closed). */
static int unanswered(const cn_ctx_t *ctx)
{
    return closed_here(ctx) && ctx->cancel != CN_CANCEL_ACKNOWLEDGED &&
           ctx->cancel != CN_CANCEL_DONE;
}

/* Under ctx->mu: records how the context ended. */
static void ctx_end(cn_ctx_t *ctx, item_t *final)
{
    ctx->final = final; /* pc left the table when this was delivered */
    if (closed_here(ctx))
        atomic_store(&ctx->cancelled, 1);
    int returned = final->msg && final->msg->hdr.type == CN_MSG_RETURN;
    cn__rec_phase(&ctx->pc->rec, returned ? CN__PH_RETURNED : CN__PH_ERRORED);
    if (closed_here(ctx) &&
        (ctx->cancel == CN_CANCEL_REQUESTED || ctx->cancel == CN_CANCEL_TIMED_OUT)) {
        /* Closed here, not by its task: an operator's cancel of this end
         * (canopy cancel) or this actor shutting down. The task was told,
         * and may still run: the state stays, and nothing claims it ended. */
        cn_log(CN_LOG_CANCEL, "context %s on actor %u: closed here before its task answered "
               "the cancel: %s", ctx->fn, ctx->peer, final->reason);
        return;
    }
    settle_cancel(ctx, &ctx->pc->rec, final->msg, final->reason, "");
}

/* One copy of the final message has been taken (the reader's from the
 * inbox, or the result's from endq): the first ends the context, a later
 * one is dropped. (cn_ctx_result then passes end_token on to the next
 * result waiter.) */
static void ctx_claim(cn_ctx_t *ctx, item_t *it)
{
    pthread_mutex_lock(&ctx->mu);
    if (ctx->final == NULL)
        ctx_end(ctx, it);
    else
        cn__item_free(it);
    pthread_mutex_unlock(&ctx->mu);
}

static item_t *ctx_final(cn_ctx_t *ctx)
{
    pthread_mutex_lock(&ctx->mu);
    item_t *f = ctx->final;
    pthread_mutex_unlock(&ctx->mu);
    return f;
}

int cn_open(cn_portal_t to, const char *fn, const msgpack_object *args, cn_ctx_t **ctx,
            cn_result_t *started, int64_t timeout_ms)
{
    if (started) /* first: a caller may free it whatever the outcome */
        memset(started, 0, sizeof(*started));
    if (ctx == NULL || started == NULL)
        return refuse(started, CN_EINVAL, "no place for the context (ctx is NULL): not opened");
    *ctx = NULL;
    int rc;
    cn__pcall_t *c = start_call(to, fn, args, CN__CMD_CONTEXT, started, &rc);
    if (c == NULL)
        return rc;

    item_t *it = pcall_next(c, CN__DO_OPEN, timeout_ms, &rc);
    if (it == NULL) {
        if (pcall_withdraw(c)) {
            send_cancel(c, "the opener timed out");
            item_t t = {.err = CN_ETIMEDOUT};
            snprintf(t.reason, sizeof(t.reason), "%s on actor %u did not start within %lld ms", fn,
                     to.id, cn__said_ms(timeout_ms));
            rc = item_result(&t, started, 1);
            pcall_free(c);
            return rc;
        }
        it = pcall_next(c, CN__DO_OPEN, CN__FOREVER, &rc); /* it ended just then */
    }
    if (it->msg && it->msg->hdr.type == CN_MSG_STARTED) {
        cn_ctx_t *x = calloc(1, sizeof(*x));
        if (x == NULL) {
            cn__item_free(it);
            if (pcall_withdraw(c))
                send_cancel(c, "out of memory");
            pcall_free(c);
            return CN_ENOMEM;
        }
        x->pc = c;
        x->peer = to.id;
        pthread_mutex_init(&x->mu, NULL);
        cn__lock(&cn__rt.mu);
        c->ctx = x; /* for an operator's cancel: see the top */
        cn__unlock(&cn__rt.mu);
        cn__rec_phase(&c->rec, CN__PH_STARTED);
        snprintf(x->fn, sizeof(x->fn), "%s", fn);
        item_result(it, started, 1);
        cn__item_free(it);
        *ctx = x;
        return 0;
    }
    /* It ended without starting: c is already out of the table. */
    rc = item_result(it, started, 1);
    cn__item_free(it);
    pcall_free(c);
    return rc == 0 ? 1 : rc;
}

static int ctx_result(cn_ctx_t *ctx, cn_result_t *res, int64_t timeout_ms);

int cn_ctx_result(cn_ctx_t *ctx, cn_result_t *res, int64_t timeout_ms)
{
    if (res) /* first: a caller may free it whatever the outcome */
        memset(res, 0, sizeof(*res));
    if (ctx == NULL || res == NULL)
        return refuse(res, CN_EINVAL, "no context (ctx is NULL)");
    atomic_fetch_add(&ctx->result_waiters, 1); /* cn_ctx_free waits for it to leave */
    int rc = ctx_result(ctx, res, timeout_ms);
    atomic_fetch_sub(&ctx->result_waiters, 1); /* the last touch of ctx */
    return rc;
}

static int ctx_result(cn_ctx_t *ctx, cn_result_t *res, int64_t timeout_ms)
{
    memset(res, 0, sizeof(*res));
    if (ctx_final(ctx) == NULL) {
        cn__pcall_t *c = ctx->pc;
        cn__node_t *n;
        cn__doing(CN__DO_RESULT, c->to, c->cid);
        int rc = cn__latch_get(&c->endq, timeout_ms, &n);
        cn__done();
        if (rc == CN_ECANCELED) { /* cn_ctx_free closed endq (see cn_ctx_free) */
            item_t t = {.err = CN_ECANCELED};
            snprintf(t.reason, sizeof(t.reason),
                     "the context was freed (cn_ctx_free) while this thread waited");
            return item_result(&t, res, 1);
        }
        if (rc < 0) { /* still running: it stays registered */
            item_t t = {.err = CN_ETIMEDOUT};
            snprintf(t.reason, sizeof(t.reason), "%s on actor %u did not return within %lld ms",
                     ctx->fn, ctx->peer, cn__said_ms(timeout_ms));
            return item_result(&t, res, 1);
        }
        if (n != &c->end_token)
            ctx_claim(ctx, (item_t *)n);
        cn__latch_put(&c->endq, &c->end_token); /* for the next waiter */
    }
    /* res points into ctx->final, which lives until cn_ctx_free; copy the
     * error strings so res is freed the usual way. */
    return item_result(ctx_final(ctx), res, 0);
}

static int ctx_cancel(cn_ctx_t *ctx, int64_t timeout_ms);

int cn_ctx_cancel(cn_ctx_t *ctx, int64_t timeout_ms)
{
    if (ctx == NULL)
        return CN_EINVAL;
    atomic_fetch_add(&ctx->result_waiters, 1); /* it reads ctx after its wait: see cn_ctx_free */
    int rc = ctx_cancel(ctx, timeout_ms);
    atomic_fetch_sub(&ctx->result_waiters, 1);
    return rc;
}

static int ctx_cancel(cn_ctx_t *ctx, int64_t timeout_ms)
{
    /* Another thread may be reading the stream, and take the end first:
     * cn_ctx_result still sees it (endq). */
    pthread_mutex_lock(&ctx->mu);
    int ended = ctx->final != NULL, ask = !ended && ctx->cancel == CN_CANCEL_NONE;
    int open_ended = unanswered(ctx);
    if (ask) {
        ctx->cancel = CN_CANCEL_REQUESTED;
        ctx->cancel_us = cn__now_us();
        snprintf(ctx->cancel_by, sizeof(ctx->cancel_by), "cn_ctx_cancel (by %s)", cn__rt.path);
        cn__rec_cancel(&ctx->pc->rec, CN_CANCEL_REQUESTED, ctx->cancel_by);
        atomic_store(&ctx->cancelled, 1);
    }
    pthread_mutex_unlock(&ctx->mu);
    if (ended)
        return open_ended ? CN_ECANCELED : 0;
    if (ask) {
        cn_log(CN_LOG_CANCEL, "context %s on actor %u: cancel requested", ctx->fn, ctx->peer);
        send_cancel(ctx->pc, "cn_ctx_cancel"); /* it reads "cn_ctx_cancel (by PATH)" */
    }
    cn_result_t r;
    int rc = cn_ctx_result(ctx, &r, timeout_ms);
    cn_result_free(&r);
    if (rc == CN_ETIMEDOUT) {
        pthread_mutex_lock(&ctx->mu);
        if (ctx->final == NULL) {
            ctx->cancel = CN_CANCEL_TIMED_OUT;
            cn__rec_cancel(&ctx->pc->rec, CN_CANCEL_TIMED_OUT, NULL);
        } else {
            rc = 0; /* it ended just then */
        }
        pthread_mutex_unlock(&ctx->mu);
    }
    if (rc == CN_ETIMEDOUT) {
        cn_log(CN_LOG_CANCEL, "context %s on actor %u: cancel timed out after %lld ms", ctx->fn,
               ctx->peer, cn__said_ms(timeout_ms));
        return CN_ETIMEDOUT;
    }
    /* Ended here without its task's answer: not "it ended". */
    pthread_mutex_lock(&ctx->mu);
    open_ended = unanswered(ctx) || ctx->final == NULL; /* or cn_ctx_free's */
    pthread_mutex_unlock(&ctx->mu);
    return open_ended ? CN_ECANCELED : 0;
}

cn_cancel_state_t cn_ctx_cancel_state(const cn_ctx_t *ctx)
{
    if (ctx == NULL)
        return CN_CANCEL_NONE;
    pthread_mutex_t *mu = (pthread_mutex_t *)&ctx->mu; /* a reader locks too */
    pthread_mutex_lock(mu);
    cn_cancel_state_t st = ctx->cancel;
    pthread_mutex_unlock(mu);
    return st;
}

void cn_ctx_cancel_info(const cn_ctx_t *ctx, cn_cancel_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (ctx == NULL)
        return;
    pthread_mutex_t *mu = (pthread_mutex_t *)&ctx->mu;
    pthread_mutex_lock(mu);
    out->state = ctx->cancel;
    out->requested_us = ctx->cancel_us;
    pthread_mutex_unlock(mu);
    if (out->state != CN_CANCEL_NONE) /* cn_ctx_cancel's, or an operator's */
        cn__rec_cancel_by(&ctx->pc->rec, out->by, sizeof(out->by));
}

void cn_ctx_free(cn_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    if (ctx->final == NULL && pcall_withdraw(ctx->pc))
        send_cancel(ctx->pc, "the context was freed");
    cn__lock(&cn__rt.mu);
    cn__cmap_del(&cn__rt.closed, 0, ctx->pc->cid); /* pcall_free waits for its answer */
    cn__unlock(&cn__rt.mu);
    /* Threads still waiting on it (misuse, but not a crash): out of the
     * table, nothing more comes in once a final message on its way is in;
     * then their waits end with CN_ECANCELED, and they leave. */
    pcall_quiet(ctx->pc);
    cn__stream_stop(ctx->stream, "the context was freed (cn_ctx_free) while this thread waited");
    cn__latch_close(&ctx->pc->endq, CN_ECANCELED);
    struct timespec nap = {0, 100 * 1000};
    while (atomic_load(&ctx->result_waiters))
        nanosleep(&nap, NULL);
    cn__rec_del(&ctx->pc->rec); /* before its stream goes */
    cn__stream_free(ctx->stream);
    pcall_free(ctx->pc);
    cn__item_free(ctx->final);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
}

int cn__ctx_cancelled(cn_ctx_t *ctx, cn_result_t *res)
{
    char why[CN__REASON_MAX + 64];
    if (!atomic_load_explicit(&ctx->cancelled, memory_order_acquire))
        return 0; /* the common case, on every message: no lock */
    pthread_mutex_lock(&ctx->mu);
    int yes = ctx->cancel != CN_CANCEL_NONE || closed_here(ctx);
    if (yes)
        snprintf(why, sizeof(why), "this context was cancelled: %s",
                 ctx->cancel_by[0] ? ctx->cancel_by
                 : ctx->final     ? ctx->final->reason
                                  : "its end was closed here");
    pthread_mutex_unlock(&ctx->mu);
    if (!yes)
        return 0;
    cn__stream_fail(CN_ECANCELED, "%s", why);
    return refuse(res, CN_ECANCELED, why);
}

int cn__ctx_end_from_stream(cn_ctx_t *ctx, cn__item_t *it, cn_result_t *res)
{
    ctx_claim(ctx, it);
    return item_result(ctx_final(ctx), res, 0);
}

int cn_ctx_stream(cn_ctx_t *ctx, const cn_stream_opts_t *opts, cn_stream_t **out)
{
    if (ctx == NULL || out == NULL)
        return cn__stream_fail(CN_EINVAL, "no %s (%s is NULL)", ctx ? "place for the stream" : "context",
                               ctx ? "out" : "ctx");
    if (ctx->stream)
        return cn__stream_fail(CN_EINVAL, "this context's stream is open already (one per side)");
    int rc;
    ctx->stream =
        cn__stream_open(&ctx->pc->flow, &ctx->pc->yq, &ctx->pc->inbox, ctx->peer, ctx->pc->cid,
                        ctx, opts, &rc);
    cn__rec_stream(&ctx->pc->rec, ctx->stream);
    *out = ctx->stream;
    return rc;
}
