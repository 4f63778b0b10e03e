/* sgemm.h: loom's own single-precision matrix product, row-major, C = A op B + beta C.
 *
 *   loom_sgemm_nt: C (M, N) = A (M, K) * B^T, B stored (N, K)   -- y = x W^T (linear forward)
 *   loom_sgemm_nn: C (M, N) = A (M, K) * B,   B stored (K, N)   -- dx = dy W
 *   loom_sgemm_tn: C (M, N) = A^T * B, A stored (K, M), B (K, N) -- dW = dy^T x
 *
 * Why the loom_ prefix: OpenBLAS exports its internal drivers as sgemm_nn,
 * sgemm_nt, sgemm_tn and sgemm_tt, and cblas_sgemm calls them through the PLT,
 * so any function of loom's named like that replaces them and silently breaks
 * every single-threaded cblas_sgemm (tests/test_sgemm.c checks this).
 *
 * Same arguments and meaning as gemm_nt/nn/tn in gemm.h (which wrap OpenBLAS):
 * lda/ldb/ldc are row strides in floats, beta is usually 0 (overwrite; C is then
 * never read, so it may hold NaN) or 1 (accumulate), any other value works too.
 *
 *   loom_sgemm_nt(BT, F, C, x, C, w_up, C, 0.0f, up, F);   // up (BT, F) = x (BT, C) w_up (F, C)^T
 *
 * How it works (Goto/BLIS, details in sgemm.c): B is packed in (KC, NC) panels
 * of NR-wide micro-panels shared by the threads; each thread packs (MC, KC)
 * blocks of A into MR-tall micro-panels (or, when N is small, reads A in place)
 * and runs an MR x NR register-tile micro-kernel (AVX2+FMA 6x16, AVX-512F 12x32)
 * over them. The layouts differ only in the packing, so one kernel serves all.
 * The kernel is chosen once per process from cpuid; without AVX2+FMA the calls
 * fall through to OpenBLAS.
 *
 * Threads: called outside any OpenMP parallel region, a product uses
 * omp_get_max_threads() threads (one if it is small), splitting rows (or
 * columns) of C, never K; called inside one (e.g. per attention head), it runs
 * on the calling thread alone. Each element of C is summed in the same order
 * whatever the thread count, so results are bit-identical run to run and
 * across thread counts; all kernels use KC = 256 and one fused multiply-add per
 * term, so they agree bit for bit too (the tests compare each SIMD kernel this
 * CPU has with the generic one).
 *
 * Memory: packing buffers live in one arena per calling thread (a thread-local
 * pointer, grown on demand, never shrunk), so steady-state calls do not
 * allocate. loom_sgemm_free_buffers() releases the calling thread's arena.
 *
 * Errors: loom_sgemm_nt/nn/tn cannot report one. Invalid arguments (negative sizes,
 * a stride narrower than its row, a NULL matrix that would be read) leave C
 * unchanged; if the arena cannot be allocated they compute with OpenBLAS
 * instead. loom_sgemm_ex returns the status.
 */
#ifndef LOOM_CORE_SGEMM_H
#define LOOM_CORE_SGEMM_H

#include <stdint.h>

void loom_sgemm_nt(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc);
void loom_sgemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc);
void loom_sgemm_tn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc);

/* Which micro-kernel runs. LOOM_SGEMM_KERNEL_AUTO is the best one this CPU supports.
 * LOOM_SGEMM_KERNEL_GENERIC is plain C with the AVX-512 kernel's 12x32 tile: slow, it
 * exists so that tests can check the blocking and packing of that tile shape
 * on machines without AVX-512. */
typedef enum loom_sgemm_kernel {
    LOOM_SGEMM_KERNEL_AUTO = 0,
    LOOM_SGEMM_KERNEL_GENERIC,
    LOOM_SGEMM_KERNEL_AVX2,   /* 6x16, needs AVX2 and FMA */
    LOOM_SGEMM_KERNEL_AVX512, /* 12x32, needs AVX-512F */
} loom_sgemm_kernel;

/* 1 if this CPU (and OS) can run kernel k, else 0. AUTO is available iff some
 * SIMD kernel is. */
int loom_sgemm_kernel_available(loom_sgemm_kernel k);
/* "generic", "avx2", "avx512"; for AUTO the name of the kernel it resolves to,
 * or "openblas" when it falls back. */
const char *loom_sgemm_kernel_name(loom_sgemm_kernel k);

/* The general entry point: C (M, N) = op(A) op(B) + beta C, where op(A) is A (M, K)
 * stored row-major with stride lda, or if trans_a the transpose of A stored (K, M);
 * op(B) is B (K, N), or if trans_b the transpose of B stored (N, K).
 * loom_sgemm_nt is trans_b = 1, loom_sgemm_tn is trans_a = 1.
 * n_threads <= 0: as described above (all threads at top level, 1 inside a
 * parallel region); n_threads >= 1: at most that many (1 inside a parallel region).
 * Returns 0 on success; -1 with C unchanged if the arguments are invalid, the
 * kernel is not available on this CPU or the arena cannot be allocated. */
int loom_sgemm_ex(loom_sgemm_kernel kernel, int n_threads, int trans_a, int trans_b, int64_t M,
                  int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                  float beta, float *C, int64_t ldc);

/* Frees the calling thread's packing arena (it is re-created by the next call). */
void loom_sgemm_free_buffers(void);

/* ---- internal: the micro-kernels and packers, defined in sgemm_avx2.c and
 * sgemm_avx512.c and used by sgemm.c. Not for callers. ----
 *
 * A micro-kernel computes one MR x NR tile: with s[i][j] = sum_k A(i, k) * b[k*NR + j]
 * summed k = 0..kc-1 in order, one fused multiply-add per term, from 0,
 *   c[i*ldc + j] = s (beta 0, c not read), c + s (beta 1), fma(beta, c, s) (other beta)
 * for i < MR, j < NR. A(i, k) = a[i*a_rs + k*a_cs]: a packed A micro-panel
 * (a_rs 1, a_cs MR) or A where it lies. b is a packed B micro-panel (kc, NR),
 * 64-byte aligned (the AVX2 kernel uses aligned loads).
 *
 * A packer writes a W-wide micro-panel dst (kc, W) (W = MR for A, NR for B) from
 * the strip of w <= W rows starting at src, where element (r, k) is
 * src[r*rs + k*cs] (one of rs, cs is 1): dst[k*W + r] = element (r, k) for r < w,
 * 0 for w <= r < W. Nothing outside dst (kc, W) is written. */
void loom_sgemm_kernel_avx2_6x16(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                                 const float *b, float *c, int64_t ldc, float beta);
void loom_sgemm_pack_avx2_6(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                            int64_t kc);
void loom_sgemm_pack_avx2_12(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                             int64_t kc);
void loom_sgemm_pack_avx2_16(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                             int64_t kc);
void loom_sgemm_pack_avx2_32(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                             int64_t kc);
void loom_sgemm_kernel_avx512_12x32(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                                    const float *b, float *c, int64_t ldc, float beta);

#endif
