/*
 * bench — queue versus shared memory, on the user's own machine.
 *
 *   bench --quick            a small matrix in about a minute (make bench)
 *   bench --full             every transport, strategy, size and scale
 *   bench --transports mq,shm --batch 1,64 --procs 2x2 ...   any slice
 *
 * Order of work: the raw baselines the chosen cells need, the Redis peer
 * (peer.h: the same orders as a Lua script, with as many clients as the
 * cells have producers), then every cell (closed-loop throughput,
 * open-loop latency, audit), then the derived rows
 * (efficiency, scaling, sweep knees), the targets, and the outputs: the
 * terminal table, results.csv, results.json and the plots.
 */
#include "bench.h"
#include "peer.h"

#include "sp_args.h"
#include "sp_child.h"
#include "sp_error.h"
#include "sp_link.h"
#include "sp_signal.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_CELLS_MAX 512
#define BENCH_ROWS_MAX  (BENCH_CELLS_MAX * (2 + BENCH_RATES_MAX) + 128)
#define BENCH_LIST_MAX  16

typedef struct {
    unsigned n;
    char item[BENCH_LIST_MAX][24];
} s_list_t;

typedef struct {
    bool quick, full;
    s_list_t transports, syncs, procs, batches, products, picks, sweep;
    double zipf_s;
    bool no_raw, no_sweep, no_scaling, no_shop, no_plots;
    bool peer, no_peer;  /* the Redis peer in a sliced run; not in the presets */
    bool strict;         /* exit BENCH_EXIT_MISSED when a target is missed */
    double min_rate;     /* target: every closed-loop pipeline cell at least this; 0 none */
    const char *out_dir; /* --out, else NULL: a dated folder under build/bench */
    bench_opts_t o;
} s_args_t;

typedef struct {
    bench_cell_t cell;
    char role[12]; /* "pipeline" or "scaling" */
    bool sweep;
} s_plan_t;

static bench_row_t s_rows[BENCH_ROWS_MAX];
static unsigned s_nrows;
static s_plan_t s_plan[BENCH_CELLS_MAX];
static unsigned s_nplan;

static void s_usage(FILE *out)
{
    char variants[160];
    bench_variant_names(", ", true, variants, sizeof variants);
    fprintf(out,
            "usage: bench [--quick | --full] [options]\n"
            "Runs the same order workload through every transport and table strategy,\n"
            "with raw baselines measured in the same run; prints a table and writes\n"
            "results.csv, results.json and plots into --out.\n"
            "presets:\n"
            "  --quick              a small matrix, about a minute (the default)\n"
            "  --full               every transport x strategy, batch sizes, catalogues,\n"
            "                       popularity, scaling and sweeps (tens of minutes)\n"
            "slices (comma-separated lists; the cells are every combination):\n"
            "  --transports L       %s\n"
            "                       (those that start servers per cell, nats and nats-r3,\n"
            "                       run only when named here)\n"
            "  --sync L             cas, row-lock, table-lock\n"
            "  --procs L            producers x workers, e.g. 1x1,2x2,8x4 (direct: producers)\n"
            "  --batch L            orders per message, e.g. 1,32,256\n"
            "  --products L         catalogue sizes, e.g. 10,1000,1000000\n"
            "  --pick L             uniform, zipf\n"
            "  --zipf S             Zipf exponent for zipf (default 0.99)\n"
            "  --sweep L            transports whose load sweep finds the knee\n"
            "measurement:\n"
            "  --repeats N          closed-loop repeats per cell (median, min-max)\n"
            "  --seconds S          length of one repeat\n"
            "  --warmup S           warm-up before the repeats\n"
            "  --rate-seconds S     length of one open-loop point\n"
            "  --idle-rate R        an open-loop point at R orders/s for every 1x1 cell\n"
            "                       (the presets: 1000; 0: none)\n"
            "  --p99-target US      the sweep's latency target in microseconds (default 1000)\n"
            "  --window N           orders in flight per producer (default 4096)\n"
            "  --tcp-port P         first of 5 loopback ports for zmq-tcp (default 47100)\n"
            "  --no-raw --no-sweep --no-scaling --no-shop --no-plots\n"
            "the Redis peer (the same orders as a Lua check-and-decrement script, on a\n"
            "redis-server the bench starts for itself; the presets run it with 1 and 2\n"
            "clients, the shapes of their mq and shm cells):\n"
            "  --peer               in a sliced run too: one row per producer count and\n"
            "                       catalogue of its cells, and the Redis targets\n"
            "  --no-peer            the presets without it\n"
            "targets (ratios measured in the run; the presets judge their own):\n"
            "  --min-rate R         a target more: every closed-loop pipeline cell reaches\n"
            "                       R orders/s (any run, sliced too)\n"
            "  --strict             exit %d when a measured target is missed\n"
            "output:\n"
            "  --out DIR            results directory (default: a folder of its own per run,\n"
            "                       build/bench/YYYY-MM-DDTHH-MM-SS, UTC, with the link\n"
            "                       build/bench/latest naming the last finished run)\n"
            "exit status: 0 done; 1 a cell failed its audit, or an error; 2 a usage\n"
            "mistake; %d a target missed under --strict; 130 interrupted\n",
            variants, BENCH_EXIT_MISSED, BENCH_EXIT_MISSED);
}

static int s_split(const char *flag, const char *arg, s_list_t *l, char *why, size_t cap)
{
    l->n = 0;
    const char *p = arg;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof l->item[0] || l->n == BENCH_LIST_MAX) {
            snprintf(why, cap, "%s: bad list '%s' (at most %d items of < %zu characters)", flag,
                     arg, BENCH_LIST_MAX, sizeof l->item[0]);
            return SP_E_USAGE;
        }
        memcpy(l->item[l->n], p, len);
        l->item[l->n++][len] = '\0';
        p += len + (p[len] == ',');
    }
    if (l->n == 0) {
        snprintf(why, cap, "%s: empty list", flag);
        return SP_E_USAGE;
    }
    return 0;
}

static void s_set(s_list_t *l, const char *csv)
{
    char why[8];
    if (l->n == 0) {
        s_split("", csv, l, why, sizeof why);
    }
}

/* ---- the plan ---- */

/* Field by field: memcmp would compare the struct's padding too (never
 * initialised) and would tell 0.0 from -0.0. */
_Static_assert(sizeof(bench_cell_t) == 48, "s_same_cell compares every field of bench_cell_t");
static bool s_same_cell(const bench_cell_t *a, const bench_cell_t *b)
{
    return a->variant == b->variant && a->sync == b->sync && a->producers == b->producers &&
           a->workers == b->workers && a->batch == b->batch && a->products == b->products &&
           a->zipf_s == b->zipf_s && a->unguarded == b->unguarded;
}

static void s_add(const bench_cell_t *c, const char *role, bool sweep)
{
    for (unsigned i = 0; i < s_nplan; i++) {
        const bench_cell_t *o = &s_plan[i].cell;
        if (s_same_cell(o, c)) {
            if (strcmp(role, "scaling") == 0 && strcmp(s_plan[i].role, "pipeline") == 0) {
                return; /* the pipeline row doubles as a scaling point */
            }
            s_plan[i].sweep |= sweep;
            return;
        }
    }
    if (s_nplan < BENCH_CELLS_MAX) {
        s_plan[s_nplan++] = (s_plan_t){.cell = *c, .sweep = sweep};
        snprintf(s_plan[s_nplan - 1].role, sizeof s_plan[0].role, "%s", role);
    }
}

