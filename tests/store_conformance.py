"""Conformance suite for store backends, in the style of zarr-python's store tests.

One base class per group of invariants, parameterised by a *store factory*: a subclass
defines ``make(self, directory) -> Path`` returning the path of a store file (created in
``directory``, or a shared read-only file). A backend or kind of store gets the whole suite
by subclassing (see tests/test_conformance.py)::

    class TestMyStores(ReadOnlyConformance):          # read-only backends
        def make(self, directory): ...

    class TestMyWritableStores(WritableConformance):  # backends that can change files
        def make(self, directory): ...

Read groups (``ReadOnlyConformance``): structure, selection, versions, dictpars, history,
text, read errors. Write groups (``WritableConformance`` adds them): writes and round trips,
write errors. Read tests share one store per class (opened read-only); write tests work on
a private copy each. ``EXPECT`` (optional) checks the counts of :func:`survey` so that a
factory cannot degrade into a store on which the invariants pass vacuously.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import pytest

from pscalib import DCStore
from pscalib import errors as E
from pscalib.store.payload import checksum, payloads_equal
from pscalib.store.selection import select_bruteforce
from pscalib.timestamps import OPEN_END

__all__ = ["ReadOnlyConformance", "WritableConformance", "survey", "check_read_invariants"]

_SCALARS = (str, int, float, bool)


def at(t: int) -> np.datetime64:
    """An exact time argument for int ns (plain ints would be read as seconds)."""
    return np.datetime64(int(t), "ns")


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def objects(cs) -> Iterator[Any]:
    """The store and every type, range and version below it."""
    yield cs
    for cname in cs.ctypes():
        ct = cs[cname]
        yield ct
        for r in ct.ranges():
            yield r
            yield from r.versions()


def survey(cs) -> Dict[str, int]:
    """Counts of what the store holds (for EXPECT)."""
    n = {"ctypes": 0, "ranges": 0, "empty_ranges": 0, "versions": 0, "text": 0,
         "zero_d": 0, "pars": 0, "records": 0}
    for obj in objects(cs):
        n["pars"] += len(obj.dictpars())
        n["records"] += len(obj.history_records())
        kind = type(obj).__name__
        if kind == "DCType":
            n["ctypes"] += 1
        elif kind == "DCRange":
            n["ranges"] += 1
            n["empty_ranges"] += len(obj) == 0
        elif kind == "DCVersion":
            n["versions"] += 1
            data = obj.calib()
            n["text"] += isinstance(data, str)
            n["zero_d"] += isinstance(data, np.ndarray) and data.ndim == 0
    return n


# ------------------------------------------------------------------ invariant checks
def check_structure(cs) -> None:
    for name in ("dettype", "detid", "detname"):
        assert isinstance(getattr(cs, name)(), str) and getattr(cs, name)(), name
    assert cs.tscfile() is None or type(cs.tscfile()) is int
    for link in (cs.predecessor(), cs.successor()):
        assert link is None or (isinstance(link, str) and link)
    ctypes = cs.ctypes()
    assert ctypes == sorted(ctypes) and len(set(ctypes)) == len(ctypes)
    assert list(cs) == ctypes
    be = cs.backend
    for cname in ctypes:
        assert cname in cs and cs.ctypeobj(cname) == cs[cname]
        ct = cs[cname]
        tab = be.range_table(cname)
        ranges = ct.ranges()
        assert len(ranges) == len(tab.tsbegin) == len(ct)
        assert [(r.tsbegin(), r.tsend()) for r in ranges] == \
            sorted(zip(tab.tsbegin.tolist(), tab.tsend.tolist()))
        for r in ranges:
            assert r.tsbegin() < r.tsend() or (be.end_inclusive and r.tsbegin() == r.tsend())
            assert ct.rangeobj(r.name) == r and r.ctype() == cname
            assert r.is_open() == (r.tsend() == OPEN_END)


def check_selection(cs) -> int:
    """get() at every range edge agrees with the reference rule; returns the gets made."""
    be = cs.backend
    gets = 0
    for cname in cs.ctypes():
        ranges = cs[cname].ranges()
        live = [r for r in ranges if len(r)]
        begins = [r.tsbegin() for r in live]
        ends = [r.tsend() for r in live]
        probes = set()
        for r in ranges:
            probes |= {r.tsbegin(), r.tsbegin() - 1}
            if r.tsend() != OPEN_END:
                probes |= {r.tsend(), r.tsend() - 1}
        for t in sorted(probes):
            i = select_bruteforce(begins, ends, t, be.end_inclusive)
            if i is None:
                with pytest.raises(E.NoValidConstantsError):
                    cs.get(cname, at(t))
                continue
            default = live[i].versobj()
            assert payloads_equal(cs.get(cname, at(t)), default.calib()), (cname, t)
            assert cs.version_at(cname, at(t)) == default
            assert cs[cname].range_at(at(t)) == live[i]
            assert live[i].covers(at(t))
            gets += 1
    return gets


def check_versions(cs) -> None:
    for cname in cs.ctypes():
        for r in cs[cname].ranges():
            nums = [v.version() for v in r.versions()]
            assert nums == sorted(set(nums)) and all(n >= 1 for n in nums), (r, nums)
            d = r.versdef()
            assert (d in nums) if nums else d == 0, (r, d, nums)
            try:
                picked = cs[cname].range_at(at(r.tsbegin()))
            except E.NoValidConstantsError:
                picked = None
            for v in r.versions():
                data = v.calib()
                info = v.info()
                assert info.version == v.version() and type(info.tsprod) is int
                assert v.is_default() == (v.version() == d)
                assert r.versobj(v.version()) == v and v.rangeobj() == r
                if isinstance(data, str):
                    assert info.kind == "text" and info.nbytes == len(data.encode("utf-8"))
                else:
                    assert isinstance(data, np.ndarray) and info.kind == "ndarray"
                    assert info.dtype == data.dtype and tuple(info.shape) == data.shape
                    assert info.nbytes == data.nbytes
                if info.sha256 is not None:
                    assert info.sha256 == checksum(data), v
                if picked == r:  # get(t, vers) reads that version of the range picked at t
                    assert payloads_equal(cs.get(cname, at(r.tsbegin()), v.version()), data)


def check_dictpars(cs) -> None:
    for obj in objects(cs):
        pars = obj.dictpars()
        assert isinstance(pars, dict), obj
        for k, v in pars.items():
            assert isinstance(k, str) and k, (obj, k)
            assert obj.par(k) is not None and obj.par("__absent__", 7) == 7
            if isinstance(v, np.ndarray):
                assert v.ndim == 1 and v.size > 0 and v.dtype.kind in "biufU", (obj, k, v)
            else:
                assert type(v) in _SCALARS, (obj, k, type(v))


def check_history(cs) -> None:
    for obj in objects(cs):
        recs = obj.history_records()
        for r in recs:
            assert type(r.tsns) is int, (obj, r)
            for field in (r.user, r.host, r.action, r.record):
                assert isinstance(field, str), (obj, r)
        text = obj.history()
        assert isinstance(text, str) and len(text.splitlines()) >= len(recs) > -1
        assert len(obj.histdict()) == len(recs)  # keys never collide


def check_text(cs) -> None:
    for obj in objects(cs):
        if type(obj).__name__ == "DCVersion" and obj.info().kind == "text":
            text = obj.calib()
            assert isinstance(text, str) and "\x00" not in text
            assert obj.info().nbytes == len(text.encode("utf-8"))


def check_read_invariants(cs) -> None:
    """Every read invariant at once (used after writes)."""
    check_structure(cs)
    check_selection(cs)
    check_versions(cs)
    check_dictpars(cs)
    check_history(cs)
    check_text(cs)


# ------------------------------------------------------------------ the suite
class StoreFactory:
    """Fixtures over ``make``: ``source`` (one file per class), ``store`` (it, opened
    read-only), ``wpath``/``wstore`` (a private copy, opened with mode 'a')."""

    #: Optional check of :func:`survey` of the store.
    EXPECT: Optional[Callable[[Dict[str, int]], bool]] = None

    def make(self, directory: Path) -> Path:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    def source(self, tmp_path_factory) -> Path:
        return self.make(tmp_path_factory.mktemp(type(self).__name__))

    @pytest.fixture
    def store(self, source) -> Iterator[DCStore]:
        with DCStore(source) as cs:
            yield cs

    @pytest.fixture
    def wpath(self, source, tmp_path) -> Path:
        p = tmp_path / "calib" / source.parent.name / source.name
        p.parent.mkdir(parents=True)
        shutil.copyfile(source, p)
        return p

    @pytest.fixture
    def wstore(self, wpath) -> Iterator[DCStore]:
        with DCStore(wpath, mode="a") as cs:
            yield cs


class StructureTests(StoreFactory):
    def test_structure(self, store):
        check_structure(store)

    def test_fixture_has_the_claimed_shape(self, store):
        if self.EXPECT is not None:
            assert type(self).EXPECT(survey(store)), survey(store)  # type: ignore[misc]

    def test_refresh_of_an_unchanged_file_keeps_the_snapshot(self, store):
        assert store.refresh() is False
        check_structure(store)


class SelectionTests(StoreFactory):
    def test_get_follows_the_selection_rule(self, store):
        check_selection(store)

    def test_nothing_before_the_first_range(self, store):
        for cname in store.ctypes():
            first = min((r.tsbegin() for r in store[cname].ranges()), default=None)
            if first is not None and first > -2**62:
                with pytest.raises(E.NoValidConstantsError):
                    store.get(cname, at(first - 1))


class VersionTests(StoreFactory):
    def test_versions_defaults_and_payload_info(self, store):
        check_versions(store)


class DictparsTests(StoreFactory):
    def test_dictpars_decode_to_supported_types(self, store):
        check_dictpars(store)


class HistoryTests(StoreFactory):
    def test_history_records(self, store):
        check_history(store)


class TextTests(StoreFactory):
    def test_text_payloads(self, store):
        check_text(store)


class ReadErrorTests(StoreFactory):
    def test_missing_objects_raise_not_found(self, store):
        with pytest.raises(E.CtypeNotFoundError):
            store.get("no_such_ctype", "2024-01-01")
        with pytest.raises(E.CtypeNotFoundError):
            store.ctypeobj("no_such_ctype")
        for cname in store.ctypes():
            if not len(store[cname]):
                continue
            r = store[cname].ranges()[0]
            with pytest.raises(E.VersionNotFoundError):
                r.versobj(999_999)
            with pytest.raises(E.RangeNotFoundError):
                store[cname].rangeobj("19000101T000000Z_19000102T000000Z")

    def test_bad_arguments_raise_input_errors(self, store):
        with pytest.raises(E.InvalidNameError):
            store.get("Bad/Name", "2024-01-01")
        with pytest.raises(E.InvalidTimeError):
            store.get("pedestals", float("nan"))

    def test_a_closed_store_says_so(self, source):
        cs = DCStore(source)
        cs.close()
        with pytest.raises(E.InvalidInputError):
            cs.ctypes()

    def test_read_only_open_refuses_changes(self, source):
        with DCStore(source) as cs:
            with pytest.raises(E.ReadOnlyError):
                cs.add_constants("conformance", np.ones(2), "2024-01-01")


class ReadOnlyConformance(StructureTests, SelectionTests, VersionTests, DictparsTests,
                          HistoryTests, TextTests, ReadErrorTests):
    """Every read group: what a read-only backend (and any other) must satisfy."""


_ARRAYS: List[np.ndarray] = [
    np.arange(12, dtype=np.float32).reshape(3, 4), np.array(1.5),
    np.arange(5, dtype=">i8"), np.ones((2, 2), dtype=bool),
    np.array([1 + 2j, -0.5j], dtype=np.complex128), np.array([65535, 0], dtype=np.uint16)]
_TEXT = "# geometry\nIP 0 0 0 — ü\n\tlast line without newline"


class WriteTests(StoreFactory):
    def test_round_trip_arrays_text_and_dictpars(self, wstore, wpath):
        pars = {"run": 17, "gain": 1.5, "ok": True, "tag": "x", "names": ["a", "b"]}
        for i, a in enumerate(_ARRAYS):
            wstore.add_constants("conformance", a, f"2031-01-0{i + 1}", f"2031-01-0{i + 2}",
                                 dictpars=pars, comment="round trip")
        wstore.add_constants("conformance_text", _TEXT, "2031-01-01")
        with DCStore(wpath) as cs:
            for i, a in enumerate(_ARRAYS):
                got = cs.get("conformance", f"2031-01-0{i + 1}T12:00:00")
                assert got.dtype == a.dtype and got.shape == a.shape
                assert got.tobytes() == a.tobytes()
                ver = cs.version_at("conformance", f"2031-01-0{i + 1}T12:00:00")
                back = ver.dictpars()
                assert {k: v for k, v in back.items() if k != "names"} == \
                    {k: v for k, v in pars.items() if k != "names"}
                assert list(back["names"]) == ["a", "b"]
            assert cs.get("conformance_text", "2031-06-01") == _TEXT
            check_read_invariants(cs)

    def test_versions_numbering_defaults_and_history(self, wstore):
        a, b = np.ones(3), np.full(3, 2.0)
        v1 = wstore.add_constants("conformance", a, "2031-01-01")
        v2 = wstore.add_constants("conformance", b, "2031-01-01", make_default=False)
        assert (v1.version(), v2.version()) == (1, 2)
        assert payloads_equal(wstore.get("conformance", "2031-02-01"), a)
        rng = v1.rangeobj()
        rng.set_versdef(2)
        assert payloads_equal(wstore.get("conformance", "2031-02-01"), b)
        actions = [h.action for h in rng.history_records()]
        assert actions.count("add_version") == 2 and "set_default" in actions
        again = wstore.add_constants("conformance", b, "2031-01-01")
        assert again.unchanged and again == v2 and len(rng) == 2

    def test_deletions_keep_the_invariants(self, wstore, wpath):
        for i in range(3):
            wstore.add_constants("conformance", np.full(2, i), "2031-01-01", "2031-02-01")
        wstore.add_constants("conformance", np.full(2, 9), "2031-02-01")
        ct = wstore["conformance"]
        rng = ct.rangeobj(ct.ranges()[0].name)
        rng.del_version(3)  # the default: the highest remaining one takes over
        assert rng.versdef() == 2
        ct.del_range(ct.ranges()[1].name)
        assert len(ct) == 1
        wstore.add_ctype("conformance_gone")
        wstore.del_ctype("conformance_gone")
        assert "conformance_gone" not in wstore
        with DCStore(wpath) as cs:
            check_read_invariants(cs)

    def test_failed_transaction_leaves_the_file_as_it_was(self, wstore, wpath):
        before = digest(wpath)
        with pytest.raises(ZeroDivisionError):
            with wstore.transaction():
                wstore.add_constants("conformance", np.ones(4), "2031-01-01")
                wstore.set_pars({"during": 1})
                raise ZeroDivisionError("inside the transaction")
        assert digest(wpath) == before
        assert "conformance" not in wstore

    def test_compaction_keeps_every_payload_and_record(self, wstore, wpath):
        wstore.add_constants("conformance", np.arange(100.0), "2031-01-01")
        wstore["conformance"].ranges()[0].del_version(1)
        def snapshot():
            return {repr(o): (o.dictpars(), o.history_records(),
                              o.calib() if type(o).__name__ == "DCVersion" else None)
                    for o in objects(wstore)}
        before = snapshot()
        wstore.compact()
        after = snapshot()
        root = repr(wstore)
        assert after[root][1][-1].action == "compact"
        after[root] = (after[root][0], after[root][1][:-1], None)
        assert set(after) == set(before)
        for key, (pars, recs, data) in before.items():
            assert str(after[key][0]) == str(pars) and after[key][1] == recs, key
            assert data is None or payloads_equal(after[key][2], data), key
        with DCStore(wpath) as cs:
            check_read_invariants(cs)


class WriteErrorTests(StoreFactory):
    def test_rejected_changes_leave_the_file_as_it_was(self, wstore, wpath):
        before = digest(wpath)
        cases = [
            (E.InvalidNameError, lambda: wstore.add_constants("Bad/Name", np.ones(2), 0)),
            (E.InvalidTimeError, lambda: wstore.add_constants("conformance", np.ones(2),
                                                              "2031-02-01", "2031-01-01")),
            (E.InvalidPayloadError, lambda: wstore.add_constants(
                "conformance", np.array(["a"], dtype=object), "2031-01-01")),
            (E.InvalidParameterError, lambda: wstore.set_pars({"k": {"nested": 1}})),
            (E.CtypeNotFoundError, lambda: wstore.del_ctype("no_such_ctype")),
        ]
        with_ranges = [c for c in wstore.ctypes() if len(wstore[c])]
        if with_ranges:
            rng = wstore[with_ranges[0]].ranges()[0]
            cases.append((E.VersionNotFoundError, lambda: rng.set_versdef(999_999)))
        for err, call in cases:
            with pytest.raises(err):
                call()
            assert digest(wpath) == before, err

    def test_writer_only_inside_a_transaction(self, wstore):
        with pytest.raises(E.InvalidInputError):
            wstore.writer()
        with wstore.transaction():
            w = wstore.writer()
            assert w.ensure_ctype("conformance") is True
            assert w.ensure_ctype("conformance") is False
        assert "conformance" in wstore


class WritableConformance(ReadOnlyConformance, WriteTests, WriteErrorTests):
    """Every group: what a writable backend must satisfy."""

