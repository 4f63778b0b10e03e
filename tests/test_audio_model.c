/* test_audio_model.c: audio input through the whole model. The fusion row
 * layout with an image and audio (<img> .. </img> <aud> a .. </aud> prompt
 * <sep> answer <eos>), the model's audio projector (embedding equals
 * audio_enc_forward; its backward matches finite differences), the model
 * file round trip of the audio config, inference with audio (and its
 * refusals), and the speech bank read from a manifest of real WAV files.
 * The conv encoder (audio_enc.h, "conv"): its fast forward and backward
 * against the double-precision loops on a batch of utterances (which must not
 * mix), the model's gradient through it against finite differences, the file
 * round trip of its config, inference with it, and configs that must be
 * refused. Random weights: the point is the machinery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>
#include <sndfile.h>

#include "core/safetensors.h"
#include "encoders/audio_enc.h"
#include "encoders/mel.h"
#include "fusion/tokenizer.h"
#include "model/infer.h"
#include "model/model.h"
#include "train/speech_bank.h"

static void test_fusion_row(void **state) {
    (void)state;
    loom_error err = {{0}};
    fusion_batch fb;
    const int32_t pd = 4 * 4 * 3, ad = 5;
    assert_int_equal(fusion_batch_init(&fb, 2, 40, pd, 8, &err), 0);
    assert_int_equal(fusion_batch_reserve_audio(&fb, ad, 6, &err), 0);
    float patches[4 * 48], audio[3 * 5];
    for (int i = 0; i < 4 * 48; i++) patches[i] = (float)i;
    for (int i = 0; i < 15; i++) audio[i] = 100.0f + (float)i;
    const int32_t prompt[2] = {300, 301}, answer[2] = {400, 401};
    fusion_row r = {.patches = patches, .rows = 2, .cols = 2, .audio = audio, .n_audio = 3,
                    .prompt = prompt, .n_prompt = 2, .answer = answer, .n_answer = 2,
                    .with_sep = 1, .close = 1};
    /* <bos> <img> p p <row> p p <row> </img> <aud> a a a </aud> x x <sep> y y <eos> */
    assert_int_equal(fusion_row_positions(&r), 1 + 2 + 2 * 3 + 2 + 3 + 2 + 1 + 2 + 1);
    assert_int_equal(fusion_batch_put_row(&fb, 1, &r, &err), 0);
    const int32_t *t = fb.tokens + 40;
    const int32_t want[] = {TOKEN_BOS, TOKEN_IMG, FUSION_PATCH, FUSION_PATCH, TOKEN_ROW, FUSION_PATCH,
                            FUSION_PATCH, TOKEN_ROW, TOKEN_IMG_END, TOKEN_AUD, FUSION_AUDIO,
                            FUSION_AUDIO, FUSION_AUDIO, TOKEN_AUD_END, 300, 301, TOKEN_SEP, 400, 401,
                            TOKEN_EOS};
    assert_int_equal(fb.len[1], 20);
    assert_memory_equal(t, want, sizeof want);
    assert_int_equal(t[20], TOKEN_PAD);
    /* the loss covers the answer and <eos> only */
    for (int i = 0; i < 40; i++) {
        int32_t g = fb.targets[40 + i];
        if (i >= 16 && i <= 18) assert_int_equal(g, want[i + 1]);
        else assert_int_equal(g, -1);
    }
    assert_int_equal(fb.n_audio, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(fb.audio_pos[i], 40 + 10 + i);
    assert_memory_equal(fb.audio, audio, sizeof audio);
    /* audio capacity (6) and the context are enforced; the row is left alone */
    r.n_audio = 4;
    r.rows = r.cols = 0;
    assert_int_equal(fusion_batch_put_row(&fb, 0, &r, &err), -1);
    assert_non_null(strstr(err.msg, "audio capacity"));
    assert_int_equal(fb.len[0], 0);
    r.n_audio = 3;
    r.n_prompt = 2;
    fusion_row big = r;
    float many[40 * 5] = {0};
    big.audio = many, big.n_audio = 36;
    assert_int_equal(fusion_batch_put_row(&fb, 0, &big, &err), -1);
    assert_non_null(strstr(err.msg, "context"));
    /* an inference prefix ends at <sep> */
    fusion_batch_clear(&fb);
    fusion_row q = {.audio = audio, .n_audio = 3, .with_sep = 1, .close = 0};
    assert_int_equal(fusion_batch_put_row(&fb, 0, &q, &err), 0);
    assert_int_equal(fb.len[0], 1 + 5 + 1);
    assert_int_equal(fb.tokens[6], TOKEN_SEP);
    fusion_batch_free(&fb);
}

