"""Bookkeeping a transaction holds in memory and writes once, at commit.

A transaction's writes go to its private copy of the file, which nobody reads before the
commit; so the small tables every add touches - the range index of a type, the range
group's ``defaultv``/``lastv`` attributes, the payload index and (format 3) the history
table - need not be rewritten row by row. :class:`~pscalib.store.native.NativeBackend`
keeps them here while the transaction runs, answers its own reads from here, and writes
each table once in ``finish()`` (one resize and one write per table instead of a resize
and a read-modify-write per add: ``docs/design/engine-bookkeeping.rst``).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np

from .backend import RangeTable
from .layout import INDEX_DTYPE

__all__ = ["RangeRows", "PayRows", "PayRow", "slices"]

#: One row of the payload index: (sha256 bytes, ctype, tsbegin, tsend, version).
PayRow = Tuple[bytes, str, int, int, int]


def slices(dirty: Set[int], n: int, n_disk: int) -> List[Tuple[int, int]]:
    """``[start, stop)`` row slices covering the changed rows and the rows appended after
    ``n_disk``: each run of neighbouring rows is one write."""
    idx = sorted({i for i in dirty if i < n} | set(range(n_disk, n)))
    out: List[Tuple[int, int]] = []
    for i in idx:
        if out and i <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], i + 1))
        else:
            out.append((i, i + 1))
    return out


class RangeRows:
    """The range index of one type, changed in memory and written at commit."""

    __slots__ = ("rows", "n", "n_disk", "n_same", "dirty", "_table")

    def __init__(self, rows: np.ndarray):
        self.rows = np.array(rows, dtype=INDEX_DTYPE)
        #: rows now, rows on disk, and how many leading rows on disk are still current
        #: (apart from those in ``dirty``)
        self.n = self.n_disk = self.n_same = len(rows)
        self.dirty: Set[int] = set()
        self._table: Optional[RangeTable] = None

    def table(self) -> RangeTable:
        """The current rows (a cached copy: callers may keep it across later changes)."""
        if self._table is None:
            r = self.rows[:self.n]
            self._table = RangeTable(r["tsbegin"].copy(), r["tsend"].copy(),
                                     r["defaultv"].copy())
        return self._table

    def find(self, tsbegin: int, tsend: int) -> List[int]:
        r = self.rows[:self.n]
        return np.nonzero((r["tsbegin"] == tsbegin) & (r["tsend"] == tsend))[0].tolist()

    def append(self, tsbegin: int, tsend: int) -> None:
        if self.n == len(self.rows):  # amortised growth: an add costs O(1), not a copy
            grown = np.zeros(max(16, 2 * self.n), dtype=INDEX_DTYPE)
            grown[:self.n] = self.rows[:self.n]
            self.rows = grown
        self.rows[self.n] = (tsbegin, tsend, 0)
        self.n += 1
        self._table = None

    def set_default(self, i: int, version: int) -> None:
        self.rows["defaultv"][i] = version
        self.dirty.add(i)
        self._table = None

    def remove(self, i: int) -> None:
        """Drop row ``i``, moving the last row into the hole (the index is unordered)."""
        last = self.n - 1
        if i != last:
            self.rows[i] = self.rows[last]
            self.dirty.add(i)
        self.n = last
        self.n_same = min(self.n_same, last)
        self._table = None

    def changed(self) -> bool:
        return bool(self.dirty) or self.n != self.n_disk or self.n_same < self.n_disk

    def to_write(self) -> List[Tuple[int, int]]:
        """Row slices to write after resizing the dataset to ``n`` rows."""
        return slices(self.dirty, self.n, self.n_same)

    def current(self) -> np.ndarray:
        return self.rows[:self.n]

    def written(self) -> None:
        self.n_disk = self.n_same = self.n
        self.dirty.clear()


class PayRows:
    """The payload index (``/_payloads``), changed in memory and written at commit.

    Rows already on disk are read lazily: a transaction that only adds versions reads the
    checksum column once (one numpy comparison per lookup) and decodes only the rows whose
    checksum matches, so an add costs the same in a store of ten versions and of ten
    thousand. Dropping rows (deletions) loads them all.
    """

    __slots__ = ("_rows", "n_disk", "rewrite", "_by_sha", "_have", "_disk_sha", "_fetch",
                 "_new")

    def __init__(self, rows: List[PayRow], on_disk: bool,
                 disk_sha: Optional[np.ndarray] = None,
                 fetch: Optional[Callable[[Optional[List[int]]], List[PayRow]]] = None):
        """``rows`` (all of them), or ``disk_sha`` (the checksum column on disk) with
        ``fetch(indices)`` to read rows on demand (``fetch(None)``: every row)."""
        self._disk_sha = disk_sha
        self._fetch = fetch
        self._new: List[PayRow] = []  # rows added since the disk rows (lazy mode)
        self._rows: List[PayRow] = list(rows)
        self.n_disk = len(disk_sha) if disk_sha is not None else len(rows) if on_disk else 0
        #: True when rows on disk must be replaced (rows were dropped, or no index yet)
        self.rewrite = not on_disk
        self._by_sha: Dict[bytes, List[int]] = {}
        self._have: Set[PayRow] = set()
        if disk_sha is None:
            self._have = set(self._rows)
            self._index()

    def _materialize(self) -> None:
        if self._disk_sha is not None:
            assert self._fetch is not None
            self._rows = list(self._fetch(None)) + self._new
            self._disk_sha, self._fetch, self._new = None, None, []
            self._have = set(self._rows)
            self._index()

    @property
    def rows(self) -> List[PayRow]:
        """Every row (reads the rows on disk in lazy mode)."""
        self._materialize()
        return self._rows

    def _index(self) -> None:
        self._by_sha = {}
        for i, r in enumerate(self._rows):
            self._by_sha.setdefault(r[0], []).append(i)

    def candidates(self, sha256: bytes) -> List[PayRow]:
        if self._disk_sha is not None:
            assert self._fetch is not None
            hits = np.nonzero(self._disk_sha == sha256)[0].tolist()
            return (self._fetch(hits) if hits else []) + \
                [r for r in self._new if r[0] == sha256]
        return [self._rows[i] for i in self._by_sha.get(sha256, [])]

    def add(self, row: PayRow) -> None:
        if self._disk_sha is not None:
            if row not in self.candidates(row[0]):
                self._new.append(row)
            return
        if row in self._have:  # an index just built by a walk already holds it
            return
        self._have.add(row)
        self._by_sha.setdefault(row[0], []).append(len(self._rows))
        self._rows.append(row)

    def forget(self, ctype: str, tsbegin: Optional[int], tsend: Optional[int],
               version: Optional[int]) -> int:
        def gone(r: PayRow) -> bool:
            return (r[1] == ctype and (tsbegin is None or (r[2], r[3]) == (tsbegin, tsend))
                    and (version is None or r[4] == version))
        self._materialize()
        keep = [r for r in self._rows if not gone(r)]
        n = len(self._rows) - len(keep)
        if n:
            self._rows = keep
            self._have = set(keep)
            self.rewrite = True
            self._index()
        return n

    def __len__(self) -> int:
        return self.n_disk + len(self._new) if self._disk_sha is not None else len(self._rows)

    def changed(self) -> bool:
        return self.rewrite or len(self) != self.n_disk

    def to_write(self) -> Tuple[List[PayRow], int]:
        """``(rows, start)``: the rows to write from row ``start`` on (all of them when the
        index is rewritten), and the dataset's new length is ``len(self)``."""
        if self.rewrite:
            return self.rows, 0
        if self._disk_sha is not None:
            return self._new, self.n_disk
        return self._rows[self.n_disk:], self.n_disk

    def written(self) -> None:
        if self._disk_sha is not None:
            # the rows written are on disk now (``fetch`` reads the dataset as it is)
            self._disk_sha = np.concatenate(
                [self._disk_sha, np.array([r[0] for r in self._new], dtype="S64")])
            self.n_disk += len(self._new)
            self._new = []
        else:
            self.n_disk = len(self._rows)
        self.rewrite = False
