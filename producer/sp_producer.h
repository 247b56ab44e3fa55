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

#include "sp_client.h"
#include "sp_hist.h"
#include "sp_table.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SP_CUSTOMERS_MAX   256
#define SP_WINDOW_DEFAULT  1024 /* orders in flight per customer */
#define SP_CUSTOMER_HOLDS  64   /* holds one customer follows up */
#define SP_CUSTOMER_HOLD_S 5    /* how long a customer's hold lasts */

typedef enum { SP_ARRIVAL_FAST = 0, SP_ARRIVAL_CONSTANT = 1, SP_ARRIVAL_POISSON = 2 } sp_arrival_t;
typedef enum { SP_PICK_UNIFORM = 0, SP_PICK_ZIPF = 1 } sp_pick_t;

typedef struct {
    const char *instance;
    unsigned customers; /* processes, 1 .. SP_CUSTOMERS_MAX */
    sp_arrival_t arrival;
    double rate;       /* orders/s for the whole run (all customers); 0 = fast */
    double duration_s; /* stop scheduling after this long (0 = no limit) */
    uint64_t count;    /* stop after this many orders in all (0 = no limit) */
    sp_pick_t pick;
    double zipf_s;        /* Zipf exponent (> 0) */
    double restock_ratio; /* fraction of orders that are restocks, 0 .. 1 */
    /* fraction of orders that reserve (hold) units for hold_s seconds; each
     * accepted hold is later bought (70 %), released (20 %) or left to
     * expire (10 %) */
    double hold_ratio;
    unsigned hold_s;
    uint32_t qty_min, qty_max;
    unsigned batch;  /* orders per message */
    unsigned window; /* orders in flight per customer */
    int timeout_ms;  /* give up on an order (fate unknown: timed out) after this */
    int retry_ms;    /* resend an unanswered order after this, doubling; 0 = never */
    uint64_t seed;
    bool ledger; /* keep per-product accepted units (for the audit) */
    /* customers as threads of this process instead of forked processes
     * (the benchmark's inproc:// cells, where everything shares one process) */
    bool threads;
    /* write every order's outcome to DIR/ledger-<producer id>.bin (the chaos
     * checker's input, sp_ledger.h); NULL: none */
    const char *ledger_dir;
    /* hostile-input testing: after every `malformed_every`-th order message
     * send one malformed message of its own (garbage, truncated, wrong magic,
     * version or kind, a count that lies, or one order with a field out of
     * range); 0 = never.  See sp_load_stats_t.malformed_* */
    unsigned malformed_every;
    /* --cert: this producer's secret certificate (sp_curve.h), needed when
     * the instance's order endpoint is a CURVE server (its table header
     * holds the broker's key); NULL: none */
    const char *cert;
} sp_load_cfg_t;

typedef struct {
    uint64_t sent;                    /* orders handed to the transport */
    uint64_t status[SP_STATUS_COUNT]; /* results by status */
    uint64_t timed_out;               /* no result within timeout */
    uint64_t send_failed;             /* never left (transport error) */
    uint64_t unexpected;              /* results for no outstanding order (must be 0) */
    uint64_t retried;                 /* copies resent after a result timeout */
    uint64_t duplicates;              /* answers that were a first copy's outcome */
    uint64_t late;                    /* extra answers for orders already answered */
    uint64_t ledger_errors;           /* ledger records that could not be written */
    uint64_t malformed_msgs;          /* injected messages that must be dead-lettered */
    uint64_t malformed_orders;        /* injected orders that must be answered as refused */
    uint64_t malformed_refused;       /*   of those, answered invalid or unknown product */
    uint64_t units_sold, units_restocked;
    uint64_t scheduled; /* orders scheduled (sent + unsent at the end) */
    uint64_t start_ns, end_ns;
    uint64_t cpu_ns;   /* CPU time the customers used (their whole lives) */
    uint64_t wait_ns;  /* time they were runnable but waited for a CPU */
    sp_hist_t latency; /* ns, scheduled send -> result received */
} sp_load_stats_t;

/* Fills *cfg with the defaults. */
void sp_load_defaults(sp_load_cfg_t *cfg);

/* Runs the load: forks the customers, waits for them, merges.  `sold` and
 * `restocked` (length capacity+1, indexed by product id) receive the
 * per-product accepted units when cfg->ledger; *capacity gets the table's
 * capacity.  The caller frees both with free().  Returns 0 or a negative code
 * with *why. */
int sp_load_run(const sp_load_cfg_t *cfg, sp_load_stats_t *st, uint64_t **sold,
                uint64_t **restocked, uint32_t *capacity, char *why, size_t cap);

/* Adds the counters and histogram of src to dst (`first`: dst is empty, take
 * src's start time). */
void sp_load_merge(sp_load_stats_t *dst, const sp_load_stats_t *src, bool first);

/* accepted + rejected + failed: everything that got an outcome. */
uint64_t sp_load_answered(const sp_load_stats_t *st);

/* Human report and JSON report. */
void sp_load_report_text(FILE *out, const sp_load_cfg_t *cfg, const sp_load_stats_t *st);
void sp_load_report_json(FILE *out, const sp_load_cfg_t *cfg, const sp_load_stats_t *st);

/* The conservation audit against the table: per product, initial + restocked
 * - sold == stock, using the producer's ledgers (results it received) and the
 * table's own counters; stock never above SP_STOCK_MAX; and every order sent
 * got exactly one outcome.  Prints "conservation: ok" or "conservation:
 * VIOLATED ..." naming the offending products.  Valid when this run was the
 * only producer since the broker started.  Returns 0 when ok, 1 otherwise. */
int sp_audit(FILE *out, sp_table_t *table, const sp_load_stats_t *st, const uint64_t *sold,
             const uint64_t *restocked);

#endif
