/*
 * peer — Redis doing the cells' orders (see peer.h).
 *
 * One run, step by step:
 *
 *   1. find redis-server in PATH (none: the row says how to install it);
 *   2. a private 0700 folder under $TMPDIR (or /tmp); the server forked into
 *      a process group of its own and exec'd with a unix socket there, no
 *      TCP port, no persistence, its output into the folder's log; it keeps
 *      the write end of a "life" pipe, so the bench sees it die as end of
 *      file;
 *   3. connect (retried until BENCH_PEER_START_MS) and PING; MSET the
 *      catalogue in chunks; SCRIPT LOAD the order script;
 *   4. a warm-up round, then `repeats` rounds: the clients forked, each
 *      connects and says ready, one "go" (the go pipe closed) starts them
 *      all; each sends pipelined batches of EVALSHA for `seconds` and
 *      writes its counts into a shared board; the parent reaps them;
 *   5. the audit: MGET every stock, initial - final == bought - restocked;
 *   6. SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL, each wait bounded; the
 *      folder removed with whatever is in it.
 *
 * The script answers with an integer, so a reply costs the client one
 * parse: the stock after the order, BENCH_PEER_OUT_OF_STOCK or
 * BENCH_PEER_UNKNOWN.  A purchase is the worker's check-and-decrement (GET,
 * compare, DECRBY), atomic because Redis runs one script at a time.
 *
 * CPU: each client reads its own CPU time (schedstat) at go and when it is
 * done; the server's is read from /proc before go and after the last
 * client, so it covers the round and little else.
 */
#include "peer.h"

#include "resp.h"
#include "sp_child.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_rand.h"
#include "sp_signal.h"
#include "sp_time.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <unistd.h>

#define S_WHY_MAX    200
#define S_SHA_LEN    40 /* SCRIPT LOAD's answer: a SHA-1 in hex */
#define S_KEY_MAX    16 /* "p:" and up to 10 digits */
#define S_NUM_MAX    24
#define S_SUN_MAX    (sizeof(((struct sockaddr_un *)0)->sun_path))
#define S_POLL_MS    10 /* between connection attempts while the server starts */
#define S_FTW_FDS    16
#define S_MILLION    1e6
#define S_SEED_MIX   0x9E3779B97F4A7C15ull
#define S_LOG_LINE   160
#define S_KEY_PREFIX "p:"

/* Orders as a worker applies them: ARGV[1] 'b' purchase or 'r' restock,
 * ARGV[2] the quantity; the answer is the stock after the order, or -1
 * (out of stock, nothing taken) or -2 (unknown product). */
static const char s_script[] =
    "local s = redis.call('GET', KEYS[1])\n"
    "if not s then return -2 end\n"
    "local q = tonumber(ARGV[2])\n"
    "if ARGV[1] == 'r' then return redis.call('INCRBY', KEYS[1], q) end\n"
    "if tonumber(s) < q then return -1 end\n"
    "return redis.call('DECRBY', KEYS[1], q)\n";

/* What one client reports through the shared board. */
typedef struct {
    uint64_t replies, bought, out_of_stock, restocked, unknown;
    uint64_t t_go, t_end; /* monotonic ns */
    uint64_t cpu_ns, wait_ns;
    int rc;
    char why[S_WHY_MAX];
} s_report_t;

typedef struct {
    const bench_peer_cfg_t *cfg;
    pid_t parent;
    char server[PATH_MAX];
    char dir[PATH_MAX];                                 /* "" when not made */
    char sock[PATH_MAX + sizeof "/" BENCH_PEER_SOCKET]; /* checked to fit sun_path */
    char log[PATH_MAX + sizeof "/" BENCH_PEER_LOG];
    sp_child_t redis;
    bench_resp_t *conn; /* the parent's own connection */
    char sha[S_SHA_LEN + 1];
    s_report_t *board; /* shared with the clients, BENCH_PEER_CLIENTS_MAX slots */
    int go[2];
    double seconds; /* of the round under way */
    uint64_t round_seed;
    sp_child_t kid[BENCH_PEER_CLIENTS_MAX];
    /* every round's, warm-up included: what the audit checks */
    uint64_t bought, restocked, unknown;
} s_peer_t;

typedef struct {
    s_peer_t *peer;
    unsigned idx;
} s_side_t;

