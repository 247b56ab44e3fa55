/*
 * sp_persist — what the broker keeps on disk while it runs and when it
 * stops: periodic snapshots, journal epochs and pruning, the final table.
 *
 * Under the state directory (run/INSTANCE/ by default):
 *
 *   journal/NAME-e<EPOCH>...log  the workers' (and sp_orphans') journals
 *   snapshot.bin                 the table, dedup windows and holds at an epoch
 *   base.csv                     the table the journal replays onto, until a snapshot
 *   table.csv                    the final table of a clean stop
 *   clean-stop                   a clean stop kept its journal (--keep-journal)
 *
 * A periodic snapshot starts a new journal epoch, waits until every live
 * worker writes in it (they switch between two messages; one still starting
 * is waited for too), then saves the table atomically and removes (or with
 * --keep-journal renames to .log.kept) the files of older epochs: the
 * snapshot contains them.  A failed snapshot keeps the journal whole.  The
 * final save, after the workers stopped, returns every hold to stock,
 * writes table.csv and retires the journal.
 *
 * Broker thread only.  Saving blocks on the disk (temporary file, fsync,
 * rename: sp_snapshot.h, sp_file.h) for as long as a table takes to write;
 * failures are reported through the broker's notify and leave the journal
 * in place, so nothing is lost.
 */
#include "sp_persist.h"

#include "sp_broker_impl.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_journal.h"
#include "sp_log.h"
#include "sp_orphans.h"
#include "sp_recover.h"
#include "sp_snapshot.h"
#include "sp_supervisor.h"
#include "sp_time.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_CLEAN_TEXT  "clean stop\n" /* what the clean-stop mark holds */
#define S_KEPT_SUFFIX ".log.kept"    /* a journal file kept by --keep-journal */
#define S_KEPT_LEN    (sizeof S_KEPT_SUFFIX - 1)

/* The epoch in a journal file's name ("...-e<N>.log" or "...-e<N>-..."),
 * or -1 (files of older versions: epoch 0). */
static long s_file_epoch(const char *name)
{
    const char *p = strstr(name, "-e");
    if (p == NULL || p[2] < '0' || p[2] > '9') {
        return 0;
    }
    return strtol(p + 2, NULL, 10);
}

/* Removes the journal files of epochs below `below` (a snapshot contains
 * them) — or, when `keep`, renames them to NAME.log.kept, which recovery
 * ignores and the chaos checker reads; returns how many.  *max_epoch (may
 * be NULL) gets the highest epoch seen. */
