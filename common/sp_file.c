/*
 * sp_file — atomic whole-file save (temporary file, fsync, rename, directory
 * fsync) and whole-file read.
 *
 * Every system call of a save goes through s_syscall(), which counts it for
 * the crash-point hook and asks the fault hook whether to fail it.  Keeping
 * that in one place is what lets the tests claim "every step was crashed":
 * a call that bypassed it would be a step nobody tested.
 */
#include "sp_file.h"

#include "sp_error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_LINE_MAX 256 /* sp_file_last_line: longer lines are cut */

/* First buffer size for sp_file_read when the file claims to be empty
 * (procfs-like files report size 0 but have contents). */
#define SP_FILE_READ_MIN 4096

/* One save in progress: how many system calls it made so far, and the one
 * it must die before (0 = none). */
typedef struct {
    unsigned calls;
    unsigned crash_at;
} s_save_t;

/* The armed fault: the nth call of op fails with err.  Test-only state,
 * deliberately not thread-safe (see sp_file.h). */
static struct {
    int op;
    unsigned nth;
    unsigned seen;
    int err;
} s_fault;

static size_t s_chunk;
static unsigned s_last_syscalls;

void sp_file_fault(int op, unsigned nth, int err)
{
    s_fault.op = op;
    s_fault.nth = nth;
    s_fault.seen = 0;
    s_fault.err = err;
}

void sp_file_set_chunk(size_t max_write)
{
    s_chunk = max_write;
}

unsigned sp_file_save_syscalls(void)
{
    return s_last_syscalls;
}

static unsigned s_crash_point(void)
{
    const char *v = getenv(SP_FILE_CRASH_ENV);
    if (v == NULL || *v == '\0') {
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || n == 0 || n > UINT_MAX) {
        return 0;
    }
    return (unsigned)n;
}

/* Called right before every system call of a save: counts it, dies here if
 * this is the crash point, and returns the injected errno for op (0 = make
 * the real call).  op 0 = a call the fault hook cannot target.  s may be
 * NULL outside a save (sp_file_fsync_dir). */
static int s_syscall(s_save_t *s, int op)
{
    if (s == NULL) {
        return 0;
    }
    s->calls++;
    if (s->crash_at != 0 && s->calls == s->crash_at) {
        /* SIGKILL, not abort(): no handler, no atexit, no flush, exactly
         * like the OOM killer or a power cut as far as the file goes */
        (void)raise(SIGKILL); /* does not return */
    }
    if (op != 0 && s_fault.op == op && s_fault.nth != 0 && ++s_fault.seen == s_fault.nth) {
        return s_fault.err;
    }
    return 0;
}

/* dirname() of path into dir (it may modify its argument, so a copy). */
static int s_dir_of(const char *path, char *dir, size_t cap)
{
    char copy[PATH_MAX];
    int n = snprintf(copy, sizeof copy, "%s", path);
    if (n < 0 || (size_t)n >= sizeof copy) {
        return -ENAMETOOLONG;
    }
    n = snprintf(dir, cap, "%s", dirname(copy));
    if (n < 0 || (size_t)n >= cap) {
        return -ENAMETOOLONG;
    }
    return 0;
}

static int s_fsync_dir(s_save_t *s, const char *dir, char *why, size_t cap)
{
    s_syscall(s, 0);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int rc = -errno;
        sp_why(why, cap, "open directory %s: %s", dir, sp_strerror(rc));
        return rc;
    }
    int rc = -s_syscall(s, SP_FILE_OP_DIRSYNC);
    if (rc == 0 && fsync(dfd) < 0) {
        rc = -errno;
    }
    if (rc < 0) {
        sp_why(why, cap, "fsync directory %s: %s", dir, sp_strerror(rc));
    }
    s_syscall(s, 0);
    /* a read-only descriptor: its close cannot lose data, so its result
     * carries no news */
    close(dfd);
    return rc;
}

int sp_file_fsync_dir(const char *dir)
{
    return s_fsync_dir(NULL, dir, NULL, 0);
}

int sp_file_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    int rc = s_dir_of(path, dir, sizeof dir);
    return rc < 0 ? rc : sp_file_fsync_dir(dir);
}

