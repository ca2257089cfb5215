"""Tags in the web GUI over real HTTP (a real ``dcs serve --gui-config`` on 127.0.0.1):
list, show, create (one store, chosen stores, the whole calib directory, ``at`` a wall
time), publish and delete, with the web user in the tag and the history; refusals without
login, without ACL rights, without the CSRF token and for bad input get the library's
one-line message with a 4xx and leave every store file byte for byte unchanged."""
from __future__ import annotations

import html
import re
import urllib.parse

import pytest

pytest.importorskip("starlette", reason="needs the server extra: pip install 'pscalib[server]'")
pytest.importorskip("python_multipart", reason="needs python-multipart (extra gui)")

from conftest import file_digest  # noqa: E402
from gui_helpers import error_text, gui_config, login, post_form, request  # noqa: E402
from pscalib import DCStore  # noqa: E402
from pscalib.demo import build_demo  # noqa: E402
from pscalib.store.tags import create_tag, tag_names  # noqa: E402
from pscalib.timestamps import format_ns, now_ns  # noqa: E402
from serve_helpers import Served  # noqa: E402

EPIX, JF = "epix10ka-0001", "jungfrau-0001"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("guitags")
    info = build_demo(root / "calib")
    built = now_ns()  # every store's change log covers this wall time
    srv = Served(info.root, ["--gui-config", str(gui_config(root))])
    yield srv, info, built
    srv.stop()


def get(srv, path, cookie=None):
    return request(srv.base, "GET", path, headers={"Cookie": cookie} if cookie else {})


def digests(info):
    return {n: file_digest(p) for n, p in info.stores.items()}


def tags_of_store(info, det):
    with DCStore(info.stores[det]) as cs:
        return tag_names(cs.backend), cs.backend.tag_rows(), cs.history_records()


def test_refused_without_login_acl_or_csrf(site):
    srv, info, _ = site
    before = digests(info)
    st, _, body = get(srv, "/gui/tags")
    assert st == 200 and b"0 tags in the 2 stores" in body and b"tag-create" not in body
    assert b"log in to change" in body
    fields = {"name": "nope", "all": "1"}
    st, _, body = post_form(srv.base, "/gui/tags/create", fields)
    assert st == 401 and "log in" in error_text(body)
    ecookie, ecsrf = login(srv.base, "eve")  # logged in, not on the repository's list
    st, _, body = get(srv, f"/gui/d/{EPIX}/tags", ecookie)
    assert b"may not change the repository" in body and b"tag-create" not in body
    st, _, body = post_form(srv.base, "/gui/tags/create", dict(fields, csrf=ecsrf), ecookie)
    assert st == 403 and "'eve' may not change the repository" in error_text(body)
    cookie, csrf = login(srv.base, "alice")
    st, _, body = post_form(srv.base, "/gui/tags/create", fields, cookie)  # no token
    assert st == 403 and "CSRF" in error_text(body)
    st, _, _ = post_form(srv.base, "/gui/tags/create", dict(fields, csrf=csrf), cookie,
                         {"Origin": "http://evil.example"})
    assert st == 403
    assert digests(info) == before


def test_create_show_publish_delete(site):
    srv, info, built = site
    cookie, csrf = login(srv.base, "alice")
    st, _, body = get(srv, f"/gui/d/{EPIX}/tags", cookie)
    assert st == 200 and b"tag-create" in body
    # one store, from its tag page
    st, h, _ = post_form(srv.base, "/gui/tags/create", {
        "csrf": csrf, "name": "t1", "store": EPIX, "note": "first try"}, cookie)
    assert st == 303 and h["location"].startswith(f"/gui/d/{EPIX}/tags/t1?done=")
    assert "created in 1 stores" in urllib.parse.unquote(h["location"])
    names, rows, hist = tags_of_store(info, EPIX)
    assert names == ["t1"] and all(r.user == "alice" for r in rows)
    assert (hist[-1].user, hist[-1].action) == ("alice", "tag_create")
    assert tags_of_store(info, JF)[0] == []
    st, _, body = get(srv, f"/gui/d/{EPIX}/tags/t1", cookie)
    n_ranges = sum(1 for r in rows if r.ctype)
    assert st == 200 and f"Frozen selection: {n_ranges} ranges".encode() in body
    for r in rows:
        if r.ctype:
            assert r.sha256[:16].encode() in body
    assert b"tag-publish" in body and b"tag-delete" in body
    # the store page's version tables show the tag
    st, _, body = get(srv, f"/gui/d/{EPIX}")
    assert b'/gui/d/epix10ka-0001/tags"' in body and b"<td>t1</td>" in body
    # the whole calib directory, frozen at an earlier wall time
    st, h, _ = post_form(srv.base, "/gui/tags/create", {
        "csrf": csrf, "name": "prod-1", "all": "1", "at": format_ns(built)}, cookie)
    assert st == 303 and h["location"].startswith("/gui/tags/prod-1?")
    for det in (EPIX, JF):
        rows = [r for r in tags_of_store(info, det)[1] if r.name == "prod-1"]
        assert rows and rows[0].tsat == built and rows[0].user == "alice"
    st, _, body = get(srv, "/gui/tags")
    assert b"2 tags in the 2 stores" in body and f"{EPIX}, {JF}".encode() in body
    assert body.count(b'<span class="state">open</span>') == 2
    # publish: immutable; a delete is refused with the library's message (409)
    st, h, _ = post_form(srv.base, "/gui/tags/prod-1/publish", {"csrf": csrf}, cookie)
    assert st == 303 and "published in 2 stores" in urllib.parse.unquote(h["location"])
    for det in (EPIX, JF):
        _, rows, hist = tags_of_store(info, det)
        assert all(r.published for r in rows if r.name == "prod-1")
        assert (hist[-1].user, hist[-1].action) == ("alice", "tag_publish")
    st, _, body = get(srv, "/gui/tags", cookie)
    assert re.search(rb'href="/gui/tags/prod-1"[^>]*>prod-1</a>.*?<span class="state">published ',
                     body)
    st, _, body = get(srv, "/gui/tags/prod-1", cookie)
    assert b"tag-delete" not in body and b"tag-publish" not in body and b"immutable" in body
    before = digests(info)
    st, _, body = post_form(srv.base, "/gui/tags/prod-1/delete", {"csrf": csrf}, cookie)
    msg = error_text(body)
    assert st == 409 and "was published at" in msg and "cannot be deleted" in msg
    st, _, body = post_form(srv.base, "/gui/tags/prod-1/delete",
                            {"csrf": csrf, "store": JF}, cookie)
    assert st == 409 and "cannot be deleted" in error_text(body)
    st, h, _ = post_form(srv.base, "/gui/tags/prod-1/publish", {"csrf": csrf}, cookie)
    assert st == 303 and "already published" in urllib.parse.unquote(h["location"])
    assert digests(info) == before
    # delete the open tag of one store
    st, h, _ = post_form(srv.base, "/gui/tags/t1/delete", {"csrf": csrf, "store": EPIX},
                         cookie)
    assert st == 303 and h["location"].startswith(f"/gui/d/{EPIX}/tags?done=")
    names, _, hist = tags_of_store(info, EPIX)
    assert names == ["prod-1"] and (hist[-1].user, hist[-1].action) == ("alice", "tag_delete")
    st, _, body = get(srv, f"/gui/d/{EPIX}/history")
    assert re.search(rb"<b>alice</b>@[^<]*</td><td>/</td><td>tag_delete</td><td>t1", body)


