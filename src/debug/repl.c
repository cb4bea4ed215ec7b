/*
 * repl.c: an actor's debugger sessions and the REPL that runs them
 * (docs/debugger.md).
 *
 * A session starts from a request: a thread called cn_breakpoint() (it
 * waits on its own latch), the user sent BREAK, or a thread crashed in
 * debug mode (it is parked in its signal handler). Requests queue here and
 * run one at a time. For each, the broker asks the root for the console
 * (LOCK_REQ, numbered by the session), and once granted reads the user's
 * lines (CONSOLE_IN) and answers (CONSOLE_OUT) until `continue`, then
 * gives the console back (LOCK_RELEASE).
 *
 * A BREAK or a crash stops every other thread first (freeze.h), so the
 * stacks shown are where the threads really were, even in a while(1) or
 * a deadlock; continue lets them go. A breakpoint stops only its thread.
 *
 * Invariant: the session state is the broker's; other threads only queue
 * requests under ss.mu and read ss.active.
 */
#include <ctype.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "canopy/client.h"
#include "debug/debug.h"
#include "inspect/inspect.h"
#include "runtime/rt.h"

enum { K_BREAKPOINT, K_BREAK, K_CRASH, K_ERROR };

#define STACKS_MAX 128
#define ARGS_MAX 16 /* words of a REPL line that count */

typedef struct dreq {
    struct dreq *next;
    int kind;
    int tid; /* the thread that stopped (breakpoint, crash), else 0 */
    int sig; /* a crash's signal */
    char reason[CN__REASON_MAX];
    int nframes;
    void *frames[CN__BT_FRAMES];
    cn__latch_t *wake; /* a breakpoint's waiting thread */
    cn__node_t done;   /* put there by continue */
} dreq_t;

static struct {
    pthread_mutex_t mu;
    dreq_t *head, *tail; /* requests not started yet, under mu */
    _Atomic int active;  /* a session is open or requested */
    int debug_mode;

    /* broker only */
    dreq_t *cur;
    uint64_t sid;
    int granted;
    uint64_t since_us;
    cn__thr_stack_t *stacks; /* STACKS_MAX: stacks_buf */
    cn__thr_stack_t *now;    /* STACKS_MAX, for a snapshot's look: stacks_buf */
    size_t nstacks;
    int have_stacks;
    int gdb; /* the parent was asked to run gdb on us and has not said it is done */
} ss = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Broker: *slot, allocated the first time (see freeze.c, fz, for why not
 * static); NULL if there is no memory for it. */
static cn__thr_stack_t *stacks_buf(cn__thr_stack_t **slot)
{
    if (*slot == NULL)
        *slot = calloc(STACKS_MAX, sizeof(**slot));
    return *slot;
}

/* ===========================================================================
 * Output
 */

