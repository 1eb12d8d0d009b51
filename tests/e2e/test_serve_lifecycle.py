"""`cutover serve` life cycle: config errors name file:line:column, SIGHUP
reloads (a broken file keeps the old config serving and says why), SIGTERM
drains in-flight requests and exits 0, the JSON access log."""
import json
import resource
import select
import signal
import socket
import threading
import time

import pytest

from conftest import run, start_upstream, stop
from serve_util import start_router, upstreams_yaml, wait_for, write_config


def test_config_errors_name_file_line_column(tmp_path, colors):
    blue, green = colors
    cfg = write_config(tmp_path, "weight: 150\n" + upstreams_yaml([blue.url], [green.url]))
    p = run("serve", cfg)
    assert p.returncode == 1
    assert f"{cfg}:3:9: weight is green's percent, from 0 to 100" in p.stderr, p.stderr
    cfg = write_config(tmp_path, "wieght: 10\nstate: x.db\n" +
                       upstreams_yaml([blue.url], [green.url]))
    p = run("serve", "--check", cfg)
    assert p.returncode == 0, p.stderr
    assert "unknown key 'wieght'" in p.stderr and "did you mean 'weight'" in p.stderr
    assert "state" not in p.stderr
    # --check also checks the rollout plan, with the position of the mistake
    cfg = write_config(tmp_path, "rollout:\n  from: blue\n  to: green\n  steps: []\n" +
                       upstreams_yaml([blue.url], [green.url]))
    p = run("serve", "--check", cfg)
    assert p.returncode == 1, p.stderr
    assert f"{cfg}:6:" in p.stderr and "steps" in p.stderr, p.stderr
    assert not (tmp_path / "serve.yml.state.db").exists()   # checking creates no journal


def test_sighup_reload_good_and_broken(tmp_path, colors):
    blue, green = colors
    body = "weight: 0\n" + upstreams_yaml([blue.url], [green.url], health=False)
    cfg = write_config(tmp_path, body)
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        assert r.get("/health", conn=c)[1] == "blue"
        # a good change: weight 100 in the file
        cfg.write_text(cfg.read_text().replace("weight: 0", "weight: 100"))
        r.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: r.status()["weights"]["green"] == 100.0)
        assert r.get("/health", conn=c)[1] == "green"   # same connection, new config
        # a broken file: the old config keeps serving and the log says why
        cfg.write_text(cfg.read_text().replace("weight: 100", "weight: [1"))
        r.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed" in r.log())
        assert f"{cfg}:" in r.log()
        for _ in range(10):
            st, color, _ = r.get("/health", conn=c)
            assert (st, color) == (200, "green")
        assert r.proc.poll() is None
        c.close()
    finally:
        assert r.stop() == 0, r.log()


