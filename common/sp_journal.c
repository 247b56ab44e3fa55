/*
 * sp_journal — writer and reader of the order journal (format in
 * sp_journal.h).
 *
 * The writer keeps no user-space buffer between appends: a record is in
 * the kernel as soon as sp_journal_append returns, so a crash of the
 * process (not of the machine) loses nothing whatever the fsync policy.
 * The policy only decides how much a power cut can take.  Errors are
 * sticky because after a failed or short write nobody knows where the file
 * ends, and appending after an unknown tail would turn a torn tail into
 * corruption in the middle.
 *
 * The reader streams the file in fixed chunks and decides "torn tail" or
 * "corruption" by looking ahead: a bad record stays pending until either
 * the file ends (torn tail, dropped) or a non-zero record follows it
 * (corruption, refused).  Trailing all-zero records count as part of a torn
 * tail: a file system may extend a file before the data blocks land, and a
 * valid record is never all zero (its CRC would not match).
 */
#include "sp_journal.h"

#include "sp_crc.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_le.h"
#include "sp_sys.h"
#include "sp_time.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Records encoded per write(): 64 KiB, large enough that a worker's group
 * of messages goes out in one call (one write of 51 KB took 13 ns a record
 * here, four of 12.8 KB 25 ns), small enough to live in the handle. */
#define SP_JOURNAL_BATCH 1024u

/* Bytes the reader asks for at a time; a whole number of records. */
#define SP_JOURNAL_SCAN_CHUNK ((size_t)1024 * SP_JOURNAL_REC_SIZE)

/* Header field offsets (see the format in sp_journal.h). */
#define SP_JH_VERSION    8
#define SP_JH_REC_SIZE   12
#define SP_JH_TABLE_ID   16
#define SP_JH_WRITER_ID  24
#define SP_JH_WRITER_PID 28
#define SP_JH_CREATED    32
#define SP_JH_CRC        60

/* Record field offsets. */
#define SP_JR_CRC         0
#define SP_JR_KIND        4
#define SP_JR_TYPE        6
#define SP_JR_STATUS      7
#define SP_JR_PRODUCER_ID 8
#define SP_JR_PRODUCT_ID  12
#define SP_JR_SEQ         16
#define SP_JR_QUANTITY    24
#define SP_JR_VERSION     28
#define SP_JR_STOCK_AFTER 32
#define SP_JR_WORKER_ID   36
#define SP_JR_TS          40
#define SP_JR_AUX         48
#define SP_JR_AUX2        56
#define SP_JR_CRC_FROM    4 /* the record CRC covers bytes 4..63 */

_Static_assert(SP_JOURNAL_SCAN_CHUNK % SP_JOURNAL_REC_SIZE == 0, "chunk of whole records");
_Static_assert(SP_JH_CRC + 4 == SP_JOURNAL_HDR_SIZE, "header CRC is its last field");
_Static_assert(SP_JR_AUX2 + 8 == SP_JOURNAL_REC_SIZE, "aux2 is the last record field");

/* The background syncer (sp_journal_background): a thread of the writer's
 * process that fdatasyncs once per interval while the writer goes on
 * appending; the writer reads its failure at its next append or tick. */
typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* CLOCK_MONOTONIC: the interval, or stop */
    bool stop;
} s_syncer_t;

struct sp_journal {
    int fd;
    sp_fsync_policy_t policy;
    uint64_t interval_ns;
    uint64_t last_sync_ns;    /* CLOCK_MONOTONIC; the tick's, without a syncer */
    _Atomic uint64_t records; /* written by the writer's thread only */
    _Atomic uint64_t synced;  /* records when the file was last synced */
    _Atomic int err;          /* first write or sync failure; sticky */
    s_syncer_t *syncer;       /* NULL: the tick syncs (the writer's thread) */
    uint8_t batch[SP_JOURNAL_BATCH * SP_JOURNAL_REC_SIZE];
};