static bool s_in(const s_list_t *l, const char *name)
{
    for (unsigned i = 0; i < l->n; i++) {
        if (strcmp(l->item[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* "P" or "PxW": producers and workers, 1..64 each (P alone: W = P). */
static int s_procs(const char *s, unsigned *p, unsigned *w)
{
    size_t np = strspn(s, "0123456789");
    if (np == 0 || np > 2) {
        return SP_E_USAGE;
    }
    *p = *w = (unsigned)strtoul(s, NULL, 10);
    if (s[np] == 'x') {
        size_t nw = strspn(s + np + 1, "0123456789");
        if (nw == 0 || nw > 2 || s[np + 1 + nw] != '\0') {
            return SP_E_USAGE;
        }
        *w = (unsigned)strtoul(s + np + 1, NULL, 10);
    } else if (s[np] != '\0') {
        return SP_E_USAGE;
    }
    return *p >= 1 && *p <= 64 && *w >= 1 && *w <= 64 ? 0 : SP_E_USAGE;
}

static int s_plan_matrix(s_args_t *a, char *why, size_t cap)
{
    for (unsigned ti = 0; ti < a->transports.n; ti++) {
        const bench_variant_t *v = bench_variant_find(a->transports.item[ti]);
        if (v == NULL) {
            snprintf(why, cap, "--transports: unknown transport '%s'", a->transports.item[ti]);
            return SP_E_USAGE;
        }
        bool workers = bench_variant_transport(v)->has_workers;
        for (unsigned si = 0; si < a->syncs.n; si++) {
            sp_sync_t sync;
            if (sp_sync_parse(a->syncs.item[si], &sync) < 0) {
                snprintf(why, cap, "--sync: unknown strategy '%s'", a->syncs.item[si]);
                return SP_E_USAGE;
            }
            for (unsigned pi = 0; pi < a->procs.n; pi++) {
                unsigned p = 0, w = 0;
                if (s_procs(a->procs.item[pi], &p, &w) < 0) {
                    snprintf(why, cap, "--procs: '%s' is not P or PxW with 1..64 each",
                             a->procs.item[pi]);
                    return SP_E_USAGE;
                }
                for (unsigned bi = 0; bi < a->batches.n; bi++) {
                    uint32_t b;
                    if (sp_arg_u32("--batch", a->batches.item[bi], 1, SP_WIRE_MAX_RECORDS, &b, why,
                                   cap) < 0) {
                        return SP_E_USAGE;
                    }
                    for (unsigned ni = 0; ni < a->products.n; ni++) {
                        uint32_t n;
                        if (sp_arg_u32("--products", a->products.item[ni], 1, 16777216, &n, why,
                                       cap) < 0) {
                            return SP_E_USAGE;
                        }
                        for (unsigned ki = 0; ki < a->picks.n; ki++) {
                            bool zipf = strcmp(a->picks.item[ki], "zipf") == 0;
                            if (!zipf && strcmp(a->picks.item[ki], "uniform") != 0) {
                                snprintf(why, cap, "--pick: '%s' is not uniform or zipf",
                                         a->picks.item[ki]);
                                return SP_E_USAGE;
                            }
                            bench_cell_t c = {.variant = v,
                                              .sync = sync,
                                              .producers = p,
                                              .workers = workers ? w : 0,
                                              .batch = b,
                                              .products = n,
                                              .zipf_s = zipf ? a->zipf_s : 0};
                            s_add(&c, "pipeline", s_in(&a->sweep, a->transports.item[ti]));
                        }
                    }
                }
            }
        }
    }
    return 0;
}

/* The variant a preset names (a name of the table's own: a miss is a
 * programming error). */
static const bench_variant_t *s_variant(const char *name)
{
    const bench_variant_t *v = bench_variant_find(name);
    assert(v != NULL);
    return v;
}

/* A preset's cas cell on 1,000 products; workers only where the transport
 * runs them. */
static bench_cell_t s_cell(const bench_variant_t *v, unsigned producers, unsigned workers,
                           unsigned batch)
{
    return (bench_cell_t){.variant = v,
                          .sync = SP_SYNC_CAS,
                          .producers = producers,
                          .workers = bench_variant_transport(v)->has_workers ? workers : 0,
                          .batch = batch,
                          .products = 1000};
}

/* The variants whose exactly-once cost the presets measure and the targets
 * judge. */
static const char *const s_costed[] = {"mq", "zmq-ipc", "shm"};

/* The producer's default batch (bin/producer --batch): "no slow transport"
 * compares zmq-ipc with mq there. */
#define S_DEFAULT_BATCH 32

/* The presets' extra cells: the strategies the targets compare, and scaling. */
static void s_plan_presets(const s_args_t *a, unsigned batch)
{
    /* cas against table-lock (and row-lock) with 4 processes on 1,000 products */
    bench_cell_t c = s_cell(s_variant("direct"), 4, 0, batch);
    for (int s = 0; s < SP_SYNC_COUNT; s++) {
        c.sync = (sp_sync_t)s;
        s_add(&c, "pipeline", false);
    }
    /* what exactly-once costs: the main 1x1 cells again without dedup
     * records and journal */
    for (unsigned i = 0; i < sizeof s_costed / sizeof s_costed[0]; i++) {
        bench_cell_t u = s_cell(s_variant(s_costed[i]), 1, 1, batch);
        u.unguarded = true;
        s_add(&u, "pipeline", false);
    }
    /* memory per product at a large catalogue (the main table's memory
     * columns; issue 17's "resident size at 1,000,000 products") */
    bench_cell_t big = s_cell(s_variant("mq"), 1, 1, batch);
    big.products = 1000000;
    s_add(&big, "pipeline", false);
    /* zmq-ipc against mq at the producer's default batch, one customer */
    static const char *const at_default[] = {"mq", "zmq-ipc"};
    for (unsigned i = 0; i < sizeof at_default / sizeof at_default[0]; i++) {
        bench_cell_t d = s_cell(s_variant(at_default[i]), 1, 1, S_DEFAULT_BATCH);
        s_add(&d, "pipeline", false);
    }
    if (a->full) {
        const bench_variant_t *v;
        for (unsigned i = 0; (v = bench_variant_at(i)) != NULL; i++) {
            if (v->opt_in) {
                continue; /* only when named in --transports */
            }
            /* catalogue size and popularity */
            bench_cell_t f = s_cell(v, 1, 1, batch);
            f.products = 10;
            s_add(&f, "pipeline", false);
            f.products = 1000000;
            s_add(&f, "pipeline", false);
            f.products = 1000;
            f.zipf_s = a->zipf_s;
            s_add(&f, "pipeline", false);
            /* every strategy behind every transport */
            f = s_cell(v, 2, 2, batch);
            for (int s = 1; s < SP_SYNC_COUNT; s++) {
                f.sync = (sp_sync_t)s;
                s_add(&f, "pipeline", false);
            }
        }
    }
    if (a->no_scaling) {
        return;
    }
    static const unsigned quick_pw[][2] = {{1, 1}, {2, 2}};
    static const unsigned full_pw[][2] = {{1, 1}, {2, 2}, {4, 2}, {8, 4}};
    const unsigned(*pw)[2] = a->full ? full_pw : quick_pw;
    unsigned npw = a->full ? 4 : 2;
    /* --quick scales these; --full every variant */
    static const char *const quick_t[] = {"mq", "zmq-ipc", "shm", "direct"};
    unsigned nquick = sizeof quick_t / sizeof quick_t[0];
    for (unsigned i = 0; a->full ? bench_variant_at(i) != NULL : i < nquick; i++) {
        const bench_variant_t *v = a->full ? bench_variant_at(i) : s_variant(quick_t[i]);
        if (v->opt_in) {
            continue;
        }
        for (unsigned k = 0; k < npw; k++) {
            c = s_cell(v, pw[k][0], pw[k][1], batch);
            char why[320];
            if (bench_cell_fits(&c, why, sizeof why) < 0) {
                fprintf(stderr,
                        "bench: skipping %s %ux%u (%u producers at once, with room for the "
                        "previous cell's queues): %s\n",
                        v->name, pw[k][0], pw[k][1], pw[k][0], why);
                continue;
            }
            s_add(&c, "scaling", false);
        }
    }
}

/* ---- raw baselines ---- */

static br_cfg_t s_raw_cfg(const bench_cell_t *c, const s_args_t *a)
{
    br_cfg_t r = {.kind = c->variant->raw,
                  .seconds = a->o.run_s,
                  .tag = "bench",
                  .procs = c->producers,
                  .products = c->products,
                  .zipf_s = c->zipf_s};
    if (r.kind != BR_ATOMIC) {
        r.msg_size = bench_msg_size(c->batch);
        r.batch = c->batch;
        r.procs = 0;
        r.products = 0;
        r.zipf_s = 0;
    }
    return r;
}

static bool s_same_raw(const br_cfg_t *x, const bench_row_t *r)
{
    bench_row_t probe;
    memset(&probe, 0, sizeof probe);
    if (x->kind == BR_ATOMIC || x->kind == BR_SHOP) {
        snprintf(probe.label, sizeof probe.label, "raw-%s/%up/%u%s", br_kind_name(x->kind),
                 x->procs, x->products, x->zipf_s > 0 ? "/zipf" : "");
    } else {
        snprintf(probe.label, sizeof probe.label, "raw-%s/%uB/b%u", br_kind_name(x->kind),
                 x->msg_size, x->batch);
    }
    return strcmp(probe.label, r->label) == 0;
}

static const bench_row_t *s_find_raw(const br_cfg_t *x)
{
    for (unsigned i = 0; i < s_nrows; i++) {
        if ((strcmp(s_rows[i].kind, "raw") == 0 || strcmp(s_rows[i].kind, "shop") == 0) &&
            s_same_raw(x, &s_rows[i])) {
            return &s_rows[i];
        }
    }
    return NULL;
}

static void s_progress(const char *what, unsigned i, unsigned n)
{
    bool tty = isatty(STDERR_FILENO);
    fprintf(stderr, "%s[%u/%u] %s ...%s", tty ? "\r\033[K" : "", i, n, what, tty ? "" : "\n");
    (void)fflush(stderr); /* progress line: best effort */
}

static void s_run_raw(const br_cfg_t *cfg, const s_args_t *a, unsigned *step, unsigned steps)
{
    if (s_find_raw(cfg) != NULL || s_nrows >= BENCH_ROWS_MAX || sp_signal_stopping()) {
        return;
    }
    char what[96];
    snprintf(what, sizeof what, "raw %s", br_kind_name(cfg->kind));
    s_progress(what, ++*step, steps);
    bench_raw_row(cfg, a->o.repeats, &s_rows[s_nrows++]);
}

/* ---- the Redis peer ---- */

/* The transports the peer targets compare with Redis. */
static const char *const s_peer_vs[] = {"mq", "shm"};

typedef struct {
    unsigned clients;
    uint32_t products;
} s_peer_shape_t;

/* The peer rows a run measures: one per producer count and catalogue of
 * its cells (the presets: of the mq and shm cas cells on their own
 * catalogue, the shapes the targets compare; a sliced run: of every cell,
 * with --peer only). */
static unsigned s_peer_shapes(const s_args_t *a, bool sliced, s_peer_shape_t *out, unsigned max)
{
    if (sliced ? !a->peer : a->no_peer) {
        return 0;
    }
    unsigned n = 0;
    for (unsigned i = 0; i < s_nplan; i++) {
        const bench_cell_t *c = &s_plan[i].cell;
        if (!sliced) {
            bool vs = false;
            for (unsigned k = 0; k < sizeof s_peer_vs / sizeof s_peer_vs[0]; k++) {
                vs |= strcmp(c->variant->name, s_peer_vs[k]) == 0;
            }
            if (!vs || c->sync != SP_SYNC_CAS || c->unguarded || c->zipf_s > 0 ||
                c->products != 1000) {
                continue;
            }
        }
        if (c->producers > BENCH_PEER_CLIENTS_MAX || c->products > BENCH_PEER_PRODUCTS_MAX) {
            fprintf(stderr,
                    "bench: no Redis peer for %u producers on %u products (at most %d "
                    "clients, %u products)\n",
                    c->producers, c->products, BENCH_PEER_CLIENTS_MAX, BENCH_PEER_PRODUCTS_MAX);
            continue;
        }
        bool seen = false;
        for (unsigned k = 0; k < n; k++) {
            seen |= out[k].clients == c->producers && out[k].products == c->products;
        }
        if (!seen && n < max) {
            out[n++] = (s_peer_shape_t){.clients = c->producers, .products = c->products};
        }
    }
    return n;
}

static void s_run_peer(const s_peer_shape_t *shape, const s_args_t *a, unsigned seed,
                       unsigned *step, unsigned steps)
{
    if (s_nrows >= BENCH_ROWS_MAX || sp_signal_stopping()) {
        return;
    }
    bench_peer_cfg_t pc = {.clients = shape->clients,
                           .pipeline = BENCH_PEER_PIPELINE,
                           .products = shape->products,
                           .stock = BENCH_STOCK,
                           .restock_ratio = BENCH_RESTOCK,
                           .warmup_s = a->o.warmup_s,
                           .seconds = a->o.run_s,
                           .repeats = a->o.repeats,
                           .seed = seed};
    char what[96];
    bench_peer_label(&pc, what, sizeof what);
    s_progress(what, ++*step, steps);
    (void)bench_peer_redis(&pc, &s_rows[s_nrows++]); /* the row says how it went */
}

/* ---- derived rows and targets ---- */

static const bench_row_t *s_find_cell(const bench_cell_t *c)
{
    char label[64];
    bench_cell_label(c, label, sizeof label);
    for (unsigned i = 0; i < s_nrows; i++) {
        if (strcmp(s_rows[i].kind, "pipeline") == 0 && !s_rows[i].rate_mode &&
            strcmp(s_rows[i].label, label) == 0) {
            return &s_rows[i];
        }
    }
    return NULL;
}

static void s_target(bench_target_t *t, const char *name, double goal, const bench_row_t *num,
                     const bench_row_t *den, const char *how)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->goal = goal;
    t->met = -1;
    if (num == NULL || den == NULL || num->audit != 1 || den->audit != 1 || den->ops_med <= 0) {
        snprintf(t->detail, sizeof t->detail, "not measured in this run (%s)", how);
        return;
    }
    t->value = num->ops_med / den->ops_med;
    t->met = t->value >= goal;
    snprintf(t->detail, sizeof t->detail, "%s %.0f / %s %.0f orders/s", num->label, num->ops_med,
             den->label, den->ops_med);
}

/* The fastest audited closed-loop cas cell of a transport with batched
 * messages (any shape): "batched X" in the targets means X at its best
 * measured configuration, and the target says which one that was. */
static const bench_row_t *s_best(const char *variant)
{
    const bench_row_t *best = NULL;
    for (unsigned i = 0; i < s_nrows; i++) {
        const bench_row_t *r = &s_rows[i];
        if ((strcmp(r->kind, "pipeline") == 0 || strcmp(r->kind, "scaling") == 0) &&
            !r->rate_mode && !r->copy && r->audit == 1 && r->batch > 1 && r->zipf_s == 0 &&
            strstr(r->label, "/unguarded") == NULL && strcmp(r->sync, "cas") == 0 &&
            strcmp(r->transport, variant) == 0 && (best == NULL || r->ops_med > best->ops_med)) {
            best = r;
        }
    }
    return best;
}

/* The raw row a pipeline row was compared with (its efficiency). */
static const bench_row_t *s_raw_of(const bench_row_t *r)
{
    for (unsigned i = 0; r != NULL && i < s_nrows; i++) {
        if (strcmp(s_rows[i].kind, "raw") == 0 && strcmp(s_rows[i].label, r->raw_ref) == 0) {
            return &s_rows[i];
        }
    }
    return NULL;
}

/* The idle point of `variant` (its 1x1 cell at --idle-rate) against
 * latency goals: the value is the smaller of goal ÷ measured for p50 and
 * p99 (met at 1 or more); the detail gives both and the legs' p50s. */
static void s_idle_target(bench_target_t *t, const char *variant, double p50_us, double p99_us,
                          double rate)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s idle p50 <= %.0fus, p99 <= %.0fus (1x1, %.0f orders/s)",
             variant, p50_us, p99_us, rate);
    t->goal = 1.0;
    t->met = -1;
    const bench_row_t *r = NULL;
    for (unsigned i = 0; i < s_nrows && r == NULL; i++) {
        if (strcmp(s_rows[i].kind, "idle") == 0 && strcmp(s_rows[i].transport, variant) == 0 &&
            !s_rows[i].copy && s_rows[i].p50 > 0 && s_rows[i].p99 > 0) {
            r = &s_rows[i];
        }
    }
    if (r == NULL) {
        snprintf(t->detail, sizeof t->detail, "not measured in this run (its 1x1 idle point)");
        return;
    }
    double a = p50_us / r->p50, b = p99_us / r->p99;
    t->value = a < b ? a : b;
    t->met = t->value >= 1.0;
    snprintf(t->detail, sizeof t->detail,
             "%s p50 %.0fus p99 %.0fus; p50 of late %.0fus, out %.0fus, back %.0fus", r->label,
             r->p50, r->p99, r->leg_p50[SP_LEG_LATE], r->leg_p50[SP_LEG_OUT],
             r->leg_p50[SP_LEG_BACK]);
}

/* The peer row of `clients` clients on `products` products, if any. */
static const bench_row_t *s_find_peer(unsigned clients, uint32_t products)
{
    for (unsigned i = 0; i < s_nrows; i++) {
        if (strcmp(s_rows[i].kind, "peer") == 0 && s_rows[i].producers == clients &&
            s_rows[i].products == products) {
            return &s_rows[i];
        }
    }
    return NULL;
}

/* `variant` against Redis doing the same orders: the fastest audited
 * closed-loop cas cell of the variant (uniform, exactly-once) that has an
 * audited peer row with as many clients as it has producers, on the same
 * catalogue, against that row. */
static void s_peer_target(bench_target_t *t, const char *variant, double goal)
{
    const bench_row_t *best = NULL, *peer = NULL;
    for (unsigned i = 0; i < s_nrows; i++) {
        const bench_row_t *r = &s_rows[i];
        if ((strcmp(r->kind, "pipeline") != 0 && strcmp(r->kind, "scaling") != 0) || r->rate_mode ||
            r->copy || r->audit != 1 || r->zipf_s != 0 || strstr(r->label, "/unguarded") != NULL ||
            strcmp(r->sync, "cas") != 0 || strcmp(r->transport, variant) != 0) {
            continue;
        }
        const bench_row_t *q = s_find_peer(r->producers, r->products);
        if (q != NULL && q->audit == 1 && (best == NULL || r->ops_med > best->ops_med)) {
            best = r;
            peer = q;
        }
    }
    char name[96];
    snprintf(name, sizeof name, "%s pipeline >= %.0fx Redis Lua check-and-decrement (same clients)",
             variant, goal);
    s_target(t, name, goal, best, peer,
             "a cas cell, and a Redis peer row with its producers as clients");
}

/* The peer targets (issue 17: at least 5x on mq and shm). */
static unsigned s_peer_targets(bench_target_t *t)
{
    unsigned n = 0;
    for (unsigned k = 0; k < sizeof s_peer_vs / sizeof s_peer_vs[0]; k++) {
        s_peer_target(&t[n++], s_peer_vs[k], 5.0);
    }
    return n;
}

/* A raw stream baseline against the simplest program for it (the same
 * message size and batching, in the same run): at least as fast. */
static void s_simple_target(bench_target_t *t, const bench_row_t *raw, br_kind_t simple)
{
    char name[96];
    snprintf(name, sizeof name, "raw %s baseline >= 1.0x the simplest program (%s)",
             simple == BR_MQ_LOOP ? "mq" : "ring", br_kind_name(simple));
    const bench_row_t *twin = NULL;
    const char *shape = raw != NULL ? strchr(raw->label, '/') : NULL; /* "/SIZEB/bBATCH" */
    if (shape != NULL) {
        char want[sizeof raw->label];
        snprintf(want, sizeof want, "raw-%s%s", br_kind_name(simple), shape);
        for (unsigned i = 0; i < s_nrows && twin == NULL; i++) {
            if (strcmp(s_rows[i].kind, "raw") == 0 && strcmp(s_rows[i].label, want) == 0) {
                twin = &s_rows[i];
            }
        }
    }
    s_target(t, name, 1.0, raw, twin, "a batched cell's raw stream and its simple twin");
}

/* A closed-loop cell against an absolute rate. */
static void s_rate_target(bench_target_t *t, const char *name, double rate, const bench_row_t *r)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->goal = 1.0;
    t->met = -1;
    if (r == NULL || r->audit != 1) {
        snprintf(t->detail, sizeof t->detail, "not measured in this run (its cell)");
        return;
    }
    t->value = r->ops_med / rate;
    t->met = t->value >= 1.0;
    snprintf(t->detail, sizeof t->detail, "%s %.0f orders/s", r->label, r->ops_med);
}

/* The knee of `variant`'s sweep (the highest offered rate whose p99 met
 * the latency target, the rate reached) against the closed-loop peak of
 * the same cell: at least half. */
static void s_knee_target(bench_target_t *t, const char *variant, double p99_us)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s knee (p99 <= %.0fus) >= 0.5x its closed-loop peak",
             variant, p99_us);
    t->goal = 0.5;
    t->met = -1;
    const bench_row_t *knee = NULL;
    bool swept = false;
    for (unsigned i = 0; i < s_nrows; i++) {
        const bench_row_t *r = &s_rows[i];
        if (strcmp(r->kind, "sweep") != 0 || strcmp(r->transport, variant) != 0) {
            continue;
        }
        swept = true;
        if (strstr(r->flags, "knee") != NULL && (knee == NULL || r->offered > knee->offered)) {
            knee = r;
        }
    }
    const bench_row_t *peak = NULL;
    for (unsigned i = 0; knee != NULL && i < s_nrows; i++) {
        const bench_row_t *r = &s_rows[i];
        if (strcmp(r->kind, "pipeline") == 0 && !r->rate_mode && !r->copy &&
            strcmp(r->label, knee->label) == 0) {
            peak = r;
        }
    }
    if (!swept) {
        snprintf(t->detail, sizeof t->detail, "not measured in this run (its sweep)");
        return;
    }
    if (knee == NULL || peak == NULL || peak->audit != 1 || peak->ops_med <= 0) {
        t->value = 0; /* swept, but no point met the latency target */
        t->met = 0;
        snprintf(t->detail, sizeof t->detail, "no swept rate kept p99 within %.0fus", p99_us);
        return;
    }
    t->value = knee->offered / peak->ops_med;
    t->met = t->value >= t->goal;
    snprintf(t->detail, sizeof t->detail, "%s: %.0f orders/s offered (p99 %.0fus) / peak %.0f",
             knee->label, knee->offered, knee->p99, peak->ops_med);
}

