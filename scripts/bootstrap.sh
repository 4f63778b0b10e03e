#!/usr/bin/env bash
# bootstrap.sh: installs the Debian packages loom needs (only those missing),
# then configures and builds loom in ./build. Idempotent; runs as root or
# through sudo. Usage: scripts/bootstrap.sh [--no-build] [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."

# Build and runtime libraries, and the reference-test interpreter's packages; clang with its
# libFuzzer and sanitizer runtimes (libclang-rt-dev), its OpenMP (libomp-dev) and
# llvm-symbolizer (llvm), for scripts/fuzz.sh and scripts/sanitize.sh. chromium for the demo
# page's browser test (tests/browser, which also needs node and npm), wrk for bench/serve_load.sh.
PACKAGES=(build-essential cmake pkg-config libopenblas-openmp-dev libcjson-dev libcmocka-dev libstb-dev
          libsndfile1-dev libsamplerate0-dev libfftw3-dev espeak-ng libmicrohttpd-dev
          python3 python3-numpy python3-torch python3-torchaudio
          clang libclang-rt-dev libomp-dev llvm
          chromium wrk)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "bootstrap: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        SUDO=sudo
    fi
    echo "bootstrap: installing ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The browser test's one npm package (playwright-core, pinned by package-lock.json).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    command -v npm >/dev/null || { echo "bootstrap: the browser test needs node and npm" >&2; exit 1; }
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${1:-}" = "--no-build" ]; then exit 0; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
echo "bootstrap: built build/loom"
