/*
 * sp_wire — encode, decode and validate messages.
 *
 * Encoding goes field by field through little-endian helpers; on x86-64 they
 * compile to plain loads and stores, and on a big-endian host they would
 * still produce the documented bytes.
 */
#include "sp_wire.h"

#include "sp_error.h"
#include "sp_le.h"

#include <errno.h>
#include <string.h>

size_t sp_wire_record_size(unsigned kind)
{
    switch (kind) {
    case SP_MSG_ORDERS:
        return SP_WIRE_ORDER_SIZE;
    case SP_MSG_RESULTS:
        return SP_WIRE_RESULT_SIZE;
    case SP_MSG_EVENTS:
        return SP_WIRE_EVENT_SIZE;
    case SP_MSG_HEARTBEAT:
        return SP_WIRE_HEARTBEAT_SIZE;
    case SP_MSG_STATS:
    case SP_MSG_SNAP_BEGIN:
    case SP_MSG_SNAP_END:
    case SP_MSG_WELCOME:
        return SP_WIRE_COUNTER_SIZE;
    case SP_MSG_HELLO:
        return SP_WIRE_HELLO_SIZE;
    case SP_MSG_SNAP_ROWS:
        return SP_WIRE_SNAPROW_SIZE;
    default:
        return 0;
    }
}

size_t sp_wire_msg_size(unsigned kind, unsigned count)
{
    return SP_WIRE_HDR_SIZE + (size_t)count * sp_wire_record_size(kind);
}

unsigned sp_wire_fit(unsigned kind, size_t max_bytes)
{
    size_t rec = sp_wire_record_size(kind);
    if (rec == 0 || max_bytes < SP_WIRE_HDR_SIZE + rec) {
        return 0;
    }
    size_t n = (max_bytes - SP_WIRE_HDR_SIZE) / rec;
    return n > SP_WIRE_MAX_RECORDS ? SP_WIRE_MAX_RECORDS : (unsigned)n;
}

int sp_wire_check(const void *buf, size_t len, sp_msg_hdr_t *hdr)
{
    if (buf == NULL || len < SP_WIRE_HDR_SIZE) {
        return SP_E_BAD_SIZE;
    }
    sp_msg_hdr_t h;
    sp_wire_get_hdr(buf, &h);
    if (h.magic != SP_WIRE_MAGIC) {
        return SP_E_BAD_MAGIC;
    }
    if (h.version != SP_WIRE_VERSION) {
        return SP_E_BAD_VERSION;
    }
    if (h.kind == 0 || h.kind > SP_MSG_KIND_MAX) {
        return SP_E_BAD_KIND;
    }
    if (h.count > SP_WIRE_MAX_RECORDS) {
        return SP_E_BAD_SIZE;
    }
    size_t rec = sp_wire_record_size(h.kind);
    if (rec == 0 && h.count != 0 && h.kind != SP_MSG_CREDIT) {
        return SP_E_BAD_SIZE;
    }
    if (len != SP_WIRE_HDR_SIZE + (size_t)h.count * rec) {
        return SP_E_BAD_SIZE;
    }
    if (hdr != NULL) {
        *hdr = h;
    }
    return 0;
}

int sp_wire_check_order(const sp_order_t *o)
{
    if (o->type < SP_ORDER_PURCHASE || o->type > SP_ORDER_RELEASE) {
        return SP_E_INVALID;
    }
    /* `reserved` is a reserve's hold time in seconds (0: the default) */
    if (o->type == SP_ORDER_RESERVE ? o->reserved > SP_HOLD_SECONDS_MAX : o->reserved != 0) {
        return SP_E_INVALID;
    }
    if (o->quantity < 1 || o->quantity > SP_QTY_MAX) {
        return SP_E_INVALID;
    }
    if (o->seq == 0 || o->seq > SP_SEQ_MAX || o->producer_id == 0) {
        return SP_E_INVALID;
    }
    if (o->product_id == 0 || (o->flags & ~SP_ORDER_F_RESENT) != 0) {
        return SP_E_INVALID;
    }
    return 0;
}

void sp_wire_put_hdr(void *p, unsigned kind, unsigned count, uint32_t sender, uint32_t batch)
{
    uint8_t *b = p;
    sp_le_put32(b, SP_WIRE_MAGIC);
    b[4] = SP_WIRE_VERSION;
    b[5] = (uint8_t)kind;
    sp_le_put16(b + 6, (uint16_t)count);
    sp_le_put32(b + 8, sender);
    sp_le_put32(b + 12, batch);
}

void sp_wire_get_hdr(const void *p, sp_msg_hdr_t *h)
{
    const uint8_t *b = p;
    h->magic = sp_le_get32(b);
    h->version = b[4];
    h->kind = b[5];
    h->count = sp_le_get16(b + 6);
    h->sender = sp_le_get32(b + 8);
    h->batch = sp_le_get32(b + 12);
}

