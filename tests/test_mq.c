/*
 * Tests for what is particular to the POSIX message queue transport behind
 * sp_link.h; what every transport must do (order, routing, dead letters,
 * timeouts, full and empty, close and reopen, the message size limit, peers
 * killed) is the link conformance suite's, tests/test_link.c.
 *
 * The queues are kernel objects shared by the whole machine, and so is the
 * budget for them: every user gets RLIMIT_MSGQUEUE (800 KiB by default) for
 * all of its queues together, and other test suites run beside this one.  So
 * every queue here is small (messages of at most T_MSGSIZE bytes, depth at
 * most msg_max, which is 10 by default), every name carries the pid and a
 * tag for the test, and the fixture closes every link and unlinks the order
 * queue and every reply queue the test could have made, pass or fail.
 *
 * What is checked: the sysctl limits are read and enforced with a message
 * naming the setting to raise; the order queue is made once, exclusively,
 * and removed with every reply queue, a dead producer's too; reply queues
 * are the producer's own (one per id, gone when it closes); the error paths
 * of sp_link.h particular to queues give their exact codes (no queue, a
 * reply size beyond msgsize_max, a send or a receive buffer that does not
 * match the queue's message size, a message too short to name a sender);
 * the broker's preflight counts a reply queue per producer.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_shmlink.h"
#include "sp_testutil.h"
#include "sp_mq.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_sys.h"
#include "sp_time.h"
#include "sp_wire.h"

#define T_MSGSIZE     1024 /* order and reply queue message size */
#define T_DEPTH       4    /* order queue depth for the link tests */
#define T_SMALL_DEPTH 2    /* depth of the queues the refused creations ask for */
#define T_TIMEOUT_MS  50   /* the short waits that must time out */
#define T_WAIT_MS     2000 /* waits that must succeed */
#define T_WHY_CAP     256

#define T_PRODUCER_ID 7
#define T_WORKER_ID   1
#define T_NO_SUCH_ID  99
#define T_MAX_LINKS   4
#define T_MAX_REPLIES 4

/* statfs magic of the mqueue file system (linux/magic.h: MQUEUE_MAGIC). */
#define T_MQUEUE_MAGIC 0x19800202
#define T_MQUEUE_MOUNT "/dev/mqueue"

static sp_names_t s_names;
static sp_link_t *s_links[T_MAX_LINKS];
static uint32_t s_reply_ids[T_MAX_REPLIES];
static unsigned s_reply_count;

static void s_cleanup(void)
{
    for (unsigned i = 0; i < T_MAX_LINKS; i++) {
        sp_link_close(&s_links[i]);
    }
    if (s_names.name[0] == '\0') {
        return;
    }
    for (unsigned i = 0; i < s_reply_count; i++) {
        char reply[SP_IPC_NAME_MAX];
        sp_names_reply_mq(&s_names, s_reply_ids[i], reply, sizeof reply);
        sp_mq_unlink_name(reply);
    }
    sp_mq_unlink_name(s_names.orders_mq);
}

TestSuite(mq, .fini = s_cleanup);

/* Instance "sp-mq-<pid>-<tag>": the tag is short for the test's name (the
 * whole name would not fit the 40 characters an instance name may have). */
static void s_instance(const char *tag)
{
    char name[SP_INSTANCE_NAME_MAX + 1];
    int n = snprintf(name, sizeof name, "sp-mq-%ld-%s", (long)getpid(), tag);
    cr_assert(n > 0 && (size_t)n < sizeof name, "instance name too long");
    int rc = sp_names_init(&s_names, name, NULL);
    cr_assert_eq(rc, 0, "names: %s", sp_strerror(rc));
}

/* The order queue with `depth` slots of T_MSGSIZE bytes. */
static void s_orders_queue(long depth)
{
    char why[T_WHY_CAP] = "";
    long depth_out = 0;
    long msgsize_out = 0;
    int rc =
        sp_mq_create_orders(&s_names, depth, T_MSGSIZE, &depth_out, &msgsize_out, why, sizeof why);
    cr_assert_eq(rc, 0, "create orders: %s: %s", sp_strerror(rc), why);
}

