"""PyTorch reference for loom's VQ image autoencoder, written from the spec in src/heads/vq.h.

The independent second implementation that tests/reference/vq_parity.py holds loom's C code
(src/heads/vq.c, src/heads/conv.c) to. It is written to be read next to the spec, not to be
fast: torch.nn.functional.conv2d / conv_transpose2d in NCHW, autograd for every gradient, the
nearest code by explicit squared distances, the EMA update as the formula reads.

Layout conversions (loom is NHWC):
  activations      loom (B, H, W, C)            torch (B, C, H, W)      permute(0, 3, 1, 2)
  conv weight      loom (Cout, KH, KW, Cin)     torch (Cout, Cin, KH, KW)  permute(0, 3, 1, 2)
  transposed conv  loom (Cin, KH, KW, Cout)     torch (Cin, Cout, KH, KW)  permute(0, 3, 1, 2)
(the same permutation both ways: torch.nn.functional.conv_transpose2d's weight is
(in_channels, out_channels, KH, KW)); gradients go back with permute(0, 2, 3, 1).

Contents:
  tensor_names(cfg)      the trained tensors and the state tensors, names as in vq.h
  VQRef(cfg, tensors)    the model from loom's float32 arrays, in float64 (or dtype)
  VQRef.forward(x)       pixels NHWC -> dict(loss, mse, commit, recon, ze, zq, codes, dist)
  ema_update(...)        one EMA step of the codebook (Laplace-smoothed counts)
"""

import torch
import torch.nn.functional as F

EMA_EPS = 1e-5  # VQ_EMA_EPS in vq.h


def tensor_names(cfg):
    """(trained, state): lists of (name, kind) in vq.h's order; kind is 'conv', 'tconv',
    'bias' or 'state'."""
    L, R = len(cfg["channels"]), cfg["res_blocks"]
    trained = []
    for i in range(L):
        trained += [(f"vq.enc.{i}.weight", "conv"), (f"vq.enc.{i}.bias", "bias")]
    for r in range(R):
        for k in (1, 2):
            trained += [(f"vq.enc.res.{r}.conv{k}.weight", "conv"),
                        (f"vq.enc.res.{r}.conv{k}.bias", "bias")]
    trained += [("vq.enc.out.weight", "conv"), ("vq.enc.out.bias", "bias"),
                ("vq.dec.in.weight", "conv"), ("vq.dec.in.bias", "bias")]
    for r in range(R):
        for k in (1, 2):
            trained += [(f"vq.dec.res.{r}.conv{k}.weight", "conv"),
                        (f"vq.dec.res.{r}.conv{k}.bias", "bias")]
    for i in reversed(range(L)):
        trained += [(f"vq.dec.{i}.weight", "tconv"), (f"vq.dec.{i}.bias", "bias")]
    state = [("vq.codebook", "state"), ("vq.ema_count", "state"), ("vq.ema_sum", "state")]
    return trained, state


def expected_shapes(cfg):
    """name -> loom shape, from the table in vq.h."""
    ch, R, D, K = cfg["channels"], cfg["res_blocks"], cfg["code_dim"], cfg["codes"]
    L, C = len(ch), ch[-1]
    below = lambda i: ch[i - 1] if i > 0 else 3  # noqa: E731
    s = {}
    for i in range(L):
        s[f"vq.enc.{i}.weight"] = (ch[i], 4, 4, below(i))
        s[f"vq.enc.{i}.bias"] = (ch[i],)
        s[f"vq.dec.{i}.weight"] = (ch[i], 4, 4, below(i))
        s[f"vq.dec.{i}.bias"] = (below(i),)
    for part in ("enc", "dec"):
        for r in range(R):
            for k in (1, 2):
                s[f"vq.{part}.res.{r}.conv{k}.weight"] = (C, 3, 3, C)
                s[f"vq.{part}.res.{r}.conv{k}.bias"] = (C,)
    s["vq.enc.out.weight"] = (D, 1, 1, C)
    s["vq.enc.out.bias"] = (D,)
    s["vq.dec.in.weight"] = (C, 3, 3, D)
    s["vq.dec.in.bias"] = (C,)
    s["vq.codebook"] = (K, D)
    s["vq.ema_count"] = (K,)
    s["vq.ema_sum"] = (K, D)
    return s


