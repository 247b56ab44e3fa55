/*
 * sp_catalogue — the shop's product catalogue, read from CSV.
 *
 * The file format is the original shop's:
 *
 *     id_reg,name,category,weight,price,expiry,stock
 *     1,Nuggets de pollo,Aves,0.8,120,2024-10-30,27
 *
 * Cells follow RFC 4180 (double-quoted cells may hold commas, doubled quotes
 * and line breaks; CRLF or LF line ends; a UTF-8 BOM is skipped).  Values are
 * converted to the integer units the shared table and the wire use: weight
 * in kilograms -> grams, price in currency units -> cents, expiry
 * YYYY-MM-DD -> YYYYMMDD.  Anything malformed is refused with the 1-based
 * line number, the 1-based field number and a sentence naming the problem;
 * nothing is half-loaded.
 *
 * The catalogue is a process-local, heap-owned array; the shared table copies
 * it into shared memory.
 *
 * Ownership: sp_catalogue_new allocates, sp_catalogue_destroy frees; a
 * product sp_catalogue_get returns is borrowed until the next parse, load
 * or destroy.  Errors: 0 or SP_E_CSV_* / -errno with the place in an
 * sp_csv_error_t.  Blocking: only sp_catalogue_load reads a file.  Not
 * locked: one thread uses a catalogue at a time (reading one from several
 * threads is fine once it is loaded).
 */
#ifndef SP_CATALOGUE_H
#define SP_CATALOGUE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SP_NAME_MAX        48              /* bytes of a product name, NUL included */
#define SP_CATEGORY_MAX    32              /* bytes of a category, NUL included */
#define SP_PRODUCT_ID_MAX  16777216u       /* highest accepted id_reg (2^24) */
#define SP_STOCK_MAX       1000000000u     /* highest stock a product may hold */
#define SP_WEIGHT_MAX_G    100000000u      /* 100 t, in grams */
#define SP_PRICE_MAX_CENTS 100000000000ull /* 1e9 currency units, in cents */
#define SP_CSV_LINE_MAX    4096            /* longest accepted record, bytes */
#define SP_CSV_HEADER      "id_reg,name,category,weight,price,expiry,stock"
#define SP_CSV_COLUMNS     7

typedef struct {
    uint32_t id;                    /* 1 .. SP_PRODUCT_ID_MAX */
    char name[SP_NAME_MAX];         /* UTF-8, NUL-terminated, non-empty */
    char category[SP_CATEGORY_MAX]; /* UTF-8, NUL-terminated, non-empty */
    uint32_t weight_g;              /* grams */
    uint64_t price_cents;           /* cents */
    uint32_t expiry;                /* YYYYMMDD, a real calendar date */
    uint32_t stock;                 /* 0 .. SP_STOCK_MAX */
} sp_product_t;

/* Where a parse failed.  line and field are 1-based; field is 0 when the
 * problem is the line as a whole (e.g. wrong number of columns). */
typedef struct {
    long line;
    int field;
    char message[160];
} sp_csv_error_t;

typedef struct sp_catalogue sp_catalogue_t;

/* Empty catalogue; NULL with errno = ENOMEM on failure. */
sp_catalogue_t *sp_catalogue_new(void);

/* Frees the catalogue and sets *self_p to NULL; NULL-safe. */
void sp_catalogue_destroy(sp_catalogue_t **self_p);

/* Parses a whole CSV document held in memory (need not be NUL-terminated)
 * and appends its products.  Returns 0, or SP_E_CSV_SYNTAX, SP_E_CSV_FIELD,
 * SP_E_CSV_HEADER, SP_E_CSV_DUP_ID, SP_E_CSV_EMPTY or -ENOMEM with *err filled
 * in (err may be NULL).  On failure the catalogue is left empty. */
int sp_catalogue_parse(sp_catalogue_t *self, const char *text, size_t len, sp_csv_error_t *err);

/* Reads and parses a file.  Also returns -errno when the file cannot be read
 * (err->line is 0 then). */
int sp_catalogue_load(sp_catalogue_t *self, const char *path, sp_csv_error_t *err);

/* Products held, and the highest id among them (0 for an empty or NULL
 * catalogue). */
size_t sp_catalogue_count(const sp_catalogue_t *self);
uint32_t sp_catalogue_max_id(const sp_catalogue_t *self);
/* Keeps only the products whose id is in [lo, hi] (file order kept) and
 * recomputes the highest id.  Returns how many products are left (0: none
 * was in the range; the catalogue is then empty).  Cannot fail. */
size_t sp_catalogue_keep_range(sp_catalogue_t *self, uint32_t lo, uint32_t hi);
/* Product at index 0 .. count-1, in file order. */
const sp_product_t *sp_catalogue_get(const sp_catalogue_t *self, size_t index);

/* Writes one product as a CSV line in the format above (cells quoted when
 * they hold a comma, quote or line break; a cell a spreadsheet would run as
 * a formula — starting with =, +, -, @, tab or CR — is prefixed with a single
 * quote).  weight/price are written with the fewest decimals that keep them
 * exact ("0.8", "120", "12.50").  Returns 0 or -errno.
 *
 * Round trip: sp_catalogue_parse removes one leading quote from a text cell
 * that is one or more quotes followed by a trigger, and the writer also
 * prefixes text that already has that shape, so every written row reads back
 * as the same product ("=SUM(A1)" <-> "'=SUM(A1)", "'=x" <-> "''=x"; "'Tis"
 * is left alone both ways).  A product the reader would refuse (empty or
 * invalid text, a value out of range, a date not on the calendar) is not
 * written: -EINVAL. */
int sp_catalogue_write_row(FILE *out, const sp_product_t *product);

#endif
