/*
 * Tests for sp_child: a child process from start to reap.
 *
 * Real processes throughout: /bin/true and /bin/false spawned, functions
 * forked that say ready, report, hang or die.  Each test checks the exact
 * code of the call, the wait status it left, and that no zombie is left
 * behind (waitpid on the pid finds nothing to reap).  Deadlines are short
 * but far above what the children need, so a busy machine is not a failure.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_child.h"
#include "sp_error.h"
#include "sp_time.h"

#define T_SHORT_MS  200   /* a deadline a child that does nothing misses */
#define T_LONG_MS   10000 /* a deadline a working child always meets */
#define T_HANG_S    60    /* how long a hanging child would sleep */
#define T_EXIT_CODE 7
#define T_LOG_CAP   256

static uint64_t s_in_ms(unsigned ms)
{
    return sp_now_ns() + (uint64_t)ms * SP_NS_PER_MS;
}

/* Nothing left to reap under that pid: not a zombie, not running. */
static void s_expect_no_zombie(pid_t pid)
{
    int status;
    errno = 0;
    cr_expect_eq(waitpid(pid, &status, WNOHANG), -1, "pid %d is still ours to reap", (int)pid);
    cr_expect_eq(errno, ECHILD);
}

/* Whether a process that is not our child has gone (or is a zombie its new
 * parent has not reaped yet). */
static bool s_gone(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH) {
        return true;
    }
    char path[64], stat[256] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return true;
    }
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    (void)fclose(f);
    stat[n] = '\0';
    const char *end = strrchr(stat, ')');
    return end != NULL && end[1] == ' ' && end[2] == 'Z';
}

/* ---- forked children ---- */

static int s_returns_code(void *arg, int fd)
{
    (void)arg;
    (void)fd;
    return T_EXIT_CODE;
}

static int s_ready_then_exit(void *arg, int fd)
{
    (void)arg;
    return sp_child_say_ready(fd) == 0 ? 0 : 1;
}

static int s_ready_then_hang(void *arg, int fd)
{
    (void)arg;
    sp_child_say_ready(fd);
    sleep(T_HANG_S);
    return 0;
}

static int s_hang(void *arg, int fd)
{
    (void)arg;
    (void)fd;
    sleep(T_HANG_S);
    return 0;
}

static int s_wrong_byte(void *arg, int fd)
{
    (void)arg;
    return sp_child_write(fd, "x", 1) == 0 ? 0 : 1;
}

static int s_exit_with(void *arg, int fd)
{
    (void)fd;
    return *(const int *)arg;
}

typedef struct {
    int a;
    double b;
    char text[32];
} t_report_t;

static int s_report(void *arg, int fd)
{
    (void)arg;
    t_report_t rep;
    memset(&rep, 0, sizeof rep); /* the padding after `a` is written too */
    rep.a = 42;
    rep.b = 2.5;
    snprintf(rep.text, sizeof rep.text, "%s", "from the child");
    return sp_child_write(fd, &rep, sizeof rep) == 0 ? 0 : 1;
}

/* Starts a grandchild in the same group that hangs, reports its pid. */
static int s_parent_of_hanger(void *arg, int fd)
{
    (void)arg;
    pid_t g = fork();
    if (g == 0) {
        sleep(T_HANG_S);
        _exit(0);
    }
    sp_child_write(fd, &g, sizeof g);
    sleep(T_HANG_S);
    return 0;
}

static bool s_stop_now(void)
{
    return true;
}

/* Forks fn with a pipe into *c and awaits it alone (its "ready" or its
 * exit) for `ms`; expects the await to end with `want`, naming it. */
static void s_expect_await(sp_child_t *c, sp_child_fn *fn, bool ready, unsigned ms, int want)
{
    size_t which = SIZE_MAX;
    cr_assert_eq(sp_child_fork(c, SP_CHILD_PIPE, fn, NULL), 0);
    int rc = ready ? sp_child_await_ready(c, 1, s_in_ms(ms), &which)
                   : sp_child_await_exit(c, 1, s_in_ms(ms), &which);
    cr_expect_eq(rc, want, "await %s gave %d", ready ? "ready" : "exit", rc);
    cr_expect_eq(which, want == 0 ? SIZE_MAX : 0);
}

/* ---- spawn ---- */

