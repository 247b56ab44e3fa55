/*
 * sp_hist — latency histogram with log-linear (HdrHistogram-shaped) buckets.
 *
 * The bucket index space is cut into blocks of SP_HIST_SUB_COUNT buckets.
 * Block 0 is linear and holds the values 0 .. 2^SUB_BITS - 1 one per bucket.
 * Block b >= 1 covers the power-of-two range [2^k, 2^(k+1)) with
 * k = b + SUB_BITS - 1, split into SUB_COUNT equal sub-buckets of width
 * 2^(b - 1).  The top block (k = 63) ends exactly at UINT64_MAX, so the
 * layout needs 1 + (64 - SUB_BITS) blocks, which is what SP_HIST_BUCKETS
 * counts.
 *
 * Because every sub-bucket in block b starts at or above 2^k = SUB_COUNT *
 * 2^(b - 1) and is 2^(b - 1) wide, reporting a bucket's highest value instead
 * of the value itself is off by less than 1 / SUB_COUNT relative.  Index
 * arithmetic is a count-leading-zeros and a shift, so recording never
 * branches on data beyond "small or not", never allocates and never touches
 * floating point.  Floating point appears only in the read side
 * (percentile, mean), which runs rarely and off the hot path.
 */
#include "sp_hist.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>

/* Bits in the value type; the clz of a value tells its power-of-two range. */
#define S_VALUE_BITS 64u

/* Mask that keeps the sub-bucket position inside a block. */
#define S_SUB_MASK (SP_HIST_SUB_COUNT - 1u)

/* Percent that denotes "every value": percentile(100) is the maximum. */
static const double s_percent_all = 100.0;

/*
 * Rank slack for decimal percentiles.  p = 1.1 is not exactly representable,
 * so p * count / 100 can land a hair above a whole number (1100.0000000000002
 * for 100000 values) and ceil would then skip to the next rank.  A product that
 * exceeds a whole number by no more than this fraction of itself is taken as
 * that whole number.  For percentiles written with a few decimals a genuine
 * fraction is many orders of magnitude larger than this slack.
 */
static const double s_rank_slack = 1e-12;

_Static_assert(SP_HIST_BUCKETS == SP_HIST_SUB_COUNT * (S_VALUE_BITS - SP_HIST_SUB_BITS + 1u),
               "one linear block plus one block per power of two from 2^SUB_BITS to 2^63");

/*
 * Maps a value to its bucket.  Small values index the linear block directly;
 * for larger ones the top SUB_BITS + 1 significant bits (the leading one plus
 * SUB_BITS more) pick the sub-bucket, and the position of the leading one
 * picks the block.
 */
unsigned sp_hist_bucket_of(uint64_t value)
{
    if (value < SP_HIST_SUB_COUNT) {
        return (unsigned)value;
    }
    /* value >= SUB_COUNT > 0, so clz is defined and msb >= SUB_BITS. */
    unsigned msb = S_VALUE_BITS - 1u - (unsigned)__builtin_clzll(value);
    unsigned shift = msb - SP_HIST_SUB_BITS;
    unsigned block = shift + 1u;
    unsigned sub = (unsigned)(value >> shift) & S_SUB_MASK;
    return (block << SP_HIST_SUB_BITS) | sub;
}

/*
 * Lowest value of a bucket.  An index past the last bucket is a programming
 * error; release builds answer for the last bucket rather than shift by 64 or
 * more, which C leaves undefined.
 */
uint64_t sp_hist_bucket_low(unsigned bucket)
{
    assert(bucket < SP_HIST_BUCKETS);
    if (bucket >= SP_HIST_BUCKETS) {
        bucket = SP_HIST_BUCKETS - 1u;
    }
    unsigned block = bucket >> SP_HIST_SUB_BITS;
    uint64_t sub = bucket & S_SUB_MASK;
    if (block == 0) {
        return sub;
    }
    /* (SUB_COUNT + sub) < 2^(SUB_BITS + 1) and the shift is at most
     * 63 - SUB_BITS, so the result stays below 2^64. */
    return ((uint64_t)SP_HIST_SUB_COUNT + sub) << (block - 1u);
}

/*
 * Highest value of a bucket: its low end plus its width minus one.  Written
 * that way round so the last bucket yields UINT64_MAX without computing 2^64.
 */
uint64_t sp_hist_bucket_high(unsigned bucket)
{
    assert(bucket < SP_HIST_BUCKETS);
    if (bucket >= SP_HIST_BUCKETS) {
        bucket = SP_HIST_BUCKETS - 1u;
    }
    unsigned block = bucket >> SP_HIST_SUB_BITS;
    uint64_t low = sp_hist_bucket_low(bucket);
    if (block == 0) {
        return low;
    }
    uint64_t width = (uint64_t)1 << (block - 1u);
    return low + (width - 1u);
}

void sp_hist_init(sp_hist_t *h)
{
    assert(h != NULL);
    h->count = 0;
    h->min = UINT64_MAX;
    h->max = 0;
    h->sum_lo = 0;
    for (unsigned i = 0; i < SP_HIST_BUCKETS; i++) {
        h->buckets[i] = 0;
    }
}

void sp_hist_record(sp_hist_t *h, uint64_t value)
{
    sp_hist_record_n(h, value, 1);
}

