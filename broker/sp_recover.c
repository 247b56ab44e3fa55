/*
 * sp_recover — read every journal, check it, replay it per product.
 */
#include "sp_recover.h"

#include "sp_commit.h"
#include "sp_error.h"
#include "sp_grow.h"
#include "sp_journal.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    sp_jrec_t *v;
    size_t n, cap;
} s_recs_t;

bool sp_recover_is_journal(const char *name)
{
    size_t len = strlen(name);
    return len > 4 && strcmp(name + len - 4, ".log") == 0;
}

bool sp_recover_has_journal(const char *journal_dir)
{
    DIR *d = opendir(journal_dir);
    if (d == NULL) {
        return false;
    }
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        found = sp_recover_is_journal(e->d_name);
    }
    closedir(d);
    return found;
}

#define S_RECS_FIRST 4096 /* journal records held before the first growth */

static int s_collect(void *ctx, const sp_jrec_t *rec, uint64_t offset)
{
    (void)offset;
    s_recs_t *r = ctx;
    if (rec->kind != SP_JREC_KIND_OUTCOME && rec->kind != SP_JREC_KIND_REBASE) {
        return 0; /* kinds this version does not know carry nothing for the table */
    }
    sp_jrec_t *v = sp_grow(r->v, &r->cap, r->n + 1, sizeof *v, S_RECS_FIRST);
    if (v == NULL) {
        return -ENOMEM;
    }
    r->v = v;
    r->v[r->n++] = *rec;
    return 0;
}

/* Accepted records by product then version; refusals after them. */
static int s_by_row(const void *a, const void *b)
{
    const sp_jrec_t *x = a, *y = b;
    bool xa = x->status == SP_STATUS_ACCEPTED, ya = y->status == SP_STATUS_ACCEPTED;
    if (xa != ya) {
        return xa ? -1 : 1;
    }
    if (x->product_id != y->product_id) {
        return x->product_id < y->product_id ? -1 : 1;
    }
    return x->version < y->version ? -1 : x->version > y->version;
}

/* Reads every journal of the table `*table_id` (0: take the first file's). */
static int s_read_all(const char *dir, s_recs_t *recs, sp_recover_stats_t *st, uint64_t *table_id,
                      char *why, size_t cap)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        sp_why(why, cap, "cannot read the journal directory %s: %s", dir, strerror(errno));
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!sp_recover_is_journal(e->d_name)) {
            continue;
        }
        char path[SP_PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        sp_journal_info_t info;
        rc = sp_journal_scan(path, s_collect, recs, &info, why, cap);
        st->files++;
        st->tail_bytes += info.tail_bytes_dropped;
        if (rc == 0 && info.has_header && *table_id == 0) {
            *table_id = info.table_id;
        } else if (rc == 0 && info.has_header && info.table_id != *table_id) {
            sp_why(why, cap,
                   "%s belongs to another table (id %llu, not %llu): move it away; refusing to "
                   "start",
                   path, (unsigned long long)info.table_id, (unsigned long long)*table_id);
            rc = SP_E_JOURNAL_CORRUPT;
        }
    }
    closedir(d);
    return rc;
}

static int s_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Holds the journal shows as still live (an accepted reserve that no
 * accepted buy-held or release ended) come back as expired holds, so the
 * broker's next expiry pass returns their units through a journaled order. */
static int s_restore_holds(sp_table_t *t, const s_recs_t *recs, const uint32_t *start,
                           uint32_t cap_ids, sp_recover_stats_t *st)
{
    size_t n = 0;
    uint64_t *ended = malloc(sizeof *ended * (recs->n + 1));
    if (ended == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < recs->n; i++) {
        const sp_jrec_t *q = &recs->v[i];
        if (q->status == SP_STATUS_ACCEPTED &&
            (q->type == SP_ORDER_BUY_HELD || q->type == SP_ORDER_RELEASE) &&
            q->product_id <= cap_ids && q->version > start[q->product_id]) {
            ended[n++] = (q->aux << 32) | (uint32_t)q->aux2;
            /* a hold the snapshot saw alive, ended after it */
            sp_commit_end_hold(t, (uint32_t)q->aux, (uint32_t)q->aux2);
        }
    }
    if (n > 0) {
        qsort(ended, n, sizeof *ended, s_u64_cmp);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < recs->n; i++) {
        const sp_jrec_t *r = &recs->v[i];
        if (r->status != SP_STATUS_ACCEPTED || r->type != SP_ORDER_RESERVE ||
            r->product_id > cap_ids || r->version <= start[r->product_id]) {
            continue; /* a hold from before the snapshot is in it */
        }
        uint64_t key = ((uint64_t)r->producer_id << 32) | (uint32_t)r->seq;
        if (bsearch(&key, ended, n, sizeof *ended, s_u64_cmp) == NULL) {
            rc = sp_commit_restore_hold(t, r->producer_id, r->seq, r->product_id, r->quantity);
            st->holds += rc == 0;
        }
    }
    free(ended);
    return rc;
}

