/* q8_avx512.c: the AVX-512 VNNI int8 micro-kernel (one row of X against four
 * rows of W).
 *
 * Compiled for AVX-512 F, BW and VNNI whatever the build flags (the target
 * pragma below), and called only after cpuid said the CPU has all three
 * (q8.c). Contract in q8.h.
 *
 * 64 products per _mm512_dpbusd_epi32 (unsigned bytes times signed bytes, four
 * adjacent products added into each int32 lane, no int16 stage and so no
 * saturation): as in the AVX2 kernel it gets |w| and x * sign(w) (AVX-512 has
 * no sign_epi8: x is negated under the mask of w's sign bits). Int32 lanes
 * 0-7 hold bytes 0-31 of the 64, lanes 8-15 bytes 32-63, so each half is
 * scaled by its own group's scales (two groups per step when G = 32). A row
 * whose length is an odd multiple of 32 ends with a masked 32-byte load.
 *
 * NOTE: the development machine (AMD EPYC, Zen 3) has no AVX-512, so this
 * kernel has not run on hardware. tests/test_q8.c runs it wherever the CPU
 * has it, against the reference, on odd shapes and every group size.
 */
#include "core/q8.h"

#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vnni"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vnni")
#endif

/* 16 int32 lanes, together the 64 products x[k] * w[k] */
static inline __m512i dot64(__m512i x, __m512i w) {
    const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
}

/* lanes 0-7: a, lanes 8-15: b */
static inline __m512 halves(float a, float b) {
    return _mm512_mask_blend_ps((__mmask16)0xFF00, _mm512_set1_ps(a), _mm512_set1_ps(b));
}

void q8_kernel_avx512vnni_1x4(const int8_t *x, const float *xd, const int8_t *const w[4],
                              const float *const wd[4], int64_t KP, int32_t G, float out[4]) {
    __m512 acc[4];
    for (int i = 0; i < 4; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < KP; k += 64) {
        /* the last step of a row of 64 j + 32 bytes reads 32 (the rest are 0) */
        const __mmask64 m = KP - k >= 64 ? ~(__mmask64)0 : (__mmask64)0xFFFFFFFFu;
        const int64_t glo = k / G, ghi = KP - k >= 64 ? (k + 32) / G : glo;
        const __m512i xv = _mm512_maskz_loadu_epi8(m, x + k);
        for (int i = 0; i < 4; i++) {
            const __m512i s = dot64(xv, _mm512_maskz_loadu_epi8(m, w[i] + k));
            const __m512 sc = halves(xd[glo] * wd[i][glo], xd[ghi] * wd[i][ghi]);
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, acc[i]);
        }
    }
    /* 16 lanes -> 8 (low + high half), then the AVX2 kernel's tree */
    __m256 r[4];
    for (int i = 0; i < 4; i++)
        r[i] = _mm256_add_ps(_mm512_castps512_ps256(acc[i]),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i]), 1)));
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(r[0], r[1]), _mm256_hadd_ps(r[2], r[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
