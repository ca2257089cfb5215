"""The time zone times are *shown* in (``dcs --tz``, ``PSCALIB_TZ``); files always hold UTC.

Only output for people changes: range boundaries, history records and alias files keep their
UTC integers and UTC text, so the same command gives the same files everywhere.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Optional

from .config import env_value
from .errors import InvalidInputError
from .timestamps import format_ns

__all__ = ["parse_tz", "set_display_tz", "display_tz", "show_ns"]

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_chosen: Optional[str] = None  # set by 'dcs --tz'; None: PSCALIB_TZ (else UTC)
_cache: dict = {}


def parse_tz(name: str, what: str = "time zone") -> _dt.tzinfo:
    """``'UTC'``, ``'+02:00'`` or an IANA name (``'Europe/Berlin'``) -> tzinfo.

    ``what`` names the setting in the error (e.g. ``'PSCALIB_TZ'``).
    """
    text = str(name).strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return _dt.timezone.utc
    m = _OFFSET_RE.match(text)
    if m:
        hh, mm = int(m.group(2)), int(m.group(3))
        if hh > 23 or mm > 59:
            raise InvalidInputError(f"{what} {text!r}: offset out of range")
        sign = -1 if m.group(1) == "-" else 1
        return _dt.timezone(sign * _dt.timedelta(hours=hh, minutes=mm))
    try:
        import zoneinfo
        return zoneinfo.ZoneInfo(text)
    except (ValueError, OSError, ImportError, LookupError):
        # ZoneInfoNotFoundError is a KeyError; '../x' or '' raise ValueError
        raise InvalidInputError(
            f"{what} {text!r} is not a known time zone; use an IANA name such as "
            f"'Europe/Berlin' or 'America/Los_Angeles', 'UTC', or an offset like '+02:00'"
        ) from None


def set_display_tz(name: Optional[str]) -> None:
    """Show times in ``name`` from now on (None: back to ``PSCALIB_TZ``, else UTC)."""
    if name is not None:
        parse_tz(name, "--tz")  # fail now, not at the first time printed
    global _chosen
    _chosen = name


def display_tz() -> Optional[_dt.tzinfo]:
    """The display time zone (None means UTC)."""
    name, what = (_chosen, "--tz") if _chosen is not None else (
        (env_value("PSCALIB_TZ") or "").strip(), "PSCALIB_TZ")
    if not name:
        return None
    if name not in _cache:
        _cache[name] = parse_tz(name, what)
    return _cache[name]


def show_ns(ns: int) -> str:
    """:func:`~pscalib.timestamps.format_ns` in the display time zone."""
    return format_ns(ns, display_tz())
