#!/usr/bin/env bash
# bench/run.sh: `make bench`. Compares `cutover run` with wrk, ab and Artillery
# on this machine and writes the results to bench/out/results.md.
#
# Contract:
#   - Installs what it uses when missing (wrk, apache2-utils, nginx-light, time
#     via apt-get as root, else prints the command and stops; Artillery 2.0.21
#     into bench/node_modules via npm, skipped with a note when that fails).
#   - Starts one target on CPU core 1 (nginx by default, or `cutover upstream`
#     with BENCH_TARGET=upstream) on a free 127.0.0.1 port, and runs every load
#     generator on core 0. All traffic goes to 127.0.0.1.
#   - Measurements (each repeated BENCH_REPEAT times, the median reported):
#       a. keep-alive req/s: wrk -t1 -c50 vs cutover (50 looping users),
#          wrk then cutover in each round
#       b. one connection per user: ab -c50 (no -k) req/s vs the highest
#          arrival rate cutover delivers within 1% and within duration + 1 s
#          (factors 1.0, 1.25, 1.5, ... of ab's req/s, then two halvings of
#          the gap between the last factor held and the first short)
#       c. arrivalRate 20000 for 60 s: delivered, elapsed, arrival lag p99 and
#          peak RSS against the bars (within 1%, lag p99 < 5 ms, RSS <= 64 MB);
#          each round first runs the same schedule with bench/floor.c (the
#          cheapest client we can write, built here with cc) as the peer
#       d. Artillery vs cutover on the (b) script at 1000 and 3000 arrivals/s
#       e. --workers 2 vs --workers 1: (a)'s keep-alive req/s, a generator-
#          bound keep-alive loop's req/s (bench/capture.yml: a templated
#          request, a JSON capture and two expectations per request, the two
#          worker counts in turn in each round) and (b)'s highest held arrival
#          rate, and their ratios. The generator gets cores 0 and 2
#          for --workers 2 (0 and 1, shared with the target, on a 2-core
#          machine, which results.md then says)
#   - Prints a summary table and writes it, with the exact commands, to
#     bench/out/results.md (logs of every run in bench/out/logs/).
#   - Everything it starts is stopped on exit (trap), every run has a timeout,
#     and ip_local_port_range and net.core.somaxconn, when widened (root
#     only), are restored.
#   - Exit status: 0 when all measurements ran (whatever the ratios; set
#     BENCH_STRICT=1 to also fail on a missed bar), 1 when something broke.
#
# Knobs (environment): CUTOVER (binary, default ./cutover), BENCH_TARGET
# (nginx|upstream), BENCH_REPEAT (3), BENCH_ONLY ("a b c d e"), BENCH_WORKERS
# (cutover --workers, 1), BENCH_QUICK=1 (short runs, to test this script),
# BENCH_NO_INSTALL=1, BENCH_STRICT=1, BENCH_PORT_RANGE ("10240 65535").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$BENCH/out
PY=/usr/bin/python3
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CUTOVER=${CUTOVER:-$ROOT/cutover}
TARGET_KIND=${BENCH_TARGET:-nginx}
REPEAT=${BENCH_REPEAT:-3}
ONLY=${BENCH_ONLY:-a b c d e}
WORKERS=${BENCH_WORKERS:-1}
QUICK=${BENCH_QUICK:-0}
WANT_RANGE=${BENCH_PORT_RANGE:-10240 65535}
ARTILLERY_VERSION=2.0.21
ARTILLERY=$BENCH/node_modules/.bin/artillery

# Durations and sizes (BENCH_QUICK shrinks them to check the script itself).
if [[ $QUICK == 1 ]]; then
    A_DUR=3; B_N=20000; B_DUR=2; C_RATE=20000; C_DUR=3; D_DUR=3
    REPEAT=${BENCH_REPEAT:-1}; BENCH_E_COUNT=${BENCH_E_COUNT:-500}
else
    A_DUR=5; B_N=100000; B_DUR=5; C_RATE=20000; C_DUR=60; D_DUR=20
fi
A_REPEAT=${BENCH_A_REPEAT:-$((REPEAT > 7 || QUICK == 1 ? REPEAT : 7))}  # (a)'s rounds: short and many, so drift cancels
D_RATES="1000 3000"
E_A_RPS=${BENCH_E_RPS:-50000}   # (e) without (a): keep-alive users loop for about A_DUR s at this rate
E_B_RATE=${BENCH_E_RATE:-5000}  # (e) without (b): where the arrival-rate search starts
E_G_COUNT=${BENCH_E_COUNT:-5000} # (e) generator-bound: requests per user (50 users) in bench/capture.yml
B_UP="1.0 1.25 1.5 1.75 2.0 2.5 3.0"
B_BISECT=${BENCH_B_BISECT:-2}  # (b): halvings between the last factor held and the first short
B_DOWN="0.75 0.5 0.25"
C_LAG_MS=5      # (c)'s bars: arrival lag p99 below this, peak RSS at most C_RSS_MB
C_RSS_MB=64
GEN_CPUS=0      # the generator's cores (taskset -c); (e) widens it for --workers 2

TMP=""
TARGET_PID=""
GEN_PID=""
SAVED_RANGE=""
SAVED_SOMAXCONN=""
POLICY_RC=""
ERRORS=0
MISSES=0
ROWS=()        # summary rows: "measurement|peer|peer result|cutover result|ratio|bar|verdict"

