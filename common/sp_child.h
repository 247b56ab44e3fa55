/*
 * sp_child — a child process from start to reap: spawn a program or fork a
 * function, an optional pipe from the child for a "ready" byte or a report,
 * waits bounded by a deadline, SIGKILL when the deadline passes, and the
 * exit status in words.
 *
 * Why one module: the broker's supervisor, the load generator and the
 * bench each started, watched and reaped children by hand, each with its
 * own EINTR loop, deadline arithmetic and kill-then-reap order.  Here each
 * of those is written once.
 *
 * The pipe is the child's "life line": the parent keeps the read end, the
 * child the write end, until it dies.  So one descriptor tells the parent
 * both "ready" (SP_CHILD_READY, one byte) and "gone" (end of file), every
 * wait can be a bounded poll instead of sleeping on waitpid, and a report
 * (a struct the child writes) comes through the same pipe.
 *
 * Ownership: an sp_child_t lives in the caller's storage (an array of them
 * for a group of children); sp_child_spawn or sp_child_fork fills it, and
 * from then on the parent's pipe end belongs to it until sp_child_close or
 * the reap closes it.  A zeroed sp_child_t (pid 0) was never started: every
 * call on it does nothing and says so (-ECHILD or -ESRCH), without touching
 * its fd.  A reaped child keeps its pid (for messages) and its status; it
 * is never signalled again, so a recycled pid is safe.
 *
 * Errors: 0 or a negative errno; SP_E_TIMEOUT when a deadline passed and
 * SP_E_STOPPED when the caller's stop predicate said so (sp_error.h).
 *
 * Blocking: sp_child_reap blocks until the child ends (call it when it has
 * ended or been killed); every other wait is bounded by a deadline in
 * sp_now_ns() nanoseconds (SP_CHILD_FOREVER: none), and a signal does not cut
 * a wait short (EINTR is retried), except where a stop predicate is given.
 *
 * Threads and processes: the calls are reentrant and keep no state of their
 * own, but a child belongs to one thread at a time.  sp_child_fork copies
 * only the calling thread into the child: fork before starting threads, or
 * keep the child to code that does not need the others' locks.  Reaping is
 * by pid, so children started some other way are left alone.
 */
#ifndef SP_CHILD_H
#define SP_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SP_CHILD_READY     'R'        /* the byte a child writes when it is ready */
#define SP_CHILD_FOREVER   UINT64_MAX /* a deadline that never passes */
#define SP_CHILD_POLL_MS   10         /* how often a wait without a pipe looks */
#define SP_CHILD_AWAIT_MAX 256        /* children one sp_child_await_* call watches */
#define SP_CHILD_LOG_MODE  0600       /* a spawned child's log file, when created */

/* sp_child_spawn / sp_child_fork flags */
enum {
    SP_CHILD_PIPE = 1u << 0,   /* fork: a pipe from the child (its write end to fn) */
    SP_CHILD_GROUP = 1u << 1,  /* fork: the child leads a new process group, and
                                * signals go to the whole group */
    SP_CHILD_SEARCH = 1u << 2, /* spawn: a name without '/' is looked up in PATH */
};

typedef struct {
    pid_t pid;   /* > 0 once started; kept after the reap */
    int fd;      /* parent's read end of the child's pipe; -1: none or closed */
    int status;  /* the wait(2) status, once reaped */
    bool reaped; /* waited for: its pid may already belong to another process */
    bool ready;  /* its SP_CHILD_READY byte came (sp_child_await_ready) */
    bool group;  /* it leads its own process group (SP_CHILD_GROUP) */
} sp_child_t;

/* What a forked child runs: `fd` is the write end of its pipe (-1 without
 * SP_CHILD_PIPE); the child _exits with the returned status (fn may also
 * _exit itself).  Never return into the caller's code from a child. */
typedef int sp_child_fn(void *arg, int fd);

/* Starts argv[0] with argv (NULL-terminated) and this environment, without
 * a shell (posix_spawn; posix_spawnp with SP_CHILD_SEARCH).  With `log`, the
 * child's stdout and stderr go to that file, created or truncated (mode
 * SP_CHILD_LOG_MODE).  No pipe.  Returns 0, or -errno with *c not started. */
