"""`cutover serve`: sticky keys (header or cookie) are monotonic: raising
green's weight only moves users blue -> green, lowering it only back."""
import pytest

from serve_util import start_router, upstreams_yaml, write_config

USERS = [f"user-{i}" for i in range(1500)]


def assign(r, header):
    c = r.conn()
    out = {}
    for u in USERS:
        st, color, _ = r.get("/health", headers={header[0]: header[1](u)}, conn=c)
        assert st == 200
        out[u] = color
    c.close()
    return out


def greens(a):
    return {u for u, c in a.items() if c == "green"}


@pytest.mark.parametrize("kind", ["header", "cookie"])
def test_sticky_monotonic(tmp_path, colors, kind):
    blue, green = colors
    sticky = "sticky: { header: X-User-Id }\n" if kind == "header" else "sticky: { cookie: uid }\n"
    header = (("X-User-Id", lambda u: u) if kind == "header"
              else ("Cookie", lambda u: f"theme=dark; uid={u}; x=1"))
    cfg = write_config(tmp_path, "weight: 10\n" + sticky +
                       upstreams_yaml([blue.url], [green.url], health=False))
    r = start_router(tmp_path, cfg)
    try:
        a10 = assign(r, header)
        assert assign(r, header) == a10          # the same user, the same colour
        r.set_weight(30)
        a30 = assign(r, header)
        r.set_weight(20)
        a20 = assign(r, header)
        r.set_weight(0)
        a0 = assign(r, header)
        g10, g20, g30 = greens(a10), greens(a20), greens(a30)
        assert g10 <= g30, "raising the weight moved a user from green back to blue"
        assert g20 <= g30 and g10 <= g20, "lowering the weight moved a user blue -> green"
        assert greens(a0) == set()
        n = len(USERS)
        for g, w in ((g10, 10), (g20, 20), (g30, 30)):
            assert abs(100.0 * len(g) / n - w) < 4.0, (len(g), w)
    finally:
        assert r.stop() == 0, r.log()


def test_sticky_without_key_falls_back_to_weights(tmp_path, colors):
    blue, green = colors
    cfg = write_config(tmp_path, "weight: 50\nsticky: { header: X-User-Id }\n" +
                       upstreams_yaml([blue.url], [green.url], health=False))
    r = start_router(tmp_path, cfg)
    try:
        c = r.conn()
        got = [r.get("/health", conn=c)[1] for _ in range(40)]
        c.close()
        assert got.count("green") == 20, got
    finally:
        assert r.stop() == 0, r.log()
