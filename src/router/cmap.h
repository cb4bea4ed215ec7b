/*
 * cmap.h: a hash map from (uint32, uint64) to a pointer (internal).
 *
 * Keys are (actor id, call id) pairs or plain ids (k2 = 0): the route
 * table, pending calls and each stream's in-flight calls all use it.
 * Open addressing with linear probing and backward-shift deletion, so no
 * tombstones accumulate however many calls come and go. Not thread-safe:
 * the owner locks.
 */
#ifndef CN_CMAP_H
#define CN_CMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cn__cmap_ent {
    uint64_t k2;
    uint32_t k1;
    uint32_t used;
    void *val;
} cn__cmap_ent_t;

typedef struct cn__cmap {
    cn__cmap_ent_t *e;
    size_t cap; /* 0 or a power of two */
    size_t count;
} cn__cmap_t;

void cn__cmap_init(cn__cmap_t *m);
void cn__cmap_fini(cn__cmap_t *m);

/* Inserts (k1, k2) -> val. Returns 0, 1 if the key is already present (the
 * map is unchanged; *old is set to its value when old is not NULL), or
 * CN_ENOMEM. */
int cn__cmap_put(cn__cmap_t *m, uint32_t k1, uint64_t k2, void *val, void **old);

/* The value for (k1, k2), or NULL. */
void *cn__cmap_get(const cn__cmap_t *m, uint32_t k1, uint64_t k2);

/* Removes (k1, k2) and returns its value, or NULL if absent. */
void *cn__cmap_del(cn__cmap_t *m, uint32_t k1, uint64_t k2);

/* Removes the entry in slot i. Another entry may move into slot i, so a
 * loop that deletes while it walks the slots must look at i again. */
void cn__cmap_del_at(cn__cmap_t *m, size_t i);

#endif /* CN_CMAP_H */
