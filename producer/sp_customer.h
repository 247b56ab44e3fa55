/*
 * sp_customer — one simulated customer of a load run.
 *
 * A customer is an independent producer: its own client (sp_client: its
 * producer id, its link, and on mq its reply queue), its own schedule and
 * its own random stream.  Orders follow an open-loop schedule (constant or
 * Poisson arrivals at its share of the target rate, or as fast as the
 * in-flight window allows) and latency is measured from each order's
 * *scheduled* send time, so a stalled pipeline shows up as latency instead
 * of silently lowering the offered load (no coordinated omission).  Every
 * order waits for exactly one result; unanswered orders are resent with the
 * same (producer, seq), backing off, until the result timeout; results for
 * unknown or already-answered orders are counted as unexpected or late.
 * Customers reserve, then buy, release or abandon what they hold, restock
 * and inject malformed messages as the configuration says.
 *
 * The load generator (sp_loadgen) runs customers in forked processes or in
 * threads and merges what they count.
 *
 * In brief (sp_customer_run has the details): a customer owns its client,
 * ledger and buffers and releases them before it returns; the per-product
 * arrays it hands back are the caller's to free.  Errors are negative
 * codes with *why.  It blocks for the whole run, each wait bounded.  Any
 * number run at once, in threads or processes.
 */
#ifndef SP_CUSTOMER_H
#define SP_CUSTOMER_H

#include "sp_load.h"

#include <stddef.h>
#include <stdint.h>

/* Runs customer `index` (0 ..) of the load `cfg` in the calling thread:
 * connects, places orders until `quota` have been scheduled (0: no quota),
 * cfg->duration_s has passed or sp_signal_stopping(), then waits for the
 * outstanding answers within cfg->timeout_ms, and fills *st (which it
 * empties first).  With cfg->ledger, *sold and *restocked get malloc'd
 * arrays of the accepted units per product id (*capacity + 1 entries; the
 * caller frees them), else NULL; *capacity gets the table's capacity.
 * With cfg->ledger_dir, writes the ledger DIR/ledger-<producer id>.bin.
 *
 * Returns 0, or a negative code with *why: before the first order, the
 * client's codes and words (sp_client_open), the ledger's (sp_ledger_open),
 * SP_E_CSV_EMPTY (the table has no products) or -ENOMEM; during the run,
 * with "customer N: ...", -EPIPE (the broker is gone and its order path
 * stayed full for cfg->timeout_ms) or a link's error.  *st holds what was
 * counted either way.
 *
 * Blocks for the whole run; each wait is bounded (SP_SEND_TIMEOUT_MS,
 * at most 50 ms for results) so the stop flag is seen promptly.  Safe to run
 * many at once in threads or processes: each has its own client, stats and
 * ledger; cfg is only read. */
int sp_customer_run(const sp_load_cfg_t *cfg, unsigned index, uint64_t quota, sp_load_stats_t *st,
                    uint64_t **sold, uint64_t **restocked, uint32_t *capacity, char *why,
                    size_t cap);

#endif
