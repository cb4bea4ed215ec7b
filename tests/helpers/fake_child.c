/*
 * fake_child.c: a misbehaving child for test_runtime. It speaks the wire
 * protocol by hand on the fd cn_spawn gave it, instead of running cn_run,
 * so it can do what a real actor never would. argv[1] picks the act:
 *   badversion  greet with protocol version 99; print the answer
 *   spoof [SRC...]  greet properly, then call the parent's "record" once
 *               with each forged src (default 9999) and once honestly;
 *               wait for the honest reply
 *   squat ID    greet properly, then announce (ADD_ROUTE) a child with id ID
 *               that no range granted to it holds, as if to take the calls
 *               of whichever actor gets that id later
 *   garbage     greet properly, then send bytes that are not a frame
 *   stubborn    greet properly, then ignore SHUTDOWN, SIGTERM and EOF
 *   flood       greet properly; start the first context it is asked to
 *               open, send 1000 YIELDs at once whatever its credit, return
 *   forgetful   greet properly; start every context it is asked to open
 *               (STARTED, then CREDIT), then forget it: its snapshots list
 *               no contexts (for the orphan-stream lint)
 *   events      greet properly, then send the root an EVENT of kind
 *               "forged" claiming src 9999 and one of kind "honest" from
 *               itself, both in one write (the root's raw event path),
 *               then a batch of a context's events that is mostly
 *               malformed: a number, an empty array, an array of the
 *               wrong types, and one good event of kind "batched", with
 *               a header that claims 2^40 events
 *   hijack      greet properly; answer the CMD "arm", noting its cid, and
 *               the CMD "fire", first sending its caller, from itself, a
 *               RETURN "hijacked" for the cid after arm's: the answer to
 *               whatever call the caller made next, to another actor
 *   crossed     greet properly; never answer a CMD, but send its caller a
 *               DEAD for the same cid, as if the caller's RETURN for some
 *               call it serves (in another caller's numbering, where the
 *               same cid is another call) had found that caller gone; then
 *               report the CANCEL that comes for the unanswered call
 * It prints what it saw on stdout, which reaches the root as log lines.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire/wire.h"

static int fd = 3;
static uint32_t self, parent;

static void send_buf(msgpack_sbuffer *sb)
{
    if (write(fd, sb->data, sb->size) != (ssize_t)sb->size)
        exit(3);
    sb->size = 0;
}

/* Reads until one message arrives; NULL on EOF or error. */
static cn_wire_msg_t *recv_msg(cn_wire_decoder_t *d)
{
    static char buf[65536];
    static size_t have, off;
    for (;;) {
        while (off < have) {
            cn_wire_msg_t *m;
            size_t used;
            int rc = cn_wire_decode(d, buf + off, have - off, &used, &m);
            off += used;
            if (rc == 1)
                return m;
            if (rc < 0)
                return NULL;
        }
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return NULL;
        have = (size_t)n, off = 0;
    }
}

/* Reads and drops messages until SHUTDOWN or EOF. */
static void wait_shutdown(cn_wire_decoder_t *d)
{
    cn_wire_msg_t *m;
    while ((m = recv_msg(d)) != NULL) {
        int stop = m->hdr.type == CN_MSG_SHUTDOWN;
        cn_wire_msg_free(m);
        if (stop)
            break;
    }
}

static void hello(msgpack_sbuffer *sb, uint64_t version)
{
    cn_wire_hdr_t h = {CN_MSG_HELLO, parent, self, 0};
    cn_wire_hello_t b = {version, {"fake", 4}, (uint64_t)getpid(), (uint64_t)getuid()};
    cn_wire_pack_typed(sb, &h, &b, 0);
    send_buf(sb);
}

/* Starts an EVENT frame for the root from `src` with header cid `cid` at
 * the end of sb; its body goes to *pk, then event_end. */
static size_t event_begin(msgpack_sbuffer *sb, msgpack_packer *pk, uint32_t src, uint64_t cid)
{
    cn_wire_hdr_t h = {CN_MSG_EVENT, 0, src, cid};
    size_t mark;
    if (cn_wire_begin(sb, pk, &h, &mark) < 0)
        exit(3);
    return mark;
}

