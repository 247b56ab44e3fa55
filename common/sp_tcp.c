/*
 * sp_tcp — parsing tcp:// addresses and telling loopback from the network.
 */
#include "sp_tcp.h"

#include "sp_args.h"
#include "sp_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define S_PREFIX "tcp://"

static bool s_all_digits(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
    }
    return true;
}

bool sp_tcp_host_is_loopback(const char *host)
{
    char bare[SP_TCP_HOST_MAX];
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        len -= 2;
        host++;
    }
    if (len >= sizeof bare) {
        return false;
    }
    memcpy(bare, host, len);
    bare[len] = '\0';
    if (strcmp(bare, "localhost") == 0) {
        return true;
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, bare, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    struct in6_addr a6;
    return inet_pton(AF_INET6, bare, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int s_bad_host(const char *flag, const char *spec, const char *host, char *why, size_t cap)
{
    sp_why(why, cap,
           "%s '%s': '%s' is not an IPv4 address, an IPv6 address in brackets, localhost or * "
           "(host names are not resolved)",
           flag, spec, host);
    return SP_E_USAGE;
}

int sp_tcp_parse(const char *flag, const char *spec, sp_tcp_addr_t *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (spec == NULL || strlen(spec) >= SP_TCP_SPEC_MAX) {
        sp_why(why, cap, "%s wants PORT, HOST:PORT or tcp://HOST:PORT", flag);
        return SP_E_USAGE;
    }
    const char *rest = spec;
    if (strncmp(rest, S_PREFIX, strlen(S_PREFIX)) == 0) {
        rest += strlen(S_PREFIX);
    }
    if (strstr(rest, "://") != NULL) {
        sp_why(why, cap, "%s '%s': wants PORT, HOST:PORT or tcp://HOST:PORT (TCP only)", flag,
               spec);
        return SP_E_USAGE;
    }
    char host[SP_TCP_HOST_MAX - 2]; /* room for the brackets of an IPv6 bind host */
    const char *port_s;
    if (s_all_digits(rest)) {
        snprintf(host, sizeof host, "%s", SP_TCP_LOOPBACK);
        port_s = rest;
    } else if (rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (close == NULL || close[1] != ':') {
            sp_why(why, cap, "%s '%s': an IPv6 address goes as [ADDRESS]:PORT", flag, spec);
            return SP_E_USAGE;
        }
        if ((size_t)(close - rest - 1) >= sizeof host) {
            return s_bad_host(flag, spec, "(too long)", why, cap);
        }
        snprintf(host, sizeof host, "%.*s", (int)(close - rest - 1), rest + 1);
        port_s = close + 2;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1) {
            return s_bad_host(flag, spec, host, why, cap);
        }
        out->ipv6 = true;
        snprintf(out->bind_host, sizeof out->bind_host, "[%s]", host);
        snprintf(out->connect_host, sizeof out->connect_host, "%s",
                 IN6_IS_ADDR_UNSPECIFIED(&a6) ? SP_TCP_LOOPBACK6 : out->bind_host);
    } else {
        const char *colon = strrchr(rest, ':');
        if (colon == NULL || colon == rest) {
            sp_why(why, cap, "%s '%s': wants PORT, HOST:PORT or tcp://HOST:PORT", flag, spec);
            return SP_E_USAGE;
        }
        if (memchr(rest, ':', (size_t)(colon - rest)) != NULL) {
            sp_why(why, cap, "%s '%s': an IPv6 address goes in brackets, as [ADDRESS]:PORT", flag,
                   spec);
            return SP_E_USAGE;
        }
        if ((size_t)(colon - rest) >= sizeof host) {
            return s_bad_host(flag, spec, "(too long)", why, cap);
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - rest), rest);
        port_s = colon + 1;
    }
    uint32_t port = 0;
    char pwhy[160];
    if (sp_arg_u32(flag, port_s, 1, 65536 - SP_TCP_PORTS, &port, pwhy, sizeof pwhy) < 0) {
        sp_why(why, cap, "%s '%s': the port must be a number from 1 to %d (it uses %d ports)", flag,
               spec, 65536 - SP_TCP_PORTS, SP_TCP_PORTS);
        return SP_E_USAGE;
    }
    out->port = port;
    if (!out->ipv6) {
        struct in_addr a4;
        if (strcmp(host, "localhost") == 0) {
            snprintf(out->bind_host, sizeof out->bind_host, "%s", SP_TCP_LOOPBACK);
            snprintf(out->connect_host, sizeof out->connect_host, "%s", SP_TCP_LOOPBACK);
        } else if (strcmp(host, "*") == 0 ||
                   (inet_pton(AF_INET, host, &a4) == 1 && a4.s_addr == htonl(INADDR_ANY))) {
            snprintf(out->bind_host, sizeof out->bind_host, "%s", host);
            snprintf(out->connect_host, sizeof out->connect_host, "%s", SP_TCP_LOOPBACK);
        } else if (inet_pton(AF_INET, host, &a4) == 1) {
            snprintf(out->bind_host, sizeof out->bind_host, "%s", host);
            snprintf(out->connect_host, sizeof out->connect_host, "%s", host);
        } else {
            return s_bad_host(flag, spec, host, why, cap);
        }
    }
    out->loopback = sp_tcp_host_is_loopback(out->bind_host);
    return 0;
}

int sp_tcp_endpoint(const sp_tcp_addr_t *a, bool bind, unsigned offset, char *buf, size_t cap)
{
    int n =
        snprintf(buf, cap, "tcp://%s:%u", bind ? a->bind_host : a->connect_host, a->port + offset);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}
