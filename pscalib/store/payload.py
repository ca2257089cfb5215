"""Payloads of versions: validation, checksums, writing and reading.

An ndarray payload is the dataset ``data`` with exactly the given dtype and shape (0-d
included), contiguous, unfiltered: fastest to read and readable by any HDF5 tool. A text
payload is a scalar variable-length UTF-8 string dataset ``data``; its bytes round-trip
exactly (tabs, blank lines, trailing newline).

Checksum (attribute ``sha256`` of the version group), hex sha256 of:

* ndarray: ``b"ndarray\\0" + dtype.str + b"\\0" + repr(shape) + b"\\0" + C-order bytes``,
  e.g. ``ndarray\\0<f8\\0(32, 185, 388)\\0...``; bool arrays use one byte per element (0/1).
* text: ``b"text\\0" + UTF-8 bytes``.
"""
from __future__ import annotations

import hashlib
import sys
from typing import Any, Union

import h5py
import numpy as np

from ..errors import InvalidPayloadError
from .layout import COMPACT_MAX, KIND_NDARRAY, KIND_TEXT, N_DATA

__all__ = ["Payload", "normalize_payload", "payload_kind", "checksum", "write_payload",
           "read_payload", "payloads_equal"]

Payload = Union[np.ndarray, str]
_STR = h5py.string_dtype("utf-8")


def normalize_payload(data) -> Payload:
    """Validate ``data`` and return it as an ndarray or str, ready to store.

    Raises
    ------
    InvalidPayloadError
        For unsupported dtypes (object, strings, structured, datetime, >64-bit floats),
        text that is not UTF-8 or holds NUL characters. Empty arrays (an empty list of bad
        pixels) are stored like any other shape.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPayloadError(
                f"text constants must be UTF-8; byte {exc.start} (0x{data[exc.start]:02x}) "
                f"is not valid UTF-8 - convert the file to UTF-8 first") from None
    if isinstance(data, str):
        if "\x00" in data:
            raise InvalidPayloadError("text constants must not contain NUL characters")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidPayloadError("text constants contain a lone surrogate; "
                                      "they cannot be encoded as UTF-8") from None
        return data
    if isinstance(data, (np.generic, int, float, bool)) and not isinstance(data, np.ndarray):
        data = np.asarray(data)
    if not isinstance(data, np.ndarray):
        raise InvalidPayloadError(
            f"constants must be a numpy array or str (text), got {type(data).__name__}; "
            f"convert with numpy.asarray(...) first")
    ma = sys.modules.get("numpy.ma")  # not imported: data cannot be a masked array
    if ma is not None and isinstance(data, ma.MaskedArray):
        raise InvalidPayloadError(
            "masked arrays cannot be stored (the mask would be lost); store "
            "data.filled(value) and keep the mask as its own calibration type (pixel_mask)")
    kind = data.dtype.kind
    if data.dtype.fields is not None or kind in "OUSVMmT":
        raise InvalidPayloadError(
            f"arrays of dtype {data.dtype} cannot be stored; use a numeric or bool dtype "
            f"(store text as a str payload)")
    if kind not in "biufc":
        raise InvalidPayloadError(f"arrays of dtype {data.dtype} cannot be stored")
    if (kind == "f" and data.dtype.itemsize > 8) or (kind == "c" and data.dtype.itemsize > 16):
        raise InvalidPayloadError(
            f"dtype {data.dtype} is platform-specific and not portable; use float64/complex128")
    return data


def payload_kind(data: Payload) -> str:
    return KIND_TEXT if isinstance(data, str) else KIND_NDARRAY


def checksum(data: Payload) -> str:
    """Hex sha256 of a normalized payload (see module docstring for the exact bytes)."""
    h = hashlib.sha256()
    if isinstance(data, str):
        h.update(b"text\x00")
        h.update(data.encode("utf-8"))
    else:
        arr = np.ascontiguousarray(data)
        h.update(b"ndarray\x00" + arr.dtype.str.encode() + b"\x00" +
                 repr(tuple(int(n) for n in arr.shape)).encode() + b"\x00")
        raw: Any = arr.view(np.uint8) if arr.dtype.kind == "b" else arr  # ndarray: a buffer
        if arr.size:  # an empty array adds no bytes (memoryview cannot cast a 0 extent)
            h.update(memoryview(raw).cast("B"))
    return h.hexdigest()


def write_payload(group: h5py.Group, data: Payload, compact: bool = False) -> h5py.Dataset:
    """Create ``group/data`` holding a normalized payload; ``compact`` (format 3) stores an
    array of 1 to ``COMPACT_MAX`` bytes inside the dataset's object header."""
    if isinstance(data, str):
        return group.create_dataset(N_DATA, data=data, dtype=_STR)
    if compact and 0 < data.nbytes <= COMPACT_MAX and data.ndim > 0:
        # no separate data block to allocate, align and find: a small payload costs its
        # bytes plus the header it needs anyway
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        return group.create_dataset(N_DATA, data=data, dtype=data.dtype, dcpl=dcpl)
    # contiguous, no filters: any HDF5 reader, and reads as fast as raw h5py
    return group.create_dataset(N_DATA, data=data, dtype=data.dtype)


def read_payload(ds: h5py.Dataset, kind: str) -> Payload:
    if kind == KIND_TEXT:
        raw = ds[()]
        return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    if ds.shape == ():
        return np.asarray(ds[()], dtype=ds.dtype)
    out = np.empty(ds.shape, dtype=ds.dtype)
    if out.size:
        ds.read_direct(out)
    return out


def payloads_equal(a: Payload, b: Payload) -> bool:
    """Exact equality: same kind, dtype, shape and bytes (NaNs compare by bit pattern)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return (a.dtype == b.dtype and a.shape == b.shape and
            np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())
