/*
 * sp_crc — CRC-32C (Castagnoli), the checksum of every persistent record.
 *
 * CRC-32C rather than zlib's CRC-32 because it detects more error patterns
 * at the record sizes we write and it is the checksum of iSCSI, ext4 and
 * Btrfs metadata, so known check values are easy to compare against.  It
 * uses the CPU's crc32 instruction where there is one (x86-64 with SSE4.2,
 * detected once), else software (slicing-by-8); both give the same result.
 *
 * Pure: nothing to own or free, nothing that fails, nothing that blocks.  The
 * lookup tables are built once per process (pthread_once), so it is safe from
 * any thread.
 */
#ifndef SP_CRC_H
#define SP_CRC_H

#include <stddef.h>
#include <stdint.h>

/* The standard check value: sp_crc32c(0, "123456789", 9). */
#define SP_CRC32C_CHECK 0xE3069283u

/* CRC-32C of len bytes at buf, continuing from crc (start with 0).  Feeding
 * a buffer in pieces gives the same result as feeding it at once:
 * sp_crc32c(sp_crc32c(0, a, n), b, m) == CRC of a followed by b.  Reflected
 * polynomial 0x82F63B78, initial value and final xor ~0 (handled inside, so
 * callers chain plain results).  Thread-safe; never blocks. */
uint32_t sp_crc32c(uint32_t crc, const void *buf, size_t len);

/* The same in software alone (what sp_crc32c falls back to), so that the
 * tests can hold the two against each other on any machine. */
uint32_t sp_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
