/*
 * sp_monitor — feed, snapshots and the two views.
 */
#include "sp_monitor.h"
#include "sp_zmq.h"

#include "sp_console.h"
#include "sp_curve.h"
#include "sp_error.h"
#include "sp_events.h"
#include "sp_instance.h"
#include "sp_mirror.h"
#include "sp_natsfeed.h"
#include "sp_print.h"
#include "sp_signal.h"
#include "sp_table.h"
#include "sp_tcp.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define S_SNAP_MSG_MAX SP_SNAP_MSG_MAX /* the largest message of a snapshot answer */

struct sp_monitor {
    sp_monitor_cfg_t cfg; /* a copy; its strings are the caller's */
    FILE *out;
    sp_table_t *table; /* local instance, read-only; NULL when remote */
    sp_mirror_t *mirror;
    sp_sub_t *sub;
    zsock_t *dealer;       /* snapshot requests (remote or --from-broker) */
    sp_natsfeed_t *bridge; /* --connect nats://: both, through NATS */
    char ep_events[SP_ENDPOINT_MAX];
    char ep_snapshot[SP_ENDPOINT_MAX];
    char server_key[SP_CURVE_KEY_TXT]; /* the broker's CURVE key; empty: no CURVE */
    sp_curve_keys_t curve;             /* ours, when server_key is set */
    uint32_t req;                      /* last snapshot request number */
    bool snap_pending;                 /* a request is out */
    uint64_t snap_progress_ns;
    uint32_t snap_rows;
    sp_console_t *console;
    /* what line mode last reported */
    uint64_t told_gaps;
    uint64_t told_resyncs;
    uint64_t told_deaths;
    uint8_t *buf; /* one event-path message */
    uint8_t *snapbuf;
    sp_monitor_stats_t st; /* filled by sp_monitor_stats */
};

/* --- output helpers ---------------------------------------------------------- */

void sp_monitor_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            fprintf(out, "\\%c", *c);
        } else if (*c < 0x20) {
            fprintf(out, "\\u%04x", *c);
        } else {
            fputc(*c, out);
        }
    }
    fputc('"', out);
}

/* The mirror's table: the same text as `producer --table`, or a JSON array. */
static void s_print_table(FILE *out, bool json, const sp_mirror_t *m)
{
    if (!json) {
        sp_print_table_header(out);
    } else {
        fputc('[', out);
    }
    bool first = true;
    for (uint32_t id = 1; id <= sp_mirror_capacity(m); id++) {
        sp_product_t p;
        uint32_t version;
        if (!sp_mirror_product(m, id, &p, &version)) {
            continue;
        }
        if (!json) {
            sp_print_product(out, &p);
            continue;
        }
        fprintf(out, "%s{\"id\":%u,\"name\":", first ? "" : ",", p.id);
        sp_monitor_json_str(out, p.name);
        fprintf(out, ",\"category\":");
        sp_monitor_json_str(out, p.category);
        fprintf(out,
                ",\"weight_g\":%u,\"price_cents\":%llu,\"expiry\":%u,\"stock\":%u,"
                "\"version\":%u}",
                p.weight_g, (unsigned long long)p.price_cents, p.expiry, p.stock, version);
        first = false;
    }
    if (json) {
        fprintf(out, "]\n");
    }
    (void)fflush(out); /* a reader that went away is not our error */
}

static void s_on_event(void *arg, const sp_event_t *e, bool applied)
{
    sp_monitor_t *mon = arg;
    if (!applied || mon->cfg.quiet || mon->console != NULL) {
        return;
    }
    if (mon->cfg.json) {
        if (mon->cfg.label != NULL) {
            fprintf(mon->out, "{\"shard\":");
            sp_monitor_json_str(mon->out, mon->cfg.label);
            fputc(',', mon->out);
        } else {
            fputc('{', mon->out);
        }
        fprintf(mon->out,
                "\"type\":\"event\",\"publisher\":%u,\"seq\":%llu,\"product\":%u,"
                "\"old\":%u,\"new\":%u,\"version\":%u,\"producer\":%u,\"order\":%llu}\n",
                e->publisher_id, (unsigned long long)e->pub_seq, e->product_id, e->old_stock,
                e->new_stock, e->row_version, e->order_producer, (unsigned long long)e->order_seq);
        return;
    }
    sp_minfo_t info;
    const char *name = sp_mirror_info(mon->mirror, e->product_id, &info) ? info.name : "?";
    bool up = e->new_stock > e->old_stock;
    if (mon->cfg.label != NULL) {
        fprintf(mon->out, "[%s] ", mon->cfg.label);
    }
    fprintf(mon->out, "stock %4u %-24s %6u -> %-6u (%s%u, worker %u, order %u:%llu)\n",
            e->product_id, name, e->old_stock, e->new_stock, up ? "+" : "-",
            up ? e->new_stock - e->old_stock : e->old_stock - e->new_stock, e->publisher_id,
            e->order_producer, (unsigned long long)e->order_seq);
}

