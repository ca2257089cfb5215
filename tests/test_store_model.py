"""DCStore / DCType / DCRange / DCVersion: opening, access, management, history, reopen."""
import numpy as np
import pytest

from conftest import file_digest
from pscalib import DCStore, DCRange, DCType, DCVersion
from pscalib.errors import (CtypeNotFoundError, InvalidInputError, InvalidPayloadError,
                            InvalidTimeError, NoValidConstantsError, NotFoundError,
                            RangeNotFoundError, ReadOnlyError, StoreExistsError,
                            StoreNotFoundError, VersionNotFoundError)
from pscalib.store import history as history_mod
from pscalib.timestamps import OPEN_END, to_ns

S = 10**9  # ns per second


@pytest.fixture
def path(tmp_path):
    return tmp_path / "calib" / "cspad" / "cspad-0001.h5"


def make(path, **kw):
    return DCStore(path, mode="a", **kw)


# ------------------------------------------------------------------ opening
def test_open_modes(path):
    with pytest.raises(StoreNotFoundError):
        DCStore(path)
    with pytest.raises(InvalidInputError, match="'w' would truncate"):
        DCStore(path, mode="w")
    with pytest.raises(InvalidInputError):
        DCStore(path, mode="rw")
    with make(path) as cs:  # 'a' creates, directories included
        assert path.is_file()
        assert cs.detname() == "cspad-0001"
        cs.add_constants("pedestals", np.ones(3), 0)
    digest = file_digest(path)
    with pytest.raises(StoreExistsError):
        DCStore(path, mode="x")
    with DCStore(path) as cs:
        assert cs.mode == "r"
        for change in (lambda: cs.add_constants("pedestals", np.ones(3), 5),
                       lambda: cs.set_par("a", 1),
                       lambda: cs.del_ctype("pedestals"),
                       lambda: cs.set_predecessor("cspad-0000"),
                       lambda: cs.add_history("note"),
                       lambda: cs["pedestals"].rangeobj(0).set_versdef(1),
                       lambda: cs["pedestals"].rangeobj(0).del_version(1),
                       lambda: cs.add_ctype("pixel_rms")):
            with pytest.raises(ReadOnlyError, match="mode='a'"):
                change()
        assert cs.get("pedestals", 1).shape == (3,)
    assert file_digest(path) == digest
    with make(path) as cs:  # 'a' on an existing file opens it without change
        assert cs.ctypes() == ["pedestals"]
    assert file_digest(path) == digest


def test_mode_x_creates_and_detname_from_argument(tmp_path):
    p = tmp_path / "store.h5"
    with pytest.raises(InvalidInputError, match="detname"):
        DCStore(p, mode="x")
    with DCStore(p, detname="epix10ka-0042", mode="x") as cs:
        assert (cs.dettype(), cs.detid(), cs.detname()) == ("epix10ka", "0042", "epix10ka-0042")
    with DCStore(tmp_path, detname="cspad-0009", mode="a") as cs:  # calib dir + detname
        assert cs.path == tmp_path / "cspad" / "cspad-0009.h5"


def test_context_manager_closes(path):
    with make(path) as cs:
        pass
    with pytest.raises(InvalidInputError, match="closed"):
        cs.ctypes()
    cs2 = DCStore(path)
    cs2.close()
    with pytest.raises(InvalidInputError):
        cs2.get("pedestals", 0)


def test_meta(path):
    t0 = to_ns("2020-01-01")
    with make(path) as cs:
        assert isinstance(cs.tscfile(), int) and cs.tscfile() > t0
        assert cs.predecessor() is None and cs.successor() is None
        assert cs.format_version() == 3  # new stores: one history table (docs/format.rst)
        cs.set_predecessor("cspad-0000")
        cs.set_successor("cspad-0002")
    with DCStore(path) as cs:
        assert (cs.predecessor(), cs.successor()) == ("cspad-0000", "cspad-0002")
    with make(path) as cs:
        cs.set_predecessor(None)
        cs.set_successor(None)
        with pytest.raises(InvalidInputError):
            cs.set_predecessor("../evil")
    with DCStore(path) as cs:
        assert cs.predecessor() is None and cs.successor() is None
        acts = [r.action for r in cs.history_records()]
        assert acts.count("set_predecessor") == 2 and acts.count("set_successor") == 2
        recs = [r.record for r in cs.history_records() if r.action == "set_predecessor"]
        assert recs == ["None -> 'cspad-0000'", "'cspad-0000' -> None"]


