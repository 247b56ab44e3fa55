/*
 * Tests for sp_ledger, the producer's per-order ledger: the record's bytes
 * are the file format sp_ledger.h documents (the chaos checker reads them),
 * decoding inverts encoding, and the writer appends whole records, never
 * reuses a file, and refuses what it cannot create with the exact code.
 *
 * Every file lives in a private temporary directory the test removes.
 */
#include "sp_ledger.h"

#include "sp_testutil.h"
#include "sp_wire.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define T_RECORDS 300 /* more than one writer buffer (SP_LEDGER_BUF_RECS) */
#define T_WHY     256

static const sp_ledger_rec_t t_rec = {.producer_id = 0x01020304u,
                                      .type = SP_ORDER_RESERVE,
                                      .status = SP_STATUS_OUT_OF_STOCK,
                                      .product_id = 0x11121314u,
                                      .quantity = 0x21222324u,
                                      .stock_after = 0x31323334u,
                                      .seq = 0x4142434445464748ull};

static char t_dir[128];

static void s_setup(void)
{
    cr_assert(spt_tmpdir(t_dir, sizeof t_dir, "ledger"));
}

static void s_teardown(void)
{
    spt_rmtree(t_dir);
}

/* The size of DIR/ledger-<id>.bin, or -1. */
static long s_file_size(uint32_t producer_id)
{
    char path[256];
    snprintf(path, sizeof path, "%s/ledger-%u.bin", t_dir, producer_id);
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

Test(ledger, a_record_encodes_to_the_documented_bytes)
{
    uint8_t b[SP_LEDGER_REC_SIZE];
    memset(b, 0xaa, sizeof b);
    sp_ledger_encode(b, &t_rec);
    static const uint8_t want[SP_LEDGER_REC_SIZE] = {0x04,
                                                     0x03,
                                                     0x02,
                                                     0x01,
                                                     SP_ORDER_RESERVE,
                                                     SP_STATUS_OUT_OF_STOCK,
                                                     0,
                                                     0,
                                                     0,
                                                     0,
                                                     0,
                                                     0,
                                                     0x14,
                                                     0x13,
                                                     0x12,
                                                     0x11,
                                                     0x24,
                                                     0x23,
                                                     0x22,
                                                     0x21,
                                                     0x34,
                                                     0x33,
                                                     0x32,
                                                     0x31,
                                                     0x48,
                                                     0x47,
                                                     0x46,
                                                     0x45,
                                                     0x44,
                                                     0x43,
                                                     0x42,
                                                     0x41};
    for (size_t i = 0; i < sizeof b; i++) {
        cr_expect_eq(b[i], want[i], "byte %zu: %#x, not %#x", i, b[i], want[i]);
    }
}

Test(ledger, decoding_inverts_encoding)
{
    uint8_t b[SP_LEDGER_REC_SIZE];
    sp_ledger_encode(b, &t_rec);
    sp_ledger_rec_t r;
    memset(&r, 0x55, sizeof r);
    sp_ledger_decode(b, &r);
    cr_expect_eq(r.producer_id, t_rec.producer_id);
    cr_expect_eq(r.type, t_rec.type);
    cr_expect_eq(r.status, t_rec.status);
    cr_expect_eq(r.product_id, t_rec.product_id);
    cr_expect_eq(r.quantity, t_rec.quantity);
    cr_expect_eq(r.stock_after, t_rec.stock_after);
    cr_expect_eq(r.seq, t_rec.seq);
}

Test(ledger, a_writer_appends_every_record_it_flushed, .init = s_setup, .fini = s_teardown)
{
    sp_ledger_t *l = NULL;
    char why[T_WHY] = "";
    cr_assert_eq(sp_ledger_open(&l, t_dir, 7, why, sizeof why), 0, "%s", why);
    for (unsigned i = 0; i < T_RECORDS; i++) {
        sp_ledger_rec_t rec = t_rec;
        rec.seq = i + 1;
        cr_assert_eq(sp_ledger_put(l, &rec), 0);
    }
    cr_expect_eq(sp_ledger_flush(l), 0);
    sp_ledger_close(&l);
    cr_expect_null(l);
    cr_assert_eq(s_file_size(7), (long)T_RECORDS * SP_LEDGER_REC_SIZE);

    char path[256];
    snprintf(path, sizeof path, "%s/ledger-7.bin", t_dir);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    uint8_t b[SP_LEDGER_REC_SIZE];
    for (unsigned i = 0; i < T_RECORDS; i++) {
        cr_assert_eq(fread(b, 1, sizeof b, f), sizeof b);
        sp_ledger_rec_t r;
        sp_ledger_decode(b, &r);
        cr_expect_eq(r.seq, i + 1, "record %u holds seq %llu", i, (unsigned long long)r.seq);
        cr_expect_eq(r.producer_id, t_rec.producer_id);
    }
    fclose(f);
}

Test(ledger, records_not_flushed_are_not_written, .init = s_setup, .fini = s_teardown)
{
    sp_ledger_t *l = NULL;
    char why[T_WHY] = "";
    cr_assert_eq(sp_ledger_open(&l, t_dir, 8, why, sizeof why), 0, "%s", why);
    cr_assert_eq(sp_ledger_put(l, &t_rec), 0);
    cr_expect_eq(s_file_size(8), 0, "nothing is written before a flush");
    sp_ledger_close(&l);
    cr_expect_eq(s_file_size(8), 0);
}

Test(ledger, a_producer_ids_ledger_is_never_reused, .init = s_setup, .fini = s_teardown)
{
    sp_ledger_t *a = NULL, *b = NULL;
    char why[T_WHY] = "";
    cr_assert_eq(sp_ledger_open(&a, t_dir, 9, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_ledger_open(&b, t_dir, 9, why, sizeof why), -EEXIST);
    cr_expect_null(b);
    cr_expect(strstr(why, "ledger-9.bin") != NULL, "why names the file: %s", why);
    sp_ledger_close(&a);
}

Test(ledger, a_missing_directory_is_refused_with_enoent, .init = s_setup, .fini = s_teardown)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/absent", t_dir);
    sp_ledger_t *l = NULL;
    char why[T_WHY] = "";
    cr_expect_eq(sp_ledger_open(&l, dir, 1, why, sizeof why), -ENOENT);
    cr_expect_null(l);
    cr_expect(strstr(why, "cannot create the ledger") != NULL, "%s", why);
}

Test(ledger, close_is_null_safe_and_nulls_the_pointer)
{
    sp_ledger_close(NULL);
    sp_ledger_t *l = NULL;
    sp_ledger_close(&l);
    cr_expect_null(l);
}
