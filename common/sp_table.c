/*
 * sp_table — creating, opening and updating the shared product table.
 *
 * The only module (with the shm ring) that calls shm_open and mmap.  The
 * three synchronisation strategies differ only in how they protect the
 * read-check-write of the stock word; all three publish the result with an
 * atomic store of the same word, so lock-free readers (monitors, snapshots)
 * never see a torn stock/version pair.
 */
#include "sp_table.h"

#include "sp_commit.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_signal.h"
#include "sp_sys.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SP_OPEN_RETRY_NS (20 * SP_NS_PER_MS)

struct sp_table {
    int fd;
    bool writable;
    size_t size;
    sp_table_hdr_t *hdr;
    sp_row_t *rows;
};

static size_t s_header_bytes(void)
{
    /* round the header up to a whole number of cache lines */
    return (sizeof(sp_table_hdr_t) + SP_CACHELINE - 1) / SP_CACHELINE * SP_CACHELINE;
}

/* The dedup region starts on a page after the rows. */
static size_t s_dedup_offset(uint32_t capacity)
{
    size_t end = s_header_bytes() + (size_t)capacity * SP_ROW_SIZE;
    return (end + 4095) / 4096 * 4096;
}

static size_t s_segment_bytes(uint32_t capacity)
{
    return s_dedup_offset(capacity) + sp_commit_region_bytes();
}

size_t sp_table_bytes(uint32_t capacity)
{
    return s_segment_bytes(capacity);
}

