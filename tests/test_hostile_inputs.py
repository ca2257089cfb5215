"""Hostile input: every public library entry point meets bad input with a specific pscalib
error and leaves every file byte-identical (sha256 of every file before and after).

Real files and real processes only: read-only and full filesystems are real tmpfs mounts
(we run as root in CI) or real unprivileged subprocesses (os.setuid), the "disk full during
a write" case is a real RLIMIT_FSIZE in a child process.
"""
from __future__ import annotations

import datetime as dt
import decimal
import fractions
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from pscalib import DCStore, errors as E
from pscalib.names import validate_alias, validate_ctype, validate_detname, validate_parkey
from pscalib.store import layout as L
from pscalib.timestamps import to_ns, to_ns_or_none

T0 = "2024-01-01T00:00:00"
T1 = "2024-06-01T00:00:00"
INSIDE = "2024-02-01T00:00:00"
NOBODY = 65534


# ----------------------------------------------------------------------------- helpers
def snapshot(folder: Path) -> dict:
    """sha256 of every file under ``folder`` (lock files excluded: they are never data)."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def make_store(path: Path) -> Path:
    """A small store: two ranges of pedestals (one with two versions), geometry text, pars."""
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.arange(6.0).reshape(2, 3), T0, T1, dictpars={"gain": 1})
        cs.add_constants("pedestals", np.ones((2, 3)), T0, T1, make_default=False)
        cs.add_constants("pedestals", np.zeros((2, 3), np.float32), T1)
        cs.add_constants("geometry", "# geometry\nQUAD 0 1\n", T0)
        cs.set_par("experiment", "cxi12345")
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("template") / "cspad-0001.h5")


@pytest.fixture
def store(tmp_path, template):
    """A fresh copy of the small store (building it once keeps the module fast)."""
    p = tmp_path / "calib" / "cspad" / "cspad-0001.h5"
    p.parent.mkdir(parents=True)
    shutil.copyfile(template, p)
    return p


def check_rejected(folder: Path, action, expected, *args):
    """Run ``action(*args)``; it must raise ``expected`` and leave ``folder`` unchanged."""
    before = snapshot(folder)
    with pytest.raises(expected) as info:
        action(*args)
    assert isinstance(info.value, E.PscalibError)
    assert str(info.value).strip(), "an error must say what was wrong"
    assert snapshot(folder) == before, "a failed call changed or left files"
    return info.value


def on_store(store: Path, fn, expected, mode="a"):
    cs = DCStore(store, mode=mode)
    try:
        return check_rejected(store.parent, fn, expected, cs)
    finally:
        cs.close()


# ----------------------------------------------------------------------------- times
BAD_TIMES = [
    None, float("nan"), float("inf"), -float("inf"), np.float64("nan"), np.float32("inf"),
    np.datetime64("NaT"), True, np.bool_(False), object(), [1, 2, 3], {}, (1,), (1, 2, 3),
    (1, 10**9), (1, -1), (1.5, 0), (2**62, 0), 10**400, 2**62, -2**62, 1e300,
    fractions.Fraction(10**400), decimal.Decimal("NaN"), dt.timedelta(days=1),
    dt.datetime(1500, 1, 1), dt.datetime(9999, 12, 31), dt.date(1, 1, 1),
    np.datetime64("2300-01-01"), np.datetime64("1600-01-01T00:00:00"),
    "", "   ", "yesterday", "now-ish", "2024-13-01", "2024-02-30", "2024-05-01T25:00",
    "2024-05-01T12:60", "01/02/2024", "2/1/24", "2024-5-1", "24-05-01", "2024-05-01T1",
    "2024-05-01T12:00:00+25:00", "2024-05-01T12:00:00.1234567891", "2024-05-01\x0012:00",
    "1e9999999", "1e99999999999", "-1e30", "nan", "inf", "-inf", "0x10", "1_000",
    "2024-05-01T12:00:00 PST", "\u0662\u0660\u0662\u0664-05-01", b"\xff\xfe", "end",
]


@pytest.mark.parametrize("bad", BAD_TIMES, ids=lambda v: repr(v)[:40])
def test_to_ns_rejects(bad):
    with pytest.raises(E.InvalidTimeError):
        to_ns(bad)


@pytest.mark.parametrize("bad", BAD_TIMES, ids=lambda v: repr(v)[:40])
def test_get_with_bad_time(store, bad):
    on_store(store, lambda cs: cs.get("pedestals", bad), E.InvalidTimeError)


TIME_CALLS = {
    "add tsbegin": lambda cs, t: cs.add_constants("pedestals", np.ones(3), t, T1),
    "add tsend": lambda cs, t: cs.add_constants("pedestals", np.ones(3), T0, t),
    "add tsprod": lambda cs, t: cs.add_constants("pedestals", np.ones(3), T0, tsprod=t),
    "add_range": lambda cs, t: cs["pedestals"].add_range(t),
    "range_at": lambda cs, t: cs["pedestals"].range_at(t),
    "rangeobj": lambda cs, t: cs["pedestals"].rangeobj(t),
    "rangeobj pair": lambda cs, t: cs["pedestals"].rangeobj(T0, t),
    "covers": lambda cs, t: cs["pedestals"].ranges()[0].covers(t),
    "version_at": lambda cs, t: cs["pedestals"].ranges()[0].version_at(t),
    "get tsprod": lambda cs, t: cs.get("pedestals", INSIDE, tsprod=t),
    "store version_at": lambda cs, t: cs.version_at("pedestals", t),
}
SOME_BAD_TIMES = [float("nan"), -float("inf"), object(), "2024-02-30", "1e9999999",
                  fractions.Fraction(10**400), (1, 10**9), dt.datetime(1500, 1, 1)]


@pytest.mark.parametrize("call", sorted(TIME_CALLS))
def test_time_arguments_everywhere(store, call):
    for bad in SOME_BAD_TIMES:
        if call == "rangeobj" and isinstance(bad, tuple):
            continue  # a pair is (begin, end) there, not (sec, nsec)
        on_store(store, lambda cs: TIME_CALLS[call](cs, bad), E.InvalidTimeError)


@pytest.mark.parametrize("end", [T0, "2023-12-31T23:59:59.999999999", "2000-01-01",
                                 -float("inf")])
def test_end_not_after_begin(store, end):
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0, end),
             E.InvalidTimeError)
    on_store(store, lambda cs: cs["pedestals"].add_range(T0, end), E.InvalidTimeError)


def test_open_end_words_only_for_the_end(store):
    assert to_ns_or_none("end") is None
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), "end"),
             E.InvalidTimeError)


# ----------------------------------------------------------------------------- names
HOSTILE_NAMES = ["", ".", "..", "../etc", "a/b", "/abs", "a\\b", "a\x00b", "a\nb", "a\tb",
                 "a\x7fb", "x" * 5000, 5, None, b"pedestals", ["pedestals"]]
BAD_CTYPES = HOSTILE_NAMES + ["Pedestals", "ped estals", "péd", "_history", "_dictpars",
                              "_ranges", "_x", "ped-estals", "ped.estals", "x" * 65]


@pytest.mark.parametrize("bad", BAD_CTYPES, ids=lambda v: repr(v)[:30])
def test_bad_ctype(store, bad):
    with pytest.raises(E.InvalidNameError):
        validate_ctype(bad)
    for fn in (lambda cs: cs.add_constants(bad, np.ones(3), T0),
               lambda cs: cs.get(bad, INSIDE),
               lambda cs: cs.add_ctype(bad),
               lambda cs: cs.del_ctype(bad),
               lambda cs: cs.ctypeobj(bad),
               lambda cs: cs.version_at(bad, INSIDE)):
        on_store(store, fn, E.InvalidNameError)


# Never a valid detname or alias: rejected as a name before any file system access
BAD_DETNAMES = HOSTILE_NAMES + ["cspad-../x", "cspad-a/b", "cspad-a\x00", "cspad-a\nb",
                                "cs pad-1", "cspad-1 ", " cspad-1", "cspad-" + "9" * 300,
                                "x" * 201]
# Not a detname but shaped like an alias: looked up as one, and not found
ALIAS_SHAPED = [".", "cspad", "-0001", ".cspad-1", "cspad-", "CSPAD-1", "cspad-.hidden",
                "cspad-a:b", "cspad-\u00e9"]


@pytest.mark.parametrize("bad", BAD_DETNAMES + ALIAS_SHAPED, ids=lambda v: repr(v)[:30])
def test_bad_detname(tmp_path, bad):
    calib = tmp_path / "calib"
    calib.mkdir()
    with pytest.raises(E.InvalidNameError):
        validate_detname(bad)
    expected = (E.InvalidNameError, E.AliasNotFoundError) if bad in ALIAS_SHAPED \
        else E.InvalidInputError
    # opening or creating a store with that name must not create anything anywhere
    for mode in ("a", "x", "r"):
        check_rejected(tmp_path, lambda: DCStore(calib, bad, mode=mode), expected)


@pytest.mark.parametrize("bad", [b for b in BAD_DETNAMES + ALIAS_SHAPED if b is not None],
                         ids=lambda v: repr(v)[:30])
def test_bad_predecessor(store, bad):
    on_store(store, lambda cs: cs.set_predecessor(bad), E.InvalidNameError)
    on_store(store, lambda cs: cs.set_successor(bad), E.InvalidNameError)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\x00b", "a\nb", "\x1b[31m",
                                 "k" * 300, 5, None, ("a",)], ids=lambda v: repr(v)[:30])
def test_bad_parkey(store, bad):
    with pytest.raises(E.InvalidNameError):
        validate_parkey(bad)
    on_store(store, lambda cs: cs.set_par(bad, 1), E.InvalidNameError)
    on_store(store, lambda cs: cs.set_pars({"ok": 1, bad: 2}), E.InvalidNameError)
    on_store(store, lambda cs: cs.del_par(bad), E.InvalidNameError)
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0,
                                                dictpars={bad: 1}), E.InvalidNameError)


def test_par_with_unhashable_key(store):
    on_store(store, lambda cs: cs.par(["x"]), E.InvalidNameError)


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "..", "a\x00", "a\nb", "#comment",
                                 "x" * 201, 7, None], ids=lambda v: repr(v)[:30])
def test_bad_alias_name(bad):
    with pytest.raises(E.InvalidNameError):
        validate_alias(bad)


# ----------------------------------------------------------------------------- unknowns
UNKNOWN = [
    ("ctype", lambda cs: cs.get("pixel_gain", INSIDE), E.CtypeNotFoundError),
    ("ctypeobj", lambda cs: cs["pixel_gain"], E.CtypeNotFoundError),
    ("del ctype", lambda cs: cs.del_ctype("pixel_gain"), E.CtypeNotFoundError),
    ("before ranges", lambda cs: cs.get("pedestals", "2000-01-01"), E.NoValidConstantsError),
    ("geometry before", lambda cs: cs.geometry("2023-01-01"), E.NoValidConstantsError),
    ("range name", lambda cs: cs["pedestals"].rangeobj("20990101T000000Z_end"),
     E.RangeNotFoundError),
    ("range pair", lambda cs: cs["pedestals"].rangeobj(T0, "2024-03-01"), E.RangeNotFoundError),
    ("range begin", lambda cs: cs["pedestals"].rangeobj("2030-01-01"), E.RangeNotFoundError),
    ("del range", lambda cs: cs["pedestals"].del_range("garbage-range"), E.InvalidTimeError),
    ("del range pair", lambda cs: cs["pedestals"].del_range((T0, "2030-01-01")),
     E.RangeNotFoundError),
    ("versobj", lambda cs: cs["pedestals"].ranges()[0].versobj(99), E.VersionNotFoundError),
    ("get vers", lambda cs: cs.get("pedestals", INSIDE, 99), E.VersionNotFoundError),
    ("get vers name", lambda cs: cs.get("pedestals", INSIDE, "v0099"), E.VersionNotFoundError),
    ("del version", lambda cs: cs["pedestals"].ranges()[0].del_version(99),
     E.VersionNotFoundError),
    ("version_at", lambda cs: cs["pedestals"].ranges()[0].version_at("2000-01-01"),
     E.VersionNotFoundError),
    ("par", lambda cs: cs.par("nope"), E.NotFoundError),
    ("del par", lambda cs: cs.del_par("nope"), E.NotFoundError),
    ("range par", lambda cs: cs["pedestals"].ranges()[0].par("nope"), E.NotFoundError),
]


@pytest.mark.parametrize("name,fn,exc", UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_unknown_objects(store, name, fn, exc):
    on_store(store, fn, exc)


def test_missing_store(tmp_path):
    check_rejected(tmp_path, lambda: DCStore(tmp_path / "cspad-0009.h5"), E.StoreNotFoundError)
    check_rejected(tmp_path, lambda: DCStore(tmp_path, "cspad-0009"), E.StoreNotFoundError)


@pytest.mark.parametrize("bad", [123, 4.5, b"/tmp/x.h5", ["x.h5"], object(), "x" * 5000,
                                 "calib/" + "y" * 300 + ".h5"],
                         ids=lambda v: repr(v)[:30])
def test_bad_store_path_type(tmp_path, bad):
    check_rejected(tmp_path, lambda: DCStore(bad, mode="a"), E.InvalidInputError)


@pytest.mark.parametrize("mode", ["w", "w+", "r+", "", None, 1, "rw"])
def test_bad_mode(store, mode):
    check_rejected(store.parent, lambda: DCStore(store, mode=mode), E.InvalidInputError)


@pytest.mark.parametrize("timeout", [-1, float("nan"), "abc", True, [1]],
                         ids=lambda v: repr(v))
def test_bad_lock_timeout(store, timeout):
    check_rejected(store.parent, lambda: DCStore(store, mode="a", lock_timeout=timeout),
                   E.InvalidInputError)


def test_directory_is_not_a_store(tmp_path):
    check_rejected(tmp_path, lambda: DCStore(tmp_path), E.InvalidInputError)


def test_read_only_mode_refuses_changes(store):
    for fn in (lambda cs: cs.add_constants("pedestals", np.ones(3), T0),
               lambda cs: cs.set_par("x", 1),
               lambda cs: cs.del_ctype("pedestals"),
               lambda cs: cs["pedestals"].ranges()[0].set_versdef(2),
               lambda cs: cs.add_history("note")):
        on_store(store, fn, E.ReadOnlyError, mode="r")


def test_closed_store(store):
    cs = DCStore(store)
    cs.close()
    check_rejected(store.parent, lambda: cs.get("pedestals", INSIDE), E.InvalidInputError)


@pytest.mark.parametrize("fmt", ["{nope}", "{", "{0}", "{time.x}", 5],
                         ids=lambda v: repr(v))
def test_bad_history_format(store, fmt):
    on_store(store, lambda cs: cs.history(fmt), E.InvalidInputError)


@pytest.mark.parametrize("record,action", [(None, "note"), ("", "note"), ("  ", "note"),
                                           (b"x", "note"), ("x", None), ("x", ""), ("x", 3)])
def test_bad_history_note(store, record, action):
    on_store(store, lambda cs: cs.add_history(record, action=action), E.InvalidInputError)


# ----------------------------------------------------------------------------- payloads
BAD_PAYLOADS = [
    np.array([object(), 1], dtype=object), np.array(["a", "b"]), np.array([b"a"]),
    np.zeros(2, dtype=[("a", "f8"), ("b", "i4")]), np.array(["2024-01-01"], "datetime64[D]"),
    np.array([1], "timedelta64[s]"), np.zeros(2, "V8"), np.zeros(3, np.longdouble),
    np.zeros(3, np.clongdouble), np.zeros(0), np.zeros((3, 0)), np.zeros((0, 5), np.int8),
    [1.0, 2.0], (1, 2), {"a": 1}, None, memoryview(b"abc"), b"\xff\xfe not utf-8",
    b"abc\x00def", "text with NUL \x00 inside", "lone surrogate \udcff",
    np.ma.array([1.0, 2.0], mask=[True, False]), object(),
]


@pytest.mark.parametrize("bad", BAD_PAYLOADS, ids=lambda v: repr(v)[:30])
def test_bad_payload(store, bad):
    on_store(store, lambda cs: cs.add_constants("pedestals", bad, T0), E.InvalidPayloadError)
    on_store(store, lambda cs: cs["pedestals"].ranges()[0].add_version(bad),
             E.InvalidPayloadError)


def test_array_larger_than_any_disk_fails_before_writing(store):
    # 8 TB logical array that takes no memory (a broadcast view): the free-space check must
    # refuse it before hashing or writing anything
    huge = np.broadcast_to(np.float64(1.0), (10**6, 10**6))
    err = on_store(store, lambda cs: cs.add_constants("pedestals", huge, T0), E.StoreIOError)
    assert "disk space" in str(err)


# ----------------------------------------------------------------------------- dictpars
BAD_PARS = [None, {"a": 1}, {1, 2}, 1 + 2j, b"bytes", 2**70, -2**64, [], (), [1, "a"],
            [[1, 2]], [None], [True, 1], np.zeros((2, 2)), np.longdouble(1),
            np.array([1 + 1j]), np.array([b"a"]), np.array([], np.int32),
            np.datetime64("2024-01-01"), object(), "NUL \x00 inside", "surrogate \udcff",
            ["ok", "NUL \x00"], np.complex128(1), Path("/tmp"), dt.datetime(2024, 1, 1)]


@pytest.mark.parametrize("bad", BAD_PARS, ids=lambda v: repr(v)[:30])
def test_bad_dictpars_value(store, bad):
    on_store(store, lambda cs: cs.set_par("k", bad), E.InvalidParameterError)
    on_store(store, lambda cs: cs.set_pars({"good": 1, "k": bad}), E.InvalidParameterError)
    on_store(store, lambda cs: cs["pedestals"].ranges()[0].set_par("k", bad),
             E.InvalidParameterError)
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0,
                                                dictpars={"k": bad}), E.InvalidParameterError)


@pytest.mark.parametrize("bad", [[("a", 1)], "ab", 5, ("a", 1)], ids=repr)
def test_dictpars_not_a_dict(store, bad):
    on_store(store, lambda cs: cs.set_pars(bad), E.InvalidParameterError)
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0, dictpars=bad),
             E.InvalidInputError)


# ----------------------------------------------------------------------------- versions
@pytest.mark.parametrize("bad", [0, -1, -2**70, 1.5, "x", "v", "v-001", "", True, 2**70,
                                 10**9, None.__class__, [1]], ids=repr)
def test_bad_version_number(store, bad):
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0, T1, version=bad),
             E.InvalidInputError)
    on_store(store, lambda cs: cs["pedestals"].ranges()[0].set_versdef(bad),
             E.InvalidInputError)
    on_store(store, lambda cs: cs["pedestals"].ranges()[0].del_version(bad),
             E.InvalidInputError)
    on_store(store, lambda cs: cs.get("pedestals", INSIDE, bad), E.InvalidInputError)


def test_duplicate_version(store):
    for v in (1, 2, "v0001", np.int64(2)):
        on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0, T1, version=v),
                 E.InvalidInputError)


@pytest.mark.parametrize("missing", [3, 99, "v0042"])
def test_default_to_missing_version(store, missing):
    on_store(store, lambda cs: cs["pedestals"].ranges()[0].set_versdef(missing),
             E.VersionNotFoundError)


def test_default_of_deleted_range(store):
    cs = DCStore(store, mode="a")
    rng = cs["pedestals"].ranges()[0]
    cs["pedestals"].del_range(rng)
    cs.close()
    on_store(store, lambda c: rng.__class__(c, *rng._key).set_versdef(1), E.RangeNotFoundError)


# ----------------------------------------------------------------------------- files
def _expect_bad_file(path: Path, expected=E.StoreFormatError):
    """Every way of opening ``path`` fails with ``expected`` and leaves it unchanged."""
    folder = path.parent
    for mode in ("r", "a"):
        check_rejected(folder, lambda: DCStore(path, mode=mode), expected)
    check_rejected(folder, lambda: DCStore(path, mode="x"), E.StoreExistsError)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    p.write_bytes(b"")
    _expect_bad_file(p)


@pytest.mark.parametrize("keep", [0.01, 0.3, 0.6, 0.95])
def test_truncated_store(tmp_path, template, keep):
    data = template.read_bytes()
    bad = tmp_path / "cspad-0001.h5"
    bad.write_bytes(data[:max(1, int(len(data) * keep))])
    _expect_bad_file(bad)


@pytest.mark.parametrize("size", [1, 8, 512, 4096, 100_000])
def test_random_bytes(tmp_path, size):
    p = tmp_path / "cspad-0001.h5"
    p.write_bytes(np.random.default_rng(size).bytes(size))
    _expect_bad_file(p)


def test_text_file(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    p.write_text("# not a store\nQUAD 0 1\n")
    _expect_bad_file(p)


def test_hdf5_that_is_not_a_store(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    with h5py.File(p, "x") as f:
        f["data"] = np.arange(10)
        f.attrs["comment"] = "some other HDF5 file"
    _expect_bad_file(p)


def _edit_copy(tmp_path: Path, template: Path, edit) -> Path:
    """A store whose file was changed by ``edit(h5py.File)`` (simulating other software)."""
    p = tmp_path / "cspad-0001.h5"
    shutil.copyfile(template, p)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p


def test_newer_format_version(tmp_path, template):
    p = _edit_copy(tmp_path, template, lambda f: f.attrs.modify(L.A_FORMAT_VERSION,
                                                      np.int64(L.FORMAT_VERSION + 1)))
    _expect_bad_file(p, E.UnsupportedFormatVersionError)


@pytest.mark.parametrize("name,edit,expected", [
    ("format name", lambda f: f.attrs.modify(L.A_FORMAT, "something-else"),
     E.StoreFormatError),
    ("no version", lambda f: f.attrs.__delitem__(L.A_FORMAT_VERSION), E.CorruptStoreError),
    ("text version", lambda f: (f.attrs.__delitem__(L.A_FORMAT_VERSION),
                                f.attrs.create(L.A_FORMAT_VERSION, "one")), E.CorruptStoreError),
    ("version 0", lambda f: f.attrs.modify(L.A_FORMAT_VERSION, np.int64(0)),
     E.CorruptStoreError),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_root_attributes(tmp_path, template, name, edit, expected):
    _expect_bad_file(_edit_copy(tmp_path, template, edit), expected)


def _drop_range_index(f):
    del f["pedestals"][L.N_RANGE_INDEX]


def _drop_payload(f):
    rg = [k for k in f["pedestals"] if not k.startswith("_")][0]
    for v in list(f["pedestals"][rg]):
        if v.startswith("v"):
            del f["pedestals"][rg][v][L.N_DATA]


def _bad_index_dtype(f):
    del f["pedestals"][L.N_RANGE_INDEX]
    f["pedestals"][L.N_RANGE_INDEX] = np.zeros(3)


def _index_points_nowhere(f):
    ds = f["pedestals"][L.N_RANGE_INDEX]
    row = ds[0]
    row["tsbegin"] = 12345
    ds[0] = row


@pytest.mark.parametrize("edit", [_drop_range_index, _drop_payload, _bad_index_dtype,
                                  _index_points_nowhere], ids=lambda f: f.__name__)
def test_inconsistent_store_reads(tmp_path, template, edit):
    p = _edit_copy(tmp_path, template, edit)
    before = snapshot(tmp_path)
    with DCStore(p) as cs:  # opening works: damage is found when the objects are read
        with pytest.raises(E.StoreFormatError):
            for t in (INSIDE, "2024-07-01"):
                cs.get("pedestals", t)
            for rng in cs["pedestals"].ranges():
                for ver in rng.versions():
                    ver.calib()
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- filesystems


def test_array_too_big_for_small_filesystem(small_fs):
    p = make_store(small_fs / "cspad-0001.h5")
    big = np.ones(3 * 2**20)  # 24 MiB > the 20 MiB filesystem
    err = on_store(p, lambda cs: cs.add_constants("pedestals", big, T0), E.StoreIOError)
    assert "nothing was changed" in str(err)
    with DCStore(p) as cs:
        assert cs.get("pedestals", INSIDE).shape == (2, 3)


def test_read_only_filesystem(small_fs):
    p = make_store(small_fs / "cspad-0001.h5")
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    before = snapshot(small_fs)
    for fn in (lambda: DCStore(p, mode="a").add_constants("pedestals", np.ones(3), T0),
               lambda: DCStore(small_fs / "cspad-0002.h5", mode="a"),
               lambda: DCStore(small_fs / "cspad-0003.h5", mode="x")):
        with pytest.raises(E.StorePermissionError):
            fn()
    with DCStore(p) as cs:  # reading still works
        assert cs.geometry(INSIDE).startswith("# geometry")
    assert snapshot(small_fs) == before


def _run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)


_CHILD_PROLOGUE = """
    import os, sys, resource, signal
    import numpy as np, numpy.ma
    from pscalib import DCStore
    from pscalib.errors import PscalibError
    def expect(fn, name):
        try:
            fn()
        except PscalibError as exc:
            print(type(exc).__name__, exc, sep=": ")
            if type(exc).__name__ != name and name not in [c.__name__ for c in type(exc).__mro__]:
                sys.exit(3)
            return
        print("no error"); sys.exit(4)
