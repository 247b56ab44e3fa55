/*
 * variant — the ways the bench runs the pipeline, in one table.
 *
 * A variant is one registered transport (sp_transport.h) run one way: the
 * zmq transport is measured three ways (ipc:// sockets, loopback tcp://,
 * and inproc:// with the broker, its workers and the producers as threads of
 * one process), every other transport one way.  A row holds only what the
 * bench needs and the transport's descriptor cannot say: the name printed
 * in labels, tables, CSV and JSON; which transport runs; where the broker
 * and its clients meet; the raw baseline its efficiency is measured against.
 * Everything else (whether workers run, what the system's limits must
 * allow) the bench asks the descriptor, so no bench line asks which variant
 * or transport runs, and measuring a new transport is one new row.
 *
 * The table is constant and its rows are never freed; a lookup that finds
 * nothing returns NULL, and nothing else fails or blocks.  Safe from any
 * thread and process.
 */
#ifndef BENCH_VARIANT_H
#define BENCH_VARIANT_H

#include "raw.h"
#include "sp_transport.h"

#include <stdbool.h>
#include <stddef.h>

/* Where the broker and its clients meet. */
typedef enum {
    BENCH_AT_IPC,     /* bin/broker in its own process; its default endpoints (ipc:// sockets,
                       * or the transport's own queues, rings and table) */
    BENCH_AT_TCP,     /* bin/broker in its own process; producers over loopback tcp://
                       * (bench --tcp-port) */
    BENCH_AT_THREADS, /* the broker, its workers and the producers as threads of the cell's
                       * process (inproc://) */
    BENCH_AT_NATS     /* bin/broker in its own process; orders through NATS servers the bench
                       * starts for the cell (nats_nodes of them, the stream with
                       * nats_replicas copies) and removes after it (natsrv.h) */
} bench_at_t;

typedef struct {
    const char *name;      /* "zmq-ipc": what --transports takes and every output prints */
    const char *transport; /* the registered transport it runs (sp_transport_find) */
    bench_at_t at;
    br_kind_t raw;                      /* the bare facility underneath: its raw baseline */
    unsigned nats_nodes, nats_replicas; /* BENCH_AT_NATS: servers to start, copies kept */
    bool opt_in; /* not in the default --transports nor the presets (it costs servers and
                  * seconds per cell): run it by naming it */
} bench_variant_t;

/* The i-th variant (0-based) in the order the bench lists and runs them,
 * NULL past the last. */
const bench_variant_t *bench_variant_at(unsigned i);

/* The variant named `name`, or NULL. */
const bench_variant_t *bench_variant_find(const char *name);

/* The registered transport the variant runs.  Never NULL: every row names a
 * transport of this build (tests/test_bench.c checks it). */
const sp_transport_t *bench_variant_transport(const bench_variant_t *v);

/* The name of the variant whose raw baseline is `kind` ("shm" for BR_RING),
 * or NULL when no variant's is (BR_SHOP): so a raw row is grouped with the
 * pipeline it is the ceiling of. */
const char *bench_variant_of_raw(br_kind_t kind);

/* Every variant's name joined by `sep` ("mq,zmq-ipc,...") into buf, for
 * usage text (opt_in true: every variant) and the default --transports
 * (opt_in false: the opt-in variants left out).  Returns buf. */
const char *bench_variant_names(const char *sep, bool opt_in, char *buf, size_t cap);

#endif
