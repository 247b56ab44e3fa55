/*
 * sp_worker — the inventory worker's loop (bin/consumer is a thin main over
 * it).
 *
 * A worker takes order messages from its link, validates every record,
 * applies the valid ones to the shared table with the instance's strategy,
 * answers the whole message with one result message along the route it came
 * by, publishes one stock event per change, and beats its heart in the
 * table's worker slot and on the event path.  A malformed message is counted
 * and dead-lettered (its credit returned), never trusted.  Every outcome is
 * journaled before its result is sent, when the instance keeps a journal.
 *
 * Ownership: a run opens its own table mapping, worker link, event
 * publisher and journal file (STATE_DIR/journal/w<id>-p<pid>-e<epoch>.log,
 * a new one when the broker starts an epoch) and releases them all before
 * it returns; it is the only writer of its worker slot in the table.
 * Errors: a negative code with *why; a result that cannot be delivered is
 * a counted drop, not an error.  Blocking: start-up waits up to
 * SP_OPEN_TIMEOUT_MS for the table to be READY and SP_PUB_JOIN_MS for the
 * event path; then a loop turn waits at most SP_WORKER_POLL_MS for orders,
 * up to SP_RESULT_SEND_TIMEOUT_MS to send a result, and on the disk as the
 * fsync policy says.  Threads and processes: any number of workers at
 * once, each with its own worker id, as processes (bin/consumer) or as
 * threads of one process (an in-process broker's, each with its stop
 * flag); one run per thread.
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

#define SP_HEARTBEAT_MS           250  /* worker heartbeat period */
#define SP_WORKER_POLL_MS         100  /* longest wait before checking for shutdown */
#define SP_RESULT_SEND_TIMEOUT_MS 1000 /* then the result is a counted drop */
#define SP_OPEN_TIMEOUT_MS        5000 /* waiting for the broker to be ready */

typedef struct {
    const char *instance;
    uint32_t worker_id; /* 1 .. SP_WORKERS_MAX */
    int sync;           /* sp_sync_t, or -1 for the instance's */
    /* NULL: run until SIGINT/SIGTERM (sp_signal); else until *stop is true
     * (a worker thread of an in-process broker) */
    const atomic_bool *stop;
} sp_worker_cfg_t;

typedef struct {
    uint64_t msgs;                    /* order messages handled */
    uint64_t orders[SP_STATUS_COUNT]; /* by SP_STATUS_* */
    uint64_t invalid_msgs;            /* dead-lettered */
    uint64_t result_drops;            /* result messages that could not be delivered */
    uint64_t events;                  /* stock events published */
} sp_worker_stats_t;

/* Runs until a stop is requested (cfg->stop, else sp_signal), or until the
 * broker is gone (SP_E_STOPPED).  *stats is emptied first and counts the
 * run.  Returns 0 on a clean stop or a negative code with *why explaining
 * it (SP_E_USAGE for a bad worker id, the table's, link's or journal's
 * code). */
int sp_worker_run(const sp_worker_cfg_t *cfg, sp_worker_stats_t *stats, char *why, size_t cap);

#endif
