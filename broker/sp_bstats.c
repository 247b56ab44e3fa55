/*
 * sp_bstats — what the broker tells monitors and its caller: the STATS
 * message (ten a second, the shop's counters: orders by status, workers'
 * state, heartbeat age and restarts, latency over the last second, depths,
 * drops), its own heartbeat, the router's counters copied into the table
 * header, and the closing totals.
 *
 * Everything is read from the workers' slots in the shared table (relaxed
 * atomic loads: counters only grow, a STATS may be a moment stale) and from
 * the router; nothing here blocks (publishing goes through the router's
 * XPUB, which drops for a slow monitor and counts it).
 *
 * Broker thread only.  The STATS buffer is static (too big for a stack
 * frame of the loop): one broker per process publishes at a time, as in
 * bin/broker and the bench's in-process cells, which run one after another.
 */
#include "sp_bstats.h"

#include "sp_bipc.h"
#include "sp_broker_impl.h"
#include "sp_events.h"
#include "sp_metrics.h"
#include "sp_supervisor.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <string.h>
#include <unistd.h>

void sp_bstats_beat(sp_broker_t *b, uint32_t state)
{
    uint8_t msg[SP_WIRE_HDR_SIZE + SP_WIRE_HEARTBEAT_SIZE];
    sp_heartbeat_t hb = {
        .publisher_id = 0, .state = state, .ts_ns = sp_now_ns(), .pid = (uint32_t)getpid()};
    sp_wire_put_hdr(msg, SP_MSG_HEARTBEAT, 1, 0, (uint32_t)getpid());
    sp_wire_put_heartbeat(msg + SP_WIRE_HDR_SIZE, &hb);
    sp_router_publish(b->router, msg, sizeof msg);
}

void sp_bstats_ctr(sp_bctrs_t *c, unsigned id, unsigned index, uint64_t value)
{
    if (c->n < c->max) {
        sp_counter_t ctr = {.id = (uint16_t)id, .index = (uint16_t)index, .value = value};
        sp_wire_put_counter(sp_wire_rec(c->msg, SP_MSG_STATS, c->n++), &ctr);
    }
}

static uint32_t s_worker_state(const sp_broker_t *b, unsigned id, uint64_t hb_age_ms)
{
    const sp_worker_slot_t *slot = &b->hdr->worker[id - 1];
    if (!sp_supervisor_alive(&b->child[id - 1])) {
        return SP_WSTATE_DEAD;
    }
    if (atomic_load(&slot->pid) == 0) {
        return SP_WSTATE_STARTING;
    }
    if (atomic_load(&slot->state) == SP_PUB_STOPPING) {
        return SP_WSTATE_STOPPING;
    }
    return hb_age_ms > b->silent_ms ? SP_WSTATE_SILENT : SP_WSTATE_RUNNING;
}

