/*
 * sp_catalogue — the product catalogue: an RFC 4180 reader and writer for the
 * shop's CSV, and the heap array the shared table is built from.
 *
 * Parsing is one forward pass over the whole document held in memory.  Each
 * record is first cut into cells (quotes undone into a per-record scratch
 * buffer no larger than SP_CSV_LINE_MAX, which is also the longest record we
 * accept), then its seven cells are converted and validated in column order.
 * Splitting syntax from values keeps the quote state machine small and lets
 * every value check be a plain function of (bytes, length) that the writer
 * reuses to refuse products it could not read back.
 *
 * Line numbers count physical lines, so a quoted line break moves every later
 * record down; an error always names the line its record starts on.  No
 * column can actually hold a line break (text cells refuse control
 * characters), but the reader still cuts such records correctly so that the
 * error names the right cell and the right line.
 *
 * Ids are bounded by SP_PRODUCT_ID_MAX (2^24), so duplicate detection is a
 * 2 MiB bitmap: one bit test per record, independent of catalogue size.  The
 * line each record started on is kept beside the products so a duplicate can
 * name where its id first appeared.
 *
 * Spreadsheet formula neutralisation has to survive a round trip.  The writer
 * prefixes a single quote to a text cell that starts with a formula trigger
 * (= + - @ tab CR) and also to one that already looks protected (one or more
 * quotes followed by a trigger); the reader removes exactly one leading quote
 * from a cell that looks protected.  Together the two are inverses, and a
 * cell such as "'Tis" is never touched.
 *
 * Everything is all-or-nothing: products of the document being parsed are
 * staged past the committed count and only counted on success; any failure
 * empties the catalogue, as the header promises.
 */
#include "sp_catalogue.h"

#include "sp_error.h"
#include "sp_grow.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Products reserved on the first append; the array doubles from there. */
#define S_INITIAL_CAPACITY 1024u

/* Bytes of a file read per fread() when its size is unknown (pipes, /proc). */
#define S_READ_CHUNK 65536u

/* Bytes of an offending cell quoted back in an error message. */
#define S_SHOW_MAX      40u
#define S_SHOW_ELLIPSIS "..."
#define S_SHOW_BUF      (S_SHOW_MAX + sizeof(S_SHOW_ELLIPSIS))

/* Longest label for a column past the seventh ("column 4096"). */
#define S_LABEL_BUF 24u

/* The UTF-8 byte order mark some editors put at the start of a file. */
#define S_BOM     "\xEF\xBB\xBF"
#define S_BOM_LEN (sizeof(S_BOM) - 1u)

/* Bits per word of the duplicate-id bitmap. */
#define S_BITMAP_WORD_BITS 64u
#define S_BITMAP_WORDS     (SP_PRODUCT_ID_MAX / S_BITMAP_WORD_BITS + 1u)

/* Decimal arithmetic. */
#define S_RADIX           10u
#define S_WEIGHT_DECIMALS 3 /* kilograms to the gram */
#define S_PRICE_DECIMALS  2 /* currency units to the cent */

/* Dates: YYYY-MM-DD in text, YYYYMMDD as a number. */
#define S_DATE_LEN          10u
#define S_DATE_YEAR_DIGITS  4u
#define S_DATE_PART_DIGITS  2u
#define S_DATE_MONTH_AT     5u
#define S_DATE_DAY_AT       8u
#define S_DATE_SEPARATOR    '-'
#define S_YEAR_MIN          1900u
#define S_YEAR_MAX          9999u
#define S_MONTHS            12u
#define S_FEBRUARY          2u
#define S_YEAR_SCALE        10000u
#define S_MONTH_SCALE       100u
#define S_LEAP_EVERY        4u
#define S_LEAP_SKIP_CENTURY 100u
#define S_LEAP_KEEP_CENTURY 400u

/* Control characters: C0 (below space), DEL, and C1 (U+0080 .. U+009F). */
#define S_ASCII_SPACE 0x20u
#define S_ASCII_DEL   0x7Fu
#define S_C1_FIRST    0x80u
#define S_C1_LAST     0x9Fu

/* UTF-8 lead and continuation byte ranges, RFC 3629 section 4. */
#define S_UTF8_ASCII_END      0x80u
#define S_UTF8_CONT_LO        0x80u
#define S_UTF8_CONT_HI        0xBFu
#define S_UTF8_CONT_MASK      0x3Fu
#define S_UTF8_CONT_BITS      6u
#define S_UTF8_LEAD2_LO       0xC2u /* 0xC0, 0xC1 could only start overlongs */
#define S_UTF8_LEAD2_HI       0xDFu
#define S_UTF8_LEAD2_MASK     0x1Fu
#define S_UTF8_LEAD3_LO       0xE0u
#define S_UTF8_LEAD3_HI       0xEFu
#define S_UTF8_LEAD3_MASK     0x0Fu
#define S_UTF8_E0_CONT_LO     0xA0u /* E0 80..9F would be overlong */
#define S_UTF8_SURROGATE_LEAD 0xEDu
#define S_UTF8_ED_CONT_HI     0x9Fu /* ED A0..BF would be a surrogate */
#define S_UTF8_LEAD4_LO       0xF0u
#define S_UTF8_LEAD4_HI       0xF4u /* F5.. would pass U+10FFFF */
#define S_UTF8_LEAD4_MASK     0x07u
#define S_UTF8_F0_CONT_LO     0x90u /* F0 80..8F would be overlong */
#define S_UTF8_F4_CONT_HI     0x8Fu /* F4 90.. would pass U+10FFFF */

