"""The web GUI over real HTTP: a real ``dcs serve --gui-config`` on 127.0.0.1.

Read pages, pictures and downloads; logins, sessions, CSRF, tokens, proxy users; the ACL
per workspace kind; uploads; bad input gets the library's one-line message with a 4xx and
leaves the store file byte for byte unchanged.
"""
from __future__ import annotations

import html
import io
import re

import numpy as np
import pytest

pytest.importorskip("starlette", reason="needs the server extra: pip install 'pscalib[server]'")
pytest.importorskip("python_multipart", reason="needs python-multipart (extra gui)")
pytest.importorskip("matplotlib", reason="needs the plot extra")

from conftest import file_digest  # noqa: E402
from gui_helpers import (error_text, gui_config, login, multipart, post_form,  # noqa: E402
                         request)
from pscalib import DCStore  # noqa: E402
from pscalib.demo import build_demo  # noqa: E402
from pscalib.ndarrio import format_ndarrio, parse_ndarrio  # noqa: E402
from serve_helpers import Served  # noqa: E402
from test_cli import dcs, ok  # noqa: E402

R1 = "20240110T000000Z_20240301T000000Z"  # demo epix pedestals: v1 default, v2


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui")
    info = build_demo(root / "calib")
    srv = Served(info.root, ["--gui-config", str(gui_config(root))])
    yield srv, info
    srv.stop()


def get(srv, path, **headers):
    return request(srv.base, "GET", path, headers=headers)


def test_read_pages_pictures_downloads(site):
    srv, info = site
    st, _, body = get(srv, "/gui/")
    assert st == 200 and b"epix10ka-0001" in body and b"mfx_epix" in body
    st, _, body = get(srv, "/gui/?q=mfx")  # search by alias
    assert b'href="/gui/d/epix10ka-0001"' in body and b"/gui/d/jungfrau-0001" not in body
    st, h, _ = get(srv, "/")
    assert st == 307 and h["location"] == "/gui/"
    st, _, body = get(srv, "/gui/d/epix10ka-0001")
    assert st == 200 and body.count(b"<svg") == 4  # one timeline per ctype
    for word in (b"pedestals", b"geometry", b"v0002", b"sha256", b"default", b"gain_mode=AUTO"):
        assert word in body
    with DCStore(info.stores["epix10ka-0001"]) as cs:
        v2 = cs["pedestals"].rangeobj(R1).versobj(2)
        sha, arr = v2.info().sha256, v2.calib()
    assert sha[:12].encode() in body
    assert get(srv, "/gui/d/mfx_epix")[0] == 200  # by alias
    st, _, body = get(srv, f"/gui/d/epix10ka-0001/v/pedestals/{R1}/2")
    assert st == 200 and sha.encode() in body and b'id="figure"' in body
    st, h, png = get(srv, f"/gui/d/epix10ka-0001/img/pedestals/{R1}/2.png?view=raw")
    assert st == 200 and h["content-type"] == "image/png" and png.startswith(b"\x89PNG")
    import matplotlib.image as mi
    img = mi.imread(io.BytesIO(png))
    assert abs(img.shape[0] - 773) <= 3  # assembled by the store's geometry
    st, _, npy = get(srv, f"/gui/d/epix10ka-0001/dl/pedestals/{R1}/2.npy")
    assert st == 200 and np.array_equal(np.load(io.BytesIO(npy)), arr)
    st, h, text = get(srv, f"/gui/d/epix10ka-0001/dl/pedestals/{R1}/2.data")
    assert st == 200 and "attachment" in h["content-disposition"]
    back, hdr = parse_ndarrio(text.decode())
    assert np.array_equal(back, arr) and hdr.get("VERSION") == "v0002"
    st, _, body = get(srv, f"/gui/d/epix10ka-0001/diff/pedestals/{R1}?a=1&b=2")
    assert st == 200 and b"values differ" in body and b'id="diffimg"' in body
    st, _, png = get(srv, f"/gui/d/epix10ka-0001/img/pedestals/{R1}/1.png?view=figure&b=2")
    assert st == 200 and png.startswith(b"\x89PNG")
    geo_rng = "20230601T000000Z_20240301T000000Z"
    st, _, body = get(srv, f"/gui/d/jungfrau-0001/diff/geometry/{geo_rng}?a=1&b=1")
    assert st == 200 and b"identical" in body
    st, _, txt = get(srv, f"/gui/d/jungfrau-0001/dl/geometry/{geo_rng}/1.txt")
    with DCStore(info.stores["jungfrau-0001"]) as cs:
        assert txt.decode() == cs["geometry"].rangeobj(geo_rng).versobj(1).calib()
    st, _, body = get(srv, "/gui/d/epix10ka-0001/history")
    assert st == 200 and b"add_version" in body


