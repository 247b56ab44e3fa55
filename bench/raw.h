/*
 * raw — the benchmark's raw baselines: bare transport streams and bare
 * table-update loops, measured the same way as the pipeline so that every
 * pipeline figure can be reported as efficiency = pipeline orders/s divided
 * by raw orders/s.
 *
 * A stream baseline sends fixed-size messages of `msg_size` bytes from one
 * sender to one receiver for `seconds`, then ends the stream with an end
 * message; each message stands for `batch` orders, as a batched pipeline
 * message would.  There is no wire format, no routing and no table: only the
 * transport.  The JetStream baselines (BR_NATS, BR_NATS_R3) start their own
 * servers (bench/natsrv.h) under $TMPDIR for the run and remove them after:
 * the sender publishes with js_PublishAsync, at most BR_NATS_PENDING
 * unacknowledged, each message with a Nats-Msg-Id as the nats transport
 * sets one; the receiver takes them from a durable pull consumer in
 * fetches of up to BR_NATS_FETCH and acknowledges each.  The table
 * baselines are the two ends of the synchronisation scale: one compare-and-swap per order on a
 * cache-line row (the ceiling of the `direct` variant, whose producers apply their own orders), and
 * the original shop's algorithm (one semaphore, the whole table copied out and back for every
 * order).
 *
 * Why the shape: every side runs in its own forked process (the inproc
 * stream in two threads of one forked process), so the CPU figure covers
 * exactly those processes (each reads its process CPU clock, all threads
 * included, at "go" and when its work is done), and a broken transport can
 * be killed instead of hanging the benchmark.  Start-up is a handshake (every
 * child says it is ready, then one "go" releases them all), every wait is
 * bounded, and every IPC object is private to the run: the queue is unlinked
 * as soon as it is open, shared memory is anonymous, and the ipc:// endpoint
 * lives in a private 0700 directory removed at the end, as are a JetStream
 * run's servers with their stores and config.  Each run audits
 * itself: streams carry sequence numbers and the receiver checks that every
 * message arrived exactly once and in order; table loops check conservation
 * (initial stock - final stock == accepted units).
 *
 * raw.c is the one place outside common/ that calls mq_* and mmap, and the
 * bench's one user of libzmq sockets and of nats.c: a baseline must measure
 * the bare facility, not our wrappers around it.  The JetStream baseline
 * is set up as the nats transport sets up its stream (work-queue
 * retention, file storage, the same replicas, de-duplication window and
 * unacknowledged limit), and the JetStream CPU of the servers themselves
 * is in neither its figures nor the pipeline's.
 *
 * Ownership: a run makes its own children and IPC objects and is rid of
 * all of them when br_run returns; the result is the caller's.  Errors:
 * br_run's code, and out->why in words.  Threads and processes: one run
 * at a time from one thread of the calling process (it forks and reaps
 * its children); IPC names carry the tag and the pid, so runs in
 * different processes do not meet.
 */
#ifndef BR_RAW_H
#define BR_RAW_H

#include <stdint.h>

#define BR_MSG_MIN       16           /* stream messages carry two 64-bit words */
#define BR_MSG_MAX       (1u << 20)   /* largest stream message */
#define BR_PROCS_MAX     64           /* table loops: processes */
#define BR_PRODUCTS_MAX  (1u << 20)   /* table loops: rows */
#define BR_TAG_MAX       32           /* characters of cfg->tag */
#define BR_SECONDS_MAX   600.0        /* longest measurement */
#define BR_RING_SLOTS    256          /* BR_RING capacity */
#define BR_STOCK_INIT    (1ull << 30) /* table loops: every row's initial stock */
#define BR_SETUP_MS      10000        /* children must be ready within this */
#define BR_NATS_SETUP_MS 30000        /* ... a JetStream receiver (a cluster electing) */
#define BR_IDLE_MS       5000         /* a zmq or ring side gives up after this long blocked */
#define BR_GRACE_MS      15000        /* after `seconds`, the whole run ends within this */
#define BR_WHY_MAX       160
#define BR_NAME_PREFIX   "sp-raw-" /* IPC names: sp-raw-<tag>-<pid>... */
#define BR_NATS_PENDING  256       /* JetStream: async publishes awaiting their ack */
#define BR_NATS_FETCH    256       /* JetStream: messages asked for per fetch */