Test(child, spawn_true_exits_0_and_is_reaped)
{
    char *argv[] = {"/bin/true", NULL};
    sp_child_t c;

    cr_assert_eq(sp_child_spawn(&c, argv, 0, NULL), 0);
    cr_expect_gt(c.pid, 0);
    cr_expect_eq(c.fd, -1, "a spawned child has no pipe");
    cr_expect_eq(sp_child_reap(&c), 0);

    cr_expect(c.reaped);
    cr_expect(WIFEXITED(c.status));
    cr_expect_eq(WEXITSTATUS(c.status), 0);
    s_expect_no_zombie(c.pid);
}

Test(child, spawn_false_exits_1_and_says_so)
{
    char *argv[] = {"/bin/false", NULL};
    sp_child_t c;
    char how[48];

    cr_assert_eq(sp_child_spawn(&c, argv, 0, NULL), 0);
    cr_assert_eq(sp_child_reap(&c), 0);

    cr_expect_str_eq(sp_child_explain(c.status, how, sizeof how), "exited with status 1");
    s_expect_no_zombie(c.pid);
}

Test(child, spawn_looks_in_path_only_when_asked)
{
    char *argv[] = {"true", NULL};
    sp_child_t c;

    cr_expect_eq(sp_child_spawn(&c, argv, 0, NULL), -ENOENT, "a bare name is a path");
    cr_expect_eq(c.pid, 0, "not started");
    cr_assert_eq(sp_child_spawn(&c, argv, SP_CHILD_SEARCH, NULL), 0);
    cr_expect_eq(sp_child_reap(&c), 0);
    cr_expect_eq(WEXITSTATUS(c.status), 0);
}

Test(child, spawn_refuses_a_missing_program_and_no_argv)
{
    char *argv[] = {"/nonexistent/sp-child-test", NULL};
    char *empty[] = {NULL};
    sp_child_t c;

    cr_expect_eq(sp_child_spawn(&c, argv, 0, NULL), -ENOENT);
    cr_expect_eq(c.pid, 0);
    cr_expect_eq(sp_child_spawn(&c, empty, 0, NULL), -EINVAL);
    cr_expect_eq(c.pid, 0);
}

Test(child, spawn_sends_stdout_and_stderr_to_the_log)
{
    char log[] = "/tmp/sp-child-log-XXXXXX";
    int fd = mkstemp(log);
    cr_assert_geq(fd, 0);
    close(fd);
    char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2", NULL};
    sp_child_t c;

    cr_assert_eq(sp_child_spawn(&c, argv, 0, log), 0);
    cr_assert_eq(sp_child_reap(&c), 0);

    char got[T_LOG_CAP] = "";
    FILE *f = fopen(log, "r");
    cr_assert_not_null(f);
    size_t n = fread(got, 1, sizeof got - 1, f);
    (void)fclose(f);
    got[n] = '\0';
    unlink(log);
    cr_expect_str_eq(got, "out\nerr\n");
}

/* ---- fork and the ready handshake ---- */

Test(child, fork_exits_with_what_the_function_returns)
{
    sp_child_t c;

    cr_assert_eq(sp_child_fork(&c, 0, s_returns_code, NULL), 0);
    cr_expect_eq(c.fd, -1, "no pipe without SP_CHILD_PIPE");
    cr_expect_eq(sp_child_reap(&c), 0);

    cr_expect(WIFEXITED(c.status));
    cr_expect_eq(WEXITSTATUS(c.status), T_EXIT_CODE);
    s_expect_no_zombie(c.pid);
}

Test(child, ready_child_is_seen_ready_then_exits)
{
    sp_child_t c;
    size_t which = SIZE_MAX;

    s_expect_await(&c, s_ready_then_exit, true, T_LONG_MS, 0);
    cr_expect(c.ready);
    cr_expect_eq(sp_child_await_exit(&c, 1, s_in_ms(T_LONG_MS), &which), 0);

    cr_expect(c.reaped);
    cr_expect_eq(c.fd, -1, "the reap closed the pipe");
    s_expect_no_zombie(c.pid);
}

Test(child, never_ready_child_is_timed_out_then_killed)
{
    sp_child_t c;

    s_expect_await(&c, s_hang, true, T_SHORT_MS, SP_E_TIMEOUT);
    cr_expect_not(c.ready);
    cr_expect_eq(sp_child_wait(&c, 0), SP_E_TIMEOUT, "a past deadline kills at once");

    cr_expect(WIFSIGNALED(c.status));
    cr_expect_eq(WTERMSIG(c.status), SIGKILL);
    s_expect_no_zombie(c.pid);
}

