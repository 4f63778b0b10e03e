#include "encoders/mel.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#define N_FREQ (MEL_N_FFT / 2 + 1) /* 201 */
#define MEL_PI 3.14159265358979323846
/* Frames per block of the fast path: one block is one unit of OpenMP work,
 * its power spectra (N_FREQ, TB) stay in L1 (25 KB), and it is written out
 * as MEL_BINS rows of TB contiguous floats. Even: frames go through the FFT
 * in pairs. 32 rather than 16: the mel stage's rows are then four AVX2
 * vectors, not two (a third less time for the stage, measured). */
#define TB 32

/* ---- the Slaney mel scale and filterbank (librosa's formula) ---- */

static double hz_to_mel(double f) {
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0;
    return f < min_log_hz ? f / f_sp : min_log_mel + log(f / min_log_hz) / logstep;
}

static double mel_to_hz(double m) {
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0;
    return m < min_log_mel ? f_sp * m : min_log_hz * exp(logstep * (m - min_log_mel));
}

void mel_filters(double *w) {
    double mel_f[MEL_BINS + 2], fft_f[N_FREQ];
    const double lo = hz_to_mel(0.0), hi = hz_to_mel(MEL_RATE / 2.0);
    for (int i = 0; i < MEL_BINS + 2; i++) mel_f[i] = mel_to_hz(lo + (hi - lo) * i / (MEL_BINS + 1));
    for (int k = 0; k < N_FREQ; k++) fft_f[k] = (double)k * (MEL_RATE / 2.0) / (N_FREQ - 1);
    for (int i = 0; i < MEL_BINS; i++) {
        const double d0 = mel_f[i + 1] - mel_f[i], d1 = mel_f[i + 2] - mel_f[i + 1];
        const double enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (int k = 0; k < N_FREQ; k++) {
            double lower = (fft_f[k] - mel_f[i]) / d0, upper = (mel_f[i + 2] - fft_f[k]) / d1;
            double v = lower < upper ? lower : upper;
            w[i * N_FREQ + k] = (v > 0.0 ? v : 0.0) * enorm;
        }
    }
}

/* ---- shared read-only state, made once per process ----
 *
 * FFTW's planner is not thread-safe (and there is one per precision per
 * process), so both plans are made under a once guard; afterwards they are
 * only executed, through the new-array functions, on buffers owned by the
 * caller's thread, which FFTW allows from any number of threads at once. */

static struct {
    /* the naive reference (mel_compute_ref): double precision, dense */
    double window[MEL_N_FFT];       /* (MEL_N_FFT) periodic Hann */
    double filt[MEL_BINS * N_FREQ]; /* (MEL_BINS, N_FREQ) mel_filters */
    fftw_plan plan;                 /* r2c of MEL_N_FFT doubles */
    /* the fast path (mel_compute): sparse filterbank, float after the FFT */
    int32_t start[MEL_BINS];   /* filter m is nonzero over bins [start, start + len) */
    int32_t len[MEL_BINS];
    int32_t off[MEL_BINS];     /* its weights are wq[off .. off + len) */
    float wq[MEL_BINS * N_FREQ]; /* (nnz) packed nonzero weights, times 1/4 (below) */
    fftw_plan planc;           /* complex DFT of MEL_N_FFT: two real frames at once */
    int ok;
} g_mel;
static pthread_once_t g_mel_once = PTHREAD_ONCE_INIT;

