/*
 * cell — one pipeline cell of the benchmark, end to end.
 *
 * In a forked child of the bench: write a catalogue, start a real broker
 * (bin/broker with its worker processes; or, for a variant that runs them
 * as threads (zmq-inproc), the broker and its workers as threads of this
 * process), warm up, measure closed-loop
 * throughput `repeats` times, measure open-loop latency at the requested
 * fractions of that throughput, audit conservation over everything the cell
 * did, stop the broker.  CPU time per role comes from the scheduler's own
 * accounting (/proc/.../schedstat): the broker's and workers' processes (or
 * threads) sampled around each run, the producers' reported by themselves.
 */
#include "bench.h"

#include "natsrv.h"
#include "sp_audit.h"
#include "sp_broker.h"
#include "sp_child.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_loadgen.h"
#include "sp_nats.h"
#include "sp_signal.h"
#include "sp_time.h"
#include "sp_wire.h"
#include "sp_worker.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_READY_MS     15000
#define BENCH_STOP_WAIT_MS 15000
#define BENCH_RATE_OK      0.95 /* achieved / offered below this: rate-not-reached */
#define BENCH_STARVED      2.0  /* run-queue wait / CPU above this: starved ... */
#define BENCH_STARVED_WALL 0.25 /* ... if that wait is above this part of the run */

unsigned bench_msg_size(unsigned batch)
{
    return (unsigned)sp_wire_msg_size(SP_MSG_ORDERS, batch);
}

void bench_cell_label(const bench_cell_t *c, char *buf, size_t cap)
{
    char pick[24] = "";
    if (c->zipf_s > 0) {
        snprintf(pick, sizeof pick, "/zipf%.2g", c->zipf_s);
    }
    if (!bench_variant_transport(c->variant)->has_workers) {
        snprintf(buf, cap, "%s/%s/%up/%u%s", c->variant->name, sp_sync_name(c->sync), c->producers,
                 c->products, pick);
    } else {
        snprintf(buf, cap, "%s/%s/%ux%u/b%u/%u%s%s", c->variant->name, sp_sync_name(c->sync),
                 c->producers, c->workers, c->batch, c->products, pick,
                 c->unguarded ? "/unguarded" : "");
    }
}

int bench_cell_fits(const bench_cell_t *c, char *why, size_t cap)
{
    const sp_transport_t *t = bench_variant_transport(c->variant);
    if (t->preflight == NULL) {
        return 0;
    }
    sp_names_t names;
    int rc = sp_names_init(&names, "spbench-plan", NULL);
    if (rc < 0) {
        return rc;
    }
    /* the broker's defaults for depth and message size, as the cell runs it */
    sp_tparams_t p = {.names = &names, .producers = c->producers, .batch = c->batch};
    sp_limits_need_t need;
    memset(&need, 0, sizeof need);
    rc = t->preflight(&p, &need, why, cap);
    if (rc < 0) {
        return rc;
    }
    /* Twice the queue bytes: the kernel charges every queue of this user to
     * one RLIMIT_MSGQUEUE, and a cell's producers create their reply queues
     * while the previous cell's may still be held open by its workers (for
     * up to a quarter second), so only half the room is ours for sure. */
    need.mq_bytes *= 2;
    sp_limits_t have;
    sp_limits_read(&have);
    return sp_limits_check(&need, &have, why, cap);
}

void bench_row_from_cell(bench_row_t *r, const bench_cell_t *c)
{
    memset(r, 0, sizeof *r);
    snprintf(r->kind, sizeof r->kind, "pipeline");
    bench_cell_label(c, r->label, sizeof r->label);
    snprintf(r->series, sizeof r->series, "%s", c->variant->name);
    snprintf(r->transport, sizeof r->transport, "%s", c->variant->name);
    snprintf(r->sync, sizeof r->sync, "%s", sp_sync_name(c->sync));
    r->producers = c->producers;
    r->workers = bench_variant_transport(c->variant)->has_workers ? c->workers : 0;
    r->procs = r->producers + r->workers;
    r->batch = c->batch;
    r->products = c->products;
    r->zipf_s = c->zipf_s;
    bench_row_no_latency(r);
    r->cpu_prod = r->cpu_broker = r->cpu_work = r->cpu_total = -1;
    r->rss_broker_mib = r->rss_workers_mib = r->table_mib = r->bytes_per_product = -1;
    r->anon_broker_mib = r->anon_workers_mib = -1;
    r->audit = -1;
}

