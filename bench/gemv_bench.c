/* gemv_bench.c: loom_gemv_nt against OpenBLAS's sgemv and loom's packed sgemm on
 * the decoding shapes: y (M, N) = x (M, K) W^T, W (N, K), M = 1..16 sequences.
 *
 *   gemv_bench [--ms T] [--reps R] [--hot] [--threads LIST]
 *
 * For each weight shape (N, K) of the d_model 256 decoder (q/o/k/v, the GQA
 * k/v, gate/up, down, lm_head), each M in {1, 2, 4, 8, 16} and each thread
 * count (default 1 and 2), three ways to compute the same product:
 *   gemv   loom_gemv_nt_ex(AUTO, threads, ...)
 *   sgemv  cblas_sgemv once per row of x (M = 1: exactly what decoding runs
 *          today), OpenBLAS set to the same thread count
 *   sgemm  loom_sgemm_ex(AUTO, threads, nt, ...): what decoding runs today for M > 1
 * each product timed alone over R passes of T ms per way (default 3 x 10 ms,
 * about 5 s in all), the three ways alternating so that they see the same
 * background load; the median product is reported (a product preempted by
 * another process lands in the tail). One JSON line per case on stdout:
 * microseconds per product, GFLOP/s (2 M N K per product), GB/s of weights
 * (4 N K bytes per product), the number of products timed, and the max |diff|
 * between gemv and the other two (exit 1 if they disagree beyond 1e-5 * K).
 *
 * Weights: the model's ~19 MB do not fit in L2, so by default each call takes
 * the next of enough copies of W to make 19 MB (as a decoding step walks its
 * layers); --hot reuses one copy (W stays in L2 if it fits: the kernel's
 * ceiling). Other load on the machine skews the numbers (`uptime`).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "core/gemv.h"
#include "core/sgemm.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rand_buf(size_t n, uint32_t seed) {
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "gemv_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
    return p;
}

enum { WAY_GEMV, WAY_SGEMV, WAY_SGEMM, N_WAYS };
static const char *way_name[N_WAYS] = {"gemv", "sgemv", "sgemm"};

typedef struct bench_case {
    int64_t M, N, K;
    int nth;
    const float *W; /* n_copies copies of (N, K), one after the other */
    int64_t n_copies;
    const float *x; /* (M, K) */
    float *y[N_WAYS]; /* (M, N) each */
} bench_case;

static void run_one(const bench_case *c, int way, int64_t copy) {
    const int64_t M = c->M, N = c->N, K = c->K;
    const float *W = c->W + copy * N * K;
    float *y = c->y[way];
    if (way == WAY_GEMV) {
        loom_gemv_nt_ex(LOOM_GEMV_KERNEL_AUTO, c->nth, M, N, K, c->x, K, W, K, 0.0f, y, N);
    } else if (way == WAY_SGEMV) {
        for (int64_t m = 0; m < M; m++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)N, (blasint)K, 1.0f, W, (blasint)K,
                        c->x + m * K, 1, 0.0f, y + m * N, 1);
    } else {
        loom_sgemm_ex(LOOM_SGEMM_KERNEL_AUTO, c->nth, 0, 1, M, N, K, c->x, K, W, K, 0.0f, y, N);
    }
}

/* One pass: products until min_s has elapsed, each timed alone into t[*n]
 * (up to cap), cycling through the copies. */
static void run_pass(const bench_case *c, int way, double min_s, int64_t *copy, double *t,
                     int64_t *n, int64_t cap) {
    const double t0 = now_s();
    double t1 = t0;
    while (t1 - t0 < min_s && *n < cap) {
        run_one(c, way, *copy);
        const double t2 = now_s();
        t[(*n)++] = t2 - t1;
        t1 = t2;
        *copy = *copy + 1 == c->n_copies ? 0 : *copy + 1;
    }
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int64_t n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double d = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = e; /* NaN sticks */
    }
    return d;
}

