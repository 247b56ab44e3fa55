/*
 * sp_feedguard — bounds what monitors' subscriptions make the broker hold.
 */
#include "sp_feedguard.h"
#include "sp_zmq.h"

#include "sp_log.h"

#include <errno.h>
#include <linux/tcp.h> /* TCP_INFO with tcpi_bytes_received */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <czmq.h>

/* subscriptions read between two checks of the tcp connections' counts */
#define S_TCP_CHECK_EVERY 8

typedef struct {
    int fd;
    pid_t pid; /* ipc: the client process (SO_PEERCRED); 0 over tcp */
    struct sockaddr_storage local;
    socklen_t local_len;
} s_peer_t;

typedef struct {
    pid_t pid;
    unsigned subs;
} s_sender_t;

struct sp_feedguard {
    void *xpub;
    void *mon; /* PAIR: the XPUB's connection events */
    bool tcp;
    s_peer_t peers[SP_FEEDGUARD_PEERS_MAX];
    unsigned npeers;
    s_sender_t senders[SP_FEEDGUARD_PEERS_MAX];
    unsigned nsenders;
    sp_feedguard_stats_t st;
};

sp_feedguard_t *sp_feedguard_new(void *xpub, const char *endpoint)
{
    sp_feedguard_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return NULL;
    }
    g->xpub = xpub;
    g->tcp = strncmp(endpoint, "tcp://", strlen("tcp://")) == 0;
    int manual = 1;
    zmq_setsockopt(xpub, ZMQ_XPUB_MANUAL, &manual, sizeof manual);
    /* a subscription bigger than this closes its connection before libzmq
     * adds it to its trie (a node per byte); over tcp it leaves room for a
     * CURVE handshake's commands */
    int64_t max = g->tcp ? SP_FEEDGUARD_TCP_MSG_MAX : SP_FEEDGUARD_IPC_MSG_MAX;
    zmq_setsockopt(xpub, ZMQ_MAXMSGSIZE, &max, sizeof max);
    /* monitors send us subscriptions only: a short inbound queue per pipe
     * bounds what libzmq reads ahead of us */
    int hwm = SP_FEEDGUARD_SUBS_MAX;
    zmq_setsockopt(xpub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://sp-feedguard-%p", (void *)g);
    void *ctx = zsys_init();
    g->mon = ctx ? zmq_socket(ctx, ZMQ_PAIR) : NULL;
    if (g->mon == NULL ||
        zmq_socket_monitor(xpub, ep, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) < 0 ||
        zmq_connect(g->mon, ep) < 0) {
        int err = errno;
        if (g->mon != NULL) {
            zmq_close(g->mon);
        }
        free(g);
        errno = err ? err : ENOMEM;
        return NULL;
    }
    return g;
}

void sp_feedguard_destroy(sp_feedguard_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_feedguard_t *g = *self_p;
    zmq_socket_monitor(g->xpub, NULL, 0);
    int linger = 0;
    zmq_setsockopt(g->mon, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(g->mon);
    free(g);
    *self_p = NULL;
}

void *sp_feedguard_sock(sp_feedguard_t *self)
{
    return self->mon;
}

static s_peer_t *s_peer(sp_feedguard_t *g, int fd)
{
    for (unsigned i = 0; i < g->npeers; i++) {
        if (g->peers[i].fd == fd) {
            return &g->peers[i];
        }
    }
    return NULL;
}

/* Shuts a connection down once its fd is checked to still be that
 * connection: libzmq closes and may reuse an fd before we read its event. */
static void s_cut(sp_feedguard_t *g, s_peer_t *p, const char *why)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(p->fd, (struct sockaddr *)&local, &len) < 0 || len != p->local_len ||
        memcmp(&local, &p->local, len) != 0) {
        return;
    }
    if (!g->tcp) {
        struct ucred cred;
        socklen_t clen = sizeof cred;
        if (getsockopt(p->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.pid != p->pid) {
            return;
        }
    }
    if (g->tcp) {
        /* connect(AF_UNSPEC) drops the connection with what the kernel
         * still holds from it (shutdown would leave megabytes of a flood
         * for libzmq to read, decode and add to its trie) */
        struct sockaddr none = {.sa_family = AF_UNSPEC};
        if (connect(p->fd, &none, sizeof none) < 0) {
            shutdown(p->fd, SHUT_RDWR);
        }
    } else {
        shutdown(p->fd, SHUT_RDWR);
    }
    g->st.cut++;
    if ((g->st.cut & (g->st.cut - 1)) == 0) { /* the 1st, 2nd, 4th, ... */
        sp_warn("cut off a monitor connection (%s%d): %s (%llu so far)", g->tcp ? "fd " : "pid ",
                g->tcp ? p->fd : (int)p->pid, why, (unsigned long long)g->st.cut);
    }
}