double bench_median(double *v, unsigned n)
{
    for (unsigned i = 1; i < n; i++) {
        for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    if (n == 0) {
        return 0;
    }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_min(const double *v, unsigned n)
{
    double m = n ? v[0] : 0;
    for (unsigned i = 1; i < n; i++) {
        m = v[i] < m ? v[i] : m;
    }
    return m;
}

double bench_max(const double *v, unsigned n)
{
    double m = n ? v[0] : 0;
    for (unsigned i = 1; i < n; i++) {
        m = v[i] > m ? v[i] : m;
    }
    return m;
}

static void s_flag(bench_row_t *r, const char *flag)
{
    size_t len = strlen(r->flags);
    snprintf(r->flags + len, sizeof r->flags - len, "%s%s", len ? " " : "", flag);
}

/* ---- processes and threads under measurement ---- */

typedef struct {
    const bench_cell_t *cell;
    const bench_opts_t *opts;
    const double *fractions;
    unsigned nfrac;
    char instance[SP_INSTANCE_NAME_MAX + 1];
    const bench_natsrv_t *nats; /* BENCH_AT_NATS: the cell's servers */
} s_job_t;

typedef struct {
    bench_row_t rows[1 + BENCH_RATES_MAX];
} s_out_t;

typedef struct {
    sp_names_t names;
    sp_table_t *table;
    sp_child_t broker; /* bin/broker, when not a thread (pid 0: none) */
    pthread_t broker_thread;
    bool broker_threaded;
    atomic_bool stop;
    sp_broker_cfg_t bcfg;
    sp_broker_stats_t bstats;
    int brc;
    char bwhy[256];
    char catalogue[SP_PATH_MAX];
    char tcp[64];
} s_cell_t;

/* CPU and run-queue wait of the broker and the workers; the workers' hop
 * histograms (sp_whop_t), summed over their slots. */
typedef struct {
    uint64_t broker_cpu, broker_wait, work_cpu, work_wait;
    uint64_t hop[SP_WHOP_COUNT][SP_LAT_BUCKETS];
} s_sample_t;

static void s_sample_hops(s_cell_t *c, s_sample_t *s)
{
    if (c->table == NULL) {
        return;
    }
    sp_table_hdr_t *h = sp_table_hdr(c->table);
    for (unsigned i = 0; i < h->workers && i < SP_WORKERS_MAX; i++) {
        for (int k = 0; k < SP_WHOP_COUNT; k++) {
            for (unsigned b = 0; b < SP_LAT_BUCKETS; b++) {
                s->hop[k][b] += atomic_load_explicit(&h->worker[i].hop[k][b], memory_order_relaxed);
            }
        }
    }
}

/* In-process cell: sums this process's threads by name. */
static void s_sample_threads(s_sample_t *s)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[96], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%.20s/comm", e->d_name);
        FILE *f = fopen(path, "re");
        if (f == NULL) {
            continue;
        }
        bool got = fgets(comm, sizeof comm, f) != NULL;
        (void)fclose(f); /* read only: nothing to lose */
        snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", e->d_name);
        f = fopen(path, "re");
        unsigned long long cpu = 0, wait = 0;
        /* NOLINTNEXTLINE(cert-err34-c): the kernel writes schedstat, plain decimals */
        if (f == NULL || !got || fscanf(f, "%llu %llu", &cpu, &wait) != 2) {
            if (f) {
                (void)fclose(f);
            }
            continue;
        }
        (void)fclose(f);
        if (strncmp(comm, "sp-worker", 9) == 0) {
            s->work_cpu += cpu;
            s->work_wait += wait;
        } else if (strncmp(comm, "sp-broker", 9) == 0 || strncmp(comm, "ZMQbg", 5) == 0) {
            /* ZeroMQ's I/O threads carry no inproc:// traffic; count them
             * with the broker, whose sockets they serve */
            s->broker_cpu += cpu;
            s->broker_wait += wait;
        }
    }
    closedir(d);
}

