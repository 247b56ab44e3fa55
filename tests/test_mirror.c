/*
 * test_mirror — the monitor's snapshot-plus-events merge, gap detection and
 * resync, and STATS decoding, fed by hand-made messages (no IPC).
 */
#include "sp_error.h"
#include "sp_mirror.h"
#include "sp_time.h"

#include <criterion/criterion.h>
#include <string.h>

#define CAP   8
#define PID_A 4001u
#define PID_B 4002u
#define PID_C 4003u
#define MS    (SP_NS_PER_MS)

static uint8_t s_msg[SP_WIRE_HDR_SIZE + 64 * SP_WIRE_EVENT_SIZE];

/* An events message from `worker` (incarnation pid) with n events: event i is
 * seq first+i on product ids[i], making it new_stock[i] at version ver[i]. */
static size_t s_events(uint32_t worker, uint32_t pid, uint64_t first, unsigned n,
                       const uint32_t *ids, const uint32_t *stock, const uint32_t *ver)
{
    for (unsigned i = 0; i < n; i++) {
        sp_event_t e = {.pub_seq = first + i,
                        .publisher_id = worker,
                        .product_id = ids[i],
                        .old_stock = stock[i] + 1,
                        .new_stock = stock[i],
                        .row_version = ver[i]};
        sp_wire_put_event(sp_wire_rec(s_msg, SP_MSG_EVENTS, i), &e);
    }
    sp_wire_put_hdr(s_msg, SP_MSG_EVENTS, n, worker, pid);
    return sp_wire_msg_size(SP_MSG_EVENTS, n);
}

static size_t s_one(uint32_t worker, uint32_t pid, uint64_t seq, uint32_t id, uint32_t stock,
                    uint32_t ver)
{
    return s_events(worker, pid, seq, 1, &id, &stock, &ver);
}

/* Events seq first..last on product 1, versions equal to their seq. */
static size_t s_run(uint32_t worker, uint32_t pid, uint64_t first, uint64_t last)
{
    uint32_t ids[64], stock[64], ver[64];
    unsigned n = (unsigned)(last - first + 1);
    for (unsigned i = 0; i < n; i++) {
        ids[i] = 1;
        ver[i] = (uint32_t)(first + i);
        stock[i] = 1000 - ver[i];
    }
    return s_events(worker, pid, first, n, ids, stock, ver);
}

static size_t s_heartbeat(uint32_t sender, uint32_t pid, uint64_t pub_seq, uint32_t state)
{
    sp_heartbeat_t hb = {.pub_seq = pub_seq, .publisher_id = sender, .state = state, .pid = pid};
    sp_wire_put_heartbeat(sp_wire_rec(s_msg, SP_MSG_HEARTBEAT, 0), &hb);
    sp_wire_put_hdr(s_msg, SP_MSG_HEARTBEAT, 1, sender, pid);
    return sp_wire_msg_size(SP_MSG_HEARTBEAT, 1);
}

static sp_snaprow_t s_row(uint32_t id, uint32_t stock, uint32_t version)
{
    sp_snaprow_t r = {.id = id, .stock = stock, .version = version, .initial_stock = 100};
    snprintf(r.name, sizeof r.name, "product-%u", id);
    snprintf(r.category, sizeof r.category, "cat-%u", id % 2);
    return r;
}

/* A snapshot of every id 1..CAP at (stock[id], version[id]) with baseline
 * pids/seqs for workers 1 and 2. */
static void s_snapshot(sp_mirror_t *m, const uint32_t *stock, const uint32_t *version,
                       uint32_t pid1, uint64_t seq1, uint32_t pid2, uint64_t seq2)
{
    uint32_t pid[SP_MIRROR_PUBS] = {0};
    uint64_t seq[SP_MIRROR_PUBS] = {0};
    pid[1] = pid1, seq[1] = seq1, pid[2] = pid2, seq[2] = seq2;
    sp_mirror_snap_begin(m, pid, seq);
    for (uint32_t id = 1; id <= CAP; id++) {
        sp_snaprow_t r = s_row(id, stock[id], version[id]);
        cr_assert_eq(sp_mirror_snap_row(m, &r, 1), 0);
    }
    sp_mirror_snap_end(m);
}

