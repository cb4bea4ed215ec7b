/*
 * actor.c: one actor process: its broker, streams, routing and lifecycle.
 *
 * What it does: runs the broker thread's libuv loop over the stream to the
 * parent and the streams to children; greets and is greeted (HELLO);
 * routes every message by its dst, forwarding raw frames unchanged; turns
 * every undeliverable message into a DEAD reply; spawns, cancels and reaps
 * children; forwards children's output and log records to the root; shuts
 * the actor down even when all of its task threads hang. Calls and the task
 * pool are in call.c.
 *
 * How a frame is written: the thread that has it writes it to the socket
 * itself, under the stream's wmu, when nothing is queued ahead of it; only
 * a partial write queues the rest for the broker to finish when the socket
 * is writable. That keeps a call's round trip free of hand-offs to the
 * broker on the sending side (shared/PERF-NOTES.md).
 *
 * The invariant a reader must not break: every CMD written into a stream
 * is recorded in that stream's in-flight set until its reply comes back
 * through the same stream, and when the stream is lost every recorded call
 * gets a DEAD with the reason. That, not timeouts, is what guarantees that
 * a waiter on a dead subtree wakes, wherever in the tree it waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"
#include "debug/debug.h"
#include "inspect/inspect.h"

cn__rt_t cn__rt;

#define LOST_WAIT_MS 50   /* how long a lost child's exit status is awaited */
#define REAPED_LINK_MS 200 /* how long a reaped child's link may stay open */
#define REAP_SOFT_MS 1000 /* SHUTDOWN, then SIGTERM after this */
#define REAP_HARD_MS 1000 /* then SIGKILL after this */
#define ENTRY_GRACE_MS 500 /* a child's entry has this long to return after SHUTDOWN */
#define HELLO_TIMEOUT_MS 10000
#define ADOPT_WAIT_MS 10000 /* how long an orphaned descendant is waited for */

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t cn__now_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

uint64_t cn__now_coarse_us(void)
{
    return clock_us(CLOCK_REALTIME_COARSE);
}

/* ===========================================================================
 * Streams
 */

static void stream_unref(cn__stream_t *s);
static int exempt_from_cancel(const cn__stream_t *s);
static void on_poll(uv_poll_t *p, int status, int events);
static void drain_output(cn__stream_t *s, int which);
static void run_spawns(void);
static void send_dead(uint32_t to, uint64_t cid, uint32_t orig_type, uint32_t orig_dst,
                      const char *reason);

static cn__stream_t *stream_new(int fd, int is_parent, uint32_t peer)
{
    cn__stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1); /* the stream table's reference */
    s->fd = fd;
    s->is_parent = is_parent;
    s->peer = peer;
    cn_wire_decoder_init(&s->dec, 0);
    pthread_mutex_init(&s->wmu, NULL);
    msgpack_sbuffer_init(&s->wq);
    msgpack_sbuffer_init(&s->wb);
    cn__cmap_init(&s->inflight);
    cn__cmap_init(&s->dbg);
    cn__latch_init(&s->hello);
    cn__latch_init(&s->exited);
    s->out_fd[0] = s->out_fd[1] = -1;
    return s;
}

/* Whether a child of ours that is still up has this name; under rt.mu.
 * One whose stream has closed (it exited, or was dropped) frees its name
 * before any caller hears of its end, so a supervisor can restart it
 * under the same name at once. */
static int name_taken_locked(const char *name)
{
    for (size_t i = 0; i < cn__rt.nstreams; i++) {
        cn__stream_t *c = cn__rt.streams[i];
        if (c == NULL || c->is_parent || strcmp(c->name, name) != 0)
            continue;
        cn__lock(&c->wmu);
        int up = !c->closed;
        cn__unlock(&c->wmu);
        if (up)
            return 1;
    }
    return 0;
}

/* cn_spawn of a name a live child has: said, and refused. */
static int name_refused(const char *name)
{
    cn_log(CN_LOG_WARN, "cannot spawn '%s': %s already has a child of that name", name,
           cn__rt.path);
    return CN_EEXIST;
}

/* Adds s to the stream table and asks the broker to start watching it;
 * a child's name must be free (else CN_EEXIST). Takes rt.mu. */
static int stream_register(cn__stream_t *s)
{
    cn__lock(&cn__rt.mu);
    if (!s->is_parent && cn__rt.shutting_down) {
        /* begin_shutdown cancels the children in the table as it sets
         * this, under this lock: one added after would never be told. */
        cn__unlock(&cn__rt.mu);
        return CN_ECANCELED;
    }
    if (!s->is_parent && name_taken_locked(s->name)) {
        cn__unlock(&cn__rt.mu);
        return CN_EEXIST;
    }
    /* A slot a child left is taken again: the broker walks every slot on
     * every wake, and a supervisor that restarts a worker all day must
     * not make that walk longer each time. The old child's routes went
     * with it (stream_finish, before child_done frees the slot), so
     * nothing still names this index. */
    size_t slot = 0;
    while (slot < cn__rt.nstreams && cn__rt.streams[slot] != NULL)
        slot++;
    if (slot == cn__rt.nstreams) {
        /* An array of pointers: NOLINTNEXTLINE(bugprone-sizeof-expression) */
        cn__stream_t **n = realloc(cn__rt.streams, (cn__rt.nstreams + 1) * sizeof(*n));
        if (n == NULL) {
            cn__unlock(&cn__rt.mu);
            return CN_ENOMEM;
        }
        cn__rt.streams = n;
        cn__rt.nstreams++;
    }
    s->via = (uint32_t)slot;
    cn__rt.streams[slot] = s;
    if (s->is_parent)
        cn__rt.parent = s;
    else
        cn__rt.children++;
    cn__unlock(&cn__rt.mu);
    cn__wake();
    return 0;
}

static void stream_free(cn__stream_t *s)
{
    cn_wire_decoder_fini(&s->dec);
    pthread_mutex_destroy(&s->wmu);
    msgpack_sbuffer_destroy(&s->wq);
    msgpack_sbuffer_destroy(&s->wb);
    cn__cmap_fini(&s->inflight);
    cn__cmap_fini(&s->dbg);
    cn__latch_fini(&s->hello);
    cn__latch_fini(&s->exited);
    free(s->line[0]);
    free(s->line[1]);
    free(s);
}

static void stream_ref(cn__stream_t *s)
{
    atomic_fetch_add(&s->refs, 1);
}

static void stream_unref(cn__stream_t *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1)
        stream_free(s);
}

/* Asks the broker to watch s for writability; any thread. */
static void stream_kick(cn__stream_t *s)
{
    atomic_store(&s->want_write, 1);
    cn__wake();
}

/*
 * Writes one frame into s, from any thread. A CMD's (src, cid) is recorded
 * as in flight first, under the same lock, so that its reply or the
 * stream's loss always finds it. `room` is what its sender may queue after
 * it without waiting, in bytes (a stream's credit; 0 if unknown), which
 * lets the broker linger (below). Returns 0, or CN_EDEAD with the stream's
 * reason copied to `reason` (if not NULL) when s is closed.
 */
static int stream_write(cn__stream_t *s, const cn_wire_hdr_t *h, const char *buf, size_t len,
                        size_t room, char *reason)
{
    int kick = 0;
    cn__lock(&s->wmu);
    if (s->closed) {
        if (reason)
            snprintf(reason, CN__REASON_MAX, "%s", s->reason);
        cn__unlock(&s->wmu);
        return CN_EDEAD;
    }
    if (h->type == CN_MSG_CMD &&
        cn__cmap_put(&s->inflight, h->src, h->cid, (void *)((uintptr_t)h->dst + 1), NULL) ==
            CN_ENOMEM) { /* the value is the callee's id + 1 (never NULL) */
        cn__unlock(&s->wmu);
        return CN_ENOMEM;
    }
    size_t done = 0;
    /* A YIELD is queued for the broker, which merges every frame queued
     * by the time it runs into one write: a fast producer gets batched
     * writes without asking. So is an EVENT, which is never urgent and
     * comes in bursts (an actor's batch every CN__EVENTS_MS, passed on
     * by each ancestor). Other frames go out now unless something is
     * queued ahead of them (order is kept either way). */
    int queued = s->wbusy || s->wq.size > 0;
    if (!queued && h->type != CN_MSG_YIELD && h->type != CN_MSG_EVENT) {
        while (done < len) {
            ssize_t n = send(s->fd, buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                done += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                done = len; /* broken: the broker sees it on read and cleans up */
            break;
        }
    }
    if (done < len) {
        if (msgpack_sbuffer_write(&s->wq, buf + done, len - done) != 0) {
            cn__unlock(&s->wmu);
            return CN_ENOMEM;
        }
        kick = !queued; /* the broker is already on its way otherwise */
        s->room = room;
    }
    cn__unlock(&s->wmu);
    if (kick)
        stream_kick(s);
    return 0;
}

/*
 * The broker's scheduling while it writes bulk. A thread that queues a
 * frame for an idle broker wakes it, and Linux lets a woken thread
 * preempt the one that woke it: with as many busy threads as cores, a
 * stream's sender stopped at nearly every wake-up (25 000 times in a
 * five-million-message stream measured on a two-core host) and its
 * frames went out 185 at a time. While the broker writes large batches
 * it runs as SCHED_BATCH, whose wake-ups wait for a free core or the
 * scheduler's tick instead of preempting; then the sender fills its
 * window and the broker writes it in a few large sends (3 000 wake-ups,
 * a seventh more messages a second). The receiving broker does the same
 * while its reads are large, so that the data it is woken for does not
 * stop the thread reading what it queued. The price is latency when every
 * core is busy, so it lasts only while the bulk does: BULK_IDLE_MS after
 * the last large write or read the broker is SCHED_OTHER again. A broker that is not SCHED_OTHER when
 * a large write comes (its program, or an operator's chrt, chose another
 * policy) is left as it is, and so is one whose policy was changed while
 * it was SCHED_BATCH.
 */
#define BULK_BYTES (8u * 1024)
#define BULK_IDLE_MS 2

static __thread int tl_broker; /* this thread runs the loop */

static struct {
    uv_timer_t timer;  /* while on: to turn it off again */
    int on;            /* the broker made itself SCHED_BATCH */
    uint64_t last_ms;  /* uv_now of the last large write */
} bulk;

/* The calling thread's policy, set and read through the kernel (0 is this
 * thread): glibc's pthread_getschedparam answers from what its own
 * pthread_setschedparam last set, and would miss an operator's chrt. */
static int bulk_policy(int policy)
{
    struct sched_param sp = {0};
    return sched_setscheduler(0, policy, &sp);
}

void cn__broker_unbatch(void)
{
    if (!tl_broker || !bulk.on)
        return;
    /* Back to SCHED_OTHER, unless something gave the thread another
     * policy meanwhile; if the kernel refuses, the timer, and every
     * thread or process about to start, tries again. */
    if (sched_getscheduler(0) == SCHED_BATCH && bulk_policy(SCHED_OTHER) != 0)
        return;
    uv_timer_stop(&bulk.timer);
    bulk.on = 0;
}

static void on_bulk_timer(uv_timer_t *t)
{
    (void)t;
    if (uv_now(&cn__rt.loop) - bulk.last_ms >= BULK_IDLE_MS)
        cn__broker_unbatch();
}

/* Broker: a write of `bytes` is about to go out, or a read brought them. */
static void bulk_note(size_t bytes)
{
    if (bytes < BULK_BYTES)
        return;
    bulk.last_ms = uv_now(&cn__rt.loop);
    /* Only from SCHED_OTHER: the program, or an operator's chrt, may have
     * chosen another policy, at start or since. */
    if (bulk.on || sched_getscheduler(0) != SCHED_OTHER || bulk_policy(SCHED_BATCH) != 0)
        return;
    bulk.on = 1;
    uv_timer_start(&bulk.timer, on_bulk_timer, BULK_IDLE_MS, BULK_IDLE_MS);
}

/*
 * Lingering. While the broker writes bulk, a fast sender and the broker
 * fall into a chase: the broker swaps out the few dozen frames queued
 * while its last send ran, sends them, finds a few dozen more, and so on:
 * a send() and a contended wmu per few kilobytes rather than per socket
 * buffer. In five-million-message streams on a two-core host, runs that
 * chased made 29 000-150 000 sends and as many futex calls, and ran at
 * about two thirds the rate of runs where the sender got ahead by chance.
 *
 * So in bulk mode, when a send has just emptied wb, less than
 * LINGER_BYTES were queued meanwhile, and the last frame's sender had
 * room to queue LINGER_BYTES more without waiting for credit (s->room),
 * the broker leaves the queue to grow for LINGER_US (a one-shot timerfd:
 * the loop's waits stay untimed). A thread queueing frames does not wake
 * the broker while others are queued, so the clock is what ends it; or,
 * sooner, any thread of this actor that is about to sleep
 * (cn__about_to_sleep): a sender waiting for credit, or for the answer to
 * what it queued, must not wait out the linger for frames of its own. The
 * room test keeps windows too small to fill LINGER_BYTES (the default 64
 * small messages) out of it: their sender would stop for credit with its
 * frames held back. docs/performance.md has the figures.
 */
#ifndef LINGER_US
#define LINGER_US 50
#endif
#ifndef LINGER_BYTES
#define LINGER_BYTES (16u * 1024)
#endif

static struct {
    cn__clock_t clock;
    _Atomic int on;  /* a stream lingers: set by the broker */
    _Atomic int cut; /* a thread about to sleep asks the broker to end it */
} linger;

static size_t stream_slots(void);
static cn__stream_t *stream_slot(size_t i);
static int stream_flush(cn__stream_t *s);

/* Broker: sends what every lingering stream holds back. */
static void linger_end(void)
{
    atomic_store(&linger.on, 0);
    for (size_t i = 0, n = stream_slots(); i < n; i++) {
        cn__stream_t *s = stream_slot(i);
        if (s && s->lingering) {
            s->lingering = 0;
            if (!s->lost)
                stream_flush(s);
        }
    }
}

static void on_linger(cn__clock_t *c)
{
    (void)c;
    linger_end();
}

void cn__about_to_sleep(void)
{
    if (!tl_broker && atomic_load_explicit(&linger.on, memory_order_relaxed) &&
        !atomic_exchange(&linger.cut, 1))
        cn__wake();
}

/*
 * Broker: writes what is queued on s; stops watching for writability once
 * nothing is left. It swaps the queue out under wmu and writes without
 * it, so that threads queueing frames never wait on a system call; wbusy
 * makes them queue behind the bytes it holds. Returns 1 once all is out,
 * 0 while some waits for the socket or lingers (above).
 */
static int stream_flush(cn__stream_t *s)
{
    int wrote = 0;
    for (;;) {
        if (s->wb_off == s->wb.size) {
            if (s->wb.alloc > (1u << 20)) { /* do not keep a burst's buffer */
                msgpack_sbuffer_destroy(&s->wb);
                msgpack_sbuffer_init(&s->wb);
            }
            s->wb.size = s->wb_off = 0;
            cn__lock(&s->wmu);
            if (wrote && bulk.on && s->wq.size > 0 && s->wq.size < LINGER_BYTES &&
                s->room >= LINGER_BYTES && linger.clock.fd >= 0) {
                cn__unlock(&s->wmu);
                s->lingering = 1;
                if (!atomic_exchange(&linger.on, 1))
                    cn__clock_once_us(&linger.clock, LINGER_US);
                return 0;
            }
            msgpack_sbuffer t = s->wb;
            s->wb = s->wq;
            s->wq = t;
            s->wbusy = s->wb.size > 0;
            cn__unlock(&s->wmu);
            if (s->wb.size == 0)
                break;
            bulk_note(s->wb.size);
        }
        ssize_t n = send(s->fd, s->wb.data + s->wb_off, s->wb.size - s->wb_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            s->wb_off += (size_t)n;
            wrote = 1;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!(s->poll_events & UV_WRITABLE) && s->polling && !s->lost) {
                s->poll_events = UV_READABLE | UV_WRITABLE;
                uv_poll_start(&s->poll, s->poll_events, on_poll);
            }
            return 0;
        } else {
            s->wb_off = s->wb.size; /* broken: dropped; the read side reports it */
        }
    }
    if ((s->poll_events & UV_WRITABLE) && !s->lost) {
        s->poll_events = UV_READABLE;
        uv_poll_start(&s->poll, s->poll_events, on_poll);
    }
    return 1;
}

