/*
 * Tests for sp_instance, where every IPC name and directory of an instance
 * is derived.
 *
 * Two kinds of check: the pure ones (which names are allowed, what each
 * derived name looks like, where the length limits bite) and the ones that
 * touch the file system (the private run directory is created 0700 and an
 * existing one that others could enter is refused).  SP_RUN_DIR is set per
 * test; Criterion runs each test in its own process, so setenv never leaks
 * into another test.  Directories live under a per-test base in /tmp that
 * the fixture removes.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_error.h"
#include "sp_instance.h"

#define T_PATH_CAP 512
#define T_NOBODY   65534 /* an owner other than us, for the root-only check */

/* Longest and one-too-long instance names. */
#define T_NAME_40 "abcdefghij0123456789abcdefghij0123456789"
#define T_NAME_41 T_NAME_40 "x"

static char s_base[T_PATH_CAP];

/* Removes one path the tests made: a file, or a directory holding at most
 * the files the tests put there. */
static void s_remove_path(const char *path)
{
    static const char *const files[] = {"orders.sock", "workers.sock"};
    struct stat st;
    if (lstat(path, &st) < 0) {
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    char file[T_PATH_CAP];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (snprintf(file, sizeof file, "%s/%s", path, files[i]) < (int)sizeof file) {
            unlink(file);
        }
    }
    rmdir(path);
}

static void s_cleanup(void)
{
    if (s_base[0] == '\0') {
        return;
    }
    /* Everything the tests make lives at BASE/inst or BASE/state/inst. */
    const char *const leaves[] = {"inst", "state/inst", "state"};
    char path[T_PATH_CAP];
    for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        if (snprintf(path, sizeof path, "%s/%s", s_base, leaves[i]) < (int)sizeof path) {
            s_remove_path(path);
        }
    }
    rmdir(s_base);
}

TestSuite(instance, .fini = s_cleanup);

/* A per-test base directory name under /tmp (not created) set as SP_RUN_DIR. */
static const char *s_run_base(void)
{
    snprintf(s_base, sizeof s_base, "/tmp/sp-insttest-%ld-%s", (long)getpid(),
             criterion_current_test->name);
    cr_assert_eq(setenv("SP_RUN_DIR", s_base, 1), 0);
    return s_base;
}

static mode_t s_mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

Test(instance, check_accepts_plain_names)
{
    cr_expect_eq(sp_instance_check("stockpipe"), 0);
    cr_expect_eq(sp_instance_check("a-b_c.1"), 0);
    cr_expect_eq(sp_instance_check("A"), 0);
    cr_expect_eq(sp_instance_check(T_NAME_40), 0, "40 characters is the limit");
    cr_expect_eq(sp_instance_check(SP_INSTANCE_DEFAULT), 0);
}

Test(instance, check_refuses_empty_hidden_and_unsafe_names)
{
    const char *bad[] = {"", ".x", ".", "..", "a/b", "a b", "a\tb", "a:b", "a\\b", "é", T_NAME_41};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(sp_instance_check(bad[i]), SP_E_USAGE, "'%s'", bad[i]);
    }
    cr_expect_eq(sp_instance_check(NULL), SP_E_USAGE);
}

Test(instance, names_init_derives_every_name)
{
    const char *base = s_run_base();
    sp_names_t n;
    char want[T_PATH_CAP];

    cr_assert_eq(sp_names_init(&n, "shop", NULL), 0);

    cr_expect_str_eq(n.name, "shop");
    cr_expect_str_eq(n.table, "/shop.table");
    cr_expect_str_eq(n.orders_mq, "/shop.orders");
    cr_expect_str_eq(n.ring, "/shop.ring");
    snprintf(want, sizeof want, "%s/shop", base);
    cr_expect_str_eq(n.run_dir, want);
    cr_expect_str_eq(n.state_dir, SP_STATE_DIR_DEFAULT "/shop");
    cr_expect_str_eq(n.state_dir, "run/shop");
}

Test(instance, names_init_puts_state_under_the_given_base)
{
    s_run_base();
    sp_names_t n;

    cr_assert_eq(sp_names_init(&n, "shop", "/var/lib/stockpipe"), 0);

    cr_expect_str_eq(n.state_dir, "/var/lib/stockpipe/shop");
}

