/*
 * sp_ring — a bounded multi-producer, multi-consumer ring of messages in
 * shared memory, for the `shm` transport and the benchmark's "no queue" side,
 * that survives the death of any process using it.
 *
 * The ring is one caller-provided block of memory (a POSIX shm segment, or
 * plain memory for threads): a header with two robust process-shared
 * mutexes, then `capacity` slots of `slot_size` bytes each.  A put copies its
 * message into the slot at the tail and then moves the tail, under the
 * putters' mutex; a get copies the slot at the head out and then moves the
 * head, under the getters' mutex; so a process
 * killed inside a put or a get leaves the ring as it was before that call;
 * the next caller takes the dead owner's lock over (EOWNERDEAD, counted by
 * sp_ring_recovered) and goes on.  A message is taken whole or not at all:
 * never half written, never lost once put but by a getter that dies after
 * taking it (the caller above decides what that loses: the `shm` transport
 * resends unanswered orders, answered from the exactly-once registry).
 * Nothing in the block is a pointer, so every process may map it anywhere.
 *
 * Waiting: with two cores, spinning starves the very process we wait for.
 * A caller that finds the ring empty (or full) spins SP_RING_SPIN times, then
 * registers as a sleeper and sleeps on a futex until the other side wakes it
 * (or the timeout passes).  The other side pays a futex_wake system call only
 * while somebody sleeps.  A mutex is held only to copy one message, and
 * putters never wait for getters' mutex nor getters for putters'.
 *
 * Ownership: the caller provides and releases the memory; an sp_ring_t is a
 * view of it and has nothing to free.  Errors: init and attach return NULL
 * with errno; put and get return a negative code (above).  Blocking: put
 * and get spin, then sleep up to their timeout (forever when it is
 * negative) and return -EINTR when a signal interrupts the sleep.  Threads
 * and processes: any number of putters and getters, in any threads and
 * processes that map the block, at once (the mutex and the futexes are
 * process-shared).
 */
#ifndef SP_RING_H
#define SP_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_RING_MAGIC 0x33474e4952505300ull /* "\0SPRING3": a robust lock per side */
#define SP_RING_SPIN  200                   /* polls before sleeping */

typedef struct sp_ring sp_ring_t;

/* Bytes a ring of `capacity` slots (a power of two, 2..2^24) of
 * `slot_size` payload bytes (1..2^20) needs; 0 for invalid arguments. */
size_t sp_ring_bytes(uint32_t capacity, uint32_t slot_size);

/* Lays a new ring out in `mem` (sp_ring_bytes(...) bytes, 64-byte aligned).
 * Returns the ring, or NULL with errno EINVAL for bad arguments (or the
 * error of making its mutex). */
sp_ring_t *sp_ring_init(void *mem, uint32_t capacity, uint32_t slot_size);

/* Checks a ring another process laid out in `mem` of `len` bytes.  Returns
 * the ring, or NULL with errno EPROTO (not a ring / wrong size). */
sp_ring_t *sp_ring_attach(void *mem, size_t len);

/* The ring's geometry, as laid out: bytes per slot, and slots. */
uint32_t sp_ring_slot_size(const sp_ring_t *self);
uint32_t sp_ring_capacity(const sp_ring_t *self);

/* Messages waiting, 0 .. capacity: the tail and the head of one moment
 * (while others move, that moment is already past when it returns).  Never
 * blocks; a reader that keeps losing the race to a busy ring returns a
 * reading bounded by the capacity. */
uint32_t sp_ring_depth(const sp_ring_t *self);

/* Puts one message of `len` bytes (<= slot size).  timeout_ms: 0 = do not
 * wait, < 0 = wait forever.  Returns 0, -EAGAIN (full, timeout 0),
 * SP_E_TIMEOUT, -EMSGSIZE or -EINTR. */
int sp_ring_put(sp_ring_t *self, const void *msg, size_t len, int timeout_ms);

/* Takes one message into buf, which must hold a whole slot (cap >= slot
 * size).  timeout_ms as for sp_ring_put.  Returns its length, -EAGAIN
 * (empty, timeout 0), SP_E_TIMEOUT, -EMSGSIZE (cap below the slot size;
 * nothing is taken) or -EINTR. */
int sp_ring_get(sp_ring_t *self, void *buf, size_t cap, int timeout_ms);

/* sp_ring_get with a wait in microseconds (0: none, < 0: forever), for a
 * caller whose next deadline is under a millisecond away. */
int sp_ring_get_us(sp_ring_t *self, void *buf, size_t cap, long wait_us);

/* Times a caller took over the lock of a process that died holding it
 * (inside a put or a get). */
uint64_t sp_ring_recovered(const sp_ring_t *self);

/* Wakes every sleeper (both sides), e.g. to make them notice a shutdown. */
void sp_ring_wake_all(sp_ring_t *self);

#endif