static void s_sample(s_cell_t *c, s_sample_t *s)
{
    memset(s, 0, sizeof *s);
    s_sample_hops(c, s);
    if (c->broker_threaded) {
        s_sample_threads(s);
        return;
    }
    uint64_t cpu, wait;
    if (c->broker.pid > 0 && sp_sched_process(c->broker.pid, &cpu, &wait) == 0) {
        s->broker_cpu = cpu;
        s->broker_wait = wait;
    }
    sp_table_hdr_t *h = sp_table_hdr(c->table);
    for (unsigned i = 0; i < h->workers && i < SP_WORKERS_MAX; i++) {
        int pid = atomic_load(&h->worker[i].pid);
        if (pid > 0 && sp_sched_process(pid, &cpu, &wait) == 0) {
            s->work_cpu += cpu;
            s->work_wait += wait;
        }
    }
}

/* The inproc cell's workers: the consumer's loop, as threads of the broker. */
static int s_worker_thread(const char *instance, uint32_t worker_id, const atomic_bool *stop,
                           char *why, size_t cap)
{
    sp_worker_cfg_t wcfg = {.instance = instance, .worker_id = worker_id, .sync = -1, .stop = stop};
    sp_worker_t *w = NULL;
    int rc = sp_worker_new(&w, &wcfg, why, cap);
    if (rc == 0) {
        rc = sp_worker_run(w, why, cap);
        sp_worker_destroy(&w);
    }
    return rc;
}

static void *s_broker_thread(void *arg)
{
    s_cell_t *c = arg;
    pthread_setname_np(pthread_self(), "sp-broker");
    sp_broker_t *broker = NULL;
    c->brc = sp_broker_new(&broker, &c->bcfg, c->bwhy, sizeof c->bwhy);
    if (c->brc == 0) {
        c->brc = sp_broker_run(broker, &c->bstats, c->bwhy, sizeof c->bwhy);
        sp_broker_destroy(&broker);
    }
    return NULL;
}

static int s_write_catalogue(const char *path, uint32_t n)
{
    FILE *f = fopen(path, "we");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f, "id_reg,name,category,weight,price,expiry,stock\n");
    for (uint32_t id = 1; id <= n; id++) {
        fprintf(f, "%u,Product %u,Bench,1.000,%u.%02u,2030-01-01,%u\n", id, id, 1 + id % 97,
                id % 100, BENCH_STOCK);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

static int s_start(s_cell_t *c, const s_job_t *job, char *why, size_t cap)
{
    const bench_cell_t *cell = job->cell;
    const bench_opts_t *o = job->opts;
    snprintf(c->catalogue, sizeof c->catalogue, "%s/%s.csv", o->work_dir, job->instance);
    int rc = s_write_catalogue(c->catalogue, cell->products);
    if (rc < 0) {
        snprintf(why, cap, "cannot write %s: %s", c->catalogue, sp_strerror(rc));
        return rc;
    }
    sp_names_init(&c->names, job->instance, o->work_dir);
    const bench_variant_t *v = cell->variant;
    const sp_transport_t *t = bench_variant_transport(v);
    if (v->at == BENCH_AT_THREADS) {
        c->bcfg = (sp_broker_cfg_t){.instance = job->instance,
                                    .catalogue = c->catalogue,
                                    .state_dir = o->work_dir,
                                    .worker_thread = s_worker_thread,
                                    .stop = &c->stop,
                                    .workers = cell->workers,
                                    .sync = cell->sync,
                                    .transport = t,
                                    .fresh = true,
                                    .no_dedup = cell->unguarded};
        rc = pthread_create(&c->broker_thread, NULL, s_broker_thread, c);
        if (rc != 0) {
            snprintf(why, cap, "cannot start the broker thread: %s", strerror(rc));
            return -rc;
        }
        c->broker_threaded = true;
    } else {
        char broker[SP_PATH_MAX], workers[16], log[SP_PATH_MAX], replicas[16];
        snprintf(broker, sizeof broker, "%s/broker", o->bin_dir);
        snprintf(workers, sizeof workers, "%u", cell->workers > 0 ? cell->workers : 1);
        snprintf(log, sizeof log, "%s/%s.log", o->work_dir, job->instance);
        const char *argv[24] = {broker,        "--instance", job->instance,
                                "--catalogue", c->catalogue, "--workers",
                                workers,       "--sync",     sp_sync_name(cell->sync),
                                "--transport", t->name,      "--state-dir",
                                o->work_dir,   "--fresh"};
        int argc = 14;
        if (v->at == BENCH_AT_TCP) {
            snprintf(c->tcp, sizeof c->tcp, "tcp://127.0.0.1:%u", o->tcp_port);
            argv[argc++] = "--tcp";
            argv[argc++] = c->tcp;
        }
        if (v->at == BENCH_AT_NATS) {
            /* the customers find the servers in the contact file, and
             * their credentials where the transport looks (sp_nats.h) */
            if (setenv(SP_NATS_AUTH_ENV, job->nats->auth, 1) != 0) {
                int err = errno;
                snprintf(why, cap, "setenv " SP_NATS_AUTH_ENV ": %s", strerror(err));
                return -err;
            }
            snprintf(replicas, sizeof replicas, "%u", v->nats_replicas);
            argv[argc++] = "--nats";
            argv[argc++] = job->nats->urls;
            argv[argc++] = "--nats-auth";
            argv[argc++] = job->nats->auth;
            argv[argc++] = "--nats-replicas";
            argv[argc++] = replicas;
        }
        if (cell->unguarded) {
            argv[argc++] = "--no-dedup";
        }
        argv[argc] = NULL;
        rc = sp_child_spawn(&c->broker, (char *const *)argv, 0, log);
        if (rc < 0) {
            snprintf(why, cap, "cannot start %s: %s", broker, strerror(-rc));
            return rc;
        }
    }
    rc = sp_table_open_ready(&c->table, c->names.table, false, BENCH_READY_MS);
    if (rc < 0) {
        snprintf(why, cap, "broker of %s did not become ready: %s (see %s/%s.log)", job->instance,
                 sp_strerror(rc), o->work_dir, job->instance);
    }
    return rc;
}

/* Stops the broker; returns 0 when it stopped cleanly. */
static int s_stop(s_cell_t *c, char *why, size_t cap)
{
    sp_table_close(&c->table);
    if (c->broker_threaded) {
        atomic_store(&c->stop, true);
        pthread_join(c->broker_thread, NULL);
        c->broker_threaded = false;
        if (c->brc < 0) {
            snprintf(why, cap, "broker: %.200s", c->bwhy);
        }
        return c->brc;
    }
    if (c->broker.pid <= 0 || c->broker.reaped) {
        return 0;
    }
    sp_child_signal(&c->broker, SIGTERM);
    int rc = sp_child_wait(&c->broker, sp_now_ns() + BENCH_STOP_WAIT_MS * SP_NS_PER_MS);
    if (rc == SP_E_TIMEOUT) {
        snprintf(why, cap, "broker did not stop within %d ms", BENCH_STOP_WAIT_MS);
        char what[128];
        sp_broker_clean(c->names.name, what, sizeof what);
        return SP_E_TIMEOUT;
    }
    int status = c->broker.status;
    if (rc < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, cap, "broker exited with status %d", status);
        return -ECHILD;
    }
    return 0;
}