Test(instance, names_init_without_run_dir_uses_tmp_per_user)
{
    cr_assert_eq(unsetenv("SP_RUN_DIR"), 0);
    sp_names_t n;
    char want[T_PATH_CAP];
    snprintf(want, sizeof want, "/tmp/stockpipe-%ld/shop", (long)getuid());

    cr_assert_eq(sp_names_init(&n, "shop", NULL), 0);
    cr_expect_str_eq(n.run_dir, want);

    cr_assert_eq(setenv("SP_RUN_DIR", "", 1), 0);
    cr_assert_eq(sp_names_init(&n, "shop", NULL), 0);
    cr_expect_str_eq(n.run_dir, want, "an empty SP_RUN_DIR counts as unset");
}

Test(instance, names_init_refuses_a_bad_instance_name)
{
    s_run_base();
    sp_names_t n;

    cr_expect_eq(sp_names_init(&n, "a/b", NULL), SP_E_USAGE);
    cr_expect_eq(sp_names_init(&n, "", NULL), SP_E_USAGE);
    cr_expect_eq(sp_names_init(&n, T_NAME_41, NULL), SP_E_USAGE);
}

Test(instance, names_init_refuses_a_run_dir_that_does_not_fit)
{
    char longdir[SP_PATH_MAX + 64];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[0] = '/';
    longdir[sizeof longdir - 1] = '\0';
    cr_assert_eq(setenv("SP_RUN_DIR", longdir, 1), 0);
    sp_names_t n;

    cr_expect_eq(sp_names_init(&n, "shop", NULL), -ENAMETOOLONG);
}

