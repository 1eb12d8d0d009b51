#!/usr/bin/env bash
# bench/serve.sh: `cutover serve` against HAProxy and nginx as weighted
# blue/green routers: the same 90/10 split over the same two `cutover
# upstream` instances, wrk as the client.
#
# Contract:
#   - Needs wrk, haproxy, nginx (Debian: wrk haproxy nginx-light) and a built
#     ./cutover (release build: `make`); prints the apt-get command and stops
#     when one is missing.
#   - The three routers run at once, each with one worker/thread (nginx
#     worker_processes 1, haproxy nbthread 1, cutover serve is
#     single-threaded), each pinned to core 0; only the one under test gets
#     traffic. The machine has 2 cores, so two layouts are measured:
#       client-bound: the router alone on core 0; wrk and both upstreams on
#         core 1. Core 1 saturates first, so req/s mostly measures wrk and
#         the upstreams; CPU per request still compares the routers.
#       router-bound: the router and both upstreams on core 0 (the upstreams
#         are moved there with taskset); wrk alone on core 1. Core 0
#         saturates, and the upstreams' share of it is the same whatever the
#         router, so req/s compares the routers.
#   - Like cutover, the peers add X-Forwarded-For (HAProxy `option
#     forwardfor`; nginx also X-Forwarded-Proto), as a deployment in front
#     of an API would; cutover also adds Via and its colour header.
#   - Before the runs, the realised split of each router is checked on 2,000
#     keep-alive GETs (the upstreams' X-Cutover-Color).
#   - For each layout, BENCH_REPEAT rounds (default 9); in each round every
#     router in turn gets one wrk run of BENCH_DUR seconds (default 4) with
#     BENCH_CONNS keep-alive connections (default 50) on GET /, so a drift of
#     the machine hits all three alike; each round starts with the next
#     router (round 1: cutover, HAProxy, nginx; round 2: HAProxy, nginx,
#     cutover; ...), so none always runs first. Reported: the median req/s
#     and p99 of the rounds (and every round's figures), the router's own
#     CPU time per request (utime+stime from /proc; nginx: its one worker),
#     the context switches per request of wrk (/usr/bin/time) and the
#     upstreams (/proc/PID/task/*/status): how often the client side was
#     woken, and the TCP segments per request (/proc/net/snmp OutSegs, the
#     whole machine's; 2 a request is the floor for one hop, 4 for two).
#     The wrk + upstreams CPU per request (wrk's from /usr/bin/time, the
#     upstreams' from /proc) is what the router makes the client side spend.
#     The cutover/peer ratios are given twice: of the medians, and as the
#     median of the per-round ratios (each router's run against cutover's in
#     the same round, seconds apart), with the number of rounds in which
#     cutover had >= 1.0x the req/s with a p99 no higher.
#   - Then, for cutover and nginx, BENCH_IDLE (default 10,000) idle
#     keep-alive client connections are opened (bench/idle_conns.py, on
#     core 1) and the router's resident memory with them open is reported
#     (nginx: master + worker). HAProxy is skipped there: it reserves two
#     descriptors per connection, and 10,000 need more than this sandbox's
#     20,000 per process.
#   - BENCH_OLD=BINARY adds another build of cutover serve as one more
#     router (same config), to measure a change against the build before it
#     in the same rounds.
#   - BENCH_BUSY_POLL=50us adds a fourth router: cutover serve with that
#     `busy_poll` (docs/serve.md), in the same rounds as the default one.
#   - Everything started is stopped on exit (trap); all traffic is on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CUTOVER=${CUTOVER:-$ROOT/cutover}
DUR=${BENCH_DUR:-4}
CONNS=${BENCH_CONNS:-50}
REPEAT=${BENCH_REPEAT:-9}
IDLE=${BENCH_IDLE:-10000}   # idle keep-alive client connections for the RSS column (0: skip)
LAYOUTS=${BENCH_LAYOUTS:-client-bound router-bound}
PY=/usr/bin/python3
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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

wait_port() {
    for _ in $(seq 200); do
        $PY -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench/serve.sh: nothing listening on $1" >&2; return 1
}

