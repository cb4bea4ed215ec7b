/*
 * tui_run.c: `canopy run [--debug] [--name NAME] -- PROG ARGS...` starts
 * PROG as the root of a new tree and opens the TUI on it; `canopy attach`
 * opens the TUI on a running tree (docs/tui.md).
 *
 * The tree runs in its own session, so that detaching leaves it running
 * whatever happens to this terminal. Its stdin is /dev/null, and what it
 * prints goes to a file next to its attach socket, which the TUI's log
 * view follows: nothing the tree prints lands on the screen, and after a
 * detach it still has somewhere to write. Its own log records reach the
 * TUI through the event feed, and are written to a second file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tui.h"

#define START_MS 10000 /* PROG has this long to open its attach socket */

/* The environment for the tree: ours, with the run's settings. */
static char **run_env(const opts_t *o, const char *logfile)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 6, sizeof(*env));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CANOPY_CONSOLE=", 15) != 0 &&
            strncmp(environ[i], "CANOPY_DEBUG=", 13) != 0 &&
            strncmp(environ[i], "CANOPY_TREE=", 12) != 0 &&
            strncmp(environ[i], "CANOPY_LOG_FILE=", 16) != 0)
            env[k++] = environ[i];
    static char tree[128], log[700];
    env[k++] = "CANOPY_CONSOLE=0"; /* the TUI is the console; the terminal is ours */
    if (o->debug)
        env[k++] = "CANOPY_DEBUG=1";
    if (o->name) {
        snprintf(tree, sizeof(tree), "CANOPY_TREE=%s", o->name);
        env[k++] = tree;
    }
    snprintf(log, sizeof(log), "CANOPY_LOG_FILE=%s", logfile);
    env[k++] = log;
    if (getenv("CANOPY_LOG_FILE_MAX") == NULL) /* it lives in the runtime dir: often RAM */
        env[k++] = "CANOPY_LOG_FILE_MAX=64M";
    env[k] = NULL;
    return env;
}

/* The last lines of a file, to stderr: why PROG did not start. */
static void show_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char buf[4096];
    long at = 0; /* where the last sizeof(buf) - 1 bytes begin */
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof(buf) - 1)
        at = ftell(f) - (long)sizeof(buf) + 1;
    size_t n = fseek(f, at, SEEK_SET) == 0 ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    fclose(f);
    if (n)
        fprintf(stderr, "--- its output (%s):\n%s%s", path, buf, buf[n - 1] == '\n' ? "" : "\n");
}

/* The program's output from where the TUI stopped reading it to its end,
 * to stdout: lines it printed while the tree was being cancelled. */
static void show_rest(int fd)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            break;
    fflush(stdout);
}

int cli_run(int argc, char **argv, const opts_t *o)
{
    if (argc < 1) {
        fprintf(stderr, "canopy run: which program? canopy run [--debug] [--name NAME] -- PROG "
                        "[ARGS...]\n");
        return EXIT_USAGE;
    }
    if (o->name && (strlen(o->name) >= 64 || strspn(o->name, "abcdefghijklmnopqrstuvwxyz"
                                                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                            "0123456789-_.") != strlen(o->name))) {
        fprintf(stderr, "canopy run: --name '%s': a tree's name is letters, digits, '-', '_' "
                        "and '.', under 64 characters\n", o->name);
        return EXIT_USAGE;
    }
    if (!isatty(0) || !isatty(1)) {
        fprintf(stderr, "canopy run: the TUI needs a terminal (stdin and stdout)\n");
        return EXIT_USAGE;
    }
    char dir[512];
    if (cn_client_dir(dir, sizeof(dir)) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
        fprintf(stderr, "canopy run: no runtime directory %s: %s\n", dir, strerror(errno));
        return EXIT_FAIL;
    }
    char out[600], log[620];
    snprintf(out, sizeof(out), "%s/run-XXXXXX", dir);
    int ofd = mkstemp(out);
    if (ofd < 0) {
        fprintf(stderr, "canopy run: cannot make an output file in %s: %s\n", dir, strerror(errno));
        return EXIT_FAIL;
    }
    snprintf(log, sizeof(log), "%s.log", out);
    int rfd = open(out, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    fcntl(ofd, F_SETFD, FD_CLOEXEC);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, ofd, 1);
    posix_spawn_file_actions_adddup2(&fa, ofd, 2);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    char **env = run_env(o, log);
    pid_t pid = -1;
    int rc = env ? posix_spawnp(&pid, argv[0], &fa, &attr, argv, env) : ENOMEM;
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(ofd);
    if (rc != 0) {
        fprintf(stderr, "canopy run: cannot run %s: %s\n", argv[0], strerror(rc));
        close(rfd);
        unlink(out);
        return EXIT_FAIL;
    }

    /* Until its attach socket is there: then the TUI can attach. */
    char which[32];
    snprintf(which, sizeof(which), "%d", (int)pid);
    cn_tree_info_t info;
    int st, waited = 0, said = 0;
    for (;;) {
        if (cn_client_find(which, &info) == 0)
            break;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "canopy run: %s exited before its tree started (%s %d)\n", argv[0],
                    WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            show_tail(out);
            close(rfd);
            return EXIT_FAIL;
        }
        if (waited >= START_MS) {
            fprintf(stderr, "canopy run: %s (pid %d) has not opened an attach socket in %d s; "
                            "is it a libcanopy program, with CANOPY_ATTACH unset? Killing it.\n",
                    argv[0], (int)pid, START_MS / 1000);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            show_tail(out);
            close(rfd);
            return EXIT_FAIL;
        }
        if (waited >= 1000 && waited / 1000 != said) {
            said = waited / 1000;
            fprintf(stderr, "canopy run: waiting for %s (pid %d) to start its tree... %d s\n",
                    argv[0], (int)pid, said);
        }
        usleep(20000);
        waited += 20;
    }
    tui_opts_t to = {which, (int)pid, rfd, argv[0]};
    int status = tui_main(&to);
    if (waitpid(pid, &st, WNOHANG) == 0) {
        fprintf(stderr, "canopy: its output goes to %s, its log to %s\n", out, log);
    } else { /* what it wrote after the TUI last read (as it stopped), then no trace */
        show_rest(rfd);
        unlink(out), unlink(log);
    }
    close(rfd);
    return status;
}

int cli_tui(int argc, char **argv, const opts_t *o)
{
    if (o->console || !isatty(0) || !isatty(1))
        return cli_attach(argc, argv, o); /* the line console, which works on pipes too */
    tui_opts_t to = {argc ? argv[0] : NULL, 0, -1, NULL};
    return tui_main(&to);
}
