/*
 * sp_shmlink — the `shm` transport: order and result messages travel through
 * lock-free rings (sp_ring) in one POSIX shared-memory segment, /NAME.ring.
 * This module and sp_table are the only ones that shm_open and mmap.
 *
 * Why this shape: a kernel queue costs two system calls and two copies per
 * message, and a broker process in the middle costs two more hops.  Here a
 * producer copies its batch into a slot of the orders ring and a worker
 * copies it out; nobody enters the kernel unless a side has gone to sleep on
 * the ring's futex (sp_ring spins only SP_RING_SPIN polls first, because with
 * two cores a spinner starves the very process it waits for).
 *
 * Results go back the way mq sends them: by the producer id in the order
 * message's header (`sender`).  Each producer link owns one of the
 * SP_SHM_RESULT_RINGS result rings, claimed with a compare-and-swap on the
 * ring's owner word, which holds the owner's pid next to its id so that a
 * ring left behind by a crashed producer can be recognised and taken over.
 * A worker looks the owner up on every send (one cached guess, then a scan
 * of 64 words) and answers -ENOENT when no live link has that id.
 *
 * A worker that was blocked on a dead producer's full ring may still put a
 * result into it after a new producer has taken the ring over and drained
 * it.  The new owner's link drops such a message on receipt (its first
 * record names another producer) and counts it in the header's
 * stale_results, so it never reaches the caller as a wrong answer.
 */
#include "sp_shmlink.h"

#include "sp_link_impl.h"

#include "sp_error.h"
#include "sp_hello.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Byte offsets in a wire message (docs/PROTOCOL.md sections 3 and 4). */
#define S_HDR_KIND_OFF        5 /* uint8 kind */
#define S_HDR_COUNT_OFF       6 /* uint16 count */
#define S_HDR_SENDER_OFF      8 /* uint32 sender */
#define S_RESULT_PRODUCER_OFF 0 /* uint32 producer_id, first field of a result */

struct sp_shm {
    sp_shm_hdr_t *hdr;
    size_t len;
    sp_ring_t *orders;
    sp_ring_t *results[SP_SHM_RESULT_RINGS];
};

typedef struct {
    sp_link_t base;
    sp_link_role_t role;
    sp_shm_t *shm;
    uint32_t id;      /* producer id (producer) or worker id (worker) */
    size_t reply_msg; /* producer: the largest result message it takes */
    int ring;         /* producer: the result ring it owns, -1 before the claim */
    uint64_t owner;   /* producer: the owner word it stored there */
    unsigned guess;   /* worker: the result ring it last sent to */
    uint8_t *bounce;  /* one slot, for callers whose buffer is smaller */
    uint32_t slot_size;
} sp_shm_link_t;

/* Little-endian fields of a received message, byte by byte: the buffer is
 * not trusted to be aligned or well formed. */
static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t s_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static bool s_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* ------------------------------------------------------------------ */
/* The segment                                                         */

/* Checks a mapped header against everything we are about to rely on. */
static int s_check(const sp_shm_hdr_t *h, size_t len)
{
    if (len < sizeof *h || h->magic != SP_SHM_MAGIC) {
        return SP_E_BAD_MAGIC;
    }
    if (h->layout != SP_SHM_LAYOUT) {
        return SP_E_BAD_VERSION;
    }
    size_t orders = sp_ring_bytes(h->order_slots, h->slot_size);
    size_t results = sp_ring_bytes(h->result_slots, h->slot_size);
    if (h->header_size != sizeof *h || h->result_rings != SP_SHM_RESULT_RINGS || orders == 0 ||
        results == 0 || h->orders_offset != sizeof *h || h->orders_bytes != orders ||
        h->results_offset != h->orders_offset + orders || h->result_bytes != results ||
        h->segment_size != h->results_offset + (uint64_t)SP_SHM_RESULT_RINGS * results ||
        h->segment_size != len) {
        return SP_E_BAD_LAYOUT;
    }
    return 0;
}

