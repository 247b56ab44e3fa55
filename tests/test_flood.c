/*
 * Resources under flood: one producer sending as fast as it can with
 * malformed messages mixed in (producer --inject-malformed), over each
 * transport.  Broker and workers stay within SP_FLOOD_RSS_MAX of memory, the
 * order path within its configured depth, the producer is slowed down
 * (back-pressure) rather than losing orders, and every malformed message
 * and order is refused and counted, changing nothing.
 *
 * A client flooding the events endpoint with subscriptions (10,000 of 1,000
 * bytes, and as many small enough to pass the size bound) leaves broker and
 * workers within SP_FLOOD_RSS_MAX of their resting memory, restarts no
 * worker, and another monitor keeps receiving the feed.
 *
 * SP_FLOOD_SECONDS sets the length of each flood (default 5; `make flood`
 * runs 30).
 */
#include "sp_shmlink.h"
#include "sp_mq.h"
#include "sp_testutil.h"

#include "sp_events.h"
#include "sp_link.h"
#include "sp_time.h"
#include "sp_zmq.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SP_FLOOD_RSS_MAX_KB (64 * 1024) /* the bound, per process */
/* AddressSanitizer's shadow memory and quarantine are not ours to bound:
 * under it the peaks are reported, not checked */
#if defined(__SANITIZE_ADDRESS__)
#define S_CHECK_RSS 0
#else
#define S_CHECK_RSS 1
#endif
#define FLOOD_S_DEFAULT 5
#define MALFORMED_EVERY "7" /* one malformed message after every 7th order message */
#define SAMPLE_MS       50
#define S_NS_PER_S      1000000000ull

static unsigned s_seconds(void)
{
    const char *s = getenv("SP_FLOOD_SECONDS");
    long v = s != NULL ? strtol(s, NULL, 10) : 0;
    return v > 0 && v <= 3600 ? (unsigned)v : FLOOD_S_DEFAULT;
}

/* Peak resident memory of a live process, in KiB; -1 if gone. */
static long s_peak_kb(pid_t pid)
{
    return sp_proc_status_kb(pid, "VmHWM");
}

typedef struct {
    sp_table_t *table;
    sp_table_hdr_t *hdr;
    sp_names_t names;
    sp_shm_t *ring; /* shm transport: the rings, to read the order ring's depth */
    long depth_max; /* deepest the order path was seen */
    long depth_cap; /* its configured depth */
    long broker_kb; /* peak memory */
    long worker_kb[2];
} s_watch_t;

static void s_sample_depth(s_watch_t *w, const char *transport)
{
    long d = -1;
    if (strcmp(transport, "mq") == 0) {
        d = sp_mq_orders_depth(&w->names);
    } else if (strcmp(transport, "shm") == 0) {
        d = (long)sp_ring_depth(sp_shm_orders(w->ring));
    } else {
        d = (long)atomic_load(&w->hdr->in_flight);
    }
    if (d > w->depth_max) {
        w->depth_max = d;
    }
}

/* Sum of the workers' counters of one kind. */
static uint64_t s_workers_invalid_msgs(sp_table_hdr_t *h)
{
    uint64_t n = 0;
    for (int i = 0; i < SP_WORKERS_MAX; i++) {
        n += atomic_load(&h->worker[i].invalid_msgs);
    }
    return n;
}

static uint64_t s_workers_orders(sp_table_hdr_t *h, unsigned status)
{
    uint64_t n = 0;
    for (int i = 0; i < SP_WORKERS_MAX; i++) {
        n += atomic_load(&h->worker[i].orders[status]);
    }
    return n;
}

static void s_open_watch(s_watch_t *w, const char *inst, const char *transport)
{
    memset(w, 0, sizeof *w);
    sp_names_init(&w->names, inst, NULL);
    cr_assert_eq(sp_table_open(&w->table, w->names.table, false), 0);
    w->hdr = sp_table_hdr(w->table);
    if (strcmp(transport, "shm") == 0) {
        char why[256];
        cr_assert_eq(sp_shm_open(&w->ring, &w->names, why, sizeof why), 0, "%s", why);
    }
    if (strcmp(transport, "zmq") == 0) {
        w->depth_cap = (long)w->hdr->workers * SP_LINK_CREDIT_DEFAULT;
    } else {
        w->depth_cap = (long)w->hdr->path_depth;
    }
}

