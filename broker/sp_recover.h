/*
 * sp_recover — rebuilding a lost table from its base and its journal.
 *
 * The state directory of an instance (`<state-dir>/<instance>/`) holds
 *
 *   base.csv        the catalogue the current table was created from (saved
 *                   atomically when the table is created, removed at a clean
 *                   stop together with the journal)
 *   journal/X.log   every order outcome decided since then, one file per
 *                   writer (sp_journal.h)
 *   table.csv       the final table of the last clean stop
 *
 * When the broker starts and finds no table in shared memory but a base and
 * journal files, the last run did not stop cleanly and its segment is gone
 * (a reboot, or someone removed it): the table is rebuilt from base.csv,
 * replaying the journal per product in row-version order, and the producers'
 * dedup windows are refilled from the newest records, so resent copies of
 * journaled orders are still recognised.  Every accepted order bumped its
 * row's version by one, so the versions of a product run 1, 2, 3, ...  A
 * repeat means a record is doubled, and recovery refuses to guess.  A gap
 * is what a crash leaves when a worker had applied an order in memory and
 * not yet journaled it (nor answered it) while another worker journaled a
 * later version of the same row: the lost order is rolled back (its
 * customer's resend is applied afresh), the row goes on from the stock its
 * records leave, and a rebase record (sp_journal.h) in a journal file of
 * its own keeps the chain whole for the next replay.  A gap where only one
 * writer journaled, or records that leave an impossible stock, cannot be a
 * crash's: refused.
 *
 * Ownership: replays onto the caller's table, which nobody else uses yet
 * (the broker rebuilds before any worker starts), and frees whatever it
 * allocates on the way.  Errors: 0, SP_E_JOURNAL_CORRUPT (also for a
 * journal of another table, or held units no live hold accounts for), a
 * journal's own codes from sp_journal_scan, or -errno; *why names the file
 * and byte or the product and version.  Blocking: reads every journal file
 * whole.  One thread; nothing here is shared.
 */
#ifndef SP_RECOVER_H
#define SP_RECOVER_H

#include "sp_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_BASE_FILE    "base.csv"
#define SP_JOURNAL_DIR  "journal"
#define SP_CLEAN_MARK   "clean-stop" /* a clean stop kept its journal (--keep-journal) */
#define SP_RECOVER_SHOW 4            /* problems named in a refusal */

typedef struct {
    uint64_t files;      /* journal files read */
    uint64_t records;    /* outcome records */
    uint64_t accepted;   /* of which accepted (changed a row) */
    uint64_t tail_bytes; /* cut or torn tails dropped */
    uint32_t products;   /* rows that changed */
    uint32_t producers;  /* producers whose windows were refilled */
    uint32_t max_producer_id;
    uint64_t system_seq;  /* the broker's last order (expired holds) */
    uint32_t holds;       /* live holds restored (released at the next expiry pass) */
    uint64_t rolled_back; /* versions no record held: applied, never journaled, rolled back */
    uint32_t rebased;     /* rows whose rebase record this replay journaled */
} sp_recover_stats_t;

/* True for the name of a journal file recovery reads (NAME.log; files a
 * snapshot contains and --keep-journal kept are NAME.log.kept). */
bool sp_recover_is_journal(const char *name);

/* True when `journal_dir` holds at least one *.log file. */
bool sp_recover_has_journal(const char *journal_dir);

/* Replays every journal in `journal_dir` onto `t`, a table just created from
 * the base or restored from a snapshot (`from_snapshot`: then the journals
 * must carry the snapshot's table id; otherwise the table takes theirs).  Returns 0,
 * SP_E_JOURNAL_CORRUPT (a corrupt record in the middle of a file, or versions that do not run
 * without a gap: *why says which file and byte or which product and version), or -errno. */
int sp_recover_replay(sp_table_t *t, const char *journal_dir, bool from_snapshot,
                      sp_recover_stats_t *st, char *why, size_t cap);

#endif
