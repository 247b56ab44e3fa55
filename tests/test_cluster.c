/*
 * test_cluster — the nats transport on a 3-node NATS cluster on loopback,
 * with the order stream kept in 3 replicas, while customers run: kill -9 of
 * the node that leads the stream (restarted 5 s later), SIGSTOP of a node
 * for 5 s, and kill -9 of the broker and all its workers (a new broker
 * re-attaches to the table and takes up the stream).  Each run must end with every order answered
 * (none timed out), the broker's count of accepted orders equal to the customers', the table's sold
 * and restocked units equal to what the customers were told was accepted (nothing lost, nothing
 * applied twice) and the table adding up.  Loops are bounded; the servers, broker and customers are
 * the test's own and only talk over loopback.
 */
#include "sp_instance.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"

#include <dirent.h>
#include <criterion/criterion.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define C_RUN_MS      120000
#define C_DURATION    "10s"
#define C_RATE        "1500"
#define C_FAULT_AT_MS 2500 /* into the run */
#define C_DOWN_MS     5000 /* how long the node stays away */

static spt_nats_t s_nats;
static pid_t s_broker_pid;

static void s_cleanup(void)
{
    if (s_broker_pid > 0) {
        spt_stop(s_broker_pid);
        s_broker_pid = 0;
    }
    spt_nats_stop(&s_nats);
}

TestSuite(cluster, .fini = s_cleanup);

/* A cluster of three and a broker keeping its order stream in 3 replicas. */
static void s_start(const char *instance)
{
    cr_assert(spt_nats_cluster_start(&s_nats, instance, 3), "the NATS cluster did not start");
    const char *extra[] = {"--nats",
                           s_nats.bare_url,
                           "--nats-auth",
                           s_nats.auth,
                           "--nats-replicas",
                           "3",
                           "--workers",
                           "2",
                           "--fresh",
                           "--catalogue",
                           spt_data("products.csv"),
                           NULL};
    s_broker_pid = spt_broker_start(instance, extra);
    cr_assert_gt(s_broker_pid, 0, "broker %s did not start", instance);
}

/* The node (0-based) that leads the instance's order stream, or -1. */
static int s_leader(const char *instance)
{
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    int leader = -1;
    char stream[64];
    snprintf(stream, sizeof stream, "SP_%s", instance);
    const char *servers[SPT_NATS_NODES_MAX];
    char urls[SPT_NATS_NODES_MAX][48];
    for (unsigned i = 0; i < s_nats.nodes; i++) {
        snprintf(urls[i], sizeof urls[i], "nats://127.0.0.1:%u", s_nats.port[i]);
        servers[i] = urls[i];
    }
    if (natsOptions_Create(&opts) == NATS_OK &&
        natsOptions_SetServers(opts, servers, (int)s_nats.nodes) == NATS_OK &&
        natsOptions_SetUserInfo(opts, "sp", s_nats.pass) == NATS_OK &&
        natsConnection_Connect(&nc, opts) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream, NULL, NULL) == NATS_OK && si->Cluster != NULL &&
        si->Cluster->Leader != NULL && si->Cluster->Leader[0] == 'n') {
        leader = atoi(si->Cluster->Leader + 1) - 1;
    }
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    return leader >= 0 && (unsigned)leader < s_nats.nodes ? leader : -1;
}

/* Customers in the background through the cluster; their JSON report goes
 * to `out`. */
static pid_t s_customers(const char *instance, const char *out)
{
    const char *argv[] = {spt_bin("producer"), "--instance", instance, "--connect", s_nats.bare_url,
                          "--nats-auth", s_nats.auth, "--customers", "2", "--rate", C_RATE,
                          "--duration", C_DURATION, "--restock", "0.5",
                          /* past any election (at worst about 20 s): an order is
                           * answered late rather than given up */
                          "--timeout", "60s", "--json", NULL};
    pid_t pid = spt_spawn(argv, out);
    cr_assert_gt(pid, 0);
    return pid;
}

/* Waits for the customers, stops the broker, and checks the run: every
 * order answered, and the table holds exactly what the customers were told
 * was accepted. */
