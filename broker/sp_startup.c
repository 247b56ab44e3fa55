/*
 * sp_startup — how a broker comes to own its instance: the configuration
 * checked, the table found or made, the journal set up.
 *
 * The table, in order of preference:
 *
 *   a dead broker's table in /dev/shm     re-attached: it holds every applied
 *                                         order; its workers are waited for
 *                                         (then killed) and what they left half
 *                                         done is resolved once our journal is
 *                                         open
 *   a snapshot and/or a journal on disk   the table was lost (a crash, a
 *                                         reboot): rebuilt from snapshot.bin or
 *                                         base.csv plus every journal record
 *   the last clean stop's table.csv       continued from
 *   the catalogue                         a new table (and --fresh always)
 *
 * A live broker's table is refused (-EEXIST), and so is any IPC name or run
 * directory of the instance that another user holds (sp_bipc): nothing is
 * written, opened for writing or removed before that is known.  The journal
 * directory's absolute path goes into the table header for the workers,
 * with the fsync policy, and the journal's base is saved once before any
 * worker journals.
 *
 * Errors: 0 or a negative code with *why (SP_E_USAGE for a bad flag or
 * environment value; -EEXIST, -EACCES, a CSV error naming the line and
 * field, a limit, -errno); a failure leaves the table closed (and removed
 * when we made it).  Re-attaching waits up to S_REATTACH_WAIT_MS for the
 * dead broker's workers; rebuilding reads the whole journal.  Broker thread
 * only.
 */
#include "sp_startup.h"

#include "sp_args.h"
#include "sp_bipc.h"
#include "sp_broker_impl.h"
#include "sp_catalogue.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_limits.h"
#include "sp_log.h"
#include "sp_orphans.h"
#include "sp_persist.h"
#include "sp_recover.h"
#include "sp_shard.h"
#include "sp_snapshot.h"
#include "sp_time.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The dead broker's workers stop on their own within a heartbeat; we look
 * every S_REATTACH_POLL_MS and kill those still there after the wait. */
#define S_REATTACH_WAIT_MS 2000
#define S_REATTACH_POLL_MS 10
/* What SP_WORKER_SILENT_MS may say, in ms */
#define S_SILENT_MS_MIN 100
#define S_SILENT_MS_MAX 600000

/* SP_WORKER_SILENT_MS in the environment stretches the time a worker may
 * go without a loop turn before it is killed as hung (the default is
 * SP_WORKER_SILENT_MS): under valgrind a worker runs 20-50 times slower. */
static int s_silent_ms(uint64_t *out, char *why, size_t cap)
{
    *out = SP_WORKER_SILENT_MS;
    const char *v = getenv("SP_WORKER_SILENT_MS");
    if (v == NULL || *v == '\0') {
        return 0;
    }
    return sp_arg_u64("SP_WORKER_SILENT_MS", v, S_SILENT_MS_MIN, S_SILENT_MS_MAX, out, why, cap);
}

static int s_consumer_path(const sp_broker_cfg_t *cfg, char *out, size_t cap)
{
    if (cfg->consumer_path != NULL) {
        snprintf(out, cap, "%s", cfg->consumer_path);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) {
        return -errno;
    }
    self[n] = '\0';
    snprintf(out, cap, "%s/consumer", dirname(self));
    return 0;
}

int sp_startup_check(sp_broker_t *b, char *why, size_t cap)
{
    const sp_broker_cfg_t *cfg = b->cfg;
    int rc = s_silent_ms(&b->silent_ms, why, cap);
    if (rc < 0) {
        return rc;
    }
    rc = sp_names_init(&b->names, cfg->instance, cfg->state_dir);
    if (rc < 0) {
        snprintf(why, cap, "bad instance name '%s' (use 1-%d of A-Z a-z 0-9 _ - .)", cfg->instance,
                 SP_INSTANCE_NAME_MAX);
        return SP_E_USAGE;
    }
    b->transport = cfg->transport != NULL ? cfg->transport : sp_transport_find("mq");
    const sp_transport_t *t = b->transport;
    b->nworkers = t->has_workers ? cfg->workers : 0;
    if (t->has_workers && (cfg->workers < 1 || cfg->workers > SP_WORKERS_MAX)) {
        snprintf(why, cap, "--workers must be 1..%d", SP_WORKERS_MAX);
        return SP_E_USAGE;
    }
    if (cfg->worker_thread != NULL && (!t->routed || cfg->tcp != NULL)) {
        snprintf(why, cap,
                 "worker threads (inproc://) need a transport through the broker's router "
                 "(zmq) without --tcp");
        return SP_E_USAGE;
    }
    if (cfg->tcp != NULL && !t->routed) {
        snprintf(why, cap,
                 "--tcp takes orders through the broker's router: --transport %s has none",
                 t->name);
        return SP_E_USAGE;
    }
    rc = s_consumer_path(cfg, b->consumer, sizeof b->consumer);
    if (b->nworkers > 0 && !(cfg->worker_thread != NULL) &&
        (rc < 0 || access(b->consumer, X_OK) < 0)) {
        snprintf(why, cap, "worker binary %s is not executable", b->consumer);
        return rc < 0 ? rc : -errno;
    }
    return 0;
}

