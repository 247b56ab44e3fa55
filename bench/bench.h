/*
 * bench — the queue-versus-shared-memory benchmark's internal interface.
 *
 * A *cell* is one configuration of the whole pipeline (transport, table
 * strategy, producers x workers, batch, catalogue, popularity).  Running a
 * cell starts a real broker with real workers, runs a warm-up, then
 * `repeats` closed-loop runs as fast as the window allows (throughput), then
 * open-loop runs at chosen fractions of that throughput (latency from the
 * scheduled send time), and ends with the conservation audit over
 * everything the cell did.  Every cell runs in a forked child of the bench
 * (bench_isolated), so a hung or crashed cell is killed, reported as failed
 * and cleaned up, and ZeroMQ state never crosses a fork.
 *
 * A *row* is one line of the results (CSV, JSON, terminal table).
 *
 * Ownership: rows, options and cells are the caller's; a cell or raw run
 * forks its own processes, reaps them and removes the IPC objects it made
 * before it returns.  Errors: a cell or baseline that fails is a row with
 * audit 0 and a note saying why, not a return code; the file writers and
 * bench_isolated return 0 or a negative errno.  Blocking: a cell runs for
 * its warm-up, repeats and rate points, bounded by a time limit after
 * which its process group is killed.  Threads and processes: the bench is
 * one thread (cell names come from a static counter); every cell runs in a
 * forked child, its own process group.
 */
#ifndef BENCH_H
#define BENCH_H

#include "raw.h"
#include "sp_load.h"
#include "sp_table.h"
#include "variant.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_REPEATS_MAX 16
#define BENCH_RATES_MAX   16

/* The workload every cell (and the Redis peer, peer.h) runs: every product
 * starts with BENCH_STOCK units, and this fraction of the orders are
 * restocks (the rest purchases), of one unit each. */
#define BENCH_STOCK   100000000u /* every product's stock: never runs out */
#define BENCH_RESTOCK 0.5        /* restocks keep the stock where it started */

typedef struct {
    const bench_variant_t *variant; /* the transport and how it runs (variant.h) */
    sp_sync_t sync;
    unsigned producers, workers, batch;
    uint32_t products;
    double zipf_s;  /* 0 = uniform popularity */
    bool unguarded; /* broker --no-dedup: no dedup records, no journal, no resends */
} bench_cell_t;

typedef struct {
    double warmup_s;
    double run_s;     /* one closed-loop repeat */
    double rate_s;    /* one open-loop point */
    double idle_rate; /* orders/s of the idle point of 1x1 cells; 0: none */
    unsigned repeats; /* closed-loop repeats (median, min-max) */
    double p99_target_us;
    unsigned window; /* orders in flight per producer */
    const char *bin_dir;
    const char *work_dir; /* catalogues, state directories; removed at the end */
    unsigned tcp_port;    /* base port for zmq-tcp cells (5 ports each) */
    bool verbose;
} bench_opts_t;

/* One line of results. */
typedef struct {
    char kind[12]; /* pipeline raw scaling sweep shop idle peer */
    char label[64];
    char series[32];
    char transport[16];
    char sync[12];
    unsigned producers, workers, procs, batch;
    uint32_t products;
    double zipf_s;
    bool rate_mode;
    double offered;  /* orders/s offered (rate mode) */
    double peak_pct; /* rate mode: offered as % of the cell's closed-loop median */
    unsigned repeats;
    double ops_med, ops_min, ops_max; /* orders/s */
    double raw_ops, efficiency;       /* 0 when n/a */
    char raw_ref[64];                 /* label of the raw baseline compared with */
    double p50, p90, p99, p999, max;  /* microseconds; < 0 when n/a */
    /* where the time goes, per leg (sp_leg_t: late, out, back), in
     * microseconds; < 0 when n/a */
    double leg_p50[SP_LEG_COUNT], leg_p99[SP_LEG_COUNT];
    /* the workers' part of an order message's time, per hop (sp_whop_t:
     * step, journal, reply; from their slots' histograms), in microseconds;
     * < 0 when n/a */
    double hop_p50[SP_WHOP_COUNT], hop_p99[SP_WHOP_COUNT];
    double p99_target_us;
    double cpu_prod, cpu_broker, cpu_work, cpu_total; /* CPU s per million orders; < 0 n/a */
    /* memory at the end of the closed-loop runs, MiB (< 0 n/a: a broker
     * run as threads of the bench): resident size of the broker and of
     * all its workers together (the table's pages they touched count in
     * each), the part of it that is their own (RssAnon), the table's
     * segment, and that segment per product (bytes) */
    double rss_broker_mib, rss_workers_mib, anon_broker_mib, anon_workers_mib;
    double table_mib, bytes_per_product;
    double wait_prod, wait_broker, wait_work; /* run-queue wait / CPU time, per role */
    uint64_t orders;                          /* answered in the measured runs */
    int audit;                                /* 1 pass, 0 fail, -1 n/a */
    char flags[160];                          /* space-separated: knee rate-not-reached ... */
    char note[320];                           /* why a cell failed */
    bool copy; /* a row repeated under another kind for the plots (not printed) */
} bench_row_t;

/* Marks every latency figure of a row not measured (-1). */
static inline void bench_row_no_latency(bench_row_t *r)
{
    r->p50 = r->p90 = r->p99 = r->p999 = r->max = -1;
    for (int i = 0; i < SP_LEG_COUNT; i++) {
        r->leg_p50[i] = r->leg_p99[i] = -1;
    }
    for (int i = 0; i < SP_WHOP_COUNT; i++) {
        r->hop_p50[i] = r->hop_p99[i] = -1;
    }
}

