"""`cutover report`: the HTML page of a real `cutover run` and of Artillery's own
report, opened in headless Chromium (no console errors, every chart drawn, a
screenshot kept under tmp_path); bad input exits 1 with a clear message."""
import html
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import SHARED, load_report, run, write

REFERENCE = SHARED / "reference" / "artillery-2.0.21-report.json"
CHROMIUM = "/usr/bin/chromium"
SCENARIOS = ["List MOCs", "Get MOC by ID", "Search Gallery", "Get Wishlist", "Upload Image"]


def chromium(tmp_path, *args, timeout=90):
    """Runs headless Chromium on its own profile and process group, killed
    whole on timeout. Returns (returncode, stdout, stderr)."""
    assert os.path.exists(CHROMIUM), "chromium is not installed: run `make deps` (Debian package chromium)"
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--disable-background-networking", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, HOME=str(tmp_path)))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"chromium did not finish in {timeout} s: {args}")
    return proc.returncode, out, err


def expected_marks(report):
    """What each chart must draw for a JSON report, worked out here from the
    report itself: a point per window with a value (rate; p50, p95, p99) and
    a bar segment per window and status code or error with a count > 0."""
    wins = report["intermediate"]
    def rt(w):
        sums = w.get("summaries") or w.get("histograms") or {}
        s = sums.get("http.response_time") or {}
        it = sums.get("cutover.response_time.intended") or {}   # --latency-from-intended
        return (sum(1 for q in ("p50", "p95", "p99") if s.get(q) is not None) +
                sum(1 for q in ("p95", "p99") if it.get(q) is not None))
    marks = {
        "rate": sum(1 for w in wins if "http.request_rate" in w.get("rates", {})
                    or "http.requests" in w.get("counters", {})),
        "latency": sum(rt(w) for w in wins),
        "codes": sum(1 for w in wins for k, v in w["counters"].items()
                     if k.startswith("http.codes.") and v > 0),
        "errors": sum(1 for w in wins for k, v in w["counters"].items()
                      if k.startswith("errors.") and v > 0),
    }
    return {k: v for k, v in marks.items() if v or k != "errors"}


