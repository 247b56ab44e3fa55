/*
 * test_recover — restarts: a broker re-attaches to a dead broker's table,
 * rebuilds a lost table from base.csv and the journal (a torn tail is
 * dropped, a corrupt middle refuses to start saying where; journaled orders
 * resent afterwards are answered as duplicates), or from a snapshot and the
 * journal after it (holds live at the crash are restored and released), and
 * refuses a segment that is not a table of ours without touching it.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_client.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_grow.h"
#include "sp_instance.h"
#include "sp_journal.h"
#include "sp_ledger.h"
#include "sp_nats.h"
#include "sp_recover.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"
#include "sp_wire.h"

#define R_PRODUCTS 8
#define R_STOCK    500
#define R_RESEND   32 /* journaled orders resent per producer after a rebuild */
#define R_RUN_MS   60000
#define R_HOLD_QTY 5 /* units of each hold the crash leaves live */

static char s_inst[64], s_cat[128], s_state[128], s_log[160];
/* units restocked by one-shot orders, which no ledger records */
static uint64_t s_extra_restocked[R_PRODUCTS + 1];

static void s_setup(const char *tag)
{
    spt_instance(s_inst, sizeof s_inst, tag);
    spt_catalogue(s_cat, sizeof s_cat, R_PRODUCTS, R_STOCK);
    snprintf(s_state, sizeof s_state, "/tmp/sp-recover-%s", s_inst);
    mkdir(s_state, 0700);
}

/* Kills the workers of our instance with SIGKILL and waits (bounded) until
 * they are gone; false if they are not. */
static bool s_kill_workers(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "pkill -9 -f '[c]onsumer --instance %s ' ; true", s_inst);
    if (system(cmd) != 0) {
        return false;
    }
    for (int i = 0; i < 200; i++) {
        snprintf(cmd, sizeof cmd, "pgrep -f '[c]onsumer --instance %s ' >/dev/null", s_inst);
        if (system(cmd) != 0) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

/* The in-process replays' journal directory and scratch table. */
static char s_jdir[256], s_tname[128];
static sp_table_t *s_rtable;

static void s_replay_cleanup(void)
{
    sp_table_close(&s_rtable);
    if (s_tname[0] != '\0') {
        sp_table_unlink(s_tname);
    }
    spt_rmtree(s_jdir);
}

/* The broker this test started last (0: none). */
static pid_t s_broker_pid;

static void s_teardown(void)
{
    /* a test that failed half way may leave its broker running (or
     * stopped): kill it if it is still our unreaped child, and its workers */
    if (s_broker_pid > 0 && waitpid(s_broker_pid, NULL, WNOHANG) == 0) {
        kill(s_broker_pid, SIGKILL);
        waitpid(s_broker_pid, NULL, 0);
        s_kill_workers();
    }
    const char *clean[] = {spt_bin("broker"), "--instance", s_inst, "--clean", NULL};
    char *out = NULL;
    spt_run(clean, 10000, &out);
    free(out);
    spt_rmtree(s_state);
    unlink(s_cat);
    s_replay_cleanup();
}

/* Starts the broker on our state dir (no --fresh: this is about resuming);
 * returns its pid once ready, or -1 (then *log holds why). */
static const char *s_snapshot_every = "60s";
static const char *s_holds = "0";
static const char *s_transport = "mq";

/* With s_transport "nats": the servers the orders go through (they outlive
 * the broker's kill, as a cluster does). */
static spt_nats_t s_nats;

static pid_t s_broker(int n)
{
    snprintf(s_log, sizeof s_log, "%s/broker-%d.log", s_state, n);
    bool nats = strcmp(s_transport, "nats") == 0;
    const char *argv[] = {spt_bin("broker"),
                          "--instance",
                          s_inst,
                          "--catalogue",
                          s_cat,
                          "--state-dir",
                          s_state,
                          "--workers",
                          "2",
                          "--snapshot-every",
                          s_snapshot_every,
                          nats ? "--nats" : "--transport",
                          nats ? s_nats.bare_url : s_transport,
                          NULL};
    pid_t pid = spt_spawn(argv, s_log);
    cr_assert_gt(pid, 0);
    s_broker_pid = pid;
    sp_names_t names;
    sp_names_init(&names, s_inst, NULL);
    /* ready, and ours: a dead broker's table may still say READY */
    for (int i = 0; i < SP_TEST_WAIT_MS / 10; i++) {
        sp_table_t *t = NULL;
        if (sp_table_open(&t, names.table, false) == 0) {
            sp_table_hdr_t *h = sp_table_hdr(t);
            bool ready =
                atomic_load(&h->broker_pid) == pid && atomic_load(&h->state) == SP_TABLE_READY;
            sp_table_close(&t);
            if (ready) {
                return pid;
            }
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            return -1;
        }
        usleep(10000);
    }
    spt_wait(pid, 2000);
    return -1;
}

/* Runs a load to its end with per-order ledgers in our state dir. */
static void s_load(const char *count)
{
    const char *argv[] = {spt_bin("producer"),
                          "--instance",
                          s_inst,
                          "--customers",
                          "2",
                          "--count",
                          count,
                          "--restock",
                          "0.2",
                          "--holds",
                          s_holds,
                          "--hold-time",
                          "1s",
                          "--ledger-out",
                          s_state,
                          NULL};
    char *out = NULL;
    int rc = spt_run(argv, 60000, &out);
    cr_assert_eq(rc, 0, "producer: %s", out);
    free(out);
}

/* Kills the broker and its workers with SIGKILL and waits until they are gone. */
static void s_kill_everything(pid_t broker)
{
    kill(broker, SIGKILL);
    waitpid(broker, NULL, 0);
    cr_assert(s_kill_workers(), "workers of %s did not die", s_inst);
}

/* Units every customer was told were accepted, per product. */
static void s_ledger_units(uint64_t sold[R_PRODUCTS + 1], uint64_t restocked[R_PRODUCTS + 1])
{
    memset(sold, 0, sizeof(uint64_t) * (R_PRODUCTS + 1));
    memset(restocked, 0, sizeof(uint64_t) * (R_PRODUCTS + 1));
    DIR *d = opendir(s_state);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "ledger-", 7) != 0) {
            continue;
        }
        char path[400];
        snprintf(path, sizeof path, "%s/%s", s_state, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f);
        uint8_t rec[SP_LEDGER_REC_SIZE];
        while (fread(rec, 1, sizeof rec, f) == sizeof rec) {
            sp_ledger_rec_t r;
            sp_ledger_decode(rec, &r);
            if (r.status != SP_STATUS_ACCEPTED || r.product_id > R_PRODUCTS) {
                continue;
            }
            if (r.type == SP_ORDER_PURCHASE || r.type == SP_ORDER_BUY_HELD) {
                sold[r.product_id] += r.quantity;
            } else if (r.type == SP_ORDER_RESTOCK) {
                restocked[r.product_id] += r.quantity;
            }
        }
        fclose(f);
    }
    closedir(d);
}