/* Longest row write_row can produce: every text byte doubled, plus quotes,
 * protection marks, the numbers and the separators. */
#define S_ROW_MAX (2u * (SP_NAME_MAX + SP_CATEGORY_MAX) + 128u)

/* Column positions, 0-based, in SP_CSV_HEADER order. */
enum {
    S_COL_ID,
    S_COL_NAME,
    S_COL_CATEGORY,
    S_COL_WEIGHT,
    S_COL_PRICE,
    S_COL_EXPIRY,
    S_COL_STOCK,
};

static const char *const s_column_names[SP_CSV_COLUMNS] = {
    "id_reg", "name", "category", "weight", "price", "expiry", "stock",
};

_Static_assert(S_COL_STOCK + 1 == SP_CSV_COLUMNS, "one column constant per CSV column");
_Static_assert(sizeof(SP_CSV_HEADER) - 1u < SP_CSV_LINE_MAX, "the header fits in a record");

struct sp_catalogue {
    sp_product_t *products; /* count committed, then the document being parsed */
    long *lines;            /* line each product's record started on */
    size_t count;
    size_t capacity;
    uint32_t max_id;
};

/* One record cut into cells.  Cell bytes live in `cells`, quotes undone. */
typedef struct {
    const char *end; /* one past the document */
    long line;       /* current physical line, 1-based */
    int columns;     /* cells seen in the record, including any past the 7th */
    size_t off[SP_CSV_COLUMNS];
    size_t len[SP_CSV_COLUMNS];
    char cells[SP_CSV_LINE_MAX];
} s_record_t;

/* Outcome of checking a text cell. */
typedef enum {
    S_TEXT_OK,
    S_TEXT_EMPTY,
    S_TEXT_BAD_UTF8,
    S_TEXT_CONTROL,
    S_TEXT_TOO_LONG,
} s_text_status_t;

/* Outcome of reading a number or a date. */
typedef enum {
    S_NUM_OK,
    S_NUM_SYNTAX,    /* not digits[.digits] (or not YYYY-MM-DD) */
    S_NUM_DECIMALS,  /* more decimals than the unit allows */
    S_NUM_RANGE,     /* above the maximum (or year out of range) */
    S_NUM_NOT_A_DAY, /* well-formed date that is not on the calendar */
} s_num_status_t;

/* ------------------------------------------------------------------ errors */

/* Fills *err and returns code, so a failure is one `return s_fail(...)`. */
static int s_fail(sp_csv_error_t *err, int code, long line, int field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int s_fail(sp_csv_error_t *err, int code, long line, int field, const char *fmt, ...)
{
    err->line = line;
    err->field = field;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);
    return code;
}

/* Name of a 1-based column for messages; columns past the seventh are only
 * numbered (they exist only in records that have too many). */
static const char *s_label(int field, char buf[S_LABEL_BUF])
{
    if (field >= 1 && field <= SP_CSV_COLUMNS) {
        return s_column_names[field - 1];
    }
    snprintf(buf, S_LABEL_BUF, "column %d", field);
    return buf;
}

/* --------------------------------------------------------------- UTF-8 */

/*
 * Decodes one UTF-8 sequence at s (len >= 1 bytes available).  Returns its
 * length, or 0 when the bytes are not well-formed UTF-8: stray continuation
 * bytes, overlong forms, surrogates, code points past U+10FFFF, or a
 * sequence cut short.  The per-lead bounds on the second byte are what make
 * the overlong and surrogate checks exact without decoding first.
 */
static size_t s_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned lead = s[0];
    if (lead < S_UTF8_ASCII_END) {
        *cp = lead;
        return 1;
    }
    size_t more;
    uint32_t value;
    unsigned lo = S_UTF8_CONT_LO;
    unsigned hi = S_UTF8_CONT_HI;
    if (lead >= S_UTF8_LEAD2_LO && lead <= S_UTF8_LEAD2_HI) {
        more = 1;
        value = lead & S_UTF8_LEAD2_MASK;
    } else if (lead >= S_UTF8_LEAD3_LO && lead <= S_UTF8_LEAD3_HI) {
        more = 2;
        value = lead & S_UTF8_LEAD3_MASK;
        if (lead == S_UTF8_LEAD3_LO) {
            lo = S_UTF8_E0_CONT_LO;
        } else if (lead == S_UTF8_SURROGATE_LEAD) {
            hi = S_UTF8_ED_CONT_HI;
        }
    } else if (lead >= S_UTF8_LEAD4_LO && lead <= S_UTF8_LEAD4_HI) {
        more = 3;
        value = lead & S_UTF8_LEAD4_MASK;
        if (lead == S_UTF8_LEAD4_LO) {
            lo = S_UTF8_F0_CONT_LO;
        } else if (lead == S_UTF8_LEAD4_HI) {
            hi = S_UTF8_F4_CONT_HI;
        }
    } else {
        return 0;
    }
    if (len <= more) {
        return 0;
    }
    for (size_t i = 1; i <= more; i++) {
        unsigned byte = s[i];
        if (byte < lo || byte > hi) {
            return 0;
        }
        lo = S_UTF8_CONT_LO;
        hi = S_UTF8_CONT_HI;
        value = (value << S_UTF8_CONT_BITS) | (byte & S_UTF8_CONT_MASK);
    }
    *cp = value;
    return more + 1;
}