say() { printf 'bench: %s\n' "$*"; printf '%s\n' "$*" >>"${RUNLOG:-/dev/null}"; }
warn() { printf 'bench: warning: %s\n' "$*" >&2; printf 'warning: %s\n' "$*" >>"${RUNLOG:-/dev/null}"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local rc=$?
    set +e
    if [[ -n $GEN_PID ]]; then
        kill -TERM -- "-$GEN_PID" 2>/dev/null
        wait "$GEN_PID" 2>/dev/null
    fi
    stop_target
    if [[ -n $SAVED_RANGE ]]; then
        echo "$SAVED_RANGE" >/proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
            printf 'bench: restored net.ipv4.ip_local_port_range to %s\n' "$SAVED_RANGE"
    fi
    if [[ -n $SAVED_SOMAXCONN ]]; then
        echo "$SAVED_SOMAXCONN" >/proc/sys/net/core/somaxconn 2>/dev/null &&
            printf 'bench: restored net.core.somaxconn to %s\n' "$SAVED_SOMAXCONN"
    fi
    [[ -n $POLICY_RC ]] && rm -f "$POLICY_RC"
    if [[ -n $TMP && -d $TMP ]]; then
        mkdir -p "$OUT/logs" && cp -r "$TMP"/. "$OUT/logs/" 2>/dev/null
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- small helpers ---------------------------------------------------------
calc() { awk "BEGIN { printf \"%.${2:-2}f\", ($1) }"; }
# median of the non-empty arguments ("" when none)
median() {
    printf '%s\n' "$@" | awk 'NF' | sort -g |
        awk '{ a[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2];
                                  else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ge() { awk "BEGIN { exit !(($1) >= ($2)) }"; }
lt() { awk "BEGIN { exit !(($1) < ($2)) }"; }
mb() { [[ -n $1 ]] && calc "$1 / 1024" 0 || echo "?"; }

# target_ticks: CPU clock ticks used so far by the target and its children
# (nginx's worker); the target's CPU per user tells a round in which the
# machine ran slow (both cores) from one where only the generator did
target_ticks() { proc_ticks "$TARGET_PID"; }
# target_us_per N T0 T1: the target's CPU microseconds per user between two target_ticks
target_us_per() { calc "($3 - $2) * 1e6 / $(getconf CLK_TCK) / ($1 > 0 ? $1 : 1)" 1; }

cpu_snap() { awk '/^cpu[0-9]+ / { print $1, $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }
# cpu_busy BEFORE AFTER: "cpu0 99% cpu1 97%"
cpu_busy() {
    paste -d' ' "$1" "$2" | awk '{ b = $5 - $2; i = $6 - $3; t = b + i;
        printf "%s%s %d%%", (NR > 1 ? " " : ""), $1, (t > 0 ? 100 * b / t : 0) }'
}

# record_cmd KEY CMD...: remembers the first command line of each kind for results.md
record_cmd() {
    local key=$1; shift
    grep -q "^$key " "$TMP/commands.txt" 2>/dev/null && return 0
    local line
    line=$(printf '%q ' "$@")
    line=${line//"$TMP"/\$TMP}
    line=${line//"$ROOT"\//./}
    printf '%s %s\n' "$key" "$line" >>"$TMP/commands.txt"
}

# run_gen NAME TIMEOUT CMD...: runs a load generator on $GEN_CPUS (core 0) under
# /usr/bin/time, its output in $TMP/NAME.{out,err,time}. Sets RC, WALL (s),
# RSS_KB, CPU_S (the generator's user + system CPU seconds), CPU (busy % of
# each core during the run).
run_gen() {
    local name=$1 tmo=$2; shift 2
    local pfx=$TMP/$name t0 t1
    record_cmd "${name%_[0-9]*}" taskset -c "$GEN_CPUS" "$@"
    cpu_snap >"$pfx.cpu0"
    t0=$(date +%s%N)
    setsid -w taskset -c "$GEN_CPUS" /usr/bin/time -v -o "$pfx.time" \
        timeout --foreground -k 5 "$tmo" "$@" >"$pfx.out" 2>"$pfx.err" </dev/null &
    GEN_PID=$!
    RC=0
    wait "$GEN_PID" || RC=$?
    GEN_PID=""
    t1=$(date +%s%N)
    cpu_snap >"$pfx.cpu1"
    WALL=$(calc "($t1 - $t0) / 1e9" 3)
    RSS_KB=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$pfx.time" 2>/dev/null || true)
    CPU_S=$(awk -F': *' '/(User|System) time \(seconds\)/ { s += $2 } END { print s + 0 }' \
        "$pfx.time" 2>/dev/null || echo 0)
    CPU=$(cpu_busy "$pfx.cpu0" "$pfx.cpu1")
    if [[ $RC == 124 || $RC == 137 ]]; then
        warn "$name: timed out after ${tmo}s"
    fi
    return 0
}

# report_fields FILE: sets requests created completed failed span_s rt_p99
# lag_p99 lag_max errors from an Artillery-shaped report; 1 when unreadable
report_fields() {
    local f
    requests=0 created=0 completed=0 failed=0 span_s="" rt_p99="" lag_p99="" lag_max="" errors=""
    f=$("$PY" "$BENCH/fields.py" "$1" 2>>"$RUNLOG") || return 1
    eval "$f"
}

# gen_script TEMPLATE OUT KEY=VALUE...: copies a YAML template, replacing the
# number on each line marked "# @KEY"
gen_script() {
    local tpl=$1 out=$2; shift 2
    cp "$tpl" "$out"
    local kv
    for kv in "$@"; do
        sed -i -E "s/^( *(- )?[A-Za-z]+: *)[0-9.]+( *# @${kv%%=*})\$/\1${kv#*=}\3/" "$out"
        grep -Eq ": *${kv#*=} *# @${kv%%=*}\$" "$out" || die "gen_script: @${kv%%=*} not set in $tpl"
    done
}

# cutover_run NAME SCRIPT TIMEOUT [WORKERS]: one `cutover run` of SCRIPT
# against the target with --workers WORKERS (default BENCH_WORKERS); sets
# what run_gen and report_fields set; 1 (with a note) on failure
cutover_run() {
    local name=$1 script=$2 tmo=$3 workers=${4:-$WORKERS}
    requests=0 created=0 completed=0 failed=0 span_s="" rt_p99="" lag_p99="" lag_max="" errors=""
    run_gen "$name" "$tmo" "$CUTOVER" run "$script" -t "$TARGET_URL" -o "$TMP/$name.json" -q --workers "$workers"
    if [[ $RC != 0 ]] || ! report_fields "$TMP/$name.json"; then
        warn "$name: cutover run failed (exit $RC): $(tail -n 3 "$TMP/$name.err" | tr '\n' ' ')"
        return 1
    fi
}

row() { ROWS+=("$1"); }

# ---- 1. install ------------------------------------------------------------
install_tools() {
    local pkgs=()
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v ab >/dev/null || pkgs+=(apache2-utils)
    command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || pkgs+=(haproxy) # bench/serve.sh
    [[ $TARGET_KIND != nginx ]] || command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    [[ -x /usr/bin/time ]] || pkgs+=(time)
    command -v taskset >/dev/null || pkgs+=(util-linux)
    [[ -x $PY ]] || pkgs+=(python3)
    if ((${#pkgs[@]})); then
        if [[ ${BENCH_NO_INSTALL:-0} == 1 || $(id -u) != 0 ]]; then
            die "missing tools; install them with: sudo apt-get install -y ${pkgs[*]}"
        fi
        # Keep the nginx and haproxy packages from starting their system services.
        if [[ ( " ${pkgs[*]} " == *" nginx-light "* || " ${pkgs[*]} " == *" haproxy "* ) && ! -e /usr/sbin/policy-rc.d ]]; then
            POLICY_RC=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC" && chmod +x "$POLICY_RC"
        fi
        say "installing: ${pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >"$TMP/apt.log" 2>&1 || {
            apt-get update -q >>"$TMP/apt.log" 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >>"$TMP/apt.log" 2>&1
        } || die "apt-get install ${pkgs[*]} failed: $(tail -n 3 "$TMP/apt.log")"
        if [[ -n $POLICY_RC ]]; then rm -f "$POLICY_RC"; POLICY_RC=""; fi
    fi
    HAVE_ARTILLERY=0
    if [[ " $ONLY " == *" d "* ]]; then
        if [[ ! -x $ARTILLERY && ${BENCH_NO_INSTALL:-0} != 1 ]]; then
            if command -v npm >/dev/null; then
                say "installing Artillery $ARTILLERY_VERSION into bench/node_modules (npm)"
                timeout 600 npm install --prefix "$BENCH" --ignore-scripts --no-audit --no-fund \
                    "artillery@$ARTILLERY_VERSION" >"$TMP/npm.log" 2>&1 ||
                    warn "npm install artillery@$ARTILLERY_VERSION failed (measurement d skipped): $(tail -n 2 "$TMP/npm.log" | tr '\n' ' ')"
            else
                warn "npm not found: measurement d (Artillery) skipped (apt-get install npm)"
            fi
        fi
        if [[ -x $ARTILLERY ]]; then
            HAVE_ARTILLERY=1
            ART_VER=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
                "$BENCH/node_modules/artillery/package.json" 2>/dev/null || echo "?")
            [[ $ART_VER == "$ARTILLERY_VERSION" ]] || warn "Artillery in bench/node_modules is $ART_VER, not $ARTILLERY_VERSION"
        fi
    fi
}

# ---- ephemeral ports -------------------------------------------------------
widen_ports() {
    local f=/proc/sys/net/ipv4/ip_local_port_range cur lo hi
    cur=$(tr -s ' \t' ' ' <"$f")
    read -r lo hi <<<"$cur"
    PORT_NOTE="net.ipv4.tcp_tw_reuse=$(cat /proc/sys/net/ipv4/tcp_tw_reuse) (2 = reuse TIME_WAIT ports for loopback only), ip_local_port_range=$lo-$hi"
    read -r wlo whi <<<"$WANT_RANGE"
    if ((lo <= wlo && hi >= whi)); then return 0; fi
    if [[ $(id -u) == 0 ]] && echo "$WANT_RANGE" >"$f" 2>/dev/null; then
        SAVED_RANGE="$lo $hi"
        PORT_NOTE+=" widened to $wlo-$whi for the run (restored after)"
        say "widened net.ipv4.ip_local_port_range $lo-$hi -> $wlo-$whi (restored on exit)"
    else
        PORT_NOTE+=" (not widened: needs root; (c) may run out of ports)"
    fi
}

# The target's accept queue (nginx listen backlog=65535, `cutover upstream`
# asks for 65535 too) is capped by net.core.somaxconn: raised for the run,
# so a target that stalls for a moment under (c)'s 20,000 connections a
# second queues them instead of dropping handshakes (each drop costs its
# user a retransmission a second or more later).
widen_somaxconn() {
    local f=/proc/sys/net/core/somaxconn cur
    cur=$(cat "$f")
    SOMAXCONN_NOTE="net.core.somaxconn=$cur"
    ((cur >= 65535)) && return 0
    if [[ $(id -u) == 0 ]] && echo 65535 >"$f" 2>/dev/null; then
        SAVED_SOMAXCONN=$cur
        SOMAXCONN_NOTE+=" raised to 65535 for the run (restored after)"
        say "raised net.core.somaxconn $cur -> 65535 (restored on exit)"
    else
        SOMAXCONN_NOTE+=" (not raised: needs root; the target's accept queue is capped there)"
    fi
}

# ---- 2. target --------------------------------------------------------------
stop_target() {
    [[ -n $TARGET_PID ]] || return 0
    kill -TERM "$TARGET_PID" 2>/dev/null || true
    local i
    for i in $(seq 50); do
        kill -0 "$TARGET_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$TARGET_PID" 2>/dev/null || true
    wait "$TARGET_PID" 2>/dev/null || true
    TARGET_PID=""
}

start_target() {
    local try port dir i
    for try in 1 2 3 4 5; do
        port=$(free_port)
        if [[ $TARGET_KIND == nginx ]]; then
            dir=$TMP/nginx
            mkdir -p "$dir"
            write_nginx_conf "$dir" "$port"
            taskset -c 1 nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
                >"$dir/stdout.log" 2>&1 </dev/null &
            TARGET_PID=$!
            TARGET_DESC="nginx $(nginx -v 2>&1 | sed 's|.*/||') (nginx-light), 1 worker, pinned to core 1, GET / -> 200 with a 17-byte body, keep-alive, access_log off"
        else
            [[ -x $CUTOVER ]] || die "$CUTOVER not found: build it first (make cutover)"
            taskset -c 1 "$CUTOVER" upstream --listen "127.0.0.1:$port" --workers 1 \
                >"$TMP/upstream.log" 2>&1 </dev/null &
            TARGET_PID=$!
            TARGET_DESC="cutover upstream --workers 1, pinned to core 1"
        fi
        TARGET_URL="http://127.0.0.1:$port"
        for i in $(seq 50); do
            kill -0 "$TARGET_PID" 2>/dev/null || break
            if http_ok "$TARGET_URL/"; then
                say "target: $TARGET_DESC at $TARGET_URL (pid $TARGET_PID)"
                return 0
            fi
            sleep 0.1
        done
        warn "target did not come up on port $port (try $try): $(tail -n 2 "${dir:-$TMP}"/*.log 2>/dev/null | tr '\n' ' ')"
        stop_target
    done
    die "could not start the $TARGET_KIND target"
}

# ---- 3a. keep-alive -----------------------------------------------------------
# a_script COUNT: $TMP/keepalive.yml with 50 users looping COUNT (>= 1000) times
a_script() {
    A_COUNT=$1
    ((A_COUNT >= 1000)) || A_COUNT=1000
    gen_script "$BENCH/keepalive.yml" "$TMP/keepalive.yml" COUNT="$A_COUNT"
}

# ka_rps: after cutover_run, the run's req/s (KA_RPS) over KA_SECS, the
# report's counter span when it is plausible, else wall time (KA_BASIS says which)
ka_rps() {
    if [[ -n $span_s ]] && ge "$span_s" "$WALL * 0.5" && ge "$WALL + 0.5" "$span_s"; then
        KA_SECS=$span_s; KA_BASIS="counter span"
    else
        KA_SECS=$WALL; KA_BASIS="wall"
    fi
    KA_RPS=$(calc "$requests / $KA_SECS" 0)
}

# a_cutover_one PREFIX WORKERS I: run I of $TMP/keepalive.yml; sets A_ONE
# (its req/s, "" when it failed) and A_LAST_CPU
a_cutover_one() {
    local pfx=$1 workers=$2 i=$3 expect=$((A_COUNT * 50)) label="cutover"
    [[ $workers == "$WORKERS" ]] || label="cutover --workers $workers"
    A_ONE=""
    cutover_run "${pfx}_$i" "$TMP/keepalive.yml" $((A_DUR * 4 + 30)) "$workers" || return 0
    ka_rps
    ((requests == expect)) || warn "${pfx}_$i: $requests requests, expected $expect (errors: ${errors:-none})"
    A_ONE=$KA_RPS; A_LAST_CPU=$CPU
    say "  $label run $i: $requests requests in ${KA_SECS}s ($KA_BASIS; wall ${WALL}s) = $KA_RPS req/s, p99 ${rt_p99}ms, RSS $(mb "$RSS_KB") MB (cpu: $CPU)"
}

# a_cutover PREFIX WORKERS: REPEAT runs of $TMP/keepalive.yml; sets A_RPS (the
# median req/s, "" when every run failed) and A_LAST_CPU
a_cutover() {
    local i got=()
    A_LAST_CPU=""
    for i in $(seq "$REPEAT"); do
        a_cutover_one "$1" "$2" "$i"
        [[ -z $A_ONE ]] || got+=("$A_ONE")
    done
    A_RPS=$(median "${got[@]}")
}

measure_a() {
    say "(a) keep-alive: wrk -t1 -c50 -d${A_DUR}s vs cutover, 50 looping users, in turn in each round"
    local i v wrk=() cut=() pair=() cpu_w="" cpu_c=""
    A_LAST_CPU=""
    for i in $(seq "$A_REPEAT"); do
        run_gen "a_wrk_$i" $((A_DUR + 30)) wrk -t1 -c50 -d"${A_DUR}s" "$TARGET_URL/"
        v=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$TMP/a_wrk_$i.out")
        if [[ $RC != 0 || -z $v ]]; then
            warn "a_wrk_$i: wrk failed (exit $RC): $(tail -n 2 "$TMP/a_wrk_$i.err" "$TMP/a_wrk_$i.out" | tr '\n' ' ')"
            continue
        fi
        grep -qE 'Non-2xx|Socket errors' "$TMP/a_wrk_$i.out" &&
            warn "a_wrk_$i: $(grep -E 'Non-2xx|Socket errors' "$TMP/a_wrk_$i.out" | tr '\n' ' ')"
        wrk+=("$v"); cpu_w=$CPU
        say "  wrk run $i: $v req/s (cpu: $CPU)"
        # Each user loops so that a run lasts about A_DUR s at wrk's first rate;
        # cutover runs right after each wrk run, so both see the same minutes.
        [[ -n ${A_COUNT:-} ]] || a_script $((v * A_DUR / 50))
        a_cutover_one a_cut "$WORKERS" "$i"
        [[ -z $A_ONE ]] || { cut+=("$A_ONE"); pair+=("$(calc "$A_ONE / $v" 3)"); }
    done
    local wrk_rps
    wrk_rps=$(median "${wrk[@]}")
    if [[ -z $wrk_rps ]]; then
        ERRORS=$((ERRORS + 1)); row "a. keep-alive req/s|wrk|failed|not run|-|>= 1.0|ERROR"; return
    fi
    A_RPS=$(median "${cut[@]}")
    cpu_c=$A_LAST_CPU
    local cut_rps=$A_RPS ratio verdict
    if [[ -z $cut_rps ]]; then
        ERRORS=$((ERRORS + 1))
        row "a. keep-alive req/s (50 conns)|wrk -t1 -c50|$wrk_rps req/s|failed|-|>= 1.0|ERROR"; return
    fi
    # the verdict: the median of the per-round ratios (each cutover run
    # against the wrk run just before it); the ratio of the medians beside it
    ratio=$(calc "$(median "${pair[@]}")" 2)
    if ge "$ratio" 1.0; then verdict=PASS; else verdict=MISS; MISSES=$((MISSES + 1)); fi
    row "a. keep-alive req/s (50 conns)|wrk -t1 -c50 -d${A_DUR}s|$wrk_rps req/s ($(IFS=/; echo "${wrk[*]}"))|$cut_rps req/s ($(IFS=/; echo "${cut[*]}"))|$ratio per round ($(IFS=/; echo "${pair[*]}")); $(calc "$cut_rps / $wrk_rps" 2) of the medians|>= 1.0|$verdict"
    A_CPU="wrk: $cpu_w; cutover: $cpu_c"
    say "  => wrk $wrk_rps req/s, cutover $cut_rps req/s, ratio $ratio ($verdict)"
}

# ---- 3b. one connection per user ------------------------------------------------
# b_try RATE [WORKERS [PREFIX]]: majority of REPEAT runs at RATE deliver
# within 1% and in time. Sets B_LAST (median delivered per second of the
# passing runs).
b_try() {
    local rate=$1 workers=${2:-$WORKERS} pfx=${3:-b_cut} i pass=0 fail=0 need=$(((REPEAT + 1) / 2)) expect ok got=()
    expect=$((rate * B_DUR))
    gen_script "$BENCH/per-user.yml" "$TMP/b_$rate.yml" RATE="$rate" DURATION="$B_DUR"
    for i in $(seq "$REPEAT"); do
        ok=0
        if cutover_run "${pfx}_${rate}_$i" "$TMP/b_$rate.yml" $((B_DUR * 4 + 30)) "$workers"; then
            if ge "$completed" "$expect * 0.99" && ge "$expect * 1.01" "$completed" &&
                ((failed == 0)) && ge "$B_DUR + 1" "$WALL"; then
                ok=1; got+=("$(calc "$completed / $B_DUR" 0)")
            fi
        else
            ERRORS=$((ERRORS + 1))
        fi
        say "  cutover${2:+ --workers $workers} @${rate}/s run $i: $completed/$expect users completed, $failed failed, elapsed ${WALL}s, lag p99 ${lag_p99:-?}ms, RSS $(mb "$RSS_KB") MB, $([[ ${completed:-0} -gt 0 ]] && calc "$CPU_S * 1e6 / $completed" 1 || echo "?") us of CPU per user (cpu: $CPU)${errors:+, errors: $errors} -> $([[ $ok == 1 ]] && echo ok || echo short)"
        if [[ $ok == 1 ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
        ((pass >= need || fail >= need)) && break
        sleep 1
    done
    B_LAST=$(median "${got[@]}")
    ((pass >= need))
}

# b_search BASE BASENAME [WORKERS [PREFIX]]: the highest rate of BASE x B_UP
# held (going down B_DOWN when 1.0x fails), then B_BISECT halvings of the
# gap to the first factor that failed. Sets B_BEST ("" when none), B_BEST_F
# (its factor) and B_BEST_GOT (users completed per second).
b_search() {
    local base=$1 bname=$2 f rate short="" k
    B_BEST="" B_BEST_F="" B_BEST_GOT=""
    for f in $B_UP; do
        rate=$(calc "$base * $f" 0)
        say "  trying cutover${3:+ --workers $3} at ${f}x $bname = ${rate}/s"
        if b_try "$rate" "${@:3}"; then B_BEST=$rate; B_BEST_F=$f; B_BEST_GOT=$B_LAST; else short=$f; break; fi
    done
    if [[ -n $B_BEST && -n $short ]]; then
        for ((k = 0; k < B_BISECT; k++)); do
            f=$(calc "($B_BEST_F + $short) / 2" 4)
            rate=$(calc "$base * $f" 0)
            say "  trying cutover${3:+ --workers $3} at ${f}x $bname = ${rate}/s (between ${B_BEST_F}x held and ${short}x short)"
            if b_try "$rate" "${@:3}"; then B_BEST=$rate; B_BEST_F=$f; B_BEST_GOT=$B_LAST; else short=$f; fi
        done
    fi
    [[ -z $B_BEST ]] || return 0
    for f in $B_DOWN; do
        rate=$(calc "$base * $f" 0)
        say "  trying cutover${3:+ --workers $3} at ${f}x $bname = ${rate}/s"
        if b_try "$rate" "${@:3}"; then B_BEST=$rate; B_BEST_F=$f; B_BEST_GOT=$B_LAST; return 0; fi
    done
}

measure_b() {
    say "(b) one connection per user: ab -n $B_N -c 50 (no -k) vs cutover arrivalRate for ${B_DUR}s"
    local i v ab=()
    for i in $(seq "$REPEAT"); do
        run_gen "b_ab_$i" 300 ab -n "$B_N" -c 50 "$TARGET_URL/"
        v=$(awk '/^Requests per second:/ { printf "%d", $4 }' "$TMP/b_ab_$i.out")
        if [[ $RC != 0 || -z $v ]]; then
            warn "b_ab_$i: ab failed (exit $RC): $(tail -n 2 "$TMP/b_ab_$i.err" | tr '\n' ' ')"
            continue
        fi
        local bad
        bad=$(awk '/^Failed requests:/ { f = $3 } /^Non-2xx responses:/ { n = $3 } END { if (f + n) print f + n }' "$TMP/b_ab_$i.out")
        [[ -z $bad ]] || warn "b_ab_$i: $bad failed or non-2xx requests"
        ab+=("$v")
        say "  ab run $i: $v req/s, $(calc "$CPU_S * 1e6 / $B_N" 1) us of ab's CPU per request (cpu: $CPU)"
        sleep 1
    done
    local ab_rps
    ab_rps=$(median "${ab[@]}")
    if [[ -z $ab_rps ]]; then
        ERRORS=$((ERRORS + 1)); row "b. new connection per user|ab -c50|failed|not run|-|>= 1.0|ERROR"; return
    fi
    ab_rps=${ab_rps%.*}
    B_AB=$ab_rps
    b_search "$ab_rps" ab
    local best=$B_BEST best_f=$B_BEST_F best_got=$B_BEST_GOT ratio verdict
    [[ $WORKERS != 1 ]] || B_W1_BEST=$best
    if [[ -z $best ]]; then
        row "b. new connection per user|ab -n $B_N -c 50|$ab_rps req/s|< 0.25x ab|< 0.25|>= 1.0|MISS"
        MISSES=$((MISSES + 1)); return
    fi
    ratio=$(calc "$best / $ab_rps" 2)
    if ge "$ratio" 1.0; then verdict=PASS; else verdict=MISS; MISSES=$((MISSES + 1)); fi
    local note=""
    [[ $best_f == 3.0 ]] && note=" (highest rate tried)"
    row "b. new connection per user|ab -n $B_N -c 50|$ab_rps req/s|${best}/s arrivals held (${best_got}/s completed)$note|$ratio|>= 1.0|$verdict"
    say "  => ab $ab_rps req/s, cutover holds ${best}/s$note, ratio $ratio ($verdict)"
}

# ---- 3c. 20000 arrivals/s --------------------------------------------------------
# Handshakes the target's full accept queue dropped and SYNs retransmitted
# since drops_start: a run whose target dropped handshakes measured users
# waiting out retransmissions, which no generator can start on time.
# A counter the kernel does not show reads as "?", never as 0.
drops_start() { D_OVF=$(tcp_ext ListenOverflows); D_SYN=$(tcp_ext TCPSynRetrans); }
counter_since() { # NAME START
    local now
    now=$(tcp_ext "$1")
    if [[ $now =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]]; then echo $((now - $2)); else echo "?"; fi
}
drops_since() {
    echo "$(counter_since ListenOverflows "$D_OVF") handshakes dropped by the target's accept queue, $(counter_since TCPSynRetrans "$D_SYN") SYNs retransmitted"
}
measure_c() {
    local expect=$((C_RATE * C_DUR)) i cnt=() el=() lag=() rss=() errs=""
    local fl_lag=() fl_cpu=() fl_el=() fl_ok=() fl_line floor="" fc fe fl fcpu ffail t0 tcpu tg=() fl_tg=() g0 segs
    say "(c) arrivalRate $C_RATE for ${C_DUR}s: $expect users expected; $PORT_NOTE; ${SOMAXCONN_NOTE:-}"
    gen_script "$BENCH/per-user.yml" "$TMP/c.yml" RATE="$C_RATE" DURATION="$C_DUR"
    # the floor: bench/floor.c, the cheapest client of the same schedule
    # (6 system calls a user, nothing but the lag measured), run before
    # cutover in every round, so the machine's price of the bar is on record
    if cc -O2 -std=c17 -Wall -Wextra -o "$TMP/floor" "$BENCH/floor.c" 2>"$TMP/floor.cc.log"; then
        floor=$TMP/floor
    else
        warn "bench/floor.c did not build: $(head -n 3 "$TMP/floor.cc.log")"
    fi
    local host=${TARGET_URL#http://} port
    port=${host##*:}; host=${host%:*}
    for i in $(seq "$REPEAT"); do
        if [[ -n $floor ]]; then
            record_cmd c_floor taskset -c "$GEN_CPUS" "$floor" "$host" "$port" "$C_RATE" "$C_DUR"
            t0=$(target_ticks); g0=$(tcp_out_segs); drops_start
            if fl_line=$(timeout $((C_DUR * 3 + 30)) taskset -c "$GEN_CPUS" "$floor" "$host" "$port" "$C_RATE" "$C_DUR"); [[ -n $fl_line ]]; then
                read -r fc fe fl fcpu ffail < <($PY -c 'import json, sys
d = json.loads(sys.argv[1])
why = ", ".join("%d %s" % (d[k], k[7:]) for k in ("failed_start", "failed_eof", "failed_read", "failed_timeout") if d[k])
print(d["completed"], d["elapsed_s"], d["lag_p99_ms"], d["cpu_us_per_user"],
      "%d failed" % d["failed"] + (" (%s; last error: %s)" % (why, d["last_error"] or "-") if why else ""))' "$fl_line")
                fl_ok+=("$fc"); fl_el+=("$fe"); fl_lag+=("$fl"); fl_cpu+=("$fcpu")
                tcpu=$(target_us_per "$fc" "$t0" "$(target_ticks)"); fl_tg+=("$tcpu")
                segs=$(calc "($(tcp_out_segs) - $g0) / ($fc > 0 ? $fc : 1)" 2)
                say "  floor run $i: $fc/$expect completed, $ffail, elapsed ${fe}s, arrival lag p99 ${fl}ms, ${fcpu} us of CPU per user; target ${tcpu} us per user; ${segs} TCP segments per user; $(drops_since)"
            else
                warn "floor run $i gave no result"
            fi
            sleep 2
        fi
        t0=$(target_ticks); g0=$(tcp_out_segs); drops_start
        cutover_run "c_cut_$i" "$TMP/c.yml" $((C_DUR * 3 + 30)) || { ERRORS=$((ERRORS + 1)); continue; }
        tcpu=$(target_us_per "${completed:-0}" "$t0" "$(target_ticks)")
        segs=$(calc "($(tcp_out_segs) - $g0) / (${completed:-0} > 0 ? ${completed:-0} : 1)" 2)
        cnt+=("$completed"); el+=("$WALL"); lag+=("$lag_p99"); rss+=("$RSS_KB"); tg+=("$tcpu")
        [[ -z $errors ]] || errs+=" run $i: $errors;"
        say "  cutover run $i: $completed/$expect completed ($failed failed), elapsed ${WALL}s, arrival lag p99 ${lag_p99:-?}ms max ${lag_max:-?}ms, response p99 ${rt_p99}ms, RSS $(mb "$RSS_KB") MB, $([[ ${completed:-0} -gt 0 ]] && calc "$CPU_S * 1e6 / $completed" 1 || echo "?") us of CPU per user; target ${tcpu} us per user; ${segs} TCP segments per user; $(drops_since) (cpu: $CPU)${errors:+, errors: $errors}"
        sleep 2
    done
    if ((${#cnt[@]} == 0)); then
        row "c. arrivalRate $C_RATE x ${C_DUR}s|-|-|failed|-|within 1%|ERROR"; return
    fi
    local c e l r verdict missed=""
    c=$(median "${cnt[@]}"); e=$(median "${el[@]}"); l=$(median "${lag[@]}"); r=$(median "${rss[@]}")
    ge "$c" "$expect * 0.99" && ge "$expect * 1.01" "$c" || missed+=" delivered"
    ge "$C_DUR + 1" "$e" || missed+=" elapsed"
    [[ -n $l ]] && lt "$l" "$C_LAG_MS" || missed+=" lag"
    [[ -n $r ]] && ge "$C_RSS_MB * 1024" "$r" || missed+=" RSS"
    if [[ -z $missed ]]; then
        verdict=PASS
    else
        verdict="MISS:$missed"; MISSES=$((MISSES + 1))
    fi
    local peer="(expected $expect)" peer_res="-"
    if ((${#fl_lag[@]})); then
        peer="bench/floor.c (minimal epoll client)"
        peer_res="$(median "${fl_ok[@]}" | cut -d. -f1) delivered, elapsed $(median "${fl_el[@]}")s, lag p99 $(median "${fl_lag[@]}")ms, $(median "${fl_cpu[@]}") us CPU/user (lag runs: $(IFS=/; echo "${fl_lag[*]}")); target $(IFS=/; echo "${fl_tg[*]}") us CPU/user"
    fi
    row "c. arrivalRate $C_RATE x ${C_DUR}s|$peer|$peer_res|${c%.*} delivered ($(calc "100 * $c / $expect" 1)%), elapsed ${e}s, lag p99 ${l:-?}ms (runs: $(IFS=/; echo "${lag[*]}")), peak RSS $(mb "$r") MB; target $(IFS=/; echo "${tg[*]}") us CPU/user|-|within 1%, <= $((C_DUR + 1))s, lag p99 < ${C_LAG_MS}ms, RSS <= ${C_RSS_MB} MB|$verdict"
    C_ERRS=$errs
    [[ -z $errs ]] || say "  errors:$errs"
}

# ---- 3e. --workers 2 vs --workers 1 ----------------------------------------------
# The generator gets a second core for --workers 2: core 2 when there is one,
# else core 1, which the target also uses (E_NOTE says so in results.md).
measure_e() {
    local cpus2="0,2" a1 a2 b1 b1_got b2 b2_got ratio
    if (($(nproc) < 3)); then
        cpus2="0,1"
        E_NOTE="(e) ran --workers 2 on cores 0,1 on this $(nproc)-core machine: its second worker shares core 1 with the target, so the ratio understates the scaling"
        warn "$E_NOTE"
    else
        E_NOTE="(e): --workers 1 on core 0, --workers 2 on cores 0,2, the target on core 1"
    fi
    say "(e) --workers 2 vs --workers 1: keep-alive (a) and connection per user (b)"
    [[ -n ${A_COUNT:-} ]] || a_script $((E_A_RPS * A_DUR / 50))
    GEN_CPUS=0; a_cutover e_a_w1 1; a1=$A_RPS
    GEN_CPUS=$cpus2; a_cutover e_a_w2 2; a2=$A_RPS
    GEN_CPUS=0
    if [[ -n $a1 && -n $a2 ]]; then
        ratio=$(calc "$a2 / $a1" 2)
        row "e. keep-alive req/s, --workers 2 vs 1|cutover --workers 1|$a1 req/s|$a2 req/s (cores $cpus2)|$ratio|-|INFO"
        say "  => keep-alive: --workers 1 $a1 req/s, --workers 2 $a2 req/s, ratio $ratio"
    else
        ERRORS=$((ERRORS + 1)); row "e. keep-alive req/s, --workers 2 vs 1|cutover --workers 1|${a1:-failed}|${a2:-failed}|-|-|ERROR"
    fi
    # generator-bound: bench/capture.yml (a templated request, a JSON capture
    # and two expectations per request), --workers 1 and --workers 2 in turn in
    # every round, so a drift of the machine hits both alike
    local g1=() g2=() w i expect=$((E_G_COUNT * 50))
    gen_script "$BENCH/capture.yml" "$TMP/capture.yml" COUNT="$E_G_COUNT"
    for i in $(seq "$REPEAT"); do
        for w in 1 2; do
            GEN_CPUS=0; [[ $w == 1 ]] || GEN_CPUS=$cpus2
            cutover_run "e_g_w${w}_$i" "$TMP/capture.yml" $((A_DUR * 6 + 60)) "$w" || { ERRORS=$((ERRORS + 1)); continue; }
            ka_rps
            if ((requests != expect || failed != 0)) || [[ -n $errors ]]; then
                warn "e_g_w${w}_$i: $requests/$expect requests, $failed users failed (errors: ${errors:-none}): not counted"
                ERRORS=$((ERRORS + 1)); continue
            fi
            if [[ $w == 1 ]]; then g1+=("$KA_RPS"); else g2+=("$KA_RPS"); fi
            say "  generator-bound, --workers $w run $i: $requests requests in ${KA_SECS}s ($KA_BASIS) = $KA_RPS req/s, p99 ${rt_p99}ms, $(calc "$CPU_S * 1e6 / $requests" 1) us of CPU per request (cpu: $CPU)"
        done
    done
    GEN_CPUS=0
    a1=$(median "${g1[@]}"); a2=$(median "${g2[@]}")
    if [[ -n $a1 && -n $a2 ]]; then
        ratio=$(calc "$a2 / $a1" 2)
        row "e. generator-bound keep-alive req/s (bench/capture.yml), --workers 2 vs 1|cutover --workers 1|$a1 req/s ($(IFS=/; echo "${g1[*]}"))|$a2 req/s ($(IFS=/; echo "${g2[*]}"), cores $cpus2)|$ratio|-|INFO"
        say "  => generator-bound: --workers 1 $a1 req/s, --workers 2 $a2 req/s, ratio $ratio"
    else
        row "e. generator-bound keep-alive req/s, --workers 2 vs 1|cutover --workers 1|${a1:-failed}|${a2:-failed}|-|-|ERROR"
    fi
    # (b)'s search for each: from (b)'s result when it ran with --workers 1,
    # else from E_B_RATE; --workers 2 starts from --workers 1's rate
    local base=${E_B_RATE}
    [[ -n ${B_W1_BEST:-} ]] && base=$B_W1_BEST
    GEN_CPUS=0; b_search "$base" "${base}/s" 1 e_b_w1; b1=$B_BEST; b1_got=$B_BEST_GOT
    if [[ -z $b1 ]]; then
        GEN_CPUS=0
        row "e. connection per user, --workers 2 vs 1|cutover --workers 1|< $(calc "$base * 0.25" 0)/s|not run|-|-|INFO"; return
    fi
    GEN_CPUS=$cpus2; b_search "$b1" "--workers 1's rate" 2 e_b_w2; b2=$B_BEST; b2_got=$B_BEST_GOT
    GEN_CPUS=0
    if [[ -z $b2 ]]; then
        row "e. connection per user, --workers 2 vs 1|cutover --workers 1|${b1}/s held|< $(calc "$b1 * 0.25" 0)/s (cores $cpus2)|-|-|INFO"; return
    fi
    ratio=$(calc "$b2 / $b1" 2)
    local note=""
    [[ $B_BEST_F == "${B_UP##* }" ]] && note=" (highest rate tried)"
    row "e. connection per user, --workers 2 vs 1|cutover --workers 1|${b1}/s held (${b1_got}/s completed)|${b2}/s held (${b2_got}/s completed, cores $cpus2)$note|$ratio|-|INFO"
    say "  => connection per user: --workers 1 holds ${b1}/s, --workers 2 ${b2}/s$note, ratio $ratio"
}

# ---- 3d. Artillery ------------------------------------------------------------
measure_d() {
    if [[ $HAVE_ARTILLERY != 1 ]]; then
        row "d. Artillery $D_RATES/s|Artillery|not installed|-|-|-|SKIPPED"; return
    fi
    local rate i expect
    for rate in $D_RATES; do
        expect=$((rate * D_DUR))
        gen_script "$BENCH/per-user.yml" "$TMP/d_$rate.yml" RATE="$rate" DURATION="$D_DUR"
        say "(d) arrivalRate $rate for ${D_DUR}s ($expect users): Artillery $ART_VER vs cutover"
        local a_cnt=() a_el=() a_rss=() a_p99=() c_cnt=() c_el=() c_rss=() c_p99=()
        for i in $(seq "$REPEAT"); do
            run_gen "d_art_${rate}_$i" $((D_DUR * 6 + 60)) env ARTILLERY_DISABLE_TELEMETRY=true \
                NODE_OPTIONS="--require $BENCH/no-telemetry.js" \
                "$ARTILLERY" run -t "$TARGET_URL" -o "$TMP/d_art_${rate}_$i.json" -q "$TMP/d_$rate.yml"
            if [[ $RC != 0 ]] || ! report_fields "$TMP/d_art_${rate}_$i.json"; then
                warn "d_art_${rate}_$i: artillery failed (exit $RC): $(tail -n 3 "$TMP/d_art_${rate}_$i.err" | tr '\n' ' ')"
                ERRORS=$((ERRORS + 1)); continue
            fi
            a_cnt+=("$completed"); a_el+=("$WALL"); a_rss+=("$RSS_KB"); a_p99+=("$rt_p99")
            say "  artillery run $i: $completed/$expect completed ($created created, $failed failed), elapsed ${WALL}s (counter span ${span_s:-?}s), response p99 ${rt_p99}ms, RSS $(mb "$RSS_KB") MB (cpu: $CPU)${errors:+, errors: $errors}"
            cutover_run "d_cut_${rate}_$i" "$TMP/d_$rate.yml" $((D_DUR * 3 + 30)) || { ERRORS=$((ERRORS + 1)); continue; }
            c_cnt+=("$completed"); c_el+=("$WALL"); c_rss+=("$RSS_KB"); c_p99+=("$rt_p99")
            say "  cutover run $i: $completed/$expect completed ($failed failed), elapsed ${WALL}s, lag p99 ${lag_p99:-?}ms, response p99 ${rt_p99}ms, RSS $(mb "$RSS_KB") MB (cpu: $CPU)"
        done
        local ac ae ar ap cc ce cr cp
        ac=$(median "${a_cnt[@]}"); ae=$(median "${a_el[@]}"); ar=$(median "${a_rss[@]}"); ap=$(median "${a_p99[@]}")
        cc=$(median "${c_cnt[@]}"); ce=$(median "${c_el[@]}"); cr=$(median "${c_rss[@]}"); cp=$(median "${c_p99[@]}")
        local a_txt="failed" c_txt="failed" ratio="-"
        [[ -z $ac ]] || a_txt="${ac%.*}/$expect delivered, elapsed ${ae}s, p99 ${ap}ms, RSS $(mb "$ar") MB"
        [[ -z $cc ]] || c_txt="${cc%.*}/$expect delivered, elapsed ${ce}s, p99 ${cp}ms, RSS $(mb "$cr") MB"
        [[ -z $ac || -z $cc || $ac == 0 ]] || ratio="$(calc "$cc / $ac" 2) delivered, $(calc "$ar / $cr" 1)x less RSS"
        row "d. arrivalRate $rate x ${D_DUR}s|Artillery $ART_VER|$a_txt|$c_txt|$ratio|-|INFO"
    done
}

# ---- 4. summary -----------------------------------------------------------------
write_results() {
    local md=$OUT/results.md r
    local table
    table=$(
        echo "| measurement | peer | peer result | cutover result | ratio | bar | verdict |"
        echo "|---|---|---|---|---|---|---|"
        for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
    )
    echo
    echo "$table"
    echo
    {
        echo "# cutover benchmarks"
        echo
        echo "Generated by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')."
        echo "Each number is the median of $REPEAT runs. Load generators run on core 0 (\`taskset -c 0\`; (e)'s --workers 2 on two cores),"
        echo "the target on core 1 (\`taskset -c 1\`); all traffic goes to 127.0.0.1."
        echo
        echo "$table"
        echo
        echo "## Machine and tools"
        echo
        echo "- CPU: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; kernel $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
        echo "- cutover: $("$CUTOVER" --version 2>/dev/null | head -n 1 || echo "?") ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no git")), \`--workers $WORKERS\`"
        echo "- wrk $(dpkg-query -W -f '${Version}' wrk 2>/dev/null), ab (apache2-utils $(dpkg-query -W -f '${Version}' apache2-utils 2>/dev/null)), Artillery ${ART_VER:-not installed} (node $(node --version 2>/dev/null || echo "-"))"
        echo "- target: $TARGET_DESC"
        echo "- ports: $PORT_NOTE"
        echo "- accept queue: ${SOMAXCONN_NOTE:-}"
        [[ -z ${A_CPU:-} ]] || echo "- CPU busy during (a), last run: $A_CPU (the target core also near 100% means the target, not only the generator, limits (a))"
        [[ -z ${C_ERRS:-} ]] || echo "- errors in (c):$C_ERRS"
        [[ -z ${E_NOTE:-} ]] || echo "- cores: $E_NOTE"
        echo
        echo "## How each number is measured"
        echo
        echo "- a: req/s = http.requests / the report's firstCounterAt..lastCounterAt span (wall time if that span is implausible); $A_REPEAT rounds, each running wrk for ${A_DUR} s, then cutover for about as long, so both see the same minutes of this machine; ratio = the median of the per-round ratios (cutover / the wrk run just before it), with the ratio of the medians beside it; bar: ratio >= 1.0 (issue 6)."
        echo "- b: ab's req/s, then cutover at 1.0x, 1.25x, 1.5x, 1.75x, 2x, 2.5x, 3x of it (lower if 1.0x fails) for ${B_DUR}s each; a rate holds when most runs complete rate x duration users within 1%, none failed, in at most duration + 1 s; ratio = highest held rate / ab's req/s; bar >= 1.0."
        echo "- c: vusers.completed vs rate x duration (bar: within 1%), wall time of the whole \`cutover run\` (bar: <= duration + 1 s), summaries[\"cutover.arrival_lag\"].p99 (bar: < ${C_LAG_MS} ms), peak RSS from \`/usr/bin/time -v\` (bar: <= ${C_RSS_MB} MB); MISS names the bars missed. \"target ... us CPU/user\" is the target's own CPU (utime + stime of nginx's processes) per user during each run: the work it does per connection is fixed, so a higher figure marks minutes in which the whole machine ran slower."
        echo "- d: the same script as (b) through Artillery and cutover; elapsed is the whole process's wall time."
        echo "- e: (a)'s cutover runs (same script) and (b)'s rate search, once with \`--workers 1\` on core 0 and once with \`--workers 2\` on two cores (0,2; 0,1 on a 2-core machine); the search for --workers 2 starts at --workers 1's held rate (1.0x, 1.25x, ... 3x of it); and bench/capture.yml (50 users looping a GET of /api/mocs with a templated URL and header, a JSON capture and two expectations: the generator, not the target, is the limit), --workers 1 then --workers 2 in each round, req/s as in (a), a run counted only when every request was made and no user failed; ratio = workers 2 / workers 1. Informational, no bar."
        echo
        echo "## Commands"
        echo
        echo "Target (nginx) config, where used: \`nginx -p \$TMP/nginx -c \$TMP/nginx/nginx.conf\` pinned with \`taskset -c 1\`:"
        echo
        echo '```nginx'
        [[ -f $TMP/nginx/nginx.conf ]] && sed -e "s|$TMP|\$TMP|g" "$TMP/nginx/nginx.conf"
        echo '```'
        echo
        echo "Load generators (first run of each kind; \$TMP is the run's temp dir, the scripts are bench/keepalive.yml,"
        echo "bench/per-user.yml and bench/capture.yml with the marked numbers replaced):"
        echo
        echo '```sh'
        [[ -f $TMP/commands.txt ]] && cut -d' ' -f2- "$TMP/commands.txt"
        echo '```'
        echo
        echo "## Every run"
        echo
        echo '```'
        cat "$RUNLOG"
        echo '```'
    } >"$md"
    say "wrote $md"
}

main() {
    [[ -x $PY ]] || die "$PY not found (apt-get install python3)"
    mkdir -p "$OUT"
    TMP=$(mktemp -d /tmp/cutover-bench.XXXXXX)
    rm -rf "$OUT/logs"
    RUNLOG=$TMP/runs.log
    : >"$RUNLOG"
    install_tools
    [[ -x $CUTOVER ]] || die "$CUTOVER not found: build it first (make cutover)"
    widen_ports
    widen_somaxconn
    start_target
    # warm the target up
    timeout 10 taskset -c 0 wrk -t1 -c10 -d1s "$TARGET_URL/" >/dev/null 2>&1 || true
    local m
    for m in $ONLY; do
        case $m in
            a) measure_a ;;
            b) measure_b ;;
            c) measure_c ;;
            d) measure_d ;;
            e) measure_e ;;
            *) die "unknown measurement '$m' in BENCH_ONLY (a b c d e)" ;;
        esac
    done
    stop_target
    write_results
    if ((ERRORS)); then
        say "$ERRORS run(s) failed: see the warnings above and bench/out/logs/"
        exit 1
    fi
    if ((MISSES)) && [[ ${BENCH_STRICT:-0} == 1 ]]; then
        say "$MISSES bar(s) missed (BENCH_STRICT=1)"
        exit 1
    fi
}

main "$@"
