"""What a timeline shows, as plain data (no matplotlib): ranges as bars in lanes.

Shared by the matplotlib timeline (:mod:`.timeline`), the inline SVG of notebooks and the
web GUI (:mod:`.svg`), so all three show the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..timestamps import OPEN_END, now_ns

__all__ = ["VersionMark", "RangeBar", "timeline_rows", "time_span", "state_of", "tags_of"]

#: Shortest time axis of a timeline (ns): a single range still gets a readable axis.
MIN_SPAN = 30 * 86400 * 10**9


@dataclass
class VersionMark:
    """One version of a range as the timeline labels it."""
    version: int
    default: bool
    state: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class RangeBar:
    """One validity range: ``[begin, end)`` in ns, ``end`` None when open."""
    ctype: str
    name: str
    begin: int
    end: Optional[int]
    lane: int = 0
    versions: List[VersionMark] = field(default_factory=list)

    @property
    def default(self) -> Optional[VersionMark]:
        return next((v for v in self.versions if v.default), None)

    def label(self) -> str:
        """``'v1 [v2] v3'``: the default in brackets, a state after a colon."""
        out = []
        for v in self.versions:
            s = f"v{v.version}" + (f":{v.state}" if v.state and v.state != "valid" else "")
            out.append(f"[{s}]" if v.default else s)
        return " ".join(out)


def state_of(ver: Any) -> Optional[str]:
    """A version's state where the library has version states (else None)."""
    fn = getattr(ver, "state", None)
    if not callable(fn):
        return None
    st = fn()
    return getattr(st, "value", st) if st is not None else None


def tags_of(ver: Any) -> List[str]:
    """A version's tags where the library has tags (else [])."""
    fn = getattr(ver, "tags", None)
    return sorted(str(t) for t in fn()) if callable(fn) else []


def _lanes(bars: List[RangeBar]) -> None:
    """Put overlapping ranges of one ctype into separate lanes (greedy by begin)."""
    lane_end: List[int] = []
    for bar in sorted(bars, key=lambda b: (b.begin, b.end or OPEN_END)):
        end = OPEN_END if bar.end is None else bar.end
        for i, e in enumerate(lane_end):
            if e <= bar.begin:
                bar.lane, lane_end[i] = i, end
                break
        else:
            bar.lane = len(lane_end)
            lane_end.append(end)


def time_span(rows: Dict[str, List["RangeBar"]]) -> Tuple[int, int]:
    """``(t0, t1)`` ns of the time axis: earliest begin to latest finite time, at least
    :data:`MIN_SPAN`, plus an eighth on the right where open ranges end in an arrow."""
    bars = [b for bs in rows.values() for b in bs]
    times = [b.begin for b in bars] + [b.end for b in bars if b.end is not None]
    t0 = min(times) if times else now_ns()
    t1 = max(times + [t0 + MIN_SPAN])
    return t0, t1 + (t1 - t0) // 8


def timeline_rows(store: Any, ctypes: Optional[Iterable[str]] = None,
                  with_versions: bool = True) -> Dict[str, List[RangeBar]]:
    """Every range of every (or the given) ctype of ``store`` as :class:`RangeBar` s.

    Parameters
    ----------
    store
        An open :class:`pscalib.DCStore`.
    ctypes
        Restrict to these ctypes (unknown names raise CtypeNotFoundError).
    with_versions
        Also collect each range's versions (number, default, state, tags; no payload
        metadata is read, so this stays fast for thousands of ranges).
    """
    names = list(ctypes) if ctypes else store.ctypes()
    be = store.backend
    out: Dict[str, List[RangeBar]] = {}
    for ct in names:
        ctobj = store.ctypeobj(ct)  # raises CtypeNotFoundError for unknown names
        bars = []
        vmap = be.versions_by_range(ct) if with_versions else {}
        ranges = ctobj.ranges()
        # version objects only where the library has states or tags to show (reading them
        # per version would cost more than the whole listing)
        probe = ranges[0].versions()[:1] if ranges and with_versions else []
        marks = bool(probe) and (callable(getattr(probe[0], "state", None))
                                 or callable(getattr(probe[0], "tags", None)))
        # a local store's version handles are (store, key) pairs: made from vmap without
        # listing every range's group a second time
        make = type(probe[0]) if marks and getattr(probe[0], "_store", None) is store \
            else None
        for r in ranges:
            bar = RangeBar(ct, r.range(), r.tsbegin(), None if r.is_open() else r.tsend())
            if with_versions:
                vdef = r.versdef()
                b, e = r.tsbegin(), r.tsend()
                if make is not None:
                    objs = {n: make(store, (ct, b, e, n)) for n in vmap.get((b, e), [])}
                else:
                    objs = {v.version(): v for v in r.versions()} if marks else {}
                for n in vmap.get((b, e), []):
                    v = objs.get(n)
                    bar.versions.append(VersionMark(n, n == vdef, state_of(v), tags_of(v)))
            bars.append(bar)
        _lanes(bars)
        out[ct] = bars
    return out
