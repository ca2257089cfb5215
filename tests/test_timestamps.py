"""Every time form pscalib accepts, its precision, its errors and time-zone independence."""
import datetime as dt
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pscalib.errors import InvalidTimeError
from pscalib.timestamps import (OPEN_END, TS_MAX, TS_MIN, compact_ns, format_ns, to_ns,
                                to_ns_or_none)

T0 = 1714564800  # 2024-05-01T12:00:00Z
T0_NS = T0 * 10**9


@pytest.mark.parametrize("value", [
    T0, np.int64(T0), np.int32(T0), np.uint32(T0), float(T0), np.float64(T0),
    (T0, 0), [T0, 0], (np.int64(T0), np.int32(0)),
    np.datetime64("2024-05-01T12:00:00"), np.datetime64("2024-05-01T12:00", "m"),
    np.datetime64("2024-05-01T12", "h"), np.datetime64(T0 * 1000, "ms"),
    np.datetime64(T0 * 10**6, "us"), np.datetime64(T0_NS, "ns"),
    dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.datetime(2024, 5, 1, 4, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7, minutes=-30))),
    dt.datetime(2024, 5, 1, 12),  # naive = UTC
    "2024-05-01T12:00:00", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00z",
    "2024-05-01T12:00Z", "2024-05-01 12:00:00", "2024-05-01T14:00:00+02:00",
    "2024-05-01T14:00:00+0200", "2024-05-01T05:00:00-07:00", "2024-05-01T17:30:00+05:30",
    "2024-05-01T12:00:00.000Z", "2024-05-01T12:00:00,0", "  2024-05-01T12:00:00Z  ",
    b"2024-05-01T12:00:00Z", "1714564800", "1714564800.0", "+1714564800", "1.7145648e9",
    "2024-05-01T12", "2024-05-01 12Z", "20240501T120000Z", "20240501T120000", "20240501T12Z",
    "20240501T1200Z", "20240501T140000+02:00", "20240501T120000.000Z",
])
def test_every_form_gives_the_same_instant(value):
    assert to_ns(value) == T0_NS


@pytest.mark.parametrize("value, expected", [
    (dt.date(2024, 5, 1), (T0 - 12 * 3600) * 10**9),
    ("2024-05-01", (T0 - 12 * 3600) * 10**9),
    (np.datetime64("2024-05-01"), (T0 - 12 * 3600) * 10**9),
    (np.datetime64("2024-05", "M"), 1714521600 * 10**9),
    (np.datetime64("2024", "Y"), 1704067200 * 10**9),
    (np.datetime64(1, "W"), 7 * 86400 * 10**9),
    (np.datetime64(3, "10ms"), 30_000_000),
    (np.datetime64(2_000, "ps"), 2),
    (0, 0), (-1, -10**9), ("-1.5", -1_500_000_000),
    ("1969-12-31T23:59:59.999999999Z", -1),
    ("1970-01-01T00:00:00.000000001+00:00", 1),
])
def test_forms_with_known_values(value, expected):
    assert to_ns(value) == expected


def test_nanoseconds_are_kept():
    assert to_ns("2024-05-01T12:00:00.123456789Z") == T0_NS + 123456789
    assert to_ns("2024-05-01T12:00:00.1Z") == T0_NS + 100_000_000
    assert to_ns((T0, 999_999_999)) == T0_NS + 999_999_999
    assert to_ns(np.datetime64("2024-05-01T12:00:00.000000007")) == T0_NS + 7
    assert to_ns("1714564800.000000001") == T0_NS + 1
    # datetime keeps microseconds
    assert to_ns(dt.datetime(2024, 5, 1, 12, 0, 0, 654321, tzinfo=dt.timezone.utc)) == \
        T0_NS + 654_321_000


def test_float_seconds_use_the_shortest_representation():
    # binary 1714564800.123456 is not exact; its shortest repr is, and that is what is kept
    assert to_ns(1714564800.123456) == T0_NS + 123_456_000
    assert to_ns(0.1) == 100_000_000
    assert to_ns(1e-9) == 1
    assert to_ns(np.float64(1714564800.5)) == T0_NS + 500_000_000


