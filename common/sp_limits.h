/*
 * sp_limits — the system limits a run depends on, read before anything is
 * created, so that a request beyond them fails at once with the name of the
 * setting to raise instead of half-way through start-up (or, for shared
 * memory, with a SIGBUS the first time a page cannot be backed).
 *
 *   fs.mqueue.msg_max, msgsize_max, queues_max   the POSIX mq sysctls
 *   RLIMIT_MSGQUEUE (ulimit -q)   bytes all of a user's queues may take
 *   RLIMIT_NOFILE (ulimit -n)     open files of one process
 *   free space in /dev/shm        the table and the shm transport's rings
 *
 * Ownership: the caller's sp_limits_t and sp_limits_need_t; nothing is
 * allocated.  Errors: a limit that cannot be read is SP_LIMIT_UNKNOWN and not
 * enforced; a check returns 0 or SP_E_LIMIT with *why.  Blocking:
 * sp_limits_read reads /proc, /dev/mqueue and the file system's free space,
 * nothing that waits on another process.  Safe from any thread.
 */
#ifndef SP_LIMITS_H
#define SP_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#define SP_LIMIT_UNKNOWN UINT64_MAX /* a limit that could not be read is not enforced */

typedef struct {
    uint64_t msg_max;     /* fs.mqueue.msg_max */
    uint64_t msgsize_max; /* fs.mqueue.msgsize_max */
    uint64_t queues_max;  /* fs.mqueue.queues_max */
    uint64_t queues_used; /* queues that exist now (listed in /dev/mqueue when mounted) */
    uint64_t mq_bytes;    /* RLIMIT_MSGQUEUE, soft */
    uint64_t nofile;      /* RLIMIT_NOFILE, soft */
    uint64_t shm_free;    /* bytes an unprivileged user may still allocate in /dev/shm */
} sp_limits_t;

/* What a run asks for; zero fields ask for nothing. */
typedef struct {
    uint64_t mq_depth;   /* messages per queue (the largest queue) */
    uint64_t mq_msgsize; /* bytes per message (the largest queue) */
    uint64_t mq_queues;  /* queues the run makes at once */
    uint64_t mq_bytes;   /* what they are charged together (sp_limits_mq_bytes) */
    uint64_t shm_bytes;  /* shared memory the run maps */
    uint64_t files;      /* file descriptors one process needs */
} sp_limits_need_t;

/* Reads every limit; one that cannot be read is SP_LIMIT_UNKNOWN. */
void sp_limits_read(sp_limits_t *have);

/* Checks a request against the limits.  Returns 0, or SP_E_LIMIT with *why
 * naming the first limit exceeded, what was asked and how to raise it. */
int sp_limits_check(const sp_limits_need_t *need, const sp_limits_t *have, char *why, size_t cap);

/* Bytes the kernel charges to RLIMIT_MSGQUEUE for one queue. */
uint64_t sp_limits_mq_bytes(uint64_t depth, uint64_t msgsize);

#endif
