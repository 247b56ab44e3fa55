/*
 * test_link — the link conformance suite: what every transport that carries
 * orders between processes (mq, zmq, shm) must do behind sp_link.h.  Each
 * test is a Criterion parameterized test, run once per transport; a
 * transport passes when all of them pass.
 *
 * The behaviours:
 *   - messages from one producer arrive in the order sent, byte for byte,
 *     and so do the answers to them (per-producer FIFO), and each end's
 *     depth counts what waits for it where the transport can tell;
 *   - each order message gets exactly one result message, at its sender,
 *     across processes, and nobody gets anything else;
 *   - malformed messages are dead-lettered and counted (a real broker with
 *     real workers), and a worker that releases a message it dead-letters
 *     keeps the path going;
 *   - waits end at their timeout (SP_E_TIMEOUT, never early, never hanging);
 *   - a full path holds the sender back until a worker takes, losing
 *     nothing, and an empty one says so;
 *   - a closed end can be replaced: a new producer and a new worker carry on;
 *   - a link whose messages do not fit the path is refused with -EMSGSIZE
 *     and a reason naming the size, leaving nothing claimed;
 *   - a peer killed mid-message costs the other side no wait beyond its
 *     timeout: a dead producer's answer goes nowhere, a dead worker's order
 *     is answered when it is resent.
 *
 * Everything that sets a transport up sits in the first section, "The
 * transports", through the transport's sp_transport_t: how a test makes the
 * path for its instance and removes it, and how each end is configured.
 * The tests below it use only sp_link.h, the fixture's s_path_* calls and
 * the table.  A new transport joins the suite by its name in s_params (a
 * test fails until it does).
 *
 * Every IPC name carries the test's tag, its transport and its pid; the
 * fixture closes every link, kills every child and removes the path, pass or
 * fail, and a test that passes checks that nothing of its instance is left.
 * Every wait polls for its event against a deadline.
 */
#include "sp_testutil.h"

#include "sp_error.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_table.h"
#include "sp_time.h"
#include "sp_transport.h"
#include "sp_wire.h"
#include "sp_zlink.h"

#include <czmq.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_MSGSIZE      1024 /* the largest message of a bare mq or shm path */
#define T_DEPTH        8    /* order messages a bare mq path holds (<= fs.mqueue.msg_max) */
#define T_WHY_CAP      256
#define T_TIMEOUT_MS   50              /* waits that must time out */
#define T_EARLY_MS     10              /* a timed wait may end this much early */
#define T_PROMPT_MS    1000            /* a wait of 0 ms returns well within this */
#define T_WAIT_MS      SP_TEST_WAIT_MS /* waits that must succeed */
#define T_RESEND_MS    500             /* a producer's wait for a resent order */
#define T_RESENDS      20              /* resends before a test gives up */
#define T_FILL_MAX     1000000         /* messages sent to a path that must fill */
#define T_NAME_MAX     8               /* a transport's name */
#define T_MAX_LINKS    8
#define T_MAX_CHILDREN 2

#define T_PRODUCER_A 7
#define T_PRODUCER_B 8
#define T_PRODUCER_C 9
#define T_PRODUCER_D 10
#define T_FRESH_ID   17 /* a producer id used for the first time in its test */
#define T_WORKER_1   1
#define T_WORKER_2   2
/* a client's own id (PROTOCOL section 7): the broker's workers take it as
 * they take a remote client's */
#define T_CLIENT_ID 0x80000007u

/* the end-to-end path: its workers, and what data/products.csv holds */
#define T_E2E_WORKERS "2"
#define T_E2E_PRODUCT 1  /* the product a good order buys */
#define T_E2E_STOCK   27 /* its stock */
#define T_E2E_LAST_ID 10 /* products 1..10 are in the catalogue */

/* ------------------------------------------------------------------ */
/* The transports                                                      */

/*
 * The one part of this file that knows how a transport is set up: through
 * its sp_transport_t.  A path is what carries one test's orders, of two
 * kinds:
 *
 *   bare          the path alone, the test being its only worker: what the
 *                 transport's broker side creates (t->create), or, for a
 *                 transport whose orders go through the broker's router
 *                 (t->routed), a broker running the router;
 *   with workers  a real broker with real workers, for what is end to end.
 *
 * The broker refuses --workers 0 (it takes 1..64), so a routed bare path's
 * one worker is T_NO_WORKER, which exits at once: the broker gives up on it
 * after SP_BROKER_RESTART_MAX quick deaths, and the test is the only worker
 * the router has.
 */

#define T_NO_WORKER "/bin/true"
#define T_ID_LIMIT  (T_FRESH_ID + 1) /* every producer id of a bare path is below it */

/* The transports of the suite: every registered one that carries orders
 * between processes (has_workers; `direct` has no path).  Names only, no
 * pointers: Criterion hands them to each test's own process. */
typedef struct {
    char name[T_NAME_MAX];
} t_param_t;

static t_param_t s_params[] = {{"mq"}, {"zmq"}, {"shm"}, {"nats"}};

static struct criterion_test_params s_param_array(void)
{
    return cr_make_param_array(t_param_t, s_params, sizeof s_params / sizeof s_params[0]);
}

typedef struct {
    const sp_transport_t *transport;
    sp_names_t names;
    size_t msgsize;                   /* the largest message the path carries */
    pid_t broker;                     /* the broker that runs the path, or 0 */
    char ep_orders[SP_ENDPOINT_MAX];  /* producers connect here (routed) */
    char ep_workers[SP_ENDPOINT_MAX]; /* workers connect here (routed) */
    sp_tside_t *side;                 /* what the transport's create made */
    spt_nats_t nats;                  /* nats: the test's own server */
    bool made;
} t_path_t;

/* A new transport is in the suite, or the suite fails. */
Test(link, every_transport_with_workers_is_in_the_suite)
{
    for (unsigned i = 0; sp_transport_at(i) != NULL; i++) {
        const sp_transport_t *t = sp_transport_at(i);
        bool listed = false;
        for (size_t k = 0; k < sizeof s_params / sizeof s_params[0]; k++) {
            listed = listed || strcmp(s_params[k].name, t->name) == 0;
        }
        cr_expect_eq(listed, t->has_workers, "transport %s: %s", t->name,
                     listed ? "has no workers, no path to test" : "missing from s_params");
    }
}

/* The link configuration of one end of the path. */
static sp_link_cfg_t s_path_cfg(const t_path_t *p, sp_link_role_t role, uint32_t id, size_t max_msg)
{
    sp_link_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.role = role;
    cfg.transport = p->transport;
    cfg.names = &p->names;
    cfg.endpoint = role == SP_LINK_PRODUCER ? p->ep_orders : p->ep_workers;
    cfg.id = id;
    cfg.max_msg = max_msg;
    cfg.reply_msg = T_MSGSIZE;
    return cfg;
}

/* Instance "sp-lk-<tag>-<transport>-<pid>". */
static void s_path_names(t_path_t *p, const char *transport, const char *tag)
{
    memset(p, 0, sizeof *p);
    p->transport = sp_transport_find(transport);
    cr_assert_not_null(p->transport, "no transport '%s'", transport);
    char label[SP_INSTANCE_NAME_MAX + 1];
    snprintf(label, sizeof label, "lk-%s-%s", tag, transport);
    char name[SP_INSTANCE_NAME_MAX + 1];
    spt_instance(name, sizeof name, label);
    cr_assert_eq(sp_names_init(&p->names, name, NULL), 0, "instance name '%s'", name);
    /* a transport on servers of its own: a server for this test alone */
    if (strcmp(transport, "nats") == 0) {
        cr_assert(spt_nats_start(&p->nats, name), "nats-server did not start");
        snprintf(p->ep_orders, sizeof p->ep_orders, "%s", p->nats.url);
        snprintf(p->ep_workers, sizeof p->ep_workers, "%s", p->nats.url);
    }
}

