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
#include "peer.h"
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
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_MS 120000

static void s_write(const char *path, const char *text);
static int s_docs(const char *json, const char *md, char **out);

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
    "table = open(sys.argv[3]).read().splitlines()\n"
    "assert d['machine']['loadavg'] is None or len(d['machine']['loadavg']) == 3\n"
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
    "        if not r['copy']:\n"
    "            line = [l for l in table if l.startswith(r['label'] + ' ') and ' fast ' in l]\n"
    "            assert len(line) == 1, (r['label'], line)\n"
    "            eff = float(line[0].split()[4])\n"
    "            assert abs(eff - r['efficiency']) <= 0.06 * r['efficiency'], (line, "
    "r['efficiency'])\n"
    "        lat = r['latency_us']\n"
    "        assert lat['p50'] <= lat['p99'] <= lat['max'], r['label']\n"
    "        mem = r['memory']\n"
    "        assert mem['table_mib'] > 0 and mem['bytes_per_product'] > 256, (r['label'], mem)\n"
    "        if r['transport'] != 'zmq-inproc':\n"
    "            assert 0 < mem['anon_broker_mib'] <= mem['rss_broker_mib'], (r['label'], mem)\n"
    "            if r['transport'] != 'direct':\n"
    "                assert 0 < mem['anon_workers_mib'] <= mem['rss_workers_mib'], (r['label'], "
    "mem)\n"
    "        if not r['copy']:\n"
    "            memline = [l for l in table if l.startswith('  ' + r['label'] + ' ') and "
    "'|' not in l]\n"
    "            assert len(memline) == 1, (r['label'], memline)\n"
    "    if r['kind'] == 'pipeline' and r['mode'] == 'rate':\n"
    "        assert r['offered'] > 0 and r['latency_us']['p99'] is not None\n"
    "        assert r['peak_pct'] == 50, (r['label'], r['peak_pct'])\n"
    "        legs = r['legs_us']\n"
    "        assert set(legs) == {'late', 'out', 'back'}, legs\n"
    "        assert legs['out']['p50'] > 0 and legs['back']['p50'] > 0, (r['label'], legs)\n"
    "        assert legs['out']['p50'] <= legs['out']['p99'], (r['label'], legs)\n"
    "        hops = r['worker_hops_us']\n"
    "        assert set(hops) == {'step', 'journal', 'reply'}, hops\n"
    "        if r['transport'] != 'direct':\n"
    "            for k, h in hops.items():\n"
    "                assert h['p50'] is not None and 0 < h['p50'] <= h['p99'], (r['label'], k, h)\n"
    "        assert any(l.startswith('  ' + r['label'] + ' ') and ' | ' in l for l in table), "
    "r['label']\n"
    "        assert any(l.startswith(r['label'] + ' ') and ' 50% ' in l for l in table), "
    "r['label']\n"
    "assert seen == set(sys.argv[2].split(',')), seen\n"
    "idle = [r for r in rows if r['kind'] == 'idle']\n"
    "want = sorted(t for t in sys.argv[2].split(',') if t != 'direct')\n"
    "assert sorted(r['transport'] for r in idle) == want, [r['label'] for r in idle]\n"
    "for r in idle:\n"
    "    assert r['mode'] == 'rate' and r['offered'] == 500 and r['peak_pct'] is None, r\n"
    "    assert r['orders'] >= 500, (r['label'], r['orders'])\n"
    "    assert r['legs_us']['out']['p50'] > 0, (r['label'], r['legs_us'])\n"
    "    assert any(l.startswith(r['label'] + ' ') and ' 500 ' in l for l in table), r['label']\n"
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
                          "--idle-rate",
                          "500",
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

    char json[300], csv[300], script[300], table[300];
    snprintf(json, sizeof json, "%s/results.json", out_dir);
    snprintf(csv, sizeof csv, "%s/results.csv", out_dir);
    snprintf(script, sizeof script, "%s/check.py", out_dir);
    snprintf(table, sizeof table, "%s/out.txt", out_dir);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs(s_check_py, f);
    fclose(f);
    s_write(table, out);
    const char *py[] = {spt_python(), script, json, transports, table, NULL};
    char *pout = NULL;
    rc = spt_run(py, 30000, &pout);
    cr_expect_eq(rc, 0, "results.json check failed:\n%s\n--- bench output:\n%s", pout, out);
    /* the docs generator takes this run's results as they are today */
    char md[300];
    snprintf(md, sizeof md, "%s/page.md", out_dir);
    s_write(md, "<!-- bench:begin stamp -->\n<!-- bench:end -->\n"
                "<!-- bench:begin summary -->\n<!-- bench:end -->\n"
                "<!-- bench:begin results -->\n<!-- bench:end -->\n");
    char *dout = NULL;
    rc = s_docs(json, md, &dout);
    cr_expect_eq(rc, 0, "bench-docs.py on this run: exit %d:\n%s", rc, dout);
    char *page = spt_slurp(md);
    cr_expect(strstr(page, "| `shm/cas/1x1/b8/50` |") != NULL, "%s", page);
    cr_expect(strstr(page, "| `shm` |") != NULL, "%s", page);
    free(page);
    free(dout);
    unlink(md);

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
    unlink(table);
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
    bench_peer_cfg_t peer = {.clients = 2, .pipeline = 64, .products = 1000};
    bench_peer_label(&peer, label, sizeof label);
    cr_expect_str_eq(label, "redis/lua/2c/p64/1000");
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

