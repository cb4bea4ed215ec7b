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
#include <unistd.h>

static char suite_logpath[] = "/tmp/canopy-test-XXXXXX";

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
