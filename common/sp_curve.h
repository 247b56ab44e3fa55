/*
 * sp_curve — CURVE security for the broker's tcp:// endpoints, with czmq's
 * certificates (zcert) and authenticator (zauth).
 *
 * Keys live in zcert files: `broker --keygen PATH` writes PATH (the public
 * certificate, to hand out) and PATH_secret (both keys, mode 0600, never to
 * leave its owner).  A secret certificate is used only when it is a regular
 * file owned by us that nobody else may read or write (no group or other
 * bits): a key others can read is a key others have.  The check and the
 * read go through one open file, so the file checked is the file used.
 *
 * The broker (`--curve-cert FILE --curve-clients DIR`) makes every tcp://
 * socket a CURVE server with its secret certificate and runs a zauth actor
 * that admits a client only when its public key is in one of the public
 * certificates in DIR (zauth re-reads DIR when it changes, so adding or
 * removing a file there admits or shuts out a key for new connections).  The
 * actor answers ZAP requests for every socket of the process's czmq
 * context, so it must be started before the first CURVE socket binds and
 * destroyed after the last one is closed; where libzmq supports
 * ZMQ_ZAP_ENFORCE_DOMAIN the server sockets also refuse every client while
 * no authenticator answers, instead of admitting them.
 *
 * A client (producer, monitor) sets its own keys and the broker's public key
 * on its socket: a local producer reads that key from RUN_DIR/contact
 * (sp_contact.h), a local monitor from the shared table header, a remote
 * client from the broker's public certificate (--server-cert).
 *
 * The socket helpers take `void *sock`: a zsock_t or a libzmq socket, as
 * czmq's own option setters do; nothing here is needed to include czmq.
 *
 * Ownership: keys live in the caller's sp_curve_keys_t (wipe it when done);
 * sp_curve_auth_new allocates the authenticator, sp_curve_auth_destroy
 * stops and frees it.  Errors: 0 or a negative errno with *why naming the
 * file or directory and the fix.  Blocking: file reads and writes;
 * sp_curve_auth_new waits for the zauth actor to confirm its configuration.
 * Threads: the file functions are safe from any thread; one authenticator
 * per process (it answers for the process's whole czmq context), made and
 * destroyed by one thread; a socket is set up by the thread that owns it.
 */
#ifndef SP_CURVE_H
#define SP_CURVE_H

#include <stddef.h>

#define SP_CURVE_KEY_TXT       41 /* a Z85 key (40 characters) and its NUL */
#define SP_CURVE_SECRET_SUFFIX "_secret"
#define SP_CURVE_FILE_MAX      8192 /* larger files are not certificates */
#define SP_CURVE_ZAP_DOMAIN    "stockpipe"
#define SP_CURVE_SECRET_MODE   0600
#define SP_CURVE_PUBLIC_MODE   0644

/* A key pair as Z85 text.  Wipe it (sp_curve_wipe) when done. */
typedef struct {
    char public_txt[SP_CURVE_KEY_TXT];
    char secret_txt[SP_CURVE_KEY_TXT];
} sp_curve_keys_t;

/* Creates a new key pair and writes it with zcert: PATH (public certificate,
 * mode 0644 less the umask) and PATH_secret (mode 0600), both created
 * exclusively; then reads PATH_secret back through sp_curve_load_secret to
 * verify its mode and keys.  *out gets the keys.  Returns 0, -EEXIST (PATH or
 * PATH_secret exists: never overwritten), -ENOTSUP (libzmq without CURVE) or
 * -errno; *why says what.  Nothing is left behind on failure. */
int sp_curve_keygen(const char *path, sp_curve_keys_t *out, char *why, size_t cap);

/* Loads a secret certificate: PATH_secret when it exists, else PATH itself.
 * The file must be a regular file owned by us with no group or other
 * permission bits (*why then names the file and the `chmod 600` fix), and
 * hold a public and a secret key that belong together.  Returns 0, -EPERM
 * (owner or mode), -EINVAL (not a regular file, not a certificate, no secret
 * key, keys that do not match), -EFBIG, -ENOENT, -ENOTSUP or -errno. */
int sp_curve_load_secret(const char *path, sp_curve_keys_t *out, char *why, size_t cap);

/* Loads the public key of a certificate file (public or secret; the mode
 * does not matter for a public key).  Returns 0, -EINVAL, -EFBIG, -ENOENT or
 * -errno. */
int sp_curve_load_public(const char *path, char key[SP_CURVE_KEY_TXT], char *why, size_t cap);

/* True when `key` is 40 characters of valid Z85. */
int sp_curve_key_valid(const char *key);

/* Overwrites the keys with zeros (the compiler may not drop it). */
void sp_curve_wipe(sp_curve_keys_t *keys);

/* The broker's authenticator: a zauth actor admitting the CURVE clients whose
 * public certificates are in `clients_dir`.  The directory must be ours and
 * not writable by group or others (whoever can write there can let anyone
 * in).  *nkeys (may be NULL) gets the number of certificates found in it now.
 * Returns 0, -EPERM, -ENOTDIR, -ENOENT, -ENOTSUP, -ENOMEM; *why says what. */
typedef struct sp_curve_auth sp_curve_auth_t;
int sp_curve_auth_new(sp_curve_auth_t **out, const char *clients_dir, unsigned *nkeys, char *why,
                      size_t cap);

/* Stops the authenticator.  NULL-safe, nulls the pointer. */
void sp_curve_auth_destroy(sp_curve_auth_t **self_p);

/* Makes `sock` a CURVE server with `server`'s keys, in the ZAP domain
 * SP_CURVE_ZAP_DOMAIN.  Call before the bind. */
void sp_curve_set_server(void *sock, const sp_curve_keys_t *server);

/* Makes `sock` a CURVE client with its own keys, expecting the server whose
 * public key is `server_key`.  Call before the connect. */
void sp_curve_set_client(void *sock, const sp_curve_keys_t *client, const char *server_key);

#endif