/* The table holds exactly what the customers were told. */
static void s_expect_table_matches_ledgers(void)
{
    uint64_t sold[R_PRODUCTS + 1], restocked[R_PRODUCTS + 1];
    s_ledger_units(sold, restocked);
    sp_names_t names;
    sp_names_init(&names, s_inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0, "the table adds up");
    for (uint32_t id = 1; id <= R_PRODUCTS; id++) {
        sp_tally_t tl = spt_tally(t, id);
        cr_expect_eq(tl.sold, sold[id], "product %u: sold %llu, customers were told %llu", id,
                     (unsigned long long)tl.sold, (unsigned long long)sold[id]);
        cr_expect_eq(tl.restocked, restocked[id] + s_extra_restocked[id], "product %u: restocked",
                     id);
    }
    sp_table_close(&t);
}

static char *s_journal_file(void)
{
    static char path[700];
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s/journal", s_state, s_inst);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no journal in %s", dir);
    struct dirent *e;
    path[0] = '\0';
    size_t best = 0;
    while ((e = readdir(d)) != NULL) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (strstr(e->d_name, ".log") && stat(p, &st) == 0 && (size_t)st.st_size > best) {
            best = (size_t)st.st_size;
            snprintf(path, sizeof path, "%s", p);
        }
    }
    closedir(d);
    cr_assert_neq(path[0], '\0');
    return path;
}

/* Every outcome the customers' orders got in the journal (not the
 * broker's own orders), sorted by producer and seq. */
typedef struct {
    sp_jrec_t *v;
    size_t n, cap;
} s_jrecs_t;

static int s_keep_jrec(void *ctx, const sp_jrec_t *rec, uint64_t offset)
{
    (void)offset;
    s_jrecs_t *js = ctx;
    if (rec->kind != SP_JREC_KIND_OUTCOME || rec->producer_id == SP_SYSTEM_PRODUCER) {
        return 0;
    }
    sp_jrec_t *v = sp_grow(js->v, &js->cap, js->n + 1, sizeof *v, 1024);
    if (v == NULL) {
        return -ENOMEM;
    }
    js->v = v;
    js->v[js->n++] = *rec;
    return 0;
}

static int s_by_key(const void *a, const void *b)
{
    const sp_jrec_t *x = a, *y = b;
    if (x->producer_id != y->producer_id) {
        return x->producer_id < y->producer_id ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void s_read_journal(s_jrecs_t *js)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s/journal", s_state, s_inst);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no journal in %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!sp_recover_is_journal(e->d_name)) {
            continue;
        }
        char path[600], why[512] = "";
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cr_assert_eq(sp_journal_scan(path, s_keep_jrec, js, NULL, why, sizeof why), 0, "%s", why);
    }
    closedir(d);
    if (js->n > 0) {
        qsort(js->v, js->n, sizeof *js->v, s_by_key);
    }
}

/* Resends `n` (<= R_RESEND) journaled orders of `producer` with their own
 * producer id and seq, in one message, and expects each to be answered as
 * a duplicate with its journaled outcome and stock. */
static sp_client_t *s_resume(uint32_t producer)
{
    sp_client_cfg_t cc = {.instance = s_inst, .batch = R_RESEND, .producer_id = producer};
    sp_client_t *c = NULL;
    char why[512] = "";
    cr_assert_eq(sp_client_open(&c, &cc, why, sizeof why), 0, "producer %u: %s", producer, why);
    cr_expect(sp_client_welcome(c)->flags & SP_WELCOME_F_RESUMED,
              "producer %u: the rebuilt table does not remember it", producer);
    return c;
}

