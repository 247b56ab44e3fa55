/*
 * Tests for a catalogue sharded across brokers: a broker with --products
 * loads only its range and refuses a range with no product; the WELCOME
 * carries the range; a producer over two shards sends every order to the
 * shard that owns its product and refuses shards whose ranges overlap; a
 * one-shot order goes to its product's shard; the monitor's merged view
 * equals the shards' tables; moving a range to a new shard (stop, export,
 * load, start) loses and duplicates nothing, and a restart that would drop
 * saved rows nobody exported is refused.
 *
 * Every instance name carries the test's tag and pid (spt_instance); every
 * test stops its brokers and checks that they left nothing behind; waits
 * are for events, each bounded.
 */
#include "sp_client.h"
#include "sp_error.h"
#include "sp_hello.h"
#include "sp_shards.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_PRODUCTS 10
#define T_STOCK    1000
#define T_RUN_MS   60000
#define T_WHY      512
#define T_ARGS_MAX 24

/* Two shards of one catalogue of T_PRODUCTS: A owns 1-5, B 6-10. */
typedef struct {
    char a[64], b[64], list[160];
    char catalogue[128];
    pid_t pa, pb;
} t_pair_t;

static pid_t s_shard(const char *instance, const char *catalogue, const char *range)
{
    const char *extra[] = {"--catalogue", catalogue, "--products", range, "--workers", "1", NULL};
    return spt_broker_start(instance, extra);
}

static void s_pair_start(t_pair_t *p, const char *tag, const char *range_a, const char *range_b)
{
    char ta[32], tb[32];
    snprintf(ta, sizeof ta, "%sa", tag);
    snprintf(tb, sizeof tb, "%sb", tag);
    spt_instance(p->a, sizeof p->a, ta);
    spt_instance(p->b, sizeof p->b, tb);
    snprintf(p->list, sizeof p->list, "%s,%s", p->a, p->b);
    spt_catalogue(p->catalogue, sizeof p->catalogue, T_PRODUCTS, T_STOCK);
    p->pa = s_shard(p->a, p->catalogue, range_a);
    p->pb = p->pa > 0 ? s_shard(p->b, p->catalogue, range_b) : -1;
    if (p->pb <= 0) {
        if (p->pa > 0) {
            spt_stop(p->pa);
        }
        unlink(p->catalogue);
        cr_assert_fail("the shards' brokers did not become ready");
    }
}

static void s_pair_stop(t_pair_t *p)
{
    int sa = spt_stop(p->pa), sb = spt_stop(p->pb);
    unlink(p->catalogue);
    cr_expect(WIFEXITED(sa) && WEXITSTATUS(sa) == 0, "shard A's broker: status %d", sa);
    cr_expect(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "shard B's broker: status %d", sb);
    cr_expect(!spt_leftovers(p->a) && !spt_leftovers(p->b), "a shard left IPC objects behind");
}

static sp_table_t *s_open(const char *instance)
{
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0, "table of %s", instance);
    return t;
}

static uint32_t s_stock(sp_table_t *t, uint32_t id)
{
    const sp_row_t *r = sp_table_row(t, id);
    return r != NULL ? SP_SV_STOCK(atomic_load(&r->sv)) : UINT32_MAX;
}

/* ---- the broker ------------------------------------------------------------ */

Test(shard, a_broker_with_products_loads_only_its_range, .timeout = 60)
{
    char inst[64], cat[128];
    spt_instance(inst, sizeof inst, "shrange");
    spt_catalogue(cat, sizeof cat, T_PRODUCTS, 7);
    pid_t pid = s_shard(inst, cat, "3-6");
    cr_assert_gt(pid, 0, "broker did not become ready");
    sp_table_t *t = s_open(inst);
    const sp_table_hdr_t *h = sp_table_hdr(t);
    cr_expect_eq(h->product_lo, 3);
    cr_expect_eq(h->product_hi, 6);
    cr_expect_eq(h->product_count, 4);
    cr_expect_eq(sp_table_capacity(t), 6, "ids keep their values: the highest is 6");
    for (uint32_t id = 1; id <= T_PRODUCTS; id++) {
        bool in = id >= 3 && id <= 6;
        cr_expect_eq(sp_table_row(t, id) != NULL, in, "product %u", id);
        if (in) {
            cr_expect_eq(s_stock(t, id), 7);
        }
    }
    sp_table_close(&t);
    int st = spt_stop(pid);
    unlink(cat);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_expect(!spt_leftovers(inst));
}

