/*
 * Tests for sp_file, the atomic whole-file save and whole-file read.
 *
 * The claim of sp_file_save is "after any failure or crash, the target is
 * either the old contents or the new, byte for byte".  Failures are made
 * with the module's fault hook (ENOSPC on a write, EIO on fsync and close, a
 * refused rename), and each test checks the exact error, the step named in
 * why, the old file untouched and no temporary left behind.  Crashes are
 * real: a forked child saves with SP_CRASH_SAVE_AT=N and SIGKILLs itself
 * before its Nth system call, for every N a save has, and the parent checks
 * what a restart would find.
 *
 * Each test works in its own mkdtemp directory, which the fixture empties
 * and removes, so Criterion's parallel workers never share a file.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_error.h"
#include "sp_file.h"
#include "sp_testutil.h"

#define T_PATH_CAP   512
#define T_WHY_CAP    512
#define T_NEW_SIZE   (20u * 1024u) /* > 1 page, so a save has several writes */
#define T_CHUNK      4096u         /* forced write size: 5 writes for T_NEW_SIZE */
#define T_READ_MAX   (1u << 20)
#define T_OLD_TEXT   "old contents\n"
#define T_WAIT_TRIES 1000 /* 10 ms each: a child gets 10 s */

/* Calls of one save besides its writes: unlink stale, open, fsync, close,
 * rename, open dir, fsync dir, close dir. */
#define T_FIXED_SYSCALLS 8u
/* ... of which these come after the rename (open, fsync, close dir). */
#define T_AFTER_RENAME 3u

static char s_dir[T_PATH_CAP];

static void s_cleanup(void)
{
    sp_file_fault(0, 0, 0);
    sp_file_set_chunk(0);
    spt_rmtree(s_dir);
}

static void s_setup(void)
{
    cr_assert(spt_tmpdir(s_dir, sizeof s_dir, "file"), "mkdtemp: %s", strerror(errno));
}

TestSuite(file, .init = s_setup, .fini = s_cleanup);

/* "<dir>/<name>" in a caller buffer of T_PATH_CAP bytes. */
static char *s_path(char *buf, const char *name)
{
    int n = snprintf(buf, T_PATH_CAP, "%s/%s", s_dir, name);
    cr_assert(n > 0 && n < T_PATH_CAP);
    return buf;
}

/* Writes the file plainly (not atomically): the tests' "old version". */
static void s_put(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    cr_assert_eq(close(fd), 0);
}

/* True when the file at path holds exactly len bytes equal to buf. */
static bool s_same(const char *path, const void *buf, size_t len)
{
    void *got = NULL;
    size_t got_len = 0;
    char why[T_WHY_CAP];
    if (sp_file_read(path, &got, &got_len, T_READ_MAX, why, sizeof why) != 0) {
        return false;
    }
    bool same = got_len == len && memcmp(got, buf, len) == 0;
    free(got);
    return same;
}

