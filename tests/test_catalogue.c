/*
 * test_catalogue — behaviours of the CSV catalogue reader and writer.
 *
 * Most tests feed a small document to sp_catalogue_parse and check the exact
 * error code, line and field; a few load real files (the shop's
 * data/products.csv, a generated catalogue, a missing path).  Data files are
 * found through SP_DATA_DIR, falling back to "data" for runs from the
 * repository root.
 */
#include "sp_catalogue.h"
#include "sp_error.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEADER   SP_CSV_HEADER "\n"
#define GOOD_ROW "1,Nuggets de pollo,Aves,0.8,120,2024-10-30,27\n"

/* Products the generator test asks for, and the stock it gives them all. */
#define GEN_COUNT 2000u
#define GEN_STOCK 7u

/* Exit status the generator promises for bad arguments. */
#define GEN_USAGE_EXIT 2

/* Room for a data-file path or a shell command built from one. */
#define PATH_BUF 4096

/* Reads a generated catalogue from a pipe in chunks of this size. */
#define PIPE_CHUNK 65536u

static const char *s_data_dir(void)
{
    const char *dir = getenv("SP_DATA_DIR");
    return dir && *dir ? dir : "data";
}

/* Parses text into a fresh catalogue the caller destroys. */
static int s_parse(sp_catalogue_t **cat, const char *text, sp_csv_error_t *err)
{
    *cat = sp_catalogue_new();
    cr_assert_not_null(*cat);
    memset(err, 0, sizeof(*err));
    return sp_catalogue_parse(*cat, text, strlen(text), err);
}

/* Parses text that must fail and checks code, line, field and that nothing
 * was kept. */
static void s_expect_failure(const char *text, int code, long line, int field)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, text, &err);
    cr_expect_eq(rc, code, "code %d (%s), wanted %d; message: %s", rc, sp_strerror(rc), code,
                 err.message);
    cr_expect_eq(err.line, line, "line %ld, wanted %ld; message: %s", err.line, line, err.message);
    cr_expect_eq(err.field, field, "field %d, wanted %d; message: %s", err.field, field,
                 err.message);
    cr_expect_neq(err.message[0], '\0', "a failure always explains itself");
    cr_expect_eq(sp_catalogue_count(cat), 0);
    sp_catalogue_destroy(&cat);
}

/* A document of the header and one row built from the given cells. */
static void s_row_doc(char *buf, size_t cap, const char *row)
{
    snprintf(buf, cap, "%s%s\n", HEADER, row);
}

static void s_expect_row_failure(const char *row, int code, int field)
{
    char doc[SP_CSV_LINE_MAX * 2];
    s_row_doc(doc, sizeof(doc), row);
    s_expect_failure(doc, code, 2, field);
}

/* Parses one row and returns the product it became (copied out). */
static sp_product_t s_row_product(const char *row)
{
    char doc[SP_CSV_LINE_MAX * 2];
    s_row_doc(doc, sizeof(doc), row);
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, doc, &err);
    cr_assert_eq(rc, 0, "row %s refused: %s", row, err.message);
    cr_assert_eq(sp_catalogue_count(cat), 1);
    sp_product_t product = *sp_catalogue_get(cat, 0);
    sp_catalogue_destroy(&cat);
    return product;
}

/* Writes a product with write_row into memory; the caller frees. */
static char *s_write(const sp_product_t *product, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    cr_assert_not_null(out);
    *rc = sp_catalogue_write_row(out, product);
    cr_assert_eq(fclose(out), 0);
    return buf;
}

/* Writes a product, parses the row back and expects the very same product. */
static void s_expect_round_trip(const sp_product_t *product, const char *want_row)
{
    int rc = 0;
    char *row = s_write(product, &rc);
    cr_assert_eq(rc, 0, "write_row refused %s", product->name);
    if (want_row) {
        cr_expect_str_eq(row, want_row);
    }
    char doc[SP_CSV_LINE_MAX];
    snprintf(doc, sizeof(doc), "%s%s", HEADER, row);
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    rc = s_parse(&cat, doc, &err);
    cr_assert_eq(rc, 0, "row %s did not read back: %s", row, err.message);
    cr_assert_eq(sp_catalogue_count(cat), 1);
    const sp_product_t *back = sp_catalogue_get(cat, 0);
    cr_expect_eq(back->id, product->id);
    cr_expect_str_eq(back->name, product->name);
    cr_expect_str_eq(back->category, product->category);
    cr_expect_eq(back->weight_g, product->weight_g);
    cr_expect_eq(back->price_cents, product->price_cents);
    cr_expect_eq(back->expiry, product->expiry);
    cr_expect_eq(back->stock, product->stock);
    sp_catalogue_destroy(&cat);
    free(row);
}

static sp_product_t s_product(uint32_t id, const char *name, const char *category,
                              uint32_t weight_g, uint64_t price_cents, uint32_t expiry,
                              uint32_t stock)
{
    sp_product_t product;
    memset(&product, 0, sizeof(product));
    product.id = id;
    snprintf(product.name, sizeof(product.name), "%s", name);
    snprintf(product.category, sizeof(product.category), "%s", category);
    product.weight_g = weight_g;
    product.price_cents = price_cents;
    product.expiry = expiry;
    product.stock = stock;
    return product;
}

/* ------------------------------------------------------------ good input */

