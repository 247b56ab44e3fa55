/*
 * sp_args — strict parsing of flag values, shared by every main.
 *
 * A value is accepted only when the whole string is a number in range; the
 * error message names the flag, the value and the range, e.g.
 * "--workers: 'abc' is not a whole number from 1 to 64".
 */
#ifndef SP_ARGS_H
#define SP_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0 or SP_E_USAGE with *why filled. */
int sp_arg_u64(const char *flag, const char *value, uint64_t min, uint64_t max, uint64_t *out,
               char *why, size_t cap);
int sp_arg_u32(const char *flag, const char *value, uint32_t min, uint32_t max, uint32_t *out,
               char *why, size_t cap);
int sp_arg_double(const char *flag, const char *value, double min, double max, double *out,
                  char *why, size_t cap);

/* Parses a duration: "10", "10s", "500ms", "2m".  Seconds out. */
int sp_arg_duration(const char *flag, const char *value, double *seconds, char *why, size_t cap);

#endif
