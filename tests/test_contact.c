/*
 * test_contact — RUN_DIR/contact: what the broker writes a local client
 * reads back, and what is not such a file is refused naming the line.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_contact.h"
#include "sp_error.h"
#include "sp_testutil.h"

static char s_dir[256];
static sp_names_t s_names;

static void s_setup(void)
{
    cr_assert(spt_tmpdir(s_dir, sizeof s_dir, "contact"));
    char instance[64];
    spt_instance(instance, sizeof instance, "contact");
    cr_assert_eq(sp_names_init(&s_names, instance, NULL), 0);
    snprintf(s_names.run_dir, sizeof s_names.run_dir, "%s", s_dir);
}

static void s_teardown(void)
{
    spt_rmtree(s_dir);
}

TestSuite(contact, .init = s_setup, .fini = s_teardown);

static void s_write_raw(const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, SP_CONTACT_FILE);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(contact, what_is_written_is_read_back)
{
    sp_contact_t c = {.transport = "zmq",
                      .orders = "tcp://127.0.0.1:5555",
                      .events = "tcp://127.0.0.1:5558",
                      .snapshot = "tcp://127.0.0.1:5559",
                      .server_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"};
    char why[256] = "";
    cr_assert_eq(sp_contact_write(&s_names, &c, why, sizeof why), 0, "%s", why);
    sp_contact_t back;

    cr_assert_eq(sp_contact_read(&s_names, &back, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(back.transport, c.transport);
    cr_expect_str_eq(back.orders, c.orders);
    cr_expect_str_eq(back.events, c.events);
    cr_expect_str_eq(back.snapshot, c.snapshot);
    cr_expect_str_eq(back.server_key, c.server_key);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, SP_CONTACT_FILE);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
}

Test(contact, empty_endpoints_and_no_key_stay_empty)
{
    sp_contact_t c = {.transport = "mq"};
    char why[256] = "";
    cr_assert_eq(sp_contact_write(&s_names, &c, why, sizeof why), 0, "%s", why);
    sp_contact_t back;
    cr_assert_eq(sp_contact_read(&s_names, &back, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(back.transport, "mq");
    cr_expect_str_eq(back.orders, "");
    cr_expect_str_eq(back.server_key, "");
}

Test(contact, no_file_is_enoent)
{
    sp_contact_t c;
    char why[256] = "";
    cr_expect_eq(sp_contact_read(&s_names, &c, why, sizeof why), -ENOENT);
}

Test(contact, unknown_keys_are_skipped_and_bad_lines_named)
{
    sp_contact_t c;
    char why[256] = "";
    s_write_raw("colour blue\ntransport shm\n");
    cr_expect_eq(sp_contact_read(&s_names, &c, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(c.transport, "shm");

    s_write_raw("transport mq\ngarbage\n");
    cr_expect_eq(sp_contact_read(&s_names, &c, why, sizeof why), SP_E_BAD_LAYOUT);
    cr_expect_not_null(strstr(why, "line 2"), "%s", why);

    s_write_raw("transport averyveryverylongtransportname\n");
    cr_expect_eq(sp_contact_read(&s_names, &c, why, sizeof why), SP_E_BAD_LAYOUT);
    cr_expect_not_null(strstr(why, "line 1"), "%s", why);

    s_write_raw("orders ipc:///x\n");
    cr_expect_eq(sp_contact_read(&s_names, &c, why, sizeof why), SP_E_BAD_LAYOUT);
    cr_expect_not_null(strstr(why, "no transport"), "%s", why);
}