static unsigned s_targets(const s_args_t *a, unsigned batch, bench_target_t *t)
{
    unsigned n = 0;
    br_cfg_t single = {.kind = BR_ZMQ_IPC, .msg_size = 64, .batch = 1};
    const bench_row_t *zmq = s_best("zmq-ipc");
    s_target(&t[n++], "zmq-ipc pipeline >= 1.0x bare zmq stream of single 64-byte messages", 1.0,
             zmq, s_find_raw(&single), "a batched zmq-ipc cell and raw-zmq-ipc/64B/b1");
    s_target(&t[n++], "zmq-ipc pipeline >= 0.7x bare zmq stream at the same batching", 0.7, zmq,
             s_raw_of(zmq), "a batched zmq-ipc cell");
    const bench_row_t *mq = s_best("mq");
    s_target(&t[n++], "mq pipeline >= 0.7x bare mq stream at the same batching", 0.7, mq,
             s_raw_of(mq), "a batched mq cell");
    const bench_row_t *shm = s_best("shm");
    s_target(&t[n++], "shm pipeline >= 0.7x bare shared-memory ring", 0.7, shm, s_raw_of(shm),
             "a batched shm cell");
    s_simple_target(&t[n++], s_raw_of(mq), BR_MQ_LOOP);
    s_simple_target(&t[n++], s_raw_of(shm), BR_SPSC);
    bench_cell_t c = s_cell(s_variant("direct"), 4, 0, batch);
    br_cfg_t same = s_raw_cfg(&c, a);
    const bench_row_t *cas4 = s_find_cell(&c);
    s_target(&t[n++], "direct cas >= 0.5x bare loop of atomic updates (4 processes)", 0.5, cas4,
             s_find_raw(&same), "direct/cas/4p/1000");
    c.sync = SP_SYNC_TABLE_LOCK;
    s_target(&t[n++], "cas >= 3x table-lock, 4 processes on 1,000 products (direct)", 3.0, cas4,
             s_find_cell(&c), "direct/cas|table-lock/4p/1000");
    /* exactly-once: dedup records and the journal against neither */
    for (unsigned i = 0; i < sizeof s_costed / sizeof s_costed[0]; i++) {
        bench_cell_t g = s_cell(s_variant(s_costed[i]), 1, 1, batch);
        bench_cell_t u = g;
        u.unguarded = true;
        char name[96];
        snprintf(name, sizeof name, "%s exactly-once >= 0.8x its --no-dedup twin (1x1)",
                 s_costed[i]);
        s_target(&t[n++], name, 0.8, s_find_cell(&g), s_find_cell(&u),
                 "the 1x1 cas cell and its /unguarded twin");
    }
    /* no slow transport: zmq-ipc against mq, one customer, default batch */
    bench_cell_t zd = s_cell(s_variant("zmq-ipc"), 1, 1, S_DEFAULT_BATCH);
    bench_cell_t md = s_cell(s_variant("mq"), 1, 1, S_DEFAULT_BATCH);
    s_target(&t[n++], "zmq-ipc >= 0.6x mq at the producer's default batch (1x1, b32)", 0.6,
             s_find_cell(&zd), s_find_cell(&md), "zmq-ipc and mq 1x1 cells at batch 32");
    /* shared memory at its speed, exactly-once on */
    bench_cell_t sb = s_cell(s_variant("shm"), 1, 1, 200);
    s_rate_target(&t[n++], "shm exactly-once 1x1 batch 200 >= 8M orders/s", 8e6, s_find_cell(&sb));
    /* the knee: the highest swept rate with p99 within the target, against
     * the closed-loop peak of the same cell */
    static const char *const swept[] = {"mq", "zmq-ipc", "shm"};
    for (unsigned i = 0; i < sizeof swept / sizeof swept[0]; i++) {
        s_knee_target(&t[n++], swept[i], a->o.p99_target_us);
    }
    /* latency at rest: one customer, one worker, the defaults */
    if (a->o.idle_rate > 0) {
        s_idle_target(&t[n++], "mq", 30, 200, a->o.idle_rate);
        s_idle_target(&t[n++], "shm", 30, 200, a->o.idle_rate);
        s_idle_target(&t[n++], "zmq-ipc", 80, 400, a->o.idle_rate);
    }
    /* against a well-known server doing the same orders */
    n += s_peer_targets(&t[n]);
    return n;
}