class VQRef:
    """The autoencoder of vq.h with loom's parameters (numpy arrays, loom layout)."""

    def __init__(self, cfg, tensors, dtype=torch.float64):
        self.cfg = cfg
        self.dtype = dtype
        trained, _ = tensor_names(cfg)
        self.trained = [n for n, _ in trained]
        self.p = {}
        for name, kind in trained:
            t = torch.tensor(tensors[name], dtype=dtype)
            if kind in ("conv", "tconv"):
                t = t.permute(0, 3, 1, 2).contiguous()
            self.p[name] = t.requires_grad_(True)
        self.codebook = torch.tensor(tensors["vq.codebook"], dtype=dtype)  # (K, D), no grad

    def grad_loom_layout(self, name):
        """The gradient of a trained tensor in loom's layout (numpy)."""
        g = self.p[name].grad
        if g.dim() == 4:
            g = g.permute(0, 2, 3, 1)
        return g.detach().numpy()

    def _conv(self, x, prefix, pad):
        return F.conv2d(x, self.p[prefix + ".weight"], self.p[prefix + ".bias"], stride=1,
                        padding=pad)

    def _res_stack(self, x, part):
        for r in range(self.cfg["res_blocks"]):
            pre = f"vq.{part}.res.{r}"
            h = self._conv(F.relu(x), pre + ".conv1", 1)
            x = x + self._conv(F.relu(h), pre + ".conv2", 1)
        return x

    def encode(self, x):
        """x (B, 3, H, W) -> z_e (B, D, h, w)."""
        for i in range(len(self.cfg["channels"])):
            x = F.relu(F.conv2d(x, self.p[f"vq.enc.{i}.weight"], self.p[f"vq.enc.{i}.bias"],
                                stride=2, padding=1))
        x = self._res_stack(x, "enc")
        return self._conv(F.relu(x), "vq.enc.out", 0)

    def quantize(self, ze):
        """z_e (B, D, h, w) -> codes (B, h, w), z_q (B, D, h, w), dist (B*h*w, K): the full
        squared distances, argmin with the first (lowest) index on ties."""
        B, D, h, w = ze.shape
        z = ze.detach().permute(0, 2, 3, 1).reshape(-1, D)
        dist = ((z[:, None, :] - self.codebook[None, :, :]) ** 2).sum(-1)
        codes = torch.argmin(dist, dim=1)
        zq = self.codebook[codes].reshape(B, h, w, D).permute(0, 3, 1, 2)
        return codes.reshape(B, h, w), zq, dist

    def decode(self, zq):
        """z_q (B, D, h, w) -> recon (B, 3, H, W), no clamping."""
        y = F.relu(self._conv(zq, "vq.dec.in", 1))
        y = F.relu(self._res_stack(y, "dec"))
        L = len(self.cfg["channels"])
        for i in reversed(range(L)):
            y = F.conv_transpose2d(y, self.p[f"vq.dec.{i}.weight"], self.p[f"vq.dec.{i}.bias"],
                                   stride=2, padding=1)
            if i > 0:
                y = F.relu(y)
        return y

    def forward(self, pixels_nhwc):
        """pixels (B, H, W, 3) in [-1, 1] (numpy or tensor). Returns a dict of tensors, NHWC:
        loss, mse, commit (0-dim), recon (B, H, W, 3), ze, zq (B, h, w, D), codes (B, h, w),
        dist (B*h*w, K)."""
        x = torch.as_tensor(pixels_nhwc, dtype=self.dtype).permute(0, 3, 1, 2)
        ze = self.encode(x)
        codes, zq, dist = self.quantize(ze)
        zq_st = ze + (zq - ze).detach()  # straight-through: the decoder's gradient goes to z_e
        recon = self.decode(zq_st)
        mse = F.mse_loss(recon, x)
        commit = self.cfg["beta"] * F.mse_loss(ze, zq.detach())
        nhwc = lambda t: t.permute(0, 2, 3, 1)  # noqa: E731
        return {"loss": mse + commit, "mse": mse, "commit": commit, "recon": nhwc(recon),
                "ze": nhwc(ze), "zq": nhwc(zq), "codes": codes, "dist": dist}


def ema_update(codes, ze, ema_count, ema_sum, K, decay, eps=EMA_EPS):
    """One EMA step (vq.h): codes (N,), ze (N, D), ema_count (K,), ema_sum (K, D), all
    tensors. Returns (codebook, ema_count, ema_sum), new tensors."""
    onehot = F.one_hot(codes.reshape(-1), K).to(ze.dtype)  # (N, K)
    n_k = onehot.sum(0)
    s_k = onehot.T @ ze
    count = decay * ema_count + (1 - decay) * n_k
    total = decay * ema_sum + (1 - decay) * s_k
    n = count.sum()
    smoothed = (count + eps) / (n + K * eps) * n
    return total / smoothed[:, None], count, total
