/*
 * spf — stockpipe's fuzz harness bodies.
 *
 * Each body takes one input from libFuzzer (or from a corpus file), feeds it
 * to the code under test and checks invariants the code's headers promise:
 * a broken promise is an abort(), which libFuzzer keeps as a crash and a
 * Criterion test (forked) reports as a failure.  The bodies are plain
 * functions that compile without libFuzzer, so the same code runs in
 * `make fuzz` (tests/fuzz/fuzz_main.c is the entry point) and in every
 * `make test` (tests/test_fuzz_corpus.c replays the committed corpus).
 *
 * A body never keeps state between inputs, never touches IPC or files, and
 * frees everything it allocates (LeakSanitizer runs in both settings).
 */
#ifndef SPF_H
#define SPF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The wire decoder (sp_wire): sp_wire_check on any bytes, then every record
 * of an accepted message decoded, re-encoded and checked.  Returns 0. */
int spf_wire_one(const uint8_t *data, size_t size);

/* The catalogue CSV reader and writer (sp_catalogue): parse, and for a
 * catalogue that parses, write it back and parse that again.  Returns 0. */
int spf_csv_one(const uint8_t *data, size_t size);

/* Flag and name parsers (sp_args, sp_sync_parse, sp_transport_find,
 * sp_instance_check, sp_names_init, sp_fsync_policy_parse): a selector byte,
 * a bounds byte, then NUL-separated strings.  Returns 0. */
int spf_args_one(const uint8_t *data, size_t size);

/* Name of the input being replayed, printed when an invariant breaks (the
 * corpus test sets it; libFuzzer saves the input itself). */
extern const char *spf_current_input;

/* Aborts, naming the broken invariant, when cond is false. */
#define SPF_CHECK(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            spf_fail(__FILE__, __LINE__, #cond);                                                   \
        }                                                                                          \
    } while (0)

__attribute__((noreturn)) void spf_fail(const char *file, int line, const char *what);

#endif
