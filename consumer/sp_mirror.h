/*
 * sp_mirror — the monitor's own copy of the shop, kept exact the Clone way.
 *
 * The monitor subscribes to the event path first; once the first message has
 * come through (so its subscription is in place at the broker) it takes a
 * snapshot: every publisher's last event number, then every row's stock with
 * the row version that stock belongs to.  Events and snapshot rows are merged
 * by row version: a value replaces the mirror's only when its version is
 * newer.  That rule is commutative, so events that arrive before, during or
 * after the snapshot all land right, and the mirror equals the table as soon
 * as every event has arrived.
 *
 * Each publisher (worker) numbers its events 1, 2, 3, ... per incarnation (its
 * pid).  A jump in that sequence, or a heartbeat announcing events we never
 * saw, is a gap: the missed events are counted exactly, the mirror is marked
 * STALE and asks for a fresh snapshot; once a snapshot completes with no new
 * gap during it, the mirror is exact again (a resync).
 *
 * The broker's STATS messages (counters) are decoded here too, so the line
 * mode and the full-screen console draw from one model.  No I/O happens in
 * this module: the caller feeds it messages and snapshot rows.
 *
 * Ownership: sp_mirror_new allocates, sp_mirror_destroy frees; table rows
 * given to new are borrowed and must stay mapped while the mirror lives,
 * and so are the names in an sp_minfo_t; what the accessors return is the
 * mirror's, valid until it is destroyed.  Errors: new returns NULL on
 * ENOMEM; a message that is not valid is counted and answered with an
 * SP_E_* code, never trusted.  Nothing blocks.  Not locked: one thread
 * owns a mirror (the monitor's loop).
 */
#ifndef SP_MIRROR_H
#define SP_MIRROR_H

#include "sp_table.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_MIRROR_PUBS         (SP_WORKERS_MAX + 1) /* publisher 0 is the broker */
#define SP_MIRROR_SILENT_MS    2000 /* a publisher unheard for this long is silent */
#define SP_MIRROR_RATE_SAMPLES 256
#define SP_MIRROR_OUT_TAU_S    10.0 /* time constant of a product's out rate */

/* Dynamic state of one product as this monitor knows it. */
typedef struct {
    uint32_t stock;
    uint32_t version;    /* row version `stock` belongs to */
    bool known;          /* stock came from a snapshot or an event */
    bool present;        /* the product is in the catalogue */
    uint64_t changed_ns; /* monitor clock of the last change it applied (0: none) */
    uint64_t changes;    /* changes this monitor applied to the row */
    /* units the events took out of stock (purchases and holds), each decayed
     * by e^(-age / SP_MIRROR_OUT_TAU_S), as of changed_ns: the product's
     * recent out rate is this / tau (sp_mirror_out_rate) */
    float out_decayed;
} sp_mrow_t;

/* Static data of one product (valid while the mirror lives). */
typedef struct {
    uint32_t id;
    uint32_t weight_g;
    uint32_t expiry;
    uint32_t initial_stock;
    uint64_t price_cents;
    const char *name;
    const char *category;
} sp_minfo_t;

/* One publisher's event stream as seen from here. */
typedef struct {
    uint32_t pid;          /* incarnation (0: not heard from yet) */
    uint64_t last_seq;     /* events accounted for (received or counted as gaps) */
    uint64_t received;     /* events received */
    uint64_t gaps;         /* events missed */
    uint64_t last_seen_ns; /* monitor clock of its last message */
    uint32_t state;        /* SP_PUB_* from its last heartbeat */
    uint64_t orders;       /* orders it said it answered */
} sp_mpub_t;

/* A worker as the broker's STATS describe it (every field a counter value). */
typedef struct {
    uint64_t state; /* SP_WSTATE_* */
    uint64_t pid;
    uint64_t restarts;
    uint64_t deaths; /* abnormal ends the broker settled (SP_CTR_UNPUBLISHED) */
    uint64_t orders;
    uint64_t hb_age_ms;
    uint64_t pub_seq;
} sp_mworker_t;

