/*
 * sp_mq — the POSIX message queue transport; the only module that calls mq_*.
 *
 * There is no broker on this data path: every producer writes batches into
 * the one kernel queue /NAME.orders, every worker reads from it, and each
 * result message goes to the reply queue of the producer that sent the
 * order.  The kernel's limits are part of the design, not an afterthought:
 * msg_max (default 10) bounds the depth and msgsize_max (8192) the message,
 * and RLIMIT_MSGQUEUE (800 KiB per user) bounds all queues of a user
 * together.  We read them, use what is allowed, and when a request does not
 * fit we say which setting to raise instead of clamping.
 */
#include "sp_mq.h"

#include "sp_error.h"
#include "sp_hello.h"
#include "sp_link_impl.h"
#include "sp_limits.h"
#include "sp_sys.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#define SP_MQ_PROC_DIR    "/proc/sys/fs/mqueue/"
#define SP_MQ_MODE        0600
#define SP_MQ_FS_DIR      "/dev/mqueue"
#define SP_MQ_REPLY_CACHE 64                   /* reply queues a worker keeps open */
#define SP_MQ_SWEEP_NS    (250 * SP_NS_PER_MS) /* how often it lets go of departed ones */
#define SP_MQ_PRIO        0

typedef struct {
    uint32_t producer_id;
    mqd_t mqd;
} sp_mq_reply_t;

typedef struct {
    sp_link_t base;
    sp_link_role_t role;
    uint32_t id;      /* producer: 0 until its WELCOME gave one */
    uint64_t tag;     /* producer without an id: its hello queue's tag */
    size_t reply_msg; /* producer: message size of its reply queue */
    mqd_t orders;     /* write end (producer) or read end (worker) */
    mqd_t reply;      /* producer: its own reply queue */
    char reply_name[SP_IPC_NAME_MAX];
    const sp_names_t *names;
    sp_mq_reply_t cache[SP_MQ_REPLY_CACHE]; /* worker: open reply queues */
    unsigned cache_next;
    uint64_t next_sweep_ns;
} sp_mq_link_t;

long sp_mq_limit(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, SP_MQ_PROC_DIR "%s", name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }
    long v = -EINVAL;
    /* NOLINTNEXTLINE(cert-err34-c): the kernel writes this file, one plain decimal */
    if (fscanf(f, "%ld", &v) != 1) {
        v = -EINVAL;
    }
    (void)fclose(f); /* read only: nothing to lose */
    return v;
}

/* Checks depth/msgsize against the sysctls (sp_limits words the refusal);
 * fills *why on refusal. */
static int s_check_limits(long depth, long msgsize, char *why, size_t cap)
{
    sp_limits_t have;
    sp_limits_read(&have);
    sp_limits_need_t need = {
        .mq_depth = (uint64_t)depth, .mq_msgsize = (uint64_t)msgsize, .mq_queues = 1};
    have.queues_max = SP_LIMIT_UNKNOWN; /* ENOSPC at mq_open explains it for one queue */
    have.mq_bytes = SP_LIMIT_UNKNOWN;   /* and EMFILE this one */
    return sp_limits_check(&need, &have, why, cap) < 0 ? SP_E_MQ_LIMIT : 0;
}

/* Creates a queue exclusively; explains EMFILE (RLIMIT_MSGQUEUE) and
 * ENOSPC (queues_max). */
