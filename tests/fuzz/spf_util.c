/*
 * spf_util — what every fuzz harness body shares: the abort that reports a
 * broken invariant.
 */
#include "spf.h"

const char *spf_current_input = NULL;

void spf_fail(const char *file, int line, const char *what)
{
    if (spf_current_input != NULL) {
        fprintf(stderr, "%s:%d: fuzz invariant broken: %s (input %s)\n", file, line, what,
                spf_current_input);
    } else {
        fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", file, line, what);
    }
    abort();
}
