"""HTTPS against a TLS `cutover upstream` with a test CA: verification on by default."""
import subprocess

import pytest

from conftest import load_report, run, start_upstream, stop, write

SCRIPT = """
config:
  target: "{target}"
  phases:
    - duration: 2
      arrivalRate: 10
scenarios:
  - flow:
      - get:
          url: "/api/mocs"
      - get:
          url: "/health"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")

    def ssl(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=cutover test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return d


@pytest.fixture
def tls_upstream(tmp_path, pki):
    up = start_upstream(tmp_path, "--tls-cert", pki / "srv.pem", "--tls-key", pki / "srv.key",
                        name="tls")
    yield up
    stop(up.proc)


def go(tmp_path, target, *extra, env=None):
    script = write(tmp_path, "tls.yml", SCRIPT.format(target=target))
    out = tmp_path / "r.json"
    p = run("run", script, "-o", out, "-q", *extra, env=env)
    assert p.returncode == 0, p.stderr
    return load_report(out)["aggregate"]["counters"]


def test_https_verified_with_test_ca(tmp_path, tls_upstream, pki):
    c = go(tmp_path, tls_upstream.url, env={"NODE_EXTRA_CA_CERTS": str(pki / "ca.pem")})
    assert c["vusers.created"] == 20 and c["vusers.completed"] == 20
    assert c["http.codes.200"] == 40


def test_https_unknown_ca_fails_verification(tmp_path, tls_upstream):
    c = go(tmp_path, tls_upstream.url)
    assert c["vusers.failed"] == 20 and "vusers.completed" not in c
    errs = [k for k in c if k.startswith("errors.")]
    assert errs and all(c[k] for k in errs)
    assert any("UNABLE_TO_VERIFY" in k or "UNABLE_TO_GET_ISSUER" in k or "SELF_SIGNED" in k
               for k in errs), errs


def test_https_insecure_flag(tmp_path, tls_upstream):
    c = go(tmp_path, tls_upstream.url, "-k")
    assert c["vusers.completed"] == 20 and c["http.codes.200"] == 40


def test_https_reject_unauthorized_false_in_script(tmp_path, tls_upstream):
    script = write(tmp_path, "tls2.yml", SCRIPT.format(target=tls_upstream.url).replace(
        "  phases:", "  tls:\n    rejectUnauthorized: false\n  phases:"))
    out = tmp_path / "r2.json"
    p = run("run", script, "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    assert load_report(out)["aggregate"]["counters"]["vusers.completed"] == 20


def test_extended_metrics_dns_tcp_tls_total(tmp_path, tls_upstream, upstream):
    # 20 users, each with its own connection used twice: 20 connects, 40 requests
    script = write(tmp_path, "x.yml", SCRIPT.format(
        target=tls_upstream.url.replace("127.0.0.1", "localhost")).replace(
        "  phases:", "  tls: {rejectUnauthorized: false}\n  http: {extendedMetrics: true}\n  phases:"))
    out = tmp_path / "x.json"
    p = run("run", script, "-o", out)
    assert p.returncode == 0, p.stderr
    s = load_report(out)["aggregate"]["summaries"]
    assert s["http.dns"]["count"] == 20 and s["http.tcp"]["count"] == 20
    assert s["http.tls"]["count"] == 20 and s["http.total"]["count"] == 40
    assert s["http.total"]["max"] >= s["http.response_time"]["max"]
    assert s["http.tls"]["min"] > 0
    assert "http.tls:" in p.stdout and "http.dns:" in p.stdout
    # plain HTTP to an IP address: no lookup, no handshake; and off by default
    plain = write(tmp_path, "p.yml", SCRIPT.format(target=upstream.url).replace(
        "  phases:", "  http: {extendedMetrics: true}\n  phases:"))
    p = run("run", plain, "-o", out, "-q")
    s = load_report(out)["aggregate"]["summaries"]
    assert s["http.tcp"]["count"] == 20 and "http.tls" not in s and "http.dns" not in s
    p = run("run", write(tmp_path, "d.yml", SCRIPT.format(target=upstream.url)), "-o", out, "-q")
    assert "http.total" not in load_report(out)["aggregate"]["summaries"]
    p = run("run", write(tmp_path, "d.yml", SCRIPT.format(target=upstream.url)), "-o", out, "-q",
            env={"ARTILLERY_EXTENDED_HTTP_METRICS": "true"})
    assert load_report(out)["aggregate"]["summaries"]["http.total"]["count"] == 40
