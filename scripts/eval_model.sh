#!/usr/bin/env bash
# eval_model.sh: every quality figure the README reports for a Shapes World model, in one
# run, each command's output in its own file of OUTDIR (and a summary on stdout).
#
#   eval.txt                loom eval --n 25 --questions 3   (captions, VQA)
#   eval-caption-first.txt  the same, each answer after the model's own caption
#   eval-contrast*.txt      the same, image-contrastive decoding at 0.5 and 1
#   imagine-*.txt           loom eval imagine --n 100: single draws at temperature 1, greedy,
#                           guidance 3, guidance 3 at temperature 0.7; then up to 4 draws
#                           read back, and the defaults (guidance 3, temperature 0.7, up to
#                           8 draws read back)
#   listen-*.txt            loom eval listen on SPEECH (both ways; single draws at
#                           temperature 1, then the imagine defaults)
#   q8-*.txt                the int8 copy (loom quantize): eval, imagine defaults
#
# Usage: scripts/eval_model.sh MODEL OUTDIR [SPEECH_MANIFEST]
#   (SPEECH_MANIFEST: a held-out spoken set, `loom data speech --n 600 --seed 7 --split heldout`;
#    default runs/speech-heldout/manifest.jsonl; about 15 minutes on 2 cores)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 MODEL OUTDIR [SPEECH_MANIFEST]" >&2; exit 2; }
model="$1" out="$2" speech="${3:-runs/speech-heldout/manifest.jsonl}"
loom="$(dirname "$0")/../build/loom"
mkdir -p "$out"
run() { # NAME COMMAND...: runs it, keeps its output and time
    local name="$1"
    shift
    local t0=$SECONDS
    "$@" >"$out/$name.txt"
    echo "$name: $((SECONDS - t0)) s" >>"$out/times.txt"
}
: >"$out/times.txt"
run eval "$loom" eval -m "$model" --n 25 --questions 3
run eval-caption-first "$loom" eval -m "$model" --n 25 --questions 3 --caption-first
run eval-contrast0.5 "$loom" eval -m "$model" --n 25 --questions 3 --contrast 0.5
run eval-contrast1 "$loom" eval -m "$model" --n 25 --questions 3 --contrast 1
run imagine-temp1 "$loom" eval imagine -m "$model" --n 100 --temp 1 --cfg 1 --tries 1
run imagine-greedy "$loom" eval imagine -m "$model" --n 100 --temp 0 --cfg 1 --tries 1
run imagine-cfg3 "$loom" eval imagine -m "$model" --n 100 --temp 1 --cfg 3 --tries 1
run imagine-cfg3temp0.7 "$loom" eval imagine -m "$model" --n 100 --tries 1
run imagine-tries4 "$loom" eval imagine -m "$model" --n 100 --tries 4
run imagine-defaults "$loom" eval imagine -m "$model" --n 100
if [ -e "$speech" ]; then
    run listen-single "$loom" eval listen -m "$model" --speech "$speech" --temp 1 --cfg 1 --tries 1
    run listen-defaults "$loom" eval listen -m "$model" --speech "$speech" --spoken transcribe
fi
q8="$out/q8.safetensors"
"$loom" quantize -m "$model" -o "$q8" >/dev/null
run q8-eval "$loom" eval -m "$q8" --n 25 --questions 3
run q8-imagine-defaults "$loom" eval imagine -m "$q8" --n 100
rm -f "$q8"

# the summary: one line per figure
all() { awk '$1 == "all" {print $2}' "$out/$1.txt"; }
split_row() { awk -v s="$2" '$1 == s && $2 == "all" {print $3 " captions, " $4 " VQA"}' "$out/$1.txt"; }
echo "== $model"
for f in eval eval-caption-first eval-contrast0.5 eval-contrast1 q8-eval; do
    for s in test combos jpeg75; do echo "$f $s: $(split_row $f $s)"; done
done
for f in imagine-temp1 imagine-greedy imagine-cfg3 imagine-cfg3temp0.7 imagine-tries4 imagine-defaults q8-imagine-defaults; do
    echo "$f: $(all $f)"
done
for f in listen-single listen-defaults; do
    [ -e "$out/$f.txt" ] && awk -v f="$f" 'NF >= 3 && $(NF-1) ~ /%$/ {n = NF - 2; t = $1; for (i = 2; i <= n; i++) t = t " " $i; print f ": " t " " $(NF-1)}' "$out/$f.txt"
done
cat "$out/times.txt"
