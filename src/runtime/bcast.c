/*
 * bcast.c: several local consumers of one incoming stream.
 *
 * A hub takes over a stream's receiving side and keeps the last `capacity`
 * messages in a ring, numbered from 0. Each subscriber has a cursor, the
 * number of the next message it will get. A subscriber at the head pulls
 * the next message off the stream itself (one puller at a time), so the
 * stream is drained as fast as the fastest subscriber and the sender still
 * feels backpressure. A subscriber whose next message has already left the
 * ring has lagged: like tokio's broadcast, it skips ahead, to the newest
 * message, and is told how many it missed.
 *
 * Each delivery is decoded afresh from the kept raw frame, so every
 * subscriber owns its copy; nothing is shared after recv returns.
 *
 * Invariant: seq - capacity <= a message's number < seq for every message
 * in the ring; ring[n % capacity] holds message n.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt.h"

struct cn_bcast {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a new message arrived, or the end */
    cn_stream_t *stream;
    unsigned capacity;
    cn_wire_msg_t **ring;
    uint64_t seq;        /* number of the next message to arrive */
    int pulling;         /* a subscriber is reading the stream now */
    int end_rc;          /* 0, or how the stream ended (CN_EOF, errors) */
    cn_result_t end_res; /* the error object of the end, if any */
    unsigned subs;
};

struct cn_sub {
    cn_bcast_t *b;
    uint64_t next; /* the number of the next message for this subscriber */
};

int cn_bcast_new(cn_stream_t *s, unsigned capacity, cn_bcast_t **out)
{
    if (s == NULL || out == NULL)
        return cn__stream_fail(CN_EINVAL, "no %s (%s is NULL)", s ? "place for the hub" : "stream",
                               s ? "out" : "s");
    *out = NULL;
    if (capacity == 0 || capacity > 65536)
        return cn__stream_fail(CN_EINVAL, "a capacity of %u: it is 1 to 65536 messages", capacity);
    if (cn__stream_claim_hub(s, 1) < 0) /* one hub per stream: a second would see nothing */
        return cn__stream_fail(CN_EBUSY, "this stream has a hub already: subscribe to that one");
    cn_bcast_t *b = calloc(1, sizeof(*b));
    /* An array of pointers: NOLINTNEXTLINE(bugprone-sizeof-expression) */
    if (b == NULL || (b->ring = calloc(capacity, sizeof(*b->ring))) == NULL) {
        free(b);
        cn__stream_claim_hub(s, 0);
        return CN_ENOMEM;
    }
    pthread_mutex_init(&b->mu, NULL);
    cn__cond_init_mono(&b->cv);
    b->stream = s;
    b->capacity = capacity;
    *out = b;
    return 0;
}

void cn_bcast_free(cn_bcast_t *b)
{
    if (b == NULL)
        return;
    for (unsigned i = 0; i < b->capacity; i++)
        cn_wire_msg_free(b->ring[i]);
    cn_result_free(&b->end_res);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b->ring);
    free(b);
}

int cn_bcast_subscribe(cn_bcast_t *b, cn_sub_t **out)
{
    if (b == NULL || out == NULL)
        return cn__stream_fail(CN_EINVAL, "no %s (%s is NULL)", b ? "place for the subscriber" : "hub",
                               b ? "out" : "b");
    cn_sub_t *sub = calloc(1, sizeof(*sub));
    if (sub == NULL)
        return CN_ENOMEM;
    cn__lock(&b->mu);
    sub->b = b;
    sub->next = b->seq; /* from the next message on */
    b->subs++;
    cn__unlock(&b->mu);
    *out = sub;
    return 0;
}

void cn_sub_free(cn_sub_t *sub)
{
    if (sub == NULL)
        return;
    cn__lock(&sub->b->mu);
    sub->b->subs--;
    cn__unlock(&sub->b->mu);
    free(sub);
}

/* Under b->mu, as the puller: reads one message off the stream (dropping
 * the lock meanwhile) into the ring. */
static void pull(cn_bcast_t *b, int64_t timeout_ms)
{
    b->pulling = 1;
    cn__unlock(&b->mu);
    cn_result_t r;
    int rc = cn__stream_recv(b->stream, &r, timeout_ms);
    cn__lock(&b->mu);
    b->pulling = 0;
    if (rc == 0) {
        cn_wire_msg_t **slot = &b->ring[b->seq % b->capacity];
        cn_wire_msg_free(*slot); /* the oldest leaves the ring */
        *slot = r.priv_;         /* keep the message itself */
        r.priv_ = NULL;
        b->seq++;
    } else if (rc != CN_ETIMEDOUT) {
        b->end_rc = rc;
        b->end_res = r;
        memset(&r, 0, sizeof(r));
    }
    cn_result_free(&r);
    pthread_cond_broadcast(&b->cv);
}

int cn_sub_recv(cn_sub_t *sub, cn_result_t *msg, uint64_t *missed, int64_t timeout_ms)
{
    if (msg) /* first: a caller may free it whatever the outcome */
        memset(msg, 0, sizeof(*msg));
    if (sub == NULL || msg == NULL)
        return cn__stream_fail(CN_EINVAL, "no %s (%s is NULL)", sub ? "result" : "subscriber",
                               sub ? "msg" : "sub");
    if (missed)
        *missed = 0;
    cn_bcast_t *b = sub->b;
    int64_t deadline = cn__deadline(timeout_ms);
    int rc = 0;
    cn__lock(&b->mu);
    while (sub->next >= b->seq) { /* nothing new for us yet */
        if (b->end_rc) {
            rc = b->end_rc;
            break;
        }
        int64_t left = deadline == INT64_MAX ? -1 : (deadline - cn__mono_ns()) / 1000000;
        if (deadline != INT64_MAX && left <= 0) {
            rc = CN_ETIMEDOUT;
            break;
        }
        if (!b->pulling)
            pull(b, left);
        else
            cn__cond_wait_until(&b->cv, &b->mu, deadline);
    }
    if (rc == 0) {
        if (b->seq - sub->next > b->capacity) { /* lagged past the ring */
            uint64_t skip = b->seq - 1 - sub->next;
            if (missed)
                *missed = skip;
            sub->next = b->seq - 1; /* to the newest */
        }
        const cn_wire_msg_t *m = b->ring[sub->next % b->capacity];
        cn_wire_msg_t *copy;
        rc = cn_wire_decode_peeked(m->frame, m->frame_len, NULL, &copy); /* decoded once already */
        if (rc == 0) {
            msg->value = copy->body;
            msg->priv_ = copy;
            sub->next++;
        }
    } else if (rc != CN_ETIMEDOUT && b->end_res.error.message) {
        msg->error.origin = strdup(b->end_res.error.origin ? b->end_res.error.origin : "");
        msg->error.fn = strdup(b->end_res.error.fn ? b->end_res.error.fn : "");
        msg->error.message = strdup(b->end_res.error.message);
        msg->error.code = b->end_res.error.code;
    }
    cn__unlock(&b->mu);
    return rc;
}
