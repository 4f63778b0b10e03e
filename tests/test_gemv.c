/* test_gemv.c: loom_gemv_nt (y (M, N) = x (M, K) W^T + beta y, small M) against
 * the naive double-accumulating gemm_nt_ref.
 *
 *   shapes       M 1..17 (a subset for N 958), N {1, 7, 17, 255, 958}, K {1, 7, 8,
 *                17, 255, 256, 688, 1000}; each shape twice: beta 0 over a
 *                NaN-filled y with rows exactly as long as K (x, W and y one
 *                float past an aligned address, W and x ending where the
 *                allocation ends), and beta 1 with row strides 3 floats wider
 *                than the rows; padding between y's rows untouched. Every
 *                kernel this CPU runs (generic, avx2, auto).
 *   kernels      every kernel gives the generic kernel's bits (gemv.h, "Bits").
 *   threads      1 thread == 2 threads == the default, bit for bit, on the
 *                decoding shapes; called inside an OpenMP parallel loop, each
 *                thread's product equals the serial one.
 *   batch        row m of an M-row product == the 1-row product of x row m, bit
 *                for bit (a sequence decodes the same alone or in a batch).
 *   edges        K 0 (y = beta y), M or N 0, beta 0.5, the void API == the _ex one.
 *   errors       invalid arguments return -1 and leave y unchanged.
 *
 * Tolerance, as tests/test_decoder.c's gemm test: entries in [-1, 1], so float
 * accumulation of K products stays well inside 1e-6 * K; each group prints its
 * max |diff| and the worst diff / tolerance.
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

#include "core/gemm.h"
#include "core/gemv.h"

/* ---- helpers ---- */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fail_msg("test_gemv: out of memory (%zu bytes)", n);
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

static const loom_gemv_kernel all_kernels[] = {LOOM_GEMV_KERNEL_GENERIC, LOOM_GEMV_KERNEL_AVX2,
                                               LOOM_GEMV_KERNEL_AUTO};
#define N_KERNELS 3

static const char *kname(loom_gemv_kernel k) {
    return k == LOOM_GEMV_KERNEL_AUTO ? "auto" : loom_gemv_kernel_name(k);
}

/* Worst result over a group of comparisons. */
typedef struct stats {
    double max_diff, max_ratio;
    int n;
} stats;

static const float sentinel = 12345.0f;

/* One shape, every available kernel on one thread. beta 0: rows exactly K
 * (N) long, y NaN; beta 1: strides pad wider. Returns the number of failures. */
static int check_shape(int64_t M, int64_t N, int64_t K, int64_t pad, float beta,
                       stats st[N_KERNELS]) {
    const int64_t ldx = K + pad, ldw = K + pad, ldy = N + pad;
    /* +1: one float past an aligned address; no slack after the last row */
    float *xbuf = rand_matrix((size_t)(1 + (M - 1) * ldx + K));
    float *wbuf = rand_matrix((size_t)(1 + (N - 1) * ldw + K));
    float *ybuf = xmalloc((size_t)(1 + M * ldy) * sizeof(float));
    float *Y0 = xmalloc((size_t)(M * ldy) * sizeof(float)), *R = xmalloc((size_t)(M * ldy) * sizeof(float));
    float *G = xmalloc((size_t)(M * ldy) * sizeof(float));
    const float *x = xbuf + 1, *W = wbuf + 1;
    float *y = ybuf + 1;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldy; j++)
            Y0[i * ldy + j] = j >= N ? sentinel : beta == 0.0f ? NAN : rand_uniform();
    memcpy(R, Y0, (size_t)(M * ldy) * sizeof(float));
    gemm_nt_ref(M, N, K, x, ldx, W, ldw, beta, R, ldy); /* beta 0: R is not read */

    int fails = 0;
    for (int kk = 0; kk < N_KERNELS; kk++) {
        const loom_gemv_kernel k = all_kernels[kk];
        if (!loom_gemv_kernel_available(k)) continue;
        memcpy(y, Y0, (size_t)(M * ldy) * sizeof(float));
        assert_int_equal(loom_gemv_nt_ex(k, 1, M, N, K, x, ldx, W, ldw, beta, y, ldy), 0);
        double diff = 0.0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < ldy; j++) {
                const float v = y[i * ldy + j];
                if (j >= N) {
                    if (memcmp(&v, &sentinel, sizeof v) != 0)
                        fail_msg("%s M=%ld N=%ld K=%ld: y's row padding written at (%ld, %ld)",
                                 kname(k), (long)M, (long)N, (long)K, (long)i, (long)j);
                    continue;
                }
                const double d = fabs((double)v - (double)R[i * ldy + j]);
                if (!isnan(diff) && !(d <= diff)) diff = d; /* a NaN lands here and stays */
            }
        const double tol = 1e-6 * (double)(K > 1 ? K : 1);
        if (!(diff <= tol)) {
            print_message("FAIL %s M=%ld N=%ld K=%ld pad=%ld beta=%g: max |diff| %.3g > tol %.3g\n",
                          kname(k), (long)M, (long)N, (long)K, (long)pad, beta, diff, tol);
            fails++;
        }
        if (k == LOOM_GEMV_KERNEL_GENERIC) {
            memcpy(G, y, (size_t)(M * ldy) * sizeof(float));
        } else if (memcmp(G, y, (size_t)(M * ldy) * sizeof(float)) != 0) {
            print_message("FAIL %s M=%ld N=%ld K=%ld pad=%ld beta=%g: bits differ from generic\n",
                          kname(k), (long)M, (long)N, (long)K, (long)pad, beta);
            fails++;
        }
        if (diff > st[kk].max_diff) st[kk].max_diff = diff;
        if (diff / tol > st[kk].max_ratio) st[kk].max_ratio = diff / tol;
        st[kk].n++;
    }
    free(xbuf), free(wbuf), free(ybuf), free(Y0), free(R), free(G);
    return fails;
}