static void mel_init(void) {
    for (int i = 0; i < MEL_N_FFT; i++) /* periodic Hann, as torch.hann_window */
        g_mel.window[i] = 0.5 - 0.5 * cos(2.0 * MEL_PI * i / MEL_N_FFT);
    mel_filters(g_mel.filt);
    int32_t nnz = 0;
    for (int m = 0; m < MEL_BINS; m++) {
        int lo = N_FREQ, hi = 0;
        for (int k = 0; k < N_FREQ; k++)
            if (g_mel.filt[m * N_FREQ + k] != 0.0) {
                if (k < lo) lo = k;
                hi = k + 1;
            }
        if (lo >= hi) lo = hi = 0; /* an empty filter (none at these parameters) */
        g_mel.start[m] = lo, g_mel.len[m] = hi - lo, g_mel.off[m] = nnz;
        /* the 1/4 is the unpacking of two real spectra from one complex one */
        for (int k = lo; k < hi; k++) g_mel.wq[nnz++] = (float)(0.25 * g_mel.filt[m * N_FREQ + k]);
    }

    double *in = fftw_malloc(MEL_N_FFT * sizeof *in);
    fftw_complex *out = fftw_malloc(N_FREQ * sizeof *out);
    if (in && out)
        g_mel.plan = fftw_plan_dft_r2c_1d(MEL_N_FFT, in, out, FFTW_ESTIMATE | FFTW_UNALIGNED);
    fftw_free(in);
    fftw_free(out);
    /* FFTW_ESTIMATE, not MEASURE: the plan (and so every rounding) is the same
     * in every run, and planning takes milliseconds, not a tenth of a second. */
    fftw_complex *cin = fftw_malloc(MEL_N_FFT * sizeof *cin), *cout = fftw_malloc(MEL_N_FFT * sizeof *cout);
    if (cin && cout) g_mel.planc = fftw_plan_dft_1d(MEL_N_FFT, cin, cout, FFTW_FORWARD, FFTW_ESTIMATE);
    /* execution on other arrays needs the alignment the plan was made with
     * (fftw_malloc's, which fftw_alignment_of calls 0); the fast path's
     * buffers are aligned to 64 bytes, a multiple of any FFTW asks for */
    const int aligned = cin && cout && fftw_alignment_of((double *)cin) == 0 &&
                        fftw_alignment_of((double *)cout) == 0;
    fftw_free(cin);
    fftw_free(cout);
    g_mel.ok = g_mel.plan != NULL && g_mel.planc != NULL && aligned;
}

int64_t mel_frames(int64_t n) { return n > 0 ? n / MEL_HOP : 0; }

/* Sample i of x reflect-padded on each side (torch's "reflect": the edge
 * sample is not repeated). Valid for -n < i < 2n - 1. */
static inline float reflect_at(const float *x, int64_t n, int64_t i) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return x[i];
}

static int mel_check(int64_t n, loom_error *err) {
    const int64_t pad = MEL_N_FFT / 2;
    if (n <= pad)
        return loom_error_set(err, "audio of %lld samples is too short for a spectrogram (need > %lld, %.1f ms)",
                              (long long)n, (long long)pad, 1000.0 * (pad + 1) / MEL_RATE);
    if ((uint64_t)n > (uint64_t)SIZE_MAX / (MEL_BINS * sizeof(double)))
        return loom_error_set(err, "audio of %lld samples is too long", (long long)n);
    pthread_once(&g_mel_once, mel_init);
    if (!g_mel.ok) return loom_error_set(err, "FFTW could not make a plan");
    return 0;
}

/* ---- the naive reference: one frame at a time, double precision, dense
 * filterbank, libm's log10. Kept as the oracle for the fast path below. ---- */

