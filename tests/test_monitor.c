/*
 * test_monitor — the monitor against a real broker, workers and customers:
 * --once and --json agree with the table; a monitor started in the middle of
 * a run (locally, through the broker's snapshot service, over tcp://)
 * converges to the exact stock; a monitor stopped with SIGSTOP counts exactly
 * the events it lost, shows STALE, resyncs and ends exact; line mode prints
 * changes, gaps, resyncs and summaries.  As a role object in the test's own
 * process: new names a missing instance and holds nothing, takes the first
 * snapshot; run prints the table once, or follows a load until the
 * broker's goodbye with every event counted; destroy is NULL-safe.
 */
#include "sp_testutil.h"

#include "sp_instance.h"
#include "sp_monitor.h"
#include "sp_mirror.h"
#include "sp_table.h"
#include "sp_time.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_MS    60000
#define T_POLL_MS 10 /* between looks at a file, the table or the screen */
#define T_STALL_ORDERS                                                                             \
    20000 /* stock changes the stopped monitor misses: far more than its                           \
           * queues hold (one event message per order with --batch 1) */

/* `monitor --once --json` of the instance (malloc'd). */
static char *s_once(const char *inst, const char *how)
{
    const char *argv[] = {spt_bin("monitor"), "--instance", inst, "--once", "--json", how, NULL};
    char *out = NULL;
    int rc = spt_run(argv, RUN_MS, &out);
    cr_assert_eq(rc, 0, "monitor --once %s: %s", how ? how : "", out);
    return out;
}

/* The JSON table straight from the shared table, for comparison. */
static char *s_table_json(const char *inst)
{
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    len += (size_t)snprintf(buf + len, cap - len, "[");
    bool first = true;
    for (uint32_t id = 1; id <= sp_table_capacity(t); id++) {
        sp_product_t p;
        uint32_t v;
        if (sp_table_read(t, id, &p, &v) < 0) {
            continue;
        }
        len += (size_t)snprintf(buf + len, cap - len,
                                "%s{\"id\":%u,\"name\":\"%s\",\"category\":\"%s\","
                                "\"weight_g\":%u,\"price_cents\":%llu,\"expiry\":%u,"
                                "\"stock\":%u,\"version\":%u}",
                                first ? "" : ",", p.id, p.name, p.category, p.weight_g,
                                (unsigned long long)p.price_cents, p.expiry, p.stock, v);
        first = false;
    }
    snprintf(buf + len, cap - len, "]\n");
    sp_table_close(&t);
    return buf;
}

