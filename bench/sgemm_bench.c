/* sgemm_bench.c: loom's sgemm against OpenBLAS on the training shapes, and both
 * against the machine's fp32 FMA peak.
 *
 *   sgemm_bench [--threads N] [--reps R] [--ms T]
 *
 * (1) Peak: a register-resident loop of independent FMA chains (12 ymm, or 24
 *     zmm with AVX-512: more than latency x throughput on any current core),
 *     on 1 thread and on all threads, best of R runs.
 * (2) For each shape of the d_model 256, 6-layer, batch 16 x 128 training step:
 *     loom (loom_sgemm_nt/nn/tn) and OpenBLAS (cblas_sgemm), both with N threads
 *     (default: all), best of R runs of at least T ms each, loom and OpenBLAS
 *     alternating so that both see the same background load; and the max
 *     difference of their outputs (exit 1 if they disagree). The attention
 *     shapes run as the model runs them: 128 small products (batch x heads)
 *     from inside an OpenMP parallel loop, each single-threaded.
 *
 * Other processes on the machine skew the numbers: run it on an idle machine
 * (`uptime`), or run it twice and keep the better.
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "core/sgemm.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- (1) FMA peak ---- */

/* n iterations of 12 independent ymm FMA chains: 12 * 8 * 2 * n flops. */
__attribute__((target("avx2,fma"))) static float fma_loop_avx2(int64_t n) {
    __m256 a0 = _mm256_set1_ps(0.1f), a1 = _mm256_set1_ps(0.2f), a2 = _mm256_set1_ps(0.3f);
    __m256 a3 = _mm256_set1_ps(0.4f), a4 = _mm256_set1_ps(0.5f), a5 = _mm256_set1_ps(0.6f);
    __m256 a6 = _mm256_set1_ps(0.7f), a7 = _mm256_set1_ps(0.8f), a8 = _mm256_set1_ps(0.9f);
    __m256 a9 = _mm256_set1_ps(1.0f), a10 = _mm256_set1_ps(1.1f), a11 = _mm256_set1_ps(1.2f);
    const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    for (int64_t i = 0; i < n; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c), a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c), a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

/* n iterations of 24 independent zmm FMA chains: 24 * 16 * 2 * n flops. */
__attribute__((target("avx512f"))) static float fma_loop_avx512(int64_t n) {
    __m512 a[24];
    for (int i = 0; i < 24; i++) a[i] = _mm512_set1_ps(0.05f * (float)i);
    const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    for (int64_t i = 0; i < n; i++) {
#pragma GCC unroll 24
        for (int j = 0; j < 24; j++) a[j] = _mm512_fmadd_ps(a[j], m, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, a[i]);
    float out[16];
    _mm512_storeu_ps(out, s);
    return out[0];
}

/* GFLOP/s of the FMA loop on nth threads (each running it), best of reps. */
static double fma_peak(int nth, int use512, int reps) {
    const int64_t n = 20000000;
    const double flops_per_thread = use512 ? 24.0 * 16 * 2 * (double)n : 12.0 * 8 * 2 * (double)n;
    double best = 1e30;
    volatile float sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
#pragma omp parallel num_threads(nth)
        {
            float v = use512 ? fma_loop_avx512(n) : fma_loop_avx2(n);
#pragma omp atomic
            sink += v;
        }
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    (void)sink;
    return flops_per_thread * nth / best * 1e-9;
}

/* ---- (2) the shapes ---- */

typedef enum { LAY_NT, LAY_NN, LAY_TN } layout;
static const char *lay_name[] = {"nt", "nn", "tn"};

typedef struct shape {
    layout lay;
    int64_t M, N, K;
    int nested; /* attention: 0 = one call at top level; else this many calls inside a parallel loop */
    const char *what;
} shape;

static const shape shapes[] = {
    {LAY_NT, 2048, 256, 256, 0, "q/k/v/o fwd"},
    {LAY_NT, 2048, 688, 256, 0, "gate/up fwd"},
    {LAY_NT, 2048, 256, 688, 0, "down fwd"},
    {LAY_NT, 2048, 1024, 256, 0, "lm_head fwd"},
    {LAY_NN, 2048, 256, 688, 0, "dx of down"},
    {LAY_NN, 2048, 688, 256, 0, "dx of gate/up"},
    {LAY_NN, 2048, 256, 1024, 0, "dx of lm_head"},
    {LAY_TN, 256, 256, 2048, 0, "dW q/k/v/o"},
    {LAY_TN, 688, 256, 2048, 0, "dW gate/up"},
    {LAY_TN, 256, 688, 2048, 0, "dW down"},
    {LAY_TN, 1024, 256, 2048, 0, "dW lm_head"},
    {LAY_NT, 128, 128, 32, 128, "attn scores"},
    {LAY_NN, 128, 32, 128, 128, "attn P V"},
    {LAY_TN, 128, 32, 128, 128, "attn dV"},
    /* decoder.c cuts queries into blocks of 32 rows: the largest block of each */
    {LAY_NT, 32, 128, 32, 512, "attn blk scores"},
    {LAY_NN, 32, 32, 128, 512, "attn blk P V"},
    {LAY_TN, 128, 32, 32, 512, "attn blk dV"},
};

/* Operands of one shape. Nested (attention) shapes have 128 copies, one per
 * (batch b, head h) = (i / 8, i % 8), laid out as decoder.c has them: an operand
 * HD = 32 wide is head h's column slice of a (B=16, T=128, 8*32) activation
 * (row stride 256), a wider one (the T x T probabilities) a block of its own. */
typedef struct operand {
    float *p;
    int64_t ld;
    size_t step_b, step_h; /* copy i starts at p + (i / 8) * step_b + (i % 8) * step_h */
} operand;

typedef struct operands {
    operand A, B, C[2]; /* C[0] for loom, C[1] for OpenBLAS */
} operands;

static float *rand_buf(size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "sgemm_bench: out of memory\n");
        exit(1);
    }
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
    return p;
}

