#!/usr/bin/env python3
"""bench/idle_conns.py PORT N PID [PID...]: opens N keep-alive client
connections to 127.0.0.1:PORT, sends one GET / on each and reads its answer,
keeps them all open and idle, then prints the resident memory (VmRSS, KiB) of
each PID before and with the N idle connections, as one JSON line:
  {"conns": N, "open": K, "rss_before_kb": [...], "rss_idle_kb": [...]}
For a router with several processes (nginx master + worker), pass them all;
the figure to compare is the sum. Loopback only; closes everything at exit."""
import json
import resource
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    pids = [int(p) for p in sys.argv[3:]]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, n + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    before = [rss_kb(p) for p in pids]
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    conns = []
    drained = 0
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(req)
            conns.append(s)
        except OSError as e:
            print(f"idle_conns: connection {i}: {e}", file=sys.stderr)
            break
        if len(conns) - drained >= 500:   # read answers in batches of 500
            drain(conns[drained:])
            drained = len(conns)
    drain(conns[drained:])
    time.sleep(1.0)  # let the server settle (buffers released after the answers)
    alive = sum(1 for s in conns if still_open(s))
    idle = [rss_kb(p) for p in pids]
    print(json.dumps({"conns": n, "open": alive, "rss_before_kb": before, "rss_idle_kb": idle}))
    for s in conns:
        s.close()


def drain(socks):
    """Reads each answer head and body (Content-Length) so the connection is idle."""
    for s in socks:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        clen = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v.strip())
        while len(body) < clen:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk


def still_open(s):
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


if __name__ == "__main__":
    main()
