/*
 * sp_apply — validate, commit and answer one order (see sp_apply.h).
 */
#include "sp_apply.h"

#include "sp_error.h"

#include <errno.h>
#include <string.h>

int sp_apply_order(sp_table_t *table, sp_sync_t sync, const sp_order_t *o, uint32_t sender,
                   uint32_t worker_id, uint64_t now_ns, sp_result_t *res, sp_change_t *chg,
                   sp_outcome_t *outcome)
{
    memset(res, 0, sizeof *res);
    memset(chg, 0, sizeof *chg);
    res->producer_id = o->producer_id;
    res->type = o->type;
    res->worker_id = (uint8_t)worker_id;
    res->seq = o->seq;
    res->product_id = o->product_id;
    res->sched_ns = o->sched_ns;
    res->applied_ns = now_ns;
    sp_outcome_t out = {.status = SP_STATUS_INVALID, .original = SP_STATUS_INVALID};
    int rc = 0;
    if (o->producer_id != sender) {
        /* an order must come from the producer it names: refused, and the
         * refusal addressed to whoever sent it */
        res->producer_id = sender;
    } else if (sp_table_hdr(table)->unguarded) {
        /* the benchmark's baseline: the same row change, no dedup record */
        rc = sp_wire_check_order(o);
        if (rc == 0) {
            rc = sp_commit_anonymous(table, sync, o->type, o->product_id, o->quantity, chg);
        }
        out.status = out.original = sp_wire_status_of(rc);
        out.changed = rc == 0;
        out.old_stock = chg->old_stock;
        out.stock = chg->new_stock;
        out.version = chg->version;
        rc = 0;
    } else {
        rc = sp_commit_order_at(table, sync, o, now_ns, &out);
        if (rc == -EUSERS) {
            /* no de-duplication slot for its producer (all are held): its
             * own answer, not "invalid", so the client knows to come back */
            out.status = out.original = SP_STATUS_NO_ROOM;
        }
    }
    res->status = out.status;
    res->original = out.original;
    res->stock_after = out.stock;
    chg->old_stock = out.old_stock;
    chg->new_stock = out.stock;
    chg->version = out.version;
    if (outcome != NULL) {
        *outcome = out;
    }
    if (rc < 0) {
        return rc;
    }
    return out.changed ? 0 : SP_E_INVALID;
}
