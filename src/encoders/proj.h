/* proj.h: the linear projector every raw-input encoder ends in: out (N, C) =
 * in (N, D) W^T + b, W (C, D), b (C). The image patch projector (patch.h)
 * and the audio frame projector (audio_enc.h) are this with their own D. */
#ifndef LOOM_ENCODERS_PROJ_H
#define LOOM_ENCODERS_PROJ_H

#include <stdint.h>

/* out rows have stride ldo (>= C): they are rows of the decoder's input. */
void proj_forward(const float *w, const float *b, const float *in, int64_t N, int64_t D,
                  int64_t C, float *out, int64_t ldo);
/* gw (C, D) += dout^T in, gb (C) += column sums of dout (dout rows stride ldo). */
void proj_backward(float *gw, float *gb, const float *in, int64_t N, int64_t D, int64_t C,
                   const float *dout, int64_t ldo);
/* Naive double-precision references of both, for tests. */
void proj_forward_ref(const float *w, const float *b, const float *in, int64_t N, int64_t D,
                      int64_t C, float *out, int64_t ldo);
void proj_backward_ref(float *gw, float *gb, const float *in, int64_t N, int64_t D, int64_t C,
                       const float *dout, int64_t ldo);

#endif