/* ===========================================================================
 * Routing and sending
 */

/*
 * Sends an encoded frame toward h->dst: through the route for dst if this
 * actor knows one, else up to the parent. `from_via` is the stream the
 * frame arrived on (CN__NO_VIA for a local one): a frame is never sent
 * back where it came from. Returns 0, or CN_EDEAD with `reason` filled.
 */
static int deliver_local(const char *buf, size_t len);

/* Under rt.mu: a child of this actor that has exited lately, by id (ids
 * are never reused), copied to *out; 0 if none. */
static int exited_child(uint32_t id, cn__exited_t *out)
{
    uint64_t n = cn__rt.nexited < CN__EXITED_KEEP ? cn__rt.nexited : CN__EXITED_KEEP;
    for (uint64_t i = 0; i < n; i++)
        if (cn__rt.exited[i].id == id) {
            *out = cn__rt.exited[i];
            return 1;
        }
    return 0;
}

/* "actor 7 (worker-3) exited on signal 9": how a reaped child ended, as
 * every reason that names it says it. */
static void say_how_it_ended(uint32_t id, const char *name, int status, const char *cancelled,
                             char *out, size_t cap)
{
    char how[32];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof(how), "on signal %d", WTERMSIG(status));
    else
        snprintf(how, sizeof(how), "with status %d", WEXITSTATUS(status));
    snprintf(out, cap, "actor %u (%s) exited %s%s%s%s", id, name, how, cancelled[0] ? " (" : "",
             cancelled, cancelled[0] ? ")" : "");
}

static int route_send(const cn_wire_hdr_t *h, const char *buf, size_t len, uint32_t from_via,
                      char *reason)
{
    if (h->dst == cn__rt.id)
        return deliver_local(buf, len);
    cn__stream_t *s = NULL;
    cn__exited_t gone = {0};
    int was_child = 0;
    cn__lock(&cn__rt.mu);
    const cn_route_t *r = cn_route_find(&cn__rt.routes, h->dst);
    if (r != NULL)
        s = cn__rt.streams[r->via];
    else if ((was_child = exited_child(h->dst, &gone)) != 0)
        s = NULL; /* its own parent knows best how it ended */
    else if (cn__rt.parent != NULL && from_via != cn__rt.parent->via)
        s = cn__rt.parent;
    if (s != NULL && s->via != from_via)
        stream_ref(s);
    else
        s = NULL;
    cn__unlock(&cn__rt.mu);

    if (s == NULL) {
        if (reason && was_child)
            say_how_it_ended(h->dst, gone.name, gone.status, gone.cancelled, reason,
                             CN__REASON_MAX);
        else if (reason)
            snprintf(reason, CN__REASON_MAX, "no route to actor %u from %s", h->dst, cn__rt.path);
        return CN_EDEAD;
    }
    int rc = stream_write(s, h, buf, len, 0, reason);
    stream_unref(s);
    return rc;
}

/* A YIELD, STOP or CREDIT: for a context we opened (sent by its callee,
 * so marked in the cid) or one we serve. Takes m. */
static void deliver_stream_msg(cn_wire_msg_t *m)
{
    if (m->hdr.cid & CN__CID_FROM_CALLEE) {
        cn__call_deliver(m->hdr.cid, m, 0, NULL);
        return;
    }
    uint32_t src = m->hdr.src, type = m->hdr.type;
    uint64_t cid = m->hdr.cid;
    if (cn__task_deliver(src, cid, m) == CN_ENOENT) {
        /* Rejected, not held: a context is registered before its CMD is
         * answered, so this is one that has ended (the two crossed). */
        cn_log(CN_LOG_DEBUG, "%s from actor %u for context %llu, which is not running here",
               cn_wire_type_name(type), src, (unsigned long long)cid);
        cn_wire_msg_free(m);
        send_dead(src, cid, type, cn__rt.id, "no such context running here");
    }
}

/* Whether src can be behind the stream s; under rt.mu. The parent's
 * stream carries anyone outside our subtree; a child's, its subtree. */
static int src_ok_locked(const cn__stream_t *s, uint32_t src)
{
    if (s->is_parent)
        return src != cn__rt.id && cn_route_find(&cn__rt.routes, src) == NULL;
    return cn_route_src_ok(&cn__rt.routes, s->via, s->peer, src);
}

/*
 * YIELDs for this actor, as checked frames (length prefixes included,
 * `count` of them, all from h->src for h->cid): queued as bytes for the
 * end of the stream they are for, to be decoded by its reader. `from` is
 * the stream they came on (src is checked against it under the same lock),
 * or NULL for our own. Any thread.
 */
static void deliver_yields(cn__stream_t *from, const cn_wire_hdr_t *h, const char *frames,
                           size_t len, unsigned count)
{
    int rc = CN_ENOENT;
    cn__lock(&cn__rt.mu);
    if (from && !src_ok_locked(from, h->src)) {
        cn__unlock(&cn__rt.mu);
        cn_log(CN_LOG_WARN, "dropped %u YIELD(s) claiming to be from actor %u on the stream to %s",
               count, h->src, from->is_parent ? "the parent" : from->name);
        return;
    }
    int not_callee = 0;
    cn__yq_t *q = h->cid & CN__CID_FROM_CALLEE ? cn__call_yq(h->cid, h->src, &not_callee)
                                               : cn__task_yq(h->src, h->cid);
    if (q)
        rc = cn__yq_push(q, frames, len, count, cn__now_us());
    cn__unlock(&cn__rt.mu);
    if (not_callee) {
        cn_log(CN_LOG_WARN, "dropped %u YIELD(s) for call %llu from actor %u: the call went to "
               "another actor", count, (unsigned long long)(h->cid & ~CN__CID_FROM_CALLEE), h->src);
    } else if (rc == CN_ENOENT && (h->cid & CN__CID_FROM_CALLEE)) {
        /* As cn__call_deliver: the context we opened is over here, and
         * its callee learns so from our CANCEL. */
        cn_log(CN_LOG_DEBUG, "YIELD for call %llu from actor %u came after its caller stopped waiting",
               (unsigned long long)(h->cid & ~CN__CID_FROM_CALLEE), h->src);
    } else if (rc == CN_ENOENT) {
        /* Rejected, not held: see deliver_stream_msg. */
        cn_log(CN_LOG_DEBUG, "YIELD from actor %u for context %llu, which is not running here",
               h->src, (unsigned long long)h->cid);
        send_dead(h->src, h->cid, CN_MSG_YIELD, cn__rt.id, "no such context running here");
    } else if (rc < 0) {
        cn_log(CN_LOG_ERROR, "dropped %u YIELD(s) from actor %u: %s", count, h->src,
               cn_strerror(rc));
    } else if (rc > 0) {
        cn_log(CN_LOG_WARN,
               "dropped %d YIELD(s) from actor %u for context %llu: sent beyond the credit "
               "it was given",
               rc, h->src, (unsigned long long)(h->cid & ~CN__CID_FROM_CALLEE));
    }
}

/*
 * The broker gathers the YIELDs of one read that follow each other on one
 * stream for one context, and queues them with one lookup and one lock:
 * a fast stream's frames come in runs. Broker only.
 */
static struct {
    cn__stream_t *from;
    cn_wire_hdr_t h;
    msgpack_sbuffer frames;
    unsigned count;
} run;

static void run_flush(void)
{
    if (run.count == 0)
        return;
    deliver_yields(run.from, &run.h, run.frames.data, run.frames.size, run.count);
    run.count = 0;
    run.frames.size = 0;
    if (run.frames.alloc > (1u << 20)) {
        msgpack_sbuffer_destroy(&run.frames);
        msgpack_sbuffer_init(&run.frames);
    }
}

static void run_add(cn__stream_t *from, const cn_wire_hdr_t *h, const char *body, size_t len)
{
    if (run.count > 0 && (run.from != from || run.h.src != h->src || run.h.cid != h->cid))
        run_flush();
    char prefix[CN_WIRE_LEN_SIZE];
    cn_wire_put_len(prefix, len);
    size_t was = run.frames.size;
    if (msgpack_sbuffer_write(&run.frames, prefix, sizeof(prefix)) != 0 ||
        msgpack_sbuffer_write(&run.frames, body, len) != 0) {
        run.frames.size = was;
        cn_log(CN_LOG_ERROR, "dropped a YIELD from actor %u: out of memory", h->src);
        return;
    }
    run.from = from;
    run.h = *h;
    run.count++;
}

/* A message from this actor to itself, delivered without a stream: a call
 * to self, and its reply. Any thread. */
static int deliver_local(const char *buf, size_t len)
{
    cn_wire_hdr_t h;
    int peeked = len > CN_WIRE_LEN_SIZE &&
                 cn_wire_peek(buf + CN_WIRE_LEN_SIZE, len - CN_WIRE_LEN_SIZE, &h) == 0;
    if (peeked && h.type == CN_MSG_YIELD) {
        deliver_yields(NULL, &h, buf, len, 1);
        return 0;
    }
    if (peeked && h.type == CN_MSG_EVENT) { /* the root's own: from its broker */
        if (cn__rt.is_root)
            cn__inspect_event(buf, len, h.cid);
        return 0;
    }
    cn_wire_msg_t *m;
    int rc = cn_wire_decode_frame(buf, len, 0, &m);
    if (rc < 0)
        return rc;
    if (cn__debug_msg_type(m->hdr.type)) {
        cn__debug_on_msg(m); /* the root's own session: always on its broker */
        return 0;
    }
    switch (m->hdr.type) {
    case CN_MSG_CMD:
        if (cn__task_start(m) == 0)
            return 0;
        cn__call_deliver(m->hdr.cid, NULL, CN_EDEAD, "the actor is shutting down");
        break;
    case CN_MSG_STARTED:
    case CN_MSG_RETURN:
    case CN_MSG_ERROR:
        cn__call_deliver(m->hdr.cid, m, 0, NULL);
        return 0;
    case CN_MSG_YIELD:
    case CN_MSG_STOP:
    case CN_MSG_CREDIT:
        deliver_stream_msg(m);
        return 0;
    case CN_MSG_CANCEL:
        cn__task_cancel(m->hdr.src, m->hdr.cid, "cancelled by itself");
        break;
    default:
        break;
    }
    cn_wire_msg_free(m);
    return 0;
}

int cn__send_frame(const cn_wire_hdr_t *h, const char *buf, size_t len, char *reason)
{
    return route_send(h, buf, len, CN__NO_VIA, reason);
}

cn__stream_t *cn__link_get(uint32_t dst)
{
    if (dst == cn__rt.id)
        return NULL;
    cn__stream_t *s = NULL;
    cn__lock(&cn__rt.mu);
    const cn_route_t *r = cn_route_find(&cn__rt.routes, dst);
    s = r ? cn__rt.streams[r->via] : cn__rt.parent;
    if (s)
        stream_ref(s);
    cn__unlock(&cn__rt.mu);
    return s;
}

int cn__link_send(cn__stream_t *l, const cn_wire_hdr_t *h, const char *buf, size_t len,
                  size_t room, char *reason)
{
    return stream_write(l, h, buf, len, room, reason);
}

void cn__link_put(cn__stream_t *l)
{
    if (l)
        stream_unref(l);
}

/* Sends a typed message (see wire.h) toward hdr->dst; any thread. */
static int send_typed(const cn_wire_hdr_t *h, const void *body, char *reason)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = cn_wire_pack_typed(&sb, h, body, 0);
    if (rc == 0)
        rc = route_send(h, sb.data, sb.size, CN__NO_VIA, reason);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Writes a typed message straight into one stream (handshake, routes). */
static int write_typed(cn__stream_t *s, const cn_wire_hdr_t *h, const void *body)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = cn_wire_pack_typed(&sb, h, body, 0);
    if (rc == 0)
        rc = stream_write(s, h, sb.data, sb.size, 0, NULL);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Whether a message of this type is a callee's reply to its caller. */
static int is_reply_type(uint64_t type)
{
    return type == CN_MSG_STARTED || type == CN_MSG_RETURN || type == CN_MSG_ERROR;
}

/* Tells `to` that its message (cid, orig_type) could not be delivered.
 * A DEAD for this very actor completes the local call directly. */
/*
 * A DEAD for us: `cid` and `orig_type` are the failed message's, as we
 * sent it. Two numberings meet here and must not be confused: our own
 * calls' cids, and the cids our callers gave the tasks we run.
 *   - a reply we sent as a callee (STARTED, RETURN, ERROR; plain cid in
 *     the caller's numbering): the caller is gone, and nothing here waits;
 *   - a stream message we sent as a callee (the callee bit set): the task
 *     (orig_dst, cid) has lost its caller and is cancelled;
 *   - anything else (CMD, CANCEL, our own stream messages): it was our
 *     call or context, which ends with CN_EDEAD.
 */
static void on_dead(uint64_t cid, uint32_t orig_type, uint32_t orig_dst, const char *reason)
{
    if (is_reply_type(orig_type)) {
        cn_log(CN_LOG_DEBUG, "%s for call %llu of actor %u was not delivered: %s",
               cn_wire_type_name(orig_type), (unsigned long long)cid, orig_dst, reason);
        return;
    }
    if (!(cid & CN__CID_FROM_CALLEE)) {
        cn__call_deliver(cid, NULL, CN_EDEAD, reason);
        return;
    }
    char why[CN__REASON_MAX];
    snprintf(why, sizeof(why), "its caller is unreachable: %s", reason);
    if (cn__task_cancel(orig_dst, cid & ~CN__CID_FROM_CALLEE, why) == CN_ENOENT)
        cn_log(CN_LOG_DEBUG, "DEAD for context %llu of actor %u, which has ended here: %s",
               (unsigned long long)(cid & ~CN__CID_FROM_CALLEE), orig_dst, reason);
}

