/*
 * sp_wire — stockpipe's wire format (the contract; see docs/PROTOCOL.md).
 *
 * Every message is one contiguous buffer: a 16-byte header followed by
 * `count` fixed-size records of the one kind the header names.  All integers
 * are little-endian and fixed-width; there are no pointers, no padding the
 * compiler chooses, and no variable-length fields, so a message can be
 * validated by its length alone before any record is read.
 *
 * The in-memory structs below have exactly the wire layout (checked by
 * _Static_assert), but code never casts a received buffer to them: the
 * sp_wire_get_* functions copy each field out with an explicit little-endian
 * conversion, so an unaligned or hostile buffer is harmless.
 *
 * Pure: messages live in the caller's buffers, whose room the caller
 * guarantees (sp_wire_check does for received ones); nothing is allocated
 * or blocks; the checks return 0 or an SP_E_* code; safe from any thread.
 * The layouts are the contract between processes and between hosts.
 */
#ifndef SP_WIRE_H
#define SP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define SP_WIRE_MAGIC       0x31575053u /* bytes 'S' 'P' 'W' '1' */
#define SP_WIRE_VERSION     2
#define SP_BATCH_DEFAULT    32 /* orders per message a producer sends by default */
#define SP_WIRE_HDR_SIZE    16
#define SP_WIRE_MAX_RECORDS 4096     /* per message, any kind */
#define SP_QTY_MAX          1000000u /* largest quantity one order may carry */

/* Message kinds (header byte 5). */
enum {
    SP_MSG_ORDERS = 1,      /* producer -> worker: sp_order_t records */
    SP_MSG_RESULTS = 2,     /* worker -> producer: sp_result_t records */
    SP_MSG_EVENTS = 3,      /* worker -> monitors: sp_event_t records */
    SP_MSG_HEARTBEAT = 4,   /* any publisher -> monitors: sp_heartbeat_t */
    SP_MSG_CREDIT = 5,      /* worker -> broker (zmq): `count` more batches wanted */
    SP_MSG_EOS = 6,         /* end of stream, no records (the broker's goodbye to monitors) */
    SP_MSG_EOS_ACK = 7,     /* reserved: acknowledges an EOS, no records */
    SP_MSG_STATS = 8,       /* broker -> monitors: sp_counter_t records */
    SP_MSG_SNAP_REQ = 9,    /* monitor -> broker: snapshot please; no records, batch = request id */
    SP_MSG_SNAP_BEGIN = 10, /* broker -> monitor: sp_counter_t records (table, publishers) */
    SP_MSG_SNAP_ROWS = 11,  /* broker -> monitor: sp_snaprow_t records */
    SP_MSG_SNAP_END = 12,   /* broker -> monitor: sp_counter_t records (rows sent) */
    SP_MSG_HELLO = 13,      /* producer -> order path: one sp_hello_t (sp_hello.h) */
    SP_MSG_WELCOME = 14,    /* answer to a HELLO: sp_counter_t records (SP_CTR_HELLO_*...) */
    SP_MSG_KIND_MAX = 14
};

/* Order types. */
enum {
    SP_ORDER_PURCHASE = 1,
    SP_ORDER_RESTOCK = 2,
    SP_ORDER_RESERVE = 3,  /* hold `quantity` units for `reserved` seconds (0: default) */
    SP_ORDER_BUY_HELD = 4, /* buy the units this producer holds of the product */
    SP_ORDER_RELEASE = 5,  /* give them back to stock */
};

/* Result statuses. */
enum {
    SP_STATUS_ACCEPTED = 0,
    SP_STATUS_OUT_OF_STOCK = 1,
    SP_STATUS_UNKNOWN_PRODUCT = 2,
    SP_STATUS_INVALID = 3,
    SP_STATUS_DUPLICATE = 4, /* the order was seen before: `original` says how it ended */
    SP_STATUS_CONFLICT = 5,  /* same (producer, seq) as an earlier order, different contents */
    SP_STATUS_NO_HOLD = 6,   /* buy-held/release without such a live hold; reserve while holding */
    SP_STATUS_NO_ROOM = 7,   /* its producer has no de-duplication slot and none is free */
    SP_STATUS_COUNT = 8
};