"""


@pytest.fixture
def shared_dir():
    """A directory an unprivileged uid can reach (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="pscalib-perm-"))
    os.chmod(d, 0o755)
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def _drop_privileges_code() -> str:
    if os.geteuid() != 0:
        return ""
    return f"os.setgid({NOBODY}); os.setuid({NOBODY})"


def test_read_only_file_unprivileged(shared_dir):
    """A store with mode 0444 in a writable directory: the rename trick must not bypass it."""
    folder = shared_dir / "calib"
    folder.mkdir()
    p = make_store(folder / "cspad-0001.h5")
    if os.geteuid() == 0:
        os.chown(folder, NOBODY, NOBODY)
        os.chown(p, NOBODY, NOBODY)
    os.chmod(p, 0o444)
    before = snapshot(folder)
    r = _run_child(_CHILD_PROLOGUE + f"""
    {_drop_privileges_code()}
    assert os.access({str(folder)!r}, os.W_OK)  # the directory is writable for us
    cs = DCStore({str(p)!r}, mode="r")
    assert cs.get("pedestals", {INSIDE!r}).shape == (2, 3)
    cs.close()
    expect(lambda: DCStore({str(p)!r}, mode="a").add_constants("pedestals", np.ones(3), 0),
           "StorePermissionError")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "read-only" in r.stdout
    assert snapshot(folder) == before


def test_read_only_directory_unprivileged(shared_dir):
    folder = shared_dir / "calib"
    folder.mkdir()
    p = make_store(folder / "cspad-0001.h5")
    os.chmod(folder, 0o555)
    before = snapshot(folder)
    r = _run_child(_CHILD_PROLOGUE + f"""
    {_drop_privileges_code()}
    expect(lambda: DCStore({str(p)!r}, mode="a").add_constants("pedestals", np.ones(3), 0),
           "StorePermissionError")
    expect(lambda: DCStore({str(folder / 'cspad-0002.h5')!r}, mode="a"), "StorePermissionError")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert snapshot(folder) == before


@pytest.mark.parametrize("limit_mib,nbytes", [(1, 2 * 2**20), (2, 4 * 2**20)])
def test_full_disk_during_write(tmp_path, store, limit_mib, nbytes):
    """RLIMIT_FSIZE (SIGXFSZ ignored) stops the write of the private copy with EFBIG.

    Whether the library sees it coming (free-space / limit check) or the write fails half
    way, the outcome must be a StoreIOError, an unchanged file and no crash of the process.
    """
    p = store
    before = snapshot(p.parent)
    r = _run_child(_CHILD_PROLOGUE + f"""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    lim = {limit_mib} * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim, lim))
    cs = DCStore({str(p)!r}, mode="a")
    expect(lambda: cs.add_constants("pedestals", np.ones({nbytes // 8}), 0), "StoreIOError")
    expect(lambda: cs.add_constants("geometry", "x" * {nbytes}, 0), "StoreIOError")
    def many():  # each piece is small; together they outgrow the limit within one transaction
        with cs.transaction():
            for i in range(40):
                cs.add_constants("pixel_gain", np.full(2**14, float(i)), i + 1)
    expect(many, "StoreIOError")
    assert cs.get("pedestals", {INSIDE!r}).shape == (2, 3)  # the open store still reads
    assert "pixel_gain" not in cs.ctypes()
    """)
    assert r.returncode == 0, f"exit status {r.returncode}: {r.stdout}{r.stderr}"
    assert r.stderr == "", r.stderr  # no traceback, no 'Exception ignored' noise from HDF5
    assert r.stdout.count("StoreIOError") == 3
    assert snapshot(p.parent) == before
    with DCStore(p) as cs:
        assert cs.get("pedestals", INSIDE).shape == (2, 3)


def test_full_disk_when_copying(tmp_path):
    """The store itself is bigger than the file size limit: the copy step fails."""
    p = tmp_path / "cspad-0001.h5"
    with DCStore(p, mode="a") as cs:
        cs.add_constants("pedestals", np.random.default_rng(0).random(2**18), T0)  # 2 MiB
    before = snapshot(tmp_path)
    r = _run_child(_CHILD_PROLOGUE + f"""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
    expect(lambda: DCStore({str(p)!r}, mode="a").set_par("k", 1), "StoreIOError")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert snapshot(tmp_path) == before


def test_damaged_global_heap_does_not_hang(tmp_path, template):
    """A free-space record of size 0 in the heap holding the root attributes makes HDF5
    spin forever (found by scripts/fuzz_files.py); opening must refuse the file instead."""
    data = bytearray(template.read_bytes())
    g = data.find(b"GCOL")
    assert 0 < g < 8192
    p = g + 16
    while True:  # walk the heap objects to the free-space record (index 0)
        idx, _, _, size = struct.unpack_from("<HHIQ", data, p)
        if idx == 0:
            break
        p += 16 + ((size + 7) & ~7)
    struct.pack_into("<Q", data, p + 8, 0)
    bad = tmp_path / "cspad-0001.h5"
    bad.write_bytes(bytes(data))
    before = snapshot(tmp_path)
    r = _run_child(_CHILD_PROLOGUE + f"""
    for mode in ("r", "a"):
        expect(lambda: DCStore({str(bad)!r}, mode=mode), "CorruptStoreError")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert snapshot(tmp_path) == before


def _collection(size: int, objects) -> bytes:
    body = b"".join(struct.pack("<HHIQ", i, 1, 0, n) + bytes((n + 7) & ~7) for i, n in objects)
    return b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", size) + body


@pytest.mark.parametrize("name,size,objects,spins", [
    ("sound", 4096, [(1, 11), (2, 5), (0, 4096 - 16 - 32 - 24)], False),
    ("free space of size 0", 4096, [(1, 11), (0, 0)], True),
    ("size runs into zeros", 8192, [(1, 11), (0, 4096 - 16 - 32)], True),
    ("object size wraps", 8192, [(1, 11), (2, 2**64 - 1)], True),
])
def test_heapcheck_emulates_hdf5_heap_walk(tmp_path, name, size, objects, spins):
    from pscalib.store.heapcheck import check_file, check_head
    data = bytes(2048) + _collection(size, [o for o in objects if o[1] < 2**63])
    if objects[-1][1] >= 2**63:  # header only: the wrapped size must not allocate anything
        data += struct.pack("<HHIQ", objects[-1][0], 1, 0, objects[-1][1])
    p = tmp_path / "heap.bin"
    p.write_bytes(data.ljust(2048 + size + 4096, b"\x00"))
    for check in (check_head, check_file):
        if spins:
            with pytest.raises(E.CorruptStoreError):
                check(p)
        else:
            check(p)
