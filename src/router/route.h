/*
 * route.h: an actor's route table and id ranges (internal).
 *
 * Pure bookkeeping for the router: which stream leads to which actor id,
 * whether a message's src may arrive on a stream, and which ids this actor
 * may hand to new children. No I/O and no locking: the broker thread owns
 * these structures, and every function here is called on it only.
 *
 * The model is mitogen's: routes are learned from ADD_ROUTE, which travels
 * up the tree, so an actor knows every id in the subtrees of its children.
 * Anything else is reached through the parent, which is not in the table.
 * Streams are named by a small integer `via` that the runtime assigns; the
 * table never dereferences it.
 */
#ifndef CN_ROUTE_H
#define CN_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "canopy/errors.h"
#include "cmap.h"

#define CN_ROUTE_NAME_MAX 64 /* longer names are cut, with a NUL */

typedef struct cn_route {
    uint32_t id;         /* the destination actor */
    uint32_t parent;     /* the actor that spawned it */
    uint32_t via;        /* the local stream it is reached through */
    uint64_t learned_us; /* when this actor learned the route */
    int pid;             /* its process, as its parent told (ADD_ROUTE), or 0 */
    char name[CN_ROUTE_NAME_MAX];
} cn_route_t;

/* Actor id -> route. */
typedef struct cn_route_table {
    cn__cmap_t map; /* (id, 0) -> cn_route_t *, each malloc'd */
} cn_route_table_t;

void cn_route_table_init(cn_route_table_t *t);

/* Records the process of the actor `id`, if it is routed. */
void cn_route_set_pid(cn_route_table_t *t, uint32_t id, int pid);
void cn_route_table_fini(cn_route_table_t *t);

/*
 * Learns that `id` (spawned by `parent`, called `name`, of `name_len`
 * bytes) is reached through stream `via`. Returns 0; CN_EINVAL if `id` is
 * already routed through another stream (a second claim to an id is a
 * protocol violation: the caller logs it and keeps the first route); 0 if
 * the same route is learned again (the time is kept); CN_ENOMEM.
 */
int cn_route_add(cn_route_table_t *t, uint32_t id, uint32_t parent, uint32_t via, const char *name,
                 size_t name_len, uint64_t now_us);

/* The route to `id`, or NULL. Valid until the table is next changed. */
const cn_route_t *cn_route_find(const cn_route_table_t *t, uint32_t id);

/* How many routes the table holds. */
size_t cn_route_count(const cn_route_table_t *t);

/* Forgets the route to `id`. Returns 0 or CN_ENOENT. */
int cn_route_del(cn_route_table_t *t, uint32_t id);

/*
 * Forgets every route through stream `via` (its stream dropped), calling
 * `cb` with each one before it goes, so the caller can send DEL_ROUTE up
 * and wake waiters. `cb` must not change the table. Returns the count.
 */
size_t cn_route_del_via(cn_route_table_t *t, uint32_t via,
                        void (*cb)(const cn_route_t *r, void *arg), void *arg);

/*
 * Whether a message from `src` may arrive on stream `via`, whose peer is
 * actor `peer`: true when src is the peer itself or is routed through
 * `via`. The anti-spoofing check for streams to children.
 */
int cn_route_src_ok(const cn_route_table_t *t, uint32_t via, uint32_t peer, uint32_t src);

/* Calls `cb` for every route, in no particular order. `cb` must not
 * change the table. */
void cn_route_foreach(const cn_route_table_t *t, void (*cb)(const cn_route_t *r, void *arg),
                      void *arg);

/* ---------------------------------------------------------------------------
 * Id ranges
 *
 * A parent gives each new child an id from the range it holds. The root
 * hands out ranges from the whole id space (ALLOCATE_ID); a parent asks for
 * its next range when its current one runs low, so spawning rarely waits.
 */

typedef struct cn_idrange {
    uint32_t next, end;             /* current range: [next, end) */
    uint32_t spare_next, spare_end; /* the next range, if already granted */
    uint32_t low_water;             /* ask for more when fewer are left */
    int requested;                  /* an ALLOCATE_ID is in flight */
} cn_idrange_t;

void cn_idrange_init(cn_idrange_t *r, uint32_t low_water);

/* Takes the next id into *id. Returns 0, or CN_EAGAIN when no id is left
 * (the caller must wait for a range from the root). */
int cn_idrange_take(cn_idrange_t *r, uint32_t *id);

/* Adds a granted range [first, first + count). Returns 0, CN_EINVAL for an
 * empty or wrapping range, or CN_EAGAIN if two ranges are already held. */
int cn_idrange_give(cn_idrange_t *r, uint32_t first, uint32_t count);

/* Whether the caller should send ALLOCATE_ID now: the range is low and no
 * request is in flight. Marks the request as in flight when it says yes;
 * cn_idrange_give() clears that. */
int cn_idrange_want_more(cn_idrange_t *r);

/* Ids left across both ranges. */
uint64_t cn_idrange_left(const cn_idrange_t *r);

/* The root's pool: the id space after the root's own id 0. */
typedef struct cn_idpool {
    uint64_t next; /* first id not yet granted */
} cn_idpool_t;

void cn_idpool_init(cn_idpool_t *p);

/* Grants `count` ids: *first is set to the start. Returns 0, CN_EINVAL for
 * count 0, or CN_ERANGE when the 32-bit id space is used up. */
int cn_idpool_grant(cn_idpool_t *p, uint32_t count, uint32_t *first);

#endif /* CN_ROUTE_H */
