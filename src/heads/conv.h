/* conv.h: 2-D convolution, its adjoint (transposed convolution) and ReLU,
 * forward and backward, on NHWC tensors. Used by the VQ autoencoder
 * (heads/vq.h); nothing here is specific to it.
 *
 * Layouts (row-major, channel fastest):
 *   activations   (B, H, W, C)
 *   conv2d        weights (Cout, KH, KW, Cin), bias (Cout)
 *   conv_transpose2d weights (Cin, KH, KW, Cout), bias (Cout)
 *
 * conv2d (cross-correlation, as torch.nn.functional.conv2d):
 *     out[b, oy, ox, co] = bias[co] + sum_{ky, kx, ci} w[co, ky, kx, ci]
 *                          * in[b, oy*S - P + ky, ox*S - P + kx, ci]     (0 outside)
 *     OH = (H + 2P - KH) / S + 1, OW likewise (floor division).
 *
 * conv_transpose2d is the adjoint of the conv2d with Cin and Cout swapped:
 * its forward is that conv's data gradient, plus its own bias, i.e.
 *     out[b, y*S - P + ky, x*S - P + kx, co] += w[ci, ky, kx, co] * in[b, y, x, ci]
 *     OH = (H - 1) * S - 2P + KH   (torch.nn.functional.conv_transpose2d with
 *                                   output_padding 0; its weight (Cin, Cout, KH, KW)
 *                                   is loom's permuted (0, 3, 1, 2)).
 * For 4x4, stride 2, pad 1 this doubles the side: OH = 2H.
 *
 * How: im2col + one gemm over the whole batch (core/gemm.h), the column matrix
 *     cols (B*OH*OW, KH*KW*Cin), row (b, oy, ox), column (ky, kx, ci)
 * which matches the weight layout, so conv2d is out = cols w^T. The adjoint
 * col2im is written as a gather (each input pixel sums the column entries
 * that read it, in a fixed order), so it parallelizes over pixels without
 * races. 1x1 convolutions with stride 1 and no padding skip im2col.
 *
 * Memory: nothing is allocated. im2col needs a caller-provided scratch of
 * conv2d_scratch_floats() / conv_transpose2d_scratch_floats() floats (0 for
 * 1x1 stride 1 pad 0); the backward recomputes the columns into it, so one
 * scratch the size of the largest layer serves a whole network.
 *
 * Threads: gemms use all threads (loom's sgemm splits rows or columns of
 * the result, never K); im2col/col2im/bias/ReLU split over pixels or
 * channels. Every output is summed in one fixed order, so results are
 * bit-identical at any thread count.
 *
 * Backward conventions: weight and bias gradients are ADDED (dw +=, db +=);
 * the input gradient din is overwritten, and may be NULL when not needed
 * (the network's input). The *_ref functions are direct loops accumulating in
 * double, the reference the tests hold the fast path to.
 *
 * Sizes: callers validate shapes (conv_spec_check, conv_out_side); the
 * kernels trust them. Products of sizes must fit in int64_t / size_t.
 */
#ifndef LOOM_HEADS_CONV_H
#define LOOM_HEADS_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define CONV_MAX_KERNEL 15
#define CONV_MAX_STRIDE 8
#define CONV_MAX_CHANNELS 8192

/* One convolution layer's geometry. For conv2d, cin/cout are its input and
 * output channels; for conv_transpose2d likewise (its input has cin
 * channels, its output cout). */
typedef struct conv_spec {
    int32_t cin, cout;   /* Cin, Cout, in [1, CONV_MAX_CHANNELS] */
    int32_t kh, kw;      /* KH, KW, in [1, CONV_MAX_KERNEL] */
    int32_t stride;      /* S, in [1, CONV_MAX_STRIDE] */
    int32_t pad;         /* P, in [0, min(KH, KW) - 1] */
} conv_spec;

int conv_spec_check(const conv_spec *s, loom_error *err);

