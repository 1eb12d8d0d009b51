"""`cutover run`: bad input, errors as counters, exit codes, schedule, signals."""
import re
import signal
import socket
import subprocess
import time

from conftest import BIN, ENV, load_report, run, write


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_yaml_error_names_file_line_column(tmp_path):
    script = write(tmp_path, "bad.yml", "config:\n  target: \"http://x\n  phases: []\n")
    p = run("run", script)
    assert p.returncode == 1
    assert re.search(r"bad\.yml:\d+:\d+: ", p.stderr), p.stderr


def test_wrong_type_names_file_line_column(tmp_path):
    script = write(tmp_path, "t.yml", "config:\n  target: http://127.0.0.1:1\n  phases:\n"
                   "    - duration: 1\n      arrivalRate: fast\nscenarios:\n  - flow:\n"
                   "      - get: {url: /}\n")
    p = run("run", script)
    assert p.returncode == 1
    assert "t.yml:5:20" in p.stderr, p.stderr


def test_unknown_key_warns_with_nearest(tmp_path, upstream):
    script = write(tmp_path, "u.yml", f"config:\n  target: {upstream.url}\n  phase:\n"
                   "    - duration: 1\n      arrivalRate: 1\nscenarios:\n  - flow:\n"
                   "      - get: {url: /health}\n")
    p = run("run", script, "-q")
    assert p.returncode == 0, p.stderr
    assert "u.yml:3:3" in p.stderr and "phases" in p.stderr, p.stderr


def test_unreachable_host_is_a_counted_error(tmp_path):
    port = free_port()
    script = write(tmp_path, "r.yml", f"config:\n  target: http://127.0.0.1:{port}\n  phases:\n"
                   "    - duration: 1\n      arrivalRate: 5\nscenarios:\n  - flow:\n"
                   "      - get: {url: /}\n")
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    c = load_report(out)["aggregate"]["counters"]
    assert c["errors.ECONNREFUSED"] == 5 and c["vusers.failed"] == 5
    assert c["vusers.created"] == 5 and "http.responses" not in c


def test_bad_url_is_a_counted_error(tmp_path, upstream):
    script = write(tmp_path, "b.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 3\nscenarios:\n  - flow:\n"
                   "      - get: {url: 'nope/x'}\n")
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    c = load_report(out)["aggregate"]["counters"]
    assert c["errors.Invalid URL - nope/x"] == 3 and c["vusers.failed"] == 3


