/*
 * sp_console — the monitor's full-screen view (ncurses), drawn from a mirror.
 *
 * Everything here is shaped by one constraint: a frame must cost the same for
 * ten products and for a million.  So a frame never walks the catalogue.  It
 * draws the header from the mirror's counters, one line per worker cell, and
 * only the rows that fit on the screen, looked up by id through an index.
 *
 * The index is built in two stages, so each is redone only when its inputs
 * change:
 *
 *   match  the ids whose name or category contains the filter, in id order:
 *          rebuilt when the filter changes or a snapshot may have changed
 *          which products exist;
 *   order  `match` in the chosen order: the same array for id order, an LSD
 *          radix sort on 32-bit keys for stock and activity order, redone at
 *          most every S_RESORT_MS because stock and recency keep moving.
 *
 * The radix sort (four 8-bit passes over (key << 32 | id) words, passes that
 * would not move anything skipped) is stable and linear, so a million rows
 * sort in a few milliseconds where qsort with a comparator needs ten times
 * more, and ties stay in id order without a second key.
 *
 * Pausing freezes what the user reads while the feed keeps running: the
 * header numbers are copied once, the order is no longer rebuilt, and each row
 * is copied the first time it is drawn while paused (a small hash by id), so
 * scrolling during a pause shows rows as they were when first seen.
 *
 * Text goes out through addnstr with byte counts; names are UTF-8, so every
 * cut happens at a character boundary, and columns are counted with wcwidth
 * when the terminal's locale is UTF-8 (otherwise non-ASCII characters are
 * shown as '?', which keeps the columns straight).
 */
#include "sp_console.h"

#include "sp_time.h"
#include "sp_transport.h"

#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#define S_RESORT_MS    500 /* stock and activity order are rebuilt at most this often */
#define S_ESC_DELAY_MS 25  /* how long ncurses waits to tell Esc from an arrow key */
#define S_KEY_ESC      27
#define S_KEY_DEL      127
#define S_KEY_CTRL_H   8
#define S_KEY_CTRL_U   21

/* Radix sort: 32-bit keys in four 8-bit digits. */
#define S_RADIX_BITS    8
#define S_RADIX_BUCKETS (1u << S_RADIX_BITS)
#define S_RADIX_PASSES  4
#define S_KEY_SHIFT     32 /* keys live in the high half of each sort word */

/* Rows frozen by a pause: an open-addressing hash by id, kept at most three
 * quarters full so probes stay short; beyond that, rows are drawn live. */
#define S_FREEZE_SLOTS 8192u
#define S_FREEZE_MAX   ((size_t)S_FREEZE_SLOTS / 4u * 3u)
#define S_HASH_MULT    2654435761u /* Knuth's multiplicative hash */

/* Layout. */
#define S_MIN_LINES     6 /* below this the console only says it is too small */
#define S_MIN_COLS      20
#define S_TEXT_MAX      512 /* longest piece of text written in one call */
#define S_TITLE_MAX     128
#define S_FLOW_GAP      2  /* spaces between two counters */
#define S_WORKER_CELL_W 48 /* one worker's cell in the worker lines */
#define S_WORKER_SHARE  3  /* workers take at most 1/3 of the lines below the header */
#define S_NAME_W        24 /* columns of a name: preferred, */
#define S_NAME_W_SOFT   14 /*   given up before any column is left out, */
#define S_NAME_W_MIN    10 /*   smallest */
#define S_NAME_W_MAX    (SP_NAME_MAX - 1)
#define S_CAT_W         14
#define S_CAT_W_SOFT    9
#define S_CAT_W_MAX     (SP_CATEGORY_MAX - 1)
#define S_WEIGHT_W      8      /* "999.9 kg" */
#define S_PRICE_W       9      /* "99999.99" */
#define S_EXPIRY_W      10     /* "2026-11-22" */
#define S_STOCK_W       8      /* larger stocks get a k/M/G suffix */
#define S_SOLD_W        7      /* units sold, k/M/G beyond */
#define S_HELD_W        5      /* units held */
#define S_RATE_W        8      /* "12.3/s", "40.5/min" */
#define S_ETA_W         9      /* "sells out": "3m20s", "2h05m", "4d" */
#define S_SWEEP_ROWS    16384u /* rows the totals' sweep reads per frame */
#define S_BAR_W_MIN     6
#define S_BAR_W_PREF    30
#define S_LOW_PERCENT   10 /* cfg.low_stock == 0: low means <= 10 % of the initial stock */
#define S_GRAMS_PER_KG  1000u

/* Colour pairs (only used when the terminal has colours). */
enum {
    S_PAIR_SOLD_OUT = 1,
    S_PAIR_LOW,
    S_PAIR_CHANGED,
    S_PAIR_BANNER,
    S_PAIR_BAR,
    S_PAIR_GOOD,
    S_PAIR_TITLE
};

/* A row as it was when a pause first drew it. */
typedef struct {
    uint32_t id; /* 0: empty slot */
    sp_mrow_t row;
    sp_minfo_t info;
    sp_tally_t tally;
} sp_frozen_t;

/* Totals over the whole catalogue, gathered by a sweep that reads at most
 * S_SWEEP_ROWS rows a frame (so a frame costs the same for a million
 * products) and publishes its sums when it has been round once. */
typedef struct {
    uint64_t sold, held, revenue_cents; /* units, units, price x units sold */
    uint64_t expired, sold_out;         /* products */
    bool valid;                         /* a sweep has finished */
    bool live;                          /* from the table, not a snapshot */
} sp_totals_t;

/* Where each table column goes on the current screen (width 0: left out). */
typedef struct {
    int id_x, id_w;
    int name_x, name_w;
    int cat_x, cat_w;
    int weight_x, weight_w;
    int price_x, price_w;
    int expiry_x, expiry_w;
    int stock_x, stock_w;
    int sold_x, sold_w;
    int held_x, held_w;
    int rate_x, rate_w;
    int eta_x, eta_w;
    int bar_x, bar_w;
} sp_cols_t;

/* Text laid out left to right, wrapping to the next line when full. */
typedef struct {
    int y, x;
    int y_end; /* first line it may not use */
    int cols;
} sp_flow_t;

struct sp_console {
    SCREEN *screen;
    char title[S_TITLE_MAX];
    uint32_t low_stock;
    bool colors;
    bool utf8;

    sp_sort_t sort;
    char filter[SP_CONSOLE_FILTER_MAX]; /* applied */
    bool editing;
    char edit[SP_CONSOLE_FILTER_MAX]; /* being typed */
    size_t edit_len;
    unsigned edit_skip; /* continuation bytes of a character that did not fit */
    bool help;
    bool paused;

    /* the index (see the top of the file) */
    const sp_mirror_t *mirror; /* the one it was built from */
    uint32_t cap;
    uint32_t *match;
    uint32_t *order;
    uint64_t *scratch; /* 2 * cap sort words */
    size_t n_match;
    const uint32_t *view; /* match or order */
    bool match_dirty;
    bool order_dirty;
    bool oom;
    uint64_t match_ns;
    uint64_t order_ns;
    uint64_t seen_snapshots;

    size_t top;  /* first row shown */
    size_t page; /* rows the last frame had room for */

    /* the catalogue totals: the finished sweep's, and the running one */
    sp_totals_t totals, sweep;
    uint32_t sweep_next; /* next id the sweep reads */
    uint32_t today;      /* YYYYMMDD, local time, this frame's */

    /* a sharded shop: its shards' health (sp_console_shards) */
    sp_console_shard_t shards[SP_CONSOLE_SHARDS_MAX];
    unsigned nshards;

    /* the picture a pause froze */
    uint64_t frozen_ns;
    sp_shopstats_t f_stats;
    sp_mstate_t f_state;
    sp_mrates_t f_rates;
    sp_totals_t f_totals;
    sp_frozen_t *frozen;
    size_t n_frozen;
};

/* ---------------------------------------------------------------------------
 * Row order (no terminal needed)
 */

/* Case folding for the filter: ASCII letters and the Latin-1 capitals
 * (U+00C0..U+00DE except U+00D7), which covers the catalogue's "Café"-style
 * names.  Both map to a sequence of the same length, so folding works byte
 * by byte and a folded needle never matches in the middle of a character. */
