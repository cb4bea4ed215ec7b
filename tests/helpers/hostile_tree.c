/*
 * hostile_tree.c: a small busy tree for test_hostile.sh to aim hostile
 * clients at. The root ("hostile") spawns kid-0, kid-1 and kid-2, holds a
 * context "hold" open on kid-0 (so `canopy ctx` has something to show),
 * prints "ready", then until cancelled (or 300 s):
 *   - calls "ping" on every kid every 20 ms, logging a warn line
 *     "ping kid-N failed: ..." or "ping kid-N took N ms" when one fails or
 *     takes over 1 s: the test reads those as the tree's health;
 *   - on SIGUSR1, logs argv[1] (default 20000) lines of chatter, which
 *     every event subscriber gets as events, then prints "chatted".
 * Every 100 pings it prints "pings N" on stdout.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "canopy.h"

#define KIDS 3

static volatile sig_atomic_t chat;

static void on_usr1(int sig)
{
    (void)sig;
    chat = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fn_ping(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    return msgpack_pack_int64(out, getpid());
}

static int fn_hold(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    if (cn_started(c, NULL) < 0)
        return CN_ECANCELED;
    while (cn_sleep(1000) == 0)
        ;
    return CN_ECANCELED;
}

static const cn_export_t exports[] = {{"ping", fn_ping}, {"hold", fn_hold}, {NULL, NULL}};

static int root_main(int argc, char **argv)
{
    long lines = argc > 1 ? atol(argv[1]) : 20000;
    cn_portal_t kids[KIDS];
    char name[16];
    for (int i = 0; i < KIDS; i++) {
        snprintf(name, sizeof(name), "kid-%d", i);
        if (cn_spawn(name, NULL, &kids[i], 10000) != 0) {
            printf("cannot spawn %s\n", name);
            return 1;
        }
    }
    cn_ctx_t *ctx = NULL;
    cn_result_t st;
    if (cn_open(kids[0], "hold", NULL, &ctx, &st, 10000) != 0) {
        printf("cannot open hold\n");
        return 1;
    }
    cn_result_free(&st);
    printf("ready\n");
    fflush(stdout);
    unsigned long pings = 0;
    for (int64_t end = now_ms() + 300000; now_ms() < end;) {
        for (int i = 0; i < KIDS; i++) {
            cn_result_t res;
            int64_t t0 = now_ms();
            int rc = cn_call(kids[i], "ping", NULL, &res, 10000);
            int64_t took = now_ms() - t0;
            if (rc != 0)
                cn_log(CN_LOG_WARN, "ping kid-%d failed: %s", i, cn_strerror(rc));
            else if (took > 1000)
                cn_log(CN_LOG_WARN, "ping kid-%d took %lld ms", i, (long long)took);
            cn_result_free(&res);
            if (rc == CN_ECANCELED)
                goto out;
        }
        if (++pings % 100 == 0) {
            printf("pings %lu\n", pings);
            fflush(stdout);
        }
        if (chat) {
            chat = 0;
            for (long i = 0; i < lines; i++)
                cn_log(CN_LOG_INFO, "chatter %ld: %s", i,
                       "a line long enough to fill a subscriber's event queue quickly");
            printf("chatted\n");
            fflush(stdout);
        }
        if (cn_sleep(20) != 0)
            break;
    }
out:
    cn_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (getenv("CANOPY_FD") == NULL) { /* the root only: children keep the default */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_usr1;
        sigaction(SIGUSR1, &sa, NULL);
    }
    cn_config_t cfg = {.name = "hostile", .exports = exports, .main = root_main};
    return cn_run(argc, argv, &cfg);
}
