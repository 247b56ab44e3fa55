/*
 * Tests for sp_audit, the conservation audit, on a table made in the test
 * (no broker): a run whose ledger agrees with the table passes with the
 * documented line; a product whose ledger disagrees, counts that do not
 * add up, and more offenders than the line names each fail with the words
 * sp_audit.h promises.
 *
 * The segment's name carries the pid and the test's name; the fixture
 * removes it.
 */
#include "sp_audit.h"

#include "sp_catalogue.h"
#include "sp_commit.h"
#include "sp_table.h"
#include "sp_testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T_NAME_CAP 160
#define T_STOCK    10
#define T_MANY     (SP_AUDIT_SHOW_MAX + 5)

static char t_shm[T_NAME_CAP];
static sp_table_t *t_table;
static uint64_t t_sold[T_MANY + 1], t_restocked[T_MANY + 1];

static void s_cleanup(void)
{
    sp_table_close(&t_table);
    if (t_shm[0] != '\0') {
        sp_table_unlink(t_shm);
    }
}

TestSuite(audit, .fini = s_cleanup);

/* A table of products 1..n with T_STOCK each; the ledger arrays zeroed. */
static void s_table(unsigned n)
{
    int rc = spt_scratch_table(&t_table, t_shm, sizeof t_shm, "audit", criterion_current_test->name,
                               n, T_STOCK, SP_SYNC_CAS);
    cr_assert_eq(rc, 0, "sp_table_create: %d", rc);
    memset(t_sold, 0, sizeof t_sold);
    memset(t_restocked, 0, sizeof t_restocked);
}

/* One accepted order of `qty` on the table and in the ledger and counts. */
static void s_order(sp_load_stats_t *st, unsigned type, uint32_t id, uint32_t qty)
{
    sp_change_t chg;
    cr_assert_eq(sp_commit_anonymous(t_table, SP_SYNC_CAS, type, id, qty, &chg), 0);
    st->sent++;
    st->status[SP_STATUS_ACCEPTED]++;
    if (type == SP_ORDER_PURCHASE) {
        t_sold[id] += qty;
    } else {
        t_restocked[id] += qty;
    }
}

/* The audit's line (without its newline) into line; returns its result. */
static int s_audit(const sp_load_stats_t *st, bool ledger, char *line, size_t cap)
{
    FILE *f = fmemopen(line, cap, "w");
    cr_assert_not_null(f);
    int rc = sp_audit_check(f, t_table, st, ledger ? t_sold : NULL, ledger ? t_restocked : NULL);
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    return rc;
}

Test(audit, a_ledger_that_agrees_with_the_table_passes)
{
    s_table(3);
    sp_load_stats_t st;
    sp_load_stats_init(&st);
    s_order(&st, SP_ORDER_PURCHASE, 1, 4);
    s_order(&st, SP_ORDER_RESTOCK, 2, 5);
    char line[512] = "";
    cr_expect_eq(s_audit(&st, true, line, sizeof line), 0, "%s", line);
    cr_expect_str_eq(line, "conservation: ok (2 sent = 2 answered + 0 timed out; initial + "
                           "restocked - sold = stock for every product)");
}

Test(audit, without_a_ledger_the_table_is_checked_alone)
{
    s_table(3);
    sp_load_stats_t st;
    sp_load_stats_init(&st);
    s_order(&st, SP_ORDER_PURCHASE, 3, 2);
    t_sold[3] = 0; /* ignored: no ledger given */
    char line[512] = "";
    cr_expect_eq(s_audit(&st, false, line, sizeof line), 0, "%s", line);
}

Test(audit, a_product_the_ledger_disagrees_on_is_named)
{
    s_table(3);
    sp_load_stats_t st;
    sp_load_stats_init(&st);
    s_order(&st, SP_ORDER_PURCHASE, 2, 3);
    t_sold[2] = 1; /* told of fewer units than the table sold */
    char line[512] = "";
    cr_expect_eq(s_audit(&st, true, line, sizeof line), 1);
    cr_expect_str_eq(line, "conservation: VIOLATED products: 2(initial 10 + restocked 0 - sold 1 "
                           "!= stock 7 + held 0)");
}

Test(audit, orders_without_exactly_one_outcome_fail_the_counts)
{
    s_table(3);
    sp_load_stats_t st;
    sp_load_stats_init(&st);
    st.sent = 5;
    st.status[SP_STATUS_ACCEPTED] = 3;
    st.timed_out = 1;
    st.unexpected = 2;
    char line[512] = "";
    cr_expect_eq(s_audit(&st, false, line, sizeof line), 1);
    cr_expect_str_eq(line,
                     "conservation: VIOLATED (sent 5, answered 3, timed out 1, unexpected 2)");
}

Test(audit, the_line_names_at_most_show_max_products)
{
    s_table(T_MANY);
    sp_load_stats_t st;
    sp_load_stats_init(&st);
    for (uint32_t id = 1; id <= T_MANY; id++) {
        t_sold[id] = 1; /* sold, by the ledger; not by the table */
    }
    char line[8192] = "";
    cr_expect_eq(s_audit(&st, true, line, sizeof line), 1);
    unsigned named = 0;
    for (const char *p = line; (p = strstr(p, "(initial")) != NULL; p++) {
        named++;
    }
    cr_expect_eq(named, SP_AUDIT_SHOW_MAX, "%s", line);
    char tail[64];
    snprintf(tail, sizeof tail, " and %d more", T_MANY - SP_AUDIT_SHOW_MAX);
    size_t n = strlen(line), t = strlen(tail);
    cr_expect(n >= t && strcmp(line + n - t, tail) == 0, "%s", line);
}