static const uint32_t s_stock100[CAP + 1] = {0, 100, 100, 100, 100, 100, 100, 100, 100};
static const uint32_t s_ver0[CAP + 1] = {0};

static sp_mirror_t *s_fresh(void)
{
    sp_mirror_t *m = sp_mirror_new(CAP, NULL);
    cr_assert_not_null(m);
    return m;
}

Test(mirror, stale_until_the_first_snapshot_then_exact)
{
    sp_mirror_t *m = s_fresh();
    cr_expect(sp_mirror_state(m)->stale);
    cr_expect(sp_mirror_wants_snapshot(m));
    cr_expect_null(sp_mirror_row(m, 1), "nothing is known before the snapshot");
    s_snapshot(m, s_stock100, s_ver0, 0, 0, 0, 0);
    cr_expect_not(sp_mirror_state(m)->stale);
    cr_expect_not(sp_mirror_wants_snapshot(m));
    cr_expect_eq(sp_mirror_state(m)->snapshots, 1);
    cr_expect_eq(sp_mirror_state(m)->resyncs, 0, "a first snapshot repairs nothing");
    cr_expect_eq(sp_mirror_units(m), 800);
    sp_minfo_t info;
    cr_assert(sp_mirror_info(m, 3, &info));
    cr_expect_str_eq(info.name, "product-3");
    cr_expect_str_eq(info.category, "cat-1");
    cr_expect_eq(info.initial_stock, 100);
    sp_mirror_destroy(&m);
    cr_expect_null(m);
}

Test(mirror, newer_events_apply_and_older_ones_do_not)
{
    sp_mirror_t *m = s_fresh();
    uint32_t stock[CAP + 1] = {0, 50, 100, 100, 100, 100, 100, 100, 100};
    uint32_t ver[CAP + 1] = {0, 5, 0, 0, 0, 0, 0, 0, 0};
    s_snapshot(m, stock, ver, PID_A, 5, 0, 0);
    /* version 5 is what the snapshot already holds; 4 is older */
    cr_expect_eq(sp_mirror_feed(m, s_msg, s_one(1, PID_A, 4, 1, 51, 4), 10, NULL, NULL),
                 SP_MSG_EVENTS);
    cr_expect_eq(sp_mirror_row(m, 1)->stock, 50);
    s_one(1, PID_A, 6, 1, 49, 6);
    sp_mirror_feed(m, s_msg, sp_wire_msg_size(SP_MSG_EVENTS, 1), 20, NULL, NULL);
    cr_expect_eq(sp_mirror_row(m, 1)->stock, 49);
    cr_expect_eq(sp_mirror_row(m, 1)->version, 6);
    cr_expect_eq(sp_mirror_row(m, 1)->changed_ns, 20);
    cr_expect_eq(sp_mirror_state(m)->events, 2);
    cr_expect_eq(sp_mirror_state(m)->applied, 1);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0, "seq 4 is under the baseline 5, seq 6 follows it");
    sp_mirror_destroy(&m);
}

Test(mirror, events_before_the_snapshot_win_over_its_older_rows)
{
    sp_mirror_t *m = s_fresh();
    /* first message proves the subscription: seq 10 of worker 1, version 7 */
    sp_mirror_feed(m, s_msg, s_one(1, PID_A, 10, 2, 93, 7), 5, NULL, NULL);
    cr_expect_null(sp_mirror_row(m, 2), "not in the catalogue until the snapshot says so");
    uint32_t stock[CAP + 1] = {0, 100, 94, 100, 100, 100, 100, 100, 100};
    uint32_t ver[CAP + 1] = {0, 0, 6, 0, 0, 0, 0, 0, 0};
    s_snapshot(m, stock, ver, PID_A, 9, 0, 0);
    cr_assert_not_null(sp_mirror_row(m, 2));
    cr_expect_eq(sp_mirror_row(m, 2)->stock, 93, "the row read earlier (v6) loses to v7");
    cr_expect_eq(sp_mirror_row(m, 2)->version, 7);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0);
    sp_mirror_destroy(&m);
}

