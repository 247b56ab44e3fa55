/*
 * sp_monitor — the stock monitor, as a role object: sp_monitor_new,
 * sp_monitor_run, sp_monitor_destroy (bin/monitor is a thin main over them).
 *
 * It keeps a mirror of the shop (sp_mirror.h) exact the Clone way: subscribe
 * to the event path, wait until the first message proves the subscription is
 * in place, take a snapshot — from the table mapped read-only when the
 * instance is local, from the broker's snapshot service when it is remote
 * (tcp://) or when asked to — and merge events by row version.  A gap marks
 * the view STALE and a fresh snapshot repairs it.
 *
 * Views: the full-screen console (sp_console.h) on a terminal; line mode
 * otherwise (one line per stock change, a summary line every `summary_ms`,
 * a line for every gap and resync); --json turns every line into one JSON
 * object; --once prints the table and exits.
 *
 * Ownership: sp_monitor_new makes the monitor's own subscriber, snapshot
 * socket, mirror and (local) read-only table mapping, sp_monitor_run its
 * console; sp_monitor_destroy releases them all.  It writes only to the
 * caller's `out`; the configuration is copied, its strings borrowed.
 * Errors: 0 or a negative code with *why (SP_E_USAGE for flags that do not
 * go together, SP_E_TIMEOUT when the instance or its first message did not
 * come within cfg->wait_ms).  Blocking: sp_monitor_new waits up to
 * cfg->wait_ms; after that a turn of sp_monitor_run waits at most
 * SP_MONITOR_POLL_MS, and nothing the monitor does
 * can slow the shop (it maps the table read-only, and a slow subscriber
 * loses events, counted as gaps).  Threads: one thread uses an object; the
 * full-screen console takes the process's terminal (ncurses), so one of
 * those per process.
 */
#ifndef SP_MONITOR_H
#define SP_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SP_MONITOR_SUMMARY_MS 1000
#define SP_MONITOR_POLL_MS    100
#define SP_MONITOR_SNAP_MS    5000 /* a remote snapshot silent this long is asked again */
#define SP_MONITOR_LINGER_MS  2000 /* the console shows ENDED this long before it exits */
#define SP_MONITOR_FEED_BURST 4096 /* messages read per turn before the view gets a go */

typedef struct {
    const char *instance;
    const char *connect; /* "tcp://HOST:PORT" (the broker's --tcp): remote; NULL: local */
    /* CURVE (sp_curve.h): our secret certificate, needed when the broker's
     * endpoints are CURVE servers, and for a remote monitor the broker's
     * public certificate (a local one reads the key from the table, and a
     * --server-cert given must agree with it) */
    const char *cert;
    const char *server_cert;
    bool from_broker;   /* local instance, but snapshots from the broker's service */
    bool console;       /* full-screen view (needs a terminal) */
    bool once;          /* print the table and exit */
    bool json;          /* one JSON object per line */
    bool quiet;         /* no per-event lines */
    bool final_table;   /* print the monitor's own table when the stream ends */
    int summary_ms;     /* 0 = SP_MONITOR_SUMMARY_MS */
    int wait_ms;        /* how long to wait for the instance and its first message */
    uint32_t low_stock; /* console: low-stock mark (0 = 10 % of initial) */
    /* one shard of a merged view (sp_shardmon.h): its name starts every
     * line this monitor writes ("[A] stock ...", JSON "shard":"A"); NULL:
     * none */
    const char *label;
} sp_monitor_cfg_t;

typedef struct {
    uint64_t events;
    uint64_t gaps; /* events missed, summed over publishers */
    uint64_t resyncs;
    uint64_t snapshots;
    uint64_t heartbeats;
    uint64_t invalid; /* malformed messages ignored */
    bool eos;         /* the broker said goodbye */
    bool stale;       /* the view was not known to be exact at the end */
} sp_monitor_stats_t;

typedef struct sp_monitor sp_monitor_t;

/* Connects a monitor to cfg->instance (or cfg->connect): subscribes to the
 * event path, waits for the first message that proves the subscription is
 * live, and takes the first snapshot.  Returns 0 with *self_p set, or a
 * negative code with *why and *self_p NULL, nothing held. */
int sp_monitor_new(sp_monitor_t **self_p, const sp_monitor_cfg_t *cfg, FILE *out, char *why,
                   size_t cap);

/* With cfg->once prints the table (remote: after one whole snapshot) and
 * returns; otherwise follows the shop on the console or in lines until a
 * stop is requested (sp_signal), the user quits or the broker ends the
 * stream.  Returns 0 or a negative code with *why. */
int sp_monitor_run(sp_monitor_t *self, char *why, size_t cap);

/* One turn of the monitor without a view of its own, for a caller that
 * follows several (sp_shardmon.h): waits up to wait_ms for its event feed
 * or snapshot answer, takes what came, asks for or takes a snapshot when
 * the mirror needs one, and in line mode writes the per-event, gap and
 * resync lines.  Returns 0 or a negative code with *why. */
int sp_monitor_step(sp_monitor_t *self, int wait_ms, char *why, size_t cap);

/* For a --once view made by the caller: waits (up to cfg->wait_ms) until
 * the mirror holds a whole snapshot (at once for a local instance).
 * Returns 0, SP_E_TIMEOUT or a negative code with *why. */
int sp_monitor_settle(sp_monitor_t *self, char *why, size_t cap);

/* The monitor's mirror of its instance (valid while the monitor lives). */
const struct sp_mirror *sp_monitor_mirror(const sp_monitor_t *self);

/* Writes `s` as a JSON string (quoted, escaped) to out. */
void sp_monitor_json_str(FILE *out, const char *s);

/* What the monitor has seen so far (valid until the next call). */
const sp_monitor_stats_t *sp_monitor_stats(sp_monitor_t *self);

/* Releases everything the monitor holds.  NULL-safe; sets *self_p to NULL. */
void sp_monitor_destroy(sp_monitor_t **self_p);

#endif
