/* test_sgemm.c: loom's sgemm against the naive double-accumulating references.
 *
 *   shapes       every layout (nt, nn, tn, and tt through loom_sgemm_ex), every
 *                kernel this CPU runs (generic 12x32, avx2 6x16, avx512 12x32,
 *                auto), odd shapes from {1, 2, 7, 17, 64, 255, 1000}, K across
 *                several KC blocks, N across NC panels, B packed at once and
 *                panel by panel, A packed and read in place, threads splitting
 *                rows and columns, row strides wider than the rows, beta 0, 1
 *                and 0.5, unaligned pointers, NaN in C under beta 0, padding
 *                between C's rows untouched.
 *   packers      the AVX2 packers (widths 6, 12, 16, 32) against the definition,
 *                both source layouts, full and partial strips, nothing written
 *                outside the panel. Widths 12 and 32 feed the AVX-512 kernel.
 *   k == 0       C = beta C.
 *   nested       called from inside an OpenMP parallel loop (attention-sized,
 *                strides 256), each thread its own product.
 *   determinism  two calls bit-identical; 1 thread == 2 threads == default;
 *                every SIMD kernel == the generic kernel (same KC, same FMA chains).
 *   errors       invalid arguments return -1 and leave C unchanged.
 *   openblas     cblas_sgemm on one thread still right when linked with loom:
 *                OpenBLAS exports its drivers as sgemm_nt/nn/tn/tt, so a loom
 *                function of that name would silently replace them.
 *
 * Tolerance of a product with K terms: 1e-5 * sqrt(K) * max(1, max |C_ref|);
 * every comparison prints its max abs difference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>
#include <omp.h>

#include <cblas.h>

#include "core/gemm.h"
#include "core/sgemm.h"

/* ---- helpers ---- */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fail_msg("test_sgemm: out of memory (%zu bytes)", n);
    return p;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float rand_uniform(void) { /* [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rand_matrix(size_t n) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rand_uniform();
    return p;
}

/* tt has no reference in gemm.h: C = A^T B^T, A stored (K, M), B stored (N, K). */
static void gemm_tt_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)A[k * lda + i] * B[j * ldb + k];
            C[i * ldc + j] = (float)(s + (beta != 0.0f ? (double)beta * C[i * ldc + j] : 0.0));
        }
}

typedef void (*gemm_fn)(int64_t, int64_t, int64_t, const float *, int64_t, const float *, int64_t,
                        float, float *, int64_t);

static const char *layout_name[4] = {"nn", "nt", "tn", "tt"}; /* index trans_a*2 + trans_b */
static const gemm_fn layout_ref[4] = {gemm_nn_ref, gemm_nt_ref, gemm_tn_ref, gemm_tt_ref};
static const gemm_fn layout_api[4] = {loom_sgemm_nn, loom_sgemm_nt, loom_sgemm_tn, NULL};

/* Worst result over a group of comparisons. */
typedef struct stats {
    double max_diff;  /* max |C - C_ref| */
    double max_ratio; /* max |C - C_ref| / tolerance */
    int n;
} stats;

/* One product: op(A) (M, K) op(B) (K, N), strides padded by pad, against the
 * reference. kernel < 0 means the fixed-layout API (loom_sgemm_nt/nn/tn). */
