/*
 * cli.c: the plain subcommands: ls, tree, routes, ctx, log, dump, lint.
 *
 * Each takes a whole-tree snapshot through the client API and renders it:
 * aligned tables that fit 80 columns, or with --json the snapshot's own
 * data as JSON. Collection stays in the library; this file only draws.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ui.h"


/* ===========================================================================
 * Formatting
 */

static const char *fmt_since(uint64_t now_us, uint64_t then_us, char *buf, size_t n)
{
    if (then_us == 0)
        return "-";
    return ui_fmt_age(buf, n, now_us > then_us ? now_us - then_us : 0);
}

static const char *fmt_count(uint64_t v, char *buf, size_t n)
{
    if (v < 10000)
        snprintf(buf, n, "%llu", (unsigned long long)v);
    else if (v < 10000000)
        snprintf(buf, n, "%lluk", (unsigned long long)(v / 1000));
    else
        snprintf(buf, n, "%lluM", (unsigned long long)(v / 1000000));
    return buf;
}

/* The path of actor `id` in s, or "#id". */
static const char *actor_name(const cn_snapshot_t *s, int64_t id, char *buf, size_t n)
{
    const cn_snap_actor_t *a = ui_actor_by_id(s, id);
    if (a)
        return a->path ? a->path : a->name;
    snprintf(buf, n, "#%lld", (long long)id);
    return buf;
}

/* ===========================================================================
 * Reaching a tree
 */

void ui_say_error(const char *what, int rc)
{
    const char *why = cn_client_error();
    fprintf(stderr, "canopy: %s%s%s\n", what ? what : "", what ? ": " : "",
            why && *why ? why : cn_strerror(rc));
}

int ui_find_tree(const char *tree, cn_tree_info_t *t)
{
    int rc = cn_client_find(tree, t);
    if (rc != CN_ENOENT || tree == NULL || strchr(tree, '/')) {
        if (rc < 0)
            ui_say_error(NULL, rc);
        return rc;
    }
    char why[512];
    snprintf(why, sizeof(why), "%s", cn_client_error());
    enum { MAX = 64 };
    cn_tree_info_t all[MAX];
    const char *names[MAX];
    size_t n = 0;
    if (cn_client_list(all, MAX, &n) < 0)
        n = 0;
    if (n > MAX)
        n = MAX;
    for (size_t i = 0; i < n; i++)
        names[i] = all[i].name;
    const char *near = ui_suggest(tree, names, n);
    if (near)
        fprintf(stderr, "canopy: no tree '%s' is running; did you mean '%s'?\n", tree, near);
    else
        fprintf(stderr, "canopy: %s\n", why);
    return rc;
}

/* Connects to TREE (NULL: the only one) and takes a snapshot. */
int ui_snapshot_of(const char *tree, const opts_t *o, cn_snapshot_t **out)
{
    cn_tree_info_t t;
    int rc = ui_find_tree(tree, &t);
    if (rc < 0)
        return rc;
    cn_client_t *c;
    rc = cn_client_connect(t.path, &c, CONNECT_MS);
    if (rc < 0) {
        ui_say_error(t.name[0] ? t.name : t.path, rc);
        return rc;
    }
    cn_snap_opts_t so = {o->timeout_ms > 0 ? (unsigned)o->timeout_ms : 0, o->stacks};
    rc = cn_client_snapshot_opts(c, &so, (so.actor_timeout_ms ? so.actor_timeout_ms : 1000) +
                                             SNAP_SLACK_MS,
                                 out);
    if (rc < 0)
        ui_say_error(cn_client_tree(c), rc);
    cn_client_close(c);
    return rc;
}

int ui_path_first(const char *actor, char *name, size_t n)
{
    const char *slash = actor ? strchr(actor, '/') : NULL;
    if (slash == NULL || (size_t)(slash - actor) >= n)
        return 0;
    memcpy(name, actor, (size_t)(slash - actor));
    name[slash - actor] = '\0';
    return 1;
}

/* The tree an actor's path names by its first part ("first" for
 * first/worker-1), if a tree of that name is running; else NULL (the only
 * tree is meant). The answer lives until the next call. */
const char *ui_tree_of_path(const char *actor)
{
    static char name[128];
    cn_tree_info_t t;
    if (!ui_path_first(actor, name, sizeof(name)))
        return NULL;
    return cn_client_find(name, &t) == 0 ? name : NULL;
}

/* [TREE] [ACTOR]: with one argument, a running tree's name wins; else it is
 * an actor, of the tree its path names or of the only tree. */
void ui_split_args(int argc, char **argv, const char **tree, const char **actor)
{
    *tree = *actor = NULL;
    if (argc >= 2) {
        *tree = argv[0];
        *actor = argv[1];
    } else if (argc == 1) {
        cn_tree_info_t t;
        if (cn_client_find(argv[0], &t) == 0)
            *tree = argv[0];
        else
            *tree = ui_tree_of_path(*actor = argv[0]);
    }
}

/* The child that has exited which `which` names (by id, name or path),
 * the latest when a name was reused, and its parent; or NULL. */
static const cn_snap_child_t *find_exited(const cn_snapshot_t *s, const char *which,
                                          const cn_snap_actor_t **parent)
{
    char *end;
    unsigned long id = strtoul(which, &end, 10);
    int by_id = *which && *end == '\0';
    const cn_snap_child_t *found = NULL;
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        for (size_t k = 0; k < a->nchildren; k++) {
            const cn_snap_child_t *c = &a->children[k];
            if (strcmp(c->state, "exited") != 0 || c->name == NULL)
                continue;
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", a->path ? a->path : "?", c->name);
            if (by_id ? c->id != id : strcmp(which, c->name) != 0 && strcmp(which, path) != 0)
                continue;
            if (found == NULL || c->exit_us > found->exit_us)
                found = c, *parent = a;
        }
    }
    return found;
}

/* The live actor whose name or path is closest to a mistyped `which`, as
 * it should have been written (its path when it was given as a path). */
static const char *nearest_actor(const cn_snapshot_t *s, const char *which)
{
    const char **names = calloc(s->nactors ? s->nactors : 1, sizeof(*names));
    if (names == NULL)
        return NULL;
    int by_path = strchr(which, '/') != NULL;
    for (size_t i = 0; i < s->nactors; i++)
        names[i] = by_path ? s->actors[i].path : s->actors[i].name;
    const char *near = ui_suggest(which, names, s->nactors);
    free(names);
    return near;
}

