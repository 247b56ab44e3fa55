/*
 * ledgercheck — the verdict of a chaos run: did every order happen exactly
 * once, and does the stock the workers left follow from the orders alone?
 *
 *   ledgercheck --catalogue INITIAL.csv --final FINAL.csv --journal DIR
 *               --ledgers DIR [--ledgers DIR ...] [--complete-ledgers DIR ...]
 *               [--tables N] [--json]
 *
 * Two independent witnesses are compared.  The customers' ledgers
 * (DIR/ledger-<producer>.bin, sp_ledger.h) say what each customer was
 * told; the workers' journals (DIR/<name>.log, sp_journal.h) say what the workers
 * did.  Joined on the order key (producer, seq):
 *
 *   lost        the customer was told accepted or out of stock, and no
 *               worker journaled it;
 *   duplicated  more than one journal record for one key;
 *   unexpected  a journal record that disagrees with the customer's outcome
 *               (status, product, quantity, type, stock), or whose key the
 *               customer's ledger cannot explain;
 *   unacknowledged applied
 *               a journal record for an order its customer never heard
 *               about (a customer killed mid-run): a key its ledger has no
 *               record for, at or after the first hole of its ledger (so in
 *               a hole or above its last record) and within the window of
 *               orders a producer may have in flight; with no ledger record
 *               at all for that producer, the first hole is seq 1.  A
 *               customer named by --complete-ledgers ended normally, so a
 *               key it does not know is unexpected, and so is a key beyond
 *               the window: the ledger cannot explain it.  A key whose
 *               ledger record says something else is never "unacknowledged":
 *               it is compared, and unexpected if it differs.
 *
 * The journals must belong to one table (a table rebuilt from its journal
 * keeps its id), or to N with --tables N (journals of older versions, whose
 * rebuilt tables took new ids).
 *
 * Then every product is replayed from the journal alone: its accepted
 * records sorted by row version must be 1..N without a gap or a repeat
 * (but for the versions a recovery's rebase record rolls back: it must
 * account for exactly the gaps since the last one, and the chain goes on
 * from its stock), each stock_after must follow from the one before it
 * and the quantity, a
 * purchase never takes the stock below zero, the last one is the final
 * table's stock, and each refusal saw the stock the replay had at its
 * version and really could not be applied with it.  Conservation (initial +
 * restocked - sold == final) is summed separately, without stock_after, so a
 * journal whose stock figures are self-consistent but wrong is still caught.
 *
 * Everything is sorted with qsort and walked once: a million orders take
 * well under a second.  Exit 0 when every check passes, 1 when any fails
 * (the first problems named on stderr and in the JSON), 2 when the inputs
 * cannot be read at all.
 */
#include "sp_version.h"
#include "sp_catalogue.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_grow.h"
#include "sp_journal.h"
#include "sp_ledger.h"
#include "sp_wire.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_FAILED       1
#define EXIT_USAGE        2
#define LC_PROBLEMS_KEPT  12 /* problems named in the report; the rest are counted */
#define LC_DIRS_MAX       16 /* --ledgers / --complete-ledgers folders */
#define LC_TABLES_MAX     64 /* distinct table ids named */
#define LC_PATH_MAX       4096
#define LC_WHY_MAX        512
#define LC_LEDGER_PREFIX  "ledger-"
#define LC_LEDGER_SUFFIX  ".bin"
#define LC_JOURNAL_SUFFIX ".log"
#define LC_KEPT_SUFFIX    ".log.kept" /* contained in a snapshot, kept by --keep-journal */
/* How far past the first hole in its ledger a customer killed mid-run can
 * have had orders in flight: it never sends seq s while s - SP_DEDUP_WINDOW
 * is unanswered, plus one result message it was told but had not yet
 * written down. */
#define LC_INFLIGHT_HORIZON (2u * SP_DEDUP_WINDOW)

/* One order outcome, from either witness (32 bytes, so a million fit in
 * 32 MiB per side). */
typedef struct {
    uint64_t seq;
    uint32_t producer;
    uint32_t product;
    uint32_t qty;
    uint32_t stock;   /* stock after, or the stock that refused it */
    uint32_t version; /* journal only: row version after / observed */
    uint8_t type;
    uint8_t status; /* SP_STATUS_* or SP_LEDGER_TIMED_OUT */
    uint8_t rebase; /* journal only: a recovery's rebase record (no order) */
} sp_lc_rec_t;

/* One ledger file: its producer, and whether its customer ended normally. */
typedef struct {
    uint32_t producer;
    bool complete;
    unsigned dir;
} sp_lc_file_t;

typedef struct {
    sp_lc_file_t *v;
    size_t n, cap;
} sp_lc_files_t;

typedef struct {
    sp_lc_rec_t *v;
    size_t n, cap;
} sp_lc_vec_t;

typedef struct {
    uint32_t id;
    bool in_final;
    int64_t initial, final;
    int64_t sold, restocked; /* units of accepted journal records */
    int64_t held;            /* units reserved and not yet bought or released */
} sp_lc_product_t;

/* What one producer's ledger covers. */
typedef struct {
    uint32_t producer;
    uint64_t first_hole; /* lowest seq it has no outcome for */
    bool complete;       /* its customer ended normally: every order it sent is there */
} sp_lc_producer_t;

typedef struct {
    /* ledger side */
    uint64_t orders, accepted, refused, out_of_stock, unknown_product, invalid, timed_out;
    uint64_t fate_unknown;         /* answered duplicate without the original, or conflict */
    uint64_t no_hold;              /* buy-held or release without a live hold */
    uint64_t refused_before_table; /* unknown product / invalid with no journal record */
    uint64_t timed_out_applied, timed_out_not_applied;
    uint64_t ledger_files, ledger_tail_bytes, complete_ledgers;
    /* journal side */
    uint64_t journal_records, journal_accepted, journal_refused, journal_files, journal_other;
    uint64_t rebases, rolled_back; /* rebase records; the versions they roll back */
    uint64_t refused_rolled_back;  /* refusals that saw one of those versions */
    uint64_t torn_tails, torn_bytes, tables;
    /* verdicts */
    uint64_t lost, duplicated, unexpected, unacknowledged;
    uint64_t system; /* the broker's own orders (expired holds): no ledger knows them */
    uint64_t version_errors, replay_errors, negative, refusal_errors, final_errors;
    uint64_t conservation_errors, input_errors;
    size_t products;
    uint64_t units_sold, units_restocked;
    /* named problems */
    uint64_t problems;
    char kept[LC_PROBLEMS_KEPT][LC_WHY_MAX];
} sp_lc_t;

