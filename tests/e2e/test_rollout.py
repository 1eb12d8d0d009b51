"""The rollout controller inside `cutover serve`, end to end: two sample
services as blue and green, the router with a rollout plan, traffic from
`cutover run`, the controller driven with the `cutover rollout` CLI and read
through the admin API. Plans are compressed to seconds."""
import http.server
import json
import signal
import subprocess
import threading
import time
import urllib.request

from conftest import BIN, ENV, run, start_upstream, stop, write
from serve_util import start_router, upstreams_yaml, wait_for, write_config


def plan(steps, gates=("error_rate < 1%", "p95 < 500ms"), trips=("error_rate > 2%",),
         min_requests=20, failure_limit=0, notify="", window="3s", extra=""):
    def flow(xs):
        return "[" + ", ".join(json.dumps(x) for x in xs) + "]"
    s = "".join(f"    - {{ weight: {w}, hold: {h}{', approve: true' if a else ''} }}\n"
                for w, h, a in steps)
    return ("state: journal.db\n"
            "rollout:\n  from: blue\n  to: green\n  steps:\n" + s +
            "  analysis:\n"
            f"    interval: 1s\n    window: {window}\n    min_requests: {min_requests}\n"
            f"    gates: {flow(gates)}\n    rollback_when: {flow(trips)}\n"
            "    tripwire_window: 1s\n    tripwire_min_requests: 10\n"
            f"    failure_limit: {failure_limit}\n" + extra + notify)


class Stack:
    """blue + green upstreams, the router with a plan, optional load."""

    def __init__(self, tmp_path, plan_text, green_args=(), health=True):
        self.tmp = tmp_path
        self.blue = start_upstream(tmp_path, "--color", "blue", name="blue")
        self.green = start_upstream(tmp_path, "--color", "green", *green_args, name="green")
        self.cfg = write_config(tmp_path, upstreams_yaml([self.blue.url], [self.green.url],
                                                         health=health) + plan_text)
        self.router = start_router(tmp_path, self.cfg)
        self.load = None

    def start_load(self, rate=150, name="load"):
        script = write(self.tmp, f"{name}.yml",
                       "config:\n"
                       f"  target: http://127.0.0.1:{self.router.port}\n"
                       f"  phases: [ {{ duration: 300, arrivalRate: {rate} }} ]\n"
                       "scenarios:\n  - flow:\n      - get: { url: /api/mocs }\n")
        self.load = subprocess.Popen([BIN, "run", str(script), "-q"], env=ENV,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.tmp / f"{name}.log", "w"))

    def restart_router(self):
        self.router = start_router(self.tmp, self.cfg, name="router2")

    def cli(self, *args):
        return subprocess.run([BIN, *args, "--admin", f"http://127.0.0.1:{self.router.admin_port}",
                               "--token-file", str(self.tmp / "admin.token")],
                              capture_output=True, text=True, timeout=30, env=ENV)

    def rollout(self):
        r, data = self.router.admin("GET", "/rollout/status", token=None)
        assert r.status == 200, data
        return json.loads(data)

    def events(self):
        r, data = self.router.admin("GET", "/rollout/events?limit=0", token=None)
        assert r.status == 200, data
        return json.loads(data)

    def close(self):
        if self.load and self.load.poll() is None:
            self.load.send_signal(signal.SIGINT)
            try:
                self.load.wait(20)
            except subprocess.TimeoutExpired:
                self.load.kill()
                self.load.wait()
        rc = self.router.stop()
        stop(self.blue.proc)
        stop(self.green.proc)
        return rc


def wait_state(st, want, timeout=30):
    return wait_for(lambda: st.rollout()["state"] in want, timeout=timeout, step=0.1)