static void send_dead(uint32_t to, uint64_t cid, uint32_t orig_type, uint32_t orig_dst,
                      const char *reason)
{
    if (to == cn__rt.id) {
        on_dead(cid, orig_type, orig_dst, reason);
        return;
    }
    cn_wire_hdr_t h = {CN_MSG_DEAD, to, cn__rt.id, cid};
    cn_wire_dead_t d = {cn__wstr(reason), orig_type, orig_dst};
    send_typed(&h, &d, NULL); /* if `to` is unreachable too, nobody waits */
}

/* Whether an undeliverable message of this type deserves a DEAD reply:
 * never for DEAD itself (no ping-pong) nor for fire-and-forget traffic. */
static int wants_dead_reply(uint32_t type)
{
    switch (type) {
    case CN_MSG_DEAD:
    case CN_MSG_LOG:
    case CN_MSG_ADD_ROUTE:
    case CN_MSG_DEL_ROUTE:
    case CN_MSG_HELLO:
    case CN_MSG_SHUTDOWN:
        return 0;
    default:
        return 1;
    }
}

void cn__log_send(int level, uint64_t time_us, const char *path, const char *msg, size_t len)
{
    cn_wire_hdr_t h = {CN_MSG_LOG, CN_ROOT_ID, cn__rt.id, 0};
    cn_wire_log_t l = {(uint64_t)level, time_us, cn__wstr(path), {msg, (uint32_t)len}};
    if (send_typed(&h, &l, NULL) < 0) /* no way up: keep it visible anyway */
        fprintf(stderr, "%s: %.*s\n", path, (int)len, msg);
}

/* ===========================================================================
 * Losing a stream
 */

static void describe_exit(cn__stream_t *s, char *out, size_t cap)
{
    if (!s->reaped)
        snprintf(out, cap, "actor %u (%s) disconnected", s->peer, s->name);
    else
        say_how_it_ended(s->peer, s->name, s->status, s->cancelled, out, cap);
}

static void begin_shutdown(const char *why, int status);
static void maybe_finish_shutdown(void);

static void send_del_route(const cn_route_t *r, void *arg)
{
    const char *reason = arg;
    if (cn__rt.parent == NULL || cn__rt.parent->closed)
        return;
    cn_wire_hdr_t h = {CN_MSG_DEL_ROUTE, CN_ROOT_ID, cn__rt.id, 0};
    cn_wire_del_route_t d = {r->id, cn__wstr(reason)};
    write_typed(cn__rt.parent, &h, &d);
}

/* ===========================================================================
 * Orphaned descendants
 *
 * Every actor is a child subreaper. When a child is killed, its own
 * children die with it (PR_SET_PDEATHSIG), but are handed to the nearest
 * living ancestor that reaps orphans: without this that is init, which in
 * a container is often the program itself, or a shim that never reaps, and
 * they stay zombies. So they come to us instead, and we reap exactly the
 * pids our routes say were in the lost subtree (ADD_ROUTE carries each
 * actor's pid): a process the program forked itself is never reaped
 * behind its back. Broker only.
 */

typedef struct adoptee {
    pid_t pid;
    uint64_t until_ms;
} adoptee_t;

static struct {
    adoptee_t *v;
    size_t n, cap;
    uv_timer_t timer; /* retries: a pid is ours only once its parent has exited */
} adopt;

static void reap_children(void);
static int unreaped_lost_child(void);

static void reap_adoptees(void)
{
    uint64_t now = uv_now(&cn__rt.loop);
    size_t keep = 0;
    for (size_t i = 0; i < adopt.n; i++) {
        adoptee_t a = adopt.v[i];
        pid_t r = waitpid(a.pid, NULL, WNOHANG);
        if (r == a.pid)
            continue;
        if (now >= a.until_ms) {
            cn_log(CN_LOG_DEBUG, "orphaned pid %d was not ours to reap within %d ms", (int)a.pid,
                   ADOPT_WAIT_MS);
            continue;
        }
        adopt.v[keep++] = a;
    }
    adopt.n = keep;
}

/* Every 100 ms while a lost child or an orphan is still to be reaped:
 * SIGCHLD is not queued, and a sanitizer's runtime may hold one back, so
 * reaping must not hang on each death being signalled (seen under TSan:
 * a killed actor and its orphans left zombies for over 20 s). */
static void on_adopt_timer(uv_timer_t *t)
{
    reap_children();
    reap_adoptees();
    if (adopt.n == 0 && !unreaped_lost_child())
        uv_timer_stop(t);
}

static void reap_poll_start(void)
{
    if (!uv_is_active((uv_handle_t *)&adopt.timer))
        uv_timer_start(&adopt.timer, on_adopt_timer, 100, 100);
}

static void adopt_pid(int pid)
{
    if (adopt.n == adopt.cap) {
        size_t ncap = adopt.cap ? 2 * adopt.cap : 16;
        adoptee_t *v = realloc(adopt.v, ncap * sizeof(*v));
        if (v == NULL)
            return; /* init may reap it yet */
        adopt.v = v;
        adopt.cap = ncap;
    }
    adopt.v[adopt.n++] = (adoptee_t){pid, uv_now(&cn__rt.loop) + ADOPT_WAIT_MS};
    reap_poll_start();
}

static void grants_drop(uint32_t to);

/* What a lost child took with it: the reason its routes go with, and
 * its descendants, named for the log. */
struct lost {
    const char *reason;
    char subtree[256];
    size_t n;
};

/* cn_route_del_via callback for a lost child: DEL_ROUTE up, and the
 * child's descendants (not the child: its stream reaps it) adopted and
 * listed. */
static void route_lost(const cn_route_t *r, void *arg)
{
    struct lost *l = arg;
    send_del_route(r, (void *)l->reason);
    grants_drop(r->id); /* under rt.mu, as cn_route_del_via calls us */
    if (r->parent == cn__rt.id)
        return;
    if (r->pid > 0)
        adopt_pid(r->pid);
    size_t used = strlen(l->subtree);
    if (l->n++ < 4)
        snprintf(l->subtree + used, sizeof(l->subtree) - used, "%s%s (id %u)", used ? ", " : "",
                 r->name[0] ? r->name : "?", r->id);
    else if (l->n == 5)
        snprintf(l->subtree + used, sizeof(l->subtree) - used, ", ...");
}

struct gone {
    cn__cmap_t ids;
    uint32_t via;
};

/* cn_route_foreach callback: collects the ids routed through one stream. */
static void collect_id(const cn_route_t *r, void *arg)
{
    struct gone *g = arg;
    if (r->via == g->via)
        cn__cmap_put(&g->ids, r->id, 0, (void *)1, NULL);
}

/*
 * The other half of structured cancellation: calls and contexts that actors
 * behind the lost stream s had started elsewhere must not run on as
 * orphans. Each CMD this actor forwarded from behind s is still recorded in
 * flight on the stream it went into, with its callee; that callee gets
 * CANCEL on the dead caller's behalf. Tasks this actor serves for them are
 * cancelled here. Runs before the routes through s are dropped, so that the
 * next hop, which has not yet seen our DEL_ROUTE, still accepts those
 * CANCELs as coming from behind us.
 */
static void cancel_orphans(cn__stream_t *lost, const char *reason)
{
    typedef struct orphan {
        cn__stream_t *via;
        uint32_t caller, callee;
        uint64_t cid;
    } orphan_t;
    orphan_t *list = NULL;
    size_t n = 0, cap = 0;
    struct gone g = {.via = lost->via}; /* ids behind the lost stream */
    cn__cmap_t *gone = &g.ids;
    cn__cmap_init(gone);
    cn__cmap_put(gone, lost->peer, 0, (void *)1, NULL);

    cn__lock(&cn__rt.mu);
    cn_route_foreach(&cn__rt.routes, collect_id, &g);
    for (size_t k = 0; k < cn__rt.nstreams; k++) {
        cn__stream_t *o = cn__rt.streams[k];
        if (o == NULL || o == lost)
            continue;
        cn__lock(&o->wmu);
        for (size_t i = 0; i < o->inflight.cap; i++) {
            const cn__cmap_ent_t *e = &o->inflight.e[i];
            if (!e->used || cn__cmap_get(gone, e->k1, 0) == NULL)
                continue;
            if (n == cap) { /* cap changes only once realloc has succeeded */
                size_t ncap = cap ? 2 * cap : 16;
                orphan_t *l = realloc(list, ncap * sizeof(*l));
                if (l == NULL)
                    break;
                list = l;
                cap = ncap;
            }
            stream_ref(o);
            list[n++] = (orphan_t){o, e->k1, (uint32_t)((uintptr_t)e->val - 1), e->k2};
        }
        cn__unlock(&o->wmu);
    }
    /* Tasks we run ourselves for callers that are gone. */
    uint32_t *tcaller = NULL;
    uint64_t *tcid = NULL;
    size_t nt = 0;
    if (cn__rt.tasks.count) {
        tcaller = malloc(cn__rt.tasks.count * sizeof(*tcaller));
        tcid = malloc(cn__rt.tasks.count * sizeof(*tcid));
        for (size_t i = 0; tcaller && tcid && i < cn__rt.tasks.cap; i++)
            if (cn__rt.tasks.e[i].used && cn__cmap_get(gone, cn__rt.tasks.e[i].k1, 0)) {
                tcaller[nt] = cn__rt.tasks.e[i].k1;
                tcid[nt++] = cn__rt.tasks.e[i].k2;
            }
    }
    cn__unlock(&cn__rt.mu);

    char why[CN__REASON_MAX];
    snprintf(why, sizeof(why), "its caller is gone: %s", reason);
    for (size_t i = 0; i < n; i++) {
        cn_wire_hdr_t h = {CN_MSG_CANCEL, list[i].callee, list[i].caller, list[i].cid};
        cn_wire_cancel_t b = {cn__wstr(why)};
        write_typed(list[i].via, &h, &b);
        stream_unref(list[i].via);
    }
    for (size_t i = 0; i < nt; i++)
        cn__task_cancel(tcaller[i], tcid[i], why);
    if (n + nt > 0) { /* which, for the first few: a log line that names none helps nobody */
        char which[256] = "";
        for (size_t i = 0; i < n + nt && i < 3; i++) {
            size_t w = strlen(which);
            snprintf(which + w, sizeof(which) - w, "%s%u's call %llu to %u%s", i ? ", actor " : "",
                     i < n ? list[i].caller : tcaller[i - n],
                     (unsigned long long)(i < n ? list[i].cid : tcid[i - n]),
                     i < n ? list[i].callee : cn__rt.id, i < n ? "" : " (here)");
        }
        cn_log(CN_LOG_CANCEL, "cancelled %zu call(s) whose caller is gone (actor %s%s): %s",
               n + nt, which, n + nt > 3 ? ", ..." : "", reason);
    }
    free(list);
    free(tcaller);
    free(tcid);
    cn__cmap_fini(gone);
}

/* Under rt.mu, for a finished and reaped child: out of the stream table
 * and into the ring of exited children, in one step, so that no call
 * finds it in neither. Once per child. */
static void retire_child(cn__stream_t *s)
{
    if (cn__rt.streams[s->via] != s)
        return;
    cn__rt.streams[s->via] = NULL;
    cn__rt.children--;
    cn__exited_t *x = &cn__rt.exited[cn__rt.nexited++ % CN__EXITED_KEEP];
    *x = (cn__exited_t){s->peer, (int)s->pid, s->status, cn__now_us(), "", ""};
    snprintf(x->name, sizeof(x->name), "%s", s->name);
    snprintf(x->cancelled, sizeof(x->cancelled), "%s", s->cancelled);
}

/* The log line for a child's end: a warning unless it greeted and exited
 * with status 0, and for one that never greeted, that its cn_spawn
 * failed. Said again once its exit status arrives if it came too late for
 * the first (then `reason` is how it exited). */
static void say_child_end(cn__stream_t *s, const char *reason)
{
    if (s->unstarted) /* cancelled while starting: its cn_spawn said CN_ECANCELED */
        cn_log(CN_LOG_DEBUG, "%s, cancelled before it greeted its parent", reason);
    else if (s->peer != 0)
        cn_log(s->reaped && s->status == 0 && s->up ? CN_LOG_DEBUG : CN_LOG_WARN, "%s%s", reason,
               s->up ? "" : " before it greeted its parent (its cn_spawn failed)");
}

/* Every waiter behind s learns why it is gone: routes through s are
 * dropped (DEL_ROUTE goes up for each), and each call in flight through s
 * is answered with DEAD. Broker only; runs once per stream. */
static void stream_finish(cn__stream_t *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    char reason[CN__REASON_MAX];
    if (s->is_parent)
        snprintf(reason, sizeof(reason), "%s: the parent disconnected", cn__rt.path);
    else if (s->why[0])
        snprintf(reason, sizeof(reason), "actor %u (%s) was dropped: %s", s->peer, s->name, s->why);
    else
        describe_exit(s, reason, sizeof(reason));

    if (!s->is_parent)
        cancel_orphans(s, reason); /* before DEL_ROUTE: see there */

    struct gone g = {{0}, s->via};
    cn__cmap_init(&g.ids);
    cn__cmap_t inflight;
    cn__lock(&cn__rt.mu);
    if (cn__rt.is_root)
        cn_route_foreach(&cn__rt.routes, collect_id, &g);
    struct lost lost = {reason, "", 0};
    cn_route_del_via(&cn__rt.routes, s->via, route_lost, &lost);
    if (!s->is_parent && s->reaped) /* a call that finds no route finds how it ended */
        retire_child(s);
    if (cn__rt.parent == s)
        cn__rt.parent = NULL;
    cn__lock(&s->wmu);
    s->closed = 1;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
    inflight = s->inflight;
    cn__cmap_init(&s->inflight);
    cn__unlock(&s->wmu);
    cn__unlock(&cn__rt.mu);

    for (size_t i = 0; i < inflight.cap; i++)
        if (inflight.e[i].used)
            send_dead(inflight.e[i].k1, inflight.e[i].k2, CN_MSG_CMD,
                      (uint32_t)((uintptr_t)inflight.e[i].val - 1), reason);
    cn__cmap_fini(&inflight);
    cn__latch_close(&s->hello, CN_EDEAD);
    for (size_t i = 0; i < g.ids.cap; i++) /* the root: within this turn, not 100 ms */
        if (g.ids.e[i].used)
            cn__lock_actor_gone(g.ids.e[i].k1, reason);
    cn__cmap_fini(&g.ids);

    if (s->is_parent) {
        cn__call_fail_all(CN_EDEAD, reason);
        begin_shutdown(reason, 0);
    } else {
        say_child_end(s, reason);
        if (lost.n > 0) /* they went with it, each unheard: say which */
            cn_log(CN_LOG_WARN, "%s (%s) took %zu actor%s of its subtree with it: %s", s->name,
                   s->path[0] ? s->path : "?", lost.n, lost.n == 1 ? "" : "s", lost.subtree);
    }
}

static void on_handle_closed(uv_handle_t *h);

