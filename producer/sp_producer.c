/*
 * sp_producer — the customers' loop, the parent that merges them, the report
 * and the conservation audit.
 */
#include "sp_producer.h"

#include "sp_client.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_ledger.h"
#include "sp_link.h"
#include "sp_rand.h"
#include "sp_signal.h"
#include "sp_time.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SP_POLL_IDLE_MS    50 /* longest wait for results when nothing is due */
#define SP_TIMEOUT_SCAN_NS (20 * SP_NS_PER_MS)
#define SP_PACE_NAP_NS     (200 * 1000ull) /* longest nap between paced orders */
/* Injected malformed orders (--inject-malformed) carry order numbers above
 * this, far beyond any real one, so their answers are told apart. */
#define S_BAD_SEQ_LOW  (SP_SEQ_MAX - (1ull << 32))
#define S_BAD_VARIANTS 23
#define S_BAD_ROOM     (SP_WIRE_HDR_SIZE + 2 * SP_WIRE_RESULT_SIZE)

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
    sp_table_t *table;
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
    uint8_t *bad;          /* --inject-malformed: msg_cap + S_BAD_ROOM bytes */
    uint64_t bad_no;       /* malformed messages made so far */
    uint64_t msgs_sent;    /* order messages sent so far */
    uint64_t bad_answered; /* answers to injected orders */
    sp_ledger_t *ledger;   /* --ledger-out: one record per order outcome, or NULL */
} sp_cust_t;

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

static uint64_t s_interarrival_ns(sp_cust_t *c)
{
    double rate = c->cfg->rate / c->cfg->customers;
    if (c->cfg->arrival == SP_ARRIVAL_POISSON) {
        return (uint64_t)(-log(sp_rand_unit(&c->rng)) / rate * 1e9);
    }
    return (uint64_t)(1e9 / rate);
}

