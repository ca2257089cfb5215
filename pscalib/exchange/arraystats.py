"""Element-wise statistics of two arrays of the same shape (used by the store and version
diffs; rules in :mod:`pscalib.exchange.vdiff`)."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ..errors import InvalidInputError

__all__ = ["array_stats", "segment_axis"]


def segment_axis(ndim: int) -> Optional[int]:
    """Axis that numbers the detector segments of an ``ndim``-d array (None: no segments)."""
    return {3: 0, 4: 1}.get(ndim)


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|`` element-wise: exact uint64 for integers, float64 otherwise."""
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    if b.dtype.kind == "b":
        b = b.astype(np.uint8)
    common = np.result_type(a.dtype, b.dtype)
    if common.kind in "iu":
        # Modular uint64 arithmetic: (a - b) mod 2**64 is the exact distance when a >= b,
        # and any two int64/uint64 values are at most 2**64 - 1 apart.
        ac, bc = a.astype(common), b.astype(common)
        au, bu = ac.astype(np.uint64), bc.astype(np.uint64)
        with np.errstate(over="ignore"):
            return np.where(ac >= bc, au - bu, bu - au)
    kind = np.complex128 if common.kind == "c" else np.float64
    with np.errstate(invalid="ignore", over="ignore"):
        return np.abs(a.astype(kind) - b.astype(kind)).astype(np.float64)


def _nan_mask(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "fc":
        return np.isnan(x)
    return np.zeros(x.shape, dtype=bool)


def _summarize(changed: np.ndarray, nan_mismatch: np.ndarray, comparable: np.ndarray,
               d: np.ndarray) -> Dict[str, Any]:
    size = int(changed.size)
    dd = d[comparable]
    mx = dd.max() if dd.size else 0
    mx = int(mx) if dd.dtype.kind == "u" else float(mx)
    mean = float(dd.mean(dtype=np.float64)) if dd.size else 0.0
    n = int(changed.sum())
    return {"size": size, "changed": n, "fraction": n / size if size else 0.0,
            "nan_mismatch": int(nan_mismatch.sum()), "max_abs_diff": mx,
            "mean_abs_diff": mean}


def array_stats(a: np.ndarray, b: np.ndarray, *, segments: bool = True) -> Dict[str, Any]:
    """Element-wise comparison of two arrays of the same shape (see module docstring).

    Returns
    -------
    dict
        ``size``, ``changed``, ``fraction`` (changed / size), ``nan_mismatch``,
        ``max_abs_diff`` (int for integer arrays, else float), ``mean_abs_diff`` and, for
        3-D/4-D arrays when ``segments``, ``segment_axis`` and ``segments``: a list of
        ``{"segment": i, "size", "changed", "fraction", "nan_mismatch", "max_abs_diff",
        "mean_abs_diff"}``.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise InvalidInputError(f"cannot compare arrays element by element: shapes {a.shape} "
                                f"and {b.shape} differ")
    na, nb = _nan_mask(a), _nan_mask(b)
    with np.errstate(invalid="ignore"):
        equal = (a == b) | (na & nb)
    changed = ~equal
    nan_mismatch = na ^ nb
    comparable = ~(na | nb)
    d = _abs_diff(a, b)
    out = _summarize(changed, nan_mismatch, comparable, d)
    ax = segment_axis(a.ndim) if segments else None
    if ax is not None:
        out["segment_axis"] = ax
        out["segments"] = []
        for i in range(a.shape[ax]):
            sl = tuple([slice(None)] * ax + [i])
            seg = _summarize(changed[sl], nan_mismatch[sl], comparable[sl], d[sl])
            out["segments"].append({"segment": i, **seg})
    return out