/* ---- one load run ---- */

typedef struct {
    sp_load_stats_t st;
    double ops;
    uint64_t answered;
    double cpu_prod, cpu_broker, cpu_work; /* seconds */
    double wait_prod, wait_broker, wait_work;
    uint64_t hop[SP_WHOP_COUNT][SP_LAT_BUCKETS]; /* the workers' messages of this run */
} s_run_t;

static int s_load(s_cell_t *c, const s_job_t *job, double rate, double seconds, unsigned seed,
                  sp_load_stats_t *total, uint64_t *sold, uint64_t *restocked, bool *first,
                  s_run_t *run, char *why, size_t cap)
{
    const bench_cell_t *cell = job->cell;
    sp_load_cfg_t lc;
    sp_load_defaults(&lc);
    lc.instance = job->instance;
    lc.customers = cell->producers;
    lc.arrival = rate > 0 ? SP_ARRIVAL_POISSON : SP_ARRIVAL_FAST;
    lc.rate = rate;
    lc.duration_s = seconds;
    lc.pick = cell->zipf_s > 0 ? SP_PICK_ZIPF : SP_PICK_UNIFORM;
    lc.zipf_s = cell->zipf_s > 0 ? cell->zipf_s : 1.0;
    lc.restock_ratio = BENCH_RESTOCK;
    lc.batch = cell->batch;
    lc.window = job->opts->window;
    lc.seed = seed;
    lc.ledger = true;
    lc.threads = cell->variant->at == BENCH_AT_THREADS;
    if (cell->unguarded) {
        lc.retry_ms = 0; /* nothing de-duplicates a resent copy */
    }

    sp_loadgen_t *loadgen = sp_loadgen_new(&lc);
    if (loadgen == NULL) {
        int rc = -errno;
        snprintf(why, cap, "%s", sp_strerror(rc));
        return rc;
    }
    s_sample_t before, after;
    s_sample(c, &before);
    int rc = sp_loadgen_run(loadgen, why, cap);
    s_sample(c, &after);
    run->st = *sp_loadgen_stats(loadgen);
    const uint64_t *s_sold = sp_loadgen_sold(loadgen), *s_rest = sp_loadgen_restocked(loadgen);
    uint32_t capacity = sp_loadgen_capacity(loadgen);
    if (rc == 0 && s_sold != NULL) {
        for (uint32_t id = 0; id <= capacity && id <= cell->products; id++) {
            sold[id] += s_sold[id];
            restocked[id] += s_rest[id];
        }
    }
    sp_loadgen_destroy(&loadgen);
    if (rc < 0) {
        return rc;
    }
    sp_load_merge(total, &run->st, *first);
    *first = false;
    run->answered = sp_load_answered(&run->st);
    double wall = (double)(run->st.end_ns - run->st.start_ns) / 1e9;
    run->ops = wall > 0 ? (double)run->answered / wall : 0;
    run->cpu_prod = (double)run->st.cpu_ns / 1e9;
    run->wait_prod = (double)run->st.wait_ns / 1e9;
    run->cpu_broker = (double)(after.broker_cpu - before.broker_cpu) / 1e9;
    run->wait_broker = (double)(after.broker_wait - before.broker_wait) / 1e9;
    run->cpu_work = (double)(after.work_cpu - before.work_cpu) / 1e9;
    run->wait_work = (double)(after.work_wait - before.work_wait) / 1e9;
    for (int k = 0; k < SP_WHOP_COUNT; k++) {
        for (unsigned b = 0; b < SP_LAT_BUCKETS; b++) {
            run->hop[k][b] = after.hop[k][b] >= before.hop[k][b]
                                 ? after.hop[k][b] - before.hop[k][b]
                                 : 0; /* a restarted worker's slot */
        }
    }
    return 0;
}

