"""`cutover run` on the lego-api script, unmodified, against `cutover upstream`."""
import json

from conftest import LEGO, SHARED, load_report, run

OVERRIDE = json.dumps({"config": {"phases": [{"duration": 10, "arrivalRate": 50}]}})
REFERENCE = SHARED / "reference" / "artillery-2.0.21-report.json"
SCENARIOS = ["List MOCs", "Get MOC by ID", "Search Gallery", "Get Wishlist", "Upload Image"]
SUMMARY_KEYS = ["min", "max", "count", "mean", "p50", "median", "p75", "p90", "p95", "p99", "p999"]


def test_lego_api_script_all_200(upstream, tmp_path):
    out = tmp_path / "r.json"
    p = run("run", LEGO, "-t", upstream.url, "--overrides", OVERRIDE, "-o", out)
    assert p.returncode == 0, p.stderr
    # warnings a careful user needs, printed once each
    assert "formData" in p.stderr and "source.on is not a function" in p.stderr
    assert p.stderr.count("expect") >= 1
    assert "Summary report @" in p.stdout and "All VUs finished" in p.stdout

    rep = load_report(out)
    agg = rep["aggregate"]
    c = agg["counters"]
    # exactly rate x duration arrivals (Artillery's integer tick would give 500 here too)
    assert c["vusers.created"] == 500
    assert c["vusers.completed"] == 500 and c["vusers.failed"] == 0
    assert not [k for k in c if k.startswith("errors.")], c
    # every request answered 200, the upload included
    assert c["http.requests"] == c["http.responses"] == c["http.codes.200"] == 500
    assert sum(c[f"vusers.created_by_name.{s}"] for s in SCENARIOS) == 500
    assert all(c.get(f"vusers.created_by_name.{s}", 0) > 0 for s in SCENARIOS)
    assert c["plugins.metrics-by-endpoint./api/gallery/{{ galleryImageId }}/image.codes.200"] == \
        c["vusers.created_by_name.Upload Image"]


def test_report_shape_matches_artillery(upstream, tmp_path):
    out = tmp_path / "r.json"
    p = run("run", LEGO, "-t", upstream.url, "--overrides", OVERRIDE, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    ours, ref = load_report(out), load_report(REFERENCE)
    assert list(ours) == list(ref) == ["aggregate", "intermediate"]
    a, ra = ours["aggregate"], ref["aggregate"]
    assert list(a) == list(ra)
    assert isinstance(a["period"], int)
    # every metric name Artillery reported (except its formData failure) is there
    for kind in ("counters", "rates", "summaries", "histograms"):
        want = {k for k in ra[kind] if "source.on" not in k}
        assert want <= set(a[kind]), (kind, want - set(a[kind]))
    for name, s in a["summaries"].items():
        assert list(s) == SUMMARY_KEYS, name
        assert s == a["histograms"][name]
    assert len(ours["intermediate"]) >= 2
    for w in ours["intermediate"]:
        assert isinstance(w["period"], str) and int(w["period"]) % 10000 == 0
        assert w["http.request_rate"] is None
        assert set(w) >= set(ref["intermediate"][0])
    assert sum(w["counters"]["vusers.created"] for w in ours["intermediate"]) == 500
    # rates: per window, and the aggregate is the mean of the windows' rates
    rates = [w["rates"]["http.request_rate"] for w in ours["intermediate"]]
    assert a["rates"]["http.request_rate"] == int(sum(rates) / len(rates) + 0.5)
    # our extra: how late arrivals started
    assert a["summaries"]["cutover.arrival_lag"]["count"] == 500
