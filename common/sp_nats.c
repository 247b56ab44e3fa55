/*
 * sp_nats — orders through a JetStream work-queue stream, results on the
 * producers' own subjects (sp_nats.h says what each end does).
 */
#include "sp_nats.h"

#include "sp_again.h"
#include "sp_error.h"
#include "sp_file.h"
#include "sp_link_impl.h"
#include "sp_time.h"
#include "sp_wire.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_NAME_MAX          (SP_INSTANCE_NAME_MAX + 8) /* "SP_" and the name */
#define S_SUBJECT_MAX       (SP_INSTANCE_NAME_MAX + 40)
#define S_DURABLE           "workers"
#define S_DUP_WINDOW_S      120 /* a re-published copy within this is dropped by the stream */
#define S_SERVERS_MAX       16
#define S_AUTH_MAX          4096 /* bytes of a credentials file */
#define S_FULL_PAUSE_MS     2    /* between tries of a publish to a full stream */
#define S_HELD_MAX          (2 * SP_WIRE_MAX_RECORDS) /* fetched, not yet answered */
#define S_TRY_MS            1000 /* one try of the broker side's JetStream calls */
#define S_PUB_PENDING       256  /* a producer's publishes the stream has not answered yet */
#define S_PUB_STALL_MS      20   /* at S_PUB_PENDING, one wait of js_PublishAsync for room */
#define S_FETCH_BATCH       64   /* order messages a worker takes in one fetch at most */
#define S_ACK_MS            500  /* a worker's wait for the server to confirm its acks */
#define S_ANSWER_MS         1000 /* a wait for the server's answer to a no-wait fetch */
#define S_ELECTION_PAUSE_MS 50   /* between tries while a cluster elects its leaders */
#define S_NS_PER_MS         1000000LL

/* ---- names ------------------------------------------------------------------ */

/* The instance's name in NATS: '.' separates subject tokens and is not
 * allowed in stream names, so it is written '+' (which instance names never
 * hold). */
void sp_nats_token(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s", name);
    for (char *c = out; *c; c++) {
        if (*c == '.') {
            *c = '+';
        }
    }
}

static void s_token(const sp_names_t *n, char *out, size_t cap)
{
    sp_nats_token(n->name, out, cap);
}

static void s_stream(const sp_names_t *n, char *out, size_t cap)
{
    char tok[SP_INSTANCE_NAME_MAX + 1];
    s_token(n, tok, sizeof tok);
    snprintf(out, cap, "SP_%s", tok);
}

static void s_orders_subject(const sp_names_t *n, char *out, size_t cap)
{
    char tok[S_NAME_MAX];
    s_token(n, tok, sizeof tok);
    snprintf(out, cap, "sp.%s.orders", tok);
}

/* Where results for producer `id` go, or before its WELCOME (id 0) for the
 * link that made `tag`. */
static void s_reply_subject(const sp_names_t *n, uint32_t id, uint64_t tag, char *out, size_t cap)
{
    char tok[S_NAME_MAX];
    s_token(n, tok, sizeof tok);
    if (id != 0) {
        snprintf(out, cap, "sp.%s.r.%u", tok, id);
    } else {
        snprintf(out, cap, "sp.%s.r.h%016llx", tok, (unsigned long long)tag);
    }
}

/* ---- connections -------------------------------------------------------------- */

/* A server list for messages: the URLs without what comes before an '@'
 * (credentials never reach a log). */
static void s_safe_urls(const char *urls, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = urls;
    while (*p && o + 1 < cap) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *at = memchr(p, '@', len);
        const char *scheme = strstr(p, "://");
        if (at != NULL) {
            if (scheme != NULL && scheme < at) {
                o += (size_t)snprintf(out + o, cap - o, "%.*s", (int)(scheme + 3 - p), p);
            }
            len -= (size_t)(at + 1 - p);
            p = at + 1;
        }
        if (o < cap) {
            o += (size_t)snprintf(out + o, cap - o, "%.*s%s", (int)len, p, end ? "," : "");
        }
        p += len + (end ? 1 : 0);
    }
    if (o >= cap && cap > 0) {
        out[cap - 1] = '\0';
    }
}

/* A failure that passes: a cluster electing a leader, a stream leader
 * moving, no JetStream responder for a moment. */
static bool s_passing(natsStatus s, jsErrCode jerr)
{
    return s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT || jerr == JSClusterNotAvailErr ||
           jerr == JSClusterNotLeaderErr || jerr == JSClusterNoPeersErr;
}

/* What a failed call's status means to us, with *why. */
static int s_fail(natsStatus s, const char *doing, const char *urls, char *why, size_t cap)
{
    char safe[SP_ENDPOINT_MAX];
    s_safe_urls(urls, safe, sizeof safe);
    const char *text = nats_GetLastError(NULL);
    switch (s) {
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
        sp_why(why, cap, "%s: the NATS servers at %s refused our credentials (%s)", doing, safe,
               text != NULL ? text : natsStatus_GetText(s));
        return -EACCES;
    case NATS_NO_SERVER:
        sp_why(why, cap, "%s: no NATS server answered at %s", doing, safe);
        return -EHOSTUNREACH;
    case NATS_TIMEOUT:
        sp_why(why, cap, "%s: the NATS servers at %s did not answer in time", doing, safe);
        return SP_E_TIMEOUT;
    default:
        sp_why(why, cap, "%s at %s: %s", doing, safe,
               text != NULL && text[0] ? text : natsStatus_GetText(s));
        return -EIO;
    }
}

