/*
 * wire.h: canopy's frame codec (internal to libcanopy and its tests).
 *
 * A frame is a 4-byte big-endian body length followed by one msgpack array,
 * [type, dst, src, cid, body]. docs/protocol.md is the normative spec; the
 * lists below are its machine-readable half, and tests/test_wire.c checks
 * that the two agree.
 *
 * The codec is pure: no I/O, no libuv, no globals, no threads. Every
 * function may be called from any thread on objects that thread owns.
 *
 * Memory: a decoded cn_wire_msg_t lives in one msgpack zone that holds the
 * struct itself, a copy of the raw frame and every msgpack object decoded
 * from it. Strings and binaries in the message point into that frame copy
 * (msgpack-c does not copy them). cn_wire_msg_free() releases all of it at
 * once; nothing in a message outlives it.
 */
#ifndef CN_WIRE_H
#define CN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "canopy/defs.h"
#include "canopy/errors.h"
#include "canopy/version.h"

/* ---------------------------------------------------------------------------
 * Message types
 *
 * XX(NAME, code, block). Codes are part of the protocol: never renumber,
 * only append. Code 0 is never valid.
 */
#define CN_WIRE_TYPES(XX)                                                                          \
    XX(HELLO, 1, handshake)                                                                        \
    XX(ADD_ROUTE, 2, routing)                                                                      \
    XX(DEL_ROUTE, 3, routing)                                                                      \
    XX(DEAD, 4, routing)                                                                           \
    XX(SHUTDOWN, 5, routing)                                                                       \
    XX(ALLOCATE_ID, 6, routing)                                                                    \
    XX(CMD, 7, dialog)                                                                             \
    XX(STARTED, 8, dialog)                                                                         \
    XX(YIELD, 9, dialog)                                                                           \
    XX(STOP, 10, dialog)                                                                           \
    XX(RETURN, 11, dialog)                                                                         \
    XX(ERROR, 12, dialog)                                                                          \
    XX(CANCEL, 13, dialog)                                                                         \
    XX(LOG, 14, logging)                                                                           \
    XX(LOCK_REQ, 15, debugging)                                                                    \
    XX(LOCK_GRANT, 16, debugging)                                                                  \
    XX(LOCK_RELEASE, 17, debugging)                                                                \
    XX(CONSOLE_IN, 18, debugging)                                                                  \
    XX(CONSOLE_OUT, 19, debugging)                                                                 \
    XX(BREAK, 20, debugging)                                                                       \
    XX(INSPECT, 21, inspection)                                                                    \
    XX(SNAPSHOT, 22, inspection)                                                                   \
    XX(SUBSCRIBE, 23, inspection)                                                                  \
    XX(EVENT, 24, inspection)                                                                      \
    XX(CREDIT, 25, dialog)                                                                         \
    XX(GDB, 26, debugging)

typedef enum cn_wire_type {
    CN_MSG_INVALID = 0,
#define CN__WIRE_TYPE_ENUM(name, code, block) CN_MSG_##name = (code),
    CN_WIRE_TYPES(CN__WIRE_TYPE_ENUM)
#undef CN__WIRE_TYPE_ENUM
        CN_MSG_MAX_ /* one past the highest code */
} cn_wire_type_t;

/* ---------------------------------------------------------------------------
 * Typed bodies
 *
 * A type listed in CN_WIRE_BODIES has a body that is a msgpack array of the
 * fields given, in order; the decoder checks it and fills the matching
 * struct in cn_wire_msg_t.u. Any other type's body is an opaque payload
 * (any msgpack object) left in cn_wire_msg_t.body.
 *
 * F(T, kind, field, required); T is passed through untouched, so that a
 * generator can name the body struct. Kinds:
 *   U64    unsigned integer                  -> uint64_t
 *   I64    integer, either sign              -> int64_t
 *   STR    str                               -> cn_wire_str_t
 *   BYTES  bin or str                        -> cn_wire_str_t
 *   ANY    any object                        -> msgpack_object
 * Required fields come first. An optional field may be absent or nil; then
 * its struct member is zero (a cn_wire_str_t with ptr == NULL). Extra
 * trailing elements are ignored, so a newer peer may append fields.
 */
