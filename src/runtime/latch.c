/*
 * latch.c: the FIFO latch declared in latch.h.
 *
 * Invariant: a waiter is in the sleeper list exactly while its `state` is
 * WAITING or SPINNING, and it becomes DELIVERED only under the latch
 * mutex. So a timing-out waiter that takes the mutex and finds itself
 * DELIVERED owns the item it was handed; one that finds itself still
 * WAITING unlinks itself, and no put can pick it after that. That is what
 * makes wake-ups neither lost nor duplicated. A spinning waiter turns
 * itself from SPINNING to WAITING with a compare-and-swap before it
 * sleeps, and a put swaps DELIVERED in: whichever comes second sees the
 * other, so a put wakes exactly the waiters that may be asleep.
 *
 * A put wakes its waiter after dropping the mutex. Waking under the mutex
 * made every hand-off cost two wake-ups: the woken thread ran straight
 * into the mutex its waker still held, slept on it, and had to be woken
 * again by the unlock. The wake that follows the unlock may land after the
 * waiter has returned and its stack word is reused: a private futex wake
 * only names an address, so the worst it can do is wake some other futex
 * waiter there spuriously, and every waiter here (and in glibc) re-checks
 * its word after waking.
 *
 * A waiter still takes the mutex once before it returns, even when handed
 * an item: the latch is often freed by its waiter next (a spawn request's,
 * a call's), and the putter may still be inside the unlock. Taking the
 * mutex waits for that (TSan found it, as a destroy racing the unlock,
 * when a first version returned without it). By then the mutex is almost
 * always free, so this costs no system call.
 */
#include "latch.h"

#include <errno.h>
#include <sched.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { WAITING = 0, DELIVERED = 1, SPINNING = 2 };

struct cn__waiter {
    cn__waiter_t *next, *prev;
    _Atomic uint32_t state;
    cn__node_t *item; /* set with DELIVERED; NULL means woken by close */
};

static void futex_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *rel)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, rel, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int64_t cn__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cn__deadline(int64_t timeout_ms)
{
    /* Only CN_FOREVER is forever: a time left that came out negative
     * (a deadline already past) is no time at all, not an endless wait. */
    if (timeout_ms == CN__FOREVER)
        return INT64_MAX;
    return cn__mono_ns() + (timeout_ms > 0 ? timeout_ms : 0) * 1000000;
}

void cn__cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

void cn__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns)
{
    cn__about_to_sleep();
    if (deadline_ns == INT64_MAX) {
        pthread_cond_wait(cv, mu);
    } else {
        struct timespec ts = {deadline_ns / 1000000000, deadline_ns % 1000000000};
        pthread_cond_timedwait(cv, mu, &ts);
    }
}

void cn__latch_init(cn__latch_t *l)
{
    pthread_mutex_init(&l->mu, NULL);
    l->head = l->tail = NULL;
    l->wfirst = l->wlast = NULL;
    l->nwaiting = 0;
    l->closed = 0;
}

void cn__latch_fini(cn__latch_t *l)
{
    pthread_mutex_destroy(&l->mu);
}

static void unlink_waiter(cn__latch_t *l, cn__waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        l->wfirst = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->wlast = w->prev;
    l->nwaiting--;
}

/* Under the mutex: hands `item` (NULL for a close) to waiter w, whose
 * word the caller must then wake (futex_wake), after unlocking or not.
 * Nothing of w may be read after the store but its word's address. */
static _Atomic uint32_t *deliver(cn__latch_t *l, cn__waiter_t *w, cn__node_t *item)
{
    unlink_waiter(l, w);
    w->item = item;
    _Atomic uint32_t *word = &w->state;
    /* A spinning waiter needs no system call to see it. */
    if (atomic_exchange_explicit(word, DELIVERED, memory_order_acq_rel) == SPINNING)
        return NULL;
    return word;
}

static void wake(_Atomic uint32_t *word)
{
    if (word)
        futex_wake(word);
}

int cn__latch_put(cn__latch_t *l, cn__node_t *n)
{
    cn__lock(&l->mu);
    if (l->closed) {
        int err = l->closed;
        cn__unlock(&l->mu);
        return err;
    }
    _Atomic uint32_t *woken = NULL;
    if (l->wfirst) {
        woken = deliver(l, l->wfirst, n);
    } else {
        n->next = NULL;
        if (l->tail)
            l->tail->next = n;
        else
            l->head = n;
        l->tail = n;
    }
    cn__unlock(&l->mu);
    wake(woken);
    return 0;
}

int cn__latch_get(cn__latch_t *l, int64_t timeout_ms, cn__node_t **out)
{
    return cn__latch_get_spin(l, timeout_ms, 0, out);
}

int64_t cn__spin_budget(cn__spin_t *s)
{
    if (s->misses >= CN__SPIN_MISSES && ++s->skipped % CN__SPIN_RETRY != 0)
        return 0;
    s->skipped = 0;
    return CN__SPIN_NS;
}