static void s_fold(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    unsigned char prev = 0;
    for (; src[i] != '\0' && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + ('a' - 'A'));
        } else if (prev == 0xC3 && c >= 0x80 && c <= 0x9E && c != 0x97) {
            c = (unsigned char)(c + 0x20);
        }
        dst[i] = (char)c;
        prev = (unsigned char)src[i];
    }
    dst[i] = '\0';
}

static bool s_matches(const sp_minfo_t *info, const char *needle)
{
    char hay[SP_NAME_MAX > SP_CATEGORY_MAX ? SP_NAME_MAX : SP_CATEGORY_MAX];
    s_fold(hay, sizeof hay, info->name);
    if (strstr(hay, needle) != NULL) {
        return true;
    }
    s_fold(hay, sizeof hay, info->category);
    return strstr(hay, needle) != NULL;
}

/* Writes the ids of the products that match the (folded) needle to out, in
 * id order; returns how many. */
static size_t s_filter(const sp_mirror_t *mirror, const char *needle, uint32_t *out)
{
    uint32_t cap = sp_mirror_capacity(mirror);
    size_t n = 0;
    for (uint32_t id = 1; id <= cap; id++) {
        if (sp_mirror_row(mirror, id) == NULL) {
            continue;
        }
        if (needle[0] != '\0') {
            sp_minfo_t info;
            if (!sp_mirror_info(mirror, id, &info) || !s_matches(&info, needle)) {
                continue;
            }
        }
        out[n++] = id;
    }
    return n;
}

/* Stable LSD radix sort of n words by their high 32 bits; a and b are two
 * buffers of n words, a holding the input.  Returns the one holding the
 * result.  All four digit histograms come from one read of the input, and a
 * pass whose digit is the same for every word is skipped (small stocks leave
 * the upper digits zero, so stock order usually needs two passes). */
static uint64_t *s_radix_sort(uint64_t *a, uint64_t *b, size_t n)
{
    _Static_assert(S_RADIX_BITS * S_RADIX_PASSES == 32, "four digits cover a 32-bit key");
    size_t count[S_RADIX_PASSES][S_RADIX_BUCKETS];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)(a[i] >> S_KEY_SHIFT);
        for (unsigned p = 0; p < S_RADIX_PASSES; p++) {
            count[p][(key >> (p * S_RADIX_BITS)) & (S_RADIX_BUCKETS - 1)]++;
        }
    }
    for (unsigned p = 0; p < S_RADIX_PASSES && n > 0; p++) {
        unsigned shift = S_KEY_SHIFT + p * S_RADIX_BITS;
        if (count[p][(a[0] >> shift) & (S_RADIX_BUCKETS - 1)] == n) {
            continue;
        }
        size_t sum = 0;
        for (unsigned d = 0; d < S_RADIX_BUCKETS; d++) {
            size_t c = count[p][d];
            count[p][d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            b[count[p][(a[i] >> shift) & (S_RADIX_BUCKETS - 1)]++] = a[i];
        }
        uint64_t *t = a;
        a = b;
        b = t;
    }
    return a;
}

/* Rows that have no key in `sort` (stock unknown; never changed) go last,
 * in id order. */
static bool s_keyless(const sp_mrow_t *r, sp_sort_t sort)
{
    return r == NULL || (sort == SP_SORT_STOCK ? !r->known : r->changed_ns == 0);
}

/* Puts the n ids of `in` (id order) into `sort` order in `out` (which may be
 * `in`), using `scratch` (2 * n words).
 *
 * Stock: the key is the stock.  Activity: the key is how long before the
 * latest change in the set a row changed, so ascending means most recent
 * first.  That span is shifted right just enough to fit 32 bits: exact to the
 * nanosecond while all changes lie within 4.2 s of each other, to a
 * microsecond across an hour; changes closer together than that resolution
 * tie and, like every tie, stay in id order. */
static void s_sort(const sp_mirror_t *mirror, sp_sort_t sort, const uint32_t *in, size_t n,
                   uint32_t *out, uint64_t *scratch)
{
    uint64_t *a = scratch;
    uint64_t *b = scratch + n;
    size_t k = 0;
    if (sort == SP_SORT_STOCK) {
        for (size_t i = 0; i < n; i++) {
            const sp_mrow_t *r = sp_mirror_row(mirror, in[i]);
            if (!s_keyless(r, sort)) {
                a[k++] = (uint64_t)r->stock << S_KEY_SHIFT | in[i];
            }
        }
    } else {
        uint64_t newest = 0, oldest = UINT64_MAX;
        for (size_t i = 0; i < n; i++) {
            const sp_mrow_t *r = sp_mirror_row(mirror, in[i]);
            if (!s_keyless(r, sort)) {
                a[k] = r->changed_ns;
                b[k++] = in[i];
                newest = r->changed_ns > newest ? r->changed_ns : newest;
                oldest = r->changed_ns < oldest ? r->changed_ns : oldest;
            }
        }
        unsigned shift = 0;
        while (k > 0 && ((newest - oldest) >> shift) > UINT32_MAX) {
            shift++;
        }
        for (size_t i = 0; i < k; i++) {
            a[i] = ((newest - a[i]) >> shift) << S_KEY_SHIFT | b[i];
        }
    }
    uint64_t *sorted = s_radix_sort(a, b, k);
    uint64_t *spare = sorted == a ? b : a;
    /* keyless ids are collected before anything is written to `out`, which
     * may be the very array we are reading */
    size_t tail = 0;
    for (size_t i = 0; i < n; i++) {
        if (s_keyless(sp_mirror_row(mirror, in[i]), sort)) {
            spare[tail++] = in[i];
        }
    }
    for (size_t i = 0; i < k; i++) {
        out[i] = (uint32_t)sorted[i];
    }
    for (size_t i = 0; i < tail; i++) {
        out[k + i] = (uint32_t)spare[i];
    }
}

size_t sp_view_order(const sp_mirror_t *mirror, sp_sort_t sort, const char *filter, uint32_t *ids)
{
    /* a needle longer than any name or category matches nothing */
    if (filter != NULL && strlen(filter) >= SP_NAME_MAX) {
        return 0;
    }
    char needle[SP_NAME_MAX];
    s_fold(needle, sizeof needle, filter != NULL ? filter : "");
    size_t n = s_filter(mirror, needle, ids);
    if (sort == SP_SORT_ID || n < 2) {
        return n;
    }
    uint64_t *scratch = malloc(2 * n * sizeof *scratch);
    if (scratch == NULL) {
        return n; /* out of memory: every row is still there, in id order */
    }
    s_sort(mirror, sort, ids, n, ids, scratch);
    free(scratch);
    return n;
}

/* ---------------------------------------------------------------------------
 * Formatting
 */

static void s_fmt_weight(char *buf, size_t cap, uint32_t grams)
{
    if (grams < S_GRAMS_PER_KG) {
        snprintf(buf, cap, "%u g", grams);
        return;
    }
    /* tenths of a kilogram, rounded */
    uint64_t tenths = ((uint64_t)grams + S_GRAMS_PER_KG / 20) / (S_GRAMS_PER_KG / 10);
    if (tenths < 10000) {
        snprintf(buf, cap, "%llu.%llu kg", (unsigned long long)(tenths / 10),
                 (unsigned long long)(tenths % 10));
    } else {
        snprintf(buf, cap, "%llu kg", (unsigned long long)((tenths + 5) / 10));
    }
}

/* A count in at most `width` characters: as is, or with a k/M/G suffix. */
static void s_fmt_count(char *buf, size_t cap, uint64_t v, int width)
{
    static const char suffix[] = "kMGTPE";
    int len = snprintf(buf, cap, "%llu", (unsigned long long)v);
    double d = (double)v;
    for (unsigned i = 0; len > width && i < sizeof suffix - 1; i++) {
        d /= 1000.0;
        len = snprintf(buf, cap, d < 100.0 ? "%.1f%c" : "%.0f%c", d, suffix[i]);
    }
}

static void s_fmt_price(char *buf, size_t cap, uint64_t cents)
{
    snprintf(buf, cap, "%llu.%02llu", (unsigned long long)(cents / 100),
             (unsigned long long)(cents % 100));
}

/* YYYYMMDD as YYYY-MM-DD; anything that is not a plausible date as is. */
static void s_fmt_expiry(char *buf, size_t cap, uint32_t ymd)
{
    unsigned y = ymd / 10000, m = ymd / 100 % 100, d = ymd % 100;
    if (ymd == 0) {
        snprintf(buf, cap, "-");
    } else if (y >= 1000 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= 31) {
        snprintf(buf, cap, "%04u-%02u-%02u", y, m, d);
    } else {
        snprintf(buf, cap, "%u", ymd);
    }
}

