/*
 * bt.c: stacks as text, for the debugger's `bt`, `canopy bt` and the
 * crash log.
 *
 * dladdr() names the module of each frame and, for exported functions, the
 * function. That leaves static functions and line numbers, which only the
 * debug information has: when addr2line (binutils) is installed, the
 * addresses not yet known in the program's own modules (not the system's
 * libraries, whose exported names say enough) go to one addr2line run per
 * module, which waits
 * at most the given timeout, and the answers are kept: code does not move,
 * so a second `bt` of the same places costs no process at all. Without
 * addr2line, or for a binary without debug information, frames show as
 * function+offset or module+offset, which is still enough to find them
 * with gdb or addr2line later.
 *
 * Invariant: the cache is the broker's; everything here runs on it.
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
#include "runtime/rt.h"

/* ===========================================================================
 * What each address is, once asked
 */

#define CACHE_SLOTS 4096 /* a power of two; cleared when half full */

typedef struct ent {
    uintptr_t look; /* 0: a free slot */
    int answered;   /* addr2line answered (else ask again next time) */
    char *fn, *loc; /* its answer, or NULL where it did not know */
} ent_t;

static struct {
    ent_t *slot; /* CACHE_SLOTS, at the first look-up (see freeze.c, fz) */
    size_t used;
} cache;

/* The entry for `look`, added if `add`; NULL if there is none (or no
 * memory for the cache). */
static ent_t *cache_find(uintptr_t look, int add)
{
    if (cache.slot == NULL && (!add || (cache.slot = calloc(CACHE_SLOTS, sizeof(ent_t))) == NULL))
        return NULL;
    if (add && cache.used >= CACHE_SLOTS / 2) { /* cheaper to start over than to evict */
        for (size_t i = 0; i < CACHE_SLOTS; i++) {
            free(cache.slot[i].fn);
            free(cache.slot[i].loc);
        }
        memset(cache.slot, 0, CACHE_SLOTS * sizeof(ent_t));
        cache.used = 0;
    }
    size_t i = (look * 0x9E3779B97F4A7C15ull) >> 52; /* 12 bits */
    for (;; i = (i + 1) & (CACHE_SLOTS - 1)) {
        ent_t *e = &cache.slot[i];
        if (e->look == look)
            return e;
        if (e->look == 0) {
            if (!add)
                return NULL;
            e->look = look;
            cache.used++;
            return e;
        }
    }
}

uintptr_t cn__bt_look(void *frame, int exact)
{
    /* A return address points after the call: look up the call itself.
     * The first frame of a signalled thread is where it was, exactly. */
    return (uintptr_t)frame - (exact ? 0 : 1);
}

/* ===========================================================================
 * addr2line
 */

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

/* The system's own libraries (libc, libuv, ...): their exported names from
 * dladdr say enough, and addr2line on their debug information, where it
 * is installed, costs far more than the program's own. */
