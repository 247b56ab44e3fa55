/*
 * sp_file — whole files written atomically, and read back whole.
 *
 * A snapshot or a state file must be either the old version or the new one
 * after any crash, never a mix and never empty.  sp_file_save gets there the
 * classic way: write a temporary file beside the target, fsync it, rename it
 * over the target, fsync the directory.  rename() is atomic within one file
 * system, so readers (and recovery after a crash) see one version or the
 * other; the fsyncs make the new version durable before we say so.
 *
 * The module can also lie, for tests: sp_file_fault makes one chosen system
 * call inside sp_file_save fail with a chosen errno (ENOSPC on write, EIO on
 * fsync...), and the environment variable SP_CRASH_SAVE_AT=N makes
 * sp_file_save SIGKILL its own process right before its Nth system call, so a
 * test can crash a child at every step of a save and check what a restart
 * would find.  Both are always compiled in and cost one compare when off.
 *
 * Ownership: sp_file_read's buffer is malloc'd and the caller's to free;
 * nothing else is kept.  Errors: 0 or -errno, with *why naming the step and
 * the file.  Blocking: on the disk, fsyncs included.  Threads and processes:
 * saves of different paths are independent; processes saving one path use
 * temporary files of their own (the pid is in the name), but two threads of
 * one process saving the same path at once share one, so one thread saves a
 * given path at a time.  The test hooks are process-wide and not locked.
 */
#ifndef SP_FILE_H
#define SP_FILE_H

#include <stddef.h>

/* The temporary file of a save is "<path>.tmp.<pid>". */
#define SP_FILE_TMP_INFIX ".tmp."

/* Mode of every file sp_file_save creates. */
#define SP_FILE_MODE 0600

/* Test-only: SP_CRASH_SAVE_AT=N (N >= 1) in the environment makes every
 * sp_file_save raise SIGKILL on its own process right before its Nth system
 * call (counting the unlink of a stale temporary, open, each write, fsync,
 * close, rename, and open, fsync and close of the directory).  Read with
 * getenv at the start of each save; unset or not a positive number = off. */
#define SP_FILE_CRASH_ENV "SP_CRASH_SAVE_AT"

/* System calls sp_file_save makes that sp_file_fault can fail. */
enum {
    SP_FILE_OP_OPEN = 1, /* open of the temporary file */
    SP_FILE_OP_WRITE,    /* each write() to it */
    SP_FILE_OP_FSYNC,    /* fsync of it */
    SP_FILE_OP_CLOSE,    /* close of it (the descriptor is still released) */
    SP_FILE_OP_RENAME,   /* rename over the target */
    SP_FILE_OP_DIRSYNC,  /* fsync of the directory */
};

/* Atomically replaces the file at path with the len bytes at buf (mode
 * 0600): writes "<path>.tmp.<pid>" in the same directory (removing a stale
 * one of that name first), fsyncs it, closes it, renames it over path and
 * fsyncs the directory.  Blocks on disk I/O.
 *
 * Returns 0 once the new contents are durable.  On failure returns -errno
 * and writes into why (cap bytes) the step and the file, e.g. "fsync
 * run/x/table.snap.tmp.123: No space left on device".  If the failure came
 * before the rename (open, write, fsync, close, rename itself), the
 * temporary file is removed and path still holds its previous contents,
 * byte for byte (or is still absent).  If only the final directory fsync
 * failed, path already holds the new contents but they may not survive a
 * power cut; the error is still returned.  Not thread-safe with respect to
 * the test hooks below; otherwise reentrant. */
int sp_file_save(const char *path, const void *buf, size_t len, char *why, size_t cap);

/* Reads the whole regular file at path into a malloc'd buffer (*buf, caller
 * frees; one NUL byte is added after the contents for text callers, not
 * counted in *len).  Returns 0, -ENOENT when missing, -EISDIR / -EINVAL when
 * not a regular file, -EFBIG when it holds more than max_len bytes, -ENOMEM,
 * or another -errno; why says which file and what.  *buf is NULL and *len 0
 * on failure.  Blocks on disk I/O. */
int sp_file_read(const char *path, void **buf, size_t *len, size_t max_len, char *why, size_t cap);

/* fsync of the directory dir itself, so that creations, renames and
 * removals of its entries survive a power cut.  Returns 0 or -errno. */
int sp_file_fsync_dir(const char *dir);

/* The last non-empty line of the text file at path (a child's log), cut to
 * cap - 1 bytes, for an error message; "" when it has none or cannot be
 * read. */
void sp_file_last_line(const char *path, char *out, size_t cap);

/* fsync of the directory that holds path ("." when path has no slash).
 * Returns 0 or -errno (-ENAMETOOLONG when path is too long). */
int sp_file_fsync_parent(const char *path);

/* Test-only: makes the nth call (1-based, counted from this call) of op
 * inside sp_file_save fail with errno err (a positive errno such as ENOSPC),
 * once.  sp_file_fault(0, 0, 0) clears it.  Process-wide. */
void sp_file_fault(int op, unsigned nth, int err);

/* Test-only: the largest single write() sp_file_save makes (0 = no limit,
 * the default), so a test can get several writes, hence several crash
 * points, out of a small file.  Process-wide. */
void sp_file_set_chunk(size_t max_write);

/* How many system calls the last sp_file_save of this process made (crash
 * points included, see SP_FILE_CRASH_ENV): a test crashes a child at 1 ..
 * this number to cover every step of a save. */
unsigned sp_file_save_syscalls(void);

#endif