static double s_per_m(double cpu_s, uint64_t orders)
{
    return orders > 0 ? cpu_s / ((double)orders / 1e6) : -1;
}

static double s_ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

/* Latency, CPU and flags of a set of runs into a row. */
static void s_fill(bench_row_t *r, const s_run_t *runs, unsigned n, const sp_hist_t *lat)
{
    double cpu_p = 0, cpu_b = 0, cpu_w = 0, w_p = 0, w_b = 0, w_w = 0, wall = 0;
    uint64_t orders = 0;
    for (unsigned i = 0; i < n; i++) {
        wall += (double)(runs[i].st.end_ns - runs[i].st.start_ns) / 1e9;
        cpu_p += runs[i].cpu_prod;
        cpu_b += runs[i].cpu_broker;
        cpu_w += runs[i].cpu_work;
        w_p += runs[i].wait_prod;
        w_b += runs[i].wait_broker;
        w_w += runs[i].wait_work;
        orders += runs[i].answered;
    }
    r->orders = orders;
    r->p50 = (double)sp_hist_percentile(lat, 50) / 1e3;
    r->p90 = (double)sp_hist_percentile(lat, 90) / 1e3;
    r->p99 = (double)sp_hist_percentile(lat, 99) / 1e3;
    r->p999 = (double)sp_hist_percentile(lat, 99.9) / 1e3;
    r->max = (double)sp_hist_percentile(lat, 100) / 1e3;
    sp_hist_t *leg = malloc(sizeof *leg);
    for (int j = 0; j < SP_LEG_COUNT; j++) {
        r->leg_p50[j] = r->leg_p99[j] = -1;
        if (leg == NULL) {
            continue;
        }
        sp_hist_init(leg);
        for (unsigned i = 0; i < n; i++) {
            sp_hist_merge(leg, &runs[i].st.leg[j]);
        }
        if (leg->count > 0) {
            r->leg_p50[j] = (double)sp_hist_percentile(leg, 50) / 1e3;
            r->leg_p99[j] = (double)sp_hist_percentile(leg, 99) / 1e3;
        }
    }
    free(leg);
    for (int k = 0; k < SP_WHOP_COUNT; k++) {
        uint64_t sum[SP_LAT_BUCKETS] = {0}, count = 0;
        for (unsigned i = 0; i < n; i++) {
            for (unsigned b = 0; b < SP_LAT_BUCKETS; b++) {
                sum[b] += runs[i].hop[k][b];
                count += runs[i].hop[k][b];
            }
        }
        /* a bucket's upper bound: the figures are at most 1/8 above the truth */
        r->hop_p50[k] = count > 0 ? (double)sp_lat_percentile(sum, 50) / 1e3 : -1;
        r->hop_p99[k] = count > 0 ? (double)sp_lat_percentile(sum, 99) / 1e3 : -1;
    }
    r->cpu_prod = s_per_m(cpu_p, orders);
    r->cpu_broker = s_per_m(cpu_b, orders);
    r->cpu_work = s_per_m(cpu_w, orders);
    r->cpu_total = s_per_m(cpu_p + cpu_b + cpu_w, orders);
    r->wait_prod = s_ratio(w_p, cpu_p);
    r->wait_broker = s_ratio(w_b, cpu_b);
    r->wait_work = s_ratio(w_w, cpu_w);
    /* starved: a role waited for a CPU more than BENCH_STARVED times as long
     * as it ran, and for a real part of the run (an idle role is not) */
    if (r->wait_prod > BENCH_STARVED && w_p > BENCH_STARVED_WALL * wall) {
        s_flag(r, "starved:producers");
    }
    if (r->wait_broker > BENCH_STARVED && w_b > BENCH_STARVED_WALL * wall) {
        s_flag(r, "starved:broker");
    }
    if (r->wait_work > BENCH_STARVED && w_w > BENCH_STARVED_WALL * wall) {
        s_flag(r, "starved:workers");
    }
}

