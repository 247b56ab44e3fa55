/*
 * sp_link_impl — what a transport's link ends implement behind sp_link.h.
 * Private to sp_link.c and the transport modules (sp_mq.c, sp_zlink.c,
 * sp_shmlink.c, sp_direct.c): each link struct starts with sp_link and
 * points at its transport's operations; its sp_transport_t.link_open makes
 * one.
 *
 * Errors and blocking: each operation keeps the promise of its sp_link.h
 * call (what it returns, how long it may block); sp_link.c fills in for the
 * ones a transport leaves NULL (release, reply_tag and adopt: nothing to
 * do; depth, ready and wait_fd: -ENOTSUP).  Ownership: link_open allocates the transport's
 * struct and `close` releases everything the end made, the struct
 * included.  Threads: a link, like the sp_link_t it is, belongs to one
 * thread at a time; the operations tables are constant.
 */
#ifndef SP_LINK_IMPL_H
#define SP_LINK_IMPL_H

#include "sp_link.h"

typedef struct {
    int (*send)(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                int timeout_ms);
    int (*recv)(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms);
    /* NULL: recv with the wait in whole milliseconds, rounded down */
    int (*recv_us)(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, long wait_us);
    int (*release)(sp_link_t *self, const sp_route_t *route);
    long (*depth)(sp_link_t *self);
    long (*ready)(sp_link_t *self); /* NULL: -ENOTSUP (sp_link_ready) */
    void (*close)(sp_link_t *self);
    uint64_t (*reply_tag)(sp_link_t *self);                                /* NULL: 0 */
    int (*adopt)(sp_link_t *self, uint32_t id, char *why, size_t why_cap); /* NULL: nothing to do */
    int (*wait_fd)(sp_link_t *self); /* NULL: -ENOTSUP (sp_link_wait_fd) */
    long (*room)(sp_link_t *self);   /* NULL: 0 (sp_link_reply_room) */
} sp_link_ops_t;

/* Every transport's link struct starts with this. */
struct sp_link {
    const sp_link_ops_t *ops;
};

#endif