@pytest.mark.parametrize("path, fields, status, words", [
    ("create", {"name": "bad name!", "all": "1"}, 400, ["bad tag name 'bad name!'"]),
    ("create", {"name": "../x", "all": "1"}, 400, ["bad tag name '../x'"]),
    ("create", {"name": "..", "store": EPIX}, 400, ["bad tag name '..'"]),
    ("create", {"name": "ok1", "store": ".."}, 400, ["'..'"]),
    ("create", {"name": "ok1", "store": "no-such-0009"}, 404, ["no-such-0009"]),
    ("create", {"name": "ok1", "store": [EPIX, "no-such-0009"]}, 404, ["no-such-0009"]),
    ("create", {"name": "ok1", "all": "1", "at": "yesterday-ish"}, 400, ["yesterday-ish"]),
    ("create", {"name": "ok1", "all": "1", "at": "2099-01-01"}, 404, ["in the future"]),
    ("create", {"name": "ok1", "all": "1", "at": "2001-01-01"}, 404, ["before"]),
    ("create", {"name": "ok1"}, 400, ["choose the stores"]),
    ("create", {"name": "only-jf", "all": "1"}, 400, ["already has a tag 'only-jf'"]),
    ("no-such-tag/publish", {}, 404, ["no store of 2 has a tag 'no-such-tag'"]),
    ("no-such-tag/delete", {"store": EPIX}, 404, ["has no tag 'no-such-tag'"]),
    ("%2e%2e/delete", {}, 400, ["bad tag name '..'"]),
    ("only-jf/delete", {"store": ".."}, 400, ["'..'"]),
])
def test_bad_tag_requests_change_nothing(site, path, fields, status, words):
    srv, info, _ = site
    cookie, csrf = login(srv.base, "alice")
    if "only-jf" not in tags_of_store(info, JF)[0]:  # a tag one store already has
        st, _, _ = post_form(srv.base, "/gui/tags/create",
                             {"csrf": csrf, "name": "only-jf", "store": JF}, cookie)
        assert st == 303
    before = digests(info)
    body = urllib.parse.urlencode(dict(fields, csrf=csrf), doseq=True).encode()
    st, _, page = request(srv.base, "POST", f"/gui/tags/{path}", body, {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    msg = html.unescape(error_text(page))
    assert st == status, (path, fields, st, msg)
    assert msg and "\n" not in msg and "Traceback" not in msg
    for w in words:
        assert w in msg, msg
    assert digests(info) == before


def test_read_pages_and_read_only(tmp_path):
    info = build_demo(tmp_path / "calib")
    with DCStore(info.stores[JF], mode="a") as cs:  # made by the library, shown by the GUI
        create_tag(cs, "lib-made", note="from the API")
    srv = Served(info.root)  # no configuration: read-only
    try:
        before = digests(info)
        st, _, body = get(srv, "/gui/tags")
        assert st == 200 and b"lib-made" in body and b"read-only" in body
        assert b"tag-create" not in body and b"from the API" in body
        st, _, body = get(srv, f"/gui/d/{JF}/tags/lib-made")
        assert st == 200 and b"Frozen selection" in body and b"tag-publish" not in body
        st, _, body = get(srv, f"/gui/d/{EPIX}/tags/lib-made")
        assert st == 404 and "has no tag 'lib-made'" in html.unescape(error_text(body))
        st, _, body = get(srv, "/gui/tags/..")
        assert st in (400, 404)
        st, _, body = post_form(srv.base, "/gui/tags/lib-made/publish", {})
        assert st in (401, 403) and "read-only" in error_text(body)
        assert digests(info) == before
    finally:
        srv.stop()
