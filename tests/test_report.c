/*
 * Tests for sp_report, what the producer prints.  Scripts, tests and users
 * read these lines, so the tests pin them byte for byte: the text report,
 * its malformed-input and paced variants, the JSON line, and each outcome
 * of a one-shot order.
 */
#include "sp_report.h"

#include "sp_commit.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_LATENCY_NS 1000

/* A run of ten orders over two seconds, each answered in 1 us. */
static void s_run(sp_load_cfg_t *cfg, sp_load_stats_t *st)
{
    sp_load_defaults(cfg);
    sp_load_stats_init(st);
    st->sent = 10;
    st->status[SP_STATUS_ACCEPTED] = 6;
    st->status[SP_STATUS_OUT_OF_STOCK] = 2;
    st->status[SP_STATUS_INVALID] = 1;
    st->status[SP_STATUS_NO_HOLD] = 1;
    st->retried = 3;
    st->duplicates = 1;
    st->late = 2;
    st->units_sold = 6;
    st->units_restocked = 4;
    st->start_ns = 1000000000ull;
    st->end_ns = 3000000000ull;
    for (int i = 0; i < 10; i++) {
        sp_hist_record(&st->latency, T_LATENCY_NS);
    }
}

/* The run paced at 100/s (Poisson) with malformed input mixed in. */
static void s_hostile(sp_load_cfg_t *cfg, sp_load_stats_t *st)
{
    s_run(cfg, st);
    cfg->malformed_every = 5;
    cfg->rate = 100;
    cfg->arrival = SP_ARRIVAL_POISSON;
    st->malformed_msgs = 3;
    st->malformed_orders = 2;
    st->malformed_refused = 2;
}

/* A stream into memory; s_close gives back what was written (malloc'd). */
typedef struct {
    char *buf;
    size_t len;
    FILE *f;
} t_out_t;

static void s_open(t_out_t *o)
{
    o->f = open_memstream(&o->buf, &o->len);
    cr_assert_not_null(o->f);
}

static char *s_close(t_out_t *o)
{
    fclose(o->f);
    return o->buf;
}

#define T_COMMON_TEXT                                                                              \
    "orders      sent 10  accepted 6  out of stock 2  unknown product 0  invalid 1  duplicate 0  " \
    "conflict 0  no hold 1  no room 0\n"                                                           \
    "failures    timed out 0  send failed 0  unexpected results 0\n"                               \
    "retries     resent 3  answered from the dedup record 1  late answers 2\n"                     \
    "units       sold 6  restocked 4\n"
#define T_LATENCY_TEXT                                                                             \
    "latency     p50 1.0 us  p90 1.0 us  p99 1.0 us  p99.9 1.0 us  max 1.0 us  (from scheduled "   \
    "send time)\n"

Test(report, the_text_report_keeps_its_lines)
{
    sp_load_cfg_t cfg;
    sp_load_stats_t st;
    s_run(&cfg, &st);
    t_out_t o;
    s_open(&o);
    sp_report_text(o.f, &cfg, &st);
    char *got = s_close(&o);
    cr_expect_str_eq(got, T_COMMON_TEXT "throughput  5.0 orders/s answered over 2.00 s (as fast as "
                                        "possible)\n" T_LATENCY_TEXT);
    free(got);
}

Test(report, the_text_report_names_injected_input_and_the_offered_rate)
{
    sp_load_cfg_t cfg;
    sp_load_stats_t st;
    s_hostile(&cfg, &st);
    t_out_t o;
    s_open(&o);
    sp_report_text(o.f, &cfg, &st);
    char *got = s_close(&o);
    cr_expect_str_eq(got, T_COMMON_TEXT "malformed   injected 3 messages (to be dead-lettered) "
                                        "and 2 orders (2 answered as refused)\n"
                                        "throughput  5.0 orders/s answered over 2.00 s (offered "
                                        "100.0/s, poisson)\n" T_LATENCY_TEXT);
    free(got);
}