/* A duplicate's `original` when the first outcome cannot be told: the first
 * copy is still being applied (wait for its result), or the order is older
 * than its producer's dedup window. */
#define SP_ORIGINAL_PENDING 0xfe
#define SP_ORIGINAL_UNKNOWN 0xff

/* Order flags. */
#define SP_ORDER_F_RESENT   0x01u              /* a retry of an order sent before (informational) */
#define SP_SEQ_MAX          ((1ull << 40) - 1) /* highest order sequence number */
#define SP_HOLD_SECONDS_MAX 3600               /* the longest hold a reserve may ask for */

typedef struct {
    uint32_t magic;  /* SP_WIRE_MAGIC */
    uint8_t version; /* SP_WIRE_VERSION */
    uint8_t kind;    /* SP_MSG_* */
    uint16_t count;  /* records that follow, 0 .. SP_WIRE_MAX_RECORDS */
    uint32_t sender; /* producer id, worker id (publisher) or 0 for the broker */
    uint32_t batch;  /* sender's message counter, for tracing */
} sp_msg_hdr_t;

typedef struct {
    uint8_t type;         /* SP_ORDER_* */
    uint8_t flags;        /* SP_ORDER_F_* */
    uint16_t reserved;    /* reserve: hold seconds (0: default); other types: 0 */
    uint32_t producer_id; /* who placed it; results go back to them */
    uint64_t seq;         /* producer's order number, 1 .. SP_SEQ_MAX */
    uint32_t product_id;  /* id_reg from the catalogue */
    uint32_t quantity;    /* 1 .. SP_QTY_MAX */
    uint64_t sched_ns;    /* when the producer meant to send it (monotonic) */
} sp_order_t;

typedef struct {
    uint32_t producer_id; /* copied from the order */
    uint8_t status;       /* SP_STATUS_* */
    uint8_t type;         /* order type, copied */
    uint8_t worker_id;    /* who answered it (1 .. 64; 0: the producer itself, direct) */
    uint8_t original;     /* DUPLICATE: the first outcome (SP_STATUS_*, or SP_ORIGINAL_*);
                             otherwise equal to status */
    uint64_t seq;         /* copied from the order */
    uint32_t product_id;  /* copied from the order */
    uint32_t stock_after; /* stock after applying (or the stock that refused it) */
    uint64_t sched_ns;    /* copied from the order */
    uint64_t applied_ns;  /* worker's monotonic clock when applied */
} sp_result_t;

typedef struct {
    uint64_t pub_seq;      /* publisher's event number, from 1, no gaps */
    uint32_t publisher_id; /* worker id */
    uint32_t product_id;
    uint32_t old_stock;
    uint32_t new_stock;
    uint32_t row_version;    /* the row's change counter after this change */
    uint32_t order_producer; /* order that caused it */
    uint64_t order_seq;
    uint64_t ts_ns; /* publisher's monotonic clock */
} sp_event_t;

typedef struct {
    uint64_t pub_seq; /* last event number this publisher sent */
    uint32_t publisher_id;
    uint32_t state;          /* SP_PUB_* */
    uint64_t orders_applied; /* orders this publisher has answered */
    uint64_t ts_ns;
    uint32_t pid;
    uint32_t reserved;
} sp_heartbeat_t;

enum { SP_PUB_RUNNING = 1, SP_PUB_STOPPING = 2 };

/* One named counter (STATS and snapshot framing).  `id` says what it counts
 * (SP_CTR_*), `index` which one (a worker id, a status, a hop). */
typedef struct {
    uint16_t id;
    uint16_t index;
    uint32_t reserved; /* 0 */
    uint64_t value;
} sp_counter_t;

/* Counter ids.  Unknown ids are ignored by readers, so new ones can be added
 * without a version change. */
