"""`cutover run`: every expect check, its output formats and options, ensure
checks and the exit codes they give (0, 1 for ensure, 21 for expect), against
`cutover upstream`."""
import json

from conftest import load_report, run, write

ALL_PASS = """      - get:
          url: /api/mocs
          name: list
          capture: {json: "$.data[0].id", as: id}
          expect:
            - statusCode: [200, 201]
            - notStatusCode: [404, 500]
            - contentType: json
            - hasHeader: x-cutover-color
            - headerEquals: [x-cutover-color, blue]
            - hasProperty: "data[1].name"
            - notHasProperty: data.5
            - equals: ["{{ id }}", "{{ want }}", moc-1]
            - matchesRegexp: "Mill?ennium [A-Z]"
      - get:
          url: /health
          expect: {statusCode: 200, contentType: "application/json; charset=utf-8"}
"""

FAILING = """      - get:
          url: /health
          name: probe
          expect:
            - statusCode: 201
            - contentType: text/plain
            - hasHeader: x-nope
            - headerEquals: [x-cutover-color, green]
            - hasProperty: nope
            - notHasProperty: status
            - equals: [a, b]
            - matchesRegexp: "^nothing$"
            - notStatusCode: 200
      - get: {url: /health}
"""


def script(tmp_path, target, flow, expect_opts="{}", extra="", users=1):
    return write(tmp_path, "s.yml", f"config:\n  target: {target}\n"
                 f"  phases: [{{duration: 1, arrivalCount: {users}}}]\n"
                 f"  variables: {{want: moc-1}}\n  plugins:\n    expect: {expect_opts}\n{extra}"
                 f"scenarios:\n  - flow:\n{flow}")


def counters(path):
    return load_report(path)["aggregate"]["counters"]


def test_every_check_passes(tmp_path, upstream):
    out = tmp_path / "r.json"
    p = run("run", script(tmp_path, upstream.url, ALL_PASS, users=2), "-o", out)
    assert p.returncode == 0, p.stdout + p.stderr
    c = counters(out)
    assert c["plugins.expect.ok"] == 2 * 11 and "plugins.expect.failed" not in c
    for t in ["statusCode", "notStatusCode", "contentType", "hasHeader", "hasProperty",
              "notHasProperty", "equals", "matchesRegexp", "header x-cutover-color values equals"]:
        assert c[f"plugins.expect.ok.{t}"] >= 2, t
    # pretty (the default): every checked request, every check
    assert p.stdout.count("* GET /api/mocs - list\n\n  ok statusCode 200 \n  ok notStatusCode 200 \n"
                          "  ok contentType json \n") == 2
    assert "  ok header x-cutover-color values equals blue \n" in p.stdout
    assert "  ok equals moc-1, moc-1, moc-1 \n" in p.stdout
    assert "not ok" not in p.stdout


def test_failures_exit_21_and_print_expected_and_got(tmp_path, upstream):
    out = tmp_path / "r.json"
    p = run("run", script(tmp_path, upstream.url, FAILING), "-o", out)
    assert p.returncode == 21, p.stdout + p.stderr
    c = counters(out)
    assert c["plugins.expect.failed"] == 9 and "plugins.expect.ok" not in c
    assert c["vusers.completed"] == 1 and c["http.requests"] == 2  # the user goes on
    o = p.stdout
    assert "* GET /health - probe\n\n  not ok statusCode 200 \n  expected: 201\n       got: 200\n" in o
    assert "  not ok contentType application/json; charset=utf-8 \n  expected: text/plain\n" in o
    assert "  not ok hasHeader response has no x-nope header \n" in o
    assert "  not ok header x-cutover-color values equals blue \n  expected: green\n" in o
    assert "  not ok hasProperty response body has no nope property \n" in o
    assert "  not ok notHasProperty response body has status property \n" in o
    assert "  not ok equals a, b \n  expected: all values to be equal\n" in o
    assert "  not ok matchesRegexp false \n  expected: true\n" in o
    assert "  expected: Status code different than 200\n" in o
    assert "  Request params:\n    " + upstream.url + "/health\n" in o
    assert "  User variables:\n" in o and "     want : moc-1\n" in o


def test_json_checks_on_a_body_that_is_not_json(tmp_path, upstream):
    """contentType: json and hasProperty on an answer that is not JSON: the
    content type is named (not a parse failure), and the body is no object."""
    flow = """      - get:
          url: /bytes/3
          expect:
            - contentType: json
            - hasProperty: a
      - get:
          url: /health
          capture: {json: "$.status", as: s}
          expect:
            - contentType: json
            - hasProperty: status
            - equals: ["{{ s }}", ok]
"""
    out = tmp_path / "r.json"
    p = run("run", script(tmp_path, upstream.url, flow), "-o", out)
    assert p.returncode == 21, p.stdout + p.stderr
    o = p.stdout
    assert "  not ok contentType content-type is application/octet-stream \n" in o
    assert "  not ok hasProperty response body is not an object \n" in o
    assert "* GET /health \n\n  ok contentType json \n  ok hasProperty status \n  ok equals ok, ok \n" in o
    c = counters(out)
    assert c["plugins.expect.failed"] == 2 and c["plugins.expect.ok"] == 3


def test_report_failures_as_errors_and_names(tmp_path, upstream):
    out = tmp_path / "r.json"
    p = run("run", script(tmp_path, upstream.url, FAILING, "{reportFailuresAsErrors: true}"),
            "-o", out, "-q")
    assert p.returncode == 21
    c = counters(out)
    assert c[f"errors.Failed expectations for request {upstream.url}/health"] == 1
    assert c["vusers.failed"] == 1 and c["http.requests"] == 1  # the user stopped
    p = run("run", script(tmp_path, upstream.url, FAILING,
                          "{reportFailuresAsErrors: 'true', useOnlyRequestNames: true}"),
            "-o", out, "-q")
    assert counters(out)["errors.Failed expectations for request probe"] == 1


