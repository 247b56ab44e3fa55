/*
 * sp_testutil — fork/exec with timeouts, scratch catalogues, leftovers.
 */
#include "sp_mq.h"
#include "sp_catalogue.h"
#include "sp_testutil.h"

#include "sp_instance.h"
#include "sp_table.h"
#include "sp_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPT_ARGS_MAX 64
#define SPT_POLL_MS  20

void spt_instance(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "sp-%s-%ld", tag, (long)getpid());
}

const char *spt_bin(const char *role)
{
    static __thread char path[4][512];
    static __thread int next;
    const char *dir = getenv("SP_BIN_DIR");
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir ? dir : "bin", role);
    return p;
}

const char *spt_data(const char *file)
{
    static __thread char path[512];
    const char *dir = getenv("SP_DATA_DIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "data", file);
    return path;
}

const char *spt_python(void)
{
    const char *env = getenv("SP_PYTHON");
    return env != NULL && env[0] != '\0' ? env : "/usr/bin/python3";
}

void spt_source(char *buf, size_t cap, const char *rel)
{
    const char *data = getenv("SP_DATA_DIR");
    if (data != NULL) {
        snprintf(buf, cap, "%s/../%s", data, rel);
        if (access(buf, R_OK) == 0) {
            return;
        }
    }
    snprintf(buf, cap, "%s", rel);
}

void spt_catalogue(char *path, size_t cap, unsigned n, unsigned stock)
{
    snprintf(path, cap, "/tmp/sp-cat-%ld-XXXXXX", (long)getpid());
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "id_reg,name,category,weight,price,expiry,stock\n");
    for (unsigned i = 1; i <= n; i++) {
        fprintf(f, "%u,Product %u,Test,0.5,10,2030-01-01,%u\n", i, i, stock);
    }
    fclose(f);
}

/* bin/broker --instance INSTANCE --state-dir DIR [--fresh] EXTRA..., its
 * output into `log` (created or truncated) or the test's own; waits until
 * the instance is READY.  Returns the pid, or -1. */
static pid_t s_broker_exec(const char *instance, const char *state_dir, bool fresh, const char *log,
                           const char *const *extra)
{
    const char *argv[SPT_ARGS_MAX];
    int n = 0;
    argv[n++] = spt_bin("broker");
    argv[n++] = "--instance";
    argv[n++] = instance;
    argv[n++] = "--state-dir";
    argv[n++] = state_dir;
    if (fresh) {
        argv[n++] = "--fresh"; /* a reused pid must not resume an old run's table */
    }
    for (int i = 0; extra && extra[i] && n < SPT_ARGS_MAX - 1; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        /* a test that fails an assertion exits at once: its broker then
         * stops (and removes its IPC objects) instead of running on */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (log != NULL) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd < 0) {
                _exit(126);
            }
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    sp_table_t *t = NULL;
    if (sp_table_open_ready(&t, names.table, false, SP_TEST_WAIT_MS) < 0) {
        spt_stop(pid);
        return -1;
    }
    sp_table_close(&t);
    return pid;
}

pid_t spt_broker_start(const char *instance, const char *const *extra)
{
    return s_broker_exec(instance, "/tmp/sp-test-state", true, NULL, extra);
}

pid_t spt_broker_start_in(const char *instance, const char *state_dir, const char *log,
                          const char *const *extra)
{
    return s_broker_exec(instance, state_dir, false, log, extra);
}

bool spt_process_runs(const char *program, const char *needle)
{
    DIR *d = opendir("/proc");
    bool found = false;
    struct dirent *e;
    while (d != NULL && !found && (e = readdir(d)) != NULL) {
        char path[300], cmd[1024];
        snprintf(path, sizeof path, "/proc/%.20s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t n = fread(cmd, 1, sizeof cmd - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++) {
            cmd[i] = cmd[i] == '\0' ? ' ' : cmd[i];
        }
        cmd[n] = '\0';
        found = strstr(cmd, program) != NULL && strstr(cmd, needle) != NULL;
    }
    if (d != NULL) {
        closedir(d);
    }
    return found;
}

/* Waits until the instance is READY (0) or the broker exits (-1). */
static int s_wait_ready(pid_t pid, const char *instance)
{
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    uint64_t deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (sp_now_ns() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return -1;
        }
        sp_table_t *t = NULL;
        if (sp_table_open(&t, names.table, false) == 0) {
            bool ready = atomic_load(&sp_table_hdr(t)->state) == SP_TABLE_READY;
            sp_table_close(&t);
            if (ready) {
                return 0;
            }
        }
        usleep(SPT_POLL_MS * 1000);
    }
    spt_stop(pid);
    return -1;
}