int mel_compute_ref(const float *x, int64_t n, float *out, loom_error *err) {
    if (mel_check(n, err)) return -1;
    const int64_t pad = MEL_N_FFT / 2, T = mel_frames(n);
    double *frame = malloc(MEL_N_FFT * sizeof *frame), *power = malloc(N_FREQ * sizeof *power);
    fftw_complex *spec = malloc(N_FREQ * sizeof *spec);
    double *logm = malloc((size_t)T * MEL_BINS * sizeof *logm); /* (T, MEL_BINS) */
    if (!frame || !power || !spec || !logm) {
        free(frame), free(power), free(spec), free(logm);
        return loom_error_set(err, "out of memory");
    }
    double maxv = -INFINITY;
    for (int64_t t = 0; t < T; t++) {
        /* frame t covers padded samples [t*hop, t*hop + n_fft), i.e. x[t*hop - pad ...] */
        const int64_t start = t * MEL_HOP - pad;
        for (int i = 0; i < MEL_N_FFT; i++)
            frame[i] = g_mel.window[i] * (double)reflect_at(x, n, start + i);
        fftw_execute_dft_r2c(g_mel.plan, frame, spec);
        for (int k = 0; k < N_FREQ; k++) power[k] = spec[k][0] * spec[k][0] + spec[k][1] * spec[k][1];
        for (int m = 0; m < MEL_BINS; m++) {
            double s = 0.0;
            for (int k = 0; k < N_FREQ; k++) s += g_mel.filt[m * N_FREQ + k] * power[k];
            double l = log10(s > 1e-10 ? s : 1e-10);
            logm[t * MEL_BINS + m] = l;
            if (l > maxv) maxv = l;
        }
    }
    for (int m = 0; m < MEL_BINS; m++)
        for (int64_t t = 0; t < T; t++) {
            double l = logm[t * MEL_BINS + m];
            if (l < maxv - 8.0) l = maxv - 8.0;
            out[(size_t)m * T + t] = (float)((l + 4.0) / 4.0);
        }
    free(frame), free(power), free(spec), free(logm);
    return 0;
}

/* ---- the fast path ----
 *
 * Two real frames a, b go through one complex FFT as z = a + i b; with
 * Z = FFT(z), A(k) = (Z(k) + conj Z(N-k)) / 2 and B(k) = (Z(k) - conj Z(N-k)) / 2i,
 * so |A(k)|^2 = |Z(k) + conj Z(N-k)|^2 / 4 and likewise for B; the 1/4 is in
 * the weights wq. FFTW's complex DFT of 400 takes about two thirds of the time
 * of its two r2c transforms of 400 (measured). Frames are windowed as they are
 * gathered from x (reflecting at the two ends, so x is never copied), the
 * power spectrum stays in L1 and meets the sparse filterbank at once, and the
 * log is a polynomial the compiler vectorizes.
 *
 * Precision: the window and the FFT are in double, everything after the
 * power spectrum in float. An FFT in float (fftwf) was tried and is not
 * enough: its rounding is absolute, about 1e-7 of a frame's energy, while the
 * max - 8 floor keeps mel values 1e8 below the loudest, so near the floor of
 * a loud frame (a tone over faint noise) it moved outputs by up to 1.4e-4,
 * over the 1e-4 parity tolerance (tests/test_mel.c has such signals). The power, the mel sums (of positive terms) and the
 * log in float are relatively accurate to about 1e-6 instead. */

/* log10 of the positive normal float whose bits are u: x = 2^e f with f in
 * [sqrt(1/2), sqrt(2)) (chosen on the mantissa bits), log x = e ln 2 +
 * log1p(f - 1) by Cephes logf's polynomial (relative error about 1e-7), ln 2
 * split in two so e ln 2 adds no rounding. Integer selects only, no float
 * compare, so the loops calling it vectorize under -ftrapping-math. */
static inline float log10_bits(uint32_t u) {
    const int32_t big = (u & 0x007fffffu) > 0x003504f3u; /* mantissa of sqrt(2) */
    const int32_t e = (int32_t)(u >> 23) - 127 + big;
    u = (u & 0x007fffffu) | ((uint32_t)(127 - big) << 23);
    float f;
    memcpy(&f, &u, sizeof f);
    f -= 1.0f;
    const float z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    const float fe = (float)e;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    float l = f + y;
    l += 0.693359375f * fe;
    return l * 0.434294481903251828f; /* 1 / ln 10 */
}

/* The bits of max(s, 1e-10) for a mel power s, as whisper's clamp, with the
 * positive floats ordered as their bits: NaN and negatives (none from finite
 * samples) give 1e-10 as in the reference, +inf gives FLT_MAX. Masks, not
 * ?:, for the vectorizer. */
