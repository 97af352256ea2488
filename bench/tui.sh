#!/usr/bin/env bash
# tui.sh - what the terminal UI costs the coordinator, and that ingest is the same with it.
#
# For each agent count, runs a real coordinator (stampede run --launcher external) twice: once
# headless (stdout to a file) and once with --tui inside a tmux window of 120x40 (a real
# terminal, redrawn up to 10 times a second), with stampede-agent-sim sending the agents'
# per-second records. Samples the coordinator's CPU time (utime + stime of /proc/PID/stat) over
# the steady window [t0 + 3 s, t0 + D - 3 s], and checks each run's summary against what the
# simulator sent (every agent registered, none lost, completed, the same requests and latency).
# Usage: bench/tui.sh --help.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/tui.sh [options]

  --agents "N ..."   agent counts to measure (default "100 1000")
  --reps R           repetitions per count and mode; medians are reported (default 3)
  --duration S       run length in seconds, at least 10 (default 15)
EOF
    bench_usage_common "logs and summaries"
}

here=$(cd "$(dirname "$0")" && pwd)
me=tui.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
counts="100 1000"
reps=3
duration=15
bench_parse_opts --agents=counts --reps=reps --duration=duration -- "$@"
bench_need_whole --reps "$reps"
bench_need_whole --duration "$duration" 10
coord_bin="$build/bin/stampede"
sim_bin="$build/bin/stampede-agent-sim"
bench_need_bins "$coord_bin" "$sim_bin"
bench_need_jq "for the summary checks"
command -v tmux >/dev/null || { echo "tui.sh: tmux is needed (scripts/deps.sh installs it)" >&2; exit 2; }
bench_out_dir tui
sock="st-bench-tui-$$"
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    tmux -L "$sock" kill-server 2>/dev/null || true
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)


echo "tui: $(nproc) CPUs, $duration s runs, steady window [t0+3 s, t0+$((duration - 3)) s], logs in $out"
results="$out/results.txt"
: >"$results"
bad=0

# run_one N MODE REP: one run; appends "N MODE cpu% check" to results.
run_one() {
    local n=$1 mode=$2 rep=$3 dir="$out/n$1-$2-r$3"
    mkdir -p "$dir"
    local port token rate cpid=""
    port=$(bench_free_port)
    token="tui-$RANDOM$RANDOM"
    rate=$(awk -v n="$n" 'BEGIN { printf "%g", n / 10 }')
    local args=(run --launcher external --agents "$n" --listen "tcp://127.0.0.1:$port" --token "$token"
        --url http://127.0.0.1:9/ --rate "$rate" --duration "$duration" --register-timeout 120s
        --summary "$dir/summary.json")
    if [ "$mode" = tui ]; then
        tmux -L "$sock" kill-server 2>/dev/null || true
        tmux -L "$sock" new-session -d -x 120 -y 40 -s b \
            "env LANG=C.UTF-8 TERM=xterm-256color sh -c 'echo \$\$ >$dir/pid; exec $coord_bin ${args[*]} --tui'"
        local i
        for i in $(seq 1 100); do
            [ -s "$dir/pid" ] && break
            sleep 0.05
        done
        cpid=$(cat "$dir/pid")
    else
        "$coord_bin" "${args[@]}" --headless >"$dir/coord.out" 2>"$dir/coord.err" &
        cpid=$!
    fi
    pids+=("$cpid")
    local i
    for i in $(seq 1 200); do
        bench_listening "$port" && break
        sleep 0.05
    done
    "$sim_bin" --coordinator "tcp://127.0.0.1:$port" --token "$token" --agents "$n" \
        --expect "$dir/expect.json" >"$dir/sim.out" 2>"$dir/sim.err" &
    local spid=$!
    pids+=("$spid")
    local line="" t0
    for i in $(seq 1 3600); do
        line=$(grep -m1 "^sim: start: t0 in" "$dir/sim.out" 2>/dev/null || true)
        [ -n "$line" ] && break
        sleep 0.05
    done
    [ -n "$line" ] || { echo "tui.sh: run $dir did not start" >&2; bad=$((bad + 1)); return; }
    t0=$(awk -v n="$(bench_now)" -v l="$(echo "$line" | awk '{ print $5 }')" 'BEGIN { printf "%.6f", n + l / 1000 }')
    bench_sleep_until "$(awk -v t="$t0" 'BEGIN { printf "%.6f", t + 3 }')"
    local c0 c1 a0 a1
    c0=$(bench_cpu_ticks "$cpid"); a0=$(bench_now)
    bench_sleep_until "$(awk -v t="$t0" -v d="$duration" 'BEGIN { printf "%.6f", t + d - 3 }')"
    c1=$(bench_cpu_ticks "$cpid"); a1=$(bench_now)
    local k
    for k in $(seq 1 $(((duration + 60) * 5))); do
        kill -0 "$cpid" 2>/dev/null || kill -0 "$spid" 2>/dev/null || break
        sleep 0.2
    done
    wait "$spid" 2>/dev/null || true
    [ "$mode" = tui ] || wait "$cpid" 2>/dev/null || true
    local cpu check
    cpu=$(awk -v a="$c0" -v b="$c1" -v t0="$a0" -v t1="$a1" -v hz="$hz" 'BEGIN { printf "%.2f", 100 * (b - a) / hz / (t1 - t0) }')
    check=$(jq -rn --slurpfile s "$dir/summary.json" --slurpfile e "$dir/expect.json" --argjson n "$n" '
        ($s[0]) as $s | ($e[0]) as $e |
        [ (if ($s.agents | length) == $n then empty else "registered \($s.agents | length)" end),
          (if $s.status == "completed" then empty else "status \($s.status)" end),
          (["requests", "latency_ms", "latency_uncorrected_ms"][] as $f |
             if $s[$f] == $e[$f] then empty else "\($f) differ" end) ] |
        if length == 0 then "ok" else join(", ") end' 2>/dev/null || echo "no summary")
    [ "$check" = ok ] || bad=$((bad + 1))
    echo "$n $mode $cpu $check" >>"$results"
    printf '  %6d agents  %-8s rep %d: coordinator CPU %6s%%  summary %s\n' "$n" "$mode" "$rep" "$cpu" "$check"
}

for n in $counts; do
    for rep in $(seq 1 "$reps"); do
        run_one "$n" headless "$rep"
        run_one "$n" tui "$rep"
    done
done

echo
printf '%8s  %16s  %16s  %10s\n' agents "headless CPU %" "with --tui CPU %" "UI's cost"
for n in $counts; do
    h=$(awk -v n="$n" '$1 == n && $2 == "headless" { print $3 }' "$results" | bench_median)
    t=$(awk -v n="$n" '$1 == n && $2 == "tui" { print $3 }' "$results" | bench_median)
    printf '%8d  %16s  %16s  %10s\n' "$n" "$h" "$t" "$(awk -v h="$h" -v t="$t" 'BEGIN { printf "%+.2f", t - h }')"
done
bench_finish "$bad" "failed their checks"