static void s_fmt_ms(char *buf, size_t cap, uint64_t ms)
{
    if (ms < 1000) {
        snprintf(buf, cap, "%llums", (unsigned long long)ms);
    } else {
        snprintf(buf, cap, "%.1fs", (double)ms / 1000.0);
    }
}

/* Units per second as people read them: "12.3/s", "4.0/min", "-". */
static void s_fmt_rate(char *buf, size_t cap, double per_s)
{
    if (per_s < 1.0 / 600.0) {
        snprintf(buf, cap, "-");
    } else if (per_s < 1.0) {
        snprintf(buf, cap, "%.1f/min", per_s * 60.0);
    } else if (per_s < 1000.0) {
        snprintf(buf, cap, "%.1f/s", per_s);
    } else {
        snprintf(buf, cap, "%.0fk/s", per_s / 1000.0);
    }
}

/* How long `stock` units last at `per_s` a second: "45s", "3m20s",
 * "2h05m", "4d"; "-" when nothing is leaving. */
static void s_fmt_eta(char *buf, size_t cap, uint32_t stock, double per_s)
{
    if (per_s < 1.0 / 600.0) {
        snprintf(buf, cap, "-");
        return;
    }
    double secs = (double)stock / per_s;
    unsigned long long t = secs < 1e9 ? (unsigned long long)secs : 999999999ull;
    if (t < 60) {
        snprintf(buf, cap, "%llus", t);
    } else if (t < 3600) {
        snprintf(buf, cap, "%llum%02llus", t / 60, t % 60);
    } else if (t < 86400) {
        snprintf(buf, cap, "%lluh%02llum", t / 3600, t / 60 % 60);
    } else {
        snprintf(buf, cap, "%llud", t / 86400);
    }
}

/* Money in whole units with thousands apart: "12,345,678.90". */
static void s_fmt_money(char *buf, size_t cap, uint64_t cents)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(cents / 100));
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) {
            buf[o++] = ',';
        }
        buf[o++] = digits[i];
    }
    snprintf(buf + o, cap - o, ".%02llu", (unsigned long long)(cents % 100));
}

static const char *s_wstate_name(uint32_t state)
{
    static const char *const names[] = {"-", "starting", "running", "stopping", "silent", "dead"};
    return state < sizeof names / sizeof names[0] ? names[state] : "?";
}

static const char *s_transport_name(uint32_t t)
{
    return sp_transport_name_of(t);
}

static const char *s_sync_name(uint32_t s)
{
    static const char *const names[] = {"cas", "row-lock", "table-lock"};
    return s < SP_SYNC_COUNT ? names[s] : "?";
}

static const char *s_sort_name(sp_sort_t sort)
{
    return sort == SP_SORT_STOCK ? "stock" : sort == SP_SORT_ACTIVITY ? "activity" : "id";
}

/* Length of the UTF-8 sequence a lead byte starts (0: not a lead byte). */
static unsigned s_utf8_len(unsigned char c)
{
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        return 4;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Drawing primitives
 */

/* Writes s at (y, x) in at most `width` columns (and never past the right
 * edge) with `attr`; cuts only at character boundaries, shows control
 * characters, invalid bytes and (in a non-UTF-8 locale) non-ASCII characters
 * as '?'.  Returns the columns used. */
static int s_text(const sp_console_t *self, int y, int x, int width, attr_t attr, const char *s)
{
    if (width > COLS - x) {
        width = COLS - x;
    }
    if (width <= 0 || y < 0 || y >= LINES) {
        return 0;
    }
    char out[S_TEXT_MAX];
    size_t o = 0;
    int used = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0' && o + 4 < sizeof out) {
        unsigned len = s_utf8_len(*p);
        uint32_t cp = *p;
        bool seq = len > 0; /* a whole, well-formed sequence (never spans the NUL) */
        for (unsigned k = 1; seq && k < len; k++) {
            seq = (p[k] & 0xC0) == 0x80;
            cp = (k == 1 ? cp & (0xFFu >> (len + 1)) : cp) << 6 | (p[k] & 0x3Fu);
        }
        bool show = seq && cp >= 0x20 && cp != S_KEY_DEL && (len == 1 || self->utf8);
        int w = 1;
        if (show && len > 1) {
            w = wcwidth((wchar_t)cp);
            show = w >= 0;
            w = show ? w : 1;
        }
        if (used + w > width) {
            break;
        }
        if (show) {
            memcpy(out + o, p, len);
            o += len;
        } else {
            out[o++] = '?';
        }
        used += w;
        p += seq ? len : 1;
    }
    attrset(attr);
    mvaddnstr(y, x, out, (int)o);
    attrset(A_NORMAL);
    return used;
}

/* printf into s_text. */
static int s_textf(const sp_console_t *self, int y, int x, int width, attr_t attr, const char *fmt,
                   ...) __attribute__((format(printf, 6, 7)));
static int s_textf(const sp_console_t *self, int y, int x, int width, attr_t attr, const char *fmt,
                   ...)
{
    char buf[S_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return s_text(self, y, x, width, attr, buf);
}

/* Right-aligns ASCII text (numbers) in a column; a number too wide for it
 * shows as '#'s, like a spreadsheet, rather than as misleading digits. */
static void s_right(const sp_console_t *self, int y, int x, int width, attr_t attr, const char *s)
{
    int len = (int)strlen(s);
    if (len > width) {
        attrset(attr);
        mvhline(y, x, '#', width);
        attrset(A_NORMAL);
        return;
    }
    s_text(self, y, x + width - len, len, attr, s);
}

static attr_t s_pair(const sp_console_t *self, short pair, attr_t mono)
{
    return self->colors ? (attr_t)COLOR_PAIR(pair) : mono;
}

/* One "label value" item of a flowing line; value in bold. */
static void s_flow(const sp_console_t *self, sp_flow_t *f, const char *label, const char *value,
                   attr_t value_attr)
{
    int need = (int)strlen(label) + 1 + (int)strlen(value);
    if (f->x > 0 && f->x + need > f->cols) {
        f->y++;
        f->x = 0;
    }
    if (f->y >= f->y_end) {
        return;
    }
    f->x += s_text(self, f->y, f->x, f->cols - f->x, A_NORMAL, label);
    f->x += s_text(self, f->y, f->x, 1, A_NORMAL, " ");
    f->x += s_text(self, f->y, f->x, f->cols - f->x, A_BOLD | value_attr, value);
    f->x += s_text(self, f->y, f->x, S_FLOW_GAP, A_NORMAL, "  ");
}

static void s_flow_u64(const sp_console_t *self, sp_flow_t *f, const char *label, uint64_t v,
                       attr_t value_attr)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    s_flow(self, f, label, buf, value_attr);
}

/* Starts the next group of items on a fresh line. */
static void s_flow_break(sp_flow_t *f)
{
    if (f->x > 0) {
        f->y++;
        f->x = 0;
    }
}

/* ---------------------------------------------------------------------------
 * Index upkeep
 */

static void s_index_free(sp_console_t *self)
{
    free(self->match);
    free(self->order);
    free(self->scratch);
    self->match = self->order = NULL;
    self->scratch = NULL;
    self->view = NULL;
    self->n_match = 0;
    self->cap = 0;
}

/* Brings the index up to date for this frame: at most one filter pass and one
 * sort, and only when their inputs may have changed. */
