/*
 * sp_audit — the conservation audit: a load run's counts held against the
 * instance's table.
 *
 * Per product, initial + restocked - sold == stock + held, with the units
 * the producer was told were accepted (its per-product ledger, when given)
 * and with the table's own counters; stock never above SP_STOCK_MAX; and
 * every order sent got exactly one outcome (answered or timed out, nothing
 * unexpected).  Valid when this run was the instance's only producer while
 * it ran and every order has settled: `bin/producer --audit` passes the
 * table's counters at the run's start plus the run's units as sold[] and
 * restocked[], so that earlier runs do not count against it; the bench
 * runs it after its load on a fresh instance.
 *
 * The rows come from the table itself (sp_audit_check: the `direct`
 * transport and the bench, which map it) or from a snapshot of the broker's
 * snapshot service (sp_audit_rows with the snapshot's held total: a
 * producer that does not map the table).  A snapshot row carries no held
 * units: each row's is what the equation leaves (it must not be negative),
 * and their sum must be the snapshot's HELD.
 *
 * Borrows the table, the rows and the counts; writes one line to the
 * caller's stream; never changes anything and never blocks but on that
 * stream.  The answer is the result (0 ok, 1 violated), not an error code.
 * Safe from any thread or process.
 */
#ifndef SP_AUDIT_H
#define SP_AUDIT_H

#include "sp_load.h"
#include "sp_table.h"
#include "sp_wire.h"

#include <stdint.h>
#include <stdio.h>

#define SP_AUDIT_SHOW_MAX 20 /* offending products named in the audit line */

/* One product as the audit sees it. */
typedef struct {
    uint32_t id;
    uint32_t initial;
    uint32_t stock;
    int64_t held; /* held units; from a snapshot, what the equation leaves */
    uint64_t sold, restocked;
} sp_audit_row_t;

/* Audits the run `st` against `rows` (n of them), as sp_audit_check does;
 * with held_total given, the rows' held units are derived and their sum
 * must equal it.  Prints the same line; returns 0 when ok, 1 otherwise. */
int sp_audit_rows(FILE *out, const sp_audit_row_t *rows, size_t n, const uint64_t *held_total,
                  const sp_load_stats_t *st, const uint64_t *sold, const uint64_t *restocked);

/* A snapshot row as an audit row (its held units derived). */
sp_audit_row_t sp_audit_row_of(const sp_snaprow_t *row);

/* Audits the run `st` (and, when both are given, its per-product accepted
 * units sold[] and restocked[], indexed by product id up to the table's
 * capacity) against `table`.  Prints "conservation: ok (...)" or
 * "conservation: VIOLATED ..." naming the counts that disagree and up to
 * SP_AUDIT_SHOW_MAX offending products.  Returns 0 when ok, 1 otherwise. */
int sp_audit_check(FILE *out, sp_table_t *table, const sp_load_stats_t *st, const uint64_t *sold,
                   const uint64_t *restocked);

#endif
