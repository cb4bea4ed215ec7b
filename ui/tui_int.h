/*
 * tui_int.h: what the TUI's own files share (tui.c the loop, tui_draw.c
 * the screen, tui_keys.c the key table and input, tui_snap.c the snapshot
 * worker). Not for the views, which see only tui.h.
 */
#ifndef CANOPY_TUI_INT_H
#define CANOPY_TUI_INT_H

#include <histedit.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "tui.h"

#define FRAME_MS 50         /* at most 20 redraws a second */
#define SNAP_EVERY_MS 2000  /* a snapshot this often while nothing changes */
#define SNAP_MIN_MS 250     /* at most this often while actors come and go, so a new
                               child is on screen well within 1 s, even under load; */
#define SNAP_FAST_MS 1000   /* this often while contexts are on screen (their own
                               events are not read: most of a busy tree's feed) */
#define SNAP_ACTOR_MS 1000  /* each actor's time to answer */
#define EVENTS_PER_TURN 2000 /* then the screen gets a turn */
#define STATUS_MS 4000


/* The views, in tab order (tui.c). */
extern const view_t *const views[V_MAX];

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------------------
 * The snapshot worker (tui_snap.c)
 */

typedef struct snapper {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char path[108];
    int wake_fd;
    /* under mu */
    int want, want_ctx, want_stacks, want_dump, quit;
    int fast; /* a view that shows contexts is on screen: every SNAP_FAST_MS */
    cn_snapshot_t *got, *got_stacks;
    int failed;       /* the last snapshot failed: why */
    char why[256];
    char dumped[400]; /* what became of the last dump */
    uint64_t last_ms;
} snapper_t;

enum { SNAP_CTX, SNAP_SHAPE, SNAP_STACKS, SNAP_DUMP };

/* The worker's thread: snapshots on its own connection until quit. */
void *snap_main(void *arg);

/* Asks for a snapshot: SNAP_SHAPE (actors changed) within SNAP_MIN_MS of
 * the last, SNAP_CTX (contexts changed) within SNAP_FAST_MS, SNAP_STACKS
 * and SNAP_DUMP (with every thread's stack) at once. */
void snap_ask(snapper_t *w, int how);

/* ---------------------------------------------------------------------------
 * The TUI's state (tui.c)
 */

enum { IN_NONE, IN_CONSOLE, IN_FILTER };
enum { Q_NONE, Q_CANCEL, Q_KILL, Q_QUIT, Q_LEAVE };

typedef struct tui {
    tui_model_t m;
    const tui_opts_t *o;
    cn_client_t *ev; /* console and event feed */
    char tree[64];
    int root_pid;
    snapper_t sn;
    int wake[2];

    int view, prev_view;
    rows_t rows[V_MAX], top, detail;
    int sel[V_MAX], scroll[V_MAX], follow[V_MAX];
    int detail_on, detail_scroll;
    cn_snapshot_t *stacks;  /* the last one taken with stacks ('t') */
    cn_snapshot_t *pending; /* paused: the newest snapshot, not shown yet */

    int paused, need_build, dirty;
    uint64_t last_draw, last_build;

    /* The input line: the console's, or the filter's. */
    int in_mode;
    char in[512];
    size_t in_len, in_pos;
    History *hist;
    int hist_walk; /* Up pressed: walking the history */
    char saved_filter[128];

    /* A question waiting for y or n. */
    int q;
    char question[300];
    char quit_note[400]; /* said on stderr once the screen is gone */
    uint32_t q_actor;
    uint64_t q_call;
    int q_pid;

    char status[400];
    uint64_t status_until;
    int help;
    int help_scroll; /* the help's first line shown, when it does not fit */
    int mono;
    char gone[300]; /* the tree has gone: how */
    uint64_t gone_us; /* and when: the ages shown stop there */
    int run_status; /* canopy run: its exit status, once it has gone */
    uint64_t ev_lost;   /* when the event feed closed, or 0 */
    uint64_t last_feed; /* when the feed was last read */
    char ev_why[300];
    int quit, detach;
    int list_y0, list_y1; /* the list's lines on screen, as last drawn */
} tui_t;

/* A message on the status line for a few seconds. */
void say(tui_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The selected row of the view on screen, or NULL. */
const trow_t *sel_row(tui_t *t);
/* Rebuilds the rows of the view on screen. */
void build(tui_t *t);

/* ---------------------------------------------------------------------------
 * The screen (tui_draw.c)
 */

/* Colours, or with NO_COLOR or a mono terminal, attributes only. */
void theme_init(tui_t *t);
/* Draws the whole screen; curses sends what changed. */
void draw(tui_t *t);

/* ---------------------------------------------------------------------------
 * Keys (tui_keys.c)
 */

enum { K_ALL = 0, K_NOCON = 1 }; /* K_NOCON: not while typing at the console */


typedef struct tkey {
    int code, alt;
    const char *label; /* as the help shows it */
    const char *foot;  /* the footer's word, or NULL */
    const char *help;
    int where;    /* K_* */
    int view;     /* only in this view, or -1 */
    void (*fn)(tui_t *t, int ch);
} tkey_t;

/* The key table: every key, its footer word and its help. */
extern const tkey_t tui_keys[];
extern const size_t tui_nkeys;

/* Shows view v (and tells the worker whether contexts are on screen). */
void set_view(tui_t *t, int v);
/* One key (or mouse event, or resize) from curses. */
void on_key(tui_t *t, int ch);

#endif /* CANOPY_TUI_INT_H */
