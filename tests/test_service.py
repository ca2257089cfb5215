"""The HTTP service (issue 19): a real ``dcs serve`` process on 127.0.0.1, real HTTP.

Every endpoint, ETag/304, immutable payload headers, JSON errors with the library's
messages, a commit seen by the next request, hostile paths and parameters (4xx, and no
file outside CALIB is ever opened: FIFOs placed outside would block any reader, and are
checked to have had none).
"""
from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="needs the server extra: pip install 'pscalib[server]'")

from pscalib import DCStore  # noqa: E402
from pscalib.aliases import add_alias  # noqa: E402
from pscalib.store.payload import checksum  # noqa: E402
from serve_helpers import DCS, Served, get, get_json  # noqa: E402

IMMUTABLE = "public, max-age=31536000, immutable"
PEDS1 = np.arange(16, dtype=np.float32).reshape(4, 4)
PEDS2 = PEDS1 + 100
GEO = "# geometry\nquad 0\t1 2 3\n"


def make_calib(root: Path) -> Path:
    calib = root / "calib"
    with DCStore(calib / "cspad" / "cspad-0001.h5", mode="a") as cs:
        cs.add_constants("pedestals", PEDS1, "2024-01-01", "2024-06-01",
                         dictpars={"gain": 1.5, "runs": [1, 2], "bad": float("nan")})
        cs.add_constants("pedestals", PEDS2, "2024-01-01", "2024-06-01", make_default=False)
        cs.add_constants("pedestals", PEDS1 * 2, "2024-06-01")
        cs.add_constants("geometry", GEO, "2024-01-01")
        cs.add_constants("pixel_status", np.eye(4, dtype=bool), "2024-01-01")
    with DCStore(calib / "epix100a" / "epix100a-0002.h5", mode="a") as cs:
        cs.add_constants("pedestals", np.ones((2, 3), dtype=">i8"), "2024-01-01")
    add_alias(calib, "cxi_ds1", "cspad-0001", None, "2024-06-01")
    add_alias(calib, "cxi_ds1", "cspad-0003", "2024-06-01", None)
    return calib


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("svc")
    calib = make_calib(root)
    srv = Served(calib, ["--max-age", "7"])
    yield srv
    srv.stop()


def lookup(srv, name, ctype, **q):
    return get_json(srv, f"/api/v1/stores/{name}/{ctype}?{urllib.parse.urlencode(q)}")


# ------------------------------------------------------------------ endpoints
def test_index_health_and_detectors(served):
    st, h, doc = get_json(served, "/api/v1/detectors")
    assert st == 200 and h["content-type"] == "application/json"
    assert [d["detname"] for d in doc["detectors"]] == ["cspad-0001", "epix100a-0002"]
    assert {(a["alias"], a["detname"], a["file"]) for a in doc["aliases"]} == {
        ("cxi_ds1", "cspad-0001", "cspad/aliases.txt"),
        ("cxi_ds1", "cspad-0003", "cspad/aliases.txt")}
    assert h["cache-control"] == "public, max-age=7" and h["etag"].startswith('"')
    assert get_json(served, "/api/v1/health")[2]["status"] == "ok"
    assert "/api/v1/detectors" in get_json(served, "/api/v1")[2]["routes"]


def test_store_tree_equals_file(served):
    st, h, tree = get_json(served, "/api/v1/stores/cspad-0001")
    assert st == 200 and h["cache-control"] == "public, max-age=7"
    with DCStore(served.calib, "cspad-0001") as cs:
        assert sorted(tree["ctypes"]) == cs.ctypes()
        assert tree["detname"] == cs.detname() and tree["tscfile_ns"] == cs.tscfile()
        assert len(tree["history"]) == len(cs.history_records())
        for cname in cs.ctypes():
            ranges = tree["ctypes"][cname]["ranges"]
            assert [r["name"] for r in ranges] == [r.range() for r in cs[cname].ranges()]
            for r, fr in zip(ranges, cs[cname].ranges()):
                assert r["versdef"] == fr.versdef()
                assert [v["version"] for v in r["versions"]] == \
                    [v.version() for v in fr.versions()]
                for v, fv in zip(r["versions"], fr.versions()):
                    assert v["sha256"] == fv.info().sha256
                    assert v["payload_url"] == f"/api/v1/payloads/{v['sha256']}"
                    assert v["tsprod_ns"] == fv.tsprod()
    v1 = tree["ctypes"]["pedestals"]["ranges"][0]["versions"][0]["dictpars"]
    assert v1 == {"gain": 1.5, "runs": {"$ndarray": [1, 2], "dtype": "<i8"},
                  "bad": {"$float": "nan"}}
    # the alias resolves in the served calib directory (latest record without t=)
    assert get_json(served, "/api/v1/stores/cxi_ds1?t=2024-02-01")[2]["detname"] == "cspad-0001"
    st, _, doc = get_json(served, "/api/v1/stores/cxi_ds1")
    assert st == 404 and doc["error"] == "StoreNotFoundError" and "cspad-0003" in doc["message"]


