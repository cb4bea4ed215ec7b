/*
 * latch.h: a FIFO hand-off queue that threads block on (internal).
 *
 * The broker puts items (results, messages, jobs) into a latch, and task or
 * user threads take them out, waiting with a timeout when it is empty. It
 * follows mitogen's Latch, with its hard-won rules:
 *   - wake-ups are FIFO: the thread that has waited longest gets the next
 *     item, handed to it directly, so no later arrival can steal it;
 *   - no lost wake-ups: an item put while a waiter is timing out is either
 *     delivered to it or stays queued, never dropped;
 *   - no file descriptor per waiter: each waiter sleeps on a futex word in
 *     its own stack frame.
 * Items are intrusive: anything queued embeds a cn__node_t.
 *
 * Any thread may call any function here; the latch has its own mutex.
 */
#ifndef CN_LATCH_H
#define CN_LATCH_H

#include <pthread.h>
#include <stdint.h>

#include "canopy/errors.h"
#include "freeze.h"

/* Waits forever; every public blocking call takes an explicit timeout, and
 * this is the value that says "no limit" on purpose. */
#define CN__FOREVER (-1)

typedef struct cn__node {
    struct cn__node *next;
} cn__node_t;

typedef struct cn__waiter cn__waiter_t;

typedef struct cn__latch {
    pthread_mutex_t mu;
    cn__node_t *head, *tail;      /* queued items */
    cn__waiter_t *wfirst, *wlast; /* sleeping threads, oldest first */
    unsigned nwaiting;
    int closed; /* 0, or the error every get returns once drained */
} cn__latch_t;

void cn__latch_init(cn__latch_t *l);

/* Destroys the latch. No thread may be waiting; queued items are not
 * touched (drain them first if they own memory). */
void cn__latch_fini(cn__latch_t *l);

/* Hands `n` to the oldest waiter, or queues it. Returns 0, or the close
 * error if the latch is closed (the caller still owns `n`). */
int cn__latch_put(cn__latch_t *l, cn__node_t *n);

/*
 * Takes the oldest item into *out, waiting up to timeout_ms (CN__FOREVER
 * for no limit; 0 to poll). Returns 0; CN_ETIMEDOUT; or, once the latch is
 * closed and empty, its close error. Items queued before the close are
 * still delivered first.
 */
int cn__latch_get(cn__latch_t *l, int64_t timeout_ms, cn__node_t **out);

/* As cn__latch_get, but first spins up to spin_ns nanoseconds (never
 * beyond the timeout) before it sleeps: for a wait expected to end within
 * microseconds (a call's reply), where sleeping and being woken costs
 * more than the spin. A put to a spinning waiter makes no system call. At
 * most half the CPUs in the process's affinity mask spin at once, and
 * none when it has one; the others sleep at once. */
int cn__latch_get_spin(cn__latch_t *l, int64_t timeout_ms, int64_t spin_ns, cn__node_t **out);

/*
 * When to spin: one of these per thread and kind of wait (a thread-local).
 * cn__spin_budget gives the spin for the next wait: CN__SPIN_NS, or 0 once
 * CN__SPIN_MISSES waits in a row have outlasted it, and then again every
 * CN__SPIN_RETRY waits to see whether things got faster. cn__spin_done
 * records how long a wait that was given a spin took. So a thread whose
 * waits end within microseconds spins, and one waiting on slow work pays
 * a spin only now and then.
 */
#define CN__SPIN_NS 100000
#define CN__SPIN_MISSES 8
#define CN__SPIN_RETRY 32

typedef struct cn__spin {
    unsigned misses;  /* spinning waits in a row that outlasted the spin */
    unsigned skipped; /* waits since, without spinning */
} cn__spin_t;

int64_t cn__spin_budget(cn__spin_t *s);
void cn__spin_done(cn__spin_t *s, int64_t waited_ns);

/* Closes the latch with `err` (negative): every waiter wakes with it, and
 * later puts fail with it. Closing twice keeps the first error. */
void cn__latch_close(cn__latch_t *l, int err);

/* CLOCK_MONOTONIC in nanoseconds: the clock every timeout here runs on. */
int64_t cn__mono_ns(void);

/* A deadline timeout_ms from now, INT64_MAX for CN__FOREVER (or any
 * negative timeout). */
int64_t cn__deadline(int64_t timeout_ms);

/* Initialises cv to time its waits on CLOCK_MONOTONIC, as
 * cn__cond_wait_until expects. */
void cn__cond_init_mono(pthread_cond_t *cv);

/* Waits on cv (a CLOCK_MONOTONIC condition variable, mu held) until it is
 * signalled or the deadline passes. Callers loop on their own condition. */
void cn__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns);

/* Called by every latch and cn__cond_wait_until wait before the thread
 * sleeps; the runtime defines it (actor.c: the broker sends at once what
 * it holds back for a moment in bulk mode, which the sleeper may be
 * waiting on). Costs one relaxed load when nothing is held back. */
void cn__about_to_sleep(void);

/* Items queued now (for the inspector). */
unsigned cn__latch_size(cn__latch_t *l);

#endif /* CN_LATCH_H */
