/*
 * sp_sys — system call wrappers with a test hook and fault injection
 * (sp_sys.h).
 */
#include "sp_sys.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

int (*sp_sys_fdatasync_hook)(int fd) = NULL;

/* The armed fault: one kind of call, its counts, the one to fail. */
static struct {
    bool armed;
    sp_sys_call_t call;
    unsigned long nth;
    int err;
    unsigned long count[SP_SYS_CALLS];
} s_fault;

/* True (errno set) when this call is the one to fail; counts it. */
static bool s_fails(sp_sys_call_t call)
{
    if (__builtin_expect(!s_fault.armed, 1)) {
        return false;
    }
    unsigned long n = ++s_fault.count[call];
    if (call == s_fault.call && n == s_fault.nth) {
        errno = s_fault.err;
        return true;
    }
    return false;
}

void sp_sys_fail_nth(sp_sys_call_t call, unsigned long nth, int err)
{
    for (unsigned i = 0; i < SP_SYS_CALLS; i++) {
        s_fault.count[i] = 0;
    }
    s_fault.call = call;
    s_fault.nth = nth;
    s_fault.err = err;
    s_fault.armed = true;
}

unsigned long sp_sys_calls(sp_sys_call_t call)
{
    return call < SP_SYS_CALLS ? s_fault.count[call] : 0;
}

void sp_sys_fail_off(void)
{
    s_fault.armed = false;
}

const char *sp_sys_call_name(sp_sys_call_t call)
{
    static const char *const names[SP_SYS_CALLS] = {"write",     "fdatasync", "fsync",
                                                    "ftruncate", "mmap",      "mq_send"};
    return call < SP_SYS_CALLS ? names[call] : "?";
}

int sp_sys_fdatasync(int fd)
{
    if (s_fails(SP_SYS_FDATASYNC)) {
        return -1;
    }
    return sp_sys_fdatasync_hook != NULL ? sp_sys_fdatasync_hook(fd) : fdatasync(fd);
}

ssize_t sp_sys_write(int fd, const void *buf, size_t len)
{
    return s_fails(SP_SYS_WRITE) ? -1 : write(fd, buf, len);
}

int sp_sys_fsync(int fd)
{
    return s_fails(SP_SYS_FSYNC) ? -1 : fsync(fd);
}

int sp_sys_ftruncate(int fd, off_t len)
{
    return s_fails(SP_SYS_FTRUNCATE) ? -1 : ftruncate(fd, len);
}

void *sp_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return s_fails(SP_SYS_MMAP) ? MAP_FAILED : mmap(addr, len, prot, flags, fd, off);
}

int sp_sys_mq_timedsend(mqd_t q, const char *msg, size_t len, unsigned prio,
                        const struct timespec *deadline)
{
    return s_fails(SP_SYS_MQ_SEND) ? -1 : mq_timedsend(q, msg, len, prio, deadline);
}
