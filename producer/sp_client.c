/*
 * sp_client — a producer's connection to an instance (see sp_client.h).
 *
 * s_connect is the whole hand-shake, in one place on purpose: it is what a
 * producer has to learn before its first order, and the one function to
 * change when it learns that over the wire instead of from the table.
 */
#include "sp_client.h"

#include "sp_commit.h"
#include "sp_curve.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct sp_client {
    sp_client_cfg_t cfg;
    sp_names_t names; /* the link keeps a pointer to them */
    sp_table_t *table;
    sp_link_t *link;
    uint32_t producer_id;
    uint8_t *msg;
    size_t msg_cap;
    uint8_t *in;
    size_t in_cap;
    sp_curve_keys_t curve; /* --cert, when the instance uses CURVE */
    bool curve_used;
};

/* The order endpoint is a CURVE server: our keys come from --cert. */
static int s_curve_keys(sp_client_t *c, const sp_names_t *names, const sp_table_hdr_t *h, char *why,
                        size_t cap)
{
    if (c->cfg.cert == NULL) {
        snprintf(why, cap,
                 "instance '%s' takes orders over CURVE (%s): give --cert FILE, a client "
                 "certificate made with `broker --keygen FILE` whose public half FILE is in the "
                 "broker's --curve-clients directory",
                 names->name, h->ep_orders);
        return SP_E_USAGE;
    }
    int rc = sp_curve_load_secret(c->cfg.cert, &c->curve, why, cap);
    if (rc < 0) {
        return rc;
    }
    c->curve_used = true;
    return 0;
}

/* Opens the table and a producer link: shared by customers and one-shot. */
static int s_connect(sp_client_t *c, const sp_names_t *names, unsigned batch, char *why, size_t cap)
{
    int rc = sp_table_open_ready(&c->table, names->table, false, SP_CLIENT_READY_MS);
    if (rc < 0) {
        snprintf(why, cap, "instance '%s' is not running (%s %s)", names->name, names->table,
                 sp_strerror(rc));
        return rc;
    }
    sp_table_hdr_t *h = sp_table_hdr(c->table);
    /* the table is mapped read-only here; the id counter needs a writable map */
    sp_table_t *rw = NULL;
    rc = sp_table_open(&rw, names->table, true);
    if (rc < 0) {
        snprintf(why, cap, "cannot open %s for a producer id: %s", names->table, sp_strerror(rc));
        return rc;
    }
    c->producer_id = c->cfg.producer_id != 0 ? c->cfg.producer_id : sp_table_new_producer_id(rw);
    /* a dedup slot of our own, registered with our pid so it (and our holds)
     * is freed for another producer as soon as we are gone; a one-shot
     * reserve registers no pid: its hold outlives it until it expires */
    rc = sp_commit_register(rw, c->producer_id, c->cfg.holds_outlive ? 0 : getpid());
    sp_table_close(&rw);
    if (rc < 0) {
        snprintf(why, cap, "no room for another producer in %s (%d are remembered at once)",
                 names->table, SP_DEDUP_SLOTS);
        return rc;
    }
    c->msg_cap = sp_wire_msg_size(SP_MSG_ORDERS, batch);
    c->in_cap = sp_wire_msg_size(SP_MSG_RESULTS, batch);
    c->msg = malloc(c->msg_cap);
    c->in = malloc(c->in_cap);
    if (c->msg == NULL || c->in == NULL) {
        return -ENOMEM;
    }
    const sp_transport_t *t = sp_transport_by_id(h->transport);
    if (t == NULL) {
        snprintf(why, cap, "instance '%s' runs a transport this build does not know (id %u)",
                 names->name, h->transport);
        return SP_E_BAD_LAYOUT;
    }
    char limit[160];
    unsigned fit =
        t->fit(&(sp_tinfo_t){.msgsize = h->mq_msgsize, .depth = h->mq_depth}, limit, sizeof limit);
    if (batch > fit) {
        snprintf(why, cap, "a batch of %u orders does not fit %s: use --batch %u or less", batch,
                 limit, fit);
        return -EMSGSIZE;
    }
    sp_link_cfg_t lc = {.role = SP_LINK_PRODUCER,
                        .transport = t,
                        .names = names,
                        .endpoint = h->ep_orders,
                        .id = c->producer_id,
                        .max_msg = c->msg_cap,
                        .reply_msg = c->in_cap};
    if (h->curve_server_key[0] != '\0') {
        rc = s_curve_keys(c, names, h, why, cap);
        if (rc < 0) {
            return rc;
        }
        lc.server_key = h->curve_server_key;
        lc.curve = &c->curve;
    }
    return sp_link_open(&c->link, &lc, why, cap);
}

int sp_client_open(sp_client_t **out, const sp_client_cfg_t *cfg, char *why, size_t cap)
{
    *out = NULL;
    sp_client_t *self = calloc(1, sizeof *self);
    if (self == NULL) {
        return -ENOMEM;
    }
    self->cfg = *cfg;
    int rc = sp_names_init(&self->names, cfg->instance, NULL);
    if (rc < 0) {
        snprintf(why, cap, "bad instance name '%s'", cfg->instance);
    } else {
        rc = s_connect(self, &self->names, cfg->batch, why, cap);
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
    sp_table_close(&self->table);
    sp_curve_wipe(&self->curve);
    free(self->msg);
    free(self->in);
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

sp_table_t *sp_client_table(const sp_client_t *self)
{
    return self->table;
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
