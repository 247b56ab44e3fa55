/*
 * sp_mirror — snapshot-plus-events merge, gap accounting, STATS decoding.
 */
#include "sp_mirror.h"

#include "sp_error.h"
#include "sp_time.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(((sp_snaprow_t *)0)->name) == SP_NAME_MAX, "snapshot name field");
_Static_assert(sizeof(((sp_snaprow_t *)0)->category) == SP_CATEGORY_MAX, "snapshot category");

/* A (time, counter) sample for rates. */
typedef struct {
    uint64_t t_ns;
    uint64_t value;
} sp_sample_t;

typedef struct {
    sp_sample_t s[SP_MIRROR_RATE_SAMPLES];
    unsigned head; /* next write */
    unsigned n;
} sp_ring_t;

struct sp_mirror {
    uint32_t capacity;
    const sp_row_t *rows; /* borrowed static data (local), or NULL */
    sp_snaprow_t *own;    /* own static data (remote), or NULL */
    sp_mrow_t *mrow;
    sp_mpub_t pub[SP_MIRROR_PUBS];
    /* the last snapshot's baseline: publishers' incarnation and last event */
    bool have_snapshot;
    uint32_t snap_pid[SP_MIRROR_PUBS];
    uint64_t snap_seq[SP_MIRROR_PUBS];
    uint64_t gap_epoch;                            /* bumped by every detected gap */
    uint64_t snap_epoch;                           /* gap_epoch when the running snapshot began */
    bool repairing;                                /* the running snapshot repairs a gap */
    uint64_t unpublished_seen[SP_WORKERS_MAX + 1]; /* SP_CTR_UNPUBLISHED by index, last seen */
    sp_mstate_t st;
    sp_shopstats_t stats;
    sp_ring_t orders_ring; /* broker time, orders answered */
    sp_ring_t events_ring; /* monitor time, events received */
    /* a merged view (sp_mirror_new_merged): its shards, which one has each
     * row (index + 1; 0: none), what the owners were worked out from */
    const sp_mirror_t *shard[SP_MIRROR_SHARDS_MAX];
    unsigned nshards;
    uint8_t *owner;
    uint64_t owner_stamp;
    uint32_t twice;
    sp_mrates_t merged_rates;
};

sp_mirror_t *sp_mirror_new(uint32_t capacity, const sp_row_t *rows)
{
    sp_mirror_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return NULL;
    }
    m->capacity = capacity;
    m->rows = rows;
    m->mrow = calloc(capacity ? capacity : 1, sizeof *m->mrow);
    if (rows == NULL) {
        m->own = calloc(capacity ? capacity : 1, sizeof *m->own);
    }
    if (m->mrow == NULL || (rows == NULL && m->own == NULL)) {
        free(m->mrow);
        free(m->own);
        free(m);
        return NULL;
    }
    m->st.stale = true; /* nothing is known before the first snapshot */
    return m;
}

void sp_mirror_destroy(sp_mirror_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    free((*self_p)->owner);
    free((*self_p)->mrow);
    free((*self_p)->own);
    free(*self_p);
    *self_p = NULL;
}

uint32_t sp_mirror_capacity(const sp_mirror_t *self)
{
    return self->capacity;
}

/* The mirror that holds row `id`: self, or a merged view's shard (NULL:
 * no shard has it). */
static const sp_mirror_t *s_holder(const sp_mirror_t *self, uint32_t id)
{
    if (self->owner == NULL) {
        return self;
    }
    if (id == 0 || id > self->capacity || self->owner[id - 1] == 0) {
        return NULL;
    }
    return self->shard[self->owner[id - 1] - 1];
}

const sp_mrow_t *sp_mirror_row(const sp_mirror_t *self, uint32_t id)
{
    self = s_holder(self, id);
    if (self == NULL || id == 0 || id > self->capacity || !self->mrow[id - 1].present) {
        return NULL;
    }
    return &self->mrow[id - 1];
}

bool sp_mirror_info(const sp_mirror_t *self, uint32_t id, sp_minfo_t *out)
{
    self = s_holder(self, id);
    if (self == NULL || sp_mirror_row(self, id) == NULL) {
        return false;
    }
    if (self->rows != NULL) {
        const sp_row_t *r = &self->rows[id - 1];
        *out = (sp_minfo_t){.id = id,
                            .weight_g = r->weight_g,
                            .expiry = r->expiry,
                            .initial_stock = r->initial_stock,
                            .price_cents = r->price_cents,
                            .name = r->name,
                            .category = r->category};
    } else {
        const sp_snaprow_t *r = &self->own[id - 1];
        *out = (sp_minfo_t){.id = id,
                            .weight_g = r->weight_g,
                            .expiry = r->expiry,
                            .initial_stock = r->initial_stock,
                            .price_cents = r->price_cents,
                            .name = r->name,
                            .category = r->category};
    }
    return true;
}

