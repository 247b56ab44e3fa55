/*
 * test_broker — the broker as a role object, driven in the test's own
 * process: sp_broker_new refuses a bad configuration with its exact code
 * and leaves nothing behind, never touches a live broker's instance, and
 * makes an instance that sp_broker_destroy removes whole; sp_broker_run
 * serves until its stop flag and saves the final table; sp_broker_destroy
 * is NULL-safe.  (The binary's flags, signals and recovery are
 * test_pipeline's and test_recover's.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_broker.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"
#include "sp_wire.h"

#define B_RUN_TIMEOUT_MS 10000

static char s_inst[64], s_state[128];

/* A fresh instance name and state directory for this test. */
static void s_setup(const char *tag)
{
    spt_instance(s_inst, sizeof s_inst, tag);
    cr_assert(spt_tmpdir(s_state, sizeof s_state, tag));
}

/* Whatever a failed test left: the instance's objects, the state directory. */
static void s_teardown(void)
{
    const char *clean[] = {spt_bin("broker"), "--instance", s_inst, "--clean", NULL};
    char *out = NULL;
    spt_run(clean, B_RUN_TIMEOUT_MS, &out);
    free(out);
    spt_rmtree(s_state);
}

/* One mq worker from bin/, the shop's catalogue, our state directory. */
static sp_broker_cfg_t s_cfg(void)
{
    return (sp_broker_cfg_t){.instance = s_inst,
                             .catalogue = spt_data("products.csv"),
                             .state_dir = s_state,
                             .consumer_path = spt_bin("consumer"),
                             .workers = 1,
                             .sync = SP_SYNC_CAS,
                             .transport = NULL, /* mq */
                             .fresh = true};
}

static int s_unused_worker(const char *instance, uint32_t worker_id, const atomic_bool *stop,
                           char *why, size_t cap)
{
    (void)instance, (void)worker_id, (void)stop, (void)why, (void)cap;
    return 0;
}

Test(broker, destroy_is_null_safe_and_nulls_the_pointer)
{
    sp_broker_destroy(NULL);
    sp_broker_t *b = NULL;
    sp_broker_destroy(&b);
    cr_expect_null(b);
}

Test(broker, new_refuses_a_bad_instance_name_with_usage)
{
    s_setup("bname");
    sp_broker_cfg_t cfg = s_cfg();
    cfg.instance = "no spaces allowed";
    static char sentinel;
    sp_broker_t *b = (sp_broker_t *)&sentinel; /* must come back NULL */
    char why[256] = "";
    cr_expect_eq(sp_broker_new(&b, &cfg, why, sizeof why), SP_E_USAGE);
    cr_expect_null(b);
    cr_expect(strstr(why, "bad instance name") != NULL, "%s", why);
    s_teardown();
}

Test(broker, new_refuses_worker_threads_off_zmq_and_leaves_nothing)
{
    s_setup("bthr");
    sp_broker_cfg_t cfg = s_cfg();
    cfg.worker_thread = s_unused_worker;
    sp_broker_t *b = NULL;
    char why[256] = "";
    cr_expect_eq(sp_broker_new(&b, &cfg, why, sizeof why), SP_E_USAGE);
    cr_expect_null(b);
    cr_expect(strstr(why, "inproc://") != NULL, "%s", why);
    cr_expect_not(spt_leftovers(s_inst));
    s_teardown();
}

Test(broker, new_makes_the_instance_and_destroy_removes_it_whole, .timeout = 30)
{
    s_setup("bnew");
    sp_broker_cfg_t cfg = s_cfg();
    sp_broker_t *b = NULL;
    char why[256] = "";
    cr_assert_eq(sp_broker_new(&b, &cfg, why, sizeof why), 0, "%s", why);
    cr_assert_not_null(b);
    cr_expect(spt_leftovers(s_inst), "the table and the order queue exist");
    /* no worker runs and the table is not READY until sp_broker_run */
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, s_inst, NULL), 0);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    cr_expect_neq(atomic_load(&sp_table_hdr(t)->state), SP_TABLE_READY);
    cr_expect_eq(atomic_load(&sp_table_hdr(t)->worker[0].pid), 0);
    sp_table_close(&t);
    sp_broker_destroy(&b);
    cr_expect_null(b);
    cr_expect_not(spt_leftovers(s_inst));
    s_teardown();
}

