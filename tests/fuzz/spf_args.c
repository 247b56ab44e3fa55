/*
 * spf_args — fuzz body for the parsers of what people type: flag values
 * (sp_args) and the names flags take (sync strategy, transport, instance
 * name and the IPC names made from it, fsync policy, journal file names).
 *
 * Input: a selector byte (which parser), a bounds byte (which [min, max] from
 * a table of edge cases, which message buffer size, whether the value is
 * NULL), then up to three NUL-separated strings: the value, the flag name
 * and an extra string (the state directory for sp_names_init).
 *
 * Invariants, from the headers: a value is accepted only inside [min, max];
 * an accepted whole number is all digits (no sign, blank, base prefix or
 * junk) and prints and parses back to itself, and the u64 parser accepts
 * exactly the strings an independent digit-by-digit reading accepts; a
 * refusal returns SP_E_USAGE, leaves the output alone and writes a
 * non-empty message that fits its buffer (the buffer is allocated at its
 * exact size, so a byte past it is an AddressSanitizer report), naming the
 * flag when there is room; a parsed name prints back as the same string; an
 * instance name is accepted exactly when it follows the documented rule, and
 * the IPC names built from it are the documented ones, never cut short.
 */
#include "spf.h"

#include "sp_transport.h"
#include "sp_args.h"
#include "sp_error.h"
#include "sp_instance.h"
#include "sp_journal.h"
#include "sp_recover.h"
#include "sp_table.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Input layout. */
#define S_HEADER_BYTES 2u
#define S_STRINGS      3u
#define S_DEFAULT_FLAG "--flag"

/* Bounds byte: bits 0-2 pick the range, bits 3-4 the message buffer size,
 * bit 7 a NULL value. */
#define S_RANGE_MASK 0x07u
#define S_CAP_SHIFT  3u
#define S_CAP_MASK   0x03u
#define S_NULL_VALUE 0x80u

/* Room a message needs beyond the flag and the value to hold both whole. */
#define S_WHY_SLACK 80u

/* Longest duration value sp_arg_duration reads (its number buffer). */
#define S_DURATION_VALUE_MAX 63u
#define S_MAX_SECONDS        (366.0 * 24 * 3600)

/* Buffers for printing a parsed value back. */
#define S_PRINT_BUF 64u

/* Decimal places of a double printed back exactly. */
#define S_DOUBLE_DIGITS 17

/* Largest u32 printed in decimal: the reply-queue name's suffix. */
#define S_U32_DIGITS_MAX 10u

enum {
    S_SEL_U64,
    S_SEL_U32,
    S_SEL_DOUBLE,
    S_SEL_DURATION,
    S_SEL_SYNC,
    S_SEL_TRANSPORT,
    S_SEL_INSTANCE,
    S_SEL_FSYNC,
    S_SEL_COUNT
};

static const size_t s_caps[S_CAP_MASK + 1] = {2, 24, 80, 256};

static const struct {
    uint64_t min, max;
} s_u64_ranges[S_RANGE_MASK + 1] = {
    {0, UINT64_MAX}, {1, 64},
    {0, 0},          {1, 1000000},
    {5, 3},          {UINT64_MAX, UINT64_MAX},
    {0, UINT32_MAX}, {UINT64_C(18446744073709551614), UINT64_MAX},
};

static const struct {
    uint32_t min, max;
} s_u32_ranges[S_RANGE_MASK + 1] = {
    {0, UINT32_MAX}, {1, 64},
    {0, 0},          {1, 1000000},
    {5, 3},          {UINT32_MAX, UINT32_MAX},
    {1, 65535},      {4294967294u, UINT32_MAX},
};

static const struct {
    double min, max;
} s_double_ranges[S_RANGE_MASK + 1] = {
    {0, 1},     {-1e9, 1e9},      {0, DBL_MAX}, {-DBL_MAX, DBL_MAX},
    {0.5, 0.5}, {1e-300, 1e-299}, {0, 0},       {2, 1},
};

/* A refusal's message: NUL-terminated inside its cap, non-empty, and
 * naming the flag when the buffer had room for the whole sentence. */
static void s_check_why(const char *why, size_t cap, const char *flag, const char *value)
{
    const char *nul = memchr(why, '\0', cap);
    SPF_CHECK(nul != NULL);
    SPF_CHECK(why[0] != '\0');
    if (strlen(flag) + (value ? strlen(value) : 0) + S_WHY_SLACK < cap) {
        SPF_CHECK(strstr(why, flag) != NULL);
    }
}

