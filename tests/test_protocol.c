/*
 * test_protocol — the wire protocol of docs/PROTOCOL.md, proved from outside.
 *
 * A real broker runs over ZeroMQ (ipc://).  The first two tests hand its
 * orders, events and snapshot endpoints (as RUN_DIR/contact names them) to
 * tests/protocol_client.py, a client written from the document alone in
 * another language (Python, pyzmq, struct), and then check the table agrees
 * with what that client was told: once as a client that says HELLO and takes
 * the WELCOME's producer id, once with --no-hello, a client of its own id as
 * written before the HELLO, which the broker still serves.  The third test
 * throws garbage and wrongly sized messages at the orders endpoint from C and
 * checks that nothing but the one valid order touched the table and that the
 * broker survives and stops cleanly.
 */
#include "sp_zlink.h"
#include "sp_testutil.h"

#include "sp_contact.h"
#include "sp_instance.h"
#include "sp_table.h"
#include "sp_wire.h"

#include "sp_rand.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLIENT_TIMEOUT_MS 30000
#define REPLY_TIMEOUT_MS  5000
#define QUIET_MS          300  /* how long "no further reply" is watched for */
#define WORKERS_UP_MS     5000 /* workers write their slot after READY */
#define CLIENT_COUNT_MAX  1000 /* purchases the Python client places at most */
#define GARBAGE_FRAMES    50
#define GARBAGE_MAX       300

/* The broker of the running test, stopped by s_cleanup if an assertion ends
 * the test early (so no instance outlives a failed test). */
static pid_t s_broker_pid;

typedef struct {
    char inst[64];
    sp_table_t *table;
    sp_table_hdr_t *hdr;
    char ep_orders[SP_ENDPOINT_MAX];
    char ep_events[SP_ENDPOINT_MAX];
    char ep_snapshot[SP_ENDPOINT_MAX];
} s_instance_t;

static void s_cleanup(void)
{
    if (s_broker_pid > 0) {
        spt_stop(s_broker_pid);
        s_broker_pid = 0;
    }
}

/* Starts a zmq broker with 2 workers on data/products.csv and reads its
 * endpoints from the table; RUN_DIR/contact, where a local client finds
 * them (docs/PROTOCOL.md section 11), must name the same. */
static void s_start(s_instance_t *in, const char *tag)
{
    memset(in, 0, sizeof *in);
    spt_instance(in->inst, sizeof in->inst, tag);
    char catalogue[512];
    snprintf(catalogue, sizeof catalogue, "%s", spt_data("products.csv"));
    const char *extra[] = {"--catalogue", catalogue, "--transport", "zmq", "--workers", "2", NULL};
    s_broker_pid = spt_broker_start(in->inst, extra);
    cr_assert(s_broker_pid > 0, "broker %s did not become ready", in->inst);

    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, in->inst, NULL), 0);
    cr_assert_eq(sp_table_open(&in->table, names.table, false), 0, "cannot open %s", names.table);
    in->hdr = sp_table_hdr(in->table);
    cr_assert_eq(in->hdr->transport, sp_transport_zmq.id);
    snprintf(in->ep_orders, sizeof in->ep_orders, "%s", in->hdr->ep_orders);
    snprintf(in->ep_events, sizeof in->ep_events, "%s", in->hdr->ep_events);
    snprintf(in->ep_snapshot, sizeof in->ep_snapshot, "%s", in->hdr->ep_snapshot);

    /* the endpoints are the ones docs/PROTOCOL.md derives from the run dir */
    char want[SP_ENDPOINT_MAX];
    cr_assert_eq(sp_names_ipc_endpoint(&names, "orders", want, sizeof want), 0);
    cr_expect_str_eq(in->ep_orders, want);
    cr_assert_eq(sp_names_ipc_endpoint(&names, "events", want, sizeof want), 0);
    cr_expect_str_eq(in->ep_events, want);
    cr_assert_eq(sp_names_ipc_endpoint(&names, "snapshot", want, sizeof want), 0);
    cr_expect_str_eq(in->ep_snapshot, want);

    sp_contact_t c;
    char why[256] = "";
    cr_assert_eq(sp_contact_read(&names, &c, why, sizeof why), 0, "contact file: %s", why);
    cr_expect_str_eq(c.transport, "zmq");
    cr_expect_str_eq(c.orders, in->ep_orders);
    cr_expect_str_eq(c.events, in->ep_events);
    cr_expect_str_eq(c.snapshot, in->ep_snapshot);
    cr_expect_str_eq(c.server_key, "", "no CURVE, no server_key line");
}

