/*
 * sp_worker — the inventory worker, as a role object: sp_worker_new,
 * sp_worker_run, sp_worker_destroy (bin/consumer is a thin main over them;
 * an in-process broker runs them on its worker threads).
 *
 * A worker takes order messages from its link, validates every record,
 * applies the valid ones to the shared table with the instance's strategy,
 * answers the whole message with one result message along the route it came
 * by, publishes one stock event per change, and beats its heart in the
 * table's worker slot and on the event path.  A malformed message is counted
 * and dead-lettered (its credit returned), never trusted.  Every outcome is
 * journaled before its result is sent, when the instance keeps a journal.
 *
 * Ownership: sp_worker_new opens the worker's own table mapping, worker
 * link, event publisher and journal file
 * (STATE_DIR/journal/w<id>-p<pid>-e<epoch>.log, a new one when the broker
 * starts an epoch) and takes its worker slot in the table (the slot's pid);
 * sp_worker_destroy releases them all and frees the slot.  The worker is
 * the only writer of its slot.
 * Errors: a negative code with *why; a result that cannot be delivered is
 * a counted drop, not an error.  Blocking: start-up waits up to
 * SP_OPEN_TIMEOUT_MS for the table to be READY and SP_PUB_JOIN_MS for the
 * event path; then a loop turn waits at most SP_WORKER_POLL_MS for orders,
 * never to send a result (a full reply path is a counted drop: a client
 * keeps at most what its path holds unanswered), and on the disk as the fsync policy says.  Threads
 * and processes: any number of workers at once, each with its own worker id, as processes
 * (bin/consumer) or as threads of one process (an in-process broker's, each with its stop flag);
 * one thread uses an object.
 */
#ifndef SP_WORKER_H
#define SP_WORKER_H

#include "sp_commit.h"
#include "sp_table.h"
#include "sp_wire.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_HEARTBEAT_MS   250 /* worker heartbeat period */
#define SP_WORKER_POLL_MS 100 /* longest wait before checking for shutdown */
/* how long events may wait for company (sp_worker_cfg_t.events_hold_ms) */
#define SP_WORKER_EVENTS_HOLD_MS 1
#define SP_OPEN_TIMEOUT_MS       5000 /* waiting for the broker to be ready */

typedef struct {
    const char *instance;
    uint32_t worker_id; /* 1 .. SP_WORKERS_MAX */
    int sync;           /* sp_sync_t, or -1 for the instance's */
    /* NULL: run until SIGINT/SIGTERM (sp_signal); else until *stop is true
     * (a worker thread of an in-process broker) */
    const atomic_bool *stop;
    int open_ms; /* how long to wait for the table to be READY; 0 = SP_OPEN_TIMEOUT_MS */
    /* how long applied orders' events may wait for a later group's to
     * share their message while order messages wait; 0 = SP_WORKER_EVENTS_HOLD_MS */
    int events_hold_ms;
} sp_worker_cfg_t;

typedef struct {
    uint64_t msgs;                    /* order messages handled */
    uint64_t orders[SP_STATUS_COUNT]; /* by SP_STATUS_* */
    uint64_t invalid_msgs;            /* dead-lettered */
    uint64_t result_drops;            /* result messages that could not be delivered */
    uint64_t events;                  /* stock events published */
} sp_worker_stats_t;

typedef struct sp_worker sp_worker_t;

/* Starts a worker of cfg->instance: opens the table once it is READY, the
 * journal (when the instance keeps one), the worker link and the event
 * publisher, and takes the worker slot.  `cfg` is read here; its stop flag
 * must outlive the worker.  Returns 0 with *out set, or a negative code
 * with *why and *out NULL, nothing held: SP_E_USAGE (a worker id outside
 * 1 .. SP_WORKERS_MAX, a bad instance name), SP_E_TIMEOUT (no READY table
 * within cfg->open_ms), the link's, journal's or -errno. */
int sp_worker_new(sp_worker_t **out, const sp_worker_cfg_t *cfg, char *why, size_t cap);

/* Takes, applies and answers orders until a stop is requested (cfg->stop,
 * else sp_signal) or the broker is gone (SP_E_STOPPED); the worker's
 * counters (sp_worker_stats) start from zero.  Returns 0 on a clean stop or
 * a negative code with *why (the journal could not be written: nothing more
 * is answered; the link failed). */
int sp_worker_run(sp_worker_t *self, char *why, size_t cap);

/* What the current or last run counted. */
const sp_worker_stats_t *sp_worker_stats(const sp_worker_t *self);

/* Releases everything the worker holds and frees its slot.  NULL-safe;
 * sets *self_p to NULL. */
void sp_worker_destroy(sp_worker_t **self_p);

#endif
