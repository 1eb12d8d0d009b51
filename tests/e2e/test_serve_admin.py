"""`cutover serve` admin API: the token guards mutations (401 otherwise, never
logged), /status JSON, /metrics in Prometheus text 0.0.4 (checked with
promtool), and the `cutover status` / `cutover weight` clients."""
import json
import shutil
import subprocess

import pytest

from conftest import run, start_upstream, stop
from serve_util import TOKEN, start_router, upstreams_yaml, write_config


@pytest.fixture
def router(tmp_path):
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    green = start_upstream(tmp_path, "--color", "green", name="green")
    cfg = write_config(tmp_path, "weight: 25\n" + upstreams_yaml([blue.url], [green.url]))
    r = start_router(tmp_path, cfg)
    yield r
    assert r.stop() == 0, r.log()
    stop(blue.proc)
    stop(green.proc)


def test_put_weights_needs_the_token(router):
    for token in (None, "wrong-token-000000", TOKEN + "x", TOKEN[:-1]):
        resp, body = router.admin("PUT", "/weights", {"green": 90}, token=token)
        assert resp.status == 401, (token, body)
        assert resp.getheader("WWW-Authenticate") == "Bearer"
    assert router.status()["weights"]["green"] == 25.0
    resp, body = router.admin("PUT", "/weights", {"green": 12.5})
    assert resp.status == 200 and json.loads(body) == {"green": 12.5, "blue": 87.5}
    resp, body = router.admin("PUT", "/weights", {"green": 100.5})
    assert resp.status == 400
    resp, body = router.admin("PUT", "/weights", {"green": 33.333})
    assert resp.status == 200 and json.loads(body)["green"] == 33.33  # steps of 0.01
    resp, body = router.admin("PUT", "/weights", {"blue": 70})
    assert resp.status == 200 and json.loads(body)["green"] == 30.0
    assert TOKEN not in router.log()


def test_status_json(router):
    c = router.conn()
    for _ in range(40):
        router.get("/health", conn=c)
    for _ in range(2):  # (2 x 5xx per colour stays under eject_after: 3)
        st, color, _ = router.get("/status/503", conn=c)  # retried once on the other colour
        assert st == 503
    c.close()
    st = router.status()
    assert st["weights"] == {"green": 25.0, "blue": 75.0}
    for color in ("blue", "green"):
        up = st["upstreams"][color]
        assert up["healthy"] == 1 and up["servers"][0]["active_checks"] is True
        assert up["servers"][0]["checks_ok"] >= 1
    for w in ("10s", "1m", "5m"):
        assert set(st["windows"][w]) == {"blue", "green"}
    ten = st["windows"]["10s"]
    ok = ten["blue"]["codes"]["2xx"] + ten["green"]["codes"]["2xx"]
    assert ok == 40
    # 2 requests, each answered 503 by one colour and then by the other
    assert ten["blue"]["codes"]["5xx"] == 2 and ten["green"]["codes"]["5xx"] == 2
    assert ten["blue"]["latency_ms"]["p99"] > 0
    assert 0 < ten["blue"]["seconds"] <= 10


def test_metrics_format(router):
    c = router.conn()
    for _ in range(20):
        router.get("/health", conn=c)
    c.close()
    resp, body = router.admin("GET", "/metrics", token=None)
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert 'cutover_weight{color="green"} 25.00' in text
    assert 'cutover_weight{color="blue"} 75.00' in text
    assert "# TYPE cutover_request_duration_seconds histogram" in text
    assert 'cutover_request_duration_seconds_bucket{color="blue",le="+Inf"} 15' in text
    assert 'cutover_requests_total{color="green",code_class="2xx"} 5' in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed: make deps"
    p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_cli_status_and_weight(router, tmp_path):
    admin = f"http://127.0.0.1:{router.admin_port}"
    p = run("status", "--admin", admin)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["weights"]["green"] == 25.0
    p = run("weight", "green=10", "--admin", admin, "--token-file", tmp_path / "admin.token")
    assert p.returncode == 0, p.stderr
    assert router.status()["weights"]["green"] == 10.0
    bad = tmp_path / "bad.token"
    bad.write_text("not-the-token\n")
    p = run("weight", "green=90", "--admin", admin, "--token-file", bad)
    assert p.returncode == 1 and "401" in p.stderr
    assert router.status()["weights"]["green"] == 10.0
    p = run("weight", "green=101", "--admin", admin, "--token-file", bad)
    assert p.returncode == 2
    p = run("weight", "green=10", "--admin", "http://127.0.0.1:1")
    assert p.returncode == 2   # no token file
    p = run("status", "--admin", "http://127.0.0.1:1")
    assert p.returncode == 1 and "ECONNREFUSED" in p.stderr, p.stderr
    assert TOKEN not in p.stdout + p.stderr


def test_admin_listener_is_separate(router):
    resp, _ = router.admin("GET", "/nope", token=None)
    assert resp.status == 404
    st, _, body = router.get("/status")   # on the proxy port this is proxied, not admin
    assert b"weights" not in body


def test_token_rotation_on_sighup(router, tmp_path):
    import signal
    from serve_util import wait_for
    (tmp_path / "admin.token").write_text("rotated-token-abcdef\n")
    router.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: router.admin("PUT", "/weights", {"green": 1},
                                         token="rotated-token-abcdef")[0].status == 200)
    assert router.admin("PUT", "/weights", {"green": 2})[0].status == 401   # the old token
    assert "rotated-token-abcdef" not in router.log()