#define CN_WIRE_HELLO_FIELDS(F, T)                                                                 \
    F(T, U64, version, 1) F(T, STR, name, 1) F(T, U64, pid, 1) F(T, U64, uid, 1)
#define CN_WIRE_ADD_ROUTE_FIELDS(F, T)                                                             \
    F(T, U64, id, 1) F(T, U64, parent, 1) F(T, STR, name, 1) F(T, U64, pid, 0)
#define CN_WIRE_DEL_ROUTE_FIELDS(F, T) F(T, U64, id, 1) F(T, STR, reason, 1)
#define CN_WIRE_DEAD_FIELDS(F, T)                                                                  \
    F(T, STR, reason, 1) F(T, U64, orig_type, 0) F(T, U64, orig_dst, 0)
#define CN_WIRE_SHUTDOWN_FIELDS(F, T) F(T, STR, reason, 0)
#define CN_WIRE_ALLOCATE_ID_FIELDS(F, T) F(T, U64, first, 1) F(T, U64, count, 1)
#define CN_WIRE_CMD_FIELDS(F, T) F(T, STR, fn, 1) F(T, ANY, args, 1) F(T, U64, flags, 0)
#define CN_WIRE_ERROR_FIELDS(F, T)                                                                 \
    F(T, STR, origin, 1)                                                                           \
    F(T, STR, fn, 1)                                                                               \
    F(T, STR, message, 1) F(T, STR, backtrace, 0) F(T, I64, code, 0) F(T, STR, via, 0)
#define CN_WIRE_CANCEL_FIELDS(F, T) F(T, STR, reason, 0) F(T, U64, actor, 0) F(T, U64, call, 0)
#define CN_WIRE_LOG_FIELDS(F, T)                                                                   \
    F(T, U64, level, 1) F(T, U64, time_us, 1) F(T, STR, path, 1) F(T, STR, message, 1)
#define CN_WIRE_CREDIT_FIELDS(F, T) F(T, U64, count, 1)
#define CN_WIRE_LOCK_REQ_FIELDS(F, T) F(T, STR, reason, 1) F(T, STR, path, 0)
#define CN_WIRE_CONSOLE_IN_FIELDS(F, T) F(T, BYTES, data, 1)
#define CN_WIRE_CONSOLE_OUT_FIELDS(F, T) F(T, BYTES, data, 1)
#define CN_WIRE_GDB_FIELDS(F, T) F(T, STR, op, 1) F(T, STR, text, 0)

/* XX(NAME, member, FIELDS-macro) */
#define CN_WIRE_BODIES(XX)                                                                         \
    XX(HELLO, hello, CN_WIRE_HELLO_FIELDS)                                                         \
    XX(ADD_ROUTE, add_route, CN_WIRE_ADD_ROUTE_FIELDS)                                             \
    XX(DEL_ROUTE, del_route, CN_WIRE_DEL_ROUTE_FIELDS)                                             \
    XX(DEAD, dead, CN_WIRE_DEAD_FIELDS)                                                            \
    XX(SHUTDOWN, shutdown, CN_WIRE_SHUTDOWN_FIELDS)                                                \
    XX(ALLOCATE_ID, allocate_id, CN_WIRE_ALLOCATE_ID_FIELDS)                                       \
    XX(CMD, cmd, CN_WIRE_CMD_FIELDS)                                                               \
    XX(ERROR, error, CN_WIRE_ERROR_FIELDS)                                                         \
    XX(CANCEL, cancel, CN_WIRE_CANCEL_FIELDS)                                                      \
    XX(LOG, log, CN_WIRE_LOG_FIELDS)                                                               \
    XX(CREDIT, credit, CN_WIRE_CREDIT_FIELDS)                                                      \
    XX(LOCK_REQ, lock_req, CN_WIRE_LOCK_REQ_FIELDS)                                                \
    XX(CONSOLE_IN, console_in, CN_WIRE_CONSOLE_IN_FIELDS)                                          \
    XX(CONSOLE_OUT, console_out, CN_WIRE_CONSOLE_OUT_FIELDS)                                       \
    XX(GDB, gdb, CN_WIRE_GDB_FIELDS)

