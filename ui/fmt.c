/*
 * fmt.c: how the tool writes ages and sizes, the same in every command
 * and in the TUI, in five characters at most (the TUI's columns): the
 * seconds are left out past ten minutes, the minutes past ten hours.
 */
#include <stdio.h>

#include "ui.h"

const char *ui_plural(size_t n)
{
    return n == 1 ? "" : "s";
}

const char *ui_fmt_age(char *out, size_t n, uint64_t us)
{
    unsigned long long s = us / 1000000;
    if (us < 1000000)
        snprintf(out, n, "%llums", (unsigned long long)(us / 1000));
    else if (us < 10000000)
        snprintf(out, n, "%.1fs", (double)us / 1e6);
    else if (s < 60)
        snprintf(out, n, "%llus", s);
    else if (s < 600)
        snprintf(out, n, "%llum%02llus", s / 60, s % 60);
    else if (s < 3600)
        snprintf(out, n, "%llum", s / 60);
    else if (s < 36000)
        snprintf(out, n, "%lluh%02llum", s / 3600, s / 60 % 60);
    else if (s < 86400)
        snprintf(out, n, "%lluh", s / 3600);
    else if (s < 864000)
        snprintf(out, n, "%llud%02lluh", s / 86400, s / 3600 % 24);
    else
        snprintf(out, n, "%llud", s / 86400);
    return out;
}

const char *ui_fmt_kib(char *out, size_t n, int64_t kib)
{
    if (kib < 0)
        snprintf(out, n, "-");
    else if (kib < 10000)
        snprintf(out, n, "%lldK", (long long)kib);
    else if (kib < 10000 * 1024LL)
        snprintf(out, n, "%lldM", (long long)(kib / 1024));
    else if (kib < 100 * 1024 * 1024LL)
        snprintf(out, n, "%.1fG", (double)kib / (1024 * 1024));
    else
        snprintf(out, n, "%lldG", (long long)(kib / (1024 * 1024)));
    return out;
}