/* --fresh, once the catalogue has loaded: the saved state (journal, base,
 * last clean stop's table, snapshot, marks) moves into a dated folder
 * beside it, STATE_DIR/replaced-YYYYmmdd-HHMMSS, never deleted: a typo in
 * --catalogue, or a --fresh given by mistake, costs nothing. */
static int s_set_aside(sp_broker_t *b, char *why, size_t cap)
{
    static const char *const what[] = {SP_JOURNAL_DIR,  SP_BASE_FILE,  SP_SNAPSHOT_FILE,
                                       SP_SNAPSHOT_BIN, SP_CLEAN_MARK, SP_SHARD_EXPORTED};
    char stamp[32], aside[SP_PATH_MAX + 64];
    time_t now = time(NULL);
    struct tm tm;
    if (strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime_r(&now, &tm)) == 0) {
        snprintf(stamp, sizeof stamp, "%lld", (long long)now);
    }
    snprintf(aside, sizeof aside, "%s/replaced-%s", b->names.state_dir, stamp);
    for (unsigned n = 2; mkdir(aside, 0700) < 0; n++) {
        if (errno != EEXIST || n > 100) {
            int err = errno;
            sp_why(why, cap, "--fresh: cannot make %s to keep the saved state in: %s", aside,
                   strerror(err));
            return -err;
        }
        snprintf(aside, sizeof aside, "%s/replaced-%s-%u", b->names.state_dir, stamp, n);
    }
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
        char src[SP_PATH_MAX + 32], dst[SP_PATH_MAX + 96];
        snprintf(src, sizeof src, "%s/%s", b->names.state_dir, what[i]);
        snprintf(dst, sizeof dst, "%s/%s", aside, what[i]);
        if (rename(src, dst) < 0 && errno != ENOENT) {
            int err = errno;
            sp_why(why, cap, "--fresh: cannot move %s into %s: %s (what moved is there)", src,
                   aside, strerror(err));
            return -err;
        }
    }
    (void)sp_file_fsync_dir(b->names.state_dir); /* best effort: the renames are done */
    sp_broker_notify(b, SP_LOG_WARN,
                     "--fresh: starting from the catalogue; the saved state it replaces is "
                     "kept in %s",
                     aside);
    return 0;
}

static int s_load_catalogue(sp_catalogue_t **cat, const char *path, char *why, size_t cap)
{
    *cat = sp_catalogue_new();
    if (*cat == NULL) {
        return -ENOMEM;
    }
    sp_csv_error_t cerr;
    int rc = sp_catalogue_load(*cat, path, &cerr);
    if (rc < 0) {
        if (cerr.line > 0) {
            sp_why(why, cap, "%s:%ld: field %d: %s", path, cerr.line, cerr.field, cerr.message);
        } else {
            sp_why(why, cap, "%s", cerr.message);
        }
        sp_catalogue_destroy(cat);
    }
    return rc;
}

/* Re-attaches to the table a dead broker left: it holds every applied
 * order, so it is kept; its workers are gone or going, and what they left
 * half done is resolved once our journal is open (s_journal_begin). */