static bool s_is_control(uint32_t cp)
{
    return cp < S_ASCII_SPACE || cp == S_ASCII_DEL || (cp >= S_C1_FIRST && cp <= S_C1_LAST);
}

/*
 * Copies at most S_SHOW_MAX bytes of a cell into dst for quoting in a
 * message.  Printable UTF-8 is kept; control characters and invalid bytes
 * become '?', so a message is always printable, valid UTF-8 whatever the
 * input; a cut is marked with an ellipsis and never splits a character.
 */
static const char *s_show(char dst[S_SHOW_BUF], const char *s, size_t len)
{
    size_t in = 0;
    size_t out = 0;
    while (in < len) {
        uint32_t cp = 0;
        size_t n = s_utf8_decode((const unsigned char *)s + in, len - in, &cp);
        bool printable = n > 0 && !s_is_control(cp);
        size_t emit = printable ? n : 1;
        if (out + emit > S_SHOW_MAX) {
            memcpy(dst + out, S_SHOW_ELLIPSIS, sizeof(S_SHOW_ELLIPSIS));
            return dst;
        }
        if (printable) {
            memcpy(dst + out, s + in, n);
        } else {
            dst[out] = '?';
        }
        out += emit;
        in += n > 0 ? n : 1;
    }
    dst[out] = '\0';
    return dst;
}

/* ------------------------------------------------------------ cell values */

/*
 * Checks a text cell: non-empty, well-formed UTF-8 without control
 * characters, and shorter than cap bytes (cap counts the NUL).  *at gets the
 * 0-based offset of the first bad byte for the encoding problems.
 */
static s_text_status_t s_check_text(const char *s, size_t len, size_t cap, size_t *at)
{
    if (len == 0) {
        return S_TEXT_EMPTY;
    }
    size_t i = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = s_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (n == 0) {
            *at = i;
            return S_TEXT_BAD_UTF8;
        }
        if (s_is_control(cp)) {
            *at = i;
            return S_TEXT_CONTROL;
        }
        i += n;
    }
    return len < cap ? S_TEXT_OK : S_TEXT_TOO_LONG;
}

/* First characters a spreadsheet would take as the start of a formula. */
static bool s_is_formula_trigger(char c)
{
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

/* True when a cell is one or more single quotes followed by a trigger: the
 * shape the writer produces and the reader undoes by one quote. */
static bool s_looks_protected(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] == '\'') {
        i++;
    }
    return i > 0 && i < len && s_is_formula_trigger(s[i]);
}

/* Reads a run of decimal digits, saturating above max so no input can
 * overflow.  False unless the whole of s is digits (at least one). */
static bool s_read_digits(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0) {
        return false;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        if (value <= max) {
            value = value * S_RADIX + (uint64_t)(s[i] - '0');
        }
    }
    *out = value;
    return true;
}

/*
 * Reads "digits[.digits]" with at most `decimals` decimals as an integer
 * count of 10^-decimals units ("1.25" with 3 decimals is 1250).  No sign,
 * exponent, space or bare point.  Saturating reads keep every step below
 * max * 10 + 9, far inside uint64_t for the limits used here.
 */
static s_num_status_t s_read_fixed(const char *s, size_t len, int decimals, uint64_t max,
                                   uint64_t *out)
{
    const char *point = memchr(s, '.', len);
    size_t int_len = point ? (size_t)(point - s) : len;
    size_t frac_len = point ? len - int_len - 1u : 0;
    uint64_t whole = 0;
    uint64_t frac = 0;
    if (!s_read_digits(s, int_len, max, &whole)) {
        return S_NUM_SYNTAX;
    }
    if (point && !s_read_digits(point + 1, frac_len, max, &frac)) {
        return S_NUM_SYNTAX;
    }
    if (frac_len > (size_t)decimals) {
        return S_NUM_DECIMALS;
    }
    uint64_t scale = 1;
    for (int i = 0; i < decimals; i++) {
        scale *= S_RADIX;
    }
    for (size_t i = frac_len; i < (size_t)decimals; i++) {
        frac *= S_RADIX;
    }
    if (frac > max || whole > max / scale || whole * scale > max - frac) {
        return S_NUM_RANGE;
    }
    *out = whole * scale + frac;
    return S_NUM_OK;
}

static bool s_is_leap_year(unsigned year)
{
    return (year % S_LEAP_EVERY == 0 && year % S_LEAP_SKIP_CENTURY != 0) ||
           year % S_LEAP_KEEP_CENTURY == 0;
}

static unsigned s_days_in_month(unsigned year, unsigned month)
{
    static const unsigned char s_days[S_MONTHS] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == S_FEBRUARY && s_is_leap_year(year)) {
        return s_days[month - 1] + 1u;
    }
    return s_days[month - 1];
}

