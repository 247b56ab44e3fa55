/*
 * sp_broker — the instance owner, as a role object: sp_broker_new,
 * sp_broker_run, sp_broker_destroy (bin/broker is a thin main over them; the
 * bench runs one in a thread).  Its jobs live in broker/'s modules, which
 * share the private context of sp_broker_impl.h.
 *
 * Start-up: create the shared table from the catalogue (exclusive, 0600),
 * the order queue (mq), the ring segment /NAME.ring (shm) or the order
 * ROUTERs (zmq), the event proxy, the private run directory; write the
 * endpoints into the table header; start --workers consumers; write
 * RUN_DIR/contact for local clients; mark the table READY.
 *
 * Running: one loop turn = one router poll (<= SP_BROKER_TICK_MS) plus
 * supervision plus the broker's heartbeat.  Supervision: a worker that exits
 * is noticed at once (waitpid), one whose loop has not turned for
 * SP_WORKER_SILENT_MS is killed; either way the orders it left half done are
 * resolved (sp_commit_resolve, from its in-flight record) and it is restarted
 * with the same id, unless it keeps dying right after starting.
 *
 * Shutdown (SIGINT/SIGTERM): DRAINING -> stop reading new orders -> wait until
 * nothing is in flight (order queue empty / every batch answered) -> SIGTERM
 * the workers and wait for them -> end-of-stream to monitors -> save the
 * final table atomically under the state directory (sp_broker_run returns)
 * -> remove every IPC object the instance has (table, queues, reply queues,
 * ring segment, sockets, run dir: sp_broker_destroy).
 *
 * Ownership: sp_broker_new allocates the broker and sp_broker_destroy frees
 * it; the broker owns its table mapping, sockets, journal file and CURVE
 * authenticator, and, once the table is its own, every IPC object of the
 * instance.  The configuration is copied; the strings, stop flag and
 * worker function it points to are borrowed.
 *
 * Safety: one broker per instance (the table header names its pid; a second
 * one is refused).  A broker belongs to the thread that made it and is not
 * locked.  A process runs one broker at a time (the bench's in-process
 * cells run theirs one after another, each stopped through its cfg->stop):
 * the STATS buffer is static, and supervision reaps any child of the
 * process (waitpid(-1)), so a caller's own children must not be waited for
 * elsewhere while a broker runs.  Errors are returned with a sentence in
 * *why; progress and problems along the way go to cfg->notify: the broker
 * never prints and never exits.
 */
#ifndef SP_BROKER_H
#define SP_BROKER_H

#include "sp_router.h"
#include "sp_table.h"
#include "sp_transport.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define SP_BROKER_TICK_MS        50
#define SP_BROKER_DRAIN_MS       5000 /* longest wait for in-flight orders */
#define SP_BROKER_STOP_MS        3000 /* longest wait for workers to exit */
#define SP_BROKER_HEARTBEAT_MS   250
#define SP_BROKER_STATS_MS       100  /* STATS to monitors, ten a second */
#define SP_BROKER_RESTART_MAX    5    /* quick deaths in a row before giving up on a worker */
#define SP_BROKER_QUICK_DEATH_MS 1000 /* a death this soon after a start counts as quick */
#define SP_SNAPSHOT_FILE         "table.csv"

typedef void (*sp_notify_fn)(int level, const char *fmt, va_list ap);

/* The board `broker --metrics` serves (sp_metrics.h). */
typedef struct sp_metrics sp_metrics_t;

/* A worker run as a thread of the broker: returns when *stop is set (0) or
 * on an error (negative, *why says what). */
typedef int (*sp_broker_worker_fn)(const char *instance, uint32_t worker_id,
                                   const atomic_bool *stop, char *why, size_t cap);

