/*
 * rt.h: the runtime's shared state, private to src/runtime/.
 *
 * One actor per process. The broker thread owns the libuv loop and every
 * handle; other threads reach it through rt.async. Shared state is guarded
 * by two kinds of lock, always taken in this order:
 *   rt.mu      routes, the stream table, pending calls, ids, lifecycle
 *   s->wmu     one stream's write queue, its closed flag and in-flight calls
 * Never take rt.mu while holding a stream's wmu.
 */
#ifndef CN_RT_H
#define CN_RT_H

#include <pthread.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/types.h>

#include <uv.h>

#include "canopy.h"
#include "latch.h"
#include "router/cmap.h"
#include "router/route.h"
#include "wire/wire.h"

#define CN__NAME_MAX 64
#define CN__PATH_MAX 512
#define CN__REASON_MAX 256
/* "cancelled by canopy-client (pid 9613): canopy cancel", said with a
 * cancelled child's exit. */
#define CN__CANCELLED_MAX 128
#define CN__NO_VIA UINT32_MAX

typedef struct cn__stream cn__stream_t;

/*
 * A periodic clock on the broker's loop (clock.c): a timerfd the loop
 * watches, where a libuv timer would put a timeout on every wait of the
 * broker for as long as it runs. For clocks that run while the actor is
 * busy; one-off timeouts stay libuv timers. Broker only.
 */
typedef struct cn__clock {
    uv_poll_t poll;
    uv_check_t busy; /* a lazy clock's look at each turn of the loop */
    int fd;          /* -1: none could be made (the clock never ticks) */
    int on;          /* set to tick */
    int lazy;
    uint64_t period_ms, due_ms; /* the next tick, in loop time */
    void (*fn)(struct cn__clock *);
} cn__clock_t;

/* Makes a stopped clock that calls fn at each tick; it keeps no loop
 * running. 0, or CN_EMFILE / CN_ENOMEM (and fd is -1). */
int cn__clock_init(cn__clock_t *c, void (*fn)(cn__clock_t *));
/* Makes c tick from the loop's own turns while the loop turns anyway: a
 * turn that finds the tick due runs it and sets the timer a period on, so
 * the timer fires only when the broker would otherwise sleep through the
 * tick (a busy broker is woken by it not at all). 0, or CN_ENOMEM. */
int cn__clock_lazy(cn__clock_t *c);
/* Ticks every period_ms from now on; 0 stops it. */
void cn__clock_set(cn__clock_t *c, uint64_t period_ms);
/* Ticks once, `us` microseconds from now (0 stops it). */
void cn__clock_once_us(cn__clock_t *c, uint64_t us);
/* Stops watching it and closes its descriptor. */
void cn__clock_close(cn__clock_t *c);

typedef struct cn__spawn_req cn__spawn_req_t;

struct cn__stream {
    uint32_t via; /* index in rt.streams */
    _Atomic int refs;
    int fd;
    int is_parent; /* the stream to our parent, else to a child */
    int up;        /* handshake done */
    uint32_t peer; /* actor id at the other end */
    cn_wire_decoder_t dec;
    cn_wire_memo_t memo; /* the broker's: the last envelope it read here */

    /* guarded by wmu */
    pthread_mutex_t wmu;
    msgpack_sbuffer wq; /* bytes queued, not yet taken by the broker */
    int wbusy;          /* the broker holds bytes in wb: queue behind them */
    size_t room;        /* the last frame queued in wq: its sender's room (stream_write) */
    int lingering;      /* broker only: wq is left to grow for a moment (linger) */
    int closed;         /* writes fail with CN_EDEAD */
    char reason[CN__REASON_MAX];
    cn__cmap_t inflight; /* (src, cid) of CMDs sent into this stream */

