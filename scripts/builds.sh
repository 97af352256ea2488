#!/usr/bin/env bash
# Builds stampede the ways a user or a packager would: Release (-O3), Debug, and with clang, each
# with warnings as errors and without the tests. Exit code: 0 when every build succeeded.
set -euo pipefail
ST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ST_ROOT/scripts/deps.sh"

st_need_apt "${ST_BUILD_PKGS[@]}" clang

out=${ST_BUILDS_DIR:-$ST_ROOT/build-matrix}
build_one() {
    local name=$1
    shift
    echo "== build ($name) ==" >&2
    cmake -S "$ST_ROOT" -B "$out/$name" -DST_WERROR=ON -DST_BUILD_TESTS=OFF "$@" >/dev/null
    cmake --build "$out/$name" -j"$(nproc)" >&2
}
build_one release -DCMAKE_BUILD_TYPE=Release
build_one debug -DCMAKE_BUILD_TYPE=Debug
build_one clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang
echo "stampede: Release, Debug and clang builds succeeded" >&2
