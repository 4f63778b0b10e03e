/* q8_avx2.c: the AVX2 int8 micro-kernel (one row of X against four rows of W).
 *
 * Compiled for AVX2+FMA whatever the build flags (the target pragma below), and
 * called only after cpuid said the CPU has AVX2 (q8.c). Contract in q8.h.
 *
 * 32 products per instruction pair: _mm256_maddubs_epi16 multiplies unsigned by
 * signed bytes and adds adjacent pairs into int16, so it gets |w| (unsigned)
 * and x * sign(w) (signed), whose product is x * w. With |x|, |w| <= 127 a pair
 * is at most 2 * 127 * 127 = 32258 < 32767: it never saturates. (A weight of
 * -128 would still be right, |w| = 128 as unsigned; an activation of -128
 * would not, and q8_quantize never makes one.) _mm256_madd_epi16 against ones
 * then widens to 8 int32 lanes of 4 products each (exact), which are
 * converted and scaled by their group's scales into 8 float lanes per output
 * row, summed across lanes once at the end.
 */
#include "core/q8.h"

#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

void q8_quantize_group_avx2(int8_t *q, float *d, const float *x, int32_t G) {
    /* amax: max(|x|, acc) keeps acc where |x| is NaN, as the reference's
     * "a > amax" does; the maximum does not depend on the order */
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (int32_t k = 0; k < G; k += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float id = amax > 0.0f ? (float)Q8_MAX / amax : 0.0f;
    *d = amax / (float)Q8_MAX;
    /* v = x * id, NaN -> 0, clamped to [-127, 127], + copysign(0.5, v), truncated:
     * the reference's q8_round, value for value */
    const __m256 idv = _mm256_set1_ps(id), hi = _mm256_set1_ps((float)Q8_MAX);
    const __m256 lo = _mm256_set1_ps(-(float)Q8_MAX), half = _mm256_set1_ps(0.5f);
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    for (int32_t k = 0; k < G; k += 32) {
        __m256i i32[4];
        for (int j = 0; j < 4; j++) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), idv);
            v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
            v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
            v = _mm256_add_ps(v, _mm256_or_ps(half, _mm256_and_ps(v, sign)));
            i32[j] = _mm256_cvttps_epi32(v);
        }
        /* packs work within 128-bit lanes: put the 32 bytes back in order */
        const __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]), i16b = _mm256_packs_epi32(i32[2], i32[3]);
        const __m256i i8 = _mm256_packs_epi16(i16a, i16b);
        _mm256_storeu_si256((__m256i *)(q + k),
                            _mm256_permutevar8x32_epi32(i8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}

/* 8 int32 lanes, together the 32 products x[k] * w[k] */
static inline __m256i dot32(__m256i x, __m256i w) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

void q8_kernel_avx2_1x4(const int8_t *x, const float *xd, const int8_t *const w[4],
                        const float *const wd[4], int64_t KP, int32_t G, float out[4]) {
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    const int64_t ng = KP / G;
    for (int64_t g = 0; g < ng; g++) {
        const float dx = xd[g];
        const __m256 d0 = _mm256_set1_ps(dx * wd[0][g]), d1 = _mm256_set1_ps(dx * wd[1][g]);
        const __m256 d2 = _mm256_set1_ps(dx * wd[2][g]), d3 = _mm256_set1_ps(dx * wd[3][g]);
        for (int64_t k = g * G; k < (g + 1) * G; k += 32) {
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(x + k));
#define Q8_ROW(a, wr, dv) \
    a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32(xv, _mm256_loadu_si256((const __m256i *)(wr + k)))), dv, a)
            Q8_ROW(a0, w0, d0);
            Q8_ROW(a1, w1, d1);
            Q8_ROW(a2, w2, d2);
            Q8_ROW(a3, w3, d3);
#undef Q8_ROW
        }
    }
    /* the 8 lanes of each row, summed the same way for all four:
     * ((l0+l1) + (l2+l3)) + ((l4+l5) + (l6+l7)) */
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
