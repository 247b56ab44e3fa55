/*
 * sp_router — the broker's ZeroMQ data paths, driven one poll turn at a time
 * from the broker's loop.
 *
 * Orders (zmq transport only):
 *     producer DEALER -> [ROUTER front] -> [ROUTER back] -> worker DEALER
 * Credit-based load balancing: a worker announces credit (SP_MSG_CREDIT,
 * `count` batches); the router hands an order message only to a worker with
 * credit left, and every result message (or a CREDIT 1 for a message the
 * worker dead-lettered) gives one back.  The front socket is not even read
 * while no worker has credit, so producers feel back-pressure through their
 * high-water marks instead of orders piling up at a slow worker.  Results
 * return to the producer's routing id; a producer that has gone away is a
 * counted drop (ROUTER_MANDATORY makes that visible).
 *
 * Events (always): publishers -> [XSUB events-in] -> [XPUB events] -> monitors.
 * The router itself subscribes to everything, so it can count events and
 * per-publisher gaps; monitors' subscriptions stop at the XPUB, where
 * sp_feedguard bounds what they can make us hold.
 *
 * A HELLO travels the order path like an order message; from a tcp://
 * front its pid is set to 0 first (a pid from another host means nothing
 * here, so the worker registers none), over ipc:// to the sender's own
 * process (a client cannot register another's).  Before that the router
 * counts the client's sessions (SP_ROUTER_PEER_SESSIONS) and answers a
 * HELLO past the limit itself, `peer_full`.
 *
 * Ownership: sp_router_new binds and owns the sockets, sp_router_destroy
 * closes them (the XPUB lingers up to SP_ZMQ_PUB_LINGER_MS so the
 * end-of-stream gets out).  Errors: 0 or a negative code (*why at new);
 * malformed or unroutable messages are counted, never returned.  Blocking:
 * sp_router_poll waits up to its timeout, and an order message handed to
 * a worker whose pipe is full may wait up to a second more; results for a
 * producer whose pipe is full are dropped at once (counted), and event
 * traffic never waits.  The sockets belong to the broker's thread.
 */
#ifndef SP_ROUTER_H
#define SP_ROUTER_H

#include "sp_curve.h"
#include "sp_hello.h"
#include "sp_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SP_ROUTER_WORKERS_MAX 256
/* Messages queued per producer connection, each way.  A producer that
 * ignores its window is made to wait once this many of its order messages
 * wait here, and one that stops reading loses results past it (and resends
 * those orders): at most 128 x 128 KiB in (the largest order message) and
 * 128 x 160 KiB out (the largest result message), 36 MiB of our memory for
 * the worst such producer, and 128 x 2 KiB with the default batch.  Our own
 * producers keep at most window / batch (32 by default) messages out. */
#define SP_ROUTER_CLIENT_HWM 128
#define SP_ROUTER_MONITOR_HWM                                                                      \
    250 /* messages queued per monitor before it loses some: 256,000 events, 12 MB, at full load   \
         */
/* Producer sessions (ids welcomed, and HELLOs not answered yet) one client
 * may hold at once over zmq: one process over ipc:// (the kernel's peer
 * credentials say which; its HELLO's pid is set to that process), one
 * address over tcp://.  A session stops counting when its producer's
 * de-duplication slot could be taken over (sp_commit_holds_slot: its
 * process dead or, with none, SP_DEDUP_IDLE_MS without orders).  Past the
 * limit a HELLO is answered `peer_full` by the router itself.  A quarter of
 * SP_DEDUP_SLOTS: one client cannot take every slot. */
#define SP_ROUTER_PEER_SESSIONS SP_HELLO_PEER_SESSIONS
#define SP_ROUTER_PEERS_MAX     256   /* clients tallied at once */
#define SP_ROUTER_PENDING_MAX   256   /* HELLOs at workers, not yet answered */
#define SP_ROUTER_PENDING_MS    10000 /* an unanswered HELLO stops counting after this */

typedef struct sp_router sp_router_t;

typedef struct {
    uint64_t orders_msgs;   /* order messages forwarded to workers */
    uint64_t results_msgs;  /* result messages returned to producers */
    uint64_t events_msgs;   /* event/heartbeat messages proxied */
    uint64_t events;        /* stock events seen */
    uint64_t event_gaps;    /* events missing in publishers' sequences */
    uint64_t drops_results; /* results whose producer was gone */
    uint64_t drops_orders;  /* orders that could not be handed to a worker */
    uint64_t invalid_msgs;  /* malformed messages dead-lettered */
    uint64_t in_flight;     /* order messages at workers, unanswered */
    uint64_t peer_refused;  /* HELLOs answered peer_full (SP_ROUTER_PEER_SESSIONS) */
} sp_router_stats_t;

/* Binds the sockets: front/back only when `orders` is true.  Endpoints are
 * full ZeroMQ endpoints.  Every socket's maximum message size is the largest
 * message its peers legitimately send (orders, results, events,
 * subscriptions).  With `curve` (the broker's keys; NULL: none) every socket
 * on a tcp:// endpoint is a CURVE server: an sp_curve_auth_t must be running
 * before this is called.  Returns 0, -ENOMEM, or -EADDRINUSE for any socket
 * that could not be made or bound (*why says which and why). */
int sp_router_new(sp_router_t **out, bool orders, const char *ep_front, const char *ep_back,
                  const char *ep_events_in, const char *ep_events, const sp_curve_keys_t *curve,
                  char *why, size_t why_cap);

/* Bounds the producer sessions each client holds (SP_ROUTER_PEER_SESSIONS),
 * judging with `table`'s de-duplication registry when a session has ended;
 * the table must outlive the router.  Until this is called (and with NULL)
 * no client is bounded. */
void sp_router_sessions(sp_router_t *self, sp_table_t *table);

/* Closes the sockets and frees the router.  NULL-safe, nulls the pointer. */
void sp_router_destroy(sp_router_t **self_p);

/* One turn: waits up to timeout_ms for traffic and moves what arrived.
 * Returns 0 or -errno. */
int sp_router_poll(sp_router_t *self, int timeout_ms);

/* Stops (false) or resumes reading new orders from producers. */
void sp_router_accept(sp_router_t *self, bool on);

/* Publishes a message (heartbeat, end of stream) of the broker's own; a
 * monitor that cannot take it loses it.  Never blocks.  Returns 0 or
 * -errno. */
int sp_router_publish(sp_router_t *self, const void *msg, size_t len);

/* The counters so far. */
void sp_router_stats(const sp_router_t *self, sp_router_stats_t *out);

/* Worker `worker_id` (process `pid`) is dead: drop its credit and count its
 * unanswered batches as no longer in flight (producers resend them). */
void sp_router_worker_gone(sp_router_t *self, uint32_t worker_id, pid_t pid);

#endif