@pytest.mark.parametrize("value", [
    None, float("nan"), float("inf"), -float("inf"), np.nan, True, False, np.bool_(True),
    np.datetime64("NaT"), "", "   ", "yesterday", "2024-13-01", "2024-02-30T00:00:00",
    "2024-05-01T25:00:00", "2024-05-01T12:00:00+25:00", "2024-05-01T12:00:00.1234567891Z",
    "2024-05-01T1", "2024-05-01T12:0", "20240501T1200000Z", "2024050T120000Z",
    "24-05-01", "2024/05/01", "1e400", "nan", "inf", b"\xff\xfe",
    (1, 10**9), (1, -1), (1.5, 0), (True, 0), (1, 2, 3), object(), {"t": 1}, 1j,
    10**12, -(10**12), "2263-01-01T00:00:00Z", "1677-09-20T00:00:00Z",
    np.datetime64("3000-01-01"), np.datetime64("1500-01-01", "D"),
    dt.datetime(2300, 1, 1), dt.date(1600, 1, 1),
    "2262-04-11T23:47:16.854775807Z",  # OPEN_END is reserved
])
def test_bad_inputs_raise_invalid_time(value):
    with pytest.raises(InvalidTimeError):
        to_ns(value)


def test_invalid_time_is_a_value_error_with_a_helpful_message():
    with pytest.raises(ValueError, match="ISO 8601"):
        to_ns("next tuesday")
    with pytest.raises(InvalidTimeError, match="outside the supported range"):
        to_ns("2300-01-01")


def test_range_limits():
    assert to_ns("2262-04-11T23:47:16.854775806Z") == TS_MAX
    assert to_ns("1677-09-21T00:12:43.145224193Z") == TS_MIN
    assert TS_MAX < OPEN_END


@pytest.mark.parametrize("word", [None, "end", "open", "inf", "Infinity", "forever", "none", " "])
def test_open_end_words(word):
    assert to_ns_or_none(word) is None


def test_to_ns_or_none_passes_times_through():
    assert to_ns_or_none("2024-05-01T12:00:00Z") == T0_NS


@pytest.mark.parametrize("ns", [0, 1, -1, T0_NS, T0_NS + 123456789, T0_NS + 5 * 10**8,
                                TS_MIN, TS_MAX, -10**18 + 7])
def test_format_ns_round_trips(ns):
    text = format_ns(ns)
    assert to_ns(text) == ns
    tz = dt.timezone(dt.timedelta(hours=-9, minutes=-30))
    if TS_MIN + 10**14 < ns < TS_MAX - 10**14:
        assert to_ns(format_ns(ns, tz)) == ns


def test_format_ns_form():
    assert format_ns(T0_NS) == "2024-05-01T12:00:00+00:00"
    assert format_ns(T0_NS + 500_000_000) == "2024-05-01T12:00:00.5+00:00"
    assert format_ns(T0_NS + 1) == "2024-05-01T12:00:00.000000001+00:00"
    assert format_ns(T0_NS, dt.timezone(dt.timedelta(hours=5, minutes=30))) == \
        "2024-05-01T17:30:00+05:30"
    assert format_ns(T0_NS, dt.timezone(dt.timedelta(hours=-7))) == "2024-05-01T05:00:00-07:00"
    assert format_ns(OPEN_END) == "end"
    assert compact_ns(T0_NS) == "20240501T120000Z"
    assert compact_ns(T0_NS + 250_000_000) == "20240501T120000.25Z"
    assert compact_ns(OPEN_END) == "end"


_TZ_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pscalib import DCStore
    from pscalib.timestamps import to_ns, format_ns
    time.tzset()
    cs = DCStore(sys.argv[1])
    rngs = [(r.tsbegin(), r.tsend(), r.begin(), r.end()) for r in cs["pedestals"].ranges()]
    got = [float(cs.get("pedestals", t)[0]) for t in
           ("2024-05-01T00:00:00", "2024-05-31T23:59:59", "2024-06-01 00:00:00", 1717200000)]
    print(json.dumps({"ranges": rngs, "got": got, "naive": to_ns("2024-05-01T00:00:00"),
                      "local": time.strftime("%Z"), "tscfile": format_ns(cs.tscfile())}))
""")


def test_range_boundaries_do_not_shift_with_time_zone(tmp_path):
    import json
    from pscalib import DCStore
    path = tmp_path / "cspad-0001.h5"
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.array([1.0]), "2024-05-01", "2024-06-01")
        cs.add_constants("pedestals", np.array([2.0]), "2024-06-01")
    outs = {}
    for tz in ("UTC", "Asia/Tokyo", "America/Los_Angeles"):
        env = dict(os.environ, TZ=tz)
        r = subprocess.run([sys.executable, "-c", _TZ_SCRIPT, str(path)], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        outs[tz] = json.loads(r.stdout)
    assert outs["Asia/Tokyo"]["local"] != outs["America/Los_Angeles"]["local"]  # TZ took effect
    for tz in ("Asia/Tokyo", "America/Los_Angeles"):
        for k in ("ranges", "got", "naive", "tscfile"):
            assert outs[tz][k] == outs["UTC"][k], (tz, k)
    assert outs["UTC"]["got"] == [1.0, 1.0, 2.0, 2.0]
    assert outs["UTC"]["ranges"][0][2] == "2024-05-01T00:00:00+00:00"
