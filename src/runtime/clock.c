/*
 * clock.c: periodic clocks on the broker's loop that leave its waits
 * untimed.
 *
 * While a libuv timer is active, libuv gives every epoll_wait of the loop
 * a timeout, and a timed wait costs the kernel more than an untimed one
 * (about half a microsecond each here). A busy broker waits tens of
 * thousands of times a second, so a clock that runs for as long as the
 * actor is busy (the event batches' tick, the attach server's check of its
 * clients) is a timerfd the loop watches instead: it is set once when the
 * clock starts, and the waits stay untimed. Short one-off timeouts (a
 * reap, a request) stay libuv timers. docs/performance.md has the figures.
 *
 * A busy broker's loop turns thousands of times a second anyway, and a
 * timer that fires between two turns is one more wake-up of a thread
 * that was about to wake, which on two vCPUs also moves the busy
 * threads about. So a lazy clock (the event batches') ticks from the
 * first turn that finds it due, after that turn's I/O, and sets its
 * timer a period on: the timer fires only when the broker sleeps
 * through a tick. With a subscriber attached to a busy tree, the
 * brokers' clocks fired about 18 times a second; lazy, about 4.
 */
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <sys/timerfd.h>

#include "rt.h"

static void on_clock(uv_poll_t *p, int status, int events)
{
    (void)status, (void)events;
    /* not p->data: a handle with data is a stream's (actor.c, close_leftover) */
    cn__clock_t *c = (cn__clock_t *)(void *)((char *)p - offsetof(cn__clock_t, poll));
    uint64_t ticks;
    if (read(c->fd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks))
        return; /* stopped, or a turn ticked it, meanwhile */
    c->due_ms = uv_now(&cn__rt.loop) + c->period_ms;
    c->fn(c);
}

static int arm(cn__clock_t *c, uint64_t first_us, uint64_t period_ms)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(first_us / 1000000);
    its.it_value.tv_nsec = (long)(first_us % 1000000) * 1000L;
    its.it_interval.tv_sec = (time_t)(period_ms / 1000);
    its.it_interval.tv_nsec = (long)(period_ms % 1000) * 1000000L;
    return c->fd >= 0 ? timerfd_settime(c->fd, 0, &its, NULL) : -1;
}

/* A lazy clock, after each turn's I/O: the loop time was read when its
 * wait ended. Setting the timer again also clears an expiry it had. */
static void on_busy(uv_check_t *h)
{
    cn__clock_t *c = (cn__clock_t *)(void *)((char *)h - offsetof(cn__clock_t, busy));
    uint64_t now = uv_now(&cn__rt.loop);
    if (!c->on || now < c->due_ms)
        return;
    arm(c, c->period_ms * 1000, c->period_ms);
    c->due_ms = now + c->period_ms;
    c->fn(c);
}

int cn__clock_init(cn__clock_t *c, void (*fn)(cn__clock_t *))
{
    memset(c, 0, sizeof(*c));
    c->fn = fn;
    c->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (c->fd < 0)
        return CN_EMFILE;
    if (uv_poll_init(&cn__rt.loop, &c->poll, c->fd) != 0) {
        close(c->fd);
        c->fd = -1;
        return CN_ENOMEM;
    }
    uv_poll_start(&c->poll, UV_READABLE, on_clock);
    uv_unref((uv_handle_t *)&c->poll); /* a clock alone keeps no loop running */
    return 0;
}

int cn__clock_lazy(cn__clock_t *c)
{
    if (c->fd < 0 || uv_check_init(&cn__rt.loop, &c->busy) != 0)
        return CN_ENOMEM;
    uv_unref((uv_handle_t *)&c->busy);
    c->lazy = 1;
    return 0;
}

void cn__clock_set(cn__clock_t *c, uint64_t period_ms)
{
    if (arm(c, period_ms * 1000, period_ms) != 0)
        return;
    c->on = period_ms > 0;
    c->period_ms = period_ms;
    c->due_ms = uv_now(&cn__rt.loop) + period_ms;
    if (c->lazy && c->on)
        uv_check_start(&c->busy, on_busy);
    else if (c->lazy)
        uv_check_stop(&c->busy);
}

void cn__clock_once_us(cn__clock_t *c, uint64_t us)
{
    if (arm(c, us, 0) == 0)
        c->on = us > 0;
}

void cn__clock_close(cn__clock_t *c)
{
    if (c->fd < 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&c->poll))
        uv_close((uv_handle_t *)&c->poll, NULL); /* stops the watch at once */
    if (c->lazy && !uv_is_closing((uv_handle_t *)&c->busy))
        uv_close((uv_handle_t *)&c->busy, NULL);
    c->lazy = 0;
    close(c->fd);
    c->fd = -1;
    c->on = 0;
}
