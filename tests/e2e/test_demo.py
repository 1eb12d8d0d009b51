"""`cutover demo`, the README's main job: both acts end as expected, the
exit status says so, and the report folder holds what the summary names."""
import json

from conftest import run


def test_demo_promotes_then_rolls_back(tmp_path):
    out = tmp_path / "report"
    p = run("demo", "--out", out, timeout=150)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "both acts ended as expected" in p.stdout, p.stdout
    assert "=> promoted" in p.stdout and "=> rolled_back" in p.stdout, p.stdout
    assert "\r" not in p.stdout          # not a terminal: plain lines, no redraws
    summary = (out / "summary.md").read_text()
    assert "**both acts ended as expected**" in summary, summary
    for act in ("act1", "act2"):
        for f in ("serve.yml", "journal.db", "events.txt", "events.json", "steps.json",
                  "load.yml", "load-report.json", "load-report.html"):
            assert (out / act / f).stat().st_size > 0, (act, f)
    ev1 = json.loads((out / "act1" / "events.json").read_text())
    assert ev1[-1]["state"] == "promoted" and ev1[-1]["weight"] == 100
    ev2 = json.loads((out / "act2" / "events.json").read_text())
    trip = [e for e in ev2 if e["kind"] == "tripwire"]
    assert len(trip) == 1 and ev2[-1]["state"] == "rolled_back" and ev2[-1]["weight"] == 0
    steps = json.loads((out / "act1" / "steps.json").read_text())
    assert [s["green_weight"] for s in steps] == [10, 50, 100], steps
    # the load test went through the router: Artillery's report shape
    rep = json.loads((out / "act1" / "load-report.json").read_text())
    assert rep["aggregate"]["counters"]["http.codes.200"] > 500
