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

/* The outcome of the one-shot order *req, answered *res as `producer`: what
 * was bought, restocked, held (with the commands that buy or release the
 * hold) or released, or why it was refused.  A duplicate's original outcome
 * counts.  Returns true when the order was accepted. */
bool sp_report_once(FILE *out, const sp_once_t *req, const sp_result_t *res, uint32_t producer);

#endif
