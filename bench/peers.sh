#!/usr/bin/env bash
# Measures stampede-agent beside wrk, hey, ab and Locust against nginx on loopback, in one run:
# peak requests/s per core (closed loop, 50 connections), stampede-agent's rate accuracy at 1k, 5k
# and 20k rps, and p50/p99 at a fixed rate beside wrk's. nginx runs on one core and every load
# generator on the other, one after the other, interleaved over the repetitions so that noise from
# other work hits all of them alike. Prints a table and, with --json-out, writes every figure and
# the environment as JSON (bench/README.md explains each figure).
#
# Installs what it needs on Debian 12 first and builds stampede (unless --bin-dir is given). Stops
# everything it started, nginx included, whatever happens. Exit code: 0 when every run gave its
# figures, 1 when a tool failed or nginx could not start, 2 for bad flags.
set -euo pipefail
ST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ST_ROOT/scripts/deps.sh"

usage() {
    cat <<EOF
usage: bench/peers.sh [--duration SECONDS] [--reps N] [--quick] [--json-out FILE] [--bin-dir DIR]

  --duration SECONDS  length of every run, whole seconds (default 5)
  --reps N            repetitions of every run, interleaved (default 3)
  --quick             a short smoke run: 1 repetition of 2 s
  --json-out FILE     also write every figure and the environment to FILE as JSON
  --bin-dir DIR       use the stampede binaries in DIR instead of building into build/
  --help              this text

nginx is pinned to CPU 1 and the generators to CPU 0 (ST_BENCH_SERVER_CPU and ST_BENCH_GEN_CPU
change them). Needs 2 CPUs.

Open loop (bench/openloop_report.py prints its table): stampede-agent beside wrk2 at 2k, 20k and
40k rps with 100 connections (CPU per request, served vs asked), the highest rate each holds
within 1% on one core, and 6,000 connections to stampede-target answering in 1 s at 5,000 rps
(RSS, time to rate). wrk2 is not in Debian: WRK2=PATH names its binary; without it those rows
are skipped with a note. ST_BENCH_ONLY=openloop, https or http2 runs only those rows.
EOF
}

duration=5
reps=3
json_out=
bin_dir=
while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --reps) reps=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --quick) quick=1; shift ;;
    --json-out) json_out=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --bin-dir) bin_dir=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --help | -h) usage; exit 0 ;;
    *) echo "peers: unknown argument \"$1\" (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "${quick:-}" ]; then
    duration=2
    reps=1
fi
[[ $duration =~ ^[1-9][0-9]*$ ]] || { echo "peers: --duration: \"$duration\" is not a whole number of seconds >= 1" >&2; exit 2; }
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "peers: --reps: \"$reps\" is not a count >= 1" >&2; exit 2; }
if [ -n "$json_out" ]; then
    json_out=$(realpath -m -- "$json_out")
    [ -d "$(dirname "$json_out")" ] || { echo "peers: --json-out: folder $(dirname "$json_out") does not exist" >&2; exit 2; }
fi

gen_cpu=${ST_BENCH_GEN_CPU:-0}
server_cpu=${ST_BENCH_SERVER_CPU:-1}
peak_conns=50
lat_rate=5000
lat_conns=20
# Connections for each open-loop rate: rate x latency with room to spare, so that a slow moment of
# the server (nginx answering in 3 to 5 ms on a busy core) does not leave every connection busy.
rate_conns=(1000:10 5000:20 20000:100)

# ---- what it needs ----

st_need_apt "${ST_BUILD_PKGS[@]}" nginx-light wrk hey apache2-utils python3 python3-locust procps util-linux \
    nghttp2-client openssl
PY=/usr/bin/python3
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ -z "$bin_dir" ]; then
    echo "== building stampede ==" >&2
    st_build "$ST_ROOT/build"
    bin_dir=$ST_ROOT/build/bin
fi
bin_dir=$(cd "$bin_dir" && pwd)
for b in stampede-agent engine_bench; do
    [ -x "$bin_dir/$b" ] || { echo "peers: $bin_dir/$b is not built" >&2; exit 1; }