void cn__sb_printf(msgpack_sbuffer *out, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        msgpack_sbuffer_write(out, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    msgpack_sbuffer_write(out, big, (size_t)n);
    free(big);
}

static void send_root(uint32_t type, const char *data, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {type, CN_ROOT_ID, cn__rt.id, ss.sid};
    int rc;
    if (type == CN_MSG_CONSOLE_OUT) {
        cn_wire_console_out_t b = {{data, (uint32_t)len}};
        rc = cn_wire_pack_typed(&sb, &h, &b, 0);
    } else if (type == CN_MSG_LOCK_REQ) {
        cn_wire_lock_req_t b = {{data, (uint32_t)len}, cn__wstr(cn__rt.path)};
        rc = cn_wire_pack_typed(&sb, &h, &b, 0);
    } else {
        rc = cn_wire_pack(&sb, &h, NULL, 0);
    }
    char why[CN__REASON_MAX];
    if (rc == 0 && cn__send_frame(&h, sb.data, sb.size, why) < 0)
        cn_log(CN_LOG_WARN, "debugger: cannot reach the root: %s", why);
    msgpack_sbuffer_destroy(&sb);
}

/* ===========================================================================
 * Sessions
 */

int cn__debug_active(void)
{
    return atomic_load(&ss.active);
}

int cn__debug_mode(void)
{
    return ss.debug_mode;
}

static void queue_req(dreq_t *r)
{
    cn__lock(&ss.mu);
    r->next = NULL;
    if (ss.tail)
        ss.tail->next = r;
    else
        ss.head = r;
    ss.tail = r;
    atomic_store(&ss.active, 1);
    cn__unlock(&ss.mu);
}

static void start_next(void)
{
    /* Runs on every wake of the broker: with nothing queued (active is
     * set under ss.mu by queue_req, before its wake-up), no lock. */
    if (ss.cur || !atomic_load(&ss.active))
        return;
    cn__lock(&ss.mu);
    dreq_t *r = ss.head;
    if (r) {
        ss.head = r->next;
        if (ss.head == NULL)
            ss.tail = NULL;
    }
    atomic_store(&ss.active, r != NULL);
    cn__unlock(&ss.mu);
    if (r == NULL)
        return;
    ss.cur = r;
    ss.sid++;
    ss.granted = 0;
    ss.have_stacks = 0;
    ss.gdb = 0;
    ss.since_us = cn__now_us();
    cn_log(CN_LOG_INFO, "debugger: waiting for the console: %s", r->reason);
    send_root(CN_MSG_LOCK_REQ, r->reason, strlen(r->reason));
}

static void say(msgpack_sbuffer *out)
{
    if (out->size)
        send_root(CN_MSG_CONSOLE_OUT, out->data, out->size);
}

static void end_session(const char *how)
{
    dreq_t *r = ss.cur;
    if (r == NULL)
        return;
    /* Over before the root hears of it: at the root, the release is
     * delivered at once, and must not find this session still open. */
    ss.cur = NULL;
    cn__thaw();
    cn_log(CN_LOG_INFO, "debugger: session over (%s)", how);
    send_root(CN_MSG_LOCK_RELEASE, NULL, 0);
    if (r->kind == K_CRASH) {
        cn__crash_release(); /* the thread dies of its signal, and so do we */
    } else if (r->kind == K_BREAKPOINT || r->kind == K_ERROR) {
        cn__latch_put(r->wake, &r->done); /* the thread frees r */
        r = NULL;
    }
    free(r);
    start_next();
    cn__wake(); /* a shutdown waiting for this session goes now */
}

/* ===========================================================================
 * The program's own commands and variables (cn_debug_command, cn_debug_var)
 */

#define USER_MAX 64

typedef struct user_ent {
    char name[CN__NAME_MAX];
    char help[128];
    cn_debug_cmd_fn cmd;
    cn_debug_var_fn var;
    void *arg;
} user_ent_t;

static struct {
    pthread_mutex_t mu;
    user_ent_t cmds[USER_MAX], vars[USER_MAX];
    size_t ncmds, nvars;
} user = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct cn_debug_out {
    msgpack_sbuffer *sb;
};

void cn_debug_printf(cn_debug_out_t *out, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (out && n > 0)
        msgpack_sbuffer_write(out->sb, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static int is_builtin(const char *name);

static int user_add(user_ent_t *tab, size_t *n, const char *name, const char *help,
                    cn_debug_cmd_fn cmd, cn_debug_var_fn var, void *arg)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= CN__NAME_MAX || (cmd == NULL && var == NULL) || is_builtin(name))
        return CN_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)name[i]) || strchr("_-.", name[i])))
            return CN_EINVAL;
    int rc = 0;
    cn__lock(&user.mu);
    for (size_t i = 0; i < *n && rc == 0; i++)
        rc = strcmp(tab[i].name, name) == 0 ? CN_EINVAL : 0;
    if (rc == 0 && *n == USER_MAX)
        rc = CN_ENOMEM;
    if (rc == 0) {
        user_ent_t *e = &tab[(*n)++];
        snprintf(e->name, sizeof(e->name), "%s", name);
        snprintf(e->help, sizeof(e->help), "%s", help ? help : "");
        e->cmd = cmd;
        e->var = var;
        e->arg = arg;
    }
    cn__unlock(&user.mu);
    return rc;
}

int cn_debug_command(const char *name, const char *help, cn_debug_cmd_fn fn, void *arg)
{
    return fn ? user_add(user.cmds, &user.ncmds, name, help, fn, NULL, arg) : CN_EINVAL;
}

int cn_debug_var(const char *name, cn_debug_var_fn fn, void *arg)
{
    return fn ? user_add(user.vars, &user.nvars, name, NULL, NULL, fn, arg) : CN_EINVAL;
}

/* A copy of the command `name`, if the program added one. */
static int user_cmd(const char *name, user_ent_t *out)
{
    int found = 0;
    cn__lock(&user.mu);
    for (size_t i = 0; i < user.ncmds && !found; i++)
        if (strcmp(user.cmds[i].name, name) == 0) {
            *out = user.cmds[i];
            found = 1;
        }
    cn__unlock(&user.mu);
    return found;
}

static int cmd_vars(int argc, char **argv, msgpack_sbuffer *out)
{
    (void)argc, (void)argv;
    cn__lock(&user.mu);
    size_t n = user.nvars;
    user_ent_t vars[USER_MAX];
    memcpy(vars, user.vars, sizeof(vars[0]) * n);
    cn__unlock(&user.mu); /* not held while the program's code runs */
    cn_debug_out_t o = {out};
    for (size_t i = 0; i < n; i++) {
        cn__sb_printf(out, "%s = ", vars[i].name);
        size_t before = out->size;
        vars[i].var(&o, vars[i].arg);
        if (out->size == before || out->data[out->size - 1] != '\n')
            cn__sb_printf(out, "\n");
    }
    if (n == 0)
        cn__sb_printf(out, "(no variables: the program registers them with cn_debug_var)\n");
    return 0;
}

/* ===========================================================================
 * Commands
 */

typedef struct cmd {
    const char *name, *alias, *args, *help;
    int (*run)(int argc, char **argv, msgpack_sbuffer *out); /* 1: the session is over */
    void (*table)(const msgpack_object *snap, msgpack_sbuffer *out); /* or: print this */
} cmd_t;

static const cmd_t cmds[];

static int cmd_help(int argc, char **argv, msgpack_sbuffer *out)
{
    (void)argc, (void)argv;
    cn__sb_printf(out, "commands:\n");
    for (const cmd_t *c = cmds; c->name; c++) {
        char left[48];
        snprintf(left, sizeof(left), "%s%s%s%s%s", c->name, c->alias ? ", " : "",
                 c->alias ? c->alias : "", c->args ? " " : "", c->args ? c->args : "");
        cn__sb_printf(out, "  %-22s %s\n", left, c->help);
    }
    cn__lock(&user.mu);
    size_t n = user.ncmds;
    user_ent_t mine[USER_MAX];
    memcpy(mine, user.cmds, sizeof(mine[0]) * n);
    cn__unlock(&user.mu);
    if (n)
        cn__sb_printf(out, "this program's commands:\n");
    for (size_t i = 0; i < n; i++)
        cn__sb_printf(out, "  %-22s %s\n", mine[i].name, mine[i].help);
    return 0;
}