static int s_create(const char *name, int flags, long depth, long msgsize, mqd_t *out, char *why,
                    size_t cap)
{
    int rc = s_check_limits(depth, msgsize, why, cap);
    if (rc < 0) {
        return rc;
    }
    struct mq_attr attr = {.mq_maxmsg = depth, .mq_msgsize = msgsize};
    mqd_t q = mq_open(name, flags | O_CREAT | O_EXCL | O_CLOEXEC, SP_MQ_MODE, &attr);
    if (q == (mqd_t)-1) {
        int err = errno;
        if (err == EMFILE) {
            struct rlimit rl;
            getrlimit(RLIMIT_MSGQUEUE, &rl);
            sp_why(why, cap,
                   "RLIMIT_MSGQUEUE (%ld bytes for all of this user's queues) is used up: "
                   "raise it with 'ulimit -q' or use smaller queues (this one needs ~%ld bytes)",
                   (long)rl.rlim_cur, depth * (msgsize + (long)sizeof(void *) * 8));
            return SP_E_MQ_LIMIT;
        }
        if (err == ENOSPC) {
            sp_why(why, cap, "fs.mqueue.queues_max (%ld) reached: raise it with sysctl",
                   sp_mq_limit("queues_max"));
            return SP_E_MQ_LIMIT;
        }
        if (err == EINVAL) {
            sp_why(why, cap, "the kernel refused depth %ld / message size %ld", depth, msgsize);
            return SP_E_MQ_LIMIT;
        }
        return -err;
    }
    *out = q;
    return 0;
}

int sp_mq_orders_size(long *depth, long *msgsize)
{
    if (*depth <= 0) {
        *depth = sp_mq_limit("msg_max");
        if (*depth <= 0) {
            return *depth < 0 ? (int)*depth : -EINVAL;
        }
    }
    if (*msgsize <= 0) {
        long max = sp_mq_limit("msgsize_max");
        *msgsize = (max > 0 && max < SP_MQ_MSGSIZE_DEFAULT) ? max : SP_MQ_MSGSIZE_DEFAULT;
    }
    return 0;
}

int sp_mq_create_orders(const sp_names_t *names, long depth, long msgsize, long *depth_out,
                        long *msgsize_out, char *why, size_t why_cap)
{
    int rc0 = sp_mq_orders_size(&depth, &msgsize);
    if (rc0 < 0) {
        return rc0;
    }
    /* the order queue carries order messages and producers' HELLOs */
    long least = (long)sp_wire_msg_size(SP_MSG_ORDERS, 1);
    least = least > (long)SP_HELLO_MSG_SIZE ? least : (long)SP_HELLO_MSG_SIZE;
    if (msgsize < least) {
        sp_why(why, why_cap, "message size %ld is below one order message or HELLO (%ld bytes)",
               msgsize, least);
        return SP_E_USAGE;
    }
    mqd_t q = (mqd_t)-1;
    int rc = s_create(names->orders_mq, O_RDONLY, depth, msgsize, &q, why, why_cap);
    if (rc < 0) {
        return rc;
    }
    mq_close(q);
    *depth_out = depth;
    *msgsize_out = msgsize;
    return 0;
}

int sp_mq_owner(const char *name, uid_t *uid)
{
    /* opening does not write; a queue we may not even open is not ours */
    mqd_t q = mq_open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (q == (mqd_t)-1) {
        return -errno;
    }
    struct stat st;
    int rc = fstat((int)q, &st) < 0 ? -errno : 0;
    mq_close(q);
    if (rc == 0) {
        *uid = st.st_uid;
    }
    return rc;
}

int sp_mq_remove_all(const sp_names_t *names)
{
    int rc = sp_mq_unlink_name(names->orders_mq);
    /* reply queues: their names are only listed where the mqueue filesystem
     * is mounted; the broker also removes the ids it handed out by name */
    DIR *d = opendir(SP_MQ_FS_DIR);
    if (d == NULL) {
        return rc;
    }
    char prefix[SP_IPC_NAME_MAX];
    snprintf(prefix, sizeof prefix, "%s.r.", names->name);
    size_t plen = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, plen) == 0) {
            char name[sizeof e->d_name + 1];
            snprintf(name, sizeof name, "/%s", e->d_name);
            sp_mq_unlink_name(name);
        }
    }
    closedir(d);
    return rc;
}

int sp_mq_unlink_name(const char *name)
{
    uid_t uid;
    int rc = sp_mq_owner(name, &uid);
    if (rc < 0) {
        return rc;
    }
    if (uid != geteuid()) {
        return -EACCES; /* another user's queue under our name: not ours to remove */
    }
    return mq_unlink(name) < 0 ? -errno : 0;
}