Test(catalogue, loads_the_shop_catalogue_with_exact_values)
{
    static const sp_product_t want[] = {
        {1, "Nuggets de pollo", "Aves", 800, 12000, 20241030, 27},
        {2, "Pan de ajo grande", "Panaderia", 300, 5000, 20241015, 29},
        {3, "Yogurt natural nuez", "Lacteos", 500, 2500, 20241030, 40},
        {4, "Filete de res Angus", "Carne", 1200, 25000, 20241231, 20},
        {5, "Helado de vainilla", "Helados", 1500, 10000, 20240930, 10},
        {6, "Bolsa de vegetales", "Vegetales", 500, 8000, 20241210, 12},
        {7, "Galletas de nuez", "Galletas", 200, 2000, 20241115, 21},
        {8, "Camarones jumbo", "Mariscos", 500, 18000, 20241115, 5},
        {9, "Salsa de tomate", "Salsas", 500, 3000, 20241231, 12},
        {10, "Pan de ajo chico", "Panaderia", 100, 2000, 20241015, 30},
    };
    char path[PATH_BUF];
    snprintf(path, sizeof(path), "%s/products.csv", s_data_dir());
    sp_catalogue_t *cat = sp_catalogue_new();
    cr_assert_not_null(cat);
    sp_csv_error_t err;
    int rc = sp_catalogue_load(cat, path, &err);
    cr_assert_eq(rc, 0, "%s: %s (line %ld)", path, err.message, err.line);
    size_t count = sizeof(want) / sizeof(want[0]);
    cr_assert_eq(sp_catalogue_count(cat), count);
    cr_expect_eq(sp_catalogue_max_id(cat), 10u);
    for (size_t i = 0; i < count; i++) {
        const sp_product_t *got = sp_catalogue_get(cat, i);
        cr_assert_not_null(got);
        cr_expect_eq(got->id, want[i].id);
        cr_expect_str_eq(got->name, want[i].name);
        cr_expect_str_eq(got->category, want[i].category);
        cr_expect_eq(got->weight_g, want[i].weight_g, "id %u weight", want[i].id);
        cr_expect_eq(got->price_cents, want[i].price_cents, "id %u price", want[i].id);
        cr_expect_eq(got->expiry, want[i].expiry, "id %u expiry", want[i].id);
        cr_expect_eq(got->stock, want[i].stock, "id %u stock", want[i].id);
    }
    cr_expect_null(sp_catalogue_get(cat, count));
    sp_catalogue_destroy(&cat);
    cr_expect_null(cat);
}

Test(catalogue, reads_a_quoted_name_holding_a_comma)
{
    sp_product_t p = s_row_product("1,\"Queso, curado\",Lacteos,1,2,2024-01-01,3");
    cr_expect_str_eq(p.name, "Queso, curado");
}

Test(catalogue, reads_doubled_quotes_as_one_quote)
{
    sp_product_t p =
        s_row_product("1,\"Salsa \"\"extra\"\" picante\",\"Sal\"\"sas\",1,2,2024-01-01,3");
    cr_expect_str_eq(p.name, "Salsa \"extra\" picante");
    cr_expect_str_eq(p.category, "Sal\"sas");
}

Test(catalogue, reads_quoted_numbers_like_plain_ones)
{
    sp_product_t p = s_row_product("\"4\",Pan,Panaderia,\"0.25\",\"3.5\",\"2024-03-01\",\"9\"");
    cr_expect_eq(p.id, 4u);
    cr_expect_eq(p.weight_g, 250u);
    cr_expect_eq(p.price_cents, 350u);
    cr_expect_eq(p.expiry, 20240301u);
    cr_expect_eq(p.stock, 9u);
}

Test(catalogue, keeps_utf8_names_byte_for_byte)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat,
                     HEADER "1,Piña colada,Bebidas,0.5,3,2024-06-01,1\n"
                            "2,Crème brûlée,Postres,0.2,4.5,2024-06-02,2\n"
                            "3,日本茶 🍵,Bebidas,0.1,7,2024-06-03,3\n",
                     &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_assert_eq(sp_catalogue_count(cat), 3);
    cr_expect_str_eq(sp_catalogue_get(cat, 0)->name, "Pi\xc3\xb1"
                                                     "a colada");
    cr_expect_str_eq(sp_catalogue_get(cat, 1)->name, "Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9"
                                                     "e");
    cr_expect_str_eq(sp_catalogue_get(cat, 2)->name, "日本茶 🍵");
    sp_catalogue_destroy(&cat);
}

Test(catalogue, keeps_leading_and_trailing_spaces_of_text_cells)
{
    sp_product_t p = s_row_product("1,  Pan  , Panaderia ,1,2,2024-01-01,3");
    cr_expect_str_eq(p.name, "  Pan  ");
    cr_expect_str_eq(p.category, " Panaderia ");
}

Test(catalogue, skips_a_utf8_byte_order_mark)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, "\xEF\xBB\xBF" HEADER GOOD_ROW, &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_expect_eq(sp_catalogue_count(cat), 1);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, accepts_crlf_line_ends)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat,
                     SP_CSV_HEADER "\r\n"
                                   "1,Pan,Panaderia,0.3,50,2024-10-15,29\r\n"
                                   "2,\"Queso, curado\",Lacteos,1,2.5,2024-10-16,30\r\n",
                     &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_assert_eq(sp_catalogue_count(cat), 2);
    cr_expect_str_eq(sp_catalogue_get(cat, 0)->name, "Pan");
    cr_expect_eq(sp_catalogue_get(cat, 0)->stock, 29u, "the CR is not part of the last cell");
    cr_expect_str_eq(sp_catalogue_get(cat, 1)->name, "Queso, curado");
    cr_expect_eq(sp_catalogue_get(cat, 1)->stock, 30u);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, accepts_a_final_line_without_newline)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, HEADER "1,Pan,Panaderia,0.3,50,2024-10-15,29", &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_assert_eq(sp_catalogue_count(cat), 1);
    cr_expect_eq(sp_catalogue_get(cat, 0)->stock, 29u);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, skips_empty_lines_but_still_counts_them)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat,
                     HEADER GOOD_ROW "\n\r\n"
                                     "2,Pan,Panaderia,1,1,2024-01-01,1\n\n",
                     &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_expect_eq(sp_catalogue_count(cat), 2);
    sp_catalogue_destroy(&cat);
    /* Line 5 is the first bad record: lines 3 and 4 were empty. */
    s_expect_failure(HEADER GOOD_ROW "\n\r\n"
                                     "2,Pan,Panaderia,1,1,2024-01-01,x\n",
                     SP_E_CSV_FIELD, 5, 7);
}

