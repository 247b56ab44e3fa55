/*
 * test_tcp — `--tcp` / `--connect` addresses and the loopback rule: the forms
 * sp_tcp_parse accepts and refuses; a broker given only a port listens on
 * 127.0.0.1 and nowhere else (read back from /proc/net/tcp, and a connection
 * to the machine's own network address is refused); a host that reaches the
 * network is refused without CURVE, naming the flags to add, before anything
 * of the instance exists.
 */
#include "sp_testutil.h"

#include "sp_error.h"
#include "sp_instance.h"
#include "sp_table.h"
#include "sp_tcp.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_MS        30000
#define T_PORT        5555
#define T_TCP_LISTEN  0x0A /* st column of /proc/net/tcp: TCP_LISTEN */
#define T_ADDR_ANY6   "00000000000000000000000000000000"
#define T_ADDR_LOOP6  "00000000000000000000000001000000"
#define T_ADDR_LOOP4  "0100007F"
#define T_EXIT_USAGE  2
#define T_LISTENS_MAX 16

static pid_t s_broker_pid;

static void s_cleanup(void)
{
    if (s_broker_pid > 0) {
        spt_stop(s_broker_pid);
        s_broker_pid = 0;
    }
}

static sp_tcp_addr_t s_parse_ok(const char *spec)
{
    sp_tcp_addr_t a;
    char why[256] = "";
    cr_assert_eq(sp_tcp_parse("--tcp", spec, &a, why, sizeof why), 0, "'%s': %s", spec, why);
    return a;
}

Test(tcp, a_port_alone_means_loopback)
{
    sp_tcp_addr_t a = s_parse_ok("5555");
    cr_expect_str_eq(a.bind_host, "127.0.0.1");
    cr_expect_str_eq(a.connect_host, "127.0.0.1");
    cr_expect_eq(a.port, T_PORT);
    cr_expect(a.loopback);
    cr_expect_not(a.ipv6);
    char ep[64];
    cr_assert_eq(sp_tcp_endpoint(&a, true, SP_TCP_EVENTS, ep, sizeof ep), 0);
    cr_expect_str_eq(ep, "tcp://127.0.0.1:5558");
    cr_assert_eq(sp_tcp_endpoint(&a, false, SP_TCP_SNAPSHOT, ep, sizeof ep), 0);
    cr_expect_str_eq(ep, "tcp://127.0.0.1:5559");
    cr_expect_eq(sp_tcp_endpoint(&a, true, 0, ep, 10), -ENAMETOOLONG);
}