static void s_index_update(sp_console_t *self, const sp_mirror_t *mirror, uint64_t now)
{
    uint32_t cap = sp_mirror_capacity(mirror);
    if (mirror != self->mirror || cap != self->cap) {
        s_index_free(self);
        self->mirror = mirror;
        self->oom = false;
        if (cap > 0) {
            self->match = malloc((size_t)cap * sizeof *self->match);
            self->order = malloc((size_t)cap * sizeof *self->order);
            self->scratch = malloc(2 * (size_t)cap * sizeof *self->scratch);
            if (self->match == NULL || self->order == NULL || self->scratch == NULL) {
                s_index_free(self);
                self->oom = true;
                return;
            }
        }
        self->cap = cap;
        self->match_dirty = true;
    }
    if (self->cap == 0) {
        self->n_match = 0;
        return;
    }
    const sp_mstate_t *st = sp_mirror_state(mirror);
    uint64_t resort_ns = (uint64_t)S_RESORT_MS * SP_NS_PER_MS;
    /* products appear only through snapshot rows: a snapshot that completed
     * or is still arriving may have added some */
    if (!self->paused && (st->snapshots != self->seen_snapshots ||
                          (st->snapshot_running && now - self->match_ns >= resort_ns))) {
        self->match_dirty = true;
    }
    if (self->match_dirty) {
        char needle[SP_NAME_MAX];
        if (strlen(self->filter) >= SP_NAME_MAX) {
            self->n_match = 0;
        } else {
            s_fold(needle, sizeof needle, self->filter);
            self->n_match = s_filter(mirror, needle, self->match);
        }
        self->seen_snapshots = st->snapshots;
        self->match_ns = now;
        self->match_dirty = false;
        self->order_dirty = true;
    }
    if (self->sort == SP_SORT_ID) {
        self->view = self->match; /* already in id order */
        self->order_dirty = false;
        return;
    }
    if (!self->paused && now - self->order_ns >= resort_ns) {
        self->order_dirty = true;
    }
    if (self->order_dirty) {
        s_sort(mirror, self->sort, self->match, self->n_match, self->order, self->scratch);
        self->order_ns = now;
        self->order_dirty = false;
    }
    self->view = self->order;
}

/* ---------------------------------------------------------------------------
 * Pause
 */

/* Takes the picture a pause shows: header numbers now, rows as first drawn. */
static void s_freeze(sp_console_t *self, const sp_mirror_t *mirror, uint64_t now)
{
    self->frozen_ns = now;
    self->f_stats = *sp_mirror_stats(mirror);
    self->f_state = *sp_mirror_state(mirror);
    sp_mirror_rates(mirror, now, &self->f_rates);
    self->f_totals = self->totals;
    if (self->frozen == NULL) {
        /* without it a pause still freezes the header and the order */
        self->frozen = calloc(S_FREEZE_SLOTS, sizeof *self->frozen);
    } else {
        memset(self->frozen, 0, S_FREEZE_SLOTS * sizeof *self->frozen);
    }
    self->n_frozen = 0;
}

/* Row `id` as this frame shows it: live, or as a pause first saw it. */
static bool s_row_data(sp_console_t *self, const sp_mirror_t *mirror, uint32_t id, sp_mrow_t *row,
                       sp_minfo_t *info, sp_tally_t *tally)
{
    sp_frozen_t *slot = NULL;
    if (self->paused && self->frozen != NULL) {
        uint32_t h = (id * S_HASH_MULT) & (S_FREEZE_SLOTS - 1);
        for (;; h = (h + 1) & (S_FREEZE_SLOTS - 1)) {
            if (self->frozen[h].id == id) {
                *row = self->frozen[h].row;
                *info = self->frozen[h].info;
                *tally = self->frozen[h].tally;
                return true;
            }
            if (self->frozen[h].id == 0) {
                slot = self->n_frozen < S_FREEZE_MAX ? &self->frozen[h] : NULL;
                break;
            }
        }
    }
    const sp_mrow_t *r = sp_mirror_row(mirror, id);
    if (r == NULL || !sp_mirror_info(mirror, id, info)) {
        return false;
    }
    *row = *r;
    bool live;
    if (!sp_mirror_tally(mirror, id, tally, &live)) {
        *tally = (sp_tally_t){0};
    }
    if (slot != NULL) {
        *slot = (sp_frozen_t){.id = id, .row = *r, .info = *info, .tally = *tally};
        self->n_frozen++;
    }
    return true;
}

/* ---------------------------------------------------------------------------
 * Totals
 */

/* Today as YYYYMMDD in local time (the catalogue's expiry dates). */
static uint32_t s_today(void)
{
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL) {
        return 0;
    }
    return (uint32_t)(tm.tm_year + 1900) * 10000u + (uint32_t)(tm.tm_mon + 1) * 100u +
           (uint32_t)tm.tm_mday;
}

/* Whether a product's expiry date has passed (0: it has none). */
static bool s_expired(const sp_console_t *self, uint32_t expiry)
{
    return expiry != 0 && self->today != 0 && expiry < self->today;
}

/* Reads the next S_SWEEP_ROWS rows into the running sweep; at the end of
 * the catalogue its sums become the totals shown and it starts again. */
static void s_sweep(sp_console_t *self, const sp_mirror_t *mirror)
{
    uint32_t cap = sp_mirror_capacity(mirror);
    if (self->sweep_next == 0) {
        self->sweep = (sp_totals_t){.live = true};
        self->sweep_next = 1;
    }
    uint32_t end =
        cap - self->sweep_next + 1 > S_SWEEP_ROWS ? self->sweep_next + S_SWEEP_ROWS : cap + 1;
    for (uint32_t id = self->sweep_next; id < end; id++) {
        const sp_mrow_t *r = sp_mirror_row(mirror, id);
        sp_minfo_t info;
        sp_tally_t tl;
        bool live;
        if (r == NULL || !sp_mirror_info(mirror, id, &info) ||
            !sp_mirror_tally(mirror, id, &tl, &live)) {
            continue;
        }
        self->sweep.sold += tl.sold;
        self->sweep.held += tl.held;
        self->sweep.revenue_cents += tl.sold * info.price_cents;
        self->sweep.expired += s_expired(self, info.expiry);
        self->sweep.sold_out += r->known && r->stock == 0;
        self->sweep.live = self->sweep.live && live;
    }
    self->sweep_next = end;
    if (end > cap) {
        self->totals = self->sweep;
        self->totals.valid = true;
        self->sweep_next = 0;
    }
}

/* ---------------------------------------------------------------------------
 * Frame parts
 */

/* Whether the broker's STATS stopped coming (its last word is old news). */
static bool s_broker_silent(const sp_shopstats_t *stats, uint64_t now)
{
    uint64_t silent_ns = (uint64_t)SP_MIRROR_SILENT_MS * SP_NS_PER_MS;
    return stats->valid && now > stats->received_ns && now - stats->received_ns > silent_ns;
}

/* Title line: what is shown, and the banners on the right. */
static void s_draw_title(const sp_console_t *self, const sp_shopstats_t *stats,
                         const sp_mstate_t *st, bool live_eos, uint64_t now)
{
    attr_t bar = s_pair(self, S_PAIR_TITLE, A_REVERSE);
    attr_t banner = s_pair(self, S_PAIR_BANNER, A_NORMAL) | A_BOLD;
    attrset(bar);
    mvhline(0, 0, ' ', COLS);
    attrset(A_NORMAL);
    int x = s_textf(self, 0, 0, COLS, bar | A_BOLD, " stockpipe %s ", self->title);
    if (stats->valid) {
        x += s_textf(self, 0, x, COLS - x, bar, " %s/%s  %llu products  %llu workers",
                     s_transport_name((uint32_t)stats->transport),
                     s_sync_name((uint32_t)stats->sync), (unsigned long long)stats->products,
                     (unsigned long long)stats->workers);
    }

    const char *banners[5];
    int nb = 0;
    if (!stats->valid) {
        banners[nb++] = "waiting for the broker";
    }
    if (st->stale) {
        banners[nb++] = st->snapshot_running ? "STALE: resyncing" : "STALE";
    }
    if (st->eos || live_eos) {
        banners[nb++] = "ENDED";
    }
    /* after the broker's goodbye its silence is expected, not news */
    if (!st->eos && !live_eos && s_broker_silent(stats, now)) {
        banners[nb++] = "BROKER SILENT";
    }
    if (self->paused) {
        banners[nb++] = "PAUSED";
    }
    int w = 0;
    for (int i = 0; i < nb; i++) {
        w += (int)strlen(banners[i]) + 3;
    }
    int bx = COLS - w > 0 ? COLS - w : 0;
    for (int i = 0; i < nb; i++) {
        bx += s_textf(self, 0, bx, COLS - bx, banner, " %s ", banners[i]);
        bx += s_text(self, 0, bx, 1, bar, " ");
    }
}

/* The counters, flowing over as many lines as the width needs (three at 80
 * columns): orders, latency, events, then the plumbing: queues, what was
 * dropped on the way, and what this monitor itself missed. */