static void s_resend_on(sp_client_t *c, uint32_t producer, const sp_jrec_t *const *recs, unsigned n)
{
    sp_link_t *link = sp_client_link(c);
    size_t out_cap, in_cap;
    uint8_t *msg = sp_client_orders_buf(c, &out_cap);
    uint8_t *in = sp_client_results_buf(c, &in_cap);
    /* a new message, as a customer's resend is (its own message counter):
     * nats drops a message whose id (sender, counter, first seq, count) it
     * stored within its window, and its answer would never come */
    static uint32_t s_resend_no = 1u << 30;
    sp_wire_put_hdr(msg, SP_MSG_ORDERS, n, producer, s_resend_no++);
    for (unsigned i = 0; i < n; i++) {
        sp_order_t o = {.type = recs[i]->type,
                        .flags = SP_ORDER_F_RESENT,
                        .producer_id = producer,
                        .seq = recs[i]->seq,
                        .product_id = recs[i]->product_id,
                        .quantity = recs[i]->quantity,
                        .sched_ns = sp_now_ns()};
        sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, i), &o);
    }
    cr_assert_eq(sp_link_send(link, msg, sp_wire_msg_size(SP_MSG_ORDERS, n), NULL, SP_TEST_WAIT_MS),
                 0);
    bool answered[R_RESEND] = {false};
    unsigned got = 0, wrong = 0;
    char first_wrong[256] = "";
    uint64_t deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (got < n && sp_now_ns() < deadline) {
        int len = sp_link_recv(link, in, in_cap, NULL, 100);
        if (len == SP_E_TIMEOUT) {
            continue;
        }
        cr_assert_geq(len, 0, "producer %u: %s", producer, sp_strerror(len));
        sp_msg_hdr_t h;
        if (sp_wire_check(in, (size_t)len, &h) != 0 || h.kind != SP_MSG_RESULTS) {
            continue;
        }
        for (unsigned k = 0; k < h.count; k++) {
            sp_result_t r;
            sp_wire_get_result(sp_wire_crec(in, SP_MSG_RESULTS, k), &r);
            for (unsigned i = 0; i < n; i++) {
                const sp_jrec_t *j = recs[i];
                if (answered[i] || r.seq != j->seq) {
                    continue;
                }
                answered[i] = true;
                got++;
                if (r.status != SP_STATUS_DUPLICATE || r.original != j->status ||
                    r.stock_after != j->stock_after) {
                    if (wrong++ == 0) {
                        snprintf(first_wrong, sizeof first_wrong,
                                 "order %u:%llu, journaled %s with stock %u, answered %s (first "
                                 "outcome %u) with stock %u",
                                 producer, (unsigned long long)j->seq,
                                 sp_wire_status_name(j->status), j->stock_after,
                                 sp_wire_status_name(r.status), r.original, r.stock_after);
                    }
                }
                break;
            }
        }
    }
    cr_expect_eq(got, n, "producer %u: %u of %u resent orders answered", producer, got, n);
    cr_expect_eq(wrong, 0,
                 "producer %u: %u of %u resent orders not answered as a duplicate with their "
                 "journaled outcome and stock; the first: %s",
                 producer, wrong, n, first_wrong);
}

static void s_resend(uint32_t producer, const sp_jrec_t *const *recs, unsigned n)
{
    sp_client_t *c = s_resume(producer);
    s_resend_on(c, producer, recs, n);
    sp_client_close(&c);
}