/* The last step for a child: finished and reaped. Broker only. */
static void child_done(cn__stream_t *s)
{
    if (!s->finished || !s->reaped || s->is_parent)
        return;
    /* Out of the table before anyone is told, so a cn_cancel that wakes
     * here and asks again finds the child gone. */
    cn__lock(&cn__rt.mu);
    retire_child(s);
    cn__unlock(&cn__rt.mu);
    char how[CN__REASON_MAX];
    describe_exit(s, how, sizeof(how));
    cn__event("exit", 0, s->peer, s->name, how);
    /* Its last words may still sit in the pipes: read them, then close
     * everything; on_handle_closed tells cn_cancel once all is released. */
    for (int i = 0; i < 2; i++)
        if (s->out[i].data == s && !uv_is_closing((uv_handle_t *)&s->out[i])) {
            drain_output(s, i);
            uv_close((uv_handle_t *)&s->out[i], on_handle_closed);
        }
    for (uv_timer_t *t = &s->timer; t <= &s->reaper; t++)
        if (!uv_is_closing((uv_handle_t *)t))
            uv_close((uv_handle_t *)t, on_handle_closed);
    maybe_finish_shutdown();
}

static void on_lost_timer(uv_timer_t *t);
static void on_reaped_link_timer(uv_timer_t *t);
static void on_reap_timer(uv_timer_t *t);

/* The read side of s is over (EOF, an error, or a bad frame): stop
 * reading and, for a child, give its exit status a moment to arrive so the
 * DEAD replies can say how it died. Broker only. */
static void stream_lost(cn__stream_t *s, const char *why)
{
    if (s->lost)
        return;
    s->lost = 1;
    if (why)
        snprintf(s->why, sizeof(s->why), "%s", why);
    if (!s->is_parent) /* a gdb on it holds its exit back from us: it goes */
        cn__gdb_actor_gone(s->peer);
    if (s->polling && !uv_is_closing((uv_handle_t *)&s->poll))
        uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    if (s->is_parent || s->reaped) {
        stream_finish(s);
        child_done(s);
        return;
    }
    /* The child sees EOF now and should exit on its own; one we dropped
     * (bad frame, wrong version) gets SIGTERM, then SIGKILL, if it stays. */
    shutdown(s->fd, SHUT_RDWR);
    if (why && s->reap_step == 0) {
        s->reap_step = 1;
        uv_timer_start(&s->reaper, on_reap_timer, REAP_SOFT_MS, 0);
    }
    uv_timer_start(&s->timer, on_lost_timer, LOST_WAIT_MS, 0);
    reap_poll_start();
}

static void on_lost_timer(uv_timer_t *t)
{
    cn__stream_t *s = t->data;
    stream_finish(s);
    child_done(s);
}

static void on_reaped_link_timer(uv_timer_t *t)
{
    cn__stream_t *s = t->data;
    if (!s->lost)
        stream_lost(s, NULL);
}

/* ===========================================================================
 * Children's output
 */

static void on_out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h, (void)suggested;
    *buf = uv_buf_init(cn__rt.read_buf, CN__READ_BUF);
}

static void emit_lines(cn__stream_t *s, int which, const char *p, size_t n, int flush)
{
    static const int levels[2] = {CN_LOG_INFO, CN_LOG_WARN};
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c != '\n') {
            if (s->line_len[which] < 4096) {
                if (s->line[which] == NULL && (s->line[which] = malloc(4097)) == NULL)
                    continue;
                s->line[which][s->line_len[which]++] = c;
            }
            continue;
        }
        cn__log_emit(levels[which], s->path, s->line[which] ? s->line[which] : "",
                     s->line_len[which]);
        s->line_len[which] = 0;
    }
    if (flush && s->line_len[which] > 0) {
        cn__log_emit(levels[which], s->path, s->line[which], s->line_len[which]);
        s->line_len[which] = 0;
    }
}

/* Reads what is left in one of a dead child's output pipes, without
 * waiting for a writer that may never close it (a stray grandchild). */
static void drain_output(cn__stream_t *s, int which)
{
    uv_os_fd_t fd;
    char buf[4096];
    if (uv_fileno((uv_handle_t *)&s->out[which], &fd) == 0) {
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            emit_lines(s, which, buf, (size_t)n, 0);
    }
    emit_lines(s, which, NULL, 0, 1);
}

static void on_out_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    cn__stream_t *s = h->data;
    int which = (uv_pipe_t *)h == &s->out[1];
    if (n > 0) {
        emit_lines(s, which, buf->base, (size_t)n, 0);
    } else if (n < 0) {
        emit_lines(s, which, NULL, 0, 1);
        uv_close((uv_handle_t *)h, on_handle_closed);
    }
}

/* ===========================================================================
 * Walking the stream table (broker only)
 *
 * Slots are added by any thread under rt.mu and cleared only by the broker,
 * and a stream is freed only by the broker, so a stream the broker reads
 * here stays valid until its callback returns.
 */

static size_t stream_slots(void)
{
    cn__lock(&cn__rt.mu);
    size_t n = cn__rt.nstreams;
    cn__unlock(&cn__rt.mu);
    return n;
}

static void stream_start(cn__stream_t *s);

/* The stream in slot i, started: one another thread registered (cn_spawn)
 * has no handles until the broker starts it, and a walk that met it first
 * (its SIGCHLD, if it died at once; a cancel) used them uninitialised. */
static cn__stream_t *stream_slot(size_t i)
{
    cn__lock(&cn__rt.mu);
    cn__stream_t *s = cn__rt.streams[i];
    cn__unlock(&cn__rt.mu);
    if (s && !s->polling && !s->lost)
        stream_start(s);
    return s;
}

/* ===========================================================================
 * Reaping
 */

static void reap_children(void)
{
    for (size_t i = 0, n = stream_slots(); i < n; i++) {
        cn__stream_t *s = stream_slot(i);
        if (s == NULL || s->is_parent || s->reaped || s->pid <= 0)
            continue;
        int st;
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r != s->pid)
            continue;
        s->reaped = 1;
        s->status = st;
        uv_timer_stop(&s->reaper);
        if (s->lost && !s->finished) {
            uv_timer_stop(&s->timer);
            stream_finish(s);
        } else if (s->finished && !s->why[0]) {
            /* Its end was told as "disconnected" LOST_WAIT_MS after it
             * hung up (a slow exit, a loaded host): now say how. */
            char how[CN__REASON_MAX];
            describe_exit(s, how, sizeof(how));
            say_child_end(s, how);
        } else if (!s->lost) {
            /* Its link is still open: a process it started holds its end
             * (a script that ran it, a program it forked). What it sent
             * is read first, then the link is dropped. */
            uv_timer_start(&s->timer, on_reaped_link_timer, REAPED_LINK_MS, 0);
        }
        child_done(s);
    }
}

static int unreaped_lost_child(void)
{
    for (size_t i = 0, n = stream_slots(); i < n; i++) {
        cn__stream_t *s = stream_slot(i);
        if (s && s->lost && !s->is_parent && !s->reaped && s->pid > 0)
            return 1;
    }
    return 0;
}

static void on_sigchld(uv_signal_t *h, int sig)
{
    (void)h, (void)sig;
    reap_children();
    reap_adoptees();
    cn__gdb_on_sigchld();
}

/* Soft then hard: SHUTDOWN, then SIGTERM, then SIGKILL. */
static void on_reap_timer(uv_timer_t *t)
{
    cn__stream_t *s = t->data;
    if (s->reaped)
        return;
    if (exempt_from_cancel(s) && s->reap_step < 3) {
        if (!s->dbg_waited)
            cn_log(CN_LOG_CANCEL, "actor %u (%s): waiting for its debugger session before "
                   "killing it", s->peer, s->name);
        s->dbg_waited = 1;
        uv_timer_start(&s->reaper, on_reap_timer, REAP_SOFT_MS, 0);
        return;
    }
    if (s->reap_step == 1) {
        cn_log(CN_LOG_CANCEL, "actor %u (%s) ignored SHUTDOWN for %d ms: SIGTERM", s->peer, s->name,
               REAP_SOFT_MS);
        kill(s->pid, SIGTERM);
        s->reap_step = 2;
        uv_timer_start(&s->reaper, on_reap_timer, REAP_HARD_MS, 0);
    } else if (s->reap_step == 2) {
        cn_log(CN_LOG_CANCEL, "actor %u (%s) survived SIGTERM: SIGKILL", s->peer, s->name);
        kill(s->pid, SIGKILL);
        s->reap_step = 3;
    }
}

/*
 * The debugger's hook: an actor that holds or waits for the console lock
 * must not be killed under the user's feet (DESIGN.md, "Debugger"), nor
 * any ancestor of one. Every LOCK_REQ and LOCK_RELEASE from below passes
 * through here on its way to the root, so each child stream knows which
 * actors behind it are in the debugger (s->dbg), as tractor's parents
 * wait for a child's debugger session before a hard kill.
 */
static int exempt_from_cancel(const cn__stream_t *s)
{
    return s->dbg.count > 0;
}

static void track_debugger(cn__stream_t *s, const cn_wire_hdr_t *h)
{
    if (s->is_parent)
        return;
    if (h->type == CN_MSG_LOCK_REQ)
        cn__cmap_put(&s->dbg, h->src, 0, (void *)1, NULL);
    else if (h->type == CN_MSG_LOCK_RELEASE && h->dst == CN_ROOT_ID)
        cn__cmap_del(&s->dbg, h->src, 0);
}

/* Starts cancelling child s, `why` said with its exit. Broker only. */
static void cancel_child(cn__stream_t *s, const char *why)
{
    if (s->reaped || s->reap_step > 0 || s->pid <= 0)
        return;
    snprintf(s->cancelled, sizeof(s->cancelled), "%s", why);
    s->reap_step = 1;
    if (!s->closed && s->up) {
        cn_wire_hdr_t h = {CN_MSG_SHUTDOWN, s->peer, cn__rt.id, 0};
        cn_wire_shutdown_t b = {cn__wstr(why)}; /* its calls say who asked */
        write_typed(s, &h, &b);
    } else {
        if (!s->up && !s->closed) {
            /* Still starting: its program's own start-up has nothing to
             * save, and its cn_spawn returns CN_ECANCELED now rather than
             * when it is gone (test_runtime's slow starter). */
            s->unstarted = 1;
            cn__latch_close(&s->hello, CN_ECANCELED);
        }
        kill(s->pid, SIGTERM);
        s->reap_step = 2;
    }
    /* Two delays that happen to be equal: NOLINTNEXTLINE(bugprone-branch-clone) */
    uv_timer_start(&s->reaper, on_reap_timer, s->reap_step == 1 ? REAP_SOFT_MS : REAP_HARD_MS, 0);
}

/* ===========================================================================
 * Shutdown
 */

int cn__cancel_child_id(uint32_t id, const char *why)
{
    for (size_t i = 0, n = stream_slots(); i < n; i++) {
        cn__stream_t *s = stream_slot(i);
        if (s && !s->is_parent && s->peer == id && !s->reaped && !s->lost) {
            cn_log(CN_LOG_CANCEL, "cancelling %s: %s", s->path[0] ? s->path : s->name, why);
            cancel_child(s, why);
            return 0;
        }
    }
    return CN_ENOENT;
}

pid_t cn__child_pid(uint32_t id)
{
    for (size_t i = 0, n = stream_slots(); i < n; i++) {
        cn__stream_t *s = stream_slot(i);
        if (s && !s->is_parent && s->peer == id && s->up && !s->reaped && !s->lost)
            return s->pid;
    }
    return -1;
}

/*
 * The event batches (registry.c has the why): a clock sends the queue
 * every CN__EVENTS_MS while events keep coming, and stops at a tick that
 * finds nothing queued; the next event then wakes the broker, which sends
 * it at once and starts the clock again (ev_wake).
 *
 * The clock is a cn__clock_t (clock.c), not a libuv timer, so that the
 * broker's waits stay untimed while the feed runs.
 */
static void on_ev_tick(cn__clock_t *c)
{
    int busy = cn__events_queued();
    if (busy)
        cn__events_flush();
    /* The root's subscribers get this tick's events, its own and its
     * children's, in one write each (attach.c, fan_out_one). */
    if (cn__rt.is_root && cn__attach_events_tick())
        busy = 1;
    if (!busy && cn__events_sleep())
        cn__clock_set(c, 0);
}

/*
 * Broker, on every wake-up while the clock is stopped: the first events
 * after a quiet spell go out now and start the clock. With nothing
 * queued, evq.asleep is set again, because the event that woke us cleared
 * it: the broker may have sent that event early, as a backlog, in the
 * same turn (on_read), and with the flag left clear the events that
 * followed would wait for a wake-up no one sends (test_context,
 * test_a_burst_after_quiet_reaches_the_feed_whole).
 */
static void ev_wake(void)
{
    if (!atomic_load_explicit(&cn__rt.events_on, memory_order_relaxed) || cn__rt.ev_clock.on)
        return;
    if (cn__events_queued() || !cn__events_sleep()) {
        cn__events_flush();
        cn__clock_set(&cn__rt.ev_clock, CN__EVENTS_MS);
    }
}

void cn__events_clock_on(void)
{
    if (!atomic_load_explicit(&cn__rt.events_on, memory_order_relaxed) || cn__rt.ev_clock.on)
        return;
    cn__events_awake();
    cn__clock_set(&cn__rt.ev_clock, CN__EVENTS_MS);
}

void cn__events_enable(unsigned classes)
{
    atomic_store(&cn__rt.events_on, classes);
    if (classes && !cn__rt.ev_clock.on) {
        cn__clock_set(&cn__rt.ev_clock, CN__EVENTS_MS);
    } else if (!classes) {
        cn__clock_set(&cn__rt.ev_clock, 0);
        cn__events_awake();
        cn__events_flush(); /* the last ones */
    }
}

void cn__shutdown_after_debug(const char *why)
{
    cn_log(CN_LOG_CANCEL, "shutting down once the debugger session ends: %s", why);
    snprintf(cn__rt.shutdown_why, sizeof(cn__rt.shutdown_why), "%s", why);
    cn__rt.shutdown_after_debug = 1;
    cn__wake();
}

int cn__shutdown_coming(void)
{
    if (cn__rt.shutdown_after_debug)
        return 1;
    cn__lock(&cn__rt.mu);
    int yes = cn__rt.shutting_down;
    cn__unlock(&cn__rt.mu);
    return yes;
}

void cn__cancel_tree(const char *why)
{
    cn_log(CN_LOG_WARN, "cancelling the tree: %s", why);
    cn__rt.op_cancel = 1;
    cn__call_fail_all(CN_ECANCELED, "the tree is being cancelled");
    begin_shutdown(why, 128 + SIGTERM); /* as if terminated, but cleanly */
}

static void begin_shutdown(const char *why, int status)
{
    cn__lock(&cn__rt.mu);
    int already = cn__rt.shutting_down;
    cn__rt.shutting_down = 1;
    if (!already)
        cn__rt.exit_status = status;
    cn__unlock(&cn__rt.mu);
    if (already) { /* e.g. main returned during a SIGINT cancel */
        maybe_finish_shutdown();
        return;
    }
    cn_log(CN_LOG_CANCEL, "shutting down: %s", why);
    cn__latch_close(&cn__rt.done, CN_ECANCELED); /* wakes cn_sleep */
    /* The entry (the root's main), the program's threads and the calls it
     * serves are cancelled with the actor: the calls and contexts they
     * have open end with CN_ECANCELED, and new ones fail so, while the
     * entry and those calls have their grace to clean up (ENTRY_GRACE_MS).
     * The root's too: a call its own thread made to itself waited on. */
    char reason[CN__REASON_MAX];
    snprintf(reason, sizeof(reason), "this actor is shutting down: %s", why);
    atomic_store(&cn__rt.cancelled, 1);
    cn__call_fail_all(CN_ECANCELED, reason);
    cn__task_cancel_all(reason); /* and the calls it serves, which then end */
    for (size_t i = 0, n = stream_slots(); i < n; i++) {
        cn__stream_t *s = stream_slot(i);
        if (s && !s->is_parent)
            cancel_child(s, "cancelled with its parent");
    }
    maybe_finish_shutdown();
}

