/*
 * sp_metrics — the broker's counters for Prometheus (`broker --metrics`).
 *
 * Two halves.  The board (sp_metrics.c): the broker thread hands it every
 * STATS message it publishes to monitors (ten a second, sp_bstats), and it
 * keeps those counters in atomics, with the cumulative latency buckets the
 * STATS' windows are made from; sp_metrics_render writes them in the
 * Prometheus text exposition format (version 0.0.4) from any thread,
 * adding the journal's and the snapshot's ages from the state directory's
 * files.  The server (sp_metrics_http.c, linked into bin/broker only, with
 * libmicrohttpd): GET /metrics renders the board on libmicrohttpd's own
 * thread, which reads nothing but the board's atomics and the disk.
 *
 * Metrics (docs/METRICS.md lists them with their meaning):
 *   sp_orders_total{outcome}            orders answered, by SP_STATUS_* name
 *   sp_order_latency_seconds            histogram, send-to-apply (no _sum:
 *                                       the workers count buckets only)
 *   sp_queue_depth{hop}, sp_queue_capacity{hop}   orders, results
 *   sp_drops_total{reason}              invalid, orders, results
 *   sp_events_total, sp_event_gaps_total
 *   sp_workers{state}, sp_worker_restarts_total{worker}
 *   sp_journal_age_seconds, sp_snapshot_age_seconds  (when the files exist)
 *   sp_products, sp_broker_info{instance,transport,sync,version}
 *
 * Ownership: the caller makes the board (sp_metrics_new) before the broker
 * and frees it after both the broker and the server are gone.  Addresses:
 * "[HOST:]PORT" with HOST an IPv4 address, [IPv6], localhost or * (every
 * IPv4 interface); no name is resolved; PORT 0 lets the kernel choose
 * (sp_metrics_serve says which).  A HOST that is not loopback is refused
 * unless `public` is set (the counters describe the shop to anyone who can
 * reach them).
 */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include "sp_broker.h"
#include "sp_hist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sp_metrics sp_metrics_t;
typedef struct sp_metrics_srv sp_metrics_srv_t;

/* A board with nothing taken yet, or NULL (out of memory). */
sp_metrics_t *sp_metrics_new(void);
/* NULL-safe; nulls the pointer.  No reader may remain. */
void sp_metrics_free(sp_metrics_t **self_p);

/* Broker thread: takes the STATS message `msg` of `n` counters it just
 * built and the cumulative latency buckets its windows come from. */
void sp_metrics_take(sp_metrics_t *m, const sp_broker_t *b, const uint8_t *msg, unsigned n,
                     const uint64_t lat[SP_LAT_BUCKETS]);

/* Any thread: the board as Prometheus text into a new NUL-terminated
 * buffer (the caller frees it), *len its length; NULL when out of memory. */
char *sp_metrics_render(sp_metrics_t *m, size_t *len);

/* The address of `--metrics SPEC`: parsed into `addr` (a struct
 * sockaddr_storage), *addr_len its length, *loopback whether only this
 * machine reaches it.  Returns 0 or SP_E_USAGE with *why. */
int sp_metrics_parse(const char *spec, void *addr, unsigned *addr_len, bool *loopback, char *why,
                     size_t cap);

/* Serves `m` on `spec` (refused when it is not loopback and !public) on a
 * thread of its own.  Returns 0 with *out set and the address it listens
 * on in `where` ("http://127.0.0.1:9464/metrics"), or SP_E_USAGE / -errno
 * with *why.  (sp_metrics_http.c: bin/broker only.) */
int sp_metrics_serve(sp_metrics_srv_t **out, sp_metrics_t *m, const char *spec, bool public,
                     char *where, size_t where_cap, char *why, size_t cap);
/* Stops the server and waits for its thread.  NULL-safe; nulls the pointer. */
void sp_metrics_stop(sp_metrics_srv_t **self_p);

#endif
