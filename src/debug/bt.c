/*
 * bt.c: stacks as text, for the debugger's `bt` and the crash log.
 *
 * dladdr() names the module of each frame and, for exported functions, the
 * function. That leaves static functions and line numbers, which only the
 * debug information has: when addr2line (binutils) is installed, each
 * module's frames go to one addr2line run, which waits at most the given
 * timeout. Without it, or for a binary without debug information, frames
 * show as function+offset or module+offset, which is still enough to find
 * them with gdb or addr2line later.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"

extern char **environ;

typedef struct frame {
    const char *module; /* path, or NULL */
    uintptr_t rel;      /* the address as the module's debug info sees it */
    const char *sym;    /* dladdr's nearest exported symbol, or NULL */
    uintptr_t symoff;
    char fn[160], loc[256]; /* from addr2line, if it knew */
} frame_t;

static int is_exec_elf(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    Elf64_Ehdr eh;
    int exec = 0;
    if (fd >= 0 && read(fd, &eh, sizeof(eh)) == (ssize_t)sizeof(eh))
        exec = eh.e_type == ET_EXEC;
    if (fd >= 0)
        close(fd);
    return exec;
}

static const char *self_exe(void)
{
    static char path[4096];
    if (path[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        path[n > 0 ? n : 0] = '\0';
    }
    return path;
}

/* Runs addr2line on the frames of one module, filling fn and loc. */
static void addr2line(frame_t *f, int n, const char *module, int first_is_pc, int64_t deadline_ms)
{
    enum { MAXF = 64 };
    char *argv[6 + MAXF + 1], addrs[MAXF][24];
    int idx[MAXF], k = 0;
    argv[0] = "addr2line";
    argv[1] = "-f";
    argv[2] = "-C";
    argv[3] = "-e";
    argv[4] = (char *)module;
    for (int i = 0; i < n && k < MAXF; i++) {
        if (f[i].module != module)
            continue;
        /* A return address points after the call: look up the call. The
         * first frame of a signalled thread is where it was, exactly. */
        uintptr_t a = f[i].rel && !(i == 0 && first_is_pc) ? f[i].rel - 1 : f[i].rel;
        snprintf(addrs[k], sizeof(addrs[k]), "0x%lx", (unsigned long)a);
        argv[5 + k] = addrs[k];
        idx[k++] = i;
    }
    argv[5 + k] = NULL;
    int pfd[2];
    if (k == 0 || pipe2(pfd, O_CLOEXEC) < 0)
        return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, "addr2line", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return;
    }
    char buf[16384];
    size_t have = 0;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = deadline_ms - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (left <= 0 || have >= sizeof(buf) - 1 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t got = read(pfd[0], buf + have, sizeof(buf) - 1 - have);
        if (got <= 0)
            break;
        have += (size_t)got;
    }
    close(pfd[0]);
    kill(pid, SIGKILL); /* done, or out of time */
    waitpid(pid, NULL, 0);
    buf[have] = '\0';
    /* Two lines per address: the function, then file:line. */
    char *save = NULL, *line = strtok_r(buf, "\n", &save);
    for (int j = 0; j < k && line; j++) {
        char *loc = strtok_r(NULL, "\n", &save);
        if (loc == NULL)
            break;
        frame_t *fr = &f[idx[j]];
        if (strcmp(line, "??") != 0)
            snprintf(fr->fn, sizeof(fr->fn), "%s", line);
        if (strncmp(loc, "??", 2) != 0)
            snprintf(fr->loc, sizeof(fr->loc), "%s", loc);
        line = strtok_r(NULL, "\n", &save);
    }
}

void cn__bt_write(msgpack_sbuffer *out, void *const *frames, int n, int first_is_pc,
                  int64_t timeout_ms)
{
    if (n <= 0)
        return;
    frame_t *f = calloc((size_t)n, sizeof(*f));
    if (f == NULL)
        return;
    const char *mods[64];
    int nmods = 0;
    for (int i = 0; i < n; i++) {
        Dl_info di;
        uintptr_t a = (uintptr_t)frames[i];
        if (dladdr(frames[i], &di) == 0 || di.dli_fname == NULL)
            continue;
        const char *mod = di.dli_fname[0] == '/' ? di.dli_fname : self_exe();
        int m = 0;
        while (m < nmods && strcmp(mods[m], mod) != 0)
            m++;
        if (m == nmods && nmods < 64)
            mods[nmods++] = mod;
        f[i].module = m < nmods ? mods[m] : mod;
        f[i].rel = is_exec_elf(mod) ? a : a - (uintptr_t)di.dli_fbase;
        f[i].sym = di.dli_sname;
        f[i].symoff = di.dli_saddr ? a - (uintptr_t)di.dli_saddr : 0;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t deadline = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    for (int m = 0; m < nmods; m++)
        addr2line(f, n, mods[m], first_is_pc, deadline);
    for (int i = 0; i < n; i++) {
        const char *base = f[i].module ? strrchr(f[i].module, '/') : NULL;
        base = base ? base + 1 : f[i].module ? f[i].module : "?";
        if (f[i].fn[0] && f[i].loc[0])
            cn__sb_printf(out, "  #%-2d %s at %s\n", i, f[i].fn, f[i].loc);
        else if (f[i].fn[0])
            cn__sb_printf(out, "  #%-2d %s (%s)\n", i, f[i].fn, base);
        else if (f[i].sym)
            cn__sb_printf(out, "  #%-2d %s+0x%lx (%s)\n", i, f[i].sym, (unsigned long)f[i].symoff,
                          base);
        else
            cn__sb_printf(out, "  #%-2d %p (%s+0x%lx)\n", i, frames[i], base,
                          (unsigned long)f[i].rel);
    }
    free(f);
}
