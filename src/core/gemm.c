#include "gemm.h"

#include <cblas.h>

#include "core/sgemm.h"

void gemm_nt_blas(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f,
                A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void gemm_nn_blas(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f,
                A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void gemm_tn_blas(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f,
                A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

/* Naive references, accumulated in double so they are a trustworthy baseline. */
void gemm_nt_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)A[i * lda + k] * B[j * ldb + k];
            C[i * ldc + j] = (float)(s + (beta != 0.0f ? (double)beta * C[i * ldc + j] : 0.0));
        }
}

void gemm_nn_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)A[i * lda + k] * B[k * ldb + j];
            C[i * ldc + j] = (float)(s + (beta != 0.0f ? (double)beta * C[i * ldc + j] : 0.0));
        }
}

void gemm_tn_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)A[k * lda + i] * B[k * ldb + j];
            C[i * ldc + j] = (float)(s + (beta != 0.0f ? (double)beta * C[i * ldc + j] : 0.0));
        }
}

/* The fast path: loom's own packed sgemm (AVX2/AVX-512 kernels chosen from
 * cpuid; it falls back to OpenBLAS on CPUs without them). */
void gemm_nt(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc) {
    loom_sgemm_nt(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc) {
    loom_sgemm_nn(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void gemm_tn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
             int64_t ldb, float beta, float *C, int64_t ldc) {
    loom_sgemm_tn(M, N, K, A, lda, B, ldb, beta, C, ldc);
}
