"""`cutover run` with config.payload (CSV rows as variables) and list variables,
against `cutover upstream`: the rows reach the requests' paths and bodies."""
import collections
import re

from conftest import load_report, run, write


def logged(stdout, tag):
    return [l[len(tag) + 1:] for l in stdout.splitlines() if l.startswith(tag + " ")]


def test_sequence_rows_drive_paths(tmp_path, upstream):
    (tmp_path / "data").mkdir()
    write(tmp_path / "data", "mocs.csv",
          'id,title\r\n101,"Castle, big"\r\n\r\n102,"say ""hi"""\r\n103,plain\r\n')
    script = write(tmp_path, "s.yml", f"""config:
  target: {upstream.url}
  phases: [{{duration: 1, arrivalCount: 6}}]
  payload:
    path: data/mocs.csv
    fields: [id, title]
    skipHeader: true
    order: sequence
scenarios:
  - flow:
      - get:
          url: "/api/mocs/{{{{ id }}}}"
          capture: {{json: "$.id", as: got}}
      - log: "row {{{{ got }}}}|{{{{ title }}}}"
""")
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out, cwd="/")   # the path is relative to the script, not the cwd
    assert p.returncode == 0, p.stderr
    rows = logged(p.stdout, "row")
    assert collections.Counter(rows) == {'101|Castle, big': 2, '102|say "hi"': 2, '103|plain': 2}
    c = load_report(out)["aggregate"]["counters"]
    assert c["http.codes.200"] == 6 and c["vusers.completed"] == 6
    # endpoint names stay untemplated
    assert c["plugins.metrics-by-endpoint./api/mocs/{{ id }}.codes.200"] == 6
    assert "never defined" not in p.stderr


def test_random_rows_cast_delimiter_and_variables(tmp_path, upstream):
    write(tmp_path, "n.csv", "7;x\n8;y\n9;z\n")
    script = write(tmp_path, "s.yml", f"""config:
  target: {upstream.url}
  phases: [{{duration: 1, arrivalCount: 40}}]
  payload:
    - path: n.csv
      fields: [n, letter]
      delimiter: ";"
  variables:
    colour: [red, green, blue]
    letter: fixed
scenarios:
  - flow:
      - post:
          url: /echo
          json: {{n: "{{{{ n }}}}", colour: "{{{{ colour }}}}", letter: "{{{{ letter }}}}"}}
          capture: {{json: "$.body", as: sent}}
      - log: "sent {{{{ sent }}}}"
""")
    p = run("run", script, "-q")
    assert p.returncode == 0, p.stderr
    sent = logged(p.stdout, "sent")
    assert len(sent) == 40
    ns, colours = collections.Counter(), collections.Counter()
    for s in sent:
        m = re.fullmatch(r'\{"n":(\d),"colour":"(\w+)","letter":"fixed"\}', s)
        assert m, s            # n is a number (cast), config.variables win over CSV fields
        ns[m.group(1)] += 1
        colours[m.group(2)] += 1
    assert set(ns) <= {"7", "8", "9"} and len(ns) >= 2       # random rows, with replacement
    assert set(colours) <= {"red", "green", "blue"} and len(colours) >= 2


def test_load_all_and_cast_false(tmp_path, upstream):
    write(tmp_path, "t.csv", "sku,qty\nA1,003\nB2,4\n")
    script = write(tmp_path, "s.yml", f"""config:
  target: {upstream.url}
  phases: [{{duration: 1, arrivalCount: 1}}]
  payload:
    path: t.csv
    fields: [sku, qty]
    skipHeader: true
    cast: false
    loadAll: true
    name: items
scenarios:
  - flow:
      - loop:
          - get: {{url: "/api/mocs/{{{{ $loopElement.sku }}}}"}}
        over: items
      - log: "all {{{{ items }}}}"
""")
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out)
    assert p.returncode == 0, p.stderr
    assert logged(p.stdout, "all") == ['[{"sku":"A1","qty":"003"},{"sku":"B2","qty":"4"}]']
    assert load_report(out)["aggregate"]["counters"]["http.codes.200"] == 2


def test_bad_csv_is_an_error_with_its_line(tmp_path):
    write(tmp_path, "bad.csv", 'a\n"open\n')
    script = write(tmp_path, "s.yml", "config:\n  target: http://127.0.0.1:1\n"
                   "  payload: {path: bad.csv, fields: [a]}\nscenarios:\n  - flow: [{get: {url: /}}]\n")
    for cmd in ("run", "lint"):
        p = run(cmd, script)
        assert p.returncode == 1
        assert re.search(r"s\.yml:3:19: payload .*bad\.csv, line 2: quoted field not terminated",
                         p.stderr), p.stderr
