#include "encoders/mel.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#define N_FREQ (MEL_N_FFT / 2 + 1)
#define MEL_PI 3.14159265358979323846

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

/* ---- shared read-only state: window, filters (sparse rows), FFT plan ---- */

static struct {
    double window[MEL_N_FFT];
    double filt[MEL_BINS * N_FREQ];
    int lo[MEL_BINS], hi[MEL_BINS];    /* nonzero bins of filter i: [lo, hi) */
    fftw_plan plan;
    int ok;
} g_mel;
static pthread_once_t g_mel_once = PTHREAD_ONCE_INIT;

static void mel_init(void) {
    for (int i = 0; i < MEL_N_FFT; i++) /* periodic Hann, as torch.hann_window */
        g_mel.window[i] = 0.5 - 0.5 * cos(2.0 * MEL_PI * i / MEL_N_FFT);
    mel_filters(g_mel.filt);
    for (int i = 0; i < MEL_BINS; i++) {
        int lo = N_FREQ, hi = 0;
        for (int k = 0; k < N_FREQ; k++)
            if (g_mel.filt[i * N_FREQ + k] != 0.0) {
                if (k < lo) lo = k;
                hi = k + 1;
            }
        g_mel.lo[i] = lo < hi ? lo : 0;
        g_mel.hi[i] = hi;
    }
    double *in = fftw_malloc(MEL_N_FFT * sizeof *in);
    fftw_complex *out = fftw_malloc(N_FREQ * sizeof *out);
    if (in && out)
        g_mel.plan = fftw_plan_dft_r2c_1d(MEL_N_FFT, in, out, FFTW_ESTIMATE | FFTW_UNALIGNED);
    fftw_free(in);
    fftw_free(out);
    g_mel.ok = g_mel.plan != NULL;
}

int64_t mel_frames(int64_t n) { return n > 0 ? n / MEL_HOP : 0; }

/* Sample i of x reflect-padded by pad on each side (torch's "reflect": the
 * edge sample is not repeated). Valid for n > pad. */
static inline float reflect_at(const float *x, int64_t n, int64_t i) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return x[i];
}

int mel_compute(const float *x, int64_t n, float *out, loom_error *err) {
    const int64_t pad = MEL_N_FFT / 2;
    if (n <= pad)
        return loom_error_set(err, "audio of %lld samples is too short for a spectrogram (need > %lld, %.1f ms)",
                              (long long)n, (long long)pad, 1000.0 * (pad + 1) / MEL_RATE);
    pthread_once(&g_mel_once, mel_init);
    if (!g_mel.ok) return loom_error_set(err, "FFTW could not make a plan");
    const int64_t T = mel_frames(n);
    double *frame = malloc(MEL_N_FFT * sizeof *frame), *power = malloc(N_FREQ * sizeof *power);
    fftw_complex *spec = malloc(N_FREQ * sizeof *spec);
    double *logm = malloc((size_t)T * MEL_BINS * sizeof *logm);
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
            for (int k = g_mel.lo[m]; k < g_mel.hi[m]; k++) s += g_mel.filt[m * N_FREQ + k] * power[k];
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
