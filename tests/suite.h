/*
 * suite.h: what the actor test binaries share (test_runtime, test_context,
 * test_stream). Each is the root of its own tree and, re-executed, every
 * actor in it; the root's log goes to a scratch file that tests can search
 * and that is printed when anything fails.
 */
#ifndef CN_TEST_SUITE_H
#define CN_TEST_SUITE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char suite_logpath[] = "/tmp/canopy-test-XXXXXX";

/* CN_TEST_TIME_SCALE=N (a whole number, 1 to 100; default 1) multiplies
 * the tests' time limits, for runs under a tool that slows every actor
 * down many times (`make memcheck` sets it for valgrind). The limits are
 * generous already; the scale only keeps them so when startup alone takes
 * seconds. Children inherit it (cn_spawn passes on all but CANOPY_*). */
static inline int suite_time_scale(void)
{
    static int scale;
    if (scale == 0) {
        const char *s = getenv("CN_TEST_TIME_SCALE");
        long v = s ? strtol(s, NULL, 10) : 1;
        scale = v >= 1 && v <= 100 ? (int)v : 1;
    }
    return scale;
}

/* In main, before cn_run: the root sends the tree's log to a scratch file
 * (children do not: cn_spawn strips CANOPY_* from their environment). */
static inline int suite_capture_log(void)
{
    if (getenv("CANOPY_FD") != NULL)
        return 0; /* a child */
    int fd = mkstemp(suite_logpath);
    if (fd < 0)
        return -1;
    close(fd);
    return setenv("CANOPY_LOG_FILE", suite_logpath, 1);
}

/* Whether the tree's log so far contains `needle`. */
static inline int suite_log_contains(const char *needle)
{
    FILE *f = fopen(suite_logpath, "r");
    if (f == NULL)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* Whether one line of the tree's log holds both needles. */
static inline int suite_log_line_has(const char *needle, const char *also)
{
    FILE *f = fopen(suite_logpath, "r");
    if (f == NULL)
        return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) && strstr(line, also);
    fclose(f);
    return found;
}

/* Waits up to ms for a line of the tree's log that holds needle (and
 * also, unless NULL), looking every 10 ms; returns whether one came. */
static inline int suite_log_wait(const char *needle, const char *also, long long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long long until = t.tv_sec * 1000LL + t.tv_nsec / 1000000 + ms;
    for (;;) {
        if (suite_log_line_has(needle, also ? also : ""))
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec * 1000LL + t.tv_nsec / 1000000 >= until)
            return 0;
        usleep(10000);
    }
}

/* After the group: prints the tree's log if anything failed, removes it,
 * and gives the exit status. */
static inline int suite_finish(int failed)
{
    if (failed) {
        FILE *f = fopen(suite_logpath, "r");
        char line[1024];
        fprintf(stderr, "--- the tree's log:\n");
        while (f && fgets(line, sizeof(line), f))
            fputs(line, stderr);
        if (f)
            fclose(f);
    }
    unlink(suite_logpath);
    return failed ? 1 : 0;
}

#endif /* CN_TEST_SUITE_H */
