/*
 * sp_broker_impl — the broker's context, shared by the broker's own modules.
 *
 * Private to broker/: only broker/sp_*.c include it (bin/broker, the bench
 * and the tests see the opaque sp_broker_t of sp_broker.h).  The broker is
 * one object split by job, one module each:
 *
 *   sp_broker      the role object (new/run/destroy), the loop, drain and shutdown
 *   sp_startup     configuration checks, finding or making the table, the journal
 *   sp_bipc        the broker's IPC objects: limits preflight, names ownership,
 *                  order queue and ring segment, their depths, removal, clean
 *   sp_endpoints   where the sockets bind and clients connect; --tcp and CURVE
 *   sp_supervisor  the workers: spawn, reap, restart, kill the hung, stop
 *   sp_orphans     what a dead writer left: half-done orders, unjournaled outcomes
 *   sp_bstats      what monitors and the caller are told: STATS, heartbeats, totals
 *   sp_persist     snapshots, journal epochs and pruning, the final save
 *
 * Ownership: each group of fields below names the module that keeps it;
 * others read it (sp_persist also closes the broker's journal file when an
 * epoch ends, and sp_broker_destroy releases whatever is left).  Errors:
 * the modules return 0 or a negative code with a sentence in *why, and
 * report what they cannot return through sp_broker_notify (nothing when
 * cfg->notify is NULL).  The context belongs to the one thread that runs
 * the broker: nothing here is locked, and only the worker slots in the
 * shared table (sp_table.h) and the workers' stop flag are touched by
 * anyone else (worker threads also read their own sp_bworker_t's
 * arguments and set its `running` and result).
 */
#ifndef SP_BROKER_IMPL_H
#define SP_BROKER_IMPL_H

#include "sp_broker.h"
#include "sp_curve.h"
#include "sp_instance.h"
#include "sp_journal.h"
#include "sp_link.h"
#include "sp_router.h"
#include "sp_transport.h"
#include "sp_natsfeed.h"
#include "sp_snapsrv.h"
#include "sp_table.h"
#include "sp_tcp.h"
#include "sp_wire.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Keys kept from the end of a dead writer's journal (sp_orphans): it marks
 * outcomes journaled after each message's append, so an outcome it appended
 * but did not mark is among its last SP_WIRE_MAX_RECORDS records; room for
 * that many in each of a few files. */
#define SP_BROKER_TAIL_MAX ((size_t)4 * SP_WIRE_MAX_RECORDS)

/* Latency windows: cumulative bucket sums, one per STATS tick, so the latest
 * minus the one SP_BROKER_LAT_TICKS ago is the last second (sp_bstats). */
#define SP_BROKER_LAT_TICKS (1000 / SP_BROKER_STATS_MS)

/* The five endpoints, in the order sp_endpoints_layout lays them out. */
enum { SP_BEP_ORDERS, SP_BEP_WORKERS, SP_BEP_EVENTS_IN, SP_BEP_EVENTS, SP_BEP_SNAPSHOT, SP_BEPS };

/* The last keys a dead process journaled (sp_orphans). */
typedef struct {
    uint32_t producer;
    uint64_t seq;
} sp_btailkey_t;
typedef struct {
    pid_t pid;
    size_t n;
    sp_btailkey_t keys[SP_BROKER_TAIL_MAX];
} sp_btail_t;

/* One worker: a process (pid), or with (cfg->worker_thread != NULL) a
 * thread of ours (sp_supervisor). */
typedef struct {
    pid_t pid;
    unsigned restarts;
    unsigned deaths;            /* abnormal ends, each settled (STATS: SP_CTR_UNPUBLISHED) */
    unsigned quick_deaths;      /* deaths in a row soon after starting, having done nothing */
    uint64_t answered_at_start; /* the slot's answered orders when it was started */
    uint64_t started_ns;
    pthread_t thread;
    bool joinable;          /* thread started and not joined yet */
    atomic_bool running;    /* the thread has not returned */
    sp_broker_worker_fn fn; /* the thread's body, and what it is given */
    const char *instance;
    uint32_t id;
    const atomic_bool *stop;
    int wrc;
    char why[160];
} sp_bworker_t;

struct sp_broker {
    sp_broker_cfg_t cfg_copy;   /* the caller's configuration, copied by sp_broker_new */
    const sp_broker_cfg_t *cfg; /* &cfg_copy: what every module reads */
    bool ran;                   /* sp_broker_run was called (it runs once) */

    /* sp_startup: the instance and its table */
    sp_names_t names;
    sp_table_t *table;
    sp_table_hdr_t *hdr;
    bool reattached; /* the table is a dead broker's */
    bool rebuilt;    /* the table was rebuilt from the journal */

    /* sp_broker: the ZeroMQ paths and the snapshot service */
    sp_router_t *router;
    sp_snapsrv_t *snapsrv;
    sp_natsfeed_t *natsfeed; /* nats: the event path and snapshots over NATS */

    /* sp_bstats */
    uint64_t lat[SP_BROKER_LAT_TICKS + 1][SP_LAT_BUCKETS];
    unsigned lat_head;
    uint64_t stats_seq;
    /* loop turns that released expired holds: table changes no event
     * carries (STATS: SP_CTR_UNPUBLISHED [0]) */
    uint64_t holds_released_rounds;
    sp_broker_stats_t stats; /* the totals sp_broker_run hands its caller */

    /* sp_supervisor (consumer and silent_ms: sp_startup) */
    sp_bworker_t child[SP_WORKERS_MAX];
    char consumer[PATH_MAX];
    atomic_bool workers_stop; /* worker threads stop when set */
    unsigned nworkers;        /* workers we run (0 with direct) */
    uint64_t silent_ms;       /* a worker this long without a loop turn is hung */

    /* sp_bipc: the order path's transport and what its broker side made */
    const sp_transport_t *transport;
    sp_tside_t *side;
    /* where both ends of the order path connect when its transport says
     * (sp_tinfo_t.endpoint: nats's servers); "" for the broker's own */
    char path_ep[SP_ENDPOINT_MAX];

    /* sp_startup (journal_dir), sp_orphans (journal, tail), sp_persist */
    char journal_dir[SP_PATH_MAX + 16];
    sp_journal_t *journal;    /* ours: outcomes we journal for dead workers */
    bool journal_sync_failed; /* said once (sp_orphans_tick) */
    sp_btail_t tail;          /* the last dead writer's journal tail */
    uint32_t journal_epoch;   /* the epoch of our journal file */
    bool snap_pending;        /* a new epoch started: snapshot once every writer moved */
    uint64_t next_snap_ns;

    /* sp_endpoints */
    bool use_tcp; /* --tcp: the client-facing endpoints on TCP */
    sp_tcp_addr_t tcp;
    bool curve_on;          /* CURVE on the tcp:// endpoints */
    sp_curve_keys_t curve;  /* our keys (--curve-cert) */
    sp_curve_auth_t *auth;  /* zauth, from before the first bind to after the last close */
    unsigned curve_clients; /* certificates in --curve-clients at start */
    /* where our sockets bind, by SP_BEP_* (the header holds where clients
     * connect: the same, but a wildcard host there is loopback) */
    char bind_ep[SP_BEPS][SP_ENDPOINT_MAX];
};

/* Reports through cfg->notify (nothing when it is NULL). */
void sp_broker_notify(const sp_broker_t *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
