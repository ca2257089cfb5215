"""Root datasets of reproducibility records (docs/format.rst, "Change log", "Tags").

``/_changelog``: append-only rows, one per change of what the selection rule sees (a range's
default version appearing, changing or disappearing), with the dataset attribute ``start``:
the wall time from which the log is complete.

``/_versionlog``: append-only rows, one per change of a version's existence or state (a
version appearing, changing state, being deleted), with the dataset attribute ``start``: the
wall time from which it is complete. It lets ``get(..., asof=T0)`` answer with ``vers``,
``tsprod`` and ``include`` too.

``/_tags``: one row per (tag, ctype, range) a tag selected in this store, plus one header row
per tag (``ctype`` empty) so that a tag selecting nothing here still exists here.
"""
from __future__ import annotations

from typing import Iterable, List, NamedTuple, Optional, Tuple

import h5py
import numpy as np

from h5py import h5d, h5l, h5o

from .fastread import object_attr
from .rowio import append_rows, fixed_fields, read_rows_at

__all__ = ["N_CHANGELOG", "N_VERSIONLOG", "N_TAGS", "CHANGELOG_DTYPE", "VERSIONLOG_DTYPE",
           "TAG_DTYPE", "LogRow", "VersionRow", "TagRow", "read_changelog",
           "append_changelog", "read_versionlog", "append_versionlog", "read_tags",
           "write_tags", "LogTail", "read_log_tails", "tail_of"]

N_CHANGELOG = "_changelog"
N_VERSIONLOG = "_versionlog"
N_TAGS = "_tags"
A_START = "start"
CHUNK = 256

_STR = h5py.string_dtype("utf-8")
CHANGELOG_DTYPE = np.dtype([("tsns", "<i8"), ("op", _STR), ("ctype", _STR),
                            ("tsbegin", "<i8"), ("tsend", "<i8"), ("version", "<i8"),
                            ("sha256", _STR), ("user", _STR)])
# state and sha256 fixed-length ASCII: fewer objects on the global heap, which every
# transaction scans (heapcheck)
VERSIONLOG_DTYPE = np.dtype([("tsns", "<i8"), ("ctype", _STR), ("tsbegin", "<i8"),
                             ("tsend", "<i8"), ("version", "<i8"), ("state", "S10"),
                             ("tsprod", "<i8"), ("sha256", "S64"), ("user", _STR)])
TAG_DTYPE = np.dtype([("name", _STR), ("ctype", _STR), ("tsbegin", "<i8"), ("tsend", "<i8"),
                      ("version", "<i8"), ("sha256", _STR), ("tsat", "<i8"),
                      ("tscreated", "<i8"), ("user", _STR), ("published", "<i8"),
                      ("note", _STR)])


#: the fixed-length fields of each log (its tail; see read_log_tails)
_TAIL_DTYPES = {name: np.dtype([(n, dt[n]) for n in fixed_fields(dt)])
                for name, dt in ((N_CHANGELOG, CHANGELOG_DTYPE),
                                 (N_VERSIONLOG, VERSIONLOG_DTYPE))}


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


class VersionRow(NamedTuple):
    """From ``tsns`` on, version ``(ctype, tsbegin, tsend, version)`` is in ``state``
    (``valid``, ``candidate``, ``deprecated``; ``''``: deleted), with its production time
    ``tsprod`` and checksum ``sha256``."""
    tsns: int
    ctype: str
    tsbegin: int
    tsend: int
    version: int
    state: str
    tsprod: int
    sha256: str
    user: str

    @property
    def key(self) -> Tuple:
        return (self.ctype, self.tsbegin, self.tsend, self.version)


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
    return _rows_of(ds[...], cls, dtype)


def _rows_of(data: np.ndarray, cls, dtype) -> list:
    # column by column (tolist converts a whole column at once): long logs and a thousand
    # tag rows (read on every cold GUI page of a tagged store) decode several times faster
    cols = [[_s(x) for x in data[n].tolist()] if dtype[n].kind in "OS"
            else data[n].astype(np.int64).tolist() for n in dtype.names]
    return [cls(*r) for r in zip(*cols)]


