/*
 * test_tui_model.c: what each TUI view shows for a given snapshot, without
 * a terminal (ui/tui.h). The snapshot is built by hand: a root, a
 * supervisor with two workers (one not answering) and a child that
 * exited, routes, and a blocked stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tui.h"

#define NOW 1000000000000ULL /* us */

static cn_snap_child_t sup_children[3];
static cn_snap_route_t root_routes[3];
static cn_snap_ctx_t w2_ctx[2];
static cn_snap_actor_t actors[4];
static cn_snapshot_t snap, prev_snap;
static cn_snap_actor_t prev_actors[4];
static cn_snap_ctx_t prev_ctx[2];
static cn_snap_log_t snap_logs[3];
static tui_model_t m;
static rows_t rows;

static void fill(void)
{
    memset(actors, 0, sizeof(actors));
    actors[0] = (cn_snap_actor_t){.id = 0, .parent = -1, .name = "root", .path = "root",
                                  .state = "running", .responsive = 1, .pid = 100,
                                  .start_us = NOW - 60000000, .now_us = NOW, .rss_kib = 2048};
    actors[1] = (cn_snap_actor_t){.id = 1, .parent = 0, .name = "sup", .path = "root/sup",
                                  .state = "running", .responsive = 1, .pid = 101,
                                  .start_us = NOW - 50000000, .rss_kib = 4096};
    actors[2] = (cn_snap_actor_t){.id = 2, .parent = 1, .name = "worker-2",
                                  .path = "root/sup/worker-2", .state = "cancelling",
                                  .responsive = 1, .pid = 102, .start_us = NOW - 5000000,
                                  .rss_kib = 1024};
    actors[3] = (cn_snap_actor_t){.id = 3, .parent = -1, .name = "worker-3",
                                  .state = "unresponsive", .responsive = 0};
    sup_children[0] = (cn_snap_child_t){2, "worker-2", 102, "running", NULL, 0};
    sup_children[1] = (cn_snap_child_t){3, "worker-3", 103, "running", NULL, 0};
    sup_children[2] = (cn_snap_child_t){4, "worker-4", 0, "exited", "exit 3", NOW - 2000000};
    actors[1].children = sup_children;
    actors[1].nchildren = 3;
    root_routes[0] = (cn_snap_route_t){3, 1, 1, "worker-3", NOW - 40000000};
    root_routes[1] = (cn_snap_route_t){1, 0, 1, "sup", NOW - 50000000};
    root_routes[2] = (cn_snap_route_t){2, 1, 1, "worker-2", NOW - 45000000};
    actors[0].routes = root_routes;
    actors[0].nroutes = 3;
    memset(w2_ctx, 0, sizeof(w2_ctx));
    w2_ctx[0] = (cn_snap_ctx_t){.cid = 7, .peer = 1, .fn = "feed", .role = "caller",
                                .kind = "context", .phase = "streaming", .cancel = "none",
                                .opened_us = NOW - 3000000, .has_stream = 1};
    w2_ctx[0].stream = (cn_snap_stream_t){.msgs_in = 100, .msgs_out = 300, .buffered = 50,
                                          .window = 100, .local = "open", .peer = "open",
                                          .send_blocked = 1, .blocked_since_us = NOW - 1500000};
    w2_ctx[1] = (cn_snap_ctx_t){.cid = 9, .peer = 0, .fn = "roster", .role = "caller",
                                .kind = "call", .phase = "running", .cancel = "requested",
                                .opened_us = NOW - 1000000};
    actors[2].contexts = w2_ctx;
    actors[2].ncontexts = 2;
    memset(&snap, 0, sizeof(snap));
    snap.tree = "t";
    snap.now_us = NOW;
    snap.actors = actors;
    snap.nactors = 4;
    snap_logs[0] = (cn_snap_log_t){CN_LOG_INFO, NOW - 9000000, "root", "tree is up"};
    snap_logs[1] = (cn_snap_log_t){CN_LOG_DEBUG, NOW - 8000000, "root/sup", "spawned"};
    snap_logs[2] = (cn_snap_log_t){CN_LOG_WARN, NOW - 7000000, "root/sup/worker-2", "slow"};
    snap.logs = snap_logs;
    snap.nlogs = 3;
    /* One second earlier: the stream had 100 fewer messages. */
    memcpy(prev_actors, actors, sizeof(actors));
    memcpy(prev_ctx, w2_ctx, sizeof(w2_ctx));
    prev_ctx[0].stream.msgs_out = 200;
    prev_actors[2].contexts = prev_ctx;
    prev_snap = snap;
    prev_snap.actors = prev_actors;
    prev_snap.now_us = NOW - 1000000;
}

