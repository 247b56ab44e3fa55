/*
 * Tests for what one hostile client may do to the others (issue 16): a
 * client that sends orders and never reads its answers must not stall the
 * workers, so another customer's run beside it completes with every order
 * answered, and the results it never took are counted as drops.
 *
 * The hostile client is an ordinary producer connection (sp_client: HELLO,
 * WELCOME, its own id) that sends H_MSGS one-order messages through the
 * link's raw send and then never receives.  The healthy customer is the
 * real bin/producer.  Nothing here times the healthy run against a target
 * (that is the benchmark's job, docs/BENCHMARKS.md): its orders must all be
 * answered within H_TIMEOUT, thirty times what it needs alone, where the
 * old worker (one second's wait per result the hostile client did not
 * take) made it need ten to fifteen.
 *
 * Instance names carry the test's tag and pid; each test stops its broker
 * and checks that nothing is left behind.
 */
#include "sp_client.h"

#include "sp_commit.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_mq.h"
#include "sp_shmlink.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <criterion/criterion.h>
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
    sp_client_t *hostile = s_hostile(inst);

    const char *argv[] = {spt_bin("producer"), "--instance", inst,      "--customers", "1",
                          "--count",           H_COUNT,      "--batch", "1",           "--timeout",
                          H_TIMEOUT,           "--json",     NULL};
    char *out = NULL;
    int rc = spt_run(argv, H_RUN_MS, &out);
    cr_expect_eq(rc, 0, "the healthy customer failed:\n%s", out);
    cr_expect_eq(spt_json_num(out, "sent"), atoll(H_COUNT), "%s", out);
    long long answered = spt_json_num(out, "accepted") + spt_json_num(out, "out_of_stock");
    cr_expect_eq(answered, atoll(H_COUNT), "not every order was answered:\n%s", out);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0,
                 "orders timed out beside the hostile client:\n%s", out);
    const char *secs = strstr(out, "\"seconds\":");
    fprintf(stderr, "%s: the healthy customer beside the hostile one took %.3f s\n", transport,
            secs != NULL ? atof(secs + strlen("\"seconds\":")) : -1.0);
    free(out);

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
