/*
 * test_hello — the HELLO/WELCOME exchange: the answerer's rules on a
 * scratch table, and the exchange over every transport's order path
 * against a real broker, with a producer link that starts without an id.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_catalogue.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_hello.h"
#include "sp_link.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"
#include "sp_transport.h"

#define T_PRODUCTS 4
#define T_STOCK    100
#define T_WHY_CAP  512

static char s_name[96];
static sp_table_t *s_table;

static void s_teardown(void)
{
    sp_table_close(&s_table);
    if (s_name[0] != '\0') {
        sp_table_unlink(s_name);
    }
}

TestSuite(hello, .fini = s_teardown);

static sp_table_t *s_make(void)
{
    int rc = spt_scratch_table(&s_table, s_name, sizeof s_name, "hello",
                               criterion_current_test->name, T_PRODUCTS, T_STOCK, SP_SYNC_CAS);
    cr_assert_eq(rc, 0, "create: %s", sp_strerror(rc));
    return s_table;
}

/* Answers `h` on the scratch table and decodes the WELCOME. */
static sp_welcome_t s_answer(const sp_hello_t *h)
{
    uint8_t msg[SP_HELLO_MSG_SIZE], out[SP_WELCOME_MSG_MAX];
    sp_hello_encode(msg, h);
    sp_hello_t got;
    int n = sp_hello_answer(s_table, msg, sizeof msg, 7, &got, out, sizeof out);
    cr_assert_gt(n, 0, "answer: %s", sp_strerror(n));
    cr_expect_eq(got.reply_tag, h->reply_tag, "the reply tag is the caller's to route by");
    sp_welcome_t w;
    cr_assert_eq(sp_welcome_decode(out, (size_t)n, &w), 0);
    cr_expect_eq(w.hello_id, h->hello_id, "the hello id is echoed");
    return w;
}

static sp_hello_t s_hello(uint32_t id, pid_t pid)
{
    return (sp_hello_t){.rev = SP_HELLO_REV,
                        .op = SP_HELLO_OPEN,
                        .producer_id = id,
                        .pid = (uint32_t)pid,
                        .reply_tag = 0x1234,
                        .hello_id = 0xfeedull + (uint64_t)id};
}

Test(hello, producers_without_an_id_get_new_ones_and_the_instance_described)
{
    s_make();
    sp_welcome_t a = s_answer(&(sp_hello_t){
        .rev = SP_HELLO_REV, .op = SP_HELLO_OPEN, .pid = (uint32_t)getpid(), .hello_id = 1});
    sp_welcome_t b = s_answer(&(sp_hello_t){
        .rev = SP_HELLO_REV, .op = SP_HELLO_OPEN, .pid = (uint32_t)getpid(), .hello_id = 2});

    cr_expect_eq(a.status, SP_HELLO_OK);
    cr_expect_eq(b.status, SP_HELLO_OK);
    cr_expect_neq(a.producer_id, 0u);
    cr_expect_neq(a.producer_id, b.producer_id, "two HELLOs, two ids");
    cr_expect_eq(a.flags & SP_WELCOME_F_RESUMED, 0u, "a new id has no window yet");
    const sp_table_hdr_t *h = sp_table_hdr(s_table);
    cr_expect_eq(a.transport, h->transport);
    cr_expect_eq(a.capacity, T_PRODUCTS);
    cr_expect_eq(a.products, T_PRODUCTS);
    cr_expect_eq(a.created_ns, h->created_ns);
    cr_expect_eq(a.dedup_window, h->dedup_window);
    cr_expect_eq(a.rev, SP_HELLO_REV);
}

Test(hello, a_chosen_id_is_accepted_and_resumed_by_its_own_process)
{
    s_make();
    sp_hello_t h = s_hello(4242, getpid());
    sp_welcome_t first = s_answer(&h);
    sp_welcome_t again = s_answer(&h);

    cr_expect_eq(first.status, SP_HELLO_OK);
    cr_expect_eq(first.producer_id, 4242u);
    cr_expect_eq(again.status, SP_HELLO_OK);
    cr_expect_neq(again.flags & SP_WELCOME_F_RESUMED, 0u, "the window is there from before");
}