@pytest.mark.parametrize("path, status, words", [
    ("/gui/d/..", 400, ["detector name", "contains '..'"]),
    ("/gui/d/no-such-0009", 404, ["no-such-0009"]),
    (f"/gui/d/epix10ka-0001/v/pedestals/{R1}/9", 404, ["9"]),
    ("/gui/d/epix10ka-0001/v/pedestals/not-a-time/1", 400, ["not-a-time"]),
    ("/gui/d/epix10ka-0001/v/..%2e/x/1", 400, [""]),
    (f"/gui/d/epix10ka-0001/diff/pedestals/{R1}?a=1&b=zz", 400, ["b must be a number"]),
    (f"/gui/d/epix10ka-0001/img/pedestals/{R1}/1.png?view=huge", 400, ["view"]),
    (f"/gui/d/epix10ka-0001/dl/pedestals/{R1}/1.exe", 400, ["npy"]),
    ("/gui/static/..%2Fapp.py", 404, []),
])
def test_bad_read_requests_are_4xx(site, path, status, words):
    srv, _ = site
    st, _, body = get(srv, path)
    assert st == status, (path, st, body[:300])
    msg = html.unescape(error_text(body) or body.decode(errors="replace"))
    assert "\n" not in msg.strip() and "Traceback" not in msg
    for w in words:
        assert w in msg


def test_login_session_and_csrf(site):
    srv, info = site
    store = info.stores["epix10ka-0001"]
    before = file_digest(store)
    keys = {"ctype": "pedestals", "range": R1, "version": "2"}
    # no login: 401 with the message, nothing changed
    st, _, body = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", keys)
    assert st == 401 and "log in" in error_text(body)
    st, _, body = post_form(srv.base, "/gui/login", {"user": "alice", "password": "wrong"})
    assert st == 401 and "wrong password" in error_text(body)
    cookie, csrf = login(srv.base, "alice")
    # a forged cookie, a missing token and another site's origin are refused
    bad = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
    assert post_form(srv.base, "/gui/d/epix10ka-0001/set-default", dict(keys, csrf=csrf),
                     bad)[0] == 401
    st, _, body = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", keys, cookie)
    assert st == 403 and "CSRF" in error_text(body)
    st, _, _ = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", dict(keys, csrf=csrf),
                         cookie, {"Origin": "http://evil.example"})
    assert st == 403
    assert file_digest(store) == before
    # eve is logged in but not on the repository's access list
    ecookie, ecsrf = login(srv.base, "eve")
    st, _, body = post_form(srv.base, "/gui/d/epix10ka-0001/set-default",
                            dict(keys, csrf=ecsrf), ecookie)
    assert st == 403 and "may not change the repository" in error_text(body)
    assert file_digest(store) == before
    # alice may: the change is a transaction, the history names her
    st, h, _ = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", dict(keys, csrf=csrf),
                         cookie)
    assert st == 303 and "done=" in h["location"]
    with DCStore(store) as cs:
        r = cs["pedestals"].rangeobj(R1)
        assert r.versdef() == 2
        last = r.history_records()[-1]
        assert (last.user, last.action) == ("alice", "set_default")
    st, _, body = get(srv, "/gui/d/epix10ka-0001/history")
    assert re.search(rb"<b>alice</b>@[^<]*</td><td>pedestals/" + R1.encode()
                     + rb"</td><td>set_default", body)
    st, _, body = get(srv, "/gui/d/epix10ka-0001", Cookie=cookie)
    assert b'logged in as <b id="who">alice</b>' in body and b"act-default" in body
    # log out: the form's token is needed, then the cookie is cleared
    st, h, _ = post_form(srv.base, "/gui/logout", {"csrf": csrf}, cookie)
    assert st == 303 and "pscalib_session=" in h["set-cookie"]


