"""DCStore: one detector's calibration file, its lookup and its management methods."""
from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import h5py
import numpy as np

from ..errors import (CorruptStoreError, CtypeNotFoundError, InvalidInputError,
                      InvalidPayloadError, NoValidConstantsError,
                      PscalibError, RangeNotFoundError, ReadOnlyError, StoreExistsError,
                      StoreFormatError, StoreNotFoundError, StorePermissionError,
                      VersionNotFoundError, InvalidTimeError, DeprecatedVersionError)
from ..names import split_detname, validate_ctype, validate_detname, validate_parkey
from ..timestamps import OPEN_END, TimeLike, format_ns, now_ns, to_ns, to_ns_or_none
from ..txn.atomic import os_error
from ..txn.transaction import FileTransaction, check_free_space
from . import layout as L
from .backend import Backend, RangeTable
from .dcbase import DCBase
from .heapcheck import check_head
from .dcobjects import DCRange, DCType, DCVersion, _parse_vers
from .history import whoami
from .native import H5_ERRORS, NativeBackend, h5path as h5path_of, is_native, store_error
from .states import StateInfo
from .fastread import open_readonly
from . import payindex
from . import stateops
from .states import ADD_STATES, CANDIDATE, DEPRECATED, VALID, parse_include
from .tombstones import Tombstone
from .payload import Payload, checksum, normalize_payload, payloads_equal
from .selection import RangeIndex
from .values import decode_par, encode_par, pars_equal

__all__ = ["DCStore", "open_backend"]

PathLike = Union[str, Path]


def _describe_payload(data: Payload) -> str:
    if isinstance(data, str):
        return f"text, {len(data.encode('utf-8'))} bytes"
    return f"{data.dtype} {tuple(data.shape)}"


def open_backend(path: Path) -> Backend:
    """Open ``path`` read-only and return the backend that understands it."""
    try:
        f = open_readonly(path)  # h5py.File(path, "r", locking=False), ~20 us faster
    except FileNotFoundError:
        raise StoreNotFoundError(f"store file {path} does not exist") from None
    except PermissionError:
        raise StorePermissionError(f"no permission to read {path}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a directory, not a store file") from None
    except OSError as exc:
        size = path.stat().st_size if path.exists() else -1
        what = "an empty file" if size == 0 else "not an HDF5 file or a damaged one"
        raise StoreFormatError(f"{path} is {what} ({exc}); is it a calibration store?") from None
    try:
        check_head(path)  # before HDF5 reads any string: a damaged heap would hang it
        if is_native(f):
            return NativeBackend(f)
        from ..legacy import is_legacy, LegacyBackend  # optional reader of original DCS files
        if is_legacy(f):
            return LegacyBackend(f)
    except ImportError:
        pass
    except PscalibError:
        f.close()
        raise
    except Exception as exc:  # HDF5 failing on damaged metadata (checksums, heaps)
        f.close()
        raise CorruptStoreError(f"{path} is damaged: {exc}; restore it from a copy") from None
    except BaseException:
        f.close()
        raise
    f.close()
    raise StoreFormatError(
        f"{path} is an HDF5 file but not a calibration store (no '{L.A_FORMAT}' root "
        f"attribute and not an original LCLS DCS file)")


