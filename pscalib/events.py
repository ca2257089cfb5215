"""psana-style event-time objects as time stamps.

psana1's ``EventId`` (``evt.get(psana.EventId)``) has ``.time()`` returning ``(sec, nsec)``;
other event-time objects have ``.seconds()`` and ``.nanoseconds()``. Anything shaped like
either is accepted wherever pscalib takes a time (:func:`pscalib.timestamps.to_ns`), so
``cs.get('pedestals', evt_id)`` works without converting first.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from .errors import InvalidTimeError

__all__ = ["event_time"]


def event_time(obj: Any) -> Optional[Tuple[Any, Any]]:
    """``(sec, nsec)`` of an event-time object, or None if ``obj`` is not one.

    :func:`~pscalib.timestamps.to_ns` validates the numbers like any ``(sec, nsec)`` pair.

    Raises
    ------
    InvalidTimeError
        ``.time()`` returned something that is not a pair.
    """
    if isinstance(obj, (str, bytes, tuple, list, dict)):
        return None
    tm = getattr(obj, "time", None)
    if callable(tm):
        pair = tm()
        if isinstance(pair, (tuple, list)) and len(pair) == 2:
            return tuple(pair)
        raise InvalidTimeError(f"event-time object {type(obj).__name__}: .time() returned "
                               f"{pair!r}, not a (sec, nsec) pair")
    sec, nsec = getattr(obj, "seconds", None), getattr(obj, "nanoseconds", None)
    if callable(sec) and callable(nsec):
        return (sec(), nsec())
    return None
