#!/usr/bin/env bash
# Parity of loom's decoder forward, backward and AdamW steps against the PyTorch reference.
#
# Usage: run_parity.sh BUILD_DIR
#
# First runs selftest_loom_ref.py (the reference against a scalar transcription of the spec).
# Then for each config (tiny: untied, GQA H=4 KVH=2, full attention; window: tied, window=3;
# mha: H=KVH=2, tied) runs
#     BUILD_DIR/tests/reference/parity_dump --config NAME --out OUT/NAME
# then check_parity.py OUT/NAME, where OUT = BUILD_DIR/tests/reference/parity_out (kept for
# inspection). Then the modules (patch projector, VQ autoencoder, log-mel, audio encoder):
# NAME_dump + NAME_parity.py, each in OUT/NAME. Exits nonzero if any config fails.
#
# Python: the first of $LOOM_PYTHON, /usr/bin/python3, python3 that can `import torch, numpy`.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
build="$1"
dump="$build/tests/reference/parity_dump"
out="$build/tests/reference/parity_out"
configs="tiny window mha long"

python=""
candidates=()
[ -n "${LOOM_PYTHON:-}" ] && candidates+=("$LOOM_PYTHON")
candidates+=(/usr/bin/python3 python3)
for cand in "${candidates[@]}"; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch, numpy' >/dev/null 2>&1; then
        python="$cand"
        break
    fi
done
if [ -z "$python" ]; then
    echo "run_parity: no python with torch and numpy (tried \$LOOM_PYTHON='${LOOM_PYTHON:-}'," \
         "/usr/bin/python3, python3); install python3-torch and python3-numpy or set LOOM_PYTHON" >&2
    exit 1
fi
if [ ! -x "$dump" ]; then
    echo "run_parity: $dump: not found or not executable (build the parity_dump target)" >&2
    exit 1
fi
echo "run_parity: python $python ($("$python" -c 'import torch; print("torch", torch.__version__)'))"

failed=""
# The oracle first: loom_ref against a scalar transcription of the spec, cache, file I/O.
if ! "$python" "$here/selftest_loom_ref.py"; then
    failed=" selftest"
fi
for name in $configs; do
    dir="$out/$name"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "=== $name: $dump --config $name --out $dir"
    "$dump" --config "$name" --out "$dir"
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "run_parity: $name: parity_dump failed (exit $rc)" >&2
        failed="$failed $name"
        continue
    fi
    if ! "$python" "$here/check_parity.py" "$dir"; then
        failed="$failed $name"
    fi
done

# One module's parity: BUILD_DIR/tests/reference/NAME_dump --out OUT/NAME, then
# NAME_parity.py OUT/NAME. The modules:
#   patch  the image patch projector: patchify and the linear layer recomputed in float64
#   vq     the VQ image autoencoder (PyTorch conv2d/conv_transpose2d in float64, vq_ref.py):
#          codes exactly, z_e, reconstruction, loss, every gradient, one EMA codebook update
#   mel    the log-mel spectrogram (whisper's formula with torch.stft in float64): every
#          value within 1e-4, the filterbank within 1e-12
#   audio  the audio encoder: mel-frame grouping (exactly, padding with the spectrogram's
#          minimum) and the linear layer's output and gradients recomputed in float64
module_parity() {
    local name="$1" bin="$build/tests/reference/$1_dump" dir="$out/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "=== $name: $bin --out $dir"
    if [ ! -x "$bin" ]; then
        echo "run_parity: $bin: not found or not executable (build the ${name}_dump target)" >&2
        failed="$failed $name"
    elif ! "$bin" --out "$dir"; then
        echo "run_parity: $name: ${name}_dump failed" >&2
        failed="$failed $name"
    elif ! "$python" "$here/${name}_parity.py" "$dir"; then
        failed="$failed $name"
    fi
    configs="$configs $name"
}
for m in patch vq mel audio; do
    module_parity "$m"
done

if [ -n "$failed" ]; then
    echo "run_parity: FAILED:$failed"
    exit 1
fi
echo "run_parity: all configs passed ($configs)"
exit 0
