/*
 * sp_natsfeed — the event path and the snapshot service over NATS (sp_natsfeed.h).
 *
 * nats.c delivers every subscription's messages on threads of its own: the
 * callbacks only queue them and wake the object's thread through an
 * eventfd, and that thread alone uses the ZeroMQ sockets.
 */
#include "sp_natsfeed.h"

#include "sp_error.h"
#include "sp_events.h"
#include "sp_nats.h"
#include "sp_time.h"
#include "sp_wire.h"
#include "sp_zmq.h"

#include <czmq.h>
#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define S_SUBJECT_MAX (SP_INSTANCE_NAME_MAX + 16)
#define S_ID_MAX      255  /* a ROUTER's routing id */
#define S_BURST       4096 /* messages one socket gives per turn */

typedef struct s_item {
    struct s_item *next;
    natsMsg *msg;
    int slot; /* the answer it belongs to (bridge), or -1 */
} s_item_t;

/* One snapshot answer under way. */
typedef struct {
    sp_natsfeed_t *owner;
    bool used;
    uint64_t started_ns;
    zsock_t *dealer;             /* gateway: asks the broker's snapshot endpoint */
    char *reply;                 /* gateway: where the answer goes */
    natsSubscription *inbox_sub; /* bridge: the answer comes here */
    char inbox[128];
    uint8_t id[S_ID_MAX]; /* bridge: the requester */
    size_t id_len;
} s_answer_t;

struct sp_natsfeed {
    bool gateway;
    char feed_subj[S_SUBJECT_MAX];
    char snap_subj[S_SUBJECT_MAX];
    char ep_events[SP_ENDPOINT_MAX];   /* gateway: the broker's; bridge: ours */
    char ep_snapshot[SP_ENDPOINT_MAX]; /* gateway: the broker's; bridge: ours */
    natsConnection *nc;
    natsSubscription *sub; /* gateway: requests; bridge: the feed */
    int efd;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t mu;
    s_item_t *head, *tail;
    unsigned queued;
    _Atomic uint64_t dropped, passed;
    bool eos_passed; /* gateway: the broker's end of stream went out */
    s_answer_t answer[SP_NATSFEED_ANSWERS];
    /* the thread's sockets */
    zsock_t *follow; /* gateway: SUB on the broker's events endpoint */
    zsock_t *pub;    /* bridge: what the monitor subscribes to */
    zsock_t *router; /* bridge: where the monitor asks for snapshots */
    uint8_t *buf;
    /* start waits for the thread's sockets */
    pthread_mutex_t ready_mu;
    pthread_cond_t ready_cv;
    int ready; /* 0 waiting, 1 ready, < 0 failed */
};

/* ---- the callbacks' queue ------------------------------------------------------ */

static void s_push(sp_natsfeed_t *f, natsMsg *msg, int slot)
{
    s_item_t *it = malloc(sizeof *it);
    pthread_mutex_lock(&f->mu);
    if (it == NULL || f->queued >= SP_NATSFEED_QUEUE_MAX) {
        pthread_mutex_unlock(&f->mu);
        free(it);
        natsMsg_Destroy(msg);
        atomic_fetch_add(&f->dropped, 1);
        return;
    }
    *it = (s_item_t){.msg = msg, .slot = slot};
    if (f->tail != NULL) {
        f->tail->next = it;
    } else {
        f->head = it;
    }
    f->tail = it;
    f->queued++;
    pthread_mutex_unlock(&f->mu);
    uint64_t one = 1;
    if (write(f->efd, &one, sizeof one) < 0) {
        /* the counter is full: the thread is awake anyway */
    }
}

static void s_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    s_push(closure, msg, -1);
}

static void s_on_answer(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    s_answer_t *a = closure;
    s_push(a->owner, msg, (int)(a - a->owner->answer));
}

static s_item_t *s_take_all(sp_natsfeed_t *f)
{
    pthread_mutex_lock(&f->mu);
    s_item_t *all = f->head;
    f->head = f->tail = NULL;
    f->queued = 0;
    pthread_mutex_unlock(&f->mu);
    return all;
}

static void s_free_items(s_item_t *it)
{
    while (it != NULL) {
        s_item_t *next = it->next;
        natsMsg_Destroy(it->msg);
        free(it);
        it = next;
    }
}

/* ---- answers ------------------------------------------------------------------- */

