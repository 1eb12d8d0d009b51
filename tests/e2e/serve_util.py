"""Helpers for the `cutover serve` end-to-end tests: start the router on
ports it picks (port 0 + --port-file/--admin-port-file), talk to it with
plain sockets and http.client, read its status and metrics."""
import http.client
import json
import pathlib
import signal
import socket
import subprocess
import time

from conftest import BIN, ENV

TOKEN = "test-token-0123456789"


class Router:
    def __init__(self, proc, port, admin_port, tmp_path, cfg_path, log_path):
        self.proc, self.port, self.admin_port = proc, port, admin_port
        self.tmp_path, self.cfg_path, self.log_path = tmp_path, cfg_path, log_path

    def log(self):
        return pathlib.Path(self.log_path).read_text()

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def admin(self, method, path, body=None, token=TOKEN):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + token
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def status(self):
        r, data = self.admin("GET", "/status", token=None)
        assert r.status == 200, data
        return json.loads(data)

    def set_weight(self, green):
        r, data = self.admin("PUT", "/weights", {"green": green})
        assert r.status == 200, data
        return json.loads(data)

    def get(self, path, headers=None, conn=None):
        own = conn is None
        c = conn or self.conn()
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        if own:
            c.close()
        return r.status, r.getheader("X-Cutover-Color"), body

    def rss_hwm_kb(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM")

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def upstreams_yaml(blue_urls, green_urls, health=True, extra=""):
    def pool(urls):
        s = "    servers: [" + ", ".join(f'"{u}"' for u in urls) + "]\n"
        if health:
            s += "    health: { path: /health, interval: 200ms, timeout: 500ms, rise: 2, fall: 2 }\n"
        s += extra
        return s
    return "upstreams:\n  blue:\n" + pool(blue_urls) + "  green:\n" + pool(green_urls)


def write_config(tmp_path, body, name="serve.yml", listen="127.0.0.1:0"):
    (tmp_path / "admin.token").write_text(TOKEN + "\n")
    text = (f"listen: {listen}\n"
            "admin: { listen: 127.0.0.1:0, token_file: admin.token }\n" + body)
    p = tmp_path / name
    p.write_text(text)
    return p


def start_router(tmp_path, cfg_path, name="router"):
    pf, af = tmp_path / f"{name}.port", tmp_path / f"{name}.admin"
    for f in (pf, af):
        if f.exists():
            f.unlink()
    log_path = tmp_path / f"{name}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([BIN, "serve", str(cfg_path), "--port-file", str(pf),
                             "--admin-port-file", str(af)],
                            stdout=log, stderr=subprocess.STDOUT, env=ENV)
    deadline = time.time() + 15
    while time.time() < deadline:
        if pf.exists() and af.exists() and pf.read_text().strip() and af.read_text().strip():
            ports = [int(x) for x in pf.read_text().split()]
            r = Router(proc, ports[0], int(af.read_text()), tmp_path, cfg_path, log_path)
            r.ports = ports
            return r
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise RuntimeError("router did not start: " + log_path.read_text())


def wait_for(pred, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def pipelined_colors(port, n, path="/health", extra_headers="", batch=200):
    """Sends n GETs pipelined over one connection; returns the list of the
    X-Cutover-Color values of the n responses, in order."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    req = (f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra_headers}\r\n").encode()
    colors = []
    buf = b""
    sent = 0
    while len(colors) < n:
        if sent - len(colors) < batch and sent < n:
            k = min(batch, n - sent)
            s.sendall(req * k)
            sent += k
        data = s.recv(1 << 20)
        if not data:
            raise RuntimeError(f"connection closed after {len(colors)} responses")
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            hdrs = {}
            for line in lines[1:]:
                k2, _, v = line.partition(":")
                hdrs[k2.strip().lower()] = v.strip()
            clen = int(hdrs.get("content-length", "0"))
            if len(buf) < end + 4 + clen:
                break
            assert lines[0].startswith("HTTP/1.1 200"), lines[0]
            colors.append(hdrs.get("x-cutover-color"))
            buf = buf[end + 4 + clen:]
    s.close()
    return colors


def raw_exchange(port, data, timeout=5):
    """Sends raw bytes, returns (everything read until the peer closed or
    the timeout, whether the peer closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    closed = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            out += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return out, closed