static int s_draw_counters(const sp_console_t *self, int y, int y_end, const sp_shopstats_t *stats,
                           const sp_mstate_t *st, const sp_mrates_t *rates,
                           const sp_totals_t *totals)
{
    sp_flow_t f = {.y = y, .x = 0, .y_end = y_end, .cols = COLS};
    char buf[64];
    attr_t warn = s_pair(self, S_PAIR_LOW, A_NORMAL);

    snprintf(buf, sizeof buf, "%.0f (10s %.0f)", rates->orders_1s, rates->orders_10s);
    s_flow(self, &f, "orders/s", buf, A_NORMAL);
    s_flow_u64(self, &f, "accepted", stats->orders[SP_STATUS_ACCEPTED], A_NORMAL);
    s_flow_u64(self, &f, "out of stock", stats->orders[SP_STATUS_OUT_OF_STOCK], A_NORMAL);
    if (stats->lat_count == 0) {
        s_flow(self, &f, "latency p50", "-", A_NORMAL);
        s_flow(self, &f, "p99", "-", A_NORMAL);
    } else {
        sp_fmt_ns(buf, sizeof buf, stats->lat_p50_ns);
        s_flow(self, &f, "latency p50", buf, A_NORMAL);
        sp_fmt_ns(buf, sizeof buf, stats->lat_p99_ns);
        s_flow(self, &f, "p99", buf, A_NORMAL);
    }
    /* the shop's side: what was sold and for how much, what is held, what
     * is gone or past its date (a sweep's totals: "-" until the first) */
    if (totals->valid) {
        s_flow_u64(self, &f, totals->live ? "units sold" : "units sold (snapshot)", totals->sold,
                   A_NORMAL);
        s_fmt_money(buf, sizeof buf, totals->revenue_cents);
        s_flow(self, &f, "revenue", buf, A_NORMAL);
        s_flow_u64(self, &f, "held", totals->held, A_NORMAL);
        s_flow_u64(self, &f, "sold out", totals->sold_out, totals->sold_out ? warn : A_NORMAL);
        s_flow_u64(self, &f, "expired", totals->expired, totals->expired ? warn : A_NORMAL);
    } else {
        s_flow(self, &f, "units sold", "-", A_NORMAL);
        s_flow(self, &f, "revenue", "-", A_NORMAL);
    }
    snprintf(buf, sizeof buf, "%.0f", rates->events_1s);
    s_flow(self, &f, "events/s", buf, A_NORMAL);
    s_flow_u64(self, &f, "event seq", stats->event_seq, A_NORMAL);

    /* each transport names its own depths (zmq has no order queue: the
     * broker counts the batches it handed to workers and has not seen
     * answered; its results ride the producers' connections, uncounted) */
    const sp_transport_t *t = sp_transport_by_id((uint32_t)stats->transport);
    const char *depth_label = t != NULL ? t->depth_label : "order path";
    if (depth_label != NULL && stats->depth_cap[SP_HOP_ORDERS] > 0) {
        snprintf(buf, sizeof buf, "%llu/%llu", (unsigned long long)stats->depth[SP_HOP_ORDERS],
                 (unsigned long long)stats->depth_cap[SP_HOP_ORDERS]);
        s_flow(self, &f, depth_label, buf, A_NORMAL);
    } else if (depth_label != NULL) {
        s_flow_u64(self, &f, depth_label, stats->depth[SP_HOP_ORDERS], A_NORMAL);
    }
    if (t != NULL && t->reply_label != NULL) {
        s_flow_u64(self, &f, t->reply_label, stats->depth[SP_HOP_RESULTS], A_NORMAL);
    }
    static const char *const drop_names[SP_DROP_COUNT] = {"drops: invalid", "orders", "results",
                                                          "events"};
    for (int i = 0; i < SP_DROP_COUNT; i++) {
        s_flow_u64(self, &f, drop_names[i], stats->drops[i], stats->drops[i] ? warn : A_NORMAL);
    }
    s_flow_u64(self, &f, "monitor gaps", st->gaps, st->gaps ? warn : A_NORMAL);
    s_flow_u64(self, &f, "resyncs", st->resyncs, A_NORMAL);
    if (st->invalid > 0) {
        s_flow_u64(self, &f, "invalid msgs", st->invalid, warn);
    }
    s_flow_break(&f);
    return f.y < y_end ? f.y : y_end;
}

/* A sharded shop's shards, as many per line as fit: name, health (in the
 * low-stock colour unless up), products and id range. */
static int s_draw_shards(const sp_console_t *self, int y, int y_end)
{
    if (self->nshards == 0) {
        return y;
    }
    sp_flow_t f = {.y = y, .x = 0, .y_end = y_end, .cols = COLS};
    attr_t warn = s_pair(self, S_PAIR_LOW, A_BOLD);
    attr_t good = s_pair(self, S_PAIR_GOOD, A_NORMAL);
    for (unsigned i = 0; i < self->nshards; i++) {
        const sp_console_shard_t *sh = &self->shards[i];
        char label[80], value[96];
        snprintf(label, sizeof label, "shard %s", sh->name);
        if (sh->products == 0) {
            snprintf(value, sizeof value, "%s, no products yet", sh->health);
        } else {
            snprintf(value, sizeof value, "%s, %u products (ids %u-%u)", sh->health, sh->products,
                     sh->lo, sh->hi);
        }
        s_flow(self, &f, label, value, sh->ok ? good : warn);
    }
    s_flow_break(&f);
    return f.y < y_end ? f.y : y_end;
}

/* One cell per worker, as many per line as fit, on at most `max_lines`
 * lines; the last cell says how many did not fit.  Each says its state,
 * orders, restarts and heartbeat age; `unknown` (the broker is silent or
 * gone, so the states are its last word, not the present) shows the
 * state as unknown. */
static int s_draw_workers(const sp_console_t *self, int y, int max_lines,
                          const sp_shopstats_t *stats, bool unknown)
{
    uint32_t n = stats->workers <= SP_WORKERS_MAX ? (uint32_t)stats->workers : SP_WORKERS_MAX;
    if (!stats->valid || n == 0 || max_lines <= 0) {
        return y;
    }
    int per_line = COLS / S_WORKER_CELL_W > 0 ? COLS / S_WORKER_CELL_W : 1;
    uint32_t room = (uint32_t)per_line * (uint32_t)max_lines;
    uint32_t shown = n <= room ? n : room - 1;
    for (uint32_t i = 0; i < shown; i++) {
        const sp_mworker_t *w = &stats->worker[i + 1];
        int cy = y + (int)(i / (uint32_t)per_line);
        int cx = (int)(i % (uint32_t)per_line) * S_WORKER_CELL_W;
        attr_t sa = A_NORMAL;
        if (unknown) {
            sa = A_DIM;
        } else if (w->state == SP_WSTATE_RUNNING) {
            sa = s_pair(self, S_PAIR_GOOD, A_NORMAL);
        } else if (w->state == SP_WSTATE_SILENT) {
            sa = s_pair(self, S_PAIR_LOW, A_BOLD);
        } else if (w->state == SP_WSTATE_DEAD) {
            sa = s_pair(self, S_PAIR_SOLD_OUT, A_BOLD);
        }
        char hb[16];
        s_fmt_ms(hb, sizeof hb, w->hb_age_ms);
        int x = cx;
        x += s_textf(self, cy, x, S_WORKER_CELL_W, A_BOLD, "w%-2u ", i + 1);
        x += s_textf(self, cy, x, cx + S_WORKER_CELL_W - x, sa, "%-8s",
                     unknown ? "unknown" : s_wstate_name((uint32_t)w->state));
        x += s_textf(self, cy, x, cx + S_WORKER_CELL_W - x - 1, A_NORMAL, " %9llu orders",
                     (unsigned long long)w->orders);
        if (w->restarts > 0) {
            x +=
                s_textf(self, cy, x, cx + S_WORKER_CELL_W - x - 1, s_pair(self, S_PAIR_LOW, A_BOLD),
                        " restarts %llu", (unsigned long long)w->restarts);
        }
        s_textf(self, cy, x, cx + S_WORKER_CELL_W - x - 1, A_NORMAL, " hb %s", unknown ? "-" : hb);
    }
    if (shown < n) {
        int cy = y + (int)(shown / (uint32_t)per_line);
        int cx = (int)(shown % (uint32_t)per_line) * S_WORKER_CELL_W;
        s_textf(self, cy, cx, S_WORKER_CELL_W, A_BOLD, "+%u more workers", n - shown);
        shown++;
    }
    return y + (int)((shown + (uint32_t)per_line - 1) / (uint32_t)per_line);
}