Test(broker, new_on_a_live_instance_is_refused_and_leaves_it_alone, .timeout = 60)
{
    s_setup("blive");
    const char *extra[] = {"--catalogue", spt_data("products.csv"), "--state-dir", s_state, NULL};
    pid_t other = spt_broker_start(s_inst, extra);
    cr_assert(other > 0);
    sp_broker_cfg_t cfg = s_cfg();
    sp_broker_t *b = NULL;
    char why[256] = "";
    cr_expect_eq(sp_broker_new(&b, &cfg, why, sizeof why), -EEXIST);
    cr_expect_null(b);
    cr_expect(strstr(why, "is already running") != NULL, "%s", why);
    cr_expect(spt_leftovers(s_inst), "the live broker's objects are still there");
    int status = spt_stop(other);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    cr_expect_not(spt_leftovers(s_inst));
    s_teardown();
}

/* Sets the broker's stop flag once its instance is READY. */
typedef struct {
    const char *table;
    atomic_bool *stop;
    int ready_rc;
} s_stopper_t;

static void *s_stop_when_ready(void *arg)
{
    s_stopper_t *s = arg;
    sp_table_t *t = NULL;
    s->ready_rc = sp_table_open_ready(&t, s->table, false, SP_TEST_WAIT_MS);
    sp_table_close(&t);
    atomic_store(s->stop, true);
    return NULL;
}

Test(broker, run_serves_until_its_stop_flag_and_saves_the_table, .timeout = 60)
{
    s_setup("brun");
    atomic_bool stop = false;
    sp_broker_cfg_t cfg = s_cfg();
    cfg.stop = &stop;
    sp_broker_t *b = NULL;
    char why[256] = "";
    cr_assert_eq(sp_broker_new(&b, &cfg, why, sizeof why), 0, "%s", why);
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, s_inst, NULL), 0);
    s_stopper_t stopper = {.table = names.table, .stop = &stop, .ready_rc = 1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_stop_when_ready, &stopper), 0);
    sp_broker_stats_t st;
    memset(&st, 0xff, sizeof st);
    int rc = sp_broker_run(b, &st, why, sizeof why);
    pthread_join(th, NULL);
    cr_expect_eq(rc, 0, "%s", why);
    cr_expect_eq(stopper.ready_rc, 0, "the instance became READY");
    cr_expect_eq(st.drained, 1);
    cr_expect_eq(st.restarts, 0);
    char saved[sizeof st.snapshot];
    snprintf(saved, sizeof saved, "%s/%s/%s", s_state, s_inst, SP_SNAPSHOT_FILE);
    cr_expect_str_eq(st.snapshot, saved);
    cr_expect_eq(access(saved, R_OK), 0, "%s", saved);
    cr_expect(spt_leftovers(s_inst), "the instance lives until destroy");
    sp_broker_destroy(&b);
    cr_expect_not(spt_leftovers(s_inst));
    s_teardown();
}

/* --- --fresh never loses the saved state ---------------------------------- */

/* bin/broker for s_inst with our state directory and `extra`, its output
 * into `log`; waits until the instance is READY.  Returns its pid. */
