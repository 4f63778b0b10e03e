/* test_conv.c: the im2col + gemm convolutions of src/heads/conv.c against
 * their direct-loop references, on odd shapes.
 *
 *   conv2d            forward, backward (din, dw accumulated onto a non-zero
 *                     dw, db) vs conv2d_*_ref: kernels 1x1 .. 5x3, strides
 *                     1-3, paddings 0-2, sides that do not divide evenly
 *   conv_transpose2d  the same against conv_transpose2d_*_ref
 *   adjoint           <conv2d(x; w), y> == <x, conv_transpose2d(y; w)>, and
 *                     conv2d's din == conv_transpose2d's forward of dout
 *   finite diffs      the references' backward against central differences
 *   threads           1 and 2 threads give bit-identical results
 *   relu              forward/backward vs the references, incl. 0 and -0
 *   geometry          output sides, scratch sizes, spec checks
 *
 * Every comparison prints its max difference and the tolerance it is held to.
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

#include "core/rng.h"
#include "core/threads.h"
#include "heads/conv.h"

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fail_msg("test_conv: out of memory (%zu bytes)", n);
    return p;
}

static float *random_floats(size_t n, loom_rng *rng) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * rng_uniform(rng) - 1.0f;
    return p;
}

static double max_abs(const float *x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m) m = fabs((double)x[i]);
    return m;
}

/* max |a - b| (infinity if a has a non-finite value) */
static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m) m = d;
    }
    return m;
}

/* Fast and reference agree to within tol = 1e-6 * K * max(1, max|ref|), K the
 * number of products in one sum: float accumulation error is ~6e-8 per term
 * relative to the sum of |terms|, and the inputs are in [-1, 1]. */
static int check(const char *what, const float *fast, const float *ref, size_t n, double K) {
    double d = max_diff(fast, ref, n), scale = max_abs(ref, n);
    double tol = 1e-6 * K * (scale > 1.0 ? scale : 1.0);
    int ok = d <= tol;
    printf("%s %-44s max |diff| %.3g (tol %.3g, max|ref| %.3g)\n", ok ? "ok  " : "FAIL", what, d,
           tol, scale);
    return ok ? 0 : 1;
}

typedef struct conv_case {
    conv_spec s;
    int32_t B, H, W; /* the layer's input */
} conv_case;

static const conv_case CASES[] = {
    {{3, 5, 3, 3, 1, 1}, 2, 7, 5},   /* same-size 3x3 */
    {{4, 6, 4, 4, 2, 1}, 2, 9, 6},   /* the VQ downsampler, odd side: floor */
    {{3, 7, 1, 1, 1, 0}, 2, 5, 3},   /* pointwise: no im2col */
    {{2, 3, 5, 3, 3, 2}, 1, 11, 8},  /* rectangular kernel, stride 3 */
    {{5, 2, 1, 1, 2, 0}, 3, 6, 7},   /* 1x1 with stride: im2col path */
    {{1, 1, 2, 2, 1, 0}, 1, 1, 1},   /* a single pixel: output 0x0 is refused; see geometry */
    {{6, 4, 4, 4, 2, 1}, 2, 4, 3},   /* small input */
};

static size_t out_floats_conv(const conv_case *c, int64_t *OH, int64_t *OW) {
    *OH = conv_out_side(c->H, c->s.kh, c->s.stride, c->s.pad);
    *OW = conv_out_side(c->W, c->s.kw, c->s.stride, c->s.pad);
    return (size_t)(c->B * *OH * *OW * c->s.cout);
}

static size_t out_floats_tconv(const conv_case *c, int64_t *OH, int64_t *OW) {
    *OH = conv_transpose_out_side(c->H, c->s.kh, c->s.stride, c->s.pad);
    *OW = conv_transpose_out_side(c->W, c->s.kw, c->s.stride, c->s.pad);
    return (size_t)(c->B * *OH * *OW * c->s.cout);
}

/* One layer, fast vs reference: forward, then backward from a random dout
 * onto dw/db that start non-zero (they must accumulate). */