/* --min-rate: the slowest audited closed-loop pipeline cell against R. */
static void s_min_rate_target(double rate, bench_target_t *t)
{
    const bench_row_t *slow = NULL;
    for (unsigned i = 0; i < s_nrows; i++) {
        const bench_row_t *r = &s_rows[i];
        if (strcmp(r->kind, "pipeline") == 0 && !r->rate_mode && !r->copy && r->audit == 1 &&
            (slow == NULL || r->ops_med < slow->ops_med)) {
            slow = r;
        }
    }
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "every pipeline cell >= %.0f orders/s (--min-rate)", rate);
    t->goal = 1.0;
    t->met = -1;
    if (slow == NULL) {
        snprintf(t->detail, sizeof t->detail, "not measured: no audited pipeline cell");
        return;
    }
    t->value = slow->ops_med / rate;
    t->met = t->value >= 1.0;
    snprintf(t->detail, sizeof t->detail, "slowest: %s %.0f orders/s", slow->label, slow->ops_med);
}

/* Efficiency, knees, series names. */
static void s_derive(const s_args_t *a)
{
    for (unsigned i = 0; i < s_nrows; i++) {
        bench_row_t *r = &s_rows[i];
        if (strcmp(r->kind, "raw") == 0 || strcmp(r->kind, "shop") == 0) {
            continue;
        }
        bench_cell_t c = {.variant = bench_variant_find(r->transport),
                          .producers = r->producers,
                          .batch = r->batch,
                          .products = r->products,
                          .zipf_s = r->zipf_s};
        if (c.variant == NULL) {
            continue;
        }
        br_cfg_t raw = s_raw_cfg(&c, a);
        const bench_row_t *base = s_find_raw(&raw);
        if (base != NULL && base->ops_med > 0 && base->audit == 1) {
            r->raw_ops = base->ops_med;
            r->efficiency = r->ops_med / base->ops_med;
            snprintf(r->raw_ref, sizeof r->raw_ref, "%.*s", (int)sizeof r->raw_ref - 1,
                     base->label);
        }
    }
    /* knee of every sweep series: the highest offered rate whose p99 meets
     * the target with the rate reached */
    for (unsigned i = 0; i < s_nrows; i++) {
        bench_row_t *r = &s_rows[i];
        if (strcmp(r->kind, "sweep") != 0) {
            continue;
        }
        bench_row_t *knee = NULL;
        for (unsigned j = 0; j < s_nrows; j++) {
            bench_row_t *q = &s_rows[j];
            if (strcmp(q->kind, "sweep") == 0 && strcmp(q->label, r->label) == 0 && q->p99 >= 0 &&
                q->p99 <= a->o.p99_target_us && strstr(q->flags, "rate-not-reached") == NULL &&
                (knee == NULL || q->offered > knee->offered)) {
                knee = q;
            }
        }
        if (knee != NULL && strstr(knee->flags, "knee") == NULL) {
            size_t len = strlen(knee->flags);
            snprintf(knee->flags + len, sizeof knee->flags - len, "%sknee", len ? " " : "");
        }
    }
}