static int is_system_lib(const char *mod)
{
    static const char *const dirs[] = {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (strncmp(mod, dirs[i], strlen(dirs[i])) == 0)
            return 1;
    return 0;
}

/* The module an address is in, and the address as its debug info sees it. */
static const char *module_of(uintptr_t a, uintptr_t *rel)
{
    Dl_info di;
    if (dladdr((void *)a, &di) == 0 || di.dli_fname == NULL)
        return NULL;
    const char *mod = di.dli_fname[0] == '/' ? di.dli_fname : self_exe();
    *rel = is_exec_elf(mod) ? a : a - (uintptr_t)di.dli_fbase;
    return mod;
}

static int64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Asks addr2line about look[0..n) (all in `module`, at rel[]), and fills
 * the cache entries ents[]. */
static void addr2line(const char *module, const uintptr_t *rel, ent_t **ents, int n,
                      int64_t deadline_ms)
{
    char *argv[5 + n + 1], (*addrs)[24] = calloc((size_t)n, 24);
    int pfd[2];
    if (addrs == NULL || pipe2(pfd, O_CLOEXEC) < 0) {
        free(addrs);
        return;
    }
    argv[0] = "addr2line";
    argv[1] = "-f";
    argv[2] = "-C";
    argv[3] = "-e";
    argv[4] = (char *)module;
    for (int k = 0; k < n; k++) {
        snprintf(addrs[k], 24, "0x%lx", (unsigned long)rel[k]);
        argv[5 + k] = addrs[k];
    }
    argv[5 + n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    cn__broker_unbatch(); /* addr2line would inherit it */
    int rc = posix_spawnp(&pid, "addr2line", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    free(addrs);
    if (rc != 0) {
        close(pfd[0]);
        return;
    }
    size_t cap = 512 * (size_t)n + 1, have = 0;
    char *buf = malloc(cap);
    for (int64_t left; buf && (left = deadline_ms - now_ms()) > 0 && have < cap - 1;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t got = read(pfd[0], buf + have, cap - 1 - have);
        if (got <= 0)
            break;
        have += (size_t)got;
    }
    close(pfd[0]);
    kill(pid, SIGKILL); /* done, or out of time */
    waitpid(pid, NULL, 0);
    if (buf == NULL)
        return;
    buf[have] = '\0';
    /* Two lines per address: the function, then file:line. */
    char *save = NULL, *line = strtok_r(buf, "\n", &save);
    for (int j = 0; j < n && line; j++) {
        char *loc = strtok_r(NULL, "\n", &save);
        if (loc == NULL)
            break;
        ents[j]->answered = 1;
        if (strcmp(line, "??") != 0)
            ents[j]->fn = strdup(line);
        if (strncmp(loc, "??", 2) != 0)
            ents[j]->loc = strdup(loc);
        line = strtok_r(NULL, "\n", &save);
    }
    free(buf);
}

void cn__bt_resolve(const uintptr_t *look, int n, int64_t timeout_ms)
{
    if (n <= 0)
        return;
    uintptr_t *rel = calloc((size_t)n, sizeof(*rel));
    const char **mod = calloc((size_t)n, sizeof(*mod));
    /* Arrays of pointers: NOLINTBEGIN(bugprone-sizeof-expression) */
    ent_t **ents = calloc((size_t)n, sizeof(*ents));
    uintptr_t *batch_rel = calloc((size_t)n, sizeof(*batch_rel));
    ent_t **batch = calloc((size_t)n, sizeof(*batch));
    /* NOLINTEND(bugprone-sizeof-expression) */
    if (rel && mod && ents && batch_rel && batch) {
        for (int i = 0; i < n; i++) { /* only what is not known yet */
            const ent_t *e = cache_find(look[i], 0);
            if ((e == NULL || !e->answered) && (mod[i] = module_of(look[i], &rel[i])) &&
                !is_system_lib(mod[i]))
                ents[i] = cache_find(look[i], 1);
        }
        int64_t deadline = now_ms() + timeout_ms;
        for (int i = 0; i < n; i++) { /* one addr2line per module */
            if (ents[i] == NULL)
                continue;
            int k = 0;
            const char *m = mod[i];
            for (int j = i; j < n; j++) {
                if (ents[j] && mod[j] && strcmp(mod[j], m) == 0) {
                    batch_rel[k] = rel[j];
                    batch[k++] = ents[j];
                    ents[j] = NULL;
                }
            }
            addr2line(m, batch_rel, batch, k, deadline);
        }
    }
    free(rel);
    free(mod);
    free(ents);
    free(batch_rel);
    free(batch);
}

/* ===========================================================================
 * Writing a stack
 */

void cn__bt_write(msgpack_sbuffer *out, void *const *frames, int n, int first_is_pc,
                  int64_t timeout_ms)
{
    if (n <= 0)
        return;
    uintptr_t *look = calloc((size_t)n, sizeof(*look));
    if (look == NULL)
        return;
    for (int i = 0; i < n; i++)
        look[i] = cn__bt_look(frames[i], i == 0 && first_is_pc);
    cn__bt_resolve(look, n, timeout_ms);
    for (int i = 0; i < n; i++) {
        const ent_t *e = cache_find(look[i], 0);
        Dl_info di;
        uintptr_t rel = 0;
        const char *mod = module_of((uintptr_t)frames[i], &rel);
        const char *base = mod ? strrchr(mod, '/') : NULL;
        base = base ? base + 1 : mod ? mod : "?";
        if (e && e->fn && e->loc)
            cn__sb_printf(out, "  #%-2d %s at %s\n", i, e->fn, e->loc);
        else if (e && e->fn)
            cn__sb_printf(out, "  #%-2d %s (%s)\n", i, e->fn, base);
        else if (dladdr(frames[i], &di) && di.dli_sname)
            cn__sb_printf(out, "  #%-2d %s+0x%lx (%s)\n", i, di.dli_sname,
                          (unsigned long)((uintptr_t)frames[i] - (uintptr_t)di.dli_saddr), base);
        else
            cn__sb_printf(out, "  #%-2d %p (%s+0x%lx)\n", i, frames[i], base, (unsigned long)rel);
    }
    free(look);
}
