/*
 * test_commit — exactly-once application (sp_commit): duplicates answered
 * from the record, conflicts refused, and processes killed at every step of
 * the commit, a thousand times per strategy, leaving a table that is never
 * torn and an order that is applied exactly once.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_catalogue.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_time.h"

#define C_KILLS 1000 /* lock holders killed per strategy */

static char s_name[96];
static sp_table_t *s_table;

static void s_teardown(void)
{
    sp_table_close(&s_table);
    if (s_name[0] != '\0') {
        sp_table_unlink(s_name);
    }
}

/* A table of `n` products with `stock` each, strategy `sync`. */
static sp_table_t *s_make(unsigned n, uint32_t stock, sp_sync_t sync)
{
    int rc = spt_scratch_table(&s_table, s_name, sizeof s_name, "commit",
                               criterion_current_test->name, n, stock, sync);
    cr_assert_eq(rc, 0, "create: %s", sp_strerror(rc));
    return s_table;
}

static sp_order_t s_order(uint32_t producer, uint64_t seq, unsigned type, uint32_t id, uint32_t q)
{
    return (sp_order_t){.type = (uint8_t)type,
                        .producer_id = producer,
                        .seq = seq,
                        .product_id = id,
                        .quantity = q};
}

static sp_outcome_t s_commit(sp_table_t *t, sp_sync_t sync, sp_order_t o)
{
    sp_outcome_t out;
    int rc = sp_commit_order(t, sync, &o, &out);
    cr_assert_eq(rc, 0, "commit: %s", sp_strerror(rc));
    return out;
}

static uint32_t s_stock(sp_table_t *t, uint32_t id)
{
    sp_tally_t tl;
    return sp_row_stock_settled(sp_table_row(t, id), &tl);
}

TestSuite(commit, .fini = s_teardown, .timeout = 120);

Test(commit, a_resent_order_is_answered_with_its_first_outcome)
{
    sp_table_t *t = s_make(2, 10, SP_SYNC_CAS);
    sp_outcome_t a = s_commit(t, SP_SYNC_CAS, s_order(7, 1, SP_ORDER_PURCHASE, 1, 4));
    cr_expect_eq(a.status, SP_STATUS_ACCEPTED);
    cr_expect(a.changed);
    cr_expect_eq(a.stock, 6);

    sp_outcome_t b = s_commit(t, SP_SYNC_CAS, s_order(7, 1, SP_ORDER_PURCHASE, 1, 4));
    cr_expect_eq(b.status, SP_STATUS_DUPLICATE);
    cr_expect_eq(b.original, SP_STATUS_ACCEPTED);
    cr_expect_not(b.changed);
    cr_expect_eq(b.stock, 6, "the stock the first copy left");
    cr_expect_eq(s_stock(t, 1), 6, "applied once");

    /* a refusal is remembered too: restocking later does not change it */
    sp_outcome_t c = s_commit(t, SP_SYNC_CAS, s_order(7, 2, SP_ORDER_PURCHASE, 2, 11));
    cr_expect_eq(c.status, SP_STATUS_OUT_OF_STOCK);
    s_commit(t, SP_SYNC_CAS, s_order(7, 3, SP_ORDER_RESTOCK, 2, 5));
    sp_outcome_t d = s_commit(t, SP_SYNC_CAS, s_order(7, 2, SP_ORDER_PURCHASE, 2, 11));
    cr_expect_eq(d.status, SP_STATUS_DUPLICATE);
    cr_expect_eq(d.original, SP_STATUS_OUT_OF_STOCK);
    cr_expect_eq(s_stock(t, 2), 15);

    /* another producer's seq 1 is another order */
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(8, 1, SP_ORDER_PURCHASE, 1, 1)).status,
                 SP_STATUS_ACCEPTED);
    cr_expect_eq(s_stock(t, 1), 5);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

