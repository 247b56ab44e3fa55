/*
 * sp_signal — the only place stockpipe touches sigaction.
 *
 * SIGINT and SIGTERM only set a flag (the one global stockpipe has); every
 * loop polls sp_signal_stopping() between bounded waits.  SIGPIPE is ignored
 * so a vanished reader shows up as EPIPE, not as a dead process.
 *
 * Nothing to own.  sp_signal_install returns 0 or -errno; nothing else
 * fails or blocks.  The flag is one lock-free atomic per process: every
 * function is safe from any thread (and the handler from any signal), and
 * a stop, by signal or by sp_signal_request_stop, is seen by every thread
 * of the process.
 */
#ifndef SP_SIGNAL_H
#define SP_SIGNAL_H

#include <stdbool.h>

/* Installs the handlers.  Returns 0 or -errno. */
int sp_signal_install(void);

/* True once SIGINT or SIGTERM arrived or sp_signal_request_stop() was called. */
bool sp_signal_stopping(void);

/* The signal that asked us to stop, 0 if none (or a programmatic stop). */
int sp_signal_which(void);

/* Asks every loop of this process to stop, as a signal would. */
void sp_signal_request_stop(void);

/* Clears the flag (tests reuse a process for several runs). */
void sp_signal_reset(void);

#endif
