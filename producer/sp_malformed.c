/*
 * sp_malformed — the malformed messages of --inject-malformed (see
 * sp_malformed.h for the kinds and what each must get).
 */
#include "sp_malformed.h"

#include "sp_rand.h"

#include <string.h>

bool sp_malformed_seq(uint64_t seq)
{
    return seq > SP_MALFORMED_SEQ_LOW;
}

size_t sp_malformed_make(uint8_t *m, size_t max_msg, uint64_t no, uint32_t producer_id,
                         uint32_t product_id, uint32_t *batch_no, uint64_t *rng, bool *dead)
{
    sp_order_t o = {.type = SP_ORDER_PURCHASE,
                    .producer_id = producer_id,
                    .seq = SP_SEQ_MAX - (no % (SP_SEQ_MAX - SP_MALFORMED_SEQ_LOW)),
                    .product_id = product_id,
                    .quantity = 1};
    size_t one = sp_wire_msg_size(SP_MSG_ORDERS, 1);
    sp_wire_put_hdr(m, SP_MSG_ORDERS, 1, producer_id, (*batch_no)++);
    *dead = true;
    unsigned variant = (unsigned)(no % SP_MALFORMED_KINDS);
    switch (variant) {
    case 0: { /* noise, never starting with the magic */
        size_t len = (size_t)(sp_rand_next(rng) % (max_msg + 1));
        for (size_t i = 0; i < len; i++) {
            m[i] = (uint8_t)sp_rand_next(rng);
        }
        if (len > 0) {
            m[0] = 0;
        }
        return len;
    }
    case 1: /* a header cut short */
        return 1 + (size_t)(sp_rand_next(rng) % (SP_WIRE_HDR_SIZE - 1));
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
        sp_wire_put_hdr(m, SP_MSG_RESULTS, 1, producer_id, (*batch_no)++);
        memset(m + SP_WIRE_HDR_SIZE, 0, SP_WIRE_RESULT_SIZE);
        return sp_wire_msg_size(SP_MSG_RESULTS, 1);
    case 7: /* says 3 records, holds 1 */
        sp_wire_put_hdr(m, SP_MSG_ORDERS, 3, producer_id, (*batch_no)++);
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        return one;
    case 8: /* says 1, holds 1 and a half */
        sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
        memset(m + one, 0x41, SP_WIRE_ORDER_SIZE / 2);
        return one + SP_WIRE_ORDER_SIZE / 2;
    case 9: /* no records at all */
        sp_wire_put_hdr(m, SP_MSG_ORDERS, 0, producer_id, (*batch_no)++);
        return SP_WIRE_HDR_SIZE;
    case 10: /* a count beyond any message */
        sp_wire_put_hdr(m, SP_MSG_ORDERS, 0xffff, producer_id, (*batch_no)++);
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
        o.producer_id = producer_id ^ 0x40000000u; /* somebody else's order */
        break;
    }
    sp_wire_put_order(m + SP_WIRE_HDR_SIZE, &o);
    return one;
}