/* SP_NATS_AUTH: a file (mode 0600, like any secret) holding "USER
 * PASSWORD" on its first line, given to the servers. */
static int s_auth(natsOptions *opts, char *why, size_t cap)
{
    const char *path = getenv(SP_NATS_AUTH_ENV);
    if (path == NULL || path[0] == '\0') {
        return 0;
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        int err = errno;
        sp_why(why, cap, "NATS credentials %s: %s", path, strerror(err));
        return -err;
    }
    if ((st.st_mode & 0077) != 0) {
        sp_why(why, cap, "NATS credentials %s: mode %03o lets others read them (chmod 600 %s)",
               path, (unsigned)(st.st_mode & 0777), path);
        return -EACCES;
    }
    void *buf = NULL;
    size_t len = 0;
    int rc = sp_file_read(path, &buf, &len, S_AUTH_MAX, why, cap);
    if (rc < 0) {
        return rc;
    }
    char *text = buf, *save = NULL;
    char *user = strtok_r(text, " \t:\r\n", &save);
    char *pass = user != NULL ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    if (user == NULL || pass == NULL) {
        sp_why(why, cap, "NATS credentials %s: the first line is not USER PASSWORD", path);
        rc = SP_E_USAGE;
    } else if (natsOptions_SetUserInfo(opts, user, pass) != NATS_OK) {
        rc = -ENOMEM;
    }
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

/* SP_NATS_CA: TLS to the servers, trusting the certificates in that file. */
static natsStatus s_tls(natsOptions *opts)
{
    const char *ca = getenv(SP_NATS_CA_ENV);
    if (ca == NULL || ca[0] == '\0') {
        return NATS_OK;
    }
    natsStatus s = natsOptions_SetSecure(opts, true);
    return s == NATS_OK ? natsOptions_LoadCATrustedCertificates(opts, ca) : s;
}

/* Connects to the comma-separated `urls`. */
static int s_connect(natsConnection **nc, const char *urls, char *why, size_t cap);

int sp_nats_connect(natsConnection **nc, const char *urls, char *why, size_t cap)
{
    return s_connect(nc, urls, why, cap);
}

static int s_connect(natsConnection **nc, const char *urls, char *why, size_t cap)
{
    *nc = NULL;
    if (urls == NULL || urls[0] == '\0') {
        sp_why(why, cap, "the nats transport needs its servers (--nats URL[,URL...])");
        return SP_E_USAGE;
    }
    char list[SP_ENDPOINT_MAX];
    snprintf(list, sizeof list, "%s", urls);
    const char *servers[S_SERVERS_MAX];
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL && n < S_SERVERS_MAX;
         tok = strtok_r(NULL, ",", &save)) {
        servers[n++] = tok;
    }
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s != NATS_OK) {
        return -ENOMEM;
    }
    int rc = s_auth(opts, why, cap);
    if (rc < 0) {
        natsOptions_Destroy(opts);
        return rc;
    }
    s = natsOptions_SetServers(opts, servers, n);
    if (s == NATS_OK) {
        s = s_tls(opts);
    }
    if (s == NATS_OK) {
        /* no 1 ms flusher delay on every publish, fetch and ack */
        s = natsOptions_SetSendAsap(opts, true);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetTimeout(opts, SP_NATS_API_MS);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetMaxReconnect(opts, -1); /* ride out a server's restart */
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectWait(opts, 100);
    }
    if (s == NATS_OK) {
        s = natsConnection_Connect(nc, opts);
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        *nc = NULL;
        return s_fail(s, "connecting", urls, why, cap);
    }
    return 0;
}

static void s_pub_answered(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure);

/* A JetStream context for `pub` (a producer link: its publishes go out
 * asynchronously, s_pub_answered hearing each answer) or for API calls. */
static int s_jetstream(jsCtx **js, natsConnection *nc, int wait_ms, void *pub, const char *urls,
                       char *why, size_t cap)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = wait_ms;
    if (pub != NULL) {
        jo.PublishAsync.MaxPending = S_PUB_PENDING;
        jo.PublishAsync.StallWait = S_PUB_STALL_MS;
        jo.PublishAsync.AckHandler = s_pub_answered;
        jo.PublishAsync.AckHandlerClosure = pub;
    }
    natsStatus s = natsConnection_JetStream(js, nc, &jo);
    return s == NATS_OK ? 0 : s_fail(s, "opening JetStream", urls, why, cap);
}

/* The stream's largest message, or -ENOENT when there is no stream. */
static long s_stream_msgsize(jsCtx *js, const sp_names_t *names, const char *urls, char *why,
                             size_t cap)
{
    char stream[S_NAME_MAX];
    s_stream(names, stream, sizeof stream);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    uint64_t until = sp_now_ns() + (uint64_t)SP_NATS_API_MS * SP_NS_PER_MS;
    for (;;) { /* a cluster electing a leader answers so for a moment */
        jerr = 0;
        s = js_GetStreamInfo(&si, js, stream, NULL, &jerr);
        if (s == NATS_OK || !s_passing(s, jerr) || sp_now_ns() >= until) {
            break;
        }
        sp_sleep_ns(S_ELECTION_PAUSE_MS * SP_NS_PER_MS);
    }
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        char safe[SP_ENDPOINT_MAX];
        s_safe_urls(urls, safe, sizeof safe);
        sp_why(why, cap, "no instance '%s' on the NATS servers at %s (is its broker running?)",
               names->name, safe);
        return -ENOENT;
    }
    if (s != NATS_OK) {
        return s_fail(s, "asking for the order stream", urls, why, cap);
    }
    long size = si->Config->MaxMsgSize;
    jsStreamInfo_Destroy(si);
    return size;
}

