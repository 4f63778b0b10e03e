#!/usr/bin/env bash
# test.sh: sets up (scripts/bootstrap.sh) and runs every test with ctest:
# unit tests (cmocka), the CLI tests, the PyTorch reference parity tests and the
# shipped models' tests; then all of them again under AddressSanitizer +
# UndefinedBehaviorSanitizer (scripts/sanitize.sh, build-asan/), then each
# libFuzzer harness for LOOM_FUZZ_SECONDS (default 60) (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cd build
ctest --output-on-failure -j1
cd ..
scripts/sanitize.sh
scripts/fuzz.sh "${LOOM_FUZZ_SECONDS:-60}"
