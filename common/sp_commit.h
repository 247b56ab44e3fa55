/*
 * sp_commit — exactly-once application of orders to the shared table.
 *
 * The commit record (docs/RECOVERY.md has the whole argument):
 *
 * 1. Every order has a key, (producer id, seq).  The dedup region keeps, per
 *    producer, a window of SP_DEDUP_WINDOW entries; seq s lives in entry
 *    s % SP_DEDUP_WINDOW.  An entry's control word holds the seq, a state
 *    (FREE, PENDING, DONE, JOURNALED) and, while PENDING, the pid of the
 *    process applying it.  Claiming an order is one compare-and-swap of that
 *    word to PENDING; a second copy of the order finds it PENDING or DONE and
 *    is answered as a duplicate with the recorded outcome, never applied.
 *
 * 2. A row's stock word and `last`, the key of the order that made the
 *    current version, change together in one 16-byte compare-and-swap (cas)
 *    or store (under the row or table lock).  So whether an order changed the
 *    row is one atomic fact: the row's `last` names it.
 *
 * 3. Before anyone moves a row past version v, it *settles* v: brings the
 *    row's counters up to v (they carry the version they include, so doing
 *    it twice is harmless) and marks v's order DONE with its outcome.  So an
 *    order is PENDING only while its row still shows it as `last`, or while
 *    it has not changed the row at all.
 *
 * 4. A process that dies leaves at most PENDING entries (and, under a lock,
 *    an in-progress record naming its order).  Whoever finds one whose owner
 *    is dead resolves it: if the row's `last` is that order, roll forward
 *    (settle); otherwise it never happened, roll back (entry FREE again, so a
 *    resent copy applies it).  Nothing else can be half done.
 *
 * The `cas` strategy never holds a lock; `row-lock` and `table-lock` hold a
 * robust mutex, and whoever gets EOWNERDEAD runs the same resolution on the
 * holder's in-progress record before marking the mutex consistent
 * (s_repair, one place).
 *
 * Ownership: the dedup region (slots, windows, holds) lives in the table's
 * segment, after the rows; its layout below is part of the table's
 * contract between processes.  This module allocates nothing and works on
 * the caller's mapping.  Errors: an order's fate is its outcome (a refusal
 * is a status, not an error); the int returns are 0 or a negative errno
 * (-EROFS: a read-only mapping; -EUSERS: no dedup slot left; -EEXIST: a
 * live other process has the producer id).  Blocking: `cas` never blocks;
 * `row-lock` and `table-lock` wait at most SP_LOCK_TIMEOUT_MS for their
 * lock (an order that times out is rolled back and may be resent); the
 * registry lock, taken when a producer's slot is first claimed, is waited
 * for without a timeout (its holders do a bounded amount of work).
 * Threads and processes: every function is safe from any thread of any
 * process at once, except the restore functions and sp_commit_idle_all,
 * which recovery calls on a table nobody else uses yet, and the test hook,
 * which is one per process.
 */
#ifndef SP_COMMIT_H
#define SP_COMMIT_H

#include "sp_table.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* SP_DEDUP_IDLE_MS: longer than a C client resends an order (SP_RESULT_TIMEOUT_MS, 10 s) */
#define SP_DEDUP_SLOTS        256   /* producers remembered at once */
#define SP_DEDUP_WINDOW       4096  /* orders remembered per producer (a power of two) */
#define SP_DEDUP_IDLE_MS      15000 /* one with no process silent this long may lose its slot */
#define SP_HOLDS_PER_PRODUCER 16    /* live holds one producer may have */
#define SP_HOLD_DEFAULT_S     30    /* a reserve's hold lasts this long unless it says */
#define SP_HOLD_MAX_S         3600  /* the longest a reserve may ask for */
#define SP_SYSTEM_PRODUCER    0xfffffffe /* the broker's own orders (expired holds) */

/* Dedup entry states. */
enum { SP_DE_FREE = 0, SP_DE_PENDING = 1, SP_DE_DONE = 2, SP_DE_JOURNALED = 3 };

/* One producer's slot header. */
typedef struct {
    _Atomic uint32_t producer; /* 0: free */
    _Atomic int32_t pid;       /* who registered it (C producers), 0 if unknown */
    _Atomic uint64_t used_ns;  /* last order seen (monotonic clock) */
    _Atomic uint64_t claims;   /* times this slot was (re)claimed */
    uint64_t reserved;
} sp_dslot_t;

/* One remembered order. */
typedef struct {
    _Atomic uint64_t ctl;  /* seq << 24 | pid << 2 | state */
    _Atomic uint64_t what; /* product << 32 | quantity << 8 | type */
    _Atomic uint64_t res;  /* version << 32 | stock (after, or the stock that refused it) */
    _Atomic uint64_t out;  /* outcome status (SP_STATUS_*) */
} sp_dentry_t;

