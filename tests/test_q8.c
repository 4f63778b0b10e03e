/* test_q8.c: int8 weights with per-group scales (core/q8.h) and quantized models.
 *
 *   groups        valid group sizes (multiples of 32 in [32, 1024]), padding.
 *   quantize      |x - q d| <= d / 2 (+ float rounding) for every element, the
 *                 largest element of a group at +-127, q never -128, padding
 *                 and all-zero groups 0, NaN -> 0; K not a multiple of G
 *                 (rows are zero-padded: that is how such K are handled).
 *   kernels       every kernel this CPU runs (AVX2; AVX-512 VNNI where present;
 *                 auto) against the double-precision reference on odd shapes
 *                 (M, N, K from 1 to 688, K not a multiple of G, N not a
 *                 multiple of the 4-row tile), G 32 to 1024, beta 0 and 1, a
 *                 row stride wider than N (the gap untouched), 1 and 2 threads;
 *                 the extremes (all +-127 at G 1024, weights of -128) exact.
 *                 Tolerance: (groups + 8) 2^-23 (sum_k d_x d_w |q_x q_w| + |y|);
 *                 the max difference is printed.
 *   determinism   1 thread == 2 threads, bit for bit; a row's value does not
 *                 depend on its place in the 4-row tile.
 *   errors        invalid arguments and unavailable kernels: -1, y unchanged.
 *   models        a tiny model with a padded d_ff, tied and untied, head fp32
 *                 and int8: quantized logits near the fp32 ones (relative RMS
 *                 error printed), the KV-cache steps near the full forward,
 *                 save + load bit-exact, `loom quantize` + model_load, `loom
 *                 info` naming the quantization.
 *   bad files     corrupted quantized files refused with a clear message: a
 *                 -128, nonzero padding, NaN and negative scales, a missing,
 *                 misshapen or mistyped int8 tensor, a bad "quant" config,
 *                 too few int8 bytes for the config, truncation.
 *   training      `loom train --init` and `--resume` refuse a quantized model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <math.h>
#include <omp.h>

#include "core/log.h"
#include "core/q8.h"
#include "core/safetensors.h"
#include "core/threads.h"
#include "fusion/tokenizer.h"
#include "model/infer.h"
#include "model/model.h"
#include "train/train.h"

/* ---- helpers ---- */

static char g_dir[1024];

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fail_msg("test_q8: out of memory (%zu bytes)", n);
    return p;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float rand_uniform(void) { /* [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* n values in [-1, 1), each group-sized stretch scaled by its own magnitude
 * (scales 1e-3 .. 10) so that groups get very different scales */
static float *rand_values(size_t n) {
    float *p = xmalloc(n * sizeof(float));
    float mag = 1.0f;
    for (size_t i = 0; i < n; i++) {
        if (i % 29 == 0) mag = powf(10.0f, 2.0f * rand_uniform() - 1.0f) * (i % 3 ? 1.0f : 0.01f);
        p[i] = mag * rand_uniform();
    }
    return p;
}

static void path_in(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_dir, name);
}

/* ---- groups ---- */

static void test_groups(void **state) {
    (void)state;
    loom_error err = {{0}};
    const int64_t good[] = {32, 64, 96, 128, 256, 1024};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) assert_int_equal(q8_group_check(good[i], &err), 0);
    const int64_t bad[] = {-32, 0, 1, 16, 31, 33, 48, 1056, 2048};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(q8_group_check(bad[i], &err), -1);
        assert_non_null(strstr(err.msg, "multiple of 32"));
    }
    assert_int_equal(q8_padded(1, 32), 32);
    assert_int_equal(q8_padded(32, 32), 32);
    assert_int_equal(q8_padded(688, 32), 704);
    assert_int_equal(q8_padded(688, 64), 704);
    assert_int_equal(q8_padded(688, 96), 768);
}

/* ---- quantize / dequantize ---- */

