"""DCStore: one detector's calibration store, the public front of the store model.

The class holds the DCS design's API: metadata, calibration types, ``get`` and the
accessors, and the signatures of the management methods, which delegate:

* opening, refresh, close, transactions: :class:`~pscalib.store.storefile.StoreFile` (its
  base class), with name resolution in :mod:`pscalib.paths` and the backend registry in
  :mod:`pscalib.store.backends`;
* lookups: :class:`~pscalib.store.selection.SelectionCache`;
* every change: :class:`~pscalib.store.writer.StoreWriter` (``cs.writer()`` inside
  ``with cs.transaction():``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import (CtypeNotFoundError, InvalidTimeError,
                      RangeNotFoundError, VersionNotFoundError)
from ..names import validate_ctype, validate_detname
from ..runs import add_by_runs
from ..timestamps import OPEN_END, TimeLike, format_ns, to_ns, to_ns_or_none
from . import layout as L
from .accessors import CtypeAccessors
from .lookups import TimedLookups
from .backend import RangeTable
from .backends import open_backend
from .dcobjects import DCRange, DCType, DCVersion
from .states import VALID
from .storefile import StoreFile
from .tombstones import Tombstone
from .writer import AddResult, add_constants

__all__ = ["DCStore", "open_backend", "AddResult", "register_url_store"]

PathLike = Union[str, Path]


#: The class DCStore("http://...", name) gives; pscalib.remote registers RemoteStore here
#: (a registry, not an import: pscalib.remote builds on this module).
_URL_STORE: List[type] = []


def register_url_store(cls: type) -> None:
    """Make ``DCStore("http://host:port", name)`` (or https) return a ``cls`` instance."""
    _URL_STORE[:] = [cls]


def _new_store(cls, cpath: Any = None, *args: Any, **kwargs: Any):
    if (cls is DCStore and _URL_STORE and isinstance(cpath, str)
            and cpath.startswith(("http://", "https://"))):
        cls = _URL_STORE[0]  # a subclass: Python then calls its __init__ with these args
    return object.__new__(cls)


class DCStore(StoreFile, TimedLookups, CtypeAccessors):
    """One detector's calibration store (one HDF5 file).

    Parameters
    ----------
    cpath
        A store file, or a calib directory (with ``detname``), or None for the configured
        places in the search order ``PSCALIB_SEARCH_ORDER`` (default: the experiment
        workspace, then the repository; see :mod:`pscalib.paths`).
    detname
        Detector name ``<dettype>-<detid>`` or an alias; optional when ``cpath`` is a file.
    mode
        ``'r'`` read-only (default); ``'a'`` read and change, creating the file if missing;
        ``'x'`` create, failing if the file exists. (``'w'`` is refused: it would truncate.)
    lock_timeout
        Seconds a writer waits for the lock (default ``PSCALIB_LOCK_TIMEOUT`` or 120).
    tsp
        Time for resolving a time-dependent alias in ``detname``.

    Examples
    --------
    >>> with DCStore("calib/cspad/cspad-0001.h5", mode="a") as cs:   # doctest: +SKIP
    ...     cs.add_constants("pedestals", peds, "2024-05-01T00:00:00")
    ...     peds_now = cs.get("pedestals", "2024-06-01T12:00:00")
    """

    __slots__ = ("_next",)  # stores of later places of the search order (resolver)

    def __new__(cls, *args: Any, **kwargs: Any) -> "DCStore":
        return _new_store(cls, *args, **kwargs)  # DCStore("http://..."): register_url_store

    # ------------------------------------------------------------------ metadata
    def _meta(self) -> Dict[str, Any]:
        return self._backend_for_read().meta()

    def dettype(self) -> str:
        return self._meta()[L.A_DETTYPE]

    def detid(self) -> str:
        return self._meta()[L.A_DETID]

    def detname(self) -> str:
        return self._meta()[L.A_DETNAME]

    def tscfile(self) -> int:
        """Creation time of the file, int ns since the epoch."""
        return self._meta()[L.A_TSCFILE]

    def predecessor(self) -> Optional[str]:
        return self._meta()[L.A_PREDECESSOR]

    def successor(self) -> Optional[str]:
        return self._meta()[L.A_SUCCESSOR]

    def _set_link(self, which: str, detname: Optional[str]) -> None:
        if detname is not None:
            validate_detname(detname)
        with self.transaction():
            be = self.writer()
            old = be.meta()[which]
            be.set_meta(which, detname)
            be.append_history((), f"set_{which}", f"{old!r} -> {detname!r}")

    def set_predecessor(self, detname: Optional[str]) -> None:
        """Set (or with None remove) the detector this one replaced."""
        self._set_link(L.A_PREDECESSOR, detname)

    def set_successor(self, detname: Optional[str]) -> None:
        """Set (or with None remove) the detector that replaced this one."""
        self._set_link(L.A_SUCCESSOR, detname)

    def _describe(self) -> str:
        return f"store {self.path}"

    def format_version(self) -> int:
        return int(getattr(self._backend_for_read(), "format_version", 0))

    # ------------------------------------------------------------------ types
    def ctypes(self) -> List[str]:
        """Names of the calibration types in the store, sorted."""
        return self._backend_for_read().ctypes()

    def ctypeobj(self, ctype: str) -> DCType:
        """The :class:`DCType` of that name (error if absent)."""
        self._require_ctype(validate_ctype(ctype))
        return DCType(self, ctype)

    __getitem__ = ctypeobj

    def __contains__(self, ctype: object) -> bool:
        return isinstance(ctype, str) and self._backend_for_read().has_ctype(ctype)

    def __iter__(self):
        return iter(self.ctypes())

    def _require_ctype(self, ctype: str) -> None:
        if not self._backend_for_read().has_ctype(ctype):
            have = self.ctypes()
            raise CtypeNotFoundError(f"{self.path} has no calibration type {ctype!r}; it has "
                                     f"{', '.join(have) if have else 'none'}")

    def _require_range(self, key: tuple) -> None:
        self._require_ctype(key[0])
        tab = self._table(key[0])
        if tab.row(key[1], key[2]) is None:
            raise RangeNotFoundError(f"{key[0]!r} has no range {L.range_name(key[1], key[2])}")

    def _require_version(self, key: tuple) -> None:
        self._require_range(key[:3])
        if key[3] not in self._backend_for_read().versions(*key[:3]):
            raise VersionNotFoundError(f"range {L.range_name(key[1], key[2])} of {key[0]!r} "
                                       f"has no version {key[3]}")

    def add_ctype(self, ctype: str) -> DCType:
        """Create an empty calibration type (``add_constants`` does this as needed)."""
        validate_ctype(ctype)
        with self.transaction():
            self.writer().ensure_ctype(ctype)
        return DCType(self, ctype)

    def del_ctype(self, ctype: str) -> None:
        """Delete a calibration type with all its ranges and versions."""
        validate_ctype(ctype)
        with self.transaction():
            self.writer().delete_ctype(ctype)

    # ------------------------------------------------------------------ lookup
    def _table(self, ctype: str) -> RangeTable:
        return self._lookup.table(ctype)

    def _select(self, ctype: str, t: int, include: frozenset = frozenset()
                ) -> Tuple[int, int, int]:
        return self._lookup.select(ctype, t, include)

    def tombstones(self) -> List[Tombstone]:
        """Records of every deletion in this store (docs/format.rst, "Tombstones")."""
        return self._backend_for_read().tombstones()

    def _default_of(self, rkey: tuple) -> int:
        return self._lookup.default_of(rkey)

    def close(self) -> None:
        """Close the file (and the later places' stores a lookup opened)."""
        super().close()
        for cs in getattr(self, "_next", None) or ():
            cs.close()
        self._next = None

    # ------------------------------------------------------------------ changes
    def add_constants(self, ctype: str, data: Any, tsbegin: Optional[TimeLike] = None,
                      tsend: Optional[TimeLike] = None, dictpars: Optional[Dict[str, Any]] = None,
                      comment: Optional[str] = None, *, make_default: bool = True,
                      tsprod: Optional[TimeLike] = None, version: Optional[int] = None,
                      force: bool = False, state: str = VALID, runs: Any = None,
                      experiment: Optional[str] = None) -> AddResult:
        """Add a new version of constants, creating the type and range as needed.

        Deduplication (see docs/exchange.rst): if the range's current default version
        already holds an identical payload with the same dictpars, nothing is added and the
        existing default version is returned with ``unchanged=True`` (unless ``force``). A
        payload identical to one stored anywhere else in the file is stored once, as an
        HDF5 hard link; the new version keeps its own metadata.

        Parameters
        ----------
        ctype
            Calibration type (``[a-z0-9_]+``).
        data
            numpy array (numeric or bool, any shape) or str (text such as geometry).
        tsbegin, tsend
            Validity range; ``tsend=None`` means open (valid forever). Half-open:
            ``tsbegin <= t < tsend``.
        dictpars
            Parameters of the new version.
        comment
            Text added to the history record.
        make_default
            Make the new version the range's default (the first version of a range always
            becomes the default).
        tsprod
            Production time stamp (default: now).
        version
            Explicit version number (default: one above the highest ever used in the range).
        force
            Add a new version even if it is identical to the range's current default.
        state
            ``"valid"`` or ``"candidate"`` (never the default; ``get`` with
            ``include=("candidate",)``; ``DCVersion.validate()`` makes it valid).
        runs, experiment
            Instead of ``tsbegin``/``tsend``: inclusive runs ``(17, 25)``/``'17-25'`` or
            ``(17, None)``/``'17-end'`` of ``experiment``'s run table (default as for
            :meth:`get`); the range keeps dictpars ``runbegin``/``runend``/``experiment``.

        Returns
        -------
        AddResult
            A :class:`DCVersion` (equal to any other handle on the same version) with the
            extra attributes ``unchanged`` (True if nothing was added because the default
            is identical) and ``linked_to`` (key of the version whose stored payload the
            new version shares, or None).
        """
        kw: Dict[str, Any] = dict(dictpars=dictpars, comment=comment, make_default=make_default,
                                  tsprod=tsprod, version=version, force=force,
                                  state=state)
        if runs is not None or experiment is not None:
            return add_by_runs(self, ctype, data, runs, experiment, tsbegin, tsend, **kw)
        if tsbegin is None:
            raise InvalidTimeError("add_constants needs the begin of the validity range "
                                   "(tsbegin) or runs=(first, last)")
        return add_constants(self, ctype, data, tsbegin, tsend, **kw)

    def _add_range(self, ctype: str, tsbegin: TimeLike, tsend: Optional[TimeLike]) -> DCRange:
        validate_ctype(ctype)
        b = to_ns(tsbegin)
        e = to_ns_or_none(tsend)
        e = OPEN_END if e is None else e
        if e <= b:
            raise InvalidTimeError(f"range end {format_ns(e)} is not after its begin "
                                   f"{format_ns(b)}")
        with self.transaction():
            return self.writer().add_range(ctype, b, e)

    def _del_range(self, rng: DCRange) -> None:
        with self.transaction():
            self.writer().delete_range(*rng._key)

    def _set_default(self, rkey: tuple, version: int) -> None:
        with self.transaction():
            ctype, b, e = rkey
            self.writer().set_default(ctype, b, e, version)

    def _del_version(self, ver: DCVersion) -> None:
        with self.transaction():
            self.writer().delete_version(ver._key)

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else self.mode
        return f"<DCStore {self.path} ({state})>"
