/*
 * tui_model.c: what the TUI knows about the tree (tui.h): snapshots, the
 * log, the console and its lock queue, lints. No terminal here.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tui.h"

/* ===========================================================================
 * Rows
 */

trow_t *rows_add(rows_t *r)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        trow_t *v = realloc(r->v, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        r->v = v;
        r->cap = cap;
    }
    trow_t *t = &r->v[r->n++];
    memset(t, 0, sizeof(*t));
    t->bar = -1;
    return t;
}

trow_t *rows_add_match(rows_t *r, const tui_model_t *m, const char *text)
{
    if (!model_matches(m, text))
        return NULL;
    trow_t *t = rows_add(r);
    if (t)
        snprintf(t->text, sizeof(t->text), "%s", text);
    return t;
}

void rows_clear(rows_t *r)
{
    r->n = 0;
}

void rows_free(rows_t *r)
{
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

/* ===========================================================================
 * Formatting
 */


/* ===========================================================================
 * The model
 */

void model_init(tui_model_t *m)
{
    memset(m, 0, sizeof(*m));
    m->log_level = CN_LOG_DEBUG;
}

static void log_free(tlog_t *l)
{
    free(l->path);
    free(l->message);
    l->path = l->message = NULL;
}

void model_free(tui_model_t *m)
{
    cn_snapshot_free(m->snap);
    cn_snapshot_free(m->prev);
    m->snap = m->prev = NULL;
    for (size_t i = 0; i < m->nlogs; i++)
        log_free(&m->logs[(m->log_first + i) % TLOG_MAX]);
    for (size_t i = 0; i < m->ncon; i++)
        free(m->con[(m->con_first + i) % TCON_MAX]);
    m->nlogs = m->ncon = 0;
}

const cn_snap_actor_t *model_actor(const tui_model_t *m, uint32_t id)
{
    if (m->snap == NULL)
        return NULL;
    for (size_t i = 0; i < m->snap->nactors; i++)
        if (m->snap->actors[i].id == id)
            return &m->snap->actors[i];
    return NULL;
}

int model_collapsed(const tui_model_t *m, uint32_t id)
{
    for (size_t i = 0; i < m->ncollapsed; i++)
        if (m->collapsed[i] == id)
            return 1;
    return 0;
}

void model_toggle(tui_model_t *m, uint32_t id, int collapse)
{
    for (size_t i = 0; i < m->ncollapsed; i++)
        if (m->collapsed[i] == id) {
            if (!collapse)
                m->collapsed[i] = m->collapsed[--m->ncollapsed];
            return;
        }
    if (collapse && m->ncollapsed < sizeof(m->collapsed) / sizeof(m->collapsed[0]))
        m->collapsed[m->ncollapsed++] = id;
}

int model_matches(const tui_model_t *m, const char *text)
{
    const char *f = m->filter;
    if (*f == '\0')
        return 1;
    size_t fl = strlen(f);
    for (const char *p = text; *p; p++) {
        size_t i = 0;
        while (i < fl && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)f[i]))
            i++;
        if (i == fl)
            return 1;
    }
    return 0;
}