enum {
    SP_CTR_TIME_NS = 1,      /* broker's monotonic clock when the message was made */
    SP_CTR_ORDERS = 2,       /* orders answered, index = SP_STATUS_* */
    SP_CTR_EVENT_SEQ = 3,    /* stock changes made by all workers so far */
    SP_CTR_LAT_P50_NS = 4,   /* send-to-apply latency over the last second */
    SP_CTR_LAT_P99_NS = 5,   /*   (bucket upper bounds, within 12.5 %) */
    SP_CTR_LAT_MAX_NS = 6,   /*   highest bucket seen */
    SP_CTR_LAT_COUNT = 7,    /*   orders measured in that second */
    SP_CTR_DEPTH = 8,        /* messages queued at a hop, index = SP_HOP_* */
    SP_CTR_DEPTH_CAP = 9,    /* that hop's capacity (0 = unbounded / unknown) */
    SP_CTR_DROPS = 10,       /* messages lost or refused, index = SP_DROP_* */
    SP_CTR_W_STATE = 11,     /* worker state, index = worker id, value SP_WSTATE_* */
    SP_CTR_W_ORDERS = 12,    /* orders the worker answered */
    SP_CTR_W_HB_AGE_MS = 13, /* milliseconds since the worker's last loop turn */
    SP_CTR_W_PID = 14,
    SP_CTR_W_RESTARTS = 15,
    SP_CTR_W_PUB_SEQ = 16,  /* the worker's last event number (snapshot: read before the rows) */
    SP_CTR_CAPACITY = 17,   /* table rows (highest product id) */
    SP_CTR_PRODUCTS = 18,   /* products in the catalogue */
    SP_CTR_CREATED_NS = 19, /* table identity: creation time */
    SP_CTR_ROWS = 20,       /* rows in a snapshot */
    SP_CTR_TRANSPORT = 21,  /* the sp_transport_t id (sp_transport.h) */
    SP_CTR_SYNC = 22,       /* sp_sync_t */
    SP_CTR_WORKERS = 23,    /* worker slots in use */
    /* the WELCOME (sp_hello.h); HELD also ends a snapshot */
    SP_CTR_HELD = 24,          /* held (reserved) units in the rows sent */
    SP_CTR_HELLO_STATUS = 25,  /* SP_HELLO_OK, or why the HELLO was refused */
    SP_CTR_PRODUCER_ID = 26,   /* the id to use (given, or the one asked for) */
    SP_CTR_HELLO_ID = 27,      /* the HELLO's hello_id, echoed */
    SP_CTR_HELLO_REV = 28,     /* the answerer's hello revision */
    SP_CTR_ORDER_MSG_MAX = 29, /* largest order message the path carries (0: the wire's) */
    SP_CTR_PATH_DEPTH = 30,    /* messages the order path holds (0: not a fixed depth) */
    SP_CTR_BROKER_PID = 31,    /* the broker's pid (a local client may watch it) */
    SP_CTR_DEDUP_WINDOW = 32,  /* orders remembered per producer */
    SP_CTR_SESSION_FLAGS = 33, /* SP_WELCOME_F_* */
    /* a shard's product ids (broker --products): lowest | highest << 32;
     * absent from the WELCOME of an instance that is not a shard */
    SP_CTR_PRODUCT_RANGE = 34,
    /* STATS: times the table may have changed without an event, each
     * counted once it is settled, so a subscriber that sees one grow and
     * takes a snapshot after that is exact.  Index = worker id: that
     * worker's process died (killed, crashed, exited non-zero) and may have
     * applied an order it never published; index 0: the broker released
     * expired holds (it publishes no event for them) */
    SP_CTR_UNPUBLISHED = 35,
    SP_CTR_MAX = 35
};

/* Hops whose queue depth STATS report. */
enum {
    SP_HOP_ORDERS = 0,  /* producers -> workers: mq order queue, or zmq batches at workers */
    SP_HOP_RESULTS = 1, /* workers -> producers: mq reply queues (sum) */
    SP_HOP_COUNT = 2
};