bool sp_mirror_product(const sp_mirror_t *self, uint32_t id, sp_product_t *p, uint32_t *version)
{
    sp_minfo_t info;
    const sp_mrow_t *r = sp_mirror_row(self, id);
    if (r == NULL || !r->known || !sp_mirror_info(self, id, &info)) {
        return false;
    }
    memset(p, 0, sizeof *p);
    p->id = id;
    snprintf(p->name, sizeof p->name, "%s", info.name);
    snprintf(p->category, sizeof p->category, "%s", info.category);
    p->weight_g = info.weight_g;
    p->price_cents = info.price_cents;
    p->expiry = info.expiry;
    p->stock = r->stock;
    *version = r->version;
    return true;
}

#define S_SAMPLE_GAP_NS (50 * SP_NS_PER_MS) /* 256 samples cover 12.8 s */

/* Keeps at most one sample per S_SAMPLE_GAP_NS. */
static void s_ring_add(sp_ring_t *r, uint64_t t_ns, uint64_t value)
{
    unsigned last = (r->head + SP_MIRROR_RATE_SAMPLES - 1) % SP_MIRROR_RATE_SAMPLES;
    if (r->n > 0 && t_ns - r->s[last].t_ns < S_SAMPLE_GAP_NS) {
        return;
    }
    r->s[r->head] = (sp_sample_t){t_ns, value};
    r->head = (r->head + 1) % SP_MIRROR_RATE_SAMPLES;
    if (r->n < SP_MIRROR_RATE_SAMPLES) {
        r->n++;
    }
}

/* Rate between (now, value) and the newest sample at least `span_ns` older
 * (or the oldest there is); 0 when there is nothing to compare with. */
static double s_ring_rate(const sp_ring_t *r, uint64_t now, uint64_t value, uint64_t span_ns)
{
    const sp_sample_t *b = NULL;
    for (unsigned k = 1; k <= r->n; k++) {
        b = &r->s[(r->head + SP_MIRROR_RATE_SAMPLES - k) % SP_MIRROR_RATE_SAMPLES];
        if (now - b->t_ns >= span_ns) {
            break;
        }
    }
    if (b == NULL || now <= b->t_ns || value < b->value) {
        return 0;
    }
    return (double)(value - b->value) * 1e9 / (double)(now - b->t_ns);
}

/* A gap of `missed` events from publisher p: count it and ask for a repair. */
static void s_gap(sp_mirror_t *m, sp_mpub_t *p, uint64_t missed)
{
    p->gaps += missed;
    m->st.gaps += missed;
    m->st.gap_reports++;
    m->gap_epoch++;
    m->st.stale = true;
}

/* Changes no event carries: a worker that died may have applied an order
 * and not published it (its sequence shows no gap: the event was never
 * numbered), and the broker's own hold releases publish none.  STATS count
 * both (SP_CTR_UNPUBLISHED) once they are settled, so a snapshot begun
 * after a count grew sees them: mark the mirror stale and ask for one.
 * Before the first snapshot there is nothing to repair (that snapshot is
 * later). */
static bool s_grew(uint64_t now, uint64_t *seen)
{
    bool grew = now > *seen; /* (smaller: another broker, counting anew) */
    *seen = now;
    return grew;
}

static void s_on_unpublished(sp_mirror_t *m)
{
    bool repair = m->have_snapshot || m->st.snapshot_running;
    uint64_t before = m->st.deaths + m->st.releases;
    for (uint32_t w = 1; w <= SP_WORKERS_MAX; w++) {
        if (s_grew(m->stats.worker[w].deaths, &m->unpublished_seen[w]) && repair) {
            m->st.deaths++;
        }
    }
    if (s_grew(m->stats.holds_released, &m->unpublished_seen[0]) && repair) {
        m->st.releases++;
    }
    if (m->st.deaths + m->st.releases != before) {
        m->gap_epoch++;
        m->st.stale = true;
    }
}

