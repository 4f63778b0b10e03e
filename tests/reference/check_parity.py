"""Compare loom's dumped forward/backward/AdamW results with a float64 PyTorch reference.

Usage: check_parity.py DIR

DIR/model.safetensors   the initial model (docs/model-format.md)
DIR/io.safetensors      what loom computed from it:
    tokens      I32 (B, T)
    targets     I32 (B, T)        -1 = ignored (right padding, prompt positions)
    logits      F32 (B, T, V)
    loss        F32 (1,)
    grad.<p>    F32, shape of p   gradient of the mean loss at the initial params, every param p
    step<k>.<p> F32, shape of p   params after k AdamW steps, k = 1, 2, 3; each step is
                                  forward/backward on the same tokens/targets, clip by global
                                  norm, AdamW update with lr[k-1]
    step_loss   F32 (3,)          loss before each step's update
    lr          F32 (3,)
    __metadata__ "adamw": JSON {"beta1", "beta2", "eps", "weight_decay", "max_norm"}

The reference (tests/reference/loom_ref.py) runs in float64 from the file's float32 values,
with torch.optim.AdamW (decay / no-decay groups) and torch.nn.utils.clip_grad_norm_; step k
of the reference starts from loom's step k-1 params (see the tolerances below for why).
Prints one line per compared quantity and a final `parity: N passed, M failed`; exits 1 if
anything failed, is missing, or has the wrong shape.
"""

import json
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loom_ref import Decoder, adamw_groups, load_safetensors  # noqa: E402
from parity_util import Report  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Tolerances. loom computes in float32 (unit roundoff 6e-8); on the parity configs its errors
# are ~1e-7..1e-6 relative. Measured worst diff/tol (loom's parity_dump, and 36 float32 runs of
# the reference itself over 3 configs, 6 seeds, 2 lr schedules): logits/loss ~1e-3, grads
# ~5e-4, params after steps 0.14. Injected bugs fail by 2x..1e4x their tolerance: rope pairing,
# window off by one, GQA head mapping, eps outside the sqrt, loss averaged over ignored
# targets, decay on norms / no decay, no clipping, reset Adam state, wrong lr or bias
# correction at step 2, a 1% error in one gradient element, 1e-4 on one parameter.
#
# logits, loss, step_loss: max|got - ref| <= LOGIT_RTOL * max(1, max|ref|)
LOGIT_RTOL = 1e-4
#
# grad.<p>: max|got - ref| <= GRAD_RTOL * max|ref| + GRAD_ATOL, with max|ref| taken per layer
# slice for the stacked (L, ...) tensors, so a bug confined to a layer whose gradients are
# small cannot hide under another layer's large ones.
GRAD_RTOL = 1e-3
GRAD_ATOL = 1e-10
#
# step<k>.<p> (STEPS). Step k of the reference starts from loom's own step<k-1> params
# ("teacher forcing"; step 1 from the file), keeping its own AdamW state, and its result is
# compared per element with loom's step<k>:
#     |got - ref| <= PARAM_RTOL * |ref| + PARAM_ATOL + lr_k * (UPDATE_RTOL + adam_noise)
#     adam_noise  = min(ADAM_CAP, ADAM_NOISE_GAIN * dg_k / (sqrt(vhat_k) + eps))
#
# Why the adam_noise term exists (it is the propagated gradient tolerance, not a loosening):
# Adam normalises each element's update, u = mhat / (sqrt(vhat) + eps), so an absolute
# gradient error dg becomes an update error of up to ~2 dg / (sqrt(vhat) + eps), however small
# the element's gradient. Most elements have |g| >> dg and their update agrees to ~1e-6
# relative. A few have gradients at float32's noise floor (|g| ~ eps, or a cancellation to
# ~1e-6 of their slice's largest gradient): their update direction is decided by rounding, and
# float32 and float64 legitimately differ by up to 2 * lr there (seen with the throwaway
# generator: 2.2e-2 * lr on one element of w_gate, eps = 1e-8). One lr-relative tolerance for
# the whole tensor would be either far too loose for the well-determined elements or fail on
# these. So the bound is per element, from the reference optimizer's own state (vhat_k) and a
# gradient-noise estimate dg_k per slice (layer of a stacked tensor, row of tok_emb/lm_head,
# whole final_norm): the relative error loom's gradients showed at the initial params in that
# slice (max|grad.<p> - ref| / max|ref|, at least GRAD_NOISE_FLOOR) times the slice's largest
# clipped reference gradient at step k. Rows matter for tied embeddings: the lm_head part of a
# row's gradient scales with softmax probabilities spanning many decades, and each row is
# computed to float32 relative precision. A slice whose reference gradient is exactly 0
# (untied embedding rows of tokens absent from the batch) uses loom's own value there
# (normally exactly 0 too), so those rows are checked to decay only.
#
# Why teacher forcing: in a free-running comparison such an element's O(lr) divergence after
# step 1 changes the forward pass, so step 2's gradients of the neighbouring weights (same MLP
# unit) differ by far more than float32 noise, and Adam amplifies that again (seen: w_up off by
# 44x its tolerance at step 2). Restarting every step from loom's params keeps each step's
# gradients equal to float32 noise; the optimizer state (m, v, step count, bias correction, lr
# schedule, decay groups, clipping) is still carried across steps and checked: a wrong one moves
# the well-determined elements by O(lr), or by lr * wd * |p| >> PARAM_RTOL * |p|.
# Each line reports how many elements were checked loosely (tolerance > 0.1 * lr).
PARAM_RTOL = 1e-6        # ~8 float32 ulps of the parameter itself
PARAM_ATOL = 1e-9
UPDATE_RTOL = 1e-5       # float32 arithmetic inside the AdamW update itself
ADAM_NOISE_GAIN = 4.0    # 2x the first-order bound 2 dg / (sqrt(vhat) + eps)
ADAM_CAP = 2.0           # two opposite updates of magnitude <= ~1 (|mhat| <~ sqrt(vhat))
GRAD_NOISE_FLOOR = 1e-7  # relative; used when loom's gradients match the reference exactly
# ----------------------------------------------------------------------------------------------

