#!/usr/bin/env bash
# text_model_test.sh LOOM_BIN REPO_DIR: the shipped text model still does its job.
#  1. 60 sampled continuations of "a" (seeds 1..60, temp 0.8) are >= 90% exact
#     Shapes World captions (tests/check_captions.py checks the grammar).
#  2. Greedy continuations of fixed prompts equal the recorded ones exactly.
set -u
loom="$1"
repo="$2"
model="$repo/models/loom-text.safetensors"
fail=0
py=python3
command -v /usr/bin/python3 >/dev/null && py=/usr/bin/python3

out=$(for s in $(seq 1 60); do "$loom" generate -m "$model" -p "a" -s "$s" -n 100 -t 1; done)
if ! echo "$out" | "$py" "$repo/tests/check_captions.py" 0.9; then
    echo "FAIL: sampled captions below 90% valid"
    fail=1
fi

check_greedy() {
    local prompt="$1" want="$2" got
    got=$("$loom" generate -m "$model" -p "$prompt" --temp 0 -n 100 -t 1)
    if [ "$got" = "$want" ]; then
        echo "ok   greedy: $prompt"
    else
        echo "FAIL greedy: $prompt"
        echo "  want: $want"
        echo "  got:  $got"
        fail=1
    fi
}
while IFS=$'\t' read -r prompt want; do
    [ -n "$prompt" ] && check_greedy "$prompt" "$want"
done < "$repo/tests/text_model_greedy.tsv"
exit $fail