/* True when 127.0.0.1:port can be bound now (nobody listens there). */
static bool s_port_free(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

pid_t spt_broker_start_tcp(const char *instance, const char *host, const char *const *extra,
                           unsigned *port)
{
    enum { S_TRIES = 8, S_STRIDE = 7919, S_PORTS = 5 };
    const char *argv[SPT_ARGS_MAX];
    char spec[128];
    for (int attempt = 0; attempt < S_TRIES; attempt++) {
        unsigned p = SPT_TCP_PORT_BASE +
                     (unsigned)(((unsigned long)getpid() + (unsigned long)attempt * S_STRIDE) %
                                SPT_TCP_PORT_SLOTS) *
                         S_PORTS;
        bool free_now = true;
        for (unsigned k = 0; k < S_PORTS; k++) {
            free_now = free_now && s_port_free(p + k);
        }
        if (!free_now) {
            continue;
        }
        if (host != NULL) {
            snprintf(spec, sizeof spec, "%s:%u", host, p);
        } else {
            snprintf(spec, sizeof spec, "%u", p);
        }
        int n = 0;
        argv[n++] = spt_bin("broker");
        argv[n++] = "--instance";
        argv[n++] = instance;
        argv[n++] = "--state-dir";
        argv[n++] = "/tmp/sp-test-state";
        argv[n++] = "--fresh";
        argv[n++] = "--tcp";
        argv[n++] = spec;
        for (int i = 0; extra && extra[i] && n < SPT_ARGS_MAX - 1; i++) {
            argv[n++] = extra[i];
        }
        argv[n] = NULL;
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[0], (char *const *)argv);
            _exit(127);
        }
        if (pid > 0 && s_wait_ready(pid, instance) == 0) {
            *port = p;
            return pid;
        }
    }
    return -1;
}

#define S_NATS_PORT_BASE  20000
#define S_NATS_PORT_SLOTS 10000
#define S_NATS_USER       "sp"
#define S_NATS_TRIES      5

/* True once something accepts on 127.0.0.1:port. */
static bool s_port_accepts(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* Appends "nats://[CRED@]127.0.0.1:PORT" of every node, comma-separated. */
static void s_nats_urls(const spt_nats_t *n, const char *cred, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < n->nodes && o < cap; i++) {
        o += (size_t)snprintf(out + o, cap - o, "%snats://%s%s127.0.0.1:%u", i ? "," : "",
                              cred ? cred : "", cred ? "@" : "", n->port[i]);
    }
}

static pid_t s_spawn(const char *const *argv, const char *out_path, bool tied);

bool spt_nats_node_start(spt_nats_t *n, unsigned i)
{
    char sport[16], cport[32], name[16], store[sizeof n->dir + 16], log[sizeof n->dir + 16];
    char routes[SP_ENDPOINT_MAX * 2] = "";
    snprintf(sport, sizeof sport, "%u", n->port[i]);
    snprintf(cport, sizeof cport, "nats://127.0.0.1:%u", n->cport[i]);
    snprintf(name, sizeof name, "n%u", i + 1);
    snprintf(store, sizeof store, "%s/n%u", n->dir, i + 1);
    snprintf(log, sizeof log, "%s/n%u.log", n->dir, i + 1);
    for (unsigned k = 0, o = 0; k < n->nodes; k++) {
        if (k != i) {
            o += (unsigned)snprintf(routes + o, sizeof routes - o, "%snats://127.0.0.1:%u",
                                    o ? "," : "", n->cport[k]);
        }
    }
    /* Debian puts it in /usr/sbin; execv takes no search path */
    const char *server = access("/usr/sbin/nats-server", X_OK) == 0 ? "/usr/sbin/nats-server"
                                                                    : "/usr/bin/nats-server";
    const char *argv[24] = {server, "-js", "-a", "127.0.0.1", "-p",        sport,    "-sd",
                            store,  "-n",  name, "--user",    S_NATS_USER, "--pass", n->pass};
    size_t k = 14;
    if (n->nodes > 1) {
        argv[k++] = "--cluster_name";
        argv[k++] = "spc";
        argv[k++] = "--cluster";
        argv[k++] = cport;
        argv[k++] = "--routes";
        argv[k++] = routes;
    }
    argv[k] = NULL;
    pid_t pid = s_spawn(argv, log, true);
    if (pid <= 0) {
        return false;
    }
    uint64_t deadline = sp_now_ns() + (uint64_t)SP_TEST_WAIT_MS * SP_NS_PER_MS;
    bool up = false;
    while (!up && sp_now_ns() < deadline && waitpid(pid, NULL, WNOHANG) == 0) {
        up = s_port_accepts(n->port[i]);
        if (!up) {
            usleep(10000);
        }
    }
    if (!up) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char *text = spt_slurp(log);
        fprintf(stderr, "nats-server n%u on port %u did not come up: %s\n", i + 1, n->port[i],
                text);
        free(text);
        return false;
    }
    n->pid[i] = pid;
    return true;
}