Test(instance, names_init_refuses_a_state_dir_that_does_not_fit)
{
    s_run_base();
    char longdir[SP_PATH_MAX + 64];
    memset(longdir, 's', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = '\0';
    sp_names_t n;

    cr_expect_eq(sp_names_init(&n, "shop", longdir), -ENAMETOOLONG);
}

Test(instance, longest_names_still_fit_their_buffers)
{
    s_run_base();
    sp_names_t n;
    char reply[SP_IPC_NAME_MAX];

    cr_assert_eq(sp_names_init(&n, T_NAME_40, NULL), 0);
    sp_names_reply_mq(&n, UINT32_MAX, reply, sizeof reply);

    cr_expect_str_eq(n.name, T_NAME_40);
    cr_expect_str_eq(n.table, "/" T_NAME_40 ".table");
    cr_expect_str_eq(n.orders_mq, "/" T_NAME_40 ".orders");
    cr_expect_str_eq(reply, "/" T_NAME_40 ".r.4294967295");
}

Test(instance, reply_queue_name_carries_the_producer_id)
{
    s_run_base();
    sp_names_t n;
    char buf[SP_IPC_NAME_MAX];
    cr_assert_eq(sp_names_init(&n, "shop", NULL), 0);

    sp_names_reply_mq(&n, 7, buf, sizeof buf);
    cr_expect_str_eq(buf, "/shop.r.7");

    sp_names_reply_mq(&n, 0, buf, sizeof buf);
    cr_expect_str_eq(buf, "/shop.r.0");
}

Test(instance, ipc_endpoint_is_a_socket_in_the_run_dir)
{
    const char *base = s_run_base();
    sp_names_t n;
    char buf[SP_ENDPOINT_MAX];
    char want[T_PATH_CAP];
    cr_assert_eq(sp_names_init(&n, "shop", NULL), 0);

    cr_expect_eq(sp_names_ipc_endpoint(&n, "orders", buf, sizeof buf), 0);

    snprintf(want, sizeof want, "ipc://%s/shop/orders.sock", base);
    cr_expect_str_eq(buf, want);
}

Test(instance, ipc_endpoint_refuses_paths_too_long_for_a_socket)
{
    /* 100 bytes of run dir: the path alone fits SP_PATH_MAX but not the
     * 107 bytes a socket address holds. */
    char dir[101];
    memset(dir, 'p', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    cr_assert_eq(setenv("SP_RUN_DIR", dir, 1), 0);
    sp_names_t n;
    char buf[T_PATH_CAP];
    cr_assert_eq(sp_names_init(&n, "shop", NULL), 0);

    cr_expect_eq(sp_names_ipc_endpoint(&n, "orders", buf, sizeof buf), -ENAMETOOLONG);
}

Test(instance, ipc_endpoint_refuses_a_buffer_too_small)
{
    s_run_base();
    sp_names_t n;
    char tiny[16];
    cr_assert_eq(sp_names_init(&n, "shop", NULL), 0);

    cr_expect_eq(sp_names_ipc_endpoint(&n, "orders", tiny, sizeof tiny), -ENAMETOOLONG);
}

Test(instance, make_run_dir_creates_a_private_directory)
{
    const char *base = s_run_base();
    sp_names_t n;
    cr_assert_eq(sp_names_init(&n, "inst", NULL), 0);
    mode_t old = umask(0);

    int rc = sp_names_make_run_dir(&n);
    umask(old);

    cr_expect_eq(rc, 0, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_eq(s_mode_of(n.run_dir), 0700, "mode %o", (unsigned)s_mode_of(n.run_dir));
    cr_expect_eq(s_mode_of(base), 0700, "the parent it made is private too");
    cr_expect_eq(sp_names_make_run_dir(&n), 0, "an existing private directory is fine");
}

Test(instance, make_run_dir_refuses_a_directory_open_to_others)
{
    s_run_base();
    sp_names_t n;
    cr_assert_eq(sp_names_init(&n, "inst", NULL), 0);
    cr_assert_eq(mkdir(s_base, 0700), 0);
    cr_assert_eq(mkdir(n.run_dir, 0700), 0);
    cr_assert_eq(chmod(n.run_dir, 0755), 0);

    cr_expect_eq(sp_names_make_run_dir(&n), -EPERM);
    cr_expect_eq(s_mode_of(n.run_dir), 0755, "the directory is left as it was");
}

Test(instance, make_run_dir_refuses_a_directory_owned_by_someone_else)
{
    if (getuid() != 0) {
        cr_skip_test("needs root to give the directory away");
    }
    s_run_base();
    sp_names_t n;
    cr_assert_eq(sp_names_init(&n, "inst", NULL), 0);
    cr_assert_eq(mkdir(s_base, 0700), 0);
    cr_assert_eq(mkdir(n.run_dir, 0700), 0);
    cr_assert_eq(chown(n.run_dir, T_NOBODY, T_NOBODY), 0);

    cr_expect_eq(sp_names_make_run_dir(&n), -EPERM);
}

Test(instance, make_run_dir_refuses_a_parent_others_may_write)
{
    s_run_base();
    sp_names_t n;
    cr_assert_eq(sp_names_init(&n, "inst", NULL), 0);
    cr_assert_eq(mkdir(s_base, 0700), 0);
    cr_assert_eq(chmod(s_base, 0777), 0);

    /* anyone could rename our directory away and put theirs in its place */
    cr_expect_eq(sp_names_make_run_dir(&n), -EPERM);
    cr_assert_eq(chmod(s_base, 01777), 0);
    cr_expect_eq(sp_names_make_run_dir(&n), 0, "a shared parent with the sticky bit, as /tmp");
}

Test(instance, make_run_dir_refuses_a_parent_owned_by_someone_else)
{
    if (getuid() != 0) {
        cr_skip_test("needs root to give the directory away");
    }
    s_run_base();
    sp_names_t n;
    cr_assert_eq(sp_names_init(&n, "inst", NULL), 0);
    cr_assert_eq(mkdir(s_base, 0700), 0);
    cr_assert_eq(chown(s_base, T_NOBODY, T_NOBODY), 0);

    cr_expect_eq(sp_names_make_run_dir(&n), -EPERM);
}

Test(instance, make_run_dir_refuses_a_file_in_the_way)
{
    s_run_base();
    sp_names_t n;
    cr_assert_eq(sp_names_init(&n, "inst", NULL), 0);
    cr_assert_eq(mkdir(s_base, 0700), 0);
    FILE *f = fopen(n.run_dir, "w");
    cr_assert_not_null(f);
    fclose(f);

    cr_expect_eq(sp_names_make_run_dir(&n), -ENOTDIR);
}

Test(instance, remove_run_dir_removes_sockets_and_the_directory)
{
    s_run_base();
    sp_names_t n;
    cr_assert_eq(sp_names_init(&n, "inst", NULL), 0);
    cr_assert_eq(sp_names_make_run_dir(&n), 0);
    char sock[T_PATH_CAP];
    snprintf(sock, sizeof sock, "%s/orders.sock", n.run_dir);
    FILE *f = fopen(sock, "w");
    cr_assert_not_null(f);
    fclose(f);

    sp_names_remove_run_dir(&n);

    struct stat st;
    cr_expect_neq(stat(n.run_dir, &st), 0, "run dir still there");
    cr_expect_eq(errno, ENOENT);
    sp_names_remove_run_dir(&n); /* a second time is harmless */
}

Test(instance, make_state_dir_creates_it_under_the_base)
{
    const char *base = s_run_base();
    char state_base[T_PATH_CAP];
    snprintf(state_base, sizeof state_base, "%s/state", base);
    sp_names_t n;
    cr_assert_eq(sp_names_init(&n, "inst", state_base), 0);

    int rc = sp_names_make_state_dir(&n);

    cr_expect_eq(rc, 0, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_eq(s_mode_of(n.state_dir), 0700);
}
