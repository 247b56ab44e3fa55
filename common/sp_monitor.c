/*
 * sp_monitor — event feed to lines.
 */
#include "sp_monitor.h"

#include "sp_error.h"
#include "sp_events.h"
#include "sp_instance.h"
#include "sp_producer.h"
#include "sp_signal.h"
#include "sp_table.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <errno.h>
#include <string.h>

#define SP_MON_PUBLISHERS (SP_WORKERS_MAX + 1) /* workers 1..64 and the broker (0) */

typedef struct {
    uint64_t last_seq;
    uint64_t last_seen_ns;
    uint32_t state;
} sp_mpub_t;

static void s_print_json_table(FILE *out, sp_table_t *t)
{
    uint32_t cap = sp_table_capacity(t);
    fprintf(out, "[");
    bool first = true;
    for (uint32_t id = 1; id <= cap; id++) {
        sp_product_t p;
        uint32_t version;
        if (sp_table_read(t, id, &p, &version) < 0) {
            continue;
        }
        /* names are validated UTF-8 without control characters or quotes
         * needing more than \" and \\ escapes */
        fprintf(out, "%s{\"id\":%u,\"name\":\"", first ? "" : ",", p.id);
        for (const char *c = p.name; *c; c++) {
            fprintf(out, (*c == '"' || *c == '\\') ? "\\%c" : "%c", *c);
        }
        fprintf(out, "\",\"category\":\"");
        for (const char *c = p.category; *c; c++) {
            fprintf(out, (*c == '"' || *c == '\\') ? "\\%c" : "%c", *c);
        }
        fprintf(out,
                "\",\"weight_g\":%u,\"price_cents\":%llu,\"expiry\":%u,\"stock\":%u,"
                "\"version\":%u}",
                p.weight_g, (unsigned long long)p.price_cents, p.expiry, p.stock, version);
        first = false;
    }
    fprintf(out, "]\n");
}

static void s_event_line(FILE *out, bool json, sp_table_t *t, const sp_event_t *e)
{
    const sp_row_t *r = sp_table_row(t, e->product_id);
    const char *name = r ? r->name : "?";
    if (json) {
        fprintf(out,
                "{\"type\":\"event\",\"publisher\":%u,\"seq\":%llu,\"product\":%u,"
                "\"old\":%u,\"new\":%u,\"version\":%u,\"producer\":%u,\"order\":%llu}\n",
                e->publisher_id, (unsigned long long)e->pub_seq, e->product_id, e->old_stock,
                e->new_stock, e->row_version, e->order_producer, (unsigned long long)e->order_seq);
    } else {
        fprintf(
            out, "stock %4u %-24s %6u -> %-6u (%s%u, worker %u, order %u:%llu)\n", e->product_id,
            name, e->old_stock, e->new_stock, e->new_stock > e->old_stock ? "+" : "-",
            e->new_stock > e->old_stock ? e->new_stock - e->old_stock : e->old_stock - e->new_stock,
            e->publisher_id, e->order_producer, (unsigned long long)e->order_seq);
    }
}

static void s_track(sp_mpub_t *p, sp_monitor_stats_t *st, uint64_t first, uint64_t last)
{
    if (p->last_seen_ns == 0) {
        p->last_seq = first - 1; /* we joined late: counting starts here */
    } else if (first == 1) {
        p->last_seq = 0; /* a (re)started publisher */
    }
    if (first > p->last_seq + 1) {
        st->gaps += first - p->last_seq - 1;
    }
    if (last > p->last_seq) {
        p->last_seq = last;
    }
}

static void s_summary(FILE *out, bool json, const sp_monitor_stats_t *st, uint64_t events_1s,
                      const sp_mpub_t *pubs, uint64_t now, sp_table_t *t)
{
    unsigned alive = 0, known = 0;
    for (int i = 1; i < SP_MON_PUBLISHERS; i++) {
        if (pubs[i].last_seen_ns != 0) {
            known++;
            alive += now - pubs[i].last_seen_ns < 4 * SP_MONITOR_SUMMARY_MS * SP_NS_PER_MS &&
                     pubs[i].state == 1;
        }
    }
    uint64_t units = 0;
    uint32_t cap = sp_table_capacity(t);
    for (uint32_t id = 1; id <= cap; id++) {
        const sp_row_t *r = sp_table_row(t, id);
        if (r != NULL) {
            units += SP_SV_STOCK(atomic_load(&r->sv));
        }
    }
    if (json) {
        fprintf(out,
                "{\"type\":\"summary\",\"events\":%llu,\"events_per_s\":%llu,\"gaps\":%llu,"
                "\"workers_alive\":%u,\"workers_seen\":%u,\"units_in_stock\":%llu}\n",
                (unsigned long long)st->events, (unsigned long long)events_1s,
                (unsigned long long)st->gaps, alive, known, (unsigned long long)units);
    } else {
        fprintf(out,
                "summary: %llu events (%llu/s), gaps %llu, workers alive %u/%u, units in "
                "stock %llu\n",
                (unsigned long long)st->events, (unsigned long long)events_1s,
                (unsigned long long)st->gaps, alive, known, (unsigned long long)units);
    }
    fflush(out);
}

