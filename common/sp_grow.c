/*
 * sp_grow — doubling growth of an array (see sp_grow.h).
 */
#include "sp_grow.h"

#include <stdint.h>
#include <stdlib.h>

void *sp_grow(void *items, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap && items != NULL) {
        return items;
    }
    size_t n = *cap > 0 ? *cap : (first > 0 ? first : 1);
    while (n < need) {
        if (n > SIZE_MAX / 2u) {
            return NULL;
        }
        n *= 2u;
    }
    if (size == 0 || n > SIZE_MAX / size) {
        return NULL;
    }
    void *grown = realloc(items, n * size);
    if (grown == NULL) {
        return NULL;
    }
    *cap = n;
    return grown;
}
