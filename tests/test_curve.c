/*
 * test_curve — CURVE on the broker's tcp:// endpoints.
 *
 * In one process: keygen writes a 0600 secret and never overwrites; secret
 * files open to others, not ours, not regular, public-only or with keys that
 * do not belong together are refused with the exact code; the clients'
 * directory must be private; over a real CURVE server with the zauth actor,
 * only a listed client's message arrives (no key, a wrong server key and an
 * unlisted key get nothing through), no client at all gets in while no
 * authenticator runs, and a maximum-size message still passes with CURVE's
 * framing around it.
 *
 * Against a real broker: a local producer with a listed --cert gets its
 * orders applied and one without a key is told to give --cert; Python
 * clients (tests/curve_probe.py) with no key, a wrong server key and an
 * unlisted key send valid orders and get no reply, no events and nothing
 * applied while a listed one is served; an unlisted monitor receives
 * nothing; a broker refuses a secret key file with mode 0644; `broker
 * --keygen` writes a 0600 secret file.
 */
#include "sp_testutil.h"

#include "sp_curve.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_table.h"
#include "sp_tcp.h"
#include "sp_wire.h"
#include "sp_zmq.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_MS         30000
#define T_NOBODY       65534 /* an owner other than us (root-only checks) */
#define T_DELIVER_MS   3000  /* a message that should arrive has this long */
#define T_REFUSED_MS   700   /* a message that should not arrive is watched this long */
#define T_MONITOR_WAIT "1500"
#define T_PRODUCT      3
#define T_PROBE_LINES  4
#define T_LARGEST      4000 /* a socket's largest legitimate frame in the size test */
#define T_PATH         512
#define T_TMP          256
#define T_EXIT_REFUSED 1

static pid_t s_broker_pid;
static char s_tmp[T_TMP];

static void s_cleanup(void)
{
    if (s_broker_pid > 0) {
        spt_stop(s_broker_pid);
        s_broker_pid = 0;
    }
    spt_rmtree(s_tmp);
    s_tmp[0] = '\0';
}

/* A scratch directory with key pairs: the broker's ("server"), a listed
 * client's ("alice", its public certificate copied into "clients") and an
 * unlisted one's ("mallory"). */
typedef struct {
    char server[T_PATH], alice[T_PATH], mallory[T_PATH], clients[T_PATH];
    sp_curve_keys_t server_keys, alice_keys, mallory_keys;
} s_keys_t;

static void s_copy(const char *from, const char *to, mode_t mode)
{
    char *text = spt_slurp(from);
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    cr_assert(fd >= 0, "%s: %s", to, strerror(errno));
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
    free(text);
}

static void s_keys(s_keys_t *k, const char *tag)
{
    cr_assert(spt_tmpdir(s_tmp, sizeof s_tmp, tag));
    char why[512] = "";
    snprintf(k->server, sizeof k->server, "%s/server", s_tmp);
    snprintf(k->alice, sizeof k->alice, "%s/alice", s_tmp);
    snprintf(k->mallory, sizeof k->mallory, "%s/mallory", s_tmp);
    snprintf(k->clients, sizeof k->clients, "%s/clients", s_tmp);
    cr_assert_eq(sp_curve_keygen(k->server, &k->server_keys, why, sizeof why), 0, "%s", why);
    cr_assert_eq(sp_curve_keygen(k->alice, &k->alice_keys, why, sizeof why), 0, "%s", why);
    cr_assert_eq(sp_curve_keygen(k->mallory, &k->mallory_keys, why, sizeof why), 0, "%s", why);
    cr_assert_eq(mkdir(k->clients, 0700), 0);
    char listed[T_PATH + 16];
    snprintf(listed, sizeof listed, "%s/alice.pub", k->clients);
    s_copy(k->alice, listed, 0644);
}