static int run_case(const conv_case *c, int transpose, loom_rng *rng) {
    const conv_spec *s = &c->s;
    int64_t OH, OW;
    size_t n_out = transpose ? out_floats_tconv(c, &OH, &OW) : out_floats_conv(c, &OH, &OW);
    if (OH < 1 || OW < 1) return 0;
    size_t n_in = (size_t)c->B * c->H * c->W * s->cin, n_w = (size_t)conv_weight_count(s);
    size_t n_scr = transpose ? conv_transpose2d_scratch_floats(s, c->B, c->H, c->W)
                             : conv2d_scratch_floats(s, c->B, c->H, c->W);
    float *in = random_floats(n_in, rng), *w = random_floats(n_w, rng);
    float *b = random_floats((size_t)s->cout, rng), *dout = random_floats(n_out, rng);
    float *dw0 = random_floats(n_w, rng), *db0 = random_floats((size_t)s->cout, rng);
    float *out = xmalloc(n_out * 4), *out_r = xmalloc(n_out * 4);
    float *din = xmalloc(n_in * 4), *din_r = xmalloc(n_in * 4);
    float *dw = xmalloc(n_w * 4), *dw_r = xmalloc(n_w * 4);
    float *db = xmalloc((size_t)s->cout * 4), *db_r = xmalloc((size_t)s->cout * 4);
    float *scratch = xmalloc(n_scr * 4);
    memcpy(dw, dw0, n_w * 4);
    memcpy(dw_r, dw0, n_w * 4);
    memcpy(db, db0, (size_t)s->cout * 4);
    memcpy(db_r, db0, (size_t)s->cout * 4);
    for (size_t i = 0; i < n_in; i++) din[i] = NAN; /* must be overwritten */

    const int64_t taps = (int64_t)s->kh * s->kw;
    double k_fwd, k_din, k_dw;
    if (!transpose) {
        conv2d_forward(s, out, in, w, b, c->B, c->H, c->W, scratch);
        conv2d_forward_ref(s, out_r, in, w, b, c->B, c->H, c->W);
        conv2d_backward(s, din, dw, db, dout, in, w, c->B, c->H, c->W, scratch);
        conv2d_backward_ref(s, din_r, dw_r, db_r, dout, in, w, c->B, c->H, c->W);
        k_fwd = (double)(taps * s->cin + 1);
        k_din = (double)(taps * s->cout);
        k_dw = (double)(c->B * OH * OW + 1);
    } else {
        conv_transpose2d_forward(s, out, in, w, b, c->B, c->H, c->W, scratch);
        conv_transpose2d_forward_ref(s, out_r, in, w, b, c->B, c->H, c->W);
        conv_transpose2d_backward(s, din, dw, db, dout, in, w, c->B, c->H, c->W, scratch);
        conv_transpose2d_backward_ref(s, din_r, dw_r, db_r, dout, in, w, c->B, c->H, c->W);
        k_fwd = (double)(taps * s->cin + 1);
        k_din = (double)(taps * s->cout);
        k_dw = (double)(c->B * c->H * c->W + 1);
    }
    char label[160];
    int fails = 0;
    const char *kind = transpose ? "tconv" : "conv";
    snprintf(label, sizeof label, "%s %dx%d s%d p%d %d->%d B%d %dx%d: out", kind, s->kh, s->kw,
             s->stride, s->pad, s->cin, s->cout, c->B, c->H, c->W);
    fails += check(label, out, out_r, n_out, k_fwd);
    snprintf(label, sizeof label, "%s %dx%d s%d p%d: din", kind, s->kh, s->kw, s->stride, s->pad);
    fails += check(label, din, din_r, n_in, k_din);
    snprintf(label, sizeof label, "%s %dx%d s%d p%d: dw (accumulated)", kind, s->kh, s->kw,
             s->stride, s->pad);
    fails += check(label, dw, dw_r, n_w, k_dw);
    snprintf(label, sizeof label, "%s %dx%d s%d p%d: db (accumulated)", kind, s->kh, s->kw,
             s->stride, s->pad);
    fails += check(label, db, db_r, (size_t)s->cout, (double)(n_out / (size_t)s->cout + 1));

    /* NULL din and NULL db are allowed and leave dw the same */
    memcpy(dw_r, dw0, n_w * 4);
    if (!transpose) conv2d_backward(s, NULL, dw_r, NULL, dout, in, w, c->B, c->H, c->W, scratch);
    else conv_transpose2d_backward(s, NULL, dw_r, NULL, dout, in, w, c->B, c->H, c->W, scratch);
    if (memcmp(dw, dw_r, n_w * 4) != 0) {
        printf("FAIL %s: dw differs when din/db are NULL\n", label);
        fails++;
    }
    free(in), free(w), free(b), free(dout), free(dw0), free(db0), free(out), free(out_r);
    free(din), free(din_r), free(dw), free(dw_r), free(db), free(db_r), free(scratch);
    return fails;
}

static void test_conv_vs_ref(void **state) {
    (void)state;
    loom_rng rng;
    rng_seed(&rng, 7);
    int fails = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) fails += run_case(&CASES[i], 0, &rng);
    assert_int_equal(fails, 0);
}

