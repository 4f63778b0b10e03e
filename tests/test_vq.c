/* test_vq.c: the VQ autoencoder (src/heads/vq.c) in C. Its forward, backward and EMA update
 * are checked against PyTorch by tests/reference (vq_parity.py); here:
 *
 *   config      JSON round trip, defaults, refused configs
 *   tensors     names, shapes and counts; the codebook and EMA state in their own table
 *   errors      sizes that are not multiples of the stride, absurd, or over the capacity;
 *               codes out of range; all refused with a message
 *   round trip  encode/decode shapes on a smaller, non-square batch; decode(encode(x)) is the
 *               training forward's reconstruction clamped to [-1, 1]
 *   backward    accumulates (twice = 2x), scales with loss_scale; threads: 1 and 2 agree bit
 *               for bit
 *   codebook    EMA update, dead-code restarts (which codes, deterministic), k-means init
 *   training    a few hundred plain SGD steps on fixed synthetic scenes: the reconstruction
 *               error must drop substantially
 *   pixels      uint8 <-> [-1, 1] conversion and PSNR
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
#include "heads/vq.h"

static void *xmalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) fail_msg("test_vq: out of memory (%zu bytes)", n);
    return p;
}

/* A model: tables, parameter/gradient/state buffers and the views into them. */
typedef struct model {
    vq_config c;
    param_table pt, st;
    float *params, *grads, *state;
    vq_weights w, g;
} model;

static vq_config small_config(void) {
    vq_config c = {.n_levels = 2, .channels = {8, 16}, .res_blocks = 1, .code_dim = 8,
                   .codes = 16, .beta = 0.25f, .ema_decay = 0.9f};
    return c;
}

static void model_make(model *m, const vq_config *c, uint64_t seed) {
    loom_error err = {{0}};
    memset(m, 0, sizeof *m);
    m->c = *c;
    if (vq_register(c, &m->pt, &m->st, &err)) fail_msg("vq_register: %s", err.msg);
    m->params = floats_alloc(m->pt.total);
    m->grads = floats_alloc(m->pt.total);
    m->state = floats_alloc(m->st.total);
    if (!m->params || !m->grads || !m->state) fail_msg("out of memory");
    vq_bind(c, &m->pt, m->params, &m->st, m->state, &m->w);
    vq_bind(c, &m->pt, m->grads, NULL, NULL, &m->g);
    loom_rng rng;
    rng_seed(&rng, seed);
    vq_init_weights(c, &m->w, &rng);
}

static void model_drop(model *m) {
    free(m->params), free(m->grads), free(m->state);
    params_free(&m->pt);
    params_free(&m->st);
}

/* Shapes World-like scenes: black, with a few flat colored shapes (squares, discs). */
static void scene(float *x, int32_t H, int32_t W, int32_t which) {
    static const uint8_t colors[4][3] = {{220, 40, 40}, {50, 90, 230}, {235, 215, 40}, {60, 210, 220}};
    uint8_t *rgb = xmalloc((size_t)H * W * 3);
    for (int32_t k = 0; k < 2; k++) {
        const uint8_t *col = colors[(which + k) % 4];
        int32_t cy = (which * 5 + k * 7) % (H - 6) + 3, cx = (which * 3 + k * 11) % (W - 6) + 3;
        int32_t r = 2 + (which + k) % 3;
        for (int32_t y = 0; y < H; y++)
            for (int32_t xx = 0; xx < W; xx++) {
                int32_t dy = y - cy, dx = xx - cx;
                int in = (which + k) % 2 ? dy * dy + dx * dx <= r * r : abs(dy) <= r && abs(dx) <= r;
                if (in) memcpy(rgb + ((size_t)y * W + xx) * 3, col, 3);
            }
    }
    vq_pixels_from_rgb(x, rgb, (int64_t)H * W * 3);
    free(rgb);
}

/* ---- config ---- */