typedef struct {
    const char *instance;
    const char *catalogue; /* CSV path */
    /* one shard of a catalogue split across brokers (--products LO-HI):
     * the table holds only the products whose id is in [product_lo,
     * product_hi], and the WELCOME says so; 0, 0: the whole catalogue */
    uint32_t product_lo;
    uint32_t product_hi;
    const char *state_dir;     /* base directory; NULL = "run" */
    const char *consumer_path; /* NULL = "consumer" beside our own binary */
    /* NULL = ipc://; else the client-facing endpoints (orders, events,
     * snapshots) on TCP: "PORT", "HOST:PORT" or "tcp://HOST:PORT" (sp_tcp.h);
     * the workers' endpoints stay ipc://.  A HOST that is not loopback is
     * refused unless CURVE is configured. */
    const char *tcp;
    /* CURVE for the tcp:// endpoints (both or neither): the broker's secret
     * certificate (zcert file; FILE_secret, mode 0600) and the directory of
     * the public certificates of the clients let in (sp_curve.h) */
    const char *curve_cert;
    const char *curve_clients;
    /* the servers of a transport that runs on servers of its own (nats:
     * "nats://[USER:PASSWORD@]HOST:PORT[,...]"); both ends connect there */
    const char *service;
    unsigned replicas; /* copies those servers keep of each order; 0: 1 */
    /* zmq only: when set, run the workers as threads of this process over
     * inproc:// endpoints, each calling this (the benchmark's inproc cells,
     * which give the consumer's loop; nothing outside the process can
     * connect).  NULL: workers are consumer processes. */
    sp_broker_worker_fn worker_thread;
    const atomic_bool *stop; /* NULL: run until SIGINT/SIGTERM; else until *stop */
    unsigned workers;        /* ignored (none run) with the direct transport */
    sp_sync_t sync;
    const sp_transport_t *transport; /* the order path (sp_transport_find); NULL: mq */
    long depth;                      /* order path depth (--mq-depth), 0: the transport's default */
    long msgsize;        /* largest message (--mq-msgsize: mq messages, shm slots), 0: default */
    sp_notify_fn notify; /* where progress and problems are reported */
    bool no_journal;     /* keep no journal */
    bool no_dedup;       /* no de-duplication and no journal (the benchmark's baseline) */
    bool keep_journal;   /* leave the journal files after a clean stop */
    bool fresh;          /* start from the catalogue, the saved state kept aside (replaced-DATE/) */
    bool catalogue_given; /* --catalogue was given: say so when saved state wins over it */
    unsigned snapshot_ms; /* save a snapshot and trim the journal this often (0: never) */
    int fsync_policy;     /* sp_fsync_policy_t; 0 = SP_FSYNC_INTERVAL */
    unsigned fsync_interval_ms;
    /* NULL, or the board each STATS is also handed to (broker --metrics;
     * borrowed: it must outlive the broker) */
    sp_metrics_t *metrics;
} sp_broker_cfg_t;

typedef struct {
    sp_router_stats_t router;
    unsigned restarts;
    uint64_t orders[SP_STATUS_COUNT]; /* answered by all workers, by status */
    uint64_t worker_invalid;          /* messages workers dead-lettered */
    uint64_t worker_result_drops;     /* result messages workers could not deliver */
    unsigned snapshots;               /* periodic snapshots saved */
    char snapshot[SP_PATH_MAX + 32];
    int drained; /* 1 when nothing was left in flight */
} sp_broker_stats_t;

typedef struct sp_broker sp_broker_t;

/* Makes the instance ready to serve: checks the configuration and the
 * system's limits, finds or creates the table (re-attaching to a dead
 * broker's, rebuilding a lost one from its journal), creates the order path
 * (queue, ring segment or ROUTERs), the event proxy, the snapshot service
 * and the private run directory.  No worker runs yet and the table is not
 * READY: sp_broker_run does that.  `cfg` is copied; the strings, the stop
 * flag and the worker function it points to must outlive the broker.
 * Returns 0 with *out set, or a negative code (SP_E_USAGE for a bad
 * configuration, -EEXIST when the instance runs already, SP_E_MQ_LIMIT and
 * the like for a limit, -errno) with *why explaining it, *out NULL and
 * nothing of the instance left behind.  Blocks for at most the few seconds
 * a dead broker's workers take to go (re-attaching). */
int sp_broker_new(sp_broker_t **out, const sp_broker_cfg_t *cfg, char *why, size_t cap);

/* Starts the workers, marks the table READY and serves until a stop is
 * requested (cfg->stop, or SIGINT/SIGTERM through sp_signal); then drains,
 * stops the workers, says goodbye to monitors and saves the final table
 * under the state directory.  Blocks for the broker's whole life; runs once
 * per broker, on the thread that made it.  Returns 0 after a clean
 * shutdown, or a negative code with *why (a worker that could not start).
 * *stats (may be NULL) gets the closing totals either way. */
int sp_broker_run(sp_broker_t *self, sp_broker_stats_t *stats, char *why, size_t cap);

/* Releases the broker and removes every IPC object of its instance (table,
 * queues, reply queues, ring segment, sockets, run directory); the state
 * directory keeps the saved table (and, after a run that did not stop
 * cleanly or no run at all, what the next start recovers from).
 * NULL-safe; sets *self_p to NULL. */
void sp_broker_destroy(sp_broker_t **self_p);

/* --export LO-HI: writes the products of `instance` whose id is in [lo,
 * hi], with their current stock, as a catalogue CSV (header first) to
 * `out`, read from the table its last clean stop saved under
 * `state_dir` (NULL: "run"), and records in the state directory that they
 * left, so that the next start of the instance with a --products range
 * that excludes them drops them from its table instead of refusing (any
 * next start consumes the record).  Refuses, touching nothing: an
 * instance that runs or whose last run did not stop cleanly (-EBUSY: a
 * table in /dev/shm, a journal or a snapshot to recover from), no saved
 * table (-ENOENT), a range that holds none of its products
 * (SP_E_CSV_EMPTY), a write that failed (-errno); *why says which and
 * what to do.  Blocks on the disk. */
int sp_broker_export(const char *instance, const char *state_dir, uint32_t lo, uint32_t hi,
                     FILE *out, char *why, size_t cap);

/* Removes the IPC objects of `instance` if its broker is dead.  Returns 0
 * (removed, *what says what), -EBUSY (its broker is alive), -ENOENT (nothing
 * there) or -errno. */
int sp_broker_clean(const char *instance, char *what, size_t cap);

#endif
