#!/usr/bin/env bash
# shapes_model_test.sh LOOM_BIN REPO_DIR: the shipped model still does its jobs.
#  1. `loom caption` of examples/scene*.png, `loom ask` answers (typed and
#     spoken), and `loom listen` of examples/*.wav equal the recorded outputs
#     exactly (tests/shapes_model_golden.txt; regression test).
#  2. `loom eval`, `loom eval imagine` and `loom eval listen` (on 40 held-out-voice
#     utterances made here by `loom data speech`) on small fixed sets stay at or
#     above the floors below (a few points under the measured figures, so noise
#     cannot flip them but a real regression does).
#  3. The VQ head round-trips a fixed scene (tests/test_shipped_vq.c does that in C).
set -u
loom="$1"
repo="$2"
model="$repo/models/loom-shapes.safetensors"
fail=0
got="$(mktemp)"
tmp="$(mktemp -d)"
trap 'rm -rf "$got" "$tmp"' EXIT
{
    "$loom" caption -m "$model" -t 1 "$repo"/examples/scene0.png "$repo"/examples/scene1.png \
        "$repo"/examples/scene2.png "$repo"/examples/scene3.png
    "$loom" ask -m "$model" -t 1 --image "$repo/examples/scene0.png" -p "how many objects are there?"
    "$loom" ask -m "$model" -t 1 --image "$repo/examples/scene1.png" -p "what shape is in the center?"
    "$loom" ask -m "$model" -t 1 --image "$repo/examples/scene2.png" -p "what color is the cross?"
    "$loom" ask -m "$model" -t 1 --image "$repo/examples/scene2.png" --audio "$repo/examples/question.wav"
    "$loom" ask -m "$model" -t 1 --image "$repo/examples/scene2.png" --audio "$repo/examples/question.wav" --spoken direct
    "$loom" listen -m "$model" -t 1 "$repo/examples/question.wav" "$repo/examples/prompt.wav"
} >"$got"
if diff -u "$repo/tests/shapes_model_golden.txt" "$got"; then
    echo "ok   captions and answers equal the recorded ones"
else
    echo "FAIL captions/answers differ from tests/shapes_model_golden.txt"
    fail=1
fi

CAPTION_FLOOR="${CAPTION_FLOOR:-92}"
VQA_FLOOR="${VQA_FLOOR:-93}"
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

# at_least NAME VALUE FLOOR: one floor check
at_least() {
    if [ -n "$2" ] && awk -v v="$2" -v f="$3" 'BEGIN { exit !(v + 0 >= f + 0) }'; then
        echo "ok   $1 $2% >= $3%"
    else
        echo "FAIL $1 $2% (floor $3%)"
        fail=1
    fi
}

IMAGINE_FLOOR="${IMAGINE_FLOOR:-62}" IMAGINE_TRIES_FLOOR="${IMAGINE_TRIES_FLOOR:-85}"
out=$("$loom" eval imagine -m "$model" --n 20 --cfg 3 --temp 0.7 --tries 1 -t 1)
echo "$out"
at_least "eval imagine: scene match, one draw" "$(echo "$out" | awk '$1 == "all" {sub("%", "", $2); print $2}')" "$IMAGINE_FLOOR"
at_least "eval imagine: VQ read-back" "$(echo "$out" | sed -n 's/.*analyzer reads back \([0-9.]*\)%.*/\1/p')" 95
out=$("$loom" eval imagine -m "$model" --n 20 -t 1)
echo "$out"
at_least "eval imagine: scene match, the defaults (up to 8 draws read back)" \
    "$(echo "$out" | awk '$1 == "all" {sub("%", "", $2); print $2}')" "$IMAGINE_TRIES_FLOOR"

LISTEN_FLOOR="${LISTEN_FLOOR:-92}" SPOKEN_VQA_FLOOR="${SPOKEN_VQA_FLOOR:-70}"
SPOKEN_VQA_T_FLOOR="${SPOKEN_VQA_T_FLOOR:-80}"
"$loom" data speech --n 40 --seed 7 --split heldout --out "$tmp/speech" -t 1 2>/dev/null
out=$("$loom" eval listen -m "$model" --speech "$tmp/speech/manifest.jsonl" --temp 1 --cfg 1 --tries 1 -t 1)
echo "$out"
at_least "eval listen: transcripts" "$(echo "$out" | awk '$1 == "transcript" {sub("%", "", $2); print $2}')" "$LISTEN_FLOOR"
at_least "eval listen: spoken VQA (direct)" "$(echo "$out" | awk '$1 == "spoken" && $2 == "VQA" {sub("%", "", $3); print $3}')" "$SPOKEN_VQA_FLOOR"
at_least "eval listen: spoken VQA (transcribed)" "$(echo "$out" | awk '$1 == "spoken" && $2 == "VQA," {sub("%", "", $4); print $4}')" "$SPOKEN_VQA_T_FLOOR"
exit $fail
