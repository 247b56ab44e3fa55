/*
 * sp_audit — the conservation audit: a load run's counts held against the
 * instance's table.
 *
 * Per product, initial + restocked - sold == stock + held, with the units
 * the producer was told were accepted (its per-product ledger, when given)
 * and with the table's own counters; stock never above SP_STOCK_MAX; and
 * every order sent got exactly one outcome (answered or timed out, nothing
 * unexpected).  Valid when this run was the only producer since the broker
 * started and every order has settled; `bin/producer --audit` and the bench
 * run it after their load.
 *
 * Reads the table (rows' settled stock and tallies) and writes one line;
 * never changes anything.  Safe from any thread or process that has the
 * table mapped.
 */
#ifndef SP_AUDIT_H
#define SP_AUDIT_H

#include "sp_load.h"
#include "sp_table.h"

#include <stdint.h>
#include <stdio.h>

#define SP_AUDIT_SHOW_MAX 20 /* offending products named in the audit line */

/* Audits the run `st` (and, when both are given, its per-product accepted
 * units sold[] and restocked[], indexed by product id up to the table's
 * capacity) against `table`.  Prints "conservation: ok (...)" or
 * "conservation: VIOLATED ..." naming the counts that disagree and up to
 * SP_AUDIT_SHOW_MAX offending products.  Returns 0 when ok, 1 otherwise. */
int sp_audit_check(FILE *out, sp_table_t *table, const sp_load_stats_t *st, const uint64_t *sold,
                   const uint64_t *restocked);

#endif
