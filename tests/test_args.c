/*
 * Tests for sp_args, the strict flag-value parsers every main uses.
 *
 * The point of the module is what it refuses: strtoull and strtod accept
 * leading blanks, signs on unsigned values, trailing junk, overflow and NaN
 * unless every one is checked.  Each refusal here checks the exact code
 * (SP_E_USAGE), that the output was left alone, and that the message names
 * both the flag and the offending value, since that sentence is all a user
 * sees.  Pure functions: no IPC, no files.
 *
 * The end of a main's option loop (sp_args_next, sp_args_done) is checked
 * the way a user meets it: which stream the usage went to, the exact error
 * line on stderr (captured at the descriptor, as sp_log writes it) and the
 * exit status.
 */
#include <criterion/criterion.h>

#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp_args.h"
#include "sp_version.h"
#include "sp_error.h"
#include "sp_log.h"

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

/* ---- the end of a main's option loop ---- */

#define T_ROLE     "args-test"
#define T_LINE_CAP 512

/* What the usage callback was asked to do: how often, and to which stream. */
static int s_usage_calls;
static FILE *s_usage_out;

static void s_usage(FILE *out)
{
    s_usage_calls++;
    s_usage_out = out;
}

static const struct option s_opts[] = {{"rate", required_argument, 0, 'r'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};

/* Runs a main's loop over argv (NULL-terminated) as the mains do; returns
 * the final rc, with *json and *rate set by their cases. */
static int s_loop(char **argv, bool *json, char **rate)
{
    int argc = 0;
    while (argv[argc] != NULL) {
        argc++;
    }
    optind = 0; /* GNU: start afresh */
    opterr = 0; /* getopt_long's own message is not ours to check */
    int c, rc = 0;
    while ((c = sp_args_next(argc, argv, "h", s_opts, &rc)) != -1) {
        switch (c) {
        case 'r':
            *rate = optarg;
            break;
        case 'j':
            *json = true;
            break;
        }
    }
    return rc;
}

/* fd 2 into a temporary file until s_stderr_end, which returns what was
 * written (static buffer). */
static int s_saved_fd = -1;
static FILE *s_capture;

static void s_stderr_begin(void)
{
    s_capture = tmpfile();
    cr_assert_not_null(s_capture);
    s_saved_fd = dup(STDERR_FILENO);
    cr_assert_geq(s_saved_fd, 0);
    cr_assert_geq(dup2(fileno(s_capture), STDERR_FILENO), 0);
}

static const char *s_stderr_end(void)
{
    static char got[T_LINE_CAP];
    (void)fflush(stderr);
    cr_assert_geq(dup2(s_saved_fd, STDERR_FILENO), 0);
    close(s_saved_fd);
    rewind(s_capture);
    size_t n = fread(got, 1, sizeof got - 1, s_capture);
    got[n] = '\0';
    (void)fclose(s_capture);
    return got;
}

/* sp_args_done with stderr captured into *err; returns its exit status. */
static int s_done(const sp_args_cli_t *cli, int rc, const char *why, char **left, const char **err)
{
    int nleft = 0;
    while (left != NULL && left[nleft] != NULL) {
        nleft++;
    }
    s_usage_calls = 0;
    s_usage_out = NULL;
    setenv("SP_LOG_TIME", "0", 1); /* the lines are compared whole: no time stamp */
    sp_log_init(T_ROLE);
    s_stderr_begin();
    int code = sp_args_done(cli, rc, why, nleft, left);
    *err = s_stderr_end();
    return code;
}

/* The line sp_log writes for an error from this process. */
static const char *s_logged(const char *text)
{
    static char line[T_LINE_CAP];
    snprintf(line, sizeof line, T_ROLE "[%ld]: error: %s\n", (long)getpid(), text);
    return line;
}

static const sp_args_cli_t s_cli = {.usage = s_usage};

Test(args, next_hands_each_option_to_the_switch_then_ends)
{
    char *argv[] = {"prog", "--rate", "5", "--json", "left", NULL};
    bool json = false;
    char *rate = NULL;

    int rc = s_loop(argv, &json, &rate);

    cr_expect_eq(rc, 0);
    cr_expect(json);
    cr_expect_str_eq(rate, "5");
    cr_expect_eq(optind, 4, "the left-over argument starts at optind");
}

Test(args, next_stops_at_help_with_rc_help)
{
    char *argv[] = {"prog", "--help", "--json", NULL};
    bool json = false;
    char *rate = NULL;

    cr_expect_eq(s_loop(argv, &json, &rate), SP_ARGS_HELP);
    cr_expect_not(json, "the loop went past --help");

    char *argv_h[] = {"prog", "-h", NULL};
    cr_expect_eq(s_loop(argv_h, &json, &rate), SP_ARGS_HELP);
}

Test(args, next_stops_at_an_unknown_option_or_a_missing_value)
{
    char *unknown[] = {"prog", "--bogus", "--json", NULL};
    char *missing[] = {"prog", "--rate", NULL};
    bool json = false;
    char *rate = NULL;

    cr_expect_eq(s_loop(unknown, &json, &rate), SP_ARGS_BAD_OPTION);
    cr_expect_not(json, "the loop went past the unknown option");
    cr_expect_eq(s_loop(missing, &json, &rate), SP_ARGS_BAD_OPTION);
    cr_expect_null(rate);
}

Test(args, next_ends_the_loop_once_a_case_refused_a_value)
{
    char *argv[] = {"prog", "--json", NULL};
    optind = 0;
    int rc = SP_E_USAGE;

    cr_expect_eq(sp_args_next(2, argv, "h", s_opts, &rc), -1);
    cr_expect_eq(rc, SP_E_USAGE, "the refusal is kept");
}

Test(args, done_help_prints_the_usage_on_stdout_and_exits_0)
{
    char *left[] = {"extra", NULL};
    const char *err;

    cr_expect_eq(s_done(&s_cli, SP_ARGS_HELP, "", left, &err), 0);
    cr_expect_eq(s_usage_calls, 1);
    cr_expect_eq(s_usage_out, stdout);
    cr_expect_str_empty(err);
}

Test(args, done_bad_option_points_to_help_in_one_line_and_exits_2)
{
    const char *err;

    cr_expect_eq(s_done(&s_cli, SP_ARGS_BAD_OPTION, "", NULL, &err), SP_EXIT_USAGE);
    cr_expect_eq(s_usage_calls, 0, "not the whole usage: getopt_long named the option already");
    cr_expect_str_eq(err, s_logged("see --help for the options"));
}

Test(args, done_refused_value_logs_its_why_with_the_hint)
{
    char *left[] = {"extra", NULL};
    const char *err;

    int code = s_done(&s_cli, SP_E_USAGE, "--rate: 'x' is not a number", left, &err);

    cr_expect_eq(code, SP_EXIT_USAGE);
    cr_expect_str_eq(err, s_logged("--rate: 'x' is not a number (see --help)"));
    cr_expect_eq(s_usage_calls, 0);
}

Test(args, done_refused_value_without_the_hint_when_asked)
{
    const sp_args_cli_t cli = {.usage = s_usage, .flags = SP_ARGS_NO_HINT};
    const char *err;

    cr_expect_eq(s_done(&cli, SP_E_USAGE, "--low: '-1' is not a whole number", NULL, &err),
                 SP_EXIT_USAGE);
    cr_expect_str_eq(err, s_logged("--low: '-1' is not a whole number"));
}

Test(args, done_left_over_argument_is_a_mistake)
{
    char *left[] = {"extra", "more", NULL};
    const char *err;

    cr_expect_eq(s_done(&s_cli, 0, "", left, &err), SP_EXIT_USAGE);
    cr_expect_str_eq(err, s_logged("unexpected argument 'extra' (see --help)"));
    cr_expect_eq(s_usage_calls, 0);
}

Test(args, done_left_over_argument_keeps_its_hint_without_the_value_hint)
{
    const sp_args_cli_t cli = {.usage = s_usage, .flags = SP_ARGS_NO_HINT};
    char *left[] = {"extra", NULL};
    const char *err;

    cr_expect_eq(s_done(&cli, 0, "", left, &err), SP_EXIT_USAGE);
    cr_expect_str_eq(err, s_logged("unexpected argument 'extra' (see --help)"));
}

Test(args, done_operands_are_the_mains_when_asked)
{
    const sp_args_cli_t cli = {.usage = s_usage, .flags = SP_ARGS_OPERANDS};
    char *left[] = {"buy", "3", NULL};
    const char *err;

    cr_expect_eq(s_done(&cli, 0, "", left, &err), SP_ARGS_GO);
    cr_expect_str_empty(err);
    cr_expect_eq(s_usage_calls, 0);
}

Test(args, done_clean_parse_goes_on_silently)
{
    const char *err;

    cr_expect_eq(s_done(&s_cli, 0, "", NULL, &err), SP_ARGS_GO);
    cr_expect_str_empty(err);
    cr_expect_eq(s_usage_calls, 0);
}

Test(args, done_with_a_prog_writes_prog_lines_instead_of_logging)
{
    const sp_args_cli_t cli = {.usage = s_usage, .prog = "bench", .flags = SP_ARGS_NO_HINT};
    char *left[] = {"extra", NULL};
    const char *err;

    cr_expect_eq(s_done(&cli, 0, "", left, &err), SP_EXIT_USAGE);
    cr_expect_str_eq(err, "bench: unexpected argument 'extra' (see --help)\n");
    cr_expect_eq(s_done(&cli, SP_E_USAGE, "--zipf: 'x' is not a number", NULL, &err),
                 SP_EXIT_USAGE);
    cr_expect_str_eq(err, "bench: --zipf: 'x' is not a number\n");
}

Test(args, done_help_and_refusals_come_before_left_overs)
{
    char *left[] = {"extra", NULL};
    const char *err;

    cr_expect_eq(s_done(&s_cli, SP_ARGS_HELP, "", left, &err), 0, "help first");
    cr_expect_eq(s_done(&s_cli, SP_E_USAGE, "--rate: no", left, &err), SP_EXIT_USAGE);
    cr_expect_str_eq(err, s_logged("--rate: no (see --help)"), "the refusal, not the extra");
}

Test(args, next_takes_version_anywhere_before_a_double_dash)
{
    bool json = false;
    char *rate = NULL;
    char *first[] = {"prog", "--version", NULL};
    cr_expect_eq(s_loop(first, &json, &rate), SP_ARGS_VERSION);
    char *later[] = {"prog", "--json", "--rate", "5", "--version", NULL};
    cr_expect_eq(s_loop(later, &json, &rate), SP_ARGS_VERSION);
    char *operand[] = {"prog", "--json", "--", "--version", NULL};
    json = false;
    cr_expect_eq(s_loop(operand, &json, &rate), 0, "after --, an operand");
    cr_expect(json);
}

Test(args, done_version_prints_the_build_on_stdout_and_exits_0)
{
    const char *err;
    cr_expect_eq(s_done(&s_cli, SP_ARGS_VERSION, "", NULL, &err), 0);
    cr_expect_eq(s_usage_calls, 0);
    cr_expect_str_empty(err);
    cr_expect_str_neq(sp_version(), "", "a version, or \"unknown\"");
}
