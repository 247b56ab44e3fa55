/*
 * Tests for sp_wire, the message format every process speaks.
 *
 * The wire layout is the contract between producers, workers, the broker and
 * monitors, so these tests pin it down byte by byte: every record kind
 * survives put/get unchanged, a known order encodes to the documented
 * little-endian bytes, and sp_wire_check refuses each malformed header with
 * the exact code its header promises.  A small fuzz loop feeds random (and
 * nearly valid) buffers to the checker and decodes whatever it accepts, so a
 * length check that lets a short buffer through shows up as an out-of-bounds
 * read under the address sanitizer.  Nothing here touches IPC: the tests are
 * pure functions over buffers on the stack or the heap.
 */
#include "sp_rand.h"

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "sp_error.h"
#include "sp_wire.h"

/* Size of the scratch buffers: big enough for any message the tests build. */
#define T_BUF_SIZE 1024

/* Fuzz loop: iterations, longest buffer and seed. */
#define T_FUZZ_ROUNDS  10000u
#define T_FUZZ_MAX_LEN 600u
#define T_FUZZ_SEED    UINT64_C(0x2545f4914f6cdd1d)
/* The biased generator must get at least this many buffers accepted, or the
 * decode half of the fuzz test never ran. */
#define T_FUZZ_MIN_ACCEPTED 500u

/* A kind just above the last one defined. */
#define T_KIND_TOO_BIG (SP_MSG_KIND_MAX + 1u)

/* A valid purchase order with distinct bytes in every field. */
static sp_order_t s_sample_order(void)
{
    sp_order_t o;
    memset(&o, 0, sizeof o);
    o.type = SP_ORDER_PURCHASE;
    o.producer_id = 7;
    o.seq = 42;
    o.product_id = 3;
    o.quantity = 5;
    o.sched_ns = UINT64_C(123456789012);
    return o;
}

/* A message header with every field chosen, encoded in buf. */
static void s_put_raw_hdr(uint8_t *buf, uint32_t magic, uint8_t version, uint8_t kind,
                          uint16_t count)
{
    sp_wire_put_hdr(buf, kind, count, 1, 1);
    buf[0] = (uint8_t)magic;
    buf[1] = (uint8_t)(magic >> 8);
    buf[2] = (uint8_t)(magic >> 16);
    buf[3] = (uint8_t)(magic >> 24);
    buf[4] = version;
}

Test(wire, header_round_trips_through_put_and_get)
{
    uint8_t buf[SP_WIRE_HDR_SIZE];
    sp_msg_hdr_t h;

    sp_wire_put_hdr(buf, SP_MSG_RESULTS, 4095, UINT32_C(0xdeadbeef), UINT32_C(0x01020304));
    sp_wire_get_hdr(buf, &h);

    cr_expect_eq(h.magic, SP_WIRE_MAGIC);
    cr_expect_eq(h.version, SP_WIRE_VERSION);
    cr_expect_eq(h.kind, SP_MSG_RESULTS);
    cr_expect_eq(h.count, 4095);
    cr_expect_eq(h.sender, UINT32_C(0xdeadbeef));
    cr_expect_eq(h.batch, UINT32_C(0x01020304));
}

Test(wire, order_round_trips_through_put_and_get)
{
    sp_order_t in = {
        .type = SP_ORDER_RESTOCK,
        .flags = 0xa5,
        .reserved = 0xbeef,
        .producer_id = UINT32_MAX,
        .seq = UINT64_MAX - 1u,
        .product_id = 0x00abcdef,
        .quantity = SP_QTY_MAX,
        .sched_ns = UINT64_C(0x0123456789abcdef),
    };
    uint8_t buf[SP_WIRE_ORDER_SIZE];
    sp_order_t out;
    memset(&out, 0xff, sizeof out);

    sp_wire_put_order(buf, &in);
    sp_wire_get_order(buf, &out);

    cr_expect_eq(out.type, in.type);
    cr_expect_eq(out.flags, in.flags);
    cr_expect_eq(out.reserved, in.reserved);
    cr_expect_eq(out.producer_id, in.producer_id);
    cr_expect_eq(out.seq, in.seq);
    cr_expect_eq(out.product_id, in.product_id);
    cr_expect_eq(out.quantity, in.quantity);
    cr_expect_eq(out.sched_ns, in.sched_ns);
}