def test_lookup_answers_like_the_library(served):
    with DCStore(served.calib, "cspad-0001") as cs:
        for t in ("2024-02-01", "2024-06-01T00:00:00", "2030-01-01", "1714564800"):
            st, h, doc = lookup(served, "cspad-0001", "pedestals", t=t)
            ver = cs.version_at("pedestals", t)
            assert st == 200, doc
            assert (doc["version"], doc["range"]) == (ver.version(), ver.rangeobj().range())
            assert doc["sha256"] == ver.info().sha256 == checksum(cs.get("pedestals", t))
            assert doc["payload_url"] == f"/api/v1/payloads/{doc['sha256']}"
            assert doc["default"] is True and h["cache-control"] == "public, max-age=7"
        st, _, doc = lookup(served, "cspad-0001", "pedestals", t="2024-02-01", vers="2")
        assert (st, doc["version"], doc["default"]) == (200, 2, False)
        assert doc["sha256"] == checksum(PEDS2)
        tp = cs["pedestals"].ranges()[0].versobj(1).tsprod()
        st, _, doc = lookup(served, "cspad-0001", "pedestals", t="2024-02-01",
                            tsprod=str(np.datetime64(tp, "ns")))
        assert (st, doc["version"]) == (200, 1)
    st, _, doc = lookup(served, "cxi_ds1", "geometry", t="2024-02-01")
    assert st == 200 and doc["detname"] == "cspad-0001" and doc["kind"] == "text"


def test_lookup_etag_and_304(served):
    path = "/api/v1/stores/cspad-0001/pedestals?t=2024-02-01"
    st, h, body = get(served, path)
    assert st == 200
    st2, h2, body2 = get(served, path, headers={"If-None-Match": h["etag"]})
    assert (st2, body2, h2["etag"], h2["cache-control"]) == (304, b"", h["etag"],
                                                              "public, max-age=7")
    assert get(served, path, headers={"If-None-Match": 'W/' + h["etag"]})[0] == 304
    assert get(served, path, headers={"If-None-Match": '"other"'})[0] == 200


def test_library_parameters_run_tag_asof(served):
    import inspect
    accepted = inspect.signature(DCStore.version_at).parameters
    for name in ("run", "tag", "asof"):
        st, _, doc = lookup(served, "cspad-0001", "pedestals", t="2024-02-01", **{name: "5"})
        if name not in accepted:
            assert st == 400 and doc["error"] == "InvalidInputError", doc
            assert f"{name}=" in doc["message"]
        else:  # the library grew it: answered by the library (or its own error)
            assert st in (200, 400, 404), doc


def test_asof_forms_answer_like_the_library(served):
    """asof= with vers=/tsprod= over HTTP: the library's answer (tsprod is not dropped)."""
    from pscalib.timestamps import now_ns
    t0 = f"{now_ns() / 1e9:.9f}"
    with DCStore(served.calib, "cspad-0001") as cs:
        tp = cs["pedestals"].ranges()[0].versobj(2).tsprod()  # not the default
        for q in ({}, {"vers": "2"}, {"tsprod": str(np.datetime64(tp, "ns"))}):
            st, _, doc = lookup(served, "cspad-0001", "pedestals", t="2024-02-01", asof=t0,
                                **q)
            ver = cs.version_at("pedestals", "2024-02-01", q.get("vers"), asof=t0,
                                tsprod=q.get("tsprod"))
            assert st == 200, doc
            assert (doc["version"], doc["sha256"]) == (ver.version(), ver.info().sha256)
        assert [ver.version() for ver in (
            cs.version_at("pedestals", "2024-02-01", asof=t0),
            cs.version_at("pedestals", "2024-02-01", asof=t0,
                          tsprod=np.datetime64(tp, "ns")))] == [1, 2]
        st, _, doc = lookup(served, "cspad-0001", "pedestals", t="2024-02-01", asof=t0,
                            vers="9")
        assert st == 404 and doc["error"] == "VersionNotFoundError", doc


