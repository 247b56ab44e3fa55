/*
 * Tests for sp_crc (CRC-32C) and sp_journal, the checksummed order journal.
 *
 * The journal's promise is about crashes: a file cut anywhere, or ending
 * in a record the crash tore, scans as "every whole good record, then a
 * dropped tail"; a bad record with good data after it is corruption, and
 * the scan refuses it with the offset.  So the tests cut a journal at every
 * byte length, flip bytes in the middle and at the end, and check exact
 * counts, offsets and codes.  A write failure is provoked for real with
 * RLIMIT_FSIZE (the kernel then cuts a write short and fails the next), to
 * check that the journal refuses to append after it.  The fsync policies
 * are told apart by counting fdatasync calls through the sp_sys seam.
 *
 * Each test works in its own mkdtemp directory, which the fixture empties
 * and removes, so Criterion's parallel workers never share a file.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sp_crc.h"
#include "sp_error.h"
#include "sp_journal.h"
#include "sp_sys.h"
#include "sp_testutil.h"

#define T_PATH_CAP  512
#define T_WHY_CAP   512
#define T_TABLE_ID  UINT64_C(0x1122334455667788)
#define T_WRITER_ID 7u
#define T_MANY      3000u /* records: > one append batch, > one scan chunk */
#define T_FEW       5u
#define T_MAX_RECS  (T_MANY + 16u)
#define T_HDR       SP_JOURNAL_HDR_SIZE
#define T_REC       SP_JOURNAL_REC_SIZE

static char s_dir[T_PATH_CAP];

static void s_cleanup(void)
{
    spt_rmtree(s_dir);
}

static void s_setup(void)
{
    cr_assert(spt_tmpdir(s_dir, sizeof s_dir, "journal"), "mkdtemp: %s", strerror(errno));
}

TestSuite(journal, .init = s_setup, .fini = s_cleanup);
TestSuite(crc);

static char *s_path(char *buf, const char *name)
{
    int n = snprintf(buf, T_PATH_CAP, "%s/%s", s_dir, name);
    cr_assert(n > 0 && n < T_PATH_CAP);
    return buf;
}

/* Record i with distinct, width-filling values in every field. */
static sp_jrec_t s_rec(uint64_t i)
{
    sp_jrec_t r = {
        .kind = SP_JREC_KIND_OUTCOME,
        .type = (uint8_t)(1 + i % 3),
        .status = (uint8_t)(0x80 | (i & 0x7f)),
        .producer_id = 0x01020304u + (uint32_t)i,
        .product_id = 0xA0B0C0D0u ^ (uint32_t)i,
        .seq = UINT64_C(0x0102030405060708) + i,
        .quantity = (uint32_t)(i * 7 + 1),
        .version = (uint32_t)(i * 3 + 2),
        .stock_after = 0xFFFFFFF0u - (uint32_t)i,
        .worker_id = T_WRITER_ID,
        .ts_ns = UINT64_C(0xF0E0D0C0B0A09080) - i,
        .aux = ~i,
        .aux2 = i << 32 | i,
    };
    return r;
}

static bool s_rec_eq(const sp_jrec_t *a, const sp_jrec_t *b)
{
    return a->kind == b->kind && a->type == b->type && a->status == b->status &&
           a->producer_id == b->producer_id && a->product_id == b->product_id && a->seq == b->seq &&
           a->quantity == b->quantity && a->version == b->version &&
           a->stock_after == b->stock_after && a->worker_id == b->worker_id &&
           a->ts_ns == b->ts_ns && a->aux == b->aux && a->aux2 == b->aux2;
}

/* What a scan delivered. */
typedef struct {
    uint64_t n;
    bool in_order;       /* record k equals s_rec(k) */
    bool offsets_ok;     /* record k at T_HDR + k * T_REC */
    uint64_t stop_after; /* 0 = never stop */
} s_seen_t;

static int s_collect(void *ctx, const sp_jrec_t *rec, uint64_t offset)
{
    s_seen_t *seen = ctx;
    sp_jrec_t want = s_rec(seen->n);
    if (!s_rec_eq(rec, &want)) {
        seen->in_order = false;
    }
    if (offset != T_HDR + seen->n * T_REC) {
        seen->offsets_ok = false;
    }
    seen->n++;
    return (seen->stop_after != 0 && seen->n == seen->stop_after) ? 42 : 0;
}

static int s_scan(const char *path, s_seen_t *seen, sp_journal_info_t *info, char *why)
{
    *seen = (s_seen_t){.in_order = true, .offsets_ok = true, .stop_after = seen->stop_after};
    return sp_journal_scan(path, s_collect, seen, info, why, T_WHY_CAP);
}

