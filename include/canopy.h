/*
 * canopy.h: the public API of libcanopy, an actor-tree runtime.
 *
 * A program describes itself in a cn_config_t (the functions others may
 * call, and the entry points its children may run) and hands control to
 * cn_run(). Started normally, the program becomes the root of a new tree
 * and cn_run() runs cfg->main. Started by cn_spawn() (the same binary
 * re-executed, or any program linking libcanopy), cn_run() sees the
 * inherited channel in its environment, greets its parent and serves.
 *
 * Threads. Each actor process has one broker thread that owns every socket
 * and never runs user code, and a pool of task threads that run incoming
 * calls. Every function below may be called from any thread unless it says
 * otherwise. Every blocking call takes a timeout in milliseconds and may
 * return CN_ETIMEDOUT, CN_ECANCELED or CN_EDEAD; CN_FOREVER (-1) waits
 * without limit, on purpose. Any other negative timeout is a deadline
 * already past: the call waits no more than with 0.
 *
 * Values are msgpack (msgpack-c's msgpack_object and msgpack_packer).
 * Ownership is stated per function; nothing is freed behind the caller.
 */
#ifndef CANOPY_H
#define CANOPY_H

#include <stdint.h>

#include <msgpack.h>

#include "canopy/defs.h"
#include "canopy/errors.h"
#include "canopy/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CN_FOREVER (-1)
#define CN_ROOT_ID 0u

/* A handle to an actor anywhere in the tree: just its id. Messages to a
 * sibling or cousin travel up to the common ancestor and down again. */
typedef struct cn_portal {
    uint32_t id;
} cn_portal_t;

/* ---------------------------------------------------------------------------
 * Start-up
 */

typedef struct cn_call cn_call_t;

/*
 * A function other actors may call. `args` is the caller's argument object
 * (valid until the function returns). Pack exactly one result object with
 * `result` and return 0 (nothing packed answers nil), or return a negative
 * code (cn_call_fail() sets a message) to raise an error at the caller.
 * The caller gets an error that says which, too, if the function returns
 * a positive number (CN_EINVAL), packs more than one object, or packs more
 * than a message holds, 16 MiB (CN_EMSGSIZE). Runs on a task thread.
 */
typedef int (*cn_fn_t)(cn_call_t *call, const msgpack_object *args, msgpack_packer *result);

typedef struct cn_export {
    const char *name;
    cn_fn_t fn;
} cn_export_t;

/* An actor's main: the root's cfg->main, or a child's entry. argv[0] is
 * the program, argv[1..] what the spawner passed. The return value is the
 * process's exit status. Runs on the process's main thread. */
typedef int (*cn_main_t)(int argc, char **argv);

typedef struct cn_entry {
    const char *name;
    cn_main_t main;
} cn_entry_t;

typedef struct cn_config {
    const char *name;           /* the tree's (the root's) name, as an actor's; default
                                   "root"; cn_run refuses a bad one */
    const cn_export_t *exports; /* ends with {NULL, NULL}; may be NULL */
    const cn_entry_t *entries;  /* ends with {NULL, NULL}; may be NULL */
    cn_main_t main;             /* the root's main; NULL serves until cancelled */
    unsigned max_threads;       /* task threads at most; 0 means 64 */
    int debug;                  /* debug mode for the whole tree (as CANOPY_DEBUG=1):
                                   crashes and task errors stop in the debugger */
} cn_config_t;

/*
 * Runs this process as an actor. As the root: starts the broker, runs
 * cfg->main, then cancels and reaps the whole tree, closes what it opened
 * (sockets, the log file; libuv keeps one pipe for the process) and
 * returns main's status. As a child: greets the parent, runs the entry it
 * was spawned with (or serves calls until cancelled), then exits the
 * process; it does not return. Returns a negative code if the runtime
 * cannot start (the reason is printed to stderr). Call once, from the
 * main thread. After it returns, calls, contexts and spawns fail with
 * CN_ECANCELED: the tree is down.
 */
CN_EXTERN int cn_run(int argc, char **argv, const cn_config_t *cfg);

