/*
 * sp_sys — the system calls a test must be able to count or make fail.
 *
 * Some promises are about calls that leave no trace a test can read back:
 * whether the journal's fdatasync ran once per append, once per interval or
 * never looks the same in the file; what the journal, the table's creation
 * or an mq link does when a write, an ftruncate or an mq_send fails cannot
 * be seen without making one fail.  Such a call goes through a wrapper
 * here, sp_sys_<call>(), with the real call's signature and errno
 * convention.  A test may set a hook (fdatasync: count the calls, fail one)
 * or arm fault injection in the manner of SQLite's tests: the Nth call of
 * one kind made from then on fails with a chosen errno, without the real
 * call being made (sp_sys_fail_nth); a test sweeps N over every call a
 * scenario makes.  Production code never sets a hook nor arms a fault; then
 * each wrapper is the real call behind one untaken branch.
 *
 * Which call sites go through here: the journal's write, fdatasync and
 * fsync (sp_journal.c), the table segment's ftruncate and mmap at creation
 * (sp_table.c) and the mq link's mq_timedsend (sp_mq.c).  A snapshot's
 * writes, fsync and rename go through sp_file_save, which has its own fault
 * seam (sp_file_fault, sp_file.h).
 *
 * Ownership: nothing is allocated.  Errors: those of the real call (-1 with
 * errno, MAP_FAILED for mmap), or the injected errno.  Blocking: as the
 * real call.  Threads: the hooks and the fault are plain process-wide
 * state, set by a test before the code under test runs and not changed
 * while it does; a forked child inherits them.
 */
#ifndef SP_SYS_H
#define SP_SYS_H

#include <mqueue.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* The calls fault injection can fail. */
typedef enum {
    SP_SYS_WRITE,
    SP_SYS_FDATASYNC,
    SP_SYS_FSYNC,
    SP_SYS_FTRUNCATE,
    SP_SYS_MMAP,
    SP_SYS_MQ_SEND,
    SP_SYS_CALLS
} sp_sys_call_t;

/* fdatasync(2), through sp_sys_fdatasync_hook when a test set one. */
int sp_sys_fdatasync(int fd);
ssize_t sp_sys_write(int fd, const void *buf, size_t len);
int sp_sys_fsync(int fd);
int sp_sys_ftruncate(int fd, off_t len);
void *sp_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int sp_sys_mq_timedsend(mqd_t q, const char *msg, size_t len, unsigned prio,
                        const struct timespec *deadline);

/* Test seam: called instead of fdatasync when not NULL (it may call the real
 * fdatasync itself).  Returns as fdatasync does: 0, or -1 with errno. */
extern int (*sp_sys_fdatasync_hook)(int fd);

/* Test-only fault injection: from now on the calls of kind `call` are
 * counted (from 1), and the nth one fails with errno `err` instead of being
 * made (nth 0: only count).  Arming clears the earlier counts and fault. */
void sp_sys_fail_nth(sp_sys_call_t call, unsigned long nth, int err);

/* Test-only: the calls of kind `call` counted since sp_sys_fail_nth. */
unsigned long sp_sys_calls(sp_sys_call_t call);

/* Test-only: disarms fault injection (the counts stay readable). */
void sp_sys_fail_off(void);

/* The name of a call kind ("write", "mq_send"...), for messages. */
const char *sp_sys_call_name(sp_sys_call_t call);

#endif