void sp_wire_put_order(void *p, const sp_order_t *o)
{
    uint8_t *b = p;
    b[0] = o->type;
    b[1] = o->flags;
    sp_le_put16(b + 2, o->reserved);
    sp_le_put32(b + 4, o->producer_id);
    sp_le_put64(b + 8, o->seq);
    sp_le_put32(b + 16, o->product_id);
    sp_le_put32(b + 20, o->quantity);
    sp_le_put64(b + 24, o->sched_ns);
}

void sp_wire_get_order(const void *p, sp_order_t *o)
{
    const uint8_t *b = p;
    o->type = b[0];
    o->flags = b[1];
    o->reserved = sp_le_get16(b + 2);
    o->producer_id = sp_le_get32(b + 4);
    o->seq = sp_le_get64(b + 8);
    o->product_id = sp_le_get32(b + 16);
    o->quantity = sp_le_get32(b + 20);
    o->sched_ns = sp_le_get64(b + 24);
}

void sp_wire_put_result(void *p, const sp_result_t *r)
{
    uint8_t *b = p;
    sp_le_put32(b, r->producer_id);
    b[4] = r->status;
    b[5] = r->type;
    b[6] = r->worker_id;
    b[7] = r->original;
    sp_le_put64(b + 8, r->seq);
    sp_le_put32(b + 16, r->product_id);
    sp_le_put32(b + 20, r->stock_after);
    sp_le_put64(b + 24, r->sched_ns);
    sp_le_put64(b + 32, r->applied_ns);
}

void sp_wire_get_result(const void *p, sp_result_t *r)
{
    const uint8_t *b = p;
    r->producer_id = sp_le_get32(b);
    r->status = b[4];
    r->type = b[5];
    r->worker_id = b[6];
    r->original = b[7];
    r->seq = sp_le_get64(b + 8);
    r->product_id = sp_le_get32(b + 16);
    r->stock_after = sp_le_get32(b + 20);
    r->sched_ns = sp_le_get64(b + 24);
    r->applied_ns = sp_le_get64(b + 32);
}

void sp_wire_put_event(void *p, const sp_event_t *e)
{
    uint8_t *b = p;
    sp_le_put64(b, e->pub_seq);
    sp_le_put32(b + 8, e->publisher_id);
    sp_le_put32(b + 12, e->product_id);
    sp_le_put32(b + 16, e->old_stock);
    sp_le_put32(b + 20, e->new_stock);
    sp_le_put32(b + 24, e->row_version);
    sp_le_put32(b + 28, e->order_producer);
    sp_le_put64(b + 32, e->order_seq);
    sp_le_put64(b + 40, e->ts_ns);
}

void sp_wire_get_event(const void *p, sp_event_t *e)
{
    const uint8_t *b = p;
    e->pub_seq = sp_le_get64(b);
    e->publisher_id = sp_le_get32(b + 8);
    e->product_id = sp_le_get32(b + 12);
    e->old_stock = sp_le_get32(b + 16);
    e->new_stock = sp_le_get32(b + 20);
    e->row_version = sp_le_get32(b + 24);
    e->order_producer = sp_le_get32(b + 28);
    e->order_seq = sp_le_get64(b + 32);
    e->ts_ns = sp_le_get64(b + 40);
}

void sp_wire_put_heartbeat(void *p, const sp_heartbeat_t *hb)
{
    uint8_t *b = p;
    sp_le_put64(b, hb->pub_seq);
    sp_le_put32(b + 8, hb->publisher_id);
    sp_le_put32(b + 12, hb->state);
    sp_le_put64(b + 16, hb->orders_applied);
    sp_le_put64(b + 24, hb->ts_ns);
    sp_le_put32(b + 32, hb->pid);
    sp_le_put32(b + 36, hb->reserved);
}

void sp_wire_get_heartbeat(const void *p, sp_heartbeat_t *hb)
{
    const uint8_t *b = p;
    hb->pub_seq = sp_le_get64(b);
    hb->publisher_id = sp_le_get32(b + 8);
    hb->state = sp_le_get32(b + 12);
    hb->orders_applied = sp_le_get64(b + 16);
    hb->ts_ns = sp_le_get64(b + 24);
    hb->pid = sp_le_get32(b + 32);
    hb->reserved = sp_le_get32(b + 36);
}

void sp_wire_put_counter(void *p, const sp_counter_t *c)
{
    uint8_t *b = p;
    sp_le_put16(b, c->id);
    sp_le_put16(b + 2, c->index);
    sp_le_put32(b + 4, c->reserved);
    sp_le_put64(b + 8, c->value);
}

void sp_wire_get_counter(const void *p, sp_counter_t *c)
{
    const uint8_t *b = p;
    c->id = sp_le_get16(b);
    c->index = sp_le_get16(b + 2);
    c->reserved = sp_le_get32(b + 4);
    c->value = sp_le_get64(b + 8);
}