static void s_on_accepted(sp_feedguard_t *g, int fd)
{
    s_peer_t *p = s_peer(g, fd); /* a stale entry: the fd was reused */
    if (p == NULL && g->npeers < SP_FEEDGUARD_PEERS_MAX) {
        p = &g->peers[g->npeers++];
    }
    s_peer_t scratch;
    bool full = p == NULL;
    if (full) {
        p = &scratch;
    }
    memset(p, 0, sizeof *p);
    p->fd = fd;
    p->local_len = sizeof p->local;
    if (getsockname(fd, (struct sockaddr *)&p->local, &p->local_len) < 0) {
        p->local_len = 0;
    }
    if (!g->tcp) {
        struct ucred cred;
        socklen_t clen = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
            p->pid = cred.pid;
        }
    }
    if (full) {
        s_cut(g, p, "too many monitor connections");
    }
}

static void s_on_disconnected(sp_feedguard_t *g, int fd)
{
    s_peer_t *p = s_peer(g, fd);
    if (p != NULL) {
        *p = g->peers[--g->npeers];
    }
}

void sp_feedguard_on_events(sp_feedguard_t *self)
{
    for (;;) {
        zmq_msg_t ev, ep;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t what = 0;
        int32_t value = -1;
        if (zmq_msg_size(&ev) == sizeof what + sizeof value) {
            memcpy(&what, zmq_msg_data(&ev), sizeof what);
            memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + sizeof what, sizeof value);
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&ep);
            if (zmq_msg_recv(&ep, self->mon, 0) < 0) {
                more = false;
            } else {
                more = zmq_msg_more(&ep);
            }
            zmq_msg_close(&ep);
        }
        if (what == ZMQ_EVENT_ACCEPTED && value >= 0) {
            s_on_accepted(self, value);
        } else if (what == ZMQ_EVENT_DISCONNECTED && value >= 0) {
            s_on_disconnected(self, value);
        }
    }
}

/* The sender's pid from an ipc message's Peer-Address ("...:UID:GID:PID"). */
static pid_t s_sender_pid(zmq_msg_t *m)
{
    const char *addr = zmq_msg_gets(m, "Peer-Address");
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (colon == NULL) {
        return 0;
    }
    char *end = NULL;
    long pid = strtol(colon + 1, &end, 10);
    return end != colon + 1 && *end == '\0' && pid > 0 ? (pid_t)pid : 0;
}

static s_sender_t *s_sender(sp_feedguard_t *g, pid_t pid)
{
    for (unsigned i = 0; i < g->nsenders; i++) {
        if (g->senders[i].pid == pid) {
            return &g->senders[i];
        }
    }
    /* a free slot, or one whose process has no connection left */
    for (unsigned i = 0; i < g->nsenders; i++) {
        bool live = false;
        for (unsigned k = 0; k < g->npeers && !live; k++) {
            live = g->peers[k].pid == g->senders[i].pid;
        }
        if (!live) {
            g->senders[i] = (s_sender_t){.pid = pid};
            return &g->senders[i];
        }
    }
    if (g->nsenders == SP_FEEDGUARD_PEERS_MAX) {
        return NULL;
    }
    g->senders[g->nsenders] = (s_sender_t){.pid = pid};
    return &g->senders[g->nsenders++];
}

static void s_count_ipc(sp_feedguard_t *g, pid_t pid)
{
    s_sender_t *s = s_sender(g, pid);
    if (s == NULL || ++s->subs <= SP_FEEDGUARD_SUBS_MAX) {
        return;
    }
    s->subs = 0; /* its next connection starts afresh (and is cut again) */
    for (unsigned i = 0; i < g->npeers; i++) {
        if (g->peers[i].pid == pid) {
            s_cut(g, &g->peers[i], "too many subscriptions");
        }
    }
}

static void s_check_tcp(sp_feedguard_t *g)
{
    for (unsigned i = 0; i < g->npeers; i++) {
        struct tcp_info ti;
        socklen_t len = sizeof ti;
        memset(&ti, 0, sizeof ti);
        if (getsockopt(g->peers[i].fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
            ti.tcpi_bytes_received > SP_FEEDGUARD_TCP_RX_MAX) {
            s_cut(g, &g->peers[i], "sent too much");
        }
    }
}

void sp_feedguard_on_subscriptions(sp_feedguard_t *self, int max)
{
    /* connection events first: a new connection's first subscriptions
     * may already be here */
    sp_feedguard_on_events(self);
    for (int k = 0; k < max; k++) {
        /* every receive lets libzmq read more of a connection into its trie
         * (a node per prefix byte): over tcp, cut a flood before that */
        if (self->tcp && k % S_TCP_CHECK_EVERY == 0) {
            s_check_tcp(self);
        }
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->xpub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        const uint8_t *d = zmq_msg_data(&m);
        if (zmq_msg_size(&m) >= 1 && d[0] == 1) {
            /* whatever the prefix, the pipe gets the whole feed, held once */
            zmq_setsockopt(self->xpub, ZMQ_SUBSCRIBE, "", 0);
            self->st.subscriptions++;
            pid_t pid = self->tcp ? 0 : s_sender_pid(&m);
            if (pid > 0) {
                s_count_ipc(self, pid);
            }
        }
        /* an unsubscription leaves the pipe subscribed until it goes (its
         * SUB socket filters); anything else is not ours to forward */
        zmq_msg_close(&m);
    }
}

void sp_feedguard_stats(const sp_feedguard_t *self, sp_feedguard_stats_t *out)
{
    *out = self->st;
}
