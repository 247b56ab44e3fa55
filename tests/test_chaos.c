/*
 * test_chaos — the chaos driver end to end, and its checker on inputs whose
 * faults are known.
 *
 * The quick chaos run (tests/chaos/chaos.sh --quick: 100,000 orders and 5
 * worker kills per transport, plus kills inside the commit) must end with
 * nothing lost, duplicated or unexpected over mq and zmq, the monitor's final
 * view equal to the saved table, and nothing left behind.  So must the quick restart loop
 * (--restart-loop --quick: 10 times per transport, everything of the instance killed at once
 * mid-load and the broker started again, re-attaching to the table or rebuilding a lost one from
 * the journal).  bin/ledgercheck is then trusted only as far as it is shown to catch faults: a
 * synthetic run (three products, two customers, orders applied one after another by a model of the
 * table) passes clean, and each planted fault — a lost order, a record journaled twice, a version
 * gap, a wrong stock_after, stock below zero, a refusal that had the stock, a status that
 * disagrees, an unknown key, mid-file corruption, a key a customer that ended normally never sent,
 * a key beyond a killed customer's window, one producer id with two ledgers, journals of more
 * tables than rebuilds explain — fails it, named.  What a crash may leave (a torn journal tail, a
 * customer that never heard its answers, a ledger cut short anywhere in the
 * window, journals of a rebuilt table) passes.
 *
 * Each test works in its own mkdtemp folder and removes it.
 */
#include "sp_testutil.h"

#include "sp_commit.h"
#include "sp_journal.h"
#include "sp_ledger.h"
#include "sp_wire.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_CHAOS_MS 150000 /* the quick run takes ~10 s alone, more beside other tests */
#define T_RESTART_MS                                                                               \
    150000 /* the quick restart loop: ~15 s alone, its own limit 45 s a transport */
#define T_CHECK_MS     20000
#define T_PATH         512
#define T_PRODUCTS     3
#define T_PRODUCERS    2
#define T_PER_PRODUCER 60
#define T_ORDERS       (T_PRODUCERS * T_PER_PRODUCER)
#define T_TABLE_ID     UINT64_C(0x5eed5eed5eed5eed)
#define T_FAR_SEQ      1000000u /* beyond any window a killed customer could have had */

static const uint32_t s_initial[T_PRODUCTS] = {12, 4, 0};

/* One synthetic run: the journal records and ledger records a correct
 * pipeline would have written, in memory, ready to be spoiled. */
typedef struct {
    sp_jrec_t jrec[T_ORDERS + 8];
    size_t nj;
    sp_ledger_rec_t lrec[T_ORDERS + 8];
    size_t nl;
    uint32_t initial[T_PRODUCTS], final[T_PRODUCTS];
    bool drop_ledger2;    /* producer 2's ledger never written */
    uint64_t cut2_after;  /* producer 2's ledger ends after this seq (0: complete) */
    uint64_t hole2_lo;    /* producer 2's ledger lacks seqs hole2_lo..hole2_hi */
    uint64_t hole2_hi;    /* (answers it never heard, between ones it did) */
    uint64_t w2_table;    /* the second journal's table id (0: the same as the first) */
    bool complete;        /* the ledgers are given as --complete-ledgers */
    bool ledger1_twice;   /* producer 1's ledger also in a second folder */
    const char *extra[4]; /* more ledgercheck arguments */
} t_run_t;

