#!/usr/bin/env bash
# compare_audio_encoders.sh: the measurement behind the choice of audio encoder (issue 6).
#
# From the same starting point (stage 2 of the shipped recipe: image in and out, no audio),
# trains audio input twice with everything equal but the encoder -- frame stacking + linear
# (stack) and whisper's strided conv stem (conv) -- on the same speech set, mostly spoken rows,
# then evaluates both on held-out voices (loom eval listen). Prints loss and accuracy per
# encoder. Needs runs/stage2.safetensors.ckpt, runs/speech-train and runs/speech-heldout (see
# scripts/train_shipped.sh). Results go to runs/cmp-*; resumes if stopped.
#
# Usage: scripts/compare_audio_encoders.sh [STEPS] [-t THREADS]   (default 600 steps, ~12 min each)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-600}
[ $# -gt 0 ] && shift
loom=${LOOM:-build/loom}
for enc in stack conv; do
    out=runs/cmp-$enc.safetensors
    [ -e "$out" ] || "$loom" train --data shapes --init runs/stage2.safetensors.ckpt \
        --speech runs/speech-train/manifest.jsonl --speech-frac 0.9 --audio-stack 8 --audio-encoder "$enc" \
        --batch 32 --seq 128 --steps "$steps" --warmup 50 --lr 0.001 --min-lr 0.0001 --wd 0.1 \
        --eval-every 0 --ckpt-every 100 -s 11 -o "$out" --resume -q "$@"
done
for enc in stack conv; do
    out=runs/cmp-$enc.safetensors
    loss=$(tail -50 "$out.log.csv" | awk -F, '{s += $2; n++} END {printf "%.3f", s / n}')
    tps=$(tail -50 "$out.log.csv" | awk -F, '{s += $5; n++} END {printf "%.0f", s / n}')
    echo "== $enc: mean training loss of the last 50 steps $loss, $tps tok/s"
    "$loom" eval listen -m "$out" --speech runs/speech-heldout/manifest.jsonl "$@" | tail -4
done