/* A journal of n records s_rec(0..n-1), appended in uneven batches. */
static void s_write_journal(const char *path, uint64_t n, sp_fsync_policy_t policy)
{
    static sp_jrec_t recs[T_MAX_RECS];
    cr_assert_leq(n, T_MAX_RECS);
    for (uint64_t i = 0; i < n; i++) {
        recs[i] = s_rec(i);
    }
    sp_journal_t *j = NULL;
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_journal_open(&j, path, T_TABLE_ID, T_WRITER_ID, policy, 1, why, sizeof why), 0,
                 "%s", why);
    uint64_t done = 0;
    for (uint64_t step = 1; done < n; step = step * 3 + 1) {
        uint64_t k = n - done < step ? n - done : step;
        cr_assert_eq(sp_journal_append(j, recs + done, k), 0);
        done += k;
    }
    cr_expect_eq(sp_journal_records(j), n);
    cr_expect_eq(sp_journal_sync(j), 0);
    sp_journal_close(&j);
    cr_expect_null(j);
}

/* The whole file, malloc'd. */
static uint8_t *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)size + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return b;
}

static void s_spit(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void s_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* ---- CRC-32C ---- */

/* Both ways of computing it: sp_crc32c (the CPU's instruction where there
 * is one) and the software it falls back to. */
static uint32_t (*const s_crcs[])(uint32_t, const void *, size_t) = {sp_crc32c, sp_crc32c_portable};

Test(crc, crc32c_matches_the_standard_check_value)
{
    for (size_t k = 0; k < sizeof s_crcs / sizeof s_crcs[0]; k++) {
        cr_expect_eq(s_crcs[k](0, "123456789", 9), SP_CRC32C_CHECK, "way %zu", k);
        cr_expect_eq(s_crcs[k](0, "", 0), 0);
        /* RFC 3720 B.4: 32 bytes of zeros, and of 0xFF */
        uint8_t buf[32];
        memset(buf, 0, sizeof buf);
        cr_expect_eq(s_crcs[k](0, buf, sizeof buf), 0x8A9136AAu, "way %zu", k);
        memset(buf, 0xFF, sizeof buf);
        cr_expect_eq(s_crcs[k](0, buf, sizeof buf), 0x62A8AB43u, "way %zu", k);
    }
}

Test(crc, the_instruction_and_the_software_agree)
{
    uint8_t buf[200];
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    /* every length from every start within a word, chained from a non-zero
     * CRC too */
    for (size_t start = 0; start < 8; start++) {
        for (size_t len = 0; start + len <= sizeof buf; len++) {
            cr_assert_eq(sp_crc32c(0, buf + start, len), sp_crc32c_portable(0, buf + start, len),
                         "start %zu len %zu", start, len);
            cr_assert_eq(sp_crc32c(0xDEADBEEFu, buf + start, len),
                         sp_crc32c_portable(0xDEADBEEFu, buf + start, len), "start %zu len %zu",
                         start, len);
        }
    }
}

Test(crc, crc32c_in_pieces_equals_crc32c_at_once)
{
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)(i * 131u + 7u);
    }
    /* every split point, and unaligned starts, cross the 8-byte slicing */
    for (size_t start = 0; start < 9; start++) {
        size_t len = sizeof buf - start;
        uint32_t whole = sp_crc32c(0, buf + start, len);
        for (size_t cut = 0; cut <= len; cut++) {
            uint32_t a = sp_crc32c(0, buf + start, cut);
            cr_assert_eq(sp_crc32c(a, buf + start + cut, len - cut), whole, "start %zu cut %zu",
                         start, cut);
        }
    }
    uint32_t byte_by_byte = 0;
    for (size_t i = 0; i < sizeof buf; i++) {
        byte_by_byte = sp_crc32c(byte_by_byte, buf + i, 1);
    }
    cr_expect_eq(byte_by_byte, sp_crc32c(0, buf, sizeof buf));
}

/* ---- records ---- */

