/*
 * sp_direct — the `direct` "transport": no transport at all.
 *
 * A producer applies its own orders to the table, as the original shop's
 * processes did (sp_apply, in the producer's process), and its link answers
 * each order message with the result message at once.  The broker starts
 * no workers for it and creates nothing.  It is the benchmark's measure of
 * what a path costs; it is the only transport whose producers map the
 * table.  There is no worker end: opening one is SP_E_USAGE.
 *
 * Ownership: a producer link maps the table read-write for itself
 * (sp_table_open) and keeps up to eight answered messages of its own;
 * sp_link_close unmaps and frees.  Errors: open fails with SP_E_USAGE (a
 * worker end), the table's codes (-ENOENT, SP_E_BAD_LAYOUT ...) or -ENOMEM;
 * send refuses a message that is not ORDERS or HELLO (-EPROTO) or whose
 * results would not fit (-EMSGSIZE), and says SP_E_TIMEOUT while eight
 * answers are unread.  Blocking: send applies the orders at once (a lock
 * strategy may wait up to SP_LOCK_TIMEOUT_MS per order); recv with nothing
 * queued sleeps its whole timeout, since nothing can arrive.  Threads and
 * processes: one link per thread, as for every transport; any number of
 * producers in any number of processes apply at once, through sp_apply.
 */
#ifndef SP_DIRECT_H
#define SP_DIRECT_H

#include "sp_transport.h"

extern const sp_transport_t sp_transport_direct;

#endif
