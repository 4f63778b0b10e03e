#include "core/vec.h"

#include <math.h>
#include <stdatomic.h>

#include "core/vec_impl.h"

/* ---- portable versions ---------------------------------------------------- */

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static void swiglu_forward_c(float *act, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) act[i] = gate[i] * sigmoidf(gate[i]) * up[i];
}

static void swiglu_backward_c(float *dgate, float *dup, const float *dact, const float *gate,
                              const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoidf(g);
        dup[i] = dact[i] * g * s;
        dgate[i] = dact[i] * up[i] * s * (1.0f + g * (1.0f - s));
    }
}

static float rmsnorm_forward_c(float *out, const float *x, const float *w, int64_t n, float eps) {
    float ss = 0.0f;
    for (int64_t j = 0; j < n; j++) ss += x[j] * x[j];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t j = 0; j < n; j++) out[j] = x[j] * r * w[j];
    return r;
}

static void rmsnorm_backward_c(float *dx, const float *dout, const float *x, const float *w,
                               float r, int64_t n, int accumulate) {
    float dot = 0.0f;
    for (int64_t j = 0; j < n; j++) dot += w[j] * dout[j] * x[j];
    float k = dot * r * r * r / (float)n;
    if (accumulate)
        for (int64_t j = 0; j < n; j++) dx[j] += r * w[j] * dout[j] - k * x[j];
    else
        for (int64_t j = 0; j < n; j++) dx[j] = r * w[j] * dout[j] - k * x[j];
}

static void rmsnorm_dw_c(float *dw, const float *dout, const float *x, const float *r, int64_t N,
                         int64_t ld, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; j++) {
        float s = 0.0f;
        for (int64_t i = 0; i < N; i++) s += dout[i * ld + j] * x[i * ld + j] * r[i];
        dw[j] += s;
    }
}

static float max_c(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static float exp_sum_c(float *y, const float *x, float scale, float shift, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(x[i] * scale - shift);
        if (y) y[i] = e;
        s += e;
    }
    return s;
}

static void scale_c(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

static const vec_impl vec_impl_c = {
    .name = "generic", .swiglu_forward = swiglu_forward_c, .swiglu_backward = swiglu_backward_c,
    .rmsnorm_forward = rmsnorm_forward_c, .rmsnorm_backward = rmsnorm_backward_c,
    .rmsnorm_dw = rmsnorm_dw_c, .max = max_c, .exp_sum = exp_sum_c, .scale = scale_c};

/* ---- dispatch: cpuid once, cached ----------------------------------------- */

static atomic_int chosen = -1; /* 0 generic, 1 avx2 */
static atomic_int forced = 0;

static const vec_impl *impl(void) {
    if (atomic_load_explicit(&forced, memory_order_relaxed)) return &vec_impl_c;
    int v = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (v < 0) {
        /* idempotent: racing threads store the same value */
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        atomic_store_explicit(&chosen, v, memory_order_relaxed);
    }
    return v ? &vec_impl_avx2 : &vec_impl_c;
}

void vec_force_generic(int on) { atomic_store(&forced, on ? 1 : 0); }
const char *vec_impl_name(void) { return impl()->name; }

void vec_swiglu_forward(float *act, const float *gate, const float *up, int64_t n) {
    impl()->swiglu_forward(act, gate, up, n);
}
void vec_swiglu_backward(float *dgate, float *dup, const float *dact, const float *gate,
                         const float *up, int64_t n) {
    impl()->swiglu_backward(dgate, dup, dact, gate, up, n);
}
float vec_rmsnorm_forward(float *out, const float *x, const float *w, int64_t n, float eps) {
    return impl()->rmsnorm_forward(out, x, w, n, eps);
}
void vec_rmsnorm_backward(float *dx, const float *dout, const float *x, const float *w, float r,
                          int64_t n, int accumulate) {
    impl()->rmsnorm_backward(dx, dout, x, w, r, n, accumulate);
}
void vec_rmsnorm_dw(float *dw, const float *dout, const float *x, const float *r, int64_t N,
                    int64_t ld, int64_t j0, int64_t j1) {
    impl()->rmsnorm_dw(dw, dout, x, r, N, ld, j0, j1);
}
float vec_max(const float *x, int64_t n) { return impl()->max(x, n); }
float vec_exp_sum(float *y, const float *x, float scale, float shift, int64_t n) {
    return impl()->exp_sum(y, x, scale, shift, n);
}
void vec_scale(float *x, float s, int64_t n) { impl()->scale(x, s, n); }
