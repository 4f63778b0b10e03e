/* mel.h: the log-mel spectrogram of the audio front end, with whisper's
 * parameters and formula (../shared/DESIGN.md):
 *
 *   frames   STFT of 16 kHz mono x: n_fft 400 with a periodic Hann window,
 *            hop 160, x reflect-padded by 200 on each side (torch.stft with
 *            center=True), the last frame dropped: n_frames = n / 160
 *   power    |X_f(k)|^2 for the 201 bins k = 0 .. 200
 *   mel      80 Slaney-scale triangular filters over 0 .. 8000 Hz with
 *            Slaney area normalization (librosa.filters.mel(16000, 400, 80))
 *   log      L = log10(max(mel, 1e-10)); L = max(L, max(L) - 8); (L + 4) / 4
 *
 * mel_compute is the fast path: FFTW in double precision with two real
 * frames per complex transform, then float: the power spectrum meets the
 * filterbank stored sparsely (each filter's contiguous nonzero range), a
 * vectorized log10; OpenMP across blocks of 32 frames with loom's thread knob
 * (core/threads.h; one thread when called inside a parallel region). Its
 * output does not depend on the thread count. mel_compute_ref is the naive
 * reference beside it: one frame at a time, double precision, the dense
 * filterbank, libm's log10; tests/test_mel.c checks that the two agree within
 * 1e-5 (they differ by about 2e-7). Samples must be finite (audio_load_file
 * and audio_load_memory refuse others); for NaN or inf the output is
 * unspecified.
 *
 * FFTW plans are made once per process (plan creation is not thread-safe in
 * FFTW, so it happens under a once guard; another FFTW user in the same
 * process must not plan at the same moment) and executed on per-call
 * buffers, so both functions may run on many threads at once.
 * tests/reference/mel_parity.py is the same formula in PyTorch (torch.stft,
 * float64); loom agrees within 1e-4 (measured: about 1.5e-7).
 *
 * Usage:
 *     int64_t T = mel_frames(n);
 *     float *mel = malloc((size_t)T * MEL_BINS * sizeof *mel);   // (MEL_BINS, T)
 *     loom_error err;
 *     if (mel_compute(samples, n, mel, &err)) fprintf(stderr, "mel: %s\n", err.msg);
 */
#ifndef LOOM_ENCODERS_MEL_H
#define LOOM_ENCODERS_MEL_H

#include <stdint.h>

#include "core/error.h"

#define MEL_N_FFT 400
#define MEL_HOP 160
#define MEL_BINS 80
#define MEL_RATE 16000

/* Frames for n samples: n / MEL_HOP. */
int64_t mel_frames(int64_t n);
/* out (MEL_BINS, n_frames) row-major (whisper's layout: a row per mel bin)
 * from n >= MEL_N_FFT / 2 + 1 samples (the reflect padding needs them).
 * Returns -1 with err set for shorter input, a length whose output size
 * overflows, or (the reference) out of memory; FFTW failing to plan. */
int mel_compute(const float *x, int64_t n, float *out, loom_error *err);
/* The same spectrogram by the naive reference (double precision, dense,
 * one frame at a time, one thread): the oracle for mel_compute's tests. */
int mel_compute_ref(const float *x, int64_t n, float *out, loom_error *err);
/* The filterbank (MEL_BINS, MEL_N_FFT / 2 + 1), row-major, for tests. */
void mel_filters(double *w);

#endif
