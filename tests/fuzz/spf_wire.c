/*
 * spf_wire — fuzz body for the wire decoder (sp_wire).
 *
 * Every message stockpipe receives from a queue, a socket or a ring goes
 * through sp_wire_check and then the sp_wire_get_* of its kind, exactly as
 * here.  The body checks what sp_wire.h promises: a message that passes the
 * check is exactly sp_wire_msg_size(kind, count) bytes and one byte less
 * never passes; every record decodes and re-encodes to the same bytes (the
 * format has no padding and no spare bits, except the text fields of a
 * snapshot row, which decode NUL-terminated and re-encode stably); an order
 * that sp_wire_check_order accepts is inside every documented range; the
 * name functions never return NULL or an empty string, whatever number they
 * are handed.
 *
 * The workers and the broker's router accept an order message on the same
 * rule (sp_worker.c s_handle, sp_router.c s_on_front): check passes, kind is
 * ORDERS (and, for a worker, count > 0).  That rule is restated here so the
 * property the worker relies on is checked too: its reply, one result per
 * order, fits the result buffer it allocates for SP_WIRE_MAX_RECORDS.
 *
 * An order record is also read from the bytes after the header whatever the
 * header says, so the order checks see arbitrary records, not only those
 * behind a valid header.
 */
#include "spf.h"

#include "sp_error.h"
#include "sp_hello.h"
#include "sp_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Largest record: a snapshot row. */
#define S_REC_MAX SP_WIRE_SNAPROW_SIZE

/* Where a snapshot row's numbers end and its text fields start (the struct
 * has the wire layout, sp_wire.h). */
#define S_SNAP_NAME_AT     offsetof(sp_snaprow_t, name)
#define S_SNAP_CATEGORY_AT offsetof(sp_snaprow_t, category)

/* A name function's answer: a non-empty string. */
static void s_check_name(const char *name)
{
    SPF_CHECK(name != NULL);
    SPF_CHECK(name[0] != '\0');
}

/* Every name function, for one arbitrary number. */
static void s_check_names(unsigned v)
{
    s_check_name(sp_wire_kind_name(v));
    s_check_name(sp_wire_order_type_name(v));
    s_check_name(sp_wire_status_name(v));
}

/* An accepted order is inside the ranges sp_wire.h documents; a refused one
 * is refused with SP_E_INVALID and breaks at least one of them. */
static void s_check_order(const sp_order_t *o)
{
    bool in_range =
        o->type >= SP_ORDER_PURCHASE && o->type <= SP_ORDER_RELEASE &&
        (o->type == SP_ORDER_RESERVE ? o->reserved <= SP_HOLD_SECONDS_MAX : o->reserved == 0) &&
        o->quantity >= 1 && o->quantity <= SP_QTY_MAX && o->seq >= 1 && o->seq <= SP_SEQ_MAX &&
        o->producer_id != 0 && o->product_id != 0 && (o->flags & ~SP_ORDER_F_RESENT) == 0;
    int rc = sp_wire_check_order(o);
    SPF_CHECK(rc == 0 || rc == SP_E_INVALID);
    SPF_CHECK((rc == 0) == in_range);
    s_check_name(sp_wire_order_type_name(o->type));
}

/* Decodes record `rec` of a checked message, re-encodes it and compares. */
static void s_check_record(unsigned kind, const uint8_t *rec)
{
    uint8_t again[S_REC_MAX];
    size_t size = sp_wire_record_size(kind);
    SPF_CHECK(size > 0 && size <= sizeof again);
    memset(again, 0xa5, sizeof again);
    switch (kind) {
    case SP_MSG_ORDERS: {
        sp_order_t o;
        sp_wire_get_order(rec, &o);
        sp_wire_put_order(again, &o);
        s_check_order(&o);
        break;
    }
    case SP_MSG_RESULTS: {
        sp_result_t r;
        sp_wire_get_result(rec, &r);
        sp_wire_put_result(again, &r);
        s_check_name(sp_wire_status_name(r.status));
        s_check_name(sp_wire_status_name(r.original));
        s_check_name(sp_wire_order_type_name(r.type));
        break;
    }
    case SP_MSG_EVENTS: {
        sp_event_t e;
        sp_wire_get_event(rec, &e);
        sp_wire_put_event(again, &e);
        break;
    }
    case SP_MSG_HEARTBEAT: {
        sp_heartbeat_t hb;
        sp_wire_get_heartbeat(rec, &hb);
        sp_wire_put_heartbeat(again, &hb);
        break;
    }
    case SP_MSG_HELLO: {
        sp_hello_t h;
        sp_wire_get_hello(rec, &h);
        sp_wire_put_hello(again, &h);
        break;
    }
    case SP_MSG_STATS:
    case SP_MSG_SNAP_BEGIN:
    case SP_MSG_SNAP_END:
    case SP_MSG_WELCOME: {
        sp_counter_t c;
        sp_wire_get_counter(rec, &c);
        sp_wire_put_counter(again, &c);
        break;
    }
    case SP_MSG_SNAP_ROWS: {
        /* Text fields: decoded NUL-terminated within the field; the
         * re-encoding keeps the bytes before the first NUL (at most
         * size - 1 of them) and zeroes the rest, and is then stable. */
        sp_snaprow_t r;
        sp_snaprow_t r2;
        uint8_t third[S_REC_MAX];
        memset(&r, 0xa5, sizeof r);
        sp_wire_get_snaprow(rec, &r);
        SPF_CHECK(memchr(r.name, '\0', sizeof r.name) != NULL);
        SPF_CHECK(memchr(r.category, '\0', sizeof r.category) != NULL);
        sp_wire_put_snaprow(again, &r);
        SPF_CHECK(memcmp(again, rec, S_SNAP_NAME_AT) == 0);
        size_t name_len = strlen(r.name);
        SPF_CHECK(memcmp(again + S_SNAP_NAME_AT, rec + S_SNAP_NAME_AT, name_len) == 0);
        for (size_t i = name_len; i < sizeof r.name; i++) {
            SPF_CHECK(again[S_SNAP_NAME_AT + i] == 0);
        }
        size_t cat_len = strlen(r.category);
        SPF_CHECK(memcmp(again + S_SNAP_CATEGORY_AT, rec + S_SNAP_CATEGORY_AT, cat_len) == 0);
        for (size_t i = cat_len; i < sizeof r.category; i++) {
            SPF_CHECK(again[S_SNAP_CATEGORY_AT + i] == 0);
        }
        memset(&r2, 0x5a, sizeof r2);
        sp_wire_get_snaprow(again, &r2);
        sp_wire_put_snaprow(third, &r2);
        SPF_CHECK(memcmp(third, again, size) == 0);
        SPF_CHECK(strcmp(r.name, r2.name) == 0 && strcmp(r.category, r2.category) == 0);
        return;
    }
    default:
        SPF_CHECK(!"a kind with records that the harness does not know");
    }
    SPF_CHECK(memcmp(again, rec, size) == 0);
}

