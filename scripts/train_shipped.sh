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
#   4. runs/stage3.safetensors        + audio in: transcripts, spoken questions and prompts
#                                     (loom-shapes.stage3.recipe.json)
#   5. runs/stage4.safetensors        everything again, longer, at a lower learning rate
#                                     (loom-shapes.stage4.recipe.json; see the note below)
#   6. runs/stage5.safetensors        again from stage 4, 5,000 steps, half the spoken rows
#                                     spoken questions (loom-shapes.stage5.recipe.json)
#   7. runs/stage6.safetensors        again from stage 5, 8,000 steps, 30% of rows spoken
#                                     (loom-shapes.stage6.recipe.json)
#   8. runs/stage7.safetensors        stage 6 grown from 6 to 8 layers, 3,500 steps, half the
#                                     caption rows followed by questions (loom-shapes.stage7.recipe.json)
#   9. models/loom-shapes.safetensors again from stage 7, 4,000 steps, color words of captions
#                                     swapped in the input, count_shape questions three times as
#                                     often (loom-shapes.recipe.json)
#
# Usage: scripts/train_shipped.sh [-t THREADS]   (about 11.5 hours on 2 cores)
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
[ -e runs/stage3.safetensors ] ||
    "$loom" train --config models/loom-shapes.stage3.recipe.json -o runs/stage3.safetensors \
        --log models/loom-shapes.stage3.log.csv --resume "$@"
# Stage 4 ran its first 1,350 steps on a 4,500-step schedule, then (to fit the session) was
# resumed from that checkpoint with the recipe's 3,400 steps: the learning rate stepped from
# 4.98e-4 to 4.27e-4 at step 1,350 and followed the shorter cosine from there. Both phases:
# (with a checkpoint present, the log is this run's: resuming truncates it to the checkpoint)
if [ ! -e runs/stage4.safetensors ]; then
    last=$(tail -1 models/loom-shapes.stage4.log.csv 2>/dev/null | cut -d, -f1)
    if [ ! -e runs/stage4.safetensors.ckpt ] || ! [[ "$last" =~ ^[0-9]+$ ]] || [ "$last" -lt 1350 ]; then
        "$loom" train --config models/loom-shapes.stage4.recipe.json --steps 4500 --stop-after 1350 \
            -o runs/stage4.safetensors --log models/loom-shapes.stage4.log.csv --resume "$@"
    fi
    "$loom" train --config models/loom-shapes.stage4.recipe.json -o runs/stage4.safetensors \
        --log models/loom-shapes.stage4.log.csv --resume "$@"
fi
[ -e runs/stage5.safetensors ] ||
    "$loom" train --config models/loom-shapes.stage5.recipe.json -o runs/stage5.safetensors \
        --log models/loom-shapes.stage5.log.csv --resume "$@"
[ -e runs/stage6.safetensors ] ||
    "$loom" train --config models/loom-shapes.stage6.recipe.json -o runs/stage6.safetensors \
        --log models/loom-shapes.stage6.log.csv --resume "$@"
# Stage 7 grows the model to 8 layers. It ran its first 150 steps on a 5,500-step schedule,
# then (to fit the session) was resumed from that checkpoint with the recipe's 3,500 steps
# (at step 150 the two cosines differ by under 0.1% of the learning rate). Both phases:
if [ ! -e runs/stage7.safetensors ]; then
    last=$(tail -1 models/loom-shapes.stage7.log.csv 2>/dev/null | cut -d, -f1)
    if [ ! -e runs/stage7.safetensors.ckpt ] || ! [[ "$last" =~ ^[0-9]+$ ]] || [ "$last" -lt 150 ]; then
        "$loom" train --config models/loom-shapes.stage7.recipe.json --steps 5500 --stop-after 150 \
            -o runs/stage7.safetensors --log models/loom-shapes.stage7.log.csv --resume "$@"
    fi
    "$loom" train --config models/loom-shapes.stage7.recipe.json -o runs/stage7.safetensors \
        --log models/loom-shapes.stage7.log.csv --resume "$@"
fi
"$loom" train --config models/loom-shapes.recipe.json -o models/loom-shapes.safetensors \
    --log models/loom-shapes.log.csv --resume "$@"
/usr/bin/python3 scripts/plot_loss.py models/loom-shapes.log.csv models/loom-shapes.loss.png
