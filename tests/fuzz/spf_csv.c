/*
 * spf_csv — fuzz body for the catalogue CSV reader and writer (sp_catalogue).
 *
 * The catalogue is a file people edit, so every byte of it is hostile input.
 * The body checks what sp_catalogue.h promises:
 *
 * - a refused document leaves the catalogue empty and fills the error with
 *   a line >= 0 (>= 1 for a CSV problem, and no further down than the
 *   document has lines), the field of the problem and a non-empty,
 *   NUL-terminated message without control characters;
 * - an accepted document gives products inside their documented ranges
 *   (ids 1 .. SP_PRODUCT_ID_MAX and unique, non-empty NUL-terminated text,
 *   weights, prices and stock at most their maxima, expiry a real calendar
 *   date), and max_id is the largest id;
 * - the same document parsed again into the now full catalogue is refused
 *   as duplicate ids, and that refusal empties the catalogue too;
 * - the products written back with sp_catalogue_write_row under the header
 *   parse into the same products in the same order, and writing those
 *   again gives the same bytes;
 * - no cell the writer produces starts with a spreadsheet formula trigger
 *   (= + - @ tab CR): a text cell that would is prefixed with a quote.
 */
#include "spf.h"

#include "sp_catalogue.h"
#include "sp_error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Date arithmetic for the independent calendar check. */
#define S_YEAR_MIN    1900u
#define S_YEAR_MAX    9999u
#define S_YEAR_SCALE  10000u
#define S_MONTH_SCALE 100u
#define S_MONTHS      12u
#define S_FEBRUARY    2u
#define S_LEAP_EVERY  4u
#define S_LEAP_SKIP   100u
#define S_LEAP_KEEP   400u

/* Bytes below this are control characters, as is DEL. */
#define S_ASCII_SPACE 0x20u
#define S_ASCII_DEL   0x7fu

static bool s_is_leap(unsigned y)
{
    return (y % S_LEAP_EVERY == 0 && y % S_LEAP_SKIP != 0) || y % S_LEAP_KEEP == 0;
}

static bool s_real_date(uint32_t ymd)
{
    static const unsigned days[S_MONTHS] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y = ymd / S_YEAR_SCALE;
    unsigned m = ymd / S_MONTH_SCALE % S_MONTH_SCALE;
    unsigned d = ymd % S_MONTH_SCALE;
    if (y < S_YEAR_MIN || y > S_YEAR_MAX || m < 1 || m > S_MONTHS || d < 1) {
        return false;
    }
    return d <= days[m - 1] + (m == S_FEBRUARY && s_is_leap(y) ? 1u : 0u);
}

