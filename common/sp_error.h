/*
 * sp_error — stockpipe's error vocabulary.
 *
 * Every fallible function in stockpipe returns an int: 0 on success, a
 * negative errno for system failures, or a negative code from the reserved
 * range below for business outcomes and input errors.  Keeping both in one
 * integer lets callers propagate with a single `if (rc < 0) return rc;` while
 * sp_strerror() still names every outcome precisely.
 *
 * The convention every module follows: a function that can fail returns that
 * int and, where a person must be told more, writes one sentence into the
 * caller's `why` buffer (cap bytes, always NUL-terminated, never allocated);
 * a function that makes an object returns NULL with errno set.  sp_strerror's
 * strings are static; both functions are safe from any thread and never
 * block.
 */
#ifndef SP_ERROR_H
#define SP_ERROR_H

#include <stddef.h>

/* Reserved range: far above any errno value Linux defines (< 4096). */
#define SP_ERR_BASE 10000

enum {
    SP_E_OUT_OF_STOCK = -(SP_ERR_BASE + 1),    /* purchase larger than stock */
    SP_E_UNKNOWN_PRODUCT = -(SP_ERR_BASE + 2), /* no product with that id */
    SP_E_INVALID = -(SP_ERR_BASE + 3),         /* order fields out of range */
    SP_E_DUPLICATE = -(SP_ERR_BASE + 4),       /* (producer, seq) seen before */
    SP_E_STOCK_OVERFLOW = -(SP_ERR_BASE + 5),  /* restock beyond SP_STOCK_MAX */
    SP_E_NO_HOLD = -(SP_ERR_BASE + 6),         /* no live hold to buy or release (or one already) */
    SP_E_BAD_MAGIC = -(SP_ERR_BASE + 10),      /* wire or table magic mismatch */
    SP_E_BAD_VERSION = -(SP_ERR_BASE + 11),    /* wire or table version mismatch */
    SP_E_BAD_SIZE = -(SP_ERR_BASE + 12),       /* length does not match contents */
    SP_E_BAD_KIND = -(SP_ERR_BASE + 13),       /* unknown message or record kind */
    SP_E_BAD_FIELD = -(SP_ERR_BASE + 14),      /* a field is out of its range */
    SP_E_BAD_LAYOUT = -(SP_ERR_BASE + 15),     /* table header disagrees with us */
    SP_E_CSV_SYNTAX = -(SP_ERR_BASE + 20),     /* malformed CSV (quotes, columns) */
    SP_E_CSV_FIELD = -(SP_ERR_BASE + 21),      /* a CSV cell has a bad value */
    SP_E_CSV_HEADER = -(SP_ERR_BASE + 22),     /* CSV header is not the expected one */
    SP_E_CSV_DUP_ID = -(SP_ERR_BASE + 23),     /* same product id twice */
    SP_E_CSV_EMPTY = -(SP_ERR_BASE + 24),      /* no products in the catalogue */
    SP_E_USAGE = -(SP_ERR_BASE + 30),          /* bad command-line flag or value */
    SP_E_TIMEOUT = -(SP_ERR_BASE + 31),        /* a bounded wait ran out */
    SP_E_NOT_READY = -(SP_ERR_BASE + 32),      /* instance exists but is not serving */
    SP_E_MQ_LIMIT = -(SP_ERR_BASE + 33),       /* request exceeds a POSIX mq limit */
    SP_E_STOPPED = -(SP_ERR_BASE + 34),        /* shutdown was requested */
    SP_E_LIMIT = -(SP_ERR_BASE + 35),          /* a system limit is below what the run needs */
    SP_E_CHECKSUM = -(SP_ERR_BASE + 50),       /* persistent record fails its CRC */
    /* a bad record with more records after it: not a torn tail */
    SP_E_JOURNAL_CORRUPT = -(SP_ERR_BASE + 51),
};

/* Human-readable text for any code above or any negative errno.  Never NULL;
 * the string is static and must not be freed. */
const char *sp_strerror(int code);

/* Writes a printf-style explanation into why (cap bytes); NULL-safe. */
void sp_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