static int setup(void **state)
{
    (void)state;
    fill();
    model_init(&m);
    m.snap = &snap;
    m.prev = &prev_snap;
    m.now_us = NOW;
    memset(&rows, 0, sizeof(rows));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    m.snap = m.prev = NULL; /* not ours to free */
    model_free(&m);
    rows_free(&rows);
    return 0;
}

static const trow_t *find(const char *needle)
{
    for (size_t i = 0; i < rows.n; i++)
        if (strstr(rows.v[i].text, needle))
            return &rows.v[i];
    return NULL;
}

static void test_tree_shape(void **state)
{
    (void)state;
    view_tree.build(&m, &rows);
    assert_int_equal(rows.n, 5); /* root, sup, worker-2, worker-3, exited worker-4 */
    assert_non_null(strstr(rows.v[0].text, "- root"));
    assert_non_null(strstr(rows.v[1].text, "  - sup"));
    assert_non_null(strstr(rows.v[2].text, "worker-2"));
    assert_non_null(strstr(rows.v[3].text, "worker-3")); /* its parent from the route table */
    assert_non_null(strstr(rows.v[4].text, "worker-4"));
    assert_int_equal(rows.v[2].actor, 2);
    assert_non_null(strstr(rows.v[2].text, "cancelling"));
    assert_int_equal(rows.v[2].style, ST_WARN);
    assert_non_null(strstr(rows.v[3].text, "no answer"));
    assert_int_equal(rows.v[3].style, ST_ALERT);
    assert_non_null(strstr(rows.v[4].text, "exit 3"));
    assert_int_equal(rows.v[4].style, ST_DIM);
    assert_non_null(strstr(rows.v[1].text, "4096K"));
    assert_non_null(strstr(rows.v[0].text, "1m00s")); /* age */
}

static void test_tree_exited_goes_after_a_minute(void **state)
{
    (void)state;
    m.now_us = NOW + EXITED_SHOW_US;
    view_tree.build(&m, &rows);
    assert_null(find("worker-4"));
    assert_int_equal(rows.n, 4);
}

static void test_tree_collapse(void **state)
{
    (void)state;
    model_toggle(&m, 1, 1);
    view_tree.build(&m, &rows);
    assert_int_equal(rows.n, 2);
    assert_non_null(strstr(rows.v[1].text, "+ sup"));
    model_toggle(&m, 1, 0);
    rows_clear(&rows);
    view_tree.build(&m, &rows);
    assert_int_equal(rows.n, 5);
}

static void test_tree_filter_keeps_ancestors(void **state)
{
    (void)state;
    snprintf(m.filter, sizeof(m.filter), "WORKER-2");
    view_tree.build(&m, &rows);
    assert_int_equal(rows.n, 3); /* root, sup (for the shape), worker-2 */
    assert_int_equal(rows.v[0].style, ST_DIM);
    assert_int_equal(rows.v[1].style, ST_DIM);
    assert_int_equal(rows.v[2].is_match, 1);
    assert_null(find("worker-3"));
}

static void test_tree_sort_by_rss(void **state)
{
    (void)state;
    actors[3].responsive = 1; /* so it has a parent and a size */
    actors[3].parent = 1;
    actors[3].rss_kib = 9999;
    m.sort[V_TREE] = 2; /* rss, biggest first */
    view_tree.build(&m, &rows);
    assert_non_null(strstr(rows.v[2].text, "worker-3"));
    assert_non_null(strstr(rows.v[3].text, "worker-2"));
}

