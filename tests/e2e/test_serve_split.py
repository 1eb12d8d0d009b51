"""`cutover serve`: the realised split matches the weight (smooth WRR, no
sticky key), weights change on the next request without dropping the
connection, and the forcing header works only when enabled."""
import threading

import pytest

from serve_util import (pipelined_colors, start_router, upstreams_yaml, write_config)


def test_split_accuracy_100k(tmp_path, colors):
    blue, green = colors
    cfg = write_config(tmp_path, "weight: 12.34\n" + upstreams_yaml([blue.url], [green.url],
                                                                      health=False))
    r = start_router(tmp_path, cfg)
    try:
        n_conns, per = 4, 25000
        results = [None] * n_conns

        def worker(i):
            results[i] = pipelined_colors(r.port, per, path="/health")

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(n_conns)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        allc = [c for res in results for c in res]
        assert len(allc) == 100000
        assert set(allc) == {"blue", "green"}
        share = 100.0 * allc.count("green") / len(allc)
        print(f"realised green share over {len(allc)} requests: {share:.3f}% (weight 12.34%)")
        assert abs(share - 12.34) <= 0.5, share
        # the router's own count agrees with what the clients saw
        st = r.status()
        g = st["windows"]["5m"]["green"]["requests"]
        b = st["windows"]["5m"]["blue"]["requests"]
        assert g == allc.count("green") and b == allc.count("blue"), (g, b)
    finally:
        assert r.stop() == 0, r.log()


def test_weight_change_applies_next_request_same_connection(tmp_path, colors):
    blue, green = colors
    cfg = write_config(tmp_path, "weight: 0\n" + upstreams_yaml([blue.url], [green.url],
                                                                  health=False))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        assert [r.get("/health", conn=c)[1] for _ in range(20)] == ["blue"] * 20
        r.set_weight(100)
        assert [r.get("/health", conn=c)[1] for _ in range(20)] == ["green"] * 20
        r.set_weight(50)
        got = [r.get("/health", conn=c)[1] for _ in range(20)]
        assert got.count("green") == 10, got   # smooth WRR: exactly alternating
        assert r.status()["weights"] == {"green": 50.0, "blue": 50.0}
        c.close()
    finally:
        assert r.stop() == 0, r.log()


@pytest.mark.parametrize("enabled", [True, False])
def test_forcing_header(tmp_path, colors, enabled):
    blue, green = colors
    force = "force_header: X-Cutover-Color\n" if enabled else ""
    cfg = write_config(tmp_path, "weight: 0\n" + force + upstreams_yaml([blue.url], [green.url],
                                                                          health=False))
    r = start_router(tmp_path, cfg)
    try:
        for _ in range(5):
            st, color, body = r.get("/echo", headers={"X-Cutover-Color": "green"})
            assert st == 200
            assert color == ("green" if enabled else "blue")
            if enabled:  # the tester's header is not passed on
                assert b"X-Cutover-Color" not in body
        # forcing blue while the weight says green
        r.set_weight(100)
        st, color, _ = r.get("/health", headers={"X-Cutover-Color": "blue"})
        assert color == ("blue" if enabled else "green")
        # a value that is not a colour is ignored
        st, color, _ = r.get("/health", headers={"X-Cutover-Color": "purple"})
        assert color == "green"
    finally:
        assert r.stop() == 0, r.log()
