/*
 * sp_commit — claim, change, settle, resolve.  The protocol is described in
 * sp_commit.h and argued in docs/RECOVERY.md; this file is its only
 * implementation, shared by the three strategies.
 */
#include "sp_commit.h"

#include "sp_error.h"
#include "sp_instance.h"
#include "sp_rand.h"
#include "sp_time.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__extension__ typedef unsigned __int128 s_u128;

#define S_STATE(c)         ((unsigned)((c)&3u))
#define S_PID(c)           ((pid_t)(((c) >> 2) & 0x3fffffu))
#define S_SEQ(c)           ((c) >> 24)
#define S_CTL(seq, pid, s) (((uint64_t)(seq) << 24) | ((uint64_t)(uint32_t)(pid) << 2) | (s))
#define S_WHAT(p, q, t)    (((uint64_t)(p) << 32) | ((uint64_t)(q) << 8) | (uint64_t)(t))
#define S_WHAT_PRODUCT(w)  ((uint32_t)((w) >> 32))
#define S_WHAT_QTY(w)      ((uint32_t)(((w) >> 8) & 0xffffffu))
#define S_WHAT_TYPE(w)     ((unsigned)((w)&0xffu))
#define S_RES(v, stock)    (((uint64_t)(v) << 32) | (stock))
#define S_MASK40           ((1ull << 40) - 1)
/* an entry's `out`: status (8 bits), the global hold index + 1 it works on
 * (24 bits), and the low 32 bits of that hold's reserve seq */
#define S_OUT(status, hold, rseq)                                                                  \
    ((uint64_t)(status) | ((uint64_t)(hold) << 8) | ((uint64_t)(uint32_t)(rseq) << 32))
#define S_OUT_STATUS(o) ((uint8_t)((o)&0xffu))
#define S_OUT_HOLD(o)   ((unsigned)(((o) >> 8) & 0xffffffu))
#define S_OUT_RSEQ(o)   ((uint32_t)((o) >> 32))
#define S_HCTL(seq, st) (((uint64_t)(seq) << 8) | (st))
#define S_HSTATE(c)     ((unsigned)((c)&0xffu))
#define S_HSEQ(c)       ((c) >> 8)

void (*sp_commit_hook)(int point);

static inline void s_point(int point)
{
    if (__builtin_expect(sp_commit_hook != NULL, 0)) {
        sp_commit_hook(point);
    }
}

/* ---- 16-byte atomics (cmpxchg16b; both halves are also read alone) ---- */

static inline s_u128 s_load16(void *p)
{
    /* a compare-and-swap of 0 with 0 returns the current value atomically */
    return __sync_val_compare_and_swap((s_u128 *)p, (s_u128)0, (s_u128)0);
}

static inline bool s_cas16(void *p, s_u128 old, s_u128 new)
{
    return __sync_bool_compare_and_swap((s_u128 *)p, old, new);
}

static inline uint64_t s_lo(s_u128 v)
{
    return (uint64_t)v;
}

static inline uint64_t s_hi(s_u128 v)
{
    return (uint64_t)(v >> 64);
}

static inline s_u128 s_make(uint64_t lo, uint64_t hi)
{
    return ((s_u128)hi << 64) | lo;
}

/* ---- counters ---- */

static void s_tally_unpack(uint64_t lo, uint64_t hi, sp_tally_t *t)
{
    t->sold = lo & S_MASK40;
    t->restocked = (lo >> 40) | ((hi & 0xffffu) << 24);
    t->held = (uint32_t)((hi >> 16) & 0xffffu);
    t->version = (uint32_t)(hi >> 32);
}

static s_u128 s_tally_pack(const sp_tally_t *t)
{
    uint64_t lo = (t->sold & S_MASK40) | ((t->restocked & 0xffffffu) << 40);
    uint64_t hi = ((t->restocked >> 24) & 0xffffu) | ((uint64_t)(t->held & 0xffffu) << 16) |
                  ((uint64_t)t->version << 32);
    return s_make(lo, hi);
}

void sp_row_tally(const sp_row_t *row, sp_tally_t *out)
{
    /* every update changes the version in the high word, so an unchanged
     * high word around the low one means the pair belongs together */
    for (;;) {
        uint64_t hi = atomic_load_explicit(&row->tally[1], memory_order_acquire);
        uint64_t lo = atomic_load_explicit(&row->tally[0], memory_order_acquire);
        if (atomic_load_explicit(&row->tally[1], memory_order_acquire) == hi) {
            s_tally_unpack(lo, hi, out);
            return;
        }
    }
}

uint32_t sp_row_stock_settled(const sp_row_t *row, sp_tally_t *out)
{
    for (int i = 0;; i++) {
        uint64_t sv = atomic_load_explicit(&row->sv, memory_order_acquire);
        sp_row_tally(row, out);
        /* a change whose maker died stays unsettled until someone settles
         * it (the next change, or a sweep): then report what is there */
        if (out->version == SP_SV_VERSION(sv) || i >= 1000) {
            return SP_SV_STOCK(sv);
        }
        if (i >= 10) {
            sched_yield();
        }
    }
}

/* Brings the counters up to version v, made by an order of `type` and `qty`.
 * Idempotent: counters already at v (or past it) are left alone. */
static void s_tally_add(sp_row_t *r, uint32_t v, unsigned type, uint32_t qty)
{
    for (;;) {
        s_u128 cur = s_load16(r->tally);
        sp_tally_t t;
        s_tally_unpack(s_lo(cur), s_hi(cur), &t);
        if (t.version >= v) {
            return;
        }
        switch (type) {
        case SP_ORDER_PURCHASE:
            t.sold += qty;
            break;
        case SP_ORDER_RESTOCK:
            t.restocked += qty;
            break;
        case SP_ORDER_RESERVE:
            t.held += qty;
            break;
        case SP_ORDER_BUY_HELD:
            t.held -= qty;
            t.sold += qty;
            break;
        case SP_ORDER_RELEASE:
            t.held -= qty;
            break;
        default:
            break;
        }
        t.version = v;
        if (s_cas16(r->tally, cur, s_tally_pack(&t))) {
            return;
        }
    }
}

/* ---- the dedup region ---- */

static sp_dslot_t *s_slots(sp_table_t *t)
{
    return (sp_dslot_t *)sp_table_dedup(t);
}

static sp_dentry_t *s_window(sp_table_t *t, unsigned slot)
{
    uint8_t *base = (uint8_t *)sp_table_dedup(t) + sizeof(sp_dslot_t) * SP_DEDUP_SLOTS;
    return (sp_dentry_t *)(base + (size_t)slot * SP_DEDUP_WINDOW * sizeof(sp_dentry_t));
}

/* Every producer's holds, after the windows: hold i of slot s is global
 * hold s * SP_HOLDS_PER_PRODUCER + i. */