static void s_close_watch(s_watch_t *w)
{
    sp_shm_close(&w->ring);
    sp_table_close(&w->table);
}

static void s_peaks(s_watch_t *w, pid_t broker)
{
    w->broker_kb = s_peak_kb(broker);
    for (int i = 0; i < 2; i++) {
        w->worker_kb[i] = s_peak_kb(atomic_load(&w->hdr->worker[i].pid));
    }
    if (!S_CHECK_RSS) {
        cr_log_info("peak memory under ASan (not checked): broker %ld KiB, workers %ld/%ld KiB",
                    w->broker_kb, w->worker_kb[0], w->worker_kb[1]);
        return;
    }
    cr_expect(w->broker_kb > 0 && w->broker_kb <= SP_FLOOD_RSS_MAX_KB,
              "broker peak memory %ld KiB (limit %d)", w->broker_kb, SP_FLOOD_RSS_MAX_KB);
    for (int i = 0; i < 2; i++) {
        cr_expect(w->worker_kb[i] > 0 && w->worker_kb[i] <= SP_FLOOD_RSS_MAX_KB,
                  "worker %d peak memory %ld KiB (limit %d)", i + 1, w->worker_kb[i],
                  SP_FLOOD_RSS_MAX_KB);
    }
}

static void s_flood(const char *transport)
{
    unsigned secs = s_seconds();
    char inst[64], dur[32], out_path[128];
    spt_instance(inst, sizeof inst, transport);
    snprintf(dur, sizeof dur, "%us", secs);
    snprintf(out_path, sizeof out_path, "/tmp/sp-flood-%s-%d.json", transport, (int)getpid());
    const char *extra[] = {"--catalogue", spt_data("products.csv"), "--transport", transport, NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    s_watch_t w;
    s_open_watch(&w, inst, transport);

    const char *load[] = {
        spt_bin("producer"),  "--instance",    inst,     "--duration", dur, "--restock", "0.5",
        "--inject-malformed", MALFORMED_EVERY, "--json", NULL};
    pid_t producer = spt_spawn(load, out_path);
    cr_assert(producer > 0);
    int rc = -2, status = 0;
    uint64_t deadline = sp_now_ns() + (uint64_t)(secs + 30) * S_NS_PER_S;
    while (sp_now_ns() < deadline) {
        s_sample_depth(&w, transport);
        if (waitpid(producer, &status, WNOHANG) == producer) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            break;
        }
        usleep(SAMPLE_MS * 1000);
    }
    if (rc == -2) {
        kill(producer, SIGKILL);
        waitpid(producer, NULL, 0);
    }
    char *json = spt_slurp(out_path);
    unlink(out_path);
    cr_expect_eq(rc, 0, "producer exited %d: %s", rc, json ? json : "");

    s_peaks(&w, broker);
    cr_expect(w.depth_max >= 0 && w.depth_max <= w.depth_cap, "order path %ld deep, cap %ld",
              w.depth_max, w.depth_cap);

    long long sent = spt_json_num(json, "sent");
    long long bad_msgs = spt_json_num(json, "malformed_msgs");
    long long bad_orders = spt_json_num(json, "malformed_orders");
    cr_expect_gt(sent, 10000, "%s", json);
    cr_expect_gt(bad_msgs, 100, "%s", json);
    cr_expect_gt(bad_orders, 100, "%s", json);
    /* back-pressure, not loss: every order left and was answered */
    cr_expect_eq(spt_json_num(json, "send_failed"), 0, "%s", json);
    cr_expect_eq(spt_json_num(json, "timed_out"), 0, "%s", json);
    cr_expect_eq(spt_json_num(json, "unexpected"), 0, "%s", json);
    cr_expect_eq(spt_json_num(json, "malformed_refused"), bad_orders, "%s", json);

    /* every rejection counted where it happened, none twice */
    uint64_t dead = s_workers_invalid_msgs(w.hdr) + atomic_load(&w.hdr->invalid_msgs);
    uint64_t refused = s_workers_orders(w.hdr, SP_STATUS_INVALID) +
                       s_workers_orders(w.hdr, SP_STATUS_UNKNOWN_PRODUCT);
    cr_expect_eq(dead, (uint64_t)bad_msgs, "dead-lettered %llu, injected %lld",
                 (unsigned long long)dead, bad_msgs);
    cr_expect_eq(refused, (uint64_t)bad_orders, "refused %llu orders, injected %lld",
                 (unsigned long long)refused, bad_orders);
    cr_expect_eq(atomic_load(&w.hdr->drops_orders), 0);
    cr_expect_eq(sp_table_audit(w.table, NULL, 0), 0, "conservation broken");
    cr_log_info("flood %s %us: %lld orders, %lld malformed messages, %lld malformed orders; "
                "peak memory broker %ld KiB, workers %ld/%ld KiB; order path at most %ld of %ld",
                transport, secs, sent, bad_msgs, bad_orders, w.broker_kb, w.worker_kb[0],
                w.worker_kb[1], w.depth_max, w.depth_cap);
    free(json);
    s_close_watch(&w);
    status = spt_stop(broker);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker did not stop cleanly");
    cr_expect_not(spt_leftovers(inst));
}