static void s_check(const char *instance, pid_t customers, const char *out)
{
    int rc = spt_wait(customers, C_RUN_MS);
    char *report = spt_slurp(out);
    cr_expect_eq(rc, 0, "customers: %s", report);
    long long sent = spt_json_num(report, "sent");
    long long accepted = spt_json_num(report, "accepted");
    long long out_of_stock = spt_json_num(report, "out_of_stock");
    cr_expect_gt(sent, 0, "%s", report);
    cr_expect_eq(spt_json_num(report, "timed_out"), 0, "%s", report);
    cr_expect_eq(spt_json_num(report, "send_failed"), 0, "%s", report);
    cr_expect_eq(accepted + out_of_stock, sent, "every order answered: %s", report);

    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, instance, NULL), 0);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    uint64_t units = 0;
    for (uint32_t id = 1; id <= sp_table_capacity(t); id++) {
        sp_tally_t tally = spt_tally(t, id);
        units += tally.sold + tally.restocked;
    }
    long long told = spt_json_num(report, "units_sold") + spt_json_num(report, "units_restocked");
    cr_expect_eq((long long)units, told,
                 "the table holds %llu units sold and restocked, the customers were told of "
                 "%lld (lost or applied twice)",
                 (unsigned long long)units, told);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0, "the table does not add up");
    sp_table_close(&t);
    free(report);

    cr_expect_eq(spt_stop(s_broker_pid), 0, "the broker stopped cleanly");
    s_broker_pid = 0;
    cr_expect_not(spt_leftovers(instance));
}

static char s_out[256];

Test(cluster, killing_the_stream_leader_mid_run_loses_and_duplicates_nothing, .timeout = 180)
{
    char instance[64];
    spt_instance(instance, sizeof instance, "clkill");
    s_start(instance);
    snprintf(s_out, sizeof s_out, "%s/customers.json", s_nats.dir);
    pid_t customers = s_customers(instance, s_out);

    sp_sleep_ns((uint64_t)C_FAULT_AT_MS * SP_NS_PER_MS); /* into the run, not a wait for an event */
    int leader = s_leader(instance);
    cr_assert_geq(leader, 0, "no leader of the order stream was found");
    spt_nats_node_kill(&s_nats, (unsigned)leader, SIGKILL);
    cr_log_info("killed n%d, the stream's leader", leader + 1);
    sp_sleep_ns((uint64_t)C_DOWN_MS * SP_NS_PER_MS);
    cr_assert(spt_nats_node_start(&s_nats, (unsigned)leader), "n%d did not come back", leader + 1);

    s_check(instance, customers, s_out);
}

Test(cluster, a_node_stopped_for_five_seconds_loses_and_duplicates_nothing, .timeout = 180)
{
    char instance[64];
    spt_instance(instance, sizeof instance, "clstop");
    s_start(instance);
    snprintf(s_out, sizeof s_out, "%s/customers.json", s_nats.dir);
    pid_t customers = s_customers(instance, s_out);

    sp_sleep_ns((uint64_t)C_FAULT_AT_MS * SP_NS_PER_MS);
    int leader = s_leader(instance);
    unsigned node = leader >= 0 ? (unsigned)leader : 0;
    spt_nats_node_kill(&s_nats, node, SIGSTOP);
    sp_sleep_ns((uint64_t)C_DOWN_MS * SP_NS_PER_MS);
    spt_nats_node_kill(&s_nats, node, SIGCONT);

    s_check(instance, customers, s_out);
}

Test(cluster, killing_the_broker_and_its_workers_mid_run_loses_and_duplicates_nothing,
     .timeout = 180)
{
    char instance[64];
    spt_instance(instance, sizeof instance, "clbroker");
    s_start(instance);
    snprintf(s_out, sizeof s_out, "%s/customers.json", s_nats.dir);
    pid_t customers = s_customers(instance, s_out);

    sp_sleep_ns((uint64_t)C_FAULT_AT_MS * SP_NS_PER_MS);
    /* the broker and its workers, all at once, as a power cut of its host
     * would (the stream on the cluster keeps what it acknowledged) */
    sp_names_t names;
    cr_assert_eq(sp_names_init(&names, instance, NULL), 0);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    const sp_table_hdr_t *h = sp_table_hdr(t);
    pid_t workers[SP_WORKERS_MAX];
    unsigned nworkers = 0;
    for (unsigned i = 0; i < SP_WORKERS_MAX; i++) {
        pid_t pid = atomic_load(&h->worker[i].pid);
        if (pid > 0) {
            workers[nworkers++] = pid;
        }
    }
    sp_table_close(&t);
    kill(s_broker_pid, SIGKILL);
    for (unsigned i = 0; i < nworkers; i++) {
        kill(workers[i], SIGKILL);
    }
    spt_wait(s_broker_pid, SP_TEST_WAIT_MS);
    s_broker_pid = 0;

    /* a new broker re-attaches to the table and takes up the stream */
    const char *extra[] = {"--nats", s_nats.bare_url, "--nats-auth", s_nats.auth, "--nats-replicas",
                           "3",      "--workers",     "2",           NULL};
    s_broker_pid = spt_broker_start(instance, extra);
    cr_assert_gt(s_broker_pid, 0, "broker %s did not start again", instance);

    s_check(instance, customers, s_out);
}

/* The bounded cluster chaos run (tests/chaos/cluster.sh --quick: each node
 * in a network namespace, the leader killed, a node stopped, a link taken
 * down twice, the broker killed), judged by its ledger check. */
