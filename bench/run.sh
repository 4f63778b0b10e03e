#!/usr/bin/env bash
# bench/run.sh: loom against the PyTorch reference, same config, same run.
#
#   bench/run.sh [--steps N] [--warmup N] [--gen-tokens N] [--rounds N]
#
# In one invocation:
#  1. the machine's fp32 FMA peak and loom's sgemm against OpenBLAS at every
#     shape of the training step below (build/bench/sgemm_bench);
#  2. training (forward + backward + clip + AdamW, random tokens) and
#     single-stream greedy generation with a KV cache (prefill included) for
#     the config below (about 5M parameters), with loom (build/loom bench) and
#     with PyTorch (bench/torch_bench.py, the same model as
#     tests/reference/loom_ref.py) in its default thread setting and with 2
#     threads; the ratios against PyTorch's faster setting, and the fraction
#     of the FMA peak that loom's training step reaches. The three run in turn,
#     --rounds times (default 3): each round gives a ratio, and the median
#     round is the figure (with the range), so a noisy minute moves one round
#     and not the result;
#  3. the log-mel spectrogram of 30 s of audio: loom (build/bench/mel_bench, on all
#     cores and on one) against torchaudio (bench/mel_torch.py) on the same signal;
#  4. with the shipped model: one caption and one imagined image end to end in-process
#     (build/bench/infer_bench; also for its int8 copy from loom quantize), the peak memory of `loom caption`, and caption
#     requests/s against `loom serve` on loopback (bench/serve_load.sh, wrk).
# Needs build/ (scripts/bootstrap.sh). Run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=10 warmup=2 gen=128 rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --gen-tokens) gen="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        *) echo "usage: bench/run.sh [--steps N] [--warmup N] [--gen-tokens N] [--rounds N]" >&2; exit 2 ;;
    esac
done
D=256 L=6 H=8 KVH=8 F=688 V=1024 B=16 T=128
py=""
for cand in "${LOOM_PYTHON:-}" /usr/bin/python3 python3; do
    if [ -n "$cand" ] && "$cand" -c 'import torch' >/dev/null 2>&1; then py="$cand"; break; fi
done
[ -n "$py" ] || { echo "bench: no python with torch (install python3-torch)" >&2; exit 1; }

echo "config: d_model $D, $L layers, $H heads ($KVH kv), d_ff $F, vocab $V, batch $B x seq $T;" \
     "$steps timed steps after $warmup; $gen generated tokens; $(nproc) cores"
sgemm_out=$(build/bench/sgemm_bench)
echo "$sgemm_out"
echo
peak=$(echo "$sgemm_out" | sed -n 's/^fp32 FMA peak.* GFLOP\/s on 1 thread, \([0-9.]*\) GFLOP\/s on.*/\1/p')
torch_args=(--d-model $D --n-layers $L --n-heads $H --n-kv-heads $KVH --d-ff $F --vocab $V
            --batch $B --seq $T --steps "$steps" --warmup "$warmup" --gen-tokens "$gen")
rounds_json=""
for ((r = 1; r <= rounds; r++)); do
    loom_json=$(build/loom bench --json --d-model $D --layers $L --heads $H --kv-heads $KVH --d-ff $F \
        --vocab $V --batch $B --seq $T --steps "$steps" --warmup "$warmup" --gen-tokens "$gen")
    torch_default=$("$py" bench/torch_bench.py "${torch_args[@]}" | tail -1)
    torch_2=$("$py" bench/torch_bench.py "${torch_args[@]}" --threads 2 | tail -1)
    rounds_json+="[$loom_json,$torch_default,$torch_2]"$'\n'
done

"$py" - "$rounds_json" "${peak:-0}" <<'PY'
import json, statistics, sys
rounds = [json.loads(line) for line in sys.argv[1].splitlines() if line.strip()]
peak = float(sys.argv[2])
print("%-26s %5s %10s %14s %14s %9s" % ("", "round", "loom", "torch (%d thr)" % rounds[0][1]["threads"],
                                         "torch (%d thr)" % rounds[0][2]["threads"], "ratio"))
def ratio(r, key):
    return r[0][key] / max(r[1][key], r[2][key])
for name, key in (("train tok/s", "train_tok_s"), ("generate tok/s (KV cache)", "gen_tok_s")):
    for i, r in enumerate(rounds):
        print("%-26s %5d %10.0f %14.0f %14.0f %8.2fx" % (name, i + 1, r[0][key], r[1][key], r[2][key], ratio(r, key)))
    rs = sorted(ratio(r, key) for r in rounds)
    print("%-26s %5s %10s %14s %14s %8.2fx (median of %d rounds; %.2f-%.2fx)"
          % (name, "all", "", "", "", statistics.median(rs), len(rs), rs[0], rs[-1]))
