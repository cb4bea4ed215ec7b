/*
 * attach.c: the root's attach socket, its clients, and whole-tree
 * snapshots.
 *
 * The root listens on a unix socket (path below) for the canopy tool.
 * Clients speak the wire protocol: HELLO first, then INSPECT for a tree
 * snapshot, SUBSCRIBE for the event feed, CANCEL for operator cancels
 * (protocol.md, Inspection). They are not actors: they have no id in the tree, nothing is
 * routed to them, and they live apart from the actor links, so a hostile
 * or broken client can only lose its own connection:
 *   - the peer's uid must be ours (or root's), checked with SO_PEERCRED;
 *   - at most CLIENTS_MAX at once; more are refused with a log line;
 *   - frames over CLIENT_FRAME_MAX, or malformed, cut the client off;
 *   - no HELLO within HELLO_MS, or half a frame and then silence for
 *     STALL_MS, cuts it off;
 *   - a client is not read from while REQS_MAX snapshots are being
 *     gathered for it, or OUT_HOLD bytes of answers wait for it: its
 *     requests wait in its socket, so one that sends and never reads
 *     costs the tree a socket buffer, not memory, and is cut off once it
 *     has read nothing for STALL_MS while held so;
 *   - a client that does not read its answers is cut off once OUT_MAX
 *     bytes wait for it (one large answer, or a console's output);
 *   - out of file descriptors, a connection is taken with a spare one
 *     kept for this and closed at once, rather than left to make the
 *     loop spin on a socket it cannot accept from.
 *
 * A tree snapshot asks every actor the root has a route to, at once, and
 * answers when all have replied or the deadline passes; actors that did
 * not reply are listed as unresponsive.
 *
 * Invariant: everything here runs on the root's broker thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "canopy/client.h"
#include "debug/debug.h"
#include "inspect/inspect.h"
#include "runtime/rt.h"

#define CLIENTS_MAX 64
#define CLIENT_FRAME_MAX (1u << 20)
#define HELLO_MS 5000
#define STALL_MS 10000 /* CANOPY_ATTACH_STALL_MS overrides both, for tests */
#define OUT_MAX (64u << 20)
#define OUT_HOLD (256u << 10) /* answers unread past which a client's requests wait */
#define OUT_KEEP (1u << 20)   /* a drained answer buffer larger than this is freed */
#define REQS_MAX 8            /* snapshots being gathered for one client at once */
#define EVENTS_MAX (1u << 20) /* event bytes queued for one subscriber */
#define EVENTS_SOON (EVENTS_MAX / 4) /* ... written before the next tick */
#define SNAP_TIMEOUT_MS 1000
#define SNAP_TIMEOUT_MAX_MS 30000

typedef struct cn__client {
    int fd;
    uv_poll_t poll;
    int events;
    int closing;
    int greeted;
    unsigned slot;
    uid_t uid;
    pid_t pid;
    char name[CN__NAME_MAX];
    uint64_t since_ms;   /* connected */
    uint64_t heard_ms;   /* bytes last arrived */
    uint64_t part_ms;    /* a frame began arriving and is not complete, or 0 */
    cn_wire_decoder_t dec;
    msgpack_sbuffer out; /* answers not yet written */
    size_t out_off;
    int subscribed;   /* sent SUBSCRIBE: gets EVENTs */
    int no_ctx;       /* ... but not the contexts' (SUBSCRIBE {contexts: false}) */
    int console;      /* sent SUBSCRIBE with console: the debugger's console */
    uint64_t dropped; /* events it lost while not reading */

    unsigned reqs;     /* snapshots being gathered for it */
    uint64_t held_ms;  /* client_busy since, or 0 */
    uint64_t stuck_ms; /* answers wait and none has been taken since, or 0 */
} client_t; /* cn__client_t in inspect.h, for the test hooks */

typedef struct treq {
    struct treq *next;
    client_t *c; /* NULL once the client has gone */
    uint64_t ccid;
    uint64_t id; /* the cid of the INSPECTs sent for it */
    size_t n, ngot;
    uint32_t *ids;
    msgpack_sbuffer *parts; /* each actor's packed snapshot, or empty */
    char (*names)[CN_ROUTE_NAME_MAX];
    uint32_t timeout_ms;
    uv_timer_t timer;
} treq_t;

static struct {
    int fd;
    uv_poll_t poll;
    cn__clock_t tick;
    int on;
    int unlinked;
    uint64_t hello_ms, stall_ms;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    client_t *clients[CLIENTS_MAX];
    treq_t *reqs;
    uint64_t next_req;
    unsigned subscribers, ctx_subscribers; /* the latter want the contexts' events */
    unsigned consoles;
    int spare;         /* a descriptor kept to refuse clients with when out of them */
    uv_timer_t rest;   /* ... and without it, the listening socket rests a while */
    uint64_t nofd_ms;  /* when refusing for want of descriptors was last logged */
    unsigned nofd_n;   /* refused so since */
} at = {.fd = -1, .spare = -1};

static void client_cut(client_t *c, const char *why);
static void set_subscribed(client_t *c, int on, int contexts);
static void client_flush(client_t *c);
static void send_dropped(client_t *c);
static void send_ok_to(client_t *c, const cn_wire_msg_t *m);
static void fan_out_one(client_t *c, const char *prefix, const char *frame, size_t len,
                        uint64_t nevents);
static void on_client_poll(uv_poll_t *p, int status, int events);
static void cleanup_on_signals(void);

/* ===========================================================================
 * Where the socket lives
 */

/* client.h. Here rather than in client.c, which has the rest of the
 * client: the root needs this one function of it, and a tree's program
 * linked statically would otherwise carry the whole client. */
