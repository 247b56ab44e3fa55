/*
 * test_worker — the inventory worker as a role object, driven in the test's
 * own process: sp_worker_new refuses a bad configuration with its exact code
 * and holds nothing after a refusal; a worker added by hand to a running
 * shop takes its slot, beats its heart, stops on its flag and frees the slot
 * on destroy; a worker whose broker dies stops by itself and says so; and
 * the workers an in-process broker runs as threads answer every order of a
 * load with their counters adding up to it; order messages of one producer
 * that wait together are journaled with one write and answered in order.
 * (The binary's flags are
 * test_pipeline's; crashes inside the commit, test_recover's and chaos's.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_broker.h"
#include "sp_error.h"
#include "sp_events.h"
#include "sp_hello.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_sys.h"
#include "sp_loadgen.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"
#include "sp_transport.h"
#include "sp_wire.h"
#include "sp_worker.h"

#define W_PRODUCTS 6
#define W_STOCK    100000
#define W_WHY      512
#define W_OPEN_MS  300 /* how long a worker waits for an instance that is not there */

Test(worker, destroy_is_null_safe_and_nulls_the_pointer)
{
    sp_worker_destroy(NULL);
    sp_worker_t *w = NULL;
    sp_worker_destroy(&w);
    cr_expect_null(w);
}

Test(worker, a_worker_id_outside_the_slots_is_a_usage_error)
{
    const uint32_t bad[] = {0, SP_WORKERS_MAX + 1};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sp_worker_cfg_t cfg = {.instance = "sp-wid", .worker_id = bad[i], .sync = -1};
        static char sentinel;
        sp_worker_t *w = (sp_worker_t *)&sentinel; /* must come back NULL */
        char why[W_WHY] = "";
        cr_expect_eq(sp_worker_new(&w, &cfg, why, sizeof why), SP_E_USAGE);
        cr_expect_null(w);
        char expect[64];
        snprintf(expect, sizeof expect, "worker id %u is not within 1..%d", bad[i], SP_WORKERS_MAX);
        cr_expect_str_eq(why, expect);
    }
}

Test(worker, a_bad_instance_name_is_a_usage_error)
{
    sp_worker_cfg_t cfg = {.instance = "no spaces allowed", .worker_id = 1, .sync = -1};
    sp_worker_t *w = NULL;
    char why[W_WHY] = "";
    cr_expect_lt(sp_worker_new(&w, &cfg, why, sizeof why), 0);
    cr_expect_null(w);
    cr_expect(strstr(why, "bad instance name 'no spaces allowed'") != NULL, "%s", why);
}

Test(worker, an_instance_that_is_not_running_is_named_after_the_wait, .timeout = 30)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "wnone");
    sp_worker_cfg_t cfg = {.instance = inst, .worker_id = 1, .sync = -1, .open_ms = W_OPEN_MS};
    sp_worker_t *w = NULL;
    char why[W_WHY] = "";
    uint64_t t0 = sp_now_ns();
    cr_expect_lt(sp_worker_new(&w, &cfg, why, sizeof why), 0);
    uint64_t waited_ms = (sp_now_ns() - t0) / SP_NS_PER_MS;
    cr_expect_null(w);
    cr_expect(strstr(why, "cannot open table") != NULL && strstr(why, inst) != NULL, "%s", why);
    cr_expect_lt(waited_ms, SP_OPEN_TIMEOUT_MS, "open_ms bounds the wait (waited %llu ms)",
                 (unsigned long long)waited_ms);
    cr_expect_not(spt_leftovers(inst));
}

/* A worker run on a thread of the test, until its stop flag. */
typedef struct {
    sp_worker_t *w;
    atomic_bool stop;
    int rc;
    char why[W_WHY];
} w_runner_t;

static void *s_run(void *arg)
{
    w_runner_t *r = arg;
    r->rc = sp_worker_run(r->w, r->why, sizeof r->why);
    return NULL;
}

/* The instance's table, mapped read-only. */
static sp_table_t *s_table(const char *inst)
{
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, inst, NULL), 0);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    return t;
}

