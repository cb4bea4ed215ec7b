/*
 * sigint_root.c: a root that leaves SIGINT to the runtime, for
 * test_sigint.sh. argv[1]:
 *   sleep     main waits in cn_sleep, which the cancel wakes; returns 7
 *   busy      main never reaches a cancellation point
 *   stubborn  like sleep, plus a child (fake_child stubborn, argv[2]) that
 *             ignores SHUTDOWN and SIGTERM, so only a second SIGINT ends it
 *   slowkid   like sleep, then prints "spawning late" and spawns a child
 *             whose main sleeps 2 s before cn_run (a program's own start-up):
 *             a Ctrl-C to the whole process group lands in that window
 * Each starts two served children first and prints "ready" once they are up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canopy.h"

static int root_main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "sleep";
    cn_portal_t p;
    if (cn_spawn("kid-0", NULL, &p, 5000) != 0 || cn_spawn("kid-1", NULL, &p, 5000) != 0)
        return 1;
    if (strcmp(mode, "stubborn") == 0) {
        const char *fargv[] = {"stubborn", NULL};
        cn_spawn_opts_t o = {.exe = argc > 2 ? argv[2] : "fake_child", .argv = fargv};
        if (cn_spawn("mule", &o, &p, 5000) != 0)
            return 1;
    }
    printf("ready\n");
    fflush(stdout);
    if (strcmp(mode, "slowkid") == 0) {
        const char *sargv[] = {"slow-start", NULL};
        cn_spawn_opts_t o = {.argv = sargv};
        printf("spawning late\n");
        fflush(stdout);
        printf("spawn of late: %s\n", cn_strerror(cn_spawn("late", &o, &p, 10000)));
        fflush(stdout);
    }
    if (strcmp(mode, "busy") == 0)
        for (;;)
            sleep(1);
    int rc = cn_sleep(CN_FOREVER);
    printf("main woke: %s\n", cn_strerror(rc));
    fflush(stdout);
    return 7;
}

int main(int argc, char **argv)
{
    if (getenv("CANOPY_FD") && argc > 1 && strcmp(argv[1], "slow-start") == 0)
        sleep(2); /* a child still in its program's start-up, before cn_run */
    cn_config_t cfg = {.name = "root", .main = root_main};
    return cn_run(argc, argv, &cfg);
}
