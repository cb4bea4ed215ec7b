/*
 * lock.c: the console lock, in the root (docs/debugger.md, "The lock").
 *
 * One FIFO queue of debugger sessions, each an (actor, session number)
 * pair from a LOCK_REQ. The head is granted the console while a console
 * client is attached; with none, requests wait in the queue and the root
 * logs how to attach. Only the holder's CONSOLE_OUT reaches the consoles
 * and console input goes to the holder alone, so two actors' sessions can
 * never interleave.
 *
 * The holder leaves with LOCK_RELEASE (continue), by dying (its route goes,
 * cn__lock_actor_gone), or because the user skipped it (it goes to the back
 * of the queue, its session intact) or force-released it (it is told to
 * continue). Every change is a "lock" event for consoles and subscribers.
 *
 * Invariant: everything here runs on the root's broker thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canopy/client.h"
#include "debug/debug.h"
#include "runtime/rt.h"

typedef struct lw {
    struct lw *next;
    uint32_t actor;
    uint64_t sid; /* the session's number: the LOCK_REQ's cid */
    uint64_t since_us, granted_us;
    char reason[CN__REASON_MAX];
    char path[CN__PATH_MAX];
} lw_t;

static struct {
    lw_t *holder;
    lw_t *head, *tail; /* waiters, oldest first */
    unsigned nwait;
} lk;

/* The root's own terminal is the console while no client is (tty.c). */
static int tty_is_console(void)
{
    return cn__attach_consoles() == 0 && cn__tty_usable();
}

static unsigned consoles(void)
{
    return cn__attach_consoles() + (unsigned)tty_is_console();
}

/* ===========================================================================
 * Events
 */

static int pack_event(msgpack_sbuffer *sb, const char *kind, const char *op, const lw_t *w,
                      const char *detail, size_t detail_len)
{
    msgpack_packer pk;
    size_t mark;
    cn_wire_hdr_t h = {CN_MSG_EVENT, 0, cn__rt.id, w ? w->sid : 0};
    if (cn_wire_begin(sb, &pk, &h, &mark) < 0)
        return -1;
    msgpack_pack_map(&pk, 8);
    cn__pack_kstr(&pk, "kind", kind);
    cn__pack_kstr(&pk, "op", op);
    cn__pack_kint(&pk, "actor", w ? w->actor : 0);
    cn__pack_kstr(&pk, "path", w ? w->path : NULL);
    cn__pack_kint(&pk, "cid", w ? (int64_t)w->sid : 0);
    cn__pack_kint(&pk, "time_us", (int64_t)cn__now_us());
    cn__pack_kint(&pk, "waiting", lk.nwait);
    cn__pack_cstr(&pk, "detail");
    if (detail == NULL) {
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_str(&pk, detail_len);
        msgpack_pack_str_body(&pk, detail, detail_len);
    }
    return cn_wire_end(sb, mark, 0, 0);
}

/* A queue change: to consoles and subscribers at once, so that a console
 * sees "granted" before the holder's first words. */