# ------------------------------------------------------------------ access
@pytest.fixture
def filled(path):
    """pedestals: [100, 200) v1,v2,v3 (v2 default), [200, open) v1; geometry text."""
    with make(path) as cs:
        cs.add_constants("pedestals", np.full(4, 1.0), 100, 200, tsprod=1000)
        cs.add_constants("pedestals", np.full(4, 2.0), 100, 200, tsprod=2000)
        cs.add_constants("pedestals", np.full(4, 3.0), 100, 200, tsprod=3000,
                         make_default=False)
        cs.add_constants("pedestals", np.full(4, 9.0), 200, None, tsprod=2500)
        cs.add_constants("geometry", "geo v1\n", 0)
    return path


def test_ctypes_ranges_versions(filled):
    with DCStore(filled) as cs:
        assert cs.ctypes() == ["geometry", "pedestals"]
        assert "pedestals" in cs and "pixel_rms" not in cs and 5 not in cs
        assert list(cs) == cs.ctypes()
        ct = cs.ctypeobj("pedestals")
        assert isinstance(ct, DCType) and ct == cs["pedestals"] and ct.ctype() == "pedestals"
        rs = ct.ranges()
        assert [(r.tsbegin(), r.tsend()) for r in rs] == [(100 * S, 200 * S), (200 * S, OPEN_END)]
        assert len(ct) == 2 and list(ct) == rs
        r = rs[0]
        assert isinstance(r, DCRange)
        assert r.range() == r.name == "19700101T000140Z_19700101T000320Z"
        assert r.begin() == "1970-01-01T00:01:40+00:00" and r.end() == "1970-01-01T00:03:20+00:00"
        assert rs[1].end() == "end" and rs[1].is_open() and not r.is_open()
        # rangeobj by name, by (b, e), by (b, e) arguments, by unique begin, by object
        assert ct.rangeobj(r.name) == r
        assert ct.rangeobj((100, 200)) == r
        assert ct.rangeobj(100, 200) == r
        assert ct.rangeobj(100) == r
        assert ct.rangeobj("1970-01-01T00:01:40Z") == r
        assert ct.rangeobj(200, None) == rs[1] == ct.rangeobj((200, "end"))
        assert ct.rangeobj(r) == r
        # versions
        vs = r.versions()
        assert [v.version() for v in vs] == [1, 2, 3] and len(r) == 3
        assert all(isinstance(v, DCVersion) for v in vs)
        assert r.versdef() == 2
        assert r.versobj().version() == 2 and r.versobj(3).version() == 3
        assert r.versobj("v0003") == r.versobj("3") == r.versobj(np.int64(3))
        assert vs[0].tsprod() == 1000 * S and vs[0].kind() == "ndarray"
        assert vs[1].is_default() and not vs[2].is_default()
        assert vs[2].rangeobj() == r and vs[2].ctype() == "pedestals"
        assert float(vs[2].calib()[0]) == 3.0 and float(r.get(1)[0]) == 1.0
        geo = cs["geometry"].ranges()[0].versobj()
        assert geo.kind() == "text" and geo.calib() == "geo v1\n"


def test_rangeobj_errors(filled):
    with DCStore(filled) as cs:
        ct = cs["pedestals"]
        with pytest.raises(RangeNotFoundError):
            ct.rangeobj(150)
        with pytest.raises(RangeNotFoundError):
            ct.rangeobj(100, 300)
        with pytest.raises(RangeNotFoundError, match="19700101T000140Z_19700101T000320Z"):
            ct.rangeobj("19700101T000000Z_end")  # unknown name: lists the ranges
    with make(filled) as cs:
        cs.add_constants("pedestals", np.ones(4), 100, 150)
        with pytest.raises(InvalidInputError, match="2 ranges"):
            cs["pedestals"].rangeobj(100)  # begin not unique