static pid_t s_broker_bin(const char *const *extra, const char *log)
{
    const char *argv[24] = {"--workers", "1"};
    size_t n = 2;
    for (size_t i = 0; extra[i] != NULL && n < 23; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    pid_t pid = spt_broker_start_in(s_inst, s_state, log, argv);
    char *text = spt_slurp(log);
    cr_assert_gt(pid, 0, "the broker did not become ready:\n%s", text);
    free(text);
    return pid;
}

/* A run that sells 2 units of product 1 and stops cleanly: its table.csv,
 * as saved. */
static char *s_saved_run(const char *log)
{
    const char *extra[] = {"--catalogue", spt_data("products.csv"), NULL};
    pid_t pid = s_broker_bin(extra, log);
    const char *buy[] = {spt_bin("producer"), "--instance", s_inst, "buy", "1", "2", NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(buy, B_RUN_TIMEOUT_MS, &out), 0, "%s", out);
    free(out);
    cr_assert_eq(spt_stop(pid), 0, "a clean stop");
    char path[256];
    snprintf(path, sizeof path, "%s/%s/%s", s_state, s_inst, SP_SNAPSHOT_FILE);
    char *saved = spt_slurp(path);
    cr_assert(strlen(saved) > 0, "%s was not saved", path);
    return saved;
}

Test(broker, fresh_with_a_catalogue_that_does_not_load_keeps_the_saved_state, .timeout = 60)
{
    s_setup("bfresh");
    char log[256], path[256];
    snprintf(log, sizeof log, "%s/broker.log", s_state);
    char *saved = s_saved_run(log);

    const char *bad[] = {spt_bin("broker"),
                         "--instance",
                         s_inst,
                         "--state-dir",
                         s_state,
                         "--fresh",
                         "--catalogue",
                         "/nonexistent/catalogue.csv",
                         NULL};
    char *out = NULL;
    cr_expect_neq(spt_run(bad, B_RUN_TIMEOUT_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "/nonexistent/catalogue.csv") != NULL, "names the file: %s", out);
    cr_expect(strstr(out, "untouched") != NULL, "says the state is kept: %s", out);
    free(out);
    snprintf(path, sizeof path, "%s/%s/%s", s_state, s_inst, SP_SNAPSHOT_FILE);
    char *after = spt_slurp(path);
    cr_expect_str_eq(after, saved, "the saved table survived the typo");
    free(after);
    cr_expect_not(spt_leftovers(s_inst));
    free(saved);
    s_teardown();
}

Test(broker, fresh_keeps_the_state_it_replaces_in_a_dated_folder, .timeout = 60)
{
    s_setup("bfreshkeep");
    char log[256];
    snprintf(log, sizeof log, "%s/broker.log", s_state);
    char *saved = s_saved_run(log);

    const char *fresh[] = {"--fresh", "--catalogue", spt_data("products.csv"), NULL};
    pid_t pid = s_broker_bin(fresh, log);
    cr_assert_eq(spt_stop(pid), 0);
    char *text = spt_slurp(log);
    const char *kept = strstr(text, "is kept in ");
    cr_assert_not_null(kept, "the broker does not say where the old state went:\n%s", text);
    char dir[256];
    snprintf(dir, sizeof dir, "%.*s", (int)strcspn(kept + 11, "\n"), kept + 11);
    free(text);
    cr_expect(strstr(dir, "/replaced-") != NULL, "%s", dir);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, SP_SNAPSHOT_FILE);
    char *aside = spt_slurp(path);
    cr_expect_str_eq(aside, saved, "the replaced table is kept whole in %s", dir);
    free(aside);
    free(saved);
    s_teardown();
}

Test(broker, a_catalogue_beside_saved_state_is_said_to_be_ignored, .timeout = 60)
{
    s_setup("bignored");
    char log[256];
    snprintf(log, sizeof log, "%s/broker.log", s_state);
    free(s_saved_run(log));

    const char *again[] = {"--catalogue", spt_data("products.csv"), NULL};
    pid_t pid = s_broker_bin(again, log);
    cr_assert_eq(spt_stop(pid), 0);
    char *text = spt_slurp(log);
    cr_expect(strstr(text, "is ignored") != NULL && strstr(text, "--fresh") != NULL,
              "the broker does not say the catalogue is ignored:\n%s", text);
    free(text);
    s_teardown();
}

/* Something else at /dev/shm/NAME.table: the broker and --clean both leave
 * it alone and give the same way out (they used to disagree: the broker
 * sent the user to --clean, which refused). */
