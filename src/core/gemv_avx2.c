/* gemv_avx2.c: the AVX2+FMA tile kernels of loom_gemv_nt (1x8, 2x4, 3x4:
 * rows of x by rows of W).
 *
 * Compiled for AVX2+FMA whatever the build flags (the target pragma below, as
 * in sgemm_avx2.c), and called only after cpuid said the CPU has both
 * (gemv.c). Contract in gemv.h.
 *
 * Per group of 8 k: load the x vectors of the tile's rows once, then each W
 * vector once, and multiply-add it into the accumulator of every x row (one
 * 8-float accumulator per output). 3x4: 12 accumulators + 3 x vectors + 1 W
 * vector = 16 ymm registers, 12 independent FMA chains (>= 2 FMA pipes x 4
 * cycles latency on Zen 3), 7 loads per 12 FMAs. 1x8 (M = 1): 8 chains, each W
 * vector used once (the FMA takes it from memory), 9 loads per 8 FMAs: a pass
 * over W as fast as the caches deliver it. The last partial group of 8 is read
 * with masked loads (zeros past K, nothing read past a row's end).
 *
 * Prefetch: W rows are short (K = 256 floats: 16 cache lines), too short for
 * the hardware prefetchers to get going on each, so while a tile works on its
 * rows it prefetches the rows the driver will give the next tile (pf), one
 * line per row every 16 floats. Measured on the decoding shapes with the
 * weights in L3 (a model of 19 MB, each matrix used once per step; a noisy,
 * loaded machine): the 3x4 tile 20-25% faster, the 1x8 one 4-8%. With W in L2
 * (one small matrix used over and over) it costs the 1x8 tile 10% at K = 256
 * and a third at K = 688, where two blocks of 8 rows no longer fit in L1.
 */
#include "core/gemv.h"

#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

/* mask_tail + 8 - r: the first r lanes set (r = 1..7) */
static const int32_t mask_tail[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* The four outputs of accumulators a0..a3, each ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)). */
static inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* One R x C tile (R <= 3, C a multiple of 4, R*C <= 12 or R = 1, C = 8);
 * R and C are constants at every call, so the loops unroll and acc lives in
 * registers. */
static inline __attribute__((always_inline)) void tile(int64_t K, const float *x, int64_t ldx,
                                                       const float *const *w,
                                                       const float *const *pf, float *out,
                                                       const int R, const int C) {
    __m256 acc[3][8];
    const float *xr[3], *wr[8];
#pragma GCC unroll 3
    for (int i = 0; i < R; i++) xr[i] = x + i * ldx;
#pragma GCC unroll 8
    for (int j = 0; j < C; j++) wr[j] = w[j];
#pragma GCC unroll 3
    for (int i = 0; i < R; i++)
#pragma GCC unroll 8
        for (int j = 0; j < C; j++) acc[i][j] = _mm256_setzero_ps();

/* one group of 8 k at k0: the tile's x vectors, then each W vector into every row */
#define TILE_STEP(k0)                                                                        \
    do {                                                                                     \
        __m256 xv[3];                                                                        \
        _Pragma("GCC unroll 3") for (int i = 0; i < R; i++)                                  \
            xv[i] = _mm256_loadu_ps(xr[i] + (k0));                                           \
        _Pragma("GCC unroll 8") for (int j = 0; j < C; j++) {                                \
            const __m256 wv = _mm256_loadu_ps(wr[j] + (k0));                                 \
            _Pragma("GCC unroll 3") for (int i = 0; i < R; i++)                              \
                acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);                           \
        }                                                                                    \
    } while (0)

    int64_t k = 0;
    for (; k + 16 <= K; k += 16) { /* 16 floats: one cache line of each next row */
#pragma GCC unroll 8
        for (int j = 0; j < C; j++) _mm_prefetch((const char *)(pf[j] + k), _MM_HINT_T0);
        TILE_STEP(k);
        TILE_STEP(k + 8);
    }
    if (k + 8 <= K) {
        TILE_STEP(k);
        k += 8;
    }
#undef TILE_STEP
    if (k < K) { /* the partial group: zeros past K, so each lane gets fma(0, 0, acc) = acc + 0 */
        const __m256i m = _mm256_loadu_si256((const __m256i *)(mask_tail + 8 - (K - k)));
        __m256 xv[3];
#pragma GCC unroll 3
        for (int i = 0; i < R; i++) xv[i] = _mm256_maskload_ps(xr[i] + k, m);
#pragma GCC unroll 8
        for (int j = 0; j < C; j++) {
            const __m256 wv = _mm256_maskload_ps(wr[j] + k, m);
#pragma GCC unroll 3
            for (int i = 0; i < R; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
        }
    }

#pragma GCC unroll 3
    for (int i = 0; i < R; i++)
#pragma GCC unroll 2
        for (int j = 0; j < C; j += 4)
            _mm_storeu_ps(out + i * C + j,
                          hsum4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]));
}

void loom_gemv_kernel_avx2_1x8(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out) {
    tile(K, x, ldx, w, pf, out, 1, 8);
}

void loom_gemv_kernel_avx2_2x4(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out) {
    tile(K, x, ldx, w, pf, out, 2, 4);
}

void loom_gemv_kernel_avx2_3x4(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out) {
    tile(K, x, ldx, w, pf, out, 3, 4);
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
