/*
 * sp_orphans — finishing what a dead writer left (sp_orphans.c says how).
 *
 * Ownership: journals into the broker's own journal file, kept in the
 * broker's context (opened here on first use and again after an epoch
 * change; sp_broker_destroy closes it), and keeps the dead writer's
 * journal tail there.  Blocking: reads the end of the dead writer's files
 * and appends to the broker's journal under the instance's fsync policy.
 * Broker thread only.  Errors are returned as negative codes and also go
 * to the broker's notify.
 */
#ifndef SP_ORPHANS_H
#define SP_ORPHANS_H

#include "sp_broker.h"
#include "sp_commit.h"

#include <sys/types.h>

/* sp_commit's callback for an outcome a dead process decided but did not
 * mark journaled: journals it in the broker's own file (ctx is the
 * sp_broker_t), unless the dead process's journal tail holds it already or
 * no journal is kept.  Returns 0 or a negative code (the journal could not
 * be opened or written). */
int sp_orphans_journal(void *ctx, const sp_commit_view_t *v);

/* Worker `id` (process `pid`) died: finishes or undoes the orders it left
 * half done and journals what it decided but did not journal, before its
 * replacement or a resent order meets them. */
void sp_orphans_resolve(sp_broker_t *b, unsigned id, pid_t pid);

/* The broker's journal under the interval policy: syncs what it appended
 * once the interval has passed (sp_journal_tick).  Called from the
 * broker's loop; a failure goes to notify, once. */
void sp_orphans_tick(sp_broker_t *b);

#endif