/* ---- the Redis peer ---- */

/* Checks the peer's row and targets in results.json (argv[1]). */
static const char *const s_peer_py =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1]))\n"
    "peers = [r for r in d['rows'] if r['kind'] == 'peer']\n"
    "assert len(peers) == 1, [r['label'] for r in d['rows']]\n"
    "r = peers[0]\n"
    "assert r['label'] == 'redis/lua/1c/p64/50', r['label']\n"
    "assert r['transport'] == 'redis' and r['producers'] == 1 and r['products'] == 50, r\n"
    "assert r['audit'] == 'pass', r['note']\n"
    "assert r['ops_median'] > 0 and r['orders'] > 0 and r['repeats'] == 1, r\n"
    "assert r['cpu_s_per_m']['broker'] > 0, r['cpu_s_per_m']\n"
    "names = [t['name'] for t in d['targets']]\n"
    "for v in ('mq', 'shm'):\n"
    "    assert any(n.startswith(v + ' pipeline >= 5x Redis') for n in names), names\n"
    "print('peer ok')\n";

/* The smallest run: one direct cell of one process, no raw baseline, no
 * plots; `extra` flags after it, `cwd` (when not NULL) the folder it runs
 * in, `env` (when not NULL) one NAME=VALUE for its environment.  Returns
 * the exit status; *out holds stdout and stderr together, as one pipe gets
 * them. */
static int s_tiny(const char *cwd, const char *env, const char *const *extra, char **out)
{
    const char *argv[32] = {"/usr/bin/env"};
    unsigned n = 1;
    if (cwd != NULL) {
        argv[n++] = "-C";
        argv[n++] = cwd;
    }
    if (env != NULL) {
        argv[n++] = env;
    }
    static const char *const tiny[] = {"--transports",   "direct", "--procs",   "1",
                                       "--products",     "50",     "--seconds", "0.1",
                                       "--warmup",       "0.02",   "--repeats", "1",
                                       "--rate-seconds", "0.05",   "--no-raw",  "--no-plots"};
    argv[n++] = spt_bin("bench");
    for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
        argv[n++] = tiny[i];
    }
    for (unsigned i = 0; extra != NULL && extra[i] != NULL && n < 31; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    return spt_run(argv, BENCH_MS, out);
}

/* A tiny sliced run with --peer: the bench starts its own redis-server,
 * runs the same orders as a Lua script, and its row passes the audit
 * (every unit that left the catalogue was one a client was told it
 * bought); afterwards no server of that run runs, nothing is left under
 * its TMPDIR, and the out folder holds only the results. */