def test_payloads_npy_and_text(served):
    with DCStore(served.calib, "cspad-0001") as cs:
        infos = {c: cs.version_at(c, "2024-02-01").info() for c in cs.ctypes()}
    for info in infos.values():
        st, h, body = get(served, f"/api/v1/payloads/{info.sha256}")
        assert st == 200
        assert h["etag"] == f'"{info.sha256}"' and h["cache-control"] == IMMUTABLE
        if info.kind == "text":
            assert h["content-type"] == "text/plain; charset=utf-8"
            assert body.decode("utf-8") == GEO
        else:
            assert h["content-type"] == "application/octet-stream"
            arr = np.load(io.BytesIO(body), allow_pickle=False)
            assert checksum(arr) == info.sha256
        st, h2, body2 = get(served, f"/api/v1/payloads/{info.sha256}",
                            headers={"If-None-Match": h["etag"]})
        assert (st, body2, h2["cache-control"]) == (304, b"", IMMUTABLE)
        st, h3, body3 = get(served, f"/api/v1/payloads/{info.sha256}", method="HEAD")
        assert (st, body3, h3["etag"]) == (200, b"", h["etag"])
    sha = checksum(np.ones((2, 3), dtype=">i8"))  # lives in the other store
    st, _, body = get(served, f"/api/v1/payloads/{sha}")
    assert st == 200 and np.load(io.BytesIO(body)).dtype == np.dtype(">i8")


def test_errors_are_json_with_library_messages(served):
    cases = [
        ("/api/v1/stores/cspad-0099", 404, "StoreNotFoundError"),
        ("/api/v1/stores/cspad-0001/pixel_gain?t=2024-02-01", 404, "CtypeNotFoundError"),
        ("/api/v1/stores/cspad-0001/pedestals?t=2023-01-01", 404, "NoValidConstantsError"),
        ("/api/v1/stores/cspad-0001/pedestals?t=2024-02-01&vers=9", 404,
         "VersionNotFoundError"),
        ("/api/v1/stores/cspad-0001/pedestals?t=yesterday", 400, "InvalidTimeError"),
        ("/api/v1/stores/cspad-0001/pedestals", 400, "InvalidInputError"),
        ("/api/v1/stores/cspad-0001/pedestals?time=2024-02-01", 400, "InvalidInputError"),
        ("/api/v1/stores/cspad-0001/pedestals?t=2024-02-01&t=2024-03-01", 400,
         "InvalidInputError"),
        ("/api/v1/stores/cspad-0001/Pedestals?t=2024-02-01", 400, "InvalidNameError"),
        ("/api/v1/stores/nosuchalias", 404, "AliasNotFoundError"),
        ("/api/v1/payloads/" + "0" * 64, 404, "NotFoundError"),
        ("/api/v1/payloads/xyz", 400, "InvalidInputError"),
        ("/api/v1/nothing/here", 404, "NotFoundError"),
    ]
    for path, status, name in cases:
        st, h, doc = get_json(served, path)
        assert (st, doc["error"]) == (status, name), (path, doc)
        assert h["content-type"] == "application/json" and h["cache-control"] == "no-store"
        assert doc["message"] and "Traceback" not in doc["message"]
    _, _, doc = get_json(served, "/api/v1/stores/cspad-0001/pedestals?t=2023-01-01")
    with DCStore(served.calib, "cspad-0001") as cs, pytest.raises(Exception) as ei:
        cs.get("pedestals", "2023-01-01")
    assert doc["message"] == " ".join(str(ei.value).split())  # the library's message
    st, h, doc = get_json(served, "/api/v1/detectors", method="POST")
    assert st == 405 and h["allow"] == "GET, HEAD" and "read-only" in doc["message"]