Test(shard, a_range_with_no_product_is_refused_by_name, .timeout = 60)
{
    char inst[64], cat[128];
    spt_instance(inst, sizeof inst, "shnone");
    spt_catalogue(cat, sizeof cat, T_PRODUCTS, 7);
    const char *argv[] = {spt_bin("broker"),    "--instance", inst,          "--state-dir",
                          "/tmp/sp-test-state", "--fresh",    "--catalogue", cat,
                          "--products",         "50-60",      NULL};
    char *out = NULL;
    int rc = spt_run(argv, T_RUN_MS, &out);
    unlink(cat);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(out, "--products 50-60") != NULL && strstr(out, "holds no product") != NULL,
              "%s", out);
    cr_expect(strstr(out, "ids 1 to 10") != NULL, "the catalogue's ids are named: %s", out);
    free(out);
    const char *bad[] = {spt_bin("broker"), "--instance", inst, "--products", "9-3", NULL};
    rc = spt_run(bad, T_RUN_MS, &out);
    cr_expect_eq(rc, 2, "a backwards range is a usage error");
    cr_expect(strstr(out, "backwards") != NULL, "%s", out);
    free(out);
    cr_expect(!spt_leftovers(inst));
}

/* ---- the WELCOME ----------------------------------------------------------- */

Test(shard, the_welcome_carries_the_range, .timeout = 30)
{
    sp_table_t *t = NULL;
    char name[64];
    cr_assert_eq(spt_scratch_table(&t, name, sizeof name, "shwel", "range", 8, 5, SP_SYNC_CAS), 0);
    uint8_t hello[SP_HELLO_MSG_SIZE], out[SP_WELCOME_MSG_MAX];
    sp_hello_t h = {.rev = SP_HELLO_REV, .op = SP_HELLO_OPEN, .hello_id = 77};
    sp_hello_encode(hello, &h);
    sp_hello_t got;
    sp_welcome_t w;
    /* not a shard: no range counter, 0 and 0 */
    int n = sp_hello_answer(t, hello, sizeof hello, 1, &got, out, sizeof out);
    cr_assert_gt(n, 0);
    cr_assert_eq(sp_welcome_decode(out, (size_t)n, &w), 0);
    cr_expect_eq(w.product_lo, 0);
    cr_expect_eq(w.product_hi, 0);
    size_t unsharded = (size_t)n;
    /* a shard: the 16th counter, lowest | highest << 32 */
    sp_table_hdr(t)->product_lo = 3;
    sp_table_hdr(t)->product_hi = 8;
    n = sp_hello_answer(t, hello, sizeof hello, 1, &got, out, sizeof out);
    cr_assert_gt(n, 0);
    cr_expect_eq((size_t)n, unsharded + SP_WIRE_COUNTER_SIZE);
    cr_expect_leq((size_t)n, (size_t)SP_WELCOME_MSG_MAX);
    cr_assert_eq(sp_welcome_decode(out, (size_t)n, &w), 0);
    cr_expect_eq(w.product_lo, 3);
    cr_expect_eq(w.product_hi, 8);
    /* a range that runs backwards is not a WELCOME to trust */
    sp_counter_t c = {.id = SP_CTR_PRODUCT_RANGE, .value = 9 | (uint64_t)2 << 32};
    sp_wire_put_counter(sp_wire_rec(out, SP_MSG_WELCOME, (unsigned)(n / SP_WIRE_COUNTER_SIZE) - 2),
                        &c);
    cr_expect_eq(sp_welcome_decode(out, (size_t)n, &w), SP_E_INVALID);
    sp_table_unlink(name);
    sp_table_close(&t);
}