/* True when YYYYMMDD is a real calendar day in the accepted years. */
static bool s_is_real_date(uint32_t yyyymmdd)
{
    unsigned year = yyyymmdd / S_YEAR_SCALE;
    unsigned month = yyyymmdd / S_MONTH_SCALE % S_MONTH_SCALE;
    unsigned day = yyyymmdd % S_MONTH_SCALE;
    return year >= S_YEAR_MIN && year <= S_YEAR_MAX && month >= 1 && month <= S_MONTHS &&
           day >= 1 && day <= s_days_in_month(year, month);
}

/* Reads exactly "YYYY-MM-DD" naming a real day of years 1900 .. 9999. */
static s_num_status_t s_read_date(const char *s, size_t len, uint32_t *out)
{
    uint64_t year = 0;
    uint64_t month = 0;
    uint64_t day = 0;
    if (len != S_DATE_LEN || s[S_DATE_MONTH_AT - 1] != S_DATE_SEPARATOR ||
        s[S_DATE_DAY_AT - 1] != S_DATE_SEPARATOR ||
        !s_read_digits(s, S_DATE_YEAR_DIGITS, S_YEAR_MAX, &year) ||
        !s_read_digits(s + S_DATE_MONTH_AT, S_DATE_PART_DIGITS, S_MONTH_SCALE, &month) ||
        !s_read_digits(s + S_DATE_DAY_AT, S_DATE_PART_DIGITS, S_MONTH_SCALE, &day)) {
        return S_NUM_SYNTAX;
    }
    if (year < S_YEAR_MIN || year > S_YEAR_MAX) {
        return S_NUM_RANGE;
    }
    uint32_t packed = (uint32_t)(year * S_YEAR_SCALE + month * S_MONTH_SCALE + day);
    if (!s_is_real_date(packed)) {
        return S_NUM_NOT_A_DAY;
    }
    *out = packed;
    return S_NUM_OK;
}

/* ----------------------------------------------------------- record cutter */

/* Error for a record that runs past SP_CSV_LINE_MAX.  Inside a quoted cell
 * the likely cause is a quote never closed, so say so and name that cell. */
static int s_too_long(sp_csv_error_t *err, long line, int quoted_field)
{
    char label[S_LABEL_BUF];
    if (quoted_field > 0) {
        return s_fail(err, SP_E_CSV_SYNTAX, line, quoted_field,
                      "%s: the record is longer than %d bytes; the quote opening this cell is "
                      "probably never closed",
                      s_label(quoted_field, label), SP_CSV_LINE_MAX);
    }
    return s_fail(err, SP_E_CSV_SYNTAX, line, 0, "the record is longer than %d bytes",
                  SP_CSV_LINE_MAX);
}

/* True when p (inside the document) is at a record end: LF, or a CR that is
 * followed by LF or by the end of the document. */
static bool s_at_line_end(const char *p, const char *end)
{
    return *p == '\n' || (*p == '\r' && (p + 1 == end || p[1] == '\n'));
}

/*
 * Cuts the record starting at *pos (which is not an empty line) into cells
 * and moves *pos past its line end.  Content bytes must lie within
 * SP_CSV_LINE_MAX of the start; the line end itself does not count.  Quoted
 * line breaks advance rec->line, so on return it is the next record's line.
 */