static sp_link_t **s_slot(void)
{
    sp_link_t **slot = spt_link_slot(s_links, T_MAX_LINKS);
    cr_assert_not_null(slot, "too many links in one test");
    return slot;
}

static sp_link_cfg_t s_cfg(sp_link_role_t role, uint32_t id)
{
    return spt_link_cfg(role, &sp_transport_mq, &s_names, id, T_MSGSIZE);
}

/* Remembers a producer id so the fixture removes its reply queue. */
static void s_track_reply(uint32_t id)
{
    cr_assert_lt(s_reply_count, T_MAX_REPLIES);
    s_reply_ids[s_reply_count++] = id;
}

static sp_link_t *s_producer(uint32_t id)
{
    s_track_reply(id);
    sp_link_cfg_t cfg = s_cfg(SP_LINK_PRODUCER, id);
    char why[T_WHY_CAP] = "";
    sp_link_t **slot = s_slot();
    int rc = sp_link_open(slot, &cfg, why, sizeof why);
    cr_assert_eq(rc, 0, "producer link: %s: %s", sp_strerror(rc), why);
    return *slot;
}

static sp_link_t *s_worker(uint32_t id)
{
    sp_link_cfg_t cfg = s_cfg(SP_LINK_WORKER, id);
    char why[T_WHY_CAP] = "";
    sp_link_t **slot = s_slot();
    int rc = sp_link_open(slot, &cfg, why, sizeof why);
    cr_assert_eq(rc, 0, "worker link: %s: %s", sp_strerror(rc), why);
    return *slot;
}

static void s_close(sp_link_t *link)
{
    for (unsigned i = 0; i < T_MAX_LINKS; i++) {
        if (s_links[i] == link) {
            sp_link_close(&s_links[i]);
        }
    }
}

/* An orders message of `count` purchases from `producer`; returns its size. */
static size_t s_orders_msg(uint8_t *buf, uint32_t producer, unsigned count, uint32_t batch)
{
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, count, producer, batch);
    for (unsigned i = 0; i < count; i++) {
        sp_order_t o;
        memset(&o, 0, sizeof o);
        o.type = SP_ORDER_PURCHASE;
        o.producer_id = producer;
        o.seq = batch * 100u + i + 1u;
        o.product_id = i + 1u;
        o.quantity = 1;
        o.sched_ns = sp_now_ns();
        sp_wire_put_order(sp_wire_rec(buf, SP_MSG_ORDERS, i), &o);
    }
    return sp_wire_msg_size(SP_MSG_ORDERS, count);
}

/* Whether the queue `name` existed.  Unlinking is the only probe the module
 * offers, so a queue found this way is also removed: use it only where the
 * queue should be gone anyway. */
static bool s_queue_existed(const char *name)
{
    return sp_mq_unlink_name(name) == 0;
}

/* ---------------------------------------------------------------- limits */

Test(mq, limits_are_read_from_proc)
{
    cr_expect_gt(sp_mq_limit("msg_max"), 0);
    cr_expect_gt(sp_mq_limit("msgsize_max"), 0);
    cr_expect_gt(sp_mq_limit("queues_max"), 0);
    cr_expect_eq(sp_mq_limit("no_such_limit"), -ENOENT);
}

Test(mq, create_orders_with_the_system_depth_and_a_small_message)
{
    s_instance("defaults");
    char why[T_WHY_CAP] = "";
    long depth = 0;
    long msgsize = 0;

    int rc = sp_mq_create_orders(&s_names, 0, T_MSGSIZE, &depth, &msgsize, why, sizeof why);

    cr_assert_eq(rc, 0, "%s: %s", sp_strerror(rc), why);
    cr_expect_eq(depth, sp_mq_limit("msg_max"));
    cr_expect_eq(msgsize, T_MSGSIZE);
    cr_expect_eq(sp_mq_orders_depth(&s_names), 0, "a new queue is empty");
}

