"""Hostile input, arguments: unknown objects, modes, payloads, dictpars, version numbers.

Every call must raise a specific pscalib error and leave every file byte-identical
(helpers in tests/hostile.py; real files and real processes only).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from conftest import stable_id

from pscalib import DCStore, errors as E

from hostile import INSIDE, T0, T1, check_rejected, on_store
from hostile import store_fixture, template_fixture  # noqa: F401 (fixtures)


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
                         ids=lambda v: stable_id(v, 30))
def test_bad_store_path_type(tmp_path, bad):
    check_rejected(tmp_path, lambda: DCStore(bad, mode="a"), E.InvalidInputError)


@pytest.mark.parametrize("mode", ["w", "w+", "r+", "", None, 1, "rw"])
def test_bad_mode(store, mode):
    check_rejected(store.parent, lambda: DCStore(store, mode=mode), E.InvalidInputError)


@pytest.mark.parametrize("timeout", [-1, float("nan"), "abc", True, [1]],
                         ids=stable_id)
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
                         ids=stable_id)
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
    np.zeros(3, np.clongdouble),
    [1.0, 2.0], (1, 2), {"a": 1}, None, memoryview(b"abc"), b"\xff\xfe not utf-8",
    b"abc\x00def", "text with NUL \x00 inside", "lone surrogate \udcff",
    np.ma.array([1.0, 2.0], mask=[True, False]), object(),
]


@pytest.mark.parametrize("bad", BAD_PAYLOADS, ids=lambda v: stable_id(v, 30))
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


@pytest.mark.parametrize("bad", BAD_PARS, ids=lambda v: stable_id(v, 30))
def test_bad_dictpars_value(store, bad):
    on_store(store, lambda cs: cs.set_par("k", bad), E.InvalidParameterError)
    on_store(store, lambda cs: cs.set_pars({"good": 1, "k": bad}), E.InvalidParameterError)
    on_store(store, lambda cs: cs["pedestals"].ranges()[0].set_par("k", bad),
             E.InvalidParameterError)
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0,
                                                dictpars={"k": bad}), E.InvalidParameterError)


@pytest.mark.parametrize("bad", [[("a", 1)], "ab", 5, ("a", 1)], ids=stable_id)
def test_dictpars_not_a_dict(store, bad):
    on_store(store, lambda cs: cs.set_pars(bad), E.InvalidParameterError)
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0, dictpars=bad),
             E.InvalidInputError)

# ----------------------------------------------------------------------------- versions
@pytest.mark.parametrize("bad", [0, -1, -2**70, 1.5, "x", "v", "v-001", "", True, 2**70,
                                 10**9, None.__class__, [1]], ids=stable_id)
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