int ui_find_actor(const cn_snapshot_t *s, const char *which, const char *hint,
                  const cn_snap_actor_t **out, char *why, size_t n)
{
    int amb;
    *out = which ? cn_snapshot_find(s, which, &amb) : NULL;
    if (*out || which == NULL)
        return 0;
    const cn_snap_actor_t *a = NULL;
    const cn_snap_child_t *c = amb ? NULL : find_exited(s, which, &a);
    const char *near = amb || c ? NULL : nearest_actor(s, which);
    char ago[16];
    if (c) /* `canopy tree` still lists it */
        snprintf(why, n, "%s/%s (id %u, pid %d) has exited (%s) %s ago",
                 a->path ? a->path : "?", c->name, c->id, c->pid, c->status ? c->status : "?",
                 fmt_since(s->now_us, c->exit_us, ago, sizeof(ago)));
    else if (near)
        snprintf(why, n, "no actor '%s' in tree %s; did you mean '%s'?", which, s->tree, near);
    else
        snprintf(why, n, "%s '%s' in tree %s; give its id or path (%s)",
                 amb ? "more than one actor is named" : "no actor", which, s->tree, hint);
    return CN_ENOENT;
}

/* The actor named by `which` (NULL: every actor), or an error message. */
int ui_pick_actor(const cn_snapshot_t *s, const char *which, const cn_snap_actor_t **out)
{
    char why[512];
    int rc = ui_find_actor(s, which, "see 'canopy tree'", out, why, sizeof(why));
    if (rc < 0)
        fprintf(stderr, "canopy: %s\n", why);
    return rc;
}

/* [TREE] [ACTOR]: a snapshot, and the actor it names (NULL: all). */
static int actor_view(int argc, char **argv, const opts_t *o, cn_snapshot_t **s,
                      const cn_snap_actor_t **only)
{
    const char *tree, *which;
    ui_split_args(argc, argv, &tree, &which);
    cn_tree_info_t t;
    char first[64];
    if (argc == 1 && tree == NULL && ui_path_first(which, first, sizeof(first)) &&
        cn_client_find(first, &t) == CN_EAMBIGUOUS) {
        /* A path whose tree's name several trees have. */
        fprintf(stderr, "canopy: which tree is %s in? %s, then the actor\n", which,
                cn_client_error());
        return -1;
    }
    if (argc == 1 && tree == NULL && cn_client_find(NULL, &t) == CN_EAMBIGUOUS) {
        /* One word, no tree of that name, several trees: it may be a tree
         * that has just exited, or an actor whose tree must be named. */
        fprintf(stderr, "canopy: no tree '%s' is running; if it is an actor, name its tree "
                        "first: %s\n", which, cn_client_error());
        return -1;
    }
    if (ui_snapshot_of(tree, o, s) < 0)
        return -1;
    if (ui_pick_actor(*s, which, only) < 0) {
        cn_snapshot_free(*s);
        return -1;
    }
    return 0;
}

/* --json for routes and ctx: per actor, its id, path and the snapshot's
 * own entries named by keys. */
static void actors_json(const cn_snapshot_t *s, const cn_snap_actor_t *only,
                        const char *const *keys)
{
    int first = 1;
    printf("[");
    for (size_t i = 0; i < s->nactors; i++) {
        if (only && &s->actors[i] != only)
            continue;
        printf("%s{\"actor\":%u,\"path\":", first ? "" : ",", s->actors[i].id);
        json_cstr(stdout, s->actors[i].path ? s->actors[i].path : s->actors[i].name);
        for (const char *const *k = keys; *k; k++) {
            const msgpack_object *v = cn_msgpack_get(s->actors[i].raw, *k);
            printf(",\"%s\":", *k);
            if (v)
                json_obj(stdout, v, 0);
            else
                printf("null");
        }
        printf("}");
        first = 0;
    }
    printf("]\n");
}

/* ===========================================================================
 * ls
 */

int cli_ls(int argc, char **argv, const opts_t *o)
{
    (void)argc, (void)argv;
    enum { MAX = 256 };
    static cn_tree_info_t t[MAX];
    size_t n;
    int rc = cn_client_list(t, MAX, &n);
    if (rc < 0) {
        ui_say_error(NULL, rc);
        return EXIT_FAIL;
    }
    if (n > MAX)
        n = MAX;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    if (o->json)
        printf("[");
    else if (n == 0)
        printf("no canopy trees are running\n");
    else
        printf("%-24s %8s %7s %10s\n", "TREE", "PID", "ACTORS", "AGE");
    for (size_t i = 0; i < n; i++) {
        cn_client_t *c;
        cn_snapshot_t *s = NULL;
        long actors = -1;
        if (cn_client_connect(t[i].path, &c, CONNECT_MS) == 0) {
            if (cn_client_snapshot(c, 500, 3000, &s) == 0)
                actors = (long)s->nactors;
            cn_client_close(c);
        }
        char age[32];
        if (o->json) {
            printf("%s{\"tree\":", i ? "," : "");
            json_cstr(stdout, t[i].name);
            printf(",\"pid\":%d,\"actors\":%ld,\"start_us\":%llu,\"socket\":", t[i].pid, actors,
                   (unsigned long long)t[i].since_us);
            json_cstr(stdout, t[i].path);
            printf("}");
        } else {
            char nact[16];
            snprintf(nact, sizeof(nact), actors < 0 ? "?" : "%ld", actors);
            printf("%-24.24s %8d %7s %10s\n", t[i].name, t[i].pid, nact,
                   fmt_since(now, t[i].since_us, age, sizeof(age)));
        }
        cn_snapshot_free(s);
    }
    if (o->json)
        printf("]\n");
    return 0;
}

/* ===========================================================================
 * tree
 */


/* The ACTOR column's width: its header's, or the widest name at its
 * depth (three columns a level), so that no name is cut. */
static int tree_width(const cn_snapshot_t *s)
{
    int w = 32;
    for (size_t i = 0; i < s->nactors; i++) {
        int depth = 0;
        for (const cn_snap_actor_t *p = &s->actors[i]; p->parent >= 0 && depth < 64; depth++)
            if ((p = ui_actor_by_id(s, p->parent)) == NULL || p == &s->actors[i])
                break;
        int n = 3 * depth + (int)strlen(s->actors[i].name ? s->actors[i].name : "?");
        w = n > w ? n : w;
    }
    return w;
}

