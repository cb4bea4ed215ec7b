/*
 * test_stream.c: streams over contexts between real actor processes:
 * both directions, end of stream, backpressure with a slow consumer and a
 * sequence check, overrun mode, errors and cancellation mid-stream, and a
 * peer killed with -9.
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "canopy.h"
#include "sanitizers.h"
#include "suite.h"

#define T_MS (5000 * suite_time_scale())
#define BULK 100000
#define FAKE CN_HELPERS_DIR "/fake_child" /* of this build (make B=...) */

static cn_portal_t a;

static msgpack_object uint_obj(uint64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    o.via.u64 = v;
    return o;
}

/* ------------------------------------------------------------ functions */

/* Echoes each value doubled until the opener closes, then closes too and
 * returns how many it echoed. */
static int fn_doubler(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_stream_t *s;
    cn_started(c, NULL);
    int rc = cn_call_stream(c, NULL, &s);
    if (rc < 0)
        return rc;
    uint64_t n = 0;
    cn_result_t m;
    while ((rc = cn_stream_recv(s, &m, T_MS)) == 0) {
        msgpack_object d = uint_obj(m.value.via.u64 * 2);
        cn_result_free(&m);
        if ((rc = cn_stream_send(s, &d, T_MS)) < 0)
            return cn_call_fail(c, rc, "doubler send: %s", cn_stream_last_error(s));
        n++;
    }
    cn_result_free(&m);
    if (rc != CN_EOF)
        return cn_call_fail(c, rc, "doubler recv: %s", cn_strerror(rc));
    cn_stream_close(s);
    return msgpack_pack_uint64(out, n);
}

/* A slow consumer with a window of 8: checks the sequence, pauses now and
 * then, and returns [count, most messages it ever had waiting]. */
static int fn_slow_sink(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_started(c, NULL);
    usleep(300000); /* opens late: senders meet a receiver not yet open */
    cn_stream_t *s;
    cn_stream_opts_t o = {.window = 8};
    int rc = cn_call_stream(c, &o, &s);
    if (rc < 0)
        return rc;
    uint64_t n = 0;
    unsigned most = 0;
    cn_result_t m;
    while ((rc = cn_stream_recv(s, &m, T_MS)) == 0) {
        cn_stream_stats_t st;
        cn_stream_stats(s, &st);
        if (st.buffered > most)
            most = st.buffered;
        if (m.value.via.u64 != n) {
            uint64_t got = m.value.via.u64;
            cn_result_free(&m);
            return cn_call_fail(c, CN_ERANGE, "out of order: got %llu, want %llu",
                                (unsigned long long)got, (unsigned long long)n);
        }
        cn_result_free(&m);
        if (++n % 5000 == 0)
            usleep(20000); /* fall behind */
    }
    cn_result_free(&m);
    if (rc != CN_EOF)
        return cn_call_fail(c, rc, "sink recv: %s", cn_strerror(rc));
    msgpack_pack_array(out, 2);
    msgpack_pack_uint64(out, n);
    return msgpack_pack_uint32(out, most);
}

/* Opens its end with args[0] as window (0: never opens) and never reads;
 * waits to be cancelled. */
static int fn_deaf(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    cn_started(c, NULL);
    cn_stream_t *s;
    if (args->via.u64 > 0) {
        cn_stream_opts_t o = {.window = (unsigned)args->via.u64};
        cn_call_stream(c, &o, &s);
    }
    int rc = cn_sleep(60000);
    return rc < 0 ? cn_call_fail(c, rc, "deaf: cancelled") : 0;
}

/* Overrun mode, sending the moment it has started: its opener has not
 * opened its end yet. Returns the first send's code. */
static int fn_eager(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_stream_opts_t o = {.overrun = 1};
    cn_stream_t *s;
    int rc = cn_started(c, NULL);
    if (rc == 0)
        rc = cn_call_stream(c, &o, &s);
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 7};
    if (rc == 0)
        rc = cn_stream_send(s, &v, 5000);
    return msgpack_pack_int(out, rc);
}

/* Tries to stream before started, and reports the code. */
static int fn_early(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_stream_t *s;
    int rc = cn_call_stream(c, NULL, &s);
    cn_started(c, NULL);
    return msgpack_pack_int64(out, rc);
}

/* Reads three messages, then fails. */
static int fn_breaks(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_started(c, NULL);
    cn_stream_t *s;
    cn_call_stream(c, NULL, &s);
    cn_result_t m;
    for (int i = 0; i < 3; i++) {
        if (cn_stream_recv(s, &m, T_MS) != 0)
            return CN_EPROTO;
        cn_result_free(&m);
    }
    return cn_call_fail(c, CN_EINVAL, "broke after 3 messages");
}

/* Blocks in recv until cancelled; reports what recv said. */
static int fn_listener(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    cn_started(c, NULL);
    cn_stream_t *s;
    int rc = cn_call_stream(c, NULL, &s);
    if (rc < 0)
        return cn_call_fail(c, rc, "listener: could not open its end: %s", cn_err_name(rc));
    cn_result_t m;
    rc = cn_stream_recv(s, &m, 60000);
    cn_result_free(&m);
    return cn_call_fail(c, rc < 0 ? rc : CN_EPROTO, "listener: recv said %s (%s)", cn_err_name(rc),
                        cn_stream_last_error(s));
}

/* Sends 0..args-1 once the opener has opened its end, then closes. */
static int fn_counter(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    cn_started(c, NULL);
    cn_stream_t *s;
    cn_call_stream(c, NULL, &s);
    for (uint64_t i = 0; i < args->via.u64; i++) {
        msgpack_object v = uint_obj(i);
        int rc = cn_stream_send(s, &v, T_MS);
        if (rc < 0)
            return cn_call_fail(c, rc, "counter: %s", cn_stream_last_error(s));
    }
    return cn_stream_close(s);
}

/* Starts with its pid, sends 0..3 and waits to be cancelled. */
static int fn_burst(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    msgpack_object pid = uint_obj((uint64_t)getpid());
    cn_stream_t *s;
    int rc = cn_started(c, &pid);
    if (rc == 0)
        rc = cn_call_stream(c, NULL, &s);
    for (uint64_t i = 0; rc == 0 && i < 4; i++) {
        msgpack_object v = uint_obj(i);
        rc = cn_stream_send(s, &v, T_MS);
    }
    while (rc == 0)
        rc = cn_sleep(1000);
    return rc;
}

/*
 * Runs the script in args, one step per letter:
 *   S started   O open its end   Y send the next number   C close
 *   D receive until the end, counting   R return the count   E fail
 * For the sequence matrix: each letter is one thing the API allows.
 */
static int fn_script(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    cn_stream_t *s = NULL;
    uint64_t sent = 0, got = 0;
    for (uint32_t i = 0; i < args->via.str.size; i++) {
        int rc = 0;
        switch (args->via.str.ptr[i]) {
        case 'S':
            rc = cn_started(c, NULL);
            break;
        case 'O':
            rc = cn_call_stream(c, NULL, &s);
            break;
        case 'Y': {
            msgpack_object v = uint_obj(sent++);
            rc = cn_stream_send(s, &v, T_MS);
            break;
        }
        case 'C':
            rc = cn_stream_close(s);
            break;
        case 'D': {
            cn_result_t m = {0};
            while ((rc = cn_stream_recv(s, &m, T_MS)) == 0) {
                if (m.value.via.u64 != got++)
                    rc = CN_ERANGE;
                cn_result_free(&m);
                if (rc)
                    break;
            }
            cn_result_free(&m);
            if (rc == CN_EOF)
                rc = 0;
            break;
        }
        case 'R':
            return msgpack_pack_uint64(out, got);
        case 'E':
            return cn_call_fail(c, CN_EPROTO, "scripted failure after %llu sent",
                                (unsigned long long)sent);
        }
        if (rc < 0)
            return cn_call_fail(c, rc, "step %u (%c): %s", i, args->via.str.ptr[i],
                                s ? cn_stream_last_error(s) : cn_strerror(rc));
    }
    return msgpack_pack_uint64(out, got);
}