int cn_client_dir(char *out, size_t n)
{
    const char *env = getenv("CANOPY_RUNTIME_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int len;
    if (env && *env)
        len = snprintf(out, n, "%s", env);
    else if (xdg && *xdg && access(xdg, W_OK) == 0)
        len = snprintf(out, n, "%s/canopy", xdg);
    else
        len = snprintf(out, n, "/tmp/canopy-%u", (unsigned)getuid());
    return len < 0 || (size_t)len >= n ? CN_ENAMETOOLONG : 0;
}

/* The directory clients look in (cn_client_dir), created 0700; refused
 * unless ours and private. */
static int socket_dir(char *out, size_t n)
{
    if (cn_client_dir(out, n) < 0)
        return CN_ENAMETOOLONG;
    if (mkdir(out, 0700) < 0 && errno != EEXIST) {
        cn_log(CN_LOG_WARN, "no attach socket: cannot create %s: %s", out, strerror(errno));
        return CN_EIO;
    }
    struct stat st;
    if (lstat(out, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 077) != 0) {
        cn_log(CN_LOG_WARN,
               "no attach socket: %s is not a directory private to this user (mode 0700)", out);
        return CN_EACCES;
    }
    return 0;
}

/* ===========================================================================
 * Clients: reading, writing, cutting off
 */

static uint64_t now_ms(void)
{
    return uv_now(&cn__rt.loop);
}

/* Whether c's further requests must wait in its socket: REQS_MAX
 * snapshots are being gathered for it, or OUT_HOLD bytes of answers
 * wait for it to read them. */
static int client_busy(const client_t *c)
{
    return c->reqs >= REQS_MAX || c->out.size - c->out_off > OUT_HOLD;
}

/* Watches c for what it may do now: send requests unless it is busy,
 * take answers while some wait. */
static void client_rewatch(client_t *c)
{
    if (c->closing)
        return;
    int busy = client_busy(c);
    int events = (busy ? 0 : UV_READABLE) | (c->out_off < c->out.size ? UV_WRITABLE : 0);
    c->held_ms = !busy ? 0 : c->held_ms ? c->held_ms : now_ms();
    if (c->events == events)
        return;
    c->events = events;
    if (events)
        uv_poll_start(&c->poll, events, on_client_poll);
    else
        uv_poll_stop(&c->poll); /* until a snapshot for it is finished */
}

static void on_client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    close(c->fd);
    cn_wire_decoder_fini(&c->dec);
    msgpack_sbuffer_destroy(&c->out);
    free(c);
}

static void client_cut(client_t *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (why)
        cn_log(CN_LOG_WARN, "attach: cut off client %u (%s, pid %d): %s", c->slot,
               c->name[0] ? c->name : "no HELLO", (int)c->pid, why);
    at.clients[c->slot] = NULL;
    if (c->subscribed)
        set_subscribed(c, 0, 0);
    if (c->console) {
        c->console = 0;
        at.consoles--;
        char left[48] = "; no other console is attached";
        if (at.consoles > 0)
            snprintf(left, sizeof(left), "; %u still attached", (unsigned)at.consoles);
        cn_log(CN_LOG_INFO, "debugger: console detached: %s (pid %d)%s", c->name, (int)c->pid,
               left);
        cn__lock_consoles_changed();
    }
    for (treq_t *r = at.reqs; r; r = r->next)
        if (r->c == c)
            r->c = NULL;
    uv_close((uv_handle_t *)&c->poll, on_client_closed);
}

/* Queues one encoded frame for c and writes what it can now. */
static void client_send(client_t *c, const msgpack_sbuffer *frame)
{
    if (c->closing)
        return;
    if (c->out.size - c->out_off + frame->size > OUT_MAX) {
        client_cut(c, "it does not read its answers");
        return;
    }
    if (msgpack_sbuffer_write(&c->out, frame->data, frame->size) != 0) {
        client_cut(c, "out of memory for its answers");
        return;
    }
    client_flush(c);
}

static void client_flush(client_t *c)
{
    size_t was = c->out_off;
    while (c->out_off < c->out.size) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.size - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            client_cut(c, NULL); /* gone: nothing to say */
            return;
        }
    }
    if (c->out_off < c->out.size) { /* the rest waits for the socket */
        if (c->out_off != was || c->stuck_ms == 0)
            c->stuck_ms = now_ms();
        /* A reader that keeps up but never quite catches up would
         * otherwise grow the buffer for ever: slide the rest down. */
        if (c->out_off > c->out.size / 2) {
            memmove(c->out.data, c->out.data + c->out_off, c->out.size - c->out_off);
            c->out.size -= c->out_off;
            c->out_off = 0;
        }
        client_rewatch(c);
        return;
    }
    c->stuck_ms = 0;
    if (c->out.alloc > OUT_KEEP) { /* do not keep a burst's buffer */
        msgpack_sbuffer_destroy(&c->out);
        msgpack_sbuffer_init(&c->out);
    }
    c->out.size = c->out_off = 0;
    client_rewatch(c);
    if (c->dropped)
        send_dropped(c);
}

