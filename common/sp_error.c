/*
 * sp_error — names for stockpipe's reserved error codes; negative errno
 * values fall through to strerror().
 */
#include "sp_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *sp_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case SP_E_OUT_OF_STOCK:
        return "not enough stock";
    case SP_E_UNKNOWN_PRODUCT:
        return "unknown product";
    case SP_E_INVALID:
        return "invalid order";
    case SP_E_DUPLICATE:
        return "duplicate order";
    case SP_E_STOCK_OVERFLOW:
        return "stock would exceed its maximum";
    case SP_E_BAD_MAGIC:
        return "bad magic number";
    case SP_E_BAD_VERSION:
        return "unsupported version";
    case SP_E_BAD_SIZE:
        return "size does not match contents";
    case SP_E_BAD_KIND:
        return "unknown message or record kind";
    case SP_E_BAD_FIELD:
        return "field out of range";
    case SP_E_BAD_LAYOUT:
        return "shared table layout mismatch";
    case SP_E_CSV_SYNTAX:
        return "malformed CSV line";
    case SP_E_CSV_FIELD:
        return "bad CSV field value";
    case SP_E_CSV_HEADER:
        return "unexpected CSV header";
    case SP_E_CSV_DUP_ID:
        return "duplicate product id";
    case SP_E_CSV_EMPTY:
        return "catalogue has no products";
    case SP_E_USAGE:
        return "bad usage";
    case SP_E_TIMEOUT:
        return "timed out";
    case SP_E_NOT_READY:
        return "instance not ready";
    case SP_E_MQ_LIMIT:
        return "POSIX message queue limit exceeded";
    case SP_E_NO_HOLD:
        return "no live hold of that product and quantity (expired, bought, released, or never "
               "reserved), or a hold on it already";
    case SP_E_STOPPED:
        return "stopped";
    case SP_E_LIMIT:
        return "a system limit is too low for this run";
    case SP_E_CHECKSUM:
        return "checksum mismatch";
    case SP_E_JOURNAL_CORRUPT:
        return "journal corrupt before its end";
    default:
        break;
    }
    if (code < 0 && code > -SP_ERR_BASE) {
        return strerror(-code);
    }
    return "unknown error";
}

void sp_why(char *why, size_t cap, const char *fmt, ...)
{
    if (why != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
}