static sp_hold_t *s_holds(sp_table_t *t)
{
    uint8_t *base = (uint8_t *)sp_table_dedup(t) + sizeof(sp_dslot_t) * SP_DEDUP_SLOTS +
                    (size_t)SP_DEDUP_SLOTS * SP_DEDUP_WINDOW * sizeof(sp_dentry_t);
    return (sp_hold_t *)base;
}

size_t sp_commit_region_bytes(void)
{
    return sizeof(sp_dslot_t) * SP_DEDUP_SLOTS +
           (size_t)SP_DEDUP_SLOTS * SP_DEDUP_WINDOW * sizeof(sp_dentry_t) +
           (size_t)SP_DEDUP_SLOTS * SP_HOLDS_PER_PRODUCER * sizeof(sp_hold_t);
}

/* Our pid, read once per thread (a forked child forgets its parent's). */
static _Thread_local pid_t s_me;

static void s_forget_pid(void)
{
    s_me = 0;
}

static pid_t s_self(void)
{
    if (s_me == 0) {
        s_me = getpid();
    }
    return s_me;
}

__attribute__((constructor)) static void s_init_atfork(void)
{
    pthread_atfork(NULL, NULL, s_forget_pid);
}

static bool s_dead(pid_t pid)
{
    return pid > 0 && pid != s_self() && !sp_pid_alive(pid);
}

/* A per-thread cache of producer -> slot, checked against the slot on use. */
typedef struct {
    const void *region;
    uint32_t producer;
    uint32_t slot;
} s_cache_t;
static _Thread_local s_cache_t s_cache[16];

static int s_find(sp_table_t *t, uint32_t producer)
{
    sp_dslot_t *slots = s_slots(t);
    s_cache_t *c = &s_cache[producer & 15];
    if (c->region == slots && c->producer == producer &&
        atomic_load_explicit(&slots[c->slot].producer, memory_order_acquire) == producer) {
        return (int)c->slot;
    }
    for (unsigned i = 0; i < SP_DEDUP_SLOTS; i++) {
        if (atomic_load_explicit(&slots[i].producer, memory_order_acquire) == producer) {
            *c = (s_cache_t){.region = slots, .producer = producer, .slot = i};
            return (int)i;
        }
    }
    return -1;
}

static int s_lock_robust(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    if (rc == EOWNERDEAD) {
        /* the registry's writes are idempotent (a slot's producer id is
         * stored last), so there is nothing to repair */
        pthread_mutex_consistent(m);
        rc = 0;
    }
    return -rc;
}

static void s_resolve_entry(sp_table_t *t, sp_dentry_t *e, uint32_t producer, uint64_t c);

/* True when the slot holds nothing a live process is still applying; PENDING
 * entries of dead processes are resolved on the way. */
static bool s_slot_quiet(sp_table_t *t, unsigned slot)
{
    sp_dentry_t *w = s_window(t, slot);
    uint32_t producer = atomic_load(&s_slots(t)[slot].producer);
    for (unsigned i = 0; i < SP_DEDUP_WINDOW; i++) {
        uint64_t c = atomic_load(&w[i].ctl);
        if (S_STATE(c) != SP_DE_PENDING) {
            continue;
        }
        if (!s_dead(S_PID(c))) {
            return false;
        }
        s_resolve_entry(t, &w[i], producer, c);
    }
    const sp_hold_t *h = &s_holds(t)[(size_t)slot * SP_HOLDS_PER_PRODUCER];
    for (unsigned i = 0; i < SP_HOLDS_PER_PRODUCER; i++) {
        if (S_HSTATE(atomic_load(&h[i].ctl)) != SP_HOLD_FREE) {
            return false; /* the expiry pass releases it first */
        }
    }
    return true;
}

static void s_reset_slot(sp_table_t *t, unsigned slot, uint32_t producer, pid_t pid)
{
    sp_dslot_t *s = &s_slots(t)[slot];
    atomic_store(&s->producer, 0);
    sp_dentry_t *w = s_window(t, slot);
    for (unsigned i = 0; i < SP_DEDUP_WINDOW; i++) {
        atomic_store_explicit(&w[i].ctl, 0, memory_order_relaxed);
    }
    sp_hold_t *h = &s_holds(t)[(size_t)slot * SP_HOLDS_PER_PRODUCER];
    for (unsigned i = 0; i < SP_HOLDS_PER_PRODUCER; i++) {
        atomic_store_explicit(&h[i].ctl, 0, memory_order_relaxed);
    }
    atomic_store(&s->pid, pid);
    atomic_store(&s->used_ns, sp_now_ns());
    atomic_fetch_add(&s->claims, 1);
    atomic_store_explicit(&s->producer, producer, memory_order_release);
}

static int s_slot_locked(sp_table_t *t, uint32_t producer, pid_t pid);

/* Finds or claims the slot of `producer`.  Returns the slot or -EUSERS. */
static int s_slot(sp_table_t *t, uint32_t producer, pid_t pid)
{
    int slot = s_find(t, producer);
    if (slot >= 0) {
        return slot;
    }
    sp_table_hdr_t *h = sp_table_hdr(t);
    int rc = s_lock_robust(&h->reg_lock);
    if (rc < 0) {
        return rc;
    }
    slot = s_slot_locked(t, producer, pid);
    pthread_mutex_unlock(&h->reg_lock);
    return slot >= 0 ? slot : -EUSERS;
}

/* s_slot's work, with the registry lock held: the slot of `producer`, a
 * free one, or a reclaimable one (-1 when none). */
static int s_slot_locked(sp_table_t *t, uint32_t producer, pid_t pid)
{
    int slot = s_find(t, producer);
    sp_dslot_t *slots = s_slots(t);
    for (unsigned i = 0; slot < 0 && i < SP_DEDUP_SLOTS; i++) {
        if (atomic_load(&slots[i].producer) == 0) {
            s_reset_slot(t, i, producer, pid);
            slot = (int)i;
        }
    }
    /* full: take over the longest-idle slot whose producer is gone */
    uint64_t now = sp_now_ns();
    for (unsigned i = 0; slot < 0 && i < SP_DEDUP_SLOTS; i++) {
        uint64_t used = atomic_load(&slots[i].used_ns);
        pid_t owner = atomic_load(&slots[i].pid);
        bool gone =
            owner > 0 ? s_dead(owner) : now - used > (uint64_t)SP_DEDUP_IDLE_MS * SP_NS_PER_MS;
        if (gone && s_slot_quiet(t, i)) {
            s_reset_slot(t, i, producer, pid);
            slot = (int)i;
        }
    }
    return slot;
}