Test(hello, an_id_a_live_other_process_holds_is_refused)
{
    s_make();
    pid_t holder = fork();
    cr_assert_geq(holder, 0);
    if (holder == 0) {
        pause();
        _exit(0);
    }
    sp_welcome_t taken = s_answer(&(sp_hello_t){.rev = SP_HELLO_REV,
                                                .op = SP_HELLO_OPEN,
                                                .producer_id = 77,
                                                .pid = (uint32_t)holder,
                                                .hello_id = 1});
    sp_welcome_t mine = s_answer(&(sp_hello_t){.rev = SP_HELLO_REV,
                                               .op = SP_HELLO_OPEN,
                                               .producer_id = 77,
                                               .pid = (uint32_t)getpid(),
                                               .hello_id = 2});
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    sp_welcome_t after = s_answer(&(sp_hello_t){.rev = SP_HELLO_REV,
                                                .op = SP_HELLO_OPEN,
                                                .producer_id = 77,
                                                .pid = (uint32_t)getpid(),
                                                .hello_id = 3});

    cr_expect_eq(taken.status, SP_HELLO_OK);
    cr_expect_eq(mine.status, SP_HELLO_ID_TAKEN, "%s", sp_hello_status_name(mine.status));
    cr_expect_eq(after.status, SP_HELLO_OK, "free once its holder died");
    cr_expect_neq(after.flags & SP_WELCOME_F_RESUMED, 0u);
}

Test(hello, reserved_ids_and_malformed_hellos_are_refused)
{
    s_make();
    sp_hello_t sys = s_hello(SP_SYSTEM_PRODUCER, getpid());
    sp_hello_t rev0 = s_hello(5, getpid());
    rev0.rev = 0;
    sp_hello_t flags = s_hello(6, getpid());
    flags.flags = 0x80;

    cr_expect_eq(s_answer(&sys).status, SP_HELLO_BAD);
    cr_expect_eq(s_answer(&rev0).status, SP_HELLO_BAD);
    cr_expect_eq(s_answer(&flags).status, SP_HELLO_BAD);
}

Test(hello, what_is_not_one_hello_is_not_answered)
{
    s_make();
    uint8_t msg[SP_HELLO_MSG_SIZE + 8], out[SP_WELCOME_MSG_MAX];
    sp_hello_t h = s_hello(0, getpid());
    sp_hello_encode(msg, &h);
    sp_hello_t got;

    cr_expect_eq(sp_hello_answer(s_table, msg, SP_HELLO_MSG_SIZE - 1, 1, &got, out, sizeof out),
                 SP_E_INVALID, "short");
    cr_expect_eq(sp_hello_answer(s_table, msg, SP_HELLO_MSG_SIZE + 8, 1, &got, out, sizeof out),
                 SP_E_INVALID, "long");
    sp_wire_put_hdr(msg, SP_MSG_ORDERS, 0, 0, 0);
    cr_expect_eq(sp_hello_answer(s_table, msg, SP_WIRE_HDR_SIZE, 1, &got, out, sizeof out),
                 SP_E_INVALID, "another kind");
}

Test(hello, a_welcome_decoder_ignores_counters_it_does_not_know)
{
    uint8_t msg[SP_WIRE_HDR_SIZE + 3 * SP_WIRE_COUNTER_SIZE];
    sp_counter_t c[3] = {{.id = SP_CTR_HELLO_STATUS, .value = SP_HELLO_NO_ROOM},
                         {.id = 999, .value = 5},
                         {.id = SP_CTR_PRODUCER_ID, .value = 12}};
    for (unsigned i = 0; i < 3; i++) {
        sp_wire_put_counter(sp_wire_rec(msg, SP_MSG_WELCOME, i), &c[i]);
    }
    sp_wire_put_hdr(msg, SP_MSG_WELCOME, 3, 0, 0);
    sp_welcome_t w;

    cr_assert_eq(sp_welcome_decode(msg, sizeof msg, &w), 0);
    cr_expect_eq(w.status, SP_HELLO_NO_ROOM);
    cr_expect_eq(w.producer_id, 12u);
    sp_wire_put_counter(sp_wire_rec(msg, SP_MSG_WELCOME, 0), &c[1]);
    sp_wire_put_hdr(msg, SP_MSG_WELCOME, 1, 0, 0);
    cr_expect_eq(sp_welcome_decode(msg, SP_WIRE_HDR_SIZE + SP_WIRE_COUNTER_SIZE, &w), SP_E_INVALID,
                 "no status counter in it");
}

