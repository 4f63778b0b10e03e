#!/usr/bin/env bash
# bad_input_test.sh LOOM_BIN REPO_DIR: the bad-input matrix of the loom command line.
#
# Each row feeds one broken, hostile or huge input to a command and states the exact
# outcome it must get: exit status 1 and a "loom: <what>: <why>" message naming the reason,
# or, where the input is merely unusual (a literal "<img>" in a prompt, a 48-megapixel-decoded
# image within the limits), exit 0 and an answer. Inputs are written by
# tests/bad_input_files.py (and a few here); the model is the shipped one, which has image
# input and output and audio input. Prints "bad input: N passed, M failed".
set -u
loom="$1"
repo="$2"
model="${LOOM_MODEL:-$repo/models/loom-shapes.safetensors}"
img="$repo/examples/scene0.png"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom_bad_input.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
py=python3
command -v "$py" >/dev/null 2>&1 || py=/usr/bin/python3
"$py" "$repo/tests/bad_input_files.py" "$tmp" || { echo "bad input: cannot write the inputs"; exit 1; }
pass=0
fail=0

# row NAME STATUS TEXT -- CMD...: CMD must exit with STATUS and print TEXT (fixed string) on
# stderr (status 1) or stdout (status 0).
row() {
    local name="$1" want="$2" text="$3"
    shift 4
    "$@" >"$tmp/out" 2>"$tmp/err"
    local st=$? stream="$tmp/err"
    [ "$want" -eq 0 ] && stream="$tmp/out"
    if [ "$st" -eq "$want" ] && grep -qF -- "$text" "$stream" && { [ "$want" -eq 0 ] || grep -q '^loom: ' "$tmp/err"; }; then
        pass=$((pass + 1))
        echo "ok   $name"
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $st (want $want), want \"$text\""
        sed 's/^/  stdout: /' "$tmp/out" | head -3
        sed 's/^/  stderr: /' "$tmp/err" | head -3
    fi
}

# ---- images ----
row "image: missing file" 1 "loom: $tmp/none.png: " -- "$loom" caption -m "$model" -t 1 "$tmp/none.png"
row "image: a directory" 1 "is a directory, not an image file" -- "$loom" caption -m "$model" -t 1 "$tmp"
row "image: 0 bytes" 1 "empty file (0 bytes), not an image" -- "$loom" caption -m "$model" -t 1 "$tmp/empty.png"
row "image: truncated PNG" 1 "truncated or corrupt" -- "$loom" caption -m "$model" -t 1 "$tmp/truncated.png"
row "image: 100000 x 100000 PNG header" 1 "PNG image is 100000x100000; width and height are limited to 8192" -- \
    "$loom" caption -m "$model" -t 1 "$tmp/huge-header.png"
row "image: decompression bomb over the pixel limit" 1 "8192x8192 = 67108864 pixels; the limit is 16777216" -- \
    "$loom" caption -m "$model" -t 1 "$tmp/bomb-8192.png"
row "image: 4000 x 4000 bomb within the limits is downscaled and captioned" 0 "a " -- \
    "$loom" caption -m "$model" -t 1 "$tmp/bomb-4000.png"
row "image: HTML saved as PNG" 1 "unknown image format" -- "$loom" caption -m "$model" -t 1 "$tmp/page.html"
row "image: garbage after a JPEG signature" 1 "unreadable JPEG header" -- "$loom" ask -m "$model" -t 1 --image "$tmp/not-an-image.jpg" -p "x"

# ---- model files ----
row "model: missing" 1 "loom: $tmp/none.safetensors: " -- "$loom" caption -m "$tmp/none.safetensors" "$img"
row "model: a directory" 1 "not a regular file" -- "$loom" caption -m "$tmp" "$img"
row "model: HTML saved as a model" 1 "header length" -- "$loom" caption -m "$tmp/page.html" "$img"
head -c 100000 "$model" >"$tmp/truncated.safetensors"
row "model: truncated" 1 "loom: $tmp/truncated.safetensors: " -- "$loom" caption -m "$tmp/truncated.safetensors" "$img"
# a tensor whose byte range ends past the end of the file
"$py" - "$model" "$tmp/offsets.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
name = next(k for k in h if k != "__metadata__")
h[name]["data_offsets"][1] += 1 << 30
hb = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])
PY
row "model: tensor offsets past the end" 1 "loom: $tmp/offsets.safetensors: " -- "$loom" caption -m "$tmp/offsets.safetensors" "$img"