/* This actor's own snapshot, decoded, its tables (threads, contexts)
 * turned into arrays of maps like its other lists; NULL if it cannot be
 * made. */
static msgpack_object *own_snapshot(msgpack_zone *z, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    cn__snapshot_pack(&pk, 0);
    msgpack_object *o = msgpack_zone_malloc(z, sizeof(*o));
    size_t off = 0;
    if (o == NULL || msgpack_unpack(sb->data, sb->size, &off, z, o) != MSGPACK_UNPACK_SUCCESS ||
        o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        msgpack_object rows, *v = &o->via.map.ptr[i].val;
        int rc = cn_msgpack_table(v, z, &rows);
        if (rc < 0)
            return NULL;
        if (rc == 1)
            *v = rows;
    }
    return o;
}

static int64_t geti(const msgpack_object *m, const char *k)
{
    const msgpack_object *v = cn_msgpack_get(m, k);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    return 0;
}

/* "%.*s" arguments for a string field ("-" if absent). */
#define STRF(m, k) geti_len(m, k), gets_ptr(m, k)
static int geti_len(const msgpack_object *m, const char *k)
{
    const msgpack_object *v = cn_msgpack_get(m, k);
    return v && v->type == MSGPACK_OBJECT_STR ? (int)v->via.str.size : 1;
}
static const char *gets_ptr(const msgpack_object *m, const char *k)
{
    const msgpack_object *v = cn_msgpack_get(m, k);
    return v && v->type == MSGPACK_OBJECT_STR ? v->via.str.ptr : "-";
}

static const msgpack_object_array *arr(const msgpack_object *m, const char *k)
{
    static const msgpack_object_array none = {0, NULL};
    const msgpack_object *v = cn_msgpack_get(m, k);
    return v && v->type == MSGPACK_OBJECT_ARRAY ? &v->via.array : &none;
}

static double ago_s(const msgpack_object *snap, int64_t us)
{
    return us ? (double)(geti(snap, "now_us") - us) / 1e6 : 0;
}

/* Runs `table` over this actor's snapshot. */
static int with_snapshot(msgpack_sbuffer *out,
                         void (*table)(const msgpack_object *snap, msgpack_sbuffer *out))
{
    msgpack_zone z;
    msgpack_sbuffer sb;
    msgpack_zone_init(&z, 4096);
    msgpack_sbuffer_init(&sb);
    const msgpack_object *snap = own_snapshot(&z, &sb);
    if (snap)
        table(snap, out);
    else
        cn__sb_printf(out, "cannot read this actor's state (out of memory?)\n");
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&z);
    return 0;
}

/* An age as people read it: 4.2s, 7m22s, 3h05m. */
static const char *fmt_ago(double s, char *buf, size_t n)
{
    long long t = (long long)s;
    if (s < 60)
        snprintf(buf, n, "%.1fs", s);
    else if (t < 3600)
        snprintf(buf, n, "%lldm%02llds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lldh%02lldm", t / 3600, t / 60 % 60);
    return buf;
}

/* "actor ID", with its name when this actor's snapshot knows it (the
 * root, its parent, its descendants). */
static void actor_label(const msgpack_object *snap, int64_t id, char *out, size_t n)
{
    const char *lists[] = {"routes", "children"};
    for (size_t l = 0; l < 2; l++) {
        const msgpack_object_array *a = arr(snap, lists[l]);
        for (uint32_t i = 0; i < a->size; i++)
            if (geti(&a->ptr[i], "id") == id) {
                snprintf(out, n, "actor %lld (%.*s)", (long long)id, STRF(&a->ptr[i], "name"));
                return;
            }
    }
    snprintf(out, n, "actor %lld%s", (long long)id,
             id == CN_ROOT_ID                 ? " (the root)"
             : id == geti(snap, "parent")     ? " (the parent)"
                                              : "");
}

static void table_threads(const msgpack_object *snap, msgpack_sbuffer *out)
{
    const msgpack_object_array *a = arr(snap, "threads");
    int parked = cn__frozen(); /* a break or crash stopped all but the session's */
    cn__sb_printf(out, "%-8s %-6s %-8s %-10s %s\n", "TID", "KIND", "DOING", "FOR", "WHAT");
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *t = &a->ptr[i];
        char what[256] = "", who[96];
        int stopped = parked && strcmp(gets_ptr(t, "doing"), "debugger") != 0;
        int has_fn = cn_msgpack_get(t, "fn") && cn_msgpack_get(t, "fn")->type == MSGPACK_OBJECT_STR;
        if (has_fn) {
            actor_label(snap, geti(t, "task_caller"), who, sizeof(who));
            snprintf(what, sizeof(what), "task %.*s for %s (call %lld)", STRF(t, "fn"), who,
                     (long long)geti(t, "task_cid"));
        }
        if (geti(t, "cid")) {
            actor_label(snap, geti(t, "peer"), who, sizeof(who));
            snprintf(what + strlen(what), sizeof(what) - strlen(what), "%scall %lld on %s",
                     has_fn ? "; waits on " : "waits on ", (long long)geti(t, "cid"), who);
        }
        if (stopped)
            snprintf(what + strlen(what), sizeof(what) - strlen(what),
                     "%sstopped by the debugger (it was in: %.*s)", what[0] ? "; " : "",
                     STRF(t, "doing"));
        char age[32];
        cn__sb_printf(out, "%-8lld %-6.*s %-8.*s %9s  %s\n", (long long)geti(t, "tid"),
                      STRF(t, "kind"), stopped ? 7 : geti_len(t, "doing"),
                      stopped ? "stopped" : gets_ptr(t, "doing"),
                      fmt_ago(ago_s(snap, geti(t, "since_us")), age, sizeof(age)), what);
    }
    if (a->size == 0)
        cn__sb_printf(out, "(no thread has used the API yet)\n");
}