/* ---- shapes against the reference, every kernel ---- */

static void test_shapes(void **state) {
    (void)state;
    static const int64_t Ns[] = {1, 7, 17, 255, 958};
    static const int64_t Ks[] = {1, 7, 8, 17, 255, 256, 688, 1000};
    static const int64_t Ms_big[] = {1, 2, 3, 4, 5, 8, 16, 17}; /* for N 958: keeps the reference quick */
    stats st[N_KERNELS];
    memset(st, 0, sizeof st);
    int fails = 0;
    for (size_t in = 0; in < sizeof Ns / sizeof Ns[0]; in++)
        for (size_t ik = 0; ik < sizeof Ks / sizeof Ks[0]; ik++) {
            const int64_t N = Ns[in], K = Ks[ik];
            const size_t nm = N >= 958 ? sizeof Ms_big / sizeof Ms_big[0] : 17;
            for (size_t im = 0; im < nm; im++) {
                const int64_t M = N >= 958 ? Ms_big[im] : (int64_t)im + 1;
                fails += check_shape(M, N, K, 0, 0.0f, st);
                fails += check_shape(M, N, K, 3, 1.0f, st);
            }
        }
    for (int kk = 0; kk < N_KERNELS; kk++)
        if (st[kk].n)
            print_message("  gemv %-7s vs gemm_nt_ref: max |diff| %.3g over %d products (worst "
                          "diff/tol %.3f; tol 1e-6*K)%s\n",
                          kname(all_kernels[kk]), st[kk].max_diff, st[kk].n, st[kk].max_ratio,
                          all_kernels[kk] == LOOM_GEMV_KERNEL_GENERIC ? "" : "; bits == generic");
    if (!loom_gemv_kernel_available(LOOM_GEMV_KERNEL_AVX2))
        print_message("  (no AVX2+FMA on this CPU: the avx2 kernel was not run)\n");
    assert_int_equal(fails, 0);
}

/* ---- threads ---- */

