/*
 * sp_transport — what an order transport is, and the one table of them.
 *
 * A transport carries order messages from producers to workers and result
 * messages back.  Each is one module behind this table of operations (nng's
 * shape): the ends of the path (a producer link and a worker link, through
 * sp_link.h) and the broker's side of it (limits preflight, create, remove,
 * clean a crashed run's leftovers, depth and in-flight for STATS and the
 * console, the largest batch that fits).  The broker, worker, producer,
 * monitor, console and bench call these operations and never ask which
 * transport runs; only the transport modules know what they are made of.
 *
 * Transports register by name in one table (sp_transport.c):
 *
 *   mq      POSIX message queues (sp_mq.h)
 *   zmq     ZeroMQ through the broker's router (sp_zlink.h)
 *   shm     lock-free rings in shared memory (sp_shmlink.h)
 *   direct  no transport: producers apply orders themselves (sp_direct.h)
 *   nats    a NATS JetStream stream, across hosts (sp_nats.h)
 *
 * Adding one: write sp_<name>.c/.h filling an sp_transport_t, add one line to
 * the table in sp_transport.c, run the link conformance suite
 * (tests/test_link.c runs every registered transport).  docs/ARCHITECTURE.md
 * walks through it.
 *
 * Ownership: the descriptors are constant and never freed; a broker side
 * (sp_tside_t) is made by create and released by destroy, and the link
 * ends are sp_link.h's.  Errors: 0 or a negative code with *why (each
 * operation says which).  Blocking: the broker-side operations make,
 * remove and look at IPC objects and read system limits; none waits on
 * another process.  The descriptors are shared by every thread; a broker
 * side belongs to the one broker thread that created it; clean touches no
 * broker side and may run in any process.
 */
#ifndef SP_TRANSPORT_H
#define SP_TRANSPORT_H

#include "sp_instance.h"
#include "sp_limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct sp_link sp_link_t;
typedef struct sp_link_cfg sp_link_cfg_t;

/* What the broker asks of a transport: from its flags (--depth, --msgsize;
 * 0 means the transport's default) for the instance `names`.  `producers`
 * and `batch` size what producers make of their own (mq: a reply queue
 * each) for preflight; the broker leaves them 0, and the bench sets them
 * for a cell's shape. */
typedef struct {
    const sp_names_t *names;
    long depth;         /* messages the order path holds, where that is a setting */
    long msgsize;       /* the largest order or result message, where it is one */
    unsigned producers; /* producers connected at once; 0 means 1 */
    unsigned batch;     /* orders per message they send; 0: the default batch that fits */
    /* the servers of a transport that runs on servers of its own (nats:
     * --nats URL[,URL...]); NULL for the others */
    const char *service;
    unsigned replicas; /* copies its servers keep of each order (nats); 0: 1 */
} sp_tparams_t;

/* What the broker's side made, published to every client and worker in the
 * table header (and, over the wire, in the welcome): the sizes it settled
 * on.  An endpoint, where the transport has one, is the broker's to fill. */
typedef struct {
    uint32_t msgsize; /* largest message on the order path; 0: no limit */
    uint32_t depth;   /* messages the order path holds; 0: not a fixed depth */
    /* where both ends connect (nats: the servers), for the table header and
     * the contact file; NULL: the broker's own endpoints */
    const char *endpoint;
} sp_tinfo_t;

/* A transport's broker side: what create made, until destroy.  Each
 * transport's own struct starts with this. */
typedef struct sp_tside {
    const struct sp_transport *transport;
} sp_tside_t;