/* The messages stream `stream` holds now, and (max not NULL) the most it
 * holds; -EIO when it cannot be asked (none, no leader). */
static long s_stream_count(jsCtx *js, const char *stream, long *max)
{
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, js, stream, NULL, NULL) != NATS_OK) {
        return -EIO;
    }
    long n = (long)si->State.Msgs;
    if (max != NULL) {
        *max = (long)si->Config->MaxMsgs;
    }
    jsStreamInfo_Destroy(si);
    return n;
}

/* ---- the link ends ------------------------------------------------------------ */

typedef struct {
    natsMsg *msg;
    uint64_t key;
} s_held_t;

typedef struct {
    sp_link_t base;
    sp_link_role_t role;
    const sp_names_t *names;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;       /* producer: its results; worker: the pull consumer */
    char subject[S_SUBJECT_MAX]; /* producer: the orders subject */
    uint32_t id;
    uint64_t tag;
    long max_msg; /* the stream's largest message */
    /* producer: publishes not yet answered by the stream, and room */
    uint64_t published;        /* publishes handed to nats.c */
    _Atomic uint64_t answered; /* of those, answered (stored, refused or timed out) */
    long credit;               /* publishes we may make before asking for room again */
    uint64_t next_ask_ns;      /* asking again before this: only for a send's first try */
    sp_again_t again;          /* refused or unanswered, filled by nats.c's thread */
    /* worker */
    natsMsgList fetched; /* the last fetch, handed out from `next` */
    int next;
    s_held_t held[S_HELD_MAX]; /* handed out, not yet answered */
    unsigned nheld;
    uint64_t next_key;
    unsigned unconfirmed;             /* acks sent since the server last confirmed them */
    char last_ack[S_SUBJECT_MAX * 2]; /* the last one's subject */
} s_link_t;

/* The orders message's de-duplication id, or "" when it is not a
 * well-formed orders message (those are dead-lettered, never dropped).
 * The header's batch is the producer's message counter: the same message
 * sent again after a lost acknowledgement keeps it (and is dropped by the
 * stream), while a resend of unanswered orders is a new message with a new
 * counter, which must reach a worker for the registry to answer it. */
static void s_msg_id(const void *msg, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    sp_msg_hdr_t h;
    if (sp_wire_check(msg, len, &h) < 0 || h.kind != SP_MSG_ORDERS || h.count == 0) {
        return;
    }
    sp_order_t o;
    sp_wire_get_order(sp_wire_crec(msg, SP_MSG_ORDERS, 0), &o);
    snprintf(out, cap, "%u-%u-%llu-%u", h.sender, h.batch, (unsigned long long)o.seq, h.count);
}

/* nats.c's thread: the stream's answer to one of our publishes.  Stored
 * (or dropped as a duplicate of a stored copy): nothing to do.  Refused (a
 * full stream, no leader during an election), not answered within
 * SP_NATS_API_MS, or an answer nats.c could not read (3.4.1 now and then
 * says "JSON string not properly closed" of one): a copy is kept for the
 * producer's thread to publish again, in order, before any new message;
 * the same Nats-Msg-Id makes the stream drop it if it was stored after
 * all.  Out of memory: dropped, and its orders are resent at the
 * producer's retry time like any lost message. */
static void s_pub_answered(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    s_link_t *l = closure;
    if (pa == NULL && pae != NULL && msg != NULL) {
        int len = natsMsg_GetDataLength(msg);
        (void)sp_again_push(&l->again, natsMsg_GetData(msg), len > 0 ? (size_t)len : 0);
    }
    natsMsg_Destroy(msg);
    atomic_fetch_add_explicit(&l->answered, 1, memory_order_release);
}

/* Publishes without waiting for the stream's answer (s_pub_answered gets
 * it): 0, -EIO (the connection is closed for good) or SP_E_TIMEOUT, to try
 * again: S_PUB_PENDING unanswered already (after nats.c's stall wait), or
 * the server we were connected to gone mid-send (the connection
 * reconnects by itself; a copy that did reach the stream is dropped by
 * its Nats-Msg-Id). */
static int s_pub_async(s_link_t *l, const void *msg, int len)
{
    char id[64];
    s_msg_id(msg, (size_t)len, id, sizeof id);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = SP_NATS_API_MS; /* else a lost answer keeps its place for ever */
    po.MsgId = id[0] ? id : NULL;
    natsStatus s = js_PublishAsync(l->js, l->subject, msg, len, &po);
    if (s == NATS_OK) {
        l->published++;
        return 0;
    }
    return s == NATS_CONNECTION_CLOSED ? -EIO : SP_E_TIMEOUT;
}

/* Copies `m` out to the caller. */
static int s_copy_out(natsMsg *m, void *buf, size_t cap)
{
    int n = natsMsg_GetDataLength(m);
    if ((size_t)n > cap) {
        return -EMSGSIZE;
    }
    memcpy(buf, natsMsg_GetData(m), (size_t)n);
    return n;
}

/* Waits until the stream has answered every publish (up to SP_NATS_API_MS,
 * each publish's own limit), then asks it for its room: l->credit is what
 * is free.  A stream that cannot be asked (none, no leader) has none. */
