"""Compare loom's audio encoders (mel-frame grouping, then the stack encoder's linear layer or
the conv encoder's conv1d + GELU stem and linear layer) with an independent float64 reference.

Usage: audio_parity.py DIR

DIR/audio.safetensors (written by audio_dump):
    signal.x          F32 (n)            16 kHz samples of the synthesized signal
    case<i>.config    I32 (6)            stack, d_model C, T, source (0 random mels, 1 signal.x),
                                         encoder (0 stack, 1 conv), conv channels Ch (else 0)
    case<i>.utts      I32 (U)            frames of each utterance (sum T), one after the other
    case<i>.mel       F32 (80, T)        the log-mel input (source 1: loom's mel_compute)
    case<i>.positions I32 (1)            loom's P (all utterances)
    case<i>.frames    F32 (P, stack*80)  loom's audio_enc_group / audio_enc_prepare per utterance
    case<i>.<tensor>  F32                the encoder's tensors: stack "audio.w" (C, stack*80),
                                         "audio.b" (C); conv "audio.conv<l>.w" (Ch, 3, Cin)
                                         (Cin = 80 for l = 1, else Ch), "audio.conv<l>.b" (Ch),
                                         l = 1 .. log2(stack), "audio.proj.w" (C, Ch),
                                         "audio.proj.b" (C)
    case<i>.dout      F32 (P, C)         upstream gradient
    case<i>.out       F32 (P, C)         loom's audio_enc_encode
    case<i>.grad.<tensor>   F32          loom's audio_enc_encode_backward, once from zero
    case<i>.grad2.<tensor>  F32          twice from zero (backward adds into g)
    __metadata__      n_cases

The reference is written from the spec in src/encoders/audio_enc.h, not from loom's loops.
Each utterance on its own: P_u = ceil(T_u / stack); its mel (80, T_u) is padded on the right to
P_u*stack frames with its minimum (the spectrogram's floor), then
    mel_padded.T.reshape(P_u, stack * 80)      i.e. frames[p][j*80 + m] = mel[m][p*stack + j]
(checked against that index formula too). Stack encoder: out = F.linear(frames, W, b) in
float64 with W, b = loom's float32 parameters. Conv encoder, per utterance:
    x = frames.reshape(P_u*stack, 80).T              (80, L) channels first, as torch wants
    x = F.gelu(F.conv1d(x, W_l.permute(0, 2, 1), b_l, stride=2, padding=1))   l = 1 .. n
    out_u = F.linear(x.T, Wp, bp)                    (P_u, C)
in float64 (F.gelu exact, erf), outputs concatenated. Gradients by autograd for loom's dout;
the second backward's are twice the first. For the signal cases loom's mel is also checked
against whisper's formula (mel_parity.log_mel, tolerance 1e-4 as in mel_parity.py), so the
frames fed to the encoder are those of the real front end. Prints one line per comparison and
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
# Conv encoder (out and every gradient): float32 through up to 3 conv layers, GELU and the
#   projection, each a sum of K <= 3*max(80, Ch) + 1 products (the weight gradients: up to
#   P*stack/2 per utterance, then summed over utterances), the errors compounding from layer to
#   layer and through the backward's chain. No clean elementwise bound survives the GELUs, so
#   the tolerance is relative to each tensor's scale: REL_CONV * max|ref| (measured: a few
#   1e-7; 2e-5 leaves a 30x margin for other CPUs' summation orders). A missing tap, a padding
#   row read from the neighbouring utterance or a wrong GELU derivative moves values by 1e-3
#   to 1e-1 of the scale.
# The printed rel is max_abs / max|ref|.
U32 = 2.0 ** -24
MARGIN = 2.0
REL = 1e-5
REL_CONV = 2e-5


def compare(rep, name, got, ref, bound, rel=REL):
    """|got - ref| <= min(bound, rel * max|ref|) + 1e-12 everywhere (got finite); prints the max
    abs and rel difference, the tolerance range and the worst diff/tol."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        rep.line(name, False, f"shape {got.shape} != reference {ref.shape}")
        return
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    tol = np.minimum(np.broadcast_to(np.asarray(bound, dtype=np.float64), diff.shape), rel * scale)
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