static void test_routes(void **state)
{
    (void)state;
    m.sel_actor = 0;
    view_routes.build(&m, &rows);
    assert_int_equal(rows.n, 3);
    assert_int_equal(rows.v[0].actor, 1); /* by id */
    assert_int_equal(rows.v[1].actor, 2);
    assert_int_equal(rows.v[2].actor, 3);
    assert_non_null(strstr(rows.v[0].text, "1 sup"));  /* via */
    assert_non_null(strstr(rows.v[0].text, "50s ago")); /* learned */
    m.sort[V_ROUTES] = 3; /* learned, newest first */
    rows_clear(&rows);
    view_routes.build(&m, &rows);
    assert_int_equal(rows.v[0].actor, 3);
    m.sel_actor = 2; /* a leaf */
    rows_clear(&rows);
    view_routes.build(&m, &rows);
    assert_int_equal(rows.n, 0);
    assert_non_null(strstr(view_routes.empty(&m), "no children"));
}

static void test_contexts(void **state)
{
    (void)state;
    m.sel_actor = 2;
    view_ctx.build(&m, &rows);
    assert_int_equal(rows.n, 2);
    const trow_t *feed = find("feed");
    assert_non_null(feed);
    assert_int_equal(feed->bar, 50);
    assert_true(feed->bar_col > 0 && feed->text[feed->bar_col - 1] == '[');
    assert_int_equal(feed->style, ST_ALERT); /* blocked */
    assert_non_null(strstr(feed->text, "1.5s")); /* blocked for */
    assert_non_null(strstr(feed->text, "100")); /* 100 messages a second */
    assert_int_equal(feed->cid, 7);
    assert_non_null(strstr(feed->text, "> 1:")); /* a call it made, to actor 1 */
    const trow_t *roster = find("roster");
    assert_int_equal(roster->style, ST_WARN); /* cancelling */
    assert_int_equal(roster->bar, -1);
    assert_non_null(strstr(roster->text, " requested "));
    /* "acknowledged" does not fit the column, and must not be cut */
    w2_ctx[1].cancel = "acknowledged";
    rows_clear(&rows);
    view_ctx.build(&m, &rows);
    roster = find("roster");
    assert_non_null(strstr(roster->text, " acked "));
    assert_null(strstr(roster->text, "acknowled"));
    w2_ctx[1].cancel = "requested";
    m.sel_actor = 1;
    rows_clear(&rows);
    view_ctx.build(&m, &rows);
    assert_int_equal(rows.n, 0);
    m.ctx_all = 1;
    view_ctx.build(&m, &rows);
    assert_int_equal(rows.n, 2);
    assert_non_null(strstr(rows.v[0].text, "2:worker-2 > "));
    /* The cancel state, the block time and the whole bar fit 80 columns,
     * with both ends named. */
    feed = find("feed");
    assert_true(feed->bar_col - 1 + 8 <= 80);
    assert_non_null(strstr(feed->text, "1.5s"));

    /* Ids of three digits and long names do not fit "ME > PEER": the row
     * keeps both ids whole, naming this actor by its id alone. */
    actors[1].id = 131;
    actors[1].name = "supervisor-a";
    actors[2].id = 132;
    actors[2].name = "worker-with-a-long-name";
    w2_ctx[0].peer = 131;
    rows_clear(&rows);
    view_ctx.build(&m, &rows);
    feed = find("feed");
    assert_non_null(feed);
    assert_non_null(strstr(feed->text, " 132 > 131:supervisor"));
    assert_true(feed->bar_col - 1 + 8 <= 80);

    /* A wider screen widens the column to name both ends whole, and the
     * header's column with it; the row still fits the screen. */
    m.cols = 130;
    rows_clear(&rows);
    view_ctx.build(&m, &rows);
    feed = find("feed");
    assert_non_null(strstr(feed->text, " 132:worker-with-a-long-name > 131:supervisor-a "));
    assert_true(strlen(feed->text) <= 130);
    const char *h = view_ctx.header(&m);
    assert_int_equal(strstr(h, "FUNCTION") - h, strstr(feed->text, "feed") - feed->text);
    /* From 100 columns on, the whole row fits, its last column (MSG/S)
     * too: at 100 it lost a character. */
    for (int cols = 100; cols <= 110; cols += 2) {
        m.cols = cols;
        rows_clear(&rows);
        view_ctx.build(&m, &rows);
        feed = find("feed");
        assert_true((int)strlen(feed->text) <= cols);
        h = view_ctx.header(&m);
        assert_non_null(strstr(h, "MSG/S"));
        assert_true(strstr(h, "MSG/S") - h + 5 <= cols);
    }
    /* One actor's view: the peer's name whole. */
    m.cols = 120;
    m.ctx_all = 0;
    m.sel_actor = 132;
    actors[1].name = "supervisor-of-the-ingest-shards";
    rows_clear(&rows);
    view_ctx.build(&m, &rows);
    feed = find("feed");
    assert_non_null(strstr(feed->text, "> 131:supervisor-of-the-ingest-shards "));
    h = view_ctx.header(&m);
    assert_int_equal(strstr(h, "FUNCTION") - h, strstr(feed->text, "feed") - feed->text);
    m.cols = 80; /* at 80 columns it is cut, so that the bar fits */
    rows_clear(&rows);
    view_ctx.build(&m, &rows);
    feed = find("feed");
    assert_null(strstr(feed->text, "supervisor-of-the-ingest-shards"));
    assert_true(feed->bar_col - 1 + 8 <= 80);
}

