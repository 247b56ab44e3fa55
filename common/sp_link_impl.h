/*
 * sp_link_impl — what a transport implements behind sp_link.h.  Private to
 * the link modules (sp_link.c, sp_mq.c, sp_zlink.c, sp_shmlink.c).
 */
#ifndef SP_LINK_IMPL_H
#define SP_LINK_IMPL_H

#include "sp_link.h"

typedef struct {
    int (*send)(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                int timeout_ms);
    int (*recv)(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms);
    int (*release)(sp_link_t *self, const sp_route_t *route);
    long (*depth)(sp_link_t *self);
    void (*close)(sp_link_t *self);
} sp_link_ops_t;

/* Every transport's link struct starts with this. */
struct sp_link {
    const sp_link_ops_t *ops;
};

int sp_mq_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap);
int sp_zmq_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap);
int sp_shm_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap);
int sp_direct_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap);

#endif