static void table_ctx(const msgpack_object *snap, msgpack_sbuffer *out)
{
    const msgpack_object_array *a = arr(snap, "contexts");
    cn__sb_printf(out, "%-6s %-24s %-18s %-7s %-8s %-10s %-9s %s\n", "CID", "PEER", "FN", "ROLE",
                  "KIND", "PHASE", "CANCEL", "AGE");
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *c = &a->ptr[i];
        char peer[96], age[32];
        actor_label(snap, geti(c, "peer"), peer, sizeof(peer));
        cn__sb_printf(out, "%-6lld %-24s %-18.*s %-7.*s %-8.*s %-10.*s %-9.*s %s\n",
                      (long long)geti(c, "cid"), peer + strlen("actor "), STRF(c, "fn"),
                      STRF(c, "role"), STRF(c, "kind"), STRF(c, "phase"), STRF(c, "cancel"),
                      fmt_ago(ago_s(snap, geti(c, "opened_us")), age, sizeof(age)));
    }
    if (a->size == 0)
        cn__sb_printf(out, "(no calls or contexts open)\n");
}

static void table_routes(const msgpack_object *snap, msgpack_sbuffer *out)
{
    const msgpack_object_array *a = arr(snap, "routes");
    cn__sb_printf(out, "%-6s %-20s %-7s %-6s %s\n", "ID", "NAME", "PARENT", "VIA", "LEARNED");
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *r = &a->ptr[i];
        char age[32];
        cn__sb_printf(out, "%-6lld %-20.*s %-7lld %-6lld %s ago\n", (long long)geti(r, "id"),
                      STRF(r, "name"), (long long)geti(r, "parent"), (long long)geti(r, "via"),
                      fmt_ago(ago_s(snap, geti(r, "learned_us")), age, sizeof(age)));
    }
    if (a->size == 0)
        cn__sb_printf(out, "(no routes: this actor has no descendants)\n");
}

static void table_children(const msgpack_object *snap, msgpack_sbuffer *out)
{
    const msgpack_object_array *a = arr(snap, "children");
    cn__sb_printf(out, "%-6s %-20s %-8s %-11s %s\n", "ID", "NAME", "PID", "STATE", "STATUS");
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *c = &a->ptr[i];
        cn__sb_printf(out, "%-6lld %-20.*s %-8lld %-11.*s %.*s\n", (long long)geti(c, "id"),
                      STRF(c, "name"), (long long)geti(c, "pid"), STRF(c, "state"),
                      STRF(c, "status"));
    }
    if (a->size == 0)
        cn__sb_printf(out, "(no children)\n");
}

/* By CN__FZ_*: what a freeze left each thread doing. */
static const char *const state_names[] = {"no answer", "not stopped", "stopping at its next unlock",
                                          "stopped", "no answer (signal blocked?)"};

/* Looks up every frame of st[0..n) at once: one addr2line run per module
 * for them all, not one per thread. */
static void resolve_stacks(const cn__thr_stack_t *st, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (size_t)st[i].nframes;
    uintptr_t *look = calloc(total ? total : 1, sizeof(*look));
    if (look == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (int f = 0; f < st[i].nframes; f++)
            look[k++] = cn__bt_look(st[i].frames[f], f == 0);
    cn__bt_resolve(look, (int)k, 2000);
    free(look);
}

static void write_stack(msgpack_sbuffer *out, const cn__thr_stack_t *t, const char *role,
                        int first_is_pc)
{
    cn__sb_printf(out, "thread %d%s%s%s: %s\n", t->tid, t->comm[0] ? " (" : "", t->comm,
                  t->comm[0] ? ")" : "", role ? role : state_names[t->state]);
    if (t->nframes > 0)
        cn__bt_write(out, t->frames, t->nframes, first_is_pc, 2000);
}

static int cmd_bt(int argc, char **argv, msgpack_sbuffer *out)
{
    dreq_t *r = ss.cur;
    int all = argc > 1 && strcmp(argv[1], "all") == 0;
    char *end = NULL;
    long id = argc > 1 && !all ? strtol(argv[1], &end, 10) : 0;
    if (argc > 1 && !all && (*end != '\0' || id <= 0 || id > INT_MAX)) {
        cn__sb_printf(out, "bt: '%s' is not a thread id (see 'threads')\n", argv[1]);
        return 0;
    }
    int want = (int)id;
    /* The thread that stopped first: it is why we are here. */
    if (r->tid && (want == 0 || want == r->tid)) {
        cn__thr_stack_t t = {.tid = r->tid, .state = CN__FZ_PARKED, .nframes = r->nframes};
        memcpy(t.frames, r->frames, sizeof(void *) * (size_t)r->nframes);
        static const char *const why[] = {"stopped at the breakpoint", NULL, "crashed here",
                                          "failed here (where it called cn_call_fail)"};
        write_stack(out, &t, why[r->kind], r->kind == K_CRASH);
        if (want == r->tid || (!all && r->kind != K_BREAK))
            return 0;
    }
    /* The others: as frozen, or looked at now. */
    cn__thr_stack_t *st = stacks_buf(&ss.stacks);
    size_t n = ss.nstacks;
    if (!ss.have_stacks) {
        if (st == NULL || cn__freeze(0, r->tid, 200, st, STACKS_MAX, &n) < 0)
            n = 0;
        ss.nstacks = n;
    }
    resolve_stacks(st, n);
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (want && st[i].tid != want)
            continue;
        if (shown++ || r->tid)
            cn__sb_printf(out, "\n");
        write_stack(out, &st[i], NULL, 1);
    }
    if (want && shown == 0)
        cn__sb_printf(out, "bt: no thread %d here (see 'threads')\n", want);
    else if (shown == 0 && r->tid == 0) /* a serve-only child before its first call */
        cn__sb_printf(out, "bt: no thread to show: only the broker runs here, and it runs this "
                           "console\n");
    if (!ss.have_stacks)
        ss.nstacks = 0;
    return 0;
}