/* A round's figures. */
typedef struct {
    uint64_t orders;
    double wall_s, cpu_clients_s, wait_clients_s, cpu_server_s, wait_server_s;
} s_round_t;

_Static_assert(BENCH_PEER_CLIENTS_MAX <= SP_CHILD_AWAIT_MAX, "one await watches every client");

void bench_peer_label(const bench_peer_cfg_t *cfg, char *buf, size_t cap)
{
    snprintf(buf, cap, "redis/lua/%uc/p%u/%u", cfg->clients, cfg->pipeline, cfg->products);
}

static void s_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* redis-server in PATH (an empty entry is not the current folder here). */
static bool s_find_server(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    while (path != NULL && *path != '\0') {
        size_t len = strcspn(path, ":");
        if (len > 0) {
            snprintf(out, cap, "%.*s/" BENCH_PEER_SERVER, (int)len, path);
            if (access(out, X_OK) == 0) {
                return true;
            }
        }
        path += len + (path[len] == ':');
    }
    out[0] = '\0';
    return false;
}

bool bench_peer_available(char *why, size_t cap)
{
    char path[PATH_MAX];
    if (s_find_server(path, sizeof path)) {
        return true;
    }
    sp_why(why, cap, BENCH_PEER_SERVER " is not installed: " BENCH_PEER_INSTALL);
    return false;
}

/* ---- the server ---- */

/* In the forked child: becomes redis-server. */
static int s_server_main(void *arg, int life_wr)
{
    const s_peer_t *p = arg;
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* the bench gone: the server too */
    if (getppid() != p->parent) {
        return EXIT_FAILURE;
    }
    int log = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, SP_CHILD_LOG_MODE);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(log, STDOUT_FILENO) < 0 ||
        dup2(log, STDERR_FILENO) < 0) {
        return EXIT_FAILURE;
    }
    /* the server holds the life pipe's write end until it dies */
    if (fcntl(life_wr, F_SETFD, 0) < 0) {
        return EXIT_FAILURE;
    }
    char server[PATH_MAX], sock[sizeof p->sock], dir[PATH_MAX];
    snprintf(server, sizeof server, "%s", p->server);
    snprintf(sock, sizeof sock, "%s", p->sock);
    snprintf(dir, sizeof dir, "%s", p->dir);
    char port[] = "--port", zero[] = "0", usock[] = "--unixsocket", perm[] = "--unixsocketperm",
         mode[] = "700", save[] = "--save", none[] = "", aof[] = "--appendonly", no[] = "no",
         daemon[] = "--daemonize", no2[] = "no", dirf[] = "--dir";
    char *argv[] = {server, port, zero, usock,  sock, perm, mode, save,
                    none,   aof,  no,   daemon, no2,  dirf, dir,  NULL};
    execv(server, argv);
    dprintf(STDERR_FILENO, "exec %s: %s\n", server, strerror(errno));
    return EXIT_FAILURE;
}

/* Whether the server has died (its life pipe at end of file). */
static bool s_server_gone(const s_peer_t *p)
{
    struct pollfd pf = {.fd = p->redis.fd, .events = POLLIN};
    return p->redis.fd < 0 || poll(&pf, 1, 0) > 0;
}

/* One command, one reply (the reply in *r).  An error reply is -EPROTO
 * with its text in why. */
static int s_call(s_peer_t *p, int argc, const char *const *argv, const size_t *lens,
                  bench_resp_reply_t *r, char *why, size_t cap)
{
    uint64_t deadline = sp_now_ns() + (uint64_t)BENCH_PEER_IO_MS * SP_NS_PER_MS;
    int rc = bench_resp_cmd(p->conn, argc, argv, lens, deadline);
    if (rc == 0) {
        rc = bench_resp_flush(p->conn, deadline);
    }
    if (rc == 0) {
        rc = bench_resp_read(p->conn, r, deadline);
    }
    if (rc < 0) {
        sp_why(why, cap, "redis %s: %s", argv[0], sp_strerror(rc));
        return rc;
    }
    if (r->type == BENCH_RESP_ERROR) {
        sp_why(why, cap, "redis %s: %.*s", argv[0], (int)(r->len < 120 ? r->len : 120), r->str);
        return -EPROTO;
    }
    return 0;
}