static void test_log(void **state)
{
    (void)state;
    m.log_level = CN_LOG_TRACE;
    model_log_add(&m, CN_LOG_ERROR, NOW - 1000, "root/sup", "boom", 4);
    model_output(&m, "hello from printf", 17, NOW - 500);
    view_log.build(&m, &rows);
    assert_int_equal(rows.n, 2);
    assert_non_null(strstr(rows.v[0].text, "error  root/sup: boom"));
    assert_int_equal(rows.v[0].style, ST_ALERT);
    assert_int_equal(rows.v[0].actor, 1);
    assert_non_null(strstr(rows.v[1].text, "out"));
    m.log_level = CN_LOG_WARN + 1; /* error only: the program's output still shows */
    rows_clear(&rows);
    view_log.build(&m, &rows);
    assert_int_equal(rows.n, 2);
    m.log_sel_only = 1;
    m.sel_actor = 0;
    rows_clear(&rows);
    view_log.build(&m, &rows);
    assert_int_equal(rows.n, 0);
}

/* Events the tree dropped leave a gap in the log: the view says so, with
 * how many and why. */
static void test_dropped_events_show_in_the_log(void **state)
{
    (void)state;
    cn_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = "dropped";
    e.count = 523;
    e.time_us = NOW - 10;
    e.detail = "events lost while this client was not reading";
    e.detail_len = strlen(e.detail);
    assert_int_equal(model_event(&m, &e), EV_SHOWN | EV_CTX);
    assert_int_equal(m.nlogs, 1);
    view_log.build(&m, &rows);
    assert_int_equal(rows.n, 1);
    assert_non_null(strstr(rows.v[0].text,
                           "warn   canopy: 523 events dropped: events lost while this client"));
}

static void test_log_seeded_from_first_snapshot(void **state)
{
    (void)state;
    /* An event came first; the snapshot's older records go before it. */
    model_log_add(&m, CN_LOG_INFO, NOW - 100, "root", "after attach", 12);
    model_seed_logs(&m, &snap);
    assert_int_equal(m.nlogs, 4);
    assert_string_equal(model_log_at(&m, 0)->message, "tree is up");
    assert_string_equal(model_log_at(&m, 2)->message, "slow");
    assert_string_equal(model_log_at(&m, 3)->message, "after attach");
    model_seed_logs(&m, &snap); /* nothing older than what is there: no change */
    assert_int_equal(m.nlogs, 4);
}

/* The first snapshot can be taken after a record was logged and before its
 * event is read: the event must not show it twice. */
static void test_log_event_after_its_snapshot(void **state)
{
    (void)state;
    model_seed_logs(&m, &snap);
    m.logs_seeded = 1;
    cn_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = "log";
    e.level = CN_LOG_WARN;
    e.time_us = NOW - 7000000;
    e.path = "root/sup/worker-2";
    e.detail = "slow";
    e.detail_len = 4;
    assert_int_equal(model_event(&m, &e), 0);
    assert_int_equal(m.nlogs, 3);
    e.detail = "slower"; /* another record at the same time is not a copy */
    e.detail_len = 6;
    assert_int_not_equal(model_event(&m, &e), 0);
    assert_int_equal(m.nlogs, 4);
}

