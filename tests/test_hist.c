/*
 * Tests for sp_hist, the log-linear latency histogram.
 *
 * They pin down the three things the rest of stockpipe relies on: the bucket
 * layout (every 64-bit value lands in exactly one bucket, buckets tile the
 * whole range in order, and each is narrow enough for the promised error),
 * the percentile semantics documented in sp_hist.h (rank, clamping, p = 100,
 * the empty case), and the bookkeeping that lets processes combine results
 * (merge, record_n, mean).  Histograms are large (tens of KiB), so the tests
 * keep them in static storage; Criterion runs every test in its own process,
 * so nothing leaks between tests.
 */
#include "sp_rand.h"

#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "sp_hist.h"
#include "sp_time.h"

/* Size of the dense data set used for the accuracy checks. */
#define T_DENSE_COUNT 1000000u

/* Largest relative error the layout promises: one part in SUB_COUNT. */
#define T_MAX_REL_ERROR (1.0 / (double)SP_HIST_SUB_COUNT)

/* A value far above the linear block, with low bits set, for bucket checks. */
#define T_BIG_VALUE ((UINT64_C(1) << 40) + UINT64_C(12345))

/* Values and repeat counts for the merge and record_n checks. */
#define T_RANDOM_SEED  UINT64_C(0x9e3779b97f4a7c15)
#define T_RANDOM_COUNT 20000u
#define T_REPEAT_VALUE UINT64_C(123456789)
#define T_REPEAT_TIMES 1000u

/* Mean checks: 1..T_MEAN_COUNT averages (T_MEAN_COUNT + 1) / 2. */
#define T_MEAN_COUNT   1000u
#define T_MEAN_EPSILON 1e-9

/* 1..T_NOISE_COUNT with p = T_NOISE_P: the exact rank is a whole number that
 * naive floating point overshoots by a hair. */
#define T_NOISE_COUNT    1000u
#define T_NOISE_P        99.9
#define T_NOISE_EXPECTED UINT64_C(999)

/* p * count / 100 = 1100.0000000000002 in doubles even when multiplied first;
 * the exact rank is 1100. */
#define T_SLACK_COUNT UINT64_C(100000)
#define T_SLACK_P     1.1
#define T_SLACK_RANK  UINT64_C(1100)

/* A percentile so small that its rank rounds up to 1. */
#define T_TINY_P 1e-9

/* Histograms live in static storage: each one is SP_HIST_BUCKETS words. */
static sp_hist_t s_a;
static sp_hist_t s_b;
static sp_hist_t s_all;

/* Keeps random values in a latency-like range (up to about 2^40 ns) with an
 * occasional huge one, so merge sees both ordinary and extreme buckets. */
static uint64_t s_latency_like(uint64_t r)
{
    unsigned bits = (unsigned)(r % 41u);
    return bits == 0 ? UINT64_MAX - (r >> 32) : r >> (64u - bits);
}

Test(hist, empty_histogram_reports_zero_and_min_sentinel)
{
    sp_hist_init(&s_a);

    cr_expect_eq(s_a.count, 0);
    cr_expect_eq(s_a.min, UINT64_MAX);
    cr_expect_eq(s_a.max, 0);
    cr_expect_eq(s_a.sum_lo, 0);
    for (unsigned i = 0; i < SP_HIST_BUCKETS; i++) {
        cr_expect_eq(s_a.buckets[i], 0, "bucket %u not cleared", i);
    }
    cr_expect_eq(sp_hist_percentile(&s_a, 50.0), 0);
    cr_expect_eq(sp_hist_percentile(&s_a, 100.0), 0);
    cr_expect_eq(sp_hist_mean(&s_a), 0.0);
}

Test(hist, init_clears_a_used_histogram)
{
    sp_hist_init(&s_a);
    sp_hist_init(&s_b);
    sp_hist_record(&s_a, T_BIG_VALUE);
    cr_assert_eq(s_a.count, 1);

    sp_hist_init(&s_a);

    cr_expect_eq(memcmp(&s_a, &s_b, sizeof s_a), 0);
}

