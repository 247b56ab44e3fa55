/*
 * test_ring — the shared-memory ring: layout checks, FIFO, full and empty,
 * sleeping and waking, and many producer and consumer processes passing
 * messages through one ring with every message delivered exactly once.
 */
#include "sp_shmlink.h"
#include "sp_mq.h"
#include "sp_error.h"
#include "sp_ring.h"
#include "sp_time.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void *s_shared(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return p;
}

static sp_ring_t *s_ring(uint32_t capacity, uint32_t slot, size_t *len)
{
    *len = sp_ring_bytes(capacity, slot);
    cr_assert_gt(*len, 0);
    sp_ring_t *r = sp_ring_init(s_shared(*len), capacity, slot);
    cr_assert_not_null(r);
    return r;
}

Test(ring, sizes_and_bad_arguments)
{
    cr_expect_eq(sp_ring_bytes(0, 64), 0);
    cr_expect_eq(sp_ring_bytes(3, 64), 0, "capacity must be a power of two");
    cr_expect_eq(sp_ring_bytes(8, 0), 0);
    cr_expect_eq(sp_ring_bytes(8, (1u << 20) + 1), 0);
    cr_expect_eq(sp_ring_bytes((1u << 24) * 2, 8), 0);
    size_t a = sp_ring_bytes(8, 48), b = sp_ring_bytes(8, 49);
    cr_expect_eq(a % 64, 0);
    cr_expect_gt(b, a, "a slot of 49 + 16 bytes takes two lines");
    errno = 0;
    static _Alignas(64) uint8_t mem[4096];
    cr_expect_null(sp_ring_init(mem, 6, 8));
    cr_expect_eq(errno, EINVAL);
    cr_expect_null(sp_ring_init(mem + 8, 8, 8), "misaligned");
}

Test(ring, attach_checks_the_layout)
{
    size_t len;
    sp_ring_t *r = s_ring(16, 100, &len);
    cr_expect_eq(sp_ring_attach(r, len), r);
    cr_expect_null(sp_ring_attach(r, len - 1), "shorter than the ring");
    errno = 0;
    uint64_t magic;
    memcpy(&magic, r, sizeof magic);
    ((uint8_t *)r)[0] ^= 1;
    cr_expect_null(sp_ring_attach(r, len));
    cr_expect_eq(errno, EPROTO);
    static _Alignas(64) uint8_t zeros[4096];
    cr_expect_null(sp_ring_attach(zeros, sizeof zeros));
    munmap(r, len);
}

Test(ring, fifo_full_empty_and_sizes)
{
    size_t len;
    sp_ring_t *r = s_ring(4, 16, &len);
    uint8_t buf[16];
    cr_expect_eq(sp_ring_get(r, buf, sizeof buf, 0), -EAGAIN);
    for (uint8_t i = 0; i < 4; i++) {
        uint8_t msg[3] = {i, i, i};
        cr_assert_eq(sp_ring_put(r, msg, 1 + i % 3, 0), 0);
    }
    cr_expect_eq(sp_ring_depth(r), 4);
    cr_expect_eq(sp_ring_put(r, "x", 1, 0), -EAGAIN, "full");
    cr_expect_eq(sp_ring_put(r, buf, 17, 0), -EMSGSIZE);
    cr_expect_eq(sp_ring_get(r, buf, 15, 0), -EMSGSIZE, "buffer below the slot size");
    for (uint8_t i = 0; i < 4; i++) {
        cr_assert_eq(sp_ring_get(r, buf, sizeof buf, 0), 1 + i % 3);
        cr_expect_eq(buf[0], i, "first in, first out");
    }
    cr_expect_eq(sp_ring_depth(r), 0);
    /* many laps around the ring */
    for (uint32_t i = 0; i < 1000; i++) {
        cr_assert_eq(sp_ring_put(r, &i, sizeof i, 0), 0);
        uint32_t back = 0;
        cr_assert_eq(sp_ring_get(r, buf, sizeof buf, 0), (int)sizeof i);
        memcpy(&back, buf, sizeof back);
        cr_assert_eq(back, i);
    }
    munmap(r, len);
}

Test(ring, waits_time_out)
{
    size_t len;
    sp_ring_t *r = s_ring(2, 8, &len);
    uint8_t buf[8];
    cr_expect_eq(sp_ring_get(r, buf, sizeof buf, 50), SP_E_TIMEOUT);
    cr_assert_eq(sp_ring_put(r, "a", 1, 0), 0);
    cr_assert_eq(sp_ring_put(r, "b", 1, 0), 0);
    cr_expect_eq(sp_ring_put(r, "c", 1, 50), SP_E_TIMEOUT);
    munmap(r, len);
}

