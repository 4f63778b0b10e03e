/* test_imagine.c: a model with image output (a VQ head attached): the model
 * file round trip of the VQ tensors, constrained generation of exactly
 * rows x cols codes, seed reproducibility, guidance, and text answers that
 * never emit image codes. Random weights: the point is the machinery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fusion/tokenizer.h"
#include "model/infer.h"
#include "model/model.h"

static loom_model *tiny_gen_model(void) {
    loom_error err = {{0}};
    tokenizer *tok = tokenizer_from_merges(NULL, 0, &err);
    assert_non_null(tok);
    const int32_t tok_v = tokenizer_vocab_size(tok);
    vq_config vc = vq_default_config();
    vc.n_levels = 2, vc.channels[0] = 8, vc.channels[1] = 16, vc.code_dim = 8, vc.codes = 32;
    decoder_config dc = decoder_default_config();
    dc.d_model = 32, dc.n_layers = 2, dc.n_heads = 4, dc.n_kv_heads = 2, dc.d_ff = 48;
    dc.vocab_size = tok_v + vc.codes, dc.max_seq = 64;
    model_image_config img = {.patch_size = 4, .max_patch_rows = 4, .max_patch_cols = 4};
    loom_model *m = model_new_ex(&dc, &img, NULL, tok, &err);
    assert_non_null(m);
    /* codes must follow the tokenizer and fit the vocabulary */
    assert_int_equal(model_attach_vq(m, &vc, tok_v - 1, 4, 4, &err), -1);
    assert_int_equal(model_attach_vq(m, &vc, tok_v + 1, 4, 4, &err), -1);
    assert_int_equal(model_attach_vq(m, &vc, tok_v, 4, 4, &err), 0);
    model_init_random(m, 3);
    loom_rng rng;
    rng_seed(&rng, 5);
    vq_init_weights(&m->vqc, &m->vqw, &rng);
    /* sharper logits so that samples differ between seeds */
    for (int64_t i = 0; i < (int64_t)dc.vocab_size * dc.d_model; i++) m->w.tok_emb[i] *= 40.0f;
    return m;
}

static void test_round_trip_and_generation(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = tiny_gen_model();
    assert_int_equal(model_gen_height(m), 16);
    assert_int_equal(model_gen_width(m), 16);
    char path[] = "/tmp/loom_test_imagine_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(model_save(m, path, &err), 0);
    loom_model *m2 = model_load(path, &err);
    if (!m2) fail_msg("%s", err.msg);
    remove(path);
    assert_int_equal(m2->gen.n_codes, 32);
    assert_int_equal(m2->gen.code_base, m->gen.code_base);
    assert_int_equal(m2->vq_table.total, m->vq_table.total);
    assert_memory_equal(m2->vq_params, m->vq_params, m->vq_table.total * sizeof(float));
    assert_memory_equal(m2->vq_state_buf, m->vq_state_buf, m->vq_state.total * sizeof(float));

    loom_infer *inf = infer_new(m2, &err);
    assert_non_null(inf);
    int32_t a[16], b[16], c[16];
    infer_imagine_params p = {.sampling = {.temp = 1.0f, .top_k = 0, .top_p = 1.0f}, .cfg_scale = 1.0f, .seed = 7};
    assert_int_equal(infer_imagine(inf, "a red circle", 12, &p, a, &err), 0);
    assert_int_equal(infer_imagine(inf, "a red circle", 12, &p, b, &err), 0);
    assert_memory_equal(a, b, sizeof a); /* same seed, same codes */
    p.seed = 8;
    assert_int_equal(infer_imagine(inf, "a red circle", 12, &p, c, &err), 0);
    assert_memory_not_equal(a, c, sizeof a);
    for (int i = 0; i < 16; i++) assert_true(a[i] >= 0 && a[i] < 32 && c[i] >= 0 && c[i] < 32);
    /* guidance runs and stays inside the code range */
    p.cfg_scale = 3.0f;
    assert_int_equal(infer_imagine(inf, "a red circle", 12, &p, c, &err), 0);
    for (int i = 0; i < 16; i++) assert_true(c[i] >= 0 && c[i] < 32);
    /* the codes decode to an image of the generation size */
    uint8_t rgb[16 * 16 * 3];
    assert_int_equal(model_decode_codes(m2, a, rgb, &err), 0);
    int32_t bad[16] = {0};
    bad[3] = 32;
    assert_int_equal(model_decode_codes(m2, bad, rgb, &err), -1);
    /* a prompt too long for the context with 16 codes is refused */
    char long_prompt[200];
    memset(long_prompt, 'x', sizeof long_prompt - 1);
    long_prompt[sizeof long_prompt - 1] = '\0';
    assert_int_equal(infer_imagine(inf, long_prompt, strlen(long_prompt), &p, a, &err), -1);
    /* text answers still work on a model with codes in its vocabulary (the
     * answer is restricted to tokenizer ids; see infer.c) */
    char out[256];
    int64_t n = infer_answer(inf, NULL, "hello", 5, 20, out, sizeof out, &err);
    assert_true(n >= 0);
    infer_free(inf);
    model_free(m2);
    model_free(m);
}

static void test_no_image_output(void **state) {
    (void)state;
    loom_error err = {{0}};
    tokenizer *tok = tokenizer_from_merges(NULL, 0, &err);
    decoder_config dc = decoder_default_config();
    dc.d_model = 32, dc.n_layers = 1, dc.n_heads = 4, dc.n_kv_heads = 4, dc.d_ff = 48;
    dc.vocab_size = tokenizer_vocab_size(tok), dc.max_seq = 32;
    loom_model *m = model_new(&dc, tok, &err);
    assert_non_null(m);
    loom_infer *inf = infer_new(m, &err);
    int32_t codes[4];
    infer_imagine_params p = {.sampling = {.temp = 0.0f}, .cfg_scale = 1.0f};
    assert_int_equal(infer_imagine(inf, "x", 1, &p, codes, &err), -1);
    assert_non_null(strstr(err.msg, "no image output"));
    infer_free(inf);
    model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_generation),
        cmocka_unit_test(test_no_image_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
