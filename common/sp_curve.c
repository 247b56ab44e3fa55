/*
 * sp_curve — zcert files checked before use, keygen, the zauth actor, and
 * CURVE options on sockets.
 */
#include "sp_curve.h"
#include "sp_zmq.h"

#include "sp_error.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_KEY_LEN        (SP_CURVE_KEY_TXT - 1)
#define S_KEY_BYTES      32
#define S_PATH_MAX       PATH_MAX
#define S_PUBLIC_PATH    "/curve/public-key"
#define S_SECRET_PATH    "/curve/secret-key"
#define S_FILE_OPEN_FLAG (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* ZMQ_ZAP_ENFORCE_DOMAIN (libzmq >= 4.3) is still in the draft part of
 * zmq.h; libzmq answers EINVAL where it does not know it. */
#ifdef ZMQ_ZAP_ENFORCE_DOMAIN
#define S_ZAP_ENFORCE_DOMAIN ZMQ_ZAP_ENFORCE_DOMAIN
#else
#define S_ZAP_ENFORCE_DOMAIN 93
#endif

struct sp_curve_auth {
    zactor_t *actor;
};

void sp_curve_wipe(sp_curve_keys_t *keys)
{
    if (keys != NULL) {
        explicit_bzero(keys, sizeof *keys);
    }
}

int sp_curve_key_valid(const char *key)
{
    uint8_t bin[S_KEY_BYTES];
    return key != NULL && strlen(key) == S_KEY_LEN && zmq_z85_decode(bin, key) != NULL;
}

/* Opens `path` for reading and checks it is a regular file (a FIFO or a
 * device would hang or feed us anything).  Returns the fd or -errno. */
static int s_open_regular(const char *path, struct stat *st, char *why, size_t cap)
{
    int fd = open(path, S_FILE_OPEN_FLAG);
    if (fd < 0) {
        int rc = -errno;
        sp_why(why, cap, "cannot open the certificate %s: %s", path, strerror(errno));
        return rc;
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        sp_why(why, cap, "%s is not a regular file, so not a certificate", path);
        return -EINVAL;
    }
    return fd;
}

/* Reads the whole (small) file into buf, NUL-terminated.  Returns 0 or
 * -EFBIG / -errno. */
static int s_read_all(int fd, const char *path, char *buf, size_t cap, char *why, size_t wcap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int rc = -errno;
            sp_why(why, wcap, "cannot read %s: %s", path, strerror(errno));
            return rc;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len == cap - 1) {
            sp_why(why, wcap, "%s is larger than %d bytes: not a certificate", path,
                   SP_CURVE_FILE_MAX);
            return -EFBIG;
        }
    }
    buf[len] = '\0';
    return 0;
}

/* Copies the keys out of a zcert text (either may be NULL).  Returns 0 or
 * -EINVAL when there is no valid public key, or a secret key is wanted
 * and there is no valid one (*secret_missing says which). */
static int s_parse(const char *text, char *public_txt, char *secret_txt, int *secret_missing)
{
    zconfig_t *root = zconfig_str_load(text);
    if (root == NULL) {
        return -EINVAL;
    }
    int rc = 0;
    const char *pub = zconfig_get(root, S_PUBLIC_PATH, NULL);
    const char *sec = zconfig_get(root, S_SECRET_PATH, NULL);
    if (!sp_curve_key_valid(pub)) {
        rc = -EINVAL;
    } else {
        memcpy(public_txt, pub, SP_CURVE_KEY_TXT);
    }
    if (rc == 0 && secret_txt != NULL) {
        if (!sp_curve_key_valid(sec)) {
            *secret_missing = 1;
            rc = -EINVAL;
        } else {
            memcpy(secret_txt, sec, SP_CURVE_KEY_TXT);
        }
    }
    zconfig_destroy(&root);
    return rc;
}

int sp_curve_load_public(const char *path, char key[SP_CURVE_KEY_TXT], char *why, size_t cap)
{
    struct stat st;
    int fd = s_open_regular(path, &st, why, cap);
    if (fd < 0) {
        return fd;
    }
    char buf[SP_CURVE_FILE_MAX];
    int rc = s_read_all(fd, path, buf, sizeof buf, why, cap);
    close(fd);
    if (rc == 0 && s_parse(buf, key, NULL, NULL) < 0) {
        sp_why(why, cap, "%s is not a CURVE certificate (no valid %s)", path, S_PUBLIC_PATH);
        rc = -EINVAL;
    }
    explicit_bzero(buf, sizeof buf); /* it may have been a secret file */
    return rc;
}

