/*
 * test_resp — the bench's Redis protocol client (bench/resp.h) on canned
 * bytes: every reply type parsed, an incomplete reply waited for, a
 * malformed or truncated one refused with its code, commands encoded as
 * arrays of bulk strings, and every read bounded by its deadline.  No
 * server: one end of a socketpair plays it.
 */
#include "resp.h"

#include "sp_error.h"
#include "sp_time.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESP_WAIT_MS 2000

static uint64_t s_deadline(int ms)
{
    return sp_now_ns() + (uint64_t)ms * SP_NS_PER_MS;
}

static long s_parse(const char *text, bench_resp_reply_t *r)
{
    return bench_resp_parse(text, strlen(text), r);
}

Test(resp, every_reply_type_is_parsed)
{
    bench_resp_reply_t r;
    cr_expect_eq(s_parse("+OK\r\n", &r), 5);
    cr_expect_eq(r.type, BENCH_RESP_SIMPLE);
    cr_expect(r.len == 2 && memcmp(r.str, "OK", 2) == 0);
    cr_expect_eq(s_parse("-ERR unknown command\r\n+OK\r\n", &r), 22, "one item at a time");
    cr_expect_eq(r.type, BENCH_RESP_ERROR);
    cr_expect(r.len == 19 && memcmp(r.str, "ERR unknown command", 19) == 0);
    cr_expect_eq(s_parse(":-42\r\n", &r), 6);
    cr_expect(r.type == BENCH_RESP_INT && r.integer == -42);
    cr_expect_eq(s_parse(":100000000\r\n", &r), 12);
    cr_expect(r.type == BENCH_RESP_INT && r.integer == 100000000);
    cr_expect_eq(s_parse("$5\r\nhe\r\no\r\n", &r), 11, "a bulk string may hold CR LF");
    cr_expect(r.type == BENCH_RESP_BULK && r.len == 5 && memcmp(r.str, "he\r\no", 5) == 0);
    cr_expect_eq(s_parse("$0\r\n\r\n", &r), 6);
    cr_expect(r.type == BENCH_RESP_BULK && r.len == 0);
    cr_expect_eq(s_parse("$-1\r\n", &r), 5);
    cr_expect_eq(r.type, BENCH_RESP_NIL);
    cr_expect_eq(s_parse("*3\r\n$1\r\n5\r\n", &r), 4, "an array gives its count only");
    cr_expect(r.type == BENCH_RESP_ARRAY && r.integer == 3);
    cr_expect_eq(s_parse("*-1\r\n", &r), 5);
    cr_expect_eq(r.type, BENCH_RESP_NIL);
}

Test(resp, an_incomplete_reply_asks_for_more)
{
    static const char *const whole[] = {"+OK\r\n", ":12\r\n", "$5\r\nhello\r\n", "*2\r\n",
                                        "$-1\r\n"};
    bench_resp_reply_t r;
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        size_t len = strlen(whole[i]);
        for (size_t cut = 0; cut < len; cut++) {
            cr_expect_eq(bench_resp_parse(whole[i], cut, &r), 0, "'%s' cut at %zu", whole[i], cut);
        }
        cr_expect_eq(bench_resp_parse(whole[i], len, &r), (long)len, "'%s' whole", whole[i]);
    }
}

Test(resp, a_malformed_reply_is_refused)
{
    static const char *const bad[] = {
        "?what\r\n",                /* no such type */
        ":12a\r\n",                 /* not a number */
        ":\r\n",                    /* no digits */
        ":-\r\n",                   /* a sign alone */
        ":1234567890123456789\r\n", /* beyond the digits it takes */
        "$-2\r\n",                  /* a length below -1 */
        "*-5\r\n",                  /* ... a count too */
        "$x\r\n",                   /* a length that is no number */
        "$5\r\nhelloXY",            /* no CR LF after the bulk */
        "$99999999\r\n",            /* more than any reply the bench asks for */
        "+OK\n",                    /* LF without CR */
        "+O\rK\r\n",                /* a CR alone */
        "\r\n",                     /* no type at all */
    };
    bench_resp_reply_t r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(s_parse(bad[i], &r), -EBADMSG, "'%s'", bad[i]);
    }
    cr_expect_eq(bench_resp_parse("\0\r\n", 3, &r), -EBADMSG, "a NUL type byte");
}

/* A connection on one end of a socketpair; the other end in *peer. */
static bench_resp_t *s_pair(int *peer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0, "%s", strerror(errno));
    bench_resp_t *c = bench_resp_new(sv[0]);
    cr_assert_not_null(c);
    *peer = sv[1];
    return c;
}

static void s_send(int fd, const char *text)
{
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
}