Test(bench, the_redis_peer_passes_its_audit_and_leaves_nothing, .timeout = 120)
{
    char why[200];
    if (!bench_peer_available(why, sizeof why)) {
        cr_skip_test("%s", why);
    }
    char tmp[] = "/tmp/sp-bench-peer-tmp-XXXXXX", out_dir[] = "/tmp/sp-bench-peer-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    cr_assert_not_null(mkdtemp(out_dir));
    char tmpdir[64];
    snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", tmp);
    const char *extra[] = {"--peer", "--out", out_dir, NULL};
    char *out = NULL;
    int rc = s_tiny(NULL, tmpdir, extra, &out);
    cr_expect_eq(rc, 0, "bench exited %d:\n%s", rc, out);
    cr_expect(strstr(out, "redis/lua/1c/p64/50 ") != NULL, "no peer row:\n%s", out);
    cr_expect(strstr(out, "0 failed audits") != NULL, "%s", out);
    cr_expect_not(spt_process_runs("redis-server", tmp), "a redis-server of the run still runs");
    cr_expect_eq(rmdir(tmp), 0, "the peer left files in its TMPDIR %s: %s", tmp, strerror(errno));

    char json[300], csv[300];
    snprintf(json, sizeof json, "%s/results.json", out_dir);
    snprintf(csv, sizeof csv, "%s/results.csv", out_dir);
    const char *py[] = {spt_python(), "-c", s_peer_py, json, NULL};
    char *pout = NULL;
    rc = spt_run(py, 30000, &pout);
    cr_expect_eq(rc, 0, "results.json check failed:\n%s\n--- bench output:\n%s", pout, out);
    unlink(json);
    unlink(csv);
    cr_expect_eq(rmdir(out_dir), 0, "bench left files in %s: %s", out_dir, strerror(errno));
    free(pout);
    free(out);
}

/* Without redis-server in PATH the peer's row says how to install it,
 * is not a failed audit, and the run exits 0. */
Test(bench, without_redis_server_the_peer_row_says_how_to_install_it, .timeout = 120)
{
    char dir[256];
    cr_assert(spt_tmpdir(dir, sizeof dir, "bench-nopeer"));
    const char *extra[] = {"--peer", "--out", dir, NULL};
    char *out = NULL;
    int rc = s_tiny(NULL, "PATH=/nonexistent", extra, &out);
    cr_expect_eq(rc, 0, "bench exited %d:\n%s", rc, out);
    const char *row = strstr(out, "redis/lua/1c/p64/50 ");
    cr_assert_not_null(row, "no peer row:\n%s", out);
    cr_expect(strstr(row, " n/a ") != NULL, "%s", out);
    cr_expect(strstr(row, "redis-server is not installed: apt-get install redis-server") != NULL,
              "%s", out);
    cr_expect(strstr(out, "0 failed audits") != NULL, "%s", out);
    free(out);
    spt_rmtree(dir);
}

Test(bench, peer_and_no_peer_exclude_each_other)
{
    const char *argv[] = {spt_bin("bench"),          "--peer", "--no-peer", "--out",
                          "/nonexistent/never-made", NULL};
    char *out = NULL;
    int rc = spt_run(argv, 10000, &out);
    cr_expect_eq(rc, 2, "exit %d: %s", rc, out);
    cr_expect(strstr(out, "--peer and --no-peer exclude each other") != NULL, "%s", out);
    free(out);
}

/* ---- the output: order, eff, open-loop share, --strict, run folders ---- */

/* stdout and stderr into one pipe (as `bench | tee` or a CI log): the
 * machine header is written before the first progress line, and every
 * line arrives whole. */
Test(bench, piped_the_header_comes_before_the_progress_lines, .timeout = 120)
{
    char dir[256];
    cr_assert(spt_tmpdir(dir, sizeof dir, "bench-pipe"));
    const char *extra[] = {"--out", dir, NULL};
    char *out = NULL;
    int rc = s_tiny(NULL, NULL, extra, &out);
    cr_expect_eq(rc, 0, "bench exited %d:\n%s", rc, out);
    const char *head = strstr(out, "machine:");
    const char *progress = strstr(out, "[1/");
    cr_assert_not_null(head, "no header:\n%s", out);
    cr_assert_not_null(progress, "no progress line:\n%s", out);
    cr_expect_lt(head, progress, "the header came after a progress line:\n%s", out);
    /* every progress line starts a line of its own */
    for (const char *p = out; (p = strstr(p, "[1/")) != NULL; p++) {
        cr_expect(p == out || p[-1] == '\n', "a progress line inside another:\n%s", out);
    }
    free(out);
    spt_rmtree(dir);
}

/* Two runs without --out: two folders under build/bench named by the time
 * each began, and build/bench/latest naming the second. */
