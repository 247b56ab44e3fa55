/*
 * sp_journal — an append-only, checksummed journal of applied orders.
 *
 * Each writer process (a worker) appends one fixed-size record per order
 * outcome to a file of its own, so no two processes ever append to the same
 * file and no locking is needed.  After a crash, recovery scans every
 * journal: a record that fails its checksum at the very end is the write
 * the crash interrupted (a torn tail) and is dropped; a bad record with good
 * records after it is real corruption, and recovery refuses to guess.
 *
 * On-disk format, version 1.  Every integer little-endian, fixed width, no
 * padding; CRC = CRC-32C (sp_crc.h).
 *
 *   File header, 64 bytes:
 *     off  0  8 bytes  magic "SPJOURN1"
 *     off  8  u32      format version (1)
 *     off 12  u32      record size (64)
 *     off 16  u64      table_id: identity of the table the journal belongs to
 *     off 24  u32      writer id (worker id)
 *     off 28  u32      writer pid
 *     off 32  u64      created_ns (CLOCK_REALTIME)
 *     off 40  20 bytes reserved, zero
 *     off 60  u32      CRC of bytes 0..59
 *
 *   Records, 64 bytes each, right after the header, one after another:
 *     off  0  u32  CRC of bytes 4..63
 *     off  4  u16  kind (1 = order outcome, 2 = rebase; others reserved,
 *                  passed through)
 *     off  6  u8   type (order type)
 *     off  7  u8   status (outcome status)
 *     off  8  u32  producer_id
 *     off 12  u32  product_id
 *     off 16  u64  seq
 *     off 24  u32  quantity
 *     off 28  u32  version (row version after the change, or observed when
 *                  refused)
 *     off 32  u32  stock_after
 *     off 36  u32  worker_id
 *     off 40  u64  ts_ns
 *     off 48  u64  aux (e.g. hold id / expiry)
 *     off 56  u64  aux2
 *
 * A rebase record (kind 2) is written by a recovery that rebuilt a table
 * across versions no record holds: orders that workers applied in memory
 * but had not journaled (so never answered) when the shop crashed, while
 * another worker journaled later versions of the same product.  Such
 * orders are rolled back.  The record says so for product_id: the row goes
 * on at `version` (one past the last record) with stock_after, the stock
 * the journaled orders leave; quantity counts the versions rolled back
 * below it; status is accepted, producer_id SP_SYSTEM_PRODUCER, seq 0.
 *
 * Records are never padded to sectors and never rewritten: a file is its
 * header followed by whole records, plus at most a cut tail after a crash.
 *
 * Ownership: sp_journal_open allocates the handle and sp_journal_close frees
 * it (NULL-safe); records are encoded into and decoded from the caller's
 * buffers.  Errors: 0 or -errno (SP_E_* for what a scan finds), with *why
 * naming the path and the step; a failed append or sync is sticky.  Blocking:
 * every call that touches a file blocks on the disk, for as long as the fsync
 * policy asks.  Threads and processes: a handle is not locked and belongs to
 * one thread (its background syncer, when started, is the handle's own);
 * each writer appends to a file of its own, so writers never
 * share one; scanning and truncating are safe from any thread, truncating
 * only once nobody writes the file.
 */
#ifndef SP_JOURNAL_H
#define SP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_JOURNAL_MAGIC        "SPJOURN1"
#define SP_JOURNAL_MAGIC_LEN    8
#define SP_JOURNAL_VERSION      1u
#define SP_JOURNAL_HDR_SIZE     64u
#define SP_JOURNAL_REC_SIZE     64u
#define SP_JOURNAL_MODE         0600
#define SP_JREC_KIND_OUTCOME    1u
#define SP_JREC_KIND_REBASE     2u
#define SP_JOURNAL_INTERVAL_MS  100u   /* "interval" without a number */
#define SP_JOURNAL_INTERVAL_MAX 60000u /* longest "interval:MS" */

/* One record, decoded.  Not the file layout: see the format above. */
typedef struct {
    uint16_t kind;
    uint8_t type, status;
    uint32_t producer_id, product_id;
    uint64_t seq;
    uint32_t quantity, version, stock_after, worker_id;
    uint64_t ts_ns, aux, aux2;
} sp_jrec_t;

/* When appended records reach the disk. */
typedef enum {
    SP_FSYNC_ALWAYS = 1, /* fdatasync before each append returns */
    SP_FSYNC_INTERVAL,   /* fdatasync when interval_ms passed since the last one */
    SP_FSYNC_NEVER,      /* the kernel's write-back decides */
} sp_fsync_policy_t;

typedef struct sp_journal sp_journal_t;

/* What sp_journal_scan found. */
typedef struct {
    bool has_header;   /* false: empty file or a header cut short */
    uint64_t table_id; /* header fields (0 without a header) */
    uint32_t writer_id;
    uint32_t writer_pid;
    uint64_t created_ns;
    uint64_t records;            /* valid records delivered to the callback */
    uint64_t tail_bytes_dropped; /* cut or torn tail ignored at the end */
    uint64_t valid_end;          /* offset just past the last good record (or header);
                                    0 when the header itself was cut */
} sp_journal_info_t;

/* Called by sp_journal_scan for each valid record, in file order, with the
 * record's byte offset in the file.  A non-zero return stops the scan and
 * becomes its result. */
typedef int (*sp_journal_cb)(void *ctx, const sp_jrec_t *rec, uint64_t offset);

