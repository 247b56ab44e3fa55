/*
 * sp_nats — the `nats` transport: orders through a NATS JetStream stream.
 *
 * The broker's side makes, on the NATS servers named by --nats (a
 * comma-separated list of nats://[USER:PASSWORD@]HOST:PORT), one stream per
 * instance, SP_<instance> ('.' of the name written '+'), holding subject
 * sp.<instance>.orders with work-queue retention: a message is gone once a
 * worker acknowledges it.  Its size and depth are --mq-msgsize and --mq-depth
 * (discard new: a full stream refuses a publish, which is the producers'
 * back-pressure), its de-duplication window S_DUP_WINDOW_S.  The workers
 * share one durable pull consumer, "workers", with explicit acks, an ack
 * wait of SP_NATS_ACK_WAIT_MS and at most SP_NATS_ACK_PENDING messages
 * unacknowledged at once.
 *
 * Ends: a producer link publishes each order message to the stream without
 * waiting for the stream's acknowledgement, and no more than the room the
 * stream last reported (asking again when it runs out), so that a full
 * stream holds the sender back; a message the stream refuses all the same
 * is published again before any new one (a returned 0: the link sees it
 * stored);
 * an orders message carries the Nats-Msg-Id
 * "<producer>-<batch>-<first seq>-<count>", so the same message published
 * again after a lost acknowledgement is dropped by the stream, while a
 * resend of unanswered orders (a new message, a new batch counter) reaches
 * a worker and is answered from the exactly-once registry.  Results come back on the producer's own
 * subject, sp.<instance>.r.<producer id> (before its WELCOME: sp.<instance>.r.h<tag>). A worker
 * link fetches what the consumer has (up to 64 messages) and acknowledges a message, without
 * waiting for the server's confirmation, when it sends that message's result, or releases it
 * (dead-lettered), never before: a worker that dies holding one leaves it to another
 * after the ack wait, and the workers' exactly-once registry answers the copy with the outcome it
 * recorded.  Open fails with SP_E_USAGE (no servers given), -ENOENT (no such instance on those
 * servers), -EMSGSIZE (messages larger than the stream takes), -EACCES (the servers refused our
 * credentials) or -EHOSTUNREACH (none of them answered).
 *
 * What survives what: the stream is stored on the servers' disks, so orders
 * a producer was told are stored outlive the broker, its workers and any
 * single server of a cluster (with replicas); a clean stop deletes the
 * stream (every order was answered), a crash leaves it for the next start
 * to take up.  nats-server syncs its store to disk on an interval, not per
 * write: a power loss of every server at once may lose the orders stored
 * in the last interval (docs/DEPLOYMENT.md).
 *
 * Credentials and TLS come from the environment, so that a broker's workers
 * inherit them: SP_NATS_AUTH names a file (mode 0600) whose first line is
 * "USER PASSWORD"; SP_NATS_CA a file of CA certificates, which turns TLS on
 * (the servers must then present a certificate it signed).  Credentials in
 * a URL (nats://USER:PASSWORD@HOST:PORT) work too; no message ever prints
 * them.
 *
 * Ownership: a link owns its connection and subscription, and the fetched
 * messages it has not answered (acknowledged or, at close, handed back);
 * the broker's side owns its connection.  Blocking: open and the broker's
 * operations wait for the servers (connecting, the JetStream API) up to
 * SP_NATS_API_MS (making the stream, up to SP_NATS_READY_MS while a
 * cluster elects its leaders); send up to its timeout for room in a full stream, plus
 * the acknowledgements of what it sent and a question for the room; recv
 * up to its timeout; a worker's depth one round trip for the confirmation
 * of its acknowledgements.  Threads: a
 * link belongs to one thread; nats.c runs threads of its own per
 * connection, so make links after fork, never before.
 */
#ifndef SP_NATS_H
#define SP_NATS_H

#include "sp_transport.h"

#define SP_NATS_API_MS      5000  /* connecting, and each JetStream API call */
#define SP_NATS_READY_MS    20000 /* the broker's wait for a cluster to elect its leaders */
#define SP_NATS_ACK_WAIT_MS 3000  /* an unacknowledged order goes to another worker after this */
#define SP_NATS_ACK_PENDING 1024  /* order messages the workers may hold unacknowledged */
#define SP_NATS_DEPTH       4096  /* order messages the stream holds by default */
#define SP_NATS_AUTH_ENV    "SP_NATS_AUTH" /* file: "USER PASSWORD", mode 0600 */
#define SP_NATS_CA_ENV      "SP_NATS_CA"   /* file: CA certificates; TLS on */

extern const sp_transport_t sp_transport_nats;

/* For the other users of the same servers (sp_natsfeed.h): connects to the
 * comma-separated `urls` with the credentials and TLS above (0 or a
 * negative code with *why), and writes instance `name`'s subject token. */
struct __natsConnection;
int sp_nats_connect(struct __natsConnection **nc, const char *urls, char *why, size_t cap);
void sp_nats_token(const char *name, char *out, size_t cap);

#endif
