/*
 * sp_shardmon — one view of a catalogue sharded across brokers: a monitor
 * per shard (sp_monitor.h, each keeping its own mirror exact the Clone
 * way), merged into one table and one summary, with each shard's health.
 *
 * Each shard owns its own range of product ids, so the merged table is the
 * shards' rows side by side, in id order, each row labelled with its shard;
 * a product two shards claim is reported (the producers refuse such
 * ranges).  A shard's health is one word:
 *
 *   up             its view is exact and its broker spoke within
 *                  SP_MIRROR_SILENT_MS
 *   stale          events were missed (or no snapshot yet): resyncing
 *   broker silent  nothing from its broker for SP_MIRROR_SILENT_MS
 *   ended          its broker stopped (end of stream)
 *
 * Views: line mode (per-event lines "[A] stock ...", a merged summary line
 * every cfg->summary_ms with one health entry per shard), --json (the same
 * as JSON objects), --once (the merged table and one line per shard, or one
 * JSON array with a "shard" key per row), --final, and the full-screen
 * console (cfg->console) drawn from a merged mirror (sp_mirror_new_merged):
 * every shard's rows in one table, the counters put together, and a line
 * with each shard's health, products and id range.
 *
 * Ownership: sp_shardmon_new makes the shards' monitors, sp_shardmon_destroy
 * releases them; output goes to the caller's `out`; the configuration and
 * the list are copied, their strings borrowed.  Errors: 0 or a negative
 * code with *why naming the shard (SP_E_USAGE for a bad list).  Blocking:
 * new waits up to cfg->wait_ms per shard; a turn of run waits at most
 * SP_MONITOR_POLL_MS in all.  One thread uses an object.
 */
#ifndef SP_SHARDMON_H
#define SP_SHARDMON_H

#include "sp_monitor.h"

#include <stddef.h>
#include <stdio.h>

#define SP_SHARDMON_MAX 16 /* shards one view merges */

typedef struct sp_shardmon sp_shardmon_t;

/* Health words, as above. */
typedef enum {
    SP_SHARD_UP = 0,
    SP_SHARD_STALE = 1,
    SP_SHARD_SILENT = 2,
    SP_SHARD_ENDED = 3
} sp_shard_health_t;

/* Connects one monitor (cfg, its instance replaced) to each instance of
 * `list` ("A,B,..."; local instances).  Returns 0 with *out, or a negative
 * code with *why and *out NULL, nothing held. */
int sp_shardmon_new(sp_shardmon_t **out, const sp_monitor_cfg_t *cfg, const char *list, FILE *fp,
                    char *why, size_t cap);

/* With cfg->once prints the merged table and each shard's health and
 * returns; else follows every shard in lines until a stop (sp_signal) or
 * until every broker ended its stream.  Returns 0 or a negative code. */
int sp_shardmon_run(sp_shardmon_t *self, char *why, size_t cap);

/* Shard i's health now (i < the number of shards). */
sp_shard_health_t sp_shardmon_health(const sp_shardmon_t *self, unsigned i);

/* "up", "stale", "broker silent", "ended". */
const char *sp_shard_health_name(sp_shard_health_t h);

/* Releases every shard's monitor.  NULL-safe; nulls *self_p. */
void sp_shardmon_destroy(sp_shardmon_t **self_p);

#endif