/* The last line of a text that starts with `prefix` (malloc'd), or NULL. */
static char *s_last_line(const char *text, const char *prefix)
{
    const char *found = NULL;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            found = p;
        }
    }
    if (found == NULL) {
        return NULL;
    }
    size_t n = strcspn(found, "\n");
    char *line = malloc(n + 2);
    memcpy(line, found, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

/* Waits up to SP_TEST_WAIT_MS until the file at `path` holds `needle`;
 * false if it never does. */
static bool s_wait_text(const char *path, const char *needle)
{
    for (int waited = 0; waited < SP_TEST_WAIT_MS; waited += 10) {
        char *text = spt_slurp(path);
        bool found = strstr(text, needle) != NULL;
        free(text);
        if (found) {
            return true;
        }
        usleep(10 * 1000);
    }
    return false;
}

/* Stock changes (units sold plus restocked) the table of `inst` has seen. */
static uint64_t s_changes(const char *inst)
{
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    uint64_t n = 0;
    for (uint32_t id = 1; id <= sp_table_capacity(t); id++) {
        sp_tally_t y = spt_tally(t, id);
        n += (uint64_t)y.sold + y.restocked;
    }
    sp_table_close(&t);
    return n;
}

/* Units in stock in the table of `inst`. */
static uint64_t s_units(const char *inst)
{
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    uint64_t n = 0;
    for (uint32_t id = 1; id <= sp_table_capacity(t); id++) {
        sp_product_t p;
        if (sp_table_read(t, id, &p, NULL) == 0) {
            n += p.stock;
        }
    }
    sp_table_close(&t);
    return n;
}

/* Waits up to SP_TEST_WAIT_MS until the table of `inst` has seen more than
 * `than` stock changes, or until process `stop_at` (0: none) has exited;
 * returns the changes seen. */
static uint64_t s_wait_changes(const char *inst, uint64_t than, pid_t stop_at)
{
    uint64_t n = 0;
    for (int waited = 0; waited < SP_TEST_WAIT_MS; waited += T_POLL_MS) {
        n = s_changes(inst);
        siginfo_t si = {0};
        if (n > than ||
            (stop_at > 0 && waitid(P_PID, (id_t)stop_at, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
             si.si_pid == stop_at)) {
            break;
        }
        usleep(T_POLL_MS * 1000);
    }
    return n;
}

/* Waits up to SP_TEST_WAIT_MS until the last JSON summary in the file at
 * `path` shows the table's units in stock, with a view that is not stale:
 * the monitor has applied every event of a load that has ended. */
static bool s_wait_caught_up(const char *path, const char *inst)
{
    uint64_t want = s_units(inst);
    for (int waited = 0; waited < SP_TEST_WAIT_MS; waited += T_POLL_MS) {
        char *text = spt_slurp(path);
        char *summary = s_last_line(text, "{\"type\":\"summary\"");
        bool ok = summary != NULL && strstr(summary, "\"stale\":false") != NULL &&
                  spt_json_num(summary, "units_in_stock") == (long long)want;
        free(summary);
        free(text);
        if (ok) {
            return true;
        }
        usleep(T_POLL_MS * 1000);
    }
    return false;
}

static pid_t s_broker(const char *inst, const char *catalogue, const char *transport)
{
    const char *extra[] = {"--catalogue", catalogue, "--transport", transport,
                           "--workers",   "2",       NULL};
    pid_t b = spt_broker_start(inst, extra);
    cr_assert(b > 0, "broker did not start");
    return b;
}

/* A customer load in the background; returns its pid. */
static pid_t s_load(const char *inst, const char *rate, const char *duration, const char *out)
{
    const char *argv[] = {spt_bin("producer"),
                          "--instance",
                          inst,
                          "--customers",
                          "2",
                          "--rate",
                          rate,
                          "--duration",
                          duration,
                          "--restock",
                          "0.4",
                          "--qty",
                          "1-3",
                          "--json",
                          NULL};
    pid_t p = spt_spawn(argv, out);
    cr_assert(p > 0);
    return p;
}

Test(monitor, once_and_json_match_the_table_after_a_run, .timeout = 90)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "mononce");
    pid_t b = s_broker(inst, spt_data("products.csv"), "mq");
    const char *argv[] = {
        spt_bin("producer"), "--instance", inst,    "--customers", "3", "--count", "3000",
        "--restock",         "0.3",        "--qty", "1-4",         NULL};
    char *out = NULL;
    cr_assert_eq(spt_run(argv, RUN_MS, &out), 0, "%s", out);
    free(out);

    char *want = s_table_json(inst);
    char *local = s_once(inst, NULL);
    char *remote = s_once(inst, "--from-broker");
    cr_expect_str_eq(local, want);
    cr_expect_str_eq(remote, want, "the broker's snapshot service gives the same table");
    cr_expect(strstr(local, "\"name\":\"Nuggets de pollo\"") != NULL, "%s", local);

    const char *text[] = {spt_bin("monitor"), "--instance", inst, "--once", NULL};
    cr_assert_eq(spt_run(text, RUN_MS, &out), 0);
    cr_expect(strstr(out, "Camarones jumbo") != NULL && strstr(out, "STOCK") != NULL, "%s", out);
    free(out);
    free(want);
    free(local);
    free(remote);
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_expect_not(spt_leftovers(inst));
}

/* A monitor started after orders began must end with exactly the table the
 * broker had when the orders stopped. */
static void s_late(const char *tag, const char *transport, const char *how, bool tcp)
{
    char inst[64], cat[128], connect[64] = "", mout[128], lout[128];
    spt_instance(inst, sizeof inst, tag);
    spt_catalogue(cat, sizeof cat, 200, 500);
    pid_t b;
    if (tcp) {
        /* ports below the kernel's ephemeral range, tried again elsewhere
         * when taken (a fixed port in that range once met a connection's) */
        const char *extra[] = {"--catalogue", cat, "--transport", transport,
                               "--workers",   "2", NULL};
        unsigned port = 0;
        b = spt_broker_start_tcp(inst, NULL, extra, &port);
        cr_assert(b > 0, "broker did not start");
        snprintf(connect, sizeof connect, "tcp://127.0.0.1:%u", port);
    } else {
        b = s_broker(inst, cat, transport);
    }
    snprintf(lout, sizeof lout, "/tmp/%s.load", inst);
    snprintf(mout, sizeof mout, "/tmp/%s.mon", inst);
    pid_t load = s_load(inst, "3000", "5s", lout);
    /* the monitor starts once orders have changed the stock */
    cr_assert_gt(s_wait_changes(inst, 0, load), 0, "no order changed the stock in %d ms: %s",
                 SP_TEST_WAIT_MS, spt_slurp(lout));
    const char *mon_local[] = {spt_bin("monitor"), "--instance", inst,  "--json", "--quiet",
                               "--final",          "--interval", "200", how,      NULL};
    const char *mon_tcp[] = {spt_bin("monitor"), "--connect",  connect, "--json", "--quiet",
                             "--final",          "--interval", "200",   NULL};
    pid_t mon = spt_spawn(tcp ? mon_tcp : mon_local, mout);
    /* its first summary says it is following (on a loaded machine that may
     * take a moment; the load runs for seconds more) */
    cr_expect(s_wait_text(mout, "\"type\":\"summary\""), "the monitor printed no summary: %s",
              spt_slurp(mout));
    cr_assert_eq(spt_wait(load, RUN_MS), 0, "load: %s", spt_slurp(lout));
    cr_expect(s_wait_caught_up(mout, inst),
              "the monitor's summaries never showed the table's %llu units: %s",
              (unsigned long long)s_units(inst), spt_slurp(mout));
    char *want = s_table_json(inst);
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_assert_eq(spt_wait(mon, RUN_MS), 0, "monitor: %s", spt_slurp(mout));
    char *text = spt_slurp(mout);
    char *table = s_last_line(text, "[");
    cr_assert_not_null(table, "no final table in:\n%.2000s", text);
    cr_expect_str_eq(table, want, "the late monitor converged to the exact stock");
    char *summary = s_last_line(text, "{\"type\":\"summary\"");
    cr_assert_not_null(summary, "%s", text);
    cr_expect(strstr(summary, "\"stale\":false") != NULL, "%s", summary);
    cr_expect_gt(spt_json_num(summary, "events"), 0, "it followed part of the run: %s", summary);
    cr_expect_gt(spt_json_num(summary, "accepted"), 1000, "%s", summary);
    cr_expect_eq(spt_json_num(summary, "snapshots"), 1, "%s", summary);
    free(summary);
    free(table);
    free(text);
    free(want);
    unlink(mout);
    unlink(lout);
    unlink(cat);
    cr_expect_not(spt_leftovers(inst));
}

