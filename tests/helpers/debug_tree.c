/*
 * debug_tree.c: trees with actors in the debugger, for test_debugger.sh.
 * The root ("dbgtree", or argv[1] if it is --name=NAME) spawns one child
 * per argument, named KIND-N, running entry KIND:
 *   bp      registers the REPL variable bp_hits and commands hello and
 *           slow (answers after 1.5 s), waits
 *           300 ms, logs "before breakpoint", calls cn_breakpoint(), logs
 *           "after breakpoint", then waits to be cancelled
 *   spin    spins in spin_forever(), a while(1) outside any canopy call
 *   crash   waits 300 ms, then writes through a NULL pointer in crash_here()
 *   mid     spawns one child "leaf" running entry crash, then waits
 *   midbp   spawns one child "leaf" running entry bp, then waits
 *   idle    waits to be cancelled
 *   exit3   waits 1.5 s, then returns 3 (its exit status)
 *   late    waits 1.5 s, logs "spawning late-leaf", spawns a child
 *           "late-leaf" running entry idle, logs "spawned late-leaf", waits
 *   deadlock  two threads take two mutexes in opposite orders and hang in
 *           lock_both(), forever
 *   fail    calls the root's "boom", which fails in fail_here() with
 *           cn_call_fail; logs "boom: <error>", then waits
 *   serve   no entry: only serves calls (its main thread is its broker)
 *   burst   waits (up to 120 s) for the file $DEBUG_TREE_BURST to exist,
 *           logs "burst line N" for N = 1..BURST_LINES at once, then
 *           waits: the tree says nothing more after the burst
 * The root prints "ready" once every child is up, then waits (up to 120 s)
 * to be cancelled.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "canopy.h"

#define WAIT_MS 120000

static int wait_cancelled(void)
{
    cn_sleep(WAIT_MS);
    return 0;
}

static _Atomic long bp_hits = 0;

static void var_hits(cn_debug_out_t *out, void *arg)
{
    (void)arg;
    cn_debug_printf(out, "%ld", atomic_load(&bp_hits));
}

static int cmd_hello(int argc, char **argv, cn_debug_out_t *out, void *arg)
{
    cn_debug_printf(out, "hello from %s (%s):", cn_path(), (const char *)arg);
    for (int i = 1; i < argc; i++)
        cn_debug_printf(out, " %s", argv[i]);
    cn_debug_printf(out, "\n");
    return argc > 3 ? CN_EINVAL : 0;
}

/* Answers after 1.5 s: a piped console must wait for it, not leave. */
static int cmd_slow(int argc, char **argv, cn_debug_out_t *out, void *arg)
{
    (void)argc, (void)argv, (void)arg;
    usleep(1500 * 1000);
    cn_debug_printf(out, "slow answer\n");
    return 0;
}

static int entry_bp(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_debug_var("bp_hits", var_hits, NULL);
    cn_debug_command("hello", "say hello (at most 2 words)", cmd_hello, "bp");
    cn_debug_command("slow", "answer after 1.5 s", cmd_slow, NULL);
    cn_log(CN_LOG_INFO, "registering 'bt': %s; 'bad name': %s",
           cn_err_name(cn_debug_command("bt", NULL, cmd_hello, NULL)),
           cn_err_name(cn_debug_var("bad name", var_hits, NULL)));
    atomic_fetch_add(&bp_hits, 1);
    cn_sleep(300);
    cn_log(CN_LOG_INFO, "before breakpoint");
    int rc = cn_breakpoint();
    cn_log(CN_LOG_INFO, "after breakpoint: %s", rc == 0 ? "ok" : cn_strerror(rc));
    return wait_cancelled();
}

__attribute__((noinline)) static void spin_forever(void)
{
    volatile unsigned long n = 0;
    for (;;)
        n++;
}

static int entry_spin(int argc, char **argv)
{
    (void)argc, (void)argv;
    spin_forever();
    return 0;
}

__attribute__((noinline)) static void crash_here(volatile int *p)
{
    *p = 42; /* the crash on purpose: NOLINT(clang-analyzer-core.NullDereference) */
}

static int entry_crash(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_sleep(300);
    crash_here(NULL);
    return 0;
}

/* The barriers keep the compiler from turning these calls into jumps,
 * which would leave these frames out of the stack (as -O2 may in any
 * program). */
__attribute__((noinline)) static int fail_here(cn_call_t *c)
{
    int rc = cn_call_fail(c, CN_EIO, "disk on fire");
    __asm__ volatile("" ::: "memory");
    return rc;
}

static int fn_boom(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    int rc = fail_here(c);
    __asm__ volatile("" ::: "memory");
    return rc;
}