# ---- audio ----
row "audio: missing file" 1 "loom: $tmp/none.wav: " -- "$loom" listen -m "$model" -t 1 "$tmp/none.wav"
row "audio: 0 bytes" 1 "empty file" -- "$loom" listen -m "$model" -t 1 "$tmp/empty.wav"
row "audio: 0 samples" 1 "no samples" -- "$loom" listen -m "$model" -t 1 "$tmp/zero-samples.wav"
row "audio: NaN samples" 1 "is not a finite number" -- "$loom" listen -m "$model" -t 1 "$tmp/nan.wav"
row "audio: infinite samples" 1 "is not a finite number" -- "$loom" ask -m "$model" -t 1 --image "$img" --audio "$tmp/inf.wav"
row "audio: truncated WAV" 1 "truncated (its header promises more audio data than the file holds)" -- \
    "$loom" listen -m "$model" -t 1 "$tmp/truncated.wav"
row "audio: a header claiming 10 hours" 1 "truncated" -- "$loom" listen -m "$model" -t 1 "$tmp/ten-hours.wav"
# a real 10-hour file: 1 kHz, 8-bit, 36 MB of silence
"$py" - "$tmp/long.wav" <<'PY'
import struct, sys
n = 10 * 3600 * 1000
with open(sys.argv[1], "wb") as f:
    f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 1000, 1000, 1, 8)
            + b"data" + struct.pack("<I", n))
    chunk = b"\x80" * (1 << 20)
    for _ in range(n >> 20):
        f.write(chunk)
    f.write(b"\x80" * (n & ((1 << 20) - 1)))
PY
row "audio: 10 hours long" 1 "36000 seconds long; audio is limited to 600 seconds" -- "$loom" listen -m "$model" -t 1 "$tmp/long.wav"
rm -f "$tmp/long.wav"
row "audio: text saved as WAV" 1 "not a readable audio file" -- "$loom" listen -m "$model" -t 1 "$tmp/text.wav"
# 30 s of speech-like sound needs 375 positions; the context holds 256
"$py" - "$tmp/long30.wav" <<'PY'
import math, struct, sys
n = 30 * 16000
data = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / 16000))) for i in range(n))
open(sys.argv[1], "wb").write(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
                              + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data"
                              + struct.pack("<I", len(data)) + data)
PY
row "audio: longer than the context" 1 "positions; the context holds" -- "$loom" listen -m "$model" -t 1 "$tmp/long30.wav"

# ---- text ----
row "prompt: invalid UTF-8" 1 "the prompt is not valid UTF-8 (byte 18)" -- \
    "$loom" ask -m "$model" -t 1 --image "$img" -p "$(cat "$tmp/invalid-utf8.txt")"
row "prompt: literal special-token text is text" 0 "" -- "$loom" ask -m "$model" -t 1 --image "$img" -p "<img></img><sep> how many objects are there?"
long=$(printf 'what color is the circle %.0s' $(seq 1 200))
row "prompt: longer than the context" 1 "the context holds" -- "$loom" ask -m "$model" -t 1 --image "$img" -p "$long"
row "imagine: prompt longer than the context" 1 "the context holds" -- "$loom" imagine -m "$model" -t 1 -p "$long" -o "$tmp/x.png"
row "imagine: invalid UTF-8" 1 "not valid UTF-8" -- "$loom" imagine -m "$model" -t 1 -p "$(cat "$tmp/invalid-utf8.txt")" -o "$tmp/x.png"

# ---- manifests ----
printf '{"image":"nowhere.png","prompt":"","answer":"x"}\n' >"$tmp/m1.jsonl"
row "manifest: a missing image names the line" 1 "m1.jsonl:1" -- "$loom" train --data "$tmp/m1.jsonl" -o "$tmp/t.st" --steps 1 -q
printf '{"image":"a.png","answer":"x"}\nnot json at all\n' >"$tmp/m2.jsonl"
cp "$img" "$tmp/a.png"
row "manifest: a line that is not JSON" 1 "m2.jsonl:2: not a JSON object" -- "$loom" train --data "$tmp/m2.jsonl" -o "$tmp/t.st" --steps 1 -q
printf '{"audio":"none.wav","text":"x"}\n' >"$tmp/s.jsonl"
row "speech manifest: a missing audio file" 1 "s.jsonl:1" -- "$loom" eval listen -m "$model" --speech "$tmp/s.jsonl"

echo "bad input: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
