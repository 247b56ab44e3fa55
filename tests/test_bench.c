/*
 * test_bench — the benchmark end to end on a tiny matrix: it runs every
 * transport's cell, writes results.csv and results.json, every row's audit
 * passes, and the JSON holds what a reader needs (machine, settings, rows
 * with throughput, latency, CPU per role, efficiency, targets).  No timing
 * is asserted: figures on a loaded test machine mean nothing; presence and
 * consistency do.  Also: bad flags get a clear error, and the parts
 * (median, labels, the table of variants, the limits check) behave.
 */
#include "sp_testutil.h"

#include "bench.h"
#include "natsrv.h"
#include "sp_error.h"
#include "sp_mq.h"
#include "sp_wire.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define BENCH_MS 120000

/* Checks results.json with Python's own JSON parser: the structure, and that
 * every row passed its audit and every pipeline row has what it must. */
static const char *const s_check_py =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1]))\n"
    "assert d['format'] == 'stockpipe-bench-1'\n"
    "m = d['machine']\n"
    "for k in ('cpu', 'cores', 'kernel', 'libzmq', 'czmq', 'mq_msg_max', 'mq_msgsize_max'):\n"
    "    assert k in m, k\n"
    "assert m['cores'] >= 1\n"
    "rows = d['rows']\n"
    "assert d['audit']['failed'] == 0, [r['note'] for r in rows if r['audit'] != 'pass']\n"
    "seen = set()\n"
    "for r in rows:\n"
    "    assert r['audit'] == 'pass', (r['label'], r['note'])\n"
    "    if r['kind'] == 'pipeline' and r['mode'] == 'fast':\n"
    "        seen.add(r['transport'])\n"
    "        assert r['ops_median'] > 0 and r['ops_min'] <= r['ops_median'] <= r['ops_max']\n"
    "        assert r['repeats'] >= 1 and r['orders'] > 0\n"
    "        assert r['cpu_s_per_m']['total'] > 0, r['label']\n"
    "        assert r['cpu_s_per_m']['producers'] > 0, r['label']\n"
    "        if r['transport'] != 'direct':\n"
    "            assert r['cpu_s_per_m']['workers'] > 0, r['label']\n"
    "        assert r['raw_ops'] and r['efficiency'] > 0, r['label']\n"
    "        lat = r['latency_us']\n"
    "        assert lat['p50'] <= lat['p99'] <= lat['max'], r['label']\n"
    "    if r['kind'] == 'pipeline' and r['mode'] == 'rate':\n"
    "        assert r['offered'] > 0 and r['latency_us']['p99'] is not None\n"
    "assert seen == set(sys.argv[2].split(',')), seen\n"
    "print('json ok', len(rows))\n";

Test(bench, tiny_matrix_writes_audited_json_and_csv, .timeout = 180)
{
    char out_dir[] = "/tmp/sp-bench-test-XXXXXX";
    cr_assert_not_null(mkdtemp(out_dir));
    const char *transports = "mq,zmq-ipc,zmq-inproc,shm,direct";
    const char *argv[] = {spt_bin("bench"),
                          "--transports",
                          transports,
                          "--procs",
                          "1x1",
                          "--batch",
                          "8",
                          "--products",
                          "50",
                          "--seconds",
                          "0.15",
                          "--warmup",
                          "0.05",
                          "--repeats",
                          "2",
                          "--rate-seconds",
                          "0.15",
                          "--no-plots",
                          "--out",
                          out_dir,
                          NULL};
    char *out = NULL;
    int rc = spt_run(argv, BENCH_MS, &out);
    cr_assert_eq(rc, 0, "bench exited %d:\n%s", rc, out);
    cr_expect(strstr(out, "machine:") != NULL, "no machine header:\n%s", out);
    cr_expect(strstr(out, "orders/s") != NULL, "no table:\n%s", out);
    cr_expect(strstr(out, "0 failed audits") != NULL, "%s", out);

    char json[300], csv[300], script[300];
    snprintf(json, sizeof json, "%s/results.json", out_dir);
    snprintf(csv, sizeof csv, "%s/results.csv", out_dir);
    snprintf(script, sizeof script, "%s/check.py", out_dir);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs(s_check_py, f);
    fclose(f);
    const char *py[] = {spt_python(), script, json, transports, NULL};
    char *pout = NULL;
    rc = spt_run(py, 30000, &pout);
    cr_expect_eq(rc, 0, "results.json check failed:\n%s\n--- bench output:\n%s", pout, out);

    /* the CSV: a header and one line per row, every one audited */
    char *text = spt_slurp(csv);
    cr_expect(strncmp(text, "kind,label,series,transport,", 28) == 0, "csv header: %.80s", text);
    unsigned lines = 0, pass = 0;
    for (char *p = text; (p = strchr(p, '\n')) != NULL; p++) {
        lines++;
    }
    for (char *p = text; (p = strstr(p, ",pass,")) != NULL; p++) {
        pass++;
    }
    cr_expect(lines > 5 && pass == lines - 1, "csv: %u lines, %u passed:\n%s", lines, pass, text);
    free(text);
    free(pout);
    free(out);
    unlink(script);
    unlink(json);
    unlink(csv);
    cr_expect_eq(rmdir(out_dir), 0, "bench left files in %s", out_dir);
}