static void flush_parent_blocking(int ms)
{
    cn__stream_t *p = cn__rt.parent;
    if (p == NULL)
        return;
    for (int i = 0; i < ms; i++) {
        if (stream_flush(p))
            return;
        usleep(1000);
    }
}

static void close_leftover(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->data ? on_handle_closed : NULL);
}

static void on_sigint_grace(uv_timer_t *t)
{
    (void)t;
    cn_log(CN_LOG_CANCEL, "the tree is cancelled and main has not returned: exiting");
    cn__attach_stop();
    cn__tty_reset();
    cn__lock(&cn__rt.mu);
    int status = cn__rt.exit_status;
    cn__unlock(&cn__rt.mu);
    syscall(SYS_exit_group, status);
}

/* Task threads may be stuck in user code; nothing waits for them, but
 * the log says so: an exit status of 0 alone hides that a task was cut
 * off. */
static void say_leftover_tasks(const char *doing)
{
    char names[128];
    size_t left = cn__task_leftover(names, sizeof(names));
    if (left)
        cn_log(CN_LOG_WARN, "%s with %zu call(s) still running (%s%s): cancelled, %s never "
               "reached a cancellation point", doing, left, names, left > 4 ? ", ..." : "",
               left == 1 ? "it" : "they");
}

/* A child's entry, or a call it runs, did not return within ENTRY_GRACE_MS
 * of SHUTDOWN (the root: a call it serves, after main returned). */
static void on_entry_grace(uv_timer_t *t)
{
    (void)t;
    cn__lock(&cn__rt.mu);
    int main_done = cn__rt.main_done;
    cn__unlock(&cn__rt.mu);
    if (!main_done) /* its calls left running are named as it exits */
        cn_log(CN_LOG_CANCEL, "the entry has not returned %d ms after SHUTDOWN: exiting without it",
               ENTRY_GRACE_MS);
    cn__rt.entry_grace_over = 1;
    maybe_finish_shutdown();
}

/* SIGINT at the root: the first cancels the tree gracefully, a second
 * within 2 s kills it. While an actor holds the debugger's console, the
 * first only interrupts its REPL: Ctrl-C at a debugger must not cancel the
 * tree being debugged (docs/debugger.md). */
static void on_sigint(uv_signal_t *h, int sig)
{
    (void)h, (void)sig;
    uint64_t now = uv_now(&cn__rt.loop);
    if (cn__rt.sigint_at && now - cn__rt.sigint_at <= 2000) {
        cn_log(CN_LOG_ERROR, "second SIGINT: killing the tree");
        cn__lock(&cn__rt.mu);
        for (size_t i = 0; i < cn__rt.nstreams; i++) {
            cn__stream_t *s = cn__rt.streams[i];
            if (s && !s->is_parent && s->pid > 0 && !s->reaped)
                kill(s->pid, SIGKILL); /* grandchildren follow: PDEATHSIG */
        }
        cn__unlock(&cn__rt.mu);
        cn__attach_stop();
        cn__tty_reset();
        syscall(SYS_exit_group, 128 + SIGINT);
    }
    cn__rt.sigint_at = now ? now : 1;
    if (cn__lock_interrupt()) {
        cn_log(CN_LOG_WARN, "SIGINT: an actor has the debugger's console, so the tree is not "
                            "cancelled (Ctrl-C again within 2 s kills it)");
        return;
    }
    cn_log(CN_LOG_WARN, "SIGINT: cancelling the tree (Ctrl-C again within 2 s to kill it)");
    cn__call_fail_all(CN_ECANCELED, "the tree is being cancelled (SIGINT)");
    begin_shutdown("SIGINT", 128 + SIGINT);
}

static void maybe_finish_shutdown(void)
{
    cn__lock(&cn__rt.mu);
    int done = cn__rt.shutting_down && cn__rt.children == 0;
    cn__unlock(&cn__rt.mu);
    if (!done)
        return;
    if (!cn__rt.is_root) {
        /* The entry has seen CN_ECANCELED at its blocking call: it gets
         * ENTRY_GRACE_MS to run its own cleanup and return its status
         * (less than the parent waits before SIGTERM). A serve-only
         * child's main thread returns at once. */
        cn__lock(&cn__rt.mu);
        int main_done = cn__rt.main_done;
        int status = cn__rt.exit_status;
        size_t tasks = cn__rt.tasks.count;
        cn__unlock(&cn__rt.mu);
        /* Its cancelled calls get the same grace, to see CN_ECANCELED and
         * clean up: structured cancellation means their code runs to its
         * end, not that the process ends under it. */
        if ((!main_done || tasks) && !cn__rt.entry_grace_over) {
            /* A child takes no SIGINT: the root's grace timer is free. */
            if (!uv_is_active((uv_handle_t *)&cn__rt.sigint_timer))
                uv_timer_start(&cn__rt.sigint_timer, on_entry_grace, ENTRY_GRACE_MS, 0);
            return;
        }
        /* exit_group, not _exit: a sanitizer's _exit may try to finalise
         * first and stall behind task threads stuck in user code. */
        say_leftover_tasks("exiting");
        flush_parent_blocking(200);
        syscall(SYS_exit_group, status);
    }
    cn__lock(&cn__rt.mu);
    int main_done = cn__rt.main_done;
    size_t tasks = cn__rt.tasks.count;
    cn__unlock(&cn__rt.mu);
    if ((cn__rt.sigint_at || cn__rt.op_cancel) && !main_done) {
        /* Ctrl-C or an operator cancelled the tree under a main that is
         * still running: give it a second to return by itself, then exit
         * with the status the cancel set. */
        if (!uv_is_active((uv_handle_t *)&cn__rt.sigint_timer))
            uv_timer_start(&cn__rt.sigint_timer, on_sigint_grace, 1000, 0);
        return;
    }
    if (tasks && !cn__rt.entry_grace_over) {
        /* The calls the root serves were cancelled too: their grace to
         * end before cn_run returns under them, counted once (this runs
         * again as children go). It replaces a Ctrl-C's second, which
         * was for a main that has now returned. */
        static int grace_started;
        if (!grace_started)
            uv_timer_start(&cn__rt.sigint_timer, on_entry_grace, ENTRY_GRACE_MS, 0);
        grace_started = 1;
        return;
    }
    say_leftover_tasks("returning from cn_run");
    /* The root returns from cn_run: close every handle so the loop ends
     * and the process is left as it was found. */
    cn__rt.stop_loop = 1;
    cn__attach_stop(); /* its handles are not streams: before the walk */
    cn__tty_reset();
    cn__gdb_stop();
    uv_walk(&cn__rt.loop, close_leftover, NULL);
}

/* ===========================================================================
 * The handshake
 */

static int version_ok(cn__stream_t *s, const cn_wire_msg_t *m)
{
    if (m->u.hello.version == CN_PROTOCOL_VERSION)
        return 1;
    char msg[CN__REASON_MAX];
    snprintf(msg, sizeof(msg), "protocol version mismatch: peer speaks %llu, this side speaks %d",
             (unsigned long long)m->u.hello.version, CN_PROTOCOL_VERSION);
    cn_wire_hdr_t h = {CN_MSG_ERROR, m->hdr.src, cn__rt.id, 0};
    cn_wire_error_t e = {
        cn__wstr(cn__rt.path), cn__wstr("hello"), cn__wstr(msg), {NULL, 0}, CN_EVERSION};
    write_typed(s, &h, &e);
    cn_log(CN_LOG_ERROR, "refused %s: %s", s->is_parent ? "the parent" : s->name, msg);
    stream_lost(s, msg);
    return 0;
}

static void on_hello(cn__stream_t *s, cn_wire_msg_t *m)
{
    if (!version_ok(s, m))
        return;
    if (s->is_parent) { /* the parent's answer: we are up */
        s->up = 1;
        uv_timer_stop(&cn__rt.hello_timer);
        cn__latch_put(&cn__rt.ready, &cn__rt.ready_node);
        return;
    }
    if (m->hdr.src != s->peer) {
        char why[CN__REASON_MAX];
        snprintf(why, sizeof(why), "actor %u (%s) greeted as actor %u", s->peer, s->name,
                 m->hdr.src);
        cn_log(CN_LOG_ERROR, "%s", why);
        stream_lost(s, why);
        return;
    }
    cn_wire_hdr_t h = {CN_MSG_HELLO, s->peer, cn__rt.id, 0};
    cn_wire_hello_t me = {CN_PROTOCOL_VERSION, cn__wstr(cn__rt.name), (uint64_t)getpid(),
                          (uint64_t)getuid()};
    write_typed(s, &h, &me);
    s->up = 1;

    cn__lock(&cn__rt.mu);
    int rc = cn_route_add(&cn__rt.routes, s->peer, cn__rt.id, s->via, s->name, strlen(s->name),
                          cn__now_us());
    if (rc == 0)
        cn_route_set_pid(&cn__rt.routes, s->peer, (int)s->pid);
    cn__stream_t *parent = cn__rt.parent;
    if (parent)
        stream_ref(parent);
    cn__unlock(&cn__rt.mu);
    if (rc < 0)
        cn_log(CN_LOG_ERROR, "cannot route to new child %u: %s", s->peer, cn_strerror(rc));
    char pid[32];
    snprintf(pid, sizeof(pid), "pid %d", (int)s->pid);
    cn__event("spawn", 0, s->peer, s->name, pid);
    if (cn__rt.is_root)
        cn__inspect_route_added(s->peer);
    if (parent) { /* ADD_ROUTE goes up, so every ancestor learns the child */
        cn_wire_hdr_t ah = {CN_MSG_ADD_ROUTE, CN_ROOT_ID, cn__rt.id, 0};
        cn_wire_add_route_t a = {s->peer, cn__rt.id, cn__wstr(s->name), (uint64_t)s->pid};
        write_typed(parent, &ah, &a);
        stream_unref(parent);
    }
    cn__latch_put(&s->hello, &s->hello_node);
}

/* ===========================================================================
 * Dispatch
 */

/* Whether m may have arrived on s: a child may speak for itself and its
 * subtree; the parent for anyone outside this actor's subtree. */
static int src_ok_hdr(cn__stream_t *s, uint32_t src)
{
    cn__lock(&cn__rt.mu);
    int ok = src_ok_locked(s, src);
    cn__unlock(&cn__rt.mu);
    return ok;
}

/* ===========================================================================
 * Id grants: which ids a child may announce
 *
 * Every actor below the root's children gets its id from a range the root
 * granted its parent (ALLOCATE_ID; the root's children get theirs from the
 * root itself, and the root announces them). The root records each grant,
 * and every actor records the grants it passes down; an ADD_ROUTE from a
 * child is taken only for an id in a range granted to the announced
 * parent, and only if that parent is behind the same stream. Otherwise a
 * child could claim an id the root will later give another actor, and take
 * its calls. A range dies with the actor it was granted to. Under rt.mu.
 */

typedef struct grant {
    uint32_t first, count, to;
} grant_t;

static struct {
    grant_t *v;
    size_t n, cap;
} grants;

static void grant_add(uint64_t first, uint64_t count, uint32_t to)
{
    if (first > UINT32_MAX || count > UINT32_MAX - first)
        return;
    if (grants.n == grants.cap) {
        size_t ncap = grants.cap ? 2 * grants.cap : 16;
        grant_t *v = realloc(grants.v, ncap * sizeof(*v));
        if (v == NULL)
            return; /* its ADD_ROUTEs will be refused, and say so */
        grants.v = v;
        grants.cap = ncap;
    }
    grants.v[grants.n++] = (grant_t){(uint32_t)first, (uint32_t)count, to};
}

static void grants_drop(uint32_t to)
{
    size_t keep = 0;
    for (size_t i = 0; i < grants.n; i++)
        if (grants.v[i].to != to)
            grants.v[keep++] = grants.v[i];
    grants.n = keep;
}

/* Whether child stream s may announce actor `id` with parent `parent`. */
static int grant_ok_locked(uint64_t id, uint64_t parent, const cn__stream_t *s)
{
    const cn_route_t *p = parent <= UINT32_MAX ? cn_route_find(&cn__rt.routes, (uint32_t)parent)
                                               : NULL;
    if (parent != s->peer && (p == NULL || p->via != s->via))
        return 0; /* its parent is not behind this stream */
    for (size_t i = 0; i < grants.n; i++)
        if (id >= grants.v[i].first && id - grants.v[i].first < grants.v[i].count)
            return grants.v[i].to == parent;
    return 0;
}

static void forward(cn__stream_t *s, cn_wire_msg_t *m)
{
    char reason[CN__REASON_MAX];
    if (m->hdr.type == CN_MSG_ALLOCATE_ID && s->is_parent) { /* a grant passing down */
        cn__lock(&cn__rt.mu);
        grant_add(m->u.allocate_id.first, m->u.allocate_id.count, m->hdr.dst);
        cn__unlock(&cn__rt.mu);
    }
    /* A message the parent sent down for an id not below us is dead here:
     * sending it back up would only bounce. */
    int rc = route_send(&m->hdr, m->frame, m->frame_len, s->via, reason);
    if (rc < 0 && wants_dead_reply(m->hdr.type))
        send_dead(m->hdr.src, m->hdr.cid, m->hdr.type, m->hdr.dst, reason);
}

static void on_route_msg(cn__stream_t *s, cn_wire_msg_t *m)
{
    if (s->is_parent) {
        cn_log(CN_LOG_WARN, "ignored %s from the parent", cn_wire_type_name(m->hdr.type));
        return;
    }
    cn__lock(&cn__rt.mu);
    if (m->hdr.type == CN_MSG_ADD_ROUTE) {
        const cn_wire_add_route_t *a = &m->u.add_route;
        int rc = CN_EINVAL, granted = grant_ok_locked(a->id, a->parent, s);
        if (a->id != 0 && a->id != cn__rt.id && a->id <= UINT32_MAX && granted)
            rc = cn_route_add(&cn__rt.routes, (uint32_t)a->id, (uint32_t)a->parent, s->via,
                              a->name.ptr, a->name.len, cn__now_us());
        if (rc == 0 && a->pid <= INT_MAX)
            cn_route_set_pid(&cn__rt.routes, (uint32_t)a->id, (int)a->pid);
        cn__unlock(&cn__rt.mu);
        if (rc < 0) {
            cn_log(CN_LOG_WARN, "refused ADD_ROUTE for %llu from actor %u (%s)%s",
                   (unsigned long long)a->id, s->peer, s->name,
                   granted ? "" : ": no id range behind it holds that id");
            return;
        }
        if (cn__rt.is_root) {
            char via[64];
            snprintf(via, sizeof(via), "via actor %u", s->peer);
            cn__event("route-add", 0, (uint32_t)a->id, NULL, via);
            cn__inspect_route_added((uint32_t)a->id);
        }
    } else {
        const cn_route_t *r = cn_route_find(&cn__rt.routes, (uint32_t)m->u.del_route.id);
        int del = r && r->via == s->via && m->u.del_route.id <= UINT32_MAX;
        if (del) {
            cn_route_del(&cn__rt.routes, (uint32_t)m->u.del_route.id);
            grants_drop((uint32_t)m->u.del_route.id);
        }
        cn__unlock(&cn__rt.mu);
        if (del)
            cn__cmap_del(&s->dbg, (uint32_t)m->u.del_route.id, 0);
        if (del && cn__rt.is_root) {
            char why[CN__REASON_MAX];
            snprintf(why, sizeof(why), "%.*s", (int)m->u.del_route.reason.len,
                     m->u.del_route.reason.ptr);
            cn__event("route-del", 0, (uint32_t)m->u.del_route.id, NULL, why);
            cn__lock_actor_gone((uint32_t)m->u.del_route.id, why);
        }
    }
    if (!cn__rt.is_root)
        route_send(&m->hdr, m->frame, m->frame_len, s->via, NULL);
}

