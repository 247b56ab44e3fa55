/*
 * sp_link — one interface over every order transport: its two ends.
 *
 * A link is one end of the order path.  A *producer* link sends order
 * messages and receives result messages; a *worker* link receives order
 * messages and sends each result message back along the route its order
 * came by.  Producers, workers, tests and the benchmark drive every
 * transport through these calls, so the same code runs over each; which
 * transport a link uses is the sp_transport_t in its configuration
 * (sp_transport.h lists them and their broker side).
 *
 * Messages are whole sp_wire buffers; a link never splits or merges them.
 * Every call that can block takes a timeout in milliseconds.
 *
 * Ownership: sp_link_open allocates, sp_link_close frees (and removes what
 * the end made for itself, such as an mq producer's reply queue).  cfg->names
 * must outlive the link (the mq ends keep using it); the rest of the
 * configuration is only read during open.  Messages are copied in and out of
 * the caller's buffers.  Errors: a length or 0, else a negative code:
 * SP_E_TIMEOUT when a wait ran out, -errno or SP_E_* for the rest, with a
 * sentence in *why where the call takes one.  A link belongs to one thread at
 * a time; different links may be used from different threads and processes at
 * once.
 */
#ifndef SP_LINK_H
#define SP_LINK_H

#include "sp_curve.h"
#include "sp_instance.h"
#include "sp_transport.h"

#include <stddef.h>
#include <stdint.h>

#define SP_ROUTE_ID_MAX 32 /* bytes of a ZeroMQ routing id */
/* Batches a worker asks for up front (routed paths).  4 starved a worker
 * whenever the broker hop took longer than 4 batches of work: 16 took one
 * zmq-ipc customer from 343 k to 617 k orders/s at batch 32 (bench, 2 cores);
 * 64 made batch 32 erratic (45 k-509 k). */
#define SP_LINK_CREDIT_DEFAULT 16

/* Where a result message must go: filled in by recv on a worker link, given
 * back to send. */
typedef struct {
    uint32_t producer_id;
    uint8_t id_len;
    uint8_t id[SP_ROUTE_ID_MAX];
    /* the answer to a HELLO from a producer without an id yet (producer_id
     * 0): the tag its link gave (sp_link_reply_tag), set by the answerer
     * from the HELLO */
    uint64_t reply_tag;
} sp_route_t;

typedef enum { SP_LINK_PRODUCER = 1, SP_LINK_WORKER = 2 } sp_link_role_t;

struct sp_link_cfg {
    sp_link_role_t role;
    const sp_transport_t *transport; /* which transport (sp_transport_find) */
    const sp_names_t *names;         /* instance names (mq queue names) */
    const char *endpoint;            /* zmq: broker endpoint to connect to */
    uint32_t id;                     /* producer id or worker id */
    size_t max_msg;                  /* largest message this end sends or receives */
    size_t reply_msg;                /* producer/mq: size of its reply queue messages */
    unsigned credit;                 /* worker/zmq: batches requested up front */
    /* zmq: the broker's CURVE public key (from RUN_DIR/contact, or the
     * broker's certificate over --connect); when set and not empty the link
     * is a CURVE client with the keys `curve` (which must then be given) */
    const char *server_key;
    const sp_curve_keys_t *curve;
};

typedef struct sp_link sp_link_t;

/* Opens a link of cfg->transport (each transport's header says what its
 * ends do when they open).  Returns 0 or a negative code with *why saying
 * what failed: -ENOENT (the instance's path is not there), -EMSGSIZE
 * (messages larger than the path carries), -EEXIST (a live producer has
 * this id), SP_E_MQ_LIMIT (a size beyond a system limit; *why names it),
 * SP_E_USAGE (no transport given), or what the transport adds. */
int sp_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap);

/* Closes; an mq producer also unlinks its reply queue.  NULL-safe. */
void sp_link_close(sp_link_t **self_p);

