"""`cutover serve` against misbehaving upstreams (a small Python server):
502/503 on idempotent requests retried once on the other colour, not on
POST; garbage answers give 502, silence gives 504 after the response
timeout; all of it counted per colour."""
import socketserver
import threading
import time

import pytest

from conftest import start_upstream, stop
from serve_util import start_router, upstreams_yaml, write_config


class Bad(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class BadHandler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline()
            if not line:
                return
            target = line.split()[1].decode()
            clen = 0
            while True:
                h = self.rfile.readline()
                if h in (b"\r\n", b""):
                    break
                if h.lower().startswith(b"content-length:"):
                    clen = int(h.split(b":")[1])
            self.rfile.read(clen)
            if target.startswith("/garbage"):
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nBad Header\r\n\r\nhello")
                return
            if target.startswith("/hang"):
                time.sleep(3)
                return
            if target.startswith("/short"):
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-a-bit")
                return
            self.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")


@pytest.fixture
def setup(tmp_path):
    bad = Bad(("127.0.0.1", 0), BadHandler)
    threading.Thread(target=bad.serve_forever, daemon=True).start()
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    bad_url = f"http://127.0.0.1:{bad.server_address[1]}"
    extra = "    health: { eject_after: 0 }\n"
    cfg = write_config(tmp_path, "weight: 100\ntimeouts: { response: 1s }\n" +
                       upstreams_yaml([blue.url], [bad_url], health=False, extra=extra))
    r = start_router(tmp_path, cfg)
    yield r
    assert r.stop() == 0, r.log()
    stop(blue.proc)
    bad.shutdown()
    bad.server_close()


def test_503_retried_for_get_not_for_post(setup):
    r = setup
    c = r.conn()
    for _ in range(3):
        st, color, body = r.get("/api/mocs", conn=c)
        assert (st, color) == (200, "blue"), (st, color, body)
    c.request("POST", "/echo", body=b"x")
    resp = c.getresponse()
    assert resp.status == 503 and resp.read() == b"busy"
    assert resp.getheader("X-Cutover-Color") == "green"
    c.close()
    w = r.status()["windows"]["1m"]
    assert w["green"]["codes"]["5xx"] == 4 and w["blue"]["codes"]["2xx"] == 3


def test_garbage_gives_502_and_silence_504(setup):
    r = setup
    # the retry on blue answers these GETs; with a POST the failure shows
    for path, want in (("/garbage", 502), ("/hang", 504), ("/short", None)):
        c = r.conn()
        c.request("POST", path, body=b"x")
        if want is None:
            # a response cut short after its head: the client sees the cut
            resp = c.getresponse()
            assert resp.status == 200
            with pytest.raises(Exception):
                resp.read()
        else:
            t0 = time.time()
            resp = c.getresponse()
            assert resp.status == want, (path, resp.status)
            resp.read()
            if want == 504:
                assert 0.8 < time.time() - t0 < 2.5
        c.close()
    st, color, _ = r.get("/garbage")
    assert (st, color) == (404, "blue")   # retried: blue's own answer (it has no /garbage)
    w = r.status()["windows"]["1m"]["green"]
    assert w["transport_errors"] >= 4, w
    m = r.admin("GET", "/metrics", token=None)[1].decode()
    assert 'cutover_retries_total{color="blue"} 1' in m


class OneShotHandler(socketserver.StreamRequestHandler):
    """Answers the first request of each connection (keep-alive, as far as
    the client can tell) and closes without a word at the second: the race
    of a server closing an idle connection just as it is reused."""

    def handle(self):
        n = 0
        while True:
            line = self.rfile.readline()
            if not line:
                return
            clen = 0
            while True:
                h = self.rfile.readline()
                if h in (b"\r\n", b""):
                    break
                if h.lower().startswith(b"content-length:"):
                    clen = int(h.split(b":")[1])
            self.rfile.read(clen)
            n += 1
            if n == 2:
                return
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            self.wfile.flush()


def test_stale_keepalive_connection_retried_fresh(tmp_path):
    srv = Bad(("127.0.0.1", 0), OneShotHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    extra = "    health: { eject_after: 0 }\n"
    cfg = write_config(tmp_path, "weight: 0\nretry: true\n" +
                       upstreams_yaml([url], [url], health=False, extra=extra))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        for _ in range(6):   # every second one meets a dead pooled connection
            st, color, body = r.get("/x", conn=c)
            assert (st, body) == (200, b"ok")
            assert color == "blue"      # a fresh connection to the same server, not green
        # a POST meeting the dead pooled connection was sent: it is not replayed
        c.request("POST", "/x", body=b"p")
        resp = c.getresponse()
        resp.read()
        assert resp.status == 502
        c.close()
        m = r.admin("GET", "/metrics", token=None)[1].decode()
        assert 'cutover_retries_total{color="green"} 0' in m
    finally:
        assert r.stop() == 0, r.log()
        srv.shutdown()
        srv.server_close()
