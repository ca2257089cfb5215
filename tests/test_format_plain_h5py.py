"""A store written by pscalib can be read following docs/format.rst with plain h5py only.

The reader runs in a separate Python process that never imports pscalib (checked), and its
answers are compared with pscalib's own.
"""
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT
from pscalib import DCStore
from pscalib.timestamps import to_ns

# ---------------------------------------------------------------- the plain reader
PLAIN_READER = textwrap.dedent(r'''
    import hashlib, json, sys
    import h5py
    import numpy as np

    OPEN_END = 2**63 - 1

    def text(x):
        return x.decode("utf-8") if isinstance(x, bytes) else str(x)

    def attr(obj, name):
        v = obj.attrs[name]
        if isinstance(v, bytes) or isinstance(v, str):
            return text(v)
        if isinstance(v, np.ndarray) and v.ndim == 1:
            return [text(x) if isinstance(x, (bytes, str)) else x.item() for x in v]
        return v.item() if hasattr(v, "item") else v

    def payload(ds):
        if h5py.check_string_dtype(ds.dtype):
            return {"kind": "text", "text": ds[()].decode("utf-8")}
        a = ds[()]
        a = np.asarray(a, dtype=ds.dtype)
        return {"kind": "ndarray", "dtype": a.dtype.str, "shape": list(a.shape),
                "hex": a.tobytes().hex()}

    def sha(ds):
        h = hashlib.sha256()
        if h5py.check_string_dtype(ds.dtype):
            h.update(b"text\0" + ds[()])
        else:
            a = np.ascontiguousarray(np.asarray(ds[()], dtype=ds.dtype))
            h.update(b"ndarray\0" + a.dtype.str.encode() + b"\0" +
                     repr(tuple(int(n) for n in a.shape)).encode() + b"\0" + a.tobytes())
        return h.hexdigest()

    def compact(ns):
        if ns == OPEN_END:
            return "end"
        import datetime as dt
        sec, frac = divmod(ns, 10**9)
        d = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=sec)
        f = ("." + f"{frac:09d}".rstrip("0")) if frac else ""
        return f"{d:%Y%m%dT%H%M%S}{f}Z"

    TABLE = None  # format 3: the root table of every record (path = the object's path)

    def history(g):
        if TABLE is not None:
            rows = [r for r in TABLE if text(r["path"]) == g.name.strip("/")]
        elif "_history" not in g:
            return []
        else:
            rows = g["_history"][...]
        return [[int(r["tsns"]), text(r["user"]), text(r["host"]), text(r["action"]),
                 text(r["record"])] for r in rows]

    def dictpars(g):
        if "_dictpars" not in g:
            return {}
        out = {}
        for k in g["_dictpars"].attrs:
            aid = g["_dictpars"].attrs.get_id(k)
            v = attr(g["_dictpars"], k)
            out[k] = [aid.get_type().get_class(), v]  # HDF5 type class tells bool from int
        return out

    def select(rows, t):
        ok = (rows["defaultv"] > 0) & (rows["tsbegin"] <= t) & (t < rows["tsend"])
        if not ok.any():
            return None
        return max(rows[ok], key=lambda r: (int(r["tsbegin"]), -int(r["tsend"])))

    path, probes = sys.argv[1], json.loads(sys.argv[2])
    out = {"ctypes": {}, "get": {}}
    with h5py.File(path, "r") as f:
        assert text(f.attrs["pscalib_format"]) == "pscalib-dcs"
        if int(f.attrs["format_version"]) >= 3:
            TABLE = f["_history"][...]
        out["meta"] = {k: (attr(f, k) if k in f.attrs else None) for k in
                       ("format_version", "dettype", "detid", "detname", "tscfile",
                        "predecessor", "successor")}
        out["history"] = history(f)
        out["dictpars"] = dictpars(f)
        for cname in sorted(k for k in f if not k.startswith("_")):
            cg = f[cname]
            rows = cg["_ranges"][...]
            assert rows.dtype.names == ("tsbegin", "tsend", "defaultv")
            ranges = {}
            for rname in sorted(k for k in cg if not k.startswith("_")):
                rg = cg[rname]
                b, e = int(rg.attrs["tsbegin"]), int(rg.attrs["tsend"])
                assert rname == f"{compact(b)}_{compact(e)}", rname
                n_idx = int(((rows["tsbegin"] == b) & (rows["tsend"] == e)).sum())
                assert n_idx == 1
                idx_def = int(rows["defaultv"][(rows["tsbegin"] == b) & (rows["tsend"] == e)][0])
                if "defaultv" in rg.attrs:  # formats 1, 2 (format 3: the index only)
                    assert idx_def == int(rg.attrs["defaultv"])
                versions = {}
                for vname in sorted(k for k in rg if not k.startswith("_")):
                    vg = rg[vname]
                    if "version" in vg.attrs:  # formats 1, 2 (format 3: the name only)
                        assert vname == f"v{int(vg.attrs['version']):04d}"
                    assert attr(vg, "sha256") == sha(vg["data"])
                    assert attr(vg, "kind") == payload(vg["data"])["kind"]
                    versions[vname] = {"tsprod": int(vg.attrs["tsprod"]),
                                       "payload": payload(vg["data"]),
                                       "dictpars": dictpars(vg), "history": history(vg)}
                ranges[rname] = {"tsbegin": b, "tsend": e, "defaultv": idx_def,
                                 "lastv": int(rg.attrs["lastv"]), "versions": versions,
                                 "dictpars": dictpars(rg), "history": history(rg)}
            out["ctypes"][cname] = {"ranges": ranges, "history": history(cg),
                                    "dictpars": dictpars(cg)}
            for t in probes:
                best = select(rows, t)
                if best is None:
                    out["get"][f"{cname}@{t}"] = None
                    continue
                rname = f"{compact(int(best['tsbegin']))}_{compact(int(best['tsend']))}"
                vname = f"v{int(best['defaultv']):04d}"
                out["get"][f"{cname}@{t}"] = payload(cg[rname][vname]["data"])
    assert not any(m == "pscalib" or m.startswith("pscalib.") for m in sys.modules)
    print(json.dumps(out))
''')