static void s_answer_end(s_answer_t *a)
{
    zsock_destroy(&a->dealer);
    free(a->reply);
    a->reply = NULL;
    if (a->inbox_sub != NULL) {
        natsSubscription_Unsubscribe(a->inbox_sub);
        natsSubscription_Destroy(a->inbox_sub);
        a->inbox_sub = NULL;
    }
    a->inbox[0] = '\0';
    a->used = false;
}

/* A free answer slot, or the oldest one (given up). */
static s_answer_t *s_answer_slot(sp_natsfeed_t *f)
{
    s_answer_t *oldest = &f->answer[0];
    for (int i = 0; i < SP_NATSFEED_ANSWERS; i++) {
        if (!f->answer[i].used) {
            return &f->answer[i];
        }
        if (f->answer[i].started_ns < oldest->started_ns) {
            oldest = &f->answer[i];
        }
    }
    s_answer_end(oldest);
    return oldest;
}

static bool s_is_request(const void *data, size_t len)
{
    sp_msg_hdr_t h;
    return len == SP_WIRE_HDR_SIZE && sp_wire_check(data, len, &h) == 0 &&
           h.kind == SP_MSG_SNAP_REQ;
}

static bool s_is_kind(const void *data, size_t len, unsigned kind)
{
    sp_msg_hdr_t h;
    return sp_wire_check(data, len, &h) == 0 && h.kind == kind;
}

static bool s_is_end(const void *data, size_t len)
{
    return s_is_kind(data, len, SP_MSG_SNAP_END);
}

/* ---- the gateway (broker side) ------------------------------------------------- */

static void s_gateway_request(sp_natsfeed_t *f, natsMsg *m)
{
    const char *reply = natsMsg_GetReply(m);
    const void *data = natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    if (reply == NULL || reply[0] == '\0' || !s_is_request(data, len)) {
        return; /* not a request: nothing to answer */
    }
    s_answer_t *a = s_answer_slot(f);
    a->dealer = zsock_new(ZMQ_DEALER);
    a->reply = strdup(reply);
    if (a->dealer == NULL || a->reply == NULL) {
        s_answer_end(a);
        return;
    }
    sp_zmq_set_max_frame(a->dealer, SP_SNAP_MSG_MAX);
    zsock_set_linger(a->dealer, 0);
    if (zsock_connect(a->dealer, "%s", f->ep_snapshot) < 0 ||
        zmq_send(zsock_resolve(a->dealer), data, len, ZMQ_DONTWAIT) < 0) {
        s_answer_end(a);
        return;
    }
    a->used = true;
    a->started_ns = sp_now_ns();
}

/* Publishes what the broker's sockets have: its event path, and the
 * answers under way. */
static void s_gateway_pump(sp_natsfeed_t *f)
{
    void *follow = zsock_resolve(f->follow);
    for (int k = 0; k < S_BURST; k++) {
        int n = zmq_recv(follow, f->buf, SP_EVENTS_MSG_MAX, ZMQ_DONTWAIT);
        if (n < 0) {
            break;
        }
        if ((size_t)n <= SP_EVENTS_MSG_MAX &&
            natsConnection_Publish(f->nc, f->feed_subj, f->buf, n) == NATS_OK) {
            atomic_fetch_add(&f->passed, 1);
            f->eos_passed |= s_is_kind(f->buf, (size_t)n, SP_MSG_EOS);
        }
    }
    for (int i = 0; i < SP_NATSFEED_ANSWERS; i++) {
        s_answer_t *a = &f->answer[i];
        for (int k = 0; a->used && k < S_BURST; k++) {
            int n = zmq_recv(zsock_resolve(a->dealer), f->buf, SP_SNAP_MSG_MAX, ZMQ_DONTWAIT);
            if (n < 0) {
                break;
            }
            if ((size_t)n > SP_SNAP_MSG_MAX ||
                natsConnection_Publish(f->nc, a->reply, f->buf, n) != NATS_OK) {
                s_answer_end(a); /* the requester asks again after its timeout */
                break;
            }
            atomic_fetch_add(&f->passed, 1);
            if (s_is_end(f->buf, (size_t)n)) {
                s_answer_end(a);
            }
        }
    }
}

/* ---- the bridge (monitor side) ------------------------------------------------- */