typedef struct sp_transport {
    const char *name;    /* "mq": what --transport takes */
    const char *summary; /* one line for --help */
    uint32_t id;         /* stored in the table header; never reused */
    /* orders travel through the broker's router (ZeroMQ ROUTER/DEALER), so
     * the broker runs its order front end and counts depth there */
    bool routed;
    /* workers take the orders (false: producers apply them themselves and
     * the broker starts no workers) */
    bool has_workers;
    /* a worker's end tells at no cost (sp_link_ready) whether more orders
     * are there to take: a worker then takes those of the same sender into
     * one journal write (consumer/sp_worker.c, a group) */
    bool cheap_depth;
    /* the URL scheme of its own servers ("nats://"), which a client's
     * --connect names to reach an instance through them; NULL: none (a
     * --connect without one reaches the broker's router, zmq) */
    const char *scheme;
    /* how the console names the order path's depth and the result path's
     * (NULL: the transport has no result queues to count) */
    const char *depth_label;
    const char *reply_label;

    /* Opens one end of the order path (sp_link.h says what each end does). */
    int (*link_open)(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap);

    /* ---- the broker's side; each may be NULL (nothing to do) ---- */

    /* Adds what create will need (queues, bytes, files) to *need, before
     * anything is made; the broker checks the sum against the system's
     * limits and refuses to start, naming the setting to raise. */
    int (*preflight)(const sp_tparams_t *p, sp_limits_need_t *need, char *why, size_t why_cap);
    /* Every name create would make is free or already ours: 0, or -EACCES
     * with *why naming the object another user holds. */
    int (*names_ours)(const sp_names_t *names, char *why, size_t why_cap);
    /* Makes the transport's objects for the instance (exclusively, mode
     * 0600) and says what it made in *info.  Returns 0, -EEXIST, SP_E_USAGE,
     * SP_E_MQ_LIMIT (*why names the setting) or -errno; nothing is left
     * behind on failure. */
    int (*create)(sp_tside_t **out, const sp_tparams_t *p, sp_tinfo_t *info, char *why,
                  size_t why_cap);
    /* Releases what create made and removes every IPC object of the
     * instance it owns, producers' own included (`producers`: the producer
     * ids handed out so far are below it).  NULL-safe, nulls *self_p. */
    void (*destroy)(sp_tside_t **self_p, uint32_t producers);
    /* Removes whatever a run of `names` left (its owner is dead: the caller
     * checked), whichever transport that run used.  Returns the number of
     * objects removed (0: none were there). */
    int (*clean)(const sp_names_t *names, uint32_t producers);
    /* Order messages waiting for a worker, and result messages waiting for
     * producers (of the latest producers below `producers`).  NULL where the
     * transport cannot tell. */
    long (*depth)(sp_tside_t *self);
    long (*reply_depth)(sp_tside_t *self, uint32_t producers);
    /* The largest batch of orders whose order message and result message
     * both fit this path as `info` describes it; *limit gets a phrase naming
     * what bounds it and how to raise that ("the order queue's 8192-byte
     * messages (broker --mq-msgsize)").  Never NULL. */
    unsigned (*fit)(const sp_tinfo_t *info, char *limit, size_t limit_cap);
} sp_transport_t;

/* The transport registered as `name`, or NULL. */
const sp_transport_t *sp_transport_find(const char *name);

/* The transport whose servers `endpoint` names by its scheme (a list:
 * its first URL), or NULL. */
const sp_transport_t *sp_transport_by_scheme(const char *endpoint);

/* The transport with table-header id `id`, or NULL. */
const sp_transport_t *sp_transport_by_id(uint32_t id);

/* The i-th registered transport (0-based), NULL past the last: for listing
 * them and for running a suite over all of them. */
const sp_transport_t *sp_transport_at(unsigned i);

/* "mq, zmq, shm or direct" into buf, for usage and error messages. */
const char *sp_transport_names(char *buf, size_t cap);

/* The transport's name for a header id ("?" when unknown). */
const char *sp_transport_name_of(uint32_t id);

/* For names_ours: 0 when the owner lookup of IPC object `name` (what: "order
 * queue") found nothing (rc -ENOENT) or found it ours; else -EACCES with
 * *why saying whose it is, or that it cannot even be opened. */
int sp_transport_owner_check(const char *what, const char *name, int rc, uid_t uid, char *why,
                             size_t why_cap);

#endif