static void s_ask_room(s_link_t *l)
{
    uint64_t until = sp_now_ns() + (uint64_t)SP_NATS_API_MS * SP_NS_PER_MS;
    while (atomic_load_explicit(&l->answered, memory_order_acquire) < l->published &&
           sp_now_ns() < until) {
        jsPubOptions done;
        jsPubOptions_Init(&done);
        done.MaxWait = SP_NATS_API_MS;
        if (js_PublishAsyncComplete(l->js, &done) != NATS_OK) {
            sp_sleep_ns(S_ELECTION_PAUSE_MS * SP_NS_PER_MS);
        } else if (atomic_load_explicit(&l->answered, memory_order_acquire) < l->published) {
            sp_sleep_ns(SP_NS_PER_MS / 10); /* the last answer's callback is running */
        }
    }
    char stream[S_NAME_MAX];
    s_stream(l->names, stream, sizeof stream);
    long max = 0, used = s_stream_count(l->js, stream, &max);
    l->credit = used >= 0 && max > used ? max - used : 0;
    l->next_ask_ns = sp_now_ns() + S_FULL_PAUSE_MS * SP_NS_PER_MS;
}

/* Room for one more publish: with no credit left, asks the stream when *ask
 * (once: it is cleared) or when the last ask is S_FULL_PAUSE_MS old. */
static bool s_room(s_link_t *l, bool *ask)
{
    if (l->credit == 0 && (*ask || sp_now_ns() >= l->next_ask_ns)) {
        *ask = false;
        s_ask_room(l);
    }
    return l->credit > 0;
}

/* Publishes the refused messages again, oldest first, as far as the room
 * goes; each leaves the queue once it is on its way (nats.c's thread may
 * add more meanwhile, behind it).  0: none is left; SP_E_TIMEOUT: some
 * wait for room; -EIO. */
static int s_again_out(s_link_t *l, bool *ask)
{
    const void *data = NULL;
    size_t len = 0;
    while (sp_again_peek(&l->again, &data, &len)) {
        int rc = s_room(l, ask) ? s_pub_async(l, data, (int)len) : SP_E_TIMEOUT;
        if (rc != 0) {
            return rc;
        }
        l->credit--;
        sp_again_pop(&l->again);
    }
    return 0;
}

/* Publishes an order message without waiting for the stream's answer (a
 * round trip each would cap a producer at a few thousand messages a
 * second): a returned 0 means the message is on its way, and the link
 * sees it stored: a message the stream refuses goes out again, before any
 * new one, from this call or the producer's next receive.  So that a full
 * stream holds the sender back instead of refusing what was sent, the link
 * publishes no more than the room the stream last said it had; with none
 * left, it waits for the answers to what it sent, asks again, and keeps
 * asking up to timeout_ms (then SP_E_TIMEOUT).  Several producers may each
 * be told of the same room: the stream then refuses some of their
 * messages, and a refused one lands after those its producer sent behind
 * it (the only reordering). */
static int s_publish_order(s_link_t *l, const void *msg, size_t len, int timeout_ms)
{
    if (l->max_msg > 0 && len > (size_t)l->max_msg) {
        return -EMSGSIZE;
    }
    uint64_t deadline = sp_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * SP_NS_PER_MS;
    bool ask = true; /* the first try asks for room when there is none */
    for (;;) {
        int rc = s_again_out(l, &ask);
        if (rc == 0) {
            rc = s_room(l, &ask) ? s_pub_async(l, msg, (int)len) : SP_E_TIMEOUT;
            if (rc == 0) {
                l->credit--;
                return 0;
            }
        }
        if (rc == -EIO || sp_now_ns() >= deadline) {
            return rc;
        }
        sp_sleep_ns(S_FULL_PAUSE_MS * SP_NS_PER_MS);
    }
}

/* A producer's results, waiting up to timeout_ms; refused order messages
 * go out again meanwhile, the stream asked for room every S_FULL_PAUSE_MS
 * while some wait for it. */
static int s_recv_results(s_link_t *l, void *buf, size_t cap, int timeout_ms)
{
    uint64_t deadline = sp_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * SP_NS_PER_MS;
    for (;;) {
        bool ask = false;
        int rc = s_again_out(l, &ask);
        if (rc == -EIO) {
            return rc;
        }
        uint64_t now = sp_now_ns();
        int64_t wait = now < deadline ? (int64_t)((deadline - now) / SP_NS_PER_MS) : 0;
        if (rc != 0 && wait > S_FULL_PAUSE_MS) {
            wait = S_FULL_PAUSE_MS; /* some wait for room: look again soon */
        }
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, l->sub, wait);
        if (s == NATS_SLOW_CONSUMER) {
            /* the client library dropped results it had no room for:
             * their orders are resent at their time and answered from
             * the exactly-once record; the next call goes on */
            s = natsSubscription_NextMsg(&m, l->sub, 0);
        }
        if (s == NATS_OK) {
            int n = s_copy_out(m, buf, cap);
            natsMsg_Destroy(m);
            return n;
        }
        if (s != NATS_TIMEOUT && s != NATS_SLOW_CONSUMER) {
            return -EIO;
        }
        if (sp_now_ns() >= deadline) {
            return SP_E_TIMEOUT;
        }
    }
}

