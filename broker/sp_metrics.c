/*
 * sp_metrics — the board the broker thread fills from its STATS messages and
 * any thread renders as Prometheus text (sp_metrics.h); the address of
 * --metrics.  The HTTP server is sp_metrics_http.c.
 *
 * The board is atomics only: the broker thread stores, readers load
 * (relaxed: counters only grow, and a scrape may mix two STATS ticks, at
 * most 100 ms apart).  The strings (instance, transport, directories) are
 * written once, before `described` is released, and read only after it is
 * acquired.
 */
#include "sp_metrics.h"

#include "sp_broker_impl.h"
#include "sp_error.h"
#include "sp_recover.h"
#include "sp_snapshot.h"
#include "sp_table.h"
#include "sp_tcp.h"
#include "sp_version.h"
#include "sp_wire.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define S_NAME_MAX 64

struct sp_metrics {
    _Atomic uint64_t stats_taken; /* STATS messages taken (0: not serving yet) */
    _Atomic uint64_t orders[SP_STATUS_COUNT];
    _Atomic uint64_t lat[SP_LAT_BUCKETS];
    _Atomic uint64_t depth[SP_HOP_COUNT];
    _Atomic uint64_t depth_cap[SP_HOP_COUNT];
    _Atomic bool depth_known[SP_HOP_COUNT];
    _Atomic uint64_t drops[SP_DROP_COUNT];
    _Atomic uint64_t events;
    _Atomic uint64_t products;
    _Atomic uint32_t workers;
    _Atomic uint32_t wstate[SP_WORKERS_MAX + 1]; /* by worker id */
    _Atomic uint32_t wrestarts[SP_WORKERS_MAX + 1];

    /* written once by the broker thread, then `described` */
    _Atomic bool described;
    char instance[S_NAME_MAX];
    char transport[S_NAME_MAX];
    char sync[S_NAME_MAX];
    char snapshot[SP_PATH_MAX + 32]; /* the periodic snapshot's file */
    char journal_dir[SP_PATH_MAX + 16];
};

sp_metrics_t *sp_metrics_new(void)
{
    return calloc(1, sizeof(sp_metrics_t));
}

void sp_metrics_free(sp_metrics_t **self_p)
{
    if (self_p != NULL) {
        free(*self_p);
        *self_p = NULL;
    }
}

static void s_describe(sp_metrics_t *m, const sp_broker_t *b)
{
    snprintf(m->instance, sizeof m->instance, "%s", b->cfg->instance);
    snprintf(m->transport, sizeof m->transport, "%s", b->transport->name);
    snprintf(m->sync, sizeof m->sync, "%s", sp_sync_name(b->cfg->sync));
    snprintf(m->snapshot, sizeof m->snapshot, "%s/%s", b->names.state_dir, SP_SNAPSHOT_BIN);
    snprintf(m->journal_dir, sizeof m->journal_dir, "%s", b->journal_dir);
    atomic_store_explicit(&m->described, true, memory_order_release);
}

#define S_SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)
#define S_GET(field)    atomic_load_explicit(&(field), memory_order_relaxed)