Test(journal, record_encodes_little_endian_at_documented_offsets)
{
    sp_jrec_t r = s_rec(0);
    uint8_t b[T_REC];
    sp_jrec_encode(b, &r);
    cr_expect_eq(b[4], SP_JREC_KIND_OUTCOME);
    cr_expect_eq(b[5], 0);
    cr_expect_eq(b[6], r.type);
    cr_expect_eq(b[7], r.status);
    const uint8_t producer[4] = {0x04, 0x03, 0x02, 0x01};
    cr_expect_eq(memcmp(b + 8, producer, 4), 0);
    const uint8_t seq[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    cr_expect_eq(memcmp(b + 16, seq, 8), 0);
    cr_expect_eq(b[36], T_WRITER_ID);
    cr_expect_eq(b[40], 0x80); /* ts_ns low byte */
    cr_expect_eq(b[47], 0xF0); /* ts_ns high byte */
    uint32_t crc = sp_crc32c(0, b + 4, T_REC - 4);
    cr_expect_eq(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24, crc);
    sp_jrec_t back;
    cr_expect_eq(sp_jrec_decode(b, &back), 0);
    cr_expect(s_rec_eq(&back, &r));
}

Test(journal, record_with_any_flipped_bit_fails_its_checksum)
{
    sp_jrec_t r = s_rec(5);
    uint8_t b[T_REC];
    sp_jrec_encode(b, &r);
    for (unsigned bit = 0; bit < T_REC * 8; bit++) {
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        sp_jrec_t back;
        cr_expect_eq(sp_jrec_decode(b, &back), SP_E_CHECKSUM, "bit %u", bit);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

/* ---- writer and reader ---- */

Test(journal, many_records_round_trip_with_header_fields)
{
    char path[T_PATH_CAP];
    s_path(path, "journal-1.log");
    struct timespec before;
    clock_gettime(CLOCK_REALTIME, &before);
    s_write_journal(path, T_MANY, SP_FSYNC_NEVER);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_size, T_HDR + T_MANY * T_REC);
    cr_expect_eq(st.st_mode & 0777, SP_JOURNAL_MODE);

    s_seen_t seen = {0};
    sp_journal_info_t info;
    char why[T_WHY_CAP] = "";
    cr_assert_eq(s_scan(path, &seen, &info, why), 0, "%s", why);
    cr_expect_eq(seen.n, T_MANY);
    cr_expect(seen.in_order, "a record came back different");
    cr_expect(seen.offsets_ok, "a record came with the wrong offset");
    cr_expect(info.has_header);
    cr_expect_eq(info.records, T_MANY);
    cr_expect_eq(info.tail_bytes_dropped, 0);
    cr_expect_eq(info.valid_end, (uint64_t)st.st_size);
    cr_expect_eq(info.table_id, T_TABLE_ID);
    cr_expect_eq(info.writer_id, T_WRITER_ID);
    cr_expect_eq(info.writer_pid, (uint32_t)getpid());
    uint64_t before_ns = (uint64_t)before.tv_sec * 1000000000u + (uint64_t)before.tv_nsec;
    cr_expect_geq(info.created_ns, before_ns);
    cr_expect_lt(info.created_ns, before_ns + UINT64_C(60) * 1000000000u);
}

Test(journal, header_is_64_bytes_with_magic_version_and_crc)
{
    char path[T_PATH_CAP];
    s_path(path, "journal-hdr.log");
    s_write_journal(path, 0, SP_FSYNC_ALWAYS);
    size_t len;
    uint8_t *b = s_slurp(path, &len);
    cr_assert_eq(len, T_HDR);
    cr_expect_eq(memcmp(b, "SPJOURN1", 8), 0);
    cr_expect_eq(b[8], 1);
    cr_expect_eq(b[12], 64);
    cr_expect_eq(b[16], 0x88); /* table_id, little-endian */
    cr_expect_eq(b[23], 0x11);
    for (unsigned i = 40; i < 60; i++) {
        cr_expect_eq(b[i], 0, "reserved byte %u", i);
    }
    uint32_t crc = sp_crc32c(0, b, 60);
    cr_expect_eq(b[60] | b[61] << 8 | b[62] << 16 | (uint32_t)b[63] << 24, crc);
    free(b);

    s_seen_t seen = {0};
    sp_journal_info_t info;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(s_scan(path, &seen, &info, why), 0, "%s", why);
    cr_expect_eq(info.records, 0);
    cr_expect_eq(info.valid_end, T_HDR);
}

Test(journal, open_refuses_an_existing_file)
{
    char path[T_PATH_CAP];
    s_path(path, "taken.log");
    s_spit(path, "x", 1);
    sp_journal_t *j = (sp_journal_t *)1;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_journal_open(&j, path, 1, 1, SP_FSYNC_NEVER, 0, why, sizeof why), -EEXIST);
    cr_expect_null(j);
    cr_expect_not_null(strstr(why, path), "why: %s", why);
    size_t len;
    uint8_t *b = s_slurp(path, &len);
    cr_expect_eq(len, 1, "the existing file was touched");
    free(b);
}

Test(journal, open_in_a_missing_directory_is_enoent)
{
    char path[T_PATH_CAP];
    s_path(path, "nowhere/journal.log");
    sp_journal_t *j = NULL;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_journal_open(&j, path, 1, 1, SP_FSYNC_NEVER, 0, why, sizeof why), -ENOENT);
    cr_expect_null(j);
}

