/*
 * test_raw — the benchmark's raw baselines: every kind runs briefly, audits
 * itself (every stream message once and in order, stock conserved in the
 * table loops), reports orders, CPU and a rate, and leaves nothing behind in
 * /dev/shm, /dev/mqueue or the temporary directory; the mqueue limits and
 * bad configurations give their exact codes.  No timing is asserted: these
 * machines are small and shared.
 */
#include "sp_testutil.h"
#include "raw.h"

#include "natsrv.h"
#include "sp_error.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_SECONDS   0.15 /* each measurement: long enough for thousands of messages */
#define T_MSG_SIZE  64
#define T_BIG_MSG   1296 /* 16 + 32 * 40: a batch of 32 orders */
#define T_BATCH     32
#define T_PROCS     3
#define T_PRODUCTS  100
#define T_TIMEOUT_S 60 /* per test; a run is bounded far below this */

static const char *s_tag(const char *test)
{
    static char tag[BR_TAG_MAX + 1];
    snprintf(tag, sizeof tag, "%s-%d", test, (int)getpid());
    return tag;
}

/* True when a name containing `tag` exists in `dir`. */
static bool s_in_dir(const char *dir, const char *tag)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return false;
    }
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        found = strstr(e->d_name, tag) != NULL;
    }
    closedir(d);
    return found;
}

static bool s_leftovers(const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    return s_in_dir("/dev/shm", tag) || s_in_dir("/dev/mqueue", tag) ||
           s_in_dir(tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", tag);
}

static br_cfg_t s_stream(br_kind_t kind, unsigned msg_size, unsigned batch, const char *tag)
{
    return (br_cfg_t){
        .kind = kind, .msg_size = msg_size, .batch = batch, .seconds = T_SECONDS, .tag = tag};
}

static br_cfg_t s_table(br_kind_t kind, double zipf_s, const char *tag)
{
    return (br_cfg_t){.kind = kind,
                      .batch = 1,
                      .seconds = T_SECONDS,
                      .tag = tag,
                      .procs = T_PROCS,
                      .products = T_PRODUCTS,
                      .zipf_s = zipf_s};
}

/* Runs cfg and checks what every successful run must show. */
static void s_expect_good_run(const br_cfg_t *cfg)
{
    br_result_t res;
    int rc = br_run(cfg, &res);
    cr_assert_eq(rc, 0, "%s: rc %d (%s)", br_kind_name(cfg->kind), rc, res.why);
    cr_expect_eq(res.audit_ok, 1, "%s", res.why);
    cr_expect_str_empty(res.why);
    cr_expect_gt(res.msgs, 0);
    cr_expect_eq(res.orders, res.msgs * cfg->batch);
    cr_expect_gt(res.wall_s, 0);
    cr_expect_gt(res.orders_per_s, 0);
    cr_expect_gt(res.cpu_s, 0);
    cr_expect_gt(res.cpu_s_per_m, 0);
    cr_expect_not(s_leftovers(cfg->tag), "IPC objects left with tag %s", cfg->tag);
}

Test(raw, mq_stream_arrives_once_in_order, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_MQ, T_MSG_SIZE, 1, s_tag("mq"));
    s_expect_good_run(&cfg);
}

Test(raw, mq_stream_of_batched_messages_counts_orders, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_MQ, T_BIG_MSG, T_BATCH, s_tag("mqbatch"));
    cfg.mq_depth = 2; /* a shallower queue than the system's maximum */
    s_expect_good_run(&cfg);
}

Test(raw, zmq_ipc_stream_arrives_once_in_order, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_ZMQ_IPC, T_MSG_SIZE, 1, s_tag("ipc"));
    s_expect_good_run(&cfg);
}

Test(raw, zmq_tcp_stream_on_a_port_it_picks, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_ZMQ_TCP, T_MSG_SIZE, 1, s_tag("tcp"));
    s_expect_good_run(&cfg);
}

