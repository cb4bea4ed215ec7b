/*
 * view_tree.c: the tree view. Actors as a collapsible tree, with their
 * pid, state, contexts, streams, memory and age; children that exited in
 * the last minute stay, dimmed, with their exit status.
 *
 * With a filter, an actor shows if it or anything below it matches, so
 * the tree keeps its shape; the matching rows stand out.
 */
#include <stdlib.h>
#include <string.h>

#include "tui.h"

enum { SORT_ID, SORT_NAME, SORT_RSS, SORT_CTX, SORT_AGE };
static const char *const sorts[] = {"id", "name", "rss", "contexts", "age", NULL};

/* The actor's parent: from its own answer, or, for one that did not
 * answer, from the root's route table. */
static int64_t parent_of(const cn_snapshot_t *s, const cn_snap_actor_t *a)
{
    if (a->responsive || s->nactors == 0 || a == &s->actors[0])
        return a->parent;
    const cn_snap_actor_t *root = &s->actors[0];
    for (size_t i = 0; i < root->nroutes; i++)
        if (root->routes[i].id == a->id)
            return root->routes[i].parent;
    return root->id;
}


const char *actor_state(const tui_model_t *m, const cn_snap_actor_t *a, int *style)
{
    const char *how = model_exit_of(m, a->id);
    if (how) { /* the feed said so after the snapshot was taken */
        *style = ST_DIM;
        return how;
    }
    if (m->has_holder && m->holder.actor == a->id) {
        *style = ST_DEBUG;
        return a->responsive || !ui_in_gdb(m->snap, a->id) ? "debugger" : "in gdb";
    }
    for (size_t i = 0; i < m->nwaiters; i++)
        if (m->waiters[i].actor == a->id) {
            *style = ST_WARN;
            return "lock-wait";
        }
    if (!a->responsive) {
        *style = ST_ALERT;
        return "no answer";
    }
    if (a->state && strcmp(a->state, "running") != 0) {
        *style = ST_WARN;
        return a->state;
    }
    *style = ST_NORMAL;
    return "running";
}

static size_t streams_of(const cn_snap_actor_t *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->ncontexts; i++)
        n += a->contexts[i].has_stream && a->contexts[i].stream.local &&
             strcmp(a->contexts[i].stream.local, "open") == 0;
    return n;
}

typedef struct {
    const tui_model_t *m;
    const cn_snapshot_t *s;
    int64_t *parent; /* per actor */
    char *match;     /* per actor: 1 it matches, 2 something below does */
    size_t *order;   /* actor indices sorted by (parent, key) */
    rows_t *out;     /* NULL: only measure the names (namew) */
    int namew;       /* the widest indented name */
} walk_t;

/* The NAME column's width: the widest name shown, from NAME_MIN to what the
 * screen leaves (the other columns take NAME_REST). The header follows. */
#define NAME_MIN 24
#define NAME_REST 48
static int name_w = NAME_MIN;

/* name, cut in the middle to fit name_w columns: the end of a name tells
 * siblings apart as often as its start ("worker-name-number-042"). */
static const char *fit(char *name)
{
    size_t n = strlen(name), w = (size_t)name_w;
    if (n <= w)
        return name;
    size_t back = (w - 1) / 2, front = w - 1 - back;
    name[front] = '~';
    memmove(name + front + 1, name + n - back, back + 1);
    return name;
}

/* Counts name (an indented name) towards the column's width; 1 if this
 * walk only measures. */
static int measured(walk_t *w, const char *name)
{
    int n = (int)strlen(name);
    if (n > w->namew)
        w->namew = n;
    return w->out == NULL;
}

static const walk_t *sort_ctx;

static int cmp_key(const cn_snap_actor_t *a, const cn_snap_actor_t *b, int key)
{
    switch (key) {
    case SORT_NAME:
        return strcmp(a->name ? a->name : "", b->name ? b->name : "");
    case SORT_RSS:
        return a->rss_kib < b->rss_kib ? 1 : a->rss_kib > b->rss_kib ? -1 : 0;
    case SORT_CTX:
        return a->ncontexts < b->ncontexts ? 1 : a->ncontexts > b->ncontexts ? -1 : 0;
    case SORT_AGE:
        return a->start_us < b->start_us ? -1 : a->start_us > b->start_us ? 1 : 0;
    default:
        return 0;
    }
}

