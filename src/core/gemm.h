/* gemm.h: the matrix products the model uses, row-major, C = A op B + beta C.
 *
 *   gemm_nt: C (M, N) = A (M, K) * B^T, B stored (N, K)   -- y = x W^T (linear forward)
 *   gemm_nn: C (M, N) = A (M, K) * B,   B stored (K, N)   -- dx = dy W
 *   gemm_tn: C (M, N) = A^T * B, A stored (K, M), B (K, N) -- dW = dy^T x
 *
 * beta is 0 (overwrite) or 1 (accumulate). The fast path is loom's own sgemm
 * (core/sgemm.h); *_blas call OpenBLAS (cblas), the fallback and a reference;
 * the *_ref functions are naive loops kept as the reference for tests.
 * lda/ldb/ldc are the row strides (in floats) of A, B and C. */
#ifndef LOOM_CORE_GEMM_H
#define LOOM_CORE_GEMM_H

#include <stdint.h>

void gemm_nt(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc);
void gemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc);
void gemm_tn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc);

void gemm_nt_blas(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float beta, float *C, int64_t ldc);
void gemm_nn_blas(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float beta, float *C, int64_t ldc);
void gemm_tn_blas(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float beta, float *C, int64_t ldc);

void gemm_nt_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc);
void gemm_nn_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc);
void gemm_tn_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc);

#endif