N_STEPS = 3
LOOSE_FRACTION = 0.1     # an element is "loosely checked" if its tolerance > this * lr


def compare(rep, name, got, ref, tol, scale, extra=""):
    """Record whether |got - ref| <= tol everywhere (got must also be finite).

    got, ref: float64 arrays of one shape. tol: scalar or array broadcastable to ref.
    scale: the reference magnitude the printed max_rel is relative to."""
    diff = np.abs(got - ref)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = max_abs / scale if scale > 0 else max_abs
    ok = bool(np.all(np.isfinite(got))) and bool(np.all(diff <= tol))
    tol = np.broadcast_to(tol, diff.shape)
    tol_txt = f"{float(tol.min()):.1e}" if float(tol.min()) == float(tol.max()) else \
        f"{float(tol.min()):.1e}..{float(tol.max()):.1e}"
    worst = float((diff / tol).max()) if diff.size else 0.0
    rep.line(name, ok, f"max_abs {max_abs:.3e}  max_rel {max_rel:.3e}  tol {tol_txt}  "
                       f"worst diff/tol {worst:.2g}{extra}")


def is_stacked(name, p, n_layers):
    """True for the per-layer tensors stacked as (L, ...)."""
    return name not in ("decoder.tok_emb", "decoder.lm_head", "decoder.final_norm") \
        and p.dim() >= 2 and p.shape[0] == n_layers


def slice_max(a, by_first_axis):
    """max|a| as an array broadcastable to a: per slice a[i] if by_first_axis, else overall."""
    a = np.abs(a)
    if by_first_axis and a.ndim >= 2:
        return a.reshape(a.shape[0], -1).max(axis=1).reshape((-1,) + (1,) * (a.ndim - 1))
    return np.array(a.max() if a.size else 0.0)


class GradNoise:
    """Gradient-noise model of one parameter for the step tolerances (see STEPS above).

    Built from loom's and the reference's gradients at the initial params; at(g) gives the
    assumed absolute noise of loom's gradient when the reference gradient is g (clipped)."""

    def __init__(self, got, ref, by_rows):
        self.by_rows = by_rows                        # slices: rows (or layers) vs the whole
        rmax = slice_max(ref, by_rows)
        if got is None or not np.all(np.isfinite(got)):
            self.rel = np.maximum(GRAD_RTOL, 0 * rmax)  # unknown: the worst accepted error
            self.zero_abs = 0 * rmax
            return
        err = slice_max(got - ref, by_rows)
        safe = np.where(rmax > 0, rmax, 1.0)
        self.rel = np.where(rmax > 0, np.maximum(GRAD_NOISE_FLOOR, err / safe), 0.0)
        self.zero_abs = np.where(rmax > 0, 0.0, slice_max(got, by_rows))  # all-zero slices

    def at(self, g):
        return self.rel * slice_max(g, self.by_rows) + self.zero_abs