void sp_metrics_take(sp_metrics_t *m, const sp_broker_t *b, const uint8_t *msg, unsigned n,
                     const uint64_t lat[SP_LAT_BUCKETS])
{
    if (!atomic_load_explicit(&m->described, memory_order_relaxed)) {
        s_describe(m, b);
    }
    for (unsigned i = 0; i < n; i++) {
        sp_counter_t c;
        sp_wire_get_counter(sp_wire_crec(msg, SP_MSG_STATS, i), &c);
        unsigned x = c.index;
        switch (c.id) {
        case SP_CTR_ORDERS:
            if (x < SP_STATUS_COUNT) {
                S_SET(m->orders[x], c.value);
            }
            break;
        case SP_CTR_DEPTH:
        case SP_CTR_DEPTH_CAP:
            if (x < SP_HOP_COUNT) {
                if (c.id == SP_CTR_DEPTH) {
                    S_SET(m->depth[x], c.value);
                } else {
                    S_SET(m->depth_cap[x], c.value);
                }
                S_SET(m->depth_known[x], true);
            }
            break;
        case SP_CTR_DROPS:
            if (x < SP_DROP_COUNT) {
                S_SET(m->drops[x], c.value);
            }
            break;
        case SP_CTR_EVENT_SEQ:
            S_SET(m->events, c.value);
            break;
        case SP_CTR_PRODUCTS:
            S_SET(m->products, c.value);
            break;
        case SP_CTR_WORKERS:
            S_SET(m->workers, (uint32_t)(c.value < SP_WORKERS_MAX ? c.value : SP_WORKERS_MAX));
            break;
        case SP_CTR_W_STATE:
            if (x >= 1 && x <= SP_WORKERS_MAX) {
                S_SET(m->wstate[x], (uint32_t)c.value);
            }
            break;
        case SP_CTR_W_RESTARTS:
            if (x >= 1 && x <= SP_WORKERS_MAX) {
                S_SET(m->wrestarts[x], (uint32_t)c.value);
            }
            break;
        default:
            break;
        }
    }
    for (unsigned k = 0; k < SP_LAT_BUCKETS; k++) {
        S_SET(m->lat[k], lat[k]);
    }
    atomic_fetch_add_explicit(&m->stats_taken, 1, memory_order_release);
}

/* ---- rendering ---- */

typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
} s_out_t;

static void s_put(s_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_put(s_out_t *o, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !o->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = (o->cap + (size_t)n + 1) * 2;
        char *grown = realloc(o->buf, cap);
        if (grown == NULL) {
            o->failed = true;
            return;
        }
        o->buf = grown;
        o->cap = cap;
    }
}

static void s_head(s_out_t *o, const char *name, const char *type, const char *help)
{
    s_put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Seconds since `path` (a file) was last written; false if it is not there. */
static bool s_file_age(const char *path, const struct timespec *now, double *age)
{
    struct stat st;
    if (path[0] == '\0' || stat(path, &st) < 0) {
        return false;
    }
    *age = (double)(now->tv_sec - st.st_mtim.tv_sec) +
           (double)(now->tv_nsec - st.st_mtim.tv_nsec) / 1e9;
    if (*age < 0) {
        *age = 0;
    }
    return true;
}

/* The age of the newest journal file in `dir`. */
static bool s_journal_age(const char *dir, const struct timespec *now, double *age)
{
    DIR *d = dir[0] != '\0' ? opendir(dir) : NULL;
    if (d == NULL) {
        return false;
    }
    bool any = false;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!sp_recover_is_journal(e->d_name)) {
            continue;
        }
        char path[sizeof((sp_metrics_t *)0)->journal_dir + NAME_MAX + 2];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        double a;
        if (s_file_age(path, now, &a) && (!any || a < *age)) {
            *age = a;
            any = true;
        }
    }
    closedir(d);
    return any;
}

static const char *const s_hop_names[SP_HOP_COUNT] = {"orders", "results"};
static const char *const s_drop_names[SP_DROP_COUNT] = {"invalid", "orders", "results", "events"};
static const char *const s_wstate_names[] = {"none",     "starting", "running",
                                             "stopping", "silent",   "dead"};

