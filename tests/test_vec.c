/* test_vec.c: the elementwise kernels (core/vec.h), the cpuid-chosen path and
 * the portable one, against double-precision formulas on odd lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/rng.h"
#include "core/vec.h"

static const int64_t lengths[] = {1, 7, 8, 9, 17, 255, 256, 1000};

static void fill(float *x, int64_t n, float scale, loom_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * (2.0 * rng_uniform(rng) - 1.0));
}

static double rel(double got, double want) { return fabs(got - want) / fmax(fabs(want), 1e-30); }

/* each kernel on both paths; tolerances are relative, float-sized */
static void check_all(void) {
    loom_rng rng;
    rng_seed(&rng, 7);
    float *a = malloc(1000 * sizeof(float)), *b = malloc(1000 * sizeof(float));
    float *c = malloc(1000 * sizeof(float)), *o1 = malloc(1000 * sizeof(float));
    float *o2 = malloc(1000 * sizeof(float));
    double worst_exp = 0, worst = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        int64_t n = lengths[li];
        fill(a, n, 12.0f, &rng);
        fill(b, n, 2.0f, &rng);
        fill(c, n, 2.0f, &rng);
        /* swiglu forward and backward */
        vec_swiglu_forward(o1, a, b, n);
        vec_swiglu_backward(o2, c, b, a, b, n); /* dgate -> o2, dup -> c (dact = b) */
        for (int64_t i = 0; i < n; i++) {
            double g = a[i], u = b[i], s = 1.0 / (1.0 + exp(-g));
            worst = fmax(worst, fabs(o1[i] - g * s * u) / fmax(fabs(g * s * u), 1e-3));
            double dup = b[i] * g * s, dg = b[i] * u * s * (1.0 + g * (1.0 - s));
            worst = fmax(worst, fabs(c[i] - dup) / fmax(fabs(dup), 1e-3));
            worst = fmax(worst, fabs(o2[i] - dg) / fmax(fabs(dg), 1e-3));
        }
        /* exp-sum over a range of magnitudes, in place and sum-only */
        fill(a, n, 80.0f, &rng);
        double want_sum = 0;
        for (int64_t i = 0; i < n; i++) want_sum += exp(0.5 * a[i] - 3.0);
        float got_sum = vec_exp_sum(o1, a, 0.5f, 3.0f, n);
        float got_sum2 = vec_exp_sum(NULL, a, 0.5f, 3.0f, n);
        /* the float argument 0.5 a - 3 is itself rounded: |arg| 2^-24 relative */
        for (int64_t i = 0; i < n; i++) assert_true(rel(o1[i], exp(0.5 * a[i] - 3.0)) < 1e-5);
        assert_true(rel(got_sum, want_sum) < 1e-5);
        /* exp itself, on exact arguments */
        vec_exp_sum(o1, a, 1.0f, 0.0f, n);
        for (int64_t i = 0; i < n; i++) worst_exp = fmax(worst_exp, rel(o1[i], exp((double)a[i])));
        assert_true(got_sum == got_sum2);
        /* max and scale */
        double m = -INFINITY;
        for (int64_t i = 0; i < n; i++) m = fmax(m, a[i]);
        assert_true(vec_max(a, n) == (float)m);
        for (int64_t i = 0; i < n; i++) o1[i] = a[i];
        vec_scale(o1, 0.25f, n);
        for (int64_t i = 0; i < n; i++) assert_true(o1[i] == a[i] * 0.25f);
        /* rmsnorm forward / backward of one row */
        fill(a, n, 3.0f, &rng);
        fill(b, n, 1.5f, &rng);
        fill(c, n, 1.0f, &rng);
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)a[i] * a[i];
        double r = 1.0 / sqrt(ss / n + 1e-5);
        float rf = vec_rmsnorm_forward(o1, a, b, n, 1e-5f);
        assert_true(rel(rf, r) < 1e-5);
        for (int64_t i = 0; i < n; i++) assert_true(fabs(o1[i] - a[i] * r * b[i]) < 1e-5 * (1 + fabs(a[i] * r * b[i])));
        double dot = 0;
        for (int64_t i = 0; i < n; i++) dot += (double)b[i] * c[i] * a[i];
        for (int64_t i = 0; i < n; i++) o2[i] = 1.0f;
        vec_rmsnorm_backward(o2, c, a, b, rf, n, 1);
        for (int64_t i = 0; i < n; i++) {
            double want = 1.0 + rf * b[i] * c[i] - dot * rf * rf * rf / n * a[i];
            assert_true(fabs(o2[i] - want) < 1e-4 * (1 + fabs(want)));
        }
    }
    /* rmsnorm weight gradient over column ranges of a (rows, ld) matrix */
    int64_t N = 13, ld = 41;
    float *d = malloc((size_t)(N * ld) * sizeof(float)), *x = malloc((size_t)(N * ld) * sizeof(float));
    float rr[13], dw[41];
    fill(d, N * ld, 1.0f, &rng);
    fill(x, N * ld, 1.0f, &rng);
    fill(rr, N, 1.0f, &rng);
    for (int64_t j = 0; j < ld; j++) dw[j] = 0.5f;
    vec_rmsnorm_dw(dw, d, x, rr, N, ld, 0, 35);
    vec_rmsnorm_dw(dw, d, x, rr, N, ld, 35, 41);
    for (int64_t j = 0; j < ld; j++) {
        double s = 0.5;
        for (int64_t i = 0; i < N; i++) s += (double)d[i * ld + j] * x[i * ld + j] * rr[i];
        assert_true(fabs(dw[j] - s) < 1e-5);
    }
    printf("vec (%s): max relative error exp %.2e, swiglu %.2e\n", vec_impl_name(), worst_exp, worst);
    assert_true(worst_exp < 4e-7);
    assert_true(worst < 1e-5);
    /* NaN stays NaN through exp */
    float nan_in[3] = {NAN, 0.0f, 1.0f}, nan_out[3];
    vec_exp_sum(nan_out, nan_in, 1.0f, 0.0f, 3);
    assert_true(isnan(nan_out[0]));
    free(a), free(b), free(c), free(o1), free(o2), free(d), free(x);
}

static void test_chosen(void **state) {
    (void)state;
    vec_force_generic(0);
    check_all();
}

static void test_generic(void **state) {
    (void)state;
    vec_force_generic(1);
    check_all();
    vec_force_generic(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chosen),
        cmocka_unit_test(test_generic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
