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
echo "== build (RelWithDebInfo) ==" >&2
st_build "$ST_ROOT/build" -DST_WERROR=ON
echo "== tests ==" >&2
(cd "$ST_ROOT/build" && ctest --output-on-failure -j"$jobs")

echo "== build (ASan + UBSan) ==" >&2
st_build "$ST_ROOT/build-asan" -DST_WERROR=ON -DST_SANITIZE=ON
echo "== tests under ASan + UBSan ==" >&2
(cd "$ST_ROOT/build-asan" && \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs")
echo "== fuzzing (every decoder of outside input, 15 s each) ==" >&2
bash "$ST_ROOT/scripts/fuzz.sh" --seconds "${ST_FUZZ_SECONDS:-15}"
echo "stampede: all tests passed" >&2