/* The private folder, the server, a connection that answers PING. */
static int s_start(s_peer_t *p, char *why, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0') {
        tmp = "/tmp";
    }
    int n =
        snprintf(p->dir, sizeof p->dir, "%s/" BENCH_PEER_PREFIX "%d-XXXXXX", tmp, (int)getpid());
    if (n < 0 || (size_t)n + sizeof "/" BENCH_PEER_SOCKET > S_SUN_MAX) {
        p->dir[0] = '\0';
        sp_why(why, cap, "redis: a socket path under %s is too long (set TMPDIR)", tmp);
        return -ENAMETOOLONG;
    }
    if (mkdtemp(p->dir) == NULL) { /* mode 0700 */
        int err = errno;
        sp_why(why, cap, "mkdtemp %s: %s", p->dir, strerror(err));
        p->dir[0] = '\0';
        return -err;
    }
    snprintf(p->sock, sizeof p->sock, "%s/" BENCH_PEER_SOCKET, p->dir);
    snprintf(p->log, sizeof p->log, "%s/" BENCH_PEER_LOG, p->dir);
    int rc = sp_child_fork(&p->redis, SP_CHILD_PIPE | SP_CHILD_GROUP, s_server_main, p);
    if (rc < 0) {
        sp_why(why, cap, "redis: fork: %s", strerror(-rc));
        return rc;
    }
    uint64_t deadline = sp_now_ns() + (uint64_t)BENCH_PEER_START_MS * SP_NS_PER_MS;
    for (;;) {
        if (sp_signal_stopping()) {
            sp_why(why, cap, "interrupted");
            return SP_E_STOPPED;
        }
        if (s_server_gone(p)) {
            char last[S_LOG_LINE];
            (void)sp_child_reap(&p->redis);
            sp_file_last_line(p->log, last, sizeof last);
            sp_why(why, cap, "redis-server exited at start: %s", last[0] ? last : "(no output)");
            return -ECHILD;
        }
        p->conn = bench_resp_connect(p->sock);
        if (p->conn != NULL) {
            break;
        }
        if (sp_now_ns() >= deadline) {
            char last[S_LOG_LINE];
            sp_file_last_line(p->log, last, sizeof last);
            sp_why(why, cap, "redis-server did not accept on %s within %d ms: %s", p->sock,
                   BENCH_PEER_START_MS, last[0] ? last : "(no output)");
            return SP_E_TIMEOUT;
        }
        sp_sleep_ns((uint64_t)S_POLL_MS * SP_NS_PER_MS);
    }
    static const char *const ping[] = {"PING"};
    bench_resp_reply_t r;
    rc = s_call(p, 1, ping, NULL, &r, why, cap);
    if (rc == 0 && (r.type != BENCH_RESP_SIMPLE || r.len != 4 || memcmp(r.str, "PONG", 4) != 0)) {
        sp_why(why, cap, "redis PING: not PONG");
        rc = -EPROTO;
    }
    return rc;
}

static void s_key(char *buf, uint32_t id)
{
    snprintf(buf, S_KEY_MAX, S_KEY_PREFIX "%u", id);
}

/* Products 1..N with `stock` units each, and the script. */
static int s_load(s_peer_t *p, char *why, size_t cap)
{
    char keys[BENCH_PEER_CHUNK][S_KEY_MAX], stock[S_NUM_MAX];
    const char *argv[1 + 2 * BENCH_PEER_CHUNK];
    snprintf(stock, sizeof stock, "%llu", (unsigned long long)p->cfg->stock);
    bench_resp_reply_t r;
    for (uint32_t first = 1; first <= p->cfg->products; first += BENCH_PEER_CHUNK) {
        int argc = 0;
        argv[argc++] = "MSET";
        for (uint32_t k = 0; k < BENCH_PEER_CHUNK && first + k <= p->cfg->products; k++) {
            s_key(keys[k], first + k);
            argv[argc++] = keys[k];
            argv[argc++] = stock;
        }
        int rc = s_call(p, argc, argv, NULL, &r, why, cap);
        if (rc < 0) {
            return rc;
        }
    }
    const char *load[] = {"SCRIPT", "LOAD", s_script};
    int rc = s_call(p, 3, load, NULL, &r, why, cap);
    if (rc == 0 && (r.type != BENCH_RESP_BULK || r.len != S_SHA_LEN)) {
        sp_why(why, cap, "redis SCRIPT LOAD: no SHA-1 in the answer");
        rc = -EPROTO;
    }
    if (rc == 0) {
        memcpy(p->sha, r.str, S_SHA_LEN);
        p->sha[S_SHA_LEN] = '\0';
    }
    return rc;
}

