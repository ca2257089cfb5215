"""Which backend reads a file: the registry of store formats and :func:`open_backend`.

Each entry of :data:`HDF5_FORMATS` is ``(probe, backend class)``: the first backend whose
probe accepts the open HDF5 file reads it. A new HDF5-based format is one module with a
:class:`~pscalib.store.backend.Backend` (or ``WritableBackend``) subclass plus one entry
here; :data:`WRITABLE` is the backend that new stores and transactions use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Tuple, Type

import h5py

from ..errors import (CorruptStoreError, InvalidInputError, LockError, PscalibError,
                      StoreFormatError, StoreNotFoundError, StorePermissionError)
from . import layout as L
from .backend import Backend, WritableBackend
from ..txn.engineblock import read_block
from ..txn.overlay import JournalView
from .fastread import is_lock_error, open_readonly, raw_fd
from .filefacts import facts_for
from .guarded import GuardedBackend
from .heapcheck import check_head
from .legacy import LegacyBackend, is_legacy
from .native import NativeBackend, is_native
from .safety import file_identity

__all__ = ["open_backend", "open_failure", "HDF5_FORMATS", "WRITABLE"]

#: Probe and backend class of every HDF5 format pscalib reads, tried in order.
HDF5_FORMATS: Tuple[Tuple[Callable[[h5py.File], bool], Type[Backend]], ...] = (
    (is_native, NativeBackend),
    (is_legacy, LegacyBackend),
)

#: The backend of new stores and of every transaction.
WRITABLE: Type[WritableBackend] = NativeBackend


def open_failure(path: Path, exc: OSError) -> PscalibError:
    """The error for HDF5 refusing to open ``path``: only damage is called damage."""
    msg = " ".join(str(exc).split())
    size = path.stat().st_size if path.exists() else -1
    if size == 0:
        return StoreFormatError(f"{path} is an empty file ({msg}); is it a calibration store?")
    if "signature" in msg:
        return StoreFormatError(f"{path} is not an HDF5 file ({msg}); is it a calibration "
                                f"store?")
    if is_lock_error(exc):
        return LockError(f"HDF5 cannot open {path} because of file locking ({msg}); another "
                         f"program may hold it open for writing, or it is open in this "
                         f"process with other locking settings - close that or retry")
    if any(w in msg for w in _DAMAGE_WORDS):
        return CorruptStoreError(f"{path} is damaged or truncated ({msg}); restore it from a "
                                 f"copy")
    return StoreFormatError(f"HDF5 cannot open {path}: {msg}")


#: Words of HDF5 open errors that mean the file's bytes are wrong.
_DAMAGE_WORDS = ("truncated", "checksum", "bad ", "corrupt", "superblock", "object header",
                 "addr overflow", "eoa", "eof")


def open_backend(path: Path) -> Backend:
    """Open ``path`` read-only and return the backend that understands it.

    A store with an engine block (format 4, changed in place) is read through a
    :class:`~pscalib.store.guarded.GuardedBackend` (one ``pread`` tells).
    """
    if read_block(path) is not None:
        return GuardedBackend(Path(path), _open_inplace)
    return _open_plain(path)


def _open_inplace(path: Path, view: JournalView) -> Backend:
    """The inner backend of a :class:`GuardedBackend` (under its shared commit lock)."""
    try:
        check_head(path)  # before HDF5 reads any string: a damaged heap would hang it
        return NativeBackend.open_fileobj(view, path, write=False)
    except PscalibError:
        raise
    except Exception as exc:  # HDF5 failing on damaged metadata (checksums, heaps)
        raise CorruptStoreError(f"{path} is damaged: {exc}; restore it from a copy") from None


def _open_plain(path: Path) -> Backend:
    try:
        f = open_readonly(path)  # h5py.File(path, "r", locking=False), ~20 us faster
    except FileNotFoundError:
        raise StoreNotFoundError(f"store file {path} does not exist") from None
    except PermissionError:
        raise StorePermissionError(f"no permission to read {path}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a directory, not a store file") from None
    except OSError as exc:
        raise open_failure(path, exc) from None
    try:
        facts = facts_for(file_identity(f))  # an unchanged file was checked already
        if facts is None or not facts.head_ok:
            # before HDF5 reads any string: a damaged heap would hang it; the bytes of the
            # file HDF5 has open (its descriptor), not of whatever the path names now
            check_head(path, fd=raw_fd(f))
            if facts is not None:
                facts.head_ok = True
        if facts is not None and facts.root is not None:
            return NativeBackend(f, facts)  # read as native before (root attributes kept)
        for probe, backend in HDF5_FORMATS:
            if probe(f):
                if backend is NativeBackend:
                    return NativeBackend(f, facts)  # the facts just looked up
                return backend(f)  # type: ignore[call-arg]
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