static int fn_getpid(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)c, (void)args;
    return msgpack_pack_int64(out, getpid());
}

/* Receives until the end of the stream; returns how many it took. */
static int fn_drain(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_started(c, NULL);
    cn_stream_t *s;
    int rc = cn_call_stream(c, NULL, &s);
    uint64_t n = 0;
    cn_result_t m;
    while (rc == 0 && (rc = cn_stream_recv(s, &m, T_MS)) == 0) {
        cn_result_free(&m);
        n++;
    }
    cn_result_free(&m);
    return rc == CN_EOF ? msgpack_pack_uint64(out, n) : cn_call_fail(c, rc, "drain: %s", cn_err_name(rc));
}

/* Sends args[0] messages of args[1] bytes each, then closes. */
static int fn_blobs(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    uint64_t n = args->via.array.ptr[0].via.u64, size = args->via.array.ptr[1].via.u64;
    char *blob = calloc(1, size);
    msgpack_object v = {.type = MSGPACK_OBJECT_BIN};
    v.via.bin.ptr = blob;
    v.via.bin.size = (uint32_t)size;
    cn_started(c, NULL);
    cn_stream_t *s;
    int rc = blob ? cn_call_stream(c, NULL, &s) : CN_ENOMEM;
    for (uint64_t i = 0; rc == 0 && i < n; i++)
        rc = cn_stream_send(s, &v, T_MS);
    free(blob);
    return rc < 0 ? rc : cn_stream_close(s);
}

/* Receives with a window of args; answers every nil with how many
 * messages came before it, and returns that count at the end. */
static int fn_tally(cn_call_t *c, const msgpack_object *args, msgpack_packer *out)
{
    cn_stream_opts_t opts = {.window = (unsigned)args->via.u64};
    cn_started(c, NULL);
    cn_stream_t *s;
    int rc = cn_call_stream(c, &opts, &s);
    uint64_t n = 0;
    cn_result_t m;
    while (rc == 0 && (rc = cn_stream_recv(s, &m, T_MS)) == 0) {
        if (m.value.type == MSGPACK_OBJECT_NIL) {
            msgpack_object v = uint_obj(n);
            rc = cn_stream_send(s, &v, T_MS);
        } else {
            n++;
        }
        cn_result_free(&m);
    }
    cn_result_free(&m);
    return rc == CN_EOF ? msgpack_pack_uint64(out, n) : cn_call_fail(c, rc, "tally: %s", cn_err_name(rc));
}

static const cn_export_t exports[] = {
    {"tally", fn_tally},
    {"drain", fn_drain},     {"blobs", fn_blobs},
    {"doubler", fn_doubler}, {"slow_sink", fn_slow_sink}, {"deaf", fn_deaf},
    {"early", fn_early},     {"breaks", fn_breaks},       {"listener", fn_listener},
    {"getpid", fn_getpid},   {"counter", fn_counter},     {"script", fn_script},
    {"eager", fn_eager},     {"burst", fn_burst},         {NULL, NULL}};

/* ------------------------------------------------------------ helpers */

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (up to T_MS) until thread `tid` of this process has slept through
 * two looks 20 ms apart: it is in its blocking wait, past any spinning.
 * Fixed sleeps were not enough on a loaded host. */
static void wait_asleep(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    int asleep = 0;
    for (int64_t deadline = ms_now() + T_MS; asleep < 2 && ms_now() < deadline;) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        const char *st = strrchr(buf, ')'); /* "pid (comm) S ..." */
        asleep = st && st[1] == ' ' && st[2] == 'S' ? asleep + 1 : 0;
        usleep(20000);
    }
    if (asleep < 2)
        fail_msg("thread %d did not start waiting within %d ms", (int)tid, T_MS);
}

/* Waits (up to T_MS) until the peer has opened its end of s. */
static void wait_peer_open(cn_stream_t *s)
{
    cn_stream_stats_t st;
    int64_t deadline = ms_now() + T_MS;
    for (cn_stream_stats(s, &st); !st.peer_opened && ms_now() < deadline; cn_stream_stats(s, &st))
        usleep(1000);
    assert_true(st.peer_opened);
}

/* Opens fn on `to` with args and this side's stream. */
static cn_ctx_t *open_stream(cn_portal_t to, const char *fn, const msgpack_object *args,
                             const cn_stream_opts_t *opts, cn_stream_t **s)
{
    cn_ctx_t *ctx;
    cn_result_t st;
    int rc = cn_open(to, fn, args, &ctx, &st, T_MS);
    cn_result_free(&st);
    if (rc != 0)
        fail_msg("open %s: %s", fn, cn_strerror(rc));
    assert_int_equal(cn_ctx_stream(ctx, opts, s), 0);
    return ctx;
}