static loom_model *tiny_audio_model_ex(int32_t stack, int32_t encoder, int32_t channels) {
    loom_error err = {{0}};
    tokenizer *tok = tokenizer_from_merges(NULL, 0, &err);
    assert_non_null(tok);
    decoder_config dc = decoder_default_config();
    dc.d_model = 16, dc.n_layers = 1, dc.n_heads = 2, dc.n_kv_heads = 1, dc.d_ff = 24;
    dc.vocab_size = tokenizer_vocab_size(tok), dc.max_seq = 48;
    model_image_config img = {.patch_size = 4, .max_patch_rows = 2, .max_patch_cols = 2};
    model_audio_config aud = {.stack = stack, .encoder = encoder, .channels = channels};
    loom_model *m = model_new_ex(&dc, &img, &aud, tok, &err);
    if (!m) fail_msg("%s", err.msg);
    model_init_random(m, 11);
    return m;
}

static loom_model *tiny_audio_model(int32_t stack) {
    return tiny_audio_model_ex(stack, AUDIO_ENC_STACK, 0);
}

static void test_embed_and_gradient(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = tiny_audio_model(2);
    assert_non_null(params_find(&m->table, "audio.w"));
    assert_non_null(params_find(&m->table, "audio.b"));
    const int32_t ad = (int32_t)audio_enc_dim(&m->acfg), C = m->cfg.d_model, T = 12;
    fusion_batch fb;
    assert_int_equal(fusion_batch_init(&fb, 1, T, 48, 4, &err), 0);
    assert_int_equal(fusion_batch_reserve_audio(&fb, ad, T, &err), 0);
    float *audio = malloc((size_t)3 * ad * sizeof *audio);
    for (int i = 0; i < 3 * ad; i++) audio[i] = sinf(0.37f * (float)i);
    const int32_t answer[2] = {300, 301};
    fusion_row r = {.audio = audio, .n_audio = 3, .answer = answer, .n_answer = 2, .with_sep = 1, .close = 1};
    assert_int_equal(fusion_batch_put_row(&fb, 0, &r, &err), 0);
    float *x0 = calloc((size_t)T * C, sizeof *x0), *scratch = calloc((size_t)T * C, sizeof *scratch);
    float *ref = calloc((size_t)3 * C, sizeof *ref);
    model_embed(m, &fb, x0, scratch);
    audio_enc_forward(&m->acfg, &m->aw, audio, 3, ref, C);
    for (int p = 0; p < 3; p++) assert_memory_equal(x0 + (size_t)(2 + p) * C, ref + (size_t)p * C, (size_t)C * sizeof(float));
    /* d/dW of L = sum(x0 * R) by finite differences on a few weights */
    float *R = malloc((size_t)T * C * sizeof *R), *grads = calloc(m->table.total, sizeof *grads);
    for (int i = 0; i < T * C; i++) R[i] = cosf(0.11f * (float)i);
    model_grads g;
    model_bind_grads(m, grads, &g);
    model_embed_backward(m, &g, &fb, R, scratch);
    const int64_t probe[4] = {0, 7, (int64_t)C * ad / 2 + 3, (int64_t)C * ad - 1};
    double worst = 0;
    for (int k = 0; k < 4; k++) {
        float *w = &m->aw.w[probe[k]];
        const float keep = *w, h = 1e-2f;
        double lp = 0, lm = 0;
        *w = keep + h;
        model_embed(m, &fb, x0, scratch);
        for (int i = 0; i < T * C; i++) lp += (double)x0[i] * R[i];
        *w = keep - h;
        model_embed(m, &fb, x0, scratch);
        for (int i = 0; i < T * C; i++) lm += (double)x0[i] * R[i];
        *w = keep;
        double fd = (lp - lm) / (2.0 * h), an = g.audio.w[probe[k]];
        double d = fabs(fd - an) / (1.0 + fabs(fd));
        if (d > worst) worst = d;
    }
    printf("audio projector: max relative gradient difference %.2e (tolerance 1e-3)\n", worst);
    assert_true(worst < 1e-3);
    /* the bias gradient is the column sum of R over the audio positions */
    for (int j = 0; j < C; j++) {
        double s = 0;
        for (int p = 0; p < 3; p++) s += R[(size_t)(2 + p) * C + j];
        assert_true(fabs(s - g.audio.b[j]) < 1e-4);
    }
    free(R), free(grads), free(x0), free(scratch), free(ref), free(audio);
    fusion_batch_free(&fb);
    model_free(m);
}