def set_fault(upstream, **q):
    qs = "&".join(f"{k}={v}" for k, v in q.items())
    req = urllib.request.Request(f"{upstream.url}/_cutover/fault?{qs}", method="PUT")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def test_healthy_promotion(tmp_path):
    st = Stack(tmp_path, plan([(10, "1s", False), (50, "1s", False), (100, "1s", False)],
                              gates=("error_rate < 1%", "p95 < 500ms",
                                     "p95 <= baseline.p95 * 3 + 20ms")))
    try:
        st.start_load()
        p = st.cli("rollout", "start", "--by", "tester")
        assert p.returncode == 0, p.stderr
        assert wait_state(st, {"promoted"}), st.rollout()
        s = st.router.status()
        assert s["weights"] == {"green": 100.0, "blue": 0.0}
        assert s["rollout"]["state"] == "promoted"       # `cutover status` shows the rollout
        ev = st.events()
        weights = [e["weight"] for e in ev if e["kind"] != "analysis" or "advance" in e["action"]]
        assert weights[:3] == [10, 50, 100], ev
        assert ev[0]["kind"] == "command" and "tester" in json.dumps(ev[0])
        # every analysis names its inputs: sample sizes of both colours
        a = next(e for e in ev if e["kind"] == "analysis" and e["verdict"] == "PASS")
        assert a["record"]["inputs"]["green"]["requests"] >= 20, a
        table = st.cli("events")
        assert table.returncode == 0 and "advance to step 2" in table.stdout, table.stdout
        # a finished rollout cannot start again
        again = st.cli("rollout", "start")
        assert again.returncode == 1 and "already promoted" in again.stderr
    finally:
        assert st.close() == 0


def test_error_rate_tripwire_rolls_back_within_a_second(tmp_path):
    st = Stack(tmp_path, plan([(50, "60s", False), (100, "1s", False)], min_requests=10))
    try:
        st.start_load()
        assert st.cli("rollout", "start").returncode == 0
        # healthy traffic first, so the tripwire window holds good requests too
        assert wait_for(lambda: st.router.status()["windows"]["10s"]["green"]["requests"] > 60,
                        timeout=20), st.router.status()
        t0 = time.monotonic()
        set_fault(st.green, error_rate=0.5)
        while st.router.status()["weights"]["green"] > 0 and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        assert st.router.status()["weights"]["green"] == 0
        print(f"fault to weight 0: {elapsed * 1000:.0f} ms")
        assert elapsed < 1.0, f"fault to weight 0 took {elapsed:.3f} s"
        ro = st.rollout()
        assert ro["state"] == "rolled_back"
        trip = [e for e in st.events() if e["kind"] == "tripwire"]
        assert len(trip) == 1 and trip[0]["verdict"] == "FAIL", trip
    finally:
        assert st.close() == 0


def test_green_down_rolls_back_on_health(tmp_path):
    # no error rule can fire (99%), so only the health tripwire can act: green
    # killed mid-rollout loses its servers to health, its share goes to blue,
    # and the rollout rolls back instead of holding at a weight nobody serves
    st = Stack(tmp_path, plan([(50, "60s", False), (100, "1s", False)],
                              trips=("error_rate > 99%",), min_requests=10))
    try:
        st.start_load()
        assert st.cli("rollout", "start").returncode == 0
        assert wait_for(lambda: st.router.status()["windows"]["10s"]["green"]["requests"] > 30,
                        timeout=20), st.router.status()
        st.green.proc.kill()
        st.green.proc.wait()
        assert wait_for(lambda: st.rollout()["state"] == "rolled_back", timeout=10), st.rollout()
        assert st.router.status()["weights"]["green"] == 0
        trip = [e for e in st.events() if e["kind"] == "tripwire"]
        assert len(trip) == 1 and trip[0]["verdict"] == "FAIL", trip
        assert "green has no healthy server" in json.dumps(trip[0]), trip
    finally:
        assert st.close() == 0


def test_latency_gate_failure_rolls_back(tmp_path):
    # green is slow but not failing: the p95 gate fails at each hold's end
    st = Stack(tmp_path, plan([(20, "1s", False), (100, "1s", False)],
                              gates=("p95 < 100ms", "p95 <= baseline.p95 * 2"),
                              trips=("error_rate > 50%",), failure_limit=1),
               green_args=("--latency", "fixed:150ms"))
    try:
        st.start_load()
        assert st.cli("rollout", "start").returncode == 0
        assert wait_state(st, {"rolled_back", "promoted"}, timeout=40), st.rollout()
        ro = st.rollout()
        assert ro["state"] == "rolled_back", ro
        ev = st.events()
        fails = [e for e in ev if e["kind"] == "analysis" and e["verdict"] == "FAIL"]
        assert len(fails) == 2, ev         # failure_limit 1: the second failure rolls back
        assert "p95" in json.dumps(fails[-1]["record"]["gates"])
        assert st.router.status()["weights"]["green"] == 0
    finally:
        assert st.close() == 0