static s_held_t *s_held_find(s_link_t *l, const sp_route_t *route)
{
    if (route == NULL || route->id_len != sizeof(uint64_t)) {
        return NULL;
    }
    uint64_t key;
    memcpy(&key, route->id, sizeof key);
    for (unsigned i = 0; i < l->nheld; i++) {
        if (l->held[i].key == key) {
            return &l->held[i];
        }
    }
    return NULL;
}

/* Acknowledges a handed-out message (answered or dead-lettered) without
 * waiting for the server's confirmation (SendAsap sends it at once): an
 * acknowledgement that is lost makes the stream deliver the message again
 * after the ack wait, and the registry answers its orders with their first
 * outcomes.  The stream's depth counts it until the server has it. */
static int s_held_ack(s_link_t *l, s_held_t *h)
{
    const char *reply = natsMsg_GetReply(h->msg);
    snprintf(l->last_ack, sizeof l->last_ack, "%s", reply != NULL ? reply : "");
    l->unconfirmed++;
    natsStatus s = natsMsg_Ack(h->msg, NULL);
    natsMsg_Destroy(h->msg);
    *h = l->held[--l->nheld];
    return s == NATS_OK ? 0 : -EIO;
}

static int s_send(sp_link_t *self, const void *msg, size_t len, const sp_route_t *route,
                  int timeout_ms)
{
    s_link_t *l = (s_link_t *)self;
    if (l->role == SP_LINK_PRODUCER) {
        return s_publish_order(l, msg, len, timeout_ms);
    }
    s_held_t *h = s_held_find(l, route);
    if (h == NULL) {
        return -EINVAL;
    }
    char subject[S_SUBJECT_MAX];
    s_reply_subject(l->names, route->producer_id, route->reply_tag, subject, sizeof subject);
    /* a producer that is gone has no subscription: the result goes nowhere */
    natsStatus s = natsConnection_Publish(l->nc, subject, msg, (int)len);
    int rc = s_held_ack(l, h); /* after the result: the step, journal and answer are done */
    return s == NATS_OK ? rc : -EIO;
}

static int s_release(sp_link_t *self, const sp_route_t *route)
{
    s_link_t *l = (s_link_t *)self;
    if (l->role != SP_LINK_WORKER) {
        return 0;
    }
    s_held_t *h = s_held_find(l, route);
    return h != NULL ? s_held_ack(l, h) : -EINVAL;
}

/* What the consumer has now, up to S_FETCH_BATCH messages, without waiting
 * for more ("no wait": the server answers at once with what it has); the
 * call waits up to S_ANSWER_MS for that answer, so none is left to end a
 * later fetch early.  nats.c 3.4's fetch first takes what its subscription
 * already holds (an answer that came after an earlier fetch returned), then
 * asks for the batch less that, and when it held more than half the batch
 * it writes past its list (fixed upstream in 3.9): while anything is held,
 * this asks for one.  NATS_OK with some, NATS_TIMEOUT with none. */
static natsStatus s_fetch_ready(s_link_t *l)
{
    natsMsgList_Destroy(&l->fetched);
    l->next = 0;
    int held = 0;
    natsStatus s = natsSubscription_GetPending(l->sub, &held, NULL);
    if (s != NATS_OK) {
        return s;
    }
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    req.Batch = held > 0 ? 1 : S_FETCH_BATCH;
    req.NoWait = true;
    req.Expires = (int64_t)S_ANSWER_MS * S_NS_PER_MS;
    s = natsSubscription_FetchRequest(&l->fetched, l->sub, &req);
    if ((s == NATS_OK && l->fetched.Count == 0) || s == NATS_NOT_FOUND) {
        s = NATS_TIMEOUT;
    }
    return s;
}

/* One message, waiting up to timeout_ms for it.  One: a fetch of a larger
 * batch waits for the whole batch (nats.c).  The server's "request
 * timeout" for an earlier fetch can end this one early: it asks again for
 * what is left of the wait. */
static natsStatus s_fetch_wait(s_link_t *l, int timeout_ms)
{
    uint64_t deadline = sp_now_ns() + (uint64_t)timeout_ms * SP_NS_PER_MS;
    natsStatus s;
    do {
        natsMsgList_Destroy(&l->fetched);
        l->next = 0;
        uint64_t now = sp_now_ns();
        int64_t left = now < deadline ? (int64_t)((deadline - now) / SP_NS_PER_MS) : 0;
        jsErrCode jerr = 0;
        s = natsSubscription_Fetch(&l->fetched, l->sub, 1, left > 0 ? left : 1, &jerr);
        if (s == NATS_OK && l->fetched.Count == 0) {
            s = NATS_TIMEOUT;
        }
        if (s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND &&
            s != NATS_CONNECTION_CLOSED && s != NATS_INVALID_SUBSCRIPTION) {
            /* disconnected, or no leader for a moment: no answer will come
             * sooner, so wait a little instead of asking again at once */
            int64_t pause = left < S_ELECTION_PAUSE_MS ? left : S_ELECTION_PAUSE_MS;
            sp_sleep_ns((uint64_t)(pause > 0 ? pause : 1) * SP_NS_PER_MS);
            s = NATS_TIMEOUT;
        }
    } while ((s == NATS_TIMEOUT || s == NATS_NOT_FOUND) && sp_now_ns() + SP_NS_PER_MS < deadline);
    return s;
}

/* The next message of the consumer, waiting up to timeout_ms (0: a moment)
 * for it: from the last fetch, else from what a no-wait fetch finds, and
 * when that is nothing, from a fetch of one that waits. */
