"""`cutover serve`: Upgrade (WebSocket) requests are passed on, and after the
upstream's 101 the connection is a tunnel: bytes both ways, unparsed, with
back-pressure, until either side ends or timeouts.tunnel of silence."""
import hashlib
import socket
import threading
import time

import pytest

from serve_util import start_router, upstreams_yaml, wait_for, write_config


def pattern(n):
    return (bytes(range(256)) * (n // 256 + 1))[:n]


class TunnelUpstream:
    """A loopback upstream: answers an Upgrade request with 101 and then
    echoes every byte prefixed per read with nothing (a pure echo); `/big`
    after the 101 sends `size` bytes and closes; `/halfclose?size=N` reads
    to the client's FIN, then answers with the byte count and N bytes and
    closes;
    `/upshut` sends "server-done" and its own FIN, then records what the
    client still sends (`after_shut`); a request without Upgrade gets a 200,
    or a 101 anyway on `/rogue101`. Records each request head."""

    def __init__(self, color):
        self.color = color
        self.heads = []
        self.closed = threading.Event()   # a tunnel's client side ended (EOF seen)
        self.after_shut = b""
        self.after_shut_done = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop_flag = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.stop_flag:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            self.heads.append(head.decode("latin-1"))
            first = head.split(b"\r\n")[0]
            lower = head.lower()
            if b"\r\nupgrade:" not in lower and b"/rogue101" not in first:
                body = self.color.encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                return
            framing = b"Content-Length: 100\r\n" if b" /cl101" in first else b""
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n" + framing +
                      b"\r\nhello:" + self.color.encode() + b"\n")
            if b" /deaf" in first:           # never reads again; waits to be cut
                c.settimeout(30)
                try:
                    while c.recv(1, socket.MSG_PEEK):
                        time.sleep(0.1)   # data waits unread; recv(PEEK) sees it, never EOF
                except OSError:
                    pass
                return
            if b" /big" in first:
                n = int(first.split(b"size=")[1].split(b" ")[0])
                chunk = bytes(range(256)) * 256
                sent = 0
                while sent < n:
                    k = min(len(chunk), n - sent)
                    c.sendall(chunk[:k])
                    sent += k
                c.close()
                return
            if b" /halfclose" in first:
                n = len(rest)
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    n += len(d)
                size = int(first.split(b"size=")[1].split(b" ")[0])
                c.sendall(b"got %d bytes\n" % n + pattern(size))
                return
            if b" /upshut" in first:
                c.sendall(b"server-done\n")
                c.shutdown(socket.SHUT_WR)
                got = rest
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    got += d
                self.after_shut = got
                self.after_shut_done.set()
                return
            if rest:
                c.sendall(rest)
            while True:
                d = c.recv(65536)
                if not d:
                    self.closed.set()
                    return
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop_flag = True
        self.sock.close()


@pytest.fixture
def setup(tmp_path):
    blue, green = TunnelUpstream("blue"), TunnelUpstream("green")
    cfg = write_config(tmp_path, "weight: 0\ntimeouts: { tunnel: 1500ms, idle: 5s, drain: 1s }\n" +
                       upstreams_yaml([blue.url], [green.url], health=False))
    r = start_router(tmp_path, cfg)
    yield r, blue, green
    assert r.stop() == 0, r.log()
    blue.close()
    green.close()


UPGRADE = (b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
           b"Upgrade: websocket\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n")


def read_until(s, want, limit=1 << 20):
    buf = b""
    while want not in buf and len(buf) < limit:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf


def read_all(s):
    """Everything until the peer closes."""
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


def test_upgrade_becomes_a_tunnel(setup):
    r, blue, _ = setup
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(UPGRADE + b"early-bytes|")   # sent before the 101: must not be lost
    buf = read_until(s, b"early-bytes|")
    head, _, after = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols", head
    hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    assert hdrs["upgrade"] == "websocket" and hdrs["connection"].lower() == "upgrade"
    assert hdrs["x-cutover-color"] == "blue" and "sec-websocket-accept" in hdrs
    assert "content-length" not in hdrs and "transfer-encoding" not in hdrs
    assert after.startswith(b"hello:blue\n")
    # what the upstream got: the Upgrade passed on, the other hop-by-hop ones not
    up = blue.heads[-1].lower()
    assert "\r\nupgrade: websocket" in up and "\r\nconnection: upgrade" in up
    assert "keep-alive" not in up and "x-forwarded-for: 127.0.0.1" in up
    for i in range(20):                      # a conversation, both ways
        msg = b"frame-%d;" % i
        s.sendall(msg)
        assert read_until(s, msg).endswith(msg)
    s.close()
    assert blue.closed.wait(5), "the client's end did not reach the upstream"
    # measured as one exchange answered 101, on blue
    def metrics():
        return r.admin("GET", "/metrics", token=None)[1]
    assert wait_for(lambda: b'cutover_requests_total{color="blue",code_class="1xx"} 1'
                    in metrics()), metrics()


def test_tunnel_streams_both_ways_with_backpressure(setup):
    r, blue, _ = setup
    # upstream -> client: 32 MiB sent as fast as the upstream can, read slowly at first
    size = 32 << 20
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    s.sendall(UPGRADE.replace(b"/chat", b"/big?size=%d" % size))
    buf = read_until(s, b"hello:blue\n")
    got = buf.partition(b"hello:blue\n")[2]
    time.sleep(1.0)  # the router's queue to us fills; it must pause the upstream
    rss_kb = r.rss_hwm_kb()
    h = hashlib.sha256(got)
    n = len(got)
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
    s.close()
    chunk = bytes(range(256)) * 256
    want = hashlib.sha256()
    left = size
    while left:
        k = min(len(chunk), left)
        want.update(chunk[:k])
        left -= k
    assert n == size and h.hexdigest() == want.hexdigest()
    assert rss_kb < 64 * 1024, f"router RSS {rss_kb} KiB while a tunnel was stalled"
    # client -> upstream -> client: 8 MiB echoed back intact
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    s.sendall(UPGRADE)
    read_until(s, b"hello:blue\n")
    payload = bytes((i * 7) & 0xFF for i in range(8 << 20))
    t = threading.Thread(target=s.sendall, args=(payload,))
    t.start()
    echoed = b""
    while len(echoed) < len(payload):
        d = s.recv(1 << 20)
        assert d, "tunnel closed early"
        echoed += d
    t.join()
    assert echoed == payload
    s.close()


def test_upstream_end_closes_the_client_after_its_bytes(setup):
    r, _, _ = setup
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(UPGRADE.replace(b"/chat", b"/big?size=100000"))
    buf = read_all(s)
    assert len(buf.partition(b"hello:blue\n")[2]) == 100000


@pytest.mark.parametrize("size", [200_000, 8 << 20])
def test_client_half_close_still_gets_the_answer(setup, size):
    """A client that half-closes its side of a tunnel (shutdown(SHUT_WR), as
    a `docker attach` does when its input ends) still gets everything the
    upstream sends after seeing that FIN, read late: the FIN is passed on
    after the client's bytes, and the router keeps writing to the client.
    200 kB: less than the router pauses an upstream for; 8 MiB: the router
    pauses the upstream until the client reads (so on_drain must still come
    after the client's FIN). tests/unit/net covers a queue written out
    after the peer's FIN."""
    r, _, _ = setup
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)   # no autotuned window
    s.settimeout(5)
    s.connect(("127.0.0.1", r.port))
    s.sendall(UPGRADE.replace(b"/chat", b"/halfclose?size=%d" % size))
    read_until(s, b"hello:blue\n")
    s.sendall(b"q" * 300000)
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.5)   # the answer fills the router's queue to us meanwhile
    got = read_all(s)
    want = b"got 300000 bytes\n" + pattern(size)
    assert len(got) == len(want) and got == want, f"{len(got)} of {len(want)} bytes"
    s.close()