static void test_quantize_bounds(void **state) {
    (void)state;
    const int64_t Ks[] = {1, 5, 31, 32, 33, 100, 256, 688};
    const int32_t Gs[] = {32, 64, 96, 1024};
    double worst = 0.0; /* max |x - q d| / d over all nonzero groups */
    for (size_t gi = 0; gi < sizeof Gs / sizeof Gs[0]; gi++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
            const int32_t G = Gs[gi];
            const int64_t K = Ks[ki], M = 7, ldx = K + 3, KP = q8_padded(K, G), ng = KP / G;
            float *x = rand_values((size_t)(M * ldx));
            for (int64_t k = 0; k < K && k < G; k++) x[2 * ldx + k] = 0.0f; /* an all-zero group */
            int8_t *q = xmalloc((size_t)(M * KP));
            float *d = xmalloc((size_t)(M * ng) * sizeof(float)), *back = xmalloc((size_t)(M * K) * sizeof(float));
            memset(q, 0x55, (size_t)(M * KP)); /* the padding must be written */
            q8_quantize(q, d, x, M, K, ldx, G);
            /* the AVX2 quantizer (where it runs) gives the reference's bytes */
            int8_t *q2 = xmalloc((size_t)(M * KP));
            float *d2 = xmalloc((size_t)(M * ng) * sizeof(float));
            q8_quantize_ref(q2, d2, x, M, K, ldx, G);
            assert_memory_equal(q, q2, (size_t)(M * KP));
            assert_memory_equal(d, d2, (size_t)(M * ng) * sizeof(float));
            free(q2), free(d2);
            q8_dequantize(back, q, d, M, K, G);
            for (int64_t m = 0; m < M; m++)
                for (int64_t g = 0; g < ng; g++) {
                    const float dd = d[m * ng + g];
                    float amax = 0.0f;
                    int qmax = 0;
                    for (int64_t k = g * G; k < (g + 1) * G; k++) {
                        const int v = q[m * KP + k];
                        assert_true(v >= -127 && v <= 127);
                        if (k >= K) {
                            assert_int_equal(v, 0);
                            continue;
                        }
                        amax = fmaxf(amax, fabsf(x[m * ldx + k]));
                        qmax = abs(v) > qmax ? abs(v) : qmax;
                        const double e = fabs((double)x[m * ldx + k] - back[m * K + k]);
                        if (e > dd * 0.5 + amax * 0x1p-20 + 1e-30)
                            fail_msg("K %lld G %d row %lld col %lld: |x - q d| = %g > d / 2 = %g",
                                     (long long)K, G, (long long)m, (long long)k, e, dd * 0.5);
                        if (dd > 0) worst = fmax(worst, e / dd);
                    }
                    assert_float_equal(dd, amax / 127.0f, amax * 1e-6f);
                    if (amax > 0) assert_int_equal(qmax, 127);  /* the largest maps to +-127 */
                    if (amax == 0) assert_true(dd == 0.0f);
                }
            free(x), free(q), free(d), free(back);
        }
    printf("quantize: max |x - q d| = %.6f d (bound 0.5 d)\n", worst);
    assert_true(worst <= 0.5 + 1e-4);
    /* NaN becomes 0 and does not disturb its group's scale; halves round away
     * from zero; -0 is 0; both quantizers agree on all of it */
    float x[64] = {0};
    x[0] = NAN, x[1] = 2.0f, x[2] = -1.0f, x[3] = -0.0f, x[4] = 1.0f, x[5] = -2.0f;
    for (int k = 6; k < 32; k++) x[k] = (float)(k - 19) * (2.0f / 127.0f) + (k % 2 ? 1.0f / 127.0f : 0.0f);
    x[32] = INFINITY, x[33] = 1.0f, x[34] = -NAN; /* an infinite group */
    int8_t q[64], q2[64];
    float d[2], d2[2];
    q8_quantize(q, d, x, 1, 64, 64, 32);
    q8_quantize_ref(q2, d2, x, 1, 64, 64, 32);
    assert_memory_equal(q, q2, sizeof q);
    assert_memory_equal(d, d2, sizeof d);
    assert_int_equal(q[0], 0);
    assert_int_equal(q[1], 127);
    assert_int_equal(q[2], -64); /* -63.5 rounds away from zero */
    assert_int_equal(q[3], 0);
    assert_int_equal(q[4], 64);
    assert_int_equal(q[5], -127);
    assert_float_equal(d[0], 2.0f / 127.0f, 1e-9f);
    assert_true(isinf(d[1]) && q[32] == 0 && q[33] == 0 && q[34] == 0);
}

/* ---- kernels against the reference ---- */

/* Checks kernel k on one shape against q8_matmul_ref; returns the max
 * |difference| / tolerance. */
