/*
 * Tests for sp_args, the strict flag-value parsers every main uses.
 *
 * The point of the module is what it refuses: strtoull and strtod accept
 * leading blanks, signs on unsigned values, trailing junk, overflow and NaN
 * unless every one is checked.  Each refusal here checks the exact code
 * (SP_E_USAGE), that the output was left alone, and that the message names
 * both the flag and the offending value, since that sentence is all a user
 * sees.  Pure functions: no IPC, no files.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sp_args.h"
#include "sp_error.h"

#define T_WHY_CAP 256
#define T_FLAG    "--rate"

/* Output sentinels: a refusal must leave them as they were. */
#define T_U64_SENTINEL    UINT64_C(0x5555555555555555)
#define T_U32_SENTINEL    UINT32_C(0x55555555)
#define T_DOUBLE_SENTINEL -12345.5

/* Duration bound: 366 days, in seconds and in hours. */
#define T_MAX_SECONDS (366.0 * 24 * 3600)
#define T_MAX_HOURS   "8784h"
#define T_OVER_HOURS  "8785h"

#define T_EPSILON 1e-12

/* The message must name the flag and quote the value as given. */
static void s_expect_names(const char *why, const char *flag, const char *value)
{
    char quoted[T_WHY_CAP];
    snprintf(quoted, sizeof quoted, "'%s'", value);
    cr_expect_not_null(strstr(why, flag), "message '%s' does not name %s", why, flag);
    cr_expect_not_null(strstr(why, quoted), "message '%s' does not quote %s", why, quoted);
}

static void s_expect_u64_refused(const char *value, uint64_t min, uint64_t max)
{
    char why[T_WHY_CAP] = "";
    uint64_t out = T_U64_SENTINEL;
    int rc = sp_arg_u64(T_FLAG, value, min, max, &out, why, sizeof why);
    cr_expect_eq(rc, SP_E_USAGE, "'%s' was accepted as %llu", value, (unsigned long long)out);
    cr_expect_eq(out, T_U64_SENTINEL, "'%s' changed the output", value);
    s_expect_names(why, T_FLAG, value);
}

static void s_expect_u32_refused(const char *value, uint32_t min, uint32_t max)
{
    char why[T_WHY_CAP] = "";
    uint32_t out = T_U32_SENTINEL;
    int rc = sp_arg_u32(T_FLAG, value, min, max, &out, why, sizeof why);
    cr_expect_eq(rc, SP_E_USAGE, "'%s' was accepted as %u", value, out);
    cr_expect_eq(out, T_U32_SENTINEL, "'%s' changed the output", value);
    s_expect_names(why, T_FLAG, value);
}

static void s_expect_double_refused(const char *value, double min, double max)
{
    char why[T_WHY_CAP] = "";
    double out = T_DOUBLE_SENTINEL;
    int rc = sp_arg_double(T_FLAG, value, min, max, &out, why, sizeof why);
    cr_expect_eq(rc, SP_E_USAGE, "'%s' was accepted as %g", value, out);
    cr_expect_eq(out, T_DOUBLE_SENTINEL, "'%s' changed the output", value);
    s_expect_names(why, T_FLAG, value);
}

static void s_expect_duration_refused(const char *value)
{
    char why[T_WHY_CAP] = "";
    double out = T_DOUBLE_SENTINEL;
    int rc = sp_arg_duration("--duration", value, &out, why, sizeof why);
    cr_expect_eq(rc, SP_E_USAGE, "'%s' was accepted as %g s", value, out);
    cr_expect_eq(out, T_DOUBLE_SENTINEL, "'%s' changed the output", value);
    s_expect_names(why, "--duration", value);
}

static void s_expect_duration(const char *value, double seconds)
{
    char why[T_WHY_CAP] = "";
    double out = T_DOUBLE_SENTINEL;
    int rc = sp_arg_duration("--duration", value, &out, why, sizeof why);
    cr_expect_eq(rc, 0, "'%s' refused: %s", value, why);
    cr_expect_float_eq(out, seconds, T_EPSILON, "'%s' gave %g s", value, out);
}