Test(wire, result_round_trips_through_put_and_get)
{
    sp_result_t in = {
        .producer_id = 0x11223344,
        .status = SP_STATUS_DUPLICATE,
        .type = SP_ORDER_PURCHASE,
        .worker_id = 0xfe,
        .original = SP_STATUS_OUT_OF_STOCK,
        .seq = UINT64_C(0x8000000000000001),
        .product_id = 99,
        .stock_after = 1000000000u,
        .sched_ns = UINT64_C(1),
        .applied_ns = UINT64_MAX,
    };
    uint8_t buf[SP_WIRE_RESULT_SIZE];
    sp_result_t out;
    memset(&out, 0, sizeof out);

    sp_wire_put_result(buf, &in);
    sp_wire_get_result(buf, &out);

    cr_expect_eq(out.producer_id, in.producer_id);
    cr_expect_eq(out.status, in.status);
    cr_expect_eq(out.type, in.type);
    cr_expect_eq(out.worker_id, in.worker_id);
    cr_expect_eq(out.original, in.original);
    cr_expect_eq(out.seq, in.seq);
    cr_expect_eq(out.product_id, in.product_id);
    cr_expect_eq(out.stock_after, in.stock_after);
    cr_expect_eq(out.sched_ns, in.sched_ns);
    cr_expect_eq(out.applied_ns, in.applied_ns);
}

Test(wire, event_round_trips_through_put_and_get)
{
    sp_event_t in = {
        .pub_seq = UINT64_C(0x0102030405060708),
        .publisher_id = 3,
        .product_id = 16777216u,
        .old_stock = 10,
        .new_stock = 9,
        .row_version = UINT32_MAX,
        .order_producer = 12,
        .order_seq = UINT64_C(77),
        .ts_ns = UINT64_C(0xfffffffffffffffe),
    };
    uint8_t buf[SP_WIRE_EVENT_SIZE];
    sp_event_t out;
    memset(&out, 0, sizeof out);

    sp_wire_put_event(buf, &in);
    sp_wire_get_event(buf, &out);

    cr_expect_eq(out.pub_seq, in.pub_seq);
    cr_expect_eq(out.publisher_id, in.publisher_id);
    cr_expect_eq(out.product_id, in.product_id);
    cr_expect_eq(out.old_stock, in.old_stock);
    cr_expect_eq(out.new_stock, in.new_stock);
    cr_expect_eq(out.row_version, in.row_version);
    cr_expect_eq(out.order_producer, in.order_producer);
    cr_expect_eq(out.order_seq, in.order_seq);
    cr_expect_eq(out.ts_ns, in.ts_ns);
}

Test(wire, heartbeat_round_trips_through_put_and_get)
{
    sp_heartbeat_t in = {
        .pub_seq = UINT64_C(5000000000),
        .publisher_id = 63,
        .state = SP_PUB_STOPPING,
        .orders_applied = UINT64_C(0x00ff00ff00ff00ff),
        .ts_ns = UINT64_C(42),
        .pid = 4194304u,
        .reserved = 0x5a5a5a5a,
    };
    uint8_t buf[SP_WIRE_HEARTBEAT_SIZE];
    sp_heartbeat_t out;
    memset(&out, 0, sizeof out);

    sp_wire_put_heartbeat(buf, &in);
    sp_wire_get_heartbeat(buf, &out);

    cr_expect_eq(out.pub_seq, in.pub_seq);
    cr_expect_eq(out.publisher_id, in.publisher_id);
    cr_expect_eq(out.state, in.state);
    cr_expect_eq(out.orders_applied, in.orders_applied);
    cr_expect_eq(out.ts_ns, in.ts_ns);
    cr_expect_eq(out.pid, in.pid);
    cr_expect_eq(out.reserved, in.reserved);
}

Test(wire, order_encodes_to_the_documented_little_endian_bytes)
{
    /* type u8, flags u8, reserved u16, producer_id u32, seq u64,
     * product_id u32, quantity u32, sched_ns u64 */
    const sp_order_t o = {
        .type = 0x01,
        .flags = 0x02,
        .reserved = 0x0403,
        .producer_id = 0x08070605,
        .seq = UINT64_C(0x100f0e0d0c0b0a09),
        .product_id = 0x14131211,
        .quantity = 0x18171615,
        .sched_ns = UINT64_C(0x201f1e1d1c1b1a19),
    };
    uint8_t expected[SP_WIRE_ORDER_SIZE];
    for (unsigned i = 0; i < SP_WIRE_ORDER_SIZE; i++) {
        expected[i] = (uint8_t)(i + 1u);
    }
    uint8_t buf[SP_WIRE_ORDER_SIZE + 2];
    memset(buf, 0xee, sizeof buf);

    sp_wire_put_order(buf + 1, &o);

    cr_expect_eq(memcmp(buf + 1, expected, SP_WIRE_ORDER_SIZE), 0,
                 "order bytes differ from the documented layout");
    cr_expect_eq(buf[0], 0xee, "wrote before the record");
    cr_expect_eq(buf[SP_WIRE_ORDER_SIZE + 1], 0xee, "wrote past the record");
}