Test(flood, mq_flood_with_malformed_messages_is_bounded_and_counted, .timeout = 120)
{
    s_flood("mq");
}

Test(flood, zmq_flood_with_malformed_messages_is_bounded_and_counted, .timeout = 120)
{
    s_flood("zmq");
}

Test(flood, shm_flood_with_malformed_messages_is_bounded_and_counted, .timeout = 120)
{
    s_flood("shm");
}

/* A zmq client that ignores flow control: it pushes the largest order
 * messages as fast as the socket takes them and never reads an answer.
 * It is made to wait (EAGAIN) while the broker's memory stays bounded, and
 * each of its orders (all refused: quantity 0) is answered or dropped at
 * its own connection, changing nothing. */
Test(flood, zmq_client_ignoring_flow_control_is_held_back, .timeout = 120)
{
    unsigned secs = s_seconds();
    char inst[64];
    spt_instance(inst, sizeof inst, "blast");
    const char *extra[] = {"--catalogue", spt_data("products.csv"), "--transport", "zmq", NULL};
    pid_t broker = spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    s_watch_t w;
    s_open_watch(&w, inst, "zmq");

    zsys_handler_set(NULL);
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    cr_assert_not_null(dealer);
    zsock_set_sndhwm(dealer, 16);
    cr_assert_eq(zsock_connect(dealer, "%s", w.hdr->ep_orders), 0);
    void *raw = zsock_resolve(dealer);

    enum { N = SP_WIRE_MAX_RECORDS };
    size_t len = sp_wire_msg_size(SP_MSG_ORDERS, N);
    uint8_t *msg = malloc(len);
    cr_assert_not_null(msg);
    uint32_t producer = 0x40000000u | (uint32_t)getpid();
    uint64_t sent = 0, waited = 0;
    uint64_t end = sp_now_ns() + (uint64_t)secs * S_NS_PER_S;
    for (uint32_t batch = 1; sp_now_ns() < end; batch++) {
        sp_wire_put_hdr(msg, SP_MSG_ORDERS, N, producer, batch);
        for (unsigned i = 0; i < N; i++) {
            sp_order_t o = {.type = SP_ORDER_PURCHASE,
                            .producer_id = producer,
                            .seq = (uint64_t)batch * N + i,
                            .product_id = 1 + i % 10,
                            .quantity = 0};
            sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, i), &o);
        }
        if (zmq_send(raw, msg, len, ZMQ_DONTWAIT) == (int)len) {
            sent++;
        } else {
            cr_assert_eq(errno, EAGAIN, "%s", strerror(errno));
            waited++;
            usleep(1000);
        }
    }
    s_peaks(&w, broker);
    cr_expect_gt(sent, 0);
    cr_expect_gt(waited, 0, "the broker took %llu messages of %zu bytes without ever pushing back",
                 (unsigned long long)sent, len);
    /* nothing applied: every row still at its first version */
    for (uint32_t id = 1; id <= 10; id++) {
        cr_expect_eq(spt_tally(w.table, id).version, 0, "product %u changed", id);
    }
    cr_expect_eq(s_workers_orders(w.hdr, SP_STATUS_ACCEPTED), 0);
    cr_log_info("blast %us: %llu messages of %zu bytes sent, %llu times held back; peak memory "
                "broker %ld KiB",
                secs, (unsigned long long)sent, len, (unsigned long long)waited, w.broker_kb);
    free(msg);
    zsock_set_linger(dealer, 0);
    zsock_destroy(&dealer);
    s_close_watch(&w);
    int status = spt_stop(broker);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker did not stop cleanly");
    cr_expect_not(spt_leftovers(inst));
}

