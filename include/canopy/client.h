/*
 * canopy/client.h: attach to a running tree from outside it.
 *
 * A tree's root listens on a unix socket (see docs/cli.md for where). This
 * API finds those sockets, connects, and asks for whole-tree snapshots,
 * returned as plain structs. The canopy tool is built on it alone; so can
 * any other tool.
 *
 * Every call that waits takes a timeout in milliseconds: -1 (CN_FOREVER)
 * waits without limit, any other negative as 0. Functions return
 * 0 or a negative CN_E* code (canopy/errors.h); where a sentence helps,
 * cn_client_error() has it.
 *
 * Thread safety: a cn_client_t is used by one thread at a time; snapshots
 * are plain read-only data once returned.
 */
#ifndef CANOPY_CLIENT_H
#define CANOPY_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "canopy/defs.h"
#include "canopy/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Finding trees
 */

typedef struct cn_tree_info {
    char name[64];   /* the root's name (cn_config_t.name) */
    int pid;         /* the root's pid */
    char path[108];  /* its attach socket */
    uint64_t since_us; /* when the socket was made (Unix epoch, us) */
} cn_tree_info_t;

/* The directory attach sockets are in for this user: CANOPY_RUNTIME_DIR,
 * else $XDG_RUNTIME_DIR/canopy, else /tmp/canopy-UID. */
CN_EXTERN int cn_client_dir(char *out, size_t n);

/* Lists the running trees into out[0..max), setting *n to how many there
 * are (possibly more than max). Sockets whose root has died are removed
 * on the way. Returns 0 or an error. */
CN_EXTERN int cn_client_list(cn_tree_info_t *out, size_t max, size_t *n);

/* Finds one tree by "NAME", "NAME.PID", "PID" or a socket path; NULL or ""
 * means the only tree running. CN_ENOENT if none matches, CN_EAMBIGUOUS
 * if several do (cn_client_error() names them). */
CN_EXTERN int cn_client_find(const char *tree, cn_tree_info_t *out);

/* ---------------------------------------------------------------------------
 * Connecting
 */

typedef struct cn_client cn_client_t;

/* Connects to the socket at `path` and says HELLO. Errors: CN_ENOENT (no
 * such socket), CN_ECONNREFUSED (the tree has exited), CN_EACCES (not
 * ours), CN_ETIMEDOUT, CN_EVERSION, CN_EPROTO. */
CN_EXTERN int cn_client_connect(const char *path, cn_client_t **out, int64_t timeout_ms);

/* Closes the connection. NULL is a no-op. */
CN_EXTERN void cn_client_close(cn_client_t *c);

/* The tree's name and root pid, from its HELLO. */
CN_EXTERN const char *cn_client_tree(const cn_client_t *c);
CN_EXTERN int cn_client_root_pid(const cn_client_t *c);

/* Why the last call failed, in words, or "". Per thread. */
CN_EXTERN const char *cn_client_error(void);

/* ---------------------------------------------------------------------------
 * Snapshots (docs/protocol.md, Inspection, has every field)
 */

typedef struct cn_snap_child {
    uint32_t id;
    const char *name;
    int pid;           /* kept once it has exited */
    const char *state; /* starting, running, cancelling, exiting, exited */
    const char *status; /* "exit 0", "signal 9"; NULL while alive */
    uint64_t exit_us;
} cn_snap_child_t;

typedef struct cn_snap_route {
    uint32_t id;     /* the destination actor */
    uint32_t parent; /* its parent */
    int64_t via;     /* the child (id) it is reached through */
    const char *name;
    uint64_t learned_us;
} cn_snap_route_t;

typedef struct cn_snap_stream {
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t buffered, window; /* received and not taken; this end's buffer */
    int64_t credit;            /* sends this end may still make */
    uint64_t peer_window;
    uint64_t last_us;
    int send_blocked;          /* a sender waits for credit, */
    uint64_t blocked_since_us; /*   since then */
    const char *local, *peer;  /* unopened, open, closed */
} cn_snap_stream_t;

typedef struct cn_snap_ctx {
    uint64_t cid;       /* as the caller numbered it */
    uint32_t peer;      /* the actor at the other end */
    const char *fn;
    const char *role;   /* caller, callee */
    const char *kind;   /* call, context */
    const char *phase;  /* opening, started, streaming, returned, errored;
                           a plain call: running; a callee's end that no
                           task thread has taken yet: queued */
    const char *cancel; /* none, requested, acknowledged, done, timed-out */
    const char *cancel_by;
    uint64_t opened_us, cancel_us;
    int tid;            /* a caller's: the thread that opened it; a
                           callee's: the thread running it (0: queued) */
    int has_stream;
    cn_snap_stream_t stream;
} cn_snap_ctx_t;

