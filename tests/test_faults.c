/*
 * test_faults — system calls that fail, one at a time, in the manner of
 * SQLite's tests: a scenario is run once counting the calls of one kind it
 * makes (through the sp_sys seam, or sp_file's for a snapshot), then once
 * for every N with the Nth of them failing.  Each run must end in a clear
 * error or a correct recovery, never in an order silently lost or applied
 * twice:
 *
 *  - the journal (write, fdatasync, fsync of a new file): every append it
 *    acknowledged is in the file exactly once, every append after a failure
 *    fails too, and a table rebuilt from the file holds exactly what the
 *    file says and answers every order of it, resent, as a duplicate with
 *    its first outcome;
 *  - the table's creation (ftruncate, mmap): an error, and no segment left;
 *  - a snapshot (write, fsync, close, rename, fsync of the directory): an
 *    error naming the step with the previous snapshot intact, or the new
 *    one whole.
 *
 * The mq link's mq_send is swept in test_mq.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_commit.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_journal.h"
#include "sp_mq.h"
#include "sp_recover.h"
#include "sp_snapshot.h"
#include "sp_sys.h"
#include "sp_table.h"
#include "sp_testutil.h"
#include "sp_wire.h"

#define F_ORDERS   12 /* orders journaled per run, one append each */
#define F_STOCK    100
#define F_PRODUCER 5
#define F_TABLE_ID 0x5eedull
#define F_WHY      512

static char s_dir[256];
static char s_table[128];

static void s_teardown(void)
{
    sp_sys_fail_off();
    sp_file_fault(0, 0, 0);
    sp_file_set_chunk(0);
    if (s_table[0] != '\0') {
        sp_table_unlink(s_table);
    }
    spt_rmtree(s_dir);
}

TestSuite(faults, .fini = s_teardown, .timeout = 120);

/* The journal record of purchase `seq` (1 unit of product 1, the seq-th
 * version of the row). */
static sp_jrec_t s_rec(uint64_t seq)
{
    return (sp_jrec_t){.kind = SP_JREC_KIND_OUTCOME,
                       .type = SP_ORDER_PURCHASE,
                       .status = SP_STATUS_ACCEPTED,
                       .producer_id = F_PRODUCER,
                       .product_id = 1,
                       .seq = seq,
                       .quantity = 1,
                       .version = (uint32_t)seq,
                       .stock_after = F_STOCK - (uint32_t)seq,
                       .worker_id = 1};
}

/* What a run of the journal scenario did. */
typedef struct {
    int open_rc;
    bool acked[F_ORDERS + 1];
    unsigned first_failed;      /* seq of the first failed append (0: none) */
    unsigned late_ok;           /* appends acknowledged after a failed one */
    unsigned long before_close; /* calls of the kind made before the close */
} s_run_t;

/* Opens a journal in s_dir and appends F_ORDERS purchases one at a time
 * with fdatasync after each, with the fault armed as given. */
static void s_journal_run(sp_sys_call_t call, unsigned long nth, s_run_t *run)
{
    memset(run, 0, sizeof *run);
    char path[300], why[F_WHY] = "";
    snprintf(path, sizeof path, "%s/w1.log", s_dir);
    sp_journal_t *j = NULL;
    sp_sys_fail_nth(call, nth, call == SP_SYS_WRITE ? ENOSPC : EIO);
    run->open_rc = sp_journal_open(&j, path, F_TABLE_ID, 1, SP_FSYNC_ALWAYS, 0, why, sizeof why);
    if (run->open_rc < 0) {
        sp_sys_fail_off();
        cr_expect_neq(why[0], '\0', "a failed open says why");
        struct stat st;
        cr_expect_neq(stat(path, &st), 0, "a journal that failed to open is not left behind");
        return;
    }
    for (unsigned s = 1; s <= F_ORDERS; s++) {
        sp_jrec_t r = s_rec(s);
        int rc = sp_journal_append(j, &r, 1);
        run->acked[s] = rc == 0;
        if (rc != 0 && run->first_failed == 0) {
            run->first_failed = s;
        } else if (rc == 0 && run->first_failed != 0) {
            run->late_ok++;
        }
    }
    run->before_close = sp_sys_calls(call);
    /* the close's own fdatasync has no caller to tell: every append was
     * synced already under "always" */
    sp_journal_close(&j);
    sp_sys_fail_off();
}

