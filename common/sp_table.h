/*
 * sp_table — the product table in POSIX shared memory.
 *
 * Layout (the contract between processes; version SP_TABLE_LAYOUT):
 *
 *   [ sp_table_hdr_t            ]  identity, state, endpoints, worker slots
 *   [ sp_row_t  x capacity      ]  one 256-byte row per product id 1..capacity
 *   [ dedup region (reserved)   ]  applied (producer, seq) records; size 0 in
 *                                  this layout, located by hdr.dedup_offset
 *
 * Rows are indexed by product id (row i holds id i+1), so a lookup is one
 * bounds check; ids absent from the catalogue have `present == 0`.  Each row
 * starts on a cache line: line 0 holds the hot words (the stock/version word
 * and the sale counters), line 1 the row mutex and the in-progress record,
 * lines 2-3 the static product data nobody writes after creation.
 *
 * The stock and the row's change counter share one 64-bit word
 * (version << 32 | stock), so the `cas` strategy changes both with a single
 * compare-and-swap, readers always see a matching pair, and a monitor can
 * order events per row by version.  The other strategies store the same word
 * while holding their lock, so readers never need a lock.
 *
 * No pointers live in shared memory; every process maps the segment wherever
 * it likes.  Opening checks magic, layout version, row size, header size and
 * the segment size before anything else is read.
 */
#ifndef SP_TABLE_H
#define SP_TABLE_H

#include "sp_catalogue.h"
#include "sp_hist.h"
#include "sp_instance.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SP_TABLE_MAGIC     0x31454c4241545053ull /* bytes "SPTABLE1" */
#define SP_TABLE_LAYOUT    2
#define SP_CACHELINE       64
#define SP_ROW_SIZE        256
#define SP_WORKERS_MAX     64   /* worker slots in the header */
#define SP_LOCK_TIMEOUT_MS 2000 /* table-lock waits give up (and report) after this */
#define SP_TABLE_MODE      0600

typedef enum {
    SP_SYNC_CAS = 0,        /* lock-free compare-and-swap on the stock word */
    SP_SYNC_ROW_LOCK = 1,   /* robust process-shared mutex per row */
    SP_SYNC_TABLE_LOCK = 2, /* one process-shared semaphore (the original shop) */
    SP_SYNC_COUNT = 3
} sp_sync_t;

typedef enum {
    SP_TABLE_CREATING = 0,
    SP_TABLE_READY = 1,    /* broker is serving */
    SP_TABLE_DRAINING = 2, /* broker is shutting down: no new producers */
    SP_TABLE_CLOSED = 3
} sp_table_state_t;

typedef enum {
    SP_TRANSPORT_MQ = 1,     /* POSIX message queues */
    SP_TRANSPORT_ZMQ = 2,    /* ZeroMQ through the broker (ipc://, tcp:// or inproc://) */
    SP_TRANSPORT_SHM = 3,    /* lock-free rings in shared memory (sp_ring) */
    SP_TRANSPORT_DIRECT = 4, /* no transport: producers apply orders themselves */
    SP_TRANSPORT_COUNT = 5
} sp_transport_kind_t;

/* One worker's slot: written by that worker only (and reset by the broker
 * when it starts one), read by anybody. */
typedef struct {
    _Alignas(SP_CACHELINE) _Atomic int32_t pid; /* 0 when free */
    _Atomic uint32_t state;                     /* SP_PUB_* from sp_wire.h */
    _Atomic uint64_t heartbeat_ns;              /* last loop turn, monotonic */
    _Atomic uint64_t orders[5];                 /* answered, by SP_STATUS_* */
    _Atomic uint64_t invalid_msgs;              /* dead-lettered messages */
    _Atomic uint64_t result_drops;              /* results it could not send */
    /* last event number this worker published, stored after the row change
     * it describes: a snapshot that reads it before the rows contains every
     * change up to it (the broker resets it when it starts a worker) */
    _Atomic uint64_t pub_seq;
    _Atomic uint64_t lat[SP_LAT_BUCKETS]; /* send-to-apply latency, sp_lat_bucket */
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
    uint32_t transport; /* sp_transport_kind_t */
    uint64_t created_ns;
    uint64_t segment_size;
    uint64_t dedup_offset; /* reserved: exactly-once records */
    uint64_t dedup_size;

    /* life cycle */
    _Alignas(SP_CACHELINE) _Atomic uint32_t state; /* sp_table_state_t */
    _Atomic uint32_t next_producer_id;             /* producer ids handed out */
    _Atomic int32_t broker_pid;
    uint32_t workers;    /* slots in use */
    uint32_t mq_msgsize; /* order queue message size */
    uint32_t mq_depth;

    /* global event counter (all publishers) */
    _Alignas(SP_CACHELINE) _Atomic uint64_t event_seq;

    /* broker counters */
    _Alignas(SP_CACHELINE) _Atomic uint64_t drops_results; /* results it could not route */
    _Atomic uint64_t drops_orders;                         /* orders it could not route */
    _Atomic uint64_t invalid_msgs;                         /* messages it dead-lettered */
    _Atomic uint64_t in_flight;                            /* zmq batches at workers */

    /* `table-lock` strategy: the original shop's single semaphore */
    _Alignas(SP_CACHELINE) sem_t table_sem;

    /* where to connect (NUL-terminated endpoint strings) */
    _Alignas(SP_CACHELINE) char ep_orders[SP_ENDPOINT_MAX]; /* producers (zmq) */
    char ep_workers[SP_ENDPOINT_MAX];                       /* workers (zmq) */
    char ep_events_in[SP_ENDPOINT_MAX];                     /* event publishers */
    char ep_events[SP_ENDPOINT_MAX];                        /* monitors */
    char ep_snapshot[SP_ENDPOINT_MAX];                      /* snapshot service */

    sp_worker_slot_t worker[SP_WORKERS_MAX];
} sp_table_hdr_t;