static natsStatus s_next_fetched(s_link_t *l, natsMsg **m, int timeout_ms)
{
    if (l->next >= l->fetched.Count) {
        natsStatus s = s_fetch_ready(l);
        if (s == NATS_TIMEOUT && timeout_ms > 0) {
            s = s_fetch_wait(l, timeout_ms);
        }
        if (s != NATS_OK) {
            natsMsgList_Destroy(&l->fetched);
            l->next = 0;
            return s;
        }
    }
    *m = l->fetched.Msgs[l->next];
    l->fetched.Msgs[l->next++] = NULL; /* ours now, not the list's */
    return NATS_OK;
}

static int s_recv(sp_link_t *self, void *buf, size_t cap, sp_route_t *route, int timeout_ms)
{
    s_link_t *l = (s_link_t *)self;
    natsMsg *m = NULL;
    natsStatus s;
    if (l->role == SP_LINK_PRODUCER) {
        return s_recv_results(l, buf, cap, timeout_ms);
    }
    if (l->nheld == S_HELD_MAX) {
        return -ENOBUFS; /* answer or release what you hold first */
    }
    s = s_next_fetched(l, &m, timeout_ms);
    if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) {
        return -EIO;
    }
    if (s != NATS_OK) {
        /* nothing came: empty, or a server or leader away for a moment (the
         * connection reconnects by itself) */
        return SP_E_TIMEOUT;
    }
    s_held_t *h = &l->held[l->nheld++];
    h->msg = m;
    h->key = ++l->next_key;
    memset(route, 0, sizeof *route);
    route->id_len = sizeof h->key;
    memcpy(route->id, &h->key, sizeof h->key);
    sp_msg_hdr_t hdr;
    const void *data = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    if (len >= SP_WIRE_HDR_SIZE) {
        sp_wire_get_hdr(data, &hdr);
        route->producer_id = hdr.sender;
    }
    return s_copy_out(m, buf, cap); /* too large: the caller releases it */
}

/* The server's word that it has handled the acks we sent: the last one
 * again, as a request (a message acknowledged twice is answered, and the
 * server handles a connection's acks in order).  Up to S_ACK_MS; a server
 * that does not answer in that time leaves the depth to catch up. */
static void s_acks_confirm(s_link_t *l)
{
    if (l->unconfirmed == 0 || l->last_ack[0] == '\0') {
        return;
    }
    natsMsg *r = NULL;
    if (natsConnection_RequestString(&r, l->nc, l->last_ack, "+ACK", S_ACK_MS) == NATS_OK) {
        l->unconfirmed = 0;
    }
    natsMsg_Destroy(r);
}

/* A producer: results waiting for it.  A worker: order messages in the
 * stream, which counts a message until the server has handled its
 * acknowledgement: the acks sent so far are confirmed first. */
static long s_depth(sp_link_t *self)
{
    s_link_t *l = (s_link_t *)self;
    if (l->role == SP_LINK_PRODUCER) {
        int msgs = 0, bytes = 0;
        return natsSubscription_GetPending(l->sub, &msgs, &bytes) == NATS_OK ? msgs : -EIO;
    }
    s_acks_confirm(l);
    char stream[S_NAME_MAX];
    s_stream(l->names, stream, sizeof stream);
    return s_stream_count(l->js, stream, NULL);
}

/* A worker: what its last fetch brought and it has not handed out. */
static long s_ready(sp_link_t *self)
{
    s_link_t *l = (s_link_t *)self;
    if (l->role == SP_LINK_PRODUCER) {
        return -ENOTSUP;
    }
    return l->next < l->fetched.Count ? l->fetched.Count - l->next : 0;
}

static void s_close(sp_link_t *self)
{
    s_link_t *l = (s_link_t *)self;
    /* what a worker took and did not answer goes back at once, not after
     * the ack wait */
    for (unsigned i = 0; i < l->nheld; i++) {
        natsMsg_Nak(l->held[i].msg, NULL);
        natsMsg_Destroy(l->held[i].msg);
    }
    for (int i = l->next; i < l->fetched.Count; i++) {
        if (l->fetched.Msgs[i] != NULL) {
            natsMsg_Nak(l->fetched.Msgs[i], NULL);
        }
    }
    natsMsgList_Destroy(&l->fetched);
    if (l->js != NULL && l->role == SP_LINK_PRODUCER && l->published > 0) {
        /* every answer in (bounded): nats.c's thread then has no more to
         * hand us, and what was refused is the caller's to resend */
        jsPubOptions done;
        jsPubOptions_Init(&done);
        done.MaxWait = SP_NATS_API_MS;
        js_PublishAsyncComplete(l->js, &done);
        uint64_t until = sp_now_ns() + (uint64_t)S_ANSWER_MS * SP_NS_PER_MS;
        while (atomic_load_explicit(&l->answered, memory_order_acquire) < l->published &&
               sp_now_ns() < until) {
            sp_sleep_ns(SP_NS_PER_MS / 10);
        }
    }
    if (l->nc != NULL) {
        natsConnection_FlushTimeout(l->nc, SP_NATS_API_MS);
    }
    natsSubscription_Destroy(l->sub);
    jsCtx_Destroy(l->js);
    natsConnection_Destroy(l->nc);
    if (atomic_load_explicit(&l->answered, memory_order_acquire) < l->published) {
        /* publishes the servers never answered (they were away for the
         * whole wait): nats.c may still hand us their answers, so the link
         * stays allocated (a small leak, on this path alone) */
        return;
    }
    sp_again_fini(&l->again);
    free(l);
}