static void test_config_json(void **state) {
    (void)state;
    loom_error err = {{0}};
    vq_config d = vq_default_config(), c;
    assert_int_equal(vq_config_check(&d, &err), 0);
    assert_int_equal(vq_stride(&d), 8);
    char *js = vq_config_to_json(&d);
    assert_non_null(js);
    printf("default: %s\n", js);
    assert_string_equal(js, "{\"stride\":8,\"channels\":[64,128,128],\"res_blocks\":1,"
                            "\"code_dim\":64,\"codes\":512,\"beta\":0.25,\"ema_decay\":0.99}");
    assert_int_equal(vq_config_from_json(js, &c, &err), 0);
    assert_memory_equal(&c, &d, sizeof c);
    free(js);
    /* stride is optional */
    assert_int_equal(vq_config_from_json("{\"channels\":[4],\"res_blocks\":0,\"code_dim\":2,"
                                         "\"codes\":3,\"beta\":0,\"ema_decay\":0.5}", &c, &err), 0);
    assert_int_equal(vq_stride(&c), 2);
    static const char *bad[] = {
        "", "[]", "{\"channels\":[64,128,128],\"res_blocks\":1,\"code_dim\":64,\"codes\":512,\"beta\":0.25}",
        "{\"stride\":4,\"channels\":[64,128,128],\"res_blocks\":1,\"code_dim\":64,\"codes\":512,\"beta\":0.25,\"ema_decay\":0.99}",
        "{\"channels\":[],\"res_blocks\":1,\"code_dim\":64,\"codes\":512,\"beta\":0.25,\"ema_decay\":0.99}",
        "{\"channels\":[1,2,3,4,5,6],\"res_blocks\":1,\"code_dim\":64,\"codes\":512,\"beta\":0.25,\"ema_decay\":0.99}",
        "{\"channels\":[64,0],\"res_blocks\":1,\"code_dim\":64,\"codes\":512,\"beta\":0.25,\"ema_decay\":0.99}",
        "{\"channels\":[64,2.5],\"res_blocks\":1,\"code_dim\":64,\"codes\":512,\"beta\":0.25,\"ema_decay\":0.99}",
        "{\"channels\":[64],\"res_blocks\":9,\"code_dim\":64,\"codes\":512,\"beta\":0.25,\"ema_decay\":0.99}",
        "{\"channels\":[64],\"res_blocks\":1,\"code_dim\":0,\"codes\":512,\"beta\":0.25,\"ema_decay\":0.99}",
        "{\"channels\":[64],\"res_blocks\":1,\"code_dim\":8,\"codes\":100000,\"beta\":0.25,\"ema_decay\":0.99}",
        "{\"channels\":[64],\"res_blocks\":1,\"code_dim\":8,\"codes\":8,\"beta\":-1,\"ema_decay\":0.99}",
        "{\"channels\":[64],\"res_blocks\":1,\"code_dim\":8,\"codes\":8,\"beta\":0.25,\"ema_decay\":1}",
        "{\"channels\":\"64\",\"res_blocks\":1,\"code_dim\":8,\"codes\":8,\"beta\":0.25,\"ema_decay\":0.5}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = d;
        err.msg[0] = 0;
        assert_int_equal(vq_config_from_json(bad[i], &c, &err), -1);
        assert_true(err.msg[0] != 0);
        assert_memory_equal(&c, &d, sizeof c); /* untouched on failure */
        printf("ok   refused: %s\n", err.msg);
    }
}

/* ---- tensors ---- */

