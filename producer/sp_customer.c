/*
 * sp_customer — one simulated customer: its schedule, its window of orders
 * in flight, resends and timeouts, the answers it counts (sp_customer.h).
 */
#include "sp_customer.h"

#include "sp_client.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_ledger.h"
#include "sp_link.h"
#include "sp_malformed.h"
#include "sp_rand.h"
#include "sp_shards.h"
#include "sp_signal.h"
#include "sp_table.h"
#include "sp_time.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#define SP_POLL_IDLE_MS      50 /* longest wait for results when nothing is due */
#define SP_TIMEOUT_SCAN_NS   (20 * SP_NS_PER_MS)
#define SP_PACE_NAP_US       200L  /* longest nap between paced orders (several lanes) */
#define SP_PACE_EARLY_US     50u   /* a paced wait ends this early (a timer's wake-up) */
#define SP_ROOM_WAIT_US      1000L /* a wait for answers that make room, in turn */
#define SP_US_PER_MS         1000L
#define SP_CUSTOMER_SLACK_NS 1000UL /* timer slack of a customer's thread */

#define SP_SHARD_SLICE_US 2000L /* a wait on links with no descriptor, each in turn */

/* One order in flight: its slot in its lane's window is seq % cfg->window. */
typedef struct {
    uint64_t seq;
    uint64_t sched_ns;
    uint64_t first_ns; /* first sent */
    uint64_t due_ns;   /* resend when still unanswered then */
    uint32_t product;
    uint32_t qty;
    uint16_t tries;  /* sends so far */
    uint16_t hold_s; /* reserve: hold seconds */
    uint8_t type;
    uint8_t live;
} sp_pending_t;

/* The customer's producer at one shard (an unsharded shop has one lane):
 * its client, its producer id there, its own order numbers, window and
 * ledger, and the message of orders being filled for it.  Orders never mix
 * lanes: producer ids and sequence numbers are the shard's. */
typedef struct {
    sp_client_t *client;
    /* the client's, borrowed for the hot path */
    int32_t broker_pid; /* 0: not on this host */
    sp_link_t *link;
    int fd; /* sp_link_wait_fd, or negative: none */
    uint32_t producer_id;
    uint32_t batch_no;
    sp_pending_t *slots;
    uint64_t outstanding;
    /* the most orders unanswered: the window, or what fills the reply
     * path's messages (sp_link_reply_room x batch), when that is less: a
     * worker drops results that find no room there */
    uint64_t most;
    /* the reply path's room in messages (sp_link_reply_room; 0: no fixed
     * bound), and the messages sent whose answer has not come: a new
     * message (an order message, a resend, an injected one that will be
     * answered) leaves only while msgs_out < room, however few orders
     * each carries */
    uint64_t room;
    uint64_t msgs_out;
    uint64_t next_seq; /* the next order number to use */
    uint64_t low;      /* no order below this one is unanswered */
    uint8_t *msg;
    size_t msg_cap;
    uint8_t *in;
    size_t in_cap;
    unsigned k;          /* orders in msg not sent yet */
    uint64_t first;      /* the seq of the first of them */
    sp_ledger_t *ledger; /* --ledger-out: one record per order outcome, or NULL */
    uint64_t heard_ns;   /* the last answer on this lane (or its start) */
    uint64_t gone_ns;    /* when its broker was first seen dead (local), or 0 */
} sp_lane_t;

typedef struct {
    const sp_load_cfg_t *cfg;
    sp_shards_t shards; /* the instances, and with more than one each one's range */
    sp_lane_t lane[SP_SHARDS_MAX];
    unsigned nlanes;
    uint64_t outstanding; /* over every lane */
    uint32_t *ids;        /* products present (in every shard), in id order */
    uint32_t nids;
    double *zipf_cdf;
    uint64_t rng;
    sp_load_stats_t *st;
    uint64_t *sold, *restocked;
    /* holds this customer got and has not bought or released yet */
    struct {
        uint32_t product, qty;
    } held[SP_CUSTOMER_HOLDS];
    unsigned nheld;
    /* an order made but not placed: its lane's window was full */
    sp_order_t stash;
    bool stashed;
    uint8_t *bad; /* --inject-malformed: the largest msg_cap + SP_MALFORMED_ROOM */
    size_t bad_cap;
    uint64_t bad_no;       /* malformed messages made so far */
    uint64_t msgs_sent;    /* order messages sent so far */
    uint64_t bad_answered; /* answers to injected orders */
    /* why the run stopped early: the lane whose broker is gone or silent */
    const sp_lane_t *lost;
    /* cfg->live: this customer's slot, its answers by latency so far and
     * when it publishes them next */
    sp_load_live_t *live;
    uint64_t lat[SP_LAT_BUCKETS];
    uint64_t live_due_ns;
} sp_cust_t;

/* Publishes what this customer has counted into its live slot (relaxed
 * stores: the ticker wants recent values, not a consistent cut). */