static double check_kernel(q8_kernel k, int threads, int64_t M, int64_t N, int64_t K, int32_t G,
                           float beta, double *max_abs) {
    const int64_t KP = q8_padded(K, G), ng = KP / G, ldy = N + 3;
    float *x = rand_values((size_t)(M * K)), *w = rand_values((size_t)(N * K));
    int8_t *xq = xmalloc((size_t)(M * KP)), *wq = xmalloc((size_t)(N * KP));
    float *xd = xmalloc((size_t)(M * ng) * sizeof(float)), *wd = xmalloc((size_t)(N * ng) * sizeof(float));
    q8_quantize(xq, xd, x, M, K, K, G);
    q8_quantize(wq, wd, w, N, K, K, G);
    float *y = xmalloc((size_t)(M * ldy) * sizeof(float)), *r = xmalloc((size_t)(M * ldy) * sizeof(float));
    for (int64_t i = 0; i < M * ldy; i++) y[i] = r[i] = beta == 0.0f ? NAN : rand_uniform();
    for (int64_t m = 0; m < M; m++) /* the gap after each row must stay untouched */
        for (int64_t n = N; n < ldy; n++) y[m * ldy + n] = r[m * ldy + n] = 1234.5f;
    float *y0 = xmalloc((size_t)(M * ldy) * sizeof(float));
    memcpy(y0, y, (size_t)(M * ldy) * sizeof(float));
    assert_int_equal(q8_matmul_ex(k, threads, y, ldy, xq, xd, M, wq, wd, N, KP, G, beta), 0);
    q8_matmul_ref(r, ldy, xq, xd, M, wq, wd, N, KP, G, beta);
    double worst = 0.0;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            /* partial sums inside a group may cancel: bound by the absolute products */
            double s = beta == 0.0f ? 0.0 : fabs((double)y0[m * ldy + n]);
            for (int64_t g = 0; g < ng; g++) {
                int64_t is = 0;
                for (int64_t j = g * G; j < (g + 1) * G; j++) is += abs(xq[m * KP + j] * wq[n * KP + j]);
                s += (double)xd[m * ng + g] * wd[n * ng + g] * (double)is;
            }
            const double tol = (double)(ng + 8) * 0x1p-23 * s + 1e-37;
            const double diff = fabs((double)y[m * ldy + n] - r[m * ldy + n]);
            if (!(diff <= tol))
                fail_msg("%s M %lld N %lld K %lld G %d beta %g: y[%lld][%lld] = %.9g, reference %.9g "
                         "(tolerance %.3g)", q8_kernel_name(k), (long long)M, (long long)N,
                         (long long)K, G, (double)beta, (long long)m, (long long)n,
                         (double)y[m * ldy + n], (double)r[m * ldy + n], tol);
            worst = fmax(worst, diff / tol);
            *max_abs = fmax(*max_abs, diff);
        }
        for (int64_t n = N; n < ldy; n++) assert_true(y[m * ldy + n] == 1234.5f);
    }
    free(x), free(w), free(xq), free(wq), free(xd), free(wd), free(y), free(r), free(y0);
    return worst;
}

static void test_kernels_vs_ref(void **state) {
    (void)state;
    const q8_kernel kernels[] = {Q8_KERNEL_AUTO, Q8_KERNEL_AVX2, Q8_KERNEL_AVX512VNNI};
    const int64_t Ms[] = {1, 2, 5, 17}, Ns[] = {1, 3, 4, 5, 7, 33, 130};
    const int64_t Ks[] = {1, 31, 32, 33, 64, 100, 257, 688};
    const int32_t Gs[] = {32, 64, 96, 1024};
    for (size_t ki = 0; ki < sizeof kernels / sizeof kernels[0]; ki++) {
        const q8_kernel k = kernels[ki];
        if (!q8_kernel_available(k)) {
            printf("q8 kernel %s: not available on this CPU, skipped\n",
                   k == Q8_KERNEL_AVX512VNNI ? "avx512vnni" : q8_kernel_name(k));
            continue;
        }
        double worst = 0.0, max_abs = 0.0;
        int shapes = 0;
        for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++)
            for (size_t b = 0; b < sizeof Ns / sizeof Ns[0]; b++)
                for (size_t c = 0; c < sizeof Ks / sizeof Ks[0]; c++)
                    for (size_t g = 0; g < sizeof Gs / sizeof Gs[0]; g++) {
                        const float beta = (a + b + c + g) % 2 ? 1.0f : 0.0f;
                        const int threads = (b + c) % 2 ? 2 : 1;
                        worst = fmax(worst, check_kernel(k, threads, Ms[a], Ns[b], Ks[c], Gs[g], beta, &max_abs));
                        shapes++;
                    }
        /* a product big enough to be split between threads */
        worst = fmax(worst, check_kernel(k, 2, 3, 700, 688, 32, 1.0f, &max_abs));
        printf("q8 kernel %-10s vs reference: %d shapes, max |diff| %.3g = %.3f of the tolerance\n",
               k == Q8_KERNEL_AUTO ? "auto" : q8_kernel_name(k), shapes + 1, max_abs, worst);
        assert_true(worst <= 1.0);
    }
}