long sp_mq_orders_depth(const sp_names_t *names)
{
    return sp_mq_depth(names->orders_mq);
}

long sp_mq_depth(const char *name)
{
    mqd_t q = mq_open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (q == (mqd_t)-1) {
        return -errno;
    }
    struct mq_attr attr;
    long rc = mq_getattr(q, &attr) < 0 ? -errno : attr.mq_curmsgs;
    mq_close(q);
    return rc;
}

static int s_timed_send(mqd_t q, const void *msg, size_t len, int timeout_ms)
{
    struct timespec deadline = sp_deadline_realtime(timeout_ms);
    if (sp_sys_mq_timedsend(q, msg, len, SP_MQ_PRIO, &deadline) < 0) {
        return errno == ETIMEDOUT ? SP_E_TIMEOUT : -errno;
    }
    return 0;
}

/* Receives one message, waiting up to wait_us microseconds (<= 0: not at
 * all).  Returns its length, SP_E_TIMEOUT or -errno. */
static int s_timed_recv_us(mqd_t q, void *buf, size_t cap, long wait_us)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    uint64_t ns = (uint64_t)deadline.tv_nsec + (uint64_t)(wait_us < 0 ? 0 : wait_us) * SP_NS_PER_US;
    deadline.tv_sec += (time_t)(ns / SP_NS_PER_SEC);
    deadline.tv_nsec = (long)(ns % SP_NS_PER_SEC);
    ssize_t n = mq_timedreceive(q, buf, cap, NULL, &deadline);
    if (n < 0) {
        return errno == ETIMEDOUT ? SP_E_TIMEOUT : -errno;
    }
    return (int)n;
}

/* Worker side: the reply queue of `producer_id`, opened on first use. */
static int s_reply_queue(sp_mq_link_t *l, uint32_t producer_id, mqd_t *out)
{
    for (unsigned i = 0; i < SP_MQ_REPLY_CACHE; i++) {
        if (l->cache[i].mqd != (mqd_t)-1 && l->cache[i].producer_id == producer_id) {
            *out = l->cache[i].mqd;
            return 0;
        }
    }
    char name[SP_IPC_NAME_MAX];
    sp_names_reply_mq(l->names, producer_id, name, sizeof name);
    mqd_t q = mq_open(name, O_WRONLY | O_CLOEXEC);
    if (q == (mqd_t)-1) {
        return -errno;
    }
    sp_mq_reply_t *slot = &l->cache[l->cache_next];
    l->cache_next = (l->cache_next + 1) % SP_MQ_REPLY_CACHE;
    if (slot->mqd != (mqd_t)-1) {
        mq_close(slot->mqd);
    }
    slot->producer_id = producer_id;
    slot->mqd = q;
    *out = q;
    return 0;
}

static void s_forget_reply(sp_mq_link_t *l, uint32_t producer_id)
{
    for (unsigned i = 0; i < SP_MQ_REPLY_CACHE; i++) {
        if (l->cache[i].mqd != (mqd_t)-1 && l->cache[i].producer_id == producer_id) {
            mq_close(l->cache[i].mqd);
            l->cache[i].mqd = (mqd_t)-1;
        }
    }
}

/* Closes the cached reply queues whose producer has gone (its queue name is
 * unlinked).  A queue stays allocated, and counts against its creator's
 * RLIMIT_MSGQUEUE, for as long as anybody holds it open: without this, a
 * worker would keep every departed producer's queue alive and new producers
 * would soon fail to create theirs. */