/* Stops the broker (SIGINT), expects exit status 0 and nothing left behind. */
static void s_stop(s_instance_t *in)
{
    sp_table_close(&in->table);
    in->hdr = NULL;
    pid_t pid = s_broker_pid;
    s_broker_pid = 0;
    int status = spt_stop(pid);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "broker did not exit cleanly (status 0x%x)", (unsigned)status);
    cr_expect_not(spt_leftovers(in->inst), "instance %s left IPC objects behind", in->inst);
}

static uint32_t s_stock(s_instance_t *in, uint32_t id, uint32_t *version)
{
    sp_product_t p;
    cr_assert_eq(sp_table_read(in->table, id, &p, version), 0, "product %u", id);
    return p.stock;
}

/* The present product with the least stock (at least 1). */
static uint32_t s_scarcest(s_instance_t *in)
{
    uint32_t best = 0, best_stock = UINT32_MAX;
    for (uint32_t id = 1; id <= sp_table_capacity(in->table); id++) {
        sp_product_t p;
        if (sp_table_read(in->table, id, &p, NULL) == 0 && p.stock >= 1 && p.stock < best_stock) {
            best = id;
            best_stock = p.stock;
        }
    }
    cr_assert(best != 0, "the catalogue has no product in stock");
    return best;
}

static void s_worker_totals(s_instance_t *in, uint64_t *orders /* [SP_STATUS_COUNT] */,
                            uint64_t *invalid_msgs)
{
    memset(orders, 0, sizeof(uint64_t) * SP_STATUS_COUNT);
    *invalid_msgs = 0;
    for (int w = 0; w < SP_WORKERS_MAX; w++) {
        for (int s = 0; s < SP_STATUS_COUNT; s++) {
            orders[s] += atomic_load(&in->hdr->worker[w].orders[s]);
        }
        *invalid_msgs += atomic_load(&in->hdr->worker[w].invalid_msgs);
    }
}

/* The last non-empty line of `out` (modified in place). */
static const char *s_last_line(char *out)
{
    size_t len = strlen(out);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r')) {
        out[--len] = '\0';
    }
    const char *nl = strrchr(out, '\n');
    return nl != NULL ? nl + 1 : out;
}

/* Runs tests/protocol_client.py against a fresh broker, saying HELLO or
 * not (--no-hello), and checks the table agrees with what it was told. */
static void s_python_client(const char *tag, bool hello)
{
    s_instance_t in;
    s_start(&in, tag);
    uint32_t ids_before = atomic_load(&in.hdr->next_producer_id);

    uint32_t product = s_scarcest(&in);
    uint32_t before = s_stock(&in, product, NULL);
    /* a few more than there is, so both accepted and out_of_stock show up */
    uint32_t count = before < CLIENT_COUNT_MAX - 3 ? before + 3 : CLIENT_COUNT_MAX;
    uint32_t want_accepted = before < count ? before : count;

    char script[1024], product_s[16], count_s[16];
    spt_source(script, sizeof script, "tests/protocol_client.py");
    snprintf(product_s, sizeof product_s, "%u", product);
    snprintf(count_s, sizeof count_s, "%u", count);
    const char *argv[] = {spt_python(), script,       "--orders",     in.ep_orders, "--events",
                          in.ep_events, "--snapshot", in.ep_snapshot, "--product",  product_s,
                          "--count",    count_s,      NULL,           NULL};
    if (!hello) {
        argv[12] = "--no-hello"; /* the first NULL: one more argument */
    }
    char *out = NULL;
    int rc = spt_run(argv, CLIENT_TIMEOUT_MS, &out);
    cr_expect_eq(rc, 0, "%s %s exited %d (python3-zmq installed? SP_PYTHON=%s), output:\n%s",
                 argv[0], script, rc, spt_python(), out);

    unsigned sent = 0, accepted = 0, oos = 0, invalid = 0, events = 0;
    int used = 0;
    const char *line = s_last_line(out);
    int n =
        sscanf(line, "protocol-client: sent %u accepted %u out_of_stock %u invalid %u events %u%n",
               &sent, &accepted, &oos, &invalid, &events, &used);
    cr_assert(n == 5 && line[used] == '\0', "unexpected final line '%s', output:\n%s", line, out);
    cr_expect_eq(sent, count);
    cr_expect_eq(accepted, want_accepted, "accepted %u of %u with stock %u", accepted, count,
                 before);
    cr_expect_eq(oos, count - want_accepted);
    cr_expect_eq(invalid, 0);
    cr_expect_eq(events, accepted, "every accepted order has its stock event");

    /* the table agrees with what the client was told */
    cr_expect_eq(s_stock(&in, product, NULL), before - accepted, "stock of product %u", product);
    uint64_t orders[SP_STATUS_COUNT], dead;
    s_worker_totals(&in, orders, &dead);
    cr_expect_eq(orders[SP_STATUS_ACCEPTED], accepted);
    cr_expect_eq(orders[SP_STATUS_OUT_OF_STOCK], oos);
    cr_expect_eq(orders[SP_STATUS_INVALID], 1, "only the quantity-0 probe was invalid");
    /* its HELLO asked for an id once (its probes ask for a reserved one and
     * its own): one id from the table's counter; a client of its own id
     * takes none */
    cr_expect_eq(atomic_load(&in.hdr->next_producer_id), ids_before + (hello ? 1u : 0u),
                 "producer ids handed out");
    free(out);

    s_stop(&in);
}

