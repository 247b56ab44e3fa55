/*
 * test_pipeline — the real binaries over real IPC: a broker with workers,
 * many customer processes, a low-stock catalogue, every transport (mq, zmq,
 * shm) and every table strategy.  Each test checks that no stock went below
 * zero, that the conservation audit holds, and that every order got exactly
 * one answer.
 */
#include "sp_testutil.h"

#include "sp_instance.h"
#include "sp_table.h"
#include "sp_time.h"
#include "sp_version.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 60000

/* `--json --audit` prints one JSON object, the audit inside it as
 * "checks" (it used to follow the object as a line of text), read by a
 * real JSON parser. */
static void s_expect_one_json_object(const char *out)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/sp-json-%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
    const char *argv[] = {
        "/usr/bin/python3", "-c",
        "import json, sys\n"
        "d = json.load(open(sys.argv[1]))\n"
        "assert d['checks']['ok'] is True, d['checks']\n"
        "assert any(l.startswith('conservation: ok') for l in d['checks']['lines'])\n",
        path, NULL};
    char *py = NULL;
    cr_expect_eq(spt_run(argv, RUN_TIMEOUT_MS, &py), 0,
                 "not one JSON object with its checks: %s\n%s", py, out);
    free(py);
    unlink(path);
}

/* Runs one stressed load and checks everything the issue promises. */
static void s_stress(const char *tag, const char *transport, const char *sync, unsigned products,
                     unsigned stock, const char *count, const char *customers, const char *workers)
{
    char inst[64], cat[128];
    spt_instance(inst, sizeof inst, tag);
    spt_catalogue(cat, sizeof cat, products, stock);
    const char *extra[] = {"--catalogue", cat,      "--transport", transport, "--workers",
                           workers,       "--sync", sync,          NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0, "broker did not become ready");

    const char *argv[] = {spt_bin("producer"), "--instance", inst,     "--customers", customers,
                          "--count",           count,        "--json", "--audit",     NULL};
    char *out = NULL;
    int rc = spt_run(argv, RUN_TIMEOUT_MS, &out);
    cr_expect_eq(rc, 0, "producer exit %d, output:\n%s", rc, out);
    long long sent = spt_json_num(out, "sent");
    long long accepted = spt_json_num(out, "accepted");
    long long oos = spt_json_num(out, "out_of_stock");
    cr_expect_eq(sent, atoll(count), "sent %lld", sent);
    cr_expect_eq(accepted + oos, sent, "every order answered once: %s", out);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0);
    cr_expect_eq(spt_json_num(out, "unexpected"), 0);
    if (getenv("SP_CRASH_COMMIT") != NULL) {
        cr_expect_gt(spt_json_num(out, "retried"), 0, "workers died, orders were resent: %s", out);
    }
    cr_expect_eq(spt_json_num(out, "units_sold"), (long long)products * stock,
                 "sold exactly the stock there was: %s", out);
    cr_expect(strstr(out, "conservation: ok") != NULL, "%s", out);
    s_expect_one_json_object(out);

    /* the table agrees: everything sold, nothing negative */
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    for (uint32_t id = 1; id <= products; id++) {
        sp_product_t p;
        cr_assert_eq(sp_table_read(t, id, &p, NULL), 0);
        cr_expect_eq(p.stock, 0, "product %u left with %u", id, p.stock);
        cr_expect_eq(spt_tally(t, id).sold, stock);
    }
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
    sp_table_close(&t);

    int status = spt_stop(broker);
    cr_expect(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker status %d",
              status);
    cr_expect_not(spt_leftovers(inst), "IPC objects of %s left behind", inst);
    unlink(cat);
    free(out);
}

/* Workers die inside the commit (SP_CRASH_COMMIT, the chaos hook) while the
 * customers buy everything: the broker restarts them, the customers resend,
 * and still every unit is sold exactly once and every order answered once. */
static void s_killed_workers(const char *tag, const char *transport, const char *sync,
                             const char *hook)
{
    setenv("SP_CRASH_COMMIT", hook, 1); /* the broker's workers inherit it */
    s_stress(tag, transport, sync, 20, 1000, "30000", "2", "2");
    unsetenv("SP_CRASH_COMMIT");
}

Test(pipeline, mq_workers_killed_inside_the_commit_lose_nothing, .timeout = 120)
{
    s_killed_workers("mqkill", "mq", "cas", "3:4000");
}

