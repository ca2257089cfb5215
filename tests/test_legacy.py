"""Reading original LCLS DCS files and importing them (against the shared sample files).

Every expectation is computed from a raw h5py read of the sample file, never from the code
under test.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import GEOMETRY_DIR, LEGACY_DIR
from pscalib import DCStore, OPEN_END
from pscalib.errors import (LegacyFormatError, NoValidConstantsError, ReadOnlyError,
                            StoreExistsError, StoreFormatError)
from pscalib.importers.legacy import import_legacy, import_legacy_files
from pscalib.legacy import LegacyBackend, is_legacy
from pscalib.paths import store_file_in
from pscalib.store.selection import select_bruteforce

CSPAD = LEGACY_DIR / "cspad-CxiDs2.0-Cspad.0.h5"
EPIX = next(iter(sorted(LEGACY_DIR.glob("epix100a-*.h5"))), LEGACY_DIR / "missing-epix.h5")
SAMPLES = [CSPAD, EPIX]

pytestmark = pytest.mark.skipif(not CSPAD.is_file() or not EPIX.is_file(),
                                reason=f"shared legacy samples not found in {LEGACY_DIR}")


# ---------------------------------------------------------------- raw h5py reads
def raw_str(ds) -> bytes:
    return bytes(ds[0])


def raw_pars(g):
    """{key: value} of a _parameters group, decoded independently of pscalib."""
    if "_parameters" not in g:
        return {}
    out = {}
    for k, ds in g["_parameters"].items():
        v = ds[0]
        out[k] = v.decode() if isinstance(v, bytes) else v.item()
    return out


def raw_hist(g):
    """[(tsns, text)] of a _history group, in time order."""
    if "_history" not in g:
        return []
    recs = []
    for name, ds in g["_history"].items():
        sec, frac = name.split(".")
        recs.append((int(sec) * 10**9 + int(frac) * 1000, raw_str(ds).decode()))
    return sorted(recs)


def sec_to_ns(x: float) -> int:
    # exact decimal of the float's shortest repr, independent of pscalib.timestamps
    from decimal import Decimal
    return int(Decimal(repr(float(x))) * 10**9)


def raw_ranges(f, ctype):
    """[(begin_ns, end_ns_or_OPEN_END, group)] of one ctype."""
    out = []
    for name, g in f[ctype].items():
        if not isinstance(g, h5py.Group) or name.startswith("_"):
            continue
        end = g["end"]
        e = OPEN_END if end.dtype.kind == "S" else sec_to_ns(end[0])
        out.append((sec_to_ns(g["begin"][0]), e, g))
    return out


def raw_versions(g):
    return {int(k[1:]): vg for k, vg in g.items() if k[0] == "v" and k[1:].isdigit()}


def T(ns: int):
    """An int-ns time as the (sec, nsec) pair the API accepts (plain ints are seconds)."""
    return (ns // 10**9, ns % 10**9)


def assert_bit_identical(got, want):
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


def assert_store_matches_raw(cs, raw_path, end_shift=0):
    """Every value of ``cs`` equals the raw legacy file (``end_shift`` 1 for imports)."""
    with h5py.File(raw_path, "r") as f:
        assert cs.dettype() == raw_str(f["dettype"]).decode()
        assert cs.detid() == raw_str(f["detid"]).decode()
        assert cs.detname() == raw_str(f["detname"]).decode()
        assert cs.tscfile() == sec_to_ns(f["tscfile"][0])
        for link in ("predecessor", "successor"):
            want = raw_str(f[link]).decode() if link in f else None
            assert getattr(cs, link)() == want
        assert cs.dictpars() == raw_pars(f)
        legacy_hist = [(r.tsns, r.record) for r in cs.history_records() if r.action == "legacy"]
        assert legacy_hist == raw_hist(f)
        ctypes = sorted(k for k, v in f.items() if isinstance(v, h5py.Group)
                        and not k.startswith("_"))
        assert cs.ctypes() == ctypes
        nver = 0
        for ct in ctypes:
            assert cs[ct].dictpars() == raw_pars(f[ct])
            assert [(r.tsns, r.record) for r in cs[ct].history_records()] == raw_hist(f[ct])
            rr = raw_ranges(f, ct)
            assert len(cs[ct]) == len(rr)
            for b, e, g in rr:
                rng = cs[ct].rangeobj(T(b), None if e == OPEN_END else T(e + end_shift))
                vers = raw_versions(g)
                versdef = int(g["versdef"][0])
                assert rng.versdef() == (max(vers) if versdef == 0 else versdef)
                assert [v.version() for v in rng.versions()] == sorted(vers)
                assert rng.dictpars() == raw_pars(g)
                assert [(r.tsns, r.record) for r in rng.history_records()] == raw_hist(g)
                for v, vg in vers.items():
                    ver = rng.versobj(v)
                    assert ver.tsprod() == sec_to_ns(vg["tsprod"][0])
                    ds = vg["data"]
                    got = ver.calib()
                    if ds.dtype.kind == "S":
                        assert isinstance(got, str)
                        assert got.encode() == bytes(ds[0])  # byte-exact text
                        assert ver.kind() == "text"
                    else:
                        assert_bit_identical(got, ds[...])
                    assert ver.dictpars() == raw_pars(vg)
                    assert [(r.tsns, r.record) for r in ver.history_records()] == raw_hist(vg)
                    nver += 1
        assert nver > 0


# ---------------------------------------------------------------- reading
@pytest.mark.parametrize("path", SAMPLES, ids=["cspad", "epix100a"])
def test_legacy_store_matches_raw_h5py(path):
    with DCStore(path) as cs:
        assert isinstance(cs.backend, LegacyBackend)
        assert cs.backend.end_inclusive is True
        assert cs.backend.writable_format is False
        assert cs.backend.format_description == "original LCLS DCS format"
        assert_store_matches_raw(cs, path)


def test_legacy_history_records_and_counts():
    with DCStore(CSPAD) as cs:
        recs = cs["pedestals"].rangeobj("20140513T165320Z_20140514T165320Z").history_records()
        assert [r.record for r in recs] == ["add version 1: v1", "add version 2: v2"]
        assert recs[0].tsns == 1795261094_130989_000
        assert {(r.user, r.host, r.action) for r in recs} == {("unknown", "unknown", "legacy")}
    with h5py.File(CSPAD, "r") as f:
        raw_count = sum(1 for name in _all_names(f) if "/_history/" in name)
    with DCStore(CSPAD) as cs:
        count = len(cs.history_records()) + sum(
            len(cs[ct].history_records()) + sum(
                len(r.history_records()) + sum(len(v.history_records()) for v in r.versions())
                for r in cs[ct].ranges()) for ct in cs.ctypes())
    assert count == raw_count == 6


def _all_names(f):
    names = []
    f.visit(names.append)
    return ["/" + n for n in names]


def test_geometry_text_is_byte_exact_and_equals_shared_file():
    with DCStore(EPIX) as cs:
        text = cs.geometry("2020-01-01")
    assert isinstance(text, str)
    shared = GEOMETRY_DIR / "geometry-def-epix10kaquad.data"
    assert text.encode() == shared.read_bytes()
    assert text.startswith("\n# COMMENT:00") and text.endswith("\n")


def test_versdef_zero_reports_highest_version():
    with h5py.File(CSPAD, "r") as f:
        g = f["pedestals/1400000000-1400086400"]
        assert int(g["versdef"][0]) == 0
        want = g["v0002/data"][...]
    with DCStore(CSPAD) as cs:
        tab = cs.backend.range_table("pedestals")
        i = int(np.nonzero(tab.tsbegin == 1_400_000_000 * 10**9)[0][0])
        assert tab.defaultv[i] == 2
        assert_bit_identical(cs.get("pedestals", 1_400_000_000), want)


def test_get_applies_inclusive_end_and_latest_begin():
    with DCStore(CSPAD) as cs, h5py.File(CSPAD, "r") as f:
        first_v2 = f["pedestals/1400000000-1400086400/v0002/data"][...]
        first_v1 = f["pedestals/1400000000-1400086400/v0001/data"][...]
        second = f["pedestals/1400050000-end/v0001/data"][...]
        with pytest.raises(NoValidConstantsError):
            cs.get("pedestals", T(1_400_000_000 * 10**9 - 1))
        assert_bit_identical(cs.get("pedestals", 1_400_000_000), first_v2)
        assert_bit_identical(cs.get("pedestals", 1_400_000_000, vers=1), first_v1)
        assert_bit_identical(cs.get("pedestals", T(1_400_050_000 * 10**9 - 1)), first_v2)
        # the later begin wins while both ranges cover the time
        assert_bit_identical(cs.get("pedestals", 1_400_050_000), second)
        assert_bit_identical(cs.get("pedestals", 1_400_086_400), second)
        assert_bit_identical(cs.get("pedestals", "2200-01-01"), second)


def test_inclusive_end_boundary_on_modified_copy(tmp_path):
    """Without the later range, the first one covers its end instant itself, not one ns more."""
    p = tmp_path / "cspad-copy.h5"
    shutil.copyfile(CSPAD, p)
    with h5py.File(p, "r+", locking=False) as f:
        del f["pedestals/1400050000-end"]
        # same begin, narrower range: the tie goes to the narrower one
        g = f["pedestals"].create_group("1400000000-1400000100")
        for name in ("begin", "end"):
            g.create_dataset(name, data=np.array([1.4e9 if name == "begin" else 1.4000001e9]))
        g.create_dataset("range", data=np.array([b"1400000000-1400000100"]))
        g.create_dataset("versdef", data=np.array([0], dtype=np.int64))
        v = g.create_group("v0001")
        v.create_dataset("version", data=np.array([1], dtype=np.int64))
        v.create_dataset("tsprod", data=np.array([1.4e9]))
        v.create_dataset("data", data=np.arange(6, dtype=np.int16).reshape(2, 3))
    end = 1_400_086_400 * 10**9
    with DCStore(p) as cs:
        assert cs.get("pedestals", 1_400_000_100).tolist() == [[0, 1, 2], [3, 4, 5]]
        assert cs.get("pedestals", T(1_400_000_100 * 10**9 + 1)).dtype == np.float64
        assert cs.get("pedestals", T(end)).shape == (32, 185, 388)
        with pytest.raises(NoValidConstantsError):
            cs.get("pedestals", T(end + 1))
        rng = cs["pedestals"].range_at(T(end))
        assert rng.covers(T(end)) and not rng.covers(T(end + 1))
        # the store's rule equals the reference rule with inclusive ends at many times
        tab = cs.backend.range_table("pedestals")
        times = sorted({t + d for t in list(tab.tsbegin) + list(tab.tsend)
                        if t != OPEN_END for d in (-1, 0, 1)})
        for t in times:
            i = select_bruteforce(tab.tsbegin.tolist(), tab.tsend.tolist(), t, True)
            if i is None:
                with pytest.raises(NoValidConstantsError):
                    cs.get("pedestals", T(t))
            else:
                assert cs["pedestals"].range_at(T(t)).tsbegin() == tab.tsbegin[i]
                assert cs["pedestals"].range_at(T(t)).tsend() == tab.tsend[i]


def test_legacy_store_is_read_only():
    with pytest.raises(ReadOnlyError, match="original LCLS DCS format"):
        DCStore(CSPAD, mode="a")
    with DCStore(CSPAD) as cs:
        with pytest.raises(ReadOnlyError):
            cs.set_par("x", 1)


def test_user_and_host_from_record_text(tmp_path):
    p = tmp_path / "epix.h5"
    shutil.copyfile(EPIX, p)
    with h5py.File(p, "r+", locking=False) as f:
        f["_history"].create_dataset("1795261095.000001",
                                     data=np.array([b"user=alice host=psana1501 fixed mask"]))
    with DCStore(p) as cs:
        rec = cs.history_records()[-1]
    assert (rec.tsns, rec.user, rec.host, rec.action) == (1795261095_000001_000, "alice",
                                                          "psana1501", "legacy")
    assert rec.record == "user=alice host=psana1501 fixed mask"


def test_is_legacy_and_unrelated_hdf5(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with h5py.File(other, "r") as f:
        assert not is_legacy(f)
    with h5py.File(CSPAD, "r") as f:
        assert is_legacy(f)
    with pytest.raises(StoreFormatError) as ei:
        DCStore(other)
    assert not isinstance(ei.value, LegacyFormatError)


# ---------------------------------------------------------------- malformed files
def _modify(ds_path, how):
    def run(f):
        if how == "delete":
            del f[ds_path]
        elif how == "string":
            del f[ds_path]
            f[ds_path] = np.array([b"oops"])
        elif how == "float":
            del f[ds_path]
            f[ds_path] = np.array([1.5])
        elif how == "shape":
            data = f[ds_path][...]
            del f[ds_path]
            f[ds_path] = np.concatenate([data, data])
        elif how == "group":
            del f[ds_path]
            f.create_group(ds_path)
    return run


MALFORMED = [
    # (modification, where the error shows, words the message must contain)
    (_modify("dettype", "delete"), "open", ["missing dataset /dettype"]),
    (_modify("tscfile", "string"), "open", ["/tscfile", "string"]),
    (_modify("detname", "shape"), "open", ["/detname", "shape (2,)"]),
    (_modify("pedestals/1474587520-end/begin", "delete"), "get",
     ["missing dataset /pedestals/1474587520-end/begin"]),
    (_modify("pedestals/1474587520-end/versdef", "string"), "get",
     ["/pedestals/1474587520-end/versdef", "expected an integer"]),
    (_modify("pedestals/1474587520-end/v0001/tsprod", "string"), "get",
     ["/pedestals/1474587520-end/v0001/tsprod", "string"]),
    (_modify("pedestals/1474587520-end/v0001/version", "float"), "get",
     ["/pedestals/1474587520-end/v0001/version", "float64"]),
    (_modify("pedestals/1474587520-end/v0001/data", "group"), "get",
     ["/pedestals/1474587520-end/v0001/data", "expected a dataset"]),
    (_modify("pedestals/ctype", "delete"), "get", ["missing dataset /pedestals/ctype"]),
    (_modify("pedestals/1474587520-end/range", "string"), "get",
     ["/pedestals/1474587520-end/range", "'oops'"]),
    (_modify("pedestals/1474587520-end/_parameters/run", "group"), "pars",
     ["/pedestals/1474587520-end/_parameters/run", "expected a dataset"]),
    (_modify("_history/1795261094.038763", "float"), "history",
     ["/_history/1795261094.038763", "float64"]),
]


@pytest.mark.parametrize("modify,where,words", MALFORMED,
                         ids=[f"{i}-{w[0][:30]}" for i, (_, _, w) in enumerate(MALFORMED)])
def test_malformed_copy_raises_legacy_format_error(tmp_path, modify, where, words):
    p = tmp_path / "bad.h5"
    shutil.copyfile(EPIX, p)
    with h5py.File(p, "r+", locking=False) as f:
        modify(f)
    with pytest.raises(LegacyFormatError) as ei:
        with DCStore(p) as cs:
            if where == "get":
                cs.get("pedestals", "2020-01-01")
            elif where == "pars":
                cs["pedestals"].ranges()[0].dictpars()
            elif where == "history":
                cs.history_records()
    msg = str(ei.value)
    assert str(p) in msg
    for w in words:
        assert w in msg, msg
    # the import checks everything first and writes nothing
    with pytest.raises(LegacyFormatError):
        import_legacy(p, tmp_path / "calib")
    assert not (tmp_path / "calib").exists() or not any((tmp_path / "calib").rglob("*.h5"))


def test_versdef_naming_missing_version(tmp_path):
    p = tmp_path / "bad.h5"
    shutil.copyfile(EPIX, p)
    with h5py.File(p, "r+", locking=False) as f:
        f["pedestals/1474673920-end/versdef"][0] = 7
    with pytest.raises(LegacyFormatError, match=r"versdef names version 7.*\[1, 2\]"):
        DCStore(p).get("pedestals", "2020-01-01")


def test_unexpected_object_is_named(tmp_path):
    p = tmp_path / "bad.h5"
    shutil.copyfile(EPIX, p)
    with h5py.File(p, "r+", locking=False) as f:
        f["pixel_rms/1474587530-end/v0001/extra"] = np.arange(2)
    with pytest.raises(LegacyFormatError, match="unexpected object "
                                                "/pixel_rms/1474587530-end/v0001/extra"):
        DCStore(p).get("pixel_rms", "2020-01-01")


# ---------------------------------------------------------------- import
def _check_times(b, e):
    return [b - 1, b, b + 1] + ([] if e == OPEN_END else [e - 1, e, e + 1])


@pytest.mark.parametrize("path", SAMPLES, ids=["cspad", "epix100a"])
def test_import_is_exact_and_get_agrees_everywhere(tmp_path, path):
    calib = tmp_path / "calib"
    summary = import_legacy(path, calib)
    with DCStore(path) as old:
        dest = store_file_in(calib, old.detname())
        assert summary.store == dest and dest.is_file()
        with DCStore(dest) as new:
            assert new.format_version() >= 1
            assert not new.backend.end_inclusive
            assert_store_matches_raw(new, path, end_shift=1)
            root = new.history_records()
            assert root[-1].action == "import_legacy" and str(path.resolve()) in root[-1].record
            # get agrees at every boundary (+-1 ns) and at random times
            rng = np.random.default_rng(9)
            for ct in old.ctypes():
                tab = old.backend.range_table(ct)
                times = set()
                for b, e in zip(tab.tsbegin.tolist(), tab.tsend.tolist()):
                    times.update(_check_times(b, e))
                lo, hi = int(tab.tsbegin.min()) - 10**12, int(tab.tsbegin.max()) + 10**14
                times.update(int(x) for x in rng.integers(lo, hi, 40))
                for t in sorted(times):
                    try:
                        want = old.get(ct, T(t))
                    except NoValidConstantsError:
                        with pytest.raises(NoValidConstantsError):
                            new.get(ct, T(t))
                        continue
                    got = new.get(ct, T(t))
                    if isinstance(want, str):
                        assert got == want
                    else:
                        assert_bit_identical(got, want)


def test_import_refuses_existing_store_and_duplicates(tmp_path):
    calib = tmp_path / "calib"
    import_legacy(EPIX, calib)
    with pytest.raises(StoreExistsError):
        import_legacy(EPIX, calib)
    other = tmp_path / "other"
    with pytest.raises(Exception, match="both detector"):
        import_legacy_files([EPIX, EPIX], other)
    assert not other.exists() or not any(other.rglob("*.h5"))


def test_dcs_import_legacy_executable(tmp_path):
    calib = tmp_path / "calib"
    dcs = Path(sys.executable).with_name("dcs")
    cmd = [str(dcs) if dcs.exists() else "dcs", "import-legacy", str(CSPAD), str(EPIX),
           "--to", str(calib)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2 ctypes, 3 ranges, 4 versions" in out.stdout
    assert "4 ctypes, 5 ranges, 6 versions" in out.stdout
    with DCStore(calib, "cspad-CxiDs2.0-Cspad.0") as cs:
        assert_store_matches_raw(cs, CSPAD, end_shift=1)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
