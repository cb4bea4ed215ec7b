/*
 * tui.h: the canopy TUI's model and views (docs/tui.md).
 *
 * The TUI is three layers:
 *   - the model (tui_model.c): the latest whole-tree snapshot, the one
 *     before it (for rates), the tree's log, the debugger's console and
 *     lock queue, and the lints; fed by the event feed and snapshots;
 *   - the views (view_*.c), one file each: a view turns the model into
 *     rows of text with a style, and knows its keys. Building rows is a
 *     pure function of the model, so views are unit-tested without a
 *     terminal (tests/test_tui_model.c);
 *   - the screen (tui.c): ncurses, the key table, the footer and help,
 *     the input line, and the loop that reads events and redraws at most
 *     about 20 times a second, only the rows on screen.
 *
 * Public headers only: the TUI is a client of the tree like any other.
 */
#ifndef CANOPY_TUI_H
#define CANOPY_TUI_H

#include <stddef.h>
#include <stdint.h>

#include "ui.h"

/* ---------------------------------------------------------------------------
 * Rows: what a view shows
 */

/* Styles, mapped to colours or attributes by the theme (tui.c). */
enum {
    ST_NORMAL,
    ST_DIM,     /* exited actors, context rows of ancestors */
    ST_WARN,    /* cancelling, waiting for the lock, warnings */
    ST_ALERT,   /* blocked, unresponsive, errors, in the debugger */
    ST_DEBUG,   /* in the debugger (holding the console) */
    ST_MATCH,   /* matches the filter (tree view keeps the ancestors) */
    ST_HEADER,
    ST_MAX_
};

#define TROW_TEXT 400

typedef struct trow {
    char text[TROW_TEXT]; /* the row, columns laid out; cut at the screen's width */
    int style;
    int bar;          /* a fill bar: -1 none, else 0..100, drawn at bar_col */
    int bar_col;
    uint32_t actor;   /* what the row is about */
    int has_actor;    /* log and lint rows: `actor` is one (0 is the root) */
    uint64_t cid;     /* a context's, or 0 */
    uint64_t key;     /* what else tells rows apart (a log record's number), or 0 */
    int is_match;     /* the filter matched this row itself */
} trow_t;

typedef struct rows {
    trow_t *v;
    size_t n, cap;
} rows_t;

typedef struct tui_model tui_model_t;

/* A new row at the end of r (zeroed but bar = -1), or NULL without memory. */
trow_t *rows_add(rows_t *r);
void rows_clear(rows_t *r);
/* A new row holding text, if text matches m's filter; else (or without
 * memory) NULL. */
trow_t *rows_add_match(rows_t *r, const tui_model_t *m, const char *text);
void rows_free(rows_t *r);

/* ---------------------------------------------------------------------------
 * The model
 */

typedef struct tlog {
    int level; /* cn_log_level_t; -1: the program's own output (canopy run) */
    uint64_t seq; /* a record's identity: 1, 2, ... as the model took them */
    uint64_t time_us;
    char *path, *message;
} tlog_t;

typedef struct tlock {
    uint32_t actor;
    uint64_t cid;
    char path[128];
    char reason[256];
    uint64_t since_us;
} tlock_t;

#define TLOG_MAX 5000
#define TCON_MAX 2000
#define TLOCK_MAX 64
#define TLINT_MAX 64
#define TEXITS_MAX 16 /* exits the feed told of, ahead of the next snapshot */

struct tui_model {
    /* Data */
    cn_snapshot_t *snap, *prev; /* latest, and the one before it */
    uint64_t now_us;            /* the time rows are built for */
    tlog_t logs[TLOG_MAX];      /* a ring */
    size_t nlogs, log_first;
    uint64_t log_seq; /* the last record's seq */
    int logs_seeded; /* the first snapshot's records are in */
    char *con[TCON_MAX]; /* the console's output lines, a ring */
    size_t ncon, con_first;
    char con_partial[1024]; /* output not ended by a newline yet */
    int has_holder;
    tlock_t holder;
    tlock_t waiters[TLOCK_MAX];
    size_t nwaiters;
    lint_t lints[TLINT_MAX];
    size_t nlints;
    char gone[256]; /* the tree has exited: how (canopy run), or "" */
    /* Exits the feed told of that the latest snapshot does not know yet
     * (the one the tree's end cuts short may never come) */
    struct {
        uint32_t actor;
        uint64_t time_us;
        char how[24]; /* as a snapshot says it: "exit 3", "signal 9" */
    } exits[TEXITS_MAX];
    size_t nexits;