static void test_tensors(void **state) {
    (void)state;
    vq_config c = vq_default_config();
    model m;
    model_make(&m, &c, 1);
    int64_t n_params = 0, n_state = 0;
    for (int32_t i = 0; i < m.pt.n; i++) {
        n_params += (int64_t)m.pt.info[i].numel;
        assert_true(strncmp(m.pt.info[i].name, "vq.", 3) == 0);
        assert_int_equal(m.pt.info[i].decay, strstr(m.pt.info[i].name, ".weight") != NULL);
    }
    for (int32_t i = 0; i < m.st.n; i++) n_state += (int64_t)m.st.info[i].numel;
    assert_int_equal(n_params, vq_param_count(&c));
    assert_int_equal(n_state, vq_state_count(&c));
    assert_int_equal(n_state, 512 * 64 * 2 + 512);
    assert_int_equal(m.st.n, 3);
    assert_non_null(params_find(&m.st, "vq.codebook"));
    assert_null(params_find(&m.pt, "vq.codebook"));
    const param_info *p = params_find(&m.pt, "vq.enc.1.weight");
    assert_non_null(p);
    assert_true(p->ndim == 4 && p->shape[0] == 128 && p->shape[1] == 4 && p->shape[2] == 4 &&
                p->shape[3] == 64);
    p = params_find(&m.pt, "vq.dec.0.weight"); /* transposed conv 64 -> 3: (Cin, 4, 4, Cout) */
    assert_true(p && p->shape[0] == 64 && p->shape[3] == 3);
    p = params_find(&m.pt, "vq.dec.0.bias");
    assert_true(p && p->shape[0] == 3);
    p = params_find(&m.pt, "vq.enc.out.weight");
    assert_true(p && p->shape[0] == 64 && p->shape[1] == 1 && p->shape[3] == 128);
    assert_non_null(params_find(&m.pt, "vq.dec.res.0.conv2.bias"));
    /* gradients have no state */
    assert_null(m.g.codebook);
    assert_non_null(m.w.codebook);
    assert_true(m.w.ema_count[0] == 1.0f && m.w.ema_sum[5] == m.w.codebook[5]);
    printf("default config: %lld trained floats in %d tensors, %lld state floats\n",
           (long long)n_params, m.pt.n, (long long)n_state);
    /* one table for both is refused */
    loom_error err = {{0}};
    param_table t = {0};
    assert_int_equal(vq_register(&c, &t, &t, &err), -1);
    params_free(&t);
    model_drop(&m);
}

/* ---- errors ---- */