Test(hist, record_n_with_zero_count_changes_nothing)
{
    sp_hist_init(&s_a);
    sp_hist_init(&s_b);

    sp_hist_record_n(&s_a, T_BIG_VALUE, 0);

    cr_expect_eq(memcmp(&s_a, &s_b, sizeof s_a), 0);
    cr_expect_eq(s_a.min, UINT64_MAX, "recording nothing must not set min");
    cr_expect_eq(sp_hist_percentile(&s_a, 50.0), 0);
}

Test(hist, small_values_are_recorded_exactly)
{
    sp_hist_init(&s_a);
    for (uint64_t v = 0; v < SP_HIST_SUB_COUNT; v++) {
        cr_assert_eq(sp_hist_bucket_of(v), v);
        cr_expect_eq(sp_hist_bucket_low((unsigned)v), v);
        cr_expect_eq(sp_hist_bucket_high((unsigned)v), v);
        sp_hist_record(&s_a, v);
    }

    cr_expect_eq(s_a.min, 0);
    cr_expect_eq(s_a.max, SP_HIST_SUB_COUNT - 1u);
    /* Value v has rank v + 1 among 0..SUB_COUNT-1; p is chosen so that
     * p * count / 100 is exactly that rank. */
    for (unsigned rank = 1; rank <= SP_HIST_SUB_COUNT; rank++) {
        double p = 100.0 * rank / SP_HIST_SUB_COUNT;
        cr_expect_eq(sp_hist_percentile(&s_a, p), rank - 1u, "p=%g", p);
    }
}

Test(hist, min_and_max_track_the_extremes)
{
    const uint64_t values[] = {300, 7, T_BIG_VALUE, 1000};
    sp_hist_init(&s_a);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        sp_hist_record(&s_a, values[i]);
    }

    cr_expect_eq(s_a.count, sizeof values / sizeof values[0]);
    cr_expect_eq(s_a.min, 7);
    cr_expect_eq(s_a.max, T_BIG_VALUE);
    cr_expect_eq(sp_hist_percentile(&s_a, T_TINY_P), 7, "rank 1 is the minimum");
}

Test(hist, single_value_is_reported_exactly_at_every_percentile)
{
    const double ps[] = {T_TINY_P, 1.0, 50.0, 99.0, 99.999, 100.0};
    sp_hist_init(&s_a);
    sp_hist_record(&s_a, T_BIG_VALUE);

    /* The bucket is wider than one value, but the clamp to [min, max]
     * narrows it to the one value recorded. */
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        cr_expect_eq(sp_hist_percentile(&s_a, ps[i]), T_BIG_VALUE, "p=%g", ps[i]);
    }
}

Test(hist, bucket_bounds_contain_their_values)
{
    uint64_t values[] = {
        0, 1, 127, 128, 129, 255, 256, 257, 1000, T_BIG_VALUE, UINT64_MAX - 1u, UINT64_MAX,
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint64_t v = values[i];
        unsigned b = sp_hist_bucket_of(v);
        cr_assert_lt(b, SP_HIST_BUCKETS, "value %" PRIu64, v);
        cr_expect_leq(sp_hist_bucket_low(b), v, "value %" PRIu64, v);
        cr_expect_geq(sp_hist_bucket_high(b), v, "value %" PRIu64, v);
    }

    /* Every power of two and its neighbours, where an off-by-one in the
     * block arithmetic would show. */
    for (unsigned k = 0; k < 64; k++) {
        uint64_t p2 = UINT64_C(1) << k;
        uint64_t around[] = {p2 - 1u, p2, p2 + 1u};
        for (size_t j = 0; j < sizeof around / sizeof around[0]; j++) {
            uint64_t v = around[j];
            unsigned b = sp_hist_bucket_of(v);
            cr_assert_lt(b, SP_HIST_BUCKETS, "value %" PRIu64, v);
            cr_expect_leq(sp_hist_bucket_low(b), v, "value %" PRIu64, v);
            cr_expect_geq(sp_hist_bucket_high(b), v, "value %" PRIu64, v);
        }
    }
}