static char s_dir[T_PATH];

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void s_cleanup(void)
{
    if (s_dir[0] != '\0') {
        nftw(s_dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
        s_dir[0] = '\0';
    }
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/sp-chaos-test-%ld-XXXXXX", (long)getpid());
    cr_assert_not_null(mkdtemp(s_dir));
    char path[T_PATH + 16];
    snprintf(path, sizeof path, "%s/journal", s_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/ledgers", s_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/ledgers2", s_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
}

TestSuite(chaos, .init = s_setup, .fini = s_cleanup);

/* Applies the orders one after another, as the table would: versions 1, 2,
 * ... per product, refusals journaled with the version and stock they saw.
 * The last order of producer 1 timed out unapplied (no journal record), the
 * last one of producer 2 timed out after being applied. */
static void s_model(t_run_t *r)
{
    memset(r, 0, sizeof *r);
    uint32_t stock[T_PRODUCTS], version[T_PRODUCTS] = {0};
    memcpy(stock, s_initial, sizeof stock);
    memcpy(r->initial, s_initial, sizeof stock);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (uint64_t seq = 1; seq <= T_PER_PRODUCER; seq++) {
        for (uint32_t producer = 1; producer <= T_PRODUCERS; producer++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            uint32_t product = (uint32_t)(x >> 33) % T_PRODUCTS;
            uint32_t qty = 1 + (uint32_t)(x >> 40) % 4;
            uint8_t type = (x >> 50) % 4 == 0 ? SP_ORDER_RESTOCK : SP_ORDER_PURCHASE;
            bool last = seq == T_PER_PRODUCER;
            if (last && producer == 1) {
                r->lrec[r->nl++] = (sp_ledger_rec_t){.producer_id = producer,
                                                     .type = type,
                                                     .status = SP_LEDGER_TIMED_OUT,
                                                     .product_id = product + 1,
                                                     .quantity = qty,
                                                     .seq = seq};
                continue;
            }
            uint8_t status = SP_STATUS_ACCEPTED;
            if (type == SP_ORDER_PURCHASE && qty > stock[product]) {
                status = SP_STATUS_OUT_OF_STOCK;
            } else {
                stock[product] =
                    type == SP_ORDER_PURCHASE ? stock[product] - qty : stock[product] + qty;
                version[product]++;
            }
            r->jrec[r->nj++] = (sp_jrec_t){.kind = SP_JREC_KIND_OUTCOME,
                                           .type = type,
                                           .status = status,
                                           .producer_id = producer,
                                           .product_id = product + 1,
                                           .seq = seq,
                                           .quantity = qty,
                                           .version = version[product],
                                           .stock_after = stock[product],
                                           .worker_id = 1 + (uint32_t)(seq % 2)};
            r->lrec[r->nl++] = (sp_ledger_rec_t){.producer_id = producer,
                                                 .type = type,
                                                 .status = last ? SP_LEDGER_TIMED_OUT : status,
                                                 .product_id = product + 1,
                                                 .quantity = qty,
                                                 .stock_after = last ? 0 : stock[product],
                                                 .seq = seq};
        }
    }
    memcpy(r->final, stock, sizeof stock);
}

static void s_write_csv(const char *name, const uint32_t *stock)
{
    char path[T_PATH + 32];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "id_reg,name,category,weight,price,expiry,stock\n");
    for (unsigned i = 0; i < T_PRODUCTS; i++) {
        fprintf(f, "%u,Product %u,Test,0.5,10,2030-01-01,%u\n", i + 1, i + 1, stock[i]);
    }
    fclose(f);
}

/* Two journals (records alternate between them, as between two workers)
 * and one ledger per producer. */
static void s_write(const t_run_t *r)
{
    s_write_csv("catalogue.csv", r->initial);
    s_write_csv("final.csv", r->final);
    for (uint32_t w = 0; w < 2; w++) {
        char path[T_PATH + 32], why[256];
        snprintf(path, sizeof path, "%s/journal/w%u-1.log", s_dir, w + 1);
        sp_journal_t *j = NULL;
        uint64_t table = w == 1 && r->w2_table != 0 ? r->w2_table : T_TABLE_ID;
        cr_assert_eq(sp_journal_open(&j, path, table, w + 1, SP_FSYNC_NEVER, 0, why, sizeof why), 0,
                     "%s", why);
        for (size_t i = w; i < r->nj; i += 2) {
            cr_assert_eq(sp_journal_append(j, &r->jrec[i], 1), 0);
        }
        sp_journal_close(&j);
    }
    for (uint32_t p = 1; p <= T_PRODUCERS; p++) {
        if (p == 2 && r->drop_ledger2) {
            continue;
        }
        for (int copy = 0; copy < (p == 1 && r->ledger1_twice ? 2 : 1); copy++) {
            char path[T_PATH + 32];
            snprintf(path, sizeof path, "%s/%s/ledger-%u.bin", s_dir, copy ? "ledgers2" : "ledgers",
                     p);
            FILE *f = fopen(path, "wb");
            cr_assert_not_null(f);
            for (size_t i = 0; i < r->nl; i++) {
                const sp_ledger_rec_t *l = &r->lrec[i];
                if (l->producer_id != p ||
                    (p == 2 && r->cut2_after != 0 && l->seq > r->cut2_after) ||
                    (p == 2 && l->seq >= r->hole2_lo && l->seq <= r->hole2_hi)) {
                    continue;
                }
                uint8_t buf[SP_LEDGER_REC_SIZE];
                sp_ledger_encode(buf, l);
                cr_assert_eq(fwrite(buf, sizeof buf, 1, f), 1u);
            }
            fclose(f);
        }
    }
}

/* Runs bin/ledgercheck on the folder (as the run r says, when not NULL);
 * returns its exit code, output in *out. */
static int s_check_run(const t_run_t *r, char **out, bool json)
{
    char cat[T_PATH + 32], fin[T_PATH + 32], jdir[T_PATH + 32], ldir[T_PATH + 32],
        ldir2[T_PATH + 32];
    snprintf(cat, sizeof cat, "%s/catalogue.csv", s_dir);
    snprintf(fin, sizeof fin, "%s/final.csv", s_dir);
    snprintf(jdir, sizeof jdir, "%s/journal", s_dir);
    snprintf(ldir, sizeof ldir, "%s/ledgers", s_dir);
    snprintf(ldir2, sizeof ldir2, "%s/ledgers2", s_dir);
    const char *argv[16] = {spt_bin("ledgercheck"),
                            "--catalogue",
                            cat,
                            "--final",
                            fin,
                            "--journal",
                            jdir,
                            r != NULL && r->complete ? "--complete-ledgers" : "--ledgers",
                            ldir};
    size_t n = 9;
    if (r != NULL && r->ledger1_twice) {
        argv[n++] = "--ledgers";
        argv[n++] = ldir2;
    }
    for (size_t i = 0; r != NULL && i < 4 && r->extra[i] != NULL; i++) {
        argv[n++] = r->extra[i];
    }
    if (json) {
        argv[n++] = "--json";
    }
    argv[n] = NULL;
    return spt_run(argv, T_CHECK_MS, out);
}

static int s_check(char **out, bool json)
{
    return s_check_run(NULL, out, json);
}

/* Writes the run, checks it, and expects exit code rc and every needle. */
static void s_expect(const t_run_t *r, int rc, const char *const *needles)
{
    s_write(r);
    char *out = NULL;
    int got = s_check_run(r, &out, false);
    cr_expect_eq(got, rc, "ledgercheck exited %d, not %d:\n%s", got, rc, out);
    for (size_t i = 0; needles[i] != NULL; i++) {
        cr_expect(strstr(out, needles[i]) != NULL, "no '%s' in:\n%s", needles[i], out);
    }
    free(out);
}

/* Index of the journal record of the n-th (from 0) order matching status
 * and product (0: any product). */
static size_t s_find(const t_run_t *r, unsigned status, uint32_t product, unsigned n)
{
    for (size_t i = 0; i < r->nj; i++) {
        if (r->jrec[i].status == status && (product == 0 || r->jrec[i].product_id == product) &&
            n-- == 0) {
            return i;
        }
    }
    cr_assert_fail("the model has no such record (status %u, product %u)", status, product);
    return 0;
}

static sp_ledger_rec_t *s_ledger_of(t_run_t *r, const sp_jrec_t *j)
{
    for (size_t i = 0; i < r->nl; i++) {
        if (r->lrec[i].producer_id == j->producer_id && r->lrec[i].seq == j->seq) {
            return &r->lrec[i];
        }
    }
    cr_assert_fail("no ledger record for (%u, %llu)", j->producer_id, (unsigned long long)j->seq);
    return NULL;
}

Test(chaos, clean_synthetic_run_passes_with_figures)
{
    t_run_t r;
    s_model(&r);
    s_write(&r);
    char *out = NULL;
    int rc = s_check(&out, false);
    cr_expect_eq(rc, 0, "ledgercheck failed a clean run:\n%s", out);
    char want[128];
    snprintf(want, sizeof want, "orders %d: ", T_ORDERS);
    cr_expect(strstr(out, want) != NULL, "%s", out);
    cr_expect(strstr(out, "timed out 2 |") != NULL, "%s", out);
    cr_expect(strstr(out, "lost 0, duplicated 0, unexpected 0, unacknowledged applied 0") != NULL,
              "%s", out);
    cr_expect(strstr(out, "replay ok, conservation exact, never negative") != NULL, "%s", out);
    cr_expect(strstr(out, "timed out: 1 applied, 1 not") != NULL, "%s", out);
    free(out);

    /* the same figures as one JSON object */
    rc = s_check(&out, true);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "{\"ok\":true,") == out, "%s", out);
    cr_expect_eq(spt_json_num(out, "orders"), T_ORDERS, "%s", out);
    cr_expect_eq(spt_json_num(out, "journal_records"), (long long)r.nj, "%s", out);
    cr_expect_eq(spt_json_num(out, "lost"), 0, "%s", out);
    cr_expect_eq(spt_json_num(out, "products"), T_PRODUCTS, "%s", out);
    cr_expect(spt_json_num(out, "out_of_stock") > 0, "the model refuses nothing:\n%s", out);
    free(out);
}