static int setup(void **state)
{
    (void)state;
    return cn_spawn("a", NULL, &a, T_MS) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ tests */

static void test_both_ways_and_end_of_stream(void **state)
{
    (void)state;
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(a, "doubler", NULL, NULL, &s);
    /* Twice the window, so credit must flow back for this to finish. */
    for (uint64_t i = 1; i <= 128; i++) {
        msgpack_object v = uint_obj(i);
        assert_int_equal(cn_stream_send(s, &v, T_MS), 0);
        cn_result_t m;
        assert_int_equal(cn_stream_recv(s, &m, T_MS), 0);
        assert_int_equal(m.value.via.u64, 2 * i);
        cn_result_free(&m);
    }
    assert_int_equal(cn_stream_close(s), 0);
    msgpack_object v = uint_obj(1);
    assert_int_equal(cn_stream_send(s, &v, T_MS), CN_EPIPE);
    cn_result_t m;
    assert_int_equal(cn_stream_recv(s, &m, T_MS), CN_EOF); /* its STOP */
    assert_string_equal(cn_stream_last_error(s), "end of stream: the other side closed its end");
    assert_int_equal(cn_stream_recv(s, &m, T_MS), CN_EOF); /* and it stays so */
    cn_result_t res;
    assert_int_equal(cn_ctx_result(ctx, &res, T_MS), 0);
    assert_int_equal(res.value.via.u64, 128);
    cn_result_free(&res);
    cn_stream_stats_t st;
    cn_stream_stats(s, &st);
    assert_int_equal(st.msgs_out, 128);
    assert_int_equal(st.msgs_in, 128);
    assert_true(st.local_closed && st.peer_closed && st.peer_opened);
    cn_ctx_free(ctx);
}

static void test_backpressure_slow_consumer(void **state)
{
    (void)state;
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(a, "slow_sink", NULL, NULL, &s);
    /* The sink has not opened its end yet: no credit, so a short send
     * times out, and says why. */
    msgpack_object v = uint_obj(0);
    assert_int_equal(cn_stream_send(s, &v, 50), CN_ETIMEDOUT);
    assert_non_null(strstr(cn_stream_last_error(s), "has not opened its stream"));
    int64_t most_credit = 0;
    for (uint64_t i = 0; i < BULK; i++) {
        v = uint_obj(i);
        assert_int_equal(cn_stream_send(s, &v, T_MS), 0);
        cn_stream_stats_t st;
        cn_stream_stats(s, &st);
        if (st.credit > most_credit)
            most_credit = st.credit;
    }
    cn_stream_close(s);
    cn_result_t res;
    assert_int_equal(cn_ctx_result(ctx, &res, 30000), 0);
    assert_int_equal(res.value.via.array.ptr[0].via.u64, BULK); /* all, in order */
    assert_true(res.value.via.array.ptr[1].via.u64 <= 8);       /* never past its window */
    assert_true(most_credit <= 8);
    cn_result_free(&res);
    cn_ctx_free(ctx);
}

/* Private memory of a process, KiB (smaps_rollup's Anonymous); -1 if unknown. */
static long anon_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Anonymous: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void test_million_in_order_memory_flat(void **state)
{
    (void)state;
    /* A fast producer (a child's counter) and a consumer here that keeps
     * stopping to sleep, with the default window: every one of a million
     * messages arrives, in order, nothing is buffered past the window, and
     * neither side's memory grows between the 100 000th and the last. */
    enum { MILLION = 1000000 };
    cn_result_t r;
    assert_int_equal(cn_call(a, "getpid", NULL, &r, T_MS), 0);
    pid_t producer = (pid_t)r.value.via.i64;
    cn_result_free(&r);
    msgpack_object n = uint_obj(MILLION);
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(a, "counter", &n, NULL, &s);
    long prod0 = -1, self0 = -1;
    unsigned most = 0;
    for (uint64_t i = 0; i < MILLION; i++) {
        cn_result_t m;
        assert_int_equal(cn_stream_recv(s, &m, T_MS), 0);
        if (m.value.via.u64 != i)
            fail_msg("message %llu arrived as number %llu", (unsigned long long)i,
                     (unsigned long long)m.value.via.u64);
        cn_result_free(&m);
        if (i % 20000 == 0) {
            cn_stream_stats_t st;
            cn_stream_stats(s, &st);
            if (st.buffered > most)
                most = st.buffered;
            usleep(2000); /* fall behind: the producer must wait */
        }
        if (i == 100000) {
            prod0 = anon_kib(producer);
            self0 = anon_kib(getpid());
        }
    }
    long prod1 = anon_kib(producer), self1 = anon_kib(getpid());
    cn_result_t m;
    assert_int_equal(cn_stream_recv(s, &m, T_MS), CN_EOF);
    cn_result_free(&m);
    assert_true(most <= 64);
    print_message("producer %ld -> %ld KiB, consumer %ld -> %ld KiB, most buffered %u\n", prod0,
                  prod1, self0, self1, most);
#ifdef CN_TEST_UNDER_ASAN
    /* ASan keeps freed memory in quarantine on purpose: it cannot stay
     * flat there. The bound is checked in plain and TSan builds. */
    print_message("memory bound not checked under ASan\n");
#else
    assert_true(prod0 > 0 && prod1 - prod0 < 1024);
    assert_true(self0 > 0 && self1 - self0 < 1024);
#endif
    assert_int_equal(cn_ctx_result(ctx, &r, T_MS), 0);
    cn_result_free(&r);
    cn_ctx_free(ctx);
}

/*
 * The sequence matrix: the callee's script against the opener's, each a
 * different order of started, opening ends, yields, closes, draining,
 * returning and failing that the API allows (no pair in which each side
 * waits for the other first). The opener's letters: O open its end, Y
 * send, C close, D receive until the end, R take the result. Checked:
 * what open returns, how many messages each side receives (all, in order),
 * how the opener's draining ends, and the result.
 */
typedef struct {
    const char *callee, *opener;
    int open_rc;    /* 0 started; 1 returned first; or the error */
    int drain_end;  /* what the opener's D ends with */
    uint64_t drained; /* how many the opener's D receives */
    int result_rc;
    uint64_t result; /* what the callee received, as it returns it */
} seq_case_t;

static const seq_case_t seq_cases[] = {
    {"R", "", 1, 0, 0, 0, 0},                         /* returned before started */
    {"E", "", CN_EREMOTE, 0, 0, 0, 0},                /* failed before started */
    {"SR", "R", 0, 0, 0, 0, 0},                       /* no stream at all */
    {"SE", "R", 0, 0, 0, CN_EREMOTE, 0},              /* failed after started */
    {"SR", "ODR", 0, CN_EOF, 0, 0, 0},                /* only the opener opens */
    {"SOR", "ODR", 0, CN_EOF, 0, 0, 0},               /* both open, nothing sent */
    {"SOYYCR", "ODR", 0, CN_EOF, 2, 0, 0},            /* callee streams, closes */
    {"SOYYR", "ODR", 0, CN_EOF, 2, 0, 0},             /* ... returns without STOP */
    {"SOYYE", "ODR", 0, CN_EREMOTE, 2, CN_EREMOTE, 0}, /* ... fails mid-stream */
    {"SOYYCR", "OR", 0, 0, 0, 0, 0},                  /* result without draining */
    {"SODR", "OYYYCR", 0, 0, 0, 0, 3},                /* opener streams, closes */
    {"SODR", "OYYYCDR", 0, CN_EOF, 0, 0, 3},          /* ... then drains the end */
    {"SODE", "OYCDR", 0, CN_EREMOTE, 0, CN_EREMOTE, 1}, /* callee fails after draining */
    {"SOYCDR", "ODYYCR", 0, CN_EOF, 1, 0, 2},         /* callee first, then opener */
    {"SODYCR", "OYCDR", 0, CN_EOF, 1, 0, 1},          /* opener first, then callee */
    {"SOYDCR", "OYCDR", 0, CN_EOF, 1, 0, 1},          /* both at once */
    {"SOCDR", "OCDR", 0, CN_EOF, 0, 0, 0},            /* both close first */
    {"SOYYYCDR", "OYDYCR", 0, CN_EOF, 3, 0, 2},       /* interleaved */
};

static void test_sequence_matrix(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(seq_cases) / sizeof(seq_cases[0]); k++) {
        const seq_case_t *c = &seq_cases[k];
        msgpack_object script = {.type = MSGPACK_OBJECT_STR};
        script.via.str.ptr = c->callee;
        script.via.str.size = (uint32_t)strlen(c->callee);
        cn_ctx_t *ctx = NULL;
        cn_result_t st;
        int rc = cn_open(a, "script", &script, &ctx, &st, T_MS);
        if (rc != c->open_rc)
            fail_msg("%s/%s: open gave %s, want %s (%s)", c->callee, c->opener,
                     cn_strerror(rc), cn_strerror(c->open_rc),
                     st.error.message ? st.error.message : "");
        cn_result_free(&st);
        if (rc != 0)
            continue;
        cn_stream_t *s = NULL;
        uint64_t sent = 0;
        for (const char *op = c->opener; *op; op++) {
            switch (*op) {
            case 'O':
                assert_int_equal(cn_ctx_stream(ctx, NULL, &s), 0);
                break;
            case 'Y': {
                msgpack_object v = uint_obj(sent++);
                if (cn_stream_send(s, &v, T_MS) != 0)
                    fail_msg("%s/%s: send: %s", c->callee, c->opener, cn_stream_last_error(s));
                break;
            }
            case 'C':
                assert_int_equal(cn_stream_close(s), 0);
                break;
            case 'D': {
                uint64_t n = 0;
                cn_result_t m = {0};
                while ((rc = cn_stream_recv(s, &m, T_MS)) == 0) {
                    assert_int_equal(m.value.via.u64, n);
                    n++;
                    cn_result_free(&m);
                }
                cn_result_free(&m);
                if (rc != c->drain_end || n != c->drained)
                    fail_msg("%s/%s: drained %llu ending %s, want %llu ending %s", c->callee,
                             c->opener, (unsigned long long)n, cn_strerror(rc),
                             (unsigned long long)c->drained, cn_strerror(c->drain_end));
                break;
            }
            case 'R': {
                cn_result_t r;
                rc = cn_ctx_result(ctx, &r, T_MS);
                if (rc != c->result_rc || (rc == 0 && r.value.via.u64 != c->result))
                    fail_msg("%s/%s: result %s %llu, want %s %llu (%s)", c->callee, c->opener,
                             cn_strerror(rc), (unsigned long long)r.value.via.u64,
                             cn_strerror(c->result_rc), (unsigned long long)c->result,
                             r.error.message ? r.error.message : "");
                cn_result_free(&r);
                break;
            }
            }
        }
        cn_ctx_free(ctx);
    }
}

