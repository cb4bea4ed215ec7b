/*
 * client.c: the attach client (include/canopy/client.h).
 *
 * Plain blocking sockets with poll() for timeouts: a tool makes one
 * request at a time, and needs no event loop or threads of its own.
 * Snapshots are decoded from the SNAPSHOT message into plain structs whose
 * strings and arrays live in one msgpack zone owned by the snapshot.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "canopy.h"
#include "canopy/client.h"
#include "canopy/version.h"
#include "wire/wire.h"

struct cn_client {
    cn_wire_msg_t *event; /* the last event handed out, or the batch it is from */
    const msgpack_object *batch; /* that batch's events not yet handed out */
    uint32_t batch_left;
    uint32_t batch_actor; /* and the actor and path they all share */
    const char *batch_path;
    int fd;
    cn_wire_decoder_t dec;
    char buf[64 * 1024]; /* bytes read and not yet decoded */
    size_t have, off;
    uint64_t next_cid;
    char tree[64];
    int root_pid;
    int console; /* in console mode: requests are sent, not waited for */
};

typedef struct snap_priv {
    cn_wire_msg_t *msg; /* owns raw */
    msgpack_zone zone;  /* owns the structs and their strings */
} snap_priv_t;

static __thread char last_error[512];

const char *cn_client_error(void)
{
    return last_error;
}

/* Says why in last_error and evaluates to rc. A macro, not a variadic
 * function, so that the static analyzer (which does not follow variadic
 * calls) sees that every `return fail(...)` returns the negative rc. */
#define fail(rc, ...) (snprintf(last_error, sizeof(last_error), __VA_ARGS__), (rc))

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline for timeout_ms, -1 for none: only CN_FOREVER (-1) is
 * forever; any other negative time is already up. */
static int64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms == -1 ? -1 : mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

/* Milliseconds left until deadline (ms, monotonic); -1 means no limit. */
static int left_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - mono_ms();
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* ===========================================================================
 * Finding trees
 */

/* "NAME.PID.sock" -> name and pid; 0 if the file name is not one. */
static int parse_sock_name(const char *file, cn_tree_info_t *t)
{
    size_t len = strlen(file);
    if (len < 7 || strcmp(file + len - 5, ".sock") != 0)
        return 0;
    const char *end = file + len - 5;
    const char *dot = end;
    while (dot > file && dot[-1] != '.')
        dot--;
    if (dot == file || dot == end)
        return 0;
    char *stop;
    long pid = strtol(dot, &stop, 10);
    if (stop != end || pid <= 0)
        return 0;
    size_t nlen = (size_t)(dot - 1 - file);
    if (nlen == 0 || nlen >= sizeof(t->name))
        return 0;
    memcpy(t->name, file, nlen);
    t->name[nlen] = '\0';
    t->pid = (int)pid;
    return 1;
}

/* Whether a socket's root is gone: its pid is dead, or nothing listens. */
static int stale(const cn_tree_info_t *t)
{
    if (kill(t->pid, 0) < 0 && errno == ESRCH)
        return 1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->path);
    int refused = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ECONNREFUSED;
    close(fd);
    return refused;
}

int cn_client_list(cn_tree_info_t *out, size_t max, size_t *n)
{
    char dir[sizeof(out->path)];
    *n = 0;
    int rc = cn_client_dir(dir, sizeof(dir));
    if (rc < 0)
        return fail(rc, "the runtime directory's path is too long");
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : fail(CN_EIO, "cannot read %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        cn_tree_info_t t;
        memset(&t, 0, sizeof(t));
        if (!parse_sock_name(e->d_name, &t))
            continue;
        int len = snprintf(t.path, sizeof(t.path), "%s/%s", dir, e->d_name);
        if (len < 0 || (size_t)len >= sizeof(t.path))
            continue;
        struct stat st;
        if (stat(t.path, &st) < 0 || !S_ISSOCK(st.st_mode))
            continue;
        if (stale(&t)) {
            unlink(t.path); /* a root killed before it could remove it */
            continue;
        }
        t.since_us = (uint64_t)st.st_mtim.tv_sec * 1000000 + (uint64_t)st.st_mtim.tv_nsec / 1000;
        if (*n < max)
            out[*n] = t;
        (*n)++;
    }
    closedir(d);
    return 0;
}

