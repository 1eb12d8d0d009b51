"""`cutover run`: the top-level before: and after: flows, run once around the
phases, against `cutover upstream`."""
from conftest import load_report, run, write

SCRIPT = """config:
  target: {url}
  phases: [{{duration: 1, arrivalCount: 5}}]
before:
  flow:
    - get:
        url: /api/mocs
        capture: {{json: "$.data[1].id", as: token}}
    - log: "before {{{{ token }}}}"
scenarios:
  - flow:
      - get: {{url: "/api/mocs/{{{{ token }}}}", capture: {{json: "$.id", as: got}}}}
      - log: "user {{{{ got }}}}"
after:
  flow:
    - get: {{url: "/echo/done-{{{{ token }}}}"}}
    - log: "after {{{{ token }}}}"
"""


def test_before_vars_seed_every_user_and_after_runs_last(tmp_path, upstream):
    s = write(tmp_path, "s.yml", SCRIPT.format(url=upstream.url))
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out)
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stdout.splitlines() if l.split(" ")[0] in ("before", "user", "after")]
    assert lines == ["before moc-2"] + ["user moc-2"] * 5 + ["after moc-2"], lines
    c = load_report(out)["aggregate"]["counters"]
    # the before and after flows are not part of the test's metrics
    assert c["vusers.created"] == 5 and c["http.requests"] == 5
    assert "never defined" not in p.stderr          # token comes from the before flow
    lint = run("lint", s)
    assert "Before flow: 2 steps, run once before the phases" in lint.stdout
    assert "After flow: 2 steps, run once after the phases" in lint.stdout


def test_failed_before_flow_warns(tmp_path, upstream):
    s = write(tmp_path, "s.yml", SCRIPT.format(url=upstream.url).replace(
        '"$.data[1].id"', '"$.nothing"'))
    p = run("run", s, "-q")
    assert p.returncode == 0, p.stderr
    assert "the before flow did not complete" in p.stderr
    bad = write(tmp_path, "b.yml", "config: {target: http://x}\nbefore: [{get: {url: /}}]\n"
                "scenarios: [{flow: [{get: {url: /}}]}]\n")
    p = run("lint", bad)
    assert p.returncode == 1 and "b.yml:2:9: before must be a map with a flow" in p.stderr
