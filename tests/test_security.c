/*
 * Safe defaults: every IPC object and file an instance makes is private to
 * its user, and a name another user already holds is refused without being
 * written, opened for writing or removed.
 */
#include "sp_testutil.h"

#include "sp_instance.h"
#include "sp_link.h"
#include "sp_recover.h"
#include "sp_snapshot.h"
#include "sp_time.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 20000
#define T_NOBODY       65534 /* an owner other than us (root-only checks) */
#define T_STATE_BASE   "/tmp/sp-test-state"
#define T_POLL_MS      10 /* between looks at the state directory */

/* Mode and owner of a shm object, a queue or a path. */
static void s_stat_shm(const char *name, struct stat *st)
{
    int fd = shm_open(name, O_RDONLY, 0);
    cr_assert(fd >= 0, "%s: %s", name, strerror(errno));
    cr_assert_eq(fstat(fd, st), 0);
    close(fd);
}

static void s_stat_mq(const char *name, struct stat *st)
{
    mqd_t q = mq_open(name, O_RDONLY | O_NONBLOCK);
    cr_assert(q != (mqd_t)-1, "%s: %s", name, strerror(errno));
    cr_assert_eq(fstat((int)q, st), 0);
    mq_close(q);
}

static void s_expect_private(const char *what, const struct stat *st, mode_t mode)
{
    cr_expect_eq(st->st_mode & 07777, mode, "%s has mode %o, not %o", what,
                 (unsigned)(st->st_mode & 07777), (unsigned)mode);
    cr_expect_eq(st->st_uid, geteuid(), "%s belongs to uid %u", what, (unsigned)st->st_uid);
}

/* Every regular file under dir is 0600, every directory 0700. */
static unsigned s_expect_private_tree(const char *dir)
{
    struct stat st;
    cr_assert_eq(lstat(dir, &st), 0, "%s: %s", dir, strerror(errno));
    s_expect_private(dir, &st, 0700);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    unsigned files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char path[SP_PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0) {
            /* the running broker renamed or removed it since readdir (a
             * snapshot's temporary file, a journal segment it retired) */
            cr_assert_eq(errno, ENOENT, "%s: %s", path, strerror(errno));
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            files += s_expect_private_tree(path);
        } else if (S_ISREG(st.st_mode)) {
            s_expect_private(path, &st, 0600);
            files++;
        }
    }
    closedir(d);
    return files;
}

/* Waits up to SP_TEST_WAIT_MS until the state directory `dir` holds a
 * snapshot (the broker saves one every 50 ms here) and a journal; false if
 * it does not. */
static bool s_wait_saved(const char *dir)
{
    char snap[SP_PATH_MAX * 2], journal[SP_PATH_MAX * 2];
    snprintf(snap, sizeof snap, "%s/%s", dir, SP_SNAPSHOT_BIN);
    snprintf(journal, sizeof journal, "%s/%s", dir, SP_JOURNAL_DIR);
    for (uint64_t deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;;) {
        if (access(snap, F_OK) == 0 && sp_recover_has_journal(journal)) {
            return true;
        }
        if (sp_now_ns() >= deadline) {
            return false;
        }
        sp_sleep_ns(T_POLL_MS * SP_NS_PER_MS);
    }
}