/* Waits up to SP_TEST_WAIT_MS for the slot's heartbeat to pass `after`. */
static bool s_beats_after(const sp_worker_slot_t *slot, uint64_t after)
{
    uint64_t deadline = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (sp_now_ns() < deadline) {
        if (atomic_load(&slot->heartbeat_ns) > after) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

/* Makes worker 2 of `inst` in this process and runs it on thread *th
 * until r->stop; its events wait up to hold_ms for company (0: the
 * default). */
static void s_start_worker2(w_runner_t *r, const char *inst, int hold_ms, pthread_t *th)
{
    sp_worker_cfg_t cfg = {
        .instance = inst, .worker_id = 2, .sync = -1, .stop = &r->stop, .events_hold_ms = hold_ms};
    char why[W_WHY] = "";
    cr_assert_eq(sp_worker_new(&r->w, &cfg, why, sizeof why), 0, "%s", why);
    cr_assert_eq(pthread_create(th, NULL, s_run, r), 0);
}

/* The pid of the slot's worker once it runs (waits up to SP_TEST_WAIT_MS:
 * the broker is ready before its worker has taken its slot). */
static pid_t s_running_pid(const sp_worker_slot_t *slot)
{
    uint64_t deadline = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (atomic_load(&slot->state) != SP_PUB_RUNNING && sp_now_ns() < deadline) {
        usleep(1000);
    }
    cr_assert_eq(atomic_load(&slot->state), SP_PUB_RUNNING, "the broker's worker never ran");
    pid_t pid = (pid_t)atomic_load(&slot->pid);
    cr_assert_gt(pid, 0);
    return pid;
}

/* Waits up to SP_TEST_WAIT_MS for process `pid` (not our child) to be gone
 * or a zombie. */
static bool s_gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    uint64_t deadline = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
    for (;;) {
        FILE *f = fopen(path, "r");
        char state = 'Z';
        if (f != NULL) {
            /* "pid (comm) S ...": the state follows the last ')' */
            char line[512];
            if (fgets(line, sizeof line, f) != NULL && strrchr(line, ')') != NULL) {
                state = strrchr(line, ')')[2];
            }
            fclose(f);
        }
        if (state == 'Z' || state == 'X') {
            return true;
        }
        if (sp_now_ns() >= deadline) {
            return false;
        }
        usleep(10000);
    }
}

Test(worker, an_added_worker_takes_its_slot_beats_stops_on_its_flag_and_frees_it, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "wadd");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "mq", 1, W_PRODUCTS, W_STOCK),
              "broker did not become ready");
    sp_table_t *t = s_table(inst);
    const sp_worker_slot_t *slot = &sp_table_hdr(t)->worker[1]; /* worker 2: ours */

    w_runner_t r = {.rc = 1};
    sp_worker_cfg_t cfg = {.instance = inst, .worker_id = 2, .sync = -1, .stop = &r.stop};
    char why[W_WHY] = "";
    cr_assert_eq(sp_worker_new(&r.w, &cfg, why, sizeof why), 0, "%s", why);
    cr_expect_eq(atomic_load(&slot->pid), getpid(), "new takes the slot");
    const sp_worker_stats_t *st = sp_worker_stats(r.w);
    cr_expect_eq(st->msgs + st->events + st->invalid_msgs + st->result_drops, 0);

    uint64_t before = sp_now_ns();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_run, &r), 0);
    cr_expect(s_beats_after(slot, before), "the running worker beats its heart in its slot");
    cr_expect_eq(atomic_load(&slot->state), SP_PUB_RUNNING);

    uint64_t t0 = sp_now_ns();
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    uint64_t stop_ms = (sp_now_ns() - t0) / SP_NS_PER_MS;
    cr_expect_eq(r.rc, 0, "%s", r.why);
    cr_expect_lt(stop_ms, SP_TEST_WAIT_MS, "the flag stops the run (%llu ms)",
                 (unsigned long long)stop_ms);
    cr_expect_eq(atomic_load(&slot->state), SP_PUB_STOPPING);
    cr_expect_eq(atomic_load(&slot->pid), getpid(), "the slot is ours until destroy");
    sp_worker_destroy(&r.w);
    cr_expect_null(r.w);
    cr_expect_eq(atomic_load(&slot->pid), 0, "destroy frees the slot");
    sp_table_close(&t);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