typedef struct cn_snap_thread {
    int tid;
    const char *kind;  /* task, main, user */
    const char *doing; /* idle, running, call, open, result, recv, send, sleep, spawn */
    uint32_t peer;     /* what it waits on: the actor, */
    uint64_t cid;      /*   and the call or context */
    uint64_t since_us;
    const char *fn;    /* the task it runs, or NULL */
    uint32_t task_caller;
    uint64_t task_cid;
} cn_snap_thread_t;

typedef struct cn_snap_stack {
    int tid;
    const char *name;   /* the thread's name (comm) */
    const char *state;  /* "not stopped" (read in passing), "stopped" (by a
                           debugger session), "debugger" (at a breakpoint),
                           "crashed", or "no answer ..." */
    size_t nframes;
    const char **frames; /* "fn at file:line", innermost first */
} cn_snap_stack_t;

typedef struct cn_snap_log {
    int level; /* cn_log_level_t */
    uint64_t time_us;
    const char *path, *message;
} cn_snap_log_t;

typedef struct cn_snap_actor {
    uint32_t id;
    int64_t parent; /* -1 for the root */
    const char *name, *path, *host;
    const char *state; /* running, cancelling, unresponsive */
    int responsive;    /* 0: it did not answer in time; only id, name */
    int pid, uid;
    uint64_t start_us, now_us;
    int64_t rss_kib;
    size_t nchildren, nroutes, ncontexts, nthreads;
    cn_snap_child_t *children;
    cn_snap_route_t *routes;
    cn_snap_ctx_t *contexts;
    cn_snap_thread_t *threads;
    size_t nstacks; /* only when asked for (cn_snap_opts_t.stacks) */
    cn_snap_stack_t *stacks;
    const msgpack_object *raw; /* this actor's map as it came (entries not decoded above,
                                  such as "debug" and the root's "lock"), in s->raw */
} cn_snap_actor_t;

typedef struct cn_snapshot {
    const char *tree;
    int root_pid;
    uint64_t now_us;
    unsigned timeout_ms;   /* how long actors had to answer */
    unsigned unresponsive; /* how many did not */
    size_t nactors;
    cn_snap_actor_t *actors; /* by id, so the root first; each one's routes by id */
    size_t nlogs;
    cn_snap_log_t *logs; /* the tree's last log records, oldest first */
    msgpack_object raw;  /* the whole snapshot as it came */
    void *priv_;
} cn_snapshot_t;

/* Takes a whole-tree snapshot: every actor is asked at once and has
 * `actor_timeout_ms` to answer (0: the root's default, 1000); the call
 * waits up to timeout_ms in all. Free it with cn_snapshot_free. */
CN_EXTERN int cn_client_snapshot(cn_client_t *c, unsigned actor_timeout_ms, int64_t timeout_ms,
                                 cn_snapshot_t **out);

typedef struct cn_snap_opts {
    unsigned actor_timeout_ms; /* as for cn_client_snapshot */
    int stacks;                /* also every thread's stack: each thread is
                                  stopped only while its stack is read */
} cn_snap_opts_t;

/* cn_client_snapshot with options. */
CN_EXTERN int cn_client_snapshot_opts(cn_client_t *c, const cn_snap_opts_t *o, int64_t timeout_ms,
                                      cn_snapshot_t **out);

CN_EXTERN void cn_snapshot_free(cn_snapshot_t *s);

/* map[key] in a msgpack map with string keys (such as s->raw and the maps
 * inside it), or NULL: for reading fields the structs do not carry. */
CN_EXTERN const msgpack_object *cn_msgpack_get(const msgpack_object *map, const char *key);

/* A snapshot's big lists ("contexts" and "threads" of each actor in
 * s->raw) come as tables: {cols: [name, ...], rows: [[value, ...], ...]},
 * each row's values in the order of cols (docs/protocol.md). If t is a
 * table, *out becomes the array of maps it stands for, one per row, built
 * in z (keys and values point into t), and it returns 1; if t is anything
 * else it returns 0 and leaves *out alone; CN_ENOMEM if z ran out. The
 * structs (cn_snap_ctx_t, cn_snap_thread_t) hold the same rows decoded. */
CN_EXTERN int cn_msgpack_table(const msgpack_object *t, msgpack_zone *z, msgpack_object *out);

/* Asks the tree to cancel an actor (call == 0; actor 0 is the whole tree)
 * or the call or context `call` that actor made (as its caller would).
 * Returns 0 once the root has passed the request on; the cancel itself
 * then runs (watch it with snapshots). CN_EDEAD with cn_client_error()
 * saying why if it cannot be. */