Test(mirror, two_publishers_out_of_order_on_one_row_end_at_the_newest)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, PID_B, 0);
    /* worker 2 made version 2 after worker 1 made version 1, but its event
     * arrives first */
    sp_mirror_feed(m, s_msg, s_one(2, PID_B, 1, 4, 98, 2), 10, NULL, NULL);
    sp_mirror_feed(m, s_msg, s_one(1, PID_A, 1, 4, 99, 1), 11, NULL, NULL);
    cr_expect_eq(sp_mirror_row(m, 4)->stock, 98);
    cr_expect_eq(sp_mirror_row(m, 4)->version, 2);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0);
    cr_expect_not(sp_mirror_state(m)->stale);
    sp_mirror_destroy(&m);
}

static unsigned s_calls, s_applied_calls;
static void s_count(void *arg, const sp_event_t *e, bool applied)
{
    (void)arg;
    (void)e;
    s_calls++;
    s_applied_calls += applied;
}

Test(mirror, gap_is_counted_exactly_marked_stale_and_repaired_by_a_snapshot)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, 0, 0);
    s_calls = s_applied_calls = 0;
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 1, 3), 10, s_count, NULL);
    cr_expect_eq(s_calls, 3);
    cr_expect_eq(s_applied_calls, 3);
    cr_expect_not(sp_mirror_state(m)->stale);
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 7, 8), 20, s_count, NULL); /* 4, 5, 6 lost */
    cr_expect_eq(sp_mirror_state(m)->gaps, 3);
    cr_expect_eq(sp_mirror_pub(m, 1)->gaps, 3);
    cr_expect_eq(sp_mirror_state(m)->gap_reports, 1);
    cr_expect(sp_mirror_state(m)->stale);
    cr_expect(sp_mirror_wants_snapshot(m));
    uint32_t stock[CAP + 1] = {0, 992, 100, 100, 100, 100, 100, 100, 100};
    uint32_t ver[CAP + 1] = {0, 8, 0, 0, 0, 0, 0, 0, 0};
    s_snapshot(m, stock, ver, PID_A, 8, 0, 0);
    cr_expect_not(sp_mirror_state(m)->stale);
    cr_expect_eq(sp_mirror_state(m)->resyncs, 1);
    cr_expect_eq(sp_mirror_row(m, 1)->stock, 992);
    /* the stream goes on without another gap */
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 9, 9), 30, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 3);
    cr_expect_eq(sp_mirror_row(m, 1)->stock, 991);
    sp_mirror_destroy(&m);
}

Test(mirror, a_gap_during_a_snapshot_keeps_the_view_stale)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, 0, 0);
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 1, 1), 10, NULL, NULL);
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 3, 3), 11, NULL, NULL); /* gap of 1 */
    uint32_t pid[SP_MIRROR_PUBS] = {0, PID_A};
    uint64_t seq[SP_MIRROR_PUBS] = {0, 3};
    sp_mirror_snap_begin(m, pid, seq);
    cr_expect_not(sp_mirror_wants_snapshot(m), "one is running");
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 6, 6), 12, NULL, NULL); /* another gap */
    for (uint32_t id = 1; id <= CAP; id++) {
        sp_snaprow_t r = s_row(id, 90, 3);
        sp_mirror_snap_row(m, &r, 13);
    }
    sp_mirror_snap_end(m);
    cr_expect(sp_mirror_state(m)->stale, "rows read before the second gap may be old");
    cr_expect(sp_mirror_wants_snapshot(m));
    cr_expect_eq(sp_mirror_state(m)->gaps, 3);
    cr_expect_eq(sp_mirror_state(m)->resyncs, 0);
    s_snapshot(m, s_stock100, s_ver0, PID_A, 6, 0, 0);
    cr_expect_not(sp_mirror_state(m)->stale);
    cr_expect_eq(sp_mirror_state(m)->resyncs, 1);
    sp_mirror_destroy(&m);
}

