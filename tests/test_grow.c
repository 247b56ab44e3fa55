/*
 * test_grow — the one growth rule of our arrays.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#include "sp_grow.h"

Test(grow, starts_at_first_and_doubles_until_it_fits)
{
    size_t cap = 0;
    int *a = sp_grow(NULL, &cap, 1, sizeof *a, 8);
    cr_assert_not_null(a);
    cr_expect_eq(cap, 8u);
    a[7] = 7;
    int *b = sp_grow(a, &cap, 30, sizeof *b, 8);
    cr_assert_not_null(b);
    cr_expect_eq(cap, 32u, "8 -> 16 -> 32");
    cr_expect_eq(b[7], 7, "what was there stays");
    free(b);
}

Test(grow, an_array_with_room_is_returned_as_it_is)
{
    size_t cap = 0;
    char *a = sp_grow(NULL, &cap, 5, 1, 16);
    cr_assert_not_null(a);
    cr_expect_eq(sp_grow(a, &cap, 16, 1, 16), a);
    cr_expect_eq(cap, 16u);
    free(a);
}

Test(grow, sizes_that_would_overflow_fail_and_change_nothing)
{
    size_t cap = 4;
    uint64_t *a = malloc(4 * sizeof *a);
    cr_assert_not_null(a);
    cr_expect_null(sp_grow(a, &cap, SIZE_MAX / 2, sizeof *a, 4));
    cr_expect_eq(cap, 4u, "capacity untouched");
    cr_expect_null(sp_grow(a, &cap, SIZE_MAX, 1, 4));
    a[3] = 3; /* still ours, still whole */
    free(a);
}
