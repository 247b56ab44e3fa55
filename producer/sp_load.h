/*
 * sp_load — what a load run is asked to do, and what it counted.
 *
 * The vocabulary the producer's modules share: the load generator
 * (sp_loadgen) takes an sp_load_cfg_t and fills an sp_load_stats_t, each
 * customer (sp_customer) fills one of its own, the report (sp_report) prints
 * one and the audit (sp_audit) checks one against the table.  Kept apart
 * from the load generator so that the report and the audit, and the bench
 * that adds runs together, need no part of the machinery that made them.
 *
 * Plain values in caller-owned storage; the functions touch only what they
 * are given, cannot fail and never block, so they are safe from any thread
 * on objects it owns.  A customer
 * process hands its sp_load_stats_t to its parent as raw bytes through a
 * pipe: both ends are the same binary, so the layout is not a contract.
 */
#ifndef SP_LOAD_H
#define SP_LOAD_H

#include "sp_hist.h"
#include "sp_wire.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SP_CUSTOMERS_MAX   256
#define SP_WINDOW_DEFAULT  1024 /* orders in flight per customer */
#define SP_CUSTOMER_HOLDS  64   /* holds one customer follows up */
#define SP_CUSTOMER_HOLD_S 5    /* how long a customer's hold lasts */

typedef enum { SP_ARRIVAL_FAST = 0, SP_ARRIVAL_CONSTANT = 1, SP_ARRIVAL_POISSON = 2 } sp_arrival_t;
typedef enum { SP_PICK_UNIFORM = 0, SP_PICK_ZIPF = 1 } sp_pick_t;

/* What one customer has counted so far, published for a progress line
 * while the run goes on: the customer stores (relaxed) into its own slot
 * every SP_LOAD_LIVE_MS, the load generator's ticker reads every slot.
 * The slots live in memory shared with the customer processes. */
#define SP_LOAD_LIVE_MS 50
typedef struct {
    _Atomic uint64_t sent, answered, accepted, timed_out, in_flight;
    _Atomic uint64_t lat[SP_LAT_BUCKETS]; /* answers by latency, sp_lat_bucket */
} sp_load_live_t;

/* Where a run is, as its ticker sees it every interval: the totals so far
 * and what the last interval added. */
typedef struct {
    double elapsed_s;                                        /* since the customers started */
    double interval_s;                                       /* this interval's length */
    uint64_t sent, answered, accepted, timed_out, in_flight; /* totals so far */
    double rate;             /* orders answered a second in this interval */
    uint64_t p50_ns, p99_ns; /* of this interval's answers (coarse buckets; 0: none) */
} sp_load_tick_t;

/* A load run.  The strings are borrowed: they must outlive whatever was
 * given the configuration. */
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
     * send one malformed message of its own (sp_malformed.h); 0 = never.
     * See sp_load_stats_t.malformed_* */
    unsigned malformed_every;
    /* --cert: this producer's secret certificate (sp_curve.h), needed when
     * the instance's order endpoint is a CURVE server (the broker's key
     * comes from RUN_DIR/contact, or --server-cert); NULL: none */
    const char *cert;
    /* --connect, its snapshot endpoint and --server-cert, as in
     * sp_client_cfg_t (NULL: the instance on this host) */
    const char *connect;
    const char *snapshot;
    const char *server_cert;
    /* one slot per customer (by index) to publish its counts in while it
     * runs, or NULL: the load generator sets it when progress is asked for */
    sp_load_live_t *live;
} sp_load_cfg_t;

/* Where an order's time goes, leg by leg, from the clocks the result
 * carries (sp_result_t: sched_ns, applied_ns): the customer's lateness
 * (scheduled -> first sent), the way out (sent -> applied by a worker: the
 * transport, the worker's wake-up and the table step) and the way back
 * (applied -> result received: the journal, the answer's transport and
 * the customer's wake-up).  Recorded for orders answered at their first
 * send by a worker on this host (one monotonic clock). */
typedef enum { SP_LEG_LATE = 0, SP_LEG_OUT, SP_LEG_BACK, SP_LEG_COUNT } sp_leg_t;

/* The legs' short names, for reports: "late", "out", "back". */
extern const char *const sp_leg_names[SP_LEG_COUNT];

typedef struct {
    uint64_t sent;                    /* orders handed to the transport */
    uint64_t status[SP_STATUS_COUNT]; /* results by status */
    uint64_t timed_out;               /* no result within timeout */
    uint64_t send_failed;             /* never left (transport error) */
    uint64_t unexpected;              /* results for no outstanding order (must be 0) */
    uint64_t retried;                 /* copies resent after a result timeout */
    uint64_t duplicates;              /* answers that were a first copy's outcome */
    uint64_t late;                    /* extra answers for orders already answered */
    uint64_t ledger_errors;           /* ledger writes that failed (sp_ledger_put/flush) */
    uint64_t malformed_msgs;          /* injected messages that must be dead-lettered */
    uint64_t malformed_orders;        /* injected orders that must be answered as refused */
    uint64_t malformed_refused;       /*   of those, answered invalid or unknown product */
    uint64_t units_sold, units_restocked;
    uint64_t scheduled; /* orders scheduled (sent + unsent at the end) */
    uint64_t start_ns, end_ns;
    uint64_t cpu_ns;             /* CPU time the customers used (their whole lives) */
    uint64_t wait_ns;            /* time they were runnable but waited for a CPU */
    sp_hist_t latency;           /* ns, scheduled send -> result received */
    sp_hist_t leg[SP_LEG_COUNT]; /* ns per leg (sp_leg_t) */
} sp_load_stats_t;

/* Fills *cfg with the defaults: instance "stockpipe", one customer as fast
 * as the window allows, uniform picks, quantity 1, SP_BATCH_DEFAULT orders a
 * message, SP_WINDOW_DEFAULT in flight, the client's timeout and resend
 * (sp_client.h), seed 1; no count or duration (a run needs one of them). */
void sp_load_defaults(sp_load_cfg_t *cfg);

/* Empties *st: every counter zero, the histogram empty. */
void sp_load_stats_init(sp_load_stats_t *st);

/* Adds the counters and histogram of src to dst (`first`: dst is empty, take
 * src's start time). */
void sp_load_merge(sp_load_stats_t *dst, const sp_load_stats_t *src, bool first);

/* accepted + rejected + failed: everything that got an outcome. */
uint64_t sp_load_answered(const sp_load_stats_t *st);

#endif