/* The hostile client: SUB sockets subscribing `count` distinct prefixes of
 * each size in `sizes`, one socket per size (libzmq sends them again on
 * every reconnect), until it is killed.  Runs in a forked child with its
 * own context. */
static void s_subscription_flooder(const char *endpoint, unsigned count)
{
    static const size_t sizes[] = {1000, 200, 17};
    enum { NSIZES = sizeof sizes / sizeof sizes[0] };
    void *ctx = zmq_ctx_new();
    void *subs[NSIZES];
    char prefix[1000];
    for (unsigned k = 0; k < NSIZES; k++) {
        subs[k] = zmq_socket(ctx, ZMQ_SUB);
        int unlimited = 0;
        zmq_setsockopt(subs[k], ZMQ_SNDHWM, &unlimited, sizeof unlimited);
        if (subs[k] == NULL || zmq_connect(subs[k], endpoint) < 0) {
            _exit(1);
        }
        for (unsigned i = 0; i < count; i++) {
            memset(prefix, 'a' + (int)(i % 26), sizes[k]);
            memcpy(prefix, &i, sizeof i);
            zmq_setsockopt(subs[k], ZMQ_SUBSCRIBE, prefix, sizes[k]);
        }
    }
    for (;;) {
        pause();
    }
}

/* Messages one honest monitor received while the flood ran. */
typedef struct {
    unsigned events_msgs, heartbeats;
    uint64_t longest_silence_ns;
} s_honest_t;