static void check_one(int kernel, int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t pad,
                      float beta, stats *st) {
    const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    const int64_t arows = ta ? K : M, brows = tb ? N : K;
    /* +1: the matrices start one float past an aligned address */
    float *Abuf = rand_matrix((size_t)(arows * lda + 1)),
          *Bbuf = rand_matrix((size_t)(brows * ldb + 1));
    float *Cbuf = rand_matrix((size_t)(M * ldc + 1)),
          *R = xmalloc((size_t)(M * ldc) * sizeof(float));
    float *A = Abuf + 1, *B = Bbuf + 1, *C = Cbuf + 1;
    if (beta == 0.0f) /* C is not read under beta 0: NaN must not leak */
        for (int64_t i = 0; i < M; i++) C[i * ldc + (i % N)] = NAN;
    memcpy(R, C, (size_t)(M * ldc) * sizeof(float));

    layout_ref[ta * 2 + tb](M, N, K, A, lda, B, ldb, beta, R, ldc);
    if (kernel < 0)
        layout_api[ta * 2 + tb](M, N, K, A, lda, B, ldb, beta, C, ldc);
    else
        assert_int_equal(loom_sgemm_ex((loom_sgemm_kernel)kernel, 0, ta, tb, M, N, K, A, lda, B,
                                       ldb, beta, C, ldc),
                         0);

    double mag = 1.0, diff = 0.0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double r = R[i * ldc + j];
            if (fabs(r) > mag) mag = fabs(r);
            double d = fabs((double)C[i * ldc + j] - r);
            if (!isnan(diff) && !(d <= diff)) diff = d; /* a NaN lands here and stays */
        }
    /* the padding between rows must be untouched */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < ldc; j++)
            if (memcmp(&C[i * ldc + j], &R[i * ldc + j], sizeof(float)) != 0)
                fail_msg("%s %s M=%ld N=%ld K=%ld: padding of C written at (%ld, %ld)",
                         kernel < 0 ? "api" : loom_sgemm_kernel_name((loom_sgemm_kernel)kernel),
                         layout_name[ta * 2 + tb], (long)M, (long)N, (long)K, (long)i, (long)j);
    const double tol = 1e-5 * sqrt((double)(K > 0 ? K : 1)) * mag;
    if (!(diff <= tol))
        fail_msg("%s %s M=%ld N=%ld K=%ld pad=%ld beta=%g: max diff %.3g > tol %.3g",
                 kernel < 0 ? "api" : loom_sgemm_kernel_name((loom_sgemm_kernel)kernel),
                 layout_name[ta * 2 + tb], (long)M, (long)N, (long)K, (long)pad, beta, diff, tol);
    if (diff > st->max_diff) st->max_diff = diff;
    if (diff / tol > st->max_ratio) st->max_ratio = diff / tol;
    st->n++;
    free(Abuf), free(Bbuf), free(Cbuf), free(R);
}

/* The shapes: all of {1, 2, 7, 17, 64}^3, then the larger sizes in mixes that
 * keep the naive reference fast. Big ones cross KC (K 1000, 600) and NC (N 4500). */
static const int64_t small_sizes[] = {1, 2, 7, 17, 64};
static const int64_t big_shapes[][3] = {
    {1000, 17, 255},  {255, 1000, 7},   {7, 255, 1000}, {1000, 64, 64}, {64, 1000, 255},
    {255, 255, 255},  {1000, 1000, 17}, {17, 64, 1000}, {255, 7, 600},  {7, 4500, 17},
    {1, 1000, 255},   {1000, 1, 255},   {255, 255, 1},  {97, 130, 513}, {7, 4500, 64},
    {200, 4200, 300}, /* B too big to pack at once: two panel buffers in turn */
};

static void check_kernel(int kernel, int small_only) {
    for (int lay = 0; lay < 4; lay++) {
        const int ta = lay / 2, tb = lay % 2;
        if (kernel < 0 && !layout_api[lay]) continue;
        stats st = {0};
        for (size_t a = 0; a < 5; a++)
            for (size_t b = 0; b < 5; b++)
                for (size_t c = 0; c < 5; c++) {
                    const int64_t M = small_sizes[a], N = small_sizes[b], K = small_sizes[c];
                    const int64_t pad = (a + b + c) % 2 ? 3 : 0;
                    check_one(kernel, ta, tb, M, N, K, pad, (a + c) % 2 ? 1.0f : 0.0f, &st);
                }
        const size_t nbig = small_only ? 6 : sizeof big_shapes / sizeof big_shapes[0];
        for (size_t s = 0; s < nbig; s++) {
            const int64_t *sh = big_shapes[s];
            check_one(kernel, ta, tb, sh[0], sh[1], sh[2], s % 3 == 0 ? 5 : 0, 0.0f, &st);
            check_one(kernel, ta, tb, sh[0], sh[1], sh[2], 1, s % 2 ? 1.0f : 0.5f, &st);
        }
        print_message("  %-8s %s: %3d products, max abs diff %.3g (%.2f of tolerance)\n",
                      kernel < 0 ? "api" : loom_sgemm_kernel_name((loom_sgemm_kernel)kernel),
                      layout_name[lay], st.n, st.max_diff, st.max_ratio);
    }
}