/* "zmq-ipc/cas/2x2/b32/1000" and friends ("direct/cas/2p/1000" where the
 * transport runs no workers). */
void bench_cell_label(const bench_cell_t *c, char *buf, size_t cap);

/* Whether the system's limits leave room for the cell's transport with its
 * producers connected at once, as its preflight counts them (sp_transport.h),
 * and with the same again in message-queue bytes for the previous cell's
 * queues, which may not be gone yet.  Returns 0, or SP_E_LIMIT with *why
 * naming the limit and how to raise it.  Reads the limits; creates nothing. */
int bench_cell_fits(const bench_cell_t *c, char *why, size_t cap);

/* Order message size of a batch: the raw baselines stream the same size. */
unsigned bench_msg_size(unsigned batch);

/* Fills the common fields of a row from a cell. */
void bench_row_from_cell(bench_row_t *r, const bench_cell_t *c);

/* The shortest run of an idle point (an open-loop point at a rate of its
 * own, --idle-rate), in seconds: enough orders for its p99. */
#define BENCH_IDLE_SECONDS 2.0
#define BENCH_IDLE_RATE    1000.0 /* the presets' idle point, orders/s */

/* Runs one pipeline cell: rows[0] is the closed-loop throughput row, rows[1 +
 * i] the open-loop point at fractions[i] x that throughput (a negative
 * fraction: at -fractions[i] orders/s, at least BENCH_IDLE_SECONDS).  Returns the
 * number of rows filled (1 + nfrac); on failure rows[0].audit is 0 and
 * rows[0].note says why. */
unsigned bench_cell_run(const bench_cell_t *cell, const bench_opts_t *opts, const double *fractions,
                        unsigned nfrac, bench_row_t *rows);

/* Runs one raw baseline `repeats` times (after one short warm-up run) and
 * fills a row with the median and the min-max. */
void bench_raw_row(const br_cfg_t *cfg, unsigned repeats, bench_row_t *row);

/* Runs fn(arg, out) in a forked child (a process group of its own) with a
 * time limit, copying `size` bytes of *out back.  Returns 0, -ETIMEDOUT (the
 * child was killed), -ECHILD (it died without reporting), -EINTR (a stop
 * was requested: the child's group was killed) or -errno (no pipe, no
 * fork).  `instance`, when not NULL, names an instance whose IPC objects
 * are cleaned up after a failed child. */
int bench_isolated(void (*fn)(void *arg, void *out), void *arg, void *out, size_t size,
                   double limit_s, const char *instance);

/* Statistics helpers (0 when n is 0). */
double bench_median(double *v, unsigned n); /* sorts v */
double bench_min(const double *v, unsigned n);
double bench_max(const double *v, unsigned n);

/* Output. */
typedef struct {
    char cpu[128];
    unsigned cores;
    char kernel[256];
    char libzmq[32], czmq[32];
    long mq_msg_max, mq_msgsize_max, mq_queues_max;
    char date[32];
    char host[72];
    double load[3]; /* load average (1, 5, 15 min) when the run began; < 0 unknown */
} bench_machine_t;

/* Reads what the results are measured on: CPU, cores, kernel, library
 * versions, mqueue limits, date, host, load average. */
void bench_machine(bench_machine_t *m);
/* The terminal table: the machine and the command, the column heads, one
 * row.  Write errors on `out` are the caller's to check. */
void bench_print_header(FILE *out, const bench_machine_t *m, const char *command);
void bench_print_row_head(FILE *out);
void bench_print_row(FILE *out, const bench_row_t *r);

/* The legs of the open-loop rows (where the time goes), after the table;
 * nothing when no row has them. */
void bench_print_legs(FILE *out, const bench_row_t *rows, unsigned n);
/* Memory and throughput per core of the closed-loop pipeline rows. */
void bench_print_memory(FILE *out, const bench_row_t *rows, unsigned n);
/* Writes the rows as CSV to `path` (one line each, a header first).
 * Returns 0 or -errno. */
int bench_write_csv(const char *path, const bench_row_t *rows, unsigned n);

#define BENCH_TARGETS_MAX 32 /* the presets judge about 20 */

typedef struct {
    char name[96];
    char detail[200];
    double value, goal; /* measured ratio and target */
    int met;            /* 1 met, 0 missed, -1 not measured */
} bench_target_t;

/* Writes everything as one JSON document to `path`: the machine (with the
 * load average at the start and, `load_end`, at the end), the command and
 * options, the rows, the targets, and how many cells failed their audit.
 * Returns 0 or -errno. */
int bench_write_json(const char *path, const bench_machine_t *m, const double load_end[3],
                     const char *command, const bench_opts_t *opts, const bench_row_t *rows,
                     unsigned n, const bench_target_t *targets, unsigned ntargets);

/* Exit status when a target is missed under --strict. */
#define BENCH_EXIT_MISSED 5

/* The bench's exit status: 130 when interrupted, 1 when a cell failed its
 * audit, BENCH_EXIT_MISSED when `strict` and a measured target was missed
 * (a target not measured is not missed), else 0. */
int bench_exit_status(unsigned failed_audits, const bench_target_t *targets, unsigned ntargets,
                      bool strict, bool interrupted);

#endif
