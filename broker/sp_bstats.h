/*
 * sp_bstats — the broker's STATS, heartbeats and totals (sp_bstats.c).
 *
 * Ownership: works on the broker's context and reads the table's worker
 * slots; the STATS message is built in one static buffer, so one broker
 * per process publishes at a time.  Broker thread only; nothing blocks;
 * nothing fails (a message a monitor cannot take is the router's counted
 * drop).
 */
#ifndef SP_BSTATS_H
#define SP_BSTATS_H

#include "sp_broker.h"

#include <stdint.h>

/* A STATS message under construction: `max` counters fit in `msg`. */
typedef struct {
    uint8_t *msg;
    unsigned n;
    unsigned max;
} sp_bctrs_t;

/* Adds one counter (SP_CTR_*, its index, its value); one past `max` is
 * left out. */
void sp_bstats_ctr(sp_bctrs_t *c, unsigned id, unsigned index, uint64_t value);

/* Publishes the shop's counters to monitors (SP_MSG_STATS). */
void sp_bstats_publish(sp_broker_t *b);

/* Publishes the broker's heartbeat in `state` (SP_PUB_RUNNING, SP_PUB_STOPPING). */
void sp_bstats_beat(sp_broker_t *b, uint32_t state);

/* Copies the router's counters into the table header, where monitors and
 * tests read them. */
void sp_bstats_header(sp_broker_t *b);

/* Adds the workers' and the router's totals to the broker's closing
 * stats (sp_broker_run hands them to its caller). */
void sp_bstats_collect(sp_broker_t *b);

#endif