static int s_reattach(sp_broker_t *b, char *why, size_t cap)
{
    sp_table_hdr_t *h = sp_table_hdr(b->table);
    char path[SP_PATH_MAX + 16];
    snprintf(path, sizeof path, "/dev/shm%s", b->names.table);
    struct stat st;
    if (stat(path, &st) == 0 && st.st_uid != geteuid()) {
        sp_why(why, cap, "%s belongs to uid %u, not to us: refusing to touch it", path,
               (unsigned)st.st_uid);
        return -EACCES;
    }
    /* the dead broker's workers stop on their own within a heartbeat */
    uint64_t deadline = sp_now_ns() + S_REATTACH_WAIT_MS * SP_NS_PER_MS;
    for (unsigned i = 0; i < SP_WORKERS_MAX; i++) {
        pid_t pid = atomic_load(&h->worker[i].pid);
        while (sp_pid_alive(pid) && sp_now_ns() < deadline) {
            sp_sleep_ns(S_REATTACH_POLL_MS * SP_NS_PER_MS);
        }
        if (sp_pid_alive(pid)) {
            kill(pid, SIGKILL);
        }
        atomic_store(&h->worker[i].pid, 0);
        atomic_store(&h->worker[i].cur_producer, 0);
    }
    /* its queues, ring and sockets are rebuilt; the table is what matters */
    sp_bipc_reset(b);
    h->sync = (uint32_t)b->cfg->sync;
    h->transport = b->transport->id;
    sp_table_set_state(b->table, SP_TABLE_CREATING);
    b->reattached = true;
    return 0;
}

/* Finds the instance's table: re-attaches to a dead broker's, rebuilds a
 * lost one from its base and journal, continues from the last clean stop's
 * table, or creates a new one from the catalogue. */