static void s_summary(sp_monitor_t *mon, uint64_t now)
{
    const sp_mirror_t *m = mon->mirror;
    const sp_mstate_t *st = sp_mirror_state(m);
    const sp_shopstats_t *ss = sp_mirror_stats(m);
    sp_mrates_t r;
    sp_mirror_rates(m, now, &r);
    unsigned running = 0, workers = (unsigned)ss->workers; /* at most SP_WORKERS_MAX */
    for (unsigned w = 1; w <= workers; w++) {
        running += ss->worker[w].state == SP_WSTATE_RUNNING;
    }
    uint64_t units = sp_mirror_units(m);
    if (mon->cfg.json) {
        fprintf(mon->out,
                "{\"type\":\"summary\",\"orders_per_s\":%.0f,\"orders_per_s_10s\":%.0f,"
                "\"accepted\":%llu,\"out_of_stock\":%llu,\"lat_p50_ns\":%llu,"
                "\"lat_p99_ns\":%llu,\"events\":%llu,\"events_per_s\":%.0f,\"event_seq\":%llu,"
                "\"gaps\":%llu,\"resyncs\":%llu,\"snapshots\":%llu,\"stale\":%s,"
                "\"workers_running\":%u,\"workers\":%u,\"depth_orders\":%llu,"
                "\"drops_invalid\":%llu,\"drops_orders\":%llu,\"drops_results\":%llu,"
                "\"drops_events\":%llu,\"invalid\":%llu,\"units_in_stock\":%llu}\n",
                r.orders_1s, r.orders_10s, (unsigned long long)ss->orders[SP_STATUS_ACCEPTED],
                (unsigned long long)ss->orders[SP_STATUS_OUT_OF_STOCK],
                (unsigned long long)ss->lat_p50_ns, (unsigned long long)ss->lat_p99_ns,
                (unsigned long long)st->events, r.events_1s, (unsigned long long)ss->event_seq,
                (unsigned long long)st->gaps, (unsigned long long)st->resyncs,
                (unsigned long long)st->snapshots, st->stale ? "true" : "false", running, workers,
                (unsigned long long)ss->depth[SP_HOP_ORDERS],
                (unsigned long long)ss->drops[SP_DROP_INVALID],
                (unsigned long long)ss->drops[SP_DROP_ORDERS],
                (unsigned long long)ss->drops[SP_DROP_RESULTS],
                (unsigned long long)ss->drops[SP_DROP_EVENTS], (unsigned long long)st->invalid,
                (unsigned long long)units);
    } else {
        char p50[16] = "-", p99[16] = "-"; /* no orders in the last second */
        if (ss->lat_count > 0) {
            sp_fmt_ns(p50, sizeof p50, ss->lat_p50_ns);
            sp_fmt_ns(p99, sizeof p99, ss->lat_p99_ns);
        }
        fprintf(mon->out,
                "summary: %.0f orders/s (10 s: %.0f/s), accepted %llu, out of stock %llu, "
                "p50 %s p99 %s, events %llu (%.0f/s), seq %llu, gaps %llu, resyncs %llu, "
                "workers %u/%u running, units in stock %llu%s\n",
                r.orders_1s, r.orders_10s, (unsigned long long)ss->orders[SP_STATUS_ACCEPTED],
                (unsigned long long)ss->orders[SP_STATUS_OUT_OF_STOCK], p50, p99,
                (unsigned long long)st->events, r.events_1s, (unsigned long long)ss->event_seq,
                (unsigned long long)st->gaps, (unsigned long long)st->resyncs, running, workers,
                (unsigned long long)units, st->stale ? ", STALE" : "");
    }
    (void)fflush(mon->out); /* a reader that went away is not our error */
}

/* Line mode: one line when a gap is found or a worker's death learned, and
 * one when a snapshot repairs it. */
