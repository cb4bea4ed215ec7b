/*
 * call.c: calls, both ends: cn_call() on the caller's thread, and the task
 * pool that runs exported functions for incoming CMDs.
 *
 * A caller registers its call under a fresh cid, writes the CMD itself and
 * sleeps on the call's latch. The broker completes the call when RETURN,
 * ERROR or DEAD arrives for that cid, or when the stream the CMD went into
 * is lost (actor.c). What it does not do: retry, or guess at a timeout for
 * the caller; every wait has the caller's own.
 *
 * Invariant: a pending call is completed at most once, by whoever removes
 * it from rt.calls first; a caller that times out removes it itself, and if
 * it finds it already gone, a completion is on its way and it waits for it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

typedef struct cn__pcall {
    cn__node_t node;
    cn__latch_t latch;
    uint64_t cid;
    cn_wire_msg_t *reply; /* RETURN, ERROR or ALLOCATE_ID */
    int err;              /* or this, with reason */
    char reason[CN__REASON_MAX];
} cn__pcall_t;

struct cn_call {
    cn_wire_msg_t *msg; /* the CMD */
    char message[1024]; /* set by cn_call_fail */
};

/* ===========================================================================
 * The caller's side
 */

static cn__pcall_t *pcall_new(void)
{
    cn__pcall_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    cn__latch_init(&c->latch);
    c->cid = atomic_fetch_add(&cn__rt.next_cid, 1);
    pthread_mutex_lock(&cn__rt.mu);
    int rc = cn__cmap_put(&cn__rt.calls, 0, c->cid, c, NULL);
    pthread_mutex_unlock(&cn__rt.mu);
    if (rc != 0) {
        cn__latch_fini(&c->latch);
        free(c);
        return NULL;
    }
    return c;
}

static void pcall_free(cn__pcall_t *c)
{
    cn_wire_msg_free(c->reply);
    cn__latch_fini(&c->latch);
    free(c);
}

/* Removes c from the table unless a completion got there first. Returns 1
 * if it was still pending (and is now ours alone). */
static int pcall_withdraw(cn__pcall_t *c)
{
    pthread_mutex_lock(&cn__rt.mu);
    int mine = cn__cmap_del(&cn__rt.calls, 0, c->cid) != NULL;
    pthread_mutex_unlock(&cn__rt.mu);
    return mine;
}

/* Waits for c's completion. Returns 0 (c->reply or c->err set) or
 * CN_ETIMEDOUT. */
static int pcall_wait(cn__pcall_t *c, int64_t timeout_ms)
{
    cn__node_t *n;
    int rc = cn__latch_get(&c->latch, timeout_ms, &n);
    if (rc == 0)
        return 0;
    if (pcall_withdraw(c))
        return CN_ETIMEDOUT;
    /* Being completed right now: the put is a moment away. */
    return cn__latch_get(&c->latch, CN__FOREVER, &n);
}

void cn__call_complete(uint64_t cid, cn_wire_msg_t *msg, int err, const char *reason)
{
    pthread_mutex_lock(&cn__rt.mu);
    cn__pcall_t *c = cn__cmap_del(&cn__rt.calls, 0, cid);
    pthread_mutex_unlock(&cn__rt.mu);
    if (c == NULL) {
        if (msg && (msg->hdr.type == CN_MSG_RETURN || msg->hdr.type == CN_MSG_ERROR))
            cn_log(CN_LOG_DEBUG,
                   "reply for call %llu from actor %u came after its caller "
                   "stopped waiting",
                   (unsigned long long)cid, msg->hdr.src);
        cn_wire_msg_free(msg);
        return;
    }
    c->reply = msg;
    c->err = err;
    if (reason)
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
    cn__latch_put(&c->latch, &c->node);
}

void cn__call_fail_all(int err, const char *reason)
{
    for (;;) {
        uint64_t cid = 0;
        int found = 0;
        pthread_mutex_lock(&cn__rt.mu);
        for (size_t i = 0; i < cn__rt.calls.cap && !found; i++)
            if (cn__rt.calls.e[i].used)
                cid = cn__rt.calls.e[i].k2, found = 1;
        pthread_mutex_unlock(&cn__rt.mu);
        if (!found)
            return;
        cn__call_complete(cid, NULL, err, reason);
    }
}