#define MEL_CLAMP_BITS 0x2edbe6ffu /* 1e-10f */
static inline uint32_t clamp_bits(float s) {
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    u &= ~(uint32_t)-(int32_t)(u > 0x7f800000u); /* NaN, sign bit set: 0 */
    u = u < 0x7f7fffffu ? u : 0x7f7fffffu;
    return u > MEL_CLAMP_BITS ? u : MEL_CLAMP_BITS;
}

/* The samples of frame t, x[t*hop - pad .. t*hop + pad): a pointer into x,
 * or for the frames that reach past either end, tmp (MEL_N_FFT) filled with
 * the reflected samples. */
static inline const float *frame_samples(const float *x, int64_t n, int64_t t, float *tmp) {
    const int64_t s = t * MEL_HOP - MEL_N_FFT / 2;
    if (s >= 0 && s + MEL_N_FFT <= n) return x + s;
    for (int i = 0; i < MEL_N_FFT; i++) tmp[i] = reflect_at(x, n, s + i);
    return tmp;
}

/* Frames [t0, t0 + nb) of x, nb <= TB, into columns [t0, t0 + nb) of the T
 * columns of out (MEL_BINS, T): log10 of the mel power, clamped below at
 * 1e-10 as whisper does. Returns the bits of the block's largest clamped mel
 * power (its log is the block's largest value). The mel stage and the log run
 * across the block's frames, which is the layout of out and vectorizes. About
 * 52 KB of stack. */
static inline __attribute__((always_inline)) uint32_t mel_block_kernel(const float *x, int64_t n, int64_t t0,
                                                                    int nb, float *out, int64_t T) {
    static const float zeros[MEL_N_FFT];
    _Alignas(64) double z[2 * MEL_N_FFT];  /* (MEL_N_FFT, 2) frames a, b as re, im */
    _Alignas(64) double zf[2 * MEL_N_FFT]; /* (MEL_N_FFT, 2) Z = FFT(z) */
    _Alignas(64) float pw[N_FREQ * TB];   /* (N_FREQ, TB) 4 |X_j(k)|^2 for frame t0 + j */
    float tmpa[MEL_N_FFT], tmpb[MEL_N_FFT];
    if (nb < TB) memset(pw, 0, sizeof pw); /* unused columns: mel power 0, clamped to 1e-10 */
    for (int j = 0; j < nb; j += 2) {
        /* 1. two windowed frames as one complex signal, and its FFT */
        const float *xa = frame_samples(x, n, t0 + j, tmpa);
        const float *xb = j + 1 < nb ? frame_samples(x, n, t0 + j + 1, tmpb) : zeros;
        const double *w = g_mel.window;
        for (int i = 0; i < MEL_N_FFT; i++) {
            z[2 * i] = w[i] * (double)xa[i];
            z[2 * i + 1] = w[i] * (double)xb[i];
        }
        fftw_execute_dft(g_mel.planc, (fftw_complex *)z, (fftw_complex *)zf);
        /* 2. the two power spectra: A = Z(k) + conj Z(N-k), B = (Z(k) - conj Z(N-k)) / i */
        pw[j] = (float)(4.0 * zf[0] * zf[0]);
        pw[j + 1] = (float)(4.0 * zf[1] * zf[1]);
        for (int k = 1; k < N_FREQ; k++) {
            const double zr = zf[2 * k], zi = zf[2 * k + 1];
            const double wr = zf[2 * (MEL_N_FFT - k)], wi = zf[2 * (MEL_N_FFT - k) + 1];
            const double ar = zr + wr, ai = zi - wi, br = zr - wr, bi = zi + wi;
            pw[k * TB + j] = (float)(ar * ar + ai * ai);     /* 4 |A(k)|^2 */
            pw[k * TB + j + 1] = (float)(br * br + bi * bi); /* 4 |B(k)|^2; j + 1 < TB: TB is even */
        }
    }
    /* 3. mel (sparse rows of the filterbank, weights times 1/4) */
    _Alignas(64) float mt[MEL_BINS * TB]; /* (MEL_BINS, TB) */
    for (int m = 0; m < MEL_BINS; m++) {
        const float *wq = g_mel.wq + g_mel.off[m], *row = pw + (size_t)g_mel.start[m] * TB;
        float acc[TB];
        for (int j = 0; j < TB; j++) acc[j] = 0.0f;
        for (int32_t k = 0; k < g_mel.len[m]; k++) {
            const float wk = wq[k], *r = row + (size_t)k * TB;
            for (int j = 0; j < TB; j++) acc[j] += wk * r[j];
        }
        for (int j = 0; j < TB; j++) mt[m * TB + j] = acc[j];
    }
    /* 4. clamp, log10, out */
    uint32_t maxbits = MEL_CLAMP_BITS;
    for (int i = 0; i < MEL_BINS * TB; i++) {
        const uint32_t u = clamp_bits(mt[i]);
        maxbits = u > maxbits ? u : maxbits;
        mt[i] = log10_bits(u);
    }
    for (int m = 0; m < MEL_BINS; m++) {
        float *o = out + (size_t)m * T + t0;
        for (int j = 0; j < nb; j++) o[j] = mt[m * TB + j];
    }
    return maxbits;
}