def test_output_formats(tmp_path, upstream):
    flow = ALL_PASS + FAILING
    p = run("run", script(tmp_path, upstream.url, flow, "{outputFormat: json}"), "-q")
    assert p.returncode == 21
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith('{"')]
    assert [l.get("name") for l in lines] == ["list", None, "probe"]
    assert lines[0]["url"] == "/api/mocs"
    assert lines[0]["results"][0] == {"ok": True, "expected": [200, 201], "type": "statusCode",
                                      "got": 200}
    assert lines[0]["results"][4] == {"ok": True, "type": "header x-cutover-color values equals",
                                      "expected": "blue", "got": "blue"}
    assert lines[2]["results"][7] == {"ok": False, "expected": True, "type": "matchesRegexp",
                                      "got": False}
    assert lines[2]["results"][8]["expected"] == "Status code different than 200"

    p = run("run", script(tmp_path, upstream.url, flow, "{formatter: prettyError}"), "-q")
    assert p.returncode == 21
    assert "* GET /health - probe" in p.stdout and "* GET /api/mocs" not in p.stdout

    p = run("run", script(tmp_path, upstream.url, flow, "{formatter: silent}"), "-q")
    assert p.returncode == 21
    assert "* GET" not in p.stdout and "{\"" not in p.stdout


def test_expect_default_200(tmp_path, upstream):
    out = tmp_path / "r.json"
    flow = "      - get: {url: /status/404}\n      - get: {url: /health}\n"
    p = run("run", script(tmp_path, upstream.url, flow, "{expectDefault200: true, formatter: silent}"),
            "-o", out, "-q")
    assert p.returncode == 21
    c = counters(out)
    assert c["plugins.expect.failed.statusCode"] == 1 and c["plugins.expect.ok.statusCode"] == 1


def test_ensure_checks_and_exit_codes(tmp_path, upstream):
    ensure = """  ensure:
    thresholds:
      - http.response_time.p99: 10000
      - vusers.created: 3
    conditions:
      - expression: "http.codes.200 == vusers.created * 2 and not (vusers.failed > 0)"
      - expression: "http.response_time.max < 0"
        strict: false
      - expression: "(vusers.completed + 1) % 2 == 0 ? 1 : 0"
    p95: 5000
    maxErrorRate: 0
"""
    flow = "      - get: {url: /health}\n      - get: {url: /api/mocs}\n"
    s = write(tmp_path, "e.yml", f"config:\n  target: {upstream.url}\n"
              f"  phases: [{{duration: 1, arrivalCount: 3}}]\n  plugins: {{ensure: {{}}}}\n{ensure}"
              f"scenarios:\n  - flow:\n{flow}")
    p = run("run", s)
    assert p.returncode == 1, p.stdout + p.stderr     # vusers.created < 3 fails (strict)
    checks = p.stdout[p.stdout.index("\nChecks:\n"):].splitlines()[2:]
    assert checks == [
        "ok: http.response_time.p99 < 10000",
        "ok: http.codes.200 == vusers.created * 2 and not (vusers.failed > 0)",
        "ok: (vusers.completed + 1) % 2 == 0 ? 1 : 0",
        "ok: p95 < 5000",
        "ok: maxErrorRate < 0",
        "fail: vusers.created < 3",
        "fail: http.response_time.max < 0 (optional)",
    ], checks
    # an optional failure alone does not fail the run
    s2 = write(tmp_path, "e2.yml", s.read_text().replace("      - vusers.created: 3\n", ""))
    assert run("run", s2, "-q").returncode == 0
    # ensure failing after an expect failure: 1 wins over 21
    s3 = write(tmp_path, "e3.yml", s.read_text().replace(
        "  plugins: {ensure: {}}", "  plugins: {ensure: {}, expect: {formatter: silent}}").replace(
        "      - get: {url: /health}\n", "      - get: {url: /health, expect: [{statusCode: 500}]}\n"))
    assert run("run", s3, "-q").returncode == 1
    s4 = write(tmp_path, "e4.yml", s3.read_text().replace("      - vusers.created: 3\n", ""))
    assert run("run", s4, "-q").returncode == 21
    # ARTILLERY_DISABLE_ENSURE turns the checks off
    p = run("run", s, "-q", env={"ARTILLERY_DISABLE_ENSURE": "1"})
    assert p.returncode == 0 and "Checks:" not in p.stdout


def test_apdex(tmp_path, upstream):
    flow = ("      - get: {url: /health}\n      - get: {url: /delay/100}\n"
            "      - get: {url: /delay/300}\n")
    s = write(tmp_path, "a.yml", f"config:\n  target: {upstream.url}\n"
              "  phases: [{duration: 1, arrivalCount: 2}]\n  plugins: {apdex: {threshold: 50}}\n"
              f"scenarios:\n  - flow:\n{flow}")
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out)
    assert p.returncode == 0, p.stderr
    c = counters(out)
    assert c["apdex.satisfied"] == 2 and c["apdex.tolerated"] == 2 and c["apdex.frustrated"] == 2
    assert "\nApdex score: 0.5 (poor)\n" in p.stdout
    # config.apdex alone enables it; the default threshold is 500 ms
    s2 = write(tmp_path, "a2.yml", s.read_text().replace(
        "  plugins: {apdex: {threshold: 50}}\n", "  apdex: {}\n"))
    p = run("run", s2, "-o", out)
    assert counters(out)["apdex.satisfied"] == 6 and "Apdex score: 1 (excellent)" in p.stdout
