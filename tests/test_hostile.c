/*
 * Tests for what one hostile client may do to the others (issue 16): a
 * client that sends orders and never reads its answers must not stall the
 * workers, so another customer's run beside it completes with every order
 * answered, and the results it never took are counted as drops; one client
 * opening connection after connection over zmq is refused `peer_full` past
 * its share of the producer slots (SP_HELLO_PEER_SESSIONS) while another
 * client still buys, and its slots come back once idle; an order whose
 * producer finds no slot left is answered `no_room`, not `invalid`.
 *
 * The hostile client is an ordinary producer connection (sp_client: HELLO,
 * WELCOME, its own id) that sends H_MSGS one-order messages through the
 * link's raw send and then never receives.  The healthy customer is the
 * real bin/producer, run H_RUNS times alone and H_RUNS times beside the
 * hostile client; the test prints both times but holds them to no target
 * (timing is the benchmark's job, docs/BENCHMARKS.md): its orders must all
 * be answered within H_TIMEOUT, thirty times what it needs alone, where the
 * old worker (one second's wait per result the hostile client did not
 * take) made it need ten to fifteen.
 *
 * Instance names carry the test's tag and pid; each test stops its broker
 * and checks that nothing is left behind.
 */
#include "sp_client.h"

#include "sp_apply.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_hello.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_mq.h"
#include "sp_shmlink.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define H_PRODUCTS 4
#define H_STOCK    1000000
#define H_MSGS     40     /* one-order messages the hostile client sends */
#define H_COUNT    "2000" /* the healthy customer's one-order messages */
#define H_TIMEOUT  "3s"   /* its orders' timeout: ~30x what its run needs alone */
#define H_RUN_MS   60000
#define H_WAIT_NS  (30ull * SP_NS_PER_SEC)
#define H_WHY      512
#define H_POLL_US  (20 * 1000)
#define H_RUNS     3 /* healthy runs alone, then beside the hostile client */

/* Opens the hostile client and sends its H_MSGS restocks, one per message;
 * its answers are never read. */
static sp_client_t *s_hostile(const char *inst)
{
    sp_client_cfg_t cfg = {.instance = inst, .batch = 1};
    sp_client_t *c = NULL;
    char why[H_WHY] = "";
    cr_assert_eq(sp_client_open(&c, &cfg, why, sizeof why), 0, "%s", why);
    uint32_t id = sp_client_producer_id(c);
    size_t cap = 0;
    uint8_t *msg = sp_client_orders_buf(c, &cap);
    cr_assert_geq(cap, sp_wire_msg_size(SP_MSG_ORDERS, 1));
    for (uint32_t m = 1; m <= H_MSGS; m++) {
        sp_wire_put_hdr(msg, SP_MSG_ORDERS, 1, id, m);
        sp_order_t o = {
            .type = SP_ORDER_RESTOCK, .producer_id = id, .seq = m, .product_id = 1, .quantity = 1};
        sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, 0), &o);
        cr_assert_eq(sp_link_send(sp_client_link(c), msg, sp_wire_msg_size(SP_MSG_ORDERS, 1), NULL,
                                  H_RUN_MS),
                     0, "the hostile client's message %u was not taken", m);
    }
    return c;
}

/* Runs the healthy customer (bin/producer, H_COUNT one-order messages) and
 * checks that every order was answered in time; its run time in seconds. */
static double s_healthy(const char *inst)
{
    const char *argv[] = {spt_bin("producer"), "--instance", inst,      "--customers", "1",
                          "--count",           H_COUNT,      "--batch", "1",           "--timeout",
                          H_TIMEOUT,           "--json",     NULL};
    char *out = NULL;
    int rc = spt_run(argv, H_RUN_MS, &out);
    cr_expect_eq(rc, 0, "the healthy customer failed:\n%s", out);
    cr_expect_eq(spt_json_num(out, "sent"), atoll(H_COUNT), "%s", out);
    long long answered = spt_json_num(out, "accepted") + spt_json_num(out, "out_of_stock");
    cr_expect_eq(answered, atoll(H_COUNT), "not every order was answered:\n%s", out);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0, "orders timed out:\n%s", out);
    const char *secs = out != NULL ? strstr(out, "\"seconds\":") : NULL;
    double s = secs != NULL ? atof(secs + strlen("\"seconds\":")) : -1.0;
    free(out);
    return s;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs the healthy customer H_RUNS times; their times, sorted, in t[]. */