int main(int argc, char **argv) {
    double min_ms = 10.0;
    int reps = 3, hot = 0, threads[8] = {1, 2}, n_threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ms") && i + 1 < argc) {
            min_ms = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--hot")) {
            hot = 1;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = 0;
            for (char *s = argv[++i], *end; *s && n_threads < 8; s = *end ? end + 1 : end) {
                threads[n_threads++] = (int)strtol(s, &end, 10);
                if (end == s) break;
            }
        } else {
            fprintf(stderr, "usage: gemv_bench [--ms T] [--reps R] [--hot] [--threads LIST]\n"
                            "  best of R passes (default 3) of at least T ms (default 10) per way;\n"
                            "  --hot: one copy of W (else copies making 19 MB, as the model);\n"
                            "  LIST: thread counts, comma separated (default 1,2)\n");
            return 2;
        }
    }
    if (!(min_ms > 0) || reps < 1 || n_threads < 1) {
        fprintf(stderr, "gemv_bench: bad argument\n");
        return 2;
    }
    for (int t = 0; t < n_threads; t++)
        if (threads[t] < 1) {
            fprintf(stderr, "gemv_bench: bad thread count\n");
            return 2;
        }
    setvbuf(stdout, NULL, _IOLBF, 0);
    fprintf(stderr, "gemv_bench: gemv kernel %s, sgemm kernel %s, %s; %d cores; weights %s\n",
            loom_gemv_kernel_name(LOOM_GEMV_KERNEL_AUTO),
            loom_sgemm_kernel_name(LOOM_SGEMM_KERNEL_AUTO), openblas_get_config(),
            omp_get_num_procs(), hot ? "hot (one copy)" : "cold (copies making 19 MB)");

    static const int64_t shapes[][2] = {{256, 256}, {128, 256}, {688, 256}, {256, 688}, {958, 256}};
    static const int64_t Ms[] = {1, 2, 4, 8, 16};
    const int64_t model_bytes = 19 << 20;
    enum { TIMES_CAP = 1 << 18 };
    static double times[N_WAYS][TIMES_CAP];
    int bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t N = shapes[s][0], K = shapes[s][1];
        int64_t n_copies = hot ? 1 : (model_bytes + 4 * N * K - 1) / (4 * N * K);
        float *W = rand_buf((size_t)(n_copies * N * K), 12345u + (uint32_t)s);
        float *x = rand_buf((size_t)(16 * K), 777u);
        for (size_t im = 0; im < sizeof Ms / sizeof Ms[0]; im++)
            for (int t = 0; t < n_threads; t++) {
                bench_case c = {.M = Ms[im], .N = N, .K = K, .nth = threads[t], .W = W,
                                .n_copies = n_copies, .x = x};
                for (int w = 0; w < N_WAYS; w++) c.y[w] = rand_buf((size_t)(c.M * N), 1u);
                omp_set_num_threads(c.nth);
                openblas_set_num_threads(c.nth);
                /* the three agree (copy 0) */
                for (int w = 0; w < N_WAYS; w++) run_one(&c, w, 0);
                const double d_sgemv = max_abs_diff(c.y[WAY_GEMV], c.y[WAY_SGEMV], c.M * N);
                const double d_sgemm = max_abs_diff(c.y[WAY_GEMV], c.y[WAY_SGEMM], c.M * N);
                if (!(d_sgemv <= 1e-5 * (double)K && d_sgemm <= 1e-5 * (double)K)) bad = 1;
                /* warm up, then R passes per way, the ways alternating */
                int64_t copy = 0, n[N_WAYS] = {0, 0, 0};
                for (int w = 0; w < N_WAYS; w++) {
                    int64_t nw = 0;
                    run_pass(&c, w, 1e-3, &copy, times[w], &nw, TIMES_CAP);
                }
                for (int r = 0; r < reps; r++)
                    for (int w = 0; w < N_WAYS; w++)
                        run_pass(&c, w, min_ms * 1e-3, &copy, times[w], &n[w], TIMES_CAP);
                double best[N_WAYS]; /* the median product */
                for (int w = 0; w < N_WAYS; w++) best[w] = median(times[w], n[w]);
                const double flops = 2.0 * (double)c.M * (double)N * (double)K,
                             wbytes = 4.0 * (double)N * (double)K;
                printf("{\"N\": %ld, \"K\": %ld, \"M\": %ld, \"threads\": %d, \"weights\": \"%s\"",
                       (long)N, (long)K, (long)c.M, c.nth, hot ? "hot" : "cold");
                for (int w = 0; w < N_WAYS; w++)
                    printf(", \"%s_us\": %.2f, \"%s_gflops\": %.2f, \"%s_gbs\": %.2f, \"%s_n\": %ld",
                           way_name[w], best[w] * 1e6, way_name[w], flops / best[w] * 1e-9,
                           way_name[w], wbytes / best[w] * 1e-9, way_name[w], (long)n[w]);
                printf(", \"speedup_vs_sgemv\": %.2f, \"speedup_vs_sgemm\": %.2f, "
                       "\"max_diff_sgemv\": %.3g, \"max_diff_sgemm\": %.3g}\n",
                       best[WAY_SGEMV] / best[WAY_GEMV], best[WAY_SGEMM] / best[WAY_GEMV], d_sgemv,
                       d_sgemm);
                for (int w = 0; w < N_WAYS; w++) free(c.y[w]);
            }
        free(W), free(x);
    }
    loom_sgemm_free_buffers();
    if (bad) {
        fprintf(stderr, "gemv_bench: gemv and OpenBLAS/sgemm disagree (max_diff above): numbers void\n");
        return 1;
    }
    return 0;
}
