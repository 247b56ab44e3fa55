/*
 * sp_bipc — the broker's IPC objects: everything the broker does that
 * depends on which transport carries the orders, in one place.
 *
 *   before anything exists   the limits the run needs (files, mq depth,
 *                            message size and bytes; shm bytes for the ring),
 *                            and every name of the instance free or ours
 *   start-up                 a crashed run's queues, ring and sockets
 *                            removed; the order queue (mq) or the ring
 *                            segment (shm) created and described in the
 *                            table header
 *   running                  the order path's depth and capacity and the
 *                            result path's depth for STATS; whether orders
 *                            are still in flight (drain)
 *   shutdown and clean       every IPC object of the instance removed
 *
 * Each step is the transport's own operation (sp_transport.h): this module
 * asks the order path's transport, or every registered one where a crashed
 * run of any may have left something, and never which transport runs.
 *
 * Ownership: the broker creates (O_CREAT|O_EXCL, 0600) and removes; a name
 * another user holds is refused, never opened for writing nor removed.
 * Errors: 0 or a negative code with *why (SP_E_MQ_LIMIT and the like from
 * sp_limits name the setting to raise).  Nothing blocks but the system
 * calls themselves.  Broker thread only, except sp_bipc_clean, which
 * touches no broker and may run in any process.
 */
#include "sp_bipc.h"

#include "sp_broker_impl.h"
#include "sp_commit.h"
#include "sp_contact.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_limits.h"
#include "sp_link.h"
#include "sp_log.h"
#include "sp_table.h"
#include "sp_transport.h"
#include "sp_wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* File descriptors the broker needs: measured 17 + 1 per worker (mq, shm)
 * or + 2 (zmq), doubled; a transport adds what it holds per client. */
#define S_FILES_BASE       32
#define S_FILES_PER_WORKER 4

static sp_tparams_t s_params(const sp_broker_t *b)
{
    return (sp_tparams_t){.names = &b->names,
                          .depth = b->cfg->depth,
                          .msgsize = b->cfg->msgsize,
                          .service = b->cfg->service,
                          .replicas = b->cfg->replicas};
}

/* What the order path's transport needs, added to what every run needs. */
static int s_need(const sp_broker_t *b, sp_limits_need_t *need, char *why, size_t cap)
{
    sp_tparams_t p = s_params(b);
    const sp_transport_t *t = b->transport;
    return t->preflight != NULL ? t->preflight(&p, need, why, cap) : 0;
}

/* The limits the run's queues and processes need, read before anything is
 * created (sp_limits.h). */
int sp_bipc_preflight(sp_broker_t *b, char *why, size_t cap)
{
    sp_limits_t have;
    sp_limits_read(&have);
    sp_limits_need_t need = {.files = S_FILES_BASE + (uint64_t)b->nworkers * S_FILES_PER_WORKER};
    int rc = s_need(b, &need, why, cap);
    return rc < 0 ? rc : sp_limits_check(&need, &have, why, cap);
}

/* Every IPC name of the instance is either free or ours: a name another
 * user holds is refused before anything is written, opened for writing or
 * removed (a squatter must not get our orders, nor we destroy their
 * objects).  Every registered transport's names are looked at, not only
 * the one this run uses: a crashed run of another is cleaned up too. */
int sp_bipc_names_ours(const sp_names_t *n, char *why, size_t cap)
{
    uid_t uid = 0;
    int rc = sp_shm_owner(n->table, &uid);
    rc = sp_transport_owner_check("table", n->table, rc, uid, why, cap);
    for (unsigned i = 0; rc == 0 && sp_transport_at(i) != NULL; i++) {
        const sp_transport_t *t = sp_transport_at(i);
        rc = t->names_ours != NULL ? t->names_ours(n, why, cap) : 0;
    }
    if (rc < 0) {
        return rc;
    }
    struct stat st;
    if (lstat(n->run_dir, &st) == 0 && st.st_uid != geteuid()) {
        sp_why(why, cap,
               "the run directory %s belongs to uid %u, not to us: refusing to use or remove it",
               n->run_dir, (unsigned)st.st_uid);
        return -EACCES;
    }
    return 0;
}

uint64_t sp_bipc_shm_bytes(sp_broker_t *b)
{
    sp_limits_need_t need = {0};
    char why[16];
    return s_need(b, &need, why, sizeof why) == 0 ? need.shm_bytes : 0;
}

/* What runs of any transport left under the instance's names. */
static int s_clean_all(const sp_names_t *n, uint32_t producers)
{
    int removed = 0;
    for (unsigned i = 0; sp_transport_at(i) != NULL; i++) {
        const sp_transport_t *t = sp_transport_at(i);
        removed += t->clean != NULL ? t->clean(n, producers) : 0;
    }
    return removed;
}

void sp_bipc_remove_leftovers(sp_broker_t *b)
{
    unsigned left = (unsigned)s_clean_all(&b->names, 0) + (access(b->names.run_dir, F_OK) == 0);
    if (left > 0) {
        sp_names_remove_run_dir(&b->names);
        sp_broker_notify(b, SP_LOG_WARN,
                         "removed %u leftover IPC object(s) of instance %s from a run that crashed",
                         left, b->cfg->instance);
    }
}

void sp_bipc_reset(sp_broker_t *b)
{
    s_clean_all(&b->names, b->hdr != NULL ? atomic_load(&b->hdr->next_producer_id) : 0);
    sp_names_remove_run_dir(&b->names);
}