static void s_sweep_replies(sp_mq_link_t *l)
{
    for (unsigned i = 0; i < SP_MQ_REPLY_CACHE; i++) {
        if (l->cache[i].mqd == (mqd_t)-1) {
            continue;
        }
        char name[SP_IPC_NAME_MAX];
        sp_names_reply_mq(l->names, l->cache[i].producer_id, name, sizeof name);
        mqd_t q = mq_open(name, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        struct stat old, now;
        if (q != (mqd_t)-1 && fstat(l->cache[i].mqd, &old) == 0 && fstat(q, &now) == 0 &&
            old.st_ino != now.st_ino) {
            /* the producer id came back with a new queue (a one-shot
             * reusing its id): answer into the new one from now on */
            mq_close(l->cache[i].mqd);
            l->cache[i].mqd = q;
        } else if (q != (mqd_t)-1) {
            mq_close(q);
        } else if (errno == ENOENT) {
            mq_close(l->cache[i].mqd);
            l->cache[i].mqd = (mqd_t)-1;
        }
    }
}

/* Worker side: the WELCOME for a producer without an id goes to the hello
 * queue its tag names, opened just for this (a producer asks once). */
static int s_send_hello(sp_mq_link_t *l, const void *msg, size_t len, uint64_t tag, int timeout_ms)
{
    if (tag == 0) {
        return -ENOENT;
    }
    char name[SP_IPC_NAME_MAX];
    sp_names_hello_mq(l->names, tag, name, sizeof name);
    mqd_t q = mq_open(name, O_WRONLY | O_CLOEXEC);
    if (q == (mqd_t)-1) {
        return -errno;
    }
    int rc = s_timed_send(q, msg, len, timeout_ms);
    mq_close(q);
    return rc;
}

static int s_send(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                  int timeout_ms)
{
    sp_mq_link_t *l = (sp_mq_link_t *)self;
    if (l->role == SP_LINK_PRODUCER) {
        return s_timed_send(l->orders, msg, len, timeout_ms);
    }
    if (route->producer_id == 0) {
        return s_send_hello(l, msg, len, route->reply_tag, timeout_ms);
    }
    mqd_t q = (mqd_t)-1;
    int rc = s_reply_queue(l, route->producer_id, &q);
    if (rc < 0) {
        return rc;
    }
    /* a full queue (SP_E_TIMEOUT; timeout 0 does not wait: the worker's
     * way with a producer that does not read) is still that producer's:
     * keep it open; any other failure forgets it */
    rc = s_timed_send(q, msg, len, timeout_ms);
    if (rc < 0 && rc != SP_E_TIMEOUT) {
        s_forget_reply(l, route->producer_id);
    }
    return rc;
}

static int s_recv_us(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, long wait_us)
{
    sp_mq_link_t *l = (sp_mq_link_t *)self;
    mqd_t q = l->role == SP_LINK_PRODUCER ? l->reply : l->orders;
    if (l->role == SP_LINK_WORKER) {
        uint64_t now = sp_now_ns();
        if (now >= l->next_sweep_ns) {
            s_sweep_replies(l);
            l->next_sweep_ns = now + SP_MQ_SWEEP_NS;
        }
    }
    int n = s_timed_recv_us(q, buf, cap, wait_us);
    if (n >= 0 && route != NULL) {
        memset(route, 0, sizeof *route);
        if ((size_t)n >= SP_WIRE_HDR_SIZE) {
            sp_msg_hdr_t h;
            sp_wire_get_hdr(buf, &h);
            route->producer_id = h.sender;
        }
    }
    return n;
}

static int s_recv(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms)
{
    return s_recv_us(self, buf, cap, route, timeout_ms < 0 ? 0 : (long)timeout_ms * 1000);
}

static long s_depth(sp_link_t *self)
{
    sp_mq_link_t *l = (sp_mq_link_t *)self;
    struct mq_attr attr;
    mqd_t q = l->role == SP_LINK_PRODUCER ? l->reply : l->orders;
    return mq_getattr(q, &attr) < 0 ? -errno : attr.mq_curmsgs;
}

/* The reply queue's depth (a producer's only). */
static long s_room(sp_link_t *self)
{
    sp_mq_link_t *l = (sp_mq_link_t *)self;
    struct mq_attr attr;
    if (l->role != SP_LINK_PRODUCER || l->reply == (mqd_t)-1 || mq_getattr(l->reply, &attr) < 0) {
        return 0;
    }
    return attr.mq_maxmsg;
}

/* A Linux mqd_t is a descriptor poll(2) takes. */
static int s_wait_fd(sp_link_t *self)
{
    sp_mq_link_t *l = (sp_mq_link_t *)self;
    mqd_t q = l->role == SP_LINK_PRODUCER ? l->reply : l->orders;
    return q == (mqd_t)-1 ? -ENOTSUP : (int)q;
}

static void s_close(sp_link_t *self)
{
    sp_mq_link_t *l = (sp_mq_link_t *)self;
    if (l->orders != (mqd_t)-1) {
        mq_close(l->orders);
    }
    if (l->reply != (mqd_t)-1) {
        mq_close(l->reply);
        mq_unlink(l->reply_name);
    }
    for (unsigned i = 0; i < SP_MQ_REPLY_CACHE; i++) {
        if (l->cache[i].mqd != (mqd_t)-1) {
            mq_close(l->cache[i].mqd);
        }
    }
    free(l);
}

/* Producer side: its reply queue /NAME.r.<id>, as deep as msg_max allows. */
static int s_make_reply(sp_mq_link_t *l, uint32_t id, char *why, size_t why_cap)
{
    sp_names_reply_mq(l->names, id, l->reply_name, sizeof l->reply_name);
    long depth = sp_mq_limit("msg_max");
    return s_create(l->reply_name, O_RDONLY, depth > 0 ? depth : 10, (long)l->reply_msg, &l->reply,
                    why, why_cap);
}

/* Producer side without an id: a one-message queue for the WELCOME, named
 * by a random tag (a taken name is tried again with another). */
static int s_make_hello(sp_mq_link_t *l, char *why, size_t why_cap)
{
    for (int tries = 0; tries < 8; tries++) {
        uint64_t tag = 0;
        if (getrandom(&tag, sizeof tag, 0) != (ssize_t)sizeof tag || tag == 0) {
            tag = sp_now_ns() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)tries;
        }
        sp_names_hello_mq(l->names, tag, l->reply_name, sizeof l->reply_name);
        int rc = s_create(l->reply_name, O_RDONLY, 1, SP_WELCOME_MSG_MAX, &l->reply, why, why_cap);
        if (rc != -EEXIST) {
            l->tag = rc == 0 ? tag : 0;
            return rc;
        }
    }
    return -EEXIST;
}

