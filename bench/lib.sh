# bench/lib.sh: helpers the bench scripts share (sourced; needs $PY, the
# Debian python3, set first).

# free_port: a free TCP port on 127.0.0.1 (bound once and released)
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_ok URL: 0 when GET URL answers 200 within 1 s
http_ok() {
    "$PY" - "$1" <<'PYEOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
    r.read()
    sys.exit(0 if r.status == 200 else 1)
PYEOF
}

# ctx_switches PID...: voluntary + involuntary context switches so far of
# every thread of the given processes (0 for a process that is gone)
ctx_switches() {
    local p t=0 v
    for p in "$@"; do
        v=$(cat /proc/"$p"/task/*/status 2>/dev/null |
            awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }')
        t=$((t + v))
    done
    echo "$t"
}

# tcp_out_segs: TCP segments this machine has sent so far (/proc/net/snmp
# Tcp OutSegs); on loopback every segment is also received once
tcp_out_segs() {
    awk '/^Tcp:/ { n++; if (n == 2) for (i = 2; i <= NF; i++) if (h[i] == "OutSegs") print $i;
                   if (n == 1) for (i = 2; i <= NF; i++) h[i] = $i }' /proc/net/snmp
}
