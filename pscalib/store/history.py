"""History records: an append-only audit log at every level of a store.

Stored as the dataset ``_history`` in the object's group: 1-d, chunked, extendible, compound
type ``(tsns int64, user str, host str, action str, record str)`` with variable-length UTF-8
strings. Rows are appended in order, so two records written in the same nanosecond still
are two rows; nothing is keyed by time.

Format 3 keeps every record of the store in one table instead, the root ``_history`` with
a sixth field ``path`` (the object's HDF5 path, "" for the store): one dataset for the
whole file rather than one chunked dataset per object (a 4.6 kB chunk per range), appended
once per commit (:func:`append_table`). A record's object is its ``path``; a deleted
object's rows go with it (:func:`purge_table`), as its per-object dataset did.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import h5py
import numpy as np

from ..errors import CorruptStoreError, InvalidInputError
from ..identity import hostname, whoami
from ..timestamps import format_ns, now_ns
from .layout import HISTORY_CHUNK, N_HISTORY, TABLE_CHUNK
from .rowio import append_rows

__all__ = ["HistoryRecord", "HISTORY_DTYPE", "TABLE_DTYPE", "append_history", "read_history",
           "make_record", "append_table", "read_table", "read_table_all", "purge_table",
           "is_table", "whoami", "hostname"]

_STR = h5py.string_dtype("utf-8")
HISTORY_DTYPE = np.dtype([("tsns", "<i8"), ("user", _STR), ("host", _STR),
                          ("action", _STR), ("record", _STR)])
#: Format 3: the one root table of every record, ``path`` = the object's HDF5 path.
TABLE_DTYPE = np.dtype([("tsns", "<i8"), ("user", _STR), ("host", _STR),
                        ("action", _STR), ("record", _STR), ("path", _STR)])


class HistoryRecord(NamedTuple):
    """One history entry: when (ns since epoch), who, on which host, what."""
    tsns: int
    user: str
    host: str
    action: str
    record: str

    def format(self, fmt: Optional[str] = None) -> str:
        """Format with ``str.format`` fields {time} {tsns} {user} {host} {action} {record}."""
        fmt = fmt or "{time} {user}@{host} {action}: {record}"
        try:
            return fmt.format(time=format_ns(self.tsns), tsns=self.tsns, user=self.user,
                              host=self.host, action=self.action, record=self.record)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"bad history format {fmt!r} ({type(exc).__name__}: {exc}); fields are "
                f"{{time}} {{tsns}} {{user}} {{host}} {{action}} {{record}}") from None


def _clean(text: str) -> str:
    # HDF5 variable-length strings are NUL-terminated; keep records readable everywhere.
    return text.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


def make_record(action: str, record: str, tsns: Optional[int] = None,
                user: Optional[str] = None, host: Optional[str] = None) -> HistoryRecord:
    """A record with the defaults filled in (now, this user and host) and NULs escaped."""
    return HistoryRecord(int(now_ns() if tsns is None else tsns), _clean(user or whoami()),
                         _clean(host or hostname()), _clean(action), _clean(record))


def append_history(group: h5py.Group, action: str, record: str,
                   tsns: Optional[int] = None, user: Optional[str] = None,
                   host: Optional[str] = None) -> HistoryRecord:
    """Append one record to ``group/_history`` (created on first use; formats 1 and 2)."""
    rec = make_record(action, record, tsns, user, host)
    ds = group.get(N_HISTORY)
    if ds is None:
        ds = group.create_dataset(N_HISTORY, shape=(0,), maxshape=(None,),
                                  chunks=(HISTORY_CHUNK,), dtype=HISTORY_DTYPE)
    n = ds.shape[0]
    ds.resize((n + 1,))
    ds[n] = tuple(rec)
    return rec


def _s(x) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def read_history(group: h5py.Group) -> List[HistoryRecord]:
    ds = group.get(N_HISTORY)
    if ds is None or ds.shape[0] == 0:
        return []
    rows = _checked(ds)[...]
    return [HistoryRecord(int(r["tsns"]), _s(r["user"]), _s(r["host"]), _s(r["action"]),
                          _s(r["record"])) for r in rows]


def is_table(ds: h5py.Dataset) -> bool:
    """True if ``ds`` is a format 3 history table (has the ``path`` field)."""
    names = ds.dtype.names or ()
    return "path" in names


def append_table(f: h5py.File, rows: List[Tuple[str, HistoryRecord]]) -> None:
    """Append ``(path, record)`` rows to the root table (created on first use) in one
    write: a commit's records cost one resize and one write, not one per record."""
    ds = f.get(N_HISTORY)
    if ds is None:
        ds = f.create_dataset(N_HISTORY, shape=(0,), maxshape=(None,),
                              chunks=(TABLE_CHUNK,), dtype=TABLE_DTYPE)
    if not rows:
        return
    append_rows(ds, [tuple(rec) + (path,) for path, rec in rows], TABLE_DTYPE)


