#!/usr/bin/env bash
# train_shipped.sh: reproduces the shipped models from nothing, stage by stage, with the
# recipes committed in models/. Every stage resumes from its checkpoint if stopped, so the
# script can simply be run again. Intermediate results go to runs/ (not committed).
#
#   0. models/loom-vq.safetensors     the VQ image head (loom-vq.recipe.json)
#   1. runs/stage1.safetensors        image in: captions and questions (loom-shapes.stage1.recipe.json)
#   2. runs/stage2.safetensors.ckpt   + image out: prompt -> image codes (loom-shapes.stage2.recipe.json;
#                                     the shipped run stopped at the step in its "stop_after")
#   3. runs/speech-train/             9,000 utterances spoken by espeak-ng (train voices)
#   4. models/loom-shapes.safetensors + audio in: transcripts, spoken questions and prompts
#                                     (loom-shapes.recipe.json)
#
# Usage: scripts/train_shipped.sh [-t THREADS]   (about 4 hours on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
loom=build/loom
mkdir -p runs
[ -x "$loom" ] || scripts/bootstrap.sh
if [ ! -e models/loom-vq.safetensors ]; then
    "$loom" train --config models/loom-vq.recipe.json -o models/loom-vq.safetensors --resume "$@"
fi
[ -e runs/stage1.safetensors ] ||
    "$loom" train --config models/loom-shapes.stage1.recipe.json -o runs/stage1.safetensors --resume "$@"
# stage 2 stops early (stop_after): its checkpoint is the result; it is not resumed past it
[ -e runs/stage2.safetensors.ckpt ] ||
    "$loom" train --config models/loom-shapes.stage2.recipe.json -o runs/stage2.safetensors "$@"
[ -e runs/speech-train/manifest.jsonl ] ||
    "$loom" data speech --n 9000 --seed 1 --out runs/speech-train
"$loom" train --config models/loom-shapes.recipe.json -o models/loom-shapes.safetensors \
    --log models/loom-shapes.log.csv --resume "$@"
/usr/bin/python3 scripts/plot_loss.py models/loom-shapes.log.csv models/loom-shapes.loss.png
