/*
 * bench_codec.c: encode and decode rates of 64-byte YIELD messages.
 *
 * The message is a YIELD whose payload is a 64-byte bin, as a stream
 * carries it. Each canopy figure has a baseline doing the same job with
 * msgpack-c alone, in this run:
 *   encode: cn_wire_pack into a buffer   vs msgpack_pack of the same array
 *   decode: cn_wire_decode of a 64 KiB    vs msgpack_unpack_next of each
 *           read holding many frames         body, one zone per message
 * codec_yield_per_s is one encode plus one decode per message. Ratios
 * above 1 mean canopy is faster than the plain msgpack-c loop; the canopy
 * side also frames, validates, and keeps the raw frame for forwarding.
 */
#include "bench.h"

#include "wire/wire.h"

#define PAYLOAD 64
#define BATCH_BYTES (64 * 1024)

static char payload[PAYLOAD];
static msgpack_object body = {.type = MSGPACK_OBJECT_BIN};
static cn_wire_hdr_t hdr = {CN_MSG_YIELD, 5, 7, 123456};

static msgpack_sbuffer sb; /* scratch for encoding */
static char *frames;       /* BATCH_BYTES of back-to-back frames */
static size_t frames_len, frames_count, frame_size;

static void enc_canopy(void *arg, long n)
{
    (void)arg;
    for (long i = 0; i < n; i++) {
        if (sb.size > BATCH_BYTES)
            sb.size = 0;
        if (cn_wire_pack(&sb, &hdr, &body, 0) != 0)
            abort();
    }
}

static void enc_raw(void *arg, long n)
{
    (void)arg;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (long i = 0; i < n; i++) {
        if (sb.size > BATCH_BYTES)
            sb.size = 0;
        msgpack_pack_array(&pk, 5);
        msgpack_pack_uint32(&pk, hdr.type);
        msgpack_pack_uint32(&pk, hdr.dst);
        msgpack_pack_uint32(&pk, hdr.src);
        msgpack_pack_uint64(&pk, hdr.cid);
        msgpack_pack_object(&pk, body);
    }
}

/* Decodes n messages, `frames_count` per pass over the batch buffer. */
static void dec_canopy(void *arg, long n)
{
    cn_wire_decoder_t *d = arg;
    long done = 0;
    while (done < n) {
        const char *p = frames;
        size_t left = frames_len, used;
        while (left > 0) {
            cn_wire_msg_t *m;
            if (cn_wire_decode(d, p, left, &used, &m) != 1)
                abort();
            cn_wire_msg_free(m);
            p += used, left -= used;
        }
        done += (long)frames_count;
    }
}

static void dec_raw(void *arg, long n)
{
    (void)arg;
    long done = 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    while (done < n) {
        for (size_t off = 0; off < frames_len; off += frame_size) {
            size_t o = 0;
            if (msgpack_unpack_next(&u, frames + off + CN_WIRE_LEN_SIZE,
                                    frame_size - CN_WIRE_LEN_SIZE, &o) != MSGPACK_UNPACK_SUCCESS)
                abort();
        }
        done += (long)frames_count;
    }
    msgpack_unpacked_destroy(&u);
}

static void both_canopy(void *arg, long n)
{
    cn_wire_decoder_t *d = arg;
    for (long i = 0; i < n; i++) {
        sb.size = 0;
        cn_wire_pack(&sb, &hdr, &body, 0);
        cn_wire_msg_t *m;
        size_t used;
        if (cn_wire_decode(d, sb.data, sb.size, &used, &m) != 1)
            abort();
        cn_wire_msg_free(m);
    }
}

static void both_raw(void *arg, long n)
{
    (void)arg;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    for (long i = 0; i < n; i++) {
        sb.size = 0;
        enc_raw(NULL, 1);
        size_t o = 0;
        if (msgpack_unpack_next(&u, sb.data, sb.size, &o) != MSGPACK_UNPACK_SUCCESS)
            abort();
    }
    msgpack_unpacked_destroy(&u);
}

int main(int argc, char **argv)
{
    bench_out_t out;
    bench_open(&out, argc, argv);
    double secs = getenv("CN_BENCH_SECONDS") ? atof(getenv("CN_BENCH_SECONDS")) : 0.3;

    memset(payload, 'x', sizeof(payload));
    body.via.bin.ptr = payload;
    body.via.bin.size = PAYLOAD;
    msgpack_sbuffer_init(&sb);

    /* Fill one 64 KiB "read" with whole frames. */
    msgpack_sbuffer fb;
    msgpack_sbuffer_init(&fb);
    cn_wire_pack(&fb, &hdr, &body, 0);
    frame_size = fb.size;
    while (fb.size + frame_size <= BATCH_BYTES)
        cn_wire_pack(&fb, &hdr, &body, 0);
    frames = fb.data;
    frames_len = fb.size;
    frames_count = frames_len / frame_size;

    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    printf("codec: YIELD with a %d-byte payload, %zu-byte frames, median of 5 runs\n", PAYLOAD,
           frame_size);
    double e_raw = bench_rate(enc_raw, NULL, secs, 5);
    double e = bench_rate(enc_canopy, NULL, secs, 5);
    double d_raw = bench_rate(dec_raw, NULL, secs, 5);
    double dd = bench_rate(dec_canopy, &d, secs, 5);
    double b_raw = bench_rate(both_raw, NULL, secs, 5);
    double b = bench_rate(both_canopy, &d, secs, 5);
    bench_report(&out, "codec_yield_per_s", b, "msg/s", b_raw, "msgpack-c pack+unpack");
    bench_report(&out, "codec_yield_encode_per_s", e, "msg/s", e_raw, "msgpack-c pack");
    bench_report(&out, "codec_yield_decode_per_s", dd, "msg/s", d_raw, "msgpack-c unpack_next");

    cn_wire_decoder_fini(&d);
    msgpack_sbuffer_destroy(&fb);
    msgpack_sbuffer_destroy(&sb);
    bench_close(&out);
    return 0;
}
