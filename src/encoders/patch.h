/* patch.h: Fuyu-style image input. No vision tower: the image is cut into
 * P x P pixel patches and each raw patch is projected linearly into the
 * decoder's embedding space (d_model = C).
 *
 * Preprocessing (patch_image), in this order:
 *   1. Budget: at most max_rows x max_cols patches, i.e. a box of
 *      Hmax = max_rows * P by Wmax = max_cols * P pixels.
 *   2. An image that fits the box (W <= Wmax and H <= Hmax) is NOT resized.
 *      A larger one is downscaled (never upscaled) with stb_image_resize
 *      (stbir_resize_uint8: on the 8-bit code values, no gamma, like PIL and
 *      torchvision; Mitchell filter) keeping its aspect ratio: the limiting
 *      side becomes exactly Wmax (or Hmax) and the other side
 *      round(side * scale), at least 1 -- see patch_plan_image.
 *   3. Pixels to [-1, 1]: x / 127.5 - 1 (computed in double, stored as the
 *      nearest float), so 0 -> -1, 255 -> +1.
 *   4. Padding on the right and at the bottom to a multiple of P with -1, the
 *      value of black, the world's background.
 *   5. Patchify into (R, Cn, P*P*3) with R = ceil(H'/P) rows of Cn = ceil(W'/P)
 *      patches, stored row-major as (R*Cn, D), D = P*P*3.
 *
 * THE FLATTENING ORDER (the same as Fuyu's patchify_image, whose permute ends
 * in (..., ph, pw, c)): patch n = r * Cn + c covers pixel rows
 * [r*P, r*P+P) and columns [c*P, c*P+P); element k of the patch is
 *
 *     k = (py * P + px) * 3 + ch      py = pixel row in the patch (0..P-1)
 *                                     px = pixel column in the patch (0..P-1)
 *                                     ch = channel R=0, G=1, B=2
 *
 * i.e. row, then column, then channel, channel fastest; equivalently
 *     patches[((r*Cn + c) * P*P + py*P + px) * 3 + ch]
 *         = pixel(y = r*P + py, x = c*P + px, ch) / 127.5 - 1   (or -1 when padded)
 * which is numpy's img.reshape(R, P, Cn, P, 3).transpose(0, 2, 1, 3, 4).reshape(R*Cn, D).
 *
 * The projector (patch_forward): out (N, C) = patches (N, D) W^T + b, with
 * W = "patch.w" (C, D) and b = "patch.b" (C), registered in the model's one
 * parameter table like the decoder's tensors. Training:
 *
 *     patch_forward(&pc, &w, patches, N, x0_rows, ldo);   // into the decoder input
 *     ...decoder forward/backward gives d loss / d x0 ...
 *     patch_backward(&pc, &w, &g, patches, N, dx0_rows, ldo); // g->w, g->b +=
 */
#ifndef LOOM_ENCODERS_PATCH_H
#define LOOM_ENCODERS_PATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/params.h"
#include "core/rng.h"
#include "encoders/image.h"

#define PATCH_MAX_SIZE 64     /* P <= 64 */
#define PATCH_MAX_GRID 1024   /* max_rows, max_cols <= 1024 */
#define PATCH_MAX_D_MODEL 16384

/* ------------------------------------------------------------------------ */
/* preprocessing */

/* The resize decision for a W x H image under a budget of max_rows x max_cols patches. */
typedef struct patch_plan {
    int32_t width, height; /* W', H': the size after resizing (== W, H when it fits) */
    int32_t rows, cols;    /* R = ceil(H'/P) <= max_rows, Cn = ceil(W'/P) <= max_cols */
    int32_t resized;       /* 1 if the image is downscaled, 0 if used as is */
} patch_plan;

/* Fills *plan. W, H in [1, IMAGE_MAX_SIDE]; P in [1, PATCH_MAX_SIZE];
 * max_rows, max_cols in [1, PATCH_MAX_GRID]. No resize if W <= Wmax and
 * H <= Hmax (Wmax = max_cols*P, Hmax = max_rows*P). Otherwise, if
 * W * Hmax >= H * Wmax the width limits: W' = Wmax, H' = max(1, round(H * Wmax / W));
 * else H' = Hmax, W' = max(1, round(W * Hmax / H)) (round half up, exact
 * integer arithmetic, so W' <= Wmax and H' <= Hmax always). */
int patch_plan_image(int64_t width, int64_t height, int32_t P, int32_t max_rows,
                     int32_t max_cols, patch_plan *plan, loom_error *err);

/* Normalizes, pads and patchifies an RGB image (no resize):
 * rgb (H, W, 3) -> out (R*Cn, P*P*3), R = ceil(H/P), Cn = ceil(W/P), in the
 * order documented above. Sizes must already be valid (patch_plan_image). */
void patch_extract(const uint8_t *rgb, int32_t width, int32_t height, int32_t P, float *out);

/* The whole preprocessing: *patches = malloc'd (R*Cn, P*P*3) floats (free()
 * it), *rows = R, *cols = Cn. img must pass image_check. On failure returns
 * -1, *patches = NULL, *rows = *cols = 0. plan may be NULL. */
int patch_image(const loom_image *img, int32_t P, int32_t max_rows, int32_t max_cols,
                float **patches, int32_t *rows, int32_t *cols, patch_plan *plan,
                loom_error *err);

/* ------------------------------------------------------------------------ */
/* the projector */

typedef struct patch_config {
    int32_t patch;   /* P, in [1, PATCH_MAX_SIZE]; D = P*P*3 */
    int32_t d_model; /* C, in [1, PATCH_MAX_D_MODEL] */
} patch_config;

int patch_config_check(const patch_config *c, loom_error *err);
/* D = P*P*3, the length of one flattened patch. */
int64_t patch_dim(const patch_config *c);

/* Pointers into a flat buffer: the parameters, or their gradients. */
typedef struct patch_weights {
    float *w; /* (C, D) */
    float *b; /* (C) */
} patch_weights;

/* Adds "patch.w" (C, D; weight decay) and "patch.b" (C; no decay) to t. */
int  patch_register(const patch_config *c, param_table *t, loom_error *err);
/* Points w into base, a buffer laid out by t (NULL fields if not registered). */
void patch_bind(const patch_config *c, const param_table *t, float *base, patch_weights *w);
/* w ~ Normal(0, 0.02) (the decoder's std), b = 0. */
void patch_init_weights(const patch_config *c, patch_weights *w, loom_rng *rng);

/* out[n, :] = patches[n, :] W^T + b for n < N.
 * patches: (N, D) contiguous; out: (N, C) with row stride ldo >= C. */
void patch_forward(const patch_config *c, const patch_weights *w, const float *patches,
                   int64_t N, float *out, int64_t ldo);
/* Accumulates the parameter gradients for dout (N, C), row stride ldo:
 *   g->w (C, D) += dout^T patches,  g->b (C) += sum over n of dout[n, :].
 * (The patches are input pixels: no gradient is propagated to them.) */
void patch_backward(const patch_config *c, const patch_weights *w, patch_weights *g,
                    const float *patches, int64_t N, const float *dout, int64_t ldo);

/* Naive loops (double accumulation), the reference the tests compare against. */
void patch_forward_ref(const patch_config *c, const patch_weights *w, const float *patches,
                       int64_t N, float *out, int64_t ldo);
void patch_backward_ref(const patch_config *c, const patch_weights *w, patch_weights *g,
                        const float *patches, int64_t N, const float *dout, int64_t ldo);

#endif