/* Starts the broker that makes the path and reads where its ends connect
 * from the table header. */
static void s_path_broker(t_path_t *p, const char *const *extra)
{
    p->broker = spt_broker_start(p->names.name, extra);
    cr_assert_gt(p->broker, 0, "%s: the broker did not become ready", p->transport->name);
    p->made = true;
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, p->names.table, false), 0, "%s: no table", p->transport->name);
    const sp_table_hdr_t *h = sp_table_hdr(t);
    snprintf(p->ep_orders, sizeof p->ep_orders, "%s", h->ep_orders);
    snprintf(p->ep_workers, sizeof p->ep_workers, "%s", h->ep_workers);
    sp_table_close(&t);
}

/* A bare path for `transport`, the test being its only worker. */
static void s_path_bare(t_path_t *p, const char *transport, const char *tag)
{
    s_path_names(p, transport, tag);
    const sp_transport_t *t = p->transport;
    if (t->routed) {
        const char *extra[] = {"--transport", t->name,     "--workers",   "1",
                               "--consumer",  T_NO_WORKER, "--catalogue", spt_data("products.csv"),
                               NULL};
        s_path_broker(p, extra);
        /* the router takes order messages up to the wire's largest */
        p->msgsize = sp_wire_msg_size(SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS);
        return;
    }
    sp_tparams_t params = {.names = &p->names,
                           .depth = T_DEPTH,
                           .msgsize = T_MSGSIZE,
                           .service = p->nats.nodes > 0 ? p->nats.url : NULL};
    sp_tinfo_t info = {0};
    char why[T_WHY_CAP] = "";
    int rc = t->create(&p->side, &params, &info, why, sizeof why);
    cr_assert_eq(rc, 0, "%s: making the path: %s: %s", t->name, sp_strerror(rc), why);
    p->made = true;
    p->msgsize = info.msgsize;
}

/* A real broker running `transport` with real workers. */
static void s_path_with_workers(t_path_t *p, const char *transport, const char *tag)
{
    s_path_names(p, transport, tag);
    const char *extra[] = {"--transport",
                           transport,
                           "--workers",
                           T_E2E_WORKERS,
                           "--catalogue",
                           spt_data("products.csv"),
                           p->nats.nodes > 0 ? "--nats" : NULL,
                           p->nats.url,
                           NULL};
    s_path_broker(p, extra);
}

/* Removes the path: quietly (a fixture after a failure), or checking that
 * the broker stopped cleanly and nothing of the instance is left. */
static void s_path_remove(t_path_t *p, bool check)
{
    if (!p->made) {
        spt_nats_stop(&p->nats);
        return;
    }
    p->made = false;
    if (p->broker > 0) {
        int status = spt_stop(p->broker);
        p->broker = 0;
        if (check) {
            cr_expect(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "%s: broker status %d", p->transport->name, status);
        }
    } else {
        p->transport->destroy(&p->side, T_ID_LIMIT);
    }
    if (check) {
        cr_expect_not(spt_leftovers(p->names.name), "%s: IPC objects of %s left behind",
                      p->transport->name, p->names.name);
    }
    spt_nats_stop(&p->nats);
}

/* sp_link_open refuses a configuration without a transport. */
Test(link, link_open_refuses_a_missing_transport)
{
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, "sp-lk-none", NULL), 0);
    sp_link_cfg_t cfg = {.role = SP_LINK_WORKER, .transport = NULL, .names = &names, .id = 1};
    char why[T_WHY_CAP] = "";
    sp_link_t *link = (sp_link_t *)&link;

    cr_expect_eq(sp_link_open(&link, &cfg, why, sizeof why), SP_E_USAGE);
    cr_expect_null(link);
    cr_expect_neq(why[0], '\0', "no explanation");
}

/* ------------------------------------------------------------------ */
/* The fixture: one path, its links and children per test              */

static t_path_t s_path;
static sp_link_t *s_links[T_MAX_LINKS];
static pid_t s_children[T_MAX_CHILDREN];

/* Closes every link and kills every child still running. */
static void s_let_go(void)
{
    for (unsigned i = 0; i < T_MAX_LINKS; i++) {
        sp_link_close(&s_links[i]);
    }
    for (unsigned i = 0; i < T_MAX_CHILDREN; i++) {
        if (s_children[i] > 0) {
            kill(s_children[i], SIGKILL);
            waitpid(s_children[i], NULL, 0);
            s_children[i] = 0;
        }
    }
}

/* After a test that failed: whatever is left, quietly. */
static void s_cleanup(void)
{
    s_let_go();
    s_path_remove(&s_path, false);
}

/* The end of a test: everything let go of, and the path gone without a
 * trace. */
static void s_finish(void)
{
    s_let_go();
    s_path_remove(&s_path, true);
}

TestSuite(link, .fini = s_cleanup);

/* Every test: declared once, run for each transport. */
#define LINK_TEST(name, ...)                                                                       \
    ParameterizedTestParameters(link, name)                                                        \
    {                                                                                              \
        return s_param_array();                                                                    \
    }                                                                                              \
    ParameterizedTest(t_param_t *param, link, name, __VA_ARGS__)

static sp_link_t **s_slot(void)
{
    sp_link_t **slot = spt_link_slot(s_links, T_MAX_LINKS);
    cr_assert_not_null(slot, "too many links in one test");
    return slot;
}

static int s_open(sp_link_role_t role, uint32_t id, size_t max_msg, sp_link_t **out, char *why,
                  size_t cap)
{
    sp_link_cfg_t cfg = s_path_cfg(&s_path, role, id, max_msg);
    return sp_link_open(out, &cfg, why, cap);
}

/* Opens an end configured as `cfg`, which must work. */
static sp_link_t *s_link_cfg(const sp_link_cfg_t *cfg)
{
    char why[T_WHY_CAP] = "";
    sp_link_t **slot = s_slot();
    int rc = sp_link_open(slot, cfg, why, sizeof why);
    cr_assert_eq(rc, 0, "%s: %s %u: %s: %s", s_path.transport->name,
                 cfg->role == SP_LINK_PRODUCER ? "producer" : "worker", cfg->id, sp_strerror(rc),
                 why);
    return *slot;
}

static sp_link_t *s_link(sp_link_role_t role, uint32_t id)
{
    sp_link_cfg_t cfg = s_path_cfg(&s_path, role, id, T_MSGSIZE);
    return s_link_cfg(&cfg);
}

/* A worker that asks for `credit` messages up front (where the path hands
 * out messages against credit). */
static sp_link_t *s_greedy_worker(uint32_t id, unsigned credit)
{
    sp_link_cfg_t cfg = s_path_cfg(&s_path, SP_LINK_WORKER, id, T_MSGSIZE);
    cfg.credit = credit;
    return s_link_cfg(&cfg);
}

static sp_link_t *s_producer(uint32_t id)
{
    return s_link(SP_LINK_PRODUCER, id);
}

static sp_link_t *s_worker(uint32_t id)
{
    return s_link(SP_LINK_WORKER, id);
}

static void s_close(sp_link_t *link)
{
    for (unsigned i = 0; i < T_MAX_LINKS; i++) {
        if (s_links[i] == link) {
            sp_link_close(&s_links[i]);
        }
    }
}

