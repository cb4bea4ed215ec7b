/*
 * cousins.c: a nested tree, and calls between cousins.
 *
 *   cousins                     the root
 *   |- sup-0                    a supervisor, started by the root
 *   |  |- worker-0, worker-1    started by sup-0
 *   |- sup-1
 *      |- worker-0, worker-1
 *
 * Each supervisor spawns its own two workers and tells the root their ids.
 * The root then asks sup-0's worker-0 to call sup-1's worker-1 and the
 * other way round. A portal (cn_portal_t) is nothing but an actor's id, and
 * any actor may call any other whose id it knows: the request climbs to the
 * common ancestor (here the root) and comes down the other branch; neither
 * supervisor takes part. The answers are printed, then the root cancels both
 * supervisors, which cancel their workers first, and exits 0.
 *
 *   make examples && build/examples/cousins
 *   CANOPY_LOG_LEVEL=debug build/examples/cousins   # routing as it happens
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <canopy.h>

#define WORKERS 2
#define TIMEOUT_MS 5000

/* Packs a C string as one msgpack string. */
static int pack_cstr(msgpack_packer *out, const char *s)
{
    return msgpack_pack_str_with_body(out, s, strlen(s));
}

/* ------------------------------------------------------------ workers */

/* Who am I: what a cousin asks. */
static int whoami(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    char s[200];
    snprintf(s, sizeof(s), "%s (actor %u, child of actor %u), asked by actor %u", cn_path(),
             cn_self().id, cn_parent().id, cn_call_caller(call).id);
    return pack_cstr(out, s);
}

/* Calls `whoami` on the actor whose id is in args, and answers with what
 * it said. The cousin is in another branch of the tree; only its id is
 * needed to reach it. */
static int call_cousin(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    if (args == NULL || args->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return cn_call_fail(call, CN_EINVAL, "call_cousin wants an actor id");
    cn_portal_t cousin = {(uint32_t)args->via.u64};
    cn_result_t r;
    int rc = cn_call(cousin, "whoami", NULL, &r, TIMEOUT_MS);
    if (rc == 0 && r.value.type == MSGPACK_OBJECT_STR) {
        char s[300];
        snprintf(s, sizeof(s), "%s -> %.*s", cn_path(), (int)r.value.via.str.size,
                 r.value.via.str.ptr);
        rc = pack_cstr(out, s);
    } else if (rc == 0) {
        rc = cn_call_fail(call, CN_EPROTO, "actor %u sent a non-string", cousin.id);
    } else {
        rc = cn_call_fail(call, rc, "calling actor %u: %s", cousin.id,
                          r.error.message ? r.error.message : cn_strerror(rc));
    }
    cn_result_free(&r);
    return rc;
}

/* ------------------------------------------------------------ supervisors */

/* Called once by the root: spawns this supervisor's workers (children of
 * this actor, though the spawn runs on a task thread) and answers with
 * their ids. */
static int start_workers(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* one start at a time */
    cn_portal_t w[WORKERS];
    int rc = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < WORKERS && rc == 0; i++) {
        char name[16];
        snprintf(name, sizeof(name), "worker-%d", i);
        if ((rc = cn_spawn(name, NULL, &w[i], TIMEOUT_MS)) < 0)
            rc = cn_call_fail(call, rc, "cannot spawn %s: %s", name, cn_strerror(rc));
    }
    pthread_mutex_unlock(&mu);
    if (rc < 0)
        return rc;
    msgpack_pack_array(out, WORKERS);
    for (int i = 0; i < WORKERS; i++)
        msgpack_pack_uint32(out, w[i].id);
    return 0;
}

/* ------------------------------------------------------------ the root */

/* Asks `from` to call `to`, and prints the answer. */
static int relay(cn_portal_t from, cn_portal_t to)
{
    msgpack_object arg = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = to.id};
    cn_result_t r;
    int rc = cn_call(from, "call_cousin", &arg, &r, TIMEOUT_MS);
    if (rc == 0)
        printf("%.*s\n", (int)r.value.via.str.size, r.value.via.str.ptr);
    else
        printf("actor %u -> actor %u failed: %s: %s\n", from.id, to.id, cn_strerror(rc),
               r.error.message ? r.error.message : "");
    cn_result_free(&r);
    return rc;
}

static int root_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_portal_t sup[2], worker[2][WORKERS];
    for (int s = 0; s < 2; s++) {
        char name[16];
        snprintf(name, sizeof(name), "sup-%d", s);
        cn_result_t r = {0}; /* zeroed: freed below even when the spawn fails */
        int rc = cn_spawn(name, NULL, &sup[s], TIMEOUT_MS);
        if (rc == 0)
            rc = cn_call(sup[s], "start_workers", NULL, &r, TIMEOUT_MS);
        if (rc == 0 && (r.value.type != MSGPACK_OBJECT_ARRAY || r.value.via.array.size != WORKERS))
            rc = CN_EPROTO;
        if (rc < 0) {
            fprintf(stderr, "cousins: starting %s: %s\n", name, cn_strerror(rc));
            cn_result_free(&r);
            return 1; /* cn_run cancels what did start */
        }
        for (int w = 0; w < WORKERS; w++)
            worker[s][w].id = (uint32_t)r.value.via.array.ptr[w].via.u64;
        printf("%s is actor %u; its workers are actors %u and %u\n", name, sup[s].id,
               worker[s][0].id, worker[s][1].id);
        cn_result_free(&r);
    }

    /* Across the tree, both ways: sup-0/worker-0 -> sup-1/worker-1 and
     * sup-1/worker-0 -> sup-0/worker-1. */
    int rc = relay(worker[0][0], worker[1][1]);
    if (rc == 0)
        rc = relay(worker[1][0], worker[0][1]);

    /* Cancelling a supervisor cancels its workers first (depth-first) and
     * returns once the whole branch has exited and been reaped. */
    for (int s = 0; s < 2; s++) {
        int c = cn_cancel(sup[s], TIMEOUT_MS);
        printf("cancelled sup-%d and its workers: %s\n", s, c == 0 ? "ok" : cn_strerror(c));
        if (c < 0)
            rc = c;
    }
    return rc == 0 ? 0 : 1;
}

static const cn_export_t exports[] = {{"whoami", whoami},
                                      {"call_cousin", call_cousin},
                                      {"start_workers", start_workers},
                                      {NULL, NULL}};

int main(int argc, char **argv)
{
    cn_config_t cfg = {.name = "cousins", .exports = exports, .main = root_main};
    int rc = cn_run(argc, argv, &cfg);
    if (rc < 0)
        fprintf(stderr, "cousins: %s\n", cn_strerror(rc));
    return rc < 0 ? 1 : rc;
}
