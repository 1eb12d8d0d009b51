#!/usr/bin/env bash
# bench/serve.sh: `cutover serve` against HAProxy and nginx as weighted
# blue/green routers: the same 90/10 split over the same two `cutover
# upstream` instances, wrk as the client.
#
# Contract:
#   - Needs wrk, haproxy, nginx (Debian: wrk haproxy nginx-light) and a built
#     ./cutover (release build: `make`); prints the apt-get command and stops
#     when one is missing.
#   - Cores (the machine has 2): the router under test runs alone on core 0
#     (taskset -c 0), one worker/thread each (nginx worker_processes 1,
#     haproxy nbthread 1, cutover serve is single-threaded); wrk and both
#     upstreams share core 1.
#   - For each router: checks the realised split on 2,000 requests (from the
#     upstreams' X-Cutover-Color), then one wrk run of BENCH_DUR seconds
#     (default 10) with BENCH_CONNS keep-alive connections (default 50) on
#     GET /, and prints req/s, the latency percentiles and the router's own
#     CPU time per request (utime+stime from /proc; for nginx, its one
#     worker) in a Markdown table. wrk and the upstreams share core 1, which
#     can be the bottleneck; CPU per request compares the routers regardless.
#   - Then, for each router, BENCH_IDLE (default 10,000) idle keep-alive
#     client connections are opened (bench/idle_conns.py, on core 1) and the
#     router's resident memory with them open is reported (nginx: master +
#     worker).
#   - Everything started is stopped on exit (trap); all traffic is on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CUTOVER=${CUTOVER:-$ROOT/cutover}
DUR=${BENCH_DUR:-10}
CONNS=${BENCH_CONNS:-50}
IDLE=${BENCH_IDLE:-10000}   # idle keep-alive client connections for the RSS column (0: skip)
PY=/usr/bin/python3

for tool in wrk haproxy nginx taskset; do
    if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
        echo "bench/serve.sh: missing $tool; run: sudo apt-get install -y wrk haproxy nginx-light" >&2
        exit 1
    fi
done
[[ -x $CUTOVER ]] || { echo "bench/serve.sh: build ./cutover first (make)" >&2; exit 1; }
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 200); do
        $PY -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench/serve.sh: nothing listening on $1" >&2; return 1
}

start_upstream() { # color: starts it (in this shell, so its pid reaches PIDS) and waits for its port
    local pf=$TMP/$1.port
    taskset -c 1 "$CUTOVER" upstream --listen 127.0.0.1:0 --color "$1" --port-file "$pf" \
        >"$TMP/$1.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do [[ -s $pf ]] && break; sleep 0.05; done
    [[ -s $pf ]] || { echo "bench/serve.sh: the $1 upstream did not start" >&2; exit 1; }
}
start_upstream blue
start_upstream green
BLUE=$(cat "$TMP/blue.port")
GREEN=$(cat "$TMP/green.port")

split() { # port -> "green share %"
    $PY - "$1" <<'EOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
g = 0
for _ in range(2000):
    c.request("GET", "/")
    r = c.getresponse(); r.read()
    g += r.getheader("X-Cutover-Color") == "green"
print(f"{100.0 * g / 2000:.2f}")
EOF
}

cpu_ticks() { # pid -> utime+stime of the process (clock ticks); 0 without a pid
    [[ -n ${1:-} ]] || { echo 0; return; }
    awk '{print $14 + $15}' "/proc/$1/stat"
}

