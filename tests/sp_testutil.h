/*
 * sp_testutil — helpers for tests that run the real binaries.
 *
 * Every helper bounds its waits, so a broken pipeline fails a test instead of
 * hanging CI.  Instance names carry the test's name and pid, so Criterion's
 * parallel forks never share an IPC object.
 */
#ifndef SP_TESTUTIL_H
#define SP_TESTUTIL_H

#include "sp_link.h"
#include "sp_table.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SP_TEST_WAIT_MS 10000

/* "sp-<tag>-<pid>" into buf. */
void spt_instance(char *buf, size_t cap, const char *tag);

/* Path of a role binary (SP_BIN_DIR, default "bin"). */
const char *spt_bin(const char *role);

/* Path of a file under data/ (SP_DATA_DIR, default "data"). */
const char *spt_data(const char *file);

/* The Python that runs the tests' Python clients: SP_PYTHON, by default
 * Debian's /usr/bin/python3, the one python3-zmq installs into (a python3
 * earlier on PATH, pyenv or a venv, may lack zmq). */
const char *spt_python(void);

/* Path of a file of the source tree, `rel` from its root (e.g.
 * "tests/protocol_client.py"): found beside SP_DATA_DIR (data/ is at the
 * root), else relative to the working directory. */
void spt_source(char *buf, size_t cap, const char *rel);

/* Writes a catalogue of n products, all with `stock`, to a fresh temp file;
 * returns its path (static buffer per call site: copy it). */
void spt_catalogue(char *path, size_t cap, unsigned n, unsigned stock);

/* Starts `bin/broker --instance NAME extra...` (NULL-terminated extra args)
 * and waits until the instance is READY.  Returns the pid, or -1. */
pid_t spt_broker_start(const char *instance, const char *const *extra);

/* As spt_broker_start, but keeping its state in `state_dir` and without
 * --fresh (a restart continues from that state), its output into `log`
 * (created or truncated; NULL: the test's own). */
pid_t spt_broker_start_in(const char *instance, const char *state_dir, const char *log,
                          const char *const *extra);

/* True when a process runs whose command line holds both `program` and
 * `needle` (a server the test started, found by its config's path). */
bool spt_process_runs(const char *program, const char *needle);

/* As spt_broker_start, with `--tcp PORT` (host NULL: loopback by default)
 * or `--tcp HOST:PORT` added.  PORT is the first of five ports picked from
 * the test's pid in 10000..19999 (below the kernel's ephemeral range and
 * apart from other tests' ranges), checked free first and, since the
 * machine's ports are shared, tried again elsewhere when the broker still
 * cannot bind.  *port gets PORT.  Returns the pid, or -1. */
#define SPT_TCP_PORT_BASE  10000
#define SPT_TCP_PORT_SLOTS 2000
pid_t spt_broker_start_tcp(const char *instance, const char *host, const char *const *extra,
                           unsigned *port);

/* NATS servers with JetStream for a test: one, or a cluster of up to
 * SPT_NATS_NODES_MAX on loopback, at ports picked from the test's pid in
 * 20000..29999 (checked free, tried elsewhere when taken), their stores
 * under a fresh temp directory, requiring a user and password.  url lists
 * every node as "nats://USER:PASSWORD@127.0.0.1:PORT"; bad_url the same
 * with a wrong password; bare_url with none, for the credentials in the
 * file auth (mode 0600).  The start functions return false (nothing left)
 * when a server did not come up within SP_TEST_WAIT_MS; spt_nats_stop stops
 * them all and removes their stores.  spt_nats_node_kill sends node i
 * (0-based) a signal (SIGKILL and SIGTERM wait for it to go);
 * spt_nats_node_start starts it again on its ports and store.  Needs
 * nats-server (scripts/deps.sh). */
