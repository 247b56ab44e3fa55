/*
 * raw — bare transport streams and bare table loops, each side in its own
 * forked process, supervised by the caller's process.
 *
 * One run goes through the same steps whatever the kind:
 *
 *   1. set-up in the parent: the shared report board (anonymous shared
 *      memory), the transport or the table (queue opened and unlinked at
 *      once, anonymous mappings, a private ipc:// directory), the "go" pipe;
 *   2. one fork per side; each child gets a "life" pipe whose write end it
 *      holds until it dies, so the parent sees both "ready" (one byte) and
 *      "exited" (end of file) on one descriptor and can bound every wait with
 *      poll instead of sleeping or polling waitpid;
 *   3. when every child is ready the parent closes the go pipe, which
 *      releases them all at once;
 *   4. the parent reaps each child as it exits; a child that fails, or a
 *      run that overruns, gets the others killed, so nothing outlives the
 *      call;
 *   5. the parent audits the board (and the table) and fills the result.
 *
 * Stream messages are msg_size bytes whose first two words are the sequence
 * number and its complement; the end message carries S_END_SEQ and the
 * number of messages sent.  The receiver reads the clock at its first data
 * message and at the end message only, so the measurement costs two clock
 * reads; the sender reads it every S_STREAM_CHECK messages to stop on time.
 * Over ZeroMQ the receiver acknowledges the end message through a pipe and
 * the sender waits for that before closing (linger is not trusted to flush).
 *
 * CPU: each child reads its process CPU clock (every thread, ZeroMQ's I/O
 * threads included) at "go" and when its work is done, so set-up (page
 * faults of a big private table, ZeroMQ contexts) and exit are not charged
 * to the run; the parent adds the children's figures up.
 */
#include "raw.h"

#include "natsrv.h"
#include "sp_child.h"
#include "sp_error.h"
#include "sp_link.h"
#include "sp_mq.h"
#include "sp_nats.h"
#include "sp_rand.h"
#include "sp_ring.h"
#include "sp_table.h"
#include "sp_time.h"
#include "sp_zmq.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <math.h>
#include <mqueue.h>
#include <nats/nats.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#define S_END_SEQ          UINT64_MAX /* word 0 of the end-of-stream message */
#define S_STREAM_CHECK     16u        /* sender: messages between clock reads */
#define S_ATOMIC_CHECK     256u       /* atomic loop: orders between clock reads */
#define S_FILL             0x5a       /* payload bytes after the two words */
#define S_RX               0u         /* board slot of a stream's receiver */
#define S_TX               1u         /* board slot of a stream's sender */
#define S_ACK              'A'        /* a ZeroMQ receiver's end-of-stream ack */
#define S_IPC_SOCKET       "pull"     /* socket file inside the private directory */
#define S_LOOPBACK         "127.0.0.1"
#define S_PORT_MAX         65535u
#define S_ENDPOINT_MAX     192
#define S_PATH_MAX         (sizeof(((struct sockaddr_un *)0)->sun_path))
#define S_MQ_PROC          "/proc/sys/fs/mqueue/"
#define S_MQ_MODE          0600
#define S_MILLION          1e6
#define S_NATS_STREAM      "RAW"
#define S_NATS_SUBJECT     "raw.orders"
#define S_NATS_DURABLE     "raw"
#define S_NATS_SETUP_MS    SP_NATS_READY_MS /* the receiver's wait for a cluster to elect */
#define S_NATS_PAUSE_MS    50               /* between tries while it does */
#define S_NATS_EXPIRES_MS  100 /* an empty stream: the receiver waits this for one message */
#define S_NATS_DUP_NS      (120LL * 1000000000LL) /* as the nats transport's stream */
#define S_NATS_ACK_WAIT_NS (30LL * 1000000000LL)
#define S_NATS_CRED_MAX    128

/* What one side reports back through shared memory. */
typedef struct {
    uint64_t count;    /* receiver: data messages; sender: sent; table loop: attempts */
    uint64_t accepted; /* table loop: orders that took a unit */
    uint64_t refused;  /* table loop: orders that found the row empty */
    uint64_t t_first;  /* monotonic ns: first message / loop start */
    uint64_t t_last;   /* monotonic ns: end message / loop end */
    uint64_t cpu_ns;   /* process CPU time from go to the end of its work */
    int rc;            /* 0 or the negative code the side failed with */
    int audit_ok;      /* receiver: every message once and in order */
    char why[BR_WHY_MAX];
} s_report_t;

typedef struct {
    _Atomic uint32_t tcp_port; /* BR_ZMQ_TCP: the port the receiver bound */
    s_report_t rep[BR_PROCS_MAX];
} s_board_t;

/* BR_ATOMIC: one stock word per cache line. */
typedef struct {
    _Alignas(SP_CACHELINE) _Atomic uint64_t stock;
} s_cas_row_t;

_Static_assert(sizeof(s_cas_row_t) == SP_CACHELINE, "one row per cache line");

/* BR_SHOP: a row as big as the real table's, so the copies cost the same. */
typedef struct {
    uint64_t stock;
    uint32_t id;
    uint32_t version;
    char rest[SP_ROW_SIZE - 16];
} s_shop_row_t;

_Static_assert(sizeof(s_shop_row_t) == SP_ROW_SIZE, "shop row as big as sp_row_t");
_Static_assert(sizeof(sem_t) <= SP_CACHELINE, "the semaphore fits the first line");

typedef struct s_run s_run_t;
typedef int (*s_role_fn)(s_run_t *run, unsigned idx);

struct s_run {
    const br_cfg_t *cfg;
    pid_t parent;
    s_board_t *board;
    void *mem; /* ring or table mapping */
    size_t mem_len;
    sp_ring_t *ring;
    mqd_t mq;
    bench_natsrv_t nats; /* BR_NATS*: the run's own servers */
    char nats_user[S_NATS_CRED_MAX], nats_pass[S_NATS_CRED_MAX];
    bool sem_ready;
    double *zipf_cdf;
    char dir[S_PATH_MAX]; /* BR_ZMQ_IPC: private directory, "" when none */
    char endpoint[S_ENDPOINT_MAX];
    int go[2];       /* the parent closes go[1] to start every child */
    int ack[2];      /* ZeroMQ: receiver -> sender end-of-stream ack */
    int life_wr;     /* in a child: the write end of its life pipe */
    uint64_t cpu_go; /* in a child: its process CPU clock at go (0 before) */
    s_role_fn role;
    unsigned nchild;
    unsigned nreports;            /* board slots in use */
    sp_child_t kid[BR_PROCS_MAX]; /* parent: the children and their life pipes */
};

_Static_assert(BR_PROCS_MAX <= SP_CHILD_AWAIT_MAX, "sp_child watches every child of a run");

/* A stream transport as the generic sender and receiver loops see it. */
typedef struct s_chan s_chan_t;
struct s_chan {
    int (*send)(s_chan_t *c, const void *msg, size_t len); /* 0 or negative */
    int (*recv)(s_chan_t *c, void *buf, size_t cap);       /* length or negative */
    mqd_t mq;
    sp_ring_t *ring;
    void *sock;
    jsCtx *js;             /* JetStream */
    jsPubOptions po;       /* sender: every publish's options */
    natsSubscription *sub; /* receiver: bound to the pull consumer */
    natsMsgList fetched;   /* receiver: the last fetch */
    int next;              /* receiver: its next message */
};

static const char *const s_names[BR_KIND_COUNT] = {
    [BR_MQ] = "mq",           [BR_ZMQ_IPC] = "zmq-ipc",
    [BR_ZMQ_TCP] = "zmq-tcp", [BR_ZMQ_INPROC] = "zmq-inproc",
    [BR_RING] = "ring",       [BR_ATOMIC] = "atomic",
    [BR_SHOP] = "shop",       [BR_NATS] = "nats",
    [BR_NATS_R3] = "nats-r3", [BR_MQ_LOOP] = "mq-loop",
    [BR_SPSC] = "spsc"};

const char *br_kind_name(br_kind_t k)
{
    return (unsigned)k < BR_KIND_COUNT ? s_names[k] : "?";
}

br_kind_t br_kind_parse(const char *name)
{
    for (unsigned k = 0; name != NULL && k < BR_KIND_COUNT; k++) {
        if (strcmp(name, s_names[k]) == 0) {
            return (br_kind_t)k;
        }
    }
    return BR_KIND_COUNT;
}

static void s_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_why(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, BR_WHY_MAX, fmt, ap);
    va_end(ap);
}