/* Forks a child that runs fn(arg) and _exits with its result. */
static pid_t s_fork(int (*fn)(int arg), int arg)
{
    unsigned i = 0;
    while (i < T_MAX_CHILDREN && s_children[i] > 0) {
        i++;
    }
    cr_assert_lt(i, T_MAX_CHILDREN, "too many children in one test");
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        _exit(fn(arg));
    }
    s_children[i] = pid;
    return pid;
}

/* Kills a child (SIGKILL) and reaps it. */
static void s_kill(pid_t pid)
{
    for (unsigned i = 0; i < T_MAX_CHILDREN; i++) {
        if (s_children[i] == pid) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            s_children[i] = 0;
        }
    }
}

/* Waits for a child to exit by itself; its exit code, or -1. */
static int s_reap(pid_t pid)
{
    for (unsigned i = 0; i < T_MAX_CHILDREN; i++) {
        if (s_children[i] == pid) {
            s_children[i] = 0;
        }
    }
    return spt_wait(pid, T_WAIT_MS);
}

static long s_ms_since(uint64_t t0)
{
    return (long)((sp_now_ns() - t0) / SP_NS_PER_MS);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* An orders message from `producer` of `count` purchases of one unit of
 * products 1.. with seq msg_no * 100 + 1..; msg_no also goes into the
 * header's batch field, which the worker below copies into its answer. */
static size_t s_orders(uint8_t *buf, uint32_t producer, unsigned count, uint32_t msg_no)
{
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, count, producer, msg_no);
    for (unsigned i = 0; i < count; i++) {
        sp_order_t o = {.type = SP_ORDER_PURCHASE,
                        .producer_id = producer,
                        .seq = (uint64_t)msg_no * 100u + i + 1u,
                        .product_id = i + 1u,
                        .quantity = 1,
                        .sched_ns = sp_now_ns()};
        sp_wire_put_order(sp_wire_rec(buf, SP_MSG_ORDERS, i), &o);
    }
    return sp_wire_msg_size(SP_MSG_ORDERS, count);
}

/* The results message answering the orders message `in`, from worker
 * `worker` (the header's batch copied, for the tests to match them). */
static size_t s_answer(const uint8_t *in, uint8_t *out, uint32_t worker)
{
    sp_msg_hdr_t h;
    sp_wire_get_hdr(in, &h);
    sp_wire_put_hdr(out, SP_MSG_RESULTS, h.count, worker, h.batch);
    for (unsigned i = 0; i < h.count; i++) {
        sp_order_t o;
        sp_wire_get_order(sp_wire_crec(in, SP_MSG_ORDERS, i), &o);
        sp_result_t r = {.producer_id = o.producer_id,
                         .status = SP_STATUS_ACCEPTED,
                         .type = o.type,
                         .worker_id = (uint8_t)worker,
                         .seq = o.seq,
                         .product_id = o.product_id,
                         .sched_ns = o.sched_ns,
                         .applied_ns = sp_now_ns()};
        sp_wire_put_result(sp_wire_rec(out, SP_MSG_RESULTS, i), &r);
    }
    return sp_wire_msg_size(SP_MSG_RESULTS, h.count);
}

/* A worker's turn: takes one orders message and answers it along its
 * route.  Returns 0 with *h its header, or what failed (SP_E_TIMEOUT,
 * SP_E_BAD_*, -EPROTO when the route does not name the header's sender, or
 * the send's code). */
static int s_serve(sp_link_t *w, uint32_t worker, int timeout_ms, sp_msg_hdr_t *h)
{
    uint8_t in[T_MSGSIZE];
    uint8_t out[T_MSGSIZE];
    sp_route_t route;
    int n = sp_link_recv(w, in, sizeof in, &route, timeout_ms);
    if (n < 0) {
        return n;
    }
    int rc = sp_wire_check(in, (size_t)n, h);
    if (rc < 0) {
        return rc;
    }
    if (h->kind != SP_MSG_ORDERS || h->count == 0 || route.producer_id != h->sender) {
        return -EPROTO;
    }
    return sp_link_send(w, out, s_answer(in, out, worker), &route, T_WAIT_MS);
}

/* A producer's receive of one results message answering its message
 * msg_no of `count` orders: checks every record. */
static void s_expect_results(sp_link_t *p, uint32_t producer, uint32_t msg_no, unsigned count)
{
    uint8_t in[T_MSGSIZE];
    int n = sp_link_recv(p, in, sizeof in, NULL, T_WAIT_MS);
    cr_assert_gt(n, 0, "%s: producer %u, message %u: no results: %s", s_path.transport->name,
                 producer, msg_no, sp_strerror(n));
    sp_msg_hdr_t h;
    cr_assert_eq(sp_wire_check(in, (size_t)n, &h), 0, "%s: a malformed answer",
                 s_path.transport->name);
    cr_expect_eq(h.kind, SP_MSG_RESULTS);
    cr_expect_eq(h.batch, msg_no, "%s: producer %u expected the answer to %u, got %u's",
                 s_path.transport->name, producer, msg_no, h.batch);
    cr_assert_eq(h.count, count, "%s: one result per order", s_path.transport->name);
    for (unsigned i = 0; i < h.count; i++) {
        sp_result_t r;
        sp_wire_get_result(sp_wire_crec(in, SP_MSG_RESULTS, i), &r);
        cr_expect_eq(r.producer_id, producer, "%s: a result for %u reached %u",
                     s_path.transport->name, r.producer_id, producer);
        cr_expect_eq(r.seq, (uint64_t)msg_no * 100u + i + 1u);
    }
}

/* Nothing more arrives at this producer. */
static void s_expect_nothing(sp_link_t *p, uint32_t producer)
{
    uint8_t in[T_MSGSIZE];
    int rc = sp_link_recv(p, in, sizeof in, NULL, T_TIMEOUT_MS);
    cr_expect_eq(rc, SP_E_TIMEOUT, "%s: producer %u got something more: %d (%s)",
                 s_path.transport->name, producer, rc, sp_strerror(rc));
}

/* Messages waiting for this end, where the transport can tell (else
 * sp_link_depth says -ENOTSUP). */
static void s_expect_depth(sp_link_t *l, long want, const char *what)
{
    long depth = sp_link_depth(l);
    if (depth != -ENOTSUP) {
        cr_expect_eq(depth, want, "%s: %s: depth %ld, %ld waiting", s_path.transport->name, what,
                     depth, want);
    }
}

/* ------------------------------------------------------------------ */
/* Per-producer FIFO                                                   */