    /* broker only */
    msgpack_sbuffer wb; /* bytes taken from wq, being written without wmu */
    size_t wb_off;
    uv_poll_t poll;
    int polling;     /* poll handle initialised */
    int poll_events; /* what it watches now */
    _Atomic int want_write;
    int lost;               /* read side finished; cleanup started */
    int finished;           /* routes dropped, waiters told */
    int handles;            /* open uv handles */
    uv_timer_t timer;       /* lost: the wait for the exit status */
    uv_timer_t reaper;      /* the soft-then-hard steps of cancelling a child */
    int reap_step;          /* 0 none, 1 SHUTDOWN sent, 2 SIGTERM sent, 3 SIGKILL sent */
    _Atomic int cancel_req; /* set by cn_cancel (any thread) for the broker */

    /* children only */
    pid_t pid;
    int reaped, status; /* wait status once reaped */
    int unstarted;      /* cancelled before it greeted: its cn_spawn said so */
    char cancelled[CN__CANCELLED_MAX]; /* who cancelled it and why, if anyone did */
    char name[CN__NAME_MAX];
    char path[CN__PATH_MAX];
    char why[CN__REASON_MAX]; /* why we dropped it, if we did */
    int out_fd[2];            /* the child's stdout and stderr, until watched */
    uv_pipe_t out[2];         /* ... and then */
    char *line[2];
    size_t line_len[2];
    cn__latch_t hello; /* put once the child greeted us */
    cn__node_t hello_node;
    cn__latch_t exited; /* closed once reaped and finished */
    cn__cmap_t dbg;     /* (actor, 0): actors behind this child in the debugger */
    int dbg_waited;     /* we said we wait for their session */
};

/* A child that has exited, kept for the inspector. */
typedef struct cn__exited {
    uint32_t id;
    int pid;    /* it had */
    int status; /* wait status */
    uint64_t time_us;
    char name[CN__NAME_MAX];
    char cancelled[CN__CANCELLED_MAX];
} cn__exited_t;

#define CN__EXITED_KEEP 64

#define CN__READ_BUF (64 * 1024) /* cn__rt.read_buf */

typedef struct cn__rt {
    int started, is_root;
    uint64_t start_us;
    uint32_t id, parent_id;
    char name[CN__NAME_MAX];
    char path[CN__PATH_MAX];
    const cn_config_t *cfg;
    int argc;
    char **argv;

    uv_loop_t loop;
    /* CN__READ_BUF bytes, the broker's, for every read it makes (actor.c:
     * streams and children's output; attach.c: clients). Each read is
     * used up before its callback returns, and the loop never nests, so
     * one buffer serves them all. Allocated by rt_init: not static, where
     * its edges would spread the small statics over more pages (see
     * freeze.c, fz). */
    char *read_buf;
    uv_poll_t wake;           /* wake_fd, an eventfd: see cn__wake */
    int wake_fd;
    _Atomic int wake_pending; /* written to wake_fd, not yet seen by the broker */
    uv_signal_t sigchld;
    uv_signal_t sigint;      /* the root only */
    uv_timer_t sigint_timer; /* after a SIGINT cancel: main's grace period */
    cn__clock_t ev_clock;    /* sends queued events while they keep coming */
    uv_timer_t hello_timer;  /* a serve-only child: the parent's answer to HELLO */
    uint64_t sigint_at;      /* loop time of the last SIGINT, 0 if none */
    int op_cancel;           /* an operator cancelled the whole tree */
    int own_sigint;          /* the runtime handles SIGINT (the root\'s broker) */
    int hup_ignored;         /* SIGHUP was ignored at start (nohup): children keep it so */
    uv_thread_t broker;

    pthread_mutex_t mu;
    cn_route_table_t routes;
    cn__stream_t **streams;
    size_t nstreams;
    cn__stream_t *parent;
    cn__cmap_t calls; /* (0, cid) -> cn__pcall_t *: our calls in flight */
    cn__cmap_t closed; /* (0, cid) -> cn__pcall_t *: contexts whose end an
                          operator closed, until freed: their task's late
                          answer still settles their cancel state */
    cn__cmap_t tasks; /* (caller, cid) -> cn__task_t *: calls we are running */
    cn_idrange_t ids;
    cn_idpool_t pool;
    uint32_t id_range_size;
    unsigned children; /* child streams not yet reaped and finished */
    int shutting_down;
    int exit_status;
    int main_done; /* the main or entry returned: shut down */
    int entry_grace_over; /* a child: its entry and its tasks had their time to
                             return after SHUTDOWN */
    _Atomic int tasks_drained; /* shutting down, the last task has ended: the
                                  broker looks again (maybe_finish_shutdown) */
    _Atomic int cancelled; /* a child shutting down: new calls fail with CN_ECANCELED */
    _Atomic int shutdown_after_debug; /* set by the broker: shut down when the debugger
                                       * session ends (a breakpoint's thread reads it) */
    char shutdown_why[CN__REASON_MAX];
    int stop_loop; /* broker only */

    _Atomic uint64_t next_cid;
    _Atomic int log_level;
    _Atomic unsigned events_on; /* CN__EV_* classes some subscriber at the root wants */

    cn__latch_t jobs;
    _Atomic unsigned nthreads;
    unsigned max_threads;
    pthread_t *threads;

    cn__spawn_req_t *spawn_q;             /* posix_spawn requests for the broker */
    cn__exited_t exited[CN__EXITED_KEEP]; /* the last children to exit, */
    uint64_t nexited;                     /* a ring: nexited % KEEP is next */

    cn__latch_t ready; /* child: the parent answered HELLO */
    cn__node_t ready_node;
    cn__latch_t done; /* closed when shutdown completes */
} cn__rt_t;