/* Every product's stock and version, to see that nothing moved. */
static void s_stocks(uint32_t stock[R_PRODUCTS + 1], uint32_t version[R_PRODUCTS + 1])
{
    sp_names_t names;
    sp_names_init(&names, s_inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    for (uint32_t id = 1; id <= R_PRODUCTS; id++) {
        sp_product_t p;
        cr_assert_eq(sp_table_read(t, id, &p, &version[id]), 0);
        stock[id] = p.stock;
    }
    sp_table_close(&t);
}

/* Resends up to R_RESEND journaled orders of every customer, spread over
 * its seqs (first and last included): after a rebuild each is a duplicate
 * with its first outcome, and no stock moves. */
static void s_expect_resends_are_duplicates(void)
{
    s_jrecs_t js = {0};
    s_read_journal(&js);
    cr_assert_gt(js.n, 0, "nothing journaled");
    uint32_t stock[R_PRODUCTS + 1], version[R_PRODUCTS + 1];
    s_stocks(stock, version);
    unsigned producers = 0;
    for (size_t a = 0; a < js.n;) {
        size_t b = a;
        while (b < js.n && js.v[b].producer_id == js.v[a].producer_id) {
            b++;
        }
        size_t count = b - a;
        unsigned n = count < R_RESEND ? (unsigned)count : R_RESEND;
        const sp_jrec_t *pick[R_RESEND];
        for (unsigned i = 0; i < n; i++) {
            pick[i] = &js.v[a + (n > 1 ? i * (count - 1) / (n - 1) : 0)];
        }
        s_resend(js.v[a].producer_id, pick, n);
        producers++;
        a = b;
    }
    cr_expect_geq(producers, 2, "both customers' orders were journaled");
    uint32_t stock2[R_PRODUCTS + 1], version2[R_PRODUCTS + 1];
    s_stocks(stock2, version2);
    unsigned moved = 0;
    for (uint32_t id = 1; id <= R_PRODUCTS; id++) {
        moved += stock2[id] != stock[id] || version2[id] != version[id];
    }
    cr_expect_eq(moved, 0, "the resent orders changed %u product(s) (product 1: stock %u -> %u)",
                 moved, stock[1], stock2[1]);
    free(js.v);
}

/* Resends every journaled order of every customer, R_RESEND at a time, each
 * with its own producer id and seq, as a customer retrying everything would:
 * each must be answered as a duplicate with its first outcome and stock. */
static void s_expect_every_resend_is_a_duplicate(void)
{
    s_jrecs_t js = {0};
    s_read_journal(&js);
    cr_assert_gt(js.n, 0, "nothing journaled");
    unsigned producers = 0;
    for (size_t a = 0; a < js.n;) {
        size_t b = a;
        while (b < js.n && js.v[b].producer_id == js.v[a].producer_id) {
            b++;
        }
        if (js.v[a].producer_id != SP_SYSTEM_PRODUCER) {
            /* one connection, as the customer keeps it while it retries */
            sp_client_t *c = s_resume(js.v[a].producer_id);
            for (size_t k = a; k < b; k += R_RESEND) {
                unsigned n = b - k < R_RESEND ? (unsigned)(b - k) : R_RESEND;
                const sp_jrec_t *pick[R_RESEND];
                for (unsigned i = 0; i < n; i++) {
                    pick[i] = &js.v[k + i];
                }
                s_resend_on(c, js.v[a].producer_id, pick, n);
            }
            sp_client_close(&c);
            producers++;
        }
        a = b;
    }
    cr_expect_geq(producers, 2, "both customers' orders were journaled");
    free(js.v);
}

/* A customer that retries every order after the broker and its workers were
 * killed with SIGKILL and the broker restarted (re-attaching to the table,
 * or rebuilding a lost one from the journal) is answered, for each retried
 * order, with that order's first outcome, and nothing is applied twice. */
static void s_retry_across_a_restart(const char *tag, const char *transport, bool lose_table)
{
    s_setup(tag);
    s_transport = transport;
    pid_t b = s_broker(1);
    cr_assert_gt(b, 0, "start on %s failed: %s", transport, spt_slurp(s_log));
    s_load("2000");
    s_kill_everything(b);
    if (lose_table) {
        sp_names_t names;
        sp_names_init(&names, s_inst, NULL);
        cr_assert_eq(sp_table_unlink(names.table), 0, "the segment is lost");
    }
    b = s_broker(2);
    cr_assert_gt(b, 0, "restart on %s failed: %s", transport, spt_slurp(s_log));
    uint32_t stock[R_PRODUCTS + 1], version[R_PRODUCTS + 1];
    s_stocks(stock, version);
    s_expect_every_resend_is_a_duplicate();
    uint32_t stock2[R_PRODUCTS + 1], version2[R_PRODUCTS + 1];
    s_stocks(stock2, version2);
    for (uint32_t id = 1; id <= R_PRODUCTS; id++) {
        cr_expect(stock2[id] == stock[id] && version2[id] == version[id],
                  "%s: the retries moved product %u (stock %u -> %u, version %u -> %u)", transport,
                  id, stock[id], stock2[id], version[id], version2[id]);
    }
    s_expect_table_matches_ledgers();
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_expect_not(spt_leftovers(s_inst));
}

TestSuite(recover, .fini = s_teardown, .timeout = 120);

Test(recover, a_restarted_broker_re_attaches_to_the_dead_ones_table)
{
    s_setup("reattach");
    pid_t b = s_broker(1);
    cr_assert_gt(b, 0);
    s_load("6000");
    s_kill_everything(b);

    b = s_broker(2);
    cr_assert_gt(b, 0, "restart failed: %s", spt_slurp(s_log));
    char *log = spt_slurp(s_log);
    cr_expect(strstr(log, "re-attaching") != NULL, "%s", log);
    free(log);
    s_expect_table_matches_ledgers();
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_expect_not(spt_leftovers(s_inst));
}

Test(recover, a_lost_table_is_rebuilt_from_the_journal_and_a_torn_tail_is_dropped)
{
    s_setup("rebuild");
    pid_t b = s_broker(1);
    cr_assert_gt(b, 0);
    s_load("6000");
    s_kill_everything(b);
    sp_names_t names;
    sp_names_init(&names, s_inst, NULL);
    cr_assert_eq(sp_table_unlink(names.table), 0, "the segment is lost");
    /* a record cut in half, as a crash in the middle of a write leaves it */
    int fd = open(s_journal_file(), O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "half a record....", 17), 17);
    close(fd);

    b = s_broker(2);
    cr_assert_gt(b, 0, "restart failed: %s", spt_slurp(s_log));
    char *log = spt_slurp(s_log);
    cr_expect(strstr(log, "rebuilt it from") != NULL, "%s", log);
    cr_expect(strstr(log, "17 torn byte(s) dropped") != NULL, "%s", log);
    free(log);
    s_expect_table_matches_ledgers();

    /* a resent copy of a journaled order is still recognised */
    s_expect_resends_are_duplicates();
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_expect_not(spt_leftovers(s_inst));
}

