/*
 * sp_apply — one decoded order applied to the table, with its result.
 *
 * The step every applier shares: the inventory worker (consumer/) for each
 * record of an order message, and the direct transport, whose producers
 * apply their own orders (the original shop's model).  It validates the
 * order, checks that it names the producer that sent it, and commits it
 * through sp_commit (exactly once, with the instance's de-duplication) or,
 * on an unguarded table (the benchmark's baseline), as a bare row change.
 *
 * Ownership: everything is borrowed; only the caller's result, change and
 * outcome are written.  Errors: a refused order is an answer, not a
 * failure (its result's status says why); only a table that cannot be
 * written fails.  Blocking: under the lock strategies a row or table lock
 * may be waited for, at most SP_LOCK_TIMEOUT_MS.  Safe from any number of
 * threads and processes at once: all shared state is the table's, changed
 * only through sp_commit.
 */
#ifndef SP_APPLY_H
#define SP_APPLY_H

#include "sp_commit.h"
#include "sp_table.h"
#include "sp_wire.h"

#include <stdint.h>

/* Validates one decoded order that came in a message from `sender`, applies
 * it to the table with `sync` and fills its result (answered by `worker_id`
 * at `now_ns`: one clock reading per message, not per order) and, when
 * `outcome` is not NULL, what sp_commit decided (the journal needs it).
 * Returns 0 when the stock changed (*chg says how), SP_E_INVALID when the
 * order was refused or answered as a duplicate (the result's status says
 * which), or sp_commit's negative errno (-EROFS, -EUSERS: the result says
 * INVALID). */
int sp_apply_order(sp_table_t *table, sp_sync_t sync, const sp_order_t *o, uint32_t sender,
                   uint32_t worker_id, uint64_t now_ns, sp_result_t *res, sp_change_t *chg,
                   sp_outcome_t *outcome);

#endif