def test_garbage_response_is_a_counted_error(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    script = write(tmp_path, "g.yml", f"config:\n  target: http://127.0.0.1:{port}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 2\nscenarios:\n  - flow:\n"
                   "      - get: {url: /}\n")
    out = tmp_path / "r.json"
    proc = subprocess.Popen([BIN, "run", str(script), "-o", str(out), "-q"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    replies = [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"]
    for reply in replies:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(reply)
        conn.close()
    out_text, err = proc.communicate(timeout=30)
    srv.close()
    assert proc.returncode == 0, err
    c = load_report(out)["aggregate"]["counters"]
    assert c["vusers.failed"] == 2
    assert sum(v for k, v in c.items() if k.startswith("errors.")) == 2, c


def test_schedule_is_exact(tmp_path, upstream):
    # 30/s for 3 s: Artillery's 33 ms tick gives 90 here but 303 over 10 s; we give rate x duration
    script = write(tmp_path, "s.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 3\n      arrivalRate: 30\n"
                   "    - duration: 2\n      arrivalRate: 10\n      rampTo: 20\n"
                   "    - pause: 1\n"
                   "    - duration: 1\n      arrivalCount: 7\n"
                   "scenarios:\n  - flow:\n      - get: {url: /health}\n")
    out = tmp_path / "r.json"
    t0 = time.time()
    p = run("run", script, "-o", out, "-q", "--workers", "2")
    assert p.returncode == 0, p.stderr
    assert time.time() - t0 < 12
    c = load_report(out)["aggregate"]["counters"]
    assert c["vusers.created"] == 90 + (10 + 20) + 7
    assert c["vusers.completed"] == c["vusers.created"]


def test_expect_failure_exits_21(tmp_path, upstream):
    script = write(tmp_path, "e.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 2\n  plugins:\n    expect: {}\n"
                   "scenarios:\n  - flow:\n      - get:\n          url: /api/wishlist\n"
                   "          expect:\n            - statusCode: 200\n")
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out, "-q")
    assert p.returncode == 21, p.stderr
    c = load_report(out)["aggregate"]["counters"]
    assert c["plugins.expect.failed"] == 2 and c["http.codes.401"] == 2


def test_expect_pass_and_capture(tmp_path, upstream):
    script = write(tmp_path, "c.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 3\n  plugins:\n    expect: {}\n"
                   "scenarios:\n  - flow:\n"
                   "      - get:\n          url: /api/mocs\n          capture:\n"
                   "            - json: $.data[0].id\n              as: mocId\n"
                   "          expect:\n            - statusCode: 200\n            - contentType: json\n"
                   "      - get:\n          url: /echo/{{ mocId }}\n"
                   "          capture:\n            - json: $.target\n              as: t\n"
                   "          expect:\n            - hasProperty: headers\n"
                   "            - equals:\n                - \"{{ t }}\"\n"
                   "                - \"/echo/{{ mocId }}\"\n")
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out, "-q")
    assert p.returncode == 0, p.stdout + p.stderr
    c = load_report(out)["aggregate"]["counters"]
    assert c["vusers.completed"] == 3 and c["plugins.expect.ok"] == 12
    assert "plugins.expect.failed" not in c


def test_failed_capture_fails_user(tmp_path, upstream):
    script = write(tmp_path, "f.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 2\nscenarios:\n  - flow:\n"
                   "      - get:\n          url: /api/mocs\n          capture:\n"
                   "            - json: $.nothing.here\n              as: x\n"
                   "      - get: {url: /health}\n")
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out, "-q")
    assert p.returncode == 0
    c = load_report(out)["aggregate"]["counters"]
    assert c["errors.Failed capture or match"] == 2 and c["http.requests"] == 2


def test_ensure_failure_exits_1(tmp_path, upstream):
    script = write(tmp_path, "n.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 4\n  plugins:\n    ensure: {}\n"
                   "  ensure:\n    thresholds:\n      - http.response_time.p99: 10000\n"
                   "    conditions:\n      - expression: vusers.created == 5\n"
                   "scenarios:\n  - flow:\n      - get: {url: /health}\n")
    p = run("run", script)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Checks:" in p.stdout
    assert "ok: http.response_time.p99 < 10000" in p.stdout
    assert "fail: vusers.created == 5" in p.stdout


def test_loop_think_and_keepalive(tmp_path, upstream):
    script = write(tmp_path, "l.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 2\nscenarios:\n  - flow:\n"
                   "      - loop:\n          - get: {url: '/echo/{{ $loopCount }}'}\n"
                   "          - think: 0.01\n        count: 5\n")
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    c = load_report(out)["aggregate"]["counters"]
    assert c["http.codes.200"] == 10 and c["vusers.completed"] == 2


def test_sigint_writes_partial_report_and_exits_130(tmp_path, upstream):
    script = write(tmp_path, "i.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 60\n      arrivalRate: 20\nscenarios:\n  - flow:\n"
                   "      - get: {url: /health}\n")
    out = tmp_path / "r.json"
    proc = subprocess.Popen([BIN, "run", str(script), "-o", str(out), "-q"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    c = load_report(out)["aggregate"]["counters"]
    assert 20 <= c["vusers.created"] <= 60


def test_missing_upload_file_is_an_error_with_position(tmp_path):
    script = write(tmp_path, "m.yml", "config:\n  target: http://127.0.0.1:1\nscenarios:\n"
                   "  - flow:\n      - post:\n          url: /up\n          formData:\n"
                   "            f:\n              fromFile: ./nope.bin\n")
    p = run("run", script)
    assert p.returncode == 1
    assert re.search(r"m\.yml:\d+:\d+: .*nope\.bin", p.stderr), p.stderr


def test_distinct_error_names_are_capped(tmp_path):
    # Each user fails with its own rendered URL in the error code: past 1000
    # distinct codes, new ones are counted together, so that metric names
    # (kept in every window and the aggregate) do not grow with the run.
    s = write(tmp_path, "s.yml", """
config:
  target: "http://127.0.0.1:9"
  phases:
    - duration: 2
      arrivalCount: 1200
scenarios:
  - flow:
      - get:
          url: "nope/{{ $randomString(16) }}"
""")
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    c = load_report(out)["aggregate"]["counters"]
    errors = {k: v for k, v in c.items() if k.startswith("errors.")}
    other = "errors.cutover: other errors past the first 1000 distinct ones"
    assert sum(errors.values()) == 1200 and c["vusers.failed"] == 1200
    assert len(errors) == 1001 and errors[other] == 200, len(errors)
    assert p.stderr.count("more than 1000 distinct errors") == 1, p.stderr


def test_uuid_is_a_fresh_v4_uuid_per_user(tmp_path, upstream):
    script = write(tmp_path, "u.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 20\nscenarios:\n  - flow:\n"
                   "      - log: 'id={{ $uuid }}'\n      - get: {url: /health}\n")
    p = run("run", script, "-q")
    assert p.returncode == 0, p.stderr
    ids = re.findall(r"^id=(.*)$", p.stdout, re.M)
    assert len(ids) == 20 and len(set(ids)) == 20, p.stdout
    v4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(v4.match(i) for i in ids), ids


def test_built_in_variables_for_every_user(tmp_path, upstream):
    # target, $testId and $environment are the same for every user (one string
    # per worker, shared); a user's own captures do not leak to the next user
    script = write(tmp_path, "v.yml", f"config:\n  target: {upstream.url}\n  phases:\n"
                   "    - duration: 1\n      arrivalCount: 6\n  environments:\n    staging: {}\n"
                   "scenarios:\n  - flow:\n"
                   "      - log: 'v={{ target }}|{{ $testId }}|{{ $environment }}|{{ mine }}'\n"
                   "      - get: {url: /health, capture: {json: '$.status', as: mine}}\n")
    p = run("run", script, "-q", "-e", "staging", "--workers", "2",
            env={"ARTILLERY_TEST_RUN_ID": "t_fixed"})
    assert p.returncode == 0, p.stderr
    lines = re.findall(r"^v=(.*)$", p.stdout, re.M)
    assert len(lines) == 6, p.stdout
    assert set(lines) == {f"{upstream.url}|t_fixed|staging|undefined"}, lines