Test(broker, a_foreign_table_file_is_left_alone_by_both_with_one_way_out, .timeout = 30)
{
    s_setup("bforeign");
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/%s.table", s_inst);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not a table at all, but somebody's file\n", f);
    fclose(f);
    char advice[300];
    snprintf(advice, sizeof advice, "remove it with 'rm %s'", path);

    const char *start[] = {spt_bin("broker"), "--instance", s_inst, "--state-dir", s_state, NULL};
    const char *clean[] = {spt_bin("broker"), "--instance", s_inst, "--clean", NULL};
    const char *const *runs[] = {start, clean};
    for (size_t i = 0; i < 2; i++) {
        char *out = NULL;
        cr_expect_neq(spt_run(runs[i], B_RUN_TIMEOUT_MS, &out), 0, "%s", out);
        cr_expect(strstr(out, "left alone") != NULL && strstr(out, advice) != NULL,
                  "%s does not give the way out:\n%s", i == 0 ? "the broker" : "--clean", out);
        cr_expect(strstr(out, "--clean") == NULL, "no promise --clean cannot keep:\n%s", out);
        free(out);
        cr_expect_eq(access(path, F_OK), 0, "the file was removed");
    }
    unlink(path);
    s_teardown();
}

/* A client that never reads its answers makes the workers drop results
 * (its reply queue full): the broker's closing line counts them, as its
 * STATS did (it used to say "0 results" whatever the workers dropped). */
Test(broker, the_closing_line_counts_the_results_workers_dropped, .timeout = 90)
{
    s_setup("bdrops");
    char log[256];
    snprintf(log, sizeof log, "%s/broker.log", s_state);
    const char *extra[] = {"--catalogue", spt_data("products.csv"), NULL};
    pid_t pid = s_broker_bin(extra, log);

    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, s_inst, NULL), 0);
    enum { S_CLIENT = 0x80000011u, S_MSGS = 24 };
    sp_link_cfg_t lc = spt_link_cfg(SP_LINK_PRODUCER, sp_transport_find("mq"), &names, S_CLIENT,
                                    sp_wire_msg_size(SP_MSG_ORDERS, 1));
    sp_link_t *link = NULL;
    char why[256] = "";
    cr_assert_eq(sp_link_open(&link, &lc, why, sizeof why), 0, "%s", why);
    uint8_t msg[SP_WIRE_HDR_SIZE + 64];
    for (uint32_t m = 1; m <= S_MSGS; m++) {
        sp_wire_put_hdr(msg, SP_MSG_ORDERS, 1, S_CLIENT, m);
        sp_order_t o = {.type = SP_ORDER_RESTOCK,
                        .producer_id = S_CLIENT,
                        .seq = m,
                        .product_id = 1,
                        .quantity = 1};
        sp_wire_put_order(sp_wire_rec(msg, SP_MSG_ORDERS, 0), &o);
        cr_assert_eq(
            sp_link_send(link, msg, sp_wire_msg_size(SP_MSG_ORDERS, 1), NULL, B_RUN_TIMEOUT_MS), 0);
    }
    /* never read: once the reply queue is full each result is dropped after
     * the worker's send timeout; wait for the first drop */
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    uint64_t drops = 0;
    for (uint64_t until = sp_now_ns() + 60ull * SP_NS_PER_SEC; drops == 0 && sp_now_ns() < until;) {
        for (int w = 0; w < SP_WORKERS_MAX; w++) {
            drops += atomic_load(&sp_table_hdr(t)->worker[w].result_drops);
        }
        if (drops == 0) {
            usleep(20 * 1000);
        }
    }
    sp_table_close(&t);
    cr_assert_gt(drops, 0, "no result was dropped");
    cr_assert_eq(spt_stop(pid), 0);
    sp_link_close(&link);
    char *text = spt_slurp(log);
    const char *line = strstr(text, "drops: 0 orders, ");
    cr_assert_not_null(line, "%s", text);
    unsigned long long said = strtoull(line + strlen("drops: 0 orders, "), NULL, 10);
    cr_expect_geq(said, drops,
                  "the closing line says %llu results dropped, the workers counted "
                  "at least %llu:\n%s",
                  said, (unsigned long long)drops, text);
    free(text);
    s_teardown();
}