Test(cluster, the_quick_cluster_chaos_run_loses_and_duplicates_nothing, .timeout = 300)
{
    const char *data = getenv("SP_DATA_DIR");
    char script[512];
    snprintf(script, sizeof script, "%s/%stests/chaos/cluster.sh", data ? data : ".",
             data ? "../" : "");
    const char *argv[] = {"/bin/bash", script, "--quick", NULL};
    char *out = NULL;
    int rc = spt_run(argv, 280000, &out);
    /* its lines, for the log: the faults, the customers, the ledger check */
    for (const char *l = out; l != NULL && *l != '\0';) {
        size_t len = strcspn(l, "\n");
        if (strncmp(l, "cluster: ", 9) == 0) {
            fprintf(stderr, "%.*s\n", (int)len, l);
        }
        l += len + (l[len] == '\n');
    }
    cr_expect_eq(rc, 0, "cluster.sh --quick exited %d:\n%s", rc, out);
    cr_expect(strstr(out, "lost 0, duplicated 0, unexpected 0, unacknowledged applied 0") != NULL,
              "no clean ledger check:\n%s", out);
    cr_expect(strstr(out, "cluster: ok:") != NULL, "no verdict:\n%s", out);
    free(out);
}

/* `make run-cluster`, shortened: the demo's shards, customers over the
 * cluster, merged monitor and audit, and nothing left behind. */
Test(cluster, the_cluster_demo_runs_and_its_audit_is_clean, .timeout = 180)
{
    const char *data = getenv("SP_DATA_DIR");
    char script[512];
    snprintf(script, sizeof script, "%s/%sscripts/run-cluster.sh", data ? data : ".",
             data ? "../" : "");
    const char *argv[] = {"/usr/bin/env", "DURATION=2", "/bin/bash", script, NULL};
    char *out = NULL;
    int rc = spt_run(argv, 170000, &out);
    cr_expect_eq(rc, 0, "run-cluster.sh exited %d:\n%s", rc, out);
    const char *audit = strstr(out, "== audit");
    cr_assert_not_null(audit, "no audit:\n%s", out);
    unsigned clean = 0;
    for (const char *p = audit; (p = strstr(p, "lost 0, duplicated 0, unexpected 0,")) != NULL;
         p++) {
        clean++;
    }
    cr_expect_eq(clean, 2, "both shards audited clean:\n%s", audit);
    cr_expect(strstr(out, "timed out 0") != NULL, "%s", out);
    /* a shard's table read through the NATS servers alone */
    const char *remote = strstr(out, "via nats |      1  Nuggets de pollo");
    cr_expect_not_null(remote, "no table through NATS:\n%s", out);
    cr_expect(strstr(out, "the monitor over NATS failed") == NULL, "%s", out);
    cr_expect(strstr(out, "leftovers of the shards in /dev/shm and /dev/mqueue: 0") != NULL, "%s",
              out);
    free(out);
}

/* bench/shard-scaling.sh, shortened: a row per shard count whose customers
 * got answers, one shard's row its own base, and nothing of the shards
 * left in /dev/shm. */
Test(cluster, the_shard_scaling_script_prints_a_row_per_shard_count, .timeout = 180)
{
    const char *data = getenv("SP_DATA_DIR");
    char script[512];
    snprintf(script, sizeof script, "%s/%sbench/shard-scaling.sh", data ? data : ".",
             data ? "../" : "");
    const char *argv[] = {"/usr/bin/env", "SHARDS=1 2", "PRODUCTS=20", "RUN_SECONDS=1",
                          "REPEATS=1",    "/bin/bash",  script,        NULL};
    char *out = NULL;
    int rc = spt_run(argv, 170000, &out);
    cr_expect_eq(rc, 0, "shard-scaling.sh exited %d:\n%s", rc, out);
    unsigned rows = 0;
    for (const char *line = out; line != NULL && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        unsigned shards = 0, customers = 0;
        double median = 0, ratio = 0;
        if (sscanf(line, "%u %u %lf (%*[0-9.]-%*[0-9.]) %lf", &shards, &customers, &median,
                   &ratio) == 4) {
            rows++;
            cr_expect_eq(shards, rows, "rows in the order of SHARDS:\n%s", out);
            cr_expect_eq(customers, shards, "a customer per shard:\n%s", out);
            cr_expect_gt(median, 0, "%u shard(s): no orders answered:\n%s", shards, out);
            if (shards == 1) {
                cr_expect_eq(ratio, 1.0, "one shard is its own base:\n%s", out);
            }
        }
    }
    cr_expect_eq(rows, 2, "a row for 1 and for 2 shards:\n%s", out);
    DIR *d = opendir("/dev/shm");
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        cr_expect_neq(strncmp(e->d_name, "scale-", 6), 0, "left behind: /dev/shm/%s", e->d_name);
    }
    closedir(d);
    free(out);
}