static int s_write_all(s_save_t *s, int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t n = (s_chunk != 0 && len > s_chunk) ? s_chunk : len;
        int inj = s_syscall(s, SP_FILE_OP_WRITE);
        if (inj != 0) {
            return -inj;
        }
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (w == 0) {
            /* write(2) never returns 0 for a regular file unless something
             * is badly wrong; looping on it would spin forever */
            return -EIO;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int sp_file_save(const char *path, const void *buf, size_t len, char *why, size_t cap)
{
    s_save_t s = {.calls = 0, .crash_at = s_crash_point()};
    char tmp[PATH_MAX];
    char dir[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s" SP_FILE_TMP_INFIX "%ld", path, (long)getpid());
    int rc = (n < 0 || (size_t)n >= sizeof tmp) ? -ENAMETOOLONG : s_dir_of(path, dir, sizeof dir);
    if (rc < 0) {
        sp_why(why, cap, "%s: %s", path, sp_strerror(rc));
        goto done;
    }

    /* a temporary of our pid can only be left by an earlier process that
     * had our pid and died mid-save: nobody else owns it */
    s_syscall(&s, 0);
    if (unlink(tmp) < 0 && errno != ENOENT) {
        rc = -errno;
        sp_why(why, cap, "remove stale %s: %s", tmp, sp_strerror(rc));
        goto done;
    }

    int fd = -1;
    rc = -s_syscall(&s, SP_FILE_OP_OPEN);
    if (rc == 0) {
        fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, SP_FILE_MODE);
        rc = fd < 0 ? -errno : 0;
    }
    if (rc < 0) {
        /* not ours (EEXIST can only mean someone raced us): don't unlink */
        sp_why(why, cap, "open %s: %s", tmp, sp_strerror(rc));
        goto done;
    }

    rc = s_write_all(&s, fd, buf, len);
    if (rc < 0) {
        sp_why(why, cap, "write %s: %s", tmp, sp_strerror(rc));
        goto close_tmp;
    }
    rc = -s_syscall(&s, SP_FILE_OP_FSYNC);
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
    }
    if (rc < 0) {
        sp_why(why, cap, "fsync %s: %s", tmp, sp_strerror(rc));
        goto close_tmp;
    }
    /* close can report a deferred write error (NFS, quotas): it counts */
    rc = -s_syscall(&s, SP_FILE_OP_CLOSE);
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
    }
    fd = -1;
    if (rc < 0) {
        sp_why(why, cap, "close %s: %s", tmp, sp_strerror(rc));
        goto unlink_tmp;
    }
    rc = -s_syscall(&s, SP_FILE_OP_RENAME);
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -errno;
    }
    if (rc < 0) {
        sp_why(why, cap, "rename %s to %s: %s", tmp, path, sp_strerror(rc));
        goto unlink_tmp;
    }
    /* past the rename there is no temporary to remove and no old version
     * to restore: a failure here only means "maybe not durable yet" */
    rc = s_fsync_dir(&s, dir, why, cap);
    goto done;

close_tmp:
    s_syscall(&s, 0);
    close(fd);
unlink_tmp:
    s_syscall(&s, 0);
    unlink(tmp);
done:
    s_last_syscalls = s.calls;
    return rc;
}

int sp_file_read(const char *path, void **buf, size_t *len, size_t max_len, char *why, size_t cap)
{
    *buf = NULL;
    *len = 0;
    if (max_len > SIZE_MAX / 2) {
        max_len = SIZE_MAX / 2; /* so max_len + 1 and the doubling cannot wrap */
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        sp_why(why, cap, "open %s: %s", path, sp_strerror(rc));
        return rc;
    }
    int rc = 0;
    uint8_t *data = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        sp_why(why, cap, "stat %s: %s", path, sp_strerror(rc));
        goto close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        sp_why(why, cap, "%s: not a regular file", path);
        goto close_fd;
    }
    if ((uint64_t)st.st_size > max_len) {
        rc = -EFBIG;
        sp_why(why, cap, "%s: %lld bytes, more than the limit of %zu", path, (long long)st.st_size,
               max_len);
        goto close_fd;
    }
    /* st_size is a hint, not a promise (the file may grow, or be procfs):
     * read to end of file, but never more than max_len + 1 bytes */
    size_t room = (size_t)st.st_size + 1;
    if (room < SP_FILE_READ_MIN) {
        room = SP_FILE_READ_MIN;
    }
    if (room > max_len + 1) {
        room = max_len + 1;
    }
    data = malloc(room + 1); /* + 1: the NUL for text callers */
    if (data == NULL) {
        rc = -ENOMEM;
        sp_why(why, cap, "read %s: %s", path, sp_strerror(rc));
        goto close_fd;
    }
    size_t have = 0;
    for (;;) {
        if (have == room) {
            if (have > max_len) {
                break;
            }
            size_t next = room > max_len / 2 ? max_len + 1 : room * 2;
            uint8_t *grown = realloc(data, next + 1);
            if (grown == NULL) {
                rc = -ENOMEM;
                sp_why(why, cap, "read %s: %s", path, sp_strerror(rc));
                goto free_data;
            }
            data = grown;
            room = next;
        }
        ssize_t r = read(fd, data + have, room - have);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            sp_why(why, cap, "read %s: %s", path, sp_strerror(rc));
            goto free_data;
        }
        if (r == 0) {
            break;
        }
        have += (size_t)r;
    }
    if (have > max_len) {
        rc = -EFBIG;
        sp_why(why, cap, "%s: more than the limit of %zu bytes", path, max_len);
        goto free_data;
    }
    data[have] = '\0';
    *buf = data;
    *len = have;
    goto close_fd;

free_data:
    free(data);
close_fd:
    close(fd);
    return rc;
}

void sp_file_last_line(const char *path, char *out, size_t cap)
{
    char line[S_LINE_MAX];
    if (cap > 0) {
        out[0] = '\0';
    }
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] != '\0' && cap > 0) {
            snprintf(out, cap, "%.*s", (int)(cap - 1), line);
        }
    }
    (void)fclose(f); /* read only */
}
