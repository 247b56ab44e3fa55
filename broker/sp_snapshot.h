/*
 * sp_snapshot — the table on disk, so the journal can start over.
 *
 * Every --snapshot-every seconds the broker starts a new journal epoch
 * (workers switch to new files between messages), and once every live
 * writer has switched it saves the whole table — rows with their versions
 * and counters, the producers' dedup windows, the live holds — atomically to
 * `<state-dir>/<instance>/snapshot.bin` (temporary file, fsync, rename,
 * fsync of the directory).  Every journal record of an older epoch is then
 * contained in the snapshot, so those files are removed.  Recovery loads the
 * snapshot and replays the newer journals on top (sp_recover.h).
 *
 * Rows are read one at a time while workers run: each row image is settled
 * and self-consistent (stock, version, counters and last key of one
 * version), which is all a per-product replay by version needs.
 *
 * Format (little-endian, version 1): a 64-byte header ("SPSNAP01", version,
 * row/entry/hold counts, table identity, next producer id, system seq,
 * epoch), the rows, the dedup entries, the holds, and a CRC-32C of
 * everything before it.  A snapshot that fails its checksum, size or counts
 * refuses to load, naming the file.
 *
 * Ownership: the file is written from and read into the caller's table;
 * sp_snapshot_catalogue hands the caller a catalogue to destroy.  Errors: 0,
 * -errno, or SP_E_BAD_LAYOUT for a file that is not a whole snapshot this
 * build reads (-EUSERS: more producers' holds than a table remembers), with
 * *why naming the file.  Blocking: on the disk (save: temporary file, fsync,
 * rename).  Threads and processes: a save reads the table while any number of
 * processes apply orders; a restore writes a table nobody else uses yet.
 */
#ifndef SP_SNAPSHOT_H
#define SP_SNAPSHOT_H

#include "sp_table.h"

#include <stddef.h>
#include <stdint.h>

#define SP_SNAPSHOT_BIN "snapshot.bin"
#define SP_SNAPSHOT_MAX (1ull << 31) /* largest snapshot file accepted */

typedef struct {
    uint64_t epoch; /* journals of epochs below this are contained */
    uint32_t rows, entries, holds;
    size_t bytes;
} sp_snapshot_info_t;

/* Saves the table to `path` atomically.  Returns 0 or -errno / SP_E_* with
 * *why; on failure the previous file is left as it was. */
int sp_snapshot_save(sp_table_t *t, const char *path, uint64_t epoch, sp_snapshot_info_t *info,
                     char *why, size_t cap);

/* Reads the catalogue part of a snapshot (the products, with the stock they
 * had), to create a table from.  The caller destroys *cat. */
int sp_snapshot_catalogue(const char *path, sp_catalogue_t **cat, char *why, size_t cap);

/* Restores rows, dedup entries, holds and header counters from the snapshot
 * into `t`, a table just created from sp_snapshot_catalogue.  Returns 0 or
 * an error with *why. */
int sp_snapshot_restore(sp_table_t *t, const char *path, sp_snapshot_info_t *info, char *why,
                        size_t cap);

#endif