typedef struct {
    uint64_t *units; /* per product id */
    uint32_t cap;
} s_held_t;

static void s_add_hold(void *ctx, uint32_t producer, uint64_t reserve_seq, uint32_t product,
                       uint32_t qty)
{
    (void)producer;
    (void)reserve_seq;
    s_held_t *h = ctx;
    if (product <= h->cap) {
        h->units[product] += qty;
    }
}

/* Every held unit must belong to a live hold that will release it. */
static int s_check_holds(sp_table_t *t, char *why, size_t cap, const char *journal_dir)
{
    s_held_t h = {.cap = sp_table_capacity(t)};
    h.units = calloc((size_t)h.cap + 1, sizeof *h.units);
    if (h.units == NULL) {
        return -ENOMEM;
    }
    sp_commit_each(t, NULL, s_add_hold, &h);
    int rc = 0;
    for (uint32_t id = 1; rc == 0 && id <= h.cap; id++) {
        const sp_row_t *r = sp_table_row(t, id);
        sp_tally_t tl;
        if (r == NULL) {
            continue;
        }
        sp_row_tally(r, &tl);
        if (tl.held != h.units[id]) {
            sp_why(why, cap,
                   "%s: product %u has %u held units but its live holds hold %llu: refusing "
                   "to start",
                   journal_dir, id, tl.held, (unsigned long long)h.units[id]);
            rc = SP_E_JOURNAL_CORRUPT;
        }
    }
    free(h.units);
    return rc;
}

typedef struct {
    uint64_t producer, last_ts;
} s_seen_t;

static int s_by_producer_ts(const void *a, const void *b)
{
    const s_seen_t *x = a, *y = b;
    if (x->producer != y->producer) {
        return x->producer < y->producer ? -1 : 1;
    }
    return x->last_ts < y->last_ts ? -1 : x->last_ts > y->last_ts;
}

static int s_by_ts_desc(const void *a, const void *b)
{
    const s_seen_t *x = a, *y = b;
    return x->last_ts > y->last_ts ? -1 : x->last_ts < y->last_ts;
}

/* The (at most SP_DEDUP_SLOTS - 1) producers heard from last, sorted by id
 * for bsearch; one slot stays free for producers that connect afterwards. */
static int s_recent_producers(const s_recs_t *recs, uint64_t **out, size_t *n_out)
{
    s_seen_t *seen = malloc(sizeof *seen * (recs->n + 1));
    if (seen == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < recs->n; i++) {
        seen[i] = (s_seen_t){.producer = recs->v[i].producer_id, .last_ts = recs->v[i].ts_ns};
    }
    size_t m = 0;
    if (recs->n > 0) {
        qsort(seen, recs->n, sizeof *seen, s_by_producer_ts);
        for (size_t i = 0; i < recs->n; i++) {
            /* the last of each producer's run has its newest time */
            if (i + 1 == recs->n || seen[i + 1].producer != seen[i].producer) {
                seen[m++] = seen[i];
            }
        }
        qsort(seen, m, sizeof *seen, s_by_ts_desc);
    }
    size_t keep = m < SP_DEDUP_SLOTS - 1 ? m : SP_DEDUP_SLOTS - 1;
    uint64_t *ids = malloc(sizeof *ids * (keep + 1));
    if (ids == NULL) {
        free(seen);
        return -ENOMEM;
    }
    for (size_t i = 0; i < keep; i++) {
        ids[i] = seen[i].producer;
    }
    free(seen);
    if (keep > 0) {
        qsort(ids, keep, sizeof *ids, s_u64_cmp);
    }
    *out = ids;
    *n_out = keep;
    return 0;
}

/* Versions of product `id` that no record holds (`lost` of them, the
 * first gap before `gap`): orders a worker applied in memory and had not
 * journaled when the shop crashed, while another worker journaled later
 * versions of the row (their stock_after counts the lost change).  Such an
 * order was never answered: it is rolled back, and its customer's resend
 * is applied afresh.  The row goes on from the stock the journaled orders
 * leave (the audit's sum), at a version one past the last record, which a
 * rebase record added to `out` gives the journal. */
