/*
 * sp_events — stock-change events and heartbeats over ZeroMQ PUB/SUB.
 *
 * Publishers (workers) connect a PUB socket to the broker's XSUB endpoint;
 * monitors connect a SUB socket to the broker's XPUB endpoint.  Whatever
 * carries the orders, events always take this path.  A publisher numbers
 * its events 1, 2, 3, ... without gaps, so a subscriber can tell exactly how
 * many it missed; PUB/SUB drops at the high-water mark rather than slowing
 * the shop, and those drops show up as counted gaps.  Heartbeats carry the
 * last event number, so "no sales" differs from "publisher dead" and a tail
 * loss is visible too.
 *
 * On this path the header's `batch` field carries the publisher's pid, its
 * incarnation: a restarted worker numbers its events from 1 again, and the
 * pid tells that apart from a reordering.
 *
 * Events are batched: sp_pub_event() appends to a pending message that
 * sp_pub_flush() sends (automatically when it is full).
 *
 * Ownership: sp_pub_new and sp_sub_new allocate the object and its socket
 * (a publisher also its pending batch); the destroy functions close and
 * free them (NULL-safe).  Errors: new
 * returns NULL with errno; the others return 0, a length, SP_E_TIMEOUT or
 * -errno.  Blocking: sp_pub_new waits up to SP_PUB_JOIN_MS for the
 * broker's subscription; publishing never blocks (a full path drops, and
 * subscribers count the gap); closing a publisher lets it flush for up to
 * SP_ZMQ_PUB_LINGER_MS; sp_sub_recv waits up to its timeout.
 * Threads: a publisher or subscriber is a ZeroMQ socket and belongs to one
 * thread; any number of them in any number of threads and processes.
 */
#ifndef SP_EVENTS_H
#define SP_EVENTS_H

#include "sp_curve.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_EVENTS_PER_MSG 1024 /* 49,168 bytes: a worker at full load sends full ones */
#define SP_PUB_JOIN_MS    3000 /* longest wait for the broker's subscription */
#define SP_SUB_HWM        250 /* messages a subscriber queues before it loses some (as the broker) */
/* The largest message on the event path, a full batch of events: the
 * maximum message size of the sockets that receive it (heartbeats, STATS
 * and EOS are smaller, checked where they are built). */
#define SP_EVENTS_MSG_MAX (SP_WIRE_HDR_SIZE + SP_EVENTS_PER_MSG * SP_WIRE_EVENT_SIZE)
/* The largest message a publisher receives: a subscription, one byte and a
 * prefix (everyone here subscribes to everything, an empty prefix). */
#define SP_SUBSCRIPTION_MAX (1 + SP_WIRE_HDR_SIZE)
_Static_assert(SP_WIRE_HDR_SIZE + SP_WIRE_HEARTBEAT_SIZE <= SP_EVENTS_MSG_MAX,
               "a heartbeat fits the event path");

typedef struct sp_pub sp_pub_t;
typedef struct sp_sub sp_sub_t;

/* Connects a publisher with id `publisher_id` to `endpoint` and waits (up to
 * SP_PUB_JOIN_MS) until the broker's subscription reaches it, so the first
 * event is not lost to ZeroMQ's slow-joiner window.  NULL on failure (errno
 * set). */
sp_pub_t *sp_pub_new(const char *endpoint, uint32_t publisher_id);

/* False when the subscription did not arrive in time (events may be lost
 * until it does; subscribers will count them as gaps). */
bool sp_pub_joined(const sp_pub_t *self);

/* Flushes the pending events, closes the socket (it lingers up to
 * SP_ZMQ_PUB_LINGER_MS to deliver them) and frees the publisher.  NULL-safe,
 * nulls the pointer. */
void sp_pub_destroy(sp_pub_t **self_p);

/* Queues one event; fills in pub_seq, publisher_id, and ts_ns unless the
 * caller set it (a worker stamps a whole message with one clock reading).  Sends the
 * pending batch when it is full.  Returns 0 or -errno. */
int sp_pub_event(sp_pub_t *self, sp_event_t *event);

/* Events waiting in the pending batch, not sent yet. */
unsigned sp_pub_pending(const sp_pub_t *self);

/* Sends pending events (no-op when none).  Never blocks.  Returns 0 or -errno. */
int sp_pub_flush(sp_pub_t *self);

/* Flushes, then sends a heartbeat.  Returns 0 or -errno. */
int sp_pub_heartbeat(sp_pub_t *self, uint32_t state, uint64_t orders_applied);

/* Number of the last event queued (0 before the first). */
uint64_t sp_pub_seq(const sp_pub_t *self);

/* Connects a subscriber to `endpoint`, subscribed to events and heartbeats;
 * a CURVE client with keys `client` when `server_key` (the broker's public
 * key) is given and not empty (else both may be NULL).  NULL on failure
 * (errno set). */
sp_sub_t *sp_sub_new(const char *endpoint, const sp_curve_keys_t *client, const char *server_key);

/* Closes and frees the subscriber.  NULL-safe, nulls the pointer. */
void sp_sub_destroy(sp_sub_t **self_p);

/* The ZeroMQ socket, for zmq_poll with other sockets. */
void *sp_sub_raw(sp_sub_t *self);

/* Receives one message (events or heartbeat) into buf.  Returns its length,
 * SP_E_TIMEOUT or -errno.  The caller validates it with sp_wire_check. */
int sp_sub_recv(sp_sub_t *self, void *buf, size_t cap, int timeout_ms);

#endif
