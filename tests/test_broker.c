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
#include "sp_table.h"
#include "sp_testutil.h"

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
