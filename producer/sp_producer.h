/*
 * sp_producer — simulated customers (bin/producer is a thin main over it;
 * the one-shot order is sp_once).
 *
 * A load run forks `customers` processes.  Each is an independent producer:
 * its own producer id (handed out by the table), its own link (and reply
 * queue on mq), its own schedule.  Orders follow an open-loop schedule
 * (constant or Poisson arrivals at the target rate, or as fast as the
 * in-flight window allows) and latency is measured from each order's
 * *scheduled* send time, so a stalled pipeline shows up as latency instead of
 * silently lowering the offered load (no coordinated omission).  Every order
 * waits for exactly one result; results for unknown or already-answered
 * orders are counted as unexpected.  The parent merges the customers'
 * counters, histograms and per-product ledgers.
 */
#ifndef SP_PRODUCER_H
#define SP_PRODUCER_H

#include "sp_load.h"

#include <stddef.h>
#include <stdint.h>

/* Runs the load: forks the customers, waits for them, merges.  `sold` and
 * `restocked` (length capacity+1, indexed by product id) receive the
 * per-product accepted units when cfg->ledger; *capacity gets the table's
 * capacity.  The caller frees both with free().  Returns 0 or a negative code
 * with *why. */
int sp_load_run(const sp_load_cfg_t *cfg, sp_load_stats_t *st, uint64_t **sold,
                uint64_t **restocked, uint32_t *capacity, char *why, size_t cap);

#endif