static void s_bridge_request(sp_natsfeed_t *f, const uint8_t *id, size_t id_len, const void *data,
                             size_t len)
{
    if (!s_is_request(data, len)) {
        return;
    }
    s_answer_t *a = NULL;
    for (int i = 0; i < SP_NATSFEED_ANSWERS && a == NULL; i++) {
        s_answer_t *c = &f->answer[i];
        if (c->used && c->id_len == id_len && memcmp(c->id, id, id_len) == 0) {
            a = c; /* the same requester asks again: its old answer is dropped */
            s_answer_end(a);
        }
    }
    if (a == NULL) {
        a = s_answer_slot(f);
    }
    natsInbox *inbox = NULL;
    if (natsInbox_Create(&inbox) != NATS_OK) {
        return;
    }
    snprintf(a->inbox, sizeof a->inbox, "%s", inbox);
    natsInbox_Destroy(inbox);
    memcpy(a->id, id, id_len);
    a->id_len = id_len;
    if (natsConnection_Subscribe(&a->inbox_sub, f->nc, a->inbox, s_on_answer, a) != NATS_OK) {
        a->inbox_sub = NULL;
        return;
    }
    /* a big table's answer arrives faster than a turn takes it */
    natsSubscription_SetPendingLimits(a->inbox_sub, -1, -1);
    a->used = true;
    a->started_ns = sp_now_ns();
    if (natsConnection_PublishRequest(f->nc, f->snap_subj, a->inbox, data, (int)len) != NATS_OK) {
        s_answer_end(a);
    }
}

static void s_bridge_pump(sp_natsfeed_t *f)
{
    void *router = zsock_resolve(f->router);
    for (int k = 0; k < S_BURST; k++) {
        uint8_t id[S_ID_MAX + 1];
        int idn = zmq_recv(router, id, sizeof id, ZMQ_DONTWAIT);
        if (idn < 0) {
            break;
        }
        int n = zsock_rcvmore(f->router) ? zmq_recv(router, f->buf, SP_SNAP_MSG_MAX, 0) : -1;
        while (zsock_rcvmore(f->router)) {
            zmq_recv(router, f->buf, 0, 0); /* extra frames: not a request */
            n = -1;
        }
        if (n >= 0 && idn <= S_ID_MAX && (size_t)n <= SP_SNAP_MSG_MAX) {
            s_bridge_request(f, id, (size_t)idn, f->buf, (size_t)n);
        }
    }
}

