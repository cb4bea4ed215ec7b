/*
 * root_harness.c: the in-process root the broker-side fuzz targets share
 * (root_harness.h says what it is and what it wraps).
 *
 * It only drives and watches: the runtime, the attach clients, the lock
 * and the REPL are the library's own code, run as the broker would run
 * them. Invariant: the loop turns only inside fz_settle, which reads every
 * peer right after each turn, so a peer's client pointer is never used
 * after the root has freed it (the root closes its end of the socket when
 * it frees a client, and we see that as end-of-file).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "canopy/client.h"
#include "debug/debug.h"
#include "root_harness.h"
#include "runtime/rt.h"

#define FRAME_MAX (1u << 20) /* attach.c's CLIENT_FRAME_MAX */
#define SETTLE_TURNS 1000    /* a loop that never goes quiet is a finding */

fz_stats_t fz_stats;

/* ===========================================================================
 * The wrappers
 */

int __wrap_kill(pid_t pid, int sig)
{
    if (pid == getpid() || pid == 0) {
        fz_stats.self_kills++;
        return 0;
    }
    return __real_kill(pid, sig);
}

void __wrap_cn__cancel_tree(const char *why)
{
    CHECK(why != NULL && strlen(why) < CN__REASON_MAX);
    fz_stats.tree_cancels++;
}

void __wrap_cn__shutdown_after_debug(const char *why)
{
    CHECK(why != NULL && strlen(why) < CN__REASON_MAX);
    fz_stats.shutdowns++;
}

/* ===========================================================================
 * The root
 */

void fz_root_init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    /* The real log code runs (ring, events, formatting) but writes to
     * nowhere; the fuzzer's terminal, if it has one, is not the console. */
    setenv("CANOPY_LOG_FILE", "/dev/null", 1);
    setenv("CANOPY_LOG_LEVEL", "trace", 1);
    setenv("CANOPY_CONSOLE", "0", 1);
    unsetenv("CANOPY_FD");
    unsetenv("CANOPY_DEBUG");
    unsetenv("CANOPY_TREE");
    static char *argv[] = {"fuzz-root", NULL};
    static const cn_config_t cfg = {.name = "fuzz"};
    CHECK(cn__rt_init_root(1, argv, &cfg) == 0);
}

/* ===========================================================================
 * Peers
 */

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    return cn_msgpack_get(map, key);
}

/* One reply from the root: it must be something the root may send a
 * client, and well formed. */
static void check_reply(fz_peer_t *p, const cn_wire_msg_t *m)
{
    const msgpack_object *v;
    switch (m->hdr.type) {
    case CN_MSG_HELLO:
        CHECK(m->u.hello.version == CN_PROTOCOL_VERSION);
        CHECK(m->hdr.src == cn__rt.id);
        break;
    case CN_MSG_RETURN:
    case CN_MSG_DEAD:
        break;
    case CN_MSG_SNAPSHOT:
        v = get(&m->body, "actors");
        CHECK(v != NULL && v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size >= 1);
        v = get(&m->body, "tree");
        CHECK(v != NULL && v->type == MSGPACK_OBJECT_STR);
        break;
    case CN_MSG_EVENT:
        v = get(&m->body, "kind");
        CHECK(v != NULL && v->type == MSGPACK_OBJECT_STR);
        if (v->via.str.size == 7 && memcmp(v->via.str.ptr, "console", 7) == 0)
            p->console_out++;
        p->events++;
        return;
    default:
        CHECK(!"a reply of a type the root never sends a client");
    }
    p->answers++;
    p->dead += m->hdr.type == CN_MSG_DEAD;
    p->last_cid = m->hdr.cid;
    p->last_type = m->hdr.type;
}

/* Reads what the root wrote to p; returns how many bytes. Sees the root
 * close its end: then p->c is gone. */
static size_t drain(fz_peer_t *p)
{
    static char buf[64 * 1024];
    size_t total = 0;
    while (p->fd >= 0) {
        ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNRESET);
            if (errno == ECONNRESET)
                p->c = NULL, p->gone = 1;
            break;
        }
        if (n == 0) {
            p->c = NULL; /* freed: its close callback closed the root's end */
            p->gone = 1;
            break;
        }
        total += (size_t)n;
        for (size_t off = 0; off < (size_t)n;) {
            size_t used;
            cn_wire_msg_t *m = NULL;
            int rc = cn_wire_decode(&p->dec, buf + off, (size_t)n - off, &used, &m);
            CHECK(rc >= 0); /* every reply is a frame that decodes */
            off += used;
            if (rc == 1) {
                check_reply(p, m);
                cn_wire_msg_free(m);
            }
        }
    }
    return total;
}

int fz_peer_open(fz_peer_t *p)
{
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    cn_wire_decoder_init(&p->dec, 0);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    p->fd = sv[0];
    p->c = cn__attach_client_open(sv[1]);
    if (p->c == NULL) {
        close(p->fd);
        p->fd = -1;
        cn_wire_decoder_fini(&p->dec);
        return -1;
    }
    return 0;
}

cn_wire_msg_t *fz_frame(msgpack_sbuffer *sb, const cn_wire_hdr_t *hdr, const void *body,
                        size_t len)
{
    /* The body goes in unchecked, so the frame may be anything a client
     * could send; only what decodes is a message. */
    msgpack_packer pk;
    size_t mark, start = sb->size;
    cn_wire_msg_t *m = NULL;
    CHECK(cn_wire_begin(sb, &pk, hdr, &mark) == 0);
    CHECK(cn_wire_end(sb, mark, msgpack_sbuffer_write(sb, body, len), UINT32_MAX) == 0);
    if (cn_wire_decode_frame(sb->data + start, sb->size - start, FRAME_MAX, &m) < 0)
        m = NULL;
    return m;
}

