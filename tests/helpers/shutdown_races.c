/*
 * shutdown_races.c: an actor going down while its own threads are busy,
 * for test_shutdown.sh. argv[1]:
 *   spawning  two threads of the root spawn children in a loop until
 *             cn_spawn says CN_ECANCELED; main returns 7 after argv[2] ms.
 *             A child spawned as the root began to shut down was never
 *             cancelled, and cn_run waited for it for ever
 *   selfcall  a thread of the root calls the root's own "nap" (cn_sleep of
 *             a minute) with no timeout; main returns after 200 ms. The
 *             call and the nap see CN_ECANCELED and cn_run returns soon;
 *             prints "caller: CODE; nap: CODE; cn_run returned after N ms"
 *   midspawn  argv[2] times: a child "mid" whose entry has two threads
 *             spawning grandchildren in a loop is cancelled after 100 to
 *             200 ms; prints "cancel: N ms, mid: STATUS" for each
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "canopy.h"

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Spawns children named PREFIX-K-N until cn_spawn says CN_ECANCELED. */
static void *spawner(void *arg)
{
    long k = (long)arg;
    for (int n = 0;; n++) {
        char name[32];
        snprintf(name, sizeof(name), "s%ld-%d", k, n);
        cn_portal_t p;
        int rc = cn_spawn(name, NULL, &p, 5000);
        if (rc == CN_ECANCELED)
            break;
        if (rc < 0) {
            fprintf(stderr, "spawn %s: %s\n", name, cn_err_name(rc));
            break;
        }
    }
    return NULL;
}

static void start_spawners(void)
{
    for (long i = 0; i < 2; i++) {
        pthread_t th;
        pthread_create(&th, NULL, spawner, (void *)i);
        pthread_detach(th);
    }
}

static _Atomic int caller_rc = 1, nap_rc = 1;

static int fn_nap(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    int rc = cn_sleep(60000);
    nap_rc = rc;
    return rc < 0 ? cn_call_fail(c, rc, "nap: %s", cn_strerror(rc)) : msgpack_pack_nil(out);
}

static void *self_caller(void *arg)
{
    (void)arg;
    cn_result_t r;
    caller_rc = cn_call((cn_portal_t){CN_ROOT_ID}, "nap", NULL, &r, CN_FOREVER);
    cn_result_free(&r);
    return NULL;
}

/* mid's entry: grandchildren spawned from two threads until cancelled. */
static int mid_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    start_spawners();
    while (cn_sleep(1000) == 0)
        ;
    return 0;
}

static int midspawn(int rounds)
{
    int bad = 0;
    for (int i = 0; i < rounds; i++) {
        cn_spawn_opts_t o = {.entry = "mid"};
        cn_portal_t mid;
        if (cn_spawn("mid", &o, &mid, 5000) != 0)
            return 1;
        usleep((useconds_t)(100 + i * 37 % 100) * 1000); /* 100 to 199 ms, spread */
        int64_t t0 = ms_now();
        int rc = cn_cancel(mid, 5000);
        int64_t took = ms_now() - t0;
        int status = -1;
        cn_child_wait(mid, &status, 0);
        printf("cancel: %s in %lld ms, mid: %s %d\n", cn_err_name(rc), (long long)took,
               WIFSIGNALED(status) ? "signal" : "exit",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        bad |= rc != 0;
    }
    return bad;
}

static int root_main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "spawning";
    if (strcmp(mode, "spawning") == 0) {
        start_spawners();
        usleep((useconds_t)(argc > 2 ? atoi(argv[2]) : 200) * 1000);
        return 7;
    }
    if (strcmp(mode, "selfcall") == 0) {
        pthread_t th;
        pthread_create(&th, NULL, self_caller, NULL);
        pthread_detach(th);
        usleep(200000);
        return 0;
    }
    if (strcmp(mode, "midspawn") == 0)
        return midspawn(argc > 2 ? atoi(argv[2]) : 5);
    fprintf(stderr, "shutdown_races: no mode '%s'\n", mode);
    return 2;
}

static const cn_export_t exports[] = {{"nap", fn_nap}, {NULL, NULL}};
static const cn_entry_t entries[] = {{"mid", mid_main}, {NULL, NULL}};

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {
        .name = "races", .exports = exports, .entries = entries, .main = root_main};
    int64_t t0 = ms_now();
    int rc = cn_run(argc, argv, &cfg);
    if (argc > 1 && strcmp(argv[1], "selfcall") == 0) {
        for (int i = 0; i < 100 && caller_rc == 1; i++)
            usleep(10000); /* its thread, if cancelled, is on its way out */
        printf("caller: %s; nap: %s; cn_run returned after %lld ms\n", cn_err_name(caller_rc),
               cn_err_name(nap_rc), (long long)(ms_now() - t0));
    }
    return rc < 0 ? 1 : rc;
}