/* A view of a str or bin inside a message. Not NUL-terminated: print it
 * with "%.*s", (int)s.len, s.ptr. */
typedef struct cn_wire_str {
    const char *ptr;
    uint32_t len;
} cn_wire_str_t;

#define CN__WIRE_CTYPE_U64 uint64_t
#define CN__WIRE_CTYPE_I64 int64_t
#define CN__WIRE_CTYPE_STR cn_wire_str_t
#define CN__WIRE_CTYPE_BYTES cn_wire_str_t
#define CN__WIRE_CTYPE_ANY msgpack_object
#define CN__WIRE_MEMBER(T, kind, field, req) CN__WIRE_CTYPE_##kind field;
#define CN__WIRE_BODY_STRUCT(name, member, FIELDS)                                                 \
    typedef struct cn_wire_##member {                                                              \
        FIELDS(CN__WIRE_MEMBER, _)                                                                 \
    } cn_wire_##member##_t;
CN_WIRE_BODIES(CN__WIRE_BODY_STRUCT)
#undef CN__WIRE_BODY_STRUCT

/* ---------------------------------------------------------------------------
 * Messages
 */

/* The envelope of every message. Actor ids are 32-bit on the wire. */
typedef struct cn_wire_hdr {
    uint32_t type; /* cn_wire_type_t */
    uint32_t dst;  /* destination actor id */
    uint32_t src;  /* source actor id */
    uint64_t cid;  /* call/context id, 0 when the type has none */
} cn_wire_hdr_t;

typedef struct cn_wire_msg {
    cn_wire_hdr_t hdr;
    msgpack_object body; /* the body, typed or not */
    union {
#define CN__WIRE_BODY_MEMBER(name, member, FIELDS) cn_wire_##member##_t member;
        CN_WIRE_BODIES(CN__WIRE_BODY_MEMBER)
#undef CN__WIRE_BODY_MEMBER
    } u;               /* filled for typed bodies only (never for a block) */
    const char *frame; /* the raw frame, length prefix included, */
    size_t frame_len;  /*   so a router can forward it unchanged */
    msgpack_zone zone; /* owns this struct and all of the above, */
    size_t block;      /*   unless this is set: a body without arrays or
                        *   maps needs no zone, and the struct and its
                        *   frame are then one block of this many bytes
                        *   (see cn_wire_msg_zone) */
} cn_wire_msg_t;

/* Releases everything a decoded message owns, the struct included. NULL is
 * a no-op. */
void cn_wire_msg_free(cn_wire_msg_t *msg);

/* A zone that lives as long as msg, for its owner to allocate in (msg's
 * own, or one made on first use for a message without one). NULL when out
 * of memory. */
msgpack_zone *cn_wire_msg_zone(cn_wire_msg_t *msg);

/* "HELLO", "YIELD", ...; "?" for an unknown code. Static string. */
const char *cn_wire_type_name(uint32_t type);

/* ---------------------------------------------------------------------------
 * Decoding
 */

#define CN_WIRE_LEN_SIZE 4
#define CN_WIRE_DEFAULT_MAX_FRAME (16u * 1024 * 1024)

/* Writes the length prefix for a body of body_len bytes (at most
 * UINT32_MAX) into prefix[0..CN_WIRE_LEN_SIZE). */
static inline void cn_wire_put_len(void *prefix, size_t body_len)
{
    uint8_t *p = prefix;
    p[0] = (uint8_t)(body_len >> 24);
    p[1] = (uint8_t)(body_len >> 16);
    p[2] = (uint8_t)(body_len >> 8);
    p[3] = (uint8_t)body_len;
}

/* The size of the whole frame that starts at `frame` (prefix included),
 * from its prefix: for walking frames already checked and stored back to
 * back in a buffer. */
