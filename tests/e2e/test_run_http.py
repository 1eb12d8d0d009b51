"""`cutover run`: cookies, redirects, form bodies and compressed responses,
against `cutover upstream` (its /cookies, /redirect, /redirect-to, /gzip,
/deflate and /echo endpoints)."""
import json
import re
import signal
import subprocess
import time
import urllib.parse
import zlib

from conftest import BIN, ENV, load_report, run, start_upstream, stop, write


def logged(stdout, tag):
    return [l[len(tag) + 1:] for l in stdout.splitlines() if l.startswith(tag + " ")]


def script(tmp_path, target, flow, config="", users=1):
    return write(tmp_path, "s.yml", f"config:\n  target: {target}\n"
                 f"  phases: [{{duration: 1, arrivalCount: {users}}}]\n{config}"
                 f"scenarios:\n  - flow:\n{flow}")


def counters(path):
    return load_report(path)["aggregate"]["counters"]


def test_cookie_jar_per_user_defaults_and_request_cookies(tmp_path, upstream):
    s = script(tmp_path, upstream.url, """      - get: {url: "/cookies/set?session={{ $uuid }}&theme=dark"}
      - get: {url: /cookies, capture: {json: "$.cookie", as: c1}}
      - get: {url: "/cookies/delete?theme", capture: {json: "$.cookie", as: c2}}
      - get: {url: /cookies, cookie: {extra: "v-{{ $uuid }}"}, capture: {json: "$.cookie", as: c3}}
      - log: "jar {{ $uuid }}|{{ c1 }}|{{ c2 }}|{{ c3 }}"
""", config="  defaults:\n    cookie: {team: blue}\n", users=3)
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out)
    assert p.returncode == 0, p.stderr
    lines = logged(p.stdout, "jar")
    assert len(lines) == 3
    for l in lines:
        uuid, c1, c2, c3 = l.split("|")
        # each user has its own jar: its own session only
        assert c1 == f"team=blue; session={uuid}; theme=dark", l
        assert c2 == f"team=blue; session={uuid}", l          # Max-Age=0 deletes
        assert c3 == f"team=blue; session={uuid}; extra=v-{uuid}", l
    c = counters(out)
    # /cookies/set and /cookies/delete answer 302 to /cookies: each hop counted
    assert c["http.requests"] == c["http.responses"] == 3 * 6
    assert c["http.codes.302"] == 3 * 2 and c["http.codes.200"] == 3 * 4
    assert c["vusers.completed"] == 3


def test_cookies_are_scoped_to_their_host_and_path(tmp_path, upstream):
    """RFC 6265 scoping, as Artillery's jar (tough-cookie): a cookie set by
    the target is not sent to another host, neither on a request there nor
    on a redirect hop there; a Path cookie only under its path."""
    other = start_upstream(tmp_path, "--listen", "127.0.0.2:0", name="other")
    try:
        o = f"http://127.0.0.2:{other.port}"
        s = script(tmp_path, upstream.url, f"""      - get: {{url: "/cookies/set?session=s1"}}
      - get: {{url: "{o}/cookies", cookie: {{mine: o1}}, capture: {{json: "$.cookie", as: at_other}}}}
      - get: {{url: "/redirect-to?url={o}/cookies", capture: {{json: "$.cookie", as: via_redirect}}}}
      - get: {{url: /cookies, capture: {{json: "$.cookie", as: at_target}}}}
      - get: {{url: "{o}/cookies", capture: {{json: "$.cookie", as: other_again}}}}
      - log: "scoped {{{{ at_other }}}}|{{{{ via_redirect }}}}|{{{{ at_target }}}}|{{{{ other_again }}}}"
""", config="  defaults:\n    cookie: {team: blue}\n")
        p = run("run", s)
        assert p.returncode == 0, p.stderr
        line = logged(p.stdout, "scoped")
        assert len(line) == 1, p.stdout
        at_other, via_redirect, at_target, other_again = line[0].split("|")
        assert at_other == "mine=o1", line          # not team=, not session=
        assert via_redirect == "mine=o1", line      # the hop to the other host: its own only
        assert at_target == "team=blue; session=s1", line   # and not mine=
        assert other_again == "mine=o1", line
    finally:
        stop(other.proc)