/* This actor, its parent (itself for the root), and its path such as
 * "root/sup-1/worker-3" (a static string). */
CN_EXTERN cn_portal_t cn_self(void);
CN_EXTERN cn_portal_t cn_parent(void);
CN_EXTERN const char *cn_path(void);

/* The root: the path of the tree's attach socket, where `canopy` finds it
 * (docs/cli.md); NULL in a child, or when it could not be made or was
 * turned off with CANOPY_ATTACH=0. */
CN_EXTERN const char *cn_attach_path(void);

/* ---------------------------------------------------------------------------
 * Spawning
 */

typedef struct cn_spawn_opts {
    const char *entry;       /* entry in the child's cfg->entries; NULL serves only */
    const char *exe;         /* program to run; NULL re-executes this binary */
    const char *const *argv; /* NULL-terminated extra arguments, or NULL */
} cn_spawn_opts_t;

/*
 * Starts a child actor called `name` (letters, digits, '-', '_' and '.';
 * at most 63 bytes) and waits until it has greeted this actor. Its stdout
 * and stderr become log records at the root. On success *out is the child
 * and 0 is returned; else CN_EINVAL (bad name or entry), CN_EEXIST (a
 * child of this actor that is still up has that name), CN_ETIMEDOUT (the
 * child was killed), CN_EDEAD (it exited or crashed before greeting, or
 * has no such entry; logged), CN_ECANCELED (this actor is shutting down),
 * or a system error, one of: CN_ENOENT (exe is missing, or a directory
 * on its path is not one), CN_EACCES (not executable), CN_ENOEXEC (not
 * a program this system can run), CN_EBUSY (exe is open for writing),
 * CN_EMFILE (this process is out of file descriptors: a spawn needs six
 * for a moment and keeps three), CN_EAGAIN (the process limit,
 * RLIMIT_NPROC, is reached), CN_ENOMEM, CN_ENAMETOOLONG, CN_EIO (any
 * other). Failures are logged in the system's words, with what ran out.
 * exe is run as given: a name without '/' is not looked up in PATH, and
 * a relative one is taken from this process's working directory. opts
 * may be NULL.
 */
CN_EXTERN int cn_spawn(const char *name, const cn_spawn_opts_t *opts, cn_portal_t *out,
                       int64_t timeout_ms);

/*
 * Cancels a child of this actor (its children first, depth-first) and waits
 * until it has exited and been reaped: it gets SHUTDOWN, then SIGTERM
 * after 1 s, then SIGKILL after another. Returns 0, CN_ENOENT if `child` is
 * not a live child of this actor, or CN_ETIMEDOUT.
 */
CN_EXTERN int cn_cancel(cn_portal_t child, int64_t timeout_ms);

/*
 * Waits until `child`, a child of this actor, has exited (whoever ended
 * it: its own return, a crash, kill -9, a cancel) and has been reaped,
 * and gives its wait status (WIFEXITED, WEXITSTATUS, WIFSIGNALED,
 * WTERMSIG) in *status (may be NULL; -1 if it was never known). A
 * supervisor's way to learn that a worker died, and how, without polling
 * it. Returns 0 at once for one of the last 64 children to exit;
 * CN_ENOENT if `child` is no child of this actor; CN_ETIMEDOUT.
 */
CN_EXTERN int cn_child_wait(cn_portal_t child, int *status, int64_t timeout_ms);

/*
 * Sleeps up to timeout_ms, waking early when this actor is cancelled. A
 * cancellation point for entries and long handlers: returns 0 after the
 * full sleep, CN_ECANCELED once the actor is shutting down (at once, if it
 * already is).
 */
CN_EXTERN int cn_sleep(int64_t timeout_ms);

/* ---------------------------------------------------------------------------
 * Calls
 */

/* Why a call failed: remotely (CN_EREMOTE), its target died (CN_EDEAD),
 * or it failed here (timed out, cancelled, or could not start; origin is
 * this actor and fn is ""). Strings are NUL-terminated, owned by the
 * result. */
