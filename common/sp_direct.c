/*
 * sp_direct — the `direct` transport: no transport at all.
 *
 * The original shop's model, kept for the benchmark: the producer applies
 * its own orders to the shared table with the instance's strategy, inside
 * sp_link_send(), and the results wait in a small local queue for
 * sp_link_recv().  The producer code (schedule, window, latency, ledger,
 * audit) is the same as over a real transport, so the benchmark compares
 * like with like.  No worker runs and no stock events are published: a
 * monitor of a direct instance sees the broker's counters only.
 */
#include "sp_direct.h"

#include "sp_link_impl.h"

#include "sp_error.h"
#include "sp_hello.h"
#include "sp_time.h"
#include "sp_wire.h"
#include "sp_apply.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_DIRECT_QUEUE 8 /* result messages held for recv */

typedef struct {
    sp_link_t base;
    sp_table_t *table;
    sp_sync_t sync;
    uint32_t id;
    uint32_t batch_no;
    size_t msg_cap;
    uint8_t *queue; /* SP_DIRECT_QUEUE result messages of msg_cap bytes */
    size_t len[SP_DIRECT_QUEUE];
    unsigned head, count;
} sp_direct_t;

static int s_send(sp_link_t *base, const void *msg, size_t len, const sp_route_t *route,
                  int timeout_ms)
{
    (void)route;
    (void)timeout_ms;
    sp_direct_t *d = (sp_direct_t *)base;
    if (d->count == SP_DIRECT_QUEUE) {
        return SP_E_TIMEOUT; /* the caller collects results, then tries again */
    }
    sp_msg_hdr_t h;
    if (sp_wire_check(msg, len, &h) < 0 || (h.kind != SP_MSG_ORDERS && h.kind != SP_MSG_HELLO)) {
        return -EPROTO;
    }
    unsigned slot = (d->head + d->count) % SP_DIRECT_QUEUE;
    uint8_t *out = d->queue + slot * d->msg_cap;
    if (h.kind == SP_MSG_HELLO) {
        /* we are the answerer too */
        sp_hello_t hello;
        int n = sp_hello_answer(d->table, msg, len, 0, &hello, out, d->msg_cap);
        if (n < 0) {
            return -EPROTO;
        }
        d->len[slot] = (size_t)n;
        d->count++;
        return 0;
    }
    if (sp_wire_msg_size(SP_MSG_RESULTS, h.count) > d->msg_cap) {
        return -EMSGSIZE;
    }
    uint64_t now = sp_now_ns();
    for (unsigned i = 0; i < h.count; i++) {
        sp_order_t o;
        sp_result_t res;
        sp_change_t chg;
        sp_wire_get_order(sp_wire_crec(msg, SP_MSG_ORDERS, i), &o);
        sp_apply_order(d->table, d->sync, &o, h.sender, 0, now, &res, &chg, NULL);
        sp_wire_put_result(sp_wire_rec(out, SP_MSG_RESULTS, i), &res);
    }
    sp_wire_put_hdr(out, SP_MSG_RESULTS, h.count, 0, d->batch_no++);
    d->len[slot] = sp_wire_msg_size(SP_MSG_RESULTS, h.count);
    d->count++;
    return 0;
}

static int s_recv(sp_link_t *base, void *buf, size_t cap, sp_route_t *route, int timeout_ms)
{
    (void)route;
    sp_direct_t *d = (sp_direct_t *)base;
    if (d->count == 0) {
        /* nothing can arrive while we wait (we are the worker): the wait is
         * the producer's pacing between scheduled orders */
        if (timeout_ms > 0) {
            sp_sleep_ns((uint64_t)timeout_ms * SP_NS_PER_MS);
        }
        return timeout_ms == 0 ? -EAGAIN : SP_E_TIMEOUT;
    }
    size_t n = d->len[d->head];
    if (n > cap) {
        return -EMSGSIZE;
    }
    memcpy(buf, d->queue + d->head * d->msg_cap, n);
    d->head = (d->head + 1) % SP_DIRECT_QUEUE;
    d->count--;
    return (int)n;
}

static long s_depth(sp_link_t *base)
{
    return ((sp_direct_t *)base)->count;
}

static void s_close(sp_link_t *base)
{
    sp_direct_t *d = (sp_direct_t *)base;
    sp_table_close(&d->table);
    free(d->queue);
    free(d);
}

static int s_adopt(sp_link_t *base, uint32_t id, char *why, size_t why_cap)
{
    (void)why;
    (void)why_cap;
    ((sp_direct_t *)base)->id = id;
    return 0;
}

static const sp_link_ops_t s_ops = {
    .send = s_send, .recv = s_recv, .depth = s_depth, .close = s_close, .adopt = s_adopt};

static int s_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap)
{
    if (cfg->role != SP_LINK_PRODUCER) {
        snprintf(why, why_cap, "the direct transport has no workers");
        return SP_E_USAGE;
    }
    sp_direct_t *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return -ENOMEM;
    }
    d->base.ops = &s_ops;
    d->id = cfg->id;
    d->msg_cap =
        cfg->reply_msg > 0 ? cfg->reply_msg : sp_wire_msg_size(SP_MSG_RESULTS, SP_WIRE_MAX_RECORDS);
    if (d->msg_cap < SP_WELCOME_MSG_MAX) {
        d->msg_cap = SP_WELCOME_MSG_MAX;
    }
    d->queue = malloc(SP_DIRECT_QUEUE * d->msg_cap);
    int rc = d->queue == NULL ? -ENOMEM : sp_table_open(&d->table, cfg->names->table, true);
    if (rc < 0) {
        snprintf(why, why_cap, "cannot open the table %s to apply orders: %s", cfg->names->table,
                 sp_strerror(rc));
        s_close(&d->base);
        return rc;
    }
    d->sync = (sp_sync_t)sp_table_hdr(d->table)->sync;
    *out = &d->base;
    return 0;
}

/* A producer applies at most one message's worth of orders at a time. */
static unsigned s_fit(const sp_tinfo_t *info, char *limit, size_t cap)
{
    (void)info;
    snprintf(limit, cap, "one order message (%d orders)", SP_WIRE_MAX_RECORDS);
    return SP_WIRE_MAX_RECORDS;
}

const sp_transport_t sp_transport_direct = {
    .name = "direct",
    .summary = "no transport: producers apply orders to the table themselves",
    .id = 4,
    .routed = false,
    .has_workers = false,
    .depth_label = NULL,
    .reply_label = NULL,
    .link_open = s_link_open,
    .fit = s_fit,
};
