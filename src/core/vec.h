/* vec.h: the elementwise kernels of the training step (SwiGLU, RMSNorm,
 * softmax pieces), each on one contiguous range and without threads of its
 * own: callers split the work (OpenMP over rows or chunks).
 *
 * Every function has a portable C version and an AVX2+FMA one chosen once
 * from cpuid (vec_avx2.c); the AVX2 exp is a Cephes-style polynomial with a
 * relative error below 2e-7 over [-87, 88] (tests/test_vec.c checks both
 * paths against libm). Results do not depend on the thread count: each
 * output is computed by one call in a fixed order. */
#ifndef LOOM_CORE_VEC_H
#define LOOM_CORE_VEC_H

#include <stdint.h>

/* act = silu(gate) * up */
void vec_swiglu_forward(float *act, const float *gate, const float *up, int64_t n);
/* dgate, dup from dact for act = silu(gate) * up */
void vec_swiglu_backward(float *dgate, float *dup, const float *dact, const float *gate,
                         const float *up, int64_t n);
/* One row: r = 1 / sqrt(mean(x^2) + eps); out = x * r * w. Returns r. */
float vec_rmsnorm_forward(float *out, const float *x, const float *w, int64_t n, float eps);
/* One row of d rmsnorm / dx given its r: dx = r w d - (r^3 / n) (w.d.x) x
 * (dx += ... with accumulate). */
void vec_rmsnorm_backward(float *dx, const float *dout, const float *x, const float *w, float r,
                          int64_t n, int accumulate);
/* dw[j] += sum_i dout[i,j] x[i,j] r[i] for columns [j0, j1) of N rows of
 * stride ld, summed over i in order. */
void vec_rmsnorm_dw(float *dw, const float *dout, const float *x, const float *r, int64_t N,
                    int64_t ld, int64_t j0, int64_t j1);
/* max of x[0..n) (-inf for n == 0) */
float vec_max(const float *x, int64_t n);
/* y = exp(x * scale - shift) (y may be x, or NULL: only the sum); returns the
 * sum of the exps. */
float vec_exp_sum(float *y, const float *x, float scale, float shift, int64_t n);
/* x *= s */
void vec_scale(float *x, float s, int64_t n);

/* The implementation in use: "avx2" or "generic". */
const char *vec_impl_name(void);
/* Tests: 1 forces the portable C versions, 0 back to the cpuid choice. */
void vec_force_generic(int on);

#endif