Test(pipeline, zmq_workers_killed_holding_a_row_lock_lose_nothing, .timeout = 120)
{
    s_killed_workers("zmqkill", "zmq", "row-lock", "2:4000");
}

/* Customers reserve, buy held units, release them or let them expire, over
 * both transports: conservation counts held units, nothing is oversold, and
 * every hold ends (the broker expires the abandoned ones). */
static void s_holds(const char *tag, const char *transport)
{
    char inst[64], cat[128];
    spt_instance(inst, sizeof inst, tag);
    spt_catalogue(cat, sizeof cat, 20, 200);
    const char *extra[] = {"--catalogue", cat, "--transport", transport, NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    const char *argv[] = {spt_bin("producer"),
                          "--instance",
                          inst,
                          "--customers",
                          "3",
                          "--count",
                          "30000",
                          "--holds",
                          "0.25",
                          "--hold-time",
                          "1s",
                          "--restock",
                          "0.3",
                          "--json",
                          "--audit",
                          NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(argv, RUN_TIMEOUT_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "conservation: ok") != NULL, "%s", out);
    cr_expect_eq(spt_json_num(out, "unexpected"), 0);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0);
    free(out);
    /* abandoned holds expire (a second and a tick after they were made):
     * wait for the table to hold none, within the bound */
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    uint64_t held = 0;
    uint32_t first = 0;
    for (uint64_t deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;;) {
        held = 0;
        first = 0;
        for (uint32_t id = 1; id <= 20; id++) {
            uint64_t h = spt_tally(t, id).held;
            held += h;
            first = first == 0 && h > 0 ? id : first;
        }
        if (held == 0 || sp_now_ns() >= deadline) {
            break;
        }
        sp_sleep_ns(10 * SP_NS_PER_MS);
    }
    cr_expect_eq(held, 0, "%llu units still held %d ms after the load (product %u among them)",
                 (unsigned long long)held, SP_TEST_WAIT_MS, first);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
    sp_table_close(&t);
    cr_expect_eq(WEXITSTATUS(spt_stop(broker)), 0);
    cr_expect_not(spt_leftovers(inst));
    unlink(cat);
}

Test(pipeline, holds_over_mq_conserve_and_expire, .timeout = 120)
{
    s_holds("holdsmq", "mq");
}

Test(pipeline, holds_over_zmq_conserve_and_expire, .timeout = 120)
{
    s_holds("holdszmq", "zmq");
}

Test(pipeline, mq_stress_sells_exactly_the_stock, .timeout = 120)
{
    s_stress("mqstress", "mq", "cas", 50, 100, "200000", "8", "4");
}

Test(pipeline, zmq_stress_sells_exactly_the_stock, .timeout = 120)
{
    s_stress("zmqstress", "zmq", "cas", 50, 100, "200000", "8", "4");
}

Test(pipeline, shm_stress_sells_exactly_the_stock, .timeout = 120)
{
    s_stress("shmstress", "shm", "cas", 50, 100, "40000", "2", "2");
}

/* direct: the customers apply their own orders (the original shop's model) */
Test(pipeline, direct_stress_sells_exactly_the_stock, .timeout = 120)
{
    s_stress("directstress", "direct", "cas", 50, 100, "200000", "8", "1");
}

Test(pipeline, direct_table_lock_sells_exactly_the_stock, .timeout = 120)
{
    s_stress("directtl", "direct", "table-lock", 20, 50, "50000", "4", "1");
}

Test(pipeline, row_lock_over_mq_sells_exactly_the_stock, .timeout = 120)
{
    s_stress("rowlock", "mq", "row-lock", 20, 50, "20000", "4", "2");
}

Test(pipeline, table_lock_over_zmq_sells_exactly_the_stock, .timeout = 120)
{
    s_stress("tablelock", "zmq", "table-lock", 20, 50, "20000", "4", "2");
}

