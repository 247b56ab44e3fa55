/*
 * test_remote — producers that cannot see the broker's host: the producer
 * runs in a mount namespace of its own with an empty private /dev/shm
 * (`unshare --mount`, a tmpfs over /dev/shm), so it provably cannot map the
 * instance's table, and reaches the broker over loopback TCP with
 * --connect, with and without CURVE.  The load generator, its audit and the
 * one-shot orders work from there; exactly-once holds across a reconnect
 * with the same producer id.  Through NATS (--connect nats://...), the
 * producer reaches only the nats servers: its load and one-shot orders are
 * applied, and a wrong password is named (and never printed).
 *
 * Needs root (or unprivileged user namespaces) for the mount namespace: on a
 * machine that refuses `unshare --mount` the same producers run without
 * it (still over --connect, still not told where the table is), and the
 * test says so in a warning.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_client.h"
#include "sp_curve.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"

#define T_RUN_MS  60000
#define T_PATH    512
#define T_ORDERS  2000
#define T_PRODUCT 3

static pid_t s_broker_pid;
static bool s_private; /* the producers run in a mount namespace of their own */
static char s_tmp[T_PATH];

static spt_nats_t s_nats; /* the tests through NATS: their server */

static void s_cleanup(void)
{
    if (s_broker_pid > 0) {
        spt_stop(s_broker_pid);
        s_broker_pid = 0;
    }
    spt_nats_stop(&s_nats);
    spt_rmtree(s_tmp);
}

TestSuite(remote, .fini = s_cleanup);

/* Whether this machine lets us make a mount namespace with its own /dev/shm
 * (remembered for s_run_unseen; a warning when it does not). */
static bool s_can_unshare(void);
static void s_namespaces(void)
{
    s_private = s_can_unshare();
    if (!s_private) {
        /* said on stderr: Criterion's own warnings make its exit status 1 */
        fprintf(stderr, "remote: this machine refuses `unshare --mount`: the producers run "
                        "without a private /dev/shm (still only over --connect)\n");
    }
}

static bool s_can_unshare(void)
{
    const char *argv[] = {"/usr/bin/unshare",
                          "--mount",
                          "--propagation",
                          "private",
                          "sh",
                          "-c",
                          "mount -t tmpfs tmpfs /dev/shm",
                          NULL};
    char *out = NULL;
    int rc = spt_run(argv, 10000, &out);
    free(out);
    return rc == 0;
}

/* Runs bin/producer ARGS... in a new mount namespace whose /dev/shm is an
 * empty tmpfs, after checking there that the instance's table cannot be
 * seen.  Returns the producer's exit code (-1 on a timeout), *out its
 * output. */
static size_t s_unseen_argv(const char *instance, const char *bin, const char *const *args,
                            const char **argv, size_t cap, char *script, size_t script_cap);

static int s_run_unseen(const char *instance, const char *const *args, char **out)
{
    const char *argv[40];
    char script[256];
    s_unseen_argv(instance, "producer", args, argv, 40, script, sizeof script);
    return spt_run(argv, T_RUN_MS, out);
}

