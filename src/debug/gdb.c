/*
 * gdb.c: the gdb bridge, run by a parent for a child in the debugger
 * (docs/debugger.md, "gdb").
 *
 * gdb attached to an actor stops every one of its threads, the broker
 * too, so the actor cannot relay gdb's terminal itself. Its parent does.
 * A child in a debugger session that is told `gdb` sends GDB {op: "start"}
 * to its parent, which runs `gdb -q -p PID` on a pseudo-terminal and
 * stands in for the child at the console: the session's CONSOLE_IN lines
 * pass through the parent on their way down, and go to gdb's terminal
 * instead of the child; gdb's output goes up to the root as the child's
 * CONSOLE_OUT for the same session, so the lock treats it as the holder's.
 * When gdb exits, the parent sends GDB {op: "done"} and the child's REPL
 * has the console again. Whatever fails before gdb runs is sent back as
 * GDB {op: "failed", text: why}.
 *
 * gdb runs with line editing off and the terminal's echo off: the console
 * sends whole lines and shows what the user typed itself. Ctrl-C at the
 * console (a CONSOLE_IN of one ETX byte) is written as is, so the
 * terminal's line discipline interrupts gdb as a keyboard would.
 *
 * One bridge at a time: only the console's holder asks for one, and only
 * one actor holds the console.
 *
 * Invariant: everything here runs on the broker thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "debug/debug.h"
#include "runtime/rt.h"

#define GDB_ROWS 50
#define GDB_COLS 160
#define GDB_KILL_MS 2000 /* after SIGTERM, SIGKILL */
#define GDB_FLUSH_MS 100 /* a partial line waits this long for the rest */

/* gdb's prompt; it is not relayed, as the console shows its own. */
static const char gdb_prompt[] = "(gdb) ";
static const char refused_text[] = "ptrace: Operation not permitted";

typedef struct bridge {
    uint32_t actor; /* the child being debugged */
    uint64_t sid;   /* its debugger session */
    pid_t target;   /* its pid */
    pid_t pid;      /* gdb's */
    int master;     /* gdb's terminal, our end */
    uint64_t since_us;
    uv_poll_t poll;
    uv_timer_t kill_timer;
    uv_timer_t flush_timer; /* a partial line goes out when gdb pauses */
    int eof, reaped, status, refused, ending, closing;
    char why[CN__REASON_MAX]; /* why the bridge was ended, if it was */
    size_t npend;
    char pend[8192]; /* output not relayed yet: the last, partial line */
} bridge_t;

static bridge_t *br;

/* ===========================================================================
 * Messages
 */

static void send_gdb(uint32_t to, uint64_t sid, const char *op, const char *text)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_GDB, to, cn__rt.id, sid};
    cn_wire_gdb_t b = {cn__wstr(op), cn__wstr(text)};
    char why[CN__REASON_MAX];
    if (cn_wire_pack_typed(&sb, &h, &b, 0) == 0 && cn__send_frame(&h, sb.data, sb.size, why) < 0)
        cn_log(CN_LOG_DEBUG, "gdb bridge: cannot reach actor %u: %s", to, why);
    msgpack_sbuffer_destroy(&sb);
}

/* Output for the console, as the child's own (its session's CONSOLE_OUT). */
static void say_as_child(const bridge_t *b, const char *data, size_t len)
{
    if (len == 0)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_CONSOLE_OUT, CN_ROOT_ID, b->actor, b->sid};
    cn_wire_console_out_t o = {{data, (uint32_t)len}};
    if (cn_wire_pack_typed(&sb, &h, &o, 0) == 0)
        cn__send_frame(&h, sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
}

/* ===========================================================================
 * Before gdb runs: is there one, and may it attach?
 */

/* The gdb to run: $CANOPY_GDB, else "gdb" from PATH, into out. */
static int find_gdb(char *out, size_t cap, char *why)
{
    const char *want = getenv("CANOPY_GDB");
    if (want && *want) {
        if (strchr(want, '/') == NULL) {
            snprintf(why, CN__REASON_MAX, "CANOPY_GDB=%s: give a path to gdb", want);
            return -1;
        }
        if (access(want, X_OK) < 0) {
            snprintf(why, CN__REASON_MAX, "gdb is not installed as CANOPY_GDB says: %s: %s", want,
                     strerror(errno));
            return -1;
        }
        snprintf(out, cap, "%s", want);
        return 0;
    }
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0')
        path = "/usr/bin:/bin";
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        struct stat st;
        snprintf(out, cap, "%.*s/gdb", (int)n, n ? p : ".");
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        p += n + (p[n] == ':');
    }
    snprintf(why, CN__REASON_MAX, "gdb is not installed on this host (no gdb in PATH=%.120s); "
             "install it (Debian: apt install gdb)", path);
    return -1;
}

