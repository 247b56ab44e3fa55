/*
 * sp_snapshot — write the table to one checksummed file, read it back.
 */
#include "sp_snapshot.h"

#include "sp_commit.h"
#include "sp_crc.h"
#include "sp_error.h"
#include "sp_grow.h"
#include "sp_file.h"
#include "sp_le.h"
#include "sp_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAGIC   "SPSNAP01"
#define S_VERSION 1u
#define S_HDR     64u
#define S_ROW     176u
#define S_ENTRY   40u
#define S_HOLD    24u
#define S_TRAILER 4u

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int err;
} s_buf_t;

#define S_BUF_FIRST (1u << 16) /* bytes of a snapshot buffer before its first growth */

static uint8_t *s_grow(s_buf_t *b, size_t n)
{
    if (b->err != 0) {
        return NULL;
    }
    uint8_t *p = sp_grow(b->p, &b->cap, b->len + n, 1, S_BUF_FIRST);
    if (p == NULL) {
        b->err = -ENOMEM;
        return NULL;
    }
    b->p = p;
    uint8_t *at = b->p + b->len;
    memset(at, 0, n);
    b->len += n;
    return at;
}

typedef struct {
    s_buf_t *b;
    uint32_t n;
} s_count_t;

static void s_entry(void *ctx, uint32_t producer, uint64_t seq, uint64_t what, uint64_t res,
                    uint64_t out)
{
    s_count_t *c = ctx;
    uint8_t *p = s_grow(c->b, S_ENTRY);
    if (p != NULL) {
        sp_le_put32(p, producer);
        sp_le_put64(p + 8, seq);
        sp_le_put64(p + 16, what);
        sp_le_put64(p + 24, res);
        sp_le_put64(p + 32, out);
        c->n++;
    }
}

static void s_hold(void *ctx, uint32_t producer, uint64_t reserve_seq, uint32_t product,
                   uint32_t qty)
{
    s_count_t *c = ctx;
    uint8_t *p = s_grow(c->b, S_HOLD);
    if (p != NULL) {
        sp_le_put32(p, producer);
        sp_le_put32(p + 4, product);
        sp_le_put32(p + 8, qty);
        sp_le_put64(p + 16, reserve_seq);
        c->n++;
    }
}