/* A getter stopped (SIGSTOP, a debugger) while it waits on an empty ring
 * holds none of the ring's locks: another getter takes what is put
 * meanwhile.  The stopped one polls with the shortest wait, so it spends
 * nearly all its time spinning; when each spin took the getters' lock to
 * look, some of 20,000 stops caught it holding the lock, and the other
 * getter hung on it (the test's timeout: 2 runs of 2). */
#define T_STOP_ROUNDS 20000
#define T_STOP_GET_MS 2000
Test(ring, a_getter_stopped_while_it_waits_holds_no_lock, .timeout = 30)
{
    size_t len;
    sp_ring_t *r = s_ring(4, 8, &len);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        uint8_t b[8];
        for (;;) {
            (void)sp_ring_get_us(r, b, sizeof b, 1);
        }
    }
    int failed = -1;
    for (int i = 0; i < T_STOP_ROUNDS && failed < 0; i++) {
        int status;
        kill(child, SIGSTOP);
        cr_assert_eq(waitpid(child, &status, WUNTRACED), child);
        uint8_t b[8];
        cr_assert_eq(sp_ring_put(r, "m", 1, T_STOP_GET_MS), 0);
        if (sp_ring_get(r, b, sizeof b, T_STOP_GET_MS) != 1) {
            failed = i;
        }
        kill(child, SIGCONT);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    cr_expect_lt(failed, 0, "round %d: no get within %d ms while the other getter was stopped",
                 failed, T_STOP_GET_MS);
    munmap(r, len);
}

/* A sleeper's own timeout: without a wake-up it sleeps this long.  A woken
 * one must be back well within it: T_WAKE_MS is generous for a busy
 * two-core machine (a wake-up takes microseconds to a few ms there) and
 * still five times below the fallback, so the two cannot be mistaken. */
#define T_FALLBACK_MS 10000
#define T_WAKE_MS     2000
#define T_ASLEEP_MS   5000 /* the longest wait for a child to fall asleep */

/* Waits until process `pid` sleeps (state S in /proc/PID/stat): the ring's
 * only blocking call is its futex wait, so it is sleeping on the ring. */
static void s_wait_asleep(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    for (int waited = 0; waited < T_ASLEEP_MS; waited++) {
        char buf[512] = "";
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *end = strrchr(buf, ')'); /* the command name may hold anything */
        if (end != NULL && end[1] == ' ' && end[2] == 'S') {
            return;
        }
        usleep(1000);
    }
    cr_assert_fail("process %ld did not fall asleep on the ring in %d ms", (long)pid, T_ASLEEP_MS);
}

/* When a child's wait on the ring returned (CLOCK_MONOTONIC), for the parent. */
typedef struct {
    _Atomic uint64_t woke_ns;
} s_woke_t;

/* Waits for the child and checks that it succeeded and was woken within
 * T_WAKE_MS of `sent_ns` (its exit is not timed: under valgrind an exit
 * alone can take longer than a wake-up). */
static void s_expect_woken(pid_t child, const s_woke_t *w, uint64_t sent_ns, const char *who)
{
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %d", who, status);
    uint64_t woke = atomic_load(&w->woke_ns);
    cr_assert_gt(woke, 0, "%s never returned", who);
    uint64_t ms = woke > sent_ns ? (woke - sent_ns) / SP_NS_PER_MS : 0;
    cr_expect_lt(ms, T_WAKE_MS,
                 "%s returned %llu ms after the other side moved (the bound is %d ms; without a "
                 "futex wake it sleeps out its %d ms timeout)",
                 who, (unsigned long long)ms, T_WAKE_MS, T_FALLBACK_MS);
}

Test(ring, a_sleeping_consumer_is_woken_by_a_put_from_another_process, .timeout = 60)
{
    size_t len;
    sp_ring_t *r = s_ring(8, 8, &len);
    s_woke_t *w = s_shared(sizeof *w);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        uint8_t buf[8];
        int n = sp_ring_get(r, buf, sizeof buf, T_FALLBACK_MS); /* sleeps in the kernel */
        atomic_store(&w->woke_ns, sp_now_ns());
        _exit(n == 2 && buf[0] == 'h' ? 0 : 1);
    }
    s_wait_asleep(child);
    uint64_t sent = sp_now_ns();
    cr_assert_eq(sp_ring_put(r, "hi", 2, 0), 0);
    s_expect_woken(child, w, sent, "the sleeping consumer");

    /* and a producer sleeping on a full ring is woken by a get */
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(sp_ring_put(r, "x", 1, 0), 0);
    }
    atomic_store(&w->woke_ns, 0);
    child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        int rc = sp_ring_put(r, "z", 1, T_FALLBACK_MS);
        atomic_store(&w->woke_ns, sp_now_ns());
        _exit(rc == 0 ? 0 : 1);
    }
    s_wait_asleep(child);
    sent = sp_now_ns();
    uint8_t buf[8];
    cr_assert_eq(sp_ring_get(r, buf, sizeof buf, 0), 1);
    s_expect_woken(child, w, sent, "the sleeping producer");
    munmap(w, sizeof *w);
    munmap(r, len);
}

