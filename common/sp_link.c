/*
 * sp_link — dispatch from the generic link calls to the transport chosen at
 * open time (its sp_transport_t's link_open, then the link's operations).
 */
#include "sp_link_impl.h"

#include "sp_error.h"
#include "sp_time.h"

#include <errno.h>
#include <stdio.h>

#define SP_LINK_US_PER_MS 1000
#define SP_LINK_NAP_US    200 /* longest nap of a sub-millisecond wait (sp_link_recv_us) */

int sp_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap)
{
    *out = NULL;
    if (why != NULL && why_cap > 0) {
        why[0] = '\0';
    }
    if (cfg->transport == NULL || cfg->transport->link_open == NULL) {
        if (why != NULL) {
            snprintf(why, why_cap, "no transport to open a link of");
        }
        return SP_E_USAGE;
    }
    return cfg->transport->link_open(out, cfg, why, why_cap);
}

void sp_link_close(sp_link_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    (*self_p)->ops->close(*self_p);
    *self_p = NULL;
}

int sp_link_send(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                 int timeout_ms)
{
    return self->ops->send(self, msg, len, route, timeout_ms);
}

int sp_link_recv(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms)
{
    return self->ops->recv(self, buf, cap, route, timeout_ms);
}

int sp_link_recv_us(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, long wait_us)
{
    if (self->ops->recv_us != NULL) {
        return self->ops->recv_us(self, buf, cap, route, wait_us);
    }
    if (wait_us <= 0 || wait_us >= SP_LINK_US_PER_MS) {
        return self->ops->recv(self, buf, cap, route,
                               wait_us < 0 ? -1 : (int)(wait_us / SP_LINK_US_PER_MS));
    }
    /* under a millisecond on a link that waits in whole ones: look, then
     * nap (polling would spin a core the workers need) */
    int n = self->ops->recv(self, buf, cap, route, 0);
    if (n == SP_E_TIMEOUT || n == -EAGAIN) {
        long nap = wait_us < SP_LINK_NAP_US ? wait_us : SP_LINK_NAP_US;
        sp_sleep_ns((uint64_t)nap * SP_NS_PER_US);
    }
    return n;
}

int sp_link_release(sp_link_t *self, const sp_route_t *route)
{
    return self->ops->release ? self->ops->release(self, route) : 0;
}

long sp_link_depth(sp_link_t *self)
{
    return self->ops->depth ? self->ops->depth(self) : -ENOTSUP;
}

long sp_link_ready(sp_link_t *self)
{
    return self->ops->ready ? self->ops->ready(self) : -ENOTSUP;
}

long sp_link_reply_room(sp_link_t *self)
{
    return self->ops->room ? self->ops->room(self) : 0;
}

int sp_link_wait_fd(sp_link_t *self)
{
    return self->ops->wait_fd ? self->ops->wait_fd(self) : -ENOTSUP;
}

uint64_t sp_link_reply_tag(sp_link_t *self)
{
    return self->ops->reply_tag ? self->ops->reply_tag(self) : 0;
}

int sp_link_adopt(sp_link_t *self, uint32_t id, char *why, size_t why_cap)
{
    if (id == 0) {
        return -EINVAL;
    }
    return self->ops->adopt ? self->ops->adopt(self, id, why, why_cap) : 0;
}
