/*
 * sp_events — PUB/SUB ends of the event path.
 */
#include "sp_events.h"
#include "sp_zmq.h"

#include "sp_error.h"
#include "sp_time.h"

#include <czmq.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct sp_pub {
    zsock_t *sock;
    void *raw;
    uint32_t id;
    uint32_t incarnation; /* our pid: the header's batch field on this path */
    uint64_t seq;
    bool joined;
    unsigned pending;
    uint8_t msg[SP_EVENTS_MSG_MAX];
};

/* Waits for a subscription message on an XPUB socket. */
static bool s_wait_subscription(void *raw, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = raw, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, timeout_ms) <= 0) {
        return false;
    }
    uint8_t sub[SP_WIRE_HDR_SIZE];
    return zmq_recv(raw, sub, sizeof sub, ZMQ_DONTWAIT) >= 1;
}

struct sp_sub {
    zsock_t *sock;
    void *raw;
};

sp_pub_t *sp_pub_new(const char *endpoint, uint32_t publisher_id)
{
    sp_zmq_setup();
    sp_pub_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->id = publisher_id;
    p->incarnation = (uint32_t)getpid();
    /* XPUB rather than PUB: it tells us when the broker's subscription has
     * arrived, so no event is published into the void before that */
    p->sock = zsock_new(ZMQ_XPUB);
    if (p->sock == NULL) {
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->raw = zsock_resolve(p->sock);
    zsock_set_sndhwm(p->sock, SP_ZMQ_HWM);
    zsock_set_linger(p->sock, SP_ZMQ_PUB_LINGER_MS);
    /* all the broker sends us is its subscription */
    sp_zmq_set_max_frame(p->sock, SP_SUBSCRIPTION_MAX);
    sp_zmq_endpoint_opts(p->sock, endpoint);
    if (zsock_connect(p->sock, "%s", endpoint) < 0) {
        int err = errno;
        zsock_destroy(&p->sock);
        free(p);
        errno = err ? err : EINVAL;
        return NULL;
    }
    p->joined = s_wait_subscription(p->raw, SP_PUB_JOIN_MS);
    return p;
}

bool sp_pub_joined(const sp_pub_t *self)
{
    return self->joined;
}

void sp_pub_destroy(sp_pub_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_pub_t *p = *self_p;
    sp_pub_flush(p);
    zsock_destroy(&p->sock);
    free(p);
    *self_p = NULL;
}

unsigned sp_pub_pending(const sp_pub_t *self)
{
    return self->pending;
}

int sp_pub_flush(sp_pub_t *self)
{
    if (self->pending == 0) {
        return 0;
    }
    sp_wire_put_hdr(self->msg, SP_MSG_EVENTS, self->pending, self->id, self->incarnation);
    size_t len = sp_wire_msg_size(SP_MSG_EVENTS, self->pending);
    self->pending = 0;
    /* PUB never blocks: at the high-water mark the message is dropped and
     * subscribers see the gap in pub_seq. */
    if (zmq_send(self->raw, self->msg, len, ZMQ_DONTWAIT) < 0 && errno != EAGAIN) {
        return -errno;
    }
    return 0;
}

int sp_pub_event(sp_pub_t *self, sp_event_t *event)
{
    event->pub_seq = ++self->seq;
    event->publisher_id = self->id;
    if (event->ts_ns == 0) {
        event->ts_ns = sp_now_ns();
    }
    sp_wire_put_event(sp_wire_rec(self->msg, SP_MSG_EVENTS, self->pending), event);
    if (++self->pending == SP_EVENTS_PER_MSG) {
        return sp_pub_flush(self);
    }
    return 0;
}

int sp_pub_heartbeat(sp_pub_t *self, uint32_t state, uint64_t orders_applied)
{
    int rc = sp_pub_flush(self);
    if (rc < 0) {
        return rc;
    }
    uint8_t msg[SP_WIRE_HDR_SIZE + SP_WIRE_HEARTBEAT_SIZE];
    sp_heartbeat_t hb = {.pub_seq = self->seq,
                         .publisher_id = self->id,
                         .state = state,
                         .orders_applied = orders_applied,
                         .ts_ns = sp_now_ns(),
                         .pid = (uint32_t)getpid()};
    sp_wire_put_hdr(msg, SP_MSG_HEARTBEAT, 1, self->id, self->incarnation);
    sp_wire_put_heartbeat(msg + SP_WIRE_HDR_SIZE, &hb);
    if (zmq_send(self->raw, msg, sizeof msg, ZMQ_DONTWAIT) < 0 && errno != EAGAIN) {
        return -errno;
    }
    return 0;
}

uint64_t sp_pub_seq(const sp_pub_t *self)
{
    return self->seq;
}

sp_sub_t *sp_sub_new(const char *endpoint, const sp_curve_keys_t *client, const char *server_key)
{
    sp_zmq_setup();
    sp_sub_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->sock = zsock_new(ZMQ_SUB);
    if (s->sock == NULL) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->raw = zsock_resolve(s->sock);
    zsock_set_rcvhwm(s->sock, SP_SUB_HWM);
    sp_zmq_set_max_frame(s->sock, SP_EVENTS_MSG_MAX);
    sp_zmq_endpoint_opts(s->sock, endpoint);
    if (client != NULL && server_key != NULL && server_key[0] != '\0') {
        sp_curve_set_client(s->sock, client, server_key);
    }
    zsock_set_subscribe(s->sock, "");
    if (zsock_connect(s->sock, "%s", endpoint) < 0) {
        int err = errno;
        zsock_destroy(&s->sock);
        free(s);
        errno = err ? err : EINVAL;
        return NULL;
    }
    return s;
}

void *sp_sub_raw(sp_sub_t *self)
{
    return self->raw;
}

void sp_sub_destroy(sp_sub_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    zsock_destroy(&(*self_p)->sock);
    free(*self_p);
    *self_p = NULL;
}

int sp_sub_recv(sp_sub_t *self, void *buf, size_t cap, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = self->raw, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&item, 1, timeout_ms);
    if (rc < 0) {
        return -errno;
    }
    if (rc == 0) {
        return SP_E_TIMEOUT;
    }
    int n = zmq_recv(self->raw, buf, cap, ZMQ_DONTWAIT);
    if (n < 0) {
        return -errno;
    }
    return (size_t)n > cap ? -EMSGSIZE : n;
}