static void test_threads(void **state) {
    (void)state;
    /* the decoding shapes (N, K), plus odd ones */
    static const int64_t NK[][2] = {{256, 256}, {128, 256}, {688, 256}, {256, 688},
                                    {958, 256}, {255, 1000}, {17, 4099}};
    static const int64_t Ms[] = {1, 2, 4, 8, 16, 17};
    int n_cmp = 0;
    for (size_t s = 0; s < sizeof NK / sizeof NK[0]; s++)
        for (size_t im = 0; im < sizeof Ms / sizeof Ms[0]; im++) {
            const int64_t M = Ms[im], N = NK[s][0], K = NK[s][1];
            float *x = rand_matrix((size_t)(M * K)), *W = rand_matrix((size_t)(N * K));
            const size_t bytes = (size_t)(M * N) * sizeof(float);
            float *y1 = rand_matrix((size_t)(M * N)), *y2 = xmalloc(bytes), *y0 = xmalloc(bytes);
            memcpy(y2, y1, bytes), memcpy(y0, y1, bytes);
            for (int kk = 0; kk < N_KERNELS; kk++) {
                const loom_gemv_kernel k = all_kernels[kk];
                if (!loom_gemv_kernel_available(k)) continue;
                if (k == LOOM_GEMV_KERNEL_GENERIC && s > 0) continue; /* slow: one shape */
                const float beta = (float)(im % 2); /* beta 1 adds onto the previous result */
                assert_int_equal(loom_gemv_nt_ex(k, 1, M, N, K, x, K, W, K, beta, y1, N), 0);
                assert_int_equal(loom_gemv_nt_ex(k, 2, M, N, K, x, K, W, K, beta, y2, N), 0);
                assert_int_equal(loom_gemv_nt_ex(k, 0, M, N, K, x, K, W, K, beta, y0, N), 0);
                if (memcmp(y1, y2, bytes) || memcmp(y1, y0, bytes))
                    fail_msg("%s M=%ld N=%ld K=%ld: 1, 2 and default threads differ", kname(k),
                             (long)M, (long)N, (long)K);
                n_cmp++;
            }
            free(x), free(W), free(y1), free(y2), free(y0);
        }
    print_message("  threads: 1 == 2 == default threads, bit for bit, in %d products\n", n_cmp);

    /* Inside a parallel region: each thread its own product, run serially. */
    enum { P = 8, M = 4, N = 688, K = 256 };
    float *x = rand_matrix((size_t)P * M * K), *W = rand_matrix((size_t)N * K);
    float *ys = xmalloc((size_t)P * M * N * sizeof(float)), *yp = xmalloc((size_t)P * M * N * sizeof(float));
    for (int p = 0; p < P; p++)
        assert_int_equal(loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, 1, M, N, K, x + (size_t)p * M * K, K,
                                         W, K, 0.0f, ys + (size_t)p * M * N, N),
                         0);
    int team = 0, bad = 0;
#pragma omp parallel for schedule(static) num_threads(2) reduction(max : team) reduction(+ : bad)
    for (int p = 0; p < P; p++) {
        team = omp_get_num_threads();
        bad += loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, x + (size_t)p * M * K, K, W, K,
                               0.0f, yp + (size_t)p * M * N, N) != 0;
    }
    assert_int_equal(bad, 0);
    assert_memory_equal(ys, yp, (size_t)P * M * N * sizeof(float));
    print_message("  nested (team of %d): %d products inside a parallel loop == serial, bit for bit\n",
                  team, P);
    free(x), free(W), free(ys), free(yp);
}

/* ---- batch invariance ---- */

static void test_batch_invariance(void **state) {
    (void)state;
    static const int64_t NK[][2] = {{958, 256}, {256, 688}, {17, 1000}, {7, 13}};
    enum { MAXM = 17 };
    int n_rows = 0;
    for (size_t s = 0; s < sizeof NK / sizeof NK[0]; s++) {
        const int64_t N = NK[s][0], K = NK[s][1];
        float *x = rand_matrix((size_t)(MAXM * K)), *W = rand_matrix((size_t)(N * K));
        float *yb = xmalloc((size_t)(MAXM * N) * sizeof(float)), *y1 = xmalloc((size_t)N * sizeof(float));
        for (int kk = 0; kk < N_KERNELS; kk++) {
            const loom_gemv_kernel k = all_kernels[kk];
            if (!loom_gemv_kernel_available(k)) continue;
            for (int64_t M = 2; M <= MAXM; M++) {
                if (k == LOOM_GEMV_KERNEL_GENERIC && M != 2 && M != 7 && M != MAXM) continue;
                assert_int_equal(loom_gemv_nt_ex(k, 0, M, N, K, x, K, W, K, 0.0f, yb, N), 0);
                for (int64_t m = 0; m < M; m++) {
                    assert_int_equal(
                        loom_gemv_nt_ex(k, 0, 1, N, K, x + m * K, K, W, K, 0.0f, y1, N), 0);
                    if (memcmp(y1, yb + m * N, (size_t)N * sizeof(float)))
                        fail_msg("%s N=%ld K=%ld: row %ld of an M=%ld product != its M=1 product",
                                 kname(k), (long)N, (long)K, (long)m, (long)M);
                    n_rows++;
                }
            }
        }
        free(x), free(W), free(yb), free(y1);
    }
    print_message("  batch: %d rows of M = 2..17 products == their M = 1 products, bit for bit\n",
                  n_rows);
}

