/*
 * System limits are read before start-up: a request beyond them fails at
 * once, naming the setting to raise, and leaves nothing behind.
 */
#include "sp_shmlink.h"
#include "sp_mq.h"
#include "sp_testutil.h"

#include "sp_error.h"
#include "sp_limits.h"
#include "sp_link.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_TIMEOUT_MS 20000

static sp_limits_t s_have(void)
{
    return (sp_limits_t){.msg_max = 10,
                         .msgsize_max = 8192,
                         .queues_max = 256,
                         .queues_used = 10,
                         .mq_bytes = 819200,
                         .nofile = 1024,
                         .shm_free = 1 << 30};
}

static void s_expect_refused(const sp_limits_need_t *need, const sp_limits_t *have,
                             const char *setting)
{
    char why[512] = "";
    cr_expect_eq(sp_limits_check(need, have, why, sizeof why), SP_E_LIMIT, "%s", setting);
    cr_expect(strstr(why, setting) != NULL, "'%s' not named in: %s", setting, why);
}

Test(limits, a_run_within_every_limit_passes)
{
    sp_limits_t have = s_have();
    sp_limits_need_t need = {.mq_depth = 10,
                             .mq_msgsize = 8192,
                             .mq_queues = 2,
                             .mq_bytes = sp_limits_mq_bytes(10, 8192) * 2,
                             .shm_bytes = 40 << 20,
                             .files = 300};
    char why[256] = "";
    cr_expect_eq(sp_limits_check(&need, &have, why, sizeof why), 0, "%s", why);
}

Test(limits, each_limit_exceeded_is_named)
{
    sp_limits_t have = s_have();
    sp_limits_need_t base = {.mq_depth = 10, .mq_msgsize = 8192, .mq_queues = 2};
    sp_limits_need_t n = base;
    n.mq_depth = 11;
    s_expect_refused(&n, &have, "fs.mqueue.msg_max");
    n = base;
    n.mq_msgsize = 8193;
    s_expect_refused(&n, &have, "fs.mqueue.msgsize_max");
    n = base;
    n.mq_queues = 247;
    s_expect_refused(&n, &have, "fs.mqueue.queues_max");
    n = base;
    n.mq_bytes = have.mq_bytes + 1;
    s_expect_refused(&n, &have, "RLIMIT_MSGQUEUE");
    n = (sp_limits_need_t){.shm_bytes = have.shm_free + 1};
    s_expect_refused(&n, &have, "/dev/shm");
    n = (sp_limits_need_t){.files = have.nofile + 1};
    s_expect_refused(&n, &have, "RLIMIT_NOFILE");
}

Test(limits, a_limit_that_cannot_be_read_is_not_enforced)
{
    sp_limits_t have = {SP_LIMIT_UNKNOWN, SP_LIMIT_UNKNOWN, SP_LIMIT_UNKNOWN, SP_LIMIT_UNKNOWN,
                        SP_LIMIT_UNKNOWN, SP_LIMIT_UNKNOWN, SP_LIMIT_UNKNOWN};
    sp_limits_need_t need = {.mq_depth = 1000,
                             .mq_msgsize = 1 << 20,
                             .mq_queues = 2,
                             .mq_bytes = 1ull << 40,
                             .shm_bytes = 1ull << 40,
                             .files = 1 << 20};
    char why[256] = "";
    cr_expect_eq(sp_limits_check(&need, &have, why, sizeof why), 0, "%s", why);
}

Test(limits, read_gives_the_kernels_values)
{
    sp_limits_t have;
    sp_limits_read(&have);
    cr_expect_eq(have.msg_max, (uint64_t)sp_mq_limit("msg_max"));
    cr_expect_eq(have.msgsize_max, (uint64_t)sp_mq_limit("msgsize_max"));
    cr_expect_eq(have.queues_max, (uint64_t)sp_mq_limit("queues_max"));
    cr_expect_neq(have.shm_free, SP_LIMIT_UNKNOWN);
    cr_expect_neq(have.nofile, SP_LIMIT_UNKNOWN);
}

/* The broker under a shell `ulimit`: refused before anything exists. */
static void s_broker_under(const char *tag, const char *ulimit, const char *transport,
                           const char *expect)
{
    char inst[64], cmd[1024];
    spt_instance(inst, sizeof inst, tag);
    snprintf(cmd, sizeof cmd,
             "ulimit %s && exec %s --instance %s --transport %s --catalogue %s "
             "--state-dir /tmp/sp-test-state --fresh",
             ulimit, spt_bin("broker"), inst, transport, spt_data("products.csv"));
    const char *argv[] = {"/bin/bash", "-c", cmd, NULL};
    char *out = NULL;
    int rc = spt_run(argv, RUN_TIMEOUT_MS, &out);
    cr_expect_eq(rc, 1, "broker under 'ulimit %s' exited %d: %s", ulimit, rc, out);
    cr_expect(strstr(out, expect) != NULL, "'%s' not named in: %s", expect, out);
    free(out);
    cr_expect_not(spt_leftovers(inst));
}

Test(limits, broker_with_too_little_queue_memory_names_rlimit_msgqueue, .timeout = 30)
{
    s_broker_under("limq", "-q 40000", "mq", "RLIMIT_MSGQUEUE");
}

Test(limits, broker_with_too_few_open_files_names_rlimit_nofile, .timeout = 30)
{
    s_broker_under("limn", "-n 64", "zmq", "RLIMIT_NOFILE");
}
