/*
 * Tests for the `shm` transport: the segment /NAME.ring (sp_shmlink.h) and
 * the links behind sp_link.h that use it, then the real broker running it.
 *
 * Link tests make their own small segment (slots of T_SLOT bytes) under an
 * instance name carrying the test's tag and pid; the fixture closes every
 * link and mapping and removes the segment, pass or fail.  Broker tests use
 * spt_broker_start and check with spt_leftovers (which looks for the .ring
 * name too) that nothing outlives the broker.
 *
 * What is checked: the segment's layout, mode and exclusive creation; that
 * an opener refuses what is not our segment with the exact code; orders and
 * results crossing a forked process, routed by the header's sender; the
 * timeouts; the 64-producer limit and the take-over of a dead producer's
 * ring; stale results never reaching the wrong producer; garbage put straight
 * into the orders ring being dead-lettered without touching stock; and the
 * producer's batch check against the slot size.
 */
#include "sp_shmlink.h"
#include "sp_mq.h"
#include "sp_testutil.h"

#include "sp_error.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_table.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_SLOT        1024 /* slot size of the link tests' segments */
#define T_TIMEOUT_MS  50   /* waits that must time out */
#define T_WAIT_MS     5000 /* waits that must succeed */
#define T_WHY_CAP     256
#define T_WORKER_ID   1
#define T_PRODUCER_ID 7
#define T_OTHER_ID    8
#define T_MAX_LINKS   (SP_SHM_RESULT_RINGS + 2)
#define T_RUN_MS      60000 /* the producer binary's bounded run */

static sp_names_t s_names;
static sp_shm_t *s_shm;
static sp_link_t *s_links[T_MAX_LINKS];

static void s_cleanup(void)
{
    for (unsigned i = 0; i < T_MAX_LINKS; i++) {
        sp_link_close(&s_links[i]);
    }
    sp_shm_close(&s_shm);
    if (s_names.name[0] != '\0') {
        sp_shm_remove(&s_names);
    }
}

TestSuite(shm, .fini = s_cleanup);

static void s_instance(const char *tag)
{
    char name[SP_INSTANCE_NAME_MAX + 1];
    int n = snprintf(name, sizeof name, "sp-shm-%ld-%s", (long)getpid(), tag);
    cr_assert(n > 0 && (size_t)n < sizeof name, "instance name too long");
    cr_assert_eq(sp_names_init(&s_names, name, NULL), 0);
}

/* A fresh segment with T_SLOT-byte slots, mapped in s_shm. */
static void s_segment(const char *tag)
{
    s_instance(tag);
    char why[T_WHY_CAP] = "";
    int rc = sp_shm_create(&s_shm, &s_names, T_SLOT, why, sizeof why);
    cr_assert_eq(rc, 0, "create: %s: %s", sp_strerror(rc), why);
}

static sp_link_t **s_slot(void)
{
    for (unsigned i = 0; i < T_MAX_LINKS; i++) {
        if (s_links[i] == NULL) {
            return &s_links[i];
        }
    }
    cr_assert_fail("too many links in one test");
    return NULL;
}

static sp_link_cfg_t s_cfg(sp_link_role_t role, uint32_t id)
{
    sp_link_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.role = role;
    cfg.transport = &sp_transport_shm;
    cfg.names = &s_names;
    cfg.id = id;
    cfg.max_msg = T_SLOT;
    cfg.reply_msg = T_SLOT;
    return cfg;
}

static int s_open(sp_link_role_t role, uint32_t id, sp_link_t **out, char *why, size_t cap)
{
    sp_link_cfg_t cfg = s_cfg(role, id);
    return sp_link_open(out, &cfg, why, cap);
}

static sp_link_t *s_link(sp_link_role_t role, uint32_t id)
{
    char why[T_WHY_CAP] = "";
    sp_link_t **slot = s_slot();
    int rc = s_open(role, id, slot, why, sizeof why);
    cr_assert_eq(rc, 0, "link %d/%u: %s: %s", (int)role, id, sp_strerror(rc), why);
    return *slot;
}