Test(recover, a_corrupt_record_in_the_middle_refuses_to_start_saying_where)
{
    s_setup("corrupt");
    pid_t b = s_broker(1);
    cr_assert_gt(b, 0);
    s_load("4000");
    s_kill_everything(b);
    sp_names_t names;
    sp_names_init(&names, s_inst, NULL);
    sp_table_unlink(names.table);
    int fd = open(s_journal_file(), O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "X", 1, 64 + 64 * 10 + 20), 1); /* inside record 10 */
    close(fd);

    b = s_broker(2);
    cr_expect_eq(b, -1, "the broker must refuse to start");
    char *log = spt_slurp(s_log);
    cr_expect(strstr(log, "corrupt record at byte 704") != NULL, "%s", log);
    free(log);
}

Test(recover, a_foreign_segment_under_our_name_is_refused_and_left_alone)
{
    s_setup("foreign");
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/%s.table", s_inst);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    char junk[8192];
    memset(junk, 0x5a, sizeof junk);
    cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);

    pid_t b = s_broker(1);
    cr_expect_eq(b, -1);
    char *log = spt_slurp(s_log);
    cr_expect(strstr(log, "is not a table this version of stockpipe can use") != NULL, "%s", log);
    free(log);
    char *after = spt_slurp(path);
    cr_expect_eq(strlen(after), sizeof junk, "untouched");
    cr_expect_eq(after[0], 0x5a);
    free(after);
    unlink(path);
}

Test(recover, a_clean_stop_keeps_the_table_for_the_next_start)
{
    s_setup("resume");
    pid_t b = s_broker(1);
    cr_assert_gt(b, 0);
    s_load("3000");
    uint64_t sold[R_PRODUCTS + 1], restocked[R_PRODUCTS + 1];
    s_ledger_units(sold, restocked);
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);

    b = s_broker(2);
    cr_assert_gt(b, 0);
    char *log = spt_slurp(s_log);
    cr_expect(log != NULL && strstr(log, "continuing from the table saved") != NULL);
    free(log);
    sp_names_t names;
    sp_names_init(&names, s_inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    for (uint32_t id = 1; id <= R_PRODUCTS; id++) {
        sp_product_t p;
        sp_table_read(t, id, &p, NULL);
        cr_expect_eq(p.stock, R_STOCK + restocked[id] - sold[id], "product %u carried over", id);
    }
    sp_table_close(&t);
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
}

/* A one-shot order (`producer VERB ID QTY [SECONDS]`), which must be accepted. */
static void s_once(const char *verb, uint32_t product, uint32_t qty, const char *secs)
{
    char id[16], q[16];
    snprintf(id, sizeof id, "%u", product);
    snprintf(q, sizeof q, "%u", qty);
    const char *argv[] = {spt_bin("producer"), "--instance", s_inst, verb, id, q, secs, NULL};
    char *out = NULL;
    int rc = spt_run(argv, R_RUN_MS, &out);
    cr_assert_eq(rc, 0, "producer %s %s %s: %s", verb, id, q, out);
    free(out);
}