static void test_bad_sizes(void **state) {
    (void)state;
    loom_error err = {{0}};
    vq_config c = small_config(); /* stride 4 */
    model m;
    model_make(&m, &c, 2);
    assert_null(vq_acts_new(&c, 1, 18, 16, &err)); /* 18 % 4 */
    printf("ok   refused: %s\n", err.msg);
    assert_null(vq_acts_new(&c, 0, 16, 16, &err));
    assert_null(vq_acts_new(&c, 1, 0, 16, &err));
    assert_null(vq_acts_new(&c, 1, -4, 16, &err));
    assert_null(vq_acts_new(&c, 1, 16, 1 << 20, &err)); /* absurd side */
    printf("ok   refused: %s\n", err.msg);
    assert_null(vq_acts_new(&c, 1 << 20, 4096, 4096, &err)); /* absurd batch */
    printf("ok   refused: %s\n", err.msg);

    vq_acts *a = vq_acts_new(&c, 2, 16, 16, &err);
    if (!a) fail_msg("acts: %s", err.msg);
    float *x = xmalloc(sizeof(float) * 4 * 32 * 32 * 3), loss = -1.0f;
    int32_t codes[4 * 8 * 8];
    struct { int32_t B, H, W; } bad[] = {{2, 16, 15}, {2, 14, 16}, {2, 2, 16}, {0, 16, 16},
                                         {3, 16, 16}, {1, 32, 32}, {-1, 16, 16}, {1, 16, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        assert_int_equal(vq_forward(&c, &m.w, a, x, bad[i].B, bad[i].H, bad[i].W, codes, &loss, &err), -1);
        assert_true(err.msg[0] != 0);
        printf("ok   forward %d x %d x %d refused: %s\n", bad[i].B, bad[i].H, bad[i].W, err.msg);
        assert_int_equal(vq_encode(&c, &m.w, a, x, bad[i].B, bad[i].H, bad[i].W, codes, &err), -1);
    }
    assert_true(loss == -1.0f);
    /* capacity is in pixels: 1 x 32 x 16 fits a 2 x 16 x 16 batch */
    assert_int_equal(vq_forward(&c, &m.w, a, x, 1, 32, 16, codes, &loss, &err), 0);
    /* decode: grid sides and codes */
    for (int i = 0; i < 8; i++) codes[i] = i;
    assert_int_equal(vq_decode(&c, &m.w, a, codes, 1, 2, 4, x, &err), 0);
    assert_int_equal(vq_decode(&c, &m.w, a, codes, 1, 0, 4, x, &err), -1);
    assert_int_equal(vq_decode(&c, &m.w, a, codes, 1, 4, 100000, x, &err), -1);
    assert_int_equal(vq_decode(&c, &m.w, a, codes, 3, 4, 4, x, &err), -1); /* over capacity */
    printf("ok   decode refused: %s\n", err.msg);
    codes[3] = 16;
    assert_int_equal(vq_decode(&c, &m.w, a, codes, 1, 2, 4, x, &err), -1);
    printf("ok   decode refused: %s\n", err.msg);
    codes[3] = -1;
    assert_int_equal(vq_decode(&c, &m.w, a, codes, 1, 2, 4, x, &err), -1);
    loom_rng rng;
    rng_seed(&rng, 1);
    assert_int_equal(vq_kmeans_init(&c, &m.w, a, x, 1, 16, 10, 3, &rng, &err), -1);
    assert_int_equal(vq_kmeans_init(&c, &m.g, a, x, 1, 16, 16, 3, &rng, &err), -1); /* no state */
    printf("ok   k-means refused: %s\n", err.msg);
    free(x);
    vq_acts_free(a);
    model_drop(&m);
}

/* ---- encode / decode ---- */

static void test_encode_decode(void **state) {
    (void)state;
    loom_error err = {{0}};
    vq_config c = small_config();
    model m;
    model_make(&m, &c, 3);
    const int32_t B = 3, H = 16, W = 24, S = vq_stride(&c), h = H / S, w = W / S;
    vq_acts *a = vq_acts_new(&c, 2, 32, 32, &err); /* 2048 pixels; the batch has 1152 */
    if (!a) fail_msg("acts: %s", err.msg);
    float *x = xmalloc(sizeof(float) * B * H * W * 3), *y = xmalloc(sizeof(float) * B * H * W * 3);
    for (int32_t b = 0; b < B; b++) scene(x + (size_t)b * H * W * 3, H, W, b);
    loom_rng rng;
    rng_seed(&rng, 4);
    if (vq_kmeans_init(&c, &m.w, a, x, B, H, W, 5, &rng, &err)) fail_msg("kmeans: %s", err.msg);
    int32_t codes[3 * 4 * 6], codes2[3 * 4 * 6];
    float loss;
    if (vq_forward(&c, &m.w, a, x, B, H, W, codes, &loss, &err)) fail_msg("forward: %s", err.msg);
    assert_true(a->B == B && a->H == H && a->W == W);
    float *recon = xmalloc(sizeof(float) * B * H * W * 3);
    memcpy(recon, a->dec[0], sizeof(float) * B * H * W * 3);
    if (vq_encode(&c, &m.w, a, x, B, H, W, codes2, &err)) fail_msg("encode: %s", err.msg);
    assert_memory_equal(codes, codes2, sizeof codes);
    for (int32_t i = 0; i < B * h * w; i++) assert_true(codes[i] >= 0 && codes[i] < c.codes);
    for (size_t i = 0; i < (size_t)B * H * W * 3; i++) y[i] = NAN;
    if (vq_decode(&c, &m.w, a, codes, B, h, w, y, &err)) fail_msg("decode: %s", err.msg);
    int clamped = 0;
    for (size_t i = 0; i < (size_t)B * H * W * 3; i++) {
        float r = recon[i] < -1.0f ? -1.0f : recon[i] > 1.0f ? 1.0f : recon[i];
        assert_true(y[i] >= -1.0f && y[i] <= 1.0f);
        assert_true(y[i] == r); /* the same computation, bit for bit */
        clamped += r != recon[i];
    }
    printf("ok   encode %dx%dx%d -> %dx%dx%d codes -> decode %dx%dx%dx3 == clamp(forward recon) "
           "(%d values clamped), loss %.4f\n", B, H, W, B, h, w, B, H, W, clamped, loss);
    /* one image decodes the same alone as in the batch */
    float *y1 = xmalloc(sizeof(float) * H * W * 3);
    if (vq_decode(&c, &m.w, a, codes + h * w, 1, h, w, y1, &err)) fail_msg("decode: %s", err.msg);
    assert_memory_equal(y1, y + (size_t)H * W * 3, sizeof(float) * H * W * 3);
    free(x), free(y), free(y1), free(recon);
    vq_acts_free(a);
    model_drop(&m);
}

/* ---- backward: accumulation, scale, threads ---- */

static void test_backward_accumulates_and_threads(void **state) {
    (void)state;
    loom_error err = {{0}};
    vq_config c = small_config();
    model m;
    model_make(&m, &c, 5);
    const int32_t B = 4, H = 32, W = 32;
    vq_acts *a = vq_acts_new(&c, B, H, W, &err);
    if (!a) fail_msg("acts: %s", err.msg);
    float *x = xmalloc(sizeof(float) * B * H * W * 3);
    for (int32_t b = 0; b < B; b++) scene(x + (size_t)b * H * W * 3, H, W, b + 1);
    loom_rng rng;
    rng_seed(&rng, 6);
    if (vq_kmeans_init(&c, &m.w, a, x, B, H, W, 3, &rng, &err)) fail_msg("kmeans: %s", err.msg);
    const size_t n = m.pt.total;
    float *g1 = xmalloc(n * 4), *g2 = xmalloc(n * 4), loss[2];
    for (int run = 0; run < 2; run++) {
        loom_threads_set(run + 1);
        memset(m.grads, 0, n * 4);
        if (vq_forward(&c, &m.w, a, x, B, H, W, NULL, &loss[run], &err)) fail_msg("%s", err.msg);
        vq_backward(&c, &m.w, &m.g, a, 1.0f);
        memcpy(run ? g2 : g1, m.grads, n * 4);
    }
    loom_threads_set(1);
    assert_true(memcmp(&loss[0], &loss[1], sizeof(float)) == 0);
    assert_memory_equal(g1, g2, n * 4);
    printf("ok   loss and gradients bit-identical with 1 and 2 threads (loss %.6f)\n", loss[0]);
    /* a second backward adds the same again; loss_scale scales */
    vq_backward(&c, &m.w, &m.g, a, 1.0f);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(m.grads[i] - 2.0 * g1[i]) / (1e-6 + fabs(g1[i])));
    memset(m.grads, 0, n * 4);
    vq_backward(&c, &m.w, &m.g, a, 0.5f);
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(m.grads[i] - 0.5 * g1[i]) / (1e-6 + fabs(g1[i])));
    printf("ok   backward accumulates and scales: worst relative diff %.3g (tol 1e-5)\n", worst);
    assert_true(worst < 1e-5);
    free(x), free(g1), free(g2);
    vq_acts_free(a);
    model_drop(&m);
}

