/*
 * sp_again — a ring of message copies that doubles when full.  Growing
 * moves the pointers to the copies, never the copies, so a pointer handed
 * out by sp_again_peek stays valid until its pop.
 */
#include "sp_again.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_FIRST_CAP 64

void sp_again_init(sp_again_t *q)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
}

/* Room for one more: the ring doubled, its oldest first.  Under q->mu. */
static int s_grow(sp_again_t *q)
{
    if (q->n < q->cap) {
        return 0;
    }
    size_t cap = q->cap > 0 ? 2 * q->cap : S_FIRST_CAP;
    sp_again_msg_t *msg = malloc(cap * sizeof *msg);
    if (msg == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < q->n; i++) {
        msg[i] = q->msg[(q->head + i) % q->cap];
    }
    free(q->msg);
    q->msg = msg;
    q->head = 0;
    q->cap = cap;
    return 0;
}

int sp_again_push(sp_again_t *q, const void *data, size_t len)
{
    void *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        return -ENOMEM;
    }
    if (len > 0) {
        memcpy(copy, data, len);
    }
    pthread_mutex_lock(&q->mu);
    int rc = s_grow(q);
    if (rc == 0) {
        q->msg[(q->head + q->n) % q->cap] = (sp_again_msg_t){.data = copy, .len = len};
        q->n++;
    }
    pthread_mutex_unlock(&q->mu);
    if (rc < 0) {
        free(copy);
    }
    return rc;
}

bool sp_again_peek(sp_again_t *q, const void **data, size_t *len)
{
    pthread_mutex_lock(&q->mu);
    bool some = q->n > 0;
    if (some) {
        *data = q->msg[q->head].data;
        *len = q->msg[q->head].len;
    }
    pthread_mutex_unlock(&q->mu);
    return some;
}

void sp_again_pop(sp_again_t *q)
{
    void *data = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->n > 0) {
        data = q->msg[q->head].data;
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
    pthread_mutex_unlock(&q->mu);
    free(data);
}

size_t sp_again_count(sp_again_t *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void sp_again_fini(sp_again_t *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->msg[(q->head + i) % q->cap].data);
    }
    free(q->msg);
    pthread_mutex_destroy(&q->mu);
    memset(q, 0, sizeof *q);
}