/* A number after `key` in a /proc file, or -1. */
static long proc_field(const char *file, const char *key, int base)
{
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (v < 0 && fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0)
            v = strtol(line + klen, NULL, base);
    fclose(f);
    return v;
}

/* Whether the kernel will refuse gdb here, and why. The child has named
 * this actor its tracer (PR_SET_PTRACER), which covers gdb, a descendant,
 * under Yama's default scope. */
static int ptrace_refused(pid_t target, char *why)
{
    long scope = proc_field("/proc/sys/kernel/yama/ptrace_scope", "", 10);
    if (scope == 3) {
        snprintf(why, CN__REASON_MAX, "ptrace is refused: kernel.yama.ptrace_scope is 3, "
                 "which forbids every attach until reboot");
        return 1;
    }
    if (scope == 2) {
        long eff = proc_field("/proc/self/status", "CapEff:", 16); /* bits up to 40 */
        if (eff < 0 || !(eff & (1L << 19))) { /* CAP_SYS_PTRACE */
            snprintf(why, CN__REASON_MAX, "ptrace is refused: kernel.yama.ptrace_scope is 2, so "
                     "only a process with CAP_SYS_PTRACE may attach, and %s has not got it",
                     cn__rt.path);
            return 1;
        }
    }
    char file[64];
    snprintf(file, sizeof(file), "/proc/%d/status", (int)target);
    long tracer = proc_field(file, "TracerPid:", 10);
    if (tracer > 0) {
        char comm[64] = "?", cfile[64];
        snprintf(cfile, sizeof(cfile), "/proc/%ld/comm", tracer);
        FILE *f = fopen(cfile, "r");
        if (f && fgets(comm, sizeof(comm), f))
            comm[strcspn(comm, "\n")] = '\0';
        if (f)
            fclose(f);
        snprintf(why, CN__REASON_MAX, "pid %d is already traced by pid %ld (%s): detach that "
                 "debugger first", (int)target, tracer, comm);
        return 1;
    }
    return 0;
}

/* ===========================================================================
 * The bridge
 */

static void on_flush_timer(uv_timer_t *t);

static void on_closed(uv_handle_t *h)
{
    bridge_t *b = h->data;
    if (--b->closing == 0)
        free(b);
}

static void close_timers(bridge_t *b)
{
    uv_close((uv_handle_t *)&b->kill_timer, on_closed);
    uv_close((uv_handle_t *)&b->flush_timer, on_closed);
}

static void on_kill_timer(uv_timer_t *t)
{
    bridge_t *b = t->data;
    if (b->reaped)
        return;
    cn_log(CN_LOG_WARN, "gdb bridge: gdb (pid %d) ignored SIGTERM: SIGKILL", (int)b->pid);
    kill(b->pid, SIGKILL);
    kill(b->target, SIGCONT); /* in case gdb left it stopped */
}

/* Ends gdb: SIGTERM makes it detach and exit; SIGKILL if it will not. */
static void end_gdb(bridge_t *b, const char *why)
{
    if (b->ending || b->reaped)
        return;
    b->ending = 1;
    if (why && !b->why[0])
        snprintf(b->why, sizeof(b->why), "%s", why);
    kill(b->pid, SIGTERM);
    uv_timer_start(&b->kill_timer, on_kill_timer, GDB_KILL_MS, 0);
}

/* Sends the first n bytes of what gdb wrote, and keeps the rest. A
 * refused attach ends the bridge, with the reason. */
static void relay(bridge_t *b, size_t n)
{
    if (n == 0)
        return;
    if (!b->refused && memmem(b->pend, n, refused_text, sizeof(refused_text) - 1)) {
        b->refused = 1;
        end_gdb(b, "ptrace was refused");
    }
    say_as_child(b, b->pend, n);
    b->npend -= n;
    memmove(b->pend, b->pend + n, b->npend);
}

/* What gdb wrote goes out in whole lines, so that the console never
 * breaks a line where a read happened to end. The rest waits for more,
 * unless it is gdb's prompt (gdb waits for a line: dropped, the console
 * shows its own) or gdb pauses (a question such as "(y or n) "). */
static void relay_lines(bridge_t *b)
{
    const char *nl = memrchr(b->pend, '\n', b->npend);
    if (nl)
        relay(b, (size_t)(nl - b->pend) + 1);
    size_t plen = sizeof(gdb_prompt) - 1;
    if (b->npend == plen && memcmp(b->pend, gdb_prompt, plen) == 0)
        b->npend = 0;
    if (b->npend)
        uv_timer_start(&b->flush_timer, on_flush_timer, GDB_FLUSH_MS, 0);
}

static void on_flush_timer(uv_timer_t *t)
{
    bridge_t *b = t->data;
    relay(b, b->npend);
}