void sp_jrec_encode(uint8_t out[SP_JOURNAL_REC_SIZE], const sp_jrec_t *r)
{
    sp_le_put16(out + SP_JR_KIND, r->kind);
    out[SP_JR_TYPE] = r->type;
    out[SP_JR_STATUS] = r->status;
    sp_le_put32(out + SP_JR_PRODUCER_ID, r->producer_id);
    sp_le_put32(out + SP_JR_PRODUCT_ID, r->product_id);
    sp_le_put64(out + SP_JR_SEQ, r->seq);
    sp_le_put32(out + SP_JR_QUANTITY, r->quantity);
    sp_le_put32(out + SP_JR_VERSION, r->version);
    sp_le_put32(out + SP_JR_STOCK_AFTER, r->stock_after);
    sp_le_put32(out + SP_JR_WORKER_ID, r->worker_id);
    sp_le_put64(out + SP_JR_TS, r->ts_ns);
    sp_le_put64(out + SP_JR_AUX, r->aux);
    sp_le_put64(out + SP_JR_AUX2, r->aux2);
    sp_le_put32(out + SP_JR_CRC,
                sp_crc32c(0, out + SP_JR_CRC_FROM, SP_JOURNAL_REC_SIZE - SP_JR_CRC_FROM));
}

int sp_jrec_decode(const uint8_t in[SP_JOURNAL_REC_SIZE], sp_jrec_t *r)
{
    r->kind = sp_le_get16(in + SP_JR_KIND);
    r->type = in[SP_JR_TYPE];
    r->status = in[SP_JR_STATUS];
    r->producer_id = sp_le_get32(in + SP_JR_PRODUCER_ID);
    r->product_id = sp_le_get32(in + SP_JR_PRODUCT_ID);
    r->seq = sp_le_get64(in + SP_JR_SEQ);
    r->quantity = sp_le_get32(in + SP_JR_QUANTITY);
    r->version = sp_le_get32(in + SP_JR_VERSION);
    r->stock_after = sp_le_get32(in + SP_JR_STOCK_AFTER);
    r->worker_id = sp_le_get32(in + SP_JR_WORKER_ID);
    r->ts_ns = sp_le_get64(in + SP_JR_TS);
    r->aux = sp_le_get64(in + SP_JR_AUX);
    r->aux2 = sp_le_get64(in + SP_JR_AUX2);
    uint32_t crc = sp_crc32c(0, in + SP_JR_CRC_FROM, SP_JOURNAL_REC_SIZE - SP_JR_CRC_FROM);
    return crc == sp_le_get32(in + SP_JR_CRC) ? 0 : SP_E_CHECKSUM;
}

/* ---- policy ---- */

int sp_fsync_policy_parse(const char *s, sp_fsync_policy_t *p, unsigned *interval_ms)
{
    static const char interval[] = "interval";
    if (s == NULL) {
        return SP_E_USAGE;
    }
    if (strcmp(s, "always") == 0 || strcmp(s, "never") == 0) {
        *p = s[0] == 'a' ? SP_FSYNC_ALWAYS : SP_FSYNC_NEVER;
        *interval_ms = 0;
        return 0;
    }
    if (strncmp(s, interval, sizeof interval - 1) != 0) {
        return SP_E_USAGE;
    }
    const char *rest = s + sizeof interval - 1;
    unsigned ms = SP_JOURNAL_INTERVAL_MS;
    if (*rest != '\0') {
        /* strtoul would take spaces and signs; only plain digits are a
         * number of milliseconds */
        if (*rest++ != ':' || *rest < '0' || *rest > '9') {
            return SP_E_USAGE;
        }
        char *end;
        errno = 0;
        unsigned long v = strtoul(rest, &end, 10);
        if (errno != 0 || *end != '\0' || v < 1 || v > SP_JOURNAL_INTERVAL_MAX) {
            return SP_E_USAGE;
        }
        ms = (unsigned)v;
    }
    *p = SP_FSYNC_INTERVAL;
    *interval_ms = ms;
    return 0;
}

const char *sp_fsync_policy_name(sp_fsync_policy_t p)
{
    switch (p) {
    case SP_FSYNC_ALWAYS:
        return "always";
    case SP_FSYNC_INTERVAL:
        return "interval";
    case SP_FSYNC_NEVER:
        return "never";
    }
    return "?";
}