static int s_cut_record(s_record_t *rec, const char **pos, long start, sp_csv_error_t *err)
{
    const char *p = *pos;
    const char *end = rec->end;
    const char *limit = (size_t)(end - p) > SP_CSV_LINE_MAX ? p + SP_CSV_LINE_MAX : end;
    char label[S_LABEL_BUF];
    size_t used = 0;
    int field = 1;
    rec->columns = 0;
    for (;;) {
        size_t first = used;
        if (p < end && *p == '"') {
            if (p >= limit) {
                return s_too_long(err, start, 0);
            }
            p++;
            for (;;) {
                if (p >= limit) {
                    if (limit == end) {
                        return s_fail(err, SP_E_CSV_SYNTAX, start, field,
                                      "%s: the quoted cell is never closed", s_label(field, label));
                    }
                    return s_too_long(err, start, field);
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        rec->cells[used++] = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (*p == '\n') {
                    rec->line++;
                }
                rec->cells[used++] = *p++;
            }
            if (p < end && *p != ',' && !s_at_line_end(p, end)) {
                return s_fail(err, SP_E_CSV_SYNTAX, start, field,
                              "%s: text follows the closing quote (a quote inside a quoted cell "
                              "must be doubled)",
                              s_label(field, label));
            }
        } else {
            while (p < end && *p != ',' && !s_at_line_end(p, end)) {
                if (p >= limit) {
                    return s_too_long(err, start, 0);
                }
                if (*p == '"') {
                    return s_fail(err, SP_E_CSV_SYNTAX, start, field,
                                  "%s: a quote inside an unquoted cell (quote the whole cell and "
                                  "double the quote)",
                                  s_label(field, label));
                }
                rec->cells[used++] = *p++;
            }
        }
        if (field <= SP_CSV_COLUMNS) {
            rec->off[field - 1] = first;
            rec->len[field - 1] = used - first;
        }
        rec->columns = field;
        if (p < end && *p == ',') {
            if (p >= limit) {
                return s_too_long(err, start, 0);
            }
            p++;
            field++;
            continue;
        }
        break;
    }
    if (p < end) {
        p += *p == '\r' ? 2 : 1;
        if (p > end) {
            p = end;
        }
        rec->line++;
    }
    *pos = p;
    return 0;
}

/* ------------------------------------------------------- record converter */

/* Validates a text cell and copies it into dst (cap bytes, NUL included),
 * undoing formula protection first. */
static int s_convert_text(const char *s, size_t len, int field, char *dst, size_t cap, long line,
                          sp_csv_error_t *err)
{
    if (s_looks_protected(s, len)) {
        s++;
        len--;
    }
    const char *column = s_column_names[field - 1];
    char shown[S_SHOW_BUF];
    size_t at = 0;
    switch (s_check_text(s, len, cap, &at)) {
    case S_TEXT_OK:
        break;
    case S_TEXT_EMPTY:
        return s_fail(err, SP_E_CSV_FIELD, line, field, "%s: the cell is empty", column);
    case S_TEXT_BAD_UTF8:
        return s_fail(err, SP_E_CSV_FIELD, line, field,
                      "%s: \"%s\" is not valid UTF-8 (bad byte at offset %zu)", column,
                      s_show(shown, s, len), at);
    case S_TEXT_CONTROL:
        return s_fail(err, SP_E_CSV_FIELD, line, field,
                      "%s: \"%s\" holds a control character at offset %zu", column,
                      s_show(shown, s, len), at);
    case S_TEXT_TOO_LONG:
        return s_fail(err, SP_E_CSV_FIELD, line, field,
                      "%s: \"%s\" is %zu bytes long; at most %zu are allowed", column,
                      s_show(shown, s, len), len, cap - 1u);
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* Converts a whole number cell in 0 .. max (min is 0 or 1). */
static int s_convert_whole(const char *s, size_t len, int field, uint64_t min, uint64_t max,
                           uint64_t *out, long line, sp_csv_error_t *err)
{
    uint64_t value = 0;
    if (!s_read_digits(s, len, max, &value) || value < min || value > max) {
        char shown[S_SHOW_BUF];
        return s_fail(err, SP_E_CSV_FIELD, line, field,
                      "%s: \"%s\" is not a whole number from %llu to %llu",
                      s_column_names[field - 1], s_show(shown, s, len), (unsigned long long)min,
                      (unsigned long long)max);
    }
    *out = value;
    return 0;
}

/* Converts a decimal cell to units of 10^-decimals; `unit` and `example`
 * make the message concrete ("kg", "0.8 or 1.250"). */
static int s_convert_fixed(const char *s, size_t len, int field, int decimals, uint64_t max,
                           const char *unit, const char *example, uint64_t *out, long line,
                           sp_csv_error_t *err)
{
    const char *column = s_column_names[field - 1];
    char shown[S_SHOW_BUF];
    uint64_t scale = 1;
    for (int i = 0; i < decimals; i++) {
        scale *= S_RADIX;
    }
    switch (s_read_fixed(s, len, decimals, max, out)) {
    case S_NUM_OK:
        return 0;
    case S_NUM_DECIMALS:
        return s_fail(err, SP_E_CSV_FIELD, line, field, "%s: \"%s\" has more than %d decimals",
                      column, s_show(shown, s, len), decimals);
    case S_NUM_RANGE:
        return s_fail(err, SP_E_CSV_FIELD, line, field,
                      "%s: \"%s\" is more than the maximum of %llu%s", column,
                      s_show(shown, s, len), (unsigned long long)(max / scale), unit);
    default:
        return s_fail(err, SP_E_CSV_FIELD, line, field,
                      "%s: \"%s\" is not a plain decimal number such as %s", column,
                      s_show(shown, s, len), example);
    }
}

static int s_convert_date(const char *s, size_t len, int field, uint32_t *out, long line,
                          sp_csv_error_t *err)
{
    const char *column = s_column_names[field - 1];
    char shown[S_SHOW_BUF];
    switch (s_read_date(s, len, out)) {
    case S_NUM_OK:
        return 0;
    case S_NUM_RANGE:
        return s_fail(err, SP_E_CSV_FIELD, line, field, "%s: \"%s\" has a year outside %u to %u",
                      column, s_show(shown, s, len), S_YEAR_MIN, S_YEAR_MAX);
    case S_NUM_NOT_A_DAY:
        return s_fail(err, SP_E_CSV_FIELD, line, field, "%s: \"%s\" is not a real calendar date",
                      column, s_show(shown, s, len));
    default:
        return s_fail(err, SP_E_CSV_FIELD, line, field,
                      "%s: \"%s\" is not a date written YYYY-MM-DD", column, s_show(shown, s, len));
    }
}

/* Turns the seven cells of a cut record into a product, checking every
 * value in column order so the first bad cell is the one reported. */
static int s_convert_record(const s_record_t *rec, long line, sp_product_t *out,
                            sp_csv_error_t *err)
{
    const char *cell[SP_CSV_COLUMNS];
    for (int i = 0; i < SP_CSV_COLUMNS; i++) {
        cell[i] = rec->cells + rec->off[i];
    }
    const size_t *len = rec->len;
    uint64_t value = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = s_convert_whole(cell[S_COL_ID], len[S_COL_ID], S_COL_ID + 1, 1, SP_PRODUCT_ID_MAX, &value,
                         line, err);
    if (rc < 0) {
        return rc;
    }
    out->id = (uint32_t)value;
    rc = s_convert_text(cell[S_COL_NAME], len[S_COL_NAME], S_COL_NAME + 1, out->name,
                        sizeof(out->name), line, err);
    if (rc < 0) {
        return rc;
    }
    rc = s_convert_text(cell[S_COL_CATEGORY], len[S_COL_CATEGORY], S_COL_CATEGORY + 1,
                        out->category, sizeof(out->category), line, err);
    if (rc < 0) {
        return rc;
    }
    rc = s_convert_fixed(cell[S_COL_WEIGHT], len[S_COL_WEIGHT], S_COL_WEIGHT + 1, S_WEIGHT_DECIMALS,
                         SP_WEIGHT_MAX_G, " kg", "0.8 or 1.250 (kilograms)", &value, line, err);
    if (rc < 0) {
        return rc;
    }
    out->weight_g = (uint32_t)value;
    rc = s_convert_fixed(cell[S_COL_PRICE], len[S_COL_PRICE], S_COL_PRICE + 1, S_PRICE_DECIMALS,
                         SP_PRICE_MAX_CENTS, "", "120 or 12.50", &out->price_cents, line, err);
    if (rc < 0) {
        return rc;
    }
    rc = s_convert_date(cell[S_COL_EXPIRY], len[S_COL_EXPIRY], S_COL_EXPIRY + 1, &out->expiry, line,
                        err);
    if (rc < 0) {
        return rc;
    }
    rc = s_convert_whole(cell[S_COL_STOCK], len[S_COL_STOCK], S_COL_STOCK + 1, 0, SP_STOCK_MAX,
                         &value, line, err);
    if (rc < 0) {
        return rc;
    }
    out->stock = (uint32_t)value;
    return 0;
}

/* --------------------------------------------------------------- storage */

/* Drops every product and releases the arrays: the state after a failure. */
static void s_clear(sp_catalogue_t *self)
{
    free(self->products);
    free(self->lines);
    self->products = NULL;
    self->lines = NULL;
    self->count = 0;
    self->capacity = 0;
    self->max_id = 0;
}

/* Makes room for at least `need` products, doubling. */
static int s_reserve(sp_catalogue_t *self, size_t need)
{
    if (need <= self->capacity) {
        return 0;
    }
    /* two arrays of one capacity: each grows by the same rule */
    size_t capacity = self->capacity, line_cap = self->capacity;
    sp_product_t *products =
        sp_grow(self->products, &capacity, need, sizeof *products, S_INITIAL_CAPACITY);
    if (!products) {
        return -ENOMEM;
    }
    self->products = products;
    long *lines = sp_grow(self->lines, &line_cap, need, sizeof *lines, S_INITIAL_CAPACITY);
    if (!lines) {
        return -ENOMEM;
    }
    self->lines = lines;
    self->capacity = capacity;
    return 0;
}

static bool s_bit_test_and_set(uint64_t *bits, uint32_t id)
{
    uint64_t mask = (uint64_t)1 << (id % S_BITMAP_WORD_BITS);
    uint64_t *word = &bits[id / S_BITMAP_WORD_BITS];
    bool was = (*word & mask) != 0;
    *word |= mask;
    return was;
}

/* Reports a duplicate id, finding where it first appeared (error path
 * only, so a linear scan is fine).  Products before `base` came from an
 * earlier document, whose line numbers mean nothing in this one. */
static int s_duplicate(const sp_catalogue_t *self, size_t base, size_t staged, uint32_t id,
                       long line, sp_csv_error_t *err)
{
    for (size_t i = 0; i < staged; i++) {
        if (self->products[i].id != id) {
            continue;
        }
        if (i < base) {
            return s_fail(err, SP_E_CSV_DUP_ID, line, S_COL_ID + 1,
                          "id_reg: %u is already in the catalogue from an earlier document", id);
        }
        return s_fail(err, SP_E_CSV_DUP_ID, line, S_COL_ID + 1,
                      "id_reg: %u already appears on line %ld", id, self->lines[i]);
    }
    return s_fail(err, SP_E_CSV_DUP_ID, line, S_COL_ID + 1, "id_reg: %u appears twice", id);
}

/* Checks the first line against SP_CSV_HEADER and moves *pos past it. */
static int s_read_header(const char **pos, const char *end, sp_csv_error_t *err)
{
    const char *p = *pos;
    const char *newline = memchr(p, '\n', (size_t)(end - p));
    const char *stop = newline ? newline : end;
    if (stop > p && stop[-1] == '\r') {
        stop--;
    }
    size_t len = (size_t)(stop - p);
    if (len == 0 && !newline) {
        return s_fail(err, SP_E_CSV_HEADER, 1, 0,
                      "the document is empty; expected the header \"%s\"", SP_CSV_HEADER);
    }
    if (len != sizeof(SP_CSV_HEADER) - 1u || memcmp(p, SP_CSV_HEADER, len) != 0) {
        char shown[S_SHOW_BUF];
        return s_fail(err, SP_E_CSV_HEADER, 1, 0, "the header must be \"%s\", not \"%s\"",
                      SP_CSV_HEADER, s_show(shown, p, len));
    }
    *pos = newline ? newline + 1 : end;
    return 0;
}

/* The body of sp_catalogue_parse: reads every record after the header into
 * the staging area past self->count, committing nothing. */
static int s_parse_records(sp_catalogue_t *self, const char *p, const char *end, uint64_t *seen,
                           size_t *staged_out, uint32_t *max_id, sp_csv_error_t *err)
{
    s_record_t *rec = malloc(sizeof(*rec));
    if (!rec) {
        return s_fail(err, -ENOMEM, 0, 0, "out of memory");
    }
    rec->end = end;
    rec->line = 2;
    size_t staged = self->count;
    int rc = 0;
    while (p < end) {
        if (s_at_line_end(p, end)) {
            /* A completely empty line: skipped, but it still counts. */
            p += *p == '\r' && p + 1 < end ? 2 : 1;
            rec->line++;
            continue;
        }
        long start = rec->line;
        rc = s_cut_record(rec, &p, start, err);
        if (rc < 0) {
            break;
        }
        if (rec->columns != SP_CSV_COLUMNS) {
            rc = s_fail(err, SP_E_CSV_SYNTAX, start, 0, "found %d columns; expected %d",
                        rec->columns, SP_CSV_COLUMNS);
            break;
        }
        rc = s_reserve(self, staged + 1u);
        if (rc < 0) {
            s_fail(err, rc, start, 0, "out of memory after %zu products", staged);
            break;
        }
        sp_product_t *product = &self->products[staged];
        rc = s_convert_record(rec, start, product, err);
        if (rc < 0) {
            break;
        }
        if (s_bit_test_and_set(seen, product->id)) {
            rc = s_duplicate(self, self->count, staged, product->id, start, err);
            break;
        }
        self->lines[staged] = start;
        if (product->id > *max_id) {
            *max_id = product->id;
        }
        staged++;
    }
    if (rc == 0 && staged == self->count) {
        rc = s_fail(err, SP_E_CSV_EMPTY, 1, 0, "the header is followed by no products");
    }
    *staged_out = staged;
    free(rec);
    return rc;
}

/* ------------------------------------------------------------------ API */

sp_catalogue_t *sp_catalogue_new(void)
{
    sp_catalogue_t *self = calloc(1, sizeof(*self));
    if (!self) {
        errno = ENOMEM;
    }
    return self;
}

void sp_catalogue_destroy(sp_catalogue_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    s_clear(*self_p);
    free(*self_p);
    *self_p = NULL;
}

int sp_catalogue_parse(sp_catalogue_t *self, const char *text, size_t len, sp_csv_error_t *err)
{
    sp_csv_error_t ignored;
    if (!err) {
        err = &ignored;
    }
    memset(err, 0, sizeof(*err));
    if (!self || (!text && len > 0)) {
        return s_fail(err, -EINVAL, 0, 0, "no catalogue or no text");
    }
    const char *p = text ? text : "";
    /* cppcheck-suppress pointerOutOfBoundsCond ; p is "" only when len is 0 (see above) */
    const char *end = p + len;
    if (len >= S_BOM_LEN && memcmp(p, S_BOM, S_BOM_LEN) == 0) {
        p += S_BOM_LEN;
    }
    int rc = s_read_header(&p, end, err);
    if (rc < 0) {
        s_clear(self);
        return rc;
    }
    uint64_t *seen = calloc(S_BITMAP_WORDS, sizeof(*seen));
    if (!seen) {
        s_clear(self);
        return s_fail(err, -ENOMEM, 0, 0, "out of memory");
    }
    for (size_t i = 0; i < self->count; i++) {
        s_bit_test_and_set(seen, self->products[i].id);
    }
    size_t staged = 0;
    uint32_t max_id = self->max_id;
    rc = s_parse_records(self, p, end, seen, &staged, &max_id, err);
    free(seen);
    if (rc < 0) {
        s_clear(self);
        return rc;
    }
    self->count = staged;
    self->max_id = max_id;
    return 0;
}

/* Reads a whole stream into a heap buffer.  The file's size, when it has
 * one, sizes the buffer so a regular file is read in a single pass. */
static int s_slurp(FILE *in, char **text_out, size_t *len_out)
{
    struct stat st;
    size_t capacity = S_READ_CHUNK;
    if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        capacity = (size_t)st.st_size + 1u;
    }
    char *text = malloc(capacity);
    if (!text) {
        return -ENOMEM;
    }
    size_t len = 0;
    for (;;) {
        if (len == capacity) {
            char *bigger = sp_grow(text, &capacity, capacity + 1, 1, capacity);
            if (!bigger) {
                free(text);
                return -ENOMEM;
            }
            text = bigger;
        }
        size_t got = fread(text + len, 1, capacity - len, in);
        len += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(in)) {
        int rc = errno ? -errno : -EIO;
        free(text);
        return rc;
    }
    *text_out = text;
    *len_out = len;
    return 0;
}

int sp_catalogue_load(sp_catalogue_t *self, const char *path, sp_csv_error_t *err)
{
    sp_csv_error_t ignored;
    if (!err) {
        err = &ignored;
    }
    memset(err, 0, sizeof(*err));
    if (!self || !path) {
        return s_fail(err, -EINVAL, 0, 0, "no catalogue or no path");
    }
    FILE *in = fopen(path, "rb");
    if (!in) {
        int code = errno;
        s_clear(self);
        return s_fail(err, -code, 0, 0, "cannot open %s: %s", path, strerror(code));
    }
    char *text = NULL;
    size_t len = 0;
    errno = 0;
    int rc = s_slurp(in, &text, &len);
    (void)fclose(in); /* read only: s_slurp saw any read error */
    if (rc < 0) {
        s_clear(self);
        return s_fail(err, rc, 0, 0, "cannot read %s: %s", path, strerror(-rc));
    }
    rc = sp_catalogue_parse(self, text, len, err);
    free(text);
    return rc;
}

size_t sp_catalogue_count(const sp_catalogue_t *self)
{
    return self ? self->count : 0;
}

uint32_t sp_catalogue_max_id(const sp_catalogue_t *self)
{
    return self ? self->max_id : 0;
}

size_t sp_catalogue_keep_range(sp_catalogue_t *self, uint32_t lo, uint32_t hi)
{
    size_t kept = 0;
    uint32_t max_id = 0;
    for (size_t i = 0; i < self->count; i++) {
        const sp_product_t *p = &self->products[i];
        if (p->id < lo || p->id > hi) {
            continue;
        }
        if (p->id > max_id) {
            max_id = p->id;
        }
        self->lines[kept] = self->lines[i];
        self->products[kept++] = *p;
    }
    self->count = kept;
    self->max_id = max_id;
    return kept;
}

const sp_product_t *sp_catalogue_get(const sp_catalogue_t *self, size_t index)
{
    if (!self || index >= self->count) {
        return NULL;
    }
    return &self->products[index];
}

/* ------------------------------------------------------------------ writer */

/* True when the product is one the reader would accept, so every row we
 * write reads back. */
static bool s_product_is_valid(const sp_product_t *product)
{
    size_t at = 0;
    size_t name_len = strnlen(product->name, sizeof(product->name));
    size_t category_len = strnlen(product->category, sizeof(product->category));
    return product->id >= 1 && product->id <= SP_PRODUCT_ID_MAX &&
           s_check_text(product->name, name_len, sizeof(product->name), &at) == S_TEXT_OK &&
           s_check_text(product->category, category_len, sizeof(product->category), &at) ==
               S_TEXT_OK &&
           product->weight_g <= SP_WEIGHT_MAX_G && product->price_cents <= SP_PRICE_MAX_CENTS &&
           s_is_real_date(product->expiry) && product->stock <= SP_STOCK_MAX;
}

/* Appends a text cell: protected against formula execution, then quoted if
 * it holds a separator, a quote or a line break. */
static void s_put_text(char *row, size_t *n, const char *s)
{
    size_t len = strlen(s);
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote) {
        row[(*n)++] = '"';
    }
    if (s_is_formula_trigger(s[0]) || s_looks_protected(s, len)) {
        row[(*n)++] = '\'';
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') {
            row[(*n)++] = '"';
        }
        row[(*n)++] = s[i];
    }
    if (quote) {
        row[(*n)++] = '"';
    }
}