typedef struct {
    unsigned count[F_ORDERS + 1];
    unsigned n, other;
} s_seen_t;

static int s_seen(void *ctx, const sp_jrec_t *rec, uint64_t offset)
{
    (void)offset;
    s_seen_t *s = ctx;
    if (rec->seq >= 1 && rec->seq <= F_ORDERS && rec->producer_id == F_PRODUCER) {
        s->count[rec->seq]++;
    } else {
        s->other++;
    }
    s->n++;
    return 0;
}

/* The verdict on one run: nothing acknowledged is lost, nothing doubled,
 * and the table rebuilt from the file answers every order in it as a
 * duplicate with its first outcome. */
static void s_check_run(const char *label, const s_run_t *run)
{
    if (run->open_rc < 0) {
        return; /* a clear error, nothing appended */
    }
    cr_expect_eq(run->late_ok, 0, "%s: %u appends acknowledged after one failed", label,
                 run->late_ok);
    char path[300], why[F_WHY] = "";
    snprintf(path, sizeof path, "%s/w1.log", s_dir);
    s_seen_t seen = {0};
    sp_journal_info_t info;
    cr_assert_eq(sp_journal_scan(path, s_seen, &seen, &info, why, sizeof why), 0, "%s: %s", label,
                 why);
    unsigned in_file = 0;
    for (unsigned s = 1; s <= F_ORDERS; s++) {
        cr_expect_leq(seen.count[s], 1, "%s: order %u is journaled %u times", label, s,
                      seen.count[s]);
        if (run->acked[s]) {
            cr_expect_eq(seen.count[s], 1, "%s: order %u was acknowledged but is not journaled",
                         label, s);
        }
        in_file += seen.count[s] > 0;
    }
    cr_expect_eq(seen.other, 0, "%s: records that were never appended", label);
    /* only the order whose append failed may be in the file unacknowledged
     * (written, its fdatasync failed): its outcome is in doubt, not lost */
    for (unsigned s = 1; s <= F_ORDERS; s++) {
        if (!run->acked[s] && seen.count[s] > 0) {
            cr_expect_eq(s, run->first_failed, "%s: order %u in the file was never appended", label,
                         s);
        }
    }

    /* recovery from that file */
    sp_table_t *t = NULL;
    cr_assert_eq(
        spt_scratch_table(&t, s_table, sizeof s_table, "faults", "rec", 2, F_STOCK, SP_SYNC_CAS),
        0);
    sp_recover_stats_t st;
    int rc = sp_recover_replay(t, s_dir, false, &st, why, sizeof why);
    cr_assert_eq(rc, 0, "%s: recovery failed: %s", label, why);
    sp_tally_t tl = spt_tally(t, 1);
    sp_product_t p;
    cr_assert_eq(sp_table_read(t, 1, &p, NULL), 0);
    cr_expect_eq(tl.version, in_file, "%s: row version %u after replaying %u records", label,
                 tl.version, in_file);
    cr_expect_eq(p.stock, F_STOCK - in_file, "%s: stock %u after %u purchases of 1", label, p.stock,
                 in_file);
    for (unsigned s = 1; s <= F_ORDERS; s++) {
        sp_order_t o = {.type = SP_ORDER_PURCHASE,
                        .flags = SP_ORDER_F_RESENT,
                        .producer_id = F_PRODUCER,
                        .seq = s,
                        .product_id = 1,
                        .quantity = 1};
        sp_outcome_t out;
        cr_assert_eq(sp_commit_order(t, SP_SYNC_CAS, &o, &out), 0);
        if (seen.count[s] > 0) {
            cr_expect(out.status == SP_STATUS_DUPLICATE && out.original == SP_STATUS_ACCEPTED,
                      "%s: journaled order %u resent after the rebuild: status %u, first outcome "
                      "%u (want a duplicate of an acceptance)",
                      label, s, out.status, out.original);
        }
    }
    sp_table_close(&t);
    sp_table_unlink(s_table);
}