Test(args, u64_accepts_whole_numbers_in_range)
{
    char why[T_WHY_CAP] = "";
    uint64_t out = 0;

    cr_expect_eq(sp_arg_u64(T_FLAG, "0", 0, 10, &out, why, sizeof why), 0);
    cr_expect_eq(out, 0);
    cr_expect_eq(sp_arg_u64(T_FLAG, "10", 0, 10, &out, why, sizeof why), 0, "the max itself");
    cr_expect_eq(out, 10);
    cr_expect_eq(sp_arg_u64(T_FLAG, "3", 3, 3, &out, why, sizeof why), 0, "min == max");
    cr_expect_eq(out, 3);
    cr_expect_eq(sp_arg_u64(T_FLAG, "007", 0, 10, &out, why, sizeof why), 0, "leading zeros");
    cr_expect_eq(out, 7);
    cr_expect_eq(sp_arg_u64(T_FLAG, "18446744073709551615", 0, UINT64_MAX, &out, why, sizeof why),
                 0, "UINT64_MAX");
    cr_expect_eq(out, UINT64_MAX);
}

Test(args, u64_refuses_empty_signed_padded_and_junk_values)
{
    const char *bad[] = {"", "-1", "+1", "1x", " 1", "1 ", "0x10", "1.0", "1e3", "x", "-0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_expect_u64_refused(bad[i], 0, UINT64_MAX);
    }
}

Test(args, u64_refuses_overflow_and_out_of_range)
{
    s_expect_u64_refused("18446744073709551616", 0, UINT64_MAX);
    s_expect_u64_refused("99999999999999999999999", 0, UINT64_MAX);
    s_expect_u64_refused("0", 1, 64);
    s_expect_u64_refused("65", 1, 64);
}

Test(args, u64_refuses_a_missing_value)
{
    char why[T_WHY_CAP] = "";
    uint64_t out = T_U64_SENTINEL;

    cr_expect_eq(sp_arg_u64(T_FLAG, NULL, 0, 10, &out, why, sizeof why), SP_E_USAGE);
    cr_expect_eq(out, T_U64_SENTINEL);
    cr_expect_not_null(strstr(why, T_FLAG), "message '%s'", why);
}

Test(args, u64_message_names_the_range)
{
    char why[T_WHY_CAP] = "";
    uint64_t out;

    cr_assert_eq(sp_arg_u64("--workers", "abc", 1, 64, &out, why, sizeof why), SP_E_USAGE);

    cr_expect_str_eq(why, "--workers: 'abc' is not a whole number from 1 to 64");
}

Test(args, u32_accepts_whole_numbers_in_range)
{
    char why[T_WHY_CAP] = "";
    uint32_t out = 0;

    cr_expect_eq(sp_arg_u32(T_FLAG, "4294967295", 0, UINT32_MAX, &out, why, sizeof why), 0);
    cr_expect_eq(out, UINT32_MAX);
    cr_expect_eq(sp_arg_u32(T_FLAG, "1", 1, 64, &out, why, sizeof why), 0);
    cr_expect_eq(out, 1);
}

Test(args, u32_refuses_what_u64_refuses_and_values_above_32_bits)
{
    const char *bad[] = {"", "-1", "+1", "1x", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_expect_u32_refused(bad[i], 0, UINT32_MAX);
    }
    s_expect_u32_refused("4294967296", 0, UINT32_MAX);
    s_expect_u32_refused("18446744073709551616", 0, UINT32_MAX);
    s_expect_u32_refused("65", 1, 64);
    s_expect_u32_refused("0", 1, 64);
}

