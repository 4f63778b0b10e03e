/* arena.h: aligned arena memory. Sizes are planned first (arena_plan), then
 * one allocation is made and carved (arena_take), so a module's buffers come
 * from a single block that is freed at once and never reallocated mid-step.
 *
 *     arena a = {0};
 *     arena_plan(&a, n1); arena_plan(&a, n2);      // floats
 *     if (arena_alloc(&a, err)) return -1;
 *     float *x = arena_take(&a, n1), *y = arena_take(&a, n2);
 *     ...
 *     arena_free(&a);
 */
#ifndef LOOM_CORE_ARENA_H
#define LOOM_CORE_ARENA_H

#include <stddef.h>

#include "core/error.h"

#define ARENA_ALIGN 64 /* bytes: one cache line, a full AVX-512 register */

typedef struct arena {
    float *base;
    size_t planned;  /* floats, each request rounded up to ARENA_ALIGN bytes */
    size_t used;
    int    overflow; /* a planned size overflowed size_t */
} arena;

void   arena_plan(arena *a, size_t n_floats);
int    arena_alloc(arena *a, loom_error *err);      /* zeroed; -1 on overflow or no memory */
float *arena_take(arena *a, size_t n_floats);       /* in plan order; NULL past the plan */
void   arena_free(arena *a);

#endif