LINK_TEST(messages_from_one_producer_arrive_in_the_order_sent, .timeout = 60)
{
    enum { S_EACH = T_DEPTH / 2 };
    s_path_bare(&s_path, param->name, "fifo");
    sp_link_t *a = s_producer(T_PRODUCER_A);
    sp_link_t *b = s_producer(T_PRODUCER_B);
    uint8_t sent[2][S_EACH][T_MSGSIZE];
    size_t len[2][S_EACH];
    for (uint32_t m = 0; m < S_EACH; m++) {
        len[0][m] = s_orders(sent[0][m], T_PRODUCER_A, 1 + m, m + 1);
        len[1][m] = s_orders(sent[1][m], T_PRODUCER_B, 2 + m, m + 1);
        cr_assert_eq(sp_link_send(a, sent[0][m], len[0][m], NULL, T_WAIT_MS), 0);
        cr_assert_eq(sp_link_send(b, sent[1][m], len[1][m], NULL, T_WAIT_MS), 0);
    }

    s_expect_depth(a, 0, "the producer's own inbound");

    /* each answered before the next is taken, as a worker does */
    sp_link_t *w = s_worker(T_WORKER_1);
    s_expect_depth(w, 2 * S_EACH, "orders waiting");
    uint32_t next[2] = {1, 1};
    for (unsigned k = 0; k < 2 * S_EACH; k++) {
        uint8_t in[T_MSGSIZE];
        uint8_t out[T_MSGSIZE];
        sp_route_t route;
        int n = sp_link_recv(w, in, sizeof in, &route, T_WAIT_MS);
        cr_assert_gt(n, 0, "%s: message %u: %s", param->name, k, sp_strerror(n));
        sp_msg_hdr_t h;
        cr_assert_eq(sp_wire_check(in, (size_t)n, &h), 0);
        unsigned who = h.sender == T_PRODUCER_A ? 0 : 1;
        cr_assert(h.sender == T_PRODUCER_A || h.sender == T_PRODUCER_B, "sender %u", h.sender);
        cr_expect_eq(route.producer_id, h.sender, "%s: the route names the sender", param->name);
        cr_assert_eq(h.batch, next[who], "%s: producer %u's message %u came before %u", param->name,
                     h.sender, h.batch, next[who]);
        cr_expect_eq((size_t)n, len[who][h.batch - 1]);
        cr_expect_eq(memcmp(in, sent[who][h.batch - 1], (size_t)n), 0,
                     "%s: the message arrives byte for byte", param->name);
        next[who]++;
        cr_assert_eq(sp_link_send(w, out, s_answer(in, out, T_WORKER_1), &route, T_WAIT_MS), 0);
    }

    /* the answers come back in the order they were sent */
    s_expect_depth(w, 0, "orders after the last was taken");
    s_expect_depth(a, S_EACH, "answers waiting");
    for (uint32_t m = 1; m <= S_EACH; m++) {
        s_expect_results(a, T_PRODUCER_A, m, m);
        s_expect_results(b, T_PRODUCER_B, m, 1 + m);
    }
    s_expect_depth(a, 0, "answers after the last was taken");
    s_expect_nothing(a, T_PRODUCER_A);
    s_expect_nothing(b, T_PRODUCER_B);
    s_finish();
}

/* ------------------------------------------------------------------ */
/* Exactly one result per order message, at its sender                 */

enum { S_ROUTE_PRODUCERS = 3, S_ROUTE_MSGS = 2 };

/* The worker process: answers every message of the producers, each along
 * its route, and closes its link only when the test says it has them all
 * (a byte on the pipe `done`): what a ZeroMQ link has not yet passed on
 * when it closes is lost.  Exit codes say what went wrong. */
static int s_route_worker(int done)
{
    sp_link_t *w = NULL;
    if (s_open(SP_LINK_WORKER, T_WORKER_1, T_MSGSIZE, &w, NULL, 0) < 0) {
        return 10;
    }
    int rc = 0;
    for (unsigned k = 0; k < S_ROUTE_PRODUCERS * S_ROUTE_MSGS && rc == 0; k++) {
        sp_msg_hdr_t h;
        int s = s_serve(w, T_WORKER_1, T_WAIT_MS, &h);
        rc = s == 0 ? 0 : s == -EPROTO ? 11 : 12;
    }
    struct pollfd pfd = {.fd = done, .events = POLLIN};
    poll(&pfd, 1, T_WAIT_MS);
    sp_link_close(&w);
    return rc;
}

LINK_TEST(each_order_message_gets_one_result_at_its_sender, .timeout = 60)
{
    s_path_bare(&s_path, param->name, "route");
    /* the worker is forked before this process opens any link (ZeroMQ does
     * not survive a fork) */
    int done[2];
    cr_assert_eq(pipe(done), 0);
    pid_t worker = s_fork(s_route_worker, done[0]);
    close(done[0]);
    const uint32_t ids[S_ROUTE_PRODUCERS] = {T_PRODUCER_A, T_PRODUCER_B, T_PRODUCER_C};
    sp_link_t *p[S_ROUTE_PRODUCERS];
    for (unsigned i = 0; i < S_ROUTE_PRODUCERS; i++) {
        p[i] = s_producer(ids[i]);
    }
    sp_link_t *silent = s_producer(T_PRODUCER_D);
    uint8_t msg[T_MSGSIZE];
    for (uint32_t m = 1; m <= S_ROUTE_MSGS; m++) {
        for (unsigned i = 0; i < S_ROUTE_PRODUCERS; i++) {
            size_t len = s_orders(msg, ids[i], i + m, m);
            int rc = sp_link_send(p[i], msg, len, NULL, T_WAIT_MS);
            cr_assert_eq(rc, 0, "%s: producer %u's message %u: %s", param->name, ids[i], m,
                         sp_strerror(rc));
        }
    }

    for (unsigned i = 0; i < S_ROUTE_PRODUCERS; i++) {
        for (uint32_t m = 1; m <= S_ROUTE_MSGS; m++) {
            s_expect_results(p[i], ids[i], m, i + m);
        }
    }
    cr_assert_eq(write(done[1], "!", 1), 1);
    close(done[1]);
    int code = s_reap(worker);
    cr_expect_eq(code, 0,
                 "%s: the worker process failed: %d (-1 it did not end, 10 it had no link, 11 a "
                 "route did not name its sender, 12 a receive or send failed)",
                 param->name, code);
    for (unsigned i = 0; i < S_ROUTE_PRODUCERS; i++) {
        s_expect_nothing(p[i], ids[i]);
    }
    s_expect_nothing(silent, T_PRODUCER_D);
    s_finish();
}

/* ------------------------------------------------------------------ */
/* Malformed messages: dead-lettered and counted                       */

/* Everything the order path must dead-letter, each small enough for every
 * path. */
enum { S_BAD_MAX = 48, S_BAD_LEN = 512, S_BAD_RANDOM = 24, S_BAD_SEED = 11 };

typedef struct {
    uint8_t msg[S_BAD_MAX][S_BAD_LEN];
    size_t len[S_BAD_MAX];
    unsigned n;
} t_bad_t;

/* The next message to write, zeroed; s_bad_keep then counts it in. */
static uint8_t *s_bad_next(t_bad_t *b)
{
    cr_assert_lt(b->n, S_BAD_MAX);
    memset(b->msg[b->n], 0, S_BAD_LEN);
    return b->msg[b->n];
}

static void s_bad_keep(t_bad_t *b, size_t len)
{
    b->len[b->n++] = len;
}

static void s_malformed(t_bad_t *b)
{
    const uint32_t id = T_CLIENT_ID;
    uint8_t *m = s_bad_next(b);
    s_bad_keep(b, 0); /* empty */
    m = s_bad_next(b);
    memcpy(m, "SPW1", 4);
    s_bad_keep(b, 4); /* shorter than a header */
    m = s_bad_next(b);
    s_bad_keep(b, s_orders(m, id, 1, 1) - 1); /* a byte short */
    m = s_bad_next(b);
    s_bad_keep(b, s_orders(m, id, 1, 1) + 1); /* a byte too many */
    m = s_bad_next(b);
    s_bad_keep(b, s_orders(m, id, 1, 1));
    m[0] ^= 0xff; /* magic */
    m = s_bad_next(b);
    s_bad_keep(b, s_orders(m, id, 1, 1));
    m[4] = SP_WIRE_VERSION + 1; /* version */
    m = s_bad_next(b);
    s_bad_keep(b, s_orders(m, id, 1, 1));
    m[5] = SP_MSG_KIND_MAX + 1; /* kind */
    m = s_bad_next(b);
    s_bad_keep(b, s_orders(m, id, 2, 1));
    sp_wire_put_hdr(m, SP_MSG_ORDERS, 3, id, 1); /* more orders counted than carried */
    m = s_bad_next(b);
    sp_wire_put_hdr(m, SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS + 1, id, 1); /* above the maximum */
    s_bad_keep(b, SP_WIRE_HDR_SIZE);
    m = s_bad_next(b);
    sp_wire_put_hdr(m, SP_MSG_ORDERS, 0, id, 1); /* orders without an order */
    s_bad_keep(b, SP_WIRE_HDR_SIZE);
    m = s_bad_next(b);
    sp_wire_put_hdr(m, SP_MSG_CREDIT, 1, id, 1); /* well formed, of a kind orders never are */
    s_bad_keep(b, SP_WIRE_HDR_SIZE);
    m = s_bad_next(b);
    sp_wire_put_hdr(m, SP_MSG_EOS, 0, 0, 0);
    s_bad_keep(b, SP_WIRE_HDR_SIZE);
    m = s_bad_next(b);
    sp_wire_put_hdr(m, SP_MSG_RESULTS, 1, id, 1);
    s_bad_keep(b, sp_wire_msg_size(SP_MSG_RESULTS, 1));
    /* then noise, a third of it behind an orders header whose count does
     * not match its length */
    unsigned seed = S_BAD_SEED;
    for (unsigned i = 0; i < S_BAD_RANDOM; i++) {
        m = s_bad_next(b);
        size_t len = (size_t)rand_r(&seed) % S_BAD_LEN;
        for (size_t k = 0; k < len; k++) {
            m[k] = (uint8_t)rand_r(&seed);
        }
        if (i % 3 == 0 && len >= SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE) {
            sp_wire_put_hdr(m, SP_MSG_ORDERS, 1 + (unsigned)(len / SP_WIRE_ORDER_SIZE), id, 0);
        }
        s_bad_keep(b, len);
    }
}

