/*
 * lint_tree.c: trees that hang in one particular way, for test_cli.sh to
 * point `canopy lint` at. argv[1] picks the hang; the root prints "ready"
 * once it is in place, then waits (up to 120 s) to be killed:
 *   healthy         a child streams to the root, which keeps reading
 *   stuck-cancel    a context's task spins outside any canopy call; the
 *                   root cancels it, and the cancel is never acknowledged
 *   stalled-stream  a child streams to the root, which never reads
 *   chain           a child relays to the root, which never reads, what
 *                   another task of its own floods it with: two stalls,
 *                   one the cause of the other
 *   cycle           the root and its child each wait in recv on the same
 *                   context for the other to send first: a deadlock
 *   cycle-behind    the same, and another task of the child's waits in
 *                   recv for the deadlocked root to send: held up behind it
 *   unreaped        a child's own code sets SIGCHLD to SIG_IGN, so the
 *                   kernel reaps its grandchild and the runtime never
 *                   learns it exited
 *   orphan          the root streams with a child (fake_child forgetful,
 *                   argv[2]) that has forgotten the context
 *   chatty          not a hang: the root logs 40 000 lines, for event
 *                   subscribers that do not keep up
 *   long-call       the root calls a child whose function blocks in its
 *                   own code (a plain usleep loop), and waits
 *   starved         the child may have one task thread, which a context
 *                   holds; the root's call to it is queued for ever
 *   reap            not a hang: the root waits in cn_child_wait for its
 *                   child, which runs on
 *   callback        not a hang: the root calls the child's ask, which
 *                   calls the root's peek, which sleeps. Both calls are
 *                   number 1 of their callers, so the child's task (from
 *                   the root, cid 1) waits in a call of its own on the
 *                   root, cid 1: lint took it for one serving the root's
 *                   call and printed a deadlock
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canopy.h"

#define WAIT_MS 120000

static _Atomic int stop_spin;

static int fn_spin(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_started(c, NULL);
    for (int i = 0; i < 120 * 1000 && !atomic_load(&stop_spin); i++)
        usleep(1000); /* not a canopy call: cancellation cannot reach it */
    return 0;
}

static int fn_flood(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_stream_t *s;
    if (cn_started(c, NULL) < 0 || cn_call_stream(c, NULL, &s) < 0)
        return CN_EPROTO;
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    int rc = 0;
    for (uint64_t i = 0; rc == 0; i++) {
        v.via.u64 = i;
        rc = cn_stream_send(s, &v, WAIT_MS);
    }
    return rc == CN_EOF || rc == CN_ECANCELED ? 0 : rc;
}

/* A stage in the middle of a chain: floods itself (another task of this
 * actor) and relays every message to its opener. */
static int fn_relayflood(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_ctx_t *up;
    cn_stream_t *in, *s;
    cn_result_t st = {0}, m = {0}; /* freed whether or not a call filled them */
    if (cn_open(cn_self(), "flood", NULL, &up, &st, 5000) != 0)
        return CN_EPROTO;
    cn_result_free(&st);
    if (cn_ctx_stream(up, NULL, &in) < 0 || cn_started(c, NULL) < 0 ||
        cn_call_stream(c, NULL, &s) < 0)
        return CN_EPROTO;
    int rc;
    while ((rc = cn_stream_recv(in, &m, WAIT_MS)) == 0) {
        rc = cn_stream_send(s, &m.value, WAIT_MS);
        cn_result_free(&m);
        if (rc != 0)
            break;
    }
    cn_ctx_free(up);
    return rc == CN_EOF || rc == CN_ECANCELED ? 0 : rc;
}

static int fn_waiter(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_stream_t *s;
    cn_result_t m;
    if (cn_started(c, NULL) < 0 || cn_call_stream(c, NULL, &s) < 0)
        return CN_EPROTO;
    int rc = cn_stream_recv(s, &m, WAIT_MS); /* the root never sends */
    cn_result_free(&m);
    return rc < 0 && rc != CN_EOF ? rc : 0;
}

/* Takes what the root sends until it closes. */
static int fn_sink(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_stream_t *s;
    cn_result_t m;
    if (cn_started(c, NULL) < 0 || cn_call_stream(c, NULL, &s) < 0)
        return CN_EPROTO;
    int rc;
    while ((rc = cn_stream_recv(s, &m, WAIT_MS)) == 0)
        cn_result_free(&m);
    cn_result_free(&m);
    return rc == CN_EOF || rc == CN_ECANCELED ? 0 : rc;
}

static void *sleeper(void *arg)
{
    (void)arg;
    for (;;)
        sleep(60); /* again after the EINTR of each canopy bt (docs/debugger.md) */
    return NULL;
}

/* Sleeps once, and ends when the sleep does: the first canopy bt ends it
 * (EINTR), while its stack is being read. */
static void *quitter(void *arg)
{
    (void)arg;
    sleep(60);
    return NULL;
}

/* Starts two threads of its own, which Linux names after this task
 * thread. */
