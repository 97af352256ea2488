#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each over its seed corpus.
#   scripts/fuzz.sh [--seconds N] [--target NAME]... [--build DIR] [--build-only]
# Each target runs N seconds (default 15), as many at once as there are CPUs (ST_FUZZ_JOBS), on a
# working corpus in DIR/corpus/NAME that starts from
# fuzz/corpus/NAME and keeps what it finds between runs. A crash, leak, hang or failed check
# leaves its input in DIR/findings/NAME/ and makes the exit code 1. Prints one line per target:
# executions, executions per second, corpus size, findings.
set -euo pipefail
ST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ST_ROOT/scripts/deps.sh"

seconds=15
build=$ST_ROOT/build-fuzz
targets=()
build_only=0
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --build) build=$2; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $seconds in '' | *[!0-9]*) echo "fuzz.sh: --seconds takes a whole number" >&2; exit 2 ;; esac

st_need_apt "${ST_BUILD_PKGS[@]}" clang
echo "== build (libFuzzer, clang, ASan + UBSan) ==" >&2
cmake -S "$ST_ROOT" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DST_FUZZ=ON -DST_BUILD_TESTS=OFF -DST_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)" >&2
[ "$build_only" = 1 ] && exit 0

if [ ${#targets[@]} -eq 0 ]; then
    for d in "$ST_ROOT"/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi
# One target's run, its exit code left in DIR/NAME.rc.
run_one() {
    local t=$1 bin=$build/bin/$1 work=$build/corpus/$1 found=$build/findings/$1 rc=0
    mkdir -p "$work" "$found"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$found/" "$work" "$ST_ROOT/fuzz/corpus/$t" >"$build/$t.log" 2>&1 || rc=$?
    echo "$rc" >"$build/$t.rc"
}

for t in "${targets[@]}"; do
    [ -x "$build/bin/$t" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
done
# Each libFuzzer run is one process on one core: as many at once as there are CPUs.
parallel=${ST_FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
    run_one "$t" &
done
wait

failed=0
for t in "${targets[@]}"; do
    work=$build/corpus/$t
    found=$build/findings/$t
    log=$build/$t.log
    rc=$(cat "$build/$t.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    units=$(find "$work" -type f | wc -l)
    n_found=$(find "$found" -type f | wc -l)
    printf 'fuzz %-20s %6ss  %10s execs  %7s/s  corpus %5s  findings %s\n' "$t" "$seconds" \
        "${execs:-?}" "${rate:-?}" "$units" "$n_found"
    if [ "$rc" -ne 0 ] || [ "$n_found" -gt 0 ]; then
        failed=1
        echo "fuzz.sh: $t found a problem (exit $rc); inputs in $found, log $log:" >&2
        grep -E "ERROR|SUMMARY|runtime error" "$log" | head -5 >&2 || true
    fi
done
exit $failed