def conv_tensors(stack, C, Ch):
    """The conv encoder's tensors and shapes, in registration order."""
    n = stack.bit_length() - 1
    names = []
    for l in range(1, n + 1):
        names += [(f"audio.conv{l}.w", (Ch, 3, MEL_BINS if l == 1 else Ch)), (f"audio.conv{l}.b", (Ch,))]
    return names + [("audio.proj.w", (C, Ch)), ("audio.proj.b", (C,))]


def conv_encode(frames_u, params, stack):
    """One utterance's frames (P_u, stack*80) float64 -> (P_u, C) through the conv stem."""
    P = frames_u.shape[0]
    x = frames_u.reshape(P * stack, MEL_BINS).T.unsqueeze(0)          # (1, 80, L)
    for l in range(1, stack.bit_length()):
        W, b = params[f"audio.conv{l}.w"], params[f"audio.conv{l}.b"]  # (Ch, 3, Cin): k before ci
        x = torch.nn.functional.gelu(
            torch.nn.functional.conv1d(x, W.permute(0, 2, 1), b, stride=2, padding=1))
    assert x.shape[2] == P, (x.shape, P)
    return torch.nn.functional.linear(x[0].T, params["audio.proj.w"], params["audio.proj.b"])


def main(argv):
    if len(argv) != 2:
        print("usage: audio_parity.py DIR", file=sys.stderr)
        return 2
    path = os.path.join(argv[1], "audio.safetensors")
    rep = Report('audio parity', 30)
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

    n_conv = 0
    for i in range(n_cases):
        pre = f"case{i}"
        config = get(f"{pre}.config", (6,))
        if config is None:
            continue
        stack, C, T, source, kind, Ch = (int(v) for v in config)
        D = stack * MEL_BINS
        mel = get(f"{pre}.mel", (MEL_BINS, T))
        utts = get(f"{pre}.utts")
        if (mel is None or utts is None or T < 1 or stack < 1 or C < 1 or kind not in (0, 1)
                or (kind == 1 and (Ch < 1 or stack < 2 or stack & (stack - 1)))
                or int(utts.sum()) != T or (utts < 1).any()):
            rep.line(f"{pre}.config", False, f"stack {stack} C {C} T {T} encoder {kind} Ch {Ch} "
                                             f"utterances {None if utts is None else list(utts)}: unusable")
            continue
        utts = [int(u) for u in utts]
        conv = kind == 1
        n_conv += conv
        print(f"-- {pre}: {'conv' if conv else 'stack'} encoder, stack {stack}, C {C}"
              f"{f', Ch {Ch}' if conv else ''}, T {T} in {len(utts)} utterance(s) "
              f"({'signal through audio_enc_prepare' if source else 'random mel'})")

        if source == 1 and signal is not None:
            if T != len(signal) // HOP or signal_mel.shape != mel.shape:
                rep.line(f"{pre}.mel", False, f"T {T}, expected {len(signal) // HOP} frames")
            else:
                d = float(np.abs(mel.astype(np.float64) - signal_mel).max())
                rep.line(f"{pre}.mel", d <= MEL_TOL and bool(np.isfinite(mel).all()),
                         f"vs whisper's formula: max_abs {d:.3e}  tol {MEL_TOL:g}")

        # each utterance grouped on its own
        parts, sizes, self_ok, n_pad, t0 = [], [], True, 0, 0
        for Tu in utts:
            mu = np.ascontiguousarray(mel[:, t0:t0 + Tu])
            xu, Pu = group_ref(mu, stack)
            self_ok &= np.array_equal(xu, group_by_index(mu, stack, Pu))
            parts.append(xu)
            sizes.append(Pu)
            n_pad += (Pu * stack - Tu) * MEL_BINS
            t0 += Tu
        x32, P = np.concatenate(parts), sum(sizes)
        positions = get(f"{pre}.positions", (1,))
        if positions is not None:
            rep.line(f"{pre}.positions", int(positions[0]) == P,
                     f"loom {int(positions[0])}, reference sum ceil(T_u/{stack}) = {P}")

        frames = get(f"{pre}.frames", (P, D))
        if frames is not None:
            exact = np.array_equal(frames, x32)
            diff = float(np.abs(frames.astype(np.float64) - x32.astype(np.float64)).max())
            rep.line(f"{pre}.frames", exact and self_ok,
                     f"{'bit-exact' if exact else 'NOT bit-exact'}, max_abs {diff:.3e} (tol 0); "
                     f"{n_pad} padded values = each utterance's min"
                     f"{'' if self_ok else '; REFERENCE reshape != index formula'}")

        names = conv_tensors(stack, C, Ch) if conv else [("audio.w", (C, D)), ("audio.b", (C,))]
        loom_p = {n: get(f"{pre}.{n}", shape) for n, shape in names}
        dout = get(f"{pre}.dout", (P, C))
        if dout is None or any(v is None for v in loom_p.values()):
            continue
        out = get(f"{pre}.out", (P, C))
        grad = {n: get(f"{pre}.grad.{n}", shape) for n, shape in names}
        grad2 = {n: get(f"{pre}.grad2.{n}", shape) for n, shape in names}

        x = torch.from_numpy(x32.astype(np.float64))
        params = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in loom_p.items()}
        d = torch.from_numpy(dout.astype(np.float64))
        if conv:
            ys, p0 = [], 0
            for Pu in sizes:
                ys.append(conv_encode(x[p0:p0 + Pu], params, stack))
                p0 += Pu
            y = torch.cat(ys)
            y.backward(d)
            if out is not None:
                compare(rep, f"{pre}.out", out, y.detach().numpy(), np.inf, REL_CONV)
            for n, _ in names:
                ref = params[n].grad.numpy()
                if grad[n] is not None:
                    compare(rep, f"{pre}.grad.{n}", grad[n], ref, np.inf, REL_CONV)
                if grad2[n] is not None:
                    compare(rep, f"{pre}.grad2.{n}", grad2[n], 2 * ref, np.inf, REL_CONV)
            continue

        Wt, bt = params["audio.w"], params["audio.b"]
        y = torch.nn.functional.linear(x, Wt, bt)
        y.backward(d)
        xa, Wa, da = x.abs(), Wt.detach().abs(), d.abs()
        if out is not None:
            bound = (xa @ Wa.T + bt.detach().abs()).numpy()     # (P, C): sum |x_k w_k| + |b|
            compare(rep, f"{pre}.out", out, y.detach().numpy(),
                    MARGIN * (D + 2) * U32 * bound)
        bound_w = (da.T @ xa).numpy()                          # (C, D): sum_p |dout x|
        bound_b = da.sum(0).numpy()                            # (C): sum_p |dout|
        gw, gb, gw2, gb2 = grad["audio.w"], grad["audio.b"], grad2["audio.w"], grad2["audio.b"]
        if gw is not None:
            compare(rep, f"{pre}.grad.audio.w", gw, Wt.grad.numpy(),
                    MARGIN * (P + 2) * U32 * bound_w)
        if gb is not None:
            compare(rep, f"{pre}.grad.audio.b", gb, bt.grad.numpy(),
                    MARGIN * (P + 2) * U32 * bound_b)
        if gw2 is not None:
            compare(rep, f"{pre}.grad2.audio.w", gw2, 2 * Wt.grad.numpy(),
                    MARGIN * (P + 3) * U32 * 2 * bound_w)
        if gb2 is not None:
            compare(rep, f"{pre}.grad2.audio.b", gb2, 2 * bt.grad.numpy(),
                    MARGIN * (P + 3) * U32 * 2 * bound_b)
    if n_conv == 0:
        rep.line("conv cases", False, "none in the file: the conv encoder went unchecked")
    return rep.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