/* ---- edges and errors ---- */

static void test_edges(void **state) {
    (void)state;
    /* K = 0: y = beta y, x and W never read */
    float y[2 * 5];
    for (int i = 0; i < 10; i++) y[i] = NAN;
    assert_int_equal(loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, 0, 2, 3, 0, NULL, 0, NULL, 0, 0.0f, y, 5), 0);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++)
            if (j < 3) assert_true(y[i * 5 + j] == 0.0f);
            else assert_true(isnan(y[i * 5 + j]));
    for (int i = 0; i < 10; i++) y[i] = (float)i;
    assert_int_equal(loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, 0, 2, 3, 0, NULL, 0, NULL, 0, 0.5f, y, 5), 0);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++) assert_true(y[i * 5 + j] == (float)(i * 5 + j) * (j < 3 ? 0.5f : 1.0f));
    /* M or N 0: nothing to do, nothing touched */
    float y0[10];
    memcpy(y0, y, sizeof y);
    assert_int_equal(loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, 0, 0, 3, 4, NULL, 4, NULL, 4, 0.0f, y, 5), 0);
    assert_int_equal(loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, 0, 2, 0, 4, NULL, 4, NULL, 4, 0.0f, y, 5), 0);
    assert_memory_equal(y, y0, sizeof y);

    /* beta 0.5 (y = fma(beta, y, s)) against the reference; the void API == the _ex one */
    enum { M = 5, N = 37, K = 300 };
    float *x = rand_matrix(M * K), *W = rand_matrix(N * K), *yi = rand_matrix(M * N);
    float *a = xmalloc(M * N * sizeof(float)), *b = xmalloc(M * N * sizeof(float)),
          *r = xmalloc(M * N * sizeof(float));
    memcpy(a, yi, M * N * sizeof(float)), memcpy(b, yi, M * N * sizeof(float)), memcpy(r, yi, M * N * sizeof(float));
    gemm_nt_ref(M, N, K, x, K, W, K, 0.5f, r, N);
    loom_gemv_nt(M, N, K, x, K, W, K, 0.5f, a, N);
    assert_int_equal(loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, x, K, W, K, 0.5f, b, N), 0);
    assert_memory_equal(a, b, M * N * sizeof(float));
    double diff = 0.0;
    for (int i = 0; i < M * N; i++) {
        const double d = fabs((double)a[i] - (double)r[i]);
        if (!(d <= diff)) diff = d;
    }
    print_message("  beta 0.5: max |diff| %.3g (tol %.3g); loom_gemv_nt == loom_gemv_nt_ex\n", diff,
                  1e-6 * K);
    assert_true(diff <= 1e-6 * K);

    /* invalid arguments: -1, y unchanged */
    memcpy(b, a, M * N * sizeof(float));
#define BAD(...) assert_int_equal(loom_gemv_nt_ex(__VA_ARGS__), -1)
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, -1, N, K, x, K, W, K, 0.0f, a, N);
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, M, -1, K, x, K, W, K, 0.0f, a, N);
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, M, N, -1, x, K, W, K, 0.0f, a, N);
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, x, K - 1, W, K, 0.0f, a, N);
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, x, K, W, K - 1, 0.0f, a, N);
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, x, K, W, K, 0.0f, a, N - 1);
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, NULL, K, W, K, 0.0f, a, N);
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, x, K, NULL, K, 0.0f, a, N);
    BAD(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, x, K, W, K, 0.0f, NULL, N);
    BAD((loom_gemv_kernel)99, 0, M, N, K, x, K, W, K, 0.0f, a, N);
    if (!loom_gemv_kernel_available(LOOM_GEMV_KERNEL_AVX2))
        BAD(LOOM_GEMV_KERNEL_AVX2, 0, M, N, K, x, K, W, K, 0.0f, a, N);
#undef BAD
    loom_gemv_nt(M, N, K, x, K - 1, W, K, 0.0f, a, N); /* the void API: also a no-op */
    assert_memory_equal(a, b, M * N * sizeof(float));
    free(x), free(W), free(yi), free(a), free(b), free(r);
}

int main(void) {
    print_message("test_gemv: kernel %s (auto)\n", loom_gemv_kernel_name(LOOM_GEMV_KERNEL_AUTO));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