static void s_problem(sp_lc_t *lc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_problem(sp_lc_t *lc, const char *fmt, ...)
{
    if (lc->problems < LC_PROBLEMS_KEPT) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(lc->kept[lc->problems], LC_WHY_MAX, fmt, ap);
        va_end(ap);
    }
    lc->problems++;
}

static int s_push(sp_lc_vec_t *vec, const sp_lc_rec_t *r)
{
    sp_lc_rec_t *v = sp_grow(vec->v, &vec->cap, vec->n + 1, sizeof *v, 65536);
    if (v == NULL) {
        return -ENOMEM;
    }
    vec->v = v;
    vec->v[vec->n++] = *r;
    return 0;
}

static int s_by_key(const void *a, const void *b)
{
    const sp_lc_rec_t *x = a, *y = b;
    if (x->producer != y->producer) {
        return x->producer < y->producer ? -1 : 1;
    }
    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    return 0;
}

/* Product, then accepted before refused, then version: the replay's order. */
static int s_by_product_version(const void *a, const void *b)
{
    const sp_lc_rec_t *x = a, *y = b;
    if (x->product != y->product) {
        return x->product < y->product ? -1 : 1;
    }
    bool xr = x->status != SP_STATUS_ACCEPTED, yr = y->status != SP_STATUS_ACCEPTED;
    if (xr != yr) {
        return xr ? 1 : -1;
    }
    if (x->version != y->version) {
        return x->version < y->version ? -1 : 1;
    }
    return s_by_key(a, b);
}

static int s_by_id(const void *a, const void *b)
{
    const sp_lc_product_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static sp_lc_product_t *s_product(sp_lc_product_t *p, size_t n, uint32_t id)
{
    sp_lc_product_t key = {.id = id};
    return bsearch(&key, p, n, sizeof *p, s_by_id);
}

static const char *s_status_name(unsigned status)
{
    static const char *const names[SP_STATUS_COUNT] = {
        "accepted",  "out_of_stock", "unknown_product", "invalid",
        "duplicate", "conflict",     "no_hold"};
    if (status < SP_STATUS_COUNT) {
        return names[status];
    }
    return status == SP_LEDGER_TIMED_OUT ? "timed_out" : "?";
}

static const char *s_type_name(unsigned type)
{
    static const char *names[] = {"?", "purchase", "restock", "reserve", "buy-held", "release"};
    return type <= SP_ORDER_RELEASE ? names[type] : "?";
}

static bool s_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Loads a catalogue CSV into a products array sorted by id (initial stock),
 * or, with `final`, sets the final stock of the products already there. */
static int s_load_csv(sp_lc_t *lc, const char *path, sp_lc_product_t **prods, size_t *n, bool final)
{
    sp_catalogue_t *cat = sp_catalogue_new();
    if (cat == NULL) {
        return -ENOMEM;
    }
    sp_csv_error_t err = {0};
    int rc = sp_catalogue_load(cat, path, &err);
    if (rc < 0) {
        if (err.line > 0) {
            fprintf(stderr, "ledgercheck: %s line %ld field %d: %s\n", path, err.line, err.field,
                    err.message);
        } else {
            fprintf(stderr, "ledgercheck: cannot read %s: %s\n", path, sp_strerror(rc));
        }
        sp_catalogue_destroy(&cat);
        return rc;
    }
    size_t count = sp_catalogue_count(cat);
    if (!final) {
        *prods = calloc(count, sizeof **prods);
        if (*prods == NULL) {
            sp_catalogue_destroy(&cat);
            return -ENOMEM;
        }
        for (size_t i = 0; i < count; i++) {
            const sp_product_t *p = sp_catalogue_get(cat, i);
            (*prods)[i] = (sp_lc_product_t){.id = p->id, .initial = p->stock};
        }
        *n = count;
        qsort(*prods, count, sizeof **prods, s_by_id);
    } else {
        for (size_t i = 0; i < count; i++) {
            const sp_product_t *p = sp_catalogue_get(cat, i);
            sp_lc_product_t *q = s_product(*prods, *n, p->id);
            if (q == NULL) {
                lc->input_errors++;
                s_problem(lc, "product %" PRIu32 ": in the final table, not in the catalogue",
                          p->id);
                continue;
            }
            q->final = p->stock;
            q->in_final = true;
        }
        for (size_t i = 0; i < *n; i++) {
            if (!(*prods)[i].in_final) {
                lc->input_errors++;
                s_problem(lc, "product %" PRIu32 ": in the catalogue, missing from the final table",
                          (*prods)[i].id);
            }
        }
    }
    sp_catalogue_destroy(&cat);
    return 0;
}

/* Reads one ledger file; a cut last record (the customer died writing it)
 * is counted, not refused. */
static int s_read_ledger(sp_lc_t *lc, const char *path, uint32_t producer, sp_lc_vec_t *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int rc = -errno;
        fprintf(stderr, "ledgercheck: cannot open %s: %s\n", path, sp_strerror(rc));
        return rc;
    }
    uint8_t buf[SP_LEDGER_REC_SIZE * 1024];
    size_t have = 0, got;
    int rc = 0;
    bool wrong_producer = false;
    while (rc == 0 && (got = fread(buf + have, 1, sizeof buf - have, f)) > 0) {
        have += got;
        size_t i = 0;
        for (; i + SP_LEDGER_REC_SIZE <= have; i += SP_LEDGER_REC_SIZE) {
            sp_ledger_rec_t r;
            sp_ledger_decode(buf + i, &r);
            if (r.producer_id != producer && !wrong_producer) {
                wrong_producer = true;
                lc->input_errors++;
                s_problem(lc, "%s holds orders of producer %" PRIu32, path, r.producer_id);
            }
            sp_lc_rec_t rec = {.producer = r.producer_id,
                               .seq = r.seq,
                               .product = r.product_id,
                               .qty = r.quantity,
                               .stock = r.stock_after,
                               .type = r.type,
                               .status = r.status};
            rc = s_push(out, &rec);
            if (rc < 0) {
                break;
            }
        }
        memmove(buf, buf + i, have - i);
        have -= i;
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        fprintf(stderr, "ledgercheck: cannot read %s\n", path);
    }
    lc->ledger_tail_bytes += have;
    (void)fclose(f); /* read only: ferror was checked above */
    return rc;
}

