/*
 * log.c: log records, from cn_log() in any actor to stderr at the root.
 *
 * Every actor sends its records (and its children's output, which the
 * parent turns into records) to the root as LOG messages; the root alone
 * writes them, one line each, to its stderr or to CANOPY_LOG_FILE, and
 * keeps the last ones in a ring for the inspector. What it does not do: write to the terminal from
 * any actor but the root, or block a caller on the network.
 *
 * Invariant: a record is formatted once, where it is made; the root only
 * prints what arrives.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"

#define RING_SIZE 1024
#define MSG_MAX 4096

static const char *const level_names[] = {"trace", "debug", "info", "cancel", "warn", "error"};
static const char *const level_colours[] = {"\033[90m", "\033[36m", "\033[32m",
                                            "\033[35m", "\033[33m", "\033[31m"};

typedef struct record {
    int level;
    uint64_t time_us;
    size_t path_len;
    char *text; /* "path: message" */
} record_t;

static struct {
    pthread_mutex_t mu;
    record_t *ring; /* RING_SIZE, at the first record (see freeze.c, fz) */
    size_t next; /* total records ever kept */
    FILE *out;   /* stderr, or CANOPY_LOG_FILE; NULL until the first record */
    int colour;
    long max;     /* CANOPY_LOG_FILE_MAX: bytes before the file is rotated; 0 none */
    long written; /* into the file since it was opened or rotated */
} sink = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, NULL, 0, 0, 0};

/* CANOPY_LOG_FILE_MAX: a size in bytes, with an optional K, M or G. */
static long parse_size(const char *v)
{
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (v == NULL || end == v || n <= 0)
        return 0;
    long unit = *end == 'K' || *end == 'k' ? 1L << 10
                : *end == 'M' || *end == 'm' ? 1L << 20
                : *end == 'G' || *end == 'g' ? 1L << 30
                                             : 1;
    return n > LONG_MAX / unit ? LONG_MAX : n * unit;
}

/* Where the root's records go: CANOPY_LOG_FILE (appended to) if set and
 * writable, else stderr. Decided once, at the first record. */
static void sink_open(void)
{
    const char *path = getenv("CANOPY_LOG_FILE");
    sink.out = stderr;
    if (path && *path) {
        FILE *f = fopen(path, "a");
        if (f) {
            setvbuf(f, NULL, _IOLBF, 0);
            sink.out = f;
            sink.max = parse_size(getenv("CANOPY_LOG_FILE_MAX"));
            sink.written = ftell(f) > 0 ? ftell(f) : 0;
        } else {
            fprintf(stderr, "canopy: cannot write the log to %s (%s); using stderr\n", path,
                    strerror(errno));
        }
    }
    sink.colour = isatty(fileno(sink.out)) && getenv("NO_COLOR") == NULL;
}

/* Under sink.mu: past CANOPY_LOG_FILE_MAX, the file becomes FILE.1 (the
 * one before is dropped) and a new one starts, so a chatty tree keeps at
 * most twice the limit on disk. */
static void sink_rotate(void)
{
    const char *path = getenv("CANOPY_LOG_FILE");
    char prev[4096];
    if (sink.out == stderr || path == NULL ||
        snprintf(prev, sizeof(prev), "%s.1", path) >= (int)sizeof(prev))
        return;
    fclose(sink.out);
    if (rename(path, prev) < 0) /* then it starts again over the old one */
        prev[0] = '\0';
    sink.out = fopen(path, "w");
    if (sink.out == NULL) {
        sink.out = stderr;
        return;
    }
    setvbuf(sink.out, NULL, _IOLBF, 0);
    sink.written = prev[0] ? fprintf(sink.out, "(the log before this line is in %s)\n", prev) : 0;
}

void cn__log_fini(void)
{
    cn__lock(&sink.mu);
    if (sink.out && sink.out != stderr)
        fclose(sink.out);
    sink.out = NULL;
    if (sink.ring) {
        for (size_t i = 0; i < RING_SIZE; i++)
            free(sink.ring[i].text);
        free(sink.ring);
        sink.ring = NULL;
    }
    sink.next = 0;
    cn__unlock(&sink.mu);
}