static void test_file_and_inference(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = tiny_audio_model(4);
    char path[] = "/tmp/loom_test_audio_model_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(model_save(m, path, &err), 0);
    loom_model *m2 = model_load(path, &err);
    if (!m2) fail_msg("%s", err.msg);
    remove(path);
    assert_int_equal(m2->aud.stack, 4);
    assert_memory_equal(m2->params, m->params, m->table.total * sizeof(float));

    loom_infer *inf = infer_new(m2, &err);
    assert_non_null(inf);
    loom_audio a = {.n = 16000 / 4};
    a.samples = malloc((size_t)a.n * sizeof *a.samples);
    for (int64_t i = 0; i < a.n; i++) a.samples[i] = 0.3f * sinf(0.05f * (float)i);
    char out[256];
    infer_input in = {.audio = &a};
    assert_true(infer_answer_input(inf, &in, 5, out, sizeof out, &err) >= 0);
    /* the same input, the same answer */
    char out2[256];
    assert_true(infer_answer_input(inf, &in, 5, out2, sizeof out2, &err) >= 0);
    assert_string_equal(out, out2);
    /* audio longer than the context is refused with a reason */
    loom_audio big = {.n = 16000 * 3};
    big.samples = calloc((size_t)big.n, sizeof *big.samples);
    in.audio = &big;
    assert_int_equal(infer_answer_input(inf, &in, 5, out, sizeof out, &err), -1);
    assert_non_null(strstr(err.msg, "context"));
    /* imagine refuses without image output */
    in.audio = &a;
    infer_imagine_params ip = {.sampling = {.temp = 1.0f}, .cfg_scale = 1.0f};
    int32_t codes[4];
    assert_int_equal(infer_imagine_input(inf, &in, &ip, codes, &err), -1);
    infer_free(inf);
    model_free(m2);
    model_free(m);

    /* a model without audio input refuses audio */
    loom_model *plain = tiny_audio_model(0);
    assert_null(params_find(&plain->table, "audio.w"));
    inf = infer_new(plain, &err);
    assert_non_null(inf);
    assert_int_equal(infer_answer_input(inf, &in, 5, out, sizeof out, &err), -1);
    assert_non_null(strstr(err.msg, "no audio input"));
    infer_free(inf);
    model_free(plain);
    audio_free(&a);
    audio_free(&big);
}

/* ---- the conv encoder ------------------------------------------------------ */

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

static double max_abs(const float *a, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i]));
    return d;
}

/* Fast forward and backward against the double-precision loops, at stacks 2, 4, 8 (1, 2, 3
 * layers), on three utterances of 1, 3 and 2 positions in one batch, written into strided
 * rows. Tolerance: 2e-5 of each tensor's largest value (float32 sums of at most 3*Ch + 1 and
 * N*stack/2 terms through up to 4 layers; a dropped or misplaced tap is some 1e-2). */
