/*
 * sp_client — one producer's connection to an instance: its producer id,
 * its de-duplication registration and its link on the order path.
 *
 * Everything a producer must learn before its first order is done here and
 * nowhere else, so that the load generator's customers (sp_customer) and
 * the one-shot order (sp_once) only send and receive.  Today the client
 * learns it from the instance's shared table, mapped on this host: the
 * transport, its message sizes and endpoint, the broker's CURVE key, a fresh
 * producer id, and a de-duplication slot registered with sp_commit.  It
 * checks that a batch of orders (and its results) fits the transport, loads
 * the CURVE keys of --cert when the order endpoint is a CURVE server, and
 * opens the link (sp_link.h).  It also holds the send and receive buffers,
 * sized for the batch.
 *
 * The resend policy both order paths follow (a result timeout, resends
 * backing off from SP_RETRY_MS to SP_RETRY_MAX_MS, one bounded send) is
 * stated here too, with the client they apply to.
 *
 * Ownership: the client owns its table mapping, link, keys and buffers;
 * what the accessors return is borrowed until sp_client_close.  Errors:
 * negative codes with a one-line *why.  Blocking: sp_client_open waits up to
 * SP_CLIENT_READY_MS for the instance to be ready; nothing else blocks.
 * Threads and processes: one client per thread (its link is not shared);
 * any number of clients in any number of threads and processes, each with
 * its own producer id.  The registration is made with this process's pid so
 * that the id's slot (and its holds) is freed once the process is gone,
 * unless holds_outlive says otherwise.
 */
#ifndef SP_CLIENT_H
#define SP_CLIENT_H

#include "sp_link.h"
#include "sp_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_CLIENT_READY_MS   5000  /* how long open waits for the instance to be ready */
#define SP_RESULT_TIMEOUT_MS 10000 /* an order unanswered this long is timed out */
#define SP_RETRY_MS          250   /* first resend of an unanswered order */
#define SP_RETRY_MAX_MS      2000  /* resends back off (doubling) up to this */
#define SP_SEND_TIMEOUT_MS   100   /* one blocking send attempt */

typedef struct {
    const char *instance;
    unsigned batch;       /* most orders in one message (and results in one answer) */
    uint32_t producer_id; /* use this producer id (one-shot --as); 0: a new one */
    bool holds_outlive;   /* register no pid: holds last until they expire */
    /* --cert: this producer's secret certificate (sp_curve.h), needed when
     * the instance's order endpoint is a CURVE server; NULL: none */
    const char *cert;
} sp_client_cfg_t;

typedef struct sp_client sp_client_t;

/* Connects to the instance cfg->instance as a producer (above).  Returns 0
 * with *out, or a negative code with *why: a bad instance name or one not
 * running (the table's code, after SP_CLIENT_READY_MS), no room for another
 * producer (sp_commit_register's code), SP_E_BAD_LAYOUT (a transport this
 * build does not know), -EMSGSIZE (the batch does not fit the transport's
 * messages; *why names the limit and the largest batch that does),
 * SP_E_USAGE (a CURVE endpoint and no cert), the certificate's and
 * sp_link_open's codes, -ENOMEM. */
int sp_client_open(sp_client_t **out, const sp_client_cfg_t *cfg, char *why, size_t cap);

/* Closes the link, unmaps the table, wipes the keys.  NULL-safe, nulls the
 * pointer. */
void sp_client_close(sp_client_t **self_p);

/* The producer id this client sends as. */
uint32_t sp_client_producer_id(const sp_client_t *self);

/* The link to send orders and receive their results on. */
sp_link_t *sp_client_link(const sp_client_t *self);

/* The instance's table, mapped read-only: its products and its broker. */
sp_table_t *sp_client_table(const sp_client_t *self);

/* Whether the link is a CURVE client (for explaining silence). */
bool sp_client_curve(const sp_client_t *self);

/* The send buffer (room for a message of cfg->batch orders) and the receive
 * buffer (a message of cfg->batch results); *cap gets its size. */
uint8_t *sp_client_orders_buf(const sp_client_t *self, size_t *cap);
uint8_t *sp_client_results_buf(const sp_client_t *self, size_t *cap);

/* How long an order sent `tries` times (1 ..) waits before it is sent again:
 * retry_ms << (tries - 1), at most SP_RETRY_MAX_MS; in nanoseconds. */
uint64_t sp_client_retry_after_ns(int retry_ms, unsigned tries);

#endif
