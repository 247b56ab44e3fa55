/*
 * sp_ring — a bounded ring of messages under two robust process-shared
 * mutexes (one for putters, one for getters), with futex sleeping on both
 * ends.
 *
 * Position p of the ring lives in slot p % capacity; the ring holds the
 * positions head .. tail - 1.  A put copies its message into slot tail and
 * then moves the tail, under the putters' mutex; a get copies slot head out
 * and then moves the head, under the getters' mutex; each moves its counter
 * last, with one release store.  So a process killed anywhere inside leaves
 * the ring as it was before its call (a put not made, a message not taken),
 * and the mutexes are robust: the next locker is told its owner died
 * (EOWNERDEAD), marks it consistent and goes on, counting the recovery.
 *
 * Two locks, not one: a putter touches only slot tail, which no getter
 * reads until the tail has moved past it (the getter reads the tail with
 * acquire), and a getter only slot head, which no putter writes until the
 * head has moved past it; so the two sides never wait for each other, and
 * one customer and one worker (the common case) each take a lock nobody
 * else holds.  With one lock for both, every put and get of such a pair
 * contended for it and slept in the kernel: the bench's raw ring did 0.27x
 * the messages of a plain single-producer, single-consumer ring.  That is what makes the
 * `shm` transport survive the death of any process on it, where the
 * lock-free queue it replaced (Vyukov's: claim a position, then publish the
 * slot) stopped every reader at the slot a dead writer had claimed.  The
 * price is that copies into one ring do not overlap: a message is at most a
 * slot (16 KiB by default), a few microseconds of memcpy.
 *
 * Waiting happens outside the mutex: a caller that finds the ring empty (or
 * full) by reading the counters spins SP_RING_SPIN times, then sleeps on a
 * futex.  Sleeping without lost wake-ups: a sleeper reads the side's wake
 * counter, announces itself (sleepers++), looks at the counters once more
 * and only then waits on the counter's value.  The other side publishes its
 * change, fences, and if it sees a sleeper bumps the counter and wakes one.
 * Either the sleeper's second look sees the change, or the waker sees the
 * sleeper: the fences on both sides make "neither" impossible.
 */
#include "sp_ring.h"

#include "sp_error.h"
#include "sp_time.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define S_LINE     64
#define S_SLOT_HDR 16
#define S_CAP_MAX  (1u << 24)
#define S_SLOT_MAX (1u << 20)
#define S_ROUND(n) (((n) + S_LINE - 1) / S_LINE * S_LINE)

struct sp_ring {
    _Alignas(S_LINE) uint64_t magic;
    uint32_t capacity;
    uint32_t slot_size;
    uint64_t bytes;
    uint32_t stride; /* bytes from one slot to the next */
    uint32_t reserved;
    _Atomic uint64_t recovered;                  /* times a dead owner's lock was taken over */
    _Alignas(S_LINE) pthread_mutex_t put_lock;   /* robust, process-shared: putters */
    _Alignas(S_LINE) pthread_mutex_t get_lock;   /* the same, getters */
    _Alignas(S_LINE) _Atomic uint64_t tail;      /* next position to put (moved under put_lock) */
    _Alignas(S_LINE) _Atomic uint64_t head;      /* next position to get (moved under get_lock) */
    _Alignas(S_LINE) _Atomic uint32_t data_wake; /* consumers sleep on this */
    _Atomic uint32_t data_sleepers;
    _Alignas(S_LINE) _Atomic uint32_t space_wake; /* producers sleep on this */
    _Atomic uint32_t space_sleepers;
};

typedef struct {
    uint32_t len;
    uint32_t reserved[3];
    uint8_t data[];
} s_slot_t;

_Static_assert(sizeof(s_slot_t) == S_SLOT_HDR, "slot header");
_Static_assert(sizeof(struct sp_ring) % S_LINE == 0, "slots start on a line");

static bool s_args_ok(uint32_t capacity, uint32_t slot_size)
{
    return capacity >= 2 && capacity <= S_CAP_MAX && (capacity & (capacity - 1)) == 0 &&
           slot_size >= 1 && slot_size <= S_SLOT_MAX;
}

size_t sp_ring_bytes(uint32_t capacity, uint32_t slot_size)
{
    if (!s_args_ok(capacity, slot_size)) {
        return 0;
    }
    return sizeof(struct sp_ring) + (size_t)capacity * S_ROUND(S_SLOT_HDR + (size_t)slot_size);
}

static s_slot_t *s_slot(sp_ring_t *r, uint64_t pos)
{
    return (s_slot_t *)((uint8_t *)(r + 1) + (size_t)(pos & (r->capacity - 1)) * r->stride);
}