/* The extremes, exact: every product +-127 * 127 over a group of 1024 (the
 * largest integer sum, 16,516,096, still exact in a float), and weights of
 * -128 (never made by q8_quantize; the kernels take them). */
static void test_kernel_extremes(void **state) {
    (void)state;
    const q8_kernel kernels[] = {Q8_KERNEL_AUTO, Q8_KERNEL_AVX2, Q8_KERNEL_AVX512VNNI};
    const int64_t N = 6, KP = 2048;
    int8_t *x = xmalloc(KP), *w = xmalloc((size_t)(N * KP));
    float xd[2] = {1.0f, 1.0f}, wd[6 * 2];
    for (int64_t i = 0; i < N * 2; i++) wd[i] = 1.0f;
    for (int64_t k = 0; k < KP; k++) x[k] = k % 3 == 2 ? -127 : 127;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < KP; k++) {
            const int8_t v = n == 0 ? 127 : n == 1 ? -127 : n == 2 ? (int8_t)(k % 3 == 2 ? -127 : 127)
                           : n == 3 ? -128 : (int8_t)((k * 7 + n) % 255 - 127);
            w[n * KP + k] = v;
        }
    float ref[6], y[6];
    q8_matmul_ref(ref, N, x, xd, 1, w, wd, N, KP, 1024, 0.0f);
    assert_true(ref[2] == 127.0f * 127.0f * 2048.0f);
    for (size_t ki = 0; ki < sizeof kernels / sizeof kernels[0]; ki++) {
        if (!q8_kernel_available(kernels[ki])) continue;
        assert_int_equal(q8_matmul_ex(kernels[ki], 1, y, N, x, xd, 1, w, wd, N, KP, 1024, 0.0f), 0);
        for (int64_t n = 0; n < N; n++)
            if (y[n] != ref[n])
                fail_msg("%s: extreme row %lld: %.9g, reference %.9g", q8_kernel_name(kernels[ki]),
                         (long long)n, (double)y[n], (double)ref[n]);
    }
    free(x), free(w);
}

/* ---- determinism and errors ---- */

static void test_determinism(void **state) {
    (void)state;
    const int64_t M = 9, N = 301, K = 688, G = 32, KP = q8_padded(K, G), ng = KP / G;
    float *x = rand_values((size_t)(M * K)), *w = rand_values((size_t)(N * K));
    int8_t *xq = xmalloc((size_t)(M * KP)), *wq = xmalloc((size_t)(N * KP));
    float *xd = xmalloc((size_t)(M * ng) * 4), *wd = xmalloc((size_t)(N * ng) * 4);
    q8_quantize(xq, xd, x, M, K, K, G);
    q8_quantize(wq, wd, w, N, K, K, G);
    float *y1 = xmalloc((size_t)(M * N) * 4), *y2 = xmalloc((size_t)(M * N) * 4);
    assert_int_equal(q8_matmul_ex(Q8_KERNEL_AUTO, 1, y1, N, xq, xd, M, wq, wd, N, KP, G, 0.0f), 0);
    assert_int_equal(q8_matmul_ex(Q8_KERNEL_AUTO, 2, y2, N, xq, xd, M, wq, wd, N, KP, G, 0.0f), 0);
    assert_memory_equal(y1, y2, (size_t)(M * N) * 4);
    /* each row alone (a tile of one row, repeated) equals its place in the full product */
    for (int64_t n = 0; n < N; n += 37) {
        float one[9];
        assert_int_equal(q8_matmul_ex(Q8_KERNEL_AUTO, 1, one, 1, xq, xd, M, wq + n * KP, wd + n * ng,
                                      1, KP, (int32_t)G, 0.0f), 0);
        for (int64_t m = 0; m < M; m++) assert_true(one[m] == y1[m * N + n]);
    }
    /* invalid arguments and unavailable kernels leave y alone */
    float keep[4] = {1, 2, 3, 4}, y[4];
    memcpy(y, keep, sizeof y);
    assert_int_equal(q8_matmul_ex(Q8_KERNEL_AUTO, 1, y, 4, xq, xd, 1, wq, wd, 4, KP, 48, 0.0f), -1);
    assert_int_equal(q8_matmul_ex(Q8_KERNEL_AUTO, 1, y, 4, xq, xd, 1, wq, wd, 4, KP + 1, 32, 0.0f), -1);
    assert_int_equal(q8_matmul_ex(Q8_KERNEL_AUTO, 1, y, 3, xq, xd, 1, wq, wd, 4, KP, 32, 0.0f), -1);
    assert_int_equal(q8_matmul_ex(Q8_KERNEL_AUTO, 1, y, 4, xq, xd, -1, wq, wd, 4, KP, 32, 0.0f), -1);
    if (!q8_kernel_available(Q8_KERNEL_AVX512VNNI))
        assert_int_equal(q8_matmul_ex(Q8_KERNEL_AVX512VNNI, 1, y, 4, xq, xd, 1, wq, wd, 4, KP, 32, 0.0f), -1);
    assert_memory_equal(y, keep, sizeof y);
    free(x), free(w), free(xq), free(wq), free(xd), free(wd), free(y1), free(y2);
}