/* argv for bin/BIN ARGS... in a new mount namespace as above. */
static size_t s_unseen_argv(const char *instance, const char *bin, const char *const *args,
                            const char **argv, size_t cap, char *script, size_t script_cap)
{
    snprintf(script, script_cap,
             "mount -t tmpfs -o mode=1777 tmpfs /dev/shm || exit 90; "
             "test ! -e /dev/shm/%s.table || { echo 'the table is visible'; exit 91; }; "
             "exec \"$@\"",
             instance);
    const char *pre[] = {
        "/usr/bin/unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"};
    size_t n = 0;
    if (s_private) {
        for (; n < sizeof pre / sizeof pre[0]; n++) {
            argv[n] = pre[n];
        }
    }
    argv[n++] = spt_bin(bin);
    for (size_t i = 0; args[i] != NULL && n + 1 < cap; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    return n;
}

static pid_t s_broker(const char *instance, const char *const *curve, unsigned *port)
{
    const char *extra[16] = {
        "--transport", "zmq", "--workers", "2", "--fresh", "--catalogue", spt_data("products.csv")};
    size_t n = 7;
    for (size_t i = 0; curve != NULL && curve[i] != NULL; i++) {
        extra[n++] = curve[i];
    }
    extra[n] = NULL;
    s_broker_pid = spt_broker_start_tcp(instance, NULL, extra, port);
    cr_assert_gt(s_broker_pid, 0, "broker %s did not start", instance);
    return s_broker_pid;
}

static uint32_t s_stock(const char *instance, uint32_t id)
{
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    sp_product_t p;
    cr_assert_eq(sp_table_read(t, id, &p, NULL), 0);
    sp_table_close(&t);
    return p.stock;
}

Test(remote, a_producer_that_cannot_see_the_table_loads_and_audits_over_tcp, .timeout = 120)
{
    s_namespaces();
    char instance[64], url[64];
    spt_instance(instance, sizeof instance, "rmload");
    unsigned port = 0;
    s_broker(instance, NULL, &port);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", port);

    char *out = NULL;
    const char *load[] = {"--connect", url,         "--customers", "2",       "--count",
                          "2000",      "--restock", "0.2",         "--holds", "0.1",
                          "--json",    "--audit",   "--table",     NULL};
    int rc = s_run_unseen(instance, load, &out);

    cr_expect_eq(rc, 0, "%s", out);
    cr_expect_eq(spt_json_num(out, "sent"), T_ORDERS, "%s", out);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0, "%s", out);
    cr_expect(strstr(out, "conservation: ok") != NULL, "%s", out);
    cr_expect(strstr(out, "final table:") != NULL, "%s", out);
    cr_expect(strstr(out, "the table is visible") == NULL, "%s", out);
    free(out);
    cr_expect_eq(spt_stop(s_broker_pid), 0);
    s_broker_pid = 0;
    cr_expect_not(spt_leftovers(instance));
}

Test(remote, one_shot_orders_and_holds_work_from_another_mount_namespace, .timeout = 120)
{
    s_namespaces();
    char instance[64], url[64];
    spt_instance(instance, sizeof instance, "rmonce");
    unsigned port = 0;
    s_broker(instance, NULL, &port);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", port);
    uint32_t before = s_stock(instance, T_PRODUCT);

    char *out = NULL;
    char bare[64]; /* --connect takes what the broker's --tcp takes, prefix or not */
    snprintf(bare, sizeof bare, "127.0.0.1:%u", port);
    const char *buy[] = {"--connect", bare, "buy", "3", "2", NULL};
    cr_expect_eq(s_run_unseen(instance, buy, &out), 0, "%s", out);
    cr_expect(strstr(out, "accepted") != NULL, "%s", out);
    free(out);
    const char *reserve[] = {"--connect", url, "reserve", "3", "1", "60", NULL};
    cr_expect_eq(s_run_unseen(instance, reserve, &out), 0, "%s", out);
    /* "... held by producer N ..." names the id a buy-held needs */
    const char *by = strstr(out, "producer ");
    cr_assert_not_null(by, "%s", out);
    char holder[16];
    snprintf(holder, sizeof holder, "%u", (unsigned)strtoul(by + strlen("producer "), NULL, 10));
    free(out);
    const char *buy_held[] = {"--connect", url, "buy-held", "3", "1", holder, NULL};
    cr_expect_eq(s_run_unseen(instance, buy_held, &out), 0, "%s", out);
    cr_expect(strstr(out, "bought the held units") != NULL, "%s", out);
    free(out);

    cr_expect_eq(s_stock(instance, T_PRODUCT), before - 3, "2 bought, 1 held then bought");
    cr_expect_eq(spt_stop(s_broker_pid), 0);
    s_broker_pid = 0;
    cr_expect_not(spt_leftovers(instance));
}