/* Finds (attach) or lays out (init) the rings of a mapped segment. */
static int s_rings(sp_shm_t *s, bool init)
{
    sp_shm_hdr_t *h = s->hdr;
    uint8_t *base = (uint8_t *)h;
    for (int i = -1; i < SP_SHM_RESULT_RINGS; i++) {
        uint64_t off = i < 0 ? h->orders_offset : h->results_offset + (uint64_t)i * h->result_bytes;
        uint32_t slots = i < 0 ? h->order_slots : h->result_slots;
        size_t bytes = i < 0 ? h->orders_bytes : h->result_bytes;
        sp_ring_t *r = init ? sp_ring_init(base + off, slots, h->slot_size)
                            : sp_ring_attach(base + off, bytes);
        if (r == NULL || sp_ring_capacity(r) != slots || sp_ring_slot_size(r) != h->slot_size) {
            return SP_E_BAD_LAYOUT;
        }
        if (i < 0) {
            s->orders = r;
        } else {
            s->results[i] = r;
        }
    }
    return 0;
}

int sp_shm_create(sp_shm_t **out, const sp_names_t *names, long slot_size, char *why,
                  size_t why_cap)
{
    *out = NULL;
    if (slot_size <= 0) {
        slot_size = SP_SHM_SLOT_DEFAULT;
    }
    /* a slot holds one order or result message, a HELLO or a WELCOME */
    size_t least = sp_wire_msg_size(SP_MSG_RESULTS, 1);
    if (sp_wire_msg_size(SP_MSG_ORDERS, 1) > least) {
        least = sp_wire_msg_size(SP_MSG_ORDERS, 1);
    }
    if (SP_WELCOME_MSG_MAX > least) {
        least = SP_WELCOME_MSG_MAX;
    }
    if (slot_size < (long)least || slot_size > (long)SP_SHM_SLOT_MAX) {
        sp_why(
            why, why_cap,
            "shm slot size %ld is not within %zu (one order, result or WELCOME) .. %u bytes: use "
            "--mq-msgsize within those",
            slot_size, least, SP_SHM_SLOT_MAX);
        return SP_E_USAGE;
    }
    size_t orders = sp_ring_bytes(SP_SHM_ORDER_SLOTS, (uint32_t)slot_size);
    size_t results = sp_ring_bytes(SP_SHM_RESULT_SLOTS, (uint32_t)slot_size);
    size_t len = sp_shm_bytes(slot_size);

    sp_shm_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    int fd = shm_open(names->ring, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, SP_SHM_MODE);
    if (fd < 0) {
        rc = -errno;
        if (rc == -EEXIST) {
            sp_why(why, why_cap, "the ring segment /dev/shm%s already exists", names->ring);
        } else {
            sp_why(why, why_cap, "cannot create /dev/shm%s: %s", names->ring, strerror(-rc));
        }
        free(s);
        return rc;
    }
    if (ftruncate(fd, (off_t)len) < 0) {
        rc = -errno;
        sp_why(why, why_cap, "cannot size /dev/shm%s to %zu bytes: %s", names->ring, len,
               strerror(-rc));
        goto unlink;
    }
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        rc = -errno;
        sp_why(why, why_cap, "cannot map /dev/shm%s: %s", names->ring, strerror(-rc));
        goto unlink;
    }
    close(fd);
    fd = -1;
    s->hdr = mem;
    s->len = len;
    sp_shm_hdr_t *h = s->hdr;
    h->layout = SP_SHM_LAYOUT;
    h->header_size = sizeof *h;
    h->slot_size = (uint32_t)slot_size;
    h->order_slots = SP_SHM_ORDER_SLOTS;
    h->result_slots = SP_SHM_RESULT_SLOTS;
    h->result_rings = SP_SHM_RESULT_RINGS;
    h->segment_size = len;
    h->orders_offset = sizeof *h;
    h->orders_bytes = orders;
    h->results_offset = sizeof *h + orders;
    h->result_bytes = results;
    h->creator_pid = (int32_t)getpid();
    h->created_ns = sp_now_ns();
    for (unsigned i = 0; i < SP_SHM_RESULT_RINGS; i++) {
        atomic_init(&h->owner[i], 0);
    }
    rc = s_rings(s, true);
    if (rc < 0) {
        goto unlink; /* cannot happen with the sizes checked above */
    }
    atomic_thread_fence(memory_order_release);
    h->magic = SP_SHM_MAGIC; /* last: an opener sees a whole segment or none */
    *out = s;
    return 0;
