/*
 * sp_feedguard — bounds what monitors can make the broker hold through the
 * subscriptions they send to the events endpoint (the XPUB side).
 *
 * libzmq keeps every subscription an XPUB receives in a trie per connection
 * (about 32 bytes per prefix byte, manual mode included), so a client
 * sending 10,000 subscriptions of 1,000 bytes made the broker hold 600 MB.
 * The guard:
 *   - runs the XPUB in manual mode and, for every subscription, applies the
 *     empty prefix to the pipe it came from (libzmq holds it once per pipe):
 *     every monitor gets the whole feed and its SUB socket filters locally;
 *     nothing a monitor sends is forwarded to the publishers (the workers);
 *   - bounds every connection: at most SP_FEEDGUARD_SUBS_MAX subscriptions
 *     per client process over ipc (the sender's pid is in the message's
 *     metadata, the connection's in SO_PEERCRED), at most
 *     SP_FEEDGUARD_TCP_RX_MAX bytes received per connection over tcp
 *     (TCP_INFO, read every few subscriptions, before libzmq reads much
 *     more of a flood), and at most SP_FEEDGUARD_PEERS_MAX connections; a
 *     connection past its bound is dropped (over tcp with what the kernel
 *     still holds from it; libzmq then drops its pipe and what it held),
 *     and counted.
 *
 * Ownership: sp_feedguard_new takes the XPUB (not owned) and makes a
 * monitor socket it owns; sp_feedguard_destroy frees it.  The guard belongs
 * to the broker's thread, like the router.
 */
#ifndef SP_FEEDGUARD_H
#define SP_FEEDGUARD_H

#include <stdint.h>

#define SP_FEEDGUARD_PEERS_MAX   64         /* connections on the events endpoint */
#define SP_FEEDGUARD_SUBS_MAX    16         /* subscriptions per client process (ipc) */
#define SP_FEEDGUARD_TCP_RX_MAX  (16 << 10) /* bytes a tcp connection may send us */
#define SP_FEEDGUARD_IPC_MSG_MAX 256        /* largest message on an ipc events socket */
#define SP_FEEDGUARD_TCP_MSG_MAX 512        /* on tcp: CURVE INITIATE is about 300 bytes */

typedef struct sp_feedguard sp_feedguard_t;

typedef struct {
    uint64_t subscriptions; /* subscription messages received */
    uint64_t cut;           /* connections shut down for exceeding a bound */
} sp_feedguard_stats_t;

/* Sets the XPUB `xpub` (a libzmq socket, bound or about to be bound to
 * `endpoint`) to manual mode and starts watching its connections.  Call it
 * before the bind.  NULL on failure (errno set). */
sp_feedguard_t *sp_feedguard_new(void *xpub, const char *endpoint);

/* Stops watching and frees the guard.  NULL-safe, nulls the pointer. */
void sp_feedguard_destroy(sp_feedguard_t **self_p);

/* The libzmq socket to poll for connection events. */
void *sp_feedguard_sock(sp_feedguard_t *self);

/* Handles the pending connection events (poll said sp_feedguard_sock is
 * readable). */
void sp_feedguard_on_events(sp_feedguard_t *self);

/* Reads up to `max` pending subscription messages from the XPUB, applies
 * them as described above and cuts connections past their bounds. */
void sp_feedguard_on_subscriptions(sp_feedguard_t *self, int max);

void sp_feedguard_stats(const sp_feedguard_t *self, sp_feedguard_stats_t *out);

#endif