static void test_conv_encoder_vs_reference(void **state) {
    (void)state;
    loom_error err = {{0}};
    const int32_t stacks[3] = {2, 4, 8};
    const double tol = 2e-5;
    for (int si = 0; si < 3; si++) {
        audio_enc_config c = {.stack = stacks[si], .d_model = 16, .kind = AUDIO_ENC_CONV, .channels = 12};
        assert_int_equal(audio_enc_config_check(&c, &err), 0);
        assert_int_equal(audio_enc_conv_layers(&c), si + 1);
        param_table t;
        memset(&t, 0, sizeof t);
        assert_int_equal(audio_enc_register(&c, &t, &err), 0);
        float *par = floats_alloc(t.total), *gbuf = floats_alloc(t.total), *rbuf = floats_alloc(t.total);
        assert_true(par && gbuf && rbuf);
        audio_enc_weights w, g, gr;
        audio_enc_bind(&c, &t, par, &w);
        audio_enc_bind(&c, &t, gbuf, &g);
        audio_enc_bind(&c, &t, rbuf, &gr);
        assert_null(w.w);
        assert_non_null(w.conv_w[si]);
        assert_non_null(w.proj_w);
        loom_rng rng;
        rng_seed(&rng, 5 + (uint64_t)si);
        audio_enc_init_weights(&c, &w, &rng);
        for (int32_t l = 0; l <= si; l++)
            for (int32_t k = 0; k < c.channels; k++) w.conv_b[l][k] = 0.3f * rng_normal(&rng);
        for (int32_t k = 0; k < c.d_model; k++) w.proj_b[k] = 0.3f * rng_normal(&rng);

        /* utterances [0, 1), [1, 4), [4, 6): positions of three batch rows */
        enum { N = 6, LDO = 19 };
        const int64_t pos[N] = {3, 10, 11, 12, 40, 41}, starts[4] = {0, 1, 4, 6};
        const int64_t D = audio_enc_dim(&c), C = c.d_model;
        float *frames = malloc(sizeof(float) * (size_t)(N * D));
        float *out = malloc(sizeof(float) * N * LDO), *ref = malloc(sizeof(float) * N * LDO);
        float *alone = malloc(sizeof(float) * N * LDO), *dout = malloc(sizeof(float) * N * LDO);
        const size_t ns = audio_enc_scratch_floats(&c, N);
        assert_int_equal(ns, (size_t)2 * c.channels * N * (c.stack - 1));
        float *scratch = floats_alloc(ns);
        assert_true(frames && out && ref && alone && dout && scratch);
        for (int64_t i = 0; i < N * D; i++) frames[i] = -1.0f + 2.5f * (float)rng_uniform(&rng);
        for (int64_t i = 0; i < N * LDO; i++) {
            out[i] = ref[i] = alone[i] = 1e30f;
            dout[i] = rng_normal(&rng);
        }
        audio_enc_encode(&c, &w, frames, pos, N, out, LDO, scratch);
        assert_int_equal(audio_enc_encode_ref(&c, &w, frames, pos, N, ref, LDO), 0);
        double fwd = 0, scale = 0;
        for (int64_t n = 0; n < N; n++) {
            fwd = fmax(fwd, max_abs_diff(out + n * LDO, ref + n * LDO, C));
            scale = fmax(scale, max_abs(ref + n * LDO, C));
            for (int64_t j = C; j < LDO; j++) assert_true(out[n * LDO + j] == 1e30f); /* stride kept */
        }
        /* an utterance encoded alone gives the same rows: utterances do not mix */
        double mix = 0;
        for (int u = 0; u < 3; u++) {
            const int64_t s0 = starts[u], n = starts[u + 1] - starts[u];
            audio_enc_encode(&c, &w, frames + s0 * D, NULL, n, alone + s0 * LDO, LDO, scratch);
        }
        for (int64_t n = 0; n < N; n++) mix = fmax(mix, max_abs_diff(out + n * LDO, alone + n * LDO, C));
        /* while the batch taken as one utterance differs: the boundaries matter */
        audio_enc_encode(&c, &w, frames, NULL, N, alone, LDO, scratch);
        double joined = 0;
        for (int64_t n = 0; n < N; n++)
            joined = fmax(joined, max_abs_diff(out + n * LDO, alone + n * LDO, C));

        /* backward: every tensor, from zero, fast against reference */
        memset(gbuf, 0, sizeof(float) * t.total);
        memset(rbuf, 0, sizeof(float) * t.total);
        audio_enc_encode_backward(&c, &w, &g, frames, pos, N, dout, LDO, scratch);
        assert_int_equal(audio_enc_encode_backward_ref(&c, &w, &gr, frames, pos, N, dout, LDO), 0);
        double bwd = 0;
        const char *worst = "";
        for (int32_t i = 0; i < t.n; i++) {
            const param_info *p = &t.info[i];
            const double sc = max_abs(rbuf + p->offset, (int64_t)p->numel);
            const double d = max_abs_diff(gbuf + p->offset, rbuf + p->offset, (int64_t)p->numel);
            assert_true(sc > 0);
            if (d / sc > bwd) bwd = d / sc, worst = p->name;
        }
        printf("conv encoder, stack %d (%d layers, Ch %d): forward max diff %.2e (%.2e of max %.3g), "
               "backward max diff %.2e of its tensor's max (%s); tolerance %.0e of max; "
               "utterance alone vs in the batch %.2e; batch as one utterance differs by %.3g\n",
               c.stack, si + 1, c.channels, fwd, fwd / scale, scale, bwd, worst, tol, mix, joined);
        assert_true(fwd <= tol * scale);
        assert_true(bwd <= tol);
        assert_true(mix <= 1e-6 * scale);
        assert_true(joined > 1e-2 * scale);
        free(frames), free(out), free(ref), free(alone), free(dout), free(scratch);
        free(par), free(gbuf), free(rbuf);
        params_free(&t);
    }
}

