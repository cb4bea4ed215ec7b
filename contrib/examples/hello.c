/*
 * hello.c: the smallest useful canopy tree.
 *
 * The root spawns two children, calls the function "greet" on each with a
 * name as its argument, prints the two answers, then cancels both children
 * and exits 0. It shows the three things every canopy program has: an
 * export table (what other actors may call), cn_run() (which makes the
 * first process the root and re-executed copies its children), and
 * cn_spawn()/cn_call()/cn_cancel() from the root's main.
 *
 *   make examples && build/examples/hello
 *   CANOPY_LOG_LEVEL=debug build/examples/hello   # the runtime's own story too
 *
 * The root prints to its stdout; a child's stdout and stderr are pipes to
 * its parent, so what a child has to say goes through cn_log() instead and
 * arrives in the root's log (stderr).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <canopy.h>

#define TIMEOUT_MS 5000 /* spawn and call: generous, a cold start under a sanitizer is slow */

/* ------------------------------------------------------------ the children */

/* Exported: runs on a task thread of the child that is called. `args` is
 * the caller's argument (a string here) and lives until we return. */
static int greet(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    if (args == NULL || args->type != MSGPACK_OBJECT_STR)
        return cn_call_fail(call, CN_EINVAL, "greet wants a name (a string)");
    char answer[256];
    int n = snprintf(answer, sizeof(answer), "hello %.*s, from %s (pid %d)",
                     (int)args->via.str.size, args->via.str.ptr, cn_path(), (int)getpid());
    if (n < 0)
        return CN_EINVAL;
    if ((size_t)n >= sizeof(answer))
        n = (int)sizeof(answer) - 1; /* snprintf cut it: send what fits */
    cn_log(CN_LOG_INFO, "greeted %.*s", (int)args->via.str.size, args->via.str.ptr);
    /* Exactly one result object: a string. */
    return msgpack_pack_str_with_body(out, answer, (size_t)n);
}

/* ------------------------------------------------------------ the root */

static int root_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    static const char *const names[2] = {"child-1", "child-2"};
    cn_portal_t kids[2];

    /* No entry in the options: each child just serves calls until it is
     * cancelled. cn_spawn returns once the child has greeted us. */
    for (int i = 0; i < 2; i++) {
        int rc = cn_spawn(names[i], NULL, &kids[i], TIMEOUT_MS);
        if (rc < 0) {
            fprintf(stderr, "hello: cannot spawn %s: %s\n", names[i], cn_strerror(rc));
            return 1; /* cn_run cancels whatever did start */
        }
        printf("spawned %s as actor %u\n", names[i], kids[i].id);
    }

    for (int i = 0; i < 2; i++) {
        const char *who = i == 0 ? "Ada" : "Grace";
        msgpack_object arg = {.type = MSGPACK_OBJECT_STR,
                              .via.str = {.size = (uint32_t)strlen(who), .ptr = who}};
        cn_result_t r;
        int rc = cn_call(kids[i], "greet", &arg, &r, TIMEOUT_MS);
        if (rc == 0 && r.value.type == MSGPACK_OBJECT_STR)
            printf("%s answered: %.*s\n", names[i], (int)r.value.via.str.size, r.value.via.str.ptr);
        else
            printf("%s failed: %s: %s\n", names[i], cn_strerror(rc),
                   r.error.message ? r.error.message : "");
        cn_result_free(&r); /* always, whatever rc was */
        if (rc < 0)
            return 1;
    }

    /* Returning from main would cancel the children for us; cancelling them
     * here shows how, and that it is quick: SHUTDOWN is handled by the
     * child's broker thread, whatever its task threads are doing. */
    for (int i = 0; i < 2; i++) {
        int rc = cn_cancel(kids[i], TIMEOUT_MS);
        printf("cancelled %s: %s\n", names[i], rc == 0 ? "ok" : cn_strerror(rc));
    }
    printf("done\n");
    return 0;
}

static const cn_export_t exports[] = {{"greet", greet}, {NULL, NULL}};

int main(int argc, char **argv)
{
    /* One binary is every actor: started from a shell this is the root and
     * runs root_main; started by cn_spawn it serves `exports` instead. */
    cn_config_t cfg = {.name = "hello", .exports = exports, .main = root_main};
    int rc = cn_run(argc, argv, &cfg);
    if (rc < 0)
        fprintf(stderr, "hello: %s\n", cn_strerror(rc));
    return rc < 0 ? 1 : rc;
}