/* Mixed purchases and restocks at a target rate, Zipf popularity. */
static void s_mixed(const char *transport)
{
    char inst[64];
    spt_instance(inst, sizeof inst, transport);
    const char *extra[] = {"--catalogue", spt_data("products.csv"), "--transport", transport, NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    const char *argv[] = {spt_bin("producer"),
                          "--instance",
                          inst,
                          "--customers",
                          "3",
                          "--rate",
                          "3000",
                          "--arrival",
                          "poisson",
                          "--duration",
                          "1s",
                          "--zipf",
                          "1.1",
                          "--restock",
                          "0.4",
                          "--qty",
                          "1-3",
                          "--batch",
                          "8",
                          "--json",
                          "--audit",
                          NULL};
    char *out = NULL;
    int rc = spt_run(argv, RUN_TIMEOUT_MS, &out);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "conservation: ok") != NULL, "%s", out);
    cr_expect_gt(spt_json_num(out, "sent"), 1000, "%s", out);
    cr_expect_gt(spt_json_num(out, "units_restocked"), 0);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0);
    int status = spt_stop(broker);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_expect_not(spt_leftovers(inst));
    free(out);
}

Test(pipeline, mq_mixed_load_at_a_rate_conserves_stock, .timeout = 60)
{
    s_mixed("mq");
}

Test(pipeline, zmq_mixed_load_at_a_rate_conserves_stock, .timeout = 60)
{
    s_mixed("zmq");
}

Test(pipeline, shm_mixed_load_at_a_rate_conserves_stock, .timeout = 60)
{
    s_mixed("shm");
}