Test(child, child_that_dies_before_ready_is_named)
{
    sp_child_t kids[2];
    size_t which = SIZE_MAX;
    int code = 3;

    cr_assert_eq(sp_child_fork(&kids[0], SP_CHILD_PIPE, s_ready_then_hang, NULL), 0);
    cr_assert_eq(sp_child_fork(&kids[1], SP_CHILD_PIPE, s_exit_with, &code), 0);

    cr_expect_eq(sp_child_await_ready(kids, 2, s_in_ms(T_LONG_MS), &which), -EPIPE);
    cr_expect_eq(which, 1);
    cr_expect_eq(sp_child_reap(&kids[1]), 0);
    cr_expect_eq(WEXITSTATUS(kids[1].status), code);
    cr_expect_eq(sp_child_wait(&kids[0], 0), SP_E_TIMEOUT);
    s_expect_no_zombie(kids[0].pid);
    s_expect_no_zombie(kids[1].pid);
}

Test(child, another_byte_than_ready_is_a_protocol_error)
{
    sp_child_t c;

    s_expect_await(&c, s_wrong_byte, true, T_LONG_MS, -EPROTO);
    cr_expect_eq(sp_child_reap(&c), 0);
    s_expect_no_zombie(c.pid);
}

Test(child, await_needs_pipes_and_a_bounded_count)
{
    sp_child_t c;
    size_t which;

    cr_assert_eq(sp_child_fork(&c, 0, s_returns_code, NULL), 0);
    cr_expect_eq(sp_child_await_ready(&c, 1, s_in_ms(T_LONG_MS), &which), -EINVAL);
    cr_expect_eq(sp_child_await_exit(&c, 1, s_in_ms(T_LONG_MS), &which), -EINVAL);
    cr_expect_eq(sp_child_await_exit(&c, SP_CHILD_AWAIT_MAX + 1, 0, &which), -EINVAL);
    cr_expect_eq(sp_child_reap(&c), 0);
}

/* ---- waiting for the end ---- */

Test(child, await_exit_names_the_child_that_failed)
{
    int codes[2] = {0, 3};
    sp_child_t kids[2];
    size_t which = SIZE_MAX;

    cr_assert_eq(sp_child_fork(&kids[0], SP_CHILD_PIPE, s_exit_with, &codes[0]), 0);
    cr_assert_eq(sp_child_fork(&kids[1], SP_CHILD_PIPE, s_exit_with, &codes[1]), 0);
    int rc = sp_child_await_exit(kids, 2, s_in_ms(T_LONG_MS), &which);
    /* the failure may have come first, leaving the other to reap */
    cr_expect_eq(sp_child_reap(&kids[0]), 0);

    cr_expect_eq(rc, -ECHILD);
    cr_expect_eq(which, 1);
    cr_expect(kids[1].reaped);
    cr_expect_eq(WEXITSTATUS(kids[1].status), 3);
    s_expect_no_zombie(kids[0].pid);
    s_expect_no_zombie(kids[1].pid);
}

Test(child, await_exit_times_out_on_a_child_still_running)
{
    sp_child_t c;

    s_expect_await(&c, s_ready_then_hang, false, T_SHORT_MS, SP_E_TIMEOUT);
    cr_expect_not(c.reaped);
    cr_expect_eq(sp_child_wait(&c, 0), SP_E_TIMEOUT);
    s_expect_no_zombie(c.pid);
}

Test(child, wait_returns_0_for_a_child_that_ends_in_time)
{
    char *argv[] = {"/bin/true", NULL};
    sp_child_t c;

    cr_assert_eq(sp_child_spawn(&c, argv, 0, NULL), 0);
    cr_expect_eq(sp_child_wait(&c, s_in_ms(T_LONG_MS)), 0);
    cr_expect(WIFEXITED(c.status));
    cr_expect_eq(sp_child_wait(&c, 0), 0, "waiting again changes nothing");
    s_expect_no_zombie(c.pid);
}

Test(child, wait_kills_a_child_past_its_deadline)
{
    sp_child_t c;
    uint64_t t0 = sp_now_ns();

    cr_assert_eq(sp_child_fork(&c, 0, s_hang, NULL), 0);
    cr_expect_eq(sp_child_wait(&c, s_in_ms(T_SHORT_MS)), SP_E_TIMEOUT);

    cr_expect_geq(sp_now_ns() - t0, (uint64_t)T_SHORT_MS * SP_NS_PER_MS, "waited the deadline");
    cr_expect_eq(WTERMSIG(c.status), SIGKILL);
    s_expect_no_zombie(c.pid);
}

/* ---- the report ---- */