static uint64_t s_reply_tag(sp_link_t *self)
{
    return ((s_link_t *)self)->tag;
}

/* Subscribes a producer to its results (id, or tag before its WELCOME),
 * and makes sure the server has the subscription before anything is sent
 * that could be answered. */
static int s_subscribe_results(s_link_t *l, const char *urls, char *why, size_t cap)
{
    char subject[S_SUBJECT_MAX];
    s_reply_subject(l->names, l->id, l->tag, subject, sizeof subject);
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_SubscribeSync(&sub, l->nc, subject);
    if (s == NATS_OK) {
        s = natsConnection_FlushTimeout(l->nc, SP_NATS_API_MS);
    }
    if (s != NATS_OK) {
        natsSubscription_Destroy(sub);
        return s_fail(s, "subscribing to our results", urls, why, cap);
    }
    natsSubscription_Destroy(l->sub);
    l->sub = sub;
    return 0;
}

static int s_adopt(sp_link_t *self, uint32_t id, char *why, size_t why_cap)
{
    s_link_t *l = (s_link_t *)self;
    if (l->id != 0) {
        sp_why(why, why_cap, "the link has producer id %u already", l->id);
        return -EINVAL;
    }
    uint32_t old_id = l->id;
    uint64_t old_tag = l->tag;
    l->id = id;
    l->tag = 0;
    int rc = s_subscribe_results(l, "", why, why_cap);
    if (rc < 0) {
        l->id = old_id;
        l->tag = old_tag;
    }
    return rc;
}

static const sp_link_ops_t s_ops = {.send = s_send,
                                    .recv = s_recv,
                                    .release = s_release,
                                    .depth = s_depth,
                                    .ready = s_ready,
                                    .close = s_close,
                                    .reply_tag = s_reply_tag,
                                    .adopt = s_adopt};

static int s_link_open(sp_link_t **out, const sp_link_cfg_t *cfg, char *why, size_t why_cap)
{
    s_link_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return -ENOMEM;
    }
    sp_again_init(&l->again);
    l->base.ops = &s_ops;
    l->role = cfg->role;
    l->names = cfg->names;
    l->id = cfg->id;
    const char *urls = cfg->endpoint;
    int rc = s_connect(&l->nc, urls, why, why_cap);
    if (rc == 0) {
        rc = s_jetstream(&l->js, l->nc, SP_NATS_API_MS, cfg->role == SP_LINK_PRODUCER ? l : NULL,
                         urls, why, why_cap);
    }
    long msgsize = 0;
    if (rc == 0) {
        msgsize = s_stream_msgsize(l->js, cfg->names, urls, why, why_cap);
        rc = msgsize < 0 ? (int)msgsize : 0;
    }
    l->max_msg = msgsize;
    if (rc == 0 && msgsize > 0 && cfg->max_msg > (size_t)msgsize) {
        sp_why(why, why_cap,
               "messages of %zu bytes do not fit the order stream's %ld bytes "
               "(broker --mq-msgsize)",
               cfg->max_msg, msgsize);
        rc = -EMSGSIZE;
    }
    if (rc == 0 && cfg->role == SP_LINK_PRODUCER) {
        s_orders_subject(cfg->names, l->subject, sizeof l->subject);
        if (l->id == 0) {
            if (getrandom(&l->tag, sizeof l->tag, 0) != (ssize_t)sizeof l->tag) {
                l->tag = sp_now_ns() ^ ((uint64_t)getpid() << 40);
            }
            l->tag |= 1u; /* never 0: 0 means "no tag" */
        }
        rc = s_subscribe_results(l, urls, why, why_cap);
    } else if (rc == 0) {
        char stream[S_NAME_MAX], subject[S_SUBJECT_MAX];
        s_stream(cfg->names, stream, sizeof stream);
        s_orders_subject(cfg->names, subject, sizeof subject);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = stream;
        so.Consumer = S_DURABLE;
        jsErrCode jerr = 0;
        natsStatus s;
        uint64_t until = sp_now_ns() + (uint64_t)SP_NATS_API_MS * SP_NS_PER_MS;
        for (;;) {
            jerr = 0;
            s = js_PullSubscribe(&l->sub, l->js, subject, S_DURABLE, NULL, &so, &jerr);
            if (s == NATS_OK || !s_passing(s, jerr) || sp_now_ns() >= until) {
                break;
            }
            sp_sleep_ns(S_ELECTION_PAUSE_MS * SP_NS_PER_MS);
        }
        if (s != NATS_OK) {
            rc = s_fail(s, "binding to the workers' consumer", urls, why, why_cap);
        }
    }
    if (rc < 0) {
        s_close(&l->base);
        return rc;
    }
    *out = &l->base;
    return 0;
}

/* ---- the broker's side -------------------------------------------------------- */

typedef struct {
    sp_tside_t base;
    natsConnection *nc;
    jsCtx *js;
    char stream[S_NAME_MAX];
} s_side_t;

static void s_side_free(s_side_t *side)
{
    jsCtx_Destroy(side->js);
    natsConnection_Destroy(side->nc);
    free(side);
}

/* The stream of the instance: made, or taken up as a crashed run left it
 * (its orders were accepted: they are still to be applied). */