#define T_DEPTH_MS 500 /* how long the depth is read while others move */

/* A reader preempted between reading the head and the tail once saw 1119
 * messages in a ring of 128: with a producer and a consumer moving as fast
 * as they can (one more process than this machine's two cores), every
 * reading stays within 0 .. capacity. */
Test(ring, depth_stays_within_the_capacity_while_others_move, .timeout = 30)
{
    size_t len;
    sp_ring_t *r = s_ring(4, 8, &len);
    _Atomic int *stop = s_shared(sizeof *stop);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        cr_assert_geq(kids[k], 0);
        if (kids[k] == 0) {
            uint8_t buf[8] = "m";
            while (!atomic_load(stop)) {
                if (k == 0) {
                    sp_ring_put(r, buf, 1, 0);
                } else {
                    sp_ring_get(r, buf, sizeof buf, 0);
                }
            }
            _exit(0);
        }
    }
    uint32_t deepest = 0;
    uint64_t readings = 0, end = sp_now_ns() + T_DEPTH_MS * SP_NS_PER_MS;
    while (sp_now_ns() < end) {
        for (int i = 0; i < 1000; i++, readings++) {
            uint32_t d = sp_ring_depth(r);
            deepest = d > deepest ? d : deepest;
        }
    }
    atomic_store(stop, 1);
    for (int k = 0; k < 2; k++) {
        int status;
        cr_assert_eq(waitpid(kids[k], &status, 0), kids[k]);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    cr_expect_leq(deepest, sp_ring_capacity(r), "depth %u in a ring of %u (%llu readings)", deepest,
                  sp_ring_capacity(r), (unsigned long long)readings);
    munmap(stop, sizeof *stop);
    munmap(r, len);
}

#define PRODUCERS    3
#define CONSUMERS    2
#define PER_PRODUCER 100000u

typedef struct {
    uint32_t producer;
    uint32_t seq;
} s_msg_t;

/* Three producer and two consumer processes on a small ring (so both sides
 * sleep often): every message arrives exactly once, and each consumer sees
 * each producer's messages in order. */