med = sorted(rounds, key=lambda r: r[0]["train_tok_s"])[len(rounds) // 2]
loom, td, t2 = med
print("loom: %d threads, %.1f GFLOP/s in training (6 x %d params per token, the median round); "
      "ratio = loom / faster torch" % (loom["threads"], loom["train_gflops"], loom["params"]))
if peak > 0:
    print("training step: %.0f%% of the %.0f GFLOP/s FMA peak (loom), %.0f%% (torch, faster setting)"
          % (100 * loom["train_gflops"] / peak, peak,
             100 * loom["train_gflops"] * max(td["train_tok_s"], t2["train_tok_s"]) / loom["train_tok_s"] / peak))
PY

# 3. log-mel of 30 s of audio, loom against torchaudio on the same signal
mel_dump=$(mktemp)
trap 'rm -f "$mel_dump"' EXIT
mel_loom=$(build/bench/mel_bench --repeats 20 --dump "$mel_dump")
mel_loom1=$(build/bench/mel_bench --repeats 20 --threads 1)
if "$py" -c 'import torchaudio' >/dev/null 2>&1; then
    mel_torch=$("$py" bench/mel_torch.py "$mel_dump" --repeats 20)
    "$py" - "$mel_loom" "$mel_loom1" "$mel_torch" <<'PY'
import json, sys
l, l1, t = (json.loads(s) for s in sys.argv[1:4])
best = min(l["ms_median"], l1["ms_median"])
print("%-26s %10.2f %14.2f %14s %8.2fx" % ("log-mel 30 s, ms (median)", best, t["ms_median"], "",
                                            t["ms_median"] / best))
print("log-mel: loom %.2f ms on %d threads, %.2f ms on 1; torchaudio %s, %d thread(s); largest difference %.1e"
      % (l["ms_median"], l["threads"], l1["ms_median"], t["torchaudio"], t["threads"], t["max_diff_vs_loom"]))
PY
else
    echo "log-mel 30 s: loom $mel_loom; torchaudio not installed (python3-torchaudio), no ratio"
fi

# 4. what a user waits for with the shipped model: one caption and one imagined image end to
#    end in-process (bench/infer_bench), the peak memory of `loom caption`, and caption
#    requests/s against `loom serve` on loopback (bench/serve_load.sh, wrk)
model=models/loom-shapes.safetensors
inf1=$(build/bench/infer_bench -m "$model" --threads 1)
infn=$(build/bench/infer_bench -m "$model")
q8model=$(mktemp --suffix=.safetensors)
build/loom quantize -m "$model" -o "$q8model" >/dev/null
q81=$(build/bench/infer_bench -m "$q8model" --threads 1)
q8n=$(build/bench/infer_bench -m "$q8model")
rm -f "$q8model"
serve_out=$(bench/serve_load.sh -m "$model" -d 10 -c 8 | tail -1)
"$py" - "$inf1" "$infn" "$model" "$serve_out" "$q81" "$q8n" <<'PY'
import json, os, resource, subprocess, sys
i1, iN = json.loads(sys.argv[1]), json.loads(sys.argv[2])
model, serve = sys.argv[3], sys.argv[4]
q1, qN = json.loads(sys.argv[5]), json.loads(sys.argv[6])
def best(key):
    return min((i1, iN), key=lambda r: r[key + "_ms_median"])
c, g = best("caption"), best("imagine")
print("caption of a 64 x 64 image: %.2f ms median (%d thread%s; %.2f on 1, %.2f on %d); target <= 5 ms"
      % (c["caption_ms_median"], c["threads"], "" if c["threads"] == 1 else "s", i1["caption_ms_median"],
         iN["caption_ms_median"], iN["threads"]))
print("imagine of a 64 x 64 image: %.2f ms median (%d thread%s; %.2f on 1, %.2f on %d); target <= 50 ms"
      % (g["imagine_ms_median"], g["threads"], "" if g["threads"] == 1 else "s", i1["imagine_ms_median"],
         iN["imagine_ms_median"], iN["threads"]))
print("int8 (loom quantize): caption %.2f ms on 1 thread, %.2f on %d; imagine %.2f ms on 1, %.2f on %d"
      % (q1["caption_ms_median"], qN["caption_ms_median"], qN["threads"], q1["imagine_ms_median"],
         qN["imagine_ms_median"], qN["threads"]))
subprocess.run(["build/loom", "caption", "-m", model, "examples/scene0.png"], check=True, capture_output=True)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
size = os.path.getsize(model) / 2**20
print("loom caption peak memory: %.1f MB for a %.1f MB model (target <= 2 x model + 50 MB = %.1f MB)"
      % (rss, size, 2 * size + 50))
print(serve)
PY