static int s_products(sp_cust_t *c)
{
    uint32_t cap = sp_table_capacity(c->table);
    c->ids = malloc(sizeof *c->ids * cap);
    if (c->ids == NULL) {
        return -ENOMEM;
    }
    for (uint32_t id = 1; id <= cap; id++) {
        if (sp_table_row(c->table, id) != NULL) {
            c->ids[c->nids++] = id;
        }
    }
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

static void s_on_result(sp_cust_t *c, const sp_result_t *r, uint64_t now)
{
    if (r->seq > S_BAD_SEQ_LOW) {
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

/* Makes malformed message number `no` in c->bad; returns its length and
 * whether it must be dead-lettered (true) or answered as refused. */
static size_t s_malformed(sp_cust_t *c, uint64_t no, bool *dead)
{
    uint8_t *m = c->bad;
    sp_order_t o = {.type = SP_ORDER_PURCHASE,
                    .producer_id = c->producer_id,
                    .seq = SP_SEQ_MAX - (no % (SP_SEQ_MAX - S_BAD_SEQ_LOW)),
                    .product_id = c->ids[no % c->nids],
                    .quantity = 1};
    size_t one = sp_wire_msg_size(SP_MSG_ORDERS, 1);
    sp_wire_put_hdr(m, SP_MSG_ORDERS, 1, c->producer_id, c->batch_no++);
    *dead = true;
    unsigned variant = (unsigned)(no % S_BAD_VARIANTS);
    switch (variant) {
    case 0: { /* noise, never starting with the magic */
        size_t len = (size_t)(sp_rand_next(&c->rng) % (c->msg_cap + 1));
        for (size_t i = 0; i < len; i++) {
            m[i] = (uint8_t)sp_rand_next(&c->rng);
        }
        if (len > 0) {
            m[0] = 0;
        }
        return len;
    }
    case 1: /* a header cut short */
        return 1 + (size_t)(sp_rand_next(&c->rng) % (SP_WIRE_HDR_SIZE - 1));
    case 2: /* wrong magic */
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        m[0] ^= 0x20;
        return one;
    case 3: /* an old version */
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        m[4] = SP_WIRE_VERSION - 1;
        return one;
    case 4: /* a version from the future */
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        m[4] = 0xff;
        return one;
    case 5: /* no such kind */
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        m[5] = 0x63;
        return one;
    case 6: /* results sent down the order path */
        sp_wire_put_hdr(m, SP_MSG_RESULTS, 1, c->producer_id, c->batch_no++);
        memset(m + SP_WIRE_HDR_SIZE, 0, SP_WIRE_RESULT_SIZE);
        return sp_wire_msg_size(SP_MSG_RESULTS, 1);
    case 7: /* says 3 records, holds 1 */
        sp_wire_put_hdr(m, SP_MSG_ORDERS, 3, c->producer_id, c->batch_no++);
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        return one;
    case 8: /* says 1, holds 1 and a half */
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        memset(m + one, 0x41, SP_WIRE_ORDER_SIZE / 2);
        return one + SP_WIRE_ORDER_SIZE / 2;
    case 9: /* no records at all */
        sp_wire_put_hdr(m, SP_MSG_ORDERS, 0, c->producer_id, c->batch_no++);
        return SP_WIRE_HDR_SIZE;
    case 10: /* a count beyond any message */
        sp_wire_put_hdr(m, SP_MSG_ORDERS, 0xffff, c->producer_id, c->batch_no++);
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        return one;
    default:
        break;
    }
    /* a well-formed message whose one order has a field out of range */
    *dead = false;
    switch (variant) {
    case 11:
        o.quantity = 0;
        break;
    case 12:
        o.quantity = SP_QTY_MAX + 1;
        break;
    case 13:
        o.quantity = UINT32_MAX;
        break;
    case 14:
        o.type = 0;
        break;
    case 15:
        o.type = 0xc8;
        break;
    case 16:
        o.product_id = 0;
        break;
    case 17:
        o.product_id = UINT32_MAX; /* answered unknown_product */
        break;
    case 18:
        o.flags = 0x80;
        break;
    case 19:
        o.reserved = 30; /* a hold time on a purchase */
        break;
    case 20:
        o.type = SP_ORDER_RESERVE;
        o.reserved = UINT16_MAX; /* beyond SP_HOLD_SECONDS_MAX */
        break;
    case 21:
        o.seq = SP_SEQ_MAX + 1;
        break;
    default:
        o.producer_id = c->producer_id ^ 0x40000000u; /* somebody else's order */
        break;
    }
    sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
    return one;
}

/* Sends one malformed message; a full path is waited out like any other. */
static void s_inject(sp_cust_t *c)
{
    bool dead;
    size_t len = s_malformed(c, c->bad_no++, &dead);
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
            !sp_pid_alive(atomic_load(&sp_table_hdr(c->table)->broker_pid))) {
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
    sp_client_cfg_t cc = {.instance = cfg->instance, .batch = cfg->batch, .cert = cfg->cert};
    int rc = sp_client_open(&c->client, &cc, why, cap);
    if (rc < 0) {
        return rc;
    }
    c->table = sp_client_table(c->client);
    c->link = sp_client_link(c->client);
    c->producer_id = sp_client_producer_id(c->client);
    c->msg = sp_client_orders_buf(c->client, &c->msg_cap);
    c->in = sp_client_results_buf(c->client, &c->in_cap);
    if (cfg->malformed_every > 0) {
        /* room for the longest malformed message, whatever the batch */
        c->bad = malloc(c->msg_cap + S_BAD_ROOM);
        if (c->bad == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int s_customer(const sp_load_cfg_t *cfg, unsigned index, uint64_t quota, sp_load_stats_t *st,
                      uint64_t **sold, uint64_t **restocked, uint32_t *capacity, char *why,
                      size_t cap)
{
    sp_cust_t c = {.cfg = cfg, .st = st};
    sp_load_stats_init(st);
    int rc = s_connect(&c, why, cap);
    if (rc == 0) {
        rc = s_products(&c);
    }
    if (rc == 0 && cfg->ledger_dir != NULL) {
        rc = sp_ledger_open(&c.ledger, cfg->ledger_dir, c.producer_id, why, cap);
    }
    if (rc < 0) {
        s_cust_free(&c);
        return rc;
    }
    *capacity = sp_table_capacity(c.table);
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

static int s_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int s_read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n == 0 ? -EPIPE : -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* What a customer process sends its parent through the pipe. */
typedef struct {
    int32_t rc;
    uint32_t capacity;
    char why[200];
    sp_load_stats_t st;
} sp_cust_report_t;

static void s_child(const sp_load_cfg_t *cfg, unsigned index, uint64_t quota, int fd)
{
    sp_cust_report_t *rep = calloc(1, sizeof *rep);
    uint64_t *sold = NULL, *restocked = NULL;
    if (rep == NULL) {
        _exit(1);
    }
    rep->rc = s_customer(cfg, index, quota, &rep->st, &sold, &restocked, &rep->capacity, rep->why,
                         sizeof rep->why);
    int rc = s_write_all(fd, rep, sizeof *rep);
    if (rc == 0 && cfg->ledger && rep->capacity > 0 && sold != NULL) {
        size_t n = (size_t)rep->capacity + 1;
        rc = s_write_all(fd, sold, n * sizeof *sold);
        if (rc == 0) {
            rc = s_write_all(fd, restocked, n * sizeof *restocked);
        }
    }
    close(fd);
    free(sold);
    free(restocked);
    free(rep);
    _exit(rc == 0 ? 0 : 1);
}

/* Orders customer i places when the run is bounded by a count (0: unbounded). */
static uint64_t s_quota(const sp_load_cfg_t *cfg, unsigned i)
{
    return cfg->count / cfg->customers + (i < cfg->count % cfg->customers);
}

/* Adds one customer's ledger (n entries each) to the run's, allocating it on
 * first use.  Returns 0 or -ENOMEM. */
static int s_ledger_add(uint64_t **sold, uint64_t **restocked, const uint64_t *s_sold,
                        const uint64_t *s_restocked, size_t n)
{
    if (*sold == NULL) {
        *sold = calloc(n, sizeof **sold);
        *restocked = calloc(n, sizeof **restocked);
    }
    if (*sold == NULL || *restocked == NULL) {
        return -ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        (*sold)[k] += s_sold ? s_sold[k] : 0;
        (*restocked)[k] += s_restocked ? s_restocked[k] : 0;
    }
    return 0;
}

typedef struct {
    const sp_load_cfg_t *cfg;
    unsigned index;
    pthread_t thread;
    sp_cust_report_t rep;
    uint64_t *sold, *restocked;
} sp_cust_thread_t;

static void *s_cust_thread(void *arg)
{
    sp_cust_thread_t *t = arg;
    t->rep.rc = s_customer(t->cfg, t->index, s_quota(t->cfg, t->index), &t->rep.st, &t->sold,
                           &t->restocked, &t->rep.capacity, t->rep.why, sizeof t->rep.why);
    return NULL;
}

/* The customers as threads of this process. */
static int s_load_threads(const sp_load_cfg_t *cfg, sp_load_stats_t *st, uint64_t **sold,
                          uint64_t **restocked, uint32_t *capacity, char *why, size_t cap)
{
    sp_cust_thread_t *t = calloc(cfg->customers, sizeof *t);
    if (t == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < cfg->customers; i++) {
        if (cfg->count > 0 && s_quota(cfg, i) == 0) {
            continue;
        }
        t[started] = (sp_cust_thread_t){.cfg = cfg, .index = i};
        int e = pthread_create(&t[started].thread, NULL, s_cust_thread, &t[started]);
        if (e != 0) {
            rc = -e;
            snprintf(why, cap, "cannot start customer thread %u: %s", i, sp_strerror(rc));
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(t[i].thread, NULL);
        sp_cust_report_t *rep = &t[i].rep;
        if (rep->rc < 0 && rc == 0) {
            rc = rep->rc;
            snprintf(why, cap, "%s", rep->why);
        }
        sp_load_merge(st, &rep->st, i == 0);
        if (cfg->ledger && rep->rc >= 0 && rep->capacity > 0 && rc == 0) {
            *capacity = rep->capacity;
            rc =
                s_ledger_add(sold, restocked, t[i].sold, t[i].restocked, (size_t)rep->capacity + 1);
        }
        free(t[i].sold);
        free(t[i].restocked);
    }
    free(t);
    return rc;
}

int sp_load_run(const sp_load_cfg_t *cfg, sp_load_stats_t *st, uint64_t **sold,
                uint64_t **restocked, uint32_t *capacity, char *why, size_t cap)
{
    sp_load_stats_init(st);
    *sold = *restocked = NULL;
    *capacity = 0;
    if (cfg->customers < 1 || cfg->customers > SP_CUSTOMERS_MAX) {
        snprintf(why, cap, "--customers must be 1..%d", SP_CUSTOMERS_MAX);
        return SP_E_USAGE;
    }
    if (cfg->count == 0 && cfg->duration_s <= 0) {
        snprintf(why, cap, "give --count or --duration (or both)");
        return SP_E_USAGE;
    }
    if (cfg->threads) {
        return s_load_threads(cfg, st, sold, restocked, capacity, why, cap);
    }
    pid_t pids[SP_CUSTOMERS_MAX];
    int fds[SP_CUSTOMERS_MAX];
    unsigned started = 0;
    int rc = 0;
    for (unsigned i = 0; i < cfg->customers; i++) {
        uint64_t quota = cfg->count > 0 ? s_quota(cfg, i) : 0;
        if (cfg->count > 0 && quota == 0) {
            continue;
        }
        int p[2];
        if (pipe(p) < 0) {
            rc = -errno;
            break;
        }
        pid_t pid = fork();
        if (pid < 0) {
            rc = -errno;
            close(p[0]);
            close(p[1]);
            break;
        }
        if (pid == 0) {
            for (unsigned j = 0; j < started; j++) {
                close(fds[j]);
            }
            close(p[0]);
            s_child(cfg, i, quota, p[1]);
        }
        close(p[1]);
        pids[started] = pid;
        fds[started] = p[0];
        started++;
    }
    sp_cust_report_t *rep = malloc(sizeof *rep);
    uint64_t *buf = NULL;
    if (rep == NULL) {
        rc = -ENOMEM;
    }
    bool first = true;
    for (unsigned i = 0; i < started; i++) {
        int r = rep ? s_read_all(fds[i], rep, sizeof *rep) : -ENOMEM;
        if (r == 0 && rep->rc < 0 && rc == 0) {
            rc = rep->rc;
            snprintf(why, cap, "%s", rep->why);
        }
        if (r == 0) {
            sp_load_merge(st, &rep->st, first);
            first = false;
        }
        if (r == 0 && cfg->ledger && rep->capacity > 0 && rep->rc >= 0) {
            size_t n = (size_t)rep->capacity + 1;
            if (buf == NULL) {
                *capacity = rep->capacity;
                buf = malloc(n * sizeof *buf);
            }
            if (buf == NULL || rep->capacity != *capacity) {
                r = -ENOMEM;
            } else {
                r = s_read_all(fds[i], buf, n * sizeof *buf);
                if (r == 0) {
                    r = s_ledger_add(sold, restocked, buf, NULL, n);
                }
                if (r == 0) {
                    r = s_read_all(fds[i], buf, n * sizeof *buf);
                }
                if (r == 0) {
                    r = s_ledger_add(sold, restocked, NULL, buf, n);
                }
            }
        }
        if (r < 0 && rc == 0) {
            rc = r;
            snprintf(why, cap, "customer %u died before reporting", i);
        }
        close(fds[i]);
    }
    for (unsigned i = 0; i < started; i++) {
        int status;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
        }
    }
    free(buf);
    free(rep);
    return rc;
}
