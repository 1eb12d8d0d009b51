"""`cutover serve` proxying details: retries on connect failure (and not
when disabled), the connection-pool limit queueing instead of failing, TLS
termination and https upstreams, keep-alive reuse of upstream connections,
pipelined requests forwarded without delay."""
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import start_upstream, stop
from serve_util import start_router, upstreams_yaml, write_config


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def blue(tmp_path):
    b = start_upstream(tmp_path, "--color", "blue", name="blue")
    yield b
    stop(b.proc)


@pytest.mark.parametrize("retry", [True, False])
def test_connect_failure_retried_on_other_colour(tmp_path, blue, retry):
    dead = f"http://127.0.0.1:{free_port()}"
    extra = "    health: { eject_after: 0 }\n"
    cfg = write_config(tmp_path, f"weight: 100\nretry: {'true' if retry else 'false'}\n" +
                       upstreams_yaml([blue.url], [dead], health=False, extra=extra))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        for _ in range(5):
            st, color, _ = r.get("/health", conn=c)
            assert (st, color) == ((200, "blue") if retry else (502, "green"))
        # a POST that never reached any upstream is retried too
        c.request("POST", "/echo", body=b"payload")
        resp = c.getresponse()
        body = resp.read()
        if retry:
            assert resp.status == 200 and json.loads(body)["body"] == "payload"
        else:
            assert resp.status == 502
        c.close()
        st = r.status()["windows"]["1m"]
        assert st["green"]["transport_errors"] == 6
        assert st["blue"]["requests"] == (6 if retry else 0)
    finally:
        assert r.stop() == 0, r.log()


