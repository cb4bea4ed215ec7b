/*
 * test_route.c: the route table and id ranges (src/router/route.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router/route.h"

static void test_add_find_del(void **state)
{
    (void)state;
    cn_route_table_t t;
    cn_route_table_init(&t);
    assert_null(cn_route_find(&t, 5));
    assert_int_equal(cn_route_del(&t, 5), CN_ENOENT);

    assert_int_equal(cn_route_add(&t, 5, 1, 2, "worker-3", 8, 1000), 0);
    const cn_route_t *r = cn_route_find(&t, 5);
    assert_non_null(r);
    assert_int_equal(r->id, 5);
    assert_int_equal(r->parent, 1);
    assert_int_equal(r->via, 2);
    assert_int_equal(r->learned_us, 1000);
    assert_string_equal(r->name, "worker-3");

    /* The same route again is fine and keeps the first time; a claim to
     * the same id through another stream is refused. */
    assert_int_equal(cn_route_add(&t, 5, 1, 2, "worker-3", 8, 2000), 0);
    assert_int_equal(cn_route_find(&t, 5)->learned_us, 1000);
    assert_int_equal(cn_route_add(&t, 5, 1, 9, "evil", 4, 3000), CN_EINVAL);
    assert_int_equal(cn_route_find(&t, 5)->via, 2);
    assert_int_equal(cn_route_count(&t), 1);

    assert_int_equal(cn_route_del(&t, 5), 0);
    assert_null(cn_route_find(&t, 5));
    assert_int_equal(cn_route_count(&t), 0);
    cn_route_table_fini(&t);
}

static void test_long_name_is_cut(void **state)
{
    (void)state;
    cn_route_table_t t;
    cn_route_table_init(&t);
    char name[200];
    memset(name, 'n', sizeof(name));
    assert_int_equal(cn_route_add(&t, 1, 0, 1, name, sizeof(name), 0), 0);
    assert_int_equal(strlen(cn_route_find(&t, 1)->name), CN_ROUTE_NAME_MAX - 1);
    assert_int_equal(cn_route_add(&t, 2, 0, 1, NULL, 0, 0), 0);
    assert_string_equal(cn_route_find(&t, 2)->name, "");
    cn_route_table_fini(&t);
}

struct collected {
    uint32_t ids[4096];
    size_t n;
};

static void collect(const cn_route_t *r, void *arg)
{
    struct collected *c = arg;
    c->ids[c->n++] = r->id;
}

static void test_del_via_and_spoofing(void **state)
{
    (void)state;
    cn_route_table_t t;
    cn_route_table_init(&t);
    /* Stream 1 leads to child 10 and its subtree 11..40; stream 2 to child
     * 50 and 51..60. */
    for (uint32_t id = 10; id <= 40; id++)
        assert_int_equal(cn_route_add(&t, id, id == 10 ? 0 : 10, 1, "a", 1, 0), 0);
    for (uint32_t id = 50; id <= 60; id++)
        assert_int_equal(cn_route_add(&t, id, id == 50 ? 0 : 50, 2, "b", 1, 0), 0);

    /* src checks: the peer itself, its subtree, and not the other one's. */
    assert_true(cn_route_src_ok(&t, 1, 10, 10));
    assert_true(cn_route_src_ok(&t, 1, 10, 33));
    assert_false(cn_route_src_ok(&t, 1, 10, 55));
    assert_false(cn_route_src_ok(&t, 1, 10, 0)); /* the root is not below */
    assert_false(cn_route_src_ok(&t, 1, 10, 99));

    struct collected c = {.n = 0};
    assert_int_equal(cn_route_del_via(&t, 1, collect, &c), 31);
    assert_int_equal(c.n, 31);
    for (uint32_t id = 10; id <= 40; id++)
        assert_null(cn_route_find(&t, id));
    for (uint32_t id = 50; id <= 60; id++)
        assert_non_null(cn_route_find(&t, id));
    assert_int_equal(cn_route_count(&t), 11);
    assert_false(cn_route_src_ok(&t, 1, 10, 33));
    assert_int_equal(cn_route_del_via(&t, 1, NULL, NULL), 0);
    cn_route_table_fini(&t);
}