static char *dup_str(cn_wire_str_t s)
{
    char *p = malloc((size_t)s.len + 1);
    if (p) {
        if (s.len)
            memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static char *dup_c(const char *s)
{
    return dup_str((cn_wire_str_t){s, (uint32_t)strlen(s)});
}

/* Turns a completed call into the caller's result. */
static int pcall_result(cn__pcall_t *c, uint32_t to, cn_result_t *res)
{
    if (c->err) {
        res->error.origin = dup_c(cn__rt.path);
        res->error.fn = dup_c("");
        res->error.message = dup_c(c->reason);
        res->error.code = c->err;
        (void)to;
        return c->err;
    }
    cn_wire_msg_t *m = c->reply;
    if (m->hdr.type == CN_MSG_ERROR) {
        const cn_wire_error_t *e = &m->u.error;
        res->error.origin = dup_str(e->origin);
        res->error.fn = dup_str(e->fn);
        res->error.message = dup_str(e->message);
        res->error.backtrace = e->backtrace.ptr ? dup_str(e->backtrace) : NULL;
        res->error.code = (int)e->code;
        return CN_EREMOTE;
    }
    res->value = m->body;
    res->priv_ = m; /* the value lives in the message's zone */
    c->reply = NULL;
    return 0;
}

int cn_call(cn_portal_t to, const char *fn, const msgpack_object *args, cn_result_t *res,
            int64_t timeout_ms)
{
    if (res == NULL)
        return CN_EINVAL;
    memset(res, 0, sizeof(*res));
    if (!cn__rt.started || fn == NULL)
        return CN_EINVAL;
    cn__pcall_t *c = pcall_new();
    if (c == NULL)
        return CN_ENOMEM;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_CMD, to.id, cn__rt.id, c->cid};
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    cn_wire_cmd_t cmd = {{fn, (uint32_t)strlen(fn)}, args ? *args : nil, 0};
    int rc = cn_wire_pack_typed(&sb, &h, &cmd, 0);
    if (rc == 0)
        rc = cn__send_frame(&h, sb.data, sb.size, c->reason);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) {
        if (pcall_withdraw(c)) {
            c->err = rc;
            if (rc != CN_EDEAD)
                snprintf(c->reason, sizeof(c->reason), "%s", cn_strerror(rc));
        } else {
            pcall_wait(c, CN__FOREVER);
        }
    } else if ((rc = pcall_wait(c, timeout_ms)) == CN_ETIMEDOUT) {
        snprintf(c->reason, sizeof(c->reason), "%s on actor %u did not answer within %lld ms", fn,
                 to.id, (long long)timeout_ms);
        c->err = CN_ETIMEDOUT;
    }
    rc = pcall_result(c, to.id, res);
    pcall_free(c);
    return rc;
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
    memset(res, 0, sizeof(*res));
}

int cn__request_ids(uint32_t count, uint32_t *first, int64_t timeout_ms)
{
    cn__pcall_t *c = pcall_new();
    if (c == NULL)
        return CN_ENOMEM;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_ALLOCATE_ID, CN_ROOT_ID, cn__rt.id, c->cid};
    cn_wire_allocate_id_t a = {0, count};
    int rc = cn_wire_pack_typed(&sb, &h, &a, 0);
    if (rc == 0)
        rc = cn__send_frame(&h, sb.data, sb.size, c->reason);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0 && pcall_withdraw(c)) {
        pcall_free(c);
        return rc;
    }
    rc = pcall_wait(c, rc < 0 ? CN__FOREVER : timeout_ms);
    if (rc == 0 && c->err)
        rc = c->err;
    else if (rc == 0 && c->reply->hdr.type == CN_MSG_ALLOCATE_ID &&
             c->reply->u.allocate_id.count == count &&
             c->reply->u.allocate_id.first + count <= UINT32_MAX)
        *first = (uint32_t)c->reply->u.allocate_id.first;
    else if (rc == 0)
        rc = CN_EPROTO;
    pcall_free(c);
    return rc;
}

/* ===========================================================================
 * The callee's side: the task pool
 */

typedef struct job {
    cn__node_t node;
    cn_wire_msg_t *msg;
} job_t;

static cn_fn_t find_export(cn_wire_str_t name)
{
    const cn_export_t *e = cn__rt.cfg ? cn__rt.cfg->exports : NULL;
    for (; e && e->name; e++)
        if (strlen(e->name) == name.len && memcmp(e->name, name.ptr, name.len) == 0)
            return e->fn;
    return NULL;
}

