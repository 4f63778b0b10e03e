/* test_shipped_vq.c: the shipped model's image head round-trips fixed scenes.
 * Eight Shapes World test scenes (fixed seeds, 64 x 64) are encoded to codes
 * and decoded back with models/loom-shapes.safetensors; each reconstruction
 * must reach 30 dB PSNR (the image-out issue's bar) and the scene analyzer
 * must read the true scene back from it. Encoding the same image twice gives
 * the same codes. LOOM_MODEL overrides the model path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "data/shapes.h"
#include "data/shapes_analyze.h"
#include "heads/vq.h"
#include "model/model.h"
#include "test_util.h"

#ifndef LOOM_SOURCE_DIR
#define LOOM_SOURCE_DIR "."
#endif

enum { N_SCENES = 8, SIDE = 64 };

static void test_round_trip(void **state) {
    (void)state;
    loom_error err = {{0}};
    const char *path = test_shipped_model_path();
    loom_model *m = test_load_shipped_model();
    if (m->gen.n_codes == 0) fail_msg("%s has no image output", path);
    const int32_t S = vq_stride(&m->vqc);
    const int32_t n_codes = (SIDE / S) * (SIDE / S);

    uint8_t *rgb = malloc((size_t)N_SCENES * SIDE * SIDE * 3);
    uint8_t *back = malloc((size_t)SIDE * SIDE * 3);
    int32_t *codes = malloc((size_t)N_SCENES * n_codes * sizeof *codes);
    int32_t *again = malloc((size_t)N_SCENES * n_codes * sizeof *again);
    assert_non_null(rgb), assert_non_null(back), assert_non_null(codes), assert_non_null(again);
    shapes_scene sc[N_SCENES];
    loom_rng rng;
    shapes_split_rng(&rng, SHAPES_SPLIT_TEST, 4242);
    for (int i = 0; i < N_SCENES; i++) {
        shapes_scene_sample_split(&sc[i], SHAPES_SPLIT_TEST, &rng);
        assert_int_equal(shapes_scene_layout(&sc[i], SIDE, SIDE, &rng, &err), 0);
        assert_int_equal(shapes_render(&sc[i], rgb + (size_t)i * SIDE * SIDE * 3, &rng, &err), 0);
    }
    if (model_encode_images(m, rgb, N_SCENES, SIDE, SIDE, codes, &err)) fail_msg("%s", err.msg);
    if (model_encode_images(m, rgb, N_SCENES, SIDE, SIDE, again, &err)) fail_msg("%s", err.msg);
    assert_memory_equal(codes, again, (size_t)N_SCENES * n_codes * sizeof *codes);

    /* model_decode_codes draws the generation size; the round trip needs it to be 64 x 64 */
    assert_int_equal(model_gen_height(m), SIDE);
    assert_int_equal(model_gen_width(m), SIDE);
    double worst = 1e9;
    for (int i = 0; i < N_SCENES; i++) {
        for (int j = 0; j < n_codes; j++) assert_true(codes[i * n_codes + j] >= 0 && codes[i * n_codes + j] < m->gen.n_codes);
        if (model_decode_codes(m, codes + (size_t)i * n_codes, back, &err)) fail_msg("%s", err.msg);
        double psnr = vq_psnr(rgb + (size_t)i * SIDE * SIDE * 3, back, (int64_t)SIDE * SIDE * 3);
        int ok = shapes_analyze_reads_back(back, SIDE, SIDE, &sc[i], &err);
        printf("scene %d: %d objects, PSNR %.2f dB, analyzer %s\n", i, sc[i].n, psnr,
               ok == 1 ? "reads it back" : "differs");
        if (psnr < worst) worst = psnr;
        assert_int_equal(ok, 1);
    }
    printf("worst PSNR %.2f dB (bar 30 dB)\n", worst);
    assert_true(worst >= 30.0);
    free(rgb), free(back), free(codes), free(again);
    model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