static void stop_reading(bridge_t *b)
{
    if (b->eof)
        return;
    b->eof = 1;
    uv_close((uv_handle_t *)&b->poll, on_closed);
    close(b->master);
    b->master = -1;
    uv_timer_stop(&b->flush_timer);
    relay(b, b->npend);
}

static void reap(bridge_t *b)
{
    int st;
    if (!b->reaped && waitpid(b->pid, &st, WNOHANG) == b->pid) {
        b->reaped = 1;
        b->status = st;
        uv_timer_stop(&b->kill_timer);
    }
}

/* gdb has exited and its terminal is drained: the child has the console
 * again. */
static void finish(bridge_t *b)
{
    if (br != b || !b->eof || !b->reaped)
        return;
    br = NULL;
    char text[CN__REASON_MAX + 64];
    if (b->refused)
        snprintf(text, sizeof(text), "gdb could not attach: ptrace was refused (the kernel's "
                 "Yama policy, a seccomp filter or a missing CAP_SYS_PTRACE forbids it here)");
    else if (b->why[0])
        snprintf(text, sizeof(text), "gdb was stopped: %s", b->why);
    else if (WIFEXITED(b->status))
        snprintf(text, sizeof(text), "gdb exited (status %d)", WEXITSTATUS(b->status));
    else
        snprintf(text, sizeof(text), "gdb died of signal %d", WTERMSIG(b->status));
    cn_log(CN_LOG_INFO, "gdb bridge: %s; actor %u has its console back", text, b->actor);
    send_gdb(b->actor, b->sid, "done", text);
    close_timers(b);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
    (void)events;
    bridge_t *b = p->data;
    if (b->npend == sizeof(b->pend)) /* a line longer than the buffer: as it is */
        relay(b, b->npend);
    ssize_t n = status < 0 ? -1 : read(b->master, b->pend + b->npend, sizeof(b->pend) - b->npend);
    if (n > 0) {
        b->npend += (size_t)n;
        relay_lines(b);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && status >= 0)
        return;
    /* EIO: gdb and everything it started have closed the terminal. */
    stop_reading(b);
    reap(b);
    finish(b);
}

/* The environment gdb runs in: ours, with TERM=dumb (plain output for
 * the console) and without CANOPY_* (a program gdb starts is no actor). */
static char **gdb_env(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof(*env));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CANOPY_", 7) != 0 && strncmp(environ[i], "TERM=", 5) != 0)
            env[k++] = environ[i];
    env[k++] = "TERM=dumb";
    env[k] = NULL;
    return env;
}

/* Runs gdb on a new pseudo-terminal, attached to b->target. */
static int spawn_gdb(bridge_t *b, const char *gdb, char *why)
{
    int master, slave;
    char name[128];
    struct winsize ws = {.ws_row = GDB_ROWS, .ws_col = GDB_COLS};
    if (openpty(&master, &slave, name, NULL, &ws) < 0) {
        snprintf(why, CN__REASON_MAX, "no pseudo-terminal for gdb: %s", strerror(errno));
        return -1;
    }
    struct termios tio;
    if (tcgetattr(slave, &tio) == 0) {
        tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL); /* the console shows what was typed */
        tio.c_oflag &= ~(tcflag_t)ONLCR;          /* "\n", not "\r\n" */
        tcsetattr(slave, TCSANOW, &tio);
    }
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);

    char pid[24];
    snprintf(pid, sizeof(pid), "%d", (int)b->target);
    char *argv[] = {(char *)gdb,
                    "-q",
                    "-iex", "set pagination off",
                    "-iex", "set confirm off",
                    "-iex", "set editing off",
                    "-iex", "set width 0",
                    "-p", pid,
                    NULL};
    /* A new session whose controlling terminal is the slave: opened after
     * setsid, it becomes gdb's terminal, and ETX on it interrupts gdb. */
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, name, O_RDWR, 0);
    posix_spawn_file_actions_adddup2(&fa, 0, 1);
    posix_spawn_file_actions_adddup2(&fa, 0, 2);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    char **env = gdb_env();
    cn__broker_unbatch(); /* gdb would inherit it */
    int rc = env ? posix_spawn(&b->pid, gdb, &fa, &attr, argv, env) : ENOMEM;
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(slave);
    if (rc != 0) {
        close(master);
        snprintf(why, CN__REASON_MAX, "cannot run %s: %s", gdb, strerror(rc));
        return -1;
    }
    b->master = master;
    return 0;
}

/* ===========================================================================
 * Entry points
 */