static uint64_t u64_of(const msgpack_object *o, const char *key)
{
    const msgpack_object *v = cn_msgpack_get(o, key);
    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

static void str_of(const msgpack_object *o, const char *key, char *out, size_t n)
{
    const msgpack_object *v = cn_msgpack_get(o, key);
    if (v && v->type == MSGPACK_OBJECT_STR)
        snprintf(out, n, "%.*s", (int)v->via.str.size, v->via.str.ptr);
}

/* One holder or waiter of the root's "lock" map; `since` names the time
 * it shows (the holder's grant, a waiter's request). */
static void lock_entry(const msgpack_object *o, const char *since, tlock_t *t)
{
    memset(t, 0, sizeof(*t));
    t->actor = (uint32_t)u64_of(o, "actor");
    t->cid = u64_of(o, "session");
    t->since_us = u64_of(o, since);
    str_of(o, "path", t->path, sizeof(t->path));
    str_of(o, "reason", t->reason, sizeof(t->reason));
}

/* The root's "lock" map, when the snapshot carries one: the queue as the
 * root has it, which corrects anything the events missed. */
static void read_lock(tui_model_t *m, const cn_snapshot_t *s)
{
    if (s->nactors == 0)
        return;
    const msgpack_object *lock = cn_msgpack_get(s->actors[0].raw, "lock");
    if (lock == NULL || lock->type != MSGPACK_OBJECT_MAP)
        return;
    const msgpack_object *h = cn_msgpack_get(lock, "holder");
    const msgpack_object *w = cn_msgpack_get(lock, "waiters");
    m->has_holder = h && h->type == MSGPACK_OBJECT_MAP;
    if (m->has_holder)
        lock_entry(h, "granted_us", &m->holder);
    m->nwaiters = 0;
    if (w && w->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < w->via.array.size && m->nwaiters < TLOCK_MAX; i++)
            lock_entry(&w->via.array.ptr[i], "since_us", &m->waiters[m->nwaiters++]);
}

void model_seed_logs(tui_model_t *m, const cn_snapshot_t *s)
{
    uint64_t first = m->nlogs ? model_log_at(m, 0)->time_us : UINT64_MAX;
    size_t older = 0;
    while (older < s->nlogs && s->logs[older].time_us < first)
        older++;
    size_t take = older < TLOG_MAX - m->nlogs ? older : TLOG_MAX - m->nlogs;
    /* Room at the front of the ring for the newest `take` of them. */
    m->log_first = (m->log_first + TLOG_MAX - take) % TLOG_MAX;
    m->nlogs += take;
    for (size_t i = 0; i < take; i++) {
        const cn_snap_log_t *l = &s->logs[older - take + i];
        tlog_t *t = &m->logs[(m->log_first + i) % TLOG_MAX];
        t->level = l->level;
        t->seq = ++m->log_seq; /* unique, if not in order: these came later */
        t->time_us = l->time_us;
        t->path = strdup(l->path ? l->path : "");
        t->message = strdup(l->message ? l->message : "");
    }
}

void model_snapshot(tui_model_t *m, cn_snapshot_t *s)
{
    if (!m->logs_seeded) {
        model_seed_logs(m, s);
        m->logs_seeded = 1;
    }
    cn_snapshot_free(m->prev);
    m->prev = m->snap;
    m->snap = s;
    m->now_us = s->now_us;
    size_t kept = 0; /* exits it knows of leave the list */
    for (size_t i = 0; i < m->nexits; i++)
        if (m->exits[i].time_us > s->now_us)
            m->exits[kept++] = m->exits[i];
    m->nexits = kept;
    size_t n = lint_run(s, m->lints, TLINT_MAX);
    m->nlints = n > TLINT_MAX ? TLINT_MAX : n;
    read_lock(m, s);
    if (model_actor(m, m->sel_actor) == NULL && s->nactors > 0 && m->sel_actor != 0) {
        /* The selected actor is gone: keep it selected if it shows as
         * exited under its parent, else go to the root. */
        int shown = 0;
        for (size_t i = 0; i < s->nactors && !shown; i++)
            for (size_t k = 0; k < s->actors[i].nchildren; k++)
                shown |= s->actors[i].children[k].id == m->sel_actor;
        if (!shown)
            m->sel_actor = s->actors[0].id;
    }
}

void model_log_add(tui_model_t *m, int level, uint64_t time_us, const char *path,
                   const char *msg, size_t msg_len)
{
    tlog_t *l;
    if (m->nlogs == TLOG_MAX) {
        l = &m->logs[m->log_first];
        log_free(l);
        m->log_first = (m->log_first + 1) % TLOG_MAX;
    } else {
        l = &m->logs[(m->log_first + m->nlogs++) % TLOG_MAX];
    }
    l->level = level;
    l->seq = ++m->log_seq;
    l->time_us = time_us;
    l->path = strdup(path ? path : "");
    l->message = strndup(msg ? msg : "", msg ? msg_len : 0);
}

const tlog_t *model_log_at(const tui_model_t *m, size_t i)
{
    return i < m->nlogs ? &m->logs[(m->log_first + i) % TLOG_MAX] : NULL;
}

static void con_line(tui_model_t *m, const char *text, size_t len)
{
    char *line = strndup(text, len);
    if (line == NULL)
        return;
    if (m->ncon == TCON_MAX) {
        free(m->con[m->con_first]);
        m->con[m->con_first] = line;
        m->con_first = (m->con_first + 1) % TCON_MAX;
    } else {
        m->con[(m->con_first + m->ncon++) % TCON_MAX] = line;
    }
}

void model_con_add(tui_model_t *m, const char *text, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(text, '\n', len);
        size_t take = nl ? (size_t)(nl - text) : len;
        size_t have = strlen(m->con_partial);
        if (nl) {
            char line[sizeof(m->con_partial) + 1024];
            int n = snprintf(line, sizeof(line), "%s%.*s", m->con_partial,
                             (int)(take < 1024 ? take : 1024), text);
            con_line(m, line, ui_snlen(n, sizeof(line)));
            m->con_partial[0] = '\0';
            take++;
        } else if (have + take < sizeof(m->con_partial)) {
            memcpy(m->con_partial + have, text, take);
            m->con_partial[have + take] = '\0';
        }
        text += take;
        len -= take;
    }
}

