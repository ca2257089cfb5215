"""Low-level reads for the hot paths (opening a store, ``get``).

The high-level h5py objects (``File.attrs``, ``Group.__getitem__``, ``Dataset.__getitem__``)
cost tens of microseconds per call in Python bookkeeping: more than the read itself for
small arrays. These helpers open the object by path with the low-level API and read it
whole into a fresh array, which is what ``get`` needs and nothing more.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Tuple, Union

import h5py
import numpy as np
from h5py import h5a, h5d, h5f, h5p, h5s, h5t

from .outarray import check_out

__all__ = ["open_readonly", "is_lock_error", "root_attr", "read_dataset", "read_id",
           "is_string_dataset", "read_into", "raw_fd"]

_VLSTR_DTYPE = h5py.string_dtype("utf-8")
_VLSTR = h5t.py_create(_VLSTR_DTYPE)


def _readonly_fapl(locking: Optional[Tuple[bool, bool]]) -> h5p.PropFAID:
    # what h5py.File(path, "r", locking=...) sets up, built once instead of on every open
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5f.LIBVER_EARLIEST, h5f.LIBVER_LATEST)
    if locking is not None:
        fapl.set_file_locking(*locking)
    return fapl


# HDF5 shares one open file per process and refuses a second open whose file-locking flags
# differ ("file locking flag values don't match"). The first choice is h5py's default
# (HDF5's defaults), so that a user's h5py.File(path) works beside an open store in both
# orders; the others match files opened with other settings, or read without locking where
# HDF5 cannot take its shared lock (another program holds an exclusive one, or no flock).
# pscalib's own writers never lock the store file itself (see pscalib.txn).
_FAPLS = [_readonly_fapl(lk) for lk in (None, (False, False), (False, True), (True, False),
                                        (True, True))]


def open_readonly(path: Union[str, os.PathLike]) -> h5py.File:
    """Open ``path`` read-only like ``h5py.File(path, "r")``, with matching locking flags.

    Raises the same exceptions as ``h5py.File`` (FileNotFoundError, OSError, ...).
    """
    name = os.fsencode(path)
    try:
        return h5py.File(h5f.open(name, h5f.ACC_RDONLY, fapl=_FAPLS[0]))
    except OSError as exc:
        if not is_lock_error(exc):
            raise
        first = exc
    for fapl in _FAPLS[1:]:
        try:
            return h5py.File(h5f.open(name, h5f.ACC_RDONLY, fapl=fapl))
        except OSError as exc:
            if not is_lock_error(exc):
                raise
    raise first


def is_lock_error(exc: BaseException) -> bool:
    """True if HDF5 refused an open because of file locking (not because of the file)."""
    msg = str(exc).lower()
    return "file locking" in msg or "unable to lock" in msg


def root_attr(f: h5py.File, name: str) -> Optional[Any]:
    """Value of a scalar attribute of the root group, or None if it is absent.

    Scalar strings come back as ``str``, scalar numbers as numpy scalars, anything else as
    the array h5py would read (strings as bytes). Scalar integers and variable-length
    strings (what pscalib writes) are read straight into prebuilt memory types: every h5py
    type property costs microseconds, and this runs each time a store is opened.
    """
    return object_attr(f.id, name)


def object_attr(oid: Any, name: str) -> Optional[Any]:
    """:func:`root_attr` of any open object (group or dataset id)."""
    bname = name.encode()
    if not h5a.exists(oid, bname):
        return None
    aid = h5a.open(oid, bname)
    tid = aid.get_type()
    cls = tid.get_class()
    scalar = aid.get_space().get_simple_extent_type() == h5s.SCALAR  # else: overflow
    if scalar and cls == h5t.INTEGER:
        out = np.zeros((), dtype=np.int64)
        aid.read(out, mtype=h5t.NATIVE_INT64)
    elif scalar and cls == h5t.STRING and tid.is_variable_str():
        out = np.zeros((), dtype=_VLSTR_DTYPE)
        aid.read(out, mtype=_VLSTR)
    else:
        out = np.zeros(aid.shape, dtype=aid.dtype)
        aid.read(out, mtype=h5t.py_create(aid.dtype))
    val = out[()] if out.ndim == 0 else out
    if isinstance(val, bytes):
        return val.decode("utf-8", "surrogateescape")
    return val


def is_string_dataset(dsid: h5d.DatasetID) -> bool:
    """True for a (fixed or variable length) string dataset, i.e. a text payload."""
    return isinstance(dsid.get_type(), h5t.TypeStringID)


def read_dataset(f: h5py.File, path: str) -> np.ndarray:
    """Read the whole numeric dataset at ``path`` (from the root) into a new array.

    Raises KeyError if there is no object at ``path`` (as ``f[path]`` would).
    """
    return read_id(h5d.open(f.id, path.encode()))


def read_id(dsid: h5d.DatasetID, dtype: Optional[np.dtype] = None,
            mtype: Optional[h5t.TypeID] = None) -> np.ndarray:
    """Read an open numeric dataset whole into a new C-ordered array.

    ``dtype`` (default: the dataset's) is the memory type; pass ``mtype``, its HDF5 type
    from ``h5t.py_create(dtype)``, when reading compound data often (creating it is slow).
    """
    out = np.empty(dsid.shape, dtype=dsid.dtype if dtype is None else dtype)
    if out.size:
        dsid.read(h5s.ALL, h5s.ALL, out, mtype=mtype)
    return out


#: dtype kinds whose stored bytes are the array's bytes (bool goes through HDF5: its enum
#: conversion keeps crafted values other than 0/1 out of a numpy bool array)
_RAW_KINDS = frozenset("iufc")


def read_into(dsid: h5d.DatasetID, out: Any, what: str) -> np.ndarray:
    """Read the numeric dataset ``dsid`` into the caller's array ``out`` through HDF5,
    which fills the buffer in place (converting the byte order if needed); ``out`` is
    checked first (:func:`pscalib.store.outarray.check_out`). A dataset whose bytes are
    exactly ``out``'s is read with :func:`direct_offset` and :func:`pread_into` instead
    (``NativeBackend.payload_into``)."""
    check_out(out, dsid.shape, dsid.dtype, what)
    if out.size:
        dsid.read(h5s.ALL, h5s.ALL, out, mtype=h5t.py_create(out.dtype))
    return out


def direct_offset(dsid: h5d.DatasetID, dtype: np.dtype) -> Optional[int]:
    """File offset of the bytes of ``dsid`` if they are exactly an array of ``dtype`` in
    C order (contiguous, unfiltered, that dtype and byte order, a raw numeric kind), else
    None: such a dataset can be read with ``preadv``."""
    stored = dsid.dtype
    if stored != dtype or stored.kind not in _RAW_KINDS:
        return None
    offset = dsid.get_offset()
    nbytes = int(np.prod(dsid.shape, dtype=np.int64)) * stored.itemsize
    if offset is None or dsid.get_storage_size() != nbytes:
        return None
    return int(offset)


def pread_into(fd: int, out: np.ndarray, offset: int, what: str) -> np.ndarray:
    """Fill the C-contiguous ``out`` with its ``nbytes`` from ``fd`` at ``offset``."""
    buf = memoryview(out.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    done = 0
    while done < out.nbytes:  # a regular file returns it all at once; loop for safety
        n = os.preadv(fd, [buf[done:]], offset + done)
        if n <= 0:
            raise OSError(f"unexpected end of file reading {what}")
        done += n
    return out


def raw_fd(f: h5py.File) -> Optional[int]:
    """The descriptor of a file HDF5 opened with its default (sec2) driver, else None.

    Only for read-only files: a writer's bytes may still sit in HDF5's (or a journal's)
    buffers, so they are read through HDF5.
    """
    try:
        fd = f.id.get_vfd_handle()
    except Exception:  # another driver
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None