static void test_conv_transpose_vs_ref(void **state) {
    (void)state;
    loom_rng rng;
    rng_seed(&rng, 8);
    int fails = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) fails += run_case(&CASES[i], 1, &rng);
    /* a transposed conv with stride 3 and a 5x2 kernel */
    conv_case odd = {{3, 2, 5, 2, 3, 1}, 2, 3, 4};
    fails += run_case(&odd, 1, &rng);
    assert_int_equal(fails, 0);
}

/* conv_transpose2d with conv2d's weight buffer is conv2d's adjoint. */
static void test_adjoint(void **state) {
    (void)state;
    loom_rng rng;
    rng_seed(&rng, 9);
    int fails = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        conv_spec s = CASES[i].s, t = {s.cout, s.cin, s.kh, s.kw, s.stride, s.pad};
        int64_t OH, OW;
        out_floats_conv(&CASES[i], &OH, &OW);
        if (OH < 1 || OW < 1) continue;
        /* conv2d floor-divides: rows past the last window are never read and
         * the transposed conv of OH x OW gives back only H' = (OH-1)S - 2P + KH
         * of them. Compare on the H' x W' input, which conv2d maps to OH x OW. */
        conv_case cc = CASES[i];
        cc.H = (int32_t)conv_transpose_out_side(OH, s.kh, s.stride, s.pad);
        cc.W = (int32_t)conv_transpose_out_side(OW, s.kw, s.stride, s.pad);
        const conv_case *c = &cc;
        size_t n_out = out_floats_conv(c, &OH, &OW);
        size_t n_in = (size_t)c->B * c->H * c->W * s.cin, n_w = (size_t)conv_weight_count(&s);
        float *x = random_floats(n_in, &rng), *y = random_floats(n_out, &rng);
        float *w = random_floats(n_w, &rng);
        float *cx = xmalloc(n_out * 4), *ty = xmalloc(n_in * 4), *din = xmalloc(n_in * 4);
        float *dw = xmalloc(n_w * 4);
        size_t n1 = conv2d_scratch_floats(&s, c->B, c->H, c->W);
        size_t n2 = conv_transpose2d_scratch_floats(&t, c->B, OH, OW);
        float *scratch = xmalloc((n1 > n2 ? n1 : n2) * 4);
        conv2d_forward(&s, cx, x, w, NULL, c->B, c->H, c->W, scratch);
        conv_transpose2d_forward(&t, ty, y, w, NULL, c->B, (int32_t)OH, (int32_t)OW, scratch);
        double lhs = 0.0, rhs = 0.0, mag = 0.0;
        for (size_t k = 0; k < n_out; k++) lhs += (double)cx[k] * y[k], mag += fabs(cx[k] * y[k]);
        for (size_t k = 0; k < n_in; k++) rhs += (double)x[k] * ty[k];
        double tol = 1e-6 * (double)(s.kh * s.kw * s.cin) * mag + 1e-9;
        int ok = fabs(lhs - rhs) <= tol;
        printf("%s adjoint %dx%d s%d p%d %d->%d: <conv x, y> %.6f <x, tconv y> %.6f diff %.3g (tol %.3g)\n",
               ok ? "ok  " : "FAIL", s.kh, s.kw, s.stride, s.pad, s.cin, s.cout, lhs, rhs,
               fabs(lhs - rhs), tol);
        fails += !ok;
        /* conv2d's input gradient is the transposed conv of dout */
        memset(dw, 0, n_w * 4);
        conv2d_backward(&s, din, dw, NULL, y, x, w, c->B, c->H, c->W, scratch);
        fails += check("  conv2d din == tconv(dout)", din, ty, n_in, (double)(s.kh * s.kw * s.cout));
        free(x), free(y), free(w), free(cx), free(ty), free(din), free(dw), free(scratch);
    }
    assert_int_equal(fails, 0);
}

/* The references' backward against central differences of
 * L = sum(out * r) (linear in w, b and in, so differences are exact up to
 * rounding). A few random elements of each gradient. */
static double fd_loss(const conv_spec *s, int transpose, const float *in, const float *w,
                      const float *b, const float *r, float *out, size_t n_out, int32_t B,
                      int32_t H, int32_t W) {
    if (transpose) conv_transpose2d_forward_ref(s, out, in, w, b, B, H, W);
    else conv2d_forward_ref(s, out, in, w, b, B, H, W);
    double L = 0.0;
    for (size_t i = 0; i < n_out; i++) L += (double)out[i] * r[i];
    return L;
}