static void test_peer_ignoring_credit_cannot_grow_the_buffer(void **state)
{
    (void)state;
    /* fake_child flood sends 1000 YIELDs at once against a window of 8:
     * the first 8 arrive, the rest are dropped and logged, and the
     * context still ends with its RETURN. */
    cn_portal_t f;
    const char *fargv[] = {"flood", NULL};
    cn_spawn_opts_t o = {.exe = FAKE, .argv = fargv};
    assert_int_equal(cn_spawn("flood", &o, &f, T_MS), 0);
    cn_stream_opts_t w8 = {.window = 8};
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(f, "anything", NULL, &w8, &s);
    usleep(300000); /* all 1000 have arrived by now */
    cn_stream_stats_t st;
    cn_stream_stats(s, &st);
    assert_true(st.buffered <= 8);
    uint64_t n = 0;
    cn_result_t m;
    int rc;
    while ((rc = cn_stream_recv(s, &m, T_MS)) == 0) {
        assert_int_equal(m.value.via.u64, n);
        n++;
        cn_result_free(&m);
    }
    cn_result_free(&m);
    assert_int_equal(rc, CN_EOF);
    assert_int_equal(n, 8);
    assert_true(suite_log_contains("sent beyond the credit it was given"));
    cn_ctx_free(ctx);
}

static void test_overrun_mode(void **state)
{
    (void)state;
    cn_stream_opts_t overrun = {.overrun = 1};
    cn_stream_t *s;
    msgpack_object never = uint_obj(0), four = uint_obj(4), v = uint_obj(1);

    /* A receiver that never opens: the send waits for it, within its
     * timeout (a start-up is not an overrun), then says so. */
    cn_ctx_t *ctx = open_stream(a, "deaf", &never, &overrun, &s);
    int64_t t0 = ms_now();
    assert_int_equal(cn_stream_send(s, &v, 300), CN_EOVERRUN);
    assert_true(ms_now() - t0 >= 290);
    assert_string_equal(cn_stream_last_error(s),
                        "overrun: the receiving side never opened its stream (waited 300 ms)");
    assert_int_equal(cn_stream_send(s, &v, 0), CN_EOVERRUN); /* no wait asked for */
    assert_int_equal(cn_ctx_cancel(ctx, T_MS), 0);
    cn_ctx_free(ctx);

    /* A callee in overrun mode that sends the moment it has started: its
     * opener opens its end just after cn_open returns. The send waits for
     * that (it failed at once, a trial found), every time. */
    for (int i = 0; i < 20; i++) {
        cn_result_t st, m, res;
        assert_int_equal(cn_open(a, "eager", NULL, &ctx, &st, T_MS), 0);
        cn_result_free(&st);
        if (i % 2)
            usleep(20000); /* the opener a little late */
        assert_int_equal(cn_ctx_stream(ctx, NULL, &s), 0);
        assert_int_equal(cn_stream_recv(s, &m, T_MS), 0);
        assert_int_equal(m.value.via.u64, 7);
        cn_result_free(&m);
        assert_int_equal(cn_ctx_result(ctx, &res, T_MS), 0);
        assert_int_equal(res.value.via.i64, 0);
        cn_result_free(&res);
        cn_ctx_free(ctx);
    }

    ctx = open_stream(a, "deaf", &four, &overrun, &s);
    wait_peer_open(s); /* its CREDIT is on the way */
    int sent = 0, rc;
    while ((rc = cn_stream_send(s, &v, T_MS)) == 0)
        sent++;
    assert_int_equal(rc, CN_EOVERRUN);
    assert_int_equal(sent, 4); /* exactly its window, never more */
    assert_string_equal(cn_stream_last_error(s),
                        "overrun: the receiver's buffer of 4 messages is full");
    assert_int_equal(cn_ctx_cancel(ctx, T_MS), 0);
    cn_ctx_free(ctx);
}

static void test_stream_before_started_is_refused(void **state)
{
    (void)state;
    cn_ctx_t *ctx;
    cn_result_t st, res;
    assert_int_equal(cn_open(a, "early", NULL, &ctx, &st, T_MS), 0);
    cn_result_free(&st);
    assert_int_equal(cn_ctx_result(ctx, &res, T_MS), 0);
    assert_int_equal(res.value.via.i64, CN_EINVAL);
    cn_result_free(&res);
    cn_stream_t *s, *again;
    assert_int_equal(cn_ctx_stream(ctx, NULL, &s), 0);
    assert_int_equal(cn_ctx_stream(ctx, NULL, &again), CN_EINVAL); /* one per side */
    assert_non_null(strstr(cn_stream_last_error(s), "open already"));
    cn_stream_opts_t huge = {.window = 1u << 20};
    cn_ctx_free(ctx);
    assert_int_equal(cn_open(a, "early", NULL, &ctx, &st, T_MS), 0);
    cn_result_free(&st);
    assert_int_equal(cn_ctx_stream(ctx, &huge, &s), CN_EINVAL);
    assert_non_null(strstr(cn_stream_last_error(NULL), "more than the 65536 allowed"));
    cn_ctx_free(ctx);
}

/* A result given with a NULL handle is zeroed all the same, so the
 * cn_result_free a caller does after any call is safe: cn_open,
 * cn_ctx_result, cn_stream_recv and cn_sub_recv returned CN_EINVAL before
 * zeroing it, and a caller freed its stack's garbage. */
static void test_results_are_zeroed_even_for_a_null_handle(void **state)
{
    (void)state;
    cn_result_t r;
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(cn_open(a, "early", NULL, NULL, &r, T_MS), CN_EINVAL);
    assert_null(r.priv_);
    assert_non_null(strstr(r.error.message, "ctx is NULL")); /* and says why */
    cn_result_free(&r);
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(cn_ctx_result(NULL, &r, T_MS), CN_EINVAL);
    assert_null(r.priv_);
    assert_non_null(strstr(r.error.message, "ctx is NULL"));
    cn_result_free(&r);
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(cn_stream_recv(NULL, &r, T_MS), CN_EINVAL);
    assert_null(r.priv_);
    assert_string_equal(cn_stream_last_error(NULL), "no stream (s is NULL)");
    cn_result_free(&r);
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(cn_sub_recv(NULL, &r, NULL, T_MS), CN_EINVAL);
    assert_null(r.priv_);
    assert_string_equal(cn_stream_last_error(NULL), "no subscriber (sub is NULL)");
    cn_result_free(&r);
    /* A negative timeout waits as 0 does, and the message says 0. */
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(a, "doubler", NULL, NULL, &s);
    assert_int_equal(cn_stream_recv(s, &r, -5), CN_ETIMEDOUT);
    assert_string_equal(cn_stream_last_error(s), "nothing received within 0 ms");
    cn_result_free(&r);
    assert_int_equal(cn_stream_close(s), 0);
    assert_int_equal(cn_ctx_result(ctx, &r, T_MS), 0);
    cn_result_free(&r);
    cn_ctx_free(ctx);
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(cn_call(a, NULL, NULL, &r, T_MS), CN_EINVAL);
    assert_null(r.priv_);
    cn_result_free(&r);
}