static int s_add_file(sp_lc_files_t *files, uint32_t producer, bool complete, unsigned dir)
{
    sp_lc_file_t *v = sp_grow(files->v, &files->cap, files->n + 1, sizeof *v, 256);
    if (v == NULL) {
        return -ENOMEM;
    }
    files->v = v;
    files->v[files->n++] = (sp_lc_file_t){.producer = producer, .complete = complete, .dir = dir};
    return 0;
}

static int s_file_by_producer(const void *a, const void *b)
{
    const sp_lc_file_t *x = a, *y = b;
    return x->producer < y->producer ? -1 : x->producer > y->producer;
}

static int s_read_ledgers(sp_lc_t *lc, const char *dir, unsigned dir_index, bool complete,
                          sp_lc_files_t *files, sp_lc_vec_t *out)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int rc = -errno;
        fprintf(stderr, "ledgercheck: cannot open the ledger folder %s: %s\n", dir,
                sp_strerror(rc));
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        size_t plen = strlen(LC_LEDGER_PREFIX);
        if (strncmp(name, LC_LEDGER_PREFIX, plen) != 0 || !s_has_suffix(name, LC_LEDGER_SUFFIX)) {
            continue;
        }
        char *end;
        errno = 0;
        unsigned long id = strtoul(name + plen, &end, 10);
        if (errno != 0 || end == name + plen || strcmp(end, LC_LEDGER_SUFFIX) != 0 ||
            id > UINT32_MAX) {
            continue; /* not one of ours */
        }
        char path[LC_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = s_read_ledger(lc, path, (uint32_t)id, out);
        if (rc == 0) {
            rc = s_add_file(files, (uint32_t)id, complete, dir_index);
        }
        lc->ledger_files++;
        lc->complete_ledgers += complete;
    }
    closedir(d);
    return rc;
}

typedef struct {
    sp_lc_t *lc;
    sp_lc_vec_t *out;
} sp_lc_scan_t;

static int s_on_jrec(void *ctx, const sp_jrec_t *j, uint64_t offset)
{
    (void)offset;
    sp_lc_scan_t *s = ctx;
    if (j->kind != SP_JREC_KIND_OUTCOME && j->kind != SP_JREC_KIND_REBASE) {
        s->lc->journal_other++; /* reserved kinds (holds, ...) are not orders */
        return 0;
    }
    sp_lc_rec_t rec = {.rebase = j->kind == SP_JREC_KIND_REBASE,
                       .producer = j->producer_id,
                       .seq = j->seq,
                       .product = j->product_id,
                       .qty = j->quantity,
                       .stock = j->stock_after,
                       .version = j->version,
                       .type = j->type,
                       .status = j->status};
    return s_push(s->out, &rec);
}

/* Scans every *.log in dir.  A torn tail is a crash's normal leftover;
 * corruption in the middle, or journals of more (or fewer) tables than
 * expect_tables, is a problem (the records before the corruption still
 * count). */
static int s_read_journals(sp_lc_t *lc, const char *dir, unsigned expect_tables, sp_lc_vec_t *out)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int rc = -errno;
        fprintf(stderr, "ledgercheck: cannot open the journal folder %s: %s\n", dir,
                sp_strerror(rc));
        return rc;
    }
    int rc = 0;
    uint64_t tables[LC_TABLES_MAX]; /* the distinct table ids, in the order met */
    const char *first_of[LC_TABLES_MAX];
    char names[LC_TABLES_MAX][LC_WHY_MAX / 2];
    size_t ntables = 0;
    struct dirent *e;
    sp_lc_scan_t s = {.lc = lc, .out = out};
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!s_has_suffix(e->d_name, LC_JOURNAL_SUFFIX) &&
            !s_has_suffix(e->d_name, LC_KEPT_SUFFIX)) {
            continue;
        }
        char path[LC_PATH_MAX], why[LC_WHY_MAX] = "";
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        sp_journal_info_t info;
        int r = sp_journal_scan(path, s_on_jrec, &s, &info, why, sizeof why);
        lc->journal_files++;
        if (r == -ENOMEM) {
            rc = r;
            fprintf(stderr, "ledgercheck: %s\n", sp_strerror(r));
            break;
        }
        if (r < 0) {
            lc->input_errors++;
            s_problem(lc, "journal %s: %s", why[0] ? why : path, sp_strerror(r));
            continue;
        }
        if (info.tail_bytes_dropped > 0) {
            lc->torn_tails++;
            lc->torn_bytes += info.tail_bytes_dropped;
        }
        if (info.has_header) {
            size_t k = 0;
            while (k < ntables && tables[k] != info.table_id) {
                k++;
            }
            if (k == ntables) {
                lc->tables++;
                if (ntables < LC_TABLES_MAX) {
                    tables[ntables] = info.table_id;
                    snprintf(names[ntables], sizeof names[ntables], "%s", e->d_name);
                    first_of[ntables] = names[ntables];
                    ntables++;
                }
            }
        }
    }
    closedir(d);
    if (rc == 0 && lc->journal_files == 0) {
        lc->input_errors++;
        s_problem(lc, "no journal (*%s) in %s", LC_JOURNAL_SUFFIX, dir);
    }
    /* Journals of one table (--tables N allows N: older versions gave a
     * rebuilt table a new id).  The replay's version chain is what proves
     * they fit together. */
    if (rc == 0 && lc->tables > 0 && lc->tables != expect_tables) {
        lc->input_errors++;
        if (ntables >= 2) {
            s_problem(lc,
                      "journals of %" PRIu64 " tables, %u expected: %s belongs to table %016" PRIx64
                      ", %s to table %016" PRIx64,
                      lc->tables, expect_tables, first_of[0], tables[0], first_of[1], tables[1]);
        } else {
            s_problem(lc, "journals of %" PRIu64 " table(s), %u expected (table %016" PRIx64 ")",
                      lc->tables, expect_tables, tables[0]);
        }
    }
    return rc;
}