bool sp_commit_holds_slot(sp_table_t *t, uint32_t producer)
{
    int slot = s_find(t, producer);
    if (slot < 0) {
        return false;
    }
    sp_dslot_t *s = &s_slots(t)[slot];
    pid_t owner = atomic_load(&s->pid);
    if (owner > 0) {
        return !s_dead(owner);
    }
    /* the rule s_slot_locked takes a slot over by */
    return sp_now_ns() - atomic_load(&s->used_ns) <= (uint64_t)SP_DEDUP_IDLE_MS * SP_NS_PER_MS;
}

int sp_commit_register(sp_table_t *t, uint32_t producer, pid_t pid)
{
    int slot = s_slot(t, producer, pid);
    return slot < 0 ? slot : 0;
}

int sp_commit_claim(sp_table_t *t, uint32_t producer, pid_t pid, bool *resumed)
{
    sp_table_hdr_t *h = sp_table_hdr(t);
    int rc = s_lock_robust(&h->reg_lock);
    if (rc < 0) {
        return rc;
    }
    /* the look-up and the claim under one hold of the lock: two HELLOs for
     * one id cannot both take it */
    int slot = s_find(t, producer);
    *resumed = slot >= 0;
    if (slot >= 0) {
        sp_dslot_t *sl = &s_slots(t)[slot];
        pid_t owner = atomic_load(&sl->pid);
        if (owner > 0 && owner != pid && !s_dead(owner)) {
            rc = -EEXIST;
        } else {
            /* the same producer again (a reconnect, a one-shot after a
             * reserve): its window and holds stay, and now belong to `pid` */
            atomic_store(&sl->pid, pid);
            atomic_store(&sl->used_ns, sp_now_ns());
        }
    } else if (s_slot_locked(t, producer, pid) < 0) {
        rc = -EUSERS;
    }
    pthread_mutex_unlock(&h->reg_lock);
    return rc;
}

/* The entry of a row's `last` key, or NULL when its producer's slot is gone
 * (then that order was settled long ago: a slot is reused only when quiet). */
static sp_dentry_t *s_entry_of(sp_table_t *t, uint64_t key, unsigned *slot_out)
{
    int slot = s_find(t, SP_KEY_PRODUCER(key));
    if (slot < 0) {
        return NULL;
    }
    *slot_out = (unsigned)slot;
    return &s_window(t, (unsigned)slot)[SP_KEY_SEQ32(key) & (SP_DEDUP_WINDOW - 1)];
}

/* ---- settle: record version v of row r completely ---- */

static void s_settled_max(sp_row_t *r, uint32_t v)
{
    uint64_t cur = atomic_load_explicit(&r->settled, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak(&r->settled, &cur, v)) {
    }
}

/* The hold side of an applied order: a reserve's hold becomes HELD, a
 * buy-held's or release's hold becomes FREE.  Compare-and-swaps on the
 * hold's exact state, so doing it twice (or late) changes nothing. */
static void s_settle_hold(sp_table_t *t, unsigned type, uint64_t out, uint32_t seq32)
{
    unsigned idx = S_OUT_HOLD(out);
    if (idx == 0 || idx > SP_DEDUP_SLOTS * SP_HOLDS_PER_PRODUCER) {
        return;
    }
    sp_hold_t *h = &s_holds(t)[idx - 1];
    uint64_t c = atomic_load(&h->ctl);
    if (type == SP_ORDER_RESERVE) {
        if (S_HSTATE(c) == SP_HOLD_CLAIMED && (uint32_t)S_HSEQ(c) == seq32) {
            atomic_compare_exchange_strong(&h->ctl, &c, S_HCTL(S_HSEQ(c), SP_HOLD_HELD));
        }
    } else if (type == SP_ORDER_BUY_HELD || type == SP_ORDER_RELEASE) {
        if (S_HSTATE(c) == SP_HOLD_HELD && (uint32_t)S_HSEQ(c) == S_OUT_RSEQ(out)) {
            atomic_compare_exchange_strong(&h->ctl, &c, S_HCTL(S_HSEQ(c), SP_HOLD_FREE));
        }
    }
}

/* Returns true when version v was not settled yet. */
static bool s_settle(sp_table_t *t, sp_row_t *r, uint64_t sv, uint64_t key)
{
    uint32_t v = SP_SV_VERSION(sv);
    if (v == 0 || atomic_load_explicit(&r->settled, memory_order_acquire) >= v) {
        return false;
    }
    uint32_t producer = SP_KEY_PRODUCER(key);
    if (producer == 0) {
        /* an anonymous change carries its own delta in the key */
        uint32_t low = SP_KEY_SEQ32(key);
        s_tally_add(r, v, low >> 24, low & 0xffffffu);
    } else {
        unsigned slot;
        sp_dentry_t *e = s_entry_of(t, key, &slot);
        uint64_t c = e != NULL ? atomic_load_explicit(&e->ctl, memory_order_acquire) : 0;
        if (e != NULL && (uint32_t)S_SEQ(c) == SP_KEY_SEQ32(key) && S_STATE(c) == SP_DE_PENDING) {
            uint64_t what = atomic_load_explicit(&e->what, memory_order_acquire);
            uint64_t out = atomic_load_explicit(&e->out, memory_order_acquire);
            /* still the same order of the same producer (seqlock-style) */
            if (atomic_load(&e->ctl) == c && atomic_load(&s_slots(t)[slot].producer) == producer &&
                S_WHAT_PRODUCT(what) == r->id) {
                s_tally_add(r, v, S_WHAT_TYPE(what), S_WHAT_QTY(what));
                s_settle_hold(t, S_WHAT_TYPE(what), out, SP_KEY_SEQ32(key));
                s_point(SP_CP_TALLIED);
                atomic_store_explicit(&e->res, S_RES(v, SP_SV_STOCK(sv)), memory_order_relaxed);
                atomic_store_explicit(&e->out, (out & ~0xffull) | SP_STATUS_ACCEPTED,
                                      memory_order_relaxed);
                atomic_compare_exchange_strong_explicit(&e->ctl, &c, (c & ~3ull) | SP_DE_DONE,
                                                        memory_order_release, memory_order_relaxed);
            }
        }
    }
    s_settled_max(r, v);
    return true;
}

/* Frees the hold a reserve claimed but never applied. */
static void s_unclaim_hold(sp_table_t *t, const sp_dentry_t *e, uint64_t seq)
{
    uint64_t what = atomic_load(&e->what), out = atomic_load(&e->out);
    unsigned idx = S_OUT_HOLD(out);
    if (S_WHAT_TYPE(what) != SP_ORDER_RESERVE || idx == 0 ||
        idx > SP_DEDUP_SLOTS * SP_HOLDS_PER_PRODUCER) {
        return;
    }
    sp_hold_t *h = &s_holds(t)[idx - 1];
    uint64_t c = S_HCTL(seq, SP_HOLD_CLAIMED);
    atomic_compare_exchange_strong(&h->ctl, &c, S_HCTL(seq, SP_HOLD_FREE));
}