static void s_live_publish(sp_cust_t *c, uint64_t now)
{
    sp_load_live_t *lv = c->live;
    const sp_load_stats_t *st = c->st;
    uint64_t answered = sp_load_answered(st);
    atomic_store_explicit(&lv->sent, st->sent, memory_order_relaxed);
    atomic_store_explicit(&lv->answered, answered, memory_order_relaxed);
    atomic_store_explicit(&lv->accepted, st->status[SP_STATUS_ACCEPTED], memory_order_relaxed);
    atomic_store_explicit(&lv->timed_out, st->timed_out, memory_order_relaxed);
    atomic_store_explicit(&lv->in_flight, c->outstanding, memory_order_relaxed);
    for (unsigned b = 0; b < SP_LAT_BUCKETS; b++) {
        atomic_store_explicit(&lv->lat[b], c->lat[b], memory_order_relaxed);
    }
    c->live_due_ns = now + (uint64_t)SP_LOAD_LIVE_MS * SP_NS_PER_MS;
}

/* The lane of the shard that owns `product` (the only one when unsharded). */
static sp_lane_t *s_lane_of(sp_cust_t *c, uint32_t product)
{
    int at = c->nlanes > 1 ? sp_shards_owner(&c->shards, product) : 0;
    return &c->lane[at > 0 ? at : 0];
}

/* The product of the next order: uniform over the products present, or
 * Zipf-skewed by their rank in id order (a binary search of the CDF). */
static uint32_t s_pick_product(sp_cust_t *c)
{
    if (c->zipf_cdf == NULL) {
        return c->ids[sp_rand_next(&c->rng) % c->nids];
    }
    double u = sp_rand_unit(&c->rng) * c->zipf_cdf[c->nids - 1];
    uint32_t lo = 0, hi = c->nids - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->zipf_cdf[mid] < u) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return c->ids[lo];
}

/* The gap to this customer's next scheduled order: its share of the rate,
 * constant or exponentially distributed (Poisson arrivals). */
static uint64_t s_interarrival_ns(sp_cust_t *c)
{
    double rate = c->cfg->rate / c->cfg->customers;
    if (c->cfg->arrival == SP_ARRIVAL_POISSON) {
        return (uint64_t)(-log(sp_rand_unit(&c->rng)) / rate * 1e9);
    }
    return (uint64_t)(1e9 / rate);
}