def test_version_errors(filled):
    with DCStore(filled) as cs:
        r = cs["pedestals"].rangeobj(100)
        for bad in (0, -1, "x", "v", 1.5, True):
            with pytest.raises(InvalidInputError):
                r.versobj(bad)
        with pytest.raises(VersionNotFoundError, match=r"\[1, 2, 3\]"):
            r.versobj(7)
        with pytest.raises(VersionNotFoundError):
            cs.get("pedestals", 150, vers=9)


def test_get_version_choice(filled):
    with DCStore(filled) as cs:
        g = lambda **kw: float(cs.get("pedestals", 150, **kw)[0])  # noqa: E731
        assert g() == 2.0
        assert g(vers=1) == 1.0 and g(vers=3) == 3.0 and g(vers="v0003") == 3.0
        assert g(tsprod=1000) == 1.0 and g(tsprod=1999.5) == 1.0
        assert g(tsprod=2000) == 2.0 and g(tsprod=10**6) == 3.0
        with pytest.raises(VersionNotFoundError):
            g(tsprod=999)
        with pytest.raises(InvalidInputError):
            g(vers=1, tsprod=2000)
        assert float(cs.get("pedestals", 250)[0]) == 9.0
        assert cs.version_at("pedestals", 150).version() == 2
        assert cs.version_at("pedestals", 150, 3).version() == 3
        assert cs["pedestals"].get(150, 1)[0] == 1.0


def test_convenience_methods(path):
    names = ["pedestals", "pixel_status", "pixel_rms", "pixel_gain", "pixel_mask",
             "pixel_bkgd", "common_mode", "geometry"]
    with make(path) as cs, cs.transaction():
        for i, name in enumerate(names):
            data = "geometry text\n" if name == "geometry" else np.array([i, i + 1])
            cs.add_constants(name, data, 10)
    with DCStore(path) as cs:
        for i, name in enumerate(names):
            got = getattr(cs, name)(11)
            if name == "geometry":
                assert got == "geometry text\n"
            else:
                assert list(got) == [i, i + 1]
            assert list(np.atleast_1d(getattr(cs, name)(11, 1))) == list(np.atleast_1d(got))
            with pytest.raises(NoValidConstantsError):
                getattr(cs, name)(9)


def test_lookup_errors_name_ctype_and_time(filled):
    with DCStore(filled) as cs:
        with pytest.raises(NoValidConstantsError) as ei:
            cs.get("pedestals", "1970-01-01T00:01:00Z")
        msg = str(ei.value)
        assert "'pedestals'" in msg and "1970-01-01T00:01:00+00:00" in msg
        assert isinstance(ei.value, NotFoundError) and isinstance(ei.value, LookupError)
        with pytest.raises(CtypeNotFoundError) as ei:
            cs.get("pixel_rms", 150)
        assert "'pixel_rms'" in str(ei.value) and "geometry, pedestals" in str(ei.value)
        with pytest.raises(CtypeNotFoundError, match="geometry, pedestals"):
            cs.ctypeobj("pixel_mask")
        with pytest.raises(InvalidInputError):
            cs.get("Pedestals", 150)  # not a valid ctype name
        with pytest.raises(InvalidTimeError):
            cs.get("pedestals", "soon")