static inline size_t cn_wire_frame_size(const void *frame)
{
    const uint8_t *p = frame;
    return CN_WIRE_LEN_SIZE +
           ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | (size_t)p[3]);
}

/*
 * An incremental decoder for one byte stream. The struct is public so that
 * it can be embedded; its fields are private to wire.c except where noted.
 *
 * Invariant: at most one partial frame is buffered, in `pend`, and `pend`
 * never holds more than twice the bytes that have actually arrived for it
 * (at least 4 KiB), so a peer that claims a large length and then stalls
 * costs almost nothing.
 */
typedef struct cn_wire_decoder {
    size_t max_frame; /* bodies longer than this are refused */
    int err;          /* sticky: the first error, or 0 */
    uint8_t lenbuf[CN_WIRE_LEN_SIZE];
    unsigned len_have; /* bytes of the length prefix seen so far */
    uint32_t body_len; /* valid once len_have == 4 */
    char *pend;        /* partial body: pend_have of body_len bytes */
    size_t pend_have;
    size_t pend_cap;
    int pend_out;    /* pend holds the frame cn_wire_next_frame gave out */
    uint64_t frames; /* public, read-only: frames decoded so far */
} cn_wire_decoder_t;

/* Prepares `d`. max_frame 0 means CN_WIRE_DEFAULT_MAX_FRAME; larger than
 * UINT32_MAX is clamped. Never fails. */
void cn_wire_decoder_init(cn_wire_decoder_t *d, size_t max_frame);

/* Frees the partial frame, if any. `d` may be initialised again. */
void cn_wire_decoder_fini(cn_wire_decoder_t *d);

/*
 * Consumes bytes from `buf` until one message is complete or `buf` is used
 * up. Any split of the stream works: byte by byte, or many frames at once.
 * `*used` is set to how many bytes were consumed; call again with the rest.
 *
 * Returns 1 with `*out` set to a message the caller owns (free it with
 * cn_wire_msg_free), 0 when all of `buf` was consumed and no message is
 * complete yet, or a negative CN_E* code. Errors are sticky: the stream is
 * out of step or hostile, so every later call returns the same code and
 * the caller should close the stream. The codes:
 *   CN_EMSGSIZE    the length prefix exceeds max_frame (nothing allocated)
 *   CN_ETRUNC      the body ends inside its msgpack object, or is empty
 *   CN_EBADMSGPACK the body is not msgpack (or nests deeper than 32)
 *   CN_ETRAILING   the body has bytes after its msgpack object
 *   CN_EBADTYPE    the message or a field has the wrong msgpack type
 *   CN_EMISSING    the envelope or a typed body lacks a required field
 *   CN_ERANGE      an actor id does not fit in 32 bits
 *   CN_EUNKNOWNMSG the type code is not in CN_WIRE_TYPES
 *   CN_ENOMEM      out of memory
 */
int cn_wire_decode(cn_wire_decoder_t *d, const void *buf, size_t len, size_t *used,
                   cn_wire_msg_t **out);

/*
 * The framing half of cn_wire_decode: consumes bytes from `buf` until one
 * frame is complete, and points `*body` at its body (`*body_len` bytes,
 * without the length prefix) instead of decoding it. The body is valid
 * until the next call on `d` or cn_wire_decoder_fini; it may point into
 * `buf`. Returns 1 with a body, 0 when `buf` is used up first, or
 * CN_EMSGSIZE or CN_ETRUNC (sticky, as above). Nothing in the body has been
 * checked: decode it with cn_wire_decode_body, or check its envelope with
 * cn_wire_peek. This lets a router pass a frame on, or queue it for the
 * thread that will use it, without building a message.
 */
int cn_wire_next_frame(cn_wire_decoder_t *d, const void *buf, size_t len, size_t *used,
                       const char **body, size_t *body_len);

/* Decodes one frame's body (`len` bytes, no length prefix): the second
 * half of cn_wire_decode, with its codes. Not sticky: no decoder. */
int cn_wire_decode_body(const void *body, size_t len, cn_wire_msg_t **out);