static cn_event_t lock_ev(const char *op, uint32_t actor, const char *path, const char *detail)
{
    cn_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = "lock";
    e.op = op;
    e.actor = actor;
    e.cid = 1;
    e.path = path;
    e.detail = detail;
    e.detail_len = strlen(detail);
    e.time_us = NOW - 2000000;
    return e;
}

static void test_console_and_lock(void **state)
{
    (void)state;
    cn_event_t e = lock_ev("queued", 2, "root/sup/worker-2", "root/sup/worker-2 wants it: bp");
    assert_int_equal(model_event(&m, &e), EV_SHOWN | EV_SHAPE);
    assert_int_equal(m.nwaiters, 1);
    e = lock_ev("queued", 1, "root/sup", "root/sup wants it: crash");
    model_event(&m, &e);
    e = lock_ev("granted", 2, "root/sup/worker-2", "root/sup/worker-2 has the console: bp");
    model_event(&m, &e);
    assert_true(m.has_holder);
    assert_int_equal(m.holder.actor, 2);
    assert_int_equal(m.nwaiters, 1);
    assert_int_equal(m.waiters[0].actor, 1);
    cn_event_t out;
    memset(&out, 0, sizeof(out));
    out.kind = "console";
    out.detail = "line one\nline two\npart";
    out.detail_len = strlen(out.detail);
    assert_int_equal(model_event(&m, &out), EV_SHOWN);
    out.detail = "ial\n";
    out.detail_len = 4;
    model_event(&m, &out);
    view_console.build(&m, &rows);
    assert_non_null(find("line one"));
    assert_non_null(find("line two"));
    assert_non_null(find("partial"));
    assert_int_equal(find("has the console")->style, ST_WARN);
    rows_clear(&rows);
    view_console.top(&m, &rows);
    assert_int_equal(rows.n, 2);
    assert_non_null(strstr(rows.v[0].text, "holder: root/sup/worker-2 (2.0s)"));
    assert_int_equal(rows.v[0].style, ST_DEBUG);
    assert_non_null(strstr(rows.v[1].text, "waiting 1: root/sup"));
    /* The tree shows the holder as in the debugger, the waiter as waiting. */
    rows_clear(&rows);
    view_tree.build(&m, &rows);
    assert_non_null(strstr(find("worker-2")->text, "debugger"));
    assert_int_equal(find("worker-2")->style, ST_DEBUG);
    assert_non_null(strstr(find("- sup")->text, "lock-wait"));
    e = lock_ev("released", 2, "root/sup/worker-2", "gave it back");
    model_event(&m, &e);
    assert_false(m.has_holder);
}

