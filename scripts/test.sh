#!/usr/bin/env bash
# CI's build and test run (.ci/run): every build and every test, ~6 minutes on 2 cores.
#   build/          RelWithDebInfo; its ctest pass (unit, integration, fuzz corpora)
#   build-asan/     -DOTA_SANITIZE=ON (AddressSanitizer + UndefinedBehaviorSanitizer) and
#                   -DOTA_BENCH=OFF (no test of this pass runs a benchmark); its ctest pass
#   build-release/  Release (-O3, -Werror like every build: what most users build); a
#                   build only, its code is the tested code at another optimisation level
#   build-fuzz/     clang + libFuzzer (scripts/fuzz.sh); every target for 10 s, two at once
# Each ctest pass runs its tests in parallel (ctest -j 8): they mostly wait on brokers,
# clients and timers; the CMake files give the long ones a COST (started first) and the
# busy ones PROCESSORS (docs/testing.md). The sanitizer, Release and fuzz trees are
# built in the background at the lowest CPU priority (nice 19) while a ctest pass waits,
# so that they take only the CPU the tests leave idle; their output goes to
# build-asan/ci-build.log and build-release/ci-build.log, shown when a build fails. Installs missing Debian packages first.
# `--no-asan` skips the sanitizer pass; OTA_FUZZ_SECONDS=0 skips the fuzzing;
# OTA_CTEST_JOBS sets ctest -j (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh

asan=1
[ "${1:-}" = "--no-asan" ] && asan=0
fuzz_secs=${OTA_FUZZ_SECONDS:-10}
ctest_jobs=${OTA_CTEST_JOBS:-8}
t0=$SECONDS
phases=()

phase_done() {  # name start-second
    phases+=("$(printf '%-28s %4d s' "$1" $((SECONDS - $2)))")
}

build_tree() {  # dir cmake-options...: configure quietly, build with every core
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j "$(nproc)"
}

# Background builds at nice 19, output in LOG; bg_wait NAME waits for one. A run that
# stops early (a failed test) stops the builds still going too.
declare -A bg_pid=() bg_log=()
kill_tree() {
    local p
    for p in $(pgrep -P "$1"); do kill_tree "$p"; done
    kill "$1" 2>/dev/null || true
}
trap 'for p in "${bg_pid[@]}"; do kill_tree "$p"; done' EXIT
bg_start() {  # name log command...
    local name=$1 log=$2
    shift 2
    mkdir -p "$(dirname "$log")"
    (renice -n 19 -p "$BASHPID" >/dev/null; "$@") >"$log" 2>&1 &
    bg_pid[$name]=$!
    bg_log[$name]=$log
}
bg_wait() {  # name
    local name=$1 s=$SECONDS
    if ! wait "${bg_pid[$name]}"; then
        echo "=== background build $name FAILED (${bg_log[$name]}):" >&2
        tail -60 "${bg_log[$name]}" >&2
        exit 1
    fi
    unset "bg_pid[$name]"
    phase_done "wait for $name build" "$s"
}

# A failed test pass or fuzz run is noted and the run goes on, so that one run shows every
# failure; the exit status is 1 if anything failed.
failed=()
run_ctest() {  # name dir
    local s=$SECONDS
    echo "=== $1 tests ($2, ctest -j $ctest_jobs)"
    (cd "$2" && ctest --output-on-failure -j "$ctest_jobs" --timeout 600) ||
        failed+=("$1 tests")
    phase_done "$1 tests" "$s"
}

s=$SECONDS
echo "=== normal build (build)"
build_tree build -DCMAKE_BUILD_TYPE=RelWithDebInfo
phase_done "normal build" "$s"

if [ $asan -eq 1 ]; then
    bg_start asan build-asan/ci-build.log build_tree build-asan \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOTA_SANITIZE=ON -DOTA_BENCH=OFF
fi
run_ctest normal build

# The Release and fuzz trees build while the sanitizer pass runs (or now, without it).
later_builds() {
    build_tree build-release -DCMAKE_BUILD_TYPE=Release
    if [ "$fuzz_secs" -gt 0 ]; then
        bash scripts/fuzz.sh --build-only
    fi
}
if [ $asan -eq 1 ]; then
    bg_wait asan
    bg_start release-fuzz build-release/ci-build.log later_builds
    run_ctest asan build-asan
else
    bg_start release-fuzz build-release/ci-build.log later_builds
fi
echo "=== release build (build-release) and fuzz build (build-fuzz)"
bg_wait release-fuzz

if [ "$fuzz_secs" -gt 0 ]; then
    s=$SECONDS
    echo "=== fuzzing, ${fuzz_secs}s per target, two at once (build-fuzz)"
    OTA_FUZZ_JOBS=2 bash scripts/fuzz.sh -t "$fuzz_secs" || failed+=("fuzzing")
    phase_done "fuzzing" "$s"
fi

# CPU-seconds of everything this script ran (bash's `times`, children): on a quiet machine
# the run cannot take less than that over the number of cores.
times_file=$(mktemp)
times >"$times_file" # (not in $(...): a subshell's `times` counts only its own children)
cpu=$(awk 'NR == 2 { split($1, u, "m"); split($2, s, "m");
                     printf "%.0f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$times_file")
rm -f "$times_file"
echo "=== done in $((SECONDS - t0)) s, $cpu CPU-s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '  %s\n' "${phases[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    printf '=== FAILED: %s\n' "${failed[@]}"
    exit 1
fi