/* ---- quantized models ---- */

/* A tiny random model: d_ff 80 (padded to 96 at G 32), GQA, image input. */
static loom_model *tiny_model(int tied) {
    loom_error err = {{0}};
    tokenizer *tok = tokenizer_from_merges(NULL, 0, &err);
    assert_non_null(tok);
    decoder_config dc = decoder_default_config();
    dc.d_model = 64, dc.n_layers = 2, dc.n_heads = 4, dc.n_kv_heads = 2, dc.d_ff = 80;
    dc.vocab_size = tokenizer_vocab_size(tok), dc.max_seq = 48, dc.tie_embeddings = tied;
    model_image_config img = {.patch_size = 4, .max_patch_rows = 2, .max_patch_cols = 2};
    loom_model *m = model_new_ex(&dc, &img, NULL, tok, &err);
    if (!m) fail_msg("%s", err.msg);
    model_init_random(m, 11);
    return m;
}

static double rel_rms(const float *a, const float *b, int64_t n) {
    double e = 0.0, s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(e / (s > 0 ? s : 1));
}

/* Logits (T, V) of the full forward over tokens. */
static float *forward_logits(const loom_model *m, const int32_t *tokens, int32_t T) {
    loom_error err = {{0}};
    decoder_acts *a = decoder_acts_new(&m->cfg, 1, T, &err);
    if (!a) fail_msg("%s", err.msg);
    decoder_embed(&m->cfg, &m->w, tokens, T, a->x0);
    decoder_forward(&m->cfg, &m->w, a, 1, T, NULL);
    const size_t n = (size_t)T * m->cfg.vocab_size;
    float *out = xmalloc(n * sizeof(float));
    memcpy(out, a->logits, n * sizeof(float));
    decoder_acts_free(a);
    return out;
}

static void test_quantized_model(void **state) {
    (void)state;
    loom_error err = {{0}};
    enum { T = 20 };
    int32_t tokens[T];
    for (int t = 0; t < T; t++) tokens[t] = (t * 37 + 5) % 280 + 1;
    for (int tied = 0; tied <= 1; tied++)
        for (int head = 0; head <= 1; head++) {
            loom_model *m = tiny_model(tied);
            const int32_t V = m->cfg.vocab_size;
            assert_null(model_quantize(m, 48, head, &err)); /* not a multiple of 32 */
            assert_non_null(strstr(err.msg, "multiple of 32"));
            loom_model *q = model_quantize(m, 32, head, &err);
            if (!q) fail_msg("%s", err.msg);
            assert_null(model_quantize(q, 32, head, &err));
            assert_non_null(strstr(err.msg, "already quantized"));
            /* the fp32 tensors of the quantized decoder are gone, the others kept */
            assert_null(q->w.wq);
            assert_null(q->w.w_down);
            assert_non_null(q->w.tok_emb);
            if (!tied && head) assert_null(q->w.lm_head);
            else assert_non_null(q->w.lm_head);
            assert_memory_equal(q->pw.w, m->pw.w, (size_t)m->cfg.d_model * 4 * 4 * 3 * sizeof(float));
            float *lf = forward_logits(m, tokens, T), *lq = forward_logits(q, tokens, T);
            const double e = rel_rms(lq, lf, (int64_t)T * V);
            printf("tiny model (tied %d, int8 head %d): int8 logits vs fp32: relative RMS error %.4f\n",
                   tied, head, e);
            assert_true(e < 0.03);
            /* the KV cache, one position at a time, against the full forward */
            decoder_cache *kc = decoder_cache_new(&q->cfg, T, &err);
            assert_non_null(kc);
            float *ls = xmalloc((size_t)T * V * sizeof(float));
            for (int t = 0; t < T; t++)
                assert_int_equal(decoder_step_token(&q->cfg, &q->w, kc, tokens[t], ls + (size_t)t * V, &err), 0);
            const double es = rel_rms(ls, lq, (int64_t)T * V);
            printf("  int8 KV-cache steps vs int8 full forward: relative RMS difference %.2e\n", es);
            assert_true(es < 1e-2);
            /* the file round trip is exact */
            char path[2048];
            path_in(path, sizeof path, "q.safetensors");
            assert_int_equal(model_save(q, path, &err), 0);
            loom_model *r = model_load(path, &err);
            if (!r) fail_msg("%s", err.msg);
            assert_int_equal(r->cfg.quant_group, 32);
            assert_int_equal(r->cfg.quant_head, head);
            assert_memory_equal(r->params, q->params, q->table.total * sizeof(float));
            int64_t n8, nd;
            decoder_q8_counts(&q->cfg, &n8, &nd);
            decoder_q8_info a, b;
            for (int i = 0; decoder_q8_tensor(&q->cfg, i, q->q8, NULL, &a); i++) {
                assert_true(decoder_q8_tensor(&r->cfg, i, r->q8, NULL, &b));
                const int64_t rows = (a.NL ? a.NL : 1) * a.N;
                assert_memory_equal(a.m->q, b.m->q, (size_t)(rows * a.KP));
                assert_memory_equal(a.m->d, b.m->d, (size_t)(rows * a.KP / 32) * sizeof(float));
            }
            float *lr = forward_logits(r, tokens, T);
            assert_memory_equal(lr, lq, (size_t)T * V * sizeof(float));
            /* and answering runs end to end */
            loom_infer *inf = infer_new(r, &err);
            assert_non_null(inf);
            char out[256];
            assert_true(infer_answer(inf, NULL, "a red circle", 12, 8, out, sizeof out, &err) >= 0);
            infer_free(inf);
            free(lf), free(lq), free(ls), free(lr);
            decoder_cache_free(kc);
            model_free(r), model_free(q), model_free(m);
        }
}