static void s_render_orders(s_out_t *o, sp_metrics_t *m)
{
    s_head(o, "sp_orders_total", "counter", "Orders the workers answered, by outcome.");
    for (unsigned s = 0; s < SP_STATUS_COUNT; s++) {
        s_put(o, "sp_orders_total{outcome=\"%s\"} %llu\n", sp_wire_status_name(s),
              (unsigned long long)S_GET(m->orders[s]));
    }
    /* one bucket per power of two (the last of its 8 sub-buckets), in seconds */
    s_head(o, "sp_order_latency_seconds", "histogram",
           "Send-to-apply latency of the answered orders (buckets only: no _sum).");
    uint64_t cum = 0;
    for (unsigned k = 0; k < SP_LAT_BUCKETS; k++) {
        cum += S_GET(m->lat[k]);
        if (k + 1 < SP_LAT_BUCKETS && (k + 1) % 8 == 0) {
            double le = (double)(sp_lat_bucket_high(k) + 1) / 1e9;
            s_put(o, "sp_order_latency_seconds_bucket{le=\"%.12g\"} %llu\n", le,
                  (unsigned long long)cum);
        }
    }
    s_put(o, "sp_order_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    s_put(o, "sp_order_latency_seconds_count %llu\n", (unsigned long long)cum);
}

static void s_render_paths(s_out_t *o, sp_metrics_t *m)
{
    s_head(o, "sp_queue_depth", "gauge",
           "Messages queued at a hop (orders: producers to workers, or zmq batches at "
           "workers; results: workers to producers).");
    for (unsigned h = 0; h < SP_HOP_COUNT; h++) {
        if (S_GET(m->depth_known[h])) {
            s_put(o, "sp_queue_depth{hop=\"%s\"} %llu\n", s_hop_names[h],
                  (unsigned long long)S_GET(m->depth[h]));
        }
    }
    s_head(o, "sp_queue_capacity", "gauge", "Messages a hop holds (0: unbounded or unknown).");
    for (unsigned h = 0; h < SP_HOP_COUNT; h++) {
        if (S_GET(m->depth_known[h])) {
            s_put(o, "sp_queue_capacity{hop=\"%s\"} %llu\n", s_hop_names[h],
                  (unsigned long long)S_GET(m->depth_cap[h]));
        }
    }
    s_head(o, "sp_drops_total", "counter",
           "Messages lost or refused: invalid (malformed, dead-lettered), orders (no worker "
           "could take them), results (their producer was gone).");
    for (unsigned r = 0; r < SP_DROP_COUNT; r++) {
        if (r != SP_DROP_EVENTS) {
            s_put(o, "sp_drops_total{reason=\"%s\"} %llu\n", s_drop_names[r],
                  (unsigned long long)S_GET(m->drops[r]));
        }
    }
    s_head(o, "sp_events_total", "counter", "Stock changes the workers published.");
    s_put(o, "sp_events_total %llu\n", (unsigned long long)S_GET(m->events));
    s_head(o, "sp_event_gaps_total", "counter",
           "Events lost before the broker's event proxy (gaps in a publisher's numbers).");
    s_put(o, "sp_event_gaps_total %llu\n", (unsigned long long)S_GET(m->drops[SP_DROP_EVENTS]));
}

static void s_render_workers(s_out_t *o, sp_metrics_t *m)
{
    unsigned workers = S_GET(m->workers);
    unsigned by_state[sizeof s_wstate_names / sizeof s_wstate_names[0]] = {0};
    for (unsigned w = 1; w <= workers; w++) {
        uint32_t s = S_GET(m->wstate[w]);
        if (s < sizeof by_state / sizeof by_state[0]) {
            by_state[s]++;
        }
    }
    s_head(o, "sp_workers", "gauge", "Inventory workers, by state.");
    for (unsigned s = SP_WSTATE_STARTING; s < sizeof by_state / sizeof by_state[0]; s++) {
        s_put(o, "sp_workers{state=\"%s\"} %u\n", s_wstate_names[s], by_state[s]);
    }
    s_head(o, "sp_worker_restarts_total", "counter", "Times the broker restarted each worker.");
    for (unsigned w = 1; w <= workers; w++) {
        s_put(o, "sp_worker_restarts_total{worker=\"%u\"} %u\n", w, S_GET(m->wrestarts[w]));
    }
}

static void s_render_files(s_out_t *o, sp_metrics_t *m)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double age;
    s_head(o, "sp_journal_age_seconds", "gauge",
           "Seconds since a journal file was last written (absent without a journal).");
    if (s_journal_age(m->journal_dir, &now, &age)) {
        s_put(o, "sp_journal_age_seconds %.3f\n", age);
    }
    s_head(o, "sp_snapshot_age_seconds", "gauge",
           "Seconds since the last periodic snapshot was saved (absent before the first).");
    if (s_file_age(m->snapshot, &now, &age)) {
        s_put(o, "sp_snapshot_age_seconds %.3f\n", age);
    }
}

