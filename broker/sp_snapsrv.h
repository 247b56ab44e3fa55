/*
 * sp_snapsrv — the broker's snapshot service, for clients that cannot map
 * the table: remote monitors (over tcp://) and producers, which never map
 * it (sp_snapcli.h).
 *
 * A monitor's DEALER sends SNAP_REQ (no records, header batch = its request
 * number) to the service's ROUTER.  The answer, all with the same batch:
 *
 *   SNAP_BEGIN  counters: CAPACITY, PRODUCTS, CREATED_NS, and for every
 *               worker slot in use W_PID and W_PUB_SEQ, read before any row
 *   SNAP_ROWS   x N, up to SP_SNAP_ROWS_PER_MSG sp_snaprow_t each, id order
 *   SNAP_END    counters ROWS (rows sent) and HELD (held units in them)
 *
 * Rows are read one at a time while the answer streams, so a big table never
 * stalls the broker's loop: each turn sends at most SP_SNAP_MSGS_PER_TURN
 * messages and never blocks (a slow reader is resumed next turn).  Every row
 * carries its version, which is what lets the monitor merge rows and events
 * in any order.
 *
 * Ownership: the service binds and owns its ROUTER and borrows the table,
 * which must outlive it; up to SP_SNAP_CLIENTS answers are kept under way.
 * Errors: only new fails (0 or -errno with *why); a malformed request is
 * counted, a client gone mid-answer is dropped.  Broker thread only.
 */
#ifndef SP_SNAPSRV_H
#define SP_SNAPSRV_H

#include "sp_curve.h"
#include "sp_table.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_SNAP_MSGS_PER_TURN 64
#define SP_SNAP_CLIENTS       16 /* answers under way at once; more requests wait */

typedef struct sp_snapsrv sp_snapsrv_t;

/* Binds a ROUTER to `endpoint`, a CURVE server when it is tcp:// and the
 * broker has keys (`curve`; NULL: none; an sp_curve_auth_t must be running).
 * Returns 0 or -errno with *why. */
int sp_snapsrv_new(sp_snapsrv_t **out, const char *endpoint, sp_table_t *table,
                   const sp_curve_keys_t *curve, char *why, size_t cap);

/* Closes the socket (answers under way are dropped) and frees the service.
 * NULL-safe, nulls the pointer. */
void sp_snapsrv_destroy(sp_snapsrv_t **self_p);

/* Reads new requests and sends what fits; never blocks. */
void sp_snapsrv_turn(sp_snapsrv_t *self);

/* True while answers are under way (the caller should not sleep long). */
bool sp_snapsrv_busy(const sp_snapsrv_t *self);

/* Requests refused as malformed, and snapshots completed. */
uint64_t sp_snapsrv_invalid(const sp_snapsrv_t *self);
uint64_t sp_snapsrv_served(const sp_snapsrv_t *self);

/* The SNAP_BEGIN counters of `table` as it is now (also used by tests):
 * writes up to `max` records to out and returns how many. */
unsigned sp_snapsrv_begin_counters(sp_table_t *table, sp_counter_t *out, unsigned max);

#endif
