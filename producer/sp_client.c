/*
 * sp_client — a producer's connection to an instance (see sp_client.h).
 *
 * The hand-shake is s_locate (where), s_open_link (a link without an id),
 * s_hello (who we are, what the path carries) and the fit check, in that
 * order: what a producer has to learn before its first order, in one place.
 */
#include "sp_client.h"

#include "sp_commit.h"
#include "sp_contact.h"
#include "sp_curve.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_table.h"
#include "sp_tcp.h"
#include "sp_time.h"
#include "sp_transport.h"
#include "sp_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <unistd.h>

#define S_LOCATE_POLL_MS 20 /* how often a client looks for the contact file */

/* Where the instance is and how to talk to it. */
typedef struct {
    const sp_transport_t *transport;
    char orders[SP_ENDPOINT_MAX];
    char snapshot[SP_ENDPOINT_MAX];
    char server_key[SP_CURVE_KEY_TXT];
    bool remote; /* over --connect: the broker's pid means nothing here */
} s_where_t;

struct sp_client {
    sp_client_cfg_t cfg;
    sp_names_t names; /* the link keeps a pointer to them */
    s_where_t where;
    sp_link_t *link;
    sp_welcome_t welcome;
    uint32_t producer_id;
    uint8_t *msg;
    size_t msg_cap;
    uint8_t *in;
    size_t in_cap;
    sp_curve_keys_t curve; /* --cert, when the instance uses CURVE */
    bool curve_used;
    uint32_t *ids; /* product ids, once asked for */
    uint32_t nids;
};

/* --connect: the orders (and snapshot) endpoints from the broker's --tcp
 * address, its key from --server-cert. */
static int s_locate_remote(const sp_client_cfg_t *cfg, s_where_t *w, char *why, size_t cap)
{
    /* the servers of a transport of their own (nats://): orders go there,
     * and nothing else does (no snapshot service: product ids come from
     * the WELCOME) */
    w->transport = sp_transport_by_scheme(cfg->connect);
    if (w->transport != NULL) {
        w->remote = true;
        if (snprintf(w->orders, sizeof w->orders, "%s", cfg->connect) >= (int)sizeof w->orders) {
            snprintf(why, cap, "--connect: the server list is longer than %d bytes",
                     SP_ENDPOINT_MAX - 1);
            return SP_E_USAGE;
        }
        return 0;
    }
    w->transport = sp_transport_find("zmq"); /* the one that crosses hosts */
    /* as the broker's --tcp takes it (PORT, HOST:PORT, tcp://HOST:PORT);
     * an in-process broker's inproc:// (or an ipc://) endpoint as it is */
    w->remote = strncmp(cfg->connect, "inproc://", strlen("inproc://")) != 0 &&
                strncmp(cfg->connect, "ipc://", strlen("ipc://")) != 0;
    if (w->remote) {
        sp_tcp_addr_t a;
        int rc = sp_tcp_parse("--connect", cfg->connect, &a, why, cap);
        if (rc < 0) {
            return rc;
        }
        sp_tcp_endpoint(&a, false, SP_TCP_ORDERS, w->orders, sizeof w->orders);
        sp_tcp_endpoint(&a, false, SP_TCP_SNAPSHOT, w->snapshot, sizeof w->snapshot);
    } else {
        snprintf(w->orders, sizeof w->orders, "%s", cfg->connect);
        snprintf(w->snapshot, sizeof w->snapshot, "%s", cfg->snapshot ? cfg->snapshot : "");
    }
    if (cfg->server_cert != NULL) {
        return sp_curve_load_public(cfg->server_cert, w->server_key, why, cap);
    }
    return 0;
}

