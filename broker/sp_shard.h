/*
 * sp_shard — a broker as one shard of a catalogue split across brokers:
 * the range of product ids it owns (--products LO-HI), applied to whatever
 * its table is made from, and the export that moves a range to another
 * shard (--export LO-HI).
 *
 * A shard's table holds only products whose id is in its range; ids keep
 * their global values (row i is still id i + 1, the rows below the range
 * are absent).  What the range does depends on where the table comes from
 * (sp_startup.c says in which order it looks):
 *
 *   the catalogue (a new table)     rows outside the range are left out; a
 *                                   range that holds none is refused
 *   the last clean stop's table     rows outside the range are dropped only
 *                                   when the last --export took them away
 *                                   (the record below); else refused, naming
 *                                   them: that would discard saved stock
 *   a journal or snapshot to        refused when any row is outside: recover
 *   recover, a dead broker's table  first with a range that holds them
 *
 * --export writes the chosen rows of the last clean stop's table (their
 * current stock as the catalogue's stock) to a stream and leaves the
 * record SP_SHARD_EXPORTED ("LO-HI") in the state directory; the next start
 * of the instance consumes it, whatever its range.
 *
 * Ownership: works on the broker's context, the caller's catalogue and
 * files under the instance's state directory; allocates nothing it keeps.
 * Errors: 0 or a negative code with *why (SP_E_USAGE for a range that does
 * not fit the saved state, SP_E_CSV_EMPTY for one that holds no product).
 * Blocking: reads and writes small files.  Broker thread only; the export
 * runs in a process with no broker.
 */
#ifndef SP_SHARD_H
#define SP_SHARD_H

#include "sp_broker.h"
#include "sp_catalogue.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_SHARD_EXPORTED "exported" /* in the state directory: "LO-HI" the last --export took */
#define SP_SHARD_SHOW     4          /* product ids named in a refusal */

/* Where a table's products come from, for sp_shard_filter. */
typedef enum {
    SP_SHARD_FROM_CATALOGUE = 0, /* a new table */
    SP_SHARD_FROM_LAST = 1,      /* the last clean stop's table.csv */
    SP_SHARD_FROM_RECOVERY = 2   /* a snapshot or base plus a journal */
} sp_shard_from_t;

/* Applies the broker's range (if it has one) to `cat`, read from `path`
 * for a table made `from` there (above).  Returns 0 (the catalogue holds
 * only products in the range), SP_E_CSV_EMPTY or SP_E_USAGE with *why. */
int sp_shard_filter(sp_broker_t *b, sp_catalogue_t *cat, sp_shard_from_t from, const char *path,
                    char *why, size_t cap);

/* A dead broker's table about to be re-attached: every present row must be
 * in the range.  Returns 0 or SP_E_USAGE with *why. */
int sp_shard_check_table(sp_broker_t *b, char *why, size_t cap);

/* Once the table is ours: writes the range into its header (the WELCOME
 * publishes it) and consumes the export record. */
void sp_shard_claim(sp_broker_t *b);

#endif
