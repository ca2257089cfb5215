"""Exchange tools: dedup on add, verify, diff, copy/squeeze, merge; real files, real dcs."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import file_digest
from pscalib import DCStore
from pscalib import errors as E
from pscalib.errors import (ConflictError, CtypeNotFoundError, IntegrityError, StoreNotFoundError,
                            StoreExistsError)
from pscalib.exchange import copy_store, diff_stores, merge_stores, verify
from pscalib.store import layout as L
from pscalib.store.native import h5path

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
GEOM = "# geometry\nQUAD:V1 0 CSPAD:V1 0 0 0 0 0\nQUAD:V1 1 CSPAD:V1 1 0 0 90 0\n"


def dcs(*args, timeout=60):
    return subprocess.run([DCS, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def make_repo(path) -> Path:
    """A repository store: 2 ctypes, 3 ranges, several versions, dictpars, text."""
    rng = np.random.default_rng(1)
    with DCStore(path, mode="a") as cs:
        with cs.transaction():
            cs.add_constants("pedestals", rng.normal(size=(2, 3, 4)), "2024-01-01",
                             "2024-02-01", dictpars={"gain": 1.5}, tsprod="2024-01-02")
            cs.add_constants("pedestals", rng.normal(size=(2, 3, 4)), "2024-02-01",
                             tsprod="2024-02-02")
            cs.add_constants("pedestals", rng.normal(size=(2, 3, 4)), "2024-02-01",
                             make_default=False, tsprod="2024-02-03")
            cs.add_constants("geometry", GEOM, "2024-01-01", tsprod="2024-01-03")
            cs["pedestals"].set_par("units", "ADU")
            cs.set_par("site", "LCLS")
    return Path(path)


def data_addr(path, key):
    with h5py.File(path, "r") as f:
        return h5py.h5o.get_info(f[h5path(key) + "/data"].id).addr


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo" / "cspad" / "cspad-0001.h5")


# ----------------------------------------------------------------------------- dedup
def test_add_identical_to_default_is_unchanged_and_writes_nothing(repo):
    with DCStore(repo, mode="a") as cs:
        cur = cs.get("pedestals", "2024-03-01")
        before = file_digest(repo)
        res = cs.add_constants("pedestals", cur.copy(), "2024-02-01")
        assert res.unchanged and res.linked_to is None
        assert res == cs.version_at("pedestals", "2024-03-01")  # the existing default v1
        assert res.version() == 1
        assert file_digest(repo) == before
        # inside an outer transaction too: nothing written, the transaction goes on
        with cs.transaction():
            assert cs.add_constants("pedestals", cur.copy(), "2024-02-01").unchanged
            cs.add_history("note after an unchanged add")
        forced = cs.add_constants("pedestals", cur.copy(), "2024-02-01", force=True)
        assert not forced.unchanged and forced.version() == 3
        assert forced.linked_to == ("pedestals", res.rangeobj().tsbegin(), L.OPEN_END, 1)
        # different dictpars: a real new version, payload still shared
        v4 = cs.add_constants("pedestals", cur.copy(), "2024-02-01", dictpars={"x": 1})
        assert not v4.unchanged and v4.version() == 4 and v4.linked_to is not None


def test_identical_payload_elsewhere_is_one_hard_linked_object(repo):
    with DCStore(repo, mode="a") as cs:
        peds = cs.get("pedestals", "2024-01-15")
        other = cs.add_constants("pixel_bkgd", peds.copy(), "2023-01-01",
                                 dictpars={"src": "copy"}, tsprod="2023-05-05")
        assert other.linked_to[0] == "pedestals"
        text = cs.add_constants("geometry", GEOM, "2025-01-01")
        assert text.linked_to is not None
        assert other.tsprod() != cs.version_at("pedestals", "2024-01-15").tsprod()
        assert other.dictpars() == {"src": "copy"}
    src_key = ("pedestals",) + tuple(other.linked_to[1:])
    assert data_addr(repo, other._key) == data_addr(repo, src_key)
    assert verify(repo).ok
    # deleting the first holder keeps the shared payload alive for the other version
    with DCStore(repo, mode="a") as cs:
        cs["pedestals"].del_range("20240101T000000Z_20240201T000000Z")
        np.testing.assert_array_equal(cs.get("pixel_bkgd", "2024-01-01"), peds)
        with h5py.File(repo, "r") as f:  # h5py defaults match the open store (issue 13)
            keys = [r["ctype"] for r in f[L.N_PAYLOAD_INDEX][...]]
        assert b"pixel_bkgd" in keys or "pixel_bkgd" in keys
        # the payload index dropped the deleted rows: verify has nothing to say
        rep = verify(repo)
        assert rep.ok and not rep.problems, rep.format()
        # a new identical add finds the surviving copy
        again = cs.add_constants("pixel_rms", peds.copy(), "2024-01-01")
        assert again.linked_to[0] == "pixel_bkgd"


def test_file_without_payload_index_gets_one_on_next_add(repo):
    with h5py.File(repo, "r+") as f:  # simulate a file written before the index existed
        del f[L.N_PAYLOAD_INDEX]
    rep = verify(repo)
    assert rep.ok and any("no payload index" in n for n in rep.notes)
    with DCStore(repo, mode="a") as cs:
        g = cs.get("geometry", "2024-05-01")
        v = cs.add_constants("geometry", g, "2026-01-01")
        assert v.linked_to is not None
    with h5py.File(repo, "r") as f:
        assert f[L.N_PAYLOAD_INDEX].shape[0] == 5
    assert not verify(repo).problems


# ---------------------------------------------------------------------------- verify
def test_verify_clean_store_never_modifies_it(repo):
    before = file_digest(repo)
    rep = verify(repo)
    assert rep.ok and rep.problems == [], rep.format()
    assert rep.counts["versions"] == 4 and rep.counts["payloads read"] == 4
    assert file_digest(repo) == before


def _flip_payload_byte(path, key, at=5):
    with h5py.File(path, "r") as f:
        ds = f[h5path(key) + "/data"]
        off = ds.id.get_offset()
        raw = ds[()].tobytes()
    if off is None:  # a compact payload (format 3) lives in its object header: find it
        blob = Path(path).read_bytes()
        off = blob.find(raw)
        assert off >= 0 and blob.find(raw, off + 1) < 0
    with open(path, "r+b") as fh:
        fh.seek(off + at)
        b = fh.read(1)
        fh.seek(off + at)
        fh.write(bytes([b[0] ^ 0xFF]))


def test_verify_catches_flipped_payload_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("PSCALIB_CREATE_FORMAT", "1")  # contiguous payloads: only the
    repo = make_repo(tmp_path / "repo" / "cspad" / "cspad-0001.h5")  # sha256 can tell
    with DCStore(repo) as cs:
        key = cs.version_at("pedestals", "2024-03-01")._key
    _flip_payload_byte(repo, key)
    before = file_digest(repo)
    rep = verify(repo)
    assert not rep.ok
    assert [p.path for p in rep.errors] == ["/" + h5path(key) + "/data"]
    assert "checksum mismatch" in rep.errors[0].message
    assert file_digest(repo) == before
    # an unchanged-add check must not be fooled by the damaged default
    with DCStore(repo, mode="a") as cs:
        good = cs.get("pedestals", "2024-03-01")
        good.view(np.uint8).reshape(-1)[5] ^= 0xFF  # the bytes that were stored originally
        assert not cs.add_constants("pedestals", good, "2024-02-01").unchanged


def test_flipped_compact_payload_bytes_fail_hdf5s_checksum(repo):
    """Format 3 keeps small payloads in their object header, which HDF5 checksums: a
    flipped byte is reported as damage by verify, get and add, never read as data."""
    with DCStore(repo) as cs:
        key = cs.version_at("pedestals", "2024-03-01")._key
    _flip_payload_byte(repo, key)
    before = file_digest(repo)
    rep = verify(repo)
    assert not rep.ok and "checksum" in rep.errors[0].message, rep.format()
    with DCStore(repo, mode="a") as cs:
        with pytest.raises(E.CorruptStoreError, match="checksum"):
            cs.get("pedestals", "2024-03-01")
        with pytest.raises(E.CorruptStoreError, match="dcs verify"):
            cs.add_constants("pedestals", np.ones(3), "2024-02-01")
    assert file_digest(repo) == before


def test_verify_catches_bad_checksum_attribute_and_text(repo):
    with h5py.File(repo, "r+") as f:
        g = f[h5path(("geometry", int(f["geometry/_ranges"][0]["tsbegin"]), L.OPEN_END, 1))]
        g.attrs["sha256"] = "0" * 64
    rep = verify(repo)
    paths = [p.path for p in rep.errors]
    assert any(p.startswith("/geometry/") and p.endswith("v0001/data") for p in paths)
    # the payload index now disagrees with the version's attribute, and says so
    assert any(p == "/_payloads" and "sha256 differs" in e.message
               for p, e in zip(paths, rep.errors))


def test_verify_catches_index_and_metadata_inconsistencies(repo):
    with h5py.File(repo, "r+") as f:
        ri = f["pedestals/_ranges"]
        rows = ri[...]
        rows[0]["defaultv"] = 7                      # index default disagrees with attribute
        ri[0] = rows[0]
        ri.resize((len(rows) + 1,))
        ri[len(rows)] = (1, 2, 1)                      # index row without a group
        rn = L.range_name(int(rows[1]["tsbegin"]), int(rows[1]["tsend"]))
        f[f"pedestals/{rn}"].attrs["defaultv"] = np.int64(9)   # default version missing
        f[f"pedestals/{rn}"].attrs["lastv"] = np.int64(1)      # lower than v0002
        g = f["geometry"].create_group("20300101T000000Z_end")  # group not in the index
        g.attrs.update({"tsbegin": np.int64(1), "tsend": np.int64(L.OPEN_END),
                        "defaultv": np.int64(0), "lastv": np.int64(0)})
        f["pedestals/_dictpars"].attrs["pair"] = np.zeros(1, "i4,f8")[0]  # not a par type
        f[L.N_PAYLOAD_INDEX].resize((5,))
        f[L.N_PAYLOAD_INDEX][4] = (b"1" * 64, "pixel_gain", 1, 2, 1)
    rep = verify(repo)
    text = rep.format()
    msgs = [(p.path, p.message) for p in rep.errors]
    assert any(p == "/pedestals/_ranges" and "no group" in m for p, m in msgs), text
    assert any("differs from the range index" in m for _, m in msgs), text
    assert any(p == f"/pedestals/{rn}" and "default version 9 does not exist" in m
               for p, m in msgs), text
    assert any(p == f"/pedestals/{rn}" and "lastv 1 is lower" in m for p, m in msgs), text
    assert any(p == "/geometry/20300101T000000Z_end" and "not in /geometry/_ranges" in m
               for p, m in msgs), text
    assert any(p.startswith("/geometry/20300101T000000Z_end") and "does not match" in m
               for p, m in msgs), text
    assert any(p == "/pedestals/_dictpars@pair" for p, _ in msgs), text
    assert any(p == "/_payloads" and "no such version" in m for p, m in msgs), text


def test_verify_reports_unreadable_history_and_alias_to_missing_store(repo):
    from pscalib.aliases import add_alias
    calib = repo.parent.parent
    add_alias(calib, "CxiDs2.0:Cspad.0", "cspad-0001")
    add_alias(calib, "CxiDs1.0:Cspad.0", "cspad-0099")
    with h5py.File(repo, "r+") as f:  # format 3: the one history table of the store
        del f["_history"]
        f.create_dataset("_history", data=np.arange(3))
    rep = verify(repo)
    msgs = [(p.path, p.message) for p in rep.errors]
    assert any(p == "/_history" for p, _ in msgs), rep.format()
    alias_hits = [(p, m) for p, m in msgs if "cspad-0099" in m]
    assert len(alias_hits) == 1 and alias_hits[0][0].startswith(str(calib / "cspad" /
                                                                    "aliases.txt:"))


def test_verify_non_store_and_missing(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f["a"] = 1
    rep = verify(p)
    assert not rep.ok and rep.errors[0].path == "/"
    with pytest.raises(StoreNotFoundError):
        verify(tmp_path / "missing.h5")


# ------------------------------------------------------------------------------ diff
def test_diff_same_and_every_kind_of_difference(repo, tmp_path):
    b = tmp_path / "b" / "cspad-0001.h5"
    b.parent.mkdir()
    shutil.copy(repo, b)
    rep = diff_stores(repo, b)
    assert rep.same and rep.identical_versions == 4
    with DCStore(b, mode="a") as cs:
        with cs.transaction():
            r2 = cs["pedestals"].rangeobj("2024-02-01")
            v1 = r2.versobj(1)
            a = v1.calib()
            cs.add_constants("pixel_gain", np.ones(3), "2024-01-01")         # ctype only in B
            cs["pedestals"].del_range("20240101T000000Z_20240201T000000Z")   # range only in A
            r2.set_versdef(2)                                                # default
            cs.set_par("site", "SLAC")                                       # value differs
            r2.set_par("new", [1, 2])                                        # only in B
            r2.del_version(2)
            r2.set_versdef(1)
            cs.add_constants("pedestals", a.astype(np.float32), "2024-02-01", version=2,
                             make_default=False)                             # dtype change
            cs.add_constants("pedestals", a[:1], "2024-06-01")               # range only in B
            cs.add_constants("geometry", GEOM.replace("90", "91") + "extra\n", "2024-01-01",
                             make_default=False, version=2)                  # version only B
    with DCStore(repo, mode="a") as cs:
        cs.add_constants("geometry", GEOM.replace("90", "91") + "extra\n", "2024-01-01",
                         version=2, make_default=False)
    rep = diff_stores(repo, b)
    kinds = {(d.path, d.kind) for d in rep.differences}
    assert ("pixel_gain", "only_in_b") in kinds
    assert ("pedestals/20240101T000000Z_20240201T000000Z", "only_in_a") in kinds
    assert ("pedestals/20240601T000000Z_end", "only_in_b") in kinds
    assert ("/", "dictpars") in kinds and ("pedestals/20240201T000000Z_end", "dictpars") in kinds
    dt = [d for d in rep.differences if d.kind == "dtype"]
    assert len(dt) == 1 and dt[0].detail == {"a": "float64", "b": "float32"}
    assert rep.differences[-1] is not None and not rep.same
    j = json.loads(json.dumps(rep.to_dict()))
    assert j["same"] is False and any(d["kind"] == "dtype" for d in j["differences"])


def test_diff_payload_values_shape_text_and_nan(tmp_path):
    a = tmp_path / "a" / "cspad-0001.h5"
    b = tmp_path / "b" / "cspad-0001.h5"
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    x[0, 0] = np.nan
    for p, arr, text, shape_arr in ((a, x, "l1\nl2\nl3\n", np.zeros(4)),
                                    (b, None, "l1\nL2\nl3\nl4\n", np.zeros(5))):
        if arr is None:
            arr = x.copy()
            arr[1, 1] += 0.5      # one changed value
            arr[2, 2] = np.nan    # a NaN facing a number
        with DCStore(p, mode="a", detname="cspad-0001") as cs:
            cs.add_constants("pedestals", arr, "2024-01-01", tsprod="2024-01-01")
            cs.add_constants("geometry", text, "2024-01-01", tsprod="2024-01-01")
            cs.add_constants("pixel_mask", shape_arr, "2024-01-01", tsprod="2024-01-01")
    rep = diff_stores(a, b)
    by = {d.kind: d for d in rep.differences}
    assert set(by) == {"values", "text", "shape"}, rep.format()
    assert by["values"].detail == {"size": 12, "changed": 2, "nan_mismatch": 1,
                                   "max_abs_diff": 0.5}
    assert by["shape"].detail == {"a": [4], "b": [5]}
    assert by["text"].detail["added"] == 2 and by["text"].detail["removed"] == 1
    assert "-l2" in by["text"].detail["diff"] and "+L2" in by["text"].detail["diff"]
    assert "2 of 12 elements changed" in rep.format()


# ------------------------------------------------------------------------------ copy
def test_copy_squeezes_selection_and_keeps_history(repo, tmp_path):
    ws = tmp_path / "exp" / "calib"
    res = copy_store(repo, ws, ctypes=["pedestals"], begin="2024-03-01", end="2024-04-01",
                     defaults_only=True)
    out = Path(res.dest)
    assert out == ws / "cspad" / "cspad-0001.h5"
    assert (res.ctypes, res.ranges, res.versions) == (["pedestals"], 1, 1)
    assert verify(out).ok and not verify(out).problems
    with DCStore(repo) as src, DCStore(out) as dst:
        assert dst.ctypes() == ["pedestals"]
        rngs = dst["pedestals"].ranges()
        assert [r.range() for r in rngs] == ["20240201T000000Z_end"]
        assert [v.version() for v in rngs[0].versions()] == [1]
        np.testing.assert_array_equal(dst.get("pedestals", "2024-03-01"),
                                      src.get("pedestals", "2024-03-01"))
        assert dst["pedestals"].dictpars() == {"units": "ADU"}
        assert dst.dictpars() == {"site": "LCLS"}
        # original history records, with their times and users, come first
        src_recs = src["pedestals"].rangeobj("2024-02-01").history_records()
        assert dst["pedestals"].rangeobj("2024-02-01").history_records() == src_recs
        root = dst.history_records()
        assert root[:len(src.history_records())] == src.history_records()
        assert root[-1].action == "copy_from" and str(repo) in root[-1].record
        assert dst.detname() == "cspad-0001"
    assert out.stat().st_size < repo.stat().st_size
    with pytest.raises(StoreExistsError):
        copy_store(repo, out)
    with pytest.raises(CtypeNotFoundError):
        copy_store(repo, tmp_path / "other.h5", ctypes=["nope"])
    assert not (tmp_path / "other.h5").exists()


@pytest.mark.parametrize("fmt", ["1", "3"])  # contiguous payload: sha256; compact: HDF5
def test_copy_refuses_damaged_source_and_writes_nothing(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("PSCALIB_CREATE_FORMAT", fmt)
    repo = make_repo(tmp_path / "repo" / "cspad" / "cspad-0001.h5")
    with DCStore(repo) as cs:
        key = cs.version_at("pedestals", "2024-03-01")._key
    _flip_payload_byte(repo, key)
    with pytest.raises(IntegrityError if fmt == "1" else E.CorruptStoreError):
        copy_store(repo, tmp_path / "ws.h5")
    assert not (tmp_path / "ws.h5").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ws.h5.pscalib")] == []


# ----------------------------------------------------------------------------- merge
def test_round_trip_repository_workspace_repository(repo, tmp_path):
    ws = Path(copy_store(repo, tmp_path / "ws").dest)
    with DCStore(ws, mode="a") as w:
        with w.transaction():
            new = w.add_constants("pedestals", np.full((2, 3, 4), 7.0), "2024-02-01",
                                  dictpars={"run": 12}, comment="expert recalibration")
            w.add_constants("pedestals", np.full((2, 3, 4), 8.0), "2024-05-01", "2024-06-01")
            w.add_constants("pixel_status", np.zeros((2, 3, 4), np.uint8), "2024-01-01")
            w["geometry"].rangeobj("2024-01-01").set_par("checked", True)
    assert new.version() == 3  # lastv survives the copy: no clash with repository numbers
    plan = merge_stores(ws, repo, dry_run=True)
    before = file_digest(repo)
    assert file_digest(repo) == before and plan.dry_run
    rep = merge_stores(ws, repo)
    assert not rep.unresolved
    assert [s.action for s in rep.steps] == [s.action for s in plan.steps]
    c = rep.counts()
    assert c["add_version"] == 3 and c["skip_identical"] == 4 and c["set_default"] == 3
    assert diff_stores(repo, ws).same, diff_stores(repo, ws).format()
    assert verify(repo).ok and not verify(repo).problems
    with DCStore(repo) as cs:
        assert cs.version_at("pedestals", "2024-03-01").version() == 3
        hist = cs["pedestals"].rangeobj("2024-02-01").history()
        assert f"merged from {ws}" in hist and "expert" not in hist.split("merged")[0][-5:]
        assert f"default v0001 -> v0003 from {ws}" in hist
        assert "merged from" in cs.history_records()[-1].record
        n_versions = sum(len(r) for c in cs for r in cs[c].ranges())
    # merging again changes nothing (nothing duplicated) and leaves the file untouched
    before = file_digest(repo)
    again = merge_stores(ws, repo)
    assert not again.changes and file_digest(repo) == before
    with DCStore(repo) as cs:
        assert sum(len(r) for c in cs for r in cs[c].ranges()) == n_versions


def test_merge_conflicts_reported_untouched_then_resolved(repo, tmp_path):
    ws = Path(copy_store(repo, tmp_path / "ws.h5").dest)
    # both sides add v3 to the same range, with different content
    with DCStore(ws, mode="a") as w:
        w.add_constants("pedestals", np.full((2, 3, 4), 1.0), "2024-02-01", make_default=False)
        w["pedestals"].set_par("units", "keV")
        w["pedestals"].rangeobj("2024-01-01").versobj(1).set_par("gain", 2.5)
        w["geometry"].rangeobj("2024-01-01").add_version(GEOM + "# ws\n", make_default=True)
    with DCStore(repo, mode="a") as r:
        r.add_constants("pedestals", np.full((2, 3, 4), 2.0), "2024-02-01", make_default=False)
        r["pedestals"].rangeobj("2024-02-01").set_versdef(2)
        r["geometry"].rangeobj("2024-01-01").add_version(GEOM + "# repo\n", make_default=True)
    with DCStore(ws, mode="a") as w:
        w["pedestals"].rangeobj("2024-02-01").set_versdef(3)
    before = file_digest(repo)
    rep = merge_stores(ws, repo)
    kinds = sorted(s.action for s in rep.unresolved)
    assert kinds == ["conflict_par", "conflict_par", "conflict_version", "conflict_version"], \
        rep.format()
    # unresolved conflicts block the whole merge: nothing is written, not even history
    assert not rep.applied
    assert file_digest(repo) == before
    with DCStore(repo) as r:
        assert r["pedestals"].par("units") == "ADU"
        assert r.version_at("pedestals", "2024-03-01").version() == 2
        np.testing.assert_array_equal(r["pedestals"].rangeobj("2024-02-01").get(3),
                                      np.full((2, 3, 4), 2.0))
        assert r.history_records()[-1].action != "merge"
    rep = merge_stores(ws, repo, prefer="source", renumber=True)
    assert not rep.unresolved
    with DCStore(repo) as r:
        assert r["pedestals"].par("units") == "keV"
        assert r["pedestals"].rangeobj("2024-01-01").versobj(1).par("gain") == 2.5
        rng = r["pedestals"].rangeobj("2024-02-01")
        assert [v.version() for v in rng.versions()] == [1, 2, 3, 4]
        np.testing.assert_array_equal(rng.get(4), np.full((2, 3, 4), 1.0))
        assert rng.versdef() == 4  # the source's default, under its new number
        assert r.get("geometry", "2024-05-01").endswith("# ws\n")
    assert verify(repo).ok


def test_merge_diverging_defaults_and_prefer_dest(repo, tmp_path):
    ws = Path(copy_store(repo, tmp_path / "ws.h5").dest)
    with DCStore(ws, mode="a") as w:
        w["pedestals"].rangeobj("2024-02-01").set_versdef(2)
    rep = merge_stores(ws, repo)
    assert [s.action for s in rep.unresolved] == ["conflict_default"]
    rep = merge_stores(ws, repo, prefer="dest")
    assert not rep.unresolved and not rep.changes
    with DCStore(repo) as r:
        assert r.version_at("pedestals", "2024-03-01").version() == 1
    merge_stores(ws, repo, prefer="source")
    with DCStore(repo) as r:
        assert r.version_at("pedestals", "2024-03-01").version() == 2


def test_merge_refuses_other_detector(repo, tmp_path):
    other = tmp_path / "cspad-0002.h5"
    with DCStore(other, mode="a") as cs:
        cs.add_constants("pedestals", np.ones(3), "2024-01-01")
    with pytest.raises(ConflictError):
        merge_stores(other, repo)


# ------------------------------------------------------------------------------- CLI
def test_dcs_verify_and_diff_exit_codes(tmp_path, monkeypatch):
    # format 1: contiguous payloads, so the flipped byte below is found by the sha256
    # (format 3 small payloads: HDF5's header checksum, test_flipped_compact_payload_...)
    monkeypatch.setenv("PSCALIB_CREATE_FORMAT", "1")
    repo = make_repo(tmp_path / "repo" / "cspad" / "cspad-0001.h5")
    r = dcs("verify", repo)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    ws = tmp_path / "ws.h5"
    r = dcs("copy", repo, ws, "--ctype", "pedestals", "--defaults-only")
    assert r.returncode == 0 and ws.is_file(), r.stderr
    r = dcs("diff", ws, ws)
    assert r.returncode == 0 and r.stdout.startswith("same"), r.stderr
    r = dcs("diff", repo, ws, "--json")
    assert r.returncode == 1
    j = json.loads(r.stdout)
    assert j["same"] is False and {"geometry"} <= {d["path"] for d in j["differences"]}
    r = dcs("diff", repo, tmp_path / "missing.h5", "--json")
    assert r.returncode == 1 and r.stdout == "" and r.stderr.startswith("dcs: error:")
    with DCStore(repo) as cs:
        key = cs.version_at("pedestals", "2024-03-01")._key
    _flip_payload_byte(repo, key)
    before = file_digest(repo)
    r = dcs("verify", ws, repo, "--json")
    assert r.returncode == 1, r.stderr
    j = json.loads(r.stdout)
    assert j["ok"] is False and j["stores"][0]["ok"] is True
    assert j["stores"][1]["problems"][0]["path"] == "/" + h5path(key) + "/data"
    assert file_digest(repo) == before
    r = dcs("merge", ws, repo, "--dry-run")
    assert r.returncode == 0 and "plan (dry run)" in r.stdout, r.stderr
    assert file_digest(repo) == before


def test_bench_exchange_script_runs_small():
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_exchange.py"
    r = subprocess.run([sys.executable, str(script), "--n", "20"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "add duplicate (hard link)" in r.stdout and "index lookup" in r.stdout


def test_merge_refuses_missing_dest_and_damaged_source(repo, tmp_path):
    from pscalib.errors import StoreNotFoundError
    with pytest.raises(StoreNotFoundError):
        merge_stores(repo, tmp_path / "nowhere.h5")
    assert not (tmp_path / "nowhere.h5").exists()
    ws = Path(copy_store(repo, tmp_path / "ws.h5").dest)
    with DCStore(ws, mode="a") as w:
        v = w.add_constants("pixel_gain", np.arange(1024.0), "2024-01-01")  # > 4 kB: contiguous
    _flip_payload_byte(ws, v._key, at=9)
    before = file_digest(repo)
    with pytest.raises(IntegrityError):
        merge_stores(ws, repo)
    assert file_digest(repo) == before


def test_copy_keeps_hard_links_and_verify_survives_truncated_file(repo, tmp_path):
    with DCStore(repo, mode="a") as cs:
        peds = cs.get("pedestals", "2024-01-15")
        v = cs.add_constants("pixel_bkgd", peds.copy(), "2024-01-01")
    out = Path(copy_store(repo, tmp_path / "ws.h5").dest)
    assert data_addr(out, v._key) == data_addr(out, v.linked_to)
    assert verify(out).ok
    broken = tmp_path / "broken.h5"
    broken.write_bytes(repo.read_bytes()[: repo.stat().st_size // 2])
    rep = verify(broken)
    assert not rep.ok and rep.errors[0].path == "/"
