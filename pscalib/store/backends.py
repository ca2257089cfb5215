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

from ..errors import (CorruptStoreError, InvalidInputError, PscalibError, StoreFormatError,
                      StoreNotFoundError, StorePermissionError)
from . import layout as L
from .backend import Backend, WritableBackend
from .fastread import open_readonly
from .heapcheck import check_head
from .legacy import LegacyBackend, is_legacy
from .native import NativeBackend, is_native

__all__ = ["open_backend", "HDF5_FORMATS", "WRITABLE"]

#: Probe and backend class of every HDF5 format pscalib reads, tried in order.
HDF5_FORMATS: Tuple[Tuple[Callable[[h5py.File], bool], Type[Backend]], ...] = (
    (is_native, NativeBackend),
    (is_legacy, LegacyBackend),
)

#: The backend of new stores and of every transaction.
WRITABLE: Type[WritableBackend] = NativeBackend


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
        for probe, backend in HDF5_FORMATS:
            if probe(f):
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