/* An orders message of `n` purchases of product 1 from `producer`. */
static size_t s_orders(uint8_t *msg, uint32_t producer, unsigned n, uint64_t first_seq)
{
    for (unsigned i = 0; i < n; i++) {
        sp_order_t o = {.type = SP_ORDER_PURCHASE,
                        .producer_id = producer,
                        .seq = first_seq + i,
                        .product_id = 1,
                        .quantity = 1};
        sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, i), &o);
    }
    sp_wire_put_hdr(msg, SP_MSG_ORDERS, n, producer, 0);
    return sp_wire_msg_size(SP_MSG_ORDERS, n);
}

/* A results message answering `n` orders of `producer` from first_seq on. */
static size_t s_results(uint8_t *msg, uint32_t producer, unsigned n, uint64_t first_seq)
{
    for (unsigned i = 0; i < n; i++) {
        sp_result_t r = {.producer_id = producer,
                         .status = SP_STATUS_ACCEPTED,
                         .type = SP_ORDER_PURCHASE,
                         .worker_id = T_WORKER_ID,
                         .seq = first_seq + i,
                         .product_id = 1};
        sp_wire_put_result(sp_wire_rec(msg, SP_MSG_RESULTS, i), &r);
    }
    sp_wire_put_hdr(msg, SP_MSG_RESULTS, n, T_WORKER_ID, 0);
    return sp_wire_msg_size(SP_MSG_RESULTS, n);
}

/* ------------------------------------------------------------------ */
/* The segment                                                         */

Test(shm, create_lays_out_a_private_segment_once)
{
    s_segment("create");
    sp_shm_hdr_t *h = sp_shm_hdr(s_shm);

    cr_expect_eq(h->magic, SP_SHM_MAGIC);
    cr_expect_eq(h->layout, SP_SHM_LAYOUT);
    cr_expect_eq(h->header_size, sizeof(sp_shm_hdr_t));
    cr_expect_eq(h->slot_size, T_SLOT);
    cr_expect_eq(h->order_slots, SP_SHM_ORDER_SLOTS);
    cr_expect_eq(h->result_slots, SP_SHM_RESULT_SLOTS);
    cr_expect_eq(h->result_rings, SP_SHM_RESULT_RINGS);
    cr_expect_eq(sp_ring_capacity(sp_shm_orders(s_shm)), SP_SHM_ORDER_SLOTS);
    cr_expect_eq(sp_ring_capacity(sp_shm_results(s_shm, SP_SHM_RESULT_RINGS - 1)),
                 SP_SHM_RESULT_SLOTS);
    cr_expect_null(sp_shm_results(s_shm, SP_SHM_RESULT_RINGS));
    cr_expect_eq(sp_shm_orders_depth(s_shm), 0);
    cr_expect_eq(sp_shm_results_depth(s_shm), 0);
    char path[SP_PATH_MAX];
    snprintf(path, sizeof path, "/dev/shm%s", s_names.ring);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    cr_expect_eq(st.st_mode & 0777, SP_SHM_MODE);
    cr_expect_eq((uint64_t)st.st_size, h->segment_size);

    sp_shm_t *second = NULL;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_shm_create(&second, &s_names, T_SLOT, why, sizeof why), -EEXIST);
    cr_expect_null(second);
    cr_expect_not_null(strstr(why, "already exists"), "why: %s", why);
}

Test(shm, create_refuses_slots_outside_one_message_and_the_ring_limit)
{
    s_instance("badslot");
    long bad[] = {(long)sp_wire_msg_size(SP_MSG_RESULTS, 1) - 1, (long)SP_SHM_SLOT_MAX + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[T_WHY_CAP] = "";
        cr_expect_eq(sp_shm_create(&s_shm, &s_names, bad[i], why, sizeof why), SP_E_USAGE,
                     "slot %ld", bad[i]);
        cr_expect_null(s_shm);
        cr_expect_not_null(strstr(why, "--mq-msgsize"), "why: %s", why);
    }
    cr_expect_eq(sp_shm_remove(&s_names), -ENOENT, "a refused create left a segment");
}

Test(shm, create_with_slot_zero_uses_the_default)
{
    s_instance("dflt");
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_shm_create(&s_shm, &s_names, 0, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_shm_hdr(s_shm)->slot_size, SP_SHM_SLOT_DEFAULT);
}