static uint64_t s_reply_tag(sp_link_t *self)
{
    return ((sp_mq_link_t *)self)->tag;
}

/* The WELCOME gave an id: results come to /NAME.r.<id> from now on. */
static int s_adopt(sp_link_t *self, uint32_t id, char *why, size_t why_cap)
{
    sp_mq_link_t *l = (sp_mq_link_t *)self;
    if (l->role != SP_LINK_PRODUCER || l->id != 0) {
        return -EINVAL;
    }
    mqd_t hello = l->reply;
    char hello_name[SP_IPC_NAME_MAX];
    snprintf(hello_name, sizeof hello_name, "%s", l->reply_name);
    l->reply = (mqd_t)-1;
    int rc = s_make_reply(l, id, why, why_cap);
    if (rc < 0) {
        if (rc == -EEXIST) {
            sp_why(why, why_cap, "the reply queue %s of producer %u exists already", l->reply_name,
                   id);
        }
        l->reply = hello;
        snprintf(l->reply_name, sizeof l->reply_name, "%s", hello_name);
        return rc;
    }
    mq_close(hello);
    mq_unlink(hello_name);
    l->id = id;
    l->tag = 0;
    return 0;
}

static const sp_link_ops_t s_ops = {.send = s_send,
                                    .recv = s_recv,
                                    .recv_us = s_recv_us,
                                    .release = NULL,
                                    .depth = s_depth,
                                    .ready = s_depth,
                                    .close = s_close,
                                    .reply_tag = s_reply_tag,
                                    .adopt = s_adopt,
                                    .wait_fd = s_wait_fd,
                                    .room = s_room};

