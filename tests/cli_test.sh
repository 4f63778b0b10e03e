#!/usr/bin/env bash
# cli_test.sh LOOM_BIN REPO_DIR: the `loom` command line.
#
# Every case checks the exit status AND what was printed (stdout or stderr,
# fixed-string grep). Errors must read "loom: <what>: <why>" and exit 1.
# A tiny model is trained in a scratch directory from `loom data` output.
# Prints "cli: N passed, M failed"; exits nonzero on any failure.
set -u
if [ $# -lt 1 ]; then
    echo "usage: cli_test.sh LOOM_BIN [REPO_DIR]" >&2
    exit 2
fi
loom="$1"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom_cli_test.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

# run CMD...: runs it, keeping status in $st, stdout in $tmp/out, stderr in $tmp/err
run() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    st=$?
}

# expect NAME STATUS STREAM TEXT [TEXT...] -- CMD...
# STREAM is out or err; every TEXT must appear in it (fixed strings).
expect() {
    local name="$1" want="$2" stream="$3"
    shift 3
    local pats=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        pats+=("$1")
        shift
    done
    shift
    run "$@"
    local ok=1 why=""
    if [ "$st" -ne "$want" ]; then
        ok=0
        why="exit status $st, want $want"
    fi
    for p in ${pats[@]+"${pats[@]}"}; do
        if ! grep -qF -- "$p" "$tmp/$stream"; then
            ok=0
            why="${why:+$why; }std$stream lacks \"$p\""
        fi
    done
    if [ "$ok" -eq 1 ]; then
        pass=$((pass + 1))
        echo "ok   $name"
    else
        fail=$((fail + 1))
        echo "FAIL $name: $why"
        echo "  command: $*"
        sed 's/^/  stdout: /' "$tmp/out" | head -5
        sed 's/^/  stderr: /' "$tmp/err" | head -5
    fi
}

# check NAME CONDITION-STATUS: records a result computed by the caller
check() {
    if [ "$2" -eq 0 ]; then
        pass=$((pass + 1))
        echo "ok   $1"
    else
        fail=$((fail + 1))
        echo "FAIL $1"
    fi
}

# ---- help and usage ----
expect "loom --help" 0 out "usage: loom <command>" "train" "generate" "bench" -- "$loom" --help
expect "loom (no command)" 1 err "usage: loom <command>" -- "$loom"
for cmd in train generate data bench; do
    expect "loom $cmd --help" 0 out "usage: loom $cmd" -- "$loom" "$cmd" --help
done
expect "loom info --help" 0 out "usage: loom info FILE" -- "$loom" info --help
expect "loom train -h" 0 out "--steps N" -- "$loom" train -h

# ---- bad command lines ----
expect "unknown command" 1 err "loom: frobnicate: unknown command" -- "$loom" frobnicate
expect "train: unknown flag" 1 err "loom: train: unknown option --frobnicate" -- \
    "$loom" train --data x -o y --frobnicate
expect "generate: unknown flag" 1 err "loom: generate: unknown option --bogus" -- \
    "$loom" generate -p hi --bogus 1
expect "bench: unknown flag" 1 err "loom: bench: unknown option --bogus" -- "$loom" bench --bogus 3
expect "data: unknown flag" 1 err "loom: data: unknown option --bogus" -- "$loom" data shapes-text --n 2 --bogus 1
expect "data: unknown kind" 1 err "loom: data: unknown kind" -- "$loom" data pictures --n 2
expect "train: --steps abc" 1 err "loom: --steps: not an integer" -- \
    "$loom" train --data x -o y --steps abc
