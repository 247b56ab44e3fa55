/*
 * variant — the bench's table of variants (see variant.h).
 *
 * Measuring one more way is one more row here; the order of the rows is the
 * order of the default --transports and of --full's presets (opt-in rows
 * left out of both).
 */
#include "variant.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static const bench_variant_t s_all[] = {
    {.name = "mq", .transport = "mq", .at = BENCH_AT_IPC, .raw = BR_MQ},
    {.name = "zmq-ipc", .transport = "zmq", .at = BENCH_AT_IPC, .raw = BR_ZMQ_IPC},
    {.name = "zmq-tcp", .transport = "zmq", .at = BENCH_AT_TCP, .raw = BR_ZMQ_TCP},
    {.name = "zmq-inproc", .transport = "zmq", .at = BENCH_AT_THREADS, .raw = BR_ZMQ_INPROC},
    {.name = "shm", .transport = "shm", .at = BENCH_AT_IPC, .raw = BR_RING},
    {.name = "direct", .transport = "direct", .at = BENCH_AT_IPC, .raw = BR_ATOMIC},
    {.name = "nats",
     .transport = "nats",
     .at = BENCH_AT_NATS,
     .raw = BR_NATS,
     .nats_nodes = 1,
     .nats_replicas = 1,
     .opt_in = true},
    {.name = "nats-r3",
     .transport = "nats",
     .at = BENCH_AT_NATS,
     .raw = BR_NATS_R3,
     .nats_nodes = 3,
     .nats_replicas = 3,
     .opt_in = true},
};

#define S_COUNT (sizeof s_all / sizeof s_all[0])

const bench_variant_t *bench_variant_at(unsigned i)
{
    return i < S_COUNT ? &s_all[i] : NULL;
}

const bench_variant_t *bench_variant_find(const char *name)
{
    for (unsigned i = 0; name != NULL && i < S_COUNT; i++) {
        if (strcmp(s_all[i].name, name) == 0) {
            return &s_all[i];
        }
    }
    return NULL;
}

const sp_transport_t *bench_variant_transport(const bench_variant_t *v)
{
    const sp_transport_t *t = sp_transport_find(v->transport);
    assert(t != NULL && "every variant runs a registered transport");
    return t;
}

const char *bench_variant_of_raw(br_kind_t kind)
{
    for (unsigned i = 0; i < S_COUNT; i++) {
        if (s_all[i].raw == kind) {
            return s_all[i].name;
        }
    }
    return NULL;
}

const char *bench_variant_names(const char *sep, bool opt_in, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < S_COUNT && used < cap; i++) {
        if (s_all[i].opt_in && !opt_in) {
            continue;
        }
        int n = snprintf(buf + used, cap - used, "%s%s", used == 0 ? "" : sep, s_all[i].name);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return buf;
}
