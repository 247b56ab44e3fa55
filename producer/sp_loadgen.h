/*
 * sp_loadgen — the producer role's load generator: simulated customers
 * against a running instance (bin/producer without a verb is a thin main
 * over it; the bench drives it too).
 *
 * A run starts cfg->customers customers (sp_customer) as forked processes,
 * or as threads of this process when cfg->threads (the bench's inproc://
 * cells, where everything shares one process), gives each its share of
 * cfg->count, waits for them and merges their counters, latency histograms
 * and, with cfg->ledger, their per-product accepted units (the audit's
 * input, sp_audit.h).  A forked customer reports through a pipe, so one that
 * dies without reporting is named instead of hanging the run.
 *
 * The role object in czmq's shape: sp_loadgen_new, sp_loadgen_run (again
 * if wanted: each run starts afresh), the accessors for what the last run
 * counted, sp_loadgen_destroy.  Ownership: the object copies the
 * configuration but borrows its strings (instance, ledger_dir, cert), which
 * must outlive it; what the accessors return belongs to the object and is
 * valid until the next run or destroy.  Errors: negative codes with a
 * one-line *why.  Blocking: sp_loadgen_run, until every customer has
 * ended.  One thread uses an object; a run forks (use it before
 * starting threads of your own, or with cfg->threads) and stops early, like
 * every customer, once sp_signal_stopping() says so.
 */
#ifndef SP_LOADGEN_H
#define SP_LOADGEN_H

#include "sp_load.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sp_loadgen sp_loadgen_t;

/* A load generator for `cfg` (copied).  Returns NULL with errno (ENOMEM). */
sp_loadgen_t *sp_loadgen_new(const sp_load_cfg_t *cfg);

/* Runs the load once: starts the customers, waits for them all, merges.
 * Returns 0, or a negative code with *why: SP_E_USAGE (customers outside
 * 1 .. SP_CUSTOMERS_MAX, or neither a count nor a duration), a customer's
 * code and words (sp_customer_run; the first that failed), -errno when a
 * customer could not be started, -EPIPE or -ENOMEM when one died before
 * reporting.  What the customers that reported counted is merged either
 * way.  Blocks until every customer has ended. */
int sp_loadgen_run(sp_loadgen_t *self, char *why, size_t cap);

/* What the last run counted (all zero before the first). */
const sp_load_stats_t *sp_loadgen_stats(const sp_loadgen_t *self);

/* With cfg->ledger, the units each product (by id, 0 .. capacity) was sold
 * and restocked in accepted orders of the last run; NULL otherwise, or
 * when no customer reported them. */
const uint64_t *sp_loadgen_sold(const sp_loadgen_t *self);
const uint64_t *sp_loadgen_restocked(const sp_loadgen_t *self);

/* With cfg->ledger, the table's capacity as the customers found it (the
 * arrays above hold capacity + 1 entries); 0 otherwise. */
uint32_t sp_loadgen_capacity(const sp_loadgen_t *self);

typedef void(sp_load_tick_fn)(void *ctx, const sp_load_tick_t *tick);

/* Asks the next runs for a tick every `interval_s` seconds (> 0): `fn`
 * gets it with `ctx`, from a thread of the load generator's own while
 * sp_loadgen_run blocks (never two at once; none after the run returns).
 * fn NULL: no ticks (the default). */
void sp_loadgen_on_tick(sp_loadgen_t *self, double interval_s, sp_load_tick_fn *fn, void *ctx);

/* Frees the object and what it counted.  NULL-safe, nulls the pointer. */
void sp_loadgen_destroy(sp_loadgen_t **self_p);

#endif