/* Dead-lettered messages so far: the broker's (router) and its workers'. */
static uint64_t s_dead_letters(const sp_table_hdr_t *h)
{
    uint64_t n = atomic_load(&h->invalid_msgs);
    for (int w = 0; w < SP_WORKERS_MAX; w++) {
        n += atomic_load(&h->worker[w].invalid_msgs);
    }
    return n;
}

LINK_TEST(malformed_messages_are_dead_lettered_and_counted, .timeout = 90)
{
    s_path_with_workers(&s_path, param->name, "dead");
    static t_bad_t bad;
    s_malformed(&bad);
    unsigned nbad = bad.n;
    sp_link_t *p = s_producer(T_CLIENT_ID);
    for (unsigned i = 0; i < nbad; i++) {
        int rc = sp_link_send(p, bad.msg[i], bad.len[i], NULL, T_WAIT_MS);
        cr_assert_eq(rc, 0, "%s: malformed message %u: %s", param->name, i, sp_strerror(rc));
    }

    /* the path goes on: a good order behind them is answered, at once and
     * only once */
    uint8_t msg[T_MSGSIZE];
    sp_wire_put_hdr(msg, SP_MSG_ORDERS, 1, T_CLIENT_ID, 1);
    sp_order_t o = {.type = SP_ORDER_PURCHASE,
                    .producer_id = T_CLIENT_ID,
                    .seq = 1,
                    .product_id = T_E2E_PRODUCT,
                    .quantity = 1};
    sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, 0), &o);
    cr_assert_eq(sp_link_send(p, msg, sp_wire_msg_size(SP_MSG_ORDERS, 1), NULL, T_WAIT_MS), 0);
    int n = sp_link_recv(p, msg, sizeof msg, NULL, T_WAIT_MS);
    cr_assert_gt(n, 0, "%s: the good order was not answered: %s", param->name, sp_strerror(n));
    sp_msg_hdr_t h;
    cr_assert_eq(sp_wire_check(msg, (size_t)n, &h), 0);
    cr_assert_eq(h.kind, SP_MSG_RESULTS);
    cr_assert_eq(h.count, 1);
    sp_result_t r;
    sp_wire_get_result(sp_wire_crec(msg, SP_MSG_RESULTS, 0), &r);
    cr_expect_eq(r.status, SP_STATUS_ACCEPTED, "%s: status %u", param->name, r.status);
    cr_expect_eq(r.producer_id, T_CLIENT_ID);
    cr_expect_eq(r.stock_after, T_E2E_STOCK - 1);
    s_expect_nothing(p, T_CLIENT_ID);

    /* every malformed message counted once, by whoever dead-lettered it
     * (the other worker may still be counting its last ones) */
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, s_path.names.table, false), 0);
    uint64_t dead = 0;
    for (uint64_t until = sp_now_ns() + T_WAIT_MS * SP_NS_PER_MS;;) {
        dead = s_dead_letters(sp_table_hdr(t));
        if (dead >= nbad || sp_now_ns() > until) {
            break;
        }
        usleep(10 * 1000);
    }
    cr_expect_eq(dead, nbad, "%s: dead-lettered %llu of %u", param->name, (unsigned long long)dead,
                 nbad);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0, "%s: the table does not add up", param->name);
    cr_expect_eq(spt_tally(t, T_E2E_PRODUCT).version, 1, "%s: the good order, once", param->name);
    for (uint32_t id = T_E2E_PRODUCT + 1; id <= T_E2E_LAST_ID; id++) {
        cr_expect_eq(spt_tally(t, id).version, 0, "%s: product %u changed", param->name, id);
    }
    sp_table_close(&t);
    cr_expect_eq(kill(s_path.broker, 0), 0, "%s: the broker died", param->name);
    s_finish();
}

/* A worker that dead-letters a message releases it; the path then goes on
 * past any number of them (zmq: each release is the message's credit). */
LINK_TEST(a_released_message_frees_its_place, .timeout = 60)
{
    enum { S_RELEASED = 3 * SP_LINK_CREDIT_DEFAULT };
    s_path_bare(&s_path, param->name, "release");
    sp_link_t *p = s_producer(T_PRODUCER_A);
    sp_link_t *w = s_worker(T_WORKER_1);
    uint8_t msg[T_MSGSIZE];
    for (uint32_t m = 1; m <= S_RELEASED; m++) {
        sp_wire_put_hdr(msg, SP_MSG_ORDERS, 0, T_PRODUCER_A, m); /* no order: dead-lettered */
        cr_assert_eq(sp_link_send(p, msg, SP_WIRE_HDR_SIZE, NULL, T_WAIT_MS), 0);
        sp_route_t route;
        int n = sp_link_recv(w, msg, sizeof msg, &route, T_WAIT_MS);
        cr_assert_eq(n, SP_WIRE_HDR_SIZE, "%s: message %u: %d (%s)", param->name, m, n,
                     sp_strerror(n));
        sp_msg_hdr_t h;
        sp_wire_get_hdr(msg, &h);
        cr_expect_eq(h.batch, m);
        cr_expect_eq(sp_link_release(w, &route), 0, "%s: release", param->name);
    }

    sp_msg_hdr_t h;
    cr_assert_eq(sp_link_send(p, msg, s_orders(msg, T_PRODUCER_A, 1, 1), NULL, T_WAIT_MS), 0);
    int rc = s_serve(w, T_WORKER_1, T_WAIT_MS, &h);
    cr_assert_eq(rc, 0, "%s: after %d releases: %s", param->name, S_RELEASED, sp_strerror(rc));
    s_expect_results(p, T_PRODUCER_A, 1, 1);
    s_expect_nothing(p, T_PRODUCER_A);
    s_finish();
}

/* ------------------------------------------------------------------ */
/* Timeouts                                                            */

/* rc, and how long the call took, checked against a timeout it must have
 * run out. */
