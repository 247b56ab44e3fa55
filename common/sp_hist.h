/*
 * sp_hist — latency histogram with log-linear buckets.
 *
 * Values are unsigned 64-bit (nanoseconds in practice).  Buckets are
 * HdrHistogram-shaped: values below 2^SP_HIST_SUB_BITS each get their own
 * bucket; above that, every power-of-two range [2^k, 2^(k+1)) is split into
 * 2^SP_HIST_SUB_BITS equal sub-buckets, so the relative error of any reported
 * percentile is below 2^-SP_HIST_SUB_BITS (< 0.8 % with 7 bits).  Recording
 * is O(1) with no allocation and no floating point; histograms from several
 * processes merge by adding counts, so a parent can combine its children's.
 *
 * The struct is plain data (no pointers), so it can be sent through a pipe
 * or stored in shared memory as is.
 *
 * Ownership: a histogram lives in the caller's storage (about 58 KiB: not
 * for a small stack).  Nothing fails, allocates or blocks.  Not atomic:
 * one thread records into a histogram at a time; combine threads' or
 * processes' histograms with sp_hist_merge.  The sp_lat_* functions are
 * pure; the counts they read are the caller's (workers keep theirs as
 * atomics in the table).
 */
#ifndef SP_HIST_H
#define SP_HIST_H

#include <stdint.h>

#define SP_HIST_SUB_BITS  7
#define SP_HIST_SUB_COUNT (1u << SP_HIST_SUB_BITS)
/* one linear block for [0, 2^SUB_BITS) and one per power of two above it */
#define SP_HIST_BUCKETS (SP_HIST_SUB_COUNT * (64 - SP_HIST_SUB_BITS + 1))

typedef struct {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t sum_lo; /* running sum (wraps after ~584 years of ns) */
    uint64_t buckets[SP_HIST_BUCKETS];
} sp_hist_t;

/* Empties the histogram (min is set to UINT64_MAX, everything else 0). */
void sp_hist_init(sp_hist_t *h);

/* Adds one value. */
void sp_hist_record(sp_hist_t *h, uint64_t value);

/* Adds n occurrences of one value. */
void sp_hist_record_n(sp_hist_t *h, uint64_t value, uint64_t n);

/* Adds every count of src into dst. */
void sp_hist_merge(sp_hist_t *dst, const sp_hist_t *src);

/* The value at percentile p (0 < p <= 100): the smallest recorded value v
 * such that at least p % of the values are <= v, reported as the highest
 * value of v's bucket, clamped to [min, max].  p = 100 returns max exactly.
 * Returns 0 for an empty histogram. */
uint64_t sp_hist_percentile(const sp_hist_t *h, double p);

/* Arithmetic mean, 0 when empty. */
double sp_hist_mean(const sp_hist_t *h);

/* Bucket index of a value and the lowest/highest value that bucket holds;
 * exposed for tests and for the benchmark's plots. */
unsigned sp_hist_bucket_of(uint64_t value);
uint64_t sp_hist_bucket_low(unsigned bucket);
uint64_t sp_hist_bucket_high(unsigned bucket);

/*
 * Coarse latency buckets, small enough to live in every worker's slot of the
 * shared table (the broker sums them for the monitor's p50/p99).  Values are
 * nanoseconds counted in units of 1024 ns; below 8 units each unit has its
 * bucket, above that every power of two is split into 8, so a bucket's upper
 * bound overstates a value by less than 12.5 %.  The last bucket holds
 * everything from about 60 s up.
 */
#define SP_LAT_BUCKETS 192

/* The bucket (0 .. SP_LAT_BUCKETS - 1) of a latency of `ns` nanoseconds. */
unsigned sp_lat_bucket(uint64_t ns);
/* Highest value (ns) bucket b holds; UINT64_MAX for the last one. */
uint64_t sp_lat_bucket_high(unsigned b);
/* Upper bound of the bucket holding percentile p (0 < p <= 100) of the
 * counts; 0 when they are all zero. */
uint64_t sp_lat_percentile(const uint64_t counts[SP_LAT_BUCKETS], double p);

#endif
