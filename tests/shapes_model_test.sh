#!/usr/bin/env bash
# shapes_model_test.sh LOOM_BIN REPO_DIR: the shipped image model still does its job.
#  1. `loom caption` of examples/scene*.png and `loom ask` answers equal the
#     recorded outputs exactly (tests/shapes_model_golden.txt; regression test).
#  2. `loom eval` on a small fixed held-out set stays at or above the floors
#     below (a few points under the figures in the README, so noise cannot
#     flip it but a real regression does).
set -u
loom="$1"
repo="$2"
model="$repo/models/loom-shapes.safetensors"
fail=0
got="$(mktemp)"
trap 'rm -f "$got"' EXIT
{
    "$loom" caption -m "$model" -t 1 "$repo"/examples/scene0.png "$repo"/examples/scene1.png \
        "$repo"/examples/scene2.png "$repo"/examples/scene3.png
    "$loom" ask -m "$model" -t 1 --image "$repo/examples/scene0.png" -p "how many objects are there?"
    "$loom" ask -m "$model" -t 1 --image "$repo/examples/scene1.png" -p "what shape is in the center?"
    "$loom" ask -m "$model" -t 1 --image "$repo/examples/scene2.png" -p "what color is the cross?"
} >"$got"
if diff -u "$repo/tests/shapes_model_golden.txt" "$got"; then
    echo "ok   captions and answers equal the recorded ones"
else
    echo "FAIL captions/answers differ from tests/shapes_model_golden.txt"
    fail=1
fi

CAPTION_FLOOR="${CAPTION_FLOOR:-25}"
VQA_FLOOR="${VQA_FLOOR:-62}"
out=$("$loom" eval -m "$model" --n 10 --questions 2 --seed 1000)
echo "$out"
cap=$(echo "$out" | awk '$1 == "test" && $2 == "all" {sub("%", "", $3); print $3}')
vqa=$(echo "$out" | awk '$1 == "test" && $2 == "all" {sub("%", "", $4); print $4}')
if awk -v c="$cap" -v v="$vqa" -v cf="$CAPTION_FLOOR" -v vf="$VQA_FLOOR" 'BEGIN { exit !(c >= cf && v >= vf) }'; then
    echo "ok   eval: caption EM $cap% >= $CAPTION_FLOOR%, VQA $vqa% >= $VQA_FLOOR%"
else
    echo "FAIL eval: caption EM $cap% (floor $CAPTION_FLOOR%), VQA $vqa% (floor $VQA_FLOOR%)"
    fail=1
fi
exit $fail