static int s_make_stream(s_side_t *side, const sp_tparams_t *p, sp_tinfo_t *info, char *why,
                         size_t cap)
{
    char subject[S_SUBJECT_MAX];
    s_orders_subject(p->names, subject, sizeof subject);
    const char *subjects[] = {subject};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = side->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Discard = js_DiscardNew;
    sc.Storage = js_FileStorage;
    sc.Replicas = p->replicas > 0 ? p->replicas : 1;
    sc.MaxMsgs = p->depth > 0 ? p->depth : SP_NATS_DEPTH;
    size_t msgsize = sp_wire_msg_size(SP_MSG_ORDERS, SP_WIRE_MAX_RECORDS);
    if (p->msgsize > 0) {
        msgsize = (size_t)p->msgsize;
    }
    sc.MaxMsgSize = (int32_t)msgsize;
    sc.Duplicates = (int64_t)S_DUP_WINDOW_S * 1000 * S_NS_PER_MS;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    /* a cluster that is still electing its leaders says so for a moment */
    uint64_t until = sp_now_ns() + (uint64_t)SP_NATS_READY_MS * SP_NS_PER_MS;
    for (;;) {
        jerr = 0;
        s = js_AddStream(&si, side->js, &sc, NULL, &jerr);
        if (s != NATS_OK && jerr == JSStreamNameExistErr) {
            s = js_UpdateStream(&si, side->js, &sc, NULL, &jerr);
        }
        if (s == NATS_OK || !s_passing(s, jerr) || sp_now_ns() >= until) {
            break;
        }
        sp_sleep_ns(S_ELECTION_PAUSE_MS * SP_NS_PER_MS);
    }
    if (s != NATS_OK && jerr == JSStreamReplicasNotSupportedErr) {
        sp_why(why, cap, "%lld replicas need a NATS cluster, and the servers are one node",
               (long long)sc.Replicas);
        return SP_E_USAGE;
    }
    if (s != NATS_OK) {
        return s_fail(s, "making the order stream", p->service, why, cap);
    }
    info->msgsize = (uint32_t)si->Config->MaxMsgSize;
    info->depth = (uint32_t)si->Config->MaxMsgs;
    jsStreamInfo_Destroy(si);

    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = S_DURABLE;
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.ReplayPolicy = js_ReplayInstant;
    cc.AckWait = (int64_t)SP_NATS_ACK_WAIT_MS * S_NS_PER_MS;
    cc.MaxAckPending = SP_NATS_ACK_PENDING;
    cc.FilterSubject = subject;
    for (;;) {
        jsConsumerInfo *ci = NULL;
        jerr = 0;
        s = js_AddConsumer(&ci, side->js, side->stream, &cc, NULL, &jerr);
        jsConsumerInfo_Destroy(ci);
        if (s == NATS_OK || !s_passing(s, jerr) || sp_now_ns() >= until) {
            break;
        }
        sp_sleep_ns(S_ELECTION_PAUSE_MS * SP_NS_PER_MS);
    }
    if (s != NATS_OK) {
        return s_fail(s, "making the workers' consumer", p->service, why, cap);
    }
    return 0;
}

static int s_create(sp_tside_t **out, const sp_tparams_t *p, sp_tinfo_t *info, char *why,
                    size_t cap)
{
    *out = NULL;
    s_side_t *side = calloc(1, sizeof *side);
    if (side == NULL) {
        return -ENOMEM;
    }
    side->base.transport = &sp_transport_nats;
    s_stream(p->names, side->stream, sizeof side->stream);
    int rc = s_connect(&side->nc, p->service, why, cap);
    if (rc == 0) {
        /* short tries: a cluster just started answers nothing until it has
         * elected its leader, and the tries go on for SP_NATS_READY_MS */
        rc = s_jetstream(&side->js, side->nc, S_TRY_MS, NULL, p->service, why, cap);
    }
    if (rc == 0) {
        rc = s_make_stream(side, p, info, why, cap);
    }
    if (rc < 0) {
        s_side_free(side);
        return rc;
    }
    info->endpoint = p->service;
    *out = &side->base;
    return 0;
}

static void s_destroy(sp_tside_t **self_p, uint32_t producers)
{
    (void)producers; /* their subjects are nothing to remove */
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    s_side_t *side = (s_side_t *)*self_p;
    js_DeleteStream(side->js, side->stream, NULL, NULL);
    s_side_free(side);
    *self_p = NULL;
}

static long s_side_depth(sp_tside_t *self)
{
    s_side_t *side = (s_side_t *)self;
    return s_stream_count(side->js, side->stream, NULL);
}

static unsigned s_fit(const sp_tinfo_t *info, char *limit, size_t cap)
{
    unsigned n = SP_WIRE_MAX_RECORDS;
    while (n > 1 && (sp_wire_msg_size(SP_MSG_ORDERS, n) > info->msgsize ||
                     sp_wire_msg_size(SP_MSG_RESULTS, n) > info->msgsize)) {
        n--;
    }
    snprintf(limit, cap, "the order stream's %u-byte messages (broker --mq-msgsize)",
             info->msgsize);
    return n;
}

const sp_transport_t sp_transport_nats = {
    .name = "nats",
    .summary = "a NATS JetStream stream (--nats URL[,URL...]): across hosts",
    .id = 5,
    .routed = false,
    .has_workers = true,
    .cheap_depth = true, /* s_ready: what the last fetch brought */
    .scheme = "nats://",
    .depth_label = "stream",
    .reply_label = NULL,
    .link_open = s_link_open,
    .create = s_create,
    .destroy = s_destroy,
    .depth = s_side_depth,
    .fit = s_fit,
};