def main(argv):
    if len(argv) != 2:
        print("usage: check_parity.py DIR", file=sys.stderr)
        return 2
    d = argv[1]
    rep = Report('parity', 26)
    model_path = os.path.join(d, "model.safetensors")
    io_path = os.path.join(d, "io.safetensors")
    for path in (model_path, io_path):
        if not os.path.isfile(path):
            rep.fail(os.path.basename(path), f"{path}: no such file")
            return rep.summary()

    try:
        model = Decoder.from_file(model_path, dtype=torch.float64)
        io, meta = load_safetensors(io_path)
        hp = json.loads(meta["adamw"]) if "adamw" in meta else None
        if hp is not None:
            hp = {k: float(hp[k]) for k in ("beta1", "beta2", "eps", "weight_decay", "max_norm")}
    except (OSError, ValueError, KeyError, TypeError) as e:  # malformed files or metadata
        rep.fail("load", f"{type(e).__name__}: {e}")
        return rep.summary()
    params = dict(model.named_parameters())
    L, V = model.cfg["n_layers"], model.cfg["vocab_size"]

    def get(key, shape):
        """io[key] as float64 if present with the expected shape; otherwise record a failure."""
        if key not in io:
            rep.fail(key, "missing from io.safetensors")
            return None
        if tuple(io[key].shape) != tuple(shape):
            rep.fail(key, f"shape {list(io[key].shape)}, expected {list(shape)}")
            return None
        return io[key].astype(np.float64)

    # --- inputs --------------------------------------------------------------------------------
    if hp is None:
        rep.fail("adamw", "metadata key missing from io.safetensors")
        return rep.summary()
    tok, tgt = io.get("tokens"), io.get("targets")
    if tok is None or tgt is None or tok.ndim != 2 or tgt.shape != tok.shape:
        rep.fail("tokens/targets", "missing, or not two (B, T) tensors of one shape")
        return rep.summary()
    if tok.min() < 0 or tok.max() >= V or tgt.min() < -1 or tgt.max() >= V:
        rep.fail("tokens/targets", f"ids outside [0, {V}) (targets may also be -1)")
        return rep.summary()
    tokens = torch.from_numpy(tok.astype(np.int64))
    targets = torch.from_numpy(tgt.astype(np.int64))
    B, T = tokens.shape
    lrs = get("lr", (N_STEPS,))
    print(f"check_parity: {d}: B={B} T={T} targets>=0: {int((tgt >= 0).sum())}\n"
          f"  config {json.dumps(model.cfg)}\n  adamw {json.dumps(hp)}")

    # --- forward and backward at the initial params ---------------------------------------------
    logits, loss = model(tokens, targets)
    loss.backward()
    got = get("logits", (B, T, V))
    if got is not None:
        ref = logits.detach().numpy()
        scale = max(1.0, float(np.abs(ref).max()))
        compare(rep, "logits", got, ref, LOGIT_RTOL * scale, scale)
    got = get("loss", (1,))
    if got is not None:
        ref = loss.detach().numpy().reshape(1)
        scale = max(1.0, float(abs(ref[0])))
        compare(rep, "loss", got, ref, LOGIT_RTOL * scale, scale)

    grad_noise = {}  # name -> GradNoise (for the step tolerances)
    for n, p in params.items():
        ref = p.grad.numpy()
        gmax = slice_max(ref, is_stacked(n, p, L))
        got = get("grad." + n, p.shape)
        if got is not None:
            compare(rep, "grad." + n, got, ref, GRAD_RTOL * gmax + GRAD_ATOL, float(gmax.max()))
        by_rows = is_stacked(n, p, L) or n in ("decoder.tok_emb", "decoder.lm_head")
        grad_noise[n] = GradNoise(got, ref, by_rows)

    # --- AdamW steps ----------------------------------------------------------------------------
    if lrs is None:
        return rep.summary()
    opt = torch.optim.AdamW(adamw_groups(model, hp["weight_decay"]), lr=float(lrs[0]),
                            betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    b2, eps = hp["beta2"], hp["eps"]
    step_losses = []
    for k in range(1, N_STEPS + 1):
        lr = float(lrs[k - 1])
        if k > 1:
            # Teacher forcing: start step k from loom's own step k-1 params (see STEPS above).
            with torch.no_grad():
                for n, p in params.items():
                    prev = io.get(f"step{k - 1}.{n}")
                    if prev is not None and tuple(prev.shape) == tuple(p.shape):
                        p.copy_(torch.from_numpy(prev.astype(np.float64)))
        opt.zero_grad()
        _, loss = model(tokens, targets)
        loss.backward()
        step_losses.append(loss.item())
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), hp["max_norm"]))
        coef = min(1.0, hp["max_norm"] / (norm + 1e-6))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        loose_total = 0
        for n, p in params.items():
            got = get(f"step{k}.{n}", p.shape)
            if got is None:
                continue
            ref = p.detach().numpy()
            s = np.sqrt(opt.state[p]["exp_avg_sq"].numpy() / (1.0 - b2 ** k))  # sqrt(vhat_k)
            dg = grad_noise[n].at(p.grad.numpy())                      # p.grad is clipped
            noise = np.minimum(ADAM_CAP, ADAM_NOISE_GAIN * dg / (s + eps))
            tol = PARAM_RTOL * np.abs(ref) + PARAM_ATOL + lr * (UPDATE_RTOL + noise)
            loose = int((tol > LOOSE_FRACTION * lr).sum())
            loose_total += loose
            compare(rep, f"step{k}.{n}", got, ref, tol, max(1.0, float(np.abs(ref).max())),
                    f"  loose {loose}/{ref.size}")
        print(f"  step {k}: lr {lr:.3g}, grad norm {norm:.4g}, clip coef {coef:.4g}, "
              f"{loose_total} elements checked loosely (tol > {LOOSE_FRACTION} * lr)")
    got = get("step_loss", (N_STEPS,))
    if got is not None:
        ref = np.array(step_losses)
        scale = max(1.0, float(np.abs(ref).max()))
        compare(rep, "step_loss", got, ref, LOGIT_RTOL * scale, scale)

    return rep.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
