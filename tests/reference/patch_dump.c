/* patch_dump: writes a small random patch projector (P = 4, C = 16), raw images, and loom's
 * patches, projector outputs and parameter gradients for patch_parity.py to recompute
 * independently (patchify with numpy/torch reshape + permute, the linear layer in float64).
 *
 *   patch_dump --out DIR        writes DIR/patch.safetensors:
 *
 *   patch.w            F32 (C, D)           D = P*P*3; the projector (random, b non-zero)
 *   patch.b            F32 (C)
 *   case<i>.image      U8  (H, W, 3)        raw RGB pixels, i = 0 .. n_cases-1
 *   case<i>.grid       I32 (2)              loom's (rows, cols) = (ceil(H/P), ceil(W/P))
 *   case<i>.patches    F32 (rows*cols, D)   loom's patch_image (no resize: the budget fits)
 *   case<i>.dout       F32 (rows*cols, C)   a random upstream gradient
 *   case<i>.out        F32 (rows*cols, C)   patch_forward (computed into a strided buffer)
 *   case<i>.grad.w     F32 (C, D)           patch_backward from zero gradients
 *   case<i>.grad.b     F32 (C)
 *   __metadata__       patch, d_model, n_cases (decimal strings)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/safetensors.h"
#include "core/threads.h"
#include "encoders/image.h"
#include "encoders/patch.h"

static void die(const char *what, const loom_error *err) {
    fprintf(stderr, "patch_dump: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

enum { P = 4, C = 16, D = P * P * 3, LDO = C + 3, N_CASES = 3 };

/* (W, H): ragged on both sides, an exact fit, and a single pixel (almost all padding). */
static const int32_t SIZES[N_CASES][2] = {{10, 13}, {8, 4}, {1, 1}};