int fz_peer_msg(fz_peer_t *p, cn_wire_msg_t *m)
{
    if (p->c == NULL)
        return -1;
    if (cn__attach_client_msg(p->c, m) < 0) {
        p->c = NULL; /* closing: freed on the loop's next turn */
        return -1;
    }
    return 0;
}

void fz_peer_write(fz_peer_t *p, const void *buf, size_t len)
{
    const char *b = buf;
    while (len > 0 && p->fd >= 0) {
        ssize_t n = send(p->fd, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            b += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fz_settle(&p, 1); /* the root reads, and we read its answers */
            if (p->c == NULL)
                return;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return; /* the root hung up on it */
        }
    }
}

static int send_typed(fz_peer_t *p, const cn_wire_hdr_t *h, const void *body)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_msg_t *m = NULL;
    CHECK(cn_wire_pack_typed(&sb, h, body, 0) == 0);
    CHECK(cn_wire_decode_frame(sb.data, sb.size, FRAME_MAX, &m) == 0);
    msgpack_sbuffer_destroy(&sb);
    int rc = fz_peer_msg(p, m);
    cn_wire_msg_free(m);
    return rc;
}

int fz_peer_hello(fz_peer_t *p)
{
    cn_wire_hdr_t h = {CN_MSG_HELLO, CN_ROOT_ID, 0, 0};
    cn_wire_hello_t b = {CN_PROTOCOL_VERSION, {"fuzz-client", 11}, (uint64_t)getpid(),
                         (uint64_t)getuid()};
    return send_typed(p, &h, &b);
}

/* A map of string keys to values, as msgpack objects. */
static int send_map(fz_peer_t *p, uint32_t type, const msgpack_object_kv *kv, uint32_t n)
{
    cn_wire_hdr_t h = {type, CN_ROOT_ID, 0, 0};
    msgpack_object body = {.type = MSGPACK_OBJECT_MAP};
    body.via.map.size = n;
    body.via.map.ptr = (msgpack_object_kv *)kv;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_msg_t *m = NULL;
    CHECK(cn_wire_pack(&sb, &h, &body, 0) == 0);
    CHECK(cn_wire_decode_frame(sb.data, sb.size, FRAME_MAX, &m) == 0);
    msgpack_sbuffer_destroy(&sb);
    int rc = fz_peer_msg(p, m);
    cn_wire_msg_free(m);
    return rc;
}

static msgpack_object str_obj(const char *s)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

static msgpack_object bool_obj(int b)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BOOLEAN};
    o.via.boolean = b != 0;
    return o;
}

int fz_peer_subscribe(fz_peer_t *p, int events, int console)
{
    msgpack_object_kv kv[2] = {{str_obj("events"), bool_obj(events)},
                               {str_obj("console"), bool_obj(console)}};
    return send_map(p, CN_MSG_SUBSCRIBE, kv, 2);
}

int fz_peer_lock_op(fz_peer_t *p, const char *op)
{
    msgpack_object_kv kv[1] = {{str_obj("op"), str_obj(op)}};
    return send_map(p, CN_MSG_LOCK_RELEASE, kv, 1);
}

void fz_settle(fz_peer_t **peers, size_t n)
{
    for (int turn = 0;; turn++) {
        CHECK(turn < SETTLE_TURNS);
        uv_run(&cn__rt.loop, UV_RUN_NOWAIT);
        size_t got = 0;
        for (size_t i = 0; i < n; i++)
            if (peers[i])
                got += drain(peers[i]);
        if (got == 0)
            return;
    }
}

void fz_peer_close(fz_peer_t *p)
{
    if (p->fd < 0)
        return;
    if (p->c)
        cn__attach_client_close(p->c);
    p->c = NULL;
    /* Freed once its end reads as end-of-file: the loop's next turn. */
    fz_settle(&p, 1);
    CHECK(p->gone);
    close(p->fd);
    p->fd = -1;
    cn_wire_decoder_fini(&p->dec);
}

/* ===========================================================================
 * Between inputs
 */

/* Whether the console lock is back to empty: no holder, nobody waiting. */
static int lock_empty(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cn__lock_pack(&pk);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    size_t off = 0;
    CHECK(msgpack_unpack(sb.data, sb.size, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *holder = get(&o, "holder"), *waiters = get(&o, "waiters");
    CHECK(holder != NULL && waiters != NULL && waiters->type == MSGPACK_OBJECT_ARRAY);
    int empty = holder->type == MSGPACK_OBJECT_NIL && waiters->via.array.size == 0;
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
    return empty;
}

void fz_reset(void)
{
    if (cn__debug_active() || !lock_empty()) {
        /* A console of our own: the root grants the lock to its waiting
         * session, and force-releasing ends it; queued ones follow. */
        fz_peer_t j;
        CHECK(fz_peer_open(&j) == 0);
        fz_peer_t *pj = &j;
        CHECK(fz_peer_hello(&j) == 0);
        CHECK(fz_peer_subscribe(&j, 0, 1) == 0);
        fz_settle(&pj, 1);
        for (int i = 0; i < 256 && (cn__debug_active() || !lock_empty()); i++) {
            CHECK(fz_peer_lock_op(&j, "release") == 0);
            fz_settle(&pj, 1);
        }
        CHECK(!cn__debug_active());
        fz_peer_close(&j);
    }
    CHECK(lock_empty());
    CHECK(cn__attach_consoles() == 0);
    CHECK(atomic_load(&cn__rt.events_on) == 0);
    CHECK(!cn__frozen());
    atomic_store(&cn__rt.log_level, CN_LOG_TRACE);
}
