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
 * The transport table (sp_transport.h) is meant to replace the branches
 * here one for one; nothing else in broker/ names a queue or a ring.
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
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_limits.h"
#include "sp_link.h"
#include "sp_log.h"
#include "sp_mq.h"
#include "sp_shmlink.h"
#include "sp_table.h"
#include "sp_wire.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* File descriptors the broker needs: measured 17 + 1 per worker (mq, shm)
 * or + 2 (zmq), doubled; over zmq one more per connected producer or
 * monitor (at most SP_DEDUP_SLOTS producers are remembered at once). */
#define S_FILES_BASE       32
#define S_FILES_PER_WORKER 4

/* The limits the run's queues and processes need, read before anything is
 * created (sp_limits.h). */
int sp_bipc_preflight(sp_broker_t *b, char *why, size_t cap)
{
    const sp_broker_cfg_t *cfg = b->cfg;
    sp_limits_t have;
    sp_limits_read(&have);
    sp_limits_need_t need = {.files = S_FILES_BASE + (uint64_t)b->nworkers * S_FILES_PER_WORKER};
    if (cfg->transport == SP_TRANSPORT_ZMQ) {
        need.files += SP_DEDUP_SLOTS;
    }
    if (cfg->transport == SP_TRANSPORT_MQ) {
        long depth = cfg->mq_depth, size = cfg->mq_msgsize;
        if (sp_mq_orders_size(&depth, &size) == 0) {
            /* the order queue, and one producer's reply queue of its default batch */
            unsigned batch = sp_wire_fit(SP_MSG_ORDERS, (size_t)size);
            batch = batch < SP_BATCH_DEFAULT ? batch : SP_BATCH_DEFAULT;
            uint64_t reply_depth = have.msg_max != SP_LIMIT_UNKNOWN ? have.msg_max : 10;
            need.mq_depth = (uint64_t)depth;
            need.mq_msgsize = (uint64_t)size;
            need.mq_queues = 2;
            need.mq_bytes =
                sp_limits_mq_bytes((uint64_t)depth, (uint64_t)size) +
                sp_limits_mq_bytes(reply_depth, sp_wire_msg_size(SP_MSG_RESULTS, batch));
        }
    }
    return sp_limits_check(&need, &have, why, cap);
}

/* Every IPC name of the instance is either free or ours: a name another
 * user holds is refused before anything is written, opened for writing or
 * removed (a squatter must not get our orders, nor we destroy their
 * objects). */
