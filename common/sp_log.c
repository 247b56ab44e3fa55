/*
 * sp_log — formats each message into a stack buffer and writes it with one
 * write(2), so lines from concurrent processes never interleave mid-line.
 * Lines start with the UTC time (RFC 3339, milliseconds) when SP_LOG_TIME=1,
 * or when it is unset and stderr is not a terminal (a log file, a pipe).
 */
#include "sp_log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SP_LOG_LINE_MAX 1024

static const char *s_role = "stockpipe";
static int s_level = SP_LOG_INFO;
static bool s_time = false;

/* SP_LOG_TIME: 1 stamps every line, 0 none; unset: when stderr is not a
 * terminal. */
static void s_init_time(void)
{
    const char *env = getenv("SP_LOG_TIME");
    s_time = isatty(STDERR_FILENO) == 0;
    if (env == NULL || env[0] == '\0') {
        return;
    }
    if (strcmp(env, "0") == 0 || strcmp(env, "1") == 0) {
        s_time = env[0] == '1';
        return;
    }
    sp_warn("SP_LOG_TIME='%.40s' is not 0 or 1: %s", env,
            s_time ? "stamping lines (stderr is not a terminal)" : "no time stamps (a terminal)");
}

void sp_log_init(const char *role)
{
    s_role = role;
    s_init_time();
    const char *env = getenv("SP_LOG_LEVEL");
    if (env == NULL) {
        return;
    }
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
        if (strcasecmp(env, names[i]) == 0) {
            s_level = i;
            return;
        }
    }
    /* a typo must not silently change what is logged */
    sp_warn("SP_LOG_LEVEL='%.40s' is not error, warn, info or debug: logging at info", env);
}

void sp_log_set_level(int level)
{
    s_level = level;
}

/* "2026-12-04T21:45:01.123Z " into line; returns its length (0 when off). */
static int s_stamp(char *line, size_t cap)
{
    if (!s_time) {
        return 0;
    }
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || gmtime_r(&ts.tv_sec, &tm) == NULL) {
        return 0;
    }
    size_t n = strftime(line, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0) {
        return 0;
    }
    int m = snprintf(line + n, cap - n, ".%03ldZ ", ts.tv_nsec / 1000000L);
    return m < 0 ? 0 : (int)n + m;
}

void sp_log(int level, const char *fmt, ...)
{
    static const char *prefix[] = {"error: ", "warning: ", "", "debug: "};
    if (level > s_level) {
        return;
    }
    char line[SP_LOG_LINE_MAX];
    int t = s_stamp(line, sizeof line);
    int n = snprintf(line + t, sizeof line - (size_t)t, "%s[%ld]: %s", s_role, (long)getpid(),
                     prefix[level < 0              ? 0
                            : level > SP_LOG_DEBUG ? SP_LOG_DEBUG
                                                   : level]);
    if (n < 0) {
        return;
    }
    n += t;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
    }
    line[len++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, len);
    (void)rc;
}
