/*
 * sp_router — ROUTER/ROUTER load balancer and XSUB/XPUB proxy for the broker.
 *
 * It also keeps the tally of producer sessions per client (sp_router.h,
 * SP_ROUTER_PEER_SESSIONS): a client is named by the connection's
 * Peer-Address (libzmq: ":uid:gid:pid" from SO_PEERCRED over ipc://, the
 * IP address over tcp://); a session is a HELLO at a worker or an id its
 * WELCOME granted, and it ends when the registry could give its slot away.
 */
#include "sp_router.h"
#include "sp_feedguard.h"
#include "sp_zmq.h"

#include "sp_commit.h"
#include "sp_error.h"
#include "sp_events.h"
#include "sp_hello.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_ROUTER_FRAME_MAX       3
#define SP_ROUTER_ID_MAX          32 /* bytes of a routing id (ZeroMQ uses 5) */
#define SP_ROUTER_SEND_TIMEOUT_MS 1000
/* the largest frame each socket's peers legitimately send it */
#define SP_ROUTER_FRONT_MAX        (SP_WIRE_HDR_SIZE + SP_WIRE_MAX_RECORDS * SP_WIRE_ORDER_SIZE)
#define SP_ROUTER_BACK_MAX         (SP_WIRE_HDR_SIZE + SP_WIRE_MAX_RECORDS * SP_WIRE_RESULT_SIZE)
#define SP_ROUTER_SUBSCRIPTION_MAX (1 + SP_WIRE_HDR_SIZE) /* (un)subscribe + a header prefix */
#define SP_ROUTER_PEER_KEY         64                     /* "pid N", "addr IP" */

typedef struct {
    uint8_t id[SP_ROUTER_ID_MAX];
    size_t id_len;
    uint32_t credit;
    uint32_t in_flight;
} sp_rworker_t;

typedef struct {
    uint32_t publisher;
    uint32_t pid; /* incarnation: the header's batch on the event path */
    uint64_t last_seq;
} sp_rpub_t;

/* One client's sessions: the ids its HELLOs were granted. */
typedef struct {
    char key[SP_ROUTER_PEER_KEY]; /* "" when the entry is free */
    uint32_t n;
    uint32_t ids[SP_ROUTER_PEER_SESSIONS];
} sp_rpeer_t;

/* A HELLO at a worker: its WELCOME comes back to routing id `rid`. */
typedef struct {
    uint8_t rid[SP_ROUTER_ID_MAX];
    size_t rid_len; /* 0 when the entry is free */
    uint64_t hello_id;
    uint64_t since_ns;
    unsigned peer;
} sp_rpending_t;

struct sp_router {
    zsock_t *front, *back, *xsub, *xpub;
    sp_feedguard_t *guard; /* what monitors' subscriptions may make us hold */
    bool orders;
    bool accepting;
    bool remote; /* the order front is tcp://: a HELLO's pid means nothing here */
    sp_rworker_t workers[SP_ROUTER_WORKERS_MAX];
    unsigned nworkers;
    unsigned next; /* round-robin cursor */
    sp_rpub_t pubs[SP_ROUTER_WORKERS_MAX];
    unsigned npubs;
    sp_router_stats_t st;
    zmq_msg_t frames[SP_ROUTER_FRAME_MAX];
    sp_table_t *table; /* the registry that says when a session ended; NULL: no bound */
    sp_rpeer_t *peers; /* SP_ROUTER_PEERS_MAX, with the table */
    sp_rpending_t pending[SP_ROUTER_PENDING_MAX];
    unsigned pending_next;
};

/* Options are set before the bind: a listener copies them when it is made,
 * and every connection it accepts later gets that copy.  `largest` is the
 * largest frame peers legitimately send this socket; a tcp:// endpoint is a
 * CURVE server when the broker has keys (`curve`); with `guard` the socket
 * is the monitors' XPUB and gets its guard (sp_feedguard.h). */
