"""The ``out=`` array of ``get``: what it must be, and filling it from a read payload.

``get(..., out=arr)`` reads an array version straight into ``arr`` (no new array: a fresh
buffer's page faults cost more than reading a warm file). ``arr`` must be a writable,
C-contiguous numpy array of exactly the version's shape and dtype (the byte order may
differ: the read converts then); anything else raises
:class:`~pscalib.errors.OutArrayError` before a byte is read.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from ..errors import OutArrayError

__all__ = ["check_out", "copy_into"]


def check_out(out: Any, shape: Tuple[int, ...], dtype: np.dtype, what: str) -> None:
    """Raise OutArrayError unless ``out`` can take the payload of ``shape`` and ``dtype``."""
    if (isinstance(out, np.ndarray) and out.shape == tuple(shape) and out.flags.c_contiguous
            and out.flags.writeable and (out.dtype == dtype or out.dtype.newbyteorder("=")
                                         == np.dtype(dtype).newbyteorder("="))):
        return  # the common case, checked without building the message (a hot path)
    want = (f"a writable C-contiguous numpy array of shape {tuple(shape)} and dtype "
            f"{np.dtype(dtype).name} (those of {what})")
    if not isinstance(out, np.ndarray):
        raise OutArrayError(f"out= must be {want}, got {type(out).__name__}")
    problems = []
    if tuple(out.shape) != tuple(shape):
        problems.append(f"shape {tuple(out.shape)}")
    if out.dtype.newbyteorder("=") != np.dtype(dtype).newbyteorder("="):
        problems.append(f"dtype {out.dtype.name}")
    if not out.flags.c_contiguous:
        problems.append("not C-contiguous (np.ascontiguousarray or a fresh np.empty)")
    if not out.flags.writeable:
        problems.append("read-only")
    if problems:
        raise OutArrayError(f"out= must be {want}; it is {', '.join(problems)}")


def copy_into(payload: Any, out: Any, what: str) -> np.ndarray:
    """Fill ``out`` from an already read payload (backends without a direct read)."""
    if not isinstance(payload, np.ndarray):
        raise OutArrayError(f"{what} is text: out= takes arrays only; call get without it")
    check_out(out, payload.shape, payload.dtype, what)
    out[...] = payload
    return out
