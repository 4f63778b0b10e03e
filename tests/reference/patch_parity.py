"""Compare loom's Fuyu-style patchify and patch projector with an independent float64 reference.

Usage: patch_parity.py DIR

DIR/patch.safetensors (written by patch_dump):
    patch.w         F32 (C, D)          D = P*P*3
    patch.b         F32 (C)
    case<i>.image   U8  (H, W, 3)       raw RGB pixels
    case<i>.grid    I32 (2)             loom's (rows, cols)
    case<i>.patches F32 (N, D)          loom's patches, N = rows*cols
    case<i>.dout    F32 (N, C)          upstream gradient
    case<i>.out     F32 (N, C)          loom's patch_forward
    case<i>.grad.w  F32 (C, D)          loom's patch_backward from zero
    case<i>.grad.b  F32 (C)
    __metadata__    patch, d_model, n_cases

The reference is written from the spec in src/encoders/patch.h, not from loom's loops:
pixels / 127.5 - 1 in float64, pad right/bottom with -1 to a multiple of P, then
    x.reshape(R, P, Cn, P, 3).permute(0, 2, 1, 3, 4).reshape(R*Cn, P*P*3)
(rows of patches, then columns; inside a patch pixel row, pixel column, channel), and
out = F.linear(x, W, b) in float64 with W, b = loom's float32 parameters; dW, db by autograd
for loom's dout. Prints one line per comparison and `patch parity: N passed, M failed`;
exits 1 on any failure, missing tensor or wrong shape.
"""

import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loom_ref import load_safetensors  # noqa: E402
from parity_util import Report  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Tolerances.
# patches: loom computes v / 127.5 - 1 in double and rounds once to float, so every element
#   must equal float32(reference) EXACTLY (tolerance 0); the printed max_abs is against the
#   float64 value (<= half a float32 ulp of 1, 6e-8).
# out, grad.w, grad.b: float32 sums of K products (K = D = 48 for out, N <= 12 for the grads).
#   The classical bound is K * u * sum|terms| with u = 2^-24 = 6e-8; loom's inputs are float32
#   roundings of the float64 reference (another u per term). We allow
#       tol = 8 * (K + 2) * u * sum_k |a_k b_k|  + 1e-12
#   elementwise, i.e. the worst-case bound with an 8x margin: tight enough that a wrong element
#   order, a missing bias or a transposed weight (errors of order sum|terms|) fail by far.
U32 = 2.0 ** -24


def compare(rep, name, got, ref, tol):
    """|got - ref| <= tol everywhere (got finite); prints max abs diff and worst diff/tol."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        rep.line(name, False, f"shape {got.shape} != reference {ref.shape}")
        return
    diff = np.abs(got - ref)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), diff.shape)
    ok = bool(np.all(np.isfinite(got))) and bool(np.all(diff <= tol))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tol > 0, diff / np.where(tol > 0, tol, 1), np.where(diff > 0, np.inf, 0))
    worst = float(ratio.max()) if diff.size else 0.0
    rep.line(name, ok, f"max_abs {max_abs:.3e}  max|ref| {scale:.3g}  "
                       f"tol {float(tol.min()):.1e}..{float(tol.max()):.1e}  worst diff/tol {worst:.2g}")


def patchify_ref(image, P):
    """image: uint8 (H, W, 3) -> float64 (R*Cn, P*P*3), R, Cn (the spec in patch.h)."""
    H, W, _ = image.shape
    R, Cn = -(-H // P), -(-W // P)
    x = torch.full((R * P, Cn * P, 3), -1.0, dtype=torch.float64)
    x[:H, :W, :] = torch.from_numpy(image.astype(np.float64)) / 127.5 - 1.0
    x = x.reshape(R, P, Cn, P, 3).permute(0, 2, 1, 3, 4).reshape(R * Cn, P * P * 3)
    return x, R, Cn


def main(argv):
    if len(argv) != 2:
        print("usage: patch_parity.py DIR", file=sys.stderr)
        return 2
    path = os.path.join(argv[1], "patch.safetensors")
    rep = Report('patch parity', 22)
    try:
        t, meta = load_safetensors(path)
        P, C, n_cases = int(meta["patch"]), int(meta["d_model"]), int(meta["n_cases"])
    except (OSError, ValueError, KeyError) as e:
        print(f"patch_parity: {path}: {e}", file=sys.stderr)
        print("patch parity: 0 passed, 1 failed")
        return 1
    D = P * P * 3
    print(f"patch_parity: {path}: P={P} C={C} D={D}, {n_cases} cases")

    def get(name, shape=None):
        return rep.tensor(t, name, shape)

    W32, b32 = get("patch.w", (C, D)), get("patch.b", (C,))
    if W32 is None or b32 is None:
        return rep.summary()

    for i in range(n_cases):
        pre = f"case{i}"
        image = get(f"{pre}.image")
        if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            rep.line(f"{pre}.image", False, "missing or not U8 (H, W, 3)")
            continue
        x, R, Cn = patchify_ref(image, P)
        N = R * Cn
        H, W = image.shape[:2]
        print(f"-- {pre}: image {W}x{H} -> {R}x{Cn} patches of {P}x{P}")

        grid = get(f"{pre}.grid", (2,))
        if grid is not None:
            ok = (int(grid[0]), int(grid[1])) == (R, Cn)
            rep.line(f"{pre}.grid", ok, f"loom {int(grid[0])}x{int(grid[1])}, reference {R}x{Cn}")

        patches = get(f"{pre}.patches", (N, D))
        if patches is not None:
            # Exact: loom's float32 must be the float32 rounding of the float64 value.
            exact = np.array_equal(patches, x.numpy().astype(np.float32))
            diff = float(np.abs(patches.astype(np.float64) - x.numpy()).max())
            n_pad = int((x == -1.0).sum()) - int((image == 0).sum())
            rep.line(f"{pre}.patches", exact,
                     f"{'bit-exact' if exact else 'NOT bit-exact'} vs float32(ref); max_abs vs "
                     f"float64 {diff:.3e}; {n_pad} padded values")

        dout = get(f"{pre}.dout", (N, C))
        out = get(f"{pre}.out", (N, C))
        gw, gb = get(f"{pre}.grad.w", (C, D)), get(f"{pre}.grad.b", (C,))
        if dout is None:
            continue
        Wt = torch.tensor(W32, dtype=torch.float64, requires_grad=True)
        bt = torch.tensor(b32, dtype=torch.float64, requires_grad=True)
        y = torch.nn.functional.linear(x, Wt, bt)
        d = torch.from_numpy(dout.astype(np.float64))
        y.backward(d)
        xa, Wa, da = x.abs(), Wt.detach().abs(), d.abs()
        if out is not None:
            bound = xa @ Wa.T + bt.detach().abs()          # (N, C): sum |x_k w_k| + |b|
            compare(rep, f"{pre}.out", out, y.detach().numpy(),
                    8 * (D + 2) * U32 * bound.numpy() + 1e-12)
        if gw is not None:
            bound = da.T @ xa                              # (C, D): sum_n |dout x|
            compare(rep, f"{pre}.grad.w", gw, Wt.grad.numpy(),
                    8 * (N + 2) * U32 * bound.numpy() + 1e-12)
        if gb is not None:
            bound = da.sum(0)                              # (C): sum_n |dout|
            compare(rep, f"{pre}.grad.b", gb, bt.grad.numpy(),
                    8 * (N + 2) * U32 * bound.numpy() + 1e-12)
    return rep.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
