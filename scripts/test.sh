#!/usr/bin/env bash
# Builds everything and runs the whole test suite with ctest, twice: a normal build
# (build/) and an AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/); then
# builds the Release configuration (build-release/, -O3 with -Werror: what most users
# build; a build only, its code is the tested code at another optimisation level); then
# runs every libFuzzer target for a bounded time (scripts/fuzz.sh -t 10, two at once, in
# build-fuzz/; needs clang). Installs missing Debian packages first. `--no-asan` skips
# the sanitizer pass; OTA_FUZZ_SECONDS=0 skips the fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh

variants=(normal asan)
[ "${1:-}" = "--no-asan" ] && variants=(normal)

run_variant() {
    local name=$1 dir=build flags=()
    if [ "$name" = asan ]; then
        dir=build-asan
        flags=(-DOTA_SANITIZE=ON)
    fi
    echo "=== $name build ($dir)"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${flags[@]}" >/dev/null
    cmake --build "$dir" -j "$(nproc)"
    echo "=== $name tests"
    (cd "$dir" && ctest --output-on-failure -j 2 --timeout 600)
}

for v in "${variants[@]}"; do
    run_variant "$v"
done

echo "=== release build (build-release)"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j "$(nproc)"

fuzz_secs=${OTA_FUZZ_SECONDS:-10}
if [ "$fuzz_secs" -gt 0 ]; then
    echo "=== fuzzing, ${fuzz_secs}s per target (build-fuzz)"
    OTA_FUZZ_JOBS=2 bash scripts/fuzz.sh -t "$fuzz_secs"
fi