static void tree_rows(const cn_snapshot_t *s, const cn_snap_actor_t *a, char *prefix, size_t plen,
                      int last, int depth, int w)
{
    char age[32], rss[32], label[320];
    if (depth == 0)
        snprintf(label, sizeof(label), "%s", a->name ? a->name : "?");
    else
        snprintf(label, sizeof(label), "%s%s%s", prefix, last ? "`- " : "|- ",
                 a->name ? a->name : "?");
    char upid[16] = "-"; /* an unresponsive one's, as its parent told the root */
    if (!a->responsive && a->pid > 0)
        snprintf(upid, sizeof(upid), "%d", a->pid);
    if (!a->responsive)
        printf("%-4u %-*s %7s %-12s\n", a->id, w, label, upid,
               ui_in_gdb(s, a->id) ? "in gdb" : "unresponsive");
    else
        printf("%-4u %-*s %7d %-12.12s %6s %4zu %8s\n", a->id, w, label, a->pid,
               ui_shown_state(a), ui_fmt_kib(rss, sizeof(rss), a->rss_kib), a->ncontexts,
               fmt_since(s->now_us, a->start_us, age, sizeof(age)));
    size_t kids = 0;
    for (size_t i = 0; i < s->nactors; i++)
        kids += s->actors[i].parent == (int64_t)a->id && s->actors[i].id != a->id;
    size_t seen = 0, len = strlen(prefix);
    int64_t after = -1; /* children in id order */
    while (seen < kids) {
        const cn_snap_actor_t *c = NULL;
        for (size_t i = 0; i < s->nactors; i++) {
            const cn_snap_actor_t *x = &s->actors[i];
            if (x->parent == (int64_t)a->id && x->id != a->id && (int64_t)x->id > after &&
                (c == NULL || x->id < c->id))
                c = x;
        }
        if (c == NULL)
            break;
        after = c->id;
        if (depth > 0)
            snprintf(prefix + len, plen - len, "%s", last ? "   " : "|  ");
        tree_rows(s, c, prefix, plen, ++seen == kids, depth + 1, w);
        prefix[len] = '\0';
    }
    /* Children that exited lately, as the TUI shows them: how they ended
     * is often the news. */
    for (size_t k = 0; k < a->nchildren; k++) {
        const cn_snap_child_t *c = &a->children[k];
        if (!c->state || strcmp(c->state, "exited") != 0 || c->exit_us + EXITED_SHOW_US < s->now_us)
            continue;
        snprintf(label, sizeof(label), "%s%sx %s", prefix, depth > 0 ? (last ? "   " : "|  ") : "",
                 c->name ? c->name : "?");
        char pid[16] = "-"; /* the one it had */
        if (c->pid > 0)
            snprintf(pid, sizeof(pid), "%d", c->pid);
        printf("%-4u %-*s %7s %-12.12s %6s %4s %8s ago\n", c->id, w, label, pid,
               c->status ? c->status : "exited", "-", "-",
               fmt_since(s->now_us, c->exit_us, age, sizeof(age)));
    }
}

/* tree --json's "exited": the children that have exited, as canopy tree
 * lists them (each parent keeps its last few). */
static void print_exited_json(const cn_snapshot_t *s)
{
    int first = 1;
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        for (size_t k = 0; k < a->nchildren; k++) {
            const cn_snap_child_t *c = &a->children[k];
            if (c->state == NULL || strcmp(c->state, "exited") != 0)
                continue;
            printf("%s{\"id\":%u,\"parent\":%u,\"name\":", first ? "" : ",", c->id, a->id);
            json_cstr(stdout, c->name);
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", a->path ? a->path : "?",
                     c->name ? c->name : "?");
            printf(",\"path\":");
            json_cstr(stdout, path);
            printf(",\"pid\":%d,\"status\":", c->pid);
            json_cstr(stdout, c->status);
            printf(",\"exit_us\":%llu}", (unsigned long long)c->exit_us);
            first = 0;
        }
    }
}

int cli_tree(int argc, char **argv, const opts_t *o)
{
    cn_snapshot_t *s;
    if (ui_snapshot_of(argc ? argv[0] : NULL, o, &s) < 0)
        return EXIT_FAIL;
    if (o->json) {
        printf("{\"tree\":");
        json_cstr(stdout, s->tree);
        printf(",\"root_pid\":%d,\"now_us\":%llu,\"actors\":[", s->root_pid,
               (unsigned long long)s->now_us);
        for (size_t i = 0; i < s->nactors; i++) {
            const cn_snap_actor_t *a = &s->actors[i];
            printf("%s{\"id\":%u,\"parent\":%lld,\"name\":", i ? "," : "", a->id,
                   (long long)a->parent);
            json_cstr(stdout, a->name);
            printf(",\"path\":");
            json_cstr(stdout, a->path);
            printf(",\"pid\":%d,\"state\":", a->pid);
            json_cstr(stdout, ui_shown_state(a));
            printf(",\"rss_kib\":%lld,\"contexts\":%zu,\"start_us\":%llu}", (long long)a->rss_kib,
                   a->ncontexts, (unsigned long long)a->start_us);
        }
        printf("],\"exited\":[");
        print_exited_json(s);
        printf("]}\n");
        cn_snapshot_free(s);
        return 0;
    }
    printf("tree %s (root pid %d): %zu actor%s", s->tree, s->root_pid, s->nactors,
           ui_plural(s->nactors));
    if (s->unresponsive)
        printf(", %u unresponsive after %u ms", s->unresponsive, s->timeout_ms);
    int w = tree_width(s);
    printf("\n%-4s %-*s %7s %-12s %6s %4s %8s\n", "ID", w, "ACTOR", "PID", "STATE", "RSS", "CTX",
           "AGE");
    char prefix[256] = "";
    /* Actors whose parent is not in the snapshot are drawn as roots too. */
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        int orphan = 1;
        for (size_t j = 0; j < s->nactors && a->parent >= 0; j++)
            orphan &= s->actors[j].id != a->parent;
        if (a->parent < 0 || orphan)
            tree_rows(s, a, prefix, sizeof(prefix), 1, 0, w);
    }
    cn_snapshot_free(s);
    return 0;
}

/* ===========================================================================
 * routes
 */

int cli_routes(int argc, char **argv, const opts_t *o)
{
    cn_snapshot_t *s;
    const cn_snap_actor_t *only;
    if (actor_view(argc, argv, o, &s, &only) < 0)
        return EXIT_FAIL;
    if (o->json) {
        static const char *const keys[] = {"routes", NULL};
        actors_json(s, only, keys);
        cn_snapshot_free(s);
        return 0;
    }
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        if (only && a != only)
            continue;
        if (!a->responsive) {
            printf("%s (id %u): unresponsive\n\n", a->name ? a->name : "?", a->id);
            continue;
        }
        printf("%s (id %u): %zu route%s\n", a->path ? a->path : "?", a->id, a->nroutes,
               ui_plural(a->nroutes));
        /* VIA as wide as its widest entry: an actor's path is what says
         * where a route goes, and cut it would not */
        int vw = 3, nw = 22;
        char buf[32];
        for (size_t k = 0; k < a->nroutes; k++) {
            int w = snprintf(NULL, 0, "%lld (%s)", (long long)a->routes[k].via,
                             actor_name(s, a->routes[k].via, buf, sizeof(buf)));
            int n = (int)strlen(a->routes[k].name ? a->routes[k].name : "");
            vw = w > vw ? w : vw;
            nw = n > nw ? n : nw;
        }
        if (a->nroutes)
            printf("  %-6s %-*s %-6s %-*s %s\n", "DEST", nw, "NAME", "PARENT", vw, "VIA",
                   "LEARNED");
        for (size_t k = 0; k < a->nroutes; k++) {
            const cn_snap_route_t *r = &a->routes[k];
            char via[320], age[32];
            snprintf(via, sizeof(via), "%lld (%s)", (long long)r->via,
                     actor_name(s, r->via, buf, sizeof(buf)));
            printf("  %-6u %-*s %-6u %-*s %s ago\n", r->id, nw, r->name ? r->name : "",
                   r->parent, vw, via, fmt_since(a->now_us, r->learned_us, age, sizeof(age)));
        }
        printf("\n");
    }
    cn_snapshot_free(s);
    return 0;
}

