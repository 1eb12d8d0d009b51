"""End-to-end test harness: starts the real cutover binary on loopback ports it
picks (port 0 + --port-file) and stops everything it started."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
LEGO = SHARED / "cases" / "lego-api" / "load-test.yml"
BIN = os.environ.get("CUTOVER_BIN", str(ROOT / "cutover"))

# ASan's leak checker does not work under some process tracers; keep it on
# but make reports fail loudly.
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", LC_ALL="C")


class Upstream:
    def __init__(self, proc, url, port):
        self.proc, self.url, self.port = proc, url, port


def start_upstream(tmp_path, *args, name="upstream"):
    port_file = tmp_path / f"{name}.port"
    log = open(tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen(
        [BIN, "upstream", "--listen", "127.0.0.1:0", "--port-file", str(port_file), *args],
        stdout=log, stderr=subprocess.STDOUT, env=ENV)
    deadline = time.time() + 10
    while time.time() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            port = int(port_file.read_text().strip())
            scheme = "https" if "--tls-cert" in args else "http"
            return Upstream(proc, f"{scheme}://127.0.0.1:{port}", port)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("upstream did not start: " + (tmp_path / f"{name}.log").read_text())


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def upstream(tmp_path):
    up = start_upstream(tmp_path)
    yield up
    stop(up.proc)
    assert up.proc.returncode == 0, (tmp_path / "upstream.log").read_text()


@pytest.fixture
def colors(tmp_path):
    """A blue and a green `cutover upstream`, stopped after the test."""
    blue = start_upstream(tmp_path, "--color", "blue", name="blue")
    green = start_upstream(tmp_path, "--color", "green", name="green")
    yield blue, green
    stop(blue.proc)
    stop(green.proc)


def run(*args, timeout=120, env=None, cwd=None):
    """Runs `cutover ARGS...` to completion; returns CompletedProcess."""
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=dict(ENV, **(env or {})), cwd=cwd)


def load_report(path):
    with open(path) as f:
        return json.load(f)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p
