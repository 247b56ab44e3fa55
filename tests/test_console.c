/*
 * Tests for sp_console's row order (sp_view_order), without a terminal.
 *
 * The full-screen view draws whatever order sp_view_order gives it, so this
 * is where the promises of sp_console.h are pinned down: which products are
 * listed (present ones only, filtered by name or category without regard to
 * case) and in which order (id; stock then id; most recent change first, then
 * id).  Each test builds a mirror the way the monitor does: snapshot rows
 * through sp_mirror_snap_begin/row/end, then stock events through
 * sp_mirror_feed, each stamped with a monitor clock the test chooses, so the
 * activity order is fully determined.  The last test sorts a million rows to
 * check the radix sort at the size the console is built for (correctness
 * only; timing is the benchmark's business).  No IPC, so Criterion's
 * parallel forks need no care.
 */
#include "sp_rand.h"

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_console.h"
#include "sp_mirror.h"
#include "sp_time.h"
#include "sp_wire.h"

#define T_WORKER  1u    /* the publisher the events come from */
#define T_PID     4242u /* its incarnation */
#define T_SNAP_NS 1000u /* monitor clock of the snapshot */
#define T_INITIAL 100u  /* every product's initial stock */
#define T_CAP     16u   /* rows in the small mirrors */
#define T_BIG     1000000u
#define T_BIG_MAX 5000u /* stocks of the big mirror: 0 .. T_BIG_MAX - 1, many ties */
#define T_SEED    UINT64_C(0x9e3779b97f4a7c15)
#define T_HOUR_NS (3600ull * SP_NS_PER_SEC)

/* Event numbers of T_WORKER's stream; Criterion forks each test, so it
 * starts at 0 in every one. */
static uint64_t s_pub_seq;

static sp_mirror_t *s_mirror(uint32_t capacity)
{
    sp_mirror_t *m = sp_mirror_new(capacity, NULL);
    cr_assert_not_null(m);
    uint32_t pid[SP_MIRROR_PUBS] = {0};
    uint64_t seq[SP_MIRROR_PUBS] = {0};
    pid[T_WORKER] = T_PID;
    sp_mirror_snap_begin(m, pid, seq);
    return m;
}

static void s_row(sp_mirror_t *m, uint32_t id, uint32_t stock, const char *name,
                  const char *category)
{
    sp_snaprow_t r = {.id = id,
                      .stock = stock,
                      .version = 1,
                      .weight_g = 250,
                      .expiry = 20261122,
                      .initial_stock = T_INITIAL,
                      .price_cents = 1234};
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.category, sizeof r.category, "%s", category);
    cr_assert_eq(sp_mirror_snap_row(m, &r, T_SNAP_NS), 0);
}

/* One stock event for `id` (new stock, row version) received at `now`. */
static void s_event(sp_mirror_t *m, uint32_t id, uint32_t stock, uint32_t version, uint64_t now)
{
    uint8_t msg[SP_WIRE_HDR_SIZE + SP_WIRE_EVENT_SIZE];
    s_pub_seq++;
    sp_event_t e = {.pub_seq = s_pub_seq,
                    .publisher_id = T_WORKER,
                    .product_id = id,
                    .old_stock = 0,
                    .new_stock = stock,
                    .row_version = version,
                    .order_producer = 1,
                    .order_seq = s_pub_seq,
                    .ts_ns = now};
    sp_wire_put_hdr(msg, SP_MSG_EVENTS, 1, T_WORKER, T_PID);
    sp_wire_put_event(sp_wire_rec(msg, SP_MSG_EVENTS, 0), &e);
    cr_assert_eq(sp_mirror_feed(m, msg, sizeof msg, now, NULL, NULL), SP_MSG_EVENTS);
}

static void s_expect_ids(const uint32_t *got, size_t n, const uint32_t *want, size_t n_want)
{
    cr_expect_eq(n, n_want, "listed %zu rows, expected %zu", n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++) {
        cr_expect_eq(got[i], want[i], "position %zu: id %u, expected %u", i, got[i], want[i]);
    }
}