Test(shm, open_refuses_what_is_not_our_segment)
{
    s_instance("noseg");
    sp_shm_t *o = NULL;
    cr_expect_eq(sp_shm_open(&o, &s_names, NULL, 0), -ENOENT);
    sp_shm_close(&s_shm);

    s_segment("notours");
    sp_shm_hdr_t *h = sp_shm_hdr(s_shm);
    struct {
        void *field;
        size_t size;
        int expect;
    } cases[] = {
        {&h->magic, sizeof h->magic, SP_E_BAD_MAGIC},
        {&h->layout, sizeof h->layout, SP_E_BAD_VERSION},
        {&h->slot_size, sizeof h->slot_size, SP_E_BAD_LAYOUT},
        {&h->order_slots, sizeof h->order_slots, SP_E_BAD_LAYOUT},
        {&h->segment_size, sizeof h->segment_size, SP_E_BAD_LAYOUT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t saved[8];
        memcpy(saved, cases[i].field, cases[i].size);
        ((uint8_t *)cases[i].field)[0] ^= 0x40;
        char why[T_WHY_CAP] = "";
        int rc = sp_shm_open(&o, &s_names, why, sizeof why);
        cr_expect_eq(rc, cases[i].expect, "case %zu: %d (%s)", i, rc, sp_strerror(rc));
        cr_expect_null(o);
        cr_expect_neq(why[0], '\0', "case %zu: no explanation", i);
        memcpy(cases[i].field, saved, cases[i].size);
    }
    cr_expect_eq(sp_shm_open(&o, &s_names, NULL, 0), 0, "restored segment opens");
    sp_shm_close(&o);
    cr_expect_null(o);
}

/* ------------------------------------------------------------------ */
/* Links                                                               */

/* The forked worker: answers `msgs` order messages along their routes. */
static int s_worker_child(unsigned msgs)
{
    sp_link_t *w = NULL;
    if (s_open(SP_LINK_WORKER, T_WORKER_ID, &w, NULL, 0) < 0) {
        return 10;
    }
    static uint8_t in[T_SLOT], out[T_SLOT];
    int rc = 0;
    for (unsigned m = 0; m < msgs && rc == 0; m++) {
        sp_route_t route;
        int n = sp_link_recv(w, in, sizeof in, &route, T_WAIT_MS);
        sp_msg_hdr_t h;
        if (n < 0 || sp_wire_check(in, (size_t)n, &h) < 0 || h.kind != SP_MSG_ORDERS ||
            route.producer_id != h.sender) {
            rc = 11;
            break;
        }
        sp_order_t o;
        sp_wire_get_order(sp_wire_crec(in, SP_MSG_ORDERS, 0), &o);
        size_t len = s_results(out, o.producer_id, h.count, o.seq);
        if (sp_link_send(w, out, len, &route, T_WAIT_MS) < 0) {
            rc = 12;
        }
    }
    sp_link_close(&w);
    return rc;
}

Test(shm, orders_cross_a_process_and_results_return_by_sender)
{
    s_segment("fork");
    sp_link_t *p7 = s_link(SP_LINK_PRODUCER, T_PRODUCER_ID);
    sp_link_t *p8 = s_link(SP_LINK_PRODUCER, T_OTHER_ID);
    pid_t child = fork();
    cr_assert_neq(child, -1);
    if (child == 0) {
        _exit(s_worker_child(2));
    }
    uint8_t msg[T_SLOT];
    cr_assert_eq(sp_link_send(p8, msg, s_orders(msg, T_OTHER_ID, 2, 100), NULL, T_WAIT_MS), 0);
    cr_assert_eq(sp_link_send(p7, msg, s_orders(msg, T_PRODUCER_ID, 3, 1), NULL, T_WAIT_MS), 0);

    /* a caller buffer smaller than a slot works when the message fits it */
    uint8_t in[sizeof msg / 2];
    sp_msg_hdr_t h;
    int n = sp_link_recv(p7, in, sizeof in, NULL, T_WAIT_MS);
    cr_assert_eq(n, (int)sp_wire_msg_size(SP_MSG_RESULTS, 3), "recv: %d (%s)", n, sp_strerror(n));
    cr_assert_eq(sp_wire_check(in, (size_t)n, &h), 0);
    for (unsigned i = 0; i < h.count; i++) {
        sp_result_t r;
        sp_wire_get_result(sp_wire_crec(in, SP_MSG_RESULTS, i), &r);
        cr_expect_eq(r.producer_id, T_PRODUCER_ID);
        cr_expect_eq(r.seq, 1 + i);
    }
    n = sp_link_recv(p8, msg, sizeof msg, NULL, T_WAIT_MS);
    cr_assert_eq(n, (int)sp_wire_msg_size(SP_MSG_RESULTS, 2), "recv: %d (%s)", n, sp_strerror(n));
    sp_result_t r;
    sp_wire_get_result(sp_wire_crec(msg, SP_MSG_RESULTS, 0), &r);
    cr_expect_eq(r.producer_id, T_OTHER_ID);
    cr_expect_eq(r.seq, 100);
    cr_expect_eq(spt_wait(child, T_WAIT_MS), 0, "worker child failed");
    cr_expect_eq(sp_link_depth(p7), 0);
    cr_expect_eq(sp_link_recv(p7, msg, sizeof msg, NULL, 0), SP_E_TIMEOUT);
}

Test(shm, empty_and_full_rings_time_out)
{
    s_segment("timeout");
    sp_link_t *p = s_link(SP_LINK_PRODUCER, T_PRODUCER_ID);
    sp_link_t *w = s_link(SP_LINK_WORKER, T_WORKER_ID);
    uint8_t msg[T_SLOT];
    sp_route_t route;

    uint64_t t0 = sp_now_ns();
    cr_expect_eq(sp_link_recv(w, msg, sizeof msg, &route, T_TIMEOUT_MS), SP_E_TIMEOUT);
    cr_expect_geq((sp_now_ns() - t0) / SP_NS_PER_MS, T_TIMEOUT_MS - 1);
    cr_expect_eq(sp_link_recv(p, msg, sizeof msg, NULL, 0), SP_E_TIMEOUT);

    size_t len = s_orders(msg, T_PRODUCER_ID, 1, 1);
    for (unsigned i = 0; i < SP_SHM_ORDER_SLOTS; i++) {
        cr_assert_eq(sp_link_send(p, msg, len, NULL, 0), 0, "order %u", i);
    }
    cr_expect_eq(sp_link_depth(w), SP_SHM_ORDER_SLOTS);
    cr_expect_eq(sp_link_send(p, msg, len, NULL, 0), SP_E_TIMEOUT, "full, no wait");
    t0 = sp_now_ns();
    cr_expect_eq(sp_link_send(p, msg, len, NULL, T_TIMEOUT_MS), SP_E_TIMEOUT, "full");
    cr_expect_geq((sp_now_ns() - t0) / SP_NS_PER_MS, T_TIMEOUT_MS - 1);

    /* the producer's result ring fills too; a full ring of a live owner
     * times out instead of dropping */
    size_t rlen = s_results(msg, T_PRODUCER_ID, 1, 1);
    route.producer_id = T_PRODUCER_ID;
    for (unsigned i = 0; i < SP_SHM_RESULT_SLOTS; i++) {
        cr_assert_eq(sp_link_send(w, msg, rlen, &route, 0), 0, "result %u", i);
    }
    cr_expect_eq(sp_link_depth(p), SP_SHM_RESULT_SLOTS);
    cr_expect_eq(sp_link_send(w, msg, rlen, &route, T_TIMEOUT_MS), SP_E_TIMEOUT);
}

Test(shm, worker_routes_by_sender_and_refuses_unknown_producers)
{
    s_segment("route");
    sp_link_t *p = s_link(SP_LINK_PRODUCER, T_PRODUCER_ID);
    sp_link_t *w = s_link(SP_LINK_WORKER, T_WORKER_ID);
    uint8_t msg[T_SLOT];
    sp_route_t route;

    cr_assert_eq(sp_link_send(p, msg, s_orders(msg, T_PRODUCER_ID, 1, 1), NULL, 0), 0);
    cr_assert_gt(sp_link_recv(w, msg, sizeof msg, &route, T_WAIT_MS), 0);
    cr_expect_eq(route.producer_id, T_PRODUCER_ID);

    /* the header's sender decides, whatever the records say */
    sp_ring_t *orders = sp_shm_orders(s_shm);
    s_orders(msg, T_PRODUCER_ID, 1, 1);
    const uint8_t sender[4] = {0x34, 0x12, 0, 0}; /* bytes 8..11, little-endian */
    memcpy(msg + 8, sender, sizeof sender);
    cr_assert_eq(sp_ring_put(orders, msg, sp_wire_msg_size(SP_MSG_ORDERS, 1), 0), 0);
    cr_assert_gt(sp_link_recv(w, msg, sizeof msg, &route, T_WAIT_MS), 0);
    cr_expect_eq(route.producer_id, 0x1234);

    /* a message too short to hold a sender gets producer id 0 */
    cr_assert_eq(sp_ring_put(orders, "SPW1\1\1\1\0\7\0\0", 11, 0), 0);
    cr_expect_eq(sp_link_recv(w, msg, sizeof msg, &route, T_WAIT_MS), 11);
    cr_expect_eq(route.producer_id, 0);

    route.producer_id = T_OTHER_ID;
    size_t rlen = s_results(msg, T_OTHER_ID, 1, 1);
    cr_expect_eq(sp_link_send(w, msg, rlen, &route, T_TIMEOUT_MS), -ENOENT);
    cr_expect_eq(sp_link_send(w, msg, rlen, NULL, T_TIMEOUT_MS), -EINVAL);
    cr_expect_eq(sp_link_release(w, &route), 0, "release has nothing to do");
}

Test(shm, messages_larger_than_a_slot_are_refused)
{
    s_segment("toobig");
    sp_link_cfg_t cfg = s_cfg(SP_LINK_PRODUCER, T_PRODUCER_ID);
    cfg.reply_msg = T_SLOT + 1;
    char why[T_WHY_CAP] = "";
    sp_link_t *l = (sp_link_t *)&l;
    cr_expect_eq(sp_link_open(&l, &cfg, why, sizeof why), -EMSGSIZE);
    cr_expect_null(l);
    cr_expect_not_null(strstr(why, "1024 bytes"), "why: %s", why);
    cr_expect_eq(sp_shm_hdr(s_shm)->owner[0], 0, "a refused link holds no ring");

    sp_link_t *p = s_link(SP_LINK_PRODUCER, T_PRODUCER_ID);
    static uint8_t big[T_SLOT + 1];
    cr_expect_eq(sp_link_send(p, big, sizeof big, NULL, 0), -EMSGSIZE);
    cr_expect_eq(sp_link_depth(p), 0);

    /* a result that fits the slot but not the caller's buffer */
    sp_link_t *w = s_link(SP_LINK_WORKER, T_WORKER_ID);
    sp_route_t route = {.producer_id = T_PRODUCER_ID};
    cr_assert_eq(sp_link_send(w, big, s_results(big, T_PRODUCER_ID, 4, 1), &route, 0), 0);
    uint8_t small[SP_WIRE_HDR_SIZE];
    cr_expect_eq(sp_link_recv(p, small, sizeof small, NULL, 0), -EMSGSIZE);
}

Test(shm, a_producer_id_connects_once)
{
    s_segment("dupid");
    s_link(SP_LINK_PRODUCER, T_PRODUCER_ID);
    sp_link_t *second = NULL;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(s_open(SP_LINK_PRODUCER, T_PRODUCER_ID, &second, why, sizeof why), -EEXIST);
    cr_expect_null(second);
    cr_expect_not_null(strstr(why, "already connected"), "why: %s", why);
    /* id 0: a producer waiting for its WELCOME, whose ring no id claims */
    cr_expect_eq(s_open(SP_LINK_PRODUCER, 0, &second, NULL, 0), 0);
    cr_expect_neq(sp_link_reply_tag(second), 0u, "the WELCOME's way back");
    sp_link_close(&second);
}

Test(shm, the_65th_producer_is_refused_until_one_leaves)
{
    s_segment("limit");
    for (uint32_t id = 1; id <= SP_SHM_RESULT_RINGS; id++) {
        s_link(SP_LINK_PRODUCER, id);
    }
    sp_link_t *extra = NULL;
    char why[T_WHY_CAP] = "";
    int rc = s_open(SP_LINK_PRODUCER, SP_SHM_RESULT_RINGS + 1, &extra, why, sizeof why);
    cr_expect_eq(rc, -EUSERS, "rc %d (%s)", rc, sp_strerror(rc));
    cr_expect_null(extra);
    cr_expect_not_null(strstr(why, "at most 64 producers"), "why: %s", why);

    sp_link_close(&s_links[10]);
    cr_expect_eq(sp_shm_hdr(s_shm)->owner[10], 0, "close frees the ring");
    sp_link_t **slot = s_slot();
    cr_expect_eq(s_open(SP_LINK_PRODUCER, SP_SHM_RESULT_RINGS + 1, slot, why, sizeof why), 0, "%s",
                 why);
    cr_expect_eq(atomic_load(&sp_shm_hdr(s_shm)->reclaimed), 0);
}

Test(shm, a_dead_producers_ring_is_taken_over_and_drained)
{
    s_segment("dead");
    pid_t child = fork();
    cr_assert_neq(child, -1);
    if (child == 0) {
        sp_link_t *l = NULL;
        _exit(s_open(SP_LINK_PRODUCER, T_OTHER_ID, &l, NULL, 0) == 0 ? 0 : 1); /* no close */
    }
    cr_assert_eq(spt_wait(child, T_WAIT_MS), 0);
    sp_shm_hdr_t *h = sp_shm_hdr(s_shm);
    cr_assert_eq(SP_SHM_OWNER_ID(h->owner[0]), T_OTHER_ID, "the dead child still owns ring 0");

    /* a result the dead producer will never read */
    sp_link_t *w = s_link(SP_LINK_WORKER, T_WORKER_ID);
    uint8_t msg[T_SLOT];
    sp_route_t route = {.producer_id = T_OTHER_ID};
    cr_assert_eq(sp_link_send(w, msg, s_results(msg, T_OTHER_ID, 1, 1), &route, 0), 0);

    /* every other ring taken: the 64th producer gets the dead one's */
    for (uint32_t id = 100; id < 100 + SP_SHM_RESULT_RINGS - 1; id++) {
        s_link(SP_LINK_PRODUCER, id);
    }
    cr_expect_eq(atomic_load(&h->reclaimed), 0);
    sp_link_t *p = s_link(SP_LINK_PRODUCER, T_PRODUCER_ID);
    cr_expect_eq(atomic_load(&h->reclaimed), 1);
    cr_expect_eq(SP_SHM_OWNER_ID(h->owner[0]), T_PRODUCER_ID);
    cr_expect_eq(SP_SHM_OWNER_PID(h->owner[0]), getpid());
    cr_expect_eq(sp_link_depth(p), 0, "stale results drained");
    cr_expect_eq(atomic_load(&h->stale_results), 1);

    /* the worker no longer finds the dead producer */
    cr_expect_eq(sp_link_send(w, msg, s_results(msg, T_OTHER_ID, 1, 1), &route, 0), -ENOENT);
}

Test(shm, a_late_result_for_a_previous_owner_is_dropped_and_counted)
{
    s_segment("stale");
    sp_link_t *p = s_link(SP_LINK_PRODUCER, T_PRODUCER_ID);
    sp_ring_t *mine = sp_shm_results(s_shm, 0);
    cr_assert_eq(SP_SHM_OWNER_ID(sp_shm_hdr(s_shm)->owner[0]), T_PRODUCER_ID);
    uint8_t msg[T_SLOT];
    cr_assert_eq(sp_ring_put(mine, msg, s_results(msg, T_OTHER_ID, 2, 1), 0), 0);
    cr_assert_eq(sp_ring_put(mine, msg, s_results(msg, T_PRODUCER_ID, 1, 5), 0), 0);

    int n = sp_link_recv(p, msg, sizeof msg, NULL, T_WAIT_MS);
    cr_expect_eq(n, (int)sp_wire_msg_size(SP_MSG_RESULTS, 1));
    sp_result_t r;
    sp_wire_get_result(sp_wire_crec(msg, SP_MSG_RESULTS, 0), &r);
    cr_expect_eq(r.seq, 5, "the stale message was skipped");
    cr_expect_eq(atomic_load(&sp_shm_hdr(s_shm)->stale_results), 1);
}

Test(shm, links_need_the_segment)
{
    s_instance("nolink");
    sp_link_t *l = (sp_link_t *)&l;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(s_open(SP_LINK_WORKER, T_WORKER_ID, &l, why, sizeof why), -ENOENT);
    cr_expect_null(l);
    cr_expect_not_null(strstr(why, s_names.ring), "why: %s", why);
}

/* ------------------------------------------------------------------ */
/* The broker running shm                                              */

static pid_t s_broker(const char *tag, const char *const *more)
{
    s_instance(tag);
    const char *extra[16] = {
        "--catalogue", spt_data("products.csv"), "--transport", "shm", "--workers", "2"};
    size_t n = 6;
    for (size_t i = 0; more != NULL && more[i] != NULL && n < 15; i++) {
        extra[n++] = more[i];
    }
    extra[n] = NULL;
    pid_t broker = spt_broker_start(s_names.name, extra);
    cr_assert(broker > 0, "broker did not become ready");
    return broker;
}

static void s_stop(pid_t broker)
{
    int status = spt_stop(broker);
    cr_expect(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker status %d",
              status);
    cr_expect_not(spt_leftovers(s_names.name), "IPC objects of %s left behind", s_names.name);
    char path[SP_PATH_MAX];
    snprintf(path, sizeof path, "/dev/shm%s", s_names.ring);
    cr_expect_neq(access(path, F_OK), 0, "%s left behind", path);
}

Test(shm, broker_makes_the_ring_segment_and_removes_it, .timeout = 60)
{
    pid_t broker = s_broker("brk", NULL);
    char path[SP_PATH_MAX];
    snprintf(path, sizeof path, "/dev/shm%s", s_names.ring);
    struct stat st;
    cr_expect_eq(stat(path, &st), 0, "%s", path);
    cr_expect_eq(st.st_mode & 0777, SP_SHM_MODE);

    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, s_names.table, false), 0);
    cr_expect_eq(sp_table_hdr(t)->transport, SP_TRANSPORT_SHM);
    cr_expect_eq(sp_table_hdr(t)->mq_msgsize, SP_SHM_SLOT_DEFAULT);
    cr_expect_eq(sp_table_hdr(t)->mq_depth, SP_SHM_ORDER_SLOTS);
    sp_table_close(&t);
    s_stop(broker);
}