static void test_lints(void **state)
{
    (void)state;
    m.nlints = 1;
    m.lints[0] = (lint_t){"stalled-stream", "warning", "root/sup, root/sup/worker-2", "stuck"};
    view_lints.build(&m, &rows);
    assert_int_equal(rows.n, 2); /* the heading, and the reason under it */
    /* the last actor named: where it is held up (the receiver, here);
     * Enter went to the first, the sender */
    assert_int_equal(rows.v[0].actor, 2);
    assert_int_equal(rows.v[0].style, ST_WARN);
    assert_int_equal(rows.v[1].actor, 2);
    assert_string_equal(rows.v[1].text, "    stuck");
    /* one that is gone (an orphan's dead peer): the one before it */
    snprintf(m.lints[0].actors, sizeof(m.lints[0].actors), "root/sup, root/sup/gone");
    rows_clear(&rows);
    view_lints.build(&m, &rows);
    assert_int_equal(rows.v[0].actor, 1);
    assert_true(rows.v[0].has_actor);
    snprintf(m.lints[0].actors, sizeof(m.lints[0].actors), "root/sup, root/sup/worker-2");
    rows_clear(&rows);
    /* A long reason is wrapped whole at spaces, every row within 80
     * columns; the filter finds a lint by any word of it. */
    char *why = m.lints[0].what;
    snprintf(why, sizeof(m.lints[0].what), "a sender on root/sup's stream of feed (cid 7) has waited 9s for "
                               "the receiver root/sup/worker-2 to take messages (8 of 8 buffered "
                               "there): thread 55 is blocked in recv on root (cid 9) for 9s");
    rows_clear(&rows);
    view_lints.build(&m, &rows);
    assert_true(rows.n >= 3);
    size_t total = 0;
    for (size_t i = 1; i < rows.n; i++) {
        assert_true(strlen(rows.v[i].text) <= 78);
        total += strlen(rows.v[i].text) - 4 + 1;
    }
    assert_int_equal(total, strlen(why) + 1);
    assert_non_null(strstr(rows.v[rows.n - 1].text, "for 9s"));
    snprintf(m.filter, sizeof(m.filter), "receiver");
    rows_clear(&rows);
    view_lints.build(&m, &rows);
    assert_true(rows.n >= 3);
    snprintf(m.filter, sizeof(m.filter), "nowhere-at-all");
    rows_clear(&rows);
    view_lints.build(&m, &rows);
    assert_int_equal(rows.n, 0);
    m.filter[0] = '\0';
    m.nlints = 0;
    rows_clear(&rows);
    view_lints.build(&m, &rows);
    assert_non_null(strstr(rows.v[0].text, "no problems found in 4 actors"));
}

static void test_detail(void **state)
{
    (void)state;
    static cn_snap_thread_t th[1] = {{.tid = 55, .kind = "task", .doing = "recv", .peer = 1,
                                      .cid = 7, .since_us = NOW - 4000000, .fn = "feed"}};
    actors[2].threads = th;
    actors[2].nthreads = 1;
    m.sel_actor = 2;
    detail_build(&m, NULL, &rows);
    assert_non_null(find("root/sup/worker-2  (actor 2)  cancelling"));
    assert_non_null(find("pid 102"));
    const trow_t *t = find("55 task  recv");
    assert_non_null(t);
    /* The analyzer takes cmocka 1.1.5's failed assert for one that returns:
     * NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
    assert_non_null(strstr(t->text, "on actor 1 cid 7 for 4.0s  in feed"));
    assert_int_equal(t->style, ST_WARN);
    assert_non_null(find("t: backtraces"));
}

static void test_formats(void **state)
{
    (void)state;
    char b[16];
    /* The CLI's and the TUI's, one way, never over five characters. */
    static const struct {
        uint64_t us;
        const char *want;
    } ages[] = {{350000, "350ms"},        {1500000, "1.5s"},         {9999999, "10.0s"},
                {12000000, "12s"},        {90000000, "1m30s"},       {599000000, "9m59s"},
                {3599000000ULL, "59m"},   {3600000000ULL, "1h00m"},  {35999000000ULL, "9h59m"},
                {86399000000ULL, "23h"},  {90000000000ULL, "1d01h"}, {1000000000000ULL, "11d"}};
    for (size_t i = 0; i < sizeof(ages) / sizeof(ages[0]); i++) {
        assert_string_equal(ui_fmt_age(b, sizeof(b), ages[i].us), ages[i].want);
        assert_true(strlen(b) <= 5);
    }
    static const struct {
        int64_t kib;
        const char *want;
    } sizes[] = {{812, "812K"},       {9999, "9999K"},  {14 * 1024, "14M"}, {10239999, "9999M"},
                 {10240000, "9.8G"}, {125829120, "120G"}, {-1, "-"}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_string_equal(ui_fmt_kib(b, sizeof(b), sizes[i].kib), sizes[i].want);
        assert_true(strlen(b) <= 5);
    }
    snprintf(m.filter, sizeof(m.filter), "Sup");
    assert_true(model_matches(&m, "root/sup"));
    assert_false(model_matches(&m, "root"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tree_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_exited_goes_after_a_minute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_collapse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_filter_keeps_ancestors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_sort_by_rss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contexts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_event_after_its_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_events_show_in_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_seeded_from_first_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_console_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_formats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