/* The rule sp_args.h states for whole numbers, read independently: the
 * whole string decimal digits (at least one), the value in [min, max]. */
static bool s_whole_ok(const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    if (value == NULL || value[0] == '\0') {
        return false;
    }
    uint64_t v = 0;
    for (const char *c = value; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            return false;
        }
        unsigned d = (unsigned)(*c - '0');
        if (v > (UINT64_MAX - d) / 10u) {
            return false; /* overflow */
        }
        v = v * 10u + d;
    }
    *out = v;
    return v >= min && v <= max;
}

static void s_u64(const char *value, const char *flag, unsigned bounds, char *why, size_t cap)
{
    uint64_t min = s_u64_ranges[bounds & S_RANGE_MASK].min;
    uint64_t max = s_u64_ranges[bounds & S_RANGE_MASK].max;
    const uint64_t sentinel = UINT64_C(0x5555555555555555);
    uint64_t out = sentinel;
    uint64_t expect = 0;
    bool ok = s_whole_ok(value, min, max, &expect);
    int rc = sp_arg_u64(flag, value, min, max, &out, why, cap);
    SPF_CHECK(rc == 0 || rc == SP_E_USAGE);
    SPF_CHECK((rc == 0) == ok);
    if (rc != 0) {
        SPF_CHECK(out == sentinel);
        s_check_why(why, cap, flag, value);
        return;
    }
    SPF_CHECK(out == expect && out >= min && out <= max);
    char printed[S_PRINT_BUF];
    snprintf(printed, sizeof printed, "%llu", (unsigned long long)out);
    uint64_t again = 0;
    SPF_CHECK(sp_arg_u64(flag, printed, min, max, &again, why, cap) == 0);
    SPF_CHECK(again == out);
}

static void s_u32(const char *value, const char *flag, unsigned bounds, char *why, size_t cap)
{
    uint32_t min = s_u32_ranges[bounds & S_RANGE_MASK].min;
    uint32_t max = s_u32_ranges[bounds & S_RANGE_MASK].max;
    const uint32_t sentinel = UINT32_C(0x55555555);
    uint32_t out = sentinel;
    uint64_t expect = 0;
    bool ok = s_whole_ok(value, min, max, &expect);
    int rc = sp_arg_u32(flag, value, min, max, &out, why, cap);
    SPF_CHECK(rc == 0 || rc == SP_E_USAGE);
    SPF_CHECK((rc == 0) == ok);
    if (rc != 0) {
        SPF_CHECK(out == sentinel);
        s_check_why(why, cap, flag, value);
        return;
    }
    SPF_CHECK(out == expect && out >= min && out <= max);
    char printed[S_PRINT_BUF];
    snprintf(printed, sizeof printed, "%u", out);
    uint32_t again = 0;
    SPF_CHECK(sp_arg_u32(flag, printed, min, max, &again, why, cap) == 0);
    SPF_CHECK(again == out);
}

static void s_double(const char *value, const char *flag, unsigned bounds, char *why, size_t cap)
{
    double min = s_double_ranges[bounds & S_RANGE_MASK].min;
    double max = s_double_ranges[bounds & S_RANGE_MASK].max;
    const double sentinel = -12345.5;
    double out = sentinel;
    int rc = sp_arg_double(flag, value, min, max, &out, why, cap);
    SPF_CHECK(rc == 0 || rc == SP_E_USAGE);
    if (rc != 0) {
        SPF_CHECK(out == sentinel);
        s_check_why(why, cap, flag, value);
        return;
    }
    SPF_CHECK(isfinite(out) && out >= min && out <= max);
    /* a plain decimal: no '+' in front, no hex, inf or nan, no blanks */
    SPF_CHECK(value != NULL && value[0] != '+');
    for (const char *c = value; *c != '\0'; c++) {
        SPF_CHECK((*c >= '0' && *c <= '9') || strchr("-.eE+", *c) != NULL);
    }
    char printed[S_PRINT_BUF];
    snprintf(printed, sizeof printed, "%.*g", S_DOUBLE_DIGITS, out);
    double again = 0;
    SPF_CHECK(sp_arg_double(flag, printed, min, max, &again, why, cap) == 0);
    SPF_CHECK(again == out);
}