static void operand_init(operand *o, int64_t rows, int64_t cols, int nested) {
    if (nested && cols == 32) { /* a head's slice of a (nested / 8, rows, 256) activation */
        o->ld = 256, o->step_h = 32, o->step_b = (size_t)rows * 256;
        o->p = rand_buf((size_t)(nested / 8) * (size_t)rows * 256);
    } else {
        o->ld = cols, o->step_h = (size_t)(rows * cols), o->step_b = 8 * o->step_h;
        o->p = rand_buf(o->step_h * (nested ? (size_t)nested : 1));
    }
}

static float *operand_at(const operand *o, size_t i) {
    return o->p + i / 8 * o->step_b + i % 8 * o->step_h;
}

static void operands_init(const shape *sh, operands *op) {
    const int64_t arows = sh->lay == LAY_TN ? sh->K : sh->M,
                  acols = sh->lay == LAY_TN ? sh->M : sh->K;
    const int64_t brows = sh->lay == LAY_NT ? sh->N : sh->K,
                  bcols = sh->lay == LAY_NT ? sh->K : sh->N;
    operand_init(&op->A, arows, acols, sh->nested);
    operand_init(&op->B, brows, bcols, sh->nested);
    operand_init(&op->C[0], sh->M, sh->N, sh->nested);
    operand_init(&op->C[1], sh->M, sh->N, sh->nested);
}

static void operands_free(operands *op) {
    free(op->A.p), free(op->B.p), free(op->C[0].p), free(op->C[1].p);
}

static void run_one(const shape *sh, const operands *op, int which, size_t i) {
    const float *A = operand_at(&op->A, i), *B = operand_at(&op->B, i);
    float *C = operand_at(&op->C[which], i);
    const int64_t M = sh->M, N = sh->N, K = sh->K, lda = op->A.ld, ldb = op->B.ld,
                  ldc = op->C[0].ld;
    if (which == 0) {
        if (sh->lay == LAY_NT)
            loom_sgemm_nt(M, N, K, A, lda, B, ldb, 0.0f, C, ldc);
        else if (sh->lay == LAY_NN)
            loom_sgemm_nn(M, N, K, A, lda, B, ldb, 0.0f, C, ldc);
        else
            loom_sgemm_tn(M, N, K, A, lda, B, ldb, 0.0f, C, ldc);
    } else {
        cblas_sgemm(CblasRowMajor, sh->lay == LAY_TN ? CblasTrans : CblasNoTrans,
                    sh->lay == LAY_NT ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N,
                    (blasint)K, 1.0f, A, (blasint)lda, B, (blasint)ldb, 0.0f, C, (blasint)ldc);
    }
}

/* max |loom - OpenBLAS| over the outputs: a wrong kernel must not get a speed. */
static double max_diff(const shape *sh, const operands *op) {
    const int copies = sh->nested ? sh->nested : 1;
    double d = 0;
    for (int c = 0; c < copies; c++) {
        const float *c0 = operand_at(&op->C[0], (size_t)c), *c1 = operand_at(&op->C[1], (size_t)c);
        for (int64_t i = 0; i < sh->M; i++)
            for (int64_t j = 0; j < sh->N; j++) {
                const double e =
                    fabs((double)c0[i * op->C[0].ld + j] - (double)c1[i * op->C[0].ld + j]);
                if (!(e <= d)) d = e; /* NaN sticks */
            }
    }
    return d;
}

