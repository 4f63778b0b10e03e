/* vec_avx2.c: AVX2+FMA versions of the vec.h kernels.
 *
 * Compiled for AVX2+FMA whatever the build flags (the target pragma below)
 * and called only after cpuid said the CPU has both (vec.c). Tails shorter
 * than a vector go through a small buffer so every element takes the same
 * arithmetic path. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "core/vec_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

/* exp(x) for 8 lanes: x = k ln2 + r with |r| <= ln2/2 (ln2 split in two for
 * an exact reduction), exp(r) by a degree-6 polynomial (Cephes expf's
 * coefficients), times 2^k built in the exponent bits. x is clamped to
 * [-87.33, 88.37] so 2^k stays a normal float; NaN stays NaN. */
static inline __m256 exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
    x = _mm256_max_ps(lo, _mm256_min_ps(hi, x)); /* operand order keeps NaN */
    __m256 k = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f),
                                               _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 sigmoid8(__m256 g) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 load_tail(const float *p, int64_t n) {
    float buf[8] = {0};
    memcpy(buf, p, (size_t)n * sizeof(float));
    return _mm256_loadu_ps(buf);
}

static inline void store_tail(float *p, __m256 v, int64_t n) {
    float buf[8];
    _mm256_storeu_ps(buf, v);
    memcpy(p, buf, (size_t)n * sizeof(float));
}

static void swiglu_forward_avx2(float *act, const float *gate, const float *up, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        _mm256_storeu_ps(act + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), _mm256_loadu_ps(up + i)));
    }
    if (i < n) {
        __m256 g = load_tail(gate + i, n - i);
        store_tail(act + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), load_tail(up + i, n - i)),
                   n - i);
    }
}

static inline void swiglu_back8(__m256 d, __m256 g, __m256 u, __m256 *dg, __m256 *du) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 s = sigmoid8(g);
    *du = _mm256_mul_ps(_mm256_mul_ps(d, g), s);
    /* d * u * s * (1 + g (1 - s)) */
    __m256 t = _mm256_fmadd_ps(g, _mm256_sub_ps(one, s), one);
    *dg = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, u), s), t);
}

static void swiglu_backward_avx2(float *dgate, float *dup, const float *dact, const float *gate,
                                 const float *up, int64_t n) {
    int64_t i = 0;
    __m256 dg, du;
    for (; i + 8 <= n; i += 8) {
        swiglu_back8(_mm256_loadu_ps(dact + i), _mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i),
                     &dg, &du);
        _mm256_storeu_ps(dgate + i, dg);
        _mm256_storeu_ps(dup + i, du);
    }
    if (i < n) {
        int64_t m = n - i;
        swiglu_back8(load_tail(dact + i, m), load_tail(gate + i, m), load_tail(up + i, m), &dg, &du);
        store_tail(dgate + i, dg, m);
        store_tail(dup + i, du, m);
    }
}

/* sum of a[j] * b[j] (* c[j] when c) */
static float dot_avx2(const float *a, const float *b, const float *c, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 p0 = _mm256_mul_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j));
        __m256 p1 = _mm256_mul_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8));
        if (c) {
            s0 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(c + j), s0);
            s1 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(c + j + 8), s1);
        } else {
            s0 = _mm256_add_ps(s0, p0);
            s1 = _mm256_add_ps(s1, p1);
        }
    }
    for (; j < n; j += 8) {
        int64_t m = n - j < 8 ? n - j : 8;
        __m256 p = _mm256_mul_ps(load_tail(a + j, m), load_tail(b + j, m));
        s0 = c ? _mm256_fmadd_ps(p, load_tail(c + j, m), s0) : _mm256_add_ps(s0, p);
    }
    return hsum8(_mm256_add_ps(s0, s1));
}

static float rmsnorm_forward_avx2(float *out, const float *x, const float *w, int64_t n, float eps) {
    float r = 1.0f / sqrtf(dot_avx2(x, x, NULL, n) / (float)n + eps);
    __m256 rv = _mm256_set1_ps(r);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), rv),
                                                _mm256_loadu_ps(w + j)));
    for (; j < n; j++) out[j] = x[j] * r * w[j];
    return r;
}