/* ---- tests ---- */

static void test_shapes_simd(void **state) {
    (void)state;
    print_message("  best kernel here: %s\n", loom_sgemm_kernel_name(LOOM_SGEMM_KERNEL_AUTO));
    if (loom_sgemm_kernel_available(LOOM_SGEMM_KERNEL_AVX2))
        check_kernel(LOOM_SGEMM_KERNEL_AVX2, 0);
    else
        print_message("  avx2: not on this CPU, skipped\n");
    if (loom_sgemm_kernel_available(LOOM_SGEMM_KERNEL_AVX512))
        check_kernel(LOOM_SGEMM_KERNEL_AVX512, 0);
    else
        print_message("  avx512: not on this CPU, skipped\n");
    check_kernel(-1, 0); /* loom_sgemm_nt/nn/tn, whatever they resolve to */
}

static void test_shapes_generic(void **state) {
    (void)state;
    check_kernel(LOOM_SGEMM_KERNEL_GENERIC, 1); /* slow (fmaf per term): the smaller shapes */
}

typedef void (*pack_fn)(float *, const float *, int64_t, int64_t, int64_t, int64_t);

static void test_packers(void **state) {
    (void)state;
    if (!loom_sgemm_kernel_available(LOOM_SGEMM_KERNEL_AVX2)) {
        print_message("  no AVX2 here: packers skipped\n");
        return;
    }
    const pack_fn fns[4] = {loom_sgemm_pack_avx2_6, loom_sgemm_pack_avx2_12,
                            loom_sgemm_pack_avx2_16, loom_sgemm_pack_avx2_32};
    const int64_t widths[4] = {6, 12, 16, 32}, kcs[5] = {1, 7, 8, 13, 256};
    const int64_t stride = 300; /* between rows of the source, > any kc or width */
    float *src = rand_matrix((size_t)(stride * 300));
    float *dst = xmalloc((size_t)(256 * 32 + 64) * sizeof(float));
    int checked = 0;
    for (int f = 0; f < 4; f++) {
        const int64_t W = widths[f];
        const int64_t ws[3] = {W, W - 1, 1};
        for (int wi = 0; wi < 3; wi++)
            for (int ki = 0; ki < 5; ki++)
                for (int lay = 0; lay < 2; lay++) {
                    const int64_t w = ws[wi], kc = kcs[ki];
                    const int64_t rs = lay ? 1 : stride, cs = lay ? stride : 1;
                    for (int64_t i = 0; i < kc * W + 64; i++) dst[i] = -7.0f;
                    fns[f](dst, src + 3, rs, cs, w, kc);
                    for (int64_t k = 0; k < kc; k++)
                        for (int64_t r = 0; r < W; r++) {
                            const float want = r < w ? src[3 + r * rs + k * cs] : 0.0f;
                            if (dst[k * W + r] != want)
                                fail_msg("pack width %ld, w %ld, kc %ld, %s: (k %ld, r %ld) is %g, "
                                         "want %g",
                                         (long)W, (long)w, (long)kc, lay ? "copy" : "transpose",
                                         (long)k, (long)r, dst[k * W + r], want);
                        }
                    for (int64_t i = kc * W; i < kc * W + 64; i++)
                        if (dst[i] != -7.0f)
                            fail_msg("pack width %ld wrote past the panel", (long)W);
                    checked++;
                }
    }
    print_message("  %d packings (widths 6, 12, 16, 32) exact\n", checked);
    free(src), free(dst);
}