static zsock_t *s_bind(int type, const char *ep, size_t largest, int hwm,
                       const sp_curve_keys_t *curve, sp_feedguard_t **guard, char *why, size_t cap)
{
    zsock_t *s = zsock_new(type);
    if (s == NULL) {
        snprintf(why, cap, "cannot create a socket for %s", ep);
        return NULL;
    }
    zsock_set_sndhwm(s, hwm);
    zsock_set_rcvhwm(s, hwm);
    sp_zmq_set_max_frame(s, largest);
    sp_zmq_endpoint_opts(s, ep);
    if (curve != NULL && strncmp(ep, "tcp://", strlen("tcp://")) == 0) {
        sp_curve_set_server(s, curve);
    }
    if (type == ZMQ_XPUB) {
        /* the end-of-stream we publish at shutdown must get out */
        zsock_set_linger(s, SP_ZMQ_PUB_LINGER_MS);
    }
    if (guard != NULL) {
        *guard = sp_feedguard_new(zsock_resolve(s), ep);
        if (*guard == NULL) {
            snprintf(why, cap, "cannot watch %s: %s", ep, zmq_strerror(errno));
            zsock_destroy(&s);
            return NULL;
        }
    }
    if (type == ZMQ_ROUTER) {
        zsock_set_router_mandatory(s, 1);
        zsock_set_sndtimeo(s, SP_ROUTER_SEND_TIMEOUT_MS);
    }
    if (zsock_bind(s, "%s", ep) < 0) {
        snprintf(why, cap, "cannot bind %s: %s", ep, zmq_strerror(errno));
        if (guard != NULL) {
            sp_feedguard_destroy(guard); /* it watches the socket: first */
        }
        zsock_destroy(&s);
        return NULL;
    }
    return s;
}

int sp_router_new(sp_router_t **out, bool orders, const char *ep_front, const char *ep_back,
                  const char *ep_events_in, const char *ep_events, const sp_curve_keys_t *curve,
                  char *why, size_t why_cap)
{
    sp_zmq_setup();
    *out = NULL;
    sp_router_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return -ENOMEM;
    }
    r->orders = orders;
    r->accepting = true;
    r->remote = ep_front != NULL && strncmp(ep_front, "tcp://", strlen("tcp://")) == 0;
    if (orders) {
        /* front: producers' order messages, and per producer what one
         * ignoring its window can park in our memory before it is made to
         * wait (SP_ROUTER_CLIENT_HWM); back: workers' results and credit
         * (the routing-id frame in front of them is smaller) */
        r->front = s_bind(ZMQ_ROUTER, ep_front, SP_ROUTER_FRONT_MAX, SP_ROUTER_CLIENT_HWM, curve,
                          NULL, why, why_cap);
        r->back = r->front ? s_bind(ZMQ_ROUTER, ep_back, SP_ROUTER_BACK_MAX, SP_ZMQ_HWM, curve,
                                    NULL, why, why_cap)
                           : NULL;
        if (r->back == NULL) {
            goto fail;
        }
    }
    /* events-in: publishers' event batches and heartbeats */
    r->xsub =
        s_bind(ZMQ_XSUB, ep_events_in, SP_EVENTS_MSG_MAX, SP_ZMQ_HWM, curve, NULL, why, why_cap);
    /* events: what monitors send is subscriptions (one byte and a prefix),
     * which never go further than the guard (publishers send us everything,
     * below, whatever the monitors subscribe to); a stalled monitor may hold SP_ROUTER_MONITOR_HWM
     * messages here, no more: past that it loses messages (and sees the gap) while the shop goes on
     */
    r->xpub = r->xsub ? s_bind(ZMQ_XPUB, ep_events, SP_ROUTER_SUBSCRIPTION_MAX,
                               SP_ROUTER_MONITOR_HWM, curve, &r->guard, why, why_cap)
                      : NULL;
    if (r->xpub == NULL) {
        goto fail;
    }
    /* subscribe upstream to everything, so events reach us even with no monitor */
    uint8_t all = 1;
    zmq_send(zsock_resolve(r->xsub), &all, 1, 0);
    for (int i = 0; i < SP_ROUTER_FRAME_MAX; i++) {
        zmq_msg_init(&r->frames[i]);
    }
    *out = r;
    return 0;
