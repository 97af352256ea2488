#!/usr/bin/env bash
# ingest.sh - what the coordinator costs while it ingests per-second records from many agents.
#
# For each agent count, starts a real coordinator (stampede run --launcher external) on loopback
# and stampede-agent-sim against it, samples the coordinator's CPU time (utime + stime from
# /proc/PID/stat) and RSS over a steady window of the run (from 3 s after t0 to 3 s before the
# end), and checks the run's summary: every agent registered, none lost, and the merged totals
# equal to what the simulator sent (requests, errors, bytes, both latency summaries). Repeats and
# reports medians. Usage: bench/ingest.sh --help.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/ingest.sh [options]

  --agents "N ..."   agent counts to measure (default "100 1000 10000")
  --reps R           repetitions per count; medians are reported (default 3)
  --duration S       run length in seconds, at least 10 (default 20)
  --sockets K        connections the simulated agents share (default: one per 500 agents;
                     "all" gives each agent its own, as real agents have)
  --agent-rps R      requests per second each simulated record stands for (default 400,
                     about 350 non-zero buckets per histogram; 1000 gives about 770)
  --names N          a plan of N request names (default 1): every record then carries a
                     per-name part for each, the cost of results per request name
  --perf             also record a CPU profile of the coordinator (perf record -g) during the
                     steady window of the first repetition of each count; the CPU figure of
                     that repetition is left out of the medians, since perf itself costs
EOF
    bench_usage_common "logs, summaries and profiles"
}

here=$(cd "$(dirname "$0")" && pwd)
me=ingest.sh
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
counts="100 1000 10000"
reps=3
duration=20
sockets=""
agent_rps=400
names=1
perf=0
bench_parse_opts --agents=counts --reps=reps --duration=duration --sockets=sockets \
    --agent-rps=agent_rps --names=names --perf=perf=1 -- "$@"
bench_need_whole --reps "$reps"
bench_need_whole --agent-rps "$agent_rps"
bench_need_whole --names "$names"
bench_need_whole --duration "$duration" 10
coord_bin="$build/bin/stampede"
sim_bin="$build/bin/stampede-agent-sim"
bench_need_bins "$coord_bin" "$sim_bin"
bench_need_jq "for the summary checks"
if [ "$perf" = 1 ] && ! command -v perf >/dev/null; then
    echo "ingest.sh: --perf needs perf (Debian: linux-perf)" >&2
    exit 2
fi

bench_out_dir ingest
clk_tck=$(getconf CLK_TCK)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

# Every connection is a descriptor in both processes.
max_count=0
for n in $counts; do
    [ "$n" -gt "$max_count" ] && max_count=$n
done
hard=$(ulimit -H -n)
if [ "$hard" != unlimited ]; then
    ulimit -S -n "$hard"
fi
soft=$(ulimit -S -n)
need=$((max_count + 256))
if [ "$sockets" != all ]; then
    need=$(((max_count + 499) / 500 + 256))
    [ -n "$sockets" ] && need=$((sockets + 256))
fi
if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
    echo "ingest.sh: the open-file limit is $soft (hard limit $hard); $max_count agents with" \
        "these sockets need about $need: raise the hard limit (ulimit -Hn, limits.conf)" >&2
    exit 2
fi