def test_hold_at_low_traffic(tmp_path):
    st = Stack(tmp_path, plan([(50, "1s", False), (100, "1s", False)], min_requests=500))
    try:
        st.start_load(rate=5)
        assert st.cli("rollout", "start").returncode == 0
        time.sleep(5)
        ro = st.rollout()
        assert ro["state"] == "progressing" and ro["step"] == 1, ro     # not promoted
        assert ro["waiting"] == "data", ro
        holds = [e for e in st.events() if e["verdict"] == "HOLD"]
        assert holds and "need about" in holds[-1]["action"], holds
        assert st.router.status()["weights"]["green"] == 50.0
    finally:
        assert st.close() == 0


def test_approval_step_waits(tmp_path):
    st = Stack(tmp_path, plan([(10, "1s", True), (100, "1s", False)]))
    try:
        st.start_load()
        assert st.cli("rollout", "start").returncode == 0
        assert wait_for(lambda: st.rollout().get("waiting") == "approval", timeout=20), st.rollout()
        time.sleep(2)
        ro = st.rollout()
        assert ro["step"] == 1 and ro["state"] == "progressing", ro     # still waiting
        p = st.cli("rollout", "approve", "--by", "alice")
        assert p.returncode == 0, p.stderr
        assert wait_state(st, {"promoted"}), st.rollout()
        assert any("alice" in json.dumps(e) for e in st.events())
    finally:
        assert st.close() == 0


def test_commands_need_the_token(tmp_path):
    st = Stack(tmp_path, plan([(10, "1s", False)]))
    try:
        r, data = st.router.admin("POST", "/rollout/start", {}, token=None)
        assert r.status == 401, data
        r, data = st.router.admin("POST", "/rollout/start", {}, token="wrong-token-123")
        assert r.status == 401, data
        assert st.rollout()["state"] == "idle"
        p = st.cli("rollout", "strat")
        assert p.returncode == 2 and "did you mean 'start'" in p.stderr
    finally:
        assert st.close() == 0


def test_kill_9_during_a_hold_resumes(tmp_path):
    st = Stack(tmp_path, plan([(10, "1s", False), (50, "8s", False), (100, "1s", False)]))
    try:
        st.start_load()
        assert st.cli("rollout", "start").returncode == 0
        assert wait_for(lambda: st.rollout()["step"] == 2, timeout=20), st.rollout()
        before = st.rollout()
        n_before = len(st.events())
        st.router.proc.send_signal(signal.SIGKILL)
        st.router.proc.wait()
        st.restart_router()
        after = st.rollout()
        assert after["state"] == "progressing" and after["step"] == 2, after
        assert after["deadline_ms"] == before["deadline_ms"]          # the rest of the hold
        assert st.router.status()["weights"]["green"] == 50.0         # weight re-applied
        ev = st.events()
        seqs = [e["seq"] for e in ev]
        assert seqs == sorted(set(seqs)) and len(ev) >= n_before      # nothing lost, no dupes
        # the load generator still targets the first router's port: point a new one here
        st.load.send_signal(signal.SIGINT)
        st.load.wait(20)
        st.start_load(name="load2")
        assert wait_state(st, {"promoted"}, timeout=40), st.rollout()
        # promotion came after the journaled deadline, never before it
        promo = [e for e in st.events() if e["weight"] == 100][0]
        assert promo["time_ms"] >= before["deadline_ms"], promo
    finally:
        assert st.close() == 0


def test_kill_9_right_after_a_decision(tmp_path):
    """Kill at the moment a step advance is journaled: on restart the
    weight is that decision's, applied once, and the decision not repeated."""
    st = Stack(tmp_path, plan([(10, "1s", False), (50, "30s", False), (100, "1s", False)]))
    try:
        st.start_load()
        assert st.cli("rollout", "start").returncode == 0
        assert wait_for(lambda: st.router.status()["weights"]["green"] == 50.0, timeout=20)
        st.router.proc.send_signal(signal.SIGKILL)
        st.router.proc.wait()
        st.restart_router()
        ev = st.events()
        advances = [e for e in ev if "advance to step 2" in e["action"]]
        assert len(advances) == 1, ev
        assert st.router.status()["weights"]["green"] == 50.0
        assert st.rollout()["step"] == 2
    finally:
        assert st.close() == 0


