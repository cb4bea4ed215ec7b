/*
 * task.c: the callee's side: running exported functions for incoming CMDs.
 *
 * The broker registers each CMD as a task under (caller, cid) and queues it
 * for the pool; a task thread runs the function and sends RETURN or ERROR.
 * A task opened as a context may call cn_started() first. A CANCEL from the
 * caller marks the task cancelled, wakes a cn_sleep in it, and cancels every
 * call the task has in flight, which carries the cancellation on to other
 * actors: that is what makes cancellation structured across processes.
 *
 * What it does not do: stop a function that never blocks. Cancellation is
 * cooperative; it takes effect at the function's next blocking call.
 *
 * Invariant: a task is in rt.tasks from the broker's registration until
 * its thread has sent the reply, and is only freed after it leaves, so the
 * broker, which touches it under rt.mu only, never sees it freed.
 */
#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "rt.h"

struct cn_call {
    cn__node_t node;    /* in rt.jobs until a thread takes it */
    cn_wire_msg_t *msg; /* the CMD */
    uint32_t caller;
    uint64_t cid;
    int context; /* opened with cn_open */
    int started; /* cn_started was called */
    _Atomic int cancelled;
    cn__latch_t wake;  /* closed with CN_ECANCELED on cancel */
    cn__cmap_t nested; /* (0, cid) -> cn__pcall_t *, under rt.mu */
    cn__yq_t yq;       /* YIELDs from the caller */
    cn__rec_t rec;     /* what the inspector sees */
    cn__latch_t in;    /* STOP from the caller */
    cn__flow_t flow;   /* our send credit on the stream */
    cn_stream_t *stream;
    char cancel_reason[CN__REASON_MAX];
    uint64_t cancel_us; /* when the cancel arrived */
    struct task_fail *fail; /* NULL until the function says why it failed */
    char *backtrace;        /* captured by cn_call_fail, as text for the ERROR */
    struct {            /* the last remote error a nested call returned */
        char *origin, *fn, *message, *backtrace, *via;
        int64_t code;
    } remote;
};

/* Why a task's function failed (cn_call_fail), kept apart from the task:
 * most tasks never fail, and each open context's task is resident memory
 * for as long as it is open. */
struct task_fail {
    char message[1024];
    void *frames[CN__BT_FRAMES]; /* where it failed, for the debugger */
    int nframes;
};

static __thread cn__task_t *tl_task;

/* t's failure record, made on first use; NULL without memory. */
static struct task_fail *task_fail(cn__task_t *t)
{
    if (t->fail == NULL)
        t->fail = calloc(1, sizeof(*t->fail));
    return t->fail;
}

static const char *fail_message(const cn__task_t *t)
{
    return t->fail && t->fail->message[0] ? t->fail->message : NULL;
}

cn__task_t *cn__task_current(void)
{
    return tl_task;
}

int cn__task_is_cancelled(const cn__task_t *t)
{
    return atomic_load(&t->cancelled);
}

void cn__task_cancel_reason(const cn__task_t *t, char *out, size_t cap)
{
    cn__lock(&cn__rt.mu); /* cn__task_cancel writes it under it */
    snprintf(out, cap, "%s", atomic_load(&t->cancelled) ? t->cancel_reason : "");
    cn__unlock(&cn__rt.mu);
}

cn__latch_t *cn__task_wake_latch(void)
{
    return tl_task ? &tl_task->wake : NULL;
}

int cn__task_track(cn__task_t *t, cn__pcall_t *c, int add)
{
    if (!add) {
        cn__cmap_del(&t->nested, 0, cn__pcall_cid(c));
        return 0;
    }
    return cn__cmap_put(&t->nested, 0, cn__pcall_cid(c), c, NULL) == CN_ENOMEM ? CN_ENOMEM : 0;
}

/* ===========================================================================
 * Replies
 */

static void send_typed_reply(const cn_wire_hdr_t *h, const void *body)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (cn_wire_pack_typed(&sb, h, body, 0) == 0)
        cn__send_frame(h, sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
}