Test(wire, header_encodes_to_the_documented_little_endian_bytes)
{
    /* magic "SPW1", version, kind, count u16, sender u32, batch u32 */
    const uint8_t expected[SP_WIRE_HDR_SIZE] = {
        'S',  'P',  'W',  '1', SP_WIRE_VERSION, SP_MSG_ORDERS, 0x02, 0x01, 0x13, 0x12, 0x11, 0x10,
        0x23, 0x22, 0x21, 0x20};
    uint8_t buf[SP_WIRE_HDR_SIZE];

    sp_wire_put_hdr(buf, SP_MSG_ORDERS, 0x0102, 0x10111213, 0x20212223);

    cr_expect_eq(memcmp(buf, expected, sizeof buf), 0, "header bytes differ from the layout");
}

Test(wire, record_and_message_sizes_match_the_layout)
{
    cr_expect_eq(sp_wire_record_size(SP_MSG_ORDERS), SP_WIRE_ORDER_SIZE);
    cr_expect_eq(sp_wire_record_size(SP_MSG_RESULTS), SP_WIRE_RESULT_SIZE);
    cr_expect_eq(sp_wire_record_size(SP_MSG_EVENTS), SP_WIRE_EVENT_SIZE);
    cr_expect_eq(sp_wire_record_size(SP_MSG_HEARTBEAT), SP_WIRE_HEARTBEAT_SIZE);
    cr_expect_eq(sp_wire_record_size(SP_MSG_CREDIT), 0);
    cr_expect_eq(sp_wire_record_size(SP_MSG_EOS), 0);
    cr_expect_eq(sp_wire_record_size(SP_MSG_EOS_ACK), 0);
    cr_expect_eq(sp_wire_record_size(SP_MSG_STATS), SP_WIRE_COUNTER_SIZE);
    cr_expect_eq(sp_wire_record_size(SP_MSG_SNAP_REQ), 0);
    cr_expect_eq(sp_wire_record_size(SP_MSG_SNAP_BEGIN), SP_WIRE_COUNTER_SIZE);
    cr_expect_eq(sp_wire_record_size(SP_MSG_SNAP_ROWS), SP_WIRE_SNAPROW_SIZE);
    cr_expect_eq(sp_wire_record_size(SP_MSG_SNAP_END), SP_WIRE_COUNTER_SIZE);
    cr_expect_eq(sp_wire_record_size(0), 0);
    cr_expect_eq(sp_wire_record_size(T_KIND_TOO_BIG), 0);

    cr_expect_eq(sp_wire_msg_size(SP_MSG_ORDERS, 0), SP_WIRE_HDR_SIZE);
    cr_expect_eq(sp_wire_msg_size(SP_MSG_ORDERS, 3), SP_WIRE_HDR_SIZE + 3 * SP_WIRE_ORDER_SIZE);
    cr_expect_eq(sp_wire_msg_size(SP_MSG_EVENTS, SP_WIRE_MAX_RECORDS),
                 SP_WIRE_HDR_SIZE + (size_t)SP_WIRE_MAX_RECORDS * SP_WIRE_EVENT_SIZE);
    cr_expect_eq(sp_wire_msg_size(SP_MSG_EOS, 0), SP_WIRE_HDR_SIZE);
}

Test(wire, check_accepts_a_well_formed_orders_message)
{
    uint8_t buf[T_BUF_SIZE];
    const sp_order_t o = s_sample_order();
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, 2, 9, 77);
    sp_wire_put_order(sp_wire_rec(buf, SP_MSG_ORDERS, 0), &o);
    sp_wire_put_order(sp_wire_rec(buf, SP_MSG_ORDERS, 1), &o);
    sp_msg_hdr_t h;
    memset(&h, 0, sizeof h);

    int rc = sp_wire_check(buf, sp_wire_msg_size(SP_MSG_ORDERS, 2), &h);

    cr_expect_eq(rc, 0, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_eq(h.kind, SP_MSG_ORDERS);
    cr_expect_eq(h.count, 2);
    cr_expect_eq(h.sender, 9);
    cr_expect_eq(h.batch, 77);
    cr_expect_eq(sp_wire_check(buf, sp_wire_msg_size(SP_MSG_ORDERS, 2), NULL), 0,
                 "hdr may be NULL");
}