done
if ! taskset -c "$gen_cpu" true 2>/dev/null || ! taskset -c "$server_cpu" true 2>/dev/null; then
    echo "peers: cannot pin to CPUs $gen_cpu and $server_cpu (this machine has $(nproc) usable)" >&2
    exit 1
fi

# ---- processes: everything started is stopped on the way out ----

tmp=$(mktemp -d /tmp/stampede-peers.XXXXXX)
nginx_pid=
worker_pid=
cur_pid=
target_pid=

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    stop_pid "$cur_pid"
    stop_pid "$target_pid"
    stop_pid "$nginx_pid"
    # The master takes its worker with it; this only matters if the master had to be killed.
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
        kill -KILL "$worker_pid" 2>/dev/null || true
    fi
    if [ -n "${ST_BENCH_KEEP:-}" ]; then
        echo "peers: the runs' outputs are kept in $tmp" >&2
    else
        rm -rf "$tmp"
        [ "$code" -eq 0 ] || echo "peers: stopped (status $code); ST_BENCH_KEEP=1 keeps the runs' outputs" >&2
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "peers: $*" >&2
    exit 1
}

# ---- nginx ----

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# HTTP/2 over cleartext (h2c with prior knowledge) on a second port of the same worker.
h2_port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# And over TLS (ALPN h2), with a self-signed certificate made now (the agent runs --insecure).
https_port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
h2s_port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/nginx/tmp" "$tmp/runs"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/nginx/key.pem" -out "$tmp/nginx/cert.pem" \
    -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
    fail "openssl could not make a certificate for the TLS rows"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_body_temp_path $tmp/nginx/tmp;
    proxy_temp_path $tmp/nginx/tmp;
    fastcgi_temp_path $tmp/nginx/tmp;
    uwsgi_temp_path $tmp/nginx/tmp;
    scgi_temp_path $tmp/nginx/tmp;
    server {
        listen 127.0.0.1:$port;
        location / {
            return 200 "ok";
        }
    }
    server {
        listen 127.0.0.1:$h2_port http2;
        http2_max_concurrent_streams 128;
        location / {
            return 200 "ok";
        }
    }
    server {
        listen 127.0.0.1:$https_port ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate $tmp/nginx/cert.pem;
        ssl_certificate_key $tmp/nginx/key.pem;
        keepalive_requests 1000000;
        location / {
            return 200 "ok";
        }
    }
    server {
        listen 127.0.0.1:$h2s_port ssl http2;
        http2_max_concurrent_streams 128;
        ssl_certificate $tmp/nginx/cert.pem;
        ssl_certificate_key $tmp/nginx/key.pem;
        location / {
            return 200 "ok";
        }
    }
}
EOF
taskset -c "$server_cpu" "$NGINX" -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" \
    >"$tmp/nginx/out" 2>&1 &
nginx_pid=$!
url="http://127.0.0.1:$port/"
for _ in $(seq 100); do
    if ! kill -0 "$nginx_pid" 2>/dev/null; then
        fail "nginx did not start: $(cat "$tmp/nginx/out" "$tmp/nginx/error.log" 2>/dev/null)"
    fi
    worker_pid=$(pgrep -P "$nginx_pid" | head -n1 || true)
    if [ -n "$worker_pid" ] && "$PY" -c "import socket, sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
        break
    fi
    worker_pid=
    sleep 0.05
done
[ -n "$worker_pid" ] || fail "nginx is not serving on 127.0.0.1:$port: $(cat "$tmp/nginx/error.log" 2>/dev/null)"

clk_tck=$(getconf CLK_TCK)
# The two CPUs' lines of /proc/stat, to tell how much of each core went to other work and, on a
# virtual machine, to the hypervisor (steal).
cpu_lines() {
    local line
    while read -r line; do
        case $line in "cpu$gen_cpu "* | "cpu$server_cpu "*) printf '%s;' "$line" ;; esac
    done </proc/stat
}
server_ticks() {
    local f
    read -r -a f <"/proc/$worker_pid/stat" || fail "nginx's worker ($worker_pid) is gone"
    echo $((f[13] + f[14]))
}

