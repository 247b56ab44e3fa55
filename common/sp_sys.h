/*
 * sp_sys — the system calls a test must be able to count or make fail.
 *
 * Some promises are about calls that leave no trace a test can read back:
 * whether the journal's fdatasync ran once per append, once per interval or
 * never looks the same in the file.  Such a call goes through a wrapper
 * here, sp_sys_<call>(), with the real call's signature and errno
 * convention, and a hook a test may set to count the calls or to fail one
 * of them on purpose.  Production code never sets a hook; with none set
 * each wrapper is the real call.  Only the calls a test needs are here.
 *
 * Ownership: nothing is allocated.  Errors: those of the real call (-1 with
 * errno), or whatever the hook returns.  Blocking: as the real call.
 * Threads: the hooks are plain process-wide pointers, set by a test before
 * the code under test runs and not changed while it does.
 */
#ifndef SP_SYS_H
#define SP_SYS_H

/* fdatasync(2), through sp_sys_fdatasync_hook when a test set one. */
int sp_sys_fdatasync(int fd);

/* Test seam: called instead of fdatasync when not NULL (it may call the real
 * fdatasync itself).  Returns as fdatasync does: 0, or -1 with errno. */
extern int (*sp_sys_fdatasync_hook)(int fd);

#endif
