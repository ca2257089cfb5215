"""The interfaces every store backend provides: :class:`Backend` (read) and
:class:`WritableBackend` (read and write).

The model classes (:mod:`pscalib.store.dcstore`, :mod:`pscalib.store.dcobjects`) and
everything above them never touch HDF5 objects; they ask a backend. Objects are addressed
by *keys*::

    ()                               the store (file root)
    (ctype,)                         a calibration type
    (ctype, tsbegin, tsend)          a validity range (int ns)
    (ctype, tsbegin, tsend, version) a version

:class:`~pscalib.store.native.NativeBackend` reads and writes the pscalib format; the
legacy reader (:mod:`pscalib.store.legacy`) implements the read methods for files of the
original LCLS DCS. The conformance tests run the same checks against every backend.

A new storage engine is one new module with a subclass of :class:`WritableBackend` (or of
:class:`Backend` for a read-only format) and one entry in :mod:`pscalib.store.backends`.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

import numpy as np

from ..errors import CorruptStoreError, PscalibError
from ..txn.atomic import TMP_MARK, os_error

from . import layout as L
from .history import HistoryRecord
from .outarray import copy_into
from .payload import Payload
from .records import LogRow, LogTail, TagRow, VersionRow
from .states import StateInfo
from .tombstones import Tombstone

Key = Tuple

__all__ = ["Backend", "WritableBackend", "RangeTable", "VersionInfo", "Key", "H5_ERRORS",
           "corrupt_guard", "store_error", "describe_key"]

#: What h5py raises on damaged files (besides segfaults and hangs, handled elsewhere).
H5_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError)


def describe_key(key: Key) -> str:
    """``version 3 of pedestals/<range>``: a version key in messages."""
    return f"version {key[3]} of {key[0]}/{L.range_name(key[1], key[2])}"


def corrupt_guard(advice: str) -> Callable:
    """Decorator for backend read methods: h5py failures become CorruptStoreError.

    The message names the file (``self.filename``), the operation and its first argument,
    followed by ``advice``.
    """
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except PscalibError:
                raise
            except H5_ERRORS as exc:
                raise CorruptStoreError(
                    f"{self.filename}: cannot {method.__name__.replace('_', ' ')} "
                    f"{'/'.join(str(a) for a in args[:1])}: {exc}; {advice}") from exc
        return wrapper
    return decorate


def store_error(exc: BaseException, filename: str, action: str) -> PscalibError:
    """The pscalib error for an h5py failure while changing the store ``filename``.

    StoreIOError for a failed write (disk full, file size limit: HDF5 puts the C errno only
    in its message), CorruptStoreError for anything else (the file contradicts itself).
    """
    if isinstance(exc, PscalibError):
        return exc
    folder, base = os.path.split(str(filename))
    if TMP_MARK in base:  # name the store, not its private copy
        base = base[1:base.index(TMP_MARK)]
    name = os.path.join(folder, base)
    code = re.search(r"errno = (\d+)", str(exc))
    if code and getattr(exc, "errno", None) is None:
        exc = OSError(int(code.group(1)), os.strerror(int(code.group(1))))
    if isinstance(exc, OSError) and exc.errno is not None:
        return os_error(exc, "write", name)
    return CorruptStoreError(
        f"{name}: cannot {action}: {exc}; run 'dcs verify' on the file and restore it from a "
        f"copy if it is damaged (nothing was changed)")


class RangeTable(NamedTuple):
    """All ranges of one ctype: parallel int64 arrays (unordered)."""
    tsbegin: np.ndarray
    tsend: np.ndarray
    defaultv: np.ndarray

    def row(self, tsbegin: int, tsend: int) -> Optional[int]:
        """Index of the range ``(tsbegin, tsend)`` in the arrays, or None if absent."""
        hit = np.nonzero((self.tsbegin == tsbegin) & (self.tsend == tsend))[0]
        return int(hit[0]) if len(hit) else None


class VersionInfo(NamedTuple):
    version: int
    tsprod: int
    kind: str            # 'ndarray' or 'text'
    sha256: Optional[str]
    dtype: Optional[np.dtype]
    shape: Optional[Tuple[int, ...]]
    nbytes: int


class Backend:
    """Abstract read interface (see module docstring)."""

    #: True when range ends are inclusive (legacy DCS files); False for half-open.
    end_inclusive: bool = False
    #: True if the format can be written by pscalib (native); False for read-only formats.
    writable_format: bool = False
    #: True if this backend object has its file open for writing (inside a transaction).
    writable: bool = False
    #: Human-readable format name, e.g. 'pscalib-dcs v1' or 'legacy LCLS DCS'.
    format_description: str = ""
    #: The file read (named in error messages).
    filename: str = ""
    #: Writable backends: the ranges ``(ctype, tsbegin, tsend)`` and whole ctypes
    #: ``(ctype,)`` whose versions or states this object changed (None: not known; the
    #: version log then compares every version of the file).
    touched: Optional[Set[tuple]] = None

    def meta(self) -> Dict[str, Any]:
        """Root metadata: dettype, detid, detname, tscfile (ns), predecessor, successor."""
        raise NotImplementedError

    def ctypes(self) -> List[str]:
        raise NotImplementedError

    def has_ctype(self, ctype: str) -> bool:
        return ctype in self.ctypes()

    def range_table(self, ctype: str) -> RangeTable:
        raise NotImplementedError

    def versions(self, ctype: str, tsbegin: int, tsend: int) -> List[int]:
        raise NotImplementedError

    def versions_by_range(self, ctype: str) -> Dict[Tuple[int, int], List[int]]:
        """``{(tsbegin, tsend): sorted version numbers}`` of every range of ``ctype``: one
        call for overviews of many ranges (backends may read it faster than range by
        range)."""
        tab = self.range_table(ctype)
        return {(b, e): self.versions(ctype, b, e)
                for b, e in zip(tab.tsbegin.tolist(), tab.tsend.tolist())}

    def version_info(self, key: Key) -> VersionInfo:
        raise NotImplementedError

    def version_sha256(self, key: Key) -> Optional[str]:
        """The version's ``sha256`` (None if it has none); backends may answer without
        reading the payload's dataset (the change log asks it for every changed range)."""
        return self.version_info(key).sha256

    def version_stamp(self, key: Key) -> Tuple[int, Optional[str]]:
        """``(tsprod, sha256)`` of a version (the version log records them for each new
        version; a writer answers for the versions it created without reading them)."""
        info = self.version_info(key)
        return info.tsprod, info.sha256

    def payload(self, key: Key) -> Payload:
        raise NotImplementedError

    def payload_into(self, key: Key, out: Any) -> np.ndarray:
        """Read an array payload into the caller's array ``out`` and return it (see
        :mod:`pscalib.store.outarray`). This default reads a new array and copies it;
        backends with a direct read override it."""
        return copy_into(self.payload(key), out, describe_key(key))

    def dictpars(self, key: Key) -> Dict[str, Any]:
        raise NotImplementedError

    def history(self, key: Key) -> List[HistoryRecord]:
        raise NotImplementedError

    def version_state(self, key: Key) -> StateInfo:
        """State of a version; formats without states (legacy DCS) have only valid ones."""
        return StateInfo("valid")

    def tombstones(self) -> List[Tombstone]:
        """Records of deleted objects (none for formats without them)."""
        return []

    def changelog(self) -> Tuple[Optional[int], List[LogRow]]:
        """``(start, rows)`` of the change log (``(None, [])``: the format has none)."""
        return None, []

    def versionlog(self) -> Tuple[Optional[int], List[VersionRow]]:
        """``(start, rows)`` of the version log (``(None, [])``: the file has none)."""
        return None, []

    def log_tails(self) -> Tuple[LogTail, LogTail]:
        """``(start, rows, last row)`` of the change log and of the version log, without
        reading them whole (``(None, 0, None)``: no such log)."""
        return (None, 0, None), (None, 0, None)

    def tag_rows(self) -> List[TagRow]:
        """Rows of the tags stored in the file (none for formats without tags)."""
        return []

    def close(self) -> None:
        raise NotImplementedError