Test(tcp, hosts_are_loopback_only_when_they_cannot_leave_the_machine)
{
    struct {
        const char *spec, *bind, *connect;
        bool loopback, ipv6;
    } cases[] = {
        {"tcp://127.0.0.1:5555", "127.0.0.1", "127.0.0.1", true, false},
        {"127.42.0.9:5555", "127.42.0.9", "127.42.0.9", true, false},
        {"localhost:5555", "127.0.0.1", "127.0.0.1", true, false},
        {"tcp://[::1]:5555", "[::1]", "[::1]", true, true},
        {"tcp://*:5555", "*", "127.0.0.1", false, false},
        {"0.0.0.0:5555", "0.0.0.0", "127.0.0.1", false, false},
        {"[::]:5555", "[::]", "[::1]", false, true},
        {"tcp://192.0.2.7:5555", "192.0.2.7", "192.0.2.7", false, false},
        {"[::ffff:127.0.0.1]:5555", "[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]", false, true},
        {"128.0.0.1:5555", "128.0.0.1", "128.0.0.1", false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sp_tcp_addr_t a = s_parse_ok(cases[i].spec);
        cr_expect_str_eq(a.bind_host, cases[i].bind, "%s", cases[i].spec);
        cr_expect_str_eq(a.connect_host, cases[i].connect, "%s", cases[i].spec);
        cr_expect_eq(a.loopback, cases[i].loopback, "%s", cases[i].spec);
        cr_expect_eq(a.ipv6, cases[i].ipv6, "%s", cases[i].spec);
        cr_expect_eq(a.port, T_PORT, "%s", cases[i].spec);
    }
    cr_expect(sp_tcp_host_is_loopback("::1"));
    cr_expect(sp_tcp_host_is_loopback("127.255.255.254"));
    cr_expect_not(sp_tcp_host_is_loopback("10.0.0.1"));
    cr_expect_not(sp_tcp_host_is_loopback("*"));
    cr_expect_not(sp_tcp_host_is_loopback("localhost.example.com"));
}

Test(tcp, malformed_addresses_are_refused_with_the_flag_named)
{
    const char *bad[] = {"",
                         "tcp://",
                         "example.com:5555",
                         "eth0:5555",
                         "1.2.3.4",
                         "1.2.3.4:0",
                         "1.2.3.4:65532",
                         "tcp://1.2.3.4:4294972297", /* wraps to 5001 through sscanf's %u */
                         "1.2.3.4:-1",
                         "1.2.3.4:55x",
                         "::1:5555",
                         "[::1]5555",
                         "[nonsense]:5555",
                         "udp://1.2.3.4:5555",
                         "127.1:5555",
                         "a-host-name-much-longer-than-any-address-can-be-0123456789abcdef:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sp_tcp_addr_t a;
        char why[256] = "";
        cr_expect_eq(sp_tcp_parse("--connect", bad[i], &a, why, sizeof why), SP_E_USAGE, "'%s'",
                     bad[i]);
        cr_expect(strstr(why, "--connect") != NULL, "'%s': %s", bad[i], why);
    }
}

/* Listening sockets on `port` in /proc/net/tcp or tcp6: their local address
 * (hex, as the kernel writes it) into addrs; returns how many. */
static int s_listeners(const char *table, unsigned port, char addrs[][40], int max)
{
    FILE *f = fopen(table, "r");
    if (f == NULL) {
        return 0;
    }
    char line[512];
    int n = 0;
    if (fgets(line, sizeof line, f) == NULL) { /* the column titles */
        fclose(f);
        return 0;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char local[40];
        unsigned lport, state;
        if (sscanf(line, " %*d: %39[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", local, &lport, &state) !=
            3) {
            continue;
        }
        if (lport == port && state == T_TCP_LISTEN && n < max) {
            snprintf(addrs[n++], 40, "%s", local);
        }
    }
    fclose(f);
    return n;
}

/* An IPv4 address of this machine that is not loopback, or false. */
static bool s_network_address(struct in_addr *out)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0) {
        return false;
    }
    bool found = false;
    for (struct ifaddrs *i = ifs; i != NULL && !found; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_flags & IFF_LOOPBACK)) {
            continue;
        }
        *out = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        found = (ntohl(out->s_addr) >> 24) != 127;
    }
    freeifaddrs(ifs);
    return found;
}

/* connect(2) to addr:port; returns 0 or the errno it failed with. */
static int s_connect(struct in_addr addr, unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = addr};
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

