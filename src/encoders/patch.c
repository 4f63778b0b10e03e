/* patch.c: Fuyu-style patch preprocessing and the linear patch projector (see patch.h). */
#include "patch.h"

#include <stdlib.h>
#include <string.h>

#include <stb_image_resize.h>

#include "encoders/proj.h"

/* ------------------------------------------------------------------------ */
/* preprocessing */

int patch_plan_image(int64_t width, int64_t height, int32_t P, int32_t max_rows,
                     int32_t max_cols, patch_plan *plan, loom_error *err) {
    memset(plan, 0, sizeof *plan);
    if (P < 1 || P > PATCH_MAX_SIZE)
        return loom_error_set(err, "patch size %d out of range [1, %d]", P, PATCH_MAX_SIZE);
    if (max_rows < 1 || max_rows > PATCH_MAX_GRID || max_cols < 1 || max_cols > PATCH_MAX_GRID)
        return loom_error_set(err, "patch budget %dx%d (rows x cols) out of range [1, %d] each",
                              max_rows, max_cols, PATCH_MAX_GRID);
    if (width < 1 || height < 1 || width > IMAGE_MAX_SIDE || height > IMAGE_MAX_SIDE)
        return loom_error_set(err, "image size %lldx%lld out of range [1, %d]", (long long)width,
                              (long long)height, IMAGE_MAX_SIDE);
    /* All products below are < 2^13 * 2^16 * 2: no overflow in int64. */
    int64_t Wmax = (int64_t)max_cols * P, Hmax = (int64_t)max_rows * P;
    int64_t W = width, H = height;
    if (W > Wmax || H > Hmax) {
        if (W * Hmax >= H * Wmax) { /* W/H >= Wmax/Hmax: the width limits */
            H = (2 * H * Wmax + W) / (2 * W); /* round(H * Wmax / W) <= Hmax */
            W = Wmax;
        } else {
            W = (2 * W * Hmax + H) / (2 * H);
            H = Hmax;
        }
        if (W < 1) W = 1;
        if (H < 1) H = 1;
        plan->resized = 1;
    }
    plan->width = (int32_t)W;
    plan->height = (int32_t)H;
    plan->rows = (int32_t)((H + P - 1) / P);
    plan->cols = (int32_t)((W + P - 1) / P);
    return 0;
}

/* x / 127.5 - 1 in double, rounded once to float (the parity check relies on it). */
static float pixel_value(uint8_t v) {
    return (float)((double)v / 127.5 - 1.0);
}

void patch_extract(const uint8_t *rgb, int32_t width, int32_t height, int32_t P, float *out) {
    float lut[256];
    for (int i = 0; i < 256; i++) lut[i] = pixel_value((uint8_t)i);
    int64_t R = (height + P - 1) / P, Cn = (width + P - 1) / P, D = (int64_t)P * P * 3;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < Cn; c++) {
            float *p = out + (r * Cn + c) * D; /* (P, P, 3) */
            for (int64_t py = 0; py < P; py++) {
                int64_t y = r * P + py;
                for (int64_t px = 0; px < P; px++) {
                    int64_t x = c * P + px;
                    float *e = p + (py * P + px) * 3;
                    if (y < height && x < width) {
                        const uint8_t *s = rgb + (y * width + x) * 3;
                        e[0] = lut[s[0]];
                        e[1] = lut[s[1]];
                        e[2] = lut[s[2]];
                    } else { /* right/bottom padding: black */
                        e[0] = e[1] = e[2] = -1.0f;
                    }
                }
            }
        }
}

