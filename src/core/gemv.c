/* gemv.c: the generic tile kernels, kernel selection and the threaded driver
 * of loom_gemv_nt (the AVX2 kernels are in gemv_avx2.c; contract in gemv.h).
 *
 * Loops, for y (M, N) (+)= x (M, K) W^T:
 *
 *   for each block of 8 rows of W (the unit the threads share out)
 *     M = 1:  one 1x8 tile
 *     else:   for each half of 4 W rows (4 x K floats, stays in L1)
 *               for the rows of x in tiles of 3 and 2 (M = 3a + 2b, fewest tiles)
 *                 one 3x4 or 2x4 tile
 *
 * so W is read from memory once per call and x (at most a few tens of KB)
 * from the caches. A block short of 8 rows passes its last row again in place
 * of the missing ones; their results are dropped. Each tile is also handed the
 * W rows of the next tile (the next 4 or 8 rows), which the AVX2 kernels
 * prefetch. Every output's summation order is fixed by K alone (gemv.h,
 * "Bits"), so none of this shows in the bits.
 */
#include "core/gemv.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>

#include "core/sgemm.h"

#ifndef GEMV_SERIAL_FMAS
#define GEMV_SERIAL_FMAS (1 << 17) /* below M*N*K this, a second thread costs more than it gives */
#endif
#define GEMV_BLOCK 8 /* rows of W per block */

/* ---- the generic kernel: plain C, the AVX2 kernels' arithmetic lane for lane ---- */

/* out[i*C + j] = x[i] . w[j] for i < R, j < C, summed as gemv.h states. */
static void tile_generic(int64_t K, const float *x, int64_t ldx, const float *const *w, float *out,
                         int R, int C) {
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            const float *xi = x + i * ldx, *wj = w[j];
            float l[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (int64_t k0 = 0; k0 < K; k0 += 8)
                for (int64_t t = 0; t < 8; t++) {
                    const int64_t k = k0 + t;
                    l[t] = k < K ? fmaf(xi[k], wj[k], l[t]) : fmaf(0.0f, 0.0f, l[t]);
                }
            out[i * C + j] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        }
}

static void kernel_generic_1x8(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out) {
    tile_generic(K, x, ldx, w, out, 1, 8);
}

static void kernel_generic_2x4(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out) {
    tile_generic(K, x, ldx, w, out, 2, 4);
}

static void kernel_generic_3x4(int64_t K, const float *x, int64_t ldx, const float *const *w,
                               const float *const *pf, float *out) {
    tile_generic(K, x, ldx, w, out, 3, 4);
}

typedef void (*gemv_tile_fn)(int64_t K, const float *x, int64_t ldx, const float *const *w,
                             const float *const *pf, float *out);

typedef struct gemv_impl {
    gemv_tile_fn k1x8, k2x4, k3x4;
} gemv_impl;

static const gemv_impl impl_generic = {kernel_generic_1x8, kernel_generic_2x4, kernel_generic_3x4};
static const gemv_impl impl_avx2 = {loom_gemv_kernel_avx2_1x8, loom_gemv_kernel_avx2_2x4,
                                    loom_gemv_kernel_avx2_3x4};

/* ---- kernel selection ----
 * The AVX2 kernels need what sgemm's do (AVX2 and FMA, enabled by the OS), and
 * sgemm already asks cpuid once per process and keeps the answer. */

int loom_gemv_kernel_available(loom_gemv_kernel k) {
    switch (k) {
    case LOOM_GEMV_KERNEL_AUTO:
    case LOOM_GEMV_KERNEL_GENERIC: return 1;
    case LOOM_GEMV_KERNEL_AVX2: return loom_sgemm_kernel_available(LOOM_SGEMM_KERNEL_AVX2);
    }
    return 0;
}

static loom_gemv_kernel resolve(loom_gemv_kernel k) {
    if (k != LOOM_GEMV_KERNEL_AUTO) return k;
    return loom_gemv_kernel_available(LOOM_GEMV_KERNEL_AVX2) ? LOOM_GEMV_KERNEL_AVX2
                                                             : LOOM_GEMV_KERNEL_GENERIC;
}

const char *loom_gemv_kernel_name(loom_gemv_kernel k) {
    switch (resolve(k)) {
    case LOOM_GEMV_KERNEL_GENERIC: return "generic";
    case LOOM_GEMV_KERNEL_AVX2: return "avx2";
    default: return "unknown";
    }
}

/* ---- the driver ---- */

/* y = s, y + s or fma(beta, y, s): the one place outputs are written. */
static inline float merge(float yv, float s, float beta) {
    if (beta == 0.0f) return s;
    if (beta == 1.0f) return yv + s;
    return fmaf(beta, yv, s);
}

