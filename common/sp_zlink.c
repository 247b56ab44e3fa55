/*
 * sp_zlink — the ZeroMQ transport behind sp_link.h.
 *
 * Producers and workers both connect DEALER sockets to the broker's two
 * ROUTERs (see sp_router.c).  A producer's messages are single frames.  A
 * worker receives [producer routing id][orders] and answers with
 * [producer routing id][results]; the broker counts each answer as one credit
 * returned.  We use czmq to make and configure sockets and the raw libzmq
 * calls on the hot path (a look at ZMQ_EVENTS, a zmq_poll only when nothing
 * is ready, and one zmq_send or zmq_recv per message).
 */
#include "sp_zlink.h"

#include "sp_link_impl.h"
#include "sp_zmq.h"

#include "sp_commit.h"
#include "sp_error.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    sp_link_t base;
    sp_link_role_t role;
    zsock_t *sock;
    void *raw;
    uint32_t id;
    uint32_t batch;
} sp_zlink_t;

/* How long a worker's result waits at least for room in its pipe to the
 * broker, whatever timeout it was sent with (sp_link_send). */
#define SP_ZLINK_BROKER_WAIT_MS 100

static int s_wait(void *raw, short events, int timeout_ms)
{
    /* the socket's own state first: when a message (or room for one) is
     * there already, which is most calls at full speed, no poll(2) is made */
    int ready = 0;
    size_t sz = sizeof ready;
    if (zmq_getsockopt(raw, ZMQ_EVENTS, &ready, &sz) == 0 && (ready & events)) {
        return 0;
    }
    if (timeout_ms == 0) {
        return SP_E_TIMEOUT;
    }
    /* a signal (a child ending, say) does not end the wait early */
    uint64_t deadline = timeout_ms > 0 ? sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS : 0;
    for (;;) {
        zmq_pollitem_t item = {.socket = raw, .events = events};
        int rc = zmq_poll(&item, 1, timeout_ms);
        if (rc > 0) {
            return 0;
        }
        if (rc == 0) {
            return SP_E_TIMEOUT;
        }
        if (errno != EINTR) {
            return -errno;
        }
        if (timeout_ms > 0) {
            uint64_t now = sp_now_ns();
            if (now >= deadline) {
                return SP_E_TIMEOUT;
            }
            timeout_ms = (int)((deadline - now + SP_NS_PER_MS - 1) / SP_NS_PER_MS);
        }
    }
}

static int s_send(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                  int timeout_ms)
{
    sp_zlink_t *l = (sp_zlink_t *)self;
    if (l->role == SP_LINK_WORKER && timeout_ms >= 0 && timeout_ms < SP_ZLINK_BROKER_WAIT_MS) {
        /* a worker's path leads to the broker's router, not to the client
         * (the router drops what a client does not take, never waiting):
         * a full pipe here is a broker that is behind, worth a wait */
        timeout_ms = SP_ZLINK_BROKER_WAIT_MS;
    }
    int rc = s_wait(l->raw, ZMQ_POLLOUT, timeout_ms);
    if (rc < 0) {
        return rc;
    }
    if (l->role == SP_LINK_WORKER) {
        if (route == NULL || route->id_len == 0) {
            return -EINVAL;
        }
        if (zmq_send(l->raw, route->id, route->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            return -errno;
        }
    }
    if (zmq_send(l->raw, msg, len, ZMQ_DONTWAIT) < 0) {
        return -errno;
    }
    return 0;
}

/* As s_wait for `events` on a receive, the wait in microseconds (0: none,
 * < 0: forever): the socket's ZMQ_FD, polled with ppoll(2) to the
 * microsecond.  The descriptor is edge-triggered: it is polled only after
 * ZMQ_EVENTS said not ready, and ZMQ_EVENTS is asked again after each
 * wake. */
static int s_wait_us(void *raw, short events, long wait_us)
{
    uint64_t deadline = wait_us > 0 ? sp_now_ns() + (uint64_t)wait_us * SP_NS_PER_US : 0;
    for (;;) {
        int ready = 0;
        size_t sz = sizeof ready;
        if (zmq_getsockopt(raw, ZMQ_EVENTS, &ready, &sz) < 0) {
            return -errno;
        }
        if (ready & events) {
            return 0;
        }
        if (wait_us == 0) {
            return SP_E_TIMEOUT;
        }
        struct timespec left, *leftp = NULL;
        if (wait_us > 0) {
            uint64_t now = sp_now_ns();
            if (now >= deadline) {
                return SP_E_TIMEOUT;
            }
            left.tv_sec = (time_t)((deadline - now) / SP_NS_PER_SEC);
            left.tv_nsec = (long)((deadline - now) % SP_NS_PER_SEC);
            leftp = &left;
        }
        int fd = -1;
        sz = sizeof fd;
        if (zmq_getsockopt(raw, ZMQ_FD, &fd, &sz) < 0) {
            return -errno;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (ppoll(&pfd, 1, leftp, NULL) < 0 && errno != EINTR) {
            return -errno;
        }
    }
}

/* Reads and discards the rest of a multipart message. */
static void s_drain(void *raw)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(raw, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, raw, 0);
        zmq_msg_close(&m);
    }
}