Test(wire, check_refuses_buffers_shorter_than_a_header)
{
    uint8_t buf[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(buf, SP_MSG_EOS, 0, 0, 0);
    cr_assert_eq(sp_wire_check(buf, SP_WIRE_HDR_SIZE, NULL), 0);

    for (size_t len = 0; len < SP_WIRE_HDR_SIZE; len++) {
        cr_expect_eq(sp_wire_check(buf, len, NULL), SP_E_BAD_SIZE, "len=%zu", len);
    }
    cr_expect_eq(sp_wire_check(NULL, SP_WIRE_HDR_SIZE, NULL), SP_E_BAD_SIZE);
}

Test(wire, check_refuses_a_length_that_disagrees_with_the_count)
{
    uint8_t buf[T_BUF_SIZE];
    memset(buf, 0, sizeof buf);
    sp_wire_put_hdr(buf, SP_MSG_RESULTS, 2, 1, 1);
    size_t exact = sp_wire_msg_size(SP_MSG_RESULTS, 2);
    cr_assert_eq(sp_wire_check(buf, exact, NULL), 0);

    cr_expect_eq(sp_wire_check(buf, exact - 1u, NULL), SP_E_BAD_SIZE, "one byte short");
    cr_expect_eq(sp_wire_check(buf, exact + 1u, NULL), SP_E_BAD_SIZE, "one byte over");
    cr_expect_eq(sp_wire_check(buf, sp_wire_msg_size(SP_MSG_RESULTS, 1), NULL), SP_E_BAD_SIZE,
                 "one record short");
    cr_expect_eq(sp_wire_check(buf, sp_wire_msg_size(SP_MSG_RESULTS, 3), NULL), SP_E_BAD_SIZE,
                 "one record over");
    cr_expect_eq(sp_wire_check(buf, SP_WIRE_HDR_SIZE, NULL), SP_E_BAD_SIZE, "header only");
}

Test(wire, check_refuses_more_than_the_maximum_records)
{
    size_t len = sp_wire_msg_size(SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS + 1u);
    uint8_t *buf = calloc(1, len);
    cr_assert_not_null(buf);
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS, 1, 1);
    cr_assert_eq(sp_wire_check(buf, sp_wire_msg_size(SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS), NULL), 0,
                 "the maximum itself is allowed");

    /* The length matches the count, so only the count limit can refuse it. */
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS + 1u, 1, 1);
    cr_expect_eq(sp_wire_check(buf, len, NULL), SP_E_BAD_SIZE);

    /* A credit has no records, so its length is always right: the count
     * limit still applies. */
    sp_wire_put_hdr(buf, SP_MSG_CREDIT, SP_WIRE_MAX_RECORDS + 1u, 1, 1);
    cr_expect_eq(sp_wire_check(buf, SP_WIRE_HDR_SIZE, NULL), SP_E_BAD_SIZE);
    free(buf);
}

Test(wire, check_refuses_eos_with_a_count)
{
    uint8_t buf[SP_WIRE_HDR_SIZE];

    sp_wire_put_hdr(buf, SP_MSG_EOS, 0, 1, 1);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), 0, "EOS without records is fine");

    sp_wire_put_hdr(buf, SP_MSG_EOS, 1, 1, 1);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_SIZE);

    sp_wire_put_hdr(buf, SP_MSG_EOS_ACK, 3, 1, 1);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_SIZE);
}

Test(wire, check_accepts_credit_with_a_count_and_no_records)
{
    uint8_t buf[SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE];
    memset(buf, 0, sizeof buf);
    sp_wire_put_hdr(buf, SP_MSG_CREDIT, 4, 2, 0);
    sp_msg_hdr_t h;
    memset(&h, 0, sizeof h);

    cr_expect_eq(sp_wire_check(buf, SP_WIRE_HDR_SIZE, &h), 0);
    cr_expect_eq(h.kind, SP_MSG_CREDIT);
    cr_expect_eq(h.count, 4);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_SIZE,
                 "a credit carries no record bytes");
}

Test(wire, check_refuses_a_wrong_magic)
{
    uint8_t buf[SP_WIRE_HDR_SIZE];
    s_put_raw_hdr(buf, SP_WIRE_MAGIC ^ 1u, SP_WIRE_VERSION, SP_MSG_EOS, 0);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_MAGIC);

    /* The magic in the wrong byte order is not the magic. */
    s_put_raw_hdr(buf, __builtin_bswap32(SP_WIRE_MAGIC), SP_WIRE_VERSION, SP_MSG_EOS, 0);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_MAGIC);

    memset(buf, 0, sizeof buf);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_MAGIC);
}

Test(wire, check_refuses_a_wrong_version)
{
    uint8_t buf[SP_WIRE_HDR_SIZE];
    s_put_raw_hdr(buf, SP_WIRE_MAGIC, SP_WIRE_VERSION + 1, SP_MSG_EOS, 0);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_VERSION);

    s_put_raw_hdr(buf, SP_WIRE_MAGIC, 0, SP_MSG_EOS, 0);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_VERSION);
}

