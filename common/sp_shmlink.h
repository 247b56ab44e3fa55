/*
 * sp_shmlink — the layout of the `shm` transport's segment /NAME.ring (the
 * contract between the broker, its workers and the producers; version
 * SP_SHM_LAYOUT), and the functions that create, open and remove it; the
 * link itself is behind sp_link_open, the broker's side behind
 * sp_transport_shm.
 *
 *   [ sp_shm_hdr_t                        ]  identity, sizes, result ring owners
 *   [ orders ring: SP_SHM_ORDER_SLOTS     ]  MPMC: every producer puts, every
 *                                            worker gets
 *   [ result ring 0: SP_SHM_RESULT_SLOTS  ]  one per connected producer: the
 *   [ ...                                 ]  workers put, its owner gets
 *   [ result ring 63                      ]
 *
 * Every ring is an sp_ring (see sp_ring.h) whose slots hold one whole wire
 * message of at most `slot_size` bytes: the broker's --mq-msgsize, default
 * SP_SHM_SLOT_DEFAULT.  Nothing in the segment is a pointer; the rings are
 * found by the offsets in the header, which an opener checks (magic, layout
 * version, header size, ring sizes, segment size) before touching anything.
 *
 * Routing: a worker takes an order message from the orders ring, reads the
 * producer id from the message header's `sender` field and puts the result
 * message into the result ring whose owner word names that producer.  A
 * producer link claims a free ring with one compare-and-swap of its owner
 * word (0 -> pid << 32 | producer id) and frees it when it closes; a ring
 * whose owner process is dead may be taken over (its stale messages are
 * drained first).  So at most SP_SHM_RESULT_RINGS producers are connected at
 * once.
 *
 * Ownership: the broker creates the segment and removes its name; every link
 * maps it for itself (an sp_shm_t, process-local: sp_shm_close unmaps, never
 * unlinks).  A producer link holds its result ring from open to close and
 * gives it back only if it is still its own.  Errors: link open fails with
 * -ENOENT (no segment), SP_E_BAD_* (not a segment this build understands),
 * -EMSGSIZE (messages larger than the slots), -EEXIST (a live producer has
 * the id), -EUSERS (every result ring belongs to a live producer) or -ENOMEM;
 * a worker's send answers -ENOENT when no live link has the producer's id.
 * Blocking: as the rings (spin, then a futex sleep up to the timeout); a
 * worker blocked on a full result ring re-checks its owner every
 * SP_SHM_RECHECK_MS.  Threads and processes: the segment is shared by the
 * broker, its workers and every producer at once, with no lock; a link
 * belongs to one thread.
 */
#ifndef SP_SHMLINK_H
#define SP_SHMLINK_H

#include "sp_instance.h"
#include "sp_ring.h"
#include "sp_table.h"
#include "sp_transport.h"

#include <stddef.h>

#include <stdatomic.h>
#include <stdint.h>

#define SP_SHM_MAGIC        0x3147524d48535053ull /* bytes "SPSHMRG1" */
#define SP_SHM_LAYOUT       1
#define SP_SHM_RESULT_RINGS 64         /* producers connected at once */
#define SP_SHM_ORDER_SLOTS  128        /* order messages waiting for a worker */
#define SP_SHM_RESULT_SLOTS 16         /* result messages waiting for one producer */
#define SP_SHM_SLOT_DEFAULT 16384      /* bytes per message when --mq-msgsize is not given */
#define SP_SHM_SLOT_MAX     (1u << 20) /* sp_ring's largest slot */
#define SP_SHM_MODE         0600
#define SP_SHM_RECHECK_MS   50 /* a worker blocked on a full result ring re-checks its owner */

/* An owner word: the producer's pid in the high half, its id in the low. */
#define SP_SHM_OWNER(pid, id) (((uint64_t)(uint32_t)(pid) << 32) | (uint32_t)(id))
#define SP_SHM_OWNER_PID(w)   ((int32_t)(uint32_t)((w) >> 32))
#define SP_SHM_OWNER_ID(w)    ((uint32_t)((w)&0xffffffffu))