H5_CLASS = {"str": 3, "int": 0, "float": 1, "bool": 8}  # H5T_STRING, INTEGER, FLOAT, ENUM


@pytest.fixture(scope="module", params=["1", "3"])  # format of the new file
def store(tmp_path_factory, request):
    path = tmp_path_factory.mktemp("plain") / "cspad-0001.h5"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PSCALIB_CREATE_FORMAT", request.param)
        DCStore(path, mode="a").close()
    with DCStore(path, mode="a") as cs, cs.transaction():
        cs.add_constants("pedestals", np.arange(12, dtype=np.float32).reshape(3, 4),
                         "2024-05-01", "2024-06-01", dictpars={"run": 12, "ok": True},
                         tsprod="2024-05-02T00:00:00Z")
        cs.add_constants("pedestals", (np.arange(12).reshape(3, 4) + 1).astype(">f8"),
                         "2024-05-01", "2024-06-01", make_default=False)
        cs.add_constants("pedestals", np.ones((2,), dtype=np.int16) * 7,
                         "2024-05-10T12:00:00.5Z", "2024-05-20")
        cs.add_constants("pedestals", np.array(3.5), "2024-06-01")
        cs.add_constants("pixel_status", np.array([True, False, True]), "2024-05-01")
        cs.add_constants("geometry", "\n# geo\n\tx 1\r\n", "2024-05-01")
        cs["pedestals"].add_range("2024-07-01", "2024-08-01")  # empty: ignored
        cs.set_pars({"site": "LCLS", "gains": [1.5, 2.5], "n": 3, "flag": False})
        cs.set_predecessor("cspad-0000")
        cs["pedestals"].set_par("units", "ADU")
    return path


PROBES = [to_ns(t) for t in ("2024-04-30", "2024-05-01", "2024-05-10T12:00:00.5Z",
                             "2024-05-19T23:59:59.999999999Z", "2024-05-20", "2024-05-31",
                             "2024-06-01", "2024-07-15", "2030-01-01")]