/* On this host: the broker's contact file, once it is ready. */
static int s_locate_local(const sp_names_t *names, s_where_t *w, char *why, size_t cap)
{
    uint64_t deadline = sp_now_ns() + (uint64_t)SP_CLIENT_READY_MS * SP_NS_PER_MS;
    sp_contact_t c;
    int rc;
    while ((rc = sp_contact_read(names, &c, why, cap)) == -ENOENT && sp_now_ns() < deadline) {
        /* another user's instance: its run directory is theirs, not ours to
         * wait for */
        char path[SP_PATH_MAX + 16];
        snprintf(path, sizeof path, "/dev/shm%s", names->table);
        struct stat st;
        if (stat(path, &st) == 0 && st.st_uid != geteuid()) {
            char user[64];
            sp_user_name(st.st_uid, user, sizeof user);
            snprintf(why, cap,
                     "instance '%s' runs as user %s (its table %s is that user's): run the "
                     "producer as %s, or reach the broker over --connect",
                     names->name, user, path, user);
            return -EACCES;
        }
        sp_sleep_ns((uint64_t)S_LOCATE_POLL_MS * SP_NS_PER_MS);
    }
    if (rc == -ENOENT) {
        snprintf(why, cap,
                 "no broker runs instance '%s' on this host (no %s/%s after %d ms): start one "
                 "with 'broker --instance %s', or reach one elsewhere with --connect",
                 names->name, names->run_dir, SP_CONTACT_FILE, SP_CLIENT_READY_MS, names->name);
        return SP_E_TIMEOUT;
    }
    if (rc < 0) {
        return rc;
    }
    w->transport = sp_transport_find(c.transport);
    if (w->transport == NULL) {
        snprintf(why, cap, "instance '%s' runs a transport this build does not know (%s)",
                 names->name, c.transport);
        return SP_E_BAD_LAYOUT;
    }
    snprintf(w->orders, sizeof w->orders, "%s", c.orders);
    snprintf(w->snapshot, sizeof w->snapshot, "%s", c.snapshot);
    snprintf(w->server_key, sizeof w->server_key, "%s", c.server_key);
    w->remote = false;
    return 0;
}

static int s_locate(const sp_client_cfg_t *cfg, sp_names_t *names, s_where_t *w, char *why,
                    size_t cap)
{
    memset(w, 0, sizeof *w);
    int rc = sp_names_init(names, cfg->instance, NULL);
    if (rc < 0) {
        snprintf(why, cap, "bad instance name '%s'", cfg->instance);
        return SP_E_USAGE;
    }
    return cfg->connect != NULL ? s_locate_remote(cfg, w, why, cap)
                                : s_locate_local(names, w, why, cap);
}

/* The order endpoint is a CURVE server: our keys come from --cert. */
static int s_curve_keys(sp_client_t *c, char *why, size_t cap)
{
    if (c->cfg.cert == NULL) {
        snprintf(why, cap,
                 "instance '%s' takes orders over CURVE (%s): give --cert FILE, a client "
                 "certificate made with `broker --keygen FILE` whose public half FILE is in the "
                 "broker's --curve-clients directory",
                 c->names.name, c->where.orders);
        return SP_E_USAGE;
    }
    int rc = sp_curve_load_secret(c->cfg.cert, &c->curve, why, cap);
    if (rc < 0) {
        return rc;
    }
    c->curve_used = true;
    return 0;
}

/* A link without an id: it sends a HELLO, and results of a batch will come
 * back on it once it has one. */
static int s_open_link(sp_client_t *c, char *why, size_t cap)
{
    sp_link_cfg_t lc = {.role = SP_LINK_PRODUCER,
                        .transport = c->where.transport,
                        .names = &c->names,
                        .endpoint = c->where.orders,
                        .id = 0,
                        .max_msg = SP_HELLO_MSG_SIZE,
                        .reply_msg = c->in_cap};
    if (c->where.server_key[0] != '\0') {
        int rc = s_curve_keys(c, why, cap);
        if (rc < 0) {
            return rc;
        }
        lc.server_key = c->where.server_key;
        lc.curve = &c->curve;
    }
    return sp_link_open(&c->link, &lc, why, cap);
}

/* After a HELLO that got no WELCOME from a broker on this host: when that
 * broker is dead, why says so instead (its table names its pid). */
static void s_broker_gone(const sp_client_t *c, char *why, size_t cap)
{
    sp_table_t *t = NULL;
    if (sp_table_open(&t, c->names.table, false) < 0) {
        snprintf(why, cap, "the broker of instance '%s' is gone (its table %s was removed)",
                 c->names.name, c->names.table);
        return;
    }
    pid_t pid = (pid_t)atomic_load(&sp_table_hdr(t)->broker_pid);
    sp_table_close(&t);
    if (pid > 0 && !sp_pid_alive(pid)) {
        snprintf(why, cap, "the broker of instance '%s' (pid %d) is gone", c->names.name, (int)pid);
    }
}

