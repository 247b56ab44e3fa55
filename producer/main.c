/*
 * producer — simulated customers (load mode: sp_loadgen, then the report
 * and, when asked, the final table and the conservation audit) or one order
 * from the command line (`producer buy ID [QTY]`, `producer restock ID QTY`,
 * ...: sp_once).  This main parses arguments, builds the object, runs it,
 * prints what it found and turns it into the exit code.
 */
#include "sp_args.h"
#include "sp_audit.h"
#include "sp_commit.h"
#include "sp_client.h"
#include "sp_error.h"
#include "sp_grow.h"
#include "sp_loadgen.h"
#include "sp_log.h"
#include "sp_nats.h"
#include "sp_once.h"
#include "sp_print.h"
#include "sp_report.h"
#include "sp_shards.h"
#include "sp_signal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_REFUSED           3 /* one-shot: the order was answered but not accepted */
#define EXIT_THRESHOLD         4 /* a --max-p99, --min-rate or --max-timeouts limit failed */
#define SP_ONE_SHOT_TIMEOUT_MS 5000
#define SP_FINAL_TABLE_ROWS    50 /* --table: rows printed after the report */

/* options without a letter */
enum {
    S_OPT_NATS_AUTH = 0x100,
    S_OPT_NATS_CA,
    S_OPT_INTERVAL,
    S_OPT_INTERVAL_OUT,
    S_OPT_HGRM,
    S_OPT_MAX_P99,
    S_OPT_MIN_RATE,
    S_OPT_MAX_TIMEOUTS,
    S_OPT_QUIET
};

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: producer [options]              simulated customers\n"
        "       producer buy ID [QTY]           place one purchase, print the result\n"
        "       producer restock ID QTY         place one restock, print the result\n"
        "       producer reserve ID QTY [SECS]  hold QTY units for SECS seconds (default %d);\n"
        "                                       prints the producer id that holds them\n"
        "       producer buy-held ID QTY PRODUCER   buy the units that producer holds\n"
        "       producer release ID QTY PRODUCER    give them back to stock\n"
        "options:\n"
        "  --instance NAME     instance to load, on this host (default stockpipe)\n"
        "  --instance A,B,...  a sharded shop (broker --products): one producer per shard,\n"
        "                      each order sent to the shard that owns its product; with\n"
        "                      --connect nats://..., the instances behind those servers\n"
        "  --connect URL       a broker on another host, started with --tcp URL\n"
        "                      (tcp://HOST:PORT; zmq): orders, the audit and --table go there\n"
        "                      or nats://[USER:PASSWORD@]HOST:PORT[,...]: the servers of an\n"
        "                      instance on --transport nats (orders only; ids from the\n"
        "                      WELCOME)\n"
        "  --nats-auth FILE    credentials for those servers: \"USER PASSWORD\" (mode 0600)\n"
        "  --nats-ca FILE      TLS to them, trusting these CA certificates\n"
        "  --server-cert FILE  that broker's public certificate, when it runs CURVE\n"
        "  --customers N       customer processes (default 1)\n"
        "  --rate R            orders/s offered by all customers together (default: as fast\n"
        "                      as possible)\n"
        "  --arrival A         constant (default with --rate) or poisson\n"
        "  --duration D        how long to schedule orders: 10, 10s, 500ms, 2m\n"
        "  --count N           how many orders in all\n"
        "  --zipf S            Zipf-skewed popularity with exponent S (default uniform)\n"
        "  --restock F         fraction of orders that are restocks, 0..1 (default 0)\n"
        "  --holds F           fraction of orders that reserve units, 0..1 (default 0); each\n"
        "                      hold is then bought, released or left to expire\n"
        "  --hold-time D       how long those holds last (default %ds)\n"
        "  --qty N | MIN-MAX   quantity per order (default 1)\n"
        "  --batch N           orders per message (default %d)\n"
        "  --window N          orders in flight per customer (default %d)\n"
        "  --timeout D         give up on an unanswered order after D (default 10s)\n"
        "  --retry D           resend an unanswered order after D, doubling up to 2s\n"
        "                      (default 250ms; 0 = never resend)\n"
        "  --ledger-out DIR    write every order's outcome to DIR/ledger-<producer>.bin\n"
        "                      (32-byte records, see sp_ledger.h; the chaos checker reads them)\n"
        "  --cert FILE         this producer's CURVE certificate (from `broker --keygen\n"
        "                      FILE`; FILE_secret must have mode 0600), needed when the\n"
        "                      broker runs with --curve-cert\n"
        "  --inject-malformed N  testing hostile input: after every N-th order message send\n"
        "                      a malformed one (garbage, truncated, wrong magic, version or\n"
        "                      kind, a lying count, or an order with a field out of range);\n"
        "                      the report counts them, the broker must refuse every one\n"
        "  --seed N            random seed (default 1)\n"
        "  --interval D        a progress line every D (on a terminal: every 1s, rewritten\n"
        "                      in place on stderr)\n"
        "  --interval-out FILE  the --interval lines go to FILE: CSV when it ends in .csv,\n"
        "                      JSON Lines otherwise; - is stdout (default: text on stderr)\n"
        "  --quiet             no progress line on a terminal\n"
        "  --hgrm FILE         write the latency distribution to FILE in HdrHistogram's\n"
        "                      percentile format (milliseconds), as wrk2 prints it\n"
        "  --max-p99 D         thresholds: exit 4 when p99 latency is above D,\n"
        "  --min-rate R        when fewer than R orders/s were answered,\n"
        "  --max-timeouts N    or when more than N orders timed out; the report says which\n"
        "                      held\n"
        "  --json              report as JSON\n"
        "  --audit             check conservation against a snapshot of the instance\n"
        "                      (only producer)\n"
        "  --table             print the final table after the report\n",
        SP_HOLD_DEFAULT_S, SP_CUSTOMER_HOLD_S, SP_BATCH_DEFAULT, SP_WINDOW_DEFAULT);
}

