/*
 * evclasses.c: which events two clients of one tree get, for test_tui.sh.
 * Attaches twice to the tree argv[1]: a console that asks for the feed
 * without the contexts' events (CN_EVENTS_NO_CONTEXTS, as the TUI does)
 * and a plain subscriber (everything). Reads both for argv[2] ms, then
 * prints, for each, how many events it got and how many were contexts'
 * own (ctx-*, stall, resume):
 *   console: N events, C of contexts
 *   subscriber: N events, C of contexts
 * Exits 1 if it could not attach.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "canopy/client.h"

static int is_ctx(const char *kind)
{
    return strncmp(kind, "ctx-", 4) == 0 || strcmp(kind, "stall") == 0 ||
           strcmp(kind, "resume") == 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: evclasses TREE MS\n");
        return 2;
    }
    cn_tree_info_t t;
    cn_client_t *c[2];
    if (cn_client_find(argv[1], &t) < 0 || cn_client_connect(t.path, &c[0], 5000) < 0 ||
        cn_client_connect(t.path, &c[1], 5000) < 0 ||
        cn_client_console(c[0], CN_EVENTS_NO_CONTEXTS, 5000) < 0 ||
        cn_client_subscribe(c[1], 5000) < 0) {
        fprintf(stderr, "evclasses: %s\n", cn_client_error());
        return 1;
    }
    long n[2] = {0, 0}, ctx[2] = {0, 0}, end = now_ms() + atol(argv[2]);
    while (now_ms() < end) {
        struct pollfd p[2] = {{cn_client_fd(c[0]), POLLIN, 0}, {cn_client_fd(c[1]), POLLIN, 0}};
        poll(p, 2, 50);
        for (int i = 0; i < 2; i++) {
            cn_event_t ev;
            while (cn_client_event(c[i], &ev, 0) == 0) {
                n[i]++;
                ctx[i] += is_ctx(ev.kind);
            }
        }
    }
    printf("console: %ld events, %ld of contexts\n", n[0], ctx[0]);
    printf("subscriber: %ld events, %ld of contexts\n", n[1], ctx[1]);
    cn_client_close(c[0]);
    cn_client_close(c[1]);
    return 0;
}