/* One-shot orders: the original shop's buy button. */
static void s_one_shot(const char *transport)
{
    char inst[64];
    spt_instance(inst, sizeof inst, transport);
    const char *extra[] = {"--catalogue", spt_data("products.csv"), "--transport", transport, NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    char *out = NULL;
    const char *buy[] = {spt_bin("producer"), "--instance", inst, "buy", "8", "3", NULL};
    cr_expect_eq(spt_run(buy, RUN_TIMEOUT_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "accepted, stock left 2") != NULL, "%s", out);
    free(out);
    const char *too_many[] = {spt_bin("producer"), "--instance", inst, "buy", "8", "3", NULL};
    cr_expect_eq(spt_run(too_many, RUN_TIMEOUT_MS, &out), 3, "%s", out);
    cr_expect(strstr(out, "not enough stock: product 8 has 2, wanted 3") != NULL, "%s", out);
    free(out);
    const char *unknown[] = {spt_bin("producer"), "--instance", inst, "buy", "99", NULL};
    cr_expect_eq(spt_run(unknown, RUN_TIMEOUT_MS, &out), 3, "%s", out);
    cr_expect(strstr(out, "unknown_product") != NULL, "%s", out);
    free(out);
    const char *restock[] = {spt_bin("producer"), "--instance", inst, "restock", "8", "10", NULL};
    cr_expect_eq(spt_run(restock, RUN_TIMEOUT_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "stock left 12") != NULL, "%s", out);
    free(out);
    const char *zero[] = {spt_bin("producer"), "--instance", inst, "buy", "8", "0", NULL};
    cr_expect_eq(spt_run(zero, RUN_TIMEOUT_MS, &out), 2, "%s", out);
    cr_expect(strstr(out, "quantity: '0' is not a whole number from 1 to 1000000") != NULL, "%s",
              out);
    free(out);
    const char *neg[] = {spt_bin("producer"), "--instance", inst, "buy", "8", "-2", NULL};
    cr_expect_eq(spt_run(neg, RUN_TIMEOUT_MS, &out), 2, "%s", out);
    free(out);
    const char *huge[] = {spt_bin("producer"), "--instance", inst, "buy", "8", "99999999999", NULL};
    cr_expect_eq(spt_run(huge, RUN_TIMEOUT_MS, &out), 2, "%s", out);
    free(out);
    /* the table shows exactly the accepted orders */
    const char *once[] = {spt_bin("monitor"), "--instance", inst, "--once", "--json", NULL};
    cr_expect_eq(spt_run(once, RUN_TIMEOUT_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "\"id\":8,\"name\":\"Camarones jumbo\"") != NULL, "%s", out);
    cr_expect(strstr(out, "\"expiry\":20241115,\"stock\":12,") != NULL, "%s", out);
    free(out);
    int status = spt_stop(broker);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_expect_not(spt_leftovers(inst));
}

Test(pipeline, mq_one_shot_orders_answer_like_the_shop, .timeout = 60)
{
    s_one_shot("mq");
}

Test(pipeline, zmq_one_shot_orders_answer_like_the_shop, .timeout = 60)
{
    s_one_shot("zmq");
}

Test(pipeline, shm_one_shot_orders_answer_like_the_shop, .timeout = 60)
{
    s_one_shot("shm");
}

Test(pipeline, direct_one_shot_orders_answer_like_the_shop, .timeout = 60)
{
    s_one_shot("direct");
}

Test(pipeline, malformed_catalogue_is_refused_with_line_and_field, .timeout = 30)
{
    char path[] = "/tmp/sp-badcat-XXXXXX";
    int fd = mkstemp(path);
    const char *csv = "id_reg,name,category,weight,price,expiry,stock\n"
                      "1,Nuggets,Aves,0.8,120,2024-10-30,27\n"
                      "2,Pan,Panaderia,0.3,50,2024-13-15,29\n";
    cr_assert_eq(write(fd, csv, strlen(csv)), (ssize_t)strlen(csv));
    close(fd);
    char inst[64];
    spt_instance(inst, sizeof inst, "badcat");
    const char *argv[] = {spt_bin("broker"), "--instance", inst, "--catalogue", path, NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(argv, RUN_TIMEOUT_MS, &out), 1, "%s", out);
    cr_expect(strstr(out, ":3: field 6:") != NULL, "names line 3, field 6: %s", out);
    cr_expect_not(spt_leftovers(inst));
    free(out);
    unlink(path);
}

Test(pipeline, bad_flags_get_a_clear_error, .timeout = 30)
{
    struct {
        const char *role;
        const char *flag;
        const char *value;
        const char *expect;
    } cases[] = {
        {"broker", "--workers", "0", "--workers: '0' is not a whole number from 1 to 64"},
        {"broker", "--transport", "carrier-pigeon",
         "--transport: 'carrier-pigeon' is not mq, zmq, shm, direct or nats"},
        {"broker", "--sync", "none", "--sync: 'none' is not cas, row-lock or table-lock"},
        {"broker", "--instance", "a/b", "bad instance name 'a/b'"},
        {"producer", "--rate", "-5", "--rate: '-5' is not a number"},
        {"producer", "--duration", "10x", "--duration: '10x' is not a duration"},
        {"producer", "--qty", "5-2", "--qty: the range 5-2 is reversed: write 2-5"},
        {"producer", "--restock", "1.5", "--restock: '1.5' is not a number from 0 to 1"},
        {"consumer", "--worker-id", "65", "--worker-id: '65' is not a whole number from 1 to 64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {spt_bin(cases[i].role), cases[i].flag, cases[i].value, NULL};
        char *out = NULL;
        int rc = spt_run(argv, RUN_TIMEOUT_MS, &out);
        cr_expect_eq(rc, 2, "%s %s %s -> %d", cases[i].role, cases[i].flag, cases[i].value, rc);
        cr_expect(strstr(out, cases[i].expect) != NULL, "%s %s: %s", cases[i].role, cases[i].flag,
                  out);
        free(out);
    }
    /* an option that does not exist: named, and one line pointing to
     * --help, not the whole usage */
    static const char *const roles[] = {"broker", "producer", "consumer", "monitor"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        const char *argv[] = {spt_bin(roles[i]), "--no-such-flag", NULL};
        char *out = NULL;
        cr_expect_eq(spt_run(argv, RUN_TIMEOUT_MS, &out), 2, "%s: %s", roles[i], out);
        cr_expect(strstr(out, "--no-such-flag") != NULL && strstr(out, "see --help") != NULL,
                  "%s: %s", roles[i], out);
        cr_expect(strstr(out, "usage:") == NULL, "%s printed its whole usage: %s", roles[i], out);
        free(out);
    }
}

Test(pipeline, second_broker_on_a_live_instance_is_refused, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "twice");
    const char *extra[] = {"--catalogue", spt_data("products.csv"), NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    const char *argv[] = {spt_bin("broker"),        "--instance", inst, "--catalogue",
                          spt_data("products.csv"), NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(argv, RUN_TIMEOUT_MS, &out), 1, "%s", out);
    cr_expect(strstr(out, "is already running") != NULL, "%s", out);
    free(out);
    const char *clean[] = {spt_bin("broker"), "--instance", inst, "--clean", NULL};
    cr_expect_eq(spt_run(clean, RUN_TIMEOUT_MS, &out), 1, "%s", out);
    cr_expect(strstr(out, "is alive") != NULL, "%s", out);
    free(out);
    int status = spt_stop(broker);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_expect_not(spt_leftovers(inst));
}

Test(pipeline, clean_removes_a_dead_brokers_leftovers, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "dead");
    const char *extra[] = {"--catalogue", spt_data("products.csv"), NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    kill(broker, SIGKILL);
    waitpid(broker, NULL, 0);
    /* its workers notice nothing yet; stop them the way an operator would */
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    for (int w = 0; w < SP_WORKERS_MAX; w++) {
        pid_t pid = atomic_load(&sp_table_hdr(t)->worker[w].pid);
        if (pid > 0) {
            kill(pid, SIGTERM);
        }
    }
    sp_table_close(&t);
    cr_expect(spt_leftovers(inst));
    const char *clean[] = {spt_bin("broker"), "--instance", inst, "--clean", NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(clean, RUN_TIMEOUT_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "removed") != NULL, "%s", out);
    free(out);
    cr_expect_not(spt_leftovers(inst));
}

/* --- customers notice a dead broker --------------------------------------- */

/* Starts the load argv (output to out) on instance inst and waits (bounded)
 * until its two customers have their producer ids and, when `applied`, an
 * order was applied: *load gets its pid; false when that did not happen. */
static bool s_load_underway(const char *inst, const char *const *argv, const char *out,
                            bool applied, pid_t *load)
{
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, inst, NULL), 0);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    const sp_table_hdr_t *h = sp_table_hdr(t);
    uint32_t ids_before = atomic_load(&h->next_producer_id);
    *load = spt_spawn(argv, out);
    cr_assert_gt(*load, 0);
    bool underway = false;
    for (uint64_t until = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
         !underway && sp_now_ns() < until;) {
        underway = atomic_load(&h->next_producer_id) >= ids_before + 2 &&
                   (!applied || atomic_load(&h->event_seq) > 0);
        if (!underway) {
            usleep(10 * 1000);
        }
    }
    sp_table_close(&t);
    return underway;
}