Test(remote, over_curve_a_listed_key_is_served_and_an_unlisted_one_gets_nothing, .timeout = 120)
{
    s_namespaces();
    cr_assert(spt_tmpdir(s_tmp, sizeof s_tmp, "rmcurve"));
    char server[T_PATH + 16], alice[T_PATH + 16], mallory[T_PATH + 16], clients[T_PATH + 16],
        listed[T_PATH + 32], why[256] = "";
    snprintf(server, sizeof server, "%s/server", s_tmp);
    snprintf(alice, sizeof alice, "%s/alice", s_tmp);
    snprintf(mallory, sizeof mallory, "%s/mallory", s_tmp);
    snprintf(clients, sizeof clients, "%s/clients", s_tmp);
    sp_curve_keys_t keys;
    cr_assert_eq(sp_curve_keygen(server, &keys, why, sizeof why), 0, "%s", why);
    cr_assert_eq(sp_curve_keygen(alice, &keys, why, sizeof why), 0, "%s", why);
    cr_assert_eq(sp_curve_keygen(mallory, &keys, why, sizeof why), 0, "%s", why);
    sp_curve_wipe(&keys);
    cr_assert_eq(mkdir(clients, 0700), 0);
    snprintf(listed, sizeof listed, "%s/alice.pub", clients);
    char *pub = spt_slurp(alice);
    int fd = open(listed, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, pub, strlen(pub)), (ssize_t)strlen(pub));
    close(fd);
    free(pub);

    char instance[64], url[64];
    spt_instance(instance, sizeof instance, "rmcurve");
    unsigned port = 0;
    const char *curve[] = {"--curve-cert", server, "--curve-clients", clients, NULL};
    s_broker(instance, curve, &port);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", port);
    uint32_t before = s_stock(instance, T_PRODUCT);

    char *out = NULL;
    const char *load[] = {"--connect", url,   "--server-cert", server,    "--cert", alice,
                          "--count",   "500", "--json",        "--audit", NULL};
    cr_expect_eq(s_run_unseen(instance, load, &out), 0, "%s", out);
    cr_expect_eq(spt_json_num(out, "sent"), 500, "%s", out);
    cr_expect(strstr(out, "conservation: ok") != NULL, "%s", out);
    free(out);
    uint32_t after_load = s_stock(instance, T_PRODUCT);

    const char *unlisted[] = {"--connect", url,  "--server-cert", server, "--cert", mallory,
                              "--timeout", "1s", "buy",           "3",    "1",      NULL};
    cr_expect_neq(s_run_unseen(instance, unlisted, &out), 0, "%s", out);
    cr_expect(strstr(out, "no WELCOME") != NULL, "%s", out);
    free(out);
    const char *no_key[] = {"--connect", url, "--timeout", "1s", "buy", "3", "1", NULL};
    cr_expect_neq(s_run_unseen(instance, no_key, &out), 0, "%s", out);
    free(out);

    cr_expect_eq(s_stock(instance, T_PRODUCT), after_load, "nothing applied without a listed key");
    cr_expect_leq(after_load, before);
    cr_expect_eq(spt_stop(s_broker_pid), 0);
    s_broker_pid = 0;
    cr_expect_not(spt_leftovers(instance));
}

/* ---- exactly once across a reconnect, from a namespace without the table ---- */

/* One order of `producer` with sequence `seq` on a fresh connection; the
 * result's status and original outcome come back in *res. */