def test_upstream_half_close_still_reads_the_client(setup):
    """An upstream that half-closes gets its FIN passed to the client after
    its bytes, and still receives what the client sends after it; once the
    client ends too, both connections close."""
    r, blue, _ = setup
    base = router_sockets(r)
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(UPGRADE.replace(b"/chat", b"/upshut"))
    got = read_all(s)   # up to the upstream's FIN, passed on
    assert got.endswith(b"\r\n\r\nhello:blue\nserver-done\n"), got
    s.sendall(b"late-bytes")
    s.shutdown(socket.SHUT_WR)
    assert blue.after_shut_done.wait(5), "the client's FIN did not reach the upstream"
    assert blue.after_shut == b"late-bytes"
    assert wait_for(lambda: router_sockets(r) == base, timeout=3), "the tunnel did not close"
    s.close()


def test_silent_tunnel_times_out_busy_one_does_not(setup):
    r, _, _ = setup
    busy = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    busy.sendall(UPGRADE)
    read_until(busy, b"hello:blue\n")
    quiet = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    quiet.sendall(UPGRADE)
    read_until(quiet, b"hello:blue\n")
    t0 = time.time()
    for i in range(8):                       # 2.8 s of traffic every 0.35 s
        busy.sendall(b"ping%d" % i)
        assert read_until(busy, b"ping%d" % i).endswith(b"ping%d" % i)
        time.sleep(0.35)
    assert time.time() - t0 > 2.5
    quiet.settimeout(0.1)
    assert quiet.recv(10) == b"", "the silent tunnel should have been closed after 1.5 s"
    busy.sendall(b"still-there")
    assert read_until(busy, b"still-there").endswith(b"still-there")
    busy.close()
    quiet.close()