/* Kills the instance's broker and every worker it had, at once. */
static void s_kill_instance(const char *inst, pid_t broker)
{
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, inst, NULL), 0);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    pid_t workers[SP_WORKERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < SP_WORKERS_MAX; i++) {
        pid_t pid = atomic_load(&sp_table_hdr(t)->worker[i].pid);
        if (pid > 0) {
            workers[n++] = pid;
        }
    }
    sp_table_close(&t);
    kill(broker, SIGKILL);
    for (unsigned i = 0; i < n; i++) {
        kill(workers[i], SIGKILL);
    }
    spt_wait(broker, RUN_TIMEOUT_MS);
}

/* Customers over zmq whose broker dies mid-run stop within their result
 * timeout and say why, with a failing exit status: over ipc:// they see the
 * broker's pid gone, over tcp:// they hear nothing back.  Their --timeout
 * also bounds their wait for the WELCOME, which on a busy machine took
 * over 2 s: T_DEAD_TIMEOUT gives the start-up SP_TEST_WAIT_MS. */
#define T_DEAD_TIMEOUT    "10s"
#define T_DEAD_TIMEOUT_MS 10000
static void s_dead_broker(const char *tag, bool tcp, const char *expect)
{
    char inst[64], out[256], where[32];
    spt_instance(inst, sizeof inst, tag);
    const char *extra[] = {"--transport", "zmq", "--workers", "2", NULL};
    unsigned port = 0;
    pid_t broker =
        tcp ? spt_broker_start_tcp(inst, NULL, extra, &port) : spt_broker_start(inst, extra);
    cr_assert_gt(broker, 0, "broker did not start");
    snprintf(where, sizeof where, "%u", port);
    snprintf(out, sizeof out, "/tmp/%s.out", inst);
    const char *argv[] = {spt_bin("producer"),
                          tcp ? "--connect" : "--instance",
                          tcp ? where : inst,
                          "--customers",
                          "2",
                          "--rate",
                          "1000",
                          "--duration",
                          "60s",
                          "--timeout",
                          T_DEAD_TIMEOUT,
                          NULL};
    /* the load is under way once both customers have their producer ids
     * and orders are being applied: wait for that (bounded), or the kill
     * would test a start-up instead */
    pid_t load = 0;
    bool underway = s_load_underway(inst, argv, out, true, &load);
    if (!underway) {
        s_kill_instance(inst, broker);
        spt_wait(load, RUN_TIMEOUT_MS);
        cr_assert_fail("the load was not under way (two producer ids, an order applied) "
                       "within %d ms:\n%s",
                       SP_TEST_WAIT_MS, spt_slurp(out));
    }
    uint64_t t0 = sp_now_ns();
    s_kill_instance(inst, broker);
    int rc = spt_wait(load, 3 * T_DEAD_TIMEOUT_MS);
    long took_ms = (long)((sp_now_ns() - t0) / SP_NS_PER_MS);
    char *text = spt_slurp(out);
    cr_expect_neq(rc, 0, "the customers exited 0 though their broker died:\n%s", text);
    cr_expect_neq(rc, -1, "the customers were still running %d ms after their broker died",
                  3 * T_DEAD_TIMEOUT_MS);
    cr_expect(strstr(text, expect) != NULL, "no '%s' in:\n%s", expect, text);
    cr_log_info("%s: the customers stopped %ld ms after the kill", tag, took_ms);
    free(text);
    unlink(out);
    const char *clean[] = {spt_bin("broker"), "--instance", inst, "--clean", NULL};
    char *cout = NULL;
    spt_run(clean, RUN_TIMEOUT_MS, &cout);
    free(cout);
    cr_expect_not(spt_leftovers(inst));
}