Test(mirror, heartbeat_reveals_a_lost_tail)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, 0, 0);
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 1, 3), 10, NULL, NULL);
    cr_expect_eq(sp_mirror_feed(m, s_msg, s_heartbeat(1, PID_A, 3, SP_PUB_RUNNING), 11, NULL, NULL),
                 SP_MSG_HEARTBEAT);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0, "nothing missing: heartbeat matches");
    sp_mirror_feed(m, s_msg, s_heartbeat(1, PID_A, 5, SP_PUB_RUNNING), 12, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 2, "events 4 and 5 never came");
    cr_expect(sp_mirror_state(m)->stale);
    /* the late events themselves, if they ever come, are not counted twice */
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 4, 5), 13, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 2);
    cr_expect_eq(sp_mirror_state(m)->heartbeats, 2);
    sp_mirror_destroy(&m);
}

Test(mirror, first_contact_before_the_snapshot_is_not_a_gap)
{
    sp_mirror_t *m = s_fresh();
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 100, 101), 10, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0, "1..99 happened before we subscribed");
    s_snapshot(m, s_stock100, s_ver0, PID_A, 101, 0, 0);
    cr_expect_not(sp_mirror_state(m)->stale);
    sp_mirror_destroy(&m);
}

Test(mirror, first_contact_after_the_snapshot_starts_from_its_baseline)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 50, PID_B, 20);
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 51, 52), 10, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0, "51 follows the snapshot's 50");
    sp_mirror_feed(m, s_msg, s_run(2, PID_B, 25, 25), 11, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 4, "21..24 of worker 2 are missing");
    sp_mirror_destroy(&m);
}

Test(mirror, a_restarted_worker_counts_from_one_again)
{
    sp_mirror_t *m = s_fresh();
    /* the first life is well past 1 when the snapshot is taken: a new
     * incarnation's count must not be measured from its baseline */
    s_snapshot(m, s_stock100, s_ver0, PID_A, 50, 0, 0);
    sp_mirror_feed(m, s_msg, s_run(1, PID_A, 51, 60), 10, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0, "51 follows the snapshot's 50");
    /* worker 1 died and came back as PID_B after the snapshot */
    sp_mirror_feed(m, s_msg, s_heartbeat(1, PID_B, 0, SP_PUB_RUNNING), 11, NULL, NULL);
    sp_mirror_feed(m, s_msg, s_run(1, PID_B, 1, 2), 12, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0, "PID_B counts from 1");
    cr_expect_eq(sp_mirror_pub(m, 1)->pid, PID_B);
    /* it died again; the next incarnation is seen first at seq 3: its 1 and
     * 2 were lost, though both are below the first life's 60 */
    sp_mirror_feed(m, s_msg, s_run(1, PID_C, 3, 3), 13, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 2, "PID_C's 1 and 2 are missing: %llu gap(s) counted",
                 (unsigned long long)sp_mirror_state(m)->gaps);
    cr_expect_eq(sp_mirror_pub(m, 1)->pid, PID_C);
    sp_mirror_destroy(&m);
}