Test(bench, each_run_writes_a_dated_folder_and_latest_names_it, .timeout = 180)
{
    char dir[256];
    cr_assert(spt_tmpdir(dir, sizeof dir, "bench-dated"));
    char names[2][64], build[300];
    snprintf(build, sizeof build, "%s/build", dir);
    cr_assert_eq(mkdir(build, 0700), 0, "%s", strerror(errno)); /* build/bench it makes itself */
    for (int run = 0; run < 2; run++) {
        char *out = NULL;
        int rc = s_tiny(dir, NULL, NULL, &out);
        cr_assert_eq(rc, 0, "run %d exited %d:\n%s", run, rc, out);
        const char *arrow = strstr(out, "build/bench/latest -> ");
        cr_assert_not_null(arrow, "run %d names no folder:\n%s", run, out);
        arrow += strlen("build/bench/latest -> ");
        size_t len = strcspn(arrow, "\n");
        cr_assert_lt(len, sizeof names[run]);
        memcpy(names[run], arrow, len);
        names[run][len] = '\0';
        /* YYYY-MM-DDTHH-MM-SS, then -N when two runs begin in one second */
        cr_expect_geq(len, 19, "%s", names[run]);
        cr_expect(names[run][4] == '-' && names[run][10] == 'T' && names[run][13] == '-',
                  "folder name %s", names[run]);
        char json[512];
        snprintf(json, sizeof json, "%s/build/bench/%s/results.json", dir, names[run]);
        cr_expect_eq(access(json, R_OK), 0, "no %s", json);
        free(out);
    }
    cr_expect_str_neq(names[0], names[1], "the second run overwrote the first");
    char link[512], target[128] = "";
    snprintf(link, sizeof link, "%s/build/bench/latest", dir);
    ssize_t n = readlink(link, target, sizeof target - 1);
    cr_assert_gt(n, 0, "%s is no link: %s", link, strerror(errno));
    target[n] = '\0';
    cr_expect_str_eq(target, names[1], "latest names %s", target);
    char json[600];
    snprintf(json, sizeof json, "%s/results.json", link);
    cr_expect_eq(access(json, R_OK), 0, "no results through %s", link);
    /* the results are in the run folders, not beside them */
    char top[512];
    snprintf(top, sizeof top, "%s/build/bench/results.json", dir);
    cr_expect_neq(access(top, F_OK), 0, "results written beside the run folders");
    spt_rmtree(dir);
}

/* A target the run cannot meet (every cell at 10^15 orders/s): shown as
 * MISSED, exit 0 as before; with --strict, exit 5. */