Test(hist, extreme_values_map_to_the_ends)
{
    cr_expect_eq(sp_hist_bucket_of(0), 0);
    cr_expect_eq(sp_hist_bucket_low(0), 0);
    cr_expect_eq(sp_hist_bucket_of(UINT64_MAX), SP_HIST_BUCKETS - 1u);
    cr_expect_eq(sp_hist_bucket_high(SP_HIST_BUCKETS - 1u), UINT64_MAX);

    sp_hist_init(&s_a);
    sp_hist_record(&s_a, UINT64_MAX);
    cr_expect_eq(s_a.buckets[SP_HIST_BUCKETS - 1u], 1);
    cr_expect_eq(s_a.max, UINT64_MAX);
    cr_expect_eq(sp_hist_percentile(&s_a, 50.0), UINT64_MAX);
}

Test(hist, buckets_are_contiguous_and_monotonic)
{
    for (unsigned b = 0; b < SP_HIST_BUCKETS; b++) {
        uint64_t low = sp_hist_bucket_low(b);
        uint64_t high = sp_hist_bucket_high(b);
        cr_expect_leq(low, high, "bucket %u", b);
        cr_expect_eq(sp_hist_bucket_of(low), b, "low end of bucket %u", b);
        cr_expect_eq(sp_hist_bucket_of(high), b, "high end of bucket %u", b);
        if (b > 0) {
            cr_expect_eq(low, sp_hist_bucket_high(b - 1u) + 1u, "gap or overlap before %u", b);
        }
    }
}

Test(hist, bucket_width_stays_below_the_relative_error_bound)
{
    /* Above the linear block, a bucket's width times SUB_COUNT never exceeds
     * its low end: that is the whole accuracy promise. */
    for (unsigned b = SP_HIST_SUB_COUNT; b < SP_HIST_BUCKETS; b++) {
        uint64_t low = sp_hist_bucket_low(b);
        uint64_t width = sp_hist_bucket_high(b) - low + 1u;
        cr_expect_leq(width, low / SP_HIST_SUB_COUNT, "bucket %u", b);
    }
}

Test(hist, percentile_error_stays_below_one_percent)
{
    /* p and the exact answer for the values 1..T_DENSE_COUNT. */
    static const struct {
        double p;
        uint64_t exact;
    } cases[] = {
        {50.0, 500000}, {90.0, 900000}, {99.0, 990000}, {99.9, 999000}, {100.0, T_DENSE_COUNT},
    };
    sp_hist_init(&s_a);
    for (uint64_t v = 1; v <= T_DENSE_COUNT; v++) {
        sp_hist_record(&s_a, v);
    }
    cr_assert_eq(s_a.count, T_DENSE_COUNT);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t got = sp_hist_percentile(&s_a, cases[i].p);
        uint64_t exact = cases[i].exact;
        /* The bucket's high end is reported, so the answer never undershoots. */
        cr_expect_geq(got, exact, "p=%g", cases[i].p);
        double rel = ((double)got - (double)exact) / (double)exact;
        cr_expect_lt(rel, T_MAX_REL_ERROR, "p=%g got %" PRIu64 " exact %" PRIu64, cases[i].p, got,
                     exact);
    }
}

Test(hist, full_percentile_is_the_exact_max)
{
    /* Maxima that sit in the middle of wide buckets, so only the clamp (or
     * the p = 100 shortcut) can give them back exactly. */
    const uint64_t maxima[] = {T_DENSE_COUNT + 1u, T_BIG_VALUE, UINT64_MAX - 12345u, UINT64_MAX};
    for (size_t i = 0; i < sizeof maxima / sizeof maxima[0]; i++) {
        sp_hist_init(&s_a);
        sp_hist_record(&s_a, 1);
        sp_hist_record(&s_a, maxima[i]);
        cr_assert_lt(sp_hist_bucket_low(sp_hist_bucket_of(maxima[i])), maxima[i]);

        cr_expect_eq(sp_hist_percentile(&s_a, 100.0), maxima[i]);
        cr_expect_eq(sp_hist_percentile(&s_a, 99.999), maxima[i], "clamped to max");
    }
}