expect "train: --steps 12x" 1 err "--steps" "not an integer" -- "$loom" train --data x -o y --steps 12x
expect "train: --steps 0" 1 err "--steps" "out of range" -- "$loom" train --data x -o y --steps 0
expect "train: --lr nan" 1 err "--lr" "not a number" -- "$loom" train --data x -o y --lr nan
expect "train: --steps without value" 1 err "loom: train: --steps needs a value" -- "$loom" train --data x -o y --steps
expect "train: no --data" 1 err "loom: train: --data and -o are required" -- "$loom" train -o y
expect "generate: no -p" 1 err "loom: generate: -p PROMPT is required" -- "$loom" generate -m "$tmp/none"
expect "generate: --temp -1" 1 err "--temp" "out of range" -- "$loom" generate -p hi --temp -1
expect "generate: --top-p 2" 1 err "--top-p" "out of range" -- "$loom" generate -p hi --top-p 2
expect "generate: -n x" 1 err "-n" "not an integer" -- "$loom" generate -p hi -n x
expect "bench: --steps x" 1 err "--steps" "not an integer" -- "$loom" bench --steps x
expect "data: no --n" 1 err "loom: data: --n N is required" -- "$loom" data shapes-text
expect "info: no model" 1 err "usage: loom info FILE" -- "$loom" info

# ---- bad model files ----
expect "generate: missing model" 1 err "loom: generate: " "$tmp/none.safetensors" -- \
    "$loom" generate -m "$tmp/none.safetensors" -p hi
printf '<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n' >"$tmp/page.safetensors"
expect "generate: HTML saved as a model" 1 err "loom: generate: " "$tmp/page.safetensors" -- \
    "$loom" generate -m "$tmp/page.safetensors" -p hi
expect "info: HTML saved as a model" 1 err "loom: $tmp/page.safetensors: " -- "$loom" info "$tmp/page.safetensors"
expect "info: missing model" 1 err "loom: $tmp/none.safetensors: " -- "$loom" info "$tmp/none.safetensors"

# ---- data ----
expect "data shapes-text --n 300" 0 err -- "$loom" data shapes-text --n 300 -o "$tmp/corpus.txt"
n=$(wc -l <"$tmp/corpus.txt")
check "data: 300 lines written (got $n)" "$([ "$n" -eq 300 ]; echo $?)"
check "data: lines are captions" "$(grep -qvE '^a (small|large) ' "$tmp/corpus.txt"; [ $? -eq 1 ]; echo $?)"
"$loom" data shapes-text --n 3 --seed 5 >"$tmp/d1" 2>/dev/null
s1=$?
"$loom" data shapes-text --n 3 --seed 5 >"$tmp/d2" 2>/dev/null
s2=$?
"$loom" data shapes-text --n 3 --seed 6 >"$tmp/d3" 2>/dev/null
check "data --seed 5 twice: identical, 3 lines" \
    "$([ $s1 -eq 0 ] && [ $s2 -eq 0 ] && cmp -s "$tmp/d1" "$tmp/d2" && [ "$(wc -l <"$tmp/d1")" -eq 3 ]; echo $?)"
check "data --seed 6 differs from --seed 5" "$(! cmp -s "$tmp/d1" "$tmp/d3"; echo $?)"
expect "data: unwritable -o" 1 err "loom: $tmp/no/dir/c.txt: " -- "$loom" data shapes-text --n 2 -o "$tmp/no/dir/c.txt"

# ---- train, info, generate on a tiny model ----
model="$tmp/tiny.safetensors"
tiny=(--vocab 300 --d-model 32 --layers 1 --heads 2 --kv-heads 2 --d-ff 32 --batch 2 --seq 16
      --warmup 0 --eval-every 0 -t 2 -q)
expect "train: missing corpus" 1 err "loom: train: " "$tmp/missing.txt" -- \
    "$loom" train --data "$tmp/missing.txt" -o "$model" "${tiny[@]}" --steps 2
expect "train tiny model" 0 err -- "$loom" train --data "$tmp/corpus.txt" -o "$model" "${tiny[@]}" --steps 3
check "train: model, checkpoint and log written" \
    "$([ -s "$model" ] && [ -s "$model.ckpt" ] && [ "$(wc -l <"$model.log.csv")" -eq 4 ]; echo $?)"
expect "info tiny model" 0 out "parameters:" "d_model:      32" "n_layers:     1" \
    "decoder.tok_emb" "decoder.wq" "decoder.w_down" "decoder.final_norm" "F32 [32]" -- "$loom" info "$model"
