/*
 * sp_direct — the `direct` "transport": no transport at all.
 *
 * A producer applies its own orders to the table, as the original shop's
 * processes did (sp_apply, in the producer's process), and its link answers
 * each order message with the result message at once.  The broker starts
 * no workers for it and creates nothing.  It is the benchmark's measure of
 * what a path costs; it is the only transport whose producers map the
 * table.  There is no worker end: opening one is SP_E_USAGE.
 */
#ifndef SP_DIRECT_H
#define SP_DIRECT_H

#include "sp_transport.h"

extern const sp_transport_t sp_transport_direct;

#endif
