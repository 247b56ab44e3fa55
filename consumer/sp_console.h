/*
 * sp_console — the monitor's full-screen view (ncurses), drawn from a mirror.
 *
 * The monitor's loop owns the feed; it calls sp_console_keys() when the
 * terminal has input (or on every turn) and sp_console_draw() at least ten
 * times a second.  The console draws only the rows that fit on the screen,
 * so a catalogue of a million products costs no more per frame than ten;
 * sorting and filtering work on an index of ids that is rebuilt only when the
 * filter changes or (for stock and activity order) a few times a second.
 *
 * Keys: q quit, ? or h help, p or space pause, i / s / a sort by id / stock /
 * activity, / filter by name or category (Enter applies, Esc clears),
 * arrows, PgUp/PgDn, Home/End scroll.  A terminal resize redraws at the new
 * size.
 *
 * Ownership: sp_console_open allocates the console and takes over the
 * terminal, sp_console_close gives it back and frees it; the mirror is
 * borrowed for each call.  Errors: only open fails (-ENOTTY, -ENOMEM).
 * Blocking: none (keys are read without waiting); a frame is written to
 * the terminal at once.  Threads: ncurses state is process-wide, so one
 * console per process, used by one thread.  sp_view_order needs no
 * console and is safe from any thread on its own arrays.
 */
#ifndef SP_CONSOLE_H
#define SP_CONSOLE_H

#include "sp_mirror.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_CONSOLE_FRAME_MS     100  /* redraw period */
#define SP_CONSOLE_HIGHLIGHT_MS 1000 /* a changed row stays highlighted this long */
#define SP_CONSOLE_FILTER_MAX   64

typedef enum { SP_SORT_ID = 0, SP_SORT_STOCK = 1, SP_SORT_ACTIVITY = 2 } sp_sort_t;

typedef struct {
    const char *title;  /* shown in the header: instance name or endpoint */
    uint32_t low_stock; /* stock at or below this is "low"; 0 = 10 % of the initial stock */
} sp_console_cfg_t;

typedef struct sp_console sp_console_t;

/* Takes over the terminal (stdin/stdout must be a terminal).  Returns 0 or
 * -ENOTTY / -ENOMEM. */
int sp_console_open(sp_console_t **out, const sp_console_cfg_t *cfg);

/* Gives the terminal back (endwin); NULL-safe, nulls the pointer. */
void sp_console_close(sp_console_t **self_p);

/* File descriptor to poll for key presses. */
int sp_console_fd(const sp_console_t *self);

/* Handles every pending key (never blocks).  Returns false once the user
 * asked to quit. */
bool sp_console_keys(sp_console_t *self, const sp_mirror_t *mirror, uint64_t now_ns);

/* Draws one frame (header, worker lines, visible rows, banners). */
void sp_console_draw(sp_console_t *self, const sp_mirror_t *mirror, uint64_t now_ns);

/* A sharded shop (a merged mirror, sp_mirror_new_merged): one entry per
 * shard, drawn as a line of their own under the counters.  `health` is the
 * shard's word (sp_shardmon.h), `ok` whether it is "up". */
#define SP_CONSOLE_SHARDS_MAX 16
typedef struct {
    char name[64];
    const char *health; /* a static string */
    bool ok;
    uint32_t products, lo, hi; /* how many it has, its lowest and highest id */
} sp_console_shard_t;

/* Sets what the next frames show of the shards (a copy; n 0: none, the
 * unsharded console). */
void sp_console_shards(sp_console_t *self, const sp_console_shard_t *shards, unsigned n);

/* The view's row order, without a terminal (used by the console and tested
 * directly): writes to ids[0..] the ids of the catalogue's products whose
 * name or category contains `filter` (case-insensitive; NULL or "" = all), in
 * `sort` order — id ascending; stock ascending then id; most recently changed
 * first, then id.  `ids` has room for sp_mirror_capacity() entries.  Returns
 * how many it wrote. */
size_t sp_view_order(const sp_mirror_t *mirror, sp_sort_t sort, const char *filter, uint32_t *ids);

#endif
