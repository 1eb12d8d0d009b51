#!/usr/bin/env bash
# bench/instr.sh: instructions a user of two `cutover run` binaries, counted
# by valgrind's callgrind, for a change too small for the machine's noise
# (docs/benchmarks.md). Not part of `make bench`: it needs two binaries.
#
# Usage: bash bench/instr.sh OLD_BINARY NEW_BINARY [RATE] [DELAY_MS]
#   e.g. (git worktree add /tmp/old COMMIT && make -C /tmp/old cutover)
#        bash bench/instr.sh /tmp/old/cutover ./cutover
#
# Contract:
#   - Starts NEW's `cutover upstream` on a free 127.0.0.1 port, pinned to
#     core 1; every run targets it with one GET /delay/DELAY_MS (default
#     200) a user, a new connection each, RATE users a second (default
#     500), so about RATE x DELAY_MS / 1000 users are alive at once.
#   - Each binary runs under callgrind twice, for 2 s and for 6 s of
#     arrivals; instructions a user = the difference of the two totals over
#     the difference of users created, so loading, start-up and the end
#     cancel out. Printed: each binary's figure and NEW/OLD. A run with a
#     failed user is an error.
#   - Installs valgrind (Debian) when missing and it can; stops the
#     upstream on exit. All traffic is on 127.0.0.1.
set -euo pipefail

(($# >= 2)) || { sed -n '2,8p' "$0" >&2; exit 2; }
OLD=$1 NEW=$2 RATE=${3:-500} DELAY=${4:-200}
PY=/usr/bin/python3
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"
for b in "$OLD" "$NEW"; do [[ -x $b ]] || { echo "bench/instr.sh: $b is not executable" >&2; exit 2; }; done
if ! command -v valgrind >/dev/null; then
    if [[ $(id -u) == 0 ]]; then apt-get install -y -q valgrind >/dev/null; else sudo -n apt-get install -y -q valgrind >/dev/null; fi
fi

TMP=$(mktemp -d)
UP_PID=""
cleanup() {
    [[ -z $UP_PID ]] || { kill "$UP_PID" 2>/dev/null; wait "$UP_PID" 2>/dev/null || true; }
    rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(free_port)
taskset -c 1 "$NEW" upstream --listen "127.0.0.1:$PORT" >"$TMP/upstream.log" 2>&1 &
UP_PID=$!
for _ in $(seq 50); do http_ok "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
http_ok "http://127.0.0.1:$PORT/health" || { echo "bench/instr.sh: the upstream did not start" >&2; exit 1; }
for d in 2 6; do
    cat >"$TMP/s$d.yml" <<YAML
config:
  target: "http://127.0.0.1:$PORT"
  phases:
    - duration: $d
      arrivalRate: $RATE
scenarios:
  - flow:
      - get:
          url: "/delay/$DELAY"
YAML
done

# one BINARY DURATION: "instructions users"
one() {
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$1" run "$TMP/s$2.yml" \
        -q -o "$TMP/r.json" >/dev/null 2>"$TMP/vg.err" || { echo "run of $1 failed: $(tail -n 2 "$TMP/vg.err")" >&2; return 1; }
    local ir
    ir=$(grep -oE 'Collected : [0-9]+' "$TMP/vg.err" | awk '{ print $3 }')
    "$PY" - "$TMP/r.json" "$ir" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))["aggregate"]["counters"]
if c.get("vusers.failed", 0):
    sys.exit("bench/instr.sh: %d users failed" % c["vusers.failed"])
print(sys.argv[2], c.get("vusers.created", 0))
PYEOF
}

per_user() {
    local a b
    a=$(one "$1" 2) b=$(one "$1" 6)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", (y[1] - x[1]) / (y[2] - x[2]) }'
}

echo "bench/instr.sh: $RATE users a second, GET /delay/$DELAY each, against cutover upstream on core 1 (127.0.0.1:$PORT)"
o=$(per_user "$OLD")
echo "OLD $OLD: $o instructions a user"
n=$(per_user "$NEW")
echo "NEW $NEW: $n instructions a user"
awk -v o="$o" -v n="$n" 'BEGIN { printf "NEW/OLD: %.3f\n", n / o }'
