/*
 * tsan_commit — the worker core under ThreadSanitizer (`make tsan`).
 *
 * One table in POSIX shared memory, one process, and for each strategy (cas,
 * row-lock, table-lock):
 *
 *   - TC_WORKERS worker threads apply orders through the worker's own entry
 *     point (sp_apply_order, which validates and calls sp_commit_order_at)
 *     and mark each decided outcome journaled (sp_commit_journaled), as a
 *     worker does after its journal append.  Every order goes to two worker
 *     threads at once, so a resend races its original on every order, and
 *     some orders are sent a third time later (a late resend);
 *   - a supervisor thread does what the broker does beside running workers:
 *     releases expired holds (sp_commit_expire_holds, now and then with a
 *     clock pushed past every hold) and sweeps (sp_commit_sweep);
 *   - a reader thread does what snapshots and monitors do: row images
 *     (sp_commit_row_image), settled stock (sp_row_stock_settled), plain
 *     reads (sp_table_read) and the dedup walk (sp_commit_each).
 *
 * Orders are purchases, restocks, reserves, buy-helds and releases over a
 * few products, so rows are contended.  Afterwards: every order has exactly
 * one first outcome and its copies are duplicates answering that outcome;
 * every row's counters equal the sum of the accepted outcomes (and of the
 * supervisor's releases); its version counts exactly those changes; and
 * initial + restocked - sold - held == stock, with the live holds' units
 * equal to held.  Any failure exits 1; ThreadSanitizer's reports exit with
 * its exitcode (make tsan sets halt_on_error and exitcode 66).
 *
 * `tsan_commit ROUNDS` repeats the whole thing (make tsan TSAN_ROUNDS=N).
 *
 * 16-byte atomics under ThreadSanitizer.  clang turns the row's 16-byte
 * __sync compare-and-swap (cmpxchg16b, -mcx16) into a call of
 * __tsan_atomic128_compare_exchange_val.  The runtime (Debian's LLVM 14
 * compiler-rt, built without -mcx16) has no cmpxchg16b: it emulates the
 * operation as a 16-byte load, a compare and two 8-byte stores under one
 * process-wide spin lock (mutex128 in tsan_interface_atomic.cpp; its
 * disassembly shows the xchg lock and no cmpxchg16b).  So:
 *   - among the threads of one process it is atomic, and the lock of the
 *     address's sync variable, held across it, keeps sp_row_tally's acquire
 *     reads of the two halves from seeing half an update (none in 3.8
 *     million reads of that pattern): this program checks the protocol as
 *     the hardware runs it, with no suppression;
 *   - between processes it is not atomic (each has its own lock): two
 *     processes built with -fsanitize=thread incrementing one 16-byte
 *     counter lost about 3 % of their updates, built without it none.  So
 *     ThreadSanitizer runs only single-process configurations (this program
 *     and the bench's zmq-inproc cell); the multi-process pipeline built
 *     with SANITIZE=thread would fail its audits for the sanitizer's sake;
 *   - race detection treats a 16-byte atomic as an 8-byte access at its
 *     start (false negatives on the upper half only).
 */
#include "sp_zlink.h"
#include "sp_catalogue.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_table.h"
#include "sp_time.h"
#include "sp_wire.h"
#include "sp_apply.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TC_WORKERS       4u    /* worker threads */
#define TC_PRODUCERS     16u   /* each one's orders go to two workers */
#define TC_ORDERS        4000u /* per producer and strategy (below SP_DEDUP_WINDOW) */
#define TC_PRODUCTS      16u   /* few rows: every row is contended */
#define TC_STOCK         200u  /* initial stock of each product */
#define TC_BATCH         16u   /* orders per "message": one clock reading each */
#define TC_LATE_EVERY    7u    /* every 7th order of a worker also resends an older one */
#define TC_LATE_BACK     64u   /* that far back */
#define TC_SUPERVISE_NS  (2 * SP_NS_PER_MS)
#define TC_FORCE_EVERY   4u  /* every 4th expiry pass pushes the clock past every hold */
#define TC_IMAGE_EVERY   50u /* reader passes between two dedup walks */
#define TC_PROBLEMS_SHOW 20u /* failures printed, per strategy */