params=$(sed -n 's/^parameters: *//p' "$tmp/out")
check "info: parameter count is a positive integer ($params)" "$([[ "$params" =~ ^[1-9][0-9]*$ ]]; echo $?)"
expect "generate (seed 5)" 0 out "a small" -- "$loom" generate -m "$model" -p "a small" -s 5 -n 20 -t 1
cp "$tmp/out" "$tmp/g1"
expect "generate (seed 5) again" 0 out "a small" -- "$loom" generate -m "$model" -p "a small" -s 5 -n 20 -t 1
check "generate: same seed, same text" "$([ -s "$tmp/g1" ] && cmp -s "$tmp/g1" "$tmp/out"; echo $?)"
expect "generate greedy" 0 out "a" -- "$loom" generate -m "$model" -p "a" --temp 0 -n 10 -t 1
cp "$tmp/out" "$tmp/g2"
run "$loom" generate -m "$model" -p "a" --temp 0 -n 10 -s 77 -t 2
check "generate: greedy ignores the seed and thread count" "$([ $st -eq 0 ] && [ -s "$tmp/g2" ] && cmp -s "$tmp/g2" "$tmp/out"; echo $?)"
long=$(printf 'x%.0s' $(seq 1 600))
expect "generate: prompt longer than the context" 1 err "loom: generate: " "context" -- \
    "$loom" generate -m "$model" -p "$long" -t 1
head -c 2000 "$model" >"$tmp/trunc.safetensors"
expect "generate: truncated model" 1 err "loom: generate: " "$tmp/trunc.safetensors" -- \
    "$loom" generate -m "$tmp/trunc.safetensors" -p hi
expect "info: truncated model" 1 err "loom: $tmp/trunc.safetensors: " -- "$loom" info "$tmp/trunc.safetensors"

# stop and resume through the CLI reproduce the uninterrupted run's log (tok/s aside)
m2="$tmp/stopped.safetensors"
expect "train --stop-after 1" 0 err -- \
    "$loom" train --data "$tmp/corpus.txt" -o "$m2" "${tiny[@]}" --steps 3 --stop-after 1
check "train --stop-after: checkpoint only" "$([ ! -e "$m2" ] && [ -s "$m2.ckpt" ]; echo $?)"
expect "train --resume" 0 err -- "$loom" train --data "$tmp/corpus.txt" -o "$m2" "${tiny[@]}" --steps 3 --resume
check "train --resume: same log as the uninterrupted run" \
    "$([ -s "$m2.log.csv" ] && cmp -s <(cut -d, -f1-4,6 "$model.log.csv") <(cut -d, -f1-4,6 "$m2.log.csv"); echo $?)"
check "train --resume: same model file" "$([ -s "$m2" ] && cmp -s "$model" "$m2"; echo $?)"

# --config
printf '{"steps": 2, "d_model": 32, "bogus_key": 1}\n' >"$tmp/bad.json"
expect "train --config with a bad key" 1 err "unknown option --bogus-key" "$tmp/bad.json" -- \
    "$loom" train --config "$tmp/bad.json" --data "$tmp/corpus.txt" -o "$tmp/c.safetensors"

# ---- bench ----
expect "bench tiny --json" 0 out '"train_tok_s": ' '"gen_tok_s": ' '"params": ' -- \
    "$loom" bench --d-model 32 --layers 1 --heads 2 --kv-heads 2 --d-ff 32 --vocab 300 --batch 2 \
    --seq 16 --steps 1 --warmup 0 --gen-tokens 4 --json -t 1
check "bench: one JSON line" "$([ "$(wc -l <"$tmp/out")" -eq 1 ] && grep -qE '^\{.*\}$' "$tmp/out"; echo $?)"
expect "bench: bad config" 1 err "loom: bench: " -- "$loom" bench --d-model 30 --heads 4 --steps 1 --json

# ---- durable training: SIGKILL at arbitrary moments (some inside checkpoint writes), then resume ----
dur=(--data "$tmp/corpus.txt" --vocab 300 --d-model 192 --layers 2 --heads 4 --kv-heads 2 --d-ff 256
     --batch 4 --seq 32 --steps 40 --warmup 2 --eval-every 0 --ckpt-every 1 -t 2 -q)