int sp_curve_load_secret(const char *path, sp_curve_keys_t *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!zsys_has_curve()) {
        sp_why(why, cap, "this libzmq was built without CURVE support");
        return -ENOTSUP;
    }
    char secret[S_PATH_MAX];
    int n = snprintf(secret, sizeof secret, "%s%s", path, SP_CURVE_SECRET_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof secret) {
        sp_why(why, cap, "certificate path %s is too long", path);
        return -ENAMETOOLONG;
    }
    const char *file = access(secret, F_OK) == 0 ? secret : path;
    struct stat st;
    int fd = s_open_regular(file, &st, why, cap);
    if (fd < 0) {
        if (fd == -ENOENT) {
            sp_why(why, cap,
                   "no secret certificate %s or %s (create a key pair with `broker --keygen %s`)",
                   secret, path, path);
        }
        return fd;
    }
    char buf[SP_CURVE_FILE_MAX];
    int rc = s_read_all(fd, file, buf, sizeof buf, why, cap);
    close(fd);
    int secret_missing = 0;
    if (rc == 0 && s_parse(buf, out->public_txt, out->secret_txt, &secret_missing) < 0) {
        if (secret_missing) {
            sp_why(why, cap,
                   "%s holds no secret key: it is a public certificate; give the path "
                   "`broker --keygen` was given (its secret half is PATH%s)",
                   file, SP_CURVE_SECRET_SUFFIX);
        } else {
            sp_why(why, cap, "%s is not a CURVE certificate (no valid %s)", file, S_PUBLIC_PATH);
        }
        rc = -EINVAL;
    }
    explicit_bzero(buf, sizeof buf);
    /* checked on the file we read (fstat of the same fd), not on a name that
     * may have changed since */
    if (rc == 0 && st.st_uid != geteuid()) {
        sp_why(why, cap,
               "secret key file %s belongs to uid %u, not to us (uid %u): refusing to use it", file,
               (unsigned)st.st_uid, (unsigned)geteuid());
        rc = -EPERM;
    } else if (rc == 0 && (st.st_mode & 077) != 0) {
        sp_why(why, cap,
               "secret key file %s has mode %04o: group or others may use it; refusing it (fix "
               "with `chmod 600 %s`, and make a new key pair if others may have read it)",
               file, (unsigned)(st.st_mode & 07777), file);
        rc = -EPERM;
    }
    if (rc == 0) {
        char derived[SP_CURVE_KEY_TXT];
        if (zmq_curve_public(derived, out->secret_txt) != 0 ||
            strcmp(derived, out->public_txt) != 0) {
            sp_why(why, cap, "%s: its public key is not the one its secret key makes", file);
            rc = -EINVAL;
        }
    }
    if (rc < 0) {
        sp_curve_wipe(out);
    }
    return rc;
}

/* Creates `path` exclusively with `mode` (less the umask, unless `exact`)
 * and closes it; 0 or -errno. */
static int s_create(const char *path, mode_t mode, bool exact, char *why, size_t cap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        int rc = -errno;
        if (errno == EEXIST) {
            sp_why(why, cap,
                   "%s exists: refusing to overwrite a key (remove it first, or choose another "
                   "PATH)",
                   path);
        } else {
            sp_why(why, cap, "cannot create %s: %s", path, strerror(errno));
        }
        return rc;
    }
    /* the umask may have taken bits away; a secret file gets exactly its mode */
    int rc = exact && fchmod(fd, mode) < 0 ? -errno : 0;
    close(fd);
    if (rc < 0) {
        sp_why(why, cap, "cannot set the mode of %s: %s", path, sp_strerror(rc));
        unlink(path);
    }
    return rc;
}

