/*
 * test_snapcli — a whole snapshot fetched from a running broker's snapshot
 * service, as a producer that does not map the table takes it.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sp_error.h"
#include "sp_instance.h"
#include "sp_snapcli.h"
#include "sp_table.h"
#include "sp_testutil.h"

typedef struct {
    unsigned rows;
    uint32_t last_id;
    bool ordered;
    uint64_t stock;
} s_seen_t;

static void s_row(void *ctx, const sp_snaprow_t *row)
{
    s_seen_t *seen = ctx;
    seen->ordered = seen->ordered && row->id > seen->last_id;
    seen->last_id = row->id;
    seen->rows++;
    seen->stock += row->stock;
}

Test(snapcli, a_snapshot_brings_every_product_and_the_tables_identity, .timeout = 60)
{
    char instance[64];
    spt_instance(instance, sizeof instance, "snapcli");
    const char *extra[] = {"--workers", "1", "--fresh", NULL};
    pid_t broker = spt_broker_start(instance, extra);
    cr_assert_gt(broker, 0, "broker did not start");
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    const sp_table_hdr_t *h = sp_table_hdr(t);
    uint64_t want_stock = 0;
    for (uint32_t id = 1; id <= sp_table_capacity(t); id++) {
        const sp_row_t *r = sp_table_row(t, id);
        want_stock += r != NULL ? r->initial_stock : 0;
    }

    s_seen_t seen = {.ordered = true};
    sp_snapinfo_t info;
    char why[256] = "";
    int rc = sp_snapcli_fetch(h->ep_snapshot, NULL, NULL, SP_TEST_WAIT_MS, s_row, &seen, &info, why,
                              sizeof why);

    cr_assert_eq(rc, 0, "%s", why);
    cr_expect_eq(info.rows, h->product_count);
    cr_expect_eq(seen.rows, h->product_count);
    cr_expect(seen.ordered, "rows come in id order");
    cr_expect_eq(info.capacity, h->capacity);
    cr_expect_eq(info.products, h->product_count);
    cr_expect_eq(info.created_ns, h->created_ns);
    cr_expect_eq(info.held, 0u);
    cr_expect_eq(seen.stock, want_stock, "nothing was sold yet");
    sp_table_close(&t);
    cr_expect_eq(spt_stop(broker), 0);
    cr_expect_not(spt_leftovers(instance));
}

Test(snapcli, nobody_answering_is_a_timeout_that_says_so)
{
    char ep[128];
    snprintf(ep, sizeof ep, "ipc:///tmp/sp-snapcli-none-%ld.sock", (long)getpid());
    sp_snapinfo_t info;
    char why[256] = "";

    int rc = sp_snapcli_fetch(ep, NULL, NULL, 300, NULL, NULL, &info, why, sizeof why);

    cr_expect_eq(rc, SP_E_TIMEOUT, "%s", sp_strerror(rc));
    cr_expect_not_null(strstr(why, "no snapshot"), "%s", why);
    cr_expect_eq(sp_snapcli_fetch("", NULL, NULL, 300, NULL, NULL, &info, why, sizeof why),
                 SP_E_USAGE);
}
