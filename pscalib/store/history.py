"""History records: an append-only audit log at every level of a store.

Stored as the dataset ``_history`` in the object's group: 1-d, chunked, extendible, compound
type ``(tsns int64, user str, host str, action str, record str)`` with variable-length UTF-8
strings. Rows are appended in order, so two records written in the same nanosecond still
are two rows; nothing is keyed by time.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

import h5py
import numpy as np

from ..errors import InvalidInputError
from ..identity import hostname, whoami
from ..timestamps import format_ns, now_ns
from .layout import HISTORY_CHUNK, N_HISTORY

__all__ = ["HistoryRecord", "HISTORY_DTYPE", "append_history", "read_history", "whoami",
           "hostname"]

_STR = h5py.string_dtype("utf-8")
HISTORY_DTYPE = np.dtype([("tsns", "<i8"), ("user", _STR), ("host", _STR),
                          ("action", _STR), ("record", _STR)])


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


def append_history(group: h5py.Group, action: str, record: str,
                   tsns: Optional[int] = None, user: Optional[str] = None,
                   host: Optional[str] = None) -> HistoryRecord:
    """Append one record to ``group/_history`` (created on first use)."""
    rec = HistoryRecord(int(now_ns() if tsns is None else tsns), _clean(user or whoami()),
                        _clean(host or hostname()), _clean(action), _clean(record))
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
    rows = ds[...]
    return [HistoryRecord(int(r["tsns"]), _s(r["user"]), _s(r["host"]), _s(r["action"]),
                          _s(r["record"])) for r in rows]
