/*
 * sp_once — one order from the command line: `producer buy | restock |
 * reserve | buy-held | release ...` places it and waits for its result.
 *
 * The order goes out on a client of its own (sp_client) and is resent,
 * with the same (producer, seq), while it stays unanswered, backing off as
 * the load's customers do; the workers apply it once whatever happens.  A
 * reserve registers its producer id with no pid, so its hold outlives this
 * process until it expires, and the buy-held or release that follows names
 * that id (as_producer); a reused id's order numbers are taken from the
 * clock, above any it used before.
 *
 * Ownership: each call opens its own client and closes it before it
 * returns; the result is written to the caller's.  Errors: negative codes
 * with *why.  Blocks up to the timeout given (plus the client's own
 * waits to connect).  Safe from any thread or process: each call has its
 * own client.
 */
#ifndef SP_ONCE_H
#define SP_ONCE_H

#include "sp_wire.h"

#include <stddef.h>
#include <stdint.h>

#define SP_ONCE_EPOCH_MS 1704067200000ull /* 2024-01-01, for seqs of a reused id */

/* One order from the command line, holds included. */
typedef struct {
    const char *instance;
    unsigned type; /* SP_ORDER_* */
    uint32_t product, qty;
    uint16_t hold_s;      /* reserve: seconds (0: the default) */
    uint32_t as_producer; /* buy-held/release of an earlier reserve: its producer id */
    const char *cert;     /* --cert, as in sp_client_cfg_t */
    const char *connect;  /* --connect and --server-cert, as in sp_client_cfg_t */
    const char *server_cert;
} sp_once_t;

/* Places the order and waits up to timeout_ms for its result.  Returns 0
 * with *res filled (any status; a duplicate's original outcome is in
 * res->original), or a negative code with *why: sp_client_open's codes, a
 * link's error, SP_E_TIMEOUT (no answer in time).  *producer (may be NULL)
 * gets the producer id used once the client is connected (a reserve's, for
 * the buy-held or release that follows). */
int sp_once_place(const sp_once_t *req, int timeout_ms, sp_result_t *res, uint32_t *producer,
                  char *why, size_t cap);

#endif
