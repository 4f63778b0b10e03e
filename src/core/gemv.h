/* gemv.h: loom's fp32 product for a few rows, the shape of decoding:
 *
 *   loom_gemv_nt: y (M, N) = x (M, K) W^T + beta y,  W stored (N, K) row-major
 *
 * x holds one token of each of M sequences decoded together (M = 1 to 16), W
 * is a weight matrix (N, K) read once per step. Same argument order and
 * meaning as gemm_nt / loom_sgemm_nt: ldx, ldw, ldy are row strides in floats;
 * beta 0 overwrites y (y is then never read, so it may hold NaN), beta 1
 * accumulates (other values work too: y = fma(beta, y, sum)).
 *
 *   loom_gemv_nt(1, N, K, x, K, W, K, 0.0f, y, N);          // y (N) = W (N, K) x (K)
 *   loom_gemv_nt(B, F, C, h, C, w_up, C, 0.0f, up, F);      // up (B, F) = h (B, C) w_up (F, C)^T
 *
 * Unlike loom_sgemm_nt it packs nothing and allocates nothing: every W row is
 * read where it lies, once per call (at M = 1 the product is a pass over W,
 * bound by memory), and each W vector loaded is used for up to 3 rows of x.
 * At M = 16 it is about as fast as loom_sgemm_nt; for more rows use that.
 *
 * How (details in gemv.c): W is cut into blocks of 8 rows; each block meets
 * every row of x in register tiles, 1 x 8 (M = 1) or 3 x 4 and 2 x 4 (rows of
 * x by rows of W), one 8-float accumulator per output, horizontal sums at the
 * end. The kernel is chosen once per process from cpuid: AVX2+FMA when the CPU
 * has it, else the generic kernel (plain C, same arithmetic).
 *
 * Bits: every output y[m][n] is the same chain, whatever M, the tile it falls
 * in, the thread count and the kernel: 8 lanes, lane l summing
 * x[m][k] * W[n][k] for k = l, l + 8, l + 16, ... in order, one fused
 * multiply-add per term from +0 (the last, partial, group of 8 padded with
 * zeros), then ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), then merged
 * into y as above. So a row of y does not depend on the other rows of x
 * (a sequence decodes the same alone or in a batch), results are bit-identical
 * run to run and across thread counts, and the AVX2 kernel equals the generic
 * one bit for bit (tests/test_gemv.c checks all three).
 *
 * Threads: called outside any OpenMP parallel region, a product uses
 * omp_get_max_threads() threads (one if it is small), splitting the N outputs
 * (never K); called inside one, it runs on the calling thread alone.
 *
 * Errors: loom_gemv_nt cannot report one; invalid arguments (negative sizes, a
 * stride narrower than its row, a NULL matrix that would be read) leave y
 * unchanged. loom_gemv_nt_ex returns the status.
 */
#ifndef LOOM_CORE_GEMV_H
#define LOOM_CORE_GEMV_H

#include <stdint.h>

void loom_gemv_nt(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const float *W,
                  int64_t ldw, float beta, float *y, int64_t ldy);

/* Which kernel runs. AUTO: AVX2 when this CPU runs it, else GENERIC. */
typedef enum loom_gemv_kernel {
    LOOM_GEMV_KERNEL_AUTO = 0,
    LOOM_GEMV_KERNEL_GENERIC, /* plain C (fmaf): any CPU; the reference for the SIMD one */
    LOOM_GEMV_KERNEL_AVX2,    /* needs AVX2 and FMA */
} loom_gemv_kernel;

/* 1 if this CPU (and OS) can run kernel k (AUTO and GENERIC: always), else 0. */
int loom_gemv_kernel_available(loom_gemv_kernel k);
/* "generic", "avx2"; for AUTO the name of the kernel it resolves to. */
const char *loom_gemv_kernel_name(loom_gemv_kernel k);

/* loom_gemv_nt with a chosen kernel and at most n_threads threads (<= 0: all
 * of omp_get_max_threads(); inside an OpenMP parallel region: the calling
 * thread). Returns 0, or -1 with y unchanged when an argument is invalid
 * (M, N or K negative; y NULL or ldy < N; with K > 0, x or W NULL, ldx < K or
 * ldw < K) or the kernel is not available on this CPU. M or N 0: nothing to
 * do, 0. K 0: y = beta y (beta 0 writes zeros). */
int loom_gemv_nt_ex(loom_gemv_kernel kernel, int n_threads, int64_t M, int64_t N, int64_t K,
                    const float *x, int64_t ldx, const float *W, int64_t ldw, float beta, float *y,
                    int64_t ldy);

/* ---- internal: the AVX2 tile kernels (gemv_avx2.c), used by gemv.c. Not for callers. ----
 *
 * A tile kernel "R x C" computes, for the R rows of x at x + i*ldx (i < R) and
 * the C rows of W at w[j] (j < C; pointers may repeat: a short block passes its
 * last row again), with K > 0:
 *     out[i*C + j] = sum over k < K of x[i][k] * w[j][k]
 * in the order stated above ("Bits"). pf[j] (j < C) are the rows the next tile
 * will read: only prefetched, never loaded. Nothing but out is written. */
void loom_gemv_kernel_avx2_1x8(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out);
void loom_gemv_kernel_avx2_2x4(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out);
void loom_gemv_kernel_avx2_3x4(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out);

#endif