static int fn_thread(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    pthread_t th, th2;
    if (pthread_create(&th, NULL, sleeper, NULL) != 0 ||
        pthread_create(&th2, NULL, quitter, NULL) != 0)
        return CN_ENOMEM;
    pthread_detach(th);
    pthread_detach(th2);
    return msgpack_pack_nil(out);
}

/* Stops at a breakpoint, and waits there for a console. */
static int fn_bp(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    cn_breakpoint();
    return msgpack_pack_nil(out);
}

/* Holds its task thread, in a canopy sleep, until cancelled. */
static int fn_hold(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_started(c, NULL);
    cn_sleep(WAIT_MS);
    return 0;
}

static int fn_quick(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    return msgpack_pack_nil(out);
}

static int fn_peek(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args, (void)out;
    return cn_sleep(WAIT_MS); /* slow, and waiting on nobody */
}

static int fn_ask(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args, (void)out;
    cn_result_t r = {0};
    int rc = cn_call((cn_portal_t){CN_ROOT_ID}, "peek", NULL, &r, WAIT_MS);
    cn_result_free(&r);
    return rc;
}

static const cn_export_t exports[] = {{"spin", fn_spin},     {"flood", fn_flood},
                                      {"peek", fn_peek},     {"ask", fn_ask},
                                      {"waiter", fn_waiter}, {"hold", fn_hold},
                                      {"quick", fn_quick},   {"sink", fn_sink},
                                      {"thread", fn_thread}, {"bp", fn_bp},
                                      {"relayflood", fn_relayflood}, {NULL, NULL}};

static int entry_quick(int argc, char **argv)
{
    (void)argc, (void)argv;
    return 0;
}

static int entry_thief(int argc, char **argv)
{
    (void)argc, (void)argv;
    /* A user's mistake: with SIGCHLD ignored the kernel reaps children
     * itself, so the runtime never learns how this one exited. */
    signal(SIGCHLD, SIG_IGN);
    cn_portal_t p;
    if (cn_spawn("quick", &(cn_spawn_opts_t){.entry = "quick"}, &p, 5000) != 0)
        return 1;
    cn_sleep(WAIT_MS);
    return 0;
}

static const cn_entry_t entries[] = {
    {"quick", entry_quick}, {"thief", entry_thief}, {NULL, NULL}};

static void ready(void)
{
    printf("ready\n");
    fflush(stdout);
}