int main(int argc, char **argv) {
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: patch_dump --out DIR\n");
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "usage: patch_dump --out DIR\n");
        return 2;
    }
    loom_threads_set(0);
    loom_error err = {{0}};

    /* The projector, registered and bound like the model does it. */
    patch_config pc = {.patch = P, .d_model = C};
    param_table table = {0};
    if (patch_register(&pc, &table, &err)) die("register", &err);
    float *params = floats_alloc(table.total), *grads = floats_alloc(table.total);
    if (!params || !grads) die("alloc", NULL);
    patch_weights w, g;
    patch_bind(&pc, &table, params, &w);
    patch_bind(&pc, &table, grads, &g);
    loom_rng rng;
    rng_seed(&rng, 2024);
    patch_init_weights(&pc, &w, &rng);
    for (int j = 0; j < C; j++) w.b[j] = 0.5f * rng_normal(&rng); /* exercise the bias */

    st_writer *sw = st_writer_new();
    if (!sw) die("writer", NULL);
    int64_t w_shape[2] = {C, D}, b_shape[1] = {C};
    int rc = st_writer_add(sw, "patch.w", ST_F32, 2, w_shape, w.w, &err);
    rc |= st_writer_add(sw, "patch.b", ST_F32, 1, b_shape, w.b, &err);

    loom_image img[N_CASES];
    float *patches[N_CASES], *outs[N_CASES], *douts[N_CASES], *gw[N_CASES], *gb[N_CASES];
    int32_t grid[N_CASES][2];
    char name[128];
    for (int i = 0; i < N_CASES; i++) {
        int32_t W = SIZES[i][0], H = SIZES[i][1];
        if (image_alloc(&img[i], W, H, &err)) die("image", &err);
        for (int64_t k = 0; k < (int64_t)W * H * 3; k++) img[i].rgb[k] = (uint8_t)rng_below(&rng, 256);
        if (i == 0) { /* the extremes, which map to exactly -1 and +1 */
            img[i].rgb[0] = 0;
            img[i].rgb[1] = 255;
        }
        int32_t R, Cn;
        patch_plan plan;
        if (patch_image(&img[i], P, 8, 8, &patches[i], &R, &Cn, &plan, &err)) die("patch_image", &err);
        if (plan.resized) die("plan: unexpected resize", NULL);
        grid[i][0] = R;
        grid[i][1] = Cn;
        int64_t N = (int64_t)R * Cn;

        /* Forward into a strided buffer (as into the decoder's input rows), then compacted. */
        float *strided = malloc(sizeof(float) * (size_t)(N * LDO));
        float *dstrided = malloc(sizeof(float) * (size_t)(N * LDO));
        outs[i] = malloc(sizeof(float) * (size_t)(N * C));
        douts[i] = malloc(sizeof(float) * (size_t)(N * C));
        gw[i] = malloc(sizeof(float) * C * D);
        gb[i] = malloc(sizeof(float) * C);
        if (!strided || !dstrided || !outs[i] || !douts[i] || !gw[i] || !gb[i]) die("alloc", NULL);
        for (int64_t k = 0; k < N * LDO; k++) strided[k] = dstrided[k] = 1e30f; /* gaps */
        patch_forward(&pc, &w, patches[i], N, strided, LDO);
        for (int64_t n = 0; n < N; n++)
            for (int j = 0; j < C; j++) {
                outs[i][n * C + j] = strided[n * LDO + j];
                douts[i][n * C + j] = dstrided[n * LDO + j] = rng_normal(&rng);
            }
        memset(grads, 0, sizeof(float) * table.total);
        patch_backward(&pc, &w, &g, patches[i], N, dstrided, LDO);
        memcpy(gw[i], g.w, sizeof(float) * C * D);
        memcpy(gb[i], g.b, sizeof(float) * C);
        free(strided);
        free(dstrided);

        int64_t ishape[3] = {H, W, 3}, gshape[1] = {2}, pshape[2] = {N, D}, oshape[2] = {N, C};
        snprintf(name, sizeof name, "case%d.image", i);
        rc |= st_writer_add(sw, name, ST_U8, 3, ishape, img[i].rgb, &err);
        snprintf(name, sizeof name, "case%d.grid", i);
        rc |= st_writer_add(sw, name, ST_I32, 1, gshape, grid[i], &err);
        snprintf(name, sizeof name, "case%d.patches", i);
        rc |= st_writer_add(sw, name, ST_F32, 2, pshape, patches[i], &err);
        snprintf(name, sizeof name, "case%d.dout", i);
        rc |= st_writer_add(sw, name, ST_F32, 2, oshape, douts[i], &err);
        snprintf(name, sizeof name, "case%d.out", i);
        rc |= st_writer_add(sw, name, ST_F32, 2, oshape, outs[i], &err);
        snprintf(name, sizeof name, "case%d.grad.w", i);
        rc |= st_writer_add(sw, name, ST_F32, 2, w_shape, gw[i], &err);
        snprintf(name, sizeof name, "case%d.grad.b", i);
        rc |= st_writer_add(sw, name, ST_F32, 1, b_shape, gb[i], &err);
    }
    char num[32];
    snprintf(num, sizeof num, "%d", P);
    rc |= st_writer_meta(sw, "patch", num, &err);
    snprintf(num, sizeof num, "%d", C);
    rc |= st_writer_meta(sw, "d_model", num, &err);
    snprintf(num, sizeof num, "%d", N_CASES);
    rc |= st_writer_meta(sw, "n_cases", num, &err);
    if (rc) die("writer", &err);

    char path[4096];
    mkdir(out, 0755);
    snprintf(path, sizeof path, "%s/patch.safetensors", out);
    if (st_writer_save(sw, path, &err)) die("save", &err);
    printf("patch_dump: wrote %s (P=%d C=%d, %d cases)\n", path, P, C, N_CASES);

    st_writer_free(sw);
    for (int i = 0; i < N_CASES; i++) {
        image_free(&img[i]);
        free(patches[i]);
        free(outs[i]);
        free(douts[i]);
        free(gw[i]);
        free(gb[i]);
    }
    free(params);
    free(grads);
    params_free(&table);
    return 0;
}
