/*
 * snapshot.c: one actor's snapshot, from the runtime's bookkeeping.
 *
 * Runs on the broker, which never runs user code, so an actor whose task
 * threads are all stuck still answers. It takes rt.mu for the tables and
 * the registry's lock for contexts and threads, one after the other,
 * never both: a snapshot is a set of consistent parts, not one instant.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "debug/debug.h"
#include "inspect/inspect.h"
#include "runtime/rt.h"

/* The resident set, from /proc/self/statm ("size resident ..." in pages);
 * -1 if it cannot be read. A read(), not stdio: every actor does this for
 * every snapshot, and fopen's buffer and scanf were a tenth of a small
 * actor's answer. */
static long rss_kib(void)
{
    char b[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof(b) - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    b[n] = '\0';
    char *end;
    (void)strtol(b, &end, 10); /* size */
    long res = strtol(end, &end, 10);
    return res <= 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* "exit 0", "signal 9", or "" while running. */
static void describe_status(int status, char *out, size_t n)
{
    if (WIFEXITED(status))
        snprintf(out, n, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, n, "signal %d", WTERMSIG(status));
    else
        snprintf(out, n, "status %d", status);
}

static void pack_child(msgpack_packer *pk, const cn__stream_t *s)
{
    msgpack_pack_map(pk, 6);
    cn__pack_kint(pk, "id", s->peer);
    cn__pack_kstr(pk, "name", s->name);
    cn__pack_kint(pk, "pid", s->pid);
    /* Reaped, its link and pipes being drained: it is gone from the
     * system already, and the lint must not call that lost track. */
    cn__pack_kstr(pk, "state", s->reaped        ? "reaped"
                               : !s->up         ? "starting"
                               : s->reap_step   ? "cancelling"
                               : s->lost        ? "exiting"
                                                : "running");
    cn__pack_kstr(pk, "status", NULL);
    cn__pack_kint(pk, "exit_us", 0);
}

static void pack_exited(msgpack_packer *pk, const cn__exited_t *x)
{
    char st[32];
    describe_status(x->status, st, sizeof(st));
    msgpack_pack_map(pk, 6);
    cn__pack_kint(pk, "id", x->id);
    cn__pack_kstr(pk, "name", x->name);
    cn__pack_kint(pk, "pid", x->pid);
    cn__pack_kstr(pk, "state", "exited");
    cn__pack_kstr(pk, "status", st);
    cn__pack_kint(pk, "exit_us", (int64_t)x->time_us);
}

typedef struct {
    msgpack_packer *pk;
} route_ctx_t;

static void pack_route(const cn_route_t *r, void *arg)
{
    msgpack_packer *pk = ((route_ctx_t *)arg)->pk;
    const cn__stream_t *via = r->via < cn__rt.nstreams ? cn__rt.streams[r->via] : NULL;
    msgpack_pack_map(pk, 5);
    cn__pack_kint(pk, "id", r->id);
    cn__pack_kint(pk, "parent", r->parent);
    cn__pack_kstr(pk, "name", r->name);
    cn__pack_kint(pk, "via", via ? (int64_t)via->peer : -1);
    cn__pack_kint(pk, "learned_us", (int64_t)r->learned_us);
}

void cn__snapshot_pack(msgpack_packer *pk, int stacks)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);

    msgpack_pack_map(pk, stacks ? 21 : 20);
    cn__lock(&cn__rt.mu);
    cn__pack_kint(pk, "id", cn__rt.id);
    cn__pack_kstr(pk, "name", cn__rt.name);
    cn__pack_kstr(pk, "path", cn__rt.path);
    cn__pack_kint(pk, "pid", getpid());
    cn__pack_kint(pk, "uid", getuid());
    cn__pack_kstr(pk, "host", host);
    cn__pack_kint(pk, "parent", cn__rt.is_root ? -1 : (int64_t)cn__rt.parent_id);
    cn__pack_kint(pk, "start_us", (int64_t)cn__rt.start_us);
    cn__pack_kint(pk, "now_us", (int64_t)cn__now_us());
    cn__pack_kstr(pk, "state", cn__rt.shutting_down ? "cancelling" : "running");
    cn__pack_kint(pk, "rss_kib", rss_kib());
    cn__pack_kint(pk, "threads_max", cn__rt.max_threads);

    size_t live = 0;
    for (size_t i = 0; i < cn__rt.nstreams; i++)
        live += cn__rt.streams[i] && !cn__rt.streams[i]->is_parent;
    uint64_t kept = cn__rt.nexited < CN__EXITED_KEEP ? cn__rt.nexited : CN__EXITED_KEEP;
    cn__pack_cstr(pk, "children");
    msgpack_pack_array(pk, live + (size_t)kept);
    for (size_t i = 0; i < cn__rt.nstreams; i++)
        if (cn__rt.streams[i] && !cn__rt.streams[i]->is_parent)
            pack_child(pk, cn__rt.streams[i]);
    for (uint64_t k = cn__rt.nexited - kept; k < cn__rt.nexited; k++)
        pack_exited(pk, &cn__rt.exited[k % CN__EXITED_KEEP]);

    cn__pack_cstr(pk, "routes");
    msgpack_pack_array(pk, cn_route_count(&cn__rt.routes));
    route_ctx_t rc = {pk};
    cn_route_foreach(&cn__rt.routes, pack_route, &rc);
    cn__unlock(&cn__rt.mu);

    cn__registry_pack(pk); /* "contexts" and "threads" */

    cn__pack_cstr(pk, "logs"); /* the root's ring: the tree's log tail */
    if (cn__rt.is_root)
        cn__log_pack(pk, 200);
    else
        msgpack_pack_array(pk, 0);

    cn__pack_kint(pk, "log_level", atomic_load(&cn__rt.log_level));
    cn__debug_pack(pk); /* "debug" and "lock" */
    if (stacks)
        cn__debug_pack_stacks(pk);
}