Test(monitor, late_monitor_converges_mq, .timeout = 90)
{
    s_late("monlatemq", "mq", NULL, false);
}

Test(monitor, late_monitor_converges_zmq_through_the_snapshot_service, .timeout = 90)
{
    s_late("monlatez", "zmq", "--from-broker", false);
}

Test(monitor, late_monitor_converges_over_tcp, .timeout = 90)
{
    s_late("monlatetcp", "zmq", NULL, true);
}

/* SIGSTOP the monitor while orders flow: it must count exactly the events it
 * lost, say STALE, resync on its own when resumed and end exact. */
Test(monitor, stalled_monitor_counts_the_loss_resyncs_and_ends_exact, .timeout = 120)
{
    char inst[64], cat[128], mout[128], lout[128];
    spt_instance(inst, sizeof inst, "monstall");
    spt_catalogue(cat, sizeof cat, 100, 1000000);
    pid_t b = s_broker(inst, cat, "mq");
    snprintf(mout, sizeof mout, "/tmp/%s.mon", inst);
    snprintf(lout, sizeof lout, "/tmp/%s.load", inst);
    const char *mon_argv[] = {spt_bin("monitor"), "--instance", inst,  "--json", "--quiet",
                              "--final",          "--interval", "200", NULL};
    pid_t mon = spt_spawn(mon_argv, mout);
    /* its first summary: it has its snapshot and is subscribed */
    cr_assert(s_wait_text(mout, "\"type\":\"summary\""), "the monitor printed no summary: %s",
              spt_slurp(mout));
    /* unbatched orders make one event message per order: far more than the
     * monitor's queues hold while it is stopped */
    const char *argv[] = {spt_bin("producer"),
                          "--instance",
                          inst,
                          "--customers",
                          "2",
                          "--duration",
                          "4s",
                          "--rate",
                          "20000",
                          "--batch",
                          "1",
                          "--restock",
                          "0.5",
                          "--json",
                          NULL};
    pid_t load = spt_spawn(argv, lout);
    /* stop it once orders flow, and keep it stopped while T_STALL_ORDERS
     * more change the stock (or the load ends first) */
    uint64_t before = s_wait_changes(inst, 0, load);
    cr_assert_gt(before, 0, "no order changed the stock in %d ms: %s", SP_TEST_WAIT_MS,
                 spt_slurp(lout));
    kill(mon, SIGSTOP);
    uint64_t stalled = s_wait_changes(inst, before + T_STALL_ORDERS, load) - before;
    kill(mon, SIGCONT);
    cr_assert_eq(spt_wait(load, RUN_MS), 0, "%s", spt_slurp(lout));
    cr_expect(s_wait_caught_up(mout, inst),
              "the monitor (stopped for %llu changes) never showed the table's %llu units "
              "again: %.3000s",
              (unsigned long long)stalled, (unsigned long long)s_units(inst), spt_slurp(mout));
    char *want = s_table_json(inst);
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_assert_eq(spt_wait(mon, RUN_MS), 0);
    char *text = spt_slurp(mout);
    char *report = spt_slurp(lout);
    long long accepted = spt_json_num(report, "accepted");
    char *summary = s_last_line(text, "{\"type\":\"summary\"");
    cr_assert_not_null(summary, "%.3000s", text);
    long long events = spt_json_num(summary, "events");
    long long gaps = spt_json_num(summary, "gaps");
    cr_expect_gt(gaps, 0, "the stall lost events: %s", summary);
    cr_expect_eq(events + gaps, accepted,
                 "received + missed = every stock change (%lld + %lld vs %lld accepted)", events,
                 gaps, accepted);
    cr_expect(strstr(text, "{\"type\":\"gap\"") != NULL, "a gap line was printed");
    cr_expect(strstr(text, "{\"type\":\"resync\"") != NULL, "a resync line was printed");
    cr_expect_geq(spt_json_num(summary, "resyncs"), 1, "%s", summary);
    cr_expect(strstr(summary, "\"stale\":false") != NULL, "%s", summary);
    char *table = s_last_line(text, "[");
    cr_assert_not_null(table);
    cr_expect_str_eq(table, want, "exact again after the resync");
    free(table);
    free(summary);
    free(report);
    free(text);
    free(want);
    unlink(mout);
    unlink(lout);
    unlink(cat);
    cr_expect_not(spt_leftovers(inst));
}