def test_pool_limit_queues(tmp_path, blue):
    extra = "    pool: { max_conns: 1, max_idle: 1 }\n"
    cfg = write_config(tmp_path, "weight: 0\ntimeouts: { connect: 5s }\n" +
                       upstreams_yaml([blue.url], [blue.url], health=False, extra=extra))
    r = start_router(tmp_path, cfg)
    out = []

    def one():
        out.append(r.get("/delay/200")[0])

    try:
        t0 = time.time()
        ts = [threading.Thread(target=one) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        took = time.time() - t0
        assert out == [200] * 4
        assert took >= 0.75, f"4 x 200 ms over one upstream connection took {took:.2f}s"
        srv = r.status()["upstreams"]["blue"]["servers"][0]
        assert srv["connections"] == 1 and srv["idle"] == 1
    finally:
        assert r.stop() == 0, r.log()


def test_upstream_connections_are_reused(tmp_path, blue):
    cfg = write_config(tmp_path, "weight: 0\n" +
                       upstreams_yaml([blue.url], [blue.url], health=False))
    r = start_router(tmp_path, cfg)
    try:
        for _ in range(20):   # a new client connection each time
            assert r.get("/health")[0] == 200
        srv = r.status()["upstreams"]["blue"]["servers"][0]
        assert srv["connections"] == 1, srv
    finally:
        assert r.stop() == 0, r.log()


def test_pipelined_requests_do_not_wait_for_a_timer(tmp_path, blue):
    """A request that waited behind another on its connection is forwarded
    from a timer callback (the pipelined bytes are parsed from the loop),
    and its gathered write still goes out in that loop turn: 20 pipelined
    GETs take milliseconds, not a poll that sleeps until the router's next
    one-second tick for each of them."""
    from serve_util import pipelined_colors
    cfg = write_config(tmp_path, "weight: 0\n" +
                       upstreams_yaml([blue.url], [blue.url], health=False))
    r = start_router(tmp_path, cfg)
    try:
        t0 = time.monotonic()
        assert pipelined_colors(r.port, 20, path="/health", batch=20) == ["blue"] * 20
        took = time.monotonic() - t0
        assert took < 3, f"20 pipelined GETs took {took:.1f} s"
    finally:
        assert r.stop() == 0, r.log()


def test_tls_termination_and_https_upstream(tmp_path):
    """Two listeners, plain and TLS, in front of an https upstream."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    up = start_upstream(tmp_path, "--color", "green", "--tls-cert", str(cert),
                        "--tls-key", str(key), name="tlsup")
    extra = "    tls: { ca: cert.pem }\n"
    cfg = write_config(tmp_path, "weight: 100\n" +
                       upstreams_yaml([up.url], [up.url], health=True, extra=extra),
                       listen="[ 127.0.0.1:0, { address: 127.0.0.1:0, "
                              "tls: { cert: cert.pem, key: key.pem } } ]")
    r = start_router(tmp_path, cfg)
    try:
        assert len(r.ports) == 2
        plain = r.conn()
        plain.request("GET", "/echo")
        resp = plain.getresponse()
        assert ["X-Forwarded-Proto", "http"] in json.loads(resp.read())["headers"]
        plain.close()
        ctx = ssl.create_default_context(cafile=str(cert))
        c = http.client.HTTPSConnection("127.0.0.1", r.ports[1], context=ctx, timeout=10)
        for _ in range(3):
            c.request("GET", "/echo")
            resp = c.getresponse()
            body = json.loads(resp.read())
            assert resp.status == 200 and resp.getheader("X-Cutover-Color") == "green"
            assert ["X-Forwarded-Proto", "https"] in body["headers"]
            assert body["tls"] is True          # the upstream leg is TLS too
        c.close()
        assert r.status()["upstreams"]["green"]["healthy"] == 1
    finally:
        assert r.stop() == 0, r.log()
        stop(up.proc)


def test_early_answer_is_readable_before_the_body_ends(tmp_path):
    """An upstream that answers 413 right after the head (and then drains
    the body, as a careful server does): the router forwards the 413 at once
    and reads the rest of the client's body rather than resetting the
    client, which therefore gets to read the 413."""
    import socketserver

    class Early(socketserver.StreamRequestHandler):
        def handle(self):
            clen = 0
            self.rfile.readline()
            while True:
                h = self.rfile.readline()
                if h in (b"\r\n", b""):
                    break
                if h.lower().startswith(b"content-length:"):
                    clen = int(h.split(b":")[1])
            self.wfile.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n"
                             b"Connection: close\r\n\r\nbig")
            self.wfile.flush()
            while clen > 0:
                d = self.rfile.read(min(clen, 1 << 20))
                if not d:
                    break
                clen -= len(d)

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Early)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    cfg = write_config(tmp_path, "weight: 0\n" + upstreams_yaml([url], [url], health=False))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn(timeout=30)
        c.request("POST", "/up", body=b"q" * (32 << 20))
        resp = c.getresponse()
        assert resp.status == 413 and resp.read() == b"big"
        c.close()
    finally:
        assert r.stop() == 0, r.log()
        srv.shutdown()
        srv.server_close()


def test_passive_ejection_on_connect_failures(tmp_path, blue):
    dead = f"http://127.0.0.1:{free_port()}"
    extra = "    health: { eject_after: 2, eject_time: 30s }\n"
    cfg = write_config(tmp_path, "weight: 100\n" +
                       upstreams_yaml([blue.url], [dead], health=False, extra=extra))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        for _ in range(10):
            assert r.get("/health", conn=c)[:2] == (200, "blue")
        c.close()
        st = r.status()
        assert st["upstreams"]["green"]["servers"][0]["ejected"] is True
        assert st["effective_weights"]["green"] == 0.0
        # two connect failures (each retried on blue), then straight to blue
        assert st["windows"]["1m"]["green"]["transport_errors"] == 2
        m = r.admin("GET", "/metrics", token=None)[1].decode()
        assert 'cutover_retries_total{color="blue"} 2' in m
        assert 'cutover_server_up{color="green",server="%s"} 0' % dead in m
    finally:
        assert r.stop() == 0, r.log()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("busy_poll", ["50us", "1ms"])
def test_busy_poll_stops_when_traffic_stops(tmp_path, blue, busy_poll):
    """After a burst of requests the router polls without blocking for at most
    busy_poll, then sleeps: an idle router uses no CPU."""
    cfg = write_config(tmp_path, f"weight: 0\nbusy_poll: {busy_poll}\n" +
                       upstreams_yaml([blue.url], [blue.url], health=False))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        for _ in range(300):
            assert r.get("/health", conn=c)[0] == 200
        time.sleep(0.3)
        before = cpu_seconds(r.proc.pid)
        time.sleep(1.5)
        used = cpu_seconds(r.proc.pid) - before
        assert used < 0.15, f"the idle router used {used:.2f} s of CPU in 1.5 s"
        assert r.get("/health", conn=c)[0] == 200   # and it still answers
        c.close()
    finally:
        assert r.stop() == 0, r.log()


def voluntary_switches(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


@pytest.mark.parametrize("busy_poll", ["1ms", "false"])
def test_busy_poll_keeps_the_router_awake_between_requests(tmp_path, blue, busy_poll):
    """With busy_poll the router does not sleep between requests that follow
    each other within it; without it, it sleeps about twice a request (waiting
    for the upstream, then for the client)."""
    cfg = write_config(tmp_path, f"weight: 0\nbusy_poll: {busy_poll}\n" +
                       upstreams_yaml([blue.url], [blue.url], health=False))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        assert r.get("/health", conn=c)[0] == 200
        before = voluntary_switches(r.proc.pid)
        for _ in range(300):
            assert r.get("/health", conn=c)[0] == 200
        n = voluntary_switches(r.proc.pid) - before
        c.close()
        if busy_poll == "false":
            assert n > 300, n
        else:
            assert n < 150, n
    finally:
        assert r.stop() == 0, r.log()