/* Columns used by everything but the bar: the marker column and a space
 * after each column shown. */
static int s_cols_used(const sp_cols_t *c)
{
    const int w[] = {c->id_w,    c->name_w, c->cat_w,  c->weight_w, c->price_w, c->expiry_w,
                     c->stock_w, c->sold_w, c->held_w, c->rate_w,   c->eta_w};
    int used = 2;
    for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) {
        used += w[k] > 0 ? w[k] + 1 : 0;
    }
    return used;
}

/* Shrinks *w towards `floor` by what the screen lacks. */
static void s_shrink(const sp_cols_t *c, int *w, int floor)
{
    int lack = s_cols_used(c) + S_BAR_W_MIN - COLS;
    if (lack > 0 && *w > floor) {
        *w -= lack < *w - floor ? lack : *w - floor;
    }
}

/* Grows *w towards `ceiling` out of *extra. */
static void s_grow(int *w, int ceiling, int *extra)
{
    if (*w > 0 && *w < ceiling) {
        int g = *extra < ceiling - *w ? *extra : ceiling - *w;
        *w += g;
        *extra -= g;
    }
}

/* Column layout for the current width.  A narrow terminal first narrows the
 * name and the category, then loses the least needed columns (weight,
 * expiry, held, category, price, sells-out time, rate, sold: an expired
 * product keeps its marker), then narrows the name further; a wide one
 * gives the stock bar room first, then the name and the category, then the
 * bar again.  A 120-column terminal keeps every column for catalogues of up
 * to ten million ids. */
static sp_cols_t s_layout(uint32_t capacity)
{
    sp_cols_t c = {.name_w = S_NAME_W,
                   .cat_w = S_CAT_W,
                   .weight_w = S_WEIGHT_W,
                   .price_w = S_PRICE_W,
                   .expiry_w = S_EXPIRY_W,
                   .stock_w = S_STOCK_W,
                   .sold_w = S_SOLD_W,
                   .held_w = S_HELD_W,
                   .rate_w = S_RATE_W,
                   .eta_w = S_ETA_W};
    c.id_w = 2;
    for (uint32_t v = capacity; v >= 10; v /= 10) {
        c.id_w++;
    }
    s_shrink(&c, &c.name_w, S_NAME_W_SOFT);
    s_shrink(&c, &c.cat_w, S_CAT_W_SOFT);
    int *drop[] = {&c.weight_w, &c.expiry_w, &c.held_w, &c.cat_w,
                   &c.price_w,  &c.eta_w,    &c.rate_w, &c.sold_w};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
        if (s_cols_used(&c) + S_BAR_W_MIN > COLS) {
            *drop[i] = 0;
        }
    }
    s_shrink(&c, &c.name_w, S_NAME_W_MIN);

    int room = COLS - s_cols_used(&c);
    c.bar_w = room > 0 ? room : 0;
    if (c.bar_w > S_BAR_W_PREF) {
        int extra = c.bar_w - S_BAR_W_PREF;
        s_grow(&c.name_w, S_NAME_W_MAX, &extra);
        s_grow(&c.cat_w, S_CAT_W_MAX, &extra);
        c.bar_w = S_BAR_W_PREF + extra;
    }

    int x = 2; /* after the marker column and its space */
    int *pos[] = {&c.id_x,    &c.name_x, &c.cat_x,  &c.weight_x, &c.price_x, &c.expiry_x,
                  &c.stock_x, &c.sold_x, &c.held_x, &c.rate_x,   &c.eta_x,   &c.bar_x};
    const int *wid[] = {&c.id_w,    &c.name_w, &c.cat_w,  &c.weight_w, &c.price_w, &c.expiry_w,
                        &c.stock_w, &c.sold_w, &c.held_w, &c.rate_w,   &c.eta_w,   &c.bar_w};
    for (size_t k = 0; k < sizeof pos / sizeof pos[0]; k++) {
        *pos[k] = x;
        x += *wid[k] > 0 ? *wid[k] + 1 : 0;
    }
    return c;
}

static void s_draw_table_head(const sp_console_t *self, int y, const sp_cols_t *c)
{
    attr_t a = A_BOLD | A_UNDERLINE;
    attrset(a);
    mvhline(y, 0, ' ', COLS);
    s_right(self, y, c->id_x, c->id_w, a, "ID");
    s_text(self, y, c->name_x, c->name_w, a, "name");
    if (c->cat_w > 0) {
        s_text(self, y, c->cat_x, c->cat_w, a, "category");
    }
    if (c->weight_w > 0) {
        s_right(self, y, c->weight_x, c->weight_w, a, "weight");
    }
    if (c->price_w > 0) {
        s_right(self, y, c->price_x, c->price_w, a, "price");
    }
    if (c->expiry_w > 0) {
        s_text(self, y, c->expiry_x, c->expiry_w, a, "expiry");
    }
    s_right(self, y, c->stock_x, c->stock_w, a, "stock");
    if (c->sold_w > 0) {
        s_right(self, y, c->sold_x, c->sold_w, a, "sold");
    }
    if (c->held_w > 0) {
        s_right(self, y, c->held_x, c->held_w, a, "held");
    }
    if (c->rate_w > 0) {
        s_right(self, y, c->rate_x, c->rate_w, a, "out");
    }
    if (c->eta_w > 0) {
        s_right(self, y, c->eta_x, c->eta_w, a, "sells out");
    }
    s_text(self, y, c->bar_x, c->bar_w, a, "left");
}

/* One product row.  `t` is the frame's clock (the pause's when paused). */
static void s_draw_row(const sp_console_t *self, int y, const sp_cols_t *c, const sp_mrow_t *r,
                       const sp_minfo_t *info, const sp_tally_t *tally, uint64_t t)
{
    bool sold_out = r->known && r->stock == 0;
    bool low = false;
    if (r->known && !sold_out) {
        low = self->low_stock > 0
                  ? r->stock <= self->low_stock
                  : (uint64_t)r->stock * 100 <= (uint64_t)info->initial_stock * S_LOW_PERCENT;
    }
    uint64_t hl_ns = (uint64_t)SP_CONSOLE_HIGHLIGHT_MS * SP_NS_PER_MS;
    bool changed = r->changed_ns != 0 && t >= r->changed_ns && t - r->changed_ns < hl_ns;

    attr_t a = A_NORMAL;
    if (self->colors) {
        if (changed) {
            a = COLOR_PAIR(S_PAIR_CHANGED) | A_BOLD;
        } else if (sold_out) {
            a = COLOR_PAIR(S_PAIR_SOLD_OUT) | A_BOLD;
        } else if (low) {
            a = COLOR_PAIR(S_PAIR_LOW);
        }
    } else {
        a = (changed ? A_REVERSE : A_NORMAL) | (sold_out ? A_BOLD : A_NORMAL);
    }
    if (changed) {
        attrset(a);
        mvhline(y, 0, ' ', c->bar_x);
    }
    /* the marker column says it in any terminal: X sold out, E expired, ! low */
    bool expired = s_expired(self, info->expiry);
    s_text(self, y, 0, 1, a, sold_out ? "X" : expired ? "E" : low ? "!" : " ");

    char buf[32];
    snprintf(buf, sizeof buf, "%u", info->id);
    s_right(self, y, c->id_x, c->id_w, a, buf);
    s_text(self, y, c->name_x, c->name_w, a, info->name);
    if (c->cat_w > 0) {
        s_text(self, y, c->cat_x, c->cat_w, a, info->category);
    }
    if (c->weight_w > 0) {
        s_fmt_weight(buf, sizeof buf, info->weight_g);
        s_right(self, y, c->weight_x, c->weight_w, a, buf);
    }
    if (c->price_w > 0) {
        s_fmt_price(buf, sizeof buf, info->price_cents);
        s_right(self, y, c->price_x, c->price_w, a, buf);
    }
    if (c->expiry_w > 0) {
        s_fmt_expiry(buf, sizeof buf, info->expiry);
        attr_t ea = expired && !changed ? s_pair(self, S_PAIR_SOLD_OUT, A_UNDERLINE) : a;
        s_text(self, y, c->expiry_x, c->expiry_w, ea, buf);
    }
    if (r->known) {
        s_fmt_count(buf, sizeof buf, r->stock, c->stock_w);
    } else {
        snprintf(buf, sizeof buf, "?");
    }
    s_right(self, y, c->stock_x, c->stock_w, a, buf);
    if (c->sold_w > 0) {
        s_fmt_count(buf, sizeof buf, tally->sold, c->sold_w);
        s_right(self, y, c->sold_x, c->sold_w, a, buf);
    }
    if (c->held_w > 0) {
        s_fmt_count(buf, sizeof buf, tally->held, c->held_w);
        s_right(self, y, c->held_x, c->held_w, a, tally->held ? buf : "-");
    }
    double rate = sp_mirror_out_rate(r, t);
    if (c->rate_w > 0) {
        s_fmt_rate(buf, sizeof buf, rate);
        s_right(self, y, c->rate_x, c->rate_w, a, buf);
    }
    if (c->eta_w > 0) {
        if (r->known && r->stock > 0) {
            s_fmt_eta(buf, sizeof buf, r->stock, rate);
        } else {
            snprintf(buf, sizeof buf, r->known ? "sold out" : "?");
        }
        s_right(self, y, c->eta_x, c->eta_w, a, buf);
    }

    /* The bar's full width is the larger of the initial and the current
     * stock: products differ by orders of magnitude, so a scale shared by all
     * rows would leave most bars empty, while this one reads "how much of
     * what it started with is left" and stays full after a restock above it.
     * Any stock at all shows at least one cell, so only sold out is empty. */
    if (c->bar_w > 0 && r->known) {
        uint64_t full = info->initial_stock > r->stock ? info->initial_stock : r->stock;
        uint64_t cells = full > 0 ? (uint64_t)r->stock * (uint64_t)c->bar_w / full : 0;
        if (cells == 0 && r->stock > 0) {
            cells = 1;
        }
        /* drawn with a character, not only a colour: a terminal without
         * colour (or NO_COLOR) still shows the bar */
        short pair = (short)(sold_out ? S_PAIR_SOLD_OUT : low ? S_PAIR_LOW : S_PAIR_BAR);
        attr_t ba = self->colors ? COLOR_PAIR(pair) : A_NORMAL;
        if (self->utf8) {
            for (int k = 0; k < (int)cells; k++) {
                s_text(self, y, c->bar_x + k, 1, ba, "\u2588"); /* full block */
            }
        } else {
            attrset(ba);
            mvhline(y, c->bar_x, '#', (int)cells);
        }
        attrset(A_NORMAL);
    }
}