Test(monitor, line_mode_prints_changes_and_summaries, .timeout = 90)
{
    char inst[64], mout[128];
    spt_instance(inst, sizeof inst, "monline");
    pid_t b = s_broker(inst, spt_data("products.csv"), "zmq");
    snprintf(mout, sizeof mout, "/tmp/%s.mon", inst);
    const char *mon_argv[] = {spt_bin("monitor"), "--instance", inst, "--interval", "100", NULL};
    pid_t mon = spt_spawn(mon_argv, mout);
    /* the monitor prints summaries only once its first message from the
     * broker's XPUB has arrived: from then on its subscription is live
     * (workers publish through the broker's XSUB, subscribed from the
     * start), so the buy's event cannot be lost to a slow joiner */
    cr_expect(s_wait_text(mout, "summary: "), "the monitor never subscribed: %s", spt_slurp(mout));
    const char *buy[] = {spt_bin("producer"), "--instance", inst, "buy", "8", "2", NULL};
    char *out = NULL;
    cr_assert_eq(spt_run(buy, RUN_MS, &out), 0, "%s", out);
    free(out);
    /* the event, and a summary that counts the order, before the stop */
    cr_expect(s_wait_text(mout, "5 -> 3"), "no event for the buy: %s", spt_slurp(mout));
    cr_expect(s_wait_text(mout, "accepted 1,"), "no summary counts the buy: %s", spt_slurp(mout));
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_assert_eq(spt_wait(mon, RUN_MS), 0);
    char *text = spt_slurp(mout);
    cr_expect(strstr(text, "stock    8 Camarones jumbo") != NULL, "%s", text);
    cr_expect(strstr(text, "5 -> 3") != NULL, "%s", text);
    cr_expect(strstr(text, "summary: ") != NULL, "%s", text);
    cr_expect(strstr(text, "accepted 1,") != NULL, "%s", text);
    cr_expect(strstr(text, "end of stream") != NULL, "%s", text);
    cr_expect(strstr(text, "STALE") == NULL, "%s", text);
    free(text);
    unlink(mout);
}

Test(monitor, bad_flags_and_missing_instances_are_named, .timeout = 30)
{
    char *out = NULL;
    const char *a[] = {spt_bin("monitor"), "--interval", "abc", NULL};
    cr_expect_eq(spt_run(a, RUN_MS, &out), 2);
    cr_expect(strstr(out, "--interval") != NULL, "%s", out);
    free(out);
    const char *b[] = {spt_bin("monitor"), "--connect", "udp://x:1", "--plain", NULL};
    cr_expect_eq(spt_run(b, RUN_MS, &out), 1);
    cr_expect(strstr(out, "tcp://HOST:PORT") != NULL, "%s", out);
    free(out);
    const char *c[] = {spt_bin("monitor"), "--instance", "sp-nobody-here", "--wait", "100",
                       "--plain",          NULL};
    cr_expect_eq(spt_run(c, RUN_MS, &out), 1);
    cr_expect(strstr(out, "no broker runs instance 'sp-nobody-here'") != NULL, "%s", out);
    free(out);
}

/* --- the full-screen console, driven through tmux ---------------------------- */

#define TMUX        "/usr/bin/tmux"
#define T_HELP_LINE "filter by name or category" /* a line only the help shows */

/* Runs `tmux -L sock args...`; returns its exit code, output in *out if asked. */
static int s_tmux(const char *sock, const char *a1, const char *a2, const char *a3, const char *a4,
                  const char *a5, char **out)
{
    const char *argv[] = {TMUX, "-L", sock, a1, a2, a3, a4, a5, NULL};
    char *buf = NULL;
    int rc = spt_run(argv, RUN_MS, &buf);
    if (out != NULL) {
        *out = buf;
    } else {
        free(buf);
    }
    return rc;
}

static char *s_screen(const char *sock)
{
    char *out = NULL;
    s_tmux(sock, "capture-pane", "-p", "-t", "mon", NULL, &out);
    return out;
}

/* Waits up to SP_TEST_WAIT_MS until the console's screen holds `want`
 * (NULL: anything), lacks `unwanted` (NULL: nothing) and has at most
 * `max_lines` lines (0: any number); *last gets the last screen seen (the
 * caller frees it).  False if the screen never did. */
