/*
 * view_ctx.c: the contexts and streams of the selected actor, or of the
 * whole tree ('a'). One row per end of a call or context: its peer,
 * function, role, phase and cancellation state, how long it has been
 * open and blocked, its stream's buffer fill as a bar, messages in and
 * out, and the message rate since the previous snapshot. Blocked and
 * cancelling rows stand out.
 */
#include <stdlib.h>
#include <string.h>

#include "tui.h"

enum { SORT_AGE, SORT_BLOCKED, SORT_FILL, SORT_FN, SORT_PEER };
static const char *const sorts[] = {"age", "blocked", "buffer", "function", "peer", NULL};

typedef struct {
    const cn_snap_actor_t *a;
    const cn_snap_ctx_t *c;
    uint64_t blocked_us;
    int fill; /* percent, or -1 */
    char link[80];
} item_t;

#define BLOCKED_ALERT_US 1000000

static int sort_key;
static int link_w; /* the caller-and-callee column's width in the last build */

static int cmp(const void *x, const void *y)
{
    const item_t *a = x, *b = y;
    int c = 0;
    switch (sort_key) {
    case SORT_BLOCKED:
        c = a->blocked_us < b->blocked_us ? 1 : a->blocked_us > b->blocked_us ? -1 : 0;
        break;
    case SORT_FILL:
        c = a->fill < b->fill ? 1 : a->fill > b->fill ? -1 : 0;
        break;
    case SORT_FN:
        c = strcmp(a->c->fn ? a->c->fn : "", b->c->fn ? b->c->fn : "");
        break;
    case SORT_PEER:
        c = a->c->peer < b->c->peer ? -1 : a->c->peer > b->c->peer;
        break;
    default:
        break;
    }
    if (c == 0) /* oldest first */
        c = a->c->opened_us < b->c->opened_us ? -1 : a->c->opened_us > b->c->opened_us;
    if (c == 0) /* and always the same order: rows must not swap between snapshots */
        c = a->a->id < b->a->id ? -1 : a->a->id > b->a->id;
    if (c == 0)
        c = a->c->cid < b->c->cid ? -1 : a->c->cid > b->c->cid;
    return c;
}

/* The same end of the same context in the previous snapshot. */
static const cn_snap_ctx_t *before(const tui_model_t *m, const cn_snap_actor_t *a,
                                   const cn_snap_ctx_t *c)
{
    if (m->prev == NULL)
        return NULL;
    for (size_t i = 0; i < m->prev->nactors; i++) {
        const cn_snap_actor_t *p = &m->prev->actors[i];
        if (p->id != a->id)
            continue;
        for (size_t k = 0; k < p->ncontexts; k++)
            if (p->contexts[k].cid == c->cid && p->contexts[k].peer == c->peer &&
                p->contexts[k].role && c->role && !strcmp(p->contexts[k].role, c->role))
                return &p->contexts[k];
    }
    return NULL;
}

static const char *peer_name(const tui_model_t *m, uint32_t id, char *buf, size_t n)
{
    const cn_snap_actor_t *p = model_actor(m, id);
    snprintf(buf, n, "%u:%s", id, p && p->name ? p->name : "?");
    return buf;
}

static void add_items(const tui_model_t *m, const cn_snap_actor_t *a, item_t **v, size_t *n,
                      size_t *cap)
{
    for (size_t i = 0; i < a->ncontexts; i++) {
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            item_t *nv = realloc(*v, nc * sizeof(*nv));
            if (nv == NULL)
                return;
            *v = nv;
            *cap = nc;
        }
        const cn_snap_ctx_t *c = &a->contexts[i];
        item_t *it = &(*v)[(*n)++];
        it->a = a;
        it->c = c;
        it->blocked_us = c->has_stream && c->stream.send_blocked && c->stream.blocked_since_us &&
                                 c->stream.blocked_since_us <= m->now_us
                             ? m->now_us - c->stream.blocked_since_us
                             : 0;
        it->fill = c->has_stream && c->stream.window
                       ? (int)(c->stream.buffered * 100 / c->stream.window)
                       : -1;
        if (it->fill > 100)
            it->fill = 100;
    }
}

/* The caller-and-callee column: at least this wide, wider when it names
 * both ends; the rest of a row takes ROW_REST columns. */
#define LINK_MIN(m) ((m)->ctx_all ? 23 : 13)
#define ROW_REST 77

/*
 * Names each item's two ends, and returns the column's width: as wide as
 * the longest pair, but never so wide that a row outgrows the screen
 * (at 80 columns the cancel state, the block time and the buffer's bar
 * still fit). Whole tree: "ME > PEER", ids and names; a pair wider than
 * the column names this actor by its id alone, so that neither id is
 * ever cut (only the peer's name, at the end). "> PEER" is a call this
 * actor made, "< PEER" one it serves.
 */
/* "<" for an end this actor serves, ">" for a call it made. */
static const char *arrow_of(const cn_snap_ctx_t *c)
{
    return c->role && !strcmp(c->role, "callee") ? "<" : ">";
}