Test(protocol, python_client_says_hello_places_orders_and_follows_events, .timeout = 60,
     .fini = s_cleanup)
{
    s_python_client("proto", true);
}

Test(protocol, python_client_without_hello_is_still_served, .timeout = 60, .fini = s_cleanup)
{
    s_python_client("protonohello", false);
}

static void s_send(void *raw, const void *buf, size_t len)
{
    cr_assert(zmq_send(raw, buf, len, 0) == (int)len, "zmq_send of %zu bytes: %s", len,
              zmq_strerror(zmq_errno()));
}

/* One valid purchase record of quantity 1. */
static void s_order(uint8_t *p, uint32_t producer, uint64_t seq, uint32_t product)
{
    sp_order_t o = {.type = SP_ORDER_PURCHASE,
                    .producer_id = producer,
                    .seq = seq,
                    .product_id = product,
                    .quantity = 1,
                    .sched_ns = 1};
    sp_wire_put_order(p, &o);
}

Test(protocol, garbage_over_zmq_changes_nothing, .timeout = 60, .fini = s_cleanup)
{
    s_instance_t in;
    s_start(&in, "protogarbage");

    /* workers write their slots just after READY: wait for both */
    for (int waited = 0; waited < WORKERS_UP_MS; waited += 10) {
        if (atomic_load(&in.hdr->worker[0].pid) > 0 && atomic_load(&in.hdr->worker[1].pid) > 0) {
            break;
        }
        usleep(10 * 1000);
    }
    int32_t worker_pid[2] = {atomic_load(&in.hdr->worker[0].pid),
                             atomic_load(&in.hdr->worker[1].pid)};
    cr_assert(worker_pid[0] > 0 && worker_pid[1] > 0, "workers did not start");

    uint32_t cap = sp_table_capacity(in.table);
    uint64_t *sv_before = calloc(cap + 1, sizeof *sv_before);
    cr_assert_not_null(sv_before);
    for (uint32_t id = 1; id <= cap; id++) {
        const sp_row_t *r = sp_table_row(in.table, id);
        sv_before[id] = r != NULL ? atomic_load(&r->sv) : 0;
    }
    uint32_t product = s_scarcest(&in);
    uint32_t stock = SP_SV_STOCK(sv_before[product]);
    uint32_t version = SP_SV_VERSION(sv_before[product]);

    zsys_handler_set(NULL); /* SIGINT stays the default in this process */
    zsock_t *dealer = zsock_new_dealer(in.ep_orders);
    cr_assert_not_null(dealer, "cannot connect a DEALER to %s", in.ep_orders);
    void *raw = zsock_resolve(dealer);

    uint64_t rng = ((uint64_t)getpid() << 20) ^ 0x9E3779B97F4A7C15ull;
    uint32_t producer = 0x80000000u | (uint32_t)(sp_rand_next(&rng) & 0x7fffffffu);

    /* 50 frames of noise, 0..300 bytes; none may carry the magic */
    uint8_t buf[SP_WIRE_HDR_SIZE + 4 * SP_WIRE_ORDER_SIZE];
    uint8_t noise[GARBAGE_MAX];
    for (int i = 0; i < GARBAGE_FRAMES; i++) {
        size_t len = (size_t)(sp_rand_next(&rng) % (GARBAGE_MAX + 1));
        for (size_t k = 0; k < len; k++) {
            noise[k] = (uint8_t)sp_rand_next(&rng);
        }
        if (len >= 4 && memcmp(noise, "SPW1", 4) == 0) {
            noise[0] ^= 0xff;
        }
        s_send(raw, noise, len);
    }

    /* 5 messages whose header is valid but whose length is not; the ones that
     * hold a complete, valid order record must not apply it either */
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, 1, producer, 1); /* header only */
    s_send(raw, buf, SP_WIRE_HDR_SIZE);
    s_order(buf + SP_WIRE_HDR_SIZE, producer, 101, product); /* one byte short */
    s_send(raw, buf, SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE - 1);
    buf[SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE] = 0; /* one byte long */
    s_send(raw, buf, SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE + 1);
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, 2, producer, 2); /* says 2, holds 1 */
    s_send(raw, buf, SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE);
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, 0, producer, 3); /* says 0, holds 1 */
    s_send(raw, buf, SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE);

    /* and one valid message: one purchase */
    sp_wire_put_hdr(buf, SP_MSG_ORDERS, 1, producer, 4);
    s_order(buf + SP_WIRE_HDR_SIZE, producer, 1, product);
    s_send(raw, buf, SP_WIRE_HDR_SIZE + SP_WIRE_ORDER_SIZE);

    uint8_t reply[1024];
    zmq_pollitem_t item = {.socket = raw, .events = ZMQ_POLLIN};
    cr_assert_eq(zmq_poll(&item, 1, REPLY_TIMEOUT_MS), 1, "no reply to the valid order");
    int n = zmq_recv(raw, reply, sizeof reply, 0);
    sp_msg_hdr_t h;
    cr_assert(n > 0 && sp_wire_check(reply, (size_t)n, &h) == 0, "reply is not a valid message");
    cr_assert_eq(h.kind, SP_MSG_RESULTS);
    cr_assert_eq(h.count, 1);
    cr_expect(h.sender >= 1 && h.sender <= 2, "results come from worker 1 or 2, not %u", h.sender);
    sp_result_t res;
    sp_wire_get_result(sp_wire_crec(reply, SP_MSG_RESULTS, 0), &res);
    cr_expect_eq(res.producer_id, producer);
    cr_expect_eq(res.seq, 1);
    cr_expect_eq(res.status, SP_STATUS_ACCEPTED, "status %s", sp_wire_status_name(res.status));
    cr_expect_eq(res.type, SP_ORDER_PURCHASE);
    cr_expect_eq(res.product_id, product);
    cr_expect_eq(res.stock_after, stock - 1);
    cr_expect_eq(res.worker_id, h.sender);
    cr_expect_eq(res.sched_ns, 1);
    cr_expect(res.applied_ns > 0);
    cr_expect_eq(zmq_poll(&item, 1, QUIET_MS), 0, "a second reply came (to garbage?)");
    zsock_destroy(&dealer);

    /* the table: that one purchase and nothing else */
    for (uint32_t id = 1; id <= cap; id++) {
        const sp_row_t *r = sp_table_row(in.table, id);
        uint64_t sv = r != NULL ? atomic_load(&r->sv) : 0;
        if (id == product) {
            cr_expect_eq(SP_SV_STOCK(sv), stock - 1, "stock of product %u", id);
            cr_expect_eq(SP_SV_VERSION(sv), version + 1, "version of product %u", id);
        } else {
            cr_expect_eq(sv, sv_before[id], "product %u changed", id);
        }
    }
    free(sv_before);
    uint64_t orders[SP_STATUS_COUNT], dead;
    s_worker_totals(&in, orders, &dead);
    cr_expect_eq(orders[SP_STATUS_ACCEPTED], 1);
    for (int s = 1; s < SP_STATUS_COUNT; s++) {
        cr_expect_eq(orders[s], 0, "%llu results with status %s", (unsigned long long)orders[s],
                     sp_wire_status_name((unsigned)s));
    }
    /* the router dead-letters all of it before any worker sees it */
    cr_expect_eq(dead, 0, "workers dead-lettered %llu messages", (unsigned long long)dead);

    /* nobody crashed or was restarted */
    cr_expect_eq(kill(s_broker_pid, 0), 0, "the broker died");
    cr_expect_eq(atomic_load(&in.hdr->worker[0].pid), worker_pid[0], "worker 1 restarted");
    cr_expect_eq(atomic_load(&in.hdr->worker[1].pid), worker_pid[1], "worker 2 restarted");

    s_stop(&in);
}