static void test_ref_finite_differences(void **state) {
    (void)state;
    loom_rng rng;
    rng_seed(&rng, 10);
    int fails = 0;
    const conv_case cs[] = {CASES[1], CASES[3], {{3, 2, 5, 2, 3, 1}, 2, 3, 4}};
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
        for (int transpose = 0; transpose < 2; transpose++) {
            const conv_case *c = &cs[ci];
            const conv_spec *s = &c->s;
            int64_t OH, OW;
            size_t n_out = transpose ? out_floats_tconv(c, &OH, &OW) : out_floats_conv(c, &OH, &OW);
            size_t n_in = (size_t)c->B * c->H * c->W * s->cin, n_w = (size_t)conv_weight_count(s);
            float *in = random_floats(n_in, &rng), *w = random_floats(n_w, &rng);
            float *b = random_floats((size_t)s->cout, &rng), *r = random_floats(n_out, &rng);
            float *out = xmalloc(n_out * 4), *din = xmalloc(n_in * 4);
            float *dw = calloc(n_w, 4), *db = calloc((size_t)s->cout, 4);
            if (!dw || !db) fail_msg("out of memory");
            if (transpose) conv_transpose2d_backward_ref(s, din, dw, db, r, in, w, c->B, c->H, c->W);
            else conv2d_backward_ref(s, din, dw, db, r, in, w, c->B, c->H, c->W);
            double worst = 0.0;
            const float h = 0.5f; /* L is linear in each argument: no truncation error */
            for (int trial = 0; trial < 24; trial++) {
                int which = trial % 3;
                float *p = which == 0 ? in : which == 1 ? w : b;
                float *g = which == 0 ? din : which == 1 ? dw : db;
                size_t n = which == 0 ? n_in : which == 1 ? n_w : (size_t)s->cout;
                size_t k = rng_below(&rng, (uint32_t)n);
                float keep = p[k];
                p[k] = keep + h;
                double lp = fd_loss(s, transpose, in, w, b, r, out, n_out, c->B, c->H, c->W);
                p[k] = keep - h;
                double lm = fd_loss(s, transpose, in, w, b, r, out, n_out, c->B, c->H, c->W);
                p[k] = keep;
                double fd = (lp - lm) / (2.0 * h), d = fabs(fd - (double)g[k]);
                if (d > worst) worst = d;
            }
            /* L rounds each output to float (~6e-8 relative, |L| terms <= ~20): / (2h) */
            double tol = 2e-4;
            int ok = worst <= tol;
            printf("%s ref backward vs finite differences (%s %dx%d s%d p%d): max |diff| %.3g (tol %.3g)\n",
                   ok ? "ok  " : "FAIL", transpose ? "tconv" : "conv", s->kh, s->kw, s->stride,
                   s->pad, worst, tol);
            fails += !ok;
            free(in), free(w), free(b), free(r), free(out), free(din), free(dw), free(db);
        }
    assert_int_equal(fails, 0);
}

/* Big enough for the parallel paths; 1 and 2 threads give the same bits. */
static void test_threads_agree(void **state) {
    (void)state;
    loom_rng rng;
    rng_seed(&rng, 11);
    const conv_case c = {{16, 24, 4, 4, 2, 1}, 4, 32, 24};
    const conv_spec *s = &c.s;
    int fails = 0;
    for (int transpose = 0; transpose < 2; transpose++) {
        int64_t OH, OW;
        size_t n_out = transpose ? out_floats_tconv(&c, &OH, &OW) : out_floats_conv(&c, &OH, &OW);
        size_t n_in = (size_t)c.B * c.H * c.W * s->cin, n_w = (size_t)conv_weight_count(s);
        size_t n_scr = transpose ? conv_transpose2d_scratch_floats(s, c.B, c.H, c.W)
                                 : conv2d_scratch_floats(s, c.B, c.H, c.W);
        float *in = random_floats(n_in, &rng), *w = random_floats(n_w, &rng);
        float *b = random_floats((size_t)s->cout, &rng), *dout = random_floats(n_out, &rng);
        float *scratch = xmalloc(n_scr * 4);
        float *res[2][4];
        for (int run = 0; run < 2; run++) {
            loom_threads_set(run + 1);
            float *out = xmalloc(n_out * 4), *din = xmalloc(n_in * 4);
            float *dw = calloc(n_w, 4), *db = calloc((size_t)s->cout, 4);
            if (!dw || !db) fail_msg("out of memory");
            if (!transpose) {
                conv2d_forward(s, out, in, w, b, c.B, c.H, c.W, scratch);
                conv2d_backward(s, din, dw, db, dout, in, w, c.B, c.H, c.W, scratch);
            } else {
                conv_transpose2d_forward(s, out, in, w, b, c.B, c.H, c.W, scratch);
                conv_transpose2d_backward(s, din, dw, db, dout, in, w, c.B, c.H, c.W, scratch);
            }
            res[run][0] = out, res[run][1] = din, res[run][2] = dw, res[run][3] = db;
        }
        loom_threads_set(1);
        size_t sizes[4] = {n_out, n_in, n_w, (size_t)s->cout};
        const char *names[4] = {"out", "din", "dw", "db"};
        for (int k = 0; k < 4; k++) {
            int same = memcmp(res[0][k], res[1][k], sizes[k] * 4) == 0;
            printf("%s %s %s: 1 thread vs 2 threads %s\n", same ? "ok  " : "FAIL",
                   transpose ? "tconv" : "conv", names[k], same ? "bit-identical" : "DIFFER");
            fails += !same;
            free(res[0][k]);
            free(res[1][k]);
        }
        free(in), free(w), free(b), free(dout), free(scratch);
    }
    assert_int_equal(fails, 0);
}