Test(journal, open_refuses_an_unknown_policy)
{
    char path[T_PATH_CAP];
    s_path(path, "policy.log");
    sp_journal_t *j = NULL;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_journal_open(&j, path, 1, 1, (sp_fsync_policy_t)99, 0, why, sizeof why),
                 SP_E_USAGE);
    cr_expect_null(j);
    cr_expect_neq(access(path, F_OK), 0, "no file for a refused open");
}

/* fdatasync calls the journal made (through the sp_sys seam), and the real
 * call too, so the file is what it would be without the count. */
static unsigned s_syncs;

static int s_count_fdatasync(int fd)
{
    s_syncs++;
    return fdatasync(fd);
}

/* One policy's expected syncs: after T_FEW appends `gap_ms` apart (the
 * first one `gap_ms` after the open), each followed by a tick (where the
 * interval policy syncs, after the writer answered), after an explicit
 * sync, and at close. */
typedef struct {
    sp_fsync_policy_t policy;
    unsigned interval_ms; /* SP_FSYNC_INTERVAL only */
    unsigned gap_ms;
    unsigned after_appends, after_sync, after_close;
} s_policy_case_t;

Test(journal, every_policy_appends_and_syncs)
{
    /* an interval passed before every append, or never: both are certain
     * whatever the machine's load, so the counts are exact */
    const s_policy_case_t cases[] = {
        {SP_FSYNC_ALWAYS, 0, 0, T_FEW, T_FEW + 1, T_FEW + 2},
        {SP_FSYNC_INTERVAL, 1, 2, T_FEW, T_FEW + 1, T_FEW + 2},
        {SP_FSYNC_INTERVAL, SP_JOURNAL_INTERVAL_MAX, 0, 0, 1, 2},
        {SP_FSYNC_NEVER, 0, 2, 0, 1, 1},
    };
    sp_sys_fdatasync_hook = s_count_fdatasync;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const s_policy_case_t *k = &cases[c];
        const char *name = sp_fsync_policy_name(k->policy);
        char file[32];
        char path[T_PATH_CAP];
        snprintf(file, sizeof file, "policy-%zu.log", c);
        s_path(path, file);
        sp_journal_t *j = NULL;
        char why[T_WHY_CAP] = "";
        s_syncs = 0;
        cr_assert_eq(sp_journal_open(&j, path, 9, 2, k->policy, k->interval_ms, why, sizeof why), 0,
                     "%s", why);
        cr_expect_eq(s_syncs, 0, "%s: the header is synced with fsync, not fdatasync", name);
        for (uint64_t i = 0; i < T_FEW; i++) {
            if (k->gap_ms > 0) {
                nanosleep(&(struct timespec){.tv_nsec = (long)k->gap_ms * 1000000L}, NULL);
            }
            sp_jrec_t r = s_rec(i);
            unsigned before = s_syncs;
            cr_expect_eq(sp_journal_append(j, &r, 1), 0);
            if (k->policy == SP_FSYNC_INTERVAL) {
                cr_expect_eq(s_syncs, before, "interval: an append never waits for the disk");
            }
            cr_expect_eq(sp_journal_tick(j), 0);
            /* a tick with nothing new appended has nothing to sync */
            unsigned ticked = s_syncs;
            if (k->gap_ms > 0) {
                nanosleep(&(struct timespec){.tv_nsec = (long)k->gap_ms * 1000000L}, NULL);
            }
            cr_expect_eq(sp_journal_tick(j), 0);
            cr_expect_eq(s_syncs, ticked, "%s: a tick synced with nothing new", name);
        }
        cr_expect_eq(s_syncs, k->after_appends,
                     "%s (interval %u ms): %u fdatasync(s) in %u appends", name, k->interval_ms,
                     s_syncs, T_FEW);
        cr_expect_eq(sp_journal_sync(j), 0);
        cr_expect_eq(s_syncs, k->after_sync, "%s: an explicit sync always syncs", name);
        sp_journal_close(&j);
        cr_expect_eq(s_syncs, k->after_close, "%s: close syncs unless the policy is never", name);
        sp_journal_close(&j); /* NULL-safe */
        s_seen_t seen = {0};
        cr_expect_eq(s_scan(path, &seen, NULL, why), 0, "%s", why);
        cr_expect_eq(seen.n, T_FEW);
        cr_expect(seen.in_order);
    }
    sp_sys_fdatasync_hook = NULL;
}

/* fdatasync calls from another thread than the test's (the syncer's), and
 * from the test's own. */
static _Atomic unsigned s_bg_syncs, s_own_syncs;
static pthread_t s_writer;

