#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#include "core/params.h"

static size_t round_up(size_t n) {
    const size_t per = ARENA_ALIGN / sizeof(float);
    return (n + per - 1) / per * per;
}

void arena_plan(arena *a, size_t n_floats) {
    size_t r = round_up(n_floats);
    if (r < n_floats || loom_add_size(a->planned, r, &a->planned)) a->overflow = 1;
}

int arena_alloc(arena *a, loom_error *err) {
    size_t bytes;
    if (a->overflow || loom_mul_size(a->planned, sizeof(float), &bytes))
        return loom_error_set(err, "arena: requested size overflows");
    a->base = floats_alloc(a->planned);
    if (!a->base) return loom_error_set(err, "arena: out of memory (%zu MB)", bytes >> 20);
    a->used = 0;
    return 0;
}

float *arena_take(arena *a, size_t n_floats) {
    size_t r = round_up(n_floats);
    if (!a->base || r > a->planned - a->used) return NULL;
    float *p = a->base + a->used;
    a->used += r;
    return p;
}

void arena_free(arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}