Test(shm, garbage_in_the_orders_ring_changes_nothing, .timeout = 60)
{
    pid_t broker = s_broker("garbage", NULL);
    cr_assert_eq(sp_shm_open(&s_shm, &s_names, NULL, 0), 0);
    sp_ring_t *orders = sp_shm_orders(s_shm);
    const int garbage = 40;
    static uint8_t junk[2048];
    srand(11);
    for (int i = 0; i < garbage; i++) {
        size_t len = (size_t)(rand() % (int)sizeof junk);
        if (i < 3) {
            len = (size_t)i * 4; /* empty, and too short to hold a sender */
        }
        for (size_t k = 0; k < len; k++) {
            junk[k] = (uint8_t)rand();
        }
        if (i % 3 == 0 && len >= SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE) {
            /* an orders header over random records of the wrong count */
            sp_wire_put_hdr(junk, SP_MSG_ORDERS, 1 + (unsigned)(len / SP_WIRE_ORDER_SIZE), 1, 0);
        }
        cr_assert_eq(sp_ring_put(orders, junk, len, T_WAIT_MS), 0);
    }
    sp_shm_close(&s_shm);

    char *out = NULL;
    const char *buy[] = {spt_bin("producer"), "--instance", s_names.name, "buy", "1", NULL};
    cr_expect_eq(spt_run(buy, T_RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "stock left 26") != NULL, "%s", out);
    free(out);

    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, s_names.table, false), 0);
    /* the buy was answered after every message before it was taken; the
     * other worker may still be counting its last one */
    uint64_t dead = 0;
    for (uint64_t until = sp_now_ns() + T_WAIT_MS * SP_NS_PER_MS;;) {
        dead = 0;
        for (int w = 0; w < SP_WORKERS_MAX; w++) {
            dead += atomic_load(&sp_table_hdr(t)->worker[w].invalid_msgs);
        }
        if (dead >= (uint64_t)garbage || sp_now_ns() > until) {
            break;
        }
        usleep(10 * 1000);
    }
    cr_expect_eq(dead, (uint64_t)garbage, "dead-lettered %llu of %d", (unsigned long long)dead,
                 garbage);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
    for (uint32_t id = 2; id <= 10; id++) {
        cr_expect_eq(spt_tally(t, id).version, 0, "product %u changed", id);
    }
    sp_table_close(&t);
    cr_expect_eq(kill(broker, 0), 0, "broker died");
    s_stop(broker);
}

