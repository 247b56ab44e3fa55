/*
 * natsrv — NATS servers the bench starts for itself, and removes after.
 *
 * The `nats` variants and the raw JetStream baselines need a NATS server
 * (one node) or a cluster (three nodes) with JetStream; the bench starts
 * them for the cell or the baseline run that needs them, with the project's
 * own scripts/nats-cluster.sh (generated config files, free loopback ports,
 * a random password, a wait until JetStream answers), and stops them and
 * removes everything they wrote when that run is over.  Nothing outlives
 * bench_natsrv_stop: no server process, no store, no config file.
 *
 * Where the script is: $SP_NATS_CLUSTER (BENCH_NATSRV_SCRIPT_ENV) when set,
 * else scripts/nats-cluster.sh beside or three levels above the running
 * binary's folder (bin/bench, build/VARIANT/bin/bench and
 * build/VARIANT/tests/stockpipe-tests all find the checkout's scripts/).
 *
 * Ownership: the servers are the caller's from a successful start to its
 * stop; the struct lives in the caller's storage.  Blocking: start waits
 * for the script (up to BENCH_NATSRV_START_MS; a 3-node cluster takes about
 * a second to elect), stop up to BENCH_NATSRV_STOP_MS.  Threads and
 * processes: one thread; the servers are not children of the caller (the
 * script leaves them running, their pids in files), so a forked cell
 * killed with its process group does not take them down with it.
 */
#ifndef BENCH_NATSRV_H
#define BENCH_NATSRV_H

#include "sp_instance.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define BENCH_NATSRV_SCRIPT_ENV "SP_NATS_CLUSTER" /* path of scripts/nats-cluster.sh */
#define BENCH_NATSRV_SCRIPT     "scripts/nats-cluster.sh"
#define BENCH_NATSRV_NODES_MAX  9     /* what the script starts at most */
#define BENCH_NATSRV_START_MS   45000 /* the script gives JetStream 30 s to answer */
#define BENCH_NATSRV_STOP_MS    15000 /* the script waits 5 s per node before kill -9 */
#define BENCH_NATSRV_PREFIX     "sp-nats-"

typedef struct {
    char dir[PATH_MAX];         /* config, auth, logs, stores; "" when not started */
    char urls[SP_ENDPOINT_MAX]; /* nats://127.0.0.1:PORT[,...] */
    char auth[PATH_MAX + 8];    /* dir/auth: "USER PASSWORD", mode 0600 */
    char script[PATH_MAX + 32]; /* the script that started them */
    unsigned nodes;
} bench_natsrv_t;

/* Starts `nodes` (1..BENCH_NATSRV_NODES_MAX) servers with JetStream in a
 * new folder BENCH_NATSRV_PREFIX<tag>-<pid>-XXXXXX under `parent`, and
 * fills *s.  Returns 0; -ENOENT when the script or nats-server is missing
 * (why says where it looked); -EINVAL for bad arguments; SP_E_TIMEOUT when
 * the script overran; -EIO when it failed (why quotes its last line).  On
 * failure nothing is left behind and *s is not started. */
int bench_natsrv_start(bench_natsrv_t *s, const char *parent, const char *tag, unsigned nodes,
                       char *why, size_t cap);

/* Stops the servers and removes their folder with everything in it.  Safe
 * on a struct never started or already stopped. */
void bench_natsrv_stop(bench_natsrv_t *s);

/* Whether nats-server and the script are there to run (for tests and the
 * bench's planning).  Fills why with what is missing. */
bool bench_natsrv_available(char *why, size_t cap);

#endif
