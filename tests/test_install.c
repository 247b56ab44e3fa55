/*
 * test_install — `make install` / `make uninstall` and the flags the man
 * pages and bash completions offer, through two scripts run from the source
 * tree (SP_DATA_DIR/..): tests/install/install-check.sh installs into a
 * fresh temporary DESTDIR, runs the installed binaries, formats each man
 * page with `man -l`, checks the systemd unit and the completions, and
 * checks that uninstall removes every file; tests/install/check-flags.sh
 * holds each binary's --help flags against its man page and its completion.
 */
#include "sp_testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_SCRIPT_MS 60000

/* Runs tests/install/SCRIPT BIN_DIR SRC_DIR; its exit code, its output in *out. */
static int s_script(const char *script, char **out)
{
    const char *data = getenv("SP_DATA_DIR");
    char src[512], path[600], bin[512];
    snprintf(src, sizeof src, "%s%s", data ? data : ".", data ? "/.." : "");
    snprintf(path, sizeof path, "%s/tests/install/%s", src, script);
    snprintf(bin, sizeof bin, "%s", spt_bin(""));
    const char *argv[] = {"/bin/bash", path, bin, src, NULL};
    return spt_run(argv, T_SCRIPT_MS, out);
}

Test(install, install_runs_formats_and_uninstall_removes_every_file)
{
    char *out = NULL;
    cr_expect_eq(s_script("install-check.sh", &out), 0, "%s", out);
    cr_expect(strstr(out, "all removed by uninstall") != NULL, "%s", out);
    free(out);
}

Test(install, man_pages_and_completions_offer_exactly_the_flags_of_help)
{
    char *out = NULL;
    cr_expect_eq(s_script("check-flags.sh", &out), 0, "%s", out);
    static const char *const roles[] = {"broker", "consumer", "monitor", "producer"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        char agree[64];
        snprintf(agree, sizeof agree, "check-flags: %s: ", roles[i]);
        const char *line = strstr(out, agree);
        cr_expect(line != NULL && strstr(line, "flags agree") != NULL, "%s: no 'flags agree' line",
                  roles[i]);
    }
    free(out);
}