/* ===========================================================================
 * bt
 */

int cli_bt(int argc, char **argv, const opts_t *o)
{
    cn_snapshot_t *s;
    const cn_snap_actor_t *only;
    opts_t with_stacks = *o;
    with_stacks.stacks = 1;
    if (with_stacks.timeout_ms <= 0)
        with_stacks.timeout_ms = STACKS_TIMEOUT_MS;
    if (actor_view(argc, argv, &with_stacks, &s, &only) < 0)
        return EXIT_FAIL;
    if (o->json) {
        static const char *const keys[] = {"stacks", "threads", NULL};
        actors_json(s, only, keys);
        cn_snapshot_free(s);
        return 0;
    }
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        if (only && a != only)
            continue;
        if (!a->responsive) {
            printf("%s (id %u): unresponsive\n\n", a->name ? a->name : "?", a->id);
            continue;
        }
        printf("%s (id %u, pid %d): %zu thread%s besides its broker, each stopped only while "
               "its stack was read\n", a->path ? a->path : "?", a->id, a->pid, a->nstacks,
               ui_plural(a->nstacks));
        for (size_t k = 0; k < a->nstacks; k++) {
            const cn_snap_stack_t *t = &a->stacks[k];
            char what[256] = "";
            int task = 0;
            for (size_t j = 0; j < a->nthreads; j++) { /* what the runtime knows of it */
                const cn_snap_thread_t *r = &a->threads[j];
                if (r->tid != t->tid)
                    continue;
                char age[32];
                snprintf(what, sizeof(what), "; %s %s%s%s for %s", r->kind ? r->kind : "?",
                         r->doing ? r->doing : "?", r->fn ? " in " : "", r->fn ? r->fn : "",
                         fmt_since(a->now_us, r->since_us, age, sizeof(age)));
                task = r->kind && strcmp(r->kind, "task") == 0;
            }
            /* A thread a task started has its name from Linux, not from us */
            size_t used = strlen(what);
            if (!task && t->name && strncmp(t->name, "cn-task-", 8) == 0)
                snprintf(what + used, sizeof(what) - used, "; the program's own thread, named "
                                                           "after the task thread that started it");
            else if (used == 0) /* the runtime knows nothing of it */
                snprintf(what, sizeof(what), "; the program's own thread");
            /* "not stopped", the usual case, is the header's; the others
             * (stopped, debugger, crashed, no answer) are each thread's */
            const char *st = t->state ? t->state : "?";
            int usual = strcmp(st, "not stopped") == 0;
            printf("  thread %d (%s): %s%s\n", t->tid, t->name ? t->name : "?", usual ? "" : st,
                   usual && what[0] ? what + 2 : what);
            for (size_t f = 0; f < t->nframes; f++)
                printf("    %s\n", t->frames[f]);
        }
        printf("\n");
    }
    cn_snapshot_free(s);
    return 0;
}

/* ===========================================================================
 * ctx
 */

int cli_ctx(int argc, char **argv, const opts_t *o)
{
    cn_snapshot_t *s;
    const cn_snap_actor_t *only;
    if (actor_view(argc, argv, o, &s, &only) < 0)
        return EXIT_FAIL;
    if (o->json) {
        static const char *const keys[] = {"contexts", "threads", NULL};
        actors_json(s, only, keys);
        cn_snapshot_free(s);
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < s->nactors; i++) {
        const cn_snap_actor_t *a = &s->actors[i];
        if (only && a != only)
            continue;
        size_t busy = 0;
        for (size_t k = 0; k < a->nthreads; k++)
            busy += a->threads[k].doing && strcmp(a->threads[k].doing, "idle") != 0;
        if (a->ncontexts == 0 && busy == 0 && !only)
            continue;
        printf("%s (id %u, pid %d)%s\n", a->path ? a->path : a->name ? a->name : "?", a->id,
               a->pid, a->responsive ? "" : ": unresponsive");
        /* FN and PEER as wide as their longest, at least as the header:
         * a path cut short cannot tell two workers apart. */
        int wfn = 14, wpeer = 20;
        for (size_t k = 0; k < a->ncontexts; k++) {
            char buf[32];
            const cn_snap_ctx_t *c = &a->contexts[k];
            int f = (int)strlen(c->fn ? c->fn : "?") + 2;
            int p = (int)strlen(actor_name(s, c->peer, buf, sizeof(buf)));
            wfn = f > wfn ? f : wfn;
            wpeer = p > wpeer ? p : wpeer;
        }
        if (a->ncontexts)
            printf("  %5s %-6s %-*s %-*s %-9s %-12s %s\n", "CID", "ROLE", wfn, "FN", wpeer,
                   "PEER", "PHASE", "CANCEL", "AGE");
        for (size_t k = 0; k < a->ncontexts; k++, total++) {
            const cn_snap_ctx_t *c = &a->contexts[k];
            char buf[32], age[32], fn[80];
            snprintf(fn, sizeof(fn), "%s%s", c->fn ? c->fn : "?",
                     c->kind && strcmp(c->kind, "call") == 0 ? "()" : "");
            const char *cancel = c->cancel && strcmp(c->cancel, "none") != 0 ? c->cancel : "-";
            printf("  %5llu %-6.6s %-*s %-*s %-9.9s %-12.12s %s\n", (unsigned long long)c->cid,
                   c->role ? c->role : "?", wfn, fn, wpeer,
                   actor_name(s, c->peer, buf, sizeof(buf)), c->phase ? c->phase : "?", cancel,
                   fmt_since(a->now_us, c->opened_us, age, sizeof(age)));
            if (c->cancel && strcmp(c->cancel, "none") != 0)
                printf("        cancel %s %s ago by: %s\n", c->cancel,
                       fmt_since(a->now_us, c->cancel_us, age, sizeof(age)),
                       c->cancel_by ? c->cancel_by : "?");
            if (c->has_stream) {
                const cn_snap_stream_t *st = &c->stream;
                char in[16], out[16], last[32];
                printf("        stream: in %s out %s buf %llu/%llu credit %lld %s/%s last %s\n",
                       fmt_count(st->msgs_in, in, sizeof(in)),
                       fmt_count(st->msgs_out, out, sizeof(out)),
                       (unsigned long long)st->buffered, (unsigned long long)st->window,
                       (long long)st->credit, st->local ? st->local : "?",
                       st->peer ? st->peer : "?",
                       fmt_since(a->now_us, st->last_us, last, sizeof(last)));
                if (st->send_blocked)
                    printf("        sender blocked on backpressure for %s\n",
                           fmt_since(a->now_us, st->blocked_since_us, age, sizeof(age)));
            }
        }
        /* What each thread is doing: where a hang shows first. */
        for (size_t k = 0; k < a->nthreads; k++) {
            const cn_snap_thread_t *t = &a->threads[k];
            if (t->doing && strcmp(t->doing, "idle") == 0)
                continue;
            char buf[32], age[32];
            /* At a breakpoint its peer is the console's lock, not an actor
             * it waits on: "stopped at a breakpoint", and no peer or cid */
            int bp = t->doing && strcmp(t->doing, "debugger") == 0;
            printf("  thread %d (%s): %s", t->tid, t->kind ? t->kind : "?",
                   bp ? "stopped at a breakpoint" : t->doing ? t->doing : "?");
            if (t->fn)
                printf(" in %s", t->fn);
            if (t->doing && strcmp(t->doing, "reap") == 0) /* for a child to exit */
                printf(" on %s", actor_name(s, t->peer, buf, sizeof(buf)));
            else if (t->doing && !bp && strcmp(t->doing, "running") != 0 &&
                     strcmp(t->doing, "sleep") != 0 && strcmp(t->doing, "spawn") != 0)
                printf(" on %s cid %llu", actor_name(s, t->peer, buf, sizeof(buf)),
                       (unsigned long long)t->cid);
            printf(" for %s\n", fmt_since(a->now_us, t->since_us, age, sizeof(age)));
        }
        printf("\n");
    }
    if (total == 0)
        printf("no calls or contexts open%s%s\n", only ? " on " : "",
               only ? (only->path ? only->path : "?") : "");
    cn_snapshot_free(s);
    return 0;
}