/* ---- the clients ---- */

/* A client's failure for the parent to report: what it was doing, and the
 * error. */
static void s_report_why(s_report_t *rep, int rc, const char *doing)
{
    rep->rc = rc;
    snprintf(rep->why, sizeof rep->why, "%s: %s", doing, sp_strerror(rc));
}

/* One batch: `pipeline` orders written together, then their answers. */
static int s_batch(const s_peer_t *p, bench_resp_t *c, uint64_t *rng, s_report_t *rep)
{
    const bench_peer_cfg_t *cfg = p->cfg;
    char keys[BENCH_PEER_PIPELINE_MAX][S_KEY_MAX];
    bool restock[BENCH_PEER_PIPELINE_MAX];
    uint64_t deadline = sp_now_ns() + (uint64_t)BENCH_PEER_IO_MS * SP_NS_PER_MS;
    for (unsigned i = 0; i < cfg->pipeline; i++) {
        uint32_t id = 1 + (uint32_t)(sp_rand_next(rng) % cfg->products);
        restock[i] = cfg->restock_ratio > 0 && sp_rand_unit(rng) <= cfg->restock_ratio;
        s_key(keys[i], id);
        const char *argv[] = {"EVALSHA", p->sha, "1", keys[i], restock[i] ? "r" : "b", "1"};
        int rc = bench_resp_cmd(c, 6, argv, NULL, deadline);
        if (rc < 0) {
            s_report_why(rep, rc, "sending");
            return rc;
        }
    }
    int rc = bench_resp_flush(c, deadline);
    if (rc < 0) {
        s_report_why(rep, rc, "sending");
        return rc;
    }
    for (unsigned i = 0; i < cfg->pipeline; i++) {
        bench_resp_reply_t r;
        rc = bench_resp_read(c, &r, deadline);
        if (rc < 0) {
            s_report_why(rep, rc, "reading an answer");
            return rc;
        }
        if (r.type == BENCH_RESP_ERROR) {
            rep->rc = -EPROTO;
            snprintf(rep->why, sizeof rep->why, "redis: %.*s", (int)(r.len < 120 ? r.len : 120),
                     r.str);
            return -EPROTO;
        }
        if (r.type != BENCH_RESP_INT) {
            s_report_why(rep, -EPROTO, "an answer that is not an integer");
            return -EPROTO;
        }
        rep->replies++;
        if (r.integer >= 0) {
            rep->bought += !restock[i];
            rep->restocked += restock[i];
        } else if (r.integer == BENCH_PEER_OUT_OF_STOCK && !restock[i]) {
            rep->out_of_stock++;
        } else if (r.integer == BENCH_PEER_UNKNOWN) {
            rep->unknown++;
        } else {
            s_report_why(rep, -EPROTO, "an answer the script never gives");
            return -EPROTO;
        }
    }
    return 0;
}

/* Waits for "go" (the go pipe closed by the parent). */
static int s_await_go(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int n;
    do {
        n = poll(&pf, 1, BENCH_PEER_READY_MS);
    } while (n < 0 && errno == EINTR && !sp_signal_stopping());
    if (n <= 0) {
        return n == 0 ? SP_E_TIMEOUT : -errno;
    }
    char byte;
    return read(fd, &byte, 1) == 0 ? 0 : -EPROTO;
}