static void s_duration(const char *value, const char *flag, char *why, size_t cap)
{
    const double sentinel = -12345.5;
    double out = sentinel;
    int rc = sp_arg_duration(flag, value, &out, why, cap);
    SPF_CHECK(rc == 0 || rc == SP_E_USAGE);
    if (rc != 0) {
        SPF_CHECK(out == sentinel);
        s_check_why(why, cap, flag, value);
    } else {
        SPF_CHECK(isfinite(out) && out >= 0 && out <= S_MAX_SECONDS);
    }
    /* a value without a unit is seconds: the same as sp_arg_double's answer */
    size_t len = value ? strlen(value) : 0;
    if (len > 0 && len <= S_DURATION_VALUE_MAX &&
        ((value[len - 1] >= '0' && value[len - 1] <= '9') || value[len - 1] == '.')) {
        double plain = sentinel;
        int prc = sp_arg_double(flag, value, 0, S_MAX_SECONDS, &plain, why, cap);
        SPF_CHECK(prc == rc);
        SPF_CHECK(rc != 0 || plain == out);
    }
}

static void s_sync(const char *value)
{
    sp_sync_t out = (sp_sync_t)-1;
    int rc = sp_sync_parse(value, &out);
    SPF_CHECK(rc == 0 || rc == SP_E_USAGE);
    if (rc != 0) {
        SPF_CHECK(out == (sp_sync_t)-1);
        return;
    }
    SPF_CHECK((unsigned)out < SP_SYNC_COUNT);
    SPF_CHECK(strcmp(sp_sync_name(out), value) == 0);
}

static void s_transport(const char *value)
{
    const sp_transport_t *t = sp_transport_find(value);
    if (t == NULL) {
        return;
    }
    SPF_CHECK(strcmp(t->name, value) == 0);
    SPF_CHECK(sp_transport_by_id(t->id) == t);
    SPF_CHECK(t->link_open != NULL && t->fit != NULL);
}

