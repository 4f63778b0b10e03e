"""mel_torch.py DUMP [--repeats N] [--threads K]: torchaudio's log-mel of the same 30 s signal
bench/mel_bench wrote (whisper's parameters and formula: MelSpectrogram with n_fft 400, hop
160, 80 Slaney mel bins with Slaney normalization, power 2, centered reflect padding; the last
frame dropped; log10 clamp 1e-10, max-8 floor, (x+4)/4). Prints one JSON line with the median
time and the largest difference from loom's spectrogram."""
import argparse
import json
import sys
import time

import numpy as np
import torch
import torchaudio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    n = 30 * 16000
    raw = np.fromfile(a.dump, dtype=np.float32)
    x, loom = torch.from_numpy(raw[:n].copy()), raw[n:].reshape(80, -1)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160, n_mels=80,
                                               norm="slaney", mel_scale="slaney", power=2.0,
                                               center=True, pad_mode="reflect")

    def log_mel():
        m = mel(x)[:, :-1]
        L = torch.clamp(m, min=1e-10).log10()
        L = torch.maximum(L, L.max() - 8.0)
        return (L + 4.0) / 4.0

    with torch.no_grad():
        out = log_mel()  # warm-up
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            out = log_mel()
            times.append(1000.0 * (time.perf_counter() - t0))
    times.sort()
    diff = float(np.abs(out.numpy() - loom).max()) if out.shape == loom.shape else float("nan")
    print(json.dumps({"ms_median": times[len(times) // 2], "ms_min": times[0], "threads": torch.get_num_threads(),
                      "max_diff_vs_loom": diff, "torchaudio": torchaudio.__version__}))
    return 0 if diff < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
