/*
 * mkcorpus_client.c: writes the seed corpus for fuzz_client into a
 * directory, from what a real root says. It is itself a tree (a root, two
 * workers, a context with a stream between the root and one of them):
 * it connects to its own attach socket by hand, asks as the client
 * library would, and keeps each answer's payload: the HELLO answer, a
 * tree snapshot with and without stacks, SUBSCRIBE's RETURN and the
 * events that a spawn, an exit, log lines and a context then bring (their
 * batch among them), a console's lock and output events (made here: a
 * console needs a debugger session), and a DEAD for a cancel of nobody.
 * Run by `make fuzz-corpus`; the output is checked in under
 * tests/fuzz/corpus/client/. The input format is fuzz_client.c's: an
 * operation byte, then [type cid len-lo len-hi payload].
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "canopy.h"
#include "wire/wire.h"

#define T_MS 5000
#define MAX_FRAMES 64

typedef struct {
    uint32_t type;
    uint64_t cid;
    size_t len;
    char *payload;
} frame_t;

static const char *out_dir;

static int fn_hold(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_stream_t *s;
    cn_started(c, NULL);
    if (cn_call_stream(c, NULL, &s) < 0)
        return CN_EPROTO;
    cn_result_t m;
    while (cn_stream_recv(s, &m, T_MS) == 0)
        cn_result_free(&m);
    cn_result_free(&m);
    return 0;
}

static const cn_export_t exports[] = {{"hold", fn_hold}, {NULL, NULL}};

static int conn(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cn_attach_path());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("mkcorpus_client: connect");
        exit(1);
    }
    return fd;
}

static void send_sb(int fd, msgpack_sbuffer *sb)
{
    if (write(fd, sb->data, sb->size) != (ssize_t)sb->size) {
        perror("mkcorpus_client: write");
        exit(1);
    }
    sb->size = 0;
}

/* Reads exactly n bytes, or returns -1 after `wait_ms` with nothing. */
static int read_n(int fd, char *p, size_t n, int wait_ms)
{
    for (size_t got = 0; got < n;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int r = poll(&pf, 1, wait_ms); /* a stacks snapshot signals every thread: EINTR */
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            fprintf(stderr, "mkcorpus_client: %s\n", k == 0 ? "the root hung up" : strerror(errno));
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}

/* The next frame's type, cid and payload, or -1 if none came in wait_ms. */
static int next_frame(int fd, frame_t *f, int wait_ms)
{
    char prefix[CN_WIRE_LEN_SIZE];
    if (read_n(fd, prefix, sizeof(prefix), wait_ms) < 0)
        return -1;
    size_t len = cn_wire_frame_size(prefix) - CN_WIRE_LEN_SIZE;
    char *body = malloc(len ? len : 1);
    cn_wire_hdr_t h;
    size_t off, plen;
    if (body == NULL || read_n(fd, body, len, T_MS) < 0 ||
        cn_wire_peek_payload(body, len, NULL, &h, &off, &plen) < 0 || plen == 0) {
        fprintf(stderr, "mkcorpus_client: a frame from the root that does not peek\n");
        exit(1);
    }
    memmove(body, body + off, plen);
    *f = (frame_t){h.type, h.cid, plen, body};
    return 0;
}

/* Sends a request whose body is the map packed by `pack`, with cid 1. */
static void request(int fd, uint32_t type, uint32_t dst, void (*pack)(msgpack_packer *))
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    size_t mark;
    cn_wire_hdr_t h = {type, dst, 0, 1};
    if (cn_wire_begin(&sb, &pk, &h, &mark) == 0) {
        pack(&pk);
        cn_wire_end(&sb, mark, 0, 0);
    }
    send_sb(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static int hello(frame_t *answer)
{
    int fd = conn();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_HELLO, 0, 0, 0};
    cn_wire_hello_t hi = {CN_PROTOCOL_VERSION, {"seed", 4}, (uint64_t)getpid(), 0};
    cn_wire_pack_typed(&sb, &h, &hi, 0);
    send_sb(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (next_frame(fd, answer, T_MS) < 0 || answer->type != CN_MSG_HELLO) {
        fprintf(stderr, "mkcorpus_client: no HELLO from the root\n");
        exit(1);
    }
    return fd;
}

static void pack_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void pack_inspect(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pack_kstr(pk, "scope", "tree");
    msgpack_pack_str_with_body(pk, "timeout_ms", 10);
    msgpack_pack_uint32(pk, 1000);
}

static void pack_inspect_stacks(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    pack_kstr(pk, "scope", "tree");
    msgpack_pack_str_with_body(pk, "timeout_ms", 10);
    msgpack_pack_uint32(pk, 1000);
    msgpack_pack_str_with_body(pk, "stacks", 6);
    msgpack_pack_true(pk);
}

static void pack_subscribe(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    msgpack_pack_str_with_body(pk, "events", 6);
    msgpack_pack_true(pk);
    msgpack_pack_str_with_body(pk, "console", 7);
    msgpack_pack_false(pk);
    msgpack_pack_str_with_body(pk, "contexts", 8);
    msgpack_pack_true(pk);
}

/* Waits for the answer to the request with cid 1. */
static frame_t answer(int fd)
{
    frame_t f;
    while (next_frame(fd, &f, T_MS) == 0) {
        if (f.cid == 1 && f.type != CN_MSG_EVENT)
            return f;
        free(f.payload);
    }
    fprintf(stderr, "mkcorpus_client: no answer from the root\n");
    exit(1);
}

static msgpack_sbuffer seed;

static void begin(int op)
{
    seed.size = 0;
    char b = (char)op;
    msgpack_sbuffer_write(&seed, &b, 1);
}

/* Appends a record; `cid` 0 stands for the request's. */
static void rec(const frame_t *f, int cid)
{
    if (f->len > 0xffff) {
        fprintf(stderr, "mkcorpus_client: a payload of %zu bytes is too big for a record\n",
                f->len);
        exit(1);
    }
    char h[4] = {(char)f->type, (char)cid, (char)(f->len & 0xff), (char)(f->len >> 8)};
    msgpack_sbuffer_write(&seed, h, sizeof(h));
    msgpack_sbuffer_write(&seed, f->payload, f->len);
}

static void write_seed(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", out_dir, name);
    FILE *fp = fopen(path, "wb");
    if (fp == NULL || fwrite(seed.data, 1, seed.size, fp) != seed.size || fclose(fp) != 0) {
        perror(path);
        exit(1);
    }
}

/* An event made here (a console's): its map packed by the caller. */
static frame_t made_event(void (*pack)(msgpack_packer *))
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack(&pk);
    return (frame_t){CN_MSG_EVENT, 0, sb.size, sb.data};
}

static void pack_lock(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 5);
    pack_kstr(pk, "kind", "lock");
    pack_kstr(pk, "op", "granted");
    pack_kstr(pk, "path", "seed/worker-1");
    msgpack_pack_str_with_body(pk, "waiting", 7);
    msgpack_pack_uint32(pk, 1);
    msgpack_pack_str_with_body(pk, "actor", 5);
    msgpack_pack_uint32(pk, 1);
}