static int s_order_once(const char *url, uint32_t producer, uint64_t seq, sp_result_t *res,
                        char *why, size_t cap)
{
    sp_client_cfg_t cfg = {
        .instance = "remote", .connect = url, .batch = 1, .producer_id = producer};
    sp_client_t *c = NULL;
    int rc = sp_client_open(&c, &cfg, why, cap);
    if (rc < 0) {
        return rc;
    }
    size_t msg_cap, in_cap;
    uint8_t *msg = sp_client_orders_buf(c, &msg_cap);
    uint8_t *in = sp_client_results_buf(c, &in_cap);
    sp_order_t o = {.type = SP_ORDER_PURCHASE,
                    .producer_id = producer,
                    .seq = seq,
                    .product_id = T_PRODUCT,
                    .quantity = 1};
    sp_wire_put_hdr(msg, SP_MSG_ORDERS, 1, producer, 0);
    sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, 0), &o);
    rc = sp_link_send(sp_client_link(c), msg, sp_wire_msg_size(SP_MSG_ORDERS, 1), NULL,
                      SP_TEST_WAIT_MS);
    int n = rc < 0 ? rc : sp_link_recv(sp_client_link(c), in, in_cap, NULL, SP_TEST_WAIT_MS);
    sp_msg_hdr_t h;
    if (n > 0 && sp_wire_check(in, (size_t)n, &h) == 0 && h.kind == SP_MSG_RESULTS) {
        sp_wire_get_result(sp_wire_crec(in, SP_MSG_RESULTS, 0), res);
        rc = 0;
    } else {
        rc = n < 0 ? n : -EPROTO;
        snprintf(why, cap, "no result: %s", sp_strerror(rc));
    }
    sp_client_close(&c);
    return rc;
}

/* Child: a mount namespace with an empty /dev/shm, then the order, then the
 * same order again on a new connection as the same producer. */
static void s_reconnect_child(const char *url, int fd)
{
    if (s_private &&
        (unshare(CLONE_NEWNS) < 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
         mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777") < 0)) {
        _exit(90);
    }
    char why[256] = "";
    sp_result_t r[2];
    memset(r, 0, sizeof r);
    int rc = s_order_once(url, 4100, 7, &r[0], why, sizeof why);
    if (rc == 0) {
        rc = s_order_once(url, 4100, 7, &r[1], why, sizeof why);
    }
    if (rc < 0 || write(fd, r, sizeof r) != (ssize_t)sizeof r) {
        dprintf(STDERR_FILENO, "reconnect child: %s\n", why);
        _exit(1);
    }
    _exit(0);
}

Test(remote, a_resent_order_after_a_reconnect_is_answered_as_a_duplicate, .timeout = 120)
{
    s_namespaces();
    char instance[64], url[64];
    spt_instance(instance, sizeof instance, "rmonce2");
    unsigned port = 0;
    s_broker(instance, NULL, &port);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", port);
    uint32_t before = s_stock(instance, T_PRODUCT);
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);

    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(pipefd[0]);
        s_reconnect_child(url, pipefd[1]);
    }
    close(pipefd[1]);
    sp_result_t r[2];
    ssize_t got = read(pipefd[0], r, sizeof r);
    close(pipefd[0]);
    int code = spt_wait(child, T_RUN_MS);

    cr_assert_eq(code, 0, "the child in its own namespace failed (%d)", code);
    cr_assert_eq(got, (ssize_t)sizeof r);
    cr_expect_eq(r[0].status, SP_STATUS_ACCEPTED, "%s", sp_wire_status_name(r[0].status));
    cr_expect_eq(r[1].status, SP_STATUS_DUPLICATE, "%s", sp_wire_status_name(r[1].status));
    cr_expect_eq(r[1].original, SP_STATUS_ACCEPTED, "the first outcome, remembered");
    cr_expect_eq(s_stock(instance, T_PRODUCT), before - 1, "applied once");
    cr_expect_eq(spt_stop(s_broker_pid), 0);
    s_broker_pid = 0;
    cr_expect_not(spt_leftovers(instance));
}

/* --- through NATS: the producer reaches only the nats servers ------------ */

static void s_nats_broker(const char *instance)
{
    cr_assert(spt_nats_start(&s_nats, instance), "nats-server did not start");
    const char *extra[] = {
        "--nats", s_nats.url, "--workers", "2", "--fresh", "--catalogue", spt_data("products.csv"),
        NULL};
    s_broker_pid = spt_broker_start(instance, extra);
    cr_assert_gt(s_broker_pid, 0, "broker %s did not start", instance);
}

