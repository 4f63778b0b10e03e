/* sgemm.c: the blocked, packed, threaded driver around the micro-kernels.
 *
 * Loops (Goto/BLIS), for C (M, N) (+)= op(A) (M, K) op(B) (K, N):
 *
 *   for each B panel (jc, pc): N in NC steps, K in KC steps   (beta only on the first pc)
 *     pack B (kc, nc) as NR-wide micro-panels              shared: each thread packs a share
 *     for ic over this thread's rows, MC steps             A block (MC, KC): per thread, L2
 *       pack A (mc, kc) as MR-tall micro-panels
 *       for jr over nc in NR steps                         B micro-panel (KC, NR): L1
 *         for ir over mc in MR steps
 *           micro-kernel: C tile (MR, NR) (+)= A micro-panel x B micro-panel
 *
 * When a thread multiplies few B micro-panels (N <= 4*NR, e.g. attention's
 * per-head products), packing A would not pay: the kernel reads full A
 * micro-panels where they lie (it takes A's strides), only a partial one is packed.
 *
 * Threads: each takes a contiguous share of the rows of C (of the columns when
 * C has few rows; then each packs all of A). When all of B's packed panels fit
 * in SGEMM_PREPACK_FLOATS the team packs them all, meets at one barrier, and
 * multiplies without further synchronization (the fewer the meeting points, the
 * less a thread descheduled by other load holds up the others); else two panel
 * buffers are used in turn with a barrier per panel.
 *
 * Bits: each element of C is a chain of fused multiply-adds over k in order
 * inside a KC block, added block by block onto beta*C. KC depends only on K,
 * and partial edge tiles run the same kernel into a scratch tile (zero-padded
 * packing), so the result does not depend on the tile position, the thread
 * count or (kernels sharing KC) the kernel.
 */
#include "sgemm.h"

#include "gemm.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_kernel_fn)(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                                const float *b, float *c, int64_t ldc, float beta);
typedef void (*sgemm_pack_fn)(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                              int64_t kc);

/* One micro-kernel with its tile, blocking and packers. */
typedef struct sgemm_impl {
    int64_t mr, nr;          /* register tile, C (MR, NR) */
    int64_t mc, kc, nc;      /* cache blocks: A (MC, KC) in L2, B (KC, NC) in L3 */
    sgemm_kernel_fn kernel;
    sgemm_pack_fn pack_a;    /* writes MR-wide micro-panels */
    sgemm_pack_fn pack_b;    /* writes NR-wide micro-panels */
} sgemm_impl;

#define SGEMM_MAX_TILE (12 * 32) /* largest MR*NR of any kernel: the scratch edge tile */
#ifndef SGEMM_KC
#define SGEMM_KC 256             /* the same for every kernel, so all give the same bits */
#endif
#ifndef SGEMM_MC
#define SGEMM_MC 144             /* the AVX2 kernel's; -D overrides are for tuning */
#endif
#define SGEMM_NC 4096
#ifndef SGEMM_PREPACK_FLOATS
#define SGEMM_PREPACK_FLOATS (2 << 20) /* 8 MB: most of B packed at once when shared */
#endif
#ifndef SGEMM_A_IN_PLACE_NP
#define SGEMM_A_IN_PLACE_NP 4  /* at most this many B micro-panels: A not packed */
#endif
#ifndef SGEMM_SERIAL_FMAS
#define SGEMM_SERIAL_FMAS (1 << 19) /* below M*N*K this, a second thread costs more than it gives */
#endif

/* ---- the generic kernel: plain C, 12x32 (the AVX-512 tile shape) ---- */

static void kernel_generic_12x32(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                                 const float *b, float *c, int64_t ldc, float beta) {
    float acc[12][32];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < 12; i++)
            for (int j = 0; j < 32; j++)
                acc[i][j] = fmaf(a[i * a_rs + k * a_cs], b[k * 32 + j], acc[i][j]);
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 32; j++) {
            float *p = &c[i * ldc + j];
            if (beta == 0.0f) *p = acc[i][j];
            else if (beta == 1.0f) *p = *p + acc[i][j];
            else *p = fmaf(beta, *p, acc[i][j]);
        }
}

/* Any width W, any strides: dst (kc, W), dst[k*W + r] = src[r*rs + k*cs] for r < w, 0 after. */
static void pack_generic(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                         int64_t kc, int64_t W) {
    for (int64_t k = 0; k < kc; k++) {
        float *d = dst + k * W;
        for (int64_t r = 0; r < w; r++) d[r] = src[r * rs + k * cs];
        for (int64_t r = w; r < W; r++) d[r] = 0.0f;
    }
}