/* The instance-name rule of sp_instance.h, read independently. */
static bool s_instance_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > SP_INSTANCE_NAME_MAX || name[0] == '.') {
        return false;
    }
    for (const char *c = name; *c != '\0'; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* One IPC name: exactly "/" NAME SUFFIX. */
static void s_check_ipc_name(const char *got, size_t cap, const char *name, const char *suffix)
{
    char want[SP_IPC_NAME_MAX * 2];
    snprintf(want, sizeof want, "/%s%s", name, suffix);
    SPF_CHECK(memchr(got, '\0', cap) != NULL);
    SPF_CHECK(strcmp(got, want) == 0);
}

static void s_instance(const char *value, const char *state_base, uint32_t producer)
{
    int rc = sp_instance_check(value);
    SPF_CHECK(rc == 0 || rc == SP_E_USAGE);
    SPF_CHECK((rc == 0) == s_instance_ok(value));

    sp_names_t *n = malloc(sizeof *n);
    SPF_CHECK(n != NULL);
    int nrc = sp_names_init(n, value, state_base);
    if (rc != 0) {
        SPF_CHECK(nrc == SP_E_USAGE);
        free(n);
        return;
    }
    SPF_CHECK(nrc == 0 || nrc == -ENAMETOOLONG);
    if (nrc == 0) {
        SPF_CHECK(strcmp(n->name, value) == 0);
        s_check_ipc_name(n->table, sizeof n->table, value, ".table");
        s_check_ipc_name(n->orders_mq, sizeof n->orders_mq, value, ".orders");
        s_check_ipc_name(n->ring, sizeof n->ring, value, ".ring");
        SPF_CHECK(memchr(n->run_dir, '\0', sizeof n->run_dir) != NULL);
        SPF_CHECK(memchr(n->state_dir, '\0', sizeof n->state_dir) != NULL);
        size_t base_len = strlen(state_base ? state_base : SP_STATE_DIR_DEFAULT);
        SPF_CHECK(strlen(n->state_dir) == base_len + 1 + strlen(value));

        /* every reply queue name fits whole, whatever the producer id */
        char reply[SP_IPC_NAME_MAX];
        char suffix[S_PRINT_BUF];
        snprintf(suffix, sizeof suffix, ".r.%u", producer);
        SPF_CHECK(strlen(value) + 1 + strlen(".r.") + S_U32_DIGITS_MAX < sizeof reply);
        sp_names_reply_mq(n, producer, reply, sizeof reply);
        s_check_ipc_name(reply, sizeof reply, value, suffix);

        char ep[SP_ENDPOINT_MAX];
        int erc = sp_names_ipc_endpoint(n, "orders", ep, sizeof ep);
        SPF_CHECK(erc == 0 || erc == -ENAMETOOLONG);
        if (erc == 0) {
            size_t scheme = strlen("ipc://");
            SPF_CHECK(strncmp(ep, "ipc://", scheme) == 0);
            SPF_CHECK(strncmp(ep + scheme, n->run_dir, strlen(n->run_dir)) == 0);
        }
    }
    free(n);
}

static void s_fsync(const char *value)
{
    sp_fsync_policy_t p = (sp_fsync_policy_t)0;
    unsigned ms = 12345;
    int rc = sp_fsync_policy_parse(value, &p, &ms);
    SPF_CHECK(rc == 0 || rc == SP_E_USAGE);
    if (rc != 0) {
        SPF_CHECK(p == (sp_fsync_policy_t)0 && ms == 12345);
    } else if (p == SP_FSYNC_INTERVAL) {
        SPF_CHECK(ms >= 1 && ms <= SP_JOURNAL_INTERVAL_MAX);
        SPF_CHECK(strcmp(sp_fsync_policy_name(p), "interval") == 0);
        char printed[S_PRINT_BUF];
        snprintf(printed, sizeof printed, "interval:%u", ms);
        sp_fsync_policy_t p2 = (sp_fsync_policy_t)0;
        unsigned ms2 = 0;
        SPF_CHECK(sp_fsync_policy_parse(printed, &p2, &ms2) == 0);
        SPF_CHECK(p2 == p && ms2 == ms);
    } else {
        SPF_CHECK(p == SP_FSYNC_ALWAYS || p == SP_FSYNC_NEVER);
        SPF_CHECK(ms == 0);
        SPF_CHECK(strcmp(sp_fsync_policy_name(p), value) == 0);
    }
    /* journal file names: "*.log" with something before the suffix */
    if (value != NULL) {
        size_t len = strlen(value);
        bool want = len > strlen(".log") && strcmp(value + len - strlen(".log"), ".log") == 0;
        SPF_CHECK(sp_recover_is_journal(value) == want);
    }
}

int spf_args_one(const uint8_t *data, size_t size)
{
    if (size < S_HEADER_BYTES) {
        return 0;
    }
    unsigned sel = data[0] % S_SEL_COUNT;
    unsigned bounds = data[1];

    /* the strings, each NUL-terminated, in one buffer of their own */
    size_t len = size - S_HEADER_BYTES;
    char *text = malloc(len + 1);
    SPF_CHECK(text != NULL);
    memcpy(text, data + S_HEADER_BYTES, len);
    text[len] = '\0';
    const char *str[S_STRINGS] = {NULL, NULL, NULL};
    const char *p = text;
    for (unsigned i = 0; i < S_STRINGS && p <= text + len; i++) {
        str[i] = p;
        p += strlen(p) + 1;
    }
    const char *value = (bounds & S_NULL_VALUE) ? NULL : str[0];
    const char *flag = str[1] ? str[1] : S_DEFAULT_FLAG;
    uint32_t producer = 0;
    memcpy(&producer, data, size < sizeof producer ? size : sizeof producer);

    size_t cap = s_caps[(bounds >> S_CAP_SHIFT) & S_CAP_MASK];
    char *why = malloc(cap); /* exactly cap bytes: ASan sees a write past it */
    SPF_CHECK(why != NULL);
    memset(why, 0x5a, cap);

    switch (sel) {
    case S_SEL_U64:
        s_u64(value, flag, bounds, why, cap);
        break;
    case S_SEL_U32:
        s_u32(value, flag, bounds, why, cap);
        break;
    case S_SEL_DOUBLE:
        s_double(value, flag, bounds, why, cap);
        break;
    case S_SEL_DURATION:
        s_duration(value, flag, why, cap);
        break;
    case S_SEL_SYNC:
        s_sync(str[0]);
        break;
    case S_SEL_TRANSPORT:
        s_transport(str[0]);
        break;
    case S_SEL_INSTANCE:
        s_instance(str[0], str[2], producer);
        break;
    default:
        s_fsync(value);
        break;
    }
    free(why);
    free(text);
    return 0;
}
