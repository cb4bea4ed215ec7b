/*
 * route.c: the route table and id ranges declared in route.h.
 *
 * What it does: maps actor ids to the local stream that leads to them, and
 * hands out actor ids. What it does not do: send anything. The broker turns
 * the results into ADD_ROUTE, DEL_ROUTE, DEAD and ALLOCATE_ID messages.
 *
 * Invariant: in the hash table, every entry sits between its home slot and
 * the first empty slot after it (linear probing). Deletion shifts later
 * entries back to keep that true, so lookups may stop at the first empty
 * slot and there are no tombstones.
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Route table
 */

#define MIN_CAP 16

static size_t home(uint32_t id, size_t cap)
{
    /* Fibonacci hashing spreads the consecutive ids a parent hands out. */
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

void cn_route_table_init(cn_route_table_t *t)
{
    memset(t, 0, sizeof(*t));
}

void cn_route_table_fini(cn_route_table_t *t)
{
    free(t->slots);
    free(t->used);
    memset(t, 0, sizeof(*t));
}

static size_t find_slot(const cn_route_table_t *t, uint32_t id, int *found)
{
    size_t i = home(id, t->cap);
    while (t->used[i]) {
        if (t->slots[i].id == id) {
            *found = 1;
            return i;
        }
        i = (i + 1) & (t->cap - 1);
    }
    *found = 0;
    return i;
}

static int grow(cn_route_table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : MIN_CAP;
    cn_route_t *slots = malloc(cap * sizeof(*slots));
    uint8_t *used = calloc(cap, 1);
    if (slots == NULL || used == NULL) {
        free(slots);
        free(used);
        return CN_ENOMEM;
    }
    cn_route_table_t n = {slots, used, cap, 0};
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->used[i])
            continue;
        int found;
        size_t j = find_slot(&n, t->slots[i].id, &found);
        n.slots[j] = t->slots[i];
        n.used[j] = 1;
        n.count++;
    }
    free(t->slots);
    free(t->used);
    *t = n;
    return 0;
}

int cn_route_add(cn_route_table_t *t, uint32_t id, uint32_t parent, uint32_t via, const char *name,
                 size_t name_len, uint64_t now_us)
{
    int found;
    if (t->cap == 0 || (t->count + 1) * 4 > t->cap * 3) { /* keep load <= 3/4 */
        int rc = grow(t);
        if (rc < 0)
            return rc;
    }
    size_t i = find_slot(t, id, &found);
    if (found)
        return t->slots[i].via == via ? 0 : CN_EINVAL;

    cn_route_t *r = &t->slots[i];
    r->id = id;
    r->parent = parent;
    r->via = via;
    r->learned_us = now_us;
    if (name_len >= sizeof(r->name))
        name_len = sizeof(r->name) - 1;
    if (name_len > 0)
        memcpy(r->name, name, name_len);
    r->name[name_len] = '\0';
    t->used[i] = 1;
    t->count++;
    return 0;
}

const cn_route_t *cn_route_find(const cn_route_table_t *t, uint32_t id)
{
    int found;
    if (t->count == 0)
        return NULL;
    size_t i = find_slot(t, id, &found);
    return found ? &t->slots[i] : NULL;
}

/* Empties slot i and shifts back the entries after it that would otherwise
 * be cut off from their home slot. */
static void remove_at(cn_route_table_t *t, size_t i)
{
    size_t mask = t->cap - 1, j = i;
    t->used[i] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->used[j])
            break;
        size_t h = home(t->slots[j].id, t->cap);
        /* Entry j may move to the hole at i unless its home lies
         * cyclically in (i, j]. */
        int stays = (i <= j) ? (i < h && h <= j) : (i < h || h <= j);
        if (stays)
            continue;
        t->slots[i] = t->slots[j];
        t->used[i] = 1;
        t->used[j] = 0;
        i = j;
    }
    t->count--;
}

int cn_route_del(cn_route_table_t *t, uint32_t id)
{
    int found;
    if (t->count == 0)
        return CN_ENOENT;
    size_t i = find_slot(t, id, &found);
    if (!found)
        return CN_ENOENT;
    remove_at(t, i);
    return 0;
}

size_t cn_route_del_via(cn_route_table_t *t, uint32_t via,
                        void (*cb)(const cn_route_t *r, void *arg), void *arg)
{
    size_t n = 0;
    /* Removing at i can shift a later entry back into i, so i is looked at
     * again after a removal. Shifts only ever move entries from later in a
     * probe chain into the hole, and every slot before i holds no match
     * (wrapped chains move entries within that visited region only), so
     * one pass finds them all; test_route's randomized test checks it. */
    for (size_t i = 0; i < t->cap;) {
        if (t->used[i] && t->slots[i].via == via) {
            if (cb)
                cb(&t->slots[i], arg);
            remove_at(t, i);
            n++;
        } else {
            i++;
        }
    }
    return n;
}

int cn_route_src_ok(const cn_route_table_t *t, uint32_t via, uint32_t peer, uint32_t src)
{
    if (src == peer)
        return 1;
    const cn_route_t *r = cn_route_find(t, src);
    return r != NULL && r->via == via;
}

void cn_route_foreach(const cn_route_table_t *t, void (*cb)(const cn_route_t *r, void *arg),
                      void *arg)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->used[i])
            cb(&t->slots[i], arg);
}

/* ---------------------------------------------------------------------------
 * Id ranges
 */

void cn_idrange_init(cn_idrange_t *r, uint32_t low_water)
{
    memset(r, 0, sizeof(*r));
    r->low_water = low_water;
}

int cn_idrange_take(cn_idrange_t *r, uint32_t *id)
{
    if (r->next == r->end) {
        if (r->spare_next == r->spare_end)
            return CN_EAGAIN;
        r->next = r->spare_next, r->end = r->spare_end;
        r->spare_next = r->spare_end = 0;
    }
    *id = r->next++;
    return 0;
}

int cn_idrange_give(cn_idrange_t *r, uint32_t first, uint32_t count)
{
    if (count == 0 || first == 0 || (uint64_t)first + count > UINT32_MAX)
        return CN_EINVAL;
    if (r->next == r->end) {
        r->next = first, r->end = first + count;
    } else if (r->spare_next == r->spare_end) {
        r->spare_next = first, r->spare_end = first + count;
    } else {
        return CN_EAGAIN;
    }
    r->requested = 0;
    return 0;
}

uint64_t cn_idrange_left(const cn_idrange_t *r)
{
    return (uint64_t)(r->end - r->next) + (r->spare_end - r->spare_next);
}

int cn_idrange_want_more(cn_idrange_t *r)
{
    if (r->requested || cn_idrange_left(r) > r->low_water)
        return 0;
    r->requested = 1;
    return 1;
}

void cn_idpool_init(cn_idpool_t *p)
{
    p->next = 1; /* 0 is the root */
}

int cn_idpool_grant(cn_idpool_t *p, uint32_t count, uint32_t *first)
{
    /* UINT32_MAX itself is never an actor id, so that it can mean "none". */
    if (count == 0)
        return CN_EINVAL;
    if (p->next + count > UINT32_MAX)
        return CN_ERANGE;
    *first = (uint32_t)p->next;
    p->next += count;
    return 0;
}
