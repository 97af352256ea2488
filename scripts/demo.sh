#!/usr/bin/env bash
# The main job: builds stampede, starts the project's own target server on loopback, and runs a
# distributed load test against it with 3 local agents, printing the live progress and the
# summary. Installs what it needs on Debian 12 first. Extra arguments go to `stampede run`
# (e.g. --rate 5000 --duration 30s). Everything it starts is stopped when it ends.
set -euo pipefail
ST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ST_ROOT/scripts/deps.sh"

st_need_apt "${ST_BUILD_PKGS[@]}"
echo "== building stampede ==" >&2
st_build "$ST_ROOT/build"
bin="$ST_ROOT/build/bin"

out=$(mktemp -d /tmp/stampede-demo.XXXXXX)
# The target answers in 1 to 3 ms, and 1 request in 100 with a 503.
"$bin/stampede-target" --listen 127.0.0.1:0 --latency-ms 1-3 --status 200:99,503:1 \
    >"$out/target.out" 2>"$out/target.err" &
target_pid=$!
trap 'kill "$target_pid" 2>/dev/null; wait "$target_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$out/target.out" 2>/dev/null && break
    sleep 0.05
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out/target.out")
[ -n "$port" ] || { echo "stampede-target did not start: $(cat "$out/target.err")" >&2; exit 1; }

# The demo's load shape, each part only where the extra arguments do not set it themselves
# (stampede run refuses a flag given twice).
defaults=()
for pair in "rate 2000" "ramp-up 5s" "duration 15s" "agents 3"; do
    flag=${pair%% *}
    given=
    for arg in "$@"; do
        case $arg in --"$flag" | --"$flag"=*) given=1 ;; esac
    done
    [ -n "$given" ] || defaults+=("--$flag" "${pair#* }")
done
echo "== stampede run: local agents against http://127.0.0.1:$port/ ==" >&2
set +e
"$bin/stampede" run --url "http://127.0.0.1:$port/" "${defaults[@]}" \
    --summary "$out/summary.json" --timeseries "$out/timeseries.jsonl" "$@"
code=$?
set -e
echo >&2
echo "the target counted: $(curl -s "http://127.0.0.1:$port/__target/stats" 2>/dev/null ||
    python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/__target/stats').read().decode())")" >&2
echo "summary: $out/summary.json, time series: $out/timeseries.jsonl" >&2
exit $code