static bool s_wait_screen(const char *sock, const char *want, const char *unwanted,
                          unsigned max_lines, char **last)
{
    for (int waited = 0; waited < SP_TEST_WAIT_MS; waited += T_POLL_MS) {
        free(*last);
        *last = s_screen(sock);
        unsigned lines = 0;
        for (size_t i = 0; (*last)[i] != '\0'; i++) {
            lines += (*last)[i] == '\n';
        }
        if ((want == NULL || strstr(*last, want) != NULL) &&
            (unwanted == NULL || strstr(*last, unwanted) == NULL) &&
            (max_lines == 0 || lines <= max_lines)) {
            return true;
        }
        usleep(T_POLL_MS * 1000);
    }
    return false;
}

/* Stock the console shows for the product named `name`, or -1. */
static long s_shown_stock(const char *screen, const char *name)
{
    const char *line = strstr(screen, name);
    if (line == NULL) {
        return -1;
    }
    /* the stock follows the expiry date (YYYY-MM-DD) on that line */
    const char *end = strchr(line, '\n');
    for (const char *p = line; *p && (end == NULL || p < end); p++) {
        int y, m, d, n;
        long stock;
        if (sscanf(p, "%4d-%2d-%2d %ld%n", &y, &m, &d, &stock, &n) == 4 && y > 1900) {
            return stock;
        }
    }
    return -1;
}

/* Polls the screen (up to SP_TEST_WAIT_MS) until every product shows the
 * table's stock. */
static bool s_screen_matches(const char *sock, const char *inst, char **last)
{
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    for (int waited = 0; waited < SP_TEST_WAIT_MS; waited += T_POLL_MS) {
        sp_table_t *t = NULL;
        cr_assert_eq(sp_table_open(&t, names.table, false), 0);
        free(*last);
        *last = s_screen(sock);
        bool all = true;
        for (uint32_t id = 1; id <= sp_table_capacity(t) && all; id++) {
            sp_product_t p;
            if (sp_table_read(t, id, &p, NULL) == 0) {
                all = s_shown_stock(*last, p.name) == (long)p.stock;
            }
        }
        sp_table_close(&t);
        if (all) {
            return true;
        }
        usleep(T_POLL_MS * 1000);
    }
    return false;
}

Test(monitor, console_under_tmux_shows_exact_stock_reacts_to_keys_and_resizes, .timeout = 120)
{
    char inst[64], sock[80], cmd[512];
    spt_instance(inst, sizeof inst, "montmux");
    snprintf(sock, sizeof sock, "%s", inst);
    pid_t b = s_broker(inst, spt_data("products.csv"), "zmq");
    snprintf(cmd, sizeof cmd, "%s --instance %s", spt_bin("monitor"), inst);
    const char *argv[] = {TMUX, "-L",  sock, "new-session", "-d", "-s", "mon",
                          "-x", "120", "-y", "40",          cmd,  NULL};
    char *out = NULL;
    cr_assert_eq(spt_run(argv, RUN_MS, &out), 0, "tmux: %s", out);
    free(out);

    /* orders flow while the console runs */
    const char *load[] = {
        spt_bin("producer"), "--instance", inst,        "--customers", "2",     "--rate", "100",
        "--duration",        "2s",         "--restock", "0.4",         "--qty", "1-3",    NULL};
    cr_assert_eq(spt_run(load, RUN_MS, &out), 0, "%s", out);
    free(out);
    char *screen = NULL;
    cr_expect(s_screen_matches(sock, inst, &screen), "console and table differ:\n%s", screen);
    cr_expect(strstr(screen, "Camarones jumbo") != NULL && strstr(screen, "Mariscos") != NULL, "%s",
              screen);
    cr_expect(strstr(screen, "STALE") == NULL, "%s", screen);
    cr_expect(strstr(screen, "w1") != NULL && strstr(screen, "running") != NULL, "%s", screen);

    /* sort by stock: the lowest stock is now the first row */
    s_tmux(sock, "send-keys", "-t", "mon", "s", NULL, NULL);
    cr_expect(s_wait_screen(sock, "sort: stock", NULL, 0, &screen), "not sorted by stock:\n%s",
              screen);
    long prev = -1;
    for (const char *p = strstr(screen, "\n"); p != NULL; p = strchr(p + 1, '\n')) {
        int id, y, m, d, n;
        long stock;
        char name[64];
        /* after the marker column (X, E, ! or a space) */
        if (sscanf(p + 2, "%d %63s", &id, name) == 2 && id >= 1 && id <= 10) {
            const char *date = p + 1;
            while (*date && *date != '\n' &&
                   sscanf(date, "%4d-%2d-%2d %ld%n", &y, &m, &d, &stock, &n) != 4) {
                date++;
            }
            if (*date && *date != '\n') {
                cr_expect_geq(stock, prev, "rows not in stock order:\n%s", screen);
                prev = stock;
            }
        }
    }
    cr_expect_geq(prev, 0, "no rows parsed:\n%s", screen);

    /* filter by name */
    s_tmux(sock, "send-keys", "-t", "mon", "/", NULL, NULL);
    s_tmux(sock, "send-keys", "-t", "mon", "-l", "pan de ajo", NULL);
    s_tmux(sock, "send-keys", "-t", "mon", "Enter", NULL, NULL);
    cr_expect(s_wait_screen(sock, "Pan de ajo grande", "Camarones jumbo", 0, &screen),
              "the filter did not apply:\n%s", screen);
    cr_expect(strstr(screen, "Pan de ajo grande") != NULL && strstr(screen, "Pan de ajo chico"),
              "%s", screen);
    cr_expect(strstr(screen, "Camarones jumbo") == NULL, "filtered out:\n%s", screen);

    /* help, then resize to something small, then back */
    s_tmux(sock, "send-keys", "-t", "mon", "Escape", NULL, NULL);
    s_tmux(sock, "send-keys", "-t", "mon", "?", NULL, NULL);
    cr_expect(s_wait_screen(sock, T_HELP_LINE, NULL, 0, &screen), "no help:\n%s", screen);
    cr_expect(strstr(screen, "quit") != NULL && strstr(screen, "filter") != NULL, "%s", screen);
    s_tmux(sock, "send-keys", "-t", "mon", "?", NULL, NULL);
    s_tmux(sock, "resize-window", "-t", "mon", "-x", "60", NULL);
    s_tmux(sock, "resize-window", "-t", "mon", "-y", "12", NULL);
    /* the help closed and the screen redrawn at 12 lines, header first */
    cr_expect(s_wait_screen(sock, "stockpipe", T_HELP_LINE, 12, &screen),
              "header after a resize:\n%s", screen);
    s_tmux(sock, "resize-window", "-t", "mon", "-x", "130", NULL);
    s_tmux(sock, "resize-window", "-t", "mon", "-y", "40", NULL);
    s_tmux(sock, "send-keys", "-t", "mon", "/", NULL, NULL);
    s_tmux(sock, "send-keys", "-t", "mon", "Escape", NULL, NULL); /* clears the filter */
    s_tmux(sock, "send-keys", "-t", "mon", "i", NULL, NULL);
    cr_expect(s_screen_matches(sock, inst, &screen), "after the resize:\n%s", screen);

    /* q quits: the session (whose only command was the monitor) ends */
    s_tmux(sock, "send-keys", "-t", "mon", "q", NULL, NULL);
    bool gone = false;
    for (int waited = 0; waited < SP_TEST_WAIT_MS && !gone; waited += T_POLL_MS) {
        usleep(T_POLL_MS * 1000);
        gone = s_tmux(sock, "has-session", "-t", "mon", NULL, NULL, NULL) != 0;
    }
    cr_expect(gone, "the console did not quit on q");
    s_tmux(sock, "kill-server", NULL, NULL, NULL, NULL, NULL);
    free(screen);
    cr_expect_eq(WEXITSTATUS(spt_stop(b)), 0);
    cr_expect_not(spt_leftovers(inst));
}

