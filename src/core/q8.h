/* q8.h: int8 weights with per-group scales ("q8"), and their products with
 * fp32 activations through integer dot products.
 *
 * Quantizing. A row-major matrix X (M, K) is cut, row by row, into groups of G
 * consecutive values along K. Group g of row m gets one scale and G int8 values
 * (symmetric, round to nearest):
 *
 *     d[m][g] = max_{k in g} |X[m][k]| / 127        (0 for an all-zero group)
 *     q[m][k] = round(X[m][k] / d[m][g])             in [-127, 127], never -128
 *
 * so that |X[m][k] - q[m][k] * d[m][g]| <= d[m][g] / 2 (plus float rounding).
 * K need not be a multiple of G: each row is stored padded with zeros to
 * KP = q8_padded(K, G) values, so every group holds G values and the last one
 * ends in zeros. q is (M, KP) int8, d is (M, KP / G) float.
 *
 * Products. Y (M, N) = X (M, K) W^T (+ Y), W (N, K) quantized once (the
 * weights), X quantized on the fly (the activations, into caller scratch):
 *
 *     Y[m][n] = sum_g  d_x[m][g] d_w[n][g] * sum_{k in g} q_x[m][k] q_w[n][k]
 *
 * The integer products are summed exactly (int32 lanes of 4 products); the
 * scaled sums in float (the SIMD kernels keep 8 or 16 lanes of partial sums
 * per output, so they differ from the double-precision reference
 * q8_matmul_ref by float rounding only; the tests bound that). G must be a
 * multiple of 32 in [32, 1024] (32 int8 values fill an AVX2 register;
 * 127 * 127 * 1024 < 2^24 keeps a group's integer sum exact in a float).
 *
 *     int64_t KP = q8_padded(K, G), ng = KP / G;
 *     q8_quantize(wq, wd, W, N, K, K, G);              // once: wq (N, KP), wd (N, ng)
 *     q8_quantize(xq, xd, x, 1, K, K, G);              // per token: xq (KP), xd (ng)
 *     q8_matmul(y, N, xq, xd, 1, wq, wd, N, KP, G, 0.0f);   // y (N) = W x
 *
 * Kernels: AVX2 (_mm256_maddubs_epi16 on |w| and x * sign(w), then
 * _mm256_madd_epi16: 32 products per step) and AVX-512 VNNI (_mm512_dpbusd_epi32:
 * 64 per step), chosen once per process from cpuid; without AVX2 the reference
 * runs. OpenMP splits the N outputs (never K), so every output is summed in the
 * same order at any thread count: the bits do not depend on it.
 */
#ifndef LOOM_CORE_Q8_H
#define LOOM_CORE_Q8_H

#include <stdint.h>

#include "core/error.h"

#define Q8_MAX 127          /* |q| <= Q8_MAX */
#define Q8_GROUP_MIN 32
#define Q8_GROUP_MAX 1024

/* 0 if G is a valid group size (a multiple of 32 in [32, 1024]), else -1 with err set. */
int q8_group_check(int64_t G, loom_error *err);
/* K rounded up to a multiple of G: the stored row length. */
int64_t q8_padded(int64_t K, int64_t G);

/* x (M, K) with row stride ldx -> q (M, KP), d (M, KP/G), as above, rounding
 * half away from zero. A NaN becomes 0; an infinite value makes its group's
 * scale infinite. AVX2 where the CPU has it, bit-identical to the reference. */
void q8_quantize(int8_t *q, float *d, const float *x, int64_t M, int64_t K, int64_t ldx, int32_t G);
void q8_quantize_ref(int8_t *q, float *d, const float *x, int64_t M, int64_t K, int64_t ldx,
                     int32_t G);
/* q (M, KP), d (M, KP/G) -> x (M, K): x = q * d. */
void q8_dequantize(float *x, const int8_t *q, const float *d, int64_t M, int64_t K, int32_t G);

/* Y (M, N), row stride ldy, = X W^T + beta Y (beta 0: Y is not read; or 1).
 * xq (M, KP), xd (M, KP/G): X quantized; wq (N, KP), wd (N, KP/G): W quantized. */
void q8_matmul(float *y, int64_t ldy, const int8_t *xq, const float *xd, int64_t M,
               const int8_t *wq, const float *wd, int64_t N, int64_t KP, int32_t G, float beta);
/* The same, naive: each output summed in double, group by group. */
void q8_matmul_ref(float *y, int64_t ldy, const int8_t *xq, const float *xd, int64_t M,
                   const int8_t *wq, const float *wd, int64_t N, int64_t KP, int32_t G, float beta);

typedef enum q8_kernel {
    Q8_KERNEL_AUTO = 0,   /* the best one this CPU runs */
    Q8_KERNEL_REF,        /* q8_matmul_ref */
    Q8_KERNEL_AVX2,       /* needs AVX2 */
    Q8_KERNEL_AVX512VNNI, /* needs AVX-512 F, BW and VNNI */
} q8_kernel;

/* 1 if this CPU (and OS) can run kernel k (AUTO and REF: always). */
int q8_kernel_available(q8_kernel k);
/* "ref", "avx2", "avx512vnni"; for AUTO the name of the kernel it resolves to. */
const char *q8_kernel_name(q8_kernel k);
/* q8_matmul with a chosen kernel and at most n_threads threads (<= 0: all;
 * inside an OpenMP parallel region: the calling thread). Returns 0, or -1
 * with y unchanged when the kernel is not available here or an argument is
 * invalid (negative sizes, KP not a multiple of a valid G, ldy < N). */
int q8_matmul_ex(q8_kernel k, int n_threads, float *y, int64_t ldy, const int8_t *xq,
                 const float *xd, int64_t M, const int8_t *wq, const float *wd, int64_t N,
                 int64_t KP, int32_t G, float beta);

/* ---- internal: the micro-kernels (q8_avx2.c, q8_avx512.c), used by q8.c ----
 *
 * One row x of X against four rows of W: for i < 4,
 *     out[i] = sum over the KP/G groups g of xd[g] * wd[i][g] * (x . w[i] over g)
 * where w[i] = w + i * ldw (int8, KP long) and wd[i] = wd + i * ldd. Rows may
 * repeat (the driver passes the last row again for a tail of fewer than 4).
 * The four sums are reduced the same way, so a row's value does not depend on
 * its place in the tile. */
/* One full group of G values (G a multiple of 8): q (G), *d, as q8_quantize. */
void q8_quantize_group_avx2(int8_t *q, float *d, const float *x, int32_t G);

void q8_kernel_avx2_1x4(const int8_t *x, const float *xd, const int8_t *const w[4],
                        const float *const wd[4], int64_t KP, int32_t G, float out[4]);
void q8_kernel_avx512vnni_1x4(const int8_t *x, const float *xd, const int8_t *const w[4],
                              const float *const wd[4], int64_t KP, int32_t G, float out[4]);

#endif
