#!/usr/bin/env bash
# fuzz.sh: builds loom's libFuzzer harnesses (fuzz/) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz/, then runs each for SECONDS (default 60) on a
# copy of its seed corpus (fuzz/corpus/NAME/ is never written to). Prints each harness's
# executions and exits nonzero if any of them crashed, tripped a sanitizer, leaked, ran out
# of memory (-rss_limit_mb=2048) or hung (-timeout: 30 s, 60 for the server, whose one
# image is about 16 s under the sanitizers); the input that did it is left in
# build-fuzz/artifacts/NAME-crash-... (or -leak-, -oom-, -timeout-) and the log in
# build-fuzz/logs/NAME.log. Reproduce with: build-fuzz/fuzz/fuzz_NAME ARTIFACT
#
# Usage: scripts/fuzz.sh [SECONDS] [NAME...]    NAME: image audio safetensors manifest tokenizer server
# Environment: FUZZ_JOBS (build jobs, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
[ $# -gt 0 ] && shift
case "$secs" in ''|*[!0-9]*|0) echo "fuzz.sh: SECONDS must be a whole number >= 1, not '$secs'" >&2; exit 2 ;; esac
names=("$@")
((${#names[@]})) || names=(image audio safetensors manifest tokenizer server)

# The largest input each harness makes: its seeds are a few KB; models and images need room to grow.
max_len() {
    case "$1" in
        image|audio) echo 32768 ;;
        safetensors) echo 65536 ;;
        manifest) echo 4096 ;;
        tokenizer) echo 8192 ;;
        server) echo 65536 ;;
        *) echo "fuzz.sh: no harness '$1' (image audio safetensors manifest tokenizer server)" >&2; return 1 ;;
    esac
}
# How long one input may run: the server draws an image (about 16 s under the sanitizers).
timeout_of() {
    case "$1" in
        server) echo 60 ;;
        *) echo 30 ;;
    esac
}
targets=()
for n in "${names[@]}"; do
    max_len "$n" >/dev/null
    targets+=("fuzz_$n")
done

command -v clang >/dev/null || { echo "fuzz.sh: clang not found (scripts/bootstrap.sh installs it)" >&2; exit 1; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DLOOM_SANITIZE=ON -DLOOM_FUZZ=ON -DLOOM_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"${FUZZ_JOBS:-$(nproc)}" --target "${targets[@]}"

out=build-fuzz
mkdir -p "$out/artifacts" "$out/logs" "$out/tmp"
export TMPDIR="$PWD/$out/tmp"   # fuzz_manifest's scratch directory
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:print_stacktrace=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0}"
command -v llvm-symbolizer >/dev/null && export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"

failed=()
for n in "${names[@]}"; do
    work="$out/corpus/$n"
    rm -rf "$work"
    mkdir -p "$work"
    cp fuzz/corpus/"$n"/* "$work"/
    seeds=$(ls "$work" | wc -l)
    log="$out/logs/$n.log"
    rm -f "$out/artifacts/$n-"*   # what is left there is this run's
    rc=0
    "$out/fuzz/fuzz_$n" -max_total_time="$secs" -max_len="$(max_len "$n")" -rss_limit_mb=2048 \
        -timeout="$(timeout_of "$n")" -print_final_stats=1 -artifact_prefix="$out/artifacts/$n-" "$work" \
        >"$log" 2>&1 || rc=$?
    stat_of() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    runs=$(stat_of number_of_executed_units)
    rate=$(stat_of average_exec_per_sec)
    rss=$(stat_of peak_rss_mb)
    found=$(ls "$work" | wc -l)
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz_%-12s %10s runs in %ss (%s/s), corpus %s -> %s, peak RSS %s MB: ok\n' \
            "$n" "${runs:-?}" "$secs" "${rate:-?}" "$seeds" "$found" "${rss:-?}"
    else
        failed+=("$n")
        printf 'fuzz_%-12s FAILED (exit %s) after %s runs; log %s\n' "$n" "$rc" "${runs:-?}" "$log"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_[a-z]+: |artifact_prefix|Test unit written)' "$log" |
            head -8 | sed 's/^/    /'
    fi
done

if ((${#failed[@]})); then
    echo "fuzz.sh: ${#failed[@]} harness(es) failed: ${failed[*]} (inputs in $out/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: all ${#names[@]} harnesses ran ${secs}s each without a finding"