int sp_monitor_run(const sp_monitor_cfg_t *cfg, FILE *out, sp_monitor_stats_t *st, char *why,
                   size_t cap)
{
    memset(st, 0, sizeof *st);
    sp_names_t names;
    if (sp_names_init(&names, cfg->instance, NULL) < 0) {
        snprintf(why, cap, "bad instance name '%s'", cfg->instance);
        return SP_E_USAGE;
    }
    sp_table_t *t = NULL;
    int rc = sp_table_open_ready(&t, names.table, false, cfg->wait_ms);
    if (rc < 0) {
        snprintf(why, cap, "instance '%s' is not running (%s)", cfg->instance, sp_strerror(rc));
        return rc;
    }
    if (cfg->once) {
        if (cfg->json) {
            s_print_json_table(out, t);
        } else {
            sp_print_table(out, t, UINT32_MAX);
        }
        sp_table_close(&t);
        return 0;
    }
    sp_sub_t *sub = sp_sub_new(sp_table_hdr(t)->ep_events);
    if (sub == NULL) {
        snprintf(why, cap, "cannot subscribe to %s", sp_table_hdr(t)->ep_events);
        sp_table_close(&t);
        return -ENOTCONN;
    }
    static uint8_t buf[SP_EVENTS_MSG_MAX];
    sp_mpub_t pubs[SP_MON_PUBLISHERS];
    memset(pubs, 0, sizeof pubs);
    int summary_ms = cfg->summary_ms > 0 ? cfg->summary_ms : SP_MONITOR_SUMMARY_MS;
    uint64_t next_summary = sp_now_ns() + (uint64_t)summary_ms * SP_NS_PER_MS;
    uint64_t events_at_last = 0;
    while (!sp_signal_stopping() && !st->eos) {
        int n = sp_sub_recv(sub, buf, sizeof buf, SP_MONITOR_POLL_MS);
        uint64_t now = sp_now_ns();
        if (n >= 0) {
            sp_msg_hdr_t h;
            if (sp_wire_check(buf, (size_t)n, &h) < 0 || h.sender >= SP_MON_PUBLISHERS) {
                st->invalid++;
            } else if (h.kind == SP_MSG_EVENTS && h.count > 0) {
                sp_mpub_t *p = &pubs[h.sender];
                sp_event_t first, e;
                sp_wire_get_event(sp_wire_crec(buf, SP_MSG_EVENTS, 0), &first);
                for (unsigned i = 0; i < h.count; i++) {
                    sp_wire_get_event(sp_wire_crec(buf, SP_MSG_EVENTS, i), &e);
                    if (!cfg->quiet) {
                        s_event_line(out, cfg->json, t, &e);
                    }
                }
                s_track(p, st, first.pub_seq, e.pub_seq);
                p->last_seen_ns = now;
                p->state = SP_PUB_RUNNING;
                st->events += h.count;
            } else if (h.kind == SP_MSG_HEARTBEAT && h.count == 1) {
                sp_heartbeat_t hb;
                sp_wire_get_heartbeat(sp_wire_crec(buf, SP_MSG_HEARTBEAT, 0), &hb);
                sp_mpub_t *p = &pubs[h.sender];
                if (hb.pub_seq > p->last_seq && p->last_seen_ns != 0 && h.sender != 0) {
                    st->gaps += hb.pub_seq - p->last_seq; /* events we never saw */
                    p->last_seq = hb.pub_seq;
                }
                p->last_seen_ns = now;
                p->state = hb.state;
                st->heartbeats++;
                if (h.sender == 0 && hb.state == SP_PUB_STOPPING) {
                    st->eos = true; /* the broker's goodbye, if its EOS was lost */
                }
            } else if (h.kind == SP_MSG_EOS && h.sender == 0) {
                st->eos = true;
            }
        } else if (n != SP_E_TIMEOUT && n != -EINTR) {
            snprintf(why, cap, "event feed failed: %s", sp_strerror(n));
            rc = n;
            break;
        }
        if (now >= next_summary || st->eos) {
            s_summary(out, cfg->json, st, st->events - events_at_last, pubs, now, t);
            events_at_last = st->events;
            next_summary = now + (uint64_t)summary_ms * SP_NS_PER_MS;
        }
    }
    if (st->eos && !cfg->json) {
        fprintf(out, "end of stream: the broker stopped\n");
    }
    sp_sub_destroy(&sub);
    sp_table_close(&t);
    return rc;
}