Test(shard, a_client_learns_its_shards_range, .timeout = 60)
{
    t_pair_t p;
    s_pair_start(&p, "shcli", "1-5", "6-10");
    sp_client_cfg_t cc = {.instance = p.b, .batch = 1};
    sp_client_t *client = NULL;
    char why[T_WHY] = "";
    cr_assert_eq(sp_client_open(&client, &cc, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_client_welcome(client)->product_lo, 6);
    cr_expect_eq(sp_client_welcome(client)->product_hi, 10);
    const uint32_t *ids;
    uint32_t n;
    cr_assert_eq(sp_client_products(client, &ids, &n, why, sizeof why), 0, "%s", why);
    cr_expect_eq(n, 5);
    cr_expect_eq(ids[0], 6);
    cr_expect_eq(ids[n - 1], 10);
    sp_client_close(&client);
    s_pair_stop(&p);
}

/* ---- the producer ---------------------------------------------------------- */

Test(shard, shard_lists_and_overlaps_are_checked, .timeout = 10)
{
    sp_shards_t s;
    char why[T_WHY];
    cr_expect_eq(sp_shards_parse(&s, "a,b,c", why, sizeof why), 0);
    cr_expect_eq(s.n, 3);
    cr_expect_eq(sp_shards_parse(&s, "a,,b", why, sizeof why), SP_E_USAGE);
    cr_expect_eq(sp_shards_parse(&s, "a,b,a", why, sizeof why), SP_E_USAGE);
    cr_expect(strstr(why, "twice") != NULL, "%s", why);
    cr_assert_eq(sp_shards_parse(&s, "a,b", why, sizeof why), 0);
    sp_welcome_t wa = {.product_lo = 1, .product_hi = 5}, wb = {.product_lo = 6, .product_hi = 9};
    sp_shards_set(&s, 0, &wa);
    sp_shards_set(&s, 1, &wb);
    cr_expect_eq(sp_shards_check(&s, why, sizeof why), 0);
    cr_expect_eq(sp_shards_owner(&s, 5), 0);
    cr_expect_eq(sp_shards_owner(&s, 6), 1);
    cr_expect_eq(sp_shards_owner(&s, 10), -1);
    sp_welcome_t whole = {.capacity = 12}; /* not a shard: 1..capacity */
    sp_shards_set(&s, 1, &whole);
    cr_expect_eq(sp_shards_check(&s, why, sizeof why), SP_E_USAGE);
    cr_expect(strstr(why, "overlap") != NULL, "%s", why);
}

/* The sum of a table's sold and restocked units over its products. */
static void s_units(sp_table_t *t, uint64_t *sold, uint64_t *restocked)
{
    *sold = *restocked = 0;
    for (uint32_t id = 1; id <= sp_table_capacity(t); id++) {
        if (sp_table_row(t, id) != NULL) {
            sp_tally_t ty = spt_tally(t, id);
            *sold += ty.sold;
            *restocked += ty.restocked;
        }
    }
}

Test(shard, a_producer_routes_every_order_to_the_shard_that_owns_it, .timeout = 120)
{
    t_pair_t p;
    s_pair_start(&p, "shroute", "1-5", "6-10");
    const char *argv[] = {spt_bin("producer"),
                          "--instance",
                          p.list,
                          "--customers",
                          "2",
                          "--count",
                          "3000",
                          "--restock",
                          "0.3",
                          "--qty",
                          "1-3",
                          "--batch",
                          "16",
                          "--audit",
                          "--json",
                          NULL};
    char *out = NULL;
    int rc = spt_run(argv, T_RUN_MS, &out);
    cr_expect_eq(rc, 0, "%s", out);
    char ok_a[160], ok_b[160];
    snprintf(ok_a, sizeof ok_a, "shard %s: conservation: ok", p.a);
    snprintf(ok_b, sizeof ok_b, "shard %s: conservation: ok", p.b);
    cr_expect(strstr(out, ok_a) != NULL && strstr(out, ok_b) != NULL, "%s", out);
    cr_expect_eq(spt_json_num(out, "sent"), 3000);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0);
    cr_expect_eq(spt_json_num(out, "unknown_product"), 0, "no order went to a shard without it");
    long long told_sold = spt_json_num(out, "units_sold");
    long long told_restocked = spt_json_num(out, "units_restocked");
    free(out);
    /* each table has only its own products, and between them they hold
     * exactly what the customers were told */
    sp_table_t *ta = s_open(p.a), *tb = s_open(p.b);
    for (uint32_t id = 1; id <= T_PRODUCTS; id++) {
        cr_expect_eq(sp_table_row(ta, id) != NULL, id <= 5, "shard A, product %u", id);
        cr_expect_eq(sp_table_row(tb, id) != NULL, id >= 6, "shard B, product %u", id);
    }
    uint64_t sa, ra, sb, rb;
    s_units(ta, &sa, &ra);
    s_units(tb, &sb, &rb);
    cr_expect_gt(sa + ra, 0, "shard A got orders");
    cr_expect_gt(sb + rb, 0, "shard B got orders");
    cr_expect_eq((long long)(sa + sb), told_sold);
    cr_expect_eq((long long)(ra + rb), told_restocked);
    cr_expect_eq(sp_table_audit(ta, NULL, 0), 0);
    cr_expect_eq(sp_table_audit(tb, NULL, 0), 0);
    sp_table_close(&ta);
    sp_table_close(&tb);
    s_pair_stop(&p);
}

