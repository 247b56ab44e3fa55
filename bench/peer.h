/*
 * peer — the bench's outside yardstick: the same orders against Redis.
 *
 * Every figure of the bench is measured in the same run against something:
 * the raw baselines (raw.h) say how fast the bare facility underneath is;
 * the peer says how fast a well-known server does the same job.  It starts
 * its own redis-server (Debian's, found in PATH) on a unix socket in a
 * private 0700 folder, loads the catalogue the cells use (products 1..N,
 * BENCH_STOCK units each), loads one Lua script that does what a worker does
 * with an order (a purchase: GET the stock; unknown product, out of stock,
 * or DECRBY the quantity; a restock: INCRBY), and runs `clients` forked
 * client processes, each on a connection of its own, sending pipelined
 * batches of `pipeline` EVALSHA calls with uniform products, BENCH_RESTOCK of
 * them restocks, quantity 1: the cells' own mix.  Like a raw baseline it
 * warms up, repeats, and reports the median and the min-max, and it audits
 * itself: after the last repeat every product's stock is read back (MGET),
 * and the units that left the catalogue must equal the units the clients
 * were told they bought less those they restocked.
 *
 * Why the shape: the clients are forked children with a ready/go handshake
 * (every one connected before the clock starts), every wait is bounded
 * (the server's start, each reply, each round, the stop), the server runs
 * in a process group of its own (Ctrl-C reaches the bench and its clients,
 * and the bench stops the server itself) and dies with the bench
 * (PR_SET_PDEATHSIG), and the folder with the socket and the server's log is
 * removed at the end.  The protocol is our own minimal client (resp.h): no
 * library is added.
 *
 * Ownership: a run makes its server, clients and folder and is rid of all
 * of them when bench_peer_redis returns, on every path, an interrupt (SIGINT,
 * SIGTERM: sp_signal_stopping) included.  Errors: the row says what went
 * wrong (audit 0 and a note); a missing redis-server is audit n/a (-1) with
 * the note saying how to install it, not a failure.  Blocking: about
 * warmup + repeats x seconds, plus the server's start (at most
 * BENCH_PEER_START_MS) and the catalogue's load.  Threads and processes: one
 * thread; it forks and reaps its own children (the caller must not reap
 * unknown children while it runs).
 */
#ifndef BENCH_PEER_H
#define BENCH_PEER_H

#include "bench.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_PEER_SERVER       "redis-server" /* looked up in PATH */
#define BENCH_PEER_INSTALL      "apt-get install redis-server"
#define BENCH_PEER_PREFIX       "sp-redis-" /* the folder: $TMPDIR/sp-redis-<pid>-XXXXXX */
#define BENCH_PEER_SOCKET       "redis.sock"
#define BENCH_PEER_LOG          "redis.log"
#define BENCH_PEER_CLIENTS_MAX  64
#define BENCH_PEER_PIPELINE     64 /* EVALSHA calls per batch, by default */
#define BENCH_PEER_PIPELINE_MAX 1024
#define BENCH_PEER_PRODUCTS_MAX (1u << 20)
#define BENCH_PEER_START_MS     5000  /* the server accepts and answers PING within */
#define BENCH_PEER_READY_MS     10000 /* every client connected within */
#define BENCH_PEER_IO_MS        5000  /* each batch written and answered within */
#define BENCH_PEER_GRACE_MS     15000 /* after `seconds`, a round ends within */
#define BENCH_PEER_STOP_MS      3000  /* SHUTDOWN NOSAVE, then SIGTERM: each this long */
#define BENCH_PEER_CHUNK        512   /* keys per MSET and MGET */
#define BENCH_PEER_SLICE_MS     100   /* how often a wait asks sp_signal_stopping */
/* The script's answers besides the stock after the order (>= 0). */
#define BENCH_PEER_OUT_OF_STOCK (-1)
#define BENCH_PEER_UNKNOWN      (-2)

typedef struct {
    unsigned clients;     /* 1 .. BENCH_PEER_CLIENTS_MAX processes */
    unsigned pipeline;    /* 1 .. BENCH_PEER_PIPELINE_MAX calls per batch */
    uint32_t products;    /* 1 .. BENCH_PEER_PRODUCTS_MAX */
    uint64_t stock;       /* each product's initial stock (the cells': BENCH_STOCK) */
    double restock_ratio; /* 0 .. 1 (the cells': BENCH_RESTOCK) */
    double warmup_s;      /* one run before the repeats, not measured; 0: none */
    double seconds;       /* one repeat: each client sends for this long */
    unsigned repeats;     /* 1 .. BENCH_REPEATS_MAX */
    uint64_t seed;        /* the clients' product picks; 0: 1 */
} bench_peer_cfg_t;

/* Whether redis-server is in PATH (for tests and the bench's planning);
 * why says how to install it when it is not. */
bool bench_peer_available(char *why, size_t cap);

/* "redis/lua/<clients>c/p<pipeline>/<products>". */
void bench_peer_label(const bench_peer_cfg_t *cfg, char *buf, size_t cap);

/* Runs the peer and fills *row (kind "peer", transport "redis", producers =
 * clients, batch = pipeline; orders/s median and min-max over the repeats;
 * CPU per million orders of the clients (cpu_prod) and of the server
 * (cpu_broker); the audit).  Returns 0 when it ran and its audit passed;
 * -ENOENT when redis-server is not installed (row->audit -1, the note
 * says how to install it); -EINVAL for a bad cfg; SP_E_STOPPED when a stop
 * was requested; -EBADMSG when the audit failed; another negative code
 * when the server or a client failed (row->note says why). */
int bench_peer_redis(const bench_peer_cfg_t *cfg, bench_row_t *row);

#endif