"$loom" train "${dur[@]}" -o "$tmp/dur1.st" >/dev/null 2>&1
kills=0
for delay in 0.35 0.5 0.2 0.45 0.3 0.6 0.25 0.4; do
    "$loom" train "${dur[@]}" -o "$tmp/dur2.st" --resume >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null
done
expect "train after $kills SIGKILLs: resumes from the last intact checkpoint" 0 err -- "$loom" train "${dur[@]}" -o "$tmp/dur2.st" --resume
check "train after SIGKILLs: the same loss curve as the uninterrupted run" \
    "$(cmp -s <(cut -d, -f1-4,6 "$tmp/dur1.st.log.csv") <(cut -d, -f1-4,6 "$tmp/dur2.st.log.csv"); echo $?)"
check "train after SIGKILLs: the same model file" "$(cmp -s "$tmp/dur1.st" "$tmp/dur2.st"; echo $?)"

# ---- image in: data shapes, a tiny image model, caption / ask / eval ----
expect "data shapes" 0 out -- "$loom" data shapes --n 6 --seed 3 --questions 2 --sizes 48,64 --out "$tmp/shapes"
check "data shapes: manifest has 18 records" "$([ "$(wc -l <"$tmp/shapes/manifest.jsonl")" -eq 18 ]; echo $?)"
expect "data shapes: bad split" 1 err "loom: --split" -- "$loom" data shapes --n 1 --split val --out "$tmp/x"
imodel="$tmp/img.safetensors"
expect "train on an image manifest" 0 err "image patches" -- "$loom" train --data "$tmp/shapes/manifest.jsonl" \
    -o "$imodel" --d-model 32 --layers 1 --heads 2 --kv-heads 1 --d-ff 32 --seq 112 --batch 2 --steps 2 \
    --eval-every 0 --vocab 300 -q -t 1
expect "info: image model" 0 out "patch.w" "patch.b" -- "$loom" info "$imodel"
run "$loom" caption -m "$imodel" -t 1 "$tmp/shapes/images/000000.png" "$tmp/shapes/images/000001.png"
check "caption: one line per image, exit 0" "$([ "$st" -eq 0 ] && [ "$(wc -l <"$tmp/out")" -eq 2 ]; echo $?)"
expect "caption: missing image" 1 err "loom: $tmp/none.png:" -- "$loom" caption -m "$imodel" "$tmp/none.png"
run "$loom" caption -m "$imodel" "$tmp/none.png" "$tmp/shapes/images/000000.png"
check "caption: a bad image leaves an empty line, others still captioned" "$([ "$st" -eq 1 ] && [ "$(wc -l <"$tmp/out")" -eq 2 ] && [ -z "$(head -1 "$tmp/out")" ]; echo $?)"
printf '<html>not a png</html>' >"$tmp/page.png"
expect "caption: html saved as png" 1 err "loom: $tmp/page.png:" -- "$loom" caption -m "$imodel" "$tmp/page.png"
expect "caption: no images" 1 err "loom: caption: no images given" -- "$loom" caption -m "$imodel"
expect "caption: text-only model" 1 err "no image input" -- "$loom" caption -m "$model" "$tmp/shapes/images/000000.png"
expect "ask: needs --image and -p" 1 err "loom: ask: --image and -p (or --audio) are required" -- "$loom" ask -m "$imodel" -p "what?"
expect "ask: answers" 0 out -- "$loom" ask -m "$imodel" --image "$tmp/shapes/images/000000.png" -p "how many objects are there?" -t 1
expect "ask --caption-first: answers" 0 out -- "$loom" ask -m "$imodel" --image "$tmp/shapes/images/000000.png" \
    -p "how many objects are there?" --caption-first -t 1
expect "ask --contrast: answers" 0 out -- "$loom" ask -m "$imodel" --image "$tmp/shapes/images/000000.png" \
    -p "how many objects are there?" --contrast 0.5 -t 1
expect "ask --contrast with --caption-first: refused" 1 err "contrastive decoding does not go with caption first" -- \
    "$loom" ask -m "$imodel" --image "$tmp/shapes/images/000000.png" -p "how many objects are there?" --contrast 0.5 --caption-first
