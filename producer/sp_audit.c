/*
 * sp_audit — the conservation audit (sp_audit.h).
 */
#include "sp_audit.h"

#include <stdbool.h>

#include <stdlib.h>

sp_audit_row_t sp_audit_row_of(const sp_snaprow_t *row)
{
    return (sp_audit_row_t){.id = row->id,
                            .initial = row->initial_stock,
                            .stock = row->stock,
                            .held = (int64_t)row->initial_stock + (int64_t)row->restocked -
                                    (int64_t)row->sold - (int64_t)row->stock,
                            .sold = row->sold,
                            .restocked = row->restocked};
}

static bool s_row_ok(const sp_audit_row_t *r, const uint64_t *sold, const uint64_t *restocked)
{
    if (r->held < 0 || r->stock > SP_STOCK_MAX) {
        return false;
    }
    uint64_t held = (uint64_t)r->held;
    bool ok = (uint64_t)r->initial + r->restocked == r->stock + held + r->sold;
    if (sold != NULL && restocked != NULL) {
        ok = ok && sold[r->id] == r->sold && restocked[r->id] == r->restocked &&
             (uint64_t)r->initial + restocked[r->id] == r->stock + held + sold[r->id];
    }
    return ok;
}

int sp_audit_rows(FILE *out, const sp_audit_row_t *rows, size_t n, const uint64_t *held_total,
                  const sp_load_stats_t *st, const uint64_t *sold, const uint64_t *restocked)
{
    size_t bad[SP_AUDIT_SHOW_MAX];
    size_t nbad = 0;
    int64_t held_sum = 0;
    for (size_t i = 0; i < n; i++) {
        held_sum += rows[i].held;
        if (!s_row_ok(&rows[i], sold, restocked)) {
            if (nbad < SP_AUDIT_SHOW_MAX) {
                bad[nbad] = i;
            }
            nbad++;
        }
    }
    bool held_ok = held_total == NULL || (held_sum >= 0 && (uint64_t)held_sum == *held_total);
    uint64_t answered = sp_load_answered(st);
    bool counts_ok = answered + st->timed_out == st->sent && st->unexpected == 0;
    if (nbad == 0 && counts_ok && held_ok) {
        fprintf(out,
                "conservation: ok (%llu sent = %llu answered + %llu timed out; "
                "initial + restocked - sold = stock for every product)\n",
                (unsigned long long)st->sent, (unsigned long long)answered,
                (unsigned long long)st->timed_out);
        return 0;
    }
    fprintf(out, "conservation: VIOLATED");
    if (!counts_ok) {
        fprintf(out, " (sent %llu, answered %llu, timed out %llu, unexpected %llu)",
                (unsigned long long)st->sent, (unsigned long long)answered,
                (unsigned long long)st->timed_out, (unsigned long long)st->unexpected);
    }
    if (!held_ok) {
        fprintf(out, " (held units: the rows leave %lld, the broker holds %llu)",
                (long long)held_sum, (unsigned long long)*held_total);
    }
    if (nbad > 0) {
        fprintf(out, " products:");
        for (size_t i = 0; i < nbad && i < SP_AUDIT_SHOW_MAX; i++) {
            const sp_audit_row_t *r = &rows[bad[i]];
            fprintf(
                out, " %u(initial %u + restocked %llu - sold %llu != stock %u + held %lld)", r->id,
                r->initial, (unsigned long long)(restocked ? restocked[r->id] : r->restocked),
                (unsigned long long)(sold ? sold[r->id] : r->sold), r->stock, (long long)r->held);
        }
        if (nbad > SP_AUDIT_SHOW_MAX) {
            fprintf(out, " and %zu more", nbad - SP_AUDIT_SHOW_MAX);
        }
    }
    fprintf(out, "\n");
    return 1;
}

int sp_audit_check(FILE *out, sp_table_t *table, const sp_load_stats_t *st, const uint64_t *sold,
                   const uint64_t *restocked)
{
    uint32_t cap = sp_table_capacity(table);
    sp_audit_row_t *rows = malloc(sizeof *rows * (cap > 0 ? cap : 1));
    if (rows == NULL) {
        fprintf(out, "conservation: not checked (out of memory)\n");
        return 1;
    }
    size_t n = 0;
    for (uint32_t id = 1; id <= cap; id++) {
        const sp_row_t *r = sp_table_row(table, id);
        if (r == NULL) {
            continue;
        }
        sp_tally_t tl;
        uint32_t stock = sp_row_stock_settled(r, &tl);
        rows[n++] = (sp_audit_row_t){.id = id,
                                     .initial = r->initial_stock,
                                     .stock = stock,
                                     .held = tl.held,
                                     .sold = tl.sold,
                                     .restocked = tl.restocked};
    }
    int rc = sp_audit_rows(out, rows, n, NULL, st, sold, restocked);
    free(rows);
    return rc;
}