/* Resident sizes of the broker and its workers, and the table's size. */
static void s_memory(s_cell_t *c, bench_row_t *r)
{
    uint32_t capacity = sp_table_capacity(c->table);
    r->table_mib = (double)sp_table_bytes(capacity) / (1024.0 * 1024.0);
    r->bytes_per_product = capacity > 0 ? (double)sp_table_bytes(capacity) / capacity : -1;
    if (c->broker_threaded || c->broker.pid <= 0) {
        return; /* one process with the bench's own memory: n/a */
    }
    long kb = sp_proc_status_kb(c->broker.pid, "VmRSS");
    long own = sp_proc_status_kb(c->broker.pid, "RssAnon"), workers = 0, workers_own = 0;
    sp_table_hdr_t *h = sp_table_hdr(c->table);
    for (unsigned i = 0; i < h->workers && i < SP_WORKERS_MAX && kb >= 0; i++) {
        int pid = atomic_load(&h->worker[i].pid);
        long w = pid > 0 ? sp_proc_status_kb(pid, "VmRSS") : -1;
        long wo = pid > 0 ? sp_proc_status_kb(pid, "RssAnon") : -1;
        if (w < 0 || wo < 0) {
            return;
        }
        workers += w;
        workers_own += wo;
    }
    if (kb >= 0 && own >= 0) {
        r->rss_broker_mib = (double)kb / 1024.0;
        r->anon_broker_mib = (double)own / 1024.0;
        if (h->workers > 0) { /* direct runs none */
            r->rss_workers_mib = (double)workers / 1024.0;
            r->anon_workers_mib = (double)workers_own / 1024.0;
        }
    }
}

