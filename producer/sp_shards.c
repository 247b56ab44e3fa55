/*
 * sp_shards — the shard list, the ranges and routing (sp_shards.h).
 */
#include "sp_shards.h"

#include "sp_error.h"

#include <stdio.h>
#include <string.h>

int sp_shards_parse(sp_shards_t *self, const char *list, char *why, size_t cap)
{
    memset(self, 0, sizeof *self);
    return sp_instance_list(list, self->name, SP_SHARDS_MAX, &self->n, why, cap);
}

void sp_shards_set(sp_shards_t *self, unsigned i, const sp_welcome_t *w)
{
    bool shard = w->product_lo != 0;
    self->lo[i] = shard ? w->product_lo : 1;
    self->hi[i] = shard ? w->product_hi : (w->capacity > 0 ? w->capacity : 1);
}

int sp_shards_check(const sp_shards_t *self, char *why, size_t cap)
{
    for (unsigned i = 0; i < self->n; i++) {
        for (unsigned j = i + 1; j < self->n; j++) {
            if (self->lo[i] <= self->hi[j] && self->lo[j] <= self->hi[i]) {
                sp_why(why, cap,
                       "shards '%s' (products %u-%u) and '%s' (products %u-%u) overlap: every "
                       "product id must belong to one shard (broker --products LO-HI; an "
                       "instance without it owns its whole table)",
                       self->name[i], self->lo[i], self->hi[i], self->name[j], self->lo[j],
                       self->hi[j]);
                return SP_E_USAGE;
            }
        }
    }
    return 0;
}

int sp_shards_owner(const sp_shards_t *self, uint32_t product)
{
    for (unsigned i = 0; i < self->n; i++) {
        if (product >= self->lo[i] && product <= self->hi[i]) {
            return (int)i;
        }
    }
    return -1;
}

const char *sp_shards_describe(const sp_shards_t *self, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < self->n && used < cap; i++) {
        int k = snprintf(buf + used, cap - used, "%s%s %u-%u", i > 0 ? ", " : "", self->name[i],
                         self->lo[i], self->hi[i]);
        used += k > 0 ? (size_t)k : 0;
    }
    return buf;
}

int sp_shards_probe(sp_shards_t *self, const sp_client_cfg_t *base, uint32_t product,
                    unsigned *owner, char *why, size_t cap)
{
    for (unsigned i = 0; i < self->n; i++) {
        sp_client_cfg_t cc = *base;
        cc.instance = self->name[i];
        cc.producer_id = 0;
        cc.holds_outlive = false;
        sp_client_t *client = NULL;
        int rc = sp_client_open(&client, &cc, why, cap);
        if (rc < 0) {
            char inner[384];
            snprintf(inner, sizeof inner, "%s", why);
            sp_why(why, cap, "shard '%s': %s", self->name[i], inner);
            return rc;
        }
        sp_shards_set(self, i, sp_client_welcome(client));
        sp_client_close(&client);
    }
    int rc = sp_shards_check(self, why, cap);
    if (rc < 0) {
        return rc;
    }
    int at = sp_shards_owner(self, product);
    if (at < 0) {
        char list[256];
        sp_why(why, cap, "product %u belongs to no shard (%s)", product,
               sp_shards_describe(self, list, sizeof list));
        return SP_E_UNKNOWN_PRODUCT;
    }
    *owner = (unsigned)at;
    return 0;
}
