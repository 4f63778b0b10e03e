/* test_fusion.c: the sequence layout of DESIGN.md, position by position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fusion/sequence.h"
#include "fusion/tokenizer.h"

#define P TOKEN_PAD
#define X FUSION_PATCH

static void test_image_prompt_answer(void **state) {
    (void)state;
    loom_error err = {{0}};
    fusion_batch fb;
    assert_int_equal(fusion_batch_init(&fb, 2, 24, 3, 16, &err), 0);
    float patches[6 * 3];
    for (int i = 0; i < 18; i++) patches[i] = (float)i;
    const int32_t prompt[2] = {300, 301}, answer[2] = {400, 401};
    assert_int_equal(fusion_batch_set_row(&fb, 1, patches, 2, 3, prompt, 2, answer, 2, 1, 1, &err), 0);
    const int32_t want_tok[24] = {TOKEN_BOS, TOKEN_IMG, X, X, X, TOKEN_ROW, X, X, X, TOKEN_ROW,
                                  TOKEN_IMG_END, 300, 301, TOKEN_SEP, 400, 401, TOKEN_EOS,
                                  P, P, P, P, P, P, P};
    const int32_t want_tgt[24] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                  400, 401, TOKEN_EOS, -1, -1, -1, -1, -1, -1, -1, -1};
    for (int t = 0; t < 24; t++) {
        if (fb.tokens[24 + t] != want_tok[t] || fb.targets[24 + t] != want_tgt[t])
            fail_msg("position %d: token %d target %d, want %d %d", t, fb.tokens[24 + t],
                     fb.targets[24 + t], want_tok[t], want_tgt[t]);
        assert_int_equal(fb.tokens[t], TOKEN_PAD);  /* row 0 untouched */
        assert_int_equal(fb.targets[t], -1);
    }
    assert_int_equal(fb.len[1], 17);
    assert_int_equal(fusion_row_length(2, 3, 2, 2, 1), 17);
    /* patches in row-major patch order at the X positions */
    const int64_t want_pos[6] = {24 + 2, 24 + 3, 24 + 4, 24 + 6, 24 + 7, 24 + 8};
    assert_int_equal(fb.n_patches, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(fb.patch_pos[i], want_pos[i]);
        for (int d = 0; d < 3; d++) assert_true(fb.patches[i * 3 + d] == (float)(i * 3 + d));
    }
    fusion_batch_free(&fb);
}

static void test_caption_and_text_and_prefix(void **state) {
    (void)state;
    loom_error err = {{0}};
    fusion_batch fb;
    assert_int_equal(fusion_batch_init(&fb, 1, 12, 3, 4, &err), 0);
    float patch[3] = {1, 2, 3};
    const int32_t answer[3] = {500, 501, 502};
    /* caption: empty prompt, then <sep> */
    assert_int_equal(fusion_batch_set_row(&fb, 0, patch, 1, 1, NULL, 0, answer, 3, 1, 1, &err), 0);
    const int32_t cap_tok[10] = {TOKEN_BOS, TOKEN_IMG, X, TOKEN_ROW, TOKEN_IMG_END, TOKEN_SEP,
                                 500, 501, 502, TOKEN_EOS};
    const int32_t cap_tgt[10] = {-1, -1, -1, -1, -1, 500, 501, 502, TOKEN_EOS, -1};
    for (int t = 0; t < 10; t++) {
        assert_int_equal(fb.tokens[t], cap_tok[t]);
        assert_int_equal(fb.targets[t], cap_tgt[t]);
    }
    /* plain text: loss on every next token */
    fusion_batch_clear(&fb);
    assert_int_equal(fusion_batch_set_row(&fb, 0, NULL, 0, 0, NULL, 0, answer, 3, 0, 1, &err), 0);
    const int32_t txt_tok[5] = {TOKEN_BOS, 500, 501, 502, TOKEN_EOS};
    const int32_t txt_tgt[5] = {500, 501, 502, TOKEN_EOS, -1};
    for (int t = 0; t < 5; t++) {
        assert_int_equal(fb.tokens[t], txt_tok[t]);
        assert_int_equal(fb.targets[t], txt_tgt[t]);
    }
    /* inference prefix: ends at <sep>, no targets */
    fusion_batch_clear(&fb);
    const int32_t q[2] = {600, 601};
    assert_int_equal(fusion_batch_set_row(&fb, 0, patch, 1, 1, q, 2, NULL, 0, 1, 0, &err), 0);
    assert_int_equal(fb.len[0], 8);
    assert_int_equal(fb.tokens[7], TOKEN_SEP);
    for (int t = 0; t < 12; t++) assert_int_equal(fb.targets[t], -1);
    /* too long for the context: refused, row unchanged */
    int32_t long_answer[20] = {0};
    assert_int_equal(fusion_batch_set_row(&fb, 0, NULL, 0, 0, NULL, 0, long_answer, 20, 0, 1, &err), -1);
    assert_non_null(strstr(err.msg, "exceeds the context"));
    assert_int_equal(fb.tokens[7], TOKEN_SEP);
    /* patch capacity */
    float many[5 * 3] = {0};
    fusion_batch_clear(&fb);
    assert_int_equal(fusion_batch_set_row(&fb, 0, many, 1, 5, NULL, 0, answer, 1, 1, 1, &err), -1);
    fusion_batch_free(&fb);
}

static void test_more_turns(void **state) {
    (void)state;
    loom_error err = {{0}};
    fusion_batch fb;
    assert_int_equal(fusion_batch_init(&fb, 1, 16, 3, 4, &err), 0);
    float patch[3] = {1, 2, 3};
    const int32_t q1[1] = {300}, a1[1] = {400}, q2[2] = {301, 302}, a2[1] = {401};
    /* a turn needs a row that ends one */
    assert_int_equal(fusion_batch_add_turn(&fb, 0, q2, 2, a2, 1, &err), -1);
    assert_int_equal(fusion_batch_set_row(&fb, 0, patch, 1, 1, q1, 1, a1, 1, 1, 1, &err), 0);
    assert_int_equal(fusion_batch_add_turn(&fb, 0, q2, 2, a2, 1, &err), 0);
    const int32_t want_tok[16] = {TOKEN_BOS, TOKEN_IMG, X, TOKEN_ROW, TOKEN_IMG_END, 300, TOKEN_SEP,
                                  400, TOKEN_EOS, 301, 302, TOKEN_SEP, 401, TOKEN_EOS, P, P};
    const int32_t want_tgt[16] = {-1, -1, -1, -1, -1, -1, 400, TOKEN_EOS, -1, -1, -1,
                                  401, TOKEN_EOS, -1, -1, -1};
    for (int t = 0; t < 16; t++) {
        if (fb.tokens[t] != want_tok[t] || fb.targets[t] != want_tgt[t])
            fail_msg("position %d: token %d target %d, want %d %d", t, fb.tokens[t], fb.targets[t],
                     want_tok[t], want_tgt[t]);
    }
    assert_int_equal(fb.len[0], 14);
    /* a turn that does not fit is refused and the row is unchanged */
    assert_int_equal(fusion_batch_add_turn(&fb, 0, q1, 1, a1, 1, &err), -1);
    assert_non_null(strstr(err.msg, "does not fit"));
    assert_int_equal(fb.len[0], 14);
    assert_int_equal(fb.tokens[14], TOKEN_PAD);
    fusion_batch_free(&fb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_prompt_answer),
        cmocka_unit_test(test_caption_and_text_and_prefix),
        cmocka_unit_test(test_more_turns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