Test(commit, the_same_key_with_other_contents_is_a_conflict)
{
    sp_table_t *t = s_make(2, 10, SP_SYNC_ROW_LOCK);
    s_commit(t, SP_SYNC_ROW_LOCK, s_order(3, 5, SP_ORDER_PURCHASE, 1, 2));
    sp_order_t variants[] = {s_order(3, 5, SP_ORDER_PURCHASE, 1, 3),
                             s_order(3, 5, SP_ORDER_PURCHASE, 2, 2),
                             s_order(3, 5, SP_ORDER_RESTOCK, 1, 2)};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        sp_outcome_t o = s_commit(t, SP_SYNC_ROW_LOCK, variants[i]);
        cr_expect_eq(o.status, SP_STATUS_CONFLICT, "variant %zu", i);
        cr_expect_eq(o.original, SP_STATUS_ACCEPTED);
        cr_expect_not(o.changed);
    }
    cr_expect_eq(s_stock(t, 1), 8);
    cr_expect_eq(s_stock(t, 2), 10);
}

Test(commit, orders_older_than_the_window_are_refused_not_applied)
{
    sp_table_t *t = s_make(1, 1000000, SP_SYNC_CAS);
    for (uint64_t seq = 1; seq <= SP_DEDUP_WINDOW + 1; seq++) {
        s_commit(t, SP_SYNC_CAS, s_order(9, seq, SP_ORDER_PURCHASE, 1, 1));
    }
    /* seq 1's entry now holds seq WINDOW + 1 */
    sp_outcome_t o = s_commit(t, SP_SYNC_CAS, s_order(9, 1, SP_ORDER_PURCHASE, 1, 1));
    cr_expect_eq(o.status, SP_STATUS_DUPLICATE);
    cr_expect_eq(o.original, SP_ORIGINAL_UNKNOWN);
    cr_expect_eq(s_stock(t, 1), 1000000 - SP_DEDUP_WINDOW - 1);
}

Test(commit, invalid_and_unknown_orders_change_nothing_and_are_not_remembered)
{
    sp_table_t *t = s_make(1, 10, SP_SYNC_CAS);
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(4, 1, SP_ORDER_PURCHASE, 9, 1)).status,
                 SP_STATUS_UNKNOWN_PRODUCT);
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(4, 2, SP_ORDER_PURCHASE, 1, 0)).status,
                 SP_STATUS_INVALID);
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(4, 0, SP_ORDER_PURCHASE, 1, 1)).status,
                 SP_STATUS_INVALID, "seq 0");
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(0, 3, SP_ORDER_PURCHASE, 1, 1)).status,
                 SP_STATUS_INVALID, "producer 0");
    cr_expect_eq(s_stock(t, 1), 10);
    cr_expect_eq(spt_tally(t, 1).version, 0);
}

Test(commit, a_table_full_of_live_producers_refuses_one_more)
{
    sp_table_t *t = s_make(1, 1000, SP_SYNC_CAS);
    for (uint32_t p = 1; p <= SP_DEDUP_SLOTS; p++) {
        cr_assert_eq(sp_commit_register(t, p, getpid()), 0, "producer %u", p);
    }
    sp_order_t o = s_order(SP_DEDUP_SLOTS + 1, 1, SP_ORDER_PURCHASE, 1, 1);
    sp_outcome_t out;
    cr_expect_eq(sp_commit_order(t, SP_SYNC_CAS, &o, &out), -EUSERS);
    cr_expect_eq(out.status, SP_STATUS_INVALID);
    cr_expect_eq(s_stock(t, 1), 1000);
}

Test(commit, a_dead_producers_slot_is_taken_over)
{
    sp_table_t *t = s_make(1, 1000, SP_SYNC_CAS);
    pid_t dead = fork();
    cr_assert_geq(dead, 0);
    if (dead == 0) {
        _exit(0);
    }
    waitpid(dead, NULL, 0);
    for (uint32_t p = 1; p <= SP_DEDUP_SLOTS; p++) {
        cr_assert_eq(sp_commit_register(t, p, p == 5 ? dead : getpid()), 0);
    }
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(999, 1, SP_ORDER_PURCHASE, 1, 1)).status,
                 SP_STATUS_ACCEPTED);
    /* producer 5 is forgotten: its orders now claim a slot afresh (none is
     * free: refused), never reuse the new owner's window */
    sp_order_t o = s_order(5, 1, SP_ORDER_PURCHASE, 1, 1);
    sp_outcome_t out;
    cr_expect_eq(sp_commit_order(t, SP_SYNC_CAS, &o, &out), -EUSERS);
}

