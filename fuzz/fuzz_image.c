/* fuzz_image.c: image decoding and Fuyu preprocessing on hostile bytes, as
 * `loom caption` / `loom ask` run them: image_load_memory (stb_image behind
 * the limits of image.h), then patch_image with the shipped model's budget
 * (8 x 8-pixel patches, at most 8 x 8 of them).
 *
 * Checked beyond "no sanitizer report": a refused image leaves *img zeroed;
 * a decoded one passes image_check and always preprocesses, into 1..8 rows
 * and columns of patches whose values lie in [-1, 1]. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_NAME "fuzz_image"
#include "fuzz_common.h"

#include "encoders/image.h"
#include "encoders/patch.h"

#define FUZZ_PATCH 8      /* models/loom-shapes.safetensors: patch_size */
#define FUZZ_MAX_ROWS 8   /* max_patch_rows */
#define FUZZ_MAX_COLS 8   /* max_patch_cols */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    loom_error err = {{0}};
    loom_image img;
    if (image_load_memory(data, size, "fuzz", &img, &err)) {
        if (img.rgb || img.width || img.height) fail("refused image not zeroed", err.msg);
        if (!err.msg[0]) fail("refused image without a message", NULL);
        return 0;
    }
    if (image_check(&img, &err)) fail("decoded image fails image_check", err.msg);
    float *patches = NULL;
    int32_t rows = 0, cols = 0;
    patch_plan plan;
    if (patch_image(&img, FUZZ_PATCH, FUZZ_MAX_ROWS, FUZZ_MAX_COLS, &patches, &rows, &cols, &plan,
                    &err))
        fail("patch_image refused a decoded image", err.msg);
    if (rows < 1 || rows > FUZZ_MAX_ROWS || cols < 1 || cols > FUZZ_MAX_COLS || plan.rows != rows ||
        plan.cols != cols)
        fail("patch grid out of budget", NULL);
    const size_t n = (size_t)rows * cols * FUZZ_PATCH * FUZZ_PATCH * 3;
    for (size_t i = 0; i < n; i++)
        if (!(patches[i] >= -1.0f && patches[i] <= 1.0f)) fail("patch value outside [-1, 1]", NULL);
    free(patches);
    image_free(&img);
    return 0;
}
