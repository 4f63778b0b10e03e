/* conv.c: NHWC conv2d and conv_transpose2d by im2col + gemm, ReLU, and the
 * direct-loop references. The math and layouts are in conv.h. */
#include "heads/conv.h"

#include <stdint.h>
#include <string.h>

#include "core/gemm.h"

/* Loops smaller than this many floats of work stay on one thread. */
#define PAR_MIN 32768
/* Channels per thread in the bias gradient (each thread owns its columns). */
#define BIAS_BLOCK 16

/* ------------------------------------------------------------------------ */
/* geometry */

int conv_spec_check(const conv_spec *s, loom_error *err) {
    if (s->cin < 1 || s->cin > CONV_MAX_CHANNELS || s->cout < 1 || s->cout > CONV_MAX_CHANNELS)
        return loom_error_set(err, "conv: channels %d -> %d out of range [1, %d]", s->cin, s->cout,
                              CONV_MAX_CHANNELS);
    if (s->kh < 1 || s->kh > CONV_MAX_KERNEL || s->kw < 1 || s->kw > CONV_MAX_KERNEL)
        return loom_error_set(err, "conv: kernel %dx%d out of range [1, %d]", s->kh, s->kw,
                              CONV_MAX_KERNEL);
    if (s->stride < 1 || s->stride > CONV_MAX_STRIDE)
        return loom_error_set(err, "conv: stride %d out of range [1, %d]", s->stride,
                              CONV_MAX_STRIDE);
    if (s->pad < 0 || s->pad >= s->kh || s->pad >= s->kw)
        return loom_error_set(err, "conv: pad %d out of range [0, %d]", s->pad,
                              (s->kh < s->kw ? s->kh : s->kw) - 1);
    return 0;
}

int64_t conv_out_side(int64_t in, int32_t k, int32_t stride, int32_t pad) {
    if (in < 1 || stride < 1) return -1;
    int64_t span = in + 2 * (int64_t)pad - k;
    if (span < 0) return -1;
    return span / stride + 1;
}

int64_t conv_transpose_out_side(int64_t in, int32_t k, int32_t stride, int32_t pad) {
    if (in < 1 || stride < 1) return -1;
    int64_t out = (in - 1) * stride - 2 * (int64_t)pad + k;
    return out >= 1 ? out : -1;
}

int64_t conv_weight_count(const conv_spec *s) {
    return (int64_t)s->cout * s->kh * s->kw * s->cin;
}