def test_redirects_followed_counted_and_limited(tmp_path, upstream):
    other = start_upstream(tmp_path, "--color", "green", name="other")
    try:
        s = script(tmp_path, upstream.url, f"""      - get: {{url: /redirect/3, capture: {{json: "$.redirected", as: r}}}}
      - get: {{url: /redirect/2, followRedirect: false}}
      - post:
          url: "/redirect-to?url=/echo&status=303"
          json: {{a: 1}}
          capture: {{json: "$.method", as: m303}}
      - post:
          url: "/redirect-to?url=/echo&status=307"
          json: {{a: 1}}
          capture: [{{json: "$.method", as: m307}}, {{json: "$.body", as: b307}}]
      - get:
          url: "/redirect-to?url={urllib.parse.quote(other.url + '/health', safe='')}"
          capture: {{json: "$.color", as: colour}}
      - log: "hops {{{{ r }}}}|{{{{ m303 }}}}|{{{{ m307 }}}}|{{{{ b307 }}}}|{{{{ colour }}}}"
      - get: {{url: /redirect/12}}
""", config="  plugins: {metrics-by-endpoint: {}}\n", users=2)
        out = tmp_path / "r.json"
        p = run("run", s, "-o", out, "-q")
        assert p.returncode == 0, p.stderr
        assert logged(p.stdout, "hops") == ['true|GET|POST|{"a":1}|green'] * 2
        c = counters(out)
        # per user: 4 + 1 + 2 + 2 + 2 requests, then 1 + 10 hops before the 11th redirect fails it
        assert c["http.requests"] == c["http.responses"] == 2 * (11 + 11)
        assert c["http.codes.303"] == 2 and c["http.codes.307"] == 2
        assert c["http.codes.302"] == 2 * (3 + 1 + 1 + 11)
        assert c["errors.ERR_TOO_MANY_REDIRECTS"] == 2 and c["vusers.failed"] == 2
        # metrics by endpoint: the step's final response only
        mbe = "plugins.metrics-by-endpoint."
        assert c[mbe + "/redirect/3.codes.200"] == 2 and mbe + "/redirect/3.codes.302" not in c
        assert c[mbe + "/redirect/2.codes.302"] == 2
    finally:
        stop(other.proc)


def test_form_is_urlencoded(tmp_path, upstream):
    s = script(tmp_path, upstream.url, """      - post:
          url: /echo
          form: {name: "a b&c", n: "{{ $loopCount }}", star: "*~"}
          capture: [{json: "$.body", as: body}, {json: "$.headers", as: h}]
      - log: "form {{ body }}"
      - log: "headers {{ h }}"
""")
    p = run("run", s, "-q")
    assert p.returncode == 0, p.stderr
    assert logged(p.stdout, "form") == ["name=a+b%26c&n=undefined&star=*%7E"]
    headers = dict((k.lower(), v) for k, v in json.loads(logged(p.stdout, "headers")[0]))
    assert headers["content-type"] == "application/x-www-form-urlencoded"


def test_gzip_and_deflate_are_decoded_for_captures_and_expects(tmp_path, upstream):
    s = script(tmp_path, upstream.url, """      - get:
          url: /gzip
          capture: {json: "$.accept_encoding", as: ae}
          expect: [{statusCode: 200}, {contentType: json}, {hasProperty: gzipped}]
      - get: {url: /deflate, capture: {json: "$.deflated", as: d}}
      - log: "gz {{ ae }}|{{ d }}"
""", config="  plugins: {expect: {formatter: silent}}\n")
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out)
    assert p.returncode == 0, p.stderr
    assert logged(p.stdout, "gz") == ["gzip, deflate|true"]
    c = counters(out)
    assert c["plugins.expect.ok"] == 3 and "plugins.expect.failed" not in c
    # downloaded bytes are the compressed bytes received, as Artillery counts them
    def packed(body, wbits):
        z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, wbits)
        return len(z.compress(body.encode()) + z.flush())
    gz = '{"gzipped":true,"method":"GET","accept_encoding":"gzip, deflate","color":"blue"}'
    df = '{"deflated":true,"method":"GET","accept_encoding":"gzip, deflate","color":"blue"}'
    assert c["http.downloaded_bytes"] == packed(gz, 31) + packed(df, 15)


def test_gzip_false_sends_no_accept_encoding(tmp_path, upstream):
    s = script(tmp_path, upstream.url, """      - get:
          url: /echo
          gzip: false
          capture: {json: "$.headers", as: h}
      - log: "h {{ h }}"
      - get: {url: /gzip, gzip: false, capture: {json: "$.gzipped", as: g}}
""")
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    names = [k.lower() for k, _ in json.loads(logged(p.stdout, "h")[0])]
    assert "accept-encoding" not in names and "user-agent" in names
    # the body stays compressed: the JSON capture fails the user
    assert counters(out)["errors.Failed capture or match"] == 1