expect "caption --contrast: a line per image" 0 out -- "$loom" caption -m "$imodel" --contrast 0.5 -t 1 "$tmp/shapes/images/000000.png"
expect "caption --contrast: not a number" 1 err "loom: --contrast" -- "$loom" caption -m "$imodel" --contrast x "$tmp/shapes/images/000000.png"
expect "ask: missing image" 1 err "loom: $tmp/none.png:" -- "$loom" ask -m "$imodel" --image "$tmp/none.png" -p "x"
expect "eval: runs and reports every split" 0 out "test" "combos" "jpeg75" "count_shape" -- "$loom" eval -m "$imodel" --n 1 --questions 1 -t 1
expect "eval --help" 0 out "usage: loom eval" -- "$loom" eval --help
expect "eval --contrast: says so" 0 out "image-contrastive decoding, contrast 0.5" -- \
    "$loom" eval -m "$imodel" --n 1 --questions 1 -t 1 --contrast 0.5
expect "eval --caption-first: says so" 0 out "answered after the model's own caption" "count_shape" -- \
    "$loom" eval -m "$imodel" --n 1 --questions 1 -t 1 --caption-first

# ---- image out: a tiny VQ, a tiny model with image output, imagine / eval imagine ----
vqargs=(--data shapes --vq-only --vq-channels 4,4,8 --vq-codes 16 --vq-dim 4 --batch 2 --steps 2
        --eval-every 2 --eval-batches 1 -t 1 -q)
expect "train --vq-only: writes a VQ file" 0 err "loom: wrote $tmp/vq.st" -- "$loom" train "${vqargs[@]}" -o "$tmp/vq.st"
"$loom" train "${vqargs[@]}" --steps 4 -o "$tmp/vqa.st" >/dev/null 2>&1
"$loom" train "${vqargs[@]}" --steps 4 --stop-after 2 -o "$tmp/vqb.st" >/dev/null 2>&1
"$loom" train "${vqargs[@]}" --steps 4 --resume -o "$tmp/vqb.st" >/dev/null 2>&1
check "train --vq-only: stop and resume give the same file" "$(cmp -s "$tmp/vqa.st" "$tmp/vqb.st"; echo $?)"
expect "train --vq-only: data must be shapes" 1 err "--vq-only trains on" -- "$loom" train "${vqargs[@]}" --data "$tmp/corpus.txt" -o "$tmp/vq2.st"
expect "train --vq: missing file" 1 err "--vq" -- "$loom" train --data shapes --vq "$tmp/none.st" -o "$tmp/g.st" --steps 1 -q
expect "train --vq: a model file is not a VQ file" 1 err "not a loom VQ file" -- "$loom" train --data shapes --vq "$imodel" -o "$tmp/g.st" --steps 1 -q
gmodel="$tmp/gen.st"
expect "train --vq: a model with image output" 0 err "loom: wrote $gmodel" -- "$loom" train --data shapes --vq "$tmp/vq.st" \
    --vocab 300 --d-model 32 --layers 1 --heads 2 --kv-heads 2 --d-ff 48 --patch 8 --batch 4 --seq 192 \
    --steps 2 --eval-every 2 --eval-batches 1 -t 1 -q -o "$gmodel"
expect "imagine: writes the PNG" 0 out "$tmp/a.png" -- "$loom" imagine -m "$gmodel" -p "a red circle" -o "$tmp/a.png" -s 3 -t 1
check "imagine: PNG with the prompt in a text chunk" "$(grep -qaF "a red circle" "$tmp/a.png"; echo $?)"
"$loom" imagine -m "$gmodel" -p "a red circle" -o "$tmp/b.png" -s 3 -t 1 >/dev/null 2>&1
check "imagine: same seed, same bytes" "$(cmp -s "$tmp/a.png" "$tmp/b.png"; echo $?)"
expect "imagine --tries: draws again when its caption does not read back" 0 err "none of 8 draws read back as the prompt; kept the first" -- \
    "$loom" imagine -m "$gmodel" -p "a red circle" -o "$tmp/t.png" -s 3 -t 1