static void pack_generic_12(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                            int64_t kc) {
    pack_generic(dst, src, rs, cs, w, kc, 12);
}

static void pack_generic_32(float *dst, const float *src, int64_t rs, int64_t cs, int64_t w,
                            int64_t kc) {
    pack_generic(dst, src, rs, cs, w, kc, 32);
}

/* The tile shapes and blocks. KC = 256: an A micro-panel (6 x 256 floats, 6 KB)
 * and a B micro-panel (16 x 256, 16 KB) together fit Zen 3's 32 KB L1d; an A
 * block of MC = 144 rows (144 KB) sits in its 512 KB L2 beside the streamed B;
 * the B panel (KC, NC) stays in L3. The AVX-512 entries are not tuned (no such
 * machine here); keeping KC equal keeps every kernel's bits equal. */
static const sgemm_impl impl_generic = {
    .mr = 12, .nr = 32, .mc = 144, .kc = SGEMM_KC, .nc = SGEMM_NC,
    .kernel = kernel_generic_12x32, .pack_a = pack_generic_12, .pack_b = pack_generic_32};
static const sgemm_impl impl_avx2 = {
    .mr = 6, .nr = 16, .mc = SGEMM_MC, .kc = SGEMM_KC, .nc = SGEMM_NC,
    .kernel = loom_sgemm_kernel_avx2_6x16, .pack_a = loom_sgemm_pack_avx2_6,
    .pack_b = loom_sgemm_pack_avx2_16};
static const sgemm_impl impl_avx512 = {
    .mr = 12, .nr = 32, .mc = 144, .kc = SGEMM_KC, .nc = SGEMM_NC,
    .kernel = loom_sgemm_kernel_avx512_12x32, .pack_a = loom_sgemm_pack_avx2_12,
    .pack_b = loom_sgemm_pack_avx2_32};

/* ---- kernel selection: cpuid once, cached (the only static state) ---- */

static atomic_int best_kernel = -1; /* a loom_sgemm_kernel; AUTO means none: use OpenBLAS */

static loom_sgemm_kernel detect_best(void) {
    int v = atomic_load_explicit(&best_kernel, memory_order_relaxed);
    if (v >= 0) return (loom_sgemm_kernel)v;
    /* Idempotent: racing threads compute and store the same value. libgcc's
     * checks include the OS having enabled the YMM/ZMM state (XGETBV). */
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    /* the AVX-512 path packs with AVX2 (which every AVX-512 CPU has) */
    if (avx2 && __builtin_cpu_supports("avx512f")) v = LOOM_SGEMM_KERNEL_AVX512;
    else if (avx2) v = LOOM_SGEMM_KERNEL_AVX2;
    else v = LOOM_SGEMM_KERNEL_AUTO;
    atomic_store_explicit(&best_kernel, v, memory_order_relaxed);
    return (loom_sgemm_kernel)v;
}

int loom_sgemm_kernel_available(loom_sgemm_kernel k) {
    loom_sgemm_kernel best = detect_best();
    switch (k) {
    case LOOM_SGEMM_KERNEL_AUTO: return best != LOOM_SGEMM_KERNEL_AUTO;
    case LOOM_SGEMM_KERNEL_GENERIC: return 1;
    case LOOM_SGEMM_KERNEL_AVX2:
        return best == LOOM_SGEMM_KERNEL_AVX2 || best == LOOM_SGEMM_KERNEL_AVX512;
    case LOOM_SGEMM_KERNEL_AVX512: return best == LOOM_SGEMM_KERNEL_AVX512;
    }
    return 0;
}

const char *loom_sgemm_kernel_name(loom_sgemm_kernel k) {
    if (k == LOOM_SGEMM_KERNEL_AUTO) {
        k = detect_best();
        if (k == LOOM_SGEMM_KERNEL_AUTO) return "openblas";
    }
    switch (k) {
    case LOOM_SGEMM_KERNEL_GENERIC: return "generic";
    case LOOM_SGEMM_KERNEL_AVX2: return "avx2";
    case LOOM_SGEMM_KERNEL_AVX512: return "avx512";
    default: return "unknown";
    }
}

