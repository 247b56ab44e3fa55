/*
 * sp_natsfeed — the event path and the snapshot service over NATS, for
 * monitors that reach the NATS servers and nothing else of the shop.
 *
 * Subjects, per instance (its NATS token as in sp_nats.h: '.' written '+'):
 *   sp.<instance>.events  every message of the broker's event path (events,
 *                         heartbeats, STATS, end of stream), as the broker's
 *                         events endpoint sends it (docs/PROTOCOL.md)
 *   sp.<instance>.snap    snapshot requests: a SNAP_REQ message whose NATS
 *                         reply subject gets the answer, SNAP_BEGIN, SNAP_ROWS
 *                         x N, SNAP_END, the messages the snapshot endpoint
 *                         sends (sp_snapsrv.h)
 *
 * The gateway runs in the broker of a `--transport nats` instance: a thread
 * that follows the broker's own events endpoint like a local monitor and
 * publishes each message to sp.<instance>.events, and answers each request
 * on sp.<instance>.snap by asking the broker's own snapshot endpoint (one
 * DEALER per answer under way, at most SP_NATSFEED_ANSWERS) and publishing
 * each message of the answer to the request's reply subject.
 *
 * The bridge runs in a monitor started with `--connect nats://...`: a thread
 * that binds an inproc PUB and ROUTER the monitor connects to as if they
 * were a broker's endpoints, republishes what arrives on
 * sp.<instance>.events on the PUB, and turns each request from the ROUTER
 * into a NATS request whose answer (on an inbox of its own) goes back to
 * the requester.  So the monitor's mirror, gap accounting and resyncs work
 * unchanged: a message NATS drops (a slow consumer) is a gap the mirror
 * counts, and it resyncs from a snapshot served over NATS.
 *
 * Credentials and TLS as for the transport (SP_NATS_AUTH, SP_NATS_CA).
 *
 * Ownership: start makes the thread, its sockets and its NATS connection;
 * stop ends the thread and frees them.  Errors: start returns 0 or a
 * negative code with *why (the servers' answer when they refuse or are
 * unreachable).  Blocking: start waits for the connection (up to
 * SP_NATS_API_MS); stop up to SP_NATSFEED_TICK_MS.  Threads: the thread is
 * the object's; start and stop belong to one caller thread.  A message that
 * does not fit SP_NATSFEED_QUEUE_MAX waiting messages is dropped (the
 * monitor's mirror counts the gap).
 */
#ifndef SP_NATSFEED_H
#define SP_NATSFEED_H

#include <stddef.h>
#include <stdint.h>

#define SP_NATSFEED_ANSWERS   8     /* snapshot answers under way at once */
#define SP_NATSFEED_QUEUE_MAX 65536 /* messages waiting for the thread */
#define SP_NATSFEED_TICK_MS   100   /* the thread's longest wait */
#define SP_NATSFEED_ANSWER_MS 30000 /* an answer silent this long is given up */

typedef struct sp_natsfeed sp_natsfeed_t;

/* The broker's gateway for `instance`: follows `ep_events` and asks
 * `ep_snapshot` (the broker's own endpoints) and publishes on the NATS
 * servers `urls`. */
int sp_natsfeed_gateway(sp_natsfeed_t **out, const char *urls, const char *instance,
                        const char *ep_events, const char *ep_snapshot, char *why, size_t cap);

/* A monitor's bridge to `instance` on the servers `urls`: writes the inproc
 * endpoints to connect to into ep_events and ep_snapshot (cap bytes each). */
int sp_natsfeed_bridge(sp_natsfeed_t **out, const char *urls, const char *instance, char *ep_events,
                       char *ep_snapshot, size_t ep_cap, char *why, size_t cap);

/* Messages dropped because the thread's queue was full, and messages the
 * thread passed on (for tests and the broker's log). */
uint64_t sp_natsfeed_dropped(const sp_natsfeed_t *self);
uint64_t sp_natsfeed_passed(const sp_natsfeed_t *self);

/* Ends the thread and frees everything.  NULL-safe, nulls the pointer. */
void sp_natsfeed_stop(sp_natsfeed_t **self_p);

#endif