static void test_error_during_streaming(void **state)
{
    (void)state;
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(a, "breaks", NULL, NULL, &s);
    msgpack_object v = uint_obj(1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cn_stream_send(s, &v, T_MS), 0);
    cn_result_t m;
    assert_int_equal(cn_stream_recv(s, &m, T_MS), CN_EREMOTE);
    assert_string_equal(m.error.message, "broke after 3 messages");
    assert_string_equal(m.error.origin, "root/a");
    assert_string_equal(cn_stream_last_error(s), "broke after 3 messages");
    cn_result_free(&m);
    /* Sending now fails the same way, at once, and says with what. */
    assert_int_equal(cn_stream_send(s, &v, T_MS), CN_EREMOTE);
    assert_string_equal(cn_stream_last_error(s),
                        "the context ended with an error from root/a: broke after 3 messages");
    cn_ctx_free(ctx);
}

static void test_cancel_while_peer_blocked_in_recv(void **state)
{
    (void)state;
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(a, "listener", NULL, NULL, &s);
    wait_peer_open(s); /* it is in (or entering) its recv */
    assert_int_equal(cn_ctx_cancel(ctx, T_MS), 0);
    cn_result_t res;
    assert_int_equal(cn_ctx_result(ctx, &res, 0), CN_ECANCELED);
    assert_non_null(strstr(res.error.message, "recv said CN_ECANCELED"));
    /* and its cn_stream_last_error said why, not "" */
    assert_non_null(strstr(res.error.message, "(this task was cancelled: "));
    cn_result_free(&res);
    cn_ctx_free(ctx);
}

struct blocked_sender {
    cn_stream_t *s;
    int rc;
    int64_t woke;
    _Atomic pid_t tid;
    char why[256]; /* its cn_stream_last_error: kept per thread */
};

static void *send_until_stuck(void *p)
{
    struct blocked_sender *b = p;
    msgpack_object v = uint_obj(7);
    b->tid = gettid();
    while ((b->rc = cn_stream_send(b->s, &v, 60000)) == 0)
        ;
    b->woke = ms_now();
    snprintf(b->why, sizeof(b->why), "%s", cn_stream_last_error(b->s));
    return NULL;
}

static void test_cancel_while_blocked_on_backpressure(void **state)
{
    (void)state;
    cn_stream_t *s;
    msgpack_object two = uint_obj(2);
    cn_ctx_t *ctx = open_stream(a, "deaf", &two, NULL, &s);
    struct blocked_sender b = {s, 0, 0, 0, ""};
    pthread_t th;
    pthread_create(&th, NULL, send_until_stuck, &b);
    while (b.tid == 0)
        usleep(1000);
    wait_asleep(b.tid); /* two sent, the third waits for credit */
    cn_stream_stats_t st;
    cn_stream_stats(s, &st);
    assert_true(st.send_blocked);
    assert_int_equal(st.msgs_out, 2);
    assert_int_equal(cn_ctx_cancel(ctx, T_MS), 0);
    pthread_join(th, NULL);
    assert_int_equal(b.rc, CN_ECANCELED);
    /* the task acknowledged this side's cancel: no error of the peer's */
    assert_string_equal(b.why, "the context's task on root/a ended: deaf: cancelled");
    cn_ctx_free(ctx);
}

static void test_peer_killed_mid_stream(void **state)
{
    (void)state;
    cn_portal_t c;
    assert_int_equal(cn_spawn("c", NULL, &c, T_MS), 0);
    cn_result_t r;
    assert_int_equal(cn_call(c, "getpid", NULL, &r, T_MS), 0);
    pid_t pid = (pid_t)r.value.via.i64;
    cn_result_free(&r);
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(c, "doubler", NULL, NULL, &s);
    msgpack_object v = uint_obj(1);
    assert_int_equal(cn_stream_send(s, &v, T_MS), 0);
    cn_result_t m;
    assert_int_equal(cn_stream_recv(s, &m, T_MS), 0);
    cn_result_free(&m);
    int64_t t0 = ms_now();
    kill(pid, SIGKILL);
    int rc = cn_stream_recv(s, &m, T_MS);
    int64_t waited = ms_now() - t0;
    assert_int_equal(rc, CN_EDEAD);
    assert_non_null(strstr(m.error.message, "(c) exited on signal 9"));
    assert_non_null(strstr(cn_stream_last_error(s), "(c) exited on signal 9"));
    cn_result_free(&m);
    print_message("recv woke %lld ms after kill -9\n", (long long)waited);
    assert_true(waited <= 100 * suite_time_scale());
    cn_ctx_free(ctx);
}

/* What was sent before an end is taken first when the end is the
 * peer's (its death here), but a cancel means stop: once this side
 * cancelled the context, its stream hands out nothing more, however much
 * is buffered (a consumer went on through a whole window after it). */
static void test_buffered_messages_after_a_cancel_and_a_death(void **state)
{
    (void)state;
    cn_portal_t c;
    assert_int_equal(cn_spawn("bursty", NULL, &c, T_MS), 0);
    for (int kill9 = 0; kill9 < 2; kill9++) {
        cn_ctx_t *ctx;
        cn_result_t st, m;
        assert_int_equal(cn_open(c, "burst", NULL, &ctx, &st, T_MS), 0);
        pid_t pid = (pid_t)st.value.via.u64;
        cn_result_free(&st);
        cn_stream_t *s;
        cn_stream_opts_t o = {.window = 4};
        assert_int_equal(cn_ctx_stream(ctx, &o, &s), 0);
        cn_stream_stats_t sst;
        for (int i = 0; i < 1000 && (cn_stream_stats(s, &sst), sst.buffered < 4); i++)
            usleep(1000);
        assert_int_equal(sst.buffered, 4); /* all four are here */
        int rc;
        if (kill9) {
            kill(pid, SIGKILL);
            for (uint64_t i = 0; i < 4; i++) { /* sent before it died: taken */
                assert_int_equal(cn_stream_recv(s, &m, T_MS), 0);
                assert_int_equal(m.value.via.u64, i);
                cn_result_free(&m);
            }
            rc = cn_stream_recv(s, &m, T_MS);
            assert_int_equal(rc, CN_EDEAD);
        } else {
            assert_int_equal(cn_ctx_cancel(ctx, T_MS), 0);
            rc = cn_stream_recv(s, &m, T_MS);
            assert_int_equal(rc, CN_ECANCELED); /* not message 0 */
            assert_non_null(strstr(m.error.message, "this context was cancelled: cn_ctx_cancel"));
            assert_non_null(strstr(cn_stream_last_error(s), "cancelled: cn_ctx_cancel"));
            cn_result_free(&m);
            msgpack_object v = uint_obj(9);
            assert_int_equal(cn_stream_send(s, &v, T_MS), CN_ECANCELED); /* both ways */
            rc = cn_stream_recv(s, &m, T_MS); /* and stays so */
            assert_int_equal(rc, CN_ECANCELED);
        }
        cn_result_free(&m);
        cn_ctx_free(ctx);
    }
}