Test(raw, zmq_inproc_stream_between_two_threads, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_ZMQ_INPROC, T_MSG_SIZE, 1, s_tag("inproc"));
    s_expect_good_run(&cfg);
}

Test(raw, ring_stream_arrives_once_in_order, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_RING, T_MSG_SIZE, 1, s_tag("ring"));
    s_expect_good_run(&cfg);
}

/* The simplest programs the mq and ring baselines are held against: they
 * count (the receiver's count against the sender's) and leave nothing. */
Test(raw, simplest_mq_loop_delivers_every_message, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_MQ_LOOP, T_BIG_MSG, T_BATCH, s_tag("mqloop"));
    s_expect_good_run(&cfg);
}

Test(raw, simplest_spsc_ring_delivers_every_message, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_SPSC, T_BIG_MSG, T_BATCH, s_tag("spsc"));
    s_expect_good_run(&cfg);
}

Test(raw, ring_stream_of_batched_messages_counts_orders, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_stream(BR_RING, T_BIG_MSG, T_BATCH, s_tag("ringbatch"));
    s_expect_good_run(&cfg);
}

static void s_nats_run(br_kind_t kind, const char *tag)
{
    char why[200];
    if (!bench_natsrv_available(why, sizeof why)) {
        cr_skip_test("%s", why);
    }
    br_cfg_t cfg = s_stream(kind, T_BIG_MSG, T_BATCH, tag);
    cfg.seconds = 0.3;
    s_expect_good_run(&cfg);
    cr_expect_not(spt_process_runs("nats-server", tag), "a nats-server with tag %s still runs",
                  tag);
}

Test(raw, nats_stream_on_one_server_arrives_once_in_order, .timeout = T_TIMEOUT_S)
{
    s_nats_run(BR_NATS, s_tag("nats"));
}

Test(raw, nats_stream_with_three_replicas_arrives_once_in_order, .timeout = T_TIMEOUT_S)
{
    s_nats_run(BR_NATS_R3, s_tag("natsr3"));
}

Test(raw, atomic_table_conserves_stock, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_table(BR_ATOMIC, 0, s_tag("atomic"));
    s_expect_good_run(&cfg);
}

Test(raw, atomic_table_with_zipf_choice_conserves_stock, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_table(BR_ATOMIC, 1.0, s_tag("atomiczipf"));
    cfg.products = 1; /* every process on one row: the most contention */
    s_expect_good_run(&cfg);
}

Test(raw, shop_table_conserves_stock, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_table(BR_SHOP, 0, s_tag("shop"));
    s_expect_good_run(&cfg);
}

Test(raw, shop_table_with_zipf_choice_conserves_stock, .timeout = T_TIMEOUT_S)
{
    br_cfg_t cfg = s_table(BR_SHOP, 1.2, s_tag("shopzipf"));
    s_expect_good_run(&cfg);
}

Test(raw, mq_message_above_msgsize_max_names_the_sysctl, .timeout = T_TIMEOUT_S)
{
    FILE *f = fopen("/proc/sys/fs/mqueue/msgsize_max", "r");
    cr_assert_not_null(f);
    long max = 0;
    cr_assert_eq(fscanf(f, "%ld", &max), 1);
    fclose(f);
    br_cfg_t cfg = s_stream(BR_MQ, (unsigned)max + 1, 1, s_tag("mqbig"));
    br_result_t res;
    cr_expect_eq(br_run(&cfg, &res), SP_E_MQ_LIMIT);
    cr_expect_not_null(strstr(res.why, "/proc/sys/fs/mqueue/msgsize_max"), "%s", res.why);
    cr_expect_eq(res.audit_ok, 0);
    cr_expect_eq(res.msgs, 0);
    cr_expect_not(s_leftovers(cfg.tag));
}

