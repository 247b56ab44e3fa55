/*
 * sp_print — the product table as text, the original shop's listing: id,
 * name, category, weight, price, expiry, stock.  Shared by the producer's
 * reports and the monitor's line mode, so both print rows alike.
 *
 * Reads rows through sp_table_read (consistent copies); safe from any
 * thread and process wherever the table may be read, even while orders are
 * applied.  Borrows the table and the stream, allocates nothing, blocks
 * only on the stream.  Nothing here fails: write errors on `out` are the
 * caller's to check.
 */
#ifndef SP_PRINT_H
#define SP_PRINT_H

#include "sp_table.h"

#include <stdint.h>
#include <stdio.h>

/* Prints the table's header line and at most `max_rows` of its products,
 * then how many more there are. */
void sp_print_table(FILE *out, sp_table_t *table, uint32_t max_rows);

/* The header line alone, and one product row. */
void sp_print_table_header(FILE *out);
void sp_print_product(FILE *out, const sp_product_t *p);

#endif
