"""Compare loom's VQ autoencoder (src/heads/vq.c) with the PyTorch reference (vq_ref.py).

Usage: vq_parity.py DIR

DIR/vq.safetensors is written by vq_dump (its header lists every tensor). The reference is
built in float64 from loom's float32 parameters and run on loom's float32 pixels:

  codes, encoded   the nearest code of every position: EXACT (vq_forward and vq_encode)
  ze, recon        forward activations
  zq               must be exactly codebook[codes]
  loss             loss, mse, commit
  grad.<name>      d loss / d every trained tensor (autograd through the straight-through
                   estimator and the commitment term)
  ema.<name>       the codebook, counts and sums after one EMA update, from loom's state
  decoded          vq_decode(codes) == clamp(recon, -1, 1)

Prints one line per comparison (max abs difference, tolerance, worst diff/tol) and
`vq parity: N passed, M failed`; exits 1 on any failure, missing tensor or wrong shape.
"""

import json
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loom_ref import load_safetensors  # noqa: E402
from parity_util import Report  # noqa: E402
from vq_ref import VQRef, ema_update, expected_shapes, tensor_names  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Tolerances: |loom - ref| <= RTOL * max|ref| + ATOL, per tensor.
# loom computes in float32 (gemm sums of up to 16*16 = 256 products per layer, about ten layers
# deep forward and again backward; the quantizer's scores |e|^2 - 2 z.e); the reference in
# float64 from the same float32 inputs. Measured on this config: max |diff| / max|ref| of at
# most ~5e-7 for every tensor (forward, gradients, EMA). RTOL = 2e-5 leaves a margin of ~40x,
# while a real mistake (a shifted window, a wrong padding, a missing ReLU, bias or commitment
# gradient, a transposed weight, a wrong loss scale) changes a tensor by 1e-3 to O(1) of its
# scale and fails by far (vq_dump --perturb checks that a 1e-3 change of one weight fails).
# ATOL 1e-9 only covers tensors that are exactly zero in the reference.
# Codes are compared exactly; the smallest relative gap between the best and second-best
# squared distance is printed so a failure caused by a near-tie (float32 vs float64) can be told
# apart from a real one.
RTOL = 2e-5
ATOL = 1e-9
LOSS_RTOL = 1e-5  # three scalars, sums in double in loom


def compare(rep, name, got, ref, rtol=RTOL, atol=ATOL):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        rep.line(name, False, f"shape {got.shape} != reference {ref.shape}")
        return
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    tol = rtol * scale + atol
    finite = bool(np.all(np.isfinite(got)))
    max_abs = float(diff.max()) if diff.size else 0.0
    ok = finite and max_abs <= tol
    rep.line(name, ok, f"max_abs {max_abs:.3e}  max|ref| {scale:.3g}  tol {tol:.1e}  "
                       f"diff/tol {max_abs / tol:.2g}{'' if finite else '  NON-FINITE'}")


def main(argv):
    if len(argv) != 2:
        print("usage: vq_parity.py DIR", file=sys.stderr)
        return 2
    path = os.path.join(argv[1], "vq.safetensors")
    rep = Report('vq parity', 34)
    try:
        t, meta = load_safetensors(path)
        cfg = json.loads(meta["vq_config"])
        B, H, W = int(meta["B"]), int(meta["H"]), int(meta["W"])
    except (OSError, ValueError, KeyError) as e:
        print(f"vq_parity: {path}: {e}", file=sys.stderr)
        print("vq parity: 0 passed, 1 failed")
        return 1
    S = 2 ** len(cfg["channels"])
    h, w, D, K = H // S, W // S, cfg["code_dim"], cfg["codes"]
    print(f"vq_parity: {path}: {json.dumps(cfg)}, B={B} H={H} W={W} -> {h}x{w} codes")

    shapes = expected_shapes(cfg)
    trained, state = tensor_names(cfg)
    shapes.update({"pixels": (B, H, W, 3), "ze": (B, h, w, D), "zq": (B, h, w, D),
                   "codes": (B, h, w), "encoded": (B, h, w), "recon": (B, H, W, 3),
                   "decoded": (B, H, W, 3), "loss": (3,)})
    for name, _ in trained:
        shapes["grad." + name] = shapes[name]
    for name, _ in state:
        shapes["ema." + name] = shapes[name]
    bad = False
    for name, shape in shapes.items():
        if name not in t:
            rep.line(name, False, "missing")
            bad = True
        elif tuple(t[name].shape) != tuple(shape):
            rep.line(name, False, f"shape {tuple(t[name].shape)}, expected {tuple(shape)}")
            bad = True
    if bad:
        return rep.summary()

    model = VQRef(cfg, t, dtype=torch.float64)
    out = model.forward(t["pixels"])
    out["loss"].backward()

    # codes: exact, with the near-tie margin
    codes_ref = out["codes"].numpy().astype(np.int32)
    d = torch.sort(out["dist"], dim=1).values
    gap = (d[:, 1] - d[:, 0]) / d[:, 0].clamp(min=1e-12) if K > 1 else torch.ones(1)
    for name in ("codes", "encoded"):
        got = t[name]
        n_diff = int((got != codes_ref).sum())
        rep.line(name, n_diff == 0,
                 f"{'exact' if n_diff == 0 else f'{n_diff} of {got.size} differ'}; "
                 f"{len(np.unique(codes_ref))} of {K} codes used; smallest relative gap "
                 f"best/second {float(gap.min()):.2e}")

    compare(rep, "ze", t["ze"], out["ze"].detach().numpy())
    zq_exact = np.array_equal(t["zq"], t["vq.codebook"][t["codes"]])
    rep.line("zq", zq_exact, "== codebook[codes] exactly" if zq_exact else "!= codebook[codes]")
    compare(rep, "recon", t["recon"], out["recon"].detach().numpy())
    compare(rep, "decoded", t["decoded"], out["recon"].detach().clamp(-1, 1).numpy())
    ref_loss = np.array([out["loss"].item(), out["mse"].item(), out["commit"].item()])
    for i, name in enumerate(("loss", "mse", "commit")):
        compare(rep, f"loss[{name}]", t["loss"][i:i + 1], ref_loss[i:i + 1], rtol=LOSS_RTOL)
    print(f"-- loss {ref_loss[0]:.6f} = mse {ref_loss[1]:.6f} + commit {ref_loss[2]:.6f}")

    for name, _ in trained:
        compare(rep, "grad." + name, t["grad." + name], model.grad_loom_layout(name))

    # one EMA step from loom's state, with the reference's codes and z_e
    ze = out["ze"].detach().reshape(-1, D)
    cb, cnt, tot = ema_update(out["codes"].reshape(-1), ze,
                              torch.tensor(t["vq.ema_count"], dtype=torch.float64),
                              torch.tensor(t["vq.ema_sum"], dtype=torch.float64), K,
                              cfg["ema_decay"])
    compare(rep, "ema.vq.codebook", t["ema.vq.codebook"], cb.numpy())
    compare(rep, "ema.vq.ema_count", t["ema.vq.ema_count"], cnt.numpy())
    compare(rep, "ema.vq.ema_sum", t["ema.vq.ema_sum"], tot.numpy())
    return rep.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