def check_in_browser(tmp_path, page, marks, name):
    """Opens `page` in headless Chromium: no console message or uncaught error,
    one canvas per chart of `marks` ({chart id: points and bars}), each drawn
    (data-rendered="1") with exactly that many marks and ink on it. Saves a
    1280x2000 screenshot and returns its path."""
    charts = len(marks)
    url = page.resolve().as_uri()
    rc, dom, err = chromium(tmp_path, "--dump-dom", url)
    assert rc == 0, err[-3000:]
    console = [line for line in err.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert not console, "\n".join(console)
    assert f'data-charts-rendered="{charts}"' in dom, dom[-2000:]
    canvases = re.findall(r"<canvas\b[^>]*>", dom)
    assert len(canvases) == charts, canvases
    for c in canvases:
        assert 'data-rendered="1"' in c, c
        ink = int(re.search(r'data-ink="(\d+)"', c).group(1))
        assert ink > 5000, c          # axes, labels, legend and the data, not a blank box
    drawn = {re.search(r'data-chart="(\w+)"', c).group(1): int(re.search(r'data-marks="(\d+)"', c).group(1))
             for c in canvases}
    assert drawn == marks, (drawn, marks)
    shot = tmp_path / f"{name}.png"
    rc, _, err = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert rc == 0, err[-3000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000, len(data)
    print(f"screenshot: {shot}")
    return shot


def card(page_text, label):
    m = re.search(r'<div class="label">' + re.escape(label) + r'</div><div class="value">([^<]*)</div>',
                  page_text)
    assert m, label
    return html.unescape(m.group(1))


def test_report_of_a_cutover_run(upstream, tmp_path):
    # ~12 s so the run spans at least two 10 s windows; a 404, a counted error and
    # ensure checks (one optional and failing) so every section has something to show.
    script = write(tmp_path, "s.yml", f"""config:
  target: {upstream.url}
  phases:
    - duration: 12
      arrivalRate: 8
  plugins:
    ensure: {{}}
  ensure:
    thresholds:
      - http.response_time.p99: 10000
    conditions:
      - expression: vusers.created < 0
        strict: false
scenarios:
  - name: "List <MOCs>"
    weight: 3
    flow:
      - get: {{url: /api/mocs}}
  - name: Missing
    weight: 1
    flow:
      - get: {{url: /status/404}}
  - name: Broken
    weight: 1
    flow:
      - get: {{url: 'nope/x'}}
""")
    out = tmp_path / "r.json"
    # with the latency from the intended send, shown beside http.response_time
    p = run("run", script, "-o", out, "-q", "--seed", "7", "--latency-from-intended", timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    rep = load_report(out)
    assert len(rep["intermediate"]) >= 2, len(rep["intermediate"])
    assert rep["ensure"]["passed"] is True
    assert [(c["check"], c["passed"], c["optional"]) for c in rep["ensure"]["checks"]] == [
        ("http.response_time.p99 < 10000", True, False), ("vusers.created < 0", False, True)]
    c = rep["aggregate"]["counters"]
    assert c["vusers.created"] == 96 and c["errors.Invalid URL - nope/x"] > 0

    page = tmp_path / "r.html"
    p = run("report", out, "-o", page, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"Report: {page}"
    text = page.read_text()
    assert card(text, "Requests") == str(c["http.requests"])
    assert card(text, "Failed users") == str(c["vusers.failed"])
    assert card(text, "Ensure") == "passed"
    assert "List &lt;MOCs&gt;" in text and "List <MOCs>" not in text
    assert "<td>Invalid URL - nope/x</td>" in text
    assert "<td>/api/mocs</td>" in text and "<td>/status/404</td>" in text
    assert '<td class="warn">fail (optional)</td><td>vusers.created &lt; 0</td>' in text
    it = rep["aggregate"]["summaries"]["cutover.response_time.intended"]
    assert card(text, "Intended latency p95").replace(",", "") == f"{it['p95']:g} ms"
    assert '<th class="n">intended p99</th>' in text
    assert "<td>cutover.response_time.intended</td>" in text      # the summaries table
    assert "from the intended send (cutover.response_time.intended)" in text  # the latency chart
    # rate, latency, status codes, errors
    marks = expected_marks(rep)
    assert len(marks) == 4 and marks["rate"] == len(rep["intermediate"]), marks
    shot = check_in_browser(tmp_path, page, marks, "cutover-run")
    assert shot.exists()

    # without -o: r.json -> r.html beside it
    page.unlink()
    p = run("report", out, timeout=30)
    assert p.returncode == 0, p.stderr
    assert page.exists() and page.read_text() == text


def test_report_of_artillerys_own_report(tmp_path):
    src = tmp_path / "artillery.json"
    shutil.copyfile(REFERENCE, src)
    p = run("report", src, timeout=30)
    assert p.returncode == 0, p.stderr
    page = tmp_path / "artillery.html"
    text = page.read_text()
    ref = load_report(REFERENCE)["aggregate"]
    assert card(text, "Requests") == str(ref["counters"]["http.requests"]) == "480"
    assert card(text, "Request rate") == "49 /s"
    assert card(text, "Failed users") == "20"
    assert card(text, "Duration") == "10.0 s"
    assert card(text, "Response time p95") == "1 ms"
    for s in SCENARIOS:
        assert f"<td>{s}</td><td class=\"n\">{ref['counters']['vusers.created_by_name.' + s]}</td>" in text
    assert "<td>/api/mocs/{{ mocId }}</td>" in text
    assert "<td>source.on is not a function</td>" in text
    assert 'id="ensure"' not in text            # Artillery writes no ensure results
    marks = expected_marks(load_report(REFERENCE))
    assert marks == {"rate": 2, "latency": 6, "codes": 2, "errors": 2}, marks
    check_in_browser(tmp_path, page, marks, "artillery-reference")


def test_browser_check_catches_a_broken_page(tmp_path):
    """The browser check itself must fail on a page whose script throws."""
    src = tmp_path / "a.json"
    shutil.copyfile(REFERENCE, src)
    assert run("report", src, timeout=30).returncode == 0
    page = tmp_path / "a.html"
    text = page.read_text()
    assert text.count("drawAll();\n") == 1
    page.write_text(text.replace("drawAll();\n", "null.x;\n"))
    with pytest.raises(AssertionError, match="Uncaught TypeError"):
        check_in_browser(tmp_path, page, expected_marks(load_report(REFERENCE)), "broken")


@pytest.mark.parametrize("content,message", [
    (None, "No such file or directory"),
    ("this is not json", "not valid JSON"),
    ('{"aggregate": {"counters": {"http.requests": "lots"}}}',
     "aggregate.counters.http.requests: expected a number"),
    ('[{"aggregate": {}}]', "not a load-test report"),
    ('{"aggregate": {}, "intermediate": [{"period": "later"}]}', "intermediate[0].period"),
])
def test_bad_input_exits_1(tmp_path, content, message):
    src = tmp_path / "in.json"
    if content is not None:
        src.write_text(content)
    p = run("report", src, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.startswith("cutover: error: ") and message in p.stderr, p.stderr
    assert "Sanitizer" not in p.stderr
    assert not (tmp_path / "in.html").exists()
    assert [f.name for f in tmp_path.iterdir()] == (["in.json"] if content is not None else [])


def test_usage_and_unwritable_output(tmp_path):
    assert run("report", timeout=30).returncode == 2
    assert run("report", "a.json", "b.json", timeout=30).returncode == 2
    p = run("report", "--help", timeout=30)
    assert p.returncode == 0 and "usage: cutover report" in p.stdout
    src = tmp_path / "a.json"
    shutil.copyfile(REFERENCE, src)
    p = run("report", src, "-o", tmp_path / "no" / "such" / "dir.html", timeout=30)
    assert p.returncode == 1 and "cannot write" in p.stderr, p.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.json"]
    before = src.read_bytes()
    p = run("report", src, "-o", src, timeout=30)
    assert p.returncode == 1 and "is the report itself" in p.stderr, p.stderr
    assert src.read_bytes() == before