/* The broker's latest STATS. */
typedef struct {
    bool valid;           /* at least one STATS message arrived */
    uint64_t received_ns; /* monitor clock when it arrived */
    uint64_t time_ns;     /* broker clock it was made at */
    uint64_t orders[SP_STATUS_COUNT];
    uint64_t event_seq;
    uint64_t lat_p50_ns, lat_p99_ns, lat_max_ns, lat_count;
    uint64_t depth[SP_HOP_COUNT];
    uint64_t depth_cap[SP_HOP_COUNT];
    uint64_t drops[SP_DROP_COUNT];
    uint64_t transport, sync, workers, capacity, products;
    uint64_t holds_released; /* rounds of the broker's own hold releases (SP_CTR_UNPUBLISHED [0]) */
    sp_mworker_t worker[SP_WORKERS_MAX + 1]; /* by worker id; [0] unused */
} sp_shopstats_t;

/* Applies the counters of one STATS message (sender 0) to *stats and sets
 * `valid`.  Returns 0, or a negative code for a message that is not one
 * (nothing changed). */
int sp_shopstats_decode(sp_shopstats_t *stats, const void *msg, size_t len);

/* Rates worked out from what arrived. */
typedef struct {
    double orders_1s;  /* orders answered per second over the last second */
    double orders_10s; /* ... over the last ten seconds */
    double events_1s;  /* events this monitor received per second */
} sp_mrates_t;

/* Everything the views show besides the rows. */
typedef struct {
    bool stale;            /* not known to be exact: before the first snapshot or after a gap */
    bool snapshot_running; /* a snapshot has begun and not ended */
    uint64_t events;       /* events received */
    uint64_t applied;      /* events that changed the mirror (newer than what it had) */
    uint64_t gaps;         /* events missed, all publishers */
    uint64_t gap_reports;  /* times a gap was detected */
    uint64_t snapshots;    /* snapshots completed */
    uint64_t resyncs;      /* snapshots that repaired a gap or a publisher's death */
    uint64_t deaths;       /* worker deaths learned from STATS (each a resync) */
    uint64_t releases;     /* rounds of the broker's hold releases learned (each a resync) */
    uint64_t invalid;      /* malformed or impossible messages ignored */
    uint64_t heartbeats;
    bool eos; /* the broker ended the stream */
} sp_mstate_t;

typedef struct sp_mirror sp_mirror_t;

/* A mirror of `capacity` rows.  `rows` non-NULL: static data is read from
 * those table rows (a local, read-only mapping); NULL: it comes with the
 * snapshot rows and the mirror keeps its own copy.  NULL on ENOMEM. */
sp_mirror_t *sp_mirror_new(uint32_t capacity, const sp_row_t *rows);

/* Frees the mirror.  NULL-safe, nulls the pointer. */
void sp_mirror_destroy(sp_mirror_t **self_p);

/* Rows the mirror has room for (the table's capacity). */
uint32_t sp_mirror_capacity(const sp_mirror_t *self);
/* The units per second that recently left row r's stock (purchases and
 * holds seen in events, decayed with SP_MIRROR_OUT_TAU_S) at monitor clock
 * now_ns; 0 for a row no event has taken from. */
double sp_mirror_out_rate(const sp_mrow_t *r, uint64_t now_ns);

/* Product `id`'s counters (units sold, restocked, held): read from the
 * table itself when the mirror maps it (*live true), else as the last
 * snapshot had them (*live false: held is what the snapshot's equation
 * left).  False when id is not a known product. */
bool sp_mirror_tally(const sp_mirror_t *self, uint32_t id, sp_tally_t *out, bool *live);

/* Product `id`'s row and static data; NULL/false when id is outside the table
 * or not (yet) known to be in the catalogue. */
const sp_mrow_t *sp_mirror_row(const sp_mirror_t *self, uint32_t id);
bool sp_mirror_info(const sp_mirror_t *self, uint32_t id, sp_minfo_t *out);

/* Product `id` as the table would print it (static data and the mirror's
 * stock) and its row version; false when its stock is not known. */
bool sp_mirror_product(const sp_mirror_t *self, uint32_t id, sp_product_t *p, uint32_t *version);

/* Called for every stock event received, with `applied` telling whether it
 * changed the mirror (false: the snapshot already had it or a newer one). */