/* `loom quantize` writes a file model_load reads; `loom info` names it. */
static void test_cli_round_trip(void **state) {
    (void)state;
    loom_error err = {{0}};
    char in[2048], out[2048], cmd[8192], log[2048];
    path_in(in, sizeof in, "cli_in.safetensors");
    path_in(out, sizeof out, "cli_out.safetensors");
    path_in(log, sizeof log, "cli.log");
    loom_model *m = tiny_model(1);
    assert_int_equal(model_save(m, in, &err), 0);
    snprintf(cmd, sizeof cmd, "%s quantize -m %s -o %s --group 64 --head > %s 2>&1", LOOM_CLI, in, out, log);
    assert_int_equal(system(cmd), 0);
    loom_model *q = model_load(out, &err);
    if (!q) fail_msg("%s", err.msg);
    assert_int_equal(q->cfg.quant_group, 64);
    assert_int_equal(q->cfg.quant_head, 1);
    loom_model *direct = model_quantize(m, 64, 1, &err);
    assert_non_null(direct);
    decoder_q8_info a, b;
    for (int i = 0; decoder_q8_tensor(&q->cfg, i, q->q8, NULL, &a); i++) {
        assert_true(decoder_q8_tensor(&direct->cfg, i, direct->q8, NULL, &b));
        assert_memory_equal(a.m->q, b.m->q, (size_t)((a.NL ? a.NL : 1) * a.N * a.KP));
    }
    snprintf(cmd, sizeof cmd, "%s info %s > %s 2>&1", LOOM_CLI, out, log);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char text[16384];
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "quantized:    q8"));
    char want[128];
    snprintf(want, sizeof want, "%-32s I8  [2, 64, 128] (rows of 80, zero-padded)", "decoder.w_down.q8");
    if (!strstr(text, want)) fail_msg("loom info lacks \"%s\":\n%s", want, text);
    /* bad requests: a group that is not a multiple of 32, a quantized input */
    snprintf(cmd, sizeof cmd, "%s quantize -m %s -o %s.x --group 48 > %s 2>&1", LOOM_CLI, in, out, log);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s quantize -m %s -o %s.x > %s 2>&1", LOOM_CLI, out, out, log);
    assert_int_not_equal(system(cmd), 0);
    f = fopen(log, "r");
    assert_non_null(f);
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "already quantized"));
    model_free(direct), model_free(q), model_free(m);
}

/* ---- corrupted files ---- */

typedef enum corruption {
    BAD_NONE, BAD_MINUS_128, BAD_PADDING, BAD_NAN_SCALE, BAD_NEG_SCALE, BAD_INF_SCALE, BAD_MISSING,
    BAD_SHAPE, BAD_DTYPE, BAD_GROUP, BAD_TYPE, BAD_HEAD_NO_TENSOR, BAD_FEW_BYTES, BAD_TRUNCATED,
} corruption;