/* ===========================================================================
 * log
 */


int ui_parse_level(const char *s)
{
    for (int i = 0; i < 6; i++)
        if (strcasecmp(s, cn_log_level_name((cn_log_level_t)i)) == 0)
            return i;
    return -1;
}

static volatile sig_atomic_t stop_follow;

static void on_stop(int sig)
{
    (void)sig;
    stop_follow = 1;
}

/* "HH:MM:SS.mmm", local time. */
static const char *fmt_clock(uint64_t time_us, char *buf, size_t n)
{
    time_t secs = (time_t)(time_us / 1000000);
    struct tm tm;
    localtime_r(&secs, &tm);
    snprintf(buf, n, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(time_us / 1000 % 1000));
    return buf;
}

static void print_log(const cn_snap_log_t *l, int json)
{
    if (json) {
        printf("{\"level\":");
        json_cstr(stdout, cn_log_level_name(l->level));
        printf(",\"time_us\":%llu,\"path\":", (unsigned long long)l->time_us);
        json_cstr(stdout, l->path);
        printf(",\"message\":");
        json_cstr(stdout, l->message);
        printf("}\n");
        return;
    }
    char clock[32];
    printf("%s %-6s %s: %s\n", fmt_clock(l->time_us, clock, sizeof(clock)),
           cn_log_level_name(l->level), l->path ? l->path : "?",
           l->message ? l->message : "");
}

static int log_wanted(const cn_snap_log_t *l, int min, const char *actor)
{
    if (l->level < min)
        return 0;
    if (actor == NULL)
        return 1;
    size_t n = strlen(actor);
    const char *p = l->path ? l->path : "";
    /* an actor's path, its name or the end of its path, and what is below
     * it: "a/b" is the whole path's beginning, or follows a '/' in it, and
     * ends it or a part of it */
    for (const char *at = p; at; at = strchr(at, '/'), at = at ? at + 1 : NULL)
        if (strncmp(at, actor, n) == 0 && (at[n] == '\0' || at[n] == '/'))
            return 1;
    return 0;
}

/* On stderr, so that a script's output stays empty: why nothing was
 * printed, rather than nothing at all. */
static void say_no_records(const cn_snapshot_t *s, const opts_t *o, int min)
{
    if (s->nlogs == 0) {
        fprintf(stderr, "canopy: tree %s has no log records yet%s\n", s->tree,
                o->follow ? "; following" : "");
        return;
    }
    char level[48] = "", from[96] = "";
    if (min > 0)
        snprintf(level, sizeof(level), " at level %s or above", cn_log_level_name(min));
    if (o->actor)
        snprintf(from, sizeof(from), " from %s", o->actor);
    fprintf(stderr, "canopy: tree %s's log (its last %zu record%s) has none%s%s%s\n", s->tree,
            s->nlogs, ui_plural(s->nlogs), level, from, o->follow ? "; following" : "");
}

/* Connects to TREE and starts its event feed; NULL after saying why. */
static cn_client_t *subscribe_to(const char *tree)
{
    cn_tree_info_t t;
    cn_client_t *c;
    int rc = ui_find_tree(tree, &t);
    if (rc < 0)
        return NULL;
    if ((rc = cn_client_connect(t.path, &c, CONNECT_MS)) < 0) {
        ui_say_error(t.name, rc);
        return NULL;
    }
    if ((rc = cn_client_subscribe(c, CONNECT_MS)) < 0) {
        ui_say_error(t.name, rc);
        cn_client_close(c);
        return NULL;
    }
    return c;
}

static void on_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop; /* no SA_RESTART: poll() returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Hands each event of the feed to `each` until interrupted or the tree
 * goes away; closes the feed. Returns the exit status. */
static int follow(cn_client_t *feed, void (*each)(const cn_event_t *ev, void *arg), void *arg)
{
    on_stop_signals();
    fflush(stdout);
    int rc = 0;
    while (!stop_follow) {
        cn_event_t ev;
        rc = cn_client_event(feed, &ev, 500);
        if (rc == CN_ETIMEDOUT)
            continue;
        if (rc < 0)
            break;
        each(&ev, arg);
        fflush(stdout);
    }
    cn_client_close(feed);
    if (rc < 0 && !stop_follow) {
        fprintf(stderr, "canopy: the tree went away: %s\n", cn_client_error());
        return EXIT_FAIL;
    }
    return 0;
}