Test(shm, a_batch_larger_than_a_slot_is_refused_naming_the_limit, .timeout = 60)
{
    /* 1024-byte slots hold 31 orders but only 25 results */
    const char *more[] = {"--mq-msgsize", "1024", NULL};
    pid_t broker = s_broker("batch", more);
    const char *argv[] = {spt_bin("producer"), "--instance", s_names.name, "--count", "100",
                          "--batch",           "30",         NULL};
    char *out = NULL;
    cr_expect_neq(spt_run(argv, T_RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "use --batch 25 or less") != NULL, "%s", out);
    cr_expect(strstr(out, "1024 bytes") != NULL, "%s", out);
    free(out);
    const char *ok[] = {spt_bin("producer"), "--instance", s_names.name, "--count", "100",
                        "--batch",           "25",         "--json",     NULL};
    cr_expect_eq(spt_run(ok, T_RUN_MS, &out), 0, "%s", out);
    cr_expect_eq(spt_json_num(out, "sent"), 100, "%s", out);
    free(out);
    s_stop(broker);
}

Test(shm, clean_removes_a_dead_brokers_ring_segment, .timeout = 60)
{
    pid_t broker = s_broker("clean", NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, s_names.table, false), 0);
    /* READY comes before the workers have written their slots: wait for
     * both, so that none is left running once the broker is gone */
    enum { S_WORKERS = 2 };
    pid_t workers[S_WORKERS] = {0};
    for (uint64_t until = sp_now_ns() + T_WAIT_MS * SP_NS_PER_MS; sp_now_ns() < until;) {
        int seen = 0;
        for (int w = 0; w < S_WORKERS; w++) {
            workers[w] = atomic_load(&sp_table_hdr(t)->worker[w].pid);
            seen += workers[w] > 0;
        }
        if (seen == S_WORKERS) {
            break;
        }
        usleep(10 * 1000);
    }
    sp_table_close(&t);
    kill(broker, SIGKILL);
    waitpid(broker, NULL, 0);
    for (int w = 0; w < S_WORKERS; w++) {
        cr_expect_gt(workers[w], 0, "worker %d never started", w + 1);
        if (workers[w] > 0) {
            kill(workers[w], SIGTERM);
        }
    }
    /* they are not our children: poll until they are gone */
    for (int w = 0; w < S_WORKERS; w++) {
        uint64_t until = sp_now_ns() + T_WAIT_MS * SP_NS_PER_MS;
        while (workers[w] > 0 && kill(workers[w], 0) == 0 && sp_now_ns() < until) {
            usleep(10 * 1000);
        }
        if (workers[w] > 0 && kill(workers[w], 0) == 0) {
            kill(workers[w], SIGKILL);
            cr_expect_fail("worker %d ignored SIGTERM", w + 1);
        }
    }
    cr_expect(spt_leftovers(s_names.name));
    const char *clean[] = {spt_bin("broker"), "--instance", s_names.name, "--clean", NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(clean, T_RUN_MS, &out), 0, "%s", out);
    free(out);
    cr_expect_not(spt_leftovers(s_names.name), "leftovers after --clean");
    cr_expect_eq(sp_shm_remove(&s_names), -ENOENT);
}
