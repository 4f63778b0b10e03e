/* audio_enc.h: the audio encoder's input side: log-mel frames (mel.h, 10 ms
 * each) grouped `stack` at a time and projected linearly to d_model, one
 * sequence position per group (stack 4: 25 positions per second) -- the
 * audio counterpart of the Fuyu patch projector, no encoder tower.
 *
 *   samples (16 kHz) --mel_compute--> mel (80, T)
 *     --audio_enc_group--> frames (P, stack*80), P = ceil(T / stack):
 *         frames[p][j*80 + m] = mel[m][p*stack + j]   (frame j of the group, mel bin m)
 *         frames past T hold the spectrogram's minimum (its floor)
 *     --audio_enc_forward--> (P, C) = frames W^T + b,  W "audio.w" (C, stack*80), b "audio.b" (C)
 *
 * Whether this or a strided convolution stem (whisper's) serves better is to
 * be measured when the audio model trains (the issue asks for the choice to
 * be justified); this is the simpler baseline. */
#ifndef LOOM_ENCODERS_AUDIO_ENC_H
#define LOOM_ENCODERS_AUDIO_ENC_H

#include <stdint.h>

#include "core/error.h"
#include "core/params.h"
#include "core/rng.h"
#include "encoders/audio.h"

#define AUDIO_ENC_MAX_STACK 64

typedef struct audio_enc_config {
    int32_t stack;    /* mel frames per position, in [1, AUDIO_ENC_MAX_STACK] */
    int32_t d_model;  /* C */
} audio_enc_config;

typedef struct audio_enc_weights {
    float *w;         /* (C, stack * MEL_BINS) */
    float *b;         /* (C) */
} audio_enc_weights;

int audio_enc_config_check(const audio_enc_config *c, loom_error *err);
int64_t audio_enc_dim(const audio_enc_config *c);            /* stack * MEL_BINS */
int64_t audio_enc_positions(int64_t n_frames, int32_t stack); /* ceil(n_frames / stack) */
int audio_enc_register(const audio_enc_config *c, param_table *t, loom_error *err);
void audio_enc_bind(const audio_enc_config *c, const param_table *t, float *base,
                    audio_enc_weights *w);
void audio_enc_init_weights(const audio_enc_config *c, audio_enc_weights *w, loom_rng *rng);

/* mel (MEL_BINS, T) -> out (audio_enc_positions(T, stack), stack * MEL_BINS). */
void audio_enc_group(const float *mel, int64_t T, int32_t stack, float *out);
/* The whole input side for decoded audio: log-mel, then grouping. *frames is
 * malloc'd (free it), *P its positions. */
int audio_enc_prepare(const loom_audio *a, int32_t stack, float **frames, int64_t *P,
                      loom_error *err);

/* out rows (stride ldo) = frames W^T + b; backward adds into g. */
void audio_enc_forward(const audio_enc_config *c, const audio_enc_weights *w, const float *frames,
                       int64_t N, float *out, int64_t ldo);
void audio_enc_backward(const audio_enc_config *c, audio_enc_weights *g, const float *frames,
                        int64_t N, const float *dout, int64_t ldo);

#endif