static const sgemm_impl *impl_for(loom_sgemm_kernel k) {
    if (k == LOOM_SGEMM_KERNEL_AUTO) k = detect_best();
    if (!loom_sgemm_kernel_available(k)) return NULL;
    switch (k) {
    case LOOM_SGEMM_KERNEL_GENERIC: return &impl_generic;
    case LOOM_SGEMM_KERNEL_AVX2: return &impl_avx2;
    case LOOM_SGEMM_KERNEL_AVX512: return &impl_avx512;
    default: return NULL;
    }
}

/* ---- the packing arena: one per calling thread, grown on demand ----
 * A thread's arena is freed when the thread exits (a pthread key's destructor):
 * servers call in from short-lived threads, one per connection. */

static _Thread_local float *arena_ptr;
static _Thread_local size_t arena_floats;
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;
static int arena_key_ok;

static void arena_key_make(void) { arena_key_ok = pthread_key_create(&arena_key, free) == 0; }

static float *arena_get(size_t n_floats) {
    if (n_floats <= arena_floats) return arena_ptr;
    if (n_floats > SIZE_MAX / sizeof(float) - 64) return NULL;
    pthread_once(&arena_once, arena_key_make);
    if (!arena_key_ok) return NULL;
    /* aligned_alloc wants a multiple of the alignment */
    size_t bytes = (n_floats * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    if (pthread_setspecific(arena_key, p)) {
        free(p);
        return NULL;
    }
    free(arena_ptr);
    arena_ptr = p;
    arena_floats = bytes / sizeof(float);
    return p;
}

void loom_sgemm_free_buffers(void) {
    if (arena_key_ok) pthread_setspecific(arena_key, NULL);
    free(arena_ptr);
    arena_ptr = NULL;
    arena_floats = 0;
}

/* ---- the driver ---- */

typedef struct sgemm_job {
    const sgemm_impl *im;
    int64_t M, N, K;
    const float *A; int64_t a_rs, a_cs; /* op(A)(i, k) = A[i*a_rs + k*a_cs] */
    const float *B; int64_t b_rs, b_cs; /* op(B)(k, j) = B[k*b_rs + j*b_cs] */
    float beta;
    float *C; int64_t ldc;
    int64_t kcb;          /* the K block: K split into equal blocks of at most im->kc */
    int64_t n_kb;         /* K blocks; B panel p is (K block p % n_kb, N block p / n_kb) */
    int64_t n_panels;
    float *bpack;         /* n_bslots slots of b_floats: packed B panels, shared */
    int64_t b_floats, n_bslots;
    float *apack;         /* one block of a_stride floats per thread: packed A */
    int64_t a_stride;
    int split_m;          /* threads split rows of C (else columns) */
} sgemm_job;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* C tile (m, n) of a partial edge: run the full kernel into a scratch tile and
 * merge with the same arithmetic the kernel uses on a full tile. */
static void edge_tile(const sgemm_impl *im, int64_t kc, const float *ap, int64_t a_rs, int64_t a_cs,
                      const float *bp, float *c, int64_t ldc, float beta, int64_t m, int64_t n) {
    _Alignas(64) float t[SGEMM_MAX_TILE];
    im->kernel(kc, ap, a_rs, a_cs, bp, t, im->nr, 0.0f);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float *p = &c[i * ldc + j];
            float v = t[i * im->nr + j];
            if (beta == 0.0f) *p = v;
            else if (beta == 1.0f) *p = *p + v;
            else *p = fmaf(beta, *p, v);
        }
}

/* This thread's share of B panel p: its micro-panels, packed into slot bp. */
static void pack_b_share(const sgemm_job *jb, int64_t p, float *bp, int tid, int nth) {
    const int64_t NR = jb->im->nr;
    const int64_t jc = p / jb->n_kb * jb->im->nc, pc = p % jb->n_kb * jb->kcb;
    const int64_t nc = min64(jb->N - jc, jb->im->nc), kc = min64(jb->K - pc, jb->kcb);
    const int64_t np = ceil_div(nc, NR);
    for (int64_t q = np * tid / nth; q < np * (tid + 1) / nth; q++) /* columns jc + q*NR .. */
        jb->im->pack_b(bp + q * kc * NR, jb->B + pc * jb->b_rs + (jc + q * NR) * jb->b_cs,
                       jb->b_cs, jb->b_rs, min64(nc - q * NR, NR), kc);
}

/* This thread's part of C += op(A) (rows [m0, m1), K block of p) times B panel p
 * (packed in bp), A packed MC rows at a time into ap. */