Test(bench, strict_exits_5_when_a_target_is_missed, .timeout = 180)
{
    char dir[256];
    cr_assert(spt_tmpdir(dir, sizeof dir, "bench-strict"));
    const char *lax[] = {"--out", dir, "--min-rate", "1e15", NULL};
    char *out = NULL;
    int rc = s_tiny(NULL, NULL, lax, &out);
    cr_expect_eq(rc, 0, "without --strict: exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "MISSED") != NULL, "the target is not shown missed:\n%s", out);
    free(out);
    const char *strict[] = {"--out", dir, "--min-rate", "1e15", "--strict", NULL};
    rc = s_tiny(NULL, NULL, strict, &out);
    cr_expect_eq(rc, BENCH_EXIT_MISSED, "with --strict: exit %d:\n%s", rc, out);
    cr_expect(strstr(out, "--strict") != NULL, "no word of why:\n%s", out);
    free(out);
    /* a target it meets: exit 0 under --strict too */
    const char *met[] = {"--out", dir, "--min-rate", "1", "--strict", NULL};
    rc = s_tiny(NULL, NULL, met, &out);
    cr_expect_eq(rc, 0, "a met target under --strict: exit %d:\n%s", rc, out);
    free(out);
    spt_rmtree(dir);
}

Test(bench, the_exit_status_weighs_audits_targets_and_strict)
{
    bench_target_t t[3] = {{.met = 1}, {.met = -1}, {.met = 1}};
    cr_expect_eq(bench_exit_status(0, t, 3, true, false), 0, "met or not measured");
    t[2].met = 0;
    cr_expect_eq(bench_exit_status(0, t, 3, false, false), 0, "missed, not strict");
    cr_expect_eq(bench_exit_status(0, t, 3, true, false), BENCH_EXIT_MISSED);
    cr_expect_eq(bench_exit_status(2, t, 3, true, false), 1, "a failed audit comes first");
    cr_expect_eq(bench_exit_status(2, t, 3, true, true), 130, "interrupted comes first");
}

/* A row as the table prints it (open_memstream). */
static char *s_printed(const bench_row_t *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    bench_print_row(f, r);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

/* shm against its bare ring is some 0.002: the column must say so, not
 * 0.00; no baseline is "-"; an open-loop row names its share of the peak. */
Test(bench, the_table_shows_small_efficiencies_and_the_share_of_peak)
{
    bench_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.label, sizeof r.label, "shm/cas/1x1/b200/1000");
    r.ops_med = r.ops_min = r.ops_max = 3.1e6;
    r.p50 = r.p90 = r.p99 = r.p999 = r.max = -1;
    r.cpu_total = -1;
    r.audit = 1;
    r.efficiency = 3.1e6 / 1.77e9;
    char *line = s_printed(&r);
    cr_expect(strstr(line, " 0.0018 ") != NULL, "eff of 0.00175: %s", line);
    cr_expect(strstr(line, " 0.00 ") == NULL, "%s", line);
    free(line);
    r.efficiency = 0.42;
    line = s_printed(&r);
    cr_expect(strstr(line, " 0.42 ") != NULL, "%s", line);
    free(line);
    r.efficiency = 0;
    line = s_printed(&r);
    char cols[8][40];
    cr_assert_eq(
        sscanf(line, "%39s %39s %39s %39s %39s", cols[0], cols[1], cols[2], cols[3], cols[4]), 5,
        "%s", line);
    cr_expect_str_eq(cols[4], "-", "no baseline: %s", line);
    free(line);
    r.rate_mode = true;
    r.offered = 1.55e6;
    r.peak_pct = 50;
    line = s_printed(&r);
    cr_expect(strstr(line, " 1.55M 50% ") != NULL, "open loop: %s", line);
    free(line);
}

/* ---- scripts/bench-docs.py: the docs' figures from one run ---- */

/* A path in the source tree (SP_DATA_DIR is its data/, else we run in it). */
static const char *s_src(const char *rel)
{
    static char buf[4][512];
    static unsigned next;
    const char *data = getenv("SP_DATA_DIR");
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s%s%s", data ? data : ".", data ? "/../" : "/", rel);
    return b;
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* Runs the generator on `json` over the Markdown file `md`; its exit
 * status, *out its output. */
static int s_docs(const char *json, const char *md, char **out)
{
    const char *argv[] = {
        spt_python(), s_src("scripts/bench-docs.py"), json, md, "--via", "make bench-docs", NULL};
    return spt_run(argv, 30000, out);
}

static const char s_doc[] = "# A page\n"
                            "Prose before stays.\n"
                            "<!-- bench:begin stamp -->\n"
                            "shm 9.2 M orders/s, from before exactly-once\n"
                            "<!-- bench:end -->\n"
                            "Prose between stays.\n"
                            "<!-- bench:begin summary -->\n"
                            "<!-- bench:end -->\n"
                            "<!-- bench:begin results -->\n"
                            "| stale | 21.2 M |\n"
                            "<!-- bench:end -->\n"
                            "<!-- bench:begin shop -->\n<!-- bench:end -->\n"
                            "<!-- bench:begin knees -->\n<!-- bench:end -->\n"
                            "<!-- bench:begin raw -->\n<!-- bench:end -->\n"
                            "<!-- bench:begin targets -->\n<!-- bench:end -->\n"
                            "<!-- bench:begin once -->\n<!-- bench:end -->\n"
                            "Prose after stays.\n";

/* bench/sample.json (made-up figures in the bench's format): every region
 * is rewritten from it, stale figures go, the prose around stays, and a
 * second run changes nothing. */
Test(bench, the_docs_generator_rewrites_its_regions_from_one_run)
{
    char dir[256], md[300];
    cr_assert(spt_tmpdir(dir, sizeof dir, "bench-docs"));
    snprintf(md, sizeof md, "%s/page.md", dir);
    s_write(md, s_doc);
    char *out = NULL;
    int rc = s_docs(s_src("bench/sample.json"), md, &out);
    cr_assert_eq(rc, 0, "bench-docs.py exited %d:\n%s", rc, out);
    free(out);
    char *text = spt_slurp(md);
    cr_expect(strstr(text, "9.2 M") == NULL && strstr(text, "21.2 M") == NULL, "stale: %s", text);
    cr_expect(strncmp(text, "# A page\nProse before stays.\n<!-- bench:begin stamp -->\n", 53) == 0,
              "%s", text);
    cr_expect(strstr(text, "<!-- bench:end -->\nProse between stays.\n<!-- bench:begin summary") !=
                  NULL,
              "%s", text);
    cr_expect(strstr(text, "<!-- bench:end -->\nProse after stays.\n") != NULL, "%s", text);
    /* where the figures come from: date, commit, machine, load, command */
    static const char *const want[] = {
        "2026-01-02 03:04:05 UTC", "`v0.0-fixture`", "`make bench-docs` ran `bin/bench --quick`",
        "Fixture CPU 9000, 2 cores", "7.25 / 6.50 / 4.75", "8.50 / 7.00 / 5.25",
        "Compare the ratios between cells of this run",
        /* the figures of the fixture's rows, as the docs write them */
        "| `mq` | 2.34 M (2.11 M–2.45 M) | 1.00× | 0.47 | 41 µs / 230 µs | ok |",
        "| `shm` | 3.07 M (2.98 M–3.12 M) | 1.31× |", "| `direct` table-lock, 4 processes | 3.65 M",
        "| `shm/cas/1x1/b200/1000` | 3.07 M (2.98 M–3.12 M) | 0.0021 |", "`starved:workers`",
        "98.7 k orders/s at 1,000 products", "**mq** 1.75 M orders/s (75 %",
        "| `raw-ring/6416B/b200` | 1,500 M", "| 0.03× | **missed** |", "| 3.53× | met |",
        "| — | not measured |", "| **0.65×** | 0.35 / 0.17 |"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_expect(strstr(text, want[i]) != NULL, "no '%s' in:\n%s", want[i], text);
    }
    cr_expect(strstr(text, "mq/cas/2x2/b200/1000` | 2.89 M") != NULL, "the scaling row: %s", text);
    cr_expect_null(strstr(text,
                          "| `mq/cas/1x1/b200/1000` | 2.34 M (2.11 M–2.45 M) | 0.021 | 0.47 | "
                          "41 µs / 230 µs (at 1.17 M/s) | ok |  |\n| `mq/cas/1x1"),
                   "a copied row twice: %s", text);
    /* again: the same page */
    rc = s_docs(s_src("bench/sample.json"), md, &out);
    cr_expect_eq(rc, 0, "%s", out);
    free(out);
    char *again = spt_slurp(md);
    cr_expect_str_eq(again, text, "a second run changed the page");
    free(again);
    free(text);
    spt_rmtree(dir);
}

/* A marker it cannot use is named with its file and line, and no file is
 * written. */
Test(bench, the_docs_generator_names_a_bad_marker)
{
    char dir[256], md[300];
    cr_assert(spt_tmpdir(dir, sizeof dir, "bench-docs-bad"));
    snprintf(md, sizeof md, "%s/page.md", dir);
    static const struct {
        const char *text, *says;
    } cases[] = {
        {"a\n<!-- bench:begin wishes -->\nx\n<!-- bench:end -->\n", ":2: unknown region 'wishes'"},
        {"a\n\n<!-- bench:begin raw -->\nold\n", ":3: region 'raw' has no bench:end"},
        {"<!-- bench:end -->\n", ":1: bench:end without a bench:begin"},
        {"no markers at all\n", "no bench:begin marker"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_write(md, cases[i].text);
        char *out = NULL;
        int rc = s_docs(s_src("bench/sample.json"), md, &out);
        cr_expect_eq(rc, 2, "case %zu: exit %d: %s", i, rc, out);
        cr_expect(strstr(out, cases[i].says) != NULL, "case %zu: %s", i, out);
        char *text = spt_slurp(md);
        cr_expect_str_eq(text, cases[i].text, "case %zu: the file was changed", i);
        free(text);
        free(out);
    }
    /* results that are not the bench's */
    s_write(md, s_doc);
    char other[300];
    snprintf(other, sizeof other, "%s/other.json", dir);
    s_write(other, "{\"format\":\"something-else\"}\n");
    char *out = NULL;
    cr_expect_eq(s_docs(other, md, &out), 1, "%s", out);
    cr_expect(strstr(out, "not the bench's results") != NULL, "%s", out);
    free(out);
    spt_rmtree(dir);
}