Test(chaos, lost_order_is_named)
{
    t_run_t r;
    s_model(&r);
    size_t i = s_find(&r, SP_STATUS_ACCEPTED, 1, 2);
    char key[96];
    snprintf(key, sizeof key, "lost: key (%u, %llu)", r.jrec[i].producer_id,
             (unsigned long long)r.jrec[i].seq);
    memmove(&r.jrec[i], &r.jrec[i + 1], (r.nj - i - 1) * sizeof r.jrec[0]);
    r.nj--;
    s_expect(&r, 1, (const char *[]){key, "lost 1,", "version gap", NULL});
}

Test(chaos, order_journaled_twice_is_duplicated)
{
    t_run_t r;
    s_model(&r);
    size_t i = s_find(&r, SP_STATUS_ACCEPTED, 2, 1);
    r.jrec[r.nj++] = r.jrec[i]; /* a second worker journals the same decision */
    char key[96];
    snprintf(key, sizeof key, "duplicated: key (%u, %llu)", r.jrec[i].producer_id,
             (unsigned long long)r.jrec[i].seq);
    s_expect(&r, 1, (const char *[]){key, "duplicated 1,", NULL});
}

Test(chaos, version_gap_is_named)
{
    t_run_t r;
    s_model(&r);
    for (size_t i = 0; i < r.nj; i++) {
        if (r.jrec[i].product_id == 1 && r.jrec[i].version >= 3) {
            r.jrec[i].version++; /* version 3 never happened */
        }
    }
    s_expect(&r, 1, (const char *[]){"product 1: version gap: 4 follows 2", "replay FAILED", NULL});
}