/* Entries of the test directory whose name contains ".tmp.". */
static unsigned s_temps(void)
{
    unsigned n = 0;
    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, SP_FILE_TMP_INFIX) != NULL) {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* T_NEW_SIZE bytes that differ from any shorter prefix of themselves. */
static uint8_t *s_new_contents(void)
{
    uint8_t *b = malloc(T_NEW_SIZE);
    cr_assert_not_null(b);
    for (size_t i = 0; i < T_NEW_SIZE; i++) {
        b[i] = (uint8_t)(i * 31u + i / 251u);
    }
    return b;
}

/* A save that the armed fault makes fail: checks code, step, old file kept
 * byte for byte and no temporary left. */
static void s_expect_failed_save(int op, unsigned nth, int err, const char *step)
{
    char path[T_PATH_CAP];
    s_path(path, "table.snap");
    s_put(path, T_OLD_TEXT, strlen(T_OLD_TEXT));
    uint8_t *fresh = s_new_contents();
    sp_file_set_chunk(T_CHUNK);
    sp_file_fault(op, nth, err);
    char why[T_WHY_CAP] = "";
    int rc = sp_file_save(path, fresh, T_NEW_SIZE, why, sizeof why);
    cr_expect_eq(rc, -err, "rc %d (%s), want %d", rc, sp_strerror(rc), -err);
    cr_expect(strncmp(why, step, strlen(step)) == 0, "why \"%s\" should start with \"%s\"", why,
              step);
    cr_expect_not_null(strstr(why, path), "why \"%s\" should name %s", why, path);
    cr_expect_not_null(strstr(why, strerror(err)), "why \"%s\" should say %s", why, strerror(err));
    cr_expect(s_same(path, T_OLD_TEXT, strlen(T_OLD_TEXT)), "previous file changed");
    cr_expect_eq(s_temps(), 0, "temporary file left behind");
    free(fresh);
}

Test(file, save_creates_the_file_with_mode_0600)
{
    char path[T_PATH_CAP];
    s_path(path, "fresh");
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_file_save(path, "abc", 3, why, sizeof why), 0, "%s", why);
    cr_expect(s_same(path, "abc", 3));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, SP_FILE_MODE);
    cr_expect_eq(s_temps(), 0);
}

Test(file, save_replaces_previous_contents)
{
    char path[T_PATH_CAP];
    s_path(path, "table.snap");
    s_put(path, T_OLD_TEXT, strlen(T_OLD_TEXT));
    uint8_t *fresh = s_new_contents();
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_file_save(path, fresh, T_NEW_SIZE, why, sizeof why), 0, "%s", why);
    cr_expect(s_same(path, fresh, T_NEW_SIZE));
    cr_expect_eq(s_temps(), 0);
    /* and an empty save is a valid, empty file */
    cr_assert_eq(sp_file_save(path, "", 0, why, sizeof why), 0, "%s", why);
    cr_expect(s_same(path, "", 0));
    free(fresh);
}

Test(file, save_counts_one_syscall_per_step_and_write)
{
    char path[T_PATH_CAP];
    s_path(path, "counted");
    uint8_t *fresh = s_new_contents();
    sp_file_set_chunk(T_CHUNK);
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_file_save(path, fresh, T_NEW_SIZE, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_file_save_syscalls(), T_FIXED_SYSCALLS + T_NEW_SIZE / T_CHUNK);
    sp_file_set_chunk(0);
    cr_assert_eq(sp_file_save(path, fresh, T_NEW_SIZE, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_file_save_syscalls(), T_FIXED_SYSCALLS + 1);
    free(fresh);
}

Test(file, save_removes_a_stale_temporary_of_its_pid)
{
    char path[T_PATH_CAP];
    s_path(path, "stale");
    char tmp[2 * T_PATH_CAP];
    snprintf(tmp, sizeof tmp, "%s" SP_FILE_TMP_INFIX "%ld", path, (long)getpid());
    s_put(tmp, "junk", 4);
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_file_save(path, "new", 3, why, sizeof why), 0, "%s", why);
    cr_expect(s_same(path, "new", 3));
    cr_expect_eq(s_temps(), 0);
}

Test(file, save_write_enospc_keeps_previous_file)
{
    /* the second of five writes: the temporary already holds a page */
    s_expect_failed_save(SP_FILE_OP_WRITE, 2, ENOSPC, "write ");
}

Test(file, save_first_write_enospc_keeps_previous_file)
{
    s_expect_failed_save(SP_FILE_OP_WRITE, 1, ENOSPC, "write ");
}

Test(file, save_fsync_eio_keeps_previous_file)
{
    s_expect_failed_save(SP_FILE_OP_FSYNC, 1, EIO, "fsync ");
}

Test(file, save_close_eio_keeps_previous_file)
{
    s_expect_failed_save(SP_FILE_OP_CLOSE, 1, EIO, "close ");
}

Test(file, save_rename_failure_keeps_previous_file)
{
    s_expect_failed_save(SP_FILE_OP_RENAME, 1, EXDEV, "rename ");
}

