/* test_audio_model.c: audio input through the whole model. The fusion row
 * layout with an image and audio (<img> .. </img> <aud> a .. </aud> prompt
 * <sep> answer <eos>), the model's audio projector (embedding equals
 * audio_enc_forward; its backward matches finite differences), the model
 * file round trip of the audio config, inference with audio (and its
 * refusals), and the speech bank read from a manifest of real WAV files.
 * Random weights: the point is the machinery. */
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

static loom_model *tiny_audio_model(int32_t stack) {
    loom_error err = {{0}};
    tokenizer *tok = tokenizer_from_merges(NULL, 0, &err);
    assert_non_null(tok);
    decoder_config dc = decoder_default_config();
    dc.d_model = 16, dc.n_layers = 1, dc.n_heads = 2, dc.n_kv_heads = 1, dc.d_ff = 24;
    dc.vocab_size = tokenizer_vocab_size(tok), dc.max_seq = 48;
    model_image_config img = {.patch_size = 4, .max_patch_rows = 2, .max_patch_cols = 2};
    model_audio_config aud = {.stack = stack};
    loom_model *m = model_new_ex(&dc, &img, &aud, tok, &err);
    if (!m) fail_msg("%s", err.msg);
    model_init_random(m, 11);
    return m;
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
