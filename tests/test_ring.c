/*
 * test_ring — the shared-memory ring: layout checks, FIFO, full and empty,
 * sleeping and waking, and many producer and consumer processes passing
 * messages through one ring with every message delivered exactly once.
 */
#include "sp_shmlink.h"
#include "sp_mq.h"
#include "sp_error.h"
#include "sp_ring.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

Test(ring, a_sleeping_consumer_is_woken_by_a_put_from_another_process, .timeout = 30)
{
    size_t len;
    sp_ring_t *r = s_ring(8, 8, &len);
    pid_t child = fork();
    if (child == 0) {
        uint8_t buf[8];
        int n = sp_ring_get(r, buf, sizeof buf, 10000); /* sleeps in the kernel */
        _exit(n == 2 && buf[0] == 'h' ? 0 : 1);
    }
    usleep(200 * 1000);
    cr_assert_eq(sp_ring_put(r, "hi", 2, 0), 0);
    int status;
    waitpid(child, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* and a producer sleeping on a full ring is woken by a get */
    cr_assert_eq(sp_ring_put(r, "x", 1, 0), 0);
    for (int i = 1; i < 8; i++) {
        cr_assert_eq(sp_ring_put(r, "x", 1, 0), 0);
    }
    child = fork();
    if (child == 0) {
        _exit(sp_ring_put(r, "z", 1, 10000) == 0 ? 0 : 1);
    }
    usleep(200 * 1000);
    uint8_t buf[8];
    cr_assert_eq(sp_ring_get(r, buf, sizeof buf, 0), 1);
    waitpid(child, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
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
