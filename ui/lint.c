/*
 * lint.c: name the hang. Six checks over one whole-tree snapshot:
 *
 *   stuck-cancel    a cancel asked for long ago is not acknowledged
 *   stalled-stream  a sender has waited on backpressure too long
 *   orphan-stream   one end of a stream is open, the other end is gone
 *   unreaped        a child exited and nobody reaped it, or it is gone
 *                   from the system while still in the tree
 *   wait-for-cycle  threads waiting on each other's calls and contexts
 *                   across actors: a cross-process deadlock
 *   long-wait       a call or result waited on for long, whose task is
 *                   not waiting on canopy itself: its own lock or system
 *                   call, a loop, a sleep, no free task thread, a stopped
 *                   or silent actor (a warning: a long job looks alike)
 *
 * "Long ago" is CANOPY_LINT_AFTER_MS (default 2000 ms), a long wait
 * CANOPY_LINT_WAIT_MS (default 10 000 ms). Each finding names
 * the actors and contexts involved and says what the waiting thread is
 * doing, in one sentence.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ui.h"

typedef struct {
    const cn_snapshot_t *s;
    lint_t *out;
    size_t max, n;
    uint64_t after_us; /* CANOPY_LINT_AFTER_MS: "long ago" */
    uint64_t wait_us;  /* CANOPY_LINT_WAIT_MS: a long wait (long-wait) */
} run_t;

static void add(run_t *r, const char *name, const char *sev, const char *actors, const char *fmt,
                ...)
{
    if (r->n < r->max) {
        lint_t *l = &r->out[r->n];
        l->name = name;
        l->severity = sev;
        snprintf(l->actors, sizeof(l->actors), "%s", actors);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->what, sizeof(l->what), fmt, ap);
        va_end(ap);
    }
    r->n++;
}

/* Adds `more` to the sentence in buf (cap bytes), cut if it must be. */
static void append(char *buf, size_t cap, const char *more)
{
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s", more);
}

/* ui.h */
const cn_snap_actor_t *ui_actor_by_id(const cn_snapshot_t *s, int64_t id)
{
    for (size_t i = 0; i < s->nactors; i++)
        if (s->actors[i].id == id)
            return &s->actors[i];
    return NULL;
}

static const char *path_of(const cn_snapshot_t *s, int64_t id, char *buf, size_t n)
{
    const cn_snap_actor_t *a = ui_actor_by_id(s, id);
    if (a && (a->path || a->name))
        return a->path ? a->path : a->name;
    snprintf(buf, n, "actor %lld", (long long)id);
    return buf;
}

static uint64_t since(const cn_snap_actor_t *a, uint64_t t)
{
    return t && a->now_us > t ? a->now_us - t : 0;
}

/* The thread in `a` running the task that `caller` numbered `cid`. */
static const cn_snap_thread_t *task_thread(const cn_snap_actor_t *a, uint32_t caller, uint64_t cid)
{
    for (size_t i = 0; a && i < a->nthreads; i++)
        if (a->threads[i].fn && a->threads[i].task_caller == caller &&
            a->threads[i].task_cid == cid)
            return &a->threads[i];
    return NULL;
}

static const cn_snap_thread_t *thread_tid(const cn_snap_actor_t *a, int tid)
{
    for (size_t i = 0; a && tid && i < a->nthreads; i++)
        if (a->threads[i].tid == tid)
            return &a->threads[i];
    return NULL;
}

/* ui.h */
const cn_snap_ctx_t *ui_ctx_at(const cn_snap_actor_t *a, uint64_t cid, const char *role,
                               uint32_t peer)
{
    for (size_t i = 0; a && i < a->ncontexts; i++)
        if (a->contexts[i].cid == cid && a->contexts[i].peer == peer && a->contexts[i].role &&
            strcmp(a->contexts[i].role, role) == 0)
            return &a->contexts[i];
    return NULL;
}

