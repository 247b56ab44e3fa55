/*
 * sp_hello — the HELLO/WELCOME exchange that opens a producer's session.
 *
 * A producer learns what it needs from the order path itself, never by
 * mapping the shared table (only the `direct` transport does that): it
 * opens its link, sends one HELLO message (sp_hello_t: the id it has or 0,
 * its pid, how to reach it before it has an id) and waits for the WELCOME,
 * a message of counters: its producer id (given, or the one it asked for
 * accepted), its de-duplication registration (done by the answerer), the
 * path's message size and depth, the transport, the table's identity and
 * size, the broker's pid, and for one shard of a catalogue split across
 * brokers the range of product ids it owns.  Whoever takes orders answers: a worker on every
 * transport with workers (the zmq router forwards a HELLO like an order
 * message), the producer's own link with `direct`.  Every answerer calls
 * sp_hello_answer, so the rules are in one place.
 *
 * The answer is idempotent per HELLO but not per producer: two HELLOs with
 * id 0 get two ids.  A client sends one and waits (the order path does not
 * lose messages; a full path is a send timeout).
 *
 * Ownership: messages live in the caller's buffers; nothing is allocated
 * or kept.  Errors: SP_E_INVALID for a message that is not what it should
 * be; a refused HELLO is still a WELCOME, its status saying why;
 * sp_hello_exchange adds SP_E_TIMEOUT and the link's codes.  Blocking: only
 * sp_hello_exchange waits, up to its timeout; sp_hello_answer takes the
 * table's registry lock for a moment (sp_commit_claim).
 *
 * Thread and process safety: sp_hello_answer changes the table only
 * through sp_table_new_producer_id and sp_commit_claim, both safe from any
 * process at once.  The codecs are pure.  sp_hello_exchange uses the
 * caller's link, which belongs to one thread.
 */
#ifndef SP_HELLO_H
#define SP_HELLO_H

#include "sp_table.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sp_link sp_link_t;

#define SP_HELLO_REV 1
enum { SP_HELLO_OPEN = 1 };
/* the producer's holds outlive it (a one-shot reserve): register no pid */
#define SP_HELLO_F_HOLDS_OUTLIVE 0x01u

/* SP_CTR_HELLO_STATUS values. */
enum {
    SP_HELLO_OK = 0,
    SP_HELLO_ID_TAKEN = 1, /* a live other process has the id asked for */
    SP_HELLO_NO_ROOM = 2,  /* every de-duplication slot belongs to a live producer */
    SP_HELLO_BAD = 3,      /* a malformed HELLO, or a reserved id */
    /* the client (one process over ipc://, one address over tcp://) holds
     * as many producer sessions as one may (SP_ROUTER_PEER_SESSIONS): the
     * zmq router's answer, before any worker sees the HELLO */
    SP_HELLO_PEER_FULL = 4,
    SP_HELLO_STATUS_COUNT = 5
};

/* SP_CTR_SESSION_FLAGS bits. */
#define SP_WELCOME_F_RESUMED 0x01u /* the id's window and holds were there already */

/* Producer sessions one client may hold at once over zmq (the router's
 * bound, broker/sp_router.h): a quarter of SP_DEDUP_SLOTS. */
#define SP_HELLO_PEER_SESSIONS 64

#define SP_WELCOME_COUNTERS_MAX 16
#define SP_HELLO_MSG_SIZE       (SP_WIRE_HDR_SIZE + SP_WIRE_HELLO_SIZE)
/* a HELLO unanswered this long is sent again, the same (a worker killed
 * while holding it takes it along); a late second WELCOME has the same
 * hello_id, and clients drop it */
#define SP_HELLO_RESEND_MS  2000
#define SP_WELCOME_MSG_MAX  (SP_WIRE_HDR_SIZE + SP_WELCOME_COUNTERS_MAX * SP_WIRE_COUNTER_SIZE)
#define SP_HELLO_TIMEOUT_MS 10000 /* a client's wait for its WELCOME, by default */

/* What a WELCOME says (counters it does not carry are 0). */
typedef struct {
    uint32_t status; /* SP_HELLO_* */
    uint32_t producer_id;
    uint64_t hello_id;
    uint32_t rev;
    uint32_t transport; /* sp_transport_t.id */
    uint32_t sync;      /* sp_sync_t */
    uint32_t msgsize;   /* largest order message the path carries; 0: the wire's */
    uint32_t depth;     /* messages the order path holds; 0: not a fixed depth */
    uint32_t capacity;  /* table rows: the highest product id */
    uint32_t products;  /* products in the catalogue */
    uint32_t workers;
    uint32_t dedup_window;
    uint32_t flags; /* SP_WELCOME_F_* */
    int32_t broker_pid;
    uint64_t created_ns; /* the table's identity */
    /* a shard's product ids, lowest and highest (SP_CTR_PRODUCT_RANGE);
     * both 0 when the instance is not a shard */
    uint32_t product_lo;
    uint32_t product_hi;
} sp_welcome_t;

/* Writes a HELLO message (header and one record) into out, which holds
 * SP_HELLO_MSG_SIZE bytes.  The header's `sender` is 0: the link that sends
 * a HELLO has no id yet (the record says which id it asks for), so the
 * answer goes back by the reply tag. */
void sp_hello_encode(void *out, const sp_hello_t *h);

/* Answers one received HELLO (`msg`, `len` bytes, checked here) for the
 * instance of table `t`, as answerer `answerer` (a worker id, 0 for the
 * producer's own direct link): gives or checks the producer id, claims its
 * de-duplication slot for h.pid (none when SP_HELLO_F_HOLDS_OUTLIVE), and
 * writes the WELCOME into out (cap >= SP_WELCOME_MSG_MAX).  *hello gets the
 * decoded HELLO (the reply tag is the caller's to route by).  Returns the
 * WELCOME's length (a refusal is a WELCOME too, its status saying why), or
 * SP_E_INVALID for a message that is not one HELLO (dead-letter it). */
int sp_hello_answer(sp_table_t *t, const void *msg, size_t len, uint32_t answerer,
                    sp_hello_t *hello, void *out, size_t cap);

/* Writes the WELCOME that refuses HELLO `h` with `status` (not
 * SP_HELLO_OK) without a table: HELLO_STATUS, PRODUCER_ID (the id asked
 * for), HELLO_ID and HELLO_REV only (the zmq router's refusal).  out holds
 * SP_WELCOME_MSG_MAX bytes.  Returns the WELCOME's length. */
int sp_hello_refuse(const sp_hello_t *h, uint32_t status, void *out);

/* Decodes a WELCOME message (checked here).  Returns 0 or SP_E_INVALID. */
int sp_welcome_decode(const void *msg, size_t len, sp_welcome_t *w);

/* Client side: sends `h` on `link` (a producer link, opened with id
 * h->producer_id) and waits up to timeout_ms for the WELCOME that echoes
 * its hello_id, skipping anything else that arrives; `buf` (cap bytes, at
 * least SP_WELCOME_MSG_MAX and what the link's receive needs) is scratch.
 * Returns 0 with *w filled (check w->status), SP_E_TIMEOUT with *why saying
 * what may be wrong, or the link's error. */
int sp_hello_exchange(sp_link_t *link, const sp_hello_t *h, void *buf, size_t cap, int timeout_ms,
                      sp_welcome_t *w, char *why, size_t why_cap);

/* "ok", "id_taken", "no_room", "bad", "peer_full" (or "?"). */
const char *sp_hello_status_name(uint32_t status);

#endif