const char *cn_log_level_name(cn_log_level_t level)
{
    if ((int)level < 0 || level > CN_LOG_ERROR)
        return "error";
    return level_names[level];
}

void cn_log_set_level(cn_log_level_t level)
{
    /* cn_spawn passes the current level to each new child. */
    atomic_store(&cn__rt.log_level, (int)level);
}

void cn__log_sink(int level, uint64_t time_us, const char *path, size_t path_len, const char *msg,
                  size_t msg_len)
{
    if (level < 0 || level > CN_LOG_ERROR)
        level = CN_LOG_ERROR;
    time_t secs = (time_t)(time_us / 1000000);
    struct tm tm;
    localtime_r(&secs, &tm);

    cn__lock(&sink.mu);
    if (sink.out == NULL)
        sink_open();
    int wrote = fprintf(sink.out, "%02d:%02d:%02d.%03u %s%-6s%s %.*s: %.*s\n", tm.tm_hour, tm.tm_min,
                    tm.tm_sec, (unsigned)(time_us / 1000 % 1000),
                    sink.colour ? level_colours[level] : "", level_names[level],
                    sink.colour ? "\033[0m" : "", (int)path_len, path, (int)msg_len, msg);
    if (wrote > 0 && sink.max > 0 && (sink.written += wrote) > sink.max)
        sink_rotate();
    if (sink.ring == NULL && (sink.ring = calloc(RING_SIZE, sizeof(*sink.ring))) == NULL) {
        cn__unlock(&sink.mu); /* printed, not kept */
        cn__event_log(level, time_us, path, path_len, msg, msg_len);
        return;
    }
    record_t *r = &sink.ring[sink.next % RING_SIZE];
    free(r->text);
    r->level = level;
    r->time_us = time_us;
    r->path_len = path_len;
    size_t n = path_len + 2 + msg_len + 1;
    r->text = malloc(n);
    if (r->text)
        snprintf(r->text, n, "%.*s: %.*s", (int)path_len, path, (int)msg_len, msg);
    sink.next++;
    cn__unlock(&sink.mu);
    cn__event_log(level, time_us, path, path_len, msg, msg_len);
}

void cn__log_pack(msgpack_packer *pk, size_t max)
{
    cn__lock(&sink.mu);
    size_t kept = sink.next < RING_SIZE ? sink.next : RING_SIZE;
    if (max > kept)
        max = kept;
    size_t n = 0;
    for (size_t k = sink.next - max; k < sink.next; k++)
        n += sink.ring[k % RING_SIZE].text != NULL;
    msgpack_pack_array(pk, n);
    for (size_t k = sink.next - max; k < sink.next; k++) {
        const record_t *r = &sink.ring[k % RING_SIZE];
        if (r->text == NULL)
            continue;
        msgpack_pack_map(pk, 4);
        cn__pack_kint(pk, "level", r->level);
        cn__pack_kint(pk, "time_us", (int64_t)r->time_us);
        cn__pack_cstr(pk, "path");
        msgpack_pack_str(pk, r->path_len);
        msgpack_pack_str_body(pk, r->text, r->path_len);
        cn__pack_kstr(pk, "message", r->text + r->path_len + 2);
    }
    cn__unlock(&sink.mu);
}

void cn__log_emit(int level, const char *path, const char *msg, size_t len)
{
    uint64_t now = cn__now_us();
    if (!cn__rt.started || cn__rt.is_root)
        cn__log_sink(level, now, path, strlen(path), msg, len);
    else
        cn__log_send(level, now, path, msg, len);
}

void cn_log(cn_log_level_t level, const char *fmt, ...)
{
    if ((int)level < atomic_load(&cn__rt.log_level))
        return;
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    cn__log_emit((int)level, cn__rt.path[0] ? cn__rt.path : "?", msg, (size_t)n);
}

int cn__log_parse_level(const char *s)
{
    for (int i = 0; i <= CN_LOG_ERROR; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    return -1;
}