sp_ring_t *sp_ring_init(void *mem, uint32_t capacity, uint32_t slot_size)
{
    if (mem == NULL || !s_args_ok(capacity, slot_size) || ((uintptr_t)mem % S_LINE) != 0) {
        errno = EINVAL;
        return NULL;
    }
    sp_ring_t *r = mem;
    memset(r, 0, sizeof *r);
    r->capacity = capacity;
    r->slot_size = slot_size;
    r->stride = (uint32_t)S_ROUND(S_SLOT_HDR + (size_t)slot_size);
    r->bytes = sp_ring_bytes(capacity, slot_size);
    pthread_mutexattr_t ma;
    int e = pthread_mutexattr_init(&ma);
    if (e == 0) {
        e = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
        if (e == 0) {
            e = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
        }
        if (e == 0) {
            e = pthread_mutex_init(&r->put_lock, &ma);
        }
        if (e == 0) {
            e = pthread_mutex_init(&r->get_lock, &ma);
        }
        pthread_mutexattr_destroy(&ma);
    }
    if (e != 0) {
        errno = e;
        return NULL;
    }
    for (uint32_t i = 0; i < capacity; i++) {
        s_slot(r, i)->len = 0;
    }
    atomic_thread_fence(memory_order_release);
    r->magic = SP_RING_MAGIC; /* last: an attacher sees a whole ring or none */
    return r;
}

sp_ring_t *sp_ring_attach(void *mem, size_t len)
{
    sp_ring_t *r = mem;
    if (mem == NULL || len < sizeof *r || ((uintptr_t)mem % S_LINE) != 0 ||
        r->magic != SP_RING_MAGIC || !s_args_ok(r->capacity, r->slot_size) ||
        r->bytes != sp_ring_bytes(r->capacity, r->slot_size) || r->bytes > len ||
        r->stride != S_ROUND(S_SLOT_HDR + (size_t)r->slot_size)) {
        errno = EPROTO;
        return NULL;
    }
    return r;
}

uint32_t sp_ring_slot_size(const sp_ring_t *self)
{
    return self->slot_size;
}

uint32_t sp_ring_capacity(const sp_ring_t *self)
{
    return self->capacity;
}

/* Head and tail are two words: read one, be preempted, read the other, and
 * the difference counts whatever moved meanwhile (the flood test once read
 * 1119 messages in a ring of 128).  Both counters only grow, so a tail read
 * twice with the same value did not move in between, and the head read
 * between the two belongs to that same moment: then 0 <= tail - head <=
 * capacity, as the ring guarantees.  A reader that keeps losing that race
 * on a very busy ring gives up after S_DEPTH_TRIES and bounds what it read. */
#define S_DEPTH_TRIES 16

uint32_t sp_ring_depth(const sp_ring_t *self)
{
    sp_ring_t *r = (sp_ring_t *)self;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t head = 0;
    for (unsigned i = 0; i < S_DEPTH_TRIES; i++) {
        head = atomic_load_explicit(&r->head, memory_order_acquire);
        uint64_t again = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (again == tail) {
            break;
        }
        tail = again;
    }
    uint64_t depth = tail > head ? tail - head : 0;
    return depth < r->capacity ? (uint32_t)depth : r->capacity;
}

static inline void s_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* futex words are shared between processes: no FUTEX_PRIVATE_FLAG */
static int s_futex_wait(_Atomic uint32_t *word, uint32_t expected, const struct timespec *rel)
{
    return (int)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, rel, NULL, 0);
}

static void s_futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* The change is published; wake one sleeper of the other side if any. */
static void s_wake(_Atomic uint32_t *wake, _Atomic uint32_t *sleepers)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(sleepers, memory_order_relaxed) > 0) {
        atomic_fetch_add_explicit(wake, 1, memory_order_relaxed);
        s_futex_wake(wake, 1);
    }
}

/* Messages in the ring at one reading of the counters (each only grows;
 * a stale pair can only make it look fuller or emptier for a moment,
 * which the caller's next look corrects). */
static uint64_t s_used(sp_ring_t *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    return tail > head ? tail - head : 0;
}

/* True while the ring is full (for a putter) or empty (for a getter). */
static bool s_blocked(sp_ring_t *r, bool putter)
{
    uint64_t used = s_used(r);
    return putter ? used >= r->capacity : used == 0;
}

/* Sleeps until woken or the deadline (0 = none).  Returns 0 or
 * SP_E_TIMEOUT / -EINTR. */
static int s_sleep(sp_ring_t *r, bool putter, _Atomic uint32_t *wake, _Atomic uint32_t *sleepers,
                   uint64_t deadline)
{
    struct timespec rel, *relp = NULL;
    if (deadline != 0) {
        uint64_t now = sp_now_ns();
        if (now >= deadline) {
            return SP_E_TIMEOUT;
        }
        uint64_t left = deadline - now;
        rel.tv_sec = (time_t)(left / SP_NS_PER_SEC);
        rel.tv_nsec = (long)(left % SP_NS_PER_SEC);
        relp = &rel;
    }
    uint32_t v = atomic_load_explicit(wake, memory_order_relaxed);
    atomic_fetch_add_explicit(sleepers, 1, memory_order_seq_cst);
    int rc = 0;
    if (s_blocked(r, putter) && s_futex_wait(wake, v, relp) < 0 && errno == EINTR) {
        rc = -EINTR;
    }
    atomic_fetch_sub_explicit(sleepers, 1, memory_order_relaxed);
    return rc;
}