static void s_draw_help(const sp_console_t *self)
{
    static const char *const text[] = {
        "q              quit",
        "? or h         show / hide this help",
        "p or space     pause: freeze the view (the feed keeps running)",
        "i  s  a        sort by id / stock / recent activity",
        "/              filter by name or category",
        "                 Enter applies, Esc clears, Backspace edits",
        "arrows         scroll a line",
        "PgUp PgDn      scroll a page",
        "Home End       first / last rows",
        "",
        "X  sold out (red)   E  expired   !  low stock (yellow)",
        "highlighted: changed in the last second",
        "sold, held: units; out: units leaving stock a second (10 s",
        "  average: purchases and holds); sells out: stock / out",
        "bar: stock against the initial stock (or current, if more)",
    };
    int n = (int)(sizeof text / sizeof text[0]);
    int w = 0;
    for (int i = 0; i < n; i++) {
        w = (int)strlen(text[i]) > w ? (int)strlen(text[i]) : w;
    }
    int bw = w + 4 < COLS ? w + 4 : COLS;
    int bh = n + 4 < LINES ? n + 4 : LINES;
    int y0 = (LINES - bh) / 2, x0 = (COLS - bw) / 2;
    attrset(A_NORMAL);
    for (int y = y0; y < y0 + bh; y++) {
        mvhline(y, x0, ' ', bw);
    }
    mvhline(y0, x0, ACS_HLINE, bw);
    mvhline(y0 + bh - 1, x0, ACS_HLINE, bw);
    mvvline(y0, x0, ACS_VLINE, bh);
    mvvline(y0, x0 + bw - 1, ACS_VLINE, bh);
    mvaddch(y0, x0, ACS_ULCORNER);
    mvaddch(y0, x0 + bw - 1, ACS_URCORNER);
    mvaddch(y0 + bh - 1, x0, ACS_LLCORNER);
    mvaddch(y0 + bh - 1, x0 + bw - 1, ACS_LRCORNER);
    s_text(self, y0, x0 + 2, bw - 4, A_BOLD, " keys ");
    for (int i = 0; i < n && 2 + i < bh - 1; i++) {
        s_text(self, y0 + 2 + i, x0 + 2, bw - 4, A_NORMAL, text[i]);
    }
}

/* Bottom line: the filter prompt while typing, else where we are. */
static void s_draw_status(sp_console_t *self, size_t n)
{
    int y = LINES - 1;
    if (self->editing) {
        int x = s_text(self, y, 0, COLS, A_BOLD, "filter: ");
        x += s_text(self, y, x, COLS - x - 1, A_NORMAL, self->edit);
        s_text(self, y, x, 1, A_REVERSE, " "); /* the cursor */
        return;
    }
    char range[64];
    if (n == 0) {
        snprintf(range, sizeof range, "no rows");
    } else {
        size_t last = self->top + self->page < n ? self->top + self->page : n;
        snprintf(range, sizeof range, "rows %zu-%zu of %zu", self->top + 1, last, n);
    }
    int x = s_textf(self, y, 0, COLS, A_NORMAL, " sort: %s   ", s_sort_name(self->sort));
    if (self->filter[0] != '\0') {
        x += s_text(self, y, x, COLS - x, A_NORMAL, "filter: ");
        x += s_text(self, y, x, COLS - x, A_BOLD, self->filter);
        x += s_text(self, y, x, COLS - x, A_NORMAL, "   ");
    }
    x += s_textf(self, y, x, COLS - x, A_NORMAL, "%s   ", range);
    if (self->oom) {
        x += s_text(self, y, x, COLS - x, s_pair(self, S_PAIR_SOLD_OUT, A_BOLD),
                    "out of memory: rows not shown   ");
    }
    s_text(self, y, x, COLS - x, A_DIM, "? help  q quit");
}

static void s_clamp(sp_console_t *self, size_t n)
{
    size_t max_top = n > self->page ? n - self->page : 0;
    if (self->top > max_top) {
        self->top = max_top;
    }
}

void sp_console_draw(sp_console_t *self, const sp_mirror_t *mirror, uint64_t now_ns)
{
    s_index_update(self, mirror, now_ns);
    self->today = s_today();
    s_sweep(self, mirror);
    size_t n = self->view != NULL ? self->n_match : 0;

    const sp_shopstats_t *stats = &self->f_stats;
    const sp_mstate_t *st = &self->f_state;
    const sp_mrates_t *rates = &self->f_rates;
    const sp_totals_t *totals = &self->f_totals;
    sp_mrates_t live_rates;
    uint64_t t = self->frozen_ns;
    if (!self->paused) {
        totals = &self->totals;
        stats = sp_mirror_stats(mirror);
        st = sp_mirror_state(mirror);
        sp_mirror_rates(mirror, now_ns, &live_rates);
        rates = &live_rates;
        t = now_ns;
    }

    erase();
    if (LINES < S_MIN_LINES || COLS < S_MIN_COLS) {
        s_text(self, 0, 0, COLS, A_BOLD, "terminal too small");
        wnoutrefresh(stdscr);
        doupdate();
        return;
    }
    /* the end of the stream is shown even while paused: nothing more will come */
    bool eos = sp_mirror_state(mirror)->eos;
    s_draw_title(self, stats, st, eos, t);
    int y = s_draw_counters(self, 1, LINES - 3, stats, st, rates, totals);
    y = s_draw_shards(self, y, LINES - 3);
    y = s_draw_workers(self, y, (LINES - 2 - y) / S_WORKER_SHARE, stats,
                       st->eos || eos || s_broker_silent(stats, t));

    sp_cols_t c = s_layout(self->cap);
    s_draw_table_head(self, y, &c);
    int first = y + 1;
    int last = LINES - 2; /* the status line is LINES - 1 */
    self->page = last >= first ? (size_t)(last - first + 1) : 0;
    s_clamp(self, n);
    for (int row = 0; row < (int)self->page && self->top + (size_t)row < n; row++) {
        uint32_t id = self->view[self->top + (size_t)row];
        sp_mrow_t r;
        sp_minfo_t info;
        sp_tally_t tally;
        if (s_row_data(self, mirror, id, &r, &info, &tally)) {
            s_draw_row(self, first + row, &c, &r, &info, &tally, t);
        } else {
            /* gone since the index was built; the next rebuild drops it */
            s_textf(self, first + row, c.id_x, COLS - c.id_x, A_DIM, "%*u -", c.id_w, id);
        }
    }
    s_draw_status(self, n);
    if (self->help) {
        s_draw_help(self);
    }
    wnoutrefresh(stdscr);
    doupdate();
}

