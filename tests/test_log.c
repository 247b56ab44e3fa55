/*
 * test_log — sp_log's time stamps: SP_LOG_TIME=1 stamps every line with the
 * UTC time, 0 never, and unset stamps them when stderr is not a terminal (a
 * file here, a pseudo-terminal for the terminal case).  Each case runs in a
 * child process, so the environment and the log settings stay its own.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sp_log.h"

#define T_OUT_CAP 1024

/* Runs sp_log_init("tlog") and one info line in a child whose stderr is
 * `fd`, with SP_LOG_TIME set to `time_env` (NULL: unset). */
static void s_log_child(int fd, const char *time_env)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (dup2(fd, STDERR_FILENO) < 0) {
            _exit(3);
        }
        if (time_env != NULL) {
            setenv("SP_LOG_TIME", time_env, 1);
        } else {
            unsetenv("SP_LOG_TIME");
        }
        unsetenv("SP_LOG_LEVEL");
        sp_log_init("tlog");
        sp_info("hello %d", 42);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the logging child failed");
}

/* What a child logged to a file (static buffer). */
static const char *s_logged_to_file(const char *time_env)
{
    static char out[T_OUT_CAP];
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    s_log_child(fileno(f), time_env);
    rewind(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

/* Whether `line` is "YYYY-MM-DDTHH:MM:SS.mmmZ tlog[PID]: hello 42\n" with a
 * time within a minute of now. */
static bool s_stamped(const char *line)
{
    regex_t re;
    cr_assert_eq(regcomp(&re,
                         "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\\.[0-9]{3}Z "
                         "tlog\\[[0-9]+\\]: hello 42\n$",
                         REG_EXTENDED),
                 0);
    regmatch_t m[2];
    bool ok = regexec(&re, line, 2, m, 0) == 0;
    regfree(&re);
    if (!ok) {
        return false;
    }
    struct tm tm = {0};
    char stamp[32];
    snprintf(stamp, sizeof stamp, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
    cr_assert_not_null(strptime(stamp, "%Y-%m-%dT%H:%M:%S", &tm), "%s", stamp);
    time_t then = timegm(&tm);
    time_t now = time(NULL);
    cr_expect(then <= now && now - then < 60, "the stamp %s is UTC now (%ld s off)", stamp,
              (long)(now - then));
    return true;
}

static bool s_plain(const char *line)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, "^tlog\\[[0-9]+\\]: hello 42\n$", REG_EXTENDED), 0);
    bool ok = regexec(&re, line, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

Test(log, time_1_stamps_each_line_with_the_utc_time)
{
    const char *out = s_logged_to_file("1");
    cr_expect(s_stamped(out), "got: %s", out);
}

Test(log, time_0_leaves_the_lines_unstamped_off_a_terminal)
{
    const char *out = s_logged_to_file("0");
    cr_expect(s_plain(out), "got: %s", out);
}

Test(log, unset_stamps_the_lines_when_stderr_is_not_a_terminal)
{
    const char *out = s_logged_to_file(NULL);
    cr_expect(s_stamped(out), "got: %s", out);
}

Test(log, a_bad_time_value_is_named_and_the_default_kept)
{
    const char *out = s_logged_to_file("yes");
    cr_expect(strstr(out, "SP_LOG_TIME='yes' is not 0 or 1") != NULL, "got: %s", out);
    const char *second = strchr(out, '\n');
    cr_assert_not_null(second);
    cr_expect(s_stamped(second + 1), "off a terminal the default stamps: %s", second + 1);
}

/* Reads what the child wrote to the pseudo-terminal until its line ends. */
static void s_read_line(int master, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap && memchr(out, '\n', n) == NULL) {
        ssize_t r = read(master, out + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
        out[n] = '\0';
    }
    out[n] = '\0';
}

Test(log, unset_leaves_the_lines_unstamped_on_a_terminal)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(master, 0, "posix_openpt: %s", strerror(errno));
    cr_assert_eq(grantpt(master), 0);
    cr_assert_eq(unlockpt(master), 0);
    const char *name = ptsname(master);
    cr_assert_not_null(name);
    int slave = open(name, O_RDWR | O_NOCTTY);
    cr_assert_geq(slave, 0, "%s: %s", name, strerror(errno));
    s_log_child(slave, NULL);
    close(slave);
    char out[T_OUT_CAP] = "";
    s_read_line(master, out, sizeof out);
    close(master);
    /* the terminal turns "\n" into "\r\n" */
    char *cr = strstr(out, "\r\n");
    if (cr != NULL) {
        memmove(cr, cr + 1, strlen(cr + 1) + 1);
    }
    cr_expect(s_plain(out), "got: %s", out);
}