static void send_dead_to(client_t *c, const cn_wire_msg_t *m, const char *reason)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_DEAD, m->hdr.src, cn__rt.id, m->hdr.cid};
    cn_wire_dead_t d = {cn__wstr(reason), m->hdr.type};
    if (cn_wire_pack_typed(&sb, &h, &d, 0) == 0)
        client_send(c, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ===========================================================================
 * Tree snapshots
 */

static void on_req_closed(uv_handle_t *h)
{
    treq_t *r = h->data;
    for (size_t i = 0; i < r->n; i++)
        msgpack_sbuffer_destroy(&r->parts[i]);
    free(r->parts);
    free(r->ids);
    free(r->names);
    free(r);
}

/* An actor that did not answer: what the root's routes know of it (its
 * parent, pid and path), so that tools can still place it in the tree. */
static void pack_unresponsive(msgpack_packer *pk, uint32_t id, const char *name,
                              uint32_t timeout_ms)
{
    char path[CN__PATH_MAX] = "", part[CN__PATH_MAX];
    int64_t parent = -1;
    int pid = 0;
    cn__lock(&cn__rt.mu);
    const cn_route_t *rt = cn_route_find(&cn__rt.routes, id);
    if (rt) {
        parent = rt->parent;
        pid = rt->pid;
    }
    /* The path: names up the routes to the root (at most 64 levels). */
    for (int depth = 0; rt && depth < 64; depth++) {
        snprintf(part, sizeof(part), "%s%s%s", rt->name, path[0] ? "/" : "", path);
        snprintf(path, sizeof(path), "%s", part);
        rt = rt->parent == cn__rt.id ? NULL : cn_route_find(&cn__rt.routes, rt->parent);
    }
    cn__unlock(&cn__rt.mu);
    if (path[0]) {
        snprintf(part, sizeof(part), "%s/%s", cn__rt.path, path);
        snprintf(path, sizeof(path), "%s", part);
    }
    msgpack_pack_map(pk, 7);
    cn__pack_kint(pk, "id", id);
    cn__pack_kstr(pk, "name", name);
    cn__pack_kstr(pk, "state", "unresponsive");
    cn__pack_kint(pk, "timeout_ms", timeout_ms);
    cn__pack_kint(pk, "parent", parent);
    cn__pack_kint(pk, "pid", pid);
    cn__pack_kstr(pk, "path", path[0] ? path : NULL);
}

/* Answers the client (if still there) and forgets the request. */
static void req_finish(treq_t *r)
{
    for (treq_t **p = &at.reqs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    uv_timer_stop(&r->timer);
    if (r->c)
        r->c->reqs--;
    if (r->c) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        size_t mark;
        cn_wire_hdr_t h = {CN_MSG_SNAPSHOT, 0, cn__rt.id, r->ccid};
        int rc = cn_wire_begin(&sb, &pk, &h, &mark);
        if (rc == 0) {
            msgpack_pack_map(&pk, 6);
            cn__pack_kstr(&pk, "tree", cn__rt.name);
            cn__pack_kint(&pk, "root_pid", getpid());
            cn__pack_kint(&pk, "now_us", (int64_t)cn__now_us());
            cn__pack_kint(&pk, "timeout_ms", r->timeout_ms);
            cn__pack_kint(&pk, "unresponsive", (int64_t)(r->n - r->ngot));
            cn__pack_cstr(&pk, "actors");
            msgpack_pack_array(&pk, r->n);
            for (size_t i = 0; i < r->n; i++) {
                if (r->parts[i].size > 0) {
                    msgpack_sbuffer_write(&sb, r->parts[i].data, r->parts[i].size);
                    continue;
                }
                pack_unresponsive(&pk, r->ids[i], r->names[i], r->timeout_ms);
            }
            rc = cn_wire_end(&sb, mark, 0, UINT32_MAX);
        }
        if (rc == 0)
            client_send(r->c, &sb);
        else
            cn_log(CN_LOG_ERROR, "attach: cannot encode a tree snapshot: %s", cn_strerror(rc));
        msgpack_sbuffer_destroy(&sb);
        client_rewatch(r->c); /* it may send requests again */
    }
    uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

static void on_req_timeout(uv_timer_t *t)
{
    treq_t *r = t->data;
    if (r->n > r->ngot)
        cn_log(CN_LOG_DEBUG, "attach: %zu of %zu actors did not answer within %u ms",
               r->n - r->ngot, r->n, r->timeout_ms);
    req_finish(r);
}

typedef struct {
    uint32_t *ids;
    char (*names)[CN_ROUTE_NAME_MAX];
    size_t n;
} members_t;

static void collect_route(const cn_route_t *rt, void *arg)
{
    members_t *m = arg;
    m->ids[m->n] = rt->id;
    snprintf(m->names[m->n], sizeof(m->names[0]), "%s", rt->name);
    m->n++;
}

/* Every actor in the tree, this one (the root) first: ids and names,
 * allocated; n is 0 when out of memory. */
static members_t tree_members(void)
{
    members_t m = {0};
    cn__lock(&cn__rt.mu);
    size_t cap = cn_route_count(&cn__rt.routes) + 1;
    m.ids = calloc(cap, sizeof(*m.ids));
    m.names = calloc(cap, sizeof(*m.names));
    if (m.ids && m.names) {
        m.ids[0] = cn__rt.id;
        snprintf(m.names[0], sizeof(m.names[0]), "%s", cn__rt.name);
        m.n = 1;
        cn_route_foreach(&cn__rt.routes, collect_route, &m);
    }
    cn__unlock(&cn__rt.mu);
    if (m.n == 0) {
        free(m.ids);
        free(m.names);
        m.ids = NULL;
        m.names = NULL;
    }
    return m;
}

static void pack_self_into(msgpack_sbuffer *sb, int stacks)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    cn__snapshot_pack(&pk, stacks);
}

static void tree_snapshot(client_t *c, uint64_t ccid, uint32_t timeout_ms, int stacks)
{
    treq_t *r = calloc(1, sizeof(*r));
    members_t m = tree_members();
    if (r)
        r->parts = calloc(m.n ? m.n : 1, sizeof(*r->parts));
    if (r == NULL || r->parts == NULL || m.n == 0) {
        if (r)
            free(r->parts);
        free(r);
        free(m.ids);
        free(m.names);
        client_cut(c, "out of memory for a snapshot");
        return;
    }
    r->ids = m.ids;
    r->names = m.names;
    r->n = m.n;
    r->c = c;
    c->reqs++;
    r->ccid = ccid;
    r->id = ++at.next_req;
    r->timeout_ms = timeout_ms;
    for (size_t i = 0; i < r->n; i++)
        msgpack_sbuffer_init(&r->parts[i]);
    r->ngot = 1; /* this actor's part, packed once the others have been asked */
    r->next = at.reqs;
    at.reqs = r;
    r->timer.data = r;
    uv_timer_init(&cn__rt.loop, &r->timer);

    /* Ask everyone at once; each answers from its broker, while this one
     * packs its own part (with thousands of contexts, milliseconds). */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_object_kv kv = {{.type = MSGPACK_OBJECT_STR}, {.type = MSGPACK_OBJECT_BOOLEAN}};
    kv.key.via.str.ptr = "stacks";
    kv.key.via.str.size = 6;
    kv.val.via.boolean = 1;
    msgpack_object opts = {.type = MSGPACK_OBJECT_MAP};
    opts.via.map.size = 1;
    opts.via.map.ptr = &kv;
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    for (size_t i = 1; i < r->n; i++) {
        cn_wire_hdr_t h = {CN_MSG_INSPECT, r->ids[i], cn__rt.id, r->id};
        sb.size = 0;
        if (cn_wire_pack(&sb, &h, stacks ? &opts : &nil, 0) == 0 &&
            cn__send_frame(&h, sb.data, sb.size, NULL) < 0)
            cn_log(CN_LOG_DEBUG, "attach: cannot reach actor %u for a snapshot", r->ids[i]);
    }
    msgpack_sbuffer_destroy(&sb);
    pack_self_into(&r->parts[0], stacks);
    if (r->ngot == r->n)
        req_finish(r);
    else
        uv_timer_start(&r->timer, on_req_timeout, timeout_ms, 0);
}

int cn__inspect_snapshot_raw(uint32_t src, uint64_t cid, const char *payload, size_t len)
{
    for (treq_t *r = at.reqs; r; r = r->next) {
        if (r->id != cid)
            continue;
        for (size_t i = 1; i < r->n; i++)
            if (r->ids[i] == src && r->parts[i].size == 0) {
                if (msgpack_sbuffer_write(&r->parts[i], payload, len) != 0)
                    return 0; /* out of memory: listed as unresponsive */
                if (++r->ngot == r->n)
                    req_finish(r);
                return 0;
            }
        return 0; /* a duplicate or a stranger: dropped */
    }
    return -1;
}

/* An actor's SNAPSHOT for one of our requests. */
static void on_snapshot(cn_wire_msg_t *m)
{
    for (treq_t *r = at.reqs; r; r = r->next) {
        if (r->id != m->hdr.cid)
            continue;
        for (size_t i = 1; i < r->n; i++)
            if (r->ids[i] == m->hdr.src && r->parts[i].size == 0) {
                msgpack_packer pk;
                msgpack_packer_init(&pk, &r->parts[i], msgpack_sbuffer_write);
                msgpack_pack_object(&pk, m->body);
                if (++r->ngot == r->n)
                    req_finish(r);
                return;
            }
        return;
    }
}

/* ===========================================================================
 * The live event feed
 */

/* The classes of events (CN__EV_*) some subscriber wants. */
static unsigned classes_wanted(void)
{
    return (at.subscribers ? CN__EV_SHAPE : 0u) | (at.ctx_subscribers ? CN__EV_CTX : 0u);
}

/* Tells every actor (or just `only`) which classes of events to send. */
static void tell_actors(unsigned classes, uint32_t only)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    v.via.u64 = classes;
    members_t m = {0};
    uint32_t one = only;
    if (only == CN__NO_VIA)
        m = tree_members(); /* ids[0] is the root itself: skipped below */
    uint32_t *ids = only == CN__NO_VIA ? m.ids : &one;
    size_t n = only == CN__NO_VIA ? m.n : 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == cn__rt.id)
            continue;
        cn_wire_hdr_t h = {CN_MSG_SUBSCRIBE, ids[i], cn__rt.id, 0};
        sb.size = 0;
        if (cn_wire_pack(&sb, &h, &v, 0) == 0)
            cn__send_frame(&h, sb.data, sb.size, NULL);
    }
    free(m.ids);
    free(m.names);
    msgpack_sbuffer_destroy(&sb);
}