Test(tcp, a_port_alone_listens_on_loopback_only, .timeout = 60, .fini = s_cleanup)
{
    char inst[64];
    spt_instance(inst, sizeof inst, "tcploop");
    const char *extra[] = {
        "--transport", "zmq", "--workers", "1", "--catalogue", spt_data("products.csv"), NULL};
    unsigned port = 0;
    s_broker_pid = spt_broker_start_tcp(inst, NULL, extra, &port);
    cr_assert(s_broker_pid > 0, "broker did not start");

    /* orders, events and snapshots listen on 127.0.0.1 alone; PORT+1 and
     * PORT+2 are not used (the workers' endpoints stay ipc://) */
    const unsigned offsets[] = {SP_TCP_ORDERS, 1, 2, SP_TCP_EVENTS, SP_TCP_SNAPSHOT};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        char v4[T_LISTENS_MAX][40], v6[T_LISTENS_MAX][40];
        int n4 = s_listeners("/proc/net/tcp", port + offsets[i], v4, T_LISTENS_MAX);
        int n6 = s_listeners("/proc/net/tcp6", port + offsets[i], v6, T_LISTENS_MAX);
        bool used = offsets[i] != 1 && offsets[i] != 2;
        cr_expect_eq(n4, used ? 1 : 0, "port %u: %d IPv4 listeners", port + offsets[i], n4);
        for (int k = 0; k < n4; k++) {
            cr_expect_str_eq(v4[k], T_ADDR_LOOP4, "port %u listens on %s", port + offsets[i],
                             v4[k]);
        }
        cr_expect_eq(n6, 0, "port %u: %d IPv6 listeners (%s)", port + offsets[i], n6,
                     n6 > 0 ? v6[0] : "");
    }

    /* reachable on loopback, refused from the machine's network address */
    struct in_addr lo = {.s_addr = htonl(INADDR_LOOPBACK)};
    cr_expect_eq(s_connect(lo, port), 0, "loopback connect");
    struct in_addr net;
    if (s_network_address(&net)) {
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &net, text, sizeof text);
        cr_expect_eq(s_connect(net, port + SP_TCP_ORDERS), ECONNREFUSED, "%s:%u", text, port);
        cr_expect_eq(s_connect(net, port + SP_TCP_EVENTS), ECONNREFUSED, "%s", text);
        cr_expect_eq(s_connect(net, port + SP_TCP_SNAPSHOT), ECONNREFUSED, "%s", text);
    } else {
        cr_log_warn("no non-loopback IPv4 address here: the connect check is skipped");
    }

    /* the header: client endpoints on loopback TCP, workers' on ipc://, no key */
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    sp_table_hdr_t *h = sp_table_hdr(t);
    char want[SP_ENDPOINT_MAX];
    snprintf(want, sizeof want, "tcp://127.0.0.1:%u", port);
    cr_expect_str_eq(h->ep_orders, want);
    snprintf(want, sizeof want, "tcp://127.0.0.1:%u", port + SP_TCP_EVENTS);
    cr_expect_str_eq(h->ep_events, want);
    cr_assert_eq(sp_names_ipc_endpoint(&names, "workers", want, sizeof want), 0);
    cr_expect_str_eq(h->ep_workers, want);
    cr_assert_eq(sp_names_ipc_endpoint(&names, "events-in", want, sizeof want), 0);
    cr_expect_str_eq(h->ep_events_in, want);
    cr_expect_str_eq(h->curve_server_key, "");
    sp_table_close(&t);

    /* and it serves: a local producer's order is applied over TCP */
    const char *buy[] = {spt_bin("producer"), "--instance", inst, "buy", "3", "1", NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(buy, RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "accepted") != NULL, "%s", out);
    free(out);

    pid_t pid = s_broker_pid;
    s_broker_pid = 0;
    cr_expect_eq(WEXITSTATUS(spt_stop(pid)), 0);
    cr_expect_not(spt_leftovers(inst));
}

Test(tcp, ipv6_loopback_is_loopback_too, .timeout = 60, .fini = s_cleanup)
{
    int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
    if (probe >= 0) {
        close(probe);
    }
    if (!have_v6) {
        cr_skip_test("no ::1 here");
    }
    char inst[64];
    spt_instance(inst, sizeof inst, "tcpv6");
    const char *extra[] = {
        "--transport", "zmq", "--workers", "1", "--catalogue", spt_data("products.csv"), NULL};
    unsigned port = 0;
    s_broker_pid = spt_broker_start_tcp(inst, "[::1]", extra, &port);
    cr_assert(s_broker_pid > 0, "broker did not start on [::1]");
    char v6[T_LISTENS_MAX][40];
    int n6 = s_listeners("/proc/net/tcp6", port, v6, T_LISTENS_MAX);
    cr_expect_eq(n6, 1);
    if (n6 == 1) {
        cr_expect_str_eq(v6[0], T_ADDR_LOOP6);
    }
    const char *buy[] = {spt_bin("producer"), "--instance", inst, "buy", "3", "1", NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(buy, RUN_MS, &out), 0, "%s", out);
    free(out);
    pid_t pid = s_broker_pid;
    s_broker_pid = 0;
    cr_expect_eq(WEXITSTATUS(spt_stop(pid)), 0);
    cr_expect_not(spt_leftovers(inst));
}