extern cn__rt_t cn__rt;

uint64_t cn__now_us(void);

/* Wakes the broker to run its pending work (spawns, queued writes,
 * cancels, events past the backlog, the debugger's): any thread, and
 * async-signal-safe. Wake-ups coalesce: many calls before the broker runs
 * cost one write. */
void cn__wake(void);

/* Broker: before it starts a thread or a process, which would inherit its
 * scheduling policy, ends the SCHED_BATCH it takes while it writes bulk
 * (actor.c, "The broker's scheduling"); it comes back at the next large
 * write. */
void cn__broker_unbatch(void);

/* The same clock read at the kernel's last tick (1-4 ms old), for
 * timestamps on a hot path: a few ns, where cn__now_us costs ~30 here. */
uint64_t cn__now_coarse_us(void);

/* Root only: prints and keeps one log record. */
void cn__log_sink(int level, uint64_t time_us, const char *path, size_t path_len, const char *msg,
                  size_t msg_len);

/* Root only: packs the last `max` kept records, oldest first, as an array
 * of maps {level, time_us, path, message}. */
void cn__log_pack(msgpack_packer *pk, size_t max);

/* At the end of cn_run: closes CANOPY_LOG_FILE and frees the kept
 * records. A record after it opens the file again. */
void cn__log_fini(void);

/* Emits a log record from this actor, or on behalf of `path` (a child's
 * output); any thread. */
void cn__log_emit(int level, const char *path, const char *msg, size_t len);

/* The seams between actor.c, call.c and log.c. */

/* Sends an encoded frame toward h->dst (any thread). Returns 0 or
 * CN_EDEAD with `reason` (CN__REASON_MAX bytes, may be NULL) filled.
 * Toward another actor, buf may hold several whole frames of h's type
 * and dst: they are written as they are (a local delivery takes one). */
int cn__send_frame(const cn_wire_hdr_t *h, const char *buf, size_t len, char *reason);

/* The stream a frame for dst leaves by (a reference: give it back with
 * cn__link_put), or NULL for ourselves or no route. For a sender that
 * sends many frames to one actor: ids are never reused and an actor never
 * moves in the tree, so the answer holds until the stream closes, and
 * cn__link_send then fails with CN_EDEAD and its reason. `room` is how
 * many bytes the sender may send after this frame without waiting (its
 * credit), 0 if it cannot tell: in bulk mode the broker holds back small
 * writes from a sender with room to make them larger (actor.c, linger). */