Test(raw, mq_depth_above_msg_max_names_the_sysctl, .timeout = T_TIMEOUT_S)
{
    FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "r");
    cr_assert_not_null(f);
    long max = 0;
    cr_assert_eq(fscanf(f, "%ld", &max), 1);
    fclose(f);
    br_cfg_t cfg = s_stream(BR_MQ, T_MSG_SIZE, 1, s_tag("mqdeep"));
    cfg.mq_depth = (unsigned)max + 1;
    br_result_t res;
    cr_expect_eq(br_run(&cfg, &res), SP_E_MQ_LIMIT);
    cr_expect_not_null(strstr(res.why, "/proc/sys/fs/mqueue/msg_max"), "%s", res.why);
    cr_expect_not(s_leftovers(cfg.tag));
}

Test(raw, a_side_that_fails_is_reported_with_its_reason, .timeout = T_TIMEOUT_S)
{
    /* occupy a loopback port, then ask the zmq-tcp receiver to bind it */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    br_cfg_t cfg = s_stream(BR_ZMQ_TCP, T_MSG_SIZE, 1, s_tag("tcpbusy"));
    cfg.tcp_port = ntohs(addr.sin_port);
    br_result_t res;
    cr_expect_eq(br_run(&cfg, &res), -EIO);
    cr_expect_not_null(strstr(res.why, "zmq_bind"), "%s", res.why);
    cr_expect_eq(res.audit_ok, 0);
    close(fd);
}

Test(raw, bad_configurations_are_refused)
{
    br_result_t res;
    br_cfg_t good = s_stream(BR_RING, T_MSG_SIZE, 1, "bad");
    br_cfg_t cfg;

    cr_expect_eq(br_run(NULL, &res), -EINVAL);
    cr_expect_eq(br_run(&good, NULL), -EINVAL);
    cfg = good, cfg.kind = BR_KIND_COUNT;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cr_expect_str_not_empty(res.why);
    cfg = good, cfg.tag = NULL;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = good, cfg.tag = "";
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = good, cfg.tag = "a/b";
    cr_expect_eq(br_run(&cfg, &res), -EINVAL, "a tag must not make paths");
    cfg = good, cfg.tag = "0123456789012345678901234567890123456789";
    cr_expect_eq(br_run(&cfg, &res), -EINVAL, "tag too long");
    cfg = good, cfg.seconds = 0;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = good, cfg.seconds = BR_SECONDS_MAX * 2;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = good, cfg.msg_size = BR_MSG_MIN - 1;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL, "no room for the sequence words");
    cfg = good, cfg.msg_size = BR_MSG_MAX + 1;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = good, cfg.batch = 0;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = good, cfg.kind = BR_ZMQ_TCP, cfg.tcp_port = 70000;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);

    br_cfg_t table = s_table(BR_ATOMIC, 0, "bad");
    cfg = table, cfg.procs = 0;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = table, cfg.procs = BR_PROCS_MAX + 1;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = table, cfg.products = 0;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = table, cfg.products = BR_PRODUCTS_MAX + 1;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cfg = table, cfg.zipf_s = -1;
    cr_expect_eq(br_run(&cfg, &res), -EINVAL);
    cr_expect_eq(res.msgs, 0);
}

Test(raw, kind_names_round_trip)
{
    const char *names[BR_KIND_COUNT] = {"mq",      "zmq-ipc", "zmq-tcp", "zmq-inproc",
                                        "ring",    "atomic",  "shop",    "nats",
                                        "nats-r3", "mq-loop", "spsc"};
    for (unsigned k = 0; k < BR_KIND_COUNT; k++) {
        cr_expect_str_eq(br_kind_name((br_kind_t)k), names[k]);
        cr_expect_eq(br_kind_parse(names[k]), (br_kind_t)k);
    }
    cr_expect_str_eq(br_kind_name(BR_KIND_COUNT), "?");
    cr_expect_eq(br_kind_parse("zmq"), BR_KIND_COUNT);
    cr_expect_eq(br_kind_parse(NULL), BR_KIND_COUNT);
}
