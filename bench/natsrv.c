/*
 * natsrv — the bench's NATS servers, through scripts/nats-cluster.sh (see
 * natsrv.h).
 *
 * The script does the fiddly part (ports, config files, password, waiting
 * for a cluster to elect); this module finds it, runs it without a shell
 * with a deadline, reads the URLs it wrote, and on stop runs its "stop"
 * and then removes the whole folder, so that the logs and config files go
 * too (the script's stop removes only the stores and pid files).
 */
#include "natsrv.h"

#include "sp_child.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_time.h"

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_LOG        "script.log" /* the script's own output, inside the folder */
#define S_URLS       "urls"
#define S_AUTH       "auth"
#define S_SERVER     "nats-server"
#define S_SERVER_DEB "/usr/sbin/nats-server"
#define S_FTW_FDS    16

/* The script: the environment's, or the checkout's beside the binary. */
static int s_find_script(char *out, size_t cap, char *why, size_t why_cap)
{
    const char *env = getenv(BENCH_NATSRV_SCRIPT_ENV);
    if (env != NULL && env[0] != '\0') {
        snprintf(out, cap, "%s", env);
        if (access(out, R_OK) == 0) {
            return 0;
        }
        sp_why(why, why_cap, "%s=%s: %s", BENCH_NATSRV_SCRIPT_ENV, env, strerror(errno));
        return -ENOENT;
    }
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0) {
        sp_why(why, why_cap, "cannot find my own binary: %s", strerror(errno));
        return -ENOENT;
    }
    self[len] = '\0';
    const char *dir = dirname(self);
    static const char *const ups[] = {"..", "../../.."};
    for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
        snprintf(out, cap, "%s/%s/" BENCH_NATSRV_SCRIPT, dir, ups[i]);
        if (access(out, R_OK) == 0) {
            return 0;
        }
    }
    sp_why(why, why_cap, "no %s beside %s (set %s to its path)", BENCH_NATSRV_SCRIPT, dir,
           BENCH_NATSRV_SCRIPT_ENV);
    return -ENOENT;
}

/* nats-server in PATH or where Debian puts it. */
static bool s_have_server(void)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    while (path != NULL && *path != '\0') {
        size_t len = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/" S_SERVER, (int)len, path);
        if (len > 0 && access(buf, X_OK) == 0) {
            return true;
        }
        path += len + (path[len] == ':');
    }
    return access(S_SERVER_DEB, X_OK) == 0;
}

bool bench_natsrv_available(char *why, size_t cap)
{
    char script[PATH_MAX + 32];
    if (s_find_script(script, sizeof script, why, cap) < 0) {
        return false;
    }
    if (!s_have_server()) {
        sp_why(why, cap, S_SERVER " is not installed (make deps)");
        return false;
    }
    return true;
}

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    /* best effort: whatever cannot go is left for the final rmdir to say */
    if (flag == FTW_DP) {
        rmdir(path);
    } else {
        unlink(path);
    }
    return 0;
}

/* Runs the script with `verb` on the folder (and `nodes` for start), with a
 * deadline.  Returns its exit status, SP_E_TIMEOUT, or -errno. */
static int s_run_script(const bench_natsrv_t *s, const char *verb, unsigned nodes, int ms)
{
    char bash[] = "bash", v[16], dir[PATH_MAX], n[8], script[PATH_MAX + 32],
         log[PATH_MAX + sizeof S_LOG + 1];
    snprintf(v, sizeof v, "%s", verb);
    snprintf(dir, sizeof dir, "%s", s->dir);
    snprintf(n, sizeof n, "%u", nodes);
    snprintf(script, sizeof script, "%s", s->script);
    snprintf(log, sizeof log, "%s/" S_LOG, s->dir);
    char *argv[] = {bash, script, v, dir, nodes > 0 ? n : NULL, NULL};
    sp_child_t kid;
    int rc = sp_child_spawn(&kid, argv, SP_CHILD_SEARCH, log);
    if (rc < 0) {
        return rc;
    }
    rc = sp_child_wait(&kid, sp_now_ns() + (uint64_t)ms * SP_NS_PER_MS);
    if (rc < 0) {
        return rc;
    }
    return WIFEXITED(kid.status) ? WEXITSTATUS(kid.status) : -ECHILD;
}

