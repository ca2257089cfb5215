"""Typed encoding of dictpars values as HDF5 attributes.

Supported values and how they come back:

============================  ===============================  ===========================
value given                   stored as (HDF5 attribute)       returned
============================  ===============================  ===========================
``str``                       variable-length UTF-8 string     ``str``
``int`` / numpy integer       64-bit integer (numpy: own type) ``int``
``float`` / numpy float       64-bit float (numpy: own type)   ``float``
``bool`` / ``numpy.bool_``    HDF5 enum (FALSE=0, TRUE=1)      ``bool``
1-d list/tuple/array of one   1-d array of that type           ``numpy.ndarray`` (same
of the above types                                             dtype; str arrays as ``<U``)
============================  ===============================  ===========================

Anything else (None, dict, nested or mixed sequences, empty sequences, complex, bytes,
objects, N-d arrays) raises :class:`~pscalib.errors.InvalidParameterError`.
"""
from __future__ import annotations

import numbers
from typing import Any

import h5py
import numpy as np

from ..errors import InvalidParameterError

__all__ = ["write_int_attr", "write_ascii_attr", "encode_par", "decode_par", "pars_equal"]

_STR = h5py.string_dtype("utf-8")


def _check_str(text: str, what: str) -> str:
    if "\x00" in text:
        raise InvalidParameterError(f"{what} contains a NUL character, which HDF5 strings "
                                    f"cannot hold")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameterError(f"{what} is not valid Unicode (lone surrogate)") from None
    return text


def encode_par(key: str, value: Any):
    """Return ``(data, dtype)`` to store ``value`` as an attribute, or raise."""
    what = f"parameter {key!r}"
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value), None
    if isinstance(value, str):
        return _check_str(value, what), _STR
    if isinstance(value, np.integer):
        return value, None
    if isinstance(value, numbers.Integral):
        if not -(2**63) <= int(value) < 2**63:
            raise InvalidParameterError(f"{what}: integer {value} does not fit in 64 bits")
        return np.int64(value), None
    if isinstance(value, np.floating):
        if value.dtype.itemsize > 8:
            raise InvalidParameterError(f"{what}: {value.dtype} is not portable; use float64")
        return value, None
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return np.float64(value), None
    if isinstance(value, (list, tuple, np.ndarray)):
        return _encode_seq(what, value)
    raise InvalidParameterError(
        f"{what}: values of type {type(value).__name__} cannot be stored; use str, int, "
        f"float, bool or a 1-d list/array of one of these")


def _encode_seq(what: str, value):
    if isinstance(value, np.ndarray):
        arr = value
        if arr.ndim != 1:
            raise InvalidParameterError(f"{what}: only 1-d arrays are supported, got shape "
                                        f"{arr.shape}")
        if arr.dtype.kind in "US":
            value = [str(x) if arr.dtype.kind == "U" else None for x in arr]
            if arr.dtype.kind == "S":
                raise InvalidParameterError(f"{what}: byte-string arrays are not supported; "
                                            f"use str")
        elif arr.dtype.kind == "O":
            value = list(arr)
        elif arr.dtype.kind in "biuf" and arr.dtype.itemsize <= 8:
            if arr.size == 0:
                raise InvalidParameterError(f"{what}: empty arrays are not supported")
            return arr, None
        else:
            raise InvalidParameterError(f"{what}: arrays of dtype {arr.dtype} are not supported")
    items = list(value)
    if not items:
        raise InvalidParameterError(f"{what}: an empty sequence has no element type; "
                                    f"store a non-empty list or delete the parameter")
    if all(isinstance(x, str) for x in items):
        return np.array([_check_str(x, what) for x in items], dtype=object), _STR
    if all(isinstance(x, (bool, np.bool_)) for x in items):
        return np.array(items, dtype=bool), None
    if any(isinstance(x, (bool, np.bool_)) for x in items):
        raise InvalidParameterError(f"{what}: a list must not mix booleans with other types")
    if all(isinstance(x, numbers.Integral) for x in items):
        try:
            return np.array(items, dtype=np.int64), None
        except OverflowError:
            raise InvalidParameterError(f"{what}: an integer does not fit in 64 bits") from None
    if all(isinstance(x, numbers.Real) for x in items):
        return np.array(items, dtype=np.float64), None
    raise InvalidParameterError(
        f"{what}: a list must hold only str, only int, only float or only bool values "
        f"(no None, nesting or mixtures)")


def decode_par(raw: Any) -> Any:
    """Attribute value as read by h5py -> the Python value it was stored from."""
    if isinstance(raw, np.ndarray):
        if raw.dtype.kind == "O":
            return np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in raw])
        if raw.ndim == 0:
            return decode_par(raw[()])
        return raw
    if isinstance(raw, bytes):
        return raw.decode("utf-8")
    if isinstance(raw, (np.bool_, bool)):
        return bool(raw)
    if isinstance(raw, np.integer):
        return int(raw)
    if isinstance(raw, np.floating):
        return float(raw)
    return raw


def pars_equal(a: Any, b: Any) -> bool:
    """Equality for decoded values, arrays included (type-sensitive)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and a.shape == b.shape and bool(np.all(a == b)))
    return type(a) is type(b) and a == b


_SCALAR = h5py.h5s.create(h5py.h5s.SCALAR)


def write_int_attr(oid: h5py.h5o.ObjectID, name: str, value: int) -> None:
    """Set the scalar int64 attribute ``name`` of ``oid`` through the low-level API (half
    the cost of ``attrs[name] = np.int64(value)``: a version's bookkeeping is a handful of
    these). An existing attribute of that type is overwritten in place."""
    bname = name.encode()
    data = np.array(value, dtype="<i8")
    if h5py.h5a.exists(oid, bname):
        aid = h5py.h5a.open(oid, bname)
        if aid.dtype == data.dtype and aid.shape == ():
            aid.write(data)
            return
        h5py.h5a.delete(oid, bname)
    h5py.h5a.create(oid, bname, h5py.h5t.STD_I64LE, _SCALAR).write(data)


def write_ascii_attr(oid: h5py.h5o.ObjectID, name: str, text: str) -> None:
    """Create the scalar fixed-length ASCII string attribute ``name`` (format 3 ``kind``
    and ``sha256``: no global heap object, unlike a variable-length string)."""
    data = np.array(text.encode("ascii"))
    h5py.h5a.create(oid, name.encode(), h5py.h5t.py_create(data.dtype), _SCALAR).write(data)
