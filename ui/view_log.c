/*
 * view_log.c: the tree's merged log, newest last, following by default.
 * 'l' raises the lowest level shown, 'a' keeps only the selected actor's
 * records, '/' filters by text. Under `canopy run` the program's own
 * output is here too, marked "out".
 */
#include <string.h>
#include <time.h>

#include "tui.h"

static void build(const tui_model_t *m, rows_t *out)
{
    const cn_snap_actor_t *sel = m->log_sel_only ? model_actor(m, m->sel_actor) : NULL;
    const char *sel_path = sel && sel->path ? sel->path : NULL;
    for (size_t i = 0; i < m->nlogs; i++) {
        const tlog_t *l = model_log_at(m, i);
        if (l->level >= 0 && l->level < m->log_level)
            continue;
        if (m->log_sel_only && (sel_path == NULL || strcmp(l->path, sel_path) != 0))
            continue;
        char when[32] = "", text[TROW_TEXT];
        time_t t = (time_t)(l->time_us / 1000000);
        struct tm tm;
        if (localtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%H:%M:%S", &tm) == 0)
            when[0] = '\0'; /* strftime leaves it undefined when it fails */
        snprintf(text, sizeof(text), "%s.%03u %-6s %s: %s", when,
                 (unsigned)(l->time_us / 1000 % 1000),
                 l->level < 0 ? "out" : l->level <= CN_LOG_ERROR ? cn_log_level_name(l->level) : "?",
                 l->path, l->message);
        trow_t *r = rows_add_match(out, m, text);
        if (r == NULL)
            continue;
        r->style = l->level == CN_LOG_ERROR  ? ST_ALERT
                   : l->level == CN_LOG_WARN || l->level == CN_LOG_CANCEL ? ST_WARN
                   : l->level >= 0 && l->level <= CN_LOG_DEBUG ? ST_DIM
                                                                : ST_NORMAL;
        const cn_snap_actor_t *a = m->snap ? cn_snapshot_find(m->snap, l->path, NULL) : NULL;
        r->actor = a ? a->id : 0;
        r->has_actor = a != NULL;
        r->key = l->seq; /* so that the selection stays on this record */
    }
}

static const char *header(const tui_model_t *m)
{
    static char h[160];
    const cn_snap_actor_t *a = model_actor(m, m->sel_actor);
    snprintf(h, sizeof(h), "TIME         LEVEL  ACTOR: MESSAGE   (level >= %s%s%s; l: level, a: "
             "actor)", m->log_level >= 0 && m->log_level <= CN_LOG_ERROR ? cn_log_level_name(m->log_level) : "?",
             m->log_sel_only ? ", only " : "", m->log_sel_only && a && a->path ? a->path : "");
    return h;
}

const view_t view_log = {"Log", "the tree's merged log; l: level, a: selected actor only",
                         header, build, NULL, NULL, 1};