static int s_cmp_id(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the products of every shard (and their Zipf CDF when asked).
 * Returns 0, SP_E_CSV_EMPTY, -ENOMEM or the snapshot's code (*why). */
static int s_products(sp_cust_t *c, char *why, size_t cap)
{
    for (unsigned i = 0; i < c->nlanes; i++) {
        const uint32_t *ids;
        uint32_t n;
        int rc = sp_client_products(c->lane[i].client, &ids, &n, why, cap);
        if (rc < 0) {
            return rc;
        }
        uint32_t *grown = realloc(c->ids, sizeof *c->ids * ((size_t)c->nids + n + 1));
        if (grown == NULL) {
            return -ENOMEM;
        }
        c->ids = grown;
        memcpy(c->ids + c->nids, ids, sizeof *ids * n);
        c->nids += n;
    }
    if (c->nids == 0) {
        return SP_E_CSV_EMPTY;
    }
    if (c->nlanes > 1) {
        qsort(c->ids, c->nids, sizeof *c->ids, s_cmp_id);
    }
    if (c->cfg->pick == SP_PICK_ZIPF) {
        c->zipf_cdf = malloc(sizeof *c->zipf_cdf * c->nids);
        if (c->zipf_cdf == NULL) {
            return -ENOMEM;
        }
        double acc = 0;
        for (uint32_t i = 0; i < c->nids; i++) {
            acc += 1.0 / pow((double)(i + 1), c->cfg->zipf_s);
            c->zipf_cdf[i] = acc;
        }
    }
    return 0;
}

/* Writes the buffered ledger records; a failure is counted (ledger_errors),
 * not fatal: the run goes on. */
static void s_ledger_flush(sp_cust_t *c, sp_lane_t *l)
{
    if (l->ledger != NULL && sp_ledger_flush(l->ledger) < 0) {
        c->st->ledger_errors++;
    }
}

/* Appends the outcome of one order (SP_STATUS_*, or SP_LEDGER_TIMED_OUT). */
static void s_ledger_put(sp_cust_t *c, sp_lane_t *l, const sp_pending_t *p, unsigned status,
                         uint32_t stock)
{
    if (l->ledger == NULL) {
        return;
    }
    sp_ledger_rec_t rec = {.producer_id = l->producer_id,
                           .type = p->type,
                           .status = (uint8_t)status,
                           .seq = p->seq,
                           .product_id = p->product,
                           .quantity = p->qty,
                           .stock_after = stock};
    if (sp_ledger_put(l->ledger, &rec) < 0) {
        c->st->ledger_errors++;
    }
}

/* Takes one result that came on lane l: the answer to an injected order,
 * the one outcome of an order in flight (a dedup record's answer counting
 * as its first copy's), or something to count as unexpected or late. */
static void s_on_result(sp_cust_t *c, sp_lane_t *l, const sp_result_t *r, uint64_t now)
{
    if (sp_malformed_seq(r->seq)) {
        /* the answer to an injected malformed order: it must be a refusal */
        c->bad_answered++;
        if (r->status == SP_STATUS_INVALID || r->status == SP_STATUS_UNKNOWN_PRODUCT) {
            c->st->malformed_refused++;
        } else {
            c->st->unexpected++;
        }
        return;
    }
    l->heard_ns = now;
    sp_pending_t *p = &l->slots[r->seq % c->cfg->window];
    if (r->producer_id != l->producer_id || r->status >= SP_STATUS_COUNT || r->seq == 0 ||
        r->seq >= l->next_seq) {
        c->st->unexpected++;
        return;
    }
    if (!p->live || p->seq != r->seq) {
        /* a second answer to an order already answered: the original and a
         * resent copy both got through */
        c->st->late++;
        return;
    }
    if (r->product_id != p->product) {
        c->st->unexpected++;
        return;
    }
    unsigned status = r->status;
    if (status == SP_STATUS_DUPLICATE) {
        if (r->original == SP_ORIGINAL_PENDING) {
            return; /* another copy is being applied: its answer will come */
        }
        c->st->duplicates++;
        if (r->original < SP_STATUS_COUNT) {
            status = r->original; /* the first copy's outcome is the order's */
        }
    }
    p->live = 0;
    l->outstanding--;
    c->outstanding--;
    c->st->status[status]++;
    s_ledger_put(c, l, p, status, r->stock_after);
    sp_hist_record(&c->st->latency, now > p->sched_ns ? now - p->sched_ns : 0);
    if (p->tries == 1 && p->first_ns >= p->sched_ns && r->applied_ns >= p->first_ns &&
        r->applied_ns <= now) {
        /* answered at its first send, on this host's clock */
        sp_hist_record(&c->st->leg[SP_LEG_LATE], p->first_ns - p->sched_ns);
        sp_hist_record(&c->st->leg[SP_LEG_OUT], r->applied_ns - p->first_ns);
        sp_hist_record(&c->st->leg[SP_LEG_BACK], now - r->applied_ns);
    }
    if (c->live != NULL) {
        c->lat[sp_lat_bucket(now > p->sched_ns ? now - p->sched_ns : 0)]++;
    }
    if (status == SP_STATUS_ACCEPTED) {
        if (p->type == SP_ORDER_PURCHASE || p->type == SP_ORDER_BUY_HELD) {
            c->st->units_sold += p->qty;
            if (c->sold) {
                c->sold[p->product] += p->qty;
            }
        } else if (p->type == SP_ORDER_RESTOCK) {
            c->st->units_restocked += p->qty;
            if (c->restocked) {
                c->restocked[p->product] += p->qty;
            }
        } else if (p->type == SP_ORDER_RESERVE && c->nheld < SP_CUSTOMER_HOLDS) {
            c->held[c->nheld].product = p->product;
            c->held[c->nheld++].qty = p->qty;
        }
    }
    c->st->end_ns = now;
}

/* Receives result messages on one lane for up to wait_us, then whatever
 * else is ready there; *got says whether anything came. */
static int s_collect_lane(sp_cust_t *c, sp_lane_t *l, long wait_us, bool *got)
{
    for (;;) {
        int n = sp_link_recv_us(l->link, l->in, l->in_cap, NULL, wait_us);
        if (n == SP_E_TIMEOUT || n == -EINTR || n == -EAGAIN) {
            return 0;
        }
        if (n < 0) {
            return n;
        }
        *got = true;
        uint64_t now = sp_now_ns();
        sp_msg_hdr_t h;
        bool valid = sp_wire_check(l->in, (size_t)n, &h) == 0;
        if (valid && h.kind == SP_MSG_WELCOME) {
            /* the answer to our HELLO sent again (SP_HELLO_RESEND_MS) */
        } else if (!valid || h.kind != SP_MSG_RESULTS) {
            c->st->unexpected++;
        } else {
            l->msgs_out -= l->msgs_out > 0; /* one answer, one message */
            for (unsigned i = 0; i < h.count; i++) {
                sp_result_t r;
                sp_wire_get_result(sp_wire_crec(l->in, SP_MSG_RESULTS, i), &r);
                s_on_result(c, l, &r, now);
            }
            s_ledger_flush(c, l);
        }
        wait_us = 0;
    }
}

/* Waits up to wait_ms for a result on any of several lanes, without
 * spinning: one poll(2) when every link has a descriptor, else a short
 * blocking receive on each in turn. */
static int s_wait_lanes(sp_cust_t *c, int wait_ms)
{
    bool polled = true;
    struct pollfd fds[SP_SHARDS_MAX];
    for (unsigned i = 0; i < c->nlanes; i++) {
        fds[i] = (struct pollfd){.fd = c->lane[i].fd, .events = POLLIN};
        polled = polled && c->lane[i].fd >= 0;
    }
    bool got = false;
    if (polled) {
        if (poll(fds, c->nlanes, wait_ms) < 0 && errno != EINTR) {
            return -errno;
        }
        for (unsigned i = 0; i < c->nlanes; i++) {
            int rc = s_collect_lane(c, &c->lane[i], 0, &got);
            if (rc < 0) {
                return rc;
            }
        }
        return 0;
    }
    uint64_t deadline = sp_now_ns() + (uint64_t)wait_ms * SP_NS_PER_MS;
    do {
        for (unsigned i = 0; i < c->nlanes && !got; i++) {
            int rc = s_collect_lane(c, &c->lane[i], SP_SHARD_SLICE_US, &got);
            if (rc < 0) {
                return rc;
            }
        }
    } while (!got && sp_now_ns() < deadline);
    return 0;
}

/* Receives result messages for up to wait_us microseconds, then whatever
 * else is ready, on every lane.  One lane waits to the microsecond where
 * its link can (sp_link_recv_us); several wait in whole milliseconds and
 * nap through a shorter wait. */
static int s_collect(sp_cust_t *c, long wait_us)
{
    bool got = false;
    if (c->nlanes == 1) {
        return s_collect_lane(c, &c->lane[0], wait_us, &got);
    }
    for (unsigned i = 0; i < c->nlanes; i++) {
        int rc = s_collect_lane(c, &c->lane[i], 0, &got);
        if (rc < 0) {
            return rc;
        }
    }
    if (got || wait_us == 0) {
        return 0;
    }
    if (wait_us < SP_US_PER_MS) {
        sp_sleep_ns((uint64_t)(wait_us < SP_PACE_NAP_US ? wait_us : SP_PACE_NAP_US) * SP_NS_PER_US);
        return 0;
    }
    return s_wait_lanes(c, (int)(wait_us / SP_US_PER_MS));
}

/* Whether lane l's reply path has room for the answer of one more message
 * (docs/PROTOCOL.md section 8: a worker drops an answer that finds none).
 * Answers that never come (a worker killed before it answered) would hold
 * the room forever: when no order waits for an answer, or once nothing was
 * heard for the order timeout, the count starts again. */
static bool s_room(const sp_cust_t *c, sp_lane_t *l, uint64_t now)
{
    if (l->room == 0 || l->msgs_out < l->room) {
        return true;
    }
    if (l->outstanding == 0) {
        /* nothing waits for an answer: what msgs_out still counts are
         * messages whose answer was lost with a worker killed before it
         * answered (their orders were answered through resends, or timed
         * out).  Counted on, they kept a customer from ever sending again
         * (make chaos over mq, SP_CRASH_COMMIT at point 1) */
        l->msgs_out = 0;
        l->heard_ns = now;
        return true;
    }
    if (now > l->heard_ns && now - l->heard_ns > (uint64_t)c->cfg->timeout_ms * SP_NS_PER_MS) {
        l->msgs_out = 0;
        return true;
    }
    return false;
}

/* Resends what is due on lane l, gives up on what is past the result
 * timeout.  Each copy of an order carries the same (producer, seq), so a
 * worker that finds it already applied answers with the first outcome
 * instead. */
static void s_retry(sp_cust_t *c, sp_lane_t *l, uint64_t now)
{
    const sp_load_cfg_t *cfg = c->cfg;
    uint64_t limit = (uint64_t)cfg->timeout_ms * SP_NS_PER_MS;
    unsigned k = 0;
    for (unsigned i = 0; i < cfg->window && l->outstanding > 0; i++) {
        sp_pending_t *p = &l->slots[i];
        if (!p->live) {
            continue;
        }
        /* the timeout before the resend time: with --retry 0 nothing is
         * ever due again, and the order must still time out */
        if (now > p->first_ns + limit) {
            p->live = 0; /* fate unknown: reported as timed out */
            l->outstanding--;
            c->outstanding--;
            c->st->timed_out++;
            s_ledger_put(c, l, p, SP_LEDGER_TIMED_OUT, 0);
            continue;
        }
        if (now < p->due_ns) {
            continue;
        }
        if (cfg->retry_ms == 0) {
            p->due_ns = UINT64_MAX;
            continue;
        }
        sp_order_t o = {.type = p->type,
                        .flags = SP_ORDER_F_RESENT,
                        .reserved = p->hold_s,
                        .producer_id = l->producer_id,
                        .seq = p->seq,
                        .product_id = p->product,
                        .quantity = p->qty,
                        .sched_ns = p->sched_ns};
        sp_wire_put_order(sp_wire_rec(l->msg, SP_MSG_ORDERS, k++), &o);
        p->tries++;
        p->due_ns = now + sp_client_retry_after_ns(cfg->retry_ms, p->tries);
        if (k == cfg->batch) {
            break; /* the rest next turn */
        }
    }
    if (k == 0) {
        return;
    }
    sp_wire_put_hdr(l->msg, SP_MSG_ORDERS, k, l->producer_id, l->batch_no++);
    int rc =
        sp_link_send(l->link, l->msg, sp_wire_msg_size(SP_MSG_ORDERS, k), NULL, SP_SEND_TIMEOUT_MS);
    if (rc == 0) {
        /* not counted in msgs_out, and sent without room: a resend takes
         * the place of the messages it repeats, whose answers are late or
         * were lost with a killed worker (a group of up to 8 messages at
         * once); every answer that comes still counts one off, so the
         * resends' answers pay the lost ones back.  Counted, the lost
         * answers filled the room and the resends waited for it until
         * their orders timed out (pipeline::mq_workers_killed_inside_the_
         * commit_lose_nothing) */
        c->st->retried += k;
    }
    /* a resend that did not leave is simply due again at its next time */
}

/* Sends one malformed message on lane l; a full path is waited out like
 * any other. */
static void s_inject(sp_cust_t *c, sp_lane_t *l)
{
    bool dead;
    uint64_t no = c->bad_no++;
    size_t len = sp_malformed_make(c->bad, l->msg_cap, no, l->producer_id, c->ids[no % c->nids],
                                   &l->batch_no, &c->rng, &dead);
    /* its answer (a dead-lettered one gets none) needs room like any */
    while (!dead && !s_room(c, l, sp_now_ns())) {
        if (s_collect(c, SP_ROOM_WAIT_US) < 0 || sp_signal_stopping()) {
            return;
        }
    }
    for (;;) {
        int rc = sp_link_send(l->link, c->bad, len, NULL, SP_SEND_TIMEOUT_MS);
        if (rc == 0) {
            break;
        }
        if (rc != SP_E_TIMEOUT && rc != -EINTR && rc != -EAGAIN) {
            return; /* not sent: not counted */
        }
        s_collect(c, 0);
        if (sp_signal_stopping()) {
            return;
        }
    }
    if (dead) {
        c->st->malformed_msgs++;
    } else {
        c->st->malformed_orders++;
        l->msgs_out++;
    }
}

/* Gives up the `k` orders of lane l from first_seq on that never left:
 * frees their slots and counts them. */
static void s_unsent(sp_cust_t *c, sp_lane_t *l, unsigned k, uint64_t first_seq)
{
    for (unsigned i = 0; i < k; i++) {
        l->slots[(first_seq + i) % c->cfg->window].live = 0;
    }
    l->outstanding -= k;
    c->outstanding -= k;
    c->st->send_failed += k;
}

/* Sends lane l's message of `k` orders, retrying while the path is full. */
static int s_send_batch(sp_cust_t *c, sp_lane_t *l, unsigned k, uint64_t first_seq)
{
    sp_wire_put_hdr(l->msg, SP_MSG_ORDERS, k, l->producer_id, l->batch_no++);
    size_t len = sp_wire_msg_size(SP_MSG_ORDERS, k);
    uint64_t since = sp_now_ns();
    for (;;) {
        int rc = sp_link_send(l->link, l->msg, len, NULL, SP_SEND_TIMEOUT_MS);
        if (rc == 0) {
            c->st->sent += k;
            l->msgs_out++;
            return 0;
        }
        /* a full path is back-pressure while the broker lives; when it is
         * gone nobody will ever drain it (orders sent into a queue its
         * successor replaces are lost to us): give up after the timeout */
        if (rc == SP_E_TIMEOUT &&
            sp_now_ns() - since > (uint64_t)c->cfg->timeout_ms * SP_NS_PER_MS &&
            l->broker_pid > 0 && !sp_pid_alive(l->broker_pid)) {
            rc = -EPIPE;
        }
        if (rc != SP_E_TIMEOUT && rc != -EINTR && rc != -EAGAIN) {
            s_unsent(c, l, k, first_seq); /* these orders never left */
            return rc;
        }
        /* back-pressure: keep draining results while we wait */
        s_collect(c, 0);
        if (sp_signal_stopping()) {
            s_unsent(c, l, k, first_seq);
            return SP_E_STOPPED;
        }
    }
}

/* Makes the next order (its lane fills in the producer id and seq). */
static void s_make_order(sp_cust_t *c, sp_order_t *o, uint64_t sched_ns)
{
    const sp_load_cfg_t *cfg = c->cfg;
    *o = (sp_order_t){.type = SP_ORDER_PURCHASE,
                      .product_id = s_pick_product(c),
                      .quantity = cfg->qty_min,
                      .sched_ns = sched_ns};
    if (cfg->qty_max > cfg->qty_min) {
        o->quantity += (uint32_t)(sp_rand_next(&c->rng) % (cfg->qty_max - cfg->qty_min + 1));
    }
    double u = sp_rand_unit(&c->rng);
    if (c->nheld > 0 && u < 0.5) {
        /* follow up a hold: mostly buy it, sometimes give it back, now and
         * then walk away (it expires); the hold's shard gets it, as the
         * producer that holds */
        c->nheld--;
        o->product_id = c->held[c->nheld].product;
        o->quantity = c->held[c->nheld].qty;
        double v = sp_rand_unit(&c->rng);
        o->type = v < 0.7 ? SP_ORDER_BUY_HELD : v < 0.9 ? SP_ORDER_RELEASE : 0;
        if (o->type == 0) {
            o->type = SP_ORDER_PURCHASE; /* walked away: an ordinary purchase instead */
        }
    } else if (cfg->hold_ratio > 0 && u < cfg->hold_ratio) {
        o->type = SP_ORDER_RESERVE;
        o->reserved = (uint16_t)cfg->hold_s;
    } else if (cfg->restock_ratio > 0 && sp_rand_unit(&c->rng) <= cfg->restock_ratio) {
        o->type = SP_ORDER_RESTOCK;
    }
}

/* Places order o on its lane, unless that lane's window (or the workers'
 * memory of it, or its reply path's room) is full: then it waits in the
 * stash and false is returned.  *filled says whether the lane's message is
 * now full. */
static bool s_place(sp_cust_t *c, sp_order_t *o, uint64_t now, bool *filled)
{
    const sp_load_cfg_t *cfg = c->cfg;
    sp_lane_t *l = s_lane_of(c, o->product_id);
    uint64_t seq = l->next_seq;
    sp_pending_t *p = &l->slots[seq % cfg->window];
    if (p->live || seq - l->low >= SP_DEDUP_WINDOW || l->outstanding >= l->most ||
        (l->k == 0 && !s_room(c, l, now))) {
        c->stash = *o;
        c->stashed = true;
        return false;
    }
    c->stashed = false;
    o->producer_id = l->producer_id;
    o->seq = seq;
    *p = (sp_pending_t){.seq = seq,
                        .sched_ns = o->sched_ns,
                        .first_ns = now,
                        .due_ns = now + sp_client_retry_after_ns(cfg->retry_ms, 1),
                        .product = o->product_id,
                        .qty = o->quantity,
                        .tries = 1,
                        .hold_s = o->reserved,
                        .type = o->type,
                        .live = 1};
    if (l->k == 0) {
        l->first = seq;
    }
    sp_wire_put_order(sp_wire_rec(l->msg, SP_MSG_ORDERS, l->k++), o);
    l->next_seq = seq + 1;
    l->outstanding++;
    c->outstanding++;
    c->st->scheduled++;
    *filled = l->k == cfg->batch;
    return true;
}

/* Sends every lane's filled message.  Returns 0, or the first send error
 * that ends the run (the other lanes' orders that never left are counted
 * as failed then). */
static int s_send_all(sp_cust_t *c)
{
    const sp_load_cfg_t *cfg = c->cfg;
    int rc = 0;
    for (unsigned i = 0; i < c->nlanes; i++) {
        sp_lane_t *l = &c->lane[i];
        unsigned k = l->k;
        l->k = 0;
        if (k == 0) {
            continue;
        }
        if (rc < 0) {
            s_unsent(c, l, k, l->first);
            continue;
        }
        int r = s_send_batch(c, l, k, l->first);
        if (r < 0 && r != SP_E_STOPPED) {
            rc = r;
            continue;
        }
        if (r == 0 && cfg->malformed_every > 0 && ++c->msgs_sent % cfg->malformed_every == 0) {
            s_inject(c, l);
        }
    }
    return rc;
}

/* Every order still waiting, on every lane, is given up: fate unknown,
 * counted (and written to the ledger) as timed out, so that sent =
 * answered + timed out stays exact when a run stops early. */
static void s_give_up(sp_cust_t *c)
{
    for (unsigned i = 0; i < c->nlanes; i++) {
        sp_lane_t *l = &c->lane[i];
        for (unsigned s = 0; s < c->cfg->window && l->outstanding > 0; s++) {
            sp_pending_t *p = &l->slots[s];
            if (p->live) {
                p->live = 0;
                l->outstanding--;
                c->outstanding--;
                c->st->timed_out++;
                s_ledger_put(c, l, p, SP_LEDGER_TIMED_OUT, 0);
            }
        }
    }
}

/* A customer gives up on a broker that is gone, as it gives up on one
 * order: its broker on this host has been dead for the result timeout
 * (a successor re-attaching in that time takes the orders up), or, on
 * another host, it has answered nothing for the result timeout while
 * orders were waiting.  Returns -EPIPE (c->lost says which lane) or 0. */
static int s_broker_check(sp_cust_t *c, uint64_t now)
{
    uint64_t limit = (uint64_t)c->cfg->timeout_ms * SP_NS_PER_MS;
    for (unsigned i = 0; i < c->nlanes; i++) {
        sp_lane_t *l = &c->lane[i];
        if (l->broker_pid > 0) {
            if (sp_pid_alive(l->broker_pid)) {
                l->gone_ns = 0;
            } else if (l->gone_ns == 0) {
                l->gone_ns = now;
            }
        }
        bool gone = l->gone_ns != 0 && now - l->gone_ns > limit;
        bool silent = l->broker_pid <= 0 && l->outstanding > 0 && now - l->heard_ns > limit;
        if (gone || silent) {
            c->lost = l;
            s_give_up(c);
            return -EPIPE;
        }
        if (l->outstanding == 0 && l->msgs_out == 0) {
            /* silence while nothing waits says nothing (and with messages
             * still counted, s_room's timeout must be able to pass) */
            l->heard_ns = now;
        }
    }
    return 0;
}

/* The customer's run: schedules orders into messages of up to cfg->batch
 * (one message per lane) while their windows have room, sends them,
 * collects results, resends and times out, until the quota, the duration
 * or a stop; then waits for what is still outstanding.  Returns 0, or the
 * send or receive error that ended it early. */
static int s_customer_loop(sp_cust_t *c, uint64_t quota)
{
    const sp_load_cfg_t *cfg = c->cfg;
    bool fast = cfg->arrival == SP_ARRIVAL_FAST || cfg->rate <= 0;
    uint64_t start = sp_now_ns();
    uint64_t end = cfg->duration_s > 0 ? start + (uint64_t)(cfg->duration_s * 1e9) : UINT64_MAX;
    uint64_t next_sched = start;
    for (unsigned i = 0; i < c->nlanes; i++) {
        c->lane[i].next_seq = 1;
        c->lane[i].low = 1;
        c->lane[i].heard_ns = start;
    }
    uint64_t room = (uint64_t)cfg->window * c->nlanes;
    uint64_t next_scan = start + SP_TIMEOUT_SCAN_NS;
    uint64_t done_ns = 0; /* when every real order was answered */
    /* how early a paced wait ends (see below): at most a quarter of the
     * mean gap between orders, so that looking costs little of a core */
    uint64_t early_us = SP_PACE_EARLY_US;
    if (!fast && cfg->rate / cfg->customers > 0) {
        uint64_t gap_us = (uint64_t)(1e6 / (cfg->rate / cfg->customers));
        early_us = gap_us / 4 < early_us ? gap_us / 4 : early_us;
    }
    c->st->start_ns = start;
    int rc = 0;
    for (;;) {
        uint64_t now = sp_now_ns();
        if (c->live != NULL && now >= c->live_due_ns) {
            s_live_publish(c, now);
        }
        bool done = sp_signal_stopping() || (quota > 0 && c->st->scheduled >= quota) ||
                    (fast ? now >= end : next_sched >= end && !c->stashed);
        for (unsigned i = 0; i < c->nlanes; i++) {
            sp_lane_t *l = &c->lane[i];
            while (l->low < l->next_seq && !(l->slots[l->low % cfg->window].live &&
                                             l->slots[l->low % cfg->window].seq == l->low)) {
                l->low++;
            }
        }
        bool full = false;
        while (!done && !full && (fast || c->stashed || next_sched <= now)) {
            sp_order_t o;
            if (c->stashed) {
                o = c->stash;
                if (fast) {
                    o.sched_ns = now;
                }
            } else {
                s_make_order(c, &o, fast ? now : next_sched);
                if (!fast) {
                    next_sched += s_interarrival_ns(c);
                }
            }
            if (!s_place(c, &o, now, &full)) {
                break; /* its lane's window is full (ours, or the workers' memory of us) */
            }
            done = (quota > 0 && c->st->scheduled >= quota) || (!fast && next_sched >= end);
        }
        rc = s_send_all(c);
        if (rc < 0) {
            break;
        }
        if (done && c->outstanding == 0) {
            /* injected orders are answered too: wait for them, within the
             * timeout (an answer never coming is the refusal we count) */
            if (done_ns == 0) {
                done_ns = now;
            }
            if (c->bad_answered >= c->st->malformed_orders ||
                now - done_ns > (uint64_t)cfg->timeout_ms * SP_NS_PER_MS) {
                break;
            }
        }
        long wait_us = SP_POLL_IDLE_MS * SP_US_PER_MS;
        if (!done && !c->stashed && c->outstanding < room) {
            if (fast) {
                wait_us = 0;
            } else {
                /* wait for results until the next order is due, to the
                 * microsecond where the link can: a result is taken the
                 * moment it comes.  A timed wait ends late by the kernel's
                 * wake-up (tens of microseconds on a VM), so it ends that
                 * much early, and the last stretch is looked at without
                 * waiting: the order leaves on time */
                uint64_t t = sp_now_ns();
                uint64_t until_us = next_sched > t ? (next_sched - t) / SP_NS_PER_US : 0;
                until_us = until_us > early_us ? until_us - early_us : 0;
                wait_us = until_us < (uint64_t)wait_us ? (long)until_us : wait_us;
            }
        }
        rc = s_collect(c, wait_us);
        if (rc < 0) {
            break;
        }
        now = sp_now_ns();
        if (now >= next_scan) {
            for (unsigned i = 0; i < c->nlanes; i++) {
                s_retry(c, &c->lane[i], now);
            }
            next_scan = now + SP_TIMEOUT_SCAN_NS;
            rc = s_broker_check(c, now);
            if (rc < 0) {
                break;
            }
        }
    }
    return rc;
}

/* Flushes and closes the ledgers, closes the clients, frees the rest. */
static void s_cust_free(sp_cust_t *c)
{
    for (unsigned i = 0; i < c->nlanes; i++) {
        sp_lane_t *l = &c->lane[i];
        if (l->ledger != NULL) {
            s_ledger_flush(c, l);
            sp_ledger_close(&l->ledger);
        }
        sp_client_close(&l->client);
        free(l->slots);
    }
    free(c->ids);
    free(c->zipf_cdf);
    free(c->bad);
    free(c->sold);
    free(c->restocked);
}

/* Connects to every shard as a new producer and takes each client's link
 * and buffers; with more than one, learns their ranges and refuses ranges
 * that overlap. */
static int s_connect(sp_cust_t *c, char *why, size_t cap)
{
    const sp_load_cfg_t *cfg = c->cfg;
    /* one name is the shop as it always was: its errors unchanged */
    bool list = cfg->instance != NULL && strchr(cfg->instance, ',') != NULL;
    if (list) {
        int rc = sp_shards_parse(&c->shards, cfg->instance, why, cap);
        if (rc < 0) {
            return rc;
        }
    }
    unsigned n = list ? c->shards.n : 1;
    for (unsigned i = 0; i < n; i++) {
        sp_lane_t *l = &c->lane[i];
        l->fd = -1;
        sp_client_cfg_t cc = {.instance = list ? c->shards.name[i] : cfg->instance,
                              .connect = cfg->connect,
                              .snapshot = cfg->snapshot,
                              .server_cert = cfg->server_cert,
                              .batch = cfg->batch,
                              .timeout_ms = cfg->timeout_ms,
                              .cert = cfg->cert};
        int rc = sp_client_open(&l->client, &cc, why, cap);
        if (rc < 0) {
            if (list) {
                char inner[384];
                snprintf(inner, sizeof inner, "%s", why);
                sp_why(why, cap, "shard '%s': %s", c->shards.name[i], inner);
            }
            return rc;
        }
        c->nlanes = i + 1;
        l->broker_pid = sp_client_broker_pid(l->client);
        l->link = sp_client_link(l->client);
        l->fd = sp_link_wait_fd(l->link);
        long room = sp_link_reply_room(l->link);
        l->room = room > 0 ? (uint64_t)room : 0;
        l->most = cfg->window;
        if (room > 0 && (uint64_t)room * cfg->batch < l->most) {
            l->most = (uint64_t)room * cfg->batch;
        }
        l->producer_id = sp_client_producer_id(l->client);
        l->msg = sp_client_orders_buf(l->client, &l->msg_cap);
        l->in = sp_client_results_buf(l->client, &l->in_cap);
        l->slots = calloc(cfg->window, sizeof *l->slots);
        if (l->slots == NULL) {
            return -ENOMEM;
        }
        if (list) {
            sp_shards_set(&c->shards, i, sp_client_welcome(l->client));
        }
        c->bad_cap = l->msg_cap > c->bad_cap ? l->msg_cap : c->bad_cap;
    }
    if (list) {
        int rc = sp_shards_check(&c->shards, why, cap);
        if (rc < 0) {
            return rc;
        }
    }
    if (cfg->malformed_every > 0) {
        /* room for the longest malformed message, whatever the batch */
        c->bad = malloc(c->bad_cap + SP_MALFORMED_ROOM);
        if (c->bad == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* --ledger-out DIR: one writer per lane; a sharded shop's go to
 * DIR/<shard>/, since producer ids are per shard. */
static int s_ledgers(sp_cust_t *c, char *why, size_t cap)
{
    for (unsigned i = 0; i < c->nlanes; i++) {
        char dir[SP_PATH_MAX + SP_INSTANCE_NAME_MAX + 2];
        snprintf(dir, sizeof dir, "%s", c->cfg->ledger_dir);
        if (c->nlanes > 1) {
            snprintf(dir, sizeof dir, "%s/%s", c->cfg->ledger_dir, c->shards.name[i]);
            if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                int rc = -errno;
                sp_why(why, cap, "cannot create the ledger directory %s: %s", dir, strerror(errno));
                return rc;
            }
        }
        int rc = sp_ledger_open(&c->lane[i].ledger, dir, c->lane[i].producer_id, why, cap);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int sp_customer_run(const sp_load_cfg_t *cfg, unsigned index, uint64_t quota, sp_load_stats_t *st,
                    uint64_t **sold, uint64_t **restocked, uint32_t *capacity, char *why,
                    size_t cap)
{
    sp_cust_t c = {.cfg = cfg, .st = st};
    sp_load_stats_init(st);
    *sold = *restocked = NULL;
    *capacity = 0;
    int rc = s_connect(&c, why, cap);
    if (rc == 0) {
        rc = s_products(&c, why, cap);
    }
    if (rc == 0 && cfg->ledger_dir != NULL) {
        rc = s_ledgers(&c, why, cap);
    }
    if (rc < 0) {
        s_cust_free(&c);
        return rc;
    }
    for (unsigned i = 0; i < c.nlanes; i++) {
        uint32_t lane_cap = sp_client_welcome(c.lane[i].client)->capacity;
        *capacity = lane_cap > *capacity ? lane_cap : *capacity;
    }
    c.rng = (cfg->seed + 1) * 0x9E3779B97F4A7C15ull + index * 0xD1B54A32D192ED03ull;
    c.rng |= 1;
    if (cfg->ledger) {
        c.sold = calloc(*capacity + 1, sizeof *c.sold);
        c.restocked = calloc(*capacity + 1, sizeof *c.restocked);
        if (c.sold == NULL || c.restocked == NULL) {
            s_cust_free(&c);
            return -ENOMEM;
        }
    }
    c.live = cfg->live != NULL ? &cfg->live[index] : NULL;
    /* a paced order is sent when a wait for results times out: the
     * kernel's default slack (50 us) would make every such send late */
    (void)prctl(PR_SET_TIMERSLACK, SP_CUSTOMER_SLACK_NS);
    rc = s_customer_loop(&c, quota);
    if (c.live != NULL) {
        s_live_publish(&c, sp_now_ns());
    }
    if (cfg->threads) {
        sp_sched_thread(&st->cpu_ns, &st->wait_ns);
    } else {
        sp_sched_process(0, &st->cpu_ns, &st->wait_ns); /* with ZeroMQ's I/O threads */
    }
    if (rc < 0) {
        if (rc == -EPIPE && c.lost != NULL && c.lost->broker_pid > 0) {
            snprintf(why, cap, "customer %u: the broker (pid %d) is gone%s for %d ms: stopping",
                     index, (int)c.lost->broker_pid, c.nlanes > 1 ? " (a shard's)" : "",
                     cfg->timeout_ms);
        } else if (rc == -EPIPE && c.lost != NULL) {
            snprintf(why, cap,
                     "customer %u: no answer from the broker%s for %d ms while orders waited: "
                     "is it running? stopping",
                     index, c.nlanes > 1 ? " of a shard" : "", cfg->timeout_ms);
        } else if (rc == -EPIPE) {
            snprintf(why, cap,
                     "customer %u: the broker is gone and its order path stayed full "
                     "for %d ms: stopping",
                     index, cfg->timeout_ms);
        } else {
            snprintf(why, cap, "customer %u: %s", index, sp_strerror(rc));
        }
    }
    *sold = c.sold;
    *restocked = c.restocked;
    c.sold = c.restocked = NULL;
    s_cust_free(&c);
    return rc;
}