/* The shop used by the filter tests: mixed case, a UTF-8 name, one category
 * that also occurs inside a name. */
static sp_mirror_t *s_shop(void)
{
    sp_mirror_t *m = s_mirror(T_CAP);
    s_row(m, 1, 10, "Whole Milk", "Dairy");
    s_row(m, 2, 20, "Café molido", "Bebidas");
    s_row(m, 3, 30, "Pan de ajo", "Panaderia");
    s_row(m, 4, 5, "Yogur natural", "DAIRY");
    s_row(m, 5, 7, "Dairy-free spread", "Untables");
    s_row(m, 6, 0, "CAFÉ EN GRANO", "Bebidas");
    sp_mirror_snap_end(m);
    return m;
}

Test(console, id_order_lists_present_products_ascending_and_skips_absent_ids)
{
    sp_mirror_t *m = s_mirror(T_CAP);
    /* snapshot rows come in any order; ids 1, 3, 5, 6, 8 and 10.. are not products */
    s_row(m, 9, 1, "Nueve", "Varios");
    s_row(m, 2, 2, "Dos", "Varios");
    s_row(m, 7, 3, "Siete", "Varios");
    s_row(m, 4, 4, "Cuatro", "Varios");
    sp_mirror_snap_end(m);
    uint32_t ids[T_CAP];

    size_t n = sp_view_order(m, SP_SORT_ID, NULL, ids);

    s_expect_ids(ids, n, (const uint32_t[]){2, 4, 7, 9}, 4);
    sp_mirror_destroy(&m);
}

Test(console, empty_mirror_lists_nothing_in_any_order)
{
    sp_mirror_t *m = sp_mirror_new(T_CAP, NULL);
    cr_assert_not_null(m);
    uint32_t ids[T_CAP];

    cr_expect_eq(sp_view_order(m, SP_SORT_ID, NULL, ids), 0);
    cr_expect_eq(sp_view_order(m, SP_SORT_STOCK, "", ids), 0);
    cr_expect_eq(sp_view_order(m, SP_SORT_ACTIVITY, "x", ids), 0);
    sp_mirror_destroy(&m);
}

Test(console, stock_order_is_ascending_with_ties_in_id_order)
{
    sp_mirror_t *m = s_mirror(T_CAP);
    const uint32_t stock[] = {0, 30, 5, 30, 5, 0, 12, 5, 100, 30};
    for (uint32_t i = 0; i < sizeof stock / sizeof stock[0]; i++) {
        s_row(m, i + 1, stock[i], "Producto", "Varios");
    }
    sp_mirror_snap_end(m);
    uint32_t ids[T_CAP];

    size_t n = sp_view_order(m, SP_SORT_STOCK, NULL, ids);

    s_expect_ids(ids, n, (const uint32_t[]){1, 6, 3, 5, 8, 7, 2, 4, 10, 9}, 10);
    sp_mirror_destroy(&m);
}

Test(console, stock_order_follows_the_events_after_the_snapshot)
{
    sp_mirror_t *m = s_mirror(T_CAP);
    s_row(m, 1, 10, "Uno", "Varios");
    s_row(m, 2, 20, "Dos", "Varios");
    s_row(m, 3, 30, "Tres", "Varios");
    sp_mirror_snap_end(m);
    s_event(m, 3, 1, 2, T_SNAP_NS + 1);
    s_event(m, 1, 25, 2, T_SNAP_NS + 2);
    uint32_t ids[T_CAP];

    size_t n = sp_view_order(m, SP_SORT_STOCK, NULL, ids);

    s_expect_ids(ids, n, (const uint32_t[]){3, 2, 1}, 3);
    sp_mirror_destroy(&m);
}