static void s_measure(s_cell_t *c, const s_job_t *job, s_out_t *out)
{
    const bench_opts_t *o = job->opts;
    bench_row_t *fast = &out->rows[0];
    size_t n = (size_t)job->cell->products + 1;
    uint64_t *sold = calloc(n, sizeof *sold), *restocked = calloc(n, sizeof *restocked);
    sp_load_stats_t total;
    sp_load_stats_init(&total);
    bool first = true;
    s_run_t *run = calloc(1, sizeof *run);
    s_run_t *runs = calloc(BENCH_REPEATS_MAX, sizeof *runs);
    sp_hist_t *lat = calloc(1, sizeof *lat);
    int rc = sold && restocked && run && runs && lat ? 0 : -ENOMEM;
    unsigned seed = 1;
    if (rc == 0 && o->warmup_s > 0) {
        rc = s_load(c, job, 0, o->warmup_s, seed++, &total, sold, restocked, &first, run,
                    fast->note, sizeof fast->note);
    }
    double ops[BENCH_REPEATS_MAX];
    unsigned reps = o->repeats < BENCH_REPEATS_MAX ? o->repeats : BENCH_REPEATS_MAX;
    if (lat) {
        sp_hist_init(lat);
    }
    for (unsigned i = 0; rc == 0 && i < reps; i++) {
        rc = s_load(c, job, 0, o->run_s, seed++, &total, sold, restocked, &first, &runs[i],
                    fast->note, sizeof fast->note);
        if (rc == 0) {
            ops[i] = runs[i].ops;
            sp_hist_merge(lat, &runs[i].st.latency);
            fast->repeats++;
        }
    }
    if (fast->repeats > 0) {
        s_fill(fast, runs, fast->repeats, lat);
        fast->ops_min = bench_min(ops, fast->repeats);
        fast->ops_max = bench_max(ops, fast->repeats);
        fast->ops_med = bench_median(ops, fast->repeats);
        s_memory(c, fast);
    }
    for (unsigned i = 0; rc == 0 && i < job->nfrac; i++) {
        bench_row_t *r = &out->rows[1 + i];
        *r = *fast;
        memset(r->flags, 0, sizeof r->flags);
        r->ops_med = r->ops_min = r->ops_max = 0;
        bench_row_no_latency(r);
        r->rate_mode = true;
        /* a negative fraction is a rate of its own (the idle point), run
         * long enough for its p99 */
        bool absolute = job->fractions[i] < 0;
        r->offered = absolute ? -job->fractions[i] : fast->ops_med * job->fractions[i];
        r->peak_pct = absolute ? 0 : job->fractions[i] * 100;
        r->repeats = 1;
        double secs = absolute && o->rate_s < BENCH_IDLE_SECONDS ? BENCH_IDLE_SECONDS : o->rate_s;
        rc = s_load(c, job, r->offered, secs, seed++, &total, sold, restocked, &first, run,
                    fast->note, sizeof fast->note);
        if (rc == 0) {
            r->ops_med = r->ops_min = r->ops_max = run->ops;
            s_fill(r, run, 1, &run->st.latency);
            if (run->ops < BENCH_RATE_OK * r->offered) {
                s_flag(r, "rate-not-reached");
            }
        }
    }
    if (rc == 0) {
        /* the audit covers every order of the cell, warm-up included */
        char line[512] = "";
        FILE *m = fmemopen(line, sizeof line - 1, "w");
        int bad = m ? sp_audit_check(m, c->table, &total, sold, restocked) : 1;
        if (m) {
            (void)fclose(m); /* a cut audit line is still worth showing */
        }
        fast->audit = bad == 0 && total.timed_out == 0 && total.send_failed == 0;
        if (!fast->audit) {
            snprintf(fast->note, sizeof fast->note, "%.*s", (int)strcspn(line, "\n"), line);
            if (bad == 0) {
                snprintf(fast->note, sizeof fast->note, "%llu orders timed out, %llu not sent",
                         (unsigned long long)total.timed_out,
                         (unsigned long long)total.send_failed);
            }
        }
    } else {
        fast->audit = 0;
        if (fast->note[0] == '\0') {
            snprintf(fast->note, sizeof fast->note, "%s", sp_strerror(rc));
        }
    }
    for (unsigned i = 0; i < job->nfrac; i++) {
        out->rows[1 + i].audit = fast->audit;
    }
    free(sold);
    free(restocked);
    free(run);
    free(runs);
    free(lat);
}

static void s_cell_child(void *arg, void *outp)
{
    s_job_t *job = arg;
    s_out_t *out = outp;
    s_cell_t *c = calloc(1, sizeof *c);
    bench_row_t *fast = &out->rows[0];
    if (c == NULL) {
        snprintf(fast->note, sizeof fast->note, "out of memory");
        return;
    }
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail for a valid signal */
    int rc = s_start(c, job, fast->note, sizeof fast->note);
    if (rc == 0) {
        s_measure(c, job, out);
    } else {
        fast->audit = 0;
    }
    char why[320] = "";
    if (s_stop(c, why, sizeof why) < 0 && fast->audit) {
        fast->audit = 0;
        snprintf(fast->note, sizeof fast->note, "%s", why);
    }
    unlink(c->catalogue);
    char snap[SP_PATH_MAX + 32];
    snprintf(snap, sizeof snap, "%s/%s", c->names.state_dir, SP_SNAPSHOT_FILE);
    unlink(snap);
    rmdir(c->names.state_dir);
    if (fast->audit == 1) {
        char log[SP_PATH_MAX];
        snprintf(log, sizeof log, "%s/%s.log", job->opts->work_dir, job->instance);
        unlink(log); /* kept only when something went wrong */
    }
    free(c);
}

