/*
 * test_wire.c: the frame codec, against docs/protocol.md.
 *
 * Round-trips every message type, splits a 1000-frame stream at every
 * boundary, feeds each malformed case and checks its distinct error code,
 * and checks that the protocol doc's table matches the codec's lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>
#include <pthread.h>

#include "sanitizers.h"
#include "wire/wire.h"

/* ---------------------------------------------------------------- helpers */

static const cn_wire_type_t all_types[] = {
#define T(name, code, block) CN_MSG_##name,
    CN_WIRE_TYPES(T)
#undef T
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

/* A payload object with a nested array, a str and a bin, for ANY fields
 * and untyped bodies. */
static msgpack_object payload_items[3];
static msgpack_object sample_payload(void)
{
    payload_items[0].type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    payload_items[0].via.i64 = -42;
    payload_items[1].type = MSGPACK_OBJECT_STR;
    payload_items[1].via.str.ptr = "payload";
    payload_items[1].via.str.size = 7;
    payload_items[2].type = MSGPACK_OBJECT_BIN;
    payload_items[2].via.bin.ptr = "\0\1\xff";
    payload_items[2].via.bin.size = 3;
    msgpack_object o = {.type = MSGPACK_OBJECT_ARRAY};
    o.via.array.size = 3;
    o.via.array.ptr = payload_items;
    return o;
}

/* Fills a typed body struct from its field list with values derived from
 * `seed`, so that every field of every type is exercised. Strings point
 * into `strs`, which must outlive the struct. */
static void fill_body(uint32_t type, void *body, uint64_t seed, char strs[][32])
{
    size_t n;
    const cn_wire_field_t *f = cn_wire_fields(type, &n);
    for (size_t i = 0; i < n; i++) {
        char *dst = (char *)body + f[i].offset;
        switch (f[i].kind) {
        case CN_WIRE_KIND_U64:
            *(uint64_t *)dst = seed * 1000 + i + (i == 0 ? UINT32_MAX : 0);
            break;
        case CN_WIRE_KIND_I64:
            *(int64_t *)dst = -(int64_t)(seed + i) - 1;
            break;
        case CN_WIRE_KIND_STR:
        case CN_WIRE_KIND_BYTES: {
            int len = snprintf(strs[i], 32, "%s-%zu-%llu", f[i].name, i, (unsigned long long)seed);
            if (f[i].kind == CN_WIRE_KIND_BYTES)
                strs[i][1] = '\0'; /* bytes may hold NULs */
            ((cn_wire_str_t *)dst)->ptr = strs[i];
            ((cn_wire_str_t *)dst)->len = (uint32_t)len;
            break;
        }
        case CN_WIRE_KIND_ANY:
            *(msgpack_object *)dst = sample_payload();
            break;
        }
    }
}

static void assert_body_equal(uint32_t type, const void *a, const void *b)
{
    size_t n;
    const cn_wire_field_t *f = cn_wire_fields(type, &n);
    for (size_t i = 0; i < n; i++) {
        const char *x = (const char *)a + f[i].offset, *y = (const char *)b + f[i].offset;
        switch (f[i].kind) {
        case CN_WIRE_KIND_U64:
            assert_int_equal(*(const uint64_t *)x, *(const uint64_t *)y);
            break;
        case CN_WIRE_KIND_I64:
            assert_int_equal(*(const int64_t *)x, *(const int64_t *)y);
            break;
        case CN_WIRE_KIND_STR:
        case CN_WIRE_KIND_BYTES: {
            const cn_wire_str_t *s = (const void *)x, *t = (const void *)y;
            assert_int_equal(s->len, t->len);
            assert_memory_equal(s->ptr, t->ptr, s->len);
            break;
        }
        case CN_WIRE_KIND_ANY:
            assert_true(
                msgpack_object_equal(*(const msgpack_object *)x, *(const msgpack_object *)y));
            break;
        }
    }
}

/* Room for any typed body struct, suitably aligned. */
typedef union body_buf {
    max_align_t align;
    char bytes[sizeof(((cn_wire_msg_t *)0)->u)];
} body_buf_t;

/* Appends a message of `type` built from `seed` to sb. */
static void pack_sample(msgpack_sbuffer *sb, uint32_t type, uint64_t seed)
{
    char strs[8][32];
    body_buf_t body;
    memset(&body, 0, sizeof(body));
    cn_wire_hdr_t h = {type, (uint32_t)(seed * 7), (uint32_t)(seed * 13 + 1), seed << 33};
    size_t n;
    if (cn_wire_fields(type, &n) != NULL) {
        fill_body(type, &body, seed, strs);
        assert_int_equal(cn_wire_pack_typed(sb, &h, &body, 0), 0);
    } else {
        msgpack_object o = sample_payload();
        assert_int_equal(cn_wire_pack(sb, &h, &o, 0), 0);
    }
}

/* Checks that `m` is what pack_sample(type, seed) produced. */
static void check_sample(const cn_wire_msg_t *m, uint32_t type, uint64_t seed)
{
    assert_int_equal(m->hdr.type, type);
    assert_int_equal(m->hdr.dst, (uint32_t)(seed * 7));
    assert_int_equal(m->hdr.src, (uint32_t)(seed * 13 + 1));
    assert_int_equal(m->hdr.cid, seed << 33);
    size_t n;
    if (cn_wire_fields(type, &n) != NULL) {
        body_buf_t want;
        char strs[8][32];
        memset(&want, 0, sizeof(want));
        fill_body(type, &want, seed, strs);
        assert_body_equal(type, &want, (const char *)m + offsetof(cn_wire_msg_t, u));
    } else {
        assert_true(msgpack_object_equal(m->body, sample_payload()));
    }
}

/* Frames `body` (count bytes of raw msgpack) with a length prefix. */
static size_t frame_raw(char *out, const void *body, size_t len)
{
    out[0] = (char)(len >> 24), out[1] = (char)(len >> 16);
    out[2] = (char)(len >> 8), out[3] = (char)len;
    memcpy(out + 4, body, len);
    return len + 4;
}

/* cn_wire_decode_peeked on a frame that was checked: the same code as
 * cn_wire_decode_frame (`want`) and, on success, the same message, with
 * no memo, with a memo that remembers another envelope, with one that
 * remembers this frame's (the second decode through it), and with one
 * filled by a peek into a header whose padding held junk (the message's
 * header is compared whole, padding included). */
static void check_peeked(const void *frame, size_t len, int want)
{
    static const char other[] = {0, 0, 0, 6, (char)0x95, CN_MSG_YIELD, 1, 2, 3, (char)0xc0};
    cn_wire_memo_t memo = {0};
    cn_wire_msg_t *a = NULL, *b = NULL;
    assert_int_equal(cn_wire_decode_frame(frame, len, UINT32_MAX, &a), want);
    assert_int_equal(cn_wire_decode_peeked(other, sizeof(other), &memo, &b), 0);
    assert_int_equal(b->hdr.cid, 3);
    cn_wire_msg_free(b);
    for (int k = 0; k < 4; k++) {
        if (k == 3) {
            cn_wire_hdr_t junk;
            size_t off, plen;
            memset(&junk, 0xa5, sizeof(junk));
            memset(&memo, 0, sizeof(memo));
            cn_wire_peek_payload((const char *)frame + CN_WIRE_LEN_SIZE, len - CN_WIRE_LEN_SIZE,
                                 &memo, &junk, &off, &plen);
        }
        b = NULL;
        assert_int_equal(cn_wire_decode_peeked(frame, len, k ? &memo : NULL, &b), want);
        if (want == 0) {
            assert_memory_equal(&a->hdr, &b->hdr, sizeof(a->hdr));
            assert_int_equal(b->frame_len, len);
            assert_memory_equal(b->frame, frame, len);
            assert_true(msgpack_object_equal(a->body, b->body));
        }
        cn_wire_msg_free(b);
    }
    cn_wire_msg_free(a);
}

/* Decodes one whole frame through a fresh incremental decoder and returns
 * the result code, freeing any message. */
static int decode_once(const void *frame, size_t len)
{
    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    cn_wire_msg_t *m = NULL;
    size_t used;
    int rc = cn_wire_decode(&d, frame, len, &used, &m);
    cn_wire_msg_free(m);
    /* cn_wire_decode_frame must agree on whole frames. */
    int rc2 = cn_wire_decode_frame(frame, len, 0, &m);
    cn_wire_msg_free(m);
    if (rc == 1)
        assert_int_equal(rc2, 0);
    else
        assert_int_equal(rc2, rc);
    cn_wire_decoder_fini(&d);
    /* cn_wire_peek must agree on the body of a frame of the right length,
     * except that it does not look inside typed bodies. */
    const unsigned char *u = frame;
    if (len > CN_WIRE_LEN_SIZE &&
        ((size_t)u[0] << 24 | (size_t)u[1] << 16 | (size_t)u[2] << 8 | u[3]) ==
            len - CN_WIRE_LEN_SIZE) {
        cn_wire_hdr_t h;
        int rc3 = cn_wire_peek(u + CN_WIRE_LEN_SIZE, len - CN_WIRE_LEN_SIZE, &h);
        if (rc3 == 0) /* checked: the fast decode must agree */
            check_peeked(frame, len, rc == 1 ? 0 : rc);
        if (rc3 < 0) {
            assert_int_equal(rc3, rc);
        } else if (rc == 1) {
            assert_int_equal(cn_wire_decode_frame(frame, len, 0, &m), 0);
            size_t off, plen;
            assert_int_equal(cn_wire_peek_payload(u + CN_WIRE_LEN_SIZE, len - CN_WIRE_LEN_SIZE,
                                                  NULL, &h, &off, &plen),
                             0);
            if (plen > 0) { /* exactly the body's bytes */
                msgpack_zone z;
                msgpack_zone_init(&z, 256);
                msgpack_object o;
                size_t took = 0;
                assert_int_equal(msgpack_unpack((const char *)u + CN_WIRE_LEN_SIZE + off, plen,
                                                &took, &z, &o),
                                 MSGPACK_UNPACK_SUCCESS);
                assert_int_equal(took, plen);
                assert_true(msgpack_object_equal(o, m->body));
                msgpack_zone_destroy(&z);
            }
            assert_true(h.type == m->hdr.type && h.dst == m->hdr.dst && h.src == m->hdr.src &&
                        h.cid == m->hdr.cid);
            cn_wire_msg_free(m);
        } else {
            /* only a typed body's fields can fail past peek */
            assert_true(rc == CN_EBADTYPE || rc == CN_EMISSING || rc == CN_ERANGE);
        }
    }
    return rc;
}

/* Packs a body with the given raw msgpack elements after a standard
 * envelope: [type, dst, src, cid, <body bytes>]. */
static size_t frame_with_body(char *out, uint32_t type, const void *body, size_t blen)
{
    char tmp[256];
    size_t n = 0;
    tmp[n++] = (char)0x95;
    tmp[n++] = (char)type;
    tmp[n++] = 1, tmp[n++] = 2, tmp[n++] = 3;
    memcpy(tmp + n, body, blen);
    return frame_raw(out, tmp, n + blen);
}

/* ---------------------------------------------------------------- tests */

static void test_roundtrip_every_type(void **state)
{
    (void)state;
    for (size_t t = 0; t < NTYPES; t++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        pack_sample(&sb, all_types[t], t + 1);

        cn_wire_msg_t *m = NULL;
        assert_int_equal(cn_wire_decode_frame(sb.data, sb.size, 0, &m), 0);
        check_sample(m, all_types[t], t + 1);
        /* The raw frame is kept verbatim for forwarding. */
        assert_int_equal(m->frame_len, sb.size);
        assert_memory_equal(m->frame, sb.data, sb.size);
        /* Re-encoding the decoded body gives the same frame. */
        msgpack_sbuffer sb2;
        msgpack_sbuffer_init(&sb2);
        assert_int_equal(cn_wire_pack(&sb2, &m->hdr, &m->body, 0), 0);
        assert_int_equal(sb2.size, sb.size);
        assert_memory_equal(sb2.data, sb.data, sb.size);
        assert_string_not_equal(cn_wire_type_name(all_types[t]), "?");
        msgpack_sbuffer_destroy(&sb2);
        cn_wire_msg_free(m);
        msgpack_sbuffer_destroy(&sb);
    }
    assert_string_equal(cn_wire_type_name(0), "?");
    assert_string_equal(cn_wire_type_name(CN_MSG_MAX_), "?");
    assert_string_equal(cn_wire_type_name(CN_MSG_YIELD), "YIELD");
}

/* One frame [type, dst, src, cid, payload] for test_decode_peeked, the
 * payload packed by `kind`; returns the packer's buffer. */
static void pack_peek_case(msgpack_sbuffer *sb, uint32_t type, uint64_t ids, int kind)
{
    msgpack_packer pk;
    size_t mark;
    cn_wire_hdr_t h = {type, (uint32_t)ids, (uint32_t)(ids >> 1), ids};
    msgpack_sbuffer_init(sb);
    assert_int_equal(cn_wire_begin(sb, &pk, &h, &mark), 0);
    static const char blob[70000];
    switch (kind) {
    case 0: msgpack_pack_nil(&pk); break;
    case 1: msgpack_pack_true(&pk); break;
    case 2: msgpack_pack_int64(&pk, -5); break;
    case 3: msgpack_pack_uint64(&pk, UINT64_MAX); break;
    case 4: msgpack_pack_int64(&pk, INT64_MIN); break;
    case 5: msgpack_pack_double(&pk, 2.5); break;
    case 6: msgpack_pack_float(&pk, 1.5f); break;
    case 7: msgpack_pack_str_with_body(&pk, "hello", 5); break;
    case 8: msgpack_pack_str_with_body(&pk, blob, 300); break;
    case 9: msgpack_pack_bin_with_body(&pk, blob, 48); break;
    case 10: msgpack_pack_bin_with_body(&pk, blob, sizeof(blob)); break;
    case 11: msgpack_pack_ext_with_body(&pk, blob, 4, 7); break;
    case 12: msgpack_pack_ext_with_body(&pk, blob, 300, 7); break;
    case 13: /* containers: the checked path */
        msgpack_pack_array(&pk, 2);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_array(&pk, 0);
        msgpack_pack_int64(&pk, 3);
        break;
    default: /* an array of 20 000: more slots than a guess would give */
        msgpack_pack_array(&pk, 20000);
        for (int i = 0; i < 20000; i++)
            msgpack_pack_int64(&pk, i);
        break;
    }
    assert_int_equal(cn_wire_end(sb, mark, 0, 0), 0);
}

/* The decode of checked frames that skips the scan gives what the full
 * decode gives: every kind of payload, small and large ids (each up to
 * nine bytes, so a short frame takes the checked path), and a typed
 * message whose body is the wrong shape. */
static void test_decode_peeked(void **state)
{
    (void)state;
    static const uint64_t ids[] = {0, 1, 127, 128, 70000, (uint64_t)1 << 33, UINT64_MAX >> 1};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        for (int kind = 0; kind <= 14; kind++) {
            msgpack_sbuffer sb;
            pack_peek_case(&sb, CN_MSG_YIELD, ids[i], kind);
            check_peeked(sb.data, sb.size, 0);
            msgpack_sbuffer_destroy(&sb);
        }
    /* A CREDIT's body must be an array: a bare integer fails the same way
     * on both paths. */
    msgpack_sbuffer sb;
    pack_peek_case(&sb, CN_MSG_CREDIT, 1, 2);
    check_peeked(sb.data, sb.size, CN_EBADTYPE);
    msgpack_sbuffer_destroy(&sb);
    /* A 16-bit array header for the envelope: still decoded. */
    static const char env16[] = {(char)0xdc, 0, 5, CN_MSG_YIELD, 1, 2, 3, 9};
    char f[32];
    size_t n = frame_raw(f, env16, sizeof(env16));
    check_peeked(f, n, 0);
}

/* A body of five elements whose payload holds no array or map is
 * measured without the general scan: it must still be refused, with the
 * scan's codes, when cut short anywhere or followed by a stray byte. */
static void test_flat_bodies_measured_exactly(void **state)
{
    (void)state;
    static const uint64_t ids[] = {0, 127, 70000, UINT64_MAX >> 1};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        for (int kind = 0; kind <= 12; kind++) {
            msgpack_sbuffer sb;
            pack_peek_case(&sb, CN_MSG_YIELD, ids[i], kind);
            const char *body = sb.data + CN_WIRE_LEN_SIZE;
            size_t blen = sb.size - CN_WIRE_LEN_SIZE, off, plen;
            cn_wire_hdr_t h;
            cn_wire_memo_t memo = {0}; /* then remembers this envelope */
            assert_int_equal(cn_wire_peek_payload(body, blen, NULL, &h, &off, &plen), 0);
            assert_int_equal(h.cid, ids[i]);
            assert_int_equal(off + plen, blen);
            assert_int_equal(cn_wire_peek_payload(body, blen, &memo, &h, &off, &plen), 0);
            assert_int_equal(memo.len, off);
            for (size_t k = 1; k < blen; k += k < 400 ? 1 : blen / 7 + 1) {
                assert_int_equal(cn_wire_peek(body, k, &h), CN_ETRUNC);
                assert_int_equal(cn_wire_peek_payload(body, k, &memo, &h, &off, &plen), CN_ETRUNC);
            }
            assert_int_equal(cn_wire_peek(body, blen - 1, &h), CN_ETRUNC);
            char *more = malloc(blen + 1);
            assert_non_null(more);
            memcpy(more, body, blen);
            more[blen] = 0x01;
            assert_int_equal(cn_wire_peek(more, blen + 1, &h), CN_ETRAILING);
            assert_int_equal(cn_wire_peek_payload(more, blen + 1, &memo, &h, &off, &plen),
                             CN_ETRAILING);
            cn_wire_msg_t *m;
            assert_int_equal(cn_wire_decode_body(more, blen + 1, &m), CN_ETRAILING);
            free(more);
            msgpack_sbuffer_destroy(&sb);
        }
}

/* Whether two objects msgpack_unpack could give for the same bytes at
 * pa and pb are the same: type, value (a float's bits) and, for str, bin
 * and ext, where in those bytes they point (when they hold a byte: for
 * an empty str msgpack-c leaves whatever pointer it had to hand). */
static int same_unpacked(const msgpack_object *a, const char *pa, const msgpack_object *b,
                         const char *pb)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL:
        return 1;
    case MSGPACK_OBJECT_BOOLEAN:
        return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_STR:
        return a->via.str.size == b->via.str.size &&
               (a->via.str.size == 0 || a->via.str.ptr - pa == b->via.str.ptr - pb);
    case MSGPACK_OBJECT_BIN:
        return a->via.bin.size == b->via.bin.size &&
               (a->via.bin.size == 0 || a->via.bin.ptr - pa == b->via.bin.ptr - pb);
    case MSGPACK_OBJECT_EXT:
        return a->via.ext.type == b->via.ext.type && a->via.ext.size == b->via.ext.size &&
               (a->via.ext.size == 0 || a->via.ext.ptr - pa == b->via.ext.ptr - pb);
    default: /* the integers and floats: the same 8 bytes */
        return memcmp(&a->via.u64, &b->via.u64, 8) == 0;
    }
}