static int s_count_bg_fdatasync(int fd)
{
    if (pthread_equal(pthread_self(), s_writer)) {
        s_own_syncs++;
    } else {
        s_bg_syncs++;
    }
    return fdatasync(fd);
}

/* Polls `done` against SP_TEST_WAIT_MS, 1 ms apart. */
static bool s_until(bool (*done)(sp_journal_t *), sp_journal_t *j)
{
    for (unsigned waited = 0; waited < SP_TEST_WAIT_MS; waited++) {
        if (done(j)) {
            return true;
        }
        nanosleep(&(struct timespec){.tv_nsec = 1000000L}, NULL);
    }
    return done(j);
}

static bool s_all_synced(sp_journal_t *j)
{
    return sp_journal_synced(j) == sp_journal_records(j);
}

static bool s_tick_failed(sp_journal_t *j)
{
    return sp_journal_tick(j) != 0;
}

Test(journal, a_background_syncer_syncs_each_interval_off_the_writers_thread)
{
    char path[T_PATH_CAP];
    s_path(path, "background.log");
    sp_journal_t *j = NULL;
    char why[T_WHY_CAP] = "";
    s_writer = pthread_self();
    sp_sys_fdatasync_hook = s_count_bg_fdatasync;
    cr_assert_eq(sp_journal_open(&j, path, 9, 2, SP_FSYNC_INTERVAL, 2, why, sizeof why), 0, "%s",
                 why);
    cr_assert_eq(sp_journal_background(j, why, sizeof why), 0, "%s", why);
    for (uint64_t i = 0; i < T_FEW; i++) {
        sp_jrec_t r = s_rec(i);
        cr_expect_eq(sp_journal_append(j, &r, 1), 0);
        cr_expect_eq(sp_journal_tick(j), 0);
    }
    cr_expect_eq(s_own_syncs, 0, "the writer's appends and ticks never sync themselves");
    cr_expect(s_until(s_all_synced, j), "the syncer did not sync the %u records: %llu synced",
              T_FEW, (unsigned long long)sp_journal_synced(j));
    cr_expect_geq(s_bg_syncs, 1);
    /* with nothing new appended the syncer leaves the disk alone */
    unsigned quiet = s_bg_syncs;
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    cr_expect_eq(s_bg_syncs, quiet, "the syncer synced with nothing new");
    sp_jrec_t last = s_rec(T_FEW);
    cr_expect_eq(sp_journal_append(j, &last, 1), 0);
    sp_journal_close(&j); /* stops the syncer, then syncs once more itself */
    cr_expect_eq(s_own_syncs, 1, "close syncs what the syncer had not");
    sp_sys_fdatasync_hook = NULL;
    s_seen_t seen = {0};
    cr_expect_eq(s_scan(path, &seen, NULL, why), 0, "%s", why);
    cr_expect_eq(seen.n, T_FEW + 1);
    cr_expect(seen.in_order);
}

Test(journal, a_failed_background_sync_refuses_every_later_append)
{
    char path[T_PATH_CAP];
    s_path(path, "background-fail.log");
    sp_journal_t *j = NULL;
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_journal_open(&j, path, 9, 2, SP_FSYNC_INTERVAL, 1, why, sizeof why), 0, "%s",
                 why);
    sp_sys_fail_nth(SP_SYS_FDATASYNC, 1, EIO);
    cr_assert_eq(sp_journal_background(j, why, sizeof why), 0, "%s", why);
    sp_jrec_t r = s_rec(0);
    cr_expect_eq(sp_journal_append(j, &r, 1), 0, "written before the failed sync");
    cr_expect(s_until(s_tick_failed, j), "the tick never reported the syncer's failure");
    cr_expect_eq(sp_journal_tick(j), -EIO);
    sp_jrec_t next = s_rec(1);
    cr_expect_eq(sp_journal_append(j, &next, 1), -EIO, "an append after a failed sync");
    cr_expect_eq(sp_journal_sync(j), -EIO, "the failure is sticky");
    sp_journal_close(&j);
    sp_sys_fail_off();
}

