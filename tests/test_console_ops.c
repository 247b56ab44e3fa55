/*
 * test_console_ops — the full-screen console as a shop operator reads it,
 * driven through tmux: units sold, held, revenue and the products past
 * their expiry date in the header; per product what was sold and held,
 * its out rate and when it sells out at that rate; bars that show without
 * colour; a worker's restarts; and worker states that say "unknown" once
 * the broker is silent instead of staying "running".
 */
#include "sp_testutil.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TMUX      "/usr/bin/tmux"
#define T_RUN_MS  30000
#define T_POLL_MS 100

/* tmux -L sock with up to twelve more arguments; exit code, output if asked. */
static int s_tmux(const char *sock, const char *const *args, char **out)
{
    const char *argv[16] = {TMUX, "-L", sock};
    size_t n = 3;
    for (; args[n - 3] != NULL && n < 15; n++) {
        argv[n] = args[n - 3];
    }
    argv[n] = NULL;
    char *got = NULL;
    int rc = spt_run(argv, T_RUN_MS, &got);
    if (out != NULL) {
        *out = got;
    } else {
        free(got);
    }
    return rc;
}

/* Waits (bounded) until the screen holds every string of `want`; *screen
 * keeps the last screen seen (the caller frees it). */
static bool s_wait_for(const char *sock, const char *const *want, char **screen)
{
    static const char *const capture[] = {"capture-pane", "-p", "-t", "mon", NULL};
    for (int waited = 0; waited < SP_TEST_WAIT_MS * 2; waited += T_POLL_MS) {
        free(*screen);
        *screen = NULL;
        s_tmux(sock, capture, screen);
        bool all = *screen != NULL;
        for (size_t i = 0; all && want[i] != NULL; i++) {
            all = strstr(*screen, want[i]) != NULL;
        }
        if (all) {
            return true;
        }
        usleep(T_POLL_MS * 1000);
    }
    return false;
}

/* The line of the screen that shows product `name` (static buffer). */
static const char *s_line(const char *screen, const char *name)
{
    static char line[512];
    const char *p = screen != NULL ? strstr(screen, name) : NULL;
    if (p == NULL) {
        return "";
    }
    while (p > screen && p[-1] != '\n') {
        p--;
    }
    size_t n = strcspn(p, "\n");
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
    return line;
}

static int s_once(const char *inst, const char *verb, const char *id, const char *qty,
                  const char *secs)
{
    const char *argv[] = {spt_bin("producer"), "--instance", inst, verb, id, qty, secs, NULL};
    char *out = NULL;
    int rc = spt_run(argv, T_RUN_MS, &out);
    cr_log_info("%s", out);
    free(out);
    return rc;
}

Test(console_ops, the_console_shows_what_an_operator_looks_for, .timeout = 180)
{
    char inst[64], cmd[512];
    spt_instance(inst, sizeof inst, "conops");
    const char *extra[] = {"--catalogue", spt_data("products.csv"), "--workers", "1", NULL};
    pid_t b = spt_broker_start(inst, extra);
    cr_assert(b > 0, "broker did not start");
    /* no colour at all: the bars must still show */
    snprintf(cmd, sizeof cmd, "env NO_COLOR=1 %s --instance %s", spt_bin("monitor"), inst);
    const char *session[] = {"new-session", "-d", "-s", "mon", "-x", "160", "-y", "30", cmd, NULL};
    cr_assert_eq(s_tmux(inst, session, NULL), 0, "tmux did not start");

    /* the console has its snapshot (the totals of a first sweep) before the
     * orders: their changes then come as events, which the out rate counts */
    char *screen = NULL;
    const char *ready[] = {"units sold 0", "Yogurt natural nuez", NULL};
    cr_assert(s_wait_for(inst, ready, &screen), "the console never showed the shop:\n%s", screen);

    /* product 3 (Yogurt natural nuez, 25.00, stock 40): 2 bought, 1 held */
    cr_assert_eq(s_once(inst, "buy", "3", "2", NULL), 0);
    cr_assert_eq(s_once(inst, "reserve", "3", "1", "60"), 0);
    const char *header[] = {"units sold 2", "revenue 50.00", "held 1", "expired 10",
                            "sells out",    "sold",          "out",    NULL};
    cr_expect(s_wait_for(inst, header, &screen), "the header lacks the shop's totals:\n%s", screen);
    /* the row's sold and held are read from the table, its stock comes with
     * the events: wait (bounded) for the reserve's event too */
    const char *row = s_line(screen, "Yogurt natural nuez");
    unsigned long stock = 0, sold = 0, held = 0;
    for (int waited = 0; waited < SP_TEST_WAIT_MS * 2; waited += T_POLL_MS) {
        const char *d = strstr(row, "2024-10-30");
        if (d != NULL && sscanf(d + 10, "%lu %lu %lu", &stock, &sold, &held) == 3 && stock == 37) {
            break;
        }
        usleep(T_POLL_MS * 1000);
        s_wait_for(inst, header, &screen); /* a fresh look at the screen */
        row = s_line(screen, "Yogurt natural nuez");
    }
    const char *date = strstr(row, "2024-10-30");
    cr_assert_not_null(date, "no expiry on the row: '%s'", row);
    cr_expect_eq(sscanf(date + 10, "%lu %lu %lu", &stock, &sold, &held), 3, "'%s'", row);
    cr_expect(stock == 37 && sold == 2 && held == 1, "stock %lu sold %lu held %lu: '%s'", stock,
              sold, held, row);
    cr_expect_eq(row[0], 'E', "the marker says expired (its date is past): '%s'", row);
    cr_expect(strstr(row, "/s") != NULL || strstr(row, "/min") != NULL,
              "an out rate after the changes: '%s'", row);
    cr_expect(strchr(row, '#') != NULL || strstr(row, "\xe2\x96\x88") != NULL,
              "no bar without colour: '%s'", row);

    /* a worker killed: the broker restarts it and the console says so */
    const char *pg[] = {"/usr/bin/pgrep", "-f", "", NULL};
    char pat[128];
    snprintf(pat, sizeof pat, "consumer --instance %s --worker-id 1", inst);
    pg[2] = pat;
    char *pids = NULL;
    cr_assert_eq(spt_run(pg, T_RUN_MS, &pids), 0, "no worker found");
    pid_t w = (pid_t)atol(pids);
    free(pids);
    cr_assert_gt(w, 0);
    kill(w, SIGKILL);
    const char *restarted[] = {"restarts 1", "running", NULL};
    cr_expect(s_wait_for(inst, restarted, &screen), "no restart shown:\n%s", screen);

    /* the broker killed: its last word about the workers is not the present */
    kill(b, SIGKILL);
    const char *silent[] = {"BROKER SILENT", "w1  unknown", NULL};
    cr_expect(s_wait_for(inst, silent, &screen), "workers still shown as they were:\n%s", screen);

    static const char *const kill_server[] = {"kill-server", NULL};
    s_tmux(inst, kill_server, NULL);
    free(screen);
    spt_wait(b, SP_TEST_WAIT_MS);
    /* the dead broker's workers stop by themselves; then its leftovers go */
    const char *clean[] = {spt_bin("broker"), "--instance", inst, "--clean", NULL};
    char *out = NULL;
    bool gone = false;
    for (int waited = 0; waited < SP_TEST_WAIT_MS * 2 && !gone; waited += T_POLL_MS) {
        free(out);
        out = NULL;
        gone = spt_run(clean, T_RUN_MS, &out) == 0;
        if (!gone) {
            usleep(T_POLL_MS * 1000);
        }
    }
    cr_expect(gone, "--clean: %s", out);
    free(out);
    cr_expect_not(spt_leftovers(inst));
}

