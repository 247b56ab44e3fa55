/*
 * sp_loadgen — the load generator: customers as processes or threads, their
 * reports collected and merged (sp_loadgen.h).
 */
#include "sp_loadgen.h"

#include "sp_child.h"
#include "sp_customer.h"
#include "sp_error.h"
#include "sp_time.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

struct sp_loadgen {
    sp_load_cfg_t cfg;
    sp_load_stats_t st; /* the last run's */
    uint64_t *sold, *restocked;
    uint32_t capacity;
    /* sp_loadgen_on_tick */
    double tick_s;
    sp_load_tick_fn *tick_fn;
    void *tick_ctx;
};

/* The ticker: a thread that sums the customers' live slots every interval
 * until the run ends. */
typedef struct {
    const sp_load_cfg_t *cfg; /* its live slots */
    double interval_s;
    sp_load_tick_fn *fn;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when the run ends */
    bool ended, started;
    uint64_t prev_lat[SP_LAT_BUCKETS];
    uint64_t prev_answered, start_ns, prev_ns;
} s_ticker_t;

static void s_tick(s_ticker_t *t, uint64_t now)
{
    sp_load_tick_t tick = {.elapsed_s = (double)(now - t->start_ns) / 1e9,
                           .interval_s = (double)(now - t->prev_ns) / 1e9};
    uint64_t lat[SP_LAT_BUCKETS] = {0};
    for (unsigned i = 0; i < t->cfg->customers; i++) {
        sp_load_live_t *lv = &t->cfg->live[i];
        tick.sent += atomic_load_explicit(&lv->sent, memory_order_relaxed);
        tick.answered += atomic_load_explicit(&lv->answered, memory_order_relaxed);
        tick.accepted += atomic_load_explicit(&lv->accepted, memory_order_relaxed);
        tick.timed_out += atomic_load_explicit(&lv->timed_out, memory_order_relaxed);
        tick.in_flight += atomic_load_explicit(&lv->in_flight, memory_order_relaxed);
        for (unsigned b = 0; b < SP_LAT_BUCKETS; b++) {
            lat[b] += atomic_load_explicit(&lv->lat[b], memory_order_relaxed);
        }
    }
    uint64_t in_interval[SP_LAT_BUCKETS];
    for (unsigned b = 0; b < SP_LAT_BUCKETS; b++) {
        in_interval[b] = lat[b] >= t->prev_lat[b] ? lat[b] - t->prev_lat[b] : 0;
        t->prev_lat[b] = lat[b];
    }
    tick.p50_ns = sp_lat_percentile(in_interval, 50);
    tick.p99_ns = sp_lat_percentile(in_interval, 99);
    uint64_t fresh = tick.answered >= t->prev_answered ? tick.answered - t->prev_answered : 0;
    tick.rate = tick.interval_s > 0 ? (double)fresh / tick.interval_s : 0;
    t->prev_answered = tick.answered;
    t->prev_ns = now;
    t->fn(t->ctx, &tick);
}