static void multiply_panel(const sgemm_job *jb, int64_t p, const float *bp, float *ap, int tid,
                           int nth, int64_t m0, int64_t m1, int64_t mc_blk) {
    const sgemm_impl *im = jb->im;
    const int64_t MR = im->mr, NR = im->nr;
    const int64_t jc = p / jb->n_kb * im->nc, pc = p % jb->n_kb * jb->kcb;
    const int64_t nc = min64(jb->N - jc, im->nc), kc = min64(jb->K - pc, jb->kcb);
    const int64_t np = ceil_div(nc, NR);
    const float beta = pc == 0 ? jb->beta : 1.0f;
    int64_t q0 = 0, q1 = np; /* the B micro-panels this thread multiplies */
    if (!jb->split_m) {
        q0 = np * tid / nth;
        q1 = np * (tid + 1) / nth;
    }
    /* Few B micro-panels to multiply: the A micro-panels would be used too few
     * times to repay packing them, so full ones are read where they are. */
    const int in_place = q1 - q0 <= SGEMM_A_IN_PLACE_NP;
    for (int64_t ic = m0; ic < m1; ic += mc_blk) {
        const int64_t mc = min64(m1 - ic, mc_blk), mp = ceil_div(mc, MR);
        for (int64_t r = 0; r < mp; r++)
            if (!in_place || mc - r * MR < MR)
                im->pack_a(ap + r * kc * MR, jb->A + (ic + r * MR) * jb->a_rs + pc * jb->a_cs,
                           jb->a_rs, jb->a_cs, min64(mc - r * MR, MR), kc);
        for (int64_t q = q0; q < q1; q++) {
            const float *bq = bp + q * kc * NR;
            const int64_t n = min64(nc - q * NR, NR);
            for (int64_t r = 0; r < mp; r++) {
                const int64_t m = min64(mc - r * MR, MR);
                const float *ar = ap + r * kc * MR;
                int64_t a_rs = 1, a_cs = MR;
                if (in_place && m == MR) {
                    ar = jb->A + (ic + r * MR) * jb->a_rs + pc * jb->a_cs;
                    a_rs = jb->a_rs, a_cs = jb->a_cs;
                }
                float *c = jb->C + (ic + r * MR) * jb->ldc + jc + q * NR;
                if (m == MR && n == NR) im->kernel(kc, ar, a_rs, a_cs, bq, c, jb->ldc, beta);
                else edge_tile(im, kc, ar, a_rs, a_cs, bq, c, jb->ldc, beta, m, n);
            }
        }
    }
}

/* Thread tid of nth runs its share. With nth > 1 it must be called by every
 * thread of an OpenMP team of exactly nth threads (it has barriers). */
static void sgemm_run(const sgemm_job *jb, int tid, int nth) {
    const int64_t MR = jb->im->mr;
    float *ap = jb->apack + (size_t)tid * (size_t)jb->a_stride;

    /* This thread's rows [m0, m1) (all of them if threads split columns), cut
     * into equal MC blocks. */
    int64_t m0 = 0, m1 = jb->M, mc_blk = 0;
    if (jb->split_m) {
        const int64_t mp = ceil_div(jb->M, MR);
        m0 = mp * tid / nth * MR;
        m1 = min64(mp * (tid + 1) / nth * MR, jb->M);
    }
    if (m1 > m0) {
        const int64_t nblk = ceil_div(m1 - m0, jb->im->mc);
        mc_blk = ceil_div(ceil_div(m1 - m0, nblk), MR) * MR;
    }

    if (jb->n_bslots == jb->n_panels) {
        /* A slot per panel: pack all of B, one barrier, then multiply undisturbed. */
        for (int64_t p = 0; p < jb->n_panels; p++)
            pack_b_share(jb, p, jb->bpack + p * jb->b_floats, tid, nth);
        if (nth > 1) {
#pragma omp barrier
        }
        for (int64_t p = 0; p < jb->n_panels; p++)
            multiply_panel(jb, p, jb->bpack + p * jb->b_floats, ap, tid, nth, m0, m1, mc_blk);
        return;
    }
    /* Slots in turn (2 when shared): a thread packing panel p has passed the
     * barrier of panel p - 1, so every thread is done with panel p - 2. */
    for (int64_t p = 0; p < jb->n_panels; p++) {
        float *bp = jb->bpack + p % jb->n_bslots * jb->b_floats;
        pack_b_share(jb, p, bp, tid, nth);
        if (nth > 1) {
#pragma omp barrier
        }
        multiply_panel(jb, p, bp, ap, tid, nth, m0, m1, mc_blk);
    }
}

/* C = beta C, for K == 0 (beta 0 writes zeros without reading C). */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