def test_damaged_store_is_503(tmp_path):
    calib = make_calib(tmp_path)
    (calib / "cspad" / "cspad-0009.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\xff" * 4000)
    srv = Served(calib)
    try:
        st, _, doc = get_json(srv, "/api/v1/stores/cspad-0009")
        assert st == 503 and doc["error"] in ("StoreFormatError", "CorruptStoreError"), doc
        assert "cspad-0009.h5" in doc["message"]
        # the other stores and the payload index are not affected
        assert get_json(srv, "/api/v1/stores/cspad-0001/pedestals?t=2024-02-01")[0] == 200
        assert get(srv, f"/api/v1/payloads/{checksum(PEDS1)}")[0] == 200
    finally:
        srv.stop()


def test_commit_is_seen_by_the_next_request(tmp_path):
    calib = make_calib(tmp_path)
    srv = Served(calib)
    try:
        path = "/api/v1/stores/cspad-0001/pedestals?t=2024-02-01"
        st, h, doc = get_json(srv, path)
        assert doc["version"] == 1
        _, th, tree = get_json(srv, "/api/v1/stores/cspad-0001")
        new = np.full((4, 4), 7, dtype=np.float32)
        with DCStore(calib, "cspad-0001", mode="a") as cs:
            cs.add_constants("pedestals", new, "2024-01-01", "2024-06-01")
        st, h2, doc2 = get_json(srv, path, headers={"If-None-Match": h["etag"]})
        assert st == 200 and doc2["version"] == 3 and doc2["sha256"] == checksum(new)
        assert h2["etag"] != h["etag"]
        assert get_json(srv, "/api/v1/stores/cspad-0001",
                        headers={"If-None-Match": th["etag"]})[0] == 200
        st, _, body = get(srv, doc2["payload_url"])  # the payload index followed the commit
        assert st == 200 and np.array_equal(np.load(io.BytesIO(body)), new)
        with DCStore(calib, "cspad-0001", mode="a") as cs:  # a new store appears too
            pass
        with DCStore(calib / "cspad" / "cspad-0003.h5", mode="a") as cs:
            cs.add_constants("pedestals", new * 3, "2024-01-01")
        assert get_json(srv, "/api/v1/stores/cxi_ds1")[0] == 200
        st, _, body = get(srv, f"/api/v1/payloads/{checksum(new * 3)}")
        assert st == 200
    finally:
        srv.stop()


# ------------------------------------------------------------------ hostile input
HOSTILE_NAMES = ["..", "%2e%2e", "%2E%2E", ".", "%00", "cspad-0001%00", "cspad-0001%00.h5",
                 "%2e%2e%2fcspad%2fcspad-0001", "..%2f..%2foutside", "%2fetc%2fpasswd",
                 "cspad-..", "..cspad-0001", "a" * 5000, "cspad-" + "1" * 300, "%ff%fe",
                 "cspad-0001.h5", "cspad%5ccspad-0001", "x%0a", "~root", "%252e%252e"]
HOSTILE_TIMES = ["nan", "inf", "-inf", "1e400", "9999-99-99", "2024-05-01T00:00:00%00",
                 "2024-02-01%0aX", "1" * 5000, "", "%00", "../../etc/passwd", "2024-13-01",
                 "-99999999999999"]


def _fifos_outside(calib: Path):
    root = calib.parent
    (root / "cspad").mkdir(exist_ok=True)
    paths = [root / "cspad" / "cspad-0001.h5", root / "cspad" / "aliases.txt",
             root / "outside.h5", root / "aliases.txt", root / "etc"]
    for p in paths:
        os.mkfifo(p)
    return paths