static int s_has_more(void *raw)
{
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(raw, ZMQ_RCVMORE, &more, &sz);
    return more;
}

static int s_recv_us(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, long wait_us)
{
    sp_zlink_t *l = (sp_zlink_t *)self;
    int rc = s_wait_us(l->raw, ZMQ_POLLIN, wait_us);
    if (rc < 0) {
        return rc;
    }
    if (route != NULL) {
        memset(route, 0, sizeof *route);
    }
    if (l->role == SP_LINK_WORKER) {
        uint8_t id[SP_ROUTE_ID_MAX];
        int n = zmq_recv(l->raw, id, sizeof id, ZMQ_DONTWAIT);
        if (n < 0) {
            return -errno;
        }
        if (n > (int)sizeof id || n == 0 || !s_has_more(l->raw)) {
            s_drain(l->raw);
            return -EPROTO;
        }
        if (route != NULL) {
            route->id_len = (uint8_t)n;
            memcpy(route->id, id, (size_t)n);
        }
    }
    int n = zmq_recv(l->raw, buf, cap, ZMQ_DONTWAIT);
    if (n < 0) {
        return -errno;
    }
    if (s_has_more(l->raw)) {
        s_drain(l->raw);
        return -EPROTO;
    }
    if ((size_t)n > cap) {
        return -EMSGSIZE;
    }
    if (route != NULL && (size_t)n >= SP_WIRE_HDR_SIZE) {
        sp_msg_hdr_t h;
        sp_wire_get_hdr(buf, &h);
        route->producer_id = h.sender;
    }
    return n;
}

static int s_recv(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms)
{
    return s_recv_us(self, buf, cap, route, timeout_ms < 0 ? -1 : (long)timeout_ms * 1000);
}

static int s_send_credit(sp_zlink_t *l, unsigned credit)
{
    uint8_t msg[SP_WIRE_HDR_SIZE];
    sp_wire_put_hdr(msg, SP_MSG_CREDIT, credit, l->id, l->batch++);
    return zmq_send(l->raw, msg, sizeof msg, 0) < 0 ? -errno : 0;
}

static int s_release(sp_link_t *self, const sp_route_t *route)
{
    (void)route;
    sp_zlink_t *l = (sp_zlink_t *)self;
    return l->role == SP_LINK_WORKER ? s_send_credit(l, 1) : 0;
}

static void s_close(sp_link_t *self)
{
    sp_zlink_t *l = (sp_zlink_t *)self;
    zsock_destroy(&l->sock);
    free(l);
}

static int s_adopt(sp_link_t *self, uint32_t id, char *why, size_t why_cap)
{
    (void)why;
    (void)why_cap;
    ((sp_zlink_t *)self)->id = id; /* results come back on this connection anyway */
    return 0;
}

/* ZMQ_FD: edge-triggered, see sp_link_wait_fd. */
static int s_wait_fd(sp_link_t *self)
{
    sp_zlink_t *l = (sp_zlink_t *)self;
    int fd = -1;
    size_t sz = sizeof fd;
    return zmq_getsockopt(l->raw, ZMQ_FD, &fd, &sz) == 0 ? fd : -ENOTSUP;
}

static const sp_link_ops_t s_ops = {.send = s_send,
                                    .recv = s_recv,
                                    .recv_us = s_recv_us,
                                    .release = s_release,
                                    .depth = NULL,
                                    .close = s_close,
                                    .adopt = s_adopt,
                                    .wait_fd = s_wait_fd};