static void test_relu(void **state) {
    (void)state;
    loom_rng rng;
    rng_seed(&rng, 12);
    const int64_t n = 300001; /* parallel path, odd length */
    float *x = random_floats((size_t)n, &rng), *dy = random_floats((size_t)n, &rng);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-30f, x[3] = -1e-30f;
    float *y = xmalloc((size_t)n * 4), *y_r = xmalloc((size_t)n * 4);
    float *dx = xmalloc((size_t)n * 4), *dx_r = xmalloc((size_t)n * 4);
    relu_forward(y, x, n);
    relu_forward_ref(y_r, x, n);
    relu_backward(dx, dy, y, n);
    relu_backward_ref(dx_r, dy, y_r, n);
    assert_memory_equal(y, y_r, (size_t)n * 4);
    assert_memory_equal(dx, dx_r, (size_t)n * 4);
    assert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 1e-30f && y[3] == 0.0f);
    assert_true(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == dy[2] && dx[3] == 0.0f);
    /* in place */
    memcpy(dx_r, dy, (size_t)n * 4);
    relu_backward(dx_r, dx_r, y, n);
    assert_memory_equal(dx, dx_r, (size_t)n * 4);
    memcpy(y_r, x, (size_t)n * 4);
    relu_forward(y_r, y_r, n);
    assert_memory_equal(y, y_r, (size_t)n * 4);
    printf("ok   relu forward/backward == reference (bit-exact, incl. in place, 0, -0)\n");
    free(x), free(dy), free(y), free(y_r), free(dx), free(dx_r);
}

static void test_geometry(void **state) {
    (void)state;
    assert_int_equal(conv_out_side(64, 4, 2, 1), 32);
    assert_int_equal(conv_out_side(9, 4, 2, 1), 4);
    assert_int_equal(conv_out_side(1, 2, 1, 0), -1); /* span < 0 */
    assert_int_equal(conv_out_side(0, 1, 1, 0), -1);
    assert_int_equal(conv_transpose_out_side(32, 4, 2, 1), 64);
    assert_int_equal(conv_transpose_out_side(1, 1, 1, 1), -1);
    conv_spec pw = {8, 16, 1, 1, 1, 0}, c3 = {8, 16, 3, 3, 1, 1};
    assert_int_equal(conv2d_scratch_floats(&pw, 2, 5, 5), 0);
    assert_int_equal(conv2d_scratch_floats(&c3, 2, 5, 5), 2 * 25 * 9 * 8);
    assert_int_equal(conv_transpose2d_scratch_floats(&c3, 2, 5, 5), 2 * 25 * 9 * 16);
    assert_true(conv2d_scratch_floats(&c3, INT64_C(1) << 40, 1 << 20, 1 << 20) == SIZE_MAX);
    loom_error err = {{0}};
    assert_int_equal(conv_spec_check(&c3, &err), 0);
    conv_spec bad[] = {{0, 1, 1, 1, 1, 0}, {1, 1, 16, 1, 1, 0}, {1, 1, 3, 3, 0, 0},
                       {1, 1, 3, 3, 1, 3}, {1, 1, 3, 3, 1, -1}, {1, 9000, 1, 1, 1, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        assert_int_equal(conv_spec_check(&bad[i], &err), -1);
        assert_true(err.msg[0] != 0);
        printf("ok   refused: %s\n", err.msg);
    }
}

int main(void) {
    loom_threads_set(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_conv_vs_ref),
        cmocka_unit_test(test_conv_transpose_vs_ref),
        cmocka_unit_test(test_adjoint),
        cmocka_unit_test(test_ref_finite_differences),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_relu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