static void reply_error(const cn__task_t *t, int code, const char *message)
{
    cn_wire_hdr_t h = {CN_MSG_ERROR, t->caller, cn__rt.id, t->cid};
    cn_wire_error_t e = {cn__wstr(cn__rt.path),
                         t->msg->u.cmd.fn,
                         cn__wstr(message),
                         cn__wstr(t->backtrace),
                         code,
                         {NULL, 0}};
    send_typed_reply(&h, &e);
}

/* Passes on the remote error a nested call returned, as it came, adding
 * this actor to the hops it went through. */
static void relay_error(const cn__task_t *t)
{
    char via[CN__PATH_MAX * 2];
    if (t->remote.via && t->remote.via[0])
        snprintf(via, sizeof(via), "%s, %s", t->remote.via, cn__rt.path);
    else
        snprintf(via, sizeof(via), "%s", cn__rt.path);
    cn_wire_hdr_t h = {CN_MSG_ERROR, t->caller, cn__rt.id, t->cid};
    cn_wire_error_t e = {
        cn__wstr(t->remote.origin),    cn__wstr(t->remote.fn), cn__wstr(t->remote.message),
        cn__wstr(t->remote.backtrace), t->remote.code,         cn__wstr(via)};
    send_typed_reply(&h, &e);
}

static void forget_remote(cn__task_t *t)
{
    free(t->remote.origin);
    free(t->remote.fn);
    free(t->remote.message);
    free(t->remote.backtrace);
    free(t->remote.via);
    memset(&t->remote, 0, sizeof(t->remote));
}

void cn__task_note_remote(const cn_wire_error_t *e)
{
    cn__task_t *t = tl_task;
    if (t == NULL)
        return;
    forget_remote(t);
    t->remote.origin = cn__dup_wire_str(e->origin);
    t->remote.fn = cn__dup_wire_str(e->fn);
    t->remote.message = cn__dup_wire_str(e->message);
    t->remote.backtrace = cn__dup_wire_str(e->backtrace);
    t->remote.via = cn__dup_wire_str(e->via);
    t->remote.code = e->code;
}

/* Sends one already-packed object as the body of a `type` message to the
 * caller. Returns 0, or CN_EINVAL when `packed` is not exactly one object. */
static int reply_raw(const cn__task_t *t, uint32_t type, const msgpack_sbuffer *packed)
{
    cn_wire_hdr_t h = {type, t->caller, cn__rt.id, t->cid};
    msgpack_sbuffer frame;
    msgpack_sbuffer_init(&frame);
    int rc = cn_wire_pack_raw(&frame, &h, packed->data, packed->size, 0);
    if (rc == 0)
        cn__send_frame(&h, frame.data, frame.size, NULL);
    msgpack_sbuffer_destroy(&frame);
    return rc;
}

/* ===========================================================================
 * Running a task
 */

/* The task threads' bookkeeping (pool_grow). */
static struct {
    pthread_mutex_t mu;
    unsigned idle;   /* threads waiting in rt.jobs, or just woken from it, or
                        past their function's return (pool_idle_early) */
    unsigned queued; /* jobs put in rt.jobs and not yet taken */
} pool = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

static __thread int tl_idle_early; /* this thread already counted in pool.idle */

static void pool_idle(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.idle++;
    pthread_mutex_unlock(&pool.mu);
}

/*
 * Counts this thread idle once its function has returned, before its
 * answer goes out: what is left (sending, freeing) is short and never
 * blocks. Counted only at the top of its loop, a thread that had just
 * answered was busy when the caller's next call came, and sequential
 * calls kept three threads (stacks, malloc arenas) where one serves.
 * Not in debug mode, where a result that cannot be sent stops the thread
 * in the debugger (answer_failure), for as long as the user likes.
 */
static void pool_idle_early(void)
{
    if (!tl_idle_early && tl_task != NULL && !cn__debug_mode()) {
        tl_idle_early = 1;
        pool_idle();
    }
}

static cn_fn_t find_export(cn_wire_str_t name)
{
    const cn_export_t *e = cn__rt.cfg ? cn__rt.cfg->exports : NULL;
    for (; e && e->name; e++)
        if (strlen(e->name) == name.len && memcmp(e->name, name.ptr, name.len) == 0)
            return e->fn;
    return NULL;
}

