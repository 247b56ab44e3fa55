/*
 * sp_table — the product table in POSIX shared memory.
 *
 * Layout (the contract between processes; version SP_TABLE_LAYOUT):
 *
 *   [ sp_table_hdr_t            ]  identity, state, endpoints, worker slots
 *   [ sp_row_t  x capacity      ]  one 256-byte row per product id 1..capacity
 *   [ dedup region              ]  the outcome of every recent order, per
 *                                  producer (sp_commit.h), at hdr.dedup_offset
 *
 * Rows are indexed by product id (row i holds id i+1), so a lookup is one
 * bounds check; ids absent from the catalogue have `present == 0`.  Each row
 * starts on a cache line: line 0 holds the hot words (the stock/version word,
 * the key of the order that made that version, the counters), line 1 the row
 * mutex and the in-progress record, lines 2-3 the static product data nobody
 * writes after creation.
 *
 * The stock and the row's change counter share one 64-bit word
 * (version << 32 | stock), so readers always see a matching pair and a
 * monitor can order events per row by version.  Next to it, in the same
 * 16-byte unit, is `last`: the (producer, seq) of the order that made this
 * version.  Every strategy changes the pair with one 16-byte compare-and-swap
 * (or store), so "the stock changed" and "which order changed it" are one
 * atomic fact; sp_commit.c builds exactly-once on that (see docs/RECOVERY.md).
 *
 * No pointers live in shared memory; every process maps the segment wherever
 * it likes.  Opening checks magic, layout version, row size, header size and
 * the segment size before anything else is read.
 *
 * Ownership: the broker creates the segment and removes its name; every
 * process maps it for itself (an sp_table_t, process-local: sp_table_close
 * unmaps, never unlinks), and the header and row pointers it hands out are
 * valid until then.  Errors: 0, -errno or SP_E_* (each prototype says
 * which).  Blocking: sp_table_open_ready polls until the table is READY or
 * its timeout passes; the lock strategies wait at most SP_LOCK_TIMEOUT_MS;
 * sp_table_save_csv blocks on the disk.  Threads and processes: the layout
 * below is the contract between every process that maps it, all at once; a
 * row's stock changes only by compare-and-swap or under its robust
 * process-shared mutex; identity fields are written once, before READY.
 * An sp_table_t does not change after open, so the threads of a process
 * may share one.
 */
#ifndef SP_TABLE_H
#define SP_TABLE_H

#include "sp_catalogue.h"
#include "sp_curve.h"
#include "sp_hist.h"
#include "sp_instance.h"
#include "sp_wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SP_TABLE_MAGIC 0x31454c4241545053ull /* bytes "SPTABLE1" */
#define SP_TABLE_LAYOUT                                                                            \
    7 /* 5: the shard's product range; 6: status no_room (orders[8]);                              \
          7: the worker's hop histograms */
#define SP_CACHELINE       64
#define SP_ROW_SIZE        256
#define SP_WORKERS_MAX     64   /* worker slots in the header */
#define SP_LOCK_TIMEOUT_MS 2000 /* lock waits give up (and report) after this */
#define SP_TABLE_MODE      0600

typedef enum {
    SP_SYNC_CAS = 0,        /* lock-free compare-and-swap on the stock word */
    SP_SYNC_ROW_LOCK = 1,   /* robust process-shared mutex per row */
    SP_SYNC_TABLE_LOCK = 2, /* one robust process-shared mutex for the whole table */
    SP_SYNC_COUNT = 3
} sp_sync_t;

typedef enum {
    SP_TABLE_CREATING = 0,
    SP_TABLE_READY = 1,    /* broker is serving */
    SP_TABLE_DRAINING = 2, /* broker is shutting down: no new producers */
    SP_TABLE_CLOSED = 3
} sp_table_state_t;

/* Where a worker's time goes per order message, between taking it and
 * answering it: the hops of its slot's `hop` histograms (nanoseconds, in
 * sp_lat_bucket's buckets, one count per message).  STEP: its orders through
 * the table (from the moment stamped as each result's applied_ns); JOURNAL:
 * from there until the journal write of its group returned (the group's
 * later messages applied, then the write); REPLY: from there until its
 * answer was handed to the transport (its group's earlier answers first).
 * The bench prints them beside the customers' legs, so "applied -> result
 * received" splits into the worker's part and the way back. */
typedef enum { SP_WHOP_STEP = 0, SP_WHOP_JOURNAL, SP_WHOP_REPLY, SP_WHOP_COUNT } sp_whop_t;

extern const char *const sp_whop_names[SP_WHOP_COUNT];

/* One worker's slot: written by that worker only (and reset by the broker
 * when it starts one), read by anybody. */