char *sp_metrics_render(sp_metrics_t *m, size_t *len)
{
    s_out_t o = {.cap = 16384};
    o.buf = malloc(o.cap);
    if (o.buf == NULL) {
        return NULL;
    }
    o.buf[0] = '\0';
    bool described = atomic_load_explicit(&m->described, memory_order_acquire);
    s_head(&o, "sp_broker_up", "gauge",
           "1 once the broker serves (its first STATS), 0 while it starts.");
    s_put(&o, "sp_broker_up %d\n",
          atomic_load_explicit(&m->stats_taken, memory_order_acquire) > 0 ? 1 : 0);
    if (described) {
        s_head(&o, "sp_broker_info", "gauge", "The instance, its transport and version.");
        s_put(&o, "sp_broker_info{instance=\"%s\",transport=\"%s\",sync=\"%s\",version=\"%s\"} 1\n",
              m->instance, m->transport, m->sync, sp_version());
    }
    s_head(&o, "sp_products", "gauge", "Products in the table.");
    s_put(&o, "sp_products %llu\n", (unsigned long long)S_GET(m->products));
    s_render_orders(&o, m);
    s_render_paths(&o, m);
    s_render_workers(&o, m);
    if (described) {
        s_render_files(&o, m);
    }
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}

/* ---- the address ---- */

int sp_metrics_parse(const char *spec, void *addr, unsigned *addr_len, bool *loopback, char *why,
                     size_t cap)
{
    static const char forms[] = "PORT, HOST:PORT or [IPV6]:PORT, HOST an address, localhost or *";
    char host[SP_TCP_HOST_MAX] = SP_TCP_LOOPBACK;
    const char *port_s = spec;
    const char *colon = strrchr(spec, ':');
    if (colon != NULL) {
        size_t n = (size_t)(colon - spec);
        if (n == 0 || n >= sizeof host) {
            sp_why(why, cap, "--metrics '%s': the host is empty or too long (%s)", spec, forms);
            return SP_E_USAGE;
        }
        memcpy(host, spec, n);
        host[n] = '\0';
        port_s = colon + 1;
    }
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(port_s, &end, 10);
    if (port_s[0] < '0' || port_s[0] > '9' || *end != '\0' || errno != 0 || port > 65535) {
        sp_why(why, cap,
               "--metrics '%s': the port must be a number from 0 to 65535 (0: any free "
               "one)",
               spec);
        return SP_E_USAGE;
    }
    struct sockaddr_storage *ss = addr;
    memset(ss, 0, sizeof *ss);
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        struct sockaddr_in6 *a6 = addr;
        char bare[SP_TCP_HOST_MAX];
        snprintf(bare, sizeof bare, "%.*s", (int)(hl - 2), host + 1);
        if (inet_pton(AF_INET6, bare, &a6->sin6_addr) != 1) {
            sp_why(why, cap, "--metrics '%s': '%s' is not an IPv6 address (%s)", spec, bare, forms);
            return SP_E_USAGE;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *addr_len = sizeof *a6;
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
        return 0;
    }
    struct sockaddr_in *a4 = addr;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *addr_len = sizeof *a4;
    if (strcmp(host, "*") == 0) {
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        *loopback = false;
        return 0;
    }
    const char *v4 = strcmp(host, "localhost") == 0 ? SP_TCP_LOOPBACK : host;
    if (inet_pton(AF_INET, v4, &a4->sin_addr) != 1) {
        sp_why(why, cap, "--metrics '%s': '%s' is not an IPv4 address (%s; names are not resolved)",
               spec, host, forms);
        return SP_E_USAGE;
    }
    *loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    return 0;
}