Test(shard, overlapping_ranges_are_refused, .timeout = 60)
{
    t_pair_t p;
    s_pair_start(&p, "shover", "1-6", "5-10");
    const char *argv[] = {spt_bin("producer"), "--instance", p.list, "--count", "10", NULL};
    char *out = NULL;
    int rc = spt_run(argv, T_RUN_MS, &out);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(out, "overlap") != NULL && strstr(out, "products 1-6") != NULL &&
                  strstr(out, "products 5-10") != NULL,
              "%s", out);
    free(out);
    const char *buy[] = {spt_bin("producer"), "--instance", p.list, "buy", "2", NULL};
    rc = spt_run(buy, T_RUN_MS, &out);
    cr_expect_neq(rc, 0, "a one-shot order refuses them too");
    cr_expect(strstr(out, "overlap") != NULL, "%s", out);
    free(out);
    s_pair_stop(&p);
}

Test(shard, a_one_shot_order_goes_to_its_products_shard, .timeout = 60)
{
    t_pair_t p;
    s_pair_start(&p, "shonce", "1-5", "6-10");
    const char *buy[] = {spt_bin("producer"), "--instance", p.list, "buy", "7", "4", NULL};
    char *out = NULL;
    int rc = spt_run(buy, T_RUN_MS, &out);
    cr_expect_eq(rc, 0, "%s", out);
    free(out);
    sp_table_t *tb = s_open(p.b);
    cr_expect_eq(s_stock(tb, 7), T_STOCK - 4);
    sp_table_close(&tb);
    const char *nobody[] = {spt_bin("producer"), "--instance", p.list, "buy", "11", NULL};
    rc = spt_run(nobody, T_RUN_MS, &out);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(out, "product 11 belongs to no shard") != NULL, "%s", out);
    free(out);
    s_pair_stop(&p);
}

/* ---- the monitor ----------------------------------------------------------- */