Test(console, activity_order_puts_the_latest_change_first_then_unchanged_rows_by_id)
{
    sp_mirror_t *m = s_mirror(T_CAP);
    for (uint32_t id = 1; id <= 6; id++) {
        s_row(m, id, 50, "Producto", "Varios");
    }
    sp_mirror_snap_end(m);
    s_event(m, 3, 49, 2, T_SNAP_NS + 10);
    s_event(m, 5, 49, 2, T_SNAP_NS + 20);
    s_event(m, 1, 49, 2, T_SNAP_NS + 30);
    s_event(m, 3, 48, 3, T_SNAP_NS + 40); /* 3 again: now the most recent */
    uint32_t ids[T_CAP];

    size_t n = sp_view_order(m, SP_SORT_ACTIVITY, NULL, ids);

    s_expect_ids(ids, n, (const uint32_t[]){3, 1, 5, 2, 4, 6}, 6);
    sp_mirror_destroy(&m);
}

Test(console, activity_order_ignores_events_the_mirror_already_had)
{
    sp_mirror_t *m = s_mirror(T_CAP);
    s_row(m, 1, 50, "Uno", "Varios");
    s_row(m, 2, 50, "Dos", "Varios");
    s_row(m, 3, 50, "Tres", "Varios");
    sp_mirror_snap_end(m);
    s_event(m, 2, 49, 2, T_SNAP_NS + 10);
    s_event(m, 3, 49, 2, T_SNAP_NS + 20);
    /* an older version of row 2 arrives late: it changes nothing */
    s_event(m, 2, 60, 1, T_SNAP_NS + 30);
    uint32_t ids[T_CAP];

    size_t n = sp_view_order(m, SP_SORT_ACTIVITY, NULL, ids);

    s_expect_ids(ids, n, (const uint32_t[]){3, 2, 1}, 3);
    sp_mirror_destroy(&m);
}

Test(console, activity_order_stays_exact_across_hours_of_changes)
{
    /* spans beyond 2^32 ns make the key coarser; changes seconds apart must
     * still come out in order */
    sp_mirror_t *m = s_mirror(T_CAP);
    for (uint32_t id = 1; id <= 5; id++) {
        s_row(m, id, 50, "Producto", "Varios");
    }
    sp_mirror_snap_end(m);
    s_event(m, 4, 49, 2, T_SNAP_NS + 1);
    s_event(m, 2, 49, 2, T_SNAP_NS + 3 * T_HOUR_NS);
    s_event(m, 5, 49, 2, T_SNAP_NS + 3 * T_HOUR_NS + SP_NS_PER_SEC);
    s_event(m, 1, 49, 2, T_SNAP_NS + 5 * T_HOUR_NS);
    uint32_t ids[T_CAP];

    size_t n = sp_view_order(m, SP_SORT_ACTIVITY, NULL, ids);

    s_expect_ids(ids, n, (const uint32_t[]){1, 5, 2, 4, 3}, 5);
    sp_mirror_destroy(&m);
}

Test(console, filter_matches_names_without_regard_to_case)
{
    sp_mirror_t *m = s_shop();
    uint32_t ids[T_CAP];

    size_t n = sp_view_order(m, SP_SORT_ID, "MILK", ids);

    s_expect_ids(ids, n, (const uint32_t[]){1}, 1);
    sp_mirror_destroy(&m);
}

Test(console, filter_matches_categories_without_regard_to_case)
{
    sp_mirror_t *m = s_shop();
    uint32_t ids[T_CAP];

    /* "dairy" is the category of 1 and 4 and part of the name of 5 */
    size_t n = sp_view_order(m, SP_SORT_ID, "dairy", ids);

    s_expect_ids(ids, n, (const uint32_t[]){1, 4, 5}, 3);
    sp_mirror_destroy(&m);
}