Test(wire, check_refuses_unknown_kinds)
{
    uint8_t buf[SP_WIRE_HDR_SIZE];
    s_put_raw_hdr(buf, SP_WIRE_MAGIC, SP_WIRE_VERSION, 0, 0);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_KIND, "kind 0");

    s_put_raw_hdr(buf, SP_WIRE_MAGIC, SP_WIRE_VERSION, T_KIND_TOO_BIG, 0);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_KIND, "kind 8");

    s_put_raw_hdr(buf, SP_WIRE_MAGIC, SP_WIRE_VERSION, 0xff, 0);
    cr_expect_eq(sp_wire_check(buf, sizeof buf, NULL), SP_E_BAD_KIND, "kind 255");
}

Test(wire, check_order_accepts_valid_purchase_and_restock)
{
    sp_order_t o = s_sample_order();
    cr_expect_eq(sp_wire_check_order(&o), 0, "purchase");

    o.type = SP_ORDER_RESTOCK;
    cr_expect_eq(sp_wire_check_order(&o), 0, "restock");

    o.quantity = 1;
    cr_expect_eq(sp_wire_check_order(&o), 0, "quantity 1");

    o.quantity = SP_QTY_MAX;
    o.product_id = UINT32_MAX;
    cr_expect_eq(sp_wire_check_order(&o), 0, "largest quantity, largest id");
}

Test(wire, check_order_refuses_quantities_out_of_range)
{
    sp_order_t o = s_sample_order();

    o.quantity = 0;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "quantity 0");

    o.quantity = SP_QTY_MAX + 1u;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "quantity SP_QTY_MAX + 1");

    o.quantity = UINT32_MAX;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "quantity UINT32_MAX");
}

Test(wire, check_order_refuses_product_zero)
{
    sp_order_t o = s_sample_order();
    o.product_id = 0;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID);
}

Test(wire, check_order_refuses_unknown_types_and_checks_hold_seconds)
{
    const uint8_t types[] = {0, SP_ORDER_RELEASE + 1, 9, 0xff};
    for (size_t i = 0; i < sizeof types; i++) {
        sp_order_t o = s_sample_order();
        o.type = types[i];
        cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "type %u", types[i]);
    }
    sp_order_t o = s_sample_order();
    o.type = SP_ORDER_RESERVE;
    o.reserved = SP_HOLD_SECONDS_MAX;
    cr_expect_eq(sp_wire_check_order(&o), 0, "a reserve's hold time");
    o.reserved = SP_HOLD_SECONDS_MAX + 1;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "longer than an hour");
    o.type = SP_ORDER_BUY_HELD;
    o.reserved = 5;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "only a reserve carries seconds");
    o.reserved = 0;
    cr_expect_eq(sp_wire_check_order(&o), 0);
}

Test(wire, check_order_refuses_unknown_flags_reserved_and_bad_keys)
{
    sp_order_t o = s_sample_order();
    o.flags = SP_ORDER_F_RESENT;
    cr_expect_eq(sp_wire_check_order(&o), 0, "the resent flag is allowed");
    o.flags = 2;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "flags");

    o = s_sample_order();
    o.seq = 0;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "seq 0");
    o.seq = SP_SEQ_MAX + 1;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "seq past 2^40 - 1");
    o.seq = SP_SEQ_MAX;
    cr_expect_eq(sp_wire_check_order(&o), 0, "the last seq");

    o = s_sample_order();
    o.producer_id = 0;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "producer 0");

    o = s_sample_order();
    o.reserved = 0x8000;
    cr_expect_eq(sp_wire_check_order(&o), SP_E_INVALID, "reserved");
}

Test(wire, fit_counts_whole_records_and_caps_at_the_maximum)
{
    cr_expect_eq(sp_wire_fit(SP_MSG_ORDERS, 0), 0);
    cr_expect_eq(sp_wire_fit(SP_MSG_ORDERS, SP_WIRE_HDR_SIZE), 0, "header only");
    cr_expect_eq(sp_wire_fit(SP_MSG_ORDERS, SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE - 1u), 0);
    cr_expect_eq(sp_wire_fit(SP_MSG_ORDERS, SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE), 1);
    cr_expect_eq(sp_wire_fit(SP_MSG_ORDERS, 8192), (8192 - SP_WIRE_HDR_SIZE) / SP_WIRE_ORDER_SIZE);
    cr_expect_eq(sp_wire_fit(SP_MSG_RESULTS, 8192),
                 (8192 - SP_WIRE_HDR_SIZE) / SP_WIRE_RESULT_SIZE);
    cr_expect_eq(sp_wire_fit(SP_MSG_EVENTS, SP_WIRE_HDR_SIZE + 2 * SP_WIRE_EVENT_SIZE + 47), 2);
    cr_expect_eq(sp_wire_fit(SP_MSG_ORDERS, SIZE_MAX), SP_WIRE_MAX_RECORDS);
    cr_expect_eq(
        sp_wire_fit(SP_MSG_HEARTBEAT, sp_wire_msg_size(SP_MSG_HEARTBEAT, SP_WIRE_MAX_RECORDS + 1u)),
        SP_WIRE_MAX_RECORDS);

    /* A fitted count always gives a message no larger than the space. */
    for (size_t bytes = 0; bytes < 4096; bytes += 7) {
        unsigned n = sp_wire_fit(SP_MSG_RESULTS, bytes);
        if (n > 0) {
            cr_expect_leq(sp_wire_msg_size(SP_MSG_RESULTS, n), bytes, "bytes=%zu", bytes);
            cr_expect_gt(sp_wire_msg_size(SP_MSG_RESULTS, n + 1u), bytes, "bytes=%zu", bytes);
        }
    }

    /* Kinds without records never fit any. */
    cr_expect_eq(sp_wire_fit(SP_MSG_CREDIT, 8192), 0);
    cr_expect_eq(sp_wire_fit(SP_MSG_EOS, 8192), 0);
    cr_expect_eq(sp_wire_fit(0, 8192), 0);
}