/* L = sum(x0 * R) over a batch of two rows with 3 and 2 audio positions: the model's gradient
 * of every conv-encoder tensor (first, middle and last element) against central differences. */
static void test_conv_embed_gradient(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = tiny_audio_model_ex(4, AUDIO_ENC_CONV, 6);
    assert_int_equal(m->acfg.kind, AUDIO_ENC_CONV);
    assert_null(params_find(&m->table, "audio.w"));
    /* larger projection and biases than init: gradients of order 1 and GELUs off their linear part */
    loom_rng rng;
    rng_seed(&rng, 77);
    for (int64_t i = 0; i < (int64_t)m->cfg.d_model * 6; i++) m->aw.proj_w[i] = 0.4f * rng_normal(&rng);
    for (int32_t l = 0; l < 2; l++)
        for (int32_t k = 0; k < 6; k++) m->aw.conv_b[l][k] = 0.5f * rng_normal(&rng);
    const int32_t ad = (int32_t)audio_enc_dim(&m->acfg), C = m->cfg.d_model, B = 2, T = 12;
    fusion_batch fb;
    assert_int_equal(fusion_batch_init(&fb, B, T, 48, 4, &err), 0);
    assert_int_equal(fusion_batch_reserve_audio(&fb, ad, (int64_t)B * T, &err), 0);
    float *audio = malloc((size_t)5 * ad * sizeof *audio);
    for (int i = 0; i < 5 * ad; i++) audio[i] = sinf(0.37f * (float)i) + 0.3f * cosf(0.05f * (float)i);
    const int32_t answer[2] = {300, 301};
    fusion_row r = {.audio = audio, .n_audio = 3, .answer = answer, .n_answer = 2, .with_sep = 1, .close = 1};
    assert_int_equal(fusion_batch_put_row(&fb, 0, &r, &err), 0);
    r.audio = audio + 3 * ad, r.n_audio = 2;
    assert_int_equal(fusion_batch_put_row(&fb, 1, &r, &err), 0);
    const size_t ns = model_embed_scratch_floats(m, 4, (int64_t)B * T);
    float *x0 = calloc((size_t)B * T * C, sizeof *x0), *scratch = floats_alloc(ns);
    float *ref = malloc((size_t)5 * C * sizeof *ref);
    float *enc_scratch = floats_alloc(audio_enc_scratch_floats(&m->acfg, 5));
    model_embed(m, &fb, x0, scratch);
    audio_enc_encode(&m->acfg, &m->aw, fb.audio, fb.audio_pos, 5, ref, C, enc_scratch);
    for (int p = 0; p < 5; p++)
        assert_memory_equal(x0 + (size_t)fb.audio_pos[p] * C, ref + (size_t)p * C, (size_t)C * sizeof(float));

    float *R = malloc((size_t)B * T * C * sizeof *R), *grads = calloc(m->table.total, sizeof *grads);
    for (int i = 0; i < B * T * C; i++) R[i] = cosf(0.11f * (float)i);
    model_grads g;
    model_bind_grads(m, grads, &g);
    for (size_t i = 0; i < ns; i++) scratch[i] = NAN; /* the backward must not read what the forward left */
    model_embed_backward(m, &g, &fb, R, scratch);
    double worst = 0;
    const char *worst_name = "";
    for (int32_t i = 0; i < m->table.n; i++) {
        const param_info *p = &m->table.info[i];
        if (strncmp(p->name, "audio.", 6) != 0) continue;
        const int64_t probe[3] = {0, (int64_t)p->numel / 2, (int64_t)p->numel - 1};
        for (int k = 0; k < 3; k++) {
            float *w = m->params + p->offset + probe[k];
            const float keep = *w, h = 1e-2f;
            double lp = 0, lm = 0;
            *w = keep + h;
            model_embed(m, &fb, x0, scratch);
            for (int j = 0; j < B * T * C; j++) lp += (double)x0[j] * R[j];
            *w = keep - h;
            model_embed(m, &fb, x0, scratch);
            for (int j = 0; j < B * T * C; j++) lm += (double)x0[j] * R[j];
            *w = keep;
            const double fd = (lp - lm) / (2.0 * h), an = grads[p->offset + probe[k]];
            const double d = fabs(fd - an) / (0.1 + fabs(fd));
            if (d > worst) worst = d, worst_name = p->name;
        }
    }
    printf("conv encoder in the model: max relative gradient difference %.2e (%s; |fd - an| / "
           "(0.1 + |fd|), tolerance 2e-3)\n", worst, worst_name);
    assert_true(worst < 2e-3);
    free(R), free(grads), free(x0), free(scratch), free(ref), free(enc_scratch), free(audio);
    fusion_batch_free(&fb);
    model_free(m);
}