static int entry_fail(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_result_t r;
    int rc = cn_call(cn_parent(), "boom", NULL, &r, 60000);
    cn_log(CN_LOG_INFO, "boom: %s%s%s", cn_err_name(rc), rc == CN_EREMOTE ? ": " : "",
           rc == CN_EREMOTE && r.error.message ? r.error.message : "");
    cn_result_free(&r);
    return wait_cancelled();
}

static pthread_mutex_t mu_a = PTHREAD_MUTEX_INITIALIZER, mu_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold;

__attribute__((noinline)) static void lock_both(pthread_mutex_t *first, pthread_mutex_t *second)
{
    pthread_mutex_lock(first);
    pthread_barrier_wait(&both_hold); /* each holds its first: a sure deadlock */
    pthread_mutex_lock(second);
    __asm__ volatile("" ::: "memory");
}

static void *other_half(void *arg)
{
    (void)arg;
    lock_both(&mu_b, &mu_a);
    return NULL;
}

static int entry_deadlock(int argc, char **argv)
{
    (void)argc, (void)argv;
    pthread_t t;
    pthread_barrier_init(&both_hold, NULL, 2);
    pthread_create(&t, NULL, other_half, NULL);
    lock_both(&mu_a, &mu_b);
    return 0;
}

/* A middle actor: one child "leaf" running `entry`, then waits. */
static int mid_over(const char *entry)
{
    cn_spawn_opts_t so = {.entry = entry};
    cn_portal_t leaf;
    if (cn_spawn("leaf", &so, &leaf, 10000) < 0)
        return 1;
    return wait_cancelled();
}

static int entry_mid(int argc, char **argv)
{
    (void)argc, (void)argv;
    return mid_over("crash");
}

static int entry_midbp(int argc, char **argv)
{
    (void)argc, (void)argv;
    return mid_over("bp");
}

static int entry_idle(int argc, char **argv)
{
    (void)argc, (void)argv;
    return wait_cancelled();
}

static int entry_exit3(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_sleep(1500);
    return 3;
}

/* More than a client takes in one turn (the TUI's EVENTS_PER_TURN, 2000),
 * and less than one more of its reads. */
#define BURST_LINES 2100

static int entry_burst(int argc, char **argv)
{
    (void)argc, (void)argv;
    const char *go = getenv("DEBUG_TREE_BURST");
    for (int waited = 0; go && access(go, F_OK) != 0 && waited < WAIT_MS; waited += 20)
        cn_sleep(20);
    for (int i = 1; i <= BURST_LINES; i++)
        cn_log(CN_LOG_INFO, "burst line %d", i);
    return wait_cancelled();
}

static int entry_late(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_sleep(1500);
    cn_log(CN_LOG_INFO, "spawning late-leaf");
    cn_spawn_opts_t so = {.entry = "idle"};
    cn_portal_t leaf;
    int rc = cn_spawn("late-leaf", &so, &leaf, 10000);
    cn_log(CN_LOG_INFO, "spawned late-leaf: %s", cn_err_name(rc));
    return wait_cancelled();
}

static int root_main(int argc, char **argv)
{
    for (int i = 1, n = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0)
            continue;
        char name[64];
        snprintf(name, sizeof(name), "%s-%d", argv[i], n++);
        cn_spawn_opts_t so = {.entry = strcmp(argv[i], "serve") == 0 ? NULL : argv[i]};
        cn_portal_t p;
        int rc = cn_spawn(name, &so, &p, 10000);
        if (rc < 0) {
            fprintf(stderr, "debug_tree: cannot spawn %s: %s\n", name, cn_strerror(rc));
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    int rc = wait_cancelled();
    printf("debug_tree: main is done\n"); /* output while the tree goes down */
    fflush(stdout);
    return rc;
}

int main(int argc, char **argv)
{
    static const cn_entry_t entries[] = {
        {"bp", entry_bp}, {"spin", entry_spin}, {"crash", entry_crash}, {"mid", entry_mid},
        {"midbp", entry_midbp}, {"fail", entry_fail}, {"idle", entry_idle},
        {"exit3", entry_exit3}, {"late", entry_late}, {"deadlock", entry_deadlock},
        {"burst", entry_burst}, {NULL, NULL},
    };
    const char *name = "dbgtree";
    if (argc > 1 && strncmp(argv[1], "--name=", 7) == 0)
        name = argv[1] + 7;
    static const cn_export_t exports[] = {{"boom", fn_boom}, {NULL, NULL}};
    cn_config_t cfg = {.name = name, .entries = entries, .exports = exports, .main = root_main};
    return cn_run(argc, argv, &cfg);
}