/* --- the monitor as a role object, in the test's own process -------------- */

#define M_PRODUCTS 5
#define M_STOCK    40
#define M_ORDERS   120
#define M_WHY      512

Test(monitor, destroy_is_null_safe_and_nulls_the_pointer)
{
    sp_monitor_destroy(NULL);
    sp_monitor_t *m = NULL;
    sp_monitor_destroy(&m);
    cr_expect_null(m);
}

Test(monitor, new_names_an_instance_that_is_not_there_after_its_wait, .timeout = 30)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "mnone");
    sp_monitor_cfg_t cfg = {.instance = inst, .wait_ms = 300};
    static char sentinel;
    sp_monitor_t *m = (sp_monitor_t *)&sentinel; /* must come back NULL */
    char why[M_WHY] = "";
    cr_expect_lt(sp_monitor_new(&m, &cfg, stdout, why, sizeof why), 0);
    cr_expect_null(m);
    cr_expect(strstr(why, inst) != NULL, "the instance is named: %s", why);
}

/* The number of `"stock":N` rows in a --once --json answer, and their sum. */
static unsigned s_json_rows(const char *json, uint64_t *stock_sum)
{
    unsigned rows = 0;
    *stock_sum = 0;
    for (const char *p = strstr(json, "\"stock\":"); p != NULL; p = strstr(p + 1, "\"stock\":")) {
        *stock_sum += strtoull(p + 8, NULL, 10);
        rows++;
    }
    return rows;
}