/* Where counting starts for an incarnation we hear from the first time:
 * before the first snapshot, everything it did earlier is in that snapshot
 * (our subscription was in place before it is taken); after one, the
 * snapshot's baseline covers the incarnation it saw, and one it did not see
 * began after it, so all of its events matter. */
static uint64_t s_baseline(const sp_mirror_t *m, uint32_t publisher, uint32_t pid,
                           uint64_t first_unseen)
{
    if (!m->have_snapshot && !m->st.snapshot_running) {
        return first_unseen - 1;
    }
    return m->snap_pid[publisher] == pid ? m->snap_seq[publisher] : 0;
}

/* Accounts for events first..last (or, for a heartbeat, for everything up to
 * last) from incarnation `pid` of publisher p. */
static void s_track(sp_mirror_t *m, uint32_t publisher, uint32_t pid, uint64_t first, uint64_t last,
                    uint64_t now)
{
    sp_mpub_t *p = &m->pub[publisher];
    if (p->pid != pid) {
        p->pid = pid;
        p->last_seq = s_baseline(m, publisher, pid, first);
    }
    if (first > p->last_seq + 1) {
        s_gap(m, p, first - p->last_seq - 1);
    }
    if (last > p->last_seq) {
        p->last_seq = last;
    }
    p->last_seen_ns = now;
}

/* Decay of the out rate over `ns` nanoseconds. */
static double s_out_decay(uint64_t ns)
{
    return exp(-(double)ns / (SP_MIRROR_OUT_TAU_S * 1e9));
}

double sp_mirror_out_rate(const sp_mrow_t *r, uint64_t now_ns)
{
    if (r->out_decayed <= 0) {
        return 0;
    }
    uint64_t age = now_ns > r->changed_ns ? now_ns - r->changed_ns : 0;
    return (double)r->out_decayed * s_out_decay(age) / SP_MIRROR_OUT_TAU_S;
}

bool sp_mirror_tally(const sp_mirror_t *self, uint32_t id, sp_tally_t *out, bool *live)
{
    self = s_holder(self, id);
    const sp_mrow_t *r = self != NULL ? sp_mirror_row(self, id) : NULL;
    if (r == NULL) {
        return false;
    }
    if (self->rows != NULL) {
        sp_row_tally(&self->rows[id - 1], out);
        *live = true;
        return true;
    }
    const sp_snaprow_t *s = &self->own[id - 1];
    int64_t held =
        (int64_t)s->initial_stock + (int64_t)s->restocked - (int64_t)s->sold - (int64_t)s->stock;
    *out = (sp_tally_t){.sold = s->sold,
                        .restocked = s->restocked,
                        .held = held > 0 ? (uint32_t)held : 0,
                        .version = s->version};
    *live = false;
    return true;
}

static bool s_apply(sp_mirror_t *m, const sp_event_t *e, uint64_t now)
{
    sp_mrow_t *r = &m->mrow[e->product_id - 1];
    if (r->known && e->row_version <= r->version) {
        return false;
    }
    if (r->known) {
        uint64_t age = now > r->changed_ns && r->changed_ns != 0 ? now - r->changed_ns : 0;
        double out = (double)r->out_decayed * s_out_decay(age);
        if (e->new_stock < r->stock) {
            out += (double)(r->stock - e->new_stock);
        }
        r->out_decayed = (float)out;
    }
    r->stock = e->new_stock;
    r->version = e->row_version;
    r->known = true;
    r->changed_ns = now;
    r->changes++;
    return true;
}

static int s_on_events(sp_mirror_t *m, const uint8_t *msg, const sp_msg_hdr_t *h, uint64_t now,
                       sp_mirror_event_fn fn, void *arg)
{
    if (h->sender == 0 || h->sender >= SP_MIRROR_PUBS || h->count == 0) {
        return SP_E_INVALID;
    }
    sp_event_t e, first;
    sp_wire_get_event(sp_wire_crec(msg, SP_MSG_EVENTS, 0), &first);
    for (unsigned i = 0; i < h->count; i++) {
        sp_wire_get_event(sp_wire_crec(msg, SP_MSG_EVENTS, i), &e);
        if (e.product_id == 0 || e.product_id > m->capacity) {
            m->st.invalid++;
            continue;
        }
        bool applied = s_apply(m, &e, now);
        m->st.applied += applied;
        if (fn != NULL) {
            fn(arg, &e, applied);
        }
    }
    s_track(m, h->sender, h->batch, first.pub_seq, e.pub_seq, now);
    m->pub[h->sender].received += h->count;
    m->pub[h->sender].state = SP_PUB_RUNNING;
    m->st.events += h->count;
    return SP_MSG_EVENTS;
}

