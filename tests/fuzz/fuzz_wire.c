/*
 * fuzz_wire.c: libFuzzer target for the frame decoder.
 *
 * Input: byte 0 picks how the rest is cut into reads and which frame limit
 * applies; the rest is the byte stream. Besides "no crash, no leak, no out
 * of bounds read" (ASan/UBSan), it checks two properties on every message
 * that decodes:
 *   - re-encoding it gives a frame that decodes, and re-encoding that gives
 *     the same bytes (the codec is stable after one pass);
 *   - a typed body re-packed from its decoded struct decodes again with the
 *     same envelope.
 * And the whole-frame decoder must agree with the incremental one on a
 * stream that is exactly one frame, and cn_wire_peek with the body
 * decoder on the stream taken as one body (peek may pass a body that
 * decoding refuses only for a typed body's fields), and on a body that
 * peek passed, msgpack-c must read exactly one object and
 * cn_wire_decode_peeked (which skips the scan) must give what the body
 * decoder gives, with or without a memo of the envelope. A frame packed with an envelope packed once
 * (cn_wire_pack_env) must be the bytes cn_wire_pack gives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"
#include "check.h"

/* Whether a and b are the same msgpack, byte for byte once packed.
 * Not msgpack_object_equal: it compares floats with ==, and a NaN in a
 * body (any bytes may be one) is not == to itself. */
static int same_object(msgpack_object a, msgpack_object b)
{
    msgpack_sbuffer x, y;
    msgpack_sbuffer_init(&x);
    msgpack_sbuffer_init(&y);
    msgpack_packer px, py;
    msgpack_packer_init(&px, &x, msgpack_sbuffer_write);
    msgpack_packer_init(&py, &y, msgpack_sbuffer_write);
    int same = msgpack_pack_object(&px, a) == 0 && msgpack_pack_object(&py, b) == 0 &&
               x.size == y.size && memcmp(x.data, y.data, x.size) == 0;
    msgpack_sbuffer_destroy(&x);
    msgpack_sbuffer_destroy(&y);
    return same;
}