/* ---- over a real broker, per transport ---- */

static const char *const s_transports[] = {"mq", "shm", "zmq", "direct"};

ParameterizedTestParameters(hello, a_producer_without_an_id_says_hello_then_orders)
{
    static unsigned which[] = {0, 1, 2, 3};
    return cr_make_param_array(unsigned, which, sizeof which / sizeof which[0]);
}

ParameterizedTest(unsigned *which, hello, a_producer_without_an_id_says_hello_then_orders,
                  .timeout = 60)
{
    const char *const *transport = &s_transports[*which];
    char instance[64], tag[32];
    snprintf(tag, sizeof tag, "hello-%s", *transport);
    spt_instance(instance, sizeof instance, tag);
    const char *extra[] = {"--transport", *transport, "--workers", "1", "--fresh", NULL};
    pid_t broker = spt_broker_start(instance, extra);
    cr_assert_gt(broker, 0, "broker did not start");
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    const sp_transport_t *tr = sp_transport_find(*transport);
    cr_assert_not_null(tr);
    size_t cap = sp_wire_msg_size(SP_MSG_RESULTS, 1) > SP_WELCOME_MSG_MAX
                     ? sp_wire_msg_size(SP_MSG_RESULTS, 1)
                     : SP_WELCOME_MSG_MAX;
    sp_link_cfg_t lc = {.role = SP_LINK_PRODUCER,
                        .transport = tr,
                        .names = &names,
                        .endpoint = sp_table_hdr(t)->ep_orders,
                        .id = 0,
                        .max_msg = sp_wire_msg_size(SP_MSG_ORDERS, 1),
                        .reply_msg = sp_wire_msg_size(SP_MSG_RESULTS, 1)};
    char why[T_WHY_CAP] = "";
    sp_link_t *link = NULL;
    int rc = sp_link_open(&link, &lc, why, sizeof why);
    cr_assert_eq(rc, 0, "open: %s (%s)", why, sp_strerror(rc));
    sp_hello_t h = {.rev = SP_HELLO_REV,
                    .op = SP_HELLO_OPEN,
                    .pid = (uint32_t)getpid(),
                    .reply_tag = sp_link_reply_tag(link),
                    .hello_id = sp_now_ns()};
    uint8_t buf[SP_WELCOME_MSG_MAX + 64];
    sp_welcome_t w;
    rc = sp_hello_exchange(link, &h, buf, cap < sizeof buf ? sizeof buf : cap, SP_TEST_WAIT_MS, &w,
                           why, sizeof why);
    cr_assert_eq(rc, 0, "exchange: %s", why);
    cr_expect_eq(w.status, SP_HELLO_OK);
    cr_expect_neq(w.producer_id, 0u);
    cr_expect_eq(w.transport, tr->id);
    cr_expect_eq(w.broker_pid, (int32_t)broker);
    cr_assert_eq(sp_link_adopt(link, w.producer_id, why, sizeof why), 0, "adopt: %s", why);
    cr_expect_eq(sp_link_reply_tag(link), 0u, "an id now");

    /* an order under the id the WELCOME gave is answered to us */
    uint8_t msg[SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE];
    sp_order_t o = {.type = SP_ORDER_PURCHASE,
                    .producer_id = w.producer_id,
                    .seq = 1,
                    .product_id = 1,
                    .quantity = 3};
    sp_wire_put_hdr(msg, SP_MSG_ORDERS, 1, w.producer_id, 0);
    sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, 0), &o);
    cr_assert_eq(sp_link_send(link, msg, sizeof msg, NULL, SP_TEST_WAIT_MS), 0);
    int n = sp_link_recv(link, buf, sizeof buf, NULL, SP_TEST_WAIT_MS);
    sp_msg_hdr_t mh;
    cr_assert_gt(n, 0, "no result: %s", sp_strerror(n));
    cr_assert_eq(sp_wire_check(buf, (size_t)n, &mh), 0);
    cr_assert_eq(mh.kind, SP_MSG_RESULTS);
    sp_result_t res;
    sp_wire_get_result(sp_wire_crec(buf, SP_MSG_RESULTS, 0), &res);
    cr_expect_eq(res.producer_id, w.producer_id);
    cr_expect_eq(res.status, SP_STATUS_ACCEPTED, "%s", sp_wire_status_name(res.status));
    const sp_row_t *row = sp_table_row(t, 1);
    cr_assert_not_null(row);
    cr_expect_eq(res.stock_after, row->initial_stock - 3, "stock %u of %u", res.stock_after,
                 row->initial_stock);

    sp_link_close(&link);
    sp_table_close(&t);
    cr_expect_eq(spt_stop(broker), 0);
    cr_expect_not(spt_leftovers(instance));
}