static int s_hello(sp_client_t *c, char *why, size_t cap)
{
    uint64_t hello_id = 0;
    if (getrandom(&hello_id, sizeof hello_id, 0) != (ssize_t)sizeof hello_id) {
        hello_id = sp_now_ns() ^ ((uint64_t)getpid() << 32);
    }
    sp_hello_t h = {.rev = SP_HELLO_REV,
                    .op = SP_HELLO_OPEN,
                    .flags = c->cfg.holds_outlive ? SP_HELLO_F_HOLDS_OUTLIVE : 0,
                    .producer_id = c->cfg.producer_id,
                    .reply_tag = sp_link_reply_tag(c->link),
                    .pid = (uint32_t)getpid(),
                    .hello_id = hello_id};
    size_t scratch = c->in_cap > SP_WELCOME_MSG_MAX ? c->in_cap : SP_WELCOME_MSG_MAX;
    uint8_t *buf = malloc(scratch);
    if (buf == NULL) {
        return -ENOMEM;
    }
    int timeout_ms = c->cfg.timeout_ms > 0 ? c->cfg.timeout_ms : SP_HELLO_TIMEOUT_MS;
    int rc = sp_hello_exchange(c->link, &h, buf, scratch, timeout_ms, &c->welcome, why, cap);
    free(buf);
    if (rc == SP_E_TIMEOUT && !c->where.remote) {
        s_broker_gone(c, why, cap); /* a broker killed while it had our HELLO */
    }
    if (rc == SP_E_TIMEOUT && c->curve_used) {
        size_t n = strlen(why);
        snprintf(why + n, cap - n, " (is %s in the broker's --curve-clients?)", c->cfg.cert);
    }
    if (rc < 0) {
        return rc;
    }
    const sp_welcome_t *w = &c->welcome;
    switch (w->status) {
    case SP_HELLO_OK:
        break;
    case SP_HELLO_ID_TAKEN:
        snprintf(why, cap, "producer id %u is in use by a live producer of instance '%s'",
                 w->producer_id, c->names.name);
        return -EEXIST;
    case SP_HELLO_NO_ROOM:
        snprintf(why, cap,
                 "no room for another producer in instance '%s' (%d are remembered at once)",
                 c->names.name, SP_DEDUP_SLOTS);
        return -EUSERS;
    case SP_HELLO_PEER_FULL:
        snprintf(why, cap,
                 "instance '%s' refused another producer session for this client: one client "
                 "(a process, or an address over tcp://) may hold %d at once; close some, or "
                 "wait until they have been idle %d s",
                 c->names.name, SP_HELLO_PEER_SESSIONS, SP_DEDUP_IDLE_MS / 1000);
        return -EDQUOT;
    default:
        snprintf(why, cap, "instance '%s' refused our HELLO (%s)", c->names.name,
                 sp_hello_status_name(w->status));
        return -EPROTO;
    }
    if (w->transport != c->where.transport->id) {
        snprintf(why, cap, "instance '%s' answered as transport %s, not %s", c->names.name,
                 sp_transport_name_of(w->transport), c->where.transport->name);
        return SP_E_BAD_LAYOUT;
    }
    return 0;
}

/* The batch's order message and its results fit the path the WELCOME
 * describes; then the link takes the id. */
static int s_settle(sp_client_t *c, char *why, size_t cap)
{
    char limit[160];
    sp_tinfo_t info = {.msgsize = c->welcome.msgsize, .depth = c->welcome.depth};
    unsigned fit = c->where.transport->fit(&info, limit, sizeof limit);
    if (c->cfg.batch > fit) {
        snprintf(why, cap, "a batch of %u orders does not fit %s: use --batch %u or less",
                 c->cfg.batch, limit, fit);
        return -EMSGSIZE;
    }
    c->producer_id = c->welcome.producer_id;
    return sp_link_adopt(c->link, c->producer_id, why, cap);
}