Test(monitor, a_monitor_object_prints_the_table_once, .timeout = 60)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "monce");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "mq", 1, M_PRODUCTS, M_STOCK),
              "broker did not become ready");
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    sp_monitor_cfg_t cfg = {
        .instance = inst, .wait_ms = SP_TEST_WAIT_MS, .once = true, .json = true};
    sp_monitor_t *m = NULL;
    char why[M_WHY] = "";
    cr_assert_eq(sp_monitor_new(&m, &cfg, out, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_monitor_stats(m)->snapshots, 1, "new takes the first snapshot");
    cr_expect_not(sp_monitor_stats(m)->stale, "and the view is exact");
    cr_expect_eq(sp_monitor_run(m, why, sizeof why), 0, "%s", why);
    sp_monitor_destroy(&m);
    cr_expect_null(m);
    fclose(out);
    uint64_t sum = 0;
    cr_expect_eq(s_json_rows(text, &sum), M_PRODUCTS, "%s", text);
    cr_expect_eq(sum, (uint64_t)M_PRODUCTS * M_STOCK, "%s", text);
    free(text);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

typedef struct {
    sp_monitor_t *m;
    int rc;
    char why[M_WHY];
} m_runner_t;

static void *s_monitor_run(void *arg)
{
    m_runner_t *r = arg;
    r->rc = sp_monitor_run(r->m, r->why, sizeof r->why);
    return NULL;
}

Test(monitor, a_monitor_object_follows_a_load_until_the_broker_says_goodbye, .timeout = 90)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "mfollow");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "mq", 2, M_PRODUCTS, M_STOCK * 100),
              "broker did not become ready");
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    sp_monitor_cfg_t cfg = {.instance = inst,
                            .wait_ms = SP_TEST_WAIT_MS,
                            .quiet = true,
                            .final_table = true,
                            .json = true};
    m_runner_t r = {.rc = 1};
    char why[M_WHY] = "";
    cr_assert_eq(sp_monitor_new(&r.m, &cfg, out, why, sizeof why), 0, "%s", why);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_monitor_run, &r), 0);

    char count[16];
    snprintf(count, sizeof count, "%d", M_ORDERS);
    const char *load[] = {spt_bin("producer"), "--instance", inst, "--count", count, NULL};
    char *lout = NULL;
    cr_expect_eq(spt_run(load, RUN_MS, &lout), 0, "%s", lout);
    free(lout);
    const char *bad = spt_shop_stop(&shop); /* its goodbye ends the run */
    cr_expect_null(bad, "%s", bad);
    pthread_join(th, NULL);
    cr_expect_eq(r.rc, 0, "%s", r.why);
    const sp_monitor_stats_t *st = sp_monitor_stats(r.m);
    cr_expect(st->eos, "the broker's goodbye was seen");
    cr_expect_eq(st->events, M_ORDERS, "one event per order: %llu", (unsigned long long)st->events);
    cr_expect_eq(st->gaps, 0);
    cr_expect_not(st->stale);
    sp_monitor_destroy(&r.m);
    fclose(out);
    uint64_t sum = 0;
    cr_expect_eq(s_json_rows(text, &sum), M_PRODUCTS, "the final table: %s", text);
    cr_expect_eq(sum, (uint64_t)M_PRODUCTS * M_STOCK * 100 - M_ORDERS,
                 "the final table holds the load (one unit an order): %s", text);
    free(text);
}

/* A worker killed between applying an order and publishing its event
 * leaves a change no event carries.  Injected here deterministically: the
 * test applies a purchase to the table itself (no event), then kills worker
 * 1.  The broker counts the death in STATS once it has settled what the
 * worker left; the monitor, having learned it, takes a snapshot, and its
 * view equals the table again. */
static void s_unpublished_change_is_repaired(const char *transport, bool from_broker)
{
    char inst[64];
    spt_instance(inst, sizeof inst, from_broker ? "mdeadz" : "mdeadq");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, transport, 2, M_PRODUCTS, M_STOCK),
              "broker did not become ready");
    sp_monitor_cfg_t cfg = {
        .instance = inst, .wait_ms = SP_TEST_WAIT_MS, .quiet = true, .from_broker = from_broker};
    sp_monitor_t *m = NULL;
    char why[M_WHY] = "";
    FILE *out = fopen("/dev/null", "w");
    cr_assert_not_null(out);
    cr_assert_eq(sp_monitor_new(&m, &cfg, out, why, sizeof why), 0, "%s", why);
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *table = NULL;
    cr_assert_eq(sp_table_open(&table, names.table, true), 0);
    sp_table_hdr_t *hdr = sp_table_hdr(table);
    /* the monitor exact, and worker 1 up */
    const sp_mstate_t *st = sp_mirror_state(sp_monitor_mirror(m));
    uint64_t deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;
    pid_t victim = 0;
    while ((st->stale || !sp_mirror_stats(sp_monitor_mirror(m))->valid || victim <= 0) &&
           sp_now_ns() < deadline) {
        cr_assert_eq(sp_monitor_step(m, T_POLL_MS, why, sizeof why), 0, "%s", why);
        victim = (pid_t)atomic_load(&hdr->worker[0].pid);
    }
    cr_assert_not(st->stale, "the monitor never had its first snapshot");
    cr_assert_gt(victim, 0, "worker 1 did not start");
    sp_change_t chg;
    cr_assert_eq(sp_table_apply(table, SP_SYNC_CAS, SP_ORDER_PURCHASE, 1, 3, &chg), 0);
    kill(victim, SIGKILL);

    /* until the broker has restarted the worker and the monitor has heard
     * STATS made after that, and is not stale (or the bound passes) */
    deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;
    uint64_t restarted_stats = 0;
    while (sp_now_ns() < deadline) {
        cr_assert_eq(sp_monitor_step(m, T_POLL_MS, why, sizeof why), 0, "%s", why);
        const sp_shopstats_t *ss = sp_mirror_stats(sp_monitor_mirror(m));
        if (ss->worker[1].restarts >= 1 && restarted_stats == 0) {
            restarted_stats = ss->time_ns;
        }
        /* two STATS later (200 ms) a monitor that learned it has resynced */
        if (restarted_stats != 0 && ss->time_ns > restarted_stats + 200 * SP_NS_PER_MS &&
            !st->stale && !st->snapshot_running) {
            break;
        }
    }
    cr_expect_neq(restarted_stats, 0, "the broker did not restart worker 1");
    cr_expect_eq(st->deaths, 1, "the monitor learned of %llu deaths",
                 (unsigned long long)st->deaths);
    cr_expect_not(st->stale, "the monitor is still stale");
    for (uint32_t id = 1; id <= M_PRODUCTS; id++) {
        uint32_t version = 0;
        sp_product_t p;
        cr_assert_eq(sp_table_read(table, id, &p, &version), 0);
        const sp_mrow_t *r = sp_mirror_row(sp_monitor_mirror(m), id);
        cr_assert_not_null(r);
        cr_expect(r->known && r->stock == p.stock && r->version == version,
                  "product %u: the monitor has stock %u (version %u), the table %u (version %u)",
                  id, r->stock, r->version, p.stock, version);
    }
    cr_expect_eq(st->gaps, 0, "no event was numbered and lost");
    sp_table_close(&table);
    sp_monitor_destroy(&m);
    fclose(out);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}