int spf_wire_one(const uint8_t *data, size_t size)
{
    if (size >= sizeof(uint32_t)) {
        uint32_t v;
        memcpy(&v, data, sizeof v);
        s_check_names(v);
        s_check_names(v & 0xffu);
        /* any return code maps to a status that has a name */
        uint8_t st = sp_wire_status_of((int)v);
        SPF_CHECK(st < SP_STATUS_COUNT);
    }
    if (size >= SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE) {
        sp_order_t o;
        sp_wire_get_order(data + SP_WIRE_HDR_SIZE, &o);
        s_check_order(&o);
    }

    sp_msg_hdr_t h;
    memset(&h, 0xa5, sizeof h);
    int rc = sp_wire_check(size > 0 ? data : NULL, size, &h);
    SPF_CHECK(rc == 0 || rc == SP_E_BAD_SIZE || rc == SP_E_BAD_MAGIC || rc == SP_E_BAD_VERSION ||
              rc == SP_E_BAD_KIND);
    s_check_name(sp_strerror(rc));
    if (rc != 0) {
        return 0;
    }

    /* the header: fields in range, the length exact, the bytes canonical */
    SPF_CHECK(h.magic == SP_WIRE_MAGIC && h.version == SP_WIRE_VERSION);
    SPF_CHECK(h.kind >= 1 && h.kind <= SP_MSG_KIND_MAX);
    SPF_CHECK(h.count <= SP_WIRE_MAX_RECORDS);
    SPF_CHECK(size == sp_wire_msg_size(h.kind, h.count));
    SPF_CHECK(sp_wire_check(data, size - 1, NULL) != 0);
    uint8_t hdr[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(hdr, h.kind, h.count, h.sender, h.batch);
    SPF_CHECK(memcmp(hdr, data, sizeof hdr) == 0);
    s_check_name(sp_wire_kind_name(h.kind));
    SPF_CHECK(strcmp(sp_wire_kind_name(h.kind), "?") != 0);

    size_t rec = sp_wire_record_size(h.kind);
    if (rec == 0) {
        /* credit carries its count in the header; the others carry none */
        SPF_CHECK(h.count == 0 || h.kind == SP_MSG_CREDIT);
        return 0;
    }
    if (h.count > 0) {
        SPF_CHECK(sp_wire_fit(h.kind, size) == h.count);
    }
    for (unsigned i = 0; i < h.count; i++) {
        const uint8_t *r = sp_wire_crec(data, h.kind, i);
        SPF_CHECK(r + rec <= data + size);
        s_check_record(h.kind, r);
    }

    /* What a worker (and the router in front of it) accepts: its answer,
     * one result per order, fits the buffer it allocated at start-up. */
    if (h.kind == SP_MSG_ORDERS && h.count > 0) {
        SPF_CHECK(sp_wire_msg_size(SP_MSG_RESULTS, h.count) <=
                  sp_wire_msg_size(SP_MSG_RESULTS, SP_WIRE_MAX_RECORDS));
    }
    /* A WELCOME decodes exactly when it carries a status counter (and, if
     * any, a product range that does not run backwards); anything else is
     * refused with the one code. */
    sp_welcome_t w;
    int wrc = sp_welcome_decode(data, size, &w);
    SPF_CHECK(wrc == 0 || wrc == SP_E_INVALID);
    SPF_CHECK(wrc != 0 || (h.kind == SP_MSG_WELCOME && h.count > 0));
    /* a shard's range, when one decodes, is a range: both ends or none */
    SPF_CHECK(wrc != 0 ||
              (w.product_lo <= w.product_hi && (w.product_lo == 0) == (w.product_hi == 0)));
    return 0;
}