int sp_child_spawn(sp_child_t *c, char *const argv[], unsigned flags, const char *log);

/* Forks a child that runs fn(arg, fd) and _exits with its result.  Flushes
 * stdio first, so nothing buffered is written twice.  With SP_CHILD_PIPE the
 * parent keeps the read end in c->fd (close-on-exec) and the child gets the
 * write end; later children never inherit this one's write end.  Returns 0,
 * or -errno (pipe, fork) with *c not started. */
int sp_child_fork(sp_child_t *c, unsigned flags, sp_child_fn *fn, void *arg);

/* In the child: writes SP_CHILD_READY on its pipe.  Returns 0 or -errno. */
int sp_child_say_ready(int fd);

/* In the child: writes all of buf (a report) on its pipe, retrying short
 * writes.  Returns 0 or -errno (-EPIPE when the parent closed its end). */
int sp_child_write(int fd, const void *buf, size_t len);

/* Waits until each of kids[0 .. n) has written SP_CHILD_READY (kids[i].ready
 * set; children already ready are not waited for again).  Returns 0 when all
 * are, or stops at the first child that is not, with *which its index:
 * -EPIPE (its pipe closed first: it died; reap it), -EPROTO (another byte),
 * SP_E_TIMEOUT (the deadline passed; *which the first not ready), -EINVAL
 * (a child without a pipe, or n > SP_CHILD_AWAIT_MAX) or poll's -errno. */
int sp_child_await_ready(sp_child_t *kids, size_t n, uint64_t deadline_ns, size_t *which);

/* Waits until each of kids[0 .. n) has ended, reaping each as its pipe
 * closes (bytes still coming are read and ignored).  Returns 0 when every
 * one exited with status 0, or stops at the first that did not, with *which
 * its index: -ECHILD (it exited non-zero or died of a signal: see its
 * status), SP_E_TIMEOUT (the deadline passed; *which the first still
 * running), -EINVAL as above, or poll's or waitpid's -errno.  The others
 * are left as they are (kill and reap them). */
int sp_child_await_exit(sp_child_t *kids, size_t n, uint64_t deadline_ns, size_t *which);

/* Reads exactly len bytes of the child's report from its pipe into buf.
 * `stop`, when not NULL, is asked at least every SP_CHILD_POLL_MS; once it
 * says true the read gives up.  Returns 0, -EPIPE (the pipe closed first:
 * the child ended without reporting), SP_E_TIMEOUT, SP_E_STOPPED, -EINVAL
 * (no pipe) or read's -errno.  What came before a failure is in buf. */
int sp_child_read(sp_child_t *c, void *buf, size_t len, uint64_t deadline_ns, bool (*stop)(void));

/* Sends sig to the child, or to its whole group with SP_CHILD_GROUP.
 * Returns 0, -ESRCH (never started, or already reaped) or kill's -errno. */
int sp_child_signal(sp_child_t *c, int sig);

/* Closes the parent's end of the pipe (the child's writes fail with EPIPE
 * from then on).  Safe to call again. */
void sp_child_close(sp_child_t *c);

/* Closes the pipe, then waits for the child to end, as long as that takes;
 * sets c->status and c->reaped.  Returns 0 (also when it was reaped
 * before), -ECHILD (never started) or waitpid's -errno. */
int sp_child_reap(sp_child_t *c);

/* Waits until the deadline for the child to end, looking every
 * SP_CHILD_POLL_MS; if it has not, SIGKILLs it (its group with
 * SP_CHILD_GROUP) and reaps it.  The pipe is closed either way.  Returns 0
 * (it ended by itself: see c->status), SP_E_TIMEOUT (it was killed), or
 * -ECHILD / waitpid's -errno.  A deadline of 0 kills at once whatever has
 * not ended yet. */
int sp_child_wait(sp_child_t *c, uint64_t deadline_ns);

/* A wait status in words: "exited with status N" or "killed by signal N".
 * Returns buf. */
const char *sp_child_explain(int status, char *buf, size_t cap);

#endif