/* Records a refusal (no row change) as the order's outcome. */
static void s_finish_refused(sp_table_t *t, sp_dentry_t *e, uint64_t claimed, uint8_t status,
                             uint64_t sv)
{
    s_unclaim_hold(t, e, S_SEQ(claimed));
    atomic_store_explicit(&e->res, S_RES(SP_SV_VERSION(sv), SP_SV_STOCK(sv)), memory_order_relaxed);
    uint64_t out = atomic_load_explicit(&e->out, memory_order_relaxed);
    atomic_store_explicit(&e->out, (out & ~0xffull) | status, memory_order_relaxed);
    atomic_compare_exchange_strong_explicit(&e->ctl, &claimed, (claimed & ~3ull) | SP_DE_DONE,
                                            memory_order_release, memory_order_relaxed);
}

/* Rolls back an order that was claimed but never applied (its hold too). */
static void s_roll_back(sp_table_t *t, sp_dentry_t *e, uint64_t c)
{
    s_unclaim_hold(t, e, S_SEQ(c));
    atomic_compare_exchange_strong(&e->ctl, &c, S_CTL(S_SEQ(c), 0, SP_DE_FREE));
}

/* Resolves a PENDING entry whose owner is dead: forward if its row shows it
 * as `last`, otherwise back. */
static void s_resolve_entry(sp_table_t *t, sp_dentry_t *e, uint32_t producer, uint64_t c)
{
    uint64_t what = atomic_load(&e->what);
    uint64_t key = SP_KEY(producer, S_SEQ(c));
    sp_row_t *r = sp_table_row(t, S_WHAT_PRODUCT(what));
    if (r != NULL) {
        s_u128 cur = s_load16(&r->sv);
        if (s_hi(cur) == key) {
            s_settle(t, r, s_lo(cur), s_hi(cur));
            return;
        }
    }
    s_roll_back(t, e, c);
}

/* The one place a dead lock holder's work is repaired: settle whatever the
 * row shows, and roll back the holder's order if the row does not show it. */
static void s_repair(sp_table_t *t, sp_row_t *r, uint64_t intent, pid_t holder)
{
    if (r != NULL) {
        s_u128 cur = s_load16(&r->sv);
        s_settle(t, r, s_lo(cur), s_hi(cur));
        if (s_hi(cur) == intent) {
            return;
        }
    }
    if (intent == 0 || SP_KEY_PRODUCER(intent) == 0) {
        return;
    }
    unsigned slot;
    sp_dentry_t *e = s_entry_of(t, intent, &slot);
    if (e == NULL) {
        return;
    }
    uint64_t c = atomic_load(&e->ctl);
    if ((uint32_t)S_SEQ(c) == SP_KEY_SEQ32(intent) && S_STATE(c) == SP_DE_PENDING &&
        S_PID(c) == holder) {
        s_roll_back(t, e, c);
    }
}

/* ---- applying ---- */

typedef struct {
    sp_table_t *t;
    sp_row_t *r;
    uint64_t key;
    unsigned type;
    uint32_t qty;
    sp_hold_t *hold;        /* buy-held and release: the hold they act on */
    uint32_t hold_rseq32;   /* and its reserve's seq (low 32 bits) */
    uint32_t holder;        /* holds: the holder's producer id */
    uint64_t hold_seq;      /* and the reserve's seq */
    uint64_t now_ns;        /* a buy-held of an expired hold is refused */
    uint64_t before, after; /* stock words */
} s_op_t;

/* The decision every strategy shares: given the current word (settled, so
 * the counters and holds are those of its version), what is the next one?
 * Returns 0 with *next filled, or the refusal code. */
static int s_decide(const s_op_t *op, uint64_t cur, uint64_t *next)
{
    uint32_t stock = SP_SV_STOCK(cur);
    uint32_t version = SP_SV_VERSION(cur) + 1;
    uint32_t after = stock;
    uint32_t qty = op->qty;
    switch (op->type) {
    case SP_ORDER_PURCHASE:
    case SP_ORDER_RESERVE:
        if (qty > stock) {
            return SP_E_OUT_OF_STOCK;
        }
        if (op->type == SP_ORDER_RESERVE) {
            sp_tally_t tl;
            sp_row_tally(op->r, &tl);
            if (tl.held + qty > SP_TALLY_HELD_MAX) {
                return SP_E_INVALID; /* more held units than a row counts */
            }
        }
        after = stock - qty;
        break;
    case SP_ORDER_RESTOCK:
        if (qty > SP_STOCK_MAX - stock) {
            return SP_E_STOCK_OVERFLOW;
        }
        after = stock + qty;
        break;
    case SP_ORDER_BUY_HELD:
    case SP_ORDER_RELEASE: {
        const sp_hold_t *h = op->hold;
        uint64_t c = h != NULL ? atomic_load(&h->ctl) : 0;
        if (h == NULL || S_HSTATE(c) != SP_HOLD_HELD || (uint32_t)S_HSEQ(c) != op->hold_rseq32 ||
            atomic_load(&h->qty) != qty || atomic_load(&h->product) != op->r->id) {
            return SP_E_NO_HOLD;
        }
        if (op->type == SP_ORDER_BUY_HELD && atomic_load(&h->expiry_ns) <= op->now_ns) {
            return SP_E_NO_HOLD; /* expired: the units go back, not to this buyer */
        }
        if (op->type == SP_ORDER_RELEASE) {
            if (qty > SP_STOCK_MAX - stock) {
                return SP_E_STOCK_OVERFLOW;
            }
            after = stock + qty;
        }
        break;
    }
    default:
        return SP_E_INVALID;
    }
    *next = ((uint64_t)version << 32) | after;
    return 0;
}

/* One attempt on the row, with whatever exclusion the strategy provides.
 * Returns 0 (changed), a refusal code, or -EAGAIN (lost a race: retry). */
static int s_try(s_op_t *op)
{
    s_u128 cur = s_load16(&op->r->sv);
    op->before = s_lo(cur);
    s_settle(op->t, op->r, s_lo(cur), s_hi(cur));
    int rc = s_decide(op, s_lo(cur), &op->after);
    if (rc < 0) {
        op->after = op->before;
        return rc;
    }
    if (!s_cas16(&op->r->sv, cur, s_make(op->after, op->key))) {
        return -EAGAIN;
    }
    s_point(SP_CP_CHANGED);
    s_settle(op->t, op->r, op->after, op->key);
    return 0;
}

static int s_timedlock(pthread_mutex_t *m)
{
    struct timespec deadline = sp_deadline_realtime(SP_LOCK_TIMEOUT_MS);
    int rc = pthread_mutex_timedlock(m, &deadline);
    if (rc == ETIMEDOUT) {
        return SP_E_TIMEOUT;
    }
    return rc == EOWNERDEAD ? 1 : -rc;
}

