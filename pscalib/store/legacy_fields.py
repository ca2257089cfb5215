"""Checked reads of the single-value datasets of original LCLS DCS files.

The original DCS stores every scalar as a dataset of shape ``(1,)`` (strings as fixed-length
ASCII bytes, ints as int64, floats as float64). Each reader here checks presence, kind and
shape and raises :class:`~pscalib.errors.LegacyFormatError` naming the HDF5 object and what
is wrong with it, so a broken file never yields a silently wrong value.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, overload

import h5py
import numpy as np

from ..errors import InvalidTimeError, LegacyFormatError
from ..timestamps import to_ns

__all__ = ["fail", "child", "dataset", "group", "is_string", "read_str", "read_int",
           "read_time", "decode_text", "text_bytes", "read_value"]


def fail(obj_or_file: Any, what: str) -> LegacyFormatError:
    """A LegacyFormatError whose message starts with the file name."""
    fname = getattr(getattr(obj_or_file, "file", None), "filename", None) or str(obj_or_file)
    return LegacyFormatError(
        f"{fname}: {what} - not a valid original LCLS DCS file (see docs/import.rst for the "
        f"expected layout)")


def child(parent: h5py.Group, name: str):
    """``parent[name]`` or None; a dangling link counts as missing."""
    try:
        return parent.get(name)
    except (KeyError, OSError, RuntimeError):
        return None


def _objpath(parent: h5py.Group, name: str) -> str:
    base = parent.name.rstrip("/")
    return f"{base}/{name}"


@overload
def dataset(parent: h5py.Group, name: str,
            required: Literal[True] = True) -> h5py.Dataset: ...  # noqa: E704


@overload
def dataset(parent: h5py.Group, name: str,
            required: bool) -> Optional[h5py.Dataset]: ...  # noqa: E704


def dataset(parent: h5py.Group, name: str, required: bool = True) -> Optional[h5py.Dataset]:
    """The dataset ``parent/name`` (error if it is missing or a group)."""
    obj = child(parent, name)
    if obj is None:
        if required:
            raise fail(parent, f"missing dataset {_objpath(parent, name)}")
        return None
    if not isinstance(obj, h5py.Dataset):
        raise fail(parent, f"{obj.name} is a {type(obj).__name__.lower()}, expected a dataset")
    return obj


def group(parent: h5py.Group, name: str) -> Optional[h5py.Group]:
    """The optional group ``parent/name`` (None if absent, error if not a group)."""
    obj = child(parent, name)
    if obj is None:
        return None
    if not isinstance(obj, h5py.Group):
        raise fail(parent, f"{obj.name} is a dataset, expected a group")
    return obj


def is_string(ds: h5py.Dataset) -> bool:
    return ds.dtype.kind == "S" or h5py.check_string_dtype(ds.dtype) is not None


def _single(ds: h5py.Dataset, kind: str):
    if ds.shape != (1,):
        raise fail(ds, f"dataset {ds.name} has shape {ds.shape}, expected (1,) for a "
                       f"single {kind}")
    return ds[0]


def text_bytes(ds: h5py.Dataset) -> bytes:
    """The exact bytes of a one-element string dataset (fixed-length padding removed).

    Fixed-length HDF5 strings end at the first NUL (that is the padding); a NUL followed by
    other bytes would be text we cannot represent, so it is an error rather than a silent cut.
    """
    if ds.shape not in ((1,), ()):
        raise fail(ds, f"dataset {ds.name} has shape {ds.shape}, expected (1,) for a string")
    if ds.dtype.kind == "S":
        raw = np.ascontiguousarray(ds[...]).tobytes()
        cut = raw.find(b"\x00")
        if cut >= 0:
            if raw[cut:].strip(b"\x00"):
                raise fail(ds, f"string dataset {ds.name} holds a NUL byte at offset {cut} "
                               f"followed by more text")
            raw = raw[:cut]
        return raw
    value = ds[()] if ds.shape == () else ds[0]
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def decode_text(ds: h5py.Dataset, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(ds, f"string dataset {ds.name} is not ASCII/UTF-8 text (byte {exc.start} "
                       f"is 0x{raw[exc.start]:02x})") from None


def read_str(parent: h5py.Group, name: str, required: bool = True) -> Optional[str]:
    """A string stored as a one-element bytes dataset."""
    ds = dataset(parent, name, required)
    if ds is None:
        return None
    if not is_string(ds):
        raise fail(ds, f"dataset {ds.name} has type {ds.dtype}, expected a string (bytes)")
    if ds.shape != (1,):
        raise fail(ds, f"dataset {ds.name} has shape {ds.shape}, expected (1,) for a string")
    return decode_text(ds, text_bytes(ds))


def read_int(parent: h5py.Group, name: str) -> int:
    """An integer stored as a one-element integer dataset."""
    ds = dataset(parent, name)
    if ds.dtype.kind not in "iu":
        raise fail(ds, f"dataset {ds.name} has type {ds.dtype}, expected an integer (int64)")
    return int(_single(ds, "integer"))


@overload
def read_time(parent: h5py.Group, name: str,
              allow_end: Literal[False] = False) -> int: ...  # noqa: E704


@overload
def read_time(parent: h5py.Group, name: str, allow_end: bool) -> Optional[int]: ...  # noqa: E704


def read_time(parent: h5py.Group, name: str, allow_end: bool = False) -> Optional[int]:
    """Float (or integer) Unix seconds as int ns; None for the string 'end' if allowed."""
    ds = dataset(parent, name)
    if is_string(ds):
        if allow_end and read_str(parent, name) == "end":
            return None
        want = "float seconds or the string 'end'" if allow_end else "float seconds"
        raise fail(ds, f"dataset {ds.name} holds a string, expected {want}")
    if ds.dtype.kind not in "fiu":
        raise fail(ds, f"dataset {ds.name} has type {ds.dtype}, expected float64 seconds")
    value = _single(ds, "time")
    try:
        # to_ns converts a float through its shortest repr, so 1474587520.25 s is exact
        return to_ns(float(value) if ds.dtype.kind == "f" else int(value))
    except InvalidTimeError as exc:
        raise fail(ds, f"dataset {ds.name} is not a usable time ({exc})") from None


def read_value(ds: h5py.Dataset) -> Any:
    """A ``_parameters`` value: str, int, float, bool, or a 1-d array for longer datasets."""
    if is_string(ds):
        if ds.shape != (1,):
            raise fail(ds, f"parameter {ds.name} has shape {ds.shape}, expected (1,)")
        return decode_text(ds, text_bytes(ds))
    kind = ds.dtype.kind
    if kind not in "biuf" or ds.dtype.itemsize > 8:
        raise fail(ds, f"parameter {ds.name} has unsupported type {ds.dtype} (expected bytes, "
                       f"int64, float64 or bool)")
    if ds.shape == (1,):
        value = ds[0]
        return bool(value) if kind == "b" else int(value) if kind in "iu" else float(value)
    if len(ds.shape) == 1 and ds.shape[0] > 1:
        return ds[...]
    raise fail(ds, f"parameter {ds.name} has shape {ds.shape}, expected (1,) or a 1-d list")