/*
 * n = 0 leaves the histogram untouched, min and max included: recording
 * nothing must not make an empty histogram look as if it held a value.  The
 * sum wraps modulo 2^64 by design (see sum_lo in the header).
 */
void sp_hist_record_n(sp_hist_t *h, uint64_t value, uint64_t n)
{
    assert(h != NULL);
    if (n == 0) {
        return;
    }
    h->buckets[sp_hist_bucket_of(value)] += n;
    h->count += n;
    h->sum_lo += value * n;
    if (value < h->min) {
        h->min = value;
    }
    if (value > h->max) {
        h->max = value;
    }
}

/*
 * Merging an empty source changes nothing: its min is UINT64_MAX and its max
 * 0, which never beat the destination's.
 */
void sp_hist_merge(sp_hist_t *dst, const sp_hist_t *src)
{
    assert(dst != NULL && src != NULL);
    for (unsigned i = 0; i < SP_HIST_BUCKETS; i++) {
        dst->buckets[i] += src->buckets[i];
    }
    dst->count += src->count;
    dst->sum_lo += src->sum_lo;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

/*
 * The 1-based rank of the value at percentile p among count values:
 * ceil(p / 100 * count), at least 1 and at most count.  The product is formed
 * as p * count / 100 because a whole p times a whole count is exact in a
 * double, where p / 100 seldom is.  p <= 0 and NaN fall back to rank 1.
 */
static uint64_t s_rank_of(double p, uint64_t count)
{
    if (!(p > 0.0)) {
        return 1;
    }
    double exact = p * (double)count / s_percent_all;
    double whole = floor(exact);
    double rank = ceil(exact);
    if (exact - whole <= exact * s_rank_slack) {
        rank = whole;
    }
    if (rank < 1.0) {
        return 1;
    }
    if (rank >= (double)count) {
        return count;
    }
    return (uint64_t)rank;
}

/*
 * Walks the buckets in value order until the running count reaches the rank.
 * The top bucket's high end can exceed every recorded value, hence the clamp
 * to max; the clamp to min only guards a histogram whose buckets were edited
 * by hand.
 */
uint64_t sp_hist_percentile(const sp_hist_t *h, double p)
{
    assert(h != NULL);
    if (h->count == 0) {
        return 0;
    }
    if (p >= s_percent_all) {
        return h->max;
    }
    uint64_t rank = s_rank_of(p, h->count);
    uint64_t seen = 0;
    for (unsigned i = 0; i < SP_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t high = sp_hist_bucket_high(i);
            if (high < h->min) {
                return h->min;
            }
            if (high > h->max) {
                return h->max;
            }
            return high;
        }
    }
    /* Only reachable if the buckets disagree with count (a corrupted or
     * overflowed histogram); the maximum is the honest upper answer. */
    return h->max;
}

/* Uses sum_lo, so the mean is wrong once the sum has wrapped (see header). */
double sp_hist_mean(const sp_hist_t *h)
{
    assert(h != NULL);
    if (h->count == 0) {
        return 0.0;
    }
    return (double)h->sum_lo / (double)h->count;
}

/* Coarse buckets: units of 2^S_LAT_UNIT_SHIFT ns, 2^S_LAT_SUB_BITS per octave. */
#define S_LAT_UNIT_SHIFT 10u
#define S_LAT_SUB_BITS   3u
#define S_LAT_SUB        (1u << S_LAT_SUB_BITS)

unsigned sp_lat_bucket(uint64_t ns)
{
    uint64_t u = ns >> S_LAT_UNIT_SHIFT;
    if (u < S_LAT_SUB) {
        return (unsigned)u;
    }
    unsigned msb = S_VALUE_BITS - 1u - (unsigned)__builtin_clzll(u);
    unsigned sub = (unsigned)(u >> (msb - S_LAT_SUB_BITS)) & (S_LAT_SUB - 1u);
    unsigned b = (msb - S_LAT_SUB_BITS + 1u) * S_LAT_SUB + sub;
    return b < SP_LAT_BUCKETS ? b : SP_LAT_BUCKETS - 1u;
}

uint64_t sp_lat_bucket_high(unsigned b)
{
    if (b >= SP_LAT_BUCKETS - 1u) {
        return UINT64_MAX;
    }
    uint64_t high_u;
    if (b < S_LAT_SUB) {
        high_u = b;
    } else {
        unsigned shift = b / S_LAT_SUB - 1u;
        uint64_t low_u = (uint64_t)(S_LAT_SUB + b % S_LAT_SUB) << shift;
        high_u = low_u + ((uint64_t)1 << shift) - 1u;
    }
    return ((high_u + 1u) << S_LAT_UNIT_SHIFT) - 1u;
}

uint64_t sp_lat_percentile(const uint64_t counts[SP_LAT_BUCKETS], double p)
{
    uint64_t total = 0;
    for (unsigned b = 0; b < SP_LAT_BUCKETS; b++) {
        total += counts[b];
    }
    if (total == 0) {
        return 0;
    }
    double want = ceil(p * (double)total / s_percent_all * (1.0 - s_rank_slack));
    uint64_t rank = want < 1.0 ? 1u : (uint64_t)want;
    uint64_t seen = 0;
    for (unsigned b = 0; b < SP_LAT_BUCKETS; b++) {
        seen += counts[b];
        if (seen >= rank) {
            return sp_lat_bucket_high(b);
        }
    }
    return sp_lat_bucket_high(SP_LAT_BUCKETS - 1u);
}