class DCStore(DCBase):
    """One detector's calibration store (one HDF5 file).

    Parameters
    ----------
    cpath
        A store file, or a calib directory (with ``detname``), or None for the configured
        repository (see :mod:`pscalib.paths`).
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

    __slots__ = ("path", "mode", "resolved", "_backend", "_lock_timeout", "_txn",
                 "_txn_depth", "_compact_on_commit", "_tables", "_stat", "_file_mode",
                 "_txn_error")

    def __init__(self, cpath: Optional[PathLike] = None, detname: Optional[str] = None,
                 mode: str = "r", *, lock_timeout: Optional[float] = None,
                 tsp: Optional[TimeLike] = None, file_mode: Optional[int] = None):
        super().__init__(self, ())
        if mode == "w":
            raise InvalidInputError("mode 'w' would truncate an existing store; use 'a' to "
                                    "open or create, or 'x' to create a new one")
        if mode not in ("r", "a", "x"):
            raise InvalidInputError(f"mode must be 'r', 'a' or 'x', got {mode!r}")
        if cpath is not None and not isinstance(cpath, (str, os.PathLike)):
            raise InvalidInputError(f"store path must be a str or path, got "
                                    f"{type(cpath).__name__} {cpath!r}")
        if lock_timeout is not None and (isinstance(lock_timeout, bool) or not isinstance(
                lock_timeout, (int, float)) or not lock_timeout >= 0):  # NaN fails >= too
            raise InvalidInputError(f"lock_timeout must be a number of seconds >= 0, got "
                                    f"{lock_timeout!r}")
        from ..paths import resolve_store
        try:
            self.resolved = resolve_store(cpath, detname, mode=mode, tsp=tsp)
        except OSError as exc:  # stat() of a hostile path, e.g. longer than NAME_MAX
            if isinstance(exc, PscalibError):
                raise
            if exc.errno == errno.ENAMETOOLONG:
                raise InvalidInputError(f"store path {str(cpath)[:80]!r}... is too long for "
                                        f"the file system") from None
            raise os_error(exc, "open", cpath) from None
        self.path: Path = Path(self.resolved.path)
        self.mode = mode
        self._lock_timeout = lock_timeout
        # explicit file_mode wins, else PSCALIB_FILE_MODE via the resolver's config
        self._file_mode = file_mode if file_mode is not None else self.resolved.file_mode
        self._backend: Optional[Backend] = None
        self._txn: Optional[FileTransaction] = None
        self._txn_depth = 0
        self._txn_error: Optional[BaseException] = None
        self._compact_on_commit = False
        self._tables: Dict[str, Tuple[RangeTable, RangeIndex]] = {}
        self._stat: Optional[tuple] = None
        if mode == "x" and self.path.exists():
            raise StoreExistsError(f"{self.path} already exists; open it with mode='a'")
        if mode in ("a", "x") and not self.path.exists():
            self._create(self.resolved.detname)
        self._open_reader()
        if mode != "r" and not self._backend.writable_format:  # type: ignore[union-attr]
            desc = self._backend_desc()  # before close() drops the backend
            self.close()
            raise ReadOnlyError(f"{self.path} is in the {desc} and can only be "
                                f"read; convert it with 'dcs import-legacy'")

    # ------------------------------------------------------------------ opening
    def _backend_desc(self) -> str:
        return getattr(self._backend, "format_description", "an unknown format")

    def _create(self, detname: Optional[str]) -> None:
        if detname is None:
            stem = self.path.name[:-3] if self.path.name.endswith(".h5") else self.path.stem
            try:
                detname = validate_detname(stem)
            except PscalibError as exc:
                raise InvalidInputError(
                    f"cannot create {self.path}: give detname=... (the file name is not a "
                    f"detector name: {exc})") from None
        dettype, detid = split_detname(detname)
        parent = self.path.parent
        if not parent.is_dir():
            try:
                from ..paths import make_dirs
                make_dirs(parent)
            except ImportError:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise os_error(exc, "create directory", parent) from None
        txn = FileTransaction(self.path, self._lock_timeout, new_file_mode=self._file_mode)
        txn.begin()
        if txn.existed:  # another process created it while we waited for the lock
            txn.abort()
            return
        try:
            with h5py.File(txn.tmp, "x", libver=L.LIBVER, locking=False) as f:
                tsc = now_ns()
                NativeBackend.init_root(f, dettype, detid, detname, tsc)
                NativeBackend(f).append_history((), "create_store",
                                                f"created store for {detname}")
        except BaseException as exc:
            txn.abort()
            if isinstance(exc, OSError):
                raise os_error(exc, "create", self.path) from None
            raise
        txn.commit()

    def _open_reader(self) -> None:
        self._backend = open_backend(self.path)
        try:
            st = os.stat(self.path)
            self._stat = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            self._stat = None
        self._tables.clear()

    def refresh(self) -> bool:
        """Reopen the file if another process changed it; True if it did.

        An open store keeps reading a consistent snapshot (the file it opened) until it is
        refreshed or reopened.
        """
        if self._txn is not None:
            return False
        try:
            st = os.stat(self.path)
            now = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            now = None
        if now == self._stat:
            return False
        self._close_backend()
        self._open_reader()
        return True

    def _close_backend(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self._tables.clear()

    def close(self) -> None:
        """Close the file (a store in a transaction cannot be closed)."""
        if self._txn is not None:
            raise InvalidInputError("cannot close a store inside a transaction")
        self._close_backend()

    def __enter__(self) -> "DCStore":
        return self

    def __exit__(self, *exc) -> None:
        if self._txn is None:
            self.close()

    def _backend_for_read(self) -> Backend:
        if self._backend is None:
            raise InvalidInputError(f"store {self.path} is closed")
        return self._backend

    @property
    def backend(self) -> Backend:
        """The backend object (native or legacy) reading this file."""
        return self._backend_for_read()

    # ------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def transaction(self) -> Iterator["DCStore"]:
        """Group changes into one atomic, locked transaction.

        On normal exit every change appears in the file at once; on an exception (or a
        kill) the file stays exactly as it was. Nested calls join the outer transaction; if
        one of them fails, the outer transaction is rolled back too (even if the caller
        caught the error), because the failed change may have been half applied.
        """
        if self._txn is not None:
            self._txn_depth += 1
            try:
                yield self
            except BaseException as exc:
                if self._txn_error is None:
                    self._txn_error = exc
                raise
            finally:
                self._txn_depth -= 1
            return
        if self.mode == "r":
            raise ReadOnlyError(f"{self.path} is open read-only; open it with mode='a' to "
                                f"change it")
        txn = FileTransaction(self.path, self._lock_timeout)  # may raise: reader stays open
        self._close_backend()
        self._txn_error = None
        try:
            txn.begin()
        except BaseException:
            self._open_reader()
            raise
        if not txn.existed:
            txn.abort()
            self._open_reader_or_missing()
            raise StoreNotFoundError(f"{self.path} was removed by another process")
        self._txn = txn
        f = None
        try:
            try:
                f = _open_copy(txn.tmp)
            except OSError as exc:
                raise os_error(exc, "open a copy of", self.path) from None
            self._backend = NativeBackend(f)
            try:
                yield self
            except OSError as exc:  # disk full / file too large while writing the copy
                if isinstance(exc, PscalibError) or exc.errno not in _SPACE_ERRNOS:
                    raise
                raise os_error(exc, "write", self.path) from None
            if self._txn_error is not None:
                err = self._txn_error
                err.add_note(f"(the whole transaction on {self.path} was rolled back)")
                raise err
            try:
                f.flush()
                f.close()
            except (OSError, RuntimeError) as exc:  # h5py reports a failed flush as either
                raise os_error(_as_oserror(exc), "write", self.path) from None
            txn.commit(compact=self._compact_on_commit)
        except BaseException:
            if f is not None:
                try:
                    f.close()
                except Exception:
                    pass
            txn.abort()
            raise
        finally:
            self._txn = None
            self._txn_error = None
            self._compact_on_commit = False
            self._backend = None
            self._open_reader_or_missing()

    def _open_reader_or_missing(self) -> None:
        try:
            self._open_reader()
        except StoreNotFoundError:
            self._backend = None

    def _writer(self) -> NativeBackend:
        if self._txn is None or not isinstance(self._backend, NativeBackend):
            raise RuntimeError("internal error: write outside a transaction")
        return self._backend

    def compact(self) -> Tuple[int, int]:
        """Rewrite the file to reclaim space of deleted objects; returns (before, after) bytes."""
        before = self.path.stat().st_size
        with self.transaction():
            self._compact_on_commit = True
            self._writer().append_history((), "compact", f"rewrote file ({before} bytes before)")
        return before, self.path.stat().st_size

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
            be = self._writer()
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
            self._ensure_ctype(ctype)
        return DCType(self, ctype)

    def _ensure_ctype(self, ctype: str) -> None:
        be = self._writer()
        if not be.has_ctype(ctype):
            be.create_ctype(ctype)
            be.append_history((), "add_ctype", ctype)
            self._tables.pop(ctype, None)

    def del_ctype(self, ctype: str) -> None:
        """Delete a calibration type with all its ranges and versions."""
        validate_ctype(ctype)
        with self.transaction():
            self._require_ctype(ctype)
            be = self._writer()
            n = len(be.range_table(ctype).tsbegin)
            stateops.bury(be, stateops.tombstones_for(be, (ctype,), f"del_ctype {ctype}"))
            be.delete_ctype(ctype)
            payindex.forget(be.f, ctype)
            be.append_history((), "del_ctype", f"{ctype} ({n} ranges)")
            self._tables.pop(ctype, None)
            self._compact_on_commit = True

    # ------------------------------------------------------------------ lookup
    def _table(self, ctype: str) -> RangeTable:
        return self._indexed(ctype)[0]

    def _indexed(self, ctype: str) -> Tuple[RangeTable, RangeIndex]:
        hit = self._tables.get(ctype)
        if hit is None:
            be = self._backend_for_read()
            try:
                tab = be.range_table(ctype)
            except Exception:
                self._require_ctype(ctype)  # a missing type is the usual cause: say so
                raise
            # empty ranges (defaultv 0) are not candidates of the selection rule
            live = tab.defaultv > 0
            idx = (RangeIndex(tab.tsbegin.tolist(), tab.tsend.tolist(), be.end_inclusive)
                   if live.all() else _LiveIndex(tab, live, be.end_inclusive))
            hit = (tab, idx)
            self._tables[ctype] = hit
        return hit

    def _select(self, ctype: str, t: int, include: frozenset = frozenset()
                ) -> Tuple[int, int, int]:
        if include:
            return self._select_including(ctype, t, include)
        tab, idx = self._indexed(ctype)
        i = idx.find(t)
        if i is None:
            raise NoValidConstantsError(
                f"no {ctype!r} constants valid at {format_ns(t)} in {self.path} "
                f"({len(tab.tsbegin)} ranges{_span(tab)})")
        return int(tab.tsbegin[i]), int(tab.tsend[i]), int(tab.defaultv[i])

    def _select_including(self, ctype: str, t: int, include: frozenset
                          ) -> Tuple[int, int, int]:
        """Selection with candidates: slow path (reads the version states of the type)."""
        be = self._backend_for_read()
        tab = self._table(ctype)
        eff = [stateops.effective_version(be, (ctype, int(b), int(e)), int(d), include)
               for b, e, d in zip(tab.tsbegin, tab.tsend, tab.defaultv)]
        live = np.array(eff, dtype=np.int64) > 0
        if not live.any():
            i = None
        else:
            i = _LiveIndex(tab, live, be.end_inclusive).find(t)
        if i is None:
            raise NoValidConstantsError(
                f"no {ctype!r} constants (valid or candidate) valid at {format_ns(t)} in "
                f"{self.path} ({len(tab.tsbegin)} ranges{_span(tab)})")
        return int(tab.tsbegin[i]), int(tab.tsend[i]), eff[i]

    def tombstones(self) -> List[Tombstone]:
        """Records of every deletion in this store (docs/format.rst, "Tombstones")."""
        return self._backend_for_read().tombstones()

    def _check_not_deprecated(self, key: tuple) -> None:
        st = self._backend_for_read().version_state(key)
        if st.state == DEPRECATED:
            raise DeprecatedVersionError(
                f"{stateops.describe(key)} is deprecated ({st.reason or 'no reason given'}; "
                f"by {st.user}): get never returns it; read it explicitly with "
                f"store[{key[0]!r}].rangeobj({L.range_name(key[1], key[2])!r})"
                f".versobj({key[3]}).calib()")

    def _default_of(self, rkey: tuple) -> int:
        tab = self._table(rkey[0])
        i = tab.row(rkey[1], rkey[2])
        if i is None:
            raise RangeNotFoundError(f"{rkey[0]!r} has no range {L.range_name(*rkey[1:3])}")
        return int(tab.defaultv[i])

    def get(self, ctype: str, tsp: TimeLike, vers: Any = None, *,
            tsprod: Optional[TimeLike] = None, include: Any = ()) -> Payload:
        """The constants of ``ctype`` valid at ``tsp``.

        Parameters
        ----------
        ctype
            Calibration type, e.g. ``'pedestals'``.
        tsp
            The time (any form :func:`pscalib.timestamps.to_ns` accepts).
        vers
            None for the range's default version, or a version number (``3``/``'v0003'``).
        tsprod
            Instead of ``vers``: the newest version of the range produced at or before this
            time (reproduce what was current then).
        include
            Extra states to consider: ``("candidate",)`` lets candidates be chosen (a
            range's newest candidate above its default replaces it). Deprecated versions
            are never chosen (see docs/format.rst, "Selection rule").

        Returns
        -------
        numpy.ndarray or str

        Raises
        ------
        NoValidConstantsError
            No range covers ``tsp`` (with a valid version, or a candidate if included).
        DeprecatedVersionError
            ``vers`` names a deprecated version.
        CtypeNotFoundError, VersionNotFoundError
        """
        validate_ctype(ctype)
        t = to_ns(tsp)
        if vers is not None and tsprod is not None:
            raise InvalidInputError("give either vers or tsprod, not both")
        inc = parse_include(include)
        b, e, v = self._select(ctype, t, inc)
        be = self._backend_for_read()
        if tsprod is not None:
            v = DCRange(self, ctype, b, e).version_at(tsprod, include=inc).version()
        elif vers is not None:
            v = _parse_vers(vers)
            if v not in be.versions(ctype, b, e):
                raise VersionNotFoundError(
                    f"range {L.range_name(b, e)} of {ctype!r} (valid at {format_ns(t)}) has no "
                    f"version {v}; it has {be.versions(ctype, b, e)}")
            self._check_not_deprecated((ctype, b, e, v))
        return be.payload((ctype, b, e, v))

    def version_at(self, ctype: str, tsp: TimeLike, vers: Any = None, *,
                   include: Any = ()) -> DCVersion:
        """The :class:`DCVersion` that :meth:`get` would read (same ``include`` rule)."""
        b, e, v = self._select(validate_ctype(ctype), to_ns(tsp), parse_include(include))
        rng = DCRange(self, ctype, b, e)
        ver = rng.versobj(v if vers is None else vers)
        if vers is not None:
            self._check_not_deprecated(ver._key)
        return ver

    def pedestals(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pedestals", tsp, vers)

    def pixel_status(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_status", tsp, vers)

    def pixel_rms(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_rms", tsp, vers)

    def pixel_gain(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_gain", tsp, vers)

    def pixel_mask(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_mask", tsp, vers)

    def pixel_bkgd(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_bkgd", tsp, vers)

    def common_mode(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("common_mode", tsp, vers)

    def geometry(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("geometry", tsp, vers)

    # ------------------------------------------------------------------ changes
    def add_constants(self, ctype: str, data: Any, tsbegin: TimeLike,
                      tsend: Optional[TimeLike] = None, dictpars: Optional[Dict[str, Any]] = None,
                      comment: Optional[str] = None, *, make_default: bool = True,
                      tsprod: Optional[TimeLike] = None, version: Optional[int] = None,
                      force: bool = False, state: str = VALID) -> DCVersion:
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
            ``"valid"`` (default) or ``"candidate"``: a candidate is never the default and
            is chosen by ``get`` only with ``include=("candidate",)``; ``validate()`` makes
            it production. ``make_default`` is ignored for candidates.

        Returns
        -------
        AddResult
            A :class:`DCVersion` (equal to any other handle on the same version) with the
            extra attributes ``unchanged`` (True if nothing was added because the default
            is identical) and ``linked_to`` (key of the version whose stored payload the
            new version shares, or None).
        """
        validate_ctype(ctype)
        payload = normalize_payload(data)
        b = to_ns(tsbegin)
        e = to_ns_or_none(tsend)
        e = OPEN_END if e is None else e
        if e <= b:
            raise InvalidTimeError(f"range end {format_ns(e)} is not after its begin {format_ns(b)}")
        tp = now_ns() if tsprod is None else to_ns(tsprod)
        if dictpars is not None and not isinstance(dictpars, dict):
            raise InvalidInputError(f"dictpars must be a dict, got {type(dictpars).__name__}")
        pars = dict(dictpars or {})
        for k, val in pars.items():
            validate_parkey(k)
            encode_par(k, val)
        if version is not None:
            version = _parse_vers(version)
        if comment is not None and not isinstance(comment, str):
            raise InvalidInputError("comment must be a string")
        if state not in ADD_STATES:
            raise InvalidInputError(f"a new version's state must be 'valid' or 'candidate', "
                                    f"got {state!r} (deprecate() retires an existing one)")
        if state == CANDIDATE:
            force = True  # the unchanged check compares with the (valid) default
        nbytes = len(payload.encode()) if isinstance(payload, str) else payload.nbytes
        check_free_space(self.path, nbytes)  # before hashing: a huge array fails fast
        try:
            sha = checksum(payload)
        except MemoryError:
            raise InvalidPayloadError(f"the array ({nbytes} bytes) does not fit in memory; "
                                      f"nothing was written") from None
        # The unchanged check reads the writer's private copy, never the read-only handle:
        # there its metadata reads would first trigger the whole-file heap scan (heapcheck),
        # which costs as much as the copy it would save. Inside the caller's transaction it
        # must answer here: raising _Unchanged there would roll back the whole transaction.
        if self._txn is not None and not force and version is None:
            same = _unchanged_key(self._writer(), ctype, b, e, sha, payload, pars)
            if same is not None:
                return AddResult(self, same, unchanged=True)
        try:
            with self.transaction():
                self._txn.check_space(nbytes)  # type: ignore[union-attr]
                return self._add_version(ctype, payload, b, e, tp, sha, pars, comment,
                                         make_default, version, force=force, state=state)
        except _Unchanged as exc:  # the transaction was aborted: the file is untouched
            return AddResult(self, exc.key, unchanged=True)
        except H5_ERRORS as exc:  # e.g. a damaged payload index met while writing
            if isinstance(exc, PscalibError):
                raise
            raise store_error(exc, self.path, f"add {ctype} constants to") from None

    def _add_version(self, ctype: str, payload: Payload, b: int, e: int, tp: int, sha: str,
                     pars: Dict[str, Any], comment: Optional[str], make_default: bool,
                     version: Optional[int], link_to: Optional[tuple] = None,
                     force: bool = True, state: str = VALID,
                     auto_default: bool = True) -> "AddResult":
        be = self._writer()
        if not force and version is None:  # checked before any write: abort leaves nothing
            same = _unchanged_key(be, ctype, b, e, sha, payload, pars)
            if same is not None:
                raise _Unchanged(same)
        self._ensure_ctype(ctype)
        rkey = (ctype, b, e)
        tab = be.range_table(ctype)
        exists = tab.row(b, e) is not None
        if not exists:
            self._create_range(be, ctype, b, e)
            current_default = 0
        else:
            current_default = self._default_in(tab, b, e)
        if version is None:
            version = be.last_version(ctype, b, e) + 1
        elif version in be.versions(ctype, b, e):
            raise InvalidInputError(f"range {L.range_name(b, e)} of {ctype!r} already has "
                                    f"version {version}")
        key = rkey + (version,)
        if link_to is None:
            link_to = payindex.find_identical(be.f, sha, payload)
        be.create_version(key, payload, tp, sha, link_to=link_to)
        if state != VALID:
            stateops.ensure_format(be)
            be.set_state(key, StateInfo(state, now_ns(),
                                        whoami(), comment or f"added as {state}"))
        payindex.add_row(be.f, sha, key)
        for k, val in pars.items():
            be.set_par(key, k, val)
        # only a valid version can be the default (the default invariant)
        becomes_default = state == VALID and auto_default and (make_default or
                                                               current_default == 0)
        if becomes_default:
            be.set_default(ctype, b, e, version)
        rec = (f"{L.version_name(version)} {_describe_payload(payload)} sha256:{sha[:16]} "
               f"tsprod {format_ns(tp)}{' (default)' if becomes_default else ''}"
               f"{'' if state == VALID else f' ({state})'}")
        if link_to is not None:
            rec += f" (payload shared with {payindex.h5path(link_to)})"
        if comment:
            rec += f" - {comment}"
        be.append_history(rkey, "add_version", rec)
        self._tables.pop(ctype, None)
        return AddResult(self, key, linked_to=link_to)

    @staticmethod
    def _default_in(tab: RangeTable, b: int, e: int) -> int:
        i = tab.row(b, e)
        return 0 if i is None else int(tab.defaultv[i])

    def _add_range(self, ctype: str, tsbegin: TimeLike, tsend: Optional[TimeLike]) -> DCRange:
        validate_ctype(ctype)
        b = to_ns(tsbegin)
        e = to_ns_or_none(tsend)
        e = OPEN_END if e is None else e
        if e <= b:
            raise InvalidTimeError(f"range end {format_ns(e)} is not after its begin {format_ns(b)}")
        with self.transaction():
            self._ensure_ctype(ctype)
            be = self._writer()
            tab = be.range_table(ctype)
            if tab.row(b, e) is not None:
                raise InvalidInputError(f"{ctype!r} already has range {L.range_name(b, e)}")
            self._create_range(be, ctype, b, e)
            self._tables.pop(ctype, None)
        return DCRange(self, ctype, b, e)

    @staticmethod
    def _create_range(be: NativeBackend, ctype: str, b: int, e: int) -> None:
        """A new range group; after a deletion its numbers continue above the deleted ones."""
        be.create_range(ctype, b, e)
        last = stateops.first_free_version(be, (ctype, b, e))
        note = ""
        if last:
            be.f[h5path_of((ctype, b, e))].attrs[L.A_LASTV] = np.int64(last)
            note = f" (re-created; numbers continue after v{last:04d}, see tombstones)"
        be.append_history((ctype,), "add_range", L.range_name(b, e) + note)

    def _del_range(self, rng: DCRange) -> None:
        with self.transaction():
            rng._require_exists()
            be = self._writer()
            vs = be.versions(*rng._key)
            stateops.bury(be, stateops.tombstones_for(
                be, rng._key, f"del_range {rng.range()} (versions {vs or 'none'})"))
            be.delete_range(*rng._key)
            payindex.forget(be.f, *rng._key)
            be.append_history((rng.ctype(),), "del_range",
                              f"{rng.range()} (versions {vs or 'none'})")
            self._tables.pop(rng.ctype(), None)
            self._compact_on_commit = True

    def _set_default(self, rkey: tuple, version: int) -> None:
        with self.transaction():
            self._require_range(rkey)
            be = self._writer()
            if version not in be.versions(*rkey):
                raise VersionNotFoundError(
                    f"cannot make version {version} the default of range "
                    f"{L.range_name(*rkey[1:3])} of {rkey[0]!r}: it has versions "
                    f"{be.versions(*rkey) or 'none'}")
            stateops.require_valid_default(be, rkey + (version,))
            old = self._default_of(rkey)
            if old == version:
                return
            be.set_default(*rkey, version)
            be.append_history(rkey, "set_default", f"v{old:04d} -> v{version:04d}")
            self._tables.pop(rkey[0], None)

    def _del_version(self, ver: DCVersion) -> None:
        with self.transaction():
            ver._require_exists()
            be = self._writer()
            rkey = ver._key[:3]
            old_default = self._default_of(rkey)
            stateops.bury(be, stateops.tombstones_for(
                be, ver._key, f"del_version {L.version_name(ver.version())}"))
            be.delete_version(ver._key)
            payindex.forget(be.f, *ver._key)
            note = ""
            if old_default == ver.version():
                new = stateops.fix_default(be, rkey, "deleted")
                note = (f"; default is now v{new:04d}" if new else
                        "; range has no valid version left and is ignored by get")
            be.append_history(rkey, "del_version", f"{L.version_name(ver.version())}{note}")
            self._tables.pop(rkey[0], None)
            self._compact_on_commit = True

    def _set_state(self, key: tuple, new: str, reason: str, make_default: bool = True
                   ) -> None:
        """DCVersion.validate/deprecate/set_state: one transaction (docs/format.rst)."""
        from .states import check_reason, check_state
        check_state(new)
        check_reason(reason)
        with self.transaction():
            self._require_version(key)
            stateops.change_state(self._writer(), key, new, reason, make_default)
            self._tables.pop(key[0], None)

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else self.mode
        return f"<DCStore {self.path} ({state})>"


class AddResult(DCVersion):
    """What :meth:`DCStore.add_constants` returns: a DCVersion plus how it was stored.

    Attributes
    ----------
    unchanged
        True if nothing was added: the range's default already held an identical payload
        with the same dictpars (the handle is that default version).
    linked_to
        Key ``(ctype, tsbegin, tsend, version)`` of the version whose stored payload the new
        version shares through an HDF5 hard link, or None if the payload was written.
    """

    __slots__ = ("unchanged", "linked_to")

    def __init__(self, store: "DCStore", key: tuple, unchanged: bool = False,
                 linked_to: Optional[tuple] = None):
        super().__init__(store, key)
        self.unchanged = unchanged
        self.linked_to = linked_to

    def __eq__(self, other: object) -> bool:  # equal to a plain DCVersion of the same key
        return (isinstance(other, DCVersion) and self._store is other._store
                and self._key == other._key)

    def __hash__(self) -> int:
        return hash(("DCVersion", id(self._store), self._key))


class _Unchanged(Exception):
    """Internal: aborts the transaction of an add that would change nothing."""

    def __init__(self, key: tuple):
        super().__init__(key)
        self.key = key


def _unchanged_key(be: Backend, ctype: str, b: int, e: int, sha: str, payload: Payload,
                   pars: Dict[str, Any]) -> Optional[tuple]:
    """Key of the range's default version if it equals (payload, pars), else None."""
    if not be.has_ctype(ctype):
        return None
    tab = be.range_table(ctype)
    cur = DCStore._default_in(tab, b, e)
    if cur <= 0:
        return None
    key = (ctype, b, e, cur)
    if be.version_info(key).sha256 != sha:
        return None
    have = be.dictpars(key)
    want = {k: decode_par(encode_par(k, v)[0]) for k, v in pars.items()}
    if set(have) != set(want) or not all(pars_equal(have[k], want[k]) for k in want):
        return None
    # confirm by bytes: a damaged stored default must not hide a real add
    return key if payloads_equal(be.payload(key), payload) else None


_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _as_oserror(exc: Exception) -> OSError:
    """An OSError with the errno HDF5 reported (h5py raises RuntimeError on flush)."""
    if isinstance(exc, OSError):
        return exc
    m = re.search(r"errno = (\d+)", str(exc))
    return OSError(int(m.group(1)) if m else 0, str(exc))


def _open_copy(path: Path) -> h5py.File:
    """Open a transaction's private copy for writing.

    Without a raw-data sieve buffer a failed write (disk full) fails in the call that made
    it; with one, it fails later in a dataset close, which leaves HDF5 in a state that
    crashes the process at exit (HDF5 2.0, seen under RLIMIT_FSIZE).
    """
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(*(_LIBVER_CODES[v] for v in L.LIBVER))
    fapl.set_sieve_buf_size(0)
    fapl.set_file_locking(False, True)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR, fapl=fapl)
    return h5py.File(fid)


_LIBVER_CODES = {"earliest": h5py.h5f.LIBVER_EARLIEST, "v108": h5py.h5f.LIBVER_V18,
                 "v110": h5py.h5f.LIBVER_V110}


def _span(tab: RangeTable) -> str:
    if len(tab.tsbegin) == 0:
        return ""
    lo = int(tab.tsbegin.min())
    hi = int(tab.tsend.max())
    return f" spanning {format_ns(lo)} .. {format_ns(hi)}"


class _LiveIndex:
    """RangeIndex over the subset of ranges that have versions (maps back to table rows)."""

    __slots__ = ("_rows", "_idx")

    def __init__(self, tab: RangeTable, live: np.ndarray, end_inclusive: bool):
        self._rows = np.nonzero(live)[0]
        self._idx = RangeIndex(tab.tsbegin[live].tolist(), tab.tsend[live].tolist(),
                               end_inclusive)

    def find(self, t: int) -> Optional[int]:
        i = self._idx.find(t)
        return None if i is None else int(self._rows[i])