def _nobody_reads(fifo: Path) -> bool:
    """A non-blocking open for writing fails with ENXIO iff no process has it open to read."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        return exc.errno == errno.ENXIO
    os.close(fd)
    return False


def _open_outside(pid: int, calib: Path):
    root = os.path.realpath(calib.parent)
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(root) and not target.startswith(os.path.realpath(calib)):
            out.append(target)
    return out


def test_hostile_paths_and_parameters(tmp_path):
    calib = make_calib(tmp_path / "srv")
    fifos = _fifos_outside(calib)
    srv = Served(calib)
    try:
        seen = []
        urls = [f"/api/v1/stores/{n}" for n in HOSTILE_NAMES]
        urls += [f"/api/v1/stores/{n}/pedestals?t=2024-02-01" for n in HOSTILE_NAMES]
        urls += [f"/api/v1/stores/cspad-0001/{n}?t=2024-02-01" for n in HOSTILE_NAMES]
        urls += [f"/api/v1/stores/cspad-0001/pedestals?t={t}" for t in HOSTILE_TIMES]
        urls += [f"/api/v1/stores/cxi_ds1?t={t}" for t in HOSTILE_TIMES]
        urls += [f"/api/v1/stores/cspad-0001/pedestals?t=2024-02-01&vers={v}"
                 for v in ("-1", "0", "1e9", "v", "%00", "9" * 400)]
        urls += [f"/api/v1/payloads/{n}" for n in HOSTILE_NAMES + ["A" * 64, "0" * 63]]
        urls += ["/api/v1/stores/cspad-0001/pedestals?" + "x=1&" * 2000,
                 "/api/v1/../../../etc/passwd", "/api/v1/stores/..%2f..%2f..%2fetc%2fpasswd",
                 "/%2e%2e/%2e%2e/etc/passwd", "/api/v1/detectors?%00=1"]
        for u in urls:
            st, h, body = get(srv, u, timeout=10)  # a server blocked on a FIFO times out here
            seen.append(st)
            assert 400 <= st < 500, (u, st, body[:200])
            if h.get("content-type") == "application/json":
                doc = json.loads(body)
                assert doc["error"] and doc["message"], u
            assert _open_outside(srv.pid, calib) == [], u
        assert len(seen) == len(urls) > 100
        assert all(_nobody_reads(p) for p in fifos)  # no process ever waits on them
        # the server is still healthy and answers correctly
        assert get_json(srv, "/api/v1/stores/cspad-0001/pedestals?t=2024-02-01")[0] == 200
    finally:
        err = srv.stop()
    assert "Traceback" not in err, err


def test_a_raw_http_request_cannot_escape(tmp_path):
    """Paths the URL library would normalize, sent byte for byte over a socket."""
    import socket
    calib = make_calib(tmp_path / "srv")
    fifos = _fifos_outside(calib)
    srv = Served(calib)
    try:
        for raw in [b"/api/v1/stores/../../outside.h5", b"/api/v1/stores/..\x00",
                    b"/api/v1/payloads/../../../outside.h5", b"/../cspad/cspad-0001.h5",
                    b"/api/v1/stores/cspad-0001/pedestals?t=2024-02-01\x00",
                    b"/api/v1/stores/" + b"\xff\xfe" * 10]:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            status = int(data.split(b" ", 2)[1])
            assert 400 <= status < 500, (raw, data[:300])
        assert all(_nobody_reads(p) for p in fifos)
        assert _open_outside(srv.pid, calib) == []
    finally:
        srv.stop()


# ------------------------------------------------------------------ the command
def test_serve_without_the_extra_prints_one_line(tmp_path):
    calib = make_calib(tmp_path)
    code = ("import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
            "import pscalib, pscalib.remote, pscalib.service.encode\n"
            "from pscalib.cli.main import main; main(['serve', sys.argv[1]])\n")
    r = subprocess.run([sys.executable, "-c", code, str(calib)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert "pip install 'pscalib[server]'" in r.stderr


def test_serve_refuses_a_busy_port_and_a_missing_directory(tmp_path, served):
    r = subprocess.run([DCS, "serve", str(served.calib), "--port", str(served.port)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert f"cannot listen on 127.0.0.1:{served.port}" in r.stderr
    r = subprocess.run([DCS, "serve", str(tmp_path / "nope")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "is not a directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_stats_count_requests_that_reached_pscalib(served):
    before = get_json(served, "/api/v1/stats")[2]
    for _ in range(3):
        get(served, "/api/v1/stores/cspad-0001/pedestals?t=2024-02-01")
    after = get_json(served, "/api/v1/stats")[2]
    assert after["requests"] - before["requests"] == 3
    assert after["by_route"]["lookup"] - before["by_route"].get("lookup", 0) == 3