static int s_by_producer(const void *a, const void *b)
{
    const sp_lc_producer_t *x = a, *y = b;
    return x->producer < y->producer ? -1 : x->producer > y->producer;
}

static int s_push_producer(sp_lc_producer_t **p, size_t *count, size_t *cap, sp_lc_producer_t one)
{
    sp_lc_producer_t *q = sp_grow(*p, cap, *count + 1, sizeof *q, 64);
    if (q == NULL) {
        return -ENOMEM;
    }
    *p = q;
    (*p)[(*count)++] = one;
    return 0;
}

/* Per producer: the first seq its ledger has no outcome for (ledger sorted
 * by key), and whether its customer ended normally (files sorted by
 * producer).  A ledger file without a record (a customer killed before it
 * wrote any) counts with its first hole at seq 1.  Returns the array (*n
 * entries, sorted by producer) or NULL with -ENOMEM. */
static sp_lc_producer_t *s_producers(const sp_lc_vec_t *led, const sp_lc_files_t *files, size_t *n)
{
    sp_lc_producer_t *p = NULL;
    size_t count = 0, cap = 0;
    for (size_t i = 0; i < led->n;) {
        uint32_t id = led->v[i].producer;
        uint64_t expect = 1, hole = 0;
        for (; i < led->n && led->v[i].producer == id; i++) {
            if (hole == 0 && led->v[i].seq != expect && led->v[i].seq != expect - 1) {
                hole = expect;
            }
            expect = led->v[i].seq + 1;
        }
        if (s_push_producer(
                &p, &count, &cap,
                (sp_lc_producer_t){.producer = id, .first_hole = hole ? hole : expect}) < 0) {
            free(p);
            return NULL;
        }
    }
    size_t with_records = count;
    for (size_t f = 0; f < files->n; f++) {
        sp_lc_producer_t key = {.producer = files->v[f].producer};
        sp_lc_producer_t *q = bsearch(&key, p, with_records, sizeof *p, s_by_producer);
        if (q != NULL) {
            q->complete = q->complete || files->v[f].complete;
        } else if (s_push_producer(&p, &count, &cap,
                                   (sp_lc_producer_t){.producer = key.producer,
                                                      .first_hole = 1,
                                                      .complete = files->v[f].complete}) < 0) {
            free(p);
            return NULL;
        }
    }
    if (count > 0) {
        qsort(p, count, sizeof *p, s_by_producer);
    }
    *n = count;
    return p != NULL ? p : calloc(1, sizeof *p);
}

