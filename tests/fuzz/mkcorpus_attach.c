/*
 * mkcorpus_attach.c: writes the seed corpus for fuzz_attach into a
 * directory: one input per thing a client can ask the root (a tree
 * snapshot with and without stacks, each kind of operator cancel, the
 * SUBSCRIBE options, a debugger session at the root driven from a
 * console, the lock operations), the greeting's failures (no HELLO, the
 * wrong protocol version), two clients at once, and the same through the
 * socket, whole and cut short. Run by `make fuzz-corpus`; the output is
 * checked in under tests/fuzz/corpus/attach/. The input format is
 * fuzz_attach.c's: a flags byte, then [tb dst cid len-lo len-hi body].
 */
#include <stdio.h>
#include <string.h>

#include "wire/wire.h"

/* tb bits, as fuzz_attach reads them. */
#define C1 0x20     /* the second client */
#define HANGUP 0x40 /* that client hangs up after this record */
#define NOTURN 0x80 /* the loop does not turn after it */

static msgpack_sbuffer seed, body;
static msgpack_packer pk;

static void begin(int flags)
{
    seed.size = 0;
    char f = (char)flags;
    msgpack_sbuffer_write(&seed, &f, 1);
}

/* Appends a record whose body is what pk packed since the last one. */
static void rec(int tb, int dst, int cid)
{
    char h[5] = {(char)tb, (char)dst, (char)cid, (char)(body.size & 0xff), (char)(body.size >> 8)};
    msgpack_sbuffer_write(&seed, h, sizeof(h));
    msgpack_sbuffer_write(&seed, body.data, body.size);
    body.size = 0;
}

static void str(const char *s)
{
    msgpack_pack_str_with_body(&pk, s, strlen(s));
}

static void kbool(const char *k, int v)
{
    str(k);
    if (v)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
}

static void hello(int version)
{
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, (uint64_t)version);
    str("canopy-client");
    msgpack_pack_uint64(&pk, 4242);
    msgpack_pack_uint64(&pk, 1000);
}

static void cancel(const char *reason, uint64_t actor, uint64_t call)
{
    msgpack_pack_array(&pk, 3);
    if (reason)
        str(reason);
    else
        msgpack_pack_nil(&pk);
    msgpack_pack_uint64(&pk, actor);
    msgpack_pack_uint64(&pk, call);
}

static void subscribe(int events, int console, int contexts)
{
    msgpack_pack_map(&pk, 3);
    kbool("events", events);
    kbool("console", console);
    kbool("contexts", contexts);
}

static void console_in(const char *line)
{
    msgpack_pack_array(&pk, 1);
    str(line);
}

static void lock_op(const char *op)
{
    msgpack_pack_map(&pk, 1);
    str("op");
    str(op);
}

static int write_seed(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    fwrite(seed.data, 1, seed.size, f);
    return fclose(f);
}

/* A debugger session at the root: a console attaches, breaks into the
 * root, and types `lines`, then `continue`. */