static void event_end(msgpack_sbuffer *sb, size_t mark)
{
    if (cn_wire_end(sb, mark, 0, 0) < 0)
        exit(3);
}

/* Appends an EVENT {kind: kind} for the root from `src` to sb. */
static void add_event(msgpack_sbuffer *sb, uint32_t src, const char *kind)
{
    msgpack_packer pk;
    size_t mark = event_begin(sb, &pk, src, 0);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "kind", 4);
    msgpack_pack_str_with_body(&pk, kind, strlen(kind));
    event_end(sb, mark);
}

/* Appends the malformed batch described at the top to sb. */
static void add_bad_batch(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    size_t mark = event_begin(sb, &pk, self, (1ull << 41) | 1);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "actor", 5);
    msgpack_pack_uint32(&pk, self);
    msgpack_pack_str_with_body(&pk, "path", 4);
    msgpack_pack_int(&pk, 7); /* not a string */
    msgpack_pack_str_with_body(&pk, "events", 6);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 42);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "t", 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_str_with_body(&pk, "batched", 7);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 2);
    msgpack_pack_uint32(&pk, 3);
    msgpack_pack_str_with_body(&pk, "fn", 2);
    msgpack_pack_str_with_body(&pk, "detail", 6);
    event_end(sb, mark);
}

static void call_record(msgpack_sbuffer *sb, uint32_t src, uint64_t cid)
{
    cn_wire_hdr_t h = {CN_MSG_CMD, parent, src, cid};
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    cn_wire_cmd_t c = {{"record", 6}, nil, 0};
    cn_wire_pack_typed(sb, &h, &c, 0);
    send_buf(sb);
}