Test(ring, many_processes_every_message_exactly_once, .timeout = 60)
{
    size_t len;
    sp_ring_t *r = s_ring(64, sizeof(s_msg_t), &len);
    size_t seen_len = (size_t)PRODUCERS * PER_PRODUCER;
    uint8_t *seen = s_shared(seen_len);
    pid_t kids[PRODUCERS + CONSUMERS];
    for (int c = 0; c < CONSUMERS; c++) {
        kids[c] = fork();
        if (kids[c] == 0) {
            uint32_t last[PRODUCERS] = {0};
            for (;;) {
                s_msg_t m;
                int n = sp_ring_get(r, &m, sizeof m, 5000);
                if (n != (int)sizeof m) {
                    _exit(2);
                }
                if (m.producer == UINT32_MAX) {
                    _exit(0); /* end marker */
                }
                if (m.producer >= PRODUCERS || m.seq == 0 || m.seq > PER_PRODUCER ||
                    m.seq <= last[m.producer]) {
                    _exit(3);
                }
                last[m.producer] = m.seq;
                __atomic_add_fetch(&seen[(size_t)m.producer * PER_PRODUCER + m.seq - 1], 1,
                                   __ATOMIC_RELAXED);
            }
        }
    }
    for (int p = 0; p < PRODUCERS; p++) {
        kids[CONSUMERS + p] = fork();
        if (kids[CONSUMERS + p] == 0) {
            for (uint32_t s = 1; s <= PER_PRODUCER; s++) {
                s_msg_t m = {.producer = (uint32_t)p, .seq = s};
                if (sp_ring_put(r, &m, sizeof m, 5000) != 0) {
                    _exit(4);
                }
            }
            _exit(0);
        }
    }
    for (int p = 0; p < PRODUCERS; p++) {
        int status;
        waitpid(kids[CONSUMERS + p], &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer %d: %d", p, status);
    }
    for (int c = 0; c < CONSUMERS; c++) {
        s_msg_t end = {.producer = UINT32_MAX};
        cr_assert_eq(sp_ring_put(r, &end, sizeof end, 5000), 0);
    }
    for (int c = 0; c < CONSUMERS; c++) {
        int status;
        waitpid(kids[c], &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "consumer %d: %d", c, status);
    }
    size_t wrong = 0;
    for (size_t i = 0; i < seen_len; i++) {
        wrong += seen[i] != 1;
    }
    cr_expect_eq(wrong, 0, "%zu messages not seen exactly once", wrong);
    cr_expect_eq(sp_ring_depth(r), 0);
    munmap(seen, seen_len);
    munmap(r, len);
}

/* --- a process dying inside a put or a get -------------------------------- */

#define T_CRASH_SLOT 65536u
#define T_CHURN_S    30 /* a churning process ends by itself after this */

/* A buffer of 2 * T_CRASH_SLOT bytes whose second half cannot be touched:
 * a memcpy of a whole slot from it (or into it) faults halfway, inside the
 * ring's lock, as surely as a kill -9 there. */
static uint8_t *s_trap(void)
{
    uint8_t *p =
        mmap(NULL, 2 * T_CRASH_SLOT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    cr_assert_eq(mprotect(p + T_CRASH_SLOT, T_CRASH_SLOT, PROT_NONE), 0);
    return p;
}

/* Runs fn in a child process and returns how it ended (wait status). */
static int s_in_child(void (*fn)(sp_ring_t *), sp_ring_t *r)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        fn(r);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* Whether a child died in its call: killed by the fault (SIGSEGV), or, under
 * a sanitizer that catches the fault, ended by it with a failure, never
 * returning to the _exit(0) after the call. */
static bool s_died(int status)
{
    return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

static void s_put_faulting(sp_ring_t *r)
{
    uint8_t *trap = s_trap();
    memset(trap, 0xAB, T_CRASH_SLOT);
    /* a whole slot from T_CRASH_SLOT / 2 before the hole: it dies in the copy */
    sp_ring_put(r, trap + T_CRASH_SLOT / 2, T_CRASH_SLOT, -1);
}

static void s_get_faulting(sp_ring_t *r)
{
    uint8_t *trap = s_trap();
    sp_ring_get(r, trap + T_CRASH_SLOT / 2, T_CRASH_SLOT, -1);
}

/* A putter killed halfway through its copy: nobody ever sees its half
 * message, the next caller takes its lock over, and the ring goes on at
 * full capacity (the lock-free ring stopped every getter at that slot). */
Test(ring, a_putter_dying_inside_a_put_neither_delivers_nor_blocks, .timeout = 30)
{
    size_t len;
    sp_ring_t *r = s_ring(4, T_CRASH_SLOT, &len);
    uint8_t *msg = malloc(T_CRASH_SLOT), *got = malloc(T_CRASH_SLOT);
    cr_assert(msg != NULL && got != NULL);
    memset(msg, 0x11, T_CRASH_SLOT);
    cr_assert_eq(sp_ring_put(r, msg, 100, 0), 0);

    int status = s_in_child(s_put_faulting, r);
    cr_assert(s_died(status), "the putter did not die inside (status %d)", status);
    cr_expect_eq(sp_ring_depth(r), 1, "the dead put is not in the ring");

    cr_expect_eq(sp_ring_get(r, got, T_CRASH_SLOT, 1000), 100, "the message before it");
    cr_expect_eq(got[99], 0x11);
    cr_expect_eq(sp_ring_get(r, got, T_CRASH_SLOT, 0), -EAGAIN, "and nothing of the dead put");
    cr_expect_eq(sp_ring_recovered(r), 0, "getters never wait for the putters' lock");
    for (int i = 0; i < 4; i++) {
        msg[0] = (uint8_t)i;
        cr_expect_eq(sp_ring_put(r, msg, 10, 0), 0, "put %d after the death", i);
    }
    cr_expect_eq(sp_ring_recovered(r), 1, "the next putter took its lock over, once");
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(sp_ring_get(r, got, T_CRASH_SLOT, 1000), 10);
        cr_expect_eq(got[0], i, "in order");
    }
    free(msg);
    free(got);
    munmap(r, len);
}

/* A getter killed halfway through its copy: the message stays in the ring
 * for the next getter (whole), and every slot is usable again. */
Test(ring, a_getter_dying_inside_a_get_leaves_the_message_and_the_slot, .timeout = 30)
{
    size_t len;
    sp_ring_t *r = s_ring(2, T_CRASH_SLOT, &len);
    uint8_t *msg = malloc(T_CRASH_SLOT), *got = malloc(T_CRASH_SLOT);
    cr_assert(msg != NULL && got != NULL);
    memset(msg, 0x22, T_CRASH_SLOT);
    cr_assert_eq(sp_ring_put(r, msg, T_CRASH_SLOT, 0), 0);

    int status = s_in_child(s_get_faulting, r);
    cr_assert(s_died(status), "the getter did not die inside (status %d)", status);
    cr_expect_eq(sp_ring_put(r, msg, 8, 0), 0, "a putter does not wait for the getters' lock");
    cr_expect_eq(sp_ring_recovered(r), 0);

    cr_expect_eq(sp_ring_get(r, got, T_CRASH_SLOT, 1000), (int)T_CRASH_SLOT,
                 "the message is still there");
    cr_expect_eq(got[0], 0x22);
    cr_expect_eq(got[T_CRASH_SLOT - 1], 0x22);
    cr_expect_eq(sp_ring_recovered(r), 1);
    cr_expect_eq(sp_ring_get(r, got, T_CRASH_SLOT, 1000), 8, "and the one put after the death");
    for (int lap = 0; lap < 3; lap++) {
        cr_expect_eq(sp_ring_put(r, msg, 8, 0), 0, "lap %d", lap);
        cr_expect_eq(sp_ring_put(r, msg, 8, 0), 0, "lap %d: the whole capacity", lap);
        cr_expect_eq(sp_ring_get(r, got, T_CRASH_SLOT, 1000), 8);
        cr_expect_eq(sp_ring_get(r, got, T_CRASH_SLOT, 1000), 8);
    }
    free(msg);
    free(got);
    munmap(r, len);
}

/* Processes putting and getting whole slots, each killed at a moment the
 * clock picks: whatever moment it was, every message a getter takes is
 * whole and the ring never stops (a kill inside a copy is recovered). */
static void s_churn(sp_ring_t *r)
{
    /* never outlive the test: it kills us, and if it dies first, so do we;
     * and at most T_CHURN_S in any case */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    uint64_t end = sp_now_ns() + (uint64_t)T_CHURN_S * SP_NS_PER_SEC;
    uint8_t *buf = malloc(T_CRASH_SLOT);
    if (buf == NULL) {
        _exit(1);
    }
    for (uint32_t k = 1; sp_now_ns() < end; k++) {
        memset(buf, (int)(k & 0xff), T_CRASH_SLOT);
        sp_ring_put(r, buf, T_CRASH_SLOT, 0);
        int n = sp_ring_get(r, buf, T_CRASH_SLOT, 0);
        if (n > 0) {
            for (int i = 1; i < n; i++) {
                if (buf[i] != buf[0]) {
                    _exit(3); /* a torn message */
                }
            }
        }
    }
    _exit(4); /* the test never killed us */
}

Test(ring, processes_killed_at_any_moment_never_tear_or_stop_it, .timeout = 120)
{
    size_t len;
    sp_ring_t *r = s_ring(4, T_CRASH_SLOT, &len);
    /* zeroed: a round whose churners left nothing puts `got` back through
     * the ring, and valgrind would then mark those ring bytes undefined in
     * this process for good (it never sees the churners' writes) */
    uint8_t *got = calloc(1, T_CRASH_SLOT);
    cr_assert_not_null(got);
    for (int round = 0; round < 30; round++) {
        pid_t kids[2];
        for (int k = 0; k < 2; k++) {
            kids[k] = fork();
            cr_assert_geq(kids[k], 0);
            if (kids[k] == 0) {
                s_churn(r);
            }
        }
        usleep((useconds_t)(1000 + (round * 7919) % 5000));
        for (int k = 0; k < 2; k++) {
            kill(kids[k], SIGKILL);
            int status = 0;
            waitpid(kids[k], &status, 0);
            cr_assert(WIFSIGNALED(status), "round %d: a churner ended by itself (status %d)", round,
                      status);
        }
        /* what is left is whole, and the ring still moves */
        int n;
        while ((n = sp_ring_get(r, got, T_CRASH_SLOT, 0)) > 0) {
            for (int i = 1; i < n; i++) {
                cr_assert_eq(got[i], got[0], "round %d: a torn message", round);
            }
        }
        cr_assert_eq(n, -EAGAIN, "round %d: %d", round, n);
        cr_assert_eq(sp_ring_put(r, got, 16, 1000), 0, "round %d: stuck after the kills", round);
        cr_assert_eq(sp_ring_get(r, got, T_CRASH_SLOT, 1000), 16, "round %d", round);
    }
    cr_log_info("locks taken over from the dead: %llu", (unsigned long long)sp_ring_recovered(r));
    free(got);
    munmap(r, len);
}