# ------------------------------------------------------------------ defaults and numbering
def test_default_handling(path):
    with make(path) as cs:
        v1 = cs.add_constants("pedestals", np.array([1]), 0, make_default=False)
        r = cs["pedestals"].rangeobj(0)
        assert v1.version() == 1 and r.versdef() == 1  # first version always default
        cs.add_constants("pedestals", np.array([2]), 0)
        assert r.versdef() == 2
        cs.add_constants("pedestals", np.array([3]), 0, make_default=False)
        assert r.versdef() == 2 and cs.get("pedestals", 5)[0] == 2
        r.set_versdef("v0003")
        assert r.versdef() == 3 and cs.get("pedestals", 5)[0] == 3
        r.set_versdef(1)
        assert cs.get("pedestals", 5)[0] == 1
        with pytest.raises(VersionNotFoundError):
            r.set_versdef(4)
        r.del_version(2)  # not the default: unchanged
        assert r.versdef() == 1
        r.del_version(1)  # the default: highest remaining
        assert r.versdef() == 3
        cs.add_constants("pedestals", np.array([4]), 0, make_default=False)
        assert r.versdef() == 3
        r.del_version(3)
        assert r.versdef() == 4
        r.del_version(4)
        assert r.versdef() == 0 and r.versions() == []
        with pytest.raises(VersionNotFoundError):
            r.versobj()
        with pytest.raises(NoValidConstantsError):
            cs.get("pedestals", 5)
        v = cs.add_constants("pedestals", np.array([5]), 0, make_default=False)
        assert v.version() == 5 and r.versdef() == 5  # first of an empty range: default
    with DCStore(path) as cs:
        assert cs["pedestals"].rangeobj(0).versdef() == 5


def test_version_numbers_never_reused(path):
    with make(path) as cs:
        for i in range(3):
            cs.add_constants("pedestals", np.array([i]), 0)
        r = cs["pedestals"].rangeobj(0)
        r.del_version(3)
        assert cs.add_constants("pedestals", np.array([4]), 0).version() == 4
        r.del_version(4)
        r.del_version(2)
    with make(path) as cs:  # also across reopen
        assert cs.add_constants("pedestals", np.array([5]), 0).version() == 5
        assert [v.version() for v in cs["pedestals"].rangeobj(0).versions()] == [1, 5]
        # an explicit number creates that version, even for a payload equal to the default
        assert cs.add_constants("pedestals", np.array([5]), 0, version=8).version() == 8
        assert cs.add_constants("pedestals", np.array([9]), 0).version() == 9
        with pytest.raises(InvalidInputError, match="already has version 8"):
            cs.add_constants("pedestals", np.array([7]), 0, version=8)


def test_identical_default_is_not_added_twice_unless_forced(path):
    with make(path) as cs:
        v1 = cs.add_constants("pedestals", np.arange(3), 0, dictpars={"run": 1})
        again = cs.add_constants("pedestals", np.arange(3), 0, dictpars={"run": 1})
        assert again == v1 and again.unchanged
        assert cs.add_constants("pedestals", np.arange(3), 0, dictpars={"run": 2}).version() == 2
        assert cs.add_constants("pedestals", np.arange(3), 0, force=True).version() == 3
        # different range, same payload: a new version sharing the stored bytes
        v = cs.add_constants("pedestals", np.arange(3), 10)
        assert v.version() == 1 and v.linked_to is not None
    with DCStore(path) as cs:
        assert [x.version() for x in cs["pedestals"].rangeobj(0).versions()] == [1, 2, 3]
        assert list(cs.get("pedestals", 11)) == [0, 1, 2]


def test_delete_range_and_ctype(filled):
    with make(filled) as cs:
        ct = cs["pedestals"]
        ct.del_range((100, 200))
        assert [r.name for r in ct.ranges()] == ["19700101T000320Z_end"]
        with pytest.raises(NoValidConstantsError):
            cs.get("pedestals", 150)
        with pytest.raises(RangeNotFoundError):
            ct.del_range((100, 200))
        cs.del_ctype("pedestals")
        assert cs.ctypes() == ["geometry"]
        with pytest.raises(CtypeNotFoundError):
            cs.del_ctype("pedestals")
        with pytest.raises(CtypeNotFoundError):
            cs.get("pedestals", 250)
    with DCStore(filled) as cs:
        assert cs.ctypes() == ["geometry"]


