/*
 * sp_worker — receive, validate, apply, answer, publish.
 *
 * The loop never blocks longer than SP_WORKER_POLL_MS, so it notices a
 * shutdown request promptly and keeps its heartbeat fresh while idle.
 */
#include "sp_worker.h"

#include "sp_apply.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_events.h"
#include "sp_hello.h"
#include "sp_journal.h"
#include "sp_instance.h"
#include "sp_link.h"
#include "sp_signal.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A group: order messages of one sender that were already waiting when the
 * one before was applied (transports whose worker end tells that at no
 * cost: cheap_depth), applied one after another, journaled with one write,
 * then answered in order.  One write of 51 KB cost half as much a record as
 * four of 12.8 KB on this machine's ext4; an answer waits only for the
 * messages that were queued behind it anyway, never for one to come. */
#define S_GROUP_MSGS    8    /* messages in a group at most */
#define S_GROUP_RECORDS 1024 /* no message joins a group holding this many orders */

struct sp_worker {
    sp_names_t names;
    const atomic_bool *stop; /* NULL: sp_signal */
    sp_table_t *table;
    sp_table_hdr_t *hdr;
    sp_worker_slot_t *slot;
    sp_link_t *link;
    sp_pub_t *pub;
    sp_sync_t sync;
    uint32_t id;
    sp_worker_stats_t st; /* the current (or last) run's */
    uint8_t *in;
    size_t in_cap;
    uint8_t *out; /* the group's answers, out_cap bytes each */
    size_t out_cap;
    uint32_t batch;
    sp_journal_t *journal; /* NULL: the instance keeps no journal */
    sp_jrec_t *jrecs;      /* the group's outcomes, appended before answering */
    uint64_t now_real;     /* wall clock of this message, for its journal records */
    unsigned jn;
    bool grouping;   /* the transport has cheap_depth */
    unsigned ng;     /* messages in the group (answers in out, not yet sent) */
    unsigned orders; /* orders in the group */
    uint32_t sender; /* the group's */
    sp_route_t route[S_GROUP_MSGS];
    size_t out_len[S_GROUP_MSGS];
    uint64_t stepped_ns[S_GROUP_MSGS]; /* when each message's orders were through the table */
    uint64_t events_ns;                /* when we last sent our pending events */
    uint64_t events_hold_ns;           /* cfg->events_hold_ms */
    long depth_seen; /* this turn's last look at the order queue's depth; -1: none yet */
};

/* Counts one message's hop of `ns` in our slot (sp_whop_t); only this
 * worker writes its slot: a plain load and store suffice. */
