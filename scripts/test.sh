#!/usr/bin/env bash
# test.sh: sets up (scripts/bootstrap.sh) and runs every test with ctest:
# unit tests (cmocka), the CLI tests, and the PyTorch reference parity tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cd build
ctest --output-on-failure -j1
