/*
 * sp_loadgen — the load generator: customers as processes or threads, their
 * reports collected and merged (sp_loadgen.h).
 */
#include "sp_loadgen.h"

#include "sp_customer.h"
#include "sp_error.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct sp_loadgen {
    sp_load_cfg_t cfg;
    sp_load_stats_t st; /* the last run's */
    uint64_t *sold, *restocked;
    uint32_t capacity;
};

/* The whole buffer through the pipe, or -errno. */
static int s_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The whole buffer from the pipe; -EPIPE when the writer ended first. */
static int s_read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n == 0 ? -EPIPE : -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* What a customer process sends its parent through the pipe. */
typedef struct {
    int32_t rc;
    uint32_t capacity;
    char why[200];
    sp_load_stats_t st;
} sp_cust_report_t;

/* A customer process: runs, reports (then its ledger arrays) and exits. */
static void s_child(const sp_load_cfg_t *cfg, unsigned index, uint64_t quota, int fd)
{
    sp_cust_report_t *rep = calloc(1, sizeof *rep);
    uint64_t *sold = NULL, *restocked = NULL;
    if (rep == NULL) {
        _exit(1);
    }
    rep->rc = sp_customer_run(cfg, index, quota, &rep->st, &sold, &restocked, &rep->capacity,
                              rep->why, sizeof rep->why);
    int rc = s_write_all(fd, rep, sizeof *rep);
    if (rc == 0 && cfg->ledger && rep->capacity > 0 && sold != NULL) {
        size_t n = (size_t)rep->capacity + 1;
        rc = s_write_all(fd, sold, n * sizeof *sold);
        if (rc == 0) {
            rc = s_write_all(fd, restocked, n * sizeof *restocked);
        }
    }
    close(fd);
    free(sold);
    free(restocked);
    free(rep);
    _exit(rc == 0 ? 0 : 1);
}

/* Orders customer i places when the run is bounded by a count (0: unbounded). */
static uint64_t s_quota(const sp_load_cfg_t *cfg, unsigned i)
{
    return cfg->count / cfg->customers + (i < cfg->count % cfg->customers);
}

/* Adds one customer's ledger (n entries each) to the run's, allocating it on
 * first use.  Returns 0 or -ENOMEM. */
static int s_ledger_add(uint64_t **sold, uint64_t **restocked, const uint64_t *s_sold,
                        const uint64_t *s_restocked, size_t n)
{
    if (*sold == NULL) {
        *sold = calloc(n, sizeof **sold);
        *restocked = calloc(n, sizeof **restocked);
    }
    if (*sold == NULL || *restocked == NULL) {
        return -ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        (*sold)[k] += s_sold ? s_sold[k] : 0;
        (*restocked)[k] += s_restocked ? s_restocked[k] : 0;
    }
    return 0;
}

typedef struct {
    const sp_load_cfg_t *cfg;
    unsigned index;
    pthread_t thread;
    sp_cust_report_t rep;
    uint64_t *sold, *restocked;
} sp_cust_thread_t;

/* A customer thread: runs and leaves its report in its slot. */
static void *s_cust_thread(void *arg)
{
    sp_cust_thread_t *t = arg;
    t->rep.rc = sp_customer_run(t->cfg, t->index, s_quota(t->cfg, t->index), &t->rep.st, &t->sold,
                                &t->restocked, &t->rep.capacity, t->rep.why, sizeof t->rep.why);
    return NULL;
}