check "imagine: PNG with tries and the read-back caption" "$(grep -qaF "tries" "$tmp/t.png" && grep -qaF "read back" "$tmp/t.png"; echo $?)"
"$loom" imagine -m "$gmodel" -p "not a shapes prompt" -o "$tmp/u.png" -t 1 2>"$tmp/err"
check "imagine: a prompt outside the grammar is drawn once, unchecked" "$([ ! -s "$tmp/err" ] && ! grep -qaF "read back" "$tmp/u.png"; echo $?)"
expect "imagine: --tries 0" 1 err "loom: --tries: 0 is out of range" -- "$loom" imagine -m "$gmodel" -p "a red circle" -o "$tmp/t.png" --tries 0
expect "imagine: -n 2 writes two files" 0 out "$tmp/k-1.png" "$tmp/k-2.png" -- "$loom" imagine -m "$gmodel" -p "a circle" -o "$tmp/k.png" -n 2 --scale 2 -t 1
expect "imagine: needs -p and -o" 1 err "loom: imagine: -p (or --audio) and -o are required" -- "$loom" imagine -m "$gmodel" -p "x"
expect "imagine: model without image output" 1 err "no image output" -- "$loom" imagine -m "$imodel" -p "x" -o "$tmp/c.png"
expect "imagine: unwritable output" 1 err "loom: imagine: $tmp/nodir/c.png" -- "$loom" imagine -m "$gmodel" -p "x" -o "$tmp/nodir/c.png" -t 1
expect "info: a VQ file" 0 out "VQ file:" "vq.codebook" -- "$loom" info "$tmp/vq.st"
expect "info: image output" 0 out "image out:" "vq.enc.0.weight" -- "$loom" info "$gmodel"
expect "eval imagine: runs" 0 out "scene match" "partial" "combos" "PSNR" "up to 8 draws" "draws per prompt" -- "$loom" eval imagine -m "$gmodel" --n 1 -t 1
expect "eval imagine --tries 1: single draws" 0 out "up to 1 draw" -- "$loom" eval imagine -m "$gmodel" --n 1 -t 1 --tries 1
expect "caption: still works on a model with image output" 0 out -- "$loom" caption -m "$gmodel" -t 1 "$tmp/shapes/images/000000.png"
# --grow-layers: deeper, and (one step at learning rate 0) the same function as the model it grew from
expect "train --grow-layers: 1 -> 3 layers" 0 err "grown to 3" "loom: wrote $tmp/grown.st" -- "$loom" train --data shapes \
    --init "$gmodel" --grow-layers 3 --lr 0 --min-lr 0 --batch 4 --seq 192 --steps 1 --eval-every 0 -t 1 -q -o "$tmp/grown.st"
expect "info: the grown model has 3 layers" 0 out "n_layers:     3" -- "$loom" info "$tmp/grown.st"
"$loom" caption -m "$gmodel" -t 1 "$tmp/shapes/images/000000.png" "$tmp/shapes/images/000001.png" >"$tmp/cap1" 2>/dev/null
"$loom" caption -m "$tmp/grown.st" -t 1 "$tmp/shapes/images/000000.png" "$tmp/shapes/images/000001.png" >"$tmp/cap2" 2>/dev/null
check "caption: the grown model captions as its original did" "$([ -s "$tmp/cap1" ] && cmp -s "$tmp/cap1" "$tmp/cap2"; echo $?)"
expect "train --grow-layers: needs --init" 1 err "--grow-layers goes with --init" -- "$loom" train --data shapes \
    --grow-layers 3 --steps 1 -q -o "$tmp/g.st"
expect "train --grow-layers: fewer layers" 1 err "--grow-layers 2: the --init model already has 3 layers" -- "$loom" train \
    --data shapes --init "$tmp/grown.st" --grow-layers 2 --steps 1 -q -o "$tmp/g.st"

# ---- audio in: data speech, a model with audio input, listen / ask --audio / imagine --audio ----
expect "data speech: writes WAVs and a manifest" 0 err "loom: data speech: 6 utterances" -- \
    "$loom" data speech --n 6 --seed 2 --out "$tmp/speech"