static int s_on_heartbeat(sp_mirror_t *m, const uint8_t *msg, const sp_msg_hdr_t *h, uint64_t now)
{
    if (h->count != 1 || h->sender >= SP_MIRROR_PUBS) {
        return SP_E_INVALID;
    }
    sp_heartbeat_t hb;
    sp_wire_get_heartbeat(sp_wire_crec(msg, SP_MSG_HEARTBEAT, 0), &hb);
    m->st.heartbeats++;
    if (h->sender == 0) {
        m->pub[0].last_seen_ns = now;
        m->pub[0].state = hb.state;
        m->pub[0].pid = hb.pid;
        if (hb.state == SP_PUB_STOPPING) {
            m->st.eos = true; /* the broker's goodbye, if its EOS was lost */
        }
        return SP_MSG_HEARTBEAT;
    }
    /* a publisher sends its heartbeat after the events it numbers, on the
     * same path: whatever it counts and we did not get is lost */
    s_track(m, h->sender, hb.pid, hb.pub_seq + 1, hb.pub_seq, now);
    m->pub[h->sender].state = hb.state;
    m->pub[h->sender].orders = hb.orders_applied;
    return SP_MSG_HEARTBEAT;
}

/* Where counter (id, index) goes in the stats; NULL for ids this monitor does
 * not know (a newer broker's) and indexes out of range. */
static uint64_t *s_counter_field(sp_shopstats_t *s, unsigned id, unsigned i)
{
    sp_mworker_t *w = i >= 1 && i <= SP_WORKERS_MAX ? &s->worker[i] : NULL;
    switch (id) {
    case SP_CTR_TIME_NS:
        return &s->time_ns;
    case SP_CTR_ORDERS:
        return i < SP_STATUS_COUNT ? &s->orders[i] : NULL;
    case SP_CTR_EVENT_SEQ:
        return &s->event_seq;
    case SP_CTR_LAT_P50_NS:
        return &s->lat_p50_ns;
    case SP_CTR_LAT_P99_NS:
        return &s->lat_p99_ns;
    case SP_CTR_LAT_MAX_NS:
        return &s->lat_max_ns;
    case SP_CTR_LAT_COUNT:
        return &s->lat_count;
    case SP_CTR_DEPTH:
        return i < SP_HOP_COUNT ? &s->depth[i] : NULL;
    case SP_CTR_DEPTH_CAP:
        return i < SP_HOP_COUNT ? &s->depth_cap[i] : NULL;
    case SP_CTR_DROPS:
        return i < SP_DROP_COUNT ? &s->drops[i] : NULL;
    case SP_CTR_W_STATE:
        return w ? &w->state : NULL;
    case SP_CTR_W_ORDERS:
        return w ? &w->orders : NULL;
    case SP_CTR_W_HB_AGE_MS:
        return w ? &w->hb_age_ms : NULL;
    case SP_CTR_W_PID:
        return w ? &w->pid : NULL;
    case SP_CTR_W_RESTARTS:
        return w ? &w->restarts : NULL;
    case SP_CTR_UNPUBLISHED:
        return w ? &w->deaths : i == 0 ? &s->holds_released : NULL;
    case SP_CTR_W_PUB_SEQ:
        return w ? &w->pub_seq : NULL;
    case SP_CTR_CAPACITY:
        return &s->capacity;
    case SP_CTR_PRODUCTS:
        return &s->products;
    case SP_CTR_TRANSPORT:
        return &s->transport;
    case SP_CTR_SYNC:
        return &s->sync;
    case SP_CTR_WORKERS:
        return &s->workers;
    default:
        return NULL;
    }
}

int sp_shopstats_decode(sp_shopstats_t *stats, const void *msg, size_t len)
{
    sp_msg_hdr_t h;
    int rc = sp_wire_check(msg, len, &h);
    if (rc < 0) {
        return rc;
    }
    if (h.kind != SP_MSG_STATS || h.sender != 0) {
        return SP_E_INVALID;
    }
    for (unsigned i = 0; i < h.count; i++) {
        sp_counter_t c;
        sp_wire_get_counter(sp_wire_crec(msg, SP_MSG_STATS, i), &c);
        uint64_t *field = s_counter_field(stats, c.id, c.index);
        if (field != NULL) {
            *field = c.value;
        }
    }
    if (stats->workers > SP_WORKERS_MAX) {
        stats->workers = SP_WORKERS_MAX;
    }
    stats->valid = true;
    return 0;
}

