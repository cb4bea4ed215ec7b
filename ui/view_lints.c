/*
 * view_lints.c: the hang lints (lint.c), live: each names what is wrong
 * and the actors involved, with its reason in full under it. Enter
 * selects the last actor named, where the lint finds the hold-up (the
 * stuck task's, the receiver's, the one waited on), and shows its
 * contexts.
 */
#include <string.h>

#include "tui.h"

#define WRAP 74 /* the reason's width under its heading: whole at 80 columns */

/* Adds `text` as rows of at most WRAP columns, indented, cut at spaces. */
static void add_wrapped(rows_t *out, const char *text, uint32_t actor, int has_actor, int style)
{
    const char *p = text;
    while (*p) {
        size_t n = strlen(p);
        if (n > WRAP) {
            n = WRAP;
            while (n > WRAP / 2 && p[n] != ' ')
                n--;
            if (p[n] != ' ')
                n = WRAP; /* one long word: cut it */
        }
        trow_t *r = rows_add(out);
        if (r == NULL)
            return;
        snprintf(r->text, sizeof(r->text), "    %.*s", (int)n, p);
        r->actor = actor;
        r->has_actor = has_actor;
        r->style = style;
        p += n;
        while (*p == ' ')
            p++;
    }
}

/* The actor Enter goes to: the last one a lint names that is in the
 * snapshot, where the hold-up is (the stuck task's, the receiver's, the
 * one waited on); the first names the caller or the sender. A last one
 * that is gone (an orphan's dead peer, an unreaped child's process)
 * leaves the one before it. */
static const cn_snap_actor_t *held_up_at(const tui_model_t *m, const char *actors)
{
    char list[256];
    snprintf(list, sizeof(list), "%s", actors);
    for (char *cut; m->snap;) {
        cut = strrchr(list, ',');
        const char *name = cut ? cut + 1 : list;
        name += strspn(name, " ");
        const cn_snap_actor_t *a = cn_snapshot_find(m->snap, name, NULL);
        if (a || cut == NULL)
            return a;
        *cut = '\0';
    }
    return NULL;
}

/* Each lint is a heading (severity, name, the actors) and its reason in
 * full under it: the reason is what says why the tree hangs, so it is
 * never cut at the screen's edge. The filter matches any of it. */
static void build(const tui_model_t *m, rows_t *out)
{
    for (size_t i = 0; i < m->nlints; i++) {
        const lint_t *l = &m->lints[i];
        char all[TROW_TEXT * 4];
        snprintf(all, sizeof(all), "%s %s %s [%s]", l->severity, l->name, l->what, l->actors);
        if (!model_matches(m, all))
            continue;
        trow_t *r = rows_add(out);
        if (r == NULL)
            continue;
        snprintf(r->text, sizeof(r->text), "%-7s %-14s [%s]", l->severity, l->name, l->actors);
        r->style = strcmp(l->severity, "error") == 0 ? ST_ALERT : ST_WARN;
        const cn_snap_actor_t *a = held_up_at(m, l->actors);
        r->actor = a ? a->id : 0;
        r->has_actor = a != NULL;
        add_wrapped(out, l->what, r->actor, r->has_actor, r->style);
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
    return "SEVERITY NAME          [ACTORS], and why   (Enter: the last actor's contexts)";
}

const view_t view_lints = {"Lints", "what looks hung: stuck cancels, stalled streams, deadlocks",
                           header, build, NULL};
