"""Compare loom's audio encoder input side (mel-frame grouping + linear projection) with an
independent float64 reference.

Usage: audio_parity.py DIR

DIR/audio.safetensors (written by audio_dump):
    signal.x          F32 (n)            16 kHz samples of the synthesized signal
    case<i>.config    I32 (4)            stack, d_model C, T, source (0 random mel, 1 signal.x)
    case<i>.mel       F32 (80, T)        the log-mel input (source 1: loom's mel_compute)
    case<i>.positions I32 (1)            loom's P
    case<i>.frames    F32 (P, stack*80)  loom's audio_enc_group / audio_enc_prepare
    case<i>.audio.w   F32 (C, stack*80)
    case<i>.audio.b   F32 (C)
    case<i>.dout      F32 (P, C)         upstream gradient
    case<i>.out       F32 (P, C)         loom's audio_enc_forward
    case<i>.grad.w    F32 (C, stack*80)  loom's audio_enc_backward, once from zero
    case<i>.grad.b    F32 (C)
    case<i>.grad2.w   F32 (C, stack*80)  twice from zero (backward adds into g)
    case<i>.grad2.b   F32 (C)
    __metadata__      n_cases

The reference is written from the spec in src/encoders/audio_enc.h, not from loom's loops:
P = ceil(T / stack); the mel (80, T) is padded on the right to P*stack frames with its global
minimum (the spectrogram's floor), then
    mel_padded.T.reshape(P, stack * 80)      i.e. frames[p][j*80 + m] = mel[m][p*stack + j]
(checked against that index formula too), and out = F.linear(frames, W, b) in float64 with
W, b = loom's float32 parameters; dW, db by autograd for loom's dout; the second backward's
gradients are 2 dW, 2 db. For the signal cases loom's mel is also checked against whisper's
formula (mel_parity.log_mel, tolerance 1e-4 as in mel_parity.py), so the frames fed to the
projection are those of the real front end. Prints one line per comparison and
`audio parity: N passed, M failed`; exits 1 on any failure, missing tensor or wrong shape.
"""

import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loom_ref import load_safetensors  # noqa: E402
from mel_parity import log_mel, mel_filters, TOL as MEL_TOL  # noqa: E402
from parity_util import Report  # noqa: E402

MEL_BINS, HOP = 80, 160

# ----------------------------------------------------------------------------------------------
# Tolerances.
# frames, positions: grouping only copies float32 values, so loom must match EXACTLY
#   (tolerance 0), the padded values included.
# out, grad.w, grad.b: float32 sums of K products (K = stack*80 + the bias for out, K = P for
#   the gradients). Loom's inputs are the very float32 values the reference uses (no input
#   rounding), so the classical bound for any summation order, FMA or not, is
#   K * u * sum_k |a_k b_k| with u = 2^-24; we allow
#       tol = min(2 * (K + 2) * u * sum_k |a_k b_k|,  1e-5 * max|ref|)  + 1e-12
#   elementwise: the bound with a 2x margin, capped at 1e-5 relative to the tensor's scale
#   (the bound alone is up to ~3e-4 of max|ref| at stack 8, where the sums of |terms| are
#   large; float32's actual error is ~sqrt(K) u |partial sums|, a few 1e-7 of the scale). A
#   dropped, doubled or misplaced term (about sum|terms| / K, with |w| ~ 0.02 some 1e-2 of the
#   scale) fails by orders of magnitude.
# grad2.*: two accumulated backward passes: K + 3 roundings over twice the terms.
# The printed rel is max_abs / max|ref|.
U32 = 2.0 ** -24
MARGIN = 2.0
REL = 1e-5


def compare(rep, name, got, ref, bound):
    """|got - ref| <= min(bound, REL * max|ref|) + 1e-12 everywhere (got finite); prints the max
    abs and rel difference, the tolerance range and the worst diff/tol."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        rep.line(name, False, f"shape {got.shape} != reference {ref.shape}")
        return
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    tol = np.minimum(np.broadcast_to(np.asarray(bound, dtype=np.float64), diff.shape), REL * scale)
    tol = tol + 1e-12
    ok = bool(np.all(np.isfinite(got))) and bool(np.all(diff <= tol))
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = max_abs / scale if scale > 0 else max_abs
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tol > 0, diff / np.where(tol > 0, tol, 1), np.where(diff > 0, np.inf, 0))
    worst = float(ratio.max()) if diff.size else 0.0
    rep.line(name, ok, f"max_abs {max_abs:.3e}  rel {rel:.2e}  max|ref| {scale:.3g}  "
                       f"tol {float(tol.min()):.1e}..{float(tol.max()):.1e}  "
                       f"worst diff/tol {worst:.2g}")


def group_ref(mel, stack):
    """mel float32 (80, T) -> float32 (P, stack*80), P: pad with the global min, reshape."""
    T = mel.shape[1]
    P = -(-T // stack)
    m = torch.from_numpy(mel)
    padded = torch.full((MEL_BINS, P * stack), float(m.min()), dtype=m.dtype)
    padded[:, :T] = m
    return padded.T.reshape(P, stack * MEL_BINS).contiguous().numpy(), P


def group_by_index(mel, stack, P):
    """The header's formula elementwise: frames[p][j*80 + m] = mel[m][p*stack + j], floor past T."""
    T = mel.shape[1]
    p, j, m = np.meshgrid(np.arange(P), np.arange(stack), np.arange(MEL_BINS), indexing="ij")
    t = p * stack + j
    v = np.where(t < T, mel[m, np.minimum(t, T - 1)], mel.min())
    return v.reshape(P, stack * MEL_BINS)  # (p, j, m) row-major: column j*80 + m


