/*
 * freeze.c: stopping this actor's threads and reading their stacks (see
 * freeze.h).
 *
 * The broker fills a table with the thread ids it found in /proc/self/task,
 * then signals each one. A thread's handler finds its row by tid, records
 * its stack with backtrace(), and then, as the row's state says, runs on,
 * parks at once, or (holding a runtime lock) parks at its last unlock. A
 * parked thread sleeps on a futex word that cn__thaw() clears.
 *
 * Only async-signal-safe work happens in the handler: backtrace() is made
 * safe by calling it once on the broker before the first freeze (its first
 * call loads libgcc_s, which every actor would otherwise pay for at start:
 * about 300 KiB resident and a millisecond), and the rest is atomics and
 * raw futex calls.
 */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "canopy/errors.h"
#include "freeze.h"

#define FZ_MAX 256 /* threads one freeze looks at */

__thread int cn__tl_held __attribute__((tls_model("initial-exec")));
__thread volatile int cn__tl_park __attribute__((tls_model("initial-exec")));
int cn__broker_tid;

typedef struct row {
    _Atomic int tid;
    _Atomic int state;
    char comm[16]; /* its name, read before it is signalled: it may end on EINTR */
    int nframes;
    void *frames[CN__BT_FRAMES];
} row_t;

/* rows: FZ_MAX of them, allocated by the first freeze. Large arrays that
 * most actors never use are on the heap, not static: an idle actor's
 * static data is then a few pages of small variables, not those pages
 * spread across the edges of the arrays (docs/performance.md). */
static struct {
    row_t *rows;
    _Atomic int nrows;
    _Atomic int park;   /* this freeze stops threads */
    _Atomic int frozen; /* futex word: parked threads sleep while it is 1 */
    _Atomic int parked; /* threads asleep on it now */
    int sig;
} fz;

static int my_tid(void)
{
    return (int)syscall(SYS_gettid);
}

static void futex_wait(_Atomic int *w, int val)
{
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic int *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static row_t *my_row(int tid)
{
    int n = atomic_load(&fz.nrows);
    for (int i = 0; i < n; i++)
        if (atomic_load(&fz.rows[i].tid) == tid)
            return &fz.rows[i];
    return NULL;
}

/* Sleeps while the freeze lasts. Async-signal-safe. */
static void park(row_t *r)
{
    atomic_fetch_add(&fz.parked, 1);
    if (r)
        atomic_store(&r->state, CN__FZ_PARKED);
    while (atomic_load(&fz.frozen))
        futex_wait(&fz.frozen, 1);
    atomic_fetch_sub(&fz.parked, 1);
}

static void on_freeze(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si;
    int saved = errno;
    row_t *r = my_row(my_tid());
    if (r == NULL || atomic_load(&r->state) != CN__FZ_ASKED) {
        errno = saved;
        return;
    }
    r->nframes = cn__stack_from_signal(r->frames, CN__BT_FRAMES, uc);
    if (!atomic_load(&fz.park)) {
        atomic_store(&r->state, CN__FZ_SEEN);
    } else if (cn__tl_held > 0) {
        cn__tl_park = 1; /* cn__unlock parks it */
        atomic_store(&r->state, CN__FZ_DEFERRED);
    } else {
        park(r);
    }
    errno = saved;
}

void cn__park_point(void)
{
    cn__tl_park = 0;
    if (!atomic_load(&fz.frozen))
        return;
    int saved = errno;
    park(my_row(my_tid()));
    errno = saved;
}

/* Drops frames[0..i) and returns how many are left. */
static int drop(void **frames, int n, int i)
{
    if (i <= 0)
        return n;
    if (i >= n)
        return 0;
    memmove(frames, frames + i, sizeof(void *) * (size_t)(n - i));
    return n - i;
}

int cn__stack_after(void **frames, int max, const void *fn)
{
    int n = backtrace(frames, max);
    /* The first return address inside fn (functions that call this are
     * small) is fn's own frame; its caller's is next. Which frames come
     * before it depends on the unwinder (a sanitizer's differs), so it is
     * looked for rather than counted. */
    for (int i = 0; i < n; i++)
        if ((uintptr_t)frames[i] - (uintptr_t)fn < 4096)
            return drop(frames, n, i + 1);
    return n;
}

int cn__stack_from_signal(void **frames, int max, const void *ucontext)
{
    int n = backtrace(frames, max);
    uintptr_t pc = 0;
#if defined(__x86_64__)
    pc = (uintptr_t)((const ucontext_t *)ucontext)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    pc = (uintptr_t)((const ucontext_t *)ucontext)->uc_mcontext.pc;
#endif
    /* The interrupted instruction follows the handler's frames and the
     * kernel's trampoline, however many the unwinder shows of them. */
    for (int i = 0; pc && i < n; i++)
        if ((uintptr_t)frames[i] == pc)
            return drop(frames, n, i);
    return n;
}

void cn__unwinder_warm(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    void *warm[4];
    backtrace(warm, 4); /* loads libgcc_s now, not in a handler */
}

void cn__freeze_init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    fz.sig = SIGRTMIN + 4;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_freeze;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(fz.sig, &sa, NULL);
}

