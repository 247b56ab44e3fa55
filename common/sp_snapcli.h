/*
 * sp_snapcli — one whole snapshot of the table, asked of the broker's
 * snapshot service (broker/sp_snapsrv.c) and waited for.
 *
 * For a client that does not map the table: a producer on another host
 * learning the catalogue's product ids, and auditing the stock after its
 * run.  (The monitor keeps its own non-blocking client: it interleaves
 * snapshots with its event feed.)  It asks with SNAP_REQ, reads SNAP_BEGIN
 * (table identity and size), SNAP_ROWS (every present product, as of one
 * settled version each) and SNAP_END (rows sent, held units), and asks
 * again with a new request number if the service was busy and said nothing
 * for SP_SNAPCLI_RETRY_MS.
 *
 * Ownership: the caller's callback gets each row, borrowed for the call;
 * nothing is kept after it returns.  Errors: 0 or a negative code with
 * *why (below).  Blocks up to the timeout it is given.  Uses its own
 * ZeroMQ socket: safe from any thread, one fetch per call.
 */
#ifndef SP_SNAPCLI_H
#define SP_SNAPCLI_H

#include "sp_curve.h"
#include "sp_wire.h"

#include <stddef.h>
#include <stdint.h>

#define SP_SNAPCLI_RETRY_MS 2000

/* What SNAP_BEGIN and SNAP_END said. */
typedef struct {
    uint32_t capacity; /* table rows: the highest product id */
    uint32_t products; /* products in the catalogue */
    uint32_t rows;     /* rows the answer carried */
    uint64_t held;     /* held (reserved) units in those rows */
    uint64_t created_ns;
} sp_snapinfo_t;

/* Called for every row, in id order. */
typedef void (*sp_snapcli_row_fn)(void *ctx, const sp_snaprow_t *row);

/* Fetches one snapshot from `endpoint` (ipc:// or tcp://; with server_key
 * set and not empty, as a CURVE client with `keys`).  Returns 0 with *info
 * filled and `row` called for each row, SP_E_TIMEOUT (no whole answer in
 * timeout_ms), SP_E_USAGE (no endpoint, or CURVE without keys) or -errno;
 * *why says which. */
int sp_snapcli_fetch(const char *endpoint, const char *server_key, const sp_curve_keys_t *keys,
                     int timeout_ms, sp_snapcli_row_fn row, void *ctx, sp_snapinfo_t *info,
                     char *why, size_t why_cap);

#endif
