/*
 * sp_orphans — what a dead writer left behind: orders half done and
 * outcomes decided but not journaled.
 *
 * A worker (or a dead broker's worker, or a holder whose hold expired) can
 * die between deciding an order and finishing it.  sp_commit knows from the
 * writer's in-flight record what is half done; this module finishes or
 * undoes it and journals, into the broker's own journal file
 * (broker-p<PID>-e<EPOCH>-<NS>.log), every outcome the dead writer decided
 * but did not mark journaled, so a rebuild from the journal misses nothing.
 * An outcome the writer did append but died before marking is found in the
 * tail of its own file and not journaled twice.
 *
 * Called only from the broker's thread.  The broker's journal file is
 * opened on first use and reopened when a snapshot starts a new epoch;
 * sp_broker_destroy closes it.  Reads the dead writer's files with pread:
 * a few hundred kilobytes at most, once per death.
 */
#include "sp_orphans.h"

#include "sp_broker_impl.h"
#include "sp_commit.h"
#include "sp_error.h"
#include "sp_journal.h"
#include "sp_log.h"
#include "sp_time.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The epoch in a journal file's name (...-p<PID>-e<EPOCH>.log), or 0. */
static unsigned long s_file_epoch(const char *name, const char *mark)
{
    const char *e = strstr(name, mark);
    return e != NULL ? strtoul(e + strlen(mark), NULL, 10) : 0;
}

/* Loads the last SP_WIRE_MAX_RECORDS keys of one journal file. */
static void s_tail_file(sp_btail_t *tl, int dirfd_, const char *name)
{
    int fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)SP_JOURNAL_HDR_SIZE) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    uint8_t rec[SP_JOURNAL_REC_SIZE];
    uint64_t nrec = ((uint64_t)st.st_size - SP_JOURNAL_HDR_SIZE) / SP_JOURNAL_REC_SIZE;
    uint64_t first = nrec > SP_WIRE_MAX_RECORDS ? nrec - SP_WIRE_MAX_RECORDS : 0;
    for (uint64_t i = first; i < nrec && tl->n < SP_BROKER_TAIL_MAX; i++) {
        off_t off = (off_t)(SP_JOURNAL_HDR_SIZE + i * SP_JOURNAL_REC_SIZE);
        sp_jrec_t r;
        if (pread(fd, rec, sizeof rec, off) == (ssize_t)sizeof rec &&
            sp_jrec_decode(rec, &r) == 0) {
            tl->keys[tl->n++] = (sp_btailkey_t){.producer = r.producer_id, .seq = r.seq};
        }
    }
    close(fd);
}

/* Loads the keys at the end of the journal(s) process `pid` wrote: it marks
 * outcomes journaled after each message's append, so one it had appended
 * but not marked when it died is among the last SP_WIRE_MAX_RECORDS of the
 * file of its latest epoch (a worker changes files only between messages).
 * That file is read first: with many epochs' files, older ones could fill
 * the keys and hide it (the chaos run then found one outcome journaled
 * twice).  Older files follow while there is room. */
static void s_tail_load(sp_broker_t *b, pid_t pid)
{
    sp_btail_t *tl = &b->tail;
    tl->pid = pid;
    tl->n = 0;
    DIR *d = opendir(b->journal_dir);
    if (d == NULL) {
        return;
    }
    char mark[32];
    snprintf(mark, sizeof mark, "-p%ld-e", (long)pid);
    char latest[256] = "";
    unsigned long latest_epoch = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, mark) != NULL && strlen(e->d_name) < sizeof latest) {
            unsigned long ep = s_file_epoch(e->d_name, mark);
            if (latest[0] == '\0' || ep > latest_epoch) {
                latest_epoch = ep;
                snprintf(latest, sizeof latest, "%s", e->d_name);
            }
        }
    }
    if (latest[0] != '\0') {
        s_tail_file(tl, dirfd(d), latest);
    }
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, mark) != NULL && strcmp(e->d_name, latest) != 0) {
            s_tail_file(tl, dirfd(d), e->d_name);
        }
    }
    closedir(d);
}