static void test_k_zero(void **state) {
    (void)state;
    float C[6] = {1, 2, 3, 4, 5, NAN}, A[1] = {7}, B[1] = {9};
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 0, 1, 2, 3, 0, A, 1, B, 1, 2.0f, C, 3), 0);
    assert_true(C[0] == 2.0f && C[4] == 10.0f && isnan(C[5]));
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 0, 1, 2, 3, 0, A, 1, B, 1, 0.0f, C, 3), 0);
    for (int i = 0; i < 6; i++) assert_true(C[i] == 0.0f);
}

/* Attention-sized products from inside a parallel loop: per (b, h) slices of
 * (T, H*HD) matrices with stride 256, like decoder.c. */
static void test_nested_parallel(void **state) {
    (void)state;
    enum { NB = 8, T = 128, HD = 32, S = 256 };
    float *q = rand_matrix((size_t)NB * T * S), *k = rand_matrix((size_t)NB * T * S);
    float *P = xmalloc((size_t)NB * T * T * sizeof(float)),
          *Pr = xmalloc((size_t)NB * T * T * sizeof(float));
    float *O = rand_matrix((size_t)NB * T * S), *Or = xmalloc((size_t)NB * T * S * sizeof(float));
    float *G = rand_matrix((size_t)NB * T * S), *Gr = xmalloc((size_t)NB * T * S * sizeof(float));
    memcpy(Or, O, (size_t)NB * T * S * sizeof(float));
    memcpy(Gr, G, (size_t)NB * T * S * sizeof(float));
    int nested_threads = 0;
#pragma omp parallel for schedule(static) reduction(max : nested_threads)
    for (int b = 0; b < NB; b++) {
        const float *qb = q + (size_t)b * T * S + (b % 8) * HD,
                    *kb = k + (size_t)b * T * S + (b % 8) * HD;
        float *Pb = P + (size_t)b * T * T, *Ob = O + (size_t)b * T * S + (b % 8) * HD;
        float *Gb = G + (size_t)b * T * S + (b % 8) * HD;
        loom_sgemm_nt(T, T, HD, qb, S, kb, S, 0.0f, Pb, T); /* scores (T, T) = q k^T */
        loom_sgemm_nn(T, HD, T, Pb, T, kb, S, 0.0f, Ob, S); /* out (T, HD) = P v */
        loom_sgemm_tn(T, HD, T, Pb, T, qb, S, 1.0f, Gb, S); /* dk (+)= P^T q */
        nested_threads = omp_get_num_threads();
    }
    double dmax = 0;
    for (int b = 0; b < NB; b++) {
        const float *qb = q + (size_t)b * T * S + (b % 8) * HD,
                    *kb = k + (size_t)b * T * S + (b % 8) * HD;
        float *Pb = Pr + (size_t)b * T * T, *Ob = Or + (size_t)b * T * S + (b % 8) * HD;
        float *Gb = Gr + (size_t)b * T * S + (b % 8) * HD;
        gemm_nt_ref(T, T, HD, qb, S, kb, S, 0.0f, Pb, T);
        gemm_nn_ref(T, HD, T, P + (size_t)b * T * T, T, kb, S, 0.0f, Ob,
                    S); /* same P as the fast path */
        gemm_tn_ref(T, HD, T, P + (size_t)b * T * T, T, qb, S, 1.0f, Gb, S);
    }
    double mag = 1.0;
    for (size_t i = 0; i < (size_t)NB * T * T; i++) {
        dmax = fmax(dmax, fabs((double)P[i] - Pr[i]));
        mag = fmax(mag, fabs((double)Pr[i]));
    }
    for (size_t i = 0; i < (size_t)NB * T * S; i++) {
        dmax = fmax(dmax, fabs((double)O[i] - Or[i]));
        dmax = fmax(dmax, fabs((double)G[i] - Gr[i]));
        mag = fmax(mag, fmax(fabs((double)Or[i]), fabs((double)Gr[i])));
    }
    const double tol = 1e-5 * sqrt((double)T) * mag; /* K is HD or T <= T */
    print_message("  nested (%d threads): nt/nn/tn max abs diff %.3g (tol %.3g)\n", nested_threads,
                  dmax, tol);
    assert_true(dmax <= tol);
    free(q), free(k), free(P), free(Pr), free(O), free(Or), free(G), free(Gr);
}