fail:
    sp_feedguard_destroy(&r->guard);
    zsock_destroy(&r->front);
    zsock_destroy(&r->back);
    zsock_destroy(&r->xsub);
    zsock_destroy(&r->xpub);
    free(r);
    return -EADDRINUSE;
}

void sp_router_destroy(sp_router_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_router_t *r = *self_p;
    for (int i = 0; i < SP_ROUTER_FRAME_MAX; i++) {
        zmq_msg_close(&r->frames[i]);
    }
    sp_feedguard_destroy(&r->guard);
    zsock_destroy(&r->front);
    zsock_destroy(&r->back);
    zsock_destroy(&r->xsub);
    zsock_destroy(&r->xpub);
    free(r->peers);
    free(r);
    *self_p = NULL;
}

void sp_router_sessions(sp_router_t *self, sp_table_t *table)
{
    if (table != NULL && self->peers == NULL) {
        self->peers = calloc(SP_ROUTER_PEERS_MAX, sizeof *self->peers);
    }
    self->table = self->peers != NULL ? table : NULL;
}

/* The client message `m` came from: "pid N" over ipc:// (*pid = N, from
 * the kernel's peer credentials), "addr IP" over tcp:// (*pid = 0).  False
 * when the transport names nobody (inproc://). */
static bool s_peer_key(zmq_msg_t *m, char *key, size_t cap, pid_t *pid)
{
    const char *a = zmq_msg_gets(m, "Peer-Address");
    *pid = 0;
    if (a == NULL || a[0] == '\0') {
        return false;
    }
    if (a[0] == ':') {
        long p = strtol(strrchr(a, ':') + 1, NULL, 10);
        if (p <= 0) {
            return false;
        }
        *pid = (pid_t)p;
        snprintf(key, cap, "pid %ld", p);
        return true;
    }
    snprintf(key, cap, "addr %s", a);
    return true;
}

/* The tally of `key`, made when new (the first free entry, or one holding
 * nothing any more); NULL when every entry holds sessions. */
static sp_rpeer_t *s_peer(sp_router_t *r, const char *key)
{
    sp_rpeer_t *spare = NULL;
    for (unsigned i = 0; i < SP_ROUTER_PEERS_MAX; i++) {
        sp_rpeer_t *p = &r->peers[i];
        if (strcmp(p->key, key) == 0) {
            return p;
        }
        if (spare == NULL && (p->key[0] == '\0' || p->n == 0)) {
            spare = p;
        }
    }
    if (spare != NULL) {
        snprintf(spare->key, sizeof spare->key, "%s", key);
        spare->n = 0;
    }
    return spare;
}

/* Forgets the peer's sessions whose slot could be given away now. */
static void s_peer_prune(sp_router_t *r, sp_rpeer_t *p)
{
    for (uint32_t i = 0; i < p->n;) {
        if (sp_commit_holds_slot(r->table, p->ids[i])) {
            i++;
        } else {
            p->ids[i] = p->ids[--p->n];
        }
    }
}

/* HELLOs of peer `idx` at workers, not answered yet (nor too old). */
static unsigned s_peer_pending(sp_router_t *r, unsigned idx, uint64_t now)
{
    unsigned n = 0;
    for (unsigned i = 0; i < SP_ROUTER_PENDING_MAX; i++) {
        sp_rpending_t *q = &r->pending[i];
        if (q->rid_len != 0 && now - q->since_ns > (uint64_t)SP_ROUTER_PENDING_MS * SP_NS_PER_MS) {
            q->rid_len = 0;
        }
        n += q->rid_len != 0 && q->peer == idx;
    }
    return n;
}

/* A HELLO from a client: false when that client holds as many sessions as
 * one may (then the caller answers peer_full); else it is remembered as
 * pending.  Over ipc:// the HELLO's pid becomes the sender's own. */
