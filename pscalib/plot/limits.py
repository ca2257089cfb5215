"""Robust colour limits: percentiles of the finite values, never a flat scale."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..errors import InvalidInputError

__all__ = ["robust_limits", "finite_sample"]

#: Above this many values, limits and histograms use an evenly strided sample: the
#: percentiles of 4 M pixels do not change visibly, and drawing stays fast.
SAMPLE = 1_000_000


def finite_sample(arr: np.ndarray, limit: int = SAMPLE) -> np.ndarray:
    """The finite values of ``arr`` as float64, strided down to about ``limit`` values."""
    flat = np.asarray(arr).reshape(-1)
    if flat.size > limit:
        flat = flat[:: int(np.ceil(flat.size / limit))]
    flat = flat.astype(np.float64, copy=False)
    return flat[np.isfinite(flat)]


def robust_limits(arr: np.ndarray, percentiles: Tuple[float, float] = (1.0, 99.0),
                  symmetric: bool = False) -> Tuple[float, float]:
    """``(vmin, vmax)`` from percentiles of the finite values of ``arr``.

    Parameters
    ----------
    arr
        Any numeric array (NaN/inf are ignored).
    percentiles
        Lower and upper percentile, ``0 <= lo < hi <= 100``.
    symmetric
        Limits ``(-m, m)`` with ``m`` the upper percentile of ``|arr|`` (for differences).

    Returns
    -------
    tuple of float
        Limits with ``vmin < vmax`` (a constant array gets ``value -/+ 0.5``; no finite
        value gives ``(0, 1)``).
    """
    lo, hi = (float(p) for p in percentiles)
    if not (0.0 <= lo < hi <= 100.0):
        raise InvalidInputError(f"percentiles must satisfy 0 <= low < high <= 100, "
                                f"got {lo:g}, {hi:g}")
    vals = finite_sample(arr)
    if vals.size == 0:
        return 0.0, 1.0
    if symmetric:
        m = float(np.percentile(np.abs(vals), hi))
        return (-m, m) if m > 0 else (-1.0, 1.0)
    vmin, vmax = (float(v) for v in np.percentile(vals, [lo, hi]))
    if vmax <= vmin:  # mostly one value (a status map): show the full range instead
        vmin, vmax = float(vals.min()), float(vals.max())
    if vmax <= vmin:
        return vmin - 0.5, vmax + 0.5
    return vmin, vmax


def parse_percentiles(text: Optional[str]) -> Tuple[float, float]:
    """``'1,99'`` -> ``(1.0, 99.0)`` (for command-line and form input)."""
    if not text:
        return (1.0, 99.0)
    parts = text.replace(" ", "").split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise InvalidInputError(f"percentiles {text!r} must be two numbers like 1,99") from None
    robust_limits(np.zeros(1), (lo, hi))  # validates the pair
    return lo, hi