def test_sigterm_drains_in_flight(tmp_path, colors):
    blue, green = colors
    cfg = write_config(tmp_path, "weight: 50\ntimeouts: { drain: 10s }\n" +
                       upstreams_yaml([blue.url], [green.url], health=False))
    r = start_router(tmp_path, cfg)
    results = []

    def slow():
        c = r.conn(timeout=15)
        c.request("GET", "/delay/1500")
        resp = c.getresponse()
        results.append((resp.status, resp.read(), resp.getheader("Connection")))
        c.close()

    idle = r.conn()
    assert r.get("/health", conn=idle)[0] == 200      # an idle keep-alive connection
    ts = [threading.Thread(target=slow) for _ in range(4)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    t0 = time.time()
    r.proc.send_signal(signal.SIGTERM)
    for t in ts:
        t.join()
    assert r.proc.wait(10) == 0, r.log()
    assert [s for s, _, _ in results] == [200] * 4, results
    assert 0.5 < time.time() - t0 < 5
    assert "draining" in r.log()
    # the listener is gone
    with pytest.raises(OSError):
        r.conn(timeout=2).request("GET", "/health")


def test_access_log(tmp_path, colors):
    blue, green = colors
    cfg = write_config(tmp_path, "weight: 100\naccess_log: access.jsonl\n" +
                       upstreams_yaml([blue.url], [green.url], health=False))
    r = start_router(tmp_path, cfg)
    try:
        r.get("/api/mocs?x=%22y", headers={"X-Cutover-Color": "blue"})
    finally:
        assert r.stop() == 0, r.log()
    lines = (tmp_path / "access.jsonl").read_text().splitlines()
    assert len(lines) == 1
    e = json.loads(lines[0])
    assert e["method"] == "GET" and e["target"] == "/api/mocs?x=%22y"
    assert e["color"] == "green" and e["why"] == "weighted" and e["status"] == 200
    assert e["server"] == green.url and e["ms"] > 0 and e["bytes_out"] > 0


def test_reload_swaps_servers_while_requests_are_in_flight(tmp_path, colors):
    blue, green = colors
    green2 = start_upstream(tmp_path, "--color", "green", name="green2")
    cfg = write_config(tmp_path, "weight: 100\n" +
                       upstreams_yaml([blue.url], [green.url], health=True))
    r = start_router(tmp_path, cfg)
    results = []

    def slow():
        results.append(r.get("/delay/800")[:2])

    try:
        assert wait_for(lambda: r.status()["upstreams"]["green"]["healthy"] == 1)
        ts = [threading.Thread(target=slow) for _ in range(3)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        cfg.write_text(cfg.read_text().replace(green.url, green2.url))
        r.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: r.status()["upstreams"]["green"]["servers"][0]["url"]
                        == green2.url)
        for t in ts:
            t.join()
        assert results == [(200, "green")] * 3      # finished on the old generation
        c = r.conn()
        for _ in range(5):
            assert r.get("/health", conn=c)[:2] == (200, "green")
        c.close()
        srv = r.status()["upstreams"]["green"]["servers"][0]
        assert srv["connections"] == 1            # new requests use the new server
        # (the exit status below is also ASan's verdict: the old generation was freed)
    finally:
        assert r.stop() == 0, r.log()
        stop(green2.proc)


def test_a_stalled_router_queues_a_burst_of_handshakes(tmp_path, colors):
    """The listener asks for the longest accept queue the kernel allows
    (net.core.somaxconn): a router that stalls for a moment under a burst of
    new connections queues them instead of dropping handshakes (a dropped
    one costs its client a retransmission a second later). The burst is
    3,000 connections, past the 1,025 the old request of 1,024 held (on a
    machine whose somaxconn is 1,025 or less, both hold the same)."""
    blue, green = colors
    cfg = write_config(tmp_path, "weight: 0\n" + upstreams_yaml([blue.url], [green.url], health=False))
    r = start_router(tmp_path, cfg)
    somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3000 + 100
    if soft < want and (hard == resource.RLIM_INFINITY or hard >= want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    n = min(3000, somaxconn, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 100)
    socks = []
    stopped = False
    try:
        r.proc.send_signal(signal.SIGSTOP)
        stopped = True
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", r.port))
        # the handshake is the kernel's: done without the router running,
        # unless the accept queue was full and the SYN (or the ACK that
        # would complete it) was dropped
        time.sleep(0.3)
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLOUT)
        up = {fd for fd, ev in poller.poll(0) if ev & select.POLLOUT and not ev & (select.POLLERR | select.POLLHUP)}
        assert len(up) == n, f"{n - len(up)} of {n} handshakes were not completed while the router was stopped"
        for s in socks[:50]:
            s.setblocking(True)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r.proc.send_signal(signal.SIGCONT)
        stopped = False
        for s in socks[:50]:   # once running, it serves what queued
            s.settimeout(10)
            assert s.recv(64).startswith(b"HTTP/1.1 200"), r.log()
    finally:
        if stopped:
            r.proc.send_signal(signal.SIGCONT)
        for s in socks:
            s.close()
        r.stop()