static int s_apply(s_op_t *op, sp_sync_t sync)
{
    int rc;
    if (sync == SP_SYNC_CAS) {
        while ((rc = s_try(op)) == -EAGAIN) {
        }
        return rc;
    }
    sp_table_hdr_t *h = sp_table_hdr(op->t);
    bool table = sync == SP_SYNC_TABLE_LOCK;
    pthread_mutex_t *m = table ? &h->table_lock : &op->r->lock;
    _Atomic uint64_t *intent = table ? &h->table_intent : &op->r->intent;
    _Atomic int32_t *intent_pid = table ? &h->table_intent_pid : &op->r->intent_pid;
    rc = s_timedlock(m);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        /* the holder died inside: repair from its in-progress record */
        uint64_t k = atomic_load(intent);
        sp_row_t *r = op->r;
        if (table && k != 0 && SP_KEY_PRODUCER(k) != 0) {
            unsigned slot;
            sp_dentry_t *e = s_entry_of(op->t, k, &slot);
            r = e != NULL ? sp_table_row(op->t, S_WHAT_PRODUCT(atomic_load(&e->what))) : NULL;
        }
        s_repair(op->t, r, k, atomic_load(intent_pid));
        atomic_store(intent, 0);
        pthread_mutex_consistent(m);
    }
    atomic_store(intent_pid, (int32_t)s_self());
    atomic_store(intent, op->key);
    s_point(SP_CP_LOCKED);
    while ((rc = s_try(op)) == -EAGAIN) {
        /* only a settle can race with us under the lock; try again */
    }
    s_point(SP_CP_DONE);
    atomic_store(intent, 0);
    pthread_mutex_unlock(m);
    return rc;
}

static void s_fill(sp_outcome_t *out, int rc, const s_op_t *op)
{
    out->holder = op->holder;
    out->hold_seq = op->hold_seq;
    out->status = sp_wire_status_of(rc);
    out->original = out->status;
    out->changed = rc == 0;
    out->old_stock = SP_SV_STOCK(op->before);
    out->stock = SP_SV_STOCK(op->after);
    out->version = SP_SV_VERSION(op->after);
}

static void s_answer_duplicate(const sp_dentry_t *e, uint64_t what, sp_outcome_t *out)
{
    uint64_t res = atomic_load(&e->res);
    uint8_t first = (uint8_t)atomic_load(&e->out);
    out->status = atomic_load(&e->what) == what ? SP_STATUS_DUPLICATE : SP_STATUS_CONFLICT;
    out->original = first;
    out->stock = out->old_stock = (uint32_t)res;
    out->version = (uint32_t)(res >> 32);
}

/* Holds, before the row: a reserve claims a free hold of its producer (one
 * hold per product); a buy-held or release finds its producer's live hold of
 * that product and quantity (or is given one: an expiry).  The hold's index
 * goes into the entry first, so whoever rolls the order back finds it. */
static int s_hold_prepare(sp_table_t *t, unsigned slot, const sp_order_t *o, sp_dentry_t *e,
                          sp_hold_t *given, s_op_t *op)
{
    sp_hold_t *all = s_holds(t);
    if (given != NULL) {
        uint64_t c = atomic_load(&given->ctl);
        op->hold = given;
        op->hold_rseq32 = (uint32_t)S_HSEQ(c);
        op->holder =
            atomic_load(&s_slots(t)[(unsigned)(given - all) / SP_HOLDS_PER_PRODUCER].producer);
        op->hold_seq = S_HSEQ(c);
        atomic_store(&e->out, S_OUT(0, (unsigned)(given - all) + 1, S_HSEQ(c)));
        return 0;
    }
    unsigned base = slot * SP_HOLDS_PER_PRODUCER;
    sp_hold_t *hs = &all[base];
    if (o->type == SP_ORDER_RESERVE) {
        for (unsigned i = 0; i < SP_HOLDS_PER_PRODUCER; i++) {
            if (S_HSTATE(atomic_load(&hs[i].ctl)) != SP_HOLD_FREE &&
                atomic_load(&hs[i].product) == o->product_id) {
                return SP_E_NO_HOLD; /* one hold per product and producer */
            }
        }
        for (unsigned i = 0; i < SP_HOLDS_PER_PRODUCER; i++) {
            uint64_t c = atomic_load(&hs[i].ctl);
            if (S_HSTATE(c) != SP_HOLD_FREE) {
                continue;
            }
            atomic_store(&e->out, S_OUT(0, base + i + 1, o->seq));
            if (!atomic_compare_exchange_strong(&hs[i].ctl, &c, S_HCTL(o->seq, SP_HOLD_CLAIMED))) {
                continue;
            }
            op->holder = o->producer_id;
            op->hold_seq = o->seq;
            unsigned secs = o->reserved != 0 ? o->reserved : SP_HOLD_DEFAULT_S;
            atomic_store(&hs[i].product, o->product_id);
            atomic_store(&hs[i].qty, o->quantity);
            atomic_store(&hs[i].expiry_ns, sp_now_ns() + (uint64_t)secs * SP_NS_PER_SEC);
            atomic_store(&hs[i].pid, atomic_load(&s_slots(t)[slot].pid));
            return 0;
        }
        atomic_store(&e->out, 0);
        return SP_E_NO_HOLD; /* all of this producer's holds are in use */
    }
    for (unsigned i = 0; i < SP_HOLDS_PER_PRODUCER; i++) {
        uint64_t c = atomic_load(&hs[i].ctl);
        if (S_HSTATE(c) == SP_HOLD_HELD && atomic_load(&hs[i].product) == o->product_id &&
            atomic_load(&hs[i].qty) == o->quantity) {
            op->hold = &hs[i];
            op->hold_rseq32 = (uint32_t)S_HSEQ(c);
            op->holder = o->producer_id;
            op->hold_seq = S_HSEQ(c);
            atomic_store(&e->out, S_OUT(0, base + i + 1, S_HSEQ(c)));
            return 0;
        }
    }
    return SP_E_NO_HOLD;
}

static int s_commit(sp_table_t *t, sp_sync_t sync, const sp_order_t *o, sp_hold_t *given,
                    uint64_t now_ns, sp_outcome_t *out);

int sp_commit_order(sp_table_t *t, sp_sync_t sync, const sp_order_t *o, sp_outcome_t *out)
{
    return s_commit(t, sync, o, NULL, sp_now_ns(), out);
}

int sp_commit_order_at(sp_table_t *t, sp_sync_t sync, const sp_order_t *o, uint64_t now_ns,
                       sp_outcome_t *out)
{
    return s_commit(t, sync, o, NULL, now_ns, out);
}

