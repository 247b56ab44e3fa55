/*
 * spf_util — what every fuzz harness body shares: the abort that reports a
 * broken invariant.
 */
#include "spf.h"

const char *spf_current_input = NULL;

void spf_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz invariant broken: %s%s%s\n", file, line, what,
            spf_current_input ? " (input " : "", spf_current_input ? spf_current_input : "");
    if (spf_current_input) {
        fputs(")\n", stderr);
    }
    abort();
}