static int s_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap)
{
    sp_zmq_setup();
    if (cfg->endpoint == NULL || cfg->endpoint[0] == '\0') {
        snprintf(why, why_cap, "no ZeroMQ endpoint to connect to");
        return SP_E_USAGE;
    }
    /* the broker's router takes order messages up to the wire's largest,
     * and closes without a word a connection that sends a larger one: an
     * end meant for larger messages is refused here, where it can be said */
    size_t orders_max = sp_wire_msg_size(SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS);
    if (cfg->max_msg > orders_max) {
        snprintf(why, why_cap,
                 "messages of %zu bytes do not fit the ZeroMQ order path (%zu bytes: %u orders "
                 "per message)",
                 cfg->max_msg, orders_max, (unsigned)SP_WIRE_MAX_RECORDS);
        return -EMSGSIZE;
    }
    sp_zlink_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return -ENOMEM;
    }
    l->base.ops = &s_ops;
    l->role = cfg->role;
    l->id = cfg->id;
    l->sock = zsock_new(ZMQ_DEALER);
    if (l->sock == NULL) {
        free(l);
        return -ENOMEM;
    }
    l->raw = zsock_resolve(l->sock);
    zsock_set_sndhwm(l->sock, SP_ZMQ_HWM);
    zsock_set_rcvhwm(l->sock, SP_ZMQ_HWM);
    /* inbound messages are orders (worker) or results (producer), and libzmq
     * drops the whole connection on one oversized message: size for both */
    size_t inbound = cfg->reply_msg > cfg->max_msg ? cfg->reply_msg : cfg->max_msg;
    sp_zmq_set_max_frame(l->sock, inbound);
    sp_zmq_endpoint_opts(l->sock, cfg->endpoint);
    if (cfg->server_key != NULL && cfg->server_key[0] != '\0') {
        if (cfg->curve == NULL) {
            snprintf(why, why_cap, "%s is a CURVE server: a client certificate is needed",
                     cfg->endpoint);
            s_close(&l->base);
            return SP_E_USAGE;
        }
        sp_curve_set_client(l->sock, cfg->curve, cfg->server_key);
    }
    if (cfg->role == SP_LINK_WORKER) {
        /* a routing id the broker can name: when this worker dies, the
         * broker forgets its credit and its unanswered batches at once */
        char rid[SP_ROUTE_ID_MAX];
        sp_zmq_worker_rid(cfg->id, getpid(), rid, sizeof rid);
        zsock_set_identity(l->sock, rid);
    }
    if (zsock_connect(l->sock, "%s", cfg->endpoint) < 0) {
        snprintf(why, why_cap, "cannot connect to %s: %s", cfg->endpoint, zmq_strerror(errno));
        s_close(&l->base);
        return SP_E_USAGE;
    }
    if (cfg->role == SP_LINK_WORKER) {
        int rc = s_send_credit(l, cfg->credit ? cfg->credit : SP_LINK_CREDIT_DEFAULT);
        if (rc < 0) {
            s_close(&l->base);
            return rc;
        }
    }
    *out = &l->base;
    return 0;
}

/* ---- the broker's side: its router; here only what the run needs ---- */

/* The router holds a connection per producer. */
static int s_preflight(const sp_tparams_t *p, sp_limits_need_t *need, char *why, size_t cap)
{
    (void)p;
    (void)why;
    (void)cap;
    need->files += SP_DEDUP_SLOTS;
    return 0;
}

/* The router forwards whole messages of any batch the wire allows. */
static unsigned s_fit(const sp_tinfo_t *info, char *limit, size_t cap)
{
    (void)info;
    snprintf(limit, cap, "one order message (%d orders)", SP_WIRE_MAX_RECORDS);
    return SP_WIRE_MAX_RECORDS;
}

const sp_transport_t sp_transport_zmq = {
    .name = "zmq",
    .summary = "ZeroMQ through the broker's router (ipc://, tcp://, inproc://)",
    .id = 2,
    .routed = true,
    .has_workers = true,
    .depth_label = "batches in flight at workers",
    .reply_label = NULL,
    .link_open = s_link_open,
    .preflight = s_preflight,
    .fit = s_fit,
};