struct waiter {
    cn_stream_t *s;
    cn_ctx_t *ctx;
    int op; /* 'r' recv, 's' send, 'R' cn_ctx_result */
    int rc;
    char why[256];
    _Atomic pid_t tid;
};

static void *wait_on(void *p)
{
    struct waiter *w = p;
    w->tid = gettid();
    cn_result_t m;
    msgpack_object v = uint_obj(7);
    w->rc = w->op == 'r' ? cn_stream_recv(w->s, &m, 60000)
            : w->op == 's' ? cn_stream_send(w->s, &v, 60000)
                           : cn_ctx_result(w->ctx, &m, 60000);
    if (w->op == 'R')
        snprintf(w->why, sizeof(w->why), "%s", m.error.message ? m.error.message : "");
    else if (w->rc < 0)
        snprintf(w->why, sizeof(w->why), "%s", cn_stream_last_error(w->s));
    if (w->op != 's')
        cn_result_free(&m);
    return NULL;
}

/* A value too big for a message: CN_EMSGSIZE, and the limit in words. */
static void test_a_value_too_big_says_the_limit(void **state)
{
    (void)state;
    cn_stream_t *s;
    msgpack_object n = uint_obj(4);
    cn_ctx_t *ctx = open_stream(a, "deaf", &n, NULL, &s);
    size_t size = 17u << 20;
    char *big = calloc(1, size);
    assert_non_null(big);
    msgpack_object v = {.type = MSGPACK_OBJECT_BIN, .via.bin = {(uint32_t)size, big}};
    assert_int_equal(cn_stream_send(s, &v, T_MS), CN_EMSGSIZE);
    assert_non_null(strstr(cn_stream_last_error(s), "larger than the 16 MiB a message may hold"));
    free(big);
    cn_ctx_free(ctx);
}

/* One thread at a time receives on a stream: a second, meanwhile, is told
 * CN_EBUSY, where two readers took the same messages or lost some. */
static void test_a_second_receiver_is_refused(void **state)
{
    (void)state;
    cn_stream_t *s;
    msgpack_object n = uint_obj(0);
    cn_ctx_t *ctx = open_stream(a, "deaf", &n, NULL, &s); /* never sends */
    struct waiter w = {s, ctx, 'r', 1, "", 0};
    pthread_t th;
    pthread_create(&th, NULL, wait_on, &w);
    /* Not polled with recv meanwhile: a poll that holds the stream as the
     * thread arrives makes the thread the second receiver (CI, TSan). */
    while (w.tid == 0)
        usleep(1000);
    wait_asleep(w.tid); /* in its recv */
    cn_result_t m;
    int rc = cn_stream_recv(s, &m, 0);
    assert_int_equal(rc, CN_EBUSY);
    assert_string_equal(cn_stream_last_error(s),
                        "another thread is receiving on this stream: one receiver at a time");
    cn_result_free(&m);
    assert_int_equal(cn_ctx_cancel(ctx, T_MS), 0); /* its recv ends too */
    pthread_join(th, NULL);
    assert_true(w.rc < 0 && w.rc != CN_EBUSY);
    cn_ctx_free(ctx);
}

/* cn_ctx_free while other threads still wait on the context: misuse, but
 * their waits end with CN_ECANCELED, saying why, and nothing is touched
 * after it is freed (ASan) nor does anything hang. */
static void test_free_while_others_wait(void **state)
{
    (void)state;
    for (int k = 0; k < 3; k++) {
        cn_stream_t *s;
        msgpack_object n = uint_obj(k == 1 ? 0 : 2); /* 's': a window of 2, never read */
        cn_ctx_t *ctx = open_stream(a, "deaf", &n, NULL, &s);
        msgpack_object v = uint_obj(1);
        if (k == 1) /* the sender waits for credit: the deaf end never opens */
            assert_int_equal(cn_stream_send(s, &v, 0), CN_ETIMEDOUT);
        struct waiter w = {s, ctx, "rsR"[k], 1, "", 0};
        pthread_t th;
        pthread_create(&th, NULL, wait_on, &w);
        while (w.tid == 0)
            usleep(1000);
        wait_asleep(w.tid); /* it is waiting */
        int64_t t0 = ms_now();
        cn_ctx_free(ctx);
        pthread_join(th, NULL);
        print_message("%c: %s (%s) %lld ms after the free began\n", w.op, cn_err_name(w.rc),
                      w.why, (long long)(ms_now() - t0));
        assert_int_equal(w.rc, CN_ECANCELED);
        assert_non_null(strstr(w.why, "the context was freed (cn_ctx_free) while this thread waited"));
        assert_true(ms_now() - t0 < 2000);
    }
}

struct sender {
    cn_stream_t *s;
    int rc;
    char why[256];
};

static void *send_once(void *p)
{
    struct sender *x = p;
    msgpack_object v = uint_obj(1);
    x->rc = cn_stream_send(x->s, &v, 300);
    snprintf(x->why, sizeof(x->why), "%s", cn_stream_last_error(x->s));
    return NULL;
}

/* A sender and a receiver on two threads each read why their own call
 * failed: one buffer per stream said whichever failed last, to both. */
static void test_each_thread_reads_its_own_error(void **state)
{
    (void)state;
    cn_stream_t *s;
    msgpack_object n = uint_obj(0); /* the deaf end never opens: no credit */
    cn_ctx_t *ctx = open_stream(a, "deaf", &n, NULL, &s);
    struct sender x = {s, 1, ""};
    pthread_t th;
    pthread_create(&th, NULL, send_once, &x);
    cn_result_t m;
    assert_int_equal(cn_stream_recv(s, &m, 100), CN_ETIMEDOUT); /* the send still waits */
    pthread_join(th, NULL); /* and fails after this recv did */
    assert_int_equal(x.rc, CN_ETIMEDOUT);
    assert_non_null(strstr(x.why, "no credit within 300 ms"));
    assert_string_equal(cn_stream_last_error(s), "nothing received within 100 ms");
    cn_ctx_free(ctx);
}

/* Takes the subscriber's next value; checks it and what was missed. */
static void expect(cn_sub_t *sub, uint64_t value, uint64_t missed)
{
    cn_result_t m;
    uint64_t skipped = 99;
    assert_int_equal(cn_sub_recv(sub, &m, &skipped, T_MS), 0);
    assert_int_equal(m.value.via.u64, value);
    assert_int_equal(skipped, missed);
    cn_result_free(&m);
}

/* A hub owns its stream's receiving side: a second hub, or a recv beside
 * it, would see nothing or take what its subscribers should, silently. */
static void test_a_hubs_stream_is_its_own(void **state)
{
    (void)state;
    cn_stream_t *s;
    msgpack_object n = uint_obj(5);
    cn_ctx_t *ctx = open_stream(a, "counter", &n, NULL, &s);
    cn_bcast_t *b, *b2 = (cn_bcast_t *)&b;
    assert_int_equal(cn_bcast_new(s, 8, &b), 0);
    assert_int_equal(cn_bcast_new(s, 8, &b2), CN_EBUSY);
    assert_null(b2);
    assert_non_null(strstr(cn_stream_last_error(s), "has a hub already"));
    cn_result_t m;
    assert_int_equal(cn_stream_recv(s, &m, 0), CN_EBUSY);
    assert_non_null(strstr(cn_stream_last_error(s), "receive with cn_sub_recv"));
    cn_sub_t *sub;
    assert_int_equal(cn_bcast_subscribe(b, &sub), 0);
    for (uint64_t i = 0; i < 5; i++)
        expect(sub, i, 0);
    cn_sub_free(sub);
    cn_bcast_free(b);
    cn_ctx_free(ctx);
}

