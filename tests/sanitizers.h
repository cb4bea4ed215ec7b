/*
 * sanitizers.h: which sanitizer this test binary was built with, for the
 * few checks that measure what a sanitizer changes (memory it keeps,
 * frames it enlarges). gcc says so with __SANITIZE_*__, clang with
 * __has_feature.
 *   CN_TEST_UNDER_ASAN  AddressSanitizer
 *   CN_TEST_UNDER_TSAN  ThreadSanitizer
 * and, at run time, cn_test_under_valgrind(): whether valgrind runs this
 * process (`make memcheck`), through valgrind's own client request where
 * its header is installed (0 where it is not: nor is valgrind, then).
 */
#ifndef CN_TEST_SANITIZERS_H
#define CN_TEST_SANITIZERS_H

#if defined(__SANITIZE_ADDRESS__)
#define CN_TEST_UNDER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define CN_TEST_UNDER_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(CN_TEST_UNDER_ASAN)
#define CN_TEST_UNDER_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(CN_TEST_UNDER_TSAN)
#define CN_TEST_UNDER_TSAN 1
#endif
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CN_TEST_VALGRIND_H 1
#endif
#endif

static inline int cn_test_under_valgrind(void)
{
#ifdef CN_TEST_VALGRIND_H
    return RUNNING_ON_VALGRIND != 0;
#else
    return 0;
#endif
}

#endif /* CN_TEST_SANITIZERS_H */