void spt_nats_node_kill(spt_nats_t *n, unsigned i, int sig)
{
    if (n->pid[i] > 0) {
        kill(n->pid[i], sig);
        if (sig == SIGKILL || sig == SIGTERM) {
            spt_wait(n->pid[i], SP_TEST_WAIT_MS);
            n->pid[i] = 0;
        }
    }
}

bool spt_nats_cluster_start(spt_nats_t *n, const char *tag, unsigned nodes)
{
    memset(n, 0, sizeof *n);
    if (nodes < 1 || nodes > SPT_NATS_NODES_MAX || !spt_tmpdir(n->dir, sizeof n->dir, tag)) {
        return false;
    }
    n->nodes = nodes;
    snprintf(n->pass, sizeof n->pass, "pw%ld", (long)getpid());
    for (unsigned t = 0; t < S_NATS_TRIES; t++) {
        unsigned base =
            S_NATS_PORT_BASE + ((unsigned)getpid() * 7u + t * 101u) % (S_NATS_PORT_SLOTS - 8);
        bool free_now = true;
        for (unsigned i = 0; i < nodes; i++) {
            n->port[i] = base + i;
            n->cport[i] = base + SPT_NATS_NODES_MAX + i;
            free_now = free_now && s_port_free(n->port[i]) && s_port_free(n->cport[i]);
        }
        if (!free_now) {
            continue;
        }
        bool all = true;
        for (unsigned i = 0; i < nodes && all; i++) {
            all = spt_nats_node_start(n, i);
        }
        if (all) {
            char cred[64];
            snprintf(cred, sizeof cred, "%s:%s", S_NATS_USER, n->pass);
            s_nats_urls(n, cred, n->url, sizeof n->url);
            s_nats_urls(n, S_NATS_USER ":wrong", n->bad_url, sizeof n->bad_url);
            s_nats_urls(n, NULL, n->bare_url, sizeof n->bare_url);
            snprintf(n->auth, sizeof n->auth, "%s/auth", n->dir);
            FILE *f = fopen(n->auth, "w");
            if (f != NULL) {
                fprintf(f, "%s %s\n", S_NATS_USER, n->pass);
                fchmod(fileno(f), 0600);
                fclose(f);
            }
            return true;
        }
        for (unsigned i = 0; i < nodes; i++) {
            spt_nats_node_kill(n, i, SIGKILL);
        }
    }
    spt_rmtree(n->dir);
    n->dir[0] = '\0';
    n->nodes = 0;
    return false;
}

bool spt_nats_start(spt_nats_t *n, const char *tag)
{
    return spt_nats_cluster_start(n, tag, 1);
}

void spt_nats_stop(spt_nats_t *n)
{
    for (unsigned i = 0; i < n->nodes; i++) {
        if (n->pid[i] > 0) {
            spt_nats_node_kill(n, i, SIGCONT);
            spt_nats_node_kill(n, i, SIGTERM);
        }
    }
    n->nodes = 0;
    if (n->dir[0] != '\0') {
        spt_rmtree(n->dir);
        n->dir[0] = '\0';
    }
}

bool spt_shop_start(spt_shop_t *shop, const char *instance, const char *transport, unsigned workers,
                    unsigned products, unsigned stock)
{
    memset(shop, 0, sizeof *shop);
    snprintf(shop->instance, sizeof shop->instance, "%s", instance);
    spt_catalogue(shop->catalogue, sizeof shop->catalogue, products, stock);
    char nworkers[16];
    snprintf(nworkers, sizeof nworkers, "%u", workers);
    const char *extra[] = {"--catalogue",
                           shop->catalogue,
                           "--workers",
                           nworkers,
                           transport != NULL ? "--transport" : NULL,
                           transport,
                           NULL};
    shop->broker = spt_broker_start(instance, extra);
    if (shop->broker <= 0) {
        unlink(shop->catalogue);
        return false;
    }
    return true;
}

const char *spt_shop_stop(spt_shop_t *shop)
{
    static char what[160];
    int status = spt_stop(shop->broker);
    unlink(shop->catalogue);
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(what, sizeof what, "broker of %s: exit status %d", shop->instance, status);
        return what;
    }
    if (spt_leftovers(shop->instance)) {
        snprintf(what, sizeof what, "IPC objects of %s left behind", shop->instance);
        return what;
    }
    return NULL;
}

