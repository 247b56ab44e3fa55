/*
 * Tests for sp_again, the queue of messages a nats producer link sends
 * again: order and contents across growth, a peeked message left first
 * and readable while pushes grow the queue under it (the producer waits
 * for room with it peeked while nats.c's thread adds more), and one thread
 * pushing while another drains.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sp_again.h"

/* More messages than the first ring holds, so it grows several times. */
#define T_MANY 1000u
/* Messages the pushing thread adds while the main thread drains. */
#define T_RACE 100000u
/* The first ring's size (sp_again.c): pushed to fill it exactly. */
#define T_FIRST_CAP 64u

/* Message i: its number in text, then 'x' repeated i % 50 times. */
static size_t s_make(unsigned i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "m%u:", i);
    size_t len = (size_t)n + i % 50u;
    cr_assert_lt(len, cap);
    memset(buf + n, 'x', i % 50u);
    return len;
}

/* The oldest message must be message i; it is then popped. */
static void s_expect_pop(sp_again_t *q, unsigned i)
{
    char want[96];
    size_t want_len = s_make(i, want, sizeof want);
    const void *data = NULL;
    size_t len = 0;
    cr_assert(sp_again_peek(q, &data, &len), "queue empty at message %u", i);
    cr_assert_eq(len, want_len, "message %u: %zu bytes, not %zu", i, len, want_len);
    cr_assert(memcmp(data, want, len) == 0, "message %u: wrong bytes", i);
    sp_again_pop(q);
}

Test(again, an_empty_queue_peeks_nothing_and_pops_nothing)
{
    sp_again_t q;
    sp_again_init(&q);
    const void *data = NULL;
    size_t len = 0;
    cr_expect_not(sp_again_peek(&q, &data, &len));
    sp_again_pop(&q);
    cr_expect_eq(sp_again_count(&q), 0);
    cr_assert_eq(sp_again_push(&q, "", 0), 0, "an empty message is a message");
    cr_expect(sp_again_peek(&q, &data, &len));
    cr_expect_eq(len, 0);
    sp_again_pop(&q);
    cr_expect_eq(sp_again_count(&q), 0);
    sp_again_fini(&q);
}

Test(again, messages_come_out_in_order_with_their_bytes_across_growth)
{
    sp_again_t q;
    sp_again_init(&q);
    char buf[96];
    unsigned next_out = 0;
    /* pops between pushes move the head, so growth copies a wrapped ring */
    for (unsigned i = 0; i < T_MANY; i++) {
        cr_assert_eq(sp_again_push(&q, buf, s_make(i, buf, sizeof buf)), 0);
        if (i % 3 == 0) {
            s_expect_pop(&q, next_out++);
        }
    }
    cr_expect_eq(sp_again_count(&q), T_MANY - next_out);
    while (next_out < T_MANY) {
        s_expect_pop(&q, next_out++);
    }
    cr_expect_eq(sp_again_count(&q), 0);
    sp_again_fini(&q);
}

/* The producer peeks the oldest message, finds no room for it and waits;
 * meanwhile the full ring fills up again and grows.  The peeked message
 * must still be first, its bytes intact, and nothing may be lost. */
Test(again, a_peeked_message_stays_first_while_pushes_grow_the_queue)
{
    sp_again_t q;
    sp_again_init(&q);
    char buf[96];
    unsigned pushed = 0;
    for (; pushed < T_FIRST_CAP; pushed++) {
        cr_assert_eq(sp_again_push(&q, buf, s_make(pushed, buf, sizeof buf)), 0);
    }
    const void *data = NULL;
    size_t len = 0;
    cr_assert(sp_again_peek(&q, &data, &len));
    char first[96];
    memcpy(first, data, len);
    size_t first_len = len;
    for (; pushed < 5 * T_FIRST_CAP; pushed++) {
        cr_assert_eq(sp_again_push(&q, buf, s_make(pushed, buf, sizeof buf)), 0);
    }
    cr_expect_eq(sp_again_count(&q), pushed);
    cr_assert(memcmp(data, first, first_len) == 0, "the peeked bytes moved or changed");
    for (unsigned i = 0; i < pushed; i++) {
        s_expect_pop(&q, i);
    }
    cr_expect_not(sp_again_peek(&q, &data, &len));
    sp_again_fini(&q);
}

static void *s_pusher(void *arg)
{
    sp_again_t *q = arg;
    char buf[96];
    for (unsigned i = 0; i < T_RACE; i++) {
        if (sp_again_push(q, buf, s_make(i, buf, sizeof buf)) != 0) {
            return (void *)1;
        }
    }
    return NULL;
}

Test(again, one_thread_pushes_while_another_drains_in_order, .timeout = 60)
{
    sp_again_t q;
    sp_again_init(&q);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_pusher, &q), 0);
    for (unsigned i = 0; i < T_RACE;) {
        const void *data = NULL;
        size_t len = 0;
        if (!sp_again_peek(&q, &data, &len)) {
            sched_yield();
            continue;
        }
        if (i % 7 == 0) {
            sched_yield(); /* a send that takes a while, the message still first */
        }
        s_expect_pop(&q, i++);
    }
    void *failed = NULL;
    pthread_join(t, &failed);
    cr_expect_null(failed, "a push failed");
    cr_expect_eq(sp_again_count(&q), 0);
    sp_again_fini(&q);
}