def _read_log(f: h5py.File, name: str, cls, dtype) -> Tuple[Optional[int], list]:
    ds = f.get(name)
    if ds is None:
        return None, []
    return int(ds.attrs[A_START]), _rows(ds, cls, dtype)


#: ``(start, rows, fixed-length fields of the last row)`` of one log: what a cached replay
#: of it is checked against.
LogTail = Tuple[Optional[int], int, Optional[tuple]]


def _tail(f: h5py.File, name: str) -> LogTail:
    # low-level: a commit reads both tails (the high-level calls cost ~0.1 ms each)
    bname = name.encode()
    if not f.id.links.exists(bname):
        return None, 0, None
    if f.id.links.get_info(bname).type != h5l.TYPE_HARD:  # never follow a link elsewhere
        raise KeyError(f"/{name} is not a hard link")
    oid = h5o.open(f.id, bname)
    if not isinstance(oid, h5d.DatasetID):
        return None, 0, None
    n = int(oid.shape[0])
    start = object_attr(oid, A_START)
    if start is None:
        raise KeyError(f"/{name} has no attribute {A_START!r}")
    start = int(start)
    if not n:
        return start, 0, None
    row = read_rows_at(oid, n - 1, 1, _TAIL_DTYPES[name])[0]
    return start, n, tuple(_s(x) if isinstance(x, bytes) else int(x) for x in row.tolist())


def read_log_tails(f: h5py.File) -> Tuple[LogTail, LogTail]:
    """The tails of ``/_changelog`` and ``/_versionlog``: start, row count and the fixed-
    length fields of the last row (times, range, version, state, sha256 of the version log).

    Both logs are append-only and every row written carries a new, strictly increasing
    ``tsns``; so a log with the same start, row count and last row as when it was replayed
    holds the same rows, and the replay can be reused (pscalib.store.changelog).
    """
    return _tail(f, N_CHANGELOG), _tail(f, N_VERSIONLOG)


def tail_of(row: tuple, dtype: np.dtype) -> tuple:
    """The part of a row (LogRow or VersionRow) that :func:`read_log_tails` reads back."""
    keep = set(fixed_fields(dtype))
    return tuple(x for n, x in zip(dtype.names or (), row) if n in keep)


def _append_log(f: h5py.File, name: str, dtype, rows: list, start: Optional[int]) -> int:
    ds = f.get(name)
    if ds is None:
        if start is None:
            raise ValueError(f"a new {name} needs its start time")
        ds = f.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(CHUNK,),
                              dtype=dtype)
        ds.attrs[A_START] = np.int64(start)
    return append_rows(ds, [tuple(r) for r in rows], dtype)


def read_changelog(f: h5py.File) -> Tuple[Optional[int], List[LogRow]]:
    """``(start, rows)``; ``(None, [])`` for a file written before the log existed."""
    return _read_log(f, N_CHANGELOG, LogRow, CHANGELOG_DTYPE)


def append_changelog(f: h5py.File, rows: Iterable[LogRow], start: Optional[int] = None
                     ) -> int:
    """Append rows, creating the log (with ``start``) on first use."""
    return _append_log(f, N_CHANGELOG, CHANGELOG_DTYPE, list(rows), start)


def read_versionlog(f: h5py.File) -> Tuple[Optional[int], List[VersionRow]]:
    """``(start, rows)`` of ``/_versionlog``; ``(None, [])`` for a file without it."""
    return _read_log(f, N_VERSIONLOG, VersionRow, VERSIONLOG_DTYPE)


def append_versionlog(f: h5py.File, rows: Iterable[VersionRow],
                      start: Optional[int] = None) -> int:
    """Append version-log rows, creating the log (with ``start``) on first use."""
    return _append_log(f, N_VERSIONLOG, VERSIONLOG_DTYPE, list(rows), start)


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