/* Set in a child: die at this commit step. */
static int s_die_at;
static void s_die_hook(int point)
{
    if (point == s_die_at) {
        raise(SIGKILL);
    }
}

/* Commits `o` in a child that is killed at commit step `point`; returns
 * true when it died of SIGKILL (the hook fired). */
static bool s_commit_dying(sp_sync_t sync, sp_order_t o, int point)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sp_table_t *c = NULL;
        if (sp_table_open(&c, s_name, true) != 0) {
            _exit(3);
        }
        s_die_at = point;
        sp_commit_hook = s_die_hook;
        sp_outcome_t out;
        sp_commit_order(c, sync, &o, &out);
        _exit(0); /* the hook did not fire */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* The n-th crash point in turn; cas has no lock to hold, so its lock points
 * become the change. */
static int s_point_of(sp_sync_t sync, unsigned n)
{
    int point = 1 + (int)(n % (SP_CP_COUNT - 1));
    if (sync == SP_SYNC_CAS && (point == SP_CP_LOCKED || point == SP_CP_DONE)) {
        point = SP_CP_CHANGED;
    }
    return point;
}

/* Kills a process inside the commit at every step, C_KILLS times, each time
 * resending the order the way a producer would; the order must end up
 * applied exactly once, the row consistent, and recovery quick. */
static void s_kill_inside(sp_sync_t sync)
{
    const uint32_t stock = 100000;
    sp_table_t *t = s_make(2, stock, sync);
    uint64_t worst_ns = 0;
    unsigned died = 0, forward = 0;
    for (unsigned i = 1; i <= C_KILLS; i++) {
        int point = s_point_of(sync, i);
        sp_order_t o = s_order(42, i, SP_ORDER_PURCHASE, 1 + i % 2, 1);
        died += s_commit_dying(sync, o, point);

        uint64_t start = sp_now_ns();
        sp_outcome_t again = s_commit(t, sync, o);
        uint64_t took = sp_now_ns() - start;
        worst_ns = took > worst_ns ? took : worst_ns;
        cr_assert(again.status == SP_STATUS_ACCEPTED ||
                      (again.status == SP_STATUS_DUPLICATE && again.original == SP_STATUS_ACCEPTED),
                  "kill %u at point %d: resent order got %s/%u", i, point,
                  sp_wire_status_name(again.status), again.original);
        forward += again.status == SP_STATUS_DUPLICATE;

        /* never torn: counters and stock of one version, and conserved */
        for (uint32_t id = 1; id <= 2; id++) {
            sp_tally_t tl;
            uint32_t s = sp_row_stock_settled(sp_table_row(t, id), &tl);
            cr_assert_eq(tl.version, SP_SV_VERSION(atomic_load(&sp_table_row(t, id)->sv)),
                         "kill %u: row %u counters behind its stock", i, id);
            cr_assert_eq(s + tl.sold, stock + tl.restocked, "kill %u: row %u", i, id);
        }
    }
    cr_expect_eq(died, C_KILLS, "every child died inside the commit");
    cr_expect_gt(forward, 0, "some kills came after the change: rolled forward");
    cr_expect_lt(forward, C_KILLS, "some came before it: rolled back and applied again");
    /* exactly once: every order took one unit */
    cr_expect_eq(s_stock(t, 1) + s_stock(t, 2), 2 * stock - C_KILLS);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
    cr_expect_lt(worst_ns, 1000 * SP_NS_PER_MS, "slowest recovery %llu us",
                 (unsigned long long)(worst_ns / 1000));
    fprintf(stderr, "commit kills (%s): %u killed, %u rolled forward, slowest recovery %llu us\n",
            sp_sync_name(sync), died, forward, (unsigned long long)(worst_ns / 1000));
}

Test(commit, killed_at_every_step_with_cas_applies_exactly_once)
{
    s_kill_inside(SP_SYNC_CAS);
}

Test(commit, lock_holders_killed_inside_row_lock_apply_exactly_once)
{
    s_kill_inside(SP_SYNC_ROW_LOCK);
}

Test(commit, lock_holders_killed_inside_table_lock_apply_exactly_once)
{
    s_kill_inside(SP_SYNC_TABLE_LOCK);
}