Test(args, double_accepts_decimal_and_exponent_forms)
{
    char why[T_WHY_CAP] = "";
    double out = 0;

    cr_expect_eq(sp_arg_double(T_FLAG, "1e3", 0, 1e6, &out, why, sizeof why), 0, "%s", why);
    cr_expect_float_eq(out, 1000.0, T_EPSILON);
    cr_expect_eq(sp_arg_double(T_FLAG, "0.25", 0, 1, &out, why, sizeof why), 0, "%s", why);
    cr_expect_float_eq(out, 0.25, T_EPSILON);
    cr_expect_eq(sp_arg_double(T_FLAG, "1", 1, 1, &out, why, sizeof why), 0, "min == max");
    cr_expect_float_eq(out, 1.0, T_EPSILON);
    cr_expect_eq(sp_arg_double(T_FLAG, "-2.5", -5, 5, &out, why, sizeof why), 0,
                 "a sign is fine when the range allows it");
    cr_expect_float_eq(out, -2.5, T_EPSILON);
}

Test(args, double_refuses_empty_padded_junk_and_non_finite_values)
{
    const char *bad[] = {"",    "1x",   " 1",       "1 ",    "nan", "NaN",
                         "inf", "-inf", "infinity", "1e999", "x",   "."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_expect_double_refused(bad[i], -1e9, 1e9);
    }
}

Test(args, double_refuses_signs_hex_and_words_strtod_would_take)
{
    const char *bad[] = {"+1", "0x10", "0X1p4", "1p4", "+.5", "- 1", "1e", "--1", "Infinity"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_expect_double_refused(bad[i], -1e9, 1e9);
    }
    double out = 0;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_arg_double(T_FLAG, ".5", 0, 1, &out, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_arg_double(T_FLAG, "2.5e-1", 0, 1, &out, why, sizeof why), 0, "%s", why);
    cr_expect_eq(sp_arg_double(T_FLAG, "1E+2", 0, 1000, &out, why, sizeof why), 0, "%s", why);
}

Test(args, double_refuses_values_out_of_range)
{
    s_expect_double_refused("-1", 0, 100);
    s_expect_double_refused("100.001", 0, 100);
    s_expect_double_refused("1e3", 0, 100);
}

Test(args, double_refuses_a_missing_value)
{
    char why[T_WHY_CAP] = "";
    double out = T_DOUBLE_SENTINEL;

    cr_expect_eq(sp_arg_double(T_FLAG, NULL, 0, 1, &out, why, sizeof why), SP_E_USAGE);
    cr_expect_eq(out, T_DOUBLE_SENTINEL);
    cr_expect_not_null(strstr(why, T_FLAG), "message '%s'", why);
}

Test(args, duration_accepts_every_unit)
{
    s_expect_duration("10", 10.0);
    s_expect_duration("10s", 10.0);
    s_expect_duration("500ms", 0.5);
    s_expect_duration("2m", 120.0);
    s_expect_duration("1h", 3600.0);
    s_expect_duration("1.5s", 1.5);
    s_expect_duration("0", 0.0);
    s_expect_duration(T_MAX_HOURS, T_MAX_SECONDS);
}

Test(args, duration_refuses_unknown_units_signs_and_empty)
{
    const char *bad[] = {"10x", "",   "-1s",   "-1",   "s",    "ms",        "1 s",
                         " 1s", "1d", "10sec", "nans", "infs", T_OVER_HOURS};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_expect_duration_refused(bad[i]);
    }
}

Test(args, duration_refuses_a_missing_value)
{
    char why[T_WHY_CAP] = "";
    double out = T_DOUBLE_SENTINEL;

    cr_expect_eq(sp_arg_duration("--duration", NULL, &out, why, sizeof why), SP_E_USAGE);
    cr_expect_eq(out, T_DOUBLE_SENTINEL);
    cr_expect_not_null(strstr(why, "--duration"), "message '%s'", why);
}

Test(args, duration_refuses_a_value_too_long_to_hold)
{
    char value[128];
    memset(value, '1', sizeof value - 2);
    value[sizeof value - 2] = 's';
    value[sizeof value - 1] = '\0';

    s_expect_duration_refused(value);
}
