/*
 * sp_again — messages to send again: a FIFO of owned copies, filled by one
 * thread and drained in order by another.
 *
 * A nats producer link keeps here the publishes the stream refused or never
 * answered: nats.c's thread pushes them from its acknowledgement callback,
 * and the producer's thread publishes them again, oldest first, before any
 * new message.
 *
 * Ownership: sp_again_push copies the bytes.  The draining thread reads the
 * oldest message with sp_again_peek; that copy stays where it is, and the
 * pointer valid, until the same thread's sp_again_pop frees it, however
 * many pushes (and growths of the queue) come in between.  So a message is
 * only taken off once it is sent, and one that cannot be sent yet simply
 * stays first.  Every call locks; one thread drains (peek, pop) at a time.
 */
#ifndef SP_AGAIN_H
#define SP_AGAIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    void *data;
    size_t len;
} sp_again_msg_t;

typedef struct {
    pthread_mutex_t mu;
    sp_again_msg_t *msg; /* msg[head .. head + n), modulo cap */
    size_t head, n, cap;
} sp_again_t;

/* An empty queue. */
void sp_again_init(sp_again_t *q);

/* Adds a copy of data[0 .. len) at the end: 0, or -ENOMEM (nothing added). */
int sp_again_push(sp_again_t *q, const void *data, size_t len);

/* The oldest message, left in the queue (false: the queue is empty). */
bool sp_again_peek(sp_again_t *q, const void **data, size_t *len);

/* Frees the oldest message (the one sp_again_peek showed); none: no-op. */
void sp_again_pop(sp_again_t *q);

/* Messages in the queue. */
size_t sp_again_count(sp_again_t *q);

/* Frees every message and the queue's storage; no other thread may use it. */
void sp_again_fini(sp_again_t *q);

#endif