/*
 * Checks a frame's body as cn_wire_decode_body would, except for the
 * fields of a typed body, and fills *hdr from its envelope, without
 * allocating anything. Returns 0 or the code cn_wire_decode_body returns
 * for the same input; a body accepted here may still fail there, but only
 * on a typed body's fields (CN_EBADTYPE, CN_EMISSING, CN_ERANGE). For the hot path: a YIELD's body is opaque, so
 * peeking one proves that decoding it later succeeds.
 */
int cn_wire_peek(const void *body, size_t len, cn_wire_hdr_t *hdr);

/*
 * The envelope of the last frame read through it: the YIELDs of a stream
 * all begin with the same bytes (the array header and the four integers),
 * and comparing them costs less than reading the integers again. Give
 * cn_wire_peek_payload and cn_wire_decode_peeked one per reader (it is
 * not locked), zeroed before first use, or NULL to read every envelope.
 */
#define CN_WIRE_ENV_MAX 32 /* 4 + 1 + 5 + 5 + 5 + 9 bytes at most */
typedef struct cn_wire_memo {
    cn_wire_hdr_t hdr;
    unsigned char len; /* 0: nothing remembered yet */
    unsigned char b[CN_WIRE_ENV_MAX];
} cn_wire_memo_t;

/* cn_wire_peek, and where the payload's bytes are in `body`: a router can
 * pass a payload on without decoding it. *payload_len is 0 when the
 * message has extra trailing envelope elements (then decode it). `memo`
 * may be NULL. */
int cn_wire_peek_payload(const void *body, size_t len, cn_wire_memo_t *memo, cn_wire_hdr_t *hdr,
                         size_t *payload_off, size_t *payload_len);

/*
 * Decodes a whole frame (length prefix included, `len` bytes) that was
 * checked before and has not changed since: its body was accepted by
 * cn_wire_peek, or the frame by a decode. The result is the same as
 * cn_wire_decode_frame's; what it skips is the validating scan, for a
 * payload without arrays or maps (the common stream message), so it
 * costs about two thirds as much there. Codes: CN_ENOMEM, and any of
 * cn_wire_decode_frame's on a frame that was not in fact checked.
 *
 * Never give it bytes from a peer unchecked: the scan is what stops a
 * claimed container count from being allocated before it is read.
 */
int cn_wire_decode_peeked(const void *frame, size_t len, cn_wire_memo_t *memo,
                          cn_wire_msg_t **out);

/* Decodes exactly one whole frame held in `frame` (length prefix included,
 * `len` bytes in all). Same codes as cn_wire_decode, plus CN_ETRUNC when
 * `len` is short of the frame and CN_ETRAILING when it is longer. */
int cn_wire_decode_frame(const void *frame, size_t len, size_t max_frame, cn_wire_msg_t **out);

/* ---------------------------------------------------------------------------
 * Encoding
 *
 * Frames are appended to a msgpack_sbuffer, so a broker can gather many
 * frames into one buffer and write them with one system call. On any error
 * the buffer is left exactly as it was before the call.
 */

/*
 * Starts a frame: appends the length placeholder, the array header and the
 * envelope, and sets `*mark` for cn_wire_end(). The caller then packs
 * exactly one body object with `pk`, which must write to `sb`, and calls
 * cn_wire_end() even if packing failed. Returns 0 or CN_ENOMEM.
 */
int cn_wire_begin(msgpack_sbuffer *sb, msgpack_packer *pk, const cn_wire_hdr_t *hdr, size_t *mark);

/* Finishes the frame started at `mark`: patches its length. `pack_rc` is
 * the result of packing the body (0 or negative); if it is an error, or the
 * body is larger than max_frame (0 = default), the frame is removed from
 * `sb` and CN_ENOMEM or CN_EMSGSIZE is returned. Otherwise 0. */
int cn_wire_end(msgpack_sbuffer *sb, size_t mark, int pack_rc, size_t max_frame);