/* Sends one message.  `route` is NULL on a producer link; on a worker link it
 * is the route recv returned.  Blocks up to timeout_ms when the path is full
 * (back-pressure).  On a worker link the timeout is how long to wait for the
 * client: mq and shm results go straight into the client's reply queue or
 * ring, so 0 waits for nothing; zmq results go to the broker's router
 * (which waits for no client) and wait at least 100 ms for it.  Returns 0,
 * SP_E_TIMEOUT, -ENOENT (the producer's queue is gone), -EMSGSIZE or
 * -errno. */
int sp_link_send(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                 int timeout_ms);

/* Receives one message into buf (cap bytes).  Returns its length, SP_E_TIMEOUT
 * when nothing came in timeout_ms, -EMSGSIZE when it did not fit, or -errno.
 * On a worker link *route says where the answer goes (route may be NULL on a
 * producer link).  The message is not validated: callers run sp_wire_check. */
int sp_link_recv(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms);

/* sp_link_recv with the wait in microseconds (0: none, < 0: forever), for a
 * caller whose next deadline is under a millisecond away (a paced
 * producer between two orders).  mq and shm wait that long to the
 * microsecond; the others wait whole milliseconds, rounded down, and a wait
 * under one looks once, then naps up to 200 us, so never past the
 * caller's deadline (it may return SP_E_TIMEOUT before it). */
int sp_link_recv_us(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, long wait_us);

/* Tells the path that the message from `route` was handled without a
 * result message (it was invalid and dead-lettered).  zmq: returns the
 * worker's credit to the broker; mq: nothing to do.  Returns 0 or -errno. */
int sp_link_release(sp_link_t *self, const sp_route_t *route);

/* A producer link opened with id 0 has no id yet: it can send only its
 * HELLO, and the answer comes back by the tag this returns (0: the link's
 * own connection needs none).  The HELLO carries it (sp_hello.h). */
uint64_t sp_link_reply_tag(sp_link_t *self);

/* Gives a producer link opened with id 0 the id its WELCOME gave, so results
 * reach it by id from now on (mq: its reply queue /NAME.r.<id>; shm: its
 * result ring's owner word).  Returns 0, -EEXIST (a live producer has the
 * id), -EINVAL (the link has an id already) or -errno with *why. */
int sp_link_adopt(sp_link_t *self, uint32_t id, char *why, size_t why_cap);

/* A file descriptor poll(2) reports readable when a message may be
 * waiting on a producer link, so that one thread can wait on several links
 * at once (a customer of a sharded shop has one per shard) without
 * spinning: mq its reply queue (level-triggered), zmq the socket's ZMQ_FD
 * (edge-triggered: poll it only after a recv with timeout 0 came back
 * SP_E_TIMEOUT, and bound the wait).  The link keeps the descriptor; it is
 * valid until sp_link_close.  Returns it, or -ENOTSUP for a transport
 * that has none (shm, nats, direct: wait on such links in turn, each a
 * short blocking recv). */
int sp_link_wait_fd(sp_link_t *self);

/* Messages waiting in the link's inbound queue if the transport can tell
 * (mq_curmsgs), else -ENOTSUP. */
long sp_link_depth(sp_link_t *self);

/* Messages a receive without waiting would hand out now, told at no cost
 * (no system call beyond mq_getattr, no round trip): mq and shm their
 * queue's depth, nats what its last fetch brought and was not yet handed
 * out.  -ENOTSUP where the transport cannot tell (zmq, direct).  A worker
 * takes that many more of one sender into its group (sp_worker.c). */
long sp_link_ready(sp_link_t *self);

/* Result messages a producer link's inbound path holds: mq its reply
 * queue's depth, shm its result ring's; 0 when the path has no fixed bound
 * (zmq, nats, direct).  A worker does not wait long for room there (it
 * drops and counts the result, sp_worker.h), so a producer keeps at most
 * this many order messages unanswered.  Never blocks. */
long sp_link_reply_room(sp_link_t *self);

#endif
