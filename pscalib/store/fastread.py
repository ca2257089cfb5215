"""Low-level reads for the hot paths (opening a store, ``get``).

The high-level h5py objects (``File.attrs``, ``Group.__getitem__``, ``Dataset.__getitem__``)
cost tens of microseconds per call in Python bookkeeping: more than the read itself for
small arrays. These helpers open the object by path with the low-level API and read it
whole into a fresh array, which is what ``get`` needs and nothing more.
"""
from __future__ import annotations

from typing import Any, Optional

import h5py
import numpy as np
from h5py import h5a, h5d, h5s, h5t

__all__ = ["root_attr", "read_dataset", "is_string_dataset"]


def root_attr(f: h5py.File, name: str) -> Optional[Any]:
    """Value of a scalar attribute of the root group, or None if it is absent.

    Strings come back as ``str``; numbers as numpy scalars.
    """
    bname = name.encode()
    if not h5a.exists(f.id, bname):
        return None
    aid = h5a.open(f.id, bname)
    dtype = aid.dtype
    arr = np.zeros(aid.shape, dtype=dtype)
    aid.read(arr, mtype=h5t.py_create(dtype))
    val = arr[()] if arr.ndim == 0 else arr
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