static int s_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap)
{
    sp_mq_link_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return -ENOMEM;
    }
    l->base.ops = &s_ops;
    l->role = cfg->role;
    l->names = cfg->names;
    l->orders = (mqd_t)-1;
    l->reply = (mqd_t)-1;
    for (unsigned i = 0; i < SP_MQ_REPLY_CACHE; i++) {
        l->cache[i].mqd = (mqd_t)-1;
    }
    int rc = 0;
    int flags = (cfg->role == SP_LINK_PRODUCER ? O_WRONLY : O_RDONLY) | O_CLOEXEC;
    l->orders = mq_open(cfg->names->orders_mq, flags);
    if (l->orders == (mqd_t)-1) {
        rc = -errno;
        sp_why(why, why_cap, "cannot open the order queue %s: %s", cfg->names->orders_mq,
               strerror(errno));
        goto fail;
    }
    struct mq_attr attr;
    if (mq_getattr(l->orders, &attr) < 0) {
        rc = -errno;
        goto fail;
    }
    if ((long)cfg->max_msg > attr.mq_msgsize) {
        sp_why(why, why_cap,
               "messages of %ld bytes do not fit the order queue (%ld bytes per message): use "
               "smaller batches",
               (long)cfg->max_msg, attr.mq_msgsize);
        rc = -EMSGSIZE;
        goto fail;
    }
    if (cfg->role == SP_LINK_PRODUCER) {
        l->id = cfg->id;
        l->reply_msg = cfg->reply_msg;
        rc = cfg->id != 0 ? s_make_reply(l, cfg->id, why, why_cap) : s_make_hello(l, why, why_cap);
        if (rc < 0) {
            goto fail;
        }
    }
    *out = &l->base;
    return 0;
fail:
    s_close(&l->base);
    return rc;
}

/* ---- the broker's side ---- */

#define S_REPLY_SCAN 64 /* producers whose reply queues STATS looks at: the latest */

typedef struct {
    sp_tside_t base;
    sp_names_t names;
} s_side_t;

/* The order queue, and the reply queue each of p->producers producers (0:
 * one) makes for results of p->batch orders (0: the default batch, or the
 * largest the order queue's messages hold when that is smaller). */
static int s_preflight(const sp_tparams_t *p, sp_limits_need_t *need, char *why, size_t cap)
{
    (void)why;
    (void)cap;
    long depth = p->depth, size = p->msgsize;
    if (sp_mq_orders_size(&depth, &size) < 0) {
        return 0; /* limits unreadable: mq_open will say what is wrong */
    }
    unsigned batch = p->batch;
    if (batch == 0) {
        batch = sp_wire_fit(SP_MSG_ORDERS, (size_t)size);
        batch = batch < SP_BATCH_DEFAULT ? batch : SP_BATCH_DEFAULT;
    }
    uint64_t producers = p->producers > 0 ? p->producers : 1;
    long msg_max = sp_mq_limit("msg_max");
    uint64_t reply_depth = msg_max > 0 ? (uint64_t)msg_max : 10;
    uint64_t reply_size = sp_wire_msg_size(SP_MSG_RESULTS, batch);
    need->mq_depth = (uint64_t)depth;
    /* results are larger than orders: a big batch's reply queue may be the
     * queue with the largest messages */
    need->mq_msgsize = reply_size > (uint64_t)size ? reply_size : (uint64_t)size;
    need->mq_queues += 1 + producers;
    need->mq_bytes += sp_limits_mq_bytes((uint64_t)depth, (uint64_t)size) +
                      producers * sp_limits_mq_bytes(reply_depth, reply_size);
    return 0;
}

