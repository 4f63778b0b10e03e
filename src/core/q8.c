/* q8.c: quantizing, the reference product, kernel selection and the threaded
 * driver around the SIMD micro-kernels (q8_avx2.c, q8_avx512.c). */
#include "core/q8.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stddef.h>

#ifndef Q8_SERIAL_MACS
#define Q8_SERIAL_MACS (1 << 17) /* below M*N*KP this, a second thread costs more than it gives */
#endif

int q8_group_check(int64_t G, loom_error *err) {
    if (G < Q8_GROUP_MIN || G > Q8_GROUP_MAX || G % 32 != 0)
        return loom_error_set(err, "group size %lld must be a multiple of 32 in [%d, %d]",
                              (long long)G, Q8_GROUP_MIN, Q8_GROUP_MAX);
    return 0;
}

int64_t q8_padded(int64_t K, int64_t G) { return (K + G - 1) / G * G; }

/* round(v) for |v| <= 127 (half away from zero), NaN -> 0: a cast, not a libm call */
static inline int8_t q8_round(float v) {
    if (!(v == v)) return 0;
    if (v > (float)Q8_MAX) v = (float)Q8_MAX;
    if (v < -(float)Q8_MAX) v = -(float)Q8_MAX;
    return (int8_t)(int32_t)(v >= 0.0f ? v + 0.5f : v - 0.5f);
}

/* One group: the n <= G values of x -> q (G, zeros after n), *d. */
static void quantize_group(int8_t *q, float *d, const float *x, int64_t n, int64_t G) {
    float amax = 0.0f;
    for (int64_t k = 0; k < n; k++) {
        const float a = fabsf(x[k]);
        if (a > amax) amax = a; /* a NaN never compares greater */
    }
    const float id = amax > 0.0f ? (float)Q8_MAX / amax : 0.0f;
    *d = amax / (float)Q8_MAX;
    for (int64_t k = 0; k < n; k++) q[k] = q8_round(x[k] * id);
    for (int64_t k = n; k < G; k++) q[k] = 0;
}

/* simd: 1 to quantize full groups with AVX2 */
static void quantize_rows(int8_t *q, float *d, const float *x, int64_t M, int64_t K, int64_t ldx,
                          int32_t G, int simd) {
    const int64_t KP = q8_padded(K, G), ng = KP / G;
    for (int64_t m = 0; m < M; m++)
        for (int64_t g = 0; g < ng; g++) {
            const int64_t n = K - g * G < G ? K - g * G : G;
            int8_t *qg = q + m * KP + g * G;
            const float *xg = x + m * ldx + g * G;
            if (simd && n == G) q8_quantize_group_avx2(qg, d + m * ng + g, xg, G);
            else quantize_group(qg, d + m * ng + g, xg, n, G);
        }
}

void q8_quantize_ref(int8_t *q, float *d, const float *x, int64_t M, int64_t K, int64_t ldx,
                     int32_t G) {
    quantize_rows(q, d, x, M, K, ldx, G, 0);
}

void q8_dequantize(float *x, const int8_t *q, const float *d, int64_t M, int64_t K, int32_t G) {
    const int64_t KP = q8_padded(K, G), ng = KP / G;
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) x[m * K + k] = (float)q[m * KP + k] * d[m * ng + k / G];
}

void q8_matmul_ref(float *y, int64_t ldy, const int8_t *xq, const float *xd, int64_t M,
                   const int8_t *wq, const float *wd, int64_t N, int64_t KP, int32_t G, float beta) {
    const int64_t ng = KP / G;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0.0;
            for (int64_t g = 0; g < ng; g++) {
                int32_t is = 0;
                for (int64_t k = g * G; k < (g + 1) * G; k++)
                    is += (int32_t)xq[m * KP + k] * (int32_t)wq[n * KP + k];
                s += (double)xd[m * ng + g] * (double)wd[n * ng + g] * (double)is;
            }
            float *p = &y[m * ldy + n];
            *p = beta == 0.0f ? (float)s : (float)((double)beta * *p + s);
        }
}

/* ---- kernel selection: cpuid once, cached ---- */

static atomic_int best_kernel = -1; /* a q8_kernel */

