/*
 * sp_metrics_http — `broker --metrics`: GET /metrics over HTTP with
 * libmicrohttpd, on its own polling thread (sp_metrics.h).  Linked into
 * bin/broker only (the Makefile keeps it out of libbroker.a, so the bench
 * and the tests do not need libmicrohttpd).
 *
 * The handler renders the board (atomics and file ages: nothing of the
 * broker's own state) into a fresh buffer that libmicrohttpd frees.  GET
 * and HEAD on /metrics only: other paths are 404, other methods 405.  A
 * few connections at a time, each dropped after 10 s idle: a scraper
 * cannot hold the broker's memory.
 */
#include "sp_metrics.h"

#include "sp_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define S_CONNECTIONS_MAX 16
#define S_IDLE_S          10

struct sp_metrics_srv {
    struct MHD_Daemon *daemon;
    sp_metrics_t *board;
};

/* Queues response r with `status` and its content type; frees r. */
static enum MHD_Result s_queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r,
                               const char *type)
{
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* A short static text answer (an error). */
static enum MHD_Result s_reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
                                                             MHD_RESPMEM_PERSISTENT);
    return s_queue(conn, status, r, "text/plain; charset=utf-8");
}

/* The rendered metrics, `len` bytes that libmicrohttpd frees. */
static enum MHD_Result s_reply_metrics(struct MHD_Connection *conn, char *text, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    return s_queue(conn, MHD_HTTP_OK, r, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    sp_metrics_srv_t *srv = cls;
    if (*con_cls == NULL) { /* headers only so far: answer once the request is whole */
        *con_cls = srv;
        return MHD_YES;
    }
    *upload_size = 0; /* a body is ignored */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return s_reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
    }
    if (strcmp(url, "/metrics") != 0) {
        return s_reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
    }
    size_t len = 0;
    char *text = sp_metrics_render(srv->board, &len);
    if (text == NULL) {
        return s_reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return s_reply_metrics(conn, text, len);
}

int sp_metrics_serve(sp_metrics_srv_t **out, sp_metrics_t *m, const char *spec, bool public,
                     char *where, size_t where_cap, char *why, size_t cap)
{
    *out = NULL;
    struct sockaddr_storage addr;
    unsigned addr_len = 0;
    bool loopback = false;
    int rc = sp_metrics_parse(spec, &addr, &addr_len, &loopback, why, cap);
    if (rc < 0) {
        return rc;
    }
    if (!loopback && !public) {
        sp_why(why, cap,
               "--metrics '%s' is not a loopback address: the metrics describe the shop to "
               "anyone who reaches them; add --metrics-public to serve them there",
               spec);
        return SP_E_USAGE;
    }
    sp_metrics_srv_t *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        return -ENOMEM;
    }
    srv->board = m;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    errno = 0;
    srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, s_handle, srv, MHD_OPTION_SOCK_ADDR,
                                   (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
                                   (unsigned)S_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
                                   (unsigned)S_IDLE_S, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        int e = errno != 0 ? errno : EADDRNOTAVAIL;
        sp_why(why, cap, "--metrics '%s': cannot listen there: %s", spec, strerror(e));
        free(srv);
        return -e;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info != NULL ? info->port : 0;
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr)->sin6_addr, host, sizeof host);
        snprintf(where, where_cap, "http://[%s]:%u/metrics", host, port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&addr)->sin_addr, host, sizeof host);
        snprintf(where, where_cap, "http://%s:%u/metrics", host, port);
    }
    *out = srv;
    return 0;
}

void sp_metrics_stop(sp_metrics_srv_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    MHD_stop_daemon((*self_p)->daemon);
    free(*self_p);
    *self_p = NULL;
}