def test_uploads_and_bad_input_change_nothing(site, tmp_path):
    srv, info = site
    store = info.stores["epix10ka-0001"]
    cookie, csrf = login(srv.base, "alice")
    url = "/gui/d/epix10ka-0001/upload"
    st, _, body = get(srv, url, Cookie=cookie)
    assert st == 200 and b'type="file"' in body
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    buf = io.BytesIO()
    np.save(buf, arr)
    fields = {"csrf": csrf, "ctype": "pixel_gain", "begin": "2024-04-01T00:00:00Z",
              "end": "", "pars": "run=42\nunits=ADU", "comment": "web upload",
              "make_default": "1"}

    npy = buf.getvalue()

    def up(fields, fname="g.npy", data=None, headers=None):
        body, ctype = multipart(fields, {"file": (fname, npy if data is None else data)})
        h = {"Content-Type": ctype, "Cookie": cookie}
        h.update(headers or {})
        return request(srv.base, "POST", url, body, h)

    st, h, _ = up(fields)
    assert st == 303, h
    with DCStore(store) as cs:
        v = cs.version_at("pixel_gain", "2024-05-01")
        assert np.array_equal(v.calib(), arr) and v.dictpars() == {"run": 42, "units": "ADU"}
        rec = v.rangeobj().history_records()[-1]
        assert rec.user == "alice" and "web upload" in rec.record
    text = format_ndarrio(np.ones((2, 2)), {})
    st, _, _ = up(dict(fields, ctype="pixel_rms"), "rms.data", text.encode())
    assert st == 303
    with DCStore(store) as cs:
        assert np.array_equal(cs.get("pixel_rms", "2024-05-01"), np.ones((2, 2)))
    before = file_digest(store)
    cases = [
        (dict(fields, begin="yesterday-ish"), "g.npy", None, 400, "yesterday-ish"),
        (dict(fields, begin="2024-05-01", end="2024-04-01"), "g.npy", None, 400, "end"),
        (dict(fields, ctype="../../etc"), "g.npy", None, 400, "calibration type"),
        (dict(fields, pars="../x=1"), "g.npy", None, 400, ".."),
        (dict(fields, pars="novalue"), "g.npy", None, 400, "key=value"),
        (fields, "bad.npy", b"\x93NUMPY garbage", 400, "bad.npy"),
        (fields, "x.bin", b"\xff\xfe\x00binary", 400, "UTF-8"),
        (fields, "big.npy", b"\x93NUMPY" + b"0" * (5 * 2**20), 413, "limit"),
    ]
    for flds, fname, data, status, word in cases:
        kw = {} if data is None else {"data": data}
        st, _, body = up(flds, fname, **kw)
        assert st == status, (flds, fname, st, error_text(body))
        msg = html.unescape(error_text(body))
        assert word in msg and "\n" not in msg, msg
    # a body that is not multipart at all, and a declared size beyond the limit
    st, _, _ = request(srv.base, "POST", url, b"--x\r\nbroken", {
        "Content-Type": "multipart/form-data; boundary=x", "Cookie": cookie})
    assert st in (400, 403)
    st, _, body = request(srv.base, "POST", url, b"", {
        "Content-Type": "multipart/form-data; boundary=x", "Cookie": cookie,
        "Content-Length": str(50 * 2**20)})
    assert st == 413
    assert file_digest(store) == before