static bool s_is_stream(br_kind_t k)
{
    return k == BR_MQ || k == BR_ZMQ_IPC || k == BR_ZMQ_TCP || k == BR_ZMQ_INPROC || k == BR_RING ||
           k == BR_NATS || k == BR_NATS_R3 || k == BR_MQ_LOOP || k == BR_SPSC;
}

static bool s_is_zmq(br_kind_t k)
{
    return k == BR_ZMQ_IPC || k == BR_ZMQ_TCP || k == BR_ZMQ_INPROC;
}

/* The measuring time in whole milliseconds, rounded up. */
static int s_run_ms(const br_cfg_t *cfg)
{
    return (int)ceil(cfg->seconds * 1e3);
}

/* How long the children may take to be ready: a JetStream receiver makes
 * its stream, which a cluster just started may refuse while it elects. */
static int s_setup_ms(const br_cfg_t *cfg)
{
    return cfg->kind == BR_NATS || cfg->kind == BR_NATS_R3 ? BR_NATS_SETUP_MS : BR_SETUP_MS;
}

static uint64_t s_run_ns(const br_cfg_t *cfg)
{
    return (uint64_t)(cfg->seconds * (double)SP_NS_PER_SEC);
}

/* CPU time of the whole calling process (all threads), in ns. */
static uint64_t s_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * SP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------
 * Checking the configuration
 */