/* Rows [m0, m0 + r) by columns [n0, n0 + c) of y from out (r, ldo). */
static void store_tile(float *y, int64_t ldy, int64_t m0, int64_t n0, const float *out, int64_t ldo,
                       int64_t r, int64_t c, float beta) {
    for (int64_t i = 0; i < r; i++) {
        float *yr = y + (m0 + i) * ldy + n0;
        for (int64_t j = 0; j < c; j++) yr[j] = merge(yr[j], out[i * ldo + j], beta);
    }
}

/* Columns [n0, n0 + nb) of y, nb <= GEMV_BLOCK: that block of W against all rows of x. */
static void gemv_block(const gemv_impl *im, int64_t M, int64_t N, int64_t n0, int64_t K,
                       const float *x, int64_t ldx, const float *W, int64_t ldw, float beta,
                       float *y, int64_t ldy) {
    const int64_t nb = N - n0 < GEMV_BLOCK ? N - n0 : GEMV_BLOCK;
    /* rows n0.. of this block, then of the next (to prefetch); past N: row N - 1 */
    const float *w[2 * GEMV_BLOCK];
    for (int64_t j = 0; j < 2 * GEMV_BLOCK; j++) w[j] = W + (n0 + j < N ? n0 + j : N - 1) * ldw;
    float out[GEMV_BLOCK * 3];
    if (M == 1) {
        im->k1x8(K, x, ldx, w, w + GEMV_BLOCK, out);
        store_tile(y, ldy, 0, n0, out, GEMV_BLOCK, 1, nb, beta);
        return;
    }
    /* M = 3a + 2b with b <= 2: threes, then one or two twos */
    const int64_t twos = M % 3 == 0 ? 0 : M % 3 == 2 ? 1 : 2, threes = (M - 2 * twos) / 3;
    for (int64_t h = 0; h < nb; h += 4) {
        const int64_t c = nb - h < 4 ? nb - h : 4;
        int64_t m0 = 0;
        for (int64_t t = 0; t < threes; t++, m0 += 3) {
            im->k3x4(K, x + m0 * ldx, ldx, w + h, w + h + 4, out);
            store_tile(y, ldy, m0, n0 + h, out, 4, 3, c, beta);
        }
        for (int64_t t = 0; t < twos; t++, m0 += 2) {
            im->k2x4(K, x + m0 * ldx, ldx, w + h, w + h + 4, out);
            store_tile(y, ldy, m0, n0 + h, out, 4, 2, c, beta);
        }
    }
}

/* Blocks [b0, b1). */
static void gemv_blocks(const gemv_impl *im, int64_t b0, int64_t b1, int64_t M, int64_t N,
                        int64_t K, const float *x, int64_t ldx, const float *W, int64_t ldw,
                        float beta, float *y, int64_t ldy) {
    for (int64_t b = b0; b < b1; b++)
        gemv_block(im, M, N, b * GEMV_BLOCK, K, x, ldx, W, ldw, beta, y, ldy);
}

int loom_gemv_nt_ex(loom_gemv_kernel kernel, int n_threads, int64_t M, int64_t N, int64_t K,
                    const float *x, int64_t ldx, const float *W, int64_t ldw, float beta, float *y,
                    int64_t ldy) {
    if (M < 0 || N < 0 || K < 0) return -1;
    if (!loom_gemv_kernel_available(kernel)) return -1;
    if (M == 0 || N == 0) return 0;
    if (!y || ldy < N) return -1;
    if (K > 0 && (!x || !W || ldx < K || ldw < K)) return -1;
    if (K == 0) { /* y = beta y */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                y[i * ldy + j] = beta == 0.0f ? 0.0f : beta * y[i * ldy + j];
        return 0;
    }
    const gemv_impl *im = resolve(kernel) == LOOM_GEMV_KERNEL_AVX2 ? &impl_avx2 : &impl_generic;

    const int64_t nblocks = (N + GEMV_BLOCK - 1) / GEMV_BLOCK;
    int nth = 1;
    if (!omp_in_parallel() && (double)M * (double)N * (double)K >= GEMV_SERIAL_FMAS) {
        nth = n_threads > 0 ? n_threads : omp_get_max_threads();
        if (nth > nblocks) nth = (int)nblocks;
        if (nth < 1) nth = 1;
    }
    if (nth == 1) { /* no OpenMP construct at all: even a team of one costs ~0.4 us */
        gemv_blocks(im, 0, nblocks, M, N, K, x, ldx, W, ldw, beta, y, ldy);
        return 0;
    }
#pragma omp parallel num_threads(nth)
    {
        /* each thread a contiguous run of blocks (the team may be smaller than asked for) */
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        gemv_blocks(im, nblocks * t / nt, nblocks * (t + 1) / nt, M, N, K, x, ldx, W, ldw, beta, y,
                    ldy);
    }
    return 0;
}

void loom_gemv_nt(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const float *W,
                  int64_t ldw, float beta, float *y, int64_t ldy) {
    (void)loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, 0, M, N, K, x, ldx, W, ldw, beta, y, ldy);
}
