/*
 * sp_supervisor — the broker's workers: starts them (consumer processes, or
 * threads of the broker running cfg->worker_thread), reaps and restarts
 * those that die, kills those that hang, and stops them all at shutdown.
 *
 * A worker that exits is noticed on the next loop turn (waitpid with
 * WNOHANG, never blocking); one whose loop has not turned for silent_ms is
 * killed (processes only: a thread cannot be).  Either way what it left half
 * done is handed to sp_orphans before its replacement starts with the same
 * id, in the same table slot.  One that keeps dying right after its start
 * without answering anything is given up on after SP_BROKER_RESTART_MAX
 * such deaths in a row.
 *
 * Called only from the broker's thread.  It reaps any child of the process
 * (waitpid(-1)): bin/broker has no children but its workers, and an
 * in-process broker's caller is told so (sp_broker.h).
 */
#include "sp_supervisor.h"

#include "sp_broker_impl.h"
#include "sp_child.h"
#include "sp_error.h"
#include "sp_log.h"
#include "sp_orphans.h"
#include "sp_router.h"
#include "sp_time.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

bool sp_supervisor_alive(const sp_bworker_t *c)
{
    return c->pid > 0 || (c->joinable && atomic_load(&c->running));
}

static void *s_worker_thread(void *arg)
{
    sp_bworker_t *c = arg;
    pthread_setname_np(pthread_self(), "sp-worker"); /* per-role CPU accounting */
    c->wrc = c->fn(c->instance, c->id, c->stop, c->why, sizeof c->why);
    atomic_store(&c->running, false);
    return NULL;
}

static uint64_t s_slot_answered(sp_worker_slot_t *slot)
{
    uint64_t n = 0;
    for (int i = 0; i < SP_STATUS_COUNT; i++) {
        n += atomic_load(&slot->orders[i]);
    }
    return n;
}

/* Starts worker `id` (1-based) into its slot, resetting the slot first.
 * Returns 0 or -errno (posix_spawn's or pthread_create's). */
static int s_spawn(sp_broker_t *b, unsigned id)
{
    char idbuf[16];
    snprintf(idbuf, sizeof idbuf, "%u", id);
    char *argv[] = {b->consumer, "--instance", b->names.name, "--worker-id", idbuf, NULL};
    /* reset the slot before the new worker writes it */
    sp_worker_slot_t *slot = &b->hdr->worker[id - 1];
    atomic_store(&slot->pid, 0);
    atomic_store(&slot->pub_seq, 0);
    atomic_store(&slot->state, 0);
    atomic_store(&slot->heartbeat_ns, sp_now_ns());
    if ((b->cfg->worker_thread != NULL)) {
        sp_bworker_t *c = &b->child[id - 1];
        c->fn = b->cfg->worker_thread;
        c->instance = b->names.name;
        c->id = id;
        c->stop = &b->workers_stop;
        atomic_store(&c->running, true);
        int trc = pthread_create(&c->thread, NULL, s_worker_thread, c);
        if (trc != 0) {
            atomic_store(&c->running, false);
            return -trc;
        }
        c->joinable = true;
        c->started_ns = sp_now_ns();
        return 0;
    }
    b->child[id - 1].answered_at_start = s_slot_answered(slot);
    sp_child_t proc;
    int rc = sp_child_spawn(&proc, argv, 0, NULL);
    if (rc < 0) {
        return rc;
    }
    /* sp_supervisor_reap finds it by pid among whatever waitpid(-1) reaps */
    b->child[id - 1].pid = proc.pid;
    b->child[id - 1].started_ns = sp_now_ns();
    return 0;
}

int sp_supervisor_start(sp_broker_t *b, char *why, size_t cap)
{
    int rc = 0;
    for (unsigned i = 1; i <= b->nworkers; i++) {
        rc = s_spawn(b, i);
        if (rc < 0) {
            snprintf(why, cap, "cannot start worker %u (%s): %s", i,
                     (b->cfg->worker_thread != NULL) ? "thread" : b->consumer, sp_strerror(rc));
            break;
        }
    }
    return rc;
}

/* A worker whose loop has not turned for SP_WORKER_SILENT_MS is hung: kill
 * it so the supervisor restarts it (its orders are resolved on the way). */
void sp_supervisor_kill_hung(sp_broker_t *b)
{
    uint64_t now = sp_now_ns();
    for (unsigned i = 0; i < b->nworkers; i++) {
        sp_bworker_t *c = &b->child[i];
        uint64_t beat = atomic_load(&b->hdr->worker[i].heartbeat_ns);
        if (c->pid > 0 && beat != 0 && now > beat && now - beat > b->silent_ms * SP_NS_PER_MS) {
            sp_broker_notify(b, SP_LOG_WARN, "worker %u (pid %d) silent for %llu ms: killing it",
                             i + 1, c->pid, (unsigned long long)((now - beat) / SP_NS_PER_MS));
            kill(c->pid, SIGKILL);
            atomic_store(&b->hdr->worker[i].heartbeat_ns, now); /* once */
        }
    }
}