Test(bench, bad_flags_are_named)
{
    struct {
        const char *flag, *value, *says;
    } cases[] = {{"--transports", "carrier-pigeon", "carrier-pigeon"},
                 {"--sync", "hope", "hope"},
                 {"--procs", "2y2", "2y2"},
                 {"--batch", "0", "--batch"},
                 {"--pick", "random", "random"},
                 {"--seconds", "soon", "--seconds"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {spt_bin("bench"),          cases[i].flag, cases[i].value, "--out",
                              "/nonexistent/never-made", NULL};
        char *out = NULL;
        int rc = spt_run(argv, 10000, &out);
        cr_expect_eq(rc, 2, "%s %s: exit %d", cases[i].flag, cases[i].value, rc);
        cr_expect(strstr(out, cases[i].says) != NULL, "%s %s: %s", cases[i].flag, cases[i].value,
                  out);
        free(out);
    }
}

Test(bench, median_and_labels)
{
    double v[] = {5, 1, 4, 2, 3};
    cr_expect_eq(bench_median(v, 5), 3);
    double w[] = {10, 2, 8, 4};
    cr_expect_eq(bench_median(w, 4), 6);
    cr_expect_eq(bench_min(w, 4), 2);
    cr_expect_eq(bench_max(w, 4), 10);
    bench_cell_t c = {.variant = bench_variant_find("zmq-ipc"),
                      .sync = SP_SYNC_ROW_LOCK,
                      .producers = 2,
                      .workers = 3,
                      .batch = 64,
                      .products = 1000};
    cr_assert_not_null(c.variant);
    char label[64];
    bench_cell_label(&c, label, sizeof label);
    cr_expect_str_eq(label, "zmq-ipc/row-lock/2x3/b64/1000");
    c.variant = bench_variant_find("direct");
    cr_assert_not_null(c.variant);
    bench_cell_label(&c, label, sizeof label);
    cr_expect_str_eq(label, "direct/row-lock/2p/1000");
    cr_expect_eq(bench_msg_size(8), SP_WIRE_HDR_SIZE + 8 * SP_WIRE_ORDER_SIZE);
}

Test(bench, every_variant_runs_a_registered_transport)
{
    static const char *const names[] = {"mq",  "zmq-ipc", "zmq-tcp", "zmq-inproc",
                                        "shm", "direct",  "nats",    "nats-r3"};
    unsigned n = 0;
    const bench_variant_t *v;
    for (unsigned i = 0; (v = bench_variant_at(i)) != NULL; i++, n++) {
        cr_assert_lt(i, sizeof names / sizeof names[0], "more variants than the bench prints");
        cr_expect_str_eq(v->name, names[i], "variant %u (the outputs' order)", i);
        cr_expect_not_null(sp_transport_find(v->transport), "%s runs '%s'", v->name, v->transport);
        cr_expect_eq(bench_variant_find(v->name), v, "%s", v->name);
        cr_expect_str_eq(bench_variant_of_raw(v->raw), v->name, "%s's raw baseline", v->name);
    }
    cr_expect_eq(n, sizeof names / sizeof names[0]);
    cr_expect_null(bench_variant_find("pigeon"));
    cr_expect_null(bench_variant_find("zmq"), "the transport's name is not a variant's");
    cr_expect_null(bench_variant_of_raw(BR_SHOP), "the shop is no variant's baseline");
    char buf[160];
    cr_expect_str_eq(bench_variant_names(", ", true, buf, sizeof buf),
                     "mq, zmq-ipc, zmq-tcp, zmq-inproc, shm, direct, nats, nats-r3");
    /* the default --transports leaves out what starts servers per cell */
    cr_expect_str_eq(bench_variant_names(",", false, buf, sizeof buf),
                     "mq,zmq-ipc,zmq-tcp,zmq-inproc,shm,direct");
    const bench_variant_t *r3 = bench_variant_find("nats-r3");
    cr_assert_not_null(r3);
    cr_expect(r3->opt_in);
    cr_expect_eq(r3->at, BENCH_AT_NATS);
    cr_expect_eq(r3->nats_nodes, 3);
    cr_expect_eq(r3->nats_replicas, 3);
}

Test(bench, a_cell_without_workers_counts_none)
{
    bench_cell_t c = {.variant = bench_variant_find("direct"),
                      .sync = SP_SYNC_CAS,
                      .producers = 4,
                      .workers = 2,
                      .batch = 32,
                      .products = 1000};
    cr_assert_not_null(c.variant);
    bench_row_t r;
    bench_row_from_cell(&r, &c);
    cr_expect_eq(r.workers, 0);
    cr_expect_eq(r.procs, 4);
    cr_expect_str_eq(r.transport, "direct");
    c.variant = bench_variant_find("shm");
    bench_row_from_cell(&r, &c);
    cr_expect_eq(r.workers, 2);
    cr_expect_eq(r.procs, 6);
    cr_expect_str_eq(r.series, "shm");
}

/* The reply queues of a cell's producers, and room for the previous cell's,
 * against RLIMIT_MSGQUEUE (lowered for this test only, then restored). */
Test(bench, an_mq_cell_beyond_the_queue_limit_does_not_fit)
{
    long msg_max = sp_mq_limit("msg_max"), depth = 0, size = 0;
    cr_assert_gt(msg_max, 0, "needs /proc/sys/fs/mqueue");
    cr_assert_eq(sp_mq_orders_size(&depth, &size), 0);
    bench_cell_t c = {.variant = bench_variant_find("mq"),
                      .sync = SP_SYNC_CAS,
                      .producers = 4,
                      .workers = 2,
                      .batch = 200,
                      .products = 1000};
    cr_assert_not_null(c.variant);
    /* the order queue and four reply queues of 200 results, twice over */
    uint64_t twice =
        2 * (sp_limits_mq_bytes((uint64_t)depth, (uint64_t)size) +
             4 * sp_limits_mq_bytes((uint64_t)msg_max, sp_wire_msg_size(SP_MSG_RESULTS, 200)));
    struct rlimit saved, rl;
    cr_assert_eq(getrlimit(RLIMIT_MSGQUEUE, &saved), 0, "%s", strerror(errno));
    cr_assert(saved.rlim_max == RLIM_INFINITY || saved.rlim_max >= twice,
              "the hard limit must allow %llu bytes", (unsigned long long)twice);
    rl = (struct rlimit){.rlim_cur = (rlim_t)twice, .rlim_max = saved.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_MSGQUEUE, &rl), 0, "%s", strerror(errno));
    char why[320] = "";
    cr_expect_eq(bench_cell_fits(&c, why, sizeof why), 0, "%s", why);
    c.producers = 5;
    cr_expect_eq(bench_cell_fits(&c, why, sizeof why), SP_E_LIMIT);
    cr_expect(strstr(why, "RLIMIT_MSGQUEUE") != NULL, "%s", why);
    rl.rlim_cur = (rlim_t)(twice - 1);
    cr_assert_eq(setrlimit(RLIMIT_MSGQUEUE, &rl), 0, "%s", strerror(errno));
    c.producers = 4;
    cr_expect_eq(bench_cell_fits(&c, why, sizeof why), SP_E_LIMIT, "twice the bytes, less one");
    /* a transport without queues is not held to the queue limit */
    c.variant = bench_variant_find("direct");
    cr_expect_eq(bench_cell_fits(&c, why, sizeof why), 0, "%s", why);
    cr_expect_eq(setrlimit(RLIMIT_MSGQUEUE, &saved), 0, "%s", strerror(errno));
}