static void test_determinism(void **state) {
    (void)state;
    const int64_t M = 1000, N = 700, K = 690; /* several K blocks, edges in M and N */
    float *A = rand_matrix((size_t)(M * K)), *B = rand_matrix((size_t)(K * N));
    float *C1 = xmalloc((size_t)(M * N) * sizeof(float)),
          *C2 = xmalloc((size_t)(M * N) * sizeof(float));
    const size_t bytes = (size_t)(M * N) * sizeof(float);
    for (int lay = 0; lay < 3; lay++) {
        const int ta = lay == 2, tb = lay == 1;
        const int64_t lda = ta ? M : K, ldb = tb ? K : N;
        assert_int_equal(
            loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, ta, tb, M, N, K, A, lda, B, ldb, 0.0f, C1, N),
            0);
        assert_int_equal(
            loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, ta, tb, M, N, K, A, lda, B, ldb, 0.0f, C2, N),
            0);
        assert_memory_equal(C1, C2, bytes);
        assert_int_equal(
            loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 1, ta, tb, M, N, K, A, lda, B, ldb, 0.0f, C2, N),
            0);
        assert_memory_equal(C1, C2, bytes); /* 1 thread == all threads */
        assert_int_equal(
            loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 2, ta, tb, M, N, K, A, lda, B, ldb, 0.0f, C2, N),
            0);
        assert_memory_equal(C1, C2, bytes);
        print_message(
            "  %s: repeated, 1-thread and 2-thread results bit-identical (%s, %d threads)\n",
            layout_name[ta * 2 + tb], loom_sgemm_kernel_name(LOOM_SGEMM_KERNEL_AUTO),
            omp_get_max_threads());
    }
    /* every SIMD kernel gives the generic kernel's bits (smaller: generic is slow),
     * with A packed (n 77) and read in place (n 40: few B micro-panels) */
    const int64_t m = 130, k = 600, ns[2] = {77, 40};
    for (int kern = LOOM_SGEMM_KERNEL_AVX2; kern <= LOOM_SGEMM_KERNEL_AVX512; kern++) {
        if (!loom_sgemm_kernel_available((loom_sgemm_kernel)kern)) continue;
        for (int lay = 0; lay < 3; lay++)
            for (int t = 0; t < 2; t++) {
                const int ta = lay == 2, tb = lay == 1;
                const int64_t n = ns[t], lda = ta ? m : k, ldb = tb ? k : n;
                assert_int_equal(loom_sgemm_ex(LOOM_SGEMM_KERNEL_GENERIC, 0, ta, tb, m, n, k, A,
                                               lda, B, ldb, 0.0f, C1, n),
                                 0);
                assert_int_equal(loom_sgemm_ex((loom_sgemm_kernel)kern, 0, ta, tb, m, n, k, A, lda,
                                               B, ldb, 0.0f, C2, n),
                                 0);
                assert_memory_equal(C1, C2, (size_t)(m * n) * sizeof(float));
            }
        print_message("  %s == generic, bit for bit (nn, nt, tn; A packed and in place)\n",
                      loom_sgemm_kernel_name((loom_sgemm_kernel)kern));
    }
    free(A), free(B), free(C1), free(C2);
}