typedef enum {
    BR_MQ,         /* POSIX message queue, one sender and one receiver process */
    BR_ZMQ_IPC,    /* libzmq PUSH/PULL over ipc:// */
    BR_ZMQ_TCP,    /* libzmq PUSH/PULL over tcp://127.0.0.1 */
    BR_ZMQ_INPROC, /* libzmq PUSH/PULL over inproc://, two threads of one process */
    BR_RING,       /* sp_ring in anonymous shared memory */
    BR_ATOMIC,     /* one compare-and-swap per order on a shared row */
    BR_SHOP,       /* one semaphore, whole-table copy out and back per order */
    BR_NATS,       /* JetStream work-queue stream on one nats-server, 1 replica */
    BR_NATS_R3,    /* the same on a 3-node cluster, 3 replicas */
    BR_MQ_LOOP,    /* the simplest program for BR_MQ: blocking mq_send, mq_receive */
    BR_SPSC,       /* the simplest for BR_RING: one-sender one-receiver ring, futex waits */
    BR_KIND_COUNT
} br_kind_t;

typedef struct {
    br_kind_t kind;
    unsigned msg_size; /* streams: bytes per message, BR_MSG_MIN .. BR_MSG_MAX */
    unsigned batch;    /* streams: orders per message (>= 1); table loops ignore it */
    double seconds;    /* measuring time: the sender (or each table process) runs this long */
    const char *tag;   /* unique part of IPC names, 1..BR_TAG_MAX of [A-Za-z0-9_-] */
    unsigned procs;    /* table loops: processes, 1..BR_PROCS_MAX; streams ignore it */
    uint32_t products; /* table loops: rows, 1..BR_PRODUCTS_MAX */
    double zipf_s;     /* table loops: 0 = uniform product choice, else Zipf exponent */
    unsigned mq_depth; /* BR_MQ: queue depth; 0 = /proc/sys/fs/mqueue/msg_max */
    unsigned tcp_port; /* BR_ZMQ_TCP: loopback port; 0 = pick a free one */
} br_cfg_t;

typedef struct {
    uint64_t msgs;        /* streams: messages received; table loops: attempts */
    uint64_t orders;      /* streams: msgs * batch; table loops: attempts */
    uint64_t accepted;    /* table loops: orders that took one unit of stock */
    double wall_s;        /* streams: receiver's first..last message; tables: slowest process */
    double msgs_per_s;    /* msgs / wall_s */
    double orders_per_s;  /* orders / wall_s */
    double cpu_s;         /* CPU seconds of every process of the run, all threads, go to end */
    double cpu_s_per_m;   /* CPU seconds per million orders */
    int audit_ok;         /* 1 when the correctness check passed */
    char why[BR_WHY_MAX]; /* what failed (audit or error); "" on success */
} br_result_t;

/* Runs one measurement of cfg->kind and fills *out (always, zeroed first).
 * Blocks for about cfg->seconds (never more than seconds + BR_SETUP_MS +
 * BR_GRACE_MS; for JetStream BR_NATS_SETUP_MS instead of BR_SETUP_MS, plus
 * starting and stopping the servers, bench/natsrv.h); forks children and reaps every one of them
 * before it returns, and leaves no IPC object behind.  The caller does warm-up, repeats and
 * medians.  The calling process must not reap unknown children while it runs (no SIGCHLD handler
 * that calls wait, SIGCHLD not ignored).
 *
 * Returns 0 when the run completed and its audit passed; -EBADMSG when it
 * completed but the audit failed (the figures are filled, audit_ok is 0);
 * -EINVAL for a bad cfg; SP_E_MQ_LIMIT when BR_MQ asks for more than the
 * mqueue sysctls or RLIMIT_MSGQUEUE allow (out->why names what to raise);
 * -ENOENT when a JetStream baseline finds no nats-server or
 * scripts/nats-cluster.sh (out->why says which);
 * SP_E_TIMEOUT when a side stalled or the run overran; another negative
 * errno when the system refused something.  out->why says what failed. */
int br_run(const br_cfg_t *cfg, br_result_t *out);

/* "mq", "zmq-ipc", "zmq-tcp", "zmq-inproc", "ring", "atomic", "shop",
 * "nats", "nats-r3";
 * "?" for anything else.  Static strings. */
const char *br_kind_name(br_kind_t k);

/* The kind named `name` (as br_kind_name spells it), or BR_KIND_COUNT. */
br_kind_t br_kind_parse(const char *name);

#endif
