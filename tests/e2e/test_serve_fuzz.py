"""`cutover serve` against malformed input: valid requests mutated at random
(bytes flipped, inserted, deleted, truncated, split across writes). Whatever
arrives, the router answers with a status line or closes, never crashes
(ASan/UBSan in the test build), and keeps serving well-formed requests."""
import random
import socket

from conftest import start_upstream, stop
from serve_util import start_router, upstreams_yaml, write_config

SEEDS = [
    b"GET /api/mocs HTTP/1.1\r\nHost: x\r\nX-User-Id: 42\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nCookie: a=b; uid=7\r\nConnection: keep-alive\r\n\r\n"
    b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /echo/x?q=1 HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
]
NASTY = [b"\r\n", b"\n", b" ", b":", b"\x00", b"\xff", b"Content-Length: 99999999999\r\n",
         b"Transfer-Encoding: chunked\r\n", b"Content-Length: 1\r\n", b" folded\r\n",
         b"ffffffffffffffff\r\n", b"HTTP/1.1", b"%00", b"\t"]


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[pos:pos] = rng.choice(NASTY)
        elif op == 2 and b:
            del b[pos:pos + rng.randint(1, 8)]
        elif op == 3:
            b = b[:pos]
        else:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
    return bytes(b)


def exchange(port, data, rng):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        # sometimes one byte at a time, sometimes in two pieces
        cut = rng.randrange(len(data) + 1)
        for piece in (data[:cut], data[cut:]):
            if piece:
                s.sendall(piece)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while len(out) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    except OSError:  # timeouts, resets, a peer that closed first
        return None
    finally:
        s.close()


def test_mutated_requests_never_crash_the_router(tmp_path):
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    green = start_upstream(tmp_path, "--color", "green", name="green")
    cfg = write_config(tmp_path, "weight: 50\nforce_header: X-Cutover-Color\n"
                       "sticky: { cookie: uid }\n" + upstreams_yaml([blue.url], [green.url]) +
                       "timeouts: { header: 1s, body: 1s, idle: 1s }\n")
    r = start_router(tmp_path, cfg)
    rng = random.Random(20261201)
    answered = 0
    try:
        for i in range(400):
            out = exchange(r.port, mutate(rng, rng.choice(SEEDS)), rng)
            assert r.proc.poll() is None, f"router died on case {i}: " + r.log()[-2000:]
            if out:
                assert out.startswith(b"HTTP/1."), out[:200]
                answered += 1
        # still serving
        status, color, _ = r.get("/health")
        assert status == 200 and color in ("blue", "green")
        assert answered > 100
    finally:
        rc = r.stop()
        stop(blue.proc)
        stop(green.proc)
    assert rc == 0, r.log()[-3000:]


def test_chunked_body_going_bad_mid_stream(tmp_path):
    """Found by the fuzz test: a chunked body whose chunk runs past its size
    while it is being proxied. The client gets 400 (or a close), the router
    frees everything (the leak checker runs at exit) and goes on serving."""
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    green = start_upstream(tmp_path, "--color", "green", name="green")
    cfg = write_config(tmp_path, upstreams_yaml([blue.url], [green.url]))
    r = start_router(tmp_path, cfg)
    try:
        bad = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhelffffffffffffffff\r\nlo\r\n0\r\n\r\n")
        for _ in range(3):
            out = exchange(r.port, bad, random.Random(1))
            assert out is None or out == b"" or out.startswith(b"HTTP/1.1 4"), out[:200]
        assert r.get("/health")[0] == 200
    finally:
        rc = r.stop()
        stop(blue.proc)
        stop(green.proc)
    assert rc == 0, r.log()[-3000:]
