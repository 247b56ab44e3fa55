/*
 * sp_audit — the conservation audit (sp_audit.h).
 */
#include "sp_audit.h"

#include <stdbool.h>

int sp_audit_check(FILE *out, sp_table_t *table, const sp_load_stats_t *st, const uint64_t *sold,
                   const uint64_t *restocked)
{
    uint32_t bad[SP_AUDIT_SHOW_MAX];
    size_t nbad = 0;
    uint32_t cap = sp_table_capacity(table);
    for (uint32_t id = 1; id <= cap; id++) {
        const sp_row_t *r = sp_table_row(table, id);
        if (r == NULL) {
            continue;
        }
        sp_tally_t tl;
        uint64_t stock = sp_row_stock_settled(r, &tl);
        uint64_t t_sold = tl.sold, t_rest = tl.restocked;
        bool ok = stock <= SP_STOCK_MAX && r->initial_stock + t_rest == stock + tl.held + t_sold;
        if (sold != NULL && restocked != NULL) {
            ok = ok && sold[id] == t_sold && restocked[id] == t_rest &&
                 r->initial_stock + restocked[id] == stock + tl.held + sold[id];
        }
        if (!ok) {
            if (nbad < SP_AUDIT_SHOW_MAX) {
                bad[nbad] = id;
            }
            nbad++;
        }
    }
    uint64_t answered = sp_load_answered(st);
    bool counts_ok = answered + st->timed_out == st->sent && st->unexpected == 0;
    if (nbad == 0 && counts_ok) {
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
    if (nbad > 0) {
        fprintf(out, " products:");
        for (size_t i = 0; i < nbad && i < SP_AUDIT_SHOW_MAX; i++) {
            const sp_row_t *r = sp_table_row(table, bad[i]);
            sp_tally_t tl;
            uint32_t stock = sp_row_stock_settled(r, &tl);
            fprintf(out, " %u(initial %u + restocked %llu - sold %llu != stock %u + held %u)",
                    bad[i], r->initial_stock,
                    (unsigned long long)(restocked ? restocked[bad[i]] : tl.restocked),
                    (unsigned long long)(sold ? sold[bad[i]] : tl.sold), stock, tl.held);
        }
        if (nbad > SP_AUDIT_SHOW_MAX) {
            fprintf(out, " and %zu more", nbad - SP_AUDIT_SHOW_MAX);
        }
    }
    fprintf(out, "\n");
    return 1;
}