CN_EXTERN int cn_client_cancel(cn_client_t *c, uint32_t actor, uint64_t call, const char *reason,
                               int64_t timeout_ms);

/* ---------------------------------------------------------------------------
 * The live event feed
 */

typedef struct cn_event {
    /* spawn, exit, ctx-open, ctx-started, ctx-closed, ctx-errored, cancel,
     * stall, resume, log, lock (the debugger's queue changed), dropped
     * (this client fell behind); for consoles also console (the lock
     * holder's output, in detail) and error (a request was refused) */
    const char *kind;
    uint32_t actor;     /* where it happened (not for log, dropped) */
    const char *path;   /* that actor's path, or a log record's */
    uint64_t time_us;
    uint64_t cid;       /* the call or context, as its caller numbered it */
    uint32_t peer;      /* the other actor: the child for spawn and exit */
    const char *fn;     /* the function, or the child's name */
    const char *detail; /* a sentence: how it exited, the cancel's reason, the log message */
    int level;          /* log records */
    uint64_t count;     /* dropped: how many events were lost */
    size_t detail_len;  /* detail's length: console output may hold any bytes */
    const char *op;     /* lock: queued, granted, released, skipped, left, and
                           on attaching, holding and waiting */
    unsigned waiting;   /* lock: how many sessions wait after the change */
} cn_event_t;

/* Starts the event feed on c. After this, use c only for cn_client_event
 * (snapshots need their own connection). */
CN_EXTERN int cn_client_subscribe(cn_client_t *c, int64_t timeout_ms);

/* The next event, waiting up to timeout_ms: 0 with *ev filled (its strings
 * live until the next call on c), CN_ETIMEDOUT, or an error if the tree
 * went away. */
CN_EXTERN int cn_client_event(cn_client_t *c, cn_event_t *ev, int64_t timeout_ms);

/* ---------------------------------------------------------------------------
 * The debugger's console (docs/debugger.md)
 */

/* How much of the event feed a console gets, for cn_client_console. */
enum {
    CN_EVENTS_NONE = 0,        /* lock changes and the holder's output only */
    CN_EVENTS_ALL = 1,         /* and the whole feed */
    CN_EVENTS_NO_CONTEXTS = 2, /* and the feed but the contexts' own events (ctx-*, stall,
                                  resume): a client that reads contexts from snapshots
                                  spares a busy tree one or more events per context */
};

/* Makes c a console: the root sends it the lock's state at once (lock
 * events with op holding and waiting), then every lock change and the lock
 * holder's output (console events), and as much of the event feed as
 * `events` (CN_EVENTS_*) asks for. While any console is attached the root grants the lock. Read
 * with cn_client_event. On a console, the requests below (and
 * cn_client_cancel) are only sent: a refusal comes back as an "error"
 * event. */
CN_EXTERN int cn_client_console(cn_client_t *c, int events, int64_t timeout_ms);

/* The connection's socket, to poll for input alongside others. Data may be
 * buffered already: after it polls readable, call cn_client_event with
 * timeout 0 until it returns CN_ETIMEDOUT (or see cn_client_pending). */
CN_EXTERN int cn_client_fd(const cn_client_t *c);

/* 1 if c has read more than it has handed out (the rest of a batch of
 * events, or frames after the last one returned), else 0. A poll of
 * cn_client_fd does not see those bytes: a caller that stops calling
 * cn_client_event before CN_ETIMEDOUT (to give its screen a turn, say)
 * asks this, and reads on without polling while it says 1. */
CN_EXTERN int cn_client_pending(const cn_client_t *c);

/* One line of input for the lock holder (no newline needed). */
CN_EXTERN int cn_client_console_send(cn_client_t *c, const char *line, size_t len,
                                     int64_t timeout_ms);

/* Breaks into actor `actor`: its threads stop and it queues for the
 * console. */
CN_EXTERN int cn_client_break(cn_client_t *c, uint32_t actor, int64_t timeout_ms);

/* "skip": the holder goes to the back of the queue, its session intact,
 * and the next waiter gets the console. "release": the holder is made to
 * continue and loses the console. */
CN_EXTERN int cn_client_lock_op(cn_client_t *c, const char *op, int64_t timeout_ms);

/* The actor whose id, name or path is `which`, or whose path ends with it
 * ("sup-1/worker-0"); NULL if none, or if a name or the end of a path
 * matches several (then *ambiguous is set, if given). */
CN_EXTERN const cn_snap_actor_t *cn_snapshot_find(const cn_snapshot_t *s, const char *which,
                                                  int *ambiguous);

#ifdef __cplusplus
}
#endif

#endif /* CANOPY_CLIENT_H */