Test(worker, a_worker_whose_broker_dies_stops_and_names_it, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "wgone");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "mq", 1, W_PRODUCTS, W_STOCK),
              "broker did not become ready");
    w_runner_t r = {.rc = 1};
    pthread_t th;
    s_start_worker2(&r, inst, 0, &th);
    /* the broker's own worker, which outlives it for a moment */
    sp_table_t *t = s_table(inst);
    pid_t own = s_running_pid(&sp_table_hdr(t)->worker[0]);
    sp_table_close(&t);

    kill(shop.broker, SIGKILL);
    cr_expect_eq(spt_wait(shop.broker, SP_TEST_WAIT_MS), -1, "killed");
    pthread_join(th, NULL); /* bounded by the test's timeout: the run must end by itself */
    cr_expect_eq(r.rc, SP_E_STOPPED, "%s", r.why);
    char expect[64];
    snprintf(expect, sizeof expect, "broker pid %d is gone", (int)shop.broker);
    cr_expect(strstr(r.why, expect) != NULL, "%s", r.why);
    sp_worker_destroy(&r.w);

    /* the dead broker's own worker goes the same way (and says so before
     * the test ends, not after the suite's closing line); then clean up */
    cr_expect(s_gone(own), "the dead broker's worker (pid %d) did not stop", (int)own);
    const char *clean[] = {spt_bin("broker"), "--instance", inst, "--clean", NULL};
    char *out = NULL;
    uint64_t deadline = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (spt_leftovers(inst) && sp_now_ns() < deadline) {
        spt_run(clean, SP_TEST_WAIT_MS, &out);
        free(out);
        out = NULL;
        if (spt_leftovers(inst)) {
            usleep(100000); /* --clean waits for nothing: its worker may still be going */
        }
    }
    cr_expect_not(spt_leftovers(inst), "%s cleaned", inst);
    unlink(shop.catalogue);
}

#define W_GROUP_MSGS   5  /* messages waiting at once (an mq path holds 10) */
#define W_GROUP_ORDERS 10 /* orders in each */

/* Opens a producer link to the shop's order path (`transport`) and takes
 * an id by HELLO. */
static sp_link_t *s_hello_producer(const sp_names_t *names, sp_table_t *t, const char *transport,
                                   uint32_t *id)
{
    sp_link_cfg_t lc = {.role = SP_LINK_PRODUCER,
                        .transport = sp_transport_find(transport),
                        .names = names,
                        .endpoint = sp_table_hdr(t)->ep_orders,
                        .max_msg = sp_wire_msg_size(SP_MSG_ORDERS, W_GROUP_ORDERS),
                        .reply_msg = sp_wire_msg_size(SP_MSG_RESULTS, W_GROUP_ORDERS)};
    char why[W_WHY] = "";
    sp_link_t *link = NULL;
    cr_assert_eq(sp_link_open(&link, &lc, why, sizeof why), 0, "%s", why);
    sp_hello_t h = {.rev = SP_HELLO_REV,
                    .op = SP_HELLO_OPEN,
                    .pid = (uint32_t)getpid(),
                    .reply_tag = sp_link_reply_tag(link),
                    .hello_id = sp_now_ns()};
    uint8_t buf[SP_WELCOME_MSG_MAX + SP_WIRE_HDR_SIZE + W_GROUP_ORDERS * SP_WIRE_RESULT_SIZE];
    sp_welcome_t w;
    cr_assert_eq(sp_hello_exchange(link, &h, buf, sizeof buf, SP_TEST_WAIT_MS, &w, why, sizeof why),
                 0, "%s", why);
    cr_assert_eq(w.status, SP_HELLO_OK);
    cr_assert_eq(sp_link_adopt(link, w.producer_id, why, sizeof why), 0, "%s", why);
    *id = w.producer_id;
    return link;
}

/* A shop whose own worker is stopped (SIGSTOP), and worker 2 of this
 * process, which answered one producer's HELLO and stopped: orders queued
 * now wait together until s_held_run. */
typedef struct {
    char inst[64];
    spt_shop_t shop;
    sp_table_t *t;
    pid_t first; /* the broker's own worker, stopped */
    w_runner_t r;
    pthread_t th;
    sp_link_t *link; /* the producer's */
    uint32_t id;
} w_held_t;

/* Sets *x up over `transport`; worker 2's events wait up to hold_ms for
 * company (0: the default). */