class Receiver(http.server.BaseHTTPRequestHandler):
    got = []
    lock = threading.Lock()
    fail_first = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Receiver.lock:
            if Receiver.fail_first > 0:
                Receiver.fail_first -= 1
                self.send_response(503)
                self.end_headers()
                return
            Receiver.got.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


def test_webhook_gets_every_event_once_in_order(tmp_path):
    Receiver.got = []
    Receiver.fail_first = 1          # the first delivery is refused: retried
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
    st = Stack(tmp_path, plan([(10, "1s", False), (50, "1s", False), (100, "1s", False)],
                              notify=f"  notify: [ {{ webhook: \"{url}\" }} ]\n"))
    try:
        st.start_load()
        assert st.cli("rollout", "start").returncode == 0
        assert wait_state(st, {"promoted"}), st.rollout()
        assert wait_for(lambda: any("promot" in json.dumps(g).lower() for g in Receiver.got),
                        timeout=15), Receiver.got
        time.sleep(1.5)
        got = list(Receiver.got)
        texts = [g["text"] for g in got]
        assert all(isinstance(t, str) and t for t in texts)       # Slack-compatible
        seqs = [g["decision"]["seq"] for g in got]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), seqs   # once, in order
        kinds = " ".join(texts).lower()
        assert "started" in kinds and "promoted" in kinds, texts
    finally:
        assert st.close() == 0
        srv.shutdown()


def test_plan_typos_stop_serve(tmp_path):
    """A typo in the plan must never silently mean no gate: serve refuses to
    start, naming file:line:column and the nearest valid key."""
    good = plan([(10, "1s", False), (100, "1s", False)])
    cases = [
        (good.replace("    gates:", "    gatess:"), "unknown key 'gatess' in rollout.analysis "
                                                    "(did you mean 'gates'?)"),
        ("".join(l for l in good.splitlines(True) if "rollback_when" not in l) +
         "  rollback_when: [\"error_rate > 2%\"]\n",
         "'rollback_when' does not belong in rollout but in rollout.analysis"),
        (good.replace("hold: 1s", "hlod: 48h", 1), "did you mean 'hold'?"),
        (good.replace("hold: 1s", "hold: 1s, aprove: true", 1), "did you mean 'approve'?"),
    ]
    for text, want in cases:
        cfg = write_config(tmp_path, upstreams_yaml(["http://127.0.0.1:9"], ["http://127.0.0.1:9"],
                                                    health=False) + text)
        p = run("serve", cfg, timeout=30)
        assert p.returncode == 1, (want, p.stderr)
        assert want in p.stderr and f"{cfg}:" in p.stderr, (want, p.stderr)


def test_rollout_help_says_what_pause_does():
    """The help matches docs/rollout.md: a pause freezes the schedule but the
    hold stays an absolute deadline (it does not stop counting down)."""
    p = run("rollout", "--help")
    assert p.returncode == 0, p.stderr
    text = p.stdout + p.stderr
    assert "holds stop counting down" not in text
    assert "deadline does not move" in text and "tripwires stay" in text, text


def test_events_from_the_journal_after_kill_9(tmp_path):
    """`cutover events --state FILE` reads the history straight from the
    journal, read-only, also after serve died."""
    st = Stack(tmp_path, plan([(10, "1s", False), (50, "30s", False), (100, "1s", False)]))
    try:
        st.start_load()
        assert st.cli("rollout", "start", "--by", "tester").returncode == 0
        assert wait_for(lambda: st.rollout()["step"] == 2, timeout=20), st.rollout()
        n = len(st.events())
        st.router.proc.send_signal(signal.SIGKILL)
        st.router.proc.wait()
        journal = tmp_path / "journal.db"
        p = run("events", "--state", journal, "--limit", "0")
        assert p.returncode == 0, p.stderr
        assert "start run 1: green to 10%" in p.stdout, p.stdout
        assert "advance to step 2" in p.stdout, p.stdout
        p = run("events", "--state", journal, "--json", "--limit", "0")
        assert p.returncode == 0, p.stderr
        ev = json.loads(p.stdout)
        assert len(ev) >= n and ev[0]["kind"] == "command" and "tester" in json.dumps(ev[0])
        p = run("events", "--state", tmp_path / "nope.db")
        assert p.returncode == 1 and "nope.db" in p.stderr, p.stderr
        st.restart_router()     # the journal is intact: serve takes it over again
        assert st.rollout()["step"] == 2
    finally:
        assert st.close() == 0