/* Random adds, deletes and stream drops against a plain array. Ids come
 * from a small space so that probe chains collide and wrap. */
static void test_random_against_reference(void **state)
{
    (void)state;
    enum { SPACE = 3000, OPS = 200000 };
    static int32_t ref[SPACE]; /* via + 1, or 0 when absent */
    memset(ref, 0, sizeof(ref));
    cn_route_table_t t;
    cn_route_table_init(&t);
    const char *seed_env = getenv("CN_TEST_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : 42;
    size_t count = 0;

    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        uint32_t id = (r >> 4) % SPACE, via = (r >> 20) % 7;
        switch (r % 16) {
        default: /* add, most of the time */
            if (ref[id] == 0) {
                assert_int_equal(cn_route_add(&t, id, 0, via, "x", 1, 0), 0);
                ref[id] = (int32_t)via + 1;
                count++;
            } else {
                int want = (uint32_t)(ref[id] - 1) == via ? 0 : CN_EINVAL;
                assert_int_equal(cn_route_add(&t, id, 0, via, "x", 1, 0), want);
            }
            break;
        case 10:
        case 11:
        case 12:
        case 13:
            assert_int_equal(cn_route_del(&t, id), ref[id] ? 0 : CN_ENOENT);
            if (ref[id])
                count--;
            ref[id] = 0;
            break;
        case 14:
            if (op % 7 == 0) { /* now and then drop a whole stream */
                size_t want = 0;
                for (uint32_t i = 0; i < SPACE; i++)
                    if (ref[i] == (int32_t)via + 1)
                        want++, ref[i] = 0;
                assert_int_equal(cn_route_del_via(&t, via, NULL, NULL), want);
                count -= want;
            }
            break;
        }
        assert_int_equal(cn_route_count(&t), count);
        if (op % 997 == 0 || (r % 16) == 14) /* compare all after drops too */
            for (uint32_t i = 0; i < SPACE; i++) {
                const cn_route_t *found = cn_route_find(&t, i);
                if (ref[i] == 0)
                    assert_null(found);
                else
                    assert_true(found && found->via == (uint32_t)(ref[i] - 1));
            }
    }
    cn_route_table_fini(&t);
}

static void count_cb(const cn_route_t *r, void *arg)
{
    (void)r;
    (*(size_t *)arg)++;
}

static void test_foreach_and_many(void **state)
{
    (void)state;
    cn_route_table_t t;
    cn_route_table_init(&t);
    for (uint32_t id = 1; id <= 10000; id++)
        assert_int_equal(cn_route_add(&t, id * 16, 0, id % 3, "w", 1, id), 0);
    size_t n = 0;
    cn_route_foreach(&t, count_cb, &n);
    assert_int_equal(n, 10000);
    assert_true(t.map.cap * 3 >= t.map.count * 4); /* load factor stays <= 3/4 */
    for (uint32_t id = 1; id <= 10000; id++)
        assert_int_equal(cn_route_find(&t, id * 16)->learned_us, id);
    cn_route_table_fini(&t);
    cn_route_table_fini(&t); /* twice is harmless */
}