static int cmd_continue(int argc, char **argv, msgpack_sbuffer *out)
{
    (void)argc, (void)argv;
    if (ss.cur->kind == K_CRASH)
        cn__sb_printf(out, "continuing: %s dies of its signal now\n", cn__rt.path);
    else
        cn__sb_printf(out, "continuing %s\n", cn__rt.path);
    return 1;
}

static int cmd_cancel(int argc, char **argv, msgpack_sbuffer *out)
{
    if (argc > 1) {
        char *end;
        unsigned long long cid = strtoull(argv[1], &end, 10);
        if (*end || cid == 0) {
            cn__sb_printf(out, "cancel: '%s' is not a call or context number (see 'ctx')\n",
                          argv[1]);
            return 0;
        }
        int rc = cn__call_cancel_op(cid, "cancelled from the debugger");
        if (rc < 0)
            cn__sb_printf(out, "cancel: this actor made no call or context %llu (see 'ctx')\n",
                          cid);
        else
            cn__sb_printf(out, "cancelled call %llu; it ends when the session continues\n", cid);
        return 0;
    }
    cn__sb_printf(out, "cancelling %s once you continue\n", cn__rt.path);
    cn__shutdown_after_debug("cancelled from the debugger");
    return 0;
}

static int cmd_kill(int argc, char **argv, msgpack_sbuffer *out)
{
    (void)argc, (void)argv, (void)out;
    cn_log(CN_LOG_WARN, "debugger: killed from the console"); /* the root sees it die */
    cn__attach_stop(); /* the root: its socket goes with it */
    cn__tty_reset();
    kill(getpid(), SIGKILL);
    return 1;
}

static int cmd_log(int argc, char **argv, msgpack_sbuffer *out)
{
    static const char *const names[] = {"trace", "debug", "info", "cancel", "warn", "error"};
    if (argc < 2) {
        int lv = atomic_load(&cn__rt.log_level);
        cn__sb_printf(out, "log level: %s\n", lv >= 0 && lv <= 5 ? names[lv] : "?");
        return 0;
    }
    int lv = cn__log_parse_level(argv[1]);
    if (lv < 0) {
        cn__sb_printf(out, "log: unknown level '%s' (trace, debug, info, cancel, warn, error)\n",
                      argv[1]);
        return 0;
    }
    atomic_store(&cn__rt.log_level, lv);
    cn__sb_printf(out, "log level of %s is now %s\n", cn__rt.path, names[lv]);
    return 0;
}

/* gdb would stop every thread here, the broker that relays this console
 * too, so the parent runs it and relays its terminal (gdb.c). */
static int cmd_gdb(int argc, char **argv, msgpack_sbuffer *out)
{
    (void)argc, (void)argv;
    if (cn__rt.is_root) {
        cn__sb_printf(out, "gdb: the root has no parent to run gdb for it, and gdb would stop the "
                           "very process that relays this console. From another terminal: "
                           "gdb -p %d\n", (int)getpid());
        return 0;
    }
    if (ss.gdb) {
        cn__sb_printf(out, "gdb: already asked the parent; its answer is on the way\n");
        return 0;
    }
    cn__sb_printf(out, "gdb: asking the parent (actor %u) to run gdb -p %d...\n", cn__rt.parent_id,
                  (int)getpid());
    say(out); /* before the parent's own first words */
    out->size = 0;
#ifdef PR_SET_PTRACER
    /* Under Yama's default scope only an ancestor may attach: name the
     * parent, whose descendants gdb is one of. EINVAL without Yama. */
    prctl(PR_SET_PTRACER, (unsigned long)getppid(), 0, 0, 0);
#endif
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_GDB, cn__rt.parent_id, cn__rt.id, ss.sid};
    cn_wire_gdb_t b = {cn__wstr("start"), {NULL, 0}};
    char why[CN__REASON_MAX];
    int rc = cn_wire_pack_typed(&sb, &h, &b, 0);
    if (rc == 0)
        rc = cn__send_frame(&h, sb.data, sb.size, why);
    else
        snprintf(why, sizeof(why), "%s", cn_strerror(rc));
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) {
        cn__sb_printf(out, "gdb: cannot reach the parent: %s\n", why);
        return 0;
    }
    ss.gdb = 1;
    return 0;
}

