/*
 * view_console.c: the debugger's console. Above, the lock's queue: the
 * holder, then the waiters with their reasons and how long they have
 * waited. Below, what the holder wrote, following; the input line under
 * it (drawn by tui.c) relays each line to the holder.
 */
#include <string.h>

#include "tui.h"

static void top(const tui_model_t *m, rows_t *out)
{
    trow_t *r = rows_add(out);
    if (r == NULL)
        return;
    char age[16] = "";
    if (m->has_holder) {
        if (m->holder.since_us && m->holder.since_us <= m->now_us)
            ui_fmt_age(age, sizeof(age), m->now_us - m->holder.since_us);
        snprintf(r->text, sizeof(r->text), "holder: %s (%s): %s", m->holder.path, age,
                 m->holder.reason);
        r->style = ST_DEBUG;
        r->actor = m->holder.actor;
    } else {
        snprintf(r->text, sizeof(r->text), "holder: nobody%s",
                 m->nwaiters ? "" : " (an actor gets the console at cn_breakpoint, a break, or "
                                    "a crash in debug mode; b breaks into the selected actor)");
        r->style = ST_DIM;
    }
    for (size_t i = 0; i < m->nwaiters && i < 3; i++) {
        if ((r = rows_add(out)) == NULL)
            return;
        age[0] = '\0';
        if (m->waiters[i].since_us && m->waiters[i].since_us <= m->now_us)
            ui_fmt_age(age, sizeof(age), m->now_us - m->waiters[i].since_us);
        snprintf(r->text, sizeof(r->text), "waiting %zu: %s (%s): %s", i + 1, m->waiters[i].path,
                 age, m->waiters[i].reason);
        r->style = ST_WARN;
        r->actor = m->waiters[i].actor;
    }
    if (m->nwaiters > 3 && (r = rows_add(out)) != NULL) {
        snprintf(r->text, sizeof(r->text), "... and %zu more waiting", m->nwaiters - 3);
        r->style = ST_WARN;
    }
}

static void build(const tui_model_t *m, rows_t *out)
{
    for (size_t i = 0;; i++) {
        const char *line = model_con_at(m, i);
        if (line == NULL)
            break; /* not filtered: a session is read whole */
        trow_t *r = rows_add(out);
        if (r == NULL)
            break;
        snprintf(r->text, sizeof(r->text), "%s", line);
        r->style = strncmp(line, "[lock]", 6) == 0 || strncmp(line, "[canopy]", 8) == 0 ? ST_WARN
                                                                                       : ST_NORMAL;
    }
}

static const char *header(const tui_model_t *m)
{
    return m->has_holder ? "type a line for the holder; Enter sends it, Ctrl-C interrupts, "
                           ":queue :skip :release :help, Esc leaves"
                         : "no actor holds the console; :queue shows who waits, Esc leaves";
}

const view_t view_console = {"Console", "the debugger: the holder's output, its input line, the "
                                        "lock queue",
                             header, build, NULL, top, 1};