/* ui.h */
int ui_in_gdb(const cn_snapshot_t *s, uint32_t id)
{
    for (size_t i = 0; i < s->nactors; i++) {
        const msgpack_object *d = cn_msgpack_get(s->actors[i].raw, "debug");
        const msgpack_object *g = d ? cn_msgpack_get(d, "gdb") : NULL;
        const msgpack_object *who = g && g->type == MSGPACK_OBJECT_MAP ? cn_msgpack_get(g, "actor")
                                                                        : NULL;
        if (who && who->type == MSGPACK_OBJECT_POSITIVE_INTEGER && who->via.u64 == id)
            return 1;
    }
    return 0;
}

/* ui.h */
const char *ui_shown_state(const cn_snap_actor_t *a)
{
    const msgpack_object *d = cn_msgpack_get(a->raw, "debug");
    const msgpack_object *st = d ? cn_msgpack_get(d, "state") : NULL;
    if (st && st->type == MSGPACK_OBJECT_STR) {
        if (st->via.str.size == 7 && memcmp(st->via.str.ptr, "holding", 7) == 0)
            return "debugger";
        if (st->via.str.size == 7 && memcmp(st->via.str.ptr, "waiting", 7) == 0)
            return "lock-wait";
    }
    return a->state ? a->state : "?";
}

/* Whether a's threads are parked for the debugger (a break or a crash,
 * once it holds the console): what they were waiting on, they no longer
 * wait on. Until it has the console they run on. */
static int stopped(const cn_snap_actor_t *a)
{
    const msgpack_object *d = cn_msgpack_get(a->raw, "debug");
    const msgpack_object *st = d ? cn_msgpack_get(d, "stopped") : NULL;
    return st && st->type == MSGPACK_OBJECT_POSITIVE_INTEGER && st->via.u64 != 0;
}

/* What a thread is, in a word: the task it runs, else its kind (main,
 * user). */
static const char *thread_label(const cn_snap_thread_t *t)
{
    return t->fn ? t->fn : t->kind ? t->kind : "?";
}

/* "blocked in recv on root cid 9 for 5s", "running fn (not in a blocking
 * call)", ... */
static void describe_thread(const cn_snapshot_t *s, const cn_snap_actor_t *a,
                            const cn_snap_thread_t *t, char *out, size_t n)
{
    char buf[32];
    if (t == NULL) {
        /* Queued: every task thread it may have is busy (max_threads). */
        size_t busy = 0;
        for (size_t i = 0; i < a->nthreads; i++)
            busy += a->threads[i].fn != NULL;
        const msgpack_object *mx = cn_msgpack_get(a->raw, "threads_max");
        if (mx && mx->type == MSGPACK_OBJECT_POSITIVE_INTEGER && busy >= mx->via.u64 &&
            busy == 1)
            snprintf(out, n, "no thread runs it: it is queued, and the 1 task thread the actor "
                             "may have (cn_config_t.max_threads) is busy with another call");
        else if (mx && mx->type == MSGPACK_OBJECT_POSITIVE_INTEGER && busy >= mx->via.u64)
            snprintf(out, n, "no thread runs it: it is queued, and all %zu task threads the "
                             "actor may have (cn_config_t.max_threads) are busy with other "
                             "calls", busy);
        else
            snprintf(out, n, "its task has no thread running it: it is queued, has just "
                             "ended, or its thread ended without answering");
        return;
    }
    char for_s[16]; /* as every age is written (cli.md) */
    ui_fmt_age(for_s, sizeof(for_s), since(a, t->since_us));
    /* Where it waits, the function it runs too: "thread 7 is in sleep"
     * left the user to find which code sleeps. */
    char fn[80] = "";
    if (t->fn || t->kind)
        snprintf(fn, sizeof(fn), " (%s)", thread_label(t));
    if (t->doing && strcmp(t->doing, "running") == 0)
        snprintf(out, n, "thread %d is running %s outside any canopy call for %s",
                 t->tid, t->fn ? t->fn : "its code", for_s);
    else if (t->doing && strcmp(t->doing, "debugger") == 0) /* its peer is the root's lock */
        snprintf(out, n, "thread %d is stopped at a breakpoint (cn_breakpoint) for %s",
                 t->tid, for_s);
    else if (t->doing && strcmp(t->doing, "reap") == 0) /* cn_cancel, cn_child_wait */
        snprintf(out, n, "thread %d%s is waiting for its child %s to exit, for %s", t->tid, fn,
                 path_of(s, t->peer, buf, sizeof(buf)), for_s);
    else if (t->doing && (strcmp(t->doing, "sleep") == 0 || strcmp(t->doing, "spawn") == 0))
        snprintf(out, n, "thread %d%s is in %s for %s", t->tid, fn, t->doing,
                 for_s);
    else
        snprintf(out, n, "thread %d%s is blocked in %s on %s (cid %llu) for %s", t->tid, fn,
                 t->doing ? t->doing : "?", path_of(s, t->peer, buf, sizeof(buf)),
                 (unsigned long long)t->cid, for_s);
}

