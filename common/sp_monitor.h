/*
 * sp_monitor — the stock monitor's line mode (bin/monitor is a thin main
 * over it; the full-screen console is built on the same feed).
 *
 * It subscribes to the event path first and maps the table read-only second,
 * so no change can fall between the two.  Each stock event becomes one line;
 * a summary line follows every `summary_ms`.  Every publisher numbers its
 * events, so missed events are counted exactly (gaps), and heartbeats tell an
 * idle shop from a dead publisher.  The broker's end-of-stream ends the run.
 */
#ifndef SP_MONITOR_H
#define SP_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SP_MONITOR_SUMMARY_MS 1000
#define SP_MONITOR_POLL_MS    100

typedef struct {
    const char *instance;
    bool once;      /* print the table and exit */
    bool json;      /* one JSON object per line */
    bool quiet;     /* summaries only, no per-event lines */
    int summary_ms; /* 0 = SP_MONITOR_SUMMARY_MS */
    int wait_ms;    /* how long to wait for the instance to be ready */
} sp_monitor_cfg_t;

typedef struct {
    uint64_t events;
    uint64_t gaps; /* events missed, summed over publishers */
    uint64_t heartbeats;
    uint64_t invalid; /* malformed messages ignored */
    bool eos;         /* the broker said goodbye */
} sp_monitor_stats_t;

/* Runs until a stop is requested or the broker ends the stream.  Returns 0 or
 * a negative code with *why. */
int sp_monitor_run(const sp_monitor_cfg_t *cfg, FILE *out, sp_monitor_stats_t *st, char *why,
                   size_t cap);

#endif