def test_add_range_and_ctype_explicitly(path):
    with make(path) as cs:
        ct = cs.add_ctype("pixel_mask")
        assert cs.ctypes() == ["pixel_mask"] and ct.ranges() == []
        cs.add_ctype("pixel_mask")  # idempotent, no second record
        r = ct.add_range("2024-05-01", "2024-06-01")
        assert r.versdef() == 0 and r.versions() == []
        with pytest.raises(InvalidInputError, match="already has range"):
            ct.add_range("2024-05-01", "2024-06-01")
        with pytest.raises(InvalidTimeError):
            ct.add_range("2024-06-01", "2024-05-01")
        with pytest.raises(InvalidTimeError):
            ct.add_range(5, 5)
        v = r.add_version(np.zeros((2, 2), dtype=np.uint8))
        assert v.version() == 1 and r.versdef() == 1
        assert cs.pixel_mask("2024-05-15").shape == (2, 2)
        acts = [x.action for x in cs.history_records()]
        assert acts.count("add_ctype") == 1


def test_bad_add_constants_changes_nothing(filled):
    digest = file_digest(filled)
    with make(filled) as cs:
        bad_calls = [
            (InvalidPayloadError, ("pedestals", np.array(["a"]), 0)),
            (InvalidPayloadError, ("pedestals", [1, 2, 3], 0)),
            (InvalidPayloadError, ("pedestals", np.zeros(2, dtype=object), 0)),
            (InvalidPayloadError, ("pedestals", "a\x00b", 0)),
            (InvalidTimeError, ("pedestals", np.ones(2), 10, 5)),
            (InvalidTimeError, ("pedestals", np.ones(2), None)),
            (InvalidInputError, ("Bad-Type", np.ones(2), 0)),
        ]
        for exc, args in bad_calls:
            with pytest.raises(exc):
                cs.add_constants(*args)
        with pytest.raises(InvalidInputError, match="dictpars must be a dict"):
            cs.add_constants("pedestals", np.ones(2), 0, dictpars="abc")
        with pytest.raises(InvalidInputError):
            cs.add_constants("pedestals", np.ones(2), 0, dictpars={"k": None})
        with pytest.raises(InvalidInputError):
            cs.add_constants("pedestals", np.ones(2), 0, comment=5)
    assert file_digest(filled) == digest


# ------------------------------------------------------------------ history
def _records(obj):
    return [(r.action, r.record) for r in obj.history_records()]


@pytest.mark.parametrize("fmt", ["1", "3"])  # per-object datasets / one history table
def test_history_for_every_management_method(path, monkeypatch, fmt):
    monkeypatch.setenv("PSCALIB_CREATE_FORMAT", fmt)
    with make(path) as cs:
        cs.add_constants("pedestals", np.ones(2), 0, 10, dictpars={"run": 1}, comment="dark 1")
        ct = cs["pedestals"]
        r = ct.rangeobj(0)
        cs.add_constants("pedestals", np.ones(2) * 2, 0, 10, make_default=False)
        r.set_versdef(2)
        r.versobj(1).set_par("gain", "high")
        r.set_par("note", "r")
        ct.set_pars({"a": 1, "b": 2.5})
        ct.del_par("a")
        cs.set_par("site", "LCLS")
        cs.clear_pars()
        ct.add_range(20, 30)
        ct.del_range((20, 30))
        r.del_version(1)
        cs.add_ctype("pixel_rms")
        cs.del_ctype("pixel_rms")
        cs.set_predecessor("cspad-0000")
        cs.set_successor("cspad-0002")
        r.add_history("checked by eye")
    with DCStore(path) as cs:
        root = _records(cs)
        # format 1: the first deletion (del_range) writes a tombstone: the file becomes
        # format 2; format 3 has tombstones from the start
        upgrade = ["format_upgrade"] if fmt == "1" else []
        assert [a for a, _ in root] == ["create_store", "add_ctype", "set_par", "clear_pars",
                                        *upgrade, "add_ctype", "del_ctype",
                                        "set_predecessor", "set_successor"]
        root = [r for r in root if r[0] != "format_upgrade"]
        assert root[2] == ("set_par", "site='LCLS'")
        assert root[3] == ("clear_pars", "site")
        assert root[5] == ("del_ctype", "pixel_rms (0 ranges)")
        ct = cs["pedestals"]
        ctrec = _records(ct)
        assert [a for a, _ in ctrec] == ["add_range", "set_par", "del_par", "add_range",
                                         "del_range"]
        assert ctrec[0][1] == "19700101T000000Z_19700101T000010Z"
        assert ctrec[2] == ("del_par", "a (was 1)")
        assert ctrec[4] == ("del_range", "19700101T000020Z_19700101T000030Z (versions none)")
        r = ct.rangeobj(0)
        rrec = _records(r)
        assert [a for a, _ in rrec] == ["add_version", "add_version", "set_default",
                                        "set_par", "del_version", "note"]
        assert rrec[0][1].startswith("v0001 float64 (2,) sha256:")
        assert rrec[0][1].endswith("(default) - dark 1")
        assert "(default)" not in rrec[1][1]
        assert rrec[2] == ("set_default", "v0001 -> v0002")
        assert rrec[4] == ("del_version", "v0001")
        assert rrec[5] == ("note", "checked by eye")
        assert _records(r.versobj(2)) == []  # version-level pars/history of deleted v1 gone
        for rec in cs.history_records() + ct.history_records() + r.history_records():
            assert isinstance(rec.tsns, int) and rec.user and rec.host
        text = r.history()
        assert text.count("\n") == 5 and "set_default: v0001 -> v0002" in text
        assert r.history("{action}", sep="|").split("|")[:2] == ["add_version", "add_version"]