typedef struct cn_error {
    char *origin;    /* path of the actor the error came from */
    char *fn;        /* the function that failed, or "" */
    char *message;   /* what happened: the error text or the death's cause */
    char *backtrace; /* or NULL */
    char *via;       /* actors that relayed it, nearest the origin first, or NULL */
    int code;        /* the CN_E* code the remote side reported */
} cn_error_t;

typedef struct cn_result {
    msgpack_object value; /* the return value, on success */
    cn_error_t error;     /* on any failure */
    void *priv_;
} cn_result_t;

/*
 * Calls `fn` on actor `to` with `args` (NULL sends nil) and waits for its
 * result. Returns 0 with res->value set; CN_EREMOTE with res->error from
 * the remote function; CN_EDEAD with res->error.message saying which actor
 * died and how; CN_ETIMEDOUT; CN_ECANCELED if this task or actor is being
 * cancelled (the call is not sent); CN_EINVAL if fn is NULL or cn_run is
 * not running. Every failure says why in res->error.message. In every case
 * call cn_result_free(res) afterwards; res is zeroed first.
 */
CN_EXTERN int cn_call(cn_portal_t to, const char *fn, const msgpack_object *args, cn_result_t *res,
                      int64_t timeout_ms);

/* Frees what a result holds. Safe on a zeroed or already freed result.
 * Every function that fills a result (cn_call, cn_open's `started`,
 * cn_ctx_result, cn_stream_recv, cn_sub_recv) zeroes it first, whatever
 * it then returns (CN_EINVAL for a NULL handle too), so freeing it after
 * any of them is always safe. */
CN_EXTERN void cn_result_free(cn_result_t *res);

/* In a cn_fn_t: sets the message the caller will see, records a backtrace
 * of this point when one is available, and returns `code` (a negative
 * CN_E* code), so a handler can `return cn_call_fail(...)`.
 * A function that returns CN_EREMOTE from a failed nested call without
 * calling cn_call_fail relays that error as it came, adding itself to the
 * error's `via`. */