/* A 1x1 cell over the nats transport: the bench starts a nats-server for it,
 * the broker makes its stream there, the customers find it through the
 * contact file, the audit passes against the raw JetStream baseline of the
 * same run, and no server, store or folder is left behind. */
Test(bench, a_nats_cell_passes_its_audit_and_leaves_no_server, .timeout = 180)
{
    char why[200];
    if (!bench_natsrv_available(why, sizeof why)) {
        cr_skip_test("%s", why);
    }
    char out_dir[] = "/tmp/sp-bench-nats-XXXXXX";
    cr_assert_not_null(mkdtemp(out_dir));
    const char *argv[] = {spt_bin("bench"),
                          "--transports",
                          "nats",
                          "--procs",
                          "1x1",
                          "--batch",
                          "8",
                          "--products",
                          "50",
                          "--seconds",
                          "0.3",
                          "--warmup",
                          "0.1",
                          "--repeats",
                          "1",
                          "--rate-seconds",
                          "0.2",
                          "--no-plots",
                          "--out",
                          out_dir,
                          NULL};
    char *out = NULL;
    int rc = spt_run(argv, BENCH_MS, &out);
    cr_expect_eq(rc, 0, "bench exited %d:\n%s", rc, out);
    cr_expect(strstr(out, "0 failed audits") != NULL, "%s", out);
    cr_expect(strstr(out, "raw-nats/") != NULL, "no raw JetStream baseline:\n%s", out);
    cr_expect(strstr(out, "nats/cas/1x1/b8/50") != NULL, "no nats cell:\n%s", out);
    cr_expect_not(spt_process_runs("nats-server", out_dir),
                  "a nats-server of the bench still runs");
    char path[300];
    snprintf(path, sizeof path, "%s/results.json", out_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/results.csv", out_dir);
    unlink(path);
    cr_expect_eq(rmdir(out_dir), 0, "bench left files in %s: %s", out_dir, strerror(errno));
    free(out);
}