static bool s_hello_admit(sp_router_t *r, zmq_msg_t *id, zmq_msg_t *body, sp_hello_t *hello)
{
    char key[SP_ROUTER_PEER_KEY];
    pid_t pid = 0;
    if (!s_peer_key(body, key, sizeof key, &pid)) {
        return true;
    }
    if (pid > 0 && hello->pid != 0) {
        hello->pid = (uint32_t)pid; /* a client registers its own process, no other */
        sp_wire_put_hello(sp_wire_rec(zmq_msg_data(body), SP_MSG_HELLO, 0), hello);
    }
    sp_rpeer_t *p = r->table != NULL ? s_peer(r, key) : NULL;
    if (p == NULL) {
        return true; /* no bound asked for, or more clients than entries */
    }
    unsigned idx = (unsigned)(p - r->peers);
    uint64_t now = sp_now_ns();
    s_peer_prune(r, p);
    if (p->n + s_peer_pending(r, idx, now) >= SP_ROUTER_PEER_SESSIONS) {
        return false;
    }
    sp_rpending_t *q = &r->pending[r->pending_next];
    r->pending_next = (r->pending_next + 1) % SP_ROUTER_PENDING_MAX;
    q->rid_len = zmq_msg_size(id);
    memcpy(q->rid, zmq_msg_data(id), q->rid_len);
    q->hello_id = hello->hello_id;
    q->since_ns = now;
    q->peer = idx;
    return true;
}

/* A WELCOME going back to routing id `rid`: the pending HELLO it answers
 * becomes a session of its client when it granted an id. */
static void s_hello_done(sp_router_t *r, zmq_msg_t *rid, const void *msg, size_t len)
{
    sp_welcome_t w;
    if (r->table == NULL || sp_welcome_decode(msg, len, &w) < 0) {
        return;
    }
    size_t n = zmq_msg_size(rid);
    for (unsigned i = 0; i < SP_ROUTER_PENDING_MAX; i++) {
        sp_rpending_t *q = &r->pending[i];
        if (q->rid_len != n || q->hello_id != w.hello_id ||
            memcmp(q->rid, zmq_msg_data(rid), n) != 0) {
            continue;
        }
        q->rid_len = 0;
        sp_rpeer_t *p = &r->peers[q->peer];
        bool known = false;
        for (uint32_t k = 0; k < p->n; k++) {
            known = known || p->ids[k] == w.producer_id;
        }
        if (w.status == SP_HELLO_OK && !known && p->n < SP_ROUTER_PEER_SESSIONS) {
            p->ids[p->n++] = w.producer_id;
        }
        return;
    }
}