static void s_healthy_runs(const char *inst, double t[H_RUNS])
{
    for (int i = 0; i < H_RUNS; i++) {
        t[i] = s_healthy(inst);
    }
    qsort(t, H_RUNS, sizeof t[0], s_cmp_double);
}

/* Prints the healthy customer's times alone and beside the hostile client
 * (for the record, not asserted: the figures are in docs/PROTOCOL.md
 * section 8; timing a run is the benchmark's job). */
static void s_say_seconds(const char *transport, const double alone[H_RUNS],
                          const double beside[H_RUNS])
{
    fprintf(stderr,
            "%s: the healthy customer took %.3f, %.3f, %.3f s alone and %.3f, %.3f, %.3f s beside "
            "the hostile client (medians %+.0f %%)\n",
            transport, alone[0], alone[1], alone[2], beside[0], beside[1], beside[2],
            alone[1] > 0 ? (beside[1] / alone[1] - 1) * 100 : 0.0);
}

/* Result messages the workers of `inst` dropped so far. */
static uint64_t s_drops(sp_table_t *t)
{
    uint64_t drops = 0;
    for (int w = 0; w < SP_WORKERS_MAX; w++) {
        drops += atomic_load(&sp_table_hdr(t)->worker[w].result_drops);
    }
    return drops;
}

/* The whole story on `transport`, whose reply path for one producer holds
 * `room` result messages. */
static void s_never_reads(const char *tag, const char *transport, long room)
{
    char inst[64];
    spt_instance(inst, sizeof inst, tag);
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, transport, 2, H_PRODUCTS, H_STOCK),
              "broker did not become ready");
    double alone[H_RUNS], beside[H_RUNS];
    s_healthy_runs(inst, alone);
    sp_client_t *hostile = s_hostile(inst);
    s_healthy_runs(inst, beside);
    s_say_seconds(transport, alone, beside);

    /* every result the hostile client had no room for is a counted drop */
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, inst, NULL), 0);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    uint64_t want = (uint64_t)(H_MSGS - room), drops = s_drops(t);
    for (uint64_t until = sp_now_ns() + H_WAIT_NS; drops < want && sp_now_ns() < until;) {
        usleep(H_POLL_US);
        drops = s_drops(t);
    }
    sp_table_close(&t);
    cr_expect_geq(drops, want, "%llu result drops counted, at least %llu expected",
                  (unsigned long long)drops, (unsigned long long)want);
    sp_client_close(&hostile);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

Test(hostile, a_client_that_never_reads_its_reply_queue_does_not_stall_others, .timeout = 120)
{
    long depth = sp_mq_limit("msg_max"); /* a producer's reply queue is this deep */
    cr_assert_gt(depth, 0);
    cr_assert_lt(depth, H_MSGS, "msg_max %ld: the reply queue would hold every answer", depth);
    s_never_reads("hmq", "mq", depth);
}

Test(hostile, a_client_that_never_reads_its_result_ring_does_not_stall_others, .timeout = 120)
{
    s_never_reads("hshm", "shm", SP_SHM_RESULT_SLOTS);
}

/* Over zmq the client's own library reads its answers into its socket's
 * queue whether or not the program does; a client whose queue is full (a
 * receive high-water mark of 1) and whose kernel buffers are full stops
 * taking them, and the router's pipe to it fills (SP_ROUTER_CLIENT_HWM).
 * It sends H_ZMQ_MSGS messages of H_ZMQ_ORDERS refused orders (quantity
 * 0: nothing changes, no slot is taken), whose 20 KiB answers fill all
 * that, and never reads; once the first of them is dropped a healthy
 * customer runs.  The router used to wait a second for each answer it
 * could not hand over, stalling every other client. */
#define H_ZMQ_MSGS    200
#define H_ZMQ_ORDERS  512
#define H_ZMQ_SEND_MS 20000