/* Reasons for SP_CTR_DROPS. */
enum {
    SP_DROP_INVALID = 0, /* malformed messages dead-lettered (broker and workers) */
    SP_DROP_ORDERS = 1,  /* order messages no worker could take */
    SP_DROP_RESULTS = 2, /* results whose producer was gone */
    SP_DROP_EVENTS = 3,  /* events lost before the broker (publisher gaps) */
    SP_DROP_COUNT = 4
};

/* Worker states in STATS. */
enum {
    SP_WSTATE_NONE = 0,     /* slot unused */
    SP_WSTATE_STARTING = 1, /* spawned, not serving yet */
    SP_WSTATE_RUNNING = 2,
    SP_WSTATE_STOPPING = 3,
    SP_WSTATE_SILENT = 4, /* alive but no loop turn for SP_WORKER_SILENT_MS */
    SP_WSTATE_DEAD = 5    /* exited and not restarted */
};
#define SP_WORKER_SILENT_MS 2000

/* One product in a snapshot: static data plus the stock and the row version
 * it belongs to. */
typedef struct {
    uint32_t id;
    uint32_t stock;
    uint32_t version;
    uint32_t weight_g;
    uint32_t expiry;
    uint32_t initial_stock;
    uint64_t price_cents;
    uint64_t sold;      /* units of accepted purchases so far */
    uint64_t restocked; /* units of accepted restocks so far */
    char name[48];      /* NUL-terminated UTF-8 (SP_NAME_MAX) */
    char category[32];  /* NUL-terminated UTF-8 (SP_CATEGORY_MAX) */
} sp_snaprow_t;

/* A producer's HELLO: who it is and how to answer it before it has an id.
 * The answer is a WELCOME (counters); see sp_hello.h and PROTOCOL.md. */
typedef struct {
    uint16_t rev;         /* SP_HELLO_REV */
    uint8_t op;           /* SP_HELLO_OPEN (the only one so far) */
    uint8_t flags;        /* SP_HELLO_F_* */
    uint32_t producer_id; /* 0: give me an id; else the id this producer has */
    uint64_t reply_tag;   /* where the transport delivers the WELCOME before an id is
                             known (the link's; opaque to everyone else) */
    uint32_t pid;         /* the producer's pid on its own host */
    uint32_t reserved;    /* 0 */
    uint64_t hello_id;    /* the producer's random number, echoed in the WELCOME */
    uint64_t reserved2;   /* 0 */
} sp_hello_t;

#define SP_WIRE_ORDER_SIZE     32
#define SP_WIRE_RESULT_SIZE    40
#define SP_WIRE_EVENT_SIZE     48
#define SP_WIRE_HEARTBEAT_SIZE 40
#define SP_WIRE_COUNTER_SIZE   16
#define SP_WIRE_SNAPROW_SIZE   128
#define SP_WIRE_HELLO_SIZE     40

_Static_assert(sizeof(sp_msg_hdr_t) == SP_WIRE_HDR_SIZE, "header layout");
_Static_assert(sizeof(sp_order_t) == SP_WIRE_ORDER_SIZE, "order layout");
_Static_assert(sizeof(sp_result_t) == SP_WIRE_RESULT_SIZE, "result layout");
_Static_assert(sizeof(sp_event_t) == SP_WIRE_EVENT_SIZE, "event layout");
_Static_assert(sizeof(sp_heartbeat_t) == SP_WIRE_HEARTBEAT_SIZE, "heartbeat layout");
_Static_assert(sizeof(sp_counter_t) == SP_WIRE_COUNTER_SIZE, "counter layout");
_Static_assert(sizeof(sp_snaprow_t) == SP_WIRE_SNAPROW_SIZE, "snapshot row layout");
_Static_assert(sizeof(sp_hello_t) == SP_WIRE_HELLO_SIZE, "hello layout");

