/*
 * test_demo — the demo behind `make run` (scripts/demo.sh), as a user
 * meets it: Ctrl-C while it runs still ends with the report of what the
 * customers did, and nothing of the instance is left behind.
 */
#include "sp_testutil.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Ctrl-C at the terminal: SIGINT to the demo's whole process group, once
 * the monitor has shown the first stock changes.  The report comes, marked
 * as interrupted, with the audit of what was done, and the exit is 130. */
Test(demo, ctrl_c_ends_with_the_partial_report, .timeout = 180)
{
    char dir[128], log[192];
    cr_assert(spt_tmpdir(dir, sizeof dir, "demo"));
    snprintf(log, sizeof log, "%s/demo.out", dir);
    const char *data = getenv("SP_DATA_DIR");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setpgid(0, 0); /* the demo's own group, as a terminal's job has */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || (data != NULL && chdir(data) != 0) || (data != NULL && chdir("..") != 0)) {
            _exit(126);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        /* a terminal's job gets SIGINT as a default, trappable signal; a
         * suite started in the background (`cmd &` in a script, as some CI
         * runners do) passes it down ignored, and bash cannot trap a signal
         * ignored on entry: the demo would never see the Ctrl-C */
        signal(SIGINT, SIG_DFL);
        setenv("PLAIN", "1", 1);
        setenv("DURATION", "60", 1);
        execl("/bin/bash", "bash", "scripts/demo.sh", (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    /* the monitor's first line about a stock change: the load is running */
    char *out = NULL;
    bool running = false;
    for (int i = 0; i < 600 && !running; i++) {
        free(out);
        out = spt_slurp(log);
        running = strstr(out, "monitor | ") != NULL && strstr(out, " -> ") != NULL;
        if (!running) {
            usleep(100 * 1000);
        }
    }
    cr_assert(running, "the demo never showed a stock change:\n%s", out);
    cr_assert_eq(kill(-pid, SIGINT), 0);
    int rc = spt_wait(pid, 120000);
    free(out);
    out = spt_slurp(log);
    cr_expect_eq(rc, 130, "exit %d:\n%s", rc, out);
    const char *rep = strstr(out, "== report (interrupted");
    cr_assert_not_null(rep, "no partial report:\n%s", out);
    cr_expect(strstr(rep, "orders      sent ") != NULL, "%s", rep);
    cr_expect(strstr(rep, "conservation: ok") != NULL, "the audit of what was done:\n%s", rep);
    cr_expect(strstr(rep, "in /dev/shm: 0") != NULL, "%s", rep);
    const char *name = strstr(out, "instance spdemo-");
    cr_assert_not_null(name, "%s", out);
    char inst[64] = "";
    sscanf(name, "instance %63[^,]", inst);
    cr_expect_not(spt_leftovers(inst), "%s left IPC objects or its run folder", inst);
    free(out);
    spt_rmtree(dir);
}