Test(wire, kind_names_cover_every_kind)
{
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_ORDERS), "orders");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_RESULTS), "results");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_EVENTS), "events");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_HEARTBEAT), "heartbeat");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_CREDIT), "credit");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_EOS), "eos");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_EOS_ACK), "eos_ack");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_STATS), "stats");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_SNAP_REQ), "snap_req");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_SNAP_BEGIN), "snap_begin");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_SNAP_ROWS), "snap_rows");
    cr_expect_str_eq(sp_wire_kind_name(SP_MSG_SNAP_END), "snap_end");
    cr_expect_str_eq(sp_wire_kind_name(0), "?");
    cr_expect_str_eq(sp_wire_kind_name(T_KIND_TOO_BIG), "?");
    cr_expect_str_eq(sp_wire_kind_name(UINT32_MAX), "?");
}

Test(wire, order_type_names_cover_every_type)
{
    cr_expect_str_eq(sp_wire_order_type_name(SP_ORDER_PURCHASE), "purchase");
    cr_expect_str_eq(sp_wire_order_type_name(SP_ORDER_RESTOCK), "restock");
    cr_expect_str_eq(sp_wire_order_type_name(SP_ORDER_RESERVE), "reserve");
    cr_expect_str_eq(sp_wire_order_type_name(SP_ORDER_BUY_HELD), "buy_held");
    cr_expect_str_eq(sp_wire_order_type_name(SP_ORDER_RELEASE), "release");
    cr_expect_str_eq(sp_wire_order_type_name(0), "?");
    cr_expect_str_eq(sp_wire_order_type_name(SP_ORDER_RELEASE + 1u), "?");
    cr_expect_str_eq(sp_wire_order_type_name(UINT32_MAX), "?");
}

Test(wire, status_names_cover_every_status)
{
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_ACCEPTED), "accepted");
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_OUT_OF_STOCK), "out_of_stock");
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_UNKNOWN_PRODUCT), "unknown_product");
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_INVALID), "invalid");
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_DUPLICATE), "duplicate");
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_CONFLICT), "conflict");
    /* found by the wire fuzzer: the last status read past the name table */
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_NO_HOLD), "no_hold");
    cr_expect_str_eq(sp_wire_status_name(SP_STATUS_COUNT), "?");
    cr_expect_str_eq(sp_wire_status_name(UINT32_MAX), "?");
}

Test(wire, status_of_maps_each_apply_code)
{
    cr_expect_eq(sp_wire_status_of(0), SP_STATUS_ACCEPTED);
    cr_expect_eq(sp_wire_status_of(SP_E_OUT_OF_STOCK), SP_STATUS_OUT_OF_STOCK);
    cr_expect_eq(sp_wire_status_of(SP_E_UNKNOWN_PRODUCT), SP_STATUS_UNKNOWN_PRODUCT);
    cr_expect_eq(sp_wire_status_of(SP_E_INVALID), SP_STATUS_INVALID);
    cr_expect_eq(sp_wire_status_of(SP_E_DUPLICATE), SP_STATUS_DUPLICATE);
    /* Codes without a status of their own are reported as invalid. */
    cr_expect_eq(sp_wire_status_of(SP_E_STOCK_OVERFLOW), SP_STATUS_INVALID);
    cr_expect_eq(sp_wire_status_of(SP_E_TIMEOUT), SP_STATUS_INVALID);
    cr_expect_eq(sp_wire_status_of(-22), SP_STATUS_INVALID);
}