/* The model after a crash took a version of product 1 (applied, never
 * journaled, never answered: its customer timed out) while later versions
 * were journaled, and the recovery rolled it back: a rebase record past the
 * last version, rolling back `says` versions, from which the row went on.
 * A refusal saw the version taken. */
static void s_model_rebased(t_run_t *r, uint32_t says)
{
    s_model(r);
    size_t i = s_find(r, SP_STATUS_ACCEPTED, 1, 2);
    sp_jrec_t gone = r->jrec[i];
    sp_ledger_rec_t *l = s_ledger_of(r, &gone);
    l->status = SP_LEDGER_TIMED_OUT;
    l->stock_after = 0;
    memmove(&r->jrec[i], &r->jrec[i + 1], (r->nj - i - 1) * sizeof r->jrec[0]);
    r->nj--;
    uint32_t last = 0;
    for (size_t k = 0; k < r->nj; k++) {
        if (r->jrec[k].product_id == 1 && r->jrec[k].status == SP_STATUS_ACCEPTED &&
            r->jrec[k].version > last) {
            last = r->jrec[k].version;
        }
    }
    cr_assert_gt(last, gone.version, "the model has versions after the one taken");
    r->final[0] =
        gone.type == SP_ORDER_PURCHASE ? r->final[0] + gone.quantity : r->final[0] - gone.quantity;
    /* a refusal that saw the version taken (answered: it was right then) */
    sp_jrec_t no = {.kind = SP_JREC_KIND_OUTCOME,
                    .type = SP_ORDER_PURCHASE,
                    .status = SP_STATUS_OUT_OF_STOCK,
                    .producer_id = 2,
                    .product_id = 1,
                    .seq = T_PER_PRODUCER + 1,
                    .quantity = gone.stock_after + 1,
                    .version = gone.version,
                    .stock_after = gone.stock_after,
                    .worker_id = 1};
    r->jrec[r->nj++] = no;
    r->lrec[r->nl++] = (sp_ledger_rec_t){.producer_id = no.producer_id,
                                         .type = no.type,
                                         .status = no.status,
                                         .product_id = no.product_id,
                                         .quantity = no.quantity,
                                         .stock_after = no.stock_after,
                                         .seq = no.seq};
    r->jrec[r->nj++] = (sp_jrec_t){.kind = SP_JREC_KIND_REBASE,
                                   .status = SP_STATUS_ACCEPTED,
                                   .producer_id = SP_SYSTEM_PRODUCER,
                                   .product_id = 1,
                                   .quantity = says,
                                   .version = last + 1,
                                   .stock_after = r->final[0]};
}