Test(journal, every_cut_of_the_file_keeps_exactly_the_whole_records)
{
    char path[T_PATH_CAP];
    char cut[T_PATH_CAP];
    s_path(path, "full.log");
    s_path(cut, "cut.log");
    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    size_t len;
    uint8_t *b = s_slurp(path, &len);
    cr_assert_eq(len, T_HDR + T_FEW * T_REC);
    for (size_t l = 0; l <= len; l++) {
        s_spit(cut, b, l);
        s_seen_t seen = {0};
        sp_journal_info_t info;
        char why[T_WHY_CAP] = "";
        int rc = s_scan(cut, &seen, &info, why);
        cr_assert_eq(rc, 0, "length %zu: %s (%s)", l, sp_strerror(rc), why);
        uint64_t whole = l < T_HDR ? 0 : (l - T_HDR) / T_REC;
        cr_expect_eq(seen.n, whole, "length %zu: %llu records", l, (unsigned long long)seen.n);
        cr_expect(seen.in_order && seen.offsets_ok, "length %zu", l);
        cr_expect_eq(info.records, whole);
        cr_expect_eq(info.has_header, l >= T_HDR, "length %zu", l);
        uint64_t valid = l < T_HDR ? 0 : T_HDR + whole * T_REC;
        cr_expect_eq(info.valid_end, valid, "length %zu", l);
        cr_expect_eq(info.tail_bytes_dropped, l - valid, "length %zu", l);
    }
    free(b);
}

/* Flips one byte of record k (0-based) of a T_FEW-record journal. */
static void s_flip_record(const char *path, unsigned k, unsigned byte)
{
    size_t len;
    uint8_t *b = s_slurp(path, &len);
    b[T_HDR + k * T_REC + byte] ^= 0x5A;
    s_spit(path, b, len);
    free(b);
}

Test(journal, bad_record_in_the_middle_is_corruption)
{
    char path[T_PATH_CAP];
    s_path(path, "journal-3.log");
    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_flip_record(path, 1, 20); /* record 2 of 5 */
    s_seen_t seen = {0};
    sp_journal_info_t info;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(s_scan(path, &seen, &info, why), SP_E_JOURNAL_CORRUPT);
    cr_expect_eq(seen.n, 1, "nothing after the bad record is delivered");
    cr_expect_not_null(strstr(why, path), "why: %s", why);
    cr_expect_not_null(strstr(why, "byte 128"), "why: %s", why);
    cr_expect_not_null(strstr(why, "record 2 of 5"), "why: %s", why);
    cr_expect_eq(info.valid_end, T_HDR + T_REC);
}

Test(journal, bad_first_record_with_more_after_is_corruption)
{
    char path[T_PATH_CAP];
    s_path(path, "first.log");
    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_flip_record(path, 0, 0); /* the CRC itself */
    s_seen_t seen = {0};
    char why[T_WHY_CAP] = "";
    cr_expect_eq(s_scan(path, &seen, NULL, why), SP_E_JOURNAL_CORRUPT);
    cr_expect_eq(seen.n, 0);
    cr_expect_not_null(strstr(why, "byte 64"), "why: %s", why);
}

Test(journal, bad_last_record_is_a_torn_tail)
{
    char path[T_PATH_CAP];
    s_path(path, "torn.log");
    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_flip_record(path, T_FEW - 1, 63);
    s_seen_t seen = {0};
    sp_journal_info_t info;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(s_scan(path, &seen, &info, why), 0, "%s", why);
    cr_expect_eq(seen.n, T_FEW - 1);
    cr_expect(seen.in_order);
    cr_expect_eq(info.records, T_FEW - 1);
    cr_expect_eq(info.tail_bytes_dropped, T_REC);
    cr_expect_eq(info.valid_end, T_HDR + (T_FEW - 1) * T_REC);

    /* and with part of a further record after it, still a tail */
    size_t len;
    uint8_t *b = s_slurp(path, &len);
    uint8_t *longer = calloc(1, len + 10);
    cr_assert_not_null(longer);
    memcpy(longer, b, len);
    memset(longer + len, 0xEE, 10);
    s_spit(path, longer, len + 10);
    cr_expect_eq(s_scan(path, &seen, &info, why), 0, "%s", why);
    cr_expect_eq(info.records, T_FEW - 1);
    cr_expect_eq(info.tail_bytes_dropped, T_REC + 10);
    free(longer);
    free(b);
}

Test(journal, zero_filled_records_after_a_torn_one_are_tail)
{
    char path[T_PATH_CAP];
    s_path(path, "zeros.log");
    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_flip_record(path, T_FEW - 1, 30);
    size_t len;
    uint8_t *b = s_slurp(path, &len);
    uint8_t *longer = calloc(1, len + 2 * T_REC); /* two zero records */
    cr_assert_not_null(longer);
    memcpy(longer, b, len);
    s_spit(path, longer, len + 2 * T_REC);
    s_seen_t seen = {0};
    sp_journal_info_t info;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(s_scan(path, &seen, &info, why), 0, "%s", why);
    cr_expect_eq(info.records, T_FEW - 1);
    cr_expect_eq(info.tail_bytes_dropped, 3 * T_REC);

    /* but a good record after the zeros makes it corruption again */
    sp_jrec_t r = s_rec(T_FEW);
    uint8_t *more = calloc(1, len + 3 * T_REC);
    cr_assert_not_null(more);
    memcpy(more, longer, len + 2 * T_REC);
    sp_jrec_encode(more + len + 2 * T_REC, &r);
    s_spit(path, more, len + 3 * T_REC);
    cr_expect_eq(s_scan(path, &seen, &info, why), SP_E_JOURNAL_CORRUPT);
    cr_expect_eq(seen.n, T_FEW - 1);
    free(more);
    free(longer);
    free(b);
}

