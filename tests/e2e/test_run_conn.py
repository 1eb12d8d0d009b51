"""`cutover run`, one connection per virtual user, seen from a server written
here: every user opens its own connection, sends its requests on it
(keep-alive) and closes it when its flow ends; a server that drops the
connection is counted as Artillery counts it. The requests are written as
connect() returns (net_connect_early): these tests pin down that nothing
else changed on the wire or in the report."""
import socket
import subprocess
import threading

from conftest import BIN, ENV, load_report, write


class Server:
    """Accepts on 127.0.0.1; `handle(conn, record)` serves one connection."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns = []            # one record per accepted connection
        self.threads = []
        self.handle = handle
        self.lock = threading.Lock()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            rec = {"requests": [], "client_closed": False}
            with self.lock:
                self.conns.append(rec)
            t = threading.Thread(target=self.handle, args=(conn, rec), daemon=True)
            t.start()
            self.threads.append(t)

    def close(self):
        self.sock.close()
        for t in self.threads:
            t.join(10)


def read_request(conn, buf):
    """One request head from conn (no bodies here); None at EOF."""
    while b"\r\n\r\n" not in buf[0]:
        data = conn.recv(65536)
        if not data:
            return None
        buf[0] += data
    head, buf[0] = buf[0].split(b"\r\n\r\n", 1)
    return head.decode()


def keepalive_handler(conn, rec):
    buf = [b""]
    conn.settimeout(20)
    with conn:
        while True:
            head = read_request(conn, buf)
            if head is None:
                rec["client_closed"] = True
                return
            rec["requests"].append(head)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def run_against(tmp_path, port, flow, users, config=""):
    script = write(tmp_path, "c.yml", f"config:\n  target: http://127.0.0.1:{port}\n{config}"
                   f"  phases:\n    - duration: 1\n      arrivalCount: {users}\n"
                   f"scenarios:\n  - flow:\n{flow}")
    out = tmp_path / "r.json"
    p = subprocess.run([BIN, "run", str(script), "-o", str(out), "-q"], env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return load_report(out)["aggregate"]


def test_each_user_has_its_own_connection_closed_after_its_flow(tmp_path):
    srv = Server(keepalive_handler)
    flow = "      - get: {url: /a}\n      - get: {url: /b}\n"
    agg = run_against(tmp_path, srv.port, flow, 12, "  http: {extendedMetrics: true}\n")
    srv.close()
    c = agg["counters"]
    assert c["http.codes.200"] == 24 and c["vusers.completed"] == 12, c
    assert len(srv.conns) == 12, srv.conns          # one connection per user, recycled or not
    for rec in srv.conns:
        assert [r.split(" ")[1] for r in rec["requests"]] == ["/a", "/b"], rec
        assert rec["client_closed"], rec             # closed by the user at the end of its flow
        first = rec["requests"][0].lower()
        assert first.startswith("get /a http/1.1\r\n") and "connection: keep-alive" in first
    # the connect time of each user's own connection is still measured
    assert agg["summaries"]["http.tcp"]["count"] == 12


def test_server_dropping_the_connection_is_econnreset(tmp_path):
    def drop(conn, rec):
        with conn:
            buf = [b""]
            if len(rec_index) % 2 == 0:   # read the request, then close: the user sees EOF
                read_request(conn, buf)
            rec_index.append(1)           # else close unread: the user sees a reset
    rec_index = []
    srv = Server(drop)
    agg = run_against(tmp_path, srv.port, "      - get: {url: /}\n", 4)
    srv.close()
    c = agg["counters"]
    assert c["errors.ECONNRESET"] == 4 and c["vusers.failed"] == 4, c
    assert "http.responses" not in c


def test_refused_then_served_users_recycle_cleanly(tmp_path):
    # users that failed to connect and users that were served share recycled
    # state: each outcome is counted once, and every served user closed its
    # own connection
    srv = Server(keepalive_handler)
    script = write(tmp_path, "m.yml", f"config:\n  target: http://127.0.0.1:{srv.port}\n"
                   "  phases:\n    - duration: 1\n      arrivalCount: 10\nscenarios:\n"
                   "  - weight: 1\n    flow:\n      - get: {url: /ok}\n"
                   "  - weight: 1\n    flow:\n      - get: {url: 'http://127.0.0.1:1/'}\n")
    out = tmp_path / "r.json"
    p = subprocess.run([BIN, "run", str(script), "-o", str(out), "-q", "--seed", "7"],
                       env=ENV, capture_output=True, text=True, timeout=60)
    srv.close()
    assert p.returncode == 0, p.stderr
    c = load_report(out)["aggregate"]["counters"]
    served = c.get("http.codes.200", 0)
    assert served + c.get("errors.ECONNREFUSED", 0) == 10, c
    assert c["vusers.completed"] == served and c.get("vusers.failed", 0) == 10 - served
    assert len(srv.conns) == served and all(r["client_closed"] for r in srv.conns)


def test_a_burst_of_arrivals_all_start_and_complete(upstream, tmp_path):
    # 1500 arrivals due within 15 ms: the worker starts them a batch per loop
    # turn (serving responses in between), none is dropped, each lag counted
    script = write(tmp_path, "b.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 0.015\n      arrivalCount: 1500\nscenarios:\n  - flow:\n"
                   "      - get: {url: /health}\n")
    out = tmp_path / "r.json"
    p = subprocess.run([BIN, "run", str(script), "-o", str(out), "-q"], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    agg = load_report(out)["aggregate"]
    c = agg["counters"]
    assert c["vusers.created"] == 1500 and c["vusers.completed"] == 1500, c
    assert c["http.codes.200"] == 1500 and not any(k.startswith("errors.") for k in c), c
    assert agg["summaries"]["cutover.arrival_lag"]["count"] == 1500