/* Encodes r into the 64 file bytes at out, CRC included. */
void sp_jrec_encode(uint8_t out[SP_JOURNAL_REC_SIZE], const sp_jrec_t *r);

/* Decodes the 64 file bytes at in into *r.  Returns 0, or SP_E_CHECKSUM
 * when the CRC does not match (*r is then filled anyway, untrustworthy). */
int sp_jrec_decode(const uint8_t in[SP_JOURNAL_REC_SIZE], sp_jrec_t *r);

/* Creates a new journal at path (exclusive create, mode 0600: EEXIST is an
 * error, each writer picks a fresh name), writes and fsyncs its header and
 * fsyncs the directory, so the file exists durably before any record is
 * appended.  interval_ms is used with SP_FSYNC_INTERVAL only.  *out gets the
 * handle (NULL on failure).  Returns 0 or -errno (SP_E_USAGE for a bad
 * policy), with why (cap bytes) naming the step and the path.  Blocks on
 * disk I/O. */
int sp_journal_open(sp_journal_t **out, const char *path, uint64_t table_id, uint32_t writer_id,
                    sp_fsync_policy_t policy, unsigned interval_ms, char *why, size_t cap);

/* Appends n records (in order) with as few write() calls as possible (one
 * for up to an internal batch of records), then, with SP_FSYNC_ALWAYS,
 * fdatasyncs them.  Returns 0 or -errno.  A failed write or fdatasync is
 * returned, and from then on the journal refuses every append (returning
 * that first error again), because what reached the file is unknown.
 * Blocks on disk I/O (the sync with SP_FSYNC_ALWAYS). */
int sp_journal_append(sp_journal_t *j, const sp_jrec_t *recs, size_t n);

/* SP_FSYNC_INTERVAL's sync: fdatasyncs when records were appended since
 * the last sync and the interval has passed since it; nothing otherwise
 * (or for the other policies).  A writer calls it after answering what it
 * appended, so the disk is never in an answer's way, and when idle, so the
 * last records do not wait for the next append.  Returns 0 or the sticky
 * -errno, as sp_journal_append. */
int sp_journal_tick(sp_journal_t *j);

/* SP_FSYNC_INTERVAL's sync off the writer's thread: starts a thread that
 * fdatasyncs once per interval when records were appended since the last
 * sync, while the writer goes on appending (nothing else changes: with
 * this policy answers never waited for the disk).  sp_journal_tick then
 * only reports the syncer's first failure, which from then on also refuses
 * every append; sp_journal_close stops the thread first.  Returns 0 (also
 * for the other policies, which have no interval) or -errno with *why. */
int sp_journal_background(sp_journal_t *j, char *why, size_t cap);

/* fdatasync now, whatever the policy.  Returns 0 or -errno (a failure is
 * sticky, as for append). */
int sp_journal_sync(sp_journal_t *j);

/* Records written to the file through this handle so far (durable or not,
 * depending on the policy). */
uint64_t sp_journal_records(const sp_journal_t *j);

/* Of those, the records the last successful fdatasync covered. */
uint64_t sp_journal_synced(const sp_journal_t *j);

/* Syncs (unless the policy is SP_FSYNC_NEVER), closes and frees *j, and
 * sets *j to NULL.  NULL-safe.  Errors cannot be reported here: call
 * sp_journal_sync first when the result matters. */
void sp_journal_close(sp_journal_t **j);

/* Parses "always", "never", "interval" (SP_JOURNAL_INTERVAL_MS) or
 * "interval:MS" (1 .. SP_JOURNAL_INTERVAL_MAX).  *interval_ms is 0 for
 * always and never.  Returns 0 or SP_E_USAGE (outputs untouched). */
int sp_fsync_policy_parse(const char *s, sp_fsync_policy_t *p, unsigned *interval_ms);

/* "always", "interval", "never", or "?" for anything else. */
const char *sp_fsync_policy_name(sp_fsync_policy_t p);

/* Reads the journal at path from start to end, in chunks, and hands every
 * valid record to cb (NULL: just count).  info (may be NULL) is filled even
 * on failure, with what was found up to that point.
 *
 * Returns 0 for a good journal, including one that ends with a cut tail (a
 * partial record), a torn tail (a last record that fails its CRC, or several
 * that fail it when all after the first are zero-filled), an empty file, or
 * a file shorter than the header whose bytes agree with the magic (the
 * writer died creating it).  Otherwise: -ENOENT when missing (or another
 * -errno); SP_E_BAD_MAGIC, SP_E_BAD_VERSION, SP_E_BAD_SIZE (record size) or
 * SP_E_CHECKSUM for a bad header; SP_E_JOURNAL_CORRUPT for a bad record
 * followed by any whole record that is not all zero bytes (corruption in the
 * middle, not a crash), in which case nothing after the bad record is
 * delivered; or cb's non-zero result.  why names the path and,
 * for corruption, the offset and record number.  Blocks on disk I/O. */
int sp_journal_scan(const char *path, sp_journal_cb cb, void *ctx, sp_journal_info_t *info,
                    char *why, size_t cap);

/* Cuts the file at path down to valid_end bytes (from sp_journal_scan) and
 * fsyncs it, so a dropped tail cannot end up in the middle of the file.
 * Only for journals nobody writes any more.  Returns 0, -EINVAL when the
 * file is shorter than valid_end, or -errno. */
int sp_journal_truncate_tail(const char *path, uint64_t valid_end);

#endif
