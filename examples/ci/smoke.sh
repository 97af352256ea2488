#!/bin/sh
# The CI smoke test of examples/ci/github-actions.yml: starts stampede-target on 127.0.0.1, runs
# smoke-plan.json against it with the plan's thresholds, writes the HTML report, the JUnit file and
# the summary into $SMOKE_OUT, stops the target, and exits with stampede run's exit code (0 when
# every threshold passed, 11 when one failed; README "Exit codes").
#
#   STAMPEDE_BIN_DIR   where stampede and stampede-target are (default: found on PATH)
#   SMOKE_OUT          the folder for the results (default ./stampede-results)
#   SMOKE_THRESHOLD    one more --threshold to check (optional)
#   TARGET_ARGS        stampede-target's flags (default: a 2-5 ms latency, every answer 200)
#
# With GITHUB_STEP_SUMMARY set (GitHub Actions sets it), stampede run appends its Markdown summary.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${STAMPEDE_BIN_DIR:-}
stampede=${bin:+$bin/}stampede
target=${bin:+$bin/}stampede-target
out=${SMOKE_OUT:-./stampede-results}
mkdir -p "$out"

port_file=$(mktemp)
# shellcheck disable=SC2086 # TARGET_ARGS is a list of flags
"$target" --listen 127.0.0.1:0 --port-file "$port_file" ${TARGET_ARGS:---latency-ms 2-5} &
target_pid=$!
stop_target() {
    kill "$target_pid" 2>/dev/null && wait "$target_pid" 2>/dev/null || true
    rm -f "$port_file"
    echo "smoke: target stopped"
}
trap stop_target EXIT

# The port file is written once the target accepts connections.
i=0
while [ ! -s "$port_file" ]; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$target_pid" 2>/dev/null; then
        echo "smoke: stampede-target did not start" >&2
        exit 1
    fi
    sleep 0.1
done
url="http://127.0.0.1:$(cat "$port_file")/"
echo "smoke: target at $url"

set -- "$here/smoke-plan.json" --url "$url" --headless \
    --summary "$out/summary.json" --timeseries "$out/timeseries.jsonl" \
    --junit "$out/junit.xml" --report "$out/report.html"
if [ -n "${SMOKE_THRESHOLD:-}" ]; then
    set -- "$@" --threshold "$SMOKE_THRESHOLD"
fi
code=0
"$stampede" run "$@" || code=$?
echo "smoke: stampede run exited $code; results in $out"
exit "$code"
