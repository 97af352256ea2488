#!/usr/bin/env bash
# Long fuzzing runs: every libFuzzer target for --seconds (default 600), --parallel at a time
# (default 2, the machine's cores), through scripts/fuzz.sh. Prints its line per target and
# exits 1 if any target found a problem.
#   bench/fuzz.sh [--seconds N] [--parallel P]
set -euo pipefail
ST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
seconds=600
parallel=2
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    -h | --help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "bench/fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
# Build once; the runs below find it built.
bash "$ST_ROOT/scripts/fuzz.sh" --build-only
out=$(mktemp -d)
names=()
for d in "$ST_ROOT"/fuzz/corpus/*/; do names+=("$(basename "$d")"); done
status=0
running=0
for t in "${names[@]}"; do
    bash "$ST_ROOT/scripts/fuzz.sh" --seconds "$seconds" --target "$t" >"$out/$t" 2>"$out/$t.err" &
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
for t in "${names[@]}"; do
    grep '^fuzz ' "$out/$t" || { echo "fuzz $t: no result" >&2; cat "$out/$t.err" >&2; status=1; }
done
rm -rf "$out"
exit $status