int bench_natsrv_start(bench_natsrv_t *s, const char *parent, const char *tag, unsigned nodes,
                       char *why, size_t cap)
{
    memset(s, 0, sizeof *s);
    if (parent == NULL || tag == NULL || nodes == 0 || nodes > BENCH_NATSRV_NODES_MAX) {
        sp_why(why, cap, "nats servers: 1..%d nodes under a folder", BENCH_NATSRV_NODES_MAX);
        return -EINVAL;
    }
    int rc = s_find_script(s->script, sizeof s->script, why, cap);
    if (rc < 0) {
        return rc;
    }
    if (!s_have_server()) {
        sp_why(why, cap, S_SERVER " is not installed (make deps)");
        return -ENOENT;
    }
    /* absolute: the servers' config files name their stores by it */
    char abs[PATH_MAX];
    if (realpath(parent, abs) == NULL) {
        int err = errno;
        sp_why(why, cap, "nats servers: %s: %s", parent, strerror(err));
        return -err;
    }
    int n = snprintf(s->dir, sizeof s->dir, "%s/" BENCH_NATSRV_PREFIX "%s-%d-XXXXXX", abs, tag,
                     (int)getpid());
    if (n < 0 || (size_t)n >= sizeof s->dir) {
        s->dir[0] = '\0';
        sp_why(why, cap, "nats servers: folder name under %s too long", parent);
        return -ENAMETOOLONG;
    }
    if (mkdtemp(s->dir) == NULL) { /* mode 0700: the password lives here */
        int err = errno;
        sp_why(why, cap, "mkdtemp %s: %s", s->dir, strerror(err));
        s->dir[0] = '\0';
        return -err;
    }
    s->nodes = nodes;
    rc = s_run_script(s, "start", nodes, BENCH_NATSRV_START_MS);
    if (rc != 0) {
        char last[200];
        char log[PATH_MAX + sizeof S_LOG + 1];
        snprintf(log, sizeof log, "%s/" S_LOG, s->dir);
        sp_file_last_line(log, last, sizeof last);
        if (rc == SP_E_TIMEOUT) {
            sp_why(why, cap, "%s start: no answer within %d ms", s->script, BENCH_NATSRV_START_MS);
        } else {
            sp_why(why, cap, "%s start %u failed (%d): %s", s->script, nodes, rc, last);
        }
        bench_natsrv_stop(s);
        return rc == SP_E_TIMEOUT ? rc : -EIO;
    }
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/" S_URLS, s->dir);
    FILE *f = fopen(path, "re");
    bool got = f != NULL && fgets(s->urls, sizeof s->urls, f) != NULL;
    if (f != NULL) {
        (void)fclose(f); /* read only */
    }
    s->urls[strcspn(s->urls, "\n")] = '\0';
    if (!got || s->urls[0] == '\0') {
        sp_why(why, cap, "%s start wrote no server URLs into %s", s->script, path);
        bench_natsrv_stop(s);
        return -EIO;
    }
    snprintf(s->auth, sizeof s->auth, "%s/" S_AUTH, s->dir);
    return 0;
}

void bench_natsrv_stop(bench_natsrv_t *s)
{
    if (s == NULL || s->dir[0] == '\0') {
        return;
    }
    (void)s_run_script(s, "stop", 0, BENCH_NATSRV_STOP_MS); /* then the folder goes anyway */
    (void)nftw(s->dir, s_rm_entry, S_FTW_FDS, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
    s->urls[0] = '\0';
    s->auth[0] = '\0';
}