_Static_assert(TC_ORDERS < SP_DEDUP_WINDOW, "every order stays in its producer's window");
_Static_assert(TC_PRODUCERS % TC_WORKERS == 0, "producers spread evenly over the workers");

/* What one delivery of one order was answered. */
typedef struct {
    uint8_t status, original;
    bool done; /* this delivery was made */
} s_answer_t;

/* A late resend and its answer. */
typedef struct {
    uint32_t producer;
    uint64_t seq;
    uint8_t status, original;
} s_late_t;

typedef struct {
    sp_table_t *table;
    sp_sync_t sync;
    unsigned id; /* 0 .. TC_WORKERS - 1 */
    s_late_t *late;
    size_t nlate;
} s_worker_t;

/* Per product: units the supervisor's expiry orders gave back, and how many. */
typedef struct {
    sp_table_t *table;
    sp_sync_t sync;
    const atomic_bool *stop;
    uint64_t released[TC_PRODUCTS + 1];
    uint64_t releases[TC_PRODUCTS + 1];
    unsigned passes;
} s_supervisor_t;

typedef struct {
    sp_table_t *table;
    const atomic_bool *stop;
    unsigned passes;
    unsigned problems;
} s_reader_t;

/* answers[producer index][seq][copy]: written by exactly one worker each */
static s_answer_t s_answers[TC_PRODUCERS][TC_ORDERS + 1][2];
static unsigned s_problems;

/* What the checks counted, for the summary line. */
typedef struct {
    uint64_t first[SP_STATUS_COUNT]; /* first outcomes by status */
    uint64_t pending;                /* copies answered while the first was being applied */
} s_tally_t;