Test(journal, truncate_tail_cuts_what_the_scan_dropped)
{
    char path[T_PATH_CAP];
    s_path(path, "trunc.log");
    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_flip_record(path, T_FEW - 1, 5);
    s_seen_t seen = {0};
    sp_journal_info_t info;
    char why[T_WHY_CAP] = "";
    cr_assert_eq(s_scan(path, &seen, &info, why), 0, "%s", why);
    cr_expect_eq(sp_journal_truncate_tail(path, info.valid_end + 2 * T_REC), -EINVAL);
    cr_expect_eq(sp_journal_truncate_tail(path, info.valid_end), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq((uint64_t)st.st_size, info.valid_end);
    cr_expect_eq(s_scan(path, &seen, &info, why), 0, "%s", why);
    cr_expect_eq(info.records, T_FEW - 1);
    cr_expect_eq(info.tail_bytes_dropped, 0);
    /* already clean: nothing to do */
    cr_expect_eq(sp_journal_truncate_tail(path, info.valid_end), 0);
    char missing[T_PATH_CAP];
    cr_expect_eq(sp_journal_truncate_tail(s_path(missing, "missing.log"), 0), -ENOENT);
}

Test(journal, callback_result_stops_the_scan)
{
    char path[T_PATH_CAP];
    s_path(path, "stop.log");
    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_seen_t seen = {.stop_after = 3};
    sp_journal_info_t info;
    char why[T_WHY_CAP] = "";
    cr_expect_eq(s_scan(path, &seen, &info, why), 42);
    cr_expect_eq(seen.n, 3);
    cr_expect_eq(info.records, 3);
}

Test(journal, scan_of_a_missing_file_is_enoent)
{
    char path[T_PATH_CAP];
    s_path(path, "missing.log");
    char why[T_WHY_CAP] = "";
    sp_journal_info_t info;
    cr_expect_eq(sp_journal_scan(path, NULL, NULL, &info, why, sizeof why), -ENOENT);
    cr_expect_not_null(strstr(why, path), "why: %s", why);
}

/* Rewrites header bytes [off, off+4) with v and, if fix_crc, the header CRC. */
static void s_patch_header(const char *path, unsigned off, uint32_t v, bool fix_crc)
{
    size_t len;
    uint8_t *b = s_slurp(path, &len);
    s_put32(b + off, v);
    if (fix_crc) {
        s_put32(b + 60, sp_crc32c(0, b, 60));
    }
    s_spit(path, b, len);
    free(b);
}

static void s_expect_bad_header(const char *path, int code, const char *what)
{
    char why[T_WHY_CAP] = "";
    sp_journal_info_t info;
    cr_expect_eq(sp_journal_scan(path, NULL, NULL, &info, why, sizeof why), code, "%s", why);
    cr_expect_not_null(strstr(why, path), "why: %s", why);
    cr_expect_not_null(strstr(why, what), "why \"%s\" should say \"%s\"", why, what);
    cr_expect_eq(info.records, 0);
}

Test(journal, scan_refuses_bad_headers_with_exact_codes)
{
    char path[T_PATH_CAP];
    s_path(path, "hdr.log");

    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_patch_header(path, 0, 0x4A505343u, true); /* "CSPJ..." */
    s_expect_bad_header(path, SP_E_BAD_MAGIC, "not a stockpipe journal (bad magic)");
    unlink(path);

    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_patch_header(path, 8, 2, true);
    s_expect_bad_header(path, SP_E_BAD_VERSION, "version 2");
    unlink(path);

    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_patch_header(path, 12, 128, true);
    s_expect_bad_header(path, SP_E_BAD_SIZE, "record size 128");
    unlink(path);

    s_write_journal(path, T_FEW, SP_FSYNC_NEVER);
    s_patch_header(path, 16, 0xDEADBEEFu, false); /* table id, CRC left stale */
    s_expect_bad_header(path, SP_E_CHECKSUM, "checksum");
    unlink(path);

    /* short, but not the start of a journal either */
    s_spit(path, "CSV,head", 8);
    s_expect_bad_header(path, SP_E_BAD_MAGIC, "bad magic");
    unlink(path);
    s_spit(path, "SPJ", 3);
    char why[T_WHY_CAP] = "";
    cr_expect_eq(sp_journal_scan(path, NULL, NULL, NULL, why, sizeof why), 0, "%s", why);
}

Test(journal, append_after_a_failed_write_is_refused)
{
    char path[T_PATH_CAP];
    s_path(path, "full.log");
    sp_journal_t *j = NULL;
    char why[T_WHY_CAP] = "";
    cr_assert_eq(sp_journal_open(&j, path, 1, 1, SP_FSYNC_ALWAYS, 0, why, sizeof why), 0, "%s",
                 why);
    sp_jrec_t recs[2] = {s_rec(0), s_rec(1)};
    cr_assert_eq(sp_journal_append(j, recs, 1), 0);

    /* the kernel lets the next write reach 2 records + 10 bytes, cuts it
     * short there and fails the retry with EFBIG (SIGXFSZ ignored) */
    struct rlimit old;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    struct rlimit small = {.rlim_cur = T_HDR + 2 * T_REC + 10, .rlim_max = old.rlim_max};
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0, "setrlimit: %s", strerror(errno));
    sp_jrec_t two[2] = {s_rec(1), s_rec(2)};
    int rc = sp_journal_append(j, two, 2);
    sp_jrec_t one = s_rec(3);
    int again = sp_journal_append(j, &one, 1);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);

    cr_expect_eq(rc, -EFBIG, "rc %d (%s)", rc, sp_strerror(rc));
    cr_expect_eq(again, -EFBIG, "the first error again");
    cr_expect_eq(sp_journal_append(j, &one, 1), -EFBIG, "still refused with room again");
    cr_expect_eq(sp_journal_sync(j), -EFBIG);
    cr_expect_eq(sp_journal_records(j), 1);
    sp_journal_close(&j);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_size, T_HDR + 2 * T_REC + 10, "nothing appended after the error");
    s_seen_t seen = {0};
    sp_journal_info_t info;
    cr_expect_eq(s_scan(path, &seen, &info, why), 0, "%s", why);
    cr_expect_eq(seen.n, 2);
    cr_expect(seen.in_order);
    cr_expect_eq(info.tail_bytes_dropped, 10);
}

