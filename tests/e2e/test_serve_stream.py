"""`cutover serve` streams: a 1 GiB upload and a 256 MiB download pass with
flat router memory (VmHWM), in Content-Length and chunked framing both ways.
The upstream here is a small Python sink that counts and checksums what it
gets, so the router's memory is the only thing that could grow."""
import socket
import socketserver
import threading
import zlib

import pytest

from serve_util import start_router, upstreams_yaml, write_config

MiB = 1 << 20
BLOCK = bytes(range(256)) * 4096  # 1 MiB


class Sink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SinkHandler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline()
            if not line:
                return
            method, target, _ = line.decode().split(" ", 2)
            hdrs = {}
            while True:
                h = self.rfile.readline()
                if h in (b"\r\n", b""):
                    break
                k, _, v = h.decode().partition(":")
                hdrs[k.strip().lower()] = v.strip()
            n, crc = 0, 0
            if "content-length" in hdrs:
                left = int(hdrs["content-length"])
                while left:
                    d = self.rfile.read(min(left, MiB))
                    n += len(d)
                    crc = zlib.crc32(d, crc)
                    left -= len(d)
            elif hdrs.get("transfer-encoding") == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    left = size
                    while left:
                        d = self.rfile.read(min(left, MiB))
                        n += len(d)
                        crc = zlib.crc32(d, crc)
                        left -= len(d)
                    self.rfile.readline()
            if target.startswith("/down/"):
                total = int(target.split("/")[2]) * MiB
                chunked = target.endswith("/chunked")
                head = "HTTP/1.1 200 OK\r\n"
                head += ("Transfer-Encoding: chunked\r\n" if chunked
                         else f"Content-Length: {total}\r\n")
                self.wfile.write((head + "\r\n").encode())
                for _ in range(total // MiB):
                    if chunked:
                        self.wfile.write(b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n")
                    else:
                        self.wfile.write(BLOCK)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
            else:
                body = f'{{"bytes":{n},"crc":{crc}}}'.encode()
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                                 + body)
            self.wfile.flush()


@pytest.fixture
def sink_router(tmp_path):
    sink = Sink(("127.0.0.1", 0), SinkHandler)
    t = threading.Thread(target=sink.serve_forever, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{sink.server_address[1]}"
    cfg = write_config(tmp_path, "weight: 50\n" + upstreams_yaml([url], [url], health=False))
    r = start_router(tmp_path, cfg)
    yield r
    assert r.stop() == 0, r.log()
    sink.shutdown()
    sink.server_close()


def read_response(s):
    f = s.makefile("rb")
    status = f.readline()
    hdrs = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode().partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, f


def upload(port, total_mib, chunked):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = "POST /up HTTP/1.1\r\nHost: x\r\n"
    head += ("Transfer-Encoding: chunked\r\n" if chunked
             else f"Content-Length: {total_mib * MiB}\r\n")
    s.sendall((head + "\r\n").encode())
    crc = 0
    for _ in range(total_mib):
        if chunked:
            s.sendall(b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n")
        else:
            s.sendall(BLOCK)
        crc = zlib.crc32(BLOCK, crc)
    if chunked:
        s.sendall(b"0\r\n\r\n")
    status, hdrs, f = read_response(s)
    body = f.read(int(hdrs["content-length"]))
    s.close()
    return status, body, crc


def test_large_upload_flat_memory(sink_router):
    r = sink_router
    status, body, _ = upload(r.port, 8, chunked=False)   # warm up
    assert status.startswith(b"HTTP/1.1 200"), status
    base = r.rss_hwm_kb()
    status, body, crc = upload(r.port, 1024, chunked=False)
    assert status.startswith(b"HTTP/1.1 200")
    assert body == f'{{"bytes":{1024 * MiB},"crc":{crc}}}'.encode()
    status, body, crc = upload(r.port, 128, chunked=True)
    assert body == f'{{"bytes":{128 * MiB},"crc":{crc}}}'.encode()
    grew = r.rss_hwm_kb() - base
    print(f"router VmHWM {base} KiB before, grew {grew} KiB over a 1 GiB + 128 MiB upload")
    assert grew < 16 * 1024, f"router peak RSS grew by {grew} KiB for a 1 GiB upload"


@pytest.mark.parametrize("chunked", [False, True])
def test_large_download_flat_memory(sink_router, chunked):
    r = sink_router
    base = r.rss_hwm_kb()
    s = socket.create_connection(("127.0.0.1", r.port), timeout=60)
    s.sendall(b"GET /down/256%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"/chunked" if chunked else b""))
    status, hdrs, f = read_response(s)
    assert status.startswith(b"HTTP/1.1 200")
    n, crc = 0, 0
    if chunked:
        assert hdrs.get("transfer-encoding") == "chunked" and "content-length" not in hdrs
        while True:
            size = int(f.readline(), 16)
            if size == 0:
                f.readline()
                break
            d = f.read(size)
            n += len(d)
            crc = zlib.crc32(d, crc)
            f.readline()
    else:
        assert int(hdrs["content-length"]) == 256 * MiB
        left = 256 * MiB
        while left:
            d = f.read(min(left, MiB))
            n += len(d)
            crc = zlib.crc32(d, crc)
            left -= len(d)
    s.close()
    want = 0
    for _ in range(256):
        want = zlib.crc32(BLOCK, want)
    assert n == 256 * MiB and crc == want
    grew = r.rss_hwm_kb() - base
    print(f"router VmHWM {base} KiB before, grew {grew} KiB over a 256 MiB download")
    assert grew < 16 * 1024, f"router peak RSS grew by {grew} KiB for a 256 MiB download"
