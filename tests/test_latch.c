/*
 * test_latch.c: the FIFO latch (src/runtime/latch.c), with real threads.
 * Run under TSan too: make check SANITIZE=thread.
 */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/latch.h"

typedef struct item {
    cn__node_t node; /* first, so a node pointer is an item pointer */
    int value;
} item_t;

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned waiting(cn__latch_t *l)
{
    pthread_mutex_lock(&l->mu);
    unsigned n = l->nwaiting;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static void test_put_get_and_timeouts(void **state)
{
    (void)state;
    cn__latch_t l;
    cn__latch_init(&l);
    cn__node_t *n;
    assert_int_equal(cn__latch_get(&l, 0, &n), CN_ETIMEDOUT);
    assert_null(n);

    int64_t t0 = ms_now();
    assert_int_equal(cn__latch_get(&l, 50, &n), CN_ETIMEDOUT);
    assert_true(ms_now() - t0 >= 50); /* never early */
    assert_int_equal(waiting(&l), 0); /* the timed-out waiter is gone */
    /* Only CN_FOREVER (-1) waits without limit: a time left that came out
     * negative is a deadline already past, not an endless wait. */
    t0 = ms_now();
    assert_int_equal(cn__latch_get(&l, -5, &n), CN_ETIMEDOUT);
    assert_int_equal(cn__latch_get(&l, INT64_MIN / 2, &n), CN_ETIMEDOUT);
    assert_true(ms_now() - t0 < 1000);

    item_t a = {.value = 1}, b = {.value = 2};
    assert_int_equal(cn__latch_put(&l, &a.node), 0);
    assert_int_equal(cn__latch_put(&l, &b.node), 0);
    assert_int_equal(cn__latch_size(&l), 2);
    assert_int_equal(cn__latch_get(&l, 0, &n), 0);
    assert_ptr_equal(n, &a.node);
    assert_int_equal(cn__latch_get(&l, CN__FOREVER, &n), 0);
    assert_ptr_equal(n, &b.node);
    cn__latch_fini(&l);
}

struct fifo_arg {
    cn__latch_t *l;
    int got;
};

static void *fifo_waiter(void *p)
{
    struct fifo_arg *a = p;
    cn__node_t *n;
    if (cn__latch_get(a->l, 10000, &n) == 0)
        a->got = ((item_t *)n)->value;
    return NULL;
}

static void test_fifo_wake_order(void **state)
{
    (void)state;
    enum { N = 6 };
    cn__latch_t l;
    cn__latch_init(&l);
    pthread_t th[N];
    struct fifo_arg args[N];
    item_t items[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct fifo_arg){&l, -1};
        pthread_create(&th[i], NULL, fifo_waiter, &args[i]);
        while (waiting(&l) != (unsigned)i + 1) /* asleep before the next starts */
            usleep(100);
    }
    for (int i = 0; i < N; i++) {
        items[i].value = i;
        assert_int_equal(cn__latch_put(&l, &items[i].node), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].got, i); /* the longest waiter got the first item */
    }
    cn__latch_fini(&l);
}

enum { PRODUCERS = 3, CONSUMERS = 3, PER_PRODUCER = 20000 };

struct stress {
    cn__latch_t l;
    int64_t spin_ns; /* consumers spin this long before they sleep */
    item_t items[PRODUCERS * PER_PRODUCER];
    _Atomic int seen[PRODUCERS * PER_PRODUCER];
    _Atomic int received;
    _Atomic int timeouts;
};

static void *producer(void *p)
{
    struct stress *s = ((void **)p)[0];
    int base = (int)(intptr_t)((void **)p)[1] * PER_PRODUCER;
    for (int i = 0; i < PER_PRODUCER; i++) {
        s->items[base + i].value = base + i;
        if (cn__latch_put(&s->l, &s->items[base + i].node) != 0)
            abort();
        if (i % 1000 == 0)
            usleep(500); /* let consumers time out now and then */
    }
    return NULL;
}