static void reply_error(const cn_wire_msg_t *cmd, int code, const char *message)
{
    cn_wire_hdr_t h = {CN_MSG_ERROR, cmd->hdr.src, cn__rt.id, cmd->hdr.cid};
    cn_wire_error_t e = {{cn__rt.path, (uint32_t)strlen(cn__rt.path)},
                         cmd->u.cmd.fn,
                         {message, (uint32_t)strlen(message)},
                         {NULL, 0},
                         code};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (cn_wire_pack_typed(&sb, &h, &e, 0) == 0)
        cn__send_frame(&h, sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
}

static void run_job(cn_wire_msg_t *m)
{
    cn_fn_t fn = find_export(m->u.cmd.fn);
    if (fn == NULL) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s has no function '%.*s'", cn__rt.path, (int)m->u.cmd.fn.len,
                 m->u.cmd.fn.ptr);
        reply_error(m, CN_ENOENT, msg);
        return;
    }
    struct cn_call call = {m, ""};
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    int rc = fn(&call, &m->u.cmd.args, &pk);
    if (rc >= 0) {
        if (out.size == 0)
            msgpack_pack_nil(&pk);
        cn_wire_hdr_t h = {CN_MSG_RETURN, m->hdr.src, cn__rt.id, m->hdr.cid};
        msgpack_sbuffer frame;
        msgpack_sbuffer_init(&frame);
        rc = cn_wire_pack_raw(&frame, &h, out.data, out.size, 0);
        if (rc == 0)
            cn__send_frame(&h, frame.data, frame.size, NULL);
        else
            snprintf(call.message, sizeof(call.message),
                     "%.*s packed %s, not exactly one result object", (int)m->u.cmd.fn.len,
                     m->u.cmd.fn.ptr, rc == CN_EMSGSIZE ? "too much" : "a bad result");
        msgpack_sbuffer_destroy(&frame);
    }
    if (rc < 0)
        reply_error(m, rc, call.message[0] ? call.message : cn_strerror(rc));
    msgpack_sbuffer_destroy(&out);
}

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        cn__node_t *n;
        atomic_fetch_add(&cn__rt.idle, 1);
        int rc = cn__latch_get(&cn__rt.jobs, CN__FOREVER, &n);
        atomic_fetch_sub(&cn__rt.idle, 1);
        if (rc < 0)
            return NULL;
        job_t *j = (job_t *)n;
        run_job(j->msg);
        cn_wire_msg_free(j->msg);
        free(j);
    }
}

int cn__pool_submit(cn_wire_msg_t *msg)
{
    job_t *j = malloc(sizeof(*j));
    if (j == NULL)
        return CN_ENOMEM;
    j->msg = msg;
    /* Grow the pool when nobody is free to take the job, so that calls
     * that call back into this actor cannot starve each other. */
    if (atomic_load(&cn__rt.idle) == 0 && atomic_load(&cn__rt.nthreads) < cn__rt.max_threads) {
        pthread_mutex_lock(&cn__rt.mu);
        if (cn__rt.threads == NULL)
            cn__rt.threads = calloc(cn__rt.max_threads, sizeof(pthread_t));
        unsigned k = atomic_load(&cn__rt.nthreads);
        if (cn__rt.threads && k < cn__rt.max_threads &&
            pthread_create(&cn__rt.threads[k], NULL, worker, NULL) == 0)
            atomic_fetch_add(&cn__rt.nthreads, 1);
        pthread_mutex_unlock(&cn__rt.mu);
    }
    int rc = cn__latch_put(&cn__rt.jobs, &j->node);
    if (rc < 0)
        free(j);
    return rc;
}

void cn__pool_stop(void)
{
    cn__latch_close(&cn__rt.jobs, CN_ECANCELED);
    unsigned n = atomic_load(&cn__rt.nthreads);
    for (unsigned i = 0; i < n; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        /* A handler stuck in user code is left behind rather than hang
         * the root's exit. */
        if (pthread_timedjoin_np(cn__rt.threads[i], NULL, &ts) != 0)
            pthread_detach(cn__rt.threads[i]);
    }
    free(cn__rt.threads);
    cn__rt.threads = NULL;
    atomic_store(&cn__rt.nthreads, 0);
    cn__node_t *n2;
    while (cn__latch_get(&cn__rt.jobs, 0, &n2) == 0) {
        job_t *j = (job_t *)n2;
        cn_wire_msg_free(j->msg);
        free(j);
    }
}

int cn_call_fail(cn_call_t *call, int code, const char *fmt, ...)
{
    if (call && fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(call->message, sizeof(call->message), fmt, ap);
        va_end(ap);
    }
    return code < 0 ? code : CN_EINVAL;
}

cn_portal_t cn_call_caller(const cn_call_t *call)
{
    return (cn_portal_t){call->msg->hdr.src};
}
