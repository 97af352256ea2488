#!/usr/bin/env bash
# skew.sh - how closely 8 local agents start together.
#
# Starts stampede-target on loopback, then runs `stampede run --agents 8 --url TARGET --rate 800
# --duration 3 --summary FILE` several times with the real agents (local launcher), and reports
# the median and the maximum of start_skew_ms from the summaries: the spread of the agents'
# realised starts (each agent's first actual send minus that request's offset in the schedule),
# in coordinator time, through each agent's measured clock offset. Usage: bench/skew.sh --help.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/skew.sh [options]

  --runs N           runs (default 5)
  --agents N         local agents per run (default 8)
  --rate RPS         total rate (default 800)
  --duration S       run length (default 3)
EOF
    bench_usage_common "the summaries and logs"
}

here=$(cd "$(dirname "$0")" && pwd)
me=skew.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
runs=5
agents=8
rate=800
duration=3
bench_parse_opts --runs=runs --agents=agents --rate=rate --duration=duration -- "$@"
bench_need_whole --runs "$runs"
bench_need_whole --agents "$agents"
bench_need_bins "$build/bin/stampede" "$build/bin/stampede-agent" "$build/bin/stampede-target"
bench_need_jq "to read the summaries"

bench_out_dir skew
target_pid=""
cleanup() {
    if [ -n "$target_pid" ]; then
        kill "$target_pid" 2>/dev/null || true
        wait "$target_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

bench_start_target "$build/bin/stampede-target"

echo "skew: $runs runs of $agents local agents at $rate rps for $duration s against $url," \
    "$(nproc) CPUs"
failed=0
values=()
for i in $(seq 1 "$runs"); do
    sum="$out/summary-$i.json"
    rc=0
    "$build/bin/stampede" run --agents "$agents" --url "$url" --rate "$rate" \
        --duration "$duration" --summary "$sum" >"$out/run-$i.out" 2>"$out/run-$i.err" || rc=$?
    skew=$(jq -r '.start_skew_ms // "null"' "$sum" 2>/dev/null || echo null)
    n=$(jq -r '.agents | length' "$sum" 2>/dev/null || echo 0)
    lost=$(jq -r '[.agents[] | select(.lost)] | length' "$sum" 2>/dev/null || echo "?")
    status=$(jq -r '.status' "$sum" 2>/dev/null || echo "?")
    shown=$skew
    [ "$skew" != null ] && shown=$(printf %.3f "$skew")
    printf "  run %d  start skew %8s ms  agents %s (%s lost)  status %s  exit %d\n" \
        "$i" "$shown" "$n" "$lost" "$status" "$rc"
    if [ "$rc" != 0 ] || [ "$skew" = null ] || [ "$n" != "$agents" ] || [ "$lost" != 0 ]; then
        failed=$((failed + 1))
    fi
    [ "$skew" != null ] && values+=("$skew")
done

if [ ${#values[@]} -gt 0 ]; then
    printf '%s\n' "${values[@]}" | sort -g | awk '
        { v[NR] = $1 }
        END {
            med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "start skew over %d runs: median %.3f ms, max %.3f ms, min %.3f ms\n", NR, med, v[NR], v[1]
        }'
fi
bench_finish "$failed" "failed or lost agents"