Test(report, the_json_report_is_one_line_with_every_key)
{
    sp_load_cfg_t cfg;
    sp_load_stats_t st;
    s_hostile(&cfg, &st);
    t_out_t o;
    s_open(&o);
    sp_report_json(o.f, &cfg, &st, NULL);
    char *got = s_close(&o);
    cr_expect_str_eq(
        got,
        "{\"instance\":\"stockpipe\",\"customers\":1,\"rate\":100.000,\"arrival\":\"poisson\","
        "\"batch\":32,\"sent\":10,\"accepted\":6,\"out_of_stock\":2,\"unknown_product\":0,"
        "\"invalid\":1,\"duplicate\":0,\"timed_out\":0,\"send_failed\":0,\"retried\":3,"
        "\"duplicates\":1,\"late\":2,\"conflict\":0,\"no_hold\":1,\"no_room\":0,\"unexpected\":0,"
        "\"units_sold\":6,\"units_restocked\":4,\"malformed_msgs\":3,\"malformed_orders\":2,"
        "\"malformed_refused\":2,\"seconds\":2.000000,\"throughput\":5.000,"
        "\"latency_ns\":{\"p50\":1000,\"p90\":1000,\"p99\":1000,\"p999\":1000,\"max\":1000,"
        "\"mean\":1000.0}}\n");
    free(got);
}

/* The one-shot outcome of `req` answered `res`, and whether it was accepted. */
static char *s_once(const sp_once_t *req, const sp_result_t *res, bool *accepted)
{
    t_out_t o;
    s_open(&o);
    *accepted = sp_report_once(o.f, req, res, 42);
    return s_close(&o);
}

Test(report, an_accepted_reserve_says_how_to_buy_or_release_it)
{
    sp_once_t req = {.type = SP_ORDER_RESERVE, .product = 3, .qty = 2};
    sp_result_t res = {.status = SP_STATUS_ACCEPTED, .stock_after = 8};
    bool ok;
    char *got = s_once(&req, &res, &ok);
    cr_expect(ok);
    char want[256];
    snprintf(want, sizeof want,
             "held: product 3, quantity 2 for %d s as producer 42, stock left 8\n"
             "  buy it:     producer buy-held 3 2 42\n"
             "  give it up: producer release 3 2 42\n",
             SP_HOLD_DEFAULT_S);
    cr_expect_str_eq(got, want);
    free(got);
}