Test(resp, commands_go_out_as_arrays_of_bulk_strings)
{
    int peer;
    bench_resp_t *c = s_pair(&peer);
    static const char *const get[] = {"GET", "p:17"};
    cr_expect_eq(bench_resp_cmd(c, 2, get, NULL, s_deadline(RESP_WAIT_MS)), 0);
    /* binary-safe: lengths given, a NUL and a CR LF inside */
    static const char *const set[] = {"SET", "k", "a\0b\r\n"};
    static const size_t lens[] = {3, 1, 5};
    cr_expect_eq(bench_resp_cmd(c, 3, set, lens, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect_eq(bench_resp_flush(c, s_deadline(RESP_WAIT_MS)), 0);
    static const char want[] = "*2\r\n$3\r\nGET\r\n$4\r\np:17\r\n"
                               "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\0b\r\n\r\n";
    char got[sizeof want];
    size_t n = 0;
    while (n < sizeof want - 1) {
        ssize_t r = read(peer, got + n, sizeof want - 1 - n);
        cr_assert_gt(r, 0);
        n += (size_t)r;
    }
    cr_expect_eq(memcmp(got, want, sizeof want - 1), 0, "%.*s", (int)n, got);
    cr_expect_eq(bench_resp_cmd(c, 0, get, NULL, s_deadline(RESP_WAIT_MS)), -E2BIG);
    close(peer);
    bench_resp_destroy(&c);
    cr_expect_null(c);
    bench_resp_destroy(&c); /* NULL-safe */
}

Test(resp, replies_are_read_across_pieces_and_a_truncated_one_is_refused)
{
    int peer;
    bench_resp_t *c = s_pair(&peer);
    /* an MGET answer split in the middle of an item, then more */
    s_send(peer, "*3\r\n$1\r\n5\r\n$-1\r\n$2\r");
    bench_resp_reply_t r;
    cr_assert_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect(r.type == BENCH_RESP_ARRAY && r.integer == 3);
    cr_assert_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect(r.type == BENCH_RESP_BULK && r.len == 1 && r.str[0] == '5');
    cr_assert_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect_eq(r.type, BENCH_RESP_NIL);
    s_send(peer, "\n10\r\n:7\r\n-ERR no\r\n$5\r\nhel");
    cr_assert_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect(r.type == BENCH_RESP_BULK && r.len == 2 && memcmp(r.str, "10", 2) == 0);
    cr_assert_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect(r.type == BENCH_RESP_INT && r.integer == 7);
    cr_assert_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect(r.type == BENCH_RESP_ERROR && r.len == 6 && memcmp(r.str, "ERR no", 6) == 0);
    /* nothing more comes: the read gives up at its deadline */
    uint64_t t0 = sp_now_ns();
    cr_expect_eq(bench_resp_read(c, &r, s_deadline(50)), SP_E_TIMEOUT);
    cr_expect_geq(sp_now_ns() - t0, 40 * SP_NS_PER_MS);
    /* the server goes away in the middle of "$5\r\nhel" */
    close(peer);
    cr_expect_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), -EPROTO);
    bench_resp_destroy(&c);

    /* ... and between replies: a closed connection, not a truncated reply */
    c = s_pair(&peer);
    s_send(peer, "+OK\r\n");
    close(peer);
    cr_expect_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), -ECONNRESET);
    cr_expect_eq(bench_resp_flush(c, s_deadline(RESP_WAIT_MS)), 0, "nothing to write");
    static const char *const ping[] = {"PING"};
    cr_expect_eq(bench_resp_cmd(c, 1, ping, NULL, s_deadline(RESP_WAIT_MS)), 0);
    cr_expect_eq(bench_resp_flush(c, s_deadline(RESP_WAIT_MS)), -EPIPE, "no SIGPIPE either");
    bench_resp_destroy(&c);
}

Test(resp, a_malformed_or_oversized_reply_on_the_wire_is_refused)
{
    int peer;
    bench_resp_t *c = s_pair(&peer);
    s_send(peer, ":12a\r\n");
    bench_resp_reply_t r;
    cr_expect_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), -EBADMSG);
    close(peer);
    bench_resp_destroy(&c);

    /* a line that never ends fills the buffer */
    c = s_pair(&peer);
    char *big = malloc(BENCH_RESP_BUF + 2);
    cr_assert_not_null(big);
    big[0] = '+';
    memset(big + 1, 'a', BENCH_RESP_BUF);
    big[BENCH_RESP_BUF + 1] = '\0';
    int size = 4 * BENCH_RESP_BUF;
    (void)setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    s_send(peer, big);
    cr_expect_eq(bench_resp_read(c, &r, s_deadline(RESP_WAIT_MS)), -EMSGSIZE);
    free(big);
    close(peer);
    bench_resp_destroy(&c);
}

Test(resp, connecting_to_no_server_says_why)
{
    errno = 0;
    cr_expect_null(bench_resp_connect("/nonexistent/redis.sock"));
    cr_expect_eq(errno, ENOENT);
    char path[300];
    memset(path, 'x', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    errno = 0;
    cr_expect_null(bench_resp_connect(path));
    cr_expect_eq(errno, ENAMETOOLONG);
}