Test(hostile, a_client_that_never_reads_over_zmq_does_not_stall_others, .timeout = 150)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "hzmq");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "zmq", 2, H_PRODUCTS, H_STOCK),
              "broker did not become ready");
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, inst, NULL), 0);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    double alone[H_RUNS], beside[H_RUNS];
    s_healthy_runs(inst, alone);

    zsys_handler_set(NULL);
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    cr_assert_not_null(dealer);
    zsock_set_rcvhwm(dealer, 1);
    zsock_set_rcvbuf(dealer, 4096);
    zsock_set_maxmsgsize(dealer, -1);
    cr_assert_eq(zsock_connect(dealer, "%s", sp_table_hdr(t)->ep_orders), 0);
    void *raw = zsock_resolve(dealer);
    enum { N = H_ZMQ_ORDERS };
    size_t len = sp_wire_msg_size(SP_MSG_ORDERS, N);
    uint8_t *msg = malloc(len);
    cr_assert_not_null(msg);
    uint32_t producer = 0x40000000u | (uint32_t)getpid();
    unsigned sent = 0;
    for (uint64_t until = sp_now_ns() + (uint64_t)H_ZMQ_SEND_MS * SP_NS_PER_MS;
         sent < H_ZMQ_MSGS && sp_now_ns() < until;) {
        sp_wire_put_hdr(msg, SP_MSG_ORDERS, N, producer, sent + 1);
        for (unsigned i = 0; i < N; i++) {
            sp_order_t o = {.type = SP_ORDER_PURCHASE,
                            .producer_id = producer,
                            .seq = (uint64_t)sent * N + i + 1,
                            .product_id = 1,
                            .quantity = 0};
            sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, i), &o);
        }
        if (zmq_send(raw, msg, len, ZMQ_DONTWAIT) == (int)len) {
            sent++;
        } else {
            cr_assert_eq(errno, EAGAIN, "%s", strerror(errno));
            usleep(H_POLL_US / 20);
        }
    }
    cr_expect_eq(sent, H_ZMQ_MSGS, "the router stopped taking the client's messages");
    /* the answers it cannot take are dropped and counted */
    uint64_t drops = 0;
    for (uint64_t until = sp_now_ns() + H_WAIT_NS; drops == 0 && sp_now_ns() < until;) {
        usleep(H_POLL_US);
        drops = atomic_load(&sp_table_hdr(t)->drops_results);
    }
    cr_expect_gt(drops, 0, "no result drop counted");

    s_healthy_runs(inst, beside);
    s_say_seconds("zmq", alone, beside);
    sp_table_close(&t);
    zsock_destroy(&dealer);
    free(msg);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

/* ---- one client cannot take every producer slot ---- */

#define H_SESSIONS_TRY (SP_HELLO_PEER_SESSIONS + 8)
#define H_HELLO_MS     5000
#define H_RETRY_US     (250 * 1000)
/* the bound the docs give for an idle slot to come back, and room for a
 * busy machine */
#define H_IDLE_WAIT_NS ((uint64_t)(SP_DEDUP_IDLE_MS + 30000) * SP_NS_PER_MS)

/* Opens producer sessions of `cfg` until one is refused; returns how many
 * were granted (kept in c[], H_SESSIONS_TRY places), the refusal's code in
 * *refused and its message in why. */
static unsigned s_take_sessions(const sp_client_cfg_t *cfg, sp_client_t **c, int *refused,
                                char *why, size_t cap)
{
    unsigned n = 0;
    *refused = 0;
    while (n < H_SESSIONS_TRY) {
        int rc = sp_client_open(&c[n], cfg, why, cap);
        if (rc < 0) {
            *refused = rc;
            break;
        }
        n++;
    }
    return n;
}

static void s_close_all(sp_client_t **c, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        sp_client_close(&c[i]);
    }
}