Test(monitor, a_change_a_killed_worker_never_published_is_repaired_mq, .timeout = 90)
{
    s_unpublished_change_is_repaired("mq", false);
}

Test(monitor, a_change_a_killed_worker_never_published_is_repaired_zmq_snapshot_service,
     .timeout = 90)
{
    s_unpublished_change_is_repaired("zmq", true);
}

/* The broker's own release of an expired hold publishes no event: STATS
 * count it (UNPUBLISHED [0]) and the monitor resyncs, ending equal to the
 * table. */
Test(monitor, a_hold_the_broker_released_unannounced_is_repaired, .timeout = 90)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "mhold");
    spt_shop_t shop;
    cr_assert(spt_shop_start(&shop, inst, "mq", 1, M_PRODUCTS, M_STOCK),
              "broker did not become ready");
    sp_monitor_cfg_t cfg = {.instance = inst, .wait_ms = SP_TEST_WAIT_MS, .quiet = true};
    sp_monitor_t *m = NULL;
    char why[M_WHY] = "";
    FILE *out = fopen("/dev/null", "w");
    cr_assert_not_null(out);
    cr_assert_eq(sp_monitor_new(&m, &cfg, out, why, sizeof why), 0, "%s", why);
    const sp_mstate_t *st = sp_mirror_state(sp_monitor_mirror(m));
    uint64_t deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (st->stale && sp_now_ns() < deadline) {
        cr_assert_eq(sp_monitor_step(m, T_POLL_MS, why, sizeof why), 0, "%s", why);
    }
    cr_assert_not(st->stale, "the monitor never had its first snapshot");

    const char *hold[] = {spt_bin("producer"), "--instance", inst, "reserve", "1", "2", "1", NULL};
    char *hout = NULL;
    cr_assert_eq(spt_run(hold, RUN_MS, &hout), 0, "%s", hout);
    free(hout);
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *table = NULL;
    cr_assert_eq(sp_table_open(&table, names.table, false), 0);
    /* until the hold is back in stock, then STATS made 200 ms after that */
    deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;
    uint64_t released_at = 0;
    while (sp_now_ns() < deadline) {
        cr_assert_eq(sp_monitor_step(m, T_POLL_MS, why, sizeof why), 0, "%s", why);
        if (released_at == 0 && spt_tally(table, 1).held == 0) {
            released_at = sp_now_ns();
        }
        const sp_shopstats_t *ss = sp_mirror_stats(sp_monitor_mirror(m));
        if (released_at != 0 && ss->time_ns > released_at + 200 * SP_NS_PER_MS && !st->stale &&
            !st->snapshot_running) {
            break;
        }
    }
    cr_expect_neq(released_at, 0, "the hold was not released");
    cr_expect_geq(st->releases, 1, "the monitor did not learn of the release");
    sp_product_t p;
    uint32_t version = 0;
    cr_assert_eq(sp_table_read(table, 1, &p, &version), 0);
    const sp_mrow_t *r = sp_mirror_row(sp_monitor_mirror(m), 1);
    cr_expect(r->stock == p.stock && r->version == version && p.stock == M_STOCK,
              "product 1: the monitor has stock %u (version %u), the table %u (version %u)",
              r->stock, r->version, p.stock, version);
    sp_table_close(&table);
    sp_monitor_destroy(&m);
    fclose(out);
    const char *bad = spt_shop_stop(&shop);
    cr_expect_null(bad, "%s", bad);
}