check "data speech: 6 records, 6 WAVs" "$([ "$(wc -l <"$tmp/speech/manifest.jsonl")" -eq 6 ] && [ "$(ls "$tmp/speech/audio" | wc -l)" -eq 6 ]; echo $?)"
"$loom" data speech --n 6 --seed 2 --out "$tmp/speech2" >/dev/null 2>&1
check "data speech: same seed, same bytes" "$(cmp -s "$tmp/speech/manifest.jsonl" "$tmp/speech2/manifest.jsonl" && cmp -s "$tmp/speech/audio/000005.wav" "$tmp/speech2/audio/000005.wav"; echo $?)"
expect "data speech: bad split" 1 err "loom: --split" -- "$loom" data speech --n 1 --split dev --out "$tmp/x"
expect "data speech: needs --out" 1 err "loom: data speech: --n and --out are required" -- "$loom" data speech --n 1
wav="$tmp/speech/audio/000000.wav"
amodel="$tmp/aud.st"
expect "train --speech: adds audio input to an --init model" 0 err "speech: 6 utterances" "loom: wrote $amodel" -- \
    "$loom" train --data shapes --init "$gmodel" --speech "$tmp/speech/manifest.jsonl" --batch 4 --seq 192 \
    --steps 2 --eval-every 2 --eval-batches 1 -t 1 -q -o "$amodel"
expect "info: audio input" 0 out "audio in:" "audio.w" "image out:" -- "$loom" info "$amodel"
expect "train --speech: needs shapes data" 1 err "--speech goes with --data shapes" -- \
    "$loom" train --data "$tmp/corpus.txt" --speech "$tmp/speech/manifest.jsonl" -o "$tmp/y.st" --steps 1 -q
run "$loom" listen -m "$amodel" -t 1 "$wav" "$tmp/speech/audio/000001.wav"
check "listen: one line per file, exit 0" "$([ "$st" -eq 0 ] && [ "$(wc -l <"$tmp/out")" -eq 2 ]; echo $?)"
expect "listen: missing file" 1 err "loom: $tmp/none.wav:" -- "$loom" listen -m "$amodel" "$tmp/none.wav"
printf 'RIFF....not a wave' >"$tmp/bad.wav"
expect "listen: not audio" 1 err "loom: $tmp/bad.wav:" -- "$loom" listen -m "$amodel" "$tmp/bad.wav"
expect "listen: no files" 1 err "loom: listen: no audio files given" -- "$loom" listen -m "$amodel"
expect "listen: model without audio input" 1 err "no audio input" -- "$loom" listen -m "$gmodel" "$wav"
expect "ask --audio: answers" 0 out -- "$loom" ask -m "$amodel" --image "$tmp/shapes/images/000000.png" --audio "$wav" -t 1
expect "ask --audio --spoken direct: answers" 0 out -- "$loom" ask -m "$amodel" --image "$tmp/shapes/images/000000.png" \
    --audio "$wav" --spoken direct -t 1
expect "ask --spoken bogus" 1 err "loom: --spoken: want transcribe or direct, not \"bogus\"" -- \
    "$loom" ask -m "$amodel" --image "$tmp/shapes/images/000000.png" --audio "$wav" --spoken bogus
expect "ask: -p and --audio" 1 err "loom: ask: give the question as -p or as --audio, not both" -- \
    "$loom" ask -m "$amodel" --image "$tmp/shapes/images/000000.png" --audio "$wav" -p "x"
expect "ask --audio: model without audio input" 1 err "no audio input" -- \
    "$loom" ask -m "$gmodel" --image "$tmp/shapes/images/000000.png" --audio "$wav"
expect "imagine --audio: writes the PNG" 0 out "$tmp/s.png" -- "$loom" imagine -m "$amodel" --audio "$wav" -o "$tmp/s.png" -t 1
check "imagine --audio: the audio file in a text chunk" "$(grep -qaF "$wav" "$tmp/s.png"; echo $?)"
check "imagine --audio: the transcript drawn from in a text chunk" "$(grep -qa "transcript" "$tmp/s.png"; echo $?)"
expect "imagine --audio --spoken direct" 0 out "$tmp/d.png" -- "$loom" imagine -m "$amodel" --audio "$wav" -o "$tmp/d.png" \
    --spoken direct -t 1
