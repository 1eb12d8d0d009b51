"""`cutover run` flags from Artillery's CLI: --scenario-name, -s/--solo,
--dotenv (alias --env-file), against `cutover upstream`."""
from conftest import LEGO, load_report, run, write

SCRIPT = """config:
  target: {url}
  phases: [{{duration: 1, arrivalCount: 12}}]
  variables:
    token: "{{{{ $processEnvironment.CUTOVER_T_TOKEN }}}}"
scenarios:
  - name: browse
    weight: 10
    flow:
      - get: {{url: /health}}
  - name: buy things
    weight: 0
    flow:
      - get: {{url: /echo, headers: {{x-token: "{{{{ token }}}}"}}, capture: {{json: "$.headers", as: h}}}}
      - log: "h {{{{ h }}}}"
"""


def counters(path):
    return load_report(path)["aggregate"]["counters"]


def test_scenario_name_exact_and_regex(tmp_path, upstream):
    s = write(tmp_path, "s.yml", SCRIPT.format(url=upstream.url))
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out, "-q", "--scenario-name", "buy things")
    assert p.returncode == 0, p.stderr
    c = counters(out)
    assert c["vusers.created_by_name.buy things"] == 12 and "vusers.created_by_name.browse" not in c
    p = run("run", s, "-o", out, "-q", "--scenario-name", "^bro")
    assert counters(out)["vusers.created_by_name.browse"] == 12
    p = run("run", s, "-q", "--scenario-name", "nothing like it")
    assert p.returncode == 1 and "scenario 'nothing like it' not found" in p.stderr
    p = run("lint", s, "--scenario-name", "buy things")
    assert "buy things: weight 1, 100.0% of users (about 12)" in p.stdout
    assert "browse: weight 0, 0.0% of users" in p.stdout


def test_solo_runs_one_user(tmp_path, upstream):
    out = tmp_path / "r.json"
    p = run("run", LEGO, "-t", upstream.url, "-s", "-o", out, "-q")   # 70500 users planned
    assert p.returncode == 0, p.stderr
    c = counters(out)
    assert c["vusers.created"] == 1 and c["vusers.completed"] == 1
    p = run("lint", LEGO, "--solo")
    assert "1. unnamed: 1 users over 1 s, 1 arrival" in p.stdout


def test_dotenv_sets_variables_without_overriding(tmp_path, upstream):
    write(tmp_path, ".env", "# comment\nexport CUTOVER_T_TOKEN=\"s3cr3t\"  \nCUTOVER_T_KEPT=file\n"
          "CUTOVER_T_BARE = plain value # note\n")
    s = write(tmp_path, "s.yml", SCRIPT.format(url=upstream.url).replace(
        "x-token: \"{{ token }}\"",
        "x-token: \"{{ token }}\", x-kept: \"{{ $env.CUTOVER_T_KEPT }}\", "
        "x-bare: \"{{ $env.CUTOVER_T_BARE }}\""))
    p = run("run", s, "-q", "--scenario-name", "buy things", "-s", "--dotenv", tmp_path / ".env",
            env={"CUTOVER_T_KEPT": "environment"})
    assert p.returncode == 0, p.stderr
    h = [l for l in p.stdout.splitlines() if l.startswith("h ")]
    assert len(h) == 1
    assert '["x-token","s3cr3t"]' in h[0] and '["x-kept","environment"]' in h[0]
    assert '["x-bare","plain value"]' in h[0]
    p = run("run", s, "-q", "--env-file", tmp_path / "missing.env")
    assert p.returncode == 1 and "--dotenv" in p.stderr
