/*
 * sp_snapsrv — snapshot answers streamed a few messages per broker turn.
 */
#include "sp_snapsrv.h"
#include "sp_zmq.h"

#include "sp_error.h"
#include "sp_wire.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define S_ID_MAX       32 /* bytes of a routing id */
#define S_BEGIN_MAX    (3 + 2 * SP_WORKERS_MAX)
#define S_REQ_PER_TURN 16

typedef struct {
    bool used;
    uint8_t id[S_ID_MAX];
    size_t id_len;
    uint32_t req;
    bool begun;      /* SNAP_BEGIN sent */
    uint32_t next;   /* next product id to send */
    uint32_t rows;   /* rows sent */
    uint64_t held;   /* held units in those rows (SNAP_END's HELD) */
    unsigned nbegin; /* counters in begin[] */
    sp_counter_t begin[S_BEGIN_MAX];
} s_client_t;

struct sp_snapsrv {
    zsock_t *sock;
    void *raw;
    sp_table_t *table;
    s_client_t client[SP_SNAP_CLIENTS];
    unsigned cursor;
    uint64_t invalid;
    uint64_t served;
    uint8_t msg[SP_SNAP_MSG_MAX];
};

_Static_assert(SP_WIRE_HDR_SIZE + S_BEGIN_MAX * SP_WIRE_COUNTER_SIZE <= SP_SNAP_MSG_MAX,
               "SNAP_BEGIN fits the largest snapshot message");

int sp_snapsrv_new(sp_snapsrv_t **out, const char *endpoint, sp_table_t *table,
                   const sp_curve_keys_t *curve, char *why, size_t cap)
{
    sp_zmq_setup();
    *out = NULL;
    sp_snapsrv_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return -ENOMEM;
    }
    s->table = table;
    s->sock = zsock_new(ZMQ_ROUTER);
    if (s->sock == NULL) {
        free(s);
        snprintf(why, cap, "cannot create the snapshot socket");
        return -ENOMEM;
    }
    s->raw = zsock_resolve(s->sock);
    zsock_set_router_mandatory(s->sock, 1);
    /* requests are a bare header: anything bigger is not one */
    sp_zmq_set_max_frame(s->sock, SP_WIRE_HDR_SIZE);
    sp_zmq_endpoint_opts(s->sock, endpoint);
    if (curve != NULL && strncmp(endpoint, "tcp://", strlen("tcp://")) == 0) {
        sp_curve_set_server(s->sock, curve);
    }
    zsock_set_sndhwm(s->sock, 2 * SP_SNAP_MSGS_PER_TURN);
    zsock_set_linger(s->sock, 0);
    if (zsock_bind(s->sock, "%s", endpoint) < 0) {
        int err = errno;
        snprintf(why, cap, "cannot bind %s: %s", endpoint, zmq_strerror(err));
        zsock_destroy(&s->sock);
        free(s);
        return -err;
    }
    *out = s;
    return 0;
}

void sp_snapsrv_destroy(sp_snapsrv_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    zsock_destroy(&(*self_p)->sock);
    free(*self_p);
    *self_p = NULL;
}

unsigned sp_snapsrv_begin_counters(sp_table_t *table, sp_counter_t *out, unsigned max)
{
    sp_table_hdr_t *h = sp_table_hdr(table);
    unsigned n = 0;
#define S_PUT(ID, IDX, VAL)                                                                        \
    do {                                                                                           \
        if (n < max) {                                                                             \
            out[n++] = (sp_counter_t){.id = (ID), .index = (uint16_t)(IDX), .value = (VAL)};       \
        }                                                                                          \
    } while (0)
    S_PUT(SP_CTR_CAPACITY, 0, h->capacity);
    S_PUT(SP_CTR_PRODUCTS, 0, h->product_count);
    S_PUT(SP_CTR_CREATED_NS, 0, h->created_ns);
    /* the publishers' positions first: every change they cover is in the
     * rows read after this */
    for (unsigned w = 1; w <= SP_WORKERS_MAX; w++) {
        sp_worker_slot_t *slot = &h->worker[w - 1];
        int32_t pid = atomic_load_explicit(&slot->pid, memory_order_acquire);
        uint64_t seq = atomic_load_explicit(&slot->pub_seq, memory_order_acquire);
        if (pid > 0) {
            S_PUT(SP_CTR_W_PID, w, (uint64_t)pid);
            S_PUT(SP_CTR_W_PUB_SEQ, w, seq);
        }
    }
#undef S_PUT
    return n;
}