static void rmsnorm_backward_avx2(float *dx, const float *dout, const float *x, const float *w,
                                  float r, int64_t n, int accumulate) {
    float k = dot_avx2(w, dout, x, n) * r * r * r / (float)n;
    __m256 rv = _mm256_set1_ps(r), kv = _mm256_set1_ps(k);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 t = _mm256_mul_ps(_mm256_mul_ps(rv, _mm256_loadu_ps(w + j)), _mm256_loadu_ps(dout + j));
        t = _mm256_fnmadd_ps(kv, _mm256_loadu_ps(x + j), t);
        if (accumulate) t = _mm256_add_ps(_mm256_loadu_ps(dx + j), t);
        _mm256_storeu_ps(dx + j, t);
    }
    for (; j < n; j++) {
        float t = r * w[j] * dout[j] - k * x[j];
        dx[j] = accumulate ? dx[j] + t : t;
    }
}

static void rmsnorm_dw_avx2(float *dw, const float *dout, const float *x, const float *r,
                            int64_t N, int64_t ld, int64_t j0, int64_t j1) {
    int64_t j = j0;
    for (; j + 32 <= j1; j += 32) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t i = 0; i < N; i++) {
            const float *d = dout + i * ld + j, *xi = x + i * ld + j;
            __m256 ri = _mm256_set1_ps(r[i]);
            s0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(d), _mm256_loadu_ps(xi)), ri, s0);
            s1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(d + 8), _mm256_loadu_ps(xi + 8)), ri, s1);
            s2 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(d + 16), _mm256_loadu_ps(xi + 16)), ri, s2);
            s3 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(d + 24), _mm256_loadu_ps(xi + 24)), ri, s3);
        }
        _mm256_storeu_ps(dw + j, _mm256_add_ps(_mm256_loadu_ps(dw + j), s0));
        _mm256_storeu_ps(dw + j + 8, _mm256_add_ps(_mm256_loadu_ps(dw + j + 8), s1));
        _mm256_storeu_ps(dw + j + 16, _mm256_add_ps(_mm256_loadu_ps(dw + j + 16), s2));
        _mm256_storeu_ps(dw + j + 24, _mm256_add_ps(_mm256_loadu_ps(dw + j + 24), s3));
    }
    for (; j < j1; j += 8) {
        int64_t m = j1 - j < 8 ? j1 - j : 8;
        __m256 s = _mm256_setzero_ps();
        for (int64_t i = 0; i < N; i++)
            s = _mm256_fmadd_ps(_mm256_mul_ps(load_tail(dout + i * ld + j, m), load_tail(x + i * ld + j, m)),
                                _mm256_set1_ps(r[i]), s);
        store_tail(dw + j, _mm256_add_ps(load_tail(dw + j, m), s), m);
    }
}

static float max_avx2(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

static float exp_sum_avx2(float *y, const float *x, float scale, float shift, int64_t n) {
    const __m256 sc = _mm256_set1_ps(scale), sh = _mm256_set1_ps(shift);
    __m256 s = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), sc, sh));
        if (y) _mm256_storeu_ps(y + i, e);
        s = _mm256_add_ps(s, e);
    }
    float sum = hsum8(s);
    if (i < n) {
        float buf[8];
        _mm256_storeu_ps(buf, exp8(_mm256_fmsub_ps(load_tail(x + i, n - i), sc, sh)));
        for (int64_t t = 0; t < n - i; t++) {
            if (y) y[i + t] = buf[t];
            sum += buf[t];
        }
    }
    return sum;
}

static void scale_avx2(float *x, float s, int64_t n) {
    __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), sv));
    for (; i < n; i++) x[i] *= s;
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

const vec_impl vec_impl_avx2 = {
    .name = "avx2", .swiglu_forward = swiglu_forward_avx2, .swiglu_backward = swiglu_backward_avx2,
    .rmsnorm_forward = rmsnorm_forward_avx2, .rmsnorm_backward = rmsnorm_backward_avx2,
    .rmsnorm_dw = rmsnorm_dw_avx2, .max = max_avx2, .exp_sum = exp_sum_avx2, .scale = scale_avx2};
