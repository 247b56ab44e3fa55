/*
 * sp_link — one interface over every order transport.
 *
 * A link is one end of the order path.  A *producer* link sends order
 * messages and receives result messages; a *worker* link receives order
 * messages and sends each result message back along the route its order
 * came by.  Producers, workers, tests and the benchmark drive every
 * transport through these five calls, so the same code runs over POSIX
 * message queues and over ZeroMQ:
 *
 *   mq   the kernel queue /NAME.orders is the broker; results go back on the
 *        producer's own queue /NAME.r.<producer id>.
 *   zmq  producer DEALER -> broker ROUTER (credit-based balancing) -> worker
 *        DEALER; results return the same way to the producer's connection.
 *   shm  one lock-free orders ring in the segment /NAME.ring (sp_shmlink.h)
 *        that every producer puts into and every worker takes from; results
 *        go into the result ring the producer claimed in the same segment.
 *
 * Messages are whole sp_wire buffers; a link never splits or merges them.
 * Every call that can block takes a timeout in milliseconds.
 */
#ifndef SP_LINK_H
#define SP_LINK_H

#include "sp_curve.h"
#include "sp_instance.h"
#include "sp_ring.h"
#include "sp_shmlink.h"
#include "sp_table.h"

#include <stddef.h>
#include <stdint.h>

#define SP_ROUTE_ID_MAX        32 /* bytes of a ZeroMQ routing id */
#define SP_MQ_MSGSIZE_DEFAULT  8192
#define SP_LINK_CREDIT_DEFAULT 4 /* zmq: batches a worker asks for up front */

/* Where a result message must go: filled in by recv on a worker link, given
 * back to send. */
typedef struct {
    uint32_t producer_id;
    uint8_t id_len;
    uint8_t id[SP_ROUTE_ID_MAX];
} sp_route_t;

typedef enum { SP_LINK_PRODUCER = 1, SP_LINK_WORKER = 2 } sp_link_role_t;

typedef struct {
    sp_link_role_t role;
    sp_transport_kind_t kind;
    const sp_names_t *names; /* instance names (mq queue names) */
    const char *endpoint;    /* zmq: broker endpoint to connect to */
    uint32_t id;             /* producer id or worker id */
    size_t max_msg;          /* largest message this end sends or receives */
    size_t reply_msg;        /* producer/mq: size of its reply queue messages */
    unsigned credit;         /* worker/zmq: batches requested up front */
    /* zmq: the broker's CURVE public key (the table header's
     * curve_server_key); when set and not empty the link is a CURVE client
     * with the keys `curve` (which must then be given) */
    const char *server_key;
    const sp_curve_keys_t *curve;
} sp_link_cfg_t;

typedef struct sp_link sp_link_t;

/* Opens a link.  mq producer: opens /NAME.orders for writing and creates its
 * reply queue exclusively (mode 0600, depth = msg_max).  mq worker: opens
 * /NAME.orders for reading.  zmq: connects a DEALER to cfg->endpoint (a
 * worker then sends its first credit).  shm: maps /NAME.ring and checks its
 * layout; a producer claims a free result ring (or one whose owner process
 * died).  Returns 0 or -errno / SP_E_MQ_LIMIT (a size beyond
 * /proc/sys/fs/mqueue limits; *why says which); shm: -EMSGSIZE (messages
 * larger than a ring slot), -EUSERS (all SP_SHM_RESULT_RINGS result rings
 * belong to live producers), -EEXIST (a live producer has this id),
 * SP_E_BAD_MAGIC / SP_E_BAD_VERSION / SP_E_BAD_LAYOUT (not our segment). */
int sp_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap);

/* Closes; an mq producer also unlinks its reply queue.  NULL-safe. */
void sp_link_close(sp_link_t **self_p);

/* Sends one message.  `route` is NULL on a producer link; on a worker link it
 * is the route recv returned.  Blocks up to timeout_ms when the path is full
 * (back-pressure).  Returns 0, SP_E_TIMEOUT, -ENOENT (the producer's queue
 * is gone), -EMSGSIZE or -errno. */
int sp_link_send(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                 int timeout_ms);

/* Receives one message into buf (cap bytes).  Returns its length, SP_E_TIMEOUT
 * when nothing came in timeout_ms, -EMSGSIZE when it did not fit, or -errno.
 * On a worker link *route says where the answer goes (route may be NULL on a
 * producer link).  The message is not validated: callers run sp_wire_check. */
int sp_link_recv(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms);