RESULTS=()
bench_one() { # name port [pid of the router, for its CPU time] [pids whose RSS adds up]
    local name=$1 port=$2 pid=${3:-} rss_pids=${4-${3:-}} share out t0 t1
    wait_port "$port"
    share=$(split "$port")
    t0=$(cpu_ticks "$pid")
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$port/")
    t1=$(cpu_ticks "$pid")
    echo "$out" >"$TMP/$name.wrk"
    local rps p50 p90 p99 errs
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p90=$(awk '$1=="90%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ {sub(/^ +/, ""); printf "%s; ", $0}' <<<"$out")
    local reqs cpu_us="-"
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    if [[ -n $pid ]]; then
        cpu_us=$($PY -c "print(f'{($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / $reqs:.1f}')")
    fi
    # memory: RSS with IDLE idle keep-alive client connections open (after the wrk run)
    local rss="-"
    if [[ -n ${rss_pids// /} && $IDLE -gt 0 ]]; then
        local j
        # shellcheck disable=SC2086
        j=$(taskset -c 1 "$PY" "$ROOT/bench/idle_conns.py" "$port" "$IDLE" $rss_pids) || j=""
        rss=$("$PY" -c 'import json, sys
d = json.loads(sys.argv[1]) if sys.argv[1] else None
print("-" if not d else "%.1f MB (%d open)" % (sum(d["rss_idle_kb"]) / 1024, d["open"]))' "$j")
    fi
    RESULTS+=("| $name | $share | $rps | $p50 | $p90 | $p99 | $cpu_us | $rss | ${errs:-none} |")
    echo "$name: green ${share}%, ${rps} req/s, p50 ${p50}, p99 ${p99}" >&2
}

# ---- direct (no router), for reference ----------------------------------------------
bench_one "direct to blue (no router)" "$BLUE"

# ---- cutover serve ------------------------------------------------------------------------
CP=$(free_port); CA=$(free_port)
cat >"$TMP/serve.yml" <<EOF
listen: 127.0.0.1:$CP
admin: { listen: 127.0.0.1:$CA }
upstreams:
  blue:  { servers: [ "http://127.0.0.1:$BLUE" ] }
  green: { servers: [ "http://127.0.0.1:$GREEN" ] }
weight: 10
EOF
taskset -c 0 "$CUTOVER" serve "$TMP/serve.yml" >"$TMP/serve.log" 2>&1 &
SERVE_PID=$!
PIDS+=($SERVE_PID)
bench_one "cutover serve" "$CP" "$SERVE_PID"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true

# ---- HAProxy ------------------------------------------------------------------------------
HP=$(free_port)
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 9900
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend f
    bind 127.0.0.1:$HP
    default_backend b
backend b
    balance roundrobin
    http-reuse always
    server blue 127.0.0.1:$BLUE weight 90
    server green 127.0.0.1:$GREEN weight 10
EOF
taskset -c 0 "$HAPROXY" -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HA_PID=$!
PIDS+=($HA_PID)
# HAProxy reserves two descriptors per connection: 10,000 idle clients need
# more than this machine's 20,000 per process, so its idle column is skipped.
bench_one "HAProxy $("$HAPROXY" -v | awk 'NR==1 {print $3}')" "$HP" "$HA_PID" " "
kill "$HA_PID"; wait "$HA_PID" 2>/dev/null || true

# ---- nginx ---------------------------------------------------------------------------------
NP=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 40000;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 30000; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream colours {
        server 127.0.0.1:$BLUE weight=9;
        server 127.0.0.1:$GREEN weight=1;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NP;
        location / {
            proxy_pass http://colours;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
taskset -c 0 "$NGINX" -c "$TMP/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.log" 2>&1 &
NG_PID=$!
PIDS+=($NG_PID)
wait_port "$NP"
NG_WORKER=$(pgrep -P "$NG_PID" | head -1)
bench_one "nginx $("$NGINX" -v 2>&1 | sed 's|.*nginx/||')" "$NP" "$NG_WORKER" "$NG_PID $NG_WORKER"
kill "$NG_PID"; wait "$NG_PID" 2>/dev/null || true

echo
echo "wrk -t1 -c$CONNS -d${DUR}s --latency, GET / (24-byte body), router on core 0, wrk + upstreams on core 1"
echo
echo "| router | green share (2,000 GETs) | req/s | p50 | p90 | p99 | router CPU us/req | RSS with $IDLE idle conns | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${RESULTS[@]}"
