/*
 * sp_child — every wait here is poll(2) on the children's pipes or a
 * WNOHANG look at waitpid every SP_CHILD_POLL_MS, bounded by an absolute
 * monotonic deadline, so a loop that retries after EINTR never stretches
 * the time it was given.
 */
#include "sp_child.h"

#include "sp_error.h"
#include "sp_time.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Milliseconds left until the deadline, rounded up, for poll: 0 once it has
 * passed, -1 (no limit) for SP_CHILD_FOREVER. */
static int s_left_ms(uint64_t deadline_ns)
{
    if (deadline_ns == SP_CHILD_FOREVER) {
        return -1;
    }
    uint64_t now = sp_now_ns();
    if (now >= deadline_ns) {
        return 0;
    }
    uint64_t ms = (deadline_ns - now + SP_NS_PER_MS - 1) / SP_NS_PER_MS;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* poll until something is ready or the deadline passes; EINTR retried.
 * Returns poll's count (0: the deadline passed) or -errno. */
static int s_poll(struct pollfd *p, size_t n, uint64_t deadline_ns)
{
    int got;
    do {
        got = poll(p, (nfds_t)n, s_left_ms(deadline_ns));
    } while (got < 0 && errno == EINTR);
    return got < 0 ? -errno : got;
}

int sp_child_spawn(sp_child_t *c, char *const argv[], unsigned flags, const char *log)
{
    *c = (sp_child_t){.fd = -1};
    if (argv == NULL || argv[0] == NULL) {
        return -EINVAL;
    }
    /* a program that is not there is refused here, the same way whatever
     * runs us (under valgrind, posix_spawn of a missing program succeeds:
     * valgrind's launcher starts, then fails in the child) */
    if ((flags & SP_CHILD_SEARCH) == 0 && access(argv[0], X_OK) != 0) {
        return -errno;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_t *actions = NULL;
    int rc = 0;
    if (log != NULL) {
        rc = posix_spawn_file_actions_init(&fa);
        if (rc != 0) {
            return -rc;
        }
        actions = &fa;
        rc = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_TRUNC,
                                              SP_CHILD_LOG_MODE);
        if (rc == 0) {
            rc = posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
        }
    }
    pid_t pid = 0;
    if (rc == 0) {
        rc = (flags & SP_CHILD_SEARCH) ? posix_spawnp(&pid, argv[0], actions, NULL, argv, environ)
                                       : posix_spawn(&pid, argv[0], actions, NULL, argv, environ);
    }
    if (actions != NULL) {
        posix_spawn_file_actions_destroy(actions);
    }
    if (rc != 0) {
        return -rc;
    }
    c->pid = pid;
    return 0;
}

int sp_child_fork(sp_child_t *c, unsigned flags, sp_child_fn *fn, void *arg)
{
    *c = (sp_child_t){.fd = -1, .group = (flags & SP_CHILD_GROUP) != 0};
    int p[2] = {-1, -1};
    if ((flags & SP_CHILD_PIPE) && pipe2(p, O_CLOEXEC) != 0) {
        return -errno;
    }
    (void)fflush(NULL); /* best effort: nothing buffered is written twice */
    pid_t pid = fork();
    if (pid == 0) {
        if (p[0] >= 0) {
            close(p[0]);
        }
        if (c->group) {
            setpgid(0, 0);
        }
        /* _exit: the parent's atexit handlers and stdio buffers are not ours */
        _exit(fn(arg, p[1]));
    }
    int err = errno;
    /* the parent keeps only the read end, so end of file means the child is
     * gone; later children never inherit this write end */
    if (p[1] >= 0) {
        close(p[1]);
    }
    if (pid < 0) {
        if (p[0] >= 0) {
            close(p[0]);
        }
        return -err;
    }
    if (c->group) {
        setpgid(pid, pid); /* here too: whichever side runs first makes the group */
    }
    c->pid = pid;
    c->fd = p[0];
    return 0;
}

int sp_child_say_ready(int fd)
{
    const char ready = SP_CHILD_READY;
    return sp_child_write(fd, &ready, 1);
}

int sp_child_write(int fd, const void *buf, size_t len)
{
    const char *b = buf;
    while (len > 0) {
        ssize_t w = write(fd, b, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return w < 0 ? -errno : -EIO;
        }
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/* One await: polls the pipes of the children still `waiting` and hands
 * each pipe with news to `news`, which returns 0 to go on (marking the
 * child done, or not) or a code that ends the await, naming that child. */
static int s_await(sp_child_t *kids, size_t n, uint64_t deadline_ns, size_t *which,
                   bool (*waiting)(const sp_child_t *c), int (*news)(sp_child_t *c))
{
    struct pollfd p[SP_CHILD_AWAIT_MAX];
    size_t map[SP_CHILD_AWAIT_MAX];
    if (n > SP_CHILD_AWAIT_MAX) {
        return -EINVAL;
    }
    for (;;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (!waiting(&kids[i])) {
                continue;
            }
            if (kids[i].fd < 0) {
                return -EINVAL;
            }
            p[m] = (struct pollfd){.fd = kids[i].fd, .events = POLLIN};
            map[m++] = i;
        }
        if (m == 0) {
            return 0;
        }
        int got = s_poll(p, m, deadline_ns);
        if (got <= 0) {
            *which = map[0];
            return got == 0 ? SP_E_TIMEOUT : got;
        }
        for (size_t k = 0; k < m; k++) {
            int rc = p[k].revents != 0 ? news(&kids[map[k]]) : 0;
            if (rc < 0) {
                *which = map[k];
                return rc;
            }
        }
    }
}

static bool s_not_ready(const sp_child_t *c)
{
    return c->pid > 0 && !c->ready;
}

/* A byte on a pipe we wait "ready" on: the ready byte, or the end. */
static int s_ready_news(sp_child_t *c)
{
    char byte = 0;
    ssize_t r = read(c->fd, &byte, 1);
    if (r == 1 && byte == SP_CHILD_READY) {
        c->ready = true;
        return 0;
    }
    return r == 1 ? -EPROTO : r == 0 ? -EPIPE : -errno;
}

static bool s_running(const sp_child_t *c)
{
    return c->pid > 0 && !c->reaped;
}

/* News on a pipe we wait "exit" on: bytes still coming are ignored; at the
 * end the child is reaped, and fails the await unless it exited 0. */
static int s_exit_news(sp_child_t *c)
{
    char byte;
    if (read(c->fd, &byte, 1) != 0) {
        return 0; /* not end of file yet */
    }
    int rc = sp_child_reap(c);
    if (rc == 0 && (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0)) {
        rc = -ECHILD;
    }
    return rc;
}

int sp_child_await_ready(sp_child_t *kids, size_t n, uint64_t deadline_ns, size_t *which)
{
    return s_await(kids, n, deadline_ns, which, s_not_ready, s_ready_news);
}

int sp_child_await_exit(sp_child_t *kids, size_t n, uint64_t deadline_ns, size_t *which)
{
    return s_await(kids, n, deadline_ns, which, s_running, s_exit_news);
}

int sp_child_read(sp_child_t *c, void *buf, size_t len, uint64_t deadline_ns, bool (*stop)(void))
{
    if (c->pid <= 0 || c->fd < 0) {
        return -EINVAL;
    }
    char *b = buf;
    size_t got = 0;
    while (got < len) {
        if (stop != NULL && stop()) {
            return SP_E_STOPPED;
        }
        int left = s_left_ms(deadline_ns);
        if (left == 0) {
            return SP_E_TIMEOUT;
        }
        /* with a stop predicate, wake up often enough to ask it */
        uint64_t slice = stop == NULL ? deadline_ns : sp_now_ns() + SP_CHILD_POLL_MS * SP_NS_PER_MS;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = s_poll(&p, 1, slice < deadline_ns ? slice : deadline_ns);
        if (n < 0) {
            return n;
        }
        if (n == 0) {
            continue;
        }
        ssize_t r = read(c->fd, b + got, len - got);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            return -EPIPE;
        } else if (errno != EINTR && errno != EAGAIN) {
            return -errno;
        }
    }
    return 0;
}

int sp_child_signal(sp_child_t *c, int sig)
{
    if (c->pid <= 0 || c->reaped) {
        return -ESRCH;
    }
    return kill(c->group ? -c->pid : c->pid, sig) == 0 ? 0 : -errno;
}

void sp_child_close(sp_child_t *c)
{
    if (c->pid > 0 && c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* Records a reaped child. */
static void s_reaped(sp_child_t *c, int status)
{
    c->status = status;
    c->reaped = true;
}

int sp_child_reap(sp_child_t *c)
{
    if (c->pid <= 0) {
        return -ECHILD;
    }
    sp_child_close(c); /* first: a child blocked writing to us must see EPIPE */
    if (c->reaped) {
        return 0;
    }
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    s_reaped(c, status);
    return 0;
}

int sp_child_wait(sp_child_t *c, uint64_t deadline_ns)
{
    if (c->pid <= 0) {
        return -ECHILD;
    }
    sp_child_close(c);
    if (c->reaped) {
        return 0;
    }
    for (;;) {
        int status = 0;
        pid_t got = waitpid(c->pid, &status, WNOHANG);
        if (got == c->pid) {
            s_reaped(c, status);
            return 0;
        }
        if (got < 0 && errno != EINTR) {
            return -errno;
        }
        if (sp_now_ns() >= deadline_ns) {
            break;
        }
        sp_sleep_ns(SP_CHILD_POLL_MS * SP_NS_PER_MS);
    }
    sp_child_signal(c, SIGKILL);
    int rc = sp_child_reap(c);
    return rc < 0 ? rc : SP_E_TIMEOUT;
}

const char *sp_child_explain(int status, char *buf, size_t cap)
{
    if (WIFSIGNALED(status)) {
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(status));
    } else {
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    }
    return buf;
}