static void on_allocate_id(cn_wire_msg_t *m)
{
    if (!cn__rt.is_root) { /* the root's answer to our request */
        cn__call_deliver(m->hdr.cid, m, 0, NULL);
        return;
    }
    uint64_t count = m->u.allocate_id.count;
    uint32_t first = 0;
    cn__lock(&cn__rt.mu);
    int rc = count == 0 || count > 65536 ? CN_EINVAL
                                         : cn_idpool_grant(&cn__rt.pool, (uint32_t)count, &first);
    if (rc == 0)
        grant_add(first, count, m->hdr.src);
    cn__unlock(&cn__rt.mu);
    cn_wire_hdr_t h = {CN_MSG_ALLOCATE_ID, m->hdr.src, cn__rt.id, m->hdr.cid};
    if (rc < 0) {
        send_dead(m->hdr.src, m->hdr.cid, CN_MSG_ALLOCATE_ID, cn__rt.id, cn_strerror(rc));
    } else {
        cn_wire_allocate_id_t a = {first, count};
        send_typed(&h, &a, NULL);
    }
    cn_wire_msg_free(m);
}

/* Takes ownership of m. */
static void dispatch(cn__stream_t *s, cn_wire_msg_t *m)
{
    const cn_wire_hdr_t *h = &m->hdr;
    if (!s->up) {
        if (h->type == CN_MSG_HELLO) {
            on_hello(s, m);
        } else {
            char why[CN__REASON_MAX];
            snprintf(why, sizeof(why), "%s before HELLO on the stream to %s",
                     cn_wire_type_name(h->type), s->is_parent ? "the parent" : s->name);
            cn_log(CN_LOG_ERROR, "protocol error: %s", why);
            stream_lost(s, why);
        }
        cn_wire_msg_free(m);
        return;
    }
    if (!src_ok_hdr(s, m->hdr.src)) {
        cn_log(CN_LOG_WARN, "dropped %s claiming to be from actor %u on the stream to %s",
               cn_wire_type_name(h->type), h->src, s->is_parent ? "the parent" : s->name);
        cn_wire_msg_free(m);
        return;
    }
    track_debugger(s, h);
    /* A reply coming back through s ends the call it answers. A DEAD
     * for a reply its destination sent as a callee does not: its cid is
     * in that callee's caller's numbering, where it may well be the
     * number of one of the destination's own calls (see on_dead). */
    if (h->type == CN_MSG_RETURN || h->type == CN_MSG_ERROR ||
        (h->type == CN_MSG_DEAD && !is_reply_type(m->u.dead.orig_type))) {
        cn__lock(&s->wmu);
        cn__cmap_del(&s->inflight, h->dst, h->cid);
        cn__unlock(&s->wmu);
    }
    if (h->type == CN_MSG_ADD_ROUTE || h->type == CN_MSG_DEL_ROUTE) {
        on_route_msg(s, m);
        cn_wire_msg_free(m);
        return;
    }
    if (h->dst != cn__rt.id) {
        if (cn__debug_msg_type(h->type) && cn__gdb_passing(m)) {
            cn_wire_msg_free(m); /* a line for the gdb this actor runs */
            return;
        }
        forward(s, m);
        cn_wire_msg_free(m);
        return;
    }
    if (cn__debug_msg_type(h->type)) {
        cn__debug_on_msg(m); /* the broker runs the debugger: no task thread */
        return;
    }
    switch (h->type) {
    case CN_MSG_CMD:
        if (cn__task_start(m) < 0) {
            send_dead(h->src, h->cid, CN_MSG_CMD, cn__rt.id, "the actor is shutting down");
            cn_wire_msg_free(m);
        }
        return;
    case CN_MSG_STARTED:
    case CN_MSG_RETURN:
    case CN_MSG_ERROR:
        cn__call_deliver(h->cid, m, 0, NULL);
        return;
    case CN_MSG_YIELD:
    case CN_MSG_STOP:
    case CN_MSG_CREDIT:
        deliver_stream_msg(m);
        return;
    case CN_MSG_CANCEL: {
        char reason[CN__REASON_MAX];
        const cn_wire_str_t *r = &m->u.cancel.reason;
        snprintf(reason, sizeof(reason), "%.*s", r->ptr ? (int)r->len : 9,
                 r->ptr ? r->ptr : "cancelled");
        if (h->cid == 0) { /* an operator's request, passed on by the root */
            if (!s->is_parent || h->src != CN_ROOT_ID)
                cn_log(CN_LOG_WARN, "ignored an operator CANCEL from actor %u", h->src);
            else if (m->u.cancel.call)
                cn__call_cancel_op(m->u.cancel.call, reason);
            else if (m->u.cancel.actor <= UINT32_MAX &&
                     cn__cancel_child_id((uint32_t)m->u.cancel.actor, reason) < 0)
                cn_log(CN_LOG_WARN, "operator CANCEL: actor %llu is not a child here",
                       (unsigned long long)m->u.cancel.actor);
            break;
        }
        if (cn__task_cancel(h->src, h->cid, reason) == CN_ENOENT) {
            /* Not an error: a task that just ended races its CANCEL. */
            cn_log(CN_LOG_DEBUG, "CANCEL from actor %u for call %llu, which is not running here",
                   h->src, (unsigned long long)h->cid);
            send_dead(h->src, h->cid, CN_MSG_CANCEL, cn__rt.id, "no such task running here");
        }
        break;
    }
    case CN_MSG_DEAD: {
        char reason[CN__REASON_MAX];
        snprintf(reason, sizeof(reason), "%.*s", (int)m->u.dead.reason.len, m->u.dead.reason.ptr);
        on_dead(h->cid, (uint32_t)m->u.dead.orig_type, (uint32_t)m->u.dead.orig_dst, reason);
        break;
    }
    case CN_MSG_ALLOCATE_ID:
        on_allocate_id(m);
        return;
    case CN_MSG_LOG:
        if (cn__rt.is_root)
            cn__log_sink((int)(m->u.log.level > CN_LOG_ERROR ? CN_LOG_ERROR : m->u.log.level),
                         m->u.log.time_us, m->u.log.path.ptr, m->u.log.path.len,
                         m->u.log.message.ptr, m->u.log.message.len);
        break;
    case CN_MSG_SHUTDOWN: {
        /* Who asked, as the parent says ("cancelled by canopy-client (pid
         * 812): canopy cancel"): the reason every call here ends with. */
        char why[CN__REASON_MAX] = "cancelled by the parent";
        if (m->u.shutdown.reason.len > 0)
            snprintf(why, sizeof(why), "%.*s", (int)m->u.shutdown.reason.len,
                     m->u.shutdown.reason.ptr);
        if (s->is_parent && cn__debug_active())
            cn__shutdown_after_debug(why);
        else if (s->is_parent)
            begin_shutdown(why, 0);
        break;
    }
    case CN_MSG_INSPECT:
    case CN_MSG_SNAPSHOT:
    case CN_MSG_EVENT:
        cn__inspect_on_msg(m); /* answered by this broker: no task thread */
        return;
    case CN_MSG_SUBSCRIBE: /* the root: send events, or stop */
        if (s->is_parent && h->src == CN_ROOT_ID)
            cn__events_enable(m->body.type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                  ? (unsigned)(m->body.via.u64 & (CN__EV_SHAPE | CN__EV_CTX))
                                  : 0);
        break;
    default:
        cn_log(CN_LOG_DEBUG, "no handler yet for %s from actor %u", cn_wire_type_name(h->type),
               h->src);
        if (wants_dead_reply(h->type))
            send_dead(h->src, h->cid, h->type, cn__rt.id, "not supported by this actor");
        break;
    }
    cn_wire_msg_free(m);
}

/* ===========================================================================
 * The broker loop
 */

static void on_poll(uv_poll_t *p, int status, int events)
{
    char *buf = cn__rt.read_buf;
    cn__stream_t *s = p->data;
    if (s->lost)
        return;
    if (status < 0) {
        stream_lost(s, NULL);
        return;
    }
    if (events & UV_WRITABLE)
        stream_flush(s);
    if (!(events & UV_READABLE))
        return;
    ssize_t n = recv(s->fd, buf, CN__READ_BUF, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        stream_lost(s, NULL);
        return;
    }
    bulk_note((size_t)n); /* the sender's writes: do not stop its reader */
    size_t off = 0;
    while (off < (size_t)n && !s->lost) {
        const char *body;
        size_t used, len;
        int rc = cn_wire_next_frame(&s->dec, buf + off, (size_t)n - off, &used, &body, &len);
        off += used;
        if (rc == 1) {
            /* The hot path: a YIELD for us is queued as bytes, undecoded. */
            cn_wire_hdr_t h;
            cn_wire_msg_t *m;
            size_t poff, plen;
            int peeked = s->up && cn_wire_peek_payload(body, len, &s->memo, &h, &poff, &plen) == 0;
            if (peeked && h.type == CN_MSG_YIELD && h.dst == cn__rt.id) {
                run_add(s, &h, body, len);
                continue;
            }
            /* An event for the root: its bytes go to the subscribers as
             * they are (the peek has checked them as msgpack). */
            if (peeked && h.type == CN_MSG_EVENT && h.dst == cn__rt.id && cn__rt.is_root &&
                src_ok_hdr(s, h.src)) {
                run_flush();
                cn__inspect_event_body(body, len, h.cid);
                continue;
            }
            /* A snapshot part for the root: its bytes go into the answer
             * as they are, not decoded and packed again. */
            if (peeked && h.type == CN_MSG_SNAPSHOT && h.dst == cn__rt.id && cn__rt.is_root &&
                plen > 0 && src_ok_hdr(s, h.src) &&
                cn__inspect_snapshot_raw(h.src, h.cid, body + poff, plen) == 0) {
                run_flush();
                continue;
            }
            run_flush(); /* what came before goes first */
            if ((rc = cn_wire_decode_body(body, len, &m)) == 0)
                dispatch(s, m);
        }
        if (rc < 0) {
            char why[CN__REASON_MAX];
            run_flush();
            snprintf(why, sizeof(why), "bad frame from %s: %s",
                     s->is_parent ? "the parent" : s->name, cn_strerror(rc));
            cn_log(CN_LOG_ERROR, "closing the stream: %s", why);
            stream_lost(s, why);
        }
    }
    run_flush();
    /* What this read made (the root's log events, one per LOG frame of
     * the tree) goes before the next read adds more: left for the wake-up
     * this broker has sent itself, it could wait behind a stream that
     * stays readable until the queue was full and dropped the tail of a
     * burst (seen in CI: 2100 lines logged at once, 1577 shown). */
    if (cn__events_backlog())
        cn__events_flush();
}

static void on_handle_closed(uv_handle_t *h)
{
    cn__stream_t *s = h->data;
    if (--s->handles == 0 && s->finished && (s->reaped || s->is_parent)) {
        close(s->fd);
        s->fd = -1;
        cn__lock(&cn__rt.mu);
        if (cn__rt.streams[s->via] == s)
            cn__rt.streams[s->via] = NULL;
        cn__unlock(&cn__rt.mu);
        cn__latch_close(&s->exited, CN_EDEAD); /* cn_cancel: all released */
        stream_unref(s);                       /* the table's reference */
    }
}

/* Starts watching a newly registered stream. Broker only. */
static void stream_start(cn__stream_t *s)
{
    s->polling = 1;
    s->poll.data = s;
    s->timer.data = s->reaper.data = s;
    uv_poll_init_socket(&cn__rt.loop, &s->poll, s->fd);
    uv_timer_init(&cn__rt.loop, &s->timer);
    uv_timer_init(&cn__rt.loop, &s->reaper);
    s->handles = 3;
    s->poll_events = UV_READABLE;
    uv_poll_start(&s->poll, s->poll_events, on_poll);
    for (int i = 0; i < 2; i++) {
        if (s->out_fd[i] < 0)
            continue;
        uv_pipe_init(&cn__rt.loop, &s->out[i], 0);
        s->out[i].data = s;
        s->handles++;
        if (uv_pipe_open(&s->out[i], s->out_fd[i]) == 0)
            uv_read_start((uv_stream_t *)&s->out[i], on_out_alloc, on_out_read);
        else
            uv_close((uv_handle_t *)&s->out[i], on_handle_closed);
        s->out_fd[i] = -1;
    }
}

/*
 * Waking the broker. This is what uv_async does, but libuv 1.44 (Debian
 * 12's) makes the loop busy-wait in uv__async_io while another thread is
 * between the two halves of uv_async_send, that is for as long as that
 * thread's write() to the eventfd takes; the loop wakes on that very
 * write, so it spun through it on most wake-ups from a task thread (5% of
 * all the CPU of bench_inspect's workload, in libuv's spin loop). libuv
 * 1.45 dropped the wait (libuv PR #3879). Here a flag says a write is
 * pending, and the broker clears it before it looks for work, so no
 * wake-up is lost and none needs a handshake: work queued before a
 * cn__wake that found the flag set is seen by the run that clears it.
 */
void cn__wake(void)
{
    if (atomic_exchange(&cn__rt.wake_pending, 1) == 0) {
        uint64_t one = 1;
        /* Cannot fail but with EAGAIN, the counter at its maximum, which
         * means a wake-up is pending anyway. */
        ssize_t n = write(cn__rt.wake_fd, &one, sizeof(one));
        (void)n;
    }
}