/* A hold: units of one product reserved by one producer until `expiry_ns`
 * (CLOCK_MONOTONIC).  Its state word is seq << 8 | state, seq being the
 * reserve order's: CLAIMED while the reserve is being applied, HELD once
 * applied, FREE again when bought, released, expired or rolled back. */
typedef struct {
    _Atomic uint64_t ctl;
    _Atomic uint32_t product;
    _Atomic uint32_t qty;
    _Atomic uint64_t expiry_ns;
    _Atomic int32_t pid; /* the holder's process (0: unknown, expiry only) */
    uint32_t reserved;
} sp_hold_t;
enum { SP_HOLD_FREE = 0, SP_HOLD_CLAIMED = 1, SP_HOLD_HELD = 2 };

_Static_assert(sizeof(sp_dslot_t) == 32, "slot layout");
_Static_assert(sizeof(sp_hold_t) == 32, "hold layout");
_Static_assert(sizeof(sp_dentry_t) == 32, "entry layout");
_Static_assert((SP_DEDUP_WINDOW & (SP_DEDUP_WINDOW - 1)) == 0, "window is a power of two");

/* Bytes the dedup region needs (the table reserves them). */
size_t sp_commit_region_bytes(void);

/* What one commit did. */
typedef struct {
    uint8_t status;   /* SP_STATUS_* of the answer */
    uint8_t original; /* DUPLICATE: the first outcome or SP_ORIGINAL_*; else = status */
    bool changed;     /* this call changed the row (publish an event) */
    uint32_t old_stock;
    uint32_t stock;   /* after the change, or the stock that refused it */
    uint32_t version; /* row version after (or seen) */
    /* the caller must journal this outcome (journal_status) and then call
     * sp_commit_journaled: it decided it, or it took over a dead process's
     * unjournaled one */
    bool journal;
    uint8_t journal_status;
    /* holds: the producer and reserve seq of the hold this order made or
     * acted on (0 for other types); journaled so a replay knows which hold */
    uint32_t holder;
    uint64_t hold_seq;
} sp_outcome_t;

/* Applies one order exactly once with strategy `sync`.  Fills *out (always);
 * returns 0, or a negative errno when the table cannot be written at all
 * (-EROFS) or the dedup region has no room for another producer (-EUSERS;
 * the order is answered INVALID and changes nothing). */
int sp_commit_order(sp_table_t *t, sp_sync_t sync, const sp_order_t *o, sp_outcome_t *out);
/* The same with the caller's reading of the monotonic clock (a worker reads
 * it once per message, not once per order). */
int sp_commit_order_at(sp_table_t *t, sp_sync_t sync, const sp_order_t *o, uint64_t now_ns,
                       sp_outcome_t *out);

/* Applies a purchase or restock without a key (tests and tools: no
 * de-duplication).  Returns 0 or the refusal code, like sp_table_apply. */
int sp_commit_anonymous(sp_table_t *t, sp_sync_t sync, unsigned type, uint32_t id, uint32_t qty,
                        sp_change_t *chg);

/* Marks the outcome of (producer, seq) as journaled (DONE -> JOURNALED),
 * after the caller's journal append succeeded. */
void sp_commit_journaled(sp_table_t *t, uint32_t producer, uint64_t seq);

/* One recorded outcome, for journaling on a dead process's behalf. */
typedef struct {
    uint32_t producer, product, quantity, version, stock;
    uint64_t seq;
    uint8_t type, status;
    pid_t owner;       /* the (dead) process that decided it */
    uint32_t holder;   /* holds: whose hold (see sp_outcome_t) */
    uint64_t hold_seq; /* and its reserve's seq (low 32 bits when recovered) */
} sp_commit_view_t;
typedef int (*sp_commit_visit_fn)(void *ctx, const sp_commit_view_t *v);

/* Takes over every DONE-but-unjournaled outcome of `producer` (0: of every
 * producer) whose owner is dead (or is `dead_pid`, when > 0) and hands it to
 * `visit`; when visit returns 0 the outcome is marked journaled.  Returns
 * how many were handed over.  The owner may have died between appending to
 * its journal and marking the outcome: visit must check the owner's journal
 * tail before writing. */
unsigned sp_commit_unjournaled(sp_table_t *t, uint32_t producer, pid_t dead_pid,
                               sp_commit_visit_fn visit, void *ctx);

/* Recovery (sp_recover.c) rebuilding a table from its journal: sets a row's
 * stock, version, counters and last key, and remembers one journaled
 * outcome in its producer's window (newer seqs win).  The table must not be
 * in use.  restore_entry returns 0 or -EUSERS (no slot left). */
void sp_commit_restore_row(sp_table_t *t, uint32_t id, uint32_t stock, uint32_t version,
                           uint64_t sold, uint64_t restocked, uint32_t held, uint64_t last_key);
int sp_commit_restore_entry(sp_table_t *t, const sp_commit_view_t *v);

/* Resolves the orders of `producer` that process `dead_pid` left PENDING
 * (the supervisor calls it when a worker died handling that producer's
 * message).  Returns how many it rolled forward or back. */