/* A HELLO that carries no record, or two, from a client over TCP is
 * dead-lettered by the router and counted; the broker serves on. */
Test(hello, a_hello_without_its_one_record_is_dead_lettered_over_tcp, .timeout = 60)
{
    char instance[64];
    spt_instance(instance, sizeof instance, "hellobad");
    const char *extra[] = {"--transport", "zmq", "--workers", "1", "--fresh", NULL};
    unsigned port = 0;
    pid_t broker = spt_broker_start_tcp(instance, NULL, extra, &port);
    cr_assert_gt(broker, 0, "broker did not start");
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    const sp_table_hdr_t *th = sp_table_hdr(t);
    sp_link_cfg_t lc = {.role = SP_LINK_PRODUCER,
                        .transport = sp_transport_find("zmq"),
                        .names = &names,
                        .endpoint = th->ep_orders,
                        .max_msg = SP_HELLO_MSG_SIZE,
                        .reply_msg = SP_WELCOME_MSG_MAX};
    char why[T_WHY_CAP] = "";
    sp_link_t *link = NULL;
    cr_assert_eq(sp_link_open(&link, &lc, why, sizeof why), 0, "%s", why);
    uint8_t bad[SP_WIRE_HDR_SIZE + 2 * SP_WIRE_HELLO_SIZE];
    memset(bad, 0, sizeof bad);
    sp_wire_put_hdr(bad, SP_MSG_HELLO, 0, 0, 0);
    cr_assert_eq(sp_link_send(link, bad, SP_WIRE_HDR_SIZE, NULL, SP_TEST_WAIT_MS), 0);
    sp_wire_put_hdr(bad, SP_MSG_HELLO, 2, 0, 0);
    cr_assert_eq(sp_link_send(link, bad, sizeof bad, NULL, SP_TEST_WAIT_MS), 0);
    uint64_t deadline = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (atomic_load(&th->invalid_msgs) < 2 && sp_now_ns() < deadline) {
        sp_sleep_ns(10 * SP_NS_PER_MS);
    }

    cr_expect_geq(atomic_load(&th->invalid_msgs), 2u, "both counted as invalid");
    sp_hello_t h = {.rev = SP_HELLO_REV, .op = SP_HELLO_OPEN, .hello_id = 42};
    uint8_t buf[SP_WELCOME_MSG_MAX];
    sp_welcome_t w;
    cr_expect_eq(sp_hello_exchange(link, &h, buf, sizeof buf, SP_TEST_WAIT_MS, &w, why, sizeof why),
                 0, "a good HELLO is still answered: %s", why);
    cr_expect_eq(w.status, SP_HELLO_OK);
    sp_link_close(&link);
    sp_table_close(&t);
    cr_expect_eq(spt_stop(broker), 0);
    cr_expect_not(spt_leftovers(instance));
}