/* Runs bin/broker with args; expects it to refuse (usage) with every
 * string of `want` in its message, and nothing of the instance to exist. */
static void s_refused(const char *inst, const char *state, const char *const *args,
                      const char *const *want)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = spt_bin("broker");
    argv[n++] = "--instance";
    argv[n++] = inst;
    argv[n++] = "--state-dir";
    argv[n++] = state;
    for (int i = 0; args[i] != NULL; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char *out = NULL;
    cr_expect_eq(spt_run(argv, RUN_MS, &out), T_EXIT_USAGE, "%s: %s", args[1], out);
    for (int i = 0; want[i] != NULL; i++) {
        cr_expect(strstr(out, want[i]) != NULL, "'%s' not in: %s", want[i], out);
    }
    free(out);
    cr_expect_not(spt_leftovers(inst), "%s left something behind", args[1]);
    char sub[512];
    snprintf(sub, sizeof sub, "%s/%s", state, inst);
    struct stat st;
    cr_expect_neq(stat(sub, &st), 0, "%s was created", sub);
}

Test(tcp, a_network_host_without_curve_is_refused_and_leaves_nothing, .timeout = 60)
{
    char inst[64], state[128], spec[5][64];
    spt_instance(inst, sizeof inst, "tcpnet");
    cr_assert(spt_tmpdir(state, sizeof state, "tcpnet"));
    unsigned port = SPT_TCP_PORT_BASE + (unsigned)(getpid() % SPT_TCP_PORT_SLOTS) * 5;
    struct in_addr net;
    char net_text[INET_ADDRSTRLEN] = "192.0.2.1";
    if (s_network_address(&net)) {
        inet_ntop(AF_INET, &net, net_text, sizeof net_text);
    }
    snprintf(spec[0], sizeof spec[0], "tcp://0.0.0.0:%u", port);
    snprintf(spec[1], sizeof spec[1], "*:%u", port);
    snprintf(spec[2], sizeof spec[2], "tcp://[::]:%u", port);
    snprintf(spec[3], sizeof spec[3], "%s:%u", net_text, port);
    snprintf(spec[4], sizeof spec[4], "tcp://10.255.255.1:%u", port);
    const char *want[] = {"not a loopback address", "--curve-cert FILE", "--curve-clients DIR",
                          "--keygen", NULL};
    for (int i = 0; i < 5; i++) {
        const char *args[] = {
            "--tcp", spec[i], "--transport", "zmq", "--catalogue", spt_data("products.csv"), NULL};
        s_refused(inst, state, args, want);
        char v4[T_LISTENS_MAX][40];
        cr_expect_eq(s_listeners("/proc/net/tcp", port, v4, T_LISTENS_MAX), 0, "%s bound", spec[i]);
    }

    /* CURVE halves, and CURVE without TCP, are refused the same way */
    char lo[32];
    snprintf(lo, sizeof lo, "%u", port);
    const char *half[] = {"--tcp", lo, "--curve-cert", "/nonexistent/server", NULL};
    const char *want_half[] = {"--curve-clients DIR", NULL};
    s_refused(inst, state, half, want_half);
    const char *no_tcp[] = {"--transport", "zmq", "--curve-cert", "/x", "--curve-clients",
                            "/y",          NULL};
    const char *want_tcp[] = {"add --tcp", NULL};
    s_refused(inst, state, no_tcp, want_tcp);
    spt_rmtree(state);
}