/* ---- main ---- */

/* Parses the command line into *a.  Exits after --help (0) or a mistake in
 * the options themselves (SP_EXIT_USAGE, said by sp_args_done); returns
 * SP_E_USAGE with *why for options that exclude each other. */
static int s_parse(int argc, char **argv, s_args_t *a, char *why, size_t cap)
{
    static const struct option opts[] = {{"quick", no_argument, 0, 'q'},
                                         {"full", no_argument, 0, 'F'},
                                         {"transports", required_argument, 0, 't'},
                                         {"sync", required_argument, 0, 's'},
                                         {"procs", required_argument, 0, 'p'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"products", required_argument, 0, 'n'},
                                         {"pick", required_argument, 0, 'k'},
                                         {"zipf", required_argument, 0, 'z'},
                                         {"sweep", required_argument, 0, 'S'},
                                         {"repeats", required_argument, 0, 'r'},
                                         {"seconds", required_argument, 0, 'd'},
                                         {"warmup", required_argument, 0, 'w'},
                                         {"rate-seconds", required_argument, 0, 'R'},
                                         {"p99-target", required_argument, 0, 'P'},
                                         {"idle-rate", required_argument, 0, 'I'},
                                         {"window", required_argument, 0, 'W'},
                                         {"tcp-port", required_argument, 0, 'T'},
                                         {"out", required_argument, 0, 'o'},
                                         {"no-raw", no_argument, 0, '1'},
                                         {"no-sweep", no_argument, 0, '2'},
                                         {"no-scaling", no_argument, 0, '3'},
                                         {"no-shop", no_argument, 0, '4'},
                                         {"no-plots", no_argument, 0, '5'},
                                         {"strict", no_argument, 0, '6'},
                                         {"min-rate", required_argument, 0, '7'},
                                         {"peer", no_argument, 0, '8'},
                                         {"no-peer", no_argument, 0, '9'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    double repeats = -1, seconds = -1, warmup = -1, rate_s = -1;
    int c, rc = 0;
    uint32_t u;
    while ((c = sp_args_next(argc, argv, "h", opts, &rc)) != -1) {
        switch (c) {
        case 'q':
            a->quick = true;
            break;
        case 'F':
            a->full = true;
            break;
        case 't':
            rc = s_split("--transports", optarg, &a->transports, why, cap);
            break;
        case 's':
            rc = s_split("--sync", optarg, &a->syncs, why, cap);
            break;
        case 'p':
            rc = s_split("--procs", optarg, &a->procs, why, cap);
            break;
        case 'b':
            rc = s_split("--batch", optarg, &a->batches, why, cap);
            break;
        case 'n':
            rc = s_split("--products", optarg, &a->products, why, cap);
            break;
        case 'k':
            rc = s_split("--pick", optarg, &a->picks, why, cap);
            break;
        case 'S':
            rc = s_split("--sweep", optarg, &a->sweep, why, cap);
            break;
        case 'z':
            rc = sp_arg_double("--zipf", optarg, 0.01, 10, &a->zipf_s, why, cap);
            break;
        case 'r':
            rc = sp_arg_u32("--repeats", optarg, 1, BENCH_REPEATS_MAX, &u, why, cap);
            repeats = u;
            break;
        case 'd':
            rc = sp_arg_duration("--seconds", optarg, &seconds, why, cap);
            break;
        case 'w':
            rc = sp_arg_duration("--warmup", optarg, &warmup, why, cap);
            break;
        case 'R':
            rc = sp_arg_duration("--rate-seconds", optarg, &rate_s, why, cap);
            break;
        case 'P':
            rc = sp_arg_double("--p99-target", optarg, 1, 1e8, &a->o.p99_target_us, why, cap);
            break;
        case 'I':
            rc = sp_arg_double("--idle-rate", optarg, 0, 1e7, &a->o.idle_rate, why, cap);
            break;
        case 'W':
            rc = sp_arg_u32("--window", optarg, 1, 1 << 20, &a->o.window, why, cap);
            break;
        case 'T':
            rc = sp_arg_u32("--tcp-port", optarg, 1024, 65000, &a->o.tcp_port, why, cap);
            break;
        case 'o':
            a->out_dir = optarg;
            break;
        case '1':
            a->no_raw = true;
            break;
        case '2':
            a->no_sweep = true;
            break;
        case '3':
            a->no_scaling = true;
            break;
        case '4':
            a->no_shop = true;
            break;
        case '5':
            a->no_plots = true;
            break;
        case '6':
            a->strict = true;
            break;
        case '7':
            rc = sp_arg_double("--min-rate", optarg, 1, 1e15, &a->min_rate, why, cap);
            break;
        case '8':
            a->peer = true;
            break;
        case '9':
            a->no_peer = true;
            break;
        }
    }
    if (rc == SP_ARGS_BAD_OPTION) {
        /* one line, not the whole usage, after getopt_long's own */
        snprintf(why, cap, "unknown option (see --help)");
        rc = SP_E_USAGE;
    }
    /* the bench does not log: its lines are "bench: ...", a value's without a hint */
    static const sp_args_cli_t cli = {.usage = s_usage, .prog = "bench", .flags = SP_ARGS_NO_HINT};
    int code = sp_args_done(&cli, rc, why, argc - optind, argv + optind);
    if (code != SP_ARGS_GO) {
        exit(code);
    }
    if (a->quick && a->full) {
        snprintf(why, cap, "--quick and --full exclude each other");
        rc = SP_E_USAGE;
    }
    if (a->peer && a->no_peer) {
        snprintf(why, cap, "--peer and --no-peer exclude each other");
        rc = SP_E_USAGE;
    }
    if (rc < 0) {
        return rc;
    }
    a->quick = !a->full;
    a->o.repeats = repeats > 0 ? (unsigned)repeats : a->full ? 5 : 3;
    a->o.run_s = seconds > 0 ? seconds : a->full ? 2.0 : 0.4;
    a->o.warmup_s = warmup >= 0 ? warmup : a->full ? 1.0 : 0.2;
    a->o.rate_s = rate_s > 0 ? rate_s : a->full ? 2.0 : 0.5;
    return 0;
}

static void s_defaults(s_args_t *a, unsigned *batch)
{
    char every[160];
    bench_variant_names(",", false, every, sizeof every);
    s_set(&a->transports, every);
    s_set(&a->syncs, "cas");
    /* one producer and one worker: on a small machine every extra process
     * (and ZeroMQ I/O thread) competes for the same cores; the scaling rows
     * show the larger shapes.  200 orders fill an mq message of 8 KiB. */
    s_set(&a->procs, a->full ? "1x1,2x2" : "1x1");
    s_set(&a->batches, a->full ? "1,32,200" : "200");
    s_set(&a->products, "1000");
    s_set(&a->picks, "uniform");
    if (a->sweep.n == 0 && !a->no_sweep) {
        s_set(&a->sweep, a->full ? every : "mq,zmq-ipc,shm");
    }
    char why[8];
    uint32_t b = 200;
    sp_arg_u32("", a->batches.item[a->batches.n - 1], 1, SP_WIRE_MAX_RECORDS, &b, why, sizeof why);
    *batch = b;
}

static bool s_sliced(const s_args_t *a)
{
    return a->transports.n || a->syncs.n || a->procs.n || a->batches.n || a->products.n ||
           a->picks.n;
}

/* Runs bench/plot.sh CSV OUT_DIR/plots without a shell, so a path may hold
 * any character (a quote in --out would have broken out of a command line).
 * Returns the script's exit status, or -1 when it could not be run. */
static int s_plot(const char *src_dir, const char *csv, const char *out_dir)
{
    char script[PATH_MAX + 32], plots[PATH_MAX + 8], csv_arg[PATH_MAX];
    snprintf(script, sizeof script, "%s/bench/plot.sh", src_dir);
    snprintf(plots, sizeof plots, "%s/plots", out_dir);
    snprintf(csv_arg, sizeof csv_arg, "%s", csv);
    char bash[] = "bash";
    char *args[] = {bash, script, csv_arg, plots, NULL};
    sp_child_t plot;
    if (sp_child_spawn(&plot, args, SP_CHILD_SEARCH, NULL) < 0 || sp_child_reap(&plot) < 0) {
        return -1;
    }
    return WIFEXITED(plot.status) ? WEXITSTATUS(plot.status) : -1;
}

/* mkdir -p for a relative or absolute path. */
static int s_mkdirs(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *q = p + 1; *q; q++) {
        if (*q == '/') {
            *q = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                return -errno;
            }
            *q = '/';
        }
    }
    return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* A folder of this run's own under `root`, named by the UTC time it began
 * ("2026-12-04T21-50-00", then "-2", "-3" ... when that is taken).  Fills
 * name (the folder's name) and dir (root/name).  Returns 0 or -errno. */
static int s_run_dir(const char *root, char *name, size_t ncap, char *dir, size_t dcap)
{
    int rc = s_mkdirs(root);
    if (rc < 0) {
        return rc;
    }
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H-%M-%S", &tm) == 0) {
        return -EINVAL;
    }
    for (unsigned n = 1; n < 100; n++) {
        if (n == 1) {
            snprintf(name, ncap, "%s", stamp);
        } else {
            snprintf(name, ncap, "%s-%u", stamp, n);
        }
        snprintf(dir, dcap, "%s/%s", root, name);
        if (mkdir(dir, 0755) == 0) {
            return 0;
        }
        if (errno != EEXIST) {
            return -errno;
        }
    }
    return -EEXIST;
}

/* Points root/latest at `name` (relative, so the tree can move): a new link
 * renamed over the old one, so a reader never finds it missing. */
static int s_link_latest(const char *root, const char *name)
{
    char tmp[PATH_MAX], link[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/.latest-%d", root, (int)getpid());
    snprintf(link, sizeof link, "%s/latest", root);
    (void)unlink(tmp);
    if (symlink(name, tmp) < 0) {
        return -errno;
    }
    if (rename(tmp, link) < 0) {
        int e = errno;
        (void)unlink(tmp);
        return -e;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* Line by line: piped, the table's lines and the progress lines on
     * stderr (and the plot script's) then arrive in the order written. */
    (void)setvbuf(stdout, NULL, _IOLBF, 0); /* fails only after output: none yet */
    static s_args_t a = {
        .zipf_s = 0.99,
        .o = {.p99_target_us = 1000, .idle_rate = -1, .window = 4096, .tcp_port = 47100}};
    char why[256] = "";
    if (s_parse(argc, argv, &a, why, sizeof why) < 0) {
        fprintf(stderr, "bench: %s\n", why);
        return SP_EXIT_USAGE;
    }
    char command[1024] = "bench";
    for (int i = 1; i < argc; i++) {
        size_t len = strlen(command);
        snprintf(command + len, sizeof command - len, " %s", argv[i]);
    }
    bool sliced = s_sliced(&a);
    if (a.o.idle_rate < 0) {
        a.o.idle_rate = sliced ? 0 : BENCH_IDLE_RATE;
    }
    unsigned batch;
    s_defaults(&a, &batch);
    if (s_plan_matrix(&a, why, sizeof why) < 0) {
        fprintf(stderr, "bench: %s\n", why);
        return SP_EXIT_USAGE;
    }
    if (!sliced) {
        s_plan_presets(&a, batch);
    }

    char self[PATH_MAX], bin_dir[PATH_MAX], src_dir[PATH_MAX + 16];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0) {
        fprintf(stderr, "bench: cannot find my own binary: %s\n", strerror(errno));
        return 1;
    }
    self[len] = '\0';
    snprintf(bin_dir, sizeof bin_dir, "%s", dirname(self));
    /* bench/plot.sh beside bin/ (a plain build) or three levels up (a
     * sanitizer build's build/VARIANT/bin) */
    snprintf(src_dir, sizeof src_dir, "%s/..", bin_dir);
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/bench/plot.sh", src_dir);
    if (access(probe, R_OK) < 0) {
        snprintf(src_dir, sizeof src_dir, "%s/../../..", bin_dir);
    }
    a.o.bin_dir = bin_dir;
    char work[PATH_MAX], run_dir[PATH_MAX], run_name[64];
    static const char run_root[] = "build/bench";
    bool dated = a.out_dir == NULL;
    if (dated) {
        int drc = s_run_dir(run_root, run_name, sizeof run_name, run_dir, sizeof run_dir);
        if (drc < 0) {
            fprintf(stderr, "bench: cannot create a run folder under %s: %s\n", run_root,
                    strerror(-drc));
            return 1;
        }
        a.out_dir = run_dir;
    } else if (mkdir(a.out_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "bench: cannot create %s: %s\n", a.out_dir, strerror(errno));
        return 1;
    }
    snprintf(work, sizeof work, "%s/work-%d", a.out_dir, (int)getpid());
    if (mkdir(work, 0700) < 0) {
        fprintf(stderr, "bench: cannot create %s: %s\n", work, strerror(errno));
        return 1;
    }
    a.o.work_dir = work;
    sp_signal_install();

    bench_machine_t m;
    bench_machine(&m);
    bench_print_header(stdout, &m, command);

    /* raw baselines first: every cell's, the targets', the shop's */
    br_cfg_t raws[64];
    unsigned nraw = 0;
    if (!a.no_raw) {
        for (unsigned i = 0; i < s_nplan && nraw < 56; i++) {
            raws[nraw++] = s_raw_cfg(&s_plan[i].cell, &a);
        }
        if (!sliced) {
            raws[nraw++] = (br_cfg_t){.kind = BR_ZMQ_IPC, .msg_size = 64, .batch = 1};
            raws[nraw++] = (br_cfg_t){.kind = BR_MQ, .msg_size = 64, .batch = 1};
            raws[nraw++] = (br_cfg_t){.kind = BR_RING, .msg_size = 64, .batch = 1};
        }
        /* beside each mq and ring stream, the simplest program for it */
        for (unsigned i = 0, n = nraw; i < n && nraw < 60; i++) {
            if (raws[i].kind == BR_MQ || raws[i].kind == BR_RING) {
                raws[nraw] = raws[i];
                raws[nraw++].kind = raws[i].kind == BR_MQ ? BR_MQ_LOOP : BR_SPSC;
            }
        }
        if (!sliced && !a.no_shop) {
            static const uint32_t quick_n[] = {10, 1000, 100000};
            for (unsigned i = 0; i < 3; i++) {
                raws[nraw++] = (br_cfg_t){.kind = BR_SHOP, .procs = 4, .products = quick_n[i]};
            }
            if (a.full) {
                raws[nraw++] = (br_cfg_t){.kind = BR_SHOP, .procs = 1, .products = 1000};
                raws[nraw++] = (br_cfg_t){.kind = BR_SHOP, .procs = 2, .products = 1000};
            }
        }
        for (unsigned i = 0; i < nraw; i++) {
            raws[i].seconds = a.o.run_s;
            raws[i].tag = "bench";
        }
    }
    s_peer_shape_t peers[BENCH_LIST_MAX];
    unsigned npeer = s_peer_shapes(&a, sliced, peers, BENCH_LIST_MAX);
    unsigned steps = nraw + npeer + s_nplan, step = 0;
    for (unsigned i = 0; i < nraw; i++) {
        s_run_raw(&raws[i], &a, &step, steps);
    }
    step = nraw; /* duplicates were skipped */
    for (unsigned i = 0; i < npeer; i++) {
        s_run_peer(&peers[i], &a, 1 + i, &step, steps);
    }
    static const double quick_sweep[] = {0.25, 0.5, 0.75, 0.9};
    static const double full_sweep[] = {0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.15};
    static const double half[] = {0.5};
    for (unsigned i = 0; i < s_nplan && !sp_signal_stopping(); i++) {
        const s_plan_t *p = &s_plan[i];
        char label[64];
        bench_cell_label(&p->cell, label, sizeof label);
        s_progress(label, ++step, steps);
        const double *fr = half;
        unsigned nfr = strcmp(p->role, "scaling") == 0 ? 0 : 1;
        if (p->sweep && !a.no_sweep) {
            fr = a.full ? full_sweep : quick_sweep;
            nfr = a.full ? 8 : 4;
        }
        /* the idle point: one customer, one worker, a rate of its own */
        double frs[BENCH_RATES_MAX];
        bool idle = a.o.idle_rate > 0 && strcmp(p->role, "pipeline") == 0 &&
                    p->cell.producers == 1 && p->cell.workers == 1 && !p->cell.unguarded &&
                    nfr < BENCH_RATES_MAX;
        if (idle) {
            memcpy(frs, fr, nfr * sizeof fr[0]);
            frs[nfr++] = -a.o.idle_rate;
            fr = frs;
        }
        if (s_nrows + 1 + nfr + 1 > BENCH_ROWS_MAX) {
            break;
        }
        bench_row_t *rows = &s_rows[s_nrows];
        unsigned got = bench_cell_run(&p->cell, &a.o, fr, nfr, rows);
        snprintf(rows[0].kind, sizeof rows[0].kind, "%s", p->role);
        for (unsigned k = 1; k < got; k++) {
            rows[k].p99_target_us = a.o.p99_target_us;
            if (idle && k == got - 1 && got == 1 + nfr) {
                snprintf(rows[k].kind, sizeof rows[k].kind, "idle");
            } else if (p->sweep && !a.no_sweep) {
                snprintf(rows[k].kind, sizeof rows[k].kind, "sweep");
            }
        }
        s_nrows += got;
        /* the latency row at half load, for sweep cells taken from the sweep */
        if (p->sweep && !a.no_sweep && got > 2) {
            s_rows[s_nrows] = rows[2];
            snprintf(s_rows[s_nrows].kind, sizeof s_rows[0].kind, "pipeline");
            s_rows[s_nrows++].copy = true;
        }
        /* a pipeline cell is a scaling point of its transport too */
        if (strcmp(p->role, "pipeline") == 0 && p->cell.zipf_s == 0 && p->cell.products == 1000 &&
            p->cell.batch == batch && p->cell.sync == SP_SYNC_CAS && !a.no_scaling) {
            s_rows[s_nrows] = rows[0];
            snprintf(s_rows[s_nrows].kind, sizeof s_rows[0].kind, "scaling");
            s_rows[s_nrows++].copy = true;
        }
    }
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr, "\r\033[K");
    }
    s_derive(&a);
    bench_target_t targets[BENCH_TARGETS_MAX];
    unsigned nt = sliced ? 0 : s_targets(&a, batch, targets);
    if (sliced && a.peer) {
        nt += s_peer_targets(&targets[nt]);
    }
    if (a.min_rate > 0) {
        s_min_rate_target(a.min_rate, &targets[nt++]);
    }

    printf("\n");
    bench_print_row_head(stdout);
    unsigned failed = 0;
    for (unsigned i = 0; i < s_nrows; i++) {
        if (s_rows[i].copy) {
            continue; /* the same measurement under another kind, for the plots */
        }
        bench_print_row(stdout, &s_rows[i]);
        failed += s_rows[i].audit == 0;
    }
    bench_print_legs(stdout, s_rows, s_nrows);
    bench_print_memory(stdout, s_rows, s_nrows);
    if (nt > 0) {
        printf("\ntargets (ratios measured in this run):\n");
        for (unsigned i = 0; i < nt; i++) {
            const bench_target_t *t = &targets[i];
            if (t->met < 0) {
                printf("  %-72s  not measured: %s\n", t->name, t->detail);
            } else {
                printf("  %-72s  %5.2fx  %s  (%s)\n", t->name, t->value,
                       t->met ? "met   " : "MISSED", t->detail);
            }
        }
    }
    char csv[PATH_MAX], json[PATH_MAX];
    snprintf(csv, sizeof csv, "%s/results.csv", a.out_dir);
    snprintf(json, sizeof json, "%s/results.json", a.out_dir);
    int wrc = bench_write_csv(csv, s_rows, s_nrows);
    double load_end[3];
    if (getloadavg(load_end, 3) != 3) {
        load_end[0] = load_end[1] = load_end[2] = -1;
    }
    if (wrc == 0) {
        wrc = bench_write_json(json, &m, load_end, command, &a.o, s_rows, s_nrows, targets, nt);
    }
    rmdir(work); /* empty unless a cell failed and left its broker log */
    if (wrc < 0) {
        fprintf(stderr, "bench: writing results into %s failed: %s\n", a.out_dir, sp_strerror(wrc));
        return 1;
    }
    printf("\n%u rows, %u failed audits; wrote %s and %s\n", s_nrows, failed, csv, json);
    if (dated) {
        int lrc = s_link_latest(run_root, run_name);
        if (lrc < 0) {
            fprintf(stderr, "bench: cannot point %s/latest at %s: %s\n", run_root, run_name,
                    strerror(-lrc));
        } else {
            printf("%s/latest -> %s\n", run_root, run_name);
        }
    }
    if (!a.no_plots) {
        (void)fflush(stdout); /* the script writes to the same terminal or pipe */
        int prc = s_plot(src_dir, csv, a.out_dir);
        if (prc == 0) {
            printf("plots in %s/plots\n", a.out_dir);
        } else {
            fprintf(stderr, "bench: plots not made (%s/bench/plot.sh exited with %d)\n", src_dir,
                    prc);
        }
    }
    bool stopped = sp_signal_stopping();
    if (stopped) {
        fprintf(stderr, "bench: interrupted; the results above are partial\n");
    }
    int code = bench_exit_status(failed, targets, nt, a.strict, stopped);
    if (code == BENCH_EXIT_MISSED) {
        fprintf(stderr, "bench: a target was missed (--strict): exit %d\n", code);
    }
    return code;
}
