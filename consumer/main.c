/*
 * consumer — one inventory worker.  Normally started by the broker; parses
 * flags and runs an sp_worker.
 */
#include "sp_args.h"
#include "sp_error.h"
#include "sp_commit.h"
#include "sp_log.h"
#include "sp_signal.h"
#include "sp_worker.h"

#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: consumer --worker-id N [--instance NAME] [--sync cas|row-lock|table-lock]\n"
            "  (the broker starts workers itself; run one by hand only to add a worker)\n");
}

/* arguments after the options have always been ignored */
static const sp_args_cli_t s_cli = {.usage = s_usage, .flags = SP_ARGS_OPERANDS};

int main(int argc, char **argv)
{
    sp_log_init("consumer");
    sp_worker_cfg_t cfg = {.instance = "stockpipe", .worker_id = 0, .sync = -1};
    char why[512] = "";
    static const struct option opts[] = {{"instance", required_argument, 0, 'i'},
                                         {"worker-id", required_argument, 0, 'w'},
                                         {"sync", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c, rc = 0;
    while ((c = sp_args_next(argc, argv, "h", opts, &rc)) != -1) {
        switch (c) {
        case 'i':
            cfg.instance = optarg;
            break;
        case 'w':
            rc = sp_arg_u32("--worker-id", optarg, 1, SP_WORKERS_MAX, &cfg.worker_id, why,
                            sizeof why);
            break;
        case 's': {
            sp_sync_t s;
            if (sp_sync_parse(optarg, &s) < 0) {
                snprintf(why, sizeof why, "--sync: '%s' is not cas, row-lock or table-lock",
                         optarg);
                rc = SP_E_USAGE;
            }
            cfg.sync = (int)s;
            break;
        }
        }
    }
    if (rc == 0 && cfg.worker_id == 0) {
        snprintf(why, sizeof why, "--worker-id is required");
        rc = SP_E_USAGE;
    }
    int code = sp_args_done(&s_cli, rc, why, argc - optind, argv + optind);
    if (code != SP_ARGS_GO) {
        return code;
    }
    /* test-only: the chaos driver's crash points inside the commit */
    if (sp_commit_hook_from_env() < 0) {
        sp_error("SP_CRASH_COMMIT='%s' is not POINT:ONE_IN (POINT 1..%d, ONE_IN >= 1)",
                 getenv("SP_CRASH_COMMIT"), SP_CP_COUNT - 1);
        return SP_EXIT_USAGE;
    }
    sp_signal_install();
    /* the broker spawned us: stop when it dies (the loop also checks) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sp_worker_t *worker = NULL;
    rc = sp_worker_new(&worker, &cfg, why, sizeof why);
    if (rc == 0) {
        rc = sp_worker_run(worker, why, sizeof why);
    }
    if (rc < 0) {
        sp_worker_destroy(&worker);
        sp_error("%s", why[0] ? why : sp_strerror(rc));
        return 1;
    }
    const sp_worker_stats_t *st = sp_worker_stats(worker);
    sp_debug("worker %u: %llu messages, %llu events, %llu dead-lettered, %llu result drops",
             cfg.worker_id, (unsigned long long)st->msgs, (unsigned long long)st->events,
             (unsigned long long)st->invalid_msgs, (unsigned long long)st->result_drops);
    sp_worker_destroy(&worker);
    return 0;
}
