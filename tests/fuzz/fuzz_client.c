/*
 * fuzz_client.c: libFuzzer target for the client library's side of the
 * attach protocol (src/inspect/client.c): all it decodes from a root,
 * which may be another version of canopy, or not canopy at all. That is
 * the answer to its HELLO, SNAPSHOT into cn_snapshot_t (decode_snapshot),
 * EVENT frames, single and batched, into cn_event_t, and the RETURN and
 * DEAD answers to its requests.
 *
 * A fake root, a thread, listens on a unix socket in a private temporary
 * directory (made once). It takes the client's connection, writes the
 * input's frames, shuts its writing side, and reads until the client
 * hangs up. The client runs one operation, chosen by byte 0, until that
 * ends: the socket's end of file ends every wait.
 *
 * Input: byte 0 is the operation (its low 2 bits):
 *   0  cn_client_snapshot, then a walk of all it returned (every string
 *      read to its end, every array to its count) and cn_snapshot_find
 *      of each actor's id, name and path
 *   1  cn_client_subscribe, then cn_client_event until it fails
 *   2  cn_client_console with every event, then cn_client_event until it
 *      fails
 *   3  cn_client_cancel
 * then records, until the input ends:
 *   [type] [cid] [len lo] [len hi] [len bytes of body]
 *   type  the message type (any byte: unknown ones too)
 *   cid   0 is the cid of the client's one request (1), any other that
 *         number
 *   the body is copied into the frame unchecked: it need not be msgpack.
 * The first record answers the client's HELLO.
 *
 * Besides ASan and UBSan, it checks that what an operation returns with
 * 0 is what the header promises: a snapshot has actors, an event a kind,
 * and a client with nothing left to hand out says so (cn_client_pending).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "canopy/client.h"
#include "wire/wire.h"
#include "check.h"

#define WAIT_MS 2000 /* the fake root's end of file comes long before */
#define EVENTS_MAX 100000

static char dir[64] = "/tmp/canopy-fuzz-client.XXXXXX";
static char path[128];
static int lfd = -1;

static void remove_socket(void)
{
    unlink(path);
    rmdir(dir);
}

static void setup(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/root.sock", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(listen(lfd, 4) == 0);
    /* accept() gives up too, should the client never connect */
    struct timeval tv = {WAIT_MS / 1000, 0};
    CHECK(setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
    atexit(remove_socket);
}

/* The frames the fake root writes, built from the records. */
static msgpack_sbuffer frames;

static void build_frames(const uint8_t *p, size_t n)
{
    frames.size = 0;
    while (n >= 4) {
        size_t len = (size_t)p[2] | (size_t)p[3] << 8;
        cn_wire_hdr_t h = {p[0], 0, 0, p[1] ? p[1] : 1};
        p += 4, n -= 4;
        if (len > n)
            len = n;
        msgpack_packer pk;
        size_t mark;
        if (cn_wire_begin(&frames, &pk, &h, &mark) == 0)
            cn_wire_end(&frames, mark, msgpack_sbuffer_write(&frames, (const char *)p, len), 0);
        p += len, n -= len;
    }
}

static void *fake_root(void *arg)
{
    (void)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    for (size_t off = 0; off < frames.size;) {
        ssize_t w = send(fd, frames.data + off, frames.size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the client hung up first */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    close(fd);
    return NULL;
}

static volatile size_t sink;

static void touch(const char *s)
{
    if (s != NULL)
        sink += strlen(s);
}

static void find(const cn_snapshot_t *s, const char *which)
{
    int amb = -1;
    const cn_snap_actor_t *a = cn_snapshot_find(s, which, &amb);
    CHECK(amb == 0 || amb == 1);
    CHECK(a == NULL || (a >= s->actors && a < s->actors + s->nactors));
}

static void walk_actor(const cn_snapshot_t *s, const cn_snap_actor_t *a)
{
    touch(a->name), touch(a->path), touch(a->host), touch(a->state);
    for (size_t i = 0; i < a->nchildren; i++)
        touch(a->children[i].name), touch(a->children[i].state), touch(a->children[i].status);
    for (size_t i = 0; i < a->nroutes; i++)
        touch(a->routes[i].name);
    for (size_t i = 0; i < a->ncontexts; i++) {
        const cn_snap_ctx_t *c = &a->contexts[i];
        touch(c->fn), touch(c->role), touch(c->kind), touch(c->phase), touch(c->cancel);
        touch(c->cancel_by), touch(c->stream.local), touch(c->stream.peer);
    }
    for (size_t i = 0; i < a->nthreads; i++)
        touch(a->threads[i].kind), touch(a->threads[i].doing), touch(a->threads[i].fn);
    for (size_t i = 0; i < a->nstacks; i++) {
        touch(a->stacks[i].name), touch(a->stacks[i].state);
        for (size_t j = 0; j < a->stacks[i].nframes; j++)
            touch(a->stacks[i].frames[j]);
    }
    char id[16];
    snprintf(id, sizeof(id), "%u", a->id);
    find(s, id);
    if (a->name)
        find(s, a->name);
    if (a->path)
        find(s, a->path);
}

static void snapshot(cn_client_t *c)
{
    cn_snapshot_t *s = NULL;
    if (cn_client_snapshot(c, 100, WAIT_MS, &s) != 0) {
        CHECK(s == NULL);
        return;
    }
    CHECK(s != NULL && s->nactors > 0 && s->actors != NULL);
    touch(s->tree);
    for (size_t i = 0; i < s->nactors; i++)
        walk_actor(s, &s->actors[i]);
    for (size_t i = 0; i < s->nlogs; i++)
        touch(s->logs[i].path), touch(s->logs[i].message);
    find(s, "");
    cn_snapshot_free(s);
}

static void events(cn_client_t *c)
{
    cn_event_t ev;
    int rc, n = 0;
    while (n++ < EVENTS_MAX && (rc = cn_client_event(c, &ev, WAIT_MS)) == 0) {
        CHECK(ev.kind != NULL);
        touch(ev.kind), touch(ev.path), touch(ev.fn), touch(ev.op);
        if (ev.detail != NULL)
            for (size_t i = 0; i < ev.detail_len; i++)
                sink += (unsigned char)ev.detail[i];
    }
    if (n <= EVENTS_MAX)
        CHECK(rc < 0 && cn_client_pending(c) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (lfd < 0)
        setup();
    if (size < 1)
        return 0;
    build_frames(data + 1, size - 1);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fake_root, NULL) == 0);
    cn_client_t *c = NULL;
    if (cn_client_connect(path, &c, WAIT_MS) == 0) {
        switch (data[0] & 3) {
        case 0:
            snapshot(c);
            break;
        case 1:
            if (cn_client_subscribe(c, WAIT_MS) == 0)
                events(c);
            break;
        case 2:
            if (cn_client_console(c, CN_EVENTS_ALL, WAIT_MS) == 0)
                events(c);
            break;
        default:
            cn_client_cancel(c, 3, 7, "fuzz", WAIT_MS);
            break;
        }
        touch(cn_client_tree(c));
        cn_client_close(c);
    } else {
        touch(cn_client_error());
    }
    pthread_join(th, NULL);
    return 0;
}