int cn_client_find(const char *tree, cn_tree_info_t *out)
{
    struct stat st;
    if (tree && strchr(tree, '/') && stat(tree, &st) == 0 && S_ISSOCK(st.st_mode)) {
        memset(out, 0, sizeof(*out));
        const char *base = strrchr(tree, '/') + 1;
        parse_sock_name(base, out);
        if (snprintf(out->path, sizeof(out->path), "%s", tree) >= (int)sizeof(out->path))
            return fail(CN_ENAMETOOLONG, "socket path too long: %s", tree);
        return 0;
    }
    enum { MAX = 256 };
    cn_tree_info_t *all = calloc(MAX, sizeof(*all)); /* not TLS: every thread would pay */
    size_t n;
    if (all == NULL)
        return fail(CN_ENOMEM, "out of memory");
    int rc = cn_client_list(all, MAX, &n);
    if (rc < 0) {
        free(all);
        return rc;
    }
    if (n > MAX)
        n = MAX;
    size_t hits = 0, hit = 0;
    int same_names = 0; /* two of the matches share a name */
    char names[256] = "";
    for (size_t i = 0; i < n; i++) {
        char full[96];
        snprintf(full, sizeof(full), "%s.%d", all[i].name, all[i].pid);
        char *stop;
        long pid = tree && *tree ? strtol(tree, &stop, 10) : 0;
        int match = tree == NULL || *tree == '\0' || strcmp(tree, all[i].name) == 0 ||
                    strcmp(tree, full) == 0 || (*stop == '\0' && pid == all[i].pid);
        if (!match)
            continue;
        for (size_t j = 0; j < i && hits > 0; j++)
            same_names |= strcmp(all[j].name, all[i].name) == 0;
        if (hits++ < 4) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "", full);
        }
        hit = i;
    }
    if (hits == 1)
        *out = all[hit];
    free(all);
    if (hits == 0) {
        if (tree == NULL || *tree == '\0')
            return fail(CN_ENOENT, "no canopy tree is running (looked in %s)",
                        (cn_client_dir(out->path, sizeof(out->path)), out->path));
        return fail(CN_ENOENT, "no tree '%s' is running in %s (see 'canopy ls')", tree,
                    (cn_client_dir(out->path, sizeof(out->path)), out->path));
    }
    if (hits > 1 && tree && *tree)
        return fail(CN_EAMBIGUOUS, "%zu trees match %s: %s%s; name one as NAME.PID", hits, tree,
                    names, hits > 4 ? ", ..." : "");
    if (hits > 1)
        return fail(CN_EAMBIGUOUS, "%zu trees are running: %s%s; name one%s", hits, names,
                    hits > 4 ? ", ..." : "", same_names ? " as NAME.PID" : " by its name");
    return 0;
}

/* ===========================================================================
 * The connection
 */

static int send_all(cn_client_t *c, const char *p, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n, len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {c->fd, POLLOUT, 0};
            int r = poll(&pf, 1, left_ms(deadline));
            if (r == 0)
                return fail(CN_ETIMEDOUT, "the tree did not take our request in time");
            continue;
        }
        return fail(CN_EPIPE, "the tree closed the connection: %s", strerror(errno));
    }
    return 0;
}

/* The next message from the tree, waiting until deadline. */
static int recv_msg(cn_client_t *c, int64_t deadline, cn_wire_msg_t **out)
{
    for (;;) {
        while (c->off < c->have) {
            size_t used;
            int rc = cn_wire_decode(&c->dec, c->buf + c->off, c->have - c->off, &used, out);
            c->off += used;
            if (rc == 1)
                return 0;
            if (rc < 0) { /* the decoder's error is sticky: nothing after it is read */
                c->off = c->have;
                return fail(CN_EPROTO, "the tree sent a bad frame: %s", cn_strerror(rc));
            }
        }
        c->off = c->have = 0;
        struct pollfd pf = {c->fd, POLLIN, 0};
        int r = poll(&pf, 1, left_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return fail(CN_ETIMEDOUT, "the tree did not answer in time");
        ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(CN_EPIPE, "the tree closed the connection (it may have exited)");
        c->have = (size_t)n;
    }
}

int cn_client_connect(const char *path, cn_client_t **out, int64_t timeout_ms)
{
    *out = NULL;
    last_error[0] = '\0';
    int64_t deadline = deadline_of(timeout_ms);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path))
        return fail(CN_ENAMETOOLONG, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, len + 1);
    cn_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return fail(CN_ENOMEM, "out of memory");
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cn_wire_decoder_init(&c->dec, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        cn_client_close(c);
        if (e == ENOENT)
            return fail(CN_ENOENT, "no tree at %s", path);
        if (e == ECONNREFUSED)
            return fail(CN_ECONNREFUSED, "the tree at %s has exited", path);
        if (e == EACCES || e == EPERM)
            return fail(CN_EACCES, "permission denied: %s belongs to another user", path);
        return fail(CN_EIO, "cannot connect to %s: %s", path, strerror(e));
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_HELLO, 0, 0, 0};
    const char *me = "canopy-client";
    cn_wire_hello_t hello = {CN_PROTOCOL_VERSION, {me, (uint32_t)strlen(me)}, (uint64_t)getpid(),
                             (uint64_t)getuid()};
    int rc = cn_wire_pack_typed(&sb, &h, &hello, 0);
    if (rc == 0)
        rc = send_all(c, sb.data, sb.size, deadline);
    msgpack_sbuffer_destroy(&sb);
    cn_wire_msg_t *m = NULL;
    if (rc == 0)
        rc = recv_msg(c, deadline, &m);
    if (rc == 0 && m->hdr.type == CN_MSG_DEAD) {
        rc = fail(CN_EVERSION, "the tree refused us: %.*s", (int)m->u.dead.reason.len,
                  m->u.dead.reason.ptr);
    } else if (rc == 0 && m->hdr.type != CN_MSG_HELLO) {
        rc = fail(CN_EPROTO, "the tree answered HELLO with %s", cn_wire_type_name(m->hdr.type));
    } else if (rc == 0) {
        snprintf(c->tree, sizeof(c->tree), "%.*s", (int)m->u.hello.name.len, m->u.hello.name.ptr);
        c->root_pid = (int)m->u.hello.pid;
    }
    cn_wire_msg_free(m);
    if (rc < 0) {
        cn_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cn_client_close(cn_client_t *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    cn_wire_decoder_fini(&c->dec);
    cn_wire_msg_free(c->event);
    free(c);
}

const char *cn_client_tree(const cn_client_t *c)
{
    return c->tree;
}

int cn_client_root_pid(const cn_client_t *c)
{
    return c->root_pid;
}

/* ===========================================================================
 * Decoding a snapshot
 */

/* An integer's value (a positive one past INT64_MAX as INT64_MAX), or
 * dflt for a missing object or any other type. */
static int64_t obj_i64(const msgpack_object *o, int64_t dflt)
{
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return o->via.u64 > INT64_MAX ? INT64_MAX : (int64_t)o->via.u64;
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return o->via.i64;
    return dflt;
}

/*
 * map[key], for the snapshot's decoders. They read each map's fields in
 * the order the runtime packs them, so each search starts where the last
 * one matched and wraps around: a field is found in about one comparison,
 * where cn_msgpack_get takes half the map's (a snapshot of 200 actors and
 * 10 000 contexts has 20 000 context rows of 12 fields, and the linear
 * searches were a third of its decoding). Unlike cn_msgpack_get, a key
 * given twice in one map may be read from either place.
 */
static _Thread_local uint32_t field_hint; /* reset per snapshot */

static const msgpack_object *field(const msgpack_object *map, const char *key)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP || map->via.map.size == 0)
        return NULL;
    uint32_t n = map->via.map.size, i = field_hint < n ? field_hint : 0;
    size_t klen = strlen(key);
    for (uint32_t left = n; left > 0; left--, i = i + 1 < n ? i + 1 : 0) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0) {
            field_hint = i + 1;
            return &map->via.map.ptr[i].val;
        }
    }
    return NULL;
}

