/* rng.h: a small seeded, reproducible random number generator (xoshiro256**,
 * seeded through splitmix64). The state is a plain struct: no global state,
 * and it can be saved in a checkpoint and restored exactly. */
#ifndef LOOM_CORE_RNG_H
#define LOOM_CORE_RNG_H

#include <stdint.h>

typedef struct loom_rng {
    uint64_t s[4];
} loom_rng;

void     rng_seed(loom_rng *r, uint64_t seed);
uint64_t rng_u64(loom_rng *r);
uint32_t rng_below(loom_rng *r, uint32_t n);   /* uniform in [0, n), n > 0 */
float    rng_uniform(loom_rng *r);              /* uniform in [0, 1) */
float    rng_normal(loom_rng *r);               /* standard normal (Box-Muller) */

#endif