    /* What the views show */
    uint32_t sel_actor; /* the selected actor: routes, contexts, detail */
    int ctx_all;        /* contexts: the whole tree, not only sel_actor */
    uint32_t collapsed[256];
    size_t ncollapsed;
    char filter[128];
    int sort[8];       /* per view: index into its sort keys */
    int log_level;     /* log: the lowest level shown */
    int log_sel_only;  /* log: only the selected actor's records */
    int cols;          /* the screen's width (0: 80), for columns that widen */
};

void model_init(tui_model_t *m);
void model_free(tui_model_t *m);

/* A new snapshot (the model takes it): the old one becomes prev, lints
 * are run, and the lock queue is read from the root's "lock". */
void model_snapshot(tui_model_t *m, cn_snapshot_t *s);

/* What an event changed, as model_event says: */
enum {
    EV_SHOWN = 1, /* the model: rows are to be rebuilt */
    EV_SHAPE = 2, /* actors came, went or changed state: a snapshot soon */
    EV_CTX = 4,   /* contexts changed: a snapshot, not so soon */
};

/* One event from the feed: logs, console output and lock changes are
 * applied. Returns EV_* flags. */
int model_event(tui_model_t *m, const cn_event_t *ev);
/* How `actor` exited, if the feed said so after the latest snapshot. */
const char *model_exit_of(const tui_model_t *m, uint32_t actor);
/* The snapshot's entry for child `id` that has exited, or NULL. */
const cn_snap_child_t *model_exited(const tui_model_t *m, uint32_t id);

/* The tree's output (canopy run): one line of the program's stdout or
 * stderr, as a log record with level -1. */
void model_output(tui_model_t *m, const char *line, size_t len, uint64_t time_us);

/* The records logged before we attached, from a snapshot: those older
 * than what the event feed has brought go before it (model_snapshot does
 * this with the first snapshot). */
void model_seed_logs(tui_model_t *m, const cn_snapshot_t *s);

void model_log_add(tui_model_t *m, int level, uint64_t time_us, const char *path,
                   const char *msg, size_t msg_len);
const tlog_t *model_log_at(const tui_model_t *m, size_t i);
const char *model_con_at(const tui_model_t *m, size_t i);
void model_con_add(tui_model_t *m, const char *text, size_t len);

const cn_snap_actor_t *model_actor(const tui_model_t *m, uint32_t id);
int model_collapsed(const tui_model_t *m, uint32_t id);
void model_toggle(tui_model_t *m, uint32_t id, int collapse);

/* Whether text matches the filter (case-insensitive substring; an empty
 * filter matches everything). */
int model_matches(const tui_model_t *m, const char *text);


/* ---------------------------------------------------------------------------
 * Views (view_*.c): one file each, one entry in the table in tui.c
 */

/* The views, in tab order (keys 1 to 6). */
enum { V_TREE, V_ROUTES, V_CTX, V_LOG, V_CONSOLE, V_LINTS, V_MAX };

typedef struct view {
    const char *name;  /* in the tab bar: "Tree" */
    const char *title; /* in the help: what it shows */
    /* The column header. */
    const char *(*header)(const tui_model_t *m);
    /* The rows for m now. */
    void (*build)(const tui_model_t *m, rows_t *out);
    /* The names of the sort keys, NULL-terminated (NULL: no sorting). */
    const char *const *sorts;
    /* Rows fixed above the list (the console's queue), or NULL. */
    void (*top)(const tui_model_t *m, rows_t *out);
    /* The list follows its end as rows arrive (log, console). */
    int follows;
    /* What an empty list means. */
    const char *(*empty)(const tui_model_t *m);
} view_t;

extern const view_t view_tree, view_routes, view_ctx, view_log, view_console, view_lints;

/* The detail pane for the selected actor (view_detail.c). stacks, if not
 * NULL, is a snapshot taken with stacks (the user asked for bt). */
void detail_build(const tui_model_t *m, const cn_snapshot_t *stacks, rows_t *out);

/* The state of an actor, as the tree shows it: a word and a style. */
const char *actor_state(const tui_model_t *m, const cn_snap_actor_t *a, int *style);

/* ---------------------------------------------------------------------------
 * The program (tui.c, tui_run.c)
 */

typedef struct tui_opts {
    const char *tree;   /* attach to this tree */
    int run_pid;        /* canopy run: the root we started, or 0 */
    int out_fd;         /* canopy run: its output (a pipe), or -1 */
    const char *run_cmd; /* canopy run: the command line, for the title */
} tui_opts_t;

/* Runs the TUI until the user quits. Returns an exit status. */
int tui_main(const tui_opts_t *o);

/* `canopy run` and `canopy attach` (the TUI); in tui_run.c and tui.c. */
int cli_run(int argc, char **argv, const opts_t *o);
int cli_tui(int argc, char **argv, const opts_t *o);

#endif /* CANOPY_TUI_H */
