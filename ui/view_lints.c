/*
 * view_lints.c: the hang lints (lint.c), live: each names what is wrong
 * and the actors involved. Enter selects the first of them and shows its
 * contexts.
 */
#include <string.h>

#include "tui.h"

static void build(const tui_model_t *m, rows_t *out)
{
    for (size_t i = 0; i < m->nlints; i++) {
        const lint_t *l = &m->lints[i];
        char text[TROW_TEXT];
        snprintf(text, sizeof(text), "%-7s %-14s %s  [%s]", l->severity, l->name, l->what,
                 l->actors);
        trow_t *r = rows_add_match(out, m, text);
        if (r == NULL)
            continue;
        r->style = strcmp(l->severity, "error") == 0 ? ST_ALERT : ST_WARN;
        char first[256];
        snprintf(first, sizeof(first), "%.*s", (int)strcspn(l->actors, ","), l->actors);
        const cn_snap_actor_t *a = m->snap ? cn_snapshot_find(m->snap, first, NULL) : NULL;
        r->actor = a ? a->id : 0;
    }
    if (m->nlints == 0 && m->snap) {
        trow_t *r = rows_add(out);
        if (r) {
            snprintf(r->text, sizeof(r->text), "no problems found in %zu actors", m->snap->nactors);
            r->style = ST_DIM;
        }
    }
}

static const char *header(const tui_model_t *m)
{
    (void)m;
    return "SEVERITY NAME          WHAT  [ACTORS]   (Enter: the first actor's contexts)";
}

const view_t view_lints = {"Lints", "what looks hung: stuck cancels, stalled streams, deadlocks",
                           header, build, NULL};
