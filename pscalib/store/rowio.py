"""Rows of pscalib's compound tables, read and appended through prebuilt HDF5 memory types.

h5py's high-level ``Dataset.__getitem__``/``__setitem__`` turn the file's compound type into
a numpy dtype on every call (about 0.2 ms for a table with variable-length strings), which
is more than the read or write of a few rows costs. Every commit appends to up to four
tables and reads the last row of two; these helpers do the same HDF5 calls with a memory
type built once per dtype. HDF5 converts between the memory and the file type member by
member (by name), exactly as for h5py's own reads and writes.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import h5py
import numpy as np
from h5py import h5d, h5s, h5t

__all__ = ["append_rows", "write_rows_at", "read_rows_at", "memory_type", "fixed_fields"]

_MTYPES: Dict[np.dtype, h5t.TypeID] = {}


def memory_type(dtype: np.dtype) -> h5t.TypeID:
    """The HDF5 memory type of ``dtype`` (built once)."""
    mt = _MTYPES.get(dtype)
    if mt is None:
        # not "logical": object fields must be h5py's Python-object type, which it converts
        # to and from variable-length strings (a logical vlen type would take the PyObject
        # pointers for char pointers)
        mt = _MTYPES[dtype] = h5t.py_create(dtype)
    return mt


def append_rows(ds: h5py.Dataset, rows: Sequence[tuple], dtype: np.dtype) -> int:
    """Append ``rows`` (tuples in ``dtype``'s field order) to the 1-D chunked table ``ds``
    in one resize and one write; returns the number of rows."""
    if not rows:
        return 0
    n = ds.id.shape[0]
    ds.id.set_extent((n + len(rows),))
    write_rows_at(ds.id, n, np.array(list(rows), dtype=dtype))
    return len(rows)


def write_rows_at(dsid: h5d.DatasetID, start: int, arr: np.ndarray) -> None:
    """Write the structured array ``arr`` over rows ``[start, start + len(arr))``."""
    if len(arr):
        fspace = dsid.get_space()
        fspace.select_hyperslab((start,), (len(arr),))
        dsid.write(h5s.create_simple((len(arr),)), fspace, np.ascontiguousarray(arr),
                   mtype=memory_type(arr.dtype))


def read_rows_at(dsid: h5d.DatasetID, start: int, count: int, dtype: np.dtype
                 ) -> np.ndarray:
    """Rows ``[start, start + count)`` of the open table ``dsid`` read as ``dtype``, which
    may name a subset of the file's fields (only those are read and converted)."""
    out = np.zeros(count, dtype=dtype)
    if count:
        fspace = dsid.get_space()
        fspace.select_hyperslab((start,), (count,))
        dsid.read(h5s.create_simple((count,)), fspace, out, mtype=memory_type(dtype))
    return out


def fixed_fields(dtype: np.dtype) -> List[str]:
    """Fields of fixed length (read without touching the global heap)."""
    return [n for n in dtype.names or () if dtype[n].kind != "O"]