Test(console, filter_folds_accented_capitals_in_utf8_names)
{
    sp_mirror_t *m = s_shop();
    uint32_t ids[T_CAP];

    size_t upper = sp_view_order(m, SP_SORT_ID, "CAFÉ", ids);
    s_expect_ids(ids, upper, (const uint32_t[]){2, 6}, 2);
    size_t lower = sp_view_order(m, SP_SORT_ID, "café", ids);
    s_expect_ids(ids, lower, (const uint32_t[]){2, 6}, 2);
    sp_mirror_destroy(&m);
}

Test(console, empty_or_null_filter_lists_everything)
{
    sp_mirror_t *m = s_shop();
    uint32_t ids[T_CAP];

    cr_expect_eq(sp_view_order(m, SP_SORT_ID, NULL, ids), 6);
    cr_expect_eq(sp_view_order(m, SP_SORT_ID, "", ids), 6);
    sp_mirror_destroy(&m);
}

Test(console, filter_that_matches_nothing_lists_nothing)
{
    sp_mirror_t *m = s_shop();
    uint32_t ids[T_CAP];
    char too_long[SP_NAME_MAX + 1];
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';

    cr_expect_eq(sp_view_order(m, SP_SORT_ID, "queso", ids), 0);
    cr_expect_eq(sp_view_order(m, SP_SORT_STOCK, "queso", ids), 0);
    cr_expect_eq(sp_view_order(m, SP_SORT_ID, too_long, ids), 0);
    sp_mirror_destroy(&m);
}

Test(console, filter_and_stock_order_combine)
{
    sp_mirror_t *m = s_shop();
    uint32_t ids[T_CAP];

    /* Bebidas: 2 (stock 20) and 6 (0); dairy: 1 (10), 4 (5), 5 (7) */
    size_t n = sp_view_order(m, SP_SORT_STOCK, "bebidas", ids);
    s_expect_ids(ids, n, (const uint32_t[]){6, 2}, 2);
    n = sp_view_order(m, SP_SORT_STOCK, "DAIRY", ids);
    s_expect_ids(ids, n, (const uint32_t[]){4, 5, 1}, 3);
    sp_mirror_destroy(&m);
}

Test(console, a_million_rows_sort_by_stock, .timeout = 60)
{
    sp_mirror_t *m = s_mirror(T_BIG);
    uint64_t rng = T_SEED;
    for (uint32_t id = 1; id <= T_BIG; id++) {
        /* every 7th id is not a product */
        if (id % 7 == 0) {
            continue;
        }
        sp_snaprow_t r = {.id = id,
                          .stock = (uint32_t)(sp_rand_next(&rng) % T_BIG_MAX),
                          .version = 1,
                          .initial_stock = T_BIG_MAX};
        memcpy(r.name, "Producto", sizeof "Producto");
        memcpy(r.category, "Varios", sizeof "Varios");
        cr_assert_eq(sp_mirror_snap_row(m, &r, T_SNAP_NS), 0);
    }
    sp_mirror_snap_end(m);
    uint32_t *ids = malloc((size_t)T_BIG * sizeof *ids);
    uint8_t *seen = calloc(T_BIG + 1, 1);
    cr_assert(ids != NULL && seen != NULL);

    size_t n = sp_view_order(m, SP_SORT_STOCK, NULL, ids);

    cr_expect_eq(n, T_BIG - T_BIG / 7);
    size_t bad = 0;
    uint32_t prev_stock = 0, prev_id = 0;
    for (size_t i = 0; i < n; i++) {
        const sp_mrow_t *r = sp_mirror_row(m, ids[i]);
        if (r == NULL || seen[ids[i]]) {
            bad++; /* not a product, or listed twice */
            continue;
        }
        seen[ids[i]] = 1;
        if (i > 0 && (r->stock < prev_stock || (r->stock == prev_stock && ids[i] <= prev_id))) {
            bad++;
        }
        prev_stock = r->stock;
        prev_id = ids[i];
    }
    cr_expect_eq(bad, 0, "%zu rows out of order or not products", bad);
    free(seen);
    free(ids);
    sp_mirror_destroy(&m);
}