static void set_subscribed(client_t *c, int on, int contexts)
{
    unsigned before = classes_wanted();
    if (c->subscribed) {
        at.subscribers--;
        at.ctx_subscribers -= !c->no_ctx;
    }
    c->subscribed = on;
    c->no_ctx = !contexts;
    if (on) {
        at.subscribers++;
        at.ctx_subscribers += !c->no_ctx;
    }
    unsigned now = classes_wanted();
    if (now != before) { /* the first came, the last left, or what they want changed */
        cn__events_enable(now);
        tell_actors(now, CN__NO_VIA);
    }
}

void cn__inspect_route_added(uint32_t id)
{
    if (at.subscribers)
        tell_actors(classes_wanted(), id);
}

static void send_dropped(client_t *c)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    size_t mark;
    cn_wire_hdr_t h = {CN_MSG_EVENT, 0, cn__rt.id, 0};
    if (cn_wire_begin(&sb, &pk, &h, &mark) == 0) {
        msgpack_pack_map(&pk, 4);
        cn__pack_kstr(&pk, "kind", "dropped");
        cn__pack_kint(&pk, "count", (int64_t)c->dropped);
        cn__pack_kint(&pk, "time_us", (int64_t)cn__now_us());
        cn__pack_kstr(&pk, "detail", "events lost while this client was not reading");
        if (cn_wire_end(&sb, mark, 0, 0) == 0) {
            c->dropped = 0;
            client_send(c, &sb);
        }
    }
    msgpack_sbuffer_destroy(&sb);
}

int cn__attach_events_tick(void)
{
    int any = 0;
    for (unsigned i = 0; i < CLIENTS_MAX; i++) {
        client_t *c = at.clients[i];
        /* One waiting for its socket is written by the socket's poll, and
         * keeps no clock running. */
        if (c && !c->closing && c->subscribed && c->out_off < c->out.size &&
            !(c->events & UV_WRITABLE)) {
            client_flush(c);
            any = 1;
        }
    }
    return any;
}

/*
 * One EVENT frame for subscriber c: `prefix` (its length prefix, or NULL
 * when `frame` begins with it) and `frame`'s len bytes, all or nothing.
 * A subscriber that is not keeping up loses it, counted, and is told how
 * many once it catches up (nevents: how many events the frame holds, for
 * that count).
 *
 * It is queued, and written on the root's next event tick with all the
 * others that tick brings, the root's own batch and each child's (actor.c,
 * on_ev_tick; cn__attach_events_tick): one write and one wake-up of the
 * client per tick, however many actors send. Written as they came, a busy
 * tree of N actors woke each subscriber about 20 N times a second. After
 * a quiet spell (the clock stopped) the first frame goes at once and
 * starts the clock, and a backlog past EVENTS_SOON goes at once too.
 */