int patch_image(const loom_image *img, int32_t P, int32_t max_rows, int32_t max_cols,
                float **patches, int32_t *rows, int32_t *cols, patch_plan *plan_out,
                loom_error *err) {
    *patches = NULL;
    *rows = *cols = 0;
    if (image_check(img, err)) return -1;
    patch_plan plan;
    if (patch_plan_image(img->width, img->height, P, max_rows, max_cols, &plan, err)) return -1;
    if (plan_out) *plan_out = plan;

    const uint8_t *src = img->rgb;
    uint8_t *scaled = NULL;
    if (plan.resized) {
        size_t n = (size_t)plan.width * (size_t)plan.height * 3; /* < W*H*3: no overflow */
        scaled = malloc(n);
        if (!scaled) return loom_error_set(err, "out of memory resizing to %dx%d", plan.width,
                                           plan.height);
        if (!stbir_resize_uint8(img->rgb, img->width, img->height, img->width * 3, scaled,
                                plan.width, plan.height, plan.width * 3, 3)) {
            free(scaled);
            return loom_error_set(err, "resizing %dx%d to %dx%d failed (out of memory)",
                                  img->width, img->height, plan.width, plan.height);
        }
        src = scaled;
    }

    size_t n;
    if (loom_mul_size((size_t)plan.rows * (size_t)plan.cols, (size_t)P * P * 3, &n) ||
        loom_mul_size(n, sizeof(float), &n)) {
        free(scaled);
        return loom_error_set(err, "%dx%d patches of %d pixels: size overflows", plan.rows,
                              plan.cols, P);
    }
    float *out = malloc(n);
    if (!out) {
        free(scaled);
        return loom_error_set(err, "out of memory for %dx%d patches (%zu bytes)", plan.rows,
                              plan.cols, n);
    }
    patch_extract(src, plan.width, plan.height, P, out);
    free(scaled);
    *patches = out;
    *rows = plan.rows;
    *cols = plan.cols;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* the projector */

int patch_config_check(const patch_config *c, loom_error *err) {
    if (c->patch < 1 || c->patch > PATCH_MAX_SIZE)
        return loom_error_set(err, "patch size %d out of range [1, %d]", c->patch, PATCH_MAX_SIZE);
    if (c->d_model < 1 || c->d_model > PATCH_MAX_D_MODEL)
        return loom_error_set(err, "patch d_model %d out of range [1, %d]", c->d_model,
                              PATCH_MAX_D_MODEL);
    return 0;
}

int64_t patch_dim(const patch_config *c) {
    return (int64_t)c->patch * c->patch * 3;
}

int patch_register(const patch_config *c, param_table *t, loom_error *err) {
    if (patch_config_check(c, err)) return -1;
    int64_t w_shape[2] = {c->d_model, patch_dim(c)}, b_shape[1] = {c->d_model};
    if (params_add(t, "patch.w", 2, w_shape, 1, err)) return -1;
    if (params_add(t, "patch.b", 1, b_shape, 0, err)) return -1;
    return 0;
}

void patch_bind(const patch_config *c, const param_table *t, float *base, patch_weights *w) {
    const param_info *pw = params_find(t, "patch.w"), *pb = params_find(t, "patch.b");
    w->w = pw ? base + pw->offset : NULL;
    w->b = pb ? base + pb->offset : NULL;
}

void patch_init_weights(const patch_config *c, patch_weights *w, loom_rng *rng) {
    size_t C = (size_t)c->d_model, D = (size_t)patch_dim(c);
    for (size_t i = 0; i < C * D; i++) w->w[i] = 0.02f * rng_normal(rng);
    for (size_t i = 0; i < C; i++) w->b[i] = 0.0f;
}

/* out (N, C) = patches (N, D) W^T (gemm_nt), then + b on every row. */
void patch_forward(const patch_config *c, const patch_weights *w, const float *patches,
                   int64_t N, float *out, int64_t ldo) {
    proj_forward(w->w, w->b, patches, N, patch_dim(c), c->d_model, out, ldo);
}

void patch_backward(const patch_config *c, const patch_weights *w, patch_weights *g,
                    const float *patches, int64_t N, const float *dout, int64_t ldo) {
    (void)w;
    proj_backward(g->w, g->b, patches, N, patch_dim(c), c->d_model, dout, ldo);
}

void patch_forward_ref(const patch_config *c, const patch_weights *w, const float *patches,
                       int64_t N, float *out, int64_t ldo) {
    proj_forward_ref(w->w, w->b, patches, N, patch_dim(c), c->d_model, out, ldo);
}

void patch_backward_ref(const patch_config *c, const patch_weights *w, patch_weights *g,
                        const float *patches, int64_t N, const float *dout, int64_t ldo) {
    (void)w;
    proj_backward_ref(g->w, g->b, patches, N, patch_dim(c), c->d_model, dout, ldo);
}
