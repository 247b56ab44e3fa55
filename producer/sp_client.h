/*
 * sp_client — one producer's connection to an instance: its producer id,
 * its de-duplication registration and its link on the order path.
 *
 * Everything a producer must learn before its first order is done here and
 * nowhere else, so that the load generator's customers (sp_customer) and
 * the one-shot order (sp_once) only send and receive.  The client never
 * maps the instance's table (only the `direct` transport's link does, to
 * apply orders itself):
 *
 *   1. it finds the instance: on this host from RUN_DIR/contact, which the
 *      broker writes when it is ready (sp_contact.h), retried for
 *      SP_CLIENT_READY_MS; on another host from cfg->connect, the broker's
 *      --tcp address (zmq), with the broker's public key from
 *      cfg->server_cert when it runs CURVE;
 *   2. it opens a producer link without an id and says HELLO on it
 *      (sp_hello.h): the WELCOME gives its producer id (or accepts the one
 *      asked for), registers it for de-duplication, and says the path's
 *      message size, the transport and the table's size;
 *   3. it checks that a batch of orders and their results fit the path
 *      (the transport's fit), and takes its id on the link.
 *
 * The product ids the load picks from come from the WELCOME when the
 * catalogue's ids are dense (1 .. capacity; for a shard, the lowest id of
 * its range .. capacity), else from one snapshot of the broker's snapshot
 * service (sp_snapcli.h).
 *
 * The resend policy both order paths follow (a result timeout, resends
 * backing off from SP_RETRY_MS to SP_RETRY_MAX_MS, one bounded send) is
 * stated here too, with the client they apply to.
 *
 * Ownership: the client owns its link, keys, buffers and product list;
 * what the accessors return is borrowed until sp_client_close.  Errors:
 * negative codes with a one-line *why.  Blocking: sp_client_open waits up to
 * SP_CLIENT_READY_MS for the instance and SP_HELLO_TIMEOUT_MS for the
 * WELCOME; a snapshot (sp_client_products the first time ids are not
 * dense, sp_client_snapshot) waits up to SP_CLIENT_READY_MS; nothing else
 * blocks.  Threads and processes: one client per
 * thread (its link is not shared); any number of clients in any number of
 * threads and processes, each with its own producer id.  On this host the
 * registration is made with this process's pid, so that the id's slot (and
 * its holds) is freed once the process is gone, unless holds_outlive says
 * otherwise; a producer on another host registers no pid (its slot is
 * reclaimed when idle, its holds expire).
 */
#ifndef SP_CLIENT_H
#define SP_CLIENT_H

#include "sp_hello.h"
#include "sp_link.h"
#include "sp_snapcli.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_CLIENT_READY_MS   5000  /* how long open waits for the instance to be ready */
#define SP_RESULT_TIMEOUT_MS 10000 /* an order unanswered this long is timed out */
#define SP_RETRY_MS          250   /* first resend of an unanswered order */
#define SP_RETRY_MAX_MS      2000  /* resends back off (doubling) up to this */
#define SP_SEND_TIMEOUT_MS   100   /* one blocking send attempt */

typedef struct {
    const char *instance; /* on this host (and in messages) */
    /* --connect: the broker's --tcp address, as --tcp takes it (PORT,
     * HOST:PORT or tcp://HOST:PORT: its orders at PORT, snapshots at PORT +
     * SP_TCP_SNAPSHOT), or an inproc:// (or ipc://) orders
     * endpoint of an in-process broker (then `snapshot` names its snapshot
     * endpoint); NULL: find cfg->instance on this host */
    const char *connect;
    const char *snapshot;
    /* --server-cert: the broker's public certificate, with --connect to a
     * CURVE broker; NULL: no CURVE (on this host the key comes from the
     * instance's contact file) */
    const char *server_cert;
    unsigned batch;       /* most orders in one message (and results in one answer) */
    uint32_t producer_id; /* use this producer id (one-shot --as); 0: a new one */
    bool holds_outlive;   /* register no pid: holds last until they expire */
    int timeout_ms;       /* the wait for the WELCOME; 0: SP_HELLO_TIMEOUT_MS */
    /* --cert: this producer's secret certificate (sp_curve.h), needed when
     * the instance's order endpoint is a CURVE server; NULL: none */
    const char *cert;
} sp_client_cfg_t;

typedef struct sp_client sp_client_t;

/* Connects to the instance as a producer (above).  Returns 0 with *out, or a
 * negative code with *why: SP_E_USAGE (a bad instance name or --connect
 * address, or a CURVE endpoint and no cert), SP_E_TIMEOUT (the instance is
 * not running: no contact file after SP_CLIENT_READY_MS, or no WELCOME),
 * -EEXIST (a live producer has the id asked for), -EUSERS (no room for
 * another producer), SP_E_BAD_LAYOUT (a transport this build does not know),
 * -EMSGSIZE (the batch does not fit the path's messages; *why names the
 * limit and the largest batch that does), the certificate's and
 * sp_link_open's codes, -ENOMEM. */
int sp_client_open(sp_client_t **out, const sp_client_cfg_t *cfg, char *why, size_t cap);

/* Closes the link, wipes the keys.  NULL-safe, nulls the pointer. */
void sp_client_close(sp_client_t **self_p);

/* The producer id this client sends as. */
uint32_t sp_client_producer_id(const sp_client_t *self);

/* The link to send orders and receive their results on. */
sp_link_t *sp_client_link(const sp_client_t *self);

/* What the WELCOME said (the table's size, the transport, the broker). */
const sp_welcome_t *sp_client_welcome(const sp_client_t *self);

/* The broker's pid when it runs on this host (a client may watch it), 0
 * for a client over --connect. */
int32_t sp_client_broker_pid(const sp_client_t *self);

/* The catalogue's product ids, ascending: 1 .. capacity when they are dense
 * (a shard: product_lo .. capacity),
 * else from a snapshot (taken on the first call, up to SP_CLIENT_READY_MS).
 * Returns 0 with *ids (borrowed) and *n, or the snapshot's code with *why. */
int sp_client_products(sp_client_t *self, const uint32_t **ids, uint32_t *n, char *why, size_t cap);

/* Whether the link is a CURVE client (for explaining silence). */
bool sp_client_curve(const sp_client_t *self);

/* The send buffer (room for a message of cfg->batch orders) and the receive
 * buffer (a message of cfg->batch results); *cap gets its size. */
uint8_t *sp_client_orders_buf(const sp_client_t *self, size_t *cap);
uint8_t *sp_client_results_buf(const sp_client_t *self, size_t *cap);

/* One whole snapshot of the instance cfg names (located as sp_client_open
 * does, with no HELLO): for the audit and the final table after a run.
 * Returns 0, or the locating or sp_snapcli_fetch code with *why. */
int sp_client_snapshot(const sp_client_cfg_t *cfg, sp_snapcli_row_fn row, void *ctx,
                       sp_snapinfo_t *info, char *why, size_t cap);

/* How long an order sent `tries` times (1 ..) waits before it is sent again:
 * retry_ms << (tries - 1), at most SP_RETRY_MAX_MS; in nanoseconds. */
uint64_t sp_client_retry_after_ns(int retry_ms, unsigned tries);

#endif
