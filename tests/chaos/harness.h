/*
 * harness.h: what the chaos and soak programs share (tests/chaos/): clocks,
 * a process's fds, RSS and state read from /proc, and running a tree's
 * root under a parent that catches whatever escapes the tree's reaping.
 * Included by one program each.
 */
#ifndef CN_CHAOS_HARNESS_H
#define CN_CHAOS_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "canopy.h"

static inline uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline double mono_msf(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* This process's open fds. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the one opendir holds */
}

/* This process's resident set, in KiB. */
static inline long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* Process pid's state letter ('Z' for a zombie) and parent; 0 if gone. */
static inline char proc_state_ppid(pid_t pid, int *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    char st = '?';
    int pp = 0;
    if (p == NULL || sscanf(p + 2, "%c %d", &st, &pp) != 2)
        return '?';
    if (ppid)
        *ppid = pp;
    return st;
}

static inline char proc_state(pid_t pid)
{
    return proc_state_ppid(pid, NULL);
}

/* This process's children: fills pids and their states (up to max), and
 * returns how many there are. */
static inline size_t own_children(pid_t *pids, char *states, size_t max)
{
    size_t n = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        pid_t pid = (pid_t)atoi(e->d_name);
        int ppid = 0;
        char state = pid > 0 ? proc_state_ppid(pid, &ppid) : 0;
        if (state && ppid == getpid()) {
            if (n < max)
                pids[n] = pid, states[n] = state;
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/*
 * Runs the tree's root (cn_run with cfg) as our child, with us as a
 * subreaper that reaps nothing but the root: a process that escapes the
 * tree's own reaping comes to us and stays a zombie, to be counted,
 * whatever init would have done (many inits reap orphans only now and
 * then, some never). Returns the root's status, or 1 if anything escaped.
 */
static inline int run_under_us(char **argv, const cn_config_t *cfg)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        perror("PR_SET_CHILD_SUBREAPER");
        return 2;
    }
    pid_t root = fork();
    if (root == 0) {
        int rc = cn_run(1, argv, cfg);
        _exit(rc < 0 ? 2 : rc);
    }
    int st = 0;
    while (waitpid(root, &st, 0) < 0 && errno == EINTR)
        ;
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 2;
    if (!WIFEXITED(st))
        printf("VIOLATION the root died on signal %d\n", WTERMSIG(st));
    usleep(200000);
    pid_t pids[256];
    char states[256];
    size_t escaped = own_children(pids, states, 256);
    for (size_t i = 0; i < escaped && i < 256; i++) {
        printf("VIOLATION pid %d escaped the tree's reaping (state %c)\n", (int)pids[i],
               states[i]);
        kill(pids[i], SIGKILL);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    printf("%s: %zu processes escaped the tree's reaping\n", cfg->name, escaped);
    return escaped ? 1 : rc;
}

#endif /* CN_CHAOS_HARNESS_H */