/* ---- policy parsing ---- */

Test(journal, fsync_policy_parse_accepts_the_documented_forms)
{
    sp_fsync_policy_t p = 0;
    unsigned ms = 99;
    cr_expect_eq(sp_fsync_policy_parse("always", &p, &ms), 0);
    cr_expect_eq(p, SP_FSYNC_ALWAYS);
    cr_expect_eq(ms, 0);
    cr_expect_eq(sp_fsync_policy_parse("never", &p, &ms), 0);
    cr_expect_eq(p, SP_FSYNC_NEVER);
    cr_expect_eq(sp_fsync_policy_parse("interval", &p, &ms), 0);
    cr_expect_eq(p, SP_FSYNC_INTERVAL);
    cr_expect_eq(ms, SP_JOURNAL_INTERVAL_MS);
    cr_expect_eq(sp_fsync_policy_parse("interval:1", &p, &ms), 0);
    cr_expect_eq(ms, 1);
    cr_expect_eq(sp_fsync_policy_parse("interval:60000", &p, &ms), 0);
    cr_expect_eq(ms, 60000);
    cr_expect_str_eq(sp_fsync_policy_name(SP_FSYNC_ALWAYS), "always");
    cr_expect_str_eq(sp_fsync_policy_name(SP_FSYNC_INTERVAL), "interval");
    cr_expect_str_eq(sp_fsync_policy_name(SP_FSYNC_NEVER), "never");
    cr_expect_str_eq(sp_fsync_policy_name((sp_fsync_policy_t)0), "?");
}

Test(journal, fsync_policy_parse_refuses_everything_else)
{
    const char *bad[] = {"",
                         "Always",
                         "alwaysx",
                         "interval:",
                         "interval:0",
                         "interval:60001",
                         "interval:-5",
                         "interval: 5",
                         "interval:5ms",
                         "interval5",
                         "intervals",
                         "sometimes",
                         "interval:99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sp_fsync_policy_t p = SP_FSYNC_NEVER;
        unsigned ms = 77;
        cr_expect_eq(sp_fsync_policy_parse(bad[i], &p, &ms), SP_E_USAGE, "\"%s\"", bad[i]);
        cr_expect_eq(p, SP_FSYNC_NEVER, "\"%s\" changed the policy", bad[i]);
        cr_expect_eq(ms, 77, "\"%s\" changed the interval", bad[i]);
    }
    cr_expect_eq(sp_fsync_policy_parse(NULL, NULL, NULL), SP_E_USAGE);
}