static int s_table_start(sp_broker_t *b, char *why, size_t cap)
{
    const sp_broker_cfg_t *cfg = b->cfg;
    int rc = sp_bipc_names_ours(&b->names, why, cap);
    if (rc < 0) {
        return rc;
    }
    rc = sp_table_open(&b->table, b->names.table, true);
    if (rc == 0) {
        pid_t owner = atomic_load(&sp_table_hdr(b->table)->broker_pid);
        if (sp_pid_alive(owner)) {
            sp_table_close(&b->table);
            sp_why(why, cap, "instance '%s' is already running (broker pid %d, /dev/shm%s)",
                   cfg->instance, (int)owner, b->names.table);
            return -EEXIST;
        }
        sp_broker_notify(
            b, SP_LOG_WARN,
            "found the table of a broker that died (pid %d) in /dev/shm%s: re-attaching "
            "to it (it holds every applied order)",
            (int)owner, b->names.table);
        rc = sp_shard_check_table(b, why, cap);
        if (rc == 0) {
            rc = s_reattach(b, why, cap);
        }
        if (rc < 0) {
            sp_table_close(&b->table);
        }
        return rc;
    }
    if (rc != -ENOENT) {
        sp_bipc_foreign_table(&b->names, rc, why, cap);
        return rc;
    }
    /* no table, so no live broker: queues, a ring or sockets under our name
     * are a crashed run's leftovers */
    sp_bipc_remove_leftovers(b);
    char journal[SP_PATH_MAX + 16], base[SP_PATH_MAX + 32], last[SP_PATH_MAX + 32];
    snprintf(journal, sizeof journal, "%s/%s", b->names.state_dir, SP_JOURNAL_DIR);
    snprintf(base, sizeof base, "%s/%s", b->names.state_dir, SP_BASE_FILE);
    snprintf(last, sizeof last, "%s/%s", b->names.state_dir, SP_SNAPSHOT_FILE);
    const char *from = cfg->catalogue;
    char snap[SP_PATH_MAX + 32], mark[SP_PATH_MAX + 32];
    snprintf(snap, sizeof snap, "%s/%s", b->names.state_dir, SP_SNAPSHOT_BIN);
    snprintf(mark, sizeof mark, "%s/%s", b->names.state_dir, SP_CLEAN_MARK);
    if (access(mark, F_OK) == 0) {
        /* a clean stop that kept its journal (--keep-journal): table.csv
         * holds everything; the journal goes aside, not into a rebuild */
        char aside[SP_PATH_MAX + 48];
        snprintf(aside, sizeof aside, "%s.kept-%llu", journal,
                 (unsigned long long)(sp_realtime_ns() / SP_NS_PER_SEC));
        if (rename(journal, aside) == 0) {
            sp_broker_notify(b, SP_LOG_INFO,
                             "the last run stopped cleanly; its kept journal is now %s", aside);
        }
        unlink(base);
        unlink(snap);
        unlink(mark);
    }
    bool journaled = !cfg->no_journal && sp_recover_has_journal(journal);
    bool snapshot = !cfg->no_journal && access(snap, F_OK) == 0;
    /* --fresh replaces the saved state, but only once the catalogue that
     * replaces it has loaded: until then nothing saved is touched */
    bool replacing = cfg->fresh && (sp_recover_has_journal(journal) || access(snap, F_OK) == 0 ||
                                    access(last, F_OK) == 0 || access(base, F_OK) == 0);
    if (cfg->fresh) {
        journaled = snapshot = false;
    } else if (journaled || snapshot) {
        from = snapshot ? snap : base;
    } else if (!cfg->no_journal && access(last, F_OK) == 0) {
        from = last;
        sp_broker_notify(
            b, SP_LOG_INFO,
            "continuing from the table saved at the last clean stop (%s); --fresh starts "
            "from the catalogue",
            last);
    }
    if (from != cfg->catalogue && cfg->catalogue_given) {
        sp_broker_notify(b, SP_LOG_WARN,
                         "--catalogue %s is ignored: the instance continues from its saved "
                         "state in %s (--fresh replaces that state with the catalogue)",
                         cfg->catalogue, b->names.state_dir);
    }
    sp_catalogue_t *cat = NULL;
    rc = snapshot ? sp_snapshot_catalogue(snap, &cat, why, cap)
                  : s_load_catalogue(&cat, from, why, cap);
    if (rc < 0 && replacing) {
        size_t used = strlen(why);
        snprintf(why + used, cap - used, " (--fresh: the saved state in %s is untouched)",
                 b->names.state_dir);
    }
    if (rc < 0) {
        if (journaled && !snapshot && rc == -ENOENT) {
            sp_why(why, cap, "%s holds a journal but its base %s is missing: refusing to start",
                   journal, base);
        }
        return rc;
    }
    sp_shard_from_t kind = journaled || snapshot ? SP_SHARD_FROM_RECOVERY
                           : from == last        ? SP_SHARD_FROM_LAST
                                                 : SP_SHARD_FROM_CATALOGUE;
    rc = sp_shard_filter(b, cat, kind, snapshot ? snap : from, why, cap);
    if (rc < 0) {
        sp_catalogue_destroy(&cat);
        return rc;
    }
    uint64_t shm_bytes = sp_table_bytes(sp_catalogue_max_id(cat)) + sp_bipc_shm_bytes(b);
    sp_limits_t have;
    sp_limits_read(&have);
    rc = sp_limits_check(&(sp_limits_need_t){.shm_bytes = shm_bytes}, &have, why, cap);
    if (rc == 0 && replacing) {
        rc = s_set_aside(b, why, cap);
    }
    if (rc < 0) {
        sp_catalogue_destroy(&cat);
        return rc;
    }
    sp_table_opts_t opts = {.sync = cfg->sync, .transport = b->transport->id};
    rc = sp_table_create(&b->table, b->names.table, cat, &opts);
    sp_catalogue_destroy(&cat);
    if (rc < 0) {
        sp_why(why, cap, "cannot create the table %s: %s", b->names.table, sp_strerror(rc));
        return rc;
    }
    if (journaled || snapshot) {
        sp_recover_stats_t st = {0};
        sp_snapshot_info_t si = {0};
        uint64_t t0 = sp_now_ns();
        if (snapshot) {
            rc = sp_snapshot_restore(b->table, snap, &si, why, cap);
            sp_commit_idle_all(b->table); /* the journal's producers may take them over */
        }
        if (rc == 0 && journaled) {
            rc = sp_recover_replay(b->table, journal, snapshot, &st, why, cap);
        }
        if (rc < 0) {
            sp_table_unlink(b->names.table);
            sp_table_close(&b->table);
            return rc;
        }
        sp_commit_idle_all(b->table);
        sp_table_hdr_t *h = sp_table_hdr(b->table);
        if (st.max_producer_id + 1 > atomic_load(&h->next_producer_id)) {
            atomic_store(&h->next_producer_id, st.max_producer_id + 1);
        }
        if (st.system_seq > atomic_load(&h->system_seq)) {
            atomic_store(&h->system_seq, st.system_seq);
        }
        /* new journal files start past every epoch on disk */
        uint32_t epoch = (uint32_t)si.epoch;
        sp_persist_prune(journal, 0, &epoch, false);
        atomic_store(&h->journal_epoch, epoch + 1);
        b->rebuilt = true;
        sp_broker_notify(
            b, SP_LOG_WARN,
            "the last run did not stop cleanly and its table is gone: rebuilt it from %s "
            "and %llu journal record(s) in %llu file(s) (%llu accepted, %u product(s) "
            "changed, %u hold(s) to release, %llu torn byte(s) dropped) in %.1f ms",
            snapshot ? snap : base, (unsigned long long)st.records, (unsigned long long)st.files,
            (unsigned long long)st.accepted, st.products, st.holds + si.holds,
            (unsigned long long)st.tail_bytes, (double)(sp_now_ns() - t0) / 1e6);
        if (st.rolled_back > 0) {
            sp_broker_notify(b, SP_LOG_WARN,
                             "rolled back %llu order(s) on %u product(s) that workers had "
                             "applied but not journaled when the shop went down (never "
                             "answered: their customers' resends are applied afresh)",
                             (unsigned long long)st.rolled_back, st.rebased);
        }
    }
    return 0;
}

