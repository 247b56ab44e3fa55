/*
 * Tests for sp_malformed, the hostile input of --inject-malformed: every
 * kind comes in turn, each message fits the room sp_malformed.h promises,
 * what must be dead-lettered cannot be read as an order message, what must
 * be refused is a well-formed message of one order whose answer is told
 * apart from real orders' answers, and the sender's counters advance.
 */
#include "sp_malformed.h"

#include "sp_wire.h"

#include <criterion/criterion.h>
#include <stdlib.h>

#define T_PRODUCER 77
#define T_PRODUCT  5
#define T_ROUNDS   (3 * SP_MALFORMED_KINDS)
#define T_DEAD     11 /* kinds that must be dead-lettered, of SP_MALFORMED_KINDS */

/* Makes message `no` for a sender whose largest message holds `batch`
 * orders; *m is malloc'd with exactly the promised room. */
static size_t s_make(unsigned batch, uint64_t no, uint8_t **m, size_t *room, bool *dead,
                     uint32_t *batch_no, uint64_t *rng)
{
    size_t max_msg = sp_wire_msg_size(SP_MSG_ORDERS, batch);
    *room = max_msg + SP_MALFORMED_ROOM;
    *m = malloc(*room);
    cr_assert_not_null(*m);
    return sp_malformed_make(*m, max_msg, no, T_PRODUCER, T_PRODUCT, batch_no, rng, dead);
}

Test(malformed, every_message_fits_the_promised_room)
{
    static const unsigned batches[] = {1, 2, SP_BATCH_DEFAULT, SP_WIRE_MAX_RECORDS};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        uint32_t batch_no = 0;
        uint64_t rng = 1;
        for (uint64_t no = 0; no < T_ROUNDS; no++) {
            uint8_t *m;
            size_t room;
            bool dead;
            size_t len = s_make(batches[b], no, &m, &room, &dead, &batch_no, &rng);
            cr_expect_leq(len, room, "batch %u, message %llu: %zu bytes in %zu", batches[b],
                          (unsigned long long)no, len, room);
            free(m);
        }
    }
}

Test(malformed, dead_letters_are_never_an_order_message)
{
    uint32_t batch_no = 0;
    uint64_t rng = 3;
    for (uint64_t no = 0; no < T_ROUNDS; no++) {
        uint8_t *m;
        size_t room;
        bool dead;
        size_t len = s_make(SP_BATCH_DEFAULT, no, &m, &room, &dead, &batch_no, &rng);
        if (dead) {
            sp_msg_hdr_t h = {0};
            bool orders = sp_wire_check(m, len, &h) == 0 && h.kind == SP_MSG_ORDERS && h.count > 0;
            cr_expect_not(orders, "message %llu (kind %llu) reads as %u orders",
                          (unsigned long long)no, (unsigned long long)(no % SP_MALFORMED_KINDS),
                          h.count);
        }
        free(m);
    }
}

Test(malformed, refused_orders_are_well_formed_and_told_apart)
{
    uint32_t batch_no = 0;
    uint64_t rng = 5;
    for (uint64_t no = 0; no < T_ROUNDS; no++) {
        uint8_t *m;
        size_t room;
        bool dead;
        size_t len = s_make(SP_BATCH_DEFAULT, no, &m, &room, &dead, &batch_no, &rng);
        if (!dead) {
            sp_msg_hdr_t h;
            cr_assert_eq(sp_wire_check(m, len, &h), 0, "message %llu", (unsigned long long)no);
            cr_expect_eq(h.kind, SP_MSG_ORDERS);
            cr_expect_eq(h.count, 1);
            cr_expect_eq(h.sender, T_PRODUCER);
            sp_order_t o;
            sp_wire_get_order(sp_wire_crec(m, SP_MSG_ORDERS, 0), &o);
            cr_expect(sp_malformed_seq(o.seq), "message %llu: seq %llu looks like a real order's",
                      (unsigned long long)no, (unsigned long long)o.seq);
        }
        free(m);
    }
}

Test(malformed, the_kinds_come_in_turn)
{
    uint32_t batch_no = 0;
    uint64_t rng = 7;
    for (unsigned round = 0; round < 3; round++) {
        unsigned dead_n = 0;
        for (unsigned k = 0; k < SP_MALFORMED_KINDS; k++) {
            uint8_t *m;
            size_t room;
            bool dead;
            s_make(1, (uint64_t)round * SP_MALFORMED_KINDS + k, &m, &room, &dead, &batch_no, &rng);
            dead_n += dead;
            free(m);
        }
        cr_expect_eq(dead_n, T_DEAD, "round %u: %u dead letters", round, dead_n);
    }
}

Test(malformed, the_senders_batch_counter_advances)
{
    uint32_t batch_no = 40;
    uint64_t rng = 9;
    uint8_t *m;
    size_t room;
    bool dead;
    s_make(1, 2, &m, &room, &dead, &batch_no, &rng); /* wrong magic: one header */
    cr_expect_eq(batch_no, 41);
    free(m);
}

Test(malformed, real_order_numbers_are_never_taken_for_injected_ones)
{
    cr_expect_not(sp_malformed_seq(1));
    cr_expect_not(sp_malformed_seq(SP_MALFORMED_SEQ_LOW));
    cr_expect(sp_malformed_seq(SP_MALFORMED_SEQ_LOW + 1));
    cr_expect(sp_malformed_seq(SP_SEQ_MAX));
}
