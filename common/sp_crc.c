/*
 * sp_crc — CRC-32C: the CPU's crc32 instruction where there is one (x86-64
 * with SSE4.2, which computes exactly this polynomial), else table-driven
 * slicing-by-8.
 *
 * Table k holds the CRC of a byte followed by k zero bytes, so eight input
 * bytes fold into the CRC with eight independent lookups instead of eight
 * dependent ones.  The tables are computed once (pthread_once) rather than
 * spelled out as 8 KiB of literals nobody can review.  The instruction was
 * the workers' largest function of their own in `make profile` (3-4 % of
 * the machine, every journal record is checksummed); it takes eight bytes a
 * cycle or so.
 */
#include "sp_crc.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define SP_CRC32C_POLY   0x82F63B78u /* Castagnoli, bit-reflected */
#define SP_CRC_SLICES    8
#define SP_CRC_BYTE_VALS 256

static uint32_t s_table[SP_CRC_SLICES][SP_CRC_BYTE_VALS];
static pthread_once_t s_table_once = PTHREAD_ONCE_INIT;
static bool s_hw; /* the CPU has crc32 (set once, with the tables) */

static void s_table_init(void)
{
#if defined(__x86_64__)
    s_hw = __builtin_cpu_supports("sse4.2");
#endif
    for (uint32_t b = 0; b < SP_CRC_BYTE_VALS; b++) {
        uint32_t c = b;
        for (int bit = 0; bit < 8; bit++) {
            c = (c & 1u) ? (c >> 1) ^ SP_CRC32C_POLY : c >> 1;
        }
        s_table[0][b] = c;
    }
    for (uint32_t b = 0; b < SP_CRC_BYTE_VALS; b++) {
        uint32_t c = s_table[0][b];
        for (int k = 1; k < SP_CRC_SLICES; k++) {
            c = (c >> 8) ^ s_table[0][c & 0xFFu];
            s_table[k][b] = c;
        }
    }
}

/* Little-endian load, independent of alignment and host byte order. */
static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#if defined(__x86_64__)
/* The crc32 instruction on the inverted state, as the tables work on it. */
__attribute__((target("sse4.2"))) static uint32_t s_crc_hw(uint32_t c, const uint8_t *p, size_t len)
{
    uint64_t c64 = c;
    while (len >= sizeof(uint64_t)) {
        uint64_t w;
        memcpy(&w, p, sizeof w); /* x86 is little-endian, as the CRC reads */
        c64 = __builtin_ia32_crc32di(c64, w);
        p += sizeof w;
        len -= sizeof w;
    }
    uint32_t c32 = (uint32_t)c64;
    while (len-- > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    }
    return c32;
}
#endif

uint32_t sp_crc32c(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
    pthread_once(&s_table_once, s_table_init);
    if (s_hw) {
        return ~s_crc_hw(~crc, buf, len);
    }
#endif
    return sp_crc32c_portable(crc, buf, len);
}

uint32_t sp_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&s_table_once, s_table_init);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len >= SP_CRC_SLICES) {
        uint32_t lo = s_le32(p) ^ c;
        uint32_t hi = s_le32(p + 4);
        c = s_table[7][lo & 0xFFu] ^ s_table[6][(lo >> 8) & 0xFFu] ^
            s_table[5][(lo >> 16) & 0xFFu] ^ s_table[4][lo >> 24] ^ s_table[3][hi & 0xFFu] ^
            s_table[2][(hi >> 8) & 0xFFu] ^ s_table[1][(hi >> 16) & 0xFFu] ^ s_table[0][hi >> 24];
        p += SP_CRC_SLICES;
        len -= SP_CRC_SLICES;
    }
    while (len-- > 0) {
        c = (c >> 8) ^ s_table[0][(c ^ *p++) & 0xFFu];
    }
    return ~c;
}
