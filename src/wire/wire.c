/*
 * wire.c: framing and the message codec.
 *
 * What it does: turns a byte stream into validated messages (cn_wire_decode)
 * and messages into frames appended to a buffer (cn_wire_pack*). What it
 * does not do: any I/O, routing, or interpretation beyond the shape checks
 * that docs/protocol.md makes part of the wire format.
 *
 * Decoding a frame is two passes over its body. wire_scan() measures it:
 * it walks the msgpack tokens, refuses anything truncated, trailing or
 * invalid, and counts the container slots. Only then does msgpack_unpack()
 * build objects, into a zone sized from that count, so one malloc holds the
 * message, its frame copy and its objects. The scan is also what makes
 * msgpack-c safe on hostile input: msgpack-c allocates a container's slots
 * as soon as it reads the header, so a five-byte body claiming 2^32 array
 * elements would otherwise ask for 96 GiB.
 *
 * Invariant: nothing is allocated for a frame until its length prefix has
 * been checked against max_frame, and a partial frame's buffer grows only
 * with bytes that have actually arrived.
 */
#include "wire.h"

#include <msgpack/unpack_define.h> /* MSGPACK_EMBED_STACK_SIZE */

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Tables generated from the lists in wire.h
 */

static const char *const type_names[CN_MSG_MAX_] = {
#define CN__WIRE_TYPE_NAME(name, code, block) [code] = #name,
    CN_WIRE_TYPES(CN__WIRE_TYPE_NAME)
#undef CN__WIRE_TYPE_NAME
};