cn__stream_t *cn__link_get(uint32_t dst);
int cn__link_send(cn__stream_t *l, const cn_wire_hdr_t *h, const char *buf, size_t len,
                  size_t room, char *reason);
void cn__link_put(cn__stream_t *l);

/* --- shared by call.c, task.c and stream.c */

/* A view of a C string for a wire field; NULL gives an absent field. */
static inline cn_wire_str_t cn__wstr(const char *s)
{
    return s ? (cn_wire_str_t){s, (uint32_t)strlen(s)} : (cn_wire_str_t){NULL, 0};
}

/* A NUL-terminated copy of a wire string, or NULL for an absent one (or
 * when out of memory). */
char *cn__dup_wire_str(cn_wire_str_t s);

/* A message (or an error with its reason) queued for a waiting thread. */
typedef struct cn__item {
    cn__node_t node;
    cn_wire_msg_t *msg; /* or NULL with err and reason */
    int err;
    char reason[CN__REASON_MAX];
} cn__item_t;

cn__item_t *cn__item_new(cn_wire_msg_t *msg, int err, const char *reason);
void cn__item_free(cn__item_t *it);

/* Stream messages sent by a context's callee carry this bit in their cid,
 * so that a side that both opened and serves contexts with the same peer
 * can tell which of them a YIELD, STOP or CREDIT is for. */
#define CN__CID_FROM_CALLEE (1ull << 63)

/* One side's send credit on a context's stream (stream.c). */
typedef struct cn__flow {
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* a sender waiting for credit */
    _Atomic int64_t credit; /* YIELDs this side may still send; taken without mu
                               on the fast path, added and waited for under it */
    int peer_opened;      /* a CREDIT has arrived: the peer opened its end */
    uint64_t peer_window; /* the peer\'s first grant: its buffer size */
    _Atomic int ended;    /* the context is over: sending fails with err (set
                             under mu, after err and reason) */
    int err;
    char reason[CN__REASON_MAX];
} cn__flow_t;

void cn__flow_init(cn__flow_t *f);
void cn__flow_fini(cn__flow_t *f);
void cn__flow_credit(cn__flow_t *f, uint64_t n);
void cn__flow_end(cn__flow_t *f, int err, const char *reason);

/*
 * The YIELDs waiting for one end of a context's stream, as raw frames.
 *
 * The broker does not decode a YIELD: it checks the frame (cn_wire_peek)
 * and appends its bytes here, and the receiving thread decodes it, so the
 * message is allocated and freed on the same thread and the broker's cost
 * per message is a memcpy. The receiver takes everything queued in one
 * swap of buffers, one lock per batch rather than per message.
 *
 * Ordering against the end's latch (STOP, the final message, errors):
 * when frames arrive and no token is queued, the broker puts `token` into
 * the latch. A reader that takes the token from the latch looks here
 * again. So anything put into the latch after a frame is preceded there by
 * a token, and a reader always sees the frames first. A reader checks
 * here before waiting on the latch; a token found with nothing here is
 * stale (its frames were taken early) and is skipped.
 */
typedef struct cn__yq {
    pthread_mutex_t mu;
    cn__latch_t *latch;
    cn__node_t token;
    int token_queued;        /* under mu: token is in the latch */
    msgpack_sbuffer in;      /* under mu: frames, length prefix included */
    unsigned nin;            /* under mu: frames in `in` */
    uint64_t msgs, bytes;    /* under mu: frames that ever arrived */
    uint64_t granted;        /* under mu: credit this end ever gave */
    uint64_t last_us;        /* under mu: when the last one did */
    msgpack_sbuffer batch;   /* the reader's: frames it took, */
    size_t boff;             /*   and how far it has read them */
    cn_wire_memo_t memo;     /* the reader's: its frames' envelope */
    _Atomic unsigned nbatch; /* frames left in batch (for counters) */
} cn__yq_t;