/* A payload without arrays or maps is not unpacked by msgpack-c's parser
 * (wire.c's unpack_flat does it for less): every first byte of such an
 * object, with each of three tails cut at every length, decodes to what
 * msgpack_unpack gives, or fails with the code its verdict maps to: in
 * the full decode (whose scan fails first) and in cn_wire_decode_peeked
 * (which has no scan before unpack_flat, so its failures are that
 * function's own). */
static void test_flat_unpack_is_msgpack_unpack(void **state)
{
    (void)state;
    static const unsigned char env[] = {0x95, CN_MSG_YIELD, 1, 2, 3};
    unsigned char tails[3][24];
    for (int k = 0; k < 24; k++) {
        tails[0][k] = 0;
        tails[1][k] = (unsigned char)k; /* small lengths */
        tails[2][k] = (unsigned char)(0xff - k); /* negative numbers, NaNs */
    }
    int checked = 0;
    for (int b = 0; b < 256; b++) {
        if ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf))
            continue; /* containers take msgpack_unpack */
        for (int t = 0; t < 3; t++)
            for (size_t cut = 0; cut <= 24; cut++) {
                unsigned char pl[25], body[40];
                char frame[48];
                pl[0] = (unsigned char)b;
                memcpy(pl + 1, tails[t], cut);
                size_t plen = 1 + cut;
                memcpy(body, env, sizeof(env));
                memcpy(body + sizeof(env), pl, plen);
                size_t flen = frame_raw(frame, body, sizeof(env) + plen);

                msgpack_zone z;
                msgpack_zone_init(&z, 256);
                msgpack_object o;
                size_t used = 0;
                msgpack_unpack_return ur = msgpack_unpack((const char *)pl, plen, &used, &z, &o);
                int want = ur == MSGPACK_UNPACK_SUCCESS       ? 0
                           : ur == MSGPACK_UNPACK_EXTRA_BYTES ? CN_ETRAILING
                           : ur == MSGPACK_UNPACK_CONTINUE    ? CN_ETRUNC
                                                              : CN_EBADMSGPACK;
                cn_wire_msg_t *m = NULL, *m2 = NULL;
                assert_int_equal(cn_wire_decode_frame(frame, flen, 0, &m), want);
                assert_int_equal(cn_wire_decode_peeked(frame, flen, NULL, &m2), want);
                if (want == 0) {
                    const char *at = m->frame + CN_WIRE_LEN_SIZE + sizeof(env);
                    assert_true(same_unpacked(&o, (const char *)pl, &m->body, at));
                    at = m2->frame + CN_WIRE_LEN_SIZE + sizeof(env);
                    assert_true(same_unpacked(&o, (const char *)pl, &m2->body, at));
                    checked++;
                }
                cn_wire_msg_free(m);
                cn_wire_msg_free(m2);
                msgpack_zone_destroy(&z);
            }
    }
    assert_true(checked >= 600); /* 624: one cut of each tail for almost every byte */
    /* An ext 32 claiming 2^32-1 bytes: msgpack-c adds its type byte in 32
     * bits and fails it (the scan, which counts in 64, calls it short). */
    static const char wraps[] = {0, 0, 0, 11, (char)0x95, CN_MSG_YIELD, 1, 2, 3,
                                 (char)0xc9, (char)0xff, (char)0xff, (char)0xff, (char)0xff, 1};
    msgpack_zone z;
    msgpack_zone_init(&z, 256);
    msgpack_object o;
    size_t used = 0;
    assert_int_equal(msgpack_unpack(wraps + 9, 6, &used, &z, &o), MSGPACK_UNPACK_PARSE_ERROR);
    msgpack_zone_destroy(&z);
    cn_wire_msg_t *m;
    assert_int_equal(cn_wire_decode_peeked(wraps, sizeof(wraps), NULL, &m), CN_EBADMSGPACK);
    assert_int_equal(cn_wire_decode_frame(wraps, sizeof(wraps), 0, &m), CN_ETRUNC);
}