void cn__gdb_on_start(const cn_wire_msg_t *m)
{
    uint32_t child = m->hdr.src;
    uint64_t sid = m->hdr.cid;
    char why[CN__REASON_MAX] = "", gdb[CN__PATH_MAX];
    pid_t target = cn__child_pid(child);
    if (target <= 0)
        snprintf(why, sizeof(why), "actor %u is not a live child of %s", child, cn__rt.path);
    else if (br)
        snprintf(why, sizeof(why), "gdb already runs in %s, for actor %u", cn__rt.path, br->actor);
    if (why[0] || find_gdb(gdb, sizeof(gdb), why) < 0 || ptrace_refused(target, why)) {
        cn_log(CN_LOG_INFO, "gdb bridge: not for actor %u: %s", child, why);
        send_gdb(child, sid, "failed", why);
        return;
    }
    bridge_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        send_gdb(child, sid, "failed", "out of memory");
        return;
    }
    b->actor = child;
    b->sid = sid;
    b->target = target;
    b->since_us = cn__now_us();
    if (spawn_gdb(b, gdb, why) < 0) {
        free(b);
        cn_log(CN_LOG_WARN, "gdb bridge: %s", why);
        send_gdb(child, sid, "failed", why);
        return;
    }
    uv_poll_init(&cn__rt.loop, &b->poll, b->master);
    uv_timer_init(&cn__rt.loop, &b->kill_timer);
    uv_timer_init(&cn__rt.loop, &b->flush_timer);
    b->poll.data = b->kill_timer.data = b->flush_timer.data = b;
    b->closing = 3;
    uv_poll_start(&b->poll, UV_READABLE | UV_DISCONNECT, on_readable);
    br = b;
    cn_log(CN_LOG_INFO, "gdb bridge: %s (pid %d) attaches to actor %u (pid %d)", gdb, (int)b->pid,
           child, (int)target);
    char hello[CN__PATH_MAX + 160];
    int n = snprintf(hello, sizeof(hello), "[%s runs %s -p %d (gdb pid %d); gdb commands now, "
                     "'quit' to detach and come back]\n", cn__rt.path, gdb, (int)target,
                     (int)b->pid);
    say_as_child(b, hello, n < 0 ? 0 : (size_t)n < sizeof(hello) ? (size_t)n : sizeof(hello) - 1);
}

int cn__gdb_input(uint32_t actor, uint64_t sid, const char *data, size_t len)
{
    bridge_t *b = br;
    if (b == NULL || b->actor != actor || b->sid != sid || b->eof)
        return 0;
    if (len == 1 && data[0] == CN__INTERRUPT[0]) {
        if (write(b->master, data, 1) < 0) /* the line discipline: SIGINT */
            cn_log(CN_LOG_DEBUG, "gdb bridge: %s", strerror(errno));
        return 1;
    }
    char line[4096];
    int n = snprintf(line, sizeof(line), "%.*s\n", (int)(len < sizeof(line) - 2 ? len : sizeof(line) - 2),
                     data);
    if (n > 0 && write(b->master, line, (size_t)n) < 0)
        cn_log(CN_LOG_WARN, "gdb bridge: a line for gdb was lost: %s", strerror(errno));
    return 1;
}

void cn__gdb_released(uint32_t actor, const char *why)
{
    if (br && br->actor == actor)
        end_gdb(br, why);
}

int cn__gdb_passing(const cn_wire_msg_t *m)
{
    if (br == NULL)
        return 0;
    if (m->hdr.type == CN_MSG_CONSOLE_IN)
        return cn__gdb_input(m->hdr.dst, m->hdr.cid, m->u.console_in.data.ptr,
                             m->u.console_in.data.len);
    if (m->hdr.type == CN_MSG_LOCK_RELEASE && m->hdr.src == CN_ROOT_ID)
        cn__gdb_released(m->hdr.dst, "the console was force-released");
    return 0;
}

void cn__gdb_actor_gone(uint32_t actor)
{
    if (br && br->actor == actor && !br->reaped) {
        snprintf(br->why, sizeof(br->why), "actor %u is gone", actor);
        br->ending = 1;
        kill(br->pid, SIGKILL); /* nothing left to detach from */
    }
}

void cn__gdb_on_sigchld(void)
{
    if (br) {
        reap(br);
        finish(br);
    }
}

void cn__gdb_stop(void)
{
    bridge_t *b = br;
    if (b == NULL)
        return;
    br = NULL;
    if (!b->reaped) {
        kill(b->pid, SIGKILL);
        kill(b->target, SIGCONT);
        waitpid(b->pid, NULL, 0);
    }
    stop_reading(b);
    close_timers(b);
}

void cn__gdb_pack(msgpack_packer *pk)
{
    cn__pack_cstr(pk, "gdb");
    if (br == NULL) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 4);
    cn__pack_kint(pk, "actor", br->actor);
    cn__pack_kint(pk, "pid", br->pid);
    cn__pack_kint(pk, "target_pid", br->target);
    cn__pack_kint(pk, "since_us", (int64_t)br->since_us);
}
