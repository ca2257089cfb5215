"""The selection rule, precomputed for fast lookups.

Rule: among the ranges with ``tsbegin <= t < tsend`` (``tsend <= t`` inclusive for legacy
files), the one with the latest ``tsbegin`` wins; for equal begins, the narrower
(earlier-ending) range wins.

:class:`RangeIndex` sweeps the ranges once (O(n log n)) into a piecewise-constant map
``t -> winning range``; each lookup is then one binary search, whatever the number of
ranges or how they overlap.

:class:`SelectionCache` keeps, per calibration type of one open store, the range table
and its index (read once per open file, dropped when a transaction changes the type) and
answers the lookups of :class:`~pscalib.store.dcstore.DCStore`.
"""
from __future__ import annotations

import heapq
from bisect import bisect_right
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import NoValidConstantsError, RangeNotFoundError
from ..timestamps import OPEN_END, format_ns
from .backend import RangeTable
from .layout import range_name
from .stateops import effective_version

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["RangeIndex", "LazyIndex", "select_bruteforce", "select_vectorized",
           "SelectionCache"]


class RangeIndex:
    """Piecewise map from time to the index of the winning range.

    Parameters
    ----------
    begins, ends
        int ns per range (``ends`` may hold :data:`OPEN_END`).
    end_inclusive
        True for the legacy rule ``tsbegin <= t <= tsend``.
    """

    __slots__ = ("begins", "ends", "_points", "_winners")

    def __init__(self, begins: Sequence[int], ends: Sequence[int], end_inclusive: bool = False):
        self.begins = [int(b) for b in begins]
        # Half-open internally: an inclusive end e covers up to e, i.e. [b, e + 1).
        self.ends = [int(e) if (int(e) == OPEN_END or not end_inclusive) else int(e) + 1
                     for e in ends]
        order = sorted(range(len(self.begins)), key=lambda i: self.begins[i])
        points = sorted(set(self.begins) | {e for e in self.ends if e != OPEN_END})
        heap: list = []
        winners: List[int] = []
        starts: List[int] = []
        k = 0
        for p in points:
            while k < len(order) and self.begins[order[k]] <= p:
                i = order[k]
                # priority: latest begin, then earliest end, then lowest index (stable)
                heapq.heappush(heap, (-self.begins[i], self.ends[i], i))
                k += 1
            while heap and heap[0][1] <= p:
                heapq.heappop(heap)
            w = heap[0][2] if heap else -1
            if not winners or winners[-1] != w:
                starts.append(p)
                winners.append(w)
        self._points = starts
        self._winners = winners

    def __len__(self) -> int:
        return len(self.begins)

    def find(self, t: int) -> Optional[int]:
        """Index of the range valid at ``t``, or None."""
        j = bisect_right(self._points, t) - 1
        if j < 0:
            return None
        w = self._winners[j]
        return None if w < 0 else w


def select_bruteforce(begins: Sequence[int], ends: Sequence[int], t: int,
                      end_inclusive: bool = False) -> Optional[int]:
    """Reference implementation of the rule (used by tests)."""
    best = None
    for i, (b, e) in enumerate(zip(begins, ends)):
        covers = b <= t and (e == OPEN_END or (t <= e if end_inclusive else t < e))
        if covers and (best is None or (b, -e) > (begins[best], -ends[best])):
            best = i
    return best


def select_vectorized(begins: np.ndarray, ends: np.ndarray, t: int,
                      end_inclusive: bool = False) -> Optional[int]:
    """The rule in one numpy pass (O(n), no index to build): the first lookups of an open
    store use it, so opening a store of 10,000 ranges for one ``get`` does not pay the
    O(n log n) Python sweep of :class:`RangeIndex`."""
    cov = (begins <= t) & ((t <= ends) if end_inclusive else (t < ends))
    idx = np.nonzero(cov)[0]
    if not len(idx):
        return None
    b = begins[idx]
    idx = idx[b == b.max()]       # latest begin
    e = ends[idx]
    return int(idx[e == e.min()][0])  # then earliest end, then lowest row (stable)


class LazyIndex:
    """The selection of one range table: vectorised for the first ``EAGER`` lookups,
    then a :class:`RangeIndex` (built once) for the rest. Rows with ``live`` False (no
    valid version) are never selected."""

    __slots__ = ("_b", "_e", "_live", "_incl", "_n", "_idx", "_rows")
    #: Lookups answered by :func:`select_vectorized` before the sweep index is built.
    EAGER = 8

    def __init__(self, tab: RangeTable, live: np.ndarray, end_inclusive: bool):
        self._live = live
        self._b = tab.tsbegin[live] if not live.all() else tab.tsbegin
        self._e = tab.tsend[live] if not live.all() else tab.tsend
        self._incl = end_inclusive
        self._n = 0
        self._idx: Optional["RangeIndex | _LiveIndex"] = None
        if not live.all():
            self._rows = np.nonzero(live)[0]

    def find(self, t: int) -> Optional[int]:
        if self._idx is None and self._n < self.EAGER:
            self._n += 1
            i = select_vectorized(self._b, self._e, t, self._incl)
            if i is None or self._live.all():
                return i
            return int(self._rows[i])
        if self._idx is None:
            self._idx = RangeIndex(self._b.tolist(), self._e.tolist(), self._incl)
        i = self._idx.find(t)
        if i is None or self._live.all():
            return i
        return int(self._rows[i])


