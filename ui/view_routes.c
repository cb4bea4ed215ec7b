/*
 * view_routes.c: the selected actor's route table: every actor it can
 * reach through a child, the child it goes through, and when it learned
 * the route. Enter on a row selects the route's target.
 */
#include <stdlib.h>
#include <string.h>

#include "tui.h"

enum { SORT_ID, SORT_NAME, SORT_VIA, SORT_LEARNED };
static const char *const sorts[] = {"id", "name", "via", "learned", NULL};

static int sort_key;

static int cmp(const void *x, const void *y)
{
    const cn_snap_route_t *a = x, *b = y;
    int c = 0;
    switch (sort_key) {
    case SORT_NAME:
        c = strcmp(a->name ? a->name : "", b->name ? b->name : "");
        break;
    case SORT_VIA:
        c = a->via < b->via ? -1 : a->via > b->via;
        break;
    case SORT_LEARNED:
        c = a->learned_us < b->learned_us ? 1 : a->learned_us > b->learned_us ? -1 : 0;
        break;
    default:
        break;
    }
    return c ? c : a->id < b->id ? -1 : a->id > b->id;
}

/* The name of actor id, from the snapshot or the route table itself. */
static const char *name_of(const tui_model_t *m, const cn_snap_actor_t *a, int64_t id)
{
    const cn_snap_actor_t *x = model_actor(m, (uint32_t)id);
    if (x && x->name)
        return x->name;
    for (size_t i = 0; i < a->nroutes; i++)
        if (a->routes[i].id == id && a->routes[i].name)
            return a->routes[i].name;
    return "?";
}

static void build(const tui_model_t *m, rows_t *out)
{
    const cn_snap_actor_t *a = model_actor(m, m->sel_actor);
    if (a == NULL && m->snap && m->snap->nactors)
        a = &m->snap->actors[0];
    if (a == NULL || a->nroutes == 0)
        return;
    cn_snap_route_t *r = malloc(a->nroutes * sizeof(*r));
    if (r == NULL)
        return;
    memcpy(r, a->routes, a->nroutes * sizeof(*r));
    sort_key = m->sort[V_ROUTES];
    qsort(r, a->nroutes, sizeof(*r), cmp);
    for (size_t i = 0; i < a->nroutes; i++) {
        char via[48], learned[16] = "-", text[TROW_TEXT];
        snprintf(via, sizeof(via), "%lld %s", (long long)r[i].via, name_of(m, a, r[i].via));
        if (r[i].learned_us && r[i].learned_us <= m->now_us)
            ui_fmt_age(learned, sizeof(learned), m->now_us - r[i].learned_us);
        snprintf(text, sizeof(text), "%6u %-24.24s %6u %-24.24s %9s ago", r[i].id,
                 r[i].name ? r[i].name : "?", r[i].parent, via, learned);
        trow_t *t = rows_add_match(out, m, text);
        if (t == NULL)
            continue;
        t->actor = r[i].id;
        t->style = model_actor(m, r[i].id) ? ST_NORMAL : ST_DIM;
    }
    free(r);
}

static const char *header(const tui_model_t *m)
{
    static char h[160];
    const cn_snap_actor_t *a = model_actor(m, m->sel_actor);
    if (a == NULL && m->snap && m->snap->nactors)
        a = &m->snap->actors[0];
    snprintf(h, sizeof(h), "  DEST NAME                     PARENT VIA                        "
             "LEARNED    routes of %s", a && a->path ? a->path : a && a->name ? a->name : "-");
    return h;
}
static const char *empty(const tui_model_t *m)
{
    return m->snap ? "(no routes: the selected actor has no children; select one in the tree)"
                   : "(no snapshot yet)";
}

const view_t view_routes = {"Routes", "the selected actor's route table; Enter jumps to a target",
                            header, build, sorts, NULL, 0, empty};