/* ---- writer ---- */

static int s_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = sp_sys_write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (w == 0) {
            return -EIO; /* never for a regular file; don't spin on it */
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static uint64_t s_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * SP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void s_encode_header(uint8_t out[SP_JOURNAL_HDR_SIZE], uint64_t table_id, uint32_t writer_id)
{
    memset(out, 0, SP_JOURNAL_HDR_SIZE);
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): 8 magic bytes, not a string */
    memcpy(out, SP_JOURNAL_MAGIC, SP_JOURNAL_MAGIC_LEN);
    sp_le_put32(out + SP_JH_VERSION, SP_JOURNAL_VERSION);
    sp_le_put32(out + SP_JH_REC_SIZE, SP_JOURNAL_REC_SIZE);
    sp_le_put64(out + SP_JH_TABLE_ID, table_id);
    sp_le_put32(out + SP_JH_WRITER_ID, writer_id);
    sp_le_put32(out + SP_JH_WRITER_PID, (uint32_t)getpid());
    sp_le_put64(out + SP_JH_CREATED, s_realtime_ns());
    sp_le_put32(out + SP_JH_CRC, sp_crc32c(0, out, SP_JH_CRC));
}

int sp_journal_open(sp_journal_t **out, const char *path, uint64_t table_id, uint32_t writer_id,
                    sp_fsync_policy_t policy, unsigned interval_ms, char *why, size_t cap)
{
    *out = NULL;
    if (policy != SP_FSYNC_ALWAYS && policy != SP_FSYNC_INTERVAL && policy != SP_FSYNC_NEVER) {
        sp_why(why, cap, "%s: unknown fsync policy %d", path, (int)policy);
        return SP_E_USAGE;
    }
    sp_journal_t *j = calloc(1, sizeof *j);
    if (j == NULL) {
        sp_why(why, cap, "%s: %s", path, sp_strerror(-ENOMEM));
        return -ENOMEM;
    }
    j->policy = policy;
    j->interval_ns = (uint64_t)interval_ms * SP_NS_PER_MS;
    int rc = 0;
    j->fd = open(path, O_CREAT | O_EXCL | O_APPEND | O_WRONLY | O_CLOEXEC, SP_JOURNAL_MODE);
    if (j->fd < 0) {
        rc = -errno;
        sp_why(why, cap, "create %s: %s", path, sp_strerror(rc));
        goto free_handle;
    }
    uint8_t hdr[SP_JOURNAL_HDR_SIZE];
    s_encode_header(hdr, table_id, writer_id);
    rc = s_write_all(j->fd, hdr, sizeof hdr);
    if (rc < 0) {
        sp_why(why, cap, "write header of %s: %s", path, sp_strerror(rc));
        goto remove_file;
    }
    /* fsync, not fdatasync: the new file's size and inode must be durable */
    if (sp_sys_fsync(j->fd) < 0) {
        rc = -errno;
        sp_why(why, cap, "fsync %s: %s", path, sp_strerror(rc));
        goto remove_file;
    }
    rc = sp_file_fsync_parent(path);
    if (rc < 0) {
        sp_why(why, cap, "fsync directory of %s: %s", path, sp_strerror(rc));
        goto remove_file;
    }
    j->last_sync_ns = sp_now_ns();
    *out = j;
    return 0;

remove_file:
    /* nothing was appended yet: a half-made journal is better gone than
     * left for recovery to puzzle over */
    close(j->fd);
    unlink(path);
free_handle:
    free(j);
    return rc;
}

/* fdatasync: what was written before it is on the disk after it.  Safe
 * from the syncer's thread beside the writer's (the first failure is kept). */
static int s_sync(sp_journal_t *j)
{
    uint64_t written = atomic_load(&j->records);
    if (sp_sys_fdatasync(j->fd) < 0) {
        /* after a failed fdatasync the kernel may have dropped the dirty
         * pages: retrying would "succeed" without the data (fsyncgate) */
        int none = 0;
        int e = -errno;
        atomic_compare_exchange_strong(&j->err, &none, e);
        return atomic_load(&j->err);
    }
    atomic_store(&j->synced, written);
    return 0;
}