def check_lengths(ds: h5py.Dataset, limit: int) -> None:
    """Refuse a chunked table whose stored variable-length string lengths exceed
    ``limit`` (the file size: no string can be longer) before HDF5 converts it.

    A damaged length makes HDF5 allocate and clear that many bytes per string (found by
    ``scripts/fuzz_files.py``: a copied 512-byte block over the history table made one
    read take minutes). The lengths are the first 4 bytes of each 16-byte descriptor in
    the raw chunks, read here without conversion (the tables have no filters)."""
    tid = ds.id.get_type()
    if tid.get_class() != h5py.h5t.COMPOUND or ds.chunks is None or ds.shape[0] == 0:
        return
    # on disk a variable-length string is 16 bytes (length u4, heap address u8, index
    # u4) whatever its in-memory size; the members are stored packed, in order
    offs, size = [], 0
    for i in range(tid.get_nmembers()):
        mt = tid.get_member_type(i)
        if tid.get_member_class(i) == h5py.h5t.STRING and mt.is_variable_str():
            offs.append(size)
            size += 16
        else:
            size += mt.get_size()
    n, step = ds.shape[0], ds.chunks[0]
    for start in range(0, n, step):
        rows = min(step, n - start)
        try:
            raw = ds.id.read_direct_chunk((start,))[1]
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            raise CorruptStoreError(f"{ds.file.filename}: {ds.name} cannot be read: "
                                    f"{exc}") from None
        if len(raw) != step * size:  # not the layout this check knows: HDF5 decides
            return
        arr = np.frombuffer(raw, np.uint8, rows * size).reshape(rows, size)
        for o in offs:
            if int(arr[:, o:o + 4].copy().view("<u4").max()) > limit:
                raise CorruptStoreError(f"{ds.file.filename}: {ds.name} holds a string "
                                        f"longer than the file (damaged); run 'dcs verify' "
                                        f"and restore the file from a copy")


def _checked(ds: h5py.Dataset) -> h5py.Dataset:
    if ds.file.mode == "r+":  # the raw chunks on disk must be those in HDF5's cache
        ds.file.flush()
    check_lengths(ds, ds.file.id.get_filesize())
    return ds


def _paths(ds: h5py.Dataset) -> np.ndarray:
    return np.array([_s(p) for p in ds.fields("path")[...]], dtype=object)


def read_table(f: h5py.File, path: str) -> List[HistoryRecord]:
    """Records of the object at ``path`` ("" for the store), in append order."""
    ds = f.get(N_HISTORY)
    if ds is None or ds.shape[0] == 0:
        return []
    idx = np.nonzero(_paths(_checked(ds)) == path)[0]
    if not len(idx):
        return []
    # only the path column is read in full; the object's rows are one or a few reads
    rows = ds[int(idx[0]):int(idx[-1]) + 1]
    rows = rows[idx - idx[0]]
    return [HistoryRecord(int(r["tsns"]), _s(r["user"]), _s(r["host"]), _s(r["action"]),
                          _s(r["record"])) for r in rows]


def read_table_all(f: h5py.File) -> Dict[str, List[HistoryRecord]]:
    """Every record of the table, by object path (one read for a whole-store walk such as
    ``dcs history -r``, instead of one scan of the path column per object)."""
    ds = f.get(N_HISTORY)
    out: Dict[str, List[HistoryRecord]] = {}
    if ds is None or ds.shape[0] == 0:
        return out
    for r in _checked(ds)[...]:
        out.setdefault(_s(r["path"]), []).append(
            HistoryRecord(int(r["tsns"]), _s(r["user"]), _s(r["host"]), _s(r["action"]),
                          _s(r["record"])))
    return out


def purge_table(f: h5py.File, path: str) -> int:
    """Drop the rows of the object at ``path`` and of everything below it (deleted with
    the object); returns how many were dropped."""
    ds = f.get(N_HISTORY)
    if ds is None or ds.shape[0] == 0:
        return 0
    paths = _paths(_checked(ds))
    gone = np.array([p == path or p.startswith(path + "/") for p in paths], dtype=bool)
    n = int(gone.sum())
    if n:
        keep = ds[...][~gone]
        ds.resize((len(keep),))
        if len(keep):
            ds[...] = keep
    return n
