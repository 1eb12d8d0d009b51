"""`cutover lint`: the warnings `run` prints, each with file:line:col, and the plan."""
import json
import re
import subprocess

from conftest import BIN, ENV, LEGO, run, write

OVERRIDE = json.dumps({"config": {"phases": [{"duration": 1, "arrivalRate": 5}]}})


def warnings(stderr):
    return [l for l in stderr.splitlines() if l.startswith("cutover: warning: ")]


def test_lego_script_problems_with_file_and_line():
    p = run("lint", LEGO, env={"TEST_AUTH_TOKEN": "t0k"}, cwd=LEGO.parent)
    assert p.returncode == 0, p.stderr
    w = warnings(p.stderr)
    name = str(LEGO)
    # mocId is captured in "List MOCs" but used in "Get MOC by ID" (line 53, col 16)
    assert any(f"{name}:53:16: 'mocId' is captured only in scenario 'List MOCs'" in l for l in w), w
    # galleryImageId is never defined (line 89)
    assert any(f"{name}:89:16: 'galleryImageId' is never defined" in l for l in w), w
    # the ignored expect checks: one warning per expect list, at its line
    ignored = [l for l in w if "expect checks ignored" in l]
    assert [re.search(r":(\d+):\d+: ", l).group(1) for l in ignored] == ["45", "57", "69", "81", "97"]
    assert "(statusCode, contentType)" in ignored[0] and "(statusCode)" in ignored[-1]
    # the formData path: trap, and the multipart Content-Type without boundary
    assert any(f"{name}:95:21: formData field 'image' uses {{path: ...}}" in l and
               "source.on is not a function" in l for l in w), w
    assert any(f"{name}:92:27: Content-Type 'multipart/form-data' has no boundary" in l for l in w)
    assert not [l for l in w if "TEST_AUTH_TOKEN" in l]   # set in the environment here
    # the plan: phases with exact arrivals, the total, scenario shares
    out = p.stdout
    assert "1. Warm-up: 10/s for 60 s (1 min), 600 arrivals, starts at 0 s" in out
    assert "2. Ramp-up to 100 users: ramp 10/s -> 100/s over 120 s (2 min), 6600 arrivals" in out
    assert "3. Sustained load (1000 concurrent users): 100/s for 600 s (10 min), 60000 arrivals" in out
    assert "4. Ramp-down: ramp 100/s -> 10/s over 60 s (1 min), 3300 arrivals, starts at 780 s" in out
    assert "total: 840 s (14 min), 70500 users, peak 100/s" in out
    assert "List MOCs: weight 40, 38.1% of users" in out
    assert f"{name}: no errors, {len(w)} warnings" in out


def test_unset_environment_variable_is_named():
    env = {k: v for k, v in ENV.items() if k != "TEST_AUTH_TOKEN"}
    p = subprocess.run([BIN, "lint", str(LEGO)], capture_output=True, text=True, timeout=60,
                       env=env)
    assert p.returncode == 0, p.stderr
    assert any(f"{LEGO}:30:16: environment variable TEST_AUTH_TOKEN is not set" in l
               for l in warnings(p.stderr)), p.stderr


def test_run_prints_the_same_warnings_first(upstream, tmp_path):
    lint = run("lint", LEGO, "-t", upstream.url, "--overrides", OVERRIDE)
    p = run("run", LEGO, "-t", upstream.url, "--overrides", OVERRIDE, "-q")
    assert p.returncode == 0, p.stderr
    assert warnings(p.stderr) == warnings(lint.stderr) and warnings(p.stderr)
    assert p.stderr.startswith("cutover: warning: ")


def test_unknown_keys_functions_and_errors(tmp_path):
    script = write(tmp_path, "s.yml", """config:
  target: http://127.0.0.1:1
  phase:
    - duration: 1
      arrivalRate: 1
  processor: ./p.js
scenarios:
  - name: s
    beforeScenario: setUp
    flow:
      - get:
          url: /x
          heders: {a: b}
          beforeRequest: sign
      - function: compute
""")
    p = run("lint", script)
    assert p.returncode == 0, p.stderr
    w = "\n".join(warnings(p.stderr))
    assert "s.yml:3:3: unknown key 'phase' in config (did you mean 'phases'?)" in w
    assert "s.yml:13:11: unknown key 'heders' in request (did you mean 'headers'?)" in w
    assert "s.yml:9:21: beforeScenario 'setUp' will not run" in w
    assert "s.yml:14:26: beforeRequest 'sign' will not run" in w and "hook is skipped" in w
    assert "s.yml:15:19: function 'compute' will not run" in w
    assert 'errors.Undefined function' in w
    assert "Plan: 1 phase\n  1. unnamed: 1 users over 1 s, 1 arrival" in p.stdout  # no phases: one user

    bad = write(tmp_path, "ws.yml", "config:\n  target: ws://127.0.0.1:1\nscenarios:\n"
                "  - engine: ws\n    flow:\n      - send: hi\n")
    p = run("lint", bad)
    assert p.returncode == 1
    assert "ws.yml:4:13: scenario '0' uses engine 'ws': cutover runs only HTTP scenarios" in p.stderr
    assert "1 error" in p.stdout


def test_usage_errors():
    assert run("lint").returncode == 2
    assert run("lint", "--nope", "x.yml").returncode == 2
    assert run("lint", "/nonexistent/x.yml").returncode == 1


def test_the_done_when_command_line():
    # `cutover lint ../shared/cases/lego-api/load-test.yml`, run from the repository
    from conftest import ROOT
    rel = "../shared/cases/lego-api/load-test.yml"
    p = run("lint", rel, cwd=ROOT, env={"TEST_AUTH_TOKEN": "x"})
    assert p.returncode == 0, p.stderr
    for where in (":53:16: 'mocId' is captured only in scenario", ":89:16: 'galleryImageId' is never",
                  ":45:13: expect checks ignored", ":95:21: formData field 'image' uses {path"):
        assert f"cutover: warning: {rel}{where}" in p.stderr, (where, p.stderr)
