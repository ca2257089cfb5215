"""Backend for the native pscalib format (read and write), see docs/format.rst.

(This module is longer than 500 lines because it is the one implementation of the whole
Backend interface for the native format: every read and write method, the ways a file is
opened (by name, through the in-place engine's file objects), and the write side's
bookkeeping held in memory and written at commit (``pending``); the table formats
themselves live in history.py, payindex.py, records.py and tombstones.py.)
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import h5py
import numpy as np

from ..config import env_value
from ..errors import (CorruptStoreError, InvalidInputError, OutArrayError, PscalibError,
                      StoreFormatError,
                      UnsupportedFormatVersionError)
from . import layout as L
from .layout import INDEX_DTYPE, h5path
from .nativecheck import check_native_file
from . import payindex
from .backend import (H5_ERRORS, Key, RangeTable, VersionInfo, WritableBackend, corrupt_guard,
                      describe_key, store_error)
from .compact import rewrite_file
from .history import (HistoryRecord, append_history, append_table, make_record, purge_table,
                      read_history, read_table, read_table_all)
from .pending import PayRows, RangeRows
from .states import StateInfo, read_state, write_state
from .tombstones import Tombstone, append_tombstones, read_tombstones
from .records import (LogRow, LogTail, TagRow, VersionRow, append_changelog,
                      append_versionlog, read_changelog, read_log_tails, read_tags,
                      read_versionlog, write_tags)
from .payload import Payload, read_payload, write_payload
from .filefacts import FileFacts, facts_for
from .h5fileobj import open_fileobj_file
from .rowio import write_rows_at
from .fastread import (direct_offset, is_string_dataset, pread_into, raw_fd, read_id,
                       read_into, root_attr)
from .outarray import check_out
from .values import decode_par, encode_par, write_ascii_attr, write_int_attr
from .heapcheck import StringHandle, reads_strings as _strings
from . import safety

__all__ = ["NativeBackend", "INDEX_DTYPE", "is_native", "h5path", "store_error", "H5_ERRORS"]

_FIND = object()  # NativeBackend(f): look the file's facts up
_INDEX_MTYPE = h5py.h5t.py_create(INDEX_DTYPE)  # built once: py_create costs ~20 us


def is_native(f: h5py.File) -> bool:
    return h5py.h5a.exists(f.id, L.A_FORMAT.encode())


_guard = corrupt_guard("run 'dcs verify' on the file and restore it from a copy if it "
                       "is damaged")


def _guard_write(method):
    """Turn an OSError of HDF5 during a write (disk full, file too large) into StoreIOError."""
    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        failed: list = []
        # Process-global hooks, swapped for the duration of one write call: concurrent writes
        # from several threads may leave one of these delegating hooks installed (harmless).
        outer = sys.unraisablehook
        outer_print = sys.excepthook

        def hook(unraisable):  # h5py reports a write failed in a destructor only this way
            if "file write failed" in str(unraisable.exc_value):
                failed.append(unraisable.exc_value)
            else:
                outer(unraisable)

        def print_hook(etype, value, tb):  # ... after printing it (Cython full traceback)
            if "file write failed" not in str(value):
                outer_print(etype, value, tb)
        sys.unraisablehook, sys.excepthook = hook, print_hook
        try:
            result = method(self, *args, **kwargs)
            if failed:
                raise failed[0]
            return result
        except PscalibError:
            raise
        except H5_ERRORS as exc:
            raise store_error(exc, self.filename, method.__name__.replace("_", " ")) from None
        finally:
            sys.unraisablehook, sys.excepthook = outer, outer_print
    return wrapper


class NativeBackend(WritableBackend):
    """Reads and (on a writable h5py file) writes the native format."""

    end_inclusive = False
    writable_format = True

    @property
    def format_description(self) -> str:  # type: ignore[override]
        return f"{L.FORMAT_NAME} v{self.format_version}"

    def __init__(self, f: h5py.File, facts: Any = _FIND):
        """``facts``: the file's :class:`~pscalib.store.filefacts.FileFacts` when the
        caller has looked them up already (None: it has no identity); by default they are
        looked up here for a read-only file."""
        self.f = f
        self.filename = f.filename
        self.writable = f.mode == "r+"
        self.touched: Set[tuple] = set()  # every change goes through its methods
        # read-only: what this unchanged file said before (pscalib.store.filefacts)
        if self.writable:
            facts = None
        elif facts is _FIND:
            facts = facts_for(safety.file_identity(f))
        self._facts: Optional[FileFacts] = facts
        root = self._facts.root if self._facts is not None else None
        if root is None:
            try:
                root = (root_attr(f, L.A_FORMAT),  # low-level: opening a store is a hot path
                        root_attr(f, L.A_FORMAT_VERSION))
            except Exception as exc:
                raise CorruptStoreError(f"{self.filename}: cannot read root attributes: "
                                        f"{exc}") from exc
        fmt, ver = root
        if fmt != L.FORMAT_NAME:
            raise StoreFormatError(f"{self.filename}: root attribute {L.A_FORMAT}={fmt!r}, "
                                   f"expected {L.FORMAT_NAME!r}")
        try:
            ver = int(ver if ver is not None else "")  # missing: ValueError too
        except (TypeError, ValueError):
            raise CorruptStoreError(f"{self.filename}: format_version attribute is missing or "
                                    f"not an integer ({ver!r})") from None
        if ver > L.FORMAT_VERSION:
            raise UnsupportedFormatVersionError(
                f"{self.filename} has format version {ver}, this pscalib reads up to "
                f"{L.FORMAT_VERSION}: upgrade pscalib (pip install -U pscalib)")
        if ver < 1:
            raise CorruptStoreError(f"{self.filename}: invalid format version {ver}")
        self.format_version = ver
        if self._facts is not None:
            self._facts.root = root  # only a file that passed these checks
        self._strings = StringHandle(f, self.filename, self.writable)  # see _sf
        # paths whose links (and datasets) passed the safety checks
        self._safe: set = set() if self._facts is None else self._facts.safe
        # writable: bookkeeping held until flush() (pscalib.store.pending)
        self._ranges: Dict[str, RangeRows] = {}
        self._rattrs: Dict[Tuple[str, int, int], Dict[str, int]] = {}
        self._pay: Optional[PayRows] = None
        self._hist: List[Tuple[str, HistoryRecord]] = []
        self._hist_all: Optional[Dict[str, List[HistoryRecord]]] = None  # reader's cache
        self._sha: Dict[Key, str] = {}  # versions created by this transaction
        self._made: Dict[Key, int] = {}  # and their tsprod
        # read-only: (fd, offset, dtype, shape) of payloads read with preadv (payload_into)
        self._extents: Dict[Key, Tuple[int, int, np.dtype, Tuple[int, ...], str]] = {}

    @property
    def table_history(self) -> bool:
        """True if the file keeps its history in one root table (format 3)."""
        return self.format_version >= L.FORMAT_TABLE

    def _path(self, path: str) -> str:
        """``path`` after checking that reaching it follows hard links only (safety)."""
        if path not in self._safe:
            safety.check_links(self.f, path, self._safe)
        return path

    def _dataset(self, path: str) -> h5py.h5d.DatasetID:
        """Open the dataset at ``path``; refused if reading it could leave the file."""
        key = path + "\0ds"
        dsid = h5py.h5d.open(self.f.id, self._path(path).encode())
        if key not in self._safe:
            size = None if self.writable else self._filesize()
            safety.check_dataset(dsid, self.filename, path, size)
            self._safe.add(key)
        return dsid

    def _filesize(self) -> int:
        size = getattr(self, "_size", None)
        if size is None:
            size = self._size = self.f.id.get_filesize()
        return size

    # ---------------------------------------------------------------- reading
    def _group(self, key: Key) -> h5py.Group:
        return self.f[self._path(h5path(key))] if key else self.f

    @_guard
    @_strings
    def meta(self) -> Dict[str, Any]:
        a = self._sf().attrs
        out: Dict[str, Any] = {name: decode_par(a[name]) if name in a else None
                               for name in L.ROOT_META}
        if out[L.A_TSCFILE] is not None:
            out[L.A_TSCFILE] = int(out[L.A_TSCFILE])
        return out

    @_guard
    def ctypes(self) -> List[str]:
        return sorted(k for k in self.f.keys() if not k.startswith("_"))

    @_guard
    def has_ctype(self, ctype: str) -> bool:
        return self.f.id.links.exists(ctype.encode()) and bool(self._path(ctype))

    @_guard
    def range_table(self, ctype: str) -> RangeTable:
        if self.writable:
            return self._rrows(ctype).table()
        facts = self._facts
        if facts is None:
            return self._read_range_table(ctype)
        tab = facts.tables.get(ctype)
        if tab is None:
            tab = self._read_range_table(ctype)
            for a in tab:  # shared by every reader of this file: nobody may change it
                a.flags.writeable = False
            facts.tables[ctype] = tab
        return tab

    def _read_range_table(self, ctype: str) -> RangeTable:
        dsid = self._dataset(f"{ctype}/{L.N_RANGE_INDEX}")
        # the type pscalib writes is checked in HDF5: turning a compound type into a numpy
        # dtype costs ~50 us, more than reading the index
        if not dsid.get_type().equal(_INDEX_MTYPE):
            names = dsid.dtype.names
            if names != INDEX_DTYPE.names:
                raise CorruptStoreError(f"{self.filename}: {ctype}/{L.N_RANGE_INDEX} has "
                                        f"fields {names}, expected {INDEX_DTYPE.names}")
        rows = read_id(dsid, INDEX_DTYPE, _INDEX_MTYPE)
        return RangeTable(rows["tsbegin"].astype(np.int64), rows["tsend"].astype(np.int64),
                          rows["defaultv"].astype(np.int64))

    @_guard
    def versions(self, ctype: str, tsbegin: int, tsend: int) -> List[int]:
        g = self.f[self._path(h5path((ctype, tsbegin, tsend)))]
        return sorted(v for v in (L.parse_version_name(k) for k in g.keys()) if v is not None)

    @_guard
    def versions_by_range(self, ctype: str) -> Dict[Any, List[int]]:
        # low-level group opens: the high-level h5py lookup per range costs ~3x more, which
        # adds up to most of a 1,000-range overview page
        tab = self.range_table(ctype)
        gid = h5py.h5o.open(self.f.id, ctype.encode())
        out = {}
        for b, e in zip(tab.tsbegin.tolist(), tab.tsend.tolist()):
            rid = h5py.h5o.open(gid, L.range_name(b, e).encode())
            names = (L.parse_version_name(n.decode()) for n in rid)
            out[(b, e)] = sorted(v for v in names if v is not None)
        return out

    @_guard
    @_strings
    def version_info(self, key: Key) -> VersionInfo:
        sf = self._sf()
        a = sf[self._path(h5path(key))].attrs
        dpath = h5path(key) + "/" + L.N_DATA
        self._dataset(dpath)  # the safety checks, on the main handle
        ds = sf[dpath]
        kind = decode_par(a[L.A_KIND])
        sha = decode_par(a[L.A_SHA256]) if L.A_SHA256 in a else None
        if kind == L.KIND_TEXT:
            raw = ds[()]
            return VersionInfo(key[3], int(a[L.A_TSPROD]), kind, sha, None, None,
                               len(raw) if isinstance(raw, bytes) else len(str(raw).encode()))
        return VersionInfo(key[3], int(a[L.A_TSPROD]), kind, sha, ds.dtype,
                           tuple(ds.shape), int(ds.dtype.itemsize * int(np.prod(ds.shape))))

    @_guard
    @_strings
    def version_sha256(self, key: Key) -> Optional[str]:
        held = self._sha.get(key)
        if held is not None:
            return held
        a = self._sf()[self._path(h5path(key))].attrs
        return decode_par(a[L.A_SHA256]) if L.A_SHA256 in a else None

    def version_stamp(self, key: Key) -> Tuple[int, Optional[str]]:
        made = self._made.get(key)
        if made is not None:  # created by this transaction: no read of the file
            return made, self._sha[key]
        return super().version_stamp(key)

    @_guard
    @_strings
    def payload(self, key: Key) -> Payload:
        path = h5path(key) + "/" + L.N_DATA
        dsid = self._dataset(path)
        # the dataset type says text or array: no attribute read on the hot path
        if is_string_dataset(dsid):  # a heap read: through the guarded handle
            return read_payload(self._sf()[path], L.KIND_TEXT)
        return read_id(dsid)

    @_guard
    def payload_into(self, key: Key, out: Any) -> np.ndarray:
        hit = self._extents.get(key)
        if hit is None:
            dsid = self._dataset(h5path(key) + "/" + L.N_DATA)
            if is_string_dataset(dsid):
                raise OutArrayError(f"{describe_key(key)} is text: out= takes arrays only; "
                                    f"call get without it")
            rfd = None if self.writable else raw_fd(self.f)
            at = direct_offset(dsid, dsid.dtype) if rfd is not None else None
            if rfd is None or at is None:  # HDF5 reads it (chunked, filtered, a writer)
                return read_into(dsid, out, describe_key(key))
            # where the bytes are, kept for the next read of this version: after a 50 MB
            # copy the caches are cold and opening the dataset again costs ~0.25 ms (5 %)
            hit = self._extents[key] = (rfd, at, dsid.dtype, tuple(dsid.shape),
                                        describe_key(key))
        fd, offset, dtype, shape, what = hit
        check_out(out, shape, dtype, what)
        if out.dtype == dtype and out.size:
            return pread_into(fd, out, offset, what)
        # another byte order (HDF5 converts) or nothing to read
        return read_into(self._dataset(h5path(key) + "/" + L.N_DATA), out, what)

    @_guard
    @_strings
    def dictpars(self, key: Key) -> Dict[str, Any]:
        g = self._sgroup(key).get(L.N_DICTPARS)
        if g is None:
            return {}
        return {k: decode_par(v) for k, v in g.attrs.items()}

    @_guard
    @_strings
    def history(self, key: Key) -> List[HistoryRecord]:
        if self.table_history:
            self._dataset(L.N_HISTORY)
            path = h5path(key) if key else ""
            self._group(key)  # a missing object is an error, as below
            if self.writable:
                return read_table(self._sf(), path) + [r for p, r in self._hist if p == path]
            if self._hist_all is None:  # a reader's file never changes under it: read once
                self._hist_all = read_table_all(self._sf())
            return list(self._hist_all.get(path, []))
        g = self._sgroup(key)
        if L.N_HISTORY in g:
            self._dataset(f"{h5path(key)}/{L.N_HISTORY}" if key else L.N_HISTORY)
        return read_history(g)

    def _sf(self) -> h5py.File:
        """The handle strings are read through (all but the array ``get`` hot path): a
        guarded twin of ``self.f`` (:class:`~pscalib.store.heapcheck.StringHandle`)."""
        return self._strings.file()

    def _sgroup(self, key: Key) -> h5py.Group:
        """:meth:`_group` on the string handle (links checked on the main one)."""
        return self._sf()[self._path(h5path(key))] if key else self._sf()

    def close(self) -> None:
        self._strings.close()  # the twin first: HDF5's file before its file object
        try:
            self.f.close()
        except Exception:  # closing a damaged file must not mask the original error
            pass

    # ---------------------------------------------------------------- whole files
    @staticmethod
    def init_root(f: h5py.File, dettype: str, detid: str, detname: str, tscfile: int,
                  fmt: Optional[int] = None) -> None:
        a = f.attrs
        a[L.A_FORMAT] = L.FORMAT_NAME
        a[L.A_FORMAT_VERSION] = np.int64(create_format() if fmt is None else fmt)
        a[L.A_DETTYPE] = dettype
        a[L.A_DETID] = detid
        a[L.A_DETNAME] = detname
        a[L.A_TSCFILE] = np.int64(tscfile)

    @classmethod
    def create_file(cls, path: Path, dettype: str, detid: str, detname: str,
                    tscfile: int) -> None:
        with h5py.File(path, "x", libver=L.LIBVER, locking=False) as f:
            cls.init_root(f, dettype, detid, detname, tscfile)
            be = cls(f)
            be.append_history((), "create_store", f"created store for {detname}")
            be.flush()
            append_changelog(f, [], start=tscfile)  # complete from the creation on
            append_versionlog(f, [], start=tscfile)

    @classmethod
    def open_for_write(cls, path: Path) -> "NativeBackend":
        """Open a transaction's private copy for writing.

        Without a raw-data sieve buffer a failed write (disk full) fails in the call that
        made it; with one, it fails later in a dataset close, which leaves HDF5 in a state
        that crashes the process at exit (HDF5 2.0, seen under RLIMIT_FSIZE).
        """
        return cls._open(os.fsencode(path), h5py.h5f.ACC_RDWR, None)

    @classmethod
    def open_fileobj(cls, fileobj: Any, name: Path, write: bool) -> "NativeBackend":
        """Open a store through a Python file object (h5py's ``fileobj`` driver): the
        in-place engine's OverlayFile (``write``) or a reader's JournalView/ReadView
        (:mod:`pscalib.txn.overlay`); ``name`` names the store in messages."""
        be = cls._open(os.fsencode(str(name)), h5py.h5f.ACC_RDWR if write else
                       h5py.h5f.ACC_RDONLY, fileobj)
        be.filename = str(name)
        if not write:  # strings through a guard on the same view (not the raw file)
            be._strings = StringHandle(be.f, be.filename, False, view=fileobj)
        return be

    @classmethod
    def _open(cls, name: bytes, mode: int, fileobj: Any) -> "NativeBackend":
        fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        fapl.set_libver_bounds(*(_LIBVER_CODES[v] for v in L.LIBVER))
        fapl.set_sieve_buf_size(0)  # see open_for_write
        if fileobj is None:
            fapl.set_file_locking(False, True)
            f = h5py.File(h5py.h5f.open(name, mode, fapl=fapl))
        else:
            f = open_fileobj_file(name, mode, fapl, fileobj)
        try:
            return cls(f)
        except BaseException:
            f.close()
            raise

    def set_format_inplace(self) -> None:
        """Mark the file format 4 (before its rewrite with an engine block); only a format 3
        file is converted (see ``store.transaction._file_transaction``)."""
        if self.format_version < L.FORMAT_INPLACE:
            self._write_format(L.FORMAT_INPLACE)

    rewrite_file = staticmethod(rewrite_file)
    verify_file = staticmethod(check_native_file)

    def check_safe(self, name: Any) -> None:
        safety.check_file(self.f, name)

    def finish(self) -> None:
        self.flush()
        self.f.flush()
        self.f.close()

    @_guard_write
    def flush(self) -> None:
        """Write the bookkeeping held in memory (pscalib.store.pending): each changed
        range index, the range attributes, the payload index and the history table, once."""
        for ctype, rr in self._ranges.items():
            if rr.changed():
                ds = self.f[ctype][L.N_RANGE_INDEX]
                cur = rr.current()
                ds.id.set_extent((rr.n,))
                for a, b in rr.to_write():
                    write_rows_at(ds.id, a, cur[a:b])
                rr.written()
        for rkey, attrs in self._rattrs.items():
            gid = h5py.h5o.open(self.f.id, h5path(rkey).encode())
            for name, value in attrs.items():
                write_int_attr(gid, name, value)
        self._rattrs.clear()
        if self._pay is not None and self._pay.changed():
            rows, start = self._pay.to_write()
            payindex.store(self.f, rows, start, len(self._pay))
            self._pay.written()
        if self._hist:
            append_table(self.f, self._hist)
            self._hist = []

    def _rrows(self, ctype: str) -> RangeRows:
        rr = self._ranges.get(ctype)
        if rr is None:
            tab = self._read_range_table(ctype)
            rows = np.zeros(len(tab.tsbegin), dtype=INDEX_DTYPE)
            rows["tsbegin"], rows["tsend"], rows["defaultv"] = tab
            rr = self._ranges[ctype] = RangeRows(rows)
        return rr

    def _range_attrs(self, ctype: str, tsbegin: int, tsend: int) -> Dict[str, int]:
        return self._rattrs.setdefault((ctype, tsbegin, tsend), {})

    def _forget_pending(self, path: str) -> None:
        """A deleted object takes its bookkeeping along (range attributes, history)."""
        self._rattrs = {k: v for k, v in self._rattrs.items()
                        if not _under(h5path(k), path)}
        if self.table_history:
            self._hist = [(p, r) for p, r in self._hist if not _under(p, path)]
            purge_table(self.f, path)

    # ----------------------------------------------------- payload deduplication
    def _payrows(self) -> PayRows:
        if self._pay is None:
            lazy = payindex.load_lazy(self.f)
            if lazy is not None:  # rows read on demand (an add costs O(1), not O(index))
                self._pay = PayRows([], True, disk_sha=lazy[0], fetch=lazy[1])
            else:  # a file written before the index: rows from a walk, written at commit
                self._pay = PayRows(payindex.walk_rows(self.f), False)
        return self._pay

    def find_identical(self, sha256: str, payload: Payload) -> Optional[Key]:
        if not self.writable:
            return payindex.find_identical(self.f, sha256, payload)
        for row in self._payrows().candidates(sha256.encode()):
            key = row[1:]
            if payindex.holds(self.f, key, sha256, payload):
                return key
        return None

    def index_payload(self, sha256: str, key: Key) -> None:
        self._payrows().add((sha256.encode(),) + tuple(key))

    def forget_payloads(self, ctype: str, tsbegin: Optional[int] = None,
                        tsend: Optional[int] = None, version: Optional[int] = None) -> None:
        self._payrows().forget(ctype, tsbegin, tsend, version)

    def rebuild_payload_index(self) -> None:
        self._pay = None
        payindex.rebuild(self.f)

    # ---------------------------------------------------------------- writing

    @_guard_write
    def set_meta(self, name: str, value: Optional[str]) -> None:
        if value is None:
            if name in self.f.attrs:
                del self.f.attrs[name]
        else:
            self.f.attrs[name] = value

    @_guard_write
    def create_ctype(self, ctype: str) -> None:
        g = self.f.create_group(ctype)
        g.create_dataset(L.N_RANGE_INDEX, shape=(0,), maxshape=(None,),
                         chunks=(L.INDEX_CHUNK,), dtype=INDEX_DTYPE)
        self._ranges[ctype] = RangeRows(np.zeros(0, dtype=INDEX_DTYPE))

    @_guard_write
    def delete_ctype(self, ctype: str) -> None:
        self.touched.add((ctype,))
        del self.f[ctype]
        self._ranges.pop(ctype, None)
        self._forget_pending(ctype)

    def _index_row(self, ctype: str, tsbegin: int, tsend: int) -> int:
        hit = self._rrows(ctype).find(tsbegin, tsend)
        if len(hit) != 1:
            raise CorruptStoreError(f"{self.filename}: range index of {ctype!r} has "
                                    f"{len(hit)} rows for range {L.range_name(tsbegin, tsend)}")
        return hit[0]

    @_guard_write
    def create_range(self, ctype: str, tsbegin: int, tsend: int) -> None:
        gid = h5py.h5g.create(self.f.id, h5path((ctype, tsbegin, tsend)).encode())
        write_int_attr(gid, L.A_TSBEGIN, tsbegin)
        write_int_attr(gid, L.A_TSEND, tsend)
        # lastv (and defaultv before format 3) change with the versions added next: written
        # once, at flush; format 3 keeps the default in the range index only
        self._range_attrs(ctype, tsbegin, tsend).update(
            {L.A_LASTV: 0} if self.table_history else {L.A_DEFAULTV: 0, L.A_LASTV: 0})
        self._rrows(ctype).append(tsbegin, tsend)

    @_guard_write
    def delete_range(self, ctype: str, tsbegin: int, tsend: int) -> None:
        self.touched.add((ctype, tsbegin, tsend))
        i = self._index_row(ctype, tsbegin, tsend)
        self._rrows(ctype).remove(i)
        del self.f[ctype][L.range_name(tsbegin, tsend)]
        self._forget_pending(h5path((ctype, tsbegin, tsend)))

    @_guard_write
    def set_default(self, ctype: str, tsbegin: int, tsend: int, version: int) -> None:
        self._path(h5path((ctype, tsbegin, tsend)))
        i = self._index_row(ctype, tsbegin, tsend)
        self._rrows(ctype).set_default(i, version)
        if not self.table_history:
            self._range_attrs(ctype, tsbegin, tsend)[L.A_DEFAULTV] = version

    @_guard
    def last_version(self, ctype: str, tsbegin: int, tsend: int) -> int:
        held = self._rattrs.get((ctype, tsbegin, tsend), {}).get(L.A_LASTV)
        if held is not None:
            return held
        return int(self.f[h5path((ctype, tsbegin, tsend))].attrs[L.A_LASTV])

    @_guard_write
    def create_version(self, key: Key, data: Payload, tsprod: int, sha256: str,
                       link_to: Optional[Key] = None) -> None:
        ctype, tsbegin, tsend, version = key
        self.touched.add((ctype, tsbegin, tsend))
        gid = h5py.h5g.create(self.f.id, h5path(key).encode())  # low-level: a hot path
        if not self.table_history:  # format 3: the group name says the number
            write_int_attr(gid, L.A_VERSION, version)
        write_int_attr(gid, L.A_TSPROD, tsprod)
        kind = L.KIND_TEXT if isinstance(data, str) else L.KIND_NDARRAY
        g = h5py.Group(gid)
        if self.table_history:  # fixed-length ASCII: no global heap object per version
            write_ascii_attr(gid, L.A_KIND, kind)
            write_ascii_attr(gid, L.A_SHA256, sha256)
        else:
            g.attrs[L.A_KIND] = kind
            g.attrs[L.A_SHA256] = sha256
        if link_to is not None:  # identical payload stored once: HDF5 hard link
            g[L.N_DATA] = self.f[h5path(link_to) + "/" + L.N_DATA]
        else:
            write_payload(g, data, compact=self.table_history)
        self._sha[key] = sha256
        self._made[key] = tsprod
        if version > self.last_version(ctype, tsbegin, tsend):
            self._range_attrs(ctype, tsbegin, tsend)[L.A_LASTV] = version

    @_guard_write
    def delete_version(self, key: Key) -> None:
        self.touched.add(key[:3])
        del self.f[h5path(key)]
        self._sha.pop(key, None)
        self._made.pop(key, None)
        self._forget_pending(h5path(key))

    @_guard_write
    def set_par(self, key: Key, name: str, value: Any) -> None:
        data, dtype = encode_par(name, value)
        g = self._group(key)
        pg = g.get(L.N_DICTPARS)
        if pg is None:
            pg = g.create_group(L.N_DICTPARS)
        if name in pg.attrs:
            del pg.attrs[name]
        if dtype is None:
            pg.attrs[name] = data
        else:
            pg.attrs.create(name, data, dtype=dtype)

    @_guard_write
    def del_par(self, key: Key, name: str) -> None:
        del self._group(key)[L.N_DICTPARS].attrs[name]

    @_guard_write
    def append_history(self, key: Key, action: str, record: str, *,
                       tsns: Optional[int] = None, user: Optional[str] = None,
                       host: Optional[str] = None) -> HistoryRecord:
        if self.table_history:  # one table, written at flush
            self._group(key)  # the object must exist
            rec = make_record(action, record, tsns, user, host)
            self._hist.append((h5path(key) if key else "", rec))
            return rec
        return append_history(self._group(key), action, record, tsns=tsns, user=user,
                              host=host)

    # ------------------------------------------------- states and tombstones (format 2)
    @_guard
    @_strings
    def version_state(self, key: Key) -> StateInfo:
        if self.format_version < L.FORMAT_STATES:
            return StateInfo("valid")  # format 1: no states, every version valid
        return read_state(self._sf()[self._path(h5path(key))].attrs)

    @_guard
    @_strings
    def tombstones(self) -> List[Tombstone]:
        if self.format_version < L.FORMAT_STATES:
            return []
        return read_tombstones(self._sf())

    def upgrade_format(self) -> bool:
        """Make the file format 2 (before writing a state or tombstone); True if it was 1."""
        if self.format_version >= L.FORMAT_STATES:
            return False
        self._write_format(L.FORMAT_STATES)
        return True

    @_guard_write
    def upgrade_to_table(self) -> bool:
        """Convert a format 1 or 2 file to format 3 (``dcs upgrade``); True if it was older.

        Every per-object ``_history`` dataset becomes rows of the root table, object by
        object (root, then each type, its ranges and their versions, by name) and in each
        object in its own order, so every object reads back exactly the records it had."""
        if self.table_history:
            return False
        self.flush()
        rows: List[Tuple[str, HistoryRecord]] = []
        for path, g in _objects(self.f):
            if L.N_HISTORY in g:
                self._dataset(f"{path}/{L.N_HISTORY}" if path else L.N_HISTORY)
                rows += [(path, r) for r in read_history(g)]
                del g[L.N_HISTORY]
        self._write_format(L.FORMAT_TABLE)
        self._hist = rows + self._hist
        self.flush()
        return True

    @_guard_write
    def _write_format(self, ver: int) -> None:
        self.f.attrs[L.A_FORMAT_VERSION] = np.int64(ver)
        self.format_version = ver

    @_guard_write
    def set_state(self, key: Key, info: StateInfo) -> None:
        self.touched.add(key[:3])
        write_state(self.f[h5path(key)].attrs, info)

    @_guard_write
    def add_tombstones(self, rows: List[Tombstone]) -> int:
        return append_tombstones(self.f, rows)

    # ------------------------------------------------ change log and tags (any format)
    @_guard
    @_strings
    def changelog(self) -> Tuple[Optional[int], List[LogRow]]:
        return read_changelog(self._sf())

    @_guard
    @_strings
    def versionlog(self) -> Tuple[Optional[int], List[VersionRow]]:
        return read_versionlog(self._sf())

    @_guard
    @_strings
    def log_tails(self) -> Tuple[LogTail, LogTail]:
        return read_log_tails(self._sf())

    @_guard
    @_strings
    def tag_rows(self) -> List[TagRow]:
        return read_tags(self._sf())

    @_guard_write
    def append_changelog(self, rows: List[LogRow], start: Optional[int] = None) -> int:
        return append_changelog(self.f, rows, start)

    @_guard_write
    def append_versionlog(self, rows: List[VersionRow], start: Optional[int] = None) -> int:
        return append_versionlog(self.f, rows, start)

    @_guard_write
    def write_tag_rows(self, rows: List[TagRow]) -> None:
        write_tags(self.f, rows)

    @_guard_write
    def set_last_version(self, ctype: str, tsbegin: int, tsend: int, version: int) -> None:
        self._path(h5path((ctype, tsbegin, tsend)))
        self._range_attrs(ctype, tsbegin, tsend)[L.A_LASTV] = version


def _objects(f: h5py.File):
    """``(path, group)`` of the store and of every type, range and version in it."""
    yield "", f
    for c in sorted(k for k in f.keys() if not k.startswith("_")):
        cg = f[c]
        yield c, cg
        for r in sorted(k for k in cg.keys() if not k.startswith("_")):
            rg = cg[r]
            yield f"{c}/{r}", rg
            for v in sorted(k for k in rg.keys() if L.parse_version_name(k) is not None):
                yield f"{c}/{r}/{v}", rg[v]


def create_format() -> int:
    """Format of new files: 3, or 1 when ``PSCALIB_CREATE_FORMAT=1`` (for older readers)."""
    want = (env_value(L.ENV_CREATE_FORMAT) or "").strip()
    if not want:
        return L.FORMAT_TABLE
    if want not in ("1", "3"):
        raise InvalidInputError(f"{L.ENV_CREATE_FORMAT}={want!r}: new stores can be created "
                                f"in format 1 (readable by older pscalib) or 3 (the default)")
    return int(want)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")



_LIBVER_CODES = {"earliest": h5py.h5f.LIBVER_EARLIEST, "v108": h5py.h5f.LIBVER_V18,
                 "v110": h5py.h5f.LIBVER_V110}