/* Writes q's file with one corruption; returns the load error (NULL: it loaded). */
static const char *load_corrupted(loom_model *q, corruption c, const char *path, loom_error *err) {
    const decoder_q8 *q8 = q->q8;
    const int64_t KP = q8_padded(q->cfg.d_ff, 32);
    int8_t saved8 = 0;
    float savedf = 0.0f;
    int8_t *p8 = NULL;
    float *pf = NULL;
    switch (c) { /* value corruptions: in memory, written as they are, restored after */
    case BAD_MINUS_128: p8 = q8->wk.q + 70, saved8 = *p8, *p8 = -128; break;
    case BAD_PADDING: p8 = q8->w_down.q + 3 * KP + q->cfg.d_ff + 1, saved8 = *p8, *p8 = 9; break;
    case BAD_NAN_SCALE: pf = q8->w_up.d + 5, savedf = *pf, *pf = NAN; break;
    case BAD_NEG_SCALE: pf = q8->wo.d + 2, savedf = *pf, *pf = -0.01f; break;
    case BAD_INF_SCALE: pf = q8->wq.d + 1, savedf = *pf, *pf = INFINITY; break;
    default: break;
    }
    st_writer *w = st_writer_new();
    assert_non_null(w);
    /* the config: "group": 48, "type": "q4", or "head": 1 with no head tensor */
    loom_model tmp = *q;
    if (c == BAD_GROUP) tmp.cfg.quant_group = 48;
    if (c == BAD_HEAD_NO_TENSOR) tmp.cfg.quant_head = 1;
    char *cj = model_config_to_json(&tmp), *tj = tokenizer_to_json(q->tok, err);
    assert_non_null(cj);
    assert_non_null(tj);
    if (c == BAD_TYPE) {
        char *t = strstr(cj, "\"q8\"");
        assert_non_null(t);
        memcpy(t, "\"q4\"", 4);
    }
    assert_int_equal(st_writer_meta(w, "format", MODEL_FORMAT, err), 0);
    assert_int_equal(st_writer_meta(w, "tokenizer", tj, err), 0);
    assert_int_equal(st_writer_meta(w, "config", cj, err), 0);
    assert_int_equal(params_write(&q->table, w, "", q->params, err), 0);
    /* int8 bytes under another name, so that the byte count passes and the
     * loader gets to the mistyped tensor itself */
    const int64_t head_shape[2] = {q->cfg.vocab_size, q->cfg.d_model};
    int8_t *head_bytes = calloc((size_t)(head_shape[0] * head_shape[1]), 1);
    assert_non_null(head_bytes);
    if (c == BAD_DTYPE)
        assert_int_equal(st_writer_add(w, "unrelated.bytes", ST_I8, 2, head_shape, head_bytes, err), 0);
    /* the int8 tensors, one of them possibly missing, misshapen or mistyped */
    decoder_q8_info t;
    for (int i = 0; decoder_q8_tensor(&q->cfg, i, q8, NULL, &t); i++) {
        const int64_t ng = t.KP / 32;
        char name[128];
        snprintf(name, sizeof name, "%s.q8", t.name);
        int64_t sq[3] = {t.NL, t.N, t.KP}, sd[3] = {t.NL, t.N, ng};
        if (c == BAD_MISSING && i == 2) strcat(name, "x"); /* "decoder.wv.q8x": the bytes, misnamed */
        if (c == BAD_SHAPE && i == 1) sq[1] = t.KP, sq[2] = t.N; /* the same bytes, transposed */
        if (c == BAD_FEW_BYTES) sq[0] = 1; /* the file holds one layer of each */
        if (c == BAD_DTYPE && i == 3)
            assert_int_equal(st_writer_add(w, name, ST_U8, 3, sq, t.m->q, err), 0);
        else
            assert_int_equal(st_writer_add(w, name, ST_I8, 3, sq, t.m->q, err), 0);
        snprintf(name, sizeof name, "%s.q8_scale", t.name);
        assert_int_equal(st_writer_add(w, name, ST_F32, 3, sd, t.m->d, err), 0);
    }
    assert_int_equal(st_writer_save(w, path, err), 0);
    st_writer_free(w);
    free(cj), free(tj), free(head_bytes);
    if (p8) *p8 = saved8;
    if (pf) *pf = savedf;
    if (c == BAD_TRUNCATED) { /* cut the file in the middle of its tensors */
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(truncate(path, st.st_size * 2 / 3), 0);
    }
    loom_model *r = model_load(path, err);
    if (r) {
        model_free(r);
        return NULL;
    }
    return err->msg;
}