Test(chaos, a_rebase_accounts_for_a_version_a_crash_took)
{
    t_run_t r;
    s_model_rebased(&r, 1);
    s_expect(&r, 0,
             (const char *[]){"lost 0,", "replay ok", "conservation exact",
                              "1 rebase(s) rolling back 1 unjournaled version(s) (1 refusal(s) "
                              "saw them)",
                              NULL});
}

Test(chaos, a_rebase_that_rolls_back_more_than_the_journal_lacks_is_named)
{
    t_run_t r;
    s_model_rebased(&r, 2);
    s_expect(&r, 1, (const char *[]){"rolls back 2 version(s), the journal lacks 1", NULL});
}

Test(chaos, wrong_stock_after_is_named)
{
    t_run_t r;
    s_model(&r);
    size_t i = s_find(&r, SP_STATUS_ACCEPTED, 1, 1);
    /* both witnesses agree on the wrong figure: only the replay can tell */
    r.jrec[i].stock_after++;
    s_ledger_of(&r, &r.jrec[i])->stock_after++;
    char want[64];
    snprintf(want, sizeof want, "product 1: version %u ", r.jrec[i].version);
    s_expect(&r, 1, (const char *[]){want, "should leave", "replay FAILED", NULL});
}

Test(chaos, stock_below_zero_is_named)
{
    t_run_t r;
    s_model(&r);
    /* the journal sells product 1's initial stock; say there was none */
    size_t i = s_find(&r, SP_STATUS_ACCEPTED, 1, 0);
    cr_assert_eq(r.jrec[i].type, SP_ORDER_PURCHASE, "the model must start product 1 with a sale");
    r.initial[0] = 0;
    s_expect(&r, 1, (const char *[]){"below zero", "went NEGATIVE", "conservation VIOLATED", NULL});
}

Test(chaos, refusal_that_had_the_stock_is_named)
{
    t_run_t r;
    s_model(&r);
    size_t i = 0;
    bool found = false;
    for (unsigned n = 0; !found; n++) {
        i = s_find(&r, SP_STATUS_OUT_OF_STOCK, 0, n);
        found = r.jrec[i].stock_after > 0;
    }
    /* it wanted exactly what there was */
    r.jrec[i].quantity = r.jrec[i].stock_after;
    s_ledger_of(&r, &r.jrec[i])->quantity = r.jrec[i].stock_after;
    s_expect(&r, 1, (const char *[]){"refused as out_of_stock", "could have taken it", NULL});
}

Test(chaos, status_that_disagrees_is_unexpected)
{
    t_run_t r;
    s_model(&r);
    size_t i = s_find(&r, SP_STATUS_ACCEPTED, 3, 0);
    s_ledger_of(&r, &r.jrec[i])->status = SP_STATUS_OUT_OF_STOCK;
    s_expect(&r, 1,
             (const char *[]){"unexpected: key", "ledger out_of_stock", "unexpected 1,", NULL});
}

/* Adds a journaled out-of-stock refusal (consistent with product 3's empty
 * stock) under a seq far beyond anything `producer` sent. */
static void s_add_far_refusal(t_run_t *r, uint32_t producer)
{
    r->jrec[r->nj++] = (sp_jrec_t){.kind = SP_JREC_KIND_OUTCOME,
                                   .type = SP_ORDER_PURCHASE,
                                   .status = SP_STATUS_OUT_OF_STOCK,
                                   .producer_id = producer,
                                   .product_id = 3,
                                   .seq = T_FAR_SEQ,
                                   .quantity = 1};
}

Test(chaos, key_no_ledger_knows_is_unexpected)
{
    t_run_t r;
    s_model(&r);
    /* a refusal consistent with the stock, under a seq producer 1 never sent */
    s_add_far_refusal(&r, 1);
    s_expect(&r, 1, (const char *[]){"unexpected: key (1, 1000000)", "unexpected 1,", NULL});
}

