/*
 * stream.c: backpressure on a stream, from a slow consumer to a fast producer.
 *
 * The root opens a context, "consume", on a child and streams 40 numbers
 * into it as fast as it can. The consumer opens its end with a window of
 * only 4 messages and takes one every 25 ms, so the producer soon runs out
 * of credit and cn_stream_send blocks until the consumer has made room:
 * nothing is dropped and no buffer grows. The stream goes both ways: the
 * consumer sends a note back every 10 messages, and at the end its total.
 *
 * Before each send the root reads its credit with cn_stream_stats(); a send
 * with none left waits. It prints the first credits, and how long the
 * producer was blocked in all.
 *
 *   make examples && build/examples/stream
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <canopy.h>

#define COUNT 40   /* messages the producer sends */
#define WINDOW 4   /* the consumer's receive window, in messages */
#define SLOW_MS 25 /* the consumer's time per message */
#define TIMEOUT_MS 5000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static msgpack_object uint_obj(uint64_t v)
{
    return (msgpack_object){.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = v};
}

/* ------------------------------------------------------------ the consumer */

/* A context: started, then reads the stream slowly until the producer
 * closes its end. Returns [messages, sum, largest buffer fill]. */
static int consume(cn_call_t *call, const msgpack_object *args, msgpack_packer *out)
{
    (void)args;
    cn_stream_t *s = NULL;
    cn_stream_opts_t opts = {.window = WINDOW}; /* how far the producer may run ahead */
    int rc = cn_started(call, NULL);
    if (rc == 0)
        rc = cn_call_stream(call, &opts, &s); /* grants the producer WINDOW sends */
    if (rc < 0)
        return rc;
    uint64_t n = 0, sum = 0;
    unsigned most = 0;
    cn_result_t m;
    while ((rc = cn_stream_recv(s, &m, TIMEOUT_MS)) == 0) {
        n++;
        sum += m.value.via.u64;
        cn_result_free(&m);
        cn_stream_stats_t st;
        cn_stream_stats(s, &st);
        if (st.buffered > most)
            most = st.buffered;
        if (n % 10 == 0) { /* the other direction: a progress note */
            msgpack_object note = uint_obj(n);
            if ((rc = cn_stream_send(s, &note, TIMEOUT_MS)) < 0)
                break;
        }
        if ((rc = cn_sleep(SLOW_MS)) < 0) /* the slow part; also a cancellation point */
            break;
    }
    cn_result_free(&m); /* the error, when recv failed */
    if (rc != CN_EOF)   /* not the producer's close: cancelled, timed out, ... */
        return cn_call_fail(call, rc, "consumer stopped after %llu messages: %s",
                            (unsigned long long)n, cn_strerror(rc));
    msgpack_object total = uint_obj(sum);
    cn_stream_send(s, &total, TIMEOUT_MS);
    cn_stream_close(s);
    msgpack_pack_array(out, 3);
    msgpack_pack_uint64(out, n);
    msgpack_pack_uint64(out, sum);
    return msgpack_pack_unsigned_int(out, most);
}

/* ------------------------------------------------------------ the producer */

static int root_main(int argc, char **argv)
{
    (void)argc, (void)argv;
    cn_portal_t consumer;
    cn_ctx_t *ctx = NULL;
    cn_stream_t *s;
    cn_result_t started = {0};
    int rc = cn_spawn("consumer", NULL, &consumer, TIMEOUT_MS);
    if (rc == 0)
        rc = cn_open(consumer, "consume", NULL, &ctx, &started, TIMEOUT_MS);
    cn_result_free(&started);
    if (rc == 0) /* our end: the default window, for what comes back */
        rc = cn_ctx_stream(ctx, NULL, &s);
    if (rc != 0) {
        fprintf(stderr, "stream: cannot start the consumer: %s\n", cn_strerror(rc));
        cn_ctx_free(ctx);
        return 1;
    }
    /* The consumer opens its end just after cn_started, so its grant may
     * still be on the way: wait for it, so that the first sends show the
     * window being used up rather than that race. */
    cn_stream_stats_t st;
    for (int ms = 0; cn_stream_stats(s, &st), st.credit <= 0 && ms < TIMEOUT_MS; ms++)
        cn_sleep(1);
    printf("the consumer's window, as our end sees it: %llu messages; it takes one every %d ms\n",
           (unsigned long long)st.peer_window, SLOW_MS);
    int64_t t0 = now_ms(), blocked_ms = 0;
    int waited = 0, first_wait = 0;
    char credits[64] = "";
    for (int i = 1; i <= COUNT && rc == 0; i++) {
        cn_stream_stats(s, &st); /* credit 0: this send has to wait for the consumer */
        if (i <= 8)
            snprintf(credits + strlen(credits), sizeof(credits) - strlen(credits), " %lld",
                     (long long)st.credit);
        msgpack_object v = uint_obj((uint64_t)i);
        int64_t before = now_ms();
        rc = cn_stream_send(s, &v, TIMEOUT_MS); /* blocks while we have no credit */
        if (st.credit <= 0) {
            blocked_ms += now_ms() - before;
            if (waited++ == 0)
                first_wait = i;
        }
    }
    int64_t total_ms = now_ms() - t0;
    if (rc < 0) {
        fprintf(stderr, "stream: send: %s\n", cn_stream_last_error(s));
        cn_ctx_free(ctx);
        return 1;
    }
    cn_stream_close(s); /* the consumer's recv gives CN_EOF after the last one */

    printf("sent %d messages in %lld ms; credit before sends 1-8:%s\n", COUNT, (long long)total_ms,
           credits);
    printf("send #%d was the first to find no credit left\n", first_wait);
    printf("the producer was blocked for %lld ms (%d sends waited for credit)\n",
           (long long)blocked_ms, waited);

    cn_result_t m; /* what came back the other way: the progress notes, then the total */
    while (cn_stream_recv(s, &m, TIMEOUT_MS) == 0) {
        printf("from the consumer: %llu\n", (unsigned long long)m.value.via.u64);
        cn_result_free(&m);
    }
    cn_result_free(&m);
    cn_result_t end;
    rc = cn_ctx_result(ctx, &end, TIMEOUT_MS);
    if (rc == 0 && end.value.type == MSGPACK_OBJECT_ARRAY && end.value.via.array.size == 3) {
        const msgpack_object *e = end.value.via.array.ptr;
        printf("consumer took %llu messages, sum %llu; at most %llu more waited in its buffer "
               "(window %d)\n",
               (unsigned long long)e[0].via.u64, (unsigned long long)e[1].via.u64,
               (unsigned long long)e[2].via.u64, WINDOW);
    } else {
        printf("consumer failed: %s: %s\n", cn_strerror(rc),
               end.error.message ? end.error.message : "");
    }
    cn_result_free(&end);
    cn_ctx_free(ctx); /* frees the stream too */
    return rc == 0 ? 0 : 1;
}

static const cn_export_t exports[] = {{"consume", consume}, {NULL, NULL}};

int main(int argc, char **argv)
{
    cn_config_t cfg = {.name = "stream", .exports = exports, .main = root_main};
    int rc = cn_run(argc, argv, &cfg);
    if (rc < 0)
        fprintf(stderr, "stream: %s\n", cn_strerror(rc));
    return rc < 0 ? 1 : rc;
}
