/*
 * broker — owns one stockpipe instance.  Parses flags, builds the broker
 * (sp_broker_new), runs it, tears it down and prints its closing summary;
 * everything else lives in broker/'s modules.
 */
#include "sp_args.h"
#include "sp_broker.h"
#include "sp_curve.h"
#include "sp_error.h"
#include "sp_journal.h"
#include "sp_log.h"
#include "sp_metrics.h"
#include "sp_nats.h"
#include "sp_signal.h"
#include "sp_transport.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* options without a letter */
enum {
    S_OPT_NATS_AUTH = 0x100,
    S_OPT_NATS_CA,
    S_OPT_NATS_REPLICAS,
    S_OPT_PRODUCTS,
    S_OPT_EXPORT,
    S_OPT_METRICS,
    S_OPT_METRICS_PUBLIC
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: broker [options]\n"
                 "  --instance NAME     instance name (default stockpipe)\n"
                 "  --catalogue FILE    product CSV (default data/products.csv)\n"
                 "  --products LO-HI    one shard of a catalogue split across brokers: load\n"
                 "                      only the products with ids LO..HI (ids keep their\n"
                 "                      values); clients learn the range from the WELCOME\n"
                 "  --export LO-HI      write the products LO..HI of the table the last clean\n"
                 "                      stop saved, with their stock, as a catalogue to stdout\n"
                 "                      (to start another shard with), and exit; the next\n"
                 "                      start with --products excluding them drops them\n"
                 "  --workers N         inventory workers to start and supervise (default 2)\n"
                 "  --transport T       how orders travel (default mq; --tcp: zmq):\n");
    for (unsigned i = 0; sp_transport_at(i) != NULL; i++) {
        fprintf(out, "                        %-7s %s\n", sp_transport_at(i)->name,
                sp_transport_at(i)->summary);
    }
    fprintf(out,
            "  --tcp [tcp://][HOST:]PORT\n"
            "                      zmq with the client-facing endpoints on TCP: orders on PORT,\n"
            "                      events on PORT+3, snapshots on PORT+4 (workers stay on\n"
            "                      ipc://). HOST defaults to 127.0.0.1; a HOST that is not\n"
            "                      loopback (127.0.0.0/8, [::1], localhost) needs CURVE\n"
            "  --nats URL[,URL...] the nats transport's servers, each\n"
            "                      nats://[USER:PASSWORD@]HOST:PORT (implies --transport nats)\n"
            "  --nats-auth FILE    their credentials: \"USER PASSWORD\" (mode 0600)\n"
            "  --nats-ca FILE      TLS to them, trusting these CA certificates\n"
            "  --nats-replicas N   copies the servers keep of each order (1, or 3 on a\n"
            "                      3-node cluster: a node may die; default 1)\n"
            "  --curve-cert FILE   CURVE on the TCP endpoints: the broker's certificate, as\n"
            "                      --keygen FILE wrote it (FILE_secret must have mode 0600)\n"
            "  --curve-clients DIR CURVE: directory of the public certificates of the clients\n"
            "                      let in (producers, monitors); re-read when it changes\n"
            "  --keygen PATH       write a new CURVE key pair, PATH (public certificate) and\n"
            "                      PATH_secret (mode 0600), print the public key, and exit\n"
            "  --sync S            cas (default), row-lock or table-lock\n"
            "  --mq-depth N        order queue depth (default fs.mqueue.msg_max)\n"
            "  --mq-msgsize B      order queue message size (default 8192; shm: ring slot\n"
            "                      size, default 16384, at most 1048576)\n"
            "  --state-dir DIR     where the journal and the final table are kept, under\n"
            "                      DIR/INSTANCE (default run)\n"
            "  --fsync P           when workers fsync their journal: always (before each\n"
            "                      answer), interval[:MS] (default, every 100 ms) or never\n"
            "  --no-journal        keep no journal (exactly once only while the table lives)\n"
            "  --no-dedup          no de-duplication and no journal: a resent order is\n"
            "                      applied again (only to measure what exactly-once costs)\n"
            "  --keep-journal      leave the journal files after a clean stop\n"
            "  --snapshot-every D  save the table and trim the journal this often\n"
            "                      (default 60s; 0 = only at a clean stop)\n"
            "  --fresh             start from --catalogue instead of the saved state (the last\n"
            "                      clean stop's table, or a crashed run's journal), which is\n"
            "                      kept in STATE_DIR/INSTANCE/replaced-DATE once the catalogue\n"
            "                      has loaded (a catalogue that does not load changes nothing)\n"
            "  --consumer PATH     worker binary (default: consumer beside this one)\n"
            "  --metrics [HOST:]PORT\n"
            "                      serve the counters for Prometheus at\n"
            "                      http://HOST:PORT/metrics (HOST defaults to 127.0.0.1,\n"
            "                      PORT 0 takes any free one; docs/METRICS.md)\n"
            "  --metrics-public    let --metrics listen on an address that is not loopback\n"
            "  --clean             remove the leftovers of a dead broker of --instance, and exit\n"
            "  -h, --help\n");
}