static int s_rebase(s_recs_t *out, const sp_row_t *row, uint32_t id, uint32_t lost,
                    const sp_jrec_t *gap, const sp_jrec_t *last, uint64_t sold, uint64_t restocked,
                    uint64_t held, uint32_t *stock, char *why, size_t cap, const char *journal_dir)
{
    int64_t left = (int64_t)row->initial_stock + (int64_t)restocked - (int64_t)sold - (int64_t)held;
    if (left < 0 || left > SP_STOCK_MAX) {
        sp_why(why, cap,
               "%s: product %u has no record of %u version(s) (the first before %u, order "
               "%u:%llu) and its records leave stock %lld: refusing to guess",
               journal_dir, id, lost, gap->version, gap->producer_id, (unsigned long long)gap->seq,
               (long long)left);
        return SP_E_JOURNAL_CORRUPT;
    }
    sp_jrec_t *v = sp_grow(out->v, &out->cap, out->n + 1, sizeof *v, 16);
    if (v == NULL) {
        return -ENOMEM;
    }
    out->v = v;
    *stock = (uint32_t)left;
    out->v[out->n++] = (sp_jrec_t){.kind = SP_JREC_KIND_REBASE,
                                   .status = SP_STATUS_ACCEPTED,
                                   .producer_id = SP_SYSTEM_PRODUCER,
                                   .product_id = id,
                                   .quantity = lost,
                                   .version = last->version + 1,
                                   .stock_after = *stock,
                                   .ts_ns = sp_realtime_ns(),
                                   .aux = gap->version};
    return 0;
}

/* Appends the rebase records to a journal file of their own, synced, so
 * the next replay finds the rows' chains whole. */
static int s_rebase_journal(const char *journal_dir, uint64_t table_id, const s_recs_t *rebase,
                            char *why, size_t cap)
{
    char path[SP_PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/rebase-p%ld-%llu.log", journal_dir, (long)getpid(),
             (unsigned long long)sp_now_ns());
    sp_journal_t *j = NULL;
    int rc = sp_journal_open(&j, path, table_id, 0, SP_FSYNC_ALWAYS, 0, why, cap);
    if (rc == 0) {
        rc = sp_journal_append(j, rebase->v, rebase->n);
        if (rc < 0) {
            sp_why(why, cap, "cannot write %s: %s", path, sp_strerror(rc));
        }
    }
    sp_journal_close(&j);
    return rc;
}