int sp_bipc_create(sp_broker_t *b, char *why, size_t cap)
{
    const sp_transport_t *t = b->transport;
    sp_tinfo_t info = {0};
    if (t->create != NULL) {
        sp_tparams_t p = s_params(b);
        int rc = t->create(&b->side, &p, &info, why, cap);
        if (rc < 0) {
            return rc;
        }
    }
    b->hdr->path_depth = info.depth;
    b->hdr->path_msgsize = info.msgsize;
    if (info.endpoint != NULL &&
        snprintf(b->path_ep, sizeof b->path_ep, "%s", info.endpoint) >= (int)sizeof b->path_ep) {
        sp_why(why, cap, "the order path's endpoint is longer than %d bytes", SP_ENDPOINT_MAX - 1);
        b->transport->destroy(&b->side, 0);
        return SP_E_USAGE;
    }
    return 0;
}

int sp_bipc_contact(sp_broker_t *b, char *why, size_t cap)
{
    const sp_table_hdr_t *h = b->hdr;
    sp_contact_t c = {0};
    snprintf(c.transport, sizeof c.transport, "%s", b->transport->name);
    if (b->transport->routed || b->path_ep[0] != '\0') {
        snprintf(c.orders, sizeof c.orders, "%s", h->ep_orders);
    }
    snprintf(c.events, sizeof c.events, "%s", h->ep_events);
    snprintf(c.snapshot, sizeof c.snapshot, "%s", h->ep_snapshot);
    snprintf(c.server_key, sizeof c.server_key, "%s", h->curve_server_key);
    return sp_contact_write(&b->names, &c, why, cap);
}

void sp_bipc_remove(sp_broker_t *b)
{
    uint32_t producers = b->hdr != NULL ? atomic_load(&b->hdr->next_producer_id) : 0;
    if (b->side != NULL) {
        b->transport->destroy(&b->side, producers);
    }
    /* reply objects producers made (and left behind) */
    s_clean_all(&b->names, producers);
    sp_names_remove_run_dir(&b->names);
    sp_table_unlink(b->names.table);
}

void sp_bipc_depths(sp_broker_t *b, sp_bctrs_t *c, const sp_router_stats_t *rs)
{
    const sp_transport_t *t = b->transport;
    if (t->routed) {
        /* no queue to measure: the router counts the batches it handed to
         * workers and has not seen answered */
        sp_bstats_ctr(c, SP_CTR_DEPTH, SP_HOP_ORDERS, rs->in_flight);
        sp_bstats_ctr(c, SP_CTR_DEPTH_CAP, SP_HOP_ORDERS,
                      (uint64_t)b->nworkers * SP_LINK_CREDIT_DEFAULT);
        return;
    }
    if (b->side != NULL && t->depth != NULL) {
        long d = t->depth(b->side);
        sp_bstats_ctr(c, SP_CTR_DEPTH, SP_HOP_ORDERS, d > 0 ? (uint64_t)d : 0);
        sp_bstats_ctr(c, SP_CTR_DEPTH_CAP, SP_HOP_ORDERS, b->hdr->path_depth);
    }
    if (b->side != NULL && t->reply_depth != NULL) {
        long d = t->reply_depth(b->side, atomic_load(&b->hdr->next_producer_id));
        sp_bstats_ctr(c, SP_CTR_DEPTH, SP_HOP_RESULTS, d > 0 ? (uint64_t)d : 0);
    }
}

bool sp_bipc_in_flight(sp_broker_t *b)
{
    if (b->transport->routed) {
        sp_router_stats_t rs;
        sp_router_stats(b->router, &rs);
        return rs.in_flight > 0;
    }
    return b->side != NULL && b->transport->depth != NULL && b->transport->depth(b->side) > 0;
}

int sp_bipc_clean(const char *instance, char *what, size_t cap)
{
    sp_names_t names;
    if (sp_names_init(&names, instance, NULL) < 0) {
        return SP_E_USAGE;
    }
    int rc = sp_bipc_names_ours(&names, what, cap);
    if (rc < 0) {
        return rc;
    }
    sp_table_t *t = NULL;
    rc = sp_table_open(&t, names.table, false);
    uint32_t last_producer = 0;
    if (rc == 0) {
        pid_t owner = atomic_load(&sp_table_hdr(t)->broker_pid);
        if (sp_pid_alive(owner)) {
            sp_table_close(&t);
            snprintf(what, cap, "broker pid %d of instance %s is alive", owner, instance);
            return -EBUSY;
        }
        last_producer = atomic_load(&sp_table_hdr(t)->next_producer_id);
        sp_table_close(&t);
    } else if (rc != -ENOENT) {
        sp_bipc_foreign_table(&names, rc, what, cap);
        return rc;
    }
    int removed = sp_table_unlink(names.table) == 0;
    removed += s_clean_all(&names, last_producer);
    sp_names_remove_run_dir(&names);
    snprintf(what, cap, "removed %d IPC object(s) of instance %s", removed, instance);
    return removed > 0 ? 0 : -ENOENT;
}

void sp_bipc_foreign_table(const sp_names_t *n, int rc, char *why, size_t cap)
{
    /* neither the broker nor --clean removes what it cannot read as its
     * own: it may be another program's, or another version's */
    sp_why(why, cap,
           "/dev/shm%s exists but is not a table this version of stockpipe can use (%s): left "
           "alone; if no program uses it, remove it with 'rm /dev/shm%s'",
           n->table, sp_strerror(rc), n->table);
}