/* What t, of a, is doing, then `tail` if t is running its own code, then
 * whether a is in the debugger. */
static void describe(const cn_snapshot_t *s, const cn_snap_actor_t *a, const cn_snap_thread_t *t,
                     const char *tail, char *out, size_t n)
{
    if (stopped(a)) { /* nothing runs there until it is continued */
        snprintf(out, n, "it is stopped in the debugger (see 'canopy attach')");
        return;
    }
    describe_thread(s, a, t, out, n);
    if (t && t->doing && strcmp(t->doing, "running") == 0)
        append(out, n, tail);
    const char *st = ui_shown_state(a);
    if (strcmp(st, "debugger") == 0) /* a breakpoint's thread: the others run on */
        append(out, n, "; it holds the debugger's console");
    else if (strcmp(st, "lock-wait") == 0)
        append(out, n, "; it waits for the debugger's console");
}

/* ===========================================================================
 * The checks
 */

/* Whether t waits in one of the `n` canopy calls named in `kinds`. */
static int waits_in(const cn_snap_thread_t *t, const char *const *kinds, size_t n)
{
    for (size_t k = 0; t->doing && k < n; k++)
        if (strcmp(t->doing, kinds[k]) == 0)
            return 1;
    return 0;
}

static void stuck_cancel(run_t *r)
{
    const cn_snapshot_t *s = r->s;
    char age[16];
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        for (size_t k = 0; k < a->ncontexts; k++) {
            const cn_snap_ctx_t *c = &a->contexts[k];
            if (!c->cancel || strcmp(c->cancel, "requested") != 0 ||
                since(a, c->cancel_us) < r->after_us)
                continue;
            const cn_snap_actor_t *task_at;
            uint32_t caller;
            if (strcmp(c->role, "callee") == 0) {
                task_at = a, caller = c->peer;
            } else {
                task_at = ui_actor_by_id(s, c->peer), caller = a->id;
                const cn_snap_ctx_t *other = ui_ctx_at(task_at, c->cid, "callee", a->id);
                if (other && other->cancel && strcmp(other->cancel, "requested") == 0)
                    continue; /* reported from the callee's side */
            }
            char how[256], buf[32], who[256];
            const cn_snap_thread_t *tt = task_thread(task_at, caller, c->cid);
            if (task_at == NULL || !task_at->responsive)
                snprintf(how, sizeof(how), "the actor running it does not answer");
            else
                describe(s, task_at, tt, ", so it never reaches a cancellation point", how,
                         sizeof(how));
            snprintf(who, sizeof(who), "%s, %s", path_of(s, caller, buf, sizeof(buf)),
                     task_at && task_at->path ? task_at->path : "?");
            add(r, "stuck-cancel", "error", who,
                "the cancel of %s (cid %llu) was asked for %s ago and is not acknowledged: "
                "on %s, %s",
                c->fn ? c->fn : "?", (unsigned long long)c->cid,
                ui_fmt_age(age, sizeof(age), since(a, c->cancel_us)),
                task_at && task_at->path ? task_at->path : "?", how);
        }
    }
}