typedef struct {
    /* line 0: hot */
    _Alignas(SP_CACHELINE) _Atomic uint64_t sv; /* version << 32 | stock */
    _Atomic uint64_t sold;                      /* units of accepted purchases */
    _Atomic uint64_t restocked;                 /* units of accepted restocks */
    _Atomic uint64_t changes;                   /* accepted orders on this row */
    uint8_t pad0[SP_CACHELINE - 32];
    /* line 1: row-lock strategy and its in-progress record (reserved for the
     * crash-consistency work: who holds the row and what it was doing) */
    _Alignas(SP_CACHELINE) pthread_mutex_t lock;
    uint8_t intent[SP_CACHELINE - sizeof(pthread_mutex_t)];
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
_Static_assert(sizeof(pthread_mutex_t) <= SP_CACHELINE, "mutex fits a line");

#define SP_SV_STOCK(sv)   ((uint32_t)((sv)&0xffffffffu))
#define SP_SV_VERSION(sv) ((uint32_t)((sv) >> 32))

/* What an apply did to a row. */
typedef struct {
    uint32_t old_stock;
    uint32_t new_stock;
    uint32_t version; /* row version after the change (unchanged if refused) */
} sp_change_t;

typedef struct sp_table sp_table_t;

typedef struct {
    sp_sync_t sync;
    sp_transport_kind_t transport;
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

/* Unmaps; never unlinks.  NULL-safe, nulls the pointer. */
void sp_table_close(sp_table_t **self_p);

/* Removes the name (the owner does this at shutdown).  Returns 0 or -errno. */
int sp_table_unlink(const char *shm_name);

sp_table_hdr_t *sp_table_hdr(sp_table_t *self);
/* Row of product `id`, or NULL when id is out of range or not in the catalogue. */
sp_row_t *sp_table_row(sp_table_t *self, uint32_t id);
uint32_t sp_table_capacity(const sp_table_t *self);
/* All rows (capacity of them, id i at index i - 1, absent ones included). */
const sp_row_t *sp_table_rows(const sp_table_t *self);

/* Applies one purchase (type SP_ORDER_PURCHASE) or restock with strategy
 * `sync`.  Returns 0 (accepted; *chg says old/new stock and version),
 * SP_E_OUT_OF_STOCK (purchase larger than stock; *chg has the current stock),
 * SP_E_UNKNOWN_PRODUCT, SP_E_INVALID (type or quantity out of range),
 * SP_E_STOCK_OVERFLOW (restock beyond SP_STOCK_MAX) or SP_E_TIMEOUT (the
 * table lock was not obtained in SP_LOCK_TIMEOUT_MS).  Stock never goes
 * below zero. */
int sp_table_apply(sp_table_t *self, sp_sync_t sync, unsigned type, uint32_t id, uint32_t qty,
                   sp_change_t *chg);

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

const char *sp_sync_name(sp_sync_t sync);
/* Parses "cas", "row-lock", "table-lock"; returns 0 or SP_E_USAGE. */
int sp_sync_parse(const char *s, sp_sync_t *out);

/* "mq", "zmq", "shm", "direct" ("?" for anything else). */
const char *sp_transport_name(sp_transport_kind_t kind);
/* Parses one of those names; returns 0 or SP_E_USAGE. */
int sp_transport_parse(const char *s, sp_transport_kind_t *out);

#endif