static void test_broadcast_with_a_lagging_consumer(void **state)
{
    (void)state;
    cn_stream_t *s;
    msgpack_object n = uint_obj(200);
    cn_ctx_t *ctx = open_stream(a, "counter", &n, NULL, &s);
    cn_bcast_t *b;
    cn_sub_t *fast, *slow;
    assert_int_equal(cn_bcast_new(s, 8, &b), 0);
    assert_int_equal(cn_bcast_subscribe(b, &fast), 0);
    assert_int_equal(cn_bcast_subscribe(b, &slow), 0);

    expect(slow, 0, 0); /* each sees every message */
    expect(fast, 0, 0);
    for (uint64_t i = 1; i <= 20; i++)
        expect(fast, i, 0);
    /* slow is 20 behind with room for 8: it skips to the newest, 20, and
     * learns it missed 1..19. */
    expect(slow, 20, 19);
    expect(slow, 21, 0);
    expect(fast, 21, 0);
    /* A late subscriber starts at the next message. */
    cn_sub_t *late;
    assert_int_equal(cn_bcast_subscribe(b, &late), 0);
    expect(late, 22, 0);
    /* Read round-robin, they keep up: each gets the rest in order, then
     * the end of stream. */
    cn_sub_t *subs[] = {fast, slow, late};
    uint64_t want[] = {22, 22, 23};
    int done = 0;
    while (done < 3) {
        done = 0;
        for (int k = 0; k < 3; k++) {
            cn_result_t m;
            uint64_t missed;
            int rc = cn_sub_recv(subs[k], &m, &missed, T_MS);
            if (rc == 0) {
                assert_int_equal(m.value.via.u64, want[k]);
                assert_int_equal(missed, 0);
                want[k]++;
            } else {
                assert_int_equal(rc, CN_EOF);
                assert_int_equal(want[k], 200);
                done++;
            }
            cn_result_free(&m);
        }
    }
    for (int k = 0; k < 3; k++)
        cn_sub_free(subs[k]);
    cn_bcast_free(b);
    cn_result_t res;
    assert_int_equal(cn_ctx_result(ctx, &res, T_MS), 0);
    cn_result_free(&res);
    cn_ctx_free(ctx);
}

struct consumer {
    pthread_t th;
    cn_sub_t *sub;
    int pause_every; /* sleep now and then: this one lags */
    uint64_t got, missed, last;
    int rc, out_of_order;
};

static void *consume(void *p)
{
    struct consumer *c = p;
    cn_result_t m;
    uint64_t missed;
    int64_t prev = -1;
    while ((c->rc = cn_sub_recv(c->sub, &m, &missed, T_MS)) == 0) {
        if ((int64_t)m.value.via.u64 != prev + 1 + (int64_t)missed)
            c->out_of_order++;
        prev = (int64_t)m.value.via.u64;
        c->got++;
        c->missed += missed;
        cn_result_free(&m);
        if (c->pause_every && c->got % (uint64_t)c->pause_every == 0)
            usleep(20000);
    }
    c->last = (uint64_t)prev;
    cn_result_free(&m);
    return NULL;
}

static void test_broadcast_threads(void **state)
{
    (void)state;
    enum { COUNT = 5000 };
    cn_stream_t *s;
    msgpack_object n = uint_obj(COUNT);
    cn_bcast_t *b;
    cn_ctx_t *ctx = open_stream(a, "counter", &n, NULL, &s);
    assert_int_equal(cn_bcast_new(s, 64, &b), 0);
    struct consumer cs[3] = {{.pause_every = 0}, {.pause_every = 0}, {.pause_every = 500}};
    for (int k = 0; k < 3; k++)
        assert_int_equal(cn_bcast_subscribe(b, &cs[k].sub), 0);
    for (int k = 0; k < 3; k++)
        pthread_create(&cs[k].th, NULL, consume, &cs[k]);
    for (int k = 0; k < 3; k++) {
        pthread_join(cs[k].th, NULL);
        print_message("consumer %d: got %llu, missed %llu\n", k, (unsigned long long)cs[k].got,
                      (unsigned long long)cs[k].missed);
        assert_int_equal(cs[k].rc, CN_EOF);
        assert_int_equal(cs[k].out_of_order, 0);
        assert_int_equal(cs[k].got + cs[k].missed, COUNT); /* all accounted for */
        assert_int_equal(cs[k].last, COUNT - 1);
        cn_sub_free(cs[k].sub);
    }
    assert_true(cs[2].missed > 0); /* the slow one did lag */
    cn_bcast_free(b);
    cn_ctx_free(ctx);
}

