/*
 * sp_zlink — the `zmq` transport: orders through the broker's router.
 *
 * A producer's DEALER connects to the broker's order ROUTER (ipc://, or
 * tcp:// with --tcp, CURVE when the broker has keys); the broker forwards
 * each order message to a worker that asked for work (credit-based
 * balancing: a worker DEALER sends SP_LINK_CREDIT_DEFAULT credits up front
 * and one with every result), and the result comes back the same way to
 * the producer's own connection.  So the transport itself creates nothing:
 * the broker's router (broker/sp_router.c) is its broker side, which is why
 * the descriptor says `routed`, and depth and in-flight are the router's.
 *
 * Ends: a producer link connects a DEALER to cfg->endpoint; a worker link
 * connects one to the broker's worker endpoint and sends its first credit.
 * With cfg->server_key set (not empty) the link is a CURVE client with the
 * keys cfg->curve.  Open fails with SP_E_USAGE (no endpoint, or CURVE
 * without keys), -EMSGSIZE (cfg->max_msg above the wire's largest order
 * message, all the router takes; it would close the connection at the
 * first such message) or -errno.
 *
 * Ownership: a link owns one DEALER socket, closed with the link; the CURVE
 * keys are copied onto the socket at open.  Blocking: send waits up to its
 * timeout for room (the router's high-water marks are the back-pressure),
 * recv up to its timeout for a message.  Threads: a ZeroMQ socket belongs to
 * one thread, and so does the link; any number of links in any number of
 * threads and processes.
 */
#ifndef SP_ZLINK_H
#define SP_ZLINK_H

#include "sp_transport.h"

extern const sp_transport_t sp_transport_zmq;

#endif