/* The parent's answer to `gdb`: it failed, or gdb has exited. */
static void on_gdb_answer(const cn_wire_msg_t *m)
{
    const cn_wire_gdb_t *g = &m->u.gdb;
    int failed = g->op.len == 6 && memcmp(g->op.ptr, "failed", 6) == 0;
    if (!ss.gdb)
        return;
    ss.gdb = 0;
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    cn__sb_printf(&out, "%s%.*s\n", failed ? "gdb: " : "", g->text.ptr ? (int)g->text.len : 0,
                  g->text.ptr ? g->text.ptr : "");
    if (!failed)
        cn__sb_printf(&out, "back in the debugger of %s\n", cn__rt.path);
    say(&out);
    msgpack_sbuffer_destroy(&out);
}

static const cmd_t cmds[] = {
    {"help", "h", NULL, "this list", cmd_help},
    {"bt", NULL, "[all|TID]", "backtraces: the stopped thread, all, or one thread", cmd_bt},
    {"threads", NULL, NULL, "what each thread is doing", NULL, table_threads},
    {"ctx", NULL, NULL, "this actor's calls and contexts", NULL, table_ctx},
    {"routes", NULL, NULL, "this actor's route table", NULL, table_routes},
    {"children", NULL, NULL, "this actor's children, live and exited", NULL, table_children},
    {"continue", "c", NULL, "leave the debugger; stopped threads run on", cmd_continue},
    {"cancel", NULL, "[CID]", "cancel a call this actor made, or the actor itself", cmd_cancel},
    {"kill", NULL, NULL, "kill this actor with SIGKILL", cmd_kill},
    {"log", NULL, "[LEVEL]", "show or set this actor's log level", cmd_log},
    {"vars", NULL, NULL, "the variables this program exposes (cn_debug_var)", cmd_vars},
    {"gdb", NULL, NULL, "gdb on this actor, run by its parent; 'quit' comes back", cmd_gdb},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};

static int is_builtin(const char *name)
{
    for (const cmd_t *c = cmds; c->name; c++)
        if (strcmp(c->name, name) == 0 || (c->alias && strcmp(c->alias, name) == 0))
            return 1;
    return 0;
}

static void banner(msgpack_sbuffer *out, int again)
{
    dreq_t *r = ss.cur;
    cn__sb_printf(out, "-- %s (actor %u, pid %d) --\n", cn__rt.path, cn__rt.id, (int)getpid());
    cn__sb_printf(out, "%s%s\n", again ? "still in the debugger: " : "", r->reason);
    if (again)
        return;
    if (r->kind == K_BREAK || r->kind == K_CRASH) {
        size_t stopped = 0;
        for (size_t i = 0; i < ss.nstacks; i++)
            stopped += ss.stacks[i].state == CN__FZ_PARKED || ss.stacks[i].state == CN__FZ_DEFERRED;
        cn__sb_printf(out, "%zu of %zu other threads stopped.\n", stopped, ss.nstacks);
    }
    if (r->nframes > 0)
        cn__bt_write(out, r->frames, r->nframes > 3 ? 3 : r->nframes, r->kind == K_CRASH, 2000);
    cn__sb_printf(out, "Type 'help' for commands, 'bt' for backtraces, 'c' to continue.\n");
}

static void run_line(const char *line, size_t len)
{
    if (len == 1 && line[0] == CN__INTERRUPT[0]) { /* Ctrl-C at the console */
        static const char msg[] = "^C: no command is running (each finishes within 2 s); the "
                                  "tree goes on. Ctrl-C again within 2 s kills the whole tree.\n";
        send_root(CN_MSG_CONSOLE_OUT, msg, sizeof(msg) - 1);
        return;
    }
    char buf[1024];
    snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), line);
    /* At most ARGS_MAX words, and argv[argc] is NULL, as main's is: the
     * program's own commands may hand argv to code written for main's
     * (getopt, a loop to the NULL). A longer line is refused, not run
     * cut short. */
    char *argv[ARGS_MAX + 1];
    int argc = 0, too_long = len >= sizeof(buf);
    for (char *save = NULL, *tok = strtok_r(buf, " \t\r\n", &save); tok;
         tok = strtok_r(NULL, " \t\r\n", &save))
        if (argc < ARGS_MAX)
            argv[argc++] = tok;
        else
            too_long = 1;
    argv[argc] = NULL;
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    int over = 0;
    if (too_long) {
        cn__sb_printf(&out, "%s: the line has more than %d words or %zu characters; nothing "
                            "was run\n", argc ? argv[0] : "?", ARGS_MAX, sizeof(buf) - 1);
    } else if (argc > 0) {
        const cmd_t *c = cmds;
        while (c->name && strcmp(c->name, argv[0]) != 0 && !(c->alias && !strcmp(c->alias, argv[0])))
            c++;
        user_ent_t u;
        if (c->name && c->table) {
            with_snapshot(&out, c->table); /* the inspector's own tables */
        } else if (c->name) {
            over = c->run(argc, argv, &out);
        } else if (user_cmd(argv[0], &u)) {
            cn_debug_out_t o = {&out};
            int rc = u.cmd(argc, argv, &o, u.arg);
            if (rc < 0)
                cn__sb_printf(&out, "%s: %s\n", argv[0], cn_strerror(rc));
        } else {
            cn__sb_printf(&out, "unknown command '%s'; 'help' lists them\n", argv[0]);
        }
    }
    say(&out); /* the console shows the prompt itself */
    msgpack_sbuffer_destroy(&out);
    if (over)
        end_session("continue");
}

