/*
 * cancel.c: errors that cross actors, and cancellation, three ways.
 *
 * 1. A remote function fails with cn_call_fail(): the caller gets
 *    CN_EREMOTE and an error object that says where it came from (the
 *    origin actor's path), which function, the message and the code.
 * 2. A long-running context is cancelled with cn_ctx_cancel(). Its function
 *    does work with no cancellation point in it (no canopy call), so it
 *    polls cn_call_cancelled() between steps, sees the request, and stops;
 *    the opener sees the cancel acknowledged, and who asked.
 * 3. A child that naps in cn_sleep() is cancelled with cn_cancel(), which
 *    returns once it has exited and been reaped; a later call to it fails
 *    at once with CN_EDEAD instead of timing out.
 *
 *   make examples && build/examples/cancel
 *   CANOPY_LOG_LEVEL=cancel build/examples/cancel   # only the cancellations
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep under -std=c11 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <canopy.h>

#define TIMEOUT_MS 5000
#define STEP_MS 10    /* one step of the context's work */
#define MAX_STEPS 500 /* so that it ends by itself (5 s) if never cancelled */

/* ------------------------------------------------------------ the worker */

/* Fails on purpose: the message is what the caller will print. */
static int parse(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    if (args == NULL || args->type != MSGPACK_OBJECT_STR)
        return cn_call_fail(call, CN_EINVAL, "parse wants a string");
    return cn_call_fail(call, CN_EINVAL, "'%.*s' is not a number", (int)args->via.str.size,
                        args->via.str.ptr);
}

/* A context that works in steps with no canopy call inside, so nothing
 * would interrupt it: it checks cn_call_cancelled() between steps. */
static int crunch(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    int rc = cn_started(call, NULL); /* the opener's cn_open returns now */
    if (rc < 0)
        return rc;
    int steps = 0;
    while (steps < MAX_STEPS && !cn_call_cancelled(call)) {
        nanosleep(&(struct timespec){0, STEP_MS * 1000000L}, NULL); /* stands for real work */
        steps++;
    }
    if (steps == MAX_STEPS) /* never cancelled: a normal result */
        return msgpack_pack_int(out, steps);
    cn_cancel_info_t ci;
    cn_call_cancel_info(call, &ci);
    cn_log(CN_LOG_INFO, "crunch: cancelled after %d steps (%s)", steps, ci.by);
    /* Returning CN_ECANCELED is what acknowledges the cancel. */
    return cn_call_fail(call, CN_ECANCELED, "crunch stopped after %d steps: %s", steps, ci.by);
}

/* The sleeper's entry: naps until cancelled. cn_sleep is its cancellation
 * point: it returns CN_ECANCELED as soon as the parent cancels this actor.
 * The process exits as soon as its own children are gone, without waiting
 * for this function to return, so it must not count on code after the
 * loop running: cleanup that matters belongs before the next nap. */
static int sleeper_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    while (cn_sleep(1000) == 0)
        cn_log(CN_LOG_DEBUG, "sleeper: another nap");
    return 0;
}

/* ------------------------------------------------------------ the root */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int root_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_portal_t worker = {0}, sleeper = {0};
    cn_spawn_opts_t so = {.entry = "sleeper"};
    int rc = cn_spawn("worker", NULL, &worker, TIMEOUT_MS);
    if (rc == 0)
        rc = cn_spawn("sleeper", &so, &sleeper, TIMEOUT_MS);
    if (rc < 0) {
        fprintf(stderr, "cancel: cannot spawn: %s\n", cn_strerror(rc));
        return 1;
    }

    /* 1. A remote error, with where it came from. */
    msgpack_object arg = {.type = MSGPACK_OBJECT_STR, .via.str = {.size = 5, .ptr = "forty"}};
    cn_result_t r;
    rc = cn_call(worker, "parse", &arg, &r, TIMEOUT_MS);
    printf("1. parse(\"forty\") returned %s\n", cn_err_name(rc));
    if (rc == CN_EREMOTE)
        printf("   origin %s, function %s, code %s, message: %s\n", r.error.origin, r.error.fn,
               cn_err_name(r.error.code), r.error.message);
    cn_result_free(&r);
    if (rc != CN_EREMOTE)
        return 1;

    /* 2. Cancel a running context; its function sees it and stops. */
    cn_ctx_t *ctx;
    cn_result_t started, end;
    if ((rc = cn_open(worker, "crunch", NULL, &ctx, &started, TIMEOUT_MS)) != 0) {
        fprintf(stderr, "cancel: open crunch: %s\n", cn_strerror(rc));
        cn_result_free(&started);
        return 1;
    }
    cn_result_free(&started);
    cn_sleep(200); /* let it get some work done */
    rc = cn_ctx_cancel(ctx, 2000);
    cn_cancel_info_t ci;
    cn_ctx_cancel_info(ctx, &ci);
    printf("2. cn_ctx_cancel returned %s; cancel state %s (%s)\n", cn_err_name(rc),
           cn_cancel_state_name(ci.state), ci.by);
    int end_rc = cn_ctx_result(ctx, &end, TIMEOUT_MS);
    printf("   the context ended with %s: %s\n", cn_err_name(end_rc),
           end.error.message ? end.error.message : "(no message)");
    cn_result_free(&end);
    cn_ctx_free(ctx);
    if (rc < 0 || end_rc != CN_ECANCELED)
        return 1;

    /* 3. Cancel a child: it is gone once cn_cancel returns. */
    int64_t t0 = now_ms();
    rc = cn_cancel(sleeper, TIMEOUT_MS);
    printf("3. cn_cancel(sleeper) returned %s after %lld ms\n", cn_err_name(rc),
           (long long)(now_ms() - t0));
    int rc2 = cn_call(sleeper, "parse", &arg, &r, TIMEOUT_MS);
    printf("   a call to it now: %s: %s\n", cn_err_name(rc2),
           r.error.message ? r.error.message : "");
    cn_result_free(&r);
    return rc == 0 && rc2 == CN_EDEAD ? 0 : 1;
}

static const cn_export_t exports[] = {{"parse", parse}, {"crunch", crunch}, {NULL, NULL}};
static const cn_entry_t entries[] = {{"sleeper", sleeper_main}, {NULL, NULL}};

int main(int argc, char **argv)
{
    cn_config_t cfg = {.name = "cancel", .exports = exports, .entries = entries, .main = root_main};
    int rc = cn_run(argc, argv, &cfg);
    if (rc < 0)
        fprintf(stderr, "cancel: %s\n", cn_strerror(rc));
    return rc < 0 ? 1 : rc;
}