Test(hist, percentile_rank_ignores_decimal_rounding_noise)
{
    sp_hist_init(&s_a);
    for (uint64_t v = 1; v <= T_NOISE_COUNT; v++) {
        sp_hist_record(&s_a, v);
    }
    cr_assert_eq(sp_hist_bucket_high(sp_hist_bucket_of(T_NOISE_EXPECTED)), T_NOISE_EXPECTED);

    /* 99.9 % of 1000 values is rank 999 exactly; rank 1000 would be wrong. */
    cr_expect_eq(sp_hist_percentile(&s_a, T_NOISE_P), T_NOISE_EXPECTED);
}

Test(hist, percentile_rank_absorbs_product_rounding)
{
    /* Ranks 1..T_SLACK_RANK hold one value and every later rank the next, so
     * a rank one too high changes the answer. */
    const uint64_t at_rank = 5;
    const uint64_t after_rank = at_rank + 1u;
    sp_hist_init(&s_a);
    sp_hist_record_n(&s_a, at_rank, T_SLACK_RANK);
    sp_hist_record_n(&s_a, after_rank, T_SLACK_COUNT - T_SLACK_RANK);
    cr_assert_eq(s_a.count, T_SLACK_COUNT);

    cr_expect_eq(sp_hist_percentile(&s_a, T_SLACK_P), at_rank);
}

Test(hist, merge_equals_recording_everything_in_one)
{
    uint64_t state = T_RANDOM_SEED;
    sp_hist_init(&s_a);
    sp_hist_init(&s_b);
    sp_hist_init(&s_all);
    for (unsigned i = 0; i < T_RANDOM_COUNT; i++) {
        uint64_t v = s_latency_like(sp_rand_next(&state));
        sp_hist_record(i % 3u == 0 ? &s_a : &s_b, v);
        sp_hist_record(&s_all, v);
    }
    cr_assert_gt(s_a.count, 0);
    cr_assert_gt(s_b.count, 0);

    sp_hist_merge(&s_a, &s_b);

    cr_expect_eq(memcmp(&s_a, &s_all, sizeof s_a), 0);
    cr_expect_eq(s_a.count, T_RANDOM_COUNT);
    cr_expect_eq(sp_hist_percentile(&s_a, 99.0), sp_hist_percentile(&s_all, 99.0));
}

Test(hist, merge_with_empty_changes_nothing)
{
    sp_hist_init(&s_a);
    sp_hist_init(&s_b);
    sp_hist_record(&s_a, 42);
    sp_hist_record(&s_a, T_BIG_VALUE);
    memcpy(&s_all, &s_a, sizeof s_a);

    sp_hist_merge(&s_a, &s_b);
    cr_expect_eq(memcmp(&s_a, &s_all, sizeof s_a), 0, "empty source");

    sp_hist_merge(&s_b, &s_a);
    cr_expect_eq(memcmp(&s_b, &s_all, sizeof s_b), 0, "empty destination");
}

Test(hist, record_n_equals_n_records)
{
    sp_hist_init(&s_a);
    sp_hist_init(&s_b);

    sp_hist_record_n(&s_a, T_REPEAT_VALUE, T_REPEAT_TIMES);
    sp_hist_record_n(&s_a, 3, 1);
    for (unsigned i = 0; i < T_REPEAT_TIMES; i++) {
        sp_hist_record(&s_b, T_REPEAT_VALUE);
    }
    sp_hist_record(&s_b, 3);

    cr_expect_eq(memcmp(&s_a, &s_b, sizeof s_a), 0);
    cr_expect_eq(s_a.count, T_REPEAT_TIMES + 1u);
}

Test(hist, mean_is_sum_over_count)
{
    sp_hist_init(&s_a);
    for (uint64_t v = 1; v <= T_MEAN_COUNT; v++) {
        sp_hist_record(&s_a, v);
    }
    cr_expect_float_eq(sp_hist_mean(&s_a), (T_MEAN_COUNT + 1.0) / 2.0, T_MEAN_EPSILON);

    /* record_n counts n times in the sum: (3 * 10 + 40) / 4. */
    sp_hist_init(&s_b);
    sp_hist_record_n(&s_b, 10, 3);
    sp_hist_record(&s_b, 40);
    cr_expect_float_eq(sp_hist_mean(&s_b), 17.5, T_MEAN_EPSILON);
}

