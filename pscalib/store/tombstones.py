"""Tombstones: the root dataset ``/_tombstones`` recording every deletion (docs/format.rst).

One row per deleted version, range or calibration type: what, its key, its checksum, who,
when, where and the history text. Rows are only appended, never changed, so copy and merge
can carry a deletion and a deleted version is never brought back by a merge.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

import h5py
import numpy as np

from . import layout as L
from ..identity import hostname, whoami
from ..timestamps import now_ns

__all__ = ["TOMBSTONE_DTYPE", "Tombstone", "read_tombstones", "append_tombstones",
           "make_tombstone", "TombstoneIndex"]

_STR = h5py.string_dtype("utf-8")
TOMBSTONE_DTYPE = np.dtype([("what", _STR), ("ctype", _STR), ("tsbegin", "<i8"),
                            ("tsend", "<i8"), ("version", "<i8"), ("sha256", _STR),
                            ("tsns", "<i8"), ("user", _STR), ("host", _STR),
                            ("record", _STR)])
CHUNK = 64
WHAT = ("version", "range", "ctype")


class Tombstone(NamedTuple):
    """One deletion. ``tsbegin``/``tsend`` are 0 for a ctype, ``version`` 0 unless a version."""
    what: str
    ctype: str
    tsbegin: int
    tsend: int
    version: int
    sha256: str
    tsns: int
    user: str
    host: str
    record: str

    @property
    def identity(self) -> Tuple:
        """What a merge compares: the object and its checksum, not who deleted it."""
        return (self.what, self.ctype, self.tsbegin, self.tsend, self.version, self.sha256)

    @property
    def key(self) -> Tuple:
        """The store key of the deleted object: (ctype,), (ctype, b, e) or (ctype, b, e, v)."""
        if self.what == "ctype":
            return (self.ctype,)
        if self.what == "range":
            return (self.ctype, self.tsbegin, self.tsend)
        return (self.ctype, self.tsbegin, self.tsend, self.version)


def make_tombstone(key: Tuple, sha256: Optional[str], record: str) -> Tombstone:
    """Tombstone of the object with store ``key`` deleted now by this user."""
    what = {1: "ctype", 3: "range", 4: "version"}[len(key)]
    b, e = (key[1], key[2]) if len(key) > 1 else (0, 0)
    v = key[3] if len(key) == 4 else 0
    return Tombstone(what, key[0], int(b), int(e), int(v), sha256 or "", now_ns(), whoami(),
                     hostname(), record)


def _s(x) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def read_tombstones(f: h5py.File) -> List[Tombstone]:
    """Every tombstone of the file, in append order (none for a file without the dataset)."""
    ds = f.get(L.N_TOMBSTONES)
    if ds is None or ds.shape[0] == 0:
        return []
    rows = ds[...]
    return [Tombstone(_s(r["what"]), _s(r["ctype"]), int(r["tsbegin"]), int(r["tsend"]),
                      int(r["version"]), _s(r["sha256"]), int(r["tsns"]), _s(r["user"]),
                      _s(r["host"]), _s(r["record"])) for r in rows]


def append_tombstones(f: h5py.File, rows: Iterable[Tombstone]) -> int:
    """Append rows (creating the dataset on first use); returns how many were written."""
    rows = list(rows)
    if not rows:
        return 0
    ds = f.get(L.N_TOMBSTONES)
    if ds is None:
        ds = f.create_dataset(L.N_TOMBSTONES, shape=(0,), maxshape=(None,), chunks=(CHUNK,),
                              dtype=TOMBSTONE_DTYPE)
    n = ds.shape[0]
    ds.resize((n + len(rows),))
    ds[n:] = np.array([tuple(r) for r in rows], dtype=TOMBSTONE_DTYPE)
    return len(rows)


class TombstoneIndex:
    """Lookups over a list of tombstones (built once per merge or range creation)."""

    def __init__(self, rows: Iterable[Tombstone]):
        self.rows = list(rows)
        self.identities = {r.identity for r in self.rows}
        self.by_key: Dict[Tuple, List[Tombstone]] = {}
        for r in self.rows:
            self.by_key.setdefault(r.key, []).append(r)

    def of(self, key: Tuple) -> List[Tombstone]:
        """Tombstones of exactly this object (several if it was deleted more than once)."""
        return self.by_key.get(tuple(key), [])

    def max_version(self, ctype: str, tsbegin: int, tsend: int) -> int:
        """Highest version number ever deleted from that range (0 if none)."""
        vs = [r.version for r in self.rows if r.what == "version" and r.ctype == ctype
              and r.tsbegin == tsbegin and r.tsend == tsend]
        return max(vs, default=0)