static void s_expect_timed_out(int rc, uint64_t t0, int timeout_ms, const char *what)
{
    long took = s_ms_since(t0);
    cr_expect_eq(rc, SP_E_TIMEOUT, "%s: %s: %d (%s)", s_path.transport->name, what, rc,
                 sp_strerror(rc));
    cr_expect_geq(took, timeout_ms - T_EARLY_MS, "%s: %s gave up after %ld of %d ms",
                  s_path.transport->name, what, took, timeout_ms);
    cr_expect_lt(took, timeout_ms == 0 ? T_PROMPT_MS : timeout_ms + T_WAIT_MS,
                 "%s: %s took %ld ms for a %d ms timeout", s_path.transport->name, what, took,
                 timeout_ms);
}

LINK_TEST(waits_end_at_their_timeout, .timeout = 60)
{
    s_path_bare(&s_path, param->name, "timeout");
    sp_link_t *p = s_producer(T_PRODUCER_A);
    sp_link_t *w = s_worker(T_WORKER_1);
    uint8_t buf[T_MSGSIZE];
    sp_route_t route;

    uint64_t t0 = sp_now_ns();
    int rc = sp_link_recv(w, buf, sizeof buf, &route, T_TIMEOUT_MS);
    s_expect_timed_out(rc, t0, T_TIMEOUT_MS, "worker receive");
    t0 = sp_now_ns();
    rc = sp_link_recv(w, buf, sizeof buf, &route, 0);
    s_expect_timed_out(rc, t0, 0, "worker receive without waiting");
    t0 = sp_now_ns();
    rc = sp_link_recv(p, buf, sizeof buf, NULL, T_TIMEOUT_MS);
    s_expect_timed_out(rc, t0, T_TIMEOUT_MS, "producer receive");
    t0 = sp_now_ns();
    rc = sp_link_recv(p, buf, sizeof buf, NULL, 0);
    s_expect_timed_out(rc, t0, 0, "producer receive without waiting");

    /* a timeout loses nothing: what comes next is taken whole */
    sp_msg_hdr_t h;
    cr_assert_eq(sp_link_send(p, buf, s_orders(buf, T_PRODUCER_A, 2, 1), NULL, T_WAIT_MS), 0);
    cr_expect_eq(s_serve(w, T_WORKER_1, T_WAIT_MS, &h), 0);
    s_expect_results(p, T_PRODUCER_A, 1, 2);
    s_finish();
}

/* ------------------------------------------------------------------ */
/* Full and empty                                                      */

LINK_TEST(a_full_path_holds_the_sender_back_until_a_worker_takes, .timeout = 180)
{
    s_path_bare(&s_path, param->name, "full");
    sp_link_t *p = s_producer(T_PRODUCER_A);
    uint8_t msg[T_MSGSIZE];
    uint32_t sent = 0;
    int rc = 0;
    while (sent < T_FILL_MAX) {
        rc = sp_link_send(p, msg, s_orders(msg, T_PRODUCER_A, 1, sent + 1), NULL, 0);
        if (rc != 0) {
            break;
        }
        sent++;
    }
    cr_assert_eq(rc, SP_E_TIMEOUT, "%s: after %u messages: %d (%s)", param->name, sent, rc,
                 sp_strerror(rc));
    cr_assert_gt(sent, 0);
    uint64_t t0 = sp_now_ns();
    rc = sp_link_send(p, msg, s_orders(msg, T_PRODUCER_A, 1, sent + 1), NULL, T_TIMEOUT_MS);
    s_expect_timed_out(rc, t0, T_TIMEOUT_MS, "send to a full path");

    /* a worker takes them in order; the producer gets room again before the
     * path is empty, and loses nothing (a worker taking as many as it can
     * ask for at once: a path may give room back in large steps) */
    sp_link_t *w = s_greedy_worker(T_WORKER_1, SP_WIRE_MAX_RECORDS);
    s_expect_depth(w, sent, "a full path");
    uint32_t taken = 0;
    bool room = false;
    while (taken < sent + (room ? 1u : 0u)) {
        sp_route_t route;
        int n = sp_link_recv(w, msg, sizeof msg, &route, T_WAIT_MS);
        cr_assert_gt(n, 0, "%s: message %u of %u: %s", param->name, taken + 1, sent,
                     sp_strerror(n));
        sp_msg_hdr_t h;
        cr_assert_eq(sp_wire_check(msg, (size_t)n, &h), 0);
        cr_assert_eq(h.batch, taken + 1, "%s: message %u came in place of %u", param->name, h.batch,
                     taken + 1);
        taken++;
        cr_assert_eq(sp_link_release(w, &route), 0);
        if (!room) {
            size_t len = s_orders(msg, T_PRODUCER_A, 1, sent + 1);
            rc = sp_link_send(p, msg, len, NULL, 0);
            cr_assert(rc == 0 || rc == SP_E_TIMEOUT, "%s: %d (%s)", param->name, rc,
                      sp_strerror(rc));
            room = rc == 0;
            if (room) {
                cr_log_info("%s: full after %u messages, room again after %u taken", param->name,
                            sent, taken);
            }
        }
    }
    cr_expect(room, "%s: the producer never got room back", param->name);

    /* empty again */
    sp_route_t route;
    rc = sp_link_recv(w, msg, sizeof msg, &route, T_TIMEOUT_MS);
    cr_expect_eq(rc, SP_E_TIMEOUT, "%s: %d (%s)", param->name, rc, sp_strerror(rc));
    s_expect_depth(w, 0, "an empty path");
    s_finish();
}

/* nats: two producers each told of the same room overfill the stream,
 * which refuses what does not fit after the sends returned.  Those go out
 * again (from the producers' receives), so every message a send took
 * reaches the worker exactly once. */
Test(link, nats_publishes_the_stream_refused_go_out_again, .timeout = 120)
{
    enum { S_MAX = 4 * T_DEPTH };
    s_path_bare(&s_path, "nats", "again");
    sp_link_t *p[2] = {s_producer(T_PRODUCER_A), s_producer(T_PRODUCER_B)};
    uint32_t ids[2] = {T_PRODUCER_A, T_PRODUCER_B};
    uint8_t msg[T_MSGSIZE];
    uint32_t sent[2] = {0, 0};
    bool full[2] = {false, false};
    while (!(full[0] && full[1])) { /* turn about, never waiting */
        for (unsigned k = 0; k < 2; k++) {
            if (full[k]) {
                continue;
            }
            int rc = sp_link_send(p[k], msg, s_orders(msg, ids[k], 1, sent[k] + 1), NULL, 0);
            cr_assert(rc == 0 || rc == SP_E_TIMEOUT, "%s", sp_strerror(rc));
            sent[k] += rc == 0 ? 1u : 0u;
            full[k] = rc != 0 || sent[k] == S_MAX;
        }
    }
    cr_assert_gt(sent[0] + sent[1], T_DEPTH,
                 "both producers were told of the room: more sent (%u + %u) than the stream holds",
                 sent[0], sent[1]);

    sp_link_t *w = s_worker(T_WORKER_1);
    bool seen[2][S_MAX] = {{false}};
    for (uint32_t taken = 0; taken < sent[0] + sent[1]; taken++) {
        sp_route_t route;
        int n = SP_E_TIMEOUT;
        uint64_t until = sp_now_ns() + (uint64_t)T_WAIT_MS * SP_NS_PER_MS;
        while (n == SP_E_TIMEOUT && sp_now_ns() < until) {
            n = sp_link_recv(w, msg, sizeof msg, &route, T_TIMEOUT_MS);
            for (unsigned k = 0; k < 2; k++) { /* where refused ones go out again */
                uint8_t none[T_MSGSIZE];
                int rc = sp_link_recv(p[k], none, sizeof none, NULL, 0);
                cr_assert_eq(rc, SP_E_TIMEOUT, "a result nobody sent: %s", sp_strerror(rc));
            }
        }
        cr_assert_gt(n, 0, "message %u of %u: %s", taken + 1, sent[0] + sent[1], sp_strerror(n));
        sp_msg_hdr_t h;
        cr_assert_eq(sp_wire_check(msg, (size_t)n, &h), 0);
        unsigned k = h.sender == T_PRODUCER_A ? 0 : 1;
        cr_assert(h.batch >= 1 && h.batch <= sent[k], "producer %u's message %u was never sent",
                  h.sender, h.batch);
        cr_assert_not(seen[k][h.batch - 1], "producer %u's message %u came twice", h.sender,
                      h.batch);
        seen[k][h.batch - 1] = true;
        cr_assert_eq(sp_link_release(w, &route), 0);
    }
    sp_route_t route;
    int rc = sp_link_recv(w, msg, sizeof msg, &route, T_TIMEOUT_MS);
    cr_expect_eq(rc, SP_E_TIMEOUT, "one more than was sent: %d (%s)", rc, sp_strerror(rc));
    s_expect_depth(w, 0, "every message taken");
    s_finish();
}