def test_token_and_read_only_and_proxy_modes(tmp_path):
    info = build_demo(tmp_path / "calib")
    store = info.stores["epix10ka-0001"]
    keys = {"ctype": "pedestals", "range": R1, "version": "2"}
    res = ok(dcs("web-user", tmp_path / "users.txt", "bot", "--token"))
    token = res.stdout.strip().rsplit(" ", 1)[1]
    # experiment workspace: group ps-exp = alice, bot is not in it; then local: anyone
    cfg = gui_config(tmp_path, kind="experiment")
    srv = Served(info.root, ["--gui-config", str(cfg)])
    try:
        st, _, body = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", keys,
                                headers={"Authorization": f"Bearer {token}"})
        assert st == 403 and "not in group 'ps-exp'" in error_text(body)
        st, _, _ = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", keys,
                             headers={"Authorization": "Bearer not-a-token"})
        assert st == 401
    finally:
        srv.stop()
    cfg.write_text(cfg.read_text().replace("kind = experiment", "kind = local"))
    srv = Served(info.root, ["--gui-config", str(cfg)])
    try:
        st, _, _ = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", keys,
                             headers={"Authorization": f"Bearer {token}"})
        assert st == 303
        with DCStore(store) as cs:
            assert cs["pedestals"].rangeobj(R1).history_records()[-1].user == "bot"
    finally:
        srv.stop()
    # read-only (no config): pages work, every change is refused
    srv = Served(info.root)
    try:
        before = file_digest(store)
        assert b"read-only" in get(srv, "/gui/d/epix10ka-0001")[2]
        st, _, body = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", keys)
        assert st in (401, 403) and "read-only" in error_text(body)
        assert file_digest(store) == before
    finally:
        srv.stop()
    # remote_user from a trusted front proxy (127.0.0.1 here); CSRF still applies
    (tmp_path / "proxy.ini").write_text(
        "[gui]\nwrites = true\nauth = remote_user\ntrusted_proxies = 127.0.0.1\n"
        "[acl]\nkind = repository\nusers = carol\n")
    srv = Served(info.root, ["--gui-config", str(tmp_path / "proxy.ini")])
    try:
        st, _, body = get(srv, "/gui/d/epix10ka-0001", **{"X-Remote-User": "carol"})
        csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
        keys1 = dict(keys, version="1")
        st, _, _ = post_form(srv.base, "/gui/d/epix10ka-0001/set-default", keys1,
                             headers={"X-Remote-User": "carol"})
        assert st == 403  # no CSRF token
        st, _, _ = post_form(srv.base, "/gui/d/epix10ka-0001/set-default",
                             dict(keys1, csrf=csrf), headers={"X-Remote-User": "carol"})
        assert st == 303
        with DCStore(store) as cs:
            rec = cs["pedestals"].rangeobj(R1).history_records()[-1]
            assert rec.user == "carol" and cs["pedestals"].rangeobj(R1).versdef() == 1
    finally:
        srv.stop()


def test_bad_config_is_one_line(tmp_path):
    (tmp_path / "bad.ini").write_text("[acl]\nkind = galaxy\n")
    res = dcs("serve", tmp_path, "--port", "0", "--gui-config", tmp_path / "bad.ini")
    assert res.returncode == 1 and "galaxy" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_validate_and_deprecate_over_http(site):
    """A candidate (added by the library) is validated through the GUI's state form, then
    deprecated; both are recorded on the version with the web user; a bad transition gets
    the library's message with 400 and changes nothing."""
    srv, info = site
    store = info.stores["jungfrau-0001"]
    with DCStore(store, mode="a") as cs:
        v = cs.add_constants("pixel_status", np.zeros((8, 512, 1024), np.uint8),
                             "2025-01-01", state="candidate")
        key = {"ctype": "pixel_status", "range": v.rangeobj().range(),
               "version": str(v.version())}
    cookie, csrf = login(srv.base, "alice")
    st, _, body = get(srv, "/gui/d/jungfrau-0001", Cookie=cookie)
    assert b"act-validate" in body
    st, h, _ = post_form(srv.base, "/gui/d/jungfrau-0001/state",
                         dict(key, op="validate", reason="checked by eye", csrf=csrf), cookie)
    assert st == 303 and "validated" in h["location"]
    with DCStore(store) as cs:
        v = cs["pixel_status"].rangeobj(key["range"]).versobj(int(key["version"]))
        rec = v.history_records()[-1]
        assert v.state() == "valid" and (rec.user, rec.action) == ("alice", "validate")
        assert "checked by eye" in rec.record
    before = file_digest(store)
    st, _, body = post_form(srv.base, "/gui/d/jungfrau-0001/state",
                            dict(key, op="validate", csrf=csrf), cookie)
    assert st == 400 and error_text(body) and file_digest(store) == before
    st, _, body = post_form(srv.base, "/gui/d/jungfrau-0001/state",
                            dict(key, op="explode", csrf=csrf), cookie)
    assert st == 400 and "deprecate or validate" in error_text(body)
    assert file_digest(store) == before
    st, h, _ = post_form(srv.base, "/gui/d/jungfrau-0001/state",
                         dict(key, op="deprecate", reason="bad mask", csrf=csrf), cookie)
    assert st == 303
    with DCStore(store) as cs:
        v = cs["pixel_status"].rangeobj(key["range"]).versobj(int(key["version"]))
        assert v.state() == "deprecated" and v.history_records()[-1].user == "alice"
