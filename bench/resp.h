/*
 * resp — the client side of Redis's wire protocol (RESP 2), as much of it as
 * the bench's Redis peer needs (peer.h): commands out as arrays of bulk
 * strings, replies in as simple strings, errors, integers, bulk strings
 * (nil included) and arrays.
 *
 * Why our own: the peer must not add a library to the build (no hiredis),
 * and a benchmark's client should be small enough to read whole.  A
 * connection buffers each way (BENCH_RESP_BUF bytes), so a pipelined batch
 * of commands leaves in one write and its replies arrive in few reads.
 *
 * Replies are parsed one item at a time: an array reply gives its element
 * count, and its elements are the next reads.  So a reply never needs more
 * than one element's room in the buffer, and nothing is allocated.  The
 * parser takes only well-formed replies: a bad type byte, a bad number, a
 * length below -1, a bulk string without its CRLF, or a reply larger than
 * the buffer is refused, never guessed at.
 *
 * Ownership: a connection owns its socket from bench_resp_new (or
 * bench_resp_connect) to bench_resp_destroy.  A reply's text lives in the
 * connection's buffer until its next read.  Errors: NULL with errno, or 0
 * and a negative errno (SP_E_TIMEOUT for a deadline) as below.  Blocking:
 * every write and read waits at most until the caller's deadline (sp_now_ns
 * nanoseconds), so a dead or stuck server cannot hang the caller.  Threads
 * and processes: a connection belongs to one thread; nothing is shared.
 */
#ifndef BENCH_RESP_H
#define BENCH_RESP_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_RESP_BUF      65536 /* bytes buffered each way; the largest reply item */
#define BENCH_RESP_ARGS_MAX 1100  /* arguments of one command (MSET of 512 pairs, ...) */

typedef enum {
    BENCH_RESP_SIMPLE = 0, /* +OK */
    BENCH_RESP_ERROR,      /* -ERR ... */
    BENCH_RESP_INT,        /* :42 */
    BENCH_RESP_BULK,       /* $3 abc */
    BENCH_RESP_NIL,        /* $-1 or *-1: no value */
    BENCH_RESP_ARRAY,      /* *N: N replies follow, each read on its own */
} bench_resp_type_t;

typedef struct {
    bench_resp_type_t type;
    int64_t integer; /* INT: the value; ARRAY: how many elements follow */
    const char *str; /* SIMPLE, ERROR, BULK: the text (no NUL after it) */
    size_t len;      /* its length */
} bench_resp_reply_t;

/* Parses the first reply item in buf[0 .. len) into *r (its text points
 * into buf).  Returns the bytes it took (> 0), 0 when the item is not all
 * there yet, or -EBADMSG when it is malformed.  Pure; never blocks. */
long bench_resp_parse(const char *buf, size_t len, bench_resp_reply_t *r);

typedef struct bench_resp bench_resp_t;

/* A connection over `fd`, a connected stream socket, which it takes (made
 * non-blocking; closed by destroy).  Returns NULL with errno (ENOMEM);
 * then fd is still the caller's. */
bench_resp_t *bench_resp_new(int fd);

/* Connects to the unix socket at `path`.  Returns NULL with errno
 * (ENAMETOOLONG, or connect's: ENOENT and ECONNREFUSED while a server is
 * not listening yet).  Does not block beyond connect(2) on a local socket. */
bench_resp_t *bench_resp_connect(const char *path);

/* Closes the socket and frees the connection; NULL-safe, nulls *self_p. */
void bench_resp_destroy(bench_resp_t **self_p);

/* Appends one command of argc arguments (argv[i] of lens[i] bytes; lens
 * NULL: NUL-terminated strings) to the output buffer, writing the buffer
 * out first when it has no room.  Returns 0, -E2BIG (more than
 * BENCH_RESP_ARGS_MAX arguments, or larger than the buffer) or a write's
 * error as bench_resp_flush. */
int bench_resp_cmd(bench_resp_t *self, int argc, const char *const *argv, const size_t *lens,
                   uint64_t deadline_ns);

/* Writes the whole output buffer.  Returns 0, SP_E_TIMEOUT (the deadline
 * passed), -EPIPE (the server closed) or another -errno. */
int bench_resp_flush(bench_resp_t *self, uint64_t deadline_ns);

/* Reads the next reply item into *r (valid until the next read).  Returns
 * 0; -EBADMSG (malformed); -EMSGSIZE (an item larger than the buffer);
 * -EPROTO (the server closed in the middle of a reply: truncated);
 * -ECONNRESET (it closed between replies); SP_E_TIMEOUT; or read's -errno. */
int bench_resp_read(bench_resp_t *self, bench_resp_reply_t *r, uint64_t deadline_ns);

#endif
