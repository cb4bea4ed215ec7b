/*
 * cmap.c: the hash map declared in cmap.h.
 *
 * Invariant (linear probing): every entry lies between its home slot and
 * the first empty slot after it. Deletion shifts later entries back into
 * the hole to keep that true, so lookups stop at the first empty slot.
 */
#include "cmap.h"

#include <stdlib.h>
#include <string.h>

#include "canopy/errors.h"

#define MIN_CAP 16

static size_t home(uint32_t k1, uint64_t k2, size_t cap)
{
    uint64_t h = (k2 ^ ((uint64_t)k1 << 32 | k1)) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

void cn__cmap_init(cn__cmap_t *m)
{
    memset(m, 0, sizeof(*m));
}

void cn__cmap_fini(cn__cmap_t *m)
{
    free(m->e);
    memset(m, 0, sizeof(*m));
}

static size_t find(const cn__cmap_t *m, uint32_t k1, uint64_t k2, int *found)
{
    size_t i = home(k1, k2, m->cap);
    while (m->e[i].used) {
        if (m->e[i].k1 == k1 && m->e[i].k2 == k2) {
            *found = 1;
            return i;
        }
        i = (i + 1) & (m->cap - 1);
    }
    *found = 0;
    return i;
}

static int grow(cn__cmap_t *m)
{
    cn__cmap_t n = {calloc(m->cap ? m->cap * 2 : MIN_CAP, sizeof(cn__cmap_ent_t)),
                    m->cap ? m->cap * 2 : MIN_CAP, 0};
    if (n.e == NULL)
        return CN_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].used)
            continue;
        int found;
        n.e[find(&n, m->e[i].k1, m->e[i].k2, &found)] = m->e[i];
        n.count++;
    }
    free(m->e);
    *m = n;
    return 0;
}

int cn__cmap_put(cn__cmap_t *m, uint32_t k1, uint64_t k2, void *val, void **old)
{
    int found;
    if ((m->count + 1) * 4 > m->cap * 3) { /* keep the load <= 3/4 */
        int rc = grow(m);
        if (rc < 0)
            return rc;
    }
    size_t i = find(m, k1, k2, &found);
    if (found) {
        if (old)
            *old = m->e[i].val;
        return 1;
    }
    m->e[i] = (cn__cmap_ent_t){k2, k1, 1, val};
    m->count++;
    return 0;
}

void *cn__cmap_get(const cn__cmap_t *m, uint32_t k1, uint64_t k2)
{
    int found;
    if (m->count == 0)
        return NULL;
    size_t i = find(m, k1, k2, &found);
    return found ? m->e[i].val : NULL;
}

void cn__cmap_del_at(cn__cmap_t *m, size_t i)
{
    size_t mask = m->cap - 1, j = i;
    m->e[i].used = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->e[j].used)
            break;
        size_t h = home(m->e[j].k1, m->e[j].k2, m->cap);
        /* Entry j stays unless its home lies cyclically outside (i, j]. */
        int stays = (i <= j) ? (i < h && h <= j) : (i < h || h <= j);
        if (stays)
            continue;
        m->e[i] = m->e[j];
        m->e[j].used = 0;
        i = j;
    }
    m->count--;
}

void *cn__cmap_del(cn__cmap_t *m, uint32_t k1, uint64_t k2)
{
    int found;
    if (m->count == 0)
        return NULL;
    size_t i = find(m, k1, k2, &found);
    if (!found)
        return NULL;
    void *v = m->e[i].val;
    cn__cmap_del_at(m, i);
    return v;
}
