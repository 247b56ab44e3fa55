/*
 * sp_once — one order placed and waited for (sp_once.h).
 */
#include "sp_once.h"

#include "sp_client.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_shards.h"
#include "sp_time.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int sp_once_place(const sp_once_t *req, int timeout_ms, sp_result_t *res, uint32_t *producer,
                  char *why, size_t cap)
{
    unsigned type = req->type;
    uint32_t product = req->product, qty = req->qty;
    sp_client_cfg_t cc = {.instance = req->instance,
                          .connect = req->connect,
                          .server_cert = req->server_cert,
                          .batch = 1,
                          .producer_id = req->as_producer,
                          .holds_outlive = type == SP_ORDER_RESERVE || req->as_producer != 0,
                          .timeout_ms = timeout_ms,
                          .cert = req->cert};
    /* a sharded shop (--instance A,B): the order goes to its product's shard */
    sp_shards_t shards;
    int rc = 0;
    if (req->instance != NULL && strchr(req->instance, ',') != NULL) {
        rc = sp_shards_parse(&shards, req->instance, why, cap);
    }
    if (rc == 0 && req->instance != NULL && strchr(req->instance, ',') != NULL) {
        unsigned owner = 0;
        rc = sp_shards_probe(&shards, &cc, product, &owner, why, cap);
        cc.instance = shards.name[owner];
    }
    if (rc < 0) {
        return rc;
    }
    sp_client_t *client = NULL;
    rc = sp_client_open(&client, &cc, why, cap);
    if (rc < 0) {
        return rc;
    }
    uint32_t id = sp_client_producer_id(client);
    sp_link_t *link = sp_client_link(client);
    size_t msg_cap, in_cap;
    uint8_t *msg = sp_client_orders_buf(client, &msg_cap);
    uint8_t *in = sp_client_results_buf(client, &in_cap);
    if (producer != NULL) {
        *producer = id;
    }
    /* a fresh id starts at seq 1; a reused one (--as) needs a seq above any
     * it used before: milliseconds since 2024 (fits SP_SEQ_MAX for 34 years) */
    uint64_t seq = 1;
    if (req->as_producer != 0) {
        seq = (sp_realtime_ns() / SP_NS_PER_MS - SP_ONCE_EPOCH_MS) & SP_SEQ_MAX;
    }
    sp_order_t o = {.type = (uint8_t)type,
                    .reserved = req->hold_s,
                    .producer_id = id,
                    .seq = seq,
                    .product_id = product,
                    .quantity = qty,
                    .sched_ns = sp_now_ns()};
    sp_wire_put_hdr(msg, SP_MSG_ORDERS, 1, id, 0);
    sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, 0), &o);
    rc = sp_link_send(link, msg, sp_wire_msg_size(SP_MSG_ORDERS, 1), NULL, timeout_ms);
    uint64_t deadline = sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS;
    unsigned tries = 1;
    uint64_t resend = sp_now_ns() + sp_client_retry_after_ns(SP_RETRY_MS, tries);
    while (rc == 0) {
        uint64_t now = sp_now_ns();
        if (now >= deadline) {
            rc = SP_E_TIMEOUT;
            break;
        }
        if (now >= resend) {
            /* unanswered: the same order again (a worker may have died
             * holding it); the workers apply it once whatever happens */
            o.flags = SP_ORDER_F_RESENT;
            sp_wire_put_hdr(msg, SP_MSG_ORDERS, 1, id, tries);
            sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, 0), &o);
            sp_link_send(link, msg, sp_wire_msg_size(SP_MSG_ORDERS, 1), NULL, SP_SEND_TIMEOUT_MS);
            resend = now + sp_client_retry_after_ns(SP_RETRY_MS, ++tries);
        }
        uint64_t until = (resend < deadline ? resend : deadline) - now;
        int n = sp_link_recv(link, in, in_cap, NULL, (int)(until / SP_NS_PER_MS) + 1);
        if (n == SP_E_TIMEOUT) {
            continue;
        }
        if (n < 0) {
            rc = n;
            break;
        }
        sp_msg_hdr_t h;
        if (sp_wire_check(in, (size_t)n, &h) == 0 && h.kind == SP_MSG_RESULTS && h.count == 1) {
            sp_wire_get_result(sp_wire_crec(in, SP_MSG_RESULTS, 0), res);
            bool waiting =
                res->status == SP_STATUS_DUPLICATE && res->original == SP_ORIGINAL_PENDING;
            if (res->seq == seq && res->producer_id == id && !waiting) {
                break;
            }
        }
    }
    if (rc < 0) {
        /* say why nothing came, when we can tell */
        int32_t broker = sp_client_broker_pid(client);
        char gone[64] = "";
        if (rc == SP_E_TIMEOUT && broker > 0 && !sp_pid_alive(broker)) {
            snprintf(gone, sizeof gone, " (the broker, pid %d, is gone)", (int)broker);
        } else if (rc == SP_E_TIMEOUT && broker <= 0 && !sp_client_curve(client)) {
            snprintf(gone, sizeof gone, " (no answer from the broker: is it running?)");
        }
        snprintf(why, cap, "order not answered within %d ms: %s%s%s", timeout_ms, sp_strerror(rc),
                 gone,
                 rc == SP_E_TIMEOUT && sp_client_curve(client)
                     ? " (the broker uses CURVE: is the public half of --cert in its "
                       "--curve-clients directory?)"
                     : "");
    }
    sp_client_close(&client);
    return rc;
}
