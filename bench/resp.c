/*
 * resp — Redis's protocol, client side (see resp.h).
 *
 * A connection is a non-blocking socket with a buffer each way.  Commands
 * are encoded straight into the output buffer; bench_resp_flush writes it
 * out, waiting with poll for room until the caller's deadline.  Replies are
 * parsed in place from the input buffer; when the next item is not all
 * there, what is left is moved to the front and more is read, again waiting
 * with poll until the deadline.  send(MSG_NOSIGNAL) rather than write: a
 * server that went away is -EPIPE, not a SIGPIPE in whichever process the
 * caller is.
 */
#include "resp.h"

#include "sp_error.h"
#include "sp_time.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define S_DIGITS_MAX 18 /* |n| < 10^18: no overflow in int64_t */

struct bench_resp {
    int fd;
    size_t out_len;        /* bytes waiting in out */
    size_t in_pos, in_len; /* in[in_pos .. in_len) not parsed yet */
    char out[BENCH_RESP_BUF];
    char in[BENCH_RESP_BUF];
};

/* ---- parsing ---- */

/* The line at buf[0 .. len) before its CRLF: its length, -1 when the LF has
 * not come yet, -2 when a CR or an LF stands alone. */
static long s_line(const char *buf, size_t len)
{
    const char *lf = memchr(buf, '\n', len);
    if (lf == NULL) {
        return -1;
    }
    size_t n = (size_t)(lf - buf);
    if (n == 0 || buf[n - 1] != '\r' || memchr(buf, '\r', n - 1) != NULL) {
        return -2;
    }
    return (long)(n - 1);
}

/* A decimal integer filling s[0 .. n) exactly: an optional '-', then 1 to
 * S_DIGITS_MAX digits. */
static bool s_int(const char *s, size_t n, int64_t *v)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg ? 1 : 0;
    if (n == i || n - i > S_DIGITS_MAX) {
        return false;
    }
    int64_t x = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        x = x * 10 + (s[i] - '0');
    }
    *v = neg ? -x : x;
    return true;
}

long bench_resp_parse(const char *buf, size_t len, bench_resp_reply_t *r)
{
    memset(r, 0, sizeof *r);
    if (len == 0) {
        return 0;
    }
    char type = buf[0];
    if (strchr("+-:$*", type) == NULL || type == '\0') {
        return -EBADMSG;
    }
    long line = s_line(buf + 1, len - 1);
    if (line == -1) {
        return 0;
    }
    if (line < 0) {
        return -EBADMSG;
    }
    const char *text = buf + 1;
    size_t n = (size_t)line, head = 1 + n + 2; /* type, text, CRLF */
    switch (type) {
    case '+':
    case '-':
        r->type = type == '+' ? BENCH_RESP_SIMPLE : BENCH_RESP_ERROR;
        r->str = text;
        r->len = n;
        return (long)head;
    case ':':
        r->type = BENCH_RESP_INT;
        return s_int(text, n, &r->integer) ? (long)head : -EBADMSG;
    default:
        break;
    }
    int64_t count;
    if (!s_int(text, n, &count) || count < -1) {
        return -EBADMSG;
    }
    if (count == -1) {
        r->type = BENCH_RESP_NIL;
        return (long)head;
    }
    if (type == '*') {
        r->type = BENCH_RESP_ARRAY;
        r->integer = count;
        return (long)head;
    }
    if (count > BENCH_RESP_BUF) {
        return -EBADMSG; /* more than any reply the bench asks for */
    }
    size_t need = head + (size_t)count + 2;
    if (len < need) {
        return 0;
    }
    if (buf[need - 2] != '\r' || buf[need - 1] != '\n') {
        return -EBADMSG;
    }
    r->type = BENCH_RESP_BULK;
    r->str = buf + head;
    r->len = (size_t)count;
    return (long)need;
}

/* ---- the connection ---- */

bench_resp_t *bench_resp_new(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return NULL;
    }
    bench_resp_t *self = calloc(1, sizeof *self);
    if (self != NULL) {
        self->fd = fd;
    }
    return self;
}

bench_resp_t *bench_resp_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return NULL;
    }
    if (connect(fd, (const struct sockaddr *)&sa, sizeof sa) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    bench_resp_t *self = bench_resp_new(fd);
    if (self == NULL) {
        int err = errno;
        close(fd);
        errno = err;
    }
    return self;
}