def main(argv):
    if len(argv) != 2:
        print("usage: audio_parity.py DIR", file=sys.stderr)
        return 2
    path = os.path.join(argv[1], "audio.safetensors")
    rep = Report('audio parity', 22)
    try:
        t, meta = load_safetensors(path)
        n_cases = int(meta["n_cases"])
    except (OSError, ValueError, KeyError) as e:
        print(f"audio_parity: {path}: {e}", file=sys.stderr)
        print("audio parity: 0 passed, 1 failed")
        return 1
    print(f"audio_parity: {path}: {n_cases} cases")

    def get(name, shape=None):
        return rep.tensor(t, name, shape)

    signal = get("signal.x")
    signal_mel = None
    if signal is not None:
        signal_mel = log_mel(signal, mel_filters())

    for i in range(n_cases):
        pre = f"case{i}"
        config = get(f"{pre}.config", (4,))
        if config is None:
            continue
        stack, C, T, source = (int(v) for v in config)
        D = stack * MEL_BINS
        mel = get(f"{pre}.mel", (MEL_BINS, T))
        if mel is None or T < 1 or stack < 1 or C < 1:
            rep.line(f"{pre}.config", False, f"stack {stack} C {C} T {T}: unusable")
            continue
        print(f"-- {pre}: stack {stack}, C {C}, T {T} "
              f"({'signal through audio_enc_prepare' if source else 'random mel'})")

        if source == 1 and signal is not None:
            if T != len(signal) // HOP or signal_mel.shape != mel.shape:
                rep.line(f"{pre}.mel", False, f"T {T}, expected {len(signal) // HOP} frames")
            else:
                d = float(np.abs(mel.astype(np.float64) - signal_mel).max())
                rep.line(f"{pre}.mel", d <= MEL_TOL and bool(np.isfinite(mel).all()),
                         f"vs whisper's formula: max_abs {d:.3e}  tol {MEL_TOL:g}")

        x32, P = group_ref(mel, stack)
        positions = get(f"{pre}.positions", (1,))
        if positions is not None:
            rep.line(f"{pre}.positions", int(positions[0]) == P,
                     f"loom {int(positions[0])}, reference ceil({T}/{stack}) = {P}")

        frames = get(f"{pre}.frames", (P, D))
        if frames is not None:
            self_ok = np.array_equal(x32, group_by_index(mel, stack, P))
            exact = np.array_equal(frames, x32)
            diff = float(np.abs(frames.astype(np.float64) - x32.astype(np.float64)).max())
            n_pad = (P * stack - T) * MEL_BINS
            rep.line(f"{pre}.frames", exact and self_ok,
                     f"{'bit-exact' if exact else 'NOT bit-exact'}, max_abs {diff:.3e} (tol 0); "
                     f"{n_pad} padded values = min {float(mel.min()):.6g}"
                     f"{'' if self_ok else '; REFERENCE reshape != index formula'}")

        W32, b32 = get(f"{pre}.audio.w", (C, D)), get(f"{pre}.audio.b", (C,))
        dout = get(f"{pre}.dout", (P, C))
        if W32 is None or b32 is None or dout is None:
            continue
        out = get(f"{pre}.out", (P, C))
        gw, gb = get(f"{pre}.grad.w", (C, D)), get(f"{pre}.grad.b", (C,))
        gw2, gb2 = get(f"{pre}.grad2.w", (C, D)), get(f"{pre}.grad2.b", (C,))

        x = torch.from_numpy(x32.astype(np.float64))
        Wt = torch.tensor(W32, dtype=torch.float64, requires_grad=True)
        bt = torch.tensor(b32, dtype=torch.float64, requires_grad=True)
        y = torch.nn.functional.linear(x, Wt, bt)
        d = torch.from_numpy(dout.astype(np.float64))
        y.backward(d)
        xa, Wa, da = x.abs(), Wt.detach().abs(), d.abs()
        if out is not None:
            bound = (xa @ Wa.T + bt.detach().abs()).numpy()     # (P, C): sum |x_k w_k| + |b|
            compare(rep, f"{pre}.out", out, y.detach().numpy(),
                    MARGIN * (D + 2) * U32 * bound)
        bound_w = (da.T @ xa).numpy()                          # (C, D): sum_p |dout x|
        bound_b = da.sum(0).numpy()                            # (C): sum_p |dout|
        if gw is not None:
            compare(rep, f"{pre}.grad.w", gw, Wt.grad.numpy(),
                    MARGIN * (P + 2) * U32 * bound_w)
        if gb is not None:
            compare(rep, f"{pre}.grad.b", gb, bt.grad.numpy(),
                    MARGIN * (P + 2) * U32 * bound_b)
        if gw2 is not None:
            compare(rep, f"{pre}.grad2.w", gw2, 2 * Wt.grad.numpy(),
                    MARGIN * (P + 3) * U32 * 2 * bound_w)
        if gb2 is not None:
            compare(rep, f"{pre}.grad2.b", gb2, 2 * bt.grad.numpy(),
                    MARGIN * (P + 3) * U32 * 2 * bound_b)
    return rep.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