static void stalled_stream_pass(run_t *r, int pass)
{
    const cn_snapshot_t *s = r->s;
    char age[16];
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        for (size_t k = 0; k < a->ncontexts; k++) {
            const cn_snap_ctx_t *c = &a->contexts[k];
            if (!c->has_stream || !c->stream.send_blocked ||
                since(a, c->stream.blocked_since_us) < r->after_us)
                continue;
            int we_call = strcmp(c->role, "caller") == 0;
            const cn_snap_actor_t *p = ui_actor_by_id(s, c->peer);
            const cn_snap_ctx_t *pc = ui_ctx_at(p, c->cid, we_call ? "callee" : "caller", a->id);
            const cn_snap_thread_t *pt =
                we_call ? task_thread(p, a->id, c->cid) : thread_tid(p, pc ? pc->tid : 0);
            int downstream = pt && pt->doing && strcmp(pt->doing, "send") == 0;
            if (downstream != pass)
                continue;
            char how[400], buf[32], who[256];
            if (p == NULL || !p->responsive)
                snprintf(how, sizeof(how), "the receiver does not answer");
            else if (pc && pc->has_stream)
                describe(s, p, pt, "", how, sizeof(how));
            else
                snprintf(how, sizeof(how), "the receiver has not opened its end of the stream");
            if (downstream)
                append(how, sizeof(how),
                       ", itself held up by backpressure (the stall listed before this one)");
            snprintf(who, sizeof(who), "%s, %s", a->path ? a->path : "?",
                     path_of(s, c->peer, buf, sizeof(buf)));
            /* Credit goes back in batches: a window can be used up with
             * fewer messages buffered than it holds. */
            char fill[128];
            unsigned long long win = c->stream.peer_window,
                               in = pc && pc->has_stream ? pc->stream.buffered : 0;
            if (in >= win)
                snprintf(fill, sizeof(fill), "all %llu in its buffer", win);
            else
                snprintf(fill, sizeof(fill), "%llu in its buffer, the rest taken but not yet "
                                             "credited back", in);
            add(r, "stalled-stream", "warning", who,
                "a sender on %s's stream of %s (cid %llu) has waited %s for the receiver %s "
                "to take messages (its window of %llu is used up: %s): %s",
                a->path ? a->path : "?", c->fn ? c->fn : "?", (unsigned long long)c->cid,
                ui_fmt_age(age, sizeof(age), since(a, c->stream.blocked_since_us)),
                path_of(s, c->peer, buf, sizeof(buf)), win, fill, how);
        }
    }
}

/* In a chain of stages the stall furthest downstream is the cause and
 * the ones behind it follow from it: the cause is listed first (pass 0:
 * receivers that are not themselves blocked sending), the others after
 * it (pass 1), each saying that its receiver is stalled in turn. */
static void stalled_stream(run_t *r)
{
    for (int pass = 0; pass < 2; pass++)
        stalled_stream_pass(r, pass);
}

static void orphan_stream(run_t *r)
{
    const cn_snapshot_t *s = r->s;
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        for (size_t k = 0; k < a->ncontexts; k++) {
            const cn_snap_ctx_t *c = &a->contexts[k];
            if (!c->has_stream || !c->phase || (strcmp(c->phase, "streaming") != 0) ||
                (c->stream.local && strcmp(c->stream.local, "closed") == 0) ||
                since(a, c->opened_us) < r->after_us)
                continue;
            const cn_snap_actor_t *p = ui_actor_by_id(s, c->peer);
            if (p && !p->responsive)
                continue; /* cannot tell */
            int we_call = strcmp(c->role, "caller") == 0;
            const cn_snap_ctx_t *pc = ui_ctx_at(p, c->cid, we_call ? "callee" : "caller", a->id);
            if (pc && strcmp(pc->phase, "returned") != 0 && strcmp(pc->phase, "errored") != 0)
                continue;
            char buf[32], who[256];
            snprintf(who, sizeof(who), "%s, %s", a->path ? a->path : "?",
                     path_of(s, c->peer, buf, sizeof(buf)));
            add(r, "orphan-stream", "error", who,
                "%s's end of the stream of %s (cid %llu) is open, but the other end on %s %s",
                a->path ? a->path : "?", c->fn ? c->fn : "?", (unsigned long long)c->cid,
                path_of(s, c->peer, buf, sizeof(buf)),
                p == NULL ? "is gone: that actor is not in the tree"
                : pc      ? "has ended"
                          : "has no such context");
        }
    }
}

/* The state letter of a local process from /proc, or 0 if there is none. */
static char proc_state(int pid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char st = 0;
    if (fgets(line, sizeof(line), f)) {
        char *p = strrchr(line, ')');
        if (p && p[1] == ' ')
            st = p[2];
    }
    fclose(f);
    return st;
}

