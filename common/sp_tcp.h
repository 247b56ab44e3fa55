/*
 * sp_tcp — the broker's `--tcp` and the monitor's `--connect` addresses, and
 * the rule that keeps a broker without CURVE on loopback.
 *
 * Accepted forms: `PORT` (meaning 127.0.0.1:PORT), `HOST:PORT` and
 * `tcp://HOST:PORT`, where HOST is an IPv4 address, an IPv6 address in
 * brackets (`[::1]`), `localhost` (127.0.0.1) or `*` (every IPv4 interface;
 * `[::]` for every IPv6 one).  Host names are not resolved: ZeroMQ does not
 * resolve names when it binds, and a name that resolves differently later
 * would move the broker without anyone noticing.
 *
 * Loopback means 127.0.0.0/8, ::1 and localhost.  Anything else reaches the
 * network, and the broker binds it only with CURVE configured (sp_curve.h).
 *
 * Only the client-facing endpoints go on TCP, at fixed offsets from PORT:
 *   PORT + SP_TCP_ORDERS    orders (ROUTER; producers)
 *   PORT + SP_TCP_EVENTS    events (XPUB; monitors)
 *   PORT + SP_TCP_SNAPSHOT  snapshots (ROUTER; monitors)
 * PORT+1 and PORT+2 are not used: the workers' endpoints (workers,
 * events-in) stay ipc:// in the private run directory even with --tcp,
 * since workers are always local children of the broker.  The offsets did
 * not move, so `monitor --connect tcp://HOST:PORT` reaches the same ports.
 *
 * Pure text work on the caller's buffers: nothing is allocated, resolved or
 * waited for; errors are SP_E_USAGE (with *why) or -ENAMETOOLONG; safe from
 * any thread.
 */
#ifndef SP_TCP_H
#define SP_TCP_H

#include <stdbool.h>
#include <stddef.h>

#define SP_TCP_HOST_MAX  64 /* "[" + 45 characters of IPv6 text + "]" fit */
#define SP_TCP_SPEC_MAX  128
#define SP_TCP_ORDERS    0
#define SP_TCP_EVENTS    3
#define SP_TCP_SNAPSHOT  4
#define SP_TCP_PORTS     5 /* PORT .. PORT+4 are the instance's */
#define SP_TCP_LOOPBACK  "127.0.0.1"
#define SP_TCP_LOOPBACK6 "[::1]"

typedef struct {
    char bind_host[SP_TCP_HOST_MAX];    /* as ZeroMQ binds it: "127.0.0.1", "[::1]", "*" */
    char connect_host[SP_TCP_HOST_MAX]; /* as a local client reaches it (a wildcard: loopback) */
    unsigned port;                      /* the first of SP_TCP_PORTS */
    bool ipv6;                          /* sockets need ZMQ_IPV6 */
    bool loopback;                      /* reachable from this machine only */
} sp_tcp_addr_t;

/* Parses `spec` (forms above) for flag `flag` (named in *why).  Returns 0,
 * or SP_E_USAGE with *why saying what is wrong and what is accepted. */
int sp_tcp_parse(const char *flag, const char *spec, sp_tcp_addr_t *out, char *why, size_t cap);

/* "tcp://HOST:PORT+offset" into buf, with the bind host (`bind`) or the host a
 * local client connects to.  Returns 0 or -ENAMETOOLONG. */
int sp_tcp_endpoint(const sp_tcp_addr_t *a, bool bind, unsigned offset, char *buf, size_t cap);

/* True for a host (as sp_tcp_parse accepts it, brackets optional) that only
 * this machine can reach: 127.0.0.0/8, ::1, localhost. */
bool sp_tcp_host_is_loopback(const char *host);

#endif