/* Sends [id][msg]; 0, -EAGAIN (full: try later) or another -errno (gone). */
static int s_send(sp_snapsrv_t *s, const s_client_t *c, size_t len)
{
    if (zmq_send(s->raw, c->id, c->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        return -errno;
    }
    /* the first frame went: ZeroMQ takes the rest of the message */
    return zmq_send(s->raw, s->msg, len, ZMQ_DONTWAIT) < 0 ? -errno : 0;
}

static void s_accept(sp_snapsrv_t *s)
{
    for (int k = 0; k < S_REQ_PER_TURN; k++) {
        uint8_t id[S_ID_MAX + 1], body[SP_WIRE_HDR_SIZE + 1];
        int idn = zmq_recv(s->raw, id, sizeof id, ZMQ_DONTWAIT);
        if (idn < 0) {
            return;
        }
        int more = zsock_rcvmore(s->sock);
        int n = more ? zmq_recv(s->raw, body, sizeof body, ZMQ_DONTWAIT) : -1;
        while (zsock_rcvmore(s->sock)) {
            zmq_recv(s->raw, body, 0, ZMQ_DONTWAIT); /* extra frames: discard */
            n = -1;
        }
        sp_msg_hdr_t h;
        if (n < 0 || idn > S_ID_MAX || (size_t)n > SP_WIRE_HDR_SIZE ||
            sp_wire_check(body, (size_t)n, &h) < 0 || h.kind != SP_MSG_SNAP_REQ) {
            s->invalid++;
            continue;
        }
        s_client_t *c = NULL;
        for (int i = 0; i < SP_SNAP_CLIENTS && c == NULL; i++) {
            c = s->client[i].used ? NULL : &s->client[i];
        }
        if (c == NULL) {
            continue; /* busy: the monitor asks again after its timeout */
        }
        memset(c, 0, sizeof *c);
        c->used = true;
        memcpy(c->id, id, (size_t)idn);
        c->id_len = (size_t)idn;
        c->req = h.batch;
        c->next = 1;
        c->nbegin = sp_snapsrv_begin_counters(s->table, c->begin, S_BEGIN_MAX);
    }
}

/* Sends up to `budget` messages of client c; returns how many it sent. */
static unsigned s_pump(sp_snapsrv_t *s, s_client_t *c, unsigned budget)
{
    uint32_t cap = sp_table_capacity(s->table);
    unsigned sent = 0;
    while (sent < budget) {
        size_t len;
        bool end = false;
        if (!c->begun) {
            for (unsigned i = 0; i < c->nbegin; i++) {
                sp_wire_put_counter(sp_wire_rec(s->msg, SP_MSG_SNAP_BEGIN, i), &c->begin[i]);
            }
            sp_wire_put_hdr(s->msg, SP_MSG_SNAP_BEGIN, c->nbegin, 0, c->req);
            len = sp_wire_msg_size(SP_MSG_SNAP_BEGIN, c->nbegin);
        } else if (c->next <= cap) {
            unsigned k = 0;
            uint64_t held = 0;
            uint32_t id = c->next;
            for (; id <= cap && k < SP_SNAP_ROWS_PER_MSG; id++) {
                sp_product_t p;
                sp_snaprow_t row;
                uint32_t version;
                if (sp_table_read(s->table, id, &p, &version) < 0) {
                    continue;
                }
                const sp_row_t *r = sp_table_row(s->table, id);
                sp_tally_t tl;
                p.stock = sp_row_stock_settled(r, &tl);
                version = tl.version;
                row = (sp_snaprow_t){.id = id,
                                     .stock = p.stock,
                                     .version = version,
                                     .weight_g = p.weight_g,
                                     .expiry = p.expiry,
                                     .initial_stock = r->initial_stock,
                                     .price_cents = p.price_cents,
                                     .sold = tl.sold,
                                     .restocked = tl.restocked};
                memcpy(row.name, p.name, sizeof row.name);
                memcpy(row.category, p.category, sizeof row.category);
                held += tl.held;
                sp_wire_put_snaprow(sp_wire_rec(s->msg, SP_MSG_SNAP_ROWS, k++), &row);
            }
            if (k == 0) {
                c->next = id; /* only absent ids were left */
                continue;
            }
            sp_wire_put_hdr(s->msg, SP_MSG_SNAP_ROWS, k, 0, c->req);
            len = sp_wire_msg_size(SP_MSG_SNAP_ROWS, k);
            int rc = s_send(s, c, len);
            if (rc == -EAGAIN) {
                break; /* rows are read again next turn: fresher, still fine */
            }
            if (rc < 0) {
                c->used = false;
                break;
            }
            c->next = id;
            c->rows += k;
            c->held += held;
            sent++;
            continue;
        } else {
            sp_counter_t rows = {.id = SP_CTR_ROWS, .value = c->rows};
            sp_counter_t held = {.id = SP_CTR_HELD, .value = c->held};
            sp_wire_put_counter(sp_wire_rec(s->msg, SP_MSG_SNAP_END, 0), &rows);
            sp_wire_put_counter(sp_wire_rec(s->msg, SP_MSG_SNAP_END, 1), &held);
            sp_wire_put_hdr(s->msg, SP_MSG_SNAP_END, 2, 0, c->req);
            len = sp_wire_msg_size(SP_MSG_SNAP_END, 2);
            end = true;
        }
        int rc = s_send(s, c, len);
        if (rc == -EAGAIN) {
            break;
        }
        if (rc < 0 || end) {
            s->served += rc == 0;
            c->used = false;
            break;
        }
        c->begun = true;
        sent++;
    }
    return sent;
}

void sp_snapsrv_turn(sp_snapsrv_t *self)
{
    s_accept(self);
    unsigned budget = SP_SNAP_MSGS_PER_TURN;
    for (int k = 0; k < SP_SNAP_CLIENTS && budget > 0; k++) {
        s_client_t *c = &self->client[(self->cursor + (unsigned)k) % SP_SNAP_CLIENTS];
        if (c->used) {
            budget -= s_pump(self, c, budget);
        }
    }
    self->cursor = (self->cursor + 1) % SP_SNAP_CLIENTS;
}

bool sp_snapsrv_busy(const sp_snapsrv_t *self)
{
    for (int i = 0; i < SP_SNAP_CLIENTS; i++) {
        if (self->client[i].used) {
            return true;
        }
    }
    return false;
}

uint64_t sp_snapsrv_invalid(const sp_snapsrv_t *self)
{
    return self->invalid;
}

uint64_t sp_snapsrv_served(const sp_snapsrv_t *self)
{
    return self->served;
}