# Busy and total jiffies of the whole machine (all CPUs), from /proc/stat.
machine_ticks() {
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
# Waits up to $3 seconds for a line matching $2 in file $1; prints it.
wait_line() {
    local until=$((SECONDS + $3))
    while [ $SECONDS -lt $until ]; do
        if grep -m1 -E "$2" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

echo "ingest: $(nproc) CPUs, $duration s runs, window [t0+3 s, t0+$((duration - 3)) s]," \
    "records of about $agent_rps rps, logs in $out"
results="$out/results.txt"
: >"$results"
failed_checks=0

run_one() {
    local n=$1 rep=$2 profile=$3
    local dir="$out/n$n-r$rep"
    mkdir -p "$dir"
    local port token rate k cpid attempt
    token="ingest-$RANDOM$RANDOM"
    rate=$(awk -v n="$n" 'BEGIN { r = n / 10; printf "%g", r < 1 ? 1 : r }')
    if [ "$sockets" = all ]; then k=$n; elif [ -n "$sockets" ]; then k=$sockets; else k=$(((n + 499) / 500)); fi

    # A plan of `names` request names (each record then carries a per-name part for each), or
    # one URL.
    local what=(--url http://127.0.0.1:9/)
    if [ "$names" -gt 1 ]; then
        awk -v n="$names" 'BEGIN { printf "{\"requests\": ["; for (i = 0; i < n; i++)
            printf "%s{\"name\": \"r%d\", \"url\": \"http://127.0.0.1:9/r%d\"}", i ? ", " : "", i, i;
            print "]}" }' >"$dir/plan.json"
        what=("$dir/plan.json")
    fi
    # Another program may take the port between the check and the listen: try a few.
    for attempt in 1 2 3; do
        port=$(bench_free_port)
        "$coord_bin" run "${what[@]}" --launcher external --agents "$n" \
            --listen "tcp://127.0.0.1:$port" --token "$token" --rate "$rate" --duration "$duration" \
            --register-timeout 120s --summary "$dir/summary.json" \
            >"$dir/coord.out" 2>"$dir/coord.err" &
        cpid=$!
        pids+=("$cpid")
        if wait_line "$dir/coord.err" "waiting for" 10 >/dev/null; then
            break
        fi
        kill "$cpid" 2>/dev/null || true
        wait "$cpid" 2>/dev/null || true
        if [ "$attempt" = 3 ]; then
            echo "ingest.sh: the coordinator did not start (see $dir/coord.err)" >&2
            return 1
        fi
    done
    "$sim_bin" --coordinator "tcp://127.0.0.1:$port" --token "$token" --agents "$n" \
        --sockets "$k" --agent-rps "$agent_rps" --names "$names" --expect "$dir/expect.json" \
        >"$dir/sim.out" 2>"$dir/sim.err" &
    local spid=$!
    pids+=("$spid")

    local line lead t0 w0 w1
    if ! line=$(wait_line "$dir/sim.out" "^sim: start: t0 in" 180); then
        echo "ingest.sh: the run did not start within 180 s (see $dir)" >&2
        kill "$cpid" "$spid" 2>/dev/null || true
        return 1
    fi
    lead=$(echo "$line" | awk '{ print $5 }')
    t0=$(awk -v n="$(bench_now)" -v l="$lead" 'BEGIN { printf "%.6f", n + l / 1000 }')
    w0=$(awk -v t="$t0" 'BEGIN { printf "%.6f", t + 3 }')
    w1=$(awk -v t="$t0" -v d="$duration" 'BEGIN { printf "%.6f", t + d - 3 }')

    bench_sleep_until "$w0"
    local c0 s0 a0 c1 s1 a1 rss
    c0=$(bench_cpu_ticks "$cpid"); s0=$(bench_cpu_ticks "$spid"); a0=$(bench_now)
    local m0 m1
    m0=$(machine_ticks)
    local perf_pid=""
    if [ "$profile" = 1 ]; then
        local span
        span=$(awk -v a="$w1" -v b="$(bench_now)" 'BEGIN { printf "%.1f", a - b - 0.2 }')
        perf record --call-graph dwarf,16384 -F 499 -p "$cpid" -o "$dir/perf.data" -- sleep "$span" \
            >"$dir/perf.log" 2>&1 &
        perf_pid=$!
    fi
    bench_sleep_until "$w1"
    c1=$(bench_cpu_ticks "$cpid" 2>/dev/null || true); s1=$(bench_cpu_ticks "$spid" 2>/dev/null || true)
    a1=$(bench_now)
    m1=$(machine_ticks)
    rss=$(rss_kb "$cpid" 2>/dev/null || true)
    [ -n "$perf_pid" ] && wait "$perf_pid" || true

    local until=$((SECONDS + duration + 60)) rc_c=0 rc_s=0
    while kill -0 "$cpid" 2>/dev/null || kill -0 "$spid" 2>/dev/null; do
        if [ $SECONDS -ge $until ]; then
            echo "ingest.sh: the run did not end in time; stopping it (see $dir)" >&2
            kill "$cpid" "$spid" 2>/dev/null || true
            sleep 5
            kill -9 "$cpid" "$spid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$cpid" || rc_c=$?
    wait "$spid" || rc_s=$?

    local cpu=n/a sim_cpu=n/a recs ups busy
    # How busy the whole machine was (every process, all CPUs): other load makes figures noisy.
    busy=$(echo "$m0 $m1" | awk '{ printf "%.0f", 100 * ($3 - $1) / ($4 - $2) }')
    if [ -n "$c1" ] && [ -n "$s1" ] && [ -n "$rss" ]; then
        cpu=$(awk -v a="$c0" -v b="$c1" -v t0="$a0" -v t1="$a1" -v hz="$clk_tck" \
            'BEGIN { printf "%.2f", 100 * (b - a) / hz / (t1 - t0) }')
        sim_cpu=$(awk -v a="$s0" -v b="$s1" -v t0="$a0" -v t1="$a1" -v hz="$clk_tck" \
            'BEGIN { printf "%.1f", 100 * (b - a) / hz / (t1 - t0) }')
    else
        rss=0
    fi
    # Records and updates acknowledged between the simulator's lines for t+3 s and t+(D-3) s.
    read -r recs ups < <(awk -v lo=3 -v hi=$((duration - 3)) '
        /^sim: t\+[0-9]+s acked/ {
            k = substr($2, 3) + 0
            if (k == lo) { r0 = $4; u0 = $7 }
            if (k == hi) { r1 = $4; u1 = $7 }
        }
        END { if (r1 == "" || r0 == "") print "n/a n/a"; else printf "%.0f %.0f\n", (r1 - r0) / (hi - lo), (u1 - u0) / (hi - lo) }' "$dir/sim.out")

    local check
    check=$(jq -rn --slurpfile s "$dir/summary.json" --slurpfile e "$dir/expect.json" --argjson n "$n" '
        ($s[0]) as $s | ($e[0]) as $e |
        [ (if ($s.agents | length) == $n then empty else "registered \($s.agents | length) of \($n)" end),
          (([$s.agents[] | select(.lost)] | length) as $l | if $l == 0 then empty else "\($l) lost" end),
          (if $s.status == "completed" then empty else "status \($s.status)" end),
          (if $e.records_acked == $e.records then empty else "acked \($e.records_acked) of \($e.records) records" end),
          (["requests", "errors", "bytes", "latency_ms", "latency_uncorrected_ms"][] as $k |
             if $s[$k] == $e[$k] then empty else "\($k) differ" end)
        ] | if length == 0 then "exact" else join("; ") end' 2>&1) || check="no summary"
    [ "$cpu" = n/a ] && check="$check (a process ended before the window closed)"
    if [ "$rc_c" != 0 ] || [ "$rc_s" != 0 ]; then
        check="$check (exit codes: coordinator $rc_c, simulator $rc_s)"
    fi
    [ "$check" = exact ] || failed_checks=$((failed_checks + 1))
    local tag=""
    [ "$profile" = 1 ] && tag=" (perf attached: left out of the medians)"
    printf "  N=%-6s rep %s  coordinator CPU %6s%%  RSS %6.1f MB  records/s %6s  updates/s %6s  simulator CPU %5s%%  machine busy %3s%%  merge: %s%s\n" \
        "$n" "$rep" "$cpu" "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" "$recs" "$ups" "$sim_cpu" "$busy" "$check" "$tag"
    if [ "$profile" != 1 ]; then
        echo "$n $rep $cpu $rss $recs $ups $sim_cpu $busy $check" >>"$results"
    fi
    if [ "$profile" = 1 ] && [ -f "$dir/perf.data" ]; then
        perf report -i "$dir/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
            grep -v '^#' | grep -E '^ +[0-9]' | head -25 >"$dir/perf-top.txt" || true
        echo "    profile: $dir/perf.data (top symbols in $dir/perf-top.txt)"
    fi
}

for n in $counts; do
    extra=0
    [ "$perf" = 1 ] && extra=1
    for ((i = 1; i <= reps + extra; i++)); do
        prof=0
        [ "$perf" = 1 ] && [ "$i" = 1 ] && prof=1
        run_one "$n" "$i" "$prof" || failed_checks=$((failed_checks + 1))
    done
done

echo
echo "medians over $reps repetitions (coordinator CPU as % of one core, in the steady window):"
printf "  %-7s %-10s %-10s %-9s %-10s %-9s %-9s %s\n" agents "CPU %" records/s "RSS MB" updates/s "sim CPU%" "busy %" "exact merge"
for n in $counts; do
    cpu=$(awk -v n="$n" '$1 == n && $3 != "n/a" { print $3 }' "$results" | bench_median)
    rss=$(awk -v n="$n" '$1 == n && $4 > 0 { printf "%.1f\n", $4 / 1024 }' "$results" | bench_median)
    recs=$(awk -v n="$n" '$1 == n && $5 != "n/a" { print $5 }' "$results" | bench_median)
    ups=$(awk -v n="$n" '$1 == n && $6 != "n/a" { print $6 }' "$results" | bench_median)
    scpu=$(awk -v n="$n" '$1 == n && $7 != "n/a" { print $7 }' "$results" | bench_median)
    busy=$(awk -v n="$n" '$1 == n { print $8 }' "$results" | bench_median)
    ok=$(awk -v n="$n" '$1 == n && $9 == "exact" { k++ } $1 == n { t++ } END { printf "%d/%d exact", k, t }' "$results")
    printf "  %-7s %-10s %-10s %-9s %-10s %-9s %-9s %s\n" "$n" "$cpu" "$recs" "$rss" "$ups" "$scpu" "$busy" "$ok"
done

bench_finish "$failed_checks" "failed a check" "$perf"
