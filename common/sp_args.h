/*
 * sp_args — strict parsing of flag values, shared by every main.
 *
 * A value is accepted only when the whole string is a number in range; the
 * error message names the flag, the value and the range, e.g.
 * "--workers: 'abc' is not a whole number from 1 to 64".
 */
#ifndef SP_ARGS_H
#define SP_ARGS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Returns 0 or SP_E_USAGE with *why filled. */
int sp_arg_u64(const char *flag, const char *value, uint64_t min, uint64_t max, uint64_t *out,
               char *why, size_t cap);
int sp_arg_u32(const char *flag, const char *value, uint32_t min, uint32_t max, uint32_t *out,
               char *why, size_t cap);
int sp_arg_double(const char *flag, const char *value, double min, double max, double *out,
                  char *why, size_t cap);

/* Parses a range of product ids "LO-HI" (both whole numbers from min to
 * max, LO <= HI; "N" alone is N-N).  Returns 0 or SP_E_USAGE with *why
 * naming the flag, the value and what is wrong. */
int sp_arg_range(const char *flag, const char *value, uint32_t min, uint32_t max, uint32_t *lo,
                 uint32_t *hi, char *why, size_t cap);

/* Parses a duration: "10", "10s", "500ms", "2m".  Seconds out. */
int sp_arg_duration(const char *flag, const char *value, double *seconds, char *why, size_t cap);

/*
 * A main's option loop and what follows it.
 *
 * Every main parses with getopt_long in a loop that stops at the first
 * refused value (its case sets rc < 0 and fills why).  sp_args_next is that
 * loop's getopt_long: it also stops the loop at -h/--help and at an option
 * getopt_long refused (an unknown one or a missing value, already named on
 * stderr by getopt_long), saying which in rc.  After the loop sp_args_done
 * does what every main used to write out by hand: the usage on stdout for
 * --help, the usage on stderr after a bad option, one error line for a
 * refused value or for an argument left over, and the exit status.
 *
 *     int c, rc = 0;
 *     while ((c = sp_args_next(argc, argv, "h", opts, &rc)) != -1) {
 *         switch (c) { ... one case per option, no 'h', no default ... }
 *     }
 *     int code = sp_args_done(&s_cli, rc, why, argc - optind, argv + optind);
 *     if (code != SP_ARGS_GO) {
 *         return code;
 *     }
 *
 * sp_args_done is the one function here that prints: it speaks for the
 * main, through the main's usage function and sp_log (or "PROG: ..." lines,
 * for a main that does not log).  Both use getopt_long's globals, so one
 * thread parses at a time, as in every main.
 */

#define SP_EXIT_USAGE      2    /* exit status of every command-line mistake */
#define SP_ARGS_GO         (-1) /* sp_args_done: parsed, the main carries on */
#define SP_ARGS_HELP       1    /* rc after sp_args_next: -h/--help was asked for */
#define SP_ARGS_BAD_OPTION 2    /* rc after sp_args_next: getopt_long refused an option */
#define SP_ARGS_VERSION    3    /* rc after sp_args_next: --version was asked for */

/* sp_args_cli_t.flags */
enum {
    /* arguments after the options are the main's (verbs, or ignored), not
     * an error */
    SP_ARGS_OPERANDS = 1u << 0,
    /* a refused value is reported as its why alone, without the
     * " (see --help)" the other mistakes carry */
    SP_ARGS_NO_HINT = 1u << 1,
};

/* What a main tells sp_args_done about its command line; usually a static
 * const in the main. */
typedef struct {
    void (*usage)(FILE *out); /* writes the --help text to out; required */
    const char *prog;         /* NULL: errors go through sp_log ("role[pid]: error: ...");
                               * else "PROG: ..." lines on stderr */
    unsigned flags;           /* SP_ARGS_* above */
} sp_args_cli_t;

/* getopt_long(argc, argv, shortopts, longopts, NULL) for a main's loop,
 * returning -1 (end the loop) as soon as *rc is not 0: when it already was
 * (a case refused a value), after -h/--help (*rc = SP_ARGS_HELP: 'h' always
 * means help) and after an option getopt_long refused (*rc =
 * SP_ARGS_BAD_OPTION).  Otherwise the option's value for the main's switch,
 * or -1 at the end of the options. */
int sp_args_next(int argc, char *const argv[], const char *shortopts, const struct option *longopts,
                 int *rc);

/* Ends the parse.  rc is the loop's (0, SP_ARGS_HELP, SP_ARGS_BAD_OPTION or
 * a negative code with `why` saying what was refused); left[0 .. nleft) are
 * the arguments getopt_long left (argv + optind).  Prints what the outcome
 * calls for and returns the main's exit status: 0 after --help,
 * SP_EXIT_USAGE after a mistake, or SP_ARGS_GO when the main should go on.
 * Checks in this order: help, bad option, refused value, then a left-over
 * argument (unless cli->flags has SP_ARGS_OPERANDS).  Borrows everything;
 * never blocks. */
int sp_args_done(const sp_args_cli_t *cli, int rc, const char *why, int nleft, char *const left[]);

#endif
