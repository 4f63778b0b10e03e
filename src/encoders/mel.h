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
 * The FFT is FFTW's (double precision); its plan is made once per process
 * (plan creation is not thread-safe in FFTW, so it happens under a once
 * guard) and executed on per-call buffers, so mel_compute may run on many
 * threads at once. tests/reference/mel_ref.py is the same formula in
 * PyTorch (torch.stft); loom agrees within 1e-4.
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
 * Returns -1 with err set for shorter input or out of memory. */
int mel_compute(const float *x, int64_t n, float *out, loom_error *err);
/* The filterbank (MEL_BINS, MEL_N_FFT / 2 + 1), row-major, for tests. */
void mel_filters(double *w);

#endif
