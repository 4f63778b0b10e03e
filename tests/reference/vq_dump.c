/* vq_dump: writes a small VQ autoencoder (src/heads/vq.h), a batch of pixels, and loom's
 * forward, backward, EMA update and encode/decode on it, for vq_parity.py to recompute with
 * PyTorch (vq_ref.py).
 *
 *   vq_dump --out DIR [--perturb NAME]
 *
 * The config (metadata "vq_config"): channels [8, 16] (stride 4), res_blocks 1, code_dim 8,
 * codes 16, beta 0.25, ema_decay 0.9; a batch of B = 2 images of 16 x 24 (H x W) -> 4 x 6
 * codes each. Weights: vq_init_weights, then every bias ~ N(0, 0.1) (so biases matter); the
 * codebook from vq_kmeans_init on the batch (so most codes are used), then the EMA state
 * perturbed (ema_count *= U(0.5, 1.5), ema_sum += N(0, 0.1)) so the update formula is
 * exercised beyond ema_sum / ema_count == codebook.
 *
 * DIR/vq.safetensors:
 *   <name>          F32   every trained tensor and vq.codebook, vq.ema_count, vq.ema_sum
 *                         (the state BEFORE the EMA update), loom layouts (vq.h)
 *   pixels          F32 (B, H, W, 3)  in [-1, 1]
 *   ze, zq          F32 (B, h, w, D)
 *   codes           I32 (B, h, w)     vq_forward's codes
 *   recon           F32 (B, H, W, 3)  the decoder output (not clamped)
 *   loss            F32 (3)           loss, mse, commit
 *   grad.<name>     F32               d loss / d every trained tensor (vq_backward, scale 1)
 *   ema.<name>      F32               vq.codebook, vq.ema_count, vq.ema_sum after vq_ema_update
 *   encoded         I32 (B, h, w)     vq_encode
 *   decoded         F32 (B, H, W, 3)  vq_decode(codes): recon clamped to [-1, 1]
 *   __metadata__    vq_config (JSON), B, H, W (decimal strings)
 *
 * --perturb NAME adds 1e-3 * (1 + |v|) to element 0 of tensor NAME as written to the file,
 * AFTER loom computed everything: vq_parity.py must then fail (a check that it can).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/safetensors.h"
#include "core/threads.h"
#include "heads/vq.h"

static void die(const char *what, const loom_error *err) {
    fprintf(stderr, "vq_dump: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

enum { B = 2, H = 16, W = 24 };

static int add_table(st_writer *sw, const param_table *t, const float *base, const char *prefix,
                     loom_error *err) {
    char name[256];
    for (int32_t i = 0; i < t->n; i++) {
        const param_info *p = &t->info[i];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (st_writer_add(sw, name, ST_F32, p->ndim, p->shape, base + p->offset, err)) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *out = NULL, *perturb = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--perturb") && i + 1 < argc) perturb = argv[++i];
        else out = NULL, i = argc;
    }
    if (!out) {
        fprintf(stderr, "usage: vq_dump --out DIR [--perturb NAME]\n");
        return 2;
    }
    loom_threads_set(0);
    loom_error err = {{0}};

    vq_config c;
    if (vq_config_from_json("{\"stride\":4,\"channels\":[8,16],\"res_blocks\":1,\"code_dim\":8,"
                            "\"codes\":16,\"beta\":0.25,\"ema_decay\":0.9}", &c, &err))
        die("config", &err);
    const int32_t S = vq_stride(&c), h = H / S, w = W / S, D = c.code_dim, K = c.codes;
    const int64_t n_pix = (int64_t)B * H * W * 3, N = (int64_t)B * h * w;

    param_table pt = {0}, st = {0};
    if (vq_register(&c, &pt, &st, &err)) die("register", &err);
    float *params = floats_alloc(pt.total), *grads = floats_alloc(pt.total);
    float *state = floats_alloc(st.total), *state0 = floats_alloc(st.total);
    if (!params || !grads || !state || !state0) die("alloc", NULL);
    vq_weights vw, vg;
    vq_bind(&c, &pt, params, &st, state, &vw);
    vq_bind(&c, &pt, grads, NULL, NULL, &vg);
    loom_rng rng;
    rng_seed(&rng, 2025);
    vq_init_weights(&c, &vw, &rng);
    for (int32_t i = 0; i < pt.n; i++)
        if (strstr(pt.info[i].name, ".bias"))
            for (size_t j = 0; j < pt.info[i].numel; j++)
                params[pt.info[i].offset + j] = 0.1f * rng_normal(&rng);

    /* pixels: a smooth random field per channel plus noise, in [-1, 1] */
    float *pixels = malloc(sizeof(float) * (size_t)n_pix);
    if (!pixels) die("alloc", NULL);
    for (int32_t b = 0; b < B; b++)
        for (int32_t ch = 0; ch < 3; ch++) {
            float fx = 0.2f + 0.5f * rng_uniform(&rng), fy = 0.2f + 0.5f * rng_uniform(&rng);
            float ph = 6.2831853f * rng_uniform(&rng);
            for (int32_t y = 0; y < H; y++)
                for (int32_t x = 0; x < W; x++) {
                    float v = 0.7f * sinf(fx * (float)x + fy * (float)y + ph) +
                              0.3f * (2.0f * rng_uniform(&rng) - 1.0f);
                    pixels[(((int64_t)b * H + y) * W + x) * 3 + ch] = v;
                }
        }

    vq_acts *a = vq_acts_new(&c, B, H, W, &err);
    if (!a) die("acts", &err);
    if (vq_kmeans_init(&c, &vw, a, pixels, B, H, W, 5, &rng, &err)) die("kmeans", &err);
    for (int32_t k = 0; k < K; k++) {
        vw.ema_count[k] = vw.ema_count[k] * (0.5f + rng_uniform(&rng)) + 0.05f;
        for (int32_t d = 0; d < D; d++) vw.ema_sum[k * D + d] += 0.1f * rng_normal(&rng);
    }
    memcpy(state0, state, sizeof(float) * st.total); /* the state the forward uses */

    /* forward, backward, EMA update */
    float loss3[3], loss;
    int32_t *codes = malloc(sizeof(int32_t) * (size_t)N), *encoded = malloc(sizeof(int32_t) * (size_t)N);
    float *ze = malloc(sizeof(float) * (size_t)(N * D)), *zq = malloc(sizeof(float) * (size_t)(N * D));
    float *recon = malloc(sizeof(float) * (size_t)n_pix), *decoded = malloc(sizeof(float) * (size_t)n_pix);
    if (!codes || !encoded || !ze || !zq || !recon || !decoded) die("alloc", NULL);
    if (vq_forward(&c, &vw, a, pixels, B, H, W, codes, &loss, &err)) die("forward", &err);
    loss3[0] = loss, loss3[1] = (float)a->mse, loss3[2] = (float)a->commit;
    memcpy(ze, a->ze, sizeof(float) * (size_t)(N * D));
    memcpy(zq, a->zq, sizeof(float) * (size_t)(N * D));
    memcpy(recon, a->dec[0], sizeof(float) * (size_t)n_pix);
    vq_backward(&c, &vw, &vg, a, 1.0f);
    vq_ema_update(&c, &vw, a); /* state now holds the updated EMA; state0 the one before */

    /* inference paths on the initial state */
    vq_weights vw0;
    vq_bind(&c, &pt, params, &st, state0, &vw0);
    if (vq_encode(&c, &vw0, a, pixels, B, H, W, encoded, &err)) die("encode", &err);
    if (vq_decode(&c, &vw0, a, codes, B, h, w, decoded, &err)) die("decode", &err);

    int used = 0;
    for (int32_t k = 0; k < K; k++) {
        int hit = 0;
        for (int64_t i = 0; i < N; i++) hit |= codes[i] == k;
        used += hit;
    }
    printf("vq_dump: loss %.6f (mse %.6f, commit %.6f), %d of %d codes used by %lld positions\n",
           loss3[0], loss3[1], loss3[2], used, K, (long long)N);

    if (perturb) {
        const param_info *p = params_find(&pt, perturb);
        float *base = params;
        if (!p) p = params_find(&st, perturb), base = state0;
        if (!p) die("--perturb: no such tensor", NULL);
        float *v = base + p->offset;
        *v += 1e-3f * (1.0f + fabsf(*v));
        printf("vq_dump: perturbed %s[0] in the file (parity must now fail)\n", perturb);
    }

    st_writer *sw = st_writer_new();
    if (!sw) die("writer", NULL);
    int64_t px_shape[4] = {B, H, W, 3}, z_shape[4] = {B, h, w, D}, c_shape[3] = {B, h, w};
    int64_t l_shape[1] = {3};
    int rc = add_table(sw, &pt, params, "", &err);
    rc |= add_table(sw, &st, state0, "", &err);
    rc |= add_table(sw, &pt, grads, "grad.", &err);
    rc |= add_table(sw, &st, state, "ema.", &err);
    rc |= st_writer_add(sw, "pixels", ST_F32, 4, px_shape, pixels, &err);
    rc |= st_writer_add(sw, "ze", ST_F32, 4, z_shape, ze, &err);
    rc |= st_writer_add(sw, "zq", ST_F32, 4, z_shape, zq, &err);
    rc |= st_writer_add(sw, "codes", ST_I32, 3, c_shape, codes, &err);
    rc |= st_writer_add(sw, "encoded", ST_I32, 3, c_shape, encoded, &err);
    rc |= st_writer_add(sw, "recon", ST_F32, 4, px_shape, recon, &err);
    rc |= st_writer_add(sw, "decoded", ST_F32, 4, px_shape, decoded, &err);
    rc |= st_writer_add(sw, "loss", ST_F32, 1, l_shape, loss3, &err);
    char *cj = vq_config_to_json(&c), num[32];
    if (!cj) die("config json", NULL);
    rc |= st_writer_meta(sw, "vq_config", cj, &err);
    snprintf(num, sizeof num, "%d", B);
    rc |= st_writer_meta(sw, "B", num, &err);
    snprintf(num, sizeof num, "%d", H);
    rc |= st_writer_meta(sw, "H", num, &err);
    snprintf(num, sizeof num, "%d", W);
    rc |= st_writer_meta(sw, "W", num, &err);
    if (rc) die("writer", &err);

    char path[4096];
    mkdir(out, 0755);
    snprintf(path, sizeof path, "%s/vq.safetensors", out);
    if (st_writer_save(sw, path, &err)) die("save", &err);
    printf("vq_dump: wrote %s (%s, B=%d, %dx%d)\n", path, cj, B, H, W);

    free(cj);
    st_writer_free(sw);
    vq_acts_free(a);
    free(codes), free(encoded), free(ze), free(zq), free(recon), free(decoded), free(pixels);
    free(params), free(grads), free(state), free(state0);
    params_free(&pt);
    params_free(&st);
    return 0;
}