static void s_problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_problem(const char *fmt, ...)
{
    if (s_problems++ < TC_PROBLEMS_SHOW) {
        va_list ap;
        va_start(ap, fmt);
        fputs("tsan_commit: FAIL: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

static uint64_t s_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Order `seq` of `producer`: a pure function, so both copies of an order,
 * and its late resend, carry the same contents.  Out of every ten: five
 * purchases, three restocks, a reserve (seq % 10 == 3) and, two orders
 * later, a buy-held (70 %) or a release of what that reserve asked for. */
static sp_order_t s_gen(uint32_t producer, uint64_t seq)
{
    uint64_t h = s_mix(((uint64_t)producer << 40) ^ seq);
    sp_order_t o = {
        .producer_id = producer, .seq = seq, .product_id = 1 + (uint32_t)(h % TC_PRODUCTS)};
    switch (seq % 10) {
    case 3:
        o.type = SP_ORDER_RESERVE;
        o.quantity = 1 + (uint32_t)((h >> 8) % 2);
        o.reserved = (uint16_t)(1 + (h >> 16) % 2); /* seconds: some expire on their own */
        break;
    case 5: {
        sp_order_t r = s_gen(producer, seq - 2);
        o.type = (h >> 24) % 10 < 7 ? SP_ORDER_BUY_HELD : SP_ORDER_RELEASE;
        o.product_id = r.product_id;
        o.quantity = r.quantity;
        break;
    }
    case 1:
    case 7:
    case 9:
        o.type = SP_ORDER_RESTOCK;
        o.quantity = 1 + (uint32_t)((h >> 8) % 4);
        break;
    default:
        o.type = SP_ORDER_PURCHASE;
        o.quantity = 1 + (uint32_t)((h >> 8) % 3);
        break;
    }
    return o;
}

/* The producers a worker serves: p with p % W == w (copy 0) and p with
 * (p + 1) % W == w (copy 1). */
static bool s_serves(unsigned worker, unsigned p, unsigned *copy)
{
    if (p % TC_WORKERS == worker) {
        *copy = 0;
        return true;
    }
    if ((p + 1) % TC_WORKERS == worker) {
        *copy = 1;
        return true;
    }
    return false;
}

/* Applies one order as a worker does: validate and commit, then mark the
 * outcome journaled when this call decided it. */
static void s_apply(sp_table_t *t, sp_sync_t sync, unsigned worker, const sp_order_t *o,
                    uint64_t now, uint8_t *status, uint8_t *original)
{
    sp_result_t res;
    sp_change_t chg;
    sp_outcome_t out;
    int rc = sp_apply_order(t, sync, o, o->producer_id, worker + 1, now, &res, &chg, &out);
    if (rc < 0 && rc != SP_E_INVALID) {
        s_problem("sp_apply_order(%u, %llu): %s", o->producer_id, (unsigned long long)o->seq,
                  sp_strerror(rc));
    }
    if (out.journal) {
        sp_commit_journaled(t, o->producer_id, o->seq);
    }
    *status = res.status;
    *original = res.original;
}

static void *s_worker_main(void *arg)
{
    s_worker_t *w = arg;
    unsigned mine[TC_PRODUCERS] = {0}, copies[TC_PRODUCERS] = {0}, n = 0;
    /* start at a different producer on each worker, so copies interleave */
    for (unsigned k = 0; k < TC_PRODUCERS; k++) {
        unsigned p = (k + w->id) % TC_PRODUCERS, copy;
        if (s_serves(w->id, p, &copy)) {
            mine[n] = p;
            copies[n++] = copy;
        }
    }
    uint64_t now = 0;
    unsigned count = 0;
    for (uint64_t seq = 1; seq <= TC_ORDERS; seq++) {
        for (unsigned k = 0; k < n; k++) {
            if (count++ % TC_BATCH == 0) {
                now = sp_now_ns();
            }
            unsigned p = mine[k];
            sp_order_t o = s_gen(p + 1, seq);
            s_answer_t *a = &s_answers[p][seq][copies[k]];
            s_apply(w->table, w->sync, w->id, &o, now, &a->status, &a->original);
            a->done = true;
            if (count % TC_LATE_EVERY == 0 && seq > TC_LATE_BACK) {
                s_late_t *l = &w->late[w->nlate++];
                l->producer = p + 1;
                l->seq = seq - TC_LATE_BACK;
                sp_order_t again = s_gen(l->producer, l->seq);
                again.flags = SP_ORDER_F_RESENT;
                s_apply(w->table, w->sync, w->id, &again, now, &l->status, &l->original);
            }
        }
    }
    return NULL;
}

static int s_count_release(void *ctx, const sp_commit_view_t *v)
{
    s_supervisor_t *s = ctx;
    if (v->product >= 1 && v->product <= TC_PRODUCTS && v->status == SP_STATUS_ACCEPTED) {
        s->released[v->product] += v->quantity;
        s->releases[v->product]++;
    }
    return 0; /* "journaled": the release is marked so */
}

static void *s_supervisor_main(void *arg)
{
    s_supervisor_t *s = arg;
    while (!atomic_load(s->stop)) {
        uint64_t now = sp_now_ns();
        if (s->passes % TC_FORCE_EVERY == TC_FORCE_EVERY - 1) {
            now += (uint64_t)(SP_HOLD_MAX_S + 1) * SP_NS_PER_SEC; /* every hold is past due */
        }
        sp_commit_expire_holds(s->table, s->sync, now, s_count_release, s);
        sp_commit_sweep(s->table);
        s->passes++;
        sp_sleep_ns(TC_SUPERVISE_NS);
    }
    /* a last sweep once the workers have stopped, as at a broker's start-up:
     * it must find nothing to change (the checks below would see it) */
    sp_commit_sweep(s->table);
    return NULL;
}

static void s_count_entry(void *ctx, uint32_t producer, uint64_t seq, uint64_t what, uint64_t res,
                          uint64_t out)
{
    (void)producer, (void)seq, (void)what, (void)res, (void)out;
    (*(unsigned *)ctx)++;
}

static void *s_reader_main(void *arg)
{
    s_reader_t *r = arg;
    uint32_t last_version[TC_PRODUCTS + 1] = {0};
    while (!atomic_load(r->stop)) {
        for (uint32_t id = 1; id <= TC_PRODUCTS; id++) {
            sp_row_t *row = sp_table_row(r->table, id);
            sp_row_image_t img;
            sp_commit_row_image(r->table, row, &img);
            /* an image is one settled version: conserved on its own */
            if ((uint64_t)row->initial_stock + img.restocked != img.stock + img.sold + img.held) {
                r->problems++;
            }
            if (img.version < last_version[id]) {
                r->problems++; /* versions never go back */
            }
            last_version[id] = img.version;
            sp_tally_t tl;
            uint32_t stock = sp_row_stock_settled(row, &tl);
            sp_product_t p;
            uint32_t version;
            if (sp_table_read(r->table, id, &p, &version) != 0 || stock > SP_STOCK_MAX ||
                p.stock > SP_STOCK_MAX) {
                r->problems++;
            }
        }
        if (r->passes++ % TC_IMAGE_EVERY == 0) {
            unsigned entries = 0;
            sp_commit_each(r->table, s_count_entry, NULL, &entries);
        }
    }
    return NULL;
}

static sp_table_t *s_make_table(const char *name, sp_sync_t sync)
{
    char csv[4096];
    size_t len = (size_t)snprintf(csv, sizeof csv, "%s\n", SP_CSV_HEADER);
    for (unsigned id = 1; id <= TC_PRODUCTS; id++) {
        len += (size_t)snprintf(csv + len, sizeof csv - len,
                                "%u,Product %u,Test,1,2.5,2030-01-31,%u\n", id, id, TC_STOCK);
    }
    sp_catalogue_t *cat = sp_catalogue_new();
    sp_csv_error_t err;
    if (cat == NULL || sp_catalogue_parse(cat, csv, len, &err) != 0) {
        sp_catalogue_destroy(&cat);
        return NULL;
    }
    sp_table_opts_t opts = {.sync = sync, .transport = sp_transport_zmq.id};
    sp_table_t *t = NULL;
    (void)sp_table_unlink(name); /* a leftover of ours, if a run died here */
    int rc = sp_table_create(&t, name, cat, &opts);
    sp_catalogue_destroy(&cat);
    if (rc < 0) {
        fprintf(stderr, "tsan_commit: cannot create %s: %s\n", name, sp_strerror(rc));
        return NULL;
    }
    /* the mapping is all the threads need: without the name, nothing can
     * be left behind in /dev/shm, however this process ends */
    (void)sp_table_unlink(name);
    sp_table_set_state(t, SP_TABLE_READY);
    return t;
}

/* The checks once the threads have stopped (failures go to s_problem). */
static void s_check(sp_table_t *t, const s_worker_t *workers, const s_supervisor_t *sup,
                    s_tally_t *seen)
{
    uint64_t sold[TC_PRODUCTS + 1] = {0}, restocked[TC_PRODUCTS + 1] = {0};
    int64_t held[TC_PRODUCTS + 1] = {0};
    uint64_t changes[TC_PRODUCTS + 1] = {0};
    for (unsigned p = 0; p < TC_PRODUCERS; p++) {
        for (uint64_t seq = 1; seq <= TC_ORDERS; seq++) {
            const s_answer_t *a = s_answers[p][seq];
            if (!a[0].done || !a[1].done) {
                s_problem("order (%u, %llu) was not delivered twice", p + 1,
                          (unsigned long long)seq);
                continue;
            }
            int first = a[0].status != SP_STATUS_DUPLICATE   ? 0
                        : a[1].status != SP_STATUS_DUPLICATE ? 1
                                                             : -1;
            if (first < 0 || a[1 - first].status != SP_STATUS_DUPLICATE) {
                s_problem("order (%u, %llu): answers %u and %u, not one outcome and a duplicate",
                          p + 1, (unsigned long long)seq, a[0].status, a[1].status);
                continue;
            }
            uint8_t dup_orig = a[1 - first].original;
            seen->first[a[first].status < SP_STATUS_COUNT ? a[first].status : SP_STATUS_INVALID]++;
            seen->pending += dup_orig == SP_ORIGINAL_PENDING;
            if (dup_orig != a[first].status && dup_orig != SP_ORIGINAL_PENDING) {
                s_problem("order (%u, %llu): duplicate answered original %u, first was %u", p + 1,
                          (unsigned long long)seq, dup_orig, a[first].status);
            }
            if (a[first].status != SP_STATUS_ACCEPTED) {
                continue;
            }
            sp_order_t o = s_gen(p + 1, seq);
            changes[o.product_id]++;
            switch (o.type) {
            case SP_ORDER_PURCHASE:
                sold[o.product_id] += o.quantity;
                break;
            case SP_ORDER_RESTOCK:
                restocked[o.product_id] += o.quantity;
                break;
            case SP_ORDER_RESERVE:
                held[o.product_id] += o.quantity;
                break;
            case SP_ORDER_BUY_HELD:
                held[o.product_id] -= o.quantity;
                sold[o.product_id] += o.quantity;
                break;
            default:
                held[o.product_id] -= o.quantity;
                break;
            }
        }
    }
    for (unsigned w = 0; w < TC_WORKERS; w++) {
        for (size_t i = 0; i < workers[w].nlate; i++) {
            const s_late_t *l = &workers[w].late[i];
            const s_answer_t *a = s_answers[l->producer - 1][l->seq];
            uint8_t first = a[0].status != SP_STATUS_DUPLICATE ? a[0].status : a[1].status;
            if (l->status != SP_STATUS_DUPLICATE ||
                (l->original != first && l->original != SP_ORIGINAL_PENDING)) {
                s_problem("late resend of (%u, %llu): answered %u (original %u), first was %u",
                          l->producer, (unsigned long long)l->seq, l->status, l->original, first);
            }
        }
    }
    for (uint32_t id = 1; id <= TC_PRODUCTS; id++) {
        held[id] -= (int64_t)sup->released[id];
        changes[id] += sup->releases[id];
        sp_row_t *r = sp_table_row(t, id);
        sp_tally_t tl;
        uint32_t stock = sp_row_stock_settled(r, &tl);
        uint32_t version = SP_SV_VERSION(atomic_load(&r->sv));
        uint64_t units = 0;
        sp_commit_holds(t, id, &units);
        if (tl.sold != sold[id] || tl.restocked != restocked[id] || (int64_t)tl.held != held[id]) {
            s_problem("product %u: counters sold %llu restocked %llu held %u, the outcomes say "
                      "%llu, %llu, %lld",
                      id, (unsigned long long)tl.sold, (unsigned long long)tl.restocked, tl.held,
                      (unsigned long long)sold[id], (unsigned long long)restocked[id],
                      (long long)held[id]);
        }
        if (version != changes[id] || tl.version != version) {
            s_problem("product %u: version %u (counters at %u), accepted changes %llu", id, version,
                      tl.version, (unsigned long long)changes[id]);
        }
        if ((uint64_t)TC_STOCK + tl.restocked != (uint64_t)stock + tl.sold + tl.held) {
            s_problem("product %u: %u + %llu restocked - %llu sold - %u held != stock %u", id,
                      TC_STOCK, (unsigned long long)tl.restocked, (unsigned long long)tl.sold,
                      tl.held, stock);
        }
        if (units != tl.held) {
            s_problem("product %u: live holds carry %llu units, the row holds %u", id,
                      (unsigned long long)units, tl.held);
        }
    }
    if (sp_table_audit(t, NULL, 0) != 0) {
        s_problem("sp_table_audit fails");
    }
}

static int s_run(sp_sync_t sync)
{
    char name[64];
    snprintf(name, sizeof name, "/sp-tsan-%ld-%s", (long)getpid(), sp_sync_name(sync));
    sp_table_t *t = s_make_table(name, sync);
    if (t == NULL) {
        return -1;
    }
    memset(s_answers, 0, sizeof s_answers);
    unsigned before = s_problems;
    uint64_t start = sp_now_ns();

    atomic_bool stop = false;
    s_worker_t workers[TC_WORKERS];
    s_supervisor_t sup = {.table = t, .sync = sync, .stop = &stop};
    s_reader_t reader = {.table = t, .stop = &stop};
    pthread_t wt[TC_WORKERS] = {0}, st, rt;
    size_t late_cap = (size_t)TC_ORDERS * TC_PRODUCERS * 2 / TC_WORKERS / TC_LATE_EVERY + 1;
    int rc = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < TC_WORKERS; i++) {
        workers[i] = (s_worker_t){.table = t, .sync = sync, .id = i};
        workers[i].late = calloc(late_cap, sizeof *workers[i].late);
        if (workers[i].late == NULL) {
            rc = -ENOMEM;
        }
    }
    bool sup_started = false, reader_started = false;
    if (rc == 0) {
        sup_started = pthread_create(&st, NULL, s_supervisor_main, &sup) == 0;
        reader_started = pthread_create(&rt, NULL, s_reader_main, &reader) == 0;
        for (; started < TC_WORKERS; started++) {
            if (pthread_create(&wt[started], NULL, s_worker_main, &workers[started]) != 0) {
                break;
            }
        }
        if (!sup_started || !reader_started || started < TC_WORKERS) {
            rc = -EAGAIN;
        }
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(wt[i], NULL);
    }
    atomic_store(&stop, true);
    if (sup_started) {
        pthread_join(st, NULL);
    }
    if (reader_started) {
        pthread_join(rt, NULL);
    }
    if (rc == 0) {
        s_tally_t seen = {0};
        s_check(t, workers, &sup, &seen);
        if (reader.problems > 0) {
            s_problem("the reader saw %u torn or unconserved rows", reader.problems);
        }
        size_t late = 0;
        for (unsigned i = 0; i < TC_WORKERS; i++) {
            late += workers[i].nlate;
        }
        uint64_t releases = 0;
        for (unsigned id = 1; id <= TC_PRODUCTS; id++) {
            releases += sup.releases[id];
        }
        uint64_t other = (uint64_t)TC_PRODUCERS * TC_ORDERS - seen.first[SP_STATUS_ACCEPTED] -
                         seen.first[SP_STATUS_OUT_OF_STOCK] - seen.first[SP_STATUS_NO_HOLD];
        printf("tsan_commit: %-10s %u workers, %u orders x 2 copies + %zu late resends in "
               "%.1f s: %s\n"
               "  first outcomes: %llu accepted, %llu out of stock, %llu no hold, %llu other; "
               "%llu copies met their first still pending; %llu expired holds released; "
               "%u supervisor and %u reader passes\n",
               sp_sync_name(sync), TC_WORKERS, TC_PRODUCERS * TC_ORDERS, late,
               (double)(sp_now_ns() - start) / 1e9, s_problems == before ? "ok" : "FAILED",
               (unsigned long long)seen.first[SP_STATUS_ACCEPTED],
               (unsigned long long)seen.first[SP_STATUS_OUT_OF_STOCK],
               (unsigned long long)seen.first[SP_STATUS_NO_HOLD], (unsigned long long)other,
               (unsigned long long)seen.pending, (unsigned long long)releases, sup.passes,
               reader.passes);
    } else {
        fprintf(stderr, "tsan_commit: cannot start the threads: %s\n", sp_strerror(rc));
    }
    for (unsigned i = 0; i < TC_WORKERS; i++) {
        free(workers[i].late);
    }
    sp_table_close(&t);
    return rc < 0 ? rc : (s_problems == before ? 0 : -1);
}

/* tsan_commit [ROUNDS]: every strategy, ROUNDS times (default 1). */
int main(int argc, char **argv)
{
    unsigned long rounds = 1;
    if (argc > 2 || (argc == 2 && (rounds = strtoul(argv[1], NULL, 10)) == 0)) {
        fprintf(stderr, "usage: tsan_commit [ROUNDS]\n");
        return 2;
    }
    int status = 0;
    for (unsigned long round = 0; round < rounds; round++) {
        for (int s = 0; s < SP_SYNC_COUNT; s++) {
            if (s_run((sp_sync_t)s) != 0) {
                status = 1;
            }
        }
    }
    if (s_problems > TC_PROBLEMS_SHOW) {
        fprintf(stderr, "tsan_commit: %u failures in all\n", s_problems);
    }
    return status;
}
