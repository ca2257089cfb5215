"""The read interface every store backend provides.

The model classes (:mod:`pscalib.store.model`) never touch HDF5 objects directly; they ask
a backend. Objects are addressed by *keys*::

    ()                               the store (file root)
    (ctype,)                         a calibration type
    (ctype, tsbegin, tsend)          a validity range (int ns)
    (ctype, tsbegin, tsend, version) a version

:class:`~pscalib.store.native.NativeBackend` reads and writes the pscalib format; the
legacy reader (:mod:`pscalib.legacy`) implements the same read methods for files of the
original LCLS DCS. The conformance tests run the same read checks against every backend.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from ..errors import CorruptStoreError, PscalibError

from .history import HistoryRecord
from .payload import Payload
from .states import StateInfo
from .tombstones import Tombstone

Key = Tuple

__all__ = ["Backend", "RangeTable", "VersionInfo", "Key", "H5_ERRORS", "corrupt_guard"]

#: What h5py raises on damaged files (besides segfaults and hangs, handled elsewhere).
H5_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError)


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

    def version_info(self, key: Key) -> VersionInfo:
        raise NotImplementedError

    def payload(self, key: Key) -> Payload:
        raise NotImplementedError

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

    def close(self) -> None:
        raise NotImplementedError
