/*
 * sp_supervisor — the broker's workers: start, reap, restart, kill the hung,
 * stop (what each does: sp_supervisor.c).
 *
 * Ownership: the workers are the broker's: processes are its children
 * (posix_spawn), threads run cfg->worker_thread on arguments kept in the
 * context's worker table (sp_broker_impl.h), which this module keeps.  Every
 * call belongs to the broker's thread; reaping takes any child of the process
 * (waitpid(-1)).  None blocks except sp_supervisor_finish, which waits for
 * worker threads (they notice the stop flag within SP_WORKER_POLL_MS) and for
 * processes it had to kill.  Errors are returned as -errno; progress and
 * problems go to the broker's notify.
 */
#ifndef SP_SUPERVISOR_H
#define SP_SUPERVISOR_H

#include "sp_broker_impl.h"

#include <stdbool.h>
#include <stddef.h>

/* Starts every worker.  Returns 0, or the first failure with *why naming
 * the worker (those already started keep running: shutdown stops them). */
int sp_supervisor_start(sp_broker_t *b, char *why, size_t cap);

/* Reaps the workers that exited (resolving what each left half done) and,
 * when `restart`, starts them again.  Never blocks. */
void sp_supervisor_reap(sp_broker_t *b, bool restart);

/* Kills (SIGKILL) every worker process silent for longer than silent_ms;
 * the next reap resolves and restarts it. */
void sp_supervisor_kill_hung(sp_broker_t *b);

/* Whether worker `c` still runs (a process not reaped, a thread not
 * returned). */
bool sp_supervisor_alive(const sp_bworker_t *c);

/* Workers still running (processes not reaped, threads not returned). */
unsigned sp_supervisor_live(const sp_broker_t *b);

/* Asks every worker to stop: the threads' stop flag, SIGTERM to processes. */
void sp_supervisor_stop(sp_broker_t *b);

/* After the stop wait: joins the threads and kills (and reaps) the
 * processes that did not stop.  Blocks until both are done. */
void sp_supervisor_finish(sp_broker_t *b);

#endif
