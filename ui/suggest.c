/*
 * suggest.c: "did you mean ...?" for a mistyped command or actor name.
 */
#include <string.h>

#include "ui.h"

/* Edit distance (insert, delete, substitute, swap two neighbours) between
 * a and b, or `most` + 1 once it is known to pass `most`. Both are short
 * (names), longer ones are cut at 63 characters. */
static size_t distance(const char *a, const char *b, size_t most)
{
    enum { MAX = 64 };
    size_t n = strnlen(a, MAX - 1), m = strnlen(b, MAX - 1);
    if ((n > m ? n - m : m - n) > most)
        return most + 1;
    size_t d[MAX][MAX];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *ui_suggest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word), most = len < 4 ? 1 : len < 9 ? 2 : 3, best = most + 1;
    const char *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        if (cands[i] == NULL || strcmp(cands[i], word) == 0)
            continue;
        size_t d = distance(word, cands[i], most);
        if (d < best) {
            best = d;
            pick = cands[i];
        }
    }
    return pick;
}
