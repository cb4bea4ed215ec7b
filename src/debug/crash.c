/*
 * crash.c: native crashes (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT).
 *
 * The handler runs on the thread that crashed. It always writes the stack
 * to stderr, which the parent turns into log lines, so the root's log says
 * where an actor died. In debug mode it then hands the crash to the broker
 * (cn__wake is async-signal-safe) and parks; the broker opens a
 * post-mortem session with every other thread stopped, and when the user
 * continues, lets the thread go on to die of its signal, so the parent
 * sees the true exit status.
 *
 * Outside debug mode the broker writes the stack, so that it has function
 * names and file:line (cn__crash_write_stack): the handler wakes it and
 * waits at most CN__CRASH_WAIT_MS for it to begin; a broker that does not
 * (it may be stuck behind a lock the crashed thread holds) leaves the
 * raw stack to the handler. `claimed` makes it one or the other.
 *
 * A crash on the broker thread itself cannot be debugged here (the broker
 * runs the REPL): it is logged and the actor dies at once.
 *
 * Only async-signal-safe calls in the handler: backtrace() (made safe by
 * an early call, cn__unwinder_warm, in debug mode; outside debug mode the
 * crash log's first backtrace() may load libgcc_s from the handler, the
 * usual risk of crash loggers, taken so that actors do not all pay for
 * the unwinder at start: an alarm ends a handler that deadlocks there),
 * write, atomics, futex, alarm, signal, raise.
 */
#include <execinfo.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "inspect/inspect.h"
#include "runtime/rt.h"

static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static struct {
    _Atomic int sig; /* the first crash's signal; 0 while none */
    _Atomic int tid;
    _Atomic int ready;   /* the stack below is complete */
    _Atomic int release; /* futex word: the broker lets the thread die */
    _Atomic int claimed; /* the stack's writer: the broker or the handler */
    _Atomic int written; /* futex word: the broker has written it */
    int nframes;
    void *frames[CN__BT_FRAMES];
} cr;

static void say(const char *s)
{
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

/* Writes n in decimal to stderr. */
static void say_int(int n)
{
    char buf[16];
    int i = sizeof(buf);
    unsigned u = n < 0 ? (unsigned)-n : (unsigned)n;
    do
        buf[--i] = (char)('0' + u % 10);
    while ((u /= 10) && i > 1);
    if (n < 0)
        buf[--i] = '-';
    ssize_t r = write(2, buf + i, sizeof(buf) - (size_t)i);
    (void)r;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV (segmentation fault)";
    case SIGBUS:
        return "SIGBUS (bus error)";
    case SIGFPE:
        return "SIGFPE (arithmetic exception)";
    case SIGILL:
        return "SIGILL (illegal instruction)";
    case SIGABRT:
        return "SIGABRT (aborted)";
    default:
        return "a fatal signal";
    }
}

const char *cn__crash_sig_name(int sig)
{
    return sig_name(sig);
}

/* Async-signal-safe: waits until *word is no longer 0, up to about ms
 * (in 100 ms steps, so an EINTR does not end the wait early). */
static void futex_wait_set(_Atomic int *word, int ms)
{
    struct timespec tick = {0, 100 * 1000 * 1000};
    for (int waited = 0; waited < ms && !atomic_load(word); waited += 100)
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 0, &tick, NULL, 0);
}

static void die(int sig)
{
    if (cn__rt.is_root) {
        cn__attach_unlink_now();
        cn__tty_reset();
    }
    signal(sig, SIG_DFL);
    raise(sig); /* delivered as the handler returns: blocked until then */
}

static void on_crash(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    int none = 0;
    if (!atomic_compare_exchange_strong(&cr.sig, &none, sig)) {
        /* Another thread crashed first and owns the session; this one
         * waits to die with the process. */
        for (;;)
            pause();
    }
    /* A crash inside malloc holds its lock, and backtrace() may then
     * deadlock loading the unwinder (see the top): past this, SIGALRM
     * ends the process rather than leave it hanging. Not in debug mode,
     * where a post-mortem may last. */
    if (!cn__debug_mode()) {
        signal(SIGALRM, SIG_DFL);
        alarm(CN__CRASH_WAIT_MS * 4 / 1000);
    }
    int tid = (int)syscall(SYS_gettid);
    atomic_store(&cr.tid, tid);
    cr.nframes = cn__stack_from_signal(cr.frames, CN__BT_FRAMES, uc);
    atomic_store(&cr.ready, 1);
    if (cn__rt.is_root) { /* a child's stderr is logged under its path already */
        say(cn__rt.path);
        say(": ");
    }
    say("crashed: ");
    say(sig_name(sig));
    say(" in thread ");
    say_int(tid);
    say("; stack:\n");
    int broker = cn__rt.started && tid != cn__broker_tid;
    if (broker) {
        cn__wake();
        futex_wait_set(&cr.claimed, CN__CRASH_WAIT_MS);
    }
    int unclaimed = 0;
    if (atomic_compare_exchange_strong(&cr.claimed, &unclaimed, 2))
        backtrace_symbols_fd(cr.frames, cr.nframes, 2);
    else /* the broker writes it: give it the time addr2line may take */
        futex_wait_set(&cr.written, 2 * CN__CRASH_WAIT_MS);
    if (broker && cn__debug_mode()) {
        say("debug mode: waiting in the debugger for a post-mortem\n");
        cn__wake();
        while (!atomic_load(&cr.release))
            syscall(SYS_futex, &cr.release, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    }
    die(sig);
}

void cn__crash_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(crash_sigs) / sizeof(crash_sigs[0]); i++) {
        struct sigaction old;
        /* The program's own handlers (and a sanitizer's) stay in charge. */
        if (sigaction(crash_sigs[i], NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
            old.sa_handler == SIG_DFL)
            sigaction(crash_sigs[i], &sa, NULL);
    }
}

int cn__crash_pending(int *sig, int *tid, void **frames, int *nframes, int max)
{
    if (!atomic_load(&cr.ready))
        return 0;
    *sig = atomic_load(&cr.sig);
    *tid = atomic_load(&cr.tid);
    int n = cr.nframes < max ? cr.nframes : max;
    if (frames && n > 0)
        memcpy(frames, cr.frames, sizeof(void *) * (size_t)n);
    *nframes = frames ? n : cr.nframes;
    return 1;
}

void cn__crash_write_stack(int then_release)
{
    int none = 0;
    if (!atomic_compare_exchange_strong(&cr.claimed, &none, 1))
        return; /* the handler gave up waiting, and wrote it */
    syscall(SYS_futex, &cr.claimed, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn__bt_write(&sb, cr.frames, cr.nframes, 1, CN__CRASH_WAIT_MS);
    for (size_t off = 0; off < sb.size;) {
        ssize_t n = write(2, sb.data + off, sb.size - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    msgpack_sbuffer_destroy(&sb);
    atomic_store(&cr.written, 1);
    syscall(SYS_futex, &cr.written, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    if (then_release)
        cn__crash_release();
}

void cn__crash_release(void)
{
    atomic_store(&cr.release, 1);
    syscall(SYS_futex, &cr.release, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