Test(chaos, customer_that_never_heard_is_unacknowledged_not_unexpected)
{
    t_run_t r;
    s_model(&r);
    r.drop_ledger2 = true; /* a customer killed before it wrote anything */
    size_t n2 = 0;
    for (size_t i = 0; i < r.nj; i++) {
        n2 += r.jrec[i].producer_id == 2;
    }
    char want[96];
    snprintf(want, sizeof want, "unexpected 0, unacknowledged applied %zu |", n2);
    s_expect(&r, 0, (const char *[]){want, "replay ok", NULL});
}

/* Journal records of producer 2 with seq in lo..hi. */
static size_t s_count2(const t_run_t *r, uint64_t lo, uint64_t hi)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nj; i++) {
        n += r->jrec[i].producer_id == 2 && r->jrec[i].seq >= lo && r->jrec[i].seq <= hi;
    }
    return n;
}

Test(chaos, customer_killed_mid_run_leaves_unacknowledged_not_unexpected)
{
    t_run_t r;
    s_model(&r);
    /* killed with answers 21..24 not heard yet while 25..40 were (answers
     * come back out of order), and nothing heard after 40 */
    r.cut2_after = 40;
    r.hole2_lo = 21;
    r.hole2_hi = 24;
    size_t n2 = s_count2(&r, 21, 24) + s_count2(&r, 41, T_PER_PRODUCER);
    cr_assert_gt(n2, 4u);
    char want[96];
    snprintf(want, sizeof want, "unexpected 0, unacknowledged applied %zu |", n2);
    s_expect(&r, 0, (const char *[]){want, "replay ok", NULL});
}

Test(chaos, key_a_completed_customer_never_sent_is_unexpected)
{
    t_run_t r;
    s_model(&r);
    /* the same cut ledger, but its customer is said to have ended normally:
     * it had no order in flight, so nothing explains the applied ones */
    r.cut2_after = 40;
    r.complete = true;
    s_expect(&r, 1,
             (const char *[]){"unexpected: key (2, 41)", "ended normally",
                              "unacknowledged applied 0", NULL});
}

Test(chaos, key_beyond_a_killed_customers_window_is_unexpected)
{
    t_run_t r;
    s_model(&r);
    r.cut2_after = 40;
    /* producer 2 could not have had this one in flight: its first hole is 41 */
    s_add_far_refusal(&r, 2);
    s_expect(&r, 1, (const char *[]){"unexpected: key (2, 1000000)", "first hole at seq 41", NULL});
}

Test(chaos, key_far_beyond_a_producer_without_ledger_is_unexpected)
{
    t_run_t r;
    s_model(&r);
    r.drop_ledger2 = true;
    s_add_far_refusal(&r, 2);
    s_expect(&r, 1, (const char *[]){"unexpected: key (2, 1000000)", "unexpected 1,", NULL});
}

Test(chaos, one_producer_id_with_two_ledgers_is_named)
{
    t_run_t r;
    s_model(&r);
    r.ledger1_twice = true;
    s_expect(&r, 1, (const char *[]){"producer 1 has a ledger in both", NULL});
}

Test(chaos, journals_of_a_rebuilt_table_pass_only_when_expected)
{
    t_run_t r;
    s_model(&r);
    r.w2_table = T_TABLE_ID + 1; /* as if the table had been rebuilt once */
    s_write(&r);
    static const struct {
        const char *tables; /* --tables, or NULL */
        int rc;
        const char *needle;
    } cases[] = {{NULL, 1, "journals of 2 tables, 1 expected"},
                 {"2", 0, "journals of 2 table(s)"},
                 {"3", 1, "journals of 2 tables, 3 expected"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r.extra[0] = cases[i].tables ? "--tables" : NULL;
        r.extra[1] = cases[i].tables;
        char *out = NULL;
        int rc = s_check_run(&r, &out, false);
        cr_expect_eq(rc, cases[i].rc, "--tables %s: exit %d:\n%s",
                     cases[i].tables ? cases[i].tables : "(none)", rc, out);
        cr_expect(strstr(out, cases[i].needle) != NULL, "no '%s' in:\n%s", cases[i].needle, out);
        free(out);
    }
}

Test(chaos, torn_journal_tail_passes)
{
    t_run_t r;
    s_model(&r);
    s_write(&r);
    char path[T_PATH + 32];
    snprintf(path, sizeof path, "%s/journal/w1-1.log", s_dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    static const uint8_t half[SP_JOURNAL_REC_SIZE / 2] = {0x5a};
    cr_assert_eq(write(fd, half, sizeof half), (ssize_t)sizeof half);
    close(fd);
    char *out = NULL;
    int rc = s_check(&out, false);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "(1 torn tails, 32 bytes dropped)") != NULL, "%s", out);
    free(out);
}