int sp_client_open(sp_client_t **out, const sp_client_cfg_t *cfg, char *why, size_t cap)
{
    *out = NULL;
    sp_client_t *self = calloc(1, sizeof *self);
    if (self == NULL) {
        return -ENOMEM;
    }
    self->cfg = *cfg;
    self->msg_cap = sp_wire_msg_size(SP_MSG_ORDERS, cfg->batch);
    self->in_cap = sp_wire_msg_size(SP_MSG_RESULTS, cfg->batch);
    self->msg = malloc(self->msg_cap);
    self->in = malloc(self->in_cap);
    int rc = self->msg == NULL || self->in == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        rc = s_locate(cfg, &self->names, &self->where, why, cap);
    }
    if (rc == 0) {
        rc = s_open_link(self, why, cap);
    }
    if (rc == 0) {
        rc = s_hello(self, why, cap);
    }
    if (rc == 0) {
        rc = s_settle(self, why, cap);
    }
    if (rc < 0) {
        sp_client_close(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void sp_client_close(sp_client_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_client_t *self = *self_p;
    sp_link_close(&self->link);
    sp_curve_wipe(&self->curve);
    free(self->msg);
    free(self->in);
    free(self->ids);
    free(self);
    *self_p = NULL;
}

uint32_t sp_client_producer_id(const sp_client_t *self)
{
    return self->producer_id;
}

sp_link_t *sp_client_link(const sp_client_t *self)
{
    return self->link;
}

const sp_welcome_t *sp_client_welcome(const sp_client_t *self)
{
    return &self->welcome;
}

int32_t sp_client_broker_pid(const sp_client_t *self)
{
    return self->where.remote ? 0 : self->welcome.broker_pid;
}

typedef struct {
    uint32_t *ids;
    uint32_t n, cap;
} s_ids_t;

static void s_take_id(void *ctx, const sp_snaprow_t *row)
{
    s_ids_t *t = ctx;
    if (t->n < t->cap) {
        t->ids[t->n++] = row->id;
    }
}

int sp_client_products(sp_client_t *self, const uint32_t **ids, uint32_t *n, char *why, size_t cap)
{
    if (self->ids == NULL) {
        const sp_welcome_t *w = &self->welcome;
        self->ids = malloc(sizeof *self->ids * (w->capacity > 0 ? w->capacity : 1));
        if (self->ids == NULL) {
            return -ENOMEM;
        }
        /* a shard's rows start at its range's lowest id */
        uint32_t first = w->product_lo != 0 ? w->product_lo : 1;
        if (w->capacity >= first && w->products == w->capacity - first + 1) {
            /* dense ids, as the README recommends: no snapshot needed */
            for (uint32_t id = first; id <= w->capacity; id++) {
                self->ids[self->nids++] = id;
            }
        } else {
            s_ids_t t = {.ids = self->ids, .cap = w->capacity};
            sp_snapinfo_t info;
            int rc = -ENOTSUP;
            if (self->where.snapshot[0] == '\0') {
                snprintf(why, cap,
                         "instance '%s' holds %u products under ids up to %u, and through %s "
                         "there is no snapshot service to learn them from: number the "
                         "catalogue's products 1..N",
                         self->names.name, w->products, w->capacity, self->where.transport->name);
            } else {
                rc = sp_snapcli_fetch(self->where.snapshot, self->where.server_key,
                                      self->curve_used ? &self->curve : NULL, SP_CLIENT_READY_MS,
                                      s_take_id, &t, &info, why, cap);
            }
            if (rc < 0) {
                free(self->ids);
                self->ids = NULL;
                return rc;
            }
            self->nids = t.n;
        }
    }
    *ids = self->ids;
    *n = self->nids;
    return 0;
}

int sp_client_snapshot(const sp_client_cfg_t *cfg, sp_snapcli_row_fn row, void *ctx,
                       sp_snapinfo_t *info, char *why, size_t cap)
{
    sp_names_t names;
    s_where_t w;
    int rc = s_locate(cfg, &names, &w, why, cap);
    if (rc < 0) {
        return rc;
    }
    sp_curve_keys_t keys = {0};
    bool curve = w.server_key[0] != '\0';
    if (curve && cfg->cert == NULL) {
        snprintf(why, cap, "instance '%s' serves snapshots over CURVE: give --cert FILE",
                 names.name);
        return SP_E_USAGE;
    }
    if (curve) {
        rc = sp_curve_load_secret(cfg->cert, &keys, why, cap);
    }
    if (rc == 0) {
        rc = sp_snapcli_fetch(w.snapshot, w.server_key, curve ? &keys : NULL, SP_CLIENT_READY_MS,
                              row, ctx, info, why, cap);
    }
    sp_curve_wipe(&keys);
    return rc;
}

bool sp_client_curve(const sp_client_t *self)
{
    return self->curve_used;
}

uint8_t *sp_client_orders_buf(const sp_client_t *self, size_t *cap)
{
    *cap = self->msg_cap;
    return self->msg;
}

uint8_t *sp_client_results_buf(const sp_client_t *self, size_t *cap)
{
    *cap = self->in_cap;
    return self->in;
}

uint64_t sp_client_retry_after_ns(int retry_ms, unsigned tries)
{
    uint64_t ms = (uint64_t)retry_ms << (tries < 16 ? tries - 1 : 15);
    return (ms < SP_RETRY_MAX_MS ? ms : SP_RETRY_MAX_MS) * SP_NS_PER_MS;
}