/* Whether a local process has left the system: no /proc entry (its
 * state letter, from proc_state, was 0) and kill says it does not exist. */
static int pid_gone(int pid, char st)
{
    return pid > 0 && st == 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

static void unreaped(run_t *r)
{
    const cn_snapshot_t *s = r->s;
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        if (!a->responsive || (a->host && strcmp(a->host, host) != 0))
            continue;
        for (size_t k = 0; k < a->nchildren; k++) {
            const cn_snap_child_t *c = &a->children[k];
            if (c->pid <= 0 || strcmp(c->state, "exited") == 0)
                continue;
            char st = proc_state(c->pid), who[256];
            snprintf(who, sizeof(who), "%s, %s/%s", a->path ? a->path : "?",
                     a->path ? a->path : "?", c->name ? c->name : "?");
            if (st == 'Z')
                add(r, "unreaped", "error", who,
                    "%s (pid %d) has exited but %s has not reaped it: a zombie",
                    c->name ? c->name : "?", c->pid, a->path ? a->path : "?");
            else if (strcmp(c->state, "reaped") != 0 && pid_gone(c->pid, st))
                add(r, "unreaped", "error", who,
                    "%s (pid %d) is gone from the system but still in %s's children (%s)",
                    c->name ? c->name : "?", c->pid, a->path ? a->path : "?", c->state);
        }
    }
}

/* Actors that did not answer the snapshot: their broker is not running.
 * Where the process is on this host, its state says why. */
static void unresponsive(run_t *r)
{
    const cn_snapshot_t *s = r->s;
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        if (a->responsive || ui_in_gdb(s, a->id))
            continue; /* a gdb that holds it says so elsewhere */
        char st = '\0';
        if (a->pid > 0)
            st = proc_state(a->pid);
        const char *why =
            st == 'T' || st == 't'
                ? "its process is stopped (SIGSTOP, ^Z or a tracer): kill -CONT resumes it"
            : st == 'Z' ? "its process has exited, and its parent has not reaped it yet"
            : st == 'D' ? "its process is in an uninterruptible wait (disk, NFS?)"
            : pid_gone(a->pid, st) ? "its process is gone"
                : "its broker thread does not run: the process may be overloaded, or "
                  "blocked in a runtime callback";
        char pid[32] = "";
        if (a->pid > 0)
            snprintf(pid, sizeof(pid), " (pid %d)", a->pid);
        add(r, "unresponsive", "warning", a->path ? a->path : a->name ? a->name : "?",
            "%s%s did not answer a snapshot within %u ms: %s",
            a->path ? a->path : a->name ? a->name : "?", pid, s->timeout_ms, why);
    }
}

/* Wait-for edges: a thread waiting on a call or context points at the
 * thread that must act for it: the callee's task thread when it is the
 * caller, the opener's thread when it is the callee. */
typedef struct {
    const cn_snap_actor_t *a;
    const cn_snap_thread_t *t;
    int next; /* index of the node it waits on, or -1 */
    int mark;
} node_t;

static int find_node(node_t *v, int n, const cn_snap_actor_t *a, const cn_snap_thread_t *t)
{
    for (int i = 0; i < n && t; i++)
        if (v[i].a == a && v[i].t == t)
            return i;
    return -1;
}

/*
 * Whether thread t of actor a, waiting on (t->peer, t->cid), waits as the
 * callee of its own task's context (on its opener) rather than on a call
 * or context of its own. Each actor numbers its own calls, so its task's
 * (caller, cid) may equal one of its own calls by chance: a call, open
 * or result is always its own, and a stream's end is told by the context
 * row this thread holds.
 */
static int serves_its_caller(const cn_snap_actor_t *a, const cn_snap_thread_t *t)
{
    if (!t->fn || t->task_caller != t->peer || t->task_cid != t->cid ||
        (strcmp(t->doing, "recv") != 0 && strcmp(t->doing, "send") != 0))
        return 0;
    const cn_snap_ctx_t *own = ui_ctx_at(a, t->cid, "caller", t->peer);
    return !(own && own->tid == t->tid); /* its own context of that number */
}

