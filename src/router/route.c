/*
 * route.c: the route table and id ranges declared in route.h.
 *
 * What it does: maps actor ids to the local stream that leads to them, and
 * hands out actor ids. What it does not do: send anything. The broker turns
 * the results into ADD_ROUTE, DEL_ROUTE, DEAD and ALLOCATE_ID messages.
 *
 * Invariant: a route's `via` never changes once learned; a second claim to
 * the same id through another stream is refused, never overwritten, so a
 * child cannot take over another subtree's ids.
 */
#include "route.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Route table
 */

void cn_route_table_init(cn_route_table_t *t)
{
    cn__cmap_init(&t->map);
}

void cn_route_table_fini(cn_route_table_t *t)
{
    for (size_t i = 0; i < t->map.cap; i++)
        if (t->map.e[i].used)
            free(t->map.e[i].val);
    cn__cmap_fini(&t->map);
}

size_t cn_route_count(const cn_route_table_t *t)
{
    return t->map.count;
}

void cn_route_set_pid(cn_route_table_t *t, uint32_t id, int pid)
{
    cn_route_t *r = cn__cmap_get(&t->map, id, 0);
    if (r)
        r->pid = pid;
}

int cn_route_add(cn_route_table_t *t, uint32_t id, uint32_t parent, uint32_t via, const char *name,
                 size_t name_len, uint64_t now_us)
{
    const cn_route_t *old = cn_route_find(t, id);
    if (old)
        return old->via == via ? 0 : CN_EINVAL;

    cn_route_t *r = malloc(sizeof(*r));
    if (r == NULL)
        return CN_ENOMEM;
    r->id = id;
    r->parent = parent;
    r->via = via;
    r->learned_us = now_us;
    r->pid = 0;
    if (name_len >= sizeof(r->name))
        name_len = sizeof(r->name) - 1;
    if (name_len > 0)
        memcpy(r->name, name, name_len);
    r->name[name_len] = '\0';
    if (cn__cmap_put(&t->map, id, 0, r, NULL) != 0) {
        free(r);
        return CN_ENOMEM;
    }
    return 0;
}

const cn_route_t *cn_route_find(const cn_route_table_t *t, uint32_t id)
{
    return cn__cmap_get(&t->map, id, 0);
}

int cn_route_del(cn_route_table_t *t, uint32_t id)
{
    cn_route_t *r = cn__cmap_del(&t->map, id, 0);
    if (r == NULL)
        return CN_ENOENT;
    free(r);
    return 0;
}

size_t cn_route_del_via(cn_route_table_t *t, uint32_t via,
                        void (*cb)(const cn_route_t *r, void *arg), void *arg)
{
    size_t n = 0;
    /* Removing slot i can shift a later entry back into it, so i is looked
     * at again after a removal. Shifts only move entries from later in a
     * probe chain into the hole (a wrapped chain moves entries within the
     * already-visited slots, which hold no match), so one pass finds them
     * all; test_route's randomized test checks it. */
    for (size_t i = 0; i < t->map.cap;) {
        cn_route_t *r = t->map.e[i].val;
        if (t->map.e[i].used && r->via == via) {
            if (cb)
                cb(r, arg);
            cn__cmap_del_at(&t->map, i);
            free(r);
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
    for (size_t i = 0; i < t->map.cap; i++)
        if (t->map.e[i].used)
            cb(t->map.e[i].val, arg);
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
