/*
 * test_metrics — `broker --metrics`: a real broker serves /metrics on a
 * loopback port the kernel picks (PORT 0; the broker logs which), a real
 * producer sends orders, curl scrapes, and prometheus_client's own parser
 * (python3-prometheus-client) reads the text: the counters must be the
 * orders the producer was answered.  Also the address rules: a
 * non-loopback address needs --metrics-public, a bad one is named, and a
 * port in use stops the broker before its instance exists.
 */
#include "sp_testutil.h"

#include "sp_args.h"
#include "sp_error.h"
#include "sp_metrics.h"
#include "sp_time.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_RUN_MS 60000

/* Scrapes URL with curl and parses it with prometheus_client's parser; prints
 * one JSON object of what the test checks. */
static const char s_scrape_py[] =
    "import json, subprocess, sys\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "text = subprocess.run(['curl', '-sf', '--max-time', '5', sys.argv[1]], check=True,\n"
    "                      capture_output=True, text=True).stdout\n"
    "out = {}\n"
    "fam = {f.name: f for f in text_string_to_metric_families(text)}\n"
    "out['families'] = len(fam)\n"
    "out['up'] = int(fam['sp_broker_up'].samples[0].value)\n"
    "assert fam['sp_orders'].type == 'counter', fam['sp_orders'].type\n"
    "for s in fam['sp_orders'].samples:\n"
    "    if s.name == 'sp_orders_total':\n"
    "        out[s.labels['outcome']] = int(s.value)\n"
    "h = fam['sp_order_latency_seconds']\n"
    "assert h.type == 'histogram', h.type\n"
    "buckets = [(float(s.labels['le']), s.value) for s in h.samples\n"
    "           if s.name.endswith('_bucket')]\n"
    "counts = [v for _, v in buckets]\n"
    "assert counts == sorted(counts), 'buckets must be cumulative'\n"
    "assert buckets[-1][0] == float('inf'), buckets[-1]\n"
    "count = [s.value for s in h.samples if s.name.endswith('_count')][0]\n"
    "assert count == counts[-1], (count, counts[-1])\n"
    "out['latency_count'] = int(count)\n"
    "for s in fam['sp_workers'].samples:\n"
    "    out['workers_' + s.labels['state']] = int(s.value)\n"
    "out['events'] = int(fam['sp_events'].samples[0].value)\n"
    "out['restarts'] = int(sum(s.value for s in fam['sp_worker_restarts'].samples\n"
    "                          if s.name.endswith('_total')))\n"
    "out['depth_orders'] = int([s.value for s in fam['sp_queue_depth'].samples\n"
    "                          if s.labels['hop'] == 'orders'][0])\n"
    "out['journal_age'] = int('sp_journal_age_seconds' in fam and\n"
    "                         len(fam['sp_journal_age_seconds'].samples) == 1)\n"
    "print(json.dumps(out))\n";

/* Runs the scrape; returns its JSON line (malloc'd) or NULL with *err. */
static char *s_scrape(const char *url, char **err)
{
    const char *argv[] = {"/usr/bin/python3", "-c", s_scrape_py, url, NULL};
    char *out = NULL;
    int rc = spt_run(argv, T_RUN_MS, &out);
    if (rc != 0) {
        *err = out;
        return NULL;
    }
    return out;
}

/* The URL the broker logged ("metrics at http://...") from its log file. */
static bool s_url_from_log(const char *log, char *url, size_t cap)
{
    char *text = spt_slurp(log);
    const char *at = strstr(text, "metrics at ");
    bool ok = at != NULL;
    if (ok) {
        at += strlen("metrics at ");
        snprintf(url, cap, "%.*s", (int)strcspn(at, " \n"), at);
    }
    free(text);
    return ok;
}

Test(metrics, a_scrape_counts_the_orders_the_producer_was_answered)
{
    char inst[64], dir[128], cat[128], log[192], url[128];
    spt_instance(inst, sizeof inst, "metr");
    cr_assert(spt_tmpdir(dir, sizeof dir, "metr"));
    spt_catalogue(cat, sizeof cat, 20, 40); /* 800 units: most of 2000 purchases run out */
    snprintf(log, sizeof log, "%s/broker.log", dir);
    const char *extra[] = {"--catalogue", cat,           "--workers", "2",
                           "--metrics",   "127.0.0.1:0", "--fresh",   NULL};
    pid_t broker = spt_broker_start_in(inst, dir, log, extra);
    cr_assert_gt(broker, 0, "the broker did not start: %s", spt_slurp(log));
    cr_assert(s_url_from_log(log, url, sizeof url), "no 'metrics at' line: %s", spt_slurp(log));

    const char *load[] = {spt_bin("producer"), "--instance", inst,     "--count", "2000",
                          "--customers",       "2",          "--json", NULL};
    char *res = NULL;
    cr_assert_eq(spt_run(load, T_RUN_MS, &res), 0, "%s", res);
    long long sent = spt_json_num(res, "sent");
    long long accepted = spt_json_num(res, "accepted");
    long long oos = spt_json_num(res, "out_of_stock");
    cr_assert_eq(sent, 2000, "%s", res);
    cr_assert_eq(accepted + oos, sent, "every order answered, as accepted or out of stock: %s",
                 res);
    cr_assert_gt(oos, 0, "some orders must run out of stock: %s", res);

    /* the board follows the broker's STATS (ten a second): scrape until it
     * has every answer, or the bound passes */
    char *got = NULL, *err = NULL;
    uint64_t deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;
    do {
        free(got);
        got = s_scrape(url, &err);
        cr_assert_not_null(got, "the scrape or its parse failed: %s", err);
    } while (spt_json_num(got, "accepted") + spt_json_num(got, "out_of_stock") < sent &&
             sp_now_ns() < deadline && usleep(50 * 1000) == 0);

    cr_expect_eq(spt_json_num(got, "up"), 1, "%s", got);
    cr_expect_eq(spt_json_num(got, "accepted"), accepted, "%s\nproducer: %s", got, res);
    cr_expect_eq(spt_json_num(got, "out_of_stock"), oos, "%s\nproducer: %s", got, res);
    cr_expect_eq(spt_json_num(got, "invalid"), 0, "%s", got);
    cr_expect_eq(spt_json_num(got, "latency_count"), sent, "every answer measured: %s", got);
    cr_expect_eq(spt_json_num(got, "events"), accepted, "one stock change per purchase: %s", got);
    cr_expect_eq(spt_json_num(got, "workers_running"), 2, "%s", got);
    cr_expect_eq(spt_json_num(got, "restarts"), 0, "%s", got);
    cr_expect_eq(spt_json_num(got, "depth_orders"), 0, "nothing left queued: %s", got);
    cr_expect_eq(spt_json_num(got, "journal_age"), 1, "the journal was written: %s", got);
    free(got);
    free(res);

    cr_expect_eq(spt_stop(broker), 0);
    cr_expect_not(spt_leftovers(inst));
    unlink(cat);
    spt_rmtree(dir);
}

/* The broker's exit code and output for `--metrics SPEC` (plus `more`). */
static int s_refused(const char *spec, const char *more, char **out)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "metrno");
    const char *argv[] = {spt_bin("broker"), "--instance", inst, "--metrics", spec, more, NULL};
    int rc = spt_run(argv, SP_TEST_WAIT_MS, out); /* a refusal is at once */
    cr_expect_not(spt_leftovers(inst), "a refused start leaves nothing");
    return rc;
}