static uint64_t s_answered(const sp_shopstats_t *s)
{
    uint64_t n = 0;
    for (int i = 0; i < SP_STATUS_COUNT; i++) {
        n += s->orders[i];
    }
    return n;
}

int sp_mirror_feed(sp_mirror_t *self, const void *msg, size_t len, uint64_t now_ns,
                   sp_mirror_event_fn fn, void *arg)
{
    if (self->owner != NULL) {
        return SP_E_INVALID; /* a merged view is fed through its shards */
    }
    sp_msg_hdr_t h;
    int rc = sp_wire_check(msg, len, &h);
    if (rc == 0) {
        switch (h.kind) {
        case SP_MSG_EVENTS:
            rc = s_on_events(self, msg, &h, now_ns, fn, arg);
            break;
        case SP_MSG_HEARTBEAT:
            rc = s_on_heartbeat(self, msg, &h, now_ns);
            break;
        case SP_MSG_STATS:
            rc = sp_shopstats_decode(&self->stats, msg, len);
            if (rc == 0) {
                s_on_unpublished(self);
                self->stats.received_ns = now_ns;
                self->pub[0].last_seen_ns = now_ns;
                s_ring_add(&self->orders_ring, self->stats.time_ns, s_answered(&self->stats));
                rc = SP_MSG_STATS;
            }
            break;
        case SP_MSG_EOS:
            rc = h.sender == 0 && h.count == 0 ? SP_MSG_EOS : SP_E_INVALID;
            self->st.eos |= rc == SP_MSG_EOS;
            break;
        default:
            rc = SP_E_BAD_KIND; /* not something the event path carries */
            break;
        }
    }
    if (rc < 0) {
        self->st.invalid++;
    }
    /* every message, events or not, so a quiet spell reads as 0/s */
    s_ring_add(&self->events_ring, now_ns, self->st.events);
    return rc;
}

void sp_mirror_snap_begin(sp_mirror_t *self, const uint32_t pid[SP_MIRROR_PUBS],
                          const uint64_t seq[SP_MIRROR_PUBS])
{
    memcpy(self->snap_pid, pid, sizeof self->snap_pid);
    memcpy(self->snap_seq, seq, sizeof self->snap_seq);
    self->snap_epoch = self->gap_epoch;
    self->repairing = self->have_snapshot;
    self->st.snapshot_running = true;
}

int sp_mirror_snap_row(sp_mirror_t *self, const sp_snaprow_t *row, uint64_t now_ns)
{
    if (self->owner != NULL || row->id == 0 || row->id > self->capacity) {
        self->st.invalid++;
        return SP_E_UNKNOWN_PRODUCT;
    }
    sp_mrow_t *r = &self->mrow[row->id - 1];
    if (self->own != NULL) {
        self->own[row->id - 1] = *row;
    }
    r->present = true;
    if (!r->known || row->version > r->version) {
        if (r->known && row->stock != r->stock) {
            /* a change we learn of from the snapshot (the out rate decays
             * to now, so that its reference time can move) */
            uint64_t age = now_ns > r->changed_ns && r->changed_ns ? now_ns - r->changed_ns : 0;
            r->out_decayed = (float)((double)r->out_decayed * s_out_decay(age));
            r->changed_ns = now_ns;
        }
        r->stock = row->stock;
        r->version = row->version;
        r->known = true;
    }
    return 0;
}

void sp_mirror_snap_end(sp_mirror_t *self)
{
    self->st.snapshot_running = false;
    self->have_snapshot = true;
    self->st.snapshots++;
    if (self->gap_epoch == self->snap_epoch) {
        if (self->st.stale && self->repairing) {
            self->st.resyncs++;
        }
        self->st.stale = false;
    }
}

