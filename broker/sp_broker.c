/*
 * sp_broker — the broker as a role object: new (the instance made ready),
 * run (workers started, the loop, drain and shutdown, the final save),
 * destroy (the instance's IPC objects removed).
 *
 * This file holds the order of things; each job is its own module (the
 * list is in sp_broker_impl.h), called from here.  One loop turn: one router
 * poll (at most SP_BROKER_TICK_MS, less when STATS are due or the snapshot
 * service has answers under way), a snapshot-service turn, supervision,
 * the periodic snapshot's step, expired holds back to stock, the router's
 * counters into the header, then STATS and the heartbeat when due.  The
 * loop notices a stop within one turn.
 *
 * Ownership: the broker owns its context (heap), the table mapping, the
 * router, the snapshot service, its journal file and the CURVE
 * authenticator, and, from the moment the table is its own, every IPC
 * object of the instance.  Errors: see sp_broker.h.
 */
#include "sp_broker.h"

#include "sp_bipc.h"
#include "sp_broker_impl.h"
#include "sp_bstats.h"
#include "sp_endpoints.h"
#include "sp_persist.h"
#include "sp_startup.h"
#include "sp_supervisor.h"

#include "sp_commit.h"
#include "sp_error.h"
#include "sp_log.h"
#include "sp_orphans.h"
#include "sp_signal.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last wait of the shutdown lets the workers' final events and
 * heartbeats through in polls this short. */
#define S_FLUSH_POLL_MS (SP_BROKER_TICK_MS / 5)

/* The loop turns once per message on the event path (thousands a second
 * at full load), and its housekeeping (reaping, hung workers, snapshots
 * due, expired holds: a look at every producer's pid in /proc, the
 * journal's sync, the header's counters) runs at most this often: run on
 * every turn it took a third of a core at 3.7 M orders/s. */
#define S_HOUSE_MS 1

/* Whether the caller asked us to stop (cfg->stop, else SIGINT/SIGTERM). */
static bool s_stopping(const sp_broker_t *b)
{
    return b->cfg->stop != NULL ? atomic_load(b->cfg->stop) : sp_signal_stopping();
}

