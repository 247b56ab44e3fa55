/*
 * sp_endpoints — where the broker's sockets bind and where clients connect,
 * and the security around them: --tcp and CURVE.
 *
 * Workers' endpoints (workers, events-in) are always ipc:// in the
 * instance's private run directory (mode 0700), so no worker path ever
 * leaves the machine; with --tcp the client-facing ones (orders, events,
 * snapshot) go on TCP at fixed port offsets (sp_tcp.h); with worker threads
 * everything is inproc://.  The header gets where clients connect (and the
 * broker's CURVE public key); the context keeps where we bind.
 *
 * --tcp and CURVE are checked before anything of the instance exists, so a
 * refusal (SP_E_USAGE, with a sentence saying what to add) leaves nothing
 * behind.  The CURVE authenticator (zauth) runs from sp_endpoints_secure,
 * before any socket binds, to sp_endpoints_release, after the last one is
 * closed; the secret key is wiped there.  Broker thread only.
 */
#include "sp_endpoints.h"

#include "sp_broker_impl.h"
#include "sp_curve.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_log.h"
#include "sp_tcp.h"

#include <stdio.h>
#include <string.h>

/* --tcp and CURVE, checked before anything of the instance exists, so a
 * refusal leaves nothing behind: a host that reaches the network needs
 * CURVE; CURVE needs its certificate (a private file) and the clients'
 * directory, and starts the authenticator before any socket binds. */
int sp_endpoints_secure(sp_broker_t *b, char *why, size_t cap)
{
    const sp_broker_cfg_t *cfg = b->cfg;
    b->use_tcp = cfg->tcp != NULL;
    if (b->use_tcp && sp_tcp_parse("--tcp", cfg->tcp, &b->tcp, why, cap) < 0) {
        return SP_E_USAGE;
    }
    bool cert = cfg->curve_cert != NULL, clients = cfg->curve_clients != NULL;
    if (cert != clients) {
        snprintf(why, cap,
                 "CURVE needs both --curve-cert FILE (the broker's secret certificate) and "
                 "--curve-clients DIR (the public certificates of the clients let in)");
        return SP_E_USAGE;
    }
    if (cert && !b->use_tcp) {
        snprintf(why, cap,
                 "--curve-cert and --curve-clients protect tcp:// endpoints: add --tcp "
                 "[HOST:]PORT (ipc:// endpoints are private to this user already)");
        return SP_E_USAGE;
    }
    if (b->use_tcp && !b->tcp.loopback && !cert) {
        snprintf(why, cap,
                 "--tcp %s: %s is not a loopback address, and without CURVE anyone who can reach "
                 "it could place orders and read the stock. Add --curve-cert FILE and "
                 "--curve-clients DIR (make keys with `broker --keygen PATH`), or stay on "
                 "loopback (--tcp PORT binds 127.0.0.1)",
                 cfg->tcp, b->tcp.bind_host);
        return SP_E_USAGE;
    }
    if (!cert) {
        return 0;
    }
    int rc = sp_curve_load_secret(cfg->curve_cert, &b->curve, why, cap);
    if (rc < 0) {
        return rc;
    }
    rc = sp_curve_auth_new(&b->auth, cfg->curve_clients, &b->curve_clients, why, cap);
    if (rc < 0) {
        sp_curve_wipe(&b->curve);
        return rc;
    }
    b->curve_on = true;
    if (b->curve_clients == 0) {
        sp_broker_notify(
            b, SP_LOG_WARN,
            "--curve-clients %s holds no client certificate yet: no client gets in until "
            "one is added there",
            cfg->curve_clients);
    }
    return 0;
}

/* Makes the private run directory (not for inproc://), then lays out
 * the five endpoints: where we bind (b->bind_ep) and where clients
 * connect (the header).  Workers' endpoints (workers, events-in) are always
 * ipc:// in the private run directory, so no worker path ever leaves the
 * machine; with --tcp the client-facing ones (orders, events, snapshot) go
 * on TCP at their fixed port offsets (sp_tcp.h). */