static void s_tell_state(sp_monitor_t *mon)
{
    const sp_mstate_t *st = sp_mirror_state(mon->mirror);
    if (mon->cfg.label != NULL && !mon->cfg.json &&
        (st->gaps > mon->told_gaps || st->resyncs > mon->told_resyncs ||
         st->deaths > mon->told_deaths)) {
        fprintf(mon->out, "[%s] ", mon->cfg.label);
    }
    if (st->deaths > mon->told_deaths) {
        if (mon->cfg.json) {
            fprintf(mon->out, "{\"type\":\"worker_died\",\"deaths\":%llu}\n",
                    (unsigned long long)st->deaths);
        } else {
            fprintf(mon->out, "STALE: a worker died (it may have left a change without an event); "
                              "resyncing\n");
        }
        mon->told_deaths = st->deaths;
    }
    if (st->gaps > mon->told_gaps) {
        uint64_t missed = st->gaps - mon->told_gaps;
        if (mon->cfg.json) {
            fprintf(mon->out, "{\"type\":\"gap\",\"missed\":%llu,\"gaps\":%llu}\n",
                    (unsigned long long)missed, (unsigned long long)st->gaps);
        } else {
            fprintf(mon->out, "STALE: %llu events missed (%llu in all); resyncing\n",
                    (unsigned long long)missed, (unsigned long long)st->gaps);
        }
        mon->told_gaps = st->gaps;
    }
    if (st->resyncs > mon->told_resyncs) {
        if (mon->cfg.json) {
            fprintf(mon->out, "{\"type\":\"resync\",\"resyncs\":%llu,\"snapshots\":%llu}\n",
                    (unsigned long long)st->resyncs, (unsigned long long)st->snapshots);
        } else {
            fprintf(mon->out, "resynced: fresh snapshot taken, the view is exact again\n");
        }
        mon->told_resyncs = st->resyncs;
    }
}

/* --- snapshots ---------------------------------------------------------------- */

