"""Time stamps: every form users have, one internal representation.

Internally a time stamp is an ``int`` of **nanoseconds since 1970-01-01T00:00:00 UTC**
(int64 range, i.e. 1677-09-21 to 2262-04-11). Files store these integers, so a range
boundary never shifts when a file is read on a machine in another time zone.

Accepted inputs (:func:`to_ns`):

- ``int`` / ``float`` (and numpy scalars): Unix seconds. Floats are converted through their
  shortest decimal representation, so ``1714564800.123456`` is exactly ...123456000 ns.
- ``(sec, nsec)`` pair of integers, ``0 <= nsec < 1e9``.
- ``numpy.datetime64`` of any unit (taken as UTC, as numpy does; sub-ns units are
  rounded to the nearest ns).
- ``datetime.datetime``: timezone-aware ones are converted; **naive ones are taken as UTC**.
- ``datetime.date``: midnight UTC of that day.
- ISO 8601 strings ``YYYY-MM-DD[THH[:MM[:SS[.fffffffff]]]][Z|+HH:MM|-HH:MM]`` (space instead
  of ``T`` allowed, up to 9 fraction digits; date-only means midnight); **no offset means
  UTC**. The compact form of range names, ``YYYYMMDDTHH[MM[SS[.f]]][Z]``
  (``20240501T000000Z``), is read too. Strings holding a plain number (``"1714564800"``,
  ``"1714564800.5"``) are Unix seconds.
- psana event-time objects (:mod:`pscalib.events`): anything with ``.time()`` returning
  ``(sec, nsec)``, or with ``.seconds()`` and ``.nanoseconds()``.

Naive inputs are UTC, never the local zone of the machine: the same command gives the same
range boundaries everywhere. :func:`format_ns` writes ``YYYY-MM-DDTHH:MM:SS+HH:MM`` (a
fraction is added only when the time has one, so nothing is lost).
"""
from __future__ import annotations

import datetime as _dt
import math
import numbers
import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Optional, Union

import numpy as np

from .errors import InvalidTimeError
from .events import event_time

__all__ = ["to_ns", "to_ns_or_none", "format_ns", "compact_ns", "now_ns", "ns_to_seconds",
           "OPEN_END", "TS_MIN", "TS_MAX", "TimeLike"]

#: Encoding of an open (valid forever) range end in files and in memory.
OPEN_END: int = 2**63 - 1
#: Smallest and largest time stamps accepted (OPEN_END is reserved).
TS_MIN: int = -(2**63) + 1
TS_MAX: int = 2**63 - 2

NS_PER_S = 1_000_000_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

TimeLike = Union[int, float, str, tuple, _dt.datetime, _dt.date, np.datetime64, np.number]

_ISO_RE = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?)?"
    r"\s*(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$", re.ASCII)