Test(metrics, a_non_loopback_address_needs_metrics_public)
{
    char *out = NULL;
    cr_expect_eq(s_refused("0.0.0.0:0", NULL, &out), SP_EXIT_USAGE, "%s", out);
    cr_expect(strstr(out, "'0.0.0.0:0' is not a loopback address") != NULL, "%s", out);
    cr_expect(strstr(out, "--metrics-public") != NULL, "says how: %s", out);
    free(out);
    cr_expect_eq(s_refused("*:0", NULL, &out), SP_EXIT_USAGE, "%s", out);
    free(out);
    cr_expect_eq(s_refused("bogus.example:9464", NULL, &out), SP_EXIT_USAGE, "%s", out);
    cr_expect(strstr(out, "'bogus.example' is not an IPv4 address") != NULL, "%s", out);
    free(out);
    cr_expect_eq(s_refused("70000", NULL, &out), SP_EXIT_USAGE, "%s", out);
    cr_expect(strstr(out, "the port must be a number from 0 to 65535") != NULL, "%s", out);
    free(out);
}

Test(metrics, a_port_in_use_stops_the_broker_before_its_instance_exists)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char spec[32];
    snprintf(spec, sizeof spec, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    char *out = NULL;
    cr_expect_eq(s_refused(spec, NULL, &out), 1, "%s", out);
    cr_expect(strstr(out, "cannot listen there") != NULL, "%s", out);
    cr_expect(strstr(out, " ready: ") == NULL, "the instance never started: %s", out);
    free(out);
    close(fd);
}

Test(metrics, parse_tells_loopback_from_the_network)
{
    struct sockaddr_storage ss;
    unsigned len = 0;
    bool lo = false;
    char why[256] = "";
    cr_expect_eq(sp_metrics_parse("9464", &ss, &len, &lo, why, sizeof why), 0, "%s", why);
    cr_expect(lo && ss.ss_family == AF_INET, "PORT alone is 127.0.0.1");
    cr_expect_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9464);
    cr_expect_eq(sp_metrics_parse("localhost:1", &ss, &len, &lo, why, sizeof why), 0, "%s", why);
    cr_expect(lo);
    cr_expect_eq(sp_metrics_parse("127.3.2.1:1", &ss, &len, &lo, why, sizeof why), 0, "%s", why);
    cr_expect(lo, "127.0.0.0/8 is loopback");
    cr_expect_eq(sp_metrics_parse("[::1]:1", &ss, &len, &lo, why, sizeof why), 0, "%s", why);
    cr_expect(lo && ss.ss_family == AF_INET6);
    cr_expect_eq(sp_metrics_parse("[::]:1", &ss, &len, &lo, why, sizeof why), 0, "%s", why);
    cr_expect_not(lo);
    cr_expect_eq(sp_metrics_parse("10.1.2.3:1", &ss, &len, &lo, why, sizeof why), 0, "%s", why);
    cr_expect_not(lo);
    cr_expect_eq(sp_metrics_parse(":1", &ss, &len, &lo, why, sizeof why), SP_E_USAGE);
    cr_expect(strstr(why, "the host is empty") != NULL, "%s", why);
    cr_expect_eq(sp_metrics_parse("1:x", &ss, &len, &lo, why, sizeof why), SP_E_USAGE);
    cr_expect_eq(sp_metrics_parse("[zz]:1", &ss, &len, &lo, why, sizeof why), SP_E_USAGE);
    cr_expect(strstr(why, "'zz' is not an IPv6 address") != NULL, "%s", why);
}
