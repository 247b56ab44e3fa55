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
#include "sp_signal.h"
#include "sp_table.h"
#include "sp_time.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_POLL_IDLE_MS    50 /* longest wait for results when nothing is due */
#define SP_TIMEOUT_SCAN_NS (20 * SP_NS_PER_MS)
#define SP_PACE_NAP_NS     (200 * 1000ull) /* longest nap between paced orders */

/* One order in flight: its slot in the window is seq % cfg->window. */
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

typedef struct {
    const sp_load_cfg_t *cfg;
    sp_client_t *client;
    /* the client's, borrowed for the hot path */
    int32_t broker_pid; /* 0: not on this host */
    sp_link_t *link;
    uint32_t producer_id;
    uint32_t batch_no;
    sp_pending_t *slots;
    uint64_t outstanding;
    uint64_t next_seq; /* the next order number to use */
    uint64_t low;      /* no order below this one is unanswered */
    uint32_t *ids;     /* products present, in id order */
    uint32_t nids;
    double *zipf_cdf;
    uint64_t rng;
    sp_load_stats_t *st;
    uint64_t *sold, *restocked;
    uint8_t *msg;
    size_t msg_cap;
    uint8_t *in;
    size_t in_cap;
    /* holds this customer got and has not bought or released yet */
    struct {
        uint32_t product, qty;
    } held[SP_CUSTOMER_HOLDS];
    unsigned nheld;
    uint8_t *bad;          /* --inject-malformed: msg_cap + SP_MALFORMED_ROOM bytes */
    uint64_t bad_no;       /* malformed messages made so far */
    uint64_t msgs_sent;    /* order messages sent so far */
    uint64_t bad_answered; /* answers to injected orders */
    sp_ledger_t *ledger;   /* --ledger-out: one record per order outcome, or NULL */
} sp_cust_t;

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

/* Lists the instance's products (and their Zipf CDF when asked).  Returns
 * 0, SP_E_CSV_EMPTY, -ENOMEM or the snapshot's code (*why). */
