/*
 * tui_snap.c: the TUI's snapshot worker (tui_int.h). It takes whole-tree
 * snapshots on a connection of its own, as often as the screen asks and
 * no more, so the screen never waits for a slow actor, and writes hang
 * bundles for the d key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tui_int.h"

static void snap_wake(snapper_t *w)
{
    char b = 1;
    if (write(w->wake_fd, &b, 1) < 0 && errno != EAGAIN)
        return;
}

/* A bundle file name in the working directory, else in TMPDIR. */
static void dump_to(const cn_snapshot_t *s, char *msg, size_t n)
{
    char name[200], path[600];
    time_t t = time(NULL);
    struct tm tm;
    char when[32];
    if (localtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%Y%m%d-%H%M%S", &tm) == 0)
        snprintf(when, sizeof(when), "%lld", (long long)t); /* strftime left it undefined */
    snprintf(name, sizeof(name), "canopy-dump-%s-%s.json", s->tree ? s->tree : "tree", when);
    const char *dirs[] = {".", getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < 3; i++) {
        if (dirs[i] == NULL)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
        FILE *f = fopen(path, "wx");
        if (f == NULL)
            continue;
        int rc = ui_dump_write(f, s);
        if (fclose(f) != 0 || rc < 0) {
            snprintf(msg, n, "dump: cannot write %s: %s", path, strerror(errno));
            return;
        }
        char dir[600], cwd[600];
        const char *where = dirs[i][0] == '/' ? dirs[i] : getcwd(cwd, sizeof(cwd));
        snprintf(dir, sizeof(dir), "%s", where ? where : dirs[i]);
        /* The name first: a narrow status line cuts the end. */
        snprintf(msg, n, "hang bundle written: %s, in %s", name, dir);
        return;
    }
    snprintf(msg, n, "dump: no directory to write %s in (%s)", name, strerror(errno));
}

void *snap_main(void *arg)
{
    snapper_t *w = arg;
    cn_client_t *c = NULL;
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        uint64_t now = now_ms();
        int urgent = w->want_stacks || w->want_dump;
        uint64_t due = w->last_ms + (w->want                ? SNAP_MIN_MS
                                     : w->want_ctx || w->fast ? SNAP_FAST_MS
                                                              : SNAP_EVERY_MS);
        if (!urgent && now < due) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (due - now) * 1000000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            continue;
        }
        int stacks = w->want_stacks || w->want_dump, dump = w->want_dump;
        w->want = w->want_ctx = w->want_stacks = w->want_dump = 0;
        pthread_mutex_unlock(&w->mu);

        cn_snapshot_t *s = NULL;
        int rc = c ? 0 : cn_client_connect(w->path, &c, CONNECT_MS);
        if (rc == 0) {
            cn_snap_opts_t so = {stacks ? STACKS_TIMEOUT_MS : SNAP_ACTOR_MS, stacks};
            rc = cn_client_snapshot_opts(c, &so, so.actor_timeout_ms + SNAP_SLACK_MS, &s);
        }
        char why[256] = "";
        if (rc < 0) {
            snprintf(why, sizeof(why), "%s", cn_client_error()[0] ? cn_client_error() : cn_strerror(rc));
            cn_client_close(c);
            c = NULL;
        }
        char dumped[400] = "";
        if (dump && s)
            dump_to(s, dumped, sizeof(dumped));
        else if (dump)
            snprintf(dumped, sizeof(dumped), "dump: no snapshot: %s", why);

        pthread_mutex_lock(&w->mu);
        w->last_ms = now_ms();
        w->failed = rc < 0;
        snprintf(w->why, sizeof(w->why), "%s", why);
        if (dumped[0])
            snprintf(w->dumped, sizeof(w->dumped), "%s", dumped);
        cn_snapshot_t **slot = stacks ? &w->got_stacks : &w->got;
        if (s) {
            cn_snapshot_free(*slot);
            *slot = s;
        }
        snap_wake(w);
    }
    pthread_mutex_unlock(&w->mu);
    cn_client_close(c);
    return NULL;
}


void snap_ask(snapper_t *w, int how)
{
    pthread_mutex_lock(&w->mu);
    w->want_ctx = 1;
    w->want |= how >= SNAP_SHAPE;
    w->want_stacks |= how == SNAP_STACKS;
    w->want_dump |= how == SNAP_DUMP;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

