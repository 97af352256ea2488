# shellcheck shell=bash
# lib.sh - what bench/ingest.sh, bench/skew.sh, bench/tui.sh and bench/coord_rss.sh share: their
# option parsing, setup, clocks, CPU sampling, medians and ending. Source it after setting `me`
# (the script's name, for messages). It sets the defaults of the options every script takes:
# `build` (the build directory next to bench/) and `keep` (none).
# shellcheck disable=SC2154 # me, keep and cleanup come from the script that sources this file
# shellcheck disable=SC2034 # target_pid and url are set for the script that sources this file

build="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build"
keep=""

# bench_usage_common WHAT: the usage lines of --build and --keep; WHAT is what --keep keeps.
bench_usage_common() {
    cat <<EOF
  --build DIR        the build directory (default: build next to this script's parent)
  --keep DIR         keep $1 in DIR (default: a temporary directory,
                     removed at the end unless something failed)
EOF
}

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

# bench_parse_opts SPEC... -- ARG...: parses a script's command line. Each SPEC is "--flag=var"
# (the flag takes a value, stored in var) or "--flag=var=VALUE" (a switch: var is set to VALUE).
# Every script also takes --build DIR (var build), --keep DIR (var keep) and -h/--help (calls the
# script's usage and exits 0). An unknown option or a missing value stops the script (exit 2).
bench_parse_opts() {
    local specs=("--build=build" "--keep=keep") s flag rest var
    while [ "$1" != "--" ]; do
        specs+=("$1")
        shift
    done
    shift
    while [ $# -gt 0 ]; do
        case "$1" in -h | --help) usage; exit 0 ;; esac
        var=""
        for s in "${specs[@]}"; do
            flag=${s%%=*}
            [ "$1" = "$flag" ] || continue
            rest=${s#*=}
            var=${rest%%=*}
            if [ "$rest" != "$var" ]; then
                printf -v "$var" '%s' "${rest#*=}"
                shift
            else
                [ $# -ge 2 ] || { echo "$me: $1 needs a value (see --help)" >&2; exit 2; }
                printf -v "$var" '%s' "$2"
                shift 2
            fi
            break
        done
        [ -n "$var" ] || { echo "$me: unknown option $1 (see --help)" >&2; exit 2; }
    done
}

# bench_need_whole FLAG VALUE [MIN]: stops the script (exit 2) unless VALUE is a whole number of at
# least MIN (default 1); FLAG names it in the message.
bench_need_whole() {
    case "$2" in
    '' | *[!0-9]*) echo "$me: $1: '$2' is not a whole number" >&2; exit 2 ;;
    esac
    [ "$2" -ge "${3:-1}" ] || { echo "$me: $1 must be at least ${3:-1}" >&2; exit 2; }
}

# bench_now: seconds since the epoch, with microseconds.
bench_now() { echo "$EPOCHREALTIME"; }

# bench_sleep_until T: sleeps until the bench_now instant T (at once when it has passed).
bench_sleep_until() {
    sleep "$(awk -v t="$1" -v n="$(bench_now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')"
}

# bench_cpu_ticks PID: the process's user + system time, in clock ticks (getconf CLK_TCK).
bench_cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# bench_listening PORT: true when something listens on TCP PORT.
bench_listening() { ss -Hltn "sport = :$1" | grep -q .; }

# bench_free_port: prints a TCP port of 20000-59999 that nothing listens on; exit 1 if none found.
bench_free_port() {
    local p
    for p in $(shuf -i 20000-59999 -n 50); do
        bench_listening "$p" || { echo "$p"; return; }
    done
    echo "$me: no free port found" >&2
    exit 1
}

# bench_median: the median of the numbers on stdin, one a line (the mean of the middle two for an
# even count); "n/a" when there are none.
bench_median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
