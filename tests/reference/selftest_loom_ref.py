"""Self-test of the reference itself (loom_ref.py), since parity is only as good as its oracle.

Checks, for tiny configs (GQA with and without a sliding window, tied and untied):
  1. Decoder logits == a scalar-loop numpy transcription of docs/model-format.md (float64)
  2. the masked mean loss == torch.nn.functional.cross_entropy(ignore_index=-1)
  3. incremental decoding with the KV cache == the full forward, position by position
  4. save_safetensors / load_safetensors / Decoder.from_file round-trip exactly
  5. adamw_groups: matrices decayed, the three norm weights not
Prints one line per check and `selftest: N passed, M failed`; exits 1 on any failure.
"""

import json
import math
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loom_ref import Decoder, KVCache, adamw_groups, load_safetensors, save_safetensors  # noqa

CONFIGS = {
    "gqa-full-untied": dict(vocab_size=11, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2,
                            d_ff=12, max_seq=8, window=0, rope_theta=10000.0, norm_eps=1e-5,
                            tie_embeddings=0),
    "gqa-window3-tied": dict(vocab_size=11, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2,
                             d_ff=12, max_seq=8, window=3, rope_theta=500.0, norm_eps=1e-5,
                             tie_embeddings=1),
    "mqa-window2-untied": dict(vocab_size=13, d_model=12, n_layers=1, n_heads=3, n_kv_heads=1,
                               d_ff=10, max_seq=8, window=2, rope_theta=10000.0, norm_eps=1e-6,
                               tie_embeddings=0),
}


def naive_logits(P, cfg, tokens):
    """The spec's forward, one scalar at a time where it matters (rope, GQA, mask, softmax).
    P: name -> float64 numpy array. tokens: (B, T) ints. Returns (B, T, V)."""
    V, C, L = cfg["vocab_size"], cfg["d_model"], cfg["n_layers"]
    H, KVH, W = cfg["n_heads"], cfg["n_kv_heads"], cfg["window"]
    HD, eps, theta = C // H, cfg["norm_eps"], cfg["rope_theta"]
    B, T = tokens.shape

    def rmsnorm(x, w):
        return x / math.sqrt(float(np.mean(x * x)) + eps) * w

    def rope(vec, pos):  # vec: (HD,)
        out = vec.copy()
        for i in range(HD // 2):
            a = pos * theta ** (-2.0 * i / HD)
            x0, x1 = vec[2 * i], vec[2 * i + 1]
            out[2 * i] = x0 * math.cos(a) - x1 * math.sin(a)
            out[2 * i + 1] = x0 * math.sin(a) + x1 * math.cos(a)
        return out

    logits = np.zeros((B, T, V))
    for b in range(B):
        x = np.array([P["decoder.tok_emb"][tokens[b, t]] for t in range(T)])  # (T, C)
        for l in range(L):
            h = np.array([rmsnorm(x[t], P["decoder.attn_norm"][l]) for t in range(T)])
            q = h @ P["decoder.wq"][l].T
            k = h @ P["decoder.wk"][l].T
            v = h @ P["decoder.wv"][l].T
            o = np.zeros((T, H * HD))
            for hh in range(H):
                kvh = hh // (H // KVH)
                for i in range(T):
                    qi = rope(q[i, hh * HD:(hh + 1) * HD], i)
                    s = []
                    for j in range(T):
                        if j <= i and (W == 0 or i - j < W):
                            kj = rope(k[j, kvh * HD:(kvh + 1) * HD], j)
                            s.append((j, float(qi @ kj) / math.sqrt(HD)))
                    m = max(sc for _, sc in s)
                    z = sum(math.exp(sc - m) for _, sc in s)
                    for j, sc in s:
                        o[i, hh * HD:(hh + 1) * HD] += math.exp(sc - m) / z * \
                            v[j, kvh * HD:(kvh + 1) * HD]
            x = x + o @ P["decoder.wo"][l].T
            h = np.array([rmsnorm(x[t], P["decoder.mlp_norm"][l]) for t in range(T)])
            g = h @ P["decoder.w_gate"][l].T
            u = h @ P["decoder.w_up"][l].T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ P["decoder.w_down"][l].T
        w_out = P["decoder.tok_emb"] if cfg["tie_embeddings"] else P["decoder.lm_head"]
        for t in range(T):
            logits[b, t] = rmsnorm(x[t], P["decoder.final_norm"]) @ w_out.T
    return logits


def main():
    passed = failed = 0

    def check(name, ok, detail):
        nonlocal passed, failed
        print(f"{'ok  ' if ok else 'FAIL'} {name:44s} {detail}", flush=True)
        passed, failed = passed + ok, failed + (not ok)

    for cname, cfg in CONFIGS.items():
        model = Decoder(cfg, dtype=torch.float64)
        model.init_weights(7, std=0.4)  # large weights: sharp attention, so errors show
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("_norm"):
                    p.add_(0.2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3),
                                             dtype=torch.float64))
        P = {n: p.detach().numpy() for n, p in model.named_parameters()}
        g = torch.Generator().manual_seed(5)
        B, T = 2, 7
        tokens = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
        targets = torch.randint(0, cfg["vocab_size"], (B, T), generator=g)
        targets[0, 4:] = -1
        targets[1, :2] = -1

        # 1. forward vs the scalar transcription
        logits, loss = model(tokens, targets)
        ref = naive_logits(P, cfg, tokens.numpy())
        diff = float(np.abs(logits.detach().numpy() - ref).max())
        check(f"{cname}: logits vs naive spec", diff < 1e-10, f"max_abs {diff:.2e} (tol 1e-10)")

        # 2. loss vs torch's cross_entropy with ignore_index
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                             ignore_index=-1)
        d = abs(loss.item() - ce.item())
        check(f"{cname}: loss vs cross_entropy(ignore -1)", d < 1e-12, f"diff {d:.2e}")

        # 3. KV cache: prefill 3 positions, then one at a time
        cache = KVCache(model.cfg, B, T, dtype=torch.float64)
        with torch.no_grad():
            parts = [model(tokens[:, :3], cache=cache)[0]]
            for t in range(3, T):
                parts.append(model(tokens[:, t:t + 1], cache=cache)[0])
        d = float((torch.cat(parts, dim=1) - logits.detach()).abs().max())
        check(f"{cname}: KV-cache logits vs full forward", d < 1e-10, f"max_abs {d:.2e}")

        # 4. file round trip
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.safetensors")
            save_safetensors(path, {n: a.astype(np.float32) for n, a in P.items()},
                             {"format": "loom-1", "config": json.dumps(cfg)})
            tensors, meta = load_safetensors(path)
            m2 = Decoder.from_file(path, dtype=torch.float32)
            same = all(np.array_equal(tensors[n], P[n].astype(np.float32)) for n in P) and \
                all(np.array_equal(p.detach().numpy(), P[n].astype(np.float32))
                    for n, p in m2.named_parameters()) and \
                json.loads(meta["config"]) == cfg and set(tensors) == set(P)
            check(f"{cname}: safetensors round trip", same, f"{len(tensors)} tensors")

        # 5. decay groups
        groups = adamw_groups(model, 0.1)
        names = {id(p): n for n, p in model.named_parameters()}
        nodecay = sorted(names[id(p)] for p in groups[1]["params"])
        ok = nodecay == ["decoder.attn_norm", "decoder.final_norm", "decoder.mlp_norm"] and \
            groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
        check(f"{cname}: adamw groups", ok, f"no decay: {nodecay}")

    print(f"selftest: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