def test_history_version_level_par(path):
    with make(path) as cs:
        v = cs.add_constants("pedestals", np.ones(2), 0)
        v.set_par("gain", "low")
        v.del_par("gain")
    with DCStore(path) as cs:
        v = cs["pedestals"].rangeobj(0).versobj(1)
        assert _records(v) == [("set_par", "gain='low'"), ("del_par", "gain (was 'low')")]


def test_history_user_from_env(path, monkeypatch):
    monkeypatch.setenv("PSCALIB_USER", "alice")
    with make(path) as cs:
        cs.add_history("hello")
        assert cs.history_records()[-1].user == "alice"
        assert "alice@" in cs.history()


def test_histdict_unique_when_times_collide(path, monkeypatch):
    with make(path) as cs:
        monkeypatch.setattr(history_mod, "now_ns", lambda: 1714564800 * S)
        with cs.transaction():
            for i in range(3):
                cs.add_history(f"note {i}")
        hd = cs.histdict()
        assert len(cs.history_records()) == 4
        base = "2024-05-01T12:00:00+00:00"
        assert hd[base] == "note: note 0"
        assert hd[base + "#2"] == "note: note 1"
        assert hd[base + "#3"] == "note: note 2"


def test_invalid_history_and_pars_rejected(path):
    with make(path) as cs:
        for bad in ("", "   ", None, 5):
            with pytest.raises(InvalidInputError):
                cs.add_history(bad)
        with pytest.raises(NotFoundError):
            cs.del_par("missing")
        with pytest.raises(NotFoundError, match="no parameter"):
            cs.par("missing")
        assert cs.par("missing", 7) == 7


def test_stale_handles_raise_not_found(path):
    with make(path) as cs:
        v = cs.add_constants("pedestals", np.ones(2), 0)
        r = v.rangeobj()
        r.del_version(1)
        with pytest.raises(NotFoundError):
            v.set_par("a", 1)
        cs.del_ctype("pedestals")
        with pytest.raises(NotFoundError):
            r.set_par("a", 1)


# ------------------------------------------------------------------ reopen and compare
DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64", "complex64", "complex128", ">f8", ">i4", ">u2",
          ">c16", "<f4"]


def _arrays():
    rng = np.random.default_rng(0)
    out = {}
    for i, dt in enumerate(DTYPES):
        dtype = np.dtype(dt)
        if dtype.kind == "b":
            a = rng.random((3, 4)) > 0.5
        elif dtype.kind == "c":
            a = (rng.normal(size=(2, 3, 4)) + 1j * rng.normal(size=(2, 3, 4))).astype(dtype)
        elif dtype.kind == "f":
            a = rng.normal(size=(5,)).astype(dtype)
            a[0] = np.nan
            a[1] = -np.inf
        else:
            info = np.iinfo(dtype)
            a = np.array([info.min, info.max, 0, 1], dtype=dtype).reshape(2, 2)
        out[f"{i:02d}_{dt}"] = a
    out["zero_d_f8"] = np.array(3.25)
    out["zero_d_be"] = np.array(-7, dtype=">i2")
    out["scalar_np"] = np.float32(1.5)
    out["non_contig"] = np.arange(60, dtype=np.int32).reshape(6, 10)[::2, 1::3]
    out["fortran"] = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    out["big_shape"] = np.ones((1, 1, 1, 1, 2, 1), dtype=np.uint16)
    out["transposed"] = np.arange(24, dtype=">f4").reshape(2, 3, 4).transpose(2, 0, 1)
    return out