static void s_put_text(uint8_t *dst, const char *src, size_t cap)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    memset(dst + n, 0, cap - n);
}

static void s_get_text(char *dst, const uint8_t *src, size_t cap)
{
    memcpy(dst, src, cap - 1);
    dst[cap - 1] = '\0';
}

void sp_wire_put_snaprow(void *p, const sp_snaprow_t *r)
{
    uint8_t *b = p;
    sp_le_put32(b, r->id);
    sp_le_put32(b + 4, r->stock);
    sp_le_put32(b + 8, r->version);
    sp_le_put32(b + 12, r->weight_g);
    sp_le_put32(b + 16, r->expiry);
    sp_le_put32(b + 20, r->initial_stock);
    sp_le_put64(b + 24, r->price_cents);
    sp_le_put64(b + 32, r->sold);
    sp_le_put64(b + 40, r->restocked);
    s_put_text(b + 48, r->name, sizeof r->name);
    s_put_text(b + 96, r->category, sizeof r->category);
}

void sp_wire_get_snaprow(const void *p, sp_snaprow_t *r)
{
    const uint8_t *b = p;
    r->id = sp_le_get32(b);
    r->stock = sp_le_get32(b + 4);
    r->version = sp_le_get32(b + 8);
    r->weight_g = sp_le_get32(b + 12);
    r->expiry = sp_le_get32(b + 16);
    r->initial_stock = sp_le_get32(b + 20);
    r->price_cents = sp_le_get64(b + 24);
    r->sold = sp_le_get64(b + 32);
    r->restocked = sp_le_get64(b + 40);
    s_get_text(r->name, b + 48, sizeof r->name);
    s_get_text(r->category, b + 96, sizeof r->category);
}

void sp_wire_put_hello(void *p, const sp_hello_t *h)
{
    uint8_t *b = p;
    sp_le_put16(b, h->rev);
    b[2] = h->op;
    b[3] = h->flags;
    sp_le_put32(b + 4, h->producer_id);
    sp_le_put64(b + 8, h->reply_tag);
    sp_le_put32(b + 16, h->pid);
    sp_le_put32(b + 20, h->reserved);
    sp_le_put64(b + 24, h->hello_id);
    sp_le_put64(b + 32, h->reserved2);
}

void sp_wire_get_hello(const void *p, sp_hello_t *h)
{
    const uint8_t *b = p;
    h->rev = sp_le_get16(b);
    h->op = b[2];
    h->flags = b[3];
    h->producer_id = sp_le_get32(b + 4);
    h->reply_tag = sp_le_get64(b + 8);
    h->pid = sp_le_get32(b + 16);
    h->reserved = sp_le_get32(b + 20);
    h->hello_id = sp_le_get64(b + 24);
    h->reserved2 = sp_le_get64(b + 32);
}

const char *sp_wire_kind_name(unsigned kind)
{
    static const char *names[] = {"?",          "orders",    "results",  "events", "heartbeat",
                                  "credit",     "eos",       "eos_ack",  "stats",  "snap_req",
                                  "snap_begin", "snap_rows", "snap_end", "hello",  "welcome"};
    _Static_assert(sizeof names / sizeof names[0] == SP_MSG_KIND_MAX + 1, "a name for every kind");
    return kind <= SP_MSG_KIND_MAX ? names[kind] : "?";
}

const char *sp_wire_order_type_name(unsigned type)
{
    static const char *names[] = {"?", "purchase", "restock", "reserve", "buy_held", "release"};
    return type <= SP_ORDER_RELEASE ? names[type] : "?";
}

const char *sp_wire_status_name(unsigned status)
{
    /* one name per status: a status added without its name fails to build */
    static const char *const names[] = {"accepted",  "out_of_stock", "unknown_product", "invalid",
                                        "duplicate", "conflict",     "no_hold",         "no_room"};
    _Static_assert(sizeof names / sizeof names[0] == SP_STATUS_COUNT, "a name for every status");
    return status < SP_STATUS_COUNT ? names[status] : "?";
}

uint8_t sp_wire_status_of(int rc)
{
    switch (rc) {
    case 0:
        return SP_STATUS_ACCEPTED;
    case SP_E_OUT_OF_STOCK:
        return SP_STATUS_OUT_OF_STOCK;
    case SP_E_UNKNOWN_PRODUCT:
        return SP_STATUS_UNKNOWN_PRODUCT;
    case SP_E_DUPLICATE:
        return SP_STATUS_DUPLICATE;
    case SP_E_NO_HOLD:
        return SP_STATUS_NO_HOLD;
    case -EUSERS:
        return SP_STATUS_NO_ROOM;
    default:
        return SP_STATUS_INVALID;
    }
}