/*
 * Appends to text the threads that are not in the cycle through v[j] but
 * wait on it, directly or along a chain: they are held up by the deadlock
 * and end when it does (the root's call into the pair, say). The first
 * few by name, then how many more.
 */
static void held_up(const node_t *v, int n, int j, char *text, size_t cap)
{
    enum { NAMED = 3 };
    char *in_cycle = calloc((size_t)n, 1);
    if (in_cycle == NULL)
        return;
    int k = j;
    do {
        in_cycle[k] = 1;
        k = v[k].next;
    } while (k != j);
    int count = 0;
    char one[160];
    for (int i = 0; i < n; i++) {
        if (in_cycle[i] || v[i].next < 0)
            continue;
        int at = v[i].next, steps = 0;
        while (at >= 0 && !in_cycle[at] && steps++ < n)
            at = v[at].next;
        if (at < 0 || !in_cycle[at])
            continue;
        if (count < NAMED) {
            snprintf(one, sizeof(one), "%s%s thread %d (%s)",
                     count ? ", " : "; held up behind it: ", v[i].a->path ? v[i].a->path : "?",
                     v[i].t->tid, thread_label(v[i].t));
            append(text, cap, one);
        }
        count++;
    }
    if (count > NAMED) {
        snprintf(one, sizeof(one), " and %d more", count - NAMED);
        append(text, cap, one);
    }
    free(in_cycle);
}

static void wait_cycles(run_t *r)
{
    const cn_snapshot_t *s = r->s;
    int n = 0;
    for (size_t i = 0; i < s->nactors; i++)
        n += (int)s->actors[i].nthreads;
    node_t *v = calloc((size_t)n + 1, sizeof(*v));
    if (v == NULL)
        return;
    n = 0;
    for (size_t i = 0; i < s->nactors; i++)
        for (size_t k = 0; k < s->actors[i].nthreads; k++)
            v[n++] = (node_t){&s->actors[i], &s->actors[i].threads[k], -1, 0};
    static const char *const waits[] = {"call", "open", "result", "recv", "send"};
    for (int i = 0; i < n; i++) {
        const cn_snap_thread_t *t = v[i].t;
        int waiting = waits_in(t, waits, sizeof(waits) / sizeof(waits[0]));
        /* A wait counts once it has lasted: a short one is a message in
         * flight, not a deadlock (the parts of a snapshot are not taken at
         * one instant). */
        if (!waiting || since(v[i].a, t->since_us) < r->after_us || stopped(v[i].a))
            continue; /* a stopped actor's threads wait on nobody: they are parked */
        const cn_snap_actor_t *p = ui_actor_by_id(s, t->peer);
        const cn_snap_thread_t *to;
        int serves = serves_its_caller(v[i].a, t);
        const cn_snap_ctx_t *mine = ui_ctx_at(v[i].a, t->cid, serves ? "callee" : "caller",
                                              t->peer);
        if (strcmp(t->doing, "recv") == 0 && mine && mine->has_stream && mine->stream.buffered)
            continue; /* it has messages to take: it waits on nobody */
        if (serves) {
            const cn_snap_ctx_t *pc = ui_ctx_at(p, t->cid, "caller", v[i].a->id);
            to = thread_tid(p, pc ? pc->tid : 0);
        } else {
            to = task_thread(p, v[i].a->id, t->cid); /* we called it */
        }
        v[i].next = find_node(v, n, p, to);
    }
    for (int i = 0, stamp = 1; i < n; i++, stamp++) {
        int j = i, steps = 0;
        while (j >= 0 && v[j].mark == 0 && steps++ <= n) {
            v[j].mark = stamp;
            j = v[j].next;
        }
        if (j < 0 || v[j].mark != stamp)
            continue; /* no cycle, or one found from an earlier start */
        char text[768] = "", who[256] = "", buf[32];
        int k = j;
        do {
            size_t used = strlen(text), wu = strlen(who);
            snprintf(text + used, sizeof(text) - used, "%s thread %d (%s) waits in %s on %s -> ",
                     v[k].a->path ? v[k].a->path : "?", v[k].t->tid, thread_label(v[k].t),
                     v[k].t->doing, path_of(s, v[k].t->peer, buf, sizeof(buf)));
            snprintf(who + wu, sizeof(who) - wu, "%s%s", wu ? ", " : "",
                     v[k].a->path ? v[k].a->path : "?");
            k = v[k].next;
        } while (k != j);
        size_t used = strlen(text);
        snprintf(text + used, sizeof(text) - used, "back to %s thread %d",
                 v[j].a->path ? v[j].a->path : "?", v[j].t->tid);
        held_up(v, n, j, text, sizeof(text));
        add(r, "wait-for-cycle", "error", who, "deadlock across actors: %s", text);
    }
    free(v);
}