static void s_objects_are_private(const char *transport)
{
    char inst[64];
    spt_instance(inst, sizeof inst, transport);
    const char *extra[] = {"--catalogue", spt_data("products.csv"), "--transport",
                           transport,     "--snapshot-every",       "50ms",
                           NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    sp_names_t n;
    sp_names_init(&n, inst, T_STATE_BASE);
    /* one order, so that a journal and a snapshot exist */
    char *out = NULL;
    const char *buy[] = {spt_bin("producer"), "--instance", inst, "buy", "1", NULL};
    cr_expect_eq(spt_run(buy, RUN_TIMEOUT_MS, &out), 0, "%s", out);
    free(out);
    cr_assert(s_wait_saved(n.state_dir), "no %s and journal in %s within %d ms", SP_SNAPSHOT_BIN,
              n.state_dir, SP_TEST_WAIT_MS);

    struct stat st;
    s_stat_shm(n.table, &st);
    s_expect_private(n.table, &st, 0600);
    if (strcmp(transport, "mq") == 0) {
        s_stat_mq(n.orders_mq, &st);
        s_expect_private(n.orders_mq, &st, 0600);
    }
    if (strcmp(transport, "shm") == 0) {
        s_stat_shm(n.ring, &st);
        s_expect_private(n.ring, &st, 0600);
    }
    if (strcmp(transport, "zmq") == 0) {
        /* the ipc:// sockets live in a private directory */
        cr_assert_eq(lstat(n.run_dir, &st), 0, "%s: %s", n.run_dir, strerror(errno));
        s_expect_private(n.run_dir, &st, 0700);
    }
    cr_expect_gt(s_expect_private_tree(n.state_dir), 0, "no journal or snapshot in %s",
                 n.state_dir);

    int status = spt_stop(broker);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_expect_not(spt_leftovers(inst));
    s_expect_private_tree(n.state_dir); /* and the final table.csv */
}

Test(security, mq_instance_objects_are_private, .timeout = 60)
{
    s_objects_are_private("mq");
}

Test(security, zmq_instance_objects_are_private, .timeout = 60)
{
    s_objects_are_private("zmq");
}

Test(security, shm_instance_objects_are_private, .timeout = 60)
{
    s_objects_are_private("shm");
}

/* Runs the broker on a squatted instance: it must fail at once, naming the
 * owner. */
static void s_expect_refused(const char *inst, const char *const *args, const char *expect)
{
    const char *argv[16] = {spt_bin("broker"), "--instance", inst, "--state-dir", T_STATE_BASE};
    int n = 5;
    for (int i = 0; args[i] != NULL; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char *out = NULL;
    int rc = spt_run(argv, RUN_TIMEOUT_MS, &out);
    cr_expect_neq(rc, 0, "the broker ran on a squatted name: %s", out);
    cr_expect(strstr(out, expect) != NULL, "expected '%s' in: %s", expect, out);
    free(out);
}

Test(security, a_queue_name_another_user_holds_is_refused_untouched, .timeout = 60)
{
    if (geteuid() != 0) {
        cr_skip_test("needs root to make an object owned by another user");
    }
    char inst[64];
    spt_instance(inst, sizeof inst, "squatq");
    sp_names_t n;
    sp_names_init(&n, inst, T_STATE_BASE);
    struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open(n.orders_mq, O_RDWR | O_CREAT | O_EXCL, 0666, &attr);
    cr_assert(q != (mqd_t)-1, "%s", strerror(errno));
    cr_assert_eq(mq_send(q, "bait", 4, 0), 0);
    cr_assert_eq(fchown((int)q, T_NOBODY, T_NOBODY), 0);

    const char *start[] = {"--catalogue", spt_data("products.csv"), "--fresh", NULL};
    s_expect_refused(inst, start, "belongs to uid 65534");
    const char *clean[] = {"--clean", NULL};
    s_expect_refused(inst, clean, "belongs to uid 65534");

    /* still there, still theirs, its message unread */
    struct mq_attr now;
    cr_expect_eq(mq_getattr(q, &now), 0);
    cr_expect_eq(now.mq_curmsgs, 1);
    struct stat st;
    cr_expect_eq(fstat((int)q, &st), 0);
    cr_expect_eq(st.st_uid, T_NOBODY);
    mq_close(q);
    mq_unlink(n.orders_mq);
    cr_expect_not(spt_leftovers(inst));
}

Test(security, a_table_name_another_user_holds_is_refused_untouched, .timeout = 60)
{
    if (geteuid() != 0) {
        cr_skip_test("needs root to make an object owned by another user");
    }
    char inst[64];
    spt_instance(inst, sizeof inst, "squatt");
    sp_names_t n;
    sp_names_init(&n, inst, T_STATE_BASE);
    int fd = shm_open(n.table, O_RDWR | O_CREAT | O_EXCL, 0666);
    cr_assert(fd >= 0, "%s", strerror(errno));
    static const char bait[] = "not a table: somebody else's data";
    cr_assert_eq(write(fd, bait, sizeof bait), (ssize_t)sizeof bait);
    cr_assert_eq(fchown(fd, T_NOBODY, T_NOBODY), 0);

    const char *start[] = {"--catalogue", spt_data("products.csv"), "--fresh", NULL};
    s_expect_refused(inst, start, "belongs to uid 65534");
    const char *clean[] = {"--clean", NULL};
    s_expect_refused(inst, clean, "belongs to uid 65534");

    char back[sizeof bait];
    cr_expect_eq(pread(fd, back, sizeof back, 0), (ssize_t)sizeof back);
    cr_expect_eq(memcmp(back, bait, sizeof bait), 0, "the squatted segment was written");
    struct stat st;
    cr_expect_eq(fstat(fd, &st), 0);
    cr_expect_eq(st.st_size, (off_t)sizeof bait);
    close(fd);
    shm_unlink(n.table);
    cr_expect_not(spt_leftovers(inst));
}

Test(security, a_run_directory_another_user_holds_is_refused, .timeout = 60)
{
    if (geteuid() != 0) {
        cr_skip_test("needs root to make a directory owned by another user");
    }
    char inst[64];
    spt_instance(inst, sizeof inst, "squatd");
    sp_names_t n;
    sp_names_init(&n, inst, T_STATE_BASE);
    char parent[SP_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", n.run_dir);
    *strrchr(parent, '/') = '\0';
    mkdir(parent, 0700);
    cr_assert_eq(mkdir(n.run_dir, 0777), 0, "%s: %s", n.run_dir, strerror(errno));
    cr_assert_eq(chown(n.run_dir, T_NOBODY, T_NOBODY), 0);

    const char *start[] = {"--catalogue", spt_data("products.csv"), "--fresh", "--transport", "zmq",
                           NULL};
    s_expect_refused(inst, start, "belongs to uid 65534");
    struct stat st;
    cr_expect_eq(lstat(n.run_dir, &st), 0, "their directory was removed");
    rmdir(n.run_dir);
    cr_expect_not(spt_leftovers(inst));
}
