/*
 * hostile.c: a misbehaving attach client, for test_inspect.sh and
 * test_hostile.sh. Connects to the socket argv[1] and does argv[2]:
 *   garbage   sends bytes that are not a frame, then waits to be cut off
 *   huge      sends a length prefix of 2 GiB, then waits to be cut off
 *   half      sends HELLO's first half, then nothing, until cut off
 *   nohello   connects and sends nothing, until cut off
 *   trickle MS  sends HELLO one byte every MS ms, until cut off
 *   many N    opens N connections at once and holds them for argv[4] ms
 *   slowsub MS  subscribes to events, reads nothing for MS ms, then reads
 *             until a "dropped" marker comes; prints its count
 *   otheruid UID  forks a child that becomes UID (setgid first), connects
 *             and says HELLO; the root must close the connection without
 *             a byte of answer. Exits 3 if the connect itself is refused
 *             (the socket's permissions), saying why
 *   version   says HELLO with protocol version 99; prints the DEAD that
 *             must come back, then waits to be cut off
 *   flood KIND  says HELLO, then sends requests as fast as the socket
 *             takes them and reads nothing: KIND inspect (tree snapshots)
 *             or cancel (cancels of actor 4000000000, which does not
 *             exist: each answered with a small DEAD), until cut off
 *   noread MS  says HELLO, then sends one INSPECT every MS ms and reads
 *             nothing, until cut off
 *   subnoread MS  says HELLO and SUBSCRIBE, then reads nothing for MS ms
 *             and says whether the root still holds the connection
 * Prints "cut off" (or, for many, how many the root kept) and exits 0;
 * exits 1 if the root did not do what it should within 30 s (60 s for
 * flood and noread).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes all of buf, blocking; 0, or -1 once the root has closed us. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The next message from the root, waiting up to ms; NULL on EOF, error or
 * timeout. */
static cn_wire_msg_t *recv_one(int fd, cn_wire_decoder_t *d, int ms)
{
    char c;
    for (int64_t end = now_ms() + ms;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&pf, 1, left) <= 0 || read(fd, &c, 1) != 1)
            return NULL;
        cn_wire_msg_t *m;
        size_t used;
        int rc = cn_wire_decode(d, &c, 1, &used, &m);
        if (rc == 1)
            return m;
        if (rc < 0)
            return NULL;
    }
}

/* Says HELLO with protocol `version`; 0, or -1 once the root has closed
 * us. */
static int send_hello(int fd, uint64_t version)
{
    cn_wire_hdr_t h = {CN_MSG_HELLO, 0, 0, 0};
    cn_wire_hello_t b = {version, {"hostile", 7}, (uint64_t)getpid(), (uint64_t)getuid()};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_pack_typed(&sb, &h, &b, 0);
    int rc = send_all(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Says HELLO with `version` and reads the root's answer (the caller frees
 * it); NULL if none came within 10 s. */
static cn_wire_msg_t *hello_answer(int fd, uint64_t version)
{
    cn_wire_decoder_t d;
    cn_wire_decoder_init(&d, 0);
    cn_wire_msg_t *m = send_hello(fd, version) == 0 ? recv_one(fd, &d, 10000) : NULL;
    cn_wire_decoder_fini(&d);
    return m;
}

/* Connects and is greeted; -1 (said why) if not. */
static int dial_greeted(const char *path)
{
    int fd = dial(path);
    if (fd < 0) {
        perror("connect");
        return -1;
    }
    cn_wire_msg_t *m = hello_answer(fd, CN_PROTOCOL_VERSION);
    int ok = m && m->hdr.type == CN_MSG_HELLO;
    cn_wire_msg_free(m);
    if (!ok) {
        printf("no HELLO from the root\n");
        close(fd);
        return -1;
    }
    return fd;
}

/* Appends one request of `kind` (INSPECT, or CANCEL of a missing actor). */
static void pack_request(msgpack_sbuffer *sb, const char *kind, uint64_t cid)
{
    if (strcmp(kind, "cancel") == 0) {
        cn_wire_hdr_t h = {CN_MSG_CANCEL, 4000000000u, 0, cid};
        cn_wire_cancel_t b = {{"hostile", 7}, 4000000000u, 0};
        cn_wire_pack_typed(sb, &h, &b, 0);
        return;
    }
    cn_wire_hdr_t h = {CN_MSG_INSPECT, 0, 0, cid};
    msgpack_packer pk;
    size_t mark;
    cn_wire_begin(sb, &pk, &h, &mark);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "scope", 5);
    msgpack_pack_str_with_body(&pk, "tree", 4);
    cn_wire_end(sb, mark, 0, 0);
}

/*
 * Sends requests of `kind` without reading a byte of the answers: as fast
 * as the socket takes them (every_ms 0), or one every every_ms. Returns 0
 * once the root cuts us off, 1 if it has not within 60 s.
 */