/* The same kernel compiled twice: for the build's baseline and for AVX2
 * (chosen from cpuid). The C is the same and AVX2 without FMA leaves the
 * compiler nothing to contract, so both give the same bits; AVX2 only widens
 * the vectors. */
static uint32_t mel_block_generic(const float *x, int64_t n, int64_t t0, int nb, float *out, int64_t T) {
    return mel_block_kernel(x, n, t0, nb, out, T);
}
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MEL_HAVE_AVX2 1
__attribute__((target("avx2"))) static uint32_t mel_block_avx2(const float *x, int64_t n, int64_t t0, int nb,
                                                                 float *out, int64_t T) {
    return mel_block_kernel(x, n, t0, nb, out, T);
}
#endif

int mel_compute(const float *x, int64_t n, float *out, loom_error *err) {
    if (mel_check(n, err)) return -1;
    const int64_t T = mel_frames(n), nblk = (T + TB - 1) / TB;
    uint32_t (*block)(const float *, int64_t, int64_t, int, float *, int64_t) = mel_block_generic;
#ifdef MEL_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) block = mel_block_avx2;
#endif
    /* One parallel region, two loops. The thread count is loom's knob
     * (loom_threads_set sets OpenMP's); one thread when called from inside a
     * parallel region (a batch of clips). Every block is computed alike
     * whatever thread runs it, and max is exact, so the output does not
     * depend on the thread count. Dynamic scheduling: a thread that loses its
     * core to another process does not hold up the rest. */
    uint32_t maxbits = MEL_CLAMP_BITS;
    const int64_t total = T * MEL_BINS;
#pragma omp parallel if (nblk > 1 && !omp_in_parallel())
    {
        /* 1. log10 mel power into out (MEL_BINS, T), block by block; the
         * bits of the largest clamped mel power */
#pragma omp for schedule(dynamic, 1) reduction(max : maxbits)
        for (int64_t b = 0; b < nblk; b++) {
            const int64_t t0 = b * TB;
            const uint32_t mb = block(x, n, t0, (int)(T - t0 < TB ? T - t0 : TB), out, T);
            maxbits = mb > maxbits ? mb : maxbits;
        }
        /* 2. the floor at max - 8 and (L + 4) / 4, in place */
        const float floor_v = log10_bits(maxbits) - 8.0f;
#pragma omp for schedule(dynamic, 4096)
        for (int64_t i = 0; i < total; i++) {
            const float l = out[i] > floor_v ? out[i] : floor_v;
            out[i] = (l + 4.0f) * 0.25f;
        }
    }
    return 0;
}
