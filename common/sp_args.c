/*
 * sp_args — strtoull/strtod with every way they can be fooled checked:
 * empty strings, signs on unsigned values, trailing junk, overflow, NaN.
 */
#include "sp_args.h"
#include "sp_version.h"

#include "sp_error.h"
#include "sp_log.h"

#include <assert.h>
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_ARGS_LINE_MAX 1024 /* one error line, as long as sp_log writes */

int sp_arg_u64(const char *flag, const char *value, uint64_t min, uint64_t max, uint64_t *out,
               char *why, size_t cap)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = 0;
    bool ok = value != NULL && isdigit((unsigned char)value[0]);
    if (ok) {
        v = strtoull(value, &end, 10);
        ok = errno == 0 && *end == '\0' && v >= min && v <= max;
    }
    if (!ok) {
        snprintf(why, cap, "%s: '%s' is not a whole number from %llu to %llu", flag,
                 value ? value : "", (unsigned long long)min, (unsigned long long)max);
        return SP_E_USAGE;
    }
    *out = v;
    return 0;
}

int sp_arg_u32(const char *flag, const char *value, uint32_t min, uint32_t max, uint32_t *out,
               char *why, size_t cap)
{
    uint64_t v;
    int rc = sp_arg_u64(flag, value, min, max, &v, why, cap);
    if (rc == 0) {
        *out = (uint32_t)v;
    }
    return rc;
}

int sp_arg_range(const char *flag, const char *value, uint32_t min, uint32_t max, uint32_t *lo,
                 uint32_t *hi, char *why, size_t cap)
{
    char first[24];
    const char *dash = value != NULL ? strchr(value, '-') : NULL;
    size_t n = dash != NULL ? (size_t)(dash - value) : 0;
    uint32_t a = 0, b = 0;
    char sub[64];
    int rc = 0;
    if (value == NULL || (dash != NULL && n >= sizeof first)) {
        rc = SP_E_USAGE;
    } else if (dash == NULL) {
        rc = sp_arg_u32(flag, value, min, max, &a, sub, sizeof sub);
        b = a;
    } else {
        memcpy(first, value, n);
        first[n] = '\0';
        rc = sp_arg_u32(flag, first, min, max, &a, sub, sizeof sub);
        if (rc == 0) {
            rc = sp_arg_u32(flag, dash + 1, min, max, &b, sub, sizeof sub);
        }
    }
    if (rc == 0 && a > b) {
        snprintf(why, cap, "%s: '%s' runs backwards (LO-HI with LO <= HI)", flag, value);
        return SP_E_USAGE;
    }
    if (rc < 0) {
        snprintf(why, cap, "%s: '%s' is not a range LO-HI of product ids from %u to %u", flag,
                 value ? value : "", min, max);
        return SP_E_USAGE;
    }
    *lo = a;
    *hi = b;
    return 0;
}

int sp_arg_double(const char *flag, const char *value, double min, double max, double *out,
                  char *why, size_t cap)
{
    char *end = NULL;
    errno = 0;
    double v = 0;
    /* plain decimal only: strtod would also take "+1", hex ("0x1p4"),
     * "inf" and "nan", which nobody means on a command line */
    bool ok = value != NULL && value[0] != '\0' &&
              (isdigit((unsigned char)value[0]) || value[0] == '-' || value[0] == '.');
    for (const char *c = value; ok && *c != '\0'; c++) {
        ok = isdigit((unsigned char)*c) || strchr("-.eE+", *c) != NULL;
    }
    if (ok) {
        v = strtod(value, &end);
        ok = errno == 0 && *end == '\0' && isfinite(v) && v >= min && v <= max;
    }
    if (!ok) {
        snprintf(why, cap, "%s: '%s' is not a number from %g to %g", flag, value ? value : "", min,
                 max);
        return SP_E_USAGE;
    }
    *out = v;
    return 0;
}

int sp_arg_duration(const char *flag, const char *value, double *seconds, char *why, size_t cap)
{
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}, {"", 1}};
    const double max_seconds = 366.0 * 24 * 3600;
    size_t len = value ? strlen(value) : 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t sl = strlen(units[i].suffix);
        if (len <= sl || strcmp(value + len - sl, units[i].suffix) != 0) {
            continue;
        }
        char num[64];
        if (len - sl >= sizeof num) {
            break;
        }
        memcpy(num, value, len - sl);
        num[len - sl] = '\0';
        double v;
        if (sp_arg_double(flag, num, 0, max_seconds / units[i].scale, &v, why, cap) == 0) {
            *seconds = v * units[i].scale;
            return 0;
        }
        break;
    }
    snprintf(why, cap, "%s: '%s' is not a duration like 10, 10s, 500ms or 2m", flag,
             value ? value : "");
    return SP_E_USAGE;
}

int sp_args_next(int argc, char *const argv[], const char *shortopts, const struct option *longopts,
                 int *rc)
{
    if (*rc != 0) {
        return -1;
    }
    if (optind <= 1) {
        /* --version, on every binary, whatever else is asked */
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
            if (strcmp(argv[i], "--version") == 0) {
                *rc = SP_ARGS_VERSION;
                return -1;
            }
        }
    }
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == 'h') {
        *rc = SP_ARGS_HELP;
        return -1;
    }
    if (c == '?' || c == ':') {
        *rc = SP_ARGS_BAD_OPTION;
        return -1;
    }
    return c;
}

/* One error line, the main's way: through sp_log, or as "PROG: ...". */
static void s_say(const sp_args_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_say(const sp_args_cli_t *cli, const char *fmt, ...)
{
    char line[SP_ARGS_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof line, fmt, ap); /* a long line is cut, as sp_log cuts it */
    va_end(ap);
    if (cli->prog == NULL) {
        sp_error("%s", line);
    } else {
        fprintf(stderr, "%s: %s\n", cli->prog, line);
    }
}

int sp_args_done(const sp_args_cli_t *cli, int rc, const char *why, int nleft, char *const left[])
{
    static const char hint[] = " (see --help)";
    assert(cli != NULL && cli->usage != NULL);
    assert(rc <= 0 || rc == SP_ARGS_HELP || rc == SP_ARGS_BAD_OPTION || rc == SP_ARGS_VERSION);
    if (rc == SP_ARGS_HELP) {
        cli->usage(stdout);
        return 0;
    }
    if (rc == SP_ARGS_VERSION) {
        printf("%s %s\n", program_invocation_short_name, sp_version());
        return 0;
    }
    if (rc == SP_ARGS_BAD_OPTION) {
        /* getopt_long has named the option already: one line more, not the
         * whole usage (--help prints that) */
        s_say(cli, "see --help for the options");
        return SP_EXIT_USAGE;
    }
    if (rc < 0) {
        s_say(cli, "%s%s", why != NULL ? why : "", (cli->flags & SP_ARGS_NO_HINT) ? "" : hint);
        return SP_EXIT_USAGE;
    }
    if (nleft > 0 && !(cli->flags & SP_ARGS_OPERANDS)) {
        s_say(cli, "unexpected argument '%s'%s", left[0], hint);
        return SP_EXIT_USAGE;
    }
    return SP_ARGS_GO;
}
