"""`cutover serve`: active health checks, passive ejection, the share of a
colour without healthy servers going to the other, retries that keep GETs
from failing when green dies under load."""
import signal
import threading
import time

from conftest import start_upstream, stop
from serve_util import start_router, upstreams_yaml, wait_for, write_config


def test_active_health_ejection_and_recovery(tmp_path):
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    green = start_upstream(tmp_path, "--color", "green", name="green")
    cfg = write_config(tmp_path, "weight: 50\n" + upstreams_yaml([blue.url], [green.url]))
    r = start_router(tmp_path, cfg)
    try:
        assert wait_for(lambda: r.status()["upstreams"]["green"]["healthy"] == 1)
        green.proc.send_signal(signal.SIGKILL)
        green.proc.wait()
        st = wait_for(lambda: (lambda s: s if s["upstreams"]["green"]["healthy"] == 0 else None)
                      (r.status()))
        assert st, r.status()
        srv = st["upstreams"]["green"]["servers"][0]
        assert srv["healthy"] is False and srv["last_error"]
        assert st["effective_weights"] == {"green": 0.0, "blue": 100.0}
        assert st["weights"] == {"green": 50.0, "blue": 50.0}   # configured weight kept
        c = r.conn()
        got = [r.get("/health", conn=c) for _ in range(30)]
        c.close()
        assert all(g[0] == 200 and g[1] == "blue" for g in got), got
        # green comes back on the same port: after `rise` good checks it takes traffic again
        green = start_upstream(tmp_path, "--color", "green", "--listen",
                               f"127.0.0.1:{green.port}", name="green2")
        assert wait_for(lambda: r.status()["effective_weights"]["green"] == 50.0), r.status()
        c = r.conn()
        got = [r.get("/health", conn=c)[1] for _ in range(30)]
        c.close()
        assert got.count("green") == 15, got
    finally:
        assert r.stop() == 0, r.log()
        stop(blue.proc)
        stop(green.proc)


def test_passive_ejection_on_5xx(tmp_path):
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    green = start_upstream(tmp_path, "--color", "green", "--error-rate", "1", name="green")
    extra = "    health: { eject_after: 3, eject_time: 1500ms }\n"
    cfg = write_config(tmp_path, "weight: 100\n" +
                       upstreams_yaml([blue.url], [green.url], health=False, extra=extra))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        got = [r.get("/api/mocs", conn=c)[:2] for _ in range(10)]
        # three 500s from green (500 is not retried), then green is ejected
        assert got[:3] == [(500, "green")] * 3, got
        assert got[3:] == [(200, "blue")] * 7, got
        st = r.status()
        assert st["upstreams"]["green"]["servers"][0]["ejected"] is True
        assert st["effective_weights"]["green"] == 0.0
        # after eject_time green is tried again; one more 500 ejects it again
        assert wait_for(lambda: r.status()["effective_weights"]["green"] == 100.0, timeout=5)
        got = [r.get("/api/mocs", conn=c)[:2] for _ in range(3)]
        assert got == [(500, "green"), (200, "blue"), (200, "blue")], got
        c.close()
        m = r.admin("GET", "/metrics", token=None)[1].decode()
        assert 'cutover_requests_total{color="green",code_class="5xx"} 4' in m
    finally:
        assert r.stop() == 0, r.log()
        stop(blue.proc)
        stop(green.proc)


def test_kill_green_under_load_no_failed_gets(tmp_path):
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    green = start_upstream(tmp_path, "--color", "green", name="green")
    cfg = write_config(tmp_path, "weight: 50\n" + upstreams_yaml([blue.url], [green.url]))
    r = start_router(tmp_path, cfg)
    stop_at = time.time() + 4.0
    failures, counts = [], {"blue": 0, "green": 0}
    lock = threading.Lock()

    def client(i):
        c = r.conn()
        k = 0
        while time.time() < stop_at:
            path = "/delay/30" if k % 3 == 0 else "/api/mocs"
            k += 1
            try:
                c.request("GET", path)
                resp = c.getresponse()
                resp.read()
                with lock:
                    if resp.status != 200:
                        failures.append((path, resp.status))
                    else:
                        counts[resp.getheader("X-Cutover-Color")] += 1
            except Exception as e:  # noqa: BLE001 - any client-side failure counts
                with lock:
                    failures.append((path, repr(e)))
                c.close()
                c = r.conn()
        c.close()

    try:
        assert wait_for(lambda: r.status()["upstreams"]["green"]["healthy"] == 1)
        ts = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in ts:
            t.start()
        time.sleep(1.5)
        green_before = counts["green"]
        green.proc.send_signal(signal.SIGKILL)
        green.proc.wait()
        for t in ts:
            t.join()
        assert failures == [], failures[:10]
        assert green_before > 20 and counts["blue"] > 100, counts
        st = r.status()
        assert st["upstreams"]["green"]["healthy"] == 0
        m = r.admin("GET", "/metrics", token=None)[1].decode()
        retries = [l for l in m.splitlines() if l.startswith('cutover_retries_total{color="blue"}')]
        assert retries and int(retries[0].split()[-1]) >= 1, retries
    finally:
        assert r.stop() == 0, r.log()
        stop(blue.proc)