Test(pipeline, zmq_customers_stop_when_their_local_broker_dies, .timeout = 90)
{
    s_dead_broker("deadzipc", false, "is gone");
}

Test(pipeline, zmq_customers_stop_when_their_remote_broker_goes_silent, .timeout = 90)
{
    s_dead_broker("deadztcp", true, "no answer from the broker");
}

/* A producer killed outright (kill -9: no handler runs) takes its customer
 * processes with it: they stop within a bound instead of sending on for
 * the rest of their --duration. */
Test(pipeline, customers_stop_when_their_producer_is_killed, .timeout = 90)
{
    char inst[64], out[256];
    spt_instance(inst, sizeof inst, "deadprod");
    const char *extra[] = {"--workers", "1", NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert_gt(broker, 0, "broker did not start");
    snprintf(out, sizeof out, "/tmp/%s.out", inst);
    const char *argv[] = {
        spt_bin("producer"), "--instance", inst, "--customers", "2", "--rate", "200",
        "--duration",        "60s",        NULL};
    /* both customers running: each has its producer id */
    pid_t load = 0;
    bool underway = s_load_underway(inst, argv, out, false, &load);
    cr_expect(underway, "the two customers had no producer ids within %d ms", SP_TEST_WAIT_MS);
    kill(load, SIGKILL);
    spt_wait(load, RUN_TIMEOUT_MS);
    bool gone = false;
    for (uint64_t until = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
         !gone && sp_now_ns() < until;) {
        gone = !spt_process_runs("producer", inst);
        if (!gone) {
            usleep(10 * 1000);
        }
    }
    cr_expect(gone, "customers of the killed producer still run %d ms later", SP_TEST_WAIT_MS);
    unlink(out);
    cr_expect_eq(WEXITSTATUS(spt_stop(broker)), 0);
    cr_expect_not(spt_leftovers(inst));
}

/* monitor --once on an instance whose broker died: it says so and fails,
 * instead of showing the table it left as the shop's */
Test(pipeline, monitor_once_names_a_dead_broker, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "deadmon");
    const char *extra[] = {"--workers", "1", NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert_gt(broker, 0, "broker did not start");
    s_kill_instance(inst, broker);
    const char *once[] = {spt_bin("monitor"), "--instance", inst, "--once", NULL};
    char *out = NULL;
    char expect[64];
    snprintf(expect, sizeof expect, "(pid %d) is gone", (int)broker);
    cr_expect_neq(spt_run(once, RUN_TIMEOUT_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, expect) != NULL, "%s", out);
    free(out);
    const char *clean[] = {spt_bin("broker"), "--instance", inst, "--clean", NULL};
    spt_run(clean, RUN_TIMEOUT_MS, &out);
    free(out);
    cr_expect_not(spt_leftovers(inst));
}

/* --version on every binary: its name and this build's version, exit 0 */
Test(pipeline, every_binary_says_its_version, .timeout = 30)
{
    static const char *const bins[] = {"broker",  "producer", "consumer",
                                       "monitor", "bench",    "ledgercheck"};
    for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++) {
        const char *argv[] = {spt_bin(bins[i]), "--version", NULL};
        char *out = NULL;
        cr_expect_eq(spt_run(argv, RUN_TIMEOUT_MS, &out), 0, "%s: %s", bins[i], out);
        char want[64];
        snprintf(want, sizeof want, "%s %s\n", bins[i], sp_version());
        cr_expect_str_eq(out, want);
        free(out);
    }
}