/* The error paths of run_task_answer, out of line: their text buffers
 * must not lie on the stack beneath every task's function. A task
 * thread's stack is touched page by page as deep as it ever went, and
 * with 10 000 contexts open on one actor (a thread each) one page more is
 * 40 MiB more (docs/performance.md, ctx_10k_anon_kib). */
__attribute__((noinline, cold, format(printf, 3, 4))) static void
refuse(const cn__task_t *t, int code, const char *fmt, ...)
{
    char text[CN__REASON_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    reply_error(t, code, text);
}

/* Answers for a function that returned rc < 0 (or whose result could not
 * be sent). */
__attribute__((noinline, cold)) static void answer_failure(cn__task_t *t, int rc)
{
    const cn_wire_cmd_t *cmd = &t->msg->u.cmd;
    const char *why = fail_message(t);
    if (rc == CN_EREMOTE && why == NULL && t->remote.origin) {
        relay_error(t);
        return;
    }
    char cancelled[CN__REASON_MAX + 16];
    if (why == NULL && rc == CN_ECANCELED && atomic_load(&t->cancelled)) {
        snprintf(cancelled, sizeof(cancelled), "cancelled: %s", t->cancel_reason);
        why = cancelled;
    }
    if (why == NULL)
        why = cn_strerror(rc);
    if (rc != CN_ECANCELED && rc != CN_EREMOTE && cn__debug_mode()) {
        char text[CN__REASON_MAX + 64];
        snprintf(text, sizeof(text), "%.*s() failed: %s: %s", (int)cmd->fn.len, cmd->fn.ptr,
                 cn_err_name(rc), why);
        cn__debug_task_failed(text, t->fail ? t->fail->frames : NULL,
                              t->fail ? t->fail->nframes : 0);
    }
    reply_error(t, rc, why);
}

/* Runs t's function and answers its caller. Returns 1 if the answer was
 * a RETURN, 0 if it was an ERROR. */
static int run_task_answer(cn__task_t *t)
{
    const cn_wire_cmd_t *cmd = &t->msg->u.cmd;
    if (atomic_load(&t->cancelled)) {
        refuse(t, CN_ECANCELED, "cancelled before it ran: %s", t->cancel_reason);
        return 0;
    }
    cn_fn_t fn = find_export(cmd->fn);
    if (fn == NULL) {
        refuse(t, CN_ENOENT, "%s has no function '%.*s'", cn__rt.path, (int)cmd->fn.len,
               cmd->fn.ptr);
        return 0;
    }
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    int rc = fn(t, &cmd->args, &pk);
    if (rc > 0) { /* a count or a flag returned by mistake: not a success */
        struct task_fail *f = task_fail(t);
        if (f)
            snprintf(f->message, sizeof(f->message),
                     "%.*s returned %d: a function returns 0, or a negative CN_E* code "
                     "(cn_call_fail)", (int)cmd->fn.len, cmd->fn.ptr, rc);
        rc = CN_EINVAL;
    } else if (rc == 0) {
        if (out.size == 0)
            msgpack_pack_nil(&pk);
        pool_idle_early();
        rc = reply_raw(t, CN_MSG_RETURN, &out);
        struct task_fail *f = rc < 0 ? task_fail(t) : NULL;
        if (f && rc == CN_EMSGSIZE)
            snprintf(f->message, sizeof(f->message),
                     "%.*s's result is %zu bytes, more than a message holds (%u MiB)",
                     (int)cmd->fn.len, cmd->fn.ptr, out.size, CN_WIRE_DEFAULT_MAX_FRAME >> 20);
        else if (f)
            snprintf(f->message, sizeof(f->message),
                     "%.*s packed a bad result, not exactly one result object", (int)cmd->fn.len,
                     cmd->fn.ptr);
    }
    if (rc < 0)
        answer_failure(t, rc);
    msgpack_sbuffer_destroy(&out);
    return rc >= 0;
}

/* Runs t; the callee's end of a context then shows how it ended (the
 * live feed's ctx-closed or ctx-errored, "callee"). */
static void run_task(cn__task_t *t)
{
    int returned = run_task_answer(t);
    if (t->rec.is_ctx) /* a plain call's record just goes */
        cn__rec_phase(&t->rec, returned ? CN__PH_RETURNED : CN__PH_ERRORED);
}

static void task_free(cn__task_t *t)
{
    cn__rec_del(&t->rec);
    cn__lock(&cn__rt.mu);
    cn__cmap_del(&cn__rt.tasks, t->caller, t->cid);
    /* An actor going down waits for its tasks (maybe_finish_shutdown) */
    int drained = cn__rt.shutting_down && cn__rt.tasks.count == 0;
    /* Calls the function left running (a context it never freed) outlive
     * it; they must not point at it any more. */
    for (size_t i = 0; i < t->nested.cap; i++)
        if (t->nested.e[i].used)
            cn__pcall_detach(t->nested.e[i].val);
    cn__unlock(&cn__rt.mu);
    cn__cmap_fini(&t->nested);
    cn__latch_fini(&t->wake);
    cn__node_t *n;
    while (cn__latch_get(&t->in, 0, &n) == 0)
        if (!cn__yq_is_token(&t->yq, n))
            cn__item_free((cn__item_t *)n);
    cn__latch_fini(&t->in);
    cn__yq_fini(&t->yq);
    cn__flow_fini(&t->flow);
    cn__stream_free(t->stream);
    forget_remote(t);
    free(t->backtrace);
    free(t->fail);
    cn_wire_msg_free(t->msg);
    free(t);
    if (drained) {
        atomic_store(&cn__rt.tasks_drained, 1);
        cn__wake();
    }
}

static void *worker(void *arg)
{
    char name[16]; /* "cn-task-N", as top -H, gdb and canopy bt show it */
    snprintf(name, sizeof(name), "cn-task-%u", (unsigned)(uintptr_t)arg);
    pthread_setname_np(pthread_self(), name);
    sigset_t intr; /* SIGINT is the broker's to take */
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    pthread_sigmask(SIG_BLOCK, &intr, NULL);
    for (;;) {
        cn__node_t *n;
        if (!tl_idle_early)
            pool_idle();
        tl_idle_early = 0;
        int rc = cn__latch_get(&cn__rt.jobs, CN__FOREVER, &n);
        if (rc < 0)
            return NULL;
        pthread_mutex_lock(&pool.mu);
        pool.idle--;
        pool.queued--;
        pthread_mutex_unlock(&pool.mu);
        cn__task_t *t = (cn__task_t *)n;
        tl_task = t;
        cn__thr_task(&t->rec);
        run_task(t);
        cn__thr_task(NULL);
        tl_task = NULL;
        task_free(t);
    }
}

/* Makes sure a thread will take the job about to be queued: a waiting one
 * that no queued job has yet, or a new one, so that calls which call back
 * into this actor cannot starve each other (at max_threads the job waits
 * for the next thread to finish). Idle threads are weighed against the
 * jobs already queued, not read alone: a thread counts as idle until it
 * wakes with its job, and a second job arriving in that moment must not
 * count on it too, or it waits for ever behind a long task (found by
 * tests/chaos/soak.c). Broker only. Returns 0 with the job counted in
 * pool.queued, or the errno value why a thread was needed and none could
 * be made. */
static int pool_grow(void)
{
    int err = 0;
    pthread_mutex_lock(&pool.mu);
    unsigned k = atomic_load(&cn__rt.nthreads);
    if (pool.idle <= pool.queued && k < cn__rt.max_threads) {
        cn__lock(&cn__rt.mu);
        if (cn__rt.threads == NULL)
            cn__rt.threads = calloc(cn__rt.max_threads, sizeof(pthread_t));
        void *number = (void *)(uintptr_t)(k + 1); /* its name's */
        cn__broker_unbatch(); /* the thread would inherit it */
        err = cn__rt.threads ? pthread_create(&cn__rt.threads[k], NULL, worker, number) : ENOMEM;
        if (err == 0)
            atomic_fetch_add(&cn__rt.nthreads, 1);
        cn__unlock(&cn__rt.mu);
    }
    if (err == 0)
        pool.queued++;
    pthread_mutex_unlock(&pool.mu);
    return err;
}

int cn__task_start(cn_wire_msg_t *msg)
{
    cn__task_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return CN_ENOMEM;
    t->msg = msg;
    t->caller = msg->hdr.src;
    t->cid = msg->hdr.cid;
    t->context = (msg->u.cmd.flags & CN__CMD_CONTEXT) != 0;
    cn__latch_init(&t->wake);
    cn__cmap_init(&t->nested);
    cn__latch_init(&t->in);
    cn__yq_init(&t->yq, &t->in);
    cn__flow_init(&t->flow);
    t->rec.role = CN__ROLE_CALLEE;
    t->rec.is_ctx = t->context;
    t->rec.peer = t->caller;
    t->rec.cid = t->cid;
    snprintf(t->rec.fn, sizeof(t->rec.fn), "%.*s", (int)msg->u.cmd.fn.len, msg->u.cmd.fn.ptr);
    cn__lock(&cn__rt.mu);
    int rc = cn__cmap_put(&cn__rt.tasks, t->caller, t->cid, t, NULL);
    cn__unlock(&cn__rt.mu);
    if (rc == 0) {
        cn__rec_add(&t->rec); /* before a thread can take it */
        int err = pool_grow();
        if (err) {
            /* Queued, it would wait for a thread that may never come (a
             * process limit, RLIMIT_NPROC): the caller is told instead. */
            char text[CN__REASON_MAX];
            snprintf(text, sizeof(text),
                     "%s cannot run '%s': no task thread is free and none can be started: %s",
                     cn__rt.path, t->rec.fn, strerror(err));
            cn_log(CN_LOG_ERROR, "%s", text);
            reply_error(t, err == ENOMEM ? CN_ENOMEM : CN_EAGAIN, text);
            task_free(t);
            return 0;
        }
        rc = cn__latch_put(&cn__rt.jobs, &t->node);
        if (rc < 0) {
            pthread_mutex_lock(&pool.mu);
            pool.queued--;
            pthread_mutex_unlock(&pool.mu);
            cn__rec_del(&t->rec);
            cn__lock(&cn__rt.mu);
            cn__cmap_del(&cn__rt.tasks, t->caller, t->cid);
            cn__unlock(&cn__rt.mu);
        }
    } else if (rc == 1) {
        rc = CN_EINVAL; /* the same caller reused a cid still running */
    }
    if (rc < 0) {
        t->msg = NULL; /* the caller keeps msg on failure */
        cn__latch_fini(&t->wake);
        cn__cmap_fini(&t->nested);
        cn__latch_fini(&t->in);
        cn__yq_fini(&t->yq);
        cn__flow_fini(&t->flow);
        free(t);
    }
    return rc;
}

cn__yq_t *cn__task_yq(uint32_t caller, uint64_t cid)
{
    cn__task_t *t = cn__cmap_get(&cn__rt.tasks, caller, cid);
    return t ? &t->yq : NULL;
}

int cn__task_deliver(uint32_t caller, uint64_t cid, cn_wire_msg_t *msg)
{
    int rc = 0;
    cn__lock(&cn__rt.mu);
    cn__task_t *t = cn__cmap_get(&cn__rt.tasks, caller, cid);
    if (t == NULL) {
        rc = CN_ENOENT;
    } else if (msg->hdr.type == CN_MSG_CREDIT) {
        cn__flow_credit(&t->flow, msg->u.credit.count);
    } else {
        cn__item_t *it = cn__item_new(msg, 0, NULL);
        if (it == NULL || cn__latch_put(&t->in, &it->node) < 0) {
            if (it)
                it->msg = NULL;
            free(it);
            rc = CN_ENOMEM; /* or cancelled: the message is dropped */
        } else {
            msg = NULL; /* the task owns it now */
        }
    }
    cn__unlock(&cn__rt.mu);
    if (rc == 0 || rc == CN_ENOMEM)
        cn_wire_msg_free(msg);
    return rc == CN_ENOMEM ? 0 : rc;
}

void cn__task_cancel_all(const char *reason)
{
    cn__lock(&cn__rt.mu);
    size_t n = 0, cap = cn__rt.tasks.count;
    uint32_t *callers = cap ? malloc(cap * sizeof(*callers)) : NULL;
    uint64_t *cids = cap ? malloc(cap * sizeof(*cids)) : NULL;
    for (size_t i = 0; callers && cids && i < cn__rt.tasks.cap && n < cap; i++)
        if (cn__rt.tasks.e[i].used) {
            callers[n] = cn__rt.tasks.e[i].k1;
            cids[n++] = cn__rt.tasks.e[i].k2;
        }
    cn__unlock(&cn__rt.mu);
    for (size_t i = 0; i < n; i++) /* one that has ended meanwhile is just not found */
        cn__task_cancel(callers[i], cids[i], reason);
    free(callers);
    free(cids);
}

size_t cn__task_leftover(char *names, size_t cap)
{
    size_t n = 0;
    if (cap)
        names[0] = '\0';
    cn__lock(&cn__rt.mu);
    for (size_t i = 0; i < cn__rt.tasks.cap; i++) {
        const cn__task_t *t = cn__rt.tasks.e[i].used ? cn__rt.tasks.e[i].val : NULL;
        if (t == NULL)
            continue;
        size_t w = strlen(names);
        if (n < 4 && w + 1 < cap)
            snprintf(names + w, cap - w, "%s%.*s", n ? ", " : "", (int)t->msg->u.cmd.fn.len,
                     t->msg->u.cmd.fn.ptr);
        n++;
    }
    cn__unlock(&cn__rt.mu);
    return n;
}

int cn__task_cancel(uint32_t caller, uint64_t cid, const char *reason)
{
    uint32_t *to = NULL;
    uint64_t *cids = NULL;
    size_t n = 0;
    char fn[CN__NAME_MAX];

    cn__lock(&cn__rt.mu);
    cn__task_t *t = cn__cmap_get(&cn__rt.tasks, caller, cid);
    if (t == NULL || atomic_load(&t->cancelled)) {
        cn__unlock(&cn__rt.mu);
        return t ? 0 : CN_ENOENT;
    }
    snprintf(t->cancel_reason, sizeof(t->cancel_reason), "%s", reason);
    t->cancel_us = cn__now_us();
    cn__rec_cancel(&t->rec, CN_CANCEL_REQUESTED, reason);
    snprintf(fn, sizeof(fn), "%.*s", (int)t->msg->u.cmd.fn.len, t->msg->u.cmd.fn.ptr);
    atomic_store(&t->cancelled, 1);
    cn__latch_close(&t->wake, CN_ECANCELED);      /* under rt.mu: t is alive */
    cn__latch_close(&t->in, CN_ECANCELED);        /* a recv wakes too */
    cn__flow_end(&t->flow, CN_ECANCELED, reason); /* and a send */
    /* Every call it has in flight is cancelled in turn: collect them all
     * (not a fixed few) while t cannot go away. */
    if (t->nested.count) {
        to = malloc(t->nested.count * sizeof(*to));
        cids = malloc(t->nested.count * sizeof(*cids));
        for (size_t i = 0; to && cids && i < t->nested.cap; i++)
            if (t->nested.e[i].used) {
                to[n] = cn__pcall_to(t->nested.e[i].val);
                cids[n++] = t->nested.e[i].k2;
            }
    }
    cn__unlock(&cn__rt.mu);

    cn_log(CN_LOG_CANCEL, "%s (for actor %u) cancelled: %s", fn, caller, reason);
    char why[CN__REASON_MAX];
    snprintf(why, sizeof(why), "its caller's task %s was cancelled", fn);
    for (size_t i = 0; i < n; i++)
        cn__pcall_cancel(to[i], cids[i], why);
    free(to);
    free(cids);
    return 0;
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
    cn__node_t *node;
    while (cn__latch_get(&cn__rt.jobs, 0, &node) == 0) {
        cn__task_t *t = (cn__task_t *)node;
        task_free(t);
    }
}

/* ===========================================================================
 * The API a function uses
 */

int cn_started(cn_call_t *call, const msgpack_object *value)
{
    if (call == NULL || !call->context || call->started)
        return CN_EINVAL;
    if (atomic_load(&call->cancelled))
        return CN_ECANCELED;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = value ? msgpack_pack_object(&pk, *value) : msgpack_pack_nil(&pk);
    if (rc == 0)
        rc = reply_raw(call, CN_MSG_STARTED, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0) {
        call->started = 1;
        cn__rec_phase(&call->rec, CN__PH_STARTED);
    }
    return rc < 0 ? rc : 0;
}

int cn_call_stream(cn_call_t *call, const cn_stream_opts_t *opts, cn_stream_t **out)
{
    if (call == NULL || out == NULL)
        return cn__stream_fail(CN_EINVAL, "no %s (%s is NULL)", call ? "place for the stream" : "call",
                               call ? "out" : "call");
    if (!call->context)
        return cn__stream_fail(CN_EINVAL, "a plain call has no stream: open a context (cn_open)");
    if (!call->started)
        return cn__stream_fail(CN_EINVAL, "the stream opens after cn_started");
    if (call->stream)
        return cn__stream_fail(CN_EINVAL, "this context's stream is open already (one per side)");
    int rc;
    call->stream = cn__stream_open(&call->flow, &call->yq, &call->in, call->caller,
                                   call->cid | CN__CID_FROM_CALLEE, NULL, opts, &rc);
    cn__rec_stream(&call->rec, call->stream);
    *out = call->stream;
    return rc;
}

void cn_call_cancel_info(const cn_call_t *call, cn_cancel_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (call == NULL || !atomic_load(&call->cancelled))
        return;
    cn__lock(&cn__rt.mu); /* the broker wrote these under it */
    out->state = CN_CANCEL_REQUESTED;
    out->requested_us = call->cancel_us;
    snprintf(out->by, sizeof(out->by), "%s", call->cancel_reason);
    cn__unlock(&cn__rt.mu);
}

int cn_call_cancelled(const cn_call_t *call)
{
    return call && atomic_load(&call->cancelled);
}

/* A backtrace of the thread as text, one frame a line, from `from` (the
 * return address into cn_call_fail's caller) on, or NULL. The frames
 * before it are this one, cn_call_fail's, and, under ASan, its backtrace
 * interceptor's: found, not counted. */
static char *capture_backtrace(const void *from)
{
    enum { MAX = 40 };
    void *all[MAX];
    int total = backtrace(all, MAX), skip = 0;
    while (skip < total && all[skip] != from)
        skip++;
    if (skip == total) /* not found (no frame pointers?): all but this one */
        skip = 1;
    void **frames = all + skip;
    int n = total - skip;
    char **names = n > 0 ? backtrace_symbols(frames, n) : NULL;
    if (names == NULL)
        return NULL;
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *out = malloc(len);
    if (out) {
        size_t at = 0; /* each name and its newline fit: len counted them */
        for (int i = 0; i < n; i++) {
            size_t k = strlen(names[i]);
            memcpy(out + at, names[i], k);
            out[at + k] = '\n';
            at += k + 1;
        }
        out[at] = '\0';
    }
    free(names);
    return out;
}

int(cn_call_fail)(cn_call_t *call, int code, const char *fmt, ...)
{
    struct task_fail *f = call ? task_fail(call) : NULL;
    if (f && fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->message, sizeof(f->message), fmt, ap);
        va_end(ap);
    }
    if (call) {
        free(call->backtrace);
        call->backtrace = capture_backtrace(__builtin_return_address(0));
    }
    if (f && cn__debug_mode()) /* where it failed, for a post-mortem: from our caller on */
        f->nframes = cn__stack_after(f->frames, CN__BT_FRAMES, (const void *)&cn_call_fail);
    return code < 0 ? code : CN_EINVAL;
}

cn_portal_t cn_call_caller(const cn_call_t *call)
{
    return (cn_portal_t){call->caller};
}