/* Publishes the shop's counters to monitors (SP_MSG_STATS). */
void sp_bstats_publish(sp_broker_t *b)
{
    enum { S_MAX = 32 + 7 * SP_WORKERS_MAX };
    static uint8_t msg[SP_WIRE_HDR_SIZE + S_MAX * SP_WIRE_COUNTER_SIZE];
    _Static_assert(sizeof msg <= SP_EVENTS_MSG_MAX, "STATS fit the event path's message limit");
    sp_bctrs_t c = {.msg = msg, .max = S_MAX};
    sp_table_hdr_t *h = b->hdr;
    uint64_t now = sp_now_ns();
    sp_bstats_ctr(&c, SP_CTR_TIME_NS, 0, now);
    sp_bstats_ctr(&c, SP_CTR_CAPACITY, 0, h->capacity);
    sp_bstats_ctr(&c, SP_CTR_PRODUCTS, 0, h->product_count);
    sp_bstats_ctr(&c, SP_CTR_TRANSPORT, 0, b->transport->id);
    sp_bstats_ctr(&c, SP_CTR_SYNC, 0, b->cfg->sync);
    sp_bstats_ctr(&c, SP_CTR_WORKERS, 0, b->nworkers);
    sp_bstats_ctr(&c, SP_CTR_EVENT_SEQ, 0, atomic_load(&h->event_seq));
    sp_bstats_ctr(&c, SP_CTR_UNPUBLISHED, 0, b->holds_released_rounds);

    uint64_t orders[SP_STATUS_COUNT] = {0}, invalid = 0, result_drops = 0;
    uint64_t *lat = b->lat[b->lat_head];
    memset(lat, 0, sizeof b->lat[0]);
    for (unsigned w = 1; w <= b->nworkers; w++) {
        sp_worker_slot_t *slot = &h->worker[w - 1];
        uint64_t mine = 0;
        for (int s = 0; s < SP_STATUS_COUNT; s++) {
            uint64_t v = atomic_load_explicit(&slot->orders[s], memory_order_relaxed);
            orders[s] += v;
            mine += v;
        }
        invalid += atomic_load_explicit(&slot->invalid_msgs, memory_order_relaxed);
        result_drops += atomic_load_explicit(&slot->result_drops, memory_order_relaxed);
        for (int k = 0; k < SP_LAT_BUCKETS; k++) {
            lat[k] += atomic_load_explicit(&slot->lat[k], memory_order_relaxed);
        }
        uint64_t beat = atomic_load(&slot->heartbeat_ns);
        uint64_t age_ms = now > beat ? (now - beat) / SP_NS_PER_MS : 0;
        sp_bstats_ctr(&c, SP_CTR_W_STATE, w, s_worker_state(b, w, age_ms));
        sp_bstats_ctr(&c, SP_CTR_W_ORDERS, w, mine);
        sp_bstats_ctr(&c, SP_CTR_W_HB_AGE_MS, w, age_ms);
        sp_bstats_ctr(&c, SP_CTR_W_PID, w, (uint64_t)(int64_t)atomic_load(&slot->pid));
        sp_bstats_ctr(&c, SP_CTR_W_RESTARTS, w, b->child[w - 1].restarts);
        sp_bstats_ctr(&c, SP_CTR_UNPUBLISHED, w, b->child[w - 1].deaths);
        sp_bstats_ctr(&c, SP_CTR_W_PUB_SEQ, w, atomic_load(&slot->pub_seq));
    }
    for (int s = 0; s < SP_STATUS_COUNT; s++) {
        sp_bstats_ctr(&c, SP_CTR_ORDERS, (unsigned)s, orders[s]);
    }
    /* latency over the last second: this tick's sums minus those a second ago
     * (counts only grow; a window older than the broker is all zeros) */
    const uint64_t *old = b->lat[(b->lat_head + 1) % (SP_BROKER_LAT_TICKS + 1)];
    uint64_t win[SP_LAT_BUCKETS], n = 0, max = 0;
    for (int k = 0; k < SP_LAT_BUCKETS; k++) {
        win[k] = lat[k] >= old[k] ? lat[k] - old[k] : 0;
        n += win[k];
        max = win[k] ? sp_lat_bucket_high((unsigned)k) : max;
    }
    b->lat_head = (b->lat_head + 1) % (SP_BROKER_LAT_TICKS + 1);
    sp_bstats_ctr(&c, SP_CTR_LAT_COUNT, 0, n);
    sp_bstats_ctr(&c, SP_CTR_LAT_P50_NS, 0, sp_lat_percentile(win, 50));
    sp_bstats_ctr(&c, SP_CTR_LAT_P99_NS, 0, sp_lat_percentile(win, 99));
    sp_bstats_ctr(&c, SP_CTR_LAT_MAX_NS, 0, max);

    sp_router_stats_t rs;
    sp_router_stats(b->router, &rs);
    sp_bipc_depths(b, &c, &rs);
    sp_bstats_ctr(&c, SP_CTR_DROPS, SP_DROP_INVALID, invalid + rs.invalid_msgs);
    sp_bstats_ctr(&c, SP_CTR_DROPS, SP_DROP_ORDERS, rs.drops_orders);
    sp_bstats_ctr(&c, SP_CTR_DROPS, SP_DROP_RESULTS, rs.drops_results + result_drops);
    sp_bstats_ctr(&c, SP_CTR_DROPS, SP_DROP_EVENTS, rs.event_gaps);
    sp_wire_put_hdr(msg, SP_MSG_STATS, c.n, 0, (uint32_t)b->stats_seq++);
    sp_router_publish(b->router, msg, sp_wire_msg_size(SP_MSG_STATS, c.n));
    if (b->cfg->metrics != NULL) { /* broker --metrics: the same counters for Prometheus */
        sp_metrics_take(b->cfg->metrics, b, msg, c.n, lat);
    }
}

/* Copies the router's counters into the table header, where monitors and
 * tests read them. */
void sp_bstats_header(sp_broker_t *b)
{
    sp_router_stats_t rs;
    sp_router_stats(b->router, &rs);
    atomic_store_explicit(&b->hdr->drops_results, rs.drops_results, memory_order_relaxed);
    atomic_store_explicit(&b->hdr->drops_orders, rs.drops_orders, memory_order_relaxed);
    atomic_store_explicit(&b->hdr->invalid_msgs, rs.invalid_msgs, memory_order_relaxed);
    atomic_store_explicit(&b->hdr->in_flight, rs.in_flight, memory_order_relaxed);
}

void sp_bstats_collect(sp_broker_t *b)
{
    for (int w = 0; w < SP_WORKERS_MAX; w++) {
        for (int s = 0; s < SP_STATUS_COUNT; s++) {
            b->stats.orders[s] += atomic_load(&b->hdr->worker[w].orders[s]);
        }
        b->stats.worker_invalid += atomic_load(&b->hdr->worker[w].invalid_msgs);
        b->stats.worker_result_drops += atomic_load(&b->hdr->worker[w].result_drops);
    }
    sp_router_stats(b->router, &b->stats.router);
}