/* A text field: NUL-terminated inside its array, non-empty. */
static void s_check_text(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    SPF_CHECK(nul != NULL);
    SPF_CHECK(nul != s);
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Every product in range, ids unique, max_id the largest. */
static void s_check_products(const sp_catalogue_t *cat)
{
    size_t n = sp_catalogue_count(cat);
    SPF_CHECK(n >= 1);
    SPF_CHECK(sp_catalogue_get(cat, n) == NULL);
    uint32_t *ids = malloc(n * sizeof *ids);
    SPF_CHECK(ids != NULL);
    uint32_t max_id = 0;
    for (size_t i = 0; i < n; i++) {
        const sp_product_t *p = sp_catalogue_get(cat, i);
        SPF_CHECK(p != NULL);
        SPF_CHECK(p->id >= 1 && p->id <= SP_PRODUCT_ID_MAX);
        s_check_text(p->name, sizeof p->name);
        s_check_text(p->category, sizeof p->category);
        SPF_CHECK(p->weight_g <= SP_WEIGHT_MAX_G);
        SPF_CHECK(p->price_cents <= SP_PRICE_MAX_CENTS);
        SPF_CHECK(s_real_date(p->expiry));
        SPF_CHECK(p->stock <= SP_STOCK_MAX);
        ids[i] = p->id;
        if (p->id > max_id) {
            max_id = p->id;
        }
    }
    SPF_CHECK(sp_catalogue_max_id(cat) == max_id);
    qsort(ids, n, sizeof *ids, s_cmp_u32);
    for (size_t i = 1; i < n; i++) {
        SPF_CHECK(ids[i - 1] != ids[i]);
    }
    free(ids);
}

/* A refusal: the catalogue empty, the error filled in as documented. */
static void s_check_refusal(const sp_catalogue_t *cat, int rc, const sp_csv_error_t *err,
                            const uint8_t *data, size_t size)
{
    SPF_CHECK(rc == SP_E_CSV_SYNTAX || rc == SP_E_CSV_FIELD || rc == SP_E_CSV_HEADER ||
              rc == SP_E_CSV_DUP_ID || rc == SP_E_CSV_EMPTY || rc == -ENOMEM);
    SPF_CHECK(sp_catalogue_count(cat) == 0);
    SPF_CHECK(sp_catalogue_max_id(cat) == 0);
    SPF_CHECK(sp_catalogue_get(cat, 0) == NULL);
    SPF_CHECK(err->line >= 0);
    SPF_CHECK(err->field >= 0);
    const char *nul = memchr(err->message, '\0', sizeof err->message);
    SPF_CHECK(nul != NULL);
    SPF_CHECK(err->message[0] != '\0');
    for (const char *c = err->message; c < nul; c++) {
        unsigned char b = (unsigned char)*c;
        SPF_CHECK(b >= S_ASCII_SPACE && b != S_ASCII_DEL);
    }
    if (rc == -ENOMEM) {
        return;
    }
    /* a CSV problem names a line of the document */
    long breaks = 0;
    for (size_t i = 0; i < size; i++) {
        breaks += data[i] == '\n' || data[i] == '\r';
    }
    SPF_CHECK(err->line >= 1 && err->line <= breaks + 1);
    if (rc == SP_E_CSV_FIELD) {
        SPF_CHECK(err->field >= 1 && err->field <= SP_CSV_COLUMNS);
    }
    if (rc == SP_E_CSV_DUP_ID) {
        SPF_CHECK(err->field == 1);
    }
    if (rc == SP_E_CSV_HEADER || rc == SP_E_CSV_EMPTY) {
        SPF_CHECK(err->line == 1 && err->field == 0);
    }
}

static bool s_is_trigger(char c)
{
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

/* Walks a written document cell by cell (quotes as the writer makes them)
 * and checks that no cell's first character is a formula trigger. */
static void s_check_no_formula(const char *text, size_t len)
{
    bool at_start = true;
    bool quoted = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (at_start) {
            at_start = false;
            if (c == '"') {
                quoted = true;
                SPF_CHECK(i + 1 < len);
                SPF_CHECK(!s_is_trigger(text[i + 1]));
                continue;
            }
            SPF_CHECK(!s_is_trigger(c));
        }
        if (quoted) {
            if (c == '"') {
                if (i + 1 < len && text[i + 1] == '"') {
                    i++;
                } else {
                    quoted = false;
                }
            }
            continue;
        }
        at_start = c == ',' || c == '\n';
    }
    SPF_CHECK(!quoted);
}

/* The header and every product as sp_catalogue_write_row writes them, in a
 * malloc'd buffer (*text, caller frees). */
static void s_write_all(const sp_catalogue_t *cat, char **text, size_t *len)
{
    FILE *out = open_memstream(text, len);
    SPF_CHECK(out != NULL);
    SPF_CHECK(fputs(SP_CSV_HEADER "\n", out) >= 0);
    for (size_t i = 0; i < sp_catalogue_count(cat); i++) {
        SPF_CHECK(sp_catalogue_write_row(out, sp_catalogue_get(cat, i)) == 0);
    }
    SPF_CHECK(fclose(out) == 0);
}

static void s_check_same(const sp_product_t *a, const sp_product_t *b)
{
    SPF_CHECK(a->id == b->id);
    SPF_CHECK(strcmp(a->name, b->name) == 0);
    SPF_CHECK(strcmp(a->category, b->category) == 0);
    SPF_CHECK(a->weight_g == b->weight_g);
    SPF_CHECK(a->price_cents == b->price_cents);
    SPF_CHECK(a->expiry == b->expiry);
    SPF_CHECK(a->stock == b->stock);
}

/* Write, read back, compare; write again, compare bytes. */
static void s_check_round_trip(const sp_catalogue_t *cat)
{
    char *text = NULL;
    size_t len = 0;
    s_write_all(cat, &text, &len);
    s_check_no_formula(text, len);

    sp_catalogue_t *back = sp_catalogue_new();
    SPF_CHECK(back != NULL);
    sp_csv_error_t err;
    int rc = sp_catalogue_parse(back, text, len, &err);
    if (rc != 0) {
        fprintf(stderr, "written back: %s\nrefused: line %ld field %d: %s\n", text, err.line,
                err.field, err.message);
    }
    SPF_CHECK(rc == 0);
    SPF_CHECK(sp_catalogue_count(back) == sp_catalogue_count(cat));
    SPF_CHECK(sp_catalogue_max_id(back) == sp_catalogue_max_id(cat));
    for (size_t i = 0; i < sp_catalogue_count(cat); i++) {
        s_check_same(sp_catalogue_get(cat, i), sp_catalogue_get(back, i));
    }

    char *text2 = NULL;
    size_t len2 = 0;
    s_write_all(back, &text2, &len2);
    SPF_CHECK(len2 == len && memcmp(text, text2, len) == 0);
    free(text2);
    free(text);
    sp_catalogue_destroy(&back);
}

int spf_csv_one(const uint8_t *data, size_t size)
{
    sp_catalogue_t *cat = sp_catalogue_new();
    if (cat == NULL) {
        return 0;
    }
    sp_csv_error_t err;
    memset(&err, 0xa5, sizeof err); /* the parser must fill all it promises */
    int rc = sp_catalogue_parse(cat, (const char *)data, size, &err);
    if (rc != 0) {
        s_check_refusal(cat, rc, &err, data, size);
        sp_catalogue_destroy(&cat);
        return 0;
    }
    s_check_products(cat);
    s_check_round_trip(cat);

    /* the same document again: every id is taken, so all of it is refused
     * and the catalogue is emptied (all or nothing) */
    memset(&err, 0xa5, sizeof err);
    rc = sp_catalogue_parse(cat, (const char *)data, size, &err);
    SPF_CHECK(rc == SP_E_CSV_DUP_ID || rc == -ENOMEM);
    s_check_refusal(cat, rc, &err, data, size);
    sp_catalogue_destroy(&cat);
    return 0;
}