class _LiveIndex:
    """RangeIndex over the subset of ranges that have versions (maps back to table rows)."""

    __slots__ = ("_rows", "_idx")

    def __init__(self, tab: RangeTable, live: np.ndarray, end_inclusive: bool):
        self._rows = np.nonzero(live)[0]
        self._idx = RangeIndex(tab.tsbegin[live].tolist(), tab.tsend[live].tolist(),
                               end_inclusive)

    def find(self, t: int) -> Optional[int]:
        i = self._idx.find(t)
        return None if i is None else int(self._rows[i])


def _span(tab: RangeTable) -> str:
    if len(tab.tsbegin) == 0:
        return ""
    lo = int(tab.tsbegin.min())
    hi = int(tab.tsend.max())
    return f" spanning {format_ns(lo)} .. {format_ns(hi)}"


class SelectionCache:
    """Range tables and their selection index per ctype of one open store."""

    __slots__ = ("_store", "_tables", "derived")

    def __init__(self, store: "DCStore"):
        self._store = store
        self._tables: Dict[str, Tuple[RangeTable, object]] = {}
        #: Indexes other lookups (as-of, tags) derive from the file; dropped with the rest.
        self.derived: Dict[tuple, object] = {}

    def clear(self) -> None:
        self._tables.clear()
        self.derived.clear()

    def invalidate(self, ctype: str) -> None:
        """Forget what was read of ``ctype`` (after a change to it)."""
        self._tables.pop(ctype, None)
        self.derived.clear()

    def table(self, ctype: str) -> RangeTable:
        return self.indexed(ctype)[0]

    def indexed(self, ctype: str) -> Tuple[RangeTable, "LazyIndex"]:
        hit = self._tables.get(ctype)
        if hit is None:
            be = self._store.backend
            try:
                tab = be.range_table(ctype)
            except Exception:
                self._store._require_ctype(ctype)  # a missing type is the usual cause: say so
                raise
            # empty ranges (defaultv 0) are not candidates of the selection rule
            live = tab.defaultv > 0
            idx = LazyIndex(tab, live, be.end_inclusive)
            hit = (tab, idx)
            self._tables[ctype] = hit
        return hit  # type: ignore[return-value]

    def select(self, ctype: str, t: int, include: frozenset = frozenset()
               ) -> Tuple[int, int, int]:
        """``(tsbegin, tsend, default version)`` of the range valid at ``t`` (with
        ``include``: see :meth:`select_including`)."""
        if include:
            return self.select_including(ctype, t, include)
        tab, idx = self.indexed(ctype)
        i = idx.find(t)
        if i is None:
            raise NoValidConstantsError(
                f"no {ctype!r} constants valid at {format_ns(t)} in {self._store.path} "
                f"({len(tab.tsbegin)} ranges{_span(tab)})")
        return int(tab.tsbegin[i]), int(tab.tsend[i]), int(tab.defaultv[i])

    def select_including(self, ctype: str, t: int, include: frozenset
                         ) -> Tuple[int, int, int]:
        """Like :meth:`select` with extra states (candidates): a range's newest candidate
        above its default replaces it (docs/format.rst, "Selection rule"). Slow path: reads
        the version states of the type, nothing is cached."""
        be = self._store.backend
        tab = self.table(ctype)
        eff = [effective_version(be, (ctype, int(b), int(e)), int(d), include)
               for b, e, d in zip(tab.tsbegin, tab.tsend, tab.defaultv)]
        live = np.array(eff, dtype=np.int64) > 0
        i = _LiveIndex(tab, live, be.end_inclusive).find(t) if live.any() else None
        if i is None:
            raise NoValidConstantsError(
                f"no {ctype!r} constants (valid or candidate) valid at {format_ns(t)} in "
                f"{self._store.path} ({len(tab.tsbegin)} ranges{_span(tab)})")
        return int(tab.tsbegin[i]), int(tab.tsend[i]), eff[i]

    def default_of(self, rkey: tuple) -> int:
        """Default version number of the range ``(ctype, tsbegin, tsend)``."""
        tab = self.table(rkey[0])
        i = tab.row(rkey[1], rkey[2])
        if i is None:
            raise RangeNotFoundError(f"{rkey[0]!r} has no range {range_name(*rkey[1:3])}")
        return int(tab.defaultv[i])
