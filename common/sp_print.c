/*
 * sp_print — the product table as text (see sp_print.h).
 */
#include "sp_print.h"

void sp_print_table_header(FILE *out)
{
    fprintf(out, "%6s  %-24s %-12s %8s %10s %10s %8s\n", "ID", "NAME", "CATEGORY", "WEIGHT",
            "PRICE", "EXPIRY", "STOCK");
}

void sp_print_product(FILE *out, const sp_product_t *p)
{
    fprintf(out, "%6u  %-24s %-12s %6u.%01u %7llu.%02llu %04u-%02u-%02u %8u\n", p->id, p->name,
            p->category, p->weight_g / 1000, (p->weight_g % 1000) / 100,
            (unsigned long long)(p->price_cents / 100), (unsigned long long)(p->price_cents % 100),
            p->expiry / 10000, (p->expiry / 100) % 100, p->expiry % 100, p->stock);
}

void sp_print_table(FILE *out, sp_table_t *table, uint32_t max_rows)
{
    sp_print_table_header(out);
    uint32_t shown = 0, total = 0;
    uint32_t cap = sp_table_capacity(table);
    for (uint32_t id = 1; id <= cap; id++) {
        sp_product_t p;
        if (sp_table_read(table, id, &p, NULL) < 0) {
            continue;
        }
        total++;
        if (shown >= max_rows) {
            continue;
        }
        shown++;
        sp_print_product(out, &p);
    }
    if (shown < total) {
        fprintf(out, "... %u more products\n", total - shown);
    }
}