def test_http_pool_shares_connections(tmp_path, upstream):
    # http.tcp (extendedMetrics) counts new connections
    flow = "      - get: {url: /delay/300}\n      - get: {url: /api/mocs}\n"
    out = tmp_path / "r.json"
    pooled = script(tmp_path, upstream.url, flow,
                    config="  http: {pool: 3, extendedMetrics: true}\n", users=40)
    p = run("run", pooled, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    rep = load_report(out)["aggregate"]
    c, s = rep["counters"], rep["summaries"]
    assert c["vusers.completed"] == 40 and c["http.codes.200"] == 80
    assert s["http.tcp"]["count"] == 3                    # three connections for 40 users
    # the same with two workers: each has its share, 3 in all
    p = run("run", pooled, "-o", out, "-q", "--workers", "2")
    rep = load_report(out)["aggregate"]
    assert rep["counters"]["http.codes.200"] == 80 and rep["summaries"]["http.tcp"]["count"] == 3
    # without a pool every user has its own connection
    own = script(tmp_path, upstream.url, flow, config="  http: {extendedMetrics: true}\n", users=40)
    run("run", own, "-o", out, "-q")
    assert load_report(out)["aggregate"]["summaries"]["http.tcp"]["count"] == 40
    bad = script(tmp_path, upstream.url, flow, config="  http: {pool: 0}\n")
    p = run("run", bad, "-q")
    assert p.returncode == 1 and "http.pool must be a number of connections" in p.stderr


def test_http_pool_limits_requests_in_flight(tmp_path, upstream):
    # 10 users, 2 connections: redirect hops queue behind waiting users, and once two
    # users hold both connections with a slow request nobody else gets one
    flow = "      - get: {url: /redirect/3}\n      - get: {url: /delay/3000}\n"
    s = script(tmp_path, upstream.url, flow, config="  http: {pool: 2}\n", users=10)
    proc = subprocess.Popen([BIN, "run", str(s), "-q", "-o", str(tmp_path / "r.json")], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    c = counters(tmp_path / "r.json")
    assert c["http.requests"] - c["http.responses"] == 2     # two in flight, no more
    assert c["http.codes.302"] >= 6 and c["http.codes.302"] >= 3 * c["http.codes.200"]


def test_probability_skips_requests(tmp_path, upstream):
    flow = ("      - get: {url: /health, probability: 0}\n      - get: {url: /api/mocs, probability: 100}\n"
            "      - get: {url: /api/wishlist, probability: 50}\n")
    out = tmp_path / "r.json"
    p = run("run", script(tmp_path, upstream.url, flow, users=200), "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    c = counters(out)
    mbe = "plugins.metrics-by-endpoint."
    assert mbe + "/health.codes.200" not in c and c[mbe + "/api/mocs.codes.200"] == 200
    assert 60 < c[mbe + "/api/wishlist.codes.401"] < 140     # about half of 200
    bad = script(tmp_path, upstream.url, "      - get: {url: /, probability: 101}\n")
    assert run("run", bad, "-q").returncode == 1


def test_if_true_expressions_over_variables(tmp_path, upstream):
    flow = """      - get: {url: /api/mocs, capture: {json: "$.data[0].id", as: first}}
      - get: {url: /health, ifTrue: "n > 2 and flag"}
      - get: {url: /api/mocs/a, ifTrue: "n * 2 == 6"}
      - get: {url: /api/mocs/b, ifTrue: "missing > 0"}
      - get: {url: /api/mocs/c, ifTrue: "not flag or n < 3"}
      - get: {url: /api/mocs/d, ifTrue: first}
      - get: {url: /api/mocs/e, ifTrue: "obj.k == 4"}
"""
    s = script(tmp_path, upstream.url, flow,
               config="  variables: {n: \"3\", flag: true, obj: {k: 4}}\n", users=2)
    out = tmp_path / "r.json"
    p = run("run", s, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    c = counters(out)
    mbe = "plugins.metrics-by-endpoint."
    ran = sorted(k[len(mbe):-len(".codes.200")] for k in c
                 if k.startswith(mbe) and k.endswith(".codes.200"))
    assert ran == ["/api/mocs", "/api/mocs/a", "/api/mocs/d", "/api/mocs/e", "/health"], ran
    assert c["http.requests"] == 2 * 5
    bad = script(tmp_path, upstream.url, "      - get: {url: /, ifTrue: \"n >\"}\n")
    p = run("lint", bad)
    assert p.returncode == 1 and "invalid ifTrue expression 'n >'" in p.stderr


def test_loop_value_and_element_names(tmp_path, upstream):
    flow = """      - loop:
          - get: {url: "/api/mocs/{{ item }}-{{ i }}"}
          - log: "it {{ i }}:{{ item }}:{{ $loopCount }}"
        over: [a, b, c]
        loopValue: i
        loopElement: item
      - loop:
          - log: "n {{ $loopCount }}"
        count: "2-4"
"""
    p = run("run", script(tmp_path, upstream.url, flow), "-q")
    assert p.returncode == 0, p.stderr
    assert logged(p.stdout, "it") == ["0:a:undefined", "1:b:undefined", "2:c:undefined"]
    assert logged(p.stdout, "n") == ["2", "3"]
    assert "never defined" not in p.stderr


def test_loops_nested_four_deep_in_recycled_users(tmp_path, upstream):
    """A user keeps two loop levels in its struct and moves to a larger
    table when a loop nests deeper; users that run one after the other are
    recycled, so the second user starts with the first's table."""
    flow = """      - loop:
          - loop:
              - loop:
                  - loop:
                      - log: "d {{ a }}{{ b }}{{ c }}{{ e }}"
                    over: [1, 2]
                    loopElement: e
                over: [x, y]
                loopElement: c
              - log: "mid {{ a }}{{ b }}"
            over: [m, n]
            loopElement: b
        over: [p, q]
        loopElement: a
      - log: "after {{ a }}"
      - loop:
          - log: "flat {{ $loopCount }}"
        count: 2
"""
    s = write(tmp_path, "s.yml", f"config:\n  target: {upstream.url}\n"
              "  phases: [{duration: 2, arrivalCount: 3}]\n"
              f"scenarios:\n  - flow:\n{flow}")
    p = run("run", s, "-q")
    assert p.returncode == 0, p.stderr
    one = [a + b + c + e for a in "pq" for b in "mn" for c in "xy" for e in "12"]
    assert logged(p.stdout, "d") == one * 3
    assert logged(p.stdout, "mid") == [a + b for a in "pq" for b in "mn"] * 3
    assert logged(p.stdout, "after") == ["q"] * 3    # the last element stays set
    assert logged(p.stdout, "flat") == ["0", "1"] * 3


def test_many_headers_and_the_jar_cookie(tmp_path, upstream):
    """Twelve request headers, two defaults and the jar's Cookie reach the
    target with their values, for users recycled one after the other."""
    hdrs = ", ".join(f"x-h{i}: \"v{i}-{{{{ $loopCount }}}}\"" for i in range(12))
    flow = f"""      - get: {{url: "/cookies/set?k=v1"}}
      - loop:
          - get: {{url: /echo, headers: {{{hdrs}}}, capture: {{json: "$.headers", as: h}}}}
          - log: "h {{{{ h }}}}"
        count: 2
"""
    s = write(tmp_path, "s.yml", f"config:\n  target: {upstream.url}\n"
              "  phases: [{duration: 2, arrivalCount: 3}]\n"
              "  defaults: {headers: {x-d1: one, x-d2: two}}\n"
              f"scenarios:\n  - flow:\n{flow}")
    p = run("run", s, "-q")
    assert p.returncode == 0, p.stderr
    seen = [json.loads(l) for l in logged(p.stdout, "h")]
    assert len(seen) == 6
    for n, h in enumerate(seen):
        h = {k.lower(): v for k, v in h}
        assert {f"x-h{i}": h.get(f"x-h{i}") for i in range(12)} == \
            {f"x-h{i}": f"v{i}-{n % 2}" for i in range(12)}, h
        assert h.get("x-d1") == "one" and h.get("x-d2") == "two", h
        assert h.get("cookie") == "k=v1", h


def test_think_jitter(tmp_path, upstream):
    out = tmp_path / "r.json"

    # 60 users: with 20, a uniform 50..550 ms spread left max <= 400 ms in
    # 0.7^20 (about 1 in 1,250) runs, and CI met one; 0.7^60 is about 5e-10.
    def lengths(flow, config=""):
        p = run("run", script(tmp_path, upstream.url, flow, config=config, users=60), "-o", out, "-q")
        assert p.returncode == 0, p.stderr
        return load_report(out)["aggregate"]["summaries"]["vusers.session_length"]

    plain = lengths("      - think: 0.3\n")
    assert plain["min"] >= 295 and plain["max"] < 400
    step = lengths("      - think: 0.3\n        jitter: \"100%\"\n")
    assert step["min"] < 200 and step["max"] > 400            # spread over 0..600 ms
    dflt = lengths("      - think: 0.3\n", config="  defaults: {think: {jitter: 250}}\n")
    assert dflt["min"] < 200 and dflt["max"] > 400
    bad = script(tmp_path, upstream.url, "      - think: 1\n        jitter: lots\n")
    assert run("lint", bad).returncode == 1


def test_while_true_loop_runs_once(tmp_path, upstream):
    flow = """      - loop:
          - get: {url: /health}
        whileTrue: moreToDo
"""
    out = tmp_path / "r.json"
    p = run("run", script(tmp_path, upstream.url, flow, users=2), "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    assert "whileTrue 'moreToDo' will not run" in p.stderr
    assert "only whileTrue, whose function cannot run: it runs once" in p.stderr
    assert counters(out)["http.requests"] == 2 and counters(out)["vusers.completed"] == 2


def test_request_timeouts_fire_on_time_and_a_met_one_does_not_hold_the_run(tmp_path, upstream):
    """http.timeout: a request slower than it fails as ETIMEDOUT at the
    timeout, not when the answer would come; requests that answer in time
    leave no timeout behind (the loop's deadline lists, http/client.c): a run
    of fast requests with a 30 s timeout ends at once."""
    def timed(flow, timeout, users):
        s = script(tmp_path, upstream.url, flow, config=f"  http: {{timeout: {timeout}}}\n",
                   users=users)
        t0 = time.monotonic()
        p = run("run", s, "-q", "-o", tmp_path / "r.json")
        assert p.returncode == 0, p.stderr
        return time.monotonic() - t0, counters(tmp_path / "r.json")

    took, c = timed("      - get: {url: /delay/50}\n      - get: {url: /delay/4000}\n", 1, 6)
    assert c.get("errors.ETIMEDOUT") == 6, c
    assert c.get("http.codes.200") == 6 and c.get("vusers.failed") == 6, c
    assert 1.9 < took < 3.5, took  # 1 s of arrivals, then 1 s of timeout

    took, c = timed("      - get: {url: /delay/20}\n      - get: {url: /delay/20}\n", 30, 20)
    assert c.get("http.codes.200") == 40 and c.get("vusers.completed") == 20, c
    assert "errors.ETIMEDOUT" not in c, c
    assert took < 6, took


def test_each_user_has_its_own_variables(tmp_path, upstream):
    """A user's variables start from the builtins alone: its own $uuid, the
    target, and nothing a user before it captured or overwrote (a recycled
    user reuses the last one's object only when its flow left it as made,
    vu.c)."""
    s = write(tmp_path, "s.yml", f"""config:
  target: {upstream.url}
  phases: [{{duration: 1, arrivalCount: 60}}]
scenarios:
  - name: plain
    flow:
      - log: "start {{{{ $uuid }}}} x={{{{ x }}}} t={{{{ target }}}}"
  - name: adds
    flow:
      - log: "start {{{{ $uuid }}}} x={{{{ x }}}} t={{{{ target }}}}"
      - post:
          url: /echo
          json: {{v: 1}}
          capture: [{{json: "$.method", as: x}}]
      - log: "after x={{{{ x }}}}"
  - name: overwrites
    flow:
      - log: "start {{{{ $uuid }}}} x={{{{ x }}}} t={{{{ target }}}}"
      - post:
          url: /echo
          json: {{v: 1}}
          capture: [{{json: "$.path", as: target}}]
      - log: "after t={{{{ target }}}}"
""")
    p = run("run", s, "-q")
    assert p.returncode == 0, p.stderr
    starts = logged(p.stdout, "start")
    assert len(starts) == 60, p.stdout
    assert "after x=POST" in p.stdout and "after t=/echo" in p.stdout, p.stdout
    uuids = [l.split()[0] for l in starts]
    assert len(set(uuids)) == 60, uuids
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u)
               for u in uuids), uuids
    rest = {" ".join(l.split()[1:]) for l in starts}
    assert len(rest) == 1 and "POST" not in rest.pop() and all(
        f"t={upstream.url}" in l for l in starts), starts
