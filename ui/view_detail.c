/*
 * view_detail.c: the detail pane for the selected actor, under the tree:
 * who it is, its children, its threads and what each is blocked on, and,
 * once asked for ('t'), every thread's backtrace.
 */
#include <stdarg.h>
#include <string.h>

#include "tui.h"

static trow_t *line(rows_t *out, int style, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static trow_t *line(rows_t *out, int style, const char *fmt, ...)
{
    trow_t *r = rows_add(out);
    if (r == NULL)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
    r->style = style;
    return r;
}

void detail_build(const tui_model_t *m, const cn_snapshot_t *stacks, rows_t *out)
{
    const cn_snap_actor_t *a = model_actor(m, m->sel_actor);
    if (a == NULL) {
        const cn_snap_child_t *c = model_exited(m, m->sel_actor);
        if (c)
            line(out, ST_DIM, "%s (actor %u, pid %d) has exited: %s", c->name ? c->name : "?",
                 c->id, c->pid, c->status ? c->status : "exited");
        else
            line(out, ST_DIM, "actor %u is not in the tree now", m->sel_actor);
        return;
    }
    int style;
    const char *state = actor_state(m, a, &style);
    char rss[16], age[16] = "-";
    ui_fmt_kib(rss, sizeof(rss), a->rss_kib);
    if (a->start_us && a->start_us <= m->now_us)
        ui_fmt_age(age, sizeof(age), m->now_us - a->start_us);
    line(out, ST_HEADER, "%s  (actor %u)  %s", a->path ? a->path : a->name, a->id, state);
    if (!a->responsive) {
        line(out, ST_ALERT, "it did not answer the last snapshot in time: stuck broker, stopped "
                            "(gdb, SIGSTOP) or overloaded");
        return;
    }
    line(out, ST_NORMAL, "pid %d  uid %d  host %s  up %s  rss %s  parent %lld", a->pid, a->uid,
         a->host ? a->host : "?", age, rss, (long long)a->parent);
    size_t live = 0;
    for (size_t i = 0; i < a->nchildren; i++)
        live += a->children[i].state && strcmp(a->children[i].state, "exited") != 0;
    if (a->nchildren) {
        char kids[TROW_TEXT] = "";
        size_t used = 0;
        for (size_t i = 0; i < a->nchildren && used < sizeof(kids) - 40; i++) {
            const cn_snap_child_t *c = &a->children[i];
            int n = snprintf(kids + used, sizeof(kids) - used, "%s%s(%s)", used ? ", " : "",
                             c->name ? c->name : "?", c->status ? c->status : c->state);
            used += n > 0 ? (size_t)n : 0;
        }
        line(out, ST_NORMAL, "children: %zu live: %s", live, kids);
    }
    line(out, ST_HEADER, "threads:");
    for (size_t i = 0; i < a->nthreads; i++) {
        const cn_snap_thread_t *t = &a->threads[i];
        char since[16] = "";
        if (t->since_us && t->since_us <= m->now_us)
            ui_fmt_age(since, sizeof(since), m->now_us - t->since_us);
        char on[64] = "";
        if (t->peer || t->cid)
            snprintf(on, sizeof(on), " on actor %u cid %llu", t->peer, (unsigned long long)t->cid);
        int busy = t->doing && strcmp(t->doing, "idle") != 0 && strcmp(t->doing, "running") != 0;
        line(out, busy ? ST_WARN : ST_NORMAL, "  %6d %-5s %-9s%s for %s%s%s", t->tid,
             t->kind ? t->kind : "?", t->doing ? t->doing : "?", on, since, t->fn ? "  in " : "",
             t->fn ? t->fn : "");
    }
    const cn_snap_actor_t *sa = stacks ? cn_snapshot_find(stacks, a->path, NULL) : NULL;
    if (sa == NULL || sa->id != a->id) {
        line(out, ST_DIM, "t: backtraces of every thread (each stopped only while it is read)");
        return;
    }
    line(out, ST_HEADER, "backtraces:");
    for (size_t i = 0; i < sa->nstacks; i++) {
        const cn_snap_stack_t *st = &sa->stacks[i];
        line(out, ST_NORMAL, "  thread %d (%s): %s", st->tid, st->name ? st->name : "?",
             st->state ? st->state : "");
        for (size_t k = 0; k < st->nframes; k++)
            line(out, ST_DIM, "    %s", st->frames[k]);
    }
}