CN_EXTERN int cn_call_fail(cn_call_t *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* `return cn_call_fail(...)` compiles to a tail call when optimized, and
 * the failing function's frame is then gone from the error's backtrace
 * and from the debugger's post-mortem. The macro keeps the call out of
 * tail position; (cn_call_fail)(...) calls the function itself. */
#if defined(__GNUC__) && !defined(CN_NO_CALL_FAIL_MACRO)
#define cn_call_fail(...)                                                                          \
    __extension__({                                                                                \
        int cn_fail_rc_ = (cn_call_fail)(__VA_ARGS__);                                             \
        __asm__ __volatile__("" ::: "memory");                                                     \
        cn_fail_rc_;                                                                               \
    })
#endif

/* In a cn_fn_t: the actor that made the call. */
CN_EXTERN cn_portal_t cn_call_caller(const cn_call_t *call);

/* ---------------------------------------------------------------------------
 * Contexts: long-lived remote tasks
 *
 * A context is a call whose function reports that it has started (with a
 * value) and then keeps running until it returns. The same exported
 * cn_fn_t serves plain calls and contexts; inside it, cn_started() is
 * what a context's opener waits for.
 */

typedef struct cn_ctx cn_ctx_t;

/*
 * Starts `fn` on `to` as a context and waits until it calls cn_started().
 * Returns 0 with *ctx set and started->value the value it passed; 1 if the
 * function returned without starting (*ctx is NULL, started->value is its
 * result); CN_EREMOTE or CN_EDEAD with started->error; CN_ETIMEDOUT (the
 * remote task is sent CANCEL). Free `started` with cn_result_free and the
 * context with cn_ctx_free.
 */
CN_EXTERN int cn_open(cn_portal_t to, const char *fn, const msgpack_object *args, cn_ctx_t **ctx,
                      cn_result_t *started, int64_t timeout_ms);

/* Waits for the context's function to return. Returns 0 with res->value,
 * or CN_EREMOTE, CN_EDEAD, CN_ECANCELED (it stopped because it was
 * cancelled) with res->error, or CN_ETIMEDOUT. May be called again; every
 * call after the end gives the same outcome. */
CN_EXTERN int cn_ctx_result(cn_ctx_t *ctx, cn_result_t *res, int64_t timeout_ms);

/* Asks the remote task to stop (it sees CN_ECANCELED at its next blocking
 * call, and so, transitively, does every call it has in flight) and waits
 * for it to end. Returns 0 when it ended (the cancel was acknowledged, or
 * it had already ended), CN_ETIMEDOUT when it did not end in time, or
 * CN_ECANCELED when this end was closed first without the task's answer
 * (`canopy cancel` of this caller's end, or this actor shutting down):
 * the task may still be running. */
CN_EXTERN int cn_ctx_cancel(cn_ctx_t *ctx, int64_t timeout_ms);

/* Frees the context; one still running is sent CANCEL first (without
 * waiting). Another thread still waiting on it (recv, send, result) wakes
 * with CN_ECANCELED, and this returns once it has left. NULL is a no-op. */
CN_EXTERN void cn_ctx_free(cn_ctx_t *ctx);

/* Cancellation state, as the inspector shows it. */
typedef enum cn_cancel_state {
    CN_CANCEL_NONE,
    CN_CANCEL_REQUESTED,
    CN_CANCEL_ACKNOWLEDGED, /* the task stopped for it (ended with CN_ECANCELED) */
    CN_CANCEL_DONE,         /* the task ended after the request, but otherwise */
    CN_CANCEL_TIMED_OUT     /* cn_ctx_cancel gave up waiting; it may still end */
} cn_cancel_state_t;

typedef struct cn_cancel_info {
    cn_cancel_state_t state;
    uint64_t requested_us; /* when it was asked for (Unix epoch), or 0 */
    char by[256];          /* who asked and why, e.g. "cn_ctx_cancel (by root)" */
} cn_cancel_info_t;

/* An operator's cancel of this end (canopy cancel) counts too: REQUESTED,
 * then ACKNOWLEDGED or DONE when the task answers, which may be after
 * this end has closed. */

CN_EXTERN cn_cancel_state_t cn_ctx_cancel_state(const cn_ctx_t *ctx);

/* The state's name as canopy shows it: "none", "requested", "acknowledged",
 * "done", "timed-out"; "?" for a value that is none of these. */
CN_EXTERN const char *cn_cancel_state_name(cn_cancel_state_t state);

/* The opener's view of ctx's cancellation. */
CN_EXTERN void cn_ctx_cancel_info(const cn_ctx_t *ctx, cn_cancel_info_t *out);

/* In a cn_fn_t: the callee's view: NONE, or REQUESTED with who and when. */
CN_EXTERN void cn_call_cancel_info(const cn_call_t *call, cn_cancel_info_t *out);

/* In a cn_fn_t opened as a context: reports that it has started, handing
 * `value` (NULL sends nil) to the opener. Returns 0; CN_EINVAL if this is
 * a plain call or it was already called; CN_ECANCELED if the context has
 * been cancelled. */
CN_EXTERN int cn_started(cn_call_t *call, const msgpack_object *value);

/* In a cn_fn_t: whether the caller has cancelled it. Blocking calls made
 * from the function return CN_ECANCELED once it has. */
CN_EXTERN int cn_call_cancelled(const cn_call_t *call);

/* ---------------------------------------------------------------------------
 * Streams: both ways over a context, with backpressure
 *
 * Each side of a started context may open its end of the context's one
 * stream. Opening lets the peer send up to `window` messages ahead of this
 * side's cn_stream_recv; a sender with no credit left blocks (backpressure),
 * or, in overrun mode, fails at once with CN_EOVERRUN (before the peer has
 * opened its end, it waits for that within its timeout). Nothing is dropped
 * and no buffer grows past its window. The stream belongs to the context
 * (or call) and is freed with it.
 */

typedef struct cn_stream cn_stream_t;

typedef struct cn_stream_opts {
    unsigned window; /* messages this side buffers; 0 means 64; at most 65536 */
    int overrun;     /* sending to a full buffer fails with CN_EOVERRUN */
} cn_stream_opts_t;

typedef struct cn_stream_stats {
    uint64_t msgs_in, msgs_out; /* YIELDs received (taken or buffered), sent */
    uint64_t bytes_in, bytes_out; /* their frames' bytes */
    uint64_t last_us;  /* time of the last message either way (Unix epoch;
                          a sent one's to the kernel tick, 1-4 ms) */
    unsigned window;   /* this side's receive buffer */
    unsigned buffered; /* received, not yet taken by cn_stream_recv */
    int64_t credit;    /* messages this side may still send */
    int send_blocked;  /* a sender is waiting for credit now, */
    uint64_t blocked_since_us; /* since then (Unix epoch) */
    uint64_t peer_window;      /* the peer's receive window, once known */
    int local_open, local_closed, peer_opened, peer_closed;
} cn_stream_stats_t;

/* Opens the opener's end of ctx's stream. Returns 0, or CN_EINVAL (bad
 * window, or already open: cn_stream_last_error says which). */
CN_EXTERN int cn_ctx_stream(cn_ctx_t *ctx, const cn_stream_opts_t *opts, cn_stream_t **out);

/* In a context's function: opens the callee's end. CN_EINVAL before
 * cn_started, in a plain call, or if already open (cn_stream_last_error
 * says which). */
CN_EXTERN int cn_call_stream(cn_call_t *call, const cn_stream_opts_t *opts, cn_stream_t **out);

/* Sends one value (NULL sends nil), waiting up to timeout_ms for credit.
 * Returns 0; CN_ETIMEDOUT; CN_EOVERRUN (overrun mode); CN_EPIPE after
 * cn_stream_close; CN_EMSGSIZE (the frame would pass 16 MiB); once the
 * context is over, how it ended: CN_EOF (returned), CN_EREMOTE (the other
 * side failed: its error comes from cn_stream_recv or cn_ctx_result),
 * CN_EDEAD or CN_ECANCELED. cn_stream_last_error() says why in words. */
CN_EXTERN int cn_stream_send(cn_stream_t *s, const msgpack_object *value, int64_t timeout_ms);

/* Takes the next value into msg->value (free with cn_result_free). Returns
 * 0; CN_EOF once the peer closed its end or the context returned; the
 * context's error (CN_EREMOTE, CN_EDEAD, CN_ECANCELED, with msg->error) if
 * it ended so; CN_ETIMEDOUT; CN_EBUSY if another thread is receiving on
 * this end now (one at a time; several consumers: cn_bcast_new), or a hub
 * owns it. */
CN_EXTERN int cn_stream_recv(cn_stream_t *s, cn_result_t *msg, int64_t timeout_ms);

/* Closes this side's sending end: the peer's recv returns CN_EOF after
 * what was sent. This side may still receive. */
CN_EXTERN int cn_stream_close(cn_stream_t *s);

CN_EXTERN void cn_stream_stats(const cn_stream_t *s, cn_stream_stats_t *out);

/* Why this thread's last stream call that failed did, in words ("" if
 * none has): cn_ctx_stream, cn_call_stream, cn_stream_*, and the hub's
 * cn_bcast_new, cn_bcast_subscribe and cn_sub_recv; after CN_EOF, how
 * the stream ended. Kept per thread, as
 * errno is: a sender and a receiver on two threads each see their own,
 * and it stays readable after the stream is freed (s is not read). */
CN_EXTERN const char *cn_stream_last_error(const cn_stream_t *s);

/* ---------------------------------------------------------------------------
 * Broadcast: several local consumers of one incoming stream
 *
 * A hub takes over a stream's receiving side (cn_stream_recv on it returns
 * CN_EBUSY after this) and keeps its last `capacity` messages. Each subscriber sees
 * every message from when it subscribed, in order, unless it falls more
 * than `capacity` behind the fastest: then it skips to the newest message
 * and is told how many it missed. The stream is drained only as fast as the
 * fastest subscriber reads, so the sender still feels backpressure.
 */

typedef struct cn_bcast cn_bcast_t;
typedef struct cn_sub cn_sub_t;

/* capacity: 1..65536. CN_EBUSY if the stream has a hub already. Free the
 * hub after its subscribers, before the stream's context. */
CN_EXTERN int cn_bcast_new(cn_stream_t *s, unsigned capacity, cn_bcast_t **out);
CN_EXTERN void cn_bcast_free(cn_bcast_t *b);

/* A subscriber that starts at the next message to arrive. Any thread. */
CN_EXTERN int cn_bcast_subscribe(cn_bcast_t *b, cn_sub_t **out);
CN_EXTERN void cn_sub_free(cn_sub_t *sub);

/* The subscriber's next message, as cn_stream_recv. *missed (if not NULL)
 * is set to how many it skipped because it lagged, else 0. */
CN_EXTERN int cn_sub_recv(cn_sub_t *sub, cn_result_t *msg, uint64_t *missed, int64_t timeout_ms);

/* ---------------------------------------------------------------------------
 * Logging
 */

typedef enum cn_log_level {
    CN_LOG_TRACE,
    CN_LOG_DEBUG,
    CN_LOG_INFO,
    CN_LOG_CANCEL,
    CN_LOG_WARN,
    CN_LOG_ERROR
} cn_log_level_t;

/* Sends a log record to the root, which prints it to stderr as
 * "time level actor-path: message". Records below the level are dropped at
 * the source. Never blocks on the network. */
CN_EXTERN void cn_log(cn_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets this actor's level; children spawned later inherit it. The initial
 * level comes from CANOPY_LOG_LEVEL (trace, debug, info, cancel, warn,
 * error), else info. */
CN_EXTERN void cn_log_set_level(cn_log_level_t level);

/* "trace" ... "error". */
CN_EXTERN const char *cn_log_level_name(cn_log_level_t level);

/* ---------------------------------------------------------------------------
 * The debugger (docs/debugger.md)
 */

/*
 * Stops the calling thread in the tree's debugger: this actor queues for
 * the console lock in the root, and once it has the console the user
 * talks to its REPL (bt, threads, ctx, ...). Returns 0 when the user types
 * `continue`; CN_ECANCELED if the session ended with this actor (or the
 * thread's task) cancelled meanwhile, by the parent or the REPL's
 * `cancel`, so that the code after it can stop. The thread waits as long as that takes, without a timeout,
 * as a breakpoint in any debugger does; other threads run on. With no
 * console attached, it waits in the lock queue and the root logs how to
 * attach (`canopy attach TREE`).
 *
 * Errors: CN_EINVAL before cn_run; CN_EBUSY on the broker thread (a
 * callback of the runtime's own); CN_ENOMEM.
 */
#define cn_breakpoint() cn_breakpoint_at(__FILE__, __LINE__, __func__)
CN_EXTERN int cn_breakpoint_at(const char *file, int line, const char *fn);

/* Where a debug command or variable writes its answer. */
typedef struct cn_debug_out cn_debug_out_t;
CN_EXTERN void cn_debug_printf(cn_debug_out_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Adds a command to this actor's REPL: `name ARGS...` at its prompt calls
 * fn(argc, argv, out, arg), argv[0] being the name and argv[argc] NULL, as
 * for main (a line's first 16 words count; the rest are ignored; argv
 * lives until fn returns). `vars` at the prompt
 * calls every variable's fn(out, arg) to print its current value.
 *
 * Both run on the actor's broker thread, possibly while the program's
 * other threads are stopped (after a break or a crash): they must not
 * block, and must not take a lock the program's threads may hold; read
 * plain or atomic values. Names are letters, digits, '_', '-' and '.',
 * and may not be a built-in command's. Register from any thread, before
 * or after cn_run. Returns 0, CN_EINVAL (bad or taken name), or CN_ENOMEM
 * (64 of each at most).
 */
typedef int (*cn_debug_cmd_fn)(int argc, char **argv, cn_debug_out_t *out, void *arg);
typedef void (*cn_debug_var_fn)(cn_debug_out_t *out, void *arg);
CN_EXTERN int cn_debug_command(const char *name, const char *help, cn_debug_cmd_fn fn, void *arg);
CN_EXTERN int cn_debug_var(const char *name, cn_debug_var_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* CANOPY_H */