static int root_main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "healthy";
    cn_portal_t kid;
    cn_ctx_t *ctx = NULL;
    cn_result_t st = {0}, m = {0}; /* freed whether or not a call filled them */
    cn_stream_t *s = NULL;

    if (strcmp(mode, "unreaped") == 0) {
        if (cn_spawn("thief", &(cn_spawn_opts_t){.entry = "thief"}, &kid, 5000) != 0)
            return 1;
        cn_sleep(1500); /* the grandchild comes and goes */
        ready();
        cn_sleep(WAIT_MS);
        return 0;
    }
    if (strcmp(mode, "chatty") == 0) {
        ready();
        cn_sleep(1000); /* the test attaches its subscriber */
        for (int i = 0; i < 40000; i++)
            cn_log(CN_LOG_INFO, "chatter %d: %s", i,
                   "a line long enough to fill an event queue in a few thousand records");
        printf("chatted\n");
        fflush(stdout);
        cn_sleep(WAIT_MS);
        return 0;
    }
    if (strcmp(mode, "orphan") == 0) {
        const char *fargv[] = {"forgetful", NULL};
        cn_spawn_opts_t o = {.exe = argc > 2 ? argv[2] : "fake_child", .argv = fargv};
        if (cn_spawn("forgetful", &o, &kid, 5000) != 0)
            return 1;
        if (cn_open(kid, "anything", NULL, &ctx, &st, 5000) != 0 ||
            cn_ctx_stream(ctx, NULL, &s) != 0)
            return 1;
        cn_result_free(&st);
        ready();
        cn_sleep(WAIT_MS);
        cn_ctx_free(ctx);
        return 0;
    }
    if (strcmp(mode, "starved") == 0)
        setenv("LINT_TREE_THREADS", "1", 1); /* the kid's cn_config_t.max_threads */
    const char *kid_name = getenv("LINT_TREE_KID"); /* a long one: canopy ctx's columns */
    if (cn_spawn(kid_name ? kid_name : "kid", NULL, &kid, 5000) != 0)
        return 1;
    if (strcmp(mode, "bp-call") == 0) { /* a call whose task stops at a breakpoint */
        ready();
        int rc = cn_call(kid, "bp", NULL, &m, WAIT_MS);
        cn_result_free(&m);
        printf("call: %s\n", cn_strerror(rc));
        return 0;
    }
    if (strcmp(mode, "reap") == 0) {
        ready();
        int status = 0, rc = cn_child_wait(kid, &status, WAIT_MS);
        printf("child_wait: %s\n", cn_strerror(rc));
        return 0;
    }
    if (strcmp(mode, "callback") == 0) {
        ready();
        int rc = cn_call(kid, "ask", NULL, &m, WAIT_MS); /* the root's call number 1 */
        printf("call: %s\n", cn_strerror(rc));
        return 0;
    }
    if (strcmp(mode, "long-call") == 0 || strcmp(mode, "starved") == 0) {
        if (strcmp(mode, "starved") == 0 && cn_open(kid, "hold", NULL, &ctx, &st, 5000) != 0)
            return 1;
        cn_result_free(&st);
        ready();
        int rc = cn_call(kid, mode[0] == 'l' ? "spin" : "quick", NULL, &m, WAIT_MS);
        cn_result_free(&m);
        printf("call: %s\n", cn_strerror(rc));
        cn_ctx_free(ctx);
        return 0;
    }
    if (strcmp(mode, "threads") == 0) { /* a thread of the kid's own */
        if (cn_call(kid, "thread", NULL, &m, 5000) != 0)
            return 1;
        cn_result_free(&m);
        ready();
        cn_sleep(WAIT_MS);
        return 0;
    }
    if (strcmp(mode, "feed") == 0) { /* the root sends, the kid takes */
        if (cn_open(kid, "sink", NULL, &ctx, &st, 5000) != 0 || cn_ctx_stream(ctx, NULL, &s))
            return 1;
        cn_result_free(&st);
        ready();
        msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
        int rc = 0;
        for (uint64_t i = 0; rc == 0; i++) {
            v.via.u64 = i;
            if ((rc = cn_stream_send(s, &v, WAIT_MS)) == 0)
                rc = cn_sleep(2);
        }
        printf("send: %s\n", cn_strerror(rc));
        cn_ctx_free(ctx);
        return 0;
    }
    if (strcmp(mode, "stall-and-cycle") == 0) { /* a warning found before an error */
        cn_ctx_t *flood;
        cn_stream_t *fs;
        if (cn_open(kid, "flood", NULL, &flood, &st, 5000) != 0 || cn_ctx_stream(flood, NULL, &fs))
            return 1;
        cn_result_free(&st);
        if (cn_open(kid, "waiter", NULL, &ctx, &st, 5000) != 0 || cn_ctx_stream(ctx, NULL, &s))
            return 1;
        cn_result_free(&st);
        cn_sleep(300);
        ready();
        cn_stream_recv(s, &m, WAIT_MS);
        cn_result_free(&m);
        cn_ctx_free(flood);
        cn_ctx_free(ctx);
        return 0;
    }
    const char *fn = strcmp(mode, "stuck-cancel") == 0 ? "spin"
                     : strncmp(mode, "cycle", 5) == 0  ? "waiter"
                     : strcmp(mode, "chain") == 0      ? "relayflood"
                                                       : "flood";
    cn_ctx_t *behind = NULL; /* cycle-behind: the kid's sink waits on us */
    cn_stream_t *bs;
    if (strcmp(mode, "cycle-behind") == 0) {
        if (cn_open(kid, "sink", NULL, &behind, &st, 5000) != 0 ||
            cn_ctx_stream(behind, NULL, &bs) != 0)
            return 1;
        cn_result_free(&st);
    }
    if (cn_open(kid, fn, NULL, &ctx, &st, 5000) != 0)
        return 1;
    cn_result_free(&st);
    if (strcmp(mode, "stuck-cancel") == 0) {
        int rc = cn_ctx_cancel(ctx, 300);
        printf("cancel: %s\n", cn_strerror(rc));
        ready();
        cn_sleep(WAIT_MS);
    } else if (strncmp(mode, "cycle", 5) == 0) {
        cn_ctx_stream(ctx, NULL, &s);
        ready();
        int rc = cn_stream_recv(s, &m, WAIT_MS); /* and the child waits for us */
        cn_result_free(&m);
        printf("recv: %s\n", cn_strerror(rc));
    } else if (strcmp(mode, "stalled-stream") == 0 || strcmp(mode, "chain") == 0) {
        cn_ctx_stream(ctx, NULL, &s); /* opened, never read */
        cn_sleep(300);
        ready();
        cn_sleep(WAIT_MS);
    } else { /* healthy: keep reading */
        cn_ctx_stream(ctx, NULL, &s);
        int printed = 0;
        for (int i = 0; i < 1000000; i++) {
            if (cn_stream_recv(s, &m, WAIT_MS) != 0)
                break;
            cn_result_free(&m);
            if (i == 1000 && !printed++)
                ready();
            if (i % 100 == 0)
                cn_sleep(5);
        }
    }
    cn_ctx_free(ctx);
    if (behind)
        cn_ctx_free(behind);
    return 0;
}

int main(int argc, char **argv)
{
    const char *threads = getenv("LINT_TREE_THREADS");
    cn_config_t cfg = {.name = "lint", .exports = exports, .entries = entries,
                       .main = root_main,
                       .max_threads = threads ? (unsigned)atoi(threads) : 0};
    return cn_run(argc, argv, &cfg);
}