/* Live holds in the table, and the held units of every row. */
static void s_holds_now(unsigned *holds, uint64_t *held)
{
    sp_names_t names;
    sp_names_init(&names, s_inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    *holds = 0;
    *held = 0;
    for (uint32_t id = 1; id <= R_PRODUCTS; id++) {
        *holds += sp_commit_holds(t, id, NULL);
        *held += spt_tally(t, id).held;
    }
    sp_table_close(&t);
}

/* Waits up to SP_TEST_WAIT_MS until the table has `want` live holds. */
static bool s_wait_holds(unsigned want, unsigned *holds, uint64_t *held)
{
    for (int waited = 0; waited < SP_TEST_WAIT_MS; waited += 10) {
        s_holds_now(holds, held);
        if (*holds == want) {
            return true;
        }
        usleep(10 * 1000);
    }
    return false;
}

/* Waits up to SP_TEST_WAIT_MS until the broker's log, past byte `from`,
 * has `count` snapshot lines; returns the log (malloc'd). */
static char *s_wait_snapshots(size_t from, unsigned count)
{
    for (int waited = 0;; waited += 10) {
        char *log = spt_slurp(s_log);
        unsigned n = 0;
        for (const char *p = log + (strlen(log) > from ? from : strlen(log));
             (p = strstr(p, ": snapshot ")) != NULL; p++) {
            n++;
        }
        if (n >= count || waited >= SP_TEST_WAIT_MS) {
            cr_assert_geq(n, count, "%u snapshot(s) in %d ms: %s", n, SP_TEST_WAIT_MS, log);
            return log;
        }
        free(log);
        usleep(10 * 1000);
    }
}

/* Bytes in the broker's log so far. */
static size_t s_log_size(void)
{
    struct stat st;
    return stat(s_log, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Holds the last snapshot line of the log says it saved, or -1. */
static long s_last_snapshot_holds(const char *log)
{
    const char *last = NULL;
    for (const char *p = log; (p = strstr(p, ": snapshot ")) != NULL; p++) {
        last = p;
    }
    const char *h = last != NULL ? strstr(last, " remembered orders, ") : NULL;
    long n = -1;
    if (h == NULL || sscanf(h, " remembered orders, %ld holds", &n) != 1) {
        return -1;
    }
    return n;
}

/* Journal files the broker's snapshot lines say it removed. */
static unsigned s_files_removed(const char *log)
{
    unsigned sum = 0, n;
    for (const char *p = log; (p = strstr(p, "; removed ")) != NULL; p++) {
        if (sscanf(p, "; removed %u journal file(s)", &n) == 1) {
            sum += n;
        }
    }
    return sum;
}

/* Orders the customers were answered, by their ledgers. */
static size_t s_ledger_records(void)
{
    size_t n = 0;
    DIR *d = opendir(s_state);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", s_state, e->d_name);
        if (strncmp(e->d_name, "ledger-", 7) == 0 && stat(path, &st) == 0) {
            n += (size_t)st.st_size / SP_LEDGER_REC_SIZE;
        }
    }
    closedir(d);
    return n;
}

Test(recover, snapshots_trim_the_journal_and_a_rebuild_uses_them_with_holds)
{
    s_setup("snaps");
    s_snapshot_every = "100ms";
    s_holds = "0.2";
    setenv("SP_LOG_LEVEL", "debug", 1); /* the broker logs every snapshot */
    pid_t b = s_broker(1);
    cr_assert_gt(b, 0);
    /* a one-shot reserve's hold outlives its process: every snapshot from
     * now on holds it */
    s_once("reserve", 1, R_HOLD_QTY, "3600");
    for (int i = 0; i < 4; i++) {
        s_load("3000");
    }
    /* the customers' holds went with them: the reserve's is the only one */
    unsigned holds;
    uint64_t held;
    cr_assert(s_wait_holds(1, &holds, &held), "%u live holds, %llu units held", holds,
              (unsigned long long)held);
    /* the second snapshot from now was begun after it: it holds that hold
     * and no other */
    char *log = s_wait_snapshots(s_log_size(), 2);
    cr_expect_eq(s_last_snapshot_holds(log), 1, "%s", log);
    cr_expect_gt(s_files_removed(log), 0, "no snapshot removed the journal files it contains: %s",
                 log);
    free(log);
    char snap[300];
    snprintf(snap, sizeof snap, "%s/%s/snapshot.bin", s_state, s_inst);
    cr_expect_eq(access(snap, F_OK), 0, "a snapshot was saved");

    /* no snapshot from here on: a second hold, on restocked units, is in
     * the journal only when everything is killed */
    cr_assert_eq(kill(b, SIGSTOP), 0);
    s_once("restock", 2, R_HOLD_QTY, NULL);
    s_extra_restocked[2] += R_HOLD_QTY;
    s_once("reserve", 2, R_HOLD_QTY, "3600");
    s_holds_now(&holds, &held);
    cr_assert_eq(holds, 2, "live holds at the crash");
    cr_assert_eq(held, 2 * R_HOLD_QTY);
    /* the snapshots trimmed the journal: it holds fewer outcomes than the
     * customers were told about */
    s_jrecs_t js = {0};
    s_read_journal(&js);
    size_t told = s_ledger_records();
    cr_expect_lt(js.n, told, "the journal still holds %zu outcomes of the %zu answered", js.n,
                 told);
    free(js.v);
    s_kill_everything(b);
    sp_names_t names;
    sp_names_init(&names, s_inst, NULL);
    cr_assert_eq(sp_table_unlink(names.table), 0);

    b = s_broker(2);
    cr_assert_gt(b, 0, "restart failed: %s", spt_slurp(s_log));
    log = spt_slurp(s_log);
    cr_expect(strstr(log, "rebuilt it from") != NULL && strstr(log, "snapshot.bin") != NULL, "%s",
              log);
    /* one from the snapshot, one from the journal after it */
    cr_expect(strstr(log, "2 hold(s) to release") != NULL, "%s", log);
    free(log);
    /* both holds are back, as expired ones: released at the first tick */
    cr_expect(s_wait_holds(0, &holds, &held), "%u live holds left", holds);
    cr_expect_eq(held, 0, "%llu units still held", (unsigned long long)held);
    s_expect_table_matches_ledgers();
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_expect_not(spt_leftovers(s_inst));
}

Test(recover, every_order_retried_after_kill_9_is_answered_with_its_first_outcome_on_mq)
{
    s_retry_across_a_restart("retry-mq", "mq", true);
}

Test(recover, every_order_retried_after_kill_9_is_answered_with_its_first_outcome_on_shm)
{
    s_retry_across_a_restart("retry-shm", "shm", true);
}

Test(recover, every_order_retried_after_kill_9_is_answered_with_its_first_outcome_on_zmq)
{
    s_retry_across_a_restart("retry-zmq", "zmq", true);
}

/* The same through NATS servers that stay up while the broker and its
 * workers are killed and the table is lost: the orders the stream still
 * holds, and the retries, are answered from the rebuilt registry. */
Test(recover, every_order_retried_after_kill_9_is_answered_with_its_first_outcome_on_nats,
     .timeout = 180)
{
    cr_assert(spt_nats_start(&s_nats, "rcnats"), "nats-server did not start");
    setenv(SP_NATS_AUTH_ENV, s_nats.auth, 1); /* the broker, its workers and our clients */
    s_retry_across_a_restart("rtnats", "nats", true);
    spt_nats_stop(&s_nats);
}

Test(recover, every_order_retried_after_kill_9_and_a_re_attach_is_answered_with_its_first_outcome)
{
    s_retry_across_a_restart("retry-attach", "shm", false);
}

/* ---- replays of journals written here (in-process) ---- */

/* An accepted purchase of `qty` units of `product` by producer:seq, the
 * row's version `version` with `stock` left. */
static sp_jrec_t s_jbuy(uint32_t producer, uint64_t seq, uint32_t product, uint32_t qty,
                        uint32_t version, uint32_t stock)
{
    return (sp_jrec_t){.kind = SP_JREC_KIND_OUTCOME,
                       .type = SP_ORDER_PURCHASE,
                       .status = SP_STATUS_ACCEPTED,
                       .producer_id = producer,
                       .product_id = product,
                       .seq = seq,
                       .quantity = qty,
                       .version = version,
                       .stock_after = stock,
                       .worker_id = 1};
}

/* Writes the journal file `name` of table `table_id` in s_jdir. */
static void s_jfile(const char *name, uint64_t table_id, const sp_jrec_t *recs, size_t n)
{
    if (s_jdir[0] == '\0') {
        cr_assert(spt_tmpdir(s_jdir, sizeof s_jdir, "recover"));
    }
    char path[400], why[512] = "";
    snprintf(path, sizeof path, "%s/%s", s_jdir, name);
    sp_journal_t *j = NULL;
    cr_assert_eq(sp_journal_open(&j, path, table_id, 1, SP_FSYNC_NEVER, 0, why, sizeof why), 0,
                 "%s", why);
    cr_assert_eq(sp_journal_append(j, recs, n), 0);
    sp_journal_close(&j);
}

/* A scratch table of 2 products with R_STOCK each (s_rtable). */
static sp_table_t *s_rmake(void)
{
    int rc = spt_scratch_table(&s_rtable, s_tname, sizeof s_tname, "recover",
                               criterion_current_test->name, 2, R_STOCK, SP_SYNC_CAS);
    cr_assert_eq(rc, 0, "create: %s", sp_strerror(rc));
    return s_rtable;
}

Test(recover, a_record_whose_version_does_not_follow_the_rows_is_refused_naming_it)
{
    /* version 2 is missing; stocks and counts still add up without it */
    const sp_jrec_t recs[] = {s_jbuy(3, 1, 1, 5, 1, R_STOCK - 5),
                              s_jbuy(3, 3, 1, 5, 3, R_STOCK - 15)};
    s_jfile("w1-0.log", 42, recs, 2);
    sp_table_t *t = s_rmake();
    char why[512] = "";
    sp_recover_stats_t st;
    int rc = sp_recover_replay(t, s_jdir, false, &st, why, sizeof why);
    cr_expect_eq(rc, SP_E_JOURNAL_CORRUPT, "a version gap replayed: rc %d", rc);
    cr_expect(strstr(why, "version 2") != NULL, "%s", why);
}

/* The journals in s_jdir replayed into a new table are refused as corrupt,
 * the reason naming `what`. */
static void s_expect_replay_refused(const char *what)
{
    sp_table_t *t = s_rmake();
    char why[512] = "";
    sp_recover_stats_t st;
    cr_expect_eq(sp_recover_replay(t, s_jdir, false, &st, why, sizeof why), SP_E_JOURNAL_CORRUPT);
    cr_expect(strstr(why, what) != NULL, "%s", why);
}

/* Worker 2 applied version 2 of product 1 in memory and died before
 * journaling it (so never answered it), while worker 1 journaled version 3,
 * whose stock counts version 2's change; then the table was lost.  The
 * lost order is rolled back: the row goes on from what the records sell,
 * one version past the last, and a rebase record says so in the journal, so
 * that a second replay finds the chain whole and rolls back nothing more.
 * (A gap where one writer journaled is refused: the test above.) */
Test(recover, versions_a_crash_left_unjournaled_are_rolled_back_once)
{
    sp_jrec_t recs[] = {s_jbuy(3, 1, 1, 5, 1, R_STOCK - 5), s_jbuy(4, 1, 1, 5, 3, R_STOCK - 15),
                        s_jbuy(3, 2, 2, 1, 1, R_STOCK - 1)};
    recs[1].worker_id = 2;
    s_jfile("w1-0.log", 42, recs, 3);
    sp_table_t *t = s_rmake();
    char why[512] = "";
    sp_recover_stats_t st;
    cr_assert_eq(sp_recover_replay(t, s_jdir, false, &st, why, sizeof why), 0, "%s", why);
    cr_expect_eq(st.rolled_back, 1);
    cr_expect_eq(st.rebased, 1, "one row rebased");
    sp_tally_t tl;
    uint64_t stock = sp_row_stock_settled(sp_table_row(t, 1), &tl);
    cr_expect_eq(stock, R_STOCK - 10, "the journaled purchases alone: stock %llu",
                 (unsigned long long)stock);
    cr_expect_eq(tl.sold, 10);
    cr_expect_eq(tl.version, 4, "one version past the last record");
    cr_expect_eq(spt_tally(t, 2).version, 1, "a row without a gap is as it was");

    /* again, from the same journal and the rebase record it now holds */
    sp_table_close(&s_rtable);
    t = s_rmake();
    cr_assert_eq(sp_recover_replay(t, s_jdir, false, &st, why, sizeof why), 0, "%s", why);
    cr_expect_eq(st.rolled_back, 0, "the rebase record accounts for the gap");
    cr_expect_eq(st.rebased, 0);
    stock = sp_row_stock_settled(sp_table_row(t, 1), &tl);
    cr_expect_eq(stock, R_STOCK - 10);
    cr_expect_eq(tl.version, 4);
}

/* Two records of one version: a journal file copied twice. */
Test(recover, two_records_of_one_version_are_refused)
{
    sp_jrec_t recs[] = {s_jbuy(3, 1, 1, 5, 1, R_STOCK - 5), s_jbuy(4, 1, 1, 5, 1, R_STOCK - 5)};
    recs[1].worker_id = 2;
    s_jfile("w1-0.log", 42, recs, 2);
    s_expect_replay_refused("two records of version 1");
}

/* A rebase record is no writer: with it, one writer's gap is still
 * refused. */
Test(recover, a_rebase_record_does_not_make_one_writer_two)
{
    sp_jrec_t recs[] = {s_jbuy(3, 1, 2, 5, 1, R_STOCK - 5), s_jbuy(3, 2, 2, 5, 3, R_STOCK - 15)};
    recs[0].kind = SP_JREC_KIND_REBASE;
    recs[0].producer_id = SP_SYSTEM_PRODUCER;
    recs[0].worker_id = 0;
    s_jfile("w1-0.log", 42, recs, 2);
    s_expect_replay_refused("one writer journaled");
}

/* Records across a gap that leave a stock below zero are no crash's. */
Test(recover, a_version_gap_whose_records_leave_no_stock_is_refused)
{
    sp_jrec_t recs[] = {s_jbuy(3, 1, 1, R_STOCK, 1, 0), s_jbuy(4, 1, 1, 5, 3, 0)};
    recs[1].worker_id = 2;
    s_jfile("w1-0.log", 42, recs, 2);
    s_expect_replay_refused("leave stock -5");
}

Test(recover, a_journal_written_for_another_table_is_refused)
{
    const sp_jrec_t a = s_jbuy(3, 1, 1, 5, 1, R_STOCK - 5);
    const sp_jrec_t b = s_jbuy(4, 1, 2, 5, 1, R_STOCK - 5);
    s_jfile("w1-0.log", 42, &a, 1);
    s_jfile("w2-0.log", 43, &b, 1);
    s_expect_replay_refused("another table");
}

Test(recover, a_journal_that_does_not_add_up_is_refused)
{
    const sp_jrec_t r = s_jbuy(3, 1, 1, 5, 1, R_STOCK - 4); /* 5 sold, 4 gone */
    s_jfile("w1-0.log", 42, &r, 1);
    s_expect_replay_refused("does not add up");
}

Test(recover, the_replay_finds_the_highest_producer_id_and_the_brokers_own_seq)
{
    const sp_jrec_t recs[] = {
        s_jbuy(3, 1, 1, 1, 1, R_STOCK - 1),
        s_jbuy(9, 1, 1, 1, 2, R_STOCK - 2),
        s_jbuy(4, 1, 1, 1, 3, R_STOCK - 3),
        s_jbuy(SP_SYSTEM_PRODUCER, 2, 2, 1, 1, R_STOCK - 1),
        s_jbuy(SP_SYSTEM_PRODUCER, 7, 2, 1, 2, R_STOCK - 2),
        s_jbuy(SP_SYSTEM_PRODUCER, 5, 2, 1, 3, R_STOCK - 3),
    };
    s_jfile("w1-0.log", 42, recs, sizeof recs / sizeof recs[0]);
    sp_table_t *t = s_rmake();
    char why[512] = "";
    sp_recover_stats_t st;
    cr_assert_eq(sp_recover_replay(t, s_jdir, false, &st, why, sizeof why), 0, "%s", why);
    cr_expect_eq(st.max_producer_id, 9, "new producers must get ids above 9");
    cr_expect_eq(st.system_seq, 7, "the broker's next own order is past seq 7");
}

Test(recover, records_a_snapshot_already_holds_are_not_replayed_again)
{
    sp_table_t *t = s_rmake();
    /* the "snapshot": the table already at version 2 of product 1 */
    for (uint64_t seq = 1; seq <= 2; seq++) {
        sp_order_t o = {.type = SP_ORDER_PURCHASE,
                        .producer_id = 3,
                        .seq = seq,
                        .product_id = 1,
                        .quantity = 5};
        sp_outcome_t out;
        cr_assert_eq(sp_commit_order(t, SP_SYNC_CAS, &o, &out), 0);
        cr_assert_eq(out.status, SP_STATUS_ACCEPTED);
    }
    const sp_jrec_t recs[] = {s_jbuy(3, 1, 1, 5, 1, R_STOCK - 5),
                              s_jbuy(3, 2, 1, 5, 2, R_STOCK - 10),
                              s_jbuy(3, 3, 1, 5, 3, R_STOCK - 15)};
    s_jfile("w1-1.log", sp_table_hdr(t)->table_id, recs, 3);
    char why[512] = "";
    sp_recover_stats_t st;
    cr_assert_eq(sp_recover_replay(t, s_jdir, true, &st, why, sizeof why), 0, "%s", why);
    cr_expect_eq(st.accepted, 1, "only version 3 is new");
    sp_tally_t tl = spt_tally(t, 1);
    cr_expect_eq(tl.version, 3);
    cr_expect_eq(tl.sold, 15);
}