Test(mirror, end_of_stream_and_broker_goodbye)
{
    sp_mirror_t *m = s_fresh();
    uint8_t eos[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(eos, SP_MSG_EOS, 0, 0, 0);
    cr_expect_not(sp_mirror_state(m)->eos);
    cr_expect_eq(sp_mirror_feed(m, eos, sizeof eos, 1, NULL, NULL), SP_MSG_EOS);
    cr_expect(sp_mirror_state(m)->eos);

    sp_mirror_t *m2 = s_fresh();
    sp_mirror_feed(m2, s_msg, s_heartbeat(0, 77, 0, SP_PUB_RUNNING), 1, NULL, NULL);
    cr_expect_not(sp_mirror_state(m2)->eos);
    sp_mirror_feed(m2, s_msg, s_heartbeat(0, 77, 0, SP_PUB_STOPPING), 2, NULL, NULL);
    cr_expect(sp_mirror_state(m2)->eos, "a STOPPING broker heartbeat also ends the stream");
    sp_mirror_destroy(&m);
    sp_mirror_destroy(&m2);
}

Test(mirror, malformed_and_impossible_messages_are_counted_and_change_nothing)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, 0, 0);
    size_t len = s_one(1, PID_A, 1, 2, 1, 1);
    cr_expect_lt(sp_mirror_feed(m, s_msg, len - 1, 1, NULL, NULL), 0, "truncated");
    s_msg[0] ^= 0xff;
    cr_expect_lt(sp_mirror_feed(m, s_msg, len, 1, NULL, NULL), 0, "bad magic");
    s_msg[0] ^= 0xff;
    sp_wire_put_hdr(s_msg, SP_MSG_EVENTS, 1, 0, PID_A);
    cr_expect_lt(sp_mirror_feed(m, s_msg, len, 1, NULL, NULL), 0, "events from the broker id");
    s_one(1, PID_A, 1, CAP + 5, 1, 1);
    sp_mirror_feed(m, s_msg, len, 1, NULL, NULL);
    uint8_t orders[SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE] = {0};
    sp_wire_put_hdr(orders, SP_MSG_ORDERS, 1, 3, 0);
    cr_expect_eq(sp_mirror_feed(m, orders, sizeof orders, 1, NULL, NULL), SP_E_BAD_KIND);
    cr_expect_eq(sp_mirror_state(m)->invalid, 5);
    cr_expect_eq(sp_mirror_units(m), 800, "no row changed");
    sp_snaprow_t bad = s_row(CAP + 1, 1, 1);
    cr_expect_eq(sp_mirror_snap_row(m, &bad, 1), SP_E_UNKNOWN_PRODUCT);
    sp_mirror_destroy(&m);
}

static size_t s_stats_msg(uint64_t t_ns, uint64_t accepted, uint64_t oos)
{
    sp_counter_t c[] = {
        {.id = SP_CTR_TIME_NS, .value = t_ns},
        {.id = SP_CTR_ORDERS, .index = SP_STATUS_ACCEPTED, .value = accepted},
        {.id = SP_CTR_ORDERS, .index = SP_STATUS_OUT_OF_STOCK, .value = oos},
        {.id = SP_CTR_WORKERS, .value = 2},
        {.id = SP_CTR_W_STATE, .index = 2, .value = SP_WSTATE_SILENT},
        {.id = SP_CTR_W_HB_AGE_MS, .index = 2, .value = 2500},
        {.id = SP_CTR_DEPTH, .index = SP_HOP_ORDERS, .value = 7},
        {.id = SP_CTR_DROPS, .index = SP_DROP_EVENTS, .value = 3},
        {.id = SP_CTR_LAT_P99_NS, .value = 123456},
        {.id = 999, .index = 1, .value = 1},             /* from a newer broker: ignored */
        {.id = SP_CTR_W_STATE, .index = 65, .value = 1}, /* no such worker: ignored */
    };
    unsigned n = sizeof c / sizeof c[0];
    for (unsigned i = 0; i < n; i++) {
        sp_wire_put_counter(sp_wire_rec(s_msg, SP_MSG_STATS, i), &c[i]);
    }
    sp_wire_put_hdr(s_msg, SP_MSG_STATS, n, 0, 0);
    return sp_wire_msg_size(SP_MSG_STATS, n);
}

Test(mirror, stats_are_decoded_and_give_rates)
{
    sp_mirror_t *m = s_fresh();
    cr_expect_not(sp_mirror_stats(m)->valid);
    uint64_t t0 = 1000 * MS;
    for (int i = 0; i <= 20; i++) {
        /* 1000 orders answered per 100 ms, three quarters accepted */
        uint64_t t = t0 + (uint64_t)i * 100 * MS;
        cr_assert_eq(sp_mirror_feed(m, s_msg, s_stats_msg(t, 750u * i, 250u * i), t, NULL, NULL),
                     SP_MSG_STATS);
    }
    const sp_shopstats_t *s = sp_mirror_stats(m);
    cr_expect(s->valid);
    cr_expect_eq(s->orders[SP_STATUS_ACCEPTED], 15000);
    cr_expect_eq(s->orders[SP_STATUS_OUT_OF_STOCK], 5000);
    cr_expect_eq(s->workers, 2);
    cr_expect_eq(s->worker[2].state, SP_WSTATE_SILENT);
    cr_expect_eq(s->worker[2].hb_age_ms, 2500);
    cr_expect_eq(s->depth[SP_HOP_ORDERS], 7);
    cr_expect_eq(s->drops[SP_DROP_EVENTS], 3);
    cr_expect_eq(s->lat_p99_ns, 123456);
    sp_mrates_t r;
    sp_mirror_rates(m, t0 + 2000 * MS, &r);
    cr_expect_float_eq(r.orders_1s, 10000.0, 1.0);
    cr_expect_float_eq(r.orders_10s, 10000.0, 1.0, "only 2 s of history: rate over all of it");
    cr_expect_eq(sp_mirror_state(m)->invalid, 0);
    sp_mirror_destroy(&m);
}