static void on_wake(uv_poll_t *p, int err, int events)
{
    (void)p, (void)err, (void)events;
    uint64_t count;
    ssize_t got = read(cn__rt.wake_fd, &count, sizeof(count)); /* EAGAIN: a spurious wake */
    (void)got;
    atomic_store(&cn__rt.wake_pending, 0); /* before looking: see cn__wake */
    run_spawns();
    if (cn__events_backlog()) /* else they wait for their batch */
        cn__events_flush();
    ev_wake();
    cn__debug_on_wake();
    if (atomic_exchange(&linger.cut, 0))
        linger_end();
    if (cn__rt.shutdown_after_debug && !cn__debug_active() && !cn__rt.shutting_down) {
        begin_shutdown(cn__rt.shutdown_why, 0);
        cn__rt.shutdown_after_debug = 0; /* after: cn__shutdown_coming never misses both */
    }
    for (size_t i = 0, n = stream_slots(); i < n; i++) {
        cn__stream_t *s = stream_slot(i);
        if (s == NULL || s->lost)
            continue;
        if (atomic_exchange(&s->want_write, 0)) /* now: no poll round first */
            stream_flush(s);
        if (atomic_exchange(&s->cancel_req, 0)) /* cn_cancel asked */
            cancel_child(s, "cancelled by its parent (cn_cancel)");
    }
    cn__lock(&cn__rt.mu);
    int main_done = cn__rt.main_done == 1;
    if (main_done)
        cn__rt.main_done = 2;
    int status = cn__rt.exit_status;
    cn__unlock(&cn__rt.mu);
    if (main_done)
        begin_shutdown(cn__rt.is_root ? "the root's main returned" : "the entry returned", status);
    else if (atomic_exchange(&cn__rt.tasks_drained, 0)) /* the last cancelled call has ended */
        maybe_finish_shutdown();
}

static void broker_run(void)
{
    cn__broker_tid = (int)syscall(SYS_gettid);
    tl_broker = 1;
    while (!cn__rt.stop_loop)
        uv_run(&cn__rt.loop, UV_RUN_DEFAULT);
}

static void broker_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "cn-broker"); /* for top -H, gdb, canopy bt */
    broker_run();
}

/* A child's HELLO to its parent (any thread, before the parent answers). */
static int greet_parent(void)
{
    cn_wire_hdr_t h = {CN_MSG_HELLO, cn__rt.parent_id, cn__rt.id, 0};
    cn_wire_hello_t me = {CN_PROTOCOL_VERSION, cn__wstr(cn__rt.name), (uint64_t)getpid(),
                          (uint64_t)getuid()};
    return write_typed(cn__rt.parent, &h, &me);
}

/* A serve-only child's parent did not answer its HELLO in time. */
static void on_hello_timeout(uv_timer_t *t)
{
    (void)t;
    if (cn__rt.parent == NULL || !cn__rt.parent->up) {
        fprintf(stderr, "canopy: no answer from the parent\n"); /* logged as ours */
        _exit(1);
    }
}

/*
 * A child without an entry only serves: its main thread would have
 * nothing to do but wait, so it runs the broker itself. That is one
 * thread fewer in every such actor (its stack and its malloc arena) and
 * one less to start before the HELLO. The broker then carries the
 * actor's name, which is the process's, rather than "cn-broker". Never
 * returns: a child leaves through maybe_finish_shutdown.
 */
static __attribute__((noreturn)) void serve_on_main(void)
{
    cn__rt.main_done = 2; /* no entry to wait for when shutting down */
    if (greet_parent() < 0) {
        fprintf(stderr, "canopy: cannot greet the parent\n");
        _exit(1);
    }
    uv_timer_start(&cn__rt.hello_timer, on_hello_timeout, HELLO_TIMEOUT_MS, 0);
    broker_run();
    abort(); /* not reached: the loop never stops in a child */
}

/* ===========================================================================
 * Spawning
 */

static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= CN__NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int take_id(uint32_t *id, int64_t timeout_ms)
{
    for (;;) {
        cn__lock(&cn__rt.mu);
        int rc = cn__rt.is_root ? cn_idpool_grant(&cn__rt.pool, 1, id)
                                : cn_idrange_take(&cn__rt.ids, id);
        cn__unlock(&cn__rt.mu);
        if (rc != CN_EAGAIN)
            return rc;
        /* Out of ids: ask the root for a range (ALLOCATE_ID). */
        uint32_t first;
        rc = cn__request_ids(cn__rt.id_range_size, &first, timeout_ms);
        if (rc < 0)
            return rc;
        cn__lock(&cn__rt.mu);
        rc = cn_idrange_give(&cn__rt.ids, first, cn__rt.id_range_size);
        cn__unlock(&cn__rt.mu);
        if (rc < 0 && rc != CN_EAGAIN)
            return rc;
    }
}

/*
 * posix_spawn runs on the broker, never on the caller's thread: the kernel
 * delivers PR_SET_PDEATHSIG when the *thread* that created a child exits,
 * so a child spawned from a short-lived thread would be killed with it.
 * The caller prepares everything; the broker only makes the call.
 */
struct cn__spawn_req {
    cn__spawn_req_t *next;
    const char *exe;
    char *const *argv, *const *env;
    const posix_spawn_file_actions_t *fa;
    const posix_spawnattr_t *attr;
    pid_t pid;
    int rc;
    int state; /* 0 queued, 1 done, 2 abandoned by a caller that timed out */
    cn__latch_t done;
    cn__node_t done_node;
};

static void spawn_req_free(cn__spawn_req_t *r)
{
    cn__latch_fini(&r->done);
    free(r);
}

/* Broker: runs the queued posix_spawn calls. */
static void run_spawns(void)
{
    cn__lock(&cn__rt.mu);
    cn__spawn_req_t *q = cn__rt.spawn_q;
    cn__rt.spawn_q = NULL;
    cn__unlock(&cn__rt.mu);
    while (q) {
        cn__spawn_req_t *r = q;
        q = q->next;
        cn__lock(&cn__rt.mu);
        int abandoned = r->state == 2;
        cn__unlock(&cn__rt.mu);
        if (abandoned) {
            spawn_req_free(r);
            continue;
        }
        /* A posix_spawn built on fork (valgrind's, some libcs') reports a
         * failed exec only as the child's exit 127: ask first, so that the
         * caller learns ENOENT or EACCES wherever it runs. */
        r->rc = access(r->exe, X_OK) < 0 ? errno : 0;
        cn__broker_unbatch(); /* the child would inherit it */
        if (r->rc == 0)
            r->rc = posix_spawn(&r->pid, r->exe, r->fa, r->attr, r->argv, r->env);
        cn__lock(&cn__rt.mu);
        abandoned = r->state == 2;
        r->state = 1;
        cn__unlock(&cn__rt.mu);
        if (abandoned) { /* too late for its caller: undo */
            if (r->rc == 0) {
                kill(r->pid, SIGKILL);
                waitpid(r->pid, NULL, 0);
            }
            spawn_req_free(r);
        } else {
            cn__latch_put(&r->done, &r->done_node);
        }
    }
}

/* Has the broker run posix_spawn; returns 0 with *pid, an errno value, or
 * CN_ETIMEDOUT. */
static int spawn_on_broker(const char *exe, const posix_spawn_file_actions_t *fa,
                           const posix_spawnattr_t *attr, char *const *argv, char *const *env,
                           pid_t *pid, int64_t timeout_ms)
{
    cn__spawn_req_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ENOMEM;
    *r = (cn__spawn_req_t){.exe = exe, .argv = argv, .env = env, .fa = fa, .attr = attr};
    cn__latch_init(&r->done);
    cn__lock(&cn__rt.mu);
    r->next = cn__rt.spawn_q;
    cn__rt.spawn_q = r;
    cn__unlock(&cn__rt.mu);
    cn__wake();

    cn__node_t *n;
    if (cn__latch_get(&r->done, timeout_ms, &n) < 0) {
        cn__lock(&cn__rt.mu);
        int done = r->state == 1;
        if (!done)
            r->state = 2; /* the broker frees it */
        cn__unlock(&cn__rt.mu);
        if (!done)
            return CN_ETIMEDOUT;
        cn__latch_get(&r->done, CN__FOREVER, &n);
    }
    int rc = r->rc;
    *pid = r->pid;
    spawn_req_free(r);
    return rc;
}

/* Builds the child's environment: ours minus CANOPY_*, plus its own. */
static char **child_env(char vars[][CN__PATH_MAX + 32], int nvars)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + (size_t)nvars + 1, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "CANOPY_", 7) != 0)
            env[k++] = *e;
    for (int i = 0; i < nvars; i++)
        env[k++] = vars[i];
    env[k] = NULL;
    return env;
}

/* What ran out, when the system refuses a spawn with `err` (an errno),
 * for the log line; "" when nothing did. */
static const char *spawn_limit(int err)
{
    switch (err) {
    case EMFILE:
        return " (this process has as many files open as RLIMIT_NOFILE, ulimit -n, allows)";
    case ENFILE:
        return " (the system's file table is full)";
    case EAGAIN:
        return " (this user has as many processes and threads as RLIMIT_NPROC, ulimit -u, "
               "allows, or the system has no more)";
    case ENOMEM:
        return " (out of memory)";
    default:
        return "";
    }
}

/* cn_spawn's code for a system error: one of those its comment lists, so
 * that cn_strerror names it (the log says the system's own words). */
static int spawn_code(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ELOOP:
        return CN_ENOENT; /* no such program */
    case EACCES:
    case EPERM:
        return CN_EACCES;
    case ENOEXEC:
        return CN_ENOEXEC;
    case ETXTBSY:
        return CN_EBUSY; /* being written */
    case EMFILE:
    case ENFILE:
        return CN_EMFILE;
    case EAGAIN:
        return CN_EAGAIN;
    case ENOMEM:
        return CN_ENOMEM;
    case ENAMETOOLONG:
        return CN_ENAMETOOLONG;
    case E2BIG:
        return CN_EINVAL; /* its arguments and environment are too long */
    default:
        return CN_EIO;
    }
}

/* Logs why the channel to a new child could not be made. */
static int spawn_no_channel(const char *name, int err)
{
    cn_log(CN_LOG_ERROR, "cannot start actor %s: no descriptors for its channel: %s%s", name,
           strerror(err), spawn_limit(err));
    return spawn_code(err);
}

int cn_spawn(const char *name, const cn_spawn_opts_t *opts, cn_portal_t *out, int64_t timeout_ms)
{
    static const cn_spawn_opts_t none = {NULL, NULL, NULL};
    if (opts == NULL)
        opts = &none;
    if (!cn__rt.started || out == NULL || !name_ok(name))
        return CN_EINVAL;
    if (opts->entry && !name_ok(opts->entry))
        return CN_EINVAL;
    cn__lock(&cn__rt.mu);
    int stopping = cn__rt.shutting_down, taken = !stopping && name_taken_locked(name);
    cn__unlock(&cn__rt.mu);
    if (stopping)
        return CN_ECANCELED;
    if (taken) /* paths name actors: two siblings may not share one */
        return name_refused(name);

    uint32_t id;
    int rc = take_id(&id, timeout_ms);
    if (rc < 0)
        return rc;

    int sv[2], pout[2], perr[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return spawn_no_channel(name, errno);
    if (pipe2(pout, O_CLOEXEC) < 0) {
        rc = errno;
        close(sv[0]), close(sv[1]);
        return spawn_no_channel(name, rc);
    }
    if (pipe2(perr, O_CLOEXEC) < 0) {
        rc = errno;
        close(sv[0]), close(sv[1]), close(pout[0]), close(pout[1]);
        return spawn_no_channel(name, rc);
    }

    /* CANOPY_EXE stands for /proc/self/exe, which valgrind cannot follow
     * (`make memcheck`); the whole tree needs it, so it is passed on. */
    const char *self = getenv("CANOPY_EXE");
    if (self && (*self == '\0' || strlen(self) > CN__PATH_MAX))
        self = NULL;
    char vars[11][CN__PATH_MAX + 32];
    int nv = 0;
    snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_FD=3");
    snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_ID=%u", id);
    snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_PARENT_ID=%u", cn__rt.id);
    snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_PPID=%d", (int)getpid());
    snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_NAME=%s", name);
    snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_PATH=%s/%s", cn__rt.path, name);
    snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_LOG_LEVEL=%s",
             cn_log_level_name((cn_log_level_t)atomic_load(&cn__rt.log_level)));
    snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_ID_RANGE=%u", cn__rt.id_range_size);
    if (cn__debug_mode()) /* debug mode is the whole tree's */
        snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_DEBUG=1");
    if (opts->entry)
        snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_ENTRY=%s", opts->entry);
    if (self)
        snprintf(vars[nv++], sizeof(vars[0]), "CANOPY_EXE=%s", self);
    char **env = child_env(vars, nv);

    const char *exe = opts->exe ? opts->exe : self ? self : "/proc/self/exe";
    size_t nargs = 0;
    while (opts->argv && opts->argv[nargs])
        nargs++;
    char **argv = calloc(nargs + 2, sizeof(char *));
    if (env == NULL || argv == NULL) {
        free(env), free(argv);
        close(sv[0]), close(sv[1]), close(pout[0]), close(pout[1]), close(perr[0]), close(perr[1]);
        return CN_ENOMEM;
    }
    argv[0] = cn__rt.argv && cn__rt.argv[0] && !opts->exe ? cn__rt.argv[0] : (char *)exe;
    for (size_t i = 0; i < nargs; i++)
        argv[i + 1] = (char *)opts->argv[i];

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    posix_spawnattr_init(&attr);
    sigset_t int_set, all_set;
    /* The child starts with SIGINT blocked, until its cn_run ignores it: a
     * Ctrl-C at the root's terminal reaches the whole process group, and
     * used to kill a child still in its program's start-up (test_sigint's
     * slowkid). The root alone acts on it. */
    sigemptyset(&int_set);
    sigaddset(&int_set, SIGINT);
    sigfillset(&all_set);
    if (cn__rt.hup_ignored) /* started under nohup: so is the whole tree */
        sigdelset(&all_set, SIGHUP);
    posix_spawnattr_setsigmask(&attr, &int_set);
    posix_spawnattr_setsigdefault(&attr, &all_set);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    rc = spawn_on_broker(exe, &fa, &attr, argv, env, &pid, timeout_ms);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(env);
    free(argv);
    close(sv[1]), close(pout[1]), close(perr[1]);
    if (rc != 0) {
        close(sv[0]), close(pout[0]), close(perr[0]);
        if (rc == CN_ETIMEDOUT)
            return rc;
        cn_log(CN_LOG_ERROR, "cannot start %s for actor %s: %s%s", exe, name, strerror(rc),
               spawn_limit(rc));
        return spawn_code(rc);
    }

    cn__stream_t *s = stream_new(sv[0], 0, id);
    if (s == NULL) {
        kill(pid, SIGKILL);
        close(sv[0]), close(pout[0]), close(perr[0]);
        return CN_ENOMEM;
    }
    s->pid = pid;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->path, sizeof(s->path), "%s/%s", cn__rt.path, name);
    /* uv handles belong to the broker: it watches these from stream_start. */
    s->out_fd[0] = pout[0];
    s->out_fd[1] = perr[0];
    stream_ref(s); /* ours, while we wait */
    if ((rc = stream_register(s)) < 0) { /* CN_EEXIST: another thread's spawn won the name */
        if (rc == CN_EEXIST)
            name_refused(name);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0); /* no stream reaps it: not a moment's zombie */
        stream_unref(s);
        /* stream_new's reference, the last; the analyzer does not count
         * atomic references: NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
        stream_unref(s);
        return rc;
    }
    cn__node_t *n;
    cn__doing(CN__DO_SPAWN, 0, 0);
    rc = cn__latch_get(&s->hello, timeout_ms, &n);
    cn__done();
    if (rc == CN_ETIMEDOUT) {
        cn_log(CN_LOG_ERROR, "actor %s did not greet within %lld ms; killing it", name,
               (long long)timeout_ms);
        kill(pid, SIGKILL);
    }
    stream_unref(s);
    if (rc < 0)
        return rc;
    out->id = id;
    return 0;
}

/* Under rt.mu: the stream of child `id`, referenced, or NULL. A child
 * leaves this table (under rt.mu) once reaped, so a child found here is
 * alive or about to be released. */
