"""PNG pictures for the GUI, memoized by payload checksums (payloads never change)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Optional, Tuple

import numpy as np

from ..errors import InvalidInputError
from ..plot.arrays import geometry_for, plot_diff, plot_version
from ..plot.output import figure_bytes, raw_image
from ..store.payload import checksum

__all__ = ["render", "MEMO_BYTES"]

#: Bytes of PNGs kept in memory.
MEMO_BYTES = 64 * 2**20
_memo: "OrderedDict[Tuple, bytes]" = OrderedDict()
_memo_bytes = 0
_lock = threading.Lock()


def _sha(v: Any) -> str:
    info = v.info()
    return info.sha256 or checksum(v.calib())


def _cached(key: Tuple, make) -> bytes:
    global _memo_bytes
    with _lock:
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
            return hit
    png = make()
    with _lock:
        _memo[key] = png
        _memo_bytes += len(png)
        while _memo_bytes > MEMO_BYTES and len(_memo) > 1:
            _memo_bytes -= len(_memo.popitem(last=False)[1])
    return png


def render(cs: Any, v: Any, w: Optional[Any], view: str, layout: str) -> bytes:
    """PNG of version ``v`` (or of ``w - v`` when ``w`` is given): ``view='figure'`` is the
    figure with histogram, ``'raw'`` one pixel per bin. The geometry is the store's
    geometry valid at the range's begin."""
    t = np.datetime64(v.rangeobj().tsbegin(), "ns")
    geo = geometry_for(cs, t) if v.ctype() != "geometry" else None
    geo_sha = None
    if geo is not None:
        geo_sha = _sha(cs.version_at("geometry", t))
    key = (_sha(v), _sha(w) if w is not None else None, geo_sha, view, layout, v.ctype())

    def make() -> bytes:
        a = v.calib()
        if w is not None:
            b = w.calib()
            if view == "raw":
                if isinstance(a, str) or isinstance(b, str) or np.shape(a) != np.shape(b):
                    raise InvalidInputError("raw difference images need two arrays of one "
                                            "shape")
                d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
                return raw_image(d, geo, layout, cmap="RdBu_r", symmetric=True)
            return figure_bytes(plot_diff(a, b, (f"v{v.version()}", f"v{w.version()}"),
                                          geo, layout, figsize=(8.0, 6.5)))
        if view == "raw":
            if isinstance(a, str):
                raise InvalidInputError("text constants have no raw image")
            return raw_image(a, geo, layout)
        return figure_bytes(plot_version(v, geo, layout, figsize=(8.0, 6.5)))
    return _cached(key, make)