/* ---- codebook ---- */

static void test_codebook(void **state) {
    (void)state;
    loom_error err = {{0}};
    vq_config c = small_config();
    c.codes = 64; /* more codes than the scenes have distinct patches: some stay empty */
    model m;
    model_make(&m, &c, 7);
    const int32_t B = 2, H = 16, W = 16, D = c.code_dim, K = c.codes;
    const int32_t N = B * (H / 4) * (W / 4);
    vq_acts *a = vq_acts_new(&c, B, H, W, &err);
    if (!a) fail_msg("acts: %s", err.msg);
    float *x = xmalloc(sizeof(float) * B * H * W * 3), loss;
    for (int32_t b = 0; b < B; b++) scene(x + (size_t)b * H * W * 3, H, W, b);
    loom_rng rng;
    rng_seed(&rng, 8);
    if (vq_kmeans_init(&c, &m.w, a, x, B, H, W, 10, &rng, &err)) fail_msg("%s", err.msg);
    /* k-means: counts are the cluster sizes and add up to N; every used code is its cluster's
     * mean (ema_sum = codebook * count) */
    double total = 0.0;
    int used = 0;
    for (int32_t k = 0; k < K; k++) {
        total += m.w.ema_count[k];
        used += m.w.ema_count[k] > 0.0f;
        for (int32_t d = 0; d < D; d++)
            assert_float_equal(m.w.ema_sum[k * D + d], m.w.codebook[k * D + d] * m.w.ema_count[k], 1e-5);
    }
    assert_float_equal(total, N, 1e-3);
    if (vq_forward(&c, &m.w, a, x, B, H, W, NULL, &loss, &err)) fail_msg("%s", err.msg);
    printf("k-means init: %d of %d codes used by %d positions, commitment %.3g\n", used, K, N,
           a->commit);
    /* the nearest code: brute force in double agrees with the gemm argmin */
    for (int32_t i = 0; i < N; i++) {
        double best = INFINITY;
        int32_t bk = -1;
        for (int32_t k = 0; k < K; k++) {
            double s = 0.0;
            for (int32_t d = 0; d < D; d++) {
                double t = (double)a->ze[i * D + d] - m.w.codebook[k * D + d];
                s += t * t;
            }
            if (s < best) best = s, bk = k;
        }
        double chosen = 0.0;
        for (int32_t d = 0; d < D; d++) {
            double t = (double)a->ze[i * D + d] - m.w.codebook[a->codes[i] * D + d];
            chosen += t * t;
        }
        assert_true(a->codes[i] == bk || chosen <= best * (1 + 1e-5) + 1e-9);
    }

    /* EMA with decay 0.9: counts move 10% towards the batch's */
    float *count0 = xmalloc(sizeof(float) * K);
    memcpy(count0, m.w.ema_count, sizeof(float) * K);
    vq_ema_update(&c, &m.w, a);
    total = 0.0;
    for (int32_t k = 0; k < K; k++) {
        int32_t n_k = 0;
        for (int32_t i = 0; i < N; i++) n_k += a->codes[i] == k;
        assert_float_equal(m.w.ema_count[k], 0.9f * count0[k] + 0.1f * (float)n_k, 1e-5);
        total += m.w.ema_count[k];
    }
    assert_float_equal(total, N, 1e-3);

    /* restarts: exactly the codes under the threshold, to encoder outputs, deterministic */
    const float thr = 0.5f;
    int expect = 0;
    for (int32_t k = 0; k < K; k++) expect += m.w.ema_count[k] < thr;
    float *saved = xmalloc(sizeof(float) * m.st.total), *after = xmalloc(sizeof(float) * m.st.total);
    memcpy(saved, m.state, sizeof(float) * m.st.total);
    float *was = xmalloc(sizeof(float) * K);
    memcpy(was, m.w.ema_count, sizeof(float) * K);
    loom_rng r1;
    rng_seed(&r1, 99);
    int32_t n1 = vq_restart_dead_codes(&c, &m.w, a, thr, &r1);
    assert_int_equal(n1, expect);
    assert_true(expect > 0); /* the config has more codes than the scenes need */
    for (int32_t k = 0; k < K; k++) {
        if (!(was[k] < thr)) continue;
        assert_true(m.w.ema_count[k] == thr);
        int found = 0; /* the new code is one of the batch's encoder outputs */
        for (int32_t i = 0; i < N && !found; i++)
            found = memcmp(m.w.codebook + k * D, a->ze + i * D, sizeof(float) * D) == 0;
        assert_true(found);
    }
    memcpy(after, m.state, sizeof(float) * m.st.total);
    memcpy(m.state, saved, sizeof(float) * m.st.total);
    rng_seed(&r1, 99);
    assert_int_equal(vq_restart_dead_codes(&c, &m.w, a, thr, &r1), n1);
    assert_memory_equal(after, m.state, sizeof(float) * m.st.total);
    assert_int_equal(vq_restart_dead_codes(&c, &m.w, a, 0.0f, &r1), 0);
    printf("ok   EMA update; %d dead codes (count < %.2f) restarted to encoder outputs, "
           "deterministically\n", n1, thr);
    free(x), free(count0), free(saved), free(after), free(was);
    vq_acts_free(a);
    model_drop(&m);
}