static int s_names_ours(const sp_names_t *names, char *why, size_t cap)
{
    uid_t uid = 0;
    int rc = sp_mq_owner(names->orders_mq, &uid);
    return sp_transport_owner_check("order queue", names->orders_mq, rc, uid, why, cap);
}

static int s_side_create(sp_tside_t **out, const sp_tparams_t *p, sp_tinfo_t *info, char *why,
                         size_t cap)
{
    s_side_t *side = calloc(1, sizeof *side);
    if (side == NULL) {
        return -ENOMEM;
    }
    long depth, msgsize;
    int rc = sp_mq_create_orders(p->names, p->depth, p->msgsize, &depth, &msgsize, why, cap);
    if (rc < 0) {
        if (rc == -EEXIST) {
            snprintf(why, cap, "order queue %s already exists", p->names->orders_mq);
        }
        free(side);
        return rc;
    }
    side->base.transport = &sp_transport_mq;
    side->names = *p->names;
    info->depth = (uint32_t)depth;
    info->msgsize = (uint32_t)msgsize;
    *out = &side->base;
    return 0;
}

/* Reply queues are made by producers; those the mqueue filesystem does not
 * list are found by the ids handed out. */
static int s_remove_replies(const sp_names_t *names, uint32_t producers)
{
    int removed = 0;
    for (uint32_t id = 1; id < producers; id++) {
        char name[SP_IPC_NAME_MAX];
        sp_names_reply_mq(names, id, name, sizeof name);
        removed += sp_mq_unlink_name(name) == 0;
    }
    return removed;
}

static void s_side_destroy(sp_tside_t **self_p, uint32_t producers)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    s_side_t *side = (s_side_t *)*self_p;
    sp_mq_remove_all(&side->names);
    s_remove_replies(&side->names, producers);
    free(side);
    *self_p = NULL;
}

static int s_clean(const sp_names_t *names, uint32_t producers)
{
    int removed = sp_mq_remove_all(names) == 0;
    return removed + s_remove_replies(names, producers);
}

static long s_side_depth(sp_tside_t *self)
{
    return sp_mq_orders_depth(&((s_side_t *)self)->names);
}

static long s_side_reply_depth(sp_tside_t *self, uint32_t producers)
{
    const s_side_t *side = (const s_side_t *)self;
    long sum = 0;
    for (uint32_t id = producers > S_REPLY_SCAN ? producers - S_REPLY_SCAN : 1; id < producers;
         id++) {
        char name[SP_IPC_NAME_MAX];
        sp_names_reply_mq(&side->names, id, name, sizeof name);
        long d = sp_mq_depth(name);
        sum += d > 0 ? d : 0;
    }
    return sum;
}

/* Orders must fit the order queue's messages, results a reply queue's
 * (which a producer makes as large as msgsize_max allows). */
static unsigned s_fit(const sp_tinfo_t *info, char *limit, size_t cap)
{
    long reply_max = sp_mq_limit("msgsize_max");
    unsigned fit = sp_wire_fit(SP_MSG_ORDERS, info->msgsize);
    if (reply_max > 0 && sp_wire_fit(SP_MSG_RESULTS, (size_t)reply_max) < fit) {
        fit = sp_wire_fit(SP_MSG_RESULTS, (size_t)reply_max);
    }
    snprintf(limit, cap,
             "the order queue (%u-byte messages) and a reply queue (fs.mqueue.msgsize_max %ld)",
             info->msgsize, reply_max);
    return fit;
}

const sp_transport_t sp_transport_mq = {
    .name = "mq",
    .summary = "POSIX message queues: the kernel queue is the broker",
    .id = 1,
    .routed = false,
    .has_workers = true,
    .cheap_depth = true,
    .depth_label = "order queue",
    .reply_label = "reply queues",
    .link_open = s_link_open,
    .preflight = s_preflight,
    .names_ours = s_names_ours,
    .create = s_side_create,
    .destroy = s_side_destroy,
    .clean = s_clean,
    .depth = s_side_depth,
    .reply_depth = s_side_reply_depth,
    .fit = s_fit,
};
