/*
 * sp_hello — answer a HELLO, read a WELCOME, and the client's exchange
 * (see sp_hello.h).
 */
#include "sp_hello.h"

#include "sp_commit.h"
#include "sp_error.h"
#include "sp_link.h"
#include "sp_time.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void sp_hello_encode(void *out, const sp_hello_t *h)
{
    sp_wire_put_hdr(out, SP_MSG_HELLO, 1, 0, 0);
    sp_wire_put_hello(sp_wire_rec(out, SP_MSG_HELLO, 0), h);
}

/* A WELCOME under construction. */
typedef struct {
    uint8_t *msg;
    unsigned n;
} s_welcome_t;

static void s_put(s_welcome_t *w, unsigned id, uint64_t value)
{
    if (w->n < SP_WELCOME_COUNTERS_MAX) {
        sp_counter_t c = {.id = (uint16_t)id, .value = value};
        sp_wire_put_counter(sp_wire_rec(w->msg, SP_MSG_WELCOME, w->n++), &c);
    }
}

/* The id a HELLO may have: 0 (give me one) or anything but the reserved. */
static bool s_id_ok(uint32_t id)
{
    return id != SP_SYSTEM_PRODUCER && id != UINT32_MAX;
}

int sp_hello_answer(sp_table_t *t, const void *msg, size_t len, uint32_t answerer,
                    sp_hello_t *hello, void *out, size_t cap)
{
    sp_msg_hdr_t mh;
    if (cap < SP_WELCOME_MSG_MAX || sp_wire_check(msg, len, &mh) < 0 || mh.kind != SP_MSG_HELLO ||
        mh.count != 1) {
        return SP_E_INVALID;
    }
    sp_hello_t h;
    sp_wire_get_hello(sp_wire_crec(msg, SP_MSG_HELLO, 0), &h);
    *hello = h;
    uint32_t status = SP_HELLO_OK;
    uint32_t id = h.producer_id;
    bool resumed = false;
    if (h.rev < 1 || h.op != SP_HELLO_OPEN || (h.flags & ~SP_HELLO_F_HOLDS_OUTLIVE) != 0 ||
        h.reserved != 0 || h.reserved2 != 0 || !s_id_ok(id) ||
        (mh.sender != 0 && mh.sender != id)) {
        status = SP_HELLO_BAD;
    } else {
        if (id == 0) {
            id = sp_table_new_producer_id(t);
        }
        pid_t owner = (h.flags & SP_HELLO_F_HOLDS_OUTLIVE) != 0 ? 0 : (pid_t)h.pid;
        int rc = sp_commit_claim(t, id, owner, &resumed);
        status = rc == 0 ? SP_HELLO_OK : rc == -EEXIST ? SP_HELLO_ID_TAKEN : SP_HELLO_NO_ROOM;
    }
    const sp_table_hdr_t *th = sp_table_hdr(t);
    s_welcome_t w = {.msg = out};
    s_put(&w, SP_CTR_HELLO_STATUS, status);
    s_put(&w, SP_CTR_PRODUCER_ID, id);
    s_put(&w, SP_CTR_HELLO_ID, h.hello_id);
    s_put(&w, SP_CTR_HELLO_REV, SP_HELLO_REV);
    s_put(&w, SP_CTR_TRANSPORT, th->transport);
    s_put(&w, SP_CTR_SYNC, th->sync);
    s_put(&w, SP_CTR_ORDER_MSG_MAX, th->path_msgsize);
    s_put(&w, SP_CTR_PATH_DEPTH, th->path_depth);
    s_put(&w, SP_CTR_CAPACITY, th->capacity);
    s_put(&w, SP_CTR_PRODUCTS, th->product_count);
    s_put(&w, SP_CTR_WORKERS, th->workers);
    s_put(&w, SP_CTR_DEDUP_WINDOW, th->dedup_window);
    s_put(&w, SP_CTR_SESSION_FLAGS, resumed ? SP_WELCOME_F_RESUMED : 0);
    s_put(&w, SP_CTR_BROKER_PID, (uint64_t)(uint32_t)atomic_load(&th->broker_pid));
    s_put(&w, SP_CTR_CREATED_NS, th->created_ns);
    if (th->product_lo != 0) {
        /* the 16th counter: a shard says which products it owns */
        s_put(&w, SP_CTR_PRODUCT_RANGE, (uint64_t)th->product_lo | (uint64_t)th->product_hi << 32);
    }
    sp_wire_put_hdr(out, SP_MSG_WELCOME, w.n, answerer, 0);
    return (int)sp_wire_msg_size(SP_MSG_WELCOME, w.n);
}

int sp_hello_refuse(const sp_hello_t *h, uint32_t status, void *out)
{
    s_welcome_t w = {.msg = out};
    s_put(&w, SP_CTR_HELLO_STATUS, status);
    s_put(&w, SP_CTR_PRODUCER_ID, h->producer_id);
    s_put(&w, SP_CTR_HELLO_ID, h->hello_id);
    s_put(&w, SP_CTR_HELLO_REV, SP_HELLO_REV);
    sp_wire_put_hdr(out, SP_MSG_WELCOME, w.n, 0, 0);
    return (int)sp_wire_msg_size(SP_MSG_WELCOME, w.n);
}

