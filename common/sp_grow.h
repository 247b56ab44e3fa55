/*
 * sp_grow — room for one more element in a growable array.
 *
 * Every array we build up element by element (catalogue rows, journal
 * records, snapshot bytes, the chaos checker's ledgers) grows the same way:
 * doubling from a first size, with the multiplication checked so that a
 * huge count fails (NULL, which callers report as -ENOMEM) instead of
 * wrapping around.  The array's storage stays the caller's: sp_grow returns
 * the (possibly moved) block, and on failure the old block is untouched and
 * still the caller's to free.
 *
 * Pure apart from realloc; never blocks; safe from any thread on distinct
 * arrays.
 */
#ifndef SP_GROW_H
#define SP_GROW_H

#include <stddef.h>

/* Makes `items` (a malloc'd block of *cap elements of `size` bytes, or NULL
 * with *cap 0) hold at least `need` elements: returns it as it is when it
 * does, else a block of twice *cap (starting at `first`) as often as needed,
 * with *cap updated.  Returns NULL, leaving items and *cap alone, when that
 * much memory cannot be had or its size would overflow. */
void *sp_grow(void *items, size_t *cap, size_t need, size_t size, size_t first);

#endif