Test(mq, create_orders_refuses_a_queue_that_exists)
{
    s_instance("twice");
    s_orders_queue(T_DEPTH);
    char why[T_WHY_CAP] = "";
    long depth = 0;
    long msgsize = 0;

    int rc = sp_mq_create_orders(&s_names, T_DEPTH, T_MSGSIZE, &depth, &msgsize, why, sizeof why);

    cr_expect_eq(rc, -EEXIST, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_eq(sp_mq_orders_depth(&s_names), 0, "the first queue is still there");
}

Test(mq, create_orders_deeper_than_msg_max_names_the_setting)
{
    s_instance("deep");
    long msg_max = sp_mq_limit("msg_max");
    cr_assert_gt(msg_max, 0);
    char why[T_WHY_CAP] = "";
    long depth = 0;
    long msgsize = 0;

    int rc =
        sp_mq_create_orders(&s_names, msg_max + 1, T_MSGSIZE, &depth, &msgsize, why, sizeof why);

    cr_expect_eq(rc, SP_E_MQ_LIMIT, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_not_null(strstr(why, "msg_max"), "why: '%s'", why);
    cr_expect_eq(sp_mq_orders_depth(&s_names), -ENOENT, "nothing was created");
}

Test(mq, create_orders_larger_than_msgsize_max_names_the_setting)
{
    s_instance("wide");
    long msgsize_max = sp_mq_limit("msgsize_max");
    cr_assert_gt(msgsize_max, 0);
    char why[T_WHY_CAP] = "";
    long depth = 0;
    long msgsize = 0;

    int rc = sp_mq_create_orders(&s_names, T_SMALL_DEPTH, msgsize_max + 1, &depth, &msgsize, why,
                                 sizeof why);

    cr_expect_eq(rc, SP_E_MQ_LIMIT, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_not_null(strstr(why, "msgsize_max"), "why: '%s'", why);
    cr_expect_eq(sp_mq_orders_depth(&s_names), -ENOENT, "nothing was created");
}

Test(mq, create_orders_refuses_a_message_smaller_than_one_order)
{
    s_instance("runt");
    char why[T_WHY_CAP] = "";
    long depth = 0;
    long msgsize = 0;
    long too_small = (long)sp_wire_msg_size(SP_MSG_ORDERS, 1) - 1;

    int rc =
        sp_mq_create_orders(&s_names, T_SMALL_DEPTH, too_small, &depth, &msgsize, why, sizeof why);

    cr_expect_eq(rc, SP_E_USAGE, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_neq(why[0], '\0', "no explanation");
    cr_expect_eq(sp_mq_orders_depth(&s_names), -ENOENT, "nothing was created");
}

/* ----------------------------------------------------------------- links */

Test(mq, worker_send_to_a_producer_without_a_reply_queue_is_enoent)
{
    s_instance("noreply");
    s_orders_queue(T_DEPTH);
    sp_link_t *worker = s_worker(T_WORKER_ID);
    uint8_t buf[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(buf, SP_MSG_RESULTS, 0, T_WORKER_ID, 1);
    sp_route_t route;
    memset(&route, 0, sizeof route);
    route.producer_id = T_NO_SUCH_ID;

    int rc = sp_link_send(worker, buf, sizeof buf, &route, T_TIMEOUT_MS);

    cr_expect_eq(rc, -ENOENT, "rc=%d (%s)", rc, sp_strerror(rc));
}

Test(mq, closing_a_producer_removes_its_reply_queue)
{
    s_instance("close");
    s_orders_queue(T_DEPTH);
    sp_link_t *producer = s_producer(T_PRODUCER_ID);
    sp_link_t *worker = s_worker(T_WORKER_ID);
    uint8_t buf[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(buf, SP_MSG_RESULTS, 0, T_WORKER_ID, 1);
    sp_route_t route;
    memset(&route, 0, sizeof route);
    route.producer_id = T_PRODUCER_ID;
    cr_assert_eq(sp_link_send(worker, buf, sizeof buf, &route, T_WAIT_MS), 0,
                 "the reply queue exists while the producer is open");

    s_close(producer);

    char reply[SP_IPC_NAME_MAX];
    sp_names_reply_mq(&s_names, T_PRODUCER_ID, reply, sizeof reply);
    cr_expect_eq(sp_mq_unlink_name(reply), -ENOENT, "reply queue left behind");
    /* This worker still holds the descriptor it opened before the close, so
     * its send may land in the unlinked queue; a fresh worker must see the
     * queue gone. */
    int rc = sp_link_send(worker, buf, sizeof buf, &route, T_TIMEOUT_MS);
    cr_expect(rc == -ENOENT || rc == 0, "rc=%d (%s)", rc, sp_strerror(rc));
    s_close(worker);
    worker = s_worker(T_WORKER_ID);
    rc = sp_link_send(worker, buf, sizeof buf, &route, T_TIMEOUT_MS);
    cr_expect_eq(rc, -ENOENT, "a fresh worker: rc=%d (%s)", rc, sp_strerror(rc));
}

Test(mq, remove_all_removes_the_order_queue)
{
    s_instance("remove");
    s_orders_queue(T_DEPTH);
    cr_assert_eq(sp_mq_orders_depth(&s_names), 0);

    cr_expect_eq(sp_mq_remove_all(&s_names), 0);

    cr_expect_eq(sp_mq_orders_depth(&s_names), -ENOENT);
    cr_expect_eq(sp_mq_remove_all(&s_names), -ENOENT, "nothing left to remove");
}

Test(mq, remove_all_removes_reply_queues_a_dead_producer_left)
{
    struct statfs fs;
    if (statfs(T_MQUEUE_MOUNT, &fs) != 0 || (unsigned long)fs.f_type != T_MQUEUE_MAGIC) {
        cr_skip_test("the mqueue file system is not mounted on " T_MQUEUE_MOUNT);
    }
    s_instance("orphan");
    s_orders_queue(T_DEPTH);
    s_track_reply(T_PRODUCER_ID);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* A producer that dies without closing its link. */
        sp_link_cfg_t cfg = s_cfg(SP_LINK_PRODUCER, T_PRODUCER_ID);
        sp_link_t *link = NULL;
        _exit(sp_link_open(&link, &cfg, NULL, 0) == 0 ? 0 : 1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child could not open its link");

    cr_expect_eq(sp_mq_remove_all(&s_names), 0);

    char reply[SP_IPC_NAME_MAX];
    sp_names_reply_mq(&s_names, T_PRODUCER_ID, reply, sizeof reply);
    /* BUG: sp_mq.c sp_mq_remove_all unlinks only /NAME.orders; the reply
     * queues /NAME.r.* that sp_link.h says it removes are left behind. */
    cr_expect(!s_queue_existed(reply), "reply queue %s survived sp_mq_remove_all", reply);
    cr_expect_eq(sp_mq_orders_depth(&s_names), -ENOENT);
}

Test(mq, link_open_without_an_order_queue_is_enoent)
{
    s_instance("noqueue");
    const sp_link_role_t roles[] = {SP_LINK_PRODUCER, SP_LINK_WORKER};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        s_track_reply(T_PRODUCER_ID);
        sp_link_cfg_t cfg = s_cfg(roles[i], T_PRODUCER_ID);
        char why[T_WHY_CAP] = "";
        sp_link_t *link = (sp_link_t *)&link;

        int rc = sp_link_open(&link, &cfg, why, sizeof why);

        cr_expect_eq(rc, -ENOENT, "role %d: rc=%d (%s)", (int)roles[i], rc, sp_strerror(rc));
        cr_expect_null(link);
        cr_expect_not_null(strstr(why, s_names.orders_mq), "why: '%s'", why);
    }
}

Test(mq, link_open_refuses_a_reply_size_beyond_msgsize_max)
{
    s_instance("bigreply");
    s_orders_queue(T_DEPTH);
    s_track_reply(T_PRODUCER_ID);
    sp_link_cfg_t cfg = s_cfg(SP_LINK_PRODUCER, T_PRODUCER_ID);
    cfg.reply_msg = (size_t)sp_mq_limit("msgsize_max") + 1u;
    char why[T_WHY_CAP] = "";
    sp_link_t *link = NULL;

    int rc = sp_link_open(&link, &cfg, why, sizeof why);

    cr_expect_eq(rc, SP_E_MQ_LIMIT, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_not_null(strstr(why, "msgsize_max"), "why: '%s'", why);
    cr_expect_null(link);
}

Test(mq, two_producers_with_one_id_are_refused)
{
    s_instance("dupid");
    s_orders_queue(T_DEPTH);
    sp_link_t *first = s_producer(T_PRODUCER_ID);
    sp_link_cfg_t cfg = s_cfg(SP_LINK_PRODUCER, T_PRODUCER_ID);
    sp_link_t *second = NULL;

    int rc = sp_link_open(&second, &cfg, NULL, 0);

    cr_expect_eq(rc, -EEXIST, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_null(second);
    /* The failed open must not have removed the first producer's queue. */
    sp_link_t *worker = s_worker(T_WORKER_ID);
    uint8_t buf[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(buf, SP_MSG_RESULTS, 0, T_WORKER_ID, 1);
    sp_route_t route = {.producer_id = T_PRODUCER_ID};
    cr_expect_eq(sp_link_send(worker, buf, sizeof buf, &route, T_WAIT_MS), 0);
    cr_expect_eq(sp_link_depth(first), 1);
}

Test(mq, send_of_a_message_larger_than_the_queue_is_emsgsize)
{
    s_instance("sendbig");
    s_orders_queue(T_DEPTH);
    sp_link_t *producer = s_producer(T_PRODUCER_ID);
    static uint8_t big[T_MSGSIZE + 1];
    sp_wire_put_hdr(big, SP_MSG_ORDERS, 0, T_PRODUCER_ID, 1);

    int rc = sp_link_send(producer, big, sizeof big, NULL, T_TIMEOUT_MS);

    cr_expect_eq(rc, -EMSGSIZE, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_eq(sp_mq_orders_depth(&s_names), 0);
}

Test(mq, recv_into_a_buffer_smaller_than_the_queue_is_emsgsize)
{
    s_instance("recvsmall");
    s_orders_queue(T_DEPTH);
    sp_link_t *producer = s_producer(T_PRODUCER_ID);
    sp_link_t *worker = s_worker(T_WORKER_ID);
    uint8_t buf[T_MSGSIZE];
    size_t len = s_orders_msg(buf, T_PRODUCER_ID, 1, 1);
    cr_assert_eq(sp_link_send(producer, buf, len, NULL, T_WAIT_MS), 0);
    cr_assert_eq(sp_mq_orders_depth(&s_names), 1);

    /* POSIX refuses any buffer below the queue's message size, even when
     * the waiting message itself would fit. */
    int rc = sp_link_recv(worker, buf, T_MSGSIZE - 1u, NULL, T_TIMEOUT_MS);

    cr_expect_eq(rc, -EMSGSIZE, "rc=%d (%s)", rc, sp_strerror(rc));
    cr_expect_eq(sp_link_depth(worker), 1, "the message stays queued");
}

Test(mq, route_of_a_message_shorter_than_a_header_is_empty)
{
    s_instance("runtmsg");
    s_orders_queue(T_DEPTH);
    sp_link_t *producer = s_producer(T_PRODUCER_ID);
    sp_link_t *worker = s_worker(T_WORKER_ID);
    const uint8_t runt[4] = {1, 2, 3, 4};
    cr_assert_eq(sp_link_send(producer, runt, sizeof runt, NULL, T_WAIT_MS), 0);
    uint8_t buf[T_MSGSIZE];
    sp_route_t route;
    memset(&route, 0xff, sizeof route);

    int n = sp_link_recv(worker, buf, sizeof buf, &route, T_WAIT_MS);

    cr_expect_eq(n, (int)sizeof runt);
    cr_expect_eq(route.producer_id, 0, "no header, no producer");
    cr_expect_eq(sp_wire_check(buf, (size_t)n, NULL), SP_E_BAD_SIZE);
}

Test(mq, unlink_and_depth_of_a_missing_queue_are_enoent)
{
    s_instance("missing");

    cr_expect_eq(sp_mq_unlink_name(s_names.orders_mq), -ENOENT);
    cr_expect_eq(sp_mq_orders_depth(&s_names), -ENOENT);
    cr_expect_eq(sp_mq_remove_all(&s_names), -ENOENT);
}

/* The broker's preflight (producers and batch 0) counts the order queue and
 * one reply queue of the default batch; a shape with more producers, one
 * reply queue each, of the size its batch's results take. */
Test(mq, preflight_counts_a_reply_queue_per_producer)
{
    s_instance("preflight");
    long msg_max = sp_mq_limit("msg_max"), depth = 0, size = 0;
    cr_assert_gt(msg_max, 0);
    cr_assert_eq(sp_mq_orders_size(&depth, &size), 0);
    uint64_t orders = sp_limits_mq_bytes((uint64_t)depth, (uint64_t)size);
    unsigned batch = sp_wire_fit(SP_MSG_ORDERS, (size_t)size);
    batch = batch < SP_BATCH_DEFAULT ? batch : SP_BATCH_DEFAULT;
    char why[T_WHY_CAP] = "";

    sp_limits_need_t one = {0};
    sp_tparams_t p = {.names = &s_names};
    cr_assert_eq(sp_transport_mq.preflight(&p, &one, why, sizeof why), 0, "%s", why);
    cr_expect_eq(one.mq_queues, 2);
    cr_expect_eq(
        one.mq_bytes,
        orders + sp_limits_mq_bytes((uint64_t)msg_max, sp_wire_msg_size(SP_MSG_RESULTS, batch)));
    sp_limits_need_t also_one = {0};
    p.producers = 1;
    cr_assert_eq(sp_transport_mq.preflight(&p, &also_one, why, sizeof why), 0, "%s", why);
    cr_expect_eq(also_one.mq_bytes, one.mq_bytes, "0 producers means 1");

    sp_limits_need_t three = {0};
    p.producers = 3;
    p.batch = 100;
    cr_assert_eq(sp_transport_mq.preflight(&p, &three, why, sizeof why), 0, "%s", why);
    cr_expect_eq(three.mq_queues, 4);
    cr_expect_eq(
        three.mq_bytes,
        orders + 3 * sp_limits_mq_bytes((uint64_t)msg_max, sp_wire_msg_size(SP_MSG_RESULTS, 100)));
    cr_expect_eq(three.mq_depth, (uint64_t)depth);
}

/* A failing mq_send is the sender's error, never a message counted as
 * sent: with the Nth send failing (N swept over a run of sends), the
 * worker receives every other message exactly once, and not that one. */
Test(mq, a_failing_mq_send_is_reported_and_loses_nothing_else)
{
    s_instance("sendfail");
    s_orders_queue(T_DEPTH);
    sp_link_t *producer = s_producer(T_PRODUCER_ID);
    sp_link_t *worker = s_worker(T_WORKER_ID);
    uint8_t buf[T_MSGSIZE];
    for (unsigned n = 1; n <= T_DEPTH; n++) {
        bool sent[T_DEPTH + 1] = {false};
        sp_sys_fail_nth(SP_SYS_MQ_SEND, n, EBADF);
        for (unsigned b = 1; b <= T_DEPTH; b++) {
            size_t len = s_orders_msg(buf, T_PRODUCER_ID, 1, b);
            int rc = sp_link_send(producer, buf, len, NULL, T_WAIT_MS);
            cr_expect_eq(rc, b == n ? -EBADF : 0, "send %u of %u with send %u failing: %s", b,
                         T_DEPTH, n, sp_strerror(rc));
            sent[b] = rc == 0;
        }
        sp_sys_fail_off();
        cr_expect_eq(sp_mq_orders_depth(&s_names), T_DEPTH - 1);
        unsigned got[T_DEPTH + 1] = {0};
        for (int len; (len = sp_link_recv(worker, buf, sizeof buf, NULL, T_TIMEOUT_MS)) >= 0;) {
            sp_msg_hdr_t h;
            cr_assert_eq(sp_wire_check(buf, (size_t)len, &h), 0);
            cr_assert(h.batch >= 1 && h.batch <= T_DEPTH);
            got[h.batch]++;
        }
        for (unsigned b = 1; b <= T_DEPTH; b++) {
            cr_expect_eq(got[b], sent[b] ? 1u : 0u, "send %u failing: message %u received %u times",
                         n, b, got[b]);
        }
    }
}
