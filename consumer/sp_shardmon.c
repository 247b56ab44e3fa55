/*
 * sp_shardmon — the merged view of a sharded shop (sp_shardmon.h).
 */
#include "sp_shardmon.h"

#include "sp_console.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_mirror.h"
#include "sp_print.h"
#include "sp_signal.h"
#include "sp_time.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(SP_SHARDMON_MAX <= SP_MIRROR_SHARDS_MAX, "a merged mirror holds every shard");
_Static_assert(SP_SHARDMON_MAX <= SP_CONSOLE_SHARDS_MAX, "the console lists every shard");

/* a turn of the full-screen view: every shard's feed, then the keys */
#define S_CONSOLE_TURN_MS 20

struct sp_shardmon {
    sp_monitor_cfg_t cfg;
    FILE *out;
    FILE *sink; /* the shards' own lines under the full-screen view: nowhere */
    char title[SP_SHARDMON_MAX * (SP_INSTANCE_NAME_MAX + 1)];
    unsigned n;
    char name[SP_SHARDMON_MAX][SP_INSTANCE_NAME_MAX + 1];
    sp_monitor_t *mon[SP_SHARDMON_MAX];
};

int sp_shardmon_new(sp_shardmon_t **out, const sp_monitor_cfg_t *cfg, const char *list, FILE *fp,
                    char *why, size_t cap)
{
    *out = NULL;
    sp_shardmon_t *self = calloc(1, sizeof *self);
    if (self == NULL) {
        snprintf(why, cap, "out of memory");
        return -ENOMEM;
    }
    self->cfg = *cfg;
    self->out = fp;
    snprintf(self->title, sizeof self->title, "%s", list);
    int rc = sp_instance_list(list, self->name, SP_SHARDMON_MAX, &self->n, why, cap);
    if (rc == 0 && cfg->console) {
        self->sink = fopen("/dev/null", "w");
        if (self->sink == NULL) {
            rc = -errno;
            snprintf(why, cap, "cannot open /dev/null: %s", sp_strerror(rc));
        }
    }
    for (unsigned i = 0; rc == 0 && i < self->n; i++) {
        sp_monitor_cfg_t mc = *cfg;
        mc.instance = self->name[i];
        mc.label = self->name[i];
        mc.console = false;
        mc.final_table = false;
        mc.quiet |= cfg->console;
        char inner[384] = "";
        rc = sp_monitor_new(&self->mon[i], &mc, self->sink ? self->sink : fp, inner, sizeof inner);
        if (rc < 0) {
            snprintf(why, cap, "shard '%s': %s", self->name[i], inner);
        }
    }
    if (rc < 0) {
        sp_shardmon_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

sp_shard_health_t sp_shardmon_health(const sp_shardmon_t *self, unsigned i)
{
    const sp_mirror_t *m = sp_monitor_mirror(self->mon[i]);
    const sp_mstate_t *st = sp_mirror_state(m);
    if (st->eos) {
        return SP_SHARD_ENDED;
    }
    if (st->stale) {
        return SP_SHARD_STALE;
    }
    if (self->cfg.once) {
        return SP_SHARD_UP; /* a look at the table: no feed to hear the broker on */
    }
    /* the broker speaks ten times a second (STATS) and beats its heart */
    uint64_t seen = sp_mirror_pub(m, 0)->last_seen_ns;
    const sp_shopstats_t *ss = sp_mirror_stats(m);
    if (ss->valid && ss->received_ns > seen) {
        seen = ss->received_ns;
    }
    uint64_t now = sp_now_ns();
    if (seen == 0 || now - seen > (uint64_t)SP_MIRROR_SILENT_MS * SP_NS_PER_MS) {
        return SP_SHARD_SILENT;
    }
    return SP_SHARD_UP;
}

const char *sp_shard_health_name(sp_shard_health_t h)
{
    static const char *const names[] = {"up", "stale", "broker silent", "ended"};
    return (unsigned)h < sizeof names / sizeof names[0] ? names[h] : "?";
}

/* Shard i's row of product `id`, when that shard has it (known stock). */
static bool s_row(const sp_shardmon_t *self, unsigned i, uint32_t id, sp_product_t *p,
                  uint32_t *version)
{
    const sp_mirror_t *m = sp_monitor_mirror(self->mon[i]);
    const sp_mrow_t *r = sp_mirror_row(m, id);
    return r != NULL && r->present && sp_mirror_product(m, id, p, version);
}

/* The shards' rows in id order (the same text as `producer --table`, or one
 * JSON array whose rows name their shard); a product more than one shard
 * has is named on a line of its own, "CLAIMED TWICE" (text only). */
static void s_print_table(sp_shardmon_t *self)
{
    FILE *out = self->out;
    bool json = self->cfg.json;
    uint32_t top = 0;
    for (unsigned i = 0; i < self->n; i++) {
        uint32_t c = sp_mirror_capacity(sp_monitor_mirror(self->mon[i]));
        top = c > top ? c : top;
    }
    if (json) {
        fputc('[', out);
    } else {
        sp_print_table_header(out);
    }
    bool first = true;
    for (uint32_t id = 1; id <= top; id++) {
        unsigned owners = 0;
        for (unsigned i = 0; i < self->n; i++) {
            sp_product_t p;
            uint32_t version;
            if (!s_row(self, i, id, &p, &version)) {
                continue;
            }
            if (++owners > 1 && !json) {
                fprintf(out, "product %u is also in shard %s: CLAIMED TWICE\n", id, self->name[i]);
                continue;
            }
            if (!json) {
                sp_print_product(out, &p);
                continue;
            }
            fprintf(out, "%s{\"shard\":", first ? "" : ",");
            sp_monitor_json_str(out, self->name[i]);
            fprintf(out, ",\"id\":%u,\"name\":", p.id);
            sp_monitor_json_str(out, p.name);
            fprintf(out, ",\"category\":");
            sp_monitor_json_str(out, p.category);
            fprintf(out,
                    ",\"weight_g\":%u,\"price_cents\":%llu,\"expiry\":%u,\"stock\":%u,"
                    "\"version\":%u}",
                    p.weight_g, (unsigned long long)p.price_cents, p.expiry, p.stock, version);
            first = false;
        }
    }
    if (json) {
        fprintf(out, "]\n");
    }
    (void)fflush(out);
}

/* The ids shard i has, lowest and highest, and how many. */
static uint32_t s_span(const sp_shardmon_t *self, unsigned i, uint32_t *lo, uint32_t *hi)
{
    const sp_mirror_t *m = sp_monitor_mirror(self->mon[i]);
    uint32_t n = 0;
    *lo = *hi = 0;
    for (uint32_t id = 1; id <= sp_mirror_capacity(m); id++) {
        const sp_mrow_t *r = sp_mirror_row(m, id);
        if (r != NULL && r->present) {
            *lo = n == 0 ? id : *lo;
            *hi = id;
            n++;
        }
    }
    return n;
}

/* One line per shard (--once text), or one summary line with every shard
 * in it (line mode and JSON). */
static void s_health(sp_shardmon_t *self, bool summary)
{
    FILE *out = self->out;
    uint64_t units = 0, events = 0, accepted = 0, oos = 0;
    for (unsigned i = 0; i < self->n; i++) {
        const sp_mirror_t *m = sp_monitor_mirror(self->mon[i]);
        units += sp_mirror_units(m);
        events += sp_mirror_state(m)->events;
        accepted += sp_mirror_stats(m)->orders[SP_STATUS_ACCEPTED];
        oos += sp_mirror_stats(m)->orders[SP_STATUS_OUT_OF_STOCK];
    }
    if (self->cfg.json) {
        fprintf(out,
                "{\"type\":\"summary\",\"shards\":%u,\"units_in_stock\":%llu,\"events\":%llu,"
                "\"accepted\":%llu,\"out_of_stock\":%llu,\"health\":[",
                self->n, (unsigned long long)units, (unsigned long long)events,
                (unsigned long long)accepted, (unsigned long long)oos);
    } else if (summary) {
        fprintf(out,
                "summary: %u shards, accepted %llu, out of stock %llu, events %llu, units in "
                "stock %llu;",
                self->n, (unsigned long long)accepted, (unsigned long long)oos,
                (unsigned long long)events, (unsigned long long)units);
    }
    for (unsigned i = 0; i < self->n; i++) {
        uint32_t lo, hi, n = s_span(self, i, &lo, &hi);
        const sp_mirror_t *m = sp_monitor_mirror(self->mon[i]);
        const char *h = sp_shard_health_name(sp_shardmon_health(self, i));
        if (self->cfg.json) {
            fprintf(out, "%s{\"shard\":", i > 0 ? "," : "");
            sp_monitor_json_str(out, self->name[i]);
            fprintf(out,
                    ",\"health\":\"%s\",\"products\":%u,\"lo\":%u,\"hi\":%u,"
                    "\"units_in_stock\":%llu,\"gaps\":%llu}",
                    h, n, lo, hi, (unsigned long long)sp_mirror_units(m),
                    (unsigned long long)sp_mirror_state(m)->gaps);
        } else if (summary) {
            fprintf(out, " %s %s", self->name[i], h);
        } else {
            fprintf(out, "shard %s: %s, %u products (ids %u-%u), %llu units in stock\n",
                    self->name[i], h, n, lo, hi, (unsigned long long)sp_mirror_units(m));
        }
    }
    if (self->cfg.json) {
        fprintf(out, "]}\n");
    } else if (summary) {
        fputc('\n', out);
    }
    (void)fflush(out);
}

/* One turn of every shard's monitor, `slice` ms each at most. */
static int s_step_all(sp_shardmon_t *self, int slice, unsigned *ended, char *why, size_t cap)
{
    *ended = 0;
    for (unsigned i = 0; i < self->n; i++) {
        char inner[384] = "";
        int rc = sp_monitor_step(self->mon[i], slice > 0 ? slice : 1, inner, sizeof inner);
        if (rc < 0) {
            snprintf(why, cap, "shard '%s': %s", self->name[i], inner);
            return rc;
        }
        *ended += sp_mirror_state(sp_monitor_mirror(self->mon[i]))->eos;
    }
    return 0;
}

/* What the console's shard line shows. */
static void s_console_shards(const sp_shardmon_t *self, sp_console_t *con)
{
    sp_console_shard_t sh[SP_SHARDMON_MAX];
    memset(sh, 0, sizeof sh);
    for (unsigned i = 0; i < self->n; i++) {
        sp_shard_health_t h = sp_shardmon_health(self, i);
        snprintf(sh[i].name, sizeof sh[i].name, "%s", self->name[i]);
        sh[i].health = sp_shard_health_name(h);
        sh[i].ok = h == SP_SHARD_UP;
        sh[i].products = s_span(self, i, &sh[i].lo, &sh[i].hi);
    }
    sp_console_shards(con, sh, self->n);
}

/* The full-screen view of the merged mirror, until q, a stop, or every
 * broker ended its stream (shown for SP_MONITOR_LINGER_MS). */
static int s_run_console(sp_shardmon_t *self, char *why, size_t cap)
{
    const sp_mirror_t *shards[SP_SHARDMON_MAX];
    for (unsigned i = 0; i < self->n; i++) {
        shards[i] = sp_monitor_mirror(self->mon[i]);
    }
    sp_mirror_t *merged = sp_mirror_new_merged(shards, self->n);
    if (merged == NULL) {
        snprintf(why, cap, "out of memory");
        return -ENOMEM;
    }
    sp_console_cfg_t cc = {.title = self->title, .low_stock = self->cfg.low_stock};
    sp_console_t *con = NULL;
    int rc = sp_console_open(&con, &cc);
    if (rc < 0) {
        snprintf(why, cap, "cannot open the full-screen console: %s (try --plain)",
                 sp_strerror(rc));
        sp_mirror_destroy(&merged);
        return rc;
    }
    uint64_t next_frame = 0, ended_at = 0;
    while (!sp_signal_stopping()) {
        unsigned ended = 0;
        rc = s_step_all(self, S_CONSOLE_TURN_MS / (int)self->n, &ended, why, cap);
        if (rc < 0) {
            break;
        }
        uint64_t now = sp_now_ns();
        sp_mirror_merge(merged, now);
        if (!sp_console_keys(con, merged, now)) {
            break;
        }
        if (now >= next_frame) {
            s_console_shards(self, con);
            sp_console_draw(con, merged, now);
            next_frame = now + SP_CONSOLE_FRAME_MS * SP_NS_PER_MS;
        }
        if (ended == self->n && ended_at == 0) {
            ended_at = now;
        }
        if (ended_at != 0 && now - ended_at > SP_MONITOR_LINGER_MS * SP_NS_PER_MS) {
            break;
        }
    }
    sp_console_close(&con);
    sp_mirror_destroy(&merged);
    return rc;
}

int sp_shardmon_run(sp_shardmon_t *self, char *why, size_t cap)
{
    const sp_monitor_cfg_t *cfg = &self->cfg;
    if (cfg->console) {
        return s_run_console(self, why, cap);
    }
    if (cfg->once) {
        for (unsigned i = 0; i < self->n; i++) {
            char inner[384] = "";
            int rc = sp_monitor_settle(self->mon[i], inner, sizeof inner);
            if (rc < 0) {
                snprintf(why, cap, "shard '%s': %s", self->name[i], inner);
                return rc;
            }
        }
        s_print_table(self);
        if (!cfg->json) {
            s_health(self, false);
        }
        return 0;
    }
    int summary_ms = cfg->summary_ms > 0 ? cfg->summary_ms : SP_MONITOR_SUMMARY_MS;
    uint64_t next_summary = sp_now_ns() + (uint64_t)summary_ms * SP_NS_PER_MS;
    int slice = SP_MONITOR_POLL_MS / (int)self->n;
    while (!sp_signal_stopping()) {
        unsigned ended = 0;
        int rc = s_step_all(self, slice, &ended, why, cap);
        if (rc < 0) {
            return rc;
        }
        uint64_t now = sp_now_ns();
        if (now >= next_summary || ended == self->n) {
            s_health(self, true);
            next_summary = now + (uint64_t)summary_ms * SP_NS_PER_MS;
        }
        if (ended == self->n) {
            if (!cfg->json) {
                fprintf(self->out, "end of stream: every shard's broker stopped\n");
            }
            break;
        }
    }
    if (self->cfg.final_table) {
        s_print_table(self);
    }
    return 0;
}

void sp_shardmon_destroy(sp_shardmon_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_shardmon_t *self = *self_p;
    for (unsigned i = 0; i < self->n; i++) {
        sp_monitor_destroy(&self->mon[i]);
    }
    if (self->sink != NULL) {
        (void)fclose(self->sink);
    }
    free(self);
    *self_p = NULL;
}