int main(int argc, char **argv)
{
    const char *id = getenv("CANOPY_ID"), *parent_id = getenv("CANOPY_PARENT_ID");
    if (argc < 2 || id == NULL || parent_id == NULL)
        return 2;
    self = (uint32_t)strtoul(id, NULL, 10);
    parent = (uint32_t)strtoul(parent_id, NULL, 10);
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line reaches the root at once */
    static msgpack_sbuffer sb;        /* static: still reachable at exit */
    msgpack_sbuffer_init(&sb);
    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    const char *act = argv[1];
    int status = 2;

    hello(&sb, strcmp(act, "badversion") == 0 ? 99 : CN_PROTOCOL_VERSION);
    cn_wire_msg_t *m = recv_msg(&d);
    if (m == NULL) {
        printf("fake_child: no answer to HELLO\n");
        return 1;
    }
    if (strcmp(act, "badversion") == 0) {
        if (m->hdr.type == CN_MSG_ERROR)
            printf("fake_child: refused with code %lld: %.*s\n", (long long)m->u.error.code,
                   (int)m->u.error.message.len, m->u.error.message.ptr);
        else
            printf("fake_child: expected ERROR, got %s\n", cn_wire_type_name(m->hdr.type));
        cn_wire_msg_free(m);
        status = 0;
        goto out;
    }
    if (m->hdr.type != CN_MSG_HELLO) {
        cn_wire_msg_free(m);
        status = 1;
        goto out;
    }
    cn_wire_msg_free(m);

    if (strcmp(act, "spoof") == 0) {
        /* Forged: none of these srcs is behind this stream. */
        for (int i = 2; i < argc || i == 2; i++)
            call_record(&sb, i < argc ? (uint32_t)strtoul(argv[i], NULL, 10) : 9999,
                        (uint64_t)i + 8);
        call_record(&sb, self, 2);
        while ((m = recv_msg(&d)) != NULL) {
            if (m->hdr.cid == 2) {
                printf("fake_child: honest call answered with %s\n",
                       cn_wire_type_name(m->hdr.type));
                fflush(stdout);
                break;
            }
            cn_wire_msg_free(m);
        }
        cn_wire_msg_free(m);
        wait_shutdown(&d);
        status = 0;
        goto out;
    }
    if (strcmp(act, "events") == 0) {
        add_event(&sb, 9999, "forged");
        add_event(&sb, self, "honest");
        add_bad_batch(&sb);
        send_buf(&sb);
        wait_shutdown(&d);
        status = 0;
        goto out;
    }
    if (strcmp(act, "squat") == 0 && argc > 2) {
        cn_wire_hdr_t h = {CN_MSG_ADD_ROUTE, 0, self, 0}; /* dst 0: routes go up */
        cn_wire_add_route_t a = {strtoull(argv[2], NULL, 10), self, {"squat", 5}, 0};
        cn_wire_pack_typed(&sb, &h, &a, 0);
        send_buf(&sb);
        printf("fake_child: announced actor %s\n", argv[2]);
        wait_shutdown(&d);
        status = 0;
        goto out;
    }
    if (strcmp(act, "stubborn") == 0) {
        signal(SIGTERM, SIG_IGN);
        while ((m = recv_msg(&d)) != NULL)
            cn_wire_msg_free(m); /* SHUTDOWN included */
        for (;;)
            pause(); /* only SIGKILL ends this */
    }
    if (strcmp(act, "flood") == 0) {
        while ((m = recv_msg(&d)) != NULL && m->hdr.type != CN_MSG_CMD)
            cn_wire_msg_free(m);
        if (m == NULL)
            return 1;
        cn_wire_hdr_t h = {CN_MSG_STARTED, m->hdr.src, self, m->hdr.cid};
        msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
        cn_wire_pack(&sb, &h, &nil, 0);
        send_buf(&sb);
        /* Wait for the opener's CREDIT, then ignore it. */
        uint64_t cid = m->hdr.cid;
        cn_wire_msg_free(m);
        while ((m = recv_msg(&d)) != NULL && m->hdr.type != CN_MSG_CREDIT)
            cn_wire_msg_free(m);
        cn_wire_msg_free(m);
        h.type = CN_MSG_YIELD;
        h.cid = cid | (1ull << 63);
        for (uint64_t i = 0; i < 1000; i++) {
            msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
            v.via.u64 = i;
            cn_wire_pack(&sb, &h, &v, 0);
        }
        send_buf(&sb);
        h.type = CN_MSG_RETURN;
        h.cid = cid;
        cn_wire_pack(&sb, &h, &nil, 0);
        send_buf(&sb);
        wait_shutdown(&d);
        status = 0;
    }
    if (strcmp(act, "forgetful") == 0) {
        while ((m = recv_msg(&d)) != NULL) {
            cn_wire_hdr_t h = {0, m->hdr.src, self, m->hdr.cid};
            msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
            if (m->hdr.type == CN_MSG_CMD) {
                h.type = CN_MSG_STARTED;
                cn_wire_pack(&sb, &h, &nil, 0);
                h.type = CN_MSG_CREDIT;
                h.cid |= 1ull << 63; /* sent by the callee */
                cn_wire_credit_t c = {64};
                cn_wire_pack_typed(&sb, &h, &c, 0);
                send_buf(&sb);
            } else if (m->hdr.type == CN_MSG_INSPECT) {
                h.type = CN_MSG_SNAPSHOT;
                msgpack_packer pk;
                size_t mark;
                cn_wire_begin(&sb, &pk, &h, &mark);
                msgpack_pack_map(&pk, 7);
                msgpack_pack_str_with_body(&pk, "id", 2);
                msgpack_pack_uint32(&pk, self);
                msgpack_pack_str_with_body(&pk, "name", 4);
                msgpack_pack_str_with_body(&pk, "forgetful", 9);
                msgpack_pack_str_with_body(&pk, "parent", 6);
                msgpack_pack_uint32(&pk, parent);
                msgpack_pack_str_with_body(&pk, "pid", 3);
                msgpack_pack_int(&pk, getpid());
                msgpack_pack_str_with_body(&pk, "state", 5);
                msgpack_pack_str_with_body(&pk, "running", 7);
                msgpack_pack_str_with_body(&pk, "contexts", 8);
                msgpack_pack_array(&pk, 0);
                /* A table whose columns another version might send: in
                 * another order, one unknown, some missing. */
                msgpack_pack_str_with_body(&pk, "threads", 7);
                msgpack_pack_map(&pk, 2);
                msgpack_pack_str_with_body(&pk, "cols", 4);
                msgpack_pack_array(&pk, 4);
                msgpack_pack_str_with_body(&pk, "doing", 5);
                msgpack_pack_str_with_body(&pk, "later", 5);
                msgpack_pack_str_with_body(&pk, "tid", 3);
                msgpack_pack_str_with_body(&pk, "kind", 4);
                msgpack_pack_str_with_body(&pk, "rows", 4);
                msgpack_pack_array(&pk, 1);
                msgpack_pack_array(&pk, 4);
                msgpack_pack_str_with_body(&pk, "running", 7);
                msgpack_pack_nil(&pk);
                msgpack_pack_int(&pk, 4242);
                msgpack_pack_str_with_body(&pk, "user", 4);
                cn_wire_end(&sb, mark, 0, 0);
                send_buf(&sb);
            }
            int stop = m->hdr.type == CN_MSG_SHUTDOWN;
            cn_wire_msg_free(m);
            if (stop)
                break;
        }
        status = 0;
    }
    if (strcmp(act, "hijack") == 0) {
        uint64_t armed = 0;
        while ((m = recv_msg(&d)) != NULL) {
            int stop = m->hdr.type == CN_MSG_SHUTDOWN;
            if (m->hdr.type == CN_MSG_CMD) {
                cn_wire_hdr_t h = {CN_MSG_RETURN, m->hdr.src, self, armed + 1};
                const cn_wire_str_t *fn = &m->u.cmd.fn;
                if (fn->len == 4 && memcmp(fn->ptr, "fire", 4) == 0) {
                    msgpack_object v = {.type = MSGPACK_OBJECT_STR};
                    v.via.str.ptr = "hijacked";
                    v.via.str.size = 8;
                    cn_wire_pack(&sb, &h, &v, 0);
                    printf("fake_child: forged a RETURN for call %llu\n",
                           (unsigned long long)h.cid);
                } else {
                    armed = m->hdr.cid;
                }
                msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
                h.cid = m->hdr.cid;
                cn_wire_pack(&sb, &h, &nil, 0);
                send_buf(&sb);
            }
            cn_wire_msg_free(m);
            if (stop)
                break;
        }
        status = 0;
    }
    if (strcmp(act, "crossed") == 0) {
        while ((m = recv_msg(&d)) != NULL) {
            int stop = m->hdr.type == CN_MSG_SHUTDOWN;
            if (m->hdr.type == CN_MSG_CMD) {
                cn_wire_hdr_t h = {CN_MSG_DEAD, m->hdr.src, self, m->hdr.cid};
                cn_wire_dead_t dead = {{"its caller is gone", 18}, CN_MSG_RETURN, 9999};
                cn_wire_pack_typed(&sb, &h, &dead, 0);
                send_buf(&sb);
                printf("fake_child: crossed: sent DEAD for call %llu of actor %u\n",
                       (unsigned long long)m->hdr.cid, m->hdr.src);
            } else if (m->hdr.type == CN_MSG_CANCEL) {
                printf("fake_child: crossed: CANCEL for call %llu of actor %u\n",
                       (unsigned long long)m->hdr.cid, m->hdr.src);
            }
            cn_wire_msg_free(m);
            if (stop)
                break;
        }
        status = 0;
    }
    if (strcmp(act, "garbage") == 0) {
        static const char junk[] = {0, 0, 0, 3, (char)0xc1, (char)0xc1, (char)0xc1};
        if (write(fd, junk, sizeof(junk)) < 0)
            return 3;
        m = recv_msg(&d); /* EOF when the parent closes us */
        printf("fake_child: after garbage the parent %s\n", m ? "kept talking" : "closed");
        cn_wire_msg_free(m);
        status = 0;
    }
out:
    cn_wire_decoder_fini(&d);
    msgpack_sbuffer_destroy(&sb);
    return status;
}