typedef struct {
    int min;
    const opts_t *o;
    uint64_t last; /* the tail printed records up to this time */
} log_follow_t;

static void log_event(const cn_event_t *ev, void *arg)
{
    log_follow_t *f = arg;
    if (strcmp(ev->kind, "dropped") == 0) {
        fprintf(stderr, "canopy: %llu events dropped (this terminal fell behind)\n",
                (unsigned long long)ev->count);
        return;
    }
    cn_snap_log_t l = {ev->level, ev->time_us, ev->path, ev->detail};
    if (strcmp(ev->kind, "log") == 0 && ev->time_us > f->last && log_wanted(&l, f->min, f->o->actor))
        print_log(&l, f->o->json);
}

int cli_log(int argc, char **argv, const opts_t *o)
{
    int min = 0;
    if (o->level && (min = ui_parse_level(o->level)) < 0) {
        fprintf(stderr, "canopy log: no level '%s' (trace, debug, info, cancel, warn, error)\n",
                o->level);
        return EXIT_USAGE;
    }
    const char *tree = argc ? argv[0] : NULL;
    /* Following: subscribe before reading the tail, so nothing falls in
     * between; records the tail already showed are skipped by time. */
    cn_client_t *feed = o->follow ? subscribe_to(tree) : NULL;
    if (o->follow && feed == NULL)
        return EXIT_FAIL;
    cn_snapshot_t *s;
    if (ui_snapshot_of(tree, o, &s) < 0) {
        cn_client_close(feed);
        return EXIT_FAIL;
    }
    uint64_t last = 0;
    size_t shown = 0;
    for (size_t i = 0; i < s->nlogs; i++) {
        if (log_wanted(&s->logs[i], min, o->actor)) {
            print_log(&s->logs[i], o->json);
            shown++;
        }
        last = s->logs[i].time_us;
    }
    /* An actor that has exited still has its records; one that never
     * was in the tree, and has none, is most likely a typo. */
    int amb = 0, known = o->actor && cn_snapshot_find(s, o->actor, &amb) != NULL;
    const cn_snap_actor_t *parent;
    for (size_t i = 0; o->actor && !known && i < s->nlogs; i++) /* at any level */
        known = log_wanted(&s->logs[i], 0, o->actor);
    known = known || (o->actor && find_exited(s, o->actor, &parent));
    int unknown = o->actor && shown == 0 && !known && !amb;
    if (unknown)
        fprintf(stderr, "canopy: no actor '%s' in tree %s, and no records from one%s\n", o->actor,
                s->tree, o->follow ? "; waiting for its records" : " (see 'canopy tree')");
    else if (amb)
        fprintf(stderr, "canopy: more than one actor in tree %s is named '%s': these are the "
                        "records of each (give a path for one)\n", s->tree, o->actor);
    else if (shown == 0)
        say_no_records(s, o, min);
    cn_snapshot_free(s);
    if (!o->follow)
        return unknown ? EXIT_FAIL : 0;
    log_follow_t f = {min, o, last};
    return follow(feed, log_event, &f);
}

/* ===========================================================================
 * events
 */

/* One event as a JSON object of the fields its kind has (docs/cli.md):
 * a log record as `canopy log --json` prints one. */
static void print_event_json(const cn_event_t *ev)
{
    const char *k = ev->kind ? ev->kind : "";
    int is_log = !strcmp(k, "log"), child = !strcmp(k, "spawn") || !strcmp(k, "exit");
    printf("{\"kind\":");
    json_cstr(stdout, k);
    printf(",\"time_us\":%llu,\"path\":", (unsigned long long)ev->time_us);
    json_cstr(stdout, ev->path);
    if (is_log) {
        printf(",\"level\":");
        json_cstr(stdout, ev->level >= 0 && ev->level <= 5 ? cn_log_level_name(ev->level) : "?");
        printf(",\"message\":");
        json_cstr(stdout, ev->detail);
        printf("}\n");
        return;
    }
    if (!strcmp(k, "dropped")) {
        printf(",\"count\":%llu}\n", (unsigned long long)ev->count);
        return;
    }
    printf(",\"actor\":%u", ev->actor);
    if (child) {
        printf(",\"child\":%u,\"name\":", ev->peer);
        json_cstr(stdout, ev->fn);
    } else if (!strcmp(k, "lock")) {
        printf(",\"op\":");
        json_cstr(stdout, ev->op);
        printf(",\"waiting\":%u", ev->waiting);
    } else if (!strncmp(k, "route-", 6)) {
        printf(",\"peer\":%u", ev->peer);
    } else if (strcmp(k, "console") != 0 && strcmp(k, "error") != 0) {
        printf(",\"cid\":%llu,\"peer\":%u,\"fn\":", (unsigned long long)ev->cid, ev->peer);
        json_cstr(stdout, ev->fn);
    }
    printf(",\"detail\":");
    json_cstr(stdout, ev->detail);
    printf("}\n");
}

static void print_event(const cn_event_t *ev, void *arg)
{
    const opts_t *o = arg;
    if (o->json) {
        print_event_json(ev);
        return;
    }
    char clock[32];
    printf("%s %-11s %s", fmt_clock(ev->time_us, clock, sizeof(clock)), ev->kind,
           ev->path ? ev->path : "");
    if (strcmp(ev->kind, "dropped") == 0)
        printf("%llu events dropped", (unsigned long long)ev->count);
    else if (strcmp(ev->kind, "spawn") == 0 || strcmp(ev->kind, "exit") == 0)
        printf(": %s (id %u)", ev->fn ? ev->fn : "?", ev->peer);
    else if (strncmp(ev->kind, "route-", 6) == 0)
        printf(": the route to actor %u", ev->peer);
    else if (strcmp(ev->kind, "log") == 0)
        printf(": %s", ev->level >= 0 && ev->level <= 5 ? cn_log_level_name(ev->level) : "?");
    else
        printf(": %s cid %llu with actor %u", ev->fn ? ev->fn : "stream",
               (unsigned long long)ev->cid, ev->peer);
    if (ev->detail)
        printf(": %s", ev->detail);
    printf("\n");
}

int cli_events(int argc, char **argv, const opts_t *o)
{
    cn_client_t *feed = subscribe_to(argc ? argv[0] : NULL);
    if (feed == NULL)
        return EXIT_FAIL;
    if (isatty(1) && isatty(2)) /* a quiet tree prints nothing: say it is not hung */
        fprintf(stderr, "canopy: following the tree's events until Ctrl-C (plain calls "
                        "make none; contexts, spawns, exits and log records do)\n");
    return follow(feed, print_event, (void *)o);
}

/* ===========================================================================
 * cancel
 */

