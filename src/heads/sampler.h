/* sampler.h: picking the next token from logits: greedy, temperature,
 * top-k, top-p (nucleus), with a seeded RNG so a seed reproduces a run. */
#ifndef LOOM_HEADS_SAMPLER_H
#define LOOM_HEADS_SAMPLER_H

#include <stdint.h>

#include "core/rng.h"

typedef struct sampler_params {
    float   temp;   /* 0 = greedy */
    int32_t top_k;  /* 0 = off */
    float   top_p;  /* 1 = off */
} sampler_params;

/* Samples from logits (V). allowed (V) may be NULL; otherwise only ids with
 * allowed[id] != 0 can be chosen. scratch: at least 2*V floats. Returns the
 * id, or -1 if nothing is allowed. logits are not modified. */
int32_t sampler_sample(const float *logits, int32_t V, const uint8_t *allowed, sampler_params p,
                       loom_rng *rng, float *scratch);

#endif