static void notice(const char *op, const lw_t *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void notice(const char *op, const lw_t *w, const char *fmt, ...)
{
    char detail[CN__REASON_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (pack_event(&sb, "lock", op, w, detail, strlen(detail)) == 0)
        cn__attach_console_send(sb.data, sb.size, 1, NULL);
    msgpack_sbuffer_destroy(&sb);
    if (tty_is_console()) {
        char line[sizeof(detail) + 16];
        int n = snprintf(line, sizeof(line), "[lock] %s\n", detail);
        cn__tty_write(line, n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
}

/* ===========================================================================
 * The queue
 */

static void send_to(uint32_t type, const lw_t *w, const char *text)
{
    /* A child of the root under gdb: the root relays its gdb (gdb.c). */
    if (type == CN_MSG_CONSOLE_IN && cn__gdb_input(w->actor, w->sid, text, strlen(text)))
        return;
    if (type == CN_MSG_LOCK_RELEASE)
        cn__gdb_released(w->actor, text);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {type, w->actor, cn__rt.id, w->sid};
    int rc;
    if (type == CN_MSG_CONSOLE_IN) {
        cn_wire_console_in_t b = {cn__wstr(text)};
        rc = cn_wire_pack_typed(&sb, &h, &b, 0);
    } else {
        msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
        if (text) {
            o.type = MSGPACK_OBJECT_STR;
            o.via.str.ptr = text;
            o.via.str.size = (uint32_t)strlen(text);
        }
        rc = cn_wire_pack(&sb, &h, &o, 0);
    }
    char why[CN__REASON_MAX];
    if (rc == 0 && cn__send_frame(&h, sb.data, sb.size, why) < 0)
        cn_log(CN_LOG_DEBUG, "debugger: cannot reach actor %u: %s", w->actor, why);
    msgpack_sbuffer_destroy(&sb);
}

static void tty_line(const char *line, size_t len);

static void grant_next(void)
{
    if (lk.holder == NULL && lk.head == NULL)
        cn__tty_stop(); /* nobody wants the console: the terminal is the program's */
    if (lk.holder || lk.head == NULL || consoles() == 0)
        return;
    lw_t *w = lk.head;
    lk.head = w->next;
    if (lk.head == NULL)
        lk.tail = NULL;
    lk.nwait--;
    w->next = NULL;
    w->granted_us = cn__now_us();
    lk.holder = w;
    notice("granted", w, "%s has the console: %s", w->path, w->reason);
    cn_log(CN_LOG_INFO, "debugger: %s has the console (%s)", w->path, w->reason);
    if (tty_is_console())
        cn__tty_start(w->path, tty_line);
    send_to(CN_MSG_LOCK_GRANT, w, NULL);
}

static void enqueue(lw_t *w)
{
    w->next = NULL;
    if (lk.tail)
        lk.tail->next = w;
    else
        lk.head = w;
    lk.tail = w;
    lk.nwait++;
}

/* Takes (actor, sid) out of the waiters, or all of actor's if sid is 0. */
static int unqueue(uint32_t actor, uint64_t sid, const char *why)
{
    int found = 0;
    for (lw_t **p = &lk.head; *p;) {
        lw_t *w = *p;
        if (w->actor != actor || (sid && w->sid != sid)) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        lk.nwait--;
        found = 1;
        notice("left", w, "%s no longer waits: %s", w->path, why);
        free(w);
    }
    lk.tail = NULL;
    for (lw_t *w = lk.head; w; w = w->next)
        lk.tail = w;
    return found;
}

static void on_req(const cn_wire_msg_t *m)
{
    lw_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return;
    w->actor = m->hdr.src;
    w->sid = m->hdr.cid;
    w->since_us = cn__now_us();
    const cn_wire_lock_req_t *b = &m->u.lock_req;
    snprintf(w->reason, sizeof(w->reason), "%.*s", (int)b->reason.len, b->reason.ptr);
    if (b->path.ptr)
        snprintf(w->path, sizeof(w->path), "%.*s", (int)b->path.len, b->path.ptr);
    else
        snprintf(w->path, sizeof(w->path), "actor %u", w->actor);
    enqueue(w);
    notice("queued", w, "%s wants the console: %s", w->path, w->reason);
    if (consoles() == 0)
        cn_log(CN_LOG_WARN, "debugger: %s waits for the console (%s); attach with: canopy attach %s",
               w->path, w->reason, cn__rt.name);
    grant_next();
}

/* The holder loses the console; with `tell`, it is told so (a force-
 * release) after it is no longer the holder, so that its own
 * LOCK_RELEASE, which may come back at once, finds nothing to release. */
static void release_holder(const char *op, const char *fmt, const char *why, int tell)
{
    lw_t *w = lk.holder;
    lk.holder = NULL;
    notice(op, w, fmt, w->path, why);
    if (tell)
        send_to(CN_MSG_LOCK_RELEASE, w, why); /* it continues */
    free(w);
    grant_next();
}

static void on_release(const cn_wire_msg_t *m)
{
    lw_t *w = lk.holder;
    if (w && w->actor == m->hdr.src && w->sid == m->hdr.cid)
        release_holder("released", "%s gave the console back (%s)", "continue", 0);
    else
        unqueue(m->hdr.src, m->hdr.cid, "it gave up waiting");
}

static void on_output(const cn_wire_msg_t *m)
{
    lw_t *w = lk.holder;
    if (w == NULL || w->actor != m->hdr.src || w->sid != m->hdr.cid) {
        cn_log(CN_LOG_DEBUG, "debugger: dropped console output from actor %u, which does not "
                             "hold the console", m->hdr.src);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const cn_wire_str_t *d = &m->u.console_out.data;
    if (pack_event(&sb, "console", "output", w, d->ptr, d->len) == 0)
        cn__attach_console_send(sb.data, sb.size, 0, NULL);
    msgpack_sbuffer_destroy(&sb);
    if (tty_is_console())
        cn__tty_write(d->ptr, d->len);
}

/* ===========================================================================
 * Entry points
 */

void cn__lock_on_msg(const cn_wire_msg_t *m)
{
    switch (m->hdr.type) {
    case CN_MSG_LOCK_REQ:
        on_req(m);
        break;
    case CN_MSG_LOCK_RELEASE:
        on_release(m);
        break;
    case CN_MSG_CONSOLE_OUT:
        on_output(m);
        break;
    default:
        break;
    }
}

void cn__lock_actor_gone(uint32_t id, const char *why)
{
    if (lk.holder && lk.holder->actor == id)
        release_holder("released", "%s died holding the console; released (%s)", why, 0);
    unqueue(id, 0, why);
}

int cn__lock_interrupt(void)
{
    if (lk.holder == NULL)
        return 0;
    send_to(CN_MSG_CONSOLE_IN, lk.holder, CN__INTERRUPT);
    return 1;
}

void cn__lock_consoles_changed(void)
{
    if (cn__attach_consoles() > 0)
        cn__tty_stop(); /* a client is the console now */
    else if (lk.holder && tty_is_console())
        cn__tty_start(lk.holder->path, tty_line);
    if (lk.holder && consoles() > 0)
        send_to(CN_MSG_LOCK_GRANT, lk.holder, NULL); /* shows its prompt again */
    grant_next();
}

void cn__lock_replay(void (*send)(const char *frame, size_t len, void *arg), void *arg)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char d[CN__REASON_MAX + 64];
    if (lk.holder) {
        snprintf(d, sizeof(d), "%s has the console: %s", lk.holder->path, lk.holder->reason);
        if (pack_event(&sb, "lock", "holding", lk.holder, d, strlen(d)) == 0)
            send(sb.data, sb.size, arg);
    }
    for (lw_t *w = lk.head; w; w = w->next) {
        sb.size = 0;
        snprintf(d, sizeof(d), "%s waits: %s", w->path, w->reason);
        if (pack_event(&sb, "lock", "waiting", w, d, strlen(d)) == 0)
            send(sb.data, sb.size, arg);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* The op of a client's LOCK_RELEASE: {"op": "skip"} or {"op": "release"}. */
static int op_is(const cn_wire_msg_t *m, const char *op)
{
    const msgpack_object *o = cn_msgpack_get(&m->body, "op");
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(op) &&
           memcmp(o->via.str.ptr, op, o->via.str.size) == 0;
}

static int client_break(const cn_wire_msg_t *m, const char *who, char *err)
{
    uint32_t dst = m->hdr.dst;
    if (dst != cn__rt.id) {
        cn__lock(&cn__rt.mu);
        int known = cn_route_find(&cn__rt.routes, dst) != NULL;
        cn__unlock(&cn__rt.mu);
        if (!known) {
            snprintf(err, CN__REASON_MAX, "no actor %u in this tree", dst);
            return CN_ENOENT;
        }
    }
    char why[CN__REASON_MAX];
    snprintf(why, sizeof(why), "break requested by %s", who);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_BREAK, dst, cn__rt.id, 0};
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = why;
    o.via.str.size = (uint32_t)strlen(why);
    int rc = cn_wire_pack(&sb, &h, &o, 0);
    if (rc == 0)
        rc = cn__send_frame(&h, sb.data, sb.size, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0)
        cn_log(CN_LOG_INFO, "debugger: %s on actor %u", why, dst);
    return rc;
}

/* :skip: the holder to the back of the queue, its session intact. */
static int skip_holder(const char *who, char *err)
{
    if (lk.head == NULL) {
        snprintf(err, CN__REASON_MAX, "nobody else waits for the console");
        return CN_ENOENT;
    }
    lw_t *w = lk.holder;
    lk.holder = NULL;
    notice("skipped", w, "%s skipped by %s: back to the end of the queue", w->path, who);
    w->since_us = cn__now_us();
    enqueue(w);
    grant_next();
    return 0;
}

/* :release: the holder is made to continue. */
static int force_release(const char *who)
{
    char why[CN__REASON_MAX];
    snprintf(why, sizeof(why), "force-released by %s", who);
    release_holder("released", "%s: %s", why, 1);
    return 0;
}

/* A line typed for the holder, as the consoles that did not type it see
 * it: after the holder's prompt, as if typed there (`from` is the client
 * that typed it, or NULL for the root's terminal). A Ctrl-C is not shown. */
static void echo_input(const char *line, const void *from)
{
    const lw_t *w = lk.holder;
    if (w == NULL || strcmp(line, CN__INTERRUPT) == 0)
        return;
    char text[4096 + CN__PATH_MAX + 8];
    int n = snprintf(text, sizeof(text), "(%s) %s\n", w->path, line);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (pack_event(&sb, "console", "input", w, text, len) == 0)
        cn__attach_console_send(sb.data, sb.size, 0, from);
    msgpack_sbuffer_destroy(&sb);
    if (from && tty_is_console())
        cn__tty_write(text, len);
}

/* :queue at the root's terminal: the holder and the waiters, as the line
 * console shows them from a snapshot. */
static void tty_queue(void)
{
    char buf[4096];
    size_t n = 0;
    uint64_t now = cn__now_us();
    const lw_t *h = lk.holder;
    n += (size_t)snprintf(buf, sizeof(buf), "holder:  %s: %s (for %.1fs)\n", h->path, h->reason,
                          (double)(now - h->granted_us) / 1e6);
    unsigned i = 0;
    for (const lw_t *w = lk.head; w && n < sizeof(buf) - 2 * CN__PATH_MAX; w = w->next)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "waiting: %u. %s: %s (for %.1fs)\n", ++i,
                              w->path, w->reason, (double)(now - w->since_us) / 1e6);
    if (lk.head == NULL)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "waiting: nobody\n");
    cn__tty_write(buf, n < sizeof(buf) ? n : sizeof(buf) - 1);
}

/* A line typed at the root's own terminal. */
static void tty_line(const char *line, size_t len)
{
    char err[CN__REASON_MAX] = "";
    int rc = 0;
    if (lk.holder == NULL)
        return;
    if (len > 0 && line[0] == ':') {
        if (strcmp(line, ":skip") == 0)
            rc = skip_holder("the root's terminal", err);
        else if (strcmp(line, ":release") == 0)
            rc = force_release("the root's terminal");
        else if (strcmp(line, ":queue") == 0)
            tty_queue();
        else
            snprintf(err, sizeof(err), "console commands here: :queue, :skip, :release");
        if (rc < 0 || err[0]) {
            char msg[CN__REASON_MAX + 16];
            int n = snprintf(msg, sizeof(msg), "%s\n", err);
            cn__tty_write(msg, n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
        }
        return;
    }
    echo_input(line, NULL);
    send_to(CN_MSG_CONSOLE_IN, lk.holder, line);
}

int cn__lock_client_msg(const cn_wire_msg_t *m, const char *who, const void *from, char *err)
{
    switch (m->hdr.type) {
    case CN_MSG_BREAK:
        return client_break(m, who, err);
    case CN_MSG_CONSOLE_IN:
        if (lk.holder == NULL) {
            snprintf(err, CN__REASON_MAX, "no actor holds the console (%u waiting)", lk.nwait);
            return CN_ENOENT;
        }
        char line[4096];
        const cn_wire_str_t *d = &m->u.console_in.data;
        snprintf(line, sizeof(line), "%.*s", (int)d->len, d->ptr);
        echo_input(line, from);
        send_to(CN_MSG_CONSOLE_IN, lk.holder, line);
        return 0;
    case CN_MSG_LOCK_RELEASE:
        if (lk.holder == NULL) {
            snprintf(err, CN__REASON_MAX, "no actor holds the console");
            return CN_ENOENT;
        }
        if (op_is(m, "skip"))
            return skip_holder(who, err);
        if (op_is(m, "release"))
            return force_release(who);
        snprintf(err, CN__REASON_MAX, "LOCK_RELEASE needs {\"op\": \"skip\" or \"release\"}");
        return CN_EINVAL;
    default:
        snprintf(err, CN__REASON_MAX, "not a debugger request");
        return CN_EINVAL;
    }
}

static void pack_waiter(msgpack_packer *pk, const lw_t *w)
{
    msgpack_pack_map(pk, 6);
    cn__pack_kint(pk, "actor", w->actor);
    cn__pack_kstr(pk, "path", w->path);
    cn__pack_kint(pk, "session", (int64_t)w->sid);
    cn__pack_kstr(pk, "reason", w->reason);
    cn__pack_kint(pk, "since_us", (int64_t)w->since_us);
    cn__pack_kint(pk, "granted_us", (int64_t)w->granted_us);
}

void cn__lock_pack(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    cn__pack_cstr(pk, "holder");
    if (lk.holder)
        pack_waiter(pk, lk.holder);
    else
        msgpack_pack_nil(pk);
    cn__pack_kint(pk, "consoles", consoles());
    cn__pack_cstr(pk, "waiters");
    msgpack_pack_array(pk, lk.nwait);
    for (lw_t *w = lk.head; w; w = w->next)
        pack_waiter(pk, w);
}