/* ---- training ---- */

/* Plain SGD on four fixed 16 x 16 scenes, with k-means init, EMA codebook and restarts. The
 * reconstruction MSE must fall below a fifth of its start, and below half of the best
 * constant image's (each channel's variance: what a network that learned only the background
 * and the mean color gets; learning that alone takes the first ~50 steps). */
static void test_training_reduces_loss(void **state) {
    (void)state;
    loom_error err = {{0}};
    vq_config c = small_config();
    model m;
    model_make(&m, &c, 11);
    const int32_t B = 4, H = 16, W = 16, steps = 300;
    const float lr = 0.3f;
    vq_acts *a = vq_acts_new(&c, B, H, W, &err);
    if (!a) fail_msg("acts: %s", err.msg);
    float *x = xmalloc(sizeof(float) * B * H * W * 3), loss;
    for (int32_t b = 0; b < B; b++) scene(x + (size_t)b * H * W * 3, H, W, b);
    double var = 0.0; /* mean over channels of each channel's variance */
    for (int ch = 0; ch < 3; ch++) {
        double s = 0.0, s2 = 0.0;
        for (int64_t i = ch; i < (int64_t)B * H * W * 3; i += 3) s += x[i], s2 += (double)x[i] * x[i];
        double n = (double)B * H * W;
        var += (s2 / n - (s / n) * (s / n)) / 3.0;
    }
    loom_rng rng;
    rng_seed(&rng, 12);
    if (vq_kmeans_init(&c, &m.w, a, x, B, H, W, 10, &rng, &err)) fail_msg("%s", err.msg);
    double mse0 = -1.0, mse = 0.0;
    int32_t restarts = 0;
    for (int32_t step = 0; step < steps; step++) {
        memset(m.grads, 0, sizeof(float) * m.pt.total);
        if (vq_forward(&c, &m.w, a, x, B, H, W, NULL, &loss, &err)) fail_msg("%s", err.msg);
        if (!isfinite(loss)) fail_msg("step %d: loss %f", step, loss);
        if (step == 0) mse0 = a->mse;
        mse = a->mse;
        if (step % 50 == 0 || step == steps - 1)
            printf("step %3d: loss %.5f (mse %.5f, commit %.5f)\n", step, loss, a->mse, a->commit);
        vq_backward(&c, &m.w, &m.g, a, 1.0f);
        for (size_t i = 0; i < m.pt.total; i++) m.params[i] -= lr * m.grads[i];
        vq_ema_update(&c, &m.w, a);
        restarts += vq_restart_dead_codes(&c, &m.w, a, 0.05f, &rng);
    }
    /* PSNR of the final reconstruction on 0..255 */
    const int64_t n = (int64_t)B * H * W * 3;
    uint8_t *in8 = xmalloc((size_t)n), *out8 = xmalloc((size_t)n);
    float *y = xmalloc(sizeof(float) * (size_t)n);
    int32_t codes[4 * 4 * 4];
    if (vq_encode(&c, &m.w, a, x, B, H, W, codes, &err)) fail_msg("%s", err.msg);
    if (vq_decode(&c, &m.w, a, codes, B, H / 4, W / 4, y, &err)) fail_msg("%s", err.msg);
    vq_pixels_to_rgb(in8, x, n);
    vq_pixels_to_rgb(out8, y, n);
    double psnr = vq_psnr(in8, out8, n);
    int ok = mse < 0.2 * mse0 && mse < 0.5 * var;
    printf("%s reconstruction mse %.5f -> %.5f after %d SGD steps (must be < 0.2 x start = %.5f "
           "and < 0.5 x the best constant image's %.5f); %d code restarts; PSNR %.2f dB\n",
           ok ? "ok  " : "FAIL", mse0, mse, steps, 0.2 * mse0, 0.5 * var, restarts, psnr);
    assert_true(ok);
    free(x), free(in8), free(out8), free(y);
    vq_acts_free(a);
    model_drop(&m);
}