Test(shard, the_monitors_merged_view_equals_the_tables, .timeout = 120)
{
    t_pair_t p;
    s_pair_start(&p, "shmon", "1-5", "6-10");
    const char *load[] = {spt_bin("producer"), "--instance", p.list, "--count", "1500",
                          "--restock",         "0.3",        NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(load, T_RUN_MS, &out), 0, "%s", out);
    free(out);
    const char *mon[] = {spt_bin("monitor"), "--instance", p.list, "--once", "--json", NULL};
    cr_assert_eq(spt_run(mon, T_RUN_MS, &out), 0, "%s", out);
    sp_table_t *t[2] = {s_open(p.a), s_open(p.b)};
    const char *name[2] = {p.a, p.b};
    unsigned rows = 0;
    for (const char *at = strstr(out, "{\"shard\":"); at != NULL;
         at = strstr(at + 1, "{\"shard\":")) {
        char shard[64] = "";
        unsigned id = 0, stock = 0;
        const char *s = strstr(at, "\"stock\":");
        cr_assert(sscanf(at, "{\"shard\":\"%63[^\"]\",\"id\":%u", shard, &id) == 2 && s != NULL &&
                      sscanf(s, "\"stock\":%u", &stock) == 1,
                  "%s", at);
        int k = strcmp(shard, name[0]) == 0 ? 0 : strcmp(shard, name[1]) == 0 ? 1 : -1;
        cr_assert_geq(k, 0, "row %u of an unknown shard %s", id, shard);
        cr_expect_eq(stock, s_stock(t[k], id), "product %u of shard %s", id, shard);
        rows++;
    }
    cr_expect_eq(rows, T_PRODUCTS, "every product once: %s", out);
    free(out);
    const char *text[] = {spt_bin("monitor"), "--instance", p.list, "--once", NULL};
    cr_assert_eq(spt_run(text, T_RUN_MS, &out), 0, "%s", out);
    char line[160];
    snprintf(line, sizeof line, "shard %s: up, 5 products (ids 6-10)", p.b);
    cr_expect(strstr(out, line) != NULL, "one health line per shard: %s", out);
    free(out);
    sp_table_close(&t[0]);
    sp_table_close(&t[1]);
    s_pair_stop(&p);
}

/* ---- moving a range -------------------------------------------------------- */

/* A broker of `instance` keeping its state in `dir`, not --fresh (a
 * restart continues from it), with `extra` arguments; waits until READY.
 * Returns the pid, or -1. */
