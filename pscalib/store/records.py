"""Root datasets of reproducibility records (docs/format.rst, "Change log", "Tags").

``/_changelog``: append-only rows, one per change of what the selection rule sees (a range's
default version appearing, changing or disappearing), with the dataset attribute ``start``:
the wall time from which the log is complete.

``/_tags``: one row per (tag, ctype, range) a tag selected in this store, plus one header row
per tag (``ctype`` empty) so that a tag selecting nothing here still exists here.
"""
from __future__ import annotations

from typing import Iterable, List, NamedTuple, Optional, Tuple

import h5py
import numpy as np

__all__ = ["N_CHANGELOG", "N_TAGS", "CHANGELOG_DTYPE", "TAG_DTYPE", "LogRow", "TagRow",
           "read_changelog", "append_changelog", "read_tags", "write_tags"]

N_CHANGELOG = "_changelog"
N_TAGS = "_tags"
A_START = "start"
CHUNK = 256

_STR = h5py.string_dtype("utf-8")
CHANGELOG_DTYPE = np.dtype([("tsns", "<i8"), ("op", _STR), ("ctype", _STR),
                            ("tsbegin", "<i8"), ("tsend", "<i8"), ("version", "<i8"),
                            ("sha256", _STR), ("user", _STR)])
TAG_DTYPE = np.dtype([("name", _STR), ("ctype", _STR), ("tsbegin", "<i8"), ("tsend", "<i8"),
                      ("version", "<i8"), ("sha256", _STR), ("tsat", "<i8"),
                      ("tscreated", "<i8"), ("user", _STR), ("published", "<i8"),
                      ("note", _STR)])


class LogRow(NamedTuple):
    """From ``tsns`` on, range ``(ctype, tsbegin, tsend)`` selects ``version`` (0: none)."""
    tsns: int
    op: str
    ctype: str
    tsbegin: int
    tsend: int
    version: int
    sha256: str
    user: str


class TagRow(NamedTuple):
    """Tag ``name`` selects ``version`` of range ``(ctype, tsbegin, tsend)`` (a header row
    has ``ctype == ''``). ``tsat``: the wall time whose selection the tag froze;
    ``published``: wall time of publication, 0 while the tag is open."""
    name: str
    ctype: str
    tsbegin: int
    tsend: int
    version: int
    sha256: str
    tsat: int
    tscreated: int
    user: str
    published: int
    note: str

    @property
    def key(self) -> Tuple:
        return (self.ctype, self.tsbegin, self.tsend, self.version)


def _s(x) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def _rows(ds, cls, dtype) -> list:
    if ds is None or not isinstance(ds, h5py.Dataset) or ds.shape[0] == 0:
        return []
    data = ds[...]
    str_fields = {n for n in dtype.names if dtype[n].kind == "O"}
    # column by column (tolist converts a whole column at once): a thousand tag rows are
    # read on every cold page of a tagged store
    cols = [[_s(x) for x in data[n].tolist()] if n in str_fields else
            [int(x) for x in data[n].tolist()] for n in dtype.names]
    return [cls(*r) for r in zip(*cols)]


def read_changelog(f: h5py.File) -> Tuple[Optional[int], List[LogRow]]:
    """``(start, rows)``; ``(None, [])`` for a file written before the log existed."""
    ds = f.get(N_CHANGELOG)
    if ds is None:
        return None, []
    return int(ds.attrs[A_START]), _rows(ds, LogRow, CHANGELOG_DTYPE)


def append_changelog(f: h5py.File, rows: Iterable[LogRow], start: Optional[int] = None
                     ) -> int:
    """Append rows, creating the log (with ``start``) on first use."""
    rows = list(rows)
    ds = f.get(N_CHANGELOG)
    if ds is None:
        if start is None:
            raise ValueError("a new change log needs its start time")
        ds = f.create_dataset(N_CHANGELOG, shape=(0,), maxshape=(None,), chunks=(CHUNK,),
                              dtype=CHANGELOG_DTYPE)
        ds.attrs[A_START] = np.int64(start)
    if rows:
        n = ds.shape[0]
        ds.resize((n + len(rows),))
        ds[n:] = np.array([tuple(r) for r in rows], dtype=CHANGELOG_DTYPE)
    return len(rows)


def read_tags(f: h5py.File) -> List[TagRow]:
    """Every tag row of the file (none without ``/_tags``)."""
    return _rows(f.get(N_TAGS), TagRow, TAG_DTYPE)


def write_tags(f: h5py.File, rows: Iterable[TagRow]) -> None:
    """Replace the tag rows (the caller keeps published rows unchanged)."""
    rows = list(rows)
    if N_TAGS in f:
        del f[N_TAGS]
    if rows:
        f.create_dataset(N_TAGS, data=np.array([tuple(r) for r in rows], dtype=TAG_DTYPE),
                         maxshape=(None,), chunks=(CHUNK,))