static void test_idrange(void **state)
{
    (void)state;
    cn_idrange_t r;
    cn_idrange_init(&r, 2);
    uint32_t id;
    assert_int_equal(cn_idrange_take(&r, &id), CN_EAGAIN);
    assert_true(cn_idrange_want_more(&r));
    assert_false(cn_idrange_want_more(&r)); /* one request in flight */

    assert_int_equal(cn_idrange_give(&r, 0, 4), CN_EINVAL);              /* 0 is the root */
    assert_int_equal(cn_idrange_give(&r, 10, 0), CN_EINVAL);             /* empty */
    assert_int_equal(cn_idrange_give(&r, UINT32_MAX - 1, 4), CN_EINVAL); /* wraps */
    assert_int_equal(cn_idrange_give(&r, 10, 4), 0);
    assert_int_equal(cn_idrange_left(&r), 4);
    assert_int_equal(cn_idrange_take(&r, &id), 0);
    assert_int_equal(id, 10);
    assert_false(cn_idrange_want_more(&r)); /* 3 left > low water 2 */
    assert_int_equal(cn_idrange_take(&r, &id), 0);
    assert_true(cn_idrange_want_more(&r));            /* 2 left: ask early */
    assert_int_equal(cn_idrange_give(&r, 100, 3), 0); /* kept as the spare */
    assert_int_equal(cn_idrange_give(&r, 200, 3), CN_EAGAIN);
    assert_int_equal(cn_idrange_left(&r), 5);

    uint32_t want[] = {12, 13, 100, 101, 102};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(cn_idrange_take(&r, &id), 0);
        assert_int_equal(id, want[i]);
    }
    assert_int_equal(cn_idrange_take(&r, &id), CN_EAGAIN);
}

static void test_idpool(void **state)
{
    (void)state;
    cn_idpool_t p;
    cn_idpool_init(&p);
    uint32_t first;
    assert_int_equal(cn_idpool_grant(&p, 0, &first), CN_EINVAL);
    assert_int_equal(cn_idpool_grant(&p, 8, &first), 0);
    assert_int_equal(first, 1);
    assert_int_equal(cn_idpool_grant(&p, 8, &first), 0);
    assert_int_equal(first, 9);
    /* Exhaustion is an error, never a wrap back onto live ids. */
    p.next = UINT32_MAX - 4;
    assert_int_equal(cn_idpool_grant(&p, 8, &first), CN_ERANGE);
    assert_int_equal(cn_idpool_grant(&p, 4, &first), 0);
    assert_int_equal(first, UINT32_MAX - 4);
    assert_int_equal(cn_idpool_grant(&p, 1, &first), CN_ERANGE);
}

/* The map under the route table, with two-part keys as pending calls use
 * them, against a plain 2-D array. */
static void test_cmap_pairs_against_reference(void **state)
{
    (void)state;
    enum { K1 = 40, K2 = 60 };
    static void *ref[K1][K2];
    memset(ref, 0, sizeof(ref));
    cn__cmap_t m;
    cn__cmap_init(&m);
    unsigned seed = 7;
    for (int op = 0; op < 100000; op++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t a = (seed >> 8) % K1;
        uint64_t b = (uint64_t)((seed >> 16) % K2) << 33; /* high bits matter too */
        void *v = (void *)(uintptr_t)(op + 1), *old = NULL;
        if ((seed >> 28) < 10) {
            int rc = cn__cmap_put(&m, a, b, v, &old);
            if (ref[a][b >> 33]) {
                assert_int_equal(rc, 1);
                assert_ptr_equal(old, ref[a][b >> 33]);
            } else {
                assert_int_equal(rc, 0);
                ref[a][b >> 33] = v;
            }
        } else {
            assert_ptr_equal(cn__cmap_del(&m, a, b), ref[a][b >> 33]);
            ref[a][b >> 33] = NULL;
        }
        if (op % 499 == 0)
            for (uint32_t i = 0; i < K1; i++)
                for (uint64_t j = 0; j < K2; j++)
                    assert_ptr_equal(cn__cmap_get(&m, i, j << 33), ref[i][j]);
    }
    cn__cmap_fini(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_del),
        cmocka_unit_test(test_long_name_is_cut),
        cmocka_unit_test(test_del_via_and_spoofing),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_foreach_and_many),
        cmocka_unit_test(test_idrange),
        cmocka_unit_test(test_idpool),
        cmocka_unit_test(test_cmap_pairs_against_reference),
    };
    return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