Test(catalogue, accepts_every_limit_exactly)
{
    sp_product_t p = s_row_product("16777216,N,C,100000,1000000000,9999-12-31,1000000000");
    cr_expect_eq(p.id, SP_PRODUCT_ID_MAX);
    cr_expect_eq(p.weight_g, SP_WEIGHT_MAX_G);
    cr_expect_eq(p.price_cents, SP_PRICE_MAX_CENTS);
    cr_expect_eq(p.expiry, 99991231u);
    cr_expect_eq(p.stock, SP_STOCK_MAX);
    p = s_row_product("1,N,C,0,0,1900-01-01,0");
    cr_expect_eq(p.weight_g, 0u);
    cr_expect_eq(p.price_cents, 0u);
    cr_expect_eq(p.expiry, 19000101u);
    cr_expect_eq(p.stock, 0u);
}

Test(catalogue, converts_weight_to_grams_and_price_to_cents)
{
    sp_product_t p = s_row_product("1,N,C,1.250,12.5,2024-01-01,0");
    cr_expect_eq(p.weight_g, 1250u);
    cr_expect_eq(p.price_cents, 1250u);
    p = s_row_product("1,N,C,0.001,0.05,2024-01-01,0");
    cr_expect_eq(p.weight_g, 1u);
    cr_expect_eq(p.price_cents, 5u);
    p = s_row_product("007,N,C,01.5,007.10,2024-01-01,0042");
    cr_expect_eq(p.id, 7u, "leading zeros are only digits");
    cr_expect_eq(p.weight_g, 1500u);
    cr_expect_eq(p.price_cents, 710u);
    cr_expect_eq(p.stock, 42u);
}

Test(catalogue, accepts_february_29_only_in_leap_years)
{
    cr_expect_eq(s_row_product("1,N,C,1,1,2024-02-29,0").expiry, 20240229u);
    cr_expect_eq(s_row_product("1,N,C,1,1,2000-02-29,0").expiry, 20000229u);
    s_expect_row_failure("1,N,C,1,1,2023-02-29,0", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,N,C,1,1,1900-02-29,0", SP_E_CSV_FIELD, 6);
}

Test(catalogue, appends_a_second_document_and_tracks_the_highest_id)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, HEADER "5,A,C,1,1,2024-01-01,1\n2,B,C,1,1,2024-01-01,1\n", &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_expect_eq(sp_catalogue_max_id(cat), 5u);
    const char *more = HEADER "9,D,C,1,1,2024-01-01,1\n";
    rc = sp_catalogue_parse(cat, more, strlen(more), &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_expect_eq(sp_catalogue_count(cat), 3);
    cr_expect_eq(sp_catalogue_get(cat, 2)->id, 9u);
    cr_expect_eq(sp_catalogue_max_id(cat), 9u);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, accepts_a_null_error_report)
{
    sp_catalogue_t *cat = sp_catalogue_new();
    cr_assert_not_null(cat);
    const char *good = HEADER GOOD_ROW;
    cr_expect_eq(sp_catalogue_parse(cat, good, strlen(good), NULL), 0);
    cr_expect_eq(sp_catalogue_parse(cat, "x", 1, NULL), SP_E_CSV_HEADER);
    cr_expect_eq(sp_catalogue_count(cat), 0);
    sp_catalogue_destroy(&cat);
    sp_catalogue_destroy(&cat); /* NULL-safe once destroyed */
    sp_catalogue_destroy(NULL);
}

Test(catalogue, parses_text_that_is_not_nul_terminated)
{
    /* The length stops before the final "7": the stock must read 1, not 17. */
    static const char doc[] = HEADER GOOD_ROW "2,N,C,1,1,2024-01-01,17";
    sp_catalogue_t *cat = sp_catalogue_new();
    cr_assert_not_null(cat);
    sp_csv_error_t err;
    int rc = sp_catalogue_parse(cat, doc, strlen(doc) - 1u, &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_assert_eq(sp_catalogue_count(cat), 2);
    cr_expect_eq(sp_catalogue_get(cat, 1)->stock, 1u);
    sp_catalogue_destroy(&cat);
}

/* ----------------------------------------------------- document structure */

Test(catalogue, refuses_a_wrong_header_on_line_1)
{
    s_expect_failure("id,name,category,weight,price,expiry,stock\n" GOOD_ROW, SP_E_CSV_HEADER, 1,
                     0);
    s_expect_failure(SP_CSV_HEADER ",extra\n" GOOD_ROW, SP_E_CSV_HEADER, 1, 0);
    s_expect_failure("ID_REG,NAME,CATEGORY,WEIGHT,PRICE,EXPIRY,STOCK\n" GOOD_ROW, SP_E_CSV_HEADER,
                     1, 0);
    s_expect_failure(" " HEADER GOOD_ROW, SP_E_CSV_HEADER, 1, 0);
    s_expect_failure("\n" HEADER GOOD_ROW, SP_E_CSV_HEADER, 1, 0);
    s_expect_failure(GOOD_ROW, SP_E_CSV_HEADER, 1, 0);
}

Test(catalogue, refuses_an_empty_document_as_a_missing_header)
{
    s_expect_failure("", SP_E_CSV_HEADER, 1, 0);
    s_expect_failure("\xEF\xBB\xBF", SP_E_CSV_HEADER, 1, 0);
}

Test(catalogue, refuses_a_catalogue_without_products)
{
    s_expect_failure(HEADER, SP_E_CSV_EMPTY, 1, 0);
    s_expect_failure(SP_CSV_HEADER, SP_E_CSV_EMPTY, 1, 0);
    s_expect_failure(HEADER "\n\r\n\n", SP_E_CSV_EMPTY, 1, 0);
}

Test(catalogue, refuses_a_record_with_too_many_columns_naming_both_counts)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, HEADER GOOD_ROW "2,Pan,Panaderia,0.3,50,2024-10-15,29,extra\n", &err);
    cr_expect_eq(rc, SP_E_CSV_SYNTAX);
    cr_expect_eq(err.line, 3);
    cr_expect_eq(err.field, 0);
    cr_expect_not_null(strstr(err.message, "8"), "%s", err.message);
    cr_expect_not_null(strstr(err.message, "7"), "%s", err.message);
    cr_expect_eq(sp_catalogue_count(cat), 0);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, refuses_a_record_with_too_few_columns)
{
    s_expect_row_failure("2,Pan,Panaderia,0.3,50,2024-10-15", SP_E_CSV_SYNTAX, 0);
    s_expect_row_failure("   ", SP_E_CSV_SYNTAX, 0);
    s_expect_row_failure("\"\"", SP_E_CSV_SYNTAX, 0);
}

