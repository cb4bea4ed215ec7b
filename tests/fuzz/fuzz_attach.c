/*
 * fuzz_attach.c: libFuzzer target for the root's attach-client dispatch
 * (src/inspect/attach.c: on_client_msg and what it calls: the HELLO
 * check, INSPECT's tree snapshot, CANCEL's operator_cancel, SUBSCRIBE,
 * and BREAK, CONSOLE_IN and LOCK_RELEASE through the console lock, which
 * reach the root's own debugger and its REPL).
 *
 * The process is a root without a tree (root_harness.h): two clients on
 * socketpairs, messages handed to the handler as decoded messages (or,
 * with flag 0x02, written to the socket for the root to read and decode
 * itself), and every reply read back and checked to be a well-formed
 * frame of a type the root sends clients. kill, cn__cancel_tree and
 * cn__shutdown_after_debug are wrapped at link time; root_harness.h says
 * why and how.
 *
 * Input: byte 0 is flags; then records until the input ends:
 *   flags  0x01 no HELLO is sent for a client first (else a valid one is)
 *          0x02 frames go through the socket, not straight to the handler
 *          0x04 through the socket, the last frame is cut in half
 *   record [tb] [dst] [cid] [len lo] [len hi] [len bytes of body]
 *          tb bits 0-4: the message type (any: 0 and 27-31 are unknown)
 *             bit 5: the client (0 or 1), opened at its first record
 *             bit 6: that client hangs up after this record
 *             bit 7: the loop does not turn after this record
 *          the body is msgpack, copied into the frame unchecked; a frame
 *          that does not decode is skipped (or, through the socket, sent:
 *          the root cuts the client off).
 *
 * Besides ASan and UBSan, it checks (straight to the handler) that a
 * greeted client gets exactly one answer (RETURN, DEAD, SNAPSHOT) per
 * message, with that message's cid, and a HELLO gets HELLO or DEAD; and
 * after every input, that the root has no session, lock holder, waiter,
 * console, subscriber or frozen thread left (fz_reset).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "root_harness.h"

#define NPEERS 2

typedef struct {
    fz_peer_t p;
    int open;
    int greeted;      /* it has had a HELLO accepted */
    int unchecked;    /* its answers are not counted any more (cut, or the socket) */
    unsigned expect;  /* answers it should have had */
    uint64_t cid;     /* the last message's */
    int greeting;     /* the last message was the greeting: HELLO answers it */
} peer_t;

static void open_peer(peer_t *x, int hello)
{
    memset(x, 0, sizeof(*x));
    if (fz_peer_open(&x->p) < 0)
        return;
    x->open = 1;
    if (hello) {
        CHECK(fz_peer_hello(&x->p) == 0);
        x->greeted = 1;
        x->expect = 1;
        x->greeting = 1;
    }
}

static void close_peer(peer_t *x)
{
    if (x->open)
        fz_peer_close(&x->p);
    x->open = 0;
}

/* The answers so far must be what the messages so far asked for. */
static void check_answers(peer_t *x)
{
    if (!x->open || x->unchecked || x->p.c == NULL)
        return;
    CHECK(x->p.answers == x->expect);
    if (x->expect > 0 && !x->greeting)
        CHECK(x->p.last_cid == x->cid);
    if (x->expect > 0 && x->greeting)
        CHECK(x->p.last_type == CN_MSG_HELLO);
}

static void settle(peer_t *peers)
{
    fz_peer_t *pp[NPEERS];
    for (int i = 0; i < NPEERS; i++)
        pp[i] = peers[i].open ? &peers[i].p : NULL;
    fz_settle(pp, NPEERS);
    for (int i = 0; i < NPEERS; i++)
        check_answers(&peers[i]);
}

/* One message straight to the handler. */
static void hand(peer_t *x, cn_wire_msg_t *m)
{
    uint32_t type = m->hdr.type;
    int greeting = !x->greeted;
    if (fz_peer_msg(&x->p, m) < 0) {
        x->unchecked = 1; /* cut off: a DEAD may or may not have gone first */
        return;
    }
    if (greeting) {
        /* Still here after a first message: it was a HELLO, accepted. */
        CHECK(type == CN_MSG_HELLO);
        x->greeted = 1;
    }
    x->expect++;
    x->cid = m->hdr.cid;
    x->greeting = greeting;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_root_init();
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    int hello = !(flags & 0x01), via_socket = (flags & 0x06) != 0;
    peer_t peers[NPEERS];
    memset(peers, 0, sizeof(peers));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);

    size_t pos = 1;
    while (pos + 5 <= size) {
        uint8_t tb = data[pos], dst = data[pos + 1], cid = data[pos + 2];
        size_t len = (size_t)data[pos + 3] | (size_t)data[pos + 4] << 8;
        pos += 5;
        if (len > size - pos)
            len = size - pos;
        const uint8_t *body = data + pos;
        pos += len;
        int last = pos + 5 > size;

        peer_t *x = &peers[(tb >> 5) & 1];
        if (!x->open)
            open_peer(x, hello);
        if (!x->open)
            continue;
        cn_wire_hdr_t h = {tb & 0x1fu, dst, 0, cid};
        sb.size = 0;
        cn_wire_msg_t *m = fz_frame(&sb, &h, body, len);
        if (via_socket) {
            x->unchecked = 1;
            size_t n = sb.size;
            if (last && (flags & 0x04))
                n = n / 2; /* half a frame, then nothing: the root waits for the rest */
            fz_peer_write(&x->p, sb.data, n);
        } else if (m) {
            hand(x, m);
        }
        cn_wire_msg_free(m);
        if (!(tb & 0x80))
            settle(peers);
        if (tb & 0x40) {
            settle(peers);
            close_peer(x);
        }
    }
    settle(peers);
    for (int i = 0; i < NPEERS; i++)
        close_peer(&peers[i]);
    msgpack_sbuffer_destroy(&sb);
    fz_reset();
    return 0;
}