unlink:
    if (s->hdr != NULL) {
        munmap(s->hdr, s->len);
    }
    if (fd >= 0) {
        close(fd);
    }
    shm_unlink(names->ring);
    free(s);
    return rc;
}

size_t sp_shm_bytes(long slot_size)
{
    if (slot_size <= 0) {
        slot_size = SP_SHM_SLOT_DEFAULT;
    }
    size_t orders = sp_ring_bytes(SP_SHM_ORDER_SLOTS, (uint32_t)slot_size);
    size_t results = sp_ring_bytes(SP_SHM_RESULT_SLOTS, (uint32_t)slot_size);
    return sizeof(sp_shm_hdr_t) + orders + (size_t)SP_SHM_RESULT_RINGS * results;
}

int sp_shm_open(sp_shm_t **out, const sp_names_t *names, char *why, size_t why_cap)
{
    *out = NULL;
    int fd = shm_open(names->ring, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        int rc = -errno;
        sp_why(why, why_cap, "cannot open the ring segment /dev/shm%s: %s", names->ring,
               strerror(-rc));
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if ((size_t)st.st_size < sizeof(sp_shm_hdr_t)) {
        close(fd);
        sp_why(why, why_cap, "/dev/shm%s is not a stockpipe ring segment", names->ring);
        return SP_E_BAD_MAGIC;
    }
    size_t len = (size_t)st.st_size;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int rc = mem == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc < 0) {
        /* cppcheck-suppress memleak ; mem is MAP_FAILED here: nothing is mapped */
        return rc;
    }
    sp_shm_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        munmap(mem, len);
        return -ENOMEM;
    }
    s->hdr = mem;
    s->len = len;
    rc = s_check(s->hdr, len);
    if (rc == 0) {
        atomic_thread_fence(memory_order_acquire);
        rc = s_rings(s, false);
    }
    if (rc < 0) {
        sp_why(why, why_cap, "/dev/shm%s is not a ring segment this build understands: %s",
               names->ring, sp_strerror(rc));
        sp_shm_close(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void sp_shm_close(sp_shm_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_shm_t *s = *self_p;
    munmap(s->hdr, s->len);
    free(s);
    *self_p = NULL;
}

int sp_shm_remove(const sp_names_t *names)
{
    return sp_shm_unlink_ours(names->ring);
}

sp_shm_hdr_t *sp_shm_hdr(sp_shm_t *self)
{
    return self->hdr;
}

sp_ring_t *sp_shm_orders(sp_shm_t *self)
{
    return self->orders;
}

sp_ring_t *sp_shm_results(sp_shm_t *self, unsigned i)
{
    return i < SP_SHM_RESULT_RINGS ? self->results[i] : NULL;
}

long sp_shm_orders_depth(sp_shm_t *self)
{
    return (long)sp_ring_depth(self->orders);
}

long sp_shm_results_depth(sp_shm_t *self)
{
    long sum = 0;
    for (unsigned i = 0; i < SP_SHM_RESULT_RINGS; i++) {
        sum += (long)sp_ring_depth(self->results[i]);
    }
    return sum;
}

/* ------------------------------------------------------------------ */
/* The link                                                            */

/* sp_ring answers -EAGAIN for "nothing, and you said not to wait"; the link
 * contract calls every wait that ran out SP_E_TIMEOUT. */
static int s_timeout_code(int rc)
{
    return rc == -EAGAIN ? SP_E_TIMEOUT : rc;
}

/* Milliseconds left until `deadline` (0 = no deadline: wait forever). */
static int s_left_ms(uint64_t deadline, int timeout_ms)
{
    if (timeout_ms <= 0) {
        return timeout_ms;
    }
    uint64_t now = sp_now_ns();
    if (now >= deadline) {
        return 0;
    }
    uint64_t left = (deadline - now + SP_NS_PER_MS - 1) / SP_NS_PER_MS;
    return left > (uint64_t)timeout_ms ? timeout_ms : (int)left;
}

/* Takes one message from `r` into buf; through the bounce slot when buf is
 * smaller than a slot (sp_ring_get wants a whole slot). */
static int s_get(sp_shm_link_t *l, sp_ring_t *r, void *buf, size_t cap, long wait_us)
{
    if (cap >= l->slot_size) {
        return sp_ring_get_us(r, buf, cap, wait_us);
    }
    int n = sp_ring_get_us(r, l->bounce, l->slot_size, wait_us);
    if (n < 0) {
        return n;
    }
    if ((size_t)n > cap) {
        return -EMSGSIZE;
    }
    memcpy(buf, l->bounce, (size_t)n);
    return n;
}

/* True for a result message whose first record names another producer:
 * meant for a previous owner of our ring. */
static bool s_stale(const sp_shm_link_t *l, const uint8_t *msg, size_t len)
{
    if (len < SP_WIRE_HDR_SIZE + SP_WIRE_RESULT_SIZE || msg[S_HDR_KIND_OFF] != SP_MSG_RESULTS ||
        s_le16(msg + S_HDR_COUNT_OFF) == 0) {
        return false;
    }
    return s_le32(msg + SP_WIRE_HDR_SIZE + S_RESULT_PRODUCER_OFF) != l->id;
}

/* Worker side: the result ring owned by `producer_id`, or -1. */
static int s_find(sp_shm_link_t *l, uint32_t producer_id)
{
    sp_shm_hdr_t *h = l->shm->hdr;
    uint64_t w = atomic_load_explicit(&h->owner[l->guess], memory_order_acquire);
    if (w != 0 && SP_SHM_OWNER_ID(w) == producer_id) {
        return (int)l->guess;
    }
    for (unsigned i = 0; i < SP_SHM_RESULT_RINGS; i++) {
        w = atomic_load_explicit(&h->owner[i], memory_order_acquire);
        if (w != 0 && SP_SHM_OWNER_ID(w) == producer_id) {
            l->guess = i;
            return (int)i;
        }
    }
    return -1;
}

/* Producer side: no live producer's ring has our id (id 0, a producer
 * waiting for its WELCOME, is everyone's and nobody's). */
static int s_id_free(const sp_shm_link_t *l, char *why, size_t why_cap)
{
    sp_shm_hdr_t *h = l->shm->hdr;
    for (unsigned i = 0; l->id != 0 && i < SP_SHM_RESULT_RINGS; i++) {
        uint64_t w = atomic_load(&h->owner[i]);
        if (w != 0 && SP_SHM_OWNER_ID(w) == l->id && s_alive(SP_SHM_OWNER_PID(w))) {
            sp_why(why, why_cap, "producer id %u is already connected (result ring %u, pid %d)",
                   l->id, i, (int)SP_SHM_OWNER_PID(w));
            return -EEXIST;
        }
    }
    return 0;
}

/* Worker side: puts a result into its producer's ring.  While the ring stays
 * full it re-checks every SP_SHM_RECHECK_MS that the owner is still that
 * producer and alive, so a crashed producer costs no full timeout. */
static int s_send_result(sp_shm_link_t *l, const void *msg, size_t len, uint32_t producer_id,
                         int timeout_ms)
{
    int i = s_find(l, producer_id);
    if (i < 0) {
        return -ENOENT;
    }
    sp_ring_t *r = l->shm->results[i];
    _Atomic uint64_t *owner = &l->shm->hdr->owner[i];
    uint64_t deadline = timeout_ms > 0 ? sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS : 0;
    for (;;) {
        int left = s_left_ms(deadline, timeout_ms);
        int slice = left < 0 || left > SP_SHM_RECHECK_MS ? SP_SHM_RECHECK_MS : left;
        int rc = sp_ring_put(r, msg, len, slice);
        if (rc != SP_E_TIMEOUT && rc != -EAGAIN) {
            return rc;
        }
        uint64_t w = atomic_load_explicit(owner, memory_order_acquire);
        if (SP_SHM_OWNER_ID(w) != producer_id || !s_alive(SP_SHM_OWNER_PID(w))) {
            return -ENOENT;
        }
        if (timeout_ms == 0 || (timeout_ms > 0 && s_left_ms(deadline, timeout_ms) == 0)) {
            return SP_E_TIMEOUT;
        }
    }
}

/* The reply tag of a producer without an id: its pid and its ring + 1. */
#define S_TAG(pid, ring) (((uint64_t)(uint32_t)(pid) << 32) | (uint32_t)((ring) + 1))

/* Worker side: a WELCOME for a producer without an id goes into the ring
 * its tag names, if that ring is still its (owner: its pid, id 0). */
static int s_send_hello(sp_shm_link_t *l, const void *msg, size_t len, uint64_t tag, int timeout_ms)
{
    uint32_t ring = (uint32_t)tag;
    if (ring == 0 || ring > SP_SHM_RESULT_RINGS) {
        return -ENOENT;
    }
    uint64_t want = SP_SHM_OWNER((int32_t)(tag >> 32), 0);
    if (atomic_load_explicit(&l->shm->hdr->owner[ring - 1], memory_order_acquire) != want) {
        return -ENOENT;
    }
    return s_timeout_code(sp_ring_put(l->shm->results[ring - 1], msg, len, timeout_ms));
}

static int s_send(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                  int timeout_ms)
{
    sp_shm_link_t *l = (sp_shm_link_t *)self;
    if (len > l->slot_size) {
        return -EMSGSIZE;
    }
    if (l->role == SP_LINK_PRODUCER) {
        return s_timeout_code(sp_ring_put(l->shm->orders, msg, len, timeout_ms));
    }
    if (route == NULL) {
        return -EINVAL;
    }
    if (route->producer_id == 0) {
        return s_send_hello(l, msg, len, route->reply_tag, timeout_ms);
    }
    return s_send_result(l, msg, len, route->producer_id, timeout_ms);
}

static uint64_t s_reply_tag(sp_link_t *self)
{
    const sp_shm_link_t *l = (const sp_shm_link_t *)self;
    return l->role == SP_LINK_PRODUCER && l->id == 0 && l->ring >= 0 ? S_TAG(getpid(), l->ring) : 0;
}

/* The WELCOME gave an id: the ring's owner word says it from now on. */
static int s_adopt(sp_link_t *self, uint32_t id, char *why, size_t why_cap)
{
    sp_shm_link_t *l = (sp_shm_link_t *)self;
    if (l->role != SP_LINK_PRODUCER || l->id != 0 || l->ring < 0) {
        return -EINVAL;
    }
    if (l->reply_msg > l->slot_size) {
        sp_why(why, why_cap,
               "results of %zu bytes do not fit the shm ring slots (%u bytes): use smaller "
               "batches or start the broker with a larger --mq-msgsize",
               l->reply_msg, l->slot_size);
        return -EMSGSIZE;
    }
    l->id = id;
    int rc = s_id_free(l, why, why_cap);
    uint64_t mine = l->owner;
    uint64_t next = SP_SHM_OWNER(getpid(), id);
    if (rc == 0 && !atomic_compare_exchange_strong(&l->shm->hdr->owner[l->ring], &mine, next)) {
        sp_why(why, why_cap, "result ring %d was taken from us", l->ring);
        rc = -EOWNERDEAD;
    }
    if (rc < 0) {
        l->id = 0;
        return rc;
    }
    l->owner = next;
    return 0;
}

/* What is left of a wait of wait_us that ends at `deadline` (0: the wait
 * has none): the same convention, 0 once it has passed. */
static long s_left_us(uint64_t deadline, long wait_us)
{
    if (wait_us <= 0) {
        return wait_us;
    }
    uint64_t now = sp_now_ns();
    return now >= deadline ? 0 : (long)((deadline - now + SP_NS_PER_US - 1) / SP_NS_PER_US);
}

static int s_recv_us(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, long wait_us)
{
    sp_shm_link_t *l = (sp_shm_link_t *)self;
    if (route != NULL) {
        memset(route, 0, sizeof *route);
    }
    bool producer = l->role == SP_LINK_PRODUCER;
    sp_ring_t *r = producer ? l->shm->results[l->ring] : l->shm->orders;
    uint64_t deadline = wait_us > 0 ? sp_now_ns() + (uint64_t)wait_us * SP_NS_PER_US : 0;
    for (;;) {
        int n = s_get(l, r, buf, cap, s_left_us(deadline, wait_us));
        if (n < 0) {
            return s_timeout_code(n);
        }
        if (producer && s_stale(l, buf, (size_t)n)) {
            atomic_fetch_add_explicit(&l->shm->hdr->stale_results, 1, memory_order_relaxed);
            if (wait_us > 0 && s_left_us(deadline, wait_us) == 0) {
                return SP_E_TIMEOUT;
            }
            continue;
        }
        if (route != NULL && (size_t)n >= S_HDR_SENDER_OFF + sizeof(uint32_t)) {
            route->producer_id = s_le32((const uint8_t *)buf + S_HDR_SENDER_OFF);
        }
        return n;
    }
}

static int s_recv(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms)
{
    return s_recv_us(self, buf, cap, route, timeout_ms < 0 ? -1 : (long)timeout_ms * 1000);
}

static long s_depth(sp_link_t *self)
{
    sp_shm_link_t *l = (sp_shm_link_t *)self;
    sp_ring_t *r = l->role == SP_LINK_PRODUCER ? l->shm->results[l->ring] : l->shm->orders;
    return (long)sp_ring_depth(r);
}

static void s_close(sp_link_t *self)
{
    sp_shm_link_t *l = (sp_shm_link_t *)self;
    if (l->ring >= 0) {
        /* only if it is still ours: a ring taken over after we were thought
         * dead belongs to its new owner */
        uint64_t mine = l->owner;
        atomic_compare_exchange_strong(&l->shm->hdr->owner[l->ring], &mine, 0);
    }
    sp_shm_close(&l->shm);
    free(l->bounce);
    free(l);
}

/* Producer side: takes a free result ring, else one whose owner died, and
 * empties it of anything a previous owner left. */
static int s_claim(sp_shm_link_t *l, char *why, size_t why_cap)
{
    sp_shm_hdr_t *h = l->shm->hdr;
    uint64_t mine = SP_SHM_OWNER(getpid(), l->id);
    int rc = s_id_free(l, why, why_cap);
    if (rc < 0) {
        return rc;
    }
    int got = -1;
    for (unsigned i = 0; i < SP_SHM_RESULT_RINGS && got < 0; i++) {
        uint64_t w = 0;
        if (atomic_compare_exchange_strong(&h->owner[i], &w, mine)) {
            got = (int)i;
        }
    }
    for (unsigned i = 0; i < SP_SHM_RESULT_RINGS && got < 0; i++) {
        uint64_t w = atomic_load(&h->owner[i]);
        if (w != 0 && !s_alive(SP_SHM_OWNER_PID(w)) &&
            atomic_compare_exchange_strong(&h->owner[i], &w, mine)) {
            atomic_fetch_add(&h->reclaimed, 1);
            got = (int)i;
        }
    }
    if (got < 0) {
        sp_why(why, why_cap,
               "all %d result rings of the shm transport belong to live producers: at most %d "
               "producers can be connected at once",
               SP_SHM_RESULT_RINGS, SP_SHM_RESULT_RINGS);
        return -EUSERS;
    }
    l->ring = got;
    l->owner = mine;
    while (sp_ring_get(l->shm->results[got], l->bounce, l->slot_size, 0) >= 0) {
        atomic_fetch_add_explicit(&h->stale_results, 1, memory_order_relaxed);
    }
    return 0;
}

/* The capacity of the result ring a producer owns. */
static long s_room(sp_link_t *self)
{
    const sp_shm_link_t *l = (const sp_shm_link_t *)self;
    return l->role == SP_LINK_PRODUCER && l->ring >= 0
               ? (long)sp_ring_capacity(l->shm->results[l->ring])
               : 0;
}

static const sp_link_ops_t s_ops = {.send = s_send,
                                    .recv = s_recv,
                                    .recv_us = s_recv_us,
                                    .release = NULL,
                                    .depth = s_depth,
                                    .ready = s_depth,
                                    .close = s_close,
                                    .reply_tag = s_reply_tag,
                                    .adopt = s_adopt,
                                    .room = s_room};

static int s_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap)
{
    sp_shm_link_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return -ENOMEM;
    }
    l->base.ops = &s_ops;
    l->role = cfg->role;
    l->id = cfg->id;
    l->ring = -1;
    int rc = sp_shm_open(&l->shm, cfg->names, why, why_cap);
    if (rc < 0) {
        goto fail;
    }
    l->slot_size = l->shm->hdr->slot_size;
    /* a producer's results must fit too; one without an id yet sends only
     * its HELLO and gets a WELCOME, and its results are checked when it
     * takes its id (s_adopt) */
    size_t want = cfg->max_msg;
    l->reply_msg = cfg->reply_msg;
    if (cfg->role == SP_LINK_PRODUCER && cfg->id != 0 && cfg->reply_msg > want) {
        want = cfg->reply_msg;
    }
    if (want > l->slot_size) {
        sp_why(why, why_cap,
               "messages of %zu bytes do not fit the shm ring slots (%u bytes): use smaller "
               "batches or start the broker with a larger --mq-msgsize",
               want, l->slot_size);
        rc = -EMSGSIZE;
        goto fail;
    }
    l->bounce = malloc(l->slot_size);
    if (l->bounce == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (cfg->role == SP_LINK_PRODUCER) {
        rc = s_claim(l, why, why_cap);
        if (rc < 0) {
            goto fail;
        }
    }
    *out = &l->base;
    return 0;
fail:
    s_close(&l->base);
    return rc;
}

/* ---- the broker's side ---- */

typedef struct {
    sp_tside_t base;
    sp_names_t names;
    sp_shm_t *shm;
} s_side_t;

static int s_preflight(const sp_tparams_t *p, sp_limits_need_t *need, char *why, size_t cap)
{
    (void)why;
    (void)cap;
    need->shm_bytes += sp_shm_bytes(p->msgsize);
    return 0;
}

static int s_names_ours(const sp_names_t *names, char *why, size_t cap)
{
    uid_t uid = 0;
    int rc = sp_shm_owner(names->ring, &uid);
    return sp_transport_owner_check("ring", names->ring, rc, uid, why, cap);
}

/* The table header's depth and message size describe the orders ring. */
static int s_side_create(sp_tside_t **out, const sp_tparams_t *p, sp_tinfo_t *info, char *why,
                         size_t cap)
{
    s_side_t *side = calloc(1, sizeof *side);
    if (side == NULL) {
        return -ENOMEM;
    }
    int rc = sp_shm_create(&side->shm, p->names, p->msgsize, why, cap);
    if (rc < 0) {
        free(side);
        return rc;
    }
    side->base.transport = &sp_transport_shm;
    side->names = *p->names;
    info->depth = sp_shm_hdr(side->shm)->order_slots;
    info->msgsize = sp_shm_hdr(side->shm)->slot_size;
    *out = &side->base;
    return 0;
}

static void s_side_destroy(sp_tside_t **self_p, uint32_t producers)
{
    (void)producers; /* result rings live in the segment */
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    s_side_t *side = (s_side_t *)*self_p;
    sp_shm_close(&side->shm);
    sp_shm_remove(&side->names);
    free(side);
    *self_p = NULL;
}

static int s_clean(const sp_names_t *names, uint32_t producers)
{
    (void)producers;
    return sp_shm_remove(names) == 0;
}

static long s_side_depth(sp_tside_t *self)
{
    return sp_shm_orders_depth(((s_side_t *)self)->shm);
}

static long s_side_reply_depth(sp_tside_t *self, uint32_t producers)
{
    (void)producers;
    return sp_shm_results_depth(((s_side_t *)self)->shm);
}

/* Orders and their results share the rings' slot size. */
static unsigned s_fit(const sp_tinfo_t *info, char *limit, size_t cap)
{
    unsigned fit = sp_wire_fit(SP_MSG_ORDERS, info->msgsize);
    if (sp_wire_fit(SP_MSG_RESULTS, info->msgsize) < fit) {
        fit = sp_wire_fit(SP_MSG_RESULTS, info->msgsize);
    }
    snprintf(limit, cap,
             "the shm ring slots (%u bytes) as orders and as results (a broker --mq-msgsize "
             "raises them)",
             info->msgsize);
    return fit;
}

const sp_transport_t sp_transport_shm = {
    .name = "shm",
    .summary = "lock-free rings in shared memory, futex wake-ups",
    .id = 3,
    .routed = false,
    .has_workers = true,
    .cheap_depth = true,
    .depth_label = "order queue",
    .reply_label = "reply queues",
    .link_open = s_link_open,
    .preflight = s_preflight,
    .names_ours = s_names_ours,
    .create = s_side_create,
    .destroy = s_side_destroy,
    .clean = s_clean,
    .depth = s_side_depth,
    .reply_depth = s_side_reply_depth,
    .fit = s_fit,
};
