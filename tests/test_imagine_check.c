/* test_imagine_check.c: drawing with a self-check (model/imagine_check.h)
 * with the shipped model (models/loom-shapes.safetensors, or $LOOM_MODEL):
 * the kept image is the first draw whose read-back caption answers the
 * prompt, redrawn bit for bit from its seed; with no draw passing, the first
 * draw is kept; prompts outside the grammar are drawn once, unchecked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data/shapes.h"
#include "data/shapes_prompt.h"
#include "model/imagine_check.h"
#include "model/infer.h"
#include "model/model.h"
#include "test_util.h"

static void test_try_seeds(void **state) {
    (void)state;
    assert_true(imagine_try_seed(7, 0) == 7);
    /* later draws stay clear of the seeds a caller gives its later images */
    for (uint64_t s = 0; s < 100; s++)
        for (int32_t k = 1; k < 8; k++) {
            const uint64_t t = imagine_try_seed(s, k);
            if (t >= s && t < s + 1000) fail_msg("seed %llu, draw %d: %llu", (unsigned long long)s, k, (unsigned long long)t);
            for (int32_t k2 = 1; k2 < k; k2++) assert_true(imagine_try_seed(s, k2) != t);
        }
}

static void test_checked_draws(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = test_load_shipped_model();
    loom_infer *inf = infer_new(m, &err);
    assert_non_null(inf);
    const int32_t nc = m->gen.rows * m->gen.cols, W = model_gen_width(m), H = model_gen_height(m);
    int32_t *codes = malloc((size_t)nc * sizeof *codes), *again = malloc((size_t)nc * sizeof *again);
    uint8_t *rgb = malloc((size_t)W * H * 3);
    imagine_check_result *res = malloc(sizeof *res);
    assert_non_null(codes);
    assert_non_null(again);
    assert_non_null(rgb);
    assert_non_null(res);
    static const char *const prompts[] = {
        "a large red circle at the top left and a small blue square at the bottom right",
        "a green triangle and a white cross",
        "a small yellow diamond in the center",
        "a circle, a square and a triangle",
        "a large orange cross at the top, a small cyan circle at the left and a large magenta square at the bottom",
        "a blue diamond at the right",
    };
    const int n = (int)(sizeof prompts / sizeof prompts[0]);
    int n_passed = 0;
    for (int i = 0; i < n; i++) {
        const infer_input in = {.prompt = prompts[i], .prompt_len = strlen(prompts[i])};
        const infer_imagine_params p = {.sampling = {.temp = 1.0f, .top_p = 1.0f}, .cfg_scale = 1.0f,
                                        .seed = (uint64_t)(11 + i)};
        if (imagine_checked(inf, &in, &p, 6, codes, rgb, res, &err)) fail_msg("%s: %s", prompts[i], err.msg);
        assert_int_equal(res->checked, 1);
        assert_true(res->draws >= 1 && res->draws <= 6);
        shapes_prompt q;
        shapes_scene seen;
        assert_int_equal(shapes_prompt_parse(prompts[i], &q, &err), 0);
        const int reads = shapes_scene_from_caption(res->caption, &seen, &err) == 0 && shapes_prompt_matches(&q, &seen);
        /* the caption reported is the kept image's, and it passes exactly when it answers the prompt */
        assert_int_equal(reads, res->passed);
        if (!res->passed) assert_int_equal(res->draws, 6);
        /* the kept codes are the draw of the reported seed */
        infer_imagine_params pk = p;
        pk.seed = imagine_try_seed(p.seed, res->passed ? res->draws - 1 : 0);
        assert_int_equal(infer_imagine_input(inf, &in, &pk, again, &err), 0);
        assert_memory_equal(codes, again, (size_t)nc * sizeof *codes);
        printf("%-100.100s %d draw%s, %s: %s\n", prompts[i], res->draws, res->draws == 1 ? "" : "s",
               res->passed ? "passed" : "none passed", res->caption);
        n_passed += res->passed;
    }
    /* the shipped model draws and reads most of these (temperature 1, six tries) */
    assert_true(n_passed >= n / 2);

    /* outside the grammar: one draw, unchecked, as infer_imagine_input */
    const infer_input free_text = {.prompt = "a red thing", .prompt_len = 11};
    const infer_imagine_params p = {.sampling = {.temp = 1.0f, .top_p = 1.0f}, .cfg_scale = 1.0f, .seed = 3};
    assert_int_equal(imagine_checked(inf, &free_text, &p, 4, codes, rgb, res, &err), 0);
    assert_int_equal(res->draws, 1);
    assert_int_equal(res->checked, 0);
    assert_string_equal(res->caption, "");
    assert_int_equal(infer_imagine_input(inf, &free_text, &p, again, &err), 0);
    assert_memory_equal(codes, again, (size_t)nc * sizeof *codes);
    assert_int_equal(imagine_checked(inf, &free_text, &p, 0, codes, rgb, res, &err), -1);
    assert_non_null(strstr(err.msg, "tries"));
    free(codes), free(again), free(rgb), free(res);
    infer_free(inf);
    model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_try_seeds),
        cmocka_unit_test(test_checked_draws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