static void s_held_start(w_held_t *x, const char *prefix, const char *transport, int hold_ms)
{
    /* the broker's own worker is stopped for the test: it must not be
     * taken for hung meanwhile */
    setenv("SP_WORKER_SILENT_MS", "60000", 1);
    spt_instance(x->inst, sizeof x->inst, prefix);
    cr_assert(spt_shop_start(&x->shop, x->inst, transport, 1, W_PRODUCTS, W_STOCK),
              "broker did not become ready");
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, x->inst, NULL), 0);
    x->t = s_table(x->inst);
    x->first = s_running_pid(&sp_table_hdr(x->t)->worker[0]);
    cr_assert_eq(kill(x->first, SIGSTOP), 0);
    x->r.rc = 1;
    s_start_worker2(&x->r, x->inst, hold_ms, &x->th);
    x->link = s_hello_producer(&names, x->t, transport, &x->id);
    atomic_store(&x->r.stop, true);
    pthread_join(x->th, NULL);
    cr_expect_eq(x->r.rc, 0, "%s", x->r.why);
}

/* Queues `msgs` order messages of W_GROUP_ORDERS purchases each, seq 1.. */
static void s_held_queue(w_held_t *x, unsigned msgs)
{
    uint8_t msg[SP_WIRE_HDR_SIZE + W_GROUP_ORDERS * SP_WIRE_ORDER_SIZE];
    for (uint32_t m = 0; m < msgs; m++) {
        for (uint32_t i = 0; i < W_GROUP_ORDERS; i++) {
            sp_order_t o = {.type = SP_ORDER_PURCHASE,
                            .producer_id = x->id,
                            .seq = 1 + m * W_GROUP_ORDERS + i,
                            .product_id = 1 + i % W_PRODUCTS,
                            .quantity = 1};
            sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, i), &o);
        }
        sp_wire_put_hdr(msg, SP_MSG_ORDERS, W_GROUP_ORDERS, x->id, m + 1);
        cr_assert_eq(sp_link_send(x->link, msg, sizeof msg, NULL, SP_TEST_WAIT_MS), 0);
    }
}

/* Runs worker 2 again, on what waits. */
static void s_held_run(w_held_t *x)
{
    atomic_store(&x->r.stop, false);
    cr_assert_eq(pthread_create(&x->th, NULL, s_run, &x->r), 0);
}

/* Stops worker 2, which handled `msgs` order messages, and the shop. */
static void s_held_stop(w_held_t *x, unsigned msgs)
{
    atomic_store(&x->r.stop, true);
    pthread_join(x->th, NULL);
    cr_expect_eq(x->r.rc, 0, "%s", x->r.why);
    cr_expect_eq(sp_worker_stats(x->r.w)->msgs, msgs);
    sp_worker_destroy(&x->r.w);
    sp_link_close(&x->link);
    kill(x->first, SIGCONT);
    sp_table_close(&x->t);
    const char *bad = spt_shop_stop(&x->shop);
    cr_expect_null(bad, "%s", bad);
}

Test(worker, order_messages_of_one_producer_waiting_together_are_journaled_in_one_write,
     .timeout = 60)
{
    w_held_t x = {0};
    s_held_start(&x, "wgrp", "mq", 0);
    s_held_queue(&x, W_GROUP_MSGS);

    /* the journal's write() calls from here on (counted, none failing) */
    sp_sys_fail_nth(SP_SYS_WRITE, 0, 0);
    s_held_run(&x);
    uint64_t next_seq = 1;
    for (unsigned m = 0; m < W_GROUP_MSGS; m++) {
        uint8_t in[SP_WIRE_HDR_SIZE + W_GROUP_ORDERS * SP_WIRE_RESULT_SIZE];
        sp_route_t route;
        int n = sp_link_recv(x.link, in, sizeof in, &route, SP_TEST_WAIT_MS);
        cr_assert_gt(n, 0, "answer %u: %s", m + 1, sp_strerror(n));
        sp_msg_hdr_t h;
        cr_assert_eq(sp_wire_check(in, (size_t)n, &h), 0);
        cr_assert_eq(h.kind, SP_MSG_RESULTS);
        cr_assert_eq(h.count, W_GROUP_ORDERS);
        for (unsigned i = 0; i < h.count; i++) {
            sp_result_t res;
            sp_wire_get_result(sp_wire_crec(in, SP_MSG_RESULTS, i), &res);
            cr_expect_eq(res.seq, next_seq, "the answers come in the order sent");
            cr_expect_eq(res.status, SP_STATUS_ACCEPTED, "order %llu: status %u",
                         (unsigned long long)res.seq, res.status);
            next_seq++;
        }
    }
    unsigned long writes = sp_sys_calls(SP_SYS_WRITE);
    sp_sys_fail_off();
    cr_expect_eq(writes, 1, "%u waiting messages of one producer took %lu journal writes",
                 W_GROUP_MSGS, writes);
    s_held_stop(&x, W_GROUP_MSGS);
}