static void test_bad_files(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = tiny_model(1);
    loom_model *q = model_quantize(m, 32, 0, &err);
    assert_non_null(q);
    char path[2048];
    path_in(path, sizeof path, "bad.safetensors");
    struct { corruption c; const char *want; } cases[] = {
        {BAD_MINUS_128, "decoder.wk.q8: value -128 at row 1, column 6 is outside [-127, 127]"},
        {BAD_PADDING, "decoder.w_down.q8: padding value 9 at row 3, column 81"},
        {BAD_NAN_SCALE, "decoder.w_up.q8_scale: scale nan at row 2, group 1 is not finite"},
        {BAD_NEG_SCALE, "decoder.wo.q8_scale: scale -0.01 at row 1, group 0"},
        {BAD_INF_SCALE, "decoder.wq.q8_scale: scale inf"},
        {BAD_MISSING, "decoder.wv.q8"},
        {BAD_SHAPE, "decoder.wk.q8"},
        {BAD_DTYPE, "decoder.wo.q8"},
        {BAD_GROUP, "group size 48 must be a multiple of 32"},
        {BAD_TYPE, "\"quant\" must be"},
        {BAD_HEAD_NO_TENSOR, "the config needs"}, /* its scales are missing from the F32 count */
        {BAD_FEW_BYTES, "int8 weights but the file holds"},
        {BAD_TRUNCATED, "is beyond the"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *msg = load_corrupted(q, cases[i].c, path, &err);
        if (!msg) fail_msg("corruption %zu: the file loaded", i);
        printf("corruption %2zu refused: %s\n", i, msg);
        if (!strstr(msg, cases[i].want)) fail_msg("corruption %zu: \"%s\" lacks \"%s\"", i, msg, cases[i].want);
    }
    /* the same writer with no corruption gives a file that loads */
    const char *msg = load_corrupted(q, BAD_NONE, path, &err);
    if (msg) fail_msg("the uncorrupted file did not load: %s", msg);
    model_free(q), model_free(m);
}

/* ---- training refuses quantized models ---- */

static void quiet_log(loom_log_level level, const char *msg, void *user) {
    (void)level, (void)msg, (void)user;
}

static void test_training_refuses(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = tiny_model(1);
    loom_model *q = model_quantize(m, 32, 0, &err);
    assert_non_null(q);
    char qpath[2048], data[2048], out[2048];
    path_in(qpath, sizeof qpath, "train_q.safetensors");
    path_in(data, sizeof data, "corpus.txt");
    path_in(out, sizeof out, "trained.safetensors");
    assert_int_equal(model_save(q, qpath, &err), 0);
    FILE *f = fopen(data, "w");
    assert_non_null(f);
    for (int i = 0; i < 50; i++) fprintf(f, "a small red circle at the top left\n");
    fclose(f);
    loom_log_set(quiet_log, NULL);
    train_options o = train_default_options();
    o.data = data, o.out = out, o.init = qpath, o.steps = 1, o.batch = 2, o.seq = 16, o.quiet = 1;
    o.threads = 1;
    assert_int_equal(train_run(&o, &err), -1);
    printf("train --init: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "quantized (int8) model cannot be trained"));
    o.init = NULL, o.resume = 1, o.ckpt = qpath;
    assert_int_equal(train_run(&o, &err), -1);
    printf("train --resume: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "quantized (int8) model cannot be trained"));
    struct stat st;
    assert_int_not_equal(stat(out, &st), 0); /* nothing written */
    model_free(q), model_free(m);
}

static int setup(void **state) {
    (void)state;
    const char *base = getenv("LOOM_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/q8_test_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    const char *names[] = {"q.safetensors", "cli_in.safetensors", "cli_out.safetensors",
                           "cli_out.safetensors.x", "cli.log", "bad.safetensors",
                           "train_q.safetensors", "corpus.txt", "trained.safetensors",
                           "trained.safetensors.log.csv", "trained.safetensors.ckpt"};
    char path[2048];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in(path, sizeof path, names[i]);
        remove(path);
    }
    rmdir(g_dir);
    return 0;
}

int main(void) {
    loom_threads_set(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_quantize_bounds),
        cmocka_unit_test(test_kernels_vs_ref),
        cmocka_unit_test(test_kernel_extremes),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_quantized_model),
        cmocka_unit_test(test_cli_round_trip),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_training_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