/* Appends a fixed-point number with the fewest decimals that keep it exact,
 * or (when `all_or_none`) either no decimals or all of them, as money is
 * written ("120", "12.50"). */
static void s_put_fixed(char *row, size_t *n, uint64_t units, int decimals, bool all_or_none)
{
    uint64_t scale = 1;
    for (int i = 0; i < decimals; i++) {
        scale *= S_RADIX;
    }
    uint64_t whole = units / scale;
    uint64_t frac = units % scale;
    *n += (size_t)snprintf(row + *n, S_ROW_MAX - *n, "%llu", (unsigned long long)whole);
    if (frac == 0) {
        return;
    }
    int shown = decimals;
    while (!all_or_none && frac % S_RADIX == 0) {
        frac /= S_RADIX;
        shown--;
    }
    *n += (size_t)snprintf(row + *n, S_ROW_MAX - *n, ".%0*llu", shown, (unsigned long long)frac);
}

int sp_catalogue_write_row(FILE *out, const sp_product_t *product)
{
    if (!out || !product || !s_product_is_valid(product)) {
        return -EINVAL;
    }
    char row[S_ROW_MAX];
    size_t n = (size_t)snprintf(row, sizeof(row), "%u,", product->id);
    s_put_text(row, &n, product->name);
    row[n++] = ',';
    s_put_text(row, &n, product->category);
    row[n++] = ',';
    s_put_fixed(row, &n, product->weight_g, S_WEIGHT_DECIMALS, false);
    row[n++] = ',';
    s_put_fixed(row, &n, product->price_cents, S_PRICE_DECIMALS, true);
    n += (size_t)snprintf(row + n, sizeof(row) - n, ",%04u-%02u-%02u,%u\n",
                          product->expiry / S_YEAR_SCALE,
                          product->expiry / S_MONTH_SCALE % S_MONTH_SCALE,
                          product->expiry % S_MONTH_SCALE, product->stock);
    errno = 0;
    if (fwrite(row, 1, n, out) != n) {
        return errno ? -errno : -EIO;
    }
    return 0;
}