int spt_stop(pid_t pid)
{
    int status;
    kill(pid, SIGINT);
    uint64_t deadline = sp_now_ns() + SP_TEST_WAIT_MS * SP_NS_PER_MS;
    while (sp_now_ns() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return status;
        }
        usleep(SPT_POLL_MS * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int spt_run(const char *const *argv, int timeout_ms, char **out)
{
    int p[2];
    if (pipe(p) < 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    uint64_t deadline = sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS;
    bool timed_out = false;
    for (;;) {
        uint64_t now = sp_now_ns();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int r = poll(&pfd, 1, (int)((deadline - now) / SP_NS_PER_MS) + 1);
        if (r <= 0) {
            continue;
        }
        if (len + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(p[0], buf + len, cap - len - 1);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(p[0]);
    int status = 0;
    if (timed_out) {
        kill(pid, SIGKILL);
    }
    waitpid(pid, &status, 0);
    if (out != NULL) {
        *out = buf;
    } else {
        free(buf);
    }
    if (timed_out || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

/* Forks and execs argv with stdout and stderr into out_path; `tied`: the
 * child is killed when this process dies (a server the test started must
 * not outlive a test process that crashed before it could stop it). */
static pid_t s_spawn(const char *const *argv, const char *out_path, bool tied)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        if (tied && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)) {
            _exit(125);
        }
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            _exit(126);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

pid_t spt_spawn(const char *const *argv, const char *out_path)
{
    return s_spawn(argv, out_path, false);
}

int spt_wait(pid_t pid, int timeout_ms)
{
    int status = 0;
    uint64_t deadline = sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        if (r < 0 || sp_now_ns() >= deadline) {
            break;
        }
        usleep(SPT_POLL_MS * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

char *spt_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    buf[0] = '\0';
    if (f == NULL) {
        return buf;
    }
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

bool spt_leftovers(const char *instance)
{
    sp_names_t names;
    sp_names_init(&names, instance, NULL);
    char path[SP_PATH_MAX];
    snprintf(path, sizeof path, "/dev/shm%s", names.table);
    struct stat st;
    if (stat(path, &st) == 0) {
        return true;
    }
    snprintf(path, sizeof path, "/dev/shm%s", names.ring);
    if (stat(path, &st) == 0) {
        return true;
    }
    mqd_t q = mq_open(names.orders_mq, O_RDONLY);
    if (q != (mqd_t)-1) {
        mq_close(q);
        return true;
    }
    for (uint32_t id = 1; id < 64; id++) {
        char name[SP_IPC_NAME_MAX];
        sp_names_reply_mq(&names, id, name, sizeof name);
        q = mq_open(name, O_RDONLY);
        if (q != (mqd_t)-1) {
            mq_close(q);
            return true;
        }
    }
    return stat(names.run_dir, &st) == 0;
}

long long spt_json_num(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

sp_tally_t spt_tally(sp_table_t *t, uint32_t id)
{
    sp_tally_t tl = {0};
    const sp_row_t *r = sp_table_row(t, id);
    if (r != NULL) {
        sp_row_stock_settled(r, &tl);
    }
    return tl;
}

bool spt_tmpdir(char *buf, size_t cap, const char *tag)
{
    int n = snprintf(buf, cap, "/tmp/sp-%s-%ld-XXXXXX", tag, (long)getpid());
    return n > 0 && (size_t)n < cap && mkdtemp(buf) != NULL;
}

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

void spt_rmtree(const char *dir)
{
    if (dir != NULL && dir[0] != '\0') {
        nftw(dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

int spt_scratch_table(sp_table_t **out, char *name, size_t cap, const char *tag, const char *test,
                      unsigned n, uint32_t stock, sp_sync_t sync)
{
    snprintf(name, cap, "/sp-%s-%ld-%s", tag, (long)getpid(), test);
    sp_table_unlink(name);
    size_t room = 64 + (size_t)n * 64;
    char *csv = malloc(room);
    if (csv == NULL) {
        return -ENOMEM;
    }
    size_t len = (size_t)snprintf(csv, room, "%s\n", SP_CSV_HEADER);
    for (unsigned id = 1; id <= n; id++) {
        len += (size_t)snprintf(csv + len, room - len, "%u,Product %u,Test,1,2.5,2030-01-31,%u\n",
                                id, id, stock);
    }
    sp_catalogue_t *cat = sp_catalogue_new();
    sp_csv_error_t err;
    int rc = cat == NULL ? -ENOMEM : sp_catalogue_parse(cat, csv, len, &err);
    free(csv);
    if (rc == 0) {
        sp_table_opts_t opts = {.sync = sync, .transport = sp_transport_mq.id};
        rc = sp_table_create(out, name, cat, &opts);
    }
    sp_catalogue_destroy(&cat);
    return rc;
}

sp_link_t **spt_link_slot(sp_link_t **links, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (links[i] == NULL) {
            return &links[i];
        }
    }
    return NULL;
}

sp_link_cfg_t spt_link_cfg(sp_link_role_t role, const sp_transport_t *t, const sp_names_t *names,
                           uint32_t id, size_t size)
{
    return (sp_link_cfg_t){
        .role = role, .transport = t, .names = names, .id = id, .max_msg = size, .reply_msg = size};
}
