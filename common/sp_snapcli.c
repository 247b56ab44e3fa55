/*
 * sp_snapcli — fetch one snapshot (see sp_snapcli.h).
 */
#include "sp_snapcli.h"

#include "sp_error.h"
#include "sp_time.h"
#include "sp_zmq.h"

#include <czmq.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_ask(void *raw, uint32_t req)
{
    uint8_t msg[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(msg, SP_MSG_SNAP_REQ, 0, 0, req);
    return zmq_send(raw, msg, sizeof msg, 0) < 0 ? -errno : 0;
}

static void s_counters(const uint8_t *msg, unsigned kind, unsigned count, sp_snapinfo_t *info)
{
    for (unsigned i = 0; i < count; i++) {
        sp_counter_t c;
        sp_wire_get_counter(sp_wire_crec(msg, kind, i), &c);
        switch (c.id) {
        case SP_CTR_CAPACITY:
            info->capacity = (uint32_t)c.value;
            break;
        case SP_CTR_PRODUCTS:
            info->products = (uint32_t)c.value;
            break;
        case SP_CTR_CREATED_NS:
            info->created_ns = c.value;
            break;
        case SP_CTR_ROWS:
            info->rows = (uint32_t)c.value;
            break;
        case SP_CTR_HELD:
            info->held = c.value;
            break;
        default:
            break;
        }
    }
}

/* Reads the answer to request `req` until SNAP_END: 1 when it ended, 0 when
 * the service stayed silent for `quiet_ms` (ask again), or an error. */
static int s_answer(void *raw, uint8_t *buf, uint32_t req, uint64_t deadline, int quiet_ms,
                    sp_snapcli_row_fn row, void *ctx, sp_snapinfo_t *info)
{
    uint64_t quiet_until = sp_now_ns() + (uint64_t)quiet_ms * SP_NS_PER_MS;
    bool begun = false;
    for (;;) {
        uint64_t now = sp_now_ns();
        uint64_t until = quiet_until < deadline ? quiet_until : deadline;
        if (now >= until) {
            return 0;
        }
        zmq_pollitem_t item = {.socket = raw, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&item, 1, (long)((until - now) / SP_NS_PER_MS) + 1);
        if (rc < 0 && errno != EINTR) {
            return -errno;
        }
        if (rc <= 0) {
            continue;
        }
        int n = zmq_recv(raw, buf, SP_SNAP_MSG_MAX, ZMQ_DONTWAIT);
        if (n < 0 || (size_t)n > SP_SNAP_MSG_MAX) {
            continue;
        }
        sp_msg_hdr_t h;
        if (sp_wire_check(buf, (size_t)n, &h) < 0 || h.batch != req) {
            continue; /* malformed, or an answer to an earlier request */
        }
        quiet_until = sp_now_ns() + (uint64_t)quiet_ms * SP_NS_PER_MS;
        if (h.kind == SP_MSG_SNAP_BEGIN) {
            memset(info, 0, sizeof *info);
            s_counters(buf, h.kind, h.count, info);
            begun = true;
        } else if (h.kind == SP_MSG_SNAP_ROWS && begun) {
            for (unsigned i = 0; i < h.count && row != NULL; i++) {
                sp_snaprow_t r;
                sp_wire_get_snaprow(sp_wire_crec(buf, SP_MSG_SNAP_ROWS, i), &r);
                row(ctx, &r);
            }
        } else if (h.kind == SP_MSG_SNAP_END && begun) {
            s_counters(buf, h.kind, h.count, info);
            return 1;
        }
    }
}

int sp_snapcli_fetch(const char *endpoint, const char *server_key, const sp_curve_keys_t *keys,
                     int timeout_ms, sp_snapcli_row_fn row, void *ctx, sp_snapinfo_t *info,
                     char *why, size_t why_cap)
{
    if (endpoint == NULL || endpoint[0] == '\0') {
        sp_why(why, why_cap, "no snapshot endpoint to ask");
        return SP_E_USAGE;
    }
    bool curve = server_key != NULL && server_key[0] != '\0';
    if (curve && keys == NULL) {
        sp_why(why, why_cap, "%s is a CURVE server: a client certificate is needed", endpoint);
        return SP_E_USAGE;
    }
    sp_zmq_setup();
    uint8_t *buf = malloc(SP_SNAP_MSG_MAX);
    zsock_t *dealer = buf != NULL ? zsock_new(ZMQ_DEALER) : NULL;
    if (dealer == NULL) {
        free(buf);
        return -ENOMEM;
    }
    sp_zmq_set_max_frame(dealer, SP_SNAP_MSG_MAX);
    sp_zmq_endpoint_opts(dealer, endpoint);
    zsock_set_linger(dealer, 0);
    if (curve) {
        sp_curve_set_client(dealer, keys, server_key);
    }
    int rc = 0;
    if (zsock_connect(dealer, "%s", endpoint) < 0) {
        sp_why(why, why_cap, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        rc = SP_E_USAGE;
    }
    void *raw = zsock_resolve(dealer);
    uint64_t deadline = sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS;
    for (uint32_t req = 1; rc == 0; req++) {
        if (sp_now_ns() >= deadline) {
            sp_why(why, why_cap, "no snapshot from %s within %d ms", endpoint, timeout_ms);
            rc = SP_E_TIMEOUT;
            break;
        }
        rc = s_ask(raw, req);
        if (rc == 0) {
            rc = s_answer(raw, buf, req, deadline, SP_SNAPCLI_RETRY_MS, row, ctx, info);
        }
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc < 0) {
            sp_why(why, why_cap, "snapshot from %s: %s", endpoint, sp_strerror(rc));
        }
    }
    zsock_destroy(&dealer);
    free(buf);
    return rc;
}