static void s_sweep_journal(sp_sys_call_t call)
{
    s_run_t run;
    s_journal_run(call, 0, &run);
    unsigned long calls = sp_sys_calls(call);
    cr_assert_gt(calls, 0, "the scenario makes no %s call", sp_sys_call_name(call));
    cr_expect_eq(run.first_failed, 0, "no fault armed, yet an append failed");
    s_check_run("no fault", &run);
    spt_rmtree(s_dir);
    unsigned open_err = 0, append_err = 0, at_close = 0;
    for (unsigned long n = 1; n <= calls; n++) {
        cr_assert(spt_tmpdir(s_dir, sizeof s_dir, "faults"));
        s_journal_run(call, n, &run);
        open_err += run.open_rc < 0;
        append_err += run.open_rc == 0 && run.first_failed != 0;
        at_close += run.open_rc == 0 && run.first_failed == 0;
        char label[64];
        snprintf(label, sizeof label, "%s #%lu of %lu failing", sp_sys_call_name(call), n, calls);
        cr_expect(run.open_rc < 0 || run.first_failed != 0 || n > run.before_close,
                  "%s: the failure was not reported (open and every append succeeded)", label);
        s_check_run(label, &run);
        spt_rmtree(s_dir);
    }
    s_dir[0] = '\0';
    fprintf(stderr,
            "faults: journal %s failing at each of %lu calls: %u open refused, %u append "
            "refused, %u at close (all acknowledged orders synced); every run recovered\n",
            sp_sys_call_name(call), calls, open_err, append_err, at_close);
}

Test(faults, journal_write_failing_at_every_call)
{
    cr_assert(spt_tmpdir(s_dir, sizeof s_dir, "faults"));
    s_sweep_journal(SP_SYS_WRITE);
}

Test(faults, journal_fdatasync_failing_at_every_call)
{
    cr_assert(spt_tmpdir(s_dir, sizeof s_dir, "faults"));
    s_sweep_journal(SP_SYS_FDATASYNC);
}

Test(faults, journal_fsync_of_a_new_file_failing)
{
    cr_assert(spt_tmpdir(s_dir, sizeof s_dir, "faults"));
    s_sweep_journal(SP_SYS_FSYNC);
}

/* ---- the table's creation ---- */

static void s_sweep_create(sp_sys_call_t call)
{
    sp_table_t *t = NULL;
    sp_sys_fail_nth(call, 0, 0);
    cr_assert_eq(
        spt_scratch_table(&t, s_table, sizeof s_table, "faults", "mk", 4, F_STOCK, SP_SYNC_CAS), 0);
    sp_sys_fail_off();
    unsigned long calls = sp_sys_calls(call);
    cr_assert_gt(calls, 0, "creating a table makes no %s call", sp_sys_call_name(call));
    sp_table_close(&t);
    sp_table_unlink(s_table);
    for (unsigned long n = 1; n <= calls; n++) {
        sp_sys_fail_nth(call, n, call == SP_SYS_MMAP ? ENOMEM : ENOSPC);
        int rc =
            spt_scratch_table(&t, s_table, sizeof s_table, "faults", "mk", 4, F_STOCK, SP_SYNC_CAS);
        sp_sys_fail_off();
        cr_expect_lt(rc, 0, "%s #%lu failing: the table was created anyway", sp_sys_call_name(call),
                     n);
        cr_expect_null(t);
        sp_table_t *o = NULL;
        cr_expect_eq(sp_table_open(&o, s_table, false), -ENOENT,
                     "%s #%lu failing: a half-made segment is left", sp_sys_call_name(call), n);
        sp_table_close(&o);
        sp_table_close(&t);
        sp_table_unlink(s_table);
    }
    fprintf(stderr,
            "faults: table creation with %s failing at each of %lu calls: refused, nothing left\n",
            sp_sys_call_name(call), calls);
}

Test(faults, table_creation_with_ftruncate_failing)
{
    s_sweep_create(SP_SYS_FTRUNCATE);
}

Test(faults, table_creation_with_mmap_failing)
{
    s_sweep_create(SP_SYS_MMAP);
}

/* ---- a snapshot ---- */

