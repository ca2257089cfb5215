"""Hostile input, times: every time argument of the API.

Every call must raise a specific pscalib error and leave every file byte-identical
(helpers in tests/hostile.py; real files and real processes only).
"""
from __future__ import annotations

import datetime as dt
import decimal
import fractions

import numpy as np
import pytest
from conftest import stable_id

from pscalib import errors as E
from pscalib.timestamps import to_ns, to_ns_or_none

from hostile import INSIDE, T0, T1, on_store
from hostile import store_fixture, template_fixture  # noqa: F401 (fixtures)


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


@pytest.mark.parametrize("bad", BAD_TIMES, ids=lambda v: stable_id(v, 40))
def test_to_ns_rejects(bad):
    with pytest.raises(E.InvalidTimeError):
        to_ns(bad)


@pytest.mark.parametrize("bad", BAD_TIMES, ids=lambda v: stable_id(v, 40))
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