static const sp_lc_producer_t *s_find_producer(const sp_lc_producer_t *p, size_t n, uint32_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p[mid].producer == id) {
            return &p[mid];
        }
        if (p[mid].producer < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* A key the ledgers do not know.  The ledger holds every outcome its
 * customer was told, in the order it was told, so a customer killed mid-run
 * lost only what it had not yet heard (or had heard but not yet written
 * down, one result message): every key it lacks is at or after its first
 * hole, either in a hole or above its last record, and none lies further
 * than the orders a producer may have in flight.  Such a key applied is
 * "unacknowledged"; any other is unexpected: a customer that ended normally
 * (--complete-ledgers) cannot lack a key, and nothing explains one beyond
 * the window.  (A producer without any ledger file is taken as a customer
 * killed before it wrote one: its first hole is seq 1.) */
static void s_journal_only(sp_lc_t *lc, const sp_lc_producer_t *prods, size_t nprods,
                           const sp_lc_rec_t *j, size_t count)
{
    if (j->producer == SP_SYSTEM_PRODUCER) {
        lc->system += count; /* the broker's own orders: expired holds */
        return;
    }
    const sp_lc_producer_t *p = s_find_producer(prods, nprods, j->producer);
    uint64_t first_hole = p != NULL ? p->first_hole : 1;
    bool complete = p != NULL && p->complete;
    if (!complete && j->seq >= first_hole && j->seq - first_hole < (uint64_t)LC_INFLIGHT_HORIZON) {
        lc->unacknowledged += count;
        return;
    }
    lc->unexpected += count;
    if (complete) {
        s_problem(lc,
                  "unexpected: key (%" PRIu32 ", %" PRIu64 ") journaled as %s of product %" PRIu32
                  " but its producer ended normally and its ledger has no such order",
                  j->producer, j->seq, s_status_name(j->status), j->product);
    } else {
        s_problem(lc,
                  "unexpected: key (%" PRIu32 ", %" PRIu64 ") journaled as %s of product %" PRIu32
                  " but its producer's ledger has no such order (first hole at seq %" PRIu64
                  ", at most %u orders in flight beyond it)",
                  j->producer, j->seq, s_status_name(j->status), j->product, first_hole,
                  LC_INFLIGHT_HORIZON);
    }
}

/* One key that both sides know: the ledger's outcome `l` against the
 * journal's `count` records at j. */
static void s_compare(sp_lc_t *lc, const sp_lc_rec_t *l, const sp_lc_rec_t *j, size_t count)
{
    switch (l->status) {
    case SP_STATUS_ACCEPTED:
    case SP_STATUS_OUT_OF_STOCK:
    case SP_STATUS_NO_HOLD:
        if (count == 0) {
            lc->lost++;
            s_problem(lc,
                      "lost: key (%" PRIu32 ", %" PRIu64 ") %s of product %" PRIu32 " qty %" PRIu32
                      " answered %s, not in any journal",
                      l->producer, l->seq, s_type_name(l->type), l->product, l->qty,
                      s_status_name(l->status));
            return;
        }
        break;
    case SP_STATUS_UNKNOWN_PRODUCT:
    case SP_STATUS_INVALID:
        if (count == 0) {
            lc->refused_before_table++; /* refused without touching a row */
            return;
        }
        break;
    case SP_LEDGER_TIMED_OUT:
        if (count == 0) {
            lc->timed_out_not_applied++;
        } else {
            lc->timed_out_applied++;
        }
        return;
    default:
        return; /* fate unknown to the customer: any single journal record is fine */
    }
    /* compare with the first record; further ones are already duplicates */
    if (j->status != l->status || j->product != l->product || j->qty != l->qty ||
        j->type != l->type || j->stock != l->stock) {
        lc->unexpected++;
        s_problem(lc,
                  "unexpected: key (%" PRIu32 ", %" PRIu64 ") ledger %s %s product %" PRIu32
                  " qty %" PRIu32 " stock %" PRIu32 ", journal %s %s product %" PRIu32
                  " qty %" PRIu32 " stock %" PRIu32,
                  l->producer, l->seq, s_status_name(l->status), s_type_name(l->type), l->product,
                  l->qty, l->stock, s_status_name(j->status), s_type_name(j->type), j->product,
                  j->qty, j->stock);
    }
}

/* Joins the two witnesses on the key (both sorted by key). */
static int s_join(sp_lc_t *lc, const sp_lc_vec_t *led, const sp_lc_files_t *files,
                  const sp_lc_vec_t *jnl)
{
    size_t nprods = 0;
    sp_lc_producer_t *prods = s_producers(led, files, &nprods);
    if (prods == NULL) {
        return -ENOMEM;
    }
    size_t i = 0, k = 0;
    while (i < led->n || k < jnl->n) {
        const sp_lc_rec_t *l = i < led->n ? &led->v[i] : NULL;
        const sp_lc_rec_t *j = k < jnl->n ? &jnl->v[k] : NULL;
        int c = l == NULL ? 1 : j == NULL ? -1 : s_by_key(l, j);
        /* the run of journal records with the smallest key */
        const sp_lc_rec_t *key = c <= 0 ? l : j;
        size_t count = 0;
        while (k + count < jnl->n && s_by_key(&jnl->v[k + count], key) == 0) {
            count++;
        }
        if (count > 1) {
            lc->duplicated++;
            s_problem(lc,
                      "duplicated: key (%" PRIu32 ", %" PRIu64 ") has %zu journal records "
                      "(product %" PRIu32 ", versions %" PRIu32 " and %" PRIu32 ")",
                      key->producer, key->seq, count, jnl->v[k].product, jnl->v[k].version,
                      jnl->v[k + 1].version);
        }
        if (c <= 0) {
            size_t same = 1; /* a ledger that names a key twice is broken */
            while (i + same < led->n && s_by_key(&led->v[i + same], l) == 0) {
                same++;
            }
            if (same > 1) {
                lc->input_errors++;
                s_problem(lc, "ledger: key (%" PRIu32 ", %" PRIu64 ") has %zu outcomes",
                          l->producer, l->seq, same);
            }
            s_compare(lc, l, count ? j : NULL, count);
            i += same;
        } else {
            s_journal_only(lc, prods, nprods, j, count);
        }
        k += count;
    }
    free(prods);
    return 0;
}

/* Ledger-side figures. */
static void s_count_ledger(sp_lc_t *lc, const sp_lc_vec_t *led)
{
    for (size_t i = 0; i < led->n; i++) {
        lc->orders++;
        switch (led->v[i].status) {
        case SP_STATUS_ACCEPTED:
            lc->accepted++;
            break;
        case SP_STATUS_OUT_OF_STOCK:
            lc->out_of_stock++;
            lc->refused++;
            break;
        case SP_STATUS_UNKNOWN_PRODUCT:
            lc->unknown_product++;
            lc->refused++;
            break;
        case SP_STATUS_INVALID:
            lc->invalid++;
            lc->refused++;
            break;
        case SP_STATUS_NO_HOLD:
            lc->no_hold++;
            lc->refused++;
            break;
        case SP_LEDGER_TIMED_OUT:
            lc->timed_out++;
            break;
        default:
            lc->fate_unknown++;
            break;
        }
    }
}

/* The stock right after version v of a product, from its accepted records
 * (sorted by version, n of them); v = 0 is the initial stock.  False when no
 * record has that version. */
static bool s_stock_at(const sp_lc_rec_t *acc, size_t n, int64_t initial, uint32_t v,
                       int64_t *stock)
{
    if (v == 0) {
        *stock = initial;
        return true;
    }
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (acc[mid].version == v) {
            *stock = acc[mid].stock;
            return true;
        }
        if (acc[mid].version < v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

/* Checks one refusal against the stock the replay had at its version. */
static void s_check_refusal(sp_lc_t *lc, const sp_lc_rec_t *r, const sp_lc_rec_t *acc, size_t n,
                            int64_t initial)
{
    if (r->status != SP_STATUS_OUT_OF_STOCK && r->status != SP_STATUS_INVALID &&
        r->status != SP_STATUS_NO_HOLD) {
        lc->unexpected++;
        s_problem(lc,
                  "unexpected: key (%" PRIu32 ", %" PRIu64 ") journaled with status %u (%s), "
                  "which workers never journal",
                  r->producer, r->seq, r->status, s_status_name(r->status));
        return;
    }
    int64_t had;
    if (!s_stock_at(acc, n, initial, r->version, &had)) {
        /* a version no record made: one a later rebase record accounts for? */
        bool rolled_back = false;
        for (size_t k = n; k-- > 0 && acc[k].version > r->version && !rolled_back;) {
            rolled_back = acc[k].rebase;
        }
        if (rolled_back) {
            /* it saw an order a crash took before it was journaled: the
             * refusal was right then, and nothing is left to check it by */
            lc->refused_rolled_back++;
            return;
        }
        lc->refusal_errors++;
        s_problem(lc,
                  "product %" PRIu32 ": refusal (%" PRIu32 ", %" PRIu64
                  ") observed version %" PRIu32 ", which no accepted order made",
                  r->product, r->producer, r->seq, r->version);
        return;
    }
    if ((int64_t)r->stock != had) {
        lc->refusal_errors++;
        s_problem(lc,
                  "product %" PRIu32 ": refusal (%" PRIu32 ", %" PRIu64 ") at version %" PRIu32
                  " saw stock %" PRIu32 ", the replay has %" PRId64,
                  r->product, r->producer, r->seq, r->version, r->stock, had);
        return;
    }
    bool right;
    if (r->status == SP_STATUS_OUT_OF_STOCK) {
        right =
            (r->type == SP_ORDER_PURCHASE || r->type == SP_ORDER_RESERVE) && (int64_t)r->qty > had;
    } else if (r->status == SP_STATUS_NO_HOLD) {
        right = r->type >= SP_ORDER_RESERVE; /* a hold's state is not in the journal's stock */
    } else {
        right = r->type == SP_ORDER_RESTOCK && had + r->qty > (int64_t)SP_STOCK_MAX;
    }
    if (!right) {
        lc->refusal_errors++;
        s_problem(lc,
                  "product %" PRIu32 ": %s qty %" PRIu32 " (%" PRIu32 ", %" PRIu64
                  ") refused as %s at version %" PRIu32 " with stock %" PRId64
                  ", which could have taken it",
                  r->product, s_type_name(r->type), r->qty, r->producer, r->seq,
                  s_status_name(r->status), r->version, had);
    }
}

/* Replays one product's accepted records (sorted by version) from its
 * initial stock; returns the stock the replay ends at. */
static int64_t s_replay_product(sp_lc_t *lc, sp_lc_product_t *p, const sp_lc_rec_t *acc, size_t n,
                                uint32_t *last_version)
{
    int64_t stock = p->initial;
    uint32_t version = 0;
    uint32_t lost = 0;               /* versions missing since the last rebase */
    const sp_lc_rec_t *first = NULL; /* the record after the first of them */
    uint32_t first_from = 0;         /* and the version before that gap */
    for (size_t a = 0; a < n; a++) {
        const sp_lc_rec_t *r = &acc[a];
        if (r->version <= version) {
            /* only one order can make a version: the other one is not
             * counted (the duplicate check names a key applied twice) */
            lc->version_errors++;
            s_problem(lc,
                      "product %" PRIu32 ": version %" PRIu32 " made again by (%" PRIu32
                      ", %" PRIu64 ")",
                      p->id, r->version, r->producer, r->seq);
            continue;
        }
        bool gap = r->version != version + 1;
        if (gap && !r->rebase) {
            lost += r->version - version - 1;
            if (first == NULL) {
                first = r;
                first_from = version;
            }
        }
        if (r->rebase) {
            /* a recovery rolled back the versions a crash left without a
             * record (never answered): the row goes on from its stock */
            if (gap || r->qty != lost) {
                lc->version_errors++;
                s_problem(lc,
                          "product %" PRIu32 ": the rebase at version %" PRIu32
                          " rolls back %" PRIu32 " version(s), the journal lacks %" PRIu32
                          " before it%s",
                          p->id, r->version, r->qty, lost, gap ? " (and it follows a gap)" : "");
            }
            lc->rolled_back += lost;
            lost = 0;
            first = NULL;
            version = r->version;
            stock = r->stock;
            continue;
        }
        int64_t expect = stock;
        if (r->type == SP_ORDER_PURCHASE) {
            expect = stock - r->qty;
            p->sold += r->qty;
        } else if (r->type == SP_ORDER_RESTOCK) {
            expect = stock + r->qty;
            p->restocked += r->qty;
        } else if (r->type == SP_ORDER_RESERVE) {
            expect = stock - r->qty; /* held: out of stock, not sold yet */
            p->held += r->qty;
        } else if (r->type == SP_ORDER_BUY_HELD) {
            p->held -= r->qty; /* the units were already out of stock */
            p->sold += r->qty;
        } else if (r->type == SP_ORDER_RELEASE) {
            expect = stock + r->qty;
            p->held -= r->qty;
        } else {
            lc->replay_errors++;
            s_problem(lc,
                      "product %" PRIu32 ": accepted order (%" PRIu32 ", %" PRIu64 ") of type %u",
                      p->id, r->producer, r->seq, r->type);
        }
        /* across a gap the stock before is unknown: nothing to compare */
        if (!gap && expect < 0) {
            lc->negative++;
            s_problem(lc,
                      "product %" PRIu32 ": purchase (%" PRIu32 ", %" PRIu64 ") of %" PRIu32
                      " at version %" PRIu32 " takes stock %" PRId64 " below zero",
                      p->id, r->producer, r->seq, r->qty, r->version, stock);
        } else if (!gap && (int64_t)r->stock != expect) {
            lc->replay_errors++;
            s_problem(lc,
                      "product %" PRIu32 ": version %" PRIu32 " (%" PRIu32 ", %" PRIu64
                      ") %s qty %" PRIu32 " from stock %" PRId64 " should leave %" PRId64
                      ", journal says %" PRIu32,
                      p->id, r->version, r->producer, r->seq, s_type_name(r->type), r->qty, stock,
                      expect, r->stock);
        }
        /* follow the journal from here, so one bad record is named once
         * instead of poisoning every later one */
        version = r->version;
        stock = r->stock;
    }
    if (first != NULL) { /* gaps no rebase accounts for */
        lc->version_errors++;
        s_problem(lc,
                  "product %" PRIu32 ": version gap: %" PRIu32 " follows %" PRIu32 " (key (%" PRIu32
                  ", %" PRIu64 ")), %" PRIu32 " version(s) missing in all",
                  p->id, first->version, first_from, first->producer, first->seq, lost);
    }
    *last_version = version;
    return stock;
}

/* Moves the rebase records out of the journal's orders into *reb (they
 * name no order: only the replay reads them). */
static int s_take_rebases(sp_lc_t *lc, sp_lc_vec_t *jnl, sp_lc_vec_t *reb)
{
    size_t kept = 0;
    for (size_t i = 0; i < jnl->n; i++) {
        if (!jnl->v[i].rebase) {
            jnl->v[kept++] = jnl->v[i];
        } else if (s_push(reb, &jnl->v[i]) < 0) {
            return -ENOMEM;
        }
    }
    jnl->n = kept;
    lc->rebases = reb->n;
    return 0;
}

/* Replays every product from the journal (sorted by s_by_product_version). */
static void s_replay(sp_lc_t *lc, sp_lc_product_t *prods, size_t nprods, const sp_lc_vec_t *jnl)
{
    size_t i = 0;
    while (i < jnl->n) {
        uint32_t id = jnl->v[i].product;
        size_t end = i;
        while (end < jnl->n && jnl->v[end].product == id) {
            end++;
        }
        sp_lc_product_t *p = s_product(prods, nprods, id);
        if (p == NULL) {
            lc->unexpected += end - i;
            s_problem(lc,
                      "unexpected: %zu journal records for product %" PRIu32
                      ", which is not in the catalogue",
                      end - i, id);
            i = end;
            continue;
        }
        size_t n_acc = 0;
        while (i + n_acc < end && jnl->v[i + n_acc].status == SP_STATUS_ACCEPTED) {
            n_acc++;
        }
        uint32_t version;
        int64_t stock = s_replay_product(lc, p, &jnl->v[i], n_acc, &version);
        for (size_t r = i + n_acc; r < end; r++) {
            s_check_refusal(lc, &jnl->v[r], &jnl->v[i], n_acc, p->initial);
        }
        if (p->in_final && stock != p->final) {
            lc->final_errors++;
            s_problem(lc,
                      "product %" PRIu32 ": replay ends at stock %" PRId64 " (version %" PRIu32
                      "), the final table has %" PRId64,
                      id, stock, version, p->final);
        }
        i = end;
    }
}

/* initial + restocked - sold == final, from the quantities alone. */
static void s_conserve(sp_lc_t *lc, const sp_lc_product_t *prods, size_t nprods)
{
    for (size_t i = 0; i < nprods; i++) {
        const sp_lc_product_t *p = &prods[i];
        lc->units_sold += (uint64_t)p->sold;
        lc->units_restocked += (uint64_t)p->restocked;
        if (!p->in_final) {
            continue;
        }
        /* a clean stop releases every hold, so nothing is held at the end */
        int64_t expect = p->initial + p->restocked - p->sold - p->held;
        if (expect != p->final || p->held != 0) {
            lc->conservation_errors++;
            s_problem(lc,
                      "product %" PRIu32 ": initial %" PRId64 " + restocked %" PRId64
                      " - sold %" PRId64 " - held %" PRId64 " = %" PRId64
                      ", the final table has %" PRId64,
                      p->id, p->initial, p->restocked, p->sold, p->held, expect, p->final);
        }
    }
}

static bool s_passed(const sp_lc_t *lc)
{
    return lc->problems == 0 && lc->lost == 0 && lc->duplicated == 0 && lc->unexpected == 0;
}

static void s_report_text(const sp_lc_t *lc)
{
    bool replay_ok = lc->version_errors == 0 && lc->replay_errors == 0 && lc->refusal_errors == 0 &&
                     lc->final_errors == 0;
    printf("orders %" PRIu64 ": accepted %" PRIu64 ", refused %" PRIu64 ", timed out %" PRIu64
           " | journal %" PRIu64 " records | lost %" PRIu64 ", duplicated %" PRIu64
           ", unexpected %" PRIu64 ", unacknowledged applied %" PRIu64
           " | products %zu: %s, %s, %s\n",
           lc->orders, lc->accepted, lc->refused, lc->timed_out, lc->journal_records, lc->lost,
           lc->duplicated, lc->unexpected, lc->unacknowledged, lc->products,
           replay_ok ? "replay ok" : "replay FAILED",
           lc->conservation_errors == 0 ? "conservation exact" : "conservation VIOLATED",
           lc->negative == 0 ? "never negative" : "went NEGATIVE");
    printf("details: %" PRIu64 " ledgers (%" PRIu64 " complete), %" PRIu64 " journals of %" PRIu64
           " table(s) (%" PRIu64 " torn tails, %" PRIu64 " bytes dropped); refused: %" PRIu64
           " out of stock, %" PRIu64 " no hold, %" PRIu64 " unknown product, %" PRIu64
           " invalid (%" PRIu64 " before the table); broker's own orders %" PRIu64
           "; timed out: %" PRIu64 " applied, %" PRIu64 " not; fate unknown %" PRIu64
           "; journal: %" PRIu64 " accepted, %" PRIu64 " refused, %" PRIu64
           " rebase(s) rolling back %" PRIu64 " unjournaled version(s) (%" PRIu64
           " refusal(s) saw them); units sold %" PRIu64 ", restocked %" PRIu64 "\n",
           lc->ledger_files, lc->complete_ledgers, lc->journal_files, lc->tables, lc->torn_tails,
           lc->torn_bytes, lc->out_of_stock, lc->no_hold, lc->unknown_product, lc->invalid,
           lc->refused_before_table, lc->system, lc->timed_out_applied, lc->timed_out_not_applied,
           lc->fate_unknown, lc->journal_accepted, lc->journal_refused, lc->rebases,
           lc->rolled_back, lc->refused_rolled_back, lc->units_sold, lc->units_restocked);
    (void)fflush(stdout); /* the figures first, then what failed, even through one pipe */
    if (lc->problems > 0) {
        fprintf(stderr, "ledgercheck: FAILED, %" PRIu64 " problems; the first ones:\n",
                lc->problems);
        for (uint64_t i = 0; i < lc->problems && i < LC_PROBLEMS_KEPT; i++) {
            fprintf(stderr, "  %s\n", lc->kept[i]);
        }
    }
}

static void s_json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void s_report_json(const sp_lc_t *lc)
{
    const struct {
        const char *name;
        uint64_t value;
    } f[] = {{"orders", lc->orders},
             {"accepted", lc->accepted},
             {"refused", lc->refused},
             {"out_of_stock", lc->out_of_stock},
             {"unknown_product", lc->unknown_product},
             {"invalid", lc->invalid},
             {"refused_before_table", lc->refused_before_table},
             {"timed_out", lc->timed_out},
             {"timed_out_applied", lc->timed_out_applied},
             {"timed_out_not_applied", lc->timed_out_not_applied},
             {"fate_unknown", lc->fate_unknown},
             {"ledger_files", lc->ledger_files},
             {"complete_ledgers", lc->complete_ledgers},
             {"journal_files", lc->journal_files},
             {"tables", lc->tables},
             {"journal_records", lc->journal_records},
             {"journal_accepted", lc->journal_accepted},
             {"journal_refused", lc->journal_refused},
             {"rebases", lc->rebases},
             {"rolled_back", lc->rolled_back},
             {"refused_rolled_back", lc->refused_rolled_back},
             {"torn_tails", lc->torn_tails},
             {"lost", lc->lost},
             {"duplicated", lc->duplicated},
             {"unexpected", lc->unexpected},
             {"unacknowledged_applied", lc->unacknowledged},
             {"products", lc->products},
             {"version_errors", lc->version_errors},
             {"replay_errors", lc->replay_errors},
             {"refusal_errors", lc->refusal_errors},
             {"final_errors", lc->final_errors},
             {"negative", lc->negative},
             {"conservation_errors", lc->conservation_errors},
             {"input_errors", lc->input_errors},
             {"units_sold", lc->units_sold},
             {"units_restocked", lc->units_restocked},
             {"problems", lc->problems}};
    printf("{\"ok\":%s", s_passed(lc) ? "true" : "false");
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        printf(",\"%s\":%" PRIu64, f[i].name, f[i].value);
    }
    printf(",\"first_problems\":[");
    for (uint64_t i = 0; i < lc->problems && i < LC_PROBLEMS_KEPT; i++) {
        if (i > 0) {
            putchar(',');
        }
        s_json_string(lc->kept[i]);
    }
    printf("]}\n");
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ledgercheck --catalogue INITIAL.csv --final FINAL.csv --journal DIR\n"
            "                   --ledgers DIR [--ledgers DIR ...] [--complete-ledgers DIR ...]\n"
            "                   [--json]\n"
            "Joins the customers' ledgers (DIR/ledger-*.bin) with the workers' journals\n"
            "(DIR/<name>.log) on (producer, seq) and replays every product from the journal.\n"
            "--ledgers folders may hold customers killed mid-run (their applied orders that\n"
            "they never heard of count as unacknowledged); --complete-ledgers folders hold\n"
            "customers that ended normally (a key they lack is unexpected).\n"
            "Exit 0: nothing lost, duplicated or unexpected and every replay check passed;\n"
            "1: a check failed (the first problems are named); 2: unreadable input.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"catalogue", required_argument, 0, 'c'},
                                         {"final", required_argument, 0, 'f'},
                                         {"journal", required_argument, 0, 'j'},
                                         {"ledgers", required_argument, 0, 'l'},
                                         {"complete-ledgers", required_argument, 0, 'C'},
                                         {"tables", required_argument, 0, 'T'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {0, 0, 0, 0}};
    const char *catalogue = NULL, *final = NULL, *journal = NULL;
    const char *ledgers[LC_DIRS_MAX];
    bool complete[LC_DIRS_MAX];
    unsigned nledgers = 0, tables = 1;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            catalogue = optarg;
            break;
        case 'f':
            final = optarg;
            break;
        case 'j':
            journal = optarg;
            break;
        case 'l':
        case 'C':
            if (nledgers == LC_DIRS_MAX) {
                fprintf(stderr, "ledgercheck: at most %d ledger folders\n", LC_DIRS_MAX);
                return EXIT_USAGE;
            }
            complete[nledgers] = c == 'C';
            ledgers[nledgers++] = optarg;
            break;
        case 'J':
            json = true;
            break;
        case 'T': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || v < 1 || v > 1000000) {
                fprintf(stderr, "ledgercheck: --tables must be 1..1000000, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            tables = (unsigned)v;
            break;
        }
        case 'h':
            s_usage(stdout);
            return 0;
        case 'V':
            printf("ledgercheck %s\n", sp_version());
            return 0;
        default:
            s_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (catalogue == NULL || final == NULL || journal == NULL || nledgers == 0 || optind < argc) {
        s_usage(stderr);
        return EXIT_USAGE;
    }

    static sp_lc_t lc; /* static: the kept problems make it large */
    sp_lc_product_t *prods = NULL;
    size_t nprods = 0;
    sp_lc_vec_t led = {0}, jnl = {0};
    sp_lc_files_t files = {0};
    int rc = s_load_csv(&lc, catalogue, &prods, &nprods, false);
    if (rc == 0) {
        rc = s_load_csv(&lc, final, &prods, &nprods, true);
    }
    for (unsigned d = 0; rc == 0 && d < nledgers; d++) {
        rc = s_read_ledgers(&lc, ledgers[d], d, complete[d], &files, &led);
    }
    if (rc == 0 && files.n > 0) {
        /* one producer id, one customer: two ledgers of one id mean the id
         * was handed out twice */
        qsort(files.v, files.n, sizeof *files.v, s_file_by_producer);
        for (size_t f = 1; f < files.n; f++) {
            if (files.v[f].producer == files.v[f - 1].producer) {
                lc.input_errors++;
                s_problem(&lc, "producer %" PRIu32 " has a ledger in both %s and %s",
                          files.v[f].producer, ledgers[files.v[f - 1].dir],
                          ledgers[files.v[f].dir]);
            }
        }
    }
    if (rc == 0) {
        rc = s_read_journals(&lc, journal, tables, &jnl);
    }
    sp_lc_vec_t reb = {0};
    if (rc == 0) {
        rc = s_take_rebases(&lc, &jnl, &reb);
    }
    if (rc == 0) {
        lc.products = nprods;
        lc.journal_records = jnl.n;
        for (size_t i = 0; i < jnl.n; i++) {
            if (jnl.v[i].status == SP_STATUS_ACCEPTED) {
                lc.journal_accepted++;
            } else {
                lc.journal_refused++;
            }
        }
        s_count_ledger(&lc, &led);
        qsort(led.v, led.n, sizeof *led.v, s_by_key);
        qsort(jnl.v, jnl.n, sizeof *jnl.v, s_by_key);
        rc = s_join(&lc, &led, &files, &jnl);
    }
    for (size_t i = 0; rc == 0 && i < reb.n; i++) {
        rc = s_push(&jnl, &reb.v[i]); /* the replay follows them */
    }
    free(reb.v);
    if (rc == 0) {
        qsort(jnl.v, jnl.n, sizeof *jnl.v, s_by_product_version);
        s_replay(&lc, prods, nprods, &jnl);
        s_conserve(&lc, prods, nprods);
        if (json) {
            s_report_json(&lc);
        } else {
            s_report_text(&lc);
        }
    } else if (rc == -ENOMEM) {
        fprintf(stderr, "ledgercheck: %s\n", sp_strerror(rc));
    }
    free(led.v);
    free(jnl.v);
    free(files.v);
    free(prods);
    if (rc < 0) {
        return EXIT_USAGE;
    }
    return s_passed(&lc) ? 0 : EXIT_FAILED;
}