/* The conv encoder's config through a model file, and inference with it. */
static void test_conv_file_and_inference(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = tiny_audio_model_ex(4, AUDIO_ENC_CONV, 6);
    char *json = model_config_to_json(m);
    assert_non_null(strstr(json, "\"audio_stack\":4"));
    assert_non_null(strstr(json, "\"audio_encoder\":\"conv\""));
    assert_non_null(strstr(json, "\"audio_conv_channels\":6"));
    free(json);
    loom_model *st = tiny_audio_model(4); /* the stack encoder writes no new keys */
    json = model_config_to_json(st);
    assert_null(strstr(json, "audio_encoder"));
    assert_null(strstr(json, "audio_conv"));
    free(json);
    model_free(st);
    const char *names[6] = {"audio.conv1.w", "audio.conv1.b", "audio.conv2.w", "audio.conv2.b",
                            "audio.proj.w", "audio.proj.b"};
    const int64_t numel[6] = {6 * 3 * 80, 6, 6 * 3 * 6, 6, 16 * 6, 16};
    for (int i = 0; i < 6; i++) {
        const param_info *p = params_find(&m->table, names[i]);
        assert_non_null(p);
        assert_int_equal(p->numel, numel[i]);
    }
    assert_null(params_find(&m->table, "audio.conv3.w"));

    char path[] = "/tmp/loom_test_audio_conv_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(model_save(m, path, &err), 0);
    loom_model *m2 = model_load(path, &err);
    if (!m2) fail_msg("%s", err.msg);
    remove(path);
    assert_int_equal(m2->aud.stack, 4);
    assert_int_equal(m2->aud.encoder, AUDIO_ENC_CONV);
    assert_int_equal(m2->aud.channels, 6);
    assert_int_equal(m2->acfg.kind, AUDIO_ENC_CONV);
    assert_int_equal(m2->table.total, m->table.total);
    assert_memory_equal(m2->params, m->params, m->table.total * sizeof(float));

    loom_infer *inf = infer_new(m2, &err);
    assert_non_null(inf);
    loom_audio a = {.n = 16000 / 4};
    a.samples = malloc((size_t)a.n * sizeof *a.samples);
    for (int64_t i = 0; i < a.n; i++) a.samples[i] = 0.3f * sinf(0.05f * (float)i);
    char out[256], out2[256];
    infer_input in = {.audio = &a};
    assert_true(infer_answer_input(inf, &in, 5, out, sizeof out, &err) >= 0);
    assert_true(infer_answer_input(inf, &in, 5, out2, sizeof out2, &err) >= 0);
    assert_string_equal(out, out2);
    infer_free(inf);
    audio_free(&a);
    model_free(m2);
    model_free(m);
}