Test(child, read_gets_the_childs_report)
{
    sp_child_t c;
    t_report_t rep = {0};

    cr_assert_eq(sp_child_fork(&c, SP_CHILD_PIPE, s_report, NULL), 0);
    cr_expect_eq(sp_child_read(&c, &rep, sizeof rep, s_in_ms(T_LONG_MS), NULL), 0);
    cr_expect_eq(rep.a, 42);
    cr_expect_float_eq(rep.b, 2.5, 1e-12);
    cr_expect_str_eq(rep.text, "from the child");
    cr_expect_eq(sp_child_reap(&c), 0);
    cr_expect_eq(WEXITSTATUS(c.status), 0);
}

Test(child, read_says_epipe_when_the_child_ends_without_reporting)
{
    sp_child_t c;
    t_report_t rep;

    cr_assert_eq(sp_child_fork(&c, SP_CHILD_PIPE, s_returns_code, NULL), 0);
    cr_expect_eq(sp_child_read(&c, &rep, sizeof rep, s_in_ms(T_LONG_MS), NULL), -EPIPE);
    cr_expect_eq(sp_child_reap(&c), 0);
    cr_expect_eq(WEXITSTATUS(c.status), T_EXIT_CODE);
}

Test(child, read_gives_up_at_the_deadline_or_when_told_to_stop)
{
    sp_child_t c;
    t_report_t rep;

    cr_assert_eq(sp_child_fork(&c, SP_CHILD_PIPE, s_hang, NULL), 0);
    cr_expect_eq(sp_child_read(&c, &rep, sizeof rep, s_in_ms(T_SHORT_MS), NULL), SP_E_TIMEOUT);
    cr_expect_eq(sp_child_read(&c, &rep, sizeof rep, SP_CHILD_FOREVER, s_stop_now), SP_E_STOPPED);
    cr_expect_eq(sp_child_wait(&c, 0), SP_E_TIMEOUT);
    s_expect_no_zombie(c.pid);
}

/* ---- signals, groups, the never-started ---- */

Test(child, group_signal_reaches_the_grandchildren)
{
    sp_child_t c;
    pid_t grandchild = 0;

    cr_assert_eq(sp_child_fork(&c, SP_CHILD_PIPE | SP_CHILD_GROUP, s_parent_of_hanger, NULL), 0);
    cr_assert_eq(sp_child_read(&c, &grandchild, sizeof grandchild, s_in_ms(T_LONG_MS), NULL), 0);
    cr_expect_eq(getpgid(grandchild), c.pid, "the grandchild is in the child's group");
    cr_expect_eq(sp_child_signal(&c, SIGKILL), 0);
    cr_expect_eq(sp_child_reap(&c), 0);

    uint64_t deadline = s_in_ms(T_LONG_MS);
    while (!s_gone(grandchild) && sp_now_ns() < deadline) {
        sp_sleep_ns(SP_CHILD_POLL_MS * SP_NS_PER_MS);
    }
    cr_expect(s_gone(grandchild), "grandchild %d outlived the group kill", (int)grandchild);
    s_expect_no_zombie(c.pid);
}

Test(child, reaped_child_is_never_signalled_again)
{
    char *argv[] = {"/bin/true", NULL};
    sp_child_t c;

    cr_assert_eq(sp_child_spawn(&c, argv, 0, NULL), 0);
    cr_assert_eq(sp_child_reap(&c), 0);

    cr_expect_eq(sp_child_signal(&c, SIGKILL), -ESRCH);
    cr_expect_eq(sp_child_reap(&c), 0, "reaping again is harmless");
}

Test(child, never_started_child_is_left_alone)
{
    sp_child_t c = {0}; /* fd 0: must not be closed */
    size_t which;
    char buf[4];

    cr_expect_eq(sp_child_signal(&c, SIGKILL), -ESRCH);
    cr_expect_eq(sp_child_reap(&c), -ECHILD);
    cr_expect_eq(sp_child_wait(&c, 0), -ECHILD);
    cr_expect_eq(sp_child_read(&c, buf, sizeof buf, 0, NULL), -EINVAL);
    cr_expect_eq(sp_child_await_exit(&c, 1, 0, &which), 0, "nothing running to wait for");
    sp_child_close(&c);
    cr_expect_geq(fcntl(STDIN_FILENO, F_GETFD), 0, "stdin is still open");
}

Test(child, explain_names_the_signal)
{
    sp_child_t c;
    char how[48];

    cr_assert_eq(sp_child_fork(&c, 0, s_hang, NULL), 0);
    cr_assert_eq(sp_child_signal(&c, SIGTERM), 0);
    cr_assert_eq(sp_child_reap(&c), 0);

    cr_expect_str_eq(sp_child_explain(c.status, how, sizeof how), "killed by signal 15");
}