/* --- coarse latency buckets (worker slots in the shared table) --------------- */

Test(hist, lat_buckets_are_monotonic_and_hold_their_values)
{
    unsigned prev = 0;
    for (uint64_t v = 0; v < ((uint64_t)1 << 40); v = v * 9 / 8 + 1) {
        unsigned b = sp_lat_bucket(v);
        cr_assert_lt(b, SP_LAT_BUCKETS);
        cr_assert_geq(b, prev, "bucket of %llu went down", (unsigned long long)v);
        cr_assert_leq(v, sp_lat_bucket_high(b), "%llu above its bucket's top",
                      (unsigned long long)v);
        if (b > 0 && b < SP_LAT_BUCKETS - 1) {
            cr_assert_gt(v, sp_lat_bucket_high(b - 1), "%llu fits the bucket below",
                         (unsigned long long)v);
            /* the upper bound overstates by less than 12.5 % (plus the unit) */
            cr_assert_leq(sp_lat_bucket_high(b) - v, v / 8 + 1024, "%llu", (unsigned long long)v);
        }
        prev = b;
    }
    cr_expect_eq(sp_lat_bucket(UINT64_MAX), SP_LAT_BUCKETS - 1);
    cr_expect_eq(sp_lat_bucket_high(SP_LAT_BUCKETS - 1), UINT64_MAX);
    cr_expect_eq(sp_lat_bucket(1023), 0);
    cr_expect_eq(sp_lat_bucket(1024), 1);
}

Test(hist, lat_percentiles_come_from_bucket_tops)
{
    uint64_t counts[SP_LAT_BUCKETS] = {0};
    cr_expect_eq(sp_lat_percentile(counts, 50), 0, "empty");
    for (int i = 0; i < 99; i++) {
        counts[sp_lat_bucket(100000)]++; /* 100 us */
    }
    counts[sp_lat_bucket(50000000)]++; /* one at 50 ms */
    uint64_t p50 = sp_lat_percentile(counts, 50);
    uint64_t p99 = sp_lat_percentile(counts, 99);
    uint64_t p100 = sp_lat_percentile(counts, 100);
    cr_expect(p50 >= 100000 && p50 < 112500 + 1024, "p50 %llu", (unsigned long long)p50);
    cr_expect_eq(p99, p50, "99 of 100 values are 100 us");
    cr_expect(p100 >= 50000000 && p100 < 56250000 + 1024, "max %llu", (unsigned long long)p100);
}

Test(hist, durations_are_printed_in_a_fitting_unit)
{
    char buf[16];
    sp_fmt_ns(buf, sizeof buf, 850);
    cr_expect_str_eq(buf, "850ns");
    sp_fmt_ns(buf, sizeof buf, 12345);
    cr_expect_str_eq(buf, "12.3us");
    sp_fmt_ns(buf, sizeof buf, 4560000);
    cr_expect_str_eq(buf, "4.56ms");
    sp_fmt_ns(buf, sizeof buf, 1230000000);
    cr_expect_str_eq(buf, "1.23s");
}

/* The sizes in /proc/PID/status, as the bench and the flood test read them:
 * this process has some resident memory, a field it lacks or a process
 * that is gone reads -1. */
Test(hist, a_process_status_size_is_read_in_kib)
{
    long rss = sp_proc_status_kb((int)getpid(), "VmRSS");
    long anon = sp_proc_status_kb((int)getpid(), "RssAnon");
    cr_expect_gt(rss, 0, "VmRSS %ld", rss);
    cr_expect(anon > 0 && anon <= rss, "RssAnon %ld of VmRSS %ld", anon, rss);
    cr_expect_eq(sp_proc_status_kb((int)getpid(), "VmNoSuchField"), -1);
    cr_expect_eq(sp_proc_status_kb((int)getpid(), "VmRS"), -1, "a prefix is not the field");
    cr_expect_eq(sp_proc_status_kb(0x7ffffff0, "VmRSS"), -1, "no such process");
}
