/*
 * sp_mq — the `mq` transport: POSIX message queues, no broker on the path.
 *
 * Every producer writes order messages into the one kernel queue
 * /NAME.orders and every worker reads from it; each result message goes to
 * the reply queue /NAME.r.<producer id> of the producer that sent the
 * order, which that producer creates when its link opens (exclusively,
 * mode 0600, depth msg_max) and removes when it closes.  The broker's side
 * (sp_transport_mq) creates and removes the order queue, checks the
 * kernel's limits first (fs.mqueue.msg_max, msgsize_max, RLIMIT_MSGQUEUE)
 * and names the setting to raise instead of clamping.
 *
 * Ends: a producer link opens /NAME.orders for writing; a worker link opens
 * it for reading.  Producer-link open fails with -ENOENT (no order queue),
 * -EMSGSIZE (a message larger than the queue's), SP_E_MQ_LIMIT (a reply
 * queue beyond msgsize_max), -EEXIST (its reply queue exists: a live
 * producer has this id, or a crashed one left its queue).  A producer
 * without an id yet waits for its WELCOME in a one-message queue
 * /NAME.r.h<tag> of its own, replaced by /NAME.r.<id> on adopt.
 *
 * Ownership: a producer link creates its reply (or WELCOME) queue and
 * unlinks it on close; a worker link keeps up to 64 producers' reply
 * queues open, letting go of those whose producer has gone.  Blocking:
 * send and receive wait up to their timeout (mq_timedsend,
 * mq_timedreceive), and a full reply queue makes a worker's send wait.
 * Threads: a link belongs to one thread; any number of ends in any number
 * of processes share the queues.
 *
 * The functions below are the transport's own, for its broker side, the
 * limits module, the benchmark's raw baseline and tests.  They return 0 or
 * -errno (SP_E_MQ_LIMIT with *why where a limit is in the way) and are safe
 * from any thread and process (the kernel serialises queue operations).
 */
#ifndef SP_MQ_H
#define SP_MQ_H

#include "sp_instance.h"
#include "sp_transport.h"

#include <sys/types.h>

#define SP_MQ_MSGSIZE_DEFAULT 8192

extern const sp_transport_t sp_transport_mq;

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

#endif
