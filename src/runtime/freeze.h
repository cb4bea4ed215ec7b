/*
 * freeze.h: stopping every thread of this actor but the broker, and
 * reading their stacks (internal).
 *
 * The debugger stops an actor's threads to show where each one is (a
 * remote BREAK, a crash, `canopy bt`). The broker sends each thread
 * CN__SIG_FREEZE; the thread's handler records its backtrace and, when the
 * broker asked it to, parks until cn__thaw(). Threads that block the
 * signal are reported as not stopped, never waited for beyond the timeout.
 *
 * A thread must never park while it holds one of the runtime's locks, or
 * the broker, which needs them to talk to the console, would deadlock.
 * So every runtime lock is taken with cn__lock() and dropped with
 * cn__unlock(), which count the locks this thread holds; a thread signalled
 * while it holds any records its stack, keeps running, and parks at the
 * unlock that releases its last one. A thread blocked on a condition
 * variable therefore parks once it wakes and lets go, which is also the
 * first moment it could do anything.
 *
 * Locks that are not the runtime's (malloc's arenas, stdio) cannot be
 * tracked; a thread parked inside malloc holds its arena, and the broker
 * has its own arena, so in practice this does not bite. docs/debugger.md
 * says so.
 */
#ifndef CN_FREEZE_H
#define CN_FREEZE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define CN__BT_FRAMES 48

extern __thread int cn__tl_held __attribute__((tls_model("initial-exec")));
extern __thread volatile int cn__tl_park __attribute__((tls_model("initial-exec")));

/* Parks the calling thread if a freeze asked it to (its last lock just
 * went). */
void cn__park_point(void);

static inline void cn__lock(pthread_mutex_t *m)
{
    cn__tl_held++;
    pthread_mutex_lock(m);
}

static inline void cn__unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
    if (--cn__tl_held == 0 && cn__tl_park)
        cn__park_point();
}

/* One thread's state in a freeze. */
enum {
    CN__FZ_ASKED,    /* signalled, no answer yet */
    CN__FZ_SEEN,     /* stack recorded; it runs on (a look, not a stop) */
    CN__FZ_DEFERRED, /* stack recorded; it parks once out of the runtime's locks */
    CN__FZ_PARKED,   /* stopped */
    CN__FZ_NOANSWER, /* did not answer in time (signal blocked?) */
};

typedef struct cn__thr_stack {
    int tid;
    int state;   /* CN__FZ_* */
    int nframes; /* 0 if unknown */
    void *frames[CN__BT_FRAMES];
    char comm[16]; /* the thread's name, from /proc */
} cn__thr_stack_t;

/* Installs the signal handler (once, at start-up). */
void cn__freeze_init(void);

/* Makes backtrace() safe to call in a signal handler from now on (its
 * first call loads the unwinder). cn__freeze does it; a crash handler's
 * owner must do it beforehand. */
void cn__unwinder_warm(void);

/*
 * Broker only. Signals every thread of the process except the broker and
 * `skip_tid` (0 for none), waits up to timeout_ms for each to record its
 * stack, and fills out[0..*n) (at most max). With park set, the threads
 * stay stopped until cn__thaw(); without, they run on at once. Returns 0,
 * or CN_EBUSY if a freeze is already in force.
 */
int cn__freeze(int park, int skip_tid, int64_t timeout_ms, cn__thr_stack_t *out, size_t max,
               size_t *n);

/* Broker only: lets parked threads go. A no-op when nothing is frozen. */
void cn__thaw(void);

/* Whether a freeze with park is in force. */
int cn__frozen(void);

/* The broker's thread id, once it runs. */
extern int cn__broker_tid;

/* The calling thread's stack from the caller of `fn` on: fn is the
 * function calling this (cn_breakpoint_at, cn_call_fail). Returns how
 * many frames. */
int cn__stack_after(void **frames, int max, const void *fn);

/* The stack of a thread in a signal handler, from the instruction the
 * signal interrupted on (the handler's third argument, a ucontext_t).
 * Safe in a signal handler once cn__unwinder_warm has run. */
int cn__stack_from_signal(void **frames, int max, const void *ucontext);

#endif /* CN_FREEZE_H */
