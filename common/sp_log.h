/*
 * sp_log — the one place mains report to the user.
 *
 * One line per message on stderr, prefixed with the role and pid, e.g.
 * "broker[4242]: error: ...", and before them with the UTC time,
 * "2026-12-04T21:45:01.123Z broker[4242]: ...", when SP_LOG_TIME=1 or when
 * SP_LOG_TIME is unset and stderr is not a terminal (SP_LOG_TIME=0: never).  Library modules never
 * print; they return codes and the mains log them here.
 *
 * Nothing to own: a line is formatted on the stack (cut at 1 KiB) and
 * written with one write(2), whose failure is ignored (there is nowhere
 * left to report it).  That write may block while stderr is a full pipe.
 * sp_log is safe from any thread and process; sp_log_init and
 * sp_log_set_level set process-wide values without a lock, so a main calls
 * them before it starts threads.
 */
#ifndef SP_LOG_H
#define SP_LOG_H

enum { SP_LOG_ERROR = 0, SP_LOG_WARN = 1, SP_LOG_INFO = 2, SP_LOG_DEBUG = 3 };

/* Sets the role shown in every line (the string must outlive logging) and
 * reads SP_LOG_LEVEL (error|warn|info|debug) and SP_LOG_TIME (0|1; unset:
 * stamp lines when stderr is not a terminal) from the environment. */
void sp_log_init(const char *role);

/* Messages above this level are dropped. */
void sp_log_set_level(int level);

/* Writes one line; thread-safe (a single write(2) per line). */
void sp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sp_error(...) sp_log(SP_LOG_ERROR, __VA_ARGS__)
#define sp_warn(...)  sp_log(SP_LOG_WARN, __VA_ARGS__)
#define sp_info(...)  sp_log(SP_LOG_INFO, __VA_ARGS__)
#define sp_debug(...) sp_log(SP_LOG_DEBUG, __VA_ARGS__)

#endif