/* One timed pass: iters products (nested: iters parallel loops over the copies). */
static double run_pass(const shape *sh, const operands *op, int which, int iters) {
    double t0 = now_s();
    for (int it = 0; it < iters; it++) {
        if (sh->nested) {
#pragma omp parallel for schedule(static)
            for (int i = 0; i < sh->nested; i++) run_one(sh, op, which, (size_t)i);
        } else {
            run_one(sh, op, which, 0);
        }
    }
    return now_s() - t0;
}

int main(int argc, char **argv) {
    int nth = omp_get_num_procs(), reps = 7;
    double min_ms = 60;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
            min_ms = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: sgemm_bench [--threads N] [--reps R] [--ms T]\n"
                            "  N threads for loom and OpenBLAS (default: all cores), best of R\n"
                            "  runs (default 7) of at least T ms each (default 60)\n");
            return 2;
        }
    }
    if (nth < 1 || reps < 1 || min_ms <= 0) {
        fprintf(stderr, "sgemm_bench: bad argument\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* rows as they come, also into a file */
    omp_set_num_threads(nth);
    openblas_set_num_threads(nth);
    const int procs = omp_get_num_procs();

    __builtin_cpu_init();
    const int has512 = __builtin_cpu_supports("avx512f");
    const int has256 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!has256) {
        fprintf(stderr, "sgemm_bench: this CPU has no AVX2+FMA; nothing to measure\n");
        return 1;
    }
    printf("sgemm_bench: loom kernel %s, %s; %d threads (of %d), best of %d runs\n",
           loom_sgemm_kernel_name(LOOM_SGEMM_KERNEL_AUTO), openblas_get_config(), nth, procs, reps);

    const double peak1 = fma_peak(1, has512, reps), peakn = fma_peak(nth, has512, reps);
    printf("fp32 FMA peak (%s): %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d threads\n\n",
           has512 ? "zmm" : "ymm", peak1, peakn, nth);

    printf("%-6s %-18s %-14s %10s %7s %10s %7s %8s %10s\n", "layout", "M x N x K", "use",
           "loom GF/s", "%peak", "oblas GF/s", "%peak", "speedup", "max|diff|");
    int bad = 0;
    double sum_loom = 0, sum_blas = 0; /* total time over the shapes, one product each */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        operands op;
        operands_init(sh, &op);
        const double flops =
            2.0 * (double)sh->M * (double)sh->N * (double)sh->K * (sh->nested ? sh->nested : 1);
        /* check, warm up, calibrate: iterations for min_ms per pass */
        run_pass(sh, &op, 0, 1);
        run_pass(sh, &op, 1, 1);
        const double diff = max_diff(sh, &op);
        double t1 = 0.5 * (run_pass(sh, &op, 0, 1) + run_pass(sh, &op, 1, 1));
        int iters = (int)(min_ms * 1e-3 / (t1 > 1e-6 ? t1 : 1e-6)) + 1;
        double best[2] = {1e30, 1e30};
        for (int r = 0; r < reps; r++)
            for (int w = 0; w < 2; w++) {
                double t = run_pass(sh, &op, w, iters) / iters;
                if (t < best[w]) best[w] = t;
            }
        const double gl = flops / best[0] * 1e-9, gb = flops / best[1] * 1e-9;
        const double peak = peakn; /* the nested loops use all threads too */
        char dims[40];
        if (sh->nested)
            snprintf(dims, sizeof dims, "%ldx%ldx%ld (x%d)", (long)sh->M, (long)sh->N, (long)sh->K,
                     sh->nested);
        else
            snprintf(dims, sizeof dims, "%ldx%ldx%ld", (long)sh->M, (long)sh->N, (long)sh->K);
        printf("%-6s %-18s %-14s %10.1f %6.0f%% %10.1f %6.0f%% %7.2fx %10.2g\n", lay_name[sh->lay],
               dims, sh->what, gl, 100.0 * gl / peak, gb, 100.0 * gb / peak, best[1] / best[0],
               diff);
        /* |entries| <= K/4 (uniform [-0.5, 0.5) operands) */
        if (!(diff <= 1e-5 * sqrt((double)sh->K) * (double)sh->K / 4)) bad = 1;
        sum_loom += best[0], sum_blas += best[1];
        operands_free(&op);
    }
    printf("\nall shapes once: loom %.2f ms, OpenBLAS %.2f ms (%.2fx)\n", sum_loom * 1e3,
           sum_blas * 1e3, sum_blas / sum_loom);
    loom_sgemm_free_buffers();
    if (bad) {
        fprintf(stderr,
                "sgemm_bench: loom and OpenBLAS disagree (max|diff| above): numbers void\n");
        return 1;
    }
    return 0;
}