Test(catalogue, refuses_an_unterminated_quote_naming_its_field)
{
    s_expect_failure(HEADER GOOD_ROW "2,\"Pan,Panaderia,0.3,50,2024-10-15,29\n", SP_E_CSV_SYNTAX, 3,
                     2);
    s_expect_failure(HEADER GOOD_ROW "2,Pan,Panaderia,0.3,50,2024-10-15,\"29", SP_E_CSV_SYNTAX, 3,
                     7);
}

Test(catalogue, refuses_text_after_a_closing_quote)
{
    s_expect_row_failure("2,\"Pan\" grande,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_SYNTAX, 2);
    s_expect_row_failure("2,Pan,\"Panaderia\"\"\"x,0.3,50,2024-10-15,29", SP_E_CSV_SYNTAX, 3);
}

Test(catalogue, refuses_a_stray_quote_inside_an_unquoted_cell)
{
    s_expect_row_failure("2,Pan \"grande\",Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_SYNTAX, 2);
    s_expect_row_failure("2,Pan,Panaderia,0.3,50,2024-10-15,2\"9", SP_E_CSV_SYNTAX, 7);
}

Test(catalogue, reports_the_line_a_record_with_a_quoted_line_break_starts_on)
{
    /* The record of lines 3-4 holds a line break in its name.  It is cut as
     * one record; the break then makes the name invalid (a control
     * character), reported on line 3, where the record starts. */
    s_expect_failure(HEADER GOOD_ROW "2,\"Pan\nde ajo\",Panaderia,0.3,50,2024-10-15,29\n",
                     SP_E_CSV_FIELD, 3, 2);
    s_expect_failure(HEADER GOOD_ROW "2,\"Pan\r\nde ajo\",Panaderia,0.3,50,2024-10-15,29\r\n",
                     SP_E_CSV_FIELD, 3, 2);
    /* A syntax error found on the record's second physical line is still
     * reported on its first. */
    s_expect_failure(HEADER GOOD_ROW "2,\"Pan\n\nde ajo\",Panaderia,0.3,5\"0,2024-10-15,29\n",
                     SP_E_CSV_SYNTAX, 3, 5);
    /* Two columns spread over three lines: a line-level error on line 2. */
    s_expect_failure(HEADER "2,\"a\nb\",\"c\nd\"\n", SP_E_CSV_SYNTAX, 2, 0);
}

Test(catalogue, refuses_a_record_longer_than_the_line_limit)
{
    /* A record of exactly SP_CSV_LINE_MAX bytes is cut (and then refused for
     * its long name); one byte more is refused as a record. */
    static const char tail[] = ",Aves,0.8,120,2024-10-30,27";
    static char doc[SP_CSV_LINE_MAX * 2];
    size_t name_len = SP_CSV_LINE_MAX - strlen("1,") - strlen(tail);
    size_t n = (size_t)snprintf(doc, sizeof(doc), "%s1,", HEADER);
    memset(doc + n, 'x', name_len);
    snprintf(doc + n + name_len, sizeof(doc) - n - name_len, "%s\n", tail);
    s_expect_failure(doc, SP_E_CSV_FIELD, 2, 2);

    memset(doc + n, 'x', name_len + 1);
    snprintf(doc + n + name_len + 1, sizeof(doc) - n - name_len - 1, "%s\n", tail);
    s_expect_failure(doc, SP_E_CSV_SYNTAX, 2, 0);
}

Test(catalogue, names_the_open_quote_when_a_runaway_cell_passes_the_line_limit)
{
    static char doc[SP_CSV_LINE_MAX * 3];
    size_t n = (size_t)snprintf(doc, sizeof(doc), "%s%s2,\"Pan", HEADER, GOOD_ROW);
    for (int i = 0; i < SP_CSV_LINE_MAX / 2; i++) {
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "x\n");
    }
    s_expect_failure(doc, SP_E_CSV_SYNTAX, 3, 2);
}

/* ------------------------------------------------------------------- id */

Test(catalogue, refuses_an_id_that_is_not_a_whole_number)
{
    s_expect_row_failure("a1,Pan,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_FIELD, 1);
    s_expect_row_failure("-1,Pan,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_FIELD, 1);
    s_expect_row_failure("+1,Pan,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_FIELD, 1);
    s_expect_row_failure("1.0,Pan,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_FIELD, 1);
    s_expect_row_failure(" 1,Pan,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_FIELD, 1);
    s_expect_row_failure(",Pan,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_FIELD, 1);
}

Test(catalogue, refuses_id_zero)
{
    s_expect_row_failure("0,Pan,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_FIELD, 1);
}

Test(catalogue, refuses_an_id_above_the_maximum)
{
    s_expect_row_failure("16777217,Pan,Panaderia,0.3,50,2024-10-15,29", SP_E_CSV_FIELD, 1);
    s_expect_row_failure("99999999999999999999999999,Pan,Panaderia,0.3,50,2024-10-15,29",
                         SP_E_CSV_FIELD, 1);
}

Test(catalogue, refuses_a_duplicate_id_naming_where_it_first_appeared)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat,
                     HEADER "7,A,C,1,1,2024-01-01,1\n"
                            "3,B,C,1,1,2024-01-01,1\n"
                            "\n"
                            "0003,D,C,1,1,2024-01-01,1\n",
                     &err);
    cr_expect_eq(rc, SP_E_CSV_DUP_ID);
    cr_expect_eq(err.line, 5);
    cr_expect_eq(err.field, 1);
    cr_expect_not_null(strstr(err.message, "3"), "%s", err.message);
    cr_expect_not_null(strstr(err.message, "line 3"), "%s", err.message);
    cr_expect_eq(sp_catalogue_count(cat), 0);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, refuses_an_id_already_loaded_from_an_earlier_document)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, HEADER GOOD_ROW, &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    rc = sp_catalogue_parse(cat, HEADER GOOD_ROW, strlen(HEADER GOOD_ROW), &err);
    cr_expect_eq(rc, SP_E_CSV_DUP_ID);
    cr_expect_eq(err.line, 2);
    cr_expect_eq(err.field, 1);
    cr_expect_eq(sp_catalogue_count(cat), 0);
    sp_catalogue_destroy(&cat);
}

/* ------------------------------------------------------------ text cells */

Test(catalogue, refuses_an_empty_name_or_category)
{
    s_expect_row_failure("1,,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,\"\",Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,Pollo,,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 3);
}

Test(catalogue, refuses_malformed_utf8)
{
    /* A lone continuation byte, a lead byte without its continuation, a
     * sequence cut by the end of the cell. */
    s_expect_row_failure("1,Pi\x80"
                         "a,Aves,0.8,120,2024-10-30,27",
                         SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,Pi\xC3(a,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,Pollo,Ave\xE2\x82,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 3);
    s_expect_row_failure("1,\xFF,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
}

Test(catalogue, refuses_overlong_utf8_encodings)
{
    s_expect_row_failure("1,\xC0\xAF,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,\xC1\xBF,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,\xE0\x80\xAF,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,\xF0\x80\x80\xAF,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
}

Test(catalogue, refuses_utf8_surrogates_and_code_points_past_u10ffff)
{
    s_expect_row_failure("1,\xED\xA0\x80,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,\xED\xBF\xBF,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,\xF4\x90\x80\x80,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,\xF5\x80\x80\x80,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    /* The edges themselves are fine: U+D7FF, U+E000, U+10FFFF. */
    cr_expect_str_eq(s_row_product("1,\xED\x9F\xBF,C,1,1,2024-01-01,1").name, "\xED\x9F\xBF");
    cr_expect_str_eq(s_row_product("1,\xEE\x80\x80,C,1,1,2024-01-01,1").name, "\xEE\x80\x80");
    cr_expect_str_eq(s_row_product("1,\xF4\x8F\xBF\xBF,C,1,1,2024-01-01,1").name,
                     "\xF4\x8F\xBF\xBF");
}

Test(catalogue, refuses_control_characters_in_text)
{
    s_expect_row_failure("1,Pollo\tfrito,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,Pollo\x7F,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,Pollo,Av\x01"
                         "es,0.8,120,2024-10-30,27",
                         SP_E_CSV_FIELD, 3);
    s_expect_row_failure("1,Pollo\xC2\x9B,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
    s_expect_row_failure("1,Pollo\rfrito,Aves,0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 2);
}

Test(catalogue, refuses_a_name_or_category_that_does_not_fit)
{
    char row[SP_CSV_LINE_MAX];
    char name[SP_NAME_MAX + 1];
    memset(name, 'n', SP_NAME_MAX - 1);
    name[SP_NAME_MAX - 1] = '\0';
    snprintf(row, sizeof(row), "1,%s,Aves,0.8,120,2024-10-30,27", name);
    cr_expect_str_eq(s_row_product(row).name, name, "47 bytes fit");
    memset(name, 'n', SP_NAME_MAX);
    name[SP_NAME_MAX] = '\0';
    snprintf(row, sizeof(row), "1,%s,Aves,0.8,120,2024-10-30,27", name);
    s_expect_row_failure(row, SP_E_CSV_FIELD, 2);

    char category[SP_CATEGORY_MAX + 1];
    memset(category, 'c', SP_CATEGORY_MAX - 1);
    category[SP_CATEGORY_MAX - 1] = '\0';
    snprintf(row, sizeof(row), "1,Pollo,%s,0.8,120,2024-10-30,27", category);
    cr_expect_str_eq(s_row_product(row).category, category, "31 bytes fit");
    memset(category, 'c', SP_CATEGORY_MAX);
    category[SP_CATEGORY_MAX] = '\0';
    snprintf(row, sizeof(row), "1,Pollo,%s,0.8,120,2024-10-30,27", category);
    s_expect_row_failure(row, SP_E_CSV_FIELD, 3);
}

Test(catalogue, counts_name_length_in_bytes_not_characters)
{
    /* 24 two-byte characters: 48 bytes, one too many. */
    char row[SP_CSV_LINE_MAX];
    char name[SP_NAME_MAX + 1] = "";
    for (int i = 0; i < SP_NAME_MAX / 2; i++) {
        strcat(name, "\xC3\xB1");
    }
    snprintf(row, sizeof(row), "1,%s,Aves,0.8,120,2024-10-30,27", name);
    s_expect_row_failure(row, SP_E_CSV_FIELD, 2);
}

/* --------------------------------------------------------------- numbers */

Test(catalogue, refuses_too_many_decimals)
{
    s_expect_row_failure("1,Pollo,Aves,0.8125,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,0.8,12.345,2024-10-30,27", SP_E_CSV_FIELD, 5);
    s_expect_row_failure("1,Pollo,Aves,0.8,12.500,2024-10-30,27", SP_E_CSV_FIELD, 5);
}

Test(catalogue, refuses_negative_weight_and_price)
{
    s_expect_row_failure("1,Pollo,Aves,-0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,0.8,-120,2024-10-30,27", SP_E_CSV_FIELD, 5);
}

Test(catalogue, refuses_signs_exponents_spaces_and_bare_points)
{
    s_expect_row_failure("1,Pollo,Aves,+0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,8e-1,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,0.8,1E2,2024-10-30,27", SP_E_CSV_FIELD, 5);
    s_expect_row_failure("1,Pollo,Aves, 0.8,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,0.8,120 ,2024-10-30,27", SP_E_CSV_FIELD, 5);
    s_expect_row_failure("1,Pollo,Aves,.8,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,8.,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,0.8,1.2.3,2024-10-30,27", SP_E_CSV_FIELD, 5);
    s_expect_row_failure("1,Pollo,Aves,0,8,120,2024-10-30,27", SP_E_CSV_SYNTAX, 0);
}

Test(catalogue, refuses_empty_number_cells)
{
    s_expect_row_failure("1,Pollo,Aves,,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,0.8,,2024-10-30,27", SP_E_CSV_FIELD, 5);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-10-30,", SP_E_CSV_FIELD, 7);
}

Test(catalogue, refuses_weight_and_price_above_their_maximum)
{
    s_expect_row_failure("1,Pollo,Aves,100000.001,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,100001,120,2024-10-30,27", SP_E_CSV_FIELD, 4);
    s_expect_row_failure("1,Pollo,Aves,0.8,1000000000.01,2024-10-30,27", SP_E_CSV_FIELD, 5);
    s_expect_row_failure("1,Pollo,Aves,0.8,184467440737095516160,2024-10-30,27", SP_E_CSV_FIELD, 5);
    s_expect_row_failure("1,Pollo,Aves,99999999999999999999999.5,1,2024-10-30,27", SP_E_CSV_FIELD,
                         4);
}

Test(catalogue, refuses_negative_stock_naming_line_and_field)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, HEADER GOOD_ROW "2,Pan,Panaderia,0.3,50,2024-10-15,-3\n", &err);
    cr_expect_eq(rc, SP_E_CSV_FIELD);
    cr_expect_eq(err.line, 3);
    cr_expect_eq(err.field, 7);
    cr_expect_str_eq(err.message, "stock: \"-3\" is not a whole number from 0 to 1000000000");
    cr_expect_eq(sp_catalogue_count(cat), 0);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, refuses_stock_above_the_maximum)
{
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-10-30,1000000001", SP_E_CSV_FIELD, 7);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-10-30,4294967296", SP_E_CSV_FIELD, 7);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-10-30,18446744073709551617", SP_E_CSV_FIELD, 7);
}

/* ----------------------------------------------------------------- dates */

Test(catalogue, refuses_a_day_that_is_not_on_the_calendar)
{
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-02-30,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-04-31,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-13-01,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-00-10,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-01-00,27", SP_E_CSV_FIELD, 6);
}

Test(catalogue, refuses_dates_not_written_yyyy_mm_dd)
{
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-2-03,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024/02/03,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,20240203,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-02-03 ,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,2024-+2-03,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,1899-12-31,27", SP_E_CSV_FIELD, 6);
    s_expect_row_failure("1,Pollo,Aves,0.8,120,10000-01-01,27", SP_E_CSV_FIELD, 6);
}

/* --------------------------------------------------------- all or nothing */

Test(catalogue, is_left_empty_after_a_failure)
{
    sp_catalogue_t *cat = NULL;
    sp_csv_error_t err;
    int rc = s_parse(&cat, HEADER GOOD_ROW "2,Pan,Panaderia,0.3,50,2024-10-15,29\n", &err);
    cr_assert_eq(rc, 0, "%s", err.message);
    cr_assert_eq(sp_catalogue_count(cat), 2);
    const char *bad =
        HEADER "3,Pan,Panaderia,0.3,50,2024-10-15,29\n4,Pan,Panaderia,x,50,2024-10-15,29\n";
    rc = sp_catalogue_parse(cat, bad, strlen(bad), &err);
    cr_expect_eq(rc, SP_E_CSV_FIELD);
    cr_expect_eq(err.line, 3);
    cr_expect_eq(err.field, 4);
    cr_expect_eq(sp_catalogue_count(cat), 0);
    cr_expect_eq(sp_catalogue_max_id(cat), 0);
    cr_expect_null(sp_catalogue_get(cat, 0));
    /* And it is usable again afterwards. */
    rc = sp_catalogue_parse(cat, HEADER GOOD_ROW, strlen(HEADER GOOD_ROW), &err);
    cr_expect_eq(rc, 0, "%s", err.message);
    cr_expect_eq(sp_catalogue_count(cat), 1);
    sp_catalogue_destroy(&cat);
}

/* ------------------------------------------------------------------ files */

Test(catalogue, load_of_a_missing_file_returns_enoent_naming_the_path)
{
    sp_catalogue_t *cat = sp_catalogue_new();
    cr_assert_not_null(cat);
    sp_csv_error_t err;
    const char *path = "/nonexistent/stockpipe/products.csv";
    int rc = sp_catalogue_load(cat, path, &err);
    cr_expect_eq(rc, -ENOENT);
    cr_expect_eq(err.line, 0);
    cr_expect_not_null(strstr(err.message, path), "%s", err.message);
    cr_expect_not_null(strstr(err.message, strerror(ENOENT)), "%s", err.message);
    cr_expect_eq(sp_catalogue_count(cat), 0);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, load_of_a_directory_returns_its_read_error)
{
    sp_catalogue_t *cat = sp_catalogue_new();
    cr_assert_not_null(cat);
    sp_csv_error_t err;
    int rc = sp_catalogue_load(cat, s_data_dir(), &err);
    cr_expect_eq(rc, -EISDIR, "%s", err.message);
    cr_expect_eq(err.line, 0);
    sp_catalogue_destroy(&cat);
}

Test(catalogue, load_reports_parse_errors_of_the_file)
{
    char path[] = "/tmp/test_catalogue_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *out = fdopen(fd, "w");
    cr_assert_not_null(out);
    fputs(HEADER GOOD_ROW "1,Pan,Panaderia,0.3,50,2024-10-15,29\n", out);
    cr_assert_eq(fclose(out), 0);
    sp_catalogue_t *cat = sp_catalogue_new();
    cr_assert_not_null(cat);
    sp_csv_error_t err;
    int rc = sp_catalogue_load(cat, path, &err);
    unlink(path);
    cr_expect_eq(rc, SP_E_CSV_DUP_ID);
    cr_expect_eq(err.line, 3);
    cr_expect_eq(err.field, 1);
    sp_catalogue_destroy(&cat);
}

/* Runs a command and returns everything it wrote to stdout; *status gets
 * its wait status. */
static char *s_run_capture(const char *command, size_t *len, int *status)
{
    FILE *pipe = popen(command, "r");
    cr_assert_not_null(pipe, "popen %s", command);
    size_t cap = PIPE_CHUNK;
    size_t used = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (used == cap) {
            cap *= 2u;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        size_t got = fread(buf + used, 1, cap - used, pipe);
        if (got == 0) {
            break;
        }
        used += got;
    }
    *status = pclose(pipe);
    *len = used;
    return buf;
}

Test(catalogue, generated_catalogue_loads_with_the_requested_stock, .timeout = 60)
{
    char command[PATH_BUF];
    snprintf(command, sizeof(command), "bash '%s/gen-catalogue.sh' %u %u", s_data_dir(), GEN_COUNT,
             GEN_STOCK);
    size_t len = 0;
    int status = 0;
    char *text = s_run_capture(command, &len, &status);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %d", command, status);

    sp_catalogue_t *cat = sp_catalogue_new();
    cr_assert_not_null(cat);
    sp_csv_error_t err;
    int rc = sp_catalogue_parse(cat, text, len, &err);
    cr_assert_eq(rc, 0, "line %ld field %d: %s", err.line, err.field, err.message);
    cr_expect_eq(sp_catalogue_count(cat), GEN_COUNT);
    cr_expect_eq(sp_catalogue_max_id(cat), GEN_COUNT);
    size_t with_comma = 0;
    size_t wrong = 0;
    for (size_t i = 0; i < sp_catalogue_count(cat); i++) {
        const sp_product_t *p = sp_catalogue_get(cat, i);
        if (p->stock != GEN_STOCK || p->id != i + 1u) {
            wrong++;
        }
        if (strchr(p->name, ',')) {
            with_comma++;
        }
    }
    cr_expect_eq(wrong, 0, "%zu products with the wrong id or stock", wrong);
    cr_expect_gt(with_comma, 0, "some names hold a comma and so are quoted");
    sp_catalogue_destroy(&cat);
    free(text);
}

Test(catalogue, generator_refuses_bad_arguments_with_usage)
{
    static const char *const bad[] = {"",      "0",      "abc", "16777217", "1 -1", "1 1000000001",
                                      "1 2 x", "1 2 3 4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char command[PATH_BUF];
        snprintf(command, sizeof(command), "bash '%s/gen-catalogue.sh' %s 2>/dev/null",
                 s_data_dir(), bad[i]);
        size_t len = 0;
        int status = 0;
        char *out = s_run_capture(command, &len, &status);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == GEN_USAGE_EXIT,
                  "arguments \"%s\": status %d", bad[i], status);
        cr_expect_eq(len, 0, "arguments \"%s\" wrote to stdout", bad[i]);
        free(out);
    }
}

/* ----------------------------------------------------------------- writer */

Test(catalogue, write_row_uses_the_fewest_decimals_and_iso_dates)
{
    sp_product_t p = s_product(1, "Nuggets de pollo", "Aves", 800, 12000, 20241030, 27);
    s_expect_round_trip(&p, "1,Nuggets de pollo,Aves,0.8,120,2024-10-30,27\n");
    p = s_product(2, "Pan", "Panaderia", 1000, 1250, 20240229, 0);
    s_expect_round_trip(&p, "2,Pan,Panaderia,1,12.50,2024-02-29,0\n");
    p = s_product(3, "Pan", "Panaderia", 1250, 1205, 19000101, 1);
    s_expect_round_trip(&p, "3,Pan,Panaderia,1.25,12.05,1900-01-01,1\n");
    p = s_product(4, "Pan", "Panaderia", 1005, 5, 99991231, 2);
    s_expect_round_trip(&p, "4,Pan,Panaderia,1.005,0.05,9999-12-31,2\n");
    p = s_product(5, "Pan", "Panaderia", 0, 0, 20240101, 3);
    s_expect_round_trip(&p, "5,Pan,Panaderia,0,0,2024-01-01,3\n");
    p = s_product(SP_PRODUCT_ID_MAX, "Pan", "Panaderia", SP_WEIGHT_MAX_G, SP_PRICE_MAX_CENTS,
                  20240101, SP_STOCK_MAX);
    s_expect_round_trip(&p, "16777216,Pan,Panaderia,100000,1000000000,2024-01-01,1000000000\n");
}

Test(catalogue, write_row_quotes_cells_that_need_it)
{
    sp_product_t p = s_product(1, "Queso, curado", "Lacteos", 500, 2500, 20241030, 40);
    s_expect_round_trip(&p, "1,\"Queso, curado\",Lacteos,0.5,25,2024-10-30,40\n");
    p = s_product(2, "Salsa \"extra\"", "Sal\"sas", 500, 2500, 20241030, 40);
    s_expect_round_trip(&p, "2,\"Salsa \"\"extra\"\"\",\"Sal\"\"sas\",0.5,25,2024-10-30,40\n");
    p = s_product(3, "  Pan  ", "Piña colada", 500, 2500, 20241030, 40);
    s_expect_round_trip(&p, "3,  Pan  ,Piña colada,0.5,25,2024-10-30,40\n");
}

Test(catalogue, write_row_neutralises_formula_cells_and_reads_them_back)
{
    sp_product_t p = s_product(1, "=SUM(A1)", "@cat", 500, 2500, 20241030, 40);
    s_expect_round_trip(&p, "1,'=SUM(A1),'@cat,0.5,25,2024-10-30,40\n");
    p = s_product(2, "+1", "-1", 500, 2500, 20241030, 40);
    s_expect_round_trip(&p, "2,'+1,'-1,0.5,25,2024-10-30,40\n");
    p = s_product(3, "=A1,B1", "Salsas", 500, 2500, 20241030, 40);
    s_expect_round_trip(&p, "3,\"'=A1,B1\",Salsas,0.5,25,2024-10-30,40\n");
    /* Text that already looks protected gets one more quote, so reading
     * back (which removes exactly one) restores it. */
    p = s_product(4, "'=SUM(A1)", "''@x", 500, 2500, 20241030, 40);
    s_expect_round_trip(&p, "4,''=SUM(A1),'''@x,0.5,25,2024-10-30,40\n");
    /* An apostrophe that protects nothing is left alone both ways. */
    p = s_product(5, "'Tis", "'", 500, 2500, 20241030, 40);
    s_expect_round_trip(&p, "5,'Tis,',0.5,25,2024-10-30,40\n");
}

Test(catalogue, reads_a_protected_formula_cell_as_its_text)
{
    sp_product_t p = s_row_product("1,'=SUM(A1),Aves,0.8,120,2024-10-30,27");
    cr_expect_str_eq(p.name, "=SUM(A1)");
}

Test(catalogue, write_row_round_trips_every_shop_product)
{
    char path[PATH_BUF];
    snprintf(path, sizeof(path), "%s/products.csv", s_data_dir());
    sp_catalogue_t *cat = sp_catalogue_new();
    cr_assert_not_null(cat);
    sp_csv_error_t err;
    cr_assert_eq(sp_catalogue_load(cat, path, &err), 0, "%s", err.message);
    for (size_t i = 0; i < sp_catalogue_count(cat); i++) {
        s_expect_round_trip(sp_catalogue_get(cat, i), NULL);
    }
    sp_catalogue_destroy(&cat);
}

Test(catalogue, write_row_refuses_a_product_it_could_not_read_back)
{
    const sp_product_t good = s_product(1, "Pan", "Panaderia", 500, 2500, 20241030, 40);
    sp_product_t bad[8];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bad[i] = good;
    }
    bad[0].id = 0;
    bad[1].name[0] = '\0';
    bad[2].category[0] = '\t';
    bad[3].weight_g = SP_WEIGHT_MAX_G + 1u;
    bad[4].price_cents = SP_PRICE_MAX_CENTS + 1u;
    bad[5].expiry = 20230229;
    bad[6].stock = SP_STOCK_MAX + 1u;
    memset(bad[7].name, 'n', sizeof(bad[7].name)); /* no NUL inside the array */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = 0;
        char *row = s_write(&bad[i], &rc);
        cr_expect_eq(rc, -EINVAL, "case %zu", i);
        cr_expect_str_eq(row, "", "case %zu wrote something", i);
        free(row);
    }
    cr_expect_eq(sp_catalogue_write_row(NULL, &good), -EINVAL);
}