void cn__yq_init(cn__yq_t *q, cn__latch_t *latch);
void cn__yq_fini(cn__yq_t *q); /* the latch must not hold the token any more */

/* Appends `count` whole frames (len bytes, length prefixes included); any
 * thread. Frames beyond the credit this end has granted are dropped: a
 * peer that ignores credit cannot grow the buffer. Returns how many were
 * dropped, or CN_ENOMEM. */
int cn__yq_push(cn__yq_t *q, const char *frames, size_t len, unsigned count, uint64_t now_us);

/* Whether n, just taken from q's latch, is q's token (then the reader
 * must look at q again). */
int cn__yq_is_token(cn__yq_t *q, cn__node_t *n);

/* Milliseconds left before a deadline from cn__deadline, for a retry;
 * CN__FOREVER for none. */
int64_t cn__ms_left(int64_t deadline_ns);

/* A timeout as a message gives it: a negative one (but CN_FOREVER) waited
 * as 0 did, so it is said as 0. */
static inline long long cn__said_ms(int64_t timeout_ms)
{
    return timeout_ms < 0 ? 0 : (long long)timeout_ms;
}

/* Sets this thread's cn_stream_last_error to the printf-style message
 * and returns rc: for the failures a stream call finds before it starts. */
int cn__stream_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Opens one end of a context's stream over `flow` (our send credit), `yq`
 * (the peer's YIELDs) and `in` (the rest of what the peer sends); grants
 * the peer its first credit. */
cn_stream_t *cn__stream_open(cn__flow_t *flow, cn__yq_t *yq, cn__latch_t *in, uint32_t peer,
                             uint64_t cid_out, cn_ctx_t *ctx, const cn_stream_opts_t *opts,
                             int *rc);
void cn__stream_free(cn_stream_t *s);
/* Before freeing a stream other threads may still wait on: ends their
 * waits with CN_ECANCELED (`why`, for a sender's cn_stream_last_error),
 * and returns once they have left. The owner's latch `in` is closed: call
 * it once no final message is on its way in. */
void cn__stream_stop(cn_stream_t *s, const char *why);
/* cn_stream_recv without the hub check: the hub's own reads. */
int cn__stream_recv(cn_stream_t *s, cn_result_t *msg, int64_t timeout_ms);
/* A hub takes the stream's receiving side (claim), CN_EBUSY if one has;
 * or gives it back (!claim). */
int cn__stream_claim_hub(cn_stream_t *s, int claim);

/* Whether ctx has been cancelled (cn_ctx_cancel, or an operator's cancel
 * of this end): then its stream refuses both ways at once, whatever is
 * buffered, and this returns CN_ECANCELED with res (if not NULL) and
 * cn_stream_last_error saying by whom; else 0. */
int cn__ctx_cancelled(cn_ctx_t *ctx, cn_result_t *res);

/* The opener's stream met the context's final message `it` (taken): the
 * context records it; res gets its outcome, which is returned. */
int cn__ctx_end_from_stream(cn_ctx_t *ctx, cn__item_t *it, cn_result_t *res);

/* --- call.c: the caller's side */

typedef struct cn__pcall cn__pcall_t;
typedef struct cn_call cn__task_t; /* a running exported function */

#define CN__CMD_CONTEXT 1u /* CMD flag: opened with cn_open */

/* Delivers a message (owned from here on) for the local call `cid`, or
 * an error and its reason. STARTED leaves the call pending; anything else
 * ends it. A message nobody waits for is dropped. Any thread. */
void cn__call_deliver(uint64_t cid, cn_wire_msg_t *msg, int err, const char *reason);

/* Under rt.mu: where YIELDs from `src` for the local call `cid` (a context
 * we opened) go; NULL if no such call, or (*not_callee set) if the call
 * went to another actor than src. */
cn__yq_t *cn__call_yq(uint64_t cid, uint32_t src, int *not_callee);

/* Completes every pending local call with `err`. */
void cn__call_fail_all(int err, const char *reason);

/* Cancels the local call `cid` to `to`: CANCEL goes to the callee and the
 * waiter wakes with CN_ECANCELED. Any thread. */
void cn__pcall_cancel(uint32_t to, uint64_t cid, const char *why);

/* Under rt.mu: forgets the task that made c (the task is ending). */
void cn__pcall_detach(cn__pcall_t *c);
uint64_t cn__pcall_cid(const cn__pcall_t *c);
uint32_t cn__pcall_to(const cn__pcall_t *c);

/* --- task.c: the callee's side */

/* Broker: registers the CMD `msg` (owned from here on) as a task and
 * queues it for a task thread. */
int cn__task_start(cn_wire_msg_t *msg);

/* Under rt.mu: where YIELDs for the task (caller, cid) go; NULL if no
 * such task. */
cn__yq_t *cn__task_yq(uint32_t caller, uint64_t cid);

/* Broker: hands a stream message (STOP, CREDIT) from the caller to
 * the task (caller, cid). Takes msg. Returns 0 or CN_ENOENT. */
int cn__task_deliver(uint32_t caller, uint64_t cid, cn_wire_msg_t *msg);

/* Broker: cancels the task (caller, cid). Returns 0 or CN_ENOENT. */
int cn__task_cancel(uint32_t caller, uint64_t cid, const char *reason);
/* Cancels every call this actor runs (an actor being cancelled). */
void cn__task_cancel_all(const char *reason);
/* How many calls this actor still runs (or has queued), and the first few
 * functions' names into names (cap bytes, comma-separated). */
size_t cn__task_leftover(char *names, size_t cap);

/* The task running on this thread, or NULL. */
cn__task_t *cn__task_current(void);
int cn__task_is_cancelled(const cn__task_t *t);
/* Why t was cancelled, into out ("" if it was not). */
void cn__task_cancel_reason(const cn__task_t *t, char *out, size_t cap);

/* Under rt.mu: records (add) or forgets a call the task has in flight, so
 * that cancelling the task cancels it too. */
int cn__task_track(cn__task_t *t, cn__pcall_t *c, int add);

/* In a task: remembers the remote error a nested call just returned, so
 * that the task can relay it if it fails with CN_EREMOTE itself. */
void cn__task_note_remote(const cn_wire_error_t *e);

/* Wakes with CN_ECANCELED when this thread's task is cancelled; for
 * cn_sleep. NULL outside a task. */
cn__latch_t *cn__task_wake_latch(void);

void cn__pool_stop(void);

/* Asks the root for `count` ids (ALLOCATE_ID). */
int cn__request_ids(uint32_t count, uint32_t *first, int64_t timeout_ms);

/* Sends a log record up to the root (non-root actors). */
void cn__log_send(int level, uint64_t time_us, const char *path, const char *msg, size_t len);

/* "info" -> CN_LOG_INFO; -1 if unknown. */
int cn__log_parse_level(const char *s);

/* Operator cancels (a CANCEL with cid 0 from the root; protocol.md).
 * Broker only. cn__cancel_child_id: 0, or CN_ENOENT if `id` is not a live
 * child of this actor. cn__cancel_tree: the root, as SIGINT does. */
int cn__cancel_child_id(uint32_t id, const char *why);

/* The pid of `id` if it is a live child of this actor, else -1. Broker
 * only. */
pid_t cn__child_pid(uint32_t id);
void cn__cancel_tree(const char *why);

/*
 * Test and fuzz hook (tests/fuzz/): makes this process a root as cn_run
 * does (the runtime's state, its loop and the loop's handles, the root's
 * name from cfg or CANOPY_TREE), but opens no attach socket, starts no
 * broker thread and runs no main. The calling thread becomes the broker:
 * it runs cn__rt.loop itself (uv_run, UV_RUN_NOWAIT) and calls the broker
 * entry points directly. Nothing undoes it; call it once per process, not
 * with cn_run. Returns 0, or CN_EINVAL if the runtime has started already,
 * or CN_ENOMEM.
 */
int cn__rt_init_root(int argc, char **argv, const cn_config_t *cfg);

/* Broker: shuts this actor down once no debugger session is open or
 * waiting (a SHUTDOWN, or `cancel` at the REPL, during a session). */
void cn__shutdown_after_debug(const char *why);
/* Whether this actor is shutting down, or will once the debugger session
 * ends (any thread). */
int cn__shutdown_coming(void);

/* Cancels this actor's own call or context `cid` as its caller would;
 * CN_ENOENT if there is none. Any thread. */
int cn__call_cancel_op(uint64_t cid, const char *why);

/* ---------------------------------------------------------------------------
 * registry.c: what the inspector sees. Each call and context in flight, at
 * either end, has a record, and each thread that runs tasks or blocks in
 * the API says what it is doing. A call's or context's record lives inside
 * the runtime's own object for it, a thread's in the registry; both change
 * under the registry's lock, a leaf lock except that a snapshot reads
 * stream counters (flow and yq locks) while holding it.
 */

enum { CN__ROLE_CALLER, CN__ROLE_CALLEE };
enum { CN__PH_OPENING, CN__PH_STARTED, CN__PH_RETURNED, CN__PH_ERRORED };

/* What a snapshot reads of every record comes first, and the reason last:
 * a snapshot reads thousands of records spread over the heap, and each
 * cache line a record spans is a miss. */
typedef struct cn__rec {
    size_t slot; /* 1 + its index in the registry's table; 0 when not in it */
    int role, is_ctx, phase;
    uint32_t peer;     /* the actor at the other end */
    uint64_t cid;      /* as the caller numbered it */
    uint64_t opened_us;
    int tid; /* the thread that opened it (callers) or runs it (callees) */
    cn_cancel_state_t cancel;
    uint64_t cancel_us;
    cn_stream_t *stream; /* this end's stream, once opened */
    char fn[CN__NAME_MAX];
    char cancel_by[CN__REASON_MAX];
} cn__rec_t;

/* Registers r (zeroed but for role, is_ctx, peer, cid, fn). */
void cn__rec_add(cn__rec_t *r);
void cn__rec_del(cn__rec_t *r); /* not registered: a no-op */
void cn__rec_phase(cn__rec_t *r, int phase);
void cn__rec_cancel(cn__rec_t *r, cn_cancel_state_t state, const char *by);
void cn__rec_stream(cn__rec_t *r, cn_stream_t *s); /* NULL before freeing it */
/* Who asked for r's cancel ("" if nobody has). */
void cn__rec_cancel_by(const cn__rec_t *r, char *out, size_t n);

/* What a thread is doing, for the snapshot. */
enum {
    CN__DO_IDLE,    /* a task thread waiting for work */
    CN__DO_RUNNING, /* running a task's function, not blocked in the API */
    CN__DO_CALL,    /* waiting for a call's reply */
    CN__DO_OPEN,    /* waiting for a context to start */
    CN__DO_RESULT,  /* waiting for a context's result */
    CN__DO_RECV,    /* waiting in cn_stream_recv */
    CN__DO_SEND,    /* waiting for credit in cn_stream_send */
    CN__DO_SLEEP,   /* in cn_sleep */
    CN__DO_SPAWN,   /* waiting for a child to come up */
    CN__DO_DEBUG,   /* stopped at a breakpoint, until continue */
    CN__DO_REAP,    /* waiting for a child to be gone (cn_cancel, cn_child_wait) */
};

/* The calling thread is now blocked in `what` on (peer, cid); cn__done()
 * when it returns. */
void cn__doing(int what, uint32_t peer, uint64_t cid);
void cn__done(void);

/* A task thread starts running the task whose record is r, or ends it
 * (NULL). Until a thread starts it, a callee's record has tid 0, which the
 * snapshot shows as phase "queued". */
void cn__thr_task(cn__rec_t *r);

/* Values and map entries for snapshots: a string (NULL packs nil), an
 * integer, "key": either. Not inline: msgpack's packers are, and these
 * have some hundred callers (registry.c has the why). */
void cn__pack_cstr(msgpack_packer *pk, const char *v);
void cn__pack_int(msgpack_packer *pk, int64_t v);
void cn__pack_kstr(msgpack_packer *pk, const char *k, const char *v);
void cn__pack_kint(msgpack_packer *pk, const char *k, int64_t v);

/* ---------------------------------------------------------------------------
 * Events for the live feed (attach clients that sent SUBSCRIBE). Each
 * actor sends its events to the root only while the root has told it a
 * subscriber is attached (cn__rt.events_on), so with none attached an
 * event costs one atomic load. Any thread. `detail` may be NULL.
 */
void cn__event(const char *kind, uint64_t cid, uint32_t peer, const char *fn, const char *detail);

/* The classes of events, which a subscriber may leave out: a frame's
 * header carries its class in `cid`'s low bit (1 for CN__EV_CTX), and
 * the number of events the frame holds in the rest (0 for a frame of one
 * event, n for a batch of n), so the root sorts and counts them without
 * decoding. */
#define CN__EV_SHAPE 1u /* spawn, exit, routes, cancels, logs, dropped */
#define CN__EV_CTX 2u   /* ctx-open/started/closed/errored, stall, resume */
#define CN__EV_BATCH_MAX (1u << 20) /* events in one frame, at most */

/* An EVENT header's cid for a class and a batch of n (0: one event), and
 * the class and the number of events a header's cid says. */
static inline uint64_t cn__ev_cid(unsigned cls, uint32_t n)
{
    return (uint64_t)n << 1 | (cls == CN__EV_CTX);
}
static inline unsigned cn__ev_class(uint64_t cid)
{
    return cid & 1 ? CN__EV_CTX : CN__EV_SHAPE;
}
static inline uint64_t cn__ev_count(uint64_t cid)
{
    uint64_t n = cid >> 1; /* a child's claim: bounded by what a frame can hold */
    return n == 0 ? 1 : n > CN__EV_BATCH_MAX ? CN__EV_BATCH_MAX : n;
}

/* cn__event for a context's events (CN__EV_CTX), sent only while some
 * subscriber wants them. */
void cn__event_ctx(const char *kind, uint64_t cid, uint32_t peer, const char *fn,
                   const char *detail);

/* Broker: sends the events queued by cn__event. */
void cn__events_flush(void);

/* Whether so many events wait that the broker was woken to send them
 * before its next batch (any thread). */
int cn__events_backlog(void);

/* Broker: whether any events are queued. */
int cn__events_queued(void);

/* Broker: about to stop the clock that sends the queue. Returns 1 if
 * nothing is queued, and the next event will then wake the broker; 0 if
 * something is (keep the clock). cn__events_awake undoes it. */
int cn__events_sleep(void);
void cn__events_awake(void);

/* Broker: which classes of this actor's events to send (CN__EV_*; 0:
 * none). While any, a clock sends the queued events every CN__EVENTS_MS
 * while they keep coming; an actor with none to send has it stopped, and
 * its next event wakes it (registry.c). So a busy actor pays no extra
 * wake-ups for its events, and an idle one none at all. */
#define CN__EVENTS_MS 50
void cn__events_enable(unsigned classes);

/* Broker: starts that clock if events are on and it is stopped (the root,
 * for its subscribers' queues, which its ticks write). */
void cn__events_clock_on(void);

/* The root's log sink: a record, as a "log" event. */
void cn__event_log(int level, uint64_t time_us, const char *path, size_t path_len, const char *msg,
                   size_t msg_len);

/* Packs the records and thread states as the snapshot's "contexts" and
 * "threads" entries (two map pairs). */
void cn__registry_pack(msgpack_packer *pk);

#endif /* CN_RT_H */
