/*
 * sp_log — formats each message into a stack buffer and writes it with one
 * write(2), so lines from concurrent processes never interleave mid-line.
 */
#include "sp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SP_LOG_LINE_MAX 1024

static const char *s_role = "stockpipe";
static int s_level = SP_LOG_INFO;

void sp_log_init(const char *role)
{
    s_role = role;
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

void sp_log(int level, const char *fmt, ...)
{
    static const char *prefix[] = {"error: ", "warning: ", "", "debug: "};
    if (level > s_level) {
        return;
    }
    char line[SP_LOG_LINE_MAX];
    int n = snprintf(line, sizeof line, "%s[%ld]: %s", s_role, (long)getpid(),
                     prefix[level < 0              ? 0
                            : level > SP_LOG_DEBUG ? SP_LOG_DEBUG
                                                   : level]);
    if (n < 0) {
        return;
    }
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