int sp_curve_keygen(const char *path, sp_curve_keys_t *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!zsys_has_curve()) {
        sp_why(why, cap, "this libzmq was built without CURVE support");
        return -ENOTSUP;
    }
    char secret[S_PATH_MAX];
    int n = snprintf(secret, sizeof secret, "%s%s", path, SP_CURVE_SECRET_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof secret || path[0] == '\0') {
        sp_why(why, cap, "--keygen: bad path '%s'", path);
        return -ENAMETOOLONG;
    }
    int rc = s_create(path, SP_CURVE_PUBLIC_MODE, false, why, cap);
    if (rc < 0) {
        return rc;
    }
    rc = s_create(secret, SP_CURVE_SECRET_MODE, true, why, cap);
    if (rc < 0) {
        unlink(path);
        return rc;
    }
    zcert_t *cert = zcert_new();
    if (cert == NULL) {
        rc = -ENOMEM;
        sp_why(why, cap, "cannot make a key pair");
        goto fail;
    }
    /* zcert writes into the files we created, keeping their modes */
    if (zcert_save_public(cert, path) != 0 || zcert_save_secret(cert, secret) != 0) {
        rc = -EIO;
        sp_why(why, cap, "cannot write %s and %s", path, secret);
        goto fail;
    }
    struct stat st;
    if (stat(secret, &st) < 0 || (st.st_mode & 0777) != SP_CURVE_SECRET_MODE) {
        rc = -EPERM;
        sp_why(why, cap, "%s did not end up with mode %04o", secret, SP_CURVE_SECRET_MODE);
        goto fail;
    }
    rc = sp_curve_load_secret(path, out, why, cap);
    if (rc == 0 && strcmp(out->public_txt, zcert_public_txt(cert)) != 0) {
        rc = -EIO;
        sp_why(why, cap, "%s does not read back as the key pair written", secret);
    }
    if (rc < 0) {
        goto fail;
    }
    zcert_destroy(&cert);
    return 0;
fail:
    zcert_destroy(&cert);
    sp_curve_wipe(out);
    unlink(secret);
    unlink(path);
    return rc;
}

/* Counts the certificates zauth will find in `dir` (it skips hidden files
 * and loads every other regular file it can). */
static unsigned s_count_certs(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[S_PATH_MAX];
        char key[SP_CURVE_KEY_TXT];
        char ignored[256];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path &&
            sp_curve_load_public(path, key, ignored, sizeof ignored) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

int sp_curve_auth_new(sp_curve_auth_t **out, const char *clients_dir, unsigned *nkeys, char *why,
                      size_t cap)
{
    *out = NULL;
    if (!zsys_has_curve()) {
        sp_why(why, cap, "this libzmq was built without CURVE support");
        return -ENOTSUP;
    }
    struct stat st;
    if (stat(clients_dir, &st) < 0) {
        int rc = -errno;
        sp_why(why, cap, "--curve-clients %s: %s", clients_dir, strerror(errno));
        return rc;
    }
    if (!S_ISDIR(st.st_mode)) {
        sp_why(why, cap, "--curve-clients %s is not a directory", clients_dir);
        return -ENOTDIR;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        sp_why(why, cap,
               "--curve-clients %s belongs to uid %u: whoever owns it decides who gets in; use a "
               "directory of your own",
               clients_dir, (unsigned)st.st_uid);
        return -EPERM;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        sp_why(why, cap,
               "--curve-clients %s has mode %04o: group or others could add their own key and "
               "let themselves in (fix with `chmod go-w %s`)",
               clients_dir, (unsigned)(st.st_mode & 07777), clients_dir);
        return -EPERM;
    }
    if (nkeys != NULL) {
        *nkeys = s_count_certs(clients_dir);
    }
    sp_curve_auth_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        return -ENOMEM;
    }
    sp_zmq_setup();
    a->actor = zactor_new(zauth, NULL);
    if (a->actor == NULL) {
        free(a);
        sp_why(why, cap, "cannot start the authenticator (zauth)");
        return -ENOMEM;
    }
    /* every zauth command is answered with a signal once it is in force */
    zstr_sendx(a->actor, "CURVE", clients_dir, NULL);
    zsock_wait(a->actor);
    *out = a;
    return 0;
}

void sp_curve_auth_destroy(sp_curve_auth_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    zactor_destroy(&(*self_p)->actor);
    free(*self_p);
    *self_p = NULL;
}

void sp_curve_set_server(void *sock, const sp_curve_keys_t *server)
{
    zsock_set_zap_domain(sock, SP_CURVE_ZAP_DOMAIN);
    int on = 1;
    /* refuse clients while no authenticator answers (older libzmq admit
     * them); failure means an older libzmq, and zauth runs first anyway */
    (void)zmq_setsockopt(zsock_resolve(sock), S_ZAP_ENFORCE_DOMAIN, &on, sizeof on);
    zsock_set_curve_server(sock, 1);
    zsock_set_curve_publickey(sock, server->public_txt);
    zsock_set_curve_secretkey(sock, server->secret_txt);
}

void sp_curve_set_client(void *sock, const sp_curve_keys_t *client, const char *server_key)
{
    zsock_set_curve_serverkey(sock, server_key);
    zsock_set_curve_publickey(sock, client->public_txt);
    zsock_set_curve_secretkey(sock, client->secret_txt);
}