static void pack_console(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    pack_kstr(pk, "kind", "console");
    pack_kstr(pk, "path", "seed/worker-1");
    msgpack_pack_str_with_body(pk, "detail", 6);
    msgpack_pack_str_with_body(pk, "(canopy) \x01\xff bytes\n", 18);
}

static int root_main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: mkcorpus_client DIR\n");
        return 2;
    }
    out_dir = argv[1];
    cn_portal_t w1, w2;
    if (cn_spawn("worker-1", NULL, &w1, T_MS) != 0 || cn_spawn("worker-2", NULL, &w2, T_MS) != 0)
        return 1;
    cn_ctx_t *ctx;
    cn_result_t st;
    cn_stream_t *s;
    if (cn_open(w1, "hold", NULL, &ctx, &st, T_MS) != 0 || cn_ctx_stream(ctx, NULL, &s) != 0)
        return 1;
    cn_result_free(&st);
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    for (v.via.u64 = 0; v.via.u64 < 3; v.via.u64++)
        cn_stream_send(s, &v, T_MS);
    cn_log(CN_LOG_WARN, "a warning for the snapshot's log");

    frame_t hi, f;
    int fd = hello(&hi);
    begin(0);
    rec(&hi, 0);
    write_seed("hello-only");
    request(fd, CN_MSG_INSPECT, 0, pack_inspect);
    f = answer(fd);
    rec(&f, 0);
    write_seed("snapshot");
    free(f.payload);
    close(fd); /* every request here has cid 1: the root takes a repeat for a stray */
    fd = hello(&f);
    free(f.payload);
    request(fd, CN_MSG_INSPECT, 0, pack_inspect_stacks);
    f = answer(fd);
    begin(0);
    rec(&hi, 0);
    rec(&f, 0);
    write_seed("snapshot-stacks");
    free(f.payload);
    close(fd);

    /* The feed: a spawn and its exit, log lines, a context's events. */
    fd = hello(&hi);
    request(fd, CN_MSG_SUBSCRIBE, 0, pack_subscribe);
    f = answer(fd);
    begin(1);
    rec(&hi, 0);
    rec(&f, 0);
    free(f.payload);
    cn_portal_t late;
    if (cn_spawn("late", NULL, &late, T_MS) == 0)
        cn_cancel(late, T_MS);
    cn_log(CN_LOG_INFO, "a line for the feed");
    cn_stream_close(s);
    cn_result_t res;
    cn_ctx_result(ctx, &res, T_MS);
    cn_result_free(&res);
    cn_ctx_free(ctx);
    cn_sleep(300); /* the actors' event batches go every 50 ms */
    int nev = 0;
    while (nev < MAX_FRAMES && next_frame(fd, &f, 200) == 0) {
        rec(&f, 2);
        free(f.payload);
        nev++;
    }
    if (nev < 3) {
        fprintf(stderr, "mkcorpus_client: only %d events came\n", nev);
        return 1;
    }
    write_seed("subscribe-events");
    close(fd);

    /* A console: its RETURN, then a lock event and the holder's output. */
    begin(2);
    rec(&hi, 0);
    frame_t ret = {CN_MSG_RETURN, 1, 1, (char[]){(char)0xc0}}; /* nil */
    rec(&ret, 0);
    f = made_event(pack_lock);
    rec(&f, 3);
    free(f.payload);
    f = made_event(pack_console);
    rec(&f, 3);
    free(f.payload);
    write_seed("console-events");

    /* A cancel of nobody: DEAD, with the root's reason. */
    fd = hello(&hi);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_CANCEL, 4000, 0, 1};
    cn_wire_cancel_t cb = {{"seed", 4}, 4000, 0};
    cn_wire_pack_typed(&sb, &h, &cb, 0);
    send_sb(fd, &sb);
    msgpack_sbuffer_destroy(&sb);
    f = answer(fd);
    begin(3);
    rec(&hi, 0);
    rec(&f, 0);
    write_seed(f.type == CN_MSG_DEAD ? "cancel-dead" : "cancel-answer");
    begin(0); /* the same DEAD, for HELLO: the root refused the client */
    rec(&f, 0);
    write_seed("hello-refused");
    free(f.payload);
    close(fd);
    free(hi.payload);
    cn_cancel(w1, T_MS);
    cn_cancel(w2, T_MS);
    return 0;
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {.name = "seed", .exports = exports, .main = root_main};
    return cn_run(argc, argv, &cfg);
}