Test(wire, error_codes_have_their_own_text)
{
    const int codes[] = {
        SP_E_OUT_OF_STOCK,   SP_E_UNKNOWN_PRODUCT, SP_E_INVALID,     SP_E_DUPLICATE,
        SP_E_STOCK_OVERFLOW, SP_E_BAD_MAGIC,       SP_E_BAD_VERSION, SP_E_BAD_SIZE,
        SP_E_BAD_KIND,       SP_E_BAD_FIELD,       SP_E_BAD_LAYOUT,  SP_E_CSV_SYNTAX,
        SP_E_CSV_FIELD,      SP_E_CSV_HEADER,      SP_E_CSV_DUP_ID,  SP_E_CSV_EMPTY,
        SP_E_USAGE,          SP_E_TIMEOUT,         SP_E_NOT_READY,   SP_E_MQ_LIMIT,
        SP_E_STOPPED,
    };
    const size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *text = sp_strerror(codes[i]);
        cr_assert_not_null(text);
        cr_expect_str_neq(text, "unknown error", "code %d has no text", codes[i]);
        for (size_t j = 0; j < i; j++) {
            cr_expect_str_neq(text, sp_strerror(codes[j]), "codes %d and %d share a text", codes[i],
                              codes[j]);
        }
    }
    cr_expect_str_eq(sp_strerror(0), "success");
    cr_expect_str_eq(sp_strerror(-2), strerror(2), "negative errno falls through to strerror");
    cr_expect_str_eq(sp_strerror(-(SP_ERR_BASE + 99)), "unknown error");
    cr_expect_str_eq(sp_strerror(1), "unknown error");
}

/* Builds one fuzz input in buf (length *len): usually a header that is valid
 * or nearly so, followed by random bytes, so both the refusals and the decode
 * path get exercised; sometimes pure noise. */
static void s_fuzz_input(uint64_t *state, uint8_t *buf, size_t *len)
{
    uint64_t r = sp_rand_next(state);
    size_t n = (size_t)(r % (T_FUZZ_MAX_LEN + 1u));
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)sp_rand_next(state);
    }
    unsigned mode = (unsigned)((r >> 32) % 4u);
    if (mode == 0 || n < SP_WIRE_HDR_SIZE) {
        *len = n; /* noise */
        return;
    }
    unsigned kind = (unsigned)((r >> 40) % (SP_MSG_KIND_MAX + 2u));
    size_t rec = sp_wire_record_size(kind);
    unsigned count;
    if (mode == 3 && rec > 0) {
        /* an exact fit: the length agrees with the count */
        count = (unsigned)((n - SP_WIRE_HDR_SIZE) / rec);
        n = SP_WIRE_HDR_SIZE + count * rec;
    } else {
        count = (unsigned)((r >> 48) % 16u);
    }
    sp_wire_put_hdr(buf, kind, count, (uint32_t)r, (uint32_t)(r >> 16));
    if (mode == 1) {
        buf[(r >> 56) % SP_WIRE_HDR_SIZE] ^= (uint8_t)(1u << ((r >> 60) % 8u)); /* one bit off */
    }
    *len = n;
}