/* A 1x1, stride-1, unpadded conv is a plain matrix product: no im2col. */
static int is_pointwise(const conv_spec *s) {
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

static size_t product4(int64_t a, int64_t b, int64_t c, int64_t d) {
    size_t r = 1;
    int64_t f[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (f[i] < 0 || loom_mul_size(r, (size_t)f[i], &r)) return SIZE_MAX;
    return r;
}

size_t conv2d_scratch_floats(const conv_spec *s, int64_t B, int64_t H, int64_t W) {
    if (is_pointwise(s)) return 0;
    int64_t OH = conv_out_side(H, s->kh, s->stride, s->pad);
    int64_t OW = conv_out_side(W, s->kw, s->stride, s->pad);
    if (OH < 0 || OW < 0) return SIZE_MAX;
    return product4(B * OH, OW, (int64_t)s->kh * s->kw, s->cin);
}

size_t conv_transpose2d_scratch_floats(const conv_spec *s, int64_t B, int64_t H, int64_t W) {
    if (is_pointwise(s)) return 0;
    return product4(B * H, W, (int64_t)s->kh * s->kw, s->cout);
}

/* ------------------------------------------------------------------------ */
/* im2col and its adjoint */

/* cols (B*OH*OW, KH*KW*C): row (b, oy, ox) holds the KH x KW window of
 * in (B, H, W, C) at (oy*S - P, ox*S - P), zeros outside. A run of kernel
 * columns that lies inside the image is one contiguous copy. */
static void im2col(float *cols, const float *in, int32_t B, int32_t H, int32_t W, int32_t C,
                   int32_t KH, int32_t KW, int32_t S, int32_t P, int32_t OH, int32_t OW) {
    const int64_t K = (int64_t)KH * KW * C;
#pragma omp parallel for collapse(2) schedule(static) if((int64_t)B * OH * OW * K >= PAR_MIN)
    for (int32_t b = 0; b < B; b++)
        for (int32_t oy = 0; oy < OH; oy++)
            for (int32_t ox = 0; ox < OW; ox++) {
                float *row = cols + (((int64_t)b * OH + oy) * OW + ox) * K;
                const int32_t x0 = ox * S - P;
                /* kernel columns [kx0, kx1) read inside the image */
                const int32_t kx0 = x0 < 0 ? -x0 : 0;
                const int32_t kx1 = W - x0 < KW ? W - x0 : KW;
                for (int32_t ky = 0; ky < KH; ky++) {
                    const int32_t iy = oy * S - P + ky;
                    float *dst = row + (int64_t)ky * KW * C;
                    if (iy < 0 || iy >= H || kx0 >= kx1) {
                        memset(dst, 0, sizeof(float) * (size_t)KW * C);
                        continue;
                    }
                    if (kx0 > 0) memset(dst, 0, sizeof(float) * (size_t)kx0 * C);
                    memcpy(dst + (int64_t)kx0 * C, in + (((int64_t)b * H + iy) * W + x0 + kx0) * C,
                           sizeof(float) * (size_t)(kx1 - kx0) * C);
                    if (kx1 < KW)
                        memset(dst + (int64_t)kx1 * C, 0, sizeof(float) * (size_t)(KW - kx1) * C);
                }
            }
}

/* The adjoint of im2col, as a gather: dst (B, H, W, C) = bias (or 0) + the
 * sum of every column entry of cols (B*OH*OW, KH*KW*C) that reads that
 * pixel, in the order (ky, kx) ascending. Each pixel is written by one thread. */
static void col2im(float *dst, const float *cols, const float *bias, int32_t B, int32_t H,
                   int32_t W, int32_t C, int32_t KH, int32_t KW, int32_t S, int32_t P, int32_t OH,
                   int32_t OW) {
    const int64_t K = (int64_t)KH * KW * C;
#pragma omp parallel for collapse(2) schedule(static) if((int64_t)B * OH * OW * K >= PAR_MIN)
    for (int32_t b = 0; b < B; b++)
        for (int32_t iy = 0; iy < H; iy++)
            for (int32_t ix = 0; ix < W; ix++) {
                float *d = dst + (((int64_t)b * H + iy) * W + ix) * C;
                if (bias) memcpy(d, bias, sizeof(float) * (size_t)C);
                else memset(d, 0, sizeof(float) * (size_t)C);
                for (int32_t ky = 0; ky < KH; ky++) {
                    const int32_t ty = iy + P - ky; /* = oy * S */
                    if (ty < 0 || ty % S != 0 || ty / S >= OH) continue;
                    const int32_t oy = ty / S;
                    for (int32_t kx = 0; kx < KW; kx++) {
                        const int32_t tx = ix + P - kx;
                        if (tx < 0 || tx % S != 0 || tx / S >= OW) continue;
                        const int32_t ox = tx / S;
                        const float *src = cols + (((int64_t)b * OH + oy) * OW + ox) * K +
                                           ((int64_t)ky * KW + kx) * C;
                        for (int32_t c = 0; c < C; c++) d[c] += src[c];
                    }
                }
            }
}

/* out (N, C) += bias (C) on every row. */
static void add_bias(float *out, const float *bias, int64_t N, int32_t C) {
#pragma omp parallel for schedule(static) if(N * C >= PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float *o = out + i * C;
        for (int32_t c = 0; c < C; c++) o[c] += bias[c];
    }
}

/* db (C) += sum over the N rows of dout (N, C), rows in order, in double;
 * threads own blocks of channels. */
static void bias_grad(float *db, const float *dout, int64_t N, int32_t C) {
#pragma omp parallel for schedule(static) if(N * C >= PAR_MIN && C > BIAS_BLOCK)
    for (int32_t c0 = 0; c0 < C; c0 += BIAS_BLOCK) {
        const int32_t n = C - c0 < BIAS_BLOCK ? C - c0 : BIAS_BLOCK;
        double acc[BIAS_BLOCK] = {0};
        for (int64_t i = 0; i < N; i++) {
            const float *g = dout + i * C + c0;
            for (int32_t c = 0; c < n; c++) acc[c] += g[c];
        }
        for (int32_t c = 0; c < n; c++) db[c0 + c] += (float)acc[c];
    }
}

/* ------------------------------------------------------------------------ */
/* conv2d: out = im2col(in) w^T + b */

void conv2d_forward(const conv_spec *s, float *out, const float *in, const float *w,
                    const float *b, int32_t B, int32_t H, int32_t W, float *scratch) {
    const int32_t OH = (int32_t)conv_out_side(H, s->kh, s->stride, s->pad);
    const int32_t OW = (int32_t)conv_out_side(W, s->kw, s->stride, s->pad);
    const int64_t N = (int64_t)B * OH * OW, K = (int64_t)s->kh * s->kw * s->cin;
    const float *cols = in;
    if (!is_pointwise(s)) {
        im2col(scratch, in, B, H, W, s->cin, s->kh, s->kw, s->stride, s->pad, OH, OW);
        cols = scratch;
    }
    gemm_nt(N, s->cout, K, cols, K, w, K, 0.0f, out, s->cout); /* (N, Cout) = cols w^T */
    if (b) add_bias(out, b, N, s->cout);
}

void conv2d_backward(const conv_spec *s, float *din, float *dw, float *db, const float *dout,
                     const float *in, const float *w, int32_t B, int32_t H, int32_t W,
                     float *scratch) {
    const int32_t OH = (int32_t)conv_out_side(H, s->kh, s->stride, s->pad);
    const int32_t OW = (int32_t)conv_out_side(W, s->kw, s->stride, s->pad);
    const int64_t N = (int64_t)B * OH * OW, K = (int64_t)s->kh * s->kw * s->cin;
    if (db) bias_grad(db, dout, N, s->cout);
    if (is_pointwise(s)) {
        gemm_tn(s->cout, K, N, dout, s->cout, in, K, 1.0f, dw, K);           /* dw += dout^T in */
        if (din) gemm_nn(N, K, s->cout, dout, s->cout, w, K, 0.0f, din, K);  /* din = dout w */
        return;
    }
    im2col(scratch, in, B, H, W, s->cin, s->kh, s->kw, s->stride, s->pad, OH, OW);
    gemm_tn(s->cout, K, N, dout, s->cout, scratch, K, 1.0f, dw, K);          /* dw += dout^T cols */
    if (!din) return;
    gemm_nn(N, K, s->cout, dout, s->cout, w, K, 0.0f, scratch, K);           /* dcols = dout w */
    col2im(din, scratch, NULL, B, H, W, s->cin, s->kh, s->kw, s->stride, s->pad, OH, OW);
}

/* ------------------------------------------------------------------------ */
/* conv_transpose2d: out = col2im(in w) + b, the adjoint of conv2d */

void conv_transpose2d_forward(const conv_spec *s, float *out, const float *in, const float *w,
                              const float *b, int32_t B, int32_t H, int32_t W, float *scratch) {
    const int32_t OH = (int32_t)conv_transpose_out_side(H, s->kh, s->stride, s->pad);
    const int32_t OW = (int32_t)conv_transpose_out_side(W, s->kw, s->stride, s->pad);
    const int64_t N = (int64_t)B * H * W, K = (int64_t)s->kh * s->kw * s->cout;
    if (is_pointwise(s)) {
        gemm_nn(N, K, s->cin, in, s->cin, w, K, 0.0f, out, K);
        if (b) add_bias(out, b, N, s->cout);
        return;
    }
    gemm_nn(N, K, s->cin, in, s->cin, w, K, 0.0f, scratch, K);               /* cols = in w */
    col2im(out, scratch, b, B, OH, OW, s->cout, s->kh, s->kw, s->stride, s->pad, H, W);
}

void conv_transpose2d_backward(const conv_spec *s, float *din, float *dw, float *db,
                               const float *dout, const float *in, const float *w, int32_t B,
                               int32_t H, int32_t W, float *scratch) {
    const int32_t OH = (int32_t)conv_transpose_out_side(H, s->kh, s->stride, s->pad);
    const int32_t OW = (int32_t)conv_transpose_out_side(W, s->kw, s->stride, s->pad);
    const int64_t N = (int64_t)B * H * W, K = (int64_t)s->kh * s->kw * s->cout;
    if (db) bias_grad(db, dout, (int64_t)B * OH * OW, s->cout);
    const float *cols = dout;
    if (!is_pointwise(s)) {
        im2col(scratch, dout, B, OH, OW, s->cout, s->kh, s->kw, s->stride, s->pad, H, W);
        cols = scratch;
    }
    gemm_tn(s->cin, K, N, in, s->cin, cols, K, 1.0f, dw, K);                 /* dw += in^T dcols */
    if (din) gemm_nt(N, s->cin, K, cols, K, w, K, 0.0f, din, s->cin);        /* din = dcols w^T */
}

/* ------------------------------------------------------------------------ */
/* ReLU */

void relu_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if(n >= 4 * PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(float *dx, const float *dy, const float *y, int64_t n) {
#pragma omp parallel for schedule(static) if(n >= 4 * PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* ------------------------------------------------------------------------ */
/* references: the definitions in conv.h written out as loops */

static int64_t at4(int64_t i0, int64_t n1, int64_t i1, int64_t n2, int64_t i2, int64_t n3,
                   int64_t i3) {
    return ((i0 * n1 + i1) * n2 + i2) * n3 + i3;
}

void conv2d_forward_ref(const conv_spec *s, float *out, const float *in, const float *w,
                        const float *b, int32_t B, int32_t H, int32_t W) {
    const int64_t OH = conv_out_side(H, s->kh, s->stride, s->pad);
    const int64_t OW = conv_out_side(W, s->kw, s->stride, s->pad);
    for (int64_t n = 0; n < B; n++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++)
                for (int64_t co = 0; co < s->cout; co++) {
                    double acc = b ? b[co] : 0.0;
                    for (int64_t ky = 0; ky < s->kh; ky++)
                        for (int64_t kx = 0; kx < s->kw; kx++) {
                            int64_t iy = oy * s->stride - s->pad + ky;
                            int64_t ix = ox * s->stride - s->pad + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            for (int64_t ci = 0; ci < s->cin; ci++)
                                acc += (double)w[at4(co, s->kh, ky, s->kw, kx, s->cin, ci)] *
                                       in[at4(n, H, iy, W, ix, s->cin, ci)];
                        }
                    out[at4(n, OH, oy, OW, ox, s->cout, co)] = (float)acc;
                }
}

void conv2d_backward_ref(const conv_spec *s, float *din, float *dw, float *db, const float *dout,
                         const float *in, const float *w, int32_t B, int32_t H, int32_t W) {
    const int64_t OH = conv_out_side(H, s->kh, s->stride, s->pad);
    const int64_t OW = conv_out_side(W, s->kw, s->stride, s->pad);
    const int64_t S = s->stride, P = s->pad;
    if (db)
        for (int64_t co = 0; co < s->cout; co++) {
            double acc = 0.0;
            for (int64_t i = 0; i < B * OH * OW; i++) acc += dout[i * s->cout + co];
            db[co] += (float)acc;
        }
    /* dw[co, ky, kx, ci] = sum over (n, oy, ox) of dout * the input it multiplied */
    for (int64_t co = 0; co < s->cout; co++)
        for (int64_t ky = 0; ky < s->kh; ky++)
            for (int64_t kx = 0; kx < s->kw; kx++)
                for (int64_t ci = 0; ci < s->cin; ci++) {
                    double acc = 0.0;
                    for (int64_t n = 0; n < B; n++)
                        for (int64_t oy = 0; oy < OH; oy++)
                            for (int64_t ox = 0; ox < OW; ox++) {
                                int64_t iy = oy * S - P + ky, ix = ox * S - P + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += (double)dout[at4(n, OH, oy, OW, ox, s->cout, co)] *
                                       in[at4(n, H, iy, W, ix, s->cin, ci)];
                            }
                    dw[at4(co, s->kh, ky, s->kw, kx, s->cin, ci)] += (float)acc;
                }
    if (!din) return;
    /* din[n, iy, ix, ci] = sum over every (oy, ox, ky, kx) that reads (iy, ix) */
    for (int64_t n = 0; n < B; n++)
        for (int64_t iy = 0; iy < H; iy++)
            for (int64_t ix = 0; ix < W; ix++)
                for (int64_t ci = 0; ci < s->cin; ci++) {
                    double acc = 0.0;
                    for (int64_t oy = 0; oy < OH; oy++)
                        for (int64_t ky = 0; ky < s->kh; ky++) {
                            if (oy * S - P + ky != iy) continue;
                            for (int64_t ox = 0; ox < OW; ox++)
                                for (int64_t kx = 0; kx < s->kw; kx++) {
                                    if (ox * S - P + kx != ix) continue;
                                    for (int64_t co = 0; co < s->cout; co++)
                                        acc += (double)dout[at4(n, OH, oy, OW, ox, s->cout, co)] *
                                               w[at4(co, s->kh, ky, s->kw, kx, s->cin, ci)];
                                }
                        }
                    din[at4(n, H, iy, W, ix, s->cin, ci)] = (float)acc;
                }
}

void conv_transpose2d_forward_ref(const conv_spec *s, float *out, const float *in, const float *w,
                                  const float *b, int32_t B, int32_t H, int32_t W) {
    const int64_t OH = conv_transpose_out_side(H, s->kh, s->stride, s->pad);
    const int64_t OW = conv_transpose_out_side(W, s->kw, s->stride, s->pad);
    const int64_t S = s->stride, P = s->pad;
    /* out[n, y, x, co] = b[co] + sum of w[ci, ky, kx, co] in[n, iy, ix, ci]
     * over every (iy, ky), (ix, kx) with iy*S - P + ky == y, ix*S - P + kx == x */
    for (int64_t n = 0; n < B; n++)
        for (int64_t y = 0; y < OH; y++)
            for (int64_t x = 0; x < OW; x++)
                for (int64_t co = 0; co < s->cout; co++) {
                    double acc = b ? b[co] : 0.0;
                    for (int64_t iy = 0; iy < H; iy++)
                        for (int64_t ky = 0; ky < s->kh; ky++) {
                            if (iy * S - P + ky != y) continue;
                            for (int64_t ix = 0; ix < W; ix++)
                                for (int64_t kx = 0; kx < s->kw; kx++) {
                                    if (ix * S - P + kx != x) continue;
                                    for (int64_t ci = 0; ci < s->cin; ci++)
                                        acc += (double)w[at4(ci, s->kh, ky, s->kw, kx, s->cout, co)] *
                                               in[at4(n, H, iy, W, ix, s->cin, ci)];
                                }
                        }
                    out[at4(n, OH, y, OW, x, s->cout, co)] = (float)acc;
                }
}

void conv_transpose2d_backward_ref(const conv_spec *s, float *din, float *dw, float *db,
                                   const float *dout, const float *in, const float *w, int32_t B,
                                   int32_t H, int32_t W) {
    const int64_t OH = conv_transpose_out_side(H, s->kh, s->stride, s->pad);
    const int64_t OW = conv_transpose_out_side(W, s->kw, s->stride, s->pad);
    const int64_t S = s->stride, P = s->pad;
    if (db)
        for (int64_t co = 0; co < s->cout; co++) {
            double acc = 0.0;
            for (int64_t i = 0; i < B * OH * OW; i++) acc += dout[i * s->cout + co];
            db[co] += (float)acc;
        }
    /* dw[ci, ky, kx, co] = sum over (n, iy, ix) of in * the output it fed */
    for (int64_t ci = 0; ci < s->cin; ci++)
        for (int64_t ky = 0; ky < s->kh; ky++)
            for (int64_t kx = 0; kx < s->kw; kx++)
                for (int64_t co = 0; co < s->cout; co++) {
                    double acc = 0.0;
                    for (int64_t n = 0; n < B; n++)
                        for (int64_t iy = 0; iy < H; iy++)
                            for (int64_t ix = 0; ix < W; ix++) {
                                int64_t y = iy * S - P + ky, x = ix * S - P + kx;
                                if (y < 0 || y >= OH || x < 0 || x >= OW) continue;
                                acc += (double)in[at4(n, H, iy, W, ix, s->cin, ci)] *
                                       dout[at4(n, OH, y, OW, x, s->cout, co)];
                            }
                    dw[at4(ci, s->kh, ky, s->kw, kx, s->cout, co)] += (float)acc;
                }
    if (!din) return;
    for (int64_t n = 0; n < B; n++)
        for (int64_t iy = 0; iy < H; iy++)
            for (int64_t ix = 0; ix < W; ix++)
                for (int64_t ci = 0; ci < s->cin; ci++) {
                    double acc = 0.0;
                    for (int64_t ky = 0; ky < s->kh; ky++)
                        for (int64_t kx = 0; kx < s->kw; kx++) {
                            int64_t y = iy * S - P + ky, x = ix * S - P + kx;
                            if (y < 0 || y >= OH || x < 0 || x >= OW) continue;
                            for (int64_t co = 0; co < s->cout; co++)
                                acc += (double)w[at4(ci, s->kh, ky, s->kw, kx, s->cout, co)] *
                                       dout[at4(n, OH, y, OW, x, s->cout, co)];
                        }
                    din[at4(n, H, iy, W, ix, s->cin, ci)] = (float)acc;
                }
}

void relu_forward_ref(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward_ref(float *dx, const float *dy, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
