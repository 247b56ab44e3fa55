/*
 * sp_rand — a small, fast, reproducible pseudo-random generator
 * (xorshift64*), for picking products and arrival times and for test noise.
 * Not for anything secret.  The state is caller-owned and must not be 0.
 * Pure inline functions: nothing fails, allocates or blocks; a state is not
 * atomic, so each thread keeps its own.
 */
#ifndef SP_RAND_H
#define SP_RAND_H

#include <stdint.h>

/* Next 64 random bits; advances *state. */
static inline uint64_t sp_rand_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform double in (0, 1]. */
static inline double sp_rand_unit(uint64_t *state)
{
    const double two_pow_53 = 9007199254740992.0;
    return ((double)(sp_rand_next(state) >> 11) + 1.0) / two_pow_53;
}

#endif
