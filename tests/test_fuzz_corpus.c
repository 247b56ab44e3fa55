/*
 * Tests for the fuzz harnesses' committed corpus (tests/fuzz/).
 *
 * `make fuzz` runs the libFuzzer targets for minutes; this suite replays
 * every committed input of every target through the same harness bodies in
 * every `make test`, so a regression that one of them once caught (or that a
 * seed was written to exercise) fails the suite without clang or libFuzzer.
 * A broken invariant is an abort() inside the body: Criterion runs each test
 * in its own process and reports the crash as a failure (the body names the
 * input on stderr).  Each test also insists on a minimum number of inputs,
 * so a moved or emptied corpus cannot pass by replaying nothing.
 *
 * The corpus is found through SP_FUZZ_CORPUS (make test sets it), falling
 * back to tests/fuzz/corpus for runs from the repository root.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spf.h"

/* Fewest inputs a target's corpus may hold: the seeds committed with it. */
#define T_MIN_INPUTS 30u

/* Largest input replayed: corpus files are kept small. */
#define T_MAX_INPUT (64u * 1024u)

#define T_PATH_MAX 1024

typedef int (*t_body_fn)(const uint8_t *data, size_t size);

static const char *s_corpus_root(void)
{
    const char *dir = getenv("SP_FUZZ_CORPUS");
    return dir != NULL && dir[0] != '\0' ? dir : "tests/fuzz/corpus";
}

/* Reads a whole corpus file into an exact-size heap buffer (so the
 * sanitizer build sees any read past its end). */
static uint8_t *s_read_input(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    uint8_t *buf = malloc(T_MAX_INPUT + 1u);
    cr_assert_not_null(buf);
    size_t n = fread(buf, 1, T_MAX_INPUT + 1u, f);
    cr_assert(!ferror(f) && n <= T_MAX_INPUT, "%s is larger than %u bytes or unreadable", path,
              T_MAX_INPUT);
    fclose(f);
    uint8_t *exact = malloc(n > 0 ? n : 1);
    cr_assert_not_null(exact);
    memcpy(exact, buf, n);
    free(buf);
    *size = n;
    return exact;
}

static int s_by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int s_regular(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Feeds every file of corpus/<target> to body; returns how many. */
static unsigned s_replay(const char *target, t_body_fn body)
{
    char dir[T_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", s_corpus_root(), target);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, s_regular, s_by_name);
    cr_assert(n >= 0, "cannot read the corpus directory %s", dir);
    unsigned replayed = 0;
    for (int i = 0; i < n; i++) {
        char path[T_PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        size_t size = 0;
        uint8_t *data = s_read_input(path, &size);
        spf_current_input = path;
        cr_expect_eq(body(data, size), 0, "%s", path);
        spf_current_input = NULL;
        free(data);
        free(names[i]);
        replayed++;
    }
    free(names);
    return replayed;
}

Test(fuzz_corpus, wire_inputs_keep_every_decoder_invariant)
{
    unsigned n = s_replay("wire", spf_wire_one);
    cr_expect_geq(n, T_MIN_INPUTS, "only %u wire inputs replayed", n);
}

Test(fuzz_corpus, csv_inputs_keep_every_catalogue_invariant)
{
    unsigned n = s_replay("csv", spf_csv_one);
    cr_expect_geq(n, T_MIN_INPUTS, "only %u csv inputs replayed", n);
}

Test(fuzz_corpus, args_inputs_keep_every_parser_invariant)
{
    unsigned n = s_replay("args", spf_args_one);
    cr_expect_geq(n, T_MIN_INPUTS, "only %u args inputs replayed", n);
}

/* The replays above pass only because no check fired: a check that fails
 * must kill the process, or they would prove nothing. */
Test(fuzz_corpus, a_broken_invariant_aborts, .init = cr_redirect_stderr, .signal = SIGABRT)
{
    SPF_CHECK(1 + 1 == 3);
}