typedef struct {
    _Alignas(SP_CACHELINE) _Atomic int32_t pid; /* 0 when free */
    _Atomic uint32_t state;                     /* SP_PUB_* from sp_wire.h */
    _Atomic uint64_t heartbeat_ns;              /* last loop turn, monotonic */
    _Atomic uint64_t orders[SP_STATUS_COUNT];   /* answered, by SP_STATUS_* */
    _Atomic uint64_t invalid_msgs;              /* dead-lettered messages */
    _Atomic uint64_t result_drops;              /* results it could not send */
    /* last event number this worker published, stored after the row change
     * it describes: a snapshot that reads it before the rows contains every
     * change up to it (the broker resets it when it starts a worker) */
    _Atomic uint64_t pub_seq;
    _Atomic uint64_t lat[SP_LAT_BUCKETS];                /* send-to-apply latency, sp_lat_bucket */
    _Atomic uint64_t hop[SP_WHOP_COUNT][SP_LAT_BUCKETS]; /* sp_whop_t, sp_lat_bucket */
    /* in-flight record for the supervisor: the producer whose order message
     * the worker is handling (0 between messages); if the worker dies, its
     * unfinished orders are among that producer's dedup entries */
    _Atomic uint32_t cur_producer;
    _Atomic uint32_t restarts;      /* times the broker restarted this slot's worker */
    _Atomic uint32_t journal_epoch; /* the epoch of the journal file it writes now */
} sp_worker_slot_t;

typedef struct {
    /* identity: written once by the creator, checked by every opener */
    _Alignas(SP_CACHELINE) uint64_t magic;
    uint32_t layout;
    uint32_t header_size;
    uint32_t row_size;
    uint32_t capacity;      /* rows: highest product id */
    uint32_t product_count; /* rows with present == 1 */
    int32_t creator_pid;
    uint32_t sync;      /* sp_sync_t the broker runs with */
    uint32_t transport; /* the sp_transport_t id of the order path (sp_transport.h) */
    uint64_t created_ns;
    uint64_t segment_size;
    /* identity of the shop this table holds, kept across rebuilds from the
     * journal (journals and snapshots carry it) */
    uint64_t table_id;
    uint64_t dedup_offset; /* the dedup region (sp_commit.h) */
    uint64_t dedup_size;
    uint32_t dedup_slots;  /* producers remembered at once */
    uint32_t dedup_window; /* orders remembered per producer */
    /* persistence, written by the broker before READY: where workers keep
     * their journals (empty: no journal) and when they fsync them */
    char state_dir[SP_PATH_MAX];
    uint32_t fsync_policy; /* sp_fsync_policy_t */
    uint32_t fsync_interval_ms;
    /* 1: no de-duplication and no journal (the benchmark's measure of what
     * exactly-once costs; a resent order is applied again) */
    uint32_t unguarded;
    /* the range of product ids this instance owns as one shard of a
     * catalogue split across brokers (broker --products LO-HI; every
     * present row's id is in it), published in the WELCOME; 0, 0: not a
     * shard (the whole catalogue) */
    uint32_t product_lo;
    uint32_t product_hi;

    /* life cycle */
    _Alignas(SP_CACHELINE) _Atomic uint32_t state; /* sp_table_state_t */
    _Atomic uint32_t next_producer_id;             /* producer ids handed out */
    _Atomic uint64_t system_seq;                   /* the broker's own orders (expiring holds) */
    _Atomic uint32_t journal_epoch;                /* writers switch journal files when it moves */
    _Atomic int32_t broker_pid;
    uint32_t workers; /* slots in use */
    /* the order path as its transport made it (sp_tinfo_t): the largest
     * message (0: the wire's) and the messages it holds (0: no fixed depth) */
    uint32_t path_msgsize;
    uint32_t path_depth;

    /* global event counter (all publishers) */
    _Alignas(SP_CACHELINE) _Atomic uint64_t event_seq;

    /* broker counters */
    _Alignas(SP_CACHELINE) _Atomic uint64_t drops_results; /* results it could not route */
    _Atomic uint64_t drops_orders;                         /* orders it could not route */
    _Atomic uint64_t invalid_msgs;                         /* messages it dead-lettered */
    _Atomic uint64_t in_flight;                            /* zmq batches at workers */

    /* `table-lock` strategy: one lock around the whole table (the original
     * shop's model) with its in-progress record.  A robust mutex, not the
     * shop's semaphore: a semaphore cannot say who holds it, so a holder
     * killed inside it would hang everyone (docs/RECOVERY.md). */
    _Alignas(SP_CACHELINE) pthread_mutex_t table_lock;
    _Atomic uint64_t table_intent;    /* key of the order being applied, 0 if none */
    _Atomic int32_t table_intent_pid; /* and who applies it */
    /* claiming and reclaiming dedup slots (rare: once per producer) */
    _Alignas(SP_CACHELINE) pthread_mutex_t reg_lock;

    /* where to connect (NUL-terminated endpoint strings) */
    _Alignas(SP_CACHELINE) char ep_orders[SP_ENDPOINT_MAX]; /* producers (zmq) */
    char ep_workers[SP_ENDPOINT_MAX];                       /* workers (zmq) */
    char ep_events_in[SP_ENDPOINT_MAX];                     /* event publishers */
    char ep_events[SP_ENDPOINT_MAX];                        /* monitors */
    char ep_snapshot[SP_ENDPOINT_MAX];                      /* snapshot service */
    /* the broker's CURVE public key (Z85) when its tcp:// endpoints are
     * CURVE servers (--curve-cert): local monitors connect with it and
     * their own --cert (producers read it from RUN_DIR/contact, which the
     * broker writes from here); empty without CURVE */
    char curve_server_key[SP_CURVE_KEY_TXT];

    sp_worker_slot_t worker[SP_WORKERS_MAX];
} sp_table_hdr_t;