/* The thread of this process named `comm`, or 0. */
static pid_t thread_named(const char *comm)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    pid_t found = 0;
    while (d && found == 0 && (e = readdir(d)) != NULL) {
        char path[64], name[32] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        if (f && fgets(name, sizeof(name), f) && strncmp(name, comm, strlen(comm)) == 0 &&
            name[strlen(comm)] == '\n')
            found = (pid_t)atoi(e->d_name);
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

static pid_t pid_of(cn_portal_t p)
{
    cn_result_t r;
    assert_int_equal(cn_call(p, "getpid", NULL, &r, T_MS), 0);
    pid_t pid = (pid_t)r.value.via.i64;
    cn_result_free(&r);
    return pid;
}

/* Waits up to T_MS for thread or process `tid` to have `policy`. */
static int policy_becomes(pid_t tid, int policy)
{
    for (int64_t deadline = ms_now() + T_MS; ms_now() < deadline; usleep(1000))
        if (sched_getscheduler(tid) == policy)
            return 1;
    return sched_getscheduler(tid) == policy;
}

static _Atomic int blob_stop;

/* Streams 16 KiB messages into "drain" on `a` until blob_stop. */
static void *blob_sender(void *arg)
{
    cn_stream_t *s = arg;
    static char blob[16384];
    msgpack_object v = {.type = MSGPACK_OBJECT_BIN};
    v.via.bin.ptr = blob;
    v.via.bin.size = sizeof(blob);
    while (!atomic_load(&blob_stop))
        if (cn_stream_send(s, &v, T_MS) != 0)
            return (void *)1;
    return NULL;
}

/* While a broker writes large batches it runs as SCHED_BATCH, so that
 * waking it does not preempt the sender (actor.c, "The broker's
 * scheduling"), and it is SCHED_OTHER again soon after they stop; a
 * process it starts meanwhile does not inherit SCHED_BATCH. */
static void test_bulk_writes_batch_the_broker(void **state)
{
    (void)state;
    pid_t broker = thread_named("cn-broker");
    assert_true(broker > 0);
    assert_true(policy_becomes(broker, SCHED_OTHER));
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(a, "drain", NULL, NULL, &s);
    pthread_t th;
    atomic_store(&blob_stop, 0);
    assert_int_equal(pthread_create(&th, NULL, blob_sender, s), 0);
    int batch = policy_becomes(broker, SCHED_BATCH);
    cn_portal_t b = {0};
    int spawned = batch ? cn_spawn("b", NULL, &b, T_MS) : -1;
    int still = sched_getscheduler(broker) == SCHED_BATCH;
    atomic_store(&blob_stop, 1);
    void *failed;
    pthread_join(th, &failed);
    assert_true(batch);
    assert_null(failed);
    assert_int_equal(spawned, 0);
    /* b was started by the broker while it wrote bulk */
    print_message("broker batch while spawning: %s\n", still ? "yes" : "no (a stall)");
    assert_int_equal(sched_getscheduler(pid_of(b)), SCHED_OTHER);
    assert_int_equal(cn_stream_close(s), 0);
    cn_result_t r;
    assert_int_equal(cn_ctx_result(ctx, &r, T_MS), 0);
    assert_true(r.value.via.u64 > 0);
    cn_result_free(&r);
    cn_ctx_free(ctx);
    assert_true(policy_becomes(broker, SCHED_OTHER)); /* the writes stopped */
    assert_int_equal(cn_cancel(b, T_MS), 0);
}

/*
 * In bulk mode the broker holds small writes back for a moment to let
 * them grow (actor.c, "Lingering"); what it holds goes out on its own
 * clock even when the sender neither sends again nor sleeps. Each round
 * starts bulk mode with a 16 KiB message, sends a burst of small ones and
 * a nil, then waits for the receiver's answer to the nil polling, without
 * ever sleeping. A round whose tail stayed behind never gets its answer.
 * LINGER_US set to ten seconds makes this fail; the odd rounds, which
 * sleep in cn_stream_recv, then take the ten seconds each instead (the
 * sleep is what should end the linger at once).
 */
static void test_held_back_frames_go_out_on_their_own(void **state)
{
    (void)state;
    enum { ROUNDS = 20, BURST = 2000 };
    msgpack_object win = uint_obj(4096);
    cn_stream_opts_t opts = {.window = 64};
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(a, "tally", &win, &opts, &s);
    wait_peer_open(s);
    static char blob[16384];
    msgpack_object big = {.type = MSGPACK_OBJECT_BIN}, nil = {.type = MSGPACK_OBJECT_NIL};
    big.via.bin.ptr = blob;
    big.via.bin.size = sizeof(blob);
    uint64_t sent = 0;
    int64_t slowest = 0;
    for (int r = 0; r < ROUNDS; r++) {
        assert_int_equal(cn_stream_send(s, &big, T_MS), 0);
        sent++;
        for (uint64_t i = 0; i < BURST; i++) {
            msgpack_object v = uint_obj(i);
            assert_int_equal(cn_stream_send(s, &v, T_MS), 0);
        }
        sent += BURST;
        assert_int_equal(cn_stream_send(s, &nil, T_MS), 0);
        int64_t t0 = ms_now(), deadline = t0 + T_MS;
        cn_result_t m;
        int rc;
        if (r % 2)
            rc = cn_stream_recv(s, &m, T_MS);
        else
            while ((rc = cn_stream_recv(s, &m, 0)) == CN_ETIMEDOUT && ms_now() < deadline)
                sched_yield();
        if (rc != 0)
            fail_msg("round %d: no answer to the nil within %d ms (%s)", r, T_MS, cn_err_name(rc));
        assert_int_equal(m.value.via.u64, sent);
        cn_result_free(&m);
        if (ms_now() - t0 > slowest)
            slowest = ms_now() - t0;
    }
    print_message("slowest answer: %lld ms\n", (long long)slowest);
    assert_int_equal(cn_stream_close(s), 0);
    cn_result_t r;
    assert_int_equal(cn_ctx_result(ctx, &r, T_MS), 0);
    assert_int_equal(r.value.via.u64, sent);
    cn_result_free(&r);
    cn_ctx_free(ctx);
}

/* A broker given another policy keeps it, even when that happens while
 * it writes bulk as SCHED_BATCH: an actor streams bulk, its main thread
 * (its broker) is made SCHED_IDLE halfway, as chrt -p would, and stays
 * SCHED_IDLE through the rest of the stream and after it. The root's
 * broker, reading that bulk, is SCHED_BATCH meanwhile. */
static void test_bulk_leaves_another_policy_alone(void **state)
{
    (void)state;
    cn_portal_t c;
    assert_int_equal(cn_spawn("c", NULL, &c, T_MS), 0);
    pid_t pid = pid_of(c); /* a serve-only child: its broker is its main thread */
    struct sched_param sp = {0};
    int seen_batch = 0, root_batch = 0;
    pid_t broker = thread_named("cn-broker");
    msgpack_object nv[2] = {uint_obj(400), uint_obj(16384)};
    msgpack_object args = {.type = MSGPACK_OBJECT_ARRAY};
    args.via.array.ptr = nv;
    args.via.array.size = 2;
    cn_stream_t *s;
    cn_ctx_t *ctx = open_stream(c, "blobs", &args, NULL, &s);
    unsigned n = 0;
    cn_result_t m;
    int rc;
    while ((rc = cn_stream_recv(s, &m, T_MS)) == 0) {
        if (n < 200 && sched_getscheduler(pid) == SCHED_BATCH)
            seen_batch = 1;
        if (sched_getscheduler(broker) == SCHED_BATCH) /* reading bulk */
            root_batch = 1;
        if (n == 200)
            assert_int_equal(sched_setscheduler(pid, SCHED_IDLE, &sp), 0);
        if (n >= 200)
            assert_int_equal(sched_getscheduler(pid), SCHED_IDLE);
        cn_result_free(&m);
        n++;
    }
    cn_result_free(&m);
    assert_int_equal(rc, CN_EOF);
    assert_int_equal(n, 400);
    assert_true(seen_batch);
    assert_true(root_batch);
    cn_result_t r;
    assert_int_equal(cn_ctx_result(ctx, &r, T_MS), 0);
    cn_result_free(&r);
    cn_ctx_free(ctx);
    usleep(20000); /* past BULK_IDLE_MS: it would have gone to SCHED_OTHER */
    assert_int_equal(sched_getscheduler(pid), SCHED_IDLE);
    assert_int_equal(cn_cancel(c, T_MS), 0);
}

/* ------------------------------------------------------------ main */

static int suite_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_ways_and_end_of_stream),
        cmocka_unit_test(test_results_are_zeroed_even_for_a_null_handle),
        cmocka_unit_test(test_buffered_messages_after_a_cancel_and_a_death),
        cmocka_unit_test(test_backpressure_slow_consumer),
        cmocka_unit_test(test_million_in_order_memory_flat),
        cmocka_unit_test(test_sequence_matrix),
        cmocka_unit_test(test_peer_ignoring_credit_cannot_grow_the_buffer),
        cmocka_unit_test(test_overrun_mode),
        cmocka_unit_test(test_stream_before_started_is_refused),
        cmocka_unit_test(test_error_during_streaming),
        cmocka_unit_test(test_cancel_while_peer_blocked_in_recv),
        cmocka_unit_test(test_cancel_while_blocked_on_backpressure),
        cmocka_unit_test(test_peer_killed_mid_stream),
        cmocka_unit_test(test_broadcast_with_a_lagging_consumer),
        cmocka_unit_test(test_broadcast_threads),
        cmocka_unit_test(test_a_value_too_big_says_the_limit),
        cmocka_unit_test(test_a_second_receiver_is_refused),
        cmocka_unit_test(test_free_while_others_wait),
        cmocka_unit_test(test_each_thread_reads_its_own_error),
        cmocka_unit_test(test_a_hubs_stream_is_its_own),
        cmocka_unit_test(test_bulk_writes_batch_the_broker),
        cmocka_unit_test(test_bulk_leaves_another_policy_alone),
        cmocka_unit_test(test_held_back_frames_go_out_on_their_own),
    };
    return suite_finish(cmocka_run_group_tests_name("stream", tests, setup, NULL));
}

int main(int argc, char **argv)
{
    static const cn_config_t cfg = {.name = "root", .exports = exports, .main = suite_main};
    if (suite_capture_log() < 0)
        return 1;
    return cn_run(argc, argv, &cfg);
}