const char *model_con_at(const tui_model_t *m, size_t i)
{
    if (i < m->ncon)
        return m->con[(m->con_first + i) % TCON_MAX];
    return i == m->ncon && m->con_partial[0] ? m->con_partial : NULL;
}

void model_output(tui_model_t *m, const char *line, size_t len, uint64_t time_us)
{
    model_log_add(m, -1, time_us, m->snap && m->snap->tree ? m->snap->tree : "output", line, len);
}

/* A lock event: the queue changes at once (the next snapshot confirms). */
static void lock_event(tui_model_t *m, const cn_event_t *ev)
{
    const char *op = ev->op ? ev->op : "";
    tlock_t t = {ev->actor, ev->cid, "", "", ev->time_us};
    snprintf(t.path, sizeof(t.path), "%s", ev->path ? ev->path : "");
    snprintf(t.reason, sizeof(t.reason), "%.*s", ev->detail ? (int)ev->detail_len : 0,
             ev->detail ? ev->detail : "");
    /* Out of the waiters in any case; back in if it waits. */
    for (size_t i = 0; i < m->nwaiters; i++)
        if (m->waiters[i].actor == t.actor && m->waiters[i].cid == t.cid) {
            memmove(&m->waiters[i], &m->waiters[i + 1], (m->nwaiters - i - 1) * sizeof(t));
            m->nwaiters--;
            break;
        }
    int same = m->has_holder && m->holder.actor == t.actor && m->holder.cid == t.cid;
    if (!strcmp(op, "granted") || !strcmp(op, "holding")) {
        m->holder = t;
        m->has_holder = 1;
    } else if (!strcmp(op, "queued") || !strcmp(op, "waiting") || !strcmp(op, "skipped")) {
        if (same)
            m->has_holder = 0;
        if (m->nwaiters < TLOCK_MAX)
            m->waiters[m->nwaiters++] = t;
    } else if (same) { /* released, left */
        m->has_holder = 0;
    }
    char line[600];
    int n = snprintf(line, sizeof(line), "[lock] %.*s", ev->detail ? (int)ev->detail_len : 0,
                     ev->detail ? ev->detail : op);
    if (m->con_partial[0])
        model_con_add(m, "\n", 1);
    con_line(m, line, ui_snlen(n, sizeof(line)));
}

/* Whether the log already has this record: the first snapshot's log tail
 * can be taken after a record was logged and before its event is read,
 * and then seeds it too. Only the last records can be such a copy. */
static int log_has(const tui_model_t *m, int level, uint64_t time_us, const char *path,
                   const char *msg, size_t len)
{
    for (size_t i = m->nlogs, seen = 0; i > 0 && seen < 256; i--, seen++) {
        const tlog_t *l = model_log_at(m, i - 1);
        if (l->time_us < time_us)
            break;
        if (l->time_us == time_us && l->level == level && !strcmp(l->path, path ? path : "") &&
            strlen(l->message) == len && (len == 0 || !memcmp(l->message, msg, len)))
            return 1;
    }
    return 0;
}

