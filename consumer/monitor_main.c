/*
 * monitor — follows the stock of an instance.  Line mode for now: one line
 * per stock change plus a summary every second; --once prints the table.
 */
#include "sp_error.h"
#include "sp_log.h"
#include "sp_monitor.h"
#include "sp_signal.h"

#include <getopt.h>
#include <stdio.h>

#define EXIT_USAGE         2
#define SP_MONITOR_WAIT_MS 5000

static void s_usage(FILE *out)
{
    fprintf(out, "usage: monitor [--instance NAME] [--plain] [--once] [--json] [--quiet]\n"
                 "  --plain   line mode: one line per stock change and a summary each second\n"
                 "  --once    print the current table and exit\n"
                 "  --json    JSON lines instead of text\n"
                 "  --quiet   summaries only\n");
}

int main(int argc, char **argv)
{
    sp_log_init("monitor");
    sp_monitor_cfg_t cfg = {.instance = "stockpipe", .wait_ms = SP_MONITOR_WAIT_MS};
    static const struct option opts[] = {{"instance", required_argument, 0, 'i'},
                                         {"plain", no_argument, 0, 'p'},
                                         {"once", no_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            cfg.instance = optarg;
            break;
        case 'p':
            break; /* line mode is the only mode for now */
        case 'o':
            cfg.once = true;
            break;
        case 'j':
            cfg.json = true;
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        sp_error("unexpected argument '%s' (see --help)", argv[optind]);
        return EXIT_USAGE;
    }
    sp_signal_install();
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[512] = "";
    sp_monitor_stats_t st;
    int rc = sp_monitor_run(&cfg, stdout, &st, why, sizeof why);
    if (rc < 0) {
        sp_error("%s", why[0] ? why : sp_strerror(rc));
        return 1;
    }
    return 0;
}