/* In a forked client: connect, ready, go, batches until the time is up. */
static int s_client_main(void *arg, int life_wr)
{
    const s_side_t *side = arg;
    const s_peer_t *p = side->peer;
    s_report_t *rep = &p->board[side->idx];
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* a bench that dies takes its clients */
    if (getppid() != p->parent) {
        return EXIT_FAILURE;
    }
    close(p->go[1]);
    bench_resp_t *c = bench_resp_connect(p->sock);
    if (c == NULL) {
        s_report_why(rep, -errno, "connect");
        return EXIT_FAILURE;
    }
    int rc = sp_child_say_ready(life_wr);
    if (rc == 0) {
        rc = s_await_go(p->go[0]);
    }
    if (rc < 0) {
        s_report_why(rep, rc, "waiting for go");
        bench_resp_destroy(&c);
        return EXIT_FAILURE;
    }
    uint64_t cpu0 = 0, wait0 = 0, cpu1 = 0, wait1 = 0;
    (void)sp_sched_process(0, &cpu0, &wait0); /* no schedstat: no CPU figure */
    rep->t_go = sp_now_ns();
    uint64_t end = rep->t_go + (uint64_t)(p->seconds * 1e9);
    uint64_t rng = (p->round_seed + (side->idx + 1) * S_SEED_MIX) | 1;
    uint64_t now = rep->t_go;
    while (rc == 0 && now < end && !sp_signal_stopping()) {
        rc = s_batch(p, c, &rng, rep);
        now = sp_now_ns();
    }
    rep->t_end = now;
    (void)sp_sched_process(0, &cpu1, &wait1);
    rep->cpu_ns = cpu1 - cpu0;
    rep->wait_ns = wait1 - wait0;
    bench_resp_destroy(&c);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Kills and reaps every client still there. */
static void s_kill_clients(s_peer_t *p)
{
    for (unsigned i = 0; i < BENCH_PEER_CLIENTS_MAX; i++) {
        (void)sp_child_signal(&p->kid[i], SIGKILL); /* -ESRCH: never started, or reaped */
        (void)sp_child_reap(&p->kid[i]);
        p->kid[i] = (sp_child_t){.fd = -1};
    }
}

/* A failed client's own words, or how it ended. */
static int s_client_failed(const s_peer_t *p, size_t i, char *why, size_t cap)
{
    const s_report_t *rep = &p->board[i];
    if (rep->rc < 0) {
        sp_why(why, cap, "redis client %zu: %s", i, rep->why);
        return rep->rc;
    }
    char how[48];
    sp_why(why, cap, "redis client %zu %s", i, sp_child_explain(p->kid[i].status, how, sizeof how));
    return -ECHILD;
}

/* sp_child_await_ready or _exit until `deadline`, in slices, so that a stop
 * request is seen within BENCH_PEER_SLICE_MS. */
static int s_await(s_peer_t *p, bool ready, uint64_t deadline, size_t *which)
{
    unsigned n = p->cfg->clients;
    for (;;) {
        if (sp_signal_stopping()) {
            return SP_E_STOPPED;
        }
        uint64_t slice = sp_now_ns() + (uint64_t)BENCH_PEER_SLICE_MS * SP_NS_PER_MS;
        uint64_t until = slice < deadline ? slice : deadline;
        int rc = ready ? sp_child_await_ready(p->kid, n, until, which)
                       : sp_child_await_exit(p->kid, n, until, which);
        if (rc != SP_E_TIMEOUT || until == deadline) {
            return rc;
        }
    }
}

/* One round of `seconds`: fork, ready, go, reap, add up. */
static int s_round(s_peer_t *p, double seconds, s_round_t *out, char *why, size_t cap)
{
    const bench_peer_cfg_t *cfg = p->cfg;
    memset(out, 0, sizeof *out);
    if (sp_signal_stopping()) {
        sp_why(why, cap, "interrupted");
        return SP_E_STOPPED;
    }
    memset(p->board, 0, BENCH_PEER_CLIENTS_MAX * sizeof *p->board);
    p->seconds = seconds;
    p->round_seed += S_SEED_MIX;
    if (pipe2(p->go, O_CLOEXEC) != 0) {
        int err = errno;
        sp_why(why, cap, "redis: pipe: %s", strerror(err));
        return -err;
    }
    s_side_t side[BENCH_PEER_CLIENTS_MAX];
    int rc = 0;
    for (unsigned i = 0; i < cfg->clients && rc == 0; i++) {
        side[i] = (s_side_t){.peer = p, .idx = i};
        rc = sp_child_fork(&p->kid[i], SP_CHILD_PIPE, s_client_main, &side[i]);
        if (rc < 0) {
            sp_why(why, cap, "redis: fork: %s", strerror(-rc));
        }
    }
    s_close_fd(&p->go[0]);
    size_t which = 0;
    if (rc == 0) {
        uint64_t deadline = sp_now_ns() + (uint64_t)BENCH_PEER_READY_MS * SP_NS_PER_MS;
        rc = s_await(p, true, deadline, &which);
        if (rc == -EPIPE || rc == -EPROTO) {
            (void)sp_child_reap(&p->kid[which]);
            rc = s_client_failed(p, which, why, cap);
        } else if (rc == SP_E_TIMEOUT) {
            sp_why(why, cap, "redis client %zu not ready within %d ms", which, BENCH_PEER_READY_MS);
        }
    }
    uint64_t srv_cpu0 = 0, srv_wait0 = 0, srv_cpu1 = 0, srv_wait1 = 0;
    if (rc == 0) {
        (void)sp_sched_process(p->redis.pid, &srv_cpu0, &srv_wait0);
        s_close_fd(&p->go[1]); /* go */
        uint64_t deadline =
            sp_now_ns() + (uint64_t)(seconds * 1e9) + (uint64_t)BENCH_PEER_GRACE_MS * SP_NS_PER_MS;
        rc = s_await(p, false, deadline, &which);
        (void)sp_sched_process(p->redis.pid, &srv_cpu1, &srv_wait1);
        if (rc == -ECHILD) {
            rc = s_client_failed(p, which, why, cap);
        } else if (rc == SP_E_TIMEOUT) {
            sp_why(why, cap, "redis client %zu still running %.1f s after the end of the round",
                   which, BENCH_PEER_GRACE_MS / 1e3);
        }
    }
    if (rc == SP_E_STOPPED) {
        sp_why(why, cap, "interrupted");
    } else if (rc < 0 && why[0] == '\0') {
        sp_why(why, cap, "redis: waiting for the clients: %s", sp_strerror(rc));
    }
    s_close_fd(&p->go[1]);
    s_kill_clients(p);
    if (rc < 0) {
        return rc;
    }
    uint64_t slowest = 0, cpu = 0, wait = 0;
    for (unsigned i = 0; i < cfg->clients; i++) {
        const s_report_t *rep = &p->board[i];
        out->orders += rep->replies;
        p->bought += rep->bought;
        p->restocked += rep->restocked;
        p->unknown += rep->unknown;
        cpu += rep->cpu_ns;
        wait += rep->wait_ns;
        if (rep->t_end > rep->t_go && rep->t_end - rep->t_go > slowest) {
            slowest = rep->t_end - rep->t_go;
        }
    }
    out->wall_s = (double)slowest / 1e9;
    out->cpu_clients_s = (double)cpu / 1e9;
    out->wait_clients_s = (double)wait / 1e9;
    out->cpu_server_s = (double)(srv_cpu1 - srv_cpu0) / 1e9;
    out->wait_server_s = (double)(srv_wait1 - srv_wait0) / 1e9;
    return 0;
}

/* ---- the audit and the end ---- */

/* Every product's stock read back: the units that left the catalogue
 * against the units the clients were told they bought and restocked. */
static int s_audit(s_peer_t *p, char *why, size_t cap)
{
    char keys[BENCH_PEER_CHUNK][S_KEY_MAX];
    const char *argv[1 + BENCH_PEER_CHUNK];
    const bench_peer_cfg_t *cfg = p->cfg;
    int64_t taken = 0;
    uint64_t missing = 0, above = 0;
    for (uint32_t first = 1; first <= cfg->products; first += BENCH_PEER_CHUNK) {
        int argc = 0;
        argv[argc++] = "MGET";
        for (uint32_t k = 0; k < BENCH_PEER_CHUNK && first + k <= cfg->products; k++) {
            s_key(keys[k], first + k);
            argv[argc++] = keys[k];
        }
        bench_resp_reply_t r;
        int rc = s_call(p, argc, argv, NULL, &r, why, cap);
        if (rc == 0 && (r.type != BENCH_RESP_ARRAY || r.integer != argc - 1)) {
            sp_why(why, cap, "redis MGET: not an array of %d", argc - 1);
            rc = -EPROTO;
        }
        for (int k = 1; rc == 0 && k < argc; k++) {
            uint64_t deadline = sp_now_ns() + (uint64_t)BENCH_PEER_IO_MS * SP_NS_PER_MS;
            rc = bench_resp_read(p->conn, &r, deadline);
            if (rc < 0) {
                sp_why(why, cap, "redis MGET: %s", sp_strerror(rc));
            } else if (r.type == BENCH_RESP_NIL) {
                missing++;
            } else if (r.type != BENCH_RESP_BULK || r.len == 0 || r.len >= S_NUM_MAX) {
                sp_why(why, cap, "redis MGET: %s is not a stock", argv[k]);
                rc = -EPROTO;
            } else {
                char num[S_NUM_MAX], *end = NULL;
                memcpy(num, r.str, r.len);
                num[r.len] = '\0';
                long long v = strtoll(num, &end, 10);
                if (*end != '\0') {
                    sp_why(why, cap, "redis MGET: %s holds '%s'", argv[k], num);
                    rc = -EPROTO;
                }
                above += v > (long long)cfg->stock;
                taken += (int64_t)cfg->stock - (int64_t)v;
            }
        }
        if (rc < 0) {
            return rc;
        }
    }
    int64_t told = (int64_t)p->bought - (int64_t)p->restocked;
    if (taken == told && missing == 0 && p->unknown == 0) {
        return 0;
    }
    sp_why(why, cap,
           "audit: %lld units left the catalogue, the clients were told %llu bought and %llu "
           "restocked; %llu products missing, %llu answered unknown, %llu above their stock",
           (long long)taken, (unsigned long long)p->bought, (unsigned long long)p->restocked,
           (unsigned long long)missing, (unsigned long long)p->unknown, (unsigned long long)above);
    return -EBADMSG;
}

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    /* best effort: what cannot go stays for the folder's rmdir to fail on */
    if (flag == FTW_DP) {
        (void)rmdir(path);
    } else {
        (void)unlink(path);
    }
    return 0;
}

/* SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL; the folder goes. */
static void s_stop(s_peer_t *p)
{
    if (p->conn != NULL) {
        static const char *const shutdown[] = {"SHUTDOWN", "NOSAVE"};
        uint64_t deadline = sp_now_ns() + (uint64_t)BENCH_PEER_STOP_MS * SP_NS_PER_MS;
        bench_resp_reply_t r;
        /* the answer to a shutdown that worked is the connection closing */
        if (bench_resp_cmd(p->conn, 2, shutdown, NULL, deadline) == 0 &&
            bench_resp_flush(p->conn, deadline) == 0) {
            (void)bench_resp_read(p->conn, &r, deadline);
        }
        bench_resp_destroy(&p->conn);
    }
    if (p->redis.pid > 0 && !p->redis.reaped) {
        size_t which;
        uint64_t deadline = sp_now_ns() + (uint64_t)BENCH_PEER_STOP_MS * SP_NS_PER_MS;
        if (sp_child_await_exit(&p->redis, 1, deadline, &which) == SP_E_TIMEOUT) {
            (void)sp_child_signal(&p->redis, SIGTERM);
            deadline = sp_now_ns() + (uint64_t)BENCH_PEER_STOP_MS * SP_NS_PER_MS;
            (void)sp_child_await_exit(&p->redis, 1, deadline, &which);
        }
        if (!p->redis.reaped) {
            (void)sp_child_wait(&p->redis, 0); /* SIGKILL, and reap */
        }
    }
    if (p->dir[0] != '\0') {
        (void)nftw(p->dir, s_rm_entry, S_FTW_FDS, FTW_DEPTH | FTW_PHYS);
        p->dir[0] = '\0';
    }
}