static void s_hop(sp_worker_t *w, sp_whop_t hop, uint64_t from, uint64_t to)
{
    _Atomic uint64_t *b = &w->slot->hop[hop][sp_lat_bucket(to > from ? to - from : 0)];
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Applies one decoded order and fills its result; publishes an event when
 * stock changed. */
static void s_apply_one(sp_worker_t *w, const sp_order_t *o, uint32_t sender, uint64_t now,
                        sp_result_t *res)
{
    sp_change_t chg;
    sp_outcome_t out;
    int rc = sp_apply_order(w->table, w->sync, o, sender, w->id, now, res, &chg, &out);
    if (out.journal && w->journal != NULL) {
        w->jrecs[w->jn++] = (sp_jrec_t){.kind = SP_JREC_KIND_OUTCOME,
                                        .type = o->type,
                                        .status = out.journal_status,
                                        .producer_id = o->producer_id,
                                        .product_id = o->product_id,
                                        .seq = o->seq,
                                        .quantity = o->quantity,
                                        .version = out.version,
                                        .stock_after = out.stock,
                                        .worker_id = w->id,
                                        .ts_ns = w->now_real,
                                        .aux = out.holder,
                                        .aux2 = out.hold_seq};
    }
    w->st.orders[res->status]++;
    atomic_fetch_add_explicit(&w->slot->orders[res->status], 1, memory_order_relaxed);
    if (o->sched_ns != 0 && res->applied_ns >= o->sched_ns) {
        /* only this worker writes its slot: a plain load and store suffice */
        _Atomic uint64_t *b = &w->slot->lat[sp_lat_bucket(res->applied_ns - o->sched_ns)];
        atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    if (rc == 0) {
        sp_event_t ev = {.product_id = o->product_id,
                         .old_stock = chg.old_stock,
                         .new_stock = chg.new_stock,
                         .row_version = chg.version,
                         .order_producer = o->producer_id,
                         .order_seq = o->seq,
                         .ts_ns = now};
        sp_pub_event(w->pub, &ev);
        /* after the row change: a snapshot reading this first holds the change */
        atomic_store_explicit(&w->slot->pub_seq, ev.pub_seq, memory_order_release);
        w->st.events++;
        atomic_fetch_add_explicit(&w->hdr->event_seq, 1, memory_order_relaxed);
    }
}

static void s_dead_letter(sp_worker_t *w, const sp_route_t *route)
{
    w->st.invalid_msgs++;
    atomic_fetch_add_explicit(&w->slot->invalid_msgs, 1, memory_order_relaxed);
    sp_link_release(w->link, route);
}

/* Sends the answer at `msg` (`len` bytes) along `route` without waiting:
 * a client keeps at most as many messages unanswered as its reply path
 * holds (docs/PROTOCOL.md section 8), so a full path is one that does not
 * read, and it must not hold a worker.  An answer not sent is a counted
 * drop (STATS, the closing line); the orders it answers stay applied and
 * recorded, so a resend gets the first outcome. */
static void s_answer(sp_worker_t *w, const uint8_t *msg, size_t len, const sp_route_t *route)
{
    if (sp_link_send(w->link, msg, len, route, 0) == 0) {
        return;
    }
    w->st.result_drops++;
    atomic_fetch_add_explicit(&w->slot->result_drops, 1, memory_order_relaxed);
}

/* A producer's HELLO: the one answer (sp_hello.c), sent the way the HELLO
 * came, or by its reply tag while the producer has no id yet. */
static void s_hello(sp_worker_t *w, size_t len, const sp_route_t *route)
{
    sp_hello_t hello;
    int n = sp_hello_answer(w->table, w->in, len, w->id, &hello, w->out, w->out_cap);
    if (n < 0) {
        s_dead_letter(w, route);
        return;
    }
    sp_route_t back = *route;
    back.reply_tag = hello.reply_tag;
    s_answer(w, w->out, (size_t)n, &back);
}

/* Applies the order message in w->in (checked: h) into the group: its
 * answer goes to the group's next slot. */
static void s_apply_msg(sp_worker_t *w, const sp_msg_hdr_t *h, const sp_route_t *route)
{
    w->st.msgs++;
    if (w->ng == 0) {
        /* the in-flight record: if we die, the supervisor resolves this
         * producer's unfinished orders (a group has one sender) */
        atomic_store_explicit(&w->slot->cur_producer, h->sender, memory_order_relaxed);
        w->sender = h->sender;
    }
    uint8_t *out = w->out + (size_t)w->ng * w->out_cap;
    uint64_t now = sp_now_ns();
    w->now_real = w->journal != NULL ? sp_realtime_ns() : 0;
    for (unsigned i = 0; i < h->count; i++) {
        sp_order_t o;
        sp_result_t res;
        sp_wire_get_order(sp_wire_crec(w->in, SP_MSG_ORDERS, i), &o);
        s_apply_one(w, &o, h->sender, now, &res);
        sp_wire_put_result(sp_wire_rec(out, SP_MSG_RESULTS, i), &res);
    }
    sp_wire_put_hdr(out, SP_MSG_RESULTS, h->count, w->id, w->batch++);
    w->stepped_ns[w->ng] = sp_now_ns();
    s_hop(w, SP_WHOP_STEP, now, w->stepped_ns[w->ng]);
    w->out_len[w->ng] = sp_wire_msg_size(SP_MSG_RESULTS, h->count);
    w->route[w->ng++] = *route;
    w->orders += h->count;
}

/* Journals the group's outcomes, then answers its messages in order.
 * Returns 0, or a negative code when the journal cannot be written (then
 * nothing is answered and the worker stops: durability is gone). */
static int s_finish_group(sp_worker_t *w)
{
    /* the journal before the answers: an acknowledged order is journaled */
    if (w->jn > 0) {
        int jrc = sp_journal_append(w->journal, w->jrecs, w->jn);
        if (jrc < 0) {
            return jrc; /* no answers: the orders stay unacknowledged */
        }
        for (unsigned i = 0; i < w->jn; i++) {
            sp_commit_journaled(w->table, w->jrecs[i].producer_id, w->jrecs[i].seq);
        }
        w->jn = 0;
    }
    uint64_t journaled = sp_now_ns();
    for (unsigned g = 0; g < w->ng; g++) {
        s_hop(w, SP_WHOP_JOURNAL, w->stepped_ns[g], journaled);
        s_answer(w, w->out + (size_t)g * w->out_cap, w->out_len[g], &w->route[g]);
        s_hop(w, SP_WHOP_REPLY, journaled, sp_now_ns());
    }
    w->ng = 0;
    w->orders = 0;
    atomic_store_explicit(&w->slot->cur_producer, 0, memory_order_relaxed);
    return 0;
}

/* Sends the events waiting in our publisher's batch when no order message
 * waits (we may sleep next), or the last batch left events_hold_ns ago;
 * else they wait to share a message with the next group's.  At full load
 * an event message is then full: one per group cost the broker a third of
 * a core at 3.5 M orders/s (a zmq_poll turn, a dozen system calls, per
 * message).  Transports without cheap_depth send them every turn. */
static void s_events_out(sp_worker_t *w, uint64_t now)
{
    if (!w->grouping || now - w->events_ns >= w->events_hold_ns ||
        (w->depth_seen >= 0 ? w->depth_seen : sp_link_ready(w->link)) <= 0) {
        sp_pub_flush(w->pub);
        w->events_ns = now;
    }
}

/* How long the next receive may wait: SP_WORKER_POLL_MS, or no longer
 * than the hold of events still waiting (the message the depth promised
 * may have gone to another worker). */
static int s_recv_wait_ms(const sp_worker_t *w)
{
    if (sp_pub_pending(w->pub) == 0) {
        return SP_WORKER_POLL_MS;
    }
    uint64_t due = w->events_ns + w->events_hold_ns, now = sp_now_ns();
    uint64_t ms = due > now ? (due - now + SP_NS_PER_MS - 1) / SP_NS_PER_MS : 0;
    return ms < SP_WORKER_POLL_MS ? (int)ms : SP_WORKER_POLL_MS;
}

/* Handles the message in w->in and, while the group has room and more of
 * its sender's wait, those too.  Returns 0, or a negative code when the
 * journal cannot be written (s_finish_group). */
static int s_handle(sp_worker_t *w, size_t len, const sp_route_t *route)
{
    sp_route_t r = *route;
    for (;;) {
        sp_msg_hdr_t h;
        int ok = sp_wire_check(w->in, len, &h);
        bool orders = ok == 0 && h.kind == SP_MSG_ORDERS && h.count > 0;
        if (w->ng > 0 && (!orders || h.sender != w->sender)) {
            int rc = s_finish_group(w); /* another sender's, or no orders */
            if (rc < 0) {
                return rc;
            }
        }
        if (ok == 0 && h.kind == SP_MSG_HELLO) {
            s_hello(w, len, &r);
        } else if (!orders) {
            s_dead_letter(w, &r);
        } else {
            s_apply_msg(w, &h, &r);
        }
        if (w->ng == 0 || w->ng == S_GROUP_MSGS || w->orders >= S_GROUP_RECORDS || !w->grouping) {
            break;
        }
        w->depth_seen = sp_link_ready(w->link);
        if (w->depth_seen <= 0) {
            break; /* s_events_out reads this look, not another */
        }
        int n = sp_link_recv(w->link, w->in, w->in_cap, &r, 0);
        w->depth_seen = -1; /* the look is spent: the message is ours or another's */
        if (n < 0) {
            if (n == -EMSGSIZE || n == -EPROTO) {
                s_dead_letter(w, &r);
            }
            break; /* anything else: the loop's next receive meets it */
        }
        len = (size_t)n;
    }
    return w->ng > 0 ? s_finish_group(w) : 0;
}

/* Opens our journal file of the current epoch (our own: no two writers
 * ever share one), closing the previous epoch's. */
static int s_journal_switch(sp_worker_t *w, char *why, size_t cap)
{
    uint32_t epoch = atomic_load(&w->hdr->journal_epoch);
    char path[SP_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/journal/w%u-p%ld-e%u.log", w->hdr->state_dir, w->id,
             (long)getpid(), epoch);
    sp_journal_t *next = NULL;
    int rc = sp_journal_open(&next, path, w->hdr->table_id, w->id,
                             (sp_fsync_policy_t)w->hdr->fsync_policy, w->hdr->fsync_interval_ms,
                             why, cap);
    if (rc == 0) {
        /* the interval's fdatasync off this thread: it took a fifth of a
         * busy worker's time (docs/BENCHMARKS.md, what exactly-once costs) */
        rc = sp_journal_background(next, why, cap);
        if (rc < 0) {
            sp_journal_close(&next);
        }
    }
    if (rc < 0) {
        return rc;
    }
    if (w->journal != NULL) {
        /* the old file must be complete on disk before the broker may
         * count it as contained in a snapshot */
        rc = sp_journal_sync(w->journal);
        sp_journal_close(&w->journal);
        if (rc < 0) {
            sp_journal_close(&next);
            sp_why(why, cap, "syncing the journal before switching failed: %s", sp_strerror(rc));
            return rc;
        }
    }
    w->journal = next;
    atomic_store(&w->slot->journal_epoch, epoch);
    return 0;
}

static uint64_t s_answered(const sp_worker_stats_t *st)
{
    uint64_t n = 0;
    for (int i = 0; i < SP_STATUS_COUNT; i++) {
        n += st->orders[i];
    }
    return n;
}

/* Releases what a worker holds; its slot is free again (pid 0). */
static void s_release(sp_worker_t *w)
{
    sp_journal_close(&w->journal);
    free(w->jrecs);
    w->jrecs = NULL;
    sp_pub_destroy(&w->pub);
    sp_link_close(&w->link);
    if (w->slot != NULL) {
        atomic_store(&w->slot->pid, 0);
        w->slot = NULL;
    }
    sp_table_close(&w->table);
    free(w->in);
    free(w->out);
    w->in = w->out = NULL;
}

int sp_worker_new(sp_worker_t **out, const sp_worker_cfg_t *cfg, char *why, size_t cap)
{
    *out = NULL;
    if (cfg->worker_id < 1 || cfg->worker_id > SP_WORKERS_MAX) {
        snprintf(why, cap, "worker id %u is not within 1..%d", cfg->worker_id, SP_WORKERS_MAX);
        return SP_E_USAGE;
    }
    sp_worker_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(why, cap, "out of memory");
        return -ENOMEM;
    }
    w->id = cfg->worker_id;
    w->stop = cfg->stop;
    w->events_hold_ns =
        (uint64_t)(cfg->events_hold_ms > 0 ? cfg->events_hold_ms : SP_WORKER_EVENTS_HOLD_MS) *
        SP_NS_PER_MS;
    int rc = sp_names_init(&w->names, cfg->instance, NULL);
    if (rc < 0) {
        snprintf(why, cap, "bad instance name '%s'", cfg->instance);
        free(w);
        return rc;
    }
    int open_ms = cfg->open_ms > 0 ? cfg->open_ms : SP_OPEN_TIMEOUT_MS;
    rc = sp_table_open_ready(&w->table, w->names.table, true, open_ms);
    if (rc < 0) {
        snprintf(why, cap, "cannot open table %s: %s", w->names.table, sp_strerror(rc));
        free(w);
        return rc;
    }
    w->hdr = sp_table_hdr(w->table);
    w->sync = cfg->sync >= 0 ? (sp_sync_t)cfg->sync : (sp_sync_t)w->hdr->sync;
    w->slot = &w->hdr->worker[cfg->worker_id - 1];

    /* messages are at most the path's message size, where it has one */
    w->in_cap = w->hdr->path_msgsize != 0 ? w->hdr->path_msgsize
                                          : sp_wire_msg_size(SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS);
    w->in = malloc(w->in_cap);
    const sp_transport_t *t = sp_transport_by_id(w->hdr->transport);
    w->grouping = t != NULL && t->cheap_depth;
    size_t group = w->grouping ? S_GROUP_MSGS : 1;
    w->out_cap = sp_wire_msg_size(SP_MSG_RESULTS, SP_WIRE_MAX_RECORDS);
    w->out = malloc(group * w->out_cap);
    /* a group takes a message while it holds fewer than S_GROUP_RECORDS */
    size_t recs = (w->grouping ? S_GROUP_RECORDS : 0) + SP_WIRE_MAX_RECORDS;
    w->jrecs = malloc(sizeof *w->jrecs * recs);
    if (w->in == NULL || w->out == NULL || w->jrecs == NULL) {
        snprintf(why, cap, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    if (w->hdr->state_dir[0] != '\0') {
        rc = s_journal_switch(w, why, cap);
        if (rc < 0) {
            goto fail;
        }
    }
    sp_link_cfg_t lc = {.role = SP_LINK_WORKER,
                        .transport = t,
                        .names = &w->names,
                        .endpoint = w->hdr->ep_workers,
                        .id = cfg->worker_id,
                        .max_msg = w->in_cap,
                        .credit = SP_LINK_CREDIT_DEFAULT};
    rc = sp_link_open(&w->link, &lc, why, cap);
    if (rc < 0) {
        goto fail;
    }
    w->pub = sp_pub_new(w->hdr->ep_events_in, cfg->worker_id);
    if (w->pub == NULL) {
        rc = errno != 0 ? -errno : -ENOMEM;
        snprintf(why, cap, "cannot connect to the event path %s", w->hdr->ep_events_in);
        goto fail;
    }
    atomic_store(&w->slot->pid, (int32_t)getpid());
    *out = w;
    return 0;
fail:
    s_release(w);
    free(w);
    return rc;
}

static bool s_stopping(const sp_worker_t *w)
{
    return w->stop != NULL ? atomic_load(w->stop) : sp_signal_stopping();
}

int sp_worker_run(sp_worker_t *w, char *why, size_t cap)
{
    memset(&w->st, 0, sizeof w->st);
    atomic_store(&w->slot->state, SP_PUB_RUNNING);
    int rc = 0;
    uint64_t next_beat = 0;
    while (!s_stopping(w)) {
        sp_route_t route;
        w->depth_seen = -1;
        int n = sp_link_recv(w->link, w->in, w->in_cap, &route, s_recv_wait_ms(w));
        if (n >= 0) {
            rc = s_handle(w, (size_t)n, &route);
            if (rc < 0) {
                snprintf(why, cap, "writing the journal failed: %s", sp_strerror(rc));
                break;
            }
        } else if (n == -EMSGSIZE || n == -EPROTO) {
            s_dead_letter(w, &route);
        } else if (n != SP_E_TIMEOUT && n != -EINTR && n != -EAGAIN) {
            snprintf(why, cap, "receiving orders failed: %s", sp_strerror(n));
            rc = n;
            break;
        }
        rc = w->journal != NULL ? sp_journal_tick(w->journal) : 0;
        if (rc < 0) {
            /* what was answered since the last sync may not be on disk */
            snprintf(why, cap, "syncing the journal failed: %s", sp_strerror(rc));
            break;
        }
        if (w->journal != NULL &&
            atomic_load_explicit(&w->hdr->journal_epoch, memory_order_relaxed) !=
                atomic_load_explicit(&w->slot->journal_epoch, memory_order_relaxed)) {
            rc = s_journal_switch(w, why, cap); /* the broker is taking a snapshot */
            if (rc < 0) {
                break;
            }
        }
        uint64_t now = sp_now_ns();
        s_events_out(w, now);
        atomic_store_explicit(&w->slot->heartbeat_ns, now, memory_order_relaxed);
        if (now >= next_beat) {
            sp_pub_heartbeat(w->pub, SP_PUB_RUNNING, s_answered(&w->st));
            next_beat = now + SP_HEARTBEAT_MS * SP_NS_PER_MS;
            /* a worker outlives nothing: without its broker, nobody
             * supervises it or will remove what it holds */
            pid_t broker = atomic_load(&w->hdr->broker_pid);
            if (broker > 0 && !sp_pid_alive(broker)) {
                snprintf(why, cap, "broker pid %d is gone: stopping", (int)broker);
                rc = SP_E_STOPPED;
                break;
            }
        }
    }
    atomic_store(&w->slot->state, SP_PUB_STOPPING);
    sp_pub_heartbeat(w->pub, SP_PUB_STOPPING, s_answered(&w->st));
    return rc;
}

const sp_worker_stats_t *sp_worker_stats(const sp_worker_t *self)
{
    return &self->st;
}

void sp_worker_destroy(sp_worker_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    s_release(*self_p);
    free(*self_p);
    *self_p = NULL;
}