static void fan_out_one(client_t *c, const char *prefix, const char *frame, size_t len,
                        uint64_t nevents)
{
    size_t was = c->out.size, npre = prefix ? CN_WIRE_LEN_SIZE : 0;
    if (c->dropped || c->out.size - c->out_off + npre + len > EVENTS_MAX ||
        (prefix && msgpack_sbuffer_write(&c->out, prefix, npre) != 0) ||
        msgpack_sbuffer_write(&c->out, frame, len) != 0) {
        c->out.size = was;
        c->dropped += nevents;
        return;
    }
    if (c->events & UV_WRITABLE) /* the socket's poll writes it */
        return;
    if (!cn__rt.ev_clock.on) {
        client_flush(c);
        cn__events_clock_on();
    } else if (c->out.size - c->out_off > EVENTS_SOON) {
        client_flush(c);
    }
}

/* One EVENT frame for every subscriber that wants its class; `cid` is
 * its header's (the class, and how many events it holds). */
static void fan_out(const char *prefix, const char *frame, size_t len, uint64_t cid)
{
    int ctx = cn__ev_class(cid) == CN__EV_CTX;
    for (unsigned i = 0; i < CLIENTS_MAX; i++) {
        client_t *c = at.clients[i];
        if (c && c->subscribed && !c->closing && !(ctx && c->no_ctx))
            fan_out_one(c, prefix, frame, len, cn__ev_count(cid));
    }
}

void cn__inspect_event(const char *frame, size_t len, uint64_t cid)
{
    fan_out(NULL, frame, len, cid);
}

void cn__inspect_event_body(const char *body, size_t len, uint64_t cid)
{
    char prefix[CN_WIRE_LEN_SIZE];
    cn_wire_put_len(prefix, len);
    fan_out(prefix, body, len, cid);
}

/* The debugger's console output and lock changes: written to consoles
 * whole, never dropped (a console that stops reading is cut off at
 * OUT_MAX like any client); subscribers get lock changes as events. */
unsigned cn__attach_console_send(const char *frame, size_t len, int also_subscribers,
                                 const void *except)
{
    msgpack_sbuffer sb = {len, (char *)frame, len};
    for (unsigned i = 0; i < CLIENTS_MAX; i++) {
        client_t *c = at.clients[i];
        if (c == NULL || c->closing || c == except)
            continue;
        if (c->console)
            client_send(c, &sb);
        else if (also_subscribers && c->subscribed)
            fan_out_one(c, NULL, frame, len, 1);
    }
    return at.consoles;
}

unsigned cn__attach_consoles(void)
{
    return at.consoles;
}

static void replay_to(const char *frame, size_t len, void *arg)
{
    msgpack_sbuffer sb = {len, (char *)frame, len};
    client_send(arg, &sb);
}

/* SUBSCRIBE's options: {"events": bool (default true), "console": bool,
 * "contexts": bool (default true: the contexts' events too)}. */
static void subscribe(client_t *c, const cn_wire_msg_t *m)
{
    const msgpack_object *ev = cn_msgpack_get(&m->body, "events");
    const msgpack_object *con = cn_msgpack_get(&m->body, "console");
    const msgpack_object *ctx = cn_msgpack_get(&m->body, "contexts");
    int events = !(ev && ev->type == MSGPACK_OBJECT_BOOLEAN && !ev->via.boolean);
    int console = con && con->type == MSGPACK_OBJECT_BOOLEAN && con->via.boolean;
    int contexts = !(ctx && ctx->type == MSGPACK_OBJECT_BOOLEAN && !ctx->via.boolean);
    if (events)
        set_subscribed(c, 1, contexts);
    send_ok_to(c, m);
    if (console && !c->console) {
        c->console = 1;
        at.consoles++;
        cn_log(CN_LOG_INFO, "debugger: console attached: %s (pid %d)", c->name, (int)c->pid);
        cn__lock_replay(replay_to, c);
        cn__lock_consoles_changed();
    }
}

/* ===========================================================================
 * What clients ask
 */

/* options["key"] as an unsigned integer, or dflt. */
static uint64_t opt_u64(const msgpack_object *o, const char *key, uint64_t dflt)
{
    const msgpack_object *v = cn_msgpack_get(o, key);
    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : dflt;
}