void sp_broker_notify(const sp_broker_t *b, int level, const char *fmt, ...)
{
    if (b->cfg->notify == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    b->cfg->notify(level, fmt, ap);
    va_end(ap);
}

/* Releases holds past `now_ns` (or whose holder died).  No event carries
 * these changes, so STATS count the rounds that made some and monitors
 * resync (SP_CTR_UNPUBLISHED). */
static void s_expire_holds(sp_broker_t *b, uint64_t now_ns)
{
    if (sp_commit_expire_holds(b->table, (sp_sync_t)b->hdr->sync, now_ns,
                               b->journal_dir[0] != '\0' ? sp_orphans_journal : NULL, b) > 0) {
        b->holds_released_rounds++;
    }
}

/* Drain, then stop: DRAINING, no new orders, wait (at most
 * SP_BROKER_DRAIN_MS) until nothing is in flight or no worker is left; ask
 * the workers to stop and wait (at most SP_BROKER_STOP_MS), killing the
 * stragglers; let their last events through; end-of-stream, the last STATS
 * and a STOPPING heartbeat to monitors; CLOSED. */
static void s_shutdown(sp_broker_t *b)
{
    sp_table_set_state(b->table, SP_TABLE_DRAINING);
    sp_router_accept(b->router, false);
    uint64_t deadline = sp_now_ns() + SP_BROKER_DRAIN_MS * SP_NS_PER_MS;
    while (sp_bipc_in_flight(b) && sp_supervisor_live(b) > 0 && sp_now_ns() < deadline) {
        sp_router_poll(b->router, SP_BROKER_TICK_MS);
        sp_supervisor_reap(b, false);
    }
    b->stats.drained = !sp_bipc_in_flight(b);
    if (!b->stats.drained) {
        sp_broker_notify(b, SP_LOG_WARN, "orders still in flight after %d ms; stopping anyway",
                         SP_BROKER_DRAIN_MS);
    }
    sp_supervisor_stop(b);
    deadline = sp_now_ns() + SP_BROKER_STOP_MS * SP_NS_PER_MS;
    while (sp_supervisor_live(b) > 0 && sp_now_ns() < deadline) {
        sp_router_poll(b->router, SP_BROKER_TICK_MS);
        sp_supervisor_reap(b, false);
    }
    sp_supervisor_finish(b);
    /* the final table has no holds (sp_persist_final): release them now,
     * so the last STATS tell monitors to take their last look after it */
    s_expire_holds(b, UINT64_MAX);
    /* let the workers' last events and heartbeats through, then say goodbye */
    uint64_t flush_until = sp_now_ns() + SP_BROKER_TICK_MS * SP_NS_PER_MS;
    while (sp_now_ns() < flush_until) {
        sp_router_poll(b->router, S_FLUSH_POLL_MS);
    }
    /* the last STATS before the end of stream (PROTOCOL.md, section 9): a
     * monitor that ends at EOS has read them */
    sp_bstats_publish(b);
    uint8_t eos[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(eos, SP_MSG_EOS, 0, 0, 0);
    sp_router_publish(b->router, eos, sizeof eos);
    sp_bstats_beat(b, SP_PUB_STOPPING);
    sp_table_set_state(b->table, SP_TABLE_CLOSED);
}

int sp_broker_new(sp_broker_t **out, const sp_broker_cfg_t *cfg, char *why, size_t cap)
{
    *out = NULL;
    sp_broker_t *b = calloc(1, sizeof *b);
    if (b == NULL) {
        snprintf(why, cap, "%s", sp_strerror(-ENOMEM));
        return -ENOMEM;
    }
    b->cfg_copy = *cfg;
    b->cfg = cfg = &b->cfg_copy;
    /* the order matters: nothing of the instance exists until the limits
     * and the security flags are known good, nothing is touched until the
     * table (and so the instance) is ours, and the journal is set up before
     * any worker could write one */
    int rc = sp_startup_check(b, why, cap);
    if (rc < 0) {
        goto fail;
    }
    rc = sp_bipc_preflight(b, why, cap);
    if (rc == 0) {
        rc = sp_endpoints_secure(b, why, cap);
    }
    if (rc < 0) {
        goto fail;
    }
    rc = sp_startup_table(b, why, cap);
    if (rc < 0) {
        goto fail;
    }
    rc = sp_bipc_create(b, why, cap);
    if (rc < 0) {
        goto fail;
    }
    rc = sp_startup_journal(b, why, cap);
    if (rc < 0) {
        goto fail;
    }
    rc = sp_endpoints_layout(b, why, cap);
    if (rc < 0) {
        goto fail;
    }
    const sp_curve_keys_t *curve = b->curve_on ? &b->curve : NULL;
    rc = sp_router_new(&b->router, b->transport->routed, b->bind_ep[SP_BEP_ORDERS],
                       b->bind_ep[SP_BEP_WORKERS], b->bind_ep[SP_BEP_EVENTS_IN],
                       b->bind_ep[SP_BEP_EVENTS], curve, why, cap);
    if (rc < 0) {
        goto fail;
    }
    sp_router_sessions(b->router, b->table); /* one client cannot take every slot */
    rc = sp_snapsrv_new(&b->snapsrv, b->bind_ep[SP_BEP_SNAPSHOT], b->table, curve, why, cap);
    if (rc < 0) {
        goto fail;
    }
    *out = b;
    return 0;
fail:
    sp_broker_destroy(&b);
    return rc;
}

/* nats: monitors that reach only the NATS servers follow the shop through
 * them (sp_natsfeed.h).  The gateway follows our own endpoints as a local
 * monitor does, which CURVE endpoints would refuse it. */
static void s_natsfeed_start(sp_broker_t *self)
{
    const sp_broker_cfg_t *cfg = self->cfg;
    if (cfg->service == NULL || strcmp(self->transport->name, "nats") != 0) {
        return;
    }
    if (self->curve_on) {
        sp_broker_notify(self, SP_LOG_WARN,
                         "no event path over NATS: the events endpoint is a CURVE server "
                         "(monitors connect to it with --connect tcp://)");
        return;
    }
    char why[256] = "";
    int rc = sp_natsfeed_gateway(&self->natsfeed, cfg->service, cfg->instance, self->hdr->ep_events,
                                 self->hdr->ep_snapshot, why, sizeof why);
    if (rc < 0) {
        sp_broker_notify(self, SP_LOG_WARN, "no event path over NATS: %s", why);
    }
}

int sp_broker_run(sp_broker_t *self, sp_broker_stats_t *stats, char *why, size_t cap)
{
    assert(self != NULL && !self->ran);
    self->ran = true;
    const sp_broker_cfg_t *cfg = self->cfg;
    int rc = sp_supervisor_start(self, why, cap);
    if (rc == 0) {
        /* local clients find us from here on (sp_contact.h) */
        rc = sp_bipc_contact(self, why, cap);
    }
    if (rc == 0) {
        sp_table_set_state(self->table, SP_TABLE_READY);
        sp_broker_notify(self, SP_LOG_INFO,
                         "instance %s ready: %u products, %u workers%s, %s%s, %s", cfg->instance,
                         self->hdr->product_count, self->nworkers,
                         (cfg->worker_thread != NULL) ? " (threads)" : "", self->transport->name,
                         (cfg->worker_thread != NULL) ? " inproc://" : "", sp_sync_name(cfg->sync));
    }
    if (rc == 0 && self->use_tcp) {
        sp_endpoints_announce(self);
    }
    if (rc == 0) {
        s_natsfeed_start(self);
    }
    uint64_t next_beat = 0, next_stats = 0, next_house = 0;
    bool house_owed = false;
    bool serving = rc == 0;
    sp_persist_arm(self);
    while (serving && !s_stopping(self)) {
        uint64_t now = sp_now_ns();
        int wait_ms = sp_snapsrv_busy(self->snapsrv) ? 0 : SP_BROKER_TICK_MS;
        if (next_stats > now && (next_stats - now) / SP_NS_PER_MS < (uint64_t)wait_ms) {
            wait_ms = (int)((next_stats - now) / SP_NS_PER_MS);
        }
        if (house_owed && wait_ms > S_HOUSE_MS) {
            wait_ms = S_HOUSE_MS; /* the last turn put it off: not for a whole tick */
        }
        sp_router_poll(self->router, wait_ms);
        sp_snapsrv_turn(self->snapsrv);
        now = sp_now_ns();
        house_owed = now < next_house;
        if (!house_owed) {
            sp_supervisor_reap(self, true);
            if (!(cfg->worker_thread != NULL)) {
                sp_supervisor_kill_hung(self);
            }
            sp_persist_tick(self, sp_now_ns());
            /* holds past their time, or whose holder died, go back to stock */
            s_expire_holds(self, sp_now_ns());
            sp_orphans_tick(self);
            sp_bstats_header(self);
            next_house = sp_now_ns() + S_HOUSE_MS * SP_NS_PER_MS;
        }
        now = sp_now_ns();
        if (now >= next_stats) {
            sp_bstats_publish(self);
            next_stats = now + SP_BROKER_STATS_MS * SP_NS_PER_MS;
        }
        if (now >= next_beat) {
            sp_bstats_beat(self, SP_PUB_RUNNING);
            next_beat = now + SP_BROKER_HEARTBEAT_MS * SP_NS_PER_MS;
        }
    }
    s_shutdown(self);
    sp_bstats_collect(self);
    sp_persist_final(self);
    if (stats != NULL) {
        *stats = self->stats;
    }
    return rc;
}

void sp_broker_destroy(sp_broker_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_broker_t *self = *self_p;
    sp_journal_close(&self->journal);
    sp_natsfeed_stop(&self->natsfeed); /* it forwards our end of stream first */
    sp_snapsrv_destroy(&self->snapsrv);
    sp_router_destroy(&self->router);
    /* the instance's objects are ours to remove only once its table is (a
     * start refused because another broker runs it must not touch them) */
    if (self->table != NULL) {
        sp_bipc_remove(self);
        sp_table_close(&self->table);
    }
    /* after the last CURVE socket is closed */
    sp_endpoints_release(self);
    free(self);
    *self_p = NULL;
}

int sp_broker_clean(const char *instance, char *what, size_t cap)
{
    return sp_bipc_clean(instance, what, cap);
}