static mode_t s_mode(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

/* --- certificates ------------------------------------------------------------ */

Test(curve, keygen_writes_a_private_secret_and_a_public_certificate, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curvekeygen");
    char secret[T_PATH + 16];
    snprintf(secret, sizeof secret, "%s%s", k.server, SP_CURVE_SECRET_SUFFIX);
    cr_expect_eq(s_mode(secret), 0600);
    cr_expect_eq(s_mode(k.server) & 0022, 0, "the public file is writable by others");
    cr_expect(sp_curve_key_valid(k.server_keys.public_txt));
    cr_expect(sp_curve_key_valid(k.server_keys.secret_txt));

    /* the public certificate holds the public key and no secret */
    char pub[SP_CURVE_KEY_TXT], why[512] = "";
    cr_assert_eq(sp_curve_load_public(k.server, pub, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(pub, k.server_keys.public_txt);
    char *text = spt_slurp(k.server);
    cr_expect(strstr(text, k.server_keys.secret_txt) == NULL, "secret key in the public file");
    cr_expect(strstr(text, "secret-key") == NULL, "%s", text);
    free(text);

    /* reading it back by either name gives the same pair */
    sp_curve_keys_t back;
    cr_assert_eq(sp_curve_load_secret(k.server, &back, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(back.public_txt, k.server_keys.public_txt);
    cr_expect_str_eq(back.secret_txt, k.server_keys.secret_txt);
    cr_assert_eq(sp_curve_load_secret(secret, &back, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(back.secret_txt, k.server_keys.secret_txt);
    sp_curve_wipe(&back);
    cr_expect_str_eq(back.secret_txt, "");
}

Test(curve, keygen_never_overwrites_a_key, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curvenoover");
    char *before = spt_slurp(k.alice);
    sp_curve_keys_t again;
    char why[512] = "";
    cr_expect_eq(sp_curve_keygen(k.alice, &again, why, sizeof why), -EEXIST);
    cr_expect(strstr(why, k.alice) != NULL && strstr(why, "exists") != NULL, "%s", why);
    char *after = spt_slurp(k.alice);
    cr_expect_str_eq(after, before);
    free(before);
    free(after);

    /* a leftover secret half alone is not overwritten either, and the new
     * public file is not left behind */
    char lone[T_PATH + 16], lone_secret[T_PATH + 32];
    snprintf(lone, sizeof lone, "%s/lone", s_tmp);
    snprintf(lone_secret, sizeof lone_secret, "%s%s", lone, SP_CURVE_SECRET_SUFFIX);
    s_copy(k.alice, lone_secret, 0600);
    cr_expect_eq(sp_curve_keygen(lone, &again, why, sizeof why), -EEXIST);
    cr_expect_neq(access(lone, F_OK), 0, "%s was left behind", lone);
}

Test(curve, secret_files_open_to_others_are_refused, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curvemode");
    char secret[T_PATH + 16];
    snprintf(secret, sizeof secret, "%s%s", k.alice, SP_CURVE_SECRET_SUFFIX);
    const mode_t refused[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601, 0666};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_assert_eq(chmod(secret, refused[i]), 0);
        sp_curve_keys_t keys;
        char why[512] = "";
        cr_expect_eq(sp_curve_load_secret(k.alice, &keys, why, sizeof why), -EPERM, "mode %04o",
                     (unsigned)refused[i]);
        cr_expect(strstr(why, secret) != NULL, "the file is named: %s", why);
        char fix[T_PATH + 32];
        snprintf(fix, sizeof fix, "chmod 600 %s", secret);
        cr_expect(strstr(why, fix) != NULL, "the fix is named: %s", why);
        cr_expect_str_eq(keys.secret_txt, "", "no key handed out");
    }
    /* owner-only modes are fine */
    const mode_t accepted[] = {0600, 0400};
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        cr_assert_eq(chmod(secret, accepted[i]), 0);
        sp_curve_keys_t keys;
        char why[512] = "";
        cr_expect_eq(sp_curve_load_secret(k.alice, &keys, why, sizeof why), 0, "%04o: %s",
                     (unsigned)accepted[i], why);
    }
}

Test(curve, a_secret_file_of_another_user_is_refused, .fini = s_cleanup)
{
    if (geteuid() != 0) {
        cr_skip_test("needs root to give a file away");
    }
    s_keys_t k;
    s_keys(&k, "curveowner");
    char secret[T_PATH + 16];
    snprintf(secret, sizeof secret, "%s%s", k.alice, SP_CURVE_SECRET_SUFFIX);
    cr_assert_eq(chown(secret, T_NOBODY, T_NOBODY), 0);
    sp_curve_keys_t keys;
    char why[512] = "";
    cr_expect_eq(sp_curve_load_secret(k.alice, &keys, why, sizeof why), -EPERM);
    cr_expect(strstr(why, secret) != NULL && strstr(why, "65534") != NULL, "%s", why);
}

Test(curve, only_a_regular_file_with_both_keys_is_a_secret_certificate, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curveshape");
    sp_curve_keys_t keys;
    char why[512] = "", path[T_PATH + 32];

    /* a public certificate alone */
    char pub_only[T_PATH + 16];
    snprintf(pub_only, sizeof pub_only, "%s/pub-only", s_tmp);
    s_copy(k.alice, pub_only, 0600);
    cr_expect_eq(sp_curve_load_secret(pub_only, &keys, why, sizeof why), -EINVAL);
    cr_expect(strstr(why, "no secret key") != NULL, "%s", why);

    /* nothing there; a directory; garbage; an oversized file */
    snprintf(path, sizeof path, "%s/missing", s_tmp);
    cr_expect_eq(sp_curve_load_secret(path, &keys, why, sizeof why), -ENOENT);
    cr_expect(strstr(why, "--keygen") != NULL, "%s", why);
    snprintf(path, sizeof path, "%s/dir%s", s_tmp, SP_CURVE_SECRET_SUFFIX);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/dir", s_tmp);
    cr_expect_eq(sp_curve_load_secret(path, &keys, why, sizeof why), -EINVAL);
    cr_expect(strstr(why, "not a regular file") != NULL, "%s", why);
    snprintf(path, sizeof path, "%s/garbage", s_tmp);
    FILE *f = fopen(path, "w");
    fputs("curve\n    public-key = \"short\"\n", f);
    fclose(f);
    chmod(path, 0600);
    cr_expect_eq(sp_curve_load_secret(path, &keys, why, sizeof why), -EINVAL);
    cr_expect_eq(sp_curve_load_public(path, keys.public_txt, why, sizeof why), -EINVAL);
    snprintf(path, sizeof path, "%s/huge", s_tmp);
    f = fopen(path, "w");
    for (int i = 0; i < SP_CURVE_FILE_MAX; i++) {
        fputc('#', f);
    }
    fclose(f);
    chmod(path, 0600);
    cr_expect_eq(sp_curve_load_public(path, keys.public_txt, why, sizeof why), -EFBIG);

    /* alice's public key with mallory's secret key */
    snprintf(path, sizeof path, "%s/mixed", s_tmp);
    f = fopen(path, "w");
    fprintf(f, "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", k.alice_keys.public_txt,
            k.mallory_keys.secret_txt);
    fclose(f);
    chmod(path, 0600);
    cr_expect_eq(sp_curve_load_secret(path, &keys, why, sizeof why), -EINVAL);
    cr_expect(strstr(why, "is not the one its secret key makes") != NULL, "%s", why);
}

Test(curve, the_clients_directory_must_be_private, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curvedir");
    sp_zmq_setup();
    sp_curve_auth_t *auth = NULL;
    char why[512] = "";
    unsigned n = 0;
    cr_assert_eq(chmod(k.clients, 0777), 0);
    cr_expect_eq(sp_curve_auth_new(&auth, k.clients, &n, why, sizeof why), -EPERM);
    cr_expect(strstr(why, "chmod go-w") != NULL, "%s", why);
    cr_expect_null(auth);
    cr_assert_eq(chmod(k.clients, 0755), 0);
    cr_expect_eq(sp_curve_auth_new(&auth, k.alice, &n, why, sizeof why), -ENOTDIR);
    char missing[T_PATH + 16];
    snprintf(missing, sizeof missing, "%s/missing", s_tmp);
    cr_expect_eq(sp_curve_auth_new(&auth, missing, &n, why, sizeof why), -ENOENT);
    cr_assert_eq(sp_curve_auth_new(&auth, k.clients, &n, why, sizeof why), 0, "%s", why);
    cr_expect_eq(n, 1, "alice's certificate is counted");
    sp_curve_auth_destroy(&auth);
    cr_expect_null(auth);
    sp_curve_auth_destroy(&auth); /* NULL-safe */
}

/* --- CURVE in one process ------------------------------------------------------ */

/* A ROUTER on an ephemeral loopback port: a CURVE server with `keys` unless
 * NULL, accepting frames of up to `largest` bytes. */
static zsock_t *s_server(const sp_curve_keys_t *keys, size_t largest, int *port)
{
    sp_zmq_setup();
    zsock_t *s = zsock_new(ZMQ_ROUTER);
    cr_assert_not_null(s);
    sp_zmq_set_max_frame(s, largest);
    if (keys != NULL) {
        sp_curve_set_server(s, keys);
    }
    zsock_set_linger(s, 0);
    *port = zsock_bind(s, "tcp://127.0.0.1:*");
    cr_assert(*port > 0, "bind: %s", zmq_strerror(errno));
    return s;
}

/* Sends one `len`-byte message from a fresh DEALER (a CURVE client when
 * `client` is given) and reports whether the server got it in wait_ms. */
static bool s_delivered(zsock_t *srv, int port, const sp_curve_keys_t *client,
                        const char *server_key, size_t len, int wait_ms)
{
    zsock_t *c = zsock_new(ZMQ_DEALER);
    cr_assert_not_null(c);
    zsock_set_linger(c, 0);
    if (client != NULL) {
        sp_curve_set_client(c, client, server_key);
    }
    cr_assert_eq(zsock_connect(c, "tcp://127.0.0.1:%d", port), 0);
    uint8_t *buf = calloc(1, len);
    cr_assert_eq(zmq_send(zsock_resolve(c), buf, len, ZMQ_DONTWAIT), (int)len);
    free(buf);
    zmq_pollitem_t item = {.socket = zsock_resolve(srv), .events = ZMQ_POLLIN};
    bool got = zmq_poll(&item, 1, wait_ms) == 1;
    while (zmq_poll(&item, 1, 0) == 1) {
        zmsg_t *m = zmsg_recv(srv);
        zmsg_destroy(&m);
    }
    zsock_destroy(&c);
    return got;
}

Test(curve, only_listed_clients_get_through, .timeout = 30, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curvelisted");
    sp_curve_auth_t *auth = NULL;
    char why[512] = "";
    cr_assert_eq(sp_curve_auth_new(&auth, k.clients, NULL, why, sizeof why), 0, "%s", why);
    int port;
    zsock_t *srv = s_server(&k.server_keys, SP_WIRE_HDR_SIZE, &port);
    const char *key = k.server_keys.public_txt;

    cr_expect_not(s_delivered(srv, port, NULL, NULL, SP_WIRE_HDR_SIZE, T_REFUSED_MS),
                  "a client without CURVE got through");
    cr_expect_not(s_delivered(srv, port, &k.alice_keys, k.mallory_keys.public_txt, SP_WIRE_HDR_SIZE,
                              T_REFUSED_MS),
                  "a client expecting another server key got through");
    cr_expect_not(s_delivered(srv, port, &k.mallory_keys, key, SP_WIRE_HDR_SIZE, T_REFUSED_MS),
                  "an unlisted client got through");
    cr_expect(s_delivered(srv, port, &k.alice_keys, key, SP_WIRE_HDR_SIZE, T_DELIVER_MS),
              "the listed client did not get through");
    zsock_destroy(&srv);
    sp_curve_auth_destroy(&auth);
}

Test(curve, without_an_authenticator_nobody_gets_in, .timeout = 30, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curvenoauth");
    int port;
    zsock_t *srv = s_server(&k.server_keys, SP_WIRE_HDR_SIZE, &port);
    int enforce = 0;
    size_t sz = sizeof enforce;
    if (zmq_getsockopt(zsock_resolve(srv), 93 /* ZMQ_ZAP_ENFORCE_DOMAIN */, &enforce, &sz) != 0 ||
        !enforce) {
        zsock_destroy(&srv);
        cr_skip_test("this libzmq cannot enforce ZAP (older than 4.3)");
    }
    cr_expect_not(s_delivered(srv, port, &k.alice_keys, k.server_keys.public_txt, SP_WIRE_HDR_SIZE,
                              T_REFUSED_MS),
                  "a client got in while no authenticator answered");
    zsock_destroy(&srv);
}

Test(curve, a_largest_message_passes_with_curve_framing, .timeout = 30, .fini = s_cleanup)
{
    cr_expect_eq(sp_zmq_max_frame(SP_WIRE_HDR_SIZE), SP_ZMQ_MSG_FLOOR,
                 "no limit below the handshake's commands");
    cr_expect_eq(sp_zmq_max_frame(100000), 100000 + SP_ZMQ_FRAME_SLACK);
    s_keys_t k;
    s_keys(&k, "curvesize");
    sp_curve_auth_t *auth = NULL;
    char why[512] = "";
    cr_assert_eq(sp_curve_auth_new(&auth, k.clients, NULL, why, sizeof why), 0, "%s", why);
    int port;
    zsock_t *srv = s_server(&k.server_keys, T_LARGEST, &port);
    const char *key = k.server_keys.public_txt;
    cr_expect(s_delivered(srv, port, &k.alice_keys, key, T_LARGEST, T_DELIVER_MS),
              "a %d-byte message did not pass a %d-byte limit with CURVE", T_LARGEST,
              sp_zmq_max_frame(T_LARGEST));
    cr_expect_not(s_delivered(srv, port, &k.alice_keys, key,
                              (size_t)sp_zmq_max_frame(T_LARGEST) + 1, T_REFUSED_MS),
                  "an oversized message passed");
    zsock_destroy(&srv);
    sp_curve_auth_destroy(&auth);
}

/* --- against a broker ------------------------------------------------------------ */

/* Starts a zmq broker on loopback TCP with CURVE (k's server certificate,
 * k's clients directory); *port gets its first port. */
static void s_broker(const char *inst, const s_keys_t *k, unsigned *port)
{
    const char *extra[] = {"--transport",
                           "zmq",
                           "--workers",
                           "1",
                           "--catalogue",
                           spt_data("products.csv"),
                           "--curve-cert",
                           k->server,
                           "--curve-clients",
                           k->clients,
                           NULL};
    s_broker_pid = spt_broker_start_tcp(inst, NULL, extra, port);
    cr_assert(s_broker_pid > 0, "broker %s did not start with CURVE", inst);
}

static void s_broker_stop(const char *inst)
{
    pid_t pid = s_broker_pid;
    s_broker_pid = 0;
    int status = spt_stop(pid);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "broker did not stop cleanly (0x%x)", (unsigned)status);
    cr_expect_not(spt_leftovers(inst), "instance %s left IPC objects behind", inst);
}

static sp_table_t *s_table(const char *inst)
{
    sp_names_t names;
    sp_names_init(&names, inst, NULL);
    sp_table_t *t = NULL;
    cr_assert_eq(sp_table_open(&t, names.table, false), 0);
    return t;
}

static uint32_t s_stock(sp_table_t *t, uint32_t id)
{
    sp_product_t p;
    cr_assert_eq(sp_table_read(t, id, &p, NULL), 0);
    return p.stock;
}

static uint64_t s_answered(sp_table_t *t, int status)
{
    uint64_t n = 0;
    for (int w = 0; w < SP_WORKERS_MAX; w++) {
        n += atomic_load(&sp_table_hdr(t)->worker[w].orders[status]);
    }
    return n;
}

Test(curve, a_listed_local_producer_gets_its_orders_applied, .timeout = 90, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curveprod");
    char inst[64];
    spt_instance(inst, sizeof inst, "curveprod");
    unsigned port;
    s_broker(inst, &k, &port);
    sp_table_t *t = s_table(inst);
    cr_expect_str_eq(sp_table_hdr(t)->curve_server_key, k.server_keys.public_txt,
                     "the broker's key is in the table header");
    uint32_t before = s_stock(t, T_PRODUCT);

    char *out = NULL;
    const char *listed[] = {
        spt_bin("producer"), "--instance", inst, "--cert", k.alice, "buy", "3", "2", NULL};
    cr_expect_eq(spt_run(listed, RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "accepted") != NULL, "%s", out);
    free(out);
    cr_expect_eq(s_stock(t, T_PRODUCT), before - 2);

    /* no key: told what to add, nothing sent */
    const char *none[] = {spt_bin("producer"), "--instance", inst, "buy", "3", "1", NULL};
    cr_expect_eq(spt_run(none, RUN_MS, &out), T_EXIT_REFUSED, "%s", out);
    cr_expect(strstr(out, "--cert FILE") != NULL && strstr(out, "CURVE") != NULL, "%s", out);
    free(out);

    /* an unlisted key: its HELLO is never answered, so no order is sent,
     * and the producer says which key to list */
    const char *unlisted[] = {
        spt_bin("producer"), "--instance", inst,      "--cert", k.mallory, "--count", "1",
        "--timeout",         "1s",         "--retry", "0",      "--json",  NULL};
    cr_expect_eq(spt_run(unlisted, RUN_MS, &out), 1, "%s", out);
    cr_expect(strstr(out, "no WELCOME") != NULL && strstr(out, "--curve-clients") != NULL, "%s",
              out);
    free(out);

    /* a listed key in a file others may read is refused before anything is sent */
    char secret[T_PATH + 16];
    snprintf(secret, sizeof secret, "%s%s", k.alice, SP_CURVE_SECRET_SUFFIX);
    cr_assert_eq(chmod(secret, 0644), 0);
    cr_expect_eq(spt_run(listed, RUN_MS, &out), T_EXIT_REFUSED, "%s", out);
    cr_expect(strstr(out, "chmod 600") != NULL, "%s", out);
    free(out);

    cr_expect_eq(s_stock(t, T_PRODUCT), before - 2, "only the listed producer's order applied");
    cr_expect_eq(s_answered(t, SP_STATUS_ACCEPTED), 1);
    sp_table_close(&t);
    s_broker_stop(inst);
}

Test(curve, clients_without_a_listed_key_get_nothing_applied, .timeout = 90, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curvepy");
    char inst[64];
    spt_instance(inst, sizeof inst, "curvepy");
    unsigned port;
    s_broker(inst, &k, &port);
    sp_table_t *t = s_table(inst);
    sp_table_hdr_t *h = sp_table_hdr(t);
    uint32_t cap = sp_table_capacity(t);
    uint64_t *sv = calloc(cap + 1, sizeof *sv);
    cr_assert_not_null(sv);
    for (uint32_t id = 1; id <= cap; id++) {
        const sp_row_t *r = sp_table_row(t, id);
        sv[id] = r != NULL ? atomic_load(&r->sv) : 0;
    }
    uint64_t invalid_before = atomic_load(&h->invalid_msgs);

    char script[T_PATH], product[16], secret_alice[T_PATH + 16], secret_mallory[T_PATH + 16];
    spt_source(script, sizeof script, "tests/curve_probe.py");
    snprintf(product, sizeof product, "%u", T_PRODUCT);
    snprintf(secret_alice, sizeof secret_alice, "%s%s", k.alice, SP_CURVE_SECRET_SUFFIX);
    snprintf(secret_mallory, sizeof secret_mallory, "%s%s", k.mallory, SP_CURVE_SECRET_SUFFIX);
    const char *argv[] = {spt_python(), script,       "--orders",   h->ep_orders,    "--events",
                          h->ep_events, "--product",  product,      "--server-cert", k.server,
                          "--listed",   secret_alice, "--unlisted", secret_mallory,  NULL};
    char *out = NULL;
    cr_assert_eq(spt_run(argv, RUN_MS, &out), 0, "%s (python3-zmq installed? SP_PYTHON=%s):\n%s",
                 script, spt_python(), out);

    const char *modes[T_PROBE_LINES] = {"none", "wrong-server", "unlisted", "listed"};
    for (int i = 0; i < T_PROBE_LINES; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "curve-probe: %s replies", modes[i]);
        const char *line = strstr(out, pat);
        cr_assert_not_null(line, "no line for %s in:\n%s", modes[i], out);
        unsigned replies, accepted, events;
        char fmt[96];
        snprintf(fmt, sizeof fmt, "curve-probe: %s replies %%u accepted %%u events %%u", modes[i]);
        cr_assert_eq(sscanf(line, fmt, &replies, &accepted, &events), 3, "%s", line);
        if (i < T_PROBE_LINES - 1) {
            cr_expect_eq(replies, 0, "%s got a reply", modes[i]);
            cr_expect_eq(events, 0, "%s got events", modes[i]);
        } else {
            cr_expect_eq(replies, 1, "the listed client got no reply:\n%s", out);
            cr_expect_eq(accepted, 1, "%s", out);
            cr_expect_gt(events, 0, "the listed client got no events (heartbeats at least)");
        }
    }
    free(out);

    /* the listed client's one purchase, and nothing else */
    for (uint32_t id = 1; id <= cap; id++) {
        const sp_row_t *r = sp_table_row(t, id);
        uint64_t now = r != NULL ? atomic_load(&r->sv) : 0;
        if (id == T_PRODUCT) {
            cr_expect_eq(SP_SV_STOCK(now), SP_SV_STOCK(sv[id]) - 1, "stock of product %u", id);
            cr_expect_eq(SP_SV_VERSION(now), SP_SV_VERSION(sv[id]) + 1, "version of %u", id);
        } else {
            cr_expect_eq(now, sv[id], "product %u changed", id);
        }
    }
    cr_expect_eq(s_answered(t, SP_STATUS_ACCEPTED), 1);
    for (int s = 1; s < SP_STATUS_COUNT; s++) {
        cr_expect_eq(s_answered(t, s), 0, "%s answers", sp_wire_status_name((unsigned)s));
    }
    cr_expect_eq(atomic_load(&h->invalid_msgs), invalid_before, "nothing even reached the router");
    free(sv);
    sp_table_close(&t);
    s_broker_stop(inst);
}

Test(curve, an_unlisted_monitor_receives_nothing, .timeout = 90, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curvemon");
    char inst[64], connect[32];
    spt_instance(inst, sizeof inst, "curvemon");
    unsigned port;
    s_broker(inst, &k, &port);
    snprintf(connect, sizeof connect, "%u", port);
    char *out = NULL;

    /* the control: a listed remote monitor gets the feed and a snapshot */
    const char *listed[] = {spt_bin("monitor"), "--connect", connect,  "--server-cert", k.server,
                            "--cert",           k.alice,     "--once", "--json",        NULL};
    cr_expect_eq(spt_run(listed, RUN_MS, &out), 0, "%s", out);
    cr_expect(strstr(out, "\"name\":\"Nuggets de pollo\"") != NULL, "%s", out);
    free(out);

    const char *unlisted[] = {spt_bin("monitor"), "--connect",    connect,   "--server-cert",
                              k.server,           "--cert",       k.mallory, "--plain",
                              "--wait",           T_MONITOR_WAIT, NULL};
    cr_expect_eq(spt_run(unlisted, RUN_MS, &out), T_EXIT_REFUSED, "%s", out);
    cr_expect(strstr(out, "nothing arrived") != NULL, "%s", out);
    cr_expect(strstr(out, "--curve-clients") != NULL, "the hint names the directory: %s", out);
    cr_expect(strstr(out, "stock") == NULL && strstr(out, "summary") == NULL, "%s", out);
    free(out);

    const char *keyless[] = {spt_bin("monitor"), "--connect",    connect, "--plain",
                             "--wait",           T_MONITOR_WAIT, NULL};
    cr_expect_eq(spt_run(keyless, RUN_MS, &out), T_EXIT_REFUSED, "%s", out);
    cr_expect(strstr(out, "--server-cert") != NULL, "%s", out);
    free(out);

    /* a local monitor reads the key from the table, but needs its own */
    const char *local[] = {spt_bin("monitor"), "--instance",   inst, "--plain",
                           "--wait",           T_MONITOR_WAIT, NULL};
    cr_expect_eq(spt_run(local, RUN_MS, &out), T_EXIT_REFUSED, "%s", out);
    cr_expect(strstr(out, "--cert FILE") != NULL, "%s", out);
    free(out);
    const char *local_listed[] = {spt_bin("monitor"), "--instance", inst,     "--cert", k.alice,
                                  "--from-broker",    "--once",     "--json", NULL};
    cr_expect_eq(spt_run(local_listed, RUN_MS, &out), 0, "%s", out);
    free(out);
    s_broker_stop(inst);
}

Test(curve, a_broker_refuses_a_secret_key_file_open_to_others, .timeout = 60, .fini = s_cleanup)
{
    s_keys_t k;
    s_keys(&k, "curve0644");
    char secret[T_PATH + 16], state[T_PATH + 16], inst[64];
    snprintf(secret, sizeof secret, "%s%s", k.server, SP_CURVE_SECRET_SUFFIX);
    snprintf(state, sizeof state, "%s/state", s_tmp);
    cr_assert_eq(chmod(secret, 0644), 0);
    spt_instance(inst, sizeof inst, "curve0644");
    char port[16];
    snprintf(port, sizeof port, "%u", SPT_TCP_PORT_BASE + (unsigned)(getpid() % 1000) * 5);
    const char *argv[] = {spt_bin("broker"),
                          "--instance",
                          inst,
                          "--state-dir",
                          state,
                          "--transport",
                          "zmq",
                          "--tcp",
                          port,
                          "--curve-cert",
                          k.server,
                          "--curve-clients",
                          k.clients,
                          NULL};
    char *out = NULL;
    cr_expect_eq(spt_run(argv, RUN_MS, &out), T_EXIT_REFUSED, "%s", out);
    char fix[T_PATH + 32];
    snprintf(fix, sizeof fix, "chmod 600 %s", secret);
    cr_expect(strstr(out, fix) != NULL, "%s", out);
    cr_expect(strstr(out, "mode 0644") != NULL, "%s", out);
    free(out);
    cr_expect_not(spt_leftovers(inst));
    cr_expect_neq(access(state, F_OK), 0, "the state directory was created");
}

Test(curve, the_keygen_command_writes_a_0600_secret, .timeout = 30, .fini = s_cleanup)
{
    cr_assert(spt_tmpdir(s_tmp, sizeof s_tmp, "curvecmd"));
    char path[T_PATH + 16], secret[T_PATH + 32];
    snprintf(path, sizeof path, "%s/key", s_tmp);
    snprintf(secret, sizeof secret, "%s%s", path, SP_CURVE_SECRET_SUFFIX);
    const char *argv[] = {spt_bin("broker"), "--keygen", path, NULL};
    char *out = NULL;
    cr_assert_eq(spt_run(argv, RUN_MS, &out), 0, "%s", out);
    cr_expect_eq(s_mode(secret), 0600);
    char key[SP_CURVE_KEY_TXT], why[512] = "";
    cr_assert_eq(sp_curve_load_public(path, key, why, sizeof why), 0, "%s", why);
    char line[64];
    snprintf(line, sizeof line, "public key %s\n", key);
    cr_expect(strncmp(out, line, strlen(line)) == 0, "prints the public key: %s", out);
    free(out);
    cr_expect_eq(spt_run(argv, RUN_MS, &out), T_EXIT_REFUSED, "%s", out);
    cr_expect(strstr(out, "exists") != NULL, "%s", out);
    free(out);
    const char *help[] = {spt_bin("broker"), "--help", NULL};
    cr_assert_eq(spt_run(help, RUN_MS, &out), 0);
    cr_expect(strstr(out, "--keygen PATH") != NULL && strstr(out, "--curve-cert") != NULL, "%s",
              out);
    free(out);
}