# the compact form of range names: 20240501T120000Z, 20240501T120000.5Z, 20240501T12Z
_COMPACT_RE = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})T(?P<h>\d{2})(?:(?P<mi>\d{2})(?:(?P<s>\d{2})"
    r"(?:[.,](?P<f>\d{1,9}))?)?)?(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$", re.ASCII)
_NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$", re.ASCII)


def _check_range(ns: int, original: Any) -> int:
    if not TS_MIN <= ns <= TS_MAX:
        raise InvalidTimeError(
            f"time {original!r} is outside the supported range "
            f"{format_ns(TS_MIN)} .. {format_ns(TS_MAX)} (int64 nanoseconds since 1970)")
    return ns


def _seconds_decimal_to_ns(sec: Decimal, original: Any) -> int:
    if sec.is_finite() and sec.adjusted() > 30:  # '1e9999999' would overflow Decimal
        raise InvalidTimeError(f"time {original!r} is far outside the supported range")
    ns = (sec * NS_PER_S).to_integral_value()  # round half even on a sub-ns remainder
    if abs(ns) > 2**64:
        raise InvalidTimeError(f"time {original!r} is far outside the supported range")
    return _check_range(int(ns), original)


def _datetime_to_ns(value: _dt.datetime, original: Any) -> int:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        value = value.replace(tzinfo=_dt.timezone.utc)  # naive means UTC (documented)
    delta = value - _EPOCH
    ns = (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000
    return _check_range(ns, original)


# ns per unit of numpy datetime64 (as a fraction num/den for sub-ns units)
_DT64_UNIT = {"W": (7 * 86400 * NS_PER_S, 1), "D": (86400 * NS_PER_S, 1),
              "h": (3600 * NS_PER_S, 1), "m": (60 * NS_PER_S, 1), "s": (NS_PER_S, 1),
              "ms": (10**6, 1), "us": (1000, 1), "ns": (1, 1), "ps": (1, 10**3),
              "fs": (1, 10**6), "as": (1, 10**9)}


def _datetime64_to_ns(value: np.datetime64) -> int:
    # Exact integer arithmetic: numpy's astype('datetime64[ns]') overflows silently
    # (e.g. year 3000 in days becomes a negative ns count).
    unit, count = np.datetime_data(value.dtype)
    if unit in ("Y", "M"):  # calendar units: days never overflow int64
        value = value.astype("datetime64[D]")
        unit, count = "D", 1
    if unit not in _DT64_UNIT:
        raise InvalidTimeError(f"time {value!r} has unsupported datetime64 unit {unit!r}")
    num, den = _DT64_UNIT[unit]
    ticks = int(value.astype(np.int64)) * count * num
    return int((Decimal(ticks) / den).to_integral_value())  # round half even below 1 ns


def _parse_iso(text: str, original: Any) -> int:
    m = _ISO_RE.match(text) or _COMPACT_RE.match(text)
    if not m:
        raise InvalidTimeError(
            f"cannot read time {original!r}: use ISO 8601 such as '2024-05-01', "
            f"'2024-05-01T12', '2024-05-01T12:00:00.5Z', '2024-05-01T12:00:00-07:00', the "
            f"compact form '20240501T120000Z', or Unix seconds")
    g = m.groupdict()
    try:
        base = _dt.datetime(int(g["y"]), int(g["mo"]), int(g["d"]), int(g["h"] or 0),
                            int(g["mi"] or 0), int(g["s"] or 0))
    except ValueError as exc:
        raise InvalidTimeError(f"cannot read time {original!r}: {exc}") from None
    offset_s = 0
    tz = g["tz"]
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        hh, mm = int(digits[:2]), int(digits[2:])
        if hh > 23 or mm > 59:
            raise InvalidTimeError(f"cannot read time {original!r}: bad UTC offset {tz!r}")
        offset_s = sign * (hh * 3600 + mm * 60)
    frac_ns = int((g["f"] or "").ljust(9, "0")) if g["f"] else 0
    delta = base - _EPOCH.replace(tzinfo=None)
    secs = delta.days * 86400 + delta.seconds - offset_s
    return _check_range(secs * NS_PER_S + frac_ns, original)


def to_ns(value: TimeLike) -> int:
    """Convert any supported time form to int nanoseconds since the epoch (UTC).

    Parameters
    ----------
    value
        Unix seconds (int/float/numpy number), ``(sec, nsec)``, ``numpy.datetime64``,
        ``datetime``/``date`` (naive = UTC) or an ISO 8601 / numeric string.

    Returns
    -------
    int
        Nanoseconds since 1970-01-01T00:00:00Z.

    Raises
    ------
    InvalidTimeError
        For None, NaN, infinities, booleans, unsupported types, malformed strings and
        times outside 1677-09-21 .. 2262-04-11.
    """
    original = value
    if value is None:
        raise InvalidTimeError("time is missing (None): give Unix seconds or an ISO 8601 string")
    if isinstance(value, (bool, np.bool_)):
        raise InvalidTimeError(f"time {value!r} is a boolean, not a time stamp")
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise InvalidTimeError("time is NaT (not a time)")
        return _check_range(_datetime64_to_ns(value), original)
    if isinstance(value, _dt.datetime):
        return _datetime_to_ns(value, original)
    if isinstance(value, _dt.date):
        return _datetime_to_ns(_dt.datetime(value.year, value.month, value.day), original)
    if isinstance(value, numbers.Integral):
        sec = int(value)
        if abs(sec) > 2**40:
            raise InvalidTimeError(f"time {value!r} s is outside the supported range")
        return _check_range(sec * NS_PER_S, original)
    if isinstance(value, numbers.Real):
        try:
            fval = float(value)
        except (OverflowError, ValueError):  # e.g. Fraction(10**400)
            raise InvalidTimeError(f"time {value!r} is far outside the supported range") from None
        if math.isnan(fval) or math.isinf(fval):
            raise InvalidTimeError(f"time {value!r} is not a finite number of seconds")
        return _seconds_decimal_to_ns(Decimal(repr(fval)), original)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        sec, nsec = value
        if not all(isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))
                   for x in (sec, nsec)):
            raise InvalidTimeError(f"time pair {value!r} must be two integers (sec, nsec)")
        if not 0 <= int(nsec) < NS_PER_S:
            raise InvalidTimeError(f"time pair {value!r}: nsec must be in 0..999999999")
        if abs(int(sec)) > 2**40:
            raise InvalidTimeError(f"time pair {value!r} is outside the supported range")
        return _check_range(int(sec) * NS_PER_S + int(nsec), original)
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidTimeError(f"time {original!r} is not ASCII text") from None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidTimeError("time is an empty string")
        if _NUM_RE.match(text):
            try:
                return _seconds_decimal_to_ns(Decimal(text), original)
            except InvalidOperation:  # pragma: no cover - regex guards this
                raise InvalidTimeError(f"cannot read time {original!r}") from None
        return _parse_iso(text, original)
    pair = event_time(value)  # a psana event-time object
    if pair is not None:
        return to_ns(pair)
    raise InvalidTimeError(
        f"time {original!r} has unsupported type {type(original).__name__}: use Unix seconds, "
        f"(sec, nsec), numpy.datetime64, datetime, an ISO 8601 string or an event-time "
        f"object (with .time() -> (sec, nsec), or .seconds() and .nanoseconds())")