int sp_startup_table(sp_broker_t *b, char *why, size_t cap)
{
    int rc = s_table_start(b, why, cap);
    if (rc < 0) {
        return rc;
    }
    b->hdr = sp_table_hdr(b->table);
    sp_shard_claim(b);
    atomic_store(&b->hdr->broker_pid, (int32_t)getpid());
    b->hdr->workers = b->nworkers;
    return 0;
}

/* The journal directory, and where workers find it (absolute: they may
 * not share our working directory). */
static int s_journal_setup(sp_broker_t *b, char *why, size_t cap)
{
    int rc = sp_names_make_state_dir(&b->names);
    char abs[PATH_MAX];
    if (rc < 0 || realpath(b->names.state_dir, abs) == NULL) {
        rc = rc < 0 ? rc : -errno;
        sp_why(why, cap, "cannot create the state directory %s: %s", b->names.state_dir,
               sp_strerror(rc));
        return rc;
    }
    int n = snprintf(b->journal_dir, sizeof b->journal_dir, "%s/journal", abs);
    if (n < 0 || (size_t)n >= sizeof b->journal_dir || strlen(abs) >= SP_PATH_MAX) {
        sp_why(why, cap, "the state directory path %s is too long", abs);
        b->journal_dir[0] = '\0';
        return -ENAMETOOLONG;
    }
    if (mkdir(b->journal_dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        sp_why(why, cap, "cannot create %s: %s", b->journal_dir, strerror(errno));
        b->journal_dir[0] = '\0';
        return rc;
    }
    snprintf(b->hdr->state_dir, sizeof b->hdr->state_dir, "%s", abs);
    b->hdr->fsync_policy =
        b->cfg->fsync_policy != 0 ? (uint32_t)b->cfg->fsync_policy : (uint32_t)SP_FSYNC_INTERVAL;
    b->hdr->fsync_interval_ms =
        b->cfg->fsync_interval_ms != 0 ? b->cfg->fsync_interval_ms : SP_JOURNAL_INTERVAL_MS;
    return 0;
}

/* The base the journal replays onto: the table as created, saved once
 * (atomically) before any worker journals.  A re-attached or rebuilt table
 * keeps the base it has; then any outcomes a dead worker decided but did not
 * journal are journaled now. */
static int s_journal_begin(sp_broker_t *b, char *why, size_t cap)
{
    char base[SP_PATH_MAX + 32];
    snprintf(base, sizeof base, "%s/%s", b->names.state_dir, SP_BASE_FILE);
    if (!b->reattached && !b->rebuilt) {
        int rc = sp_table_save_csv(b->table, base);
        if (rc < 0) {
            sp_why(why, cap, "cannot save the journal's base %s: %s", base, sp_strerror(rc));
            return rc;
        }
    }
    if (b->reattached) {
        unsigned n = sp_commit_sweep(b->table);
        unsigned j = sp_commit_unjournaled(b->table, 0, 0, sp_orphans_journal, b);
        if (n > 0 || j > 0) {
            sp_broker_notify(
                b, SP_LOG_INFO,
                "the dead broker's workers left %u order(s) half done (resolved) and %u "
                "unjournaled (journaled)",
                n, j);
        }
    }
    return 0;
}

int sp_startup_journal(sp_broker_t *b, char *why, size_t cap)
{
    const sp_broker_cfg_t *cfg = b->cfg;
    int rc = 0;
    b->hdr->unguarded = cfg->no_dedup;
    /* workers journal what they apply (a producer applying its own orders
     * keeps no journal) */
    if (!cfg->no_journal && !cfg->no_dedup && b->transport->has_workers) {
        rc = s_journal_setup(b, why, cap);
        if (rc == 0) {
            rc = s_journal_begin(b, why, cap);
        }
    }
    return rc;
}
