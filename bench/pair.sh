#!/usr/bin/env bash
# bench/pair.sh: two `cutover` binaries on one script, in turn, to measure a
# change when the machine drifts between minutes (docs/benchmarks.md).
#
# Usage: bash bench/pair.sh OLD_BINARY NEW_BINARY SCRIPT [PAIRS]
#   e.g. (git worktree add /tmp/old COMMIT && make -C /tmp/old cutover)
#        bash bench/pair.sh /tmp/old/cutover ./cutover bench/capture.yml
#
# Contract:
#   - Starts bench's nginx (bench/lib.sh write_nginx_conf) on a free
#     127.0.0.1 port, pinned to core 1; each run is pinned to core 0 and
#     targets it with -t. SCRIPT runs as it is, so its phases set the run's
#     length: bench/pair-c.yml is (c)'s schedule for 5 s, bench/capture.yml
#     (e)'s generator-bound loop.
#   - PAIRS pairs (default 10); in each pair both binaries run once, seconds
#     apart, alternating which goes first. Per run: the generator's CPU
#     (utime + stime) per request, the arrival lag p99, nginx's CPU per
#     request, and the generator's user-space CPU (utime) per request.
#     Reported: every pair, and the medians of the per-pair NEW/OLD ratios
#     of CPU per request and of user CPU per request (below 1: NEW is
#     cheaper; a change to user-space code shows in the second, which the
#     kernel's share of loopback TCP does not blur).
#   - Widens net.ipv4.ip_local_port_range for the runs when it can, as
#     bench/run.sh does, and restores it; stops nginx on exit. All traffic
#     is on 127.0.0.1.
set -euo pipefail

(($# >= 3)) || { sed -n '2,9p' "$0" >&2; exit 2; }
OLD=$1 NEW=$2 SCRIPT=$3 PAIRS=${4:-10}
PY=/usr/bin/python3
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
for b in "$OLD" "$NEW"; do [[ -x $b ]] || { echo "bench/pair.sh: $b is not executable" >&2; exit 2; }; done
[[ -r $SCRIPT ]] || { echo "bench/pair.sh: cannot read $SCRIPT" >&2; exit 2; }
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || { echo "bench/pair.sh: needs nginx (apt-get install nginx-light)" >&2; exit 2; }

TMP=$(mktemp -d)
NGINX_PID="" RANGE0=""
cleanup() {
    [[ -z $NGINX_PID ]] || { kill "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null || true; }
    [[ -z $RANGE0 ]] || sysctl -qw net.ipv4.ip_local_port_range="$RANGE0" || true
    rm -rf "$TMP"
}
trap cleanup EXIT

RANGE0=$(sysctl -n net.ipv4.ip_local_port_range | tr -s '\t ' ' ')
sysctl -qw net.ipv4.ip_local_port_range="10240 65535" 2>/dev/null || RANGE0=""
PORT=$(free_port)
mkdir -p "$TMP/nginx"
write_nginx_conf "$TMP/nginx" "$PORT"
taskset -c 1 "$(command -v nginx || echo /usr/sbin/nginx)" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" \
    -e "$TMP/nginx/error.log" &
NGINX_PID=$!
for _ in $(seq 50); do http_ok "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
http_ok "http://127.0.0.1:$PORT/" || { echo "bench/pair.sh: nginx did not start" >&2; exit 1; }

nginx_ticks() { proc_ticks "$NGINX_PID"; }

# one BINARY: "cpu_us_per_request lag_p99_ms nginx_us_per_request user_us_per_request"
one() {
    local t0 t1
    t0=$(nginx_ticks)
    /usr/bin/time -o "$TMP/time" -f "%U %S" taskset -c 0 "$1" run "$SCRIPT" -t "http://127.0.0.1:$PORT" \
        -o "$TMP/r.json" -q >/dev/null 2>"$TMP/err" || { echo "run of $1 failed: $(tail -n 2 "$TMP/err")" >&2; return 1; }
    t1=$(nginx_ticks)
    "$PY" - "$TMP/r.json" "$(cat "$TMP/time")" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PYEOF'
import json, sys
a = json.load(open(sys.argv[1]))["aggregate"]
n = a["counters"].get("http.requests", 0) or 1
u, s = map(float, sys.argv[2].split())
lag = a["summaries"].get("cutover.arrival_lag", {}).get("p99", 0)
print("%.1f %s %.1f %.1f" % ((u + s) * 1e6 / n, lag, int(sys.argv[3]) * 1e6 / int(sys.argv[4]) / n, u * 1e6 / n))
PYEOF
}

echo "bench/pair.sh: $SCRIPT, $PAIRS pairs; OLD $OLD, NEW $NEW; nginx on core 1 (127.0.0.1:$PORT), runs on core 0"
echo "pair | OLD us CPU/req, lag p99 ms, nginx us/req, us user CPU/req | NEW (the same) | NEW/OLD CPU, NEW/OLD user CPU"
RATIOS=() URATIOS=()
for i in $(seq "$PAIRS"); do
    if ((i % 2)); then a=$(one "$OLD"); sleep 1; b=$(one "$NEW"); else b=$(one "$NEW"); sleep 1; a=$(one "$OLD"); fi
    r=$(awk -v a="${a%% *}" -v b="${b%% *}" 'BEGIN { printf "%.3f", b / a }')
    ur=$(awk -v a="${a##* }" -v b="${b##* }" 'BEGIN { printf "%.3f", b / a }')
    RATIOS+=("$r") URATIOS+=("$ur")
    echo "$i | $a | $b | $r $ur"
    sleep 1
done
printf '%s\n' "${RATIOS[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "median NEW/OLD CPU per request: %.3f (range %.3f-%.3f)\n", m, v[1], v[NR] }'
printf '%s\n' "${URATIOS[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "median NEW/OLD user CPU per request: %.3f (range %.3f-%.3f)\n", m, v[1], v[NR] }'