static int64_t get_i64(const msgpack_object *map, const char *key, int64_t dflt)
{
    return obj_i64(field(map, key), dflt);
}

/* A NUL-terminated copy of p[0..len) in the zone. */
static const char *get_dup(msgpack_zone *z, const char *p, size_t len)
{
    char *s = z ? msgpack_zone_malloc(z, len + 1) : NULL;
    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

static const char *get_str(msgpack_zone *z, const msgpack_object *map, const char *key)
{
    const msgpack_object *o = field(map, key);
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return NULL;
    return get_dup(z, o->via.str.ptr, o->via.str.size);
}

/* The array at map[key]: its elements and count (0 if absent). */
static const msgpack_object *get_array(const msgpack_object *map, const char *key, size_t *n)
{
    const msgpack_object *o = field(map, key);
    *n = o && o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.size : 0;
    return *n ? o->via.array.ptr : NULL;
}

/*
 * One of an actor's tables ("contexts", "threads": {cols, rows}, rows as
 * arrays; docs/protocol.md). Each column a decoder reads is looked up by
 * name once per table, so a root that adds or moves columns is still
 * read right, and a column it lacks reads as absent. A row's string that
 * repeats the row before's (a role, a phase, a function's name, most of
 * them) is the same copy, not a new one.
 */
#define TABLE_MAX_COLS 16

typedef struct {
    const msgpack_object *rows;
    size_t n;
    int at[TABLE_MAX_COLS]; /* each wanted column's place in a row, or -1 */
    const msgpack_object *last[TABLE_MAX_COLS]; /* the string last copied, */
    const char *copy[TABLE_MAX_COLS];           /*   and its copy */
} table_t;

static void table_open(table_t *t, const msgpack_object *actor, const char *key,
                       const char *const *want, size_t nwant)
{
    memset(t, 0, sizeof(*t));
    const msgpack_object *o = field(actor, key);
    const msgpack_object *cols = cn_msgpack_get(o, "cols"), *rows = cn_msgpack_get(o, "rows");
    uint32_t ncols = cols && cols->type == MSGPACK_OBJECT_ARRAY ? cols->via.array.size : 0;
    for (size_t w = 0; w < nwant && w < TABLE_MAX_COLS; w++) {
        t->at[w] = -1;
        size_t len = strlen(want[w]);
        for (uint32_t j = 0; j < ncols && j < INT_MAX; j++) {
            const msgpack_object *c = &cols->via.array.ptr[j];
            if (c->type == MSGPACK_OBJECT_STR && c->via.str.size == len &&
                memcmp(c->via.str.ptr, want[w], len) == 0) {
                t->at[w] = (int)j;
                break;
            }
        }
    }
    if (ncols && rows && rows->type == MSGPACK_OBJECT_ARRAY) {
        t->rows = rows->via.array.ptr;
        t->n = rows->via.array.size;
    }
}

/* Row i's value in wanted column w, or NULL. */
static const msgpack_object *cell(const table_t *t, size_t i, int w)
{
    const msgpack_object *r = &t->rows[i];
    int j = t->at[w];
    if (j < 0 || r->type != MSGPACK_OBJECT_ARRAY || (uint32_t)j >= r->via.array.size)
        return NULL;
    return &r->via.array.ptr[j];
}

static int64_t cell_i64(const table_t *t, size_t i, int w, int64_t dflt)
{
    return obj_i64(cell(t, i, w), dflt);
}

static const char *cell_str(msgpack_zone *z, table_t *t, size_t i, int w)
{
    const msgpack_object *o = cell(t, i, w), *last = t->last[w];
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return NULL;
    if (last && last->via.str.size == o->via.str.size &&
        memcmp(last->via.str.ptr, o->via.str.ptr, o->via.str.size) == 0)
        return t->copy[w];
    t->last[w] = o;
    return t->copy[w] = get_dup(z, o->via.str.ptr, o->via.str.size);
}

#define COL_ENUM(c) COL_##c,
#define COL_NAME(c) #c,
enum { CN_SNAP_CTX_COLS(COL_ENUM) NCTX_COLS };
static const char *const ctx_cols[] = {CN_SNAP_CTX_COLS(COL_NAME)};
#undef COL_ENUM
#define COL_ENUM(c) TCOL_##c,
enum { CN_SNAP_THREAD_COLS(COL_ENUM) NTHREAD_COLS };
static const char *const thread_cols[] = {CN_SNAP_THREAD_COLS(COL_NAME)};
_Static_assert(NCTX_COLS <= TABLE_MAX_COLS && NTHREAD_COLS <= TABLE_MAX_COLS,
               "a table_t has a place for each column a decoder reads");

static void *zalloc(msgpack_zone *z, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    void *p = msgpack_zone_malloc(z, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

static void decode_stream(msgpack_zone *z, const msgpack_object *o, cn_snap_stream_t *s)
{
    s->msgs_in = (uint64_t)get_i64(o, "msgs_in", 0);
    s->msgs_out = (uint64_t)get_i64(o, "msgs_out", 0);
    s->bytes_in = (uint64_t)get_i64(o, "bytes_in", 0);
    s->bytes_out = (uint64_t)get_i64(o, "bytes_out", 0);
    s->buffered = (uint64_t)get_i64(o, "buffered", 0);
    s->window = (uint64_t)get_i64(o, "window", 0);
    s->credit = get_i64(o, "credit", 0);
    s->last_us = (uint64_t)get_i64(o, "last_us", 0);
    s->send_blocked = (int)get_i64(o, "send_blocked", 0);
    s->blocked_since_us = (uint64_t)get_i64(o, "blocked_since_us", 0);
    s->local = get_str(z, o, "local");
    s->peer = get_str(z, o, "peer");
    s->peer_window = (uint64_t)get_i64(o, "peer_window", 0);
}

static int decode_actor(msgpack_zone *z, const msgpack_object *o, cn_snap_actor_t *a)
{
    a->raw = o;
    a->id = (uint32_t)get_i64(o, "id", 0);
    a->parent = get_i64(o, "parent", -1);
    a->name = get_str(z, o, "name");
    a->path = get_str(z, o, "path");
    a->host = get_str(z, o, "host");
    a->state = get_str(z, o, "state");
    a->responsive = a->state == NULL || strcmp(a->state, "unresponsive") != 0;
    a->pid = (int)get_i64(o, "pid", 0);
    a->uid = (int)get_i64(o, "uid", 0);
    a->start_us = (uint64_t)get_i64(o, "start_us", 0);
    a->now_us = (uint64_t)get_i64(o, "now_us", 0);
    a->rss_kib = get_i64(o, "rss_kib", -1);

    size_t n;
    const msgpack_object *e = get_array(o, "children", &n);
    a->children = zalloc(z, n, sizeof(*a->children));
    for (size_t i = 0; i < n && a->children; i++, a->nchildren++) {
        cn_snap_child_t *c = &a->children[i];
        c->id = (uint32_t)get_i64(&e[i], "id", 0);
        c->name = get_str(z, &e[i], "name");
        c->pid = (int)get_i64(&e[i], "pid", 0);
        c->state = get_str(z, &e[i], "state");
        c->status = get_str(z, &e[i], "status");
        c->exit_us = (uint64_t)get_i64(&e[i], "exit_us", 0);
    }
    e = get_array(o, "routes", &n);
    a->routes = zalloc(z, n, sizeof(*a->routes));
    for (size_t i = 0; i < n && a->routes; i++, a->nroutes++) {
        cn_snap_route_t *r = &a->routes[i];
        r->id = (uint32_t)get_i64(&e[i], "id", 0);
        r->parent = (uint32_t)get_i64(&e[i], "parent", 0);
        r->via = get_i64(&e[i], "via", -1);
        r->name = get_str(z, &e[i], "name");
        r->learned_us = (uint64_t)get_i64(&e[i], "learned_us", 0);
    }
    table_t tb;
    table_open(&tb, o, "contexts", ctx_cols, NCTX_COLS);
    a->contexts = zalloc(z, tb.n, sizeof(*a->contexts));
    for (size_t i = 0; i < tb.n && a->contexts; i++, a->ncontexts++) {
        cn_snap_ctx_t *c = &a->contexts[i];
        c->cid = (uint64_t)cell_i64(&tb, i, COL_cid, 0);
        c->tid = (int)cell_i64(&tb, i, COL_tid, 0);
        c->peer = (uint32_t)cell_i64(&tb, i, COL_peer, 0);
        c->fn = cell_str(z, &tb, i, COL_fn);
        c->role = cell_str(z, &tb, i, COL_role);
        c->kind = cell_str(z, &tb, i, COL_kind);
        c->phase = cell_str(z, &tb, i, COL_phase);
        c->opened_us = (uint64_t)cell_i64(&tb, i, COL_opened_us, 0);
        c->cancel = cell_str(z, &tb, i, COL_cancel);
        c->cancel_by = cell_str(z, &tb, i, COL_cancel_by);
        c->cancel_us = (uint64_t)cell_i64(&tb, i, COL_cancel_us, 0);
        const msgpack_object *st = cell(&tb, i, COL_stream);
        c->has_stream = st && st->type == MSGPACK_OBJECT_MAP;
        if (c->has_stream)
            decode_stream(z, st, &c->stream);
    }
    table_open(&tb, o, "threads", thread_cols, NTHREAD_COLS);
    a->threads = zalloc(z, tb.n, sizeof(*a->threads));
    for (size_t i = 0; i < tb.n && a->threads; i++, a->nthreads++) {
        cn_snap_thread_t *th = &a->threads[i];
        th->tid = (int)cell_i64(&tb, i, TCOL_tid, 0);
        th->kind = cell_str(z, &tb, i, TCOL_kind);
        th->doing = cell_str(z, &tb, i, TCOL_doing);
        th->peer = (uint32_t)cell_i64(&tb, i, TCOL_peer, 0);
        th->cid = (uint64_t)cell_i64(&tb, i, TCOL_cid, 0);
        th->since_us = (uint64_t)cell_i64(&tb, i, TCOL_since_us, 0);
        th->fn = cell_str(z, &tb, i, TCOL_fn);
        th->task_caller = (uint32_t)cell_i64(&tb, i, TCOL_task_caller, 0);
        th->task_cid = (uint64_t)cell_i64(&tb, i, TCOL_task_cid, 0);
    }
    e = get_array(o, "stacks", &n);
    a->stacks = zalloc(z, n, sizeof(*a->stacks));
    for (size_t i = 0; i < n && a->stacks; i++, a->nstacks++) {
        cn_snap_stack_t *t = &a->stacks[i];
        t->tid = (int)get_i64(&e[i], "tid", 0);
        t->name = get_str(z, &e[i], "name");
        t->state = get_str(z, &e[i], "state");
        size_t nf;
        const msgpack_object *f = get_array(&e[i], "frames", &nf);
        t->frames = zalloc(z, nf, sizeof(*t->frames));
        for (size_t k = 0; k < nf && t->frames; k++)
            if (f[k].type == MSGPACK_OBJECT_STR)
                t->frames[t->nframes++] = get_dup(z, f[k].via.str.ptr, f[k].via.str.size);
    }
    return 0;
}

static int by_actor_id(const void *a, const void *b)
{
    uint32_t x = ((const cn_snap_actor_t *)a)->id, y = ((const cn_snap_actor_t *)b)->id;
    return (x > y) - (x < y);
}

static int by_route_id(const void *a, const void *b)
{
    uint32_t x = ((const cn_snap_route_t *)a)->id, y = ((const cn_snap_route_t *)b)->id;
    return (x > y) - (x < y);
}

static int decode_snapshot(cn_wire_msg_t *m, cn_snapshot_t **out)
{
    cn_snapshot_t *s = calloc(1, sizeof(*s));
    snap_priv_t *p = calloc(1, sizeof(*p));
    if (s == NULL || p == NULL || !msgpack_zone_init(&p->zone, 16 * 1024)) {
        free(s);
        free(p);
        return fail(CN_ENOMEM, "out of memory for the snapshot");
    }
    p->msg = m;
    s->priv_ = p;
    s->raw = m->body;
    msgpack_zone *z = &p->zone;
    const msgpack_object *b = &m->body;
    field_hint = 0;
    s->tree = get_str(z, b, "tree");
    s->root_pid = (int)get_i64(b, "root_pid", 0);
    s->now_us = (uint64_t)get_i64(b, "now_us", 0);
    s->timeout_ms = (unsigned)get_i64(b, "timeout_ms", 0);
    s->unresponsive = (unsigned)get_i64(b, "unresponsive", 0);
    size_t n;
    const msgpack_object *e = get_array(b, "actors", &n);
    s->actors = zalloc(z, n, sizeof(*s->actors));
    for (size_t i = 0; i < n && s->actors; i++, s->nactors++)
        decode_actor(z, &e[i], &s->actors[i]);
    if (s->nactors > 0) { /* the first actor's (the root's) log: e[0] is the array found above */
        e = get_array(&e[0], "logs", &n);
        s->logs = zalloc(z, n, sizeof(*s->logs));
        for (size_t i = 0; i < n && s->logs; i++, s->nlogs++) {
            s->logs[i].level = (int)get_i64(&e[i], "level", 0);
            s->logs[i].time_us = (uint64_t)get_i64(&e[i], "time_us", 0);
            s->logs[i].path = get_str(z, &e[i], "path");
            s->logs[i].message = get_str(z, &e[i], "message");
        }
    }
    if (b->type != MSGPACK_OBJECT_MAP || s->nactors == 0) {
        cn_snapshot_free(s);
        return fail(CN_EPROTO, "the tree's snapshot has no actors in it");
    }
    /* The parts come in the order the actors answered: a reader wants
     * the same order every time (the root, id 0, stays first). */
    qsort(s->actors, s->nactors, sizeof(*s->actors), by_actor_id);
    for (size_t i = 0; i < s->nactors; i++)
        if (s->actors[i].nroutes > 1)
            qsort(s->actors[i].routes, s->actors[i].nroutes, sizeof(*s->actors[i].routes),
                  by_route_id);
    *out = s;
    return 0;
}

/* A request being built: begin it, pack its body with r->pk, then send it
 * with request(). */
typedef struct req {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t mark;
    uint64_t cid;
    int64_t deadline;
    int rc;
} req_t;

static void req_begin(cn_client_t *c, req_t *r, uint32_t type, uint32_t dst, int64_t timeout_ms)
{
    last_error[0] = '\0';
    r->deadline = deadline_of(timeout_ms);
    r->cid = ++c->next_cid;
    msgpack_sbuffer_init(&r->sb);
    cn_wire_hdr_t h = {type, dst, 0, r->cid};
    r->rc = cn_wire_begin(&r->sb, &r->pk, &h, &r->mark);
}

/* Ends the frame; on failure frees it and says why. */
static int req_end(req_t *r)
{
    if (cn_wire_end(&r->sb, r->mark, r->rc, 0) == 0 && r->rc == 0)
        return 0;
    msgpack_sbuffer_destroy(&r->sb);
    return fail(CN_EMSGSIZE, "the request is too large, or out of memory");
}

int cn_client_snapshot(cn_client_t *c, unsigned actor_timeout_ms, int64_t timeout_ms,
                       cn_snapshot_t **out)
{
    cn_snap_opts_t o = {actor_timeout_ms, 0};
    return cn_client_snapshot_opts(c, &o, timeout_ms, out);
}

int cn_client_snapshot_opts(cn_client_t *c, const cn_snap_opts_t *o, int64_t timeout_ms,
                            cn_snapshot_t **out)
{
    *out = NULL;
    req_t r;
    req_begin(c, &r, CN_MSG_INSPECT, 0, timeout_ms);
    if (r.rc == 0) {
        msgpack_pack_map(&r.pk, o->stacks ? 3 : 2);
        msgpack_pack_str_with_body(&r.pk, "scope", 5);
        msgpack_pack_str_with_body(&r.pk, "tree", 4);
        msgpack_pack_str_with_body(&r.pk, "timeout_ms", 10);
        msgpack_pack_uint32(&r.pk, o->actor_timeout_ms);
        if (o->stacks) {
            msgpack_pack_str_with_body(&r.pk, "stacks", 6);
            msgpack_pack_true(&r.pk);
        }
    }
    if (req_end(&r) < 0)
        return CN_EMSGSIZE;
    int64_t deadline = r.deadline;
    uint64_t cid = r.cid;
    int rc = send_all(c, r.sb.data, r.sb.size, deadline);
    msgpack_sbuffer_destroy(&r.sb);
    while (rc == 0) {
        cn_wire_msg_t *m;
        if ((rc = recv_msg(c, deadline, &m)) < 0)
            break;
        if (m->hdr.cid != cid) { /* an answer we stopped waiting for */
            cn_wire_msg_free(m);
            continue;
        }
        if (m->hdr.type == CN_MSG_SNAPSHOT)
            return decode_snapshot(m, out); /* takes m */
        rc = fail(CN_EPROTO, "the tree answered INSPECT with %s", cn_wire_type_name(m->hdr.type));
        cn_wire_msg_free(m);
    }
    return rc;
}

/*
 * Sends the frame in sb (whose cid is `cid`) and waits for its answer:
 * RETURN is 0, DEAD is CN_EDEAD with the tree's reason. Events that
 * arrive meanwhile are dropped, so on a connection in console mode
 * requests are only sent (`wait` 0); their refusals come back as "error"
 * events.
 */
static int request(cn_client_t *c, uint32_t type, msgpack_sbuffer *sb, uint64_t cid, int wait,
                   int64_t deadline)
{
    int rc = send_all(c, sb->data, sb->size, deadline);
    msgpack_sbuffer_destroy(sb);
    while (rc == 0 && wait) {
        cn_wire_msg_t *m;
        if ((rc = recv_msg(c, deadline, &m)) < 0)
            break;
        int mine = m->hdr.cid == cid && m->hdr.type != CN_MSG_EVENT;
        if (mine && m->hdr.type == CN_MSG_DEAD)
            rc = fail(CN_EDEAD, "%.*s", (int)m->u.dead.reason.len, m->u.dead.reason.ptr);
        else if (mine && m->hdr.type != CN_MSG_RETURN)
            rc = fail(CN_EPROTO, "the tree answered %s with %s", cn_wire_type_name(type),
                      cn_wire_type_name(m->hdr.type));
        cn_wire_msg_free(m);
        if (mine)
            return rc;
    }
    return rc;
}

int cn_client_cancel(cn_client_t *c, uint32_t actor, uint64_t call, const char *reason,
                     int64_t timeout_ms)
{
    last_error[0] = '\0';
    int64_t deadline = deadline_of(timeout_ms);
    uint64_t cid = ++c->next_cid;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    /* from a client every CANCEL is an operator's request; cid pairs the reply */
    cn_wire_hdr_t h = {CN_MSG_CANCEL, actor, 0, cid};
    const char *why = reason ? reason : "operator";
    cn_wire_cancel_t b = {{why, (uint32_t)strlen(why)}, call ? 0 : actor, call};
    if (cn_wire_pack_typed(&sb, &h, &b, 0) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return fail(CN_ENOMEM, "out of memory");
    }
    return request(c, CN_MSG_CANCEL, &sb, cid, !c->console, deadline);
}

/* SUBSCRIBE with options {"events": events, "console": console}. */
static int subscribe(cn_client_t *c, int events, int console, int64_t timeout_ms)
{
    req_t r;
    req_begin(c, &r, CN_MSG_SUBSCRIBE, 0, timeout_ms);
    if (r.rc == 0) {
        msgpack_pack_map(&r.pk, 3);
        msgpack_pack_str_with_body(&r.pk, "events", 6);
        events != CN_EVENTS_NONE ? msgpack_pack_true(&r.pk) : msgpack_pack_false(&r.pk);
        msgpack_pack_str_with_body(&r.pk, "console", 7);
        console ? msgpack_pack_true(&r.pk) : msgpack_pack_false(&r.pk);
        msgpack_pack_str_with_body(&r.pk, "contexts", 8);
        events != CN_EVENTS_NO_CONTEXTS ? msgpack_pack_true(&r.pk) : msgpack_pack_false(&r.pk);
    }
    if (req_end(&r) < 0)
        return CN_EMSGSIZE;
    int rc = request(c, CN_MSG_SUBSCRIBE, &r.sb, r.cid, 1, r.deadline);
    if (rc == 0)
        c->console = console;
    return rc;
}

int cn_client_subscribe(cn_client_t *c, int64_t timeout_ms)
{
    return subscribe(c, CN_EVENTS_ALL, 0, timeout_ms);
}

int cn_client_console(cn_client_t *c, int events, int64_t timeout_ms)
{
    return subscribe(c, events, 1, timeout_ms);
}

int cn_client_fd(const cn_client_t *c)
{
    return c->fd;
}

int cn_client_pending(const cn_client_t *c)
{
    /* Bytes not yet decoded may be only the start of a frame; the next
     * cn_client_event takes them into the decoder, and this says 0. */
    return c->batch_left > 0 || c->off < c->have;
}

/* A debugger request: `body` a string, a map {"op": body} (LOCK_RELEASE),
 * or nil. */
static int debug_request(cn_client_t *c, uint32_t type, uint32_t dst, const char *body,
                         size_t len, int64_t timeout_ms)
{
    req_t r;
    req_begin(c, &r, type, dst, timeout_ms);
    if (r.rc == 0) {
        if (type == CN_MSG_LOCK_RELEASE) {
            msgpack_pack_map(&r.pk, 1);
            msgpack_pack_str_with_body(&r.pk, "op", 2);
        } else if (type == CN_MSG_CONSOLE_IN) {
            msgpack_pack_array(&r.pk, 1);
        }
        if (body)
            msgpack_pack_str_with_body(&r.pk, body, len);
        else
            msgpack_pack_nil(&r.pk);
    }
    if (req_end(&r) < 0)
        return CN_EMSGSIZE;
    return request(c, type, &r.sb, r.cid, !c->console, r.deadline);
}

int cn_client_console_send(cn_client_t *c, const char *line, size_t len, int64_t timeout_ms)
{
    return debug_request(c, CN_MSG_CONSOLE_IN, 0, line, len, timeout_ms);
}

int cn_client_break(cn_client_t *c, uint32_t actor, int64_t timeout_ms)
{
    return debug_request(c, CN_MSG_BREAK, actor, NULL, 0, timeout_ms);
}

int cn_client_lock_op(cn_client_t *c, const char *op, int64_t timeout_ms)
{
    if (op == NULL || (strcmp(op, "skip") != 0 && strcmp(op, "release") != 0))
        return fail(CN_EINVAL, "the lock operations are skip and release");
    return debug_request(c, CN_MSG_LOCK_RELEASE, 0, op, strlen(op), timeout_ms);
}

/* Fills ev from an EVENT's map, in one pass over its keys (a feed can
 * bring thousands a second). As cn_msgpack_get would, the first of a
 * repeated key counts; strings are NUL-terminated copies in the zone,
 * and detail may be a str or a bin (console output holds any bytes). */
static void event_fill(cn_wire_msg_t *m, cn_event_t *ev)
{
    static const char *const keys[] = {"kind", "actor",  "path", "time_us", "cid",   "peer",
                                       "fn",   "detail", "op",   "waiting", "level", "count"};
    enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
    msgpack_zone *z = cn_wire_msg_zone(m);
    unsigned seen = 0;
    const msgpack_object_map *map = &m->body.via.map;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR)
            continue;
        unsigned f = 0;
        while (f < NKEYS && !(strlen(keys[f]) == k->via.str.size &&
                              memcmp(keys[f], k->via.str.ptr, k->via.str.size) == 0))
            f++;
        if (f == NKEYS || (seen & (1u << f)))
            continue;
        seen |= 1u << f;
        int is_str = v->type == MSGPACK_OBJECT_STR;
        const char *str = is_str ? get_dup(z, v->via.str.ptr, v->via.str.size) : NULL;
        switch (f) {
        case 0:
            ev->kind = str;
            break;
        case 1:
            ev->actor = (uint32_t)obj_i64(v, 0);
            break;
        case 2:
            ev->path = str;
            break;
        case 3:
            ev->time_us = (uint64_t)obj_i64(v, 0);
            break;
        case 4:
            ev->cid = (uint64_t)obj_i64(v, 0);
            break;
        case 5:
            ev->peer = (uint32_t)obj_i64(v, 0);
            break;
        case 6:
            ev->fn = str;
            break;
        case 7:
            if (v->type == MSGPACK_OBJECT_BIN)
                str = get_dup(z, v->via.bin.ptr, v->via.bin.size);
            if (str) {
                ev->detail = str;
                ev->detail_len = is_str ? v->via.str.size : v->via.bin.size;
            }
            break;
        case 8:
            ev->op = str;
            break;
        case 9:
            ev->waiting = (unsigned)obj_i64(v, 0);
            break;
        case 10:
            ev->level = (int)obj_i64(v, 0);
            break;
        default:
            ev->count = (uint64_t)obj_i64(v, 0);
            break;
        }
    }
}

/* If m is a batch of a context's events ({actor, path, events: [[kind,
 * time_us, cid, peer, fn, detail], ...]}, docs/protocol.md), makes it the
 * batch to hand out and returns 1. */
static int batch_start(cn_client_t *c, cn_wire_msg_t *m)
{
    const msgpack_object *evs = cn_msgpack_get(&m->body, "events");
    if (evs == NULL || evs->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    const msgpack_object *path = cn_msgpack_get(&m->body, "path");
    c->batch = evs->via.array.ptr;
    c->batch_left = evs->via.array.size;
    c->batch_actor = (uint32_t)obj_i64(cn_msgpack_get(&m->body, "actor"), 0);
    c->batch_path = path && path->type == MSGPACK_OBJECT_STR
                        ? get_dup(cn_wire_msg_zone(m), path->via.str.ptr, path->via.str.size)
                        : NULL;
    return 1;
}

/* Fills ev from the batch's next event (an item that is not an array
 * gives an event of kind "?"). */
static void batch_next(cn_client_t *c, cn_event_t *ev)
{
    const msgpack_object *o = c->batch++;
    c->batch_left--;
    ev->actor = c->batch_actor;
    ev->path = c->batch_path;
    int is_array = o->type == MSGPACK_OBJECT_ARRAY;
    const msgpack_object *f = is_array ? o->via.array.ptr : NULL;
    uint32_t n = is_array ? o->via.array.size : 0;
    msgpack_zone *z = cn_wire_msg_zone(c->event);
    if (n > 0 && f[0].type == MSGPACK_OBJECT_STR)
        ev->kind = get_dup(z, f[0].via.str.ptr, f[0].via.str.size);
    ev->time_us = n > 1 ? (uint64_t)obj_i64(&f[1], 0) : 0;
    ev->cid = n > 2 ? (uint64_t)obj_i64(&f[2], 0) : 0;
    ev->peer = n > 3 ? (uint32_t)obj_i64(&f[3], 0) : 0;
    if (n > 4 && f[4].type == MSGPACK_OBJECT_STR)
        ev->fn = get_dup(z, f[4].via.str.ptr, f[4].via.str.size);
    if (n > 5 && f[5].type == MSGPACK_OBJECT_STR) {
        ev->detail = get_dup(z, f[5].via.str.ptr, f[5].via.str.size);
        ev->detail_len = ev->detail ? f[5].via.str.size : 0;
    }
    if (ev->kind == NULL)
        ev->kind = "?";
}

int cn_client_event(cn_client_t *c, cn_event_t *ev, int64_t timeout_ms)
{
    last_error[0] = '\0';
    memset(ev, 0, sizeof(*ev));
    if (c->batch_left > 0) { /* the rest of a batch already read */
        batch_next(c, ev);
        return 0;
    }
    cn_wire_msg_free(c->event);
    c->event = NULL;
    int64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        cn_wire_msg_t *m;
        int rc = recv_msg(c, deadline, &m);
        if (rc < 0)
            return rc;
        if (m->hdr.type == CN_MSG_DEAD && c->console) { /* a request refused */
            c->event = m;
            ev->kind = "error";
            ev->time_us = (uint64_t)time(NULL) * 1000000;
            ev->detail = get_dup(cn_wire_msg_zone(m), m->u.dead.reason.ptr, m->u.dead.reason.len);
            ev->detail_len = m->u.dead.reason.len;
            return 0;
        }
        if (m->hdr.type != CN_MSG_EVENT || m->body.type != MSGPACK_OBJECT_MAP) {
            cn_wire_msg_free(m); /* a late answer to something else */
            continue;
        }
        c->event = m;
        if (batch_start(c, m)) {
            if (c->batch_left == 0) { /* an empty batch */
                cn_wire_msg_free(m);
                c->event = NULL;
                continue;
            }
            batch_next(c, ev);
            return 0;
        }
        event_fill(m, ev);
        if (ev->kind == NULL)
            ev->kind = "?";
        return 0;
    }
}

void cn_snapshot_free(cn_snapshot_t *s)
{
    if (s == NULL)
        return;
    snap_priv_t *p = s->priv_;
    msgpack_zone_destroy(&p->zone);
    cn_wire_msg_free(p->msg);
    free(p);
    free(s);
}

const cn_snap_actor_t *cn_snapshot_find(const cn_snapshot_t *s, const char *which, int *ambiguous)
{
    if (ambiguous)
        *ambiguous = 0;
    if (which == NULL)
        return NULL;
    char *stop;
    unsigned long id = strtoul(which, &stop, 10);
    const cn_snap_actor_t *hit = NULL;
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        if (*which && *stop == '\0' && a->id == id)
            return a;
        if (a->path && strcmp(a->path, which) == 0)
            return a;
    }
    /* A name, or the end of a path ("stage-1/worker-0"), where it names
     * one actor. */
    size_t n = strlen(which);
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        size_t plen = a->path ? strlen(a->path) : 0;
        int tail = n && plen > n && a->path[plen - n - 1] == '/' &&
                   strcmp(a->path + plen - n, which) == 0;
        if ((a->name && strcmp(a->name, which) == 0) || tail) {
            if (hit) {
                if (ambiguous)
                    *ambiguous = 1;
                return NULL;
            }
            hit = a;
        }
    }
    return hit;
}