static void s_bridge_item(sp_natsfeed_t *f, const s_item_t *it)
{
    const void *data = natsMsg_GetData(it->msg);
    int len = natsMsg_GetDataLength(it->msg);
    if (it->slot < 0) {
        if (zmq_send(zsock_resolve(f->pub), data, (size_t)len, ZMQ_DONTWAIT) >= 0) {
            atomic_fetch_add(&f->passed, 1);
        }
        return;
    }
    s_answer_t *a = &f->answer[it->slot];
    /* an answer given up since: its inbox is another one, or none */
    if (!a->used || strcmp(natsMsg_GetSubject(it->msg), a->inbox) != 0) {
        return;
    }
    void *router = zsock_resolve(f->router);
    if (zmq_send(router, a->id, a->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(router, data, (size_t)len, ZMQ_DONTWAIT) < 0) {
        s_answer_end(a); /* the monitor is gone, or asks again after its timeout */
        return;
    }
    atomic_fetch_add(&f->passed, 1);
    if (s_is_end(data, (size_t)len)) {
        s_answer_end(a);
    }
}

/* ---- the thread ---------------------------------------------------------------- */

static int s_sockets(sp_natsfeed_t *f)
{
    if (f->gateway) {
        f->follow = zsock_new(ZMQ_SUB);
        if (f->follow == NULL) {
            return -ENOMEM;
        }
        sp_zmq_set_max_frame(f->follow, SP_EVENTS_MSG_MAX);
        zsock_set_rcvhwm(f->follow, SP_NATSFEED_QUEUE_MAX);
        zsock_set_subscribe(f->follow, "");
        return zsock_connect(f->follow, "%s", f->ep_events) < 0 ? -EINVAL : 0;
    }
    f->pub = zsock_new(ZMQ_PUB);
    f->router = zsock_new(ZMQ_ROUTER);
    if (f->pub == NULL || f->router == NULL) {
        return -ENOMEM;
    }
    zsock_set_sndhwm(f->pub, SP_NATSFEED_QUEUE_MAX);
    zsock_set_linger(f->pub, 0);
    zsock_set_linger(f->router, 0);
    zsock_set_sndhwm(f->router, SP_NATSFEED_QUEUE_MAX);
    if (zsock_bind(f->pub, "%s", f->ep_events) < 0 ||
        zsock_bind(f->router, "%s", f->ep_snapshot) < 0) {
        return -errno ? -errno : -EINVAL;
    }
    return 0;
}

static void s_ready(sp_natsfeed_t *f, int state)
{
    pthread_mutex_lock(&f->ready_mu);
    f->ready = state;
    pthread_cond_signal(&f->ready_cv);
    pthread_mutex_unlock(&f->ready_mu);
}

static void *s_thread(void *arg)
{
    sp_natsfeed_t *f = arg;
    int rc = s_sockets(f);
    s_ready(f, rc < 0 ? rc : 1);
    if (rc < 0) {
        return NULL;
    }
    while (!atomic_load(&f->stop)) {
        zmq_pollitem_t items[2 + SP_NATSFEED_ANSWERS];
        int n = 0;
        items[n++] = (zmq_pollitem_t){.fd = f->efd, .events = ZMQ_POLLIN};
        if (f->gateway) {
            items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(f->follow), .events = ZMQ_POLLIN};
            for (int i = 0; i < SP_NATSFEED_ANSWERS; i++) {
                if (f->answer[i].used) {
                    items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(f->answer[i].dealer),
                                                  .events = ZMQ_POLLIN};
                }
            }
        } else {
            items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(f->router), .events = ZMQ_POLLIN};
        }
        if (zmq_poll(items, n, SP_NATSFEED_TICK_MS) < 0 && errno != EINTR) {
            break;
        }
        uint64_t wakes;
        if (read(f->efd, &wakes, sizeof wakes) < 0) {
            /* nothing queued since the last turn */
        }
        s_item_t *all = s_take_all(f);
        for (s_item_t *it = all; it != NULL; it = it->next) {
            if (f->gateway) {
                s_gateway_request(f, it->msg);
            } else {
                s_bridge_item(f, it);
            }
        }
        s_free_items(all);
        if (f->gateway) {
            s_gateway_pump(f);
        } else {
            s_bridge_pump(f);
        }
        uint64_t now = sp_now_ns();
        for (int i = 0; i < SP_NATSFEED_ANSWERS; i++) {
            s_answer_t *a = &f->answer[i];
            if (a->used && now - a->started_ns > (uint64_t)SP_NATSFEED_ANSWER_MS * SP_NS_PER_MS) {
                s_answer_end(a);
            }
        }
    }
    if (f->gateway) {
        /* the broker's last words (its end of stream) go out before we do */
        uint64_t until = sp_now_ns() + (uint64_t)SP_NATSFEED_TICK_MS * 5 * SP_NS_PER_MS;
        while (!f->eos_passed && sp_now_ns() < until) {
            zmq_pollitem_t item = {.socket = zsock_resolve(f->follow), .events = ZMQ_POLLIN};
            zmq_poll(&item, 1, SP_NATSFEED_TICK_MS / 10);
            s_gateway_pump(f);
        }
        natsConnection_FlushTimeout(f->nc, (int64_t)SP_NATSFEED_TICK_MS * 5);
    }
    return NULL;
}

/* ---- start and stop -------------------------------------------------------------- */

