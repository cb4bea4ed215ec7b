/*
 * limits.c: a tree that spawns children until the system says no, for
 * test_hostile.sh. Run it under a low `ulimit -n` (RLIMIT_NOFILE), or as
 * `limits --as UID N ARGS...` (RLIMIT_NPROC, which root ignores: run as
 * root, it drops to UID, sets RLIMIT_NPROC to N more tasks than UID
 * already has, and re-executes itself with ARGS), and it:
 *   1. spawns served children kid-0, kid-1, ... until cn_spawn fails (at
 *      most argv[1], default 200) and prints how, with the code's name;
 *      kid-0 is called once on the way, so it has a task thread;
 *   2. calls kid-0, a survivor, to show the tree still works, and kid-1,
 *      which has never been called: under a thread limit it may have no
 *      thread to answer with, and must then say so at once;
 *   3. cancels the three newest children and spawns one more, to show a
 *      freed resource can be used again, and calls it;
 *   4. cancels every child and checks that none is left, not even a
 *      zombie; prints "done" and returns 0.
 * argv[2], if set, is how many ms to wait between steps 1 and 2 (the test
 * looks at the tree meanwhile). Every line it prints starts with
 * "limits:"; any failure of steps 2 to 4 returns 1. Each call takes a
 * timeout, so nothing here can hang.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "canopy.h"

#define KIDS_MAX 1000
#define T_MS 10000

static int fn_ping(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    return msgpack_pack_int64(out, getpid());
}

static const cn_export_t exports[] = {{"ping", fn_ping}, {NULL, NULL}};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ping(const char *who, cn_portal_t p)
{
    cn_result_t res;
    int64_t t0 = now_ms();
    int rc = cn_call(p, "ping", NULL, &res, T_MS);
    int ms = (int)(now_ms() - t0);
    if (rc == 0)
        printf("limits: call %s: answered in %d ms\n", who, ms);
    else
        printf("limits: call %s: failed in %d ms: %s: %s\n", who, ms, cn_err_name(rc),
               res.error.message ? res.error.message : cn_strerror(rc));
    cn_result_free(&res);
    return rc;
}

static int root_main(int argc, char **argv)
{
    static cn_portal_t kids[KIDS_MAX];
    int max = argc > 1 ? atoi(argv[1]) : 200, n = 0, rc = 0;
    if (max <= 0 || max > KIDS_MAX)
        max = KIDS_MAX;
    char name[32];
    for (; n < max; n++) {
        snprintf(name, sizeof(name), "kid-%d", n);
        if ((rc = cn_spawn(name, NULL, &kids[n], T_MS)) != 0)
            break;
        if (n == 0 && ping("kid-0", kids[0]) != 0)
            return 1;
    }
    printf("limits: spawned %d children\n", n);
    if (rc == 0) {
        printf("limits: no spawn failed within %d\n", max);
    } else {
        printf("limits: spawn %d failed: %s (%d): %s\n", n, cn_err_name(rc), rc, cn_strerror(rc));
    }
    fflush(stdout);
    if (argc > 2 && atoi(argv[2]) > 0) { /* the test pokes the attach socket meanwhile */
        printf("limits: holding for %s ms\n", argv[2]);
        fflush(stdout);
        cn_sleep(atoi(argv[2]));
    }
    if (n < 4) {
        printf("limits: too few children to go on\n");
        return 1;
    }
    int bad = ping("kid-0", kids[0]) != 0;
    ping("kid-1", kids[1]); /* answered, or refused at once: the test reads which */

    for (int i = 1; i <= 3; i++)
        if ((rc = cn_cancel(kids[n - i], T_MS)) != 0) {
            printf("limits: cancel kid-%d: %s\n", n - i, cn_strerror(rc));
            bad = 1;
        }
    n -= 3;
    if ((rc = cn_spawn("again", NULL, &kids[n], T_MS)) == 0) {
        printf("limits: spawn after freeing three: ok\n");
        bad |= ping("again", kids[n]) != 0;
        n++;
    } else {
        printf("limits: spawn after freeing three failed: %s (%d): %s\n", cn_err_name(rc), rc,
               cn_strerror(rc));
        bad = 1;
    }
    fflush(stdout);

    for (int i = 0; i < n; i++)
        if ((rc = cn_cancel(kids[i], T_MS)) != 0) {
            printf("limits: cancel child %d: %s\n", i, cn_strerror(rc));
            bad = 1;
        }
    errno = 0;
    if (waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD) {
        printf("limits: no child left\n");
    } else {
        printf("limits: a child is left after cancelling all\n");
        bad = 1;
    }
    printf("limits: done\n");
    fflush(stdout);
    return bad;
}

/* How many tasks (threads) the real uid `uid` has: what RLIMIT_NPROC counts. */
static long tasks_of(uid_t uid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long n = 0;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], line[256];
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        FILE *f = e->d_name[0] >= '0' && e->d_name[0] <= '9' ? fopen(path, "r") : NULL;
        unsigned long ruid = (unsigned long)-1, threads = 0;
        while (f && fgets(line, sizeof(line), f)) {
            (void)sscanf(line, "Uid: %lu", &ruid); /* one of them, or neither, matches */
            (void)sscanf(line, "Threads: %lu", &threads);
        }
        if (f)
            fclose(f);
        if (ruid == (unsigned long)uid)
            n += (long)threads;
    }
    if (d)
        closedir(d);
    return n;
}

/* --as UID N: becomes UID with room for N more tasks, and starts again. */
static int run_as(char **argv)
{
    uid_t uid = (uid_t)strtoul(argv[2], NULL, 10);
    long have = tasks_of(uid), more = atol(argv[3]);
    struct rlimit rl = {(rlim_t)(have + more), (rlim_t)(have + more)};
    if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0) {
        printf("limits: cannot become uid %u: %s\n", (unsigned)uid, strerror(errno));
        return 1;
    }
    if (setrlimit(RLIMIT_NPROC, &rl) < 0) {
        printf("limits: cannot set RLIMIT_NPROC: %s\n", strerror(errno));
        return 1;
    }
    printf("limits: uid %u, RLIMIT_NPROC %ld (%ld tasks already)\n", (unsigned)getuid(),
           have + more, have);
    fflush(stdout);
    argv[3] = argv[0];
    execv("/proc/self/exe", argv + 3);
    printf("limits: cannot execute myself: %s\n", strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 3 && strcmp(argv[1], "--as") == 0 && getenv("CANOPY_FD") == NULL)
        return run_as(argv);
    cn_config_t cfg = {.name = "limits", .exports = exports, .main = root_main};
    return cn_run(argc, argv, &cfg);
}
