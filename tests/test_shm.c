/*
 * Tests for what is particular to the `shm` transport: the segment
 * /NAME.ring (sp_shmlink.h), the links behind sp_link.h that use it, and the
 * real broker running it.  What every transport must do (order, routing,
 * dead letters, timeouts, the full and empty orders ring, close and reopen,
 * the message size limit, peers killed) is the link conformance suite's,
 * tests/test_link.c.
 *
 * Link tests make their own small segment (slots of T_SLOT bytes) under an
 * instance name carrying the test's tag and pid; the fixture closes every
 * link and mapping and removes the segment, pass or fail.  Broker tests use
 * spt_broker_start and check with spt_leftovers (which looks for the .ring
 * name too) that nothing outlives the broker.
 *
 * What is checked: the segment's layout, mode and exclusive creation; that
 * an opener refuses what is not our segment with the exact code; routing by
 * the header's sender and the refusal of unknown producers; a full result
 * ring waiting instead of dropping; slot-size refusals and buffers smaller
 * than a slot; the 64-producer limit and the take-over of a dead producer's
 * ring; stale results never reaching the wrong producer; and the producer's
 * batch check against the slot size.
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

#define T_SLOT        1024            /* slot size of the link tests' segments */
#define T_TIMEOUT_MS  50              /* waits that must time out */
#define T_WAIT_MS     SP_TEST_WAIT_MS /* waits that must succeed */
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
    sp_link_t **slot = spt_link_slot(s_links, T_MAX_LINKS);
    cr_assert_not_null(slot, "too many links in one test");
    return slot;
}

static sp_link_cfg_t s_cfg(sp_link_role_t role, uint32_t id)
{
    return spt_link_cfg(role, &sp_transport_shm, &s_names, id, T_SLOT);
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

/* A result ring that fills up while its owner lives: the worker waits out
 * its timeout instead of dropping the result (the order ring's full and
 * empty are the link conformance suite's). */
Test(shm, a_full_result_ring_of_a_live_producer_times_out)
{
    s_segment("resfull");
    sp_link_t *p = s_link(SP_LINK_PRODUCER, T_PRODUCER_ID);
    sp_link_t *w = s_link(SP_LINK_WORKER, T_WORKER_ID);
    uint8_t msg[T_SLOT];
    size_t rlen = s_results(msg, T_PRODUCER_ID, 1, 1);
    sp_route_t route = {.producer_id = T_PRODUCER_ID};
    for (unsigned i = 0; i < SP_SHM_RESULT_SLOTS; i++) {
        cr_assert_eq(sp_link_send(w, msg, rlen, &route, 0), 0, "result %u", i);
    }
    cr_expect_eq(sp_link_depth(p), SP_SHM_RESULT_SLOTS);
    cr_expect_eq(sp_link_send(w, msg, rlen, &route, 0), SP_E_TIMEOUT, "full, no wait");

    uint64_t t0 = sp_now_ns();
    cr_expect_eq(sp_link_send(w, msg, rlen, &route, T_TIMEOUT_MS), SP_E_TIMEOUT);
    cr_expect_geq((sp_now_ns() - t0) / SP_NS_PER_MS, T_TIMEOUT_MS - 1);
    cr_expect_eq(sp_link_depth(p), SP_SHM_RESULT_SLOTS, "nothing dropped, nothing added");
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

    /* a buffer smaller than a slot takes a message that fits it */
    uint8_t half[T_SLOT / 2];
    size_t len = s_results(big, T_PRODUCER_ID, 3, 1);
    cr_assert_lt(len, sizeof half);
    cr_assert_eq(sp_link_send(w, big, len, &route, 0), 0);
    cr_expect_eq(sp_link_recv(p, half, sizeof half, NULL, T_WAIT_MS), (int)len);
    cr_expect_eq(memcmp(half, big, len), 0);
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
    cr_expect_eq(sp_table_hdr(t)->transport, sp_transport_shm.id);
    cr_expect_eq(sp_table_hdr(t)->path_msgsize, SP_SHM_SLOT_DEFAULT);
    cr_expect_eq(sp_table_hdr(t)->path_depth, SP_SHM_ORDER_SLOTS);
    sp_table_close(&t);
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

Test(shm, a_welcome_reaches_a_producer_on_the_last_result_ring)
{
    s_segment("lastring");
    for (uint32_t id = 1; id < SP_SHM_RESULT_RINGS; id++) {
        s_link(SP_LINK_PRODUCER, id);
    }
    /* a producer still without an id takes the last ring */
    sp_link_t *p = s_link(SP_LINK_PRODUCER, 0);
    cr_assert_eq(atomic_load(&sp_shm_hdr(s_shm)->owner[SP_SHM_RESULT_RINGS - 1]),
                 SP_SHM_OWNER(getpid(), 0));
    sp_link_t *w = s_link(SP_LINK_WORKER, T_WORKER_ID);
    uint8_t msg[T_SLOT];
    size_t len = s_results(msg, 0, 1, 1);
    sp_route_t route = {.producer_id = 0, .reply_tag = sp_link_reply_tag(p)};
    cr_expect_eq(sp_link_send(w, msg, len, &route, T_WAIT_MS), 0, "the answer to its HELLO");
    cr_expect_eq(sp_link_recv(p, msg, sizeof msg, NULL, T_WAIT_MS), (int)len);
}