void bench_resp_destroy(bench_resp_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    close((*self_p)->fd);
    free(*self_p);
    *self_p = NULL;
}

/* Waits until the socket is ready for `events` or the deadline passes.
 * Returns 0, SP_E_TIMEOUT or poll's -errno. */
static int s_wait(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = sp_now_ns();
        if (now >= deadline_ns) {
            return SP_E_TIMEOUT;
        }
        uint64_t left_ms = (deadline_ns - now + SP_NS_PER_MS - 1) / SP_NS_PER_MS;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left_ms > INT32_MAX ? INT32_MAX : (int)left_ms);
        if (n > 0) {
            return 0; /* ready, or an error the next call will name */
        }
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
    }
}

int bench_resp_flush(bench_resp_t *self, uint64_t deadline_ns)
{
    size_t done = 0;
    while (done < self->out_len) {
        ssize_t w = send(self->fd, self->out + done, self->out_len - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return -errno;
        }
        int rc = s_wait(self->fd, POLLOUT, deadline_ns);
        if (rc < 0) {
            /* keep what was not sent, in order, for a later try */
            memmove(self->out, self->out + done, self->out_len - done);
            self->out_len -= done;
            return rc;
        }
    }
    self->out_len = 0;
    return 0;
}

/* Decimal digits of v at p; returns how many. */
static size_t s_put_u(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++) {
        p[i] = tmp[n - 1 - i];
    }
    return n;
}

/* Bytes of "<c>N\r\n". */
static size_t s_head_len(size_t v)
{
    char tmp[24];
    return 1 + s_put_u(tmp, v) + 2;
}

static size_t s_put_head(char *p, char c, size_t v)
{
    p[0] = c;
    size_t n = 1 + s_put_u(p + 1, v);
    p[n++] = '\r';
    p[n++] = '\n';
    return n;
}

int bench_resp_cmd(bench_resp_t *self, int argc, const char *const *argv, const size_t *lens,
                   uint64_t deadline_ns)
{
    if (argc <= 0 || argc > BENCH_RESP_ARGS_MAX) {
        return -E2BIG;
    }
    size_t len[BENCH_RESP_ARGS_MAX];
    size_t need = s_head_len((size_t)argc);
    for (int i = 0; i < argc; i++) {
        len[i] = lens != NULL ? lens[i] : strlen(argv[i]);
        need += s_head_len(len[i]) + len[i] + 2;
        if (need > BENCH_RESP_BUF) {
            return -E2BIG;
        }
    }
    if (self->out_len + need > BENCH_RESP_BUF) {
        int rc = bench_resp_flush(self, deadline_ns);
        if (rc < 0) {
            return rc;
        }
    }
    char *p = self->out + self->out_len;
    p += s_put_head(p, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        p += s_put_head(p, '$', len[i]);
        memcpy(p, argv[i], len[i]);
        p += len[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    self->out_len = (size_t)(p - self->out);
    return 0;
}

int bench_resp_read(bench_resp_t *self, bench_resp_reply_t *r, uint64_t deadline_ns)
{
    for (;;) {
        long got = bench_resp_parse(self->in + self->in_pos, self->in_len - self->in_pos, r);
        if (got > 0) {
            self->in_pos += (size_t)got;
            return 0;
        }
        if (got < 0) {
            return (int)got;
        }
        /* not all there: the rest to the front (the last reply's text with
         * it, which the caller no longer holds), then more */
        if (self->in_pos > 0) {
            memmove(self->in, self->in + self->in_pos, self->in_len - self->in_pos);
            self->in_len -= self->in_pos;
            self->in_pos = 0;
        }
        if (self->in_len == sizeof self->in) {
            return -EMSGSIZE;
        }
        ssize_t n = recv(self->fd, self->in + self->in_len, sizeof self->in - self->in_len, 0);
        if (n > 0) {
            self->in_len += (size_t)n;
            continue;
        }
        if (n == 0) {
            return self->in_len > 0 ? -EPROTO : -ECONNRESET;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return -errno;
        }
        int rc = s_wait(self->fd, POLLIN, deadline_ns);
        if (rc < 0) {
            return rc;
        }
    }
}