/* Whether `word` is one of the one-shot verbs (`producer buy 3`). */
static bool s_is_verb(const char *word)
{
    static const char *verbs[] = {"buy", "restock", "reserve", "buy-held", "release"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(word, verbs[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int s_parse_qty(const char *s, sp_load_cfg_t *cfg, char *why, size_t cap)
{
    const char *dash = strchr(s, '-');
    if (dash == NULL) {
        int rc = sp_arg_u32("--qty", s, 1, SP_QTY_MAX, &cfg->qty_min, why, cap);
        cfg->qty_max = cfg->qty_min;
        return rc;
    }
    char lo[32];
    size_t n = (size_t)(dash - s);
    if (n == 0 || n >= sizeof lo) {
        snprintf(why, cap, "--qty: '%s' is not N or MIN-MAX", s);
        return SP_E_USAGE;
    }
    memcpy(lo, s, n);
    lo[n] = '\0';
    int rc = sp_arg_u32("--qty", lo, 1, SP_QTY_MAX, &cfg->qty_min, why, cap);
    if (rc == 0) {
        rc = sp_arg_u32("--qty", dash + 1, 1, SP_QTY_MAX, &cfg->qty_max, why, cap);
    }
    if (rc == 0 && cfg->qty_max < cfg->qty_min) {
        snprintf(why, cap, "--qty: the range %s is reversed: write %u-%u", s, cfg->qty_max,
                 cfg->qty_min);
        rc = SP_E_USAGE;
    }
    return rc;
}

static int s_one_shot(const sp_load_cfg_t *cfg, int argc, char **argv)
{
    char why[512] = "";
    const char *verb = argv[0];
    sp_once_t req = {.instance = cfg->instance,
                     .connect = cfg->connect,
                     .server_cert = cfg->server_cert,
                     .qty = 1,
                     .cert = cfg->cert};
    /* verb, argument names, fewest and most arguments after the verb */
    const char *form;
    int least, most;
    if (strcmp(verb, "buy") == 0) {
        req.type = SP_ORDER_PURCHASE, form = "ID [QTY]", least = 1, most = 2;
    } else if (strcmp(verb, "restock") == 0) {
        req.type = SP_ORDER_RESTOCK, form = "ID QTY", least = 2, most = 2;
    } else if (strcmp(verb, "reserve") == 0) {
        req.type = SP_ORDER_RESERVE, form = "ID QTY [SECONDS]", least = 2, most = 3;
    } else {
        req.type = strcmp(verb, "buy-held") == 0 ? SP_ORDER_BUY_HELD : SP_ORDER_RELEASE;
        form = "ID QTY PRODUCER (the producer id the reserve printed)", least = 3, most = 3;
    }
    if (argc - 1 < least || argc - 1 > most) {
        sp_error("usage: producer %s %s", verb, form);
        return SP_EXIT_USAGE;
    }
    uint32_t secs = 0;
    int rc = sp_arg_u32("product id", argv[1], 1, UINT32_MAX, &req.product, why, sizeof why);
    if (rc == 0 && argc > 2) {
        rc = sp_arg_u32("quantity", argv[2], 1, SP_QTY_MAX, &req.qty, why, sizeof why);
    }
    if (rc == 0 && argc > 3 && req.type == SP_ORDER_RESERVE) {
        rc = sp_arg_u32("seconds", argv[3], 1, SP_HOLD_SECONDS_MAX, &secs, why, sizeof why);
        req.hold_s = (uint16_t)secs;
    } else if (rc == 0 && argc > 3) {
        rc = sp_arg_u32("producer", argv[3], 1, UINT32_MAX, &req.as_producer, why, sizeof why);
    }
    if (rc < 0) {
        sp_error("%s", why);
        return SP_EXIT_USAGE;
    }
    sp_result_t res;
    uint32_t producer = 0;
    rc = sp_once_place(&req, SP_ONE_SHOT_TIMEOUT_MS, &res, &producer, why, sizeof why);
    if (rc < 0) {
        sp_error("%s", why);
        return 1;
    }
    return sp_report_once(stdout, &req, &res, producer) ? 0 : EXIT_REFUSED;
}

/* The snapshot the audit and --table read, gathered in id order. */
typedef struct {
    sp_snaprow_t *rows;
    size_t n, cap;
    bool failed;
} s_rows_t;

static void s_take_row(void *ctx, const sp_snaprow_t *row)
{
    s_rows_t *r = ctx;
    sp_snaprow_t *grown = r->failed ? NULL : sp_grow(r->rows, &r->cap, r->n + 1, sizeof *grown, 64);
    if (grown == NULL) {
        r->failed = true;
        return;
    }
    r->rows = grown;
    r->rows[r->n++] = *row;
}

/* One snapshot of `instance` into *got (rows in id order; `what` names its
 * use in the error).  Returns 0, or 1 after saying why. */
static int s_snapshot(const sp_load_cfg_t *cfg, const char *instance, const char *what,
                      s_rows_t *got, sp_snapinfo_t *info)
{
    sp_client_cfg_t cc = {.instance = instance,
                          .connect = cfg->connect,
                          .snapshot = cfg->snapshot,
                          .server_cert = cfg->server_cert,
                          .cert = cfg->cert};
    char why[512] = "";
    *got = (s_rows_t){0};
    int rc = sp_client_snapshot(&cc, s_take_row, got, info, why, sizeof why);
    if (rc == 0 && got->failed) {
        rc = -ENOMEM;
        snprintf(why, sizeof why, "no memory for the snapshot's rows");
    }
    if (rc < 0) {
        sp_error("cannot take a snapshot of instance '%s' %s: %s", instance, what, why);
        free(got->rows);
        got->rows = NULL;
        return 1;
    }
    return 0;
}

/* The table's sold and restocked counters of one instance when the run
 * started, by product id: the audit holds the run's accepted units against
 * what the table counted since then, so that earlier runs on the same
 * instance do not count against this one. */
typedef struct {
    uint64_t *sold, *restocked;
    uint32_t n; /* entries: the highest id + 1 */
} s_base_t;

static int s_base_take(const sp_load_cfg_t *cfg, const char *instance, s_base_t *base)
{
    s_rows_t got;
    sp_snapinfo_t info;
    *base = (s_base_t){0};
    if (s_snapshot(cfg, instance, "before the run (the audit's starting point)", &got, &info)) {
        return 1;
    }
    for (size_t i = 0; i < got.n; i++) {
        base->n = got.rows[i].id >= base->n ? got.rows[i].id + 1 : base->n;
    }
    base->sold = calloc(base->n + 1, sizeof *base->sold);
    base->restocked = calloc(base->n + 1, sizeof *base->restocked);
    if (base->sold == NULL || base->restocked == NULL) {
        sp_error("no memory for the audit's starting point");
        free(got.rows);
        return 1;
    }
    for (size_t i = 0; i < got.n; i++) {
        base->sold[got.rows[i].id] = got.rows[i].sold;
        base->restocked[got.rows[i].id] = got.rows[i].restocked;
    }
    free(got.rows);
    return 0;
}

static void s_bases_free(s_base_t *bases, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        free(bases[i].sold);
        free(bases[i].restocked);
        bases[i] = (s_base_t){0};
    }
}

/* What the table must have counted by now for the run's ledger `units`
 * (capacity + 1 entries) to hold: the starting point plus the run's
 * units (malloc'd; NULL when out of memory or without a ledger). */
static uint64_t *s_expected(const uint64_t *units, uint32_t capacity, const uint64_t *at_start,
                            uint32_t n_start)
{
    if (units == NULL) {
        return NULL;
    }
    uint64_t *e = malloc(((size_t)capacity + 1) * sizeof *e);
    for (uint32_t id = 0; e != NULL && id <= capacity; id++) {
        e[id] = units[id] + (at_start != NULL && id < n_start ? at_start[id] : 0);
    }
    return e;
}

/* After the load: the final table (--table) and the conservation audit
 * (--audit, against the counters at `base`, the run's start) of one
 * instance (`label`: a shard's name, said on each line; NULL: the only
 * one), from one snapshot of it (this producer does not map the table).
 * Returns 0, or 1 when no snapshot came or the audit fails. */
static int s_check_one(FILE *out, const sp_load_cfg_t *cfg, const char *instance, const char *label,
                       const sp_loadgen_t *loadgen, const s_base_t *base, bool audit, bool table)
{
    s_rows_t got;
    sp_snapinfo_t info;
    if (s_snapshot(cfg, instance, "for the audit", &got, &info)) {
        return 1;
    }
    int bad = 0;
    if (table) {
        if (label != NULL) {
            fprintf(out, "\nfinal table of shard %s:\n", label);
        } else {
            fprintf(out, "\nfinal table:\n");
        }
        sp_print_table_header(out);
        for (size_t i = 0; i < got.n && i < SP_FINAL_TABLE_ROWS; i++) {
            const sp_snaprow_t *r = &got.rows[i];
            sp_product_t p = {.id = r->id,
                              .weight_g = r->weight_g,
                              .price_cents = r->price_cents,
                              .expiry = r->expiry,
                              .stock = r->stock};
            snprintf(p.name, sizeof p.name, "%s", r->name);
            snprintf(p.category, sizeof p.category, "%s", r->category);
            sp_print_product(out, &p);
        }
        if (got.n > SP_FINAL_TABLE_ROWS) {
            fprintf(out, "... %zu more products\n", got.n - SP_FINAL_TABLE_ROWS);
        }
    }
    if (audit) {
        sp_audit_row_t *rows = malloc(sizeof *rows * (got.n > 0 ? got.n : 1));
        if (rows == NULL) {
            free(got.rows);
            return 1;
        }
        for (size_t i = 0; i < got.n; i++) {
            rows[i] = sp_audit_row_of(&got.rows[i]);
        }
        if (label != NULL) {
            fprintf(out, "shard %s: ", label);
        }
        uint32_t capacity = sp_loadgen_capacity(loadgen);
        uint64_t *sold = s_expected(sp_loadgen_sold(loadgen), capacity, base->sold, base->n);
        uint64_t *restocked =
            s_expected(sp_loadgen_restocked(loadgen), capacity, base->restocked, base->n);
        bad = sp_audit_rows(out, rows, got.n, &info.held, sp_loadgen_stats(loadgen), sold,
                            restocked) != 0;
        free(sold);
        free(restocked);
        free(rows);
    }
    free(got.rows);
    return bad;
}

/* The checks of s_check_one for each shard of a sharded shop (its rows
 * are the products that shard owns, and the accepted units the customers
 * were told of for them), or of the one instance. */
static int s_check(FILE *out, const sp_load_cfg_t *cfg, const sp_shards_t *shards,
                   const sp_loadgen_t *loadgen, const s_base_t *bases, bool audit, bool table)
{
    int bad = 0;
    for (unsigned i = 0; i < shards->n; i++) {
        bad |= s_check_one(out, cfg, shards->name[i], shards->n > 1 ? shards->name[i] : NULL,
                           loadgen, &bases[i], audit, table);
    }
    return bad;
}

/* "checks":{"ok":BOOL,"lines":[...]}: the audit and table lines of a
 * --json run, each a JSON string (malloc'd; NULL when out of memory). */
static char *s_checks_json(const char *text, bool ok)
{
    char *json = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&json, &len);
    if (f == NULL) {
        return NULL;
    }
    fprintf(f, "\"checks\":{\"ok\":%s,\"lines\":[", ok ? "true" : "false");
    bool first = true;
    for (const char *l = text; *l != '\0';) {
        size_t n = strcspn(l, "\n");
        if (n > 0) {
            fputs(first ? "\"" : ",\"", f);
            for (size_t k = 0; k < n; k++) {
                unsigned char c = (unsigned char)l[k];
                if (c == '"' || c == '\\') {
                    fprintf(f, "\\%c", c);
                } else if (c < 0x20) {
                    fprintf(f, "\\u%04x", c);
                } else {
                    fputc(c, f);
                }
            }
            fputc('"', f);
            first = false;
        }
        l += n + (l[n] == '\n');
    }
    fputs("]}", f);
    if (fclose(f) != 0) {
        free(json);
        return NULL;
    }
    return json;
}

/* Where the progress lines go (sp_loadgen_on_tick). */
typedef struct {
    FILE *out;
    sp_tick_format_t format;
    bool in_place; /* a terminal line rewritten each tick */
} s_progress_t;

static void s_on_tick(void *ctx, const sp_load_tick_t *tick)
{
    const s_progress_t *p = ctx;
    sp_report_tick(p->out, tick, p->format, p->in_place);
}

/* Opens what --interval-out names ("-": stdout) and picks its format. */
static int s_progress_open(s_progress_t *p, const char *path)
{
    if (path == NULL) {
        *p = (s_progress_t){.out = stderr, .format = SP_TICK_TEXT};
        return 0;
    }
    size_t n = strlen(path);
    bool csv = n > 4 && strcmp(path + n - 4, ".csv") == 0;
    *p = (s_progress_t){.out = strcmp(path, "-") == 0 ? stdout : fopen(path, "w"),
                        .format = csv ? SP_TICK_CSV : SP_TICK_JSON};
    if (p->out == NULL) {
        sp_error("--interval-out: cannot write %s: %s", path, sp_strerror(-errno));
        return -1;
    }
    sp_report_tick_header(p->out, p->format);
    return 0;
}

/* --hgrm: the run's latency distribution into `path`.  Returns 0 or 1. */
static int s_write_hgrm(const char *path, const sp_hist_t *h)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        sp_error("--hgrm: cannot write %s: %s", path, sp_strerror(-errno));
        return 1;
    }
    sp_report_hgrm(f, h);
    if (fclose(f) != 0) {
        sp_error("--hgrm: cannot write %s: %s", path, sp_strerror(-errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    sp_log_init("producer");
    sp_load_cfg_t cfg;
    sp_load_defaults(&cfg);
    bool json = false, audit = false, table = false, arrival_set = false, quiet = false;
    double interval_s = 0;
    const char *interval_out = NULL, *hgrm = NULL;
    sp_thresholds_t limits;
    sp_thresholds_none(&limits);
    char why[512] = "";
    static const struct option opts[] = {{"instance", required_argument, 0, 'i'},
                                         {"customers", required_argument, 0, 'c'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"arrival", required_argument, 0, 'a'},
                                         {"duration", required_argument, 0, 'd'},
                                         {"count", required_argument, 0, 'n'},
                                         {"zipf", required_argument, 0, 'z'},
                                         {"restock", required_argument, 0, 'R'},
                                         {"qty", required_argument, 0, 'q'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"window", required_argument, 0, 'W'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"seed", required_argument, 0, 's'},
                                         {"json", no_argument, 0, 'j'},
                                         {"retry", required_argument, 0, 'Y'},
                                         {"ledger-out", required_argument, 0, 'L'},
                                         {"inject-malformed", required_argument, 0, 'M'},
                                         {"holds", required_argument, 0, 'H'},
                                         {"hold-time", required_argument, 0, 'O'},
                                         {"audit", no_argument, 0, 'A'},
                                         {"table", no_argument, 0, 'T'},
                                         {"cert", required_argument, 0, 'K'},
                                         {"connect", required_argument, 0, 'C'},
                                         {"nats-auth", required_argument, 0, S_OPT_NATS_AUTH},
                                         {"nats-ca", required_argument, 0, S_OPT_NATS_CA},
                                         {"server-cert", required_argument, 0, 'S'},
                                         {"interval", required_argument, 0, S_OPT_INTERVAL},
                                         {"interval-out", required_argument, 0, S_OPT_INTERVAL_OUT},
                                         {"quiet", no_argument, 0, S_OPT_QUIET},
                                         {"hgrm", required_argument, 0, S_OPT_HGRM},
                                         {"max-p99", required_argument, 0, S_OPT_MAX_P99},
                                         {"min-rate", required_argument, 0, S_OPT_MIN_RATE},
                                         {"max-timeouts", required_argument, 0, S_OPT_MAX_TIMEOUTS},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c, rc = 0;
    /* "+" stops at the first non-option, so `producer buy 3 -1` reads -1 as a value */
    while ((c = sp_args_next(argc, argv, "+h", opts, &rc)) != -1) {
        double d;
        switch (c) {
        case 'i':
            cfg.instance = optarg;
            break;
        case 'K':
            cfg.cert = optarg;
            break;
        case 'C':
            cfg.connect = optarg;
            break;
        case S_OPT_NATS_AUTH: /* in the environment: the customers inherit it */
            setenv(SP_NATS_AUTH_ENV, optarg, 1);
            break;
        case S_OPT_NATS_CA:
            setenv(SP_NATS_CA_ENV, optarg, 1);
            break;
        case 'S':
            cfg.server_cert = optarg;
            break;
        case 'c':
            rc = sp_arg_u32("--customers", optarg, 1, SP_CUSTOMERS_MAX, &cfg.customers, why,
                            sizeof why);
            break;
        case 'r':
            rc = sp_arg_double("--rate", optarg, 0.001, 1e9, &cfg.rate, why, sizeof why);
            if (!arrival_set) {
                cfg.arrival = SP_ARRIVAL_CONSTANT;
            }
            break;
        case 'a':
            arrival_set = true;
            if (strcmp(optarg, "constant") == 0) {
                cfg.arrival = SP_ARRIVAL_CONSTANT;
            } else if (strcmp(optarg, "poisson") == 0) {
                cfg.arrival = SP_ARRIVAL_POISSON;
            } else {
                snprintf(why, sizeof why, "--arrival: '%s' is not constant or poisson", optarg);
                rc = SP_E_USAGE;
            }
            break;
        case 'd':
            rc = sp_arg_duration("--duration", optarg, &cfg.duration_s, why, sizeof why);
            break;
        case 'n':
            rc = sp_arg_u64("--count", optarg, 1, UINT64_MAX / 2, &cfg.count, why, sizeof why);
            break;
        case 'z':
            rc = sp_arg_double("--zipf", optarg, 0.01, 10, &cfg.zipf_s, why, sizeof why);
            cfg.pick = SP_PICK_ZIPF;
            break;
        case 'R':
            rc = sp_arg_double("--restock", optarg, 0, 1, &cfg.restock_ratio, why, sizeof why);
            break;
        case 'q':
            rc = s_parse_qty(optarg, &cfg, why, sizeof why);
            break;
        case 'b':
            rc = sp_arg_u32("--batch", optarg, 1, SP_WIRE_MAX_RECORDS, &cfg.batch, why, sizeof why);
            break;
        case 'W':
            rc = sp_arg_u32("--window", optarg, 1, 1u << 20, &cfg.window, why, sizeof why);
            break;
        case 'L':
            cfg.ledger_dir = optarg;
            break;
        case 'M':
            rc = sp_arg_u32("--inject-malformed", optarg, 1, UINT32_MAX, &cfg.malformed_every, why,
                            sizeof why);
            break;
        case 'H':
            rc = sp_arg_double("--holds", optarg, 0, 1, &cfg.hold_ratio, why, sizeof why);
            break;
        case 'O':
            rc = sp_arg_duration("--hold-time", optarg, &d, why, sizeof why);
            cfg.hold_s = (unsigned)d;
            if (rc == 0 && (d < 1 || d > SP_HOLD_SECONDS_MAX)) {
                snprintf(why, sizeof why, "--hold-time: must be 1s .. %ds", SP_HOLD_SECONDS_MAX);
                rc = SP_E_USAGE;
            }
            break;
        case 'Y':
            rc = sp_arg_duration("--retry", optarg, &d, why, sizeof why);
            cfg.retry_ms = (int)(d * 1000);
            if (rc == 0 && d > 0 && cfg.retry_ms < 1) {
                snprintf(why, sizeof why, "--retry: must be 0 or at least 1ms");
                rc = SP_E_USAGE;
            }
            break;
        case 't':
            rc = sp_arg_duration("--timeout", optarg, &d, why, sizeof why);
            cfg.timeout_ms = (int)(d * 1000);
            if (rc == 0 && cfg.timeout_ms < 1) {
                snprintf(why, sizeof why, "--timeout: must be at least 1ms");
                rc = SP_E_USAGE;
            }
            break;
        case 's':
            rc = sp_arg_u64("--seed", optarg, 0, UINT64_MAX, &cfg.seed, why, sizeof why);
            break;
        case 'j':
            json = true;
            break;
        case S_OPT_INTERVAL:
            rc = sp_arg_duration("--interval", optarg, &interval_s, why, sizeof why);
            if (rc == 0 && interval_s < 0.01) {
                snprintf(why, sizeof why, "--interval: must be at least 10ms");
                rc = SP_E_USAGE;
            }
            break;
        case S_OPT_INTERVAL_OUT:
            interval_out = optarg;
            break;
        case S_OPT_QUIET:
            quiet = true;
            break;
        case S_OPT_HGRM:
            hgrm = optarg;
            break;
        case S_OPT_MAX_P99:
            rc = sp_arg_duration("--max-p99", optarg, &d, why, sizeof why);
            limits.max_p99_ns = (uint64_t)(d * 1e9);
            if (rc == 0 && limits.max_p99_ns == 0) {
                snprintf(why, sizeof why, "--max-p99: must be more than 0");
                rc = SP_E_USAGE;
            }
            break;
        case S_OPT_MIN_RATE:
            rc =
                sp_arg_double("--min-rate", optarg, 0.001, 1e12, &limits.min_rate, why, sizeof why);
            break;
        case S_OPT_MAX_TIMEOUTS: {
            uint64_t n = 0;
            rc = sp_arg_u64("--max-timeouts", optarg, 0, INT64_MAX, &n, why, sizeof why);
            limits.max_timeouts = (int64_t)n;
            break;
        }
        case 'A':
            audit = true;
            break;
        case 'T':
            table = true;
            break;
        }
    }
    /* a verb after the options is a one-shot order; any other word is a mistake */
    bool one_shot = optind < argc && s_is_verb(argv[optind]);
    const sp_args_cli_t cli = {.usage = s_usage, .flags = one_shot ? SP_ARGS_OPERANDS : 0};
    int code = sp_args_done(&cli, rc, why, argc - optind, argv + optind);
    if (code != SP_ARGS_GO) {
        return code;
    }
    if (one_shot) {
        return s_one_shot(&cfg, argc - optind, argv + optind);
    }
    if (cfg.window < cfg.batch) {
        cfg.window = cfg.batch;
    }
    cfg.ledger = audit;
    sp_shards_t shards;
    if (sp_shards_parse(&shards, cfg.instance, why, sizeof why) < 0) {
        sp_error("%s", why);
        return SP_EXIT_USAGE;
    }
    s_base_t bases[SP_SHARDS_MAX] = {{0}};
    for (unsigned i = 0; audit && i < shards.n; i++) {
        if (s_base_take(&cfg, shards.name[i], &bases[i]) != 0) {
            s_bases_free(bases, shards.n);
            return 1;
        }
    }
    if (interval_out != NULL && interval_s <= 0) {
        sp_error("--interval-out needs --interval D");
        s_bases_free(bases, shards.n);
        return SP_EXIT_USAGE;
    }
    sp_signal_install();
    sp_loadgen_t *loadgen = sp_loadgen_new(&cfg);
    if (loadgen == NULL) {
        sp_error("%s", sp_strerror(-errno));
        s_bases_free(bases, shards.n);
        return 1;
    }
    /* progress: lines each --interval, or on a terminal a line rewritten each second */
    s_progress_t progress = {0};
    bool on_tty = interval_s <= 0 && !quiet && isatty(STDERR_FILENO);
    if (interval_s > 0 || on_tty) {
        if (s_progress_open(&progress, interval_out) != 0) {
            sp_loadgen_destroy(&loadgen);
            s_bases_free(bases, shards.n);
            return 1;
        }
        progress.in_place = on_tty;
        sp_loadgen_on_tick(loadgen, interval_s > 0 ? interval_s : 1, s_on_tick, &progress);
    }
    rc = sp_loadgen_run(loadgen, why, sizeof why);
    if (on_tty) {
        fputs("\r\033[K", stderr); /* the report replaces the progress line */
    }
    if (progress.out != NULL && progress.out != stdout && progress.out != stderr &&
        fclose(progress.out) != 0) {
        sp_error("--interval-out: writing %s failed: %s", interval_out, sp_strerror(-errno));
    }
    if (rc < 0) {
        sp_error("%s", why[0] ? why : sp_strerror(rc));
        sp_loadgen_destroy(&loadgen);
        s_bases_free(bases, shards.n);
        return rc == SP_E_USAGE ? SP_EXIT_USAGE : 1;
    }
    const sp_load_stats_t *st = sp_loadgen_stats(loadgen);
    int exit_code = 0;
    if (hgrm != NULL && s_write_hgrm(hgrm, &st->latency) != 0) {
        exit_code = 1;
    }
    if (!json) {
        sp_report_text(stdout, &cfg, st);
        if (!sp_report_thresholds(stdout, &limits, st, false) && exit_code == 0) {
            exit_code = EXIT_THRESHOLD;
        }
        if ((audit || table) && s_check(stdout, &cfg, &shards, loadgen, bases, audit, table) != 0) {
            exit_code = 1;
        }
    } else {
        /* the checks go inside the one JSON object, their lines as strings */
        char *extra = NULL;
        if (audit || table) {
            char *text = NULL;
            size_t len = 0;
            FILE *mem = open_memstream(&text, &len);
            int bad = mem != NULL ? s_check(mem, &cfg, &shards, loadgen, bases, audit, table) : 1;
            if (mem != NULL && fclose(mem) != 0) {
                bad = 1;
            }
            exit_code = bad != 0 ? 1 : exit_code;
            extra = s_checks_json(text != NULL ? text : "", bad == 0);
            free(text);
        }
        if (sp_thresholds_any(&limits)) {
            /* the thresholds are one more member of the object */
            char *both = NULL;
            size_t len = 0;
            FILE *mem = open_memstream(&both, &len);
            bool held = true;
            if (mem != NULL) {
                held = sp_report_thresholds(mem, &limits, st, true);
                fprintf(mem, "%s%s", extra != NULL ? "," : "", extra != NULL ? extra : "");
            }
            if (mem == NULL || fclose(mem) != 0) {
                free(both);
                both = NULL;
            }
            if (!held && exit_code == 0) {
                exit_code = EXIT_THRESHOLD;
            }
            free(extra);
            extra = both;
        }
        sp_report_json(stdout, &cfg, st, extra);
        free(extra);
    }
    sp_loadgen_destroy(&loadgen);
    s_bases_free(bases, shards.n);
    return exit_code;
}