Test(file, save_open_failure_keeps_previous_file)
{
    s_expect_failed_save(SP_FILE_OP_OPEN, 1, EACCES, "open ");
}

Test(file, save_fault_fires_only_on_the_chosen_call)
{
    char path[T_PATH_CAP];
    s_path(path, "second");
    sp_file_fault(SP_FILE_OP_FSYNC, 2, EIO);
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_file_save(path, "one", 3, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_file_save(path, "two", 3, why, sizeof why), -EIO);
    cr_expect(s_same(path, "one", 3));
    cr_expect_eq(sp_file_save(path, "three", 5, why, sizeof why), 0, "%s", why);
    cr_expect(s_same(path, "three", 5));
}

Test(file, save_dirsync_failure_is_reported_after_the_rename)
{
    char path[T_PATH_CAP];
    s_path(path, "dirsync");
    s_put(path, T_OLD_TEXT, strlen(T_OLD_TEXT));
    sp_file_fault(SP_FILE_OP_DIRSYNC, 1, EIO);
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_file_save(path, "new", 3, why, sizeof why), -EIO);
    cr_expect(strncmp(why, "fsync directory ", 16) == 0, "why: %s", why);
    cr_expect_not_null(strstr(why, s_dir), "why: %s", why);
    /* already renamed: the new contents, just maybe not durable */
    cr_expect(s_same(path, "new", 3));
    cr_expect_eq(s_temps(), 0);
}

Test(file, save_into_a_missing_directory_is_enoent)
{
    char path[T_PATH_CAP];
    s_path(path, "no-such-dir/file");
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_file_save(path, "x", 1, why, sizeof why), -ENOENT);
    cr_expect(strncmp(why, "open ", 5) == 0, "why: %s", why);
}

/* Crashes a child before each system call of a save in turn. */
Test(file, save_crash_points_leave_old_or_new_contents)
{
    char path[T_PATH_CAP];
    s_path(path, "table.snap");
    uint8_t *fresh = s_new_contents();
    sp_file_set_chunk(T_CHUNK);
    char why[T_WHY_CAP] = "";

    /* how many crash points one save has, measured on a neighbour file */
    char probe[T_PATH_CAP];
    cr_assert_eq(sp_file_save(s_path(probe, "probe"), fresh, T_NEW_SIZE, why, sizeof why), 0);
    unsigned calls = sp_file_save_syscalls();
    cr_assert_eq(calls, T_FIXED_SYSCALLS + T_NEW_SIZE / T_CHUNK);
    unsigned rename_at = calls - T_AFTER_RENAME;
    const unsigned open_at = 2;

    for (unsigned n = 1; n <= calls + 1; n++) {
        cr_assert_eq(sp_file_save(path, T_OLD_TEXT, strlen(T_OLD_TEXT), why, sizeof why), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        if (pid == 0) {
            char at[16];
            snprintf(at, sizeof at, "%u", n);
            setenv(SP_FILE_CRASH_ENV, at, 1);
            int rc = sp_file_save(path, fresh, T_NEW_SIZE, NULL, 0);
            _exit(rc == 0 ? 0 : 1);
        }
        int status = 0;
        pid_t w = -1;
        for (int i = 0; i < T_WAIT_TRIES && (w = waitpid(pid, &status, WNOHANG)) == 0; i++) {
            usleep(10000);
        }
        if (w == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("crash point %u: child hung", n);
        }
        if (n <= calls) {
            cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "crash point %u: child not killed (status %#x)", n, status);
        } else {
            cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "past the last crash point the save must succeed (status %#x)", status);
        }
        /* never a mix: before the rename the old file, from then on the new */
        if (n <= rename_at) {
            cr_expect(s_same(path, T_OLD_TEXT, strlen(T_OLD_TEXT)),
                      "crash point %u of %u: not the old contents", n, calls);
        } else {
            cr_expect(s_same(path, fresh, T_NEW_SIZE), "crash point %u of %u: not the new contents",
                      n, calls);
        }
        char tmp[2 * T_PATH_CAP];
        snprintf(tmp, sizeof tmp, "%s" SP_FILE_TMP_INFIX "%ld", path, (long)pid);
        bool left = access(tmp, F_OK) == 0;
        cr_expect_eq(left, n > open_at && n <= rename_at, "crash point %u: temporary %s", n,
                     left ? "left" : "missing");
        unlink(tmp);
    }
    cr_expect_eq(s_temps(), 0);
    free(fresh);
}