def to_ns_or_none(value: Optional[TimeLike]) -> Optional[int]:
    """Like :func:`to_ns` but ``None`` (and the words 'end', 'open', 'inf') give ``None``."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("end", "open", "inf", "infinity",
                                                             "forever", "none", ""):
        return None
    return to_ns(value)


def now_ns() -> int:
    """Current time as int nanoseconds since the epoch."""
    return time.time_ns()


def ns_to_seconds(ns: int) -> float:
    """Nanoseconds to float Unix seconds (lossy beyond ~0.2 µs for current dates)."""
    return ns / NS_PER_S


def _split(ns: int):
    sec, frac = divmod(int(ns), NS_PER_S)
    return _EPOCH + _dt.timedelta(seconds=sec), frac


def _frac_text(frac: int) -> str:
    return ("." + f"{frac:09d}".rstrip("0")) if frac else ""


def format_ns(ns: int, tz: Optional[_dt.tzinfo] = None) -> str:
    """Format ns as ``YYYY-MM-DDTHH:MM:SS[.f]+HH:MM`` (UTC unless ``tz`` is given).

    ``OPEN_END`` formats as ``'end'``.
    """
    if ns == OPEN_END:
        return "end"
    dtm, frac = _split(ns)
    if tz is not None:
        dtm = dtm.astimezone(tz)
    off = dtm.utcoffset() or _dt.timedelta(0)
    total = int(off.total_seconds())
    sign = "-" if total < 0 else "+"
    hh, mm = divmod(abs(total) // 60, 60)
    return f"{dtm:%Y-%m-%dT%H:%M:%S}{_frac_text(frac)}{sign}{hh:02d}:{mm:02d}"


def compact_ns(ns: int) -> str:
    """Compact UTC form used in HDF5 group names: ``20240501T120000Z``, ``...00.5Z``, ``end``."""
    if ns == OPEN_END:
        return "end"
    dtm, frac = _split(ns)
    return f"{dtm:%Y%m%dT%H%M%S}{_frac_text(frac)}Z"