static void *s_ticker_main(void *arg)
{
    s_ticker_t *t = arg;
    uint64_t step = (uint64_t)(t->interval_s * 1e9);
    uint64_t due = t->start_ns + step;
    pthread_mutex_lock(&t->lock);
    while (!t->ended) {
        struct timespec at;
        clock_gettime(CLOCK_MONOTONIC, &at);
        uint64_t now = (uint64_t)at.tv_sec * 1000000000u + (uint64_t)at.tv_nsec;
        if (now >= due) {
            pthread_mutex_unlock(&t->lock);
            s_tick(t, now);
            pthread_mutex_lock(&t->lock);
            due += step;
            due = due <= now ? now + step : due; /* a late tick does not make a burst */
            continue;
        }
        at.tv_sec = (time_t)(due / 1000000000u);
        at.tv_nsec = (long)(due % 1000000000u);
        pthread_cond_timedwait(&t->cond, &t->lock, &at);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* Starts the ticker (after the customers: a forked customer must not
 * inherit its thread).  A ticker that cannot start only costs the ticks. */
static void s_ticker_start(s_ticker_t *t)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    t->start_ns = t->prev_ns = sp_now_ns();
    t->started = pthread_create(&t->thread, NULL, s_ticker_main, t) == 0;
}

static void s_ticker_stop(s_ticker_t *t)
{
    if (t == NULL || !t->started) {
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->ended = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    t->started = false;
}

/* What a customer process sends its parent through the pipe. */
typedef struct {
    int32_t rc;
    uint32_t capacity;
    char why[200];
    sp_load_stats_t st;
} sp_cust_report_t;

/* Who a customer process is: what s_child needs to run it. */
typedef struct {
    const sp_load_cfg_t *cfg;
    unsigned index;
    uint64_t quota;
    sp_child_t *siblings; /* the customers started before this one */
    unsigned nsiblings;
    pid_t parent; /* the producer */
} sp_cust_proc_t;

/* A customer process: runs, reports (then its ledger arrays) through `fd`
 * and returns its exit status. */
static int s_child(void *arg, int fd)
{
    const sp_cust_proc_t *who = arg;
    const sp_load_cfg_t *cfg = who->cfg;
    /* a producer killed outright (kill -9) takes its customers with it:
     * they stop as on Ctrl-C instead of sending on to their own timeout */
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != who->parent) {
        (void)raise(SIGTERM);
    }
    /* the pipes of the customers before us are the parent's, not ours */
    for (unsigned j = 0; j < who->nsiblings; j++) {
        sp_child_close(&who->siblings[j]);
    }
    sp_cust_report_t *rep = calloc(1, sizeof *rep);
    uint64_t *sold = NULL, *restocked = NULL;
    if (rep == NULL) {
        return 1;
    }
    rep->rc = sp_customer_run(cfg, who->index, who->quota, &rep->st, &sold, &restocked,
                              &rep->capacity, rep->why, sizeof rep->why);
    int rc = sp_child_write(fd, rep, sizeof *rep);
    if (rc == 0 && cfg->ledger && rep->capacity > 0 && sold != NULL) {
        size_t n = (size_t)rep->capacity + 1;
        rc = sp_child_write(fd, sold, n * sizeof *sold);
        if (rc == 0) {
            rc = sp_child_write(fd, restocked, n * sizeof *restocked);
        }
    }
    close(fd);
    free(sold);
    free(restocked);
    free(rep);
    return rc == 0 ? 0 : 1;
}

/* Orders customer i places when the run is bounded by a count (0: unbounded). */
static uint64_t s_quota(const sp_load_cfg_t *cfg, unsigned i)
{
    return cfg->count / cfg->customers + (i < cfg->count % cfg->customers);
}

/* Adds one customer's ledger (n entries each) to the run's, allocating it on
 * first use.  Returns 0 or -ENOMEM. */
static int s_ledger_add(uint64_t **sold, uint64_t **restocked, const uint64_t *s_sold,
                        const uint64_t *s_restocked, size_t n)
{
    if (*sold == NULL) {
        *sold = calloc(n, sizeof **sold);
        *restocked = calloc(n, sizeof **restocked);
    }
    if (*sold == NULL || *restocked == NULL) {
        return -ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        (*sold)[k] += s_sold ? s_sold[k] : 0;
        (*restocked)[k] += s_restocked ? s_restocked[k] : 0;
    }
    return 0;
}

typedef struct {
    const sp_load_cfg_t *cfg;
    unsigned index;
    pthread_t thread;
    sp_cust_report_t rep;
    uint64_t *sold, *restocked;
} sp_cust_thread_t;

/* A customer thread: runs and leaves its report in its slot. */
static void *s_cust_thread(void *arg)
{
    sp_cust_thread_t *t = arg;
    t->rep.rc = sp_customer_run(t->cfg, t->index, s_quota(t->cfg, t->index), &t->rep.st, &t->sold,
                                &t->restocked, &t->rep.capacity, t->rep.why, sizeof t->rep.why);
    return NULL;
}

/* The customers as threads of this process. */
static int s_load_threads(const sp_load_cfg_t *cfg, s_ticker_t *ticker, sp_load_stats_t *st,
                          uint64_t **sold, uint64_t **restocked, uint32_t *capacity, char *why,
                          size_t cap)
{
    sp_cust_thread_t *t = calloc(cfg->customers, sizeof *t);
    if (t == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < cfg->customers; i++) {
        if (cfg->count > 0 && s_quota(cfg, i) == 0) {
            continue;
        }
        t[started] = (sp_cust_thread_t){.cfg = cfg, .index = i};
        int e = pthread_create(&t[started].thread, NULL, s_cust_thread, &t[started]);
        if (e != 0) {
            rc = -e;
            snprintf(why, cap, "cannot start customer thread %u: %s", i, sp_strerror(rc));
            break;
        }
        started++;
    }
    if (ticker != NULL) {
        s_ticker_start(ticker);
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(t[i].thread, NULL);
        sp_cust_report_t *rep = &t[i].rep;
        if (rep->rc < 0 && rc == 0) {
            rc = rep->rc;
            snprintf(why, cap, "%s", rep->why);
        }
        sp_load_merge(st, &rep->st, i == 0);
        if (cfg->ledger && rep->rc >= 0 && rep->capacity > 0 && rc == 0) {
            *capacity = rep->capacity;
            rc =
                s_ledger_add(sold, restocked, t[i].sold, t[i].restocked, (size_t)rep->capacity + 1);
        }
        free(t[i].sold);
        free(t[i].restocked);
    }
    s_ticker_stop(ticker);
    free(t);
    return rc;
}

/* The run: validates, then the customers as threads or as processes. */
static int s_run(const sp_load_cfg_t *cfg, s_ticker_t *ticker, sp_load_stats_t *st, uint64_t **sold,
                 uint64_t **restocked, uint32_t *capacity, char *why, size_t cap)
{
    sp_load_stats_init(st);
    *sold = *restocked = NULL;
    *capacity = 0;
    if (cfg->customers < 1 || cfg->customers > SP_CUSTOMERS_MAX) {
        snprintf(why, cap, "--customers must be 1..%d", SP_CUSTOMERS_MAX);
        return SP_E_USAGE;
    }
    if (cfg->count == 0 && cfg->duration_s <= 0) {
        snprintf(why, cap, "give --count or --duration (or both)");
        return SP_E_USAGE;
    }
    if (cfg->threads) {
        return s_load_threads(cfg, ticker, st, sold, restocked, capacity, why, cap);
    }
    /* the customers as processes, each reporting through its own pipe */
    sp_child_t kids[SP_CUSTOMERS_MAX];
    unsigned started = 0;
    int rc = 0;
    for (unsigned i = 0; i < cfg->customers; i++) {
        uint64_t quota = cfg->count > 0 ? s_quota(cfg, i) : 0;
        if (cfg->count > 0 && quota == 0) {
            continue;
        }
        sp_cust_proc_t who = {.cfg = cfg,
                              .index = i,
                              .quota = quota,
                              .siblings = kids,
                              .nsiblings = started,
                              .parent = getpid()};
        rc = sp_child_fork(&kids[started], SP_CHILD_PIPE, s_child, &who);
        if (rc < 0) {
            break;
        }
        started++;
    }
    if (ticker != NULL) {
        s_ticker_start(ticker);
    }
    sp_cust_report_t *rep = malloc(sizeof *rep);
    uint64_t *buf = NULL;
    if (rep == NULL) {
        rc = -ENOMEM;
    }
    bool first = true;
    for (unsigned i = 0; i < started; i++) {
        int r = rep ? sp_child_read(&kids[i], rep, sizeof *rep, SP_CHILD_FOREVER, NULL) : -ENOMEM;
        if (r == 0 && rep->rc < 0 && rc == 0) {
            rc = rep->rc;
            snprintf(why, cap, "%s", rep->why);
        }
        if (r == 0) {
            sp_load_merge(st, &rep->st, first);
            first = false;
        }
        if (r == 0 && cfg->ledger && rep->capacity > 0 && rep->rc >= 0) {
            size_t n = (size_t)rep->capacity + 1;
            if (buf == NULL) {
                *capacity = rep->capacity;
                buf = malloc(n * sizeof *buf);
            }
            if (buf == NULL || rep->capacity != *capacity) {
                r = -ENOMEM;
            } else {
                r = sp_child_read(&kids[i], buf, n * sizeof *buf, SP_CHILD_FOREVER, NULL);
                if (r == 0) {
                    r = s_ledger_add(sold, restocked, buf, NULL, n);
                }
                if (r == 0) {
                    r = sp_child_read(&kids[i], buf, n * sizeof *buf, SP_CHILD_FOREVER, NULL);
                }
                if (r == 0) {
                    r = s_ledger_add(sold, restocked, NULL, buf, n);
                }
            }
        }
        if (r < 0 && rc == 0) {
            rc = r;
            snprintf(why, cap, "customer %u died before reporting", i);
        }
        sp_child_close(&kids[i]);
    }
    s_ticker_stop(ticker);
    for (unsigned i = 0; i < started; i++) {
        sp_child_reap(&kids[i]);
    }
    free(buf);
    free(rep);
    return rc;
}

sp_loadgen_t *sp_loadgen_new(const sp_load_cfg_t *cfg)
{
    sp_loadgen_t *self = calloc(1, sizeof *self);
    if (self == NULL) {
        return NULL;
    }
    self->cfg = *cfg;
    sp_load_stats_init(&self->st);
    return self;
}

int sp_loadgen_run(sp_loadgen_t *self, char *why, size_t cap)
{
    free(self->sold);
    free(self->restocked);
    self->sold = self->restocked = NULL;
    if (self->tick_fn == NULL) {
        self->cfg.live = NULL;
        return s_run(&self->cfg, NULL, &self->st, &self->sold, &self->restocked, &self->capacity,
                     why, cap);
    }
    /* the customers' live slots, shared with the processes they fork into */
    size_t len = sizeof(sp_load_live_t) * (self->cfg.customers > 0 ? self->cfg.customers : 1);
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    s_ticker_t *ticker = mem != MAP_FAILED ? calloc(1, sizeof *ticker) : NULL;
    if (ticker == NULL) {
        /* no progress lines is better than no run */
        if (mem != MAP_FAILED) {
            munmap(mem, len);
        }
        self->cfg.live = NULL;
        return s_run(&self->cfg, NULL, &self->st, &self->sold, &self->restocked, &self->capacity,
                     why, cap);
    }
    self->cfg.live = mem;
    *ticker = (s_ticker_t){
        .cfg = &self->cfg, .interval_s = self->tick_s, .fn = self->tick_fn, .ctx = self->tick_ctx};
    int rc = s_run(&self->cfg, ticker, &self->st, &self->sold, &self->restocked, &self->capacity,
                   why, cap);
    self->cfg.live = NULL;
    munmap(mem, len);
    free(ticker);
    return rc;
}

void sp_loadgen_on_tick(sp_loadgen_t *self, double interval_s, sp_load_tick_fn *fn, void *ctx)
{
    self->tick_s = interval_s > 0 ? interval_s : 1;
    self->tick_fn = fn;
    self->tick_ctx = ctx;
}

const sp_load_stats_t *sp_loadgen_stats(const sp_loadgen_t *self)
{
    return &self->st;
}

const uint64_t *sp_loadgen_sold(const sp_loadgen_t *self)
{
    return self->sold;
}

const uint64_t *sp_loadgen_restocked(const sp_loadgen_t *self)
{
    return self->restocked;
}

uint32_t sp_loadgen_capacity(const sp_loadgen_t *self)
{
    return self->capacity;
}

void sp_loadgen_destroy(sp_loadgen_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_loadgen_t *self = *self_p;
    free(self->sold);
    free(self->restocked);
    free(self);
    *self_p = NULL;
}