/* The deadline of a wait of `wait_us` microseconds: 0 = none (forever, or
 * no wait at all when wait_us is 0). */
static uint64_t s_deadline(long wait_us)
{
    return wait_us > 0 ? sp_now_ns() + (uint64_t)wait_us * SP_NS_PER_US : 0;
}

static long s_ms_to_us(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : (long)timeout_ms * 1000;
}

/* Takes one side's lock; a dead owner's is taken over: whatever it did
 * inside left the counters as they were before its call, so the ring is
 * consistent as it stands. */
static void s_lock(sp_ring_t *r, pthread_mutex_t *lock)
{
    int e = pthread_mutex_lock(lock);
    if (e == EOWNERDEAD) {
        pthread_mutex_consistent(lock);
        atomic_fetch_add_explicit(&r->recovered, 1, memory_order_relaxed);
    }
}

/* Waits (spinning, then sleeping) while the ring is blocked for this side,
 * reading the counters only: the side's lock is taken once there is a
 * message (or a slot) to take, never to look, so a caller stopped while it
 * waits (SIGSTOP, a debugger) holds no lock the others need.  Returns 0
 * when it may be worth a try, -EAGAIN, SP_E_TIMEOUT or -EINTR. */
static int s_wait(sp_ring_t *r, bool putter, long wait_us, uint64_t deadline, unsigned *spins)
{
    while (s_blocked(r, putter)) {
        if (wait_us == 0) {
            return -EAGAIN;
        }
        if ((*spins)++ < SP_RING_SPIN) {
            s_relax();
            continue;
        }
        int rc = putter ? s_sleep(r, true, &r->space_wake, &r->space_sleepers, deadline)
                        : s_sleep(r, false, &r->data_wake, &r->data_sleepers, deadline);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int sp_ring_put(sp_ring_t *self, const void *msg, size_t len, int timeout_ms)
{
    if (len > self->slot_size) {
        return -EMSGSIZE;
    }
    long wait_us = s_ms_to_us(timeout_ms);
    uint64_t deadline = s_deadline(wait_us);
    unsigned spins = 0;
    for (;;) {
        int rc = s_wait(self, true, wait_us, deadline, &spins);
        if (rc < 0) {
            return rc;
        }
        s_lock(self, &self->put_lock);
        uint64_t tail = atomic_load_explicit(&self->tail, memory_order_relaxed);
        /* acquire: the getter that moved the head past our slot is done with it */
        uint64_t head = atomic_load_explicit(&self->head, memory_order_acquire);
        if (tail - head < self->capacity) {
            s_slot_t *s = s_slot(self, tail);
            memcpy(s->data, msg, len);
            s->len = (uint32_t)len;
            atomic_store_explicit(&self->tail, tail + 1, memory_order_release); /* last */
            pthread_mutex_unlock(&self->put_lock);
            s_wake(&self->data_wake, &self->data_sleepers);
            return 0;
        }
        pthread_mutex_unlock(&self->put_lock); /* another putter filled it first */
    }
}

int sp_ring_get(sp_ring_t *self, void *buf, size_t cap, int timeout_ms)
{
    return sp_ring_get_us(self, buf, cap, s_ms_to_us(timeout_ms));
}

int sp_ring_get_us(sp_ring_t *self, void *buf, size_t cap, long wait_us)
{
    if (cap < self->slot_size) {
        return -EMSGSIZE;
    }
    uint64_t deadline = s_deadline(wait_us);
    unsigned spins = 0;
    for (;;) {
        int rc = s_wait(self, false, wait_us, deadline, &spins);
        if (rc < 0) {
            return rc;
        }
        s_lock(self, &self->get_lock);
        uint64_t head = atomic_load_explicit(&self->head, memory_order_relaxed);
        /* acquire: the message the putter wrote before moving the tail */
        uint64_t tail = atomic_load_explicit(&self->tail, memory_order_acquire);
        if (head != tail) {
            const s_slot_t *s = s_slot(self, head);
            uint32_t len = s->len <= self->slot_size ? s->len : self->slot_size;
            memcpy(buf, s->data, len);
            atomic_store_explicit(&self->head, head + 1, memory_order_release); /* last */
            pthread_mutex_unlock(&self->get_lock);
            s_wake(&self->space_wake, &self->space_sleepers);
            return (int)len;
        }
        pthread_mutex_unlock(&self->get_lock); /* another getter emptied it first */
    }
}

uint64_t sp_ring_recovered(const sp_ring_t *self)
{
    return atomic_load_explicit(&((sp_ring_t *)self)->recovered, memory_order_relaxed);
}

void sp_ring_wake_all(sp_ring_t *self)
{
    atomic_fetch_add(&self->data_wake, 1);
    atomic_fetch_add(&self->space_wake, 1);
    s_futex_wake(&self->data_wake, INT_MAX);
    s_futex_wake(&self->space_wake, INT_MAX);
}