Test(wire, random_buffers_never_make_check_or_decode_misbehave)
{
    uint64_t state = T_FUZZ_SEED;
    uint8_t scratch[T_FUZZ_MAX_LEN];
    unsigned accepted = 0;
    unsigned records = 0;

    for (unsigned round = 0; round < T_FUZZ_ROUNDS; round++) {
        size_t len = 0;
        s_fuzz_input(&state, scratch, &len);
        /* A heap copy of exactly len bytes, so the sanitizer sees any read
         * past the end. */
        uint8_t *buf = malloc(len > 0 ? len : 1);
        cr_assert_not_null(buf);
        memcpy(buf, scratch, len);

        sp_msg_hdr_t h;
        int rc = sp_wire_check(buf, len, &h);
        if (rc != 0) {
            cr_expect(rc == SP_E_BAD_SIZE || rc == SP_E_BAD_MAGIC || rc == SP_E_BAD_VERSION ||
                          rc == SP_E_BAD_KIND,
                      "round %u: unexpected code %d", round, rc);
            free(buf);
            continue;
        }
        accepted++;
        cr_expect_geq(h.kind, 1, "round %u", round);
        cr_expect_leq(h.kind, SP_MSG_KIND_MAX, "round %u", round);
        cr_expect_leq(h.count, SP_WIRE_MAX_RECORDS, "round %u", round);
        size_t rec = sp_wire_record_size(h.kind);
        cr_expect_eq(len, SP_WIRE_HDR_SIZE + h.count * rec, "round %u", round);
        if (rec == 0) {
            free(buf);
            continue;
        }
        for (unsigned i = 0; i < h.count; i++) {
            const void *src = sp_wire_crec(buf, h.kind, i);
            uint8_t again[SP_WIRE_SNAPROW_SIZE];
            switch (h.kind) {
            case SP_MSG_ORDERS: {
                sp_order_t o;
                sp_wire_get_order(src, &o);
                int orc = sp_wire_check_order(&o);
                cr_expect(orc == 0 || orc == SP_E_INVALID, "round %u: check_order %d", round, orc);
                sp_wire_put_order(again, &o);
                break;
            }
            case SP_MSG_RESULTS: {
                sp_result_t res;
                sp_wire_get_result(src, &res);
                sp_wire_put_result(again, &res);
                break;
            }
            case SP_MSG_EVENTS: {
                sp_event_t e;
                sp_wire_get_event(src, &e);
                sp_wire_put_event(again, &e);
                break;
            }
            case SP_MSG_SNAP_ROWS: {
                /* text fields end at their first NUL: decoding always gives
                 * terminated strings, and a second round trip is stable */
                sp_snaprow_t r1, r2;
                sp_wire_get_snaprow(src, &r1);
                cr_expect_lt(strlen(r1.name), sizeof r1.name, "round %u", round);
                cr_expect_lt(strlen(r1.category), sizeof r1.category, "round %u", round);
                uint8_t third[SP_WIRE_SNAPROW_SIZE];
                sp_wire_put_snaprow(again, &r1);
                sp_wire_get_snaprow(again, &r2);
                sp_wire_put_snaprow(third, &r2);
                cr_expect_eq(memcmp(third, again, rec), 0, "round %u record %u", round, i);
                memcpy(again, src, rec);
                break;
            }
            case SP_MSG_HEARTBEAT: {
                sp_heartbeat_t hb;
                sp_wire_get_heartbeat(src, &hb);
                sp_wire_put_heartbeat(again, &hb);
                break;
            }
            case SP_MSG_HELLO: {
                sp_hello_t hl;
                sp_wire_get_hello(src, &hl);
                sp_wire_put_hello(again, &hl);
                break;
            }
            default: {
                sp_counter_t c;
                sp_wire_get_counter(src, &c);
                sp_wire_put_counter(again, &c);
                break;
            }
            }
            /* Every byte of a (non-text) record is some field, so decode +
             * encode is the identity. */
            cr_expect_eq(memcmp(again, src, rec), 0, "round %u record %u", round, i);
            records++;
        }
        free(buf);
    }

    cr_expect_geq(accepted, T_FUZZ_MIN_ACCEPTED, "only %u buffers passed the check", accepted);
    cr_expect_gt(records, 0, "no record was decoded");
}

Test(wire, counter_bytes_are_documented_little_endian)
{
    sp_counter_t c = {.id = 0x0102, .index = 0x0304, .value = 0x1112131415161718ull}, back;
    uint8_t b[SP_WIRE_COUNTER_SIZE];
    sp_wire_put_counter(b, &c);
    const uint8_t want[SP_WIRE_COUNTER_SIZE] = {0x02, 0x01, 0x04, 0x03, 0,    0,    0,    0,
                                                0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11};
    cr_expect_eq(memcmp(b, want, sizeof b), 0);
    sp_wire_get_counter(b, &back);
    cr_expect_eq(memcmp(&back, &c, sizeof c), 0);
}

Test(wire, snapshot_rows_round_trip_and_texts_stay_terminated)
{
    sp_snaprow_t r = {.id = 7,
                      .stock = 12,
                      .version = 3,
                      .weight_g = 500,
                      .expiry = 20261122,
                      .initial_stock = 20,
                      .price_cents = 1999,
                      .sold = 9,
                      .restocked = 1};
    snprintf(r.name, sizeof r.name, "Caf\xc3\xa9 molido");
    snprintf(r.category, sizeof r.category, "Despensa");
    uint8_t b[SP_WIRE_SNAPROW_SIZE];
    memset(b, 0xaa, sizeof b);
    sp_wire_put_snaprow(b, &r);
    cr_expect_eq(b[48 + strlen(r.name)], 0, "name padded with NULs");
    cr_expect_eq(b[48 + 47], 0);
    cr_expect_eq(b[127], 0, "category padded with NULs");
    sp_snaprow_t back;
    sp_wire_get_snaprow(b, &back);
    cr_expect_eq(back.id, 7);
    cr_expect_eq(back.version, 3);
    cr_expect_eq(back.price_cents, 1999);
    cr_expect_eq(back.restocked, 1);
    cr_expect_str_eq(back.name, r.name);
    cr_expect_str_eq(back.category, "Despensa");
    /* a hostile sender fills the text fields with no NUL at all */
    memset(b + 48, 'x', 80);
    sp_wire_get_snaprow(b, &back);
    cr_expect_eq(strlen(back.name), sizeof back.name - 1);
    cr_expect_eq(strlen(back.category), sizeof back.category - 1);
}