Test(commit, a_sweep_settles_what_a_dead_process_left)
{
    sp_table_t *t = s_make(1, 50, SP_SYNC_CAS);
    sp_order_t o = s_order(11, 1, SP_ORDER_PURCHASE, 1, 5);
    cr_assert(s_commit_dying(SP_SYNC_CAS, o, SP_CP_CHANGED));
    cr_expect_eq(spt_tally(t, 1).sold, 0, "the counters were not reached");
    cr_expect_eq(sp_commit_sweep(t), 1, "one order resolved");
    cr_expect_eq(spt_tally(t, 1).sold, 5);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
    sp_outcome_t again = s_commit(t, SP_SYNC_CAS, o);
    cr_expect_eq(again.status, SP_STATUS_DUPLICATE);
    cr_expect_eq(again.original, SP_STATUS_ACCEPTED);
    cr_expect_eq(s_stock(t, 1), 45);
}

Test(commit, hook_from_the_environment_checks_its_value)
{
    setenv("SP_CRASH_COMMIT", "3:100", 1);
    cr_expect_eq(sp_commit_hook_from_env(), 0);
    cr_expect_not_null(sp_commit_hook);
    sp_commit_hook = NULL;
    const char *bad[] = {"9:10", "0:5", "3:0", "3", "x:1", "3:10z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("SP_CRASH_COMMIT", bad[i], 1);
        cr_expect_eq(sp_commit_hook_from_env(), SP_E_USAGE, "%s", bad[i]);
    }
    unsetenv("SP_CRASH_COMMIT");
    cr_expect_eq(sp_commit_hook_from_env(), 0);
    cr_expect_null(sp_commit_hook);
}

/* ------------------------------------------------------------------ holds */

static sp_order_t s_reserve(uint32_t producer, uint64_t seq, uint32_t id, uint32_t q, uint16_t secs)
{
    sp_order_t o = s_order(producer, seq, SP_ORDER_RESERVE, id, q);
    o.reserved = secs;
    return o;
}

Test(commit, held_units_leave_stock_and_are_bought_or_released_once)
{
    sp_table_t *t = s_make(1, 10, SP_SYNC_CAS);
    sp_outcome_t o = s_commit(t, SP_SYNC_CAS, s_reserve(5, 1, 1, 4, 60));
    cr_expect_eq(o.status, SP_STATUS_ACCEPTED);
    cr_expect_eq(o.stock, 6, "held units are not in stock");
    cr_expect_eq(spt_tally(t, 1).held, 4);
    /* nobody else can buy them: 6 left, 7 wanted */
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(6, 1, SP_ORDER_PURCHASE, 1, 7)).status,
                 SP_STATUS_OUT_OF_STOCK);
    /* a second hold on the same product by the same producer is refused */
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_reserve(5, 2, 1, 1, 60)).status, SP_STATUS_NO_HOLD);
    /* buying needs the held quantity */
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(5, 3, SP_ORDER_BUY_HELD, 1, 3)).status,
                 SP_STATUS_NO_HOLD);
    sp_outcome_t b = s_commit(t, SP_SYNC_CAS, s_order(5, 4, SP_ORDER_BUY_HELD, 1, 4));
    cr_expect_eq(b.status, SP_STATUS_ACCEPTED);
    cr_expect_eq(b.stock, 6, "a buy-held does not touch the stock");
    sp_tally_t tl = spt_tally(t, 1);
    cr_expect_eq(tl.held, 0);
    cr_expect_eq(tl.sold, 4);
    /* the hold is gone: another buy or a release finds nothing */
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(5, 5, SP_ORDER_BUY_HELD, 1, 4)).status,
                 SP_STATUS_NO_HOLD);
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(5, 6, SP_ORDER_RELEASE, 1, 4)).status,
                 SP_STATUS_NO_HOLD);
    /* reserve again, then release: back to stock */
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_reserve(5, 7, 1, 2, 60)).stock, 4);
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(5, 8, SP_ORDER_RELEASE, 1, 2)).stock, 6);
    cr_expect_eq(spt_tally(t, 1).held, 0);
    /* a resent buy is answered from the record, not applied again */
    sp_outcome_t d = s_commit(t, SP_SYNC_CAS, s_order(5, 4, SP_ORDER_BUY_HELD, 1, 4));
    cr_expect_eq(d.status, SP_STATUS_DUPLICATE);
    cr_expect_eq(d.original, SP_STATUS_ACCEPTED);
    cr_expect_eq(spt_tally(t, 1).sold, 4);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