static q8_kernel detect_best(void) {
    int v = atomic_load_explicit(&best_kernel, memory_order_relaxed);
    if (v >= 0) return (q8_kernel)v;
    /* idempotent: racing threads store the same value. libgcc's checks include
     * the OS having enabled the YMM/ZMM state. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vnni"))
        v = Q8_KERNEL_AVX512VNNI;
    else if (__builtin_cpu_supports("avx2"))
        v = Q8_KERNEL_AVX2;
    else
        v = Q8_KERNEL_REF;
    atomic_store_explicit(&best_kernel, v, memory_order_relaxed);
    return (q8_kernel)v;
}

void q8_quantize(int8_t *q, float *d, const float *x, int64_t M, int64_t K, int64_t ldx, int32_t G) {
    quantize_rows(q, d, x, M, K, ldx, G, q8_kernel_available(Q8_KERNEL_AVX2));
}

int q8_kernel_available(q8_kernel k) {
    const q8_kernel best = detect_best();
    switch (k) {
    case Q8_KERNEL_AUTO:
    case Q8_KERNEL_REF: return 1;
    case Q8_KERNEL_AVX2: return best == Q8_KERNEL_AVX2 || best == Q8_KERNEL_AVX512VNNI;
    case Q8_KERNEL_AVX512VNNI: return best == Q8_KERNEL_AVX512VNNI;
    }
    return 0;
}

const char *q8_kernel_name(q8_kernel k) {
    if (k == Q8_KERNEL_AUTO) k = detect_best();
    switch (k) {
    case Q8_KERNEL_REF: return "ref";
    case Q8_KERNEL_AVX2: return "avx2";
    case Q8_KERNEL_AVX512VNNI: return "avx512vnni";
    default: return "unknown";
    }
}

/* ---- the driver ---- */

typedef void (*q8_kernel_fn)(const int8_t *x, const float *xd, const int8_t *const w[4],
                             const float *const wd[4], int64_t KP, int32_t G, float out[4]);

/* Tiles of 4 rows of W, split among the threads; each tile (4 x KP int8, in
 * L1) meets every row of X in turn. */
static void run_tiles(q8_kernel_fn kern, int nth, float *y, int64_t ldy, const int8_t *xq,
                      const float *xd, int64_t M, const int8_t *wq, const float *wd, int64_t N,
                      int64_t KP, int32_t G, float beta) {
    const int64_t ng = KP / G, ntiles = (N + 3) / 4;
#pragma omp parallel for schedule(static) num_threads(nth) if(nth > 1)
    for (int64_t t = 0; t < ntiles; t++) {
        const int64_t n0 = t * 4, nr = N - n0 < 4 ? N - n0 : 4;
        const int8_t *w[4];
        const float *d[4];
        for (int64_t i = 0; i < 4; i++) { /* a short tail repeats its last row */
            const int64_t r = n0 + (i < nr ? i : nr - 1);
            w[i] = wq + r * KP;
            d[i] = wd + r * ng;
        }
        for (int64_t m = 0; m < M; m++) {
            float out[4];
            kern(xq + m * KP, xd + m * ng, w, d, KP, G, out);
            float *yr = y + m * ldy + n0;
            for (int64_t i = 0; i < nr; i++) yr[i] = beta == 0.0f ? out[i] : beta * yr[i] + out[i];
        }
    }
}

int q8_matmul_ex(q8_kernel k, int n_threads, float *y, int64_t ldy, const int8_t *xq,
                 const float *xd, int64_t M, const int8_t *wq, const float *wd, int64_t N,
                 int64_t KP, int32_t G, float beta) {
    if (M < 0 || N < 0 || KP < 0 || q8_group_check(G, NULL) || KP % G != 0 || ldy < N)
        return -1;
    if (k == Q8_KERNEL_AUTO) k = detect_best();
    if (!q8_kernel_available(k)) return -1;
    if (M == 0 || N == 0) return 0;
    if (k == Q8_KERNEL_REF) {
        q8_matmul_ref(y, ldy, xq, xd, M, wq, wd, N, KP, G, beta);
        return 0;
    }
    int nth = n_threads > 0 ? n_threads : omp_get_max_threads();
    if (omp_in_parallel() || (double)M * (double)N * (double)KP < Q8_SERIAL_MACS) nth = 1;
    const int64_t ntiles = (N + 3) / 4;
    if (nth > ntiles) nth = (int)ntiles;
    run_tiles(k == Q8_KERNEL_AVX2 ? q8_kernel_avx2_1x4 : q8_kernel_avx512vnni_1x4, nth, y, ldy, xq,
              xd, M, wq, wd, N, KP, G, beta);
    return 0;
}

void q8_matmul(float *y, int64_t ldy, const int8_t *xq, const float *xd, int64_t M,
               const int8_t *wq, const float *wd, int64_t N, int64_t KP, int32_t G, float beta) {
    (void)q8_matmul_ex(Q8_KERNEL_AUTO, 0, y, ldy, xq, xd, M, wq, wd, N, KP, G, beta);
}