/*
 * A thread that has waited long on a call or a context's result whose
 * task is not itself waiting on canopy: it runs its own code (a lock of
 * the program's, a system call, a loop), sleeps, is queued for want of a
 * task thread, or its actor is stopped or silent. Waits on a task that is
 * waiting in turn are left to the thread at the end of that chain, and
 * recv is left out: a quiet stream is not a hang. A warning: a long job
 * looks the same.
 */
static void long_wait(run_t *r)
{
    const cn_snapshot_t *s = r->s;
    char age[16];
    static const char *const waits[] = {"call", "open", "result"};
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        for (size_t k = 0; k < a->nthreads; k++) {
            const cn_snap_thread_t *t = &a->threads[k];
            if (!waits_in(t, waits, sizeof(waits) / sizeof(waits[0])) || since(a, t->since_us) < r->wait_us)
                continue;
            const cn_snap_actor_t *p = ui_actor_by_id(s, t->peer);
            const cn_snap_thread_t *pt = task_thread(p, a->id, t->cid);
            if (pt && pt->doing && strcmp(pt->doing, "running") != 0 &&
                strcmp(pt->doing, "sleep") != 0 && strcmp(pt->doing, "idle") != 0 &&
                strcmp(pt->doing, "debugger") != 0) /* a breakpoint waits for a person */
                continue; /* waiting in turn: the chain's end says why */
            const cn_snap_ctx_t *c = ui_ctx_at(p, t->cid, "callee", a->id);
            char how[512], buf[32], who[256], tname[64];
            if (p == NULL || !p->responsive)
                snprintf(how, sizeof(how), "that actor does not answer");
            else if (pt == NULL && c == NULL)
                continue; /* the task has just ended, or not yet begun */
            else
                describe(s, p, pt, " ('canopy bt' shows where)", how, sizeof(how));
            snprintf(tname, sizeof(tname), "%s", thread_label(t));
            snprintf(who, sizeof(who), "%s, %s", a->path ? a->path : "?",
                     path_of(s, t->peer, buf, sizeof(buf)));
            add(r, "long-wait", "warning", who,
                "%s thread %d (%s) has waited %s in %s on %s (%s, cid %llu): %s",
                a->path ? a->path : "?", t->tid, tname,
                ui_fmt_age(age, sizeof(age), since(a, t->since_us)), t->doing,
                path_of(s, t->peer, buf, sizeof(buf)), c && c->fn ? c->fn : "?",
                (unsigned long long)t->cid, how);
        }
    }
}

size_t lint_run(const cn_snapshot_t *s, lint_t *out, size_t max)
{
    const char *env = getenv("CANOPY_LINT_AFTER_MS");
    long after = env && *env ? strtol(env, NULL, 10) : 2000;
    env = getenv("CANOPY_LINT_WAIT_MS");
    long wait = env && *env ? strtol(env, NULL, 10) : 10000;
    run_t r = {s, out, max, 0, (uint64_t)(after < 0 ? 0 : after) * 1000,
               (uint64_t)(wait < 0 ? 0 : wait) * 1000};
    stuck_cancel(&r);
    stalled_stream(&r);
    orphan_stream(&r);
    unreaped(&r);
    unresponsive(&r);
    wait_cycles(&r);
    long_wait(&r);
    /* Errors first, each kind keeping its order: a deadlock explains the
     * streams it stalls, so it comes before their warnings. */
    size_t k = 0;
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(out[i].severity, "error") == 0) {
            lint_t e = out[i];
            memmove(&out[k + 1], &out[k], (i - k) * sizeof(*out));
            out[k++] = e;
        }
    return r.n;
}
