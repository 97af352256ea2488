# shellcheck shell=bash
# lib.sh - the setup and the ending that bench/ingest.sh, bench/skew.sh and bench/coord_rss.sh
# share. Source it after setting `me` (the script's name, for messages) and `keep` (--keep's
# directory, or "").
# shellcheck disable=SC2154 # me, keep and cleanup come from the script that sources this file
# shellcheck disable=SC2034 # target_pid and url are set for the script that sources this file

# bench_need_bins FILE...: stops the script (exit 2) unless every FILE is an executable.
bench_need_bins() {
    local b
    for b in "$@"; do
        [ -x "$b" ] || { echo "$me: $b not found: build first (cmake --build build)" >&2; exit 2; }
    done
}

# bench_need_jq WHAT: stops the script (exit 2) unless jq is on PATH; jq is needed WHAT.
bench_need_jq() {
    command -v jq >/dev/null || { echo "$me: jq is needed $1" >&2; exit 2; }
}

# bench_out_dir NAME: sets `out` to --keep's directory (created), else to a new temporary one.
bench_out_dir() {
    if [ -n "$keep" ]; then
        out="$keep"
        mkdir -p "$out"
    else
        out=$(mktemp -d "/tmp/stampede-$1.XXXXXX")
    fi
}

# bench_start_target BIN: starts stampede-target BIN on a free 127.0.0.1 port, its output in
# `out`; sets `target_pid` (the caller's cleanup stops it) and `url`. Stops the script (exit 1)
# when it does not start.
bench_start_target() {
    "$1" --listen 127.0.0.1:0 >"$out/target.out" 2>"$out/target.err" &
    target_pid=$!
    local addr="" _
    for _ in $(seq 1 100); do
        addr=$(sed -n 's/^listening on //p' "$out/target.out" | head -1)
        [ -n "$addr" ] && break
        sleep 0.05
    done
    if [ -z "$addr" ]; then
        echo "$me: stampede-target did not start (see $out/target.err)" >&2
        exit 1
    fi
    url="http://$addr/"
}

# bench_finish FAILED WHAT [KEEP_OUT]: with FAILED runs, says they WHAT, keeps `out`, runs the
# script's cleanup and exits 1; otherwise removes a temporary `out` unless KEEP_OUT is 1.
bench_finish() {
    if [ "$1" -gt 0 ]; then
        echo "$me: $1 run(s) $2; logs kept in $out" >&2
        trap - EXIT
        cleanup
        exit 1
    fi
    if [ -z "$keep" ] && [ "${3:-0}" != 1 ]; then
        rm -rf "$out"
    fi
}