Test(mirror, events_rate_falls_to_zero_when_events_stop)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, 0, 0);
    for (uint64_t i = 0; i < 20; i++) {
        sp_mirror_feed(m, s_msg, s_run(1, PID_A, i * 10 + 1, i * 10 + 10), 1000 * MS + i * 100 * MS,
                       NULL, NULL);
    }
    sp_mrates_t r;
    sp_mirror_rates(m, 2900 * MS, &r);
    cr_expect_float_eq(r.events_1s, 100.0, 15.0, "about 10 events per 100 ms: %f", r.events_1s);
    sp_mirror_rates(m, 10000 * MS, &r);
    cr_expect_lt(r.events_1s, 1.0, "quiet for seconds: %f", r.events_1s);
    sp_mirror_destroy(&m);
}

Test(mirror, an_event_of_the_version_already_shown_is_not_applied_again)
{
    sp_mirror_t *m = s_fresh();
    uint32_t stock[CAP + 1] = {0, 50, 100, 100, 100, 100, 100, 100, 100};
    uint32_t ver[CAP + 1] = {0, 5, 0, 0, 0, 0, 0, 0, 0};
    s_snapshot(m, stock, ver, PID_A, 4, 0, 0);
    /* seq 5 of worker 1 carries version 5, which the snapshot already holds */
    sp_mirror_feed(m, s_msg, s_one(1, PID_A, 5, 1, 50, 5), 10, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->applied, 0, "version 5 was already shown");
    cr_expect_eq(sp_mirror_row(m, 1)->changes, 0);
    cr_expect_eq(sp_mirror_row(m, 1)->changed_ns, 0);
    /* and an event seen twice counts once */
    sp_mirror_feed(m, s_msg, s_one(1, PID_A, 6, 1, 49, 6), 20, NULL, NULL);
    sp_mirror_feed(m, s_msg, s_one(1, PID_A, 6, 1, 49, 6), 30, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->applied, 1);
    cr_expect_eq(sp_mirror_row(m, 1)->changes, 1);
    cr_expect_eq(sp_mirror_row(m, 1)->changed_ns, 20);
    sp_mirror_destroy(&m);
}

Test(mirror, one_lost_event_is_a_gap_of_one)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, 0, 0);
    sp_mirror_feed(m, s_msg, s_one(1, PID_A, 1, 2, 99, 1), 10, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 0);
    sp_mirror_feed(m, s_msg, s_one(1, PID_A, 3, 2, 97, 3), 20, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 1, "seq 2 was lost");
    sp_mirror_destroy(&m);
}

Test(mirror, a_publisher_restarted_after_the_snapshot_counts_from_its_first_event)
{
    sp_mirror_t *m = s_fresh();
    /* the snapshot saw worker 1's incarnation A up to seq 5 */
    s_snapshot(m, s_stock100, s_ver0, PID_A, 5, 0, 0);
    /* worker 1 restarted as incarnation C: its seqs start again at 1, and
     * its seq 2 is lost */
    sp_mirror_feed(m, s_msg, s_one(1, PID_C, 1, 3, 99, 1), 10, NULL, NULL);
    sp_mirror_feed(m, s_msg, s_one(1, PID_C, 3, 3, 97, 3), 20, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->gaps, 1, "C's seq 2 was lost; A's baseline is not C's");
    cr_expect_eq(sp_mirror_pub(m, 1)->last_seq, 3);
    sp_mirror_destroy(&m);
}

