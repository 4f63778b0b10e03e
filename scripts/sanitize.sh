#!/usr/bin/env bash
# sanitize.sh: builds loom and its tests with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DLOOM_SANITIZE=ON, RelWithDebInfo) in build-asan/ and runs ctest there. Any sanitizer
# report (memory error, undefined behaviour, leak) aborts the process, so the test fails.
#
# Usage: scripts/sanitize.sh [ctest args...]     e.g. scripts/sanitize.sh -R 'test_(png|audio)'
# Environment: CC (compiler, default cc), SANITIZE_JOBS (build jobs, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOM_SANITIZE=ON >/dev/null
cmake --build build-asan -j"${SANITIZE_JOBS:-$(nproc)}"

# halt/abort on the first report; leaks count; known leaks inside third-party libraries are
# listed (with their upstream reports) in fuzz/lsan.supp.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0"
command -v llvm-symbolizer >/dev/null && export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"

cd build-asan
ctest --output-on-failure -j1 "$@"