/* The shards of a sharded shop in one full-screen view: every shard's rows
 * in one table, the counters put together, a line with each shard's
 * health, and a shard whose broker stops shown as ended. */
Test(console_ops, the_merged_console_shows_every_shard_and_its_health, .timeout = 180)
{
    char a[64], b[64], list[160], cmd[512];
    spt_instance(a, sizeof a, "conmerga");
    spt_instance(b, sizeof b, "conmergb");
    snprintf(list, sizeof list, "%s,%s", a, b);
    const char *ea[] = {
        "--catalogue", spt_data("products.csv"), "--products", "1-5", "--workers", "1", NULL};
    const char *eb[] = {
        "--catalogue", spt_data("products.csv"), "--products", "6-10", "--workers", "2", NULL};
    pid_t pa = spt_broker_start(a, ea);
    cr_assert(pa > 0, "shard A's broker did not start");
    pid_t pb = spt_broker_start(b, eb);
    if (pb <= 0) {
        spt_stop(pa);
        cr_assert_fail("shard B's broker did not start");
    }
    snprintf(cmd, sizeof cmd, "%s --instance %s", spt_bin("monitor"), list);
    const char *session[] = {"new-session", "-d", "-s", "mon", "-x", "160", "-y", "30", cmd, NULL};
    cr_assert_eq(s_tmux(a, session, NULL), 0, "tmux did not start");

    char up_a[128], up_b[128], ended_b[128];
    snprintf(up_a, sizeof up_a, "shard %s up, 5 products (ids 1-5)", a);
    snprintf(up_b, sizeof up_b, "shard %s up, 5 products (ids 6-10)", b);
    snprintf(ended_b, sizeof ended_b, "shard %s ended", b);
    char *screen = NULL;
    const char *ready[] = {up_a, up_b,           "10 products",      "3 workers",
                           "w3", "units sold 0", "Nuggets de pollo", "Pan de ajo chico",
                           NULL};
    cr_expect(s_wait_for(a, ready, &screen), "the merged console lacks a shard:\n%s", screen);

    /* product 8 (Camarones jumbo, 180.00, stock 5) is shard B's, product 3
     * (Yogurt natural nuez, 25.00, stock 40) shard A's */
    cr_expect_eq(s_once(list, "buy", "8", "2", NULL), 0);
    cr_expect_eq(s_once(list, "buy", "3", "1", NULL), 0);
    const char *sold[] = {"units sold 3", "revenue 385.00", "accepted 2", NULL};
    cr_expect(s_wait_for(a, sold, &screen), "the counters are not both shards':\n%s", screen);
    unsigned long stock = 0, n_sold = 0;
    const char *row = s_line(screen, "Camarones jumbo");
    const char *date = strstr(row, "2024-11-15");
    cr_assert_not_null(date, "no row for product 8: '%s'", row);
    cr_expect_eq(sscanf(date + 10, "%lu %lu", &stock, &n_sold), 2, "'%s'", row);
    cr_expect(stock == 3 && n_sold == 2, "stock %lu sold %lu: '%s'", stock, n_sold, row);

    /* shard B stops: the view says so and goes on showing shard A */
    int sb = spt_stop(pb);
    cr_expect(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "shard B's broker: status %d", sb);
    const char *ended[] = {up_a, ended_b, NULL};
    cr_expect(s_wait_for(a, ended, &screen), "shard B's end is not shown:\n%s", screen);

    static const char *const kill_server[] = {"kill-server", NULL};
    s_tmux(a, kill_server, NULL);
    free(screen);
    int sa = spt_stop(pa);
    cr_expect(WIFEXITED(sa) && WEXITSTATUS(sa) == 0, "shard A's broker: status %d", sa);
    cr_expect(!spt_leftovers(a) && !spt_leftovers(b), "a shard left IPC objects behind");
}
