"""`cutover serve`: request smuggling shapes, malformed heads and limits get
400 (431 for limits) and the connection closes; slow clients time out."""
import time

import pytest

from conftest import start_upstream, stop
from serve_util import raw_exchange, start_router, upstreams_yaml, write_config

SMUGGLING = {
    "cl_and_te": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: 4\r\n\r\n0\r\n\r\n",
    "duplicate_cl_same": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                         b"Content-Length: 3\r\n\r\nabc",
    "duplicate_cl_differ": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                           b"Content-Length: 5\r\n\r\nabcde",
    "cl_list": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
    "cl_not_number": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3a\r\n\r\nabc",
    "cl_negative": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\nabc",
    "cl_plus": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
    "obs_fold": b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
    "obs_fold_tab": b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n",
    "space_before_colon": b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A : one\r\n\r\n",
    "bad_name_char": b"GET /echo HTTP/1.1\r\nHost: x\r\nX(A): one\r\n\r\n",
    "empty_name": b"GET /echo HTTP/1.1\r\nHost: x\r\n: one\r\n\r\n",
    "te_not_chunked_last": b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "bare_lf_in_value": b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "bad_chunk_size": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nabc\r\n0\r\n\r\n",
    "te_twice": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_in_http10": b"POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"0\r\n\r\n",
    "cl_hex": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc",
    "cl_empty": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\nabc",
    "chunk_size_overflow": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"ffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "lf_only": b"GET /health HTTP/1.1\nHost: x\n\n",
    "nul_in_name": b"GET /health HTTP/1.1\r\nHo\0st: x\r\n\r\n",
    "http09": b"GET /\r\n\r\n",
}


@pytest.fixture
def router(tmp_path):
    tmp = tmp_path
    blue = start_upstream(tmp, "--color", "blue", name="blue")
    green = start_upstream(tmp, "--color", "green", name="green")
    cfg = write_config(tmp, "weight: 50\nlimits: { header_bytes: 4096, headers: 20 }\n"
                       "timeouts: { header: 1s, body: 1s, idle: 2s }\n" +
                       upstreams_yaml([blue.url], [green.url], health=False))
    r = start_router(tmp, cfg)
    yield r
    assert r.stop() == 0, r.log()
    stop(blue.proc)
    stop(green.proc)


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_gets_400_and_close(router, name):
    out, closed = raw_exchange(router.port, SMUGGLING[name])
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert closed, "the connection must close after a 400"
    assert out.count(b"HTTP/1.1") == 1, out   # nothing was smuggled through


@pytest.mark.parametrize("te", [b"gzip, chunked", b"identity", b"xchunked"])
def test_other_transfer_codings_get_501(router, te):
    out, closed = raw_exchange(router.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501 ") or out.startswith(b"HTTP/1.1 400 "), out[:100]
    assert closed


def test_smuggling_after_a_good_request_on_the_same_connection(router):
    good = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    out, closed = raw_exchange(router.port, good + SMUGGLING["cl_and_te"])
    assert out.startswith(b"HTTP/1.1 200 ")
    assert b"HTTP/1.1 400 " in out and closed


def test_well_formed_requests_still_pass(router):
    good = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nxy")
    out, closed = raw_exchange(router.port, good)
    assert out.count(b"HTTP/1.1 200 ") == 2, out
    assert b'"body":"abcde"' in out and b'"body":"xy"' in out
    assert closed


def test_header_limits(router):
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
    out, closed = raw_exchange(router.port, big)
    assert out.startswith(b"HTTP/1.1 431 ") and closed, out[:100]
    many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(25))
    out, closed = raw_exchange(router.port, many + b"\r\n")
    assert out.startswith(b"HTTP/1.1 431 ") and closed, out[:100]


def test_slowloris_header_timeout(router):
    t0 = time.time()
    out, closed = raw_exchange(router.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a", timeout=5)
    assert out.startswith(b"HTTP/1.1 408 ") and closed, out
    assert 0.8 < time.time() - t0 < 3


def test_body_timeout(router):
    t0 = time.time()
    out, closed = raw_exchange(router.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 10\r\n\r\nabc", timeout=5)
    assert closed and time.time() - t0 < 3.5, out
    assert out == b"" or out.startswith(b"HTTP/1.1 408 "), out


def test_idle_keepalive_timeout(router):
    t0 = time.time()
    out, closed = raw_exchange(router.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=6)
    assert out.startswith(b"HTTP/1.1 200 ") and closed
    assert 1.5 < time.time() - t0 < 4.5


def _read_response(s):
    """Reads one Content-Length response from socket s (bytes), or b"" on close."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return b""
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    n = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        body += s.recv(65536)
    return head


def test_timeouts_follow_the_connection(router):
    """The idle deadline moves with every request (the timer is lazy: it must
    neither fire at an old deadline nor miss a nearer one): requests every
    1.2 s keep a connection with a 2 s idle timeout open for 4.8 s; then a
    partial head on the same connection gets 408 after the 1 s header
    timeout, not after the 2 s idle one."""
    import socket
    s = socket.create_connection(("127.0.0.1", router.port), timeout=6)
    t0 = time.time()
    for _ in range(5):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(s).startswith(b"HTTP/1.1 200 ")
        time.sleep(1.2)
    assert time.time() - t0 > 5.5
    t1 = time.time()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    assert out.startswith(b"HTTP/1.1 408 "), out
    assert 0.8 < time.time() - t1 < 1.8


def test_hop_by_hop_and_forwarding_headers(router):
    req = (b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\n"
           b"X-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\n"
           b"Proxy-Connection: x\r\nX-Forwarded-For: 10.0.0.1\r\nVia: 1.0 edge\r\n"
           b"X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n"
           b"X-Forwarded-Proto: gopher\r\nConnection: close\r\n\r\n")
    out, closed = raw_exchange(router.port, req)
    head, _, body = out.partition(b"\r\n\r\n")
    for h in (b"X-Secret", b"Keep-Alive", b"\"TE\"", b"Upgrade", b"Proxy-Connection", b"gopher"):
        assert h not in body, (h, body)
    assert b'["X-Forwarded-For","10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]' in body
    assert b'["X-Forwarded-Proto","http"]' in body
    assert b'["Via","1.0 edge, 1.1 cutover"]' in body
    assert b"Via: 1.1 cutover" in head and b"X-Cutover-Color: " in head
    assert head.count(b"X-Cutover-Color") == 1


def dribble(port, data, timeout=5):
    """Sends one byte per TCP segment; returns what came back until close."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        try:
            s.send(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break   # answered (and closed) before the end: fine, read the answer
        time.sleep(0.001)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


def test_byte_at_a_time(router):
    """Splits anywhere must not change the verdict: a value with inner and
    trailing spaces passes, a folded one does not."""
    good = (b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: one two  three \r\nX-B:   b  \r\n"
            b"Connection: close\r\n\r\n")
    out = dribble(router.port, good)
    assert out.startswith(b"HTTP/1.1 200 "), out[:100]
    assert b'["X-A","one two  three"]' in out and b'["X-B","b"]' in out, out
    out = dribble(router.port, SMUGGLING["obs_fold"])
    assert out.startswith(b"HTTP/1.1 400 "), out[:100]
    out = dribble(router.port, SMUGGLING["cl_and_te"])
    assert out.startswith(b"HTTP/1.1 400 "), out[:100]