int sp_bipc_names_ours(const sp_names_t *n, char *why, size_t cap)
{
    struct {
        const char *what, *name;
        bool mq;
    } objs[] = {
        {"table", n->table, false}, {"ring", n->ring, false}, {"order queue", n->orders_mq, true}};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
        uid_t uid = 0;
        int rc = objs[i].mq ? sp_mq_owner(objs[i].name, &uid) : sp_shm_owner(objs[i].name, &uid);
        if (rc == -ENOENT) {
            continue;
        }
        if (rc == 0 && uid == geteuid()) {
            continue;
        }
        if (rc == 0) {
            sp_why(why, cap,
                   "the %s %s belongs to uid %u, not to us: refusing to use or remove it "
                   "(choose another --instance)",
                   objs[i].what, objs[i].name, (unsigned)uid);
        } else {
            sp_why(why, cap,
                   "the %s %s exists and cannot be opened (%s): refusing to touch it "
                   "(choose another --instance)",
                   objs[i].what, objs[i].name, sp_strerror(rc));
        }
        return -EACCES;
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

uint64_t sp_bipc_shm_bytes(const sp_broker_cfg_t *cfg)
{
    uint64_t shm_bytes = 0;
    if (cfg->transport == SP_TRANSPORT_SHM) {
        shm_bytes += sp_shm_bytes(cfg->mq_msgsize);
    }
    return shm_bytes;
}

void sp_bipc_remove_leftovers(sp_broker_t *b)
{
    unsigned left = (sp_mq_remove_all(&b->names) == 0) + (sp_shm_remove(&b->names) == 0) +
                    (access(b->names.run_dir, F_OK) == 0);
    if (left > 0) {
        sp_names_remove_run_dir(&b->names);
        sp_broker_notify(b, SP_LOG_WARN,
                         "removed %u leftover IPC object(s) of instance %s from a run that crashed",
                         left, b->cfg->instance);
    }
}

void sp_bipc_reset(sp_broker_t *b)
{
    sp_mq_remove_all(&b->names);
    sp_shm_remove(&b->names);
    sp_names_remove_run_dir(&b->names);
}

int sp_bipc_create(sp_broker_t *b, char *why, size_t cap)
{
    const sp_broker_cfg_t *cfg = b->cfg;
    int rc;
    if (cfg->transport == SP_TRANSPORT_MQ) {
        long depth, msgsize;
        rc = sp_mq_create_orders(&b->names, cfg->mq_depth, cfg->mq_msgsize, &depth, &msgsize, why,
                                 cap);
        if (rc < 0) {
            if (rc == -EEXIST) {
                snprintf(why, cap, "order queue %s already exists", b->names.orders_mq);
            }
            return rc;
        }
        b->mq_created = true;
        b->hdr->mq_depth = (uint32_t)depth;
        b->hdr->mq_msgsize = (uint32_t)msgsize;
    }
    if (cfg->transport == SP_TRANSPORT_SHM) {
        /* the table header's mq fields describe the orders ring here */
        rc = sp_shm_create(&b->shm, &b->names, cfg->mq_msgsize, why, cap);
        if (rc < 0) {
            return rc;
        }
        b->hdr->mq_depth = sp_shm_hdr(b->shm)->order_slots;
        b->hdr->mq_msgsize = sp_shm_hdr(b->shm)->slot_size;
    }
    return 0;
}

void sp_bipc_remove(sp_broker_t *b)
{
    if (b->mq_created) {
        sp_mq_remove_all(&b->names);
    }
    if (b->shm != NULL) {
        sp_shm_close(&b->shm);
        sp_shm_remove(&b->names);
    }
    /* reply queues are made by producers; remove any they left behind */
    uint32_t last = b->hdr ? atomic_load(&b->hdr->next_producer_id) : 0;
    for (uint32_t id = 1; id < last; id++) {
        char name[SP_IPC_NAME_MAX];
        sp_names_reply_mq(&b->names, id, name, sizeof name);
        sp_mq_unlink_name(name);
    }
    sp_names_remove_run_dir(&b->names);
    sp_table_unlink(b->names.table);
}

/* Sum of the reply queues' depths of the latest producers (mq). */
static uint64_t s_reply_depth(const sp_broker_t *b)
{
    enum { S_SCAN = 64 }; /* producers looked at: the most recent ones */
    uint32_t next = atomic_load(&b->hdr->next_producer_id);
    uint64_t sum = 0;
    for (uint32_t id = next > S_SCAN ? next - S_SCAN : 1; id < next; id++) {
        char name[SP_IPC_NAME_MAX];
        sp_names_reply_mq(&b->names, id, name, sizeof name);
        long d = sp_mq_depth(name);
        sum += d > 0 ? (uint64_t)d : 0;
    }
    return sum;
}

void sp_bipc_depths(sp_broker_t *b, sp_bctrs_t *c, const sp_router_stats_t *rs)
{
    const sp_table_hdr_t *h = b->hdr;
    if (b->cfg->transport == SP_TRANSPORT_MQ) {
        long d = sp_mq_orders_depth(&b->names);
        sp_bstats_ctr(c, SP_CTR_DEPTH, SP_HOP_ORDERS, d > 0 ? (uint64_t)d : 0);
        sp_bstats_ctr(c, SP_CTR_DEPTH_CAP, SP_HOP_ORDERS, h->mq_depth);
        sp_bstats_ctr(c, SP_CTR_DEPTH, SP_HOP_RESULTS, s_reply_depth(b));
    } else if (b->cfg->transport == SP_TRANSPORT_SHM) {
        sp_bstats_ctr(c, SP_CTR_DEPTH, SP_HOP_ORDERS, (uint64_t)sp_shm_orders_depth(b->shm));
        sp_bstats_ctr(c, SP_CTR_DEPTH_CAP, SP_HOP_ORDERS, h->mq_depth);
        sp_bstats_ctr(c, SP_CTR_DEPTH, SP_HOP_RESULTS, (uint64_t)sp_shm_results_depth(b->shm));
    } else {
        sp_bstats_ctr(c, SP_CTR_DEPTH, SP_HOP_ORDERS, rs->in_flight);
        sp_bstats_ctr(c, SP_CTR_DEPTH_CAP, SP_HOP_ORDERS,
                      (uint64_t)b->nworkers * SP_LINK_CREDIT_DEFAULT);
    }
}

bool sp_bipc_in_flight(sp_broker_t *b)
{
    if (b->cfg->transport == SP_TRANSPORT_MQ) {
        return sp_mq_orders_depth(&b->names) > 0;
    }
    if (b->cfg->transport == SP_TRANSPORT_SHM) {
        return sp_shm_orders_depth(b->shm) > 0;
    }
    sp_router_stats_t rs;
    sp_router_stats(b->router, &rs);
    return rs.in_flight > 0;
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
        snprintf(what, cap, "%s is not a stockpipe table (%s); left alone", names.table,
                 sp_strerror(rc));
        return rc;
    }
    int removed = 0;
    removed += sp_table_unlink(names.table) == 0;
    removed += sp_mq_remove_all(&names) == 0;
    removed += sp_shm_remove(&names) == 0;
    for (uint32_t id = 1; id < last_producer; id++) {
        char name[SP_IPC_NAME_MAX];
        sp_names_reply_mq(&names, id, name, sizeof name);
        removed += sp_mq_unlink_name(name) == 0;
    }
    sp_names_remove_run_dir(&names);
    snprintf(what, cap, "removed %d IPC object(s) of instance %s", removed, instance);
    return removed > 0 ? 0 : -ENOENT;
}