#define SP_SNAP_ROWS_PER_MSG 512 /* rows per SNAP_ROWS message: 64 KiB messages */
/* the largest message of a snapshot answer (a full SNAP_ROWS): a client's limit */
#define SP_SNAP_MSG_MAX (SP_WIRE_HDR_SIZE + SP_SNAP_ROWS_PER_MSG * SP_WIRE_SNAPROW_SIZE)

/* Size of one record of a message kind; 0 for kinds without records. */
size_t sp_wire_record_size(unsigned kind);

/* Total bytes of a message of `kind` with `count` records. */
size_t sp_wire_msg_size(unsigned kind, unsigned count);

/* Largest record count of `kind` that fits in `max_bytes` (capped at
 * SP_WIRE_MAX_RECORDS); 0 if not even one does. */
unsigned sp_wire_fit(unsigned kind, size_t max_bytes);

/* Validates a received message: length >= header, magic, version, kind,
 * count range, and length == header + count * record size.  Fills *hdr.
 * Returns 0, SP_E_BAD_SIZE, SP_E_BAD_MAGIC, SP_E_BAD_VERSION or
 * SP_E_BAD_KIND.  Never reads past `len`. */
int sp_wire_check(const void *buf, size_t len, sp_msg_hdr_t *hdr);

/* Field ranges of one decoded order: a known type (purchase .. release),
 * `reserved` 0 (a reserve's hold seconds, up to SP_HOLD_SECONDS_MAX),
 * quantity 1 .. SP_QTY_MAX, seq 1 .. SP_SEQ_MAX, producer id and product id
 * >= 1, no flag but SP_ORDER_F_RESENT.  Returns 0 or SP_E_INVALID (whether
 * the product exists is the table's business). */
int sp_wire_check_order(const sp_order_t *order);

/* Header and records, to and from little-endian bytes.  `p` points at the
 * start of the header or of the record; the caller guarantees the space
 * (sp_wire_check does for received messages). */
void sp_wire_put_hdr(void *p, unsigned kind, unsigned count, uint32_t sender, uint32_t batch);
void sp_wire_get_hdr(const void *p, sp_msg_hdr_t *h);
void sp_wire_put_order(void *p, const sp_order_t *o);
void sp_wire_get_order(const void *p, sp_order_t *o);
void sp_wire_put_result(void *p, const sp_result_t *r);
void sp_wire_get_result(const void *p, sp_result_t *r);
void sp_wire_put_event(void *p, const sp_event_t *e);
void sp_wire_get_event(const void *p, sp_event_t *e);
void sp_wire_put_heartbeat(void *p, const sp_heartbeat_t *hb);
void sp_wire_get_heartbeat(const void *p, sp_heartbeat_t *hb);
void sp_wire_put_counter(void *p, const sp_counter_t *c);
void sp_wire_get_counter(const void *p, sp_counter_t *c);
/* Names are copied NUL-terminated and truncated to their field. */
void sp_wire_put_snaprow(void *p, const sp_snaprow_t *r);
/* The text fields are always NUL-terminated after decoding. */
void sp_wire_get_snaprow(const void *p, sp_snaprow_t *r);
void sp_wire_put_hello(void *p, const sp_hello_t *h);
void sp_wire_get_hello(const void *p, sp_hello_t *h);

/* Address of record i of a message. */
static inline void *sp_wire_rec(void *msg, unsigned kind, unsigned i)
{
    return (uint8_t *)msg + SP_WIRE_HDR_SIZE + (size_t)i * sp_wire_record_size(kind);
}
static inline const void *sp_wire_crec(const void *msg, unsigned kind, unsigned i)
{
    return (const uint8_t *)msg + SP_WIRE_HDR_SIZE + (size_t)i * sp_wire_record_size(kind);
}

/* Names for logs and reports ("purchase", "out_of_stock", ...). */
const char *sp_wire_kind_name(unsigned kind);
const char *sp_wire_order_type_name(unsigned type);
const char *sp_wire_status_name(unsigned status);

/* Maps a table/apply return code to a result status. */
uint8_t sp_wire_status_of(int rc);

#endif