static void send_ok_to(client_t *c, const cn_wire_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_RETURN, m->hdr.src, cn__rt.id, m->hdr.cid};
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    if (cn_wire_pack(&sb, &h, &nil, 0) == 0)
        client_send(c, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/*
 * A client's CANCEL (protocol.md, Operator cancels): `actor` set cancels
 * that actor through its parent, 0 the whole tree; `call` set cancels the
 * call or context of that number made by the actor m->hdr.dst.
 */
static void operator_cancel(client_t *c, cn_wire_msg_t *m)
{
    const cn_wire_cancel_t *x = &m->u.cancel;
    char why[CN__REASON_MAX], err[CN__REASON_MAX];
    snprintf(why, sizeof(why), "cancelled by %s (pid %d): %.*s", c->name, (int)c->pid,
             x->reason.ptr ? (int)x->reason.len : 8, x->reason.ptr ? x->reason.ptr : "operator");
    uint32_t dst = m->hdr.dst, via = 0;
    int known = dst == cn__rt.id, rc = 0;
    char name[CN_ROUTE_NAME_MAX];
    snprintf(name, sizeof(name), "%s", cn__rt.name);
    cn__lock(&cn__rt.mu);
    const cn_route_t *r = cn_route_find(&cn__rt.routes, dst);
    if (r) {
        known = 1;
        via = r->parent;
        snprintf(name, sizeof(name), "%s", r->name);
    }
    cn__unlock(&cn__rt.mu);
    if (!known) {
        snprintf(err, sizeof(err), "no actor %u in this tree", dst);
        send_dead_to(c, m, err);
        return;
    }
    if (x->call)
        cn_log(CN_LOG_CANCEL, "operator: cancel call %llu of actor %u (%s): %s",
               (unsigned long long)x->call, dst, name, why);
    else
        cn_log(CN_LOG_CANCEL, "operator: cancel actor %u (%s)%s: %s", dst, name,
               dst == cn__rt.id ? ", the whole tree" : "", why);
    if (x->call) { /* the caller's own call or context */
        if (dst == cn__rt.id) {
            rc = cn__call_cancel_op(x->call, why);
        } else {
            cn_wire_hdr_t h = {CN_MSG_CANCEL, dst, cn__rt.id, 0};
            cn_wire_cancel_t b = {cn__wstr(why), 0, x->call};
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            if ((rc = cn_wire_pack_typed(&sb, &h, &b, 0)) == 0)
                rc = cn__send_frame(&h, sb.data, sb.size, err);
            msgpack_sbuffer_destroy(&sb);
        }
    } else if (dst == cn__rt.id) {
        cn__cancel_tree(why);
    } else if (via == cn__rt.id) {
        rc = cn__cancel_child_id(dst, why);
    } else { /* its parent cancels it */
        cn_wire_hdr_t h = {CN_MSG_CANCEL, via, cn__rt.id, 0};
        cn_wire_cancel_t b = {cn__wstr(why), dst, 0};
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if ((rc = cn_wire_pack_typed(&sb, &h, &b, 0)) == 0)
            rc = cn__send_frame(&h, sb.data, sb.size, err);
        msgpack_sbuffer_destroy(&sb);
    }
    if (rc == CN_ENOENT)
        snprintf(err, sizeof(err), "%s %llu is not open there", x->call ? "call" : "actor",
                 (unsigned long long)(x->call ? x->call : dst));
    else if (rc < 0 && rc != CN_EDEAD)
        snprintf(err, sizeof(err), "%s", cn_strerror(rc));
    if (rc < 0)
        send_dead_to(c, m, err);
    else
        send_ok_to(c, m);
}

static void on_client_msg(client_t *c, cn_wire_msg_t *m)
{
    if (!c->greeted) {
        if (m->hdr.type != CN_MSG_HELLO) {
            client_cut(c, "it did not start with HELLO");
            return;
        }
        if (m->u.hello.version != CN_PROTOCOL_VERSION) {
            char why[CN__REASON_MAX];
            snprintf(why, sizeof(why), "protocol version mismatch: client speaks %llu, the tree %d",
                     (unsigned long long)m->u.hello.version, CN_PROTOCOL_VERSION);
            send_dead_to(c, m, why);
            client_cut(c, why);
            return;
        }
        snprintf(c->name, sizeof(c->name), "%.*s", (int)m->u.hello.name.len, m->u.hello.name.ptr);
        c->greeted = 1;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        cn_wire_hdr_t h = {CN_MSG_HELLO, 0, cn__rt.id, 0};
        cn_wire_hello_t me = {CN_PROTOCOL_VERSION, cn__wstr(cn__rt.name), (uint64_t)getpid(),
                              (uint64_t)getuid()};
        if (cn_wire_pack_typed(&sb, &h, &me, 0) == 0)
            client_send(c, &sb);
        msgpack_sbuffer_destroy(&sb);
        cn_log(CN_LOG_DEBUG, "attach: client %u (%s, pid %d) attached", c->slot, c->name,
               (int)c->pid);
        return;
    }
    switch (m->hdr.type) {
    case CN_MSG_INSPECT: {
        uint64_t t = opt_u64(&m->body, "timeout_ms", SNAP_TIMEOUT_MS);
        if (t == 0 || t > SNAP_TIMEOUT_MAX_MS)
            t = SNAP_TIMEOUT_MS;
        const msgpack_object *st = cn_msgpack_get(&m->body, "stacks");
        tree_snapshot(c, m->hdr.cid, (uint32_t)t,
                      st && st->type == MSGPACK_OBJECT_BOOLEAN && st->via.boolean);
        break;
    }
    case CN_MSG_CANCEL:
        operator_cancel(c, m);
        break;
    case CN_MSG_SUBSCRIBE:
        subscribe(c, m);
        break;
    case CN_MSG_BREAK:
    case CN_MSG_CONSOLE_IN:
    case CN_MSG_LOCK_RELEASE: {
        char who[CN__NAME_MAX + 32], err[CN__REASON_MAX];
        snprintf(who, sizeof(who), "%s (pid %d)", c->name, (int)c->pid);
        if (cn__lock_client_msg(m, who, c, err) < 0)
            send_dead_to(c, m, err);
        else
            send_ok_to(c, m);
        break;
    }
    default:
        send_dead_to(c, m, "not something a client can ask for");
        break;
    }
}

static void on_client_poll(uv_poll_t *p, int status, int events)
{
    char *buf = cn__rt.read_buf;
    client_t *c = p->data;
    if (c->closing)
        return;
    if (status < 0) {
        client_cut(c, NULL);
        return;
    }
    if (events & UV_WRITABLE)
        client_flush(c);
    if (!(events & UV_READABLE) || c->closing)
        return;
    if (client_busy(c)) { /* its requests wait in its socket */
        client_rewatch(c);
        return;
    }
    /* Peeked, then taken as far as it was decoded: what follows the
     * request that made the client busy stays in its socket. */
    ssize_t n = recv(c->fd, buf, CN__READ_BUF, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        client_cut(c, NULL); /* it hung up */
        return;
    }
    c->heard_ms = now_ms();
    size_t off = 0;
    while (off < (size_t)n && !c->closing && !client_busy(c)) {
        cn_wire_msg_t *m;
        size_t used;
        int rc = cn_wire_decode(&c->dec, buf + off, (size_t)n - off, &used, &m);
        off += used;
        if (rc == 1) {
            on_client_msg(c, m);
            cn_wire_msg_free(m);
        } else if (rc < 0) {
            char why[CN__REASON_MAX];
            snprintf(why, sizeof(why), "bad frame: %s", cn_strerror(rc));
            client_cut(c, why);
        }
    }
    if (c->closing)
        return;
    for (size_t took = 0; took < off;) { /* what was decoded: peeked, so there */
        ssize_t k = recv(c->fd, buf, off - took, MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            client_cut(c, NULL);
            return;
        }
        took += (size_t)k;
    }
    client_rewatch(c); /* a snapshot it asked for may have made it busy */
    int partial = c->dec.len_have > 0 || c->dec.pend_have > 0;
    c->part_ms = partial ? (c->part_ms ? c->part_ms : c->heard_ms) : 0;
}

/* Whether c has sent bytes the root has not read (they wait while it is
 * busy). */
static int requests_wait(const client_t *c)
{
    int n = 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* Once a second: cut off clients that never greeted, or stalled mid-frame,
 * or trickle a frame in too slowly. A client in the middle of a frame is
 * judged by the frame rules, not by the HELLO deadline. */
static void on_tick(cn__clock_t *t)
{
    (void)t;
    uint64_t now = now_ms();
    for (unsigned i = 0; i < CLIENTS_MAX; i++) {
        client_t *c = at.clients[i];
        if (c == NULL)
            continue;
        char why[96];
        if (c->part_ms && now - c->heard_ms > at.stall_ms) {
            snprintf(why, sizeof(why), "half a frame, then nothing for %llu ms",
                     (unsigned long long)at.stall_ms);
            client_cut(c, why);
        } else if (c->part_ms && now - c->part_ms > 3 * at.stall_ms) {
            snprintf(why, sizeof(why), "a frame still incomplete after %llu ms",
                     3 * (unsigned long long)at.stall_ms);
            client_cut(c, why);
        } else if (!c->part_ms && !c->greeted && now - c->since_ms > at.hello_ms) {
            snprintf(why, sizeof(why), "no HELLO within %llu ms", (unsigned long long)at.hello_ms);
            client_cut(c, why);
        } else if (c->held_ms && c->stuck_ms && now - c->held_ms > at.stall_ms &&
                   now - c->stuck_ms > at.stall_ms && requests_wait(c)) {
            snprintf(why, sizeof(why),
                     "it sends requests but has read none of its answers for %llu ms "
                     "(%zu bytes wait)",
                     (unsigned long long)(now - c->stuck_ms), c->out.size - c->out_off);
            client_cut(c, why);
        }
    }
}

/* Takes a connected socket (it owns fd from here on): the new client, or
 * NULL if it was refused (fd closed). */
static client_t *admit(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        close(fd);
        return NULL;
    }
    if (cred.uid != getuid() && cred.uid != 0) {
        cn_log(CN_LOG_WARN, "attach: refused pid %d: uid %u is not this tree's (%u)",
               (int)cred.pid, (unsigned)cred.uid, (unsigned)getuid());
        close(fd);
        return NULL;
    }
    unsigned slot = 0;
    while (slot < CLIENTS_MAX && at.clients[slot])
        slot++;
    client_t *c = slot < CLIENTS_MAX ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL) {
        cn_log(CN_LOG_WARN, "attach: refused pid %d: %s", (int)cred.pid,
               slot < CLIENTS_MAX ? "out of memory" : "too many clients (64) attached");
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->slot = slot;
    c->uid = cred.uid;
    c->pid = cred.pid;
    c->since_ms = c->heard_ms = now_ms();
    cn_wire_decoder_init(&c->dec, CLIENT_FRAME_MAX);
    msgpack_sbuffer_init(&c->out);
    c->poll.data = c;
    if (uv_poll_init_socket(&cn__rt.loop, &c->poll, fd) < 0) {
        cn_wire_decoder_fini(&c->dec);
        msgpack_sbuffer_destroy(&c->out);
        close(fd);
        free(c);
        return NULL;
    }
    c->events = UV_READABLE;
    uv_poll_start(&c->poll, UV_READABLE, on_client_poll);
    at.clients[slot] = c;
    return c;
}

static void on_listen(uv_poll_t *p, int status, int events);

static void on_rested(uv_timer_t *t)
{
    (void)t;
    if (at.on)
        uv_poll_start(&at.poll, UV_READABLE, on_listen);
}

/*
 * accept4 failed with `err`, EMFILE or ENFILE: the connection waiting
 * cannot be taken, and the socket stays readable, so the loop would spin
 * on it. The spare descriptor kept for this moment takes it and closes it
 * (the client sees its connection close at once); without a spare, the
 * socket is not watched for a while. One log line a second at most.
 * Returns 1 if a connection was refused so (there may be more).
 */
static int refuse_no_fd(int err)
{
    int took = 0;
    pid_t pid = 0;
    if (at.spare >= 0) {
        close(at.spare);
        int fd = accept4(at.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            struct ucred cred;
            socklen_t len = sizeof(cred);
            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                pid = cred.pid;
            close(fd);
            took = 1;
        }
        at.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    at.nofd_n += (unsigned)took;
    uint64_t now = now_ms();
    if ((took || at.spare < 0) && (at.nofd_ms == 0 || now - at.nofd_ms >= 1000)) {
        struct rlimit rl;
        char lim[48] = "", who[64] = "cannot accept a client";
        if (err == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            snprintf(lim, sizeof(lim), " (RLIMIT_NOFILE %llu)", (unsigned long long)rl.rlim_cur);
        if (at.nofd_n && took)
            snprintf(who, sizeof(who), "refused %u client(s) (the last pid %d)", at.nofd_n,
                     (int)pid);
        else if (at.nofd_n)
            snprintf(who, sizeof(who), "refused %u client(s)", at.nofd_n);
        cn_log(CN_LOG_WARN, "attach: %s: this process is out of file descriptors: %s%s", who,
               strerror(err), lim);
        at.nofd_ms = now;
        at.nofd_n = 0;
    }
    if (at.spare < 0) {
        uv_poll_stop(&at.poll);
        uv_timer_start(&at.rest, on_rested, 200, 0);
        return 0;
    }
    return took;
}

static void on_listen(uv_poll_t *p, int status, int events)
{
    (void)p, (void)events;
    if (status < 0)
        return;
    for (;;) {
        int fd = accept4(at.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && refuse_no_fd(errno))
                continue;
            return;
        }
        admit(fd);
    }
}

/* ===========================================================================
 * Entry points
 */

void cn__inspect_on_msg(cn_wire_msg_t *m)
{
    if (m->hdr.type == CN_MSG_EVENT) {
        if (cn__rt.is_root)
            fan_out(NULL, m->frame, m->frame_len, m->hdr.cid);
    } else if (m->hdr.type == CN_MSG_SNAPSHOT) {
        if (cn__rt.is_root)
            on_snapshot(m);
    } else if (m->hdr.type == CN_MSG_INSPECT) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        size_t mark;
        cn_wire_hdr_t h = {CN_MSG_SNAPSHOT, m->hdr.src, cn__rt.id, m->hdr.cid};
        int rc = cn_wire_begin(&sb, &pk, &h, &mark);
        const msgpack_object *st = cn_msgpack_get(&m->body, "stacks");
        if (rc == 0) {
            cn__snapshot_pack(&pk, st && st->type == MSGPACK_OBJECT_BOOLEAN && st->via.boolean);
            rc = cn_wire_end(&sb, mark, 0, 0);
        }
        if (rc == 0)
            cn__send_frame(&h, sb.data, sb.size, NULL);
        else
            cn_log(CN_LOG_ERROR, "cannot encode this actor's snapshot: %s", cn_strerror(rc));
        msgpack_sbuffer_destroy(&sb);
    }
    cn_wire_msg_free(m);
}

int cn__attach_start(void)
{
    const char *off = getenv("CANOPY_ATTACH");
    if (off && strcmp(off, "0") == 0)
        return 0;
    const char *stall = getenv("CANOPY_ATTACH_STALL_MS");
    long ms = stall ? strtol(stall, NULL, 10) : 0;
    at.hello_ms = ms > 0 ? (uint64_t)ms : HELLO_MS;
    at.stall_ms = ms > 0 ? (uint64_t)ms : STALL_MS;
    char dir[sizeof(at.path)];
    int rc = socket_dir(dir, sizeof(dir));
    if (rc < 0)
        return rc;
    int n = snprintf(at.path, sizeof(at.path), "%s/%s.%d.sock", dir, cn__rt.name, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(at.path)) {
        cn_log(CN_LOG_WARN, "no attach socket: the path under %s is too long", dir);
        at.path[0] = '\0';
        return CN_ENAMETOOLONG;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, at.path, (size_t)n + 1);
    unlink(at.path); /* a stale one of a dead tree with our pid */
    at.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (at.fd < 0 || bind(at.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(at.path, 0600) < 0 || listen(at.fd, 128) < 0) {
        cn_log(CN_LOG_WARN, "no attach socket at %s: %s", at.path, strerror(errno));
        if (at.fd >= 0)
            close(at.fd);
        at.fd = -1;
        unlink(at.path);
        at.path[0] = '\0';
        return CN_EIO;
    }
    uv_poll_init_socket(&cn__rt.loop, &at.poll, at.fd);
    uv_poll_start(&at.poll, UV_READABLE, on_listen);
    at.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    uv_timer_init(&cn__rt.loop, &at.rest);
    uv_unref((uv_handle_t *)&at.rest);
    /* A clock, not a libuv timer: the root's broker waits untimed (clock.c).
     * Without one, stalled clients are not cut off; the rest works. */
    int crc = cn__clock_init(&at.tick, on_tick);
    if (crc < 0)
        cn_log(CN_LOG_WARN, "attach: no clock for the client checks (%s): a client that "
                            "stalls mid-frame will not be cut off", cn_strerror(crc));
    cn__clock_set(&at.tick, at.stall_ms < 1000 ? at.stall_ms / 2 + 1 : 1000);
    at.on = 1;
    cleanup_on_signals();
    return 0;
}

/* A fatal signal the program left at its default: remove the socket, then
 * die of the signal as before. Only async-signal-safe calls. */
void cn__attach_unlink_now(void)
{
    if (at.path[0] && !at.unlinked)
        unlink(at.path);
}

static void on_fatal(int sig)
{
    cn__attach_unlink_now();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void cleanup_on_signals(void)
{
    static const int sigs[] = {SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    sigset_t blocked;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !sigismember(&blocked, sigs[i])) {
            struct sigaction sa;
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = on_fatal;
            sa.sa_flags = SA_RESETHAND | SA_NODEFER;
            sigaction(sigs[i], &sa, NULL);
        }
    }
}

const char *cn_attach_path(void)
{
    return at.path[0] ? at.path : NULL;
}

void cn__attach_stop(void)
{
    if (at.path[0] && !at.unlinked)
        unlink(at.path); /* the path itself stays: cn_attach_path may read it */
    at.unlinked = 1;
    if (!at.on)
        return;
    /* The last events (a child's exit, the shutdown's log lines) go out
     * before the connections close, as far as a write that does not wait
     * takes them: a TUI otherwise shows a state the tree had already
     * left. */
    cn__events_flush();
    for (unsigned i = 0; i < CLIENTS_MAX; i++)
        if (at.clients[i] && !at.clients[i]->closing && at.clients[i]->subscribed)
            client_flush(at.clients[i]);
    at.on = 0;
    for (unsigned i = 0; i < CLIENTS_MAX; i++)
        if (at.clients[i])
            client_cut(at.clients[i], NULL);
    while (at.reqs) {
        at.reqs->c = NULL;
        req_finish(at.reqs);
    }
    uv_close((uv_handle_t *)&at.poll, NULL);
    uv_close((uv_handle_t *)&at.rest, NULL);
    cn__clock_close(&at.tick);
    if (at.spare >= 0)
        close(at.spare);
    at.spare = -1;
    close(at.fd);
    at.fd = -1;
}

/* ===========================================================================
 * Test and fuzz hooks: the client dispatch without the listening socket
 */

cn__client_t *cn__attach_client_open(int fd)
{
    return admit(fd);
}

int cn__attach_client_msg(cn__client_t *c, cn_wire_msg_t *m)
{
    if (c->closing)
        return -1;
    on_client_msg(c, m);
    return c->closing ? -1 : 0;
}

void cn__attach_client_close(cn__client_t *c)
{
    client_cut(c, NULL);
}