void sp_mirror_snap_local(sp_mirror_t *self, sp_table_t *table, uint64_t now_ns)
{
    sp_table_hdr_t *h = sp_table_hdr(table);
    uint32_t pid[SP_MIRROR_PUBS] = {0};
    uint64_t seq[SP_MIRROR_PUBS] = {0};
    for (uint32_t w = 1; w <= SP_WORKERS_MAX; w++) {
        sp_worker_slot_t *s = &h->worker[w - 1];
        pid[w] = (uint32_t)atomic_load_explicit(&s->pid, memory_order_acquire);
        seq[w] = atomic_load_explicit(&s->pub_seq, memory_order_acquire);
    }
    sp_mirror_snap_begin(self, pid, seq);
    uint32_t cap =
        sp_table_capacity(table) < self->capacity ? sp_table_capacity(table) : self->capacity;
    for (uint32_t id = 1; id <= cap; id++) {
        const sp_row_t *r = sp_table_row(table, id);
        if (r == NULL) {
            continue;
        }
        uint64_t sv = atomic_load_explicit(&r->sv, memory_order_acquire);
        sp_snaprow_t row = {.id = id, .stock = SP_SV_STOCK(sv), .version = SP_SV_VERSION(sv)};
        if (self->own != NULL) {
            row.weight_g = r->weight_g;
            row.expiry = r->expiry;
            row.initial_stock = r->initial_stock;
            row.price_cents = r->price_cents;
            memcpy(row.name, r->name, sizeof row.name);
            memcpy(row.category, r->category, sizeof row.category);
        }
        sp_mirror_snap_row(self, &row, now_ns);
    }
    sp_mirror_snap_end(self);
}

bool sp_mirror_wants_snapshot(const sp_mirror_t *self)
{
    return self->st.stale && !self->st.snapshot_running;
}

void sp_mirror_invalidate(sp_mirror_t *self)
{
    self->st.snapshot_running = false;
    self->st.stale = true;
    self->gap_epoch++;
}

const sp_mstate_t *sp_mirror_state(const sp_mirror_t *self)
{
    return &self->st;
}

const sp_shopstats_t *sp_mirror_stats(const sp_mirror_t *self)
{
    return &self->stats;
}

const sp_mpub_t *sp_mirror_pub(const sp_mirror_t *self, uint32_t publisher)
{
    return publisher < SP_MIRROR_PUBS ? &self->pub[publisher] : NULL;
}

void sp_mirror_rates(const sp_mirror_t *self, uint64_t now_ns, sp_mrates_t *out)
{
    if (self->owner != NULL) {
        *out = self->merged_rates; /* as of the last merge */
        return;
    }
    /* orders: the broker's clock and its latest totals; events: ours */
    uint64_t answered = s_answered(&self->stats);
    out->orders_1s = s_ring_rate(&self->orders_ring, self->stats.time_ns, answered, SP_NS_PER_SEC);
    out->orders_10s =
        s_ring_rate(&self->orders_ring, self->stats.time_ns, answered, 10 * SP_NS_PER_SEC);
    out->events_1s = s_ring_rate(&self->events_ring, now_ns, self->st.events, SP_NS_PER_SEC);
}

uint64_t sp_mirror_units(const sp_mirror_t *self)
{
    uint64_t units = 0;
    if (self->owner != NULL) {
        for (unsigned i = 0; i < self->nshards; i++) {
            units += sp_mirror_units(self->shard[i]);
        }
        return units;
    }
    for (uint32_t i = 0; i < self->capacity; i++) {
        if (self->mrow[i].present && self->mrow[i].known) {
            units += self->mrow[i].stock;
        }
    }
    return units;
}

/* ---------------------------------------------------------------------------
 * Merged views
 */

sp_mirror_t *sp_mirror_new_merged(const sp_mirror_t *const *shards, unsigned n)
{
    if (n == 0 || n > SP_MIRROR_SHARDS_MAX) {
        return NULL;
    }
    sp_mirror_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        m->shard[i] = shards[i];
        m->capacity = shards[i]->capacity > m->capacity ? shards[i]->capacity : m->capacity;
    }
    m->nshards = n;
    m->owner = calloc(m->capacity ? m->capacity : 1, sizeof *m->owner);
    if (m->owner == NULL) {
        free(m);
        return NULL;
    }
    m->owner_stamp = UINT64_MAX; /* worked out at the first merge */
    m->st.stale = true;
    return m;
}

/* Rows appear only through snapshot rows: the owners change only when a
 * shard completed a snapshot or is taking one. */
static uint64_t s_owner_stamp(const sp_mirror_t *m, bool *running)
{
    uint64_t stamp = 0;
    *running = false;
    for (unsigned i = 0; i < m->nshards; i++) {
        stamp += m->shard[i]->st.snapshots;
        *running |= m->shard[i]->st.snapshot_running;
    }
    return stamp;
}