#define CN__WIRE_FIELD_DESC(T, kind, field, req)                                                   \
    {#field, CN_WIRE_KIND_##kind, req, offsetof(T, field)},
#define CN__WIRE_BODY_DESC(name, member, FIELDS)                                                   \
    static const cn_wire_field_t member##_fields[] = {                                             \
        FIELDS(CN__WIRE_FIELD_DESC, cn_wire_##member##_t)};
CN_WIRE_BODIES(CN__WIRE_BODY_DESC)
#undef CN__WIRE_BODY_DESC
#undef CN__WIRE_FIELD_DESC

typedef struct body_desc {
    const cn_wire_field_t *fields;
    size_t n;
    size_t union_offset; /* of the body struct inside cn_wire_msg_t */
} body_desc_t;

static const body_desc_t bodies[CN_MSG_MAX_] = {
#define CN__WIRE_BODY_ENTRY(name, member, FIELDS)                                                  \
    [CN_MSG_##name] = {member##_fields, sizeof(member##_fields) / sizeof(member##_fields[0]),      \
                       offsetof(cn_wire_msg_t, u.member)},
    CN_WIRE_BODIES(CN__WIRE_BODY_ENTRY)
#undef CN__WIRE_BODY_ENTRY
};

const char *cn_wire_type_name(uint32_t type)
{
    if (type < CN_MSG_MAX_ && type_names[type] != NULL)
        return type_names[type];
    return "?";
}

const cn_wire_field_t *cn_wire_fields(uint32_t type, size_t *n)
{
    if (type < CN_MSG_MAX_ && bodies[type].fields != NULL) {
        *n = bodies[type].n;
        return bodies[type].fields;
    }
    *n = 0;
    return NULL;
}

const char *cn_wire_kind_name(cn_wire_kind_t kind)
{
    switch (kind) {
    case CN_WIRE_KIND_U64:
        return "uint";
    case CN_WIRE_KIND_I64:
        return "int";
    case CN_WIRE_KIND_STR:
        return "str";
    case CN_WIRE_KIND_BYTES:
        return "bin|str";
    case CN_WIRE_KIND_ANY:
        return "any";
    }
    return "?";
}

/* ---------------------------------------------------------------------------
 * The measuring scan
 */

/* A big-endian unsigned integer of n bytes (1, 2, 4 or 8). */
static uint64_t be_read(const uint8_t *p, unsigned n)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (n) {
    case 1:
        return p[0];
    case 2:
        memcpy(&v16, p, 2);
        return be16toh(v16);
    case 4:
        memcpy(&v32, p, 4);
        return be32toh(v32);
    default:
        memcpy(&v64, p, 8);
        return be64toh(v64);
    }
}

/* msgpack-c's parser keeps a fixed stack of this many open containers and
 * fails deeper input with a NOMEM code; the scan refuses it first, so that
 * NOMEM from msgpack_unpack() means memory. */
#define WIRE_MAX_DEPTH MSGPACK_EMBED_STACK_SIZE

/*
 * Steps over the head of the object at p[*i]: its type byte, any length
 * or count field, and a scalar's payload. Sets *items to the container
 * slots it claims (an array's elements, a map's keys and values) and
 * *container for an array or map, even an empty one. Checks the bytes
 * stepped over against len, not the items a container claims.
 */
static inline __attribute__((always_inline)) int scan_head(const uint8_t *p, size_t len, size_t *i,
                                                           uint64_t *items, int *container)
{
    uint8_t b = p[(*i)++];
    unsigned lenbytes = 0; /* size of a length field that follows */
    uint64_t skip = 0;     /* payload bytes after it */
    unsigned ext = 0;      /* ext's type byte */

    *items = 0;
    *container = 0;
    if (b <= 0x7f || b >= 0xe0) {
        /* fixint */
    } else if (b <= 0x8f) {
        *items = 2u * (b & 0x0f), *container = 1;
    } else if (b <= 0x9f) {
        *items = b & 0x0f, *container = 1;
    } else if (b <= 0xbf) {
        skip = b & 0x1f;
    } else {
        switch (b) {
        case 0xc0: /* nil */
        case 0xc2: /* false */
        case 0xc3: /* true */
            break;
        case 0xc4: /* bin 8/16/32, str 8/16/32 */
        case 0xd9:
            lenbytes = 1;
            break;
        case 0xc5:
        case 0xda:
            lenbytes = 2;
            break;
        case 0xc6:
        case 0xdb:
            lenbytes = 4;
            break;
        case 0xc7: /* ext 8/16/32 */
            lenbytes = 1, ext = 1;
            break;
        case 0xc8:
            lenbytes = 2, ext = 1;
            break;
        case 0xc9:
            lenbytes = 4, ext = 1;
            break;
        case 0xca: /* float 32/64 */
            skip = 4;
            break;
        case 0xcb:
            skip = 8;
            break;
        case 0xcc: /* uint and int 8/16/32/64 */
        case 0xd0:
            skip = 1;
            break;
        case 0xcd:
        case 0xd1:
            skip = 2;
            break;
        case 0xce:
        case 0xd2:
            skip = 4;
            break;
        case 0xcf:
        case 0xd3:
            skip = 8;
            break;
        case 0xd4: /* fixext 1/2/4/8/16: type byte, then data */
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            skip = 1 + (1u << (b - 0xd4));
            break;
        case 0xdc: /* array 16/32, map 16/32: count follows */
        case 0xde:
            if (len - *i < 2)
                return CN_ETRUNC;
            *items = be_read(p + *i, 2) * (b == 0xde ? 2 : 1), *container = 1;
            *i += 2;
            break;
        case 0xdd:
        case 0xdf:
            if (len - *i < 4)
                return CN_ETRUNC;
            *items = be_read(p + *i, 4) * (b == 0xdf ? 2 : 1), *container = 1;
            *i += 4;
            break;
        default: /* 0xc1 is never used */
            return CN_EBADMSGPACK;
        }
    }
    if (lenbytes > 0) {
        if (len - *i < lenbytes)
            return CN_ETRUNC;
        skip = be_read(p + *i, lenbytes) + ext;
        *i += lenbytes;
    }
    if (skip > len - *i)
        return CN_ETRUNC;
    *i += (size_t)skip;
    return 0;
}

/*
 * Checks that body[0..len) is exactly one msgpack object and sets *slots to
 * the number of container slots (array elements plus map keys and values)
 * it claims. Keeps `pending` (objects still owed) <= bytes left, since each
 * owed object needs at least one byte; that bounds *slots by len.
 * `open[]` holds the elements still owed by each open non-empty container.
 */
static int wire_scan(const uint8_t *p, size_t len, size_t *slots)
{
    size_t i = 0, pending = 1, nslots = 0;
    size_t open[WIRE_MAX_DEPTH + 1];
    unsigned depth = 0;

    open[0] = 1; /* the root object */
    while (pending > 0) {
        if (i >= len)
            return CN_ETRUNC;
        pending--;
        open[depth]--;
        uint64_t items;
        int container, rc = scan_head(p, len, &i, &items, &container);
        if (rc < 0)
            return rc;
        if (items > len - i || pending + items > len - i)
            return CN_ETRUNC;
        /* msgpack-c takes a stack slot for every container, an empty
         * one too, before it reads the count. */
        if (container && depth == WIRE_MAX_DEPTH)
            return CN_EBADMSGPACK;
        pending += (size_t)items;
        nslots += (size_t)items;
        if (items > 0)
            open[++depth] = (size_t)items;
        while (depth > 0 && open[depth] == 0)
            depth--;
    }
    if (i != len)
        return CN_ETRAILING;
    *slots = nslots;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Building a message from a whole frame
 */

/* The frame limit callers mean: 0 is the default, and no body can be
 * longer than a 32-bit length prefix says. */
static size_t frame_limit(size_t max_frame)
{
    if (max_frame == 0)
        return CN_WIRE_DEFAULT_MAX_FRAME;
    return max_frame > UINT32_MAX ? UINT32_MAX : max_frame;
}

static int check_field(const cn_wire_field_t *f, const msgpack_object *o, void *dst)
{
    if (f->kind != CN_WIRE_KIND_ANY && o->type == MSGPACK_OBJECT_NIL)
        return f->required ? CN_EMISSING : 0; /* optional nil: leave zeroed */

    switch (f->kind) {
    case CN_WIRE_KIND_U64:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return CN_EBADTYPE;
        *(uint64_t *)dst = o->via.u64;
        return 0;
    case CN_WIRE_KIND_I64:
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            *(int64_t *)dst = o->via.i64;
            return 0;
        }
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return CN_EBADTYPE;
        if (o->via.u64 > INT64_MAX)
            return CN_ERANGE;
        *(int64_t *)dst = (int64_t)o->via.u64;
        return 0;
    case CN_WIRE_KIND_STR:
    case CN_WIRE_KIND_BYTES: {
        cn_wire_str_t *s = dst;
        if (o->type == MSGPACK_OBJECT_STR) {
            s->ptr = o->via.str.ptr;
            s->len = o->via.str.size;
        } else if (o->type == MSGPACK_OBJECT_BIN && f->kind == CN_WIRE_KIND_BYTES) {
            s->ptr = o->via.bin.ptr;
            s->len = o->via.bin.size;
        } else {
            return CN_EBADTYPE;
        }
        if (s->ptr == NULL)
            s->ptr = ""; /* msgpack-c may leave an empty str's pointer NULL */
        return 0;
    }
    case CN_WIRE_KIND_ANY:
        *(msgpack_object *)dst = *o;
        return 0;
    }
    return CN_EBADTYPE;
}

static int check_body(cn_wire_msg_t *m)
{
    const body_desc_t *bd = &bodies[m->hdr.type];
    if (bd->fields == NULL)
        return 0; /* an opaque payload */
    if (m->body.type != MSGPACK_OBJECT_ARRAY)
        return CN_EBADTYPE;

    const msgpack_object_array *a = &m->body.via.array;
    char *base = (char *)m + bd->union_offset;
    for (size_t i = 0; i < bd->n; i++) {
        const cn_wire_field_t *f = &bd->fields[i];
        if (i >= a->size) {
            if (f->required)
                return CN_EMISSING;
            continue;
        }
        int rc = check_field(f, &a->ptr[i], base + f->offset);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_envelope(const uint8_t *p, size_t len, cn_wire_memo_t *memo, cn_wire_hdr_t *hdr,
                         size_t *slots, size_t *body_off, size_t *nelem);

/* Whether the msgpack object whose first byte is b holds no array or map,
 * and so needs no object slots to unpack. */
static int is_flat(uint8_t b)
{
    return !((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf));
}

/*
 * Unpacks the object at p[0..len), whose first byte is_flat(), into *o as
 * msgpack_unpack() does, and sets *used to its length. A str, bin or ext
 * points into p, as msgpack_unpack() leaves it. This is the one object a
 * stream's message usually is, and msgpack-c's parser spends on setting
 * itself up four times what reading it takes (test_wire and fuzz_wire
 * compare the two on every kind). Returns 0, CN_ETRUNC (msgpack-c's
 * CONTINUE) or CN_EBADMSGPACK (0xc1, its PARSE_ERROR).
 */
static int unpack_flat(const uint8_t *p, size_t len, size_t *used, msgpack_object *o)
{
    uint8_t b = p[0];
    size_t i = 1, n = 0; /* where the data starts; its length */
    if (b <= 0x7f || b >= 0xe0) { /* fixint */
        o->type = b <= 0x7f ? MSGPACK_OBJECT_POSITIVE_INTEGER : MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (b <= 0x7f)
            o->via.u64 = b;
        else
            o->via.i64 = (int64_t)b - 0x100; /* 0xe0..0xff: -32..-1 */
        *used = 1;
        return 0;
    }
    if (b >= 0xa0 && b <= 0xbf) { /* fixstr */
        o->type = MSGPACK_OBJECT_STR;
        n = b & 0x1f;
    } else {
        unsigned w = 0; /* the width of a length field, or of a number */
        switch (b) {
        case 0xc0:
            o->type = MSGPACK_OBJECT_NIL;
            break;
        case 0xc2:
        case 0xc3:
            o->type = MSGPACK_OBJECT_BOOLEAN;
            o->via.boolean = b == 0xc3;
            break;
        case 0xc4: /* bin 8/16/32 */
        case 0xc5:
        case 0xc6:
            o->type = MSGPACK_OBJECT_BIN;
            w = 1u << (b - 0xc4);
            break;
        case 0xd9: /* str 8/16/32 */
        case 0xda:
        case 0xdb:
            o->type = MSGPACK_OBJECT_STR;
            w = 1u << (b - 0xd9);
            break;
        case 0xc7: /* ext 8/16/32: the length does not count the type byte */
        case 0xc8:
        case 0xc9:
            o->type = MSGPACK_OBJECT_EXT;
            w = 1u << (b - 0xc7);
            break;
        case 0xd4: /* fixext 1/2/4/8/16 */
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            o->type = MSGPACK_OBJECT_EXT;
            n = 1u << (b - 0xd4);
            break;
        case 0xca:
        case 0xcb:
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3:
            /* float 32/64, uint 8..64, int 8..64: the value, and with it
             * the type, is read below */
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            n = b <= 0xcb ? 4u << (b - 0xca) : 1u << ((b - 0xcc) & 3);
            break;
        default: /* 0xc1 is never used */
            return CN_EBADMSGPACK;
        }
        if (w > 0) {
            if (len - i < w)
                return CN_ETRUNC;
            n = (size_t)be_read(p + i, w);
            i += w;
            /* msgpack-c adds the type byte to an ext's length in 32 bits,
             * and fails the one that wraps */
            if (o->type == MSGPACK_OBJECT_EXT && n == UINT32_MAX)
                return CN_EBADMSGPACK;
        }
        if (o->type == MSGPACK_OBJECT_EXT) { /* its type byte, then data */
            if (len - i < 1)
                return CN_ETRUNC;
            o->via.ext.type = (int8_t)p[i++];
        }
    }
    if (n > len - i)
        return CN_ETRUNC;
    *used = i + n;
    const uint8_t *d = p + i;
    if (b >= 0xca && b <= 0xd3) {
        uint64_t v = be_read(d, (unsigned)n);
        if (b == 0xca) {
            float f;
            uint32_t v32 = (uint32_t)v;
            memcpy(&f, &v32, 4);
            o->type = MSGPACK_OBJECT_FLOAT32;
            o->via.f64 = f;
        } else if (b == 0xcb) {
            o->type = MSGPACK_OBJECT_FLOAT64;
            memcpy(&o->via.f64, &v, 8);
        } else if (b >= 0xd0 && v >> (8 * n - 1)) { /* a negative int */
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = n == 8 ? (int64_t)v : (int64_t)(v | (~UINT64_C(0) << (8 * n)));
        } else {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = v;
        }
    } else if (o->type == MSGPACK_OBJECT_STR) {
        o->via.str.ptr = (const char *)d;
        o->via.str.size = (uint32_t)n;
    } else if (o->type == MSGPACK_OBJECT_BIN) {
        o->via.bin.ptr = (const char *)d;
        o->via.bin.size = (uint32_t)n;
    } else if (o->type == MSGPACK_OBJECT_EXT) {
        o->via.ext.ptr = (const char *)d;
        o->via.ext.size = (uint32_t)n;
    }
    return 0;
}

/*
 * One spare message block per thread. A stream's reader decodes each
 * message into a block of its own, and its program frees that before it
 * takes the next (cn_result_free), so the block just freed is the one the
 * next decode needs: keeping it saves a malloc and a free, a quarter of
 * what the reader spends on a small message. Blocks of SPARE_BYTES are
 * kept, one at a time, so that any small message fits; a thread that
 * exits frees its spare. Not under AddressSanitizer, whose quarantine of
 * freed blocks is what catches a message used after it was freed.
 */
#if defined(__SANITIZE_ADDRESS__)
#define CN_WIRE_NO_SPARE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CN_WIRE_NO_SPARE 1
#endif
#endif
#define SPARE_BYTES 512

#ifndef CN_WIRE_NO_SPARE
static __thread cn_wire_msg_t *tl_spare;
static __thread int tl_spare_ok; /* 1: the key will free it; -1: no key */
static pthread_key_t spare_key;
static int spare_key_made;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_drop(void *unused)
{
    (void)unused;
    free(tl_spare);
    tl_spare = NULL;
    tl_spare_ok = -1; /* the thread is ending: a later free is a free */
}

static void spare_key_make(void)
{
    spare_key_made = pthread_key_create(&spare_key, spare_drop) == 0;
}

/* Whether this thread may keep a spare: one that its exit frees. */
static int spare_ok(void)
{
    if (tl_spare_ok == 0) {
        pthread_once(&spare_once, spare_key_make);
        tl_spare_ok = spare_key_made && pthread_setspecific(spare_key, &tl_spare) == 0 ? 1 : -1;
    }
    return tl_spare_ok > 0;
}
#endif

/* A block for a message and its frame, `need` bytes in all; its size is
 * put in *size. */
static cn_wire_msg_t *block_alloc(size_t need, size_t *size)
{
    *size = need;
#ifndef CN_WIRE_NO_SPARE
    if (need <= SPARE_BYTES) {
        *size = SPARE_BYTES;
        cn_wire_msg_t *m = tl_spare;
        tl_spare = NULL;
        return m ? m : malloc(SPARE_BYTES);
    }
#endif
    return malloc(need);
}

static void block_free(cn_wire_msg_t *m)
{
#ifndef CN_WIRE_NO_SPARE
    if (m->block == SPARE_BYTES && tl_spare == NULL && spare_ok()) {
        tl_spare = m;
        return;
    }
#endif
    free(m);
}

/* msgpack_unpack(), through unpack_flat() where that can take the object
 * (then z, which it does not use, may be NULL). */
static msgpack_unpack_return unpack_body(const char *p, size_t len, size_t *off, msgpack_zone *z,
                                         msgpack_object *o)
{
    if (len == 0 || !is_flat((uint8_t)p[0]))
        return msgpack_unpack(p, len, off, z, o);
    int rc = unpack_flat((const uint8_t *)p, len, off, o);
    if (rc == CN_ETRUNC)
        return MSGPACK_UNPACK_CONTINUE;
    if (rc < 0)
        return MSGPACK_UNPACK_PARSE_ERROR;
    return *off < len ? MSGPACK_UNPACK_EXTRA_BYTES : MSGPACK_UNPACK_SUCCESS;
}

/* Builds a message from the 4-byte prefix and a body of body_len bytes
 * whose envelope has been read: `slots` container slots in all, the body
 * proper at body_off, nelem envelope elements. */
static int build_msg(const uint8_t *prefix, const char *body, size_t body_len,
                     const cn_wire_hdr_t *hdr, size_t slots, size_t body_off, size_t nelem,
                     cn_wire_msg_t **out)
{
    int rc;
    size_t frame_len = CN_WIRE_LEN_SIZE + body_len;
    cn_wire_msg_t *m;
    char *frame;
    msgpack_zone z;
    /* A body that holds no array or map needs no object slots, so no zone:
     * the struct and the frame's copy are one block (a stream's message
     * costs a third less to build and free). Otherwise one chunk for the
     * struct, the frame copy and every object, plus alignment slack; if
     * the estimate were short the zone would just take another chunk. */
    size_t block = 0; /* the block's size, if it is one */
    if (body_off < body_len && is_flat((uint8_t)body[body_off])) {
        m = block_alloc(sizeof(*m) + frame_len, &block);
        frame = m ? (char *)(m + 1) : NULL;
    } else {
        size_t chunk = sizeof(cn_wire_msg_t) + frame_len + slots * sizeof(msgpack_object) + 32;
        if (!msgpack_zone_init(&z, chunk))
            return CN_ENOMEM;
        m = msgpack_zone_malloc(&z, sizeof(*m));
        frame = m ? msgpack_zone_malloc_no_align(&z, frame_len) : NULL;
        if (frame == NULL)
            msgpack_zone_destroy(&z);
    }
    if (frame == NULL)
        return CN_ENOMEM;
    if (block) /* u, the typed bodies' union, is never read: its body is flat */
        memset(&m->zone, 0, sizeof(m->zone));
    else
        memset(m, 0, sizeof(*m));
    m->block = block;
    memcpy(frame, prefix, CN_WIRE_LEN_SIZE);
    memcpy(frame + CN_WIRE_LEN_SIZE, body, body_len);
    m->frame = frame;
    m->frame_len = frame_len;
    m->hdr = *hdr;

    /* The envelope is read: only the body (its fifth element) is
     * unpacked, which is most of the saving on a small message. Elements
     * after it, which this version does not know, are skipped. */
    size_t off = 0;
    switch (unpack_body(frame + CN_WIRE_LEN_SIZE + body_off, body_len - body_off, &off,
                        block ? NULL : &z, &m->body)) {
    case MSGPACK_UNPACK_SUCCESS:
        rc = check_body(m);
        break;
    case MSGPACK_UNPACK_EXTRA_BYTES: /* the elements after the body */
        rc = nelem > 5 ? check_body(m) : CN_ETRAILING;
        break;
    case MSGPACK_UNPACK_CONTINUE: /* the scan rules these out; kept for safety */
        rc = CN_ETRUNC;
        break;
    case MSGPACK_UNPACK_NOMEM_ERROR: /* never too deep: the scan checked */
        rc = CN_ENOMEM;
        break;
    default: /* PARSE_ERROR: the scan rules these out too */
        rc = CN_EBADMSGPACK;
        break;
    }
    if (rc < 0) {
        if (block)
            block_free(m);
        else
            msgpack_zone_destroy(&z);
        return rc;
    }
    if (!block)
        m->zone = z; /* from here on the message owns the zone that holds it */
    *out = m;
    return 0;
}

/* Builds a message from the 4-byte prefix and a body of body_len bytes. */
static int decode_body(const uint8_t *prefix, const char *body, size_t body_len,
                       cn_wire_msg_t **out)
{
    cn_wire_hdr_t hdr;
    memset(&hdr, 0, sizeof(hdr)); /* padding too: messages are compared whole */
    size_t slots, body_off, nelem;
    int rc =
        read_envelope((const uint8_t *)body, body_len, NULL, &hdr, &slots, &body_off, &nelem);
    if (rc < 0)
        return rc;
    return build_msg(prefix, body, body_len, &hdr, slots, body_off, nelem, out);
}

void cn_wire_msg_free(cn_wire_msg_t *msg)
{
    if (msg == NULL)
        return;
    if (msg->block) {
        if (msg->zone.chunk_size != 0) /* made by cn_wire_msg_zone */
            msgpack_zone_destroy(&msg->zone);
        block_free(msg);
        return;
    }
    /* The zone struct lives inside memory the zone owns: move it out first. */
    msgpack_zone z = msg->zone;
    msgpack_zone_destroy(&z);
}

msgpack_zone *cn_wire_msg_zone(cn_wire_msg_t *msg)
{
    /* msgpack_zone_init sets chunk_size; memset left it 0 in a block */
    if (msg->block && msg->zone.chunk_size == 0 && !msgpack_zone_init(&msg->zone, 1024)) {
        msg->zone.chunk_size = 0; /* set before its malloc failed: none made */
        return NULL;
    }
    return &msg->zone;
}

int cn_wire_decode_frame(const void *frame, size_t len, size_t max_frame, cn_wire_msg_t **out)
{
    const uint8_t *p = frame;
    *out = NULL;
    max_frame = frame_limit(max_frame);
    if (len < CN_WIRE_LEN_SIZE)
        return CN_ETRUNC;
    uint64_t body_len = be_read(p, CN_WIRE_LEN_SIZE);
    if (body_len > max_frame)
        return CN_EMSGSIZE;
    if (body_len == 0 || body_len > len - CN_WIRE_LEN_SIZE)
        return CN_ETRUNC;
    if (body_len < len - CN_WIRE_LEN_SIZE)
        return CN_ETRAILING;
    return decode_body(p, (const char *)p + CN_WIRE_LEN_SIZE, (size_t)body_len, out);
}

int cn_wire_decode_body(const void *body, size_t len, cn_wire_msg_t **out)
{
    uint8_t prefix[CN_WIRE_LEN_SIZE];
    *out = NULL;
    if (len == 0)
        return CN_ETRUNC;
    if (len > UINT32_MAX)
        return CN_EMSGSIZE;
    cn_wire_put_len(prefix, len);
    return decode_body(prefix, body, len, out);
}

/* Reads one envelope field at p[*i]: a positive integer, or the code a
 * bad envelope gets (CN_ETRUNC past len, which a scanned body never is). */
static int peek_uint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    if (*i >= len)
        return CN_ETRUNC;
    uint8_t b = p[(*i)++];
    if (b <= 0x7f) {
        *v = b;
        return 0;
    }
    if (b >= 0xcc && b <= 0xd3) { /* uint 8..64, int 8..64 */
        unsigned n = 1u << ((b - 0xcc) & 3);
        if (len - *i < n)
            return CN_ETRUNC;
        *v = be_read(p + *i, n);
        *i += n;
        /* msgpack-c reads a signed int that is not negative as positive */
        if (b >= 0xd0 && (*v >> (8 * n - 1)) != 0)
            return CN_EBADTYPE;
        return 0;
    }
    return b == 0xc0 ? CN_EMISSING : CN_EBADTYPE;
}

/* The envelope's four integers from p[*i] into *hdr (type, dst, src, cid),
 * checked; *i ends where the body proper starts. */
static int read_header(const uint8_t *p, size_t len, size_t *i, cn_wire_hdr_t *hdr)
{
    uint64_t e[4];
    int rc;
    for (int k = 0; k < 4; k++)
        if ((rc = peek_uint(p, len, i, &e[k])) < 0)
            return rc;
    if (e[0] == CN_MSG_INVALID || e[0] >= CN_MSG_MAX_)
        return CN_EUNKNOWNMSG;
    if (e[1] > UINT32_MAX || e[2] > UINT32_MAX)
        return CN_ERANGE;
    hdr->type = (uint32_t)e[0];
    hdr->dst = (uint32_t)e[1];
    hdr->src = (uint32_t)e[2];
    hdr->cid = e[3];
    return 0;
}

/* memcmp(a, b, n) == 0 for the few bytes of an envelope, inline: the
 * call to memcmp cost more than the comparing, twice a message. */
static inline int same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t k = 0;
    for (uint64_t x, y; k + 8 <= n; k += 8) {
        memcpy(&x, a + k, 8);
        memcpy(&y, b + k, 8);
        if (x != y)
            return 0;
    }
    for (; k < n; k++)
        if (a[k] != b[k])
            return 0;
    return 1;
}

/* read_header for a body that starts with the fixarray of five (p[0] is
 * 0x95, *i is 1), through the memo: the same bytes as the last envelope
 * read through it are that envelope. */
static inline __attribute__((always_inline)) int
read_header_memo(const uint8_t *p, size_t len, size_t *i, cn_wire_hdr_t *hdr, cn_wire_memo_t *memo)
{
    if (memo == NULL)
        return read_header(p, len, i, hdr);
    if (memo->len > 0 && len > memo->len && same_bytes(p, memo->b, memo->len)) {
        /* field by field: *hdr's padding stays as its caller set it */
        hdr->type = memo->hdr.type;
        hdr->dst = memo->hdr.dst;
        hdr->src = memo->hdr.src;
        hdr->cid = memo->hdr.cid;
        *i = memo->len;
        return 0;
    }
    int rc = read_header(p, len, i, hdr);
    if (rc == 0 && *i <= sizeof(memo->b)) {
        memcpy(memo->b, p, *i);
        memo->len = (unsigned char)*i;
        memo->hdr.type = hdr->type;
        memo->hdr.dst = hdr->dst;
        memo->hdr.src = hdr->src;
        memo->hdr.cid = hdr->cid;
    }
    return rc;
}

int cn_wire_peek(const void *body, size_t len, cn_wire_hdr_t *hdr)
{
    size_t off, plen;
    return cn_wire_peek_payload(body, len, NULL, hdr, &off, &plen);
}

/*
 * Measures a body (wire_scan) and reads its envelope from the bytes:
 * the header, the number of elements, and where the fifth (the body
 * proper) starts. The scan has shown every element to be a whole object,
 * so the reads below stay inside p[0..len).
 */
static int read_envelope(const uint8_t *p, size_t len, cn_wire_memo_t *memo, cn_wire_hdr_t *hdr,
                         size_t *slots, size_t *body_off, size_t *nelem)
{
    size_t i = 1, n;
    /* The common body first: five elements, the last without arrays or
     * maps (a stream's message), measured without the general scan. Any
     * other body, a bad one included, takes the scan, which explains it. */
    size_t start = 1;
    if (len > 1 && p[0] == 0x95 && read_header_memo(p, len, &start, hdr, memo) == 0 &&
        start < len) {
        size_t end = start;
        uint64_t items;
        int container;
        if (scan_head(p, len, &end, &items, &container) == 0 && !container && end == len) {
            *slots = 5; /* as the scan counts: the envelope's elements */
            *body_off = start;
            *nelem = 5;
            return 0;
        }
    }
    int rc = wire_scan(p, len, slots);
    if (rc < 0)
        return rc;
    if (p[0] >= 0x90 && p[0] <= 0x9f) {
        n = p[0] & 0x0f;
    } else if (p[0] == 0xdc || p[0] == 0xdd) {
        unsigned w = p[0] == 0xdc ? 2 : 4;
        n = (size_t)be_read(p + 1, w);
        i += w;
    } else {
        return CN_EBADTYPE;
    }
    if (n < 5)
        return CN_EMISSING;
    if ((rc = read_header(p, len, &i, hdr)) < 0)
        return rc;
    *body_off = i;
    *nelem = n;
    return 0;
}

int cn_wire_peek_payload(const void *body, size_t len, cn_wire_memo_t *memo, cn_wire_hdr_t *hdr,
                         size_t *payload_off, size_t *payload_len)
{
    size_t slots, off, n;
    int rc = read_envelope(body, len, memo, hdr, &slots, &off, &n);
    if (rc < 0)
        return rc;
    /* With exactly five elements the payload runs to the end. */
    *payload_off = n == 5 ? off : 0;
    *payload_len = n == 5 ? len - off : 0;
    return 0;
}

/*
 * wire.h. The bytes were scanned when they were peeked: what is left to
 * do is the envelope's four integers, and the unpacking. A payload with
 * containers needs the scan's count of slots to size the zone, so it
 * (and any envelope but the plain five elements) takes the checked path.
 */
int cn_wire_decode_peeked(const void *frame, size_t len, cn_wire_memo_t *memo,
                          cn_wire_msg_t **out)
{
    const uint8_t *body = (const uint8_t *)frame + CN_WIRE_LEN_SIZE;
    size_t body_len = len - CN_WIRE_LEN_SIZE, i = 1;
    cn_wire_hdr_t hdr;
    memset(&hdr, 0, sizeof(hdr)); /* as decode_body does */
    *out = NULL;
    if (len > CN_WIRE_LEN_SIZE && body[0] == 0x95 && /* fixarray of five */
        read_header_memo(body, body_len, &i, &hdr, memo) == 0 && i < body_len &&
        is_flat(body[i]))
        return build_msg(frame, (const char *)body, body_len, &hdr, 0, i, 5, out);
    return cn_wire_decode_frame(frame, len, UINT32_MAX, out);
}

/* ---------------------------------------------------------------------------
 * The incremental decoder
 */

/* A partial-frame buffer larger than this is freed rather than kept. */
#define PEND_KEEP (64u * 1024)
#define PEND_MIN 4096u

void cn_wire_decoder_init(cn_wire_decoder_t *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = frame_limit(max_frame);
}

void cn_wire_decoder_fini(cn_wire_decoder_t *d)
{
    free(d->pend);
    d->pend = NULL;
    d->pend_cap = d->pend_have = 0;
    d->pend_out = 0;
}

static int decoder_fail(cn_wire_decoder_t *d, int rc)
{
    d->err = rc;
    cn_wire_decoder_fini(d);
    return rc;
}

/* Makes room in pend for `want` bytes in all (want <= body_len). */
static int pend_reserve(cn_wire_decoder_t *d, size_t want)
{
    if (want <= d->pend_cap)
        return 0;
    size_t cap = 2 * want;
    if (cap < PEND_MIN)
        cap = PEND_MIN;
    if (cap > d->body_len)
        cap = d->body_len;
    char *p = realloc(d->pend, cap);
    if (p == NULL)
        return CN_ENOMEM;
    d->pend = p;
    d->pend_cap = cap;
    return 0;
}

int cn_wire_next_frame(cn_wire_decoder_t *d, const void *buf, size_t len, size_t *used,
                       const char **body, size_t *body_len)
{
    const char *p = buf;
    size_t left = len;

    *body = NULL;
    *body_len = 0;
    *used = 0;
    if (d->err)
        return d->err;
    if (d->pend_out) {
        /* The frame handed out last time was assembled in pend: done with. */
        d->pend_out = 0;
        if (d->pend_cap > PEND_KEEP)
            cn_wire_decoder_fini(d);
    }

    /* The common case first: a whole frame at the start of buf. */
    if (d->len_have == 0 && d->pend_have == 0 && left > CN_WIRE_LEN_SIZE) {
        uint64_t blen = be_read((const uint8_t *)p, CN_WIRE_LEN_SIZE);
        if (blen > 0 && blen <= d->max_frame && blen <= left - CN_WIRE_LEN_SIZE) {
            d->body_len = (uint32_t)blen;
            *body = p + CN_WIRE_LEN_SIZE;
            *body_len = (size_t)blen;
            *used = CN_WIRE_LEN_SIZE + (size_t)blen;
            d->frames++;
            return 1;
        }
    }

    if (d->len_have < CN_WIRE_LEN_SIZE) {
        size_t n = CN_WIRE_LEN_SIZE - d->len_have;
        if (n > left)
            n = left;
        memcpy(d->lenbuf + d->len_have, p, n);
        d->len_have += (unsigned)n;
        p += n, left -= n;
        *used = len - left;
        if (d->len_have < CN_WIRE_LEN_SIZE)
            return 0;
        uint64_t blen = be_read(d->lenbuf, CN_WIRE_LEN_SIZE);
        if (blen > d->max_frame)
            return decoder_fail(d, CN_EMSGSIZE);
        if (blen == 0)
            return decoder_fail(d, CN_ETRUNC);
        d->body_len = (uint32_t)blen;
    }
    if (left == 0)
        return 0; /* the read ended right after the prefix */

    if (d->pend_have == 0 && left >= d->body_len) {
        /* The common case: the whole body is in the caller's buffer. */
        *body = p;
        left -= d->body_len;
        d->len_have = 0;
    } else {
        size_t n = d->body_len - d->pend_have;
        if (n > left)
            n = left;
        int rc = pend_reserve(d, d->pend_have + n);
        if (rc < 0)
            return decoder_fail(d, rc);
        memcpy(d->pend + d->pend_have, p, n);
        d->pend_have += n;
        left -= n;
        *used = len - left;
        if (d->pend_have < d->body_len)
            return 0;
        *body = d->pend; /* released on the next call */
        d->pend_have = 0;
        d->len_have = 0;
        d->pend_out = 1;
    }
    *body_len = d->body_len;
    *used = len - left;
    d->frames++;
    return 1;
}

int cn_wire_decode(cn_wire_decoder_t *d, const void *buf, size_t len, size_t *used,
                   cn_wire_msg_t **out)
{
    const char *body;
    size_t body_len;
    *out = NULL;
    int rc = cn_wire_next_frame(d, buf, len, used, &body, &body_len);
    if (rc != 1)
        return rc;
    rc = cn_wire_decode_body(body, body_len, out);
    if (d->pend_out) { /* the message holds its own copy */
        d->pend_out = 0;
        if (d->pend_cap > PEND_KEEP)
            cn_wire_decoder_fini(d);
    }
    if (rc < 0) {
        d->frames--;
        return decoder_fail(d, rc);
    }
    return 1;
}

/* ---------------------------------------------------------------------------
 * Encoding
 */

int cn_wire_begin(msgpack_sbuffer *sb, msgpack_packer *pk, const cn_wire_hdr_t *hdr, size_t *mark)
{
    static const char zero[CN_WIRE_LEN_SIZE];
    *mark = sb->size;
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    if (msgpack_sbuffer_write(sb, zero, sizeof(zero)) != 0 || msgpack_pack_array(pk, 5) != 0 ||
        msgpack_pack_uint32(pk, hdr->type) != 0 || msgpack_pack_uint32(pk, hdr->dst) != 0 ||
        msgpack_pack_uint32(pk, hdr->src) != 0 || msgpack_pack_uint64(pk, hdr->cid) != 0) {
        sb->size = *mark;
        return CN_ENOMEM;
    }
    return 0;
}

int cn_wire_end(msgpack_sbuffer *sb, size_t mark, int pack_rc, size_t max_frame)
{
    max_frame = frame_limit(max_frame);
    if (pack_rc != 0) {
        sb->size = mark;
        return CN_ENOMEM;
    }
    size_t body_len = sb->size - mark - CN_WIRE_LEN_SIZE;
    if (body_len > max_frame) {
        sb->size = mark;
        return CN_EMSGSIZE;
    }
    cn_wire_put_len(sb->data + mark, body_len);
    return 0;
}

int cn_wire_pack(msgpack_sbuffer *sb, const cn_wire_hdr_t *hdr, const msgpack_object *body,
                 size_t max_frame)
{
    msgpack_packer pk;
    size_t mark;
    int rc = cn_wire_begin(sb, &pk, hdr, &mark);
    if (rc < 0)
        return rc;
    rc = body ? msgpack_pack_object(&pk, *body) : msgpack_pack_nil(&pk);
    return cn_wire_end(sb, mark, rc, max_frame);
}

int cn_wire_env_init(cn_wire_env_t *env, const cn_wire_hdr_t *hdr)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t mark;
    msgpack_sbuffer_init(&sb);
    int rc = cn_wire_begin(&sb, &pk, hdr, &mark);
    if (rc == 0 && sb.size <= sizeof(env->b)) {
        memcpy(env->b, sb.data, sb.size);
        env->len = (unsigned char)sb.size;
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

int cn_wire_pack_env(msgpack_sbuffer *sb, const cn_wire_env_t *env, const msgpack_object *body,
                     size_t max_frame)
{
    size_t mark = sb->size;
    if (env->len == 0)
        return CN_EINVAL;
    if (msgpack_sbuffer_write(sb, (const char *)env->b, env->len) != 0)
        return CN_ENOMEM;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = body ? msgpack_pack_object(&pk, *body) : msgpack_pack_nil(&pk);
    return cn_wire_end(sb, mark, rc, max_frame);
}

int cn_wire_pack_raw(msgpack_sbuffer *sb, const cn_wire_hdr_t *hdr, const void *body, size_t len,
                     size_t max_frame)
{
    size_t slots;
    if (body == NULL || wire_scan(body, len, &slots) < 0)
        return CN_EINVAL; /* not exactly one msgpack object */

    msgpack_packer pk;
    size_t mark;
    int rc = cn_wire_begin(sb, &pk, hdr, &mark);
    if (rc < 0)
        return rc;
    rc = msgpack_sbuffer_write(sb, body, len);
    return cn_wire_end(sb, mark, rc, max_frame);
}

static int pack_field(msgpack_packer *pk, const cn_wire_field_t *f, const void *src)
{
    switch (f->kind) {
    case CN_WIRE_KIND_U64:
        return msgpack_pack_uint64(pk, *(const uint64_t *)src);
    case CN_WIRE_KIND_I64:
        return msgpack_pack_int64(pk, *(const int64_t *)src);
    case CN_WIRE_KIND_STR:
    case CN_WIRE_KIND_BYTES: {
        const cn_wire_str_t *s = src;
        if (s->ptr == NULL && !f->required)
            return msgpack_pack_nil(pk);
        if (f->kind == CN_WIRE_KIND_BYTES)
            return msgpack_pack_bin_with_body(pk, s->ptr, s->len);
        return msgpack_pack_str_with_body(pk, s->ptr, s->len);
    }
    case CN_WIRE_KIND_ANY:
        return msgpack_pack_object(pk, *(const msgpack_object *)src);
    }
    return -1;
}

int cn_wire_pack_typed(msgpack_sbuffer *sb, const cn_wire_hdr_t *hdr, const void *body,
                       size_t max_frame)
{
    if (hdr->type >= CN_MSG_MAX_ || bodies[hdr->type].fields == NULL || body == NULL)
        return CN_EINVAL;
    const body_desc_t *bd = &bodies[hdr->type];

    msgpack_packer pk;
    size_t mark;
    int rc = cn_wire_begin(sb, &pk, hdr, &mark);
    if (rc < 0)
        return rc;
    rc = msgpack_pack_array(&pk, bd->n);
    for (size_t i = 0; i < bd->n && rc == 0; i++)
        rc = pack_field(&pk, &bd->fields[i], (const char *)body + bd->fields[i].offset);
    return cn_wire_end(sb, mark, rc, max_frame);
}

/* canopy/client.h. Here, with the codec, because the runtime reads maps
 * with it too, and so that a tree's program linked statically does not
 * carry the client for it. */
const msgpack_object *cn_msgpack_get(const msgpack_object *map, const char *key)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

/* canopy/client.h. */
int cn_msgpack_table(const msgpack_object *t, msgpack_zone *z, msgpack_object *out)
{
    if (t == NULL || t->type != MSGPACK_OBJECT_MAP || t->via.map.size != 2)
        return 0;
    const msgpack_object *cols = cn_msgpack_get(t, "cols"), *rows = cn_msgpack_get(t, "rows");
    if (cols == NULL || rows == NULL || cols->type != MSGPACK_OBJECT_ARRAY ||
        rows->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    uint32_t n = rows->via.array.size;
    msgpack_object *maps = n ? msgpack_zone_malloc(z, n * sizeof(*maps)) : NULL;
    if (n && maps == NULL)
        return CN_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *row = &rows->via.array.ptr[i];
        uint32_t k = row->type != MSGPACK_OBJECT_ARRAY ? 0
                     : row->via.array.size < cols->via.array.size ? row->via.array.size
                                                                  : cols->via.array.size;
        msgpack_object_kv *kv = k ? msgpack_zone_malloc(z, k * sizeof(*kv)) : NULL;
        if (k && kv == NULL)
            return CN_ENOMEM;
        for (uint32_t j = 0; j < k; j++) {
            kv[j].key = cols->via.array.ptr[j];
            kv[j].val = row->via.array.ptr[j];
        }
        maps[i].type = MSGPACK_OBJECT_MAP;
        maps[i].via.map.size = k;
        maps[i].via.map.ptr = kv;
    }
    out->type = MSGPACK_OBJECT_ARRAY;
    out->via.array.size = n;
    out->via.array.ptr = maps;
    return 1;
}