/* Output side of a conv2d: (in + 2 pad - k) / stride + 1; -1 if that is < 1. */
int64_t conv_out_side(int64_t in, int32_t k, int32_t stride, int32_t pad);
/* Output side of a conv_transpose2d: (in - 1) stride - 2 pad + k; -1 if < 1. */
int64_t conv_transpose_out_side(int64_t in, int32_t k, int32_t stride, int32_t pad);

/* Weight count: Cout*KH*KW*Cin (both kinds). */
int64_t conv_weight_count(const conv_spec *s);

/* Scratch (floats) for conv2d_forward/backward on input (B, H, W, Cin):
 * B*OH*OW*KH*KW*Cin, or 0 for a 1x1 stride-1 unpadded conv. SIZE_MAX on
 * overflow (arena_plan then reports it). */
size_t conv2d_scratch_floats(const conv_spec *s, int64_t B, int64_t H, int64_t W);
/* Scratch for conv_transpose2d_forward/backward on input (B, H, W, Cin):
 * B*H*W*KH*KW*Cout, or 0 for 1x1 stride 1 pad 0. */
size_t conv_transpose2d_scratch_floats(const conv_spec *s, int64_t B, int64_t H, int64_t W);

/* out (B, OH, OW, Cout) = conv2d(in (B, H, W, Cin), w (Cout, KH, KW, Cin)) + b (Cout).
 * b may be NULL (no bias). out must not overlap in. */
void conv2d_forward(const conv_spec *s, float *out, const float *in, const float *w,
                    const float *b, int32_t B, int32_t H, int32_t W, float *scratch);
/* From dout (B, OH, OW, Cout): dw (Cout, KH, KW, Cin) += ..., db (Cout) += ...
 * (db may be NULL), din (B, H, W, Cin) = ... (din may be NULL). in is the
 * forward's input. */
void conv2d_backward(const conv_spec *s, float *din, float *dw, float *db, const float *dout,
                     const float *in, const float *w, int32_t B, int32_t H, int32_t W,
                     float *scratch);

/* out (B, OH, OW, Cout) = conv_transpose2d(in (B, H, W, Cin), w (Cin, KH, KW, Cout)) + b (Cout),
 * OH = (H-1)*S - 2P + KH. b may be NULL. */
void conv_transpose2d_forward(const conv_spec *s, float *out, const float *in, const float *w,
                              const float *b, int32_t B, int32_t H, int32_t W, float *scratch);
/* From dout (B, OH, OW, Cout): dw (Cin, KH, KW, Cout) +=, db (Cout) += (may be
 * NULL), din (B, H, W, Cin) = (may be NULL). H, W are the forward's INPUT sides. */
void conv_transpose2d_backward(const conv_spec *s, float *din, float *dw, float *db,
                               const float *dout, const float *in, const float *w, int32_t B,
                               int32_t H, int32_t W, float *scratch);

/* y = max(x, 0) over n values (y may be x). */
void relu_forward(float *y, const float *x, int64_t n);
/* dx = dy where y > 0, else 0; y is the forward's OUTPUT (or its input: same
 * sign test). dx may be dy. */
void relu_backward(float *dx, const float *dy, const float *y, int64_t n);

/* Direct loops (double accumulation), no scratch: the references. */
void conv2d_forward_ref(const conv_spec *s, float *out, const float *in, const float *w,
                        const float *b, int32_t B, int32_t H, int32_t W);
void conv2d_backward_ref(const conv_spec *s, float *din, float *dw, float *db, const float *dout,
                         const float *in, const float *w, int32_t B, int32_t H, int32_t W);
void conv_transpose2d_forward_ref(const conv_spec *s, float *out, const float *in, const float *w,
                                  const float *b, int32_t B, int32_t H, int32_t W);
void conv_transpose2d_backward_ref(const conv_spec *s, float *din, float *dw, float *db,
                                   const float *dout, const float *in, const float *w, int32_t B,
                                   int32_t H, int32_t W);
void relu_forward_ref(float *y, const float *x, int64_t n);
void relu_backward_ref(float *dx, const float *dy, const float *y, int64_t n);

#endif