static void read_comm(int tid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t got = read(fd, out, n - 1);
    close(fd);
    if (got > 0 && out[got - 1] == '\n')
        got--;
    out[got > 0 ? got : 0] = '\0';
}

int cn__frozen(void)
{
    return atomic_load(&fz.frozen);
}

int cn__freeze(int park_them, int skip_tid, int64_t timeout_ms, cn__thr_stack_t *out,
               size_t max, size_t *n)
{
    *n = 0;
    if (atomic_load(&fz.frozen) || atomic_load(&fz.parked))
        return CN_EBUSY;
    if (fz.rows == NULL && (fz.rows = calloc(FZ_MAX, sizeof(*fz.rows))) == NULL)
        return CN_ENOMEM; /* before any row can be asked for: my_row needs nrows > 0 */
    cn__freeze_init();
    cn__unwinder_warm(); /* before any handler needs it */
    int self = my_tid(), count = 0;
    atomic_store(&fz.nrows, 0);
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return CN_EIO;
    for (struct dirent *e; (e = readdir(d)) != NULL && count < FZ_MAX;) {
        char *end;
        long tid = strtol(e->d_name, &end, 10); /* "." and ".." are not threads */
        if (*end != '\0' || tid <= 0 || tid == self || tid == skip_tid)
            continue;
        row_t *r = &fz.rows[count++];
        r->nframes = 0;
        read_comm((int)tid, r->comm, sizeof(r->comm));
        atomic_store(&r->state, CN__FZ_ASKED);
        atomic_store(&r->tid, (int)tid);
    }
    closedir(d);
    atomic_store(&fz.park, park_them);
    atomic_store(&fz.frozen, park_them);
    atomic_store(&fz.nrows, count);
    pid_t pid = getpid();
    for (int i = 0; i < count; i++)
        if (syscall(SYS_tgkill, pid, atomic_load(&fz.rows[i].tid), fz.sig) < 0)
            atomic_store(&fz.rows[i].state, CN__FZ_NOANSWER); /* it has exited */
    /* Wait for the answers: a few hundred microseconds when all is well. */
    struct timespec nap = {0, 200 * 1000};
    for (int64_t waited_us = 0;; waited_us += 200) {
        int pending = 0;
        for (int i = 0; i < count; i++)
            pending += atomic_load(&fz.rows[i].state) == CN__FZ_ASKED;
        if (pending == 0 || waited_us >= timeout_ms * 1000)
            break;
        nanosleep(&nap, NULL);
    }
    for (int i = 0; i < count && *n < max; i++) {
        row_t *r = &fz.rows[i];
        int st = CN__FZ_ASKED;
        atomic_compare_exchange_strong(&r->state, &st, CN__FZ_NOANSWER);
        cn__thr_stack_t *t = &out[(*n)++];
        t->tid = atomic_load(&r->tid);
        t->state = atomic_load(&r->state);
        t->nframes = t->state == CN__FZ_NOANSWER ? 0 : r->nframes;
        memcpy(t->frames, r->frames, sizeof(void *) * (size_t)t->nframes);
        snprintf(t->comm, sizeof(t->comm), "%s", r->comm);
    }
    if (!park_them)
        atomic_store(&fz.nrows, 0);
    return 0;
}

void cn__thaw(void)
{
    if (!atomic_load(&fz.frozen))
        return;
    atomic_store(&fz.frozen, 0);
    futex_wake_all(&fz.frozen);
    /* Let them all leave before the table can be reused. */
    struct timespec nap = {0, 100 * 1000};
    for (int i = 0; i < 1000 && atomic_load(&fz.parked) > 0; i++)
        nanosleep(&nap, NULL);
    atomic_store(&fz.nrows, 0);
}