/* ---- pixels ---- */

static void test_pixels_and_psnr(void **state) {
    (void)state;
    uint8_t v[256], back[256];
    float x[256];
    for (int i = 0; i < 256; i++) v[i] = (uint8_t)i;
    vq_pixels_from_rgb(x, v, 256);
    assert_true(x[0] == -1.0f && x[255] == 1.0f);
    vq_pixels_to_rgb(back, x, 256);
    assert_memory_equal(v, back, 256);
    float odd[5] = {-3.0f, 3.0f, NAN, 0.0f, -0.999f};
    uint8_t o[5];
    vq_pixels_to_rgb(o, odd, 5);
    assert_true(o[0] == 0 && o[1] == 255 && o[2] == 0 && o[3] == 128 && o[4] == 0);
    assert_true(isinf(vq_psnr(v, back, 256)));
    back[7] ^= 1; /* one value off by 1: mse 1/256 */
    assert_float_equal(vq_psnr(v, back, 256), 10.0 * log10(255.0 * 255.0 * 256.0), 1e-9);
    printf("ok   uint8 <-> [-1, 1] round trip exact; PSNR of one LSB error in 256 values %.2f dB\n",
           vq_psnr(v, back, 256));
}

int main(void) {
    loom_threads_set(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_json),
        cmocka_unit_test(test_tensors),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_backward_accumulates_and_threads),
        cmocka_unit_test(test_codebook),
        cmocka_unit_test(test_training_reduces_loss),
        cmocka_unit_test(test_pixels_and_psnr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
