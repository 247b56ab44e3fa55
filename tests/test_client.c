/*
 * Tests for sp_client, a producer's connection to an instance: against a
 * real broker each client gets a producer id of its own, a link and buffers
 * sized for its batch; a batch the transport cannot carry, a bad instance
 * name and an instance that is not running are refused with the exact code
 * and a message; the resend policy backs off as sp_client.h says.
 *
 * Instance names carry the test's tag and pid; brokers are stopped and
 * checked for leftovers by the test that started them.
 */
#include "sp_client.h"

#include "sp_error.h"
#include "sp_testutil.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_PRODUCTS 4
#define T_STOCK    100
#define T_WHY      512
#define T_BIG      1000 /* orders: more than an shm ring slot holds */

Test(client, each_client_gets_its_own_producer_id_and_link, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "clids");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "mq", 1, T_PRODUCTS, T_STOCK),
              "broker did not become ready");
    sp_client_cfg_t cfg = {.instance = inst, .batch = SP_BATCH_DEFAULT};
    sp_client_t *a = NULL, *b = NULL;
    char why[T_WHY] = "";
    cr_assert_eq(sp_client_open(&a, &cfg, why, sizeof why), 0, "%s", why);
    cr_assert_eq(sp_client_open(&b, &cfg, why, sizeof why), 0, "%s", why);
    cr_expect_neq(sp_client_producer_id(a), 0);
    cr_expect_neq(sp_client_producer_id(a), sp_client_producer_id(b));
    cr_expect_not_null(sp_client_link(a));
    cr_expect_eq(sp_client_welcome(a)->capacity, T_PRODUCTS, "the WELCOME describes the table");
    cr_expect_eq(sp_client_broker_pid(a), shop.broker, "a local client may watch its broker");
    const uint32_t *ids;
    uint32_t n;
    cr_expect_eq(sp_client_products(a, &ids, &n, why, sizeof why), 0, "%s", why);
    cr_expect_eq(n, T_PRODUCTS);
    cr_expect_not(sp_client_curve(a));
    size_t orders_cap = 0, results_cap = 0;
    cr_expect_not_null(sp_client_orders_buf(a, &orders_cap));
    cr_expect_not_null(sp_client_results_buf(a, &results_cap));
    cr_expect_eq(orders_cap, sp_wire_msg_size(SP_MSG_ORDERS, SP_BATCH_DEFAULT));
    cr_expect_eq(results_cap, sp_wire_msg_size(SP_MSG_RESULTS, SP_BATCH_DEFAULT));
    sp_client_close(&a);
    sp_client_close(&b);
    cr_expect_null(a);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

Test(client, a_batch_larger_than_an_shm_slot_is_refused_with_emsgsize, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "clbig");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "shm", 1, T_PRODUCTS, T_STOCK),
              "broker did not become ready");
    sp_client_cfg_t cfg = {.instance = inst, .batch = T_BIG};
    sp_client_t *c = NULL;
    char why[T_WHY] = "";
    cr_expect_eq(sp_client_open(&c, &cfg, why, sizeof why), -EMSGSIZE);
    cr_expect_null(c);
    cr_expect(strstr(why, "use --batch") != NULL, "why says what fits: %s", why);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

Test(client, a_bad_instance_name_is_refused)
{
    sp_client_cfg_t cfg = {.instance = "no/slashes", .batch = 1};
    sp_client_t *c = NULL;
    char why[T_WHY] = "";
    cr_expect_eq(sp_client_open(&c, &cfg, why, sizeof why), SP_E_USAGE);
    cr_expect_null(c);
    cr_expect_str_eq(why, "bad instance name 'no/slashes'");
}

Test(client, an_instance_that_is_not_running_is_named, .timeout = 30)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "clnone");
    sp_client_cfg_t cfg = {.instance = inst, .batch = 1};
    sp_client_t *c = NULL;
    char why[T_WHY] = "";
    cr_expect_eq(sp_client_open(&c, &cfg, why, sizeof why), SP_E_TIMEOUT);
    cr_expect_null(c);
    char want[128];
    snprintf(want, sizeof want, "no broker runs instance '%s' on this host", inst);
    cr_expect(strstr(why, want) != NULL, "%s", why);
    snprintf(want, sizeof want, "start one with 'broker --instance %s'", inst);
    cr_expect(strstr(why, want) != NULL, "says how to start one: %s", why);
}

Test(client, close_is_null_safe_and_nulls_the_pointer)
{
    sp_client_close(NULL);
    sp_client_t *c = NULL;
    sp_client_close(&c);
    cr_expect_null(c);
}

Test(client, resends_back_off_by_doubling_up_to_the_ceiling)
{
    cr_expect_eq(sp_client_retry_after_ns(SP_RETRY_MS, 1), SP_RETRY_MS * SP_NS_PER_MS);
    cr_expect_eq(sp_client_retry_after_ns(SP_RETRY_MS, 2), 2 * SP_RETRY_MS * SP_NS_PER_MS);
    cr_expect_eq(sp_client_retry_after_ns(SP_RETRY_MS, 3), 4 * SP_RETRY_MS * SP_NS_PER_MS);
    cr_expect_eq(sp_client_retry_after_ns(SP_RETRY_MS, 4), SP_RETRY_MAX_MS * SP_NS_PER_MS);
    cr_expect_eq(sp_client_retry_after_ns(SP_RETRY_MS, 1000), SP_RETRY_MAX_MS * SP_NS_PER_MS);
    cr_expect_eq(sp_client_retry_after_ns(1, 1), SP_NS_PER_MS);
}