/* Writes m's tensors with config json and loads that file; returns the loaded model or NULL. */
static loom_model *load_with_config(const loom_model *m, const char *json, loom_error *err) {
    char path[] = "/tmp/loom_test_audio_cfg_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    st_writer *w = st_writer_new();
    assert_non_null(w);
    assert_int_equal(st_writer_meta(w, "format", MODEL_FORMAT, err), 0);
    assert_int_equal(st_writer_meta(w, "config", json, err), 0);
    assert_int_equal(model_add_tensors(m, w, "", m->params, err), 0);
    assert_int_equal(st_writer_save(w, path, err), 0);
    st_writer_free(w);
    loom_model *r = model_load(path, err);
    remove(path);
    return r;
}

/* json with the first `from` replaced by `to` (malloc'd). */
static char *replaced(const char *json, const char *from, const char *to) {
    const char *at = strstr(json, from);
    assert_non_null(at);
    char *s = malloc(strlen(json) + strlen(to) + 1);
    size_t k = (size_t)(at - json);
    memcpy(s, json, k);
    strcpy(s + k, to);
    strcat(s, at + strlen(from));
    return s;
}

static void test_audio_config_refused(void **state) {
    (void)state;
    loom_error err = {{0}};
    loom_model *m = tiny_audio_model_ex(4, AUDIO_ENC_CONV, 6);
    char *json = model_config_to_json(m);
    loom_model *ok = load_with_config(m, json, &err); /* the untouched config loads */
    if (!ok) fail_msg("%s", err.msg);
    model_free(ok);
    const struct {
        const char *from, *to, *why;
    } bad[] = {
        {"\"audio_encoder\":\"conv\"", "\"audio_encoder\":\"wavelet\"", "audio_encoder"},
        {"\"audio_encoder\":\"conv\"", "\"audio_encoder\":3", "audio_encoder"},
        {"\"audio_stack\":4", "\"audio_stack\":6", "power of two"},
        {"\"audio_stack\":4", "\"audio_stack\":1", "power of two"},
        {"\"audio_conv_channels\":6", "\"audio_conv_channels\":0", "channels 0"},
        {"\"audio_conv_channels\":6", "\"audio_conv_channels\":7", "the config needs"},
        {"\"audio_conv_channels\":6", "\"audio_conv_channels\":5", "audio.conv1.w"},
        {"\"audio_conv_channels\":6", "\"audio_conv_channels\":1e9", "audio_conv_channels"},
        {"\"audio_encoder\":\"conv\",\"audio_conv_channels\":6", "\"audio_conv_channels\":6",
         "without \"audio_encoder\""},
        {"\"audio_stack\":4,", "", "without \"audio_stack\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *j = replaced(json, bad[i].from, bad[i].to);
        loom_model *r = load_with_config(m, j, &err);
        if (r || !strstr(err.msg, bad[i].why))
            fail_msg("config %s: loaded %d, error \"%s\" (want \"%s\")", j, r != NULL, err.msg, bad[i].why);
        free(j);
    }
    free(json);
    model_free(m);
    /* the stack encoder has no channels, and unknown kinds are refused up front */
    audio_enc_config c = {.stack = 8, .d_model = 16, .kind = AUDIO_ENC_STACK, .channels = 4};
    assert_int_equal(audio_enc_config_check(&c, &err), -1);
    c.kind = 7, c.channels = 0;
    assert_int_equal(audio_enc_config_check(&c, &err), -1);
    assert_int_equal(audio_enc_kind_from_name("conv"), AUDIO_ENC_CONV);
    assert_int_equal(audio_enc_kind_from_name("stack"), AUDIO_ENC_STACK);
    assert_int_equal(audio_enc_kind_from_name("Conv"), -1);
    assert_int_equal(audio_enc_kind_from_name(NULL), -1);
}

static void write_wav(const char *path, int rate, double seconds, double hz) {
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    assert_non_null(f);
    int64_t n = (int64_t)(seconds * rate);
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = 0.5f * sinf((float)(6.283185307 * hz * (double)i / rate));
    sf_writef_float(f, x, n);
    sf_close(f);
    free(x);
}

static void test_speech_bank(void **state) {
    (void)state;
    loom_error err = {{0}};
    char dir[] = "/tmp/loom_test_speech_bank_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[4096], man[4096];
    snprintf(p, sizeof p, "%s/a.wav", dir);
    write_wav(p, 22050, 0.5, 300.0);
    snprintf(p, sizeof p, "%s/b.wav", dir);
    write_wav(p, 16000, 0.25, 500.0);
    snprintf(man, sizeof man, "%s/manifest.jsonl", dir);
    FILE *f = fopen(man, "w");
    assert_non_null(f);
    fprintf(f, "{\"audio\":\"a.wav\",\"text\":\"what color is the circle?\",\"task\":\"question\","
               "\"scene\":\"a small red circle in the center\",\"reply\":\"red\"}\n"
               "\n"
               "{\"audio\":\"b.wav\",\"text\":\"a red circle\",\"task\":\"prompt\","
               "\"scene\":\"a small red circle in the center\",\"voice\":\"x\"}\n"
               "{\"audio\":\"a.wav\",\"text\":\"what color is the circle?\",\"task\":\"question\","
               "\"scene\":\"a large red circle in the center\",\"reply\":\"red\"}\n");
    fclose(f);
    speech_bank b;
    if (speech_bank_load(&b, man, &err)) fail_msg("%s", err.msg);
    assert_int_equal(b.n, 3);
    assert_true(fabs(b.seconds - 1.25) < 0.01);
    size_t first, n = speech_bank_find(&b, "what color is the circle?", &first);
    assert_int_equal(n, 2);
    assert_int_equal(speech_bank_find(&b, "a red circle", &first), 1);
    assert_string_equal(b.u[b.by_text[first]].text, "a red circle");
    assert_int_equal(speech_bank_find(&b, "nothing said", &first), 0);
    assert_int_equal(speech_bank_count(&b, SPEECH_TASK_QUESTION), 2);
    assert_int_equal(speech_bank_prepare(&b, 8, &err), 0);
    /* 0.5 s: 50 mel frames + 1 -> 7 positions of 8 frames */
    assert_int_equal(b.u[0].n_pos, (int32_t)audio_enc_positions(mel_frames(8000), 8));
    assert_null(b.u[0].audio.samples);
    assert_int_equal(speech_bank_prepare(&b, 4, &err), -1);
    speech_bank_free(&b);

    /* bad manifests name the line */
    f = fopen(man, "w");
    fprintf(f, "{\"audio\":\"b.wav\",\"text\":\"a red circle\",\"task\":\"prompt\"}\n");
    fclose(f);
    assert_int_equal(speech_bank_load(&b, man, &err), -1);
    assert_non_null(strstr(err.msg, ":1:"));
    assert_non_null(strstr(err.msg, "scene"));
    f = fopen(man, "w");
    fprintf(f, "{\"audio\":\"b.wav\",\"text\":\"x\"}\n{\"audio\":\"missing.wav\",\"text\":\"y\"}\n");
    fclose(f);
    assert_int_equal(speech_bank_load(&b, man, &err), -1);
    assert_non_null(strstr(err.msg, ":2:"));
    f = fopen(man, "w");
    fprintf(f, "not json\n");
    fclose(f);
    assert_int_equal(speech_bank_load(&b, man, &err), -1);
    assert_non_null(strstr(err.msg, "not a JSON object"));
    snprintf(p, sizeof p, "rm -rf '%s'", dir);
    assert_int_equal(system(p), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fusion_row),
        cmocka_unit_test(test_embed_and_gradient),
        cmocka_unit_test(test_file_and_inference),
        cmocka_unit_test(test_speech_bank),
        cmocka_unit_test(test_conv_encoder_vs_reference),
        cmocka_unit_test(test_conv_embed_gradient),
        cmocka_unit_test(test_conv_file_and_inference),
        cmocka_unit_test(test_audio_config_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
