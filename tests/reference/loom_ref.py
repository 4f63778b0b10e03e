"""PyTorch reference for loom's decoder, written from docs/model-format.md.

This file is the independent second implementation that loom's C code is checked against
(tests/reference/check_parity.py) and the baseline that loom is benchmarked against
(bench/torch_bench.py). It is written to be read next to the spec, not to be fast: explicit
matmuls, an explicit causal + sliding-window mask, kv heads repeated for GQA, interleaved RoPE.

Contents:
  load_safetensors(path) -> (tensors, metadata)   json + numpy only, no safetensors package
  save_safetensors(path, tensors, metadata)       the inverse, for tests and tools
  Decoder(config)                                  parameters named exactly like the file's tensors
  Decoder.from_file(path, dtype)                   build from a loom model file
  KVCache                                          per-layer key/value cache for decoding
  adamw_groups(model, weight_decay)                the two AdamW parameter groups of the spec

Shapes follow the spec: B batch, T time, C d_model, V vocab, L layers, H query heads,
KVH key/value heads, HD head dim, F d_ff.
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn

# ----------------------------------------------------------------------------------------------
# safetensors I/O (json + numpy)

# safetensors dtype string -> numpy little-endian dtype. BF16 has no numpy type; it is widened
# to float32 on load (its bits are the top half of a float32).
_NP_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# A header larger than this is treated as a corrupt file rather than read into memory.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def load_safetensors(path):
    """Read a safetensors file. Returns (tensors: dict name -> np.ndarray, metadata: dict).

    Every tensor's byte range is checked against the file and against its dtype and shape;
    a malformed file raises ValueError naming the file and the tensor.
    """
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > _MAX_HEADER_BYTES or 8 + header_len > len(blob):
        raise ValueError(f"{path}: header length {header_len} exceeds the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    data = memoryview(blob)[8 + header_len:]

    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if not (0 <= begin <= end <= len(data)):
            raise ValueError(f"{path}: tensor {name}: byte range [{begin}, {end}) outside the data "
                             f"({len(data)} bytes)")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if dtype == "BF16":
            if end - begin != 2 * count:
                raise ValueError(f"{path}: tensor {name}: {end - begin} bytes for BF16 {shape}")
            bits = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype in _NP_DTYPES:
            npdt = _NP_DTYPES[dtype]
            if end - begin != npdt.itemsize * count:
                raise ValueError(f"{path}: tensor {name}: {end - begin} bytes for {dtype} {shape}")
            arr = np.frombuffer(data[begin:end], dtype=npdt)
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        # Copy so the array owns aligned, writable memory (frombuffer views are read-only).
        tensors[name] = arr.reshape(shape).copy()
    return tensors, metadata


_ST_DTYPES = {v: k for k, v in _NP_DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    """Write dict name -> np.ndarray (or torch.Tensor) to a safetensors file.

    metadata values must be strings (the format's rule); dicts/lists are JSON-encoded here.
    Tensors are laid out in sorted-name order, each 8-byte aligned.
    """
    header = {}
    if metadata:
        header["__metadata__"] = {k: v if isinstance(v, str) else json.dumps(v)
                                  for k, v in metadata.items()}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy()
        arr = np.ascontiguousarray(t)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        raw = arr.tobytes()
        header[name] = {"dtype": _ST_DTYPES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        pad = (-len(raw)) % 8
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)  # keep the data section 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)


# ----------------------------------------------------------------------------------------------
# Decoder

_CONFIG_KEYS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff",
                "max_seq", "window", "rope_theta", "norm_eps", "tie_embeddings")


def param_shapes(cfg):
    """Tensor name -> shape for a config dict, exactly as in the spec's table."""
    V, C, L = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"]
    H, KVH, F = cfg["n_heads"], cfg["n_kv_heads"], cfg["d_ff"]
    HD = C // H
    shapes = {
        "decoder.tok_emb": (V, C),
        "decoder.attn_norm": (L, C),
        "decoder.wq": (L, H * HD, C),
        "decoder.wk": (L, KVH * HD, C),
        "decoder.wv": (L, KVH * HD, C),
        "decoder.wo": (L, C, H * HD),
        "decoder.mlp_norm": (L, C),
        "decoder.w_gate": (L, F, C),
        "decoder.w_up": (L, F, C),
        "decoder.w_down": (L, C, F),
        "decoder.final_norm": (C,),
    }
    if not cfg["tie_embeddings"]:
        shapes["decoder.lm_head"] = (V, C)
    return shapes


def rmsnorm(x, w, eps):
    """x / sqrt(mean(x^2) + eps) * w over the last dim. x: (..., C), w: (C,)."""
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def rope_tables(n, HD, theta, dtype):
    """cos, sin of the rotary angles for positions 0..n-1: each (n, HD/2).
    freq_i = theta^(-2i/HD), angle = pos * freq_i; computed in float64, cast to dtype."""
    i = torch.arange(HD // 2, dtype=torch.float64)
    freq = theta ** (-2.0 * i / HD)                                   # (HD/2,)
    a = torch.arange(n, dtype=torch.float64)[:, None] * freq[None, :]  # (n, HD/2)
    return torch.cos(a).to(dtype), torch.sin(a).to(dtype)


def rope(x, cos, sin):
    """Interleaved-pair rotary embedding (llama2.c). x: (B, T, nh, HD); cos, sin: (T, HD/2)
    for x's positions. (x[2i], x[2i+1]) -> (x[2i] cos a - x[2i+1] sin a,
                                              x[2i] sin a + x[2i+1] cos a)."""
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]           # (1, T, 1, HD/2)
    x0, x1 = x[..., 0::2], x[..., 1::2]                               # (B, T, nh, HD/2) each
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack((y0, y1), dim=-1).flatten(-2)                  # re-interleave


def attention_mask(pos0, T, S, window):
    """(T, S) bool, True where query position pos0+i may attend to key position j:
    j <= pos0+i (causal) and, with a window, pos0+i - j < window."""
    i = torch.arange(pos0, pos0 + T)[:, None]
    j = torch.arange(S)[None, :]
    allowed = j <= i
    if window > 0:
        allowed = allowed & (i - j < window)
    return allowed


class KVCache:
    """Keys and values of past positions, per layer, for incremental decoding.

    k[l], v[l]: (B, KVH, max_len, HD), already rotated (keys) as they were when computed.
    `length` is the number of positions filled; the next forward() starts at that position.
    """

    def __init__(self, cfg, batch, max_len, dtype=torch.float32):
        KVH, HD = cfg["n_kv_heads"], cfg["d_model"] // cfg["n_heads"]
        self.k = [torch.zeros(batch, KVH, max_len, HD, dtype=dtype) for _ in range(cfg["n_layers"])]
        self.v = [torch.zeros(batch, KVH, max_len, HD, dtype=dtype) for _ in range(cfg["n_layers"])]
        self.max_len = max_len
        self.length = 0


class Decoder(nn.Module):
    """loom's decoder. Parameters live in the submodule `decoder`, so named_parameters() and
    state_dict() use the file's tensor names ('decoder.wq', ...), stacked over layers."""

    def __init__(self, config, dtype=torch.float32):
        super().__init__()
        if isinstance(config, str):
            config = json.loads(config)
        missing = [k for k in _CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(f"config is missing {missing}")
        cfg = dict(config)
        for k in _CONFIG_KEYS:
            cfg[k] = float(cfg[k]) if k in ("rope_theta", "norm_eps") else int(cfg[k])
        C, H, KVH = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
        if H <= 0 or KVH <= 0 or H % KVH or C % H or (C // H) % 2:
            raise ValueError(f"bad head config: d_model={C} n_heads={H} n_kv_heads={KVH}")
        self.cfg = cfg
        self._rope = {}  # dtype -> (cos, sin) tables, see rope_tables()

        self.decoder = nn.Module()
        for name, shape in param_shapes(cfg).items():
            short = name.split(".", 1)[1]
            self.decoder.register_parameter(short, nn.Parameter(torch.zeros(shape, dtype=dtype)))
        self.init_weights(0)

    def init_weights(self, seed, std=0.02):
        """A plain random init (normal(0, std) matrices, unit norm weights) for benchmarks and
        tests that do not load a file. Parity does not depend on it."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.decoder.named_parameters():
                if name.endswith("norm"):
                    p.fill_(1.0)
                else:
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)

    @classmethod
    def from_file(cls, path, dtype=torch.float32):
        """Build a Decoder from a loom model file; parameters cast to dtype.

        Every decoder.* tensor of the spec must be present with the spec's shape, and no other
        decoder.* tensor may be (a tied model has no lm_head). Non-decoder tensors are ignored.
        """
        tensors, meta = load_safetensors(path)
        if "config" not in meta:
            raise ValueError(f"{path}: no config in __metadata__")
        model = cls(json.loads(meta["config"]), dtype=dtype)
        expected = param_shapes(model.cfg)
        extra = [n for n in tensors if n.startswith("decoder.") and n not in expected]
        if extra:
            raise ValueError(f"{path}: unexpected tensors {extra}")
        with torch.no_grad():
            for name, shape in expected.items():
                if name not in tensors:
                    raise ValueError(f"{path}: missing tensor {name}")
                arr = tensors[name]
                if tuple(arr.shape) != tuple(shape):
                    raise ValueError(f"{path}: {name} has shape {list(arr.shape)}, "
                                     f"expected {list(shape)}")
                model.get_parameter(name).copy_(torch.from_numpy(arr.astype(np.float64)))
        return model

    def attention(self, l, h, cos, sin, allowed, cache):
        """Self-attention of layer l. h: (B, T, C) normed input; cos, sin: (T, HD/2) rotary
        tables of its positions; allowed: (T, S) mask over the S visible key positions.
        With a cache, this call's keys/values are appended and attention covers the cache."""
        cfg, d = self.cfg, self.decoder
        B, T, C = h.shape
        H, KVH = cfg["n_heads"], cfg["n_kv_heads"]
        HD = C // H

        q = (h @ d.wq[l].T).view(B, T, H, HD)
        k = (h @ d.wk[l].T).view(B, T, KVH, HD)
        v = (h @ d.wv[l].T).view(B, T, KVH, HD)
        q = rope(q, cos, sin).transpose(1, 2)                          # (B, H, T, HD)
        k = rope(k, cos, sin).transpose(1, 2)                          # (B, KVH, T, HD)
        v = v.transpose(1, 2)                                          # (B, KVH, T, HD)

        if cache is not None:
            pos0 = cache.length
            cache.k[l][:, :, pos0:pos0 + T] = k
            cache.v[l][:, :, pos0:pos0 + T] = v
            k = cache.k[l][:, :, :pos0 + T]                            # (B, KVH, S, HD)
            v = cache.v[l][:, :, :pos0 + T]

        # GQA: query head hq uses kv head hq // (H / KVH); repeat each kv head H/KVH times.
        rep = H // KVH
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)                        # (B, H, S, HD)
            v = v.repeat_interleave(rep, dim=1)

        s = (q @ k.transpose(-2, -1)) / math.sqrt(HD)                  # (B, H, T, S)
        s = s.masked_fill(~allowed, float("-inf"))
        p = torch.softmax(s, dim=-1)
        o = p @ v                                                      # (B, H, T, HD)
        o = o.transpose(1, 2).reshape(B, T, H * HD)                    # head-major
        return o @ d.wo[l].T

    def forward(self, tokens, targets=None, cache=None):
        """tokens: (B, T) int64. targets: (B, T) int64 with -1 = ignored, or None.
        Returns (logits (B, T, V), loss scalar or None). With a KVCache, tokens continue the
        cached sequence (positions cache.length..) and the cache is extended."""
        cfg, d = self.cfg, self.decoder
        eps = cfg["norm_eps"]
        B, T = tokens.shape
        pos0 = cache.length if cache is not None else 0
        if cache is not None and pos0 + T > cache.max_len:
            raise ValueError(f"KV cache full: {pos0 + T} > {cache.max_len}")
        cos, sin = self.rope_tables(pos0 + T, d.tok_emb.dtype)
        cos, sin = cos[pos0:pos0 + T], sin[pos0:pos0 + T]              # (T, HD/2)
        allowed = attention_mask(pos0, T, pos0 + T, cfg["window"])     # (T, S)

        x = d.tok_emb[tokens]                                          # (B, T, C)
        for l in range(cfg["n_layers"]):
            h = rmsnorm(x, d.attn_norm[l], eps)
            x = x + self.attention(l, h, cos, sin, allowed, cache)
            h = rmsnorm(x, d.mlp_norm[l], eps)
            gate = h @ d.w_gate[l].T                                   # (B, T, F)
            up = h @ d.w_up[l].T
            x = x + (gate * torch.sigmoid(gate) * up) @ d.w_down[l].T
        if cache is not None:
            cache.length = pos0 + T

        w_out = d.tok_emb if cfg["tie_embeddings"] else d.lm_head
        logits = rmsnorm(x, d.final_norm, eps) @ w_out.T               # (B, T, V)

        loss = None
        if targets is not None:
            # Mean cross-entropy over positions with target >= 0. If every target is ignored,
            # the mean is 0/0 = NaN, as with torch's cross_entropy(ignore_index=-1).
            logp = torch.log_softmax(logits, dim=-1)
            keep = targets >= 0
            nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
            loss = (nll * keep).sum() / keep.sum()
        return logits, loss

    def rope_tables(self, n, dtype):
        """cos, sin (>= n, HD/2) for positions 0.., cached per dtype (grown as needed)."""
        cached = self._rope.get(dtype)
        if cached is None or cached[0].shape[0] < n:
            HD = self.cfg["d_model"] // self.cfg["n_heads"]
            # Normal tensors even when first called under inference_mode, so the same tables
            # can later be saved for backward in training.
            with torch.inference_mode(False):
                cached = rope_tables(max(n, self.cfg["max_seq"]), HD, self.cfg["rope_theta"],
                                     dtype)
            self._rope[dtype] = cached
        return cached

    @torch.no_grad()
    def generate(self, prompt, n_tokens, use_cache=True):
        """Greedy decoding. prompt: (B, T0) int64. Returns (B, n_tokens) int64.
        use_cache=False recomputes the full sequence for every token (the check for the cache)."""
        if not use_cache:
            seq = prompt
            for _ in range(n_tokens):
                logits, _ = self(seq)
                seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            return seq[:, prompt.shape[1]:]
        dtype = self.decoder.tok_emb.dtype
        cache = KVCache(self.cfg, prompt.shape[0], prompt.shape[1] + n_tokens, dtype)
        logits, _ = self(prompt, cache=cache)
        out = []
        for t in range(n_tokens):
            nxt = logits[:, -1].argmax(-1, keepdim=True)                # (B, 1)
            out.append(nxt)
            if t + 1 < n_tokens:
                logits, _ = self(nxt, cache=cache)
        return torch.cat(out, dim=1)


def adamw_groups(model, weight_decay):
    """The spec's two AdamW groups: matrices (tok_emb, lm_head, the stacked per-layer matrices,
    3-D here) are decayed; norm weights are not. Selected by name, not by ndim: the stacked
    norm weights attn_norm/mlp_norm are 2-D (L, C) yet must not be decayed."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("_norm") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