static void session(int tb_console, int tb_other, const char *const *lines)
{
    subscribe(0, 1, 1);
    rec(CN_MSG_SUBSCRIBE | tb_console, 0, 1);
    msgpack_pack_nil(&pk);
    rec(CN_MSG_BREAK | tb_other, 0, 2);
    for (int i = 0; lines[i]; i++) {
        console_in(lines[i]);
        rec(CN_MSG_CONSOLE_IN | tb_console, 0, (int)(3 + i));
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkcorpus_attach DIR\n");
        return 2;
    }
    msgpack_sbuffer_init(&seed);
    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    const char *dir = argv[1];
    int rc = 0;

    begin(0);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_INSPECT, 0, 1);
    rc |= write_seed(dir, "inspect");

    begin(0);
    msgpack_pack_map(&pk, 2);
    kbool("stacks", 1);
    str("timeout_ms");
    msgpack_pack_uint64(&pk, 50);
    rec(CN_MSG_INSPECT, 0, 9);
    rc |= write_seed(dir, "inspect-stacks");

    begin(0);
    cancel("test", 0, 0);
    rec(CN_MSG_CANCEL, 0, 1);
    rc |= write_seed(dir, "cancel-tree");

    begin(0);
    cancel(NULL, 0, 12);
    rec(CN_MSG_CANCEL, 0, 1);
    cancel("why", 0, 0);
    rec(CN_MSG_CANCEL, 5, 2);
    cancel("why", 0, 3);
    rec(CN_MSG_CANCEL, 5, 3);
    rc |= write_seed(dir, "cancel-call-and-unknown");

    begin(0);
    subscribe(1, 0, 0);
    rec(CN_MSG_SUBSCRIBE, 0, 1);
    subscribe(1, 0, 1);
    rec(CN_MSG_SUBSCRIBE, 0, 2);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_INSPECT, 0, 3);
    rc |= write_seed(dir, "subscribe-events");

    static const char *const lines[] = {"help", "threads", "ctx", "routes", "children", "log debug",
                                        "vars", "gdb", "bt", "cancel 3", "continue", NULL};
    begin(0);
    session(0, 0, lines);
    rc |= write_seed(dir, "session-one-client");

    static const char *const two[] = {"bt all", "\003", "nonsense here", NULL};
    begin(0);
    session(C1, 0, two);
    lock_op("skip");
    rec(CN_MSG_LOCK_RELEASE, 0, 20);
    lock_op("release");
    rec(CN_MSG_LOCK_RELEASE | C1, 0, 21);
    lock_op("release");
    rec(CN_MSG_LOCK_RELEASE, 0, 22);
    rc |= write_seed(dir, "session-two-clients");

    static const char *const end[] = {"cancel", "kill", NULL};
    begin(0);
    session(0, C1, end);
    msgpack_pack_nil(&pk);
    rec(CN_MSG_BREAK | HANGUP, 0, 30);
    rc |= write_seed(dir, "session-cancel-kill-hangup");

    begin(0);
    msgpack_pack_nil(&pk);
    rec(CN_MSG_BREAK, 0, 1);
    msgpack_pack_nil(&pk);
    rec(CN_MSG_BREAK | NOTURN, 0, 2);
    msgpack_pack_nil(&pk);
    rec(CN_MSG_BREAK, 8, 3);
    console_in("help");
    rec(CN_MSG_CONSOLE_IN, 0, 4);
    lock_op("skip");
    rec(CN_MSG_LOCK_RELEASE, 0, 5);
    rc |= write_seed(dir, "break-no-console");

    begin(0x01);
    hello(99);
    rec(CN_MSG_HELLO, 0, 0);
    rc |= write_seed(dir, "hello-wrong-version");

    begin(0x01);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_INSPECT, 0, 1);
    rc |= write_seed(dir, "no-hello");

    begin(0x01);
    hello(CN_PROTOCOL_VERSION);
    rec(CN_MSG_HELLO, 0, 0);
    hello(CN_PROTOCOL_VERSION);
    rec(CN_MSG_HELLO, 0, 1);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_SNAPSHOT, 0, 2);
    msgpack_pack_nil(&pk);
    rec(27, 0, 3);
    rc |= write_seed(dir, "hello-twice-and-strays");

    begin(0);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_INSPECT | HANGUP | NOTURN, 0, 1);
    subscribe(1, 1, 1);
    rec(CN_MSG_SUBSCRIBE | C1, 0, 1);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_INSPECT, 0, 2);
    rc |= write_seed(dir, "hangup-then-again");

    begin(0x02);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_INSPECT, 0, 1);
    subscribe(1, 1, 0);
    rec(CN_MSG_SUBSCRIBE, 0, 2);
    cancel(NULL, 0, 4);
    rec(CN_MSG_CANCEL, 0, 3);
    rc |= write_seed(dir, "socket");

    begin(0x04);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_INSPECT, 0, 1);
    msgpack_pack_map(&pk, 0);
    rec(CN_MSG_INSPECT, 0, 2);
    rc |= write_seed(dir, "socket-half-frame");

    begin(0x02);
    msgpack_sbuffer_write(&body, "\xc1", 1);
    rec(CN_MSG_INSPECT, 0, 1);
    rc |= write_seed(dir, "socket-bad-frame");

    msgpack_sbuffer_destroy(&seed);
    msgpack_sbuffer_destroy(&body);
    return rc ? 1 : 0;
}