Test(remote, a_producer_that_cannot_see_the_table_loads_through_nats, .timeout = 120)
{
    s_namespaces();
    char instance[64];
    spt_instance(instance, sizeof instance, "rmnats");
    s_nats_broker(instance);

    char *out = NULL;
    const char *load[] = {"--instance", instance,  "--connect", s_nats.url,  "--customers",
                          "2",          "--count", "2000",      "--restock", "0.2",
                          "--holds",    "0.1",     "--json",    NULL};
    int rc = s_run_unseen(instance, load, &out);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect_eq(spt_json_num(out, "sent"), T_ORDERS, "%s", out);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0, "%s", out);
    cr_expect(strstr(out, "the table is visible") == NULL, "%s", out);
    free(out);

    /* a one-shot order the same way (a restock: it cannot run out), then
     * the table adds up */
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    uint64_t before = spt_tally(t, T_PRODUCT).restocked;
    const char *restock[] = {"--instance", instance, "--connect", s_nats.url,
                             "restock",    "3",      "5",         NULL};
    cr_expect_eq(s_run_unseen(instance, restock, &out), 0, "%s", out);
    cr_expect(strstr(out, "accepted") != NULL, "%s", out);
    free(out);
    /* (holds of the load may still expire: stock moves, the restocked
     * count does not) */
    cr_expect_eq(spt_tally(t, T_PRODUCT).restocked, before + 5);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0, "the table does not add up");
    sp_table_close(&t);

    cr_expect_eq(spt_stop(s_broker_pid), 0);
    s_broker_pid = 0;
    cr_expect_not(spt_leftovers(instance));
    spt_nats_stop(&s_nats);
}

Test(remote, a_producer_with_the_wrong_nats_password_is_told_so, .timeout = 60)
{
    char instance[64];
    spt_instance(instance, sizeof instance, "rmnatspw");
    s_nats_broker(instance);
    char *out = NULL;
    const char *buy[] = {spt_bin("producer"), "--connect", s_nats.bad_url, "buy", "3", "1", NULL};
    int rc = spt_run(buy, T_RUN_MS, &out);
    cr_expect_neq(rc, 0, "%s", out);
    cr_expect(strstr(out, "refused our credentials") != NULL, "%s", out);
    cr_expect(strstr(out, "wrong") == NULL, "the password is never printed: %s", out);
    free(out);
    cr_expect_eq(spt_stop(s_broker_pid), 0);
    s_broker_pid = 0;
    spt_nats_stop(&s_nats);
}

Test(remote, nats_credentials_come_from_a_private_file, .timeout = 60)
{
    char instance[64];
    spt_instance(instance, sizeof instance, "rmnatsauth");
    cr_assert(spt_nats_start(&s_nats, instance), "nats-server did not start");
    const char *extra[] = {"--nats",    s_nats.bare_url, "--nats-auth",
                           s_nats.auth, "--workers",     "1",
                           "--fresh",   "--catalogue",   spt_data("products.csv"),
                           NULL};
    s_broker_pid = spt_broker_start(instance, extra);
    cr_assert_gt(s_broker_pid, 0, "broker %s did not start with --nats-auth", instance);

    char *out = NULL;
    const char *buy[] = {spt_bin("producer"),
                         "--instance",
                         instance,
                         "--connect",
                         s_nats.bare_url,
                         "--nats-auth",
                         s_nats.auth,
                         "buy",
                         "3",
                         "1",
                         NULL};
    cr_expect_eq(spt_run(buy, T_RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "accepted") != NULL, "%s", out);
    free(out);

    /* a file others may read is refused, and says how to fix it */
    cr_assert_eq(chmod(s_nats.auth, 0644), 0);
    cr_expect_neq(spt_run(buy, T_RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "chmod 600") != NULL, "%s", out);
    free(out);
    /* and none at all is named as such */
    const char *none[] = {spt_bin("producer"),
                          "--instance",
                          instance,
                          "--connect",
                          s_nats.bare_url,
                          "buy",
                          "3",
                          "1",
                          NULL};
    cr_expect_neq(spt_run(none, T_RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "refused our credentials") != NULL, "%s", out);
    free(out);

    cr_expect_eq(spt_stop(s_broker_pid), 0);
    s_broker_pid = 0;
    spt_nats_stop(&s_nats);
}