int cn__repl_line(const char *line, size_t len)
{
    if (ss.cur == NULL || !ss.granted)
        return CN_EINVAL;
    run_line(line, len);
    return 0;
}

static void on_grant(void)
{
    dreq_t *r = ss.cur;
    int again = ss.granted;
    if (!ss.granted) {
        ss.granted = 1;
        if (r->kind == K_BREAK || r->kind == K_CRASH) { /* stop the others too */
            size_t n = 0;
            if (stacks_buf(&ss.stacks) && cn__freeze(1, r->tid, 500, ss.stacks, STACKS_MAX, &n) == 0)
                ss.have_stacks = 1;
            ss.nstacks = n;
        }
        cn_log(CN_LOG_INFO, "debugger: %s has the console", cn__rt.path);
    }
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    banner(&out, again);
    say(&out);
    msgpack_sbuffer_destroy(&out);
}

/* ===========================================================================
 * Entry points
 */

void cn__debug_init(int debug_mode)
{
    const char *e = getenv("CANOPY_DEBUG");
    ss.debug_mode = debug_mode || (e && *e && strcmp(e, "0") != 0); /* cn_spawn passes it on */
    cn__freeze_init();
    if (ss.debug_mode) /* a crash will be caught and unwound in its handler */
        cn__unwinder_warm();
    cn__crash_init();
}

void cn__debug_on_msg(cn_wire_msg_t *m)
{
    const cn_wire_hdr_t *h = &m->hdr;
    int mine = ss.cur && h->cid == ss.sid && h->src == CN_ROOT_ID;
    switch (h->type) {
    case CN_MSG_LOCK_REQ:
    case CN_MSG_CONSOLE_OUT:
        if (cn__rt.is_root)
            cn__lock_on_msg(m);
        break;
    case CN_MSG_LOCK_RELEASE:
        if (mine) /* the root took the console back: as continue */
            end_session("force-released at the console");
        else if (cn__rt.is_root && (h->src != CN_ROOT_ID || h->dst == CN_ROOT_ID))
            cn__lock_on_msg(m); /* an actor's release, or the root's own session ended */
        break;
    case CN_MSG_LOCK_GRANT:
        if (mine)
            on_grant();
        break;
    case CN_MSG_CONSOLE_IN:
        if (mine && ss.granted)
            run_line(m->u.console_in.data.ptr, m->u.console_in.data.len);
        break;
    case CN_MSG_GDB:
        if (m->u.gdb.op.len == 5 && memcmp(m->u.gdb.op.ptr, "start", 5) == 0)
            cn__gdb_on_start(m); /* a child wants gdb */
        else if (ss.cur && h->cid == ss.sid && h->src == cn__rt.parent_id && !cn__rt.is_root)
            on_gdb_answer(m);
        break;
    case CN_MSG_BREAK: {
        if (h->src != CN_ROOT_ID)
            break;
        dreq_t *r = calloc(1, sizeof(*r));
        if (r == NULL)
            break;
        r->kind = K_BREAK;
        if (m->body.type == MSGPACK_OBJECT_STR)
            snprintf(r->reason, sizeof(r->reason), "%.*s", (int)m->body.via.str.size,
                     m->body.via.str.ptr);
        else
            snprintf(r->reason, sizeof(r->reason), "break requested");
        queue_req(r);
        start_next();
        break;
    }
    default:
        break;
    }
    cn_wire_msg_free(m);
}

void cn__debug_on_wake(void)
{
    static int crash_seen;
    int sig, tid, n;
    if (!crash_seen && cn__crash_pending(&sig, &tid, NULL, &n, 0) && !ss.debug_mode) {
        crash_seen = 1;
        cn__crash_write_stack(1); /* for the log; the thread then dies */
    } else if (!crash_seen && cn__crash_pending(&sig, &tid, NULL, &n, 0)) {
        crash_seen = 1;
        cn__crash_write_stack(0); /* for the log; the thread waits for the post-mortem */
        dreq_t *r = calloc(1, sizeof(*r));
        if (r) {
            r->kind = K_CRASH;
            cn__crash_pending(&r->sig, &r->tid, r->frames, &r->nframes, CN__BT_FRAMES);
            snprintf(r->reason, sizeof(r->reason), "crash: %s in thread %d (post-mortem)",
                     cn__crash_sig_name(r->sig), r->tid);
            /* Ahead of anything else queued: the process is dying. */
            cn__lock(&ss.mu);
            r->next = ss.head;
            ss.head = r;
            if (ss.tail == NULL)
                ss.tail = r;
            atomic_store(&ss.active, 1);
            cn__unlock(&ss.mu);
        }
    }
    start_next();
}

