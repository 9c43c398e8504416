#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz/ for a bounded time and prints one line per
# target: executions, seconds, executions per second, corpus units, crashes.
#
# Builds with clang and -DOTA_FUZZ=ON (libFuzzer + ASan + UBSan) in build-fuzz/ (or
# $OTA_FUZZ_BUILD). Each target starts from its seed corpus tests/fuzz/corpus/<target>/
# (read only) plus a working corpus in the build directory, so longer runs resume where
# the last one stopped. A crash leaves its input as build-fuzz/fuzz-artifacts/<target>/
# crash-*, and the script fails: copy the input into tests/fuzz/corpus/<target>/ as
# regress-<what> (the normal build's ctest replays it) and add a unit test.
#
# Usage: scripts/fuzz.sh [-t SECONDS_PER_TARGET] [TARGET...]   (default 30 s, all targets)
#        scripts/fuzz.sh --build-only   (configure and build the targets, run nothing)
#   CI runs `scripts/fuzz.sh -t 10` with OTA_FUZZ_JOBS=2 (scripts/test.sh, which builds
#   first with --build-only while its tests run); longer runs: -t 3600, or OTA_FUZZ_JOBS=2
#   to run two targets at once.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
secs=30
build_only=0
if [ "${1:-}" = "--build-only" ]; then
    build_only=1
    shift
elif [ "${1:-}" = "-t" ]; then
    secs=$2
    shift 2
fi
build=${OTA_FUZZ_BUILD:-$repo/build-fuzz}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for d in tests/fuzz/corpus/*/; do
        targets+=("$(basename "$d")")
    done
fi

CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOTA_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target ota_fuzz_targets >/dev/null
if [ "$build_only" -eq 1 ]; then
    exit 0
fi

run_one() {
    local t=$1 work="$build/fuzz-work/$t" art="$build/fuzz-artifacts/$t" log
    mkdir -p "$work" "$art"
    log="$build/fuzz-artifacts/$t.log"
    local rc=0
    "$build/tests/fuzz/$t" -max_total_time="$secs" -print_final_stats=1 -max_len=16384 \
        -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$art/" \
        "$work" "$repo/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    local execs units
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    units=$(find "$work" -type f | wc -l)
    local crashes
    crashes=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | wc -l)
    printf '%-22s %12s %6s %10s %8s %8s\n' "$t" "${execs:-?}" "$secs" \
        "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "$units" "$crashes"
    if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
        echo "  $t FAILED (exit $rc): see $log and $art/" >&2
        tail -30 "$log" >&2
        return 1
    fi
}

printf '%-22s %12s %6s %10s %8s %8s\n' target executions secs exec/s corpus crashes
fail=0
jobs=${OTA_FUZZ_JOBS:-1}
if [ "$jobs" -gt 1 ]; then
    pids=()
    for t in "${targets[@]}"; do
        run_one "$t" & pids+=($!)
        if [ ${#pids[@]} -ge "$jobs" ]; then
            wait "${pids[0]}" || fail=1
            pids=("${pids[@]:1}")
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
else
    for t in "${targets[@]}"; do run_one "$t" || fail=1; done
fi
exit $fail