int sp_snapshot_save(sp_table_t *t, const char *path, uint64_t epoch, sp_snapshot_info_t *info,
                     char *why, size_t cap)
{
    s_buf_t b = {0};
    sp_table_hdr_t *h = sp_table_hdr(t);
    uint8_t *hdr = s_grow(&b, S_HDR); /* filled last, when the counts are known */
    uint32_t rows = 0;
    for (uint32_t id = 1; id <= sp_table_capacity(t); id++) {
        sp_row_t *r = sp_table_row(t, id);
        uint8_t *p = r != NULL ? s_grow(&b, S_ROW) : NULL;
        if (p == NULL) {
            continue;
        }
        sp_row_image_t img;
        sp_commit_row_image(t, r, &img);
        sp_le_put32(p, id);
        sp_le_put32(p + 4, img.stock);
        sp_le_put32(p + 8, img.version);
        sp_le_put32(p + 12, img.held);
        sp_le_put64(p + 16, img.sold);
        sp_le_put64(p + 24, img.restocked);
        sp_le_put64(p + 32, img.last);
        sp_le_put32(p + 40, r->weight_g);
        sp_le_put32(p + 44, r->expiry);
        sp_le_put64(p + 48, r->price_cents);
        sp_le_put32(p + 56, r->initial_stock);
        /* the smaller of the row's field and the file's (48 and 32 bytes): equal
         * today, and still right if the row's ever changes */
        /* NOLINTNEXTLINE(bugprone-branch-clone) */
        memcpy(p + 64, r->name, SP_NAME_MAX < 48 ? SP_NAME_MAX : 48);
        /* NOLINTNEXTLINE(bugprone-branch-clone) */
        memcpy(p + 112, r->category, SP_CATEGORY_MAX < 32 ? SP_CATEGORY_MAX : 32);
        rows++;
    }
    s_count_t entries = {.b = &b}, holds = {.b = &b};
    sp_commit_each(t, s_entry, NULL, &entries);
    sp_commit_each(t, NULL, s_hold, &holds);
    s_grow(&b, S_TRAILER);
    if (b.err != 0) {
        free(b.p);
        sp_why(why, cap, "cannot build the snapshot: %s", sp_strerror(b.err));
        return b.err;
    }
    hdr = b.p; /* the buffer may have moved */
    uint8_t *trailer = b.p + b.len - S_TRAILER;
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): 8 magic bytes, not a string */
    memcpy(hdr, S_MAGIC, 8);
    sp_le_put32(hdr + 8, S_VERSION);
    sp_le_put32(hdr + 12, sp_table_capacity(t));
    sp_le_put32(hdr + 16, rows);
    sp_le_put32(hdr + 20, entries.n);
    sp_le_put32(hdr + 24, holds.n);
    sp_le_put32(hdr + 28, atomic_load(&h->next_producer_id));
    sp_le_put64(hdr + 32, atomic_load(&h->system_seq));
    sp_le_put64(hdr + 40, epoch);
    sp_le_put64(hdr + 48, h->table_id);
    sp_le_put64(hdr + 56, sp_realtime_ns());
    sp_le_put32(trailer, sp_crc32c(0, b.p, b.len - S_TRAILER));
    int rc = sp_file_save(path, b.p, b.len, why, cap);
    if (info != NULL) {
        *info = (sp_snapshot_info_t){
            .epoch = epoch, .rows = rows, .entries = entries.n, .holds = holds.n, .bytes = b.len};
    }
    free(b.p);
    return rc;
}

/* Reads and checks a snapshot; *buf (malloc'd) and *len on success. */
static int s_load(const char *path, uint8_t **buf, size_t *len, char *why, size_t cap)
{
    void *p = NULL;
    int rc = sp_file_read(path, &p, len, SP_SNAPSHOT_MAX, why, cap);
    if (rc < 0) {
        return rc;
    }
    uint8_t *b = p;
    const char *bad = NULL;
    if (*len < S_HDR + S_TRAILER || memcmp(b, S_MAGIC, 8) != 0) {
        bad = "not a stockpipe snapshot";
    } else if (sp_le_get32(b + 8) != S_VERSION) {
        bad = "a snapshot version this broker does not know";
    } else if (sp_le_get32(b + *len - S_TRAILER) != sp_crc32c(0, b, *len - S_TRAILER)) {
        bad = "checksum mismatch (damaged)";
    } else if (S_HDR + (size_t)sp_le_get32(b + 16) * S_ROW + (size_t)sp_le_get32(b + 20) * S_ENTRY +
                   (size_t)sp_le_get32(b + 24) * S_HOLD + S_TRAILER !=
               *len) {
        bad = "its counts do not match its size";
    }
    if (bad != NULL) {
        sp_why(why, cap, "%s: %s; refusing to start", path, bad);
        free(b);
        return SP_E_BAD_LAYOUT;
    }
    *buf = b;
    return 0;
}