/* Appends a whole frame whose body is `body` (NULL packs nil). */
int cn_wire_pack(msgpack_sbuffer *sb, const cn_wire_hdr_t *hdr, const msgpack_object *body,
                 size_t max_frame);

/* Appends a whole frame whose body is already msgpack-encoded: `body` holds
 * exactly one msgpack object of `len` bytes, copied verbatim. */
int cn_wire_pack_raw(msgpack_sbuffer *sb, const cn_wire_hdr_t *hdr, const void *body, size_t len,
                     size_t max_frame);

/*
 * An envelope packed once for many frames that share their header, as a
 * stream's YIELDs do: the length placeholder, the array header and the
 * four integers, as cn_wire_begin() writes them. Packing a small message
 * is mostly its envelope (six appends to the buffer), so
 * cn_wire_pack_env() costs about half of cn_wire_pack().
 */
typedef struct cn_wire_env {
    unsigned char len; /* 0 until cn_wire_env_init() */
    unsigned char b[CN_WIRE_ENV_MAX];
} cn_wire_env_t;

/* Packs hdr's envelope into *env. Returns 0 or CN_ENOMEM. */
int cn_wire_env_init(cn_wire_env_t *env, const cn_wire_hdr_t *hdr);

/* cn_wire_pack() with the envelope in *env: appends the same bytes. */
int cn_wire_pack_env(msgpack_sbuffer *sb, const cn_wire_env_t *env, const msgpack_object *body,
                     size_t max_frame);

/* Appends a whole frame of a typed type (one in CN_WIRE_BODIES), packing
 * the struct `body` points to, e.g. a cn_wire_hello_t for CN_MSG_HELLO.
 * Optional STR/BYTES fields with ptr == NULL are packed as nil. Returns
 * CN_EINVAL for a type without a typed body. */
int cn_wire_pack_typed(msgpack_sbuffer *sb, const cn_wire_hdr_t *hdr, const void *body,
                       size_t max_frame);

/* ---------------------------------------------------------------------------
 * Introspection, for tests, docs and tools
 */

typedef enum cn_wire_kind {
    CN_WIRE_KIND_U64,
    CN_WIRE_KIND_I64,
    CN_WIRE_KIND_STR,
    CN_WIRE_KIND_BYTES,
    CN_WIRE_KIND_ANY
} cn_wire_kind_t;

typedef struct cn_wire_field {
    const char *name;
    cn_wire_kind_t kind;
    int required;
    size_t offset; /* within the body struct */
} cn_wire_field_t;

/* The typed-body fields of `type`, or NULL (and *n = 0) for a payload type. */
const cn_wire_field_t *cn_wire_fields(uint32_t type, size_t *n);

/* "uint", "int", "str", "bin|str", "any". */
const char *cn_wire_kind_name(cn_wire_kind_t kind);

/* map[key] in a map with string keys, or NULL. Public: canopy/client.h. */
CN_EXTERN const msgpack_object *cn_msgpack_get(const msgpack_object *map, const char *key);

/* The columns of a snapshot's two tables (docs/protocol.md, Inspection),
 * in the order the runtime packs each row's values; a reader finds each
 * column by its name in the table's cols. X(name) for each. A column
 * added here needs its value packed in the same place of the row
 * (registry.c, pack_ctx_row and pack_thread_row): a row packs as many
 * values as there are names, and one short is a malformed answer. */
#define CN_SNAP_CTX_COLS(X)                                                                        \
    X(cid) X(tid) X(peer) X(fn) X(role) X(kind) X(phase) X(opened_us) X(cancel) X(cancel_by)       \
        X(cancel_us) X(stream)
#define CN_SNAP_THREAD_COLS(X)                                                                     \
    X(tid) X(kind) X(doing) X(peer) X(cid) X(since_us) X(fn) X(task_caller) X(task_cid)

/* A snapshot's table ({cols, rows}) as the array of maps it stands for.
 * Public: canopy/client.h. */
CN_EXTERN int cn_msgpack_table(const msgpack_object *t, msgpack_zone *z, msgpack_object *out);

#endif /* CN_WIRE_H */