/* An exit event ("actor 7 (x) exited on signal 9", "... with status 3",
 * "... disconnected"): kept until a snapshot knows it. */
static void exit_seen(tui_model_t *m, const cn_event_t *ev)
{
    char detail[256];
    snprintf(detail, sizeof(detail), "%.*s", ev->detail ? (int)ev->detail_len : 0,
             ev->detail ? ev->detail : "");
    const char *sig = strstr(detail, "on signal "), *st = strstr(detail, "with status ");
    size_t i = m->nexits < TEXITS_MAX ? m->nexits++ : TEXITS_MAX - 1; /* full: the last */
    m->exits[i].actor = ev->peer;
    m->exits[i].time_us = ev->time_us;
    if (sig)
        snprintf(m->exits[i].how, sizeof(m->exits[i].how), "signal %ld",
                 strtol(sig + strlen("on signal "), NULL, 10));
    else if (st)
        snprintf(m->exits[i].how, sizeof(m->exits[i].how), "exit %ld",
                 strtol(st + strlen("with status "), NULL, 10));
    else
        snprintf(m->exits[i].how, sizeof(m->exits[i].how), "exited");
}

const char *model_exit_of(const tui_model_t *m, uint32_t actor)
{
    for (size_t i = 0; i < m->nexits; i++)
        if (m->exits[i].actor == actor)
            return m->exits[i].how;
    return NULL;
}

const cn_snap_child_t *model_exited(const tui_model_t *m, uint32_t id)
{
    for (size_t i = 0; m->snap && i < m->snap->nactors; i++)
        for (size_t k = 0; k < m->snap->actors[i].nchildren; k++) {
            const cn_snap_child_t *c = &m->snap->actors[i].children[k];
            if (c->id == id && c->state && strcmp(c->state, "exited") == 0)
                return c;
        }
    return NULL;
}

int model_event(tui_model_t *m, const cn_event_t *ev)
{
    const char *k = ev->kind ? ev->kind : "";
    if (!strcmp(k, "log")) {
        size_t len = ev->detail ? ev->detail_len : 0;
        if (m->logs_seeded && log_has(m, ev->level, ev->time_us, ev->path, ev->detail, len))
            return 0;
        model_log_add(m, ev->level, ev->time_us, ev->path, ev->detail, len);
        return EV_SHOWN;
    }
    if (!strcmp(k, "console")) {
        model_con_add(m, ev->detail ? ev->detail : "", ev->detail ? ev->detail_len : 0);
        return EV_SHOWN;
    }
    if (!strcmp(k, "lock")) {
        lock_event(m, ev);
        return EV_SHOWN | EV_SHAPE;
    }
    if (!strcmp(k, "error")) {
        char line[600];
        int n = snprintf(line, sizeof(line), "[canopy] %.*s", ev->detail ? (int)ev->detail_len : 0,
                         ev->detail ? ev->detail : "refused");
        con_line(m, line, ui_snlen(n, sizeof(line)));
        return EV_SHOWN;
    }
    if (!strcmp(k, "exit")) {
        exit_seen(m, ev);
        return EV_SHAPE | EV_SHOWN;
    }
    if (!strcmp(k, "spawn") || !strcmp(k, "cancel"))
        return EV_SHAPE;
    if (!strcmp(k, "dropped")) { /* the log view has a gap: say so there */
        char msg[400];
        int n = snprintf(msg, sizeof(msg), "%llu events dropped: %.*s",
                         (unsigned long long)ev->count, ev->detail ? (int)ev->detail_len : 0,
                         ev->detail ? ev->detail : "");
        model_log_add(m, CN_LOG_WARN, ev->time_us, ev->path ? ev->path : "canopy", msg,
                      ui_snlen(n, sizeof(msg)));
        return EV_SHOWN | EV_CTX; /* and what it missed of the contexts comes again */
    }
    return EV_CTX; /* ctx-*, stall, resume */
}
