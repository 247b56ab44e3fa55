/*
 * sp_bipc — the broker's IPC objects, made and removed through the
 * transport table (sp_bipc.c says what it covers).
 *
 * Ownership: the broker creates the instance's IPC objects (exclusively,
 * mode 0600) and removes them; what the transport's broker side made is
 * kept in the broker's context from sp_bipc_create to sp_bipc_remove.  A
 * name another user holds is refused, never opened for writing nor
 * removed.  Broker thread only (sp_bipc_clean: any process).  Returns 0 or
 * a negative code with *why; nothing here waits on another process.
 */
#ifndef SP_BIPC_H
#define SP_BIPC_H

#include "sp_broker.h"
#include "sp_bstats.h"
#include "sp_instance.h"
#include "sp_router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The limits the run's queues and processes need, read before anything is
 * created (sp_limits.h): 0, or the refusal naming what to raise. */
int sp_bipc_preflight(sp_broker_t *b, char *why, size_t cap);

/* Every IPC name of instance `n` is free or ours: 0, or -EACCES with *why
 * naming the object another user holds (or that cannot be looked at). */
int sp_bipc_names_ours(const sp_names_t *n, char *why, size_t cap);

/* Bytes of /dev/shm the order path takes besides the table (the ring
 * segment), for the table's limits check. */
uint64_t sp_bipc_shm_bytes(sp_broker_t *b);

/* No table, so no live broker: removes the queues, ring and sockets a
 * crashed run left under the instance's names, and says so. */
void sp_bipc_remove_leftovers(sp_broker_t *b);

/* Re-attaching to a dead broker's table: removes its queues, ring and
 * sockets (they are made anew). */
void sp_bipc_reset(sp_broker_t *b);

/* Creates the order path's objects (mq: the order queue; shm: the ring
 * segment) and writes their depth and message size into the table header.
 * Returns 0, -EEXIST, SP_E_MQ_LIMIT and the like, or -errno, with *why. */
int sp_bipc_create(sp_broker_t *b, char *why, size_t cap);

/* Writes RUN_DIR/contact (sp_contact.h) for local clients: the transport,
 * the endpoints, the CURVE key.  Returns 0 or -errno with *why. */
int sp_bipc_contact(sp_broker_t *b, char *why, size_t cap);

/* Removes every IPC object of the instance: what sp_bipc_create made, the
 * reply queues producers left, the run directory, the table's name. */
void sp_bipc_remove(sp_broker_t *b);

/* Adds the order path's depth and capacity and the result path's depth to
 * a STATS message (`rs`: the router's counters, for routed orders). */
void sp_bipc_depths(sp_broker_t *b, sp_bctrs_t *c, const sp_router_stats_t *rs);

/* Whether orders still wait for a worker or for their results. */
bool sp_bipc_in_flight(sp_broker_t *b);

/* sp_broker_clean (sp_broker.h): removes the IPC objects of `instance` if
 * its broker is dead.  0 (*what says what), -EBUSY, -ENOENT or -errno. */
int sp_bipc_clean(const char *instance, char *what, size_t cap);

/* What the broker and --clean both say of /dev/shm/NAME.table when it is
 * not a table this version can use (rc, from sp_table_open): it is left
 * alone, and how to remove it if nothing else uses it. */
void sp_bipc_foreign_table(const sp_names_t *n, int rc, char *why, size_t cap);

#endif
