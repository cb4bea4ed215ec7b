/*
 * check.h: CHECK(condition) for the fuzz targets: a condition that does
 * not hold is a finding, so it is printed with where it is, and the
 * process aborts (libFuzzer keeps the input; replay.c's run fails).
 */
#ifndef CN_FUZZ_CHECK_H
#define CN_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif /* CN_FUZZ_CHECK_H */