static int s_check_cfg(const br_cfg_t *cfg, char *why)
{
    if ((unsigned)cfg->kind >= BR_KIND_COUNT) {
        s_why(why, "unknown baseline kind %d", (int)cfg->kind);
        return -EINVAL;
    }
    size_t tag_len = cfg->tag != NULL ? strlen(cfg->tag) : 0;
    if (tag_len == 0 || tag_len > BR_TAG_MAX ||
        strspn(cfg->tag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
            tag_len) {
        s_why(why, "tag must be 1..%d characters of [A-Za-z0-9_-]", BR_TAG_MAX);
        return -EINVAL;
    }
    if (!(cfg->seconds > 0 && cfg->seconds <= BR_SECONDS_MAX)) {
        s_why(why, "seconds must be in (0, %g]", BR_SECONDS_MAX);
        return -EINVAL;
    }
    if (s_is_stream(cfg->kind)) {
        if (cfg->msg_size < BR_MSG_MIN || cfg->msg_size > BR_MSG_MAX) {
            s_why(why, "msg_size %u is outside %u..%u bytes", cfg->msg_size, BR_MSG_MIN,
                  BR_MSG_MAX);
            return -EINVAL;
        }
        if (cfg->batch == 0) {
            s_why(why, "batch must be at least 1 order per message");
            return -EINVAL;
        }
        if (cfg->kind == BR_ZMQ_TCP && cfg->tcp_port > S_PORT_MAX) {
            s_why(why, "tcp_port %u is not a port", cfg->tcp_port);
            return -EINVAL;
        }
        return 0;
    }
    if (cfg->procs == 0 || cfg->procs > BR_PROCS_MAX) {
        s_why(why, "procs must be 1..%d", BR_PROCS_MAX);
        return -EINVAL;
    }
    if (cfg->products == 0 || cfg->products > BR_PRODUCTS_MAX) {
        s_why(why, "products must be 1..%u", BR_PRODUCTS_MAX);
        return -EINVAL;
    }
    if (!(cfg->zipf_s >= 0 && isfinite(cfg->zipf_s))) {
        s_why(why, "zipf_s must be 0 (uniform) or a positive exponent");
        return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Children: start-up handshake and product choice
 */

/* In a child: waits up to ms for something (or the end) on the parent's
 * pipe fd; EINTR retried.  Returns poll's count, -1 with errno. */
static int s_wait_pipe(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;
    do {
        n = poll(&p, 1, ms);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* Says "ready" to the parent and waits (bounded) for the go pipe to close. */
static int s_ready_go(s_run_t *run, s_report_t *rep)
{
    int rc = sp_child_say_ready(run->life_wr);
    if (rc < 0) {
        s_why(rep->why, "telling the parent we are ready: %s", strerror(-rc));
        return rc;
    }
    int n = s_wait_pipe(run->go[0], s_setup_ms(run->cfg));
    if (n <= 0) {
        s_why(rep->why, "no start signal within %d ms", s_setup_ms(run->cfg));
        return n == 0 ? SP_E_TIMEOUT : -errno;
    }
    char c;
    if (read(run->go[0], &c, 1) != 0) {
        s_why(rep->why, "unexpected data on the start pipe");
        return -EPROTO;
    }
    run->cpu_go = s_cpu_ns();
    return 0;
}

/* A seed no two processes of one run share, never 0. */
static uint64_t s_seed(unsigned idx)
{
    uint64_t z = ((uint64_t)getpid() << 32) ^ sp_now_ns() ^ ((uint64_t)idx << 48);
    /* splitmix64 finaliser: spreads nearby pids and times over all bits */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z != 0 ? z : 1;
}

/* Cumulative Zipf weights 1/k^s for k = 1..n; NULL on allocation failure. */
static double *s_zipf_cdf(uint32_t n, double s)
{
    double *cdf = malloc(sizeof *cdf * n);
    if (cdf != NULL) {
        double acc = 0;
        for (uint32_t i = 0; i < n; i++) {
            acc += 1.0 / pow((double)(i + 1), s);
            cdf[i] = acc;
        }
    }
    return cdf;
}

/* A row index: uniform, or the first row whose cumulative weight reaches u. */
static uint32_t s_pick(const s_run_t *run, uint64_t *rng)
{
    uint32_t n = run->cfg->products;
    if (run->zipf_cdf == NULL) {
        return (uint32_t)(((sp_rand_next(rng) >> 32) * n) >> 32);
    }
    double u = sp_rand_unit(rng) * run->zipf_cdf[n - 1];
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (run->zipf_cdf[mid] < u) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* ---------------------------------------------------------------------------
 * Streams: the generic sender and receiver, and the three transports
 */

static void s_put_words(uint8_t *buf, uint64_t w0, uint64_t w1)
{
    memcpy(buf, &w0, sizeof w0);
    memcpy(buf + sizeof w0, &w1, sizeof w1);
}

/* Streams numbered messages for cfg->seconds, then the end message. */
static int s_stream_send(s_chan_t *c, const br_cfg_t *cfg, s_report_t *rep)
{
    uint8_t *buf = malloc(cfg->msg_size);
    if (buf == NULL) {
        s_why(rep->why, "sender: out of memory");
        return -ENOMEM;
    }
    memset(buf, S_FILL, cfg->msg_size);
    uint64_t t0 = sp_now_ns(), end = t0 + s_run_ns(cfg), seq = 0;
    int rc = 0;
    for (;;) {
        if (seq % S_STREAM_CHECK == 0 && sp_now_ns() >= end) {
            break;
        }
        s_put_words(buf, seq, ~seq);
        rc = c->send(c, buf, cfg->msg_size);
        if (rc < 0) {
            s_why(rep->why, "sender: message %llu: %s", (unsigned long long)seq, sp_strerror(rc));
            goto out;
        }
        seq++;
    }
    s_put_words(buf, S_END_SEQ, seq);
    rc = c->send(c, buf, cfg->msg_size);
    if (rc < 0) {
        s_why(rep->why, "sender: end message: %s", sp_strerror(rc));
    }
out:
    rep->count = seq;
    rep->t_first = t0;
    rep->t_last = sp_now_ns();
    free(buf);
    return rc;
}

/* Receives until the end message, checking every message's size and
 * sequence.  An audit failure is recorded and the stream still drained, so
 * the sender is never left blocked; only a transport failure returns < 0. */
static int s_stream_recv(s_chan_t *c, const br_cfg_t *cfg, s_report_t *rep)
{
    uint8_t *buf = malloc(cfg->msg_size);
    if (buf == NULL) {
        s_why(rep->why, "receiver: out of memory");
        return -ENOMEM;
    }
    uint64_t expected = 0, count = 0;
    bool ok = true;
    int rc = 0;
    for (;;) {
        int n = c->recv(c, buf, cfg->msg_size);
        if (n < 0) {
            rc = n;
            s_why(rep->why, "receiver: after %llu messages: %s", (unsigned long long)count,
                  sp_strerror(n));
            break;
        }
        uint64_t w0 = 0, w1 = 0;
        if ((size_t)n >= sizeof w0 + sizeof w1) {
            memcpy(&w0, buf, sizeof w0);
            memcpy(&w1, buf + sizeof w0, sizeof w1);
        }
        if (w0 == S_END_SEQ && (size_t)n == cfg->msg_size) {
            rep->t_last = sp_now_ns();
            if (ok && w1 != count) {
                ok = false;
                s_why(rep->why, "audit: sender sent %llu messages, receiver got %llu",
                      (unsigned long long)w1, (unsigned long long)count);
            }
            break;
        }
        if (count == 0) {
            rep->t_first = sp_now_ns();
        }
        if (ok && ((size_t)n != cfg->msg_size || w0 != expected || w1 != ~w0)) {
            ok = false;
            s_why(rep->why, "audit: message %llu: %d bytes, sequence %llu, expected %llu",
                  (unsigned long long)count, n, (unsigned long long)w0,
                  (unsigned long long)expected);
        }
        expected = w0 + 1;
        count++;
    }
    rep->count = count;
    rep->audit_ok = rc == 0 && ok;
    free(buf);
    return rc;
}

/* Plain blocking calls, as the simplest program makes them: the parent
 * bounds the run (a side that outlives it, or whose peer failed, is
 * killed), and mq_timedsend/mq_timedreceive with a deadline cost this
 * baseline 1-9 % against the plain loop (an hrtimer armed at every wait
 * on a full or empty queue; 0.91-0.99x of raw-mq-loop in two runs,
 * 1.01-1.02x in three without). */
static int s_mq_send(s_chan_t *c, const void *msg, size_t len)
{
    while (mq_send(c->mq, msg, len, 0) != 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

static int s_mq_recv(s_chan_t *c, void *buf, size_t cap)
{
    for (;;) {
        ssize_t n = mq_receive(c->mq, buf, cap, NULL);
        if (n >= 0) {
            return (int)n;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

/* The ring is tried without waiting first, so the common case reads no
 * clock; only a full (empty) ring pays for the bounded, sleeping wait. */
static int s_ring_send(s_chan_t *c, const void *msg, size_t len)
{
    int rc = sp_ring_put(c->ring, msg, len, 0);
    while (rc == -EAGAIN || rc == -EINTR) {
        rc = sp_ring_put(c->ring, msg, len, BR_IDLE_MS);
    }
    return rc;
}

static int s_ring_recv(s_chan_t *c, void *buf, size_t cap)
{
    int rc = sp_ring_get(c->ring, buf, cap, 0);
    while (rc == -EAGAIN || rc == -EINTR) {
        rc = sp_ring_get(c->ring, buf, cap, BR_IDLE_MS);
    }
    return rc;
}

static int s_zmq_send(s_chan_t *c, const void *msg, size_t len)
{
    while (zmq_send(c->sock, msg, len, 0) < 0) {
        if (errno != EINTR) {
            return errno == EAGAIN ? SP_E_TIMEOUT : -errno;
        }
    }
    return 0;
}

static int s_zmq_recv(s_chan_t *c, void *buf, size_t cap)
{
    for (;;) {
        int n = zmq_recv(c->sock, buf, cap, 0);
        if (n >= 0) {
            return n; /* may exceed cap (truncated): the size check catches it */
        }
        if (errno != EINTR) {
            return errno == EAGAIN ? SP_E_TIMEOUT : -errno;
        }
    }
}

/* BR_MQ and BR_RING: board slot S_RX receives, S_TX sends. */
static int s_plain_side(s_run_t *run, unsigned idx)
{
    s_report_t *rep = &run->board->rep[idx];
    s_chan_t c = {.mq = run->mq, .ring = run->ring};
    if (run->cfg->kind == BR_MQ) {
        c.send = s_mq_send;
        c.recv = s_mq_recv;
    } else {
        c.send = s_ring_send;
        c.recv = s_ring_recv;
    }
    int rc = s_ready_go(run, rep);
    if (rc < 0) {
        return rc;
    }
    return idx == S_RX ? s_stream_recv(&c, run->cfg, rep) : s_stream_send(&c, run->cfg, rep);
}

/* ---------------------------------------------------------------------------
 * The simplest correct programs (BR_MQ_LOOP, BR_SPSC): what someone would
 * write first to stream messages from one process to another, measured in
 * the same run so that the mq and ring baselines can be held against them.
 * No channel indirection and no per-message audit: the sender counts, and
 * the receiver checks only that it got as many messages as were sent.
 */

#define S_SPSC_SLOTS 256u /* a power of two, as many as BR_RING's */
#define S_SPSC_SPIN  200u /* polls before sleeping, as SP_RING_SPIN */

/* One sender, one receiver.  `tail` is the sender's count of slots
 * written, `head` the receiver's count of slots read (both wrap at 2^32,
 * and are the futex words the other side sleeps on); a side about to sleep
 * raises its flag and looks again, and the other side wakes it after it
 * publishes a change, so no wake-up is lost. */
typedef struct {
    _Alignas(SP_CACHELINE) _Atomic uint32_t tail;
    _Atomic uint32_t rx_asleep;
    _Alignas(SP_CACHELINE) _Atomic uint32_t head;
    _Atomic uint32_t tx_asleep;
    _Alignas(SP_CACHELINE) uint8_t slots[];
} s_spsc_t;

static size_t s_spsc_bytes(unsigned msg_size)
{
    return sizeof(s_spsc_t) + (size_t)S_SPSC_SLOTS * msg_size;
}

/* Only the sleeper lowers its flag (when it is awake again): a waker that
 * lowered it could do so just after the sleeper raised it for its next
 * sleep, and every later change would go unannounced. */
static void s_spsc_wake(_Atomic uint32_t *word, _Atomic uint32_t *asleep)
{
    if (atomic_load(asleep) != 0) { /* seq_cst: ordered after our store */
        syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
}

/* Waits until *word differs from `seen`: spins, then sleeps (bounded). */
static int s_spsc_wait(_Atomic uint32_t *word, _Atomic uint32_t *asleep, uint32_t seen)
{
    for (unsigned k = 0; k < S_SPSC_SPIN; k++) {
        if (atomic_load_explicit(word, memory_order_acquire) != seen) {
            return 0;
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    struct timespec idle = {.tv_sec = BR_IDLE_MS / 1000, .tv_nsec = 0};
    atomic_store(asleep, 1);
    int rc = 0;
    while (rc == 0 && atomic_load(word) == seen) {
        if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, seen, &idle, NULL, 0) < 0 &&
            errno == ETIMEDOUT) {
            rc = SP_E_TIMEOUT;
        }
    }
    atomic_store(asleep, 0);
    return rc;
}

static int s_spsc_put(s_spsc_t *q, const void *msg, unsigned size)
{
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t head;
    while (tail - (head = atomic_load_explicit(&q->head, memory_order_acquire)) == S_SPSC_SLOTS) {
        int rc = s_spsc_wait(&q->head, &q->tx_asleep, head);
        if (rc < 0) {
            return rc;
        }
    }
    memcpy(q->slots + (size_t)(tail % S_SPSC_SLOTS) * size, msg, size);
    atomic_store(&q->tail, tail + 1); /* seq_cst: before the look at rx_asleep */
    s_spsc_wake(&q->tail, &q->rx_asleep);
    return 0;
}

static int s_spsc_get(s_spsc_t *q, void *buf, unsigned size)
{
    uint32_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t tail;
    while ((tail = atomic_load_explicit(&q->tail, memory_order_acquire)) == head) {
        int rc = s_spsc_wait(&q->tail, &q->rx_asleep, tail);
        if (rc < 0) {
            return rc;
        }
    }
    memcpy(buf, q->slots + (size_t)(head % S_SPSC_SLOTS) * size, size);
    atomic_store(&q->head, head + 1);
    s_spsc_wake(&q->head, &q->tx_asleep);
    return 0;
}

/* One message of the simple loops: `put` or `get` by kind. */
static int s_simple_put(s_run_t *run, const void *msg, unsigned size)
{
    if (run->cfg->kind == BR_SPSC) {
        return s_spsc_put(run->mem, msg, size);
    }
    while (mq_send(run->mq, msg, size, 0) != 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

static int s_simple_get(s_run_t *run, void *buf, unsigned size)
{
    if (run->cfg->kind == BR_SPSC) {
        return s_spsc_get(run->mem, buf, size);
    }
    while (mq_receive(run->mq, buf, size, NULL) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

/* BR_MQ_LOOP and BR_SPSC: board slot S_RX receives, S_TX sends.  The
 * sender sends for the run's time and then an end message with its count;
 * the receiver counts until the end message. */
static int s_simple_side(s_run_t *run, unsigned idx)
{
    s_report_t *rep = &run->board->rep[idx];
    unsigned size = run->cfg->msg_size;
    uint8_t *buf = malloc(size);
    if (buf == NULL) {
        s_why(rep->why, "out of memory");
        return -ENOMEM;
    }
    memset(buf, S_FILL, size);
    int rc = s_ready_go(run, rep);
    uint64_t n = 0, word = 0;
    if (rc == 0 && idx == S_TX) {
        uint64_t t0 = sp_now_ns(), end = t0 + s_run_ns(run->cfg);
        while (rc == 0 && (n % S_STREAM_CHECK != 0 || sp_now_ns() < end)) {
            memcpy(buf, &n, sizeof n);
            rc = s_simple_put(run, buf, size);
            n += rc == 0;
        }
        word = S_END_SEQ;
        memcpy(buf, &word, sizeof word);
        memcpy(buf + sizeof word, &n, sizeof n);
        rc = rc == 0 ? s_simple_put(run, buf, size) : rc;
        rep->t_first = t0;
        rep->t_last = sp_now_ns();
    } else if (rc == 0) {
        while ((rc = s_simple_get(run, buf, size)) == 0) {
            memcpy(&word, buf, sizeof word);
            if (word == S_END_SEQ) {
                rep->t_last = sp_now_ns();
                break;
            }
            if (n++ == 0) {
                rep->t_first = sp_now_ns();
            }
        }
        rep->audit_ok = rc == 0; /* the parent holds the count against the sender's */
    }
    if (rc < 0) {
        s_why(rep->why, "%s after %llu messages: %s", idx == S_TX ? "sender" : "receiver",
              (unsigned long long)n, sp_strerror(rc));
    }
    rep->count = n;
    free(buf);
    return rc;
}

/* Opens a socket with bounded sends and receives. */
static void *s_zmq_socket(void *ctx, int type, s_report_t *rep)
{
    void *sock = zmq_socket(ctx, type);
    int idle = BR_IDLE_MS;
    if (sock == NULL || zmq_setsockopt(sock, ZMQ_SNDTIMEO, &idle, sizeof idle) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVTIMEO, &idle, sizeof idle) != 0) {
        s_why(rep->why, "zmq socket: %s", zmq_strerror(errno));
        if (sock != NULL) {
            zmq_close(sock);
        }
        return NULL;
    }
    return sock;
}

/* Closes a socket without lingering: the stream is over (acknowledged) or
 * has failed, and nothing queued is worth waiting for. */
static void s_zmq_close(void *sock)
{
    if (sock != NULL) {
        int zero = 0;
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(sock);
    }
}

/* The receiver's PULL socket, bound; for tcp:// with port 0, publishes the
 * port the system chose on the board before the receiver says ready. */
static void *s_zmq_bind(s_run_t *run, void *ctx, s_report_t *rep)
{
    void *sock = s_zmq_socket(ctx, ZMQ_PULL, rep);
    if (sock == NULL) {
        return NULL;
    }
    /* the stream's messages are msg_size bytes: nothing bigger is ours (the
     * sizing rule of sp_zmq.h; raw libzmq here, as the baseline is bare) */
    int64_t max_msg = sp_zmq_max_frame(run->cfg->msg_size);
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
    char ep[S_ENDPOINT_MAX];
    if (run->cfg->kind == BR_ZMQ_TCP && run->cfg->tcp_port == 0) {
        snprintf(ep, sizeof ep, "tcp://" S_LOOPBACK ":*");
    } else if (run->cfg->kind == BR_ZMQ_TCP) {
        snprintf(ep, sizeof ep, "tcp://" S_LOOPBACK ":%u", run->cfg->tcp_port);
    } else {
        snprintf(ep, sizeof ep, "%s", run->endpoint);
    }
    if (zmq_bind(sock, ep) != 0) {
        s_why(rep->why, "zmq_bind %s: %s", ep, zmq_strerror(errno));
        s_zmq_close(sock);
        return NULL;
    }
    if (run->cfg->kind == BR_ZMQ_TCP) {
        char last[S_ENDPOINT_MAX];
        size_t len = sizeof last;
        const char *colon = NULL;
        if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, last, &len) == 0) {
            colon = strrchr(last, ':');
        }
        unsigned long port = colon != NULL ? strtoul(colon + 1, NULL, 10) : 0;
        if (port == 0 || port > S_PORT_MAX) {
            s_why(rep->why, "cannot tell which port %s bound", ep);
            s_zmq_close(sock);
            return NULL;
        }
        atomic_store(&run->board->tcp_port, (uint32_t)port);
    }
    return sock;
}

/* Receives the whole stream on a bound PULL socket, then acknowledges the
 * end message so that the sender may close. */
static int s_zmq_receive(s_run_t *run, void *sock, s_report_t *rep)
{
    s_chan_t c = {.send = s_zmq_send, .recv = s_zmq_recv, .sock = sock};
    int rc = s_stream_recv(&c, run->cfg, rep);
    if (rc == 0) {
        const char ack = S_ACK;
        if (write(run->ack[1], &ack, 1) != 1) {
            rc = -errno;
            s_why(rep->why, "receiver: acknowledging the end: %s", strerror(errno));
        }
    }
    return rc;
}

/* Connects a PUSH socket, sends the whole stream and waits for the
 * receiver's acknowledgement of the end message. */
static int s_zmq_transmit(s_run_t *run, void *ctx, s_report_t *rep)
{
    void *sock = s_zmq_socket(ctx, ZMQ_PUSH, rep);
    if (sock == NULL) {
        return -EIO;
    }
    char ep[S_ENDPOINT_MAX];
    if (run->cfg->kind == BR_ZMQ_TCP) {
        snprintf(ep, sizeof ep, "tcp://" S_LOOPBACK ":%u",
                 (unsigned)atomic_load(&run->board->tcp_port));
    } else {
        snprintf(ep, sizeof ep, "%s", run->endpoint);
    }
    int rc = 0;
    if (zmq_connect(sock, ep) != 0) {
        rc = -errno;
        s_why(rep->why, "zmq_connect %s: %s", ep, zmq_strerror(errno));
        goto close_sock;
    }
    s_chan_t c = {.send = s_zmq_send, .recv = s_zmq_recv, .sock = sock};
    rc = s_stream_send(&c, run->cfg, rep);
    if (rc < 0) {
        goto close_sock;
    }
    int n = s_wait_pipe(run->ack[0], BR_IDLE_MS);
    char ack = 0;
    if (n <= 0 || read(run->ack[0], &ack, 1) != 1 || ack != S_ACK) {
        rc = SP_E_TIMEOUT;
        s_why(rep->why, "sender: no acknowledgement of the end within %d ms", BR_IDLE_MS);
    }
close_sock:
    s_zmq_close(sock);
    return rc;
}

/* BR_ZMQ_IPC and BR_ZMQ_TCP: one process per side, each with its own
 * context (and so its own I/O thread, whose CPU the run counts). */
static int s_zmq_side(s_run_t *run, unsigned idx)
{
    s_report_t *rep = &run->board->rep[idx];
    void *ctx = zmq_ctx_new();
    if (ctx == NULL) {
        s_why(rep->why, "zmq_ctx_new: %s", zmq_strerror(errno));
        return -EIO;
    }
    void *sock = NULL;
    int rc;
    if (idx == S_RX) {
        close(run->ack[0]);
        sock = s_zmq_bind(run, ctx, rep);
        rc = sock == NULL ? -EIO : s_ready_go(run, rep);
        if (rc == 0) {
            rc = s_zmq_receive(run, sock, rep);
        }
    } else {
        close(run->ack[1]);
        rc = s_ready_go(run, rep);
        if (rc == 0) {
            rc = s_zmq_transmit(run, ctx, rep);
        }
    }
    s_zmq_close(sock);
    zmq_ctx_term(ctx);
    return rc;
}

typedef struct {
    s_run_t *run;
    void *ctx;
    int rc;
} s_inproc_t;

static void *s_inproc_sender(void *arg)
{
    s_inproc_t *t = arg;
    t->rc = s_zmq_transmit(t->run, t->ctx, &t->run->board->rep[S_TX]);
    return NULL;
}

/* BR_ZMQ_INPROC: one process, one context; this thread receives and a
 * second thread, started at "go", sends. */
static int s_zmq_inproc(s_run_t *run, unsigned idx)
{
    s_report_t *rx = &run->board->rep[idx], *tx = &run->board->rep[S_TX];
    void *ctx = zmq_ctx_new();
    if (ctx == NULL) {
        s_why(rx->why, "zmq_ctx_new: %s", zmq_strerror(errno));
        return -EIO;
    }
    void *sock = s_zmq_bind(run, ctx, rx);
    int rc = sock == NULL ? -EIO : s_ready_go(run, rx);
    if (rc == 0) {
        /* static: after a failed receive this process exits without
         * joining, while the thread may still write its rc here */
        static s_inproc_t t;
        t = (s_inproc_t){.run = run, .ctx = ctx};
        pthread_t th;
        int err = pthread_create(&th, NULL, s_inproc_sender, &t);
        if (err != 0) {
            s_why(rx->why, "starting the sender thread: %s", strerror(err));
            rc = -err;
        } else {
            rc = s_zmq_receive(run, sock, rx);
            if (rc < 0) {
                /* the sender may be stuck in its socket, which would hold
                 * up a join and zmq_ctx_term: the process's exit ends both */
                s_zmq_close(sock);
                return rc;
            }
            pthread_join(th, NULL); /* bounded: its sends and its ack wait time out */
            tx->rc = t.rc;
            rc = t.rc;
        }
    }
    s_zmq_close(sock);
    zmq_ctx_term(ctx);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Table loops
 */

static int s_atomic_orders(s_run_t *run, uint64_t *rng, uint64_t end, s_report_t *rep)
{
    s_cas_row_t *rows = run->mem;
    uint64_t attempts = 0, accepted = 0, refused = 0;
    do {
        for (unsigned k = 0; k < S_ATOMIC_CHECK; k++) {
            _Atomic uint64_t *word = &rows[s_pick(run, rng)].stock;
            uint64_t v = atomic_load_explicit(word, memory_order_relaxed);
            for (;;) {
                if (v == 0) {
                    refused++;
                    break;
                }
                /* a failed exchange reloads v: it is the same attempt */
                if (atomic_compare_exchange_weak_explicit(word, &v, v - 1, memory_order_acq_rel,
                                                          memory_order_relaxed)) {
                    accepted++;
                    break;
                }
            }
        }
        attempts += S_ATOMIC_CHECK;
    } while (sp_now_ns() < end);
    rep->count = attempts;
    rep->accepted = accepted;
    rep->refused = refused;
    return 0;
}

static s_shop_row_t *s_shop_rows(void *mem)
{
    return (s_shop_row_t *)((uint8_t *)mem + SP_CACHELINE);
}

/* The original shop: lock the whole table, copy it all out, change one
 * row of the copy, copy it all back, unlock. */
static int s_shop_orders(s_run_t *run, uint64_t *rng, uint64_t end, s_report_t *rep,
                         s_shop_row_t *copy)
{
    sem_t *sem = run->mem;
    s_shop_row_t *table = s_shop_rows(run->mem);
    size_t bytes = (size_t)run->cfg->products * sizeof *table;
    struct timespec deadline = sp_deadline_realtime(s_run_ms(run->cfg) + BR_IDLE_MS);
    uint64_t attempts = 0, accepted = 0, refused = 0;
    int rc = 0;
    do {
        uint32_t p = s_pick(run, rng);
        int w;
        while ((w = sem_timedwait(sem, &deadline)) != 0 && errno == EINTR) {
        }
        if (w != 0) {
            rc = errno == ETIMEDOUT ? SP_E_TIMEOUT : -errno;
            s_why(rep->why, "shop: waiting for the table semaphore: %s", sp_strerror(rc));
            break;
        }
        memcpy(copy, table, bytes);
        if (copy[p].stock > 0) {
            copy[p].stock--;
            copy[p].version++;
            accepted++;
        } else {
            refused++;
        }
        memcpy(table, copy, bytes);
        sem_post(sem);
        attempts++;
    } while (sp_now_ns() < end);
    rep->count = attempts;
    rep->accepted = accepted;
    rep->refused = refused;
    return rc;
}

/* BR_ATOMIC and BR_SHOP: one of cfg->procs identical processes. */
static int s_table_side(s_run_t *run, unsigned idx)
{
    s_report_t *rep = &run->board->rep[idx];
    uint64_t rng = s_seed(idx);
    s_shop_row_t *copy = NULL;
    if (run->cfg->kind == BR_SHOP) {
        /* the private copy is touched now, so its page faults are not
         * mistaken for the algorithm's cost in the first orders */
        copy = calloc(run->cfg->products, sizeof *copy);
        if (copy == NULL) {
            s_why(rep->why, "shop: no memory for the private copy");
            return -ENOMEM;
        }
        memset(copy, 0, (size_t)run->cfg->products * sizeof *copy);
    }
    int rc = s_ready_go(run, rep);
    if (rc == 0) {
        uint64_t t0 = sp_now_ns();
        uint64_t end = t0 + s_run_ns(run->cfg);
        rc = run->cfg->kind == BR_ATOMIC ? s_atomic_orders(run, &rng, end, rep)
                                         : s_shop_orders(run, &rng, end, rep, copy);
        rep->t_first = t0;
        rep->t_last = sp_now_ns();
    }
    free(copy);
    return rc;
}

/* ---------------------------------------------------------------------------
 * JetStream: async publishes into a work-queue stream, a pull consumer
 * acknowledging each message (BR_NATS, BR_NATS_R3)
 */

/* In a child: a connection to the run's servers with their credentials.
 * `asap` sends every protocol line at once (nats.c otherwise holds fetch
 * requests and acks for its 1 ms flusher); the publisher leaves nats.c to
 * coalesce its async publishes. */
static int s_nats_connect(const s_run_t *run, bool asap, natsConnection **nc, s_report_t *rep)
{
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    const char *servers[BENCH_NATSRV_NODES_MAX];
    char list[SP_ENDPOINT_MAX];
    snprintf(list, sizeof list, "%s", run->nats.urls);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL && n < BENCH_NATSRV_NODES_MAX;
         tok = strtok_r(NULL, ",", &save)) {
        servers[n++] = tok;
    }
    if (s == NATS_OK) {
        s = natsOptions_SetServers(opts, servers, n);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetUserInfo(opts, run->nats_user, run->nats_pass);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetSendAsap(opts, asap);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetTimeout(opts, BR_IDLE_MS);
    }
    if (s == NATS_OK) {
        s = natsConnection_Connect(nc, opts);
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        s_why(rep->why, "connecting to %s: %s", run->nats.urls, natsStatus_GetText(s));
        return -EIO;
    }
    return 0;
}

/* Retries a JetStream API call while a fresh cluster still elects its
 * leaders (it answers nobody, or says it has no leader, for a moment). */
static bool s_nats_passing(natsStatus s, jsErrCode jerr, uint64_t until)
{
    bool passing = s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT || jerr == JSClusterNotAvailErr ||
                   jerr == JSClusterNotLeaderErr || jerr == JSClusterNoPeersErr;
    if (!passing || sp_now_ns() >= until) {
        return false;
    }
    sp_sleep_ns(S_NATS_PAUSE_MS * SP_NS_PER_MS);
    return true;
}

/* The receiver's set-up: the stream, its durable pull consumer, and the
 * subscription bound to it. */
static int s_nats_consumer(s_run_t *run, s_chan_t *c, s_report_t *rep)
{
    const char *subjects[] = {S_NATS_SUBJECT};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = S_NATS_STREAM;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Storage = js_FileStorage;
    sc.Replicas = run->nats.nodes;
    sc.Duplicates = S_NATS_DUP_NS;
    jsErrCode jerr = 0;
    natsStatus s;
    uint64_t until = sp_now_ns() + (uint64_t)S_NATS_SETUP_MS * SP_NS_PER_MS;
    do {
        jerr = 0;
        s = js_AddStream(NULL, c->js, &sc, NULL, &jerr);
    } while (s != NATS_OK && s_nats_passing(s, jerr, until));
    if (s != NATS_OK) {
        s_why(rep->why, "receiver: making the stream (R%d): %s (%d)", (int)sc.Replicas,
              natsStatus_GetText(s), (int)jerr);
        return -EIO;
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = S_NATS_DURABLE;
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.ReplayPolicy = js_ReplayInstant;
    cc.AckWait = S_NATS_ACK_WAIT_NS;
    cc.MaxAckPending = SP_NATS_ACK_PENDING; /* as the nats transport's workers */
    cc.FilterSubject = S_NATS_SUBJECT;
    do {
        jerr = 0;
        s = js_AddConsumer(NULL, c->js, S_NATS_STREAM, &cc, NULL, &jerr);
    } while (s != NATS_OK && s_nats_passing(s, jerr, until));
    if (s == NATS_OK) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = S_NATS_STREAM;
        so.Consumer = S_NATS_DURABLE;
        do {
            jerr = 0;
            s = js_PullSubscribe(&c->sub, c->js, S_NATS_SUBJECT, S_NATS_DURABLE, NULL, &so, &jerr);
        } while (s != NATS_OK && s_nats_passing(s, jerr, until));
    }
    if (s != NATS_OK) {
        s_why(rep->why, "receiver: the pull consumer: %s (%d)", natsStatus_GetText(s), (int)jerr);
        return -EIO;
    }
    return 0;
}

/* The next message: from the last fetch, or a new one.  A fetch asks for
 * up to BR_NATS_FETCH with "no wait" (the server answers at once with what
 * it has, then "no messages"); only when it had nothing does the receiver
 * wait, for one message, up to S_NATS_EXPIRES_MS.  So no batch request is
 * left waiting on the server while messages are under way, and a short last
 * batch costs nothing.  Both kinds wait up to S_NATS_EXPIRES_MS for the
 * server's answer: a no-wait fetch without a wait returns before it comes.
 *
 * nats.c 3.4's fetch first takes what its subscription already holds (an
 * answer that came after its fetch returned), then asks the server for the
 * batch less that; when it held more than half the batch it writes past
 * its list and corrupts the heap (fixed upstream in 3.9, "heap buffer
 * overflow in _fetch").  So while anything is held, fetch one at a time: a
 * batch of 1 is either taken whole from what is held or asked for whole.
 * Each message is acknowledged (not waiting for the server's confirmation)
 * as it is handed out. */
static int s_nats_recv(s_chan_t *c, void *buf, size_t cap)
{
    uint64_t idle_end = sp_now_ns() + (uint64_t)BR_IDLE_MS * SP_NS_PER_MS;
    bool wait = false;
    while (c->next >= c->fetched.Count) {
        natsMsgList_Destroy(&c->fetched);
        c->next = 0;
        int held = 0;
        if (natsSubscription_GetPending(c->sub, &held, NULL) != NATS_OK) {
            return -EIO;
        }
        jsFetchRequest req;
        jsFetchRequest_Init(&req);
        req.Batch = wait || held > 0 ? 1 : BR_NATS_FETCH;
        req.NoWait = !wait;
        req.Expires = (int64_t)S_NATS_EXPIRES_MS * (int64_t)SP_NS_PER_MS;
        natsStatus s = natsSubscription_FetchRequest(&c->fetched, c->sub, &req);
        if (s == NATS_OK && c->fetched.Count > 0) {
            break;
        }
        if (s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
            return -EIO;
        }
        if (sp_now_ns() >= idle_end) {
            return SP_E_TIMEOUT;
        }
        wait = !wait;
    }
    natsMsg *m = c->fetched.Msgs[c->next++];
    int n = natsMsg_GetDataLength(m);
    memcpy(buf, natsMsg_GetData(m), (size_t)n < cap ? (size_t)n : cap);
    return natsMsg_Ack(m, NULL) == NATS_OK ? n : -EIO;
}

/* An async publish with the message's sequence as its Nats-Msg-Id; at
 * BR_NATS_PENDING unacknowledged, nats.c waits its stall time and says
 * NATS_TIMEOUT: try again (from this thread, never from a callback). */
static int s_nats_send(s_chan_t *c, const void *msg, size_t len)
{
    uint64_t seq;
    memcpy(&seq, msg, sizeof seq);
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)seq);
    c->po.MsgId = id;
    uint64_t idle_end = sp_now_ns() + (uint64_t)BR_IDLE_MS * SP_NS_PER_MS;
    for (;;) {
        natsStatus s = js_PublishAsync(c->js, S_NATS_SUBJECT, msg, (int)len, &c->po);
        if (s == NATS_OK) {
            return 0;
        }
        if (s != NATS_TIMEOUT) {
            return -EIO;
        }
        if (sp_now_ns() >= idle_end) {
            return SP_E_TIMEOUT;
        }
    }
}

/* What the publisher's failures were: nats.c's thread counts them, and
 * keeps the first one's words. */
typedef struct {
    _Atomic uint64_t count;
    char first[BR_WHY_MAX / 2];
} s_nats_failed_t;

/* nats.c's thread: a publish the stream refused or never acknowledged. */
static void s_nats_pub_failed(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    s_nats_failed_t *f = closure;
    if (atomic_fetch_add(&f->count, 1) == 0) {
        snprintf(f->first, sizeof f->first, "%s (%d/%d)",
                 pae->ErrText != NULL ? pae->ErrText : natsStatus_GetText(pae->Err), (int)pae->Err,
                 (int)pae->ErrCode);
    }
}

/* BR_NATS and BR_NATS_R3: board slot S_RX receives (and makes the stream
 * before it says ready), S_TX publishes. */
static int s_nats_side(s_run_t *run, unsigned idx)
{

    s_report_t *rep = &run->board->rep[idx];
    s_chan_t c = {.send = s_nats_send, .recv = s_nats_recv};
    natsConnection *nc = NULL;
    s_nats_failed_t failed = {.count = 0};
    int rc = s_nats_connect(run, idx == S_RX, &nc, rep);
    if (rc == 0) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = BR_IDLE_MS;
        jo.PublishAsync.MaxPending = BR_NATS_PENDING;
        jo.PublishAsync.ErrHandler = s_nats_pub_failed;
        jo.PublishAsync.ErrHandlerClosure = (void *)&failed;
        natsStatus s = natsConnection_JetStream(&c.js, nc, &jo);
        if (s != NATS_OK) {
            s_why(rep->why, "JetStream context: %s", natsStatus_GetText(s));
            rc = -EIO;
        }
    }
    jsPubOptions_Init(&c.po);
    c.po.MaxWait = BR_IDLE_MS; /* else a lost ack stays pending for ever */
    if (rc == 0 && idx == S_RX) {
        rc = s_nats_consumer(run, &c, rep);
    }
    if (rc == 0) {
        rc = s_ready_go(run, rep);
    }
    if (rc == 0 && idx == S_RX) {
        rc = s_stream_recv(&c, run->cfg, rep);
    } else if (rc == 0) {
        rc = s_stream_send(&c, run->cfg, rep);
        jsPubOptions done;
        jsPubOptions_Init(&done);
        done.MaxWait = BR_IDLE_MS;
        natsStatus s = js_PublishAsyncComplete(c.js, &done);
        if (rc == 0 && (s != NATS_OK || atomic_load(&failed.count) > 0)) {
            s_why(rep->why, "sender: %llu publishes failed (first: %s), completion: %s",
                  (unsigned long long)atomic_load(&failed.count), failed.first,
                  natsStatus_GetText(s));
            rc = -EIO;
        }
    }
    natsMsgList_Destroy(&c.fetched);
    if (nc != NULL) {
        natsConnection_FlushTimeout(nc, BR_IDLE_MS); /* the last acks */
    }
    natsSubscription_Destroy(c.sub);
    jsCtx_Destroy(c.js);
    natsConnection_Destroy(nc);
    return rc;
}

/* The parent's part: the servers, and their credentials for the children
 * (read here, so that each child only copies them). */
static int s_nats_setup(s_run_t *run, char *why)
{
    const br_cfg_t *cfg = run->cfg;
    const char *tmp = getenv("TMPDIR");
    char tag[BR_TAG_MAX + sizeof BR_NAME_PREFIX];
    snprintf(tag, sizeof tag, BR_NAME_PREFIX "%s", cfg->tag);
    unsigned nodes = cfg->kind == BR_NATS_R3 ? 3 : 1;
    int rc = bench_natsrv_start(&run->nats, tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", tag,
                                nodes, why, BR_WHY_MAX);
    if (rc < 0) {
        return rc;
    }
    FILE *f = fopen(run->nats.auth, "re");
    char line[2 * S_NATS_CRED_MAX];
    bool got = f != NULL && fgets(line, sizeof line, f) != NULL;
    if (f != NULL) {
        (void)fclose(f); /* read only */
    }
    char *save = NULL;
    const char *user = got ? strtok_r(line, " \n", &save) : NULL;
    const char *pass = user != NULL ? strtok_r(NULL, " \n", &save) : NULL;
    if (pass == NULL) {
        s_why(why, "nats: no \"USER PASSWORD\" in %s", run->nats.auth);
        return -EIO;
    }
    snprintf(run->nats_user, sizeof run->nats_user, "%s", user);
    snprintf(run->nats_pass, sizeof run->nats_pass, "%s", pass);
    explicit_bzero(line, sizeof line);
    return 0;
}

/* ---------------------------------------------------------------------------
 * The parent: set-up, children, supervision, audit, teardown
 */

static int s_mq_setup(s_run_t *run, char *why)
{
    const br_cfg_t *cfg = run->cfg;
    long msg_max = sp_mq_limit("msg_max");
    long msgsize_max = sp_mq_limit("msgsize_max");
    if (msg_max < 0 || msgsize_max < 0) {
        s_why(why, "cannot read " S_MQ_PROC "msg_max and msgsize_max");
        return msg_max < 0 ? (int)msg_max : (int)msgsize_max;
    }
    if (cfg->msg_size > msgsize_max) {
        s_why(why,
              "mq: message size %u exceeds " S_MQ_PROC "msgsize_max (%ld); raise it or send "
              "smaller messages",
              cfg->msg_size, msgsize_max);
        return SP_E_MQ_LIMIT;
    }
    long depth = cfg->mq_depth != 0 ? (long)cfg->mq_depth : msg_max;
    if (depth > msg_max) {
        s_why(why, "mq: depth %ld exceeds " S_MQ_PROC "msg_max (%ld); raise it or ask for less",
              depth, msg_max);
        return SP_E_MQ_LIMIT;
    }
    char name[S_ENDPOINT_MAX];
    snprintf(name, sizeof name, "/" BR_NAME_PREFIX "%s-%d.mq", cfg->tag, (int)getpid());
    struct mq_attr attr = {.mq_maxmsg = depth, .mq_msgsize = cfg->msg_size};
    run->mq = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, S_MQ_MODE, &attr);
    if (run->mq == (mqd_t)-1) {
        int err = errno;
        if (err == EMFILE) {
            s_why(why, "mq: RLIMIT_MSGQUEUE is used up (see ulimit -q); %ld x %u bytes needed",
                  depth, cfg->msg_size);
            return SP_E_MQ_LIMIT;
        }
        s_why(why, "mq_open %s (depth %ld, %u bytes): %s", name, depth, cfg->msg_size,
              strerror(err));
        return -err;
    }
    /* both children inherit the descriptor, so the name is not needed any
     * more: unlinking it now means no crash can leave the queue behind */
    mq_unlink(name);
    return 0;
}

static void *s_map_shared(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    /* cppcheck-suppress memleak ; NULL only for MAP_FAILED, which maps nothing */
    return p == MAP_FAILED ? NULL : p;
}

/* Everything the children need, made before the first fork. */
static int s_setup(s_run_t *run, char *why)
{
    const br_cfg_t *cfg = run->cfg;
    run->board = s_map_shared(sizeof *run->board);
    if (run->board == NULL || pipe2(run->go, O_CLOEXEC) != 0) {
        int err = errno;
        s_why(why, "set-up: %s", strerror(err));
        return -err;
    }
    if (s_is_zmq(cfg->kind) && pipe2(run->ack, O_CLOEXEC) != 0) {
        int err = errno;
        s_why(why, "set-up: %s", strerror(err));
        return -err;
    }
    int rc = 0;
    switch (cfg->kind) {
    case BR_MQ:
    case BR_MQ_LOOP:
        run->role = cfg->kind == BR_MQ ? s_plain_side : s_simple_side;
        run->nchild = run->nreports = 2;
        rc = s_mq_setup(run, why);
        break;
    case BR_RING:
    case BR_SPSC: {
        bool ring = cfg->kind == BR_RING;
        run->role = ring ? s_plain_side : s_simple_side;
        run->nchild = run->nreports = 2;
        unsigned slots = ring ? BR_RING_SLOTS : S_SPSC_SLOTS;
        run->mem_len = ring ? sp_ring_bytes(slots, cfg->msg_size) : s_spsc_bytes(cfg->msg_size);
        run->mem = s_map_shared(run->mem_len); /* zeroed: an empty SPSC ring */
        if (ring && run->mem != NULL) {
            run->ring = sp_ring_init(run->mem, slots, cfg->msg_size);
        }
        if (run->mem == NULL || (ring && run->ring == NULL)) {
            rc = -errno;
            s_why(why, "ring of %u x %u bytes: %s", slots, cfg->msg_size, strerror(errno));
        }
        break;
    }
    case BR_ZMQ_IPC: {
        run->role = s_zmq_side;
        run->nchild = run->nreports = 2;
        const char *tmp = getenv("TMPDIR");
        if (tmp == NULL || tmp[0] == '\0') {
            tmp = "/tmp";
        }
        int n = snprintf(run->dir, sizeof run->dir, "%s/" BR_NAME_PREFIX "%s-%d-XXXXXX", tmp,
                         cfg->tag, (int)getpid());
        if (n < 0 || (size_t)n + sizeof "/" S_IPC_SOCKET > sizeof run->dir) {
            run->dir[0] = '\0';
            s_why(why, "zmq-ipc: socket path under %s is too long (set TMPDIR)", tmp);
            rc = -ENAMETOOLONG;
        } else if (mkdtemp(run->dir) == NULL) { /* mode 0700 */
            rc = -errno;
            s_why(why, "mkdtemp %s: %s", run->dir, strerror(errno));
            run->dir[0] = '\0';
        } else {
            snprintf(run->endpoint, sizeof run->endpoint, "ipc://%s/" S_IPC_SOCKET, run->dir);
        }
        break;
    }
    case BR_ZMQ_TCP:
        run->role = s_zmq_side;
        run->nchild = run->nreports = 2;
        break;
    case BR_ZMQ_INPROC:
        run->role = s_zmq_inproc;
        run->nchild = 1;
        run->nreports = 2;
        snprintf(run->endpoint, sizeof run->endpoint, "inproc://" BR_NAME_PREFIX "%s", cfg->tag);
        break;
    case BR_NATS:
    case BR_NATS_R3:
        run->role = s_nats_side;
        run->nchild = run->nreports = 2;
        rc = s_nats_setup(run, why);
        break;
    case BR_ATOMIC:
    case BR_SHOP:
        run->role = s_table_side;
        run->nchild = run->nreports = cfg->procs;
        run->mem_len = cfg->kind == BR_ATOMIC
                           ? (size_t)cfg->products * sizeof(s_cas_row_t)
                           : SP_CACHELINE + (size_t)cfg->products * sizeof(s_shop_row_t);
        run->mem = s_map_shared(run->mem_len);
        if (run->mem == NULL) {
            rc = -errno;
            s_why(why, "table of %u rows: %s", cfg->products, strerror(errno));
            break;
        }
        if (cfg->kind == BR_ATOMIC) {
            s_cas_row_t *rows = run->mem;
            for (uint32_t i = 0; i < cfg->products; i++) {
                atomic_init(&rows[i].stock, BR_STOCK_INIT);
            }
        } else {
            s_shop_row_t *rows = s_shop_rows(run->mem);
            for (uint32_t i = 0; i < cfg->products; i++) {
                rows[i].stock = BR_STOCK_INIT;
                rows[i].id = i + 1;
            }
            if (sem_init(run->mem, 1, 1) != 0) {
                rc = -errno;
                s_why(why, "sem_init: %s", strerror(errno));
                break;
            }
            run->sem_ready = true;
        }
        if (cfg->zipf_s > 0) {
            run->zipf_cdf = s_zipf_cdf(cfg->products, cfg->zipf_s);
            if (run->zipf_cdf == NULL) {
                rc = -ENOMEM;
                s_why(why, "no memory for the Zipf table");
            }
        }
        break;
    default:
        rc = -EINVAL;
        break;
    }
    return rc;
}

/* Which side a child plays: what s_child needs besides the run. */
typedef struct {
    s_run_t *run;
    unsigned idx;
} s_side_t;

/* In the child, with the write end of its life pipe; returns its exit
 * status. */
static int s_child(void *arg, int life_wr)
{
    s_run_t *run = ((s_side_t *)arg)->run;
    unsigned idx = ((s_side_t *)arg)->idx;
    /* a parent that dies must not leave its children streaming */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != run->parent) {
        return EXIT_FAILURE;
    }
    close(run->go[1]);
    run->life_wr = life_wr;
    int rc = run->role(run, idx);
    s_report_t *rep = &run->board->rep[idx];
    if (run->cpu_go != 0) {
        rep->cpu_ns = s_cpu_ns() - run->cpu_go;
    }
    if (rep->rc == 0) {
        rep->rc = rc;
    }
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int s_spawn(s_run_t *run, char *why)
{
    for (unsigned i = 0; i < run->nchild; i++) {
        s_side_t side = {.run = run, .idx = i};
        int rc = sp_child_fork(&run->kid[i], SP_CHILD_PIPE, s_child, &side);
        if (rc < 0) {
            s_why(why, "pipe/fork: %s", strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static const char *s_role_name(const s_run_t *run, unsigned idx, char *buf, size_t cap)
{
    if (s_is_stream(run->cfg->kind)) {
        return idx == S_RX ? "receiver" : "sender";
    }
    snprintf(buf, cap, "process %u", idx);
    return buf;
}

/* The error of a child that stopped early: its own words if it left any. */
static int s_failed(s_run_t *run, unsigned i, int status, char *why)
{
    char buf[32];
    for (unsigned r = 0; r < run->nreports; r++) {
        const s_report_t *rep = &run->board->rep[r];
        if ((run->nchild == 1 || r == i) && rep->rc < 0) {
            s_why(why, "%s: %s", br_kind_name(run->cfg->kind), rep->why);
            return rep->rc;
        }
    }
    char how[48];
    s_why(why, "%s: %s %s", br_kind_name(run->cfg->kind), s_role_name(run, i, buf, sizeof buf),
          sp_child_explain(status, how, sizeof how));
    return -ECHILD;
}

/* Start-up handshake, go, and watching the children until they all exit. */
static int s_supervise(s_run_t *run, char *why)
{
    char buf[32];
    size_t i = 0;

    /* every child says ready (or dies trying) */
    uint64_t deadline = sp_now_ns() + (uint64_t)s_setup_ms(run->cfg) * SP_NS_PER_MS;
    int rc = sp_child_await_ready(run->kid, run->nchild, deadline, &i);
    if (rc == SP_E_TIMEOUT) {
        unsigned waiting = 0;
        for (unsigned k = 0; k < run->nchild; k++) {
            waiting += !run->kid[k].ready;
        }
        s_why(why, "%s: %u of %u processes not ready within %d ms", br_kind_name(run->cfg->kind),
              waiting, run->nchild, s_setup_ms(run->cfg));
        return rc;
    }
    if (rc == -EPIPE || rc == -EPROTO) {
        sp_child_reap(&run->kid[i]);
        return s_failed(run, (unsigned)i, run->kid[i].status, why);
    }
    if (rc < 0) {
        s_why(why, "poll: %s", strerror(-rc));
        return rc;
    }

    /* go: every child sees end of file on the go pipe at once */
    close(run->go[1]);
    run->go[1] = -1;
    deadline = sp_now_ns() + s_run_ns(run->cfg) + (uint64_t)BR_GRACE_MS * SP_NS_PER_MS;
    rc = sp_child_await_exit(run->kid, run->nchild, deadline, &i);
    if (rc == SP_E_TIMEOUT) {
        s_why(why, "%s: %s still running %.1f s after the end of the run",
              br_kind_name(run->cfg->kind), s_role_name(run, (unsigned)i, buf, sizeof buf),
              BR_GRACE_MS / 1e3);
        return rc;
    }
    if (rc == -ECHILD) {
        return s_failed(run, (unsigned)i, run->kid[i].status, why);
    }
    if (rc < 0) {
        s_why(why, "poll: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

/* Kills and reaps whatever is still running (after a failure). */
static void s_kill_all(s_run_t *run)
{
    for (unsigned i = 0; i < run->nchild; i++) {
        /* neither does anything to a child never started or already reaped */
        sp_child_signal(&run->kid[i], SIGKILL);
        sp_child_reap(&run->kid[i]);
    }
}

static void s_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void s_teardown(s_run_t *run)
{
    s_close_fd(&run->go[0]);
    s_close_fd(&run->go[1]);
    s_close_fd(&run->ack[0]);
    s_close_fd(&run->ack[1]);
    if (run->mq != (mqd_t)-1) {
        mq_close(run->mq);
    }
    if (run->dir[0] != '\0') {
        char path[S_PATH_MAX + sizeof S_IPC_SOCKET];
        snprintf(path, sizeof path, "%s/" S_IPC_SOCKET, run->dir);
        unlink(path); /* left behind when the receiver was killed */
        rmdir(run->dir);
    }
    if (run->sem_ready) {
        sem_destroy(run->mem);
    }
    if (run->mem != NULL) {
        munmap(run->mem, run->mem_len);
    }
    if (run->board != NULL) {
        munmap(run->board, sizeof *run->board);
    }
    free(run->zipf_cdf);
    bench_natsrv_stop(&run->nats);
    explicit_bzero(run->nats_pass, sizeof run->nats_pass);
}

/* Streams: the receiver's count and its audit, checked against the sender. */
static void s_collect_stream(const s_run_t *run, br_result_t *out)
{
    const s_report_t *rx = &run->board->rep[S_RX], *tx = &run->board->rep[S_TX];
    out->msgs = rx->count;
    out->orders = rx->count * run->cfg->batch;
    out->wall_s = rx->t_last > rx->t_first ? (double)(rx->t_last - rx->t_first) / 1e9 : 0;
    out->audit_ok = rx->audit_ok && tx->count == rx->count;
    if (!rx->audit_ok) {
        snprintf(out->why, sizeof out->why, "%s", rx->why);
    } else if (!out->audit_ok) {
        s_why(out->why, "audit: sender sent %llu messages, receiver got %llu",
              (unsigned long long)tx->count, (unsigned long long)rx->count);
    }
}

/* Table loops: conservation over the whole table. */
static void s_collect_table(const s_run_t *run, br_result_t *out)
{
    const br_cfg_t *cfg = run->cfg;
    uint64_t attempts = 0, accepted = 0, refused = 0, slowest = 0;
    for (unsigned i = 0; i < cfg->procs; i++) {
        const s_report_t *rep = &run->board->rep[i];
        attempts += rep->count;
        accepted += rep->accepted;
        refused += rep->refused;
        if (rep->t_last > rep->t_first && rep->t_last - rep->t_first > slowest) {
            slowest = rep->t_last - rep->t_first;
        }
    }
    uint64_t taken = 0;
    bool rows_ok = true;
    for (uint32_t i = 0; i < cfg->products; i++) {
        uint64_t stock = cfg->kind == BR_ATOMIC ? atomic_load(&((s_cas_row_t *)run->mem)[i].stock)
                                                : s_shop_rows(run->mem)[i].stock;
        rows_ok = rows_ok && stock <= BR_STOCK_INIT;
        taken += BR_STOCK_INIT - stock;
    }
    out->msgs = out->orders = attempts;
    out->accepted = accepted;
    out->wall_s = (double)slowest / 1e9;
    out->audit_ok = rows_ok && taken == accepted && accepted + refused == attempts;
    if (!out->audit_ok) {
        s_why(out->why,
              "audit: %llu units left the table, %llu orders accepted, %llu refused, "
              "%llu attempts%s",
              (unsigned long long)taken, (unsigned long long)accepted, (unsigned long long)refused,
              (unsigned long long)attempts, rows_ok ? "" : ", a row above its initial stock");
    }
}

int br_run(const br_cfg_t *cfg, br_result_t *out)
{
    if (out == NULL) {
        return -EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (cfg == NULL) {
        s_why(out->why, "no configuration");
        return -EINVAL;
    }
    int rc = s_check_cfg(cfg, out->why);
    if (rc < 0) {
        return rc;
    }
    s_run_t run = {.cfg = cfg, .parent = getpid(), .mq = (mqd_t)-1};
    run.go[0] = run.go[1] = run.ack[0] = run.ack[1] = run.life_wr = -1;
    for (unsigned i = 0; i < BR_PROCS_MAX; i++) {
        run.kid[i] = (sp_child_t){.fd = -1}; /* not started */
    }
    rc = s_setup(&run, out->why);
    if (rc == 0) {
        rc = s_spawn(&run, out->why);
    }
    if (rc == 0) {
        /* the children hold what they need; the parent's copies would only
         * hide a dead side from the other (no end of file on the ack pipe) */
        s_close_fd(&run.go[0]);
        s_close_fd(&run.ack[0]);
        s_close_fd(&run.ack[1]);
        rc = s_supervise(&run, out->why);
    }
    s_kill_all(&run);
    if (rc == 0) {
        for (unsigned i = 0; i < run.nreports; i++) {
            out->cpu_s += (double)run.board->rep[i].cpu_ns / 1e9;
        }
        if (s_is_stream(cfg->kind)) {
            s_collect_stream(&run, out);
        } else {
            s_collect_table(&run, out);
        }
        if (out->wall_s > 0) {
            out->msgs_per_s = (double)out->msgs / out->wall_s;
            out->orders_per_s = (double)out->orders / out->wall_s;
        }
        if (out->orders > 0) {
            out->cpu_s_per_m = out->cpu_s / ((double)out->orders / S_MILLION);
        }
        rc = out->audit_ok ? 0 : -EBADMSG;
    }
    s_teardown(&run);
    return rc;
}