unsigned sp_persist_prune(const char *dir, uint32_t below, uint32_t *max_epoch, bool keep)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!sp_recover_is_journal(e->d_name)) {
            continue;
        }
        long epoch = s_file_epoch(e->d_name);
        if (max_epoch != NULL && epoch > (long)*max_epoch) {
            *max_epoch = (uint32_t)epoch;
        }
        if (epoch >= (long)below) {
            continue;
        }
        char kept[NAME_MAX + 8];
        snprintf(kept, sizeof kept, "%s.kept", e->d_name);
        if (keep ? renameat(dirfd(d), e->d_name, dirfd(d), kept) == 0
                 : unlinkat(dirfd(d), e->d_name, 0) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

void sp_persist_arm(sp_broker_t *b)
{
    b->next_snap_ns = sp_now_ns() + (uint64_t)b->cfg->snapshot_ms * SP_NS_PER_MS;
}

/* Periodic snapshots: start a new journal epoch; once every live writer has
 * moved to it, save the table and remove the older epochs' files. */
void sp_persist_tick(sp_broker_t *b, uint64_t now)
{
    if (b->journal_dir[0] == '\0' || b->cfg->snapshot_ms == 0) {
        return;
    }
    if (!b->snap_pending) {
        if (now >= b->next_snap_ns) {
            atomic_fetch_add(&b->hdr->journal_epoch, 1);
            b->snap_pending = true;
        }
        return;
    }
    uint32_t epoch = atomic_load(&b->hdr->journal_epoch);
    for (unsigned i = 0; i < b->nworkers; i++) {
        sp_bworker_t *c = &b->child[i];
        if (!sp_supervisor_alive(c)) {
            continue; /* gone: what it left half done is resolved by the supervisor */
        }
        /* a worker still starting may have opened its journal in the old
         * epoch before it registered: its first orders would land in a file
         * this snapshot removes, with their rows read before them (the chaos
         * restart loop lost version 737 of a row that way) */
        sp_worker_slot_t *slot = &b->hdr->worker[i];
        pid_t pid = atomic_load(&slot->pid);
        bool registered = c->pid > 0 ? pid == c->pid : pid != 0;
        if (!registered || atomic_load(&slot->journal_epoch) != epoch) {
            return; /* it switches between two messages: next tick */
        }
    }
    if (b->journal != NULL && b->journal_epoch != epoch) {
        sp_journal_sync(b->journal);
        sp_journal_close(&b->journal);
    }
    char path[SP_PATH_MAX + 32], why[512];
    snprintf(path, sizeof path, "%s/%s", b->names.state_dir, SP_SNAPSHOT_BIN);
    sp_snapshot_info_t info;
    uint64_t t0 = sp_now_ns();
    int rc = sp_snapshot_save(b->table, path, epoch, &info, why, sizeof why);
    if (rc < 0) {
        sp_broker_notify(b, SP_LOG_ERROR, "snapshot failed, the journal is kept whole: %s", why);
    } else {
        unsigned pruned = sp_persist_prune(b->journal_dir, epoch, NULL, b->cfg->keep_journal);
        char base[SP_PATH_MAX + 32];
        snprintf(base, sizeof base, "%s/%s", b->names.state_dir, SP_BASE_FILE);
        unlink(base); /* the snapshot replaces it */
        b->stats.snapshots++;
        sp_broker_notify(
            b, SP_LOG_DEBUG,
            "snapshot %s: %u rows, %u remembered orders, %u holds, %zu bytes in %.1f ms; "
            "removed %u journal file(s) it contains",
            path, info.rows, info.entries, info.holds, info.bytes, (double)(sp_now_ns() - t0) / 1e6,
            pruned);
    }
    b->snap_pending = false;
    b->next_snap_ns = now + (uint64_t)b->cfg->snapshot_ms * SP_NS_PER_MS;
}

void sp_persist_remove_journal(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (sp_recover_is_journal(e->d_name) ||
            (len > S_KEPT_LEN && strcmp(e->d_name + len - S_KEPT_LEN, S_KEPT_SUFFIX) == 0)) {
            unlinkat(dirfd(d), e->d_name, 0);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* After a clean stop with the final snapshot saved, the journal holds
 * nothing the snapshot does not: remove it (unless asked to keep it). */
static void s_journal_retire(sp_broker_t *b)
{
    sp_journal_close(&b->journal);
    if (b->journal_dir[0] == '\0') {
        return;
    }
    if (b->cfg->keep_journal) {
        /* kept for inspection; the next start continues from table.csv and
         * moves it aside instead of taking it for a crashed run's */
        char mark[SP_PATH_MAX + 32];
        snprintf(mark, sizeof mark, "%s/%s", b->names.state_dir, SP_CLEAN_MARK);
        sp_file_save(mark, S_CLEAN_TEXT, sizeof S_CLEAN_TEXT - 1, NULL, 0);
        return;
    }
    sp_persist_remove_journal(b->journal_dir);
    char base[SP_PATH_MAX + 32];
    snprintf(base, sizeof base, "%s/%s", b->names.state_dir, SP_BASE_FILE);
    unlink(base);
    snprintf(base, sizeof base, "%s/%s", b->names.state_dir, SP_SNAPSHOT_BIN);
    unlink(base);
}

void sp_persist_final(sp_broker_t *b)
{
    /* the final table has no holds: their units go back to stock (journaled),
     * so a table continued from table.csv adds up */
    if (b->table != NULL) {
        sp_commit_expire_holds(b->table, (sp_sync_t)b->hdr->sync, UINT64_MAX,
                               b->journal_dir[0] != '\0' ? sp_orphans_journal : NULL, b);
    }
    if (sp_names_make_state_dir(&b->names) == 0) {
        snprintf(b->stats.snapshot, sizeof b->stats.snapshot, "%s/%s", b->names.state_dir,
                 SP_SNAPSHOT_FILE);
        int src = sp_table_save_csv(b->table, b->stats.snapshot);
        if (src < 0) {
            sp_broker_notify(b, SP_LOG_ERROR, "saving %s failed: %s; the journal in %s is kept",
                             b->stats.snapshot, sp_strerror(src), b->journal_dir);
            b->stats.snapshot[0] = '\0';
        } else {
            s_journal_retire(b);
        }
    } else {
        sp_broker_notify(b, SP_LOG_ERROR, "cannot create the state directory %s",
                         b->names.state_dir);
    }
}
