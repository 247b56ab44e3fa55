/*
 * sp_contact — how a client on the broker's host finds a running instance
 * without mapping its table: the file RUN_DIR/contact.
 *
 * The broker writes it (atomically, mode 0600 inside the private run
 * directory) just before it says READY, and it goes with the run
 * directory when the broker stops.  It names the transport and the
 * endpoints a client connects to, and the broker's CURVE public key when
 * the client endpoints need one; everything else (a producer id, message
 * sizes, the table's identity) comes over the order path in the WELCOME
 * (sp_hello.h).  A client on another host is given the same by flags
 * (--connect, --server-cert) instead.
 *
 * One line per field, "key value", in any order; unknown keys are skipped
 * (a newer broker may say more).
 *
 * Ownership: the caller's sp_contact_t, filled or read; nothing is kept.
 * Errors: 0 or a negative code with *why.  Blocking: file I/O only (the
 * write is sp_file_save's: temporary file, fsync, rename).  Pure file I/O:
 * safe from any thread and process; a reader sees the old file or the new
 * one, never a mix.
 */
#ifndef SP_CONTACT_H
#define SP_CONTACT_H

#include "sp_curve.h"
#include "sp_instance.h"

#include <stddef.h>

#define SP_CONTACT_FILE     SP_RUN_CONTACT
#define SP_CONTACT_MAX      4096 /* bytes: a longer file is not ours */
#define SP_CONTACT_NAME_MAX 16

typedef struct {
    char transport[SP_CONTACT_NAME_MAX]; /* a registered transport's name */
    char orders[SP_ENDPOINT_MAX];        /* where producers send orders (zmq) */
    char events[SP_ENDPOINT_MAX];        /* where monitors subscribe */
    char snapshot[SP_ENDPOINT_MAX];      /* the snapshot service */
    char server_key[SP_CURVE_KEY_TXT];   /* the broker's CURVE public key, or "" */
} sp_contact_t;

/* Writes RUN_DIR/contact for instance `n`.  Returns 0 or -errno with *why. */
int sp_contact_write(const sp_names_t *n, const sp_contact_t *c, char *why, size_t why_cap);

/* Reads it.  Returns 0, -ENOENT (no broker serves the instance, or not
 * yet), SP_E_BAD_LAYOUT (a line that is not "key value" or a value too
 * long; *why names the line) or -errno. */
int sp_contact_read(const sp_names_t *n, sp_contact_t *c, char *why, size_t why_cap);

#endif