/* Tells the path that the message from `route` was handled without a
 * result message (it was invalid and dead-lettered).  zmq: returns the
 * worker's credit to the broker; mq: nothing to do.  Returns 0 or -errno. */
int sp_link_release(sp_link_t *self, const sp_route_t *route);

/* Messages waiting in the link's inbound queue if the transport can tell
 * (mq_curmsgs), else -ENOTSUP. */
long sp_link_depth(sp_link_t *self);

/* Reads /proc/sys/fs/mqueue/<name> (msg_max, msgsize_max, queues_max);
 * returns the value or -errno. */
long sp_mq_limit(const char *name);

/* Creates the order queue /NAME.orders exclusively (mode 0600) with depth
 * `depth` and message size `msgsize`.  0 means "the system's msg_max" and
 * SP_MQ_MSGSIZE_DEFAULT (capped at msgsize_max).  A request above the limits
 * fails with SP_E_MQ_LIMIT and *why naming the sysctl to raise; EMFILE from
 * RLIMIT_MSGQUEUE is explained the same way.  On success *depth_out and
 * *msgsize_out get what was created. */
int sp_mq_create_orders(const sp_names_t *names, long depth, long msgsize, long *depth_out,
                        long *msgsize_out, char *why, size_t why_cap);

/* The order queue's depth and message size for a request where 0 means the
 * default (see sp_mq_create_orders).  Returns 0 or -errno. */
int sp_mq_orders_size(long *depth, long *msgsize);

/* Removes the order queue and every reply queue /NAME.r.* that is ours
 * (best effort, through the mqueue filesystem when mounted).  Returns 0 or
 * -errno. */
int sp_mq_remove_all(const sp_names_t *names);

/* The owner of queue `name`.  Returns 0, -ENOENT, or -EACCES when we may
 * not even open it (then it is someone else's). */
int sp_mq_owner(const char *name, uid_t *uid);

/* Unlinks one queue by name, only if it is ours.  Returns 0, -EACCES for
 * another user's queue (left alone), or -errno. */
int sp_mq_unlink_name(const char *name);

/* Current depth of the order queue, or -errno. */
long sp_mq_orders_depth(const sp_names_t *names);

/* Current depth of the queue `name`, or -errno. */
long sp_mq_depth(const char *name);

/* The shm transport's segment /NAME.ring (layout in sp_shmlink.h): a mapping
 * of it, process-local. */
typedef struct sp_shm sp_shm_t;

/* Creates /NAME.ring exclusively (O_EXCL, mode 0600) and lays out the orders
 * ring and the result rings with slots of `slot_size` bytes (0 means
 * SP_SHM_SLOT_DEFAULT).  The broker does this when it runs the shm
 * transport, and removes the name with sp_shm_remove at shutdown.  Returns 0
 * with *out mapped, -EEXIST (name taken), SP_E_USAGE (slot size below one
 * order or result message or above SP_SHM_SLOT_MAX; *why says which) or
 * -errno (nothing is left behind on failure). */
int sp_shm_create(sp_shm_t **out, const sp_names_t *names, long slot_size, char *why,
                  size_t why_cap);

/* Maps an existing /NAME.ring read-write and checks magic, layout version and
 * every size before anything else is read.  Returns 0, -ENOENT, -EACCES,
 * SP_E_BAD_MAGIC, SP_E_BAD_VERSION, SP_E_BAD_LAYOUT or -errno. */
int sp_shm_open(sp_shm_t **out, const sp_names_t *names, char *why, size_t why_cap);

/* Bytes of a ring segment with `slot_size`-byte slots (0: the default). */
size_t sp_shm_bytes(long slot_size);

/* Unmaps; never unlinks.  NULL-safe, nulls the pointer. */
void sp_shm_close(sp_shm_t **self_p);

/* Removes the name /NAME.ring (mappings stay valid until closed).  Returns 0
 * or -errno (-ENOENT when there is none). */
int sp_shm_remove(const sp_names_t *names);

/* The segment's header, its orders ring and result ring i (0 ..
 * SP_SHM_RESULT_RINGS - 1), e.g. for a test that writes straight into a ring. */
sp_shm_hdr_t *sp_shm_hdr(sp_shm_t *self);
sp_ring_t *sp_shm_orders(sp_shm_t *self);
sp_ring_t *sp_shm_results(sp_shm_t *self, unsigned i);

/* Order messages waiting in the orders ring, and result messages waiting in
 * all result rings together (snapshots). */
long sp_shm_orders_depth(sp_shm_t *self);
long sp_shm_results_depth(sp_shm_t *self);

#endif
