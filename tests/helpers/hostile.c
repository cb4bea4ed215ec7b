/*
 * hostile.c: a misbehaving attach client, for test_inspect.sh. Connects to
 * the socket argv[1] and does argv[2]:
 *   garbage   sends bytes that are not a frame, then waits to be cut off
 *   huge      sends a length prefix of 2 GiB, then waits to be cut off
 *   half      sends HELLO's first half, then nothing, until cut off
 *   nohello   connects and sends nothing, until cut off
 *   trickle MS  sends HELLO one byte every MS ms, until cut off
 *   many N    opens N connections at once and holds them for argv[4] ms
 *   slowsub MS  subscribes to events, reads nothing for MS ms, then reads
 *             until a "dropped" marker comes; prints its count
 * Prints "cut off" (or, for many, how many the root kept) and exits 0;
 * exits 1 if the root did not do what it should within 30 s.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "canopy/client.h"
#include "wire/wire.h"

static int dial(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    return fd;
}

/* Waits until the root closes fd (EOF or reset); 0 if it did in time. */
static int wait_cut(int fd, int ms)
{
    char buf[4096];
    struct pollfd pf = {fd, POLLIN, 0};
    while (poll(&pf, 1, ms) > 0) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *act = argv[2];
    if (strcmp(act, "many") == 0) {
        int n = argc > 3 ? atoi(argv[3]) : 1000, hold = argc > 4 ? atoi(argv[4]) : 1000;
        int *fds = calloc((size_t)n, sizeof(int)), open_n = 0;
        for (int i = 0; i < n; i++)
            if ((fds[i] = dial(argv[1])) >= 0)
                open_n++;
        usleep((useconds_t)hold * 1000);
        int alive = 0; /* the root closes those it refused */
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0)
                continue;
            char c;
            struct pollfd pf = {fds[i], POLLIN, 0};
            if (poll(&pf, 1, 0) == 0 || recv(fds[i], &c, 1, MSG_DONTWAIT) > 0)
                alive++;
            close(fds[i]);
        }
        printf("opened %d, kept %d\n", open_n, alive);
        free(fds);
        return 0;
    }
    if (strcmp(act, "slowsub") == 0) {
        cn_client_t *c;
        if (cn_client_connect(argv[1], &c, 5000) != 0 || cn_client_subscribe(c, 5000) != 0) {
            printf("subscribe: %s\n", cn_client_error());
            return 1;
        }
        printf("subscribed\n");
        fflush(stdout);
        usleep((useconds_t)(argc > 3 ? atoi(argv[3]) : 3000) * 1000);
        cn_event_t ev;
        unsigned long seen = 0;
        while (cn_client_event(c, &ev, 10000) == 0) {
            seen++;
            if (strcmp(ev.kind, "dropped") == 0) {
                printf("dropped %llu after %lu events\n", (unsigned long long)ev.count, seen);
                cn_client_close(c);
                return 0;
            }
        }
        printf("no dropped marker after %lu events\n", seen);
        cn_client_close(c);
        return 1;
    }
    int fd = dial(argv[1]);
    if (fd < 0) {
        perror("connect");
        return 1;
    }
    if (strcmp(act, "garbage") == 0) {
        static const char junk[] = {0, 0, 0, 4, (char)0xc1, (char)0xc1, (char)0xc1, (char)0xc1};
        if (write(fd, junk, sizeof(junk)) < 0)
            return 1;
    } else if (strcmp(act, "huge") == 0) {
        static const char len[] = {(char)0x80, 0, 0, 0};
        if (write(fd, len, sizeof(len)) < 0)
            return 1;
    } else if (strcmp(act, "trickle") == 0) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        cn_wire_hdr_t h = {CN_MSG_HELLO, 0, 0, 0};
        cn_wire_hello_t b = {CN_PROTOCOL_VERSION, {"hostile-trickling-client-name", 29},
                             (uint64_t)getpid(), 0};
        cn_wire_pack_typed(&sb, &h, &b, 0);
        int every = argc > 3 ? atoi(argv[3]) : 300;
        for (size_t i = 0; i < sb.size; i++) {
            if (send(fd, sb.data + i, 1, MSG_NOSIGNAL) != 1) {
                printf("cut off\n"); /* the root closed us mid-frame */
                msgpack_sbuffer_destroy(&sb);
                return 0;
            }
            usleep((useconds_t)every * 1000);
        }
        msgpack_sbuffer_destroy(&sb);
        printf("the whole frame went through\n");
        return 1;
    } else if (strcmp(act, "half") == 0) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        cn_wire_hdr_t h = {CN_MSG_HELLO, 0, 0, 0};
        cn_wire_hello_t b = {CN_PROTOCOL_VERSION, {"hostile", 7}, (uint64_t)getpid(), 0};
        cn_wire_pack_typed(&sb, &h, &b, 0);
        if (write(fd, sb.data, sb.size / 2) < 0)
            return 1;
        msgpack_sbuffer_destroy(&sb);
    }
    int rc = wait_cut(fd, 30000);
    printf(rc == 0 ? "cut off\n" : "still connected after 30 s\n");
    close(fd);
    return rc == 0 ? 0 : 1;
}