void cn__debug_pack(msgpack_packer *pk)
{
    cn__pack_cstr(pk, "debug");
    dreq_t *r = ss.cur;
    msgpack_pack_map(pk, 6);
    cn__pack_kstr(pk, "state", r == NULL ? (cn__debug_active() ? "waiting" : "none")
                               : ss.granted ? "holding"
                                            : "waiting");
    /* Its other threads are parked (a break or a crash, once it holds the
     * console): what they were waiting on, they no longer wait on. */
    cn__pack_kint(pk, "stopped", cn__frozen());
    cn__pack_kstr(pk, "reason", r ? r->reason : NULL);
    cn__pack_kint(pk, "since_us", r ? (int64_t)ss.since_us : 0);
    cn__pack_kint(pk, "debug_mode", ss.debug_mode);
    cn__gdb_pack(pk);
    cn__pack_cstr(pk, "lock");
    if (cn__rt.is_root)
        cn__lock_pack(pk);
    else
        msgpack_pack_nil(pk);
}

static void pack_stack(msgpack_packer *pk, const cn__thr_stack_t *t, const char *state)
{
    msgpack_sbuffer text;
    msgpack_sbuffer_init(&text);
    cn__bt_write(&text, t->frames, t->nframes, 1, 2000);
    size_t nlines = 0;
    for (size_t i = 0; i < text.size; i++)
        nlines += text.data[i] == '\n';
    msgpack_pack_map(pk, 4);
    cn__pack_kint(pk, "tid", t->tid);
    cn__pack_kstr(pk, "name", t->comm);
    cn__pack_kstr(pk, "state", state);
    cn__pack_cstr(pk, "frames");
    msgpack_pack_array(pk, nlines);
    for (size_t off = 0; off < text.size;) { /* one string per "  #N ..." line */
        const char *line = text.data + off, *nl = memchr(line, '\n', text.size - off);
        size_t len = (size_t)(nl - line);
        off += len + 1;
        while (len && *line == ' ')
            line++, len--;
        msgpack_pack_str_with_body(pk, line, len);
    }
    msgpack_sbuffer_destroy(&text);
}

void cn__debug_pack_stacks(msgpack_packer *pk)
{
    cn__pack_cstr(pk, "stacks");
    dreq_t *r = ss.cur;
    if (r && ss.have_stacks) { /* stopped for a session: as they stand */
        int first = r->tid != 0;
        msgpack_pack_array(pk, ss.nstacks + (size_t)first);
        if (first) {
            cn__thr_stack_t t = {.tid = r->tid, .nframes = r->nframes};
            memcpy(t.frames, r->frames, sizeof(void *) * (size_t)r->nframes);
            pack_stack(pk, &t, r->kind == K_CRASH ? "crashed" : "debugger");
        }
        resolve_stacks(ss.stacks, ss.nstacks);
        for (size_t i = 0; i < ss.nstacks; i++)
            pack_stack(pk, &ss.stacks[i], state_names[ss.stacks[i].state]);
        return;
    }
    size_t n = 0;
    cn__thr_stack_t *now = stacks_buf(&ss.now);
    if (now == NULL || cn__freeze(0, 0, 200, now, STACKS_MAX, &n) < 0)
        n = 0;
    resolve_stacks(now, n);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        pack_stack(pk, &now[i], state_names[now[i].state]);
}

/* ===========================================================================
 * cn_breakpoint
 */

/* Queues r for a session and blocks the calling thread until it ends. */
static int stop_this_thread(dreq_t *r)
{
    cn__latch_t wake;
    cn__latch_init(&wake);
    r->tid = (int)syscall(SYS_gettid);
    r->wake = &wake;
    queue_req(r);
    cn__wake();
    cn__doing(CN__DO_DEBUG, CN_ROOT_ID, 0);
    cn__node_t *n;
    int rc = cn__latch_get(&wake, CN__FOREVER, &n);
    cn__done();
    cn__latch_fini(&wake);
    free(r);
    return rc;
}

int cn_breakpoint_at(const char *file, int line, const char *fn)
{
    if (!cn__rt.started)
        return CN_EINVAL;
    if ((int)syscall(SYS_gettid) == cn__broker_tid)
        return CN_EBUSY;
    dreq_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return CN_ENOMEM;
    r->kind = K_BREAKPOINT;
    r->nframes = cn__stack_after(r->frames, CN__BT_FRAMES, (const void *)cn_breakpoint_at);
    const char *base = file ? strrchr(file, '/') : NULL;
    snprintf(r->reason, sizeof(r->reason), "breakpoint at %s:%d in %s()",
             base ? base + 1 : file ? file : "?", line, fn ? fn : "?");
    int rc = stop_this_thread(r);
    /* The session may have ended so that a cancel could go on: say so,
     * as any blocking call would (the broker decided it before it woke us). */
    const cn__task_t *t = cn__task_current();
    if (rc == 0 && (cn__shutdown_coming() || (t && cn__task_is_cancelled(t))))
        rc = CN_ECANCELED;
    return rc;
}

void cn__debug_task_failed(const char *reason, void *const *frames, int nframes)
{
    dreq_t *r;
    if (!ss.debug_mode || (r = calloc(1, sizeof(*r))) == NULL)
        return;
    r->kind = K_ERROR;
    snprintf(r->reason, sizeof(r->reason), "task error (post-mortem): %s", reason);
    r->nframes = nframes < CN__BT_FRAMES ? nframes : CN__BT_FRAMES;
    if (r->nframes > 0)
        memcpy(r->frames, frames, sizeof(void *) * (size_t)r->nframes);
    cn_log(CN_LOG_WARN, "debug mode: %s; stopping in the debugger before the error is relayed",
           reason);
    stop_this_thread(r);
}