int loom_sgemm_ex(loom_sgemm_kernel kernel, int n_threads, int trans_a, int trans_b, int64_t M,
                  int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                  float beta, float *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 0) return -1;
    if (M == 0 || N == 0) return 0;
    if (!C || ldc < N) return -1;
    if (K > 0) {
        if (!A || !B) return -1;
        if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N)) return -1;
    }
    const sgemm_impl *im = impl_for(kernel);
    if (!im) return -1;
    if (K == 0) {
        scale_c(M, N, beta, C, ldc);
        return 0;
    }

    sgemm_job jb;
    jb.im = im;
    jb.M = M, jb.N = N, jb.K = K;
    jb.A = A, jb.a_rs = trans_a ? 1 : lda, jb.a_cs = trans_a ? lda : 1;
    jb.B = B, jb.b_rs = trans_b ? 1 : ldb, jb.b_cs = trans_b ? ldb : 1;
    jb.beta = beta;
    jb.C = C, jb.ldc = ldc;
    jb.kcb = ceil_div(K, ceil_div(K, im->kc));

    /* Threads: the team outside a parallel region, the caller alone inside one,
     * and alone for small products. */
    int nth = 1;
    if (!omp_in_parallel()) {
        nth = n_threads > 0 ? n_threads : omp_get_max_threads();
        if ((double)M * (double)N * (double)K < SGEMM_SERIAL_FMAS) nth = 1;
    }
    const int64_t mp = ceil_div(M, im->mr), np = ceil_div(N < im->nc ? N : im->nc, im->nr);
    jb.split_m = mp >= 4 * (int64_t)nth || mp >= np;
    int64_t parts = jb.split_m ? mp : np;
    if (nth > parts) nth = (int)parts;
    if (nth < 1) nth = 1;

    /* One arena, 64-byte aligned pieces: the B panel slots, then one A block per
     * thread. Threads that share B keep a slot per panel when that is not too
     * big (one barrier per call), else two used in turn (one barrier per panel). */
    jb.n_kb = ceil_div(K, jb.kcb);
    jb.n_panels = ceil_div(N, im->nc) * jb.n_kb;
    jb.b_floats = (jb.kcb * np * im->nr + 15) & ~(int64_t)15;
    jb.n_bslots = 1;
    if (nth > 1 && jb.n_panels > 1)
        jb.n_bslots = jb.n_panels * jb.b_floats <= SGEMM_PREPACK_FLOATS ? jb.n_panels : 2;
    jb.a_stride = (jb.kcb * ceil_div(im->mc, im->mr) * im->mr + 15) & ~(int64_t)15;
    float *arena =
        arena_get((size_t)(jb.n_bslots * jb.b_floats) + (size_t)nth * (size_t)jb.a_stride);
    if (!arena) return -1;
    jb.bpack = arena;
    jb.apack = arena + jb.n_bslots * jb.b_floats;

    if (nth == 1) {
        sgemm_run(&jb, 0, 1);
        return 0;
    }
#pragma omp parallel num_threads(nth)
    {
        /* The team may be smaller than asked for (OMP_DYNAMIC, thread limits). */
        sgemm_run(&jb, omp_get_thread_num(), omp_get_num_threads());
    }
    return 0;
}

/* The fixed-layout entry points: loom's kernel, else OpenBLAS. */
static void sgemm_or_openblas(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                              float *C, int64_t ldc) {
    if (!loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, 0, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta,
                       C, ldc))
        return;
    /* Failed: invalid arguments (leave C alone), or no kernel / no memory (OpenBLAS). */
    if (M <= 0 || N <= 0 || K < 0 || !C || ldc < N) return;
    if (K > 0 && (!A || !B || lda < (trans_a ? M : K) || ldb < (trans_b ? K : N))) return;
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldc > INT_MAX)
        return; /* beyond OpenBLAS's 32-bit sizes */
    if (trans_a) gemm_tn_blas(M, N, K, A, lda, B, ldb, beta, C, ldc);
    else if (trans_b) gemm_nt_blas(M, N, K, A, lda, B, ldb, beta, C, ldc);
    else gemm_nn_blas(M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void loom_sgemm_nt(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc) {
    sgemm_or_openblas(0, 1, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void loom_sgemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc) {
    sgemm_or_openblas(0, 0, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void loom_sgemm_tn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                   int64_t ldb, float beta, float *C, int64_t ldc) {
    sgemm_or_openblas(1, 0, M, N, K, A, lda, B, ldb, beta, C, ldc);
}