def test_upgrade_forced_colour_and_weight(setup):
    r, _, green = setup
    r.set_weight(100)
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(UPGRADE)
    assert b"hello:green\n" in read_until(s, b"hello:green\n")
    s.close()
    assert "upgrade: websocket" in green.heads[-1].lower()


def test_unasked_101_is_a_broken_upstream(setup):
    r, _, _ = setup
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(b"GET /rogue101 HTTP/1.1\r\nHost: x\r\n\r\n")
    out = read_until(s, b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 502 "), out
    s.close()


def assert_not_tunnelled(setup, request):
    """request is answered as a plain request by blue, which never sees Upgrade."""
    r, blue, _ = setup
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(request)
    out = read_all(s)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"blue"), out
    assert "upgrade:" not in blue.heads[-1].lower()
    s.close()


def test_upgrade_with_a_body_is_not_tunnelled(setup):
    assert_not_tunnelled(setup, b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                b"Upgrade: websocket\r\nContent-Length: 3\r\n\r\nabc")


def test_plain_requests_still_keep_alive(setup):
    r, _, _ = setup
    c = r.conn()
    for _ in range(3):
        status, color, body = r.get("/", conn=c)
        assert status == 200 and color == "blue" and body == b"blue"
    c.close()


def test_sigterm_cuts_open_tunnels_at_the_drain_deadline(setup):
    r, _, _ = setup
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(UPGRADE)
    read_until(s, b"hello:blue\n")
    t0 = time.time()
    assert r.stop() == 0, r.log()
    assert time.time() - t0 < 4
    s.settimeout(2)
    assert s.recv(10) == b""
    s.close()


def router_sockets(r):
    import os
    n = 0
    for fd in os.listdir(f"/proc/{r.proc.pid}/fd"):
        try:
            if os.readlink(f"/proc/{r.proc.pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def test_client_end_with_bytes_stuck_to_a_deaf_upstream(setup):
    """The client ends while megabytes wait for an upstream that stopped
    reading: the client's FIN is passed on only after them, so the tunnel
    is half-open, and it is cut when silent for timeouts.tunnel (1.5 s
    here), not kept forever; SIGTERM still exits at once."""
    r, _, _ = setup
    base = router_sockets(r)
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(UPGRADE.replace(b"/chat", b"/deaf"))
    read_until(s, b"hello:blue\n")
    s.settimeout(0.5)
    try:
        s.sendall(b"x" * (4 << 20))   # more than the kernel buffers hold
    except socket.timeout:
        pass
    s.close()
    assert wait_for(lambda: router_sockets(r) == base, timeout=5), "the half-open tunnel was kept"
    t0 = time.time()
    assert r.stop() == 0, r.log()
    assert time.time() - t0 < 3


def test_101_with_body_framing_is_still_a_tunnel(setup):
    r, _, _ = setup
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(UPGRADE.replace(b"/chat", b"/cl101"))
    buf = read_until(s, b"hello:blue\n")
    assert b"content-length" not in buf.lower()
    s.sendall(b"ping")
    assert read_until(s, b"ping").endswith(b"ping")
    s.close()


def test_only_websocket_is_tunnelled(setup):
    """Upgrade: h2c (or any other protocol) is not passed on: an upstream
    that would switch could then be sent requests the router never sees."""
    assert_not_tunnelled(setup, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