static int s_products(sp_cust_t *c, char *why, size_t cap)
{
    const uint32_t *ids;
    uint32_t n;
    int rc = sp_client_products(c->client, &ids, &n, why, cap);
    if (rc < 0) {
        return rc;
    }
    c->ids = malloc(sizeof *c->ids * (n > 0 ? n : 1));
    if (c->ids == NULL) {
        return -ENOMEM;
    }
    memcpy(c->ids, ids, sizeof *ids * n);
    c->nids = n;
    if (c->nids == 0) {
        return SP_E_CSV_EMPTY;
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
static void s_ledger_flush(sp_cust_t *c)
{
    if (c->ledger != NULL && sp_ledger_flush(c->ledger) < 0) {
        c->st->ledger_errors++;
    }
}

/* Appends the outcome of one order (SP_STATUS_*, or SP_LEDGER_TIMED_OUT). */
static void s_ledger_put(sp_cust_t *c, const sp_pending_t *p, unsigned status, uint32_t stock)
{
    if (c->ledger == NULL) {
        return;
    }
    sp_ledger_rec_t rec = {.producer_id = c->producer_id,
                           .type = p->type,
                           .status = (uint8_t)status,
                           .seq = p->seq,
                           .product_id = p->product,
                           .quantity = p->qty,
                           .stock_after = stock};
    if (sp_ledger_put(c->ledger, &rec) < 0) {
        c->st->ledger_errors++;
    }
}

/* Takes one result: the answer to an injected order, the one outcome of an
 * order in flight (a dedup record's answer counting as its first copy's),
 * or something to count as unexpected or late. */
static void s_on_result(sp_cust_t *c, const sp_result_t *r, uint64_t now)
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
    sp_pending_t *p = &c->slots[r->seq % c->cfg->window];
    if (r->producer_id != c->producer_id || r->status >= SP_STATUS_COUNT || r->seq == 0 ||
        r->seq >= c->next_seq) {
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
    c->outstanding--;
    c->st->status[status]++;
    s_ledger_put(c, p, status, r->stock_after);
    sp_hist_record(&c->st->latency, now > p->sched_ns ? now - p->sched_ns : 0);
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

/* Receives result messages for up to wait_ms, then whatever else is ready. */
static int s_collect(sp_cust_t *c, int wait_ms)
{
    for (;;) {
        int n = sp_link_recv(c->link, c->in, c->in_cap, NULL, wait_ms);
        if (n == SP_E_TIMEOUT || n == -EINTR || n == -EAGAIN) {
            return 0;
        }
        if (n < 0) {
            return n;
        }
        uint64_t now = sp_now_ns();
        sp_msg_hdr_t h;
        if (sp_wire_check(c->in, (size_t)n, &h) < 0 || h.kind != SP_MSG_RESULTS) {
            c->st->unexpected++;
        } else {
            for (unsigned i = 0; i < h.count; i++) {
                sp_result_t r;
                sp_wire_get_result(sp_wire_crec(c->in, SP_MSG_RESULTS, i), &r);
                s_on_result(c, &r, now);
            }
            s_ledger_flush(c);
        }
        wait_ms = 0;
    }
}

/* Resends what is due, gives up on what is past the result timeout.  Each
 * copy of an order carries the same (producer, seq), so a worker that finds
 * it already applied answers with the first outcome instead. */
static void s_retry(sp_cust_t *c, uint64_t now)
{
    const sp_load_cfg_t *cfg = c->cfg;
    uint64_t limit = (uint64_t)cfg->timeout_ms * SP_NS_PER_MS;
    unsigned k = 0;
    for (unsigned i = 0; i < cfg->window && c->outstanding > 0; i++) {
        sp_pending_t *p = &c->slots[i];
        if (!p->live) {
            continue;
        }
        /* the timeout before the resend time: with --retry 0 nothing is
         * ever due again, and the order must still time out */
        if (now > p->first_ns + limit) {
            p->live = 0; /* fate unknown: reported as timed out */
            c->outstanding--;
            c->st->timed_out++;
            s_ledger_put(c, p, SP_LEDGER_TIMED_OUT, 0);
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
                        .producer_id = c->producer_id,
                        .seq = p->seq,
                        .product_id = p->product,
                        .quantity = p->qty,
                        .sched_ns = p->sched_ns};
        sp_wire_put_order(sp_wire_rec(c->msg, SP_MSG_ORDERS, k++), &o);
        p->tries++;
        p->due_ns = now + sp_client_retry_after_ns(cfg->retry_ms, p->tries);
        if (k == cfg->batch) {
            break; /* the rest next turn */
        }
    }
    if (k == 0) {
        return;
    }
    sp_wire_put_hdr(c->msg, SP_MSG_ORDERS, k, c->producer_id, c->batch_no++);
    int rc =
        sp_link_send(c->link, c->msg, sp_wire_msg_size(SP_MSG_ORDERS, k), NULL, SP_SEND_TIMEOUT_MS);
    if (rc == 0) {
        c->st->retried += k;
    }
    /* a resend that did not leave is simply due again at its next time */
}

/* Sends one malformed message; a full path is waited out like any other. */
static void s_inject(sp_cust_t *c)
{
    bool dead;
    uint64_t no = c->bad_no++;
    size_t len = sp_malformed_make(c->bad, c->msg_cap, no, c->producer_id, c->ids[no % c->nids],
                                   &c->batch_no, &c->rng, &dead);
    for (;;) {
        int rc = sp_link_send(c->link, c->bad, len, NULL, SP_SEND_TIMEOUT_MS);
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
    }
}

/* Sends one message of `k` orders, retrying while the path is full. */
static int s_send_batch(sp_cust_t *c, unsigned k, uint64_t first_seq)
{
    sp_wire_put_hdr(c->msg, SP_MSG_ORDERS, k, c->producer_id, c->batch_no++);
    size_t len = sp_wire_msg_size(SP_MSG_ORDERS, k);
    uint64_t since = sp_now_ns();
    for (;;) {
        int rc = sp_link_send(c->link, c->msg, len, NULL, SP_SEND_TIMEOUT_MS);
        if (rc == 0) {
            c->st->sent += k;
            return 0;
        }
        /* a full path is back-pressure while the broker lives; when it is
         * gone nobody will ever drain it (orders sent into a queue its
         * successor replaces are lost to us): give up after the timeout */
        if (rc == SP_E_TIMEOUT &&
            sp_now_ns() - since > (uint64_t)c->cfg->timeout_ms * SP_NS_PER_MS &&
            c->broker_pid > 0 && !sp_pid_alive(c->broker_pid)) {
            rc = -EPIPE;
        }
        if (rc != SP_E_TIMEOUT && rc != -EINTR && rc != -EAGAIN) {
            /* these orders never left: free their slots, count them */
            for (unsigned i = 0; i < k; i++) {
                sp_pending_t *p = &c->slots[(first_seq + i) % c->cfg->window];
                p->live = 0;
            }
            c->outstanding -= k;
            c->st->send_failed += k;
            return rc;
        }
        /* back-pressure: keep draining results while we wait */
        s_collect(c, 0);
        if (sp_signal_stopping()) {
            for (unsigned i = 0; i < k; i++) {
                c->slots[(first_seq + i) % c->cfg->window].live = 0;
            }
            c->outstanding -= k;
            c->st->send_failed += k;
            return SP_E_STOPPED;
        }
    }
}

/* The customer's run: schedules orders into messages of up to cfg->batch
 * while the window has room, sends them, collects results, resends and
 * times out, until the quota, the duration or a stop; then waits for what
 * is still outstanding.  Returns 0, or the send or receive error that ended
 * it early. */
static int s_customer_loop(sp_cust_t *c, uint64_t quota)
{
    const sp_load_cfg_t *cfg = c->cfg;
    bool fast = cfg->arrival == SP_ARRIVAL_FAST || cfg->rate <= 0;
    uint64_t start = sp_now_ns();
    uint64_t end = cfg->duration_s > 0 ? start + (uint64_t)(cfg->duration_s * 1e9) : UINT64_MAX;
    uint64_t next_sched = start;
    uint64_t seq = 1;
    c->next_seq = 1;
    c->low = 1;
    uint64_t next_scan = start + SP_TIMEOUT_SCAN_NS;
    uint64_t done_ns = 0; /* when every real order was answered */
    c->st->start_ns = start;
    int rc = 0;
    for (;;) {
        uint64_t now = sp_now_ns();
        bool done = sp_signal_stopping() || (quota > 0 && c->st->scheduled >= quota) ||
                    (fast ? now >= end : next_sched >= end);
        unsigned k = 0;
        uint64_t first = seq;
        while (c->low < seq && !(c->slots[c->low % cfg->window].live &&
                                 c->slots[c->low % cfg->window].seq == c->low)) {
            c->low++;
        }
        while (!done && k < cfg->batch && (fast || next_sched <= now)) {
            sp_pending_t *p = &c->slots[seq % cfg->window];
            if (p->live || seq - c->low >= SP_DEDUP_WINDOW) {
                break; /* window full (ours, or the workers' memory of us) */
            }
            sp_order_t o = {.type = SP_ORDER_PURCHASE,
                            .producer_id = c->producer_id,
                            .seq = seq,
                            .product_id = s_pick_product(c),
                            .quantity = cfg->qty_min,
                            .sched_ns = fast ? now : next_sched};
            if (cfg->qty_max > cfg->qty_min) {
                o.quantity += (uint32_t)(sp_rand_next(&c->rng) % (cfg->qty_max - cfg->qty_min + 1));
            }
            double u = sp_rand_unit(&c->rng);
            if (c->nheld > 0 && u < 0.5) {
                /* follow up a hold: mostly buy it, sometimes give it back,
                 * now and then walk away (it expires) */
                c->nheld--;
                o.product_id = c->held[c->nheld].product;
                o.quantity = c->held[c->nheld].qty;
                double v = sp_rand_unit(&c->rng);
                o.type = v < 0.7 ? SP_ORDER_BUY_HELD : v < 0.9 ? SP_ORDER_RELEASE : 0;
                if (o.type == 0) {
                    o.type = SP_ORDER_PURCHASE; /* walked away: an ordinary purchase instead */
                }
            } else if (cfg->hold_ratio > 0 && u < cfg->hold_ratio) {
                o.type = SP_ORDER_RESERVE;
                o.reserved = (uint16_t)cfg->hold_s;
            } else if (cfg->restock_ratio > 0 && sp_rand_unit(&c->rng) <= cfg->restock_ratio) {
                o.type = SP_ORDER_RESTOCK;
            }
            *p = (sp_pending_t){.seq = seq,
                                .sched_ns = o.sched_ns,
                                .first_ns = now,
                                .due_ns = now + sp_client_retry_after_ns(cfg->retry_ms, 1),
                                .product = o.product_id,
                                .qty = o.quantity,
                                .tries = 1,
                                .hold_s = o.reserved,
                                .type = o.type,
                                .live = 1};
            sp_wire_put_order(sp_wire_rec(c->msg, SP_MSG_ORDERS, k), &o);
            k++;
            seq++;
            c->next_seq = seq;
            c->outstanding++;
            c->st->scheduled++;
            if (!fast) {
                next_sched += s_interarrival_ns(c);
            }
            done = (quota > 0 && c->st->scheduled >= quota) || (!fast && next_sched >= end);
        }
        if (k > 0) {
            rc = s_send_batch(c, k, first);
            if (rc < 0 && rc != SP_E_STOPPED) {
                break;
            }
            if (rc == 0 && cfg->malformed_every > 0 && ++c->msgs_sent % cfg->malformed_every == 0) {
                s_inject(c);
            }
            rc = 0;
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
        int wait_ms = SP_POLL_IDLE_MS;
        uint64_t nap_ns = 0;
        if (!done && c->outstanding < cfg->window) {
            if (fast) {
                wait_ms = 0;
            } else {
                uint64_t t = sp_now_ns();
                uint64_t until_ns = next_sched > t ? next_sched - t : 0;
                uint64_t until = until_ns / SP_NS_PER_MS;
                wait_ms = until < SP_POLL_IDLE_MS ? (int)until : SP_POLL_IDLE_MS;
                /* under a millisecond to the next order: the links wait in
                 * whole milliseconds, and polling would spin a core the
                 * workers need, so nap briefly instead */
                nap_ns = until_ns < SP_PACE_NAP_NS ? until_ns : SP_PACE_NAP_NS;
            }
        }
        rc = s_collect(c, wait_ms);
        if (rc == 0 && wait_ms == 0 && nap_ns > 0) {
            sp_sleep_ns(nap_ns);
        }
        if (rc < 0) {
            break;
        }
        now = sp_now_ns();
        if (now >= next_scan) {
            s_retry(c, now);
            next_scan = now + SP_TIMEOUT_SCAN_NS;
        }
    }
    return rc;
}

/* Flushes and closes the ledger, closes the client, frees the rest. */
static void s_cust_free(sp_cust_t *c)
{
    if (c->ledger != NULL) {
        s_ledger_flush(c);
        sp_ledger_close(&c->ledger);
    }
    sp_client_close(&c->client);
    free(c->slots);
    free(c->ids);
    free(c->zipf_cdf);
    free(c->bad);
    free(c->sold);
    free(c->restocked);
}

/* Connects as a new producer and takes the client's link and buffers. */
static int s_connect(sp_cust_t *c, char *why, size_t cap)
{
    const sp_load_cfg_t *cfg = c->cfg;
    sp_client_cfg_t cc = {.instance = cfg->instance,
                          .connect = cfg->connect,
                          .snapshot = cfg->snapshot,
                          .server_cert = cfg->server_cert,
                          .batch = cfg->batch,
                          .timeout_ms = cfg->timeout_ms,
                          .cert = cfg->cert};
    int rc = sp_client_open(&c->client, &cc, why, cap);
    if (rc < 0) {
        return rc;
    }
    c->broker_pid = sp_client_broker_pid(c->client);
    c->link = sp_client_link(c->client);
    c->producer_id = sp_client_producer_id(c->client);
    c->msg = sp_client_orders_buf(c->client, &c->msg_cap);
    c->in = sp_client_results_buf(c->client, &c->in_cap);
    if (cfg->malformed_every > 0) {
        /* room for the longest malformed message, whatever the batch */
        c->bad = malloc(c->msg_cap + SP_MALFORMED_ROOM);
        if (c->bad == NULL) {
            return -ENOMEM;
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
        rc = sp_ledger_open(&c.ledger, cfg->ledger_dir, c.producer_id, why, cap);
    }
    if (rc < 0) {
        s_cust_free(&c);
        return rc;
    }
    *capacity = sp_client_welcome(c.client)->capacity;
    c.rng = (cfg->seed + 1) * 0x9E3779B97F4A7C15ull + index * 0xD1B54A32D192ED03ull;
    c.rng |= 1;
    c.slots = calloc(cfg->window, sizeof *c.slots);
    if (cfg->ledger) {
        c.sold = calloc(*capacity + 1, sizeof *c.sold);
        c.restocked = calloc(*capacity + 1, sizeof *c.restocked);
    }
    if (c.slots == NULL || (cfg->ledger && (c.sold == NULL || c.restocked == NULL))) {
        s_cust_free(&c);
        return -ENOMEM;
    }
    rc = s_customer_loop(&c, quota);
    if (cfg->threads) {
        sp_sched_thread(&st->cpu_ns, &st->wait_ns);
    } else {
        sp_sched_process(0, &st->cpu_ns, &st->wait_ns); /* with ZeroMQ's I/O threads */
    }
    if (rc < 0) {
        if (rc == -EPIPE) {
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