Test(chaos, corrupt_journal_is_named)
{
    t_run_t r;
    s_model(&r);
    s_write(&r);
    char path[T_PATH + 32];
    snprintf(path, sizeof path, "%s/journal/w2-1.log", s_dir);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    off_t at = SP_JOURNAL_HDR_SIZE + 3 * SP_JOURNAL_REC_SIZE + 20;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
    char *out = NULL;
    int rc = s_check(&out, false);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "corrupt record") != NULL, "%s", out);
    cr_expect(strstr(out, "w2-1.log") != NULL, "%s", out);
    free(out);
}

Test(chaos, unreadable_inputs_exit_2)
{
    char *out = NULL;
    const char *argv[] = {spt_bin("ledgercheck"), "--catalogue", "/nonexistent/c.csv", "--final",
                          "/nonexistent/f.csv",   "--journal",   "/nonexistent",       "--ledgers",
                          "/nonexistent",         NULL};
    cr_expect_eq(spt_run(argv, T_CHECK_MS, &out), 2, "%s", out);
    cr_expect(strstr(out, "/nonexistent/c.csv") != NULL, "%s", out);
    free(out);
    const char *none[] = {spt_bin("ledgercheck"), "--json", NULL};
    cr_expect_eq(spt_run(none, T_CHECK_MS, &out), 2, "%s", out);
    cr_expect(strstr(out, "usage:") != NULL, "%s", out);
    free(out);
}

/* Prints the driver's lines (figures, and what failed: they all start with
 * "chaos" or "==") to stderr, so the suite's log shows what the run did and
 * the assertions below need not repeat it. */
static void s_print_figures(const char *out)
{
    for (const char *p = out; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (strncmp(p, "chaos", 5) == 0 || strncmp(p, "== ", 3) == 0) {
            fprintf(stderr, "%.*s\n", (int)len, p);
        }
        p += len + (nl != NULL);
    }
}

/* The line of out that starts with prefix, into buf ("" when none). */
static const char *s_line(const char *out, const char *prefix, char *buf, size_t cap)
{
    const char *line = strstr(out, prefix);
    buf[0] = '\0';
    if (line != NULL) {
        size_t len = strcspn(line, "\n");
        snprintf(buf, cap, "%.*s", (int)(len < cap ? len : cap - 1), line);
    }
    return buf;
}

Test(chaos, quick_run_loses_and_duplicates_nothing_on_mq_and_zmq, .timeout = 180)
{
    const char *data = getenv("SP_DATA_DIR");
    char script[T_PATH];
    snprintf(script, sizeof script, "%s/%stests/chaos/chaos.sh", data ? data : ".",
             data ? "../" : "");
    const char *argv[] = {"/bin/bash", script, "--quick", NULL};
    char *out = NULL;
    int rc = spt_run(argv, T_CHAOS_MS, &out);
    s_print_figures(out);
    cr_expect_eq(rc, 0, "chaos.sh --quick exited %d (its lines are above)", rc);
    cr_expect(strstr(out, "== chaos: mq zmq: ok") != NULL || rc != 0, "no verdict:\n%s", out);
    static const char *const transports[] = {"mq", "zmq"};
    for (size_t t = 0; t < 2; t++) {
        char prefix[128], line[1024];
        snprintf(prefix, sizeof prefix, "chaos %s: ledgercheck: orders 100000:", transports[t]);
        s_line(out, prefix, line, sizeof line);
        cr_expect(line[0] != '\0', "no ledgercheck figures for %s", transports[t]);
        cr_expect(line[0] == '\0' || strstr(line, "lost 0, duplicated 0, unexpected 0,") != NULL,
                  "%s", line);
        snprintf(prefix, sizeof prefix, "chaos %s: monitor: ", transports[t]);
        s_line(out, prefix, line, sizeof line);
        cr_expect(strstr(line, "final view differs from the table on 0 products") != NULL,
                  "%s: the monitor's final view is not the table: %s", transports[t], line);
        snprintf(prefix, sizeof prefix, "chaos %s: ok", transports[t]);
        cr_expect(strstr(out, prefix) != NULL, "%s did not pass", transports[t]);
    }
    free(out);
}

