#include "encoders/audio_enc.h"

#include <math.h>
#include <stdlib.h>

#include "encoders/mel.h"
#include "encoders/proj.h"

int audio_enc_config_check(const audio_enc_config *c, loom_error *err) {
    if (c->stack < 1 || c->stack > AUDIO_ENC_MAX_STACK)
        return loom_error_set(err, "audio stack %d outside [1, %d]", c->stack, AUDIO_ENC_MAX_STACK);
    if (c->d_model < 1) return loom_error_set(err, "audio encoder: d_model %d", c->d_model);
    return 0;
}

int64_t audio_enc_dim(const audio_enc_config *c) { return (int64_t)c->stack * MEL_BINS; }

int64_t audio_enc_positions(int64_t n_frames, int32_t stack) {
    return n_frames > 0 && stack > 0 ? (n_frames + stack - 1) / stack : 0;
}

int audio_enc_register(const audio_enc_config *c, param_table *t, loom_error *err) {
    if (audio_enc_config_check(c, err)) return -1;
    int64_t w_shape[2] = {c->d_model, audio_enc_dim(c)}, b_shape[1] = {c->d_model};
    if (params_add(t, "audio.w", 2, w_shape, 1, err)) return -1;
    return params_add(t, "audio.b", 1, b_shape, 0, err);
}

void audio_enc_bind(const audio_enc_config *c, const param_table *t, float *base,
                    audio_enc_weights *w) {
    (void)c;
    const param_info *pw = params_find(t, "audio.w"), *pb = params_find(t, "audio.b");
    w->w = pw ? base + pw->offset : NULL;
    w->b = pb ? base + pb->offset : NULL;
}

void audio_enc_init_weights(const audio_enc_config *c, audio_enc_weights *w, loom_rng *rng) {
    const int64_t C = c->d_model, D = audio_enc_dim(c);
    for (int64_t i = 0; i < C * D; i++) w->w[i] = 0.02f * rng_normal(rng);
    for (int64_t i = 0; i < C; i++) w->b[i] = 0.0f;
}

void audio_enc_group(const float *mel, int64_t T, int32_t stack, float *out) {
    float floor_v = INFINITY;
    for (int64_t i = 0; i < (int64_t)MEL_BINS * T; i++) floor_v = mel[i] < floor_v ? mel[i] : floor_v;
    const int64_t P = audio_enc_positions(T, stack);
    for (int64_t p = 0; p < P; p++)
        for (int32_t j = 0; j < stack; j++) {
            const int64_t t = p * stack + j;
            float *o = out + (p * stack + j) * MEL_BINS;
            for (int32_t m = 0; m < MEL_BINS; m++) o[m] = t < T ? mel[(int64_t)m * T + t] : floor_v;
        }
}

int audio_enc_prepare(const loom_audio *a, int32_t stack, float **frames, int64_t *P,
                      loom_error *err) {
    *frames = NULL;
    *P = 0;
    if (stack < 1 || stack > AUDIO_ENC_MAX_STACK) return loom_error_set(err, "audio stack %d", stack);
    const int64_t T = mel_frames(a->n);
    float *mel = malloc((size_t)(T > 0 ? T : 1) * MEL_BINS * sizeof *mel);
    if (!mel) return loom_error_set(err, "out of memory");
    if (mel_compute(a->samples, a->n, mel, err)) {
        free(mel);
        return -1;
    }
    const int64_t n = audio_enc_positions(T, stack);
    float *out = malloc((size_t)n * stack * MEL_BINS * sizeof *out);
    if (!out) {
        free(mel);
        return loom_error_set(err, "out of memory");
    }
    audio_enc_group(mel, T, stack, out);
    free(mel);
    *frames = out;
    *P = n;
    return 0;
}

void audio_enc_forward(const audio_enc_config *c, const audio_enc_weights *w, const float *frames,
                       int64_t N, float *out, int64_t ldo) {
    proj_forward(w->w, w->b, frames, N, audio_enc_dim(c), c->d_model, out, ldo);
}

void audio_enc_backward(const audio_enc_config *c, audio_enc_weights *g, const float *frames,
                        int64_t N, const float *dout, int64_t ldo) {
    proj_backward(g->w, g->b, frames, N, audio_enc_dim(c), c->d_model, dout, ldo);
}
