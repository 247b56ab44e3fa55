/*
 * test_docs — the code examples of README.md and docs/PROTOCOL.md run as
 * written.
 *
 * tests/doc_examples.py extracts every fenced code block of a document and
 * runs it (sh blocks in order in one scenario, servers started and stopped,
 * the Python client of PROTOCOL.md against a broker on zmq, sample output
 * checked by shape); a block not run is skipped by a directive in the
 * Markdown, with its reason.  So an example that no longer works, a flag
 * that went away or a sample report that lost a field fails the suite.  The
 * runner takes the binaries from SP_BIN_DIR and the catalogue from
 * SP_DATA_DIR, and makes every instance name and port unique to its run.
 */
#include "sp_testutil.h"

#include <criterion/criterion.h>
#include <stdlib.h>

/* The README's scenario takes about 40 s alone on two busy cores. */
#define DOCS_RUN_MS 280000
#define DOCS_PATH   512

static void s_run_examples(const char *doc)
{
    char runner[DOCS_PATH], path[DOCS_PATH];
    spt_source(runner, sizeof runner, "tests/doc_examples.py");
    spt_source(path, sizeof path, doc);
    const char *argv[] = {spt_python(), runner,       "--bin", spt_bin(""),
                          "--data",     spt_data(""), path,    NULL};
    char *out = NULL;
    int rc = spt_run(argv, DOCS_RUN_MS, &out);
    cr_assert_eq(rc, 0, "%s %s %s exited %d (-1: timed out or killed):\n%s", argv[0], runner, path,
                 rc, out);
    free(out);
}

Test(docs, readme_examples_run_as_written, .timeout = 300)
{
    s_run_examples("README.md");
}

Test(docs, protocol_examples_run_as_written, .timeout = 300)
{
    s_run_examples("docs/PROTOCOL.md");
}