class WritableBackend(Backend):
    """Abstract read and write interface of a format pscalib can change.

    A store is changed only inside a transaction (:mod:`pscalib.txn`): the front opens the
    transaction's private copy with :meth:`open_for_write`, calls the write methods, then
    :meth:`finish`; the copy is renamed over the store on commit. Write
    methods do no validation and record no history of their own (the
    :class:`~pscalib.store.writer.StoreWriter` above does both); they raise
    :class:`~pscalib.errors.StoreIOError` for a failed write (disk full) and
    :class:`~pscalib.errors.CorruptStoreError` when the file contradicts itself.
    """

    writable_format = True

    # ------------------------------------------------------------- whole files
    @classmethod
    def create_file(cls, path: Path, dettype: str, detid: str, detname: str,
                    tscfile: int) -> None:
        """Write the new, empty store file ``path`` (with its ``create_store`` record)."""
        raise NotImplementedError

    @classmethod
    def open_for_write(cls, path: Path) -> "WritableBackend":
        """Open the (private copy) ``path`` for changing."""
        raise NotImplementedError

    @classmethod
    def open_fileobj(cls, fileobj: Any, name: Path, write: bool) -> "WritableBackend":
        """Open a store through a Python file object (the in-place engine's
        :class:`~pscalib.txn.overlay.OverlayFile`, or a reader's journal view)."""
        raise NotImplementedError

    def set_format_inplace(self) -> None:
        """Mark the file as the in-place format (before its rewrite with an engine block)."""
        raise NotImplementedError

    @staticmethod
    def rewrite_file(src: Path, dst: Path) -> None:
        """Copy ``src`` compactly into the new file ``dst`` (reclaims deleted space)."""
        raise NotImplementedError

    @staticmethod
    def verify_file(path: Path, rep: Any, checksums: bool = True) -> None:
        """Add every problem of the file ``path`` to ``rep`` (a
        :class:`~pscalib.store.nativecheck.VerifyReport`); never changes the file."""
        raise NotImplementedError

    def check_safe(self, name: Any) -> None:
        """Raise CorruptStoreError if the file refers to data outside itself or claims sizes
        it cannot hold (:mod:`pscalib.store.safety`); ``name`` is the file named."""
        raise NotImplementedError

    def finish(self) -> None:
        """Flush and close the file before the commit; raises OSError or RuntimeError if a
        write failed (unlike :meth:`close`, which never raises)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ objects
    def set_meta(self, name: str, value: Any) -> None:
        """Set (or with None remove) a root metadata item (``predecessor`` ...)."""
        raise NotImplementedError

    def create_ctype(self, ctype: str) -> None:
        raise NotImplementedError

    def delete_ctype(self, ctype: str) -> None:
        raise NotImplementedError

    def create_range(self, ctype: str, tsbegin: int, tsend: int) -> None:
        """Add an empty range (default version 0) to ``ctype``'s range table."""
        raise NotImplementedError

    def delete_range(self, ctype: str, tsbegin: int, tsend: int) -> None:
        raise NotImplementedError

    def set_default(self, ctype: str, tsbegin: int, tsend: int, version: int) -> None:
        raise NotImplementedError

    def last_version(self, ctype: str, tsbegin: int, tsend: int) -> int:
        """The highest version number ever used in the range (deleted ones included)."""
        raise NotImplementedError

    def create_version(self, key: Key, data: Payload, tsprod: int, sha256: str,
                       link_to: Optional[Key] = None) -> None:
        """Write a version; with ``link_to`` it shares that version's stored payload."""
        raise NotImplementedError

    def delete_version(self, key: Key) -> None:
        raise NotImplementedError

    def set_par(self, key: Key, name: str, value: Any) -> None:
        raise NotImplementedError

    def del_par(self, key: Key, name: str) -> None:
        raise NotImplementedError

    def append_history(self, key: Key, action: str, record: str, *,
                       tsns: Optional[int] = None, user: Optional[str] = None,
                       host: Optional[str] = None) -> HistoryRecord:
        """Append a record to the history of ``key`` (time, user, host default to now)."""
        raise NotImplementedError

    # ------------------------------------------- states and tombstones (format 2)
    def upgrade_format(self) -> bool:
        """Make the file able to hold states and tombstones; True if it changed."""
        raise NotImplementedError

    def upgrade_to_table(self) -> bool:
        """Convert the file to the newest format (``dcs upgrade``); True if it was older."""
        raise NotImplementedError

    def set_state(self, key: Key, info: StateInfo) -> None:
        """Write the state attributes of a version."""
        raise NotImplementedError

    def add_tombstones(self, rows: List[Tombstone]) -> int:
        """Append records of deletions; returns how many were written."""
        raise NotImplementedError

    def set_last_version(self, ctype: str, tsbegin: int, tsend: int, version: int) -> None:
        """Set the range's highest-ever version number (a re-created range continues)."""
        raise NotImplementedError

    def append_changelog(self, rows: List[LogRow], start: Optional[int] = None) -> int:
        """Append change-log rows (``start``: the start time of a new log)."""
        raise NotImplementedError

    def append_versionlog(self, rows: List[VersionRow], start: Optional[int] = None) -> int:
        """Append version-log rows (``start``: the start time of a new log)."""
        raise NotImplementedError

    def write_tag_rows(self, rows: List[TagRow]) -> None:
        """Replace the file's tag rows."""
        raise NotImplementedError

    # ----------------------------------------------------- payload deduplication
    def find_identical(self, sha256: str, payload: Payload) -> Optional[Key]:
        """Key of a stored version whose payload equals ``payload`` (bytes), or None."""
        raise NotImplementedError

    def index_payload(self, sha256: str, key: Key) -> None:
        """Record the checksum of the version just created (for :meth:`find_identical`)."""
        raise NotImplementedError

    def forget_payloads(self, ctype: str, tsbegin: Optional[int] = None,
                        tsend: Optional[int] = None, version: Optional[int] = None) -> None:
        """Drop the checksum records of a deleted ctype, range or version."""
        raise NotImplementedError

    def rebuild_payload_index(self) -> None:
        """Rebuild the checksum records from the stored versions."""
        raise NotImplementedError
