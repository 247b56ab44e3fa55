/*
 * sp_instance — every IPC name of one pipeline instance, derived in one place.
 *
 * An instance NAME (default "stockpipe") owns:
 *   /NAME.table           the shared table (POSIX shm)
 *   /NAME.orders          the order queue (POSIX mq transport)
 *   /NAME.r.<producer>    one reply queue per producer (POSIX mq transport)
 *   /NAME.r.h<tag>        a producer's WELCOME queue before it has an id (mq)
 *   /NAME.ring            the order and result rings (POSIX shm, shm transport)
 *   RUN_DIR/              private directory (0700) for ipc:// endpoints:
 *       orders.sock, workers.sock, events-in.sock, events.sock, snapshot.sock
 *       (with --tcp only the workers' two: workers.sock, events-in.sock)
 *       and the contact file local clients find the instance by (sp_contact.h)
 *   STATE_DIR/            snapshots and journals (default run/NAME)
 * RUN_DIR is $SP_RUN_DIR/NAME, else /tmp/stockpipe-UID/NAME.
 *
 * Ownership: names are written into the caller's sp_names_t or buffer;
 * nothing is allocated.  Errors: 0, SP_E_USAGE (a bad instance name) or
 * -errno.  Blocking: only the directory functions touch the file system
 * (and sp_pid_alive reads /proc).  Safe from any thread and process.
 */
#ifndef SP_INSTANCE_H
#define SP_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#define SP_INSTANCE_DEFAULT  "stockpipe"
#define SP_INSTANCE_NAME_MAX 40 /* characters, [A-Za-z0-9_.-], not starting with '.' */
#define SP_IPC_NAME_MAX      64 /* "/NAME.r.4294967295" and friends fit */
#define SP_PATH_MAX          256
#define SP_ENDPOINT_MAX      128       /* ipc:// paths must stay below ~107 bytes */
#define SP_RUN_CONTACT       "contact" /* RUN_DIR/contact: how local clients find us */
#define SP_STATE_DIR_DEFAULT "run"

typedef struct {
    char name[SP_INSTANCE_NAME_MAX + 1];
    char table[SP_IPC_NAME_MAX];
    char orders_mq[SP_IPC_NAME_MAX];
    char ring[SP_IPC_NAME_MAX]; /* shm transport segment */
    char run_dir[SP_PATH_MAX];
    char state_dir[SP_PATH_MAX];
} sp_names_t;

/* Checks an instance name.  Returns 0 or SP_E_USAGE. */
int sp_instance_check(const char *name);

/* Splits a comma-separated list of instance names ("A,B": the shards of a
 * catalogue split across brokers) into names[0 .. *n - 1].  Returns 0, or
 * SP_E_USAGE with *why for an empty element, a bad or repeated name, or
 * more than `max` names. */
int sp_instance_list(const char *list, char (*names)[SP_INSTANCE_NAME_MAX + 1], unsigned max,
                     unsigned *n, char *why, size_t cap);

/* Fills every name of `instance`; state_dir_base NULL means "run".
 * Returns 0, SP_E_USAGE (bad name) or -ENAMETOOLONG. */
int sp_names_init(sp_names_t *n, const char *instance, const char *state_dir_base);

/* True while process `pid` runs: a zombie (dead, not yet reaped) counts as
 * gone, and so does a pid we may not signal only if it does not exist. */
bool sp_pid_alive(pid_t pid);

/* The login name of `uid` into buf ("uid N" when it has none). */
const char *sp_user_name(uid_t uid, char *buf, size_t cap);

/* "/NAME.r.<producer_id>" */
void sp_names_reply_mq(const sp_names_t *n, uint32_t producer_id, char *buf, size_t cap);

/* "/NAME.r.h<16 hex digits of tag>": where an mq producer without an id yet
 * waits for its WELCOME (sp_hello.h). */
void sp_names_hello_mq(const sp_names_t *n, uint64_t tag, char *buf, size_t cap);

/* "ipc://RUN_DIR/<which>.sock"; returns 0 or -ENAMETOOLONG. */
int sp_names_ipc_endpoint(const sp_names_t *n, const char *which, char *buf, size_t cap);

/* Creates RUN_DIR (and its parent) with mode 0700; refuses (-EPERM) a
 * directory owned by someone else or open to others. Returns 0 or -errno. */
int sp_names_make_run_dir(const sp_names_t *n);

/* Removes RUN_DIR's sockets and the directory itself (best effort). */
void sp_names_remove_run_dir(const sp_names_t *n);

/* Creates STATE_DIR (and parents) with mode 0700. Returns 0 or -errno. */
int sp_names_make_state_dir(const sp_names_t *n);

#endif