#define SPT_NATS_NODES_MAX 3
typedef struct {
    unsigned nodes;
    pid_t pid[SPT_NATS_NODES_MAX];
    unsigned port[SPT_NATS_NODES_MAX];  /* clients */
    unsigned cport[SPT_NATS_NODES_MAX]; /* cluster routes */
    char pass[32];
    char dir[128];
    char url[SP_ENDPOINT_MAX];
    char bad_url[SP_ENDPOINT_MAX];
    char bare_url[SP_ENDPOINT_MAX];
    char auth[160];
} spt_nats_t;
bool spt_nats_start(spt_nats_t *n, const char *tag);
bool spt_nats_cluster_start(spt_nats_t *n, const char *tag, unsigned nodes);
void spt_nats_stop(spt_nats_t *n);
void spt_nats_node_kill(spt_nats_t *n, unsigned i, int sig);
bool spt_nats_node_start(spt_nats_t *n, unsigned i);

/* A running shop for a test: a catalogue of `products` products with
 * `stock` units each, and a broker of `instance` on `transport` (NULL: the
 * default) with `workers` workers, READY.  False when the broker did not
 * become ready (then nothing is left: the catalogue is removed). */
typedef struct {
    pid_t broker;
    char instance[64];
    char catalogue[128];
} spt_shop_t;
bool spt_shop_start(spt_shop_t *shop, const char *instance, const char *transport, unsigned workers,
                    unsigned products, unsigned stock);

/* Stops the shop's broker (spt_stop) and removes its catalogue.  NULL when
 * the broker exited 0 and left no IPC object of the instance behind, else
 * what went wrong (a static string). */
const char *spt_shop_stop(spt_shop_t *shop);

/* SIGINT, then waits up to SP_TEST_WAIT_MS; SIGKILL after that.  Returns the
 * exit status (as from waitpid) or -1 if it had to be killed. */
int spt_stop(pid_t pid);

/* Runs argv (NULL-terminated) with a timeout, capturing stdout+stderr into a
 * malloc'd string (*out, caller frees).  Returns the exit code, or -1 on
 * timeout or a signal. */
int spt_run(const char *const *argv, int timeout_ms, char **out);

/* Starts argv in the background with stdout and stderr going to the file
 * `out_path` (created or truncated).  Returns the pid or -1. */
pid_t spt_spawn(const char *const *argv, const char *out_path);

/* Waits up to timeout_ms for pid to exit; SIGKILL after that.  Returns its
 * exit code, or -1 when it timed out or died of a signal. */
int spt_wait(pid_t pid, int timeout_ms);

/* The whole file as a malloc'd string ("" when missing). */
char *spt_slurp(const char *path);

/* True if /dev/shm/<instance>.table, /dev/shm/<instance>.ring, any of its mq
 * names or its run directory still exist. */
bool spt_leftovers(const char *instance);

/* Value of "key":<number> in a JSON line, or -1. */
long long spt_json_num(const char *json, const char *key);

/* A fresh private directory "/tmp/sp-<tag>-<pid>-XXXXXX" into buf (mkdtemp);
 * false if it cannot be made.  spt_rmtree removes a directory and everything
 * in it (NULL-safe, "" ignored). */
bool spt_tmpdir(char *buf, size_t cap, const char *tag);
void spt_rmtree(const char *dir);

/* A scratch table "/sp-<tag>-<pid>-<test>" (its name into name[cap], for
 * sp_table_unlink) of products 1..n with `stock` each, strategy `sync`.
 * Returns 0 with *out, or the catalogue's or sp_table_create's code. */
int spt_scratch_table(sp_table_t **out, char *name, size_t cap, const char *tag, const char *test,
                      unsigned n, uint32_t stock, sp_sync_t sync);

/* The first free place (NULL) in links[n], or NULL when every one is
 * taken: the link fixtures keep what a test opens there, to close it. */
sp_link_t **spt_link_slot(sp_link_t **links, unsigned n);

/* A link configuration for a test: `role` of transport `t` for instance
 * `names`, id `id`, messages of up to `size` bytes either way. */
sp_link_cfg_t spt_link_cfg(sp_link_role_t role, const sp_transport_t *t, const sp_names_t *names,
                           uint32_t id, size_t size);

/* A row's counters (sold, restocked, held, version), read consistently. */
sp_tally_t spt_tally(sp_table_t *t, uint32_t id);

#endif