/* ---- the row ---- */

static void s_row_head(const bench_peer_cfg_t *cfg, bench_row_t *row)
{
    memset(row, 0, sizeof *row);
    snprintf(row->kind, sizeof row->kind, "peer");
    bench_peer_label(cfg, row->label, sizeof row->label);
    snprintf(row->series, sizeof row->series, "redis-lua");
    snprintf(row->transport, sizeof row->transport, "redis");
    snprintf(row->sync, sizeof row->sync, "lua");
    row->producers = cfg->clients;
    row->procs = cfg->clients + 1; /* and the server */
    row->batch = cfg->pipeline;
    row->products = cfg->products;
    bench_row_no_latency(row);
    row->cpu_prod = row->cpu_broker = row->cpu_work = row->cpu_total = -1;
    row->wait_prod = row->wait_broker = row->wait_work = -1;
    row->audit = -1;
}

static bool s_cfg_ok(const bench_peer_cfg_t *c)
{
    return c->clients >= 1 && c->clients <= BENCH_PEER_CLIENTS_MAX && c->pipeline >= 1 &&
           c->pipeline <= BENCH_PEER_PIPELINE_MAX && c->products >= 1 &&
           c->products <= BENCH_PEER_PRODUCTS_MAX && c->restock_ratio >= 0 &&
           c->restock_ratio <= 1 && c->seconds > 0 && c->warmup_s >= 0 && c->repeats >= 1 &&
           c->repeats <= BENCH_REPEATS_MAX && c->stock <= INT64_MAX / 2;
}