UP_PIDS=()
start_upstream() { # color: starts it (in this shell, so its pid reaches PIDS) and waits for its port
    local pf=$TMP/$1.port
    taskset -c 1 "$CUTOVER" upstream --listen 127.0.0.1:0 --color "$1" --port-file "$pf" \
        >"$TMP/$1.log" 2>&1 &
    PIDS+=($!)
    UP_PIDS+=($!)
    for _ in $(seq 200); do [[ -s $pf ]] && break; sleep 0.05; done
    [[ -s $pf ]] || { echo "bench/serve.sh: the $1 upstream did not start" >&2; exit 1; }
}
start_upstream blue
start_upstream green
BLUE=$(cat "$TMP/blue.port")
GREEN=$(cat "$TMP/green.port")

upstreams_on() { # core: moves both upstreams (every thread) there
    for p in "${UP_PIDS[@]}"; do taskset -a -p -c "$1" "$p" >/dev/null; done
}

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

# ---- the routers --------------------------------------------------------------------------
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
# More cutover routers with serve.yml's config, measured in the same rounds:
# BENCH_BUSY_POLL=VALUE (50us, say) adds one with `busy_poll: VALUE` (off by
# default); BENCH_OLD=BINARY adds another build of cutover (the one before a
# change, say), so the per-round ratios measure the change against it.
EXTRA_ROUTERS=()
EXTRA_PORTS=()
extra_router() { # name binary [a line added to the config]
    local name=$1 bin=$2 line=${3:-} port admin f
    port=$(free_port); admin=$(free_port); f=$TMP/serve-extra-${#EXTRA_ROUTERS[@]}.yml
    sed -e "s/:$CP\$/:$port/" -e "s/:$CA }/:$admin }/" "$TMP/serve.yml" >"$f"
    [[ -z $line ]] || echo "$line" >>"$f"
    taskset -c 0 "$bin" serve "$f" >"${f%.yml}.log" 2>&1 &
    PIDS+=($!)
    EXTRA_ROUTERS+=("$name|$port|$!|")
    EXTRA_PORTS+=("$port")
}
[[ -z ${BENCH_BUSY_POLL:-} ]] ||
    extra_router "cutover serve, busy_poll $BENCH_BUSY_POLL" "$CUTOVER" "busy_poll: $BENCH_BUSY_POLL"
if [[ -n ${BENCH_OLD:-} ]]; then
    [[ -x $BENCH_OLD ]] || { echo "bench/serve.sh: BENCH_OLD=$BENCH_OLD is not an executable" >&2; exit 1; }
    extra_router "cutover serve, $BENCH_OLD" "$BENCH_OLD"
fi

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
    option forwardfor
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
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
taskset -c 0 "$NGINX" -c "$TMP/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.log" 2>&1 &
NG_PID=$!
PIDS+=($NG_PID)

wait_port "$CP"; wait_port "$HP"; wait_port "$NP"
for p in "${EXTRA_PORTS[@]}"; do wait_port "$p"; done
NG_WORKER=$(pgrep -P "$NG_PID" | head -1)
HA_NAME="HAProxy $("$HAPROXY" -v | awk 'NR==1 {print $3}')"
NG_NAME="nginx $("$NGINX" -v 2>&1 | sed 's|.*nginx/||')"

# name|port|pid whose CPU is counted|pids whose RSS adds up ("" skips the idle column)
ROUTERS=(
    "cutover serve|$CP|$SERVE_PID|$SERVE_PID"
    "$HA_NAME|$HP|$HA_PID|"
    "$NG_NAME|$NP|$NG_WORKER|$NG_PID $NG_WORKER"
)
ROUTERS+=("${EXTRA_ROUTERS[@]}")

declare -A SHARE
for r in "${ROUTERS[@]}"; do
    IFS='|' read -r name port _ _ <<<"$r"
    SHARE[$name]=$(split "$port")
    echo "$name: green ${SHARE[$name]}% of 2,000 GETs" >&2
done

ROWS=$TMP/rows.tsv   # layout, round, name, req/s, p99 (ms), cpu us/req, errors, ctx switches/req, TCP segments/req, wrk + upstreams cpu us/req, router ctx switches/req
up_ticks() { # utime+stime of both upstreams (clock ticks)
    local p t=0
    for p in "${UP_PIDS[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
    echo "$t"
}
: >"$ROWS"
to_ms() { # wrk latency (850.00us, 1.20ms, 2.00s) -> ms
    $PY -c 'import sys
v = sys.argv[1]
for suf, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
    if v.endswith(suf):
        print(float(v[: -len(suf)]) * f); break
else:
    print("nan")' "$1"
}
wrk_one() { # layout round name port pid
    local layout=$1 round=$2 name=$3 port=$4 pid=$5 out t0 t1
    local u0 u1 wcs=0 g0 g1 c0 c1 wcpu=0 r0 r1 rcs="-"
    t0=$(cpu_ticks "$pid")
    r0=$( [[ -n $pid ]] && ctx_switches "$pid" || echo 0)
    c0=$(up_ticks)
    u0=$(ctx_switches "${UP_PIDS[@]}")
    g0=$(tcp_out_segs)
    if [[ -x /usr/bin/time ]]; then
        out=$(/usr/bin/time -f '%w %c %U %S' -o "$TMP/wrk.time" \
              taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$port/")
        wcs=$(awk '{ print $1 + $2 }' "$TMP/wrk.time")
        wcpu=$(awk '{ print $3 + $4 }' "$TMP/wrk.time")
    else
        out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$port/")
    fi
    g1=$(tcp_out_segs)
    u1=$(ctx_switches "${UP_PIDS[@]}")
    c1=$(up_ticks)
    r1=$( [[ -n $pid ]] && ctx_switches "$pid" || echo 0)
    t1=$(cpu_ticks "$pid")
    local rps p99 reqs errs cpu="-"
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ {sub(/^ +/, ""); printf "%s; ", $0}' <<<"$out")
    [[ -n $pid ]] && cpu=$($PY -c "print(f'{($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / $reqs:.1f}')")
    local cs segs ccpu
    cs=$($PY -c "print(f'{($u1 - $u0 + $wcs) / $reqs:.3f}')")
    ccpu=$($PY -c "print(f'{(($c1 - $c0) / $(getconf CLK_TCK) + $wcpu) * 1e6 / $reqs:.1f}')")
    [[ -z $pid ]] || rcs=$($PY -c "print(f'{($r1 - $r0) / $reqs:.3f}')")
    segs=$($PY -c "print(f'{($g1 - $g0) / $reqs:.2f}')")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$layout" "$round" "$name" "$rps" "$p99" "$cpu" \
        "${errs:-none}" "$cs" "$segs" "$ccpu" "$rcs" >>"$ROWS"
    echo "$layout round $round, $name: $rps req/s, p99 $p99 ms, $cpu us/req and $rcs context switches/req of the router, wrk + upstreams $ccpu us/req and $cs context switches/req, $segs TCP segments/req" >&2
}

for layout in $LAYOUTS; do
    case $layout in
        client-bound) upstreams_on 1 ;;
        router-bound) upstreams_on 0 ;;
        *) echo "bench/serve.sh: unknown layout $layout" >&2; exit 1 ;;
    esac
    sleep 0.5
    for round in $(seq "$REPEAT"); do
        [[ $layout == client-bound ]] && wrk_one "$layout" "$round" "direct to blue (no router)" "$BLUE" ""
        # each round starts with the next router, so none always runs first
        # (or always right after the direct run)
        for ((k = 0; k < ${#ROUTERS[@]}; k++)); do
            IFS='|' read -r name port pid _ <<<"${ROUTERS[(k + round - 1) % ${#ROUTERS[@]}]}"
            wrk_one "$layout" "$round" "$name" "$port" "$pid"
        done
    done
done
upstreams_on 1

declare -A IDLE_RSS
if [[ $IDLE -gt 0 ]]; then
    for r in "${ROUTERS[@]}"; do
        IFS='|' read -r name port _ rss_pids <<<"$r"
        [[ -n ${rss_pids// /} ]] || continue
        # shellcheck disable=SC2086
        j=$(taskset -c 1 "$PY" "$ROOT/bench/idle_conns.py" "$port" "$IDLE" $rss_pids) || j=""
        IDLE_RSS[$name]=$("$PY" -c 'import json, sys
d = json.loads(sys.argv[1]) if sys.argv[1] else None
print("-" if not d else "%.1f MB (%d open)" % (sum(d["rss_idle_kb"]) / 1024, d["open"]))' "$j")
    done
fi

SHARES=""
for r in "${ROUTERS[@]}"; do
    IFS='|' read -r name _ _ _ <<<"$r"
    SHARES+="$name=${SHARE[$name]};${IDLE_RSS[$name]:--}|"
done

echo
echo "wrk -t1 -c$CONNS -d${DUR}s --latency, GET / (24-byte body), $REPEAT rounds per layout; routers on core 0"
echo
$PY - "$ROWS" "$SHARES" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
extra = {}
for item in sys.argv[2].split("|"):
    if item:
        name, rest = item.split("=", 1)
        share, rss = rest.split(";", 1)
        extra[name] = (share, rss)
layouts = []
for r in rows:
    if r[0] not in layouts:
        layouts.append(r[0])
for lay in layouts:
    where = ("router alone on core 0; wrk + upstreams on core 1" if lay == "client-bound"
             else "router + upstreams on core 0; wrk alone on core 1")
    print(f"### {lay} ({where})\n")
    print("| router | green share | req/s (median) | req/s (rounds) | p99 (median) | p99 (rounds) "
          "| router CPU us/req (median) | router context switches/req (median) "
          "| wrk + upstreams CPU us/req (median) "
          "| wrk + upstreams context switches/req (median) "
          "| TCP segments/req (median) | idle RSS | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = []
    for r in rows:
        if r[0] == lay and r[2] not in names:
            names.append(r[2])
    med = {}
    for n in names:
        rs = [r for r in rows if r[0] == lay and r[2] == n]
        rps = [float(r[3]) for r in rs]
        p99 = [float(r[4]) for r in rs]
        cpu = [float(r[5]) for r in rs if r[5] != "-"]
        ccpu = statistics.median(float(r[9]) for r in rs)
        rcs = [float(r[10]) for r in rs if r[10] != "-"]
        cs = statistics.median(float(r[7]) for r in rs)
        segs = statistics.median(float(r[8]) for r in rs)
        med[n] = (statistics.median(rps), statistics.median(p99))
        share, rss = extra.get(n, ("-", "-"))
        errs = "; ".join(sorted({r[6] for r in rs}))
        print(f"| {n} | {share} | {med[n][0]:,.0f} | {' / '.join(f'{x:,.0f}' for x in rps)} "
              f"| {med[n][1]:.2f} ms | {' / '.join(f'{x:.2f}' for x in p99)} "
              f"| {statistics.median(cpu) if cpu else '-'} | {f'{statistics.median(rcs):.3f}' if rcs else '-'} | {ccpu:.1f} | {cs:.3f} | {segs:.2f} "
              f"| {rss if lay == layouts[0] else '-'} | {errs} |")
    cut = med.get("cutover serve")
    if cut:
        print()
        for n in names:
            if n == "cutover serve" or n.startswith("direct"):
                continue
            # paired: the two routers' runs of the same round, minutes apart at most
            by = {(r[1], r[2]): r for r in rows if r[0] == lay}
            pairs = [(float(by[(k, "cutover serve")][3]) / float(by[(k, n)][3]),
                      float(by[(k, "cutover serve")][4]) <= float(by[(k, n)][4]))
                     for k in sorted({r[1] for r in rows if r[0] == lay}, key=int)
                     if (k, "cutover serve") in by and (k, n) in by]
            ratios = sorted(x for x, _ in pairs)
            won = sum(1 for x, p in pairs if x >= 1.0 and p)
            print(f"- cutover / {n}: req/s of the medians **{cut[0] / med[n][0]:.2f}x**, "
                  f"p99 {cut[1]:.2f} vs {med[n][1]:.2f} ms; per round: req/s ratio median "
                  f"**{statistics.median(ratios):.2f}x** (rounds: {' / '.join(f'{x:.2f}' for x in ratios)}), "
                  f"cutover >= 1.0x with p99 no higher in {won} of {len(pairs)} rounds")
    print()
EOF