static void *s_syncer_main(void *arg)
{
    sp_journal_t *j = arg;
    s_syncer_t *sy = j->syncer;
    pthread_mutex_lock(&sy->mu);
    while (!sy->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + j->interval_ns;
        until.tv_sec += (time_t)(ns / SP_NS_PER_SEC);
        until.tv_nsec = (long)(ns % SP_NS_PER_SEC);
        while (!sy->stop && pthread_cond_timedwait(&sy->wake, &sy->mu, &until) != ETIMEDOUT) {
        }
        if (sy->stop || atomic_load(&j->err) != 0) {
            break;
        }
        if (atomic_load(&j->records) != atomic_load(&j->synced)) {
            pthread_mutex_unlock(&sy->mu);
            s_sync(j);
            pthread_mutex_lock(&sy->mu);
        }
    }
    pthread_mutex_unlock(&sy->mu);
    return NULL;
}

int sp_journal_background(sp_journal_t *j, char *why, size_t cap)
{
    if (j->policy != SP_FSYNC_INTERVAL || j->syncer != NULL) {
        return 0;
    }
    s_syncer_t *sy = calloc(1, sizeof *sy);
    if (sy == NULL) {
        sp_why(why, cap, "the journal's syncer: %s", sp_strerror(-ENOMEM));
        return -ENOMEM;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&sy->mu, NULL);
    pthread_cond_init(&sy->wake, &ca);
    pthread_condattr_destroy(&ca);
    j->syncer = sy;
    /* signals are the writer's to take (its stop flag, its EINTR): the
     * syncer starts with every one blocked */
    sigset_t all, was;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &was);
    int rc = pthread_create(&sy->thread, NULL, s_syncer_main, j);
    pthread_sigmask(SIG_SETMASK, &was, NULL);
    if (rc != 0) {
        j->syncer = NULL;
        pthread_cond_destroy(&sy->wake);
        pthread_mutex_destroy(&sy->mu);
        free(sy);
        sp_why(why, cap, "the journal's syncer thread: %s", sp_strerror(-rc));
        return -rc;
    }
    return 0;
}

static void s_syncer_stop(sp_journal_t *j)
{
    s_syncer_t *sy = j->syncer;
    if (sy == NULL) {
        return;
    }
    pthread_mutex_lock(&sy->mu);
    sy->stop = true;
    pthread_cond_signal(&sy->wake);
    pthread_mutex_unlock(&sy->mu);
    pthread_join(sy->thread, NULL);
    pthread_cond_destroy(&sy->wake);
    pthread_mutex_destroy(&sy->mu);
    free(sy);
    j->syncer = NULL;
}

int sp_journal_append(sp_journal_t *j, const sp_jrec_t *recs, size_t n)
{
    int err = atomic_load_explicit(&j->err, memory_order_relaxed);
    if (err != 0) {
        return err;
    }
    while (n > 0) {
        size_t k = n < SP_JOURNAL_BATCH ? n : SP_JOURNAL_BATCH;
        for (size_t i = 0; i < k; i++) {
            sp_jrec_encode(j->batch + i * SP_JOURNAL_REC_SIZE, &recs[i]);
        }
        int rc = s_write_all(j->fd, j->batch, k * SP_JOURNAL_REC_SIZE);
        if (rc < 0) {
            int none = 0;
            atomic_compare_exchange_strong(&j->err, &none, rc);
            return atomic_load(&j->err);
        }
        atomic_store_explicit(&j->records,
                              atomic_load_explicit(&j->records, memory_order_relaxed) + k,
                              memory_order_release);
        recs += k;
        n -= k;
    }
    return j->policy == SP_FSYNC_ALWAYS ? s_sync(j) : 0;
}