static int s_start(sp_natsfeed_t **out, bool gateway, const char *urls, const char *instance,
                   const char *ep_events, const char *ep_snapshot, char *why, size_t cap)
{
    *out = NULL;
    sp_natsfeed_t *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(why, cap, "out of memory");
        return -ENOMEM;
    }
    f->gateway = gateway;
    f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->ready_mu, NULL);
    pthread_cond_init(&f->ready_cv, NULL);
    for (int i = 0; i < SP_NATSFEED_ANSWERS; i++) {
        f->answer[i].owner = f;
    }
    char tok[SP_INSTANCE_NAME_MAX + 1];
    sp_nats_token(instance, tok, sizeof tok);
    snprintf(f->feed_subj, sizeof f->feed_subj, "sp.%s.events", tok);
    snprintf(f->snap_subj, sizeof f->snap_subj, "sp.%s.snap", tok);
    snprintf(f->ep_events, sizeof f->ep_events, "%s", ep_events);
    snprintf(f->ep_snapshot, sizeof f->ep_snapshot, "%s", ep_snapshot);
    f->buf = malloc(SP_SNAP_MSG_MAX > SP_EVENTS_MSG_MAX ? SP_SNAP_MSG_MAX : SP_EVENTS_MSG_MAX);
    int rc = f->efd < 0 || f->buf == NULL ? -ENOMEM : 0;
    if (rc < 0) {
        snprintf(why, cap, "out of memory");
    } else {
        rc = sp_nats_connect(&f->nc, urls, why, cap);
    }
    if (rc == 0) {
        natsStatus s = natsConnection_Subscribe(&f->sub, f->nc,
                                                gateway ? f->snap_subj : f->feed_subj, s_on_msg, f);
        if (s == NATS_OK && !gateway) {
            s = natsSubscription_SetPendingLimits(f->sub, -1, -1);
        }
        if (s != NATS_OK) {
            snprintf(why, cap, "cannot subscribe to %s: %s", gateway ? f->snap_subj : f->feed_subj,
                     natsStatus_GetText(s));
            rc = -EIO;
        }
    }
    if (rc == 0) {
        sp_zmq_setup();
        if (pthread_create(&f->thread, NULL, s_thread, f) != 0) {
            snprintf(why, cap, "cannot start the NATS feed's thread");
            rc = -EAGAIN;
        } else {
            f->started = true;
            pthread_mutex_lock(&f->ready_mu);
            while (f->ready == 0) {
                pthread_cond_wait(&f->ready_cv, &f->ready_mu);
            }
            pthread_mutex_unlock(&f->ready_mu);
            if (f->ready < 0) {
                rc = f->ready;
                snprintf(why, cap, "cannot %s %s: %s", gateway ? "follow" : "bind", f->ep_events,
                         sp_strerror(rc));
            }
        }
    }
    if (rc < 0) {
        sp_natsfeed_stop(&f);
        return rc;
    }
    *out = f;
    return 0;
}

int sp_natsfeed_gateway(sp_natsfeed_t **out, const char *urls, const char *instance,
                        const char *ep_events, const char *ep_snapshot, char *why, size_t cap)
{
    return s_start(out, true, urls, instance, ep_events, ep_snapshot, why, cap);
}

int sp_natsfeed_bridge(sp_natsfeed_t **out, const char *urls, const char *instance, char *ep_events,
                       char *ep_snapshot, size_t ep_cap, char *why, size_t cap)
{
    static atomic_uint bridges;
    unsigned k = atomic_fetch_add(&bridges, 1);
    snprintf(ep_events, ep_cap, "inproc://sp-natsfeed-%ld-%u-events", (long)getpid(), k);
    snprintf(ep_snapshot, ep_cap, "inproc://sp-natsfeed-%ld-%u-snap", (long)getpid(), k);
    return s_start(out, false, urls, instance, ep_events, ep_snapshot, why, cap);
}

uint64_t sp_natsfeed_dropped(const sp_natsfeed_t *self)
{
    return atomic_load(&self->dropped);
}

uint64_t sp_natsfeed_passed(const sp_natsfeed_t *self)
{
    return atomic_load(&self->passed);
}

void sp_natsfeed_stop(sp_natsfeed_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_natsfeed_t *f = *self_p;
    if (f->started) {
        atomic_store(&f->stop, true);
        uint64_t one = 1;
        if (write(f->efd, &one, sizeof one) < 0) {
            /* the thread wakes at its next tick anyway */
        }
        pthread_join(f->thread, NULL);
    }
    if (f->sub != NULL) {
        natsSubscription_Unsubscribe(f->sub);
        natsSubscription_Destroy(f->sub);
    }
    for (int i = 0; i < SP_NATSFEED_ANSWERS; i++) {
        s_answer_end(&f->answer[i]);
    }
    if (f->nc != NULL) {
        natsConnection_Close(f->nc); /* no callback runs after this */
        natsConnection_Destroy(f->nc);
    }
    s_free_items(s_take_all(f));
    zsock_destroy(&f->follow);
    zsock_destroy(&f->pub);
    zsock_destroy(&f->router);
    if (f->efd >= 0) {
        close(f->efd);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->ready_mu);
    pthread_cond_destroy(&f->ready_cv);
    free(f->buf);
    free(f);
    *self_p = NULL;
}