int ui_split_target(const char *target, char *actor, size_t n, uint64_t *cid)
{
    const char *slash = strrchr(target, '/');
    if (slash == NULL || n == 0 || (size_t)(slash - target) >= n)
        return 0;
    /* Digits only: strtoull would take "-1" (as 2^64-1), "+1" or " 1". */
    const char *d = slash + 1;
    while (*d >= '0' && *d <= '9')
        d++;
    if (d == slash + 1 || *d != '\0')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(slash + 1, NULL, 10);
    if (errno == ERANGE)
        return 0;
    memcpy(actor, target, (size_t)(slash - target));
    actor[slash - target] = '\0';
    *cid = v;
    return 1;
}

/* What `target` names in s: an actor, or ACTOR/CID one of its calls or
 * contexts. Returns 0, or prints why not and returns an error. */
static int pick_target(const cn_snapshot_t *s, const char *target, const cn_snap_actor_t **a,
                       const cn_snap_ctx_t **ctx)
{
    *a = NULL;
    *ctx = NULL;
    char who[256];
    uint64_t cid;
    if (ui_split_target(target, who, sizeof(who), &cid)) {
        int amb;
        const cn_snap_actor_t *x = cn_snapshot_find(s, who, &amb);
        if (x) {
            /* cids are the caller's numbering: the actor's own call of
             * that number is unique; ends it serves may share the number
             * (their callers numbered them), and need their caller named. */
            size_t served = 0;
            for (size_t k = 0; k < x->ncontexts; k++) {
                const cn_snap_ctx_t *c = &x->contexts[k];
                if (c->cid != cid)
                    continue;
                if (c->role && strcmp(c->role, "caller") == 0) {
                    *ctx = c;
                    break;
                }
                if (served++ == 0)
                    *ctx = c;
            }
            if (*ctx == NULL) {
                fprintf(stderr, "canopy: %s has no call or context %llu (see 'canopy ctx %s')\n",
                        x->path ? x->path : who, (unsigned long long)cid, who);
                return CN_ENOENT;
            }
            if (served > 1 && !((*ctx)->role && strcmp((*ctx)->role, "caller") == 0)) {
                fprintf(stderr,
                        "canopy: %s serves %zu calls or contexts numbered %llu by their callers; "
                        "name one by its caller, CALLER/%llu (see 'canopy ctx %s')\n",
                        x->path ? x->path : who, served, (unsigned long long)cid,
                        (unsigned long long)cid, who);
                *ctx = NULL;
                return CN_EAMBIGUOUS;
            }
            *a = x;
            return 0;
        }
        int amb2;
        if (cn_snapshot_find(s, target, &amb2) == NULL && !amb2) {
            /* not an actor's path either: say why ACTOR is not there (it
             * has exited, or was mistyped), not that "A/7" is no actor */
            int rc = ui_pick_actor(s, who, a);
            *a = NULL;
            return rc < 0 ? rc : CN_ENOENT;
        }
    }
    return ui_pick_actor(s, target, a);
}

/* How far a cancel has got. */
enum { CANCEL_PENDING, CANCEL_CALLEE_RUNS, CANCEL_DONE };

static int ended(const cn_snap_ctx_t *c)
{
    return c == NULL || (c->phase && (strcmp(c->phase, "returned") == 0 ||
                                      strcmp(c->phase, "errored") == 0));
}

/* Whether the cancel has finished: the actor left the tree; for a call,
 * both of its ends closed. The caller's end closes as soon as it is told
 * (it does not wait), so a callee that never reaches a cancellation
 * point is still running then: CANCEL_CALLEE_RUNS. */
static int cancel_done(const cn_snapshot_t *s, uint32_t actor, uint64_t call, uint32_t callee)
{
    const cn_snap_actor_t *a = ui_actor_by_id(s, actor);
    if (a == NULL)
        return CANCEL_DONE;
    if (!call || !ended(ui_ctx_at(a, call, "caller", callee)))
        return CANCEL_PENDING;
    return ended(ui_ctx_at(ui_actor_by_id(s, callee), call, "callee", actor)) ? CANCEL_DONE
                                                                              : CANCEL_CALLEE_RUNS;
}

/* After a snapshot failed: whether the tree has gone (its socket no
 * longer answers), which ends whatever was being cancelled in it. */
static int tree_gone(const char *path)
{
    cn_client_t *c;
    int rc = cn_client_connect(path, &c, 1000);
    if (rc == 0)
        cn_client_close(c);
    return rc == CN_ECONNREFUSED || rc == CN_ENOENT;
}