static void s_merge_owners(sp_mirror_t *m)
{
    bool running;
    uint64_t stamp = s_owner_stamp(m, &running);
    if (stamp == m->owner_stamp && !running) {
        return;
    }
    m->owner_stamp = stamp;
    m->twice = 0;
    for (uint32_t id = 1; id <= m->capacity; id++) {
        uint8_t who = 0;
        for (unsigned i = 0; i < m->nshards; i++) {
            const sp_mirror_t *s = m->shard[i];
            if (id <= s->capacity && s->mrow[id - 1].present) {
                if (who != 0) {
                    m->twice++;
                    break;
                }
                who = (uint8_t)(i + 1);
            }
        }
        m->owner[id - 1] = who;
    }
}

static void s_merge_state(sp_mirror_t *m)
{
    sp_mstate_t *d = &m->st;
    *d = (sp_mstate_t){.eos = true};
    for (unsigned i = 0; i < m->nshards; i++) {
        const sp_mstate_t *s = &m->shard[i]->st;
        d->stale |= s->stale;
        d->snapshot_running |= s->snapshot_running;
        d->events += s->events;
        d->applied += s->applied;
        d->gaps += s->gaps;
        d->gap_reports += s->gap_reports;
        d->snapshots += s->snapshots;
        d->resyncs += s->resyncs;
        d->deaths += s->deaths;
        d->releases += s->releases;
        d->invalid += s->invalid;
        d->heartbeats += s->heartbeats;
        d->eos &= s->eos;
    }
}

static uint64_t s_max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static void s_merge_stats(sp_mirror_t *m)
{
    sp_shopstats_t *d = &m->stats;
    memset(d, 0, sizeof *d);
    for (unsigned i = 0; i < m->nshards; i++) {
        const sp_shopstats_t *s = &m->shard[i]->stats;
        if (!s->valid) {
            continue;
        }
        if (!d->valid) {
            d->transport = s->transport;
            d->sync = s->sync;
        }
        d->valid = true;
        /* the broker-silent check reads this: the most recent shard's */
        d->received_ns = s_max_u64(d->received_ns, s->received_ns);
        d->time_ns = s_max_u64(d->time_ns, s->time_ns);
        for (int k = 0; k < SP_STATUS_COUNT; k++) {
            d->orders[k] += s->orders[k];
        }
        d->event_seq += s->event_seq;
        d->lat_p50_ns = s_max_u64(d->lat_p50_ns, s->lat_p50_ns);
        d->lat_p99_ns = s_max_u64(d->lat_p99_ns, s->lat_p99_ns);
        d->lat_max_ns = s_max_u64(d->lat_max_ns, s->lat_max_ns);
        d->lat_count += s->lat_count;
        for (int k = 0; k < SP_HOP_COUNT; k++) {
            d->depth[k] += s->depth[k];
            d->depth_cap[k] += s->depth_cap[k];
        }
        for (int k = 0; k < SP_DROP_COUNT; k++) {
            d->drops[k] += s->drops[k];
        }
        d->capacity += s->capacity;
        d->products += s->products;
        d->holds_released += s->holds_released;
        uint64_t n = s->workers <= SP_WORKERS_MAX ? s->workers : SP_WORKERS_MAX;
        for (uint64_t w = 1; w <= n && d->workers < SP_WORKERS_MAX; w++) {
            d->worker[++d->workers] = s->worker[w];
        }
    }
}

void sp_mirror_merge(sp_mirror_t *self, uint64_t now_ns)
{
    if (self->owner == NULL) {
        return;
    }
    s_merge_owners(self);
    s_merge_state(self);
    s_merge_stats(self);
    sp_mrates_t sum = {0};
    for (unsigned i = 0; i < self->nshards; i++) {
        sp_mrates_t r;
        sp_mirror_rates(self->shard[i], now_ns, &r);
        sum.orders_1s += r.orders_1s;
        sum.orders_10s += r.orders_10s;
        sum.events_1s += r.events_1s;
    }
    self->merged_rates = sum;
}

int sp_mirror_owner(const sp_mirror_t *self, uint32_t id)
{
    if (self->owner == NULL || id == 0 || id > self->capacity) {
        return -1;
    }
    return (int)self->owner[id - 1] - 1;
}

uint32_t sp_mirror_claimed_twice(const sp_mirror_t *self)
{
    return self->twice;
}