#define W_HELD_MSGS 40 /* order messages waiting at once: five full groups (a ring holds them) */

/* Order messages waiting for a worker are taken a group at a time (8), a
 * loop turn each, and their events wait for the next groups' while more
 * order messages wait: they go out together once none does.  So 40 waiting
 * messages make one EVENTS message, and one more for each heartbeat
 * meanwhile (a heartbeat first sends what waits; a worker beats on its
 * first turn), where a message per turn made five.  One message per group
 * cost the broker a zmq_poll turn each at full load. */
Test(worker, events_of_waiting_order_messages_share_an_events_message, .timeout = 60)
{
    /* worker 2 holds events longer than the test */
    w_held_t x = {0};
    s_held_start(&x, "wevt", "shm", 60000);

    /* a subscriber, joined once the broker's STATS reach it */
    sp_sub_t *sub = sp_sub_new(sp_table_hdr(x.t)->ep_events, NULL, NULL);
    cr_assert_not_null(sub);
    static uint8_t buf[SP_EVENTS_MSG_MAX];
    sp_msg_hdr_t h;
    bool joined = false;
    uint64_t deadline = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (!joined && sp_now_ns() < deadline) {
        int n = sp_sub_recv(sub, buf, sizeof buf, 100);
        joined = n > 0 && sp_wire_check(buf, (size_t)n, &h) == 0 && h.kind == SP_MSG_STATS;
    }
    cr_assert(joined, "no STATS from the broker");

    s_held_queue(&x, W_HELD_MSGS);
    uint64_t restart = sp_now_ns();
    s_held_run(&x);
    unsigned events = 0, msgs = 0, beats = 0;
    deadline = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (events < W_HELD_MSGS * W_GROUP_ORDERS && sp_now_ns() < deadline) {
        int n = sp_sub_recv(sub, buf, sizeof buf, 100);
        if (n <= 0 || sp_wire_check(buf, (size_t)n, &h) != 0 || h.sender != 2) {
            continue;
        }
        if (h.kind == SP_MSG_EVENTS) {
            events += h.count;
            msgs++;
        } else if (h.kind == SP_MSG_HEARTBEAT) {
            sp_heartbeat_t hb;
            sp_wire_get_heartbeat(sp_wire_crec(buf, SP_MSG_HEARTBEAT, 0), &hb);
            beats += hb.ts_ns >= restart; /* not the first run's */
        }
    }
    cr_expect_eq(events, W_HELD_MSGS * W_GROUP_ORDERS, "every purchase's event");
    cr_expect_leq(msgs, 1 + beats,
                  "%u waiting messages' events came in %u messages (%u heartbeats)", W_HELD_MSGS,
                  msgs, beats);
    cr_log_info("%u waiting messages' events came in %u EVENTS messages, %u heartbeats",
                W_HELD_MSGS, msgs, beats);
    /* (the answers past the reply ring's room were dropped: this producer
     * did not read; the events are the worker's whatever becomes of them) */
    s_held_stop(&x, W_HELD_MSGS);
    sp_sub_destroy(&sub);
}

/* --- workers as threads of an in-process broker -------------------------- */

#define W_THREADS 2
#define W_ORDERS  600