int sp_journal_tick(sp_journal_t *j)
{
    int err = atomic_load(&j->err);
    if (err != 0 || j->syncer != NULL) {
        return err; /* the syncer keeps the interval */
    }
    if (j->policy != SP_FSYNC_INTERVAL || atomic_load(&j->records) == atomic_load(&j->synced)) {
        return 0;
    }
    if (sp_now_ns() - j->last_sync_ns >= j->interval_ns) {
        int rc = s_sync(j);
        j->last_sync_ns = sp_now_ns();
        return rc;
    }
    return 0;
}

int sp_journal_sync(sp_journal_t *j)
{
    int err = atomic_load(&j->err);
    if (err != 0) {
        return err;
    }
    int rc = s_sync(j);
    if (j->syncer == NULL) {
        j->last_sync_ns = sp_now_ns();
    }
    return rc;
}

uint64_t sp_journal_records(const sp_journal_t *j)
{
    return atomic_load(&j->records);
}

uint64_t sp_journal_synced(const sp_journal_t *j)
{
    return atomic_load(&j->synced);
}

void sp_journal_close(sp_journal_t **jp)
{
    if (jp == NULL || *jp == NULL) {
        return;
    }
    sp_journal_t *j = *jp;
    s_syncer_stop(j);
    if (j->policy != SP_FSYNC_NEVER && atomic_load(&j->err) == 0) {
        s_sync(j);
    }
    close(j->fd);
    free(j);
    *jp = NULL;
}

/* ---- reader ---- */

/* Reads up to len bytes, stopping early only at end of file.  *got gets
 * the count.  Returns 0 or -errno. */
static int s_read_full(int fd, uint8_t *p, size_t len, size_t *got)
{
    size_t have = 0;
    while (have < len) {
        ssize_t r = read(fd, p + have, len - have);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *got = have;
            return -errno;
        }
        if (r == 0) {
            break;
        }
        have += (size_t)r;
    }
    *got = have;
    return 0;
}

static bool s_all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static int s_check_header(const uint8_t *h, const char *path, sp_journal_info_t *info, char *why,
                          size_t cap)
{
    if (memcmp(h, SP_JOURNAL_MAGIC, SP_JOURNAL_MAGIC_LEN) != 0) {
        sp_why(why, cap, "%s: not a stockpipe journal (bad magic)", path);
        return SP_E_BAD_MAGIC;
    }
    /* version before CRC: a later format may checksum differently, and
     * "unsupported version" is the useful message then */
    uint32_t version = sp_le_get32(h + SP_JH_VERSION);
    if (version != SP_JOURNAL_VERSION) {
        sp_why(why, cap, "%s: journal format version %u, this build reads version %u", path,
               version, SP_JOURNAL_VERSION);
        return SP_E_BAD_VERSION;
    }
    if (sp_crc32c(0, h, SP_JH_CRC) != sp_le_get32(h + SP_JH_CRC)) {
        sp_why(why, cap, "%s: journal header fails its checksum", path);
        return SP_E_CHECKSUM;
    }
    uint32_t rec_size = sp_le_get32(h + SP_JH_REC_SIZE);
    if (rec_size != SP_JOURNAL_REC_SIZE) {
        sp_why(why, cap, "%s: journal record size %u, expected %u", path, rec_size,
               SP_JOURNAL_REC_SIZE);
        return SP_E_BAD_SIZE;
    }
    info->has_header = true;
    info->table_id = sp_le_get64(h + SP_JH_TABLE_ID);
    info->writer_id = sp_le_get32(h + SP_JH_WRITER_ID);
    info->writer_pid = sp_le_get32(h + SP_JH_WRITER_PID);
    info->created_ns = sp_le_get64(h + SP_JH_CREATED);
    info->valid_end = SP_JOURNAL_HDR_SIZE;
    return 0;
}

