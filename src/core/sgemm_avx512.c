/* sgemm_avx512.c: the AVX-512F micro-kernel (12x32 tile).
 *
 * Compiled for AVX-512F whatever the build flags (the target pragma below), and
 * called only after cpuid said the CPU has it (sgemm.c). Contract in sgemm.h;
 * its packers are the AVX2 ones of widths 12 and 32 (sgemm_avx2.c).
 *
 * The 12x32 tile: 24 zmm accumulators (12 rows x 2 vectors of 16), 2 B vectors
 * and a broadcast A value (27 of 32 registers). Written as the plain loop of
 * the contract, fully unrolled by the compiler: the same arithmetic as the
 * generic kernel (one FMA per term, in k order), so it must give the same bits.
 * NOTE: the development machine has no AVX-512, so this kernel has not run on
 * hardware. It was compiled and its assembly read (24 accumulators in
 * registers, no spills), and run with plain-C stand-ins for the six intrinsics
 * it uses, bit-exact against the contract for packed and strided A and beta
 * 0, 1, 0.5. The tests run it wherever the CPU has AVX-512F, against the naive
 * reference and, bit for bit, the generic kernel.
 */
#include "sgemm.h"

#include <immintrin.h>
#include <stddef.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif

void loom_sgemm_kernel_avx512_12x32(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                                    const float *b, float *c, int64_t ldc, float beta) {
    __m512 acc[12][2];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();

    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_loadu_ps(b + k * 32), b1 = _mm512_loadu_ps(b + k * 32 + 16);
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            const __m512 av = _mm512_set1_ps(a[i * a_rs + k * a_cs]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
    }

    const __m512 bv = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        float *cr = c + i * ldc;
        for (int h = 0; h < 2; h++) {
            __m512 v = acc[i][h];
            if (beta == 1.0f) v = _mm512_add_ps(_mm512_loadu_ps(cr + 16 * h), v);
            else if (beta != 0.0f) v = _mm512_fmadd_ps(bv, _mm512_loadu_ps(cr + 16 * h), v);
            _mm512_storeu_ps(cr + 16 * h, v);
        }
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
