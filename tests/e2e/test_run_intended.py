"""`cutover run --latency-from-intended`: the summary
cutover.response_time.intended (time from when a request should have been sent
to its complete response) beside http.response_time (TTFB), against
`cutover upstream`."""
import urllib.request

from conftest import load_report, run, write

NAME = "cutover.response_time.intended"
QUANTILES = ["min", "median", "p75", "p90", "p95", "p99", "max"]


def script(target, rate, duration, flow, extra=""):
    return f"""
config:
  target: "{target}"
  phases:
    - duration: {duration}
      arrivalRate: {rate}
{extra}
scenarios:
  - flow:
{flow}
"""


TWO_GETS = """      - get:
          url: "/api/mocs"
      - get:
          url: "/api/mocs/moc-1"
"""


def test_off_by_default(upstream, tmp_path):
    s = write(tmp_path, "s.yml", script(upstream.url, 10, 1, TWO_GETS))
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out)
    assert p.returncode == 0, p.stderr
    rep = load_report(out)
    assert NAME not in rep["aggregate"]["summaries"]
    assert all(NAME not in w["summaries"] for w in rep["intermediate"])
    assert NAME not in p.stdout


def test_recorded_everywhere_and_not_below_ttfb(upstream, tmp_path):
    s = write(tmp_path, "s.yml", script(upstream.url, 20, 2, TWO_GETS))
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out, "--latency-from-intended")
    assert p.returncode == 0, p.stderr
    rep = load_report(out)
    a = rep["aggregate"]
    assert a["counters"]["vusers.completed"] == 40
    it, rt = a["summaries"][NAME], a["summaries"]["http.response_time"]
    # Artillery's summary shape, once per response
    assert list(it) == list(rt)
    assert a["histograms"][NAME] == it
    assert it["count"] == rt["count"] == a["counters"]["http.responses"] == 80
    # from the intended send to the complete response: never below TTFB
    for q in QUANTILES:
        assert it[q] >= rt[q], (q, it, rt)
    # every window with responses has it, with the same count
    n = 0
    for w in rep["intermediate"]:
        if "http.response_time" in w["summaries"]:
            assert w["summaries"][NAME]["count"] == w["summaries"]["http.response_time"]["count"]
            n += w["summaries"][NAME]["count"]
    assert n == 80
    # and the console summary prints it
    summary = p.stdout[p.stdout.index("Summary report @"):]
    assert NAME + ":" in summary


def set_latency(up, spec):
    req = urllib.request.Request(f"{up.url}/_cutover/fault?latency={spec}", method="PUT")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def test_generator_delay_counts_in_intended_not_in_ttfb(upstream, tmp_path):
    # A slow upstream behind one shared connection (http.pool: 1): users queue
    # in the generator for the connection, so their requests go out later and
    # later than they should. TTFB (from the request written) stays at the
    # upstream's latency; the latency from the intended send time grows with
    # the queue, think time included as scheduled.
    set_latency(upstream, "fixed:100ms")
    flow = """      - get:
          url: "/api/mocs"
      - think: 0.2
      - get:
          url: "/api/mocs/moc-1"
"""
    s = write(tmp_path, "s.yml", script(upstream.url, 10, 2, flow, "  http:\n    pool: 1"))
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out, "-q", "--latency-from-intended")
    assert p.returncode == 0, p.stderr
    a = load_report(out)["aggregate"]
    c = a["counters"]
    assert c["vusers.completed"] == 20 and c["http.responses"] == 40
    rt, it = a["summaries"]["http.response_time"], a["summaries"][NAME]
    # 40 responses of 100 ms each on one connection take >= 4 s for 2 s of
    # arrivals: the last requests wait about a second for it
    assert 95 <= rt["median"] and rt["p99"] < 400, rt
    assert it["max"] > 800 and it["p95"] > 4 * rt["p95"], (it, rt)
    # and without the queue (a connection per user) they stay close
    s2 = write(tmp_path, "s2.yml", script(upstream.url, 10, 2, flow))
    out2 = tmp_path / "r2.json"
    p = run("run", s2, "-o", out2, "-q", "--latency-from-intended")
    assert p.returncode == 0, p.stderr
    a2 = load_report(out2)["aggregate"]["summaries"]
    assert a2[NAME]["p95"] < 2 * a2["http.response_time"]["p95"] + 50, a2