/* ---------------------------------------------------------------------------
 * Keys
 */

/* Any change of what is listed: back to the top, and while paused a fresh
 * picture, so the frozen numbers match the new order. */
static void s_view_changed(sp_console_t *self, const sp_mirror_t *mirror, uint64_t now,
                           bool refilter)
{
    self->match_dirty |= refilter;
    self->order_dirty = true;
    self->top = 0;
    if (self->paused) {
        s_freeze(self, mirror, now);
    }
}

static void s_edit_key(sp_console_t *self, const sp_mirror_t *mirror, uint64_t now, int ch)
{
    if (ch == S_KEY_ESC) {
        self->editing = false;
        self->filter[0] = '\0';
        s_view_changed(self, mirror, now, true);
    } else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
        /* drop a character cut short (its lead byte fitted, the rest not) */
        size_t len = self->edit_len, k = len;
        while (k > 0 && ((unsigned char)self->edit[k - 1] & 0xC0) == 0x80) {
            k--;
        }
        if (k > 0 && s_utf8_len((unsigned char)self->edit[k - 1]) > len - k + 1) {
            self->edit_len = k - 1;
        }
        self->edit[self->edit_len] = '\0';
        self->editing = false;
        memcpy(self->filter, self->edit, self->edit_len + 1);
        s_view_changed(self, mirror, now, true);
    } else if (ch == KEY_BACKSPACE || ch == S_KEY_DEL || ch == S_KEY_CTRL_H) {
        while (self->edit_len > 0 &&
               ((unsigned char)self->edit[self->edit_len - 1] & 0xC0) == 0x80) {
            self->edit_len--;
        }
        if (self->edit_len > 0) {
            self->edit_len--;
        }
        self->edit[self->edit_len] = '\0';
    } else if (ch == S_KEY_CTRL_U) {
        self->edit_len = 0;
        self->edit[0] = '\0';
    } else if (ch >= ' ' && ch <= 0xFF) {
        /* bytes of one UTF-8 character come one getch at a time: a
         * character that does not fit whole is dropped whole */
        unsigned char c = (unsigned char)ch;
        if ((c & 0xC0) == 0x80 && self->edit_skip > 0) {
            self->edit_skip--;
            return;
        }
        self->edit_skip = 0;
        unsigned len = s_utf8_len(c);
        if (len > 1 && self->edit_len + len >= sizeof self->edit) {
            self->edit_skip = len - 1;
            return;
        }
        if (self->edit_len + 1 < sizeof self->edit) {
            self->edit[self->edit_len++] = (char)c;
            self->edit[self->edit_len] = '\0';
        }
    }
}

bool sp_console_keys(sp_console_t *self, const sp_mirror_t *mirror, uint64_t now_ns)
{
    size_t n = self->view != NULL ? self->n_match : 0;
    for (int ch = getch(); ch != ERR; ch = getch()) {
        if (ch == KEY_RESIZE) {
            /* ncurses has resized its screens; repaint everything once (the
             * draw works out the new page size and clamps the scroll) */
            clearok(curscr, TRUE);
            continue;
        }
        if (self->editing) {
            s_edit_key(self, mirror, now_ns, ch);
            continue;
        }
        switch (ch) {
        case 'q':
        case 'Q':
            return false;
        case '?':
        case 'h':
            self->help = !self->help;
            break;
        case S_KEY_ESC:
            self->help = false;
            break;
        case 'p':
        case ' ':
            self->paused = !self->paused;
            if (self->paused) {
                s_freeze(self, mirror, now_ns);
            } else {
                /* catch up at once: the order may be far behind */
                self->match_dirty = true;
            }
            break;
        case 'i':
        case 's':
        case 'a': {
            sp_sort_t sort = ch == 'i' ? SP_SORT_ID : ch == 's' ? SP_SORT_STOCK : SP_SORT_ACTIVITY;
            if (sort != self->sort) {
                self->sort = sort;
                s_view_changed(self, mirror, now_ns, false);
            }
            break;
        }
        case '/':
            self->editing = true;
            self->edit_skip = 0;
            self->edit_len = strlen(self->filter);
            memcpy(self->edit, self->filter, self->edit_len + 1);
            break;
        case KEY_UP:
            self->top = self->top > 0 ? self->top - 1 : 0;
            break;
        case KEY_DOWN:
            self->top++;
            break;
        case KEY_PPAGE:
            self->top = self->top > self->page ? self->top - self->page : 0;
            break;
        case KEY_NPAGE:
            self->top += self->page;
            break;
        case KEY_HOME:
            self->top = 0;
            break;
        case KEY_END:
            self->top = SIZE_MAX; /* the draw clamps it to the last page */
            break;
        default:
            break;
        }
        /* with a rebuild pending, n is the old count: the draw clamps */
        if (!self->match_dirty && !self->order_dirty) {
            s_clamp(self, n);
        }
    }
    return true;
}

/* ---------------------------------------------------------------------------
 * Life cycle
 */

void sp_console_shards(sp_console_t *self, const sp_console_shard_t *shards, unsigned n)
{
    self->nshards = n < SP_CONSOLE_SHARDS_MAX ? n : SP_CONSOLE_SHARDS_MAX;
    memcpy(self->shards, shards, self->nshards * sizeof *shards);
}

int sp_console_open(sp_console_t **out, const sp_console_cfg_t *cfg)
{
    *out = NULL;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        return -ENOTTY;
    }
    sp_console_t *self = calloc(1, sizeof *self);
    if (self == NULL) {
        return -ENOMEM;
    }
    /* names are UTF-8 and ncursesw needs the locale to print them; numbers
     * stay in the C locale so nothing else the process prints changes */
    /* on failure the C locale stays: plain ASCII drawing, still correct */
    (void)setlocale(LC_ALL, "");
    (void)setlocale(LC_NUMERIC, "C");
    self->utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    if (cfg != NULL) {
        self->low_stock = cfg->low_stock;
        /* cut at a character boundary: s_text stops at the first bad byte */
        snprintf(self->title, sizeof self->title, "%s", cfg->title != NULL ? cfg->title : "");
    }
    /* newterm, unlike initscr, returns NULL instead of exiting on failure */
    self->screen = newterm(NULL, stdout, stdin);
    if (self->screen == NULL) {
        free(self);
        return -ENOTTY;
    }
    set_term(self->screen);
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    leaveok(stdscr, TRUE);
    set_escdelay(S_ESC_DELAY_MS);
    curs_set(0);
    /* NO_COLOR (no-color.org): set to anything non-empty, no colours */
    const char *no_color = getenv("NO_COLOR");
    if ((no_color == NULL || no_color[0] == '\0') && has_colors() && start_color() == OK) {
        short bg = use_default_colors() == OK ? -1 : COLOR_BLACK;
        init_pair(S_PAIR_SOLD_OUT, COLOR_RED, bg);
        init_pair(S_PAIR_LOW, COLOR_YELLOW, bg);
        init_pair(S_PAIR_CHANGED, COLOR_BLACK, COLOR_CYAN);
        init_pair(S_PAIR_BANNER, COLOR_WHITE, COLOR_RED);
        init_pair(S_PAIR_BAR, COLOR_GREEN, bg);
        init_pair(S_PAIR_GOOD, COLOR_GREEN, bg);
        init_pair(S_PAIR_TITLE, COLOR_BLACK, COLOR_WHITE);
        self->colors = true;
    }
    self->sort = SP_SORT_ID;
    self->match_dirty = true;
    *out = self;
    return 0;
}

void sp_console_close(sp_console_t **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    sp_console_t *self = *self_p;
    endwin();
    delscreen(self->screen);
    s_index_free(self);
    free(self->frozen);
    free(self);
    *self_p = NULL;
}

int sp_console_fd(const sp_console_t *self)
{
    (void)self;
    return STDIN_FILENO;
}