typedef struct {
    /* line 0: hot.  sv and last form one 16-byte unit changed atomically;
     * tally is another (sold, restocked and held units tagged with the row
     * version they include, so bringing them up to date is idempotent);
     * settled is the highest version whose order is completely recorded. */
    _Alignas(SP_CACHELINE) _Atomic uint64_t sv; /* version << 32 | stock */
    _Atomic uint64_t last;                      /* SP_KEY(producer, seq) that made this version */
    _Atomic uint64_t tally[2];                  /* sp_tally_t packed, see sp_row_tally */
    _Atomic uint64_t settled;
    uint8_t pad0[SP_CACHELINE - 40];
    /* line 1: row-lock strategy and its in-progress record: the key of the
     * order the holder is applying and the holder's pid */
    _Alignas(SP_CACHELINE) pthread_mutex_t lock;
    _Atomic uint64_t intent;
    _Atomic int32_t intent_pid;
    uint8_t pad_lock[SP_CACHELINE - sizeof(pthread_mutex_t) - 12];
    /* lines 2-3: static product data */
    _Alignas(SP_CACHELINE) uint32_t id;
    uint32_t present;
    uint32_t weight_g;
    uint32_t expiry;
    uint64_t price_cents;
    uint32_t initial_stock;
    uint32_t pad1;
    char name[SP_NAME_MAX];
    char category[SP_CATEGORY_MAX];
    uint8_t pad2[2 * SP_CACHELINE - 32 - SP_NAME_MAX - SP_CATEGORY_MAX];
} sp_row_t;

_Static_assert(sizeof(sp_row_t) == SP_ROW_SIZE, "row layout");
_Static_assert(sizeof(pthread_mutex_t) <= SP_CACHELINE - 12, "mutex and intent fit a line");

#define SP_SV_STOCK(sv)   ((uint32_t)((sv)&0xffffffffu))
#define SP_SV_VERSION(sv) ((uint32_t)((sv) >> 32))
/* An order's key as rows record it: producer id and the low 32 bits of its
 * sequence number (a producer's dedup window is far smaller than 2^32). */
#define SP_KEY(producer, seq) (((uint64_t)(producer) << 32) | ((uint64_t)(seq)&0xffffffffu))
#define SP_KEY_PRODUCER(k)    ((uint32_t)((k) >> 32))
#define SP_KEY_SEQ32(k)       ((uint32_t)((k)&0xffffffffu))

/* A row's counters, unpacked. */
typedef struct {
    uint64_t sold;      /* units of accepted purchases (and bought holds) */
    uint64_t restocked; /* units of accepted restocks */
    uint32_t held;      /* units reserved by live holds (not in stock) */
    uint32_t version;   /* row version the counters include */
} sp_tally_t;
#define SP_TALLY_UNITS_MAX ((1ull << 40) - 1) /* sold, restocked */
#define SP_TALLY_HELD_MAX  0xffffu

/* Reads a row's counters consistently (works on a read-only mapping). */
void sp_row_tally(const sp_row_t *row, sp_tally_t *out);
/* Reads the stock and the counters of the same version (retrying while a
 * change is being recorded); returns the stock. */
uint32_t sp_row_stock_settled(const sp_row_t *row, sp_tally_t *out);

/* What an apply did to a row. */
typedef struct {
    uint32_t old_stock;
    uint32_t new_stock;
    uint32_t version; /* row version after the change (unchanged if refused) */
} sp_change_t;

typedef struct sp_table sp_table_t;

typedef struct {
    sp_sync_t sync;
    uint32_t transport; /* sp_transport_t id */
} sp_table_opts_t;