static pid_t s_broker(const char *instance, const char *dir, const char *const *extra)
{
    const char *argv[T_ARGS_MAX] = {"--workers", "1"};
    int n = 2;
    for (int i = 0; extra[i] != NULL && n < T_ARGS_MAX - 1; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    return spt_broker_start_in(instance, dir, NULL, argv);
}

static void s_stop_clean(pid_t pid, const char *instance)
{
    int st = spt_stop(pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "broker of %s: status %d", instance, st);
    cr_expect(!spt_leftovers(instance));
}

Test(shard, moving_a_range_to_a_new_shard_loses_and_duplicates_nothing, .timeout = 180)
{
    char a[64], c[64], list[140], dir[128], cat[128], moved[192];
    spt_instance(a, sizeof a, "shmva");
    spt_instance(c, sizeof c, "shmvc");
    snprintf(list, sizeof list, "%s,%s", a, c);
    cr_assert(spt_tmpdir(dir, sizeof dir, "shmove"));
    spt_catalogue(cat, sizeof cat, T_PRODUCTS, 50);
    snprintf(moved, sizeof moved, "%s/moved.csv", dir);

    /* shard A holds the whole catalogue and sells some */
    const char *whole[] = {"--catalogue", cat, "--products", "1-10", NULL};
    pid_t pa = s_broker(a, dir, whole);
    cr_assert_gt(pa, 0, "shard A did not start");
    const char *load[] = {spt_bin("producer"), "--instance", a,   "--count", "800",
                          "--restock",         "0.3",        NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(load, T_RUN_MS, &out), 0, "%s", out);
    free(out);
    /* --export reads a clean stop's table: refused while A runs */
    const char *exp_argv[] = {spt_bin("broker"), "--instance", a,   "--state-dir", dir,
                              "--export",        "6-10",       NULL};
    cr_expect_neq(spt_run(exp_argv, T_RUN_MS, &out), 0);
    cr_expect(strstr(out, "is running") != NULL, "%s", out);
    free(out);
    uint32_t before[T_PRODUCTS + 1];
    sp_table_t *t = s_open(a);
    for (uint32_t id = 1; id <= T_PRODUCTS; id++) {
        before[id] = s_stock(t, id);
    }
    sp_table_close(&t);
    s_stop_clean(pa, a);

    /* stop, export, load, start */
    pid_t ex = spt_spawn(exp_argv, moved);
    cr_assert_eq(spt_wait(ex, T_RUN_MS), 0, "%s", spt_slurp(moved));
    char *csv = spt_slurp(moved);
    char logline[64];
    snprintf(logline, sizeof logline, "exported 5 product(s)");
    cr_expect(strstr(csv, logline) != NULL, "%s", csv);
    free(csv);
    /* the rows alone (the log line went to the same file): the CSV again */
    char rows[192];
    snprintf(rows, sizeof rows, "%s/rows.csv", dir);
    {
        FILE *in = fopen(moved, "r"), *o = fopen(rows, "w");
        cr_assert(in != NULL && o != NULL);
        char buf[512];
        while (fgets(buf, sizeof buf, in) != NULL) {
            if (strstr(buf, "broker[") == NULL) {
                fputs(buf, o);
            }
        }
        fclose(in);
        fclose(o);
    }
    const char *load_c[] = {"--catalogue", rows, "--products", "6-10", NULL};
    pid_t pc = s_broker(c, dir, load_c);
    cr_assert_gt(pc, 0, "shard C did not start from the exported rows");
    const char *narrow[] = {"--catalogue", cat, "--products", "1-5", NULL};
    pa = s_broker(a, dir, narrow);
    cr_assert_gt(pa, 0, "shard A did not restart with its range narrowed");

    /* every product's stock is where it was, in exactly one shard */
    sp_table_t *ta = s_open(a), *tc = s_open(c);
    for (uint32_t id = 1; id <= T_PRODUCTS; id++) {
        bool in_a = sp_table_row(ta, id) != NULL, in_c = sp_table_row(tc, id) != NULL;
        cr_expect(in_a != in_c, "product %u is in exactly one shard", id);
        cr_expect_eq(in_a ? s_stock(ta, id) : s_stock(tc, id), before[id], "product %u", id);
    }
    cr_expect_eq(sp_table_hdr(ta)->product_hi, 5);
    cr_expect_eq(sp_table_hdr(tc)->product_lo, 6);
    sp_table_close(&ta);
    sp_table_close(&tc);
    /* and the shop sells on across both, conserved on each */
    const char *after[] = {spt_bin("producer"), "--instance", list,      "--count", "600",
                           "--restock",         "0.3",        "--audit", NULL};
    cr_expect_eq(spt_run(after, T_RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "VIOLATED") == NULL, "%s", out);
    free(out);
    s_stop_clean(pa, a);
    s_stop_clean(pc, c);
    unlink(cat);
    spt_rmtree(dir);
}

Test(shard, a_restart_that_would_drop_saved_rows_is_refused, .timeout = 120)
{
    char a[64], dir[128], cat[128];
    spt_instance(a, sizeof a, "shdrop");
    cr_assert(spt_tmpdir(dir, sizeof dir, "shdrop"));
    spt_catalogue(cat, sizeof cat, T_PRODUCTS, 9);
    const char *whole[] = {"--catalogue", cat, NULL};
    pid_t pa = s_broker(a, dir, whole);
    cr_assert_gt(pa, 0);
    s_stop_clean(pa, a);
    /* narrowed with nothing exported: refused, the saved table untouched */
    const char *argv[] = {spt_bin("broker"), "--instance", a,   "--state-dir", dir,
                          "--products",      "1-5",        NULL};
    char *out = NULL;
    cr_expect_neq(spt_run(argv, T_RUN_MS, &out), 0);
    cr_expect(strstr(out, "holds 5 product(s) outside it") != NULL &&
                  strstr(out, "--export") != NULL,
              "%s", out);
    free(out);
    cr_expect(!spt_leftovers(a));
    /* the same range as before still starts, with every product */
    const char *again[] = {"--products", "1-10", NULL};
    pa = s_broker(a, dir, again);
    cr_assert_gt(pa, 0);
    sp_table_t *t = s_open(a);
    cr_expect_eq(sp_table_hdr(t)->product_count, T_PRODUCTS);
    sp_table_close(&t);
    s_stop_clean(pa, a);
    unlink(cat);
    spt_rmtree(dir);
}

/* ---- over NATS ------------------------------------------------------------- */

Test(shard, a_producer_over_nats_routes_to_each_shards_own_stream, .timeout = 180)
{
    t_pair_t p;
    char ta[32] = "shnatsa", tb[32] = "shnatsb";
    spt_instance(p.a, sizeof p.a, ta);
    spt_instance(p.b, sizeof p.b, tb);
    snprintf(p.list, sizeof p.list, "%s,%s", p.a, p.b);
    spt_nats_t nats;
    cr_assert(spt_nats_start(&nats, p.a), "nats-server did not start");
    spt_catalogue(p.catalogue, sizeof p.catalogue, T_PRODUCTS, T_STOCK);
    const char *ea[] = {"--nats", nats.url,    "--catalogue", p.catalogue, "--products",
                        "1-5",    "--workers", "1",           NULL};
    const char *eb[] = {"--nats", nats.url,    "--catalogue", p.catalogue, "--products",
                        "6-10",   "--workers", "1",           NULL};
    p.pa = spt_broker_start(p.a, ea);
    p.pb = p.pa > 0 ? spt_broker_start(p.b, eb) : -1;
    if (p.pb <= 0) {
        if (p.pa > 0) {
            spt_stop(p.pa);
        }
        unlink(p.catalogue);
        spt_nats_stop(&nats);
        cr_assert_fail("the shards' brokers did not start on nats");
    }
    /* the producer reaches the shards through the servers alone */
    const char *argv[] = {
        spt_bin("producer"), "--connect", nats.url, "--instance", p.list, "--count", "1200",
        "--restock",         "0.3",       "--json", NULL};
    char *out = NULL;
    int rc = spt_run(argv, T_RUN_MS, &out);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect_eq(spt_json_num(out, "sent"), 1200, "%s", out);
    cr_expect_eq(spt_json_num(out, "timed_out"), 0, "%s", out);
    cr_expect_eq(spt_json_num(out, "unknown_product"), 0, "%s", out);
    long long told_sold = spt_json_num(out, "units_sold");
    long long told_restocked = spt_json_num(out, "units_restocked");
    free(out);
    sp_table_t *ta_ = s_open(p.a), *tb_ = s_open(p.b);
    uint64_t sa, ra, sb, rb;
    s_units(ta_, &sa, &ra);
    s_units(tb_, &sb, &rb);
    cr_expect_gt(sa + ra, 0, "shard A got orders");
    cr_expect_gt(sb + rb, 0, "shard B got orders");
    cr_expect_eq((long long)(sa + sb), told_sold);
    cr_expect_eq((long long)(ra + rb), told_restocked);
    cr_expect_eq(sp_table_audit(ta_, NULL, 0), 0);
    cr_expect_eq(sp_table_audit(tb_, NULL, 0), 0);
    sp_table_close(&ta_);
    sp_table_close(&tb_);
    s_pair_stop(&p);
    spt_nats_stop(&nats);
}