int sp_journal_scan(const char *path, sp_journal_cb cb, void *ctx, sp_journal_info_t *info,
                    char *why, size_t cap)
{
    sp_journal_info_t scratch;
    if (info == NULL) {
        info = &scratch;
    }
    memset(info, 0, sizeof *info);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        sp_why(why, cap, "open %s: %s", path, sp_strerror(rc));
        return rc;
    }
    int rc = 0;
    uint8_t *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        sp_why(why, cap, "stat %s: %s", path, sp_strerror(rc));
        goto close_fd;
    }
    uint8_t hdr[SP_JOURNAL_HDR_SIZE];
    size_t got;
    rc = s_read_full(fd, hdr, sizeof hdr, &got);
    if (rc < 0) {
        sp_why(why, cap, "read %s: %s", path, sp_strerror(rc));
        goto close_fd;
    }
    if (got < sizeof hdr) {
        /* the writer died while creating the file; but a short file that
         * does not even start like a journal is someone else's file */
        size_t n = got < SP_JOURNAL_MAGIC_LEN ? got : SP_JOURNAL_MAGIC_LEN;
        if (memcmp(hdr, SP_JOURNAL_MAGIC, n) != 0) {
            rc = SP_E_BAD_MAGIC;
            sp_why(why, cap, "%s: not a stockpipe journal (bad magic)", path);
        } else {
            info->tail_bytes_dropped = got;
        }
        goto close_fd;
    }
    rc = s_check_header(hdr, path, info, why, cap);
    if (rc < 0) {
        goto close_fd;
    }

    buf = malloc(SP_JOURNAL_SCAN_CHUNK);
    if (buf == NULL) {
        rc = -ENOMEM;
        sp_why(why, cap, "read %s: %s", path, sp_strerror(rc));
        goto close_fd;
    }
    uint64_t off = SP_JOURNAL_HDR_SIZE; /* file offset of buf[0] */
    bool pending_bad = false;           /* a bad record waits for its verdict */
    uint64_t bad_off = 0;
    for (;;) {
        rc = s_read_full(fd, buf, SP_JOURNAL_SCAN_CHUNK, &got);
        if (rc < 0) {
            sp_why(why, cap, "read %s: %s", path, sp_strerror(rc));
            goto free_buf;
        }
        for (size_t i = 0; i + SP_JOURNAL_REC_SIZE <= got; i += SP_JOURNAL_REC_SIZE) {
            const uint8_t *p = buf + i;
            if (pending_bad) {
                if (s_all_zero(p, SP_JOURNAL_REC_SIZE)) {
                    continue;
                }
                uint64_t total = ((uint64_t)st.st_size - SP_JOURNAL_HDR_SIZE) / SP_JOURNAL_REC_SIZE;
                uint64_t nth = (bad_off - SP_JOURNAL_HDR_SIZE) / SP_JOURNAL_REC_SIZE + 1;
                rc = SP_E_JOURNAL_CORRUPT;
                sp_why(why, cap,
                       "%s: corrupt record at byte %llu (record %llu of %llu) with valid "
                       "data after it; refusing to start — move the file away or restore it",
                       path, (unsigned long long)bad_off, (unsigned long long)nth,
                       (unsigned long long)total);
                goto free_buf;
            }
            sp_jrec_t rec;
            if (sp_jrec_decode(p, &rec) != 0) {
                pending_bad = true;
                bad_off = off + i;
                continue;
            }
            info->records++;
            info->valid_end = off + i + SP_JOURNAL_REC_SIZE;
            if (cb != NULL) {
                rc = cb(ctx, &rec, off + i);
                if (rc != 0) {
                    goto free_buf;
                }
            }
        }
        off += got;
        if (got < SP_JOURNAL_SCAN_CHUNK) {
            break; /* end of file */
        }
    }
    /* a cut record, a torn last record and any zeros after it */
    info->tail_bytes_dropped = off - info->valid_end;

free_buf:
    free(buf);
close_fd:
    close(fd);
    return rc;
}

int sp_journal_truncate_tail(const char *path, uint64_t valid_end)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
    } else if ((uint64_t)st.st_size < valid_end) {
        rc = -EINVAL; /* would extend the file with zeros, not cut it */
    } else if ((uint64_t)st.st_size > valid_end) {
        if (ftruncate(fd, (off_t)valid_end) < 0 || fsync(fd) < 0) {
            rc = -errno;
        }
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}