Test(mirror, an_event_for_a_product_past_the_capacity_is_invalid)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, 0, 0);
    sp_mirror_feed(m, s_msg, s_one(1, PID_A, 1, CAP + 1, 5, 1), 10, NULL, NULL);
    cr_expect_eq(sp_mirror_state(m)->invalid, 1);
    cr_expect_eq(sp_mirror_state(m)->applied, 0);
    sp_mirror_destroy(&m);
}

Test(mirror, events_from_sender_zero_are_refused)
{
    sp_mirror_t *m = s_fresh();
    s_snapshot(m, s_stock100, s_ver0, PID_A, 0, 0, 0);
    /* sender 0 is the broker, which publishes heartbeats and stats only */
    int rc = sp_mirror_feed(m, s_msg, s_one(0, PID_A, 1, 2, 5, 1), 10, NULL, NULL);
    cr_expect_lt(rc, 0, "rc %d", rc);
    cr_expect_eq(sp_mirror_state(m)->applied, 0);
    cr_expect_eq(sp_mirror_row(m, 2)->stock, 100);
    sp_mirror_destroy(&m);
}

/* --- merged views (a sharded shop) ------------------------------------------- */

/* A snapshot of ids lo..hi only, each at stock 100 - id, version id. */
static void s_snapshot_range(sp_mirror_t *m, uint32_t lo, uint32_t hi)
{
    uint32_t pid[SP_MIRROR_PUBS] = {0};
    uint64_t seq[SP_MIRROR_PUBS] = {0};
    sp_mirror_snap_begin(m, pid, seq);
    for (uint32_t id = lo; id <= hi; id++) {
        sp_snaprow_t r = s_row(id, 100 - id, id);
        cr_assert_eq(sp_mirror_snap_row(m, &r, 1), 0);
    }
    sp_mirror_snap_end(m);
}

Test(mirror, a_merged_view_shows_each_row_from_the_shard_that_has_it)
{
    sp_mirror_t *a = sp_mirror_new(4, NULL), *b = s_fresh();
    cr_assert(a != NULL && b != NULL);
    const sp_mirror_t *shards[] = {a, b};
    sp_mirror_t *m = sp_mirror_new_merged(shards, 2);
    cr_assert_not_null(m);
    cr_expect_eq(sp_mirror_capacity(m), CAP, "as large as the largest shard");
    sp_mirror_merge(m, 1);
    cr_expect(sp_mirror_state(m)->stale, "no shard has a snapshot yet");
    cr_expect_null(sp_mirror_row(m, 1));

    s_snapshot_range(a, 1, 4);
    sp_mirror_merge(m, 2);
    cr_expect(sp_mirror_state(m)->stale, "shard b is still stale");
    s_snapshot_range(b, 5, 8);
    sp_mirror_merge(m, 3);
    cr_expect_not(sp_mirror_state(m)->stale);
    cr_expect_eq(sp_mirror_state(m)->snapshots, 2);
    for (uint32_t id = 1; id <= CAP; id++) {
        const sp_mrow_t *r = sp_mirror_row(m, id);
        cr_assert_not_null(r, "row %u", id);
        cr_expect_eq(r->stock, 100 - id);
        cr_expect_eq(sp_mirror_owner(m, id), id <= 4 ? 0 : 1, "row %u", id);
        sp_minfo_t info;
        cr_assert(sp_mirror_info(m, id, &info));
        char want[32];
        snprintf(want, sizeof want, "product-%u", id);
        cr_expect_str_eq(info.name, want);
        sp_tally_t tally;
        bool live = true;
        cr_expect(sp_mirror_tally(m, id, &tally, &live));
        cr_expect_not(live, "remote shards: the snapshot's counters");
    }
    cr_expect_eq(sp_mirror_units(m), sp_mirror_units(a) + sp_mirror_units(b));
    cr_expect_eq(sp_mirror_claimed_twice(m), 0);

    /* an event on a shard shows in the view without another merge: rows
     * are the shard's own */
    cr_assert_eq(sp_mirror_feed(b, s_msg, s_one(1, PID_A, 1, 6, 7, 50), 4, NULL, NULL),
                 SP_MSG_EVENTS);
    cr_expect_eq(sp_mirror_row(m, 6)->stock, 7);
    sp_mirror_merge(m, 5);
    cr_expect_eq(sp_mirror_state(m)->events, 1);

    /* the view itself takes nothing in */
    cr_expect_lt(sp_mirror_feed(m, s_msg, s_one(1, PID_A, 2, 6, 6, 51), 6, NULL, NULL), 0);
    sp_snaprow_t r = s_row(1, 1, 99);
    cr_expect_lt(sp_mirror_snap_row(m, &r, 6), 0);
    cr_expect_eq(sp_mirror_row(m, 6)->stock, 7);
    sp_mirror_destroy(&m);
    sp_mirror_destroy(&a);
    sp_mirror_destroy(&b);
}