static const sp_args_cli_t s_cli = {.usage = s_usage};

/* --keygen PATH: a new CURVE key pair; the public key on stdout. */
static int s_keygen(const char *path)
{
    char why[512] = "";
    sp_curve_keys_t keys;
    int rc = sp_curve_keygen(path, &keys, why, sizeof why);
    if (rc < 0) {
        sp_error("%s", why[0] ? why : sp_strerror(rc));
        return 1;
    }
    printf("public key %s\n"
           "wrote %s (the public certificate: hand it out) and %s%s (the secret one, mode "
           "0600: keep it)\n",
           keys.public_txt, path, path, SP_CURVE_SECRET_SUFFIX);
    sp_curve_wipe(&keys);
    return 0;
}

static void s_notify(int level, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    sp_log(level, "%s", line);
}

int main(int argc, char **argv)
{
    sp_log_init("broker");
    sp_broker_cfg_t cfg = {.instance = "stockpipe",
                           .catalogue = "data/products.csv",
                           .workers = 2,
                           .sync = SP_SYNC_CAS,
                           .transport = NULL, /* the broker's default: mq */
                           .snapshot_ms = 60000,
                           .notify = s_notify};
    bool clean = false, tcp_transport = false, transport_set = false;
    const char *keygen = NULL;
    const char *metrics_spec = NULL;
    bool metrics_public = false;
    uint32_t export_lo = 0, export_hi = 0;
    char why[512] = "";
    static const struct option opts[] = {
        {"instance", required_argument, 0, 'i'},
        {"catalogue", required_argument, 0, 'c'},
        {"workers", required_argument, 0, 'w'},
        {"transport", required_argument, 0, 't'},
        {"tcp", required_argument, 0, 'T'},
        {"nats", required_argument, 0, 'B'},
        {"nats-auth", required_argument, 0, S_OPT_NATS_AUTH},
        {"nats-ca", required_argument, 0, S_OPT_NATS_CA},
        {"nats-replicas", required_argument, 0, S_OPT_NATS_REPLICAS},
        {"products", required_argument, 0, S_OPT_PRODUCTS},
        {"export", required_argument, 0, S_OPT_EXPORT},
        {"curve-cert", required_argument, 0, 'P'},
        {"curve-clients", required_argument, 0, 'L'},
        {"keygen", required_argument, 0, 'G'},
        {"sync", required_argument, 0, 's'},
        {"mq-depth", required_argument, 0, 'd'},
        {"mq-msgsize", required_argument, 0, 'm'},
        {"state-dir", required_argument, 0, 'S'},
        {"consumer", required_argument, 0, 'C'},
        {"clean", no_argument, 0, 'x'},
        {"fsync", required_argument, 0, 'F'},
        {"no-journal", no_argument, 0, 'N'},
        {"keep-journal", no_argument, 0, 'K'},
        {"fresh", no_argument, 0, 'R'},
        {"no-dedup", no_argument, 0, 'D'},
        {"snapshot-every", required_argument, 0, 'E'},
        {"metrics", required_argument, 0, S_OPT_METRICS},
        {"metrics-public", no_argument, 0, S_OPT_METRICS_PUBLIC},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    int rc = 0;
    while ((c = sp_args_next(argc, argv, "h", opts, &rc)) != -1) {
        uint64_t v;
        switch (c) {
        case 'i':
            cfg.instance = optarg;
            break;
        case 'c':
            cfg.catalogue = optarg;
            cfg.catalogue_given = true;
            break;
        case 'w':
            rc = sp_arg_u32("--workers", optarg, 1, SP_WORKERS_MAX, &cfg.workers, why, sizeof why);
            break;
        case 't':
            cfg.transport = sp_transport_find(optarg);
            transport_set = true;
            if (cfg.transport == NULL) {
                char names[128];
                snprintf(why, sizeof why, "--transport: '%s' is not %s", optarg,
                         sp_transport_names(names, sizeof names));
                rc = SP_E_USAGE;
            }
            break;
        case 'T':
            cfg.tcp = optarg;
            tcp_transport = true;
            break;
        case 'B':
            cfg.service = optarg;
            break;
        case S_OPT_NATS_AUTH: /* in the environment: our workers inherit it */
            setenv(SP_NATS_AUTH_ENV, optarg, 1);
            break;
        case S_OPT_NATS_CA:
            setenv(SP_NATS_CA_ENV, optarg, 1);
            break;
        case S_OPT_NATS_REPLICAS:
            rc = sp_arg_u32("--nats-replicas", optarg, 1, 5, &cfg.replicas, why, sizeof why);
            break;
        case S_OPT_PRODUCTS:
            rc = sp_arg_range("--products", optarg, 1, SP_PRODUCT_ID_MAX, &cfg.product_lo,
                              &cfg.product_hi, why, sizeof why);
            break;
        case S_OPT_EXPORT:
            rc = sp_arg_range("--export", optarg, 1, SP_PRODUCT_ID_MAX, &export_lo, &export_hi, why,
                              sizeof why);
            break;
        case 'P':
            cfg.curve_cert = optarg;
            break;
        case 'L':
            cfg.curve_clients = optarg;
            break;
        case 'G':
            keygen = optarg;
            break;
        case 's':
            if (sp_sync_parse(optarg, &cfg.sync) < 0) {
                snprintf(why, sizeof why, "--sync: '%s' is not cas, row-lock or table-lock",
                         optarg);
                rc = SP_E_USAGE;
            }
            break;
        case 'd':
            rc = sp_arg_u64("--mq-depth", optarg, 1, 65536, &v, why, sizeof why);
            cfg.depth = (long)v;
            break;
        case 'm':
            rc = sp_arg_u64("--mq-msgsize", optarg, 64, 16ull * 1024 * 1024, &v, why, sizeof why);
            cfg.msgsize = (long)v;
            break;
        case 'S':
            cfg.state_dir = optarg;
            break;
        case 'C':
            cfg.consumer_path = optarg;
            break;
        case 'F': {
            sp_fsync_policy_t p = SP_FSYNC_INTERVAL;
            if (sp_fsync_policy_parse(optarg, &p, &cfg.fsync_interval_ms) < 0) {
                snprintf(why, sizeof why,
                         "--fsync: '%s' is not always, never, interval or interval:MS "
                         "(1..%u)",
                         optarg, SP_JOURNAL_INTERVAL_MAX);
                rc = SP_E_USAGE;
            }
            cfg.fsync_policy = (int)p;
            break;
        }
        case 'N':
            cfg.no_journal = true;
            break;
        case 'K':
            cfg.keep_journal = true;
            break;
        case 'R':
            cfg.fresh = true;
            break;
        case 'D':
            cfg.no_dedup = true;
            break;
        case 'E': {
            double d;
            rc = sp_arg_duration("--snapshot-every", optarg, &d, why, sizeof why);
            if (rc == 0 && d != 0 && (d < 0.01 || d > 86400)) {
                snprintf(why, sizeof why, "--snapshot-every: 0, or 10ms .. 24h");
                rc = SP_E_USAGE;
            }
            cfg.snapshot_ms = (unsigned)(d * 1000);
            break;
        }
        case 'x':
            clean = true;
            break;
        case S_OPT_METRICS:
            metrics_spec = optarg;
            break;
        case S_OPT_METRICS_PUBLIC:
            metrics_public = true;
            break;
        }
    }
    int code = sp_args_done(&s_cli, rc, why, argc - optind, argv + optind);
    if (code != SP_ARGS_GO) {
        return code;
    }
    if (cfg.service != NULL && !transport_set) {
        cfg.transport = sp_transport_find("nats"); /* --nats: orders through its servers */
    }
    if (tcp_transport && !transport_set) {
        cfg.transport = sp_transport_find("zmq"); /* --tcp: clients over the router */
    }
    if (keygen != NULL) {
        return s_keygen(keygen);
    }
    if (export_lo != 0) {
        rc = sp_broker_export(cfg.instance, cfg.state_dir, export_lo, export_hi, stdout, why,
                              sizeof why);
        if (rc < 0) {
            sp_error("%s", why);
            return rc == SP_E_USAGE ? SP_EXIT_USAGE : 1;
        }
        sp_info("%s", why);
        return 0;
    }
    if (clean) {
        rc = sp_broker_clean(cfg.instance, why, sizeof why);
        if (rc == -ENOENT) {
            sp_info("nothing to clean for instance %s", cfg.instance);
            return 0;
        }
        if (rc < 0) {
            sp_error("%s", why);
            return 1;
        }
        sp_info("%s", why);
        return 0;
    }
    if (metrics_public && metrics_spec == NULL) {
        sp_error("--metrics-public goes with --metrics [HOST:]PORT (see --help)");
        return SP_EXIT_USAGE;
    }
    sp_signal_install();
    /* the metrics listen first: a port in use stops us before the instance exists */
    sp_metrics_t *board = NULL;
    sp_metrics_srv_t *server = NULL;
    if (metrics_spec != NULL) {
        char where[128];
        board = sp_metrics_new();
        rc = board == NULL ? -ENOMEM
                           : sp_metrics_serve(&server, board, metrics_spec, metrics_public, where,
                                              sizeof where, why, sizeof why);
        if (rc < 0) {
            sp_error("%s", why[0] ? why : sp_strerror(rc));
            sp_metrics_free(&board);
            return rc == SP_E_USAGE ? SP_EXIT_USAGE : 1;
        }
        sp_info("metrics at %s", where);
        cfg.metrics = board;
    }
    sp_broker_t *broker = NULL;
    sp_broker_stats_t st;
    rc = sp_broker_new(&broker, &cfg, why, sizeof why);
    if (rc == 0) {
        rc = sp_broker_run(broker, &st, why, sizeof why);
        sp_broker_destroy(&broker);
    }
    sp_metrics_stop(&server);
    sp_metrics_free(&board);
    if (rc < 0) {
        sp_error("%s", why[0] ? why : sp_strerror(rc));
        return rc == SP_E_USAGE ? SP_EXIT_USAGE : 1;
    }
    sp_info("stopped: %llu accepted, %llu out of stock, %llu unknown, %llu invalid by workers; "
            "%llu dead-lettered; drops: %llu orders, %llu results; %llu events (%llu missed); "
            "%u restarts; saved %s",
            (unsigned long long)st.orders[0], (unsigned long long)st.orders[1],
            (unsigned long long)st.orders[2], (unsigned long long)st.orders[3],
            (unsigned long long)(st.worker_invalid + st.router.invalid_msgs),
            (unsigned long long)st.router.drops_orders,
            (unsigned long long)(st.router.drops_results + st.worker_result_drops),
            (unsigned long long)st.router.events, (unsigned long long)st.router.event_gaps,
            st.restarts, st.snapshot[0] ? st.snapshot : "(nothing)");
    return 0;
}