typedef struct {
    /* identity and geometry: written once by the broker, checked by openers */
    _Alignas(SP_CACHELINE) uint64_t magic; /* SP_SHM_MAGIC, stored last */
    uint32_t layout;                       /* SP_SHM_LAYOUT */
    uint32_t header_size;                  /* sizeof(sp_shm_hdr_t) */
    uint32_t slot_size;                    /* largest message, bytes */
    uint32_t order_slots;                  /* capacity of the orders ring */
    uint32_t result_slots;                 /* capacity of each result ring */
    uint32_t result_rings;                 /* SP_SHM_RESULT_RINGS */
    uint64_t segment_size;                 /* bytes of the whole segment */
    uint64_t orders_offset;                /* = header_size */
    uint64_t orders_bytes;                 /* sp_ring_bytes(order_slots, slot_size) */
    uint64_t results_offset;               /* = orders_offset + orders_bytes */
    uint64_t result_bytes; /* per ring: ring i is at results_offset + i * result_bytes */
    int32_t creator_pid;
    uint32_t reserved;
    uint64_t created_ns;

    /* result ring owners: SP_SHM_OWNER(pid, producer id), 0 when free */
    _Alignas(SP_CACHELINE) _Atomic uint64_t owner[SP_SHM_RESULT_RINGS];

    /* counters */
    _Alignas(SP_CACHELINE) _Atomic uint64_t reclaimed; /* rings taken over from dead owners */
    _Atomic uint64_t stale_results; /* results drained or dropped: meant for a previous owner */
} sp_shm_hdr_t;

_Static_assert(sizeof(sp_shm_hdr_t) == 11 * SP_CACHELINE, "shm header layout");
_Static_assert(sizeof(sp_shm_hdr_t) % SP_CACHELINE == 0, "rings start on a line");

extern const sp_transport_t sp_transport_shm;

/* The shm transport's segment /NAME.ring (layout in sp_shmlink.h): a mapping
 * of it, process-local. */
typedef struct sp_shm sp_shm_t;

/* Creates /NAME.ring exclusively (O_EXCL, mode 0600) and lays out the orders
 * ring and the result rings with slots of `slot_size` bytes (0 means
 * SP_SHM_SLOT_DEFAULT).  The broker does this when it runs the shm
 * transport, and removes the name with sp_shm_remove at shutdown.  Returns 0
 * with *out mapped, -EEXIST (name taken), SP_E_USAGE (slot size below one
 * order or result message or above SP_SHM_SLOT_MAX; *why says which) or
 * -errno (nothing is left behind on failure). */
int sp_shm_create(sp_shm_t **out, const sp_names_t *names, long slot_size, char *why,
                  size_t why_cap);

/* Maps an existing /NAME.ring read-write and checks magic, layout version and
 * every size before anything else is read.  Returns 0, -ENOENT, -EACCES,
 * SP_E_BAD_MAGIC, SP_E_BAD_VERSION, SP_E_BAD_LAYOUT or -errno. */
int sp_shm_open(sp_shm_t **out, const sp_names_t *names, char *why, size_t why_cap);

/* Bytes of a ring segment with `slot_size`-byte slots (0: the default). */
size_t sp_shm_bytes(long slot_size);

/* Unmaps; never unlinks.  NULL-safe, nulls the pointer. */
void sp_shm_close(sp_shm_t **self_p);

/* Removes the name /NAME.ring (mappings stay valid until closed).  Returns 0
 * or -errno (-ENOENT when there is none). */
int sp_shm_remove(const sp_names_t *names);

/* The segment's header, its orders ring and result ring i (0 ..
 * SP_SHM_RESULT_RINGS - 1), e.g. for a test that writes straight into a ring. */
sp_shm_hdr_t *sp_shm_hdr(sp_shm_t *self);
sp_ring_t *sp_shm_orders(sp_shm_t *self);
sp_ring_t *sp_shm_results(sp_shm_t *self, unsigned i);

/* Order messages waiting in the orders ring, and result messages waiting in
 * all result rings together (snapshots). */
long sp_shm_orders_depth(sp_shm_t *self);
long sp_shm_results_depth(sp_shm_t *self);

#endif
