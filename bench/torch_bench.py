"""PyTorch baseline for loom's benchmark: the same decoder (tests/reference/loom_ref.py), float32.

Measures
  train_tok_s  training throughput: forward + backward + clip + AdamW step on random tokens,
               B*T tokens per step, timed over --steps steps after --warmup untimed steps
  gen_tok_s    single-stream greedy generation with a KV cache: batch 1, a prompt of 8 random
               tokens, --gen-tokens new tokens; the time covers the whole call (prefill of the
               prompt + every decode step), after one untimed warm-up generation
and prints one JSON line: {"train_tok_s", "gen_tok_s", "params", "threads"}.

Threads: torch's default unless --threads N is given (then torch.set_num_threads(N)).
--check verifies that KV-cache generation produces the same tokens as greedy decoding with full
recomputation (float64, so near-ties in the logits cannot flip an argmax), for the benchmark
config and for a small GQA + sliding-window config, and exits 1 if not.

Example: /usr/bin/python3 bench/torch_bench.py --steps 10 --warmup 2 --check
"""

import argparse
import copy
import json
import os
import sys
import time

import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
from loom_ref import Decoder, adamw_groups  # noqa: E402

PROMPT_LEN = 8


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layers", type=int, default=6)
    ap.add_argument("--n-heads", type=int, default=8)
    ap.add_argument("--n-kv-heads", type=int, default=8)
    ap.add_argument("--d-ff", type=int, default=688)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--window", type=int, default=0, help="sliding window (0: full causal)")
    ap.add_argument("--tie-embeddings", type=int, default=1, choices=(0, 1))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--check", action="store_true",
                    help="assert KV-cache generation == full-recompute greedy generation")
    return ap.parse_args()


def make_config(a):
    return {"vocab_size": a.vocab, "d_model": a.d_model, "n_layers": a.n_layers,
            "n_heads": a.n_heads, "n_kv_heads": a.n_kv_heads, "d_ff": a.d_ff,
            "max_seq": max(a.seq, PROMPT_LEN + a.gen_tokens), "window": a.window,
            "rope_theta": 10000.0, "norm_eps": 1e-5, "tie_embeddings": a.tie_embeddings}


def bench_train(model, a, gen):
    """Training tokens per second over a.steps timed steps (after a.warmup untimed ones)."""
    model.train()
    opt = torch.optim.AdamW(adamw_groups(model, 0.1), lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    V = model.cfg["vocab_size"]
    elapsed = 0.0
    for step in range(a.warmup + a.steps):
        data = torch.randint(0, V, (a.batch, a.seq + 1), generator=gen)
        tokens, targets = data[:, :-1], data[:, 1:]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            elapsed += dt
        print(f"  train step {step}{' (warmup)' if step < a.warmup else ''}: "
              f"loss {loss.item():.4f}, {dt * 1e3:.0f} ms", file=sys.stderr)
    return a.batch * a.seq * a.steps / elapsed if a.steps > 0 else 0.0


def bench_generate(model, a, gen):
    """Greedy tokens per second, batch 1, with the KV cache (prefill included in the time)."""
    model.eval()
    prompt = torch.randint(0, model.cfg["vocab_size"], (1, PROMPT_LEN), generator=gen)
    with torch.inference_mode():
        model.generate(prompt, min(8, a.gen_tokens))  # warm-up
        t0 = time.perf_counter()
        out = model.generate(prompt, a.gen_tokens)
        dt = time.perf_counter() - t0
    print(f"  generate: {a.gen_tokens} tokens in {dt * 1e3:.0f} ms, first {out[0, :8].tolist()}",
          file=sys.stderr)
    return a.gen_tokens / dt


def check_cache(model, n_tokens, gen, label):
    """KV-cache greedy tokens must equal full-recompute greedy tokens (float64 copy)."""
    m = copy.deepcopy(model).double().eval()
    prompt = torch.randint(0, m.cfg["vocab_size"], (2, PROMPT_LEN), generator=gen)
    with torch.inference_mode():
        cached = m.generate(prompt, n_tokens, use_cache=True)
        full = m.generate(prompt, n_tokens, use_cache=False)
    ok = torch.equal(cached, full)
    print(f"  check {label}: KV-cache vs full recompute, {n_tokens} tokens x 2 rows: "
          f"{'same' if ok else 'DIFFERENT'}", file=sys.stderr)
    return ok


def main():
    a = parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    cfg = make_config(a)
    model = Decoder(cfg, dtype=torch.float32)
    model.init_weights(a.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch_bench: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{n_params} params, config {json.dumps(cfg)}", file=sys.stderr)

    if a.check:
        # A random-init model's greedy output is a fixed point after a few tokens; also check a
        # small GQA + sliding-window model with larger weights so the tokens vary and the
        # window actually cuts the cached keys.
        small = Decoder(dict(cfg, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=96,
                             vocab_size=97, window=5, tie_embeddings=0))
        small.init_weights(a.seed + 1, std=0.5)
        ok = check_cache(model, min(a.gen_tokens, 32), gen, "bench config")
        ok = check_cache(small, 40, gen, "GQA + window=5") and ok
        if not ok:
            print("torch_bench: KV-cache generation differs from full recomputation",
                  file=sys.stderr)
            return 1

    gen_tok_s = bench_generate(model, a, gen)
    train_tok_s = bench_train(model, a, gen)
    print(json.dumps({"train_tok_s": round(train_tok_s, 1), "gen_tok_s": round(gen_tok_s, 1),
                      "params": n_params, "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
