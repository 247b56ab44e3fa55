/*
 * sp_report — what the producer prints: a load run's report, as text for
 * people or as one JSON line for scripts and tests, and the outcome of a
 * one-shot order.
 *
 * These lines are an interface: tests, the chaos scripts and users' scripts
 * read them (the JSON keys, the "orders ... accepted N" words), so a change
 * here is a change of format.
 *
 * The functions only format: they borrow what they are given, write to the
 * stream (blocking only as it does), cannot fail themselves and leave the
 * stream's errors to the caller.
 * Safe from any thread on a stream it owns.
 */
#ifndef SP_REPORT_H
#define SP_REPORT_H

#include "sp_load.h"
#include "sp_once.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The load report for people: orders by outcome, failures, resends, units,
 * injected malformed input (when there was any), throughput and latency
 * percentiles (in the unit that reads best: ns, us, ms or s), one subject
 * per line. */
void sp_report_text(FILE *out, const sp_load_cfg_t *cfg, const sp_load_stats_t *st);

/* The same as one JSON object on one line; `extra` (NULL: none) is more
 * members of that object, already JSON ("\"checks\":{...}"). */
void sp_report_json(FILE *out, const sp_load_cfg_t *cfg, const sp_load_stats_t *st,
                    const char *extra);

/* How progress lines are written: for people (one line), JSON Lines or CSV
 * (for plotting a run over time). */
typedef enum { SP_TICK_TEXT = 0, SP_TICK_JSON = 1, SP_TICK_CSV = 2 } sp_tick_format_t;

/* The CSV header line that goes before the first SP_TICK_CSV line; nothing
 * for the other formats. */
void sp_report_tick_header(FILE *out, sp_tick_format_t format);

/* One progress line for `tick` (no newline for SP_TICK_TEXT when
 * `in_place`: a terminal's line rewritten each interval). */
void sp_report_tick(FILE *out, const sp_load_tick_t *tick, sp_tick_format_t format, bool in_place);

/* Limits a run must keep, k6's thresholds: the run's exit code says whether
 * they held.  A zero field (max_timeouts: negative) is no limit. */
typedef struct {
    uint64_t max_p99_ns;  /* --max-p99: the 99th percentile latency at most this */
    double min_rate;      /* --min-rate: answered orders/s at least this */
    int64_t max_timeouts; /* --max-timeouts: orders timed out at most this; < 0: none */
} sp_thresholds_t;

/* No limits: what sp_thresholds_none() fills in. */
void sp_thresholds_none(sp_thresholds_t *t);

/* Whether any limit is set. */
bool sp_thresholds_any(const sp_thresholds_t *t);

/* Holds the run `st` against the limits `t` and says which held: as one
 * text line ("thresholds  p99 5.2 ms <= 2.0 ms FAILED  ...") or, with
 * `json`, as a member of the report's object ("\"thresholds\":{...}",
 * no leading comma).  Writes nothing when no limit is set.  Returns true
 * when every limit set held. */
bool sp_report_thresholds(FILE *out, const sp_thresholds_t *t, const sp_load_stats_t *st,
                          bool json);

/* The latency distribution `h` (nanoseconds) in HdrHistogram's percentile
 * distribution text (the .hgrm table wrk2 prints and HdrHistogram's
 * plotter reads): values in milliseconds, five percentile steps per halving
 * of the distance to 100 %, then the mean, deviation, max and count lines.
 * An empty histogram writes the header and the footer only. */
void sp_report_hgrm(FILE *out, const sp_hist_t *h);

/* The outcome of the one-shot order *req, answered *res as `producer`: what
 * was bought, restocked, held (with the commands that buy or release the
 * hold) or released, or why it was refused.  A duplicate's original outcome
 * counts.  Returns true when the order was accepted. */
bool sp_report_once(FILE *out, const sp_once_t *req, const sp_result_t *res, uint32_t producer);

#endif