Test(chaos, quick_restart_loop_reattaches_rebuilds_and_loses_nothing, .timeout = 180)
{
    const char *data = getenv("SP_DATA_DIR");
    char script[T_PATH];
    snprintf(script, sizeof script, "%s/%stests/chaos/chaos.sh", data ? data : ".",
             data ? "../" : "");
    const char *argv[] = {"/bin/bash", script, "--restart-loop", "--quick", NULL};
    char *out = NULL;
    int rc = spt_run(argv, T_RESTART_MS, &out);
    s_print_figures(out);
    cr_expect_eq(rc, 0, "chaos.sh --restart-loop --quick exited %d (its lines are above)", rc);
    cr_expect(strstr(out, "== chaos restarts: mq zmq: ok") != NULL || rc != 0, "no verdict:\n%s",
              out);
    static const char *const transports[] = {"mq", "zmq"};
    for (size_t t = 0; t < 2; t++) {
        char prefix[128], line[1024];
        snprintf(prefix, sizeof prefix, "chaos restarts %s: ledgercheck: orders ", transports[t]);
        s_line(out, prefix, line, sizeof line);
        cr_expect(line[0] != '\0', "no ledgercheck figures for %s", transports[t]);
        cr_expect(line[0] == '\0' || (strstr(line, "lost 0, duplicated 0, unexpected 0,") != NULL &&
                                      strstr(line, "replay ok, conservation exact") != NULL),
                  "%s", line);
        /* 10 restarts: every third loses the table */
        snprintf(prefix, sizeof prefix, "chaos restarts %s: 10 rounds (7 re-attaches, 3 rebuilds)",
                 transports[t]);
        cr_expect(strstr(out, prefix) != NULL, "no '%s'", prefix);
        snprintf(prefix, sizeof prefix, "chaos restarts %s: ok", transports[t]);
        cr_expect(strstr(out, prefix) != NULL, "%s did not pass", transports[t]);
    }
    free(out);
}

/* The shm transport through the same faults: workers killed inside their
 * commits and at random (the worker-kill run), then everything, customers
 * included, killed at once and restarted (the restart loop).  A process
 * killed inside a ring put or get no longer stops the ring for the others
 * (sp_ring's robust lock), so both runs end with every order checked. */
Test(chaos, quick_runs_on_shm_kill_workers_and_clients_and_lose_nothing, .timeout = 360)
{
    const char *data = getenv("SP_DATA_DIR");
    char script[T_PATH];
    snprintf(script, sizeof script, "%s/%stests/chaos/chaos.sh", data ? data : ".",
             data ? "../" : "");
    const char *kills[] = {"/bin/bash", script, "--quick", "--transport", "shm", NULL};
    char *out = NULL;
    int rc = spt_run(kills, T_CHAOS_MS, &out);
    s_print_figures(out);
    cr_expect_eq(rc, 0, "chaos.sh --quick --transport shm exited %d (its lines are above)", rc);
    char line[1024];
    s_line(out, "chaos shm: ledgercheck: orders 100000:", line, sizeof line);
    cr_expect(strstr(line, "lost 0, duplicated 0, unexpected 0,") != NULL, "%s", line);
    cr_expect(strstr(out, "chaos shm: ok") != NULL, "shm did not pass");
    free(out);

    const char *restarts[] = {"/bin/bash", script, "--restart-loop", "--quick", "--transport",
                              "shm",       NULL};
    rc = spt_run(restarts, T_RESTART_MS, &out);
    s_print_figures(out);
    cr_expect_eq(rc, 0, "chaos.sh --restart-loop --quick --transport shm exited %d", rc);
    s_line(out, "chaos restarts shm: ledgercheck: orders ", line, sizeof line);
    cr_expect(strstr(line, "lost 0, duplicated 0, unexpected 0,") != NULL &&
                  strstr(line, "replay ok, conservation exact") != NULL,
              "%s", line);
    cr_expect(strstr(out, "chaos restarts shm: 10 rounds (7 re-attaches, 3 rebuilds)") != NULL,
              "no rounds line");
    cr_expect(strstr(out, "chaos restarts shm: ok") != NULL, "shm restarts did not pass");
    free(out);
}