static int s_init_robust_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0) {
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    }
    if (rc == 0) {
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }
    if (rc == 0) {
        rc = pthread_mutex_init(m, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

int sp_table_create(sp_table_t **out, const char *shm_name, const sp_catalogue_t *cat,
                    const sp_table_opts_t *opts)
{
    *out = NULL;
    size_t count = sp_catalogue_count(cat);
    if (count == 0) {
        return SP_E_CSV_EMPTY;
    }
    uint32_t capacity = sp_catalogue_max_id(cat);
    size_t size = s_segment_bytes(capacity);

    sp_table_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    t->fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, SP_TABLE_MODE);
    if (t->fd < 0) {
        rc = -errno;
        goto free_handle;
    }
    /* umask may have narrowed the mode; make sure nobody else got more */
    if (fchmod(t->fd, SP_TABLE_MODE) < 0 || sp_sys_ftruncate(t->fd, (off_t)size) < 0) {
        rc = -errno;
        goto unlink_segment;
    }
    void *map = sp_sys_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        goto unlink_segment;
    }
    t->size = size;
    t->writable = true;
    t->hdr = map;
    t->rows = (sp_row_t *)((uint8_t *)map + s_header_bytes());

    sp_table_hdr_t *h = t->hdr;
    h->layout = SP_TABLE_LAYOUT;
    h->header_size = (uint32_t)s_header_bytes();
    h->row_size = SP_ROW_SIZE;
    h->capacity = capacity;
    h->product_count = (uint32_t)count;
    h->creator_pid = (int32_t)getpid();
    h->sync = opts ? opts->sync : SP_SYNC_CAS;
    h->transport = opts ? opts->transport : 0;
    h->created_ns = sp_now_ns();
    h->table_id = sp_realtime_ns();
    h->segment_size = size;
    h->dedup_offset = s_dedup_offset(capacity);
    h->dedup_size = sp_commit_region_bytes();
    h->dedup_slots = SP_DEDUP_SLOTS;
    h->dedup_window = SP_DEDUP_WINDOW;
    atomic_store(&h->state, SP_TABLE_CREATING);
    atomic_store(&h->next_producer_id, 1);
    rc = s_init_robust_mutex(&h->table_lock);
    if (rc == 0) {
        rc = s_init_robust_mutex(&h->reg_lock);
    }
    if (rc < 0) {
        goto unmap;
    }
    for (uint32_t i = 0; i < capacity; i++) {
        rc = s_init_robust_mutex(&t->rows[i].lock);
        if (rc < 0) {
            goto unmap;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const sp_product_t *p = sp_catalogue_get(cat, i);
        sp_row_t *r = &t->rows[p->id - 1];
        r->id = p->id;
        r->weight_g = p->weight_g;
        r->expiry = p->expiry;
        r->price_cents = p->price_cents;
        r->initial_stock = p->stock;
        memcpy(r->name, p->name, sizeof r->name);
        memcpy(r->category, p->category, sizeof r->category);
        atomic_store(&r->sv, (uint64_t)p->stock);
        r->present = 1;
    }
    /* the magic goes last: an opener that sees it sees a complete table */
    atomic_thread_fence(memory_order_release);
    h->magic = SP_TABLE_MAGIC;
    *out = t;
    return 0;

unmap:
    munmap(map, size);
unlink_segment:
    shm_unlink(shm_name);
    close(t->fd);
free_handle:
    free(t);
    return rc;
}

static int s_check_header(const sp_table_hdr_t *h, size_t size)
{
    if (h->magic != SP_TABLE_MAGIC) {
        return SP_E_BAD_MAGIC;
    }
    if (h->layout != SP_TABLE_LAYOUT) {
        return SP_E_BAD_VERSION;
    }
    if (h->row_size != SP_ROW_SIZE || h->header_size != s_header_bytes() ||
        h->segment_size != size || s_segment_bytes(h->capacity) != size ||
        h->product_count > h->capacity || h->sync >= SP_SYNC_COUNT ||
        h->dedup_offset != s_dedup_offset(h->capacity) ||
        h->dedup_size != sp_commit_region_bytes() || h->dedup_slots != SP_DEDUP_SLOTS ||
        h->dedup_window != SP_DEDUP_WINDOW) {
        return SP_E_BAD_LAYOUT;
    }
    return 0;
}

int sp_table_open(sp_table_t **out, const char *shm_name, bool writable)
{
    *out = NULL;
    sp_table_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    t->fd = shm_open(shm_name, writable ? O_RDWR : O_RDONLY, 0);
    if (t->fd < 0) {
        rc = -errno;
        goto free_handle;
    }
    struct stat st;
    if (fstat(t->fd, &st) < 0) {
        rc = -errno;
        goto close_fd;
    }
    if ((size_t)st.st_size < s_header_bytes()) {
        /* still being sized by its creator, or not ours at all */
        rc = st.st_size == 0 ? SP_E_NOT_READY : SP_E_BAD_LAYOUT;
        goto close_fd;
    }
    t->size = (size_t)st.st_size;
    void *map =
        mmap(NULL, t->size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, t->fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        goto close_fd;
    }
    t->hdr = map;
    t->rows = (sp_row_t *)((uint8_t *)map + s_header_bytes());
    t->writable = writable;
    atomic_thread_fence(memory_order_acquire);
    rc = s_check_header(t->hdr, t->size);
    if (rc < 0) {
        munmap(map, t->size);
        goto close_fd;
    }
    *out = t;
    return 0;

close_fd:
    close(t->fd);
free_handle:
    free(t);
    return rc;
}

int sp_table_open_ready(sp_table_t **out, const char *shm_name, bool writable, int timeout_ms)
{
    uint64_t deadline = sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS;
    int rc;
    for (;;) {
        if (sp_signal_stopping()) {
            return SP_E_STOPPED;
        }
        rc = sp_table_open(out, shm_name, writable);
        if (rc == 0) {
            if (atomic_load(&(*out)->hdr->state) == SP_TABLE_READY) {
                return 0;
            }
            sp_table_close(out);
            rc = SP_E_NOT_READY;
        } else if (rc != -ENOENT && rc != SP_E_NOT_READY && rc != SP_E_BAD_MAGIC) {
            return rc; /* a real error: waiting will not fix it */
        }
        if (sp_now_ns() >= deadline) {
            return rc == -ENOENT ? SP_E_TIMEOUT : SP_E_NOT_READY;
        }
        sp_sleep_ns(SP_OPEN_RETRY_NS);
    }
}

void sp_table_close(sp_table_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_table_t *t = *self_p;
    munmap(t->hdr, t->size);
    close(t->fd);
    free(t);
    *self_p = NULL;
}

int sp_shm_owner(const char *shm_name, uid_t *uid)
{
    int fd = shm_open(shm_name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    close(fd);
    if (rc == 0) {
        *uid = st.st_uid;
    }
    return rc;
}

int sp_shm_unlink_ours(const char *shm_name)
{
    uid_t uid;
    int rc = sp_shm_owner(shm_name, &uid);
    if (rc < 0) {
        return rc;
    }
    if (uid != geteuid()) {
        return -EACCES; /* another user's segment under our name: left alone */
    }
    return shm_unlink(shm_name) < 0 ? -errno : 0;
}

int sp_table_unlink(const char *shm_name)
{
    return sp_shm_unlink_ours(shm_name);
}

sp_table_hdr_t *sp_table_hdr(sp_table_t *self)
{
    return self->hdr;
}

uint32_t sp_table_capacity(const sp_table_t *self)
{
    return self->hdr->capacity;
}

const sp_row_t *sp_table_rows(const sp_table_t *self)
{
    return self->rows;
}

sp_row_t *sp_table_row(sp_table_t *self, uint32_t id)
{
    if (id == 0 || id > self->hdr->capacity) {
        return NULL;
    }
    sp_row_t *r = &self->rows[id - 1];
    return r->present ? r : NULL;
}

int sp_table_apply(sp_table_t *self, sp_sync_t sync, unsigned type, uint32_t id, uint32_t qty,
                   sp_change_t *chg)
{
    return sp_commit_anonymous(self, sync, type, id, qty, chg);
}

void *sp_table_dedup(sp_table_t *self)
{
    return (uint8_t *)self->hdr + self->hdr->dedup_offset;
}

bool sp_table_writable(const sp_table_t *self)
{
    return self->writable;
}

int sp_table_read(sp_table_t *self, uint32_t id, sp_product_t *out, uint32_t *version)
{
    const sp_row_t *r = sp_table_row(self, id);
    if (r == NULL) {
        return SP_E_UNKNOWN_PRODUCT;
    }
    uint64_t sv = atomic_load_explicit(&r->sv, memory_order_acquire);
    memset(out, 0, sizeof *out);
    out->id = r->id;
    memcpy(out->name, r->name, sizeof out->name);
    memcpy(out->category, r->category, sizeof out->category);
    out->weight_g = r->weight_g;
    out->price_cents = r->price_cents;
    out->expiry = r->expiry;
    out->stock = SP_SV_STOCK(sv);
    if (version != NULL) {
        *version = SP_SV_VERSION(sv);
    }
    return 0;
}

int sp_table_save_csv(sp_table_t *self, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        return -errno;
    }
    int rc = fprintf(f, "%s\n", SP_CSV_HEADER) < 0 ? -EIO : 0;
    for (uint32_t id = 1; rc == 0 && id <= self->hdr->capacity; id++) {
        sp_product_t p;
        if (sp_table_read(self, id, &p, NULL) == 0) {
            rc = sp_catalogue_write_row(f, &p);
        }
    }
    if (fclose(f) != 0 && rc == 0) {
        rc = -EIO;
    }
    /* one atomic save for every file we keep: temporary, fsync, rename,
     * fsync of the directory; on failure the previous file is untouched */
    char why[256];
    if (rc == 0) {
        rc = sp_file_save(path, buf, len, why, sizeof why);
    }
    free(buf);
    return rc;
}

size_t sp_table_audit(sp_table_t *self, uint32_t *bad, size_t max_bad)
{
    size_t nbad = 0;
    for (uint32_t id = 1; id <= self->hdr->capacity; id++) {
        const sp_row_t *r = sp_table_row(self, id);
        if (r == NULL) {
            continue;
        }
        sp_tally_t tl;
        uint64_t stock = sp_row_stock_settled(r, &tl);
        if (stock > SP_STOCK_MAX ||
            (uint64_t)r->initial_stock + tl.restocked != stock + tl.held + tl.sold) {
            if (nbad < max_bad) {
                bad[nbad] = id;
            }
            nbad++;
        }
    }
    return nbad;
}

uint32_t sp_table_new_producer_id(sp_table_t *self)
{
    return atomic_fetch_add(&self->hdr->next_producer_id, 1);
}

void sp_table_set_state(sp_table_t *self, sp_table_state_t state)
{
    atomic_store_explicit(&self->hdr->state, (uint32_t)state, memory_order_release);
}

const char *const sp_whop_names[SP_WHOP_COUNT] = {"step", "journal", "reply"};

const char *sp_sync_name(sp_sync_t sync)
{
    static const char *names[] = {"cas", "row-lock", "table-lock"};
    return (unsigned)sync < SP_SYNC_COUNT ? names[sync] : "?";
}

int sp_sync_parse(const char *s, sp_sync_t *out)
{
    for (int i = 0; i < SP_SYNC_COUNT; i++) {
        if (strcmp(s, sp_sync_name((sp_sync_t)i)) == 0) {
            *out = (sp_sync_t)i;
            return 0;
        }
    }
    return SP_E_USAGE;
}