static void s_subscription_flood(bool tcp)
{
    unsigned secs = s_seconds();
    char inst[64];
    spt_instance(inst, sizeof inst, tcp ? "subtcp" : "subipc");
    const char *extra[] = {"--catalogue", spt_data("products.csv"), "--transport", "zmq", NULL};
    unsigned port = 0;
    pid_t broker =
        tcp ? spt_broker_start_tcp(inst, NULL, extra, &port) : spt_broker_start(inst, extra);
    cr_assert(broker > 0);
    s_watch_t w;
    s_open_watch(&w, inst, "zmq");
    /* resting: both workers up and beating */
    pid_t workers[2] = {0, 0};
    long rest_kb[3] = {0, -1, -1};
    uint64_t ready_by = sp_now_ns() + SP_TEST_WAIT_MS * 1000000ull;
    while ((rest_kb[1] <= 0 || rest_kb[2] <= 0) && sp_now_ns() < ready_by) {
        usleep(SAMPLE_MS * 1000);
        for (int i = 0; i < 2; i++) {
            workers[i] = (pid_t)atomic_load(&w.hdr->worker[i].pid);
            bool beats = atomic_load(&w.hdr->worker[i].heartbeat_ns) != 0;
            rest_kb[i + 1] = workers[i] > 0 && beats ? sp_proc_status_kb(workers[i], "VmRSS") : -1;
        }
    }
    rest_kb[0] = sp_proc_status_kb(broker, "VmRSS");
    if (rest_kb[1] <= 0 || rest_kb[2] <= 0) {
        s_close_watch(&w);
        spt_stop(broker);
        cr_assert_fail("the workers did not start");
    }
    char events_ep[SP_ENDPOINT_MAX];
    snprintf(events_ep, sizeof events_ep, "%s", w.hdr->ep_events);

    pid_t flooder = fork();
    cr_assert(flooder >= 0);
    if (flooder == 0) {
        s_subscription_flooder(events_ep, 10000);
    }
    sp_sub_t *honest = sp_sub_new(events_ep, NULL, NULL);
    cr_assert_not_null(honest);
    const char *load[] = {
        spt_bin("producer"), "--instance", inst, "--duration", "3s", "--rate", "200", NULL};
    pid_t producer = -1;

    s_honest_t h = {0};
    long peak_kb[3] = {rest_kb[0], rest_kb[1], rest_kb[2]};
    uint8_t buf[SP_EVENTS_MSG_MAX];
    uint64_t start = sp_now_ns(), end = start + (uint64_t)secs * S_NS_PER_S;
    uint64_t last_heard = start, next_sample = start;
    while (sp_now_ns() < end) {
        uint64_t now = sp_now_ns();
        if (producer < 0 && now - start > S_NS_PER_S) {
            producer = spt_spawn(load, "/dev/null"); /* events, mid-flood */
            cr_assert(producer > 0);
        }
        if (now >= next_sample) {
            pid_t pids[3] = {broker, workers[0], workers[1]};
            for (int i = 0; i < 3; i++) {
                long kb = sp_proc_status_kb(pids[i], "VmRSS");
                peak_kb[i] = kb > peak_kb[i] ? kb : peak_kb[i];
            }
            next_sample = now + SAMPLE_MS * 1000000ull;
        }
        int n = sp_sub_recv(honest, buf, sizeof buf, SAMPLE_MS);
        now = sp_now_ns();
        sp_msg_hdr_t hdr;
        if (n > 0 && sp_wire_check(buf, (size_t)n, &hdr) == 0) {
            if (now - last_heard > h.longest_silence_ns) {
                h.longest_silence_ns = now - last_heard;
            }
            last_heard = now;
            h.events_msgs += hdr.kind == SP_MSG_EVENTS;
            h.heartbeats += hdr.kind == SP_MSG_HEARTBEAT;
        }
    }
    kill(flooder, SIGKILL);
    waitpid(flooder, NULL, 0);
    if (producer > 0) {
        cr_expect_eq(spt_wait(producer, SP_TEST_WAIT_MS), 0, "producer failed");
    }
    sp_sub_destroy(&honest);

    static const char *const who[3] = {"broker", "worker 1", "worker 2"};
    for (int i = 0; i < 3; i++) {
        if (S_CHECK_RSS) {
            cr_expect(peak_kb[i] - rest_kb[i] <= SP_FLOOD_RSS_MAX_KB,
                      "%s: %ld KiB at rest, %ld KiB under the flood (limit +%d)", who[i],
                      rest_kb[i], peak_kb[i], SP_FLOOD_RSS_MAX_KB);
        }
    }
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(atomic_load(&w.hdr->worker[i].restarts), 0, "worker %d was restarted", i + 1);
        cr_expect_eq((pid_t)atomic_load(&w.hdr->worker[i].pid), workers[i],
                     "worker %d is another process", i + 1);
    }
    /* heartbeats every SP_HEARTBEAT_MS from each worker, and the events of
     * the producer's orders */
    cr_expect_gt(h.events_msgs, 0, "the other monitor received no events");
    cr_expect_gt(h.heartbeats, secs * 2, "the other monitor received %u heartbeats in %us",
                 h.heartbeats, secs);
    cr_expect_lt(h.longest_silence_ns, 2 * S_NS_PER_S, "the other monitor heard nothing for %.1f s",
                 (double)h.longest_silence_ns / 1e9);
    cr_log_info("subscription flood (%s) %us: resting/peak memory broker %ld/%ld KiB, workers "
                "%ld/%ld and %ld/%ld KiB; the other monitor: %u event messages, %u heartbeats, "
                "at most %.2f s silent",
                tcp ? "tcp" : "ipc", secs, rest_kb[0], peak_kb[0], rest_kb[1], peak_kb[1],
                rest_kb[2], peak_kb[2], h.events_msgs, h.heartbeats,
                (double)h.longest_silence_ns / 1e9);
    s_close_watch(&w);
    int status = spt_stop(broker);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker did not stop cleanly");
    cr_expect_not(spt_leftovers(inst));
}

Test(flood, ipc_subscription_flood_is_bounded_and_others_keep_receiving, .timeout = 120)
{
    s_subscription_flood(false);
}

Test(flood, tcp_subscription_flood_is_bounded_and_others_keep_receiving, .timeout = 120)
{
    s_subscription_flood(true);
}