# ---- one run ----

# run SECTION TOOL REP PARSER CMD...: runs CMD pinned to the generator CPU, keeps its output, and
# appends its figures to records.jsonl. Any failure ends the benchmark.
run() {
    local section=$1 tool=$2 rep=$3 parser=$4
    shift 4
    local base="$tmp/runs/$section.$tool.$rep" rc=0 s0 s1 w0 w1 c0 c1
    local shown="$*"
    shown=${shown//$bin_dir\//}
    shown=${shown//$tmp/TMP}
    printf '  %-8s rep %d/%d  %s\n' "$section" "$rep" "$reps" "$shown" >&2
    kill -0 "$nginx_pid" 2>/dev/null || fail "nginx stopped: $(tail -n5 "$tmp/nginx/error.log")"
    s0=$(server_ticks)
    c0=$(cpu_lines)
    w0=$EPOCHREALTIME
    times >"$base.t0"
    taskset -c "$gen_cpu" "$@" >"$base.out" 2>"$base.err" &
    cur_pid=$!
    wait "$cur_pid" || rc=$?
    times >"$base.t1"
    w1=$EPOCHREALTIME
    cur_pid=
    c1=$(cpu_lines)
    s1=$(server_ticks)
    if [ "$rc" -ne 0 ]; then
        fail "$tool ($section) exited with status $rc: $shown
$(tail -n 8 "$base.err"; tail -n 8 "$base.out")"
    fi
    "$PY" "$ST_ROOT/bench/peers_report.py" record --parser "$parser" --section "$section" \
        --tool "$tool" --rep "$rep" --command "$shown" --out "$base.out" --err "$base.err" \
        --times-before "$base.t0" --times-after "$base.t1" --wall-before "$w0" --wall-after "$w1" \
        --server-ticks-before "$s0" --server-ticks-after "$s1" --clk-tck "$clk_tck" \
        --cpu-stat-before "$c0" --cpu-stat-after "$c1" --gen-cpu "$gen_cpu" --server-cpu "$server_cpu" \
        >>"$tmp/records.jsonl" || fail "$tool ($section): its output could not be read (above)"
}

agent=("$bin_dir/stampede-agent" --url "$url" --duration "$duration" --threads 1 --json)

cat >"$tmp/locustfile.py" <<'EOF'
from locust import FastHttpUser, constant, task


class Peer(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
EOF

loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== nginx on 127.0.0.1:$port (CPU $server_cpu); generators on CPU $gen_cpu; $reps x ${duration}s ==" >&2

# A short warm-up so that the first measured run does not pay for nginx's cold caches.
taskset -c "$gen_cpu" wrk -t1 -c"$peak_conns" -d1s "$url" >/dev/null 2>&1 || fail "wrk cannot reach nginx at $url"

only=${ST_BENCH_ONLY:-}
case $only in
"" | openloop | https | http2) ;;
*) fail "ST_BENCH_ONLY: \"$only\" is not openloop, https or http2" ;;
esac
[ -n "$only" ] || echo "== peak throughput ==" >&2
for rep in $(seq "$reps"); do
    [ -z "$only" ] || break
    run peak wrk "$rep" wrk wrk -t1 -c"$peak_conns" -d"${duration}s" "$url"
    run peak agent-fast "$rep" agent "${agent[@]}" --rate 0 --connections "$peak_conns" --engine fast
    run peak agent-curl "$rep" agent "${agent[@]}" --rate 0 --connections "$peak_conns" --engine curl
    run peak engine_bench "$rep" engine_bench "$bin_dir/engine_bench" -c "$peak_conns" -d "$duration" "$url"
    run peak hey "$rep" hey hey -z "${duration}s" -c "$peak_conns" -cpus 1 "$url"
    run peak ab "$rep" ab ab -k -c "$peak_conns" -t "$duration" -n 10000000 "$url"
    run peak locust "$rep" locust locust -f "$tmp/locustfile.py" --headless -u "$peak_conns" \
        -r "$peak_conns" -t "${duration}s" --host "${url%/}" --only-summary
done

[ -n "$only" ] || echo "== rate accuracy ==" >&2
for rep in $(seq "$reps"); do
    [ -z "$only" ] || break
    for rc_pair in "${rate_conns[@]}"; do
        run "rate${rc_pair%%:*}" agent-fast "$rep" agent "${agent[@]}" --rate "${rc_pair%%:*}" \
            --connections "${rc_pair##*:}" --engine fast
    done
done

[ -n "$only" ] || echo "== latency at a fixed rate ==" >&2
for rep in $(seq "$reps"); do
    [ -z "$only" ] || break
    run latency agent-fast "$rep" agent "${agent[@]}" --rate "$lat_rate" --connections "$lat_conns" --engine fast
    run latency agent-curl "$rep" agent "${agent[@]}" --rate "$lat_rate" --connections "$lat_conns" --engine curl
    run latency hey "$rep" hey hey -z "${duration}s" -c "$lat_conns" -q $((lat_rate / lat_conns)) -cpus 1 "$url"
    run latency wrk "$rep" wrk wrk -t1 -c"$lat_conns" -d"${duration}s" --latency "$url"
done

# HTTP/2, cleartext and TLS: h2load's -c/-m beside the h2 engine's --connections/--streams. (libcurl 7.88 cannot keep
# an h2c connection: its row would be errors, so the curl engine is not run here.)
# HTTPS over HTTP/1.1 (TLS 1.3): keep-alive at the peak's 50 connections, and a new connection per
# request ("Connection: close": what a handshake costs; stampede offers the last session again,
# wrk does a full handshake each time). wrk and h2load --h1 beside the fast engine.
https_url="https://127.0.0.1:$https_port/"
printf '{"requests": [{"url": "%s", "headers": {"Connection": "close"}}]}\n' "$https_url" >"$tmp/close.json"
[ -n "$only" ] && [ "$only" != https ] || echo "== HTTPS ==" >&2
for rep in $(seq "$reps"); do
    [ -z "$only" ] || [ "$only" = https ] || break
    run https wrk "$rep" wrk wrk -t1 -c"$peak_conns" -d"${duration}s" "$https_url"
    run https h2load-h1 "$rep" h2load h2load --h1 -t1 -c"$peak_conns" -D "$duration" "$https_url"
    run https agent-fast "$rep" agent "$bin_dir/stampede-agent" --url "$https_url" --duration "$duration" \
        --threads 1 --json --rate 0 --connections "$peak_conns" --insecure --engine fast
    run https-close wrk "$rep" wrk wrk -t1 -c"$peak_conns" -d"${duration}s" -H "Connection: close" "$https_url"
    run https-close agent-fast "$rep" agent "$bin_dir/stampede-agent" --plan "$tmp/close.json" --duration "$duration" \
        --threads 1 --json --rate 0 --connections "$peak_conns" --insecure --engine fast
done
h2_url="http://127.0.0.1:$h2_port/"
h2s_url="https://127.0.0.1:$h2s_port/"
h2_shapes=(20:1 1:50)
[ -n "$only" ] && [ "$only" != http2 ] || echo "== HTTP/2 ==" >&2
for rep in $(seq "$reps"); do
    [ -z "$only" ] || [ "$only" = http2 ] || break
    for cm in "${h2_shapes[@]}"; do
        c=${cm%%:*} m=${cm##*:}
        for proto in h2c h2tls; do
            u=$h2_url sec="h2-c${c}m${m}"
            if [ "$proto" = h2tls ]; then u=$h2s_url sec="h2tls-c${c}m${m}"; fi
            run "$sec" h2load "$rep" h2load h2load -t1 -c"$c" -m"$m" -D "$duration" "$u"
            run "$sec" agent-h2 "$rep" agent "$bin_dir/stampede-agent" --url "$u" \
                --duration "$duration" --threads 1 --json --rate 0 --http2 --insecure \
                --connections "$c" --streams "$m" --engine h2
        done
    done
done
# ---- open loop beside wrk2 ----
if [ -z "$only" ] || [ "$only" = openloop ]; then

WRK2=${WRK2:-}
if [ -n "$WRK2" ] && ! [ -x "$WRK2" ]; then
    fail "WRK2=$WRK2 is not an executable"
fi
[ -n "$WRK2" ] || echo "peers: WRK2 is not set: the open-loop rows run stampede-agent alone" >&2
ol_conns=100
ol_rates=(2000 20000 40000)
ol_peak_rates=(45000 50000 55000 60000) # and 40000 above
many_conns=6000
many_rate=5000
echo "== open loop ==" >&2
for rep in $(seq "$reps"); do
    for rate in "${ol_rates[@]}" "${ol_peak_rates[@]}"; do
        run "open$rate" agent-fast "$rep" agent "${agent[@]}" --rate "$rate" --connections "$ol_conns" --engine fast
        [ -z "$WRK2" ] || run "open$rate" wrk2 "$rep" wrk2 "$WRK2" -t1 -c"$ol_conns" -d"${duration}s" \
            -R"$rate" --latency "$url"
    done
done
# Many connections: stampede-target holds every answer 1 s, so 5,000 rps needs 5,000 open.
"$bin_dir/stampede-target" --listen 127.0.0.1:0 --latency-ms 1000 --port-file "$tmp/target.port" \
    >"$tmp/target.out" 2>&1 &
target_pid=$!
for _ in $(seq 100); do [ -s "$tmp/target.port" ] && break; sleep 0.05; done
[ -s "$tmp/target.port" ] || fail "stampede-target did not start: $(cat "$tmp/target.out")"
slow_url="http://127.0.0.1:$(cat "$tmp/target.port")/"
many_s=$((duration < 10 ? 10 : duration))
for rep in $(seq "$reps"); do
    run many agent-fast "$rep" agent /usr/bin/time -f "rss_kb %M" -o "$tmp/runs/many.agent-fast.$rep.rss" \
        "$bin_dir/stampede-agent" --url "$slow_url" --duration "$many_s" --threads 1 --json \
        --rate "$many_rate" --connections "$many_conns" --engine fast --timeout 5000
    [ -z "$WRK2" ] || run many wrk2 "$rep" wrk2 /usr/bin/time -f "rss_kb %M" -o "$tmp/runs/many.wrk2.$rep.rss" \
        "$WRK2" -t1 -c"$many_conns" -d"${many_s}s" -R"$many_rate" --timeout 5s --latency "$slow_url"
done
stop_pid "$target_pid"
target_pid=
"$PY" "$ST_ROOT/bench/openloop_report.py" --records "$tmp/records.jsonl" --runs "$tmp/runs" \
    --rates "$(IFS=,; echo "${ol_rates[*]}")" --peak-rates "$(IFS=,; echo "${ol_peak_rates[*]}")" \
    --many-rate "$many_rate" --many-conns "$many_conns" --many-duration "$many_s" \
    ${json_out:+--json-out "${json_out%.json}.openloop.json"} || fail "the open-loop figures could not be read"
[ -z "$only" ] || exit 0
fi

report_args=(report --records "$tmp/records.jsonl" --bin-dir "$bin_dir" --reps "$reps"
    --duration "$duration" --gen-cpu "$gen_cpu" --server-cpu "$server_cpu"
    --loadavg-start $loadavg_start --lat-rate "$lat_rate" --lat-conns "$lat_conns"
    --rate-conns "$(IFS=,; echo "${rate_conns[*]}")")
[ -z "${quick:-}" ] || report_args+=(--quick)
[ -z "$json_out" ] || report_args+=(--json-out "$json_out")
"$PY" "$ST_ROOT/bench/peers_report.py" "${report_args[@]}"
