/*
 * sp_shards — a sharded shop as a producer sees it: the list of shard
 * instances (`--instance A,B,...`), the range of product ids each owns, and
 * which shard an order goes to.
 *
 * Each shard is an instance of its own (its broker, table, workers, order
 * path) that owns a contiguous range of product ids (broker --products
 * LO-HI); its WELCOME says which (sp_welcome_t.product_lo/hi).  An instance
 * started without --products owns every id of its table (1 .. capacity),
 * so two of those in one list overlap.  A producer opens one client per
 * shard, refuses ranges that overlap (an order's shard must be one), and
 * sends every order to the shard that owns its product.  With --connect
 * (nats://), the list names the instances reached through those servers.
 *
 * Plain values in caller-owned storage; nothing is allocated.  Errors:
 * SP_E_USAGE with *why naming the list element or the two shards that
 * overlap; sp_shards_probe adds sp_client_open's codes.  Only the probe
 * blocks (opening clients).  Safe from any thread on its own values.
 */
#ifndef SP_SHARDS_H
#define SP_SHARDS_H

#include "sp_client.h"
#include "sp_hello.h"
#include "sp_instance.h"

#include <stddef.h>
#include <stdint.h>

#define SP_SHARDS_MAX 16 /* shards one producer can reach */

typedef struct {
    unsigned n;
    char name[SP_SHARDS_MAX][SP_INSTANCE_NAME_MAX + 1];
    uint32_t lo[SP_SHARDS_MAX], hi[SP_SHARDS_MAX]; /* each one's ids, once known */
} sp_shards_t;

/* Splits "A,B,..." into instance names (one name alone is a list of one).
 * Returns 0, or SP_E_USAGE for an empty element, a bad or repeated name,
 * or more than SP_SHARDS_MAX. */
int sp_shards_parse(sp_shards_t *self, const char *list, char *why, size_t cap);

/* Records shard i's range from its WELCOME: product_lo..product_hi, or
 * 1..capacity for an instance that is not a shard. */
void sp_shards_set(sp_shards_t *self, unsigned i, const sp_welcome_t *w);

/* With every range set: 0 when no two overlap, else SP_E_USAGE naming the
 * two shards and their ranges. */
int sp_shards_check(const sp_shards_t *self, char *why, size_t cap);

/* The shard whose range holds `product`, or -1 (none does). */
int sp_shards_owner(const sp_shards_t *self, uint32_t product);

/* "A 1-5, B 6-10" into buf, for messages. */
const char *sp_shards_describe(const sp_shards_t *self, char *buf, size_t cap);

/* For a one-shot order: opens a plain client (a new id, this process's) to
 * every shard in turn with `base` (its instance replaced), learns the
 * ranges, checks them and closes those clients.  Returns 0 with *owner the
 * shard of `product`, SP_E_UNKNOWN_PRODUCT when none owns it, or the
 * client's or check's code, always with *why. */
int sp_shards_probe(sp_shards_t *self, const sp_client_cfg_t *base, uint32_t product,
                    unsigned *owner, char *why, size_t cap);

#endif