Test(file, read_returns_contents_and_a_terminating_nul)
{
    char path[T_PATH_CAP];
    s_path(path, "text");
    s_put(path, "hello", 5);
    void *buf = NULL;
    size_t len = 0;
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_file_read(path, &buf, &len, 5, why, sizeof why), 0, "%s", why);
    cr_expect_eq(len, 5);
    cr_expect_str_eq((const char *)buf, "hello");
    free(buf);
}

Test(file, read_of_a_missing_file_is_enoent)
{
    char path[T_PATH_CAP];
    s_path(path, "missing");
    void *buf = (void *)1;
    size_t len = 1;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_file_read(path, &buf, &len, T_READ_MAX, why, sizeof why), -ENOENT);
    cr_expect_null(buf);
    cr_expect_eq(len, 0);
    cr_expect_not_null(strstr(why, path), "why: %s", why);
}

Test(file, read_refuses_a_file_over_the_limit)
{
    char path[T_PATH_CAP];
    s_path(path, "big");
    uint8_t *fresh = s_new_contents();
    s_put(path, fresh, T_NEW_SIZE);
    void *buf = NULL;
    size_t len = 0;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_file_read(path, &buf, &len, T_NEW_SIZE - 1, why, sizeof why), -EFBIG);
    cr_expect_null(buf);
    cr_expect_not_null(strstr(why, path), "why: %s", why);
    cr_assert_eq(sp_file_read(path, &buf, &len, T_NEW_SIZE, why, sizeof why), 0, "%s", why);
    cr_expect_eq(len, T_NEW_SIZE);
    cr_expect_eq(memcmp(buf, fresh, T_NEW_SIZE), 0);
    free(buf);
    free(fresh);
}

Test(file, read_of_a_directory_is_eisdir)
{
    void *buf = NULL;
    size_t len = 0;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_file_read(s_dir, &buf, &len, T_READ_MAX, why, sizeof why), -EISDIR);
    cr_expect_null(buf);
}

Test(file, fsync_dir_of_a_missing_directory_is_enoent)
{
    char path[T_PATH_CAP];
    cr_expect_eq(sp_file_fsync_dir(s_dir), 0);
    cr_expect_eq(sp_file_fsync_parent(s_path(path, "anything")), 0);
    cr_expect_eq(sp_file_fsync_dir(s_path(path, "missing")), -ENOENT);
}

/* A log's last non-empty line, for an error message: blank lines after it
 * do not count, a long one is cut to the room given, and a file that is
 * not there gives "". */
Test(file, last_line_is_the_last_non_empty_one)
{
    char dir[128], path[192], out[8];
    cr_assert(spt_tmpdir(dir, sizeof dir, "lastline"));
    snprintf(path, sizeof path, "%s/log", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("first\nsecond\n\n\n", f);
    cr_assert_eq(fclose(f), 0);
    sp_file_last_line(path, out, sizeof out);
    cr_expect_str_eq(out, "second");
    f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs("a line longer than the room\n", f);
    cr_assert_eq(fclose(f), 0);
    sp_file_last_line(path, out, sizeof out);
    cr_expect_str_eq(out, "a line ");
    cr_assert_eq(unlink(path), 0);
    sp_file_last_line(path, out, sizeof out);
    cr_expect_str_eq(out, "");
    cr_expect_eq(rmdir(dir), 0);
}