int sp_welcome_decode(const void *msg, size_t len, sp_welcome_t *w)
{
    sp_msg_hdr_t mh;
    if (sp_wire_check(msg, len, &mh) < 0 || mh.kind != SP_MSG_WELCOME || mh.count == 0) {
        return SP_E_INVALID;
    }
    memset(w, 0, sizeof *w);
    bool have_status = false;
    for (unsigned i = 0; i < mh.count; i++) {
        sp_counter_t c;
        sp_wire_get_counter(sp_wire_crec(msg, SP_MSG_WELCOME, i), &c);
        uint32_t v32 = (uint32_t)c.value;
        switch (c.id) {
        case SP_CTR_HELLO_STATUS:
            w->status = v32;
            have_status = true;
            break;
        case SP_CTR_PRODUCER_ID:
            w->producer_id = v32;
            break;
        case SP_CTR_HELLO_ID:
            w->hello_id = c.value;
            break;
        case SP_CTR_HELLO_REV:
            w->rev = v32;
            break;
        case SP_CTR_TRANSPORT:
            w->transport = v32;
            break;
        case SP_CTR_SYNC:
            w->sync = v32;
            break;
        case SP_CTR_ORDER_MSG_MAX:
            w->msgsize = v32;
            break;
        case SP_CTR_PATH_DEPTH:
            w->depth = v32;
            break;
        case SP_CTR_CAPACITY:
            w->capacity = v32;
            break;
        case SP_CTR_PRODUCTS:
            w->products = v32;
            break;
        case SP_CTR_WORKERS:
            w->workers = v32;
            break;
        case SP_CTR_DEDUP_WINDOW:
            w->dedup_window = v32;
            break;
        case SP_CTR_SESSION_FLAGS:
            w->flags = v32;
            break;
        case SP_CTR_BROKER_PID:
            w->broker_pid = (int32_t)v32;
            break;
        case SP_CTR_CREATED_NS:
            w->created_ns = c.value;
            break;
        case SP_CTR_PRODUCT_RANGE:
            w->product_lo = v32;
            w->product_hi = (uint32_t)(c.value >> 32);
            break;
        default:
            break; /* a newer answerer's counter: ignored, as for STATS */
        }
    }
    bool range_ok = w->product_lo <= w->product_hi && (w->product_lo == 0) == (w->product_hi == 0);
    return have_status && range_ok ? 0 : SP_E_INVALID;
}

int sp_hello_exchange(sp_link_t *link, const sp_hello_t *h, void *buf, size_t cap, int timeout_ms,
                      sp_welcome_t *w, char *why, size_t why_cap)
{
    uint8_t msg[SP_HELLO_MSG_SIZE];
    sp_hello_encode(msg, h);
    uint64_t deadline = sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS;
    int rc = sp_link_send(link, msg, sizeof msg, NULL, timeout_ms);
    if (rc < 0) {
        sp_why(why, why_cap, "cannot send the HELLO: %s",
               rc == SP_E_TIMEOUT ? "the order path stayed full" : sp_strerror(rc));
        return rc;
    }
    uint64_t resend = sp_now_ns() + (uint64_t)SP_HELLO_RESEND_MS * SP_NS_PER_MS;
    for (;;) {
        uint64_t now = sp_now_ns();
        if (now >= deadline) {
            sp_why(why, why_cap,
                   "no WELCOME within %d ms (no worker taking orders, an older broker, or CURVE "
                   "keys that do not match)",
                   timeout_ms);
            return SP_E_TIMEOUT;
        }
        if (now >= resend) {
            /* the same HELLO again: a full path now is no error (we keep
             * waiting for the first one's answer) */
            (void)sp_link_send(link, msg, sizeof msg, NULL, 0);
            resend = now + (uint64_t)SP_HELLO_RESEND_MS * SP_NS_PER_MS;
        }
        uint64_t until = resend < deadline ? resend : deadline;
        int left = (int)((until - now + SP_NS_PER_MS - 1) / SP_NS_PER_MS);
        int n = sp_link_recv(link, buf, cap, NULL, left);
        if (n == SP_E_TIMEOUT) {
            continue;
        }
        if (n < 0) {
            sp_why(why, why_cap, "waiting for the WELCOME: %s", sp_strerror(n));
            return n;
        }
        if (sp_welcome_decode(buf, (size_t)n, w) == 0 && w->hello_id == h->hello_id) {
            return 0;
        }
    }
}

const char *sp_hello_status_name(uint32_t status)
{
    static const char *const names[] = {"ok", "id_taken", "no_room", "bad", "peer_full"};
    _Static_assert(sizeof names / sizeof names[0] == SP_HELLO_STATUS_COUNT, "a name for each");
    return status < SP_HELLO_STATUS_COUNT ? names[status] : "?";
}