static void check_message(const cn_wire_msg_t *m)
{
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    CHECK(cn_wire_pack(&a, &m->hdr, &m->body, UINT32_MAX) == 0);
    cn_wire_msg_t *m2 = NULL;
    CHECK(cn_wire_decode_frame(a.data, a.size, UINT32_MAX, &m2) == 0);
    CHECK(memcmp(&m2->hdr, &m->hdr, sizeof(m->hdr)) == 0);
    CHECK(cn_wire_pack(&b, &m2->hdr, &m2->body, UINT32_MAX) == 0);
    CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
    cn_wire_msg_free(m2);

    cn_wire_env_t env = {0}; /* an envelope packed once: the same bytes */
    b.size = 0;
    CHECK(cn_wire_env_init(&env, &m->hdr) == 0);
    CHECK(cn_wire_pack_env(&b, &env, &m->body, UINT32_MAX) == 0);
    CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);

    size_t n;
    if (cn_wire_fields(m->hdr.type, &n) != NULL) {
        a.size = 0;
        CHECK(cn_wire_pack_typed(&a, &m->hdr, &m->u, UINT32_MAX) == 0);
        CHECK(cn_wire_decode_frame(a.data, a.size, UINT32_MAX, &m2) == 0);
        CHECK(memcmp(&m2->hdr, &m->hdr, sizeof(m->hdr)) == 0);
        cn_wire_msg_free(m2);
    }
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++, size--;
    size_t max_frame = (mode & 0x80) ? 64 : 0; /* a tiny limit, or the default */
    size_t chunk = (mode & 0x7f) ? (mode & 0x7f) : SIZE_MAX;

    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, max_frame);
    size_t pos = 0, frames = 0;
    int last = 0;
    while (pos < size) {
        size_t len = size - pos < chunk ? size - pos : chunk, used;
        cn_wire_msg_t *m = NULL;
        last = cn_wire_decode(&d, data + pos, len, &used, &m);
        CHECK(used <= len);
        if (last < 0) {
            CHECK(m == NULL);
            CHECK(cn_wire_decode(&d, data + pos, len, &used, &m) == last && used == 0);
            break;
        }
        if (last == 1) {
            CHECK(m != NULL && m->frame_len >= 5);
            check_message(m);
            cn_wire_msg_free(m);
            frames++;
        } else {
            CHECK(used == len);
        }
        pos += used;
    }
    CHECK(d.frames == frames);
    cn_wire_decoder_fini(&d);

    /* On exactly one frame, both decoders give the same verdict. */
    if (size >= CN_WIRE_LEN_SIZE) {
        size_t body =
            ((size_t)data[0] << 24) | ((size_t)data[1] << 16) | ((size_t)data[2] << 8) | data[3];
        if (body == size - CN_WIRE_LEN_SIZE) {
            cn_wire_msg_t *m = NULL;
            int rc = cn_wire_decode_frame(data, size, max_frame, &m);
            CHECK(rc == (last == 1 ? 0 : last));
            cn_wire_msg_free(m);
        }
    }
    if (size > 0) {
        cn_wire_hdr_t h;
        cn_wire_msg_t *m = NULL;
        int peek = cn_wire_peek(data, size, &h);
        int rc = cn_wire_decode_body(data, size, &m);
        size_t off, plen;
        cn_wire_hdr_t h2;
        CHECK(cn_wire_peek_payload(data, size, NULL, &h2, &off, &plen) == peek);
        /* through a memo: the second peek compares, and agrees */
        cn_wire_memo_t memo = {0};
        size_t off2, plen2;
        for (int k = 0; k < 2; k++) {
            CHECK(cn_wire_peek_payload(data, size, &memo, &h2, &off2, &plen2) == peek);
            CHECK(peek < 0 || (off2 == off && plen2 == plen));
        }
        if (rc == 0 && plen > 0) { /* the payload's bytes are the body */
            msgpack_zone z;
            msgpack_zone_init(&z, 256);
            msgpack_object o;
            size_t used = 0;
            CHECK(msgpack_unpack((const char *)data + off, plen, &used, &z, &o) ==
                      MSGPACK_UNPACK_SUCCESS &&
                  used == plen && same_object(o, m->body));
            msgpack_zone_destroy(&z);
        }
        if (peek == 0) { /* what peek passes is exactly one msgpack object */
            msgpack_zone z;
            msgpack_zone_init(&z, 256);
            msgpack_object o;
            size_t used = 0;
            CHECK(msgpack_unpack((const char *)data, size, &used, &z, &o) ==
                      MSGPACK_UNPACK_SUCCESS &&
                  used == size);
            msgpack_zone_destroy(&z);
        }
        if (peek == 0) { /* checked: the decode that skips the scan agrees */
            uint8_t *f = malloc(CN_WIRE_LEN_SIZE + size);
            cn_wire_msg_t *m2 = NULL;
            CHECK(f != NULL);
            cn_wire_put_len(f, size);
            memcpy(f + CN_WIRE_LEN_SIZE, data, size);
            for (int k = 0; k < 3; k++) { /* no memo, then the one the peeks filled */
                CHECK(cn_wire_decode_peeked(f, CN_WIRE_LEN_SIZE + size, k ? &memo : NULL, &m2) ==
                      rc);
                if (rc == 0)
                    CHECK(memcmp(&m2->hdr, &m->hdr, sizeof(m->hdr)) == 0 &&
                          same_object(m2->body, m->body));
                cn_wire_msg_free(m2);
                m2 = NULL;
            }
            free(f);
        }
        if (peek < 0)
            CHECK(rc == peek);
        else if (rc == 0)
            CHECK(h.type == m->hdr.type && h.dst == m->hdr.dst && h.src == m->hdr.src &&
                  h.cid == m->hdr.cid);
        else
            CHECK(rc == CN_EBADTYPE || rc == CN_EMISSING || rc == CN_ERANGE);
        cn_wire_msg_free(m);
    }
    return 0;
}
