"""The selection rule, precomputed for fast lookups.

Rule: among the ranges with ``tsbegin <= t < tsend`` (``tsend <= t`` inclusive for legacy
files), the one with the latest ``tsbegin`` wins; for equal begins, the narrower
(earlier-ending) range wins.

:class:`RangeIndex` sweeps the ranges once (O(n log n)) into a piecewise-constant map
``t -> winning range``; each lookup is then one binary search, whatever the number of
ranges or how they overlap.
"""
from __future__ import annotations

import heapq
from bisect import bisect_right
from typing import List, Optional, Sequence

from ..timestamps import OPEN_END

__all__ = ["RangeIndex", "select_bruteforce"]


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