typedef void (*sp_mirror_event_fn)(void *arg, const sp_event_t *event, bool applied);

/* Feeds one message from the event path (events, heartbeat, STATS, EOS).
 * Returns its kind, or a negative code for a message it ignored as invalid
 * (counted). */
int sp_mirror_feed(sp_mirror_t *self, const void *msg, size_t len, uint64_t now_ns,
                   sp_mirror_event_fn fn, void *arg);

/* Snapshot: begin with each publisher's incarnation and last event number,
 * read before any row (pid 0 = unused slot); then rows in any order; then
 * end.  A gap detected between begin and end keeps the mirror stale. */
void sp_mirror_snap_begin(sp_mirror_t *self, const uint32_t pid[SP_MIRROR_PUBS],
                          const uint64_t seq[SP_MIRROR_PUBS]);
/* Returns 0, or SP_E_UNKNOWN_PRODUCT for a row outside the table (ignored). */
int sp_mirror_snap_row(sp_mirror_t *self, const sp_snaprow_t *row, uint64_t now_ns);
void sp_mirror_snap_end(sp_mirror_t *self);

/* Takes a whole snapshot from a local table mapping (read-only). */
void sp_mirror_snap_local(sp_mirror_t *self, sp_table_t *table, uint64_t now_ns);

/* True when the mirror is stale and no snapshot is under way. */
bool sp_mirror_wants_snapshot(const sp_mirror_t *self);

/* Marks the mirror stale and asks for a snapshot (used when a remote snapshot
 * was cut short). */
void sp_mirror_invalidate(sp_mirror_t *self);

/* What the views show: the mirror's state, the broker's latest STATS,
 * publisher `publisher` (0: the broker; NULL past SP_MIRROR_PUBS) and the
 * rates as of `now_ns`.  The pointers are the mirror's, updated in place. */
const sp_mstate_t *sp_mirror_state(const sp_mirror_t *self);
const sp_shopstats_t *sp_mirror_stats(const sp_mirror_t *self);
const sp_mpub_t *sp_mirror_pub(const sp_mirror_t *self, uint32_t publisher);
void sp_mirror_rates(const sp_mirror_t *self, uint64_t now_ns, sp_mrates_t *out);

/* Units in stock over all known rows. */
uint64_t sp_mirror_units(const sp_mirror_t *self);

/*
 * A merged mirror: one read-only view of the mirrors of a sharded shop's
 * shards (sp_shardmon.h), for the views that draw from one mirror.  A row
 * is the row of the first shard that has the product (the shards own
 * disjoint ranges of ids); the state's flags and counters, the STATS
 * counters and the rates are the shards' put together: summed, except
 * `stale` and `snapshot_running` (any shard), `eos` (every shard), the
 * latencies (the slowest shard's percentile: an upper bound, not the
 * shop's own), the transport and strategy (the first shard's) and the
 * workers (the shards' in shard order, as many as SP_WORKERS_MAX holds).
 * The shards' mirrors are borrowed and must outlive it; sp_mirror_merge
 * brings it up to date (once a frame); it is fed nothing itself.
 */
#define SP_MIRROR_SHARDS_MAX 16

/* A merged view of `n` (1..SP_MIRROR_SHARDS_MAX) mirrors, as large as the
 * largest.  NULL on ENOMEM or a bad n. */
sp_mirror_t *sp_mirror_new_merged(const sp_mirror_t *const *shards, unsigned n);

/* Brings a merged mirror up to date with its shards as of `now_ns`: which
 * shard has each row (worked out again only when a shard's snapshot may
 * have added rows), the state, the STATS and the rates.  Also counts the
 * products more than one shard has (sp_mirror_claimed_twice). */
void sp_mirror_merge(sp_mirror_t *self, uint64_t now_ns);

/* The shard (0-based) whose row a merged mirror shows for `id`, or -1. */
int sp_mirror_owner(const sp_mirror_t *self, uint32_t id);

/* Products more than one shard has, as of the last merge (0 for a mirror
 * that is not merged). */
uint32_t sp_mirror_claimed_twice(const sp_mirror_t *self);

#endif