static int cmp_order(const void *x, const void *y)
{
    const walk_t *w = sort_ctx;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    if (w->parent[i] != w->parent[j])
        return w->parent[i] < w->parent[j] ? -1 : 1;
    int c = cmp_key(&w->s->actors[i], &w->s->actors[j], w->m->sort[V_TREE]);
    if (c)
        return c;
    return w->s->actors[i].id < w->s->actors[j].id ? -1 : w->s->actors[i].id > w->s->actors[j].id;
}

/* The first index in order[] whose parent is `id`. */
static size_t first_child(const walk_t *w, int64_t id)
{
    size_t lo = 0, hi = w->s->nactors;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->parent[w->order[mid]] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void search_text(const cn_snap_actor_t *a, char *buf, size_t n)
{
    snprintf(buf, n, "%u %s %s %d %s", a->id, a->name ? a->name : "", a->path ? a->path : "",
             a->pid, a->state ? a->state : "");
}

/* Marks match[]: 1 where the actor matches, 2 where only something below
 * it does. Returns whether i or anything below it matches. */
static int mark(walk_t *w, size_t i, int depth)
{
    char text[512];
    search_text(&w->s->actors[i], text, sizeof(text));
    int any = model_matches(w->m, text);
    if (any)
        w->match[i] = 1;
    const cn_snap_actor_t *a = &w->s->actors[i];
    for (size_t k = 0; k < a->nchildren; k++) /* exited children match by name */
        if (a->children[k].state && !strcmp(a->children[k].state, "exited") &&
            a->children[k].name && model_matches(w->m, a->children[k].name))
            any = 1;
    if (depth < 64)
        for (size_t k = first_child(w, a->id); k < w->s->nactors && w->parent[w->order[k]] == a->id;
             k++)
            if (w->order[k] != i && mark(w, w->order[k], depth + 1))
                any = 1;
    if (any && !w->match[i])
        w->match[i] = 2;
    return any;
}

static void row_actor(walk_t *w, size_t i, int depth, int has_kids)
{
    const cn_snap_actor_t *a = &w->s->actors[i];
    char name[96], rss[16], age[16];
    int ind = depth * 2 > 20 ? 20 : depth * 2;
    snprintf(name, sizeof(name), "%*s%c %s", ind, "",
             has_kids ? (model_collapsed(w->m, a->id) ? '+' : '-') : ' ', a->name ? a->name : "?");
    trow_t *r;
    if (measured(w, name) || (r = rows_add(w->out)) == NULL)
        return;
    int style;
    const char *state = actor_state(w->m, a, &style);
    ui_fmt_kib(rss, sizeof(rss), a->responsive ? a->rss_kib : -1);
    if (a->start_us && a->start_us <= w->m->now_us)
        ui_fmt_age(age, sizeof(age), w->m->now_us - a->start_us);
    else
        snprintf(age, sizeof(age), "-");
    char pid[16] = "-", nctx[16] = "-", nstr[16] = "-";
    if (a->pid > 0) /* an unresponsive one's too, as its parent told the root */
        snprintf(pid, sizeof(pid), "%d", a->pid);
    if (a->responsive) {
        snprintf(nctx, sizeof(nctx), "%zu", a->ncontexts);
        snprintf(nstr, sizeof(nstr), "%zu", streams_of(a));
    }
    snprintf(r->text, sizeof(r->text), "%4u %-*s %7s %-10.10s %4s %4s %6s %6s", a->id, name_w,
             fit(name), pid, state, nctx, nstr, rss, age);
    r->style = style;
    r->actor = a->id;
    r->is_match = w->m->filter[0] && w->match[i] == 1;
    if (w->m->filter[0] && w->match[i] == 2)
        r->style = ST_DIM; /* shown for the shape: something below matches */
}

static void row_exited(walk_t *w, const cn_snap_child_t *c, int depth)
{
    char name[96], age[16] = "-";
    int ind = depth * 2 > 20 ? 20 : depth * 2;
    snprintf(name, sizeof(name), "%*s  %s", ind, "", c->name ? c->name : "?");
    trow_t *r;
    if (measured(w, name) || (r = rows_add(w->out)) == NULL)
        return;
    if (c->exit_us && c->exit_us <= w->m->now_us)
        ui_fmt_age(age, sizeof(age), w->m->now_us - c->exit_us);
    char pid[16] = "-"; /* the one it had */
    if (c->pid > 0)
        snprintf(pid, sizeof(pid), "%d", c->pid);
    snprintf(r->text, sizeof(r->text), "%4u %-*s %7s %-10.10s %4s %4s %6s %5s*", c->id, name_w,
             fit(name), pid, c->status ? c->status : "exited", "-", "-", "-", age);
    r->style = ST_DIM;
    r->actor = c->id;
    r->is_match = w->m->filter[0] && c->name && model_matches(w->m, c->name);
}

static void walk(walk_t *w, size_t i, int depth)
{
    const cn_snap_actor_t *a = &w->s->actors[i];
    if (w->m->filter[0] && !w->match[i])
        return;
    size_t k0 = first_child(w, a->id);
    int kids = k0 < w->s->nactors && w->parent[w->order[k0]] == a->id && w->order[k0] != i;
    size_t nexited = 0;
    for (size_t k = 0; k < a->nchildren; k++) {
        const cn_snap_child_t *c = &a->children[k];
        nexited += c->state && !strcmp(c->state, "exited") && c->exit_us + EXITED_SHOW_US >= w->m->now_us;
    }
    row_actor(w, i, depth, kids || nexited);
    if (model_collapsed(w->m, a->id) || depth > 64)
        return;
    for (size_t k = k0; k < w->s->nactors && w->parent[w->order[k]] == a->id; k++)
        if (w->order[k] != i)
            walk(w, w->order[k], depth + 1);
    for (size_t k = 0; k < a->nchildren; k++) {
        const cn_snap_child_t *c = &a->children[k];
        if (c->state && !strcmp(c->state, "exited") && c->exit_us + EXITED_SHOW_US >= w->m->now_us &&
            (!w->m->filter[0] || (c->name && model_matches(w->m, c->name))))
            row_exited(w, c, depth + 1);
    }
}

static void build(const tui_model_t *m, rows_t *out)
{
    const cn_snapshot_t *s = m->snap;
    if (s == NULL || s->nactors == 0)
        return;
    size_t n = s->nactors;
    walk_t w = {m, s, calloc(n, sizeof(int64_t)), calloc(n, 1), calloc(n, sizeof(size_t)), out};
    if (w.parent && w.match && w.order) {
        for (size_t i = 0; i < n; i++) {
            w.parent[i] = i == 0 ? -1 : parent_of(s, &s->actors[i]);
            w.order[i] = i;
        }
        sort_ctx = &w;
        qsort(w.order, n, sizeof(size_t), cmp_order);
        sort_ctx = NULL;
        if (m->filter[0])
            mark(&w, 0, 0);
        for (int pass = 0; pass < 2; pass++) { /* measure the names, then lay out */
            w.out = pass ? out : NULL;
            walk(&w, 0, 0);
            /* Actors whose parent is not in the snapshot: at the end, not lost. */
            for (size_t i = 1; i < n; i++) {
                int64_t p = w.parent[i];
                int known = 0;
                for (size_t k = 0; k < n && !known; k++)
                    known = (int64_t)s->actors[k].id == p;
                if (!known)
                    walk(&w, i, 1);
            }
            int room = (m->cols ? m->cols : 80) - NAME_REST;
            name_w = w.namew < NAME_MIN ? NAME_MIN : w.namew < room ? w.namew : room;
            if (name_w < NAME_MIN)
                name_w = NAME_MIN;
        }
    }
    free(w.parent);
    free(w.match);
    free(w.order);
}

static const char *header(const tui_model_t *m)
{
    (void)m;
    static char h[256];
    snprintf(h, sizeof(h), "  ID %-*s     PID STATE       CTX  STR    RSS    AGE", name_w, "NAME");
    return h;
}

const view_t view_tree = {"Tree", "actors as a tree: pid, state, contexts, streams, memory, age",
                          header, build, sorts};