int sp_recover_replay(sp_table_t *t, const char *journal_dir, bool from_snapshot,
                      sp_recover_stats_t *st, char *why, size_t cap)
{
    memset(st, 0, sizeof *st);
    s_recs_t recs = {0};
    sp_table_hdr_t *hdr = sp_table_hdr(t);
    uint64_t table_id = from_snapshot ? hdr->table_id : 0;
    int rc = s_read_all(journal_dir, &recs, st, &table_id, why, cap);
    if (table_id != 0) {
        hdr->table_id = table_id; /* still the same shop */
    }
    if (rc < 0) {
        free(recs.v);
        return rc;
    }
    st->records = recs.n;
    if (recs.n > 0) {
        qsort(recs.v, recs.n, sizeof *recs.v, s_by_row);
    }
    /* what the table already holds (a snapshot's rows, or a fresh base) */
    uint32_t cap_ids = sp_table_capacity(t);
    uint32_t *start = calloc((size_t)cap_ids + 1, sizeof *start);
    if (start == NULL) {
        free(recs.v);
        return -ENOMEM;
    }
    for (uint32_t id = 1; id <= cap_ids; id++) {
        const sp_row_t *row = sp_table_row(t, id);
        if (row != NULL) {
            sp_tally_t tl;
            sp_row_tally(row, &tl);
            start[id] = tl.version;
        }
    }

    /* a version no record holds can only be a crash's when two writers
     * journal (one writer journals its own versions in order) */
    const sp_jrec_t *one = NULL; /* a writer's record */
    bool writers = false;
    for (size_t k = 0; k < recs.n; k++) {
        if (recs.v[k].kind == SP_JREC_KIND_OUTCOME) {
            writers |= one != NULL && recs.v[k].worker_id != one->worker_id;
            one = &recs.v[k];
        }
    }
    s_recs_t rebase = {0};

    /* rows: each product's accepted records are versions 1..N, but for
     * versions a crash took (see s_rebase) */
    size_t i = 0;
    while (rc == 0 && i < recs.n && recs.v[i].status == SP_STATUS_ACCEPTED) {
        uint32_t id = recs.v[i].product_id;
        sp_tally_t base = {0};
        const sp_row_t *row = sp_table_row(t, id);
        if (row != NULL) {
            sp_row_tally(row, &base);
        }
        uint64_t sold = base.sold, restocked = base.restocked, held = base.held;
        uint32_t from = id <= cap_ids ? start[id] : 0;
        uint32_t expect = from + 1;
        uint32_t lost = 0; /* versions no record holds, not yet rebased */
        const sp_jrec_t *last = NULL, *gap = NULL;
        for (; i < recs.n && recs.v[i].status == SP_STATUS_ACCEPTED && recs.v[i].product_id == id;
             i++) {
            const sp_jrec_t *r = &recs.v[i];
            if (r->version <= from) {
                continue; /* already in the snapshot */
            }
            if (r->version < expect) {
                sp_why(why, cap,
                       "%s: product %u has two records of version %u (the second from order "
                       "%u:%llu): a journal file is doubled; refusing to guess",
                       journal_dir, id, r->version, r->producer_id, (unsigned long long)r->seq);
                rc = SP_E_JOURNAL_CORRUPT;
                break;
            }
            if (r->version > expect && !writers) {
                sp_why(why, cap,
                       "%s: product %u has no record of version %u (next is %u, from order "
                       "%u:%llu) and one writer journaled: a journal file is missing; refusing "
                       "to guess",
                       journal_dir, id, expect, r->version, r->producer_id,
                       (unsigned long long)r->seq);
                rc = SP_E_JOURNAL_CORRUPT;
                break;
            }
            if (r->version > expect) {
                lost += r->version - expect;
                gap = gap != NULL ? gap : r;
            }
            expect = r->version + 1;
            last = r;
            if (r->kind == SP_JREC_KIND_REBASE) {
                lost = 0; /* the versions below were rolled back before */
                gap = NULL;
                continue;
            }
            switch (r->type) {
            case SP_ORDER_PURCHASE:
                sold += r->quantity;
                break;
            case SP_ORDER_RESTOCK:
                restocked += r->quantity;
                break;
            case SP_ORDER_RESERVE:
                held += r->quantity;
                break;
            case SP_ORDER_BUY_HELD:
                held -= r->quantity;
                sold += r->quantity;
                break;
            default: /* release */
                held -= r->quantity;
                break;
            }
            st->accepted++;
        }
        if (rc == 0 && last != NULL) {
            if (row == NULL) {
                sp_why(why, cap, "%s: product %u is in the journal but not in the base catalogue",
                       journal_dir, id);
                rc = SP_E_JOURNAL_CORRUPT;
                break;
            }
            uint32_t stock = last->stock_after, version = last->version;
            if (lost > 0) {
                rc = s_rebase(&rebase, row, id, lost, gap, last, sold, restocked, held, &stock, why,
                              cap, journal_dir);
                version++;
                st->rolled_back += lost;
            }
            if (rc == 0) {
                sp_commit_restore_row(t, id, stock, version, sold, restocked, (uint32_t)held,
                                      SP_KEY(last->producer_id, last->seq));
                st->products++;
            }
        }
    }
    if (rc == 0 && rebase.n > 0) {
        rc = s_rebase_journal(journal_dir, hdr->table_id, &rebase, why, cap);
        st->rebased = (uint32_t)rebase.n;
    }
    free(rebase.v);
    /* producer ids already handed out: never again */
    for (size_t k = 0; k < recs.n; k++) {
        const sp_jrec_t *r = &recs.v[k];
        if (r->producer_id > st->max_producer_id && r->producer_id < 0x80000000u) {
            st->max_producer_id = r->producer_id;
        }
        if (r->producer_id == SP_SYSTEM_PRODUCER && r->seq > st->system_seq) {
            st->system_seq = r->seq;
        }
    }
    if (rc == 0) {
        rc = s_restore_holds(t, &recs, start, cap_ids, st);
    }
    /* dedup windows: every outcome of the producers heard from last (a
     * table remembers SP_DEDUP_SLOTS of them) */
    uint64_t *recent = NULL;
    size_t nrecent = 0;
    if (rc == 0) {
        rc = s_recent_producers(&recs, &recent, &nrecent);
    }
    for (size_t k = 0; rc == 0 && k < recs.n; k++) {
        const sp_jrec_t *r = &recs.v[k];
        uint64_t id = r->producer_id;
        if (r->kind != SP_JREC_KIND_OUTCOME ||
            bsearch(&id, recent, nrecent, sizeof *recent, s_u64_cmp) == NULL) {
            continue;
        }
        sp_commit_view_t v = {.producer = r->producer_id,
                              .product = r->product_id,
                              .quantity = r->quantity,
                              .version = r->version,
                              .stock = r->stock_after,
                              .seq = r->seq,
                              .type = r->type,
                              .status = r->status};
        sp_commit_restore_entry(t, &v);
    }
    free(recent);

    free(start);
    free(recs.v);
    if (rc == 0) {
        rc = s_check_holds(t, why, cap, journal_dir);
    }
    if (rc == 0) {
        /* the audit must hold for what we rebuilt */
        uint32_t bad[SP_RECOVER_SHOW];
        size_t nbad = sp_table_audit(t, bad, SP_RECOVER_SHOW);
        if (nbad > 0) {
            sp_why(why, cap,
                   "%s: the replayed journal does not add up for product %u (%zu product(s)): "
                   "refusing to start",
                   journal_dir, bad[0], nbad);
            rc = SP_E_JOURNAL_CORRUPT;
        }
    }
    return rc;
}