/* Creates the segment `shm_name` exclusively (O_EXCL, mode 0600), sizes it,
 * copies the catalogue in and initialises the locks.  State is CREATING until
 * sp_table_set_state(READY).  Returns 0 or -EEXIST (name taken), -errno,
 * SP_E_CSV_EMPTY (empty catalogue). */
int sp_table_create(sp_table_t **out, const char *shm_name, const sp_catalogue_t *cat,
                    const sp_table_opts_t *opts);

/* Opens an existing segment read-write (or read-only) and checks its header.
 * Returns 0, -ENOENT, -EACCES, SP_E_BAD_MAGIC, SP_E_BAD_VERSION,
 * SP_E_BAD_LAYOUT or -errno. */
int sp_table_open(sp_table_t **out, const char *shm_name, bool writable);

/* As sp_table_open, but retries until the table exists and its state is READY
 * or `timeout_ms` passes (SP_E_TIMEOUT, or SP_E_NOT_READY if it exists), or a
 * stop is requested (SP_E_STOPPED). */
int sp_table_open_ready(sp_table_t **out, const char *shm_name, bool writable, int timeout_ms);

/* Bytes of the segment of a table with `capacity` rows. */
size_t sp_table_bytes(uint32_t capacity);

/* Unmaps; never unlinks.  NULL-safe, nulls the pointer. */
void sp_table_close(sp_table_t **self_p);

/* Removes the name if it is ours (the owner does this at shutdown).
 * Returns 0, -EACCES for another user's segment (left alone) or -errno. */
int sp_table_unlink(const char *shm_name);

/* The owner of the shm object `shm_name`: 0, -ENOENT, or -EACCES when we
 * may not even open it (someone else's). */
int sp_shm_owner(const char *shm_name, uid_t *uid);

/* Unlinks a shm object only if it is ours: 0, -EACCES (another user's, left
 * alone) or -errno. */
int sp_shm_unlink_ours(const char *shm_name);

/* The mapping's header, the row of product `id` (NULL when id is out of
 * range or not in the catalogue) and the number of rows (the highest id). */
sp_table_hdr_t *sp_table_hdr(sp_table_t *self);
sp_row_t *sp_table_row(sp_table_t *self, uint32_t id);
uint32_t sp_table_capacity(const sp_table_t *self);
/* All rows (capacity of them, id i at index i - 1, absent ones included). */
const sp_row_t *sp_table_rows(const sp_table_t *self);

/* Applies one purchase (type SP_ORDER_PURCHASE) or restock with strategy
 * `sync`, without de-duplication (tests and tools; the pipeline uses
 * sp_commit_order).  Returns 0 (accepted; *chg says old/new stock and version),
 * SP_E_OUT_OF_STOCK (purchase larger than stock; *chg has the current stock),
 * SP_E_UNKNOWN_PRODUCT, SP_E_INVALID (type or quantity out of range),
 * SP_E_STOCK_OVERFLOW (restock beyond SP_STOCK_MAX) or SP_E_TIMEOUT (the
 * table lock was not obtained in SP_LOCK_TIMEOUT_MS).  Stock never goes
 * below zero. */
int sp_table_apply(sp_table_t *self, sp_sync_t sync, unsigned type, uint32_t id, uint32_t qty,
                   sp_change_t *chg);

/* The dedup region (sp_commit.c) and whether this mapping may write. */
void *sp_table_dedup(sp_table_t *self);
bool sp_table_writable(const sp_table_t *self);

/* Copies product `id` with its current stock; returns 0 or SP_E_UNKNOWN_PRODUCT.
 * *version gets the row version that stock belongs to (may be NULL). */
int sp_table_read(sp_table_t *self, uint32_t id, sp_product_t *out, uint32_t *version);

/* Writes the table as catalogue CSV to `path` atomically: a temporary file in
 * the same directory, fsync, rename, fsync of the directory.  On failure the
 * previous file is untouched.  Returns 0 or -errno. */
int sp_table_save_csv(sp_table_t *self, const char *path);

/* The conservation audit of the table on its own: for every product,
 * initial + restocked - sold == stock, and stock <= SP_STOCK_MAX.  Returns the
 * number of products that fail it; writes up to `max_bad` of their ids to bad. */
size_t sp_table_audit(sp_table_t *self, uint32_t *bad, size_t max_bad);

/* Hands out a producer id unique within this table's life (from 1). */
uint32_t sp_table_new_producer_id(sp_table_t *self);

/* Sets the life-cycle state (release store). */
void sp_table_set_state(sp_table_t *self, sp_table_state_t state);

/* "cas", "row-lock", "table-lock" ("?" for anything else). */
const char *sp_sync_name(sp_sync_t sync);
/* Parses "cas", "row-lock", "table-lock"; returns 0 or SP_E_USAGE. */
int sp_sync_parse(const char *s, sp_sync_t *out);

#endif
