"""`cutover serve` under mixed, partly hostile traffic for a few seconds:
keep-alive GETs, POSTs with Content-Length and chunked bodies, pipelined
bursts, clients that vanish mid-request or mid-response, slow upstream
answers; meanwhile weights change and the config reloads. The router must
answer every complete request, and exit 0 (under ASan: no leak, no
use-after-free) after SIGTERM."""
import random
import signal
import socket
import threading
import time

from conftest import start_upstream, stop
from serve_util import start_router, upstreams_yaml, wait_for, write_config


def test_mixed_traffic_soak(tmp_path):
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    green = start_upstream(tmp_path, "--color", "green", "--latency", "uniform:0ms-3ms",
                           name="green")
    extra = "    pool: { max_conns: 8, max_idle: 4 }\n"
    cfg = write_config(tmp_path, "weight: 50\nsticky: { header: X-User }\n" +
                       upstreams_yaml([blue.url], [green.url], extra=extra))
    r = start_router(tmp_path, cfg)
    stop_at = time.time() + 5
    errors = []
    done = [0]
    lock = threading.Lock()

    def ok(n=1):
        with lock:
            done[0] += n

    def worker(seed):
        rnd = random.Random(seed)
        while time.time() < stop_at:
            kind = rnd.randrange(8)
            try:
                if kind == 0:      # keep-alive GETs, sticky or not
                    c = r.conn()
                    for i in range(rnd.randrange(1, 20)):
                        h = {"X-User": f"u{rnd.randrange(100)}"} if i % 2 else {}
                        st, _, _ = r.get(rnd.choice(["/health", "/api/mocs", "/bytes/70000"]),
                                         headers=h, conn=c)
                        assert st == 200, st
                        ok()
                    c.close()
                elif kind == 1:    # POST, Content-Length
                    c = r.conn()
                    body = b"x" * rnd.randrange(0, 200000)
                    c.request("POST", "/echo", body=body)
                    resp = c.getresponse()
                    assert resp.status == 200 and str(len(body)).encode() in resp.read()
                    ok()
                    c.close()
                elif kind == 2:    # chunked upload
                    c = r.conn()
                    c.putrequest("POST", "/echo")
                    c.putheader("Transfer-Encoding", "chunked")
                    c.endheaders()
                    n = 0
                    for _ in range(rnd.randrange(1, 10)):
                        part = b"y" * rnd.randrange(1, 5000)
                        n += len(part)
                        c.send(b"%x\r\n%s\r\n" % (len(part), part))
                    c.send(b"0\r\n\r\n")
                    resp = c.getresponse()
                    assert resp.status == 200 and f'"body_length":{n}'.encode() in resp.read()
                    ok()
                    c.close()
                elif kind == 3:    # pipelined burst
                    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
                    k = rnd.randrange(2, 30)
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * (k - 1) +
                              b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    out = b""
                    while True:
                        d = s.recv(65536)
                        if not d:
                            break
                        out += d
                    s.close()
                    assert out.count(b"HTTP/1.1 200 ") == k, (k, out.count(b"HTTP/1.1 200 "))
                    ok(k)
                elif kind == 4:    # vanish mid-request body
                    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
                    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                              + b"z" * rnd.randrange(0, 50000))
                    s.close()
                elif kind >= 6:    # a mutated request: whatever the bytes, an answer or a close
                    base = bytearray(rnd.choice([
                        b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n",
                        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n0\r\n\r\n",
                        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"]))
                    for _ in range(rnd.randrange(1, 4)):
                        base[rnd.randrange(len(base))] = rnd.randrange(256)
                    s = socket.create_connection(("127.0.0.1", r.port), timeout=3)
                    s.sendall(bytes(base) + b"GET /health HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n")
                    try:
                        while s.recv(65536):
                            pass
                    except (socket.timeout, ConnectionResetError):
                        pass
                    s.close()
                else:              # vanish mid-response
                    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
                    s.sendall(b"GET /bytes/5000000 HTTP/1.1\r\nHost: x\r\n\r\n")
                    s.recv(rnd.randrange(1, 100000))
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    s.close()
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append((kind, repr(e)))

    def churn():
        k = 0
        while time.time() < stop_at:
            r.set_weight(random.choice([0, 10, 50, 90, 100]))
            if k % 5 == 0:
                r.proc.send_signal(signal.SIGHUP)
            k += 1
            time.sleep(0.2)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    ts.append(threading.Thread(target=churn))
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert errors == [], errors[:5]
        assert done[0] > 200, done[0]
        assert r.proc.poll() is None
        assert r.get("/health")[0] == 200
        # nothing is left behind by the clients that vanished
        assert wait_for(lambda: r.status()["connections"] == 0, timeout=5), r.status()
        for color in ("blue", "green"):
            srv = r.status()["upstreams"][color]["servers"][0]
            assert srv["connections"] == srv["idle"], srv
    finally:
        assert r.stop() == 0, r.log()[-3000:]
        assert "drain deadline" not in r.log()
        stop(blue.proc)
        stop(green.proc)
