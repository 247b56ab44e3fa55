/*
 * sp_ledger — the producer's per-order ledger (--ledger-out DIR): one
 * record for every order's outcome as its customer learned it, appended to
 * DIR/ledger-<producer id>.bin.
 *
 * The ledger is what the chaos checker (tests/chaos/ledgercheck.c) holds
 * against the instance's journals, order by order, so the record is a file
 * format read by other processes and its layout, below, is the contract:
 * 32 bytes per order, little-endian,
 *
 *   off  0 u32 producer_id     off 12 u32 product_id
 *   off  4 u8  type            off 16 u32 quantity
 *   off  5 u8  status          off 20 u32 stock_after
 *   off  6..11 zero            off 24 u64 seq
 *
 * where status is the outcome's SP_STATUS_* or SP_LEDGER_TIMED_OUT (no
 * answer within the timeout: the order's fate is unknown to the producer).
 *
 * Ownership: sp_ledger_open allocates a writer (its buffer included) and
 * opens its file, sp_ledger_close closes and frees it.  Errors: negative
 * errno (with *why at open).  Blocking: a write(2) when the buffer fills or
 * is flushed.  The codec is pure and safe anywhere.  A writer (sp_ledger_t)
 * belongs to one customer, one thread at a time; it buffers at most
 * SP_LEDGER_BUF_RECS records and the customer flushes after each result
 * message, so a customer killed mid-run leaves every outcome it had been
 * told.  Each flush is one write(2) to a file opened O_APPEND, so records of
 * one file never interleave.
 */
#ifndef SP_LEDGER_H
#define SP_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#define SP_LEDGER_REC_SIZE  32
#define SP_LEDGER_TIMED_OUT 0xff
#define SP_LEDGER_BUF_RECS  256 /* records a writer holds before it must write */

/* One record, decoded. */
typedef struct {
    uint32_t producer_id;
    uint8_t type;
    uint8_t status;
    uint32_t product_id;
    uint32_t quantity;
    uint32_t stock_after;
    uint64_t seq;
} sp_ledger_rec_t;

/* Writes *r as SP_LEDGER_REC_SIZE bytes at out (the reserved bytes zero). */
void sp_ledger_encode(uint8_t *out, const sp_ledger_rec_t *r);

/* Reads SP_LEDGER_REC_SIZE bytes at in into *r. */
void sp_ledger_decode(const uint8_t *in, sp_ledger_rec_t *r);

typedef struct sp_ledger sp_ledger_t;

/* Creates DIR/ledger-<producer_id>.bin for appending (mode 0600; never an
 * existing file: a producer id is used once per instance).  Returns 0 with
 * *out, or a negative errno (-EEXIST, -ENOENT, -EACCES, -ENOMEM ...) with
 * *why naming the file. */
int sp_ledger_open(sp_ledger_t **out, const char *dir, uint32_t producer_id, char *why, size_t cap);

/* Buffers one record, writing the buffer first when it is full.  Returns 0,
 * or a negative errno when that write failed (-EIO: it wrote short); the
 * buffer is emptied either way, so a failure loses those records only. */
int sp_ledger_put(sp_ledger_t *self, const sp_ledger_rec_t *rec);

/* Writes what is buffered in one write(2).  Returns 0 or a negative errno as
 * sp_ledger_put. */
int sp_ledger_flush(sp_ledger_t *self);

/* Closes the file, dropping anything not flushed (flush first to keep it
 * and learn whether it was written).  NULL-safe, nulls the pointer. */
void sp_ledger_close(sp_ledger_t **self_p);

#endif