Test(report, accepted_orders_say_what_happened)
{
    static const struct {
        unsigned type;
        const char *want;
    } cases[] = {
        {SP_ORDER_PURCHASE, "bought: product 3, quantity 2: accepted, stock left 8\n"},
        {SP_ORDER_RESTOCK, "restocked: product 3, quantity 2: accepted, stock left 8\n"},
        {SP_ORDER_BUY_HELD, "bought the held units: product 3, quantity 2\n"},
        {SP_ORDER_RELEASE, "released: product 3, quantity 2 back in stock, now 8\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sp_once_t req = {.type = cases[i].type, .product = 3, .qty = 2};
        sp_result_t res = {.status = SP_STATUS_ACCEPTED, .stock_after = 8};
        bool ok;
        char *got = s_once(&req, &res, &ok);
        cr_expect(ok, "type %u", cases[i].type);
        cr_expect_str_eq(got, cases[i].want);
        free(got);
    }
}

Test(report, a_duplicate_reports_the_first_copys_outcome)
{
    sp_once_t req = {.type = SP_ORDER_PURCHASE, .product = 3, .qty = 2};
    sp_result_t res = {
        .status = SP_STATUS_DUPLICATE, .original = SP_STATUS_OUT_OF_STOCK, .stock_after = 1};
    bool ok;
    char *got = s_once(&req, &res, &ok);
    cr_expect_not(ok);
    cr_expect_str_eq(got, "not enough stock: product 3 has 1, wanted 2\n");
    free(got);
}

Test(report, refusals_name_their_reason)
{
    sp_once_t req = {.type = SP_ORDER_BUY_HELD, .product = 3, .qty = 2, .as_producer = 42};
    sp_result_t res = {.status = SP_STATUS_NO_HOLD};
    bool ok;
    char *got = s_once(&req, &res, &ok);
    cr_expect_not(ok);
    cr_expect_str_eq(got, "refused: no live hold of product 3, quantity 2 for that producer "
                          "(expired, bought, released or never made; or one already)\n");
    free(got);

    res.status = SP_STATUS_UNKNOWN_PRODUCT;
    got = s_once(&req, &res, &ok);
    cr_expect_not(ok);
    cr_expect_str_eq(got, "refused: product 3, quantity 2: unknown_product\n");
    free(got);
}

/* Latencies read in the unit that suits them (a p99 of 143654.9 us reads
 * 143.7 ms), each percentile on its own. */
Test(report, latencies_read_in_the_unit_that_suits_them)
{
    sp_load_cfg_t cfg;
    sp_load_stats_t st;
    s_run(&cfg, &st);
    sp_hist_init(&st.latency);
    sp_hist_record(&st.latency, 800); /* ns */
    for (int i = 0; i < 80; i++) {
        sp_hist_record(&st.latency, 250000); /* 250 us */
    }
    for (int i = 0; i < 18; i++) {
        sp_hist_record(&st.latency, 143654900); /* 143.7 ms */
    }
    sp_hist_record(&st.latency, 2050000000ull); /* 2.05 s */
    t_out_t o;
    s_open(&o);
    sp_report_text(o.f, &cfg, &st);
    char *got = s_close(&o);
    const char *lat = strstr(got, "latency     ");
    cr_assert_not_null(lat, "%s", got);
    cr_expect(strstr(lat, "p50 250.") != NULL && strstr(lat, " us  p90 ") != NULL, "%s", lat);
    cr_expect(strstr(lat, "p99 143.") != NULL && strstr(lat, " ms  p99.9 ") != NULL, "%s", lat);
    cr_expect(strstr(lat, "max 2.05 s") != NULL, "%s", lat);
    free(got);
}

/* --json with more members (the producer's checks): still one object. */
Test(report, the_json_report_takes_more_members_inside_its_object)
{
    sp_load_cfg_t cfg;
    sp_load_stats_t st;
    s_run(&cfg, &st);
    t_out_t o;
    s_open(&o);
    sp_report_json(o.f, &cfg, &st, "\"checks\":{\"ok\":true,\"lines\":[]}");
    char *got = s_close(&o);
    size_t n = strlen(got);
    cr_assert_gt(n, 2);
    cr_expect_eq(got[0], '{');
    cr_expect_str_eq(got + n - strlen(",\"checks\":{\"ok\":true,\"lines\":[]}}\n"),
                     ",\"checks\":{\"ok\":true,\"lines\":[]}}\n", "%s", got);
    free(got);
}

/* --max-p99, --min-rate, --max-timeouts: each limit says whether it held,
 * and the answer is false when one failed.  The run: 10 orders over 2 s
 * (5/s), p99 1 us, none timed out. */
Test(report, thresholds_say_which_held)
{
    sp_load_cfg_t cfg;
    sp_load_stats_t st;
    s_run(&cfg, &st);
    sp_thresholds_t t;
    sp_thresholds_none(&t);
    cr_expect_not(sp_thresholds_any(&t));
    t_out_t o;
    s_open(&o);
    cr_expect(sp_report_thresholds(o.f, &t, &st, false), "no limit never fails");
    char *got = s_close(&o);
    cr_expect_str_eq(got, "", "no limit, no line");
    free(got);

    t.max_p99_ns = 2000; /* 1 us <= 2 us: held */
    t.min_rate = 6;      /* 5/s < 6/s: failed */
    t.max_timeouts = 0;  /* 0 <= 0: held */
    s_open(&o);
    cr_expect_not(sp_report_thresholds(o.f, &t, &st, false));
    got = s_close(&o);
    cr_expect_str_eq(got, "thresholds  p99 1.0 us <= 2.0 us held, rate 5.0/s >= 6.0/s FAILED, "
                          "timed out 0 <= 0 held  (exit 4)\n");
    free(got);

    t.min_rate = 5;
    s_open(&o);
    cr_expect(sp_report_thresholds(o.f, &t, &st, true));
    got = s_close(&o);
    cr_expect_str_eq(got, "\"thresholds\":{\"ok\":true,"
                          "\"max_p99_ns\":{\"limit\":2000,\"value\":1000,\"ok\":true},"
                          "\"min_rate\":{\"limit\":5.000,\"value\":5.000,\"ok\":true},"
                          "\"max_timeouts\":{\"limit\":0,\"value\":0,\"ok\":true}}");
    free(got);

    st.timed_out = 1; /* one over the limit */
    s_open(&o);
    cr_expect_not(sp_report_thresholds(o.f, &t, &st, false));
    free(s_close(&o));
    st.timed_out = 0;
    t.max_p99_ns = 999; /* just below the p99 */
    s_open(&o);
    cr_expect_not(sp_report_thresholds(o.f, &t, &st, false));
    free(s_close(&o));
}

/* A run that answered nothing has no p99 to hold under a limit: it fails. */
Test(report, an_empty_run_fails_a_latency_limit)
{
    sp_load_cfg_t cfg;
    sp_load_stats_t st;
    sp_load_defaults(&cfg);
    sp_load_stats_init(&st);
    sp_thresholds_t t;
    sp_thresholds_none(&t);
    t.max_p99_ns = 1000000;
    t_out_t o;
    s_open(&o);
    cr_expect_not(sp_report_thresholds(o.f, &t, &st, false));
    free(s_close(&o));
}

/* The .hgrm table, as HdrHistogram writes it: header, a line per level
 * (0, 10 %, ... 50 %, then 55 %, 60 % ...: five steps per halving of the
 * distance to 100 %), values in ms rising with the levels, the running
 * count, the 100 % line, and the footer's count and max. */
Test(report, the_hgrm_table_has_hdrhistograms_levels_and_footer)
{
    sp_hist_t *h = malloc(sizeof *h);
    cr_assert_not_null(h);
    sp_hist_init(h);
    for (uint64_t us = 1; us <= 1000; us++) {
        sp_hist_record(h, us * 1000); /* 1 us .. 1 ms, one each */
    }
    t_out_t o;
    s_open(&o);
    sp_report_hgrm(o.f, h);
    char *got = s_close(&o);
    const char *p = got;
    cr_assert(strncmp(p, "       Value     Percentile TotalCount 1/(1-Percentile)\n\n", 57) == 0,
              "%s", got);
    p += 57;
    static const double levels[] = {0,    0.1, 0.2,  0.3,   0.4, 0.5,   0.55, 0.6,
                                    0.65, 0.7, 0.75, 0.775, 0.8, 0.825, 0.85, 0.875};
    double prev_v = -1;
    unsigned long long prev_n = 0;
    size_t lines = 0;
    for (;;) {
        double v, pct, inv;
        unsigned long long n;
        int used = 0;
        int got_n = sscanf(p, "%lf %lf %llu %lf\n%n", &v, &pct, &n, &inv, &used);
        if (got_n != 4) {
            break;
        }
        if (lines < sizeof levels / sizeof levels[0]) {
            cr_expect(pct > levels[lines] - 1e-9 && pct < levels[lines] + 1e-9,
                      "line %zu: level %.12f, not %.3f", lines, pct, levels[lines]);
        }
        cr_expect_geq(v, prev_v, "values rise with the levels");
        cr_expect_geq(n, prev_n, "the running count rises");
        cr_expect(inv > 1 / (1 - pct) - 0.01 && inv < 1 / (1 - pct) + 0.01);
        if (pct > 0.5 - 1e-9 && pct < 0.5 + 1e-9) {
            /* the median of 1..1000 us, within the histogram's 0.8 % */
            cr_expect(v > 0.496 && v < 0.505, "median %.3f ms", v);
        }
        prev_v = v;
        prev_n = n;
        p += used;
        lines++;
    }
    cr_expect_gt(lines, 30, "a line for every level up to the last answer");
    double v, pct;
    unsigned long long n;
    int used = 0;
    cr_assert_eq(sscanf(p, "%lf %lf %llu\n%n", &v, &pct, &n, &used), 3, "the 100 %% line: %s", p);
    cr_expect(pct == 1.0 && n == 1000 && v > 0.999 && v < 1.001, "%s", p);
    p += used;
    cr_expect_str_eq(p, "#[Mean    =        0.500, StdDeviation   =        0.289]\n"
                        "#[Max     =        1.000, Total count    =         1000]\n"
                        "#[Buckets =           58, SubBuckets     =          128]\n");
    free(got);
    free(h);
}

/* The progress lines: text for people, JSON Lines and CSV (after its
 * header) with the same fields. */
Test(report, progress_lines_in_each_format)
{
    sp_load_tick_t t = {.elapsed_s = 2.5,
                        .interval_s = 1,
                        .sent = 300,
                        .answered = 290,
                        .accepted = 280,
                        .timed_out = 1,
                        .in_flight = 9,
                        .rate = 120,
                        .p50_ns = 54300,
                        .p99_ns = 1500000};
    t_out_t o;
    s_open(&o);
    sp_report_tick(o.f, &t, SP_TICK_TEXT, false);
    sp_report_tick_header(o.f, SP_TICK_JSON);
    sp_report_tick(o.f, &t, SP_TICK_JSON, false);
    sp_report_tick_header(o.f, SP_TICK_CSV);
    sp_report_tick(o.f, &t, SP_TICK_CSV, false);
    char *got = s_close(&o);
    cr_expect_str_eq(got,
                     "[   2.5s]       120 orders/s  answered 290 (accepted 280)  timed out 1  "
                     "in flight 9  p50 54.3 us  p99 1.5 ms\n"
                     "{\"elapsed_s\":2.500,\"sent\":300,\"answered\":290,\"accepted\":280,"
                     "\"timed_out\":1,\"in_flight\":9,\"rate\":120.0,\"p50_ns\":54300,"
                     "\"p99_ns\":1500000}\n"
                     "elapsed_s,sent,answered,accepted,timed_out,in_flight,rate,p50_ns,p99_ns\n"
                     "2.500,300,290,280,1,9,120.0,54300,1500000\n");
    free(got);
}
