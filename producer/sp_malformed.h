/*
 * sp_malformed — hostile input for --inject-malformed: the malformed
 * messages and orders a customer mixes into its load to show that the
 * broker and workers refuse every one and lose nothing else.
 *
 * SP_MALFORMED_KINDS kinds, taken in turn: messages that must be
 * dead-lettered (noise, a header cut short, wrong magic, an old or a future
 * version, no such kind, results sent down the order path, a count that
 * lies either way, no records, a count beyond any message) and well-formed
 * messages whose one order has a field out of range, which must be answered
 * as refused (invalid, or unknown product).  Injected orders carry order
 * numbers above SP_MALFORMED_SEQ_LOW, far beyond any real one, so their
 * answers are told apart from real orders' answers.
 *
 * Pure functions of their arguments (the caller's buffer is written, its
 * random state and batch counter advanced): nothing allocated, nothing
 * that fails or blocks; safe from any thread on state it owns.
 */
#ifndef SP_MALFORMED_H
#define SP_MALFORMED_H

#include "sp_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_MALFORMED_KINDS   23
#define SP_MALFORMED_SEQ_LOW (SP_SEQ_MAX - (1ull << 32))
/* room a malformed message may need beyond the sender's largest message */
#define SP_MALFORMED_ROOM (SP_WIRE_HDR_SIZE + 2 * SP_WIRE_RESULT_SIZE)

/* Makes malformed message number `no` (its kind is no % SP_MALFORMED_KINDS)
 * in m, which has room for max_msg + SP_MALFORMED_ROOM bytes; max_msg is the
 * sender's largest order message and bounds the noise.  The message names
 * `producer_id` as its sender and `product_id` (a real product) in its
 * order; *batch_no is the sender's batch counter and *rng its sp_rand state,
 * both advanced.  Returns the message's length; *dead says whether it must
 * be dead-lettered (true) or its order answered as refused (false). */
size_t sp_malformed_make(uint8_t *m, size_t max_msg, uint64_t no, uint32_t producer_id,
                         uint32_t product_id, uint32_t *batch_no, uint64_t *rng, bool *dead);

/* Whether an answer's order number is an injected order's. */
bool sp_malformed_seq(uint64_t seq);

#endif