unsigned sp_commit_resolve(sp_table_t *t, uint32_t producer, pid_t dead_pid);

/* Settles every row whose last change is not completely recorded, then
 * resolves every PENDING entry whose owner is dead (start-up, re-attach,
 * after a worker died).  Returns how many rows and entries it finished. */
unsigned sp_commit_sweep(sp_table_t *t);

/* Registers `producer` for process `pid` (C producers call it once, so their
 * slot's owner is known).  Returns 0 or -EUSERS. */
int sp_commit_register(sp_table_t *t, uint32_t producer, pid_t pid);

/* A producer's HELLO (sp_hello.c): claims the slot of `producer` for
 * process `pid` (0: none that can be watched, such as a client on another
 * host; its slot is then reclaimed only when idle).  An existing slot is
 * kept, window and holds, and passes to `pid` (*resumed true) unless a live
 * other process owns it: -EEXIST.  Else a free or reclaimable slot is
 * taken (*resumed false), or -EUSERS when none is left. */
int sp_commit_claim(sp_table_t *t, uint32_t producer, pid_t pid, bool *resumed);

/* True while `producer` has a de-duplication slot that a new producer could
 * not take over: its owner process lives or, with none, it had an order
 * (or its HELLO) within SP_DEDUP_IDLE_MS.  The zmq router counts a
 * client's sessions with it.  Never blocks. */
bool sp_commit_holds_slot(sp_table_t *t, uint32_t producer);

/* Releases every hold past its expiry, or whose holder process is dead,
 * with an order of the broker's own (SP_SYSTEM_PRODUCER, seq from the
 * header's system_seq): the units go back to stock exactly once, like any
 * order.  `visit` (may be NULL) gets each release to journal (the release
 * is marked journaled when it returns 0).  Returns how many. */
unsigned sp_commit_expire_holds(sp_table_t *t, sp_sync_t sync, uint64_t now_ns,
                                sp_commit_visit_fn visit, void *ctx);

/* Live holds (HELD) of product `id` and their units, for tests and tools. */
unsigned sp_commit_holds(sp_table_t *t, uint32_t id, uint64_t *units);

/* Recovery: a hold the journal shows as live is restored as already expired
 * (its holder is gone with the crash), so the next expiry pass releases it
 * through a journaled order. */
int sp_commit_restore_hold(sp_table_t *t, uint32_t producer, uint64_t reserve_seq, uint32_t product,
                           uint32_t qty);

/* Snapshots (sp_snapshot.c).  A row's image: stock, version, counters and
 * last key of one settled version, read while others commit. */
typedef struct {
    uint32_t stock, version, held;
    uint64_t sold, restocked, last;
} sp_row_image_t;
void sp_commit_row_image(sp_table_t *t, sp_row_t *r, sp_row_image_t *img);

/* Every remembered outcome (DONE or JOURNALED) and every live hold. */
typedef void (*sp_commit_entry_fn)(void *ctx, uint32_t producer, uint64_t seq, uint64_t what,
                                   uint64_t res, uint64_t out);
typedef void (*sp_commit_hold_fn)(void *ctx, uint32_t producer, uint64_t reserve_seq,
                                  uint32_t product, uint32_t qty);
void sp_commit_each(sp_table_t *t, sp_commit_entry_fn entry, sp_commit_hold_fn hold, void *ctx);

/* Recovery: frees the hold (holder, reserve seq's low 32 bits) if it is
 * live (a journaled buy-held or release ended it after a snapshot). */
void sp_commit_end_hold(sp_table_t *t, uint32_t holder, uint32_t reserve_seq32);

/* After a rebuild: the producers restored from the journal or a snapshot
 * registered no pid; mark their slots idle so new producers may take them
 * over when the table is full (their windows are kept until then). */
void sp_commit_idle_all(sp_table_t *t);

/* Restores one remembered outcome exactly as saved (newer seqs win). */
int sp_commit_restore_raw(sp_table_t *t, uint32_t producer, uint64_t seq, uint64_t what,
                          uint64_t res, uint64_t out);

/* Test-only crash points inside the commit (docs/RECOVERY.md): when
 * sp_commit_hook is set it is called at each step and may kill the process. */
enum {
    SP_CP_CLAIMED = 1, /* entry PENDING, row untouched */
    SP_CP_LOCKED = 2,  /* lock held, in-progress record written, row untouched */
    SP_CP_CHANGED = 3, /* row changed, counters and entry not yet */
    SP_CP_TALLIED = 4, /* counters changed, entry not DONE yet */
    SP_CP_DONE = 5,    /* entry DONE, lock (if any) still held */
    SP_CP_COUNT = 6
};
extern void (*sp_commit_hook)(int point);

/* Installs a hook from SP_CRASH_COMMIT="POINT:ONE_IN" (for example "3:500":
 * SIGKILL at point 3 with probability 1/500), used by the chaos driver; a
 * no-op when the variable is unset.  Returns 0 or SP_E_USAGE. */
int sp_commit_hook_from_env(void);

#endif