Test(hostile, one_client_is_refused_past_its_share_of_producer_slots_over_ipc, .timeout = 120)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "hpeer");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "zmq", 2, H_PRODUCTS, H_STOCK),
              "broker did not become ready");
    sp_client_cfg_t cfg = {.instance = inst, .batch = 1, .timeout_ms = H_HELLO_MS};
    sp_client_t *c[H_SESSIONS_TRY] = {0};
    char why[H_WHY] = "";
    int refused = 0;
    unsigned n = s_take_sessions(&cfg, c, &refused, why, sizeof why);
    cr_expect_eq(n, SP_HELLO_PEER_SESSIONS, "one process got %u sessions", n);
    cr_expect_eq(refused, -EDQUOT, "refused with %d (%s): %s", refused, sp_strerror(refused), why);
    cr_expect(strstr(why, "refused another producer session for this client") != NULL, "%s", why);

    /* another client (another process) is not that one */
    const char *buy[] = {spt_bin("producer"), "--instance", inst, "buy", "1", NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(buy, H_RUN_MS, &out), 0, "buy beside the greedy client:\n%s", out);
    cr_expect(strstr(out, "bought") != NULL, "%s", out);
    free(out);

    /* a session the client closes whose process lives stays its own: the
     * slot keeps its window; only its death (or idling, with no process)
     * gives it back */
    s_close_all(c, n);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

Test(hostile, one_address_is_refused_past_its_share_and_its_idle_slots_come_back, .timeout = 150)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "hidle");
    char cat[128];
    spt_catalogue(cat, sizeof cat, H_PRODUCTS, H_STOCK);
    const char *extra[] = {"--workers", "2", "--fresh", "--catalogue", cat, NULL};
    unsigned port = 0;
    pid_t broker = spt_broker_start_tcp(inst, NULL, extra, &port);
    cr_assert_gt(broker, 0, "broker %s did not start", inst);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%u", port);
    sp_client_cfg_t cfg = {.instance = inst, .connect = url, .batch = 1, .timeout_ms = H_HELLO_MS};
    sp_client_t *c[H_SESSIONS_TRY] = {0};
    char why[H_WHY] = "";
    int refused = 0;
    unsigned n = s_take_sessions(&cfg, c, &refused, why, sizeof why);
    cr_expect_eq(n, SP_HELLO_PEER_SESSIONS, "one address got %u sessions", n);
    cr_expect_eq(refused, -EDQUOT, "refused with %d (%s): %s", refused, sp_strerror(refused), why);
    s_close_all(c, n);

    /* over tcp:// no process is registered: the sessions end when their
     * slots have been idle SP_DEDUP_IDLE_MS; wait for a grant, bounded */
    sp_client_t *again = NULL;
    int rc = -1;
    for (uint64_t until = sp_now_ns() + H_IDLE_WAIT_NS; rc < 0 && sp_now_ns() < until;) {
        rc = sp_client_open(&again, &cfg, why, sizeof why);
        if (rc < 0) {
            cr_assert_eq(rc, -EDQUOT, "a refusal other than peer_full: %s", why);
            usleep(H_RETRY_US);
        }
    }
    cr_expect_eq(rc, 0, "no session within %d ms of idling: %s", SP_DEDUP_IDLE_MS + 30000, why);
    sp_client_close(&again);
    cr_expect_eq(spt_stop(broker), 0);
    unlink(cat);
    cr_expect_not(spt_leftovers(inst));
}

/* An order whose producer has no de-duplication slot, when every slot is
 * held by a live producer, is answered no_room (it used to be a bare
 * invalid, like a malformed order). */
Test(hostile, an_order_without_a_slot_is_answered_no_room)
{
    sp_table_t *t = NULL;
    char name[128];
    int rc = spt_scratch_table(&t, name, sizeof name, "hostile", criterion_current_test->name,
                               H_PRODUCTS, 10, SP_SYNC_CAS);
    cr_assert_eq(rc, 0, "create: %s", sp_strerror(rc));
    for (uint32_t id = 1; id <= SP_DEDUP_SLOTS; id++) {
        cr_assert_eq(sp_commit_register(t, id, getpid()), 0, "slot %u", id);
    }
    uint32_t late = SP_DEDUP_SLOTS + 1;
    sp_order_t o = {
        .type = SP_ORDER_PURCHASE, .producer_id = late, .seq = 1, .product_id = 1, .quantity = 1};
    sp_result_t res;
    sp_change_t chg;
    sp_apply_order(t, SP_SYNC_CAS, &o, late, 1, sp_now_ns(), &res, &chg, NULL);
    cr_expect_eq(res.status, SP_STATUS_NO_ROOM, "answered %s", sp_wire_status_name(res.status));
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_NO_ROOM), "no_room");
    sp_table_close(&t);
    sp_table_unlink(name);
}