check "imagine --spoken direct: no transcript chunk" "$(grep -qa "transcript" "$tmp/d.png"; echo $((!$?)))"
expect "serve --spoken bogus" 1 err "loom: --spoken: want transcribe or direct" -- "$loom" serve -m "$amodel" --spoken bogus
expect "eval listen: runs" 0 out "transcript" -- "$loom" eval listen -m "$amodel" --speech "$tmp/speech/manifest.jsonl" -t 1
expect "eval listen: needs --speech" 1 err "loom: eval listen: --speech is required" -- "$loom" eval listen -m "$amodel"
# any manifest may carry audio: {"audio": ..., "answer": ...}
printf '{"audio":"audio/000000.wav","answer":"one"}\n{"audio":"audio/000001.wav","prompt":"","answer":"two"}\n' >"$tmp/speech/user.jsonl"
expect "train on a manifest with audio" 0 err "loom: wrote $tmp/ua.st" -- "$loom" train --data "$tmp/speech/user.jsonl" \
    -o "$tmp/ua.st" --d-model 32 --layers 1 --heads 2 --kv-heads 1 --d-ff 32 --seq 128 --batch 2 --steps 2 \
    --eval-every 0 --vocab 300 --audio-stack 4 -q -t 1
expect "info: audio-only model" 0 out "audio in:" "4 frames" -- "$loom" info "$tmp/ua.st"

# audio encoders: the conv stem trains from the command line and says so in loom info
expect "train --audio-encoder conv" 0 err "loom: wrote $tmp/uc.st" -- "$loom" train --data "$tmp/speech/user.jsonl" \
    -o "$tmp/uc.st" --d-model 32 --layers 1 --heads 2 --kv-heads 1 --d-ff 32 --seq 128 --batch 2 --steps 2 \
    --eval-every 0 --vocab 300 --audio-stack 4 --audio-encoder conv --audio-conv-channels 8 -q -t 1
expect "info: conv audio encoder" 0 out "conv stem" "2 stride-2 layers of 8 channels" -- "$loom" info "$tmp/uc.st"
expect "train --audio-encoder bogus" 1 err "--audio-encoder: want stack or conv" -- "$loom" train --data "$tmp/speech/user.jsonl" \
    -o "$tmp/ub.st" --audio-encoder bogus
expect "train conv with a stack not a power of 2" 1 err "stack 6 is not a power of two" -- "$loom" train --data "$tmp/speech/user.jsonl" \
    -o "$tmp/ub.st" --d-model 32 --layers 1 --heads 2 --kv-heads 1 --d-ff 32 --seq 128 --batch 2 --steps 2 \
    --eval-every 0 --vocab 300 --audio-stack 6 --audio-encoder conv -q -t 1

# ---- serve: start-up errors (the API itself: tests/server_test.py) ----
expect "serve: port out of range" 1 err "loom: --port:" -- "$loom" serve -m "$gmodel" --port 70000
expect "serve: host not an address" 1 err "loom: serve: host not-an-ip:" "want a numeric address" -- \
    "$loom" serve -m "$gmodel" --host not-an-ip --port 0
expect "serve: --max-tries over 64" 1 err "loom: --max-tries:" -- "$loom" serve -m "$gmodel" --max-tries 65 --port 0
expect "serve: --max-images 0" 1 err "loom: --max-images:" -- "$loom" serve -m "$gmodel" --max-images 0 --port 0
expect "serve: missing model" 1 err "loom: $tmp/none.st:" -- "$loom" serve -m "$tmp/none.st" --port 0
expect "serve: stray argument" 1 err "loom: serve:" -- "$loom" serve -m "$gmodel" extra
"$loom" serve -m "$gmodel" --port 0 -t 1 >"$tmp/serve1.out" 2>&1 &
spid=$!
for _ in $(seq 100); do grep -q "http://" "$tmp/serve1.out" && break; sleep 0.1; done
sport=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/serve1.out")
expect "serve: port in use" 1 err "cannot listen on 127.0.0.1 port $sport" -- "$loom" serve -m "$gmodel" --port "$sport"
kill -TERM "$spid"
wait "$spid"
check "serve: SIGTERM stops it with status 0" "$?"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
