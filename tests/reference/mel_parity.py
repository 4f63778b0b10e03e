"""Checks loom's log-mel spectrogram (src/encoders/mel.c) against whisper's formula in PyTorch.

Usage: mel_parity.py DIR   (DIR/mel.safetensors from mel_dump)

The reference, written from whisper's audio.log_mel_spectrogram and librosa.filters.mel:
  stft = torch.stft(x, 400, 160, window=torch.hann_window(400), center=True, pad_mode="reflect",
                    return_complex=True);  power = |stft[..., :-1]|^2
  mel = filters @ power, filters = 80 Slaney mel filters with Slaney normalization over 201 bins
  log = log10(max(mel, 1e-10)); log = max(log, log.max() - 8); (log + 4) / 4
all in float64. Tolerance: |loom - ref| <= 1e-4 everywhere (DESIGN), for loom's fast path
(mel_compute) and for its naive reference (mel_compute_ref, the oracle of tests/test_mel.c) when
the dump has it; the filterbank itself within 1e-12. Prints the max differences; exits 1 on any
failure.
"""

import math
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loom_ref import load_safetensors  # noqa: E402

SR, N_FFT, HOP, N_MELS = 16000, 400, 160, 80
TOL = 1e-4


def hz_to_mel(f):
    """Slaney's mel scale (librosa, htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-30) / min_log_hz) / logstep,
                    f / f_sp)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters():
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (fmin 0, fmax sr/2, norm='slaney')."""
    fftfreqs = np.linspace(0, SR / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    w = np.zeros((N_MELS, len(fftfreqs)))
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        w[i] = np.maximum(0, np.minimum(lower, upper))
    w *= (2.0 / (mel_f[2:N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return w


def log_mel(x, filters):
    x = torch.from_numpy(x.astype(np.float64))
    window = torch.hann_window(N_FFT, dtype=torch.float64)
    stft = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(filters) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).numpy()


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    tensors, meta = load_safetensors(os.path.join(sys.argv[1], "mel.safetensors"))
    ok = True
    ref_f = mel_filters()
    d = float(np.abs(tensors["filters"] - ref_f).max())
    print(f"mel: filterbank (80, 201): max |loom - ref| = {d:.3e} (tol 1e-12)")
    ok &= d <= 1e-12
    # the reference's own sanity: a 440 Hz tone peaks in the filter centred nearest 440 Hz
    centers = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2), N_MELS + 2))[1:-1]
    for c in range(int(meta["n_cases"])):
        x = tensors[f"case{c}.x"]
        got = tensors[f"case{c}.mel"]
        ref = log_mel(x, ref_f)
        if got.shape != ref.shape:
            print(f"mel: case {c}: shape {got.shape}, reference {ref.shape}: FAIL")
            ok = False
            continue
        d = float(np.abs(got - ref).max())
        good = d <= TOL and np.isfinite(got).all()
        print(f"mel: case {c} ({len(x)} samples, {ref.shape[1]} frames): max |loom - ref| = {d:.2e}"
              f" (tol {TOL:g}){'' if good else ' FAIL'}")
        ok &= good
        naive = tensors.get(f"case{c}.mel_ref")
        if naive is not None:
            dn = float(np.abs(naive - ref).max()) if naive.shape == ref.shape else float("inf")
            good = dn <= TOL and np.isfinite(naive).all()
            print(f"mel: case {c}: naive mel_compute_ref: max |loom_ref - ref| = {dn:.2e}"
                  f" (tol {TOL:g}){'' if good else ' FAIL'}")
            ok &= good
        if c == 0:
            peak = int(np.argmax(ref[:, ref.shape[1] // 2][: int(np.searchsorted(centers, 1500))]))
            want = int(np.argmin(np.abs(centers - 440)))
            if abs(peak - want) > 1:
                print(f"mel: reference sanity: 440 Hz peaks in bin {peak}, expected ~{want}: FAIL")
                ok = False
    print("mel: " + ("all cases passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