/* Reaps exited workers; restarts them unless we are stopping. */
static void s_supervise_threads(sp_broker_t *b, bool restart)
{
    for (unsigned i = 0; i < b->nworkers; i++) {
        sp_bworker_t *c = &b->child[i];
        if (!c->joinable || atomic_load(&c->running)) {
            continue;
        }
        pthread_join(c->thread, NULL);
        c->joinable = false;
        if (!restart) {
            continue;
        }
        sp_broker_notify(b, SP_LOG_WARN, "worker thread %u returned: %s", i + 1,
                         c->why[0] ? c->why : sp_strerror(c->wrc));
        if (c->restarts < SP_BROKER_RESTART_MAX && s_spawn(b, i + 1) == 0) {
            c->restarts++;
            b->stats.restarts++;
        }
    }
}

void sp_supervisor_reap(sp_broker_t *b, bool restart)
{
    if ((b->cfg->worker_thread != NULL)) {
        s_supervise_threads(b, restart);
        return;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (unsigned i = 0; i < b->nworkers; i++) {
            sp_bworker_t *c = &b->child[i];
            if (c->pid != pid) {
                continue;
            }
            c->pid = 0;
            sp_router_worker_gone(b->router, i + 1, pid);
            sp_orphans_resolve(b, i + 1, pid);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                /* it may have changed the table without publishing the
                 * event: monitors learn of the death from the next STATS,
                 * after what it left is settled, and take a new snapshot */
                c->deaths++;
            }
            if (!restart) {
                break;
            }
            char how[48];
            sp_broker_notify(b, SP_LOG_WARN, "worker %u (pid %d) %s", i + 1, pid,
                             sp_child_explain(status, how, sizeof how));
            /* a worker that keeps dying right after its start without
             * answering anything is broken, not unlucky: give up on it after
             * SP_BROKER_RESTART_MAX such deaths in a row */
            if (sp_now_ns() - c->started_ns > (uint64_t)SP_BROKER_QUICK_DEATH_MS * SP_NS_PER_MS ||
                s_slot_answered(&b->hdr->worker[i]) != c->answered_at_start) {
                c->quick_deaths = 0;
            } else if (++c->quick_deaths >= SP_BROKER_RESTART_MAX) {
                sp_broker_notify(b, SP_LOG_ERROR,
                                 "worker %u died %u times within %d ms of starting; "
                                 "not restarting",
                                 i + 1, c->quick_deaths, SP_BROKER_QUICK_DEATH_MS);
                break;
            }
            c->restarts++;
            atomic_store(&b->hdr->worker[i].restarts, c->restarts);
            b->stats.restarts++;
            int rc = s_spawn(b, i + 1);
            if (rc < 0) {
                sp_broker_notify(b, SP_LOG_ERROR, "cannot restart worker %u: %s", i + 1,
                                 sp_strerror(rc));
            } else {
                sp_broker_notify(b, SP_LOG_INFO, "worker %u restarted as pid %d", i + 1, c->pid);
            }
            break;
        }
    }
}

unsigned sp_supervisor_live(const sp_broker_t *b)
{
    unsigned n = 0;
    for (unsigned i = 0; i < b->nworkers; i++) {
        n += sp_supervisor_alive(&b->child[i]);
    }
    return n;
}

void sp_supervisor_stop(sp_broker_t *b)
{
    atomic_store(&b->workers_stop, true);
    for (unsigned i = 0; i < b->nworkers; i++) {
        if (b->child[i].pid > 0) {
            kill(b->child[i].pid, SIGTERM);
        }
    }
}

void sp_supervisor_finish(sp_broker_t *b)
{
    for (unsigned i = 0; i < b->nworkers; i++) {
        sp_bworker_t *c = &b->child[i];
        if (c->joinable) {
            /* a thread cannot be killed: it polls the stop flag every
             * SP_WORKER_POLL_MS, so this wait is bounded */
            pthread_join(c->thread, NULL);
            c->joinable = false;
        }
        if (b->child[i].pid > 0) {
            sp_broker_notify(b, SP_LOG_WARN, "worker %u did not stop; killing it", i + 1);
            kill(b->child[i].pid, SIGKILL);
            waitpid(b->child[i].pid, NULL, 0);
            b->child[i].pid = 0;
        }
    }
}
