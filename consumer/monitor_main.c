/*
 * monitor — follows the stock of an instance, exactly: full-screen on a
 * terminal, line mode otherwise (see sp_monitor.h).
 */
#include "sp_args.h"
#include "sp_error.h"
#include "sp_log.h"
#include "sp_monitor.h"
#include "sp_nats.h"
#include "sp_shardmon.h"
#include "sp_signal.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SP_MONITOR_WAIT_MS 5000

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: monitor [--instance NAME | --connect tcp://HOST:PORT] [options]\n"
            "  --instance NAME    local instance (default stockpipe): the table is mapped "
            "read-only\n"
            "  --instance A,B,... the shards of a sharded shop (broker --products), merged\n"
            "                     into one view (console or lines) with each shard's health\n"
            "  --connect URL      remote broker started with --tcp URL: snapshots come from "
            "it\n"
            "                     (URL: PORT, HOST:PORT or tcp://HOST:PORT; PORT alone is\n"
            "                     127.0.0.1; events from PORT+3, snapshots from PORT+4);\n"
            "                     or nats://HOST:PORT[,...]: the NATS servers of a broker\n"
            "                     with --transport nats (--instance names it)\n"
            "  --nats-auth FILE   credentials for those servers: \"USER PASSWORD\" (mode 0600)\n"
            "  --nats-ca FILE     TLS to them, trusting these CA certificates\n"
            "  --cert FILE        our CURVE certificate (`broker --keygen FILE`; FILE_secret\n"
            "                     must have mode 0600), for a broker with --curve-cert; its\n"
            "                     public half FILE must be in the broker's --curve-clients\n"
            "  --server-cert FILE the broker's public certificate (with --connect and CURVE;\n"
            "                     a local monitor reads the broker's key from the table)\n"
            "  --from-broker      local instance, but take snapshots from the broker as a "
            "remote\n"
            "                     monitor does\n"
            "  --plain            line mode even on a terminal: one line per stock change,\n"
            "                     a summary line every --interval, a line per gap and resync\n"
            "  --once             print the current table and exit\n"
            "  --json             JSON lines (with --once: one JSON array)\n"
            "  --quiet            line mode without the per-change lines\n"
            "  --final            when the stream ends, print the monitor's own table\n"
            "  --interval MS      summary period in line mode (default 1000)\n"
            "  --low N            console: stock at or below N is low (default 10%% of the "
            "initial stock)\n"
            "  --wait MS          how long to wait for the instance (default 5000)\n"
            "Console keys: q quit, ? help, p pause, i/s/a sort by id/stock/activity,\n"
            "/ filter by name or category, arrows/PgUp/PgDn/Home/End scroll.\n"
            "Line mode is automatic when stdout is not a terminal.\n");
}

/* a refused value has always been reported without the "(see --help)" */
static const sp_args_cli_t s_cli = {.usage = s_usage, .flags = SP_ARGS_NO_HINT};

int main(int argc, char **argv)
{
    sp_log_init("monitor");
    sp_monitor_cfg_t cfg = {.instance = "stockpipe", .wait_ms = SP_MONITOR_WAIT_MS};
    bool plain = false;
    static const struct option opts[] = {{"instance", required_argument, 0, 'i'},
                                         {"connect", required_argument, 0, 'c'},
                                         {"cert", required_argument, 0, 'K'},
                                         {"server-cert", required_argument, 0, 'S'},
                                         {"from-broker", no_argument, 0, 'b'},
                                         {"nats-auth", required_argument, 0, 'A'},
                                         {"nats-ca", required_argument, 0, 'C'},
                                         {"plain", no_argument, 0, 'p'},
                                         {"once", no_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"final", no_argument, 0, 'f'},
                                         {"interval", required_argument, 0, 'n'},
                                         {"low", required_argument, 0, 'l'},
                                         {"wait", required_argument, 0, 'w'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    char why[512] = "";
    int c, rc = 0;
    uint32_t v = 0;
    while ((c = sp_args_next(argc, argv, "h", opts, &rc)) != -1) {
        switch (c) {
        case 'i':
            cfg.instance = optarg;
            break;
        case 'c':
            cfg.connect = optarg;
            break;
        case 'K':
            cfg.cert = optarg;
            break;
        case 'S':
            cfg.server_cert = optarg;
            break;
        case 'b':
            cfg.from_broker = true;
            break;
        case 'A':
            setenv(SP_NATS_AUTH_ENV, optarg, 1);
            break;
        case 'C':
            setenv(SP_NATS_CA_ENV, optarg, 1);
            break;
        case 'p':
            plain = true;
            break;
        case 'o':
            cfg.once = true;
            break;
        case 'j':
            cfg.json = true;
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'f':
            cfg.final_table = true;
            break;
        case 'n':
            rc = sp_arg_u32("--interval", optarg, 10, 3600000, &v, why, sizeof why);
            cfg.summary_ms = (int)v;
            break;
        case 'l':
            rc = sp_arg_u32("--low", optarg, 0, 1000000000, &cfg.low_stock, why, sizeof why);
            break;
        case 'w':
            rc = sp_arg_u32("--wait", optarg, 0, 3600000, &v, why, sizeof why);
            cfg.wait_ms = (int)v;
            break;
        }
    }
    int code = sp_args_done(&s_cli, rc, why, argc - optind, argv + optind);
    if (code != SP_ARGS_GO) {
        return code;
    }
    if (cfg.connect != NULL && cfg.from_broker) {
        sp_error("--from-broker is for a local --instance; --connect already asks the broker");
        return SP_EXIT_USAGE;
    }
    cfg.console = !plain && !cfg.json && !cfg.once && !cfg.final_table && isatty(STDOUT_FILENO) &&
                  isatty(STDIN_FILENO);
    if (strchr(cfg.instance, ',') != NULL) {
        if (cfg.connect != NULL) {
            sp_error("--instance A,B merges local shards; --connect follows one broker");
            return SP_EXIT_USAGE;
        }
        sp_signal_install();
        (void)setvbuf(stdout, NULL, _IOLBF, 0);
        sp_shardmon_t *sm = NULL;
        rc = sp_shardmon_new(&sm, &cfg, cfg.instance, stdout, why, sizeof why);
        if (rc == 0) {
            rc = sp_shardmon_run(sm, why, sizeof why);
        }
        sp_shardmon_destroy(&sm);
        if (rc < 0) {
            sp_error("%s", why[0] ? why : sp_strerror(rc));
            return 1;
        }
        return 0;
    }
    sp_signal_install();
    (void)setvbuf(stdout, NULL, _IOLBF, 0); /* fails only for bad arguments */
    sp_monitor_t *mon = NULL;
    rc = sp_monitor_new(&mon, &cfg, stdout, why, sizeof why);
    if (rc == 0) {
        rc = sp_monitor_run(mon, why, sizeof why);
    }
    sp_monitor_destroy(&mon);
    if (rc < 0) {
        sp_error("%s", why[0] ? why : sp_strerror(rc));
        return 1;
    }
    return 0;
}