static void *consumer(void *p)
{
    struct stress *s = p;
    int64_t give_up = ms_now() + 20000; /* a lost item must fail, not hang */
    while (atomic_load(&s->received) < PRODUCERS * PER_PRODUCER && ms_now() < give_up) {
        cn__node_t *n;
        int rc = cn__latch_get_spin(&s->l, 1, s->spin_ns, &n); /* short: timeouts race puts */
        if (rc == CN_ETIMEDOUT) {
            atomic_fetch_add(&s->timeouts, 1);
            continue;
        }
        if (rc != 0)
            abort();
        atomic_fetch_add(&s->seen[((item_t *)n)->value], 1);
        atomic_fetch_add(&s->received, 1);
    }
    return NULL;
}

static void stress_run(int64_t spin_ns)
{
    struct stress *s = calloc(1, sizeof(*s));
    s->spin_ns = spin_ns;
    cn__latch_init(&s->l);
    pthread_t pt[PRODUCERS], ct[CONSUMERS];
    void *pargs[PRODUCERS][2];
    for (int i = 0; i < CONSUMERS; i++)
        pthread_create(&ct[i], NULL, consumer, s);
    for (int i = 0; i < PRODUCERS; i++) {
        pargs[i][0] = s;
        pargs[i][1] = (void *)(intptr_t)i;
        pthread_create(&pt[i], NULL, producer, pargs[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(pt[i], NULL);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(ct[i], NULL);
    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        assert_int_equal(atomic_load(&s->seen[i]), 1);
    assert_int_equal(cn__latch_size(&s->l), 0);
    assert_int_equal(waiting(&s->l), 0);
    assert_true(atomic_load(&s->timeouts) > 0); /* the race was exercised */
    cn__latch_fini(&s->l);
    free(s);
}

static void test_no_lost_or_duplicate_wakeups(void **state)
{
    (void)state;
    stress_run(0);
}

/* The same with spinning waiters (as a call's caller spins): puts land
 * while they spin, as they stop spinning, and while they sleep. */
static void test_spinning_waiters_lose_nothing(void **state)
{
    (void)state;
    stress_run(300000);
}

/* A spin never outlasts the timeout. */
static void test_spin_is_capped_by_the_timeout(void **state)
{
    (void)state;
    cn__latch_t l;
    cn__latch_init(&l);
    cn__node_t *n;
    int64_t t0 = ms_now();
    assert_int_equal(cn__latch_get_spin(&l, 20, 10LL * 1000000000, &n), CN_ETIMEDOUT);
    int64_t took = ms_now() - t0;
    assert_true(took >= 20);
    assert_true(took < 2000);
    assert_int_equal(waiting(&l), 0);
    cn__latch_fini(&l);
}

/* The spin policy: spin while waits end within the spin; after enough
 * misses in a row, only every CN__SPIN_RETRY-th wait tries; a hit
 * brings spinning back. */
static void test_spin_policy(void **state)
{
    (void)state;
    cn__spin_t s = {0};
    assert_int_equal(cn__spin_budget(&s), CN__SPIN_NS);
    for (int i = 0; i < CN__SPIN_MISSES - 1; i++) {
        cn__spin_done(&s, CN__SPIN_NS + 1);
        assert_int_equal(cn__spin_budget(&s), CN__SPIN_NS); /* not yet */
    }
    cn__spin_done(&s, CN__SPIN_NS / 2); /* a hit: the count starts again */
    for (int i = 0; i < CN__SPIN_MISSES; i++) {
        assert_int_equal(cn__spin_budget(&s), CN__SPIN_NS);
        cn__spin_done(&s, CN__SPIN_NS + 1);
    }
    for (int i = 1; i < CN__SPIN_RETRY; i++)
        assert_int_equal(cn__spin_budget(&s), 0);
    assert_int_equal(cn__spin_budget(&s), CN__SPIN_NS); /* the retry */
    cn__spin_done(&s, CN__SPIN_NS + 1);                  /* still slow */
    assert_int_equal(cn__spin_budget(&s), 0);
    for (int i = 2; i < CN__SPIN_RETRY; i++)
        cn__spin_budget(&s);
    assert_int_equal(cn__spin_budget(&s), CN__SPIN_NS);
    cn__spin_done(&s, 1000); /* fast again */
    assert_int_equal(cn__spin_budget(&s), CN__SPIN_NS);
    assert_int_equal(cn__spin_budget(&s), CN__SPIN_NS);
}

struct owned {
    cn__latch_t *l;
    int64_t spin_ns;
    int got;
};

static void *owner(void *p)
{
    struct owned *o = p;
    cn__node_t *n;
    if (cn__latch_get_spin(o->l, 10000, o->spin_ns, &n) == 0)
        o->got = ((item_t *)n)->value;
    cn__latch_fini(o->l); /* as a spawn request's or a call's owner does */
    free(o->l);
    return NULL;
}

/* The thread that waits on a latch may free it as soon as it has its
 * item, while the putter is still on its way out of the put. Run under
 * TSan and ASan (make check SANITIZE=...): a first version of the
 * wake-after-unlock change let the waiter go before the putter had
 * unlocked, which TSan reported as a destroy racing the unlock. */
static void test_a_waiter_may_free_its_latch(void **state)
{
    (void)state;
    for (int i = 0; i < 2000; i++) {
        struct owned o = {calloc(1, sizeof(cn__latch_t)), i % 2 ? 200000 : 0, -1};
        cn__latch_init(o.l);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, owner, &o), 0);
        if (i % 3 == 0)
            usleep(50); /* sometimes asleep or spinning by then, sometimes not yet */
        item_t a = {.value = i};
        assert_int_equal(cn__latch_put(o.l, &a.node), 0);
        pthread_join(th, NULL);
        assert_int_equal(o.got, i);
    }
}

static void *close_waiter(void *p)
{
    cn__node_t *n;
    return (void *)(intptr_t)cn__latch_get(p, 10000, &n);
}

static void test_close_wakes_everyone(void **state)
{
    (void)state;
    cn__latch_t l;
    cn__latch_init(&l);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, close_waiter, &l);
    while (waiting(&l) != 3)
        usleep(100);
    int64_t t0 = ms_now();
    cn__latch_close(&l, CN_EDEAD);
    for (int i = 0; i < 3; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_int_equal((int)(intptr_t)rc, CN_EDEAD);
    }
    assert_true(ms_now() - t0 < 5000); /* woken, not timed out */

    item_t a = {.value = 1};
    assert_int_equal(cn__latch_put(&l, &a.node), CN_EDEAD);
    cn__latch_close(&l, CN_ECANCELED); /* the first error stays */
    cn__node_t *n;
    assert_int_equal(cn__latch_get(&l, 0, &n), CN_EDEAD);
    cn__latch_fini(&l);

    /* Items queued before the close still come out first. */
    cn__latch_init(&l);
    assert_int_equal(cn__latch_put(&l, &a.node), 0);
    cn__latch_close(&l, CN_EDEAD);
    assert_int_equal(cn__latch_get(&l, 0, &n), 0);
    assert_ptr_equal(n, &a.node);
    assert_int_equal(cn__latch_get(&l, 100, &n), CN_EDEAD);
    cn__latch_fini(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_and_timeouts),
        cmocka_unit_test(test_fifo_wake_order),
        cmocka_unit_test(test_no_lost_or_duplicate_wakeups),
        cmocka_unit_test(test_close_wakes_everyone),
        cmocka_unit_test(test_spinning_waiters_lose_nothing),
        cmocka_unit_test(test_spin_is_capped_by_the_timeout),
        cmocka_unit_test(test_spin_policy),
        cmocka_unit_test(test_a_waiter_may_free_its_latch),
    };
    return cmocka_run_group_tests_name("latch", tests, NULL, NULL);
}