int cli_cancel(int argc, char **argv, const opts_t *o)
{
    const char *target = argv[argc - 1], *tree = argc == 2 ? argv[0] : ui_tree_of_path(target);
    cn_tree_info_t t;
    /* A running tree's name alone (NAME or NAME.PID) is that tree's root,
     * however many trees run: with two, "canopy cancel app" was refused
     * as naming no tree. */
    int whole = argc == 1 && tree == NULL && strchr(target, '/') == NULL &&
                cn_client_find(target, &t) == 0;
    if (whole)
        tree = target;
    int rc = ui_find_tree(tree, &t);
    cn_client_t *c = NULL;
    if (rc == 0 && (rc = cn_client_connect(t.path, &c, CONNECT_MS)) < 0)
        ui_say_error(t.name, rc);
    if (rc < 0)
        return EXIT_FAIL;
    cn_snapshot_t *s;
    if ((rc = cn_client_snapshot(c, 0, 1000 + SNAP_SLACK_MS, &s)) < 0) {
        ui_say_error(t.name, rc);
        cn_client_close(c);
        return EXIT_FAIL;
    }
    const cn_snap_actor_t *a = whole ? ui_actor_by_id(s, CN_ROOT_ID) : NULL;
    const cn_snap_ctx_t *ctx = NULL;
    if ((!whole && pick_target(s, target, &a, &ctx) < 0) || a == NULL) {
        cn_snapshot_free(s);
        cn_client_close(c);
        return EXIT_FAIL;
    }
    /* A context is cancelled by its caller, as the caller's code would. */
    uint32_t actor = a->id, callee = 0;
    uint64_t call = 0;
    char what[300], buf[32], callee_name[256] = "";
    if (ctx) {
        call = ctx->cid;
        callee = ctx->peer;
        if (ctx->role && strcmp(ctx->role, "callee") == 0)
            actor = ctx->peer, callee = a->id;
        int plain = ctx->kind && strcmp(ctx->kind, "call") == 0;
        snprintf(what, sizeof(what), "%s %llu (%s, caller %s)", plain ? "call" : "context",
                 (unsigned long long)call, ctx->fn ? ctx->fn : "?",
                 actor_name(s, actor, buf, sizeof(buf)));
        snprintf(callee_name, sizeof(callee_name), "%s", actor_name(s, callee, buf, sizeof(buf)));
    } else {
        snprintf(what, sizeof(what), "%s (id %u, pid %d)%s", a->path ? a->path : "?", a->id,
                 a->pid, a->parent < 0 ? ": the whole tree" : "");
    }
    cn_snapshot_free(s);
    rc = cn_client_cancel(c, actor, call, "canopy cancel", CONNECT_MS);
    if (rc < 0) {
        fprintf(stderr, "canopy: cannot cancel %s: %s\n", what, cn_client_error());
        cn_client_close(c);
        return EXIT_FAIL;
    }
    if (!o->json) {
        printf("cancelling %s ...", what);
        fflush(stdout);
    }
    /* Progress: watch until it is gone, up to the timeout (default 10 s). */
    long limit = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int state = CANCEL_PENDING, done = 0, exited = 0, in_debugger = 0;
    long ms = 0;
    while (!done && ms <= limit) {
        usleep(50000);
        clock_gettime(CLOCK_MONOTONIC, &now);
        ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (cn_client_snapshot(c, 500, 3000, &s) < 0) {
            /* The tree exited (a cancel often lets its main return), and
             * took what was cancelled with it; else it did not answer in
             * time, and the watch goes on. */
            if ((exited = done = tree_gone(t.path)) != 0)
                break;
            cn_client_close(c);
            if (cn_client_connect(t.path, &c, CONNECT_MS) < 0) {
                c = NULL;
                break;
            }
            continue;
        }
        state = cancel_done(s, actor, call, callee);
        done = state == CANCEL_DONE;
        const cn_snap_actor_t *held = ui_actor_by_id(s, call ? callee : actor);
        /* 1: in a session, 2: queued for the console */
        const char *hs = held ? ui_shown_state(held) : "";
        in_debugger = strcmp(hs, "lock-wait") == 0 ? 2 : strcmp(hs, "debugger") == 0;
        cn_snapshot_free(s);
        if (!done && !o->json && ms / 1000 != (ms - 50) / 1000) {
            printf(" %lds", ms / 1000);
            fflush(stdout);
        }
    }
    cn_client_close(c);
    if (o->json) {
        printf("{\"target\":");
        json_cstr(stdout, what);
        printf(",\"actor\":%u,\"call\":%llu,\"done\":%s,\"ms\":%ld}\n", actor,
               (unsigned long long)call, done ? "true" : "false", ms);
        return done ? 0 : EXIT_FAIL;
    }
    if (done) {
        printf(" done in %ld ms%s\n", ms, exited ? " (the tree exited)" : "");
        return 0;
    }
    if (in_debugger) /* it waits for its session to end: lint finds nothing wrong */
        printf(" still there after %ld ms: %s is stopped for the debugger (%s), and %s when "
               "its session ends ('canopy attach %s', then c)\n",
               ms, call ? callee_name : what,
               in_debugger == 2 ? "waiting for the console" : "in a session",
               call ? "the call ends" : "it goes", t.name);
    else if (state == CANCEL_CALLEE_RUNS)
        printf(" the caller's end is closed, but its task on %s still runs after %ld ms: it has "
               "not reached a cancellation point; 'canopy lint' and 'canopy bt' say where\n",
               callee_name, ms);
    else
        printf(" still there after %ld ms; 'canopy lint' may say why\n", ms);
    return EXIT_FAIL;
}

/* ===========================================================================
 * lint and dump
 */

static void print_lints_json(FILE *f, const lint_t *l, size_t n)
{
    fprintf(f, "[");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{\"lint\":", i ? "," : "");
        json_cstr(f, l[i].name);
        fprintf(f, ",\"severity\":");
        json_cstr(f, l[i].severity);
        /* the paths, as the text's "[a, b]" lists them; a name has no
         * comma or space (cn_spawn refuses them) */
        fprintf(f, ",\"actors\":[");
        for (const char *a = l[i].actors, *end; *a; a = *end ? end + 2 : end) {
            end = strstr(a, ", ");
            end = end ? end : a + strlen(a);
            if (a != l[i].actors)
                fprintf(f, ",");
            json_str(f, a, (size_t)(end - a));
        }
        fprintf(f, "]");
        fprintf(f, ",\"message\":");
        json_cstr(f, l[i].what);
        fprintf(f, "}");
    }
    fprintf(f, "]");
}

int cli_lint(int argc, char **argv, const opts_t *o)
{
    cn_snapshot_t *s;
    if (ui_snapshot_of(argc ? argv[0] : NULL, o, &s) < 0)
        return EXIT_FAIL;
    static lint_t lints[64];
    size_t n = lint_run(s, lints, 64);
    if (n > 64)
        n = 64;
    if (o->json) {
        print_lints_json(stdout, lints, n);
        printf("\n");
    } else if (n == 0) {
        printf("tree %s: %zu actor%s, no problems found\n", s->tree, s->nactors,
               ui_plural(s->nactors));
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s %s [%s]: %s\n", lints[i].severity, lints[i].name, lints[i].actors,
                   lints[i].what);
    }
    cn_snapshot_free(s);
    return n ? EXIT_LINTS : 0;
}

int ui_dump_write(FILE *f, const cn_snapshot_t *s)
{
    lint_t *lints = calloc(64, sizeof(*lints)); /* any thread: the TUI's worker writes too */
    size_t n = lints ? lint_run(s, lints, 64) : 0;
    if (n > 64)
        n = 64;
    fprintf(f, "{\"canopy_dump\":1,\"tree\":");
    json_cstr(f, s->tree);
    fprintf(f, ",\"root_pid\":%d,\"taken_us\":%llu,\"version\":", s->root_pid,
            (unsigned long long)s->now_us);
    json_cstr(f, cn_version_string());
    fprintf(f, ",\"lints\":");
    print_lints_json(f, lints, n);
    fprintf(f, ",\"snapshot\":");
    json_obj(f, &s->raw, 0);
    fprintf(f, "}\n");
    free(lints);
    return fflush(f) != 0 || ferror(f) ? -1 : 0;
}

int cli_dump(int argc, char **argv, const opts_t *o)
{
    cn_snapshot_t *s;
    opts_t with_stacks = *o; /* a bug report wants to know where each thread is */
    with_stacks.stacks = 1;
    if (with_stacks.timeout_ms <= 0)
        with_stacks.timeout_ms = STACKS_TIMEOUT_MS;
    if (ui_snapshot_of(argc ? argv[0] : NULL, &with_stacks, &s) < 0)
        return EXIT_FAIL;
    int rc = ui_dump_write(stdout, s);
    cn_snapshot_free(s);
    if (rc < 0) {
        fprintf(stderr, "canopy dump: cannot write the bundle: %s\n", strerror(errno));
        return EXIT_FAIL;
    }
    return 0;
}