void cn__spin_done(cn__spin_t *s, int64_t waited_ns)
{
    s->misses = waited_ns > CN__SPIN_NS ? s->misses + 1 : 0;
}

/* Spinning is worth it only while another CPU runs whatever will wake
 * the spinner, so at most half the CPUs this process may run on (its
 * affinity mask, as taskset or a cpuset leaves it) spin at once, and none
 * on one. */
static _Atomic int spinners;
static _Atomic int max_spinners = -1;

static int spin_slot(void)
{
    int max = atomic_load_explicit(&max_spinners, memory_order_relaxed);
    if (max < 0) {
        cpu_set_t set;
        int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
        max = n / 2;
        atomic_store_explicit(&max_spinners, max, memory_order_relaxed);
    }
    if (atomic_fetch_add_explicit(&spinners, 1, memory_order_relaxed) < max)
        return 1;
    atomic_fetch_sub_explicit(&spinners, 1, memory_order_relaxed);
    return 0;
}

int cn__latch_get_spin(cn__latch_t *l, int64_t timeout_ms, int64_t spin_ns, cn__node_t **out)
{
    *out = NULL;
    cn__lock(&l->mu);
    if (l->head) {
        /* Items are only queued while nobody waits, so taking one here
         * never jumps ahead of a sleeper. */
        cn__node_t *n = l->head;
        l->head = n->next;
        if (l->head == NULL)
            l->tail = NULL;
        cn__unlock(&l->mu);
        *out = n;
        return 0;
    }
    if (l->closed || timeout_ms == 0) {
        int err = l->closed ? l->closed : CN_ETIMEDOUT;
        cn__unlock(&l->mu);
        return err;
    }

    cn__waiter_t w = {.next = NULL, .prev = l->wlast, .item = NULL};
    if (spin_ns > 0 && timeout_ms > 0 && spin_ns > timeout_ms * 1000000)
        spin_ns = timeout_ms * 1000000;
    if (spin_ns > 0 && !spin_slot())
        spin_ns = 0;
    atomic_init(&w.state, spin_ns > 0 ? SPINNING : WAITING);
    if (l->wlast)
        l->wlast->next = &w;
    else
        l->wfirst = &w;
    l->wlast = &w;
    l->nwaiting++;
    cn__unlock(&l->mu);

    int64_t deadline = cn__deadline(timeout_ms);
    if (spin_ns > 0) {
        int64_t until = cn__mono_ns() + spin_ns;
        uint32_t st;
        do {
            for (int i = 0; i < 64; i++) {
                st = atomic_load_explicit(&w.state, memory_order_acquire);
                if (st != SPINNING)
                    break;
                cpu_relax();
            }
        } while (st == SPINNING && cn__mono_ns() < until);
        uint32_t spinning = SPINNING; /* from here on, a put must wake us */
        atomic_compare_exchange_strong_explicit(&w.state, &spinning, WAITING,
                                                memory_order_acq_rel, memory_order_acquire);
        atomic_fetch_sub_explicit(&spinners, 1, memory_order_relaxed);
    }
    if (atomic_load_explicit(&w.state, memory_order_acquire) == WAITING)
        cn__about_to_sleep();
    while (atomic_load_explicit(&w.state, memory_order_acquire) == WAITING) {
        if (deadline == INT64_MAX) {
            futex_wait(&w.state, WAITING, NULL);
            continue;
        }
        int64_t left = deadline - cn__mono_ns();
        if (left <= 0)
            break;
        struct timespec rel = {left / 1000000000, left % 1000000000};
        futex_wait(&w.state, WAITING, &rel);
    }

    /* A spinner sees the item before its putter has unlocked: wait for
     * the unlock awake rather than sleep on the mutex. */
    int held = 0;
    for (int i = 0; spin_ns > 0 && i < 200 && !held; i++) {
        held = pthread_mutex_trylock(&l->mu) == 0;
        if (held)
            cn__tl_held++; /* as cn__lock counts it */
        else
            cpu_relax();
    }
    if (!held)
        cn__lock(&l->mu); /* see the top */
    int rc;
    if (atomic_load_explicit(&w.state, memory_order_acquire) == DELIVERED) {
        *out = w.item;
        rc = w.item ? 0 : l->closed;
    } else {
        unlink_waiter(l, &w); /* timed out, and nobody picked us */
        rc = CN_ETIMEDOUT;
    }
    cn__unlock(&l->mu);
    return rc;
}

void cn__latch_close(cn__latch_t *l, int err)
{
    cn__lock(&l->mu);
    if (!l->closed) {
        l->closed = err < 0 ? err : CN_EPIPE;
        while (l->wfirst)
            wake(deliver(l, l->wfirst, NULL)); /* under the mutex */
    }
    cn__unlock(&l->mu);
}

unsigned cn__latch_size(cn__latch_t *l)
{
    unsigned n = 0;
    cn__lock(&l->mu);
    for (cn__node_t *p = l->head; p; p = p->next)
        n++;
    cn__unlock(&l->mu);
    return n;
}
