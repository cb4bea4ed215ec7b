/*
 * bench.h: the shared harness for canopy's benchmarks.
 *
 * Every figure is reported as a ratio to a baseline measured in the same
 * run, because these machines are shared and noisy: absolute numbers move
 * by 20-30% from run to run, ratios much less. A figure is printed as a
 * table row, and appended as one JSON member to the file named by
 * --json FILE, which tests/bench/run.sh assembles into build/bench.json.
 */
#ifndef CN_BENCH_H
#define CN_BENCH_H

#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs fn(arg, iters) in batches until `seconds` have passed, `trials`
 * times, and returns the median rate in iterations per second. */
static inline double bench_rate(void (*fn)(void *, long), void *arg, double seconds, int trials)
{
    double rates[16];
    if (trials > 16)
        trials = 16;
    for (int t = 0; t < trials; t++) {
        long iters = 0, batch = 1000;
        double start = bench_now(), now;
        do {
            fn(arg, batch);
            iters += batch;
            now = bench_now();
        } while (now - start < seconds);
        rates[t] = (double)iters / (now - start);
    }
    for (int i = 1; i < trials; i++) /* insertion sort; trials is tiny */
        for (int j = i; j > 0 && rates[j] < rates[j - 1]; j--) {
            double x = rates[j];
            rates[j] = rates[j - 1], rates[j - 1] = x;
        }
    return rates[trials / 2];
}

typedef struct bench_out {
    FILE *json; /* NULL when --json was not given */
} bench_out_t;

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of n figures (sorts v). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return v[n / 2];
}

static inline void bench_open(bench_out_t *o, int argc, char **argv)
{
    o->json = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--json") == 0 && (o->json = fopen(argv[i + 1], "a")) == NULL) {
            perror(argv[i + 1]);
            exit(1);
        }
}

/* One figure: `value` in `unit`, against `baseline` in the same unit. */
static inline void bench_report(bench_out_t *o, const char *name, double value, const char *unit,
                                double baseline, const char *baseline_desc)
{
    double ratio = baseline > 0 ? value / baseline : 0;
    printf("%-28s %14.1f %-8s  baseline %14.1f (%s)  ratio %.2f\n", name, value, unit, baseline,
           baseline_desc, ratio);
    if (o->json)
        fprintf(o->json,
                "\"%s\": {\"value\": %.3f, \"unit\": \"%s\", \"baseline\": %.3f, "
                "\"ratio\": %.4f}\n",
                name, value, unit, baseline, ratio);
}

/* A "Name:  N kB" figure from /proc/PID/FILE (status, smaps_rollup), or -1. */
static inline long bench_proc_kib(int pid, const char *file, const char *field)
{
    char path[64], line[256], fmt[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
    snprintf(fmt, sizeof(fmt), "%s: %%ld kB", field);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, fmt, &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static inline int bench_find_uv(struct dl_phdr_info *info, size_t size, void *found)
{
    (void)size;
    if (strstr(info->dlpi_name, "/libuv.so") != NULL)
        *(int *)found = 1;
    return 0;
}

/* How this program has libuv: "shared" if the loader mapped libuv.so,
 * else "static" (the Makefile's STATIC_DEPS). Spawn time and an actor's
 * RSS depend on it. */
static inline const char *bench_deps_linking(void)
{
    int found = 0;
    dl_iterate_phdr(bench_find_uv, &found);
    return found ? "shared" : "static";
}

static inline void bench_close(bench_out_t *o)
{
    if (o->json)
        fclose(o->json);
}

#endif /* CN_BENCH_H */