def test_reopen_preserves_every_dtype_and_shape(path):
    arrays = _arrays()
    with make(path) as cs, cs.transaction():
        for i, a in enumerate(arrays.values()):
            cs.add_constants("pedestals", a, i, i + 1)
    with DCStore(path) as cs:
        for i, (name, a) in enumerate(arrays.items()):
            want = np.asarray(a)
            got = cs.get("pedestals", i)
            assert isinstance(got, np.ndarray), name
            assert got.dtype == want.dtype and got.dtype.str == want.dtype.str, name
            assert got.shape == want.shape, name
            assert got.tobytes() == np.ascontiguousarray(want).tobytes(), name
            info = cs["pedestals"].rangeobj(i).versobj().info()
            assert info.dtype == want.dtype and info.shape == want.shape
            assert info.nbytes == want.nbytes


def test_reopen_preserves_everything_else(path):
    t_prod = "2024-04-30T23:59:59.123456789Z"
    pars = {"s": "text ü", "i": 7, "f": 2.5, "b": True, "ai": [1, 2, 3]}
    with make(path) as cs:
        v = cs.add_constants("geometry", "line 1\n\tline 2\n", "2024-05-01T00:00:00.5Z",
                             "2024-05-02", dictpars=pars, tsprod=t_prod)
        v.rangeobj().set_par("r", 1)
        cs["geometry"].set_par("t", "ct")
        cs.set_par("root", False)
        cs.set_predecessor("cspad-0000")
        before = {
            "meta": (cs.dettype(), cs.detid(), cs.detname(), cs.tscfile(),
                     cs.predecessor(), cs.successor()),
            "hist": [cs.history_records(), cs["geometry"].history_records(),
                     v.rangeobj().history_records(), v.history_records()],
            "pars": [cs.dictpars(), cs["geometry"].dictpars(), v.rangeobj().dictpars()],
        }
    with DCStore(path) as cs:
        r = cs["geometry"].ranges()[0]
        v2 = r.versobj(1)
        assert (r.tsbegin(), r.tsend()) == (to_ns("2024-05-01T00:00:00.5Z"), to_ns("2024-05-02"))
        assert r.name == "20240501T000000.5Z_20240502T000000Z"
        assert v2.tsprod() == to_ns(t_prod)
        assert v2.calib() == "line 1\n\tline 2\n"
        vp = v2.dictpars()
        assert vp["s"] == "text ü" and vp["i"] == 7 and type(vp["i"]) is int
        assert vp["f"] == 2.5 and vp["b"] is True
        assert vp["ai"].dtype == np.int64 and list(vp["ai"]) == [1, 2, 3]
        assert (cs.dettype(), cs.detid(), cs.detname(), cs.tscfile(), cs.predecessor(),
                cs.successor()) == before["meta"]
        assert [cs.history_records(), cs["geometry"].history_records(),
                r.history_records(), v2.history_records()] == before["hist"]
        assert [cs.dictpars(), cs["geometry"].dictpars(), r.dictpars()] == before["pars"]


def test_refresh_sees_other_writer(path):
    with make(path) as cs:
        cs.add_constants("pedestals", np.ones(2), 0)
    reader = DCStore(path)
    with make(path) as writer:
        writer.add_constants("pedestals", np.ones(2) * 5, 100)
    assert float(reader.get("pedestals", 150)[0]) == 1.0  # its snapshot until refresh
    assert reader.refresh() is True
    assert float(reader.get("pedestals", 150)[0]) == 5.0
    assert reader.refresh() is False
    reader.close()