static int name_links(const tui_model_t *m, item_t *v, size_t n)
{
    int w = LINK_MIN(m), room = (m->cols > 0 ? m->cols : 80) - ROW_REST;
    char peer[40], me[40];
    for (size_t i = 0; i < n; i++) {
        const cn_snap_ctx_t *c = v[i].c;
        const char *arrow = arrow_of(c);
        peer_name(m, c->peer, peer, sizeof(peer));
        int len = m->ctx_all ? snprintf(v[i].link, sizeof(v[i].link), "%s %s %s",
                                        peer_name(m, v[i].a->id, me, sizeof(me)), arrow, peer)
                             : snprintf(v[i].link, sizeof(v[i].link), "%s %s", arrow, peer);
        if (len > w)
            w = len < room ? len : room > w ? room : w;
    }
    for (size_t i = 0; m->ctx_all && i < n; i++)
        if ((int)strlen(v[i].link) > w)
            snprintf(v[i].link, sizeof(v[i].link), "%u %s %s", v[i].a->id, arrow_of(v[i].c),
                     peer_name(m, v[i].c->peer, peer, sizeof(peer)));
    return w;
}

/* The cancel state in the column's nine characters: "acknowledged" is
 * "acked" (the CLI and the detail line spell it out). */
static const char *cancel_word(const char *cancel)
{
    return cancel == NULL ? "none" : strcmp(cancel, "acknowledged") == 0 ? "acked" : cancel;
}

static void build(const tui_model_t *m, rows_t *out)
{
    if (m->snap == NULL)
        return;
    item_t *v = NULL;
    size_t n = 0, cap = 0;
    if (m->ctx_all) {
        for (size_t i = 0; i < m->snap->nactors; i++)
            add_items(m, &m->snap->actors[i], &v, &n, &cap);
    } else {
        const cn_snap_actor_t *a = model_actor(m, m->sel_actor);
        if (a == NULL && m->snap->nactors)
            a = &m->snap->actors[0];
        if (a)
            add_items(m, a, &v, &n, &cap);
    }
    sort_key = m->sort[V_CTX];
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp);
    link_w = name_links(m, v, n);
    double dt = m->prev && m->snap->now_us > m->prev->now_us
                    ? (double)(m->snap->now_us - m->prev->now_us) / 1e6
                    : 0;
    for (size_t i = 0; i < n; i++) {
        const cn_snap_ctx_t *c = v[i].c;
        const cn_snap_stream_t *st = &c->stream;
        char age[16] = "-", blk[16] = "", in[16] = "", outs[16] = "", rate[16] = "",
             text[TROW_TEXT];
        if (c->opened_us && c->opened_us <= m->now_us)
            ui_fmt_age(age, sizeof(age), m->now_us - c->opened_us);
        if (v[i].blocked_us)
            ui_fmt_age(blk, sizeof(blk), v[i].blocked_us);
        if (c->has_stream) {
            snprintf(in, sizeof(in), "%llu", (unsigned long long)st->msgs_in);
            snprintf(outs, sizeof(outs), "%llu", (unsigned long long)st->msgs_out);
            const cn_snap_ctx_t *p = before(m, v[i].a, c);
            if (p && p->has_stream && dt > 0) {
                double r = (double)(st->msgs_in + st->msgs_out - p->stream.msgs_in -
                                    p->stream.msgs_out) / dt;
                snprintf(rate, sizeof(rate), r >= 10000 ? "%.0fk" : "%.0f", r >= 10000 ? r / 1000 : r);
            }
        }
        int len = snprintf(text, sizeof(text), "%4llu %-*.*s %-9.9s %-9.9s %-9.9s %5s %5s ",
                           (unsigned long long)c->cid, link_w, link_w, v[i].link,
                           c->fn ? c->fn : "?", c->phase ? c->phase : "?",
                           cancel_word(c->cancel), age, blk);
        int bar_col = len;
        snprintf(text + len, sizeof(text) - (size_t)len, "%-8s %6s %6s %6s",
                 v[i].fill >= 0 ? "[      ]" : "", in, outs, rate);
        trow_t *t = rows_add_match(out, m, text);
        if (t == NULL)
            continue;
        t->actor = v[i].a->id;
        t->cid = c->cid;
        t->bar = v[i].fill;
        t->bar_col = bar_col + 1;
        int cancelling = c->cancel && strcmp(c->cancel, "none") != 0;
        int errored = c->phase && !strcmp(c->phase, "errored");
        /* A sender waiting for credit a moment is backpressure at work;
         * one waiting a second or more is worth the eye. */
        t->style = v[i].blocked_us >= BLOCKED_ALERT_US || errored ? ST_ALERT
                   : cancelling                                  ? ST_WARN
                                                                 : ST_NORMAL;
    }
    free(v);
}

static const char *header(const tui_model_t *m)
{
    static char h[200];
    const cn_snap_actor_t *a = model_actor(m, m->sel_actor);
    snprintf(h, sizeof(h), " CID %-*s FUNCTION  PHASE     CANCEL      AGE BLOCK BUFFER       IN    OUT"
             "  MSG/S  (%s)", link_w > LINK_MIN(m) ? link_w : LINK_MIN(m),
             m->ctx_all ? "ACTOR > PEER" : "> PEER",
             m->ctx_all ? "whole tree" : a && a->path ? a->path : "root");
    return h;
}
static const char *empty(const tui_model_t *m)
{
    return !m->snap     ? "(no snapshot yet)"
           : m->ctx_all ? "(no calls or contexts open anywhere in the tree)"
                        : "(no calls or contexts open here; a: the whole tree)";
}

const view_t view_ctx = {"Contexts", "calls, contexts and streams: phase, cancel, blocked, buffers",
                         header, build, sorts, NULL, 0, empty};