/* A monitor that reaches only the NATS servers: the table from a snapshot
 * served over NATS, then the stock as it moves, to the broker's end. */
Test(remote, a_monitor_that_cannot_see_the_table_follows_the_shop_through_nats, .timeout = 120)
{
    s_namespaces();
    char instance[64];
    spt_instance(instance, sizeof instance, "rmnatsmon");
    s_nats_broker(instance);
    uint32_t before = s_stock(instance, T_PRODUCT);

    const char *once[] = {"--instance", instance, "--connect", s_nats.url,
                          "--once",     "--json", NULL};
    const char *argv[40];
    char script[256];
    s_unseen_argv(instance, "monitor", once, argv, 40, script, sizeof script);
    char *out = NULL;
    cr_expect_eq(spt_run(argv, T_RUN_MS, &out), 0, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "\"id\":%u,", T_PRODUCT);
    const char *row = out != NULL ? strstr(out, want) : NULL;
    cr_assert_not_null(row, "no product %u in the snapshot: %s", T_PRODUCT, out);
    const char *stock = strstr(row, "\"stock\":");
    cr_assert_not_null(stock, "%s", row);
    cr_expect_eq(strtoul(stock + strlen("\"stock\":"), NULL, 10), before, "%s", row);
    free(out);
    /* an instance the servers do not carry is named, not waited for forever */
    const char *nosuch[] = {spt_bin("monitor"), "--instance", "sp-no-such-shop",
                            "--connect",        s_nats.url,   "--once",
                            "--wait",           "1000",       NULL};
    cr_expect_neq(spt_run(nosuch, T_RUN_MS, &out), 0, "%s", out);
    cr_expect(out != NULL && strstr(out, "'sp-no-such-shop' through the NATS servers") != NULL,
              "%s", out);
    free(out);

    /* live: the monitor in lines; a purchase it sees as an event; the
     * broker's end of stream ends it, with its own table */
    cr_assert(spt_tmpdir(s_tmp, sizeof s_tmp, "rmnatsmon"));
    char path[T_PATH + 16];
    snprintf(path, sizeof path, "%s/monitor", s_tmp);
    const char *live[] = {"--instance", instance,  "--connect", s_nats.url,
                          "--plain",    "--final", NULL};
    s_unseen_argv(instance, "monitor", live, argv, 40, script, sizeof script);
    pid_t mon = spt_spawn(argv, path);
    cr_assert_gt(mon, 0);
    bool following = false;
    for (int waited = 0; waited < SP_TEST_WAIT_MS && !following; waited += 50) {
        char *text = spt_slurp(path);
        following = text != NULL && strstr(text, "summary:") != NULL;
        free(text);
        if (!following) {
            usleep(50 * 1000);
        }
    }
    cr_expect(following, "the monitor never followed the feed");
    const char *buy[] = {"--instance", instance, "--connect", s_nats.url, "buy", "3", "2", NULL};
    cr_expect_eq(s_run_unseen(instance, buy, &out), 0, "%s", out);
    free(out);
    cr_expect_eq(spt_stop(s_broker_pid), 0);
    s_broker_pid = 0;
    cr_expect_eq(spt_wait(mon, SP_TEST_WAIT_MS), 0, "the monitor did not end with the broker");
    char *text = spt_slurp(path);
    cr_assert_not_null(text);
    char event[96];
    snprintf(event, sizeof event, "%u -> %u", before, before - 2);
    cr_expect(strstr(text, event) != NULL, "no event '%s': %s", event, text);
    cr_expect(strstr(text, "end of stream: the broker stopped") != NULL, "%s", text);
    cr_expect(strstr(text, "gaps 0") != NULL, "%s", text);
    cr_expect(strstr(text, "Yogurt natural nuez") != NULL, "%s", text);
    free(text);
    cr_expect_not(spt_leftovers(instance));
    spt_nats_stop(&s_nats);
}