/* A message whose body holds no array or map is one block without a
 * zone; cn_wire_msg_zone still gives its owner one to allocate in, made
 * once and freed with it (ASan and valgrind see a leak or a double free). */
static void test_msg_zone(void **state)
{
    (void)state;
    for (int kind = 0; kind <= 13; kind += 13) { /* nil, then containers */
        msgpack_sbuffer sb;
        pack_peek_case(&sb, CN_MSG_YIELD, 9, kind);
        cn_wire_msg_t *m;
        assert_int_equal(cn_wire_decode_frame(sb.data, sb.size, 0, &m), 0);
        assert_int_equal(m->block != 0, kind == 0);
        msgpack_zone *z = cn_wire_msg_zone(m);
        assert_non_null(z);
        assert_ptr_equal(cn_wire_msg_zone(m), z);
        char *p = msgpack_zone_malloc(z, 5000); /* more than a chunk */
        assert_non_null(p);
        memset(p, 1, 5000);
        assert_int_equal(m->frame_len, sb.size);
        assert_memory_equal(m->frame, sb.data, sb.size);
        cn_wire_msg_free(m);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* Decodes the frame in sb and frees the message: what a stream's reader
 * and its program do with each message. */
static void *decode_and_free(void *sb)
{
    const msgpack_sbuffer *b = sb;
    cn_wire_msg_t *m;
    if (cn_wire_decode_frame(b->data, b->size, 0, &m) != 0)
        return sb; /* not cmocka's asserts: another thread */
    cn_wire_msg_free(m);
    return NULL;
}

/* A small message's block, once freed, is the one the thread's next
 * decode builds in, and holds the new message whole; a large one is not
 * kept; a thread that exits frees its spare (`make memcheck` reports a
 * block definitely lost if not). Under ASan, which keeps no spare, only
 * the new message's content is checked. */
static void test_spare_block(void **state)
{
    (void)state;
    msgpack_sbuffer small, other, big;
    pack_peek_case(&small, CN_MSG_YIELD, 3, 9);  /* bin 48 */
    pack_peek_case(&other, CN_MSG_YIELD, 70000, 7); /* "hello" */
    pack_peek_case(&big, CN_MSG_YIELD, 3, 10);   /* bin 70000 */
    cn_wire_msg_t *m, *m2;
    assert_int_equal(cn_wire_decode_frame(small.data, small.size, 0, &m), 0);
    void *was = m;
    cn_wire_msg_free(m);
    assert_int_equal(cn_wire_decode_frame(other.data, other.size, 0, &m2), 0);
#ifndef CN_TEST_UNDER_ASAN
    assert_ptr_equal(m2, was);
#endif
    assert_int_equal(m2->frame_len, other.size);
    assert_memory_equal(m2->frame, other.data, other.size);
    assert_int_equal(m2->hdr.cid, 70000);
    assert_int_equal(m2->body.type, MSGPACK_OBJECT_STR);
    assert_memory_equal(m2->body.via.str.ptr, "hello", 5);
    assert_int_equal(cn_wire_decode_frame(big.data, big.size, 0, &m), 0);
    cn_wire_msg_free(m); /* the spare is free: kept if small enough */
    cn_wire_msg_free(m2); /* the spare is taken: freed */
    for (int k = 0; k < 2; k++) {
        pthread_t th;
        void *failed;
        assert_int_equal(pthread_create(&th, NULL, decode_and_free, &small), 0);
        assert_int_equal(pthread_join(th, &failed), 0);
        assert_null(failed);
    }
    msgpack_sbuffer_destroy(&small);
    msgpack_sbuffer_destroy(&other);
    msgpack_sbuffer_destroy(&big);
}

/* A frame packed with an envelope packed once is, byte for byte, the one
 * cn_wire_pack gives, for every kind of payload and size of id. */
static void test_pack_env_is_pack(void **state)
{
    (void)state;
    static const uint64_t ids[] = {0, 1, 127, 128, 70000, (uint64_t)1 << 33, UINT64_MAX};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        for (int kind = 0; kind <= 14; kind++) {
            msgpack_sbuffer sb, again;
            pack_peek_case(&sb, CN_MSG_YIELD, ids[i], kind);
            cn_wire_msg_t *m;
            assert_int_equal(cn_wire_decode_frame(sb.data, sb.size, 0, &m), 0);
            cn_wire_env_t env = {0};
            msgpack_sbuffer_init(&again);
            assert_int_equal(cn_wire_pack_env(&again, &env, &m->body, 0), CN_EINVAL);
            assert_int_equal(again.size, 0);
            assert_int_equal(cn_wire_env_init(&env, &m->hdr), 0);
            msgpack_sbuffer_write(&again, "x", 1); /* appends after what is there */
            assert_int_equal(cn_wire_pack_env(&again, &env, &m->body, 0), 0);
            assert_int_equal(again.size, 1 + sb.size);
            assert_memory_equal(again.data + 1, sb.data, sb.size);
            /* too large for a small limit: refused, the buffer as it was */
            if (sb.size > 100) {
                assert_int_equal(cn_wire_pack_env(&again, &env, &m->body, 64), CN_EMSGSIZE);
                assert_int_equal(again.size, 1 + sb.size);
            }
            cn_wire_msg_free(m);
            msgpack_sbuffer_destroy(&again);
            msgpack_sbuffer_destroy(&sb);
        }
    /* NULL packs nil, as cn_wire_pack does */
    cn_wire_hdr_t h = {CN_MSG_YIELD, 3, 4, 5};
    cn_wire_env_t env;
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    assert_int_equal(cn_wire_env_init(&env, &h), 0);
    assert_int_equal(cn_wire_pack_env(&a, &env, NULL, 0), 0);
    assert_int_equal(cn_wire_pack(&b, &h, NULL, 0), 0);
    assert_int_equal(a.size, b.size);
    assert_memory_equal(a.data, b.data, a.size);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

static void test_optional_fields_absent_or_nil(void **state)
{
    (void)state;
    /* ERROR with only its three required fields: backtrace and code zero. */
    static const char err3[] = {(char)0x93, (char)0xa1, 'o', (char)0xa1, 'f', (char)0xa1, 'm'};
    char f[64];
    size_t n = frame_with_body(f, CN_MSG_ERROR, err3, sizeof(err3));
    cn_wire_msg_t *m;
    assert_int_equal(cn_wire_decode_frame(f, n, 0, &m), 0);
    assert_null(m->u.error.backtrace.ptr);
    assert_int_equal(m->u.error.code, 0);
    assert_memory_equal(m->u.error.origin.ptr, "o", 1);
    cn_wire_msg_free(m);

    /* The same with explicit nils, and with an extra trailing field that a
     * newer peer might add: both accepted. */
    static const char err6[] = {(char)0x96, (char)0xa1, 'o',        (char)0xa1, 'f',
                                (char)0xa1, 'm',        (char)0xc0, (char)0xc0, (char)0xa3,
                                'n',        'e',        'w'};
    n = frame_with_body(f, CN_MSG_ERROR, err6, sizeof(err6));
    assert_int_equal(cn_wire_decode_frame(f, n, 0, &m), 0);
    assert_null(m->u.error.backtrace.ptr);
    cn_wire_msg_free(m);

    /* A six-element envelope: the extra element is ignored. */
    static const char env6[] = {(char)0x96, CN_MSG_STOP, 1, 2, 3, (char)0xc0, 7};
    n = frame_raw(f, env6, sizeof(env6));
    assert_int_equal(cn_wire_decode_frame(f, n, 0, &m), 0);
    assert_int_equal(m->hdr.type, CN_MSG_STOP);
    assert_int_equal(m->body.type, MSGPACK_OBJECT_NIL);
    cn_wire_msg_free(m);

    /* An optional str packed from ptr == NULL comes back absent. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_cancel_t c = {{NULL, 0}};
    cn_wire_hdr_t h = {CN_MSG_CANCEL, 1, 2, 3};
    assert_int_equal(cn_wire_pack_typed(&sb, &h, &c, 0), 0);
    assert_int_equal(cn_wire_decode_frame(sb.data, sb.size, 0, &m), 0);
    assert_null(m->u.cancel.reason.ptr);
    cn_wire_msg_free(m);
    msgpack_sbuffer_destroy(&sb);
}

/* Builds a stream of `count` frames cycling through every type. */
static void build_stream(msgpack_sbuffer *sb, size_t count)
{
    for (size_t i = 0; i < count; i++)
        pack_sample(sb, all_types[i % NTYPES], i);
}

/* Feeds `len` bytes in the chunk sizes `next_chunk` chooses and checks
 * that exactly `count` sample frames come out, in order. */
/* With `split`, frames come from cn_wire_next_frame and are decoded
 * apart with cn_wire_decode_body, as the broker does. */
static int split_frames;

static int feed_one(cn_wire_decoder_t *d, const char *p, size_t left, size_t *used,
                    cn_wire_msg_t **m)
{
    if (!split_frames)
        return cn_wire_decode(d, p, left, used, m);
    const char *body;
    size_t blen;
    *m = NULL;
    int rc = cn_wire_next_frame(d, p, left, used, &body, &blen);
    if (rc == 1) {
        cn_wire_hdr_t h;
        assert_int_equal(cn_wire_peek(body, blen, &h), 0);
        assert_int_equal(cn_wire_decode_body(body, blen, m), 0);
        assert_true(h.type == (*m)->hdr.type && h.dst == (*m)->hdr.dst &&
                    h.src == (*m)->hdr.src && h.cid == (*m)->hdr.cid);
    }
    return rc;
}

static void feed_and_check(const char *buf, size_t len, size_t count,
                           size_t (*next_chunk)(size_t pos, void *arg), void *arg)
{
    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    size_t pos = 0, got = 0;
    while (pos < len) {
        size_t chunk = next_chunk(pos, arg);
        if (chunk > len - pos)
            chunk = len - pos;
        const char *p = buf + pos;
        size_t left = chunk;
        while (left > 0) {
            cn_wire_msg_t *m = NULL;
            size_t used;
            int rc = feed_one(&d, p, left, &used, &m);
            assert_true(rc == 0 || rc == 1);
            assert_true(used <= left);
            if (rc == 1) {
                check_sample(m, all_types[got % NTYPES], got);
                cn_wire_msg_free(m);
                got++;
            } else {
                assert_int_equal(used, left); /* 0 means all consumed */
            }
            p += used, left -= used;
        }
        pos += chunk;
    }
    assert_int_equal(got, count);
    assert_int_equal(d.frames, count);
    assert_int_equal(d.len_have, 0);
    assert_int_equal(d.pend_have, 0);
    cn_wire_decoder_fini(&d);
}

static size_t chunk_one(size_t pos, void *arg)
{
    (void)pos, (void)arg;
    return 1;
}

static size_t chunk_all(size_t pos, void *arg)
{
    (void)pos, (void)arg;
    return SIZE_MAX;
}

static size_t chunk_split_at(size_t pos, void *arg)
{
    size_t k = *(size_t *)arg;
    return pos < k ? k - pos : SIZE_MAX;
}

static size_t chunk_random(size_t pos, void *arg)
{
    (void)pos;
    unsigned *seed = arg;
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % 300;
}

/* Unpacks sb's bytes into o, in z (whose memory the caller frees). */
static void unpack_into(msgpack_sbuffer *sb, msgpack_zone *z, msgpack_object *o)
{
    size_t off = 0;
    assert_int_equal(msgpack_unpack(sb->data, sb->size, &off, z, o), MSGPACK_UNPACK_SUCCESS);
}

/* A snapshot's table reads as the array of maps it stands for; a row
 * shorter than cols lacks the rest; anything not a table is left alone. */
static void test_table_as_maps(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "rows", 4); /* in either order */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_str_with_body(&pk, "hold", 4);
    msgpack_pack_array(&pk, 1); /* short */
    msgpack_pack_int(&pk, 8);
    msgpack_pack_nil(&pk); /* not a row */
    msgpack_pack_str_with_body(&pk, "cols", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "cid", 3);
    msgpack_pack_str_with_body(&pk, "fn", 2);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object t, out;
    unpack_into(&sb, &z, &t);
    assert_int_equal(cn_msgpack_table(&t, &z, &out), 1);
    assert_int_equal(out.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(out.via.array.size, 3);
    const msgpack_object *r = out.via.array.ptr;
    assert_int_equal(r[0].via.map.size, 2);
    assert_int_equal(cn_msgpack_get(&r[0], "cid")->via.u64, 7);
    assert_memory_equal(cn_msgpack_get(&r[0], "fn")->via.str.ptr, "hold", 4);
    assert_int_equal(r[1].via.map.size, 1);
    assert_int_equal(cn_msgpack_get(&r[1], "cid")->via.u64, 8);
    assert_null(cn_msgpack_get(&r[1], "fn"));
    assert_int_equal(r[2].type, MSGPACK_OBJECT_MAP);
    assert_int_equal(r[2].via.map.size, 0);

    /* Not tables: an array, a map with a third key, cols that is not an
     * array, nil. */
    out.type = MSGPACK_OBJECT_NIL;
    sb.size = 0;
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int(&pk, 1);
    unpack_into(&sb, &z, &t);
    assert_int_equal(cn_msgpack_table(&t, &z, &out), 0);
    sb.size = 0;
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "cols", 4);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_str_with_body(&pk, "rows", 4);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_str_with_body(&pk, "more", 4);
    msgpack_pack_nil(&pk);
    unpack_into(&sb, &z, &t);
    assert_int_equal(cn_msgpack_table(&t, &z, &out), 0);
    sb.size = 0;
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "cols", 4);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_str_with_body(&pk, "rows", 4);
    msgpack_pack_array(&pk, 0);
    unpack_into(&sb, &z, &t);
    assert_int_equal(cn_msgpack_table(&t, &z, &out), 0);
    assert_int_equal(cn_msgpack_table(NULL, &z, &out), 0);
    assert_int_equal(out.type, MSGPACK_OBJECT_NIL); /* left alone */
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

static void test_stream_1000_frames_every_split(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    build_stream(&sb, 1000);

    /* Each way of taking frames: whole messages, and framing apart from
     * decoding (cn_wire_next_frame), as the broker does. */
    for (split_frames = 0; split_frames < 2; split_frames++) {
        /* One byte at a time: every boundary in the stream is a split. */
        feed_and_check(sb.data, sb.size, 1000, chunk_one, NULL);
        /* All at once: many frames per call. */
        feed_and_check(sb.data, sb.size, 1000, chunk_all, NULL);
        /* Random chunks of 1..300 bytes. */
        unsigned seed = 12345;
        feed_and_check(sb.data, sb.size, 1000, chunk_random, &seed);
    }
    msgpack_sbuffer_destroy(&sb);

    /* Two chunks, cut at each byte of a shorter stream that still holds
     * every type twice. */
    msgpack_sbuffer_init(&sb);
    build_stream(&sb, 2 * NTYPES);
    for (split_frames = 0; split_frames < 2; split_frames++)
        for (size_t k = 0; k <= sb.size; k++)
            feed_and_check(sb.data, sb.size, 2 * NTYPES, chunk_split_at, &k);
    split_frames = 0;
    msgpack_sbuffer_destroy(&sb);
}

static void test_large_frame_in_pieces(void **state)
{
    (void)state;
    /* A 3 MiB YIELD arriving in 64 KiB reads: the partial buffer grows
     * with the data and the message is intact. */
    size_t big = 3u << 20;
    char *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (char)(i * 31);
    msgpack_object o = {.type = MSGPACK_OBJECT_BIN};
    o.via.bin.ptr = blob;
    o.via.bin.size = (uint32_t)big;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_YIELD, 5, 6, 7};
    assert_int_equal(cn_wire_pack(&sb, &h, &o, 0), 0);

    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    cn_wire_msg_t *m = NULL;
    size_t pos = 0;
    while (m == NULL) {
        size_t chunk = sb.size - pos < 65536 ? sb.size - pos : 65536, used;
        int rc = cn_wire_decode(&d, sb.data + pos, chunk, &used, &m);
        assert_true(rc >= 0);
        if (rc == 0) /* never more than twice what arrived */
            assert_true(d.pend_cap <= 2 * (pos + chunk) || d.pend_cap <= 4096);
        pos += used;
    }
    assert_int_equal(pos, sb.size);
    assert_int_equal(m->body.type, MSGPACK_OBJECT_BIN);
    assert_int_equal(m->body.via.bin.size, big);
    assert_memory_equal(m->body.via.bin.ptr, blob, big);
    cn_wire_msg_free(m);
    /* Large partial buffers are not kept after the frame completes. */
    assert_null(d.pend);
    cn_wire_decoder_fini(&d);
    msgpack_sbuffer_destroy(&sb);
    free(blob);
}

/* Regression (found by fuzz_wire): a read that ends exactly after the
 * length prefix used to memcpy zero bytes into a NULL buffer. */
static void test_read_ends_after_prefix(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    build_stream(&sb, 1);
    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    cn_wire_msg_t *m = NULL;
    size_t used;
    assert_int_equal(cn_wire_decode(&d, sb.data, CN_WIRE_LEN_SIZE, &used, &m), 0);
    assert_int_equal(used, CN_WIRE_LEN_SIZE);
    assert_null(d.pend);
    assert_int_equal(cn_wire_decode(&d, sb.data + used, 0, &used, &m), 0);
    assert_int_equal(used, 0);
    assert_int_equal(
        cn_wire_decode(&d, sb.data + CN_WIRE_LEN_SIZE, sb.size - CN_WIRE_LEN_SIZE, &used, &m), 1);
    check_sample(m, all_types[0], 0);
    cn_wire_msg_free(m);
    cn_wire_decoder_fini(&d);
    msgpack_sbuffer_destroy(&sb);
}

static void test_oversize_length(void **state)
{
    (void)state;
    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 1024);
    static const char hdr[] = {0, 0, 4, 1, (char)0x95}; /* 1025 > 1024 */
    size_t used;
    cn_wire_msg_t *m = NULL;
    assert_int_equal(cn_wire_decode(&d, hdr, sizeof(hdr), &used, &m), CN_EMSGSIZE);
    assert_null(m);
    assert_null(d.pend);
    assert_int_equal(d.pend_cap, 0);
    /* Sticky: the stream is unusable from here on. */
    assert_int_equal(cn_wire_decode(&d, hdr, sizeof(hdr), &used, &m), CN_EMSGSIZE);
    assert_int_equal(used, 0);
    cn_wire_decoder_fini(&d);

    /* The largest length a 32-bit prefix can claim, with the default max. */
    static const char huge[] = {(char)0xff, (char)0xff, (char)0xff, (char)0xff};
    assert_int_equal(decode_once(huge, sizeof(huge)), CN_EMSGSIZE);
}

static void test_huge_claimed_length_allocates_nothing(void **state)
{
    (void)state;
    /* 16 MiB - 1 is allowed by the default max, but only 9 bytes arrive:
     * the decoder must not reserve the claimed size. */
    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    static const char start[] = {0, (char)0xff, (char)0xff, (char)0xff, (char)0x95, 9, 0, 0, 0};
#ifndef CN_TEST_UNDER_ASAN
    struct mallinfo2 before = mallinfo2();
#endif
    size_t used;
    cn_wire_msg_t *m = NULL;
    assert_int_equal(cn_wire_decode(&d, start, sizeof(start), &used, &m), 0);
    assert_int_equal(used, sizeof(start));
    assert_null(m);
    assert_true(d.pend_cap <= 4096);
#ifndef CN_TEST_UNDER_ASAN
    /* And the allocator agrees: well under a megabyte more in use. */
    struct mallinfo2 after = mallinfo2();
    assert_true(after.uordblks + after.hblkhd < before.uordblks + before.hblkhd + (1u << 20));
#endif
    cn_wire_decoder_fini(&d);

    /* A tiny body that claims 2^32-1 array elements (msgpack-c alone would
     * try to allocate ~96 GiB for it) is refused as truncated. */
    static const char arr32[] = {(char)0xdd, (char)0xff, (char)0xff, (char)0xff, (char)0xff, 1};
    char f[32];
    size_t n = frame_raw(f, arr32, sizeof(arr32));
    assert_int_equal(decode_once(f, n), CN_ETRUNC);
    /* Nested claims that add up past the bytes available, too. */
    static const char nested[] = {(char)0xdc, 0, 4, (char)0xdc, 0, 4, 1, 2, 3, 4, 5};
    n = frame_raw(f, nested, sizeof(nested));
    assert_int_equal(decode_once(f, n), CN_ETRUNC);
}

static void test_malformed_each_code(void **state)
{
    (void)state;
    char f[256];
    size_t n;

    /* CN_ETRUNC: empty body; body ends inside its array; str longer than
     * the body; whole-frame decode given too few bytes. */
    static const char zero[] = {0, 0, 0, 0};
    assert_int_equal(decode_once(zero, sizeof(zero)), CN_ETRUNC);
    static const char cut[] = {(char)0x95, CN_MSG_STOP, 1};
    n = frame_raw(f, cut, sizeof(cut));
    assert_int_equal(decode_once(f, n), CN_ETRUNC);
    static const char longstr[] = {(char)0x95, CN_MSG_STOP, 1, 2, 3, (char)0xd9, (char)200, 'x'};
    n = frame_raw(f, longstr, sizeof(longstr));
    assert_int_equal(decode_once(f, n), CN_ETRUNC);
    cn_wire_msg_t *m = NULL;
    assert_int_equal(cn_wire_decode_frame(f, n - 1, 0, &m), CN_ETRUNC);
    assert_int_equal(cn_wire_decode_frame(f, 3, 0, &m), CN_ETRUNC);

    /* CN_EBADMSGPACK: the never-used byte 0xc1; nesting deeper than
     * msgpack-c's parser stack. */
    static const char c1[] = {(char)0x95, CN_MSG_STOP, 1, 2, 3, (char)0xc1};
    n = frame_raw(f, c1, sizeof(c1));
    assert_int_equal(decode_once(f, n), CN_EBADMSGPACK);
    char deep[80];
    size_t dn = 0;
    deep[dn++] = (char)0x95, deep[dn++] = CN_MSG_YIELD, deep[dn++] = 1, deep[dn++] = 2;
    deep[dn++] = 3;
    for (int i = 0; i < 32; i++) /* 33 open containers with the envelope */
        deep[dn++] = (char)0x91;
    deep[dn++] = 0;
    n = frame_raw(f, deep, dn);
    assert_int_equal(decode_once(f, n), CN_EBADMSGPACK);
    /* One level less is the deepest msgpack-c takes, and is accepted. */
    memmove(deep + 5, deep + 6, dn - 6);
    n = frame_raw(f, deep, dn - 1);
    assert_int_equal(decode_once(f, n), 1);
    /* An empty container counts too: msgpack-c pushes it on its stack
     * before it looks at the count (found by fuzz_wire, which saw NOMEM). */
    deep[dn - 2] = (char)0x90;
    n = frame_raw(f, deep, dn - 1);
    assert_int_equal(decode_once(f, n), CN_EBADMSGPACK);
    deep[dn - 2] = (char)0x80;
    n = frame_raw(f, deep, dn - 1);
    assert_int_equal(decode_once(f, n), CN_EBADMSGPACK);
    cn_wire_hdr_t dh;
    assert_int_equal(cn_wire_peek(deep, dn - 1, &dh), CN_EBADMSGPACK);

    /* CN_ETRAILING: a second object inside the frame; whole-frame decode
     * given bytes past the frame. */
    static const char two[] = {(char)0x95, CN_MSG_STOP, 1, 2, 3, (char)0xc0, (char)0xc0};
    n = frame_raw(f, two, sizeof(two));
    assert_int_equal(decode_once(f, n), CN_ETRAILING);
    static const char ok[] = {(char)0x95, CN_MSG_STOP, 1, 2, 3, (char)0xc0};
    n = frame_raw(f, ok, sizeof(ok));
    assert_int_equal(decode_once(f, n), 1);
    f[n] = 0;
    assert_int_equal(cn_wire_decode_frame(f, n + 1, 0, &m), CN_ETRAILING);

    /* CN_EBADTYPE: the message is a map, not an array; the type is a str;
     * a negative id; a typed body that is not an array; a field of the
     * wrong kind (HELLO's name as an int); a bin where only str will do. */
    static const char map[] = {(char)0x81, 1, 2};
    n = frame_raw(f, map, sizeof(map));
    assert_int_equal(decode_once(f, n), CN_EBADTYPE);
    static const char strtype[] = {(char)0x95, (char)0xa1, 'x', 1, 2, 3, (char)0xc0};
    n = frame_raw(f, strtype, sizeof(strtype));
    assert_int_equal(decode_once(f, n), CN_EBADTYPE);
    static const char negid[] = {(char)0x95, CN_MSG_STOP, (char)0xff, 2, 3, (char)0xc0};
    n = frame_raw(f, negid, sizeof(negid));
    assert_int_equal(decode_once(f, n), CN_EBADTYPE);
    /* ...but a signed int that is not negative is an id like any other
     * (msgpack-c reads it as positive), and cn_wire_peek agrees. */
    static const char int8type[] = {(char)0x95, (char)0xd0, CN_MSG_STOP, 1, 2, 3, (char)0xc0};
    n = frame_raw(f, int8type, sizeof(int8type));
    assert_int_equal(decode_once(f, n), 1);
    static const char negint16[] = {(char)0x95, CN_MSG_STOP, (char)0xd1, (char)0xff, 0, 2, 3,
                                    (char)0xc0};
    n = frame_raw(f, negint16, sizeof(negint16));
    assert_int_equal(decode_once(f, n), CN_EBADTYPE);
    static const char notarr[] = {(char)0xa1, 'x'};
    n = frame_with_body(f, CN_MSG_HELLO, notarr, sizeof(notarr));
    assert_int_equal(decode_once(f, n), CN_EBADTYPE);
    static const char hello_int_name[] = {(char)0x94, 1, 7, 100, 0};
    n = frame_with_body(f, CN_MSG_HELLO, hello_int_name, sizeof(hello_int_name));
    assert_int_equal(decode_once(f, n), CN_EBADTYPE);
    static const char dead_bin[] = {(char)0x91, (char)0xc4, 1, 'x'};
    n = frame_with_body(f, CN_MSG_DEAD, dead_bin, sizeof(dead_bin));
    assert_int_equal(decode_once(f, n), CN_EBADTYPE);
    /* ...while BYTES fields take bin or str. */
    static const char out_bin[] = {(char)0x91, (char)0xc4, 1, 'x'};
    n = frame_with_body(f, CN_MSG_CONSOLE_OUT, out_bin, sizeof(out_bin));
    assert_int_equal(decode_once(f, n), 1);

    /* CN_EMISSING: a four-element envelope; a HELLO body with two of its
     * four fields; a required field that is nil; a nil type. */
    static const char env4[] = {(char)0x94, CN_MSG_STOP, 1, 2, 3};
    n = frame_raw(f, env4, sizeof(env4));
    assert_int_equal(decode_once(f, n), CN_EMISSING);
    static const char hello2[] = {(char)0x92, 1, (char)0xa1, 'x'};
    n = frame_with_body(f, CN_MSG_HELLO, hello2, sizeof(hello2));
    assert_int_equal(decode_once(f, n), CN_EMISSING);
    static const char hello_nil[] = {(char)0x94, 1, (char)0xc0, 5, 6};
    n = frame_with_body(f, CN_MSG_HELLO, hello_nil, sizeof(hello_nil));
    assert_int_equal(decode_once(f, n), CN_EMISSING);
    static const char niltype[] = {(char)0x95, (char)0xc0, 1, 2, 3, (char)0xc0};
    n = frame_raw(f, niltype, sizeof(niltype));
    assert_int_equal(decode_once(f, n), CN_EMISSING);

    /* CN_EUNKNOWNMSG: type 0 and a type past the list. */
    static const char t0[] = {(char)0x95, 0, 1, 2, 3, (char)0xc0};
    n = frame_raw(f, t0, sizeof(t0));
    assert_int_equal(decode_once(f, n), CN_EUNKNOWNMSG);
    static const char t99[] = {(char)0x95, 99, 1, 2, 3, (char)0xc0};
    n = frame_raw(f, t99, sizeof(t99));
    assert_int_equal(decode_once(f, n), CN_EUNKNOWNMSG);

    /* CN_ERANGE: a dst that does not fit in 32 bits; an int field above
     * INT64_MAX. */
    static const char bigdst[] = {(char)0x95, CN_MSG_STOP, (char)0xcf, 0, 0, 0, 1,
                                  0,          0,           0,          0, 2, 3, (char)0xc0};
    n = frame_raw(f, bigdst, sizeof(bigdst));
    assert_int_equal(decode_once(f, n), CN_ERANGE);
    static const char bigcode[] = {(char)0x95, (char)0xa1, 'o',        (char)0xa1, 'f', (char)0xa1,
                                   'm',        (char)0xc0, (char)0xcf, (char)0x80, 0,   0,
                                   0,          0,          0,          0,          0};
    n = frame_with_body(f, CN_MSG_ERROR, bigcode, sizeof(bigcode));
    assert_int_equal(decode_once(f, n), CN_ERANGE);

    /* The codes really are distinct. */
    const int codes[] = {CN_EMSGSIZE, CN_ETRUNC,   CN_EBADMSGPACK, CN_ETRAILING,
                         CN_EBADTYPE, CN_EMISSING, CN_EUNKNOWNMSG, CN_ERANGE};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        for (size_t j = i + 1; j < sizeof(codes) / sizeof(codes[0]); j++)
            assert_int_not_equal(codes[i], codes[j]);
}

static void test_error_after_good_frames_is_sticky(void **state)
{
    (void)state;
    /* Two good frames then garbage: both good ones come out first. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    build_stream(&sb, 2);
    static const char bad[] = {0, 0, 0, 1, (char)0xc1};
    msgpack_sbuffer_write(&sb, bad, sizeof(bad));
    build_stream(&sb, 1);

    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    const char *p = sb.data;
    size_t left = sb.size, used;
    cn_wire_msg_t *m;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cn_wire_decode(&d, p, left, &used, &m), 1);
        check_sample(m, all_types[i], (uint64_t)i);
        cn_wire_msg_free(m);
        p += used, left -= used;
    }
    assert_int_equal(cn_wire_decode(&d, p, left, &used, &m), CN_EBADMSGPACK);
    assert_int_equal(used, sizeof(bad));
    p += used, left -= used;
    assert_int_equal(cn_wire_decode(&d, p, left, &used, &m), CN_EBADMSGPACK);
    assert_int_equal(used, 0);
    cn_wire_decoder_fini(&d);
    msgpack_sbuffer_destroy(&sb);
}

static void test_encoder_errors_leave_buffer_alone(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    build_stream(&sb, 3);
    size_t before = sb.size;

    /* A body bigger than the limit is refused and rolled back. */
    char blob[2000] = {0};
    msgpack_object o = {.type = MSGPACK_OBJECT_BIN};
    o.via.bin.ptr = blob;
    o.via.bin.size = sizeof(blob);
    cn_wire_hdr_t h = {CN_MSG_YIELD, 1, 2, 3};
    assert_int_equal(cn_wire_pack(&sb, &h, &o, 1000), CN_EMSGSIZE);
    assert_int_equal(sb.size, before);

    /* A raw body that is not exactly one msgpack object. */
    static const char two_objs[] = {1, 2}, half[] = {(char)0x92, 1}, c1[] = {(char)0xc1};
    assert_int_equal(cn_wire_pack_raw(&sb, &h, two_objs, sizeof(two_objs), 0), CN_EINVAL);
    assert_int_equal(cn_wire_pack_raw(&sb, &h, half, sizeof(half), 0), CN_EINVAL);
    assert_int_equal(cn_wire_pack_raw(&sb, &h, c1, sizeof(c1), 0), CN_EINVAL);
    assert_int_equal(cn_wire_pack_raw(&sb, &h, NULL, 0, 0), CN_EINVAL);
    assert_int_equal(sb.size, before);

    /* pack_typed only takes types with a typed body. */
    cn_wire_hello_t hello = {0};
    h.type = CN_MSG_YIELD;
    assert_int_equal(cn_wire_pack_typed(&sb, &h, &hello, 0), CN_EINVAL);
    h.type = 200;
    assert_int_equal(cn_wire_pack_typed(&sb, &h, &hello, 0), CN_EINVAL);
    assert_int_equal(sb.size, before);

    /* A good raw body works and decodes to the same object. */
    h.type = CN_MSG_RETURN;
    static const char raw[] = {(char)0x92, (char)0xa2, 'o', 'k', 7};
    assert_int_equal(cn_wire_pack_raw(&sb, &h, raw, sizeof(raw), 0), 0);
    cn_wire_msg_t *m;
    assert_int_equal(cn_wire_decode_frame(sb.data + before, sb.size - before, 0, &m), 0);
    assert_int_equal(m->body.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(m->body.via.array.ptr[1].via.u64, 7);
    cn_wire_msg_free(m);

    /* begin/end with a body packed by the caller, and a failed packing
     * reported through pack_rc. */
    before = sb.size;
    msgpack_packer pk;
    size_t mark;
    h.type = CN_MSG_STARTED;
    assert_int_equal(cn_wire_begin(&sb, &pk, &h, &mark), 0);
    assert_int_equal(mark, before);
    msgpack_pack_str_with_body(&pk, "started", 7);
    assert_int_equal(cn_wire_end(&sb, mark, 0, 0), 0);
    assert_int_equal(cn_wire_decode_frame(sb.data + before, sb.size - before, 0, &m), 0);
    assert_int_equal(m->body.type, MSGPACK_OBJECT_STR);
    cn_wire_msg_free(m);
    before = sb.size;
    assert_int_equal(cn_wire_begin(&sb, &pk, &h, &mark), 0);
    assert_int_equal(cn_wire_end(&sb, mark, -1, 0), CN_ENOMEM);
    assert_int_equal(sb.size, before);
    msgpack_sbuffer_destroy(&sb);

    cn_wire_msg_free(NULL); /* a no-op */
}

/* ------------------------------------------------- docs/protocol.md check */

/* Finds the next unescaped '|' (markdown writes a literal one as \|). */
static char *next_pipe(char *s)
{
    for (; *s; s++)
        if (*s == '|' && s[-1] != '\\') /* s > line: the row's first '|' precedes it */
            return s;
    return NULL;
}

/* Removes the backslash from each \| in place. */
static void unescape_pipes(char *s)
{
    char *w = s;
    for (; *s; s++)
        if (!(s[0] == '\\' && s[1] == '|'))
            *w++ = *s;
    *w = '\0';
}

/* Splits a markdown table row into trimmed cells; returns the count. */
static int split_row(char *line, char **cells, int max)
{
    int n = 0;
    char *p = strchr(line, '|');
    while (p && n < max) {
        char *start = p + 1, *end = next_pipe(start);
        if (end == NULL)
            break;
        *end = '\0';
        unescape_pipes(start);
        while (*start == ' ')
            start++;
        char *e = start + strlen(start);
        while (e > start && e[-1] == ' ')
            *--e = '\0';
        cells[n++] = start;
        p = end;
    }
    return n;
}

/* The body column the doc must show for `type`, generated from the codec. */
static void expected_body(uint32_t type, char *out, size_t cap)
{
    size_t n, len = 0;
    const cn_wire_field_t *f = cn_wire_fields(type, &n);
    if (f == NULL) {
        snprintf(out, cap, "payload");
        return;
    }
    len += (size_t)snprintf(out + len, cap - len, "[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s%s: %s", i ? ", " : "", f[i].name,
                                f[i].required ? "" : "?", cn_wire_kind_name(f[i].kind));
    snprintf(out + len, cap - len, "]");
}

static void test_protocol_doc_matches_codec(void **state)
{
    (void)state;
    const char *path = CN_TOP_SRCDIR "/docs/protocol.md";
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        fail_msg("cannot open %s", path);

    static const struct {
        const char *name;
        unsigned code;
        const char *block;
    } codec[] = {
#define T(name, code, block) {#name, code, #block},
        CN_WIRE_TYPES(T)
#undef T
    };
    int seen[sizeof(codec) / sizeof(codec[0])] = {0};
    char line[1024];
    int in_table = 0, rows = 0;

    while (fgets(line, sizeof(line), fp)) {
        line[strcspn(line, "\n")] = '\0';
        if (strstr(line, "<!-- message-types:begin -->")) {
            in_table = 1;
            continue;
        }
        if (strstr(line, "<!-- message-types:end -->"))
            break;
        if (!in_table || line[0] != '|' || strstr(line, "---") || strstr(line, "| code |"))
            continue;
        char *cells[8];
        int n = split_row(line, cells, 8);
        if (n < 6) {
            fail_msg("protocol.md: short row: %s", line);
            continue; /* not reached: cmocka 1.1.5 does not declare _fail noreturn */
        }
        unsigned code = (unsigned)strtoul(cells[0], NULL, 10);
        const char *name = cells[1];
        if (name[0] == '`')
            name++;
        char nm[64];
        snprintf(nm, sizeof(nm), "%s", name);
        nm[strcspn(nm, "`")] = '\0';
        size_t i;
        for (i = 0; i < sizeof(codec) / sizeof(codec[0]); i++)
            if (strcmp(codec[i].name, nm) == 0)
                break;
        if (i == sizeof(codec) / sizeof(codec[0]))
            fail_msg("protocol.md lists %s, which the codec does not have", nm);
        if (codec[i].code != code)
            fail_msg("protocol.md gives %s code %u, the codec %u", nm, code, codec[i].code);
        if (strcmp(codec[i].block, cells[2]) != 0)
            fail_msg("protocol.md puts %s in block '%s', the codec in '%s'", nm, cells[2],
                     codec[i].block);
        char want[256];
        expected_body(code, want, sizeof(want));
        if (strncmp(cells[3], want, strlen(want)) != 0 ||
            (want[0] == '[' && cells[3][strlen(want)] != '\0'))
            fail_msg("protocol.md body of %s is '%s'; the codec says '%s'", nm, cells[3], want);
        if (seen[i]++)
            fail_msg("protocol.md lists %s twice", nm);
        rows++;
    }
    fclose(fp);
    if (!in_table)
        fail_msg("protocol.md has no <!-- message-types:begin --> table");
    for (size_t i = 0; i < sizeof(codec) / sizeof(codec[0]); i++)
        if (!seen[i])
            fail_msg("protocol.md does not list %s (code %u)", codec[i].name, codec[i].code);
    assert_int_equal(rows, (int)NTYPES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_optional_fields_absent_or_nil),
        cmocka_unit_test(test_decode_peeked),
        cmocka_unit_test(test_flat_unpack_is_msgpack_unpack),
        cmocka_unit_test(test_msg_zone),
        cmocka_unit_test(test_spare_block),
        cmocka_unit_test(test_flat_bodies_measured_exactly),
        cmocka_unit_test(test_pack_env_is_pack),
        cmocka_unit_test(test_stream_1000_frames_every_split),
        cmocka_unit_test(test_large_frame_in_pieces),
        cmocka_unit_test(test_read_ends_after_prefix),
        cmocka_unit_test(test_oversize_length),
        cmocka_unit_test(test_huge_claimed_length_allocates_nothing),
        cmocka_unit_test(test_malformed_each_code),
        cmocka_unit_test(test_error_after_good_frames_is_sticky),
        cmocka_unit_test(test_encoder_errors_leave_buffer_alone),
        cmocka_unit_test(test_protocol_doc_matches_codec),
        cmocka_unit_test(test_table_as_maps),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
