#!/usr/bin/env bash
# coord_rss.sh - the coordinator's memory over a long run.
#
# Starts stampede-target on loopback, then runs `stampede run --agents 10 --url TARGET --rate 1000
# --duration 600 --summary FILE --timeseries FILE` with real local agents, samples the
# coordinator's VmRSS (/proc/PID/status) every few seconds, and prints the RSS at the start, at
# 1 min and at the end, and the slope: KB per second by least squares over the samples after the
# first minute (the start-up's allocations are over by then). Usage: bench/coord_rss.sh --help.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/coord_rss.sh [options]

  --duration S       run length in seconds (default 600)
  --agents N         local agents (default 10)
  --rate RPS         total rate (default 1000)
  --every S          seconds between RSS samples (default 2)
EOF
    bench_usage_common "the samples, outputs and logs"
    cat <<'EOF'

Prints the RSS at start, at 60 s and at the end, and the slope in KB/s (least squares over the
samples after 60 s; over all samples when the run is shorter). Exit 0 when the run completed
(exit 0) with its summary, 1 when it failed, 2 for bad flags.
EOF
}

me=coord_rss.sh
duration=600
agents=10
rate=1000
every=2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_parse_opts --duration=duration --agents=agents --rate=rate --every=every -- "$@"
for v in duration agents rate every; do
    bench_need_whole "--$v" "${!v}"
done
bench_need_bins "$build/bin/stampede" "$build/bin/stampede-agent" "$build/bin/stampede-target"
bench_need_jq "to read the summary"

bench_out_dir coord-rss
target_pid=""
run_pid=""
cleanup() {
    local p
    # The coordinator first: it stops its own agents on the way out.
    for p in "$run_pid" "$target_pid"; do
        [ -n "$p" ] || continue
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

bench_start_target "$build/bin/stampede-target"

echo "coord_rss: $agents local agents at $rate rps for $duration s against $url, RSS every $every s," \
    "$(nproc) CPUs"
samples="$out/rss.tsv"
: >"$samples"
"$build/bin/stampede" run --headless --agents "$agents" --url "$url" --rate "$rate" \
    --duration "$duration" --summary "$out/summary.json" --timeseries "$out/seconds.jsonl" \
    >"$out/run.out" 2>"$out/run.err" &
run_pid=$!
t0=$EPOCHREALTIME
# Sampled from the coordinator's own start, so the registration and the start instant are in it.
while kill -0 "$run_pid" 2>/dev/null; do
    # VmRSS, and its anonymous part (heap, stacks): the rest is the shared libraries' pages.
    kb=$(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { if (r) print r "\t" a }' \
        "/proc/$run_pid/status" 2>/dev/null || true)
    [ -n "$kb" ] && awk -v a="$t0" -v b="$EPOCHREALTIME" -v kb="$kb" \
        'BEGIN { printf "%.3f\t%s\n", b - a, kb }' >>"$samples"
    sleep "$every"
done
rc=0
wait "$run_pid" || rc=$?
run_pid=""

failed=0
status=$(jq -r '.status' "$out/summary.json" 2>/dev/null || echo "?")
total=$(jq -r '.requests.total' "$out/summary.json" 2>/dev/null || echo "?")
rows=$(wc -l <"$out/seconds.jsonl" 2>/dev/null || echo "?")
echo "run: exit $rc, status $status, $total requests, $rows time-series rows"
if [ "$rc" != 0 ] || [ "$status" != completed ]; then
    failed=1
    tail -5 "$out/run.err" >&2 || true
fi
if [ ! -s "$samples" ]; then
    echo "$me: no RSS sample was taken" >&2
    failed=1
else
    awk -F'\t' '
        { t[NR] = $1; v[NR] = $2; anon[NR] = $3 }
        END {
            at60 = 1
            for (i = 1; i <= NR; i++) if (t[i] <= 60) at60 = i
            from = (t[NR] > 60) ? at60 : 1
            n = 0; st = 0; sv = 0; stt = 0; stv = 0
            for (i = from; i <= NR; i++) {
                n++; st += t[i]; sv += v[i]; stt += t[i] * t[i]; stv += t[i] * v[i]
            }
            den = n * stt - st * st
            slope = (n > 1 && den != 0) ? (n * stv - st * sv) / den : 0
            printf "RSS start  %8d KB  (t = %6.1f s)\n", v[1], t[1]
            printf "RSS 1 min  %8d KB  (t = %6.1f s)\n", v[at60], t[at60]
            printf "RSS end    %8d KB  (t = %6.1f s; anonymous %d KB, the rest files)\n", v[NR], t[NR], anon[NR]
            printf "RSS max    %8d KB\n", max(v)
            printf "slope      %8.3f KB/s from t = %.1f s (%d samples, least squares)\n", slope, t[from], n
        }
        function max(a,   i, m) { m = a[1]; for (i in a) if (a[i] > m) m = a[i]; return m }
    ' "$samples"
fi
[ -n "$keep" ] && echo "samples: $samples"
bench_finish "$failed" "failed"