/* ------------------------------------------------------------------ */
/* Close and reopen                                                    */

/* A producer sends its message msg_no and, when a worker has not taken it
 * in T_RESEND_MS, sends it again (as PROTOCOL section 7 says a producer
 * must) until worker w answers it.  Returns the copies sent. */
static unsigned s_send_until_answered(sp_link_t *p, uint32_t producer, sp_link_t *w,
                                      uint32_t worker, uint32_t msg_no)
{
    uint8_t msg[T_MSGSIZE];
    size_t len = s_orders(msg, producer, 1, msg_no);
    for (unsigned copies = 1; copies <= T_RESENDS; copies++) {
        cr_assert_eq(sp_link_send(p, msg, len, NULL, T_WAIT_MS), 0);
        sp_msg_hdr_t h;
        int rc = s_serve(w, worker, T_RESEND_MS, &h);
        if (rc == 0) {
            return copies;
        }
        cr_assert_eq(rc, SP_E_TIMEOUT, "%s: %s", s_path.transport->name, sp_strerror(rc));
        sp_order_t o;
        sp_wire_get_order(sp_wire_crec(msg, SP_MSG_ORDERS, 0), &o);
        o.flags |= SP_ORDER_F_RESENT;
        sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, 0), &o);
    }
    cr_assert_fail("%s: message %u of producer %u never reached worker %u", s_path.transport->name,
                   msg_no, producer, worker);
    return 0;
}

LINK_TEST(a_closed_end_can_be_replaced, .timeout = 60)
{
    s_path_bare(&s_path, param->name, "reopen");
    sp_link_t *p = s_producer(T_PRODUCER_A);
    sp_link_t *w = s_worker(T_WORKER_1);
    uint8_t msg[T_MSGSIZE];
    uint8_t out[T_MSGSIZE];
    sp_msg_hdr_t h;
    cr_assert_eq(sp_link_send(p, msg, s_orders(msg, T_PRODUCER_A, 1, 1), NULL, T_WAIT_MS), 0);
    cr_assert_eq(s_serve(w, T_WORKER_1, T_WAIT_MS, &h), 0);
    s_expect_results(p, T_PRODUCER_A, 1, 1);

    /* a producer that closes before its answer: the answer goes nowhere,
     * and the worker does not wait for it */
    cr_assert_eq(sp_link_send(p, msg, s_orders(msg, T_PRODUCER_A, 1, 2), NULL, T_WAIT_MS), 0);
    sp_route_t route;
    int n = sp_link_recv(w, msg, sizeof msg, &route, T_WAIT_MS);
    cr_assert_gt(n, 0, "%s: %s", param->name, sp_strerror(n));
    s_close(p);
    uint64_t t0 = sp_now_ns();
    int rc = sp_link_send(w, out, s_answer(msg, out, T_WORKER_1), &route, T_TIMEOUT_MS);
    cr_expect(rc == 0 || rc == -ENOENT, "%s: answer to a closed producer: %d (%s)", param->name, rc,
              sp_strerror(rc));
    cr_expect_lt(s_ms_since(t0), T_TIMEOUT_MS + T_WAIT_MS);

    /* a new producer (a fresh id, PROTOCOL section 7) is served, and gets
     * nothing of the old one's */
    sp_link_t *p2 = s_producer(T_FRESH_ID);
    cr_assert_eq(sp_link_send(p2, msg, s_orders(msg, T_FRESH_ID, 2, 3), NULL, T_WAIT_MS), 0);
    cr_assert_eq(s_serve(w, T_WORKER_1, T_WAIT_MS, &h), 0);
    s_expect_results(p2, T_FRESH_ID, 3, 2);
    s_expect_nothing(p2, T_FRESH_ID);

    /* a worker that closes and a new one in its place: orders reach the new
     * one (zmq: the broker's router learns of a worker gone only from the
     * broker's own children, so a copy may go to the closed one first and
     * be resent) */
    s_close(w);
    sp_link_t *w2 = s_worker(T_WORKER_2);
    unsigned copies = s_send_until_answered(p2, T_FRESH_ID, w2, T_WORKER_2, 4);
    cr_log_info("%s: a new worker answered after %u cop%s", param->name, copies,
                copies == 1 ? "y" : "ies");
    s_expect_results(p2, T_FRESH_ID, 4, 1);
    s_expect_nothing(p2, T_FRESH_ID);
    s_finish();
}

/* ------------------------------------------------------------------ */
/* A limit refused with a clear error                                  */

LINK_TEST(a_link_for_messages_larger_than_the_path_is_refused, .timeout = 60)
{
    s_path_bare(&s_path, param->name, "limit");
    char size[32];
    snprintf(size, sizeof size, "%zu bytes", s_path.msgsize);
    const sp_link_role_t roles[] = {SP_LINK_PRODUCER, SP_LINK_WORKER};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        char why[T_WHY_CAP] = "";
        sp_link_t *l = (sp_link_t *)&l;
        int rc = s_open(roles[i], T_PRODUCER_A, s_path.msgsize + 1, &l, why, sizeof why);
        cr_expect_eq(rc, -EMSGSIZE, "%s: role %d: %d (%s)", param->name, (int)roles[i], rc,
                     sp_strerror(rc));
        cr_expect_null(l);
        cr_expect_not_null(strstr(why, size), "%s: the reason does not name the %s: '%s'",
                           param->name, size, why);
    }

    /* the refusal held nothing: the same producer id opens at the limit */
    sp_link_t **slot = s_slot();
    char why[T_WHY_CAP] = "";
    int rc = s_open(SP_LINK_PRODUCER, T_PRODUCER_A, s_path.msgsize, slot, why, sizeof why);
    cr_expect_eq(rc, 0, "%s: %s: %s", param->name, sp_strerror(rc), why);
    s_finish();
}

/* ------------------------------------------------------------------ */
/* A peer killed mid-message                                           */

/* A producer process: sends one orders message, then waits to be killed. */
static int s_doomed_producer(int unused)
{
    (void)unused;
    sp_link_t *p = NULL;
    if (s_open(SP_LINK_PRODUCER, T_PRODUCER_B, T_MSGSIZE, &p, NULL, 0) < 0) {
        return 10;
    }
    uint8_t msg[T_MSGSIZE];
    if (sp_link_send(p, msg, s_orders(msg, T_PRODUCER_B, 2, 1), NULL, T_WAIT_MS) < 0) {
        return 11;
    }
    for (;;) {
        pause();
    }
}

