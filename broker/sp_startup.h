/*
 * sp_startup — the configuration checked, the table found or made, the
 * journal set up (sp_startup.c says in which order of preference).
 *
 * Called by sp_broker_new, in this order, on the broker's thread.  Ownership:
 * what they make (the table mapping, the journal directory's path, the
 * workers' settings) goes into the broker's context, and sp_broker_destroy
 * releases it, after a failure too (the instance's IPC objects only once the
 * table is ours).  Errors: each returns 0 or a negative code with *why.
 * Blocking: re-attaching waits up to two seconds for a dead broker's workers
 * to go (then kills them); rebuilding reads the whole journal.
 */
#ifndef SP_STARTUP_H
#define SP_STARTUP_H

#include "sp_broker.h"

#include <stddef.h>

/* Checks what needs no system object: SP_WORKER_SILENT_MS, the instance
 * name, the worker count, worker threads only over zmq without --tcp, the
 * worker binary executable.  SP_E_USAGE or -errno. */
int sp_startup_check(sp_broker_t *b, char *why, size_t cap);

/* Finds the instance's table (re-attach, rebuild, continue, create) and
 * claims it: our pid and worker count in its header.  -EEXIST when a live
 * broker owns it, -EACCES for a name another user holds, or the error of
 * the catalogue, the snapshot, the journal or the limits. */
int sp_startup_table(sp_broker_t *b, char *why, size_t cap);

/* Marks the table guarded or not (--no-dedup) and, unless no journal is
 * kept, makes the journal directory, saves the journal's base and journals
 * what a dead broker's workers left. */
int sp_startup_journal(sp_broker_t *b, char *why, size_t cap);

#endif