static int s_snap_request(sp_monitor_t *mon, uint64_t now)
{
    uint8_t msg[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(msg, SP_MSG_SNAP_REQ, 0, 0, ++mon->req);
    if (zmq_send(zsock_resolve(mon->dealer), msg, sizeof msg, ZMQ_DONTWAIT) < 0) {
        return -errno;
    }
    mon->snap_pending = true;
    mon->snap_progress_ns = now;
    mon->snap_rows = 0;
    return 0;
}

/* Handles one message of a snapshot answer; returns 0 or a negative code
 * for an answer that cannot be used (*why). */
static int s_snap_message(sp_monitor_t *mon, size_t len, uint64_t now, char *why, size_t cap)
{
    sp_msg_hdr_t h;
    if (sp_wire_check(mon->snapbuf, len, &h) < 0 || h.batch != mon->req || !mon->snap_pending) {
        return 0; /* malformed, or an answer to an earlier request */
    }
    mon->snap_progress_ns = now;
    if (h.kind == SP_MSG_SNAP_BEGIN) {
        uint32_t pid[SP_MIRROR_PUBS] = {0};
        uint64_t seq[SP_MIRROR_PUBS] = {0};
        for (unsigned i = 0; i < h.count; i++) {
            sp_counter_t c;
            sp_wire_get_counter(sp_wire_crec(mon->snapbuf, SP_MSG_SNAP_BEGIN, i), &c);
            if (c.id == SP_CTR_CAPACITY && c.value != sp_mirror_capacity(mon->mirror)) {
                snprintf(why, cap, "the broker's table changed size (%llu rows, we have %u)",
                         (unsigned long long)c.value, sp_mirror_capacity(mon->mirror));
                return SP_E_BAD_LAYOUT;
            }
            if (c.index >= 1 && c.index < SP_MIRROR_PUBS) {
                if (c.id == SP_CTR_W_PID) {
                    pid[c.index] = (uint32_t)c.value;
                } else if (c.id == SP_CTR_W_PUB_SEQ) {
                    seq[c.index] = c.value;
                }
            }
        }
        sp_mirror_snap_begin(mon->mirror, pid, seq);
    } else if (h.kind == SP_MSG_SNAP_ROWS && sp_mirror_state(mon->mirror)->snapshot_running) {
        for (unsigned i = 0; i < h.count; i++) {
            sp_snaprow_t row;
            sp_wire_get_snaprow(sp_wire_crec(mon->snapbuf, SP_MSG_SNAP_ROWS, i), &row);
            sp_mirror_snap_row(mon->mirror, &row, now);
        }
        mon->snap_rows += h.count;
    } else if (h.kind == SP_MSG_SNAP_END && sp_mirror_state(mon->mirror)->snapshot_running) {
        sp_mirror_snap_end(mon->mirror);
        mon->snap_pending = false;
    }
    return 0;
}

static int s_snap_drain(sp_monitor_t *mon, uint64_t now, char *why, size_t cap)
{
    void *raw = zsock_resolve(mon->dealer);
    for (int k = 0; k < SP_MONITOR_FEED_BURST; k++) {
        int n = zmq_recv(raw, mon->snapbuf, S_SNAP_MSG_MAX, ZMQ_DONTWAIT);
        if (n < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        }
        if ((size_t)n > S_SNAP_MSG_MAX) {
            continue;
        }
        int rc = s_snap_message(mon, (size_t)n, now, why, cap);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Takes or asks for a snapshot when the mirror needs one. */
static void s_snap_maybe(sp_monitor_t *mon, uint64_t now)
{
    if (mon->dealer == NULL) {
        if (sp_mirror_wants_snapshot(mon->mirror)) {
            sp_mirror_snap_local(mon->mirror, mon->table, now);
        }
        return;
    }
    if (mon->snap_pending && now - mon->snap_progress_ns > SP_MONITOR_SNAP_MS * SP_NS_PER_MS) {
        mon->snap_pending = false; /* lost or cut short: ask again */
        sp_mirror_invalidate(mon->mirror);
    }
    if (!mon->snap_pending && sp_mirror_wants_snapshot(mon->mirror)) {
        s_snap_request(mon, now);
    }
}

/* --- set-up ----------------------------------------------------------------- */

static int s_parse_connect(sp_monitor_t *mon, const char *url, char *why, size_t cap)
{
    sp_tcp_addr_t a;
    if (sp_tcp_parse("--connect", url, &a, why, cap) < 0) {
        return SP_E_USAGE;
    }
    sp_tcp_endpoint(&a, false, SP_TCP_EVENTS, mon->ep_events, sizeof mon->ep_events);
    sp_tcp_endpoint(&a, false, SP_TCP_SNAPSHOT, mon->ep_snapshot, sizeof mon->ep_snapshot);
    return 0;
}

/* Our CURVE keys when the broker's endpoints are CURVE servers: a remote
 * monitor (header_key NULL) learns the broker's key from --server-cert, a
 * local one from the table header ("" without CURVE; a --server-cert given
 * then must agree with it). */
static int s_curve(sp_monitor_t *mon, const char *header_key, char *why, size_t cap)
{
    const sp_monitor_cfg_t *cfg = &mon->cfg;
    if (cfg->server_cert != NULL) {
        char key[SP_CURVE_KEY_TXT];
        int rc = sp_curve_load_public(cfg->server_cert, key, why, cap);
        if (rc < 0) {
            return rc;
        }
        if (header_key != NULL && strcmp(header_key, key) != 0) {
            snprintf(why, cap,
                     "--server-cert %s is not the key of instance '%s' (its table says %s)",
                     cfg->server_cert, cfg->instance, header_key[0] ? header_key : "no CURVE");
            return SP_E_USAGE;
        }
        snprintf(mon->server_key, sizeof mon->server_key, "%s", key);
    } else if (header_key != NULL) {
        snprintf(mon->server_key, sizeof mon->server_key, "%s", header_key);
    } else if (cfg->cert != NULL) {
        snprintf(why, cap,
                 "--cert needs --server-cert FILE too: the broker's public certificate (the "
                 "PATH its `broker --keygen PATH` wrote)");
        return SP_E_USAGE;
    }
    if (mon->server_key[0] == '\0') {
        return 0;
    }
    if (cfg->cert == NULL) {
        snprintf(why, cap,
                 "the broker's endpoints use CURVE: give --cert FILE, a certificate made with "
                 "`broker --keygen FILE` whose public half FILE is in the broker's "
                 "--curve-clients directory");
        return SP_E_USAGE;
    }
    return sp_curve_load_secret(cfg->cert, &mon->curve, why, cap);
}

static int s_open_dealer(sp_monitor_t *mon, char *why, size_t cap)
{
    mon->dealer = zsock_new(ZMQ_DEALER);
    if (mon->dealer == NULL) {
        return -ENOMEM;
    }
    sp_zmq_set_max_frame(mon->dealer, S_SNAP_MSG_MAX);
    sp_zmq_endpoint_opts(mon->dealer, mon->ep_snapshot);
    if (mon->server_key[0] != '\0') {
        sp_curve_set_client(mon->dealer, &mon->curve, mon->server_key);
    }
    zsock_set_linger(mon->dealer, 0);
    if (zsock_connect(mon->dealer, "%s", mon->ep_snapshot) < 0) {
        snprintf(why, cap, "cannot connect to the snapshot service %s", mon->ep_snapshot);
        return -ENOTCONN;
    }
    return 0;
}

/* The capacity a STATS message announces, or 0. */
static uint32_t s_stats_capacity(const uint8_t *msg, size_t len)
{
    static sp_shopstats_t stats;
    memset(&stats, 0, sizeof stats);
    if (sp_shopstats_decode(&stats, msg, len) < 0 || stats.capacity > SP_PRODUCT_ID_MAX) {
        return 0;
    }
    return (uint32_t)stats.capacity;
}

/* Waits for the first message on the event path: it proves our subscription
 * is in place, so a snapshot taken after it misses nothing.  A remote monitor
 * waits for STATS, which also tells it the table's size. */
static int s_first_message(sp_monitor_t *mon, char *why, size_t cap)
{
    uint64_t deadline = sp_now_ns() + (uint64_t)mon->cfg.wait_ms * SP_NS_PER_MS;
    for (;;) {
        uint64_t now = sp_now_ns();
        if (sp_signal_stopping()) {
            return SP_E_STOPPED;
        }
        if (now >= deadline) {
            const char *hint = "";
            if (mon->server_key[0] != '\0') {
                hint = " (with CURVE: is the public half of --cert in the broker's "
                       "--curve-clients directory, and --server-cert the broker's?)";
            } else if (mon->cfg.connect != NULL) {
                hint = " (a broker with CURVE needs --server-cert FILE and --cert FILE)";
            }
            if (mon->bridge != NULL) {
                snprintf(why, cap,
                         "nothing arrived from instance '%s' through the NATS servers within %d "
                         "ms (is its broker running there, with --transport nats?)",
                         mon->cfg.instance, mon->cfg.wait_ms);
            } else {
                snprintf(why, cap, "nothing arrived from the broker at %s within %d ms%s",
                         mon->ep_events, mon->cfg.wait_ms, hint);
            }
            return SP_E_TIMEOUT;
        }
        int n = sp_sub_recv(mon->sub, mon->buf, SP_EVENTS_MSG_MAX, SP_MONITOR_POLL_MS);
        if (n == SP_E_TIMEOUT || n == -EINTR || n == -EMSGSIZE) {
            continue;
        }
        if (n < 0) {
            snprintf(why, cap, "event feed failed: %s", sp_strerror(n));
            return n;
        }
        if (mon->mirror == NULL) {
            uint32_t capacity = s_stats_capacity(mon->buf, (size_t)n);
            if (capacity == 0) {
                continue; /* covered by the snapshot we are about to ask for */
            }
            mon->mirror = sp_mirror_new(capacity, NULL);
            if (mon->mirror == NULL) {
                return -ENOMEM;
            }
        }
        sp_mirror_feed(mon->mirror, mon->buf, (size_t)n, now, s_on_event, mon);
        return 0;
    }
}

static int s_setup(sp_monitor_t *mon, char *why, size_t cap)
{
    const sp_monitor_cfg_t *cfg = &mon->cfg;
    if (cfg->connect != NULL && strncmp(cfg->connect, "nats://", strlen("nats://")) == 0) {
        /* the broker's event path and snapshots through the NATS servers */
        if (cfg->cert != NULL || cfg->server_cert != NULL) {
            snprintf(why, cap,
                     "--cert and --server-cert are for a broker's CURVE endpoints (--connect "
                     "tcp://); NATS servers take --nats-auth and --nats-ca");
            return SP_E_USAGE;
        }
        int rc = sp_natsfeed_bridge(&mon->bridge, cfg->connect, cfg->instance, mon->ep_events,
                                    mon->ep_snapshot, sizeof mon->ep_events, why, cap);
        if (rc < 0) {
            return rc;
        }
    } else if (cfg->connect != NULL) {
        int rc = s_parse_connect(mon, cfg->connect, why, cap);
        if (rc == 0) {
            rc = s_curve(mon, NULL, why, cap);
        }
        if (rc < 0) {
            return rc;
        }
    } else {
        sp_names_t names;
        if (sp_names_init(&names, cfg->instance, NULL) < 0) {
            snprintf(why, cap, "bad instance name '%s'", cfg->instance);
            return SP_E_USAGE;
        }
        int rc = sp_table_open_ready(&mon->table, names.table, false, cfg->wait_ms);
        if (rc == -EACCES) {
            struct stat st;
            char path[SP_PATH_MAX + 16], user[64] = "another user";
            snprintf(path, sizeof path, "/dev/shm%s", names.table);
            if (stat(path, &st) == 0) {
                sp_user_name(st.st_uid, user, sizeof user);
            }
            snprintf(why, cap,
                     "instance '%s' runs as user %s, and its table %s is readable by that user "
                     "only: run the monitor as %s",
                     cfg->instance, user, path, user);
            return rc;
        }
        if (rc < 0) {
            snprintf(why, cap,
                     "no broker runs instance '%s' on this host (%s after %d ms): start one with "
                     "'broker --instance %s', or follow one elsewhere with --connect",
                     cfg->instance, sp_strerror(rc), cfg->wait_ms, cfg->instance);
            return rc;
        }
        sp_table_hdr_t *h = sp_table_hdr(mon->table);
        pid_t broker = atomic_load(&h->broker_pid);
        if (broker > 0 && !sp_pid_alive(broker)) {
            /* its table outlives it: say so rather than show it as live */
            snprintf(why, cap,
                     "the broker of instance '%s' (pid %d) is gone: /dev/shm%s is the table it "
                     "left, which its next start takes up ('broker --instance %s' again)",
                     cfg->instance, (int)broker, names.table, cfg->instance);
            return -ESRCH;
        }
        snprintf(mon->ep_events, sizeof mon->ep_events, "%s", h->ep_events);
        snprintf(mon->ep_snapshot, sizeof mon->ep_snapshot, "%s", h->ep_snapshot);
        char key[SP_CURVE_KEY_TXT];
        snprintf(key, sizeof key, "%s", h->curve_server_key);
        rc = cfg->once && !cfg->from_broker ? 0 : s_curve(mon, key, why, cap);
        if (rc < 0) {
            return rc;
        }
        if (!cfg->from_broker) {
            mon->mirror = sp_mirror_new(sp_table_capacity(mon->table), sp_table_rows(mon->table));
            if (mon->mirror == NULL) {
                return -ENOMEM;
            }
            if (cfg->once) {
                sp_mirror_snap_local(mon->mirror, mon->table, sp_now_ns());
                return 0;
            }
        }
    }
    sp_zmq_setup();
    if (cfg->connect != NULL || cfg->from_broker) {
        int rc = s_open_dealer(mon, why, cap);
        if (rc < 0) {
            return rc;
        }
    }
    mon->sub = sp_sub_new(mon->ep_events, &mon->curve, mon->server_key);
    if (mon->sub == NULL) {
        snprintf(why, cap, "cannot subscribe to %s", mon->ep_events);
        return -ENOTCONN;
    }
    return s_first_message(mon, why, cap);
}

/* --- the loop --------------------------------------------------------------- */

static int s_feed(sp_monitor_t *mon, uint64_t now)
{
    for (int k = 0; k < SP_MONITOR_FEED_BURST; k++) {
        int n = sp_sub_recv(mon->sub, mon->buf, SP_EVENTS_MSG_MAX, 0);
        if (n == SP_E_TIMEOUT || n == -EINTR || n == -EAGAIN) {
            return 0;
        }
        if (n == -EMSGSIZE) {
            continue; /* counted by nobody but harmless: not ours */
        }
        if (n < 0) {
            return n;
        }
        sp_mirror_feed(mon->mirror, mon->buf, (size_t)n, now, s_on_event, mon);
    }
    return 0;
}

static int s_loop(sp_monitor_t *mon, char *why, size_t cap)
{
    const sp_monitor_cfg_t *cfg = &mon->cfg;
    int summary_ms = cfg->summary_ms > 0 ? cfg->summary_ms : SP_MONITOR_SUMMARY_MS;
    uint64_t now = sp_now_ns();
    uint64_t next_summary = now + (uint64_t)summary_ms * SP_NS_PER_MS;
    uint64_t next_frame = now;
    uint64_t ended_at = 0;
    int rc = 0;
    while (!sp_signal_stopping()) {
        zmq_pollitem_t items[3];
        int n = 0;
        items[n++] = (zmq_pollitem_t){.socket = sp_sub_raw(mon->sub), .events = ZMQ_POLLIN};
        if (mon->dealer != NULL) {
            items[n++] =
                (zmq_pollitem_t){.socket = zsock_resolve(mon->dealer), .events = ZMQ_POLLIN};
        }
        if (mon->console != NULL) {
            items[n++] = (zmq_pollitem_t){.fd = sp_console_fd(mon->console), .events = ZMQ_POLLIN};
        }
        now = sp_now_ns();
        uint64_t next = mon->console != NULL ? next_frame : next_summary;
        long wait = next > now ? (long)((next - now) / SP_NS_PER_MS) : 0;
        if (wait > SP_MONITOR_POLL_MS) {
            wait = SP_MONITOR_POLL_MS;
        }
        if (zmq_poll(items, n, wait) < 0 && errno != EINTR) {
            rc = -errno;
            snprintf(why, cap, "poll failed: %s", sp_strerror(rc));
            break;
        }
        now = sp_now_ns();
        rc = s_feed(mon, now);
        if (rc == 0 && mon->dealer != NULL) {
            rc = s_snap_drain(mon, now, why, cap);
        }
        if (rc < 0) {
            if (why[0] == '\0') {
                snprintf(why, cap, "event feed failed: %s", sp_strerror(rc));
            }
            break;
        }
        const sp_mstate_t *st = sp_mirror_state(mon->mirror);
        if (!st->eos) {
            s_snap_maybe(mon, now);
        } else if (st->stale && mon->table != NULL) {
            /* the mapping outlives the broker: one last local look */
            sp_mirror_snap_local(mon->mirror, mon->table, now);
        }
        if (mon->console != NULL) {
            if (!sp_console_keys(mon->console, mon->mirror, now)) {
                break;
            }
            if (now >= next_frame) {
                sp_console_draw(mon->console, mon->mirror, now);
                next_frame = now + SP_CONSOLE_FRAME_MS * SP_NS_PER_MS;
            }
            if (st->eos && ended_at == 0) {
                ended_at = now;
            }
            if (ended_at != 0 && now - ended_at > SP_MONITOR_LINGER_MS * SP_NS_PER_MS) {
                break;
            }
            continue;
        }
        s_tell_state(mon);
        if (now >= next_summary || st->eos) {
            s_summary(mon, now);
            next_summary = now + (uint64_t)summary_ms * SP_NS_PER_MS;
        }
        if (st->eos) {
            break;
        }
    }
    return rc;
}

int sp_monitor_new(sp_monitor_t **out_p, const sp_monitor_cfg_t *cfg, FILE *out, char *why,
                   size_t cap)
{
    *out_p = NULL;
    sp_monitor_t *mon = calloc(1, sizeof *mon);
    if (mon == NULL) {
        snprintf(why, cap, "out of memory");
        return -ENOMEM;
    }
    mon->cfg = *cfg;
    mon->out = out;
    mon->buf = malloc(SP_EVENTS_MSG_MAX);
    mon->snapbuf = malloc(S_SNAP_MSG_MAX);
    int rc = -ENOMEM;
    if (mon->buf == NULL || mon->snapbuf == NULL) {
        snprintf(why, cap, "out of memory");
    } else {
        rc = s_setup(mon, why, cap);
    }
    if (rc < 0) {
        sp_monitor_destroy(&mon);
        return rc;
    }
    *out_p = mon;
    return 0;
}

int sp_monitor_step(sp_monitor_t *mon, int wait_ms, char *why, size_t cap)
{
    zmq_pollitem_t items[2];
    int n = 0;
    items[n++] = (zmq_pollitem_t){.socket = sp_sub_raw(mon->sub), .events = ZMQ_POLLIN};
    if (mon->dealer != NULL) {
        items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(mon->dealer), .events = ZMQ_POLLIN};
    }
    if (zmq_poll(items, n, wait_ms) < 0 && errno != EINTR) {
        int rc = -errno;
        snprintf(why, cap, "poll failed: %s", sp_strerror(rc));
        return rc;
    }
    uint64_t now = sp_now_ns();
    int rc = s_feed(mon, now);
    if (rc == 0 && mon->dealer != NULL) {
        rc = s_snap_drain(mon, now, why, cap);
    }
    if (rc < 0) {
        if (why[0] == '\0') {
            snprintf(why, cap, "event feed failed: %s", sp_strerror(rc));
        }
        return rc;
    }
    const sp_mstate_t *st = sp_mirror_state(mon->mirror);
    if (!st->eos) {
        s_snap_maybe(mon, now);
    } else if (st->stale && mon->table != NULL) {
        sp_mirror_snap_local(mon->mirror, mon->table, now);
    }
    s_tell_state(mon);
    return 0;
}

const struct sp_mirror *sp_monitor_mirror(const sp_monitor_t *mon)
{
    return mon->mirror;
}

static int s_once_remote(sp_monitor_t *mon, char *why, size_t cap);

int sp_monitor_settle(sp_monitor_t *mon, char *why, size_t cap)
{
    return mon->dealer != NULL ? s_once_remote(mon, why, cap) : 0;
}

/* Remote --once: waits for one whole snapshot. */
static int s_once_remote(sp_monitor_t *mon, char *why, size_t cap)
{
    const sp_monitor_cfg_t *cfg = &mon->cfg;
    uint64_t deadline = sp_now_ns() + (uint64_t)cfg->wait_ms * SP_NS_PER_MS;
    int rc = 0;
    s_snap_maybe(mon, sp_now_ns());
    while (rc == 0 && sp_mirror_state(mon->mirror)->stale && !sp_signal_stopping()) {
        if (sp_now_ns() > deadline) {
            if (mon->bridge != NULL) {
                snprintf(why, cap,
                         "no snapshot of instance '%s' through the NATS servers within %d ms "
                         "(is its broker running there, with --transport nats?)",
                         cfg->instance, cfg->wait_ms);
            } else {
                snprintf(why, cap, "no snapshot from %s within %d ms", mon->ep_snapshot,
                         cfg->wait_ms);
            }
            return SP_E_TIMEOUT;
        }
        zmq_pollitem_t item = {.socket = zsock_resolve(mon->dealer), .events = ZMQ_POLLIN};
        zmq_poll(&item, 1, SP_MONITOR_POLL_MS);
        rc = s_snap_drain(mon, sp_now_ns(), why, cap);
        s_snap_maybe(mon, sp_now_ns());
    }
    return rc;
}

int sp_monitor_run(sp_monitor_t *mon, char *why, size_t cap)
{
    const sp_monitor_cfg_t *cfg = &mon->cfg;
    FILE *out = mon->out;
    int rc = 0;
    if (cfg->once) {
        rc = mon->dealer != NULL ? s_once_remote(mon, why, cap) : 0;
        if (rc == 0) {
            s_print_table(out, cfg->json, mon->mirror);
        }
        return rc;
    }
    if (cfg->console) {
        /* (never a nats:// list: its URLs may carry a password) */
        sp_console_cfg_t cc = {.title = cfg->connect && mon->bridge == NULL ? cfg->connect
                                                                            : cfg->instance,
                               .low_stock = cfg->low_stock};
        rc = sp_console_open(&mon->console, &cc);
        if (rc < 0) {
            snprintf(why, cap, "cannot open the full-screen console: %s (try --plain)",
                     sp_strerror(rc));
            return rc;
        }
    }
    rc = s_loop(mon, why, cap);
    sp_console_close(&mon->console);
    if (rc == 0 && !cfg->json && sp_mirror_state(mon->mirror)->eos && !cfg->console) {
        fprintf(out, "end of stream: the broker stopped\n");
    }
    if (rc == 0 && cfg->final_table) {
        s_print_table(out, cfg->json, mon->mirror);
    }
    return rc;
}

const sp_monitor_stats_t *sp_monitor_stats(sp_monitor_t *mon)
{
    sp_monitor_stats_t *st = &mon->st;
    memset(st, 0, sizeof *st);
    if (mon->mirror != NULL) {
        const sp_mstate_t *ms = sp_mirror_state(mon->mirror);
        st->events = ms->events;
        st->gaps = ms->gaps;
        st->resyncs = ms->resyncs;
        st->snapshots = ms->snapshots;
        st->heartbeats = ms->heartbeats;
        st->invalid = ms->invalid;
        st->eos = ms->eos;
        st->stale = ms->stale;
    }
    return st;
}

void sp_monitor_destroy(sp_monitor_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_monitor_t *mon = *self_p;
    sp_console_close(&mon->console);
    sp_sub_destroy(&mon->sub);
    zsock_destroy(&mon->dealer);
    sp_natsfeed_stop(&mon->bridge);
    sp_mirror_destroy(&mon->mirror);
    sp_table_close(&mon->table);
    sp_curve_wipe(&mon->curve);
    free(mon->buf);
    free(mon->snapbuf);
    free(mon);
    *self_p = NULL;
}