LINK_TEST(a_producer_killed_mid_message_costs_the_worker_no_wait, .timeout = 60)
{
    s_path_bare(&s_path, param->name, "deadprod");
    pid_t child = s_fork(s_doomed_producer, 0);
    sp_link_t *w = s_worker(T_WORKER_1);
    uint8_t msg[T_MSGSIZE];
    uint8_t out[T_MSGSIZE];
    sp_route_t route;
    int n = sp_link_recv(w, msg, sizeof msg, &route, T_WAIT_MS);
    cr_assert_gt(n, 0, "%s: the producer's message never came: %s", param->name, sp_strerror(n));
    cr_expect_eq(route.producer_id, T_PRODUCER_B);

    /* killed while its message is at the worker */
    s_kill(child);
    uint64_t t0 = sp_now_ns();
    int rc = sp_link_send(w, out, s_answer(msg, out, T_WORKER_1), &route, T_TIMEOUT_MS);
    cr_expect(rc == 0 || rc == -ENOENT, "%s: answer to a dead producer: %d (%s)", param->name, rc,
              sp_strerror(rc));
    cr_expect_lt(s_ms_since(t0), T_TIMEOUT_MS + T_WAIT_MS);

    /* the others are served as before, and nobody gets the dead one's */
    sp_link_t *p = s_producer(T_PRODUCER_A);
    sp_msg_hdr_t h;
    cr_assert_eq(sp_link_send(p, msg, s_orders(msg, T_PRODUCER_A, 3, 1), NULL, T_WAIT_MS), 0);
    cr_assert_eq(s_serve(w, T_WORKER_1, T_WAIT_MS, &h), 0);
    s_expect_results(p, T_PRODUCER_A, 1, 3);
    s_expect_nothing(p, T_PRODUCER_A);
    s_finish();
}

/* A worker process: takes one orders message, says so on `fd`, and waits
 * to be killed without answering. */
static int s_doomed_worker(int fd)
{
    sp_link_t *w = NULL;
    if (s_open(SP_LINK_WORKER, T_WORKER_1, T_MSGSIZE, &w, NULL, 0) < 0) {
        return 10;
    }
    uint8_t msg[T_MSGSIZE];
    sp_route_t route;
    if (sp_link_recv(w, msg, sizeof msg, &route, T_WAIT_MS) < 0) {
        return 11;
    }
    if (write(fd, "!", 1) != 1) {
        return 12;
    }
    for (;;) {
        pause();
    }
}

LINK_TEST(a_worker_killed_mid_message_leaves_the_order_to_a_resend, .timeout = 60)
{
    s_path_bare(&s_path, param->name, "deadwork");
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t child = s_fork(s_doomed_worker, fds[1]);
    close(fds[1]);
    sp_link_t *p = s_producer(T_PRODUCER_A);
    uint8_t msg[T_MSGSIZE];
    cr_assert_eq(sp_link_send(p, msg, s_orders(msg, T_PRODUCER_A, 1, 1), NULL, T_WAIT_MS), 0);
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    int ready = poll(&pfd, 1, T_WAIT_MS);
    char c = 0;
    cr_assert(ready == 1 && read(fds[0], &c, 1) == 1, "%s: the worker never took the message",
              param->name);
    close(fds[0]);

    /* killed holding it: no answer comes, and the producer does not hang */
    s_kill(child);
    uint64_t t0 = sp_now_ns();
    int rc = sp_link_recv(p, msg, sizeof msg, NULL, T_TIMEOUT_MS);
    s_expect_timed_out(rc, t0, T_TIMEOUT_MS, "waiting for a dead worker's answer");

    /* resent, it reaches another worker, and is answered */
    sp_link_t *w = s_worker(T_WORKER_2);
    unsigned copies = s_send_until_answered(p, T_PRODUCER_A, w, T_WORKER_2, 1);
    cr_log_info("%s: answered after %u cop%s", param->name, copies, copies == 1 ? "y" : "ies");
    s_expect_results(p, T_PRODUCER_A, 1, 1);
    s_expect_nothing(p, T_PRODUCER_A);
    s_finish();
}

Test(link, link_close_is_null_safe)
{
    sp_link_t *link = NULL;
    sp_link_close(&link);
    sp_link_close(NULL);
    cr_expect_null(link);
}

/* The zmq worker's one peer is the broker's router, which sends a producer's
 * routing id and then one message.  Stood in for by a bare ROUTER here: what
 * breaks that framing (one frame alone, more frames than two), a message
 * longer than the buffer and a reply without a routing id are refused, and
 * the link still works afterwards. */
Test(link, zmq_worker_refuses_what_is_not_an_id_and_one_message)
{
    char ep[128], why[256] = "";
    snprintf(ep, sizeof ep, "ipc:///tmp/sp-link-frames-%ld", (long)getpid());
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    cr_assert_not_null(router);
    cr_assert_geq(zsock_bind(router, "%s", ep), 0);
    zsock_set_rcvtimeo(router, SP_TEST_WAIT_MS);
    sp_link_cfg_t cfg = {.role = SP_LINK_WORKER,
                         .transport = &sp_transport_zmq,
                         .endpoint = ep,
                         .id = 1,
                         .max_msg = T_MSGSIZE,
                         .reply_msg = T_MSGSIZE};
    sp_link_t *w = NULL;
    cr_assert_eq(sp_link_open(&w, &cfg, why, sizeof why), 0, "%s", why);
    /* the worker's credit names it */
    zmsg_t *credit = zmsg_recv(router);
    cr_assert_not_null(credit, "no credit from the worker");
    zframe_t *rid = zmsg_pop(credit);
    zmsg_destroy(&credit);
    uint8_t msg[T_MSGSIZE], buf[T_MSGSIZE];
    sp_wire_put_hdr(msg, SP_MSG_ORDERS, 0, 7, 1);
    size_t len = sp_wire_msg_size(SP_MSG_ORDERS, 0);
    sp_route_t route;

    /* one frame alone */
    zframe_send(&rid, router, ZFRAME_MORE | ZFRAME_REUSE);
    zsock_send(router, "b", msg, len);
    cr_expect_eq(sp_link_recv(w, buf, sizeof buf, &route, SP_TEST_WAIT_MS), -EPROTO,
                 "a message without a producer's id");
    /* three frames: an id and two messages */
    zframe_send(&rid, router, ZFRAME_MORE | ZFRAME_REUSE);
    zsock_send(router, "sbb", "p7", msg, len, msg, len);
    cr_expect_eq(sp_link_recv(w, buf, sizeof buf, &route, SP_TEST_WAIT_MS), -EPROTO,
                 "two messages under one id");
    /* a message longer than the buffer */
    zframe_send(&rid, router, ZFRAME_MORE | ZFRAME_REUSE);
    zsock_send(router, "sb", "p7", msg, len);
    cr_expect_eq(sp_link_recv(w, buf, len - 1, &route, SP_TEST_WAIT_MS), -EMSGSIZE);
    /* and a well-framed one: its sender is the header's */
    zframe_send(&rid, router, ZFRAME_MORE | ZFRAME_REUSE);
    zsock_send(router, "sb", "p7", msg, len);
    cr_expect_eq(sp_link_recv(w, buf, sizeof buf, &route, SP_TEST_WAIT_MS), (int)len);
    cr_expect_eq(route.producer_id, 7);
    cr_expect_eq(route.id_len, 2);
    /* a reply must name its producer's connection */
    sp_route_t none = {.producer_id = 7};
    cr_expect_eq(sp_link_send(w, msg, len, &none, SP_TEST_WAIT_MS), -EINVAL);
    cr_expect_eq(sp_link_send(w, msg, len, &route, SP_TEST_WAIT_MS), 0);
    zframe_destroy(&rid);
    sp_link_close(&w);
    zsock_destroy(&router);
    unlink(ep + strlen("ipc://")); /* libzmq may not have removed it yet */
}