static int flood(const char *path, const char *kind, int every_ms)
{
    int fd = dial_greeted(path);
    if (fd < 0)
        return 1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int batch = every_ms ? 1 : 256;
    for (int i = 0; i < batch; i++)
        pack_request(&sb, kind, (uint64_t)i + 1);
    size_t frame = sb.size / (size_t)batch;
    printf("flooding with %s\n", kind);
    fflush(stdout);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    unsigned long long sent = 0; /* bytes */
    size_t off = 0;
    int64_t end = now_ms() + 60000;
    int cut = 0;
    while (!cut && now_ms() < end) {
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, 1000) == 0)
            continue; /* the root is not reading just now */
        ssize_t n = send(fd, sb.data + off, sb.size - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            cut = 1;
            break;
        }
        sent += (unsigned long long)n;
        off = (off + (size_t)n) % sb.size;
        if (every_ms && off == 0)
            usleep((useconds_t)every_ms * 1000);
    }
    if (cut)
        printf("cut off after %llu requests (%llu KiB sent)\n", sent / frame, sent >> 10);
    else
        printf("still connected after 60 s and %llu requests\n", sent / frame);
    msgpack_sbuffer_destroy(&sb);
    close(fd);
    return cut ? 0 : 1;
}

/* HELLO and SUBSCRIBE, then not a byte read for ms. */
static int subscribe_noread(const char *path, int ms)
{
    int fd = dial_greeted(path);
    if (fd < 0)
        return 1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cn_wire_hdr_t h = {CN_MSG_SUBSCRIBE, 0, 0, 1};
    cn_wire_pack(&sb, &h, NULL, 0);
    int rc = send_all(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0)
        return 1;
    printf("subscribed, not reading\n");
    fflush(stdout);
    usleep((useconds_t)ms * 1000);
    /* Still connected? A peer that closed shows as POLLRDHUP, unread
     * data or not. */
    struct pollfd pf = {fd, POLLRDHUP, 0};
    int gone = poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
    printf(gone ? "cut off\n" : "held %d ms: still connected\n", ms);
    close(fd);
    return 0;
}

/* Says HELLO with version 99: a DEAD naming both versions must come back,
 * then the end of the connection. */
static int bad_version(const char *path)
{
    int fd = dial(path);
    if (fd < 0) {
        perror("connect");
        return 1;
    }
    cn_wire_msg_t *m = hello_answer(fd, 99);
    int ok = m && m->hdr.type == CN_MSG_DEAD;
    if (m == NULL)
        printf("no answer\n");
    else if (ok)
        printf("DEAD: %.*s\n", (int)m->u.dead.reason.len, m->u.dead.reason.ptr);
    else
        printf("answered %s, not DEAD\n", cn_wire_type_name(m->hdr.type));
    cn_wire_msg_free(m);
    int rc = wait_cut(fd, 30000);
    printf(rc == 0 ? "cut off\n" : "still connected after 30 s\n");
    close(fd);
    return ok && rc == 0 ? 0 : 1;
}

/* A child of another uid connects: it must see the connection closed with
 * not a byte of answer. */
static int other_uid(const char *path, uid_t uid)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid > 0) {
        int st;
        if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
            return 1;
        return WEXITSTATUS(st);
    }
    if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0) {
        printf("cannot become uid %u: %s\n", (unsigned)uid, strerror(errno));
        _exit(1);
    }
    printf("pid %d, uid %u\n", (int)getpid(), (unsigned)getuid());
    int fd = dial(path);
    if (fd < 0) {
        printf("connect refused: %s\n", strerror(errno));
        _exit(3);
    }
    send_hello(fd, CN_PROTOCOL_VERSION); /* may fail: the root may have closed us already */
    char buf[4096];
    size_t got = 0;
    int closed = 0;
    struct pollfd pf = {fd, POLLIN, 0};
    while (!closed && poll(&pf, 1, 30000) > 0) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            closed = 1;
        else
            got += (size_t)n;
    }
    if (closed && got == 0)
        printf("closed without an answer\n");
    else
        printf("%s, with %zu bytes of answer\n", closed ? "closed" : "still connected after 30 s",
               got);
    _exit(closed && got == 0 ? 0 : 1);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *act = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(act, "otheruid") == 0)
        return other_uid(argv[1], (uid_t)(argc > 3 ? atoi(argv[3]) : 65534));
    if (strcmp(act, "version") == 0)
        return bad_version(argv[1]);
    if (strcmp(act, "flood") == 0)
        return flood(argv[1], argc > 3 ? argv[3] : "inspect", 0);
    if (strcmp(act, "noread") == 0)
        return flood(argv[1], "inspect", argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 1);
    if (strcmp(act, "subnoread") == 0)
        return subscribe_noread(argv[1], argc > 3 ? atoi(argv[3]) : 3000);
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