/* Answers a HELLO past its client's limit: peer_full, from the router. */
static void s_hello_refuse(sp_router_t *r, zmq_msg_t *id, const sp_hello_t *hello)
{
    uint8_t out[SP_WELCOME_MSG_MAX];
    int n = sp_hello_refuse(hello, SP_HELLO_PEER_FULL, out);
    r->st.peer_refused++;
    /* never waits: a client that does not read loses its refusal */
    if (zmq_send(zsock_resolve(r->front), zmq_msg_data(id), zmq_msg_size(id),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(zsock_resolve(r->front), out, (size_t)n, ZMQ_DONTWAIT) < 0) {
        r->st.drops_results++;
    }
}

/* Reads one whole multipart message into r->frames; returns the frame count,
 * or -EPROTO (too many frames; the rest is discarded) or -errno. */
static int s_recv_frames(sp_router_t *r, void *sock)
{
    int n = 0;
    for (;;) {
        zmq_msg_t *m = n < SP_ROUTER_FRAME_MAX ? &r->frames[n] : NULL;
        zmq_msg_t scratch;
        if (m == NULL) {
            zmq_msg_init(&scratch);
            m = &scratch;
        }
        if (zmq_msg_recv(m, sock, ZMQ_DONTWAIT) < 0) {
            if (m == &scratch) {
                zmq_msg_close(&scratch);
            }
            return -errno;
        }
        int more = zmq_msg_more(m);
        if (m == &scratch) {
            zmq_msg_close(&scratch);
        }
        n++;
        if (!more) {
            return n > SP_ROUTER_FRAME_MAX ? -EPROTO : n;
        }
    }
}

static sp_rworker_t *s_worker(sp_router_t *r, zmq_msg_t *id)
{
    size_t len = zmq_msg_size(id);
    if (len == 0 || len > SP_ROUTER_ID_MAX) {
        return NULL;
    }
    for (unsigned i = 0; i < r->nworkers; i++) {
        if (r->workers[i].id_len == len && memcmp(r->workers[i].id, zmq_msg_data(id), len) == 0) {
            return &r->workers[i];
        }
    }
    if (r->nworkers == SP_ROUTER_WORKERS_MAX) {
        return NULL;
    }
    sp_rworker_t *w = &r->workers[r->nworkers++];
    memset(w, 0, sizeof *w);
    memcpy(w->id, zmq_msg_data(id), len);
    w->id_len = len;
    return w;
}

static sp_rworker_t *s_pick_worker(sp_router_t *r)
{
    for (unsigned k = 0; k < r->nworkers; k++) {
        unsigned i = (r->next + k) % r->nworkers;
        if (r->workers[i].credit > 0) {
            r->next = (i + 1) % r->nworkers;
            return &r->workers[i];
        }
    }
    return NULL;
}

static bool s_any_credit(const sp_router_t *r)
{
    for (unsigned i = 0; i < r->nworkers; i++) {
        if (r->workers[i].credit > 0) {
            return true;
        }
    }
    return false;
}

/* Sends [a][b] or [a][b][c]; `flags` ZMQ_DONTWAIT: fail at once (EAGAIN)
 * when the peer's pipe is full, else wait up to the socket's send timeout.
 * With ROUTER_MANDATORY a full pipe refuses the first frame, so nothing
 * half sent is left behind. */
static int s_send_frames(void *sock, int flags, const void *a, size_t alen, const void *b,
                         size_t blen, const void *c, size_t clen)
{
    if (zmq_send(sock, a, alen, ZMQ_SNDMORE | flags) < 0) {
        return -errno;
    }
    if (c != NULL && zmq_send(sock, b, blen, ZMQ_SNDMORE | flags) < 0) {
        return -errno;
    }
    const void *last = c ? c : b;
    size_t last_len = c ? clen : blen;
    return zmq_send(sock, last, last_len, flags) < 0 ? -errno : 0;
}

/* front: [producer id][orders] -> back: [worker id][producer id][orders] */
static void s_on_front(sp_router_t *r)
{
    int n = s_recv_frames(r, zsock_resolve(r->front));
    if (n < 0) {
        if (n != -EAGAIN) {
            r->st.invalid_msgs++;
        }
        return;
    }
    sp_msg_hdr_t h;
    if (n != 2 || zmq_msg_size(&r->frames[0]) > SP_ROUTER_ID_MAX ||
        sp_wire_check(zmq_msg_data(&r->frames[1]), zmq_msg_size(&r->frames[1]), &h) < 0 ||
        (h.kind != SP_MSG_ORDERS && (h.kind != SP_MSG_HELLO || h.count != 1))) {
        r->st.invalid_msgs++;
        return;
    }
    if (h.kind == SP_MSG_HELLO) {
        sp_hello_t hello;
        uint8_t *rec = sp_wire_rec(zmq_msg_data(&r->frames[1]), SP_MSG_HELLO, 0);
        sp_wire_get_hello(rec, &hello);
        if (r->remote) {
            /* a pid from another host must not tie the producer's
             * registration to whatever process has that pid here: the
             * worker registers none */
            hello.pid = 0;
            sp_wire_put_hello(rec, &hello);
        }
        if (!s_hello_admit(r, &r->frames[0], &r->frames[1], &hello)) {
            s_hello_refuse(r, &r->frames[0], &hello);
            return;
        }
    }
    sp_rworker_t *w = s_pick_worker(r);
    if (w == NULL) {
        r->st.drops_orders++;
        return;
    }
    int rc = s_send_frames(zsock_resolve(r->back), 0, w->id, w->id_len, zmq_msg_data(&r->frames[0]),
                           zmq_msg_size(&r->frames[0]), zmq_msg_data(&r->frames[1]),
                           zmq_msg_size(&r->frames[1]));
    if (rc < 0) {
        /* the worker is gone (EHOSTUNREACH) or wedged: stop handing it work */
        w->credit = 0;
        r->st.drops_orders++;
        return;
    }
    w->credit--;
    w->in_flight++;
    r->st.in_flight++;
    r->st.orders_msgs++;
}

/* back: [worker id][credit] or [worker id][producer id][results] */
static void s_on_back(sp_router_t *r)
{
    int n = s_recv_frames(r, zsock_resolve(r->back));
    if (n < 2) {
        if (n != -EAGAIN) {
            r->st.invalid_msgs++;
        }
        return;
    }
    sp_rworker_t *w = s_worker(r, &r->frames[0]);
    zmq_msg_t *body = &r->frames[n - 1];
    sp_msg_hdr_t h;
    if (w == NULL || sp_wire_check(zmq_msg_data(body), zmq_msg_size(body), &h) < 0) {
        r->st.invalid_msgs++;
        return;
    }
    if (n == 2 && h.kind == SP_MSG_CREDIT) {
        /* a first CREDIT announces the worker; CREDIT 1 after an order
         * message returns that message's credit */
        if (h.count == 1 && w->in_flight > 0) {
            w->in_flight--;
            r->st.in_flight--;
        }
        w->credit += h.count;
        return;
    }
    if (n != 3 || (h.kind != SP_MSG_RESULTS && h.kind != SP_MSG_WELCOME)) {
        r->st.invalid_msgs++;
        return;
    }
    if (w->in_flight > 0) {
        w->in_flight--;
        r->st.in_flight--;
    }
    w->credit++;
    if (h.kind == SP_MSG_WELCOME) {
        s_hello_done(r, &r->frames[1], zmq_msg_data(body), zmq_msg_size(body));
    }
    /* never wait for a producer: one that does not read (its pipe full at
     * SP_ROUTER_CLIENT_HWM) would stall every worker's results behind it;
     * its result is a counted drop, its orders stay applied and recorded */
    int rc =
        s_send_frames(zsock_resolve(r->front), ZMQ_DONTWAIT, zmq_msg_data(&r->frames[1]),
                      zmq_msg_size(&r->frames[1]), zmq_msg_data(body), zmq_msg_size(body), NULL, 0);
    if (rc < 0) {
        r->st.drops_results++;
    } else {
        r->st.results_msgs++;
    }
}

static sp_rpub_t *s_pub(sp_router_t *r, uint32_t publisher)
{
    for (unsigned i = 0; i < r->npubs; i++) {
        if (r->pubs[i].publisher == publisher) {
            return &r->pubs[i];
        }
    }
    if (r->npubs == SP_ROUTER_WORKERS_MAX) {
        return NULL;
    }
    sp_rpub_t *p = &r->pubs[r->npubs++];
    p->publisher = publisher;
    p->pid = 0;
    p->last_seq = 0;
    return p;
}

/* Counts events and gaps per publisher (a restarted publisher, a new pid,
 * starts again from 1). */
static void s_count_events(sp_router_t *r, const void *data, size_t len)
{
    sp_msg_hdr_t h;
    if (sp_wire_check(data, len, &h) < 0) {
        r->st.invalid_msgs++;
        return;
    }
    if (h.sender == 0) {
        return; /* our own messages do not come this way; a fake one is not counted */
    }
    sp_rpub_t *p = s_pub(r, h.sender);
    if (p == NULL || h.count == 0) {
        return;
    }
    uint64_t first, last;
    if (h.kind == SP_MSG_EVENTS) {
        sp_event_t e;
        sp_wire_get_event(sp_wire_crec(data, SP_MSG_EVENTS, 0), &e);
        first = e.pub_seq;
        sp_wire_get_event(sp_wire_crec(data, SP_MSG_EVENTS, h.count - 1u), &e);
        last = e.pub_seq;
        r->st.events += h.count;
    } else if (h.kind == SP_MSG_HEARTBEAT) {
        sp_heartbeat_t hb;
        sp_wire_get_heartbeat(sp_wire_crec(data, SP_MSG_HEARTBEAT, 0), &hb);
        first = hb.pub_seq + 1; /* nothing new is expected */
        last = hb.pub_seq;
    } else {
        return;
    }
    if (h.batch != p->pid) {
        p->pid = h.batch;
        p->last_seq = 0;
    }
    if (first > p->last_seq + 1) {
        r->st.event_gaps += first - p->last_seq - 1;
    }
    if (last > p->last_seq) {
        p->last_seq = last;
    }
}

/* Publishers' messages to the monitors (their subscriptions stay with the
 * guard: sp_feedguard_on_subscriptions). */
static void s_proxy(sp_router_t *r, zsock_t *from, zsock_t *to, bool count)
{
    void *src = zsock_resolve(from);
    void *dst = zsock_resolve(to);
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, src, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return;
    }
    int more = zmq_msg_more(&m);
    if (count && !more) {
        s_count_events(r, zmq_msg_data(&m), zmq_msg_size(&m));
        r->st.events_msgs++;
    }
    /* XPUB never blocks: a slow monitor loses messages (it sees the gap) */
    zmq_msg_send(&m, dst, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    zmq_msg_close(&m);
}

int sp_router_poll(sp_router_t *self, int timeout_ms)
{
    zmq_pollitem_t items[5];
    int n = 0;
    int i_xsub = n;
    items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(self->xsub), .events = ZMQ_POLLIN};
    int i_xpub = n;
    items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(self->xpub), .events = ZMQ_POLLIN};
    int i_guard = n;
    items[n++] = (zmq_pollitem_t){.socket = sp_feedguard_sock(self->guard), .events = ZMQ_POLLIN};
    int i_back = -1, i_front = -1;
    if (self->orders) {
        i_back = n;
        items[n++] = (zmq_pollitem_t){.socket = zsock_resolve(self->back), .events = ZMQ_POLLIN};
        if (self->accepting && s_any_credit(self)) {
            i_front = n;
            items[n++] =
                (zmq_pollitem_t){.socket = zsock_resolve(self->front), .events = ZMQ_POLLIN};
        }
    }
    int rc = zmq_poll(items, n, timeout_ms);
    if (rc < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    /* bounded bursts per turn keep every path moving */
    const int burst = 64;
    for (int k = 0; k < burst && (items[i_xsub].revents & ZMQ_POLLIN); k++) {
        s_proxy(self, self->xsub, self->xpub, true);
        if (!(zsock_events(self->xsub) & ZMQ_POLLIN)) {
            break;
        }
    }
    if (items[i_guard].revents & ZMQ_POLLIN) {
        sp_feedguard_on_events(self->guard);
    }
    if (items[i_xpub].revents & ZMQ_POLLIN) {
        sp_feedguard_on_subscriptions(self->guard, burst * 16);
    }
    if (i_back >= 0) {
        for (int k = 0; k < burst && (items[i_back].revents & ZMQ_POLLIN); k++) {
            s_on_back(self);
            if (!(zsock_events(self->back) & ZMQ_POLLIN)) {
                break;
            }
        }
    }
    if (i_front >= 0) {
        for (int k = 0; k < burst && (items[i_front].revents & ZMQ_POLLIN); k++) {
            if (!s_any_credit(self)) {
                break;
            }
            s_on_front(self);
            if (!(zsock_events(self->front) & ZMQ_POLLIN)) {
                break;
            }
        }
    }
    return 0;
}

void sp_router_accept(sp_router_t *self, bool on)
{
    self->accepting = on;
}

int sp_router_publish(sp_router_t *self, const void *msg, size_t len)
{
    return zmq_send(zsock_resolve(self->xpub), msg, len, ZMQ_DONTWAIT) < 0 ? -errno : 0;
}

void sp_router_stats(const sp_router_t *self, sp_router_stats_t *out)
{
    *out = self->st;
}

void sp_router_worker_gone(sp_router_t *self, uint32_t worker_id, pid_t pid)
{
    char rid[SP_ROUTER_ID_MAX];
    sp_zmq_worker_rid(worker_id, pid, rid, sizeof rid);
    size_t len = strlen(rid);
    for (unsigned i = 0; self != NULL && i < self->nworkers; i++) {
        sp_rworker_t *w = &self->workers[i];
        if (w->id_len == len && memcmp(w->id, rid, len) == 0) {
            self->st.in_flight -= w->in_flight;
            self->workers[i] = self->workers[--self->nworkers];
            self->next = 0;
            return;
        }
    }
}
