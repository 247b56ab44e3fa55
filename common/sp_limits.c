/*
 * sp_limits — system limits read before start-up (see sp_limits.h).
 */
#include "sp_limits.h"

#include "sp_error.h"
#include "sp_mq.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>

#define S_SHM_DIR "/dev/shm"
/* the kernel's bookkeeping per queued message (struct msg_msg plus a
 * priority-tree node, 48 bytes each on 64-bit Linux; see ipc/mqueue.c) */
#define S_MQ_MSG_OVERHEAD 96

static uint64_t s_proc(const char *name)
{
    long v = sp_mq_limit(name);
    return v >= 0 ? (uint64_t)v : SP_LIMIT_UNKNOWN;
}

static uint64_t s_rlimit(int which)
{
    struct rlimit rl;
    if (getrlimit(which, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY) {
        return SP_LIMIT_UNKNOWN;
    }
    return (uint64_t)rl.rlim_cur;
}

static uint64_t s_queues_used(void)
{
    DIR *d = opendir("/dev/mqueue");
    if (d == NULL) {
        return SP_LIMIT_UNKNOWN; /* not mounted: the count is not visible */
    }
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

void sp_limits_read(sp_limits_t *have)
{
    have->msg_max = s_proc("msg_max");
    have->msgsize_max = s_proc("msgsize_max");
    have->queues_max = s_proc("queues_max");
    have->queues_used = s_queues_used();
    have->mq_bytes = s_rlimit(RLIMIT_MSGQUEUE);
    have->nofile = s_rlimit(RLIMIT_NOFILE);
    struct statvfs vfs;
    have->shm_free =
        statvfs(S_SHM_DIR, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : SP_LIMIT_UNKNOWN;
}

uint64_t sp_limits_mq_bytes(uint64_t depth, uint64_t msgsize)
{
    return depth * (msgsize + S_MQ_MSG_OVERHEAD);
}

static bool s_over(uint64_t need, uint64_t have)
{
    return need > 0 && have != SP_LIMIT_UNKNOWN && need > have;
}

int sp_limits_check(const sp_limits_need_t *need, const sp_limits_t *have, char *why, size_t cap)
{
    if (need->mq_queues > 0) {
        if (s_over(need->mq_depth, have->msg_max)) {
            sp_why(why, cap,
                   "a queue depth of %llu exceeds fs.mqueue.msg_max (%llu): raise it with "
                   "'sysctl -w fs.mqueue.msg_max=%llu' or ask for a smaller depth",
                   (unsigned long long)need->mq_depth, (unsigned long long)have->msg_max,
                   (unsigned long long)need->mq_depth);
            return SP_E_LIMIT;
        }
        if (s_over(need->mq_msgsize, have->msgsize_max)) {
            sp_why(why, cap,
                   "a message size of %llu bytes exceeds fs.mqueue.msgsize_max (%llu): raise "
                   "it with 'sysctl -w fs.mqueue.msgsize_max=%llu' or use smaller messages",
                   (unsigned long long)need->mq_msgsize, (unsigned long long)have->msgsize_max,
                   (unsigned long long)need->mq_msgsize);
            return SP_E_LIMIT;
        }
        uint64_t used = have->queues_used == SP_LIMIT_UNKNOWN ? 0 : have->queues_used;
        if (s_over(used + need->mq_queues, have->queues_max)) {
            sp_why(why, cap,
                   "%llu queue(s) exist and this run needs %llu more, beyond "
                   "fs.mqueue.queues_max (%llu): raise it with 'sysctl -w fs.mqueue.queues_max=N'",
                   (unsigned long long)used, (unsigned long long)need->mq_queues,
                   (unsigned long long)have->queues_max);
            return SP_E_LIMIT;
        }
        uint64_t bytes = need->mq_bytes;
        if (s_over(bytes, have->mq_bytes)) {
            sp_why(why, cap,
                   "the order queue (%llu x %llu bytes) and a reply queue need %llu bytes, beyond "
                   "RLIMIT_MSGQUEUE (%llu bytes for all of this user's queues): raise it with "
                   "'ulimit -q %llu' or use a smaller --mq-depth / --mq-msgsize",
                   (unsigned long long)need->mq_depth, (unsigned long long)need->mq_msgsize,
                   (unsigned long long)bytes, (unsigned long long)have->mq_bytes,
                   (unsigned long long)bytes);
            return SP_E_LIMIT;
        }
    }
    if (s_over(need->shm_bytes, have->shm_free)) {
        sp_why(why, cap,
               "the shared table and rings need %llu bytes of shared memory but /dev/shm has "
               "%llu free: enlarge it ('mount -o remount,size=N /dev/shm') or use a smaller "
               "catalogue",
               (unsigned long long)need->shm_bytes, (unsigned long long)have->shm_free);
        return SP_E_LIMIT;
    }
    if (s_over(need->files, have->nofile)) {
        sp_why(why, cap,
               "this run needs about %llu open files but RLIMIT_NOFILE is %llu: raise it with "
               "'ulimit -n %llu' or start fewer workers",
               (unsigned long long)need->files, (unsigned long long)have->nofile,
               (unsigned long long)need->files);
        return SP_E_LIMIT;
    }
    return 0;
}