/* The customers as threads of this process. */
static int s_load_threads(const sp_load_cfg_t *cfg, sp_load_stats_t *st, uint64_t **sold,
                          uint64_t **restocked, uint32_t *capacity, char *why, size_t cap)
{
    sp_cust_thread_t *t = calloc(cfg->customers, sizeof *t);
    if (t == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < cfg->customers; i++) {
        if (cfg->count > 0 && s_quota(cfg, i) == 0) {
            continue;
        }
        t[started] = (sp_cust_thread_t){.cfg = cfg, .index = i};
        int e = pthread_create(&t[started].thread, NULL, s_cust_thread, &t[started]);
        if (e != 0) {
            rc = -e;
            snprintf(why, cap, "cannot start customer thread %u: %s", i, sp_strerror(rc));
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(t[i].thread, NULL);
        sp_cust_report_t *rep = &t[i].rep;
        if (rep->rc < 0 && rc == 0) {
            rc = rep->rc;
            snprintf(why, cap, "%s", rep->why);
        }
        sp_load_merge(st, &rep->st, i == 0);
        if (cfg->ledger && rep->rc >= 0 && rep->capacity > 0 && rc == 0) {
            *capacity = rep->capacity;
            rc =
                s_ledger_add(sold, restocked, t[i].sold, t[i].restocked, (size_t)rep->capacity + 1);
        }
        free(t[i].sold);
        free(t[i].restocked);
    }
    free(t);
    return rc;
}

/* The run: validates, then the customers as threads or as processes. */
static int s_run(const sp_load_cfg_t *cfg, sp_load_stats_t *st, uint64_t **sold,
                 uint64_t **restocked, uint32_t *capacity, char *why, size_t cap)
{
    sp_load_stats_init(st);
    *sold = *restocked = NULL;
    *capacity = 0;
    if (cfg->customers < 1 || cfg->customers > SP_CUSTOMERS_MAX) {
        snprintf(why, cap, "--customers must be 1..%d", SP_CUSTOMERS_MAX);
        return SP_E_USAGE;
    }
    if (cfg->count == 0 && cfg->duration_s <= 0) {
        snprintf(why, cap, "give --count or --duration (or both)");
        return SP_E_USAGE;
    }
    if (cfg->threads) {
        return s_load_threads(cfg, st, sold, restocked, capacity, why, cap);
    }
    /* the customers as processes, each reporting through its own pipe */
    pid_t pids[SP_CUSTOMERS_MAX];
    int fds[SP_CUSTOMERS_MAX];
    unsigned started = 0;
    int rc = 0;
    for (unsigned i = 0; i < cfg->customers; i++) {
        uint64_t quota = cfg->count > 0 ? s_quota(cfg, i) : 0;
        if (cfg->count > 0 && quota == 0) {
            continue;
        }
        int p[2];
        if (pipe(p) < 0) {
            rc = -errno;
            break;
        }
        pid_t pid = fork();
        if (pid < 0) {
            rc = -errno;
            close(p[0]);
            close(p[1]);
            break;
        }
        if (pid == 0) {
            for (unsigned j = 0; j < started; j++) {
                close(fds[j]);
            }
            close(p[0]);
            s_child(cfg, i, quota, p[1]);
        }
        close(p[1]);
        pids[started] = pid;
        fds[started] = p[0];
        started++;
    }
    sp_cust_report_t *rep = malloc(sizeof *rep);
    uint64_t *buf = NULL;
    if (rep == NULL) {
        rc = -ENOMEM;
    }
    bool first = true;
    for (unsigned i = 0; i < started; i++) {
        int r = rep ? s_read_all(fds[i], rep, sizeof *rep) : -ENOMEM;
        if (r == 0 && rep->rc < 0 && rc == 0) {
            rc = rep->rc;
            snprintf(why, cap, "%s", rep->why);
        }
        if (r == 0) {
            sp_load_merge(st, &rep->st, first);
            first = false;
        }
        if (r == 0 && cfg->ledger && rep->capacity > 0 && rep->rc >= 0) {
            size_t n = (size_t)rep->capacity + 1;
            if (buf == NULL) {
                *capacity = rep->capacity;
                buf = malloc(n * sizeof *buf);
            }
            if (buf == NULL || rep->capacity != *capacity) {
                r = -ENOMEM;
            } else {
                r = s_read_all(fds[i], buf, n * sizeof *buf);
                if (r == 0) {
                    r = s_ledger_add(sold, restocked, buf, NULL, n);
                }
                if (r == 0) {
                    r = s_read_all(fds[i], buf, n * sizeof *buf);
                }
                if (r == 0) {
                    r = s_ledger_add(sold, restocked, NULL, buf, n);
                }
            }
        }
        if (r < 0 && rc == 0) {
            rc = r;
            snprintf(why, cap, "customer %u died before reporting", i);
        }
        close(fds[i]);
    }
    for (unsigned i = 0; i < started; i++) {
        int status;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
        }
    }
    free(buf);
    free(rep);
    return rc;
}

sp_loadgen_t *sp_loadgen_new(const sp_load_cfg_t *cfg)
{
    sp_loadgen_t *self = calloc(1, sizeof *self);
    if (self == NULL) {
        return NULL;
    }
    self->cfg = *cfg;
    sp_load_stats_init(&self->st);
    return self;
}

int sp_loadgen_run(sp_loadgen_t *self, char *why, size_t cap)
{
    free(self->sold);
    free(self->restocked);
    self->sold = self->restocked = NULL;
    return s_run(&self->cfg, &self->st, &self->sold, &self->restocked, &self->capacity, why, cap);
}

const sp_load_stats_t *sp_loadgen_stats(const sp_loadgen_t *self)
{
    return &self->st;
}

const uint64_t *sp_loadgen_sold(const sp_loadgen_t *self)
{
    return self->sold;
}

const uint64_t *sp_loadgen_restocked(const sp_loadgen_t *self)
{
    return self->restocked;
}

uint32_t sp_loadgen_capacity(const sp_loadgen_t *self)
{
    return self->capacity;
}

void sp_loadgen_destroy(sp_loadgen_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_loadgen_t *self = *self_p;
    free(self->sold);
    free(self->restocked);
    free(self);
    *self_p = NULL;
}