static cn__stream_t *live_child_ref(uint32_t id)
{
    for (size_t i = 0; i < cn__rt.nstreams; i++) {
        cn__stream_t *c = cn__rt.streams[i];
        if (c && !c->is_parent && c->peer == id) {
            stream_ref(c);
            return c;
        }
    }
    return NULL;
}

/* Waits up to timeout_ms for child s to be gone (its `exited` latch is
 * closed once all of it is released), the thread shown as reaping it.
 * 0 once it is gone, else the wait's code. */
static int wait_gone(cn__stream_t *s, uint32_t id, int64_t timeout_ms)
{
    cn__node_t *n;
    cn__doing(CN__DO_REAP, id, 0);
    int rc = cn__latch_get(&s->exited, timeout_ms, &n);
    cn__done();
    return rc == CN_EDEAD ? 0 : rc;
}

int cn_cancel(cn_portal_t child, int64_t timeout_ms)
{
    cn__lock(&cn__rt.mu);
    cn__stream_t *s = live_child_ref(child.id);
    if (s)
        atomic_store(&s->cancel_req, 1);
    cn__unlock(&cn__rt.mu);
    if (s == NULL)
        return CN_ENOENT;
    cn__wake();
    int rc = wait_gone(s, child.id, timeout_ms);
    stream_unref(s);
    return rc;
}

int cn_child_wait(cn_portal_t child, int *status, int64_t timeout_ms)
{
    cn__exited_t gone = {0};
    int was_child = 0;
    cn__lock(&cn__rt.mu);
    cn__stream_t *s = live_child_ref(child.id);
    if (s == NULL)
        was_child = exited_child(child.id, &gone);
    cn__unlock(&cn__rt.mu);
    if (s == NULL) {
        if (was_child && status)
            *status = gone.status;
        return was_child ? 0 : CN_ENOENT;
    }
    int rc = wait_gone(s, child.id, timeout_ms);
    if (rc == 0 && status)
        *status = s->reaped ? s->status : -1;
    stream_unref(s);
    return rc;
}

/* ===========================================================================
 * Start-up
 */

int cn_sleep(int64_t timeout_ms)
{
    /* In a task, its own cancellation wakes it; elsewhere, the actor's. */
    cn__latch_t *l = cn__task_wake_latch();
    cn__node_t *n;
    cn__doing(CN__DO_SLEEP, 0, 0);
    int rc = cn__latch_get(l ? l : &cn__rt.done, timeout_ms, &n);
    cn__done();
    return rc == CN_ETIMEDOUT ? 0 : CN_ECANCELED;
}

cn_portal_t cn_self(void)
{
    return (cn_portal_t){cn__rt.id};
}

cn_portal_t cn_parent(void)
{
    return (cn_portal_t){cn__rt.is_root ? cn__rt.id : cn__rt.parent_id};
}

const char *cn_path(void)
{
    return cn__rt.path;
}

static int env_u32(const char *name, uint32_t *out)
{
    const char *v = getenv(name);
    char *end;
    if (v == NULL || *v == '\0')
        return -1;
    unsigned long x = strtoul(v, &end, 10);
    if (*end != '\0' || x > UINT32_MAX)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

static int rt_init(int argc, char **argv, const cn_config_t *cfg)
{
    cn__rt_t *r = &cn__rt;
    r->cfg = cfg;
    r->argc = argc;
    r->argv = argv;
    pthread_mutex_init(&r->mu, NULL);
    cn_route_table_init(&r->routes);
    cn__cmap_init(&r->calls);
    cn__cmap_init(&r->closed);
    cn__cmap_init(&r->tasks);
    cn_idpool_init(&r->pool);
    atomic_init(&r->next_cid, 1);
    const char *lv = getenv("CANOPY_LOG_LEVEL");
    int level = lv ? cn__log_parse_level(lv) : -1;
    atomic_init(&r->log_level, level < 0 ? CN_LOG_INFO : level);
    uint32_t range = 64;
    env_u32("CANOPY_ID_RANGE", &range);
    r->id_range_size = range ? range : 64;
    cn_idrange_init(&r->ids, r->id_range_size / 4);
    r->max_threads = cfg->max_threads ? cfg->max_threads : 64;
    cn__latch_init(&r->jobs);
    cn__latch_init(&r->ready);
    cn__latch_init(&r->done);
    if ((r->read_buf = malloc(CN__READ_BUF)) == NULL)
        return CN_ENOMEM;
    if (uv_loop_init(&r->loop) < 0) {
        free(r->read_buf);
        r->read_buf = NULL;
        return CN_ENOMEM;
    }
    r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = r->wake_fd < 0 ? (errno == EMFILE ? CN_EMFILE : CN_ENOMEM) : 0;
    if (rc == 0 && uv_poll_init(&r->loop, &r->wake, r->wake_fd) < 0) {
        close(r->wake_fd);
        r->wake_fd = -1;
        rc = CN_ENOMEM;
    }
    if (rc < 0) {
        uv_loop_close(&r->loop);
        free(r->read_buf);
        r->read_buf = NULL;
        return rc;
    }
    uv_poll_start(&r->wake, UV_READABLE, on_wake);
    uv_signal_init(&r->loop, &r->sigchld);
    uv_signal_start(&r->sigchld, on_sigchld, SIGCHLD);
    uv_timer_init(&r->loop, &r->sigint_timer);
    /* Without its clock an actor still sends its events, only at its
     * next wake-up rather than on the tick. */
    if (cn__clock_init(&r->ev_clock, on_ev_tick) == 0)
        cn__clock_lazy(&r->ev_clock); /* a busy broker's turns send its batches */
    uv_timer_init(&r->loop, &r->hello_timer);
    uv_timer_init(&r->loop, &adopt.timer);
    uv_unref((uv_handle_t *)&adopt.timer);
    cn__clock_init(&linger.clock, on_linger);
    uv_timer_init(&r->loop, &bulk.timer);
    uv_unref((uv_handle_t *)&bulk.timer);
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphaned descendants come to us: see adopt */
    /* The root decides when the tree stops, unless the program has blocked
     * SIGINT to take it itself (with sigwait, say). */
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    r->own_sigint = getenv("CANOPY_FD") == NULL && !sigismember(&mask, SIGINT);
    if (r->own_sigint) {
        uv_signal_init(&r->loop, &r->sigint);
        uv_signal_start(&r->sigint, on_sigint, SIGINT);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction hup;
    r->hup_ignored = sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler == SIG_IGN;
    cn__debug_init(cfg->debug);
    return 0;
}

/* The root, after its broker has stopped: frees what is left. */
static void rt_fini(void)
{
    uv_loop_close(&cn__rt.loop);
    /* The eventfd's poll handle went with the loop. The flag stays set,
     * so that a cn__wake from a thread of the program's own after this
     * finds a wake-up pending and writes nothing (the fd number may be
     * reused by then). */
    atomic_store(&cn__rt.wake_pending, 1);
    if (cn__rt.wake_fd >= 0)
        close(cn__rt.wake_fd);
    cn__rt.wake_fd = -1;
    cn__clock_close(&cn__rt.ev_clock); /* the broker's alone, and it is gone */
    cn__clock_close(&linger.clock);
    free(grants.v);
    grants.v = NULL;
    grants.n = grants.cap = 0;
    for (size_t i = 0; i < cn__rt.nstreams; i++)
        if (cn__rt.streams[i])
            stream_unref(cn__rt.streams[i]);
    free(cn__rt.streams);
    cn__rt.streams = NULL;
    cn__rt.nstreams = 0;
    cn_route_table_fini(&cn__rt.routes);
    cn__cmap_fini(&cn__rt.calls);
    cn__cmap_fini(&cn__rt.closed);
    cn__cmap_fini(&cn__rt.tasks);
    free(cn__rt.read_buf);
    cn__rt.read_buf = NULL;
    cn__log_fini();
}

/* The child side: who we are comes from the environment the parent set. */
static int child_init(void)
{
    uint32_t fd, ppid;
    if (env_u32("CANOPY_FD", &fd) < 0 || env_u32("CANOPY_ID", &cn__rt.id) < 0 ||
        env_u32("CANOPY_PARENT_ID", &cn__rt.parent_id) < 0 || env_u32("CANOPY_PPID", &ppid) < 0) {
        fprintf(stderr, "canopy: CANOPY_FD is set but the rest of the child environment "
                        "is not; was this started by cn_spawn?\n");
        return CN_EINVAL;
    }
    /* The backstop for a parent that dies without closing its stream
     * cleanly (kill -9): the kernel kills us too. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if ((uint32_t)getppid() != ppid)
        _exit(1); /* the parent died before we got here */
    snprintf(cn__rt.name, sizeof(cn__rt.name), "%s",
             getenv("CANOPY_NAME") ? getenv("CANOPY_NAME") : "child");
    snprintf(cn__rt.path, sizeof(cn__rt.path), "%s",
             getenv("CANOPY_PATH") ? getenv("CANOPY_PATH") : cn__rt.name);
    /* The process's name in top, ps -o comm and canopy bt: the actor's,
     * not "exe" (of /proc/self/exe, which every child is run as), and cut
     * to the kernel's 15 bytes. */
    prctl(PR_SET_NAME, cn__rt.name);
    signal(SIGINT, SIG_IGN); /* the root coordinates cancellation */
    sigset_t intr; /* blocked since exec (see cn_spawn): a pending one is gone */
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &intr, NULL);
    /* stdout is a pipe to the parent, so fully buffered by default, and a
     * child leaves without flushing: line-buffer it so no line is lost. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    cn__stream_t *p = stream_new((int)fd, 1, cn__rt.parent_id);
    if (p == NULL)
        return CN_ENOMEM;
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return stream_register(p);
}

/* The root's name and path: CANOPY_TREE, else the config's name. */
static void root_name(const cn_config_t *cfg)
{
    /* CANOPY_TREE names the tree from outside (canopy run --name). */
    const char *tree = getenv("CANOPY_TREE");
    if (tree && *tree && !name_ok(tree)) {
        fprintf(stderr, "canopy: CANOPY_TREE=%s is not a name (letters, digits, '-', '_', "
                        "'.'; under %d characters); using the program's own\n", tree,
                CN__NAME_MAX);
        tree = NULL;
    }
    snprintf(cn__rt.name, sizeof(cn__rt.name), "%s",
             tree && *tree ? tree : cfg->name ? cfg->name : "root");
    unsetenv("CANOPY_TREE"); /* this tree's: not another tree's that a child starts */
    snprintf(cn__rt.path, sizeof(cn__rt.path), "%s", cn__rt.name);
}

int cn__rt_init_root(int argc, char **argv, const cn_config_t *cfg)
{
    if (cn__rt.started)
        return CN_EINVAL;
    int rc = rt_init(argc, argv, cfg);
    if (rc < 0)
        return rc;
    cn__rt.is_root = 1;
    root_name(cfg);
    cn__rt.started = 1;
    cn__rt.start_us = cn__now_us();
    cn__broker_tid = (int)syscall(SYS_gettid); /* the caller runs the loop */
    tl_broker = 1;
    return 0;
}

static const cn_entry_t *find_entry(const cn_config_t *cfg, const char *name)
{
    for (const cn_entry_t *e = cfg->entries; e && e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

int cn_run(int argc, char **argv, const cn_config_t *cfg)
{
    static const cn_config_t empty = {0};
    if (cfg == NULL)
        cfg = &empty;
    if (cn__rt.started) {
        fprintf(stderr, "canopy: cn_run was called again: a process is one actor, run once\n");
        return CN_EINVAL;
    }
    if (cfg->name && !name_ok(cfg->name)) { /* it names the tree and begins every path */
        fprintf(stderr, "canopy: the tree's name \"%.80s%s\" (cn_config_t.name) is not a name: "
                        "letters, digits, '-', '_' and '.', 1 to %d of them\n", cfg->name,
                strlen(cfg->name) > 80 ? "..." : "", CN__NAME_MAX - 1);
        return CN_EINVAL;
    }
    int rc = rt_init(argc, argv, cfg);
    if (rc < 0) {
        fprintf(stderr, "canopy: cannot start the runtime: %s\n", cn_strerror(rc));
        return rc;
    }
    int child = getenv("CANOPY_FD") != NULL;
    if (child) {
        if (child_init() < 0)
            _exit(1);
    } else {
        cn__rt.is_root = 1;
        root_name(cfg);
    }
    cn__rt.started = 1;
    cn__rt.start_us = cn__now_us();
    const cn_entry_t *e = NULL;
    if (child) {
        /* An unknown entry fails the spawn itself (the parent sees this
         * child exit before greeting), rather than greet and then die. */
        const char *entry = getenv("CANOPY_ENTRY");
        e = entry ? find_entry(cfg, entry) : NULL;
        if (entry && e == NULL) {
            fprintf(stderr, "this program has no entry '%s'\n", entry); /* logged as ours */
            _exit(2);
        }
        if (e == NULL)
            serve_on_main();
    } else {
        cn__attach_start(); /* before the broker runs: its path is set once */
    }
    if ((rc = uv_thread_create(&cn__rt.broker, broker_main, NULL)) != 0) {
        fprintf(stderr, "canopy: cannot start the broker thread: %s%s\n", uv_strerror(rc),
                spawn_limit(-rc));
        return rc == UV_ENOMEM ? CN_ENOMEM : CN_EAGAIN;
    }

    if (child) { /* with an entry, which runs on this thread */
        cn__node_t *n;
        if (greet_parent() < 0 ||
            cn__latch_get(&cn__rt.ready, HELLO_TIMEOUT_MS, &n) < 0) {
            fprintf(stderr, "canopy: no answer from the parent\n"); /* logged as ours */
            _exit(1);
        }
        int status = e->main(argc, argv);
        cn__lock(&cn__rt.mu);
        cn__rt.exit_status = status;
        cn__rt.main_done = 1;
        cn__unlock(&cn__rt.mu);
        cn__wake();
        for (;;)
            pause(); /* the broker exits the process once children are reaped */
    }

    /* Only the broker takes SIGINT, so its handler runs at once whatever
     * main is blocked in. */
    sigset_t intr, saved;
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    if (cn__rt.own_sigint)
        pthread_sigmask(SIG_BLOCK, &intr, &saved);
    int status = cfg->main ? cfg->main(argc, argv) : 0;
    if (cn__rt.own_sigint)
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
    cn__lock(&cn__rt.mu);
    cn__rt.exit_status = status;
    cn__rt.main_done = 1;
    cn__unlock(&cn__rt.mu);
    cn__wake();
    uv_thread_join(&cn__rt.broker);
    cn__pool_stop();
    rt_fini();
    atomic_store(&cn__rt.cancelled, 1); /* a call made after this: CN_ECANCELED, as a spawn */
    return status;
}
