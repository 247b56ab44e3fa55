/*
 * sp_load — a load run's configuration and counters: defaults, merging the
 * customers' counters, and what counts as answered.
 */
#include "sp_load.h"

#include "sp_client.h"

#include <string.h>

void sp_load_defaults(sp_load_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->instance = "stockpipe";
    cfg->customers = 1;
    cfg->arrival = SP_ARRIVAL_FAST;
    cfg->pick = SP_PICK_UNIFORM;
    cfg->zipf_s = 1.0;
    cfg->qty_min = 1;
    cfg->qty_max = 1;
    cfg->batch = SP_BATCH_DEFAULT;
    cfg->window = SP_WINDOW_DEFAULT;
    cfg->timeout_ms = SP_RESULT_TIMEOUT_MS;
    cfg->retry_ms = SP_RETRY_MS;
    cfg->hold_s = SP_CUSTOMER_HOLD_S;
    cfg->seed = 1;
}

const char *const sp_leg_names[SP_LEG_COUNT] = {"late", "out", "back"};

void sp_load_stats_init(sp_load_stats_t *st)
{
    memset(st, 0, sizeof *st);
    sp_hist_init(&st->latency);
    for (int i = 0; i < SP_LEG_COUNT; i++) {
        sp_hist_init(&st->leg[i]);
    }
}

void sp_load_merge(sp_load_stats_t *dst, const sp_load_stats_t *src, bool first)
{
    dst->sent += src->sent;
    for (int i = 0; i < SP_STATUS_COUNT; i++) {
        dst->status[i] += src->status[i];
    }
    dst->timed_out += src->timed_out;
    dst->send_failed += src->send_failed;
    dst->unexpected += src->unexpected;
    dst->retried += src->retried;
    dst->duplicates += src->duplicates;
    dst->late += src->late;
    dst->ledger_errors += src->ledger_errors;
    dst->malformed_msgs += src->malformed_msgs;
    dst->malformed_orders += src->malformed_orders;
    dst->malformed_refused += src->malformed_refused;
    dst->units_sold += src->units_sold;
    dst->units_restocked += src->units_restocked;
    dst->scheduled += src->scheduled;
    dst->cpu_ns += src->cpu_ns;
    dst->wait_ns += src->wait_ns;
    if (first || src->start_ns < dst->start_ns) {
        dst->start_ns = src->start_ns;
    }
    if (src->end_ns > dst->end_ns) {
        dst->end_ns = src->end_ns;
    }
    sp_hist_merge(&dst->latency, &src->latency);
    for (int i = 0; i < SP_LEG_COUNT; i++) {
        sp_hist_merge(&dst->leg[i], &src->leg[i]);
    }
}

uint64_t sp_load_answered(const sp_load_stats_t *st)
{
    uint64_t n = 0;
    for (int i = 0; i < SP_STATUS_COUNT; i++) {
        n += st->status[i];
    }
    return n;
}
