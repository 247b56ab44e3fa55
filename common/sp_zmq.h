/*
 * sp_zmq — ZeroMQ set-up shared by the ZeroMQ modules (sp_zlink, sp_events,
 * sp_router, sp_snapsrv, sp_snapcli, sp_monitor, sp_curve): czmq's own signal
 * handling is switched off so that sp_signal's flag stays the only interrupt
 * mechanism, every socket gets the same high-water marks, and every socket's
 * maximum message size is set the same way.
 *
 * Maximum message size: libzmq checks ZMQ_MAXMSGSIZE against every frame it
 * decodes on a connection, the handshake's own commands included, and drops
 * the connection on the first one over the limit.  So a socket's limit is
 * the largest frame its peers legitimately send it, plus what ZeroMQ wraps
 * around a frame: CURVE turns each frame into a MESSAGE command 33 bytes
 * longer (name, nonce, MAC, flags), and no limit may be smaller than the
 * handshake commands (a CURVE INITIATE with its metadata and a routing id of
 * up to 255 bytes is about 550 bytes; measured: 300 bytes pass, 200 do not).
 *
 * Nothing to own, nothing returned as an error (the options are set
 * through czmq's setters), nothing that blocks.  sp_zmq_setup does its
 * work once per process (pthread_once), so any thread may call it first;
 * the option setters act on the caller's socket, which belongs to the
 * calling thread.
 */
#ifndef SP_ZMQ_H
#define SP_ZMQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SP_ZMQ_HWM           100000 /* messages queued per pipe before back-pressure */
#define SP_ZMQ_PUB_LINGER_MS 1000   /* how long a closing publisher may flush */
#define SP_ZMQ_FRAME_SLACK   64     /* >= CURVE's 33 bytes around every frame */
#define SP_ZMQ_MSG_FLOOR     1024   /* >= ZMTP handshake commands (CURVE INITIATE) */

/* Called by every ZeroMQ module before its first socket. */
void sp_zmq_setup(void);

/* Sets ZMQ_MAXMSGSIZE on `sock` (a zsock_t or a libzmq socket) so that frames
 * of up to `largest` payload bytes pass, with or without CURVE, and nothing
 * much bigger does: largest + SP_ZMQ_FRAME_SLACK, at least SP_ZMQ_MSG_FLOOR.
 * Set it before the bind or connect: connections copy it when they start. */
void sp_zmq_set_max_frame(void *sock, size_t largest);

/* The limit sp_zmq_set_max_frame sets for `largest` (tests read it back). */
int sp_zmq_max_frame(size_t largest);

/* Sets ZMQ_IPV6 on `sock` when `endpoint` names a bracketed IPv6 address
 * ("tcp://[::1]:5555"); ZeroMQ refuses those otherwise. */
void sp_zmq_endpoint_opts(void *sock, const char *endpoint);

/* The routing id a worker's DEALER takes ("w<id>.<pid>"), by which the
 * broker's router recognises a worker that died. */
void sp_zmq_worker_rid(uint32_t worker_id, pid_t pid, char *out, size_t cap);

#endif