int sp_snapshot_catalogue(const char *path, sp_catalogue_t **cat, char *why, size_t cap)
{
    *cat = NULL;
    uint8_t *b;
    size_t len;
    int rc = s_load(path, &b, &len, why, cap);
    if (rc < 0) {
        return rc;
    }
    /* through the catalogue's own CSV parser: the same checks as any file */
    char *csv = NULL;
    size_t csv_len = 0;
    FILE *f = open_memstream(&csv, &csv_len);
    if (f == NULL) {
        free(b);
        return -errno;
    }
    fprintf(f, "%s\n", SP_CSV_HEADER);
    uint32_t rows = sp_le_get32(b + 16);
    for (uint32_t i = 0; i < rows; i++) {
        const uint8_t *p = b + S_HDR + (size_t)i * S_ROW;
        sp_product_t prod;
        memset(&prod, 0, sizeof prod);
        prod.id = sp_le_get32(p);
        prod.stock = sp_le_get32(p + 56); /* the initial stock: the counters are cumulative */
        prod.weight_g = sp_le_get32(p + 40);
        prod.expiry = sp_le_get32(p + 44);
        prod.price_cents = sp_le_get64(p + 48);
        memcpy(prod.name, p + 64, sizeof prod.name < 48 ? sizeof prod.name : 48);
        memcpy(prod.category, p + 112, sizeof prod.category < 32 ? sizeof prod.category : 32);
        prod.name[sizeof prod.name - 1] = '\0';
        prod.category[sizeof prod.category - 1] = '\0';
        sp_catalogue_write_row(f, &prod);
    }
    /* a memory stream that ran out of memory holds a cut CSV: never parse it */
    int closed = fclose(f);
    free(b);
    *cat = closed == 0 ? sp_catalogue_new() : NULL;
    if (*cat == NULL) {
        free(csv);
        sp_why(why, cap, "%s: out of memory building its catalogue", path);
        return -ENOMEM;
    }
    sp_csv_error_t err;
    rc = sp_catalogue_parse(*cat, csv, csv_len, &err);
    if (rc < 0) {
        sp_why(why, cap, "%s: its products do not parse (line %ld: %s)", path, err.line,
               err.message);
        sp_catalogue_destroy(cat);
    }
    free(csv);
    return rc;
}

int sp_snapshot_restore(sp_table_t *t, const char *path, sp_snapshot_info_t *info, char *why,
                        size_t cap)
{
    uint8_t *b;
    size_t len;
    int rc = s_load(path, &b, &len, why, cap);
    if (rc < 0) {
        return rc;
    }
    uint32_t rows = sp_le_get32(b + 16), entries = sp_le_get32(b + 20), holds = sp_le_get32(b + 24);
    const uint8_t *p = b + S_HDR;
    for (uint32_t i = 0; i < rows; i++, p += S_ROW) {
        sp_commit_restore_row(t, sp_le_get32(p), sp_le_get32(p + 4), sp_le_get32(p + 8),
                              sp_le_get64(p + 16), sp_le_get64(p + 24), sp_le_get32(p + 12),
                              sp_le_get64(p + 32));
    }
    /* holds first: their units are in the rows' held counts, so each needs
     * a slot; remembered outcomes only fill the slots left */
    const uint8_t *ents = p, *hs = p + (size_t)entries * S_ENTRY;
    for (uint32_t i = 0; rc == 0 && i < holds; i++, hs += S_HOLD) {
        rc = sp_commit_restore_hold(t, sp_le_get32(hs), sp_le_get64(hs + 16), sp_le_get32(hs + 4),
                                    sp_le_get32(hs + 8));
    }
    for (uint32_t i = 0; rc == 0 && i < entries; i++, ents += S_ENTRY) {
        sp_commit_restore_raw(t, sp_le_get32(ents), sp_le_get64(ents + 8), sp_le_get64(ents + 16),
                              sp_le_get64(ents + 24), sp_le_get64(ents + 32));
    }
    sp_table_hdr_t *h = sp_table_hdr(t);
    h->table_id = sp_le_get64(b + 48);
    atomic_store(&h->next_producer_id, sp_le_get32(b + 28));
    atomic_store(&h->system_seq, sp_le_get64(b + 32));
    if (info != NULL) {
        *info = (sp_snapshot_info_t){.epoch = sp_le_get64(b + 40),
                                     .rows = rows,
                                     .entries = entries,
                                     .holds = holds,
                                     .bytes = len};
    }
    free(b);
    if (rc < 0) {
        sp_why(why, cap, "%s: holds of more producers than a table remembers", path);
    }
    return rc;
}