static void s_fail(bench_row_t *row, int rc, const char *why)
{
    row->audit = rc == SP_E_STOPPED ? -1 : 0;
    snprintf(row->note, sizeof row->note, "%s", why);
    if (rc != SP_E_STOPPED) {
        snprintf(row->flags, sizeof row->flags, "failed");
    }
}

/* The measured rounds into the row. */
static void s_fill(bench_row_t *row, const s_round_t *rounds, unsigned n)
{
    double ops[BENCH_REPEATS_MAX], cpu_c = 0, wait_c = 0, cpu_s = 0, wait_s = 0;
    uint64_t orders = 0;
    for (unsigned i = 0; i < n; i++) {
        ops[i] = rounds[i].wall_s > 0 ? (double)rounds[i].orders / rounds[i].wall_s : 0;
        orders += rounds[i].orders;
        cpu_c += rounds[i].cpu_clients_s;
        wait_c += rounds[i].wait_clients_s;
        cpu_s += rounds[i].cpu_server_s;
        wait_s += rounds[i].wait_server_s;
    }
    row->repeats = n;
    row->ops_min = bench_min(ops, n);
    row->ops_max = bench_max(ops, n);
    row->ops_med = bench_median(ops, n);
    row->orders = orders;
    if (orders > 0) {
        double m = (double)orders / S_MILLION;
        row->cpu_prod = cpu_c / m;
        row->cpu_broker = cpu_s / m;
        row->cpu_total = (cpu_c + cpu_s) / m;
    }
    row->wait_prod = cpu_c > 0 ? wait_c / cpu_c : -1;
    row->wait_broker = cpu_s > 0 ? wait_s / cpu_s : -1;
}

int bench_peer_redis(const bench_peer_cfg_t *cfg, bench_row_t *row)
{
    s_row_head(cfg, row);
    if (!s_cfg_ok(cfg)) {
        snprintf(row->note, sizeof row->note, "bad peer configuration");
        row->audit = 0;
        return -EINVAL;
    }
    static s_peer_t peer; /* large (the paths, the children): not on the stack */
    s_peer_t *p = &peer;
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->parent = getpid();
    p->go[0] = p->go[1] = -1;
    p->redis = (sp_child_t){.fd = -1};
    p->round_seed = cfg->seed != 0 ? cfg->seed : 1;
    for (unsigned i = 0; i < BENCH_PEER_CLIENTS_MAX; i++) {
        p->kid[i] = (sp_child_t){.fd = -1};
    }
    if (!s_find_server(p->server, sizeof p->server)) {
        snprintf(row->note, sizeof row->note,
                 BENCH_PEER_SERVER " is not installed: " BENCH_PEER_INSTALL);
        return -ENOENT;
    }
    char why[S_WHY_MAX + 200] = "";
    void *board = mmap(NULL, BENCH_PEER_CLIENTS_MAX * sizeof *p->board, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (board == MAP_FAILED) {
        int err = errno;
        sp_why(why, sizeof why, "redis: the clients' board: %s", strerror(err));
        s_fail(row, -err, why);
        return -err;
    }
    p->board = board;
    int rc = s_start(p, why, sizeof why);
    if (rc == 0) {
        rc = s_load(p, why, sizeof why);
    }
    s_round_t warm, rounds[BENCH_REPEATS_MAX];
    if (rc == 0 && cfg->warmup_s > 0) {
        rc = s_round(p, cfg->warmup_s, &warm, why, sizeof why);
    }
    unsigned n = 0;
    while (rc == 0 && n < cfg->repeats) {
        rc = s_round(p, cfg->seconds, &rounds[n], why, sizeof why);
        n += rc == 0;
    }
    if (rc == 0) {
        s_fill(row, rounds, n);
        rc = s_audit(p, why, sizeof why);
        row->audit = rc == 0 ? 1 : 0;
        if (rc < 0) {
            snprintf(row->note, sizeof row->note, "%s", why);
        }
    } else {
        s_fail(row, rc, why);
    }
    s_stop(p);
    (void)munmap(board, BENCH_PEER_CLIENTS_MAX * sizeof *p->board);
    p->board = NULL;
    return rc;
}