static void test_invalid(void **state) {
    (void)state;
    float A[16] = {0}, B[16] = {0}, C[16];
    for (int i = 0; i < 16; i++) C[i] = (float)i;
    const float C0[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 0, 0, -1, 2, 2, A, 2, B, 2, 0.0f, C, 2), -1);
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 0, 0, 2, 2, 3, A, 2, B, 2, 0.0f, C, 2),
        -1); /* lda < K */
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 0, 0, 2, 3, 2, A, 2, B, 3, 0.0f, C, 2),
        -1); /* ldc < N */
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 1, 0, 3, 2, 2, A, 2, B, 2, 0.0f, C, 2),
        -1); /* lda < M */
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 0, 1, 2, 3, 2, A, 2, B, 1, 0.0f, C, 3),
        -1); /* ldb < K */
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 0, 0, 2, 2, 2, NULL, 2, B, 2, 0.0f, C, 2), -1);
    loom_sgemm_nt(2, 2, 3, A, 2, B, 3, 0.0f, C, 2); /* lda < K: C untouched */
    assert_memory_equal(C, C0, sizeof C);
    if (!loom_sgemm_kernel_available(LOOM_SGEMM_KERNEL_AVX512))
        assert_int_equal(
            loom_sgemm_ex(LOOM_SGEMM_KERNEL_AVX512, 0, 0, 0, 2, 2, 2, A, 2, B, 2, 0.0f, C, 2), -1);
    assert_memory_equal(C, C0, sizeof C);
    assert_int_equal(
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, 0, 0, 0, 2, 2, A, 2, B, 2, 0.0f, C, 2),
        0); /* empty */
    loom_sgemm_free_buffers();
    loom_sgemm_free_buffers(); /* twice is fine */
}

/* Single-threaded OpenBLAS (as inside a parallel region) calls its exported
 * sgemm_nn/nt/tn drivers; a symbol of loom's with such a name would take over. */
static void test_openblas_not_interposed(void **state) {
    (void)state;
    const int64_t M = 64, N = 48, K = 40;
    float *A = rand_matrix((size_t)(M * K)), *B = rand_matrix((size_t)(K * N));
    double dmax[3] = {0, 0, 0};
#pragma omp parallel for schedule(static) num_threads(2)
    for (int lay = 0; lay < 3; lay++) {
        const int ta = lay == 2, tb = lay == 1;
        const int64_t lda = ta ? M : K, ldb = tb ? K : N;
        float *C = xmalloc((size_t)(M * N) * sizeof(float)),
              *R = xmalloc((size_t)(M * N) * sizeof(float));
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (blasint)M, (blasint)N, (blasint)K, 1.0f, A, (blasint)lda, B, (blasint)ldb,
                    0.0f, C, (blasint)N);
        layout_ref[ta * 2 + tb](M, N, K, A, lda, B, ldb, 0.0f, R, N);
        for (int64_t i = 0; i < M * N; i++) {
            double d = fabs((double)C[i] - R[i]);
            if (!(d <= dmax[lay])) dmax[lay] = isnan(d) ? INFINITY : d;
        }
        free(C), free(R);
    }
    for (int lay = 0; lay < 3; lay++) {
        const int ta = lay == 2, tb = lay == 1;
        print_message("  cblas_sgemm %s inside a parallel region: max abs diff %.3g\n",
                      layout_name[ta * 2 + tb], dmax[lay]);
        if (!(dmax[lay] <= 1e-5 * sqrt((double)K) * 10.0))
            fail_msg(
                "cblas_sgemm %s is wrong when linked with loom: is some loom symbol named like "
                "an OpenBLAS driver (sgemm_nt, ...)?",
                layout_name[ta * 2 + tb]);
    }
    free(A), free(B);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_simd),     cmocka_unit_test(test_shapes_generic),
        cmocka_unit_test(test_packers),         cmocka_unit_test(test_k_zero),
        cmocka_unit_test(test_nested_parallel), cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_invalid),         cmocka_unit_test(test_openblas_not_interposed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    loom_sgemm_free_buffers();
    return rc;
}