Test(commit, a_hold_expires_on_its_own_and_its_buyer_is_refused)
{
    sp_table_t *t = s_make(1, 10, SP_SYNC_ROW_LOCK);
    cr_expect_eq(s_commit(t, SP_SYNC_ROW_LOCK, s_reserve(5, 1, 1, 3, 1)).stock, 7);
    cr_expect_eq(sp_commit_expire_holds(t, SP_SYNC_ROW_LOCK, sp_now_ns(), NULL, NULL), 0,
                 "not yet");
    uint64_t later = sp_now_ns() + 2 * SP_NS_PER_SEC;
    cr_expect_eq(sp_commit_expire_holds(t, SP_SYNC_ROW_LOCK, later, NULL, NULL), 1);
    cr_expect_eq(s_stock(t, 1), 10, "the units came back");
    cr_expect_eq(spt_tally(t, 1).held, 0);
    cr_expect_eq(sp_commit_expire_holds(t, SP_SYNC_ROW_LOCK, later, NULL, NULL), 0, "once");
    cr_expect_eq(s_commit(t, SP_SYNC_ROW_LOCK, s_order(5, 2, SP_ORDER_BUY_HELD, 1, 3)).status,
                 SP_STATUS_NO_HOLD, "too late");
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

Test(commit, a_killed_holder_never_blocks_the_product)
{
    sp_table_t *t = s_make(1, 10, SP_SYNC_TABLE_LOCK);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sp_table_t *c = NULL;
        if (sp_table_open(&c, s_name, true) == 0 && sp_commit_register(c, 77, getpid()) == 0) {
            sp_order_t o = s_reserve(77, 1, 1, 10, 3600); /* all of it, for an hour */
            sp_outcome_t out;
            sp_commit_order(c, SP_SYNC_TABLE_LOCK, &o, &out);
        }
        raise(SIGKILL);
    }
    waitpid(pid, NULL, 0);
    cr_expect_eq(s_stock(t, 1), 0, "everything was held");
    cr_expect_eq(s_commit(t, SP_SYNC_TABLE_LOCK, s_order(8, 1, SP_ORDER_PURCHASE, 1, 1)).status,
                 SP_STATUS_OUT_OF_STOCK);
    /* the holder is dead: the next pass releases it, long before its hour */
    cr_expect_eq(sp_commit_expire_holds(t, SP_SYNC_TABLE_LOCK, sp_now_ns(), NULL, NULL), 1);
    cr_expect_eq(s_stock(t, 1), 10);
    cr_expect_eq(s_commit(t, SP_SYNC_TABLE_LOCK, s_order(8, 2, SP_ORDER_PURCHASE, 1, 1)).status,
                 SP_STATUS_ACCEPTED);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

Test(commit, concurrent_holders_never_oversell)
{
    const uint32_t stock = 300;
    sp_table_t *t = s_make(1, stock, SP_SYNC_CAS);
    enum { KIDS = 4, ROUNDS = 400 };
    for (int k = 0; k < KIDS; k++) {
        if (fork() == 0) {
            sp_table_t *c = NULL;
            if (sp_table_open(&c, s_name, true) != 0) {
                _exit(3);
            }
            uint32_t me = 100 + (uint32_t)k;
            uint64_t seq = 1;
            for (int i = 0; i < ROUNDS; i++) {
                sp_outcome_t out;
                sp_order_t o = s_reserve(me, seq++, 1, 2, 60);
                sp_commit_order(c, SP_SYNC_CAS, &o, &out);
                if (out.status == SP_STATUS_ACCEPTED) {
                    o = s_order(me, seq++, i % 3 ? SP_ORDER_BUY_HELD : SP_ORDER_RELEASE, 1, 2);
                    sp_commit_order(c, SP_SYNC_CAS, &o, &out);
                    if (out.status != SP_STATUS_ACCEPTED) {
                        _exit(4);
                    }
                }
                o = s_order(me, seq++, SP_ORDER_PURCHASE, 1, 1);
                sp_commit_order(c, SP_SYNC_CAS, &o, &out);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < KIDS; k++) {
        int status;
        wait(&status);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    }
    sp_tally_t tl = spt_tally(t, 1);
    cr_expect_eq(tl.held, 0);
    cr_expect_eq(s_stock(t, 1) + tl.sold, stock, "never oversold: stock %u sold %llu",
                 s_stock(t, 1), (unsigned long long)tl.sold);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

/* Reserve and buy-held, each killed at every step and resent: every hold
 * is made once and bought once, whatever the step. */
static void s_kill_holds(sp_sync_t sync)
{
    const uint32_t stock = 1000, n = 300;
    sp_table_t *t = s_make(1, stock, sync);
    for (unsigned i = 1; i <= 2 * n; i++) {
        bool reserve = i % 2 == 1;
        int point = s_point_of(sync, i / 2);
        sp_order_t o =
            reserve ? s_reserve(9, i, 1, 1, 600) : s_order(9, i, SP_ORDER_BUY_HELD, 1, 1);
        cr_assert(s_commit_dying(sync, o, point), "%s %u: the hook did not fire at %d",
                  reserve ? "reserve" : "buy", i, point);
        sp_outcome_t again = s_commit(t, sync, o);
        cr_assert(again.status == SP_STATUS_ACCEPTED ||
                      (again.status == SP_STATUS_DUPLICATE && again.original == SP_STATUS_ACCEPTED),
                  "%s %u killed at %d: resent copy got %s/%u", reserve ? "reserve" : "buy", i,
                  point, sp_wire_status_name(again.status), again.original);
    }
    sp_tally_t tl = spt_tally(t, 1);
    cr_expect_eq(tl.held, 0);
    cr_expect_eq(tl.sold, n, "every hold bought once");
    cr_expect_eq(s_stock(t, 1), stock - n);
    cr_expect_eq(sp_commit_holds(t, 1, NULL), 0, "no hold left behind");
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

Test(commit, holds_killed_at_every_step_apply_once_with_cas)
{
    s_kill_holds(SP_SYNC_CAS);
}

Test(commit, holds_killed_at_every_step_apply_once_with_row_lock)
{
    s_kill_holds(SP_SYNC_ROW_LOCK);
}

/* A dead pid: a child that exited and was reaped. */
static pid_t s_dead_pid(void)
{
    pid_t dead = fork();
    cr_assert_geq(dead, 0);
    if (dead == 0) {
        _exit(0);
    }
    waitpid(dead, NULL, 0);
    return dead;
}

Test(commit, a_dead_producers_slot_with_a_live_hold_is_not_taken_over)
{
    sp_table_t *t = s_make(2, 100, SP_SYNC_CAS);
    pid_t dead = s_dead_pid();
    /* producer 1 died holding 5 units of product 1; every other slot
     * belongs to a dead producer with nothing in flight */
    cr_assert_eq(sp_commit_register(t, 1, dead), 0);
    cr_assert_eq(s_commit(t, SP_SYNC_CAS, s_reserve(1, 1, 1, 5, 600)).status, SP_STATUS_ACCEPTED);
    for (uint32_t p = 2; p <= SP_DEDUP_SLOTS; p++) {
        cr_assert_eq(sp_commit_register(t, p, dead), 0);
    }
    /* newcomers take the quiet slots, one each */
    for (uint32_t k = 0; k < SP_DEDUP_SLOTS - 1; k++) {
        cr_assert_eq(sp_commit_register(t, 1000 + k, getpid()), 0, "newcomer %u", k);
    }
    /* the last one is still in use: its hold's units are not forgotten */
    cr_expect_eq(sp_commit_register(t, 5000, getpid()), -EUSERS);
    uint64_t units = 0;
    cr_expect_eq(sp_commit_holds(t, 1, &units), 1);
    cr_expect_eq(units, 5);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

Test(commit, a_producer_whose_process_died_resumes_its_slot)
{
    sp_table_t *t = s_make(1, 100, SP_SYNC_CAS);
    pid_t dead = s_dead_pid();
    bool resumed = false;
    cr_assert_eq(sp_commit_claim(t, 7, dead, &resumed), 0);
    cr_expect_not(resumed);
    cr_assert_eq(s_commit(t, SP_SYNC_CAS, s_order(7, 1, SP_ORDER_PURCHASE, 1, 2)).status,
                 SP_STATUS_ACCEPTED);
    /* its next process reconnects with the same id: the window is its own */
    cr_expect_eq(sp_commit_claim(t, 7, getpid(), &resumed), 0);
    cr_expect(resumed);
    sp_outcome_t again = s_commit(t, SP_SYNC_CAS, s_order(7, 1, SP_ORDER_PURCHASE, 1, 2));
    cr_expect_eq(again.status, SP_STATUS_DUPLICATE);
    cr_expect_eq(again.original, SP_STATUS_ACCEPTED);
    /* while a live process holds an id, a second one is refused */
    pid_t other = fork();
    cr_assert_geq(other, 0);
    if (other == 0) {
        pause();
        _exit(0);
    }
    bool r2 = false;
    cr_expect_eq(sp_commit_claim(t, 8, getpid(), &r2), 0);
    cr_expect_eq(sp_commit_claim(t, 8, other, &r2), -EEXIST);
    kill(other, SIGKILL);
    waitpid(other, NULL, 0);
}

/* The live hold of `product` (sp_commit.h's layout: the holds follow the
 * slots and the windows), or NULL. */
static const sp_hold_t *s_hold_of(sp_table_t *t, uint32_t product)
{
    const uint8_t *base = (const uint8_t *)sp_table_dedup(t) + sizeof(sp_dslot_t) * SP_DEDUP_SLOTS +
                          (size_t)SP_DEDUP_SLOTS * SP_DEDUP_WINDOW * sizeof(sp_dentry_t);
    const sp_hold_t *h = (const sp_hold_t *)base;
    for (unsigned i = 0; i < SP_DEDUP_SLOTS * SP_HOLDS_PER_PRODUCER; i++) {
        if ((atomic_load(&h[i].ctl) & 0xff) == SP_HOLD_HELD &&
            atomic_load(&h[i].product) == product) {
            return &h[i];
        }
    }
    return NULL;
}

Test(commit, a_hold_has_expired_at_its_expiry_instant_not_one_nanosecond_before)
{
    sp_table_t *t = s_make(1, 10, SP_SYNC_CAS);
    cr_assert_eq(s_commit(t, SP_SYNC_CAS, s_reserve(5, 1, 1, 3, 60)).status, SP_STATUS_ACCEPTED);
    const sp_hold_t *h = s_hold_of(t, 1);
    cr_assert_not_null(h);
    uint64_t expiry = atomic_load(&h->expiry_ns);
    /* a buy-held at the expiry instant is too late */
    sp_order_t o = s_order(5, 2, SP_ORDER_BUY_HELD, 1, 3);
    sp_outcome_t out;
    cr_assert_eq(sp_commit_order_at(t, SP_SYNC_CAS, &o, expiry, &out), 0);
    cr_expect_eq(out.status, SP_STATUS_NO_HOLD, "bought at the expiry instant");
    /* the expiry pass: one nanosecond before, nothing; at the instant, it */
    cr_expect_eq(sp_commit_expire_holds(t, SP_SYNC_CAS, expiry - 1, NULL, NULL), 0);
    cr_expect_eq(spt_tally(t, 1).held, 3);
    cr_expect_eq(sp_commit_expire_holds(t, SP_SYNC_CAS, expiry, NULL, NULL), 1,
                 "a hold whose expiry is now is released");
    cr_expect_eq(s_stock(t, 1), 10);

    /* a second hold, bought one nanosecond before its expiry: in time */
    cr_assert_eq(s_commit(t, SP_SYNC_CAS, s_reserve(5, 3, 1, 4, 60)).status, SP_STATUS_ACCEPTED);
    h = s_hold_of(t, 1);
    cr_assert_not_null(h);
    expiry = atomic_load(&h->expiry_ns);
    o = s_order(5, 4, SP_ORDER_BUY_HELD, 1, 4);
    cr_assert_eq(sp_commit_order_at(t, SP_SYNC_CAS, &o, expiry - 1, &out), 0);
    cr_expect_eq(out.status, SP_STATUS_ACCEPTED, "bought one nanosecond before the expiry");
    cr_expect_eq(s_stock(t, 1), 6);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

/* Marking an outcome journaled names its seq: a newer order in the same
 * window entry stays unjournaled, so the broker journals it for a worker
 * that died before it could. */
static int s_count_visit(void *ctx, const sp_commit_view_t *v)
{
    unsigned *n = ctx;
    (*n)++;
    cr_expect_eq(v->seq, 1 + SP_DEDUP_WINDOW);
    return 0;
}

Test(commit, marking_an_old_seq_journaled_leaves_the_newer_order_in_its_entry_unjournaled)
{
    sp_table_t *t = s_make(1, 100, SP_SYNC_CAS);
    cr_assert_eq(s_commit(t, SP_SYNC_CAS, s_order(3, 1, SP_ORDER_PURCHASE, 1, 1)).status,
                 SP_STATUS_ACCEPTED);
    sp_commit_journaled(t, 3, 1);
    /* a worker (a child) applies seq 1 + window, same entry, and dies
     * before journaling it */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sp_table_t *c = NULL;
        sp_outcome_t out;
        sp_order_t o = s_order(3, 1 + SP_DEDUP_WINDOW, SP_ORDER_PURCHASE, 1, 1);
        int rc =
            sp_table_open(&c, s_name, true) == 0 ? sp_commit_order(c, SP_SYNC_CAS, &o, &out) : -1;
        _exit(rc == 0 && out.status == SP_STATUS_ACCEPTED ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* a late, stale "journaled" for seq 1 */
    sp_commit_journaled(t, 3, 1);
    unsigned n = 0;
    sp_commit_unjournaled(t, 3, pid, s_count_visit, &n);
    cr_expect_eq(n, 1, "the dead worker's outcome is still to be journaled");
}

Test(commit, an_order_that_timed_out_on_a_held_lock_is_applied_when_retried)
{
    sp_table_t *t = s_make(1, 100, SP_SYNC_TABLE_LOCK);
    /* a live process holds the table lock, as a stuck worker would */
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sp_table_t *c = NULL;
        if (sp_table_open(&c, s_name, true) == 0) {
            pthread_mutex_lock(&sp_table_hdr(c)->table_lock);
        }
        (void)!write(ready[1], "x", 1);
        pause();
        _exit(0);
    }
    char x;
    cr_assert_eq(read(ready[0], &x, 1), 1);
    sp_outcome_t a = s_commit(t, SP_SYNC_TABLE_LOCK, s_order(4, 1, SP_ORDER_PURCHASE, 1, 2));
    cr_expect_not(a.changed);
    cr_expect_not(a.journal, "a lock time-out is not an outcome to journal");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    /* never applied, so its retry is applied now, once */
    sp_outcome_t b = s_commit(t, SP_SYNC_TABLE_LOCK, s_order(4, 1, SP_ORDER_PURCHASE, 1, 2));
    cr_expect_eq(b.status, SP_STATUS_ACCEPTED, "the retry: status %u (first outcome %u)", b.status,
                 b.original);
    cr_expect_eq(s_stock(t, 1), 98);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}

Test(commit, an_anonymous_order_of_no_units_is_invalid)
{
    sp_table_t *t = s_make(1, 100, SP_SYNC_CAS);
    sp_change_t chg;
    cr_expect_eq(sp_commit_anonymous(t, SP_SYNC_CAS, SP_ORDER_PURCHASE, 1, 0, &chg), SP_E_INVALID);
    cr_expect_eq(sp_commit_anonymous(t, SP_SYNC_CAS, SP_ORDER_RESTOCK, 1, 0, &chg), SP_E_INVALID);
    cr_expect_eq(spt_tally(t, 1).version, 0, "no version for nothing");
}

Test(commit, the_whole_stock_can_be_bought_and_not_one_unit_more)
{
    sp_table_t *t = s_make(1, 10, SP_SYNC_CAS);
    sp_outcome_t a = s_commit(t, SP_SYNC_CAS, s_order(2, 1, SP_ORDER_PURCHASE, 1, 10));
    cr_expect_eq(a.status, SP_STATUS_ACCEPTED, "exactly the stock left");
    cr_expect_eq(a.stock, 0);
    cr_expect_eq(s_commit(t, SP_SYNC_CAS, s_order(2, 2, SP_ORDER_PURCHASE, 1, 1)).status,
                 SP_STATUS_OUT_OF_STOCK);
    cr_expect_eq(sp_table_audit(t, NULL, 0), 0);
}
