/*
 * sp_endpoints — the broker's endpoints, --tcp and CURVE (sp_endpoints.c).
 *
 * Ownership: writes the broker's context (where we bind, our keys, the
 * authenticator, which it starts and stops) and the table header (where
 * clients connect, our public key).  Broker thread only.  Returns 0 or a
 * negative code with *why; nothing blocks but the start of the
 * authenticator, which waits for zauth to confirm its configuration.
 */
#ifndef SP_ENDPOINTS_H
#define SP_ENDPOINTS_H

#include "sp_broker.h"

#include <stddef.h>

/* Checks --tcp and the CURVE flags, loads the broker's certificate and
 * starts the authenticator.  Returns 0, SP_E_USAGE (a combination refused:
 * *why says what to add) or a negative code from loading the keys or
 * starting zauth; on failure nothing is left running. */
int sp_endpoints_secure(sp_broker_t *b, char *why, size_t cap);

/* Makes the private run directory and lays out the five endpoints: where
 * we bind (the context) and where clients connect (the table header, with
 * our CURVE key or none).  Returns 0 or a negative code with *why (a path
 * too long, a directory that cannot be made). */
int sp_endpoints_layout(sp_broker_t *b, char *why, size_t cap);

/* Says where clients reach us over TCP, and whether CURVE guards it. */
void sp_endpoints_announce(const sp_broker_t *b);

/* Stops the authenticator and wipes the keys (after the last socket is
 * closed).  Safe to call when neither was set up. */
void sp_endpoints_release(sp_broker_t *b);

#endif