static bool s_in_tail(sp_broker_t *b, pid_t pid, uint32_t producer, uint64_t seq)
{
    if (b->tail.pid != pid) {
        s_tail_load(b, pid);
    }
    for (size_t i = 0; i < b->tail.n; i++) {
        if (b->tail.keys[i].producer == producer && b->tail.keys[i].seq == seq) {
            return true;
        }
    }
    return false;
}

/* Journals one outcome a dead process decided but did not mark journaled. */
int sp_orphans_journal(void *ctx, const sp_commit_view_t *v)
{
    sp_broker_t *b = ctx;
    if (b->journal_dir[0] == '\0') {
        return 0; /* no journal kept: nothing owed */
    }
    if (v->owner != getpid() && s_in_tail(b, v->owner, v->producer, v->seq)) {
        return 0; /* it did journal it, then died before marking it */
    }
    uint32_t epoch = atomic_load(&b->hdr->journal_epoch);
    if (b->journal != NULL && b->journal_epoch != epoch) {
        sp_journal_sync(b->journal);
        sp_journal_close(&b->journal); /* a snapshot started a new epoch */
    }
    if (b->journal == NULL) {
        char path[SP_PATH_MAX + 64], why[256];
        snprintf(path, sizeof path, "%s/broker-p%ld-e%u-%llu.log", b->journal_dir, (long)getpid(),
                 epoch, (unsigned long long)sp_now_ns());
        b->journal_epoch = epoch;
        int rc = sp_journal_open(&b->journal, path, b->hdr->table_id, 0,
                                 (sp_fsync_policy_t)b->hdr->fsync_policy, b->hdr->fsync_interval_ms,
                                 why, sizeof why);
        if (rc < 0) {
            sp_broker_notify(b, SP_LOG_ERROR, "%s", why);
            return rc;
        }
        b->journal_sync_failed = false;
    }
    sp_jrec_t r = {.kind = SP_JREC_KIND_OUTCOME,
                   .type = v->type,
                   .status = v->status,
                   .producer_id = v->producer,
                   .product_id = v->product,
                   .seq = v->seq,
                   .quantity = v->quantity,
                   .version = v->version,
                   .stock_after = v->stock,
                   .ts_ns = sp_realtime_ns(),
                   .aux = v->holder,
                   .aux2 = v->hold_seq};
    int rc = sp_journal_append(b->journal, &r, 1);
    if (rc < 0) {
        sp_broker_notify(b, SP_LOG_ERROR, "journaling a dead worker's order failed: %s",
                         sp_strerror(rc));
    }
    return rc;
}

void sp_orphans_tick(sp_broker_t *b)
{
    if (b->journal == NULL || b->journal_sync_failed) {
        return;
    }
    int rc = sp_journal_tick(b->journal);
    if (rc < 0) {
        b->journal_sync_failed = true; /* sticky: every later append says it too */
        sp_broker_notify(b, SP_LOG_ERROR, "syncing the broker's journal failed: %s",
                         sp_strerror(rc));
    }
}

/* A worker died (or was killed for hanging): finish or undo what it left
 * half done, and journal what it decided but did not journal, before its
 * replacement or a resent order meets it.  Both can only be in the message
 * it was handling, so only in that producer's window (its in-flight record;
 * 0 between messages: nothing is left). */
void sp_orphans_resolve(sp_broker_t *b, unsigned id, pid_t pid)
{
    sp_worker_slot_t *slot = &b->hdr->worker[id - 1];
    uint32_t producer = atomic_load(&slot->cur_producer);
    if (producer == 0) {
        return;
    }
    unsigned n = sp_commit_resolve(b->table, producer, pid);
    b->tail.pid = 0; /* its file may have grown since we last looked */
    unsigned j = sp_commit_unjournaled(b->table, producer, pid, sp_orphans_journal, b);
    atomic_store(&slot->cur_producer, 0);
    if (n > 0 || j > 0) {
        sp_broker_notify(b, SP_LOG_INFO,
                         "worker %u left %u order(s) half done (resolved) and %u "
                         "unjournaled (journaled)",
                         id, n, j);
    }
}