/* The stock of product 1 in a table made from the snapshot at path. */
static uint32_t s_snapshot_stock(const char *path)
{
    char why[F_WHY] = "", name[128];
    sp_catalogue_t *cat = NULL;
    cr_assert_eq(sp_snapshot_catalogue(path, &cat, why, sizeof why), 0, "%s", why);
    snprintf(name, sizeof name, "/sp-faults-%ld-snap", (long)getpid());
    sp_table_unlink(name);
    sp_table_t *t = NULL;
    sp_table_opts_t opts = {.sync = SP_SYNC_CAS, .transport = sp_transport_mq.id};
    cr_assert_eq(sp_table_create(&t, name, cat, &opts), 0);
    sp_catalogue_destroy(&cat);
    sp_snapshot_info_t info;
    int rc = sp_snapshot_restore(t, path, &info, why, sizeof why);
    sp_product_t p = {0};
    sp_table_read(t, 1, &p, NULL);
    sp_table_close(&t);
    sp_table_unlink(name);
    cr_assert_eq(rc, 0, "%s", why);
    return p.stock;
}

Test(faults, snapshot_save_failing_at_every_call)
{
    cr_assert(spt_tmpdir(s_dir, sizeof s_dir, "faults"));
    char path[300], why[F_WHY] = "";
    snprintf(path, sizeof path, "%s/%s", s_dir, SP_SNAPSHOT_BIN);
    sp_table_t *t = NULL;
    cr_assert_eq(
        spt_scratch_table(&t, s_table, sizeof s_table, "faults", "snap0", 2, F_STOCK, SP_SYNC_CAS),
        0);
    sp_file_set_chunk(256); /* several writes per save */
    const int ops[] = {SP_FILE_OP_OPEN,  SP_FILE_OP_WRITE,  SP_FILE_OP_FSYNC,
                       SP_FILE_OP_CLOSE, SP_FILE_OP_RENAME, SP_FILE_OP_DIRSYNC};
    const unsigned per_op[] = {1, 64, 1, 1, 1, 1};
    uint32_t stock = F_STOCK;
    uint64_t seq = 0;
    unsigned failures = 0;
    for (unsigned k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        for (unsigned n = 1; n <= per_op[k]; n++) {
            sp_snapshot_info_t info;
            cr_assert_eq(sp_snapshot_save(t, path, 1, &info, why, sizeof why), 0, "%s", why);
            uint32_t before = stock;
            /* an order after the good snapshot */
            sp_order_t o = {.type = SP_ORDER_PURCHASE,
                            .producer_id = F_PRODUCER,
                            .seq = ++seq,
                            .product_id = 1,
                            .quantity = 1};
            sp_outcome_t out;
            cr_assert_eq(sp_commit_order(t, SP_SYNC_CAS, &o, &out), 0);
            cr_assert_eq(out.status, SP_STATUS_ACCEPTED);
            stock--;
            sp_file_fault(ops[k], n, EIO);
            why[0] = '\0';
            int rc = sp_snapshot_save(t, path, 2, &info, why, sizeof why);
            sp_file_fault(0, 0, 0);
            uint32_t on_disk = s_snapshot_stock(path);
            if (rc == 0) {
                /* fewer calls of this kind than n: the fault never fired */
                cr_expect_eq(on_disk, stock, "op %d #%u: a saved snapshot holds stock %u, not %u",
                             ops[k], n, on_disk, stock);
                break;
            }
            failures++;
            cr_expect_neq(why[0], '\0', "op %d #%u: a failed save says why", ops[k], n);
            /* before the rename the old snapshot stays; after it (only the
             * directory's fsync failed) the new one is whole */
            uint32_t want = ops[k] == SP_FILE_OP_DIRSYNC ? stock : before;
            cr_expect_eq(on_disk, want,
                         "op %d #%u failing (%s): the snapshot holds stock %u, not %u", ops[k], n,
                         why, on_disk, want);
        }
    }
    cr_expect_geq(failures, 6, "every kind of call was failed at least once");
    fprintf(stderr,
            "faults: snapshot save failing at each open, write, fsync, close, rename and "
            "directory fsync: %u runs refused with the old snapshot intact (or, for the "
            "directory fsync, the new one whole)\n",
            failures);
    sp_table_close(&t);
}