Test(mirror, a_merged_view_puts_the_shards_counters_together)
{
    sp_mirror_t *a = s_fresh(), *b = s_fresh();
    const sp_mirror_t *shards[] = {a, b};
    sp_mirror_t *m = sp_mirror_new_merged(shards, 2);
    cr_assert_not_null(m);
    uint64_t t0 = 1000 * MS;
    for (int i = 0; i <= 20; i++) {
        uint64_t t = t0 + (uint64_t)i * 100 * MS;
        /* shard a answers 1000 orders per 100 ms, shard b 1000 per second */
        sp_mirror_feed(a, s_msg, s_stats_msg(t, 750u * i, 250u * i), t, NULL, NULL);
        sp_mirror_feed(b, s_msg, s_stats_msg(t, 75u * i, 25u * i), t, NULL, NULL);
    }
    sp_mirror_merge(m, t0 + 2000 * MS);
    const sp_shopstats_t *s = sp_mirror_stats(m);
    cr_expect(s->valid);
    cr_expect_eq(s->orders[SP_STATUS_ACCEPTED], 15000 + 1500);
    cr_expect_eq(s->orders[SP_STATUS_OUT_OF_STOCK], 5000 + 500);
    cr_expect_eq(s->workers, 4, "both shards' workers, one after the other");
    cr_expect_eq(s->worker[2].state, SP_WSTATE_SILENT);
    cr_expect_eq(s->worker[4].state, SP_WSTATE_SILENT);
    cr_expect_eq(s->depth[SP_HOP_ORDERS], 14);
    cr_expect_eq(s->drops[SP_DROP_EVENTS], 6);
    cr_expect_eq(s->lat_p99_ns, 123456, "the slowest shard's");
    sp_mrates_t r;
    sp_mirror_rates(m, t0 + 2000 * MS, &r);
    cr_expect_float_eq(r.orders_1s, 11000.0, 1.0);

    /* the stream ends when every shard's has */
    uint8_t eos[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(eos, SP_MSG_EOS, 0, 0, 0);
    sp_mirror_feed(a, eos, sizeof eos, t0, NULL, NULL);
    sp_mirror_merge(m, t0 + 2100 * MS);
    cr_expect_not(sp_mirror_state(m)->eos);
    sp_mirror_feed(b, eos, sizeof eos, t0, NULL, NULL);
    sp_mirror_merge(m, t0 + 2200 * MS);
    cr_expect(sp_mirror_state(m)->eos);
    sp_mirror_destroy(&m);
    sp_mirror_destroy(&a);
    sp_mirror_destroy(&b);
}

Test(mirror, a_product_two_shards_have_is_counted_and_shown_from_the_first)
{
    sp_mirror_t *a = s_fresh(), *b = s_fresh();
    const sp_mirror_t *shards[] = {a, b};
    sp_mirror_t *m = sp_mirror_new_merged(shards, 2);
    cr_assert_not_null(m);
    s_snapshot_range(a, 1, 5);
    s_snapshot_range(b, 4, 8);
    sp_mirror_merge(m, 1);
    cr_expect_eq(sp_mirror_claimed_twice(m), 2, "ids 4 and 5");
    cr_expect_eq(sp_mirror_owner(m, 4), 0);
    cr_expect_eq(sp_mirror_owner(m, 6), 1);
    cr_expect_null(sp_mirror_new_merged(shards, 0));
    sp_mirror_destroy(&m);
    sp_mirror_destroy(&a);
    sp_mirror_destroy(&b);
}
