/*
 * sp_ledger — the per-order ledger's record codec and its append-only
 * writer (the layout is in sp_ledger.h).
 */
#include "sp_ledger.h"

#include "sp_error.h"
#include "sp_instance.h"
#include "sp_le.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(SP_LEDGER_REC_SIZE == 32, "the ledger's record size is its file format");

struct sp_ledger {
    int fd;
    size_t len; /* bytes buffered */
    uint8_t buf[SP_LEDGER_REC_SIZE * SP_LEDGER_BUF_RECS];
};

void sp_ledger_encode(uint8_t *out, const sp_ledger_rec_t *r)
{
    memset(out, 0, SP_LEDGER_REC_SIZE);
    sp_le_put32(out, r->producer_id);
    out[4] = r->type;
    out[5] = r->status;
    sp_le_put32(out + 12, r->product_id);
    sp_le_put32(out + 16, r->quantity);
    sp_le_put32(out + 20, r->stock_after);
    sp_le_put64(out + 24, r->seq);
}

void sp_ledger_decode(const uint8_t *in, sp_ledger_rec_t *r)
{
    memset(r, 0, sizeof *r);
    r->producer_id = sp_le_get32(in);
    r->type = in[4];
    r->status = in[5];
    r->product_id = sp_le_get32(in + 12);
    r->quantity = sp_le_get32(in + 16);
    r->stock_after = sp_le_get32(in + 20);
    r->seq = sp_le_get64(in + 24);
}

int sp_ledger_open(sp_ledger_t **out, const char *dir, uint32_t producer_id, char *why, size_t cap)
{
    *out = NULL;
    sp_ledger_t *self = calloc(1, sizeof *self);
    if (self == NULL) {
        sp_why(why, cap, "cannot create the ledger: %s", strerror(ENOMEM));
        return -ENOMEM;
    }
    char path[SP_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/ledger-%u.bin", dir, producer_id);
    self->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (self->fd < 0) {
        int rc = -errno;
        sp_why(why, cap, "cannot create the ledger %s: %s", path, strerror(errno));
        free(self);
        return rc;
    }
    *out = self;
    return 0;
}

int sp_ledger_flush(sp_ledger_t *self)
{
    int rc = 0;
    if (self->len > 0) {
        /* one write per flush and none retried: what a killed customer
         * leaves is whole records, and a failure costs only this buffer */
        ssize_t n = write(self->fd, self->buf, self->len);
        if (n != (ssize_t)self->len) {
            rc = n < 0 ? -errno : -EIO;
        }
    }
    self->len = 0;
    return rc;
}

int sp_ledger_put(sp_ledger_t *self, const sp_ledger_rec_t *rec)
{
    int rc = 0;
    if (self->len + SP_LEDGER_REC_SIZE > sizeof self->buf) {
        rc = sp_ledger_flush(self);
    }
    sp_ledger_encode(self->buf + self->len, rec);
    self->len += SP_LEDGER_REC_SIZE;
    return rc;
}

void sp_ledger_close(sp_ledger_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_ledger_t *self = *self_p;
    close(self->fd);
    free(self);
    *self_p = NULL;
}
