/*
 * sp_le — little-endian fixed-width fields at any alignment, for everything
 * stockpipe puts on the wire or on disk (messages, journal records,
 * snapshots, ledgers).  memcpy into a local, then convert: a no-op on
 * little-endian hosts, where each compiles to one plain load or store, and
 * the documented bytes on a big-endian one.
 *
 * Pure inline functions: the caller guarantees the bytes are there; nothing
 * fails, allocates or blocks; safe from any thread.
 */
#ifndef SP_LE_H
#define SP_LE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline void sp_le_put16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, sizeof v);
}

static inline void sp_le_put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof v);
}

static inline void sp_le_put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof v);
}

static inline uint16_t sp_le_get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return le16toh(v);
}

static inline uint32_t sp_le_get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return le32toh(v);
}

static inline uint64_t sp_le_get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return le64toh(v);
}

#endif