unsigned bench_cell_run(const bench_cell_t *cell, const bench_opts_t *opts, const double *fractions,
                        unsigned nfrac, bench_row_t *rows)
{
    static unsigned counter;
    if (nfrac > BENCH_RATES_MAX) {
        nfrac = BENCH_RATES_MAX;
    }
    s_job_t job = {.cell = cell, .opts = opts, .fractions = fractions, .nfrac = nfrac};
    snprintf(job.instance, sizeof job.instance, "spbench-%d-%u", (int)getpid(), counter++);
    s_out_t *out = calloc(1, sizeof *out);
    if (out == NULL) {
        bench_row_from_cell(&rows[0], cell);
        rows[0].audit = 0;
        snprintf(rows[0].note, sizeof rows[0].note, "out of memory");
        return 1;
    }
    for (unsigned i = 0; i <= nfrac; i++) {
        bench_row_from_cell(&out->rows[i], cell);
    }
    /* The servers are the bench's, not the cell's: started here, outside
     * the cell's process group, so that they are stopped and their stores
     * removed however the cell ends. */
    bench_natsrv_t nats;
    memset(&nats, 0, sizeof nats);
    int rc = 0;
    if (cell->variant->at == BENCH_AT_NATS) {
        rc = bench_natsrv_start(&nats, opts->work_dir, job.instance, cell->variant->nats_nodes,
                                out->rows[0].note, sizeof out->rows[0].note);
        job.nats = &nats;
    }
    double limit = 60 + opts->warmup_s + opts->run_s * opts->repeats +
                   (opts->rate_s + BENCH_IDLE_SECONDS) * nfrac * 2;
    if (rc < 0) {
        out->rows[0].audit = 0; /* the note says why the servers did not start */
    } else {
        rc = bench_isolated(s_cell_child, &job, out, sizeof *out, limit, job.instance);
        bench_natsrv_stop(&nats);
        if (rc < 0) {
            out->rows[0].note[0] = '\0';
        }
    }
    if (rc < 0 && out->rows[0].note[0] == '\0') {
        out->rows[0].audit = 0;
        snprintf(out->rows[0].note, sizeof out->rows[0].note, "%s",
                 rc == -ETIMEDOUT ? "cell overran its time limit and was killed"
                                  : "cell process died");
    }
    if (out->rows[0].audit != 1) {
        s_flag(&out->rows[0], "failed");
    }
    memcpy(rows, out->rows, sizeof(bench_row_t) * (1 + nfrac));
    free(out);
    return 1 + nfrac;
}

/* ---- isolation ---- */

/* What the isolated child runs, and where its report goes. */
typedef struct {
    void (*fn)(void *arg, void *out);
    void *arg;
    void *out;
    size_t size;
} s_isolated_t;

/* In the child: the work, then its report through the pipe. */
static int s_isolated_child(void *arg, int fd)
{
    const s_isolated_t *iso = arg;
    iso->fn(iso->arg, iso->out);
    return sp_child_write(fd, iso->out, iso->size) == 0 ? 0 : 1;
}

int bench_isolated(void (*fn)(void *arg, void *out), void *arg, void *out, size_t size,
                   double limit_s, const char *instance)
{
    s_isolated_t iso = {.fn = fn, .arg = arg, .out = out, .size = size};
    sp_child_t kid;
    /* the cell's processes form one group we can kill */
    int rc = sp_child_fork(&kid, SP_CHILD_PIPE | SP_CHILD_GROUP, s_isolated_child, &iso);
    if (rc < 0) {
        return rc;
    }
    uint64_t deadline = sp_now_ns() + (uint64_t)(limit_s * 1e9);
    /* the user pressed ^C: stop the cell's processes too */
    rc = sp_child_read(&kid, out, size, deadline, sp_signal_stopping);
    if (rc < 0) {
        sp_child_signal(&kid, SIGKILL);
    }
    sp_child_reap(&kid);
    if (rc < 0 && instance != NULL) {
        char what[160];
        sp_broker_clean(instance, what, sizeof what);
    }
    /* in bench.h's words */
    switch (rc) {
    case -EPIPE:
        return -ECHILD;
    case SP_E_TIMEOUT:
        return -ETIMEDOUT;
    case SP_E_STOPPED:
        return -EINTR;
    default:
        return rc;
    }
}
