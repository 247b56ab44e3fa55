/*
 * Tests for sp_once, one order placed and waited for, against a real
 * broker: a purchase is answered with the stock left; what is more than
 * the stock is refused; a reserve's hold is bought by naming its producer
 * id; and a failure to connect is the client's code.
 *
 * Instance names carry the test's tag and pid; each test stops its broker
 * and checks for leftovers.
 */
#include "sp_once.h"

#include "sp_error.h"
#include "sp_testutil.h"

#include <criterion/criterion.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_PRODUCTS   3
#define T_STOCK      5
#define T_TIMEOUT_MS 5000
#define T_WHY        512

/* The order's outcome.  Over mq, a reused producer id's first answer may
 * go to the reply queue its earlier client had (a worker's cache of reply
 * queues, sp_mq.c), and the resent copy is then answered from the dedup
 * record with the first copy's outcome: that outcome counts (the report
 * reads it the same way). */
static unsigned s_outcome(const sp_result_t *res)
{
    if (res->status == SP_STATUS_DUPLICATE && res->original < SP_STATUS_COUNT) {
        return res->original;
    }
    return res->status;
}

Test(once, a_purchase_is_answered_with_the_stock_left, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "oncebuy");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, NULL, 1, T_PRODUCTS, T_STOCK),
              "broker did not become ready");
    sp_once_t req = {.instance = inst, .type = SP_ORDER_PURCHASE, .product = 2, .qty = 3};
    sp_result_t res;
    uint32_t producer = 0;
    char why[T_WHY] = "";
    cr_assert_eq(sp_once_place(&req, T_TIMEOUT_MS, &res, &producer, why, sizeof why), 0, "%s", why);
    cr_expect_eq(res.status, SP_STATUS_ACCEPTED);
    cr_expect_eq(res.stock_after, T_STOCK - 3);
    cr_expect_eq(res.product_id, 2);
    cr_expect_neq(producer, 0);
    cr_expect_eq(res.producer_id, producer);

    req.qty = T_STOCK; /* more than is left */
    cr_assert_eq(sp_once_place(&req, T_TIMEOUT_MS, &res, NULL, why, sizeof why), 0, "%s", why);
    cr_expect_eq(res.status, SP_STATUS_OUT_OF_STOCK);
    cr_expect_eq(res.stock_after, T_STOCK - 3);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

Test(once, a_reserves_hold_is_bought_as_its_producer, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "oncehold");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, NULL, 1, T_PRODUCTS, T_STOCK),
              "broker did not become ready");
    sp_once_t req = {.instance = inst, .type = SP_ORDER_RESERVE, .product = 1, .qty = 2};
    sp_result_t res;
    uint32_t holder = 0;
    char why[T_WHY] = "";
    cr_assert_eq(sp_once_place(&req, T_TIMEOUT_MS, &res, &holder, why, sizeof why), 0, "%s", why);
    cr_assert_eq(res.status, SP_STATUS_ACCEPTED);
    cr_expect_eq(res.stock_after, T_STOCK - 2);

    sp_once_t buy = {
        .instance = inst, .type = SP_ORDER_BUY_HELD, .product = 1, .qty = 2, .as_producer = holder};
    uint32_t used = 0;
    cr_assert_eq(sp_once_place(&buy, T_TIMEOUT_MS, &res, &used, why, sizeof why), 0, "%s", why);
    cr_expect_eq(used, holder, "the buy-held goes out as the holder");
    cr_expect_eq(s_outcome(&res), SP_STATUS_ACCEPTED);

    /* the hold is gone: buying it again is refused */
    cr_assert_eq(sp_once_place(&buy, T_TIMEOUT_MS, &res, NULL, why, sizeof why), 0, "%s", why);
    cr_expect_eq(s_outcome(&res), SP_STATUS_NO_HOLD);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

Test(once, a_bad_instance_name_is_the_clients_refusal)
{
    sp_once_t req = {.instance = "no/slashes", .type = SP_ORDER_PURCHASE, .product = 1, .qty = 1};
    sp_result_t res;
    uint32_t producer = 7;
    char why[T_WHY] = "";
    cr_expect_eq(sp_once_place(&req, T_TIMEOUT_MS, &res, &producer, why, sizeof why), SP_E_USAGE);
    cr_expect_eq(producer, 7, "untouched when no client was made");
    cr_expect_str_eq(why, "bad instance name 'no/slashes'");
}
