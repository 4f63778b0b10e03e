/* sgemm_avx2.c: the AVX2+FMA micro-kernel (6x16 tile) and the packers (widths
 * 6 and 16 for it, 12 and 32 for the AVX-512 kernel: every AVX-512 CPU has AVX2).
 *
 * Compiled for AVX2+FMA whatever the build flags (the target pragma below), and
 * called only after cpuid said the CPU has both (sgemm.c). Contracts in sgemm.h.
 *
 * The 6x16 tile: 12 accumulators (6 rows x 2 vectors of 8), 2 B vectors and one
 * broadcast A value = 15 of the 16 ymm registers; per k, 12 FMAs against 2
 * loads and 6 broadcasts, enough independent chains (12 >= 2 FMA ports x 4
 * cycles latency on Zen 3) to keep both FMA pipes busy.
 */
#include "sgemm.h"

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

/* Row i of the C tile: c (+)= acc (two vectors), beta as in the contract. */
#define STORE_ROW(i, acc0, acc1)                                                    \
    do {                                                                            \
        float *cr = c + (i) * ldc;                                                  \
        if (beta == 0.0f) {                                                         \
            _mm256_storeu_ps(cr, acc0);                                             \
            _mm256_storeu_ps(cr + 8, acc1);                                         \
        } else if (beta == 1.0f) {                                                  \
            _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc0));         \
            _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), acc1)); \
        } else {                                                                    \
            __m256 bv = _mm256_set1_ps(beta);                                       \
            _mm256_storeu_ps(cr, _mm256_fmadd_ps(bv, _mm256_loadu_ps(cr), acc0));   \
            _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(bv, _mm256_loadu_ps(cr + 8), acc1)); \
        }                                                                           \
    } while (0)

void loom_sgemm_kernel_avx2_6x16(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                                 const float *b, float *c, int64_t ldc, float beta) {
    /* the C tile is needed only at the end: start fetching it now */
    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const int64_t r1 = a_rs, r2 = 2 * a_rs, r3 = 3 * a_rs, r4 = 4 * a_rs, r5 = 5 * a_rs;
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 av;
        av = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + r1);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + r2);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + r3);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + r4);
        c40 = _mm256_fmadd_ps(av, b0, c40);
        c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + r5);
        c50 = _mm256_fmadd_ps(av, b0, c50);
        c51 = _mm256_fmadd_ps(av, b1, c51);
        a += a_cs;
        b += 16;
    }
    STORE_ROW(0, c00, c01);
    STORE_ROW(1, c10, c11);
    STORE_ROW(2, c20, c21);
    STORE_ROW(3, c30, c31);
    STORE_ROW(4, c40, c41);
    STORE_ROW(5, c50, c51);
}

/* In place: r[i] = row i (8 values) -> r[j] = column j (8 values). */
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Scalar packing of the rare cases (partial strips, k tails): see sgemm.h. */
static void pack_scalar(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                        int64_t k0, int64_t kc, int64_t W) {
    for (int64_t k = k0; k < kc; k++) {
        float *d = dst + k * W;
        for (int64_t r = 0; r < w; r++) d[r] = src[r * rs + k * cs];
        for (int64_t r = w; r < W; r++) d[r] = 0.0f;
    }
}

/* Stores the first h (<= 8) floats of v at d. */
static inline void store_first(float *d, __m256 v, int64_t h) {
    if (h == 8) {
        _mm256_storeu_ps(d, v);
    } else if (h >= 4) {
        _mm_storeu_ps(d, _mm256_castps256_ps128(v));
        if (h == 6) _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v, 1));
        else if (h != 4) {
            float t[8];
            _mm256_storeu_ps(t, v);
            for (int64_t i = 4; i < h; i++) d[i] = t[i];
        }
    } else {
        float t[8];
        _mm256_storeu_ps(t, v);
        for (int64_t i = 0; i < h; i++) d[i] = t[i];
    }
}

/* The packer of sgemm.h for a full strip (w == W) of width W; inlined into
 * the fixed-width entry points below, so W is a constant there. */
static inline __attribute__((always_inline)) void
pack_strip(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w, int64_t kc, int64_t W) {
    if (w != W) {
        pack_scalar(dst, src, rs, cs, w, 0, kc, W);
        return;
    }
    if (rs == 1) { /* the W values of each k are contiguous: copy */
        for (int64_t k = 0; k < kc; k++) {
            const float *s = src + k * cs;
            float *d = dst + k * W;
            int64_t r = 0;
            for (; r + 8 <= W; r += 8) _mm256_storeu_ps(d + r, _mm256_loadu_ps(s + r));
            for (; r + 4 <= W; r += 4) _mm_storeu_ps(d + r, _mm_loadu_ps(s + r));
            for (; r < W; r++) d[r] = s[r];
        }
        return;
    }
    /* cs == 1: W rows, k contiguous in each: 8x8 transposes, 8 rows x 8 k at a time */
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        for (int64_t r0 = 0; r0 < W; r0 += 8) {
            const int64_t h = W - r0 < 8 ? W - r0 : 8;
            __m256 t[8];
            for (int64_t i = 0; i < 8; i++)
                t[i] = i < h ? _mm256_loadu_ps(src + (r0 + i) * rs + k) : _mm256_setzero_ps();
            transpose8(t);
            for (int64_t j = 0; j < 8; j++) store_first(dst + (k + j) * W + r0, t[j], h);
        }
    }
    pack_scalar(dst, src, rs, cs, w, k, kc, W);
}

void loom_sgemm_pack_avx2_6(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                            int64_t kc) {
    pack_strip(dst, src, rs, cs, w, kc, 6);
}

void loom_sgemm_pack_avx2_12(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                             int64_t kc) {
    pack_strip(dst, src, rs, cs, w, kc, 12);
}

void loom_sgemm_pack_avx2_16(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                             int64_t kc) {
    pack_strip(dst, src, rs, cs, w, kc, 16);
}

void loom_sgemm_pack_avx2_32(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                             int64_t kc) {
    pack_strip(dst, src, rs, cs, w, kc, 32);
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
