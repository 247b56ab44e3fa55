/*
 * sp_persist — snapshots, journal epochs and pruning, the final save
 * (sp_persist.c says what is kept where).
 *
 * Ownership: the files under the state directory are the broker's; the
 * snapshot schedule and the epoch live in its context.  Blocking: saving
 * blocks on the disk for as long as a table takes to write; a snapshot
 * waits for the workers to move to the new epoch across loop turns, never
 * inside one.  Broker thread only (the two functions that take a
 * directory touch no broker and are plain file work).  Failures are
 * reported, never returned: the journal stays whole when a save fails, so
 * a later start recovers everything.
 */
#ifndef SP_PERSIST_H
#define SP_PERSIST_H

#include "sp_broker.h"

#include <stdbool.h>
#include <stdint.h>

/* Removes the journal files in `dir` of epochs below `below` (a snapshot
 * contains them), or when `keep` renames them to NAME.log.kept, which
 * recovery ignores and the chaos checker reads.  *max_epoch (may be NULL)
 * gets the highest epoch seen.  Returns how many files went. */
unsigned sp_persist_prune(const char *dir, uint32_t below, uint32_t *max_epoch, bool keep);

/* Removes every journal file (kept ones too) in `dir`, then `dir`. */
void sp_persist_remove_journal(const char *dir);

/* Schedules the first periodic snapshot --snapshot-every from now. */
void sp_persist_arm(sp_broker_t *b);

/* One loop turn's share: starts a new epoch when a snapshot is due, saves
 * it once every live writer moved to it.  `now` is sp_now_ns(). */
void sp_persist_tick(sp_broker_t *b, uint64_t now);

/* After the workers stopped: returns held units to stock (journaled),
 * saves table.csv (its path into the closing stats) and retires the
 * journal, or says why not and keeps it. */
void sp_persist_final(sp_broker_t *b);

#endif
