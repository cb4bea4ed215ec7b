/*
 * latch.c: the FIFO latch declared in latch.h.
 *
 * Invariant: a waiter is in the sleeper list exactly while its `state` is
 * WAITING, and both change only under the latch mutex. So a timing-out
 * waiter that takes the mutex and finds itself DELIVERED owns the item it
 * was handed; one that finds itself still WAITING unlinks itself, and no
 * put can pick it after that. That is what makes wake-ups neither lost nor
 * duplicated.
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
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { WAITING = 0, DELIVERED = 1 };

struct cn__waiter {
    cn__waiter_t *next, *prev;
    _Atomic uint32_t state;
    cn__node_t *item; /* set with DELIVERED; NULL means woken by close */
};

static void futex_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *rel)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expect, rel, NULL, 0);
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
    return timeout_ms < 0 ? INT64_MAX : cn__mono_ns() + timeout_ms * 1000000;
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
    atomic_store_explicit(word, DELIVERED, memory_order_release);
    return word;
}

int cn__latch_put(cn__latch_t *l, cn__node_t *n)
{
    cn__lock(&l->mu);
    if (l->closed) {
        int err = l->closed;
        cn__unlock(&l->mu);
        return err;
    }
    _Atomic uint32_t *wake = NULL;
    if (l->wfirst) {
        wake = deliver(l, l->wfirst, n);
    } else {
        n->next = NULL;
        if (l->tail)
            l->tail->next = n;
        else
            l->head = n;
        l->tail = n;
    }
    cn__unlock(&l->mu);
    if (wake)
        futex_wake(wake);
    return 0;
}

int cn__latch_get(cn__latch_t *l, int64_t timeout_ms, cn__node_t **out)
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
    atomic_init(&w.state, WAITING);
    if (l->wlast)
        l->wlast->next = &w;
    else
        l->wfirst = &w;
    l->wlast = &w;
    l->nwaiting++;
    cn__unlock(&l->mu);

    int64_t deadline = cn__deadline(timeout_ms);
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
            futex_wake(deliver(l, l->wfirst, NULL)); /* under the mutex */
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