@pytest.fixture(scope="module")
def plain(store):
    r = subprocess.run([sys.executable, "-c", PLAIN_READER, str(store), json.dumps(PROBES)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _payload_dict(x):
    if isinstance(x, str):
        return {"kind": "text", "text": x}
    return {"kind": "ndarray", "dtype": x.dtype.str, "shape": list(x.shape),
            "hex": np.ascontiguousarray(x).tobytes().hex()}


def test_meta_and_root(store, plain):
    with DCStore(store) as cs:
        assert cs.format_version() in (1, 3)
        assert plain["meta"] == {"format_version": cs.format_version(), "dettype": "cspad",
                                 "detid": "0001", "detname": "cspad-0001", "tscfile": cs.tscfile(),
                                 "predecessor": "cspad-0000", "successor": None}
        assert plain["history"] == [list(r) for r in cs.history_records()]
        dp = plain["dictpars"]
        assert dp["site"] == [H5_CLASS["str"], "LCLS"]
        assert dp["gains"] == [H5_CLASS["float"], [1.5, 2.5]]
        assert dp["n"] == [H5_CLASS["int"], 3]
        assert dp["flag"][0] == H5_CLASS["bool"] and dp["flag"][1] in (0, False)


def test_ranges_versions_payloads(store, plain):
    with DCStore(store) as cs:
        assert sorted(plain["ctypes"]) == cs.ctypes()
        for cname, c in plain["ctypes"].items():
            ct = cs[cname]
            assert c["history"] == [list(r) for r in ct.history_records()]
            assert sorted(c["ranges"]) == sorted(r.name for r in ct.ranges())
            for r in ct.ranges():
                pr = c["ranges"][r.name]
                assert (pr["tsbegin"], pr["tsend"], pr["defaultv"]) == \
                    (r.tsbegin(), r.tsend(), r.versdef())
                assert pr["history"] == [list(x) for x in r.history_records()]
                assert sorted(pr["versions"]) == [f"v{v.version():04d}" for v in r.versions()]
                for v in r.versions():
                    pv = pr["versions"][f"v{v.version():04d}"]
                    assert pv["tsprod"] == v.tsprod()
                    assert pv["payload"] == _payload_dict(v.calib())
        rng = plain["ctypes"]["pedestals"]["ranges"]["20240501T000000Z_20240601T000000Z"]
        assert rng["lastv"] == 2 and rng["defaultv"] == 1
        assert rng["versions"]["v0002"]["payload"]["dtype"] == ">f8"
        assert rng["versions"]["v0001"]["dictpars"]["run"] == [H5_CLASS["int"], 12]
        assert rng["versions"]["v0001"]["tsprod"] == to_ns("2024-05-02T00:00:00Z")
        assert plain["ctypes"]["pedestals"]["ranges"]["20240601T000000Z_end"]["versions"][
            "v0001"]["payload"]["shape"] == []
        assert plain["ctypes"]["pixel_status"]["ranges"]["20240501T000000Z_end"]["versions"][
            "v0001"]["payload"]["dtype"] == "|b1"
        assert "20240510T120000.5Z_20240520T000000Z" in plain["ctypes"]["pedestals"]["ranges"]
        assert plain["ctypes"]["pedestals"]["dictpars"]["units"] == [H5_CLASS["str"], "ADU"]


def test_selection_rule_from_the_spec_agrees_with_get(store, plain):
    from pscalib.errors import NoValidConstantsError
    with DCStore(store) as cs:
        for key, want in plain["get"].items():
            cname, t = key.split("@")
            try:
                got = _payload_dict(cs.get(cname, np.datetime64(int(t), "ns")))
            except NoValidConstantsError:
                got = None
            assert got == want, key
    assert plain["get"][f"geometry@{PROBES[1]}"]["text"] == "\n# geo\n\tx 1\r\n"
    assert plain["get"][f"pedestals@{PROBES[0]}"] is None
    assert plain["get"][f"pedestals@{PROBES[4]}"]["dtype"] == "<f4"   # t == tsend: next one
    assert plain["get"][f"pedestals@{PROBES[3]}"]["dtype"] == "<i2"
    assert plain["get"][f"pedestals@{PROBES[7]}"]["shape"] == []       # empty range ignored


def test_docs_example_reader_works(store):
    """The h5py example in docs/format.rst runs as written and gives pscalib's answer."""
    doc = (ROOT / "docs" / "format.rst").read_text()
    start = doc.index(".. code-block:: python", doc.index("Reading a store with plain h5py"))
    body = []
    for line in doc[start:].splitlines()[2:]:
        if line and not line.startswith("    "):
            break
        body.append(line[4:])
    code = "\n".join(body)
    ns: dict = {}
    exec(compile(code, "format.rst", "exec"), ns)
    with DCStore(store) as cs:  # closed before h5py opens the file (see the note in the doc)
        want = {t: cs.get("pedestals", np.datetime64(t, "ns")) for t in PROBES[1:]}
        hist = [tuple(r) for r in cs.history_records()]
    for t, w in want.items():
        got = ns["get"](str(store), "pedestals", t)
        assert got.dtype == w.dtype and np.array_equal(got, w)
    assert ns["get"](str(store), "pedestals", PROBES[0]) is None
    assert ns["get"](str(store), "geometry", PROBES[1]) == "\n# geo\n\tx 1\r\n"
    import h5py
    with h5py.File(store, "r") as f:
        assert ns["history"](f) == hist


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_h5dump_shows_text_payload_and_history(store):
    r = subprocess.run(["h5dump", "-d", "/geometry/20240501T000000Z_end/v0001/data",
                        str(store)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "H5T_CSET_UTF8" in r.stdout and "# geo" in r.stdout
    r = subprocess.run(["h5dump", "-d", "/_history", str(store)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for word in ('"tsns"', '"user"', '"host"', '"action"', '"record"', '"create_store"',
                 '"set_predecessor"'):
        assert word in r.stdout
    r = subprocess.run(["h5dump", "-A", str(store)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert '"pscalib-dcs"' in r.stdout and "9223372036854775807" in r.stdout
