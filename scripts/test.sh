#!/usr/bin/env bash
# Builds stampede twice (optimised, and with ASan+UBSan) and runs the whole test suite on both,
# then runs every libFuzzer target briefly over its seed corpus (scripts/fuzz.sh).
# Installs what it needs on Debian 12 first. Exit code: 0 when every test passed.
set -euo pipefail
ST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ST_ROOT/scripts/deps.sh"

st_need_apt "${ST_BUILD_PKGS[@]}" "${ST_TEST_PKGS[@]}"
st_need_npm
export STAMPEDE_NPM_DIR=$ST_NPM_DIR

jobs=$(nproc)
# Runs a step and says how long it took (the suite's wall time is watched: see tests/CMakeLists.txt
# for which integration tests run alone and which beside another).
timed() {
    local name=$1 t0=$SECONDS
    shift
    echo "== $name ==" >&2
    "$@"
    echo "== $name: $((SECONDS - t0)) s ==" >&2
}
asan_ctest() {
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$ST_ROOT/build-asan" --output-on-failure -j"$jobs"
}
timed "build (RelWithDebInfo)" st_build "$ST_ROOT/build" -DST_WERROR=ON
timed "tests" ctest --test-dir "$ST_ROOT/build" --output-on-failure -j"$jobs"
timed "build (ASan + UBSan)" st_build "$ST_ROOT/build-asan" -DST_WERROR=ON -DST_SANITIZE=ON
timed "tests under ASan + UBSan" asan_ctest
timed "fuzzing (every decoder of outside input, ${ST_FUZZ_SECONDS:-15} s each)" \
    bash "$ST_ROOT/scripts/fuzz.sh" --seconds "${ST_FUZZ_SECONDS:-15}"
echo "stampede: all tests passed in $SECONDS s" >&2