static struct {
    pthread_mutex_t lock;
    sp_worker_stats_t sum; /* what every worker thread counted */
    unsigned runs;
} s_seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int s_worker_thread(const char *instance, uint32_t worker_id, const atomic_bool *stop,
                           char *why, size_t cap)
{
    sp_worker_cfg_t cfg = {.instance = instance, .worker_id = worker_id, .sync = -1, .stop = stop};
    sp_worker_t *w = NULL;
    int rc = sp_worker_new(&w, &cfg, why, cap);
    if (rc < 0) {
        return rc;
    }
    rc = sp_worker_run(w, why, cap);
    const sp_worker_stats_t *st = sp_worker_stats(w);
    pthread_mutex_lock(&s_seen.lock);
    s_seen.sum.msgs += st->msgs;
    s_seen.sum.events += st->events;
    s_seen.sum.invalid_msgs += st->invalid_msgs;
    s_seen.sum.result_drops += st->result_drops;
    for (int i = 0; i < SP_STATUS_COUNT; i++) {
        s_seen.sum.orders[i] += st->orders[i];
    }
    s_seen.runs++;
    pthread_mutex_unlock(&s_seen.lock);
    sp_worker_destroy(&w);
    return rc;
}

typedef struct {
    sp_broker_t *b;
    sp_broker_stats_t st;
    int rc;
    char why[W_WHY];
} w_broker_t;

static void *s_broker_run(void *arg)
{
    w_broker_t *bt = arg;
    bt->rc = sp_broker_run(bt->b, &bt->st, bt->why, sizeof bt->why);
    return NULL;
}

Test(worker, threads_of_an_inproc_broker_answer_every_order_of_a_load, .timeout = 120)
{
    char inst[64], state[128], cat[128];
    spt_instance(inst, sizeof inst, "wthr");
    cr_assert(spt_tmpdir(state, sizeof state, "wthr"));
    spt_catalogue(cat, sizeof cat, W_PRODUCTS, W_STOCK);
    atomic_bool stop = false;
    sp_broker_cfg_t bcfg = {.instance = inst,
                            .catalogue = cat,
                            .state_dir = state,
                            .worker_thread = s_worker_thread,
                            .stop = &stop,
                            .workers = W_THREADS,
                            .sync = SP_SYNC_CAS,
                            .transport = sp_transport_find("zmq"),
                            .fresh = true};
    w_broker_t bt = {.rc = 1};
    cr_assert_eq(sp_broker_new(&bt.b, &bcfg, bt.why, sizeof bt.why), 0, "%s", bt.why);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_broker_run, &bt), 0);

    sp_load_cfg_t lc;
    sp_load_defaults(&lc);
    lc.instance = inst;
    lc.count = W_ORDERS;
    lc.threads = true;
    lc.restock_ratio = 0.5;
    sp_loadgen_t *lg = sp_loadgen_new(&lc);
    cr_assert_not_null(lg);
    char why[W_WHY] = "";
    int lrc = sp_loadgen_run(lg, why, sizeof why);
    atomic_store(&stop, true);
    pthread_join(th, NULL);
    cr_expect_eq(lrc, 0, "%s", why);
    cr_expect_eq(bt.rc, 0, "%s", bt.why);

    const sp_load_stats_t *ls = sp_loadgen_stats(lg);
    cr_expect_eq(sp_load_answered(ls), W_ORDERS);
    cr_expect_eq(ls->status[SP_STATUS_ACCEPTED], W_ORDERS, "plenty of stock: all accepted");
    cr_expect_eq(s_seen.runs, W_THREADS, "every worker thread ran and ended");
    uint64_t answered = 0;
    for (int i = 0; i < SP_STATUS_COUNT; i++) {
        answered += s_seen.sum.orders[i];
    }
    cr_expect_eq(answered, W_ORDERS, "the workers' counters add up to the load");
    cr_expect_eq(s_seen.sum.orders[SP_STATUS_ACCEPTED], W_ORDERS);
    cr_expect_eq(s_seen.sum.events, W_ORDERS, "one event per stock change");
    cr_expect_gt(s_seen.sum.msgs, 0);
    cr_expect_leq(s_seen.sum.msgs, W_ORDERS, "a message holds one order or more");
    cr_expect_eq(s_seen.sum.invalid_msgs, 0);
    cr_expect_eq(s_seen.sum.result_drops, 0);
    cr_expect_eq(bt.st.orders[SP_STATUS_ACCEPTED], W_ORDERS, "the broker counted the same");
    sp_loadgen_destroy(&lg);
    sp_broker_destroy(&bt.b);
    cr_expect_not(spt_leftovers(inst));
    unlink(cat);
    spt_rmtree(state);
}