static int s_commit(sp_table_t *t, sp_sync_t sync, const sp_order_t *o, sp_hold_t *given,
                    uint64_t now_ns, sp_outcome_t *out)
{
    memset(out, 0, sizeof *out);
    out->status = out->original = SP_STATUS_INVALID;
    if (sp_wire_check_order(o) < 0 || sync >= SP_SYNC_COUNT) {
        return 0;
    }
    sp_row_t *r = sp_table_row(t, o->product_id);
    if (r == NULL) {
        out->status = out->original = SP_STATUS_UNKNOWN_PRODUCT;
        return 0;
    }
    if (!sp_table_writable(t)) {
        return -EROFS;
    }
    pid_t me = s_self();
    int slot = s_slot(t, o->producer_id, 0);
    if (slot < 0) {
        return slot;
    }
    sp_dentry_t *e = &s_window(t, (unsigned)slot)[o->seq & (SP_DEDUP_WINDOW - 1)];
    uint64_t what = S_WHAT(o->product_id, o->quantity, o->type);
    uint64_t claimed;
    for (;;) {
        uint64_t c = atomic_load_explicit(&e->ctl, memory_order_acquire);
        uint64_t seq = S_SEQ(c);
        unsigned st = S_STATE(c);
        if (st == SP_DE_PENDING && (seq != o->seq || S_PID(c) != me) && s_dead(S_PID(c))) {
            s_resolve_entry(t, e, o->producer_id, c);
            continue;
        }
        if (seq == o->seq && (st == SP_DE_DONE || st == SP_DE_JOURNALED)) {
            s_answer_duplicate(e, what, out);
            return 0;
        }
        if (seq > o->seq || st == SP_DE_PENDING) {
            /* older than the window, or a copy (or its predecessor in this
             * entry) is being applied right now: its result will come */
            out->status = SP_STATUS_DUPLICATE;
            out->original = seq > o->seq ? SP_ORIGINAL_UNKNOWN : SP_ORIGINAL_PENDING;
            return 0;
        }
        claimed = S_CTL(o->seq, me, SP_DE_PENDING);
        if (atomic_compare_exchange_weak_explicit(&e->ctl, &c, claimed, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            break;
        }
    }
    atomic_store_explicit(&e->what, what, memory_order_release);
    atomic_store_explicit(&e->out, 0, memory_order_relaxed);
    /* the slot's idle clock, written at most once a millisecond: its cache
     * line is shared by every worker answering this producer */
    _Atomic uint64_t *used = &s_slots(t)[slot].used_ns;
    if (now_ns - atomic_load_explicit(used, memory_order_relaxed) > SP_NS_PER_MS) {
        atomic_store_explicit(used, now_ns, memory_order_relaxed);
    }
    s_point(SP_CP_CLAIMED);

    s_op_t op = {.t = t,
                 .r = r,
                 .key = SP_KEY(o->producer_id, o->seq),
                 .type = o->type,
                 .qty = o->quantity,
                 .now_ns = now_ns};
    int rc = 0;
    if (o->type >= SP_ORDER_RESERVE) {
        rc = s_hold_prepare(t, (unsigned)slot, o, e, given, &op);
    }
    if (rc < 0) {
        op.before = op.after = atomic_load(&r->sv);
    } else {
        rc = s_apply(&op, sync);
    }
    s_fill(out, rc, &op);
    if (rc == SP_E_TIMEOUT) {
        s_roll_back(t, e, claimed); /* never applied: a retry may apply it */
        return 0;
    }
    if (rc < 0) {
        s_finish_refused(t, e, claimed, out->status, op.before);
    }
    out->journal = true;
    out->journal_status = out->status;
    return 0;
}

void sp_commit_journaled(sp_table_t *t, uint32_t producer, uint64_t seq)
{
    int slot = s_find(t, producer);
    if (slot < 0) {
        return;
    }
    sp_dentry_t *e = &s_window(t, (unsigned)slot)[seq & (SP_DEDUP_WINDOW - 1)];
    uint64_t c = atomic_load(&e->ctl);
    if (S_SEQ(c) == seq && S_STATE(c) == SP_DE_DONE) {
        atomic_compare_exchange_strong(&e->ctl, &c, (c & ~3ull) | SP_DE_JOURNALED);
    }
}

unsigned sp_commit_unjournaled(sp_table_t *t, uint32_t only, pid_t dead_pid,
                               sp_commit_visit_fn visit, void *ctx)
{
    pid_t me = s_self();
    unsigned n = 0;
    for (unsigned i = 0; i < SP_DEDUP_SLOTS; i++) {
        uint32_t producer = atomic_load(&s_slots(t)[i].producer);
        if (only != 0 && producer != only) {
            continue;
        }
        sp_dentry_t *w = s_window(t, i);
        for (unsigned k = 0; producer != 0 && k < SP_DEDUP_WINDOW; k++) {
            uint64_t c = atomic_load(&w[k].ctl);
            pid_t owner = S_PID(c);
            if (S_STATE(c) != SP_DE_DONE || owner == me ||
                !(dead_pid > 0 ? owner == dead_pid : s_dead(owner))) {
                continue;
            }
            uint64_t mine = S_CTL(S_SEQ(c), me, SP_DE_DONE);
            if (!atomic_compare_exchange_strong(&w[k].ctl, &c, mine)) {
                continue; /* someone else took it */
            }
            uint64_t what = atomic_load(&w[k].what), res = atomic_load(&w[k].res);
            sp_commit_view_t v = {.producer = producer,
                                  .product = S_WHAT_PRODUCT(what),
                                  .quantity = S_WHAT_QTY(what),
                                  .version = (uint32_t)(res >> 32),
                                  .stock = (uint32_t)res,
                                  .seq = S_SEQ(c),
                                  .type = (uint8_t)S_WHAT_TYPE(what),
                                  .status = S_OUT_STATUS(atomic_load(&w[k].out)),
                                  .owner = owner};
            uint64_t outw = atomic_load(&w[k].out);
            unsigned hidx = S_OUT_HOLD(outw);
            if (hidx != 0 && hidx <= SP_DEDUP_SLOTS * SP_HOLDS_PER_PRODUCER) {
                v.holder = atomic_load(&s_slots(t)[(hidx - 1) / SP_HOLDS_PER_PRODUCER].producer);
                v.hold_seq = S_OUT_RSEQ(outw);
            }
            n++;
            if (visit(ctx, &v) == 0) {
                atomic_compare_exchange_strong(&w[k].ctl, &mine, (mine & ~3ull) | SP_DE_JOURNALED);
            }
        }
    }
    return n;
}

int sp_commit_anonymous(sp_table_t *t, sp_sync_t sync, unsigned type, uint32_t id, uint32_t qty,
                        sp_change_t *chg)
{
    memset(chg, 0, sizeof *chg);
    if ((type != SP_ORDER_PURCHASE && type != SP_ORDER_RESTOCK) || qty == 0 || qty > SP_QTY_MAX) {
        return SP_E_INVALID;
    }
    sp_row_t *r = sp_table_row(t, id);
    if (r == NULL) {
        return SP_E_UNKNOWN_PRODUCT;
    }
    if (!sp_table_writable(t)) {
        return -EROFS;
    }
    if (sync >= SP_SYNC_COUNT) {
        return SP_E_INVALID;
    }
    /* producer 0: the key carries the delta itself */
    s_op_t op = {.t = t, .r = r, .key = ((uint64_t)type << 24) | qty, .type = type, .qty = qty};
    int rc = s_apply(&op, sync);
    chg->old_stock = SP_SV_STOCK(op.before);
    chg->new_stock = SP_SV_STOCK(op.after);
    chg->version = SP_SV_VERSION(op.after);
    return rc;
}

/* ---- supervision ---- */

static unsigned s_resolve_slot(sp_table_t *t, unsigned slot, pid_t dead_pid)
{
    uint32_t producer = atomic_load(&s_slots(t)[slot].producer);
    sp_dentry_t *w = s_window(t, slot);
    unsigned n = 0;
    for (unsigned i = 0; producer != 0 && i < SP_DEDUP_WINDOW; i++) {
        uint64_t c = atomic_load(&w[i].ctl);
        if (S_STATE(c) != SP_DE_PENDING) {
            continue;
        }
        pid_t owner = S_PID(c);
        if (dead_pid > 0 ? owner == dead_pid : s_dead(owner)) {
            s_resolve_entry(t, &w[i], producer, c);
            n++;
        }
    }
    return n;
}

unsigned sp_commit_resolve(sp_table_t *t, uint32_t producer, pid_t dead_pid)
{
    int slot = s_find(t, producer);
    return slot < 0 ? 0 : s_resolve_slot(t, (unsigned)slot, dead_pid);
}

unsigned sp_commit_sweep(sp_table_t *t)
{
    /* rows first: a dead process's change is settled from the row alone */
    unsigned n = 0;
    for (uint32_t id = 1; id <= sp_table_capacity(t); id++) {
        sp_row_t *r = sp_table_row(t, id);
        if (r != NULL) {
            s_u128 cur = s_load16(&r->sv);
            n += s_settle(t, r, s_lo(cur), s_hi(cur));
        }
    }
    for (unsigned i = 0; i < SP_DEDUP_SLOTS; i++) {
        if (atomic_load(&s_slots(t)[i].producer) != 0) {
            n += s_resolve_slot(t, i, 0);
        }
    }
    return n;
}

/* ---- the chaos driver's crash hook ---- */

static int s_hook_point;
static uint64_t s_hook_one_in;
static uint64_t s_hook_rng;

static void s_env_hook(int point)
{
    if (point == s_hook_point && sp_rand_next(&s_hook_rng) % s_hook_one_in == 0) {
        (void)raise(SIGKILL); /* does not return */
    }
}

int sp_commit_hook_from_env(void)
{
    const char *v = getenv("SP_CRASH_COMMIT");
    if (v == NULL || *v == '\0') {
        return 0;
    }
    int point;
    unsigned long long one_in;
    char extra;
    /* test-only: chaos.sh sets it; a value out of range only misplaces a crash */
    /* NOLINTNEXTLINE(cert-err34-c) */
    if (sscanf(v, "%d:%llu%c", &point, &one_in, &extra) != 2 || point < 1 || point >= SP_CP_COUNT ||
        one_in < 1) {
        return SP_E_USAGE;
    }
    s_hook_point = point;
    s_hook_one_in = one_in;
    s_hook_rng = sp_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    sp_commit_hook = s_env_hook;
    return 0;
}

/* ---- recovery ---- */

void sp_commit_restore_row(sp_table_t *t, uint32_t id, uint32_t stock, uint32_t version,
                           uint64_t sold, uint64_t restocked, uint32_t held, uint64_t last_key)
{
    sp_row_t *r = sp_table_row(t, id);
    if (r == NULL) {
        return;
    }
    sp_tally_t tl = {.sold = sold, .restocked = restocked, .held = held, .version = version};
    s_u128 cur = s_load16(r->tally);
    s_cas16(r->tally, cur, s_tally_pack(&tl));
    cur = s_load16(&r->sv);
    s_cas16(&r->sv, cur, s_make(((uint64_t)version << 32) | stock, last_key));
    atomic_store(&r->settled, version);
}

int sp_commit_restore_entry(sp_table_t *t, const sp_commit_view_t *v)
{
    int slot = s_slot(t, v->producer, 0);
    if (slot < 0) {
        return slot;
    }
    sp_dentry_t *e = &s_window(t, (unsigned)slot)[v->seq & (SP_DEDUP_WINDOW - 1)];
    if (S_SEQ(atomic_load(&e->ctl)) > v->seq) {
        return 0; /* a newer order of this producer owns the entry */
    }
    atomic_store(&e->what, S_WHAT(v->product, v->quantity, v->type));
    atomic_store(&e->res, S_RES(v->version, v->stock));
    atomic_store(&e->out, v->status);
    atomic_store(&e->ctl, S_CTL(v->seq, 0, SP_DE_JOURNALED));
    return 0;
}

/* ---- holds: expiry, inspection, recovery ---- */

unsigned sp_commit_expire_holds(sp_table_t *t, sp_sync_t sync, uint64_t now_ns,
                                sp_commit_visit_fn visit, void *ctx)
{
    unsigned n = 0;
    sp_table_hdr_t *hdr = sp_table_hdr(t);
    for (unsigned i = 0; i < SP_DEDUP_SLOTS; i++) {
        uint32_t producer = atomic_load(&s_slots(t)[i].producer);
        if (producer == 0 || producer == SP_SYSTEM_PRODUCER) {
            continue;
        }
        pid_t holder = atomic_load(&s_slots(t)[i].pid);
        bool gone = holder > 0 && s_dead(holder);
        for (unsigned k = 0; k < SP_HOLDS_PER_PRODUCER; k++) {
            sp_hold_t *h = &s_holds(t)[(size_t)i * SP_HOLDS_PER_PRODUCER + k];
            if (S_HSTATE(atomic_load(&h->ctl)) != SP_HOLD_HELD ||
                (!gone && atomic_load(&h->expiry_ns) > now_ns)) {
                continue;
            }
            sp_order_t o = {.type = SP_ORDER_RELEASE,
                            .producer_id = SP_SYSTEM_PRODUCER,
                            .seq = atomic_fetch_add(&hdr->system_seq, 1) + 1,
                            .product_id = atomic_load(&h->product),
                            .quantity = atomic_load(&h->qty)};
            sp_outcome_t out;
            if (s_commit(t, sync, &o, h, sp_now_ns(), &out) < 0 || !out.changed) {
                continue; /* bought or released meanwhile */
            }
            n++;
            sp_commit_view_t v = {.producer = o.producer_id,
                                  .product = o.product_id,
                                  .quantity = o.quantity,
                                  .version = out.version,
                                  .stock = out.stock,
                                  .seq = o.seq,
                                  .type = o.type,
                                  .status = out.status,
                                  .owner = s_self(),
                                  .holder = producer,
                                  .hold_seq = out.hold_seq};
            if (visit != NULL && visit(ctx, &v) == 0) {
                sp_commit_journaled(t, o.producer_id, o.seq);
            }
        }
    }
    return n;
}

unsigned sp_commit_holds(sp_table_t *t, uint32_t id, uint64_t *units)
{
    unsigned n = 0;
    uint64_t u = 0;
    for (size_t i = 0; i < (size_t)SP_DEDUP_SLOTS * SP_HOLDS_PER_PRODUCER; i++) {
        sp_hold_t *h = &s_holds(t)[i];
        if (S_HSTATE(atomic_load(&h->ctl)) == SP_HOLD_HELD && atomic_load(&h->product) == id) {
            n++;
            u += atomic_load(&h->qty);
        }
    }
    if (units != NULL) {
        *units = u;
    }
    return n;
}

int sp_commit_restore_hold(sp_table_t *t, uint32_t producer, uint64_t reserve_seq, uint32_t product,
                           uint32_t qty)
{
    int slot = s_slot(t, producer, 0);
    if (slot < 0) {
        return slot;
    }
    sp_hold_t *hs = &s_holds(t)[(size_t)slot * SP_HOLDS_PER_PRODUCER];
    for (unsigned i = 0; i < SP_HOLDS_PER_PRODUCER; i++) {
        uint64_t c = atomic_load(&hs[i].ctl);
        if (S_HSTATE(c) != SP_HOLD_FREE && S_HSEQ(c) == reserve_seq) {
            return 0; /* already there: a snapshot saw it, and the journal too */
        }
    }
    for (unsigned i = 0; i < SP_HOLDS_PER_PRODUCER; i++) {
        if (S_HSTATE(atomic_load(&hs[i].ctl)) == SP_HOLD_FREE) {
            atomic_store(&hs[i].product, product);
            atomic_store(&hs[i].qty, qty);
            atomic_store(&hs[i].expiry_ns, 0); /* expired: the next pass releases it */
            atomic_store(&hs[i].pid, 0);
            atomic_store(&hs[i].ctl, S_HCTL(reserve_seq, SP_HOLD_HELD));
            return 0;
        }
    }
    return -EUSERS;
}

/* ---- snapshots ---- */

void sp_commit_row_image(sp_table_t *t, sp_row_t *r, sp_row_image_t *img)
{
    for (;;) {
        s_u128 cur = s_load16(&r->sv);
        s_settle(t, r, s_lo(cur), s_hi(cur));
        sp_tally_t tl;
        sp_row_tally(r, &tl);
        /* the counters include exactly this version, and it is still current */
        if (tl.version == SP_SV_VERSION(s_lo(cur)) && s_load16(&r->sv) == cur) {
            *img = (sp_row_image_t){.stock = SP_SV_STOCK(s_lo(cur)),
                                    .version = tl.version,
                                    .held = tl.held,
                                    .sold = tl.sold,
                                    .restocked = tl.restocked,
                                    .last = s_hi(cur)};
            return;
        }
    }
}

void sp_commit_each(sp_table_t *t, sp_commit_entry_fn entry, sp_commit_hold_fn hold, void *ctx)
{
    for (unsigned i = 0; i < SP_DEDUP_SLOTS; i++) {
        uint32_t producer = atomic_load(&s_slots(t)[i].producer);
        if (producer == 0) {
            continue;
        }
        sp_dentry_t *w = s_window(t, i);
        for (unsigned k = 0; entry != NULL && k < SP_DEDUP_WINDOW; k++) {
            uint64_t c = atomic_load(&w[k].ctl);
            if (S_STATE(c) != SP_DE_DONE && S_STATE(c) != SP_DE_JOURNALED) {
                continue;
            }
            uint64_t what = atomic_load(&w[k].what), res = atomic_load(&w[k].res);
            uint64_t out = atomic_load(&w[k].out);
            if (atomic_load(&w[k].ctl) == c) {
                entry(ctx, producer, S_SEQ(c), what, res, out);
            }
        }
        const sp_hold_t *h = &s_holds(t)[(size_t)i * SP_HOLDS_PER_PRODUCER];
        for (unsigned k = 0; hold != NULL && k < SP_HOLDS_PER_PRODUCER; k++) {
            uint64_t c = atomic_load(&h[k].ctl);
            if (S_HSTATE(c) == SP_HOLD_HELD) {
                hold(ctx, producer, S_HSEQ(c), atomic_load(&h[k].product), atomic_load(&h[k].qty));
            }
        }
    }
}

int sp_commit_restore_raw(sp_table_t *t, uint32_t producer, uint64_t seq, uint64_t what,
                          uint64_t res, uint64_t out)
{
    int slot = s_slot(t, producer, 0);
    if (slot < 0) {
        return slot;
    }
    sp_dentry_t *e = &s_window(t, (unsigned)slot)[seq & (SP_DEDUP_WINDOW - 1)];
    if (S_SEQ(atomic_load(&e->ctl)) > seq) {
        return 0;
    }
    atomic_store(&e->what, what);
    atomic_store(&e->res, res);
    atomic_store(&e->out, out & 0xffu); /* hold references do not survive */
    atomic_store(&e->ctl, S_CTL(seq, 0, SP_DE_JOURNALED));
    return 0;
}

void sp_commit_end_hold(sp_table_t *t, uint32_t holder, uint32_t reserve_seq32)
{
    int slot = s_find(t, holder);
    if (slot < 0) {
        return;
    }
    sp_hold_t *hs = &s_holds(t)[(size_t)slot * SP_HOLDS_PER_PRODUCER];
    for (unsigned i = 0; i < SP_HOLDS_PER_PRODUCER; i++) {
        uint64_t c = atomic_load(&hs[i].ctl);
        if (S_HSTATE(c) == SP_HOLD_HELD && (uint32_t)S_HSEQ(c) == reserve_seq32) {
            atomic_store(&hs[i].ctl, S_HCTL(S_HSEQ(c), SP_HOLD_FREE));
        }
    }
}

void sp_commit_idle_all(sp_table_t *t)
{
    for (unsigned i = 0; i < SP_DEDUP_SLOTS; i++) {
        if (atomic_load(&s_slots(t)[i].pid) == 0) {
            atomic_store(&s_slots(t)[i].used_ns, 0);
        }
    }
}