int sp_endpoints_layout(sp_broker_t *b, char *why, size_t cap)
{
    {
        /* with --tcp too: the workers' endpoints stay ipc:// in it; an
         * in-process broker (inproc://) makes it for its contact file */
        int rc = sp_names_make_run_dir(&b->names);
        if (rc < 0) {
            snprintf(why, cap, "cannot make the private run directory %s: %s", b->names.run_dir,
                     sp_strerror(rc));
            return rc;
        }
    }
    sp_table_hdr_t *h = b->hdr;
    char *eps[SP_BEPS] = {h->ep_orders, h->ep_workers, h->ep_events_in, h->ep_events,
                          h->ep_snapshot};
    static const char *which[SP_BEPS] = {"orders", "workers", "events-in", "events", "snapshot"};
    static const int tcp_offset[SP_BEPS] = {SP_TCP_ORDERS, -1, -1, SP_TCP_EVENTS, SP_TCP_SNAPSHOT};
    for (int i = 0; i < SP_BEPS; i++) {
        int rc = 0;
        if (i <= 1 && b->path_ep[0] != '\0') {
            /* orders and workers: where the transport said (its servers) */
            snprintf(eps[i], SP_ENDPOINT_MAX, "%s", b->path_ep);
            continue;
        }
        if ((b->cfg->worker_thread != NULL)) {
            snprintf(eps[i], SP_ENDPOINT_MAX, "inproc://%s-%s", b->names.name, which[i]);
        } else if (b->use_tcp && tcp_offset[i] >= 0) {
            rc = sp_tcp_endpoint(&b->tcp, false, (unsigned)tcp_offset[i], eps[i], SP_ENDPOINT_MAX);
            if (rc == 0) {
                rc = sp_tcp_endpoint(&b->tcp, true, (unsigned)tcp_offset[i], b->bind_ep[i],
                                     SP_ENDPOINT_MAX);
            }
            if (rc < 0) {
                snprintf(why, cap, "--tcp %s makes an endpoint too long", b->cfg->tcp);
                return rc;
            }
            continue;
        } else {
            rc = sp_names_ipc_endpoint(&b->names, which[i], eps[i], SP_ENDPOINT_MAX);
        }
        if (rc < 0) {
            snprintf(why, cap, "run directory path %s is too long for ipc:// endpoints",
                     b->names.run_dir);
            return rc;
        }
        snprintf(b->bind_ep[i], SP_ENDPOINT_MAX, "%s", eps[i]);
    }
    /* a re-attached table may hold a dead broker's key: ours or none */
    memset(h->curve_server_key, 0, sizeof h->curve_server_key);
    if (b->curve_on) {
        snprintf(h->curve_server_key, sizeof h->curve_server_key, "%s", b->curve.public_txt);
    }
    return 0;
}

void sp_endpoints_announce(const sp_broker_t *b)
{
    if (b->curve_on) {
        sp_broker_notify(b, SP_LOG_INFO,
                         "clients on tcp://%s ports %u (orders), %u (events), %u (snapshots), "
                         "CURVE: server key %s, %u client certificate(s) in %s",
                         b->tcp.bind_host, b->tcp.port + SP_TCP_ORDERS, b->tcp.port + SP_TCP_EVENTS,
                         b->tcp.port + SP_TCP_SNAPSHOT, b->curve.public_txt, b->curve_clients,
                         b->cfg->curve_clients);
    } else {
        sp_broker_notify(b, SP_LOG_INFO,
                         "clients on tcp://%s ports %u (orders), %u (events), %u (snapshots), "
                         "loopback only, no CURVE",
                         b->tcp.bind_host, b->tcp.port + SP_TCP_ORDERS, b->tcp.port + SP_TCP_EVENTS,
                         b->tcp.port + SP_TCP_SNAPSHOT);
    }
}

void sp_endpoints_release(sp_broker_t *b)
{
    sp_curve_auth_destroy(&b->auth);
    sp_curve_wipe(&b->curve);
}
