/*
 * test_errors.c: the error table in include/canopy/errors.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "canopy.h"

static const struct {
    int value;
    const char *name;
} table[] = {
#define E(name, value, msg) {CN_##name, "CN_" #name},
    CN_ERRNO_MAP(E)
#undef E
};
#define N (sizeof(table) / sizeof(table[0]))

static void test_codes_negative_and_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < N; i++) {
        assert_true(table[i].value < 0);
        for (size_t j = i + 1; j < N; j++)
            assert_int_not_equal(table[i].value, table[j].value);
    }
}

static void test_every_code_has_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < N; i++) {
        assert_string_equal(cn_err_name(table[i].value), table[i].name);
        const char *msg = cn_strerror(table[i].value);
        assert_non_null(msg);
        assert_string_not_equal(msg, "unknown error");
        for (size_t j = i + 1; j < N; j++)
            assert_string_not_equal(msg, cn_strerror(table[j].value));
    }
}

static void test_errno_values_and_unknown(void **state)
{
    (void)state;
    assert_int_equal(CN_ETIMEDOUT, -ETIMEDOUT);
    assert_int_equal(CN_ECANCELED, -ECANCELED);
    assert_string_equal(cn_strerror(0), "success");
    assert_string_equal(cn_err_name(0), "CN_OK");
    assert_string_equal(cn_strerror(-99999), "unknown error");
    assert_string_equal(cn_err_name(12345), "CN_EUNKNOWN");
    assert_string_equal(cn_version_string(), CN_VERSION_STRING);
}

/* docs/errors.md lists exactly the codes in the table, once each. */
static void test_errors_doc_matches_table(void **state)
{
    (void)state;
    const char *path = CN_TOP_SRCDIR "/docs/errors.md";
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        fail_msg("cannot open %s", path);
    int seen[N] = {0}, rows = 0;
    char line[512];
    while (fgets(line, sizeof(line), fp)) {
        char name[64];
        if (sscanf(line, "| `%63[A-Z_]` |", name) != 1 || strncmp(name, "CN_E", 4) != 0)
            continue;
        size_t i;
        for (i = 0; i < N; i++)
            if (strcmp(table[i].name, name) == 0)
                break;
        if (i == N)
            fail_msg("docs/errors.md lists %s, which errors.h does not define", name);
        if (seen[i]++)
            fail_msg("docs/errors.md lists %s twice", name);
        rows++;
    }
    fclose(fp);
    for (size_t i = 0; i < N; i++)
        if (!seen[i])
            fail_msg("docs/errors.md does not list %s", table[i].name);
    assert_int_equal(rows, (int)N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_negative_and_distinct),
        cmocka_unit_test(test_every_code_has_text),
        cmocka_unit_test(test_errno_values_and_unknown),
        cmocka_unit_test(test_errors_doc_matches_table),
    };
    return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
